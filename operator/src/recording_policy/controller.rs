//! The RecordingPolicy controller: checks the policy's bucket, keeps the bucket's lifecycle rules
//! for the policy's recordings in line with `spec.retention` (leaving every rule it does not own),
//! checks versioning and Object Lock when `spec.objectLock` asks for them, publishes the recording
//! public keys next to the recordings, locks the direct S3 path down as `spec.access` asks
//! ([`crate::recording_policy::lockdown`]), and reports all of it as conditions.
//!
//! The plan is pure ([`crate::recording_policy::lifecycle_rules`], [`crate::recording_policy::status`]); this module
//! reads the credentials Secret, talks to S3 with `aws-sdk-s3`, writes the status with server-side
//! apply under [`crate::FIELD_MANAGER`], publishes events and, through a finalizer, removes the
//! policy's lifecycle rules and bucket-policy statements when the policy is deleted.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use aws_sdk_s3::{
    Client as S3Client,
    config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation, retry::RetryConfig,
        timeout::TimeoutConfig,
    },
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    types::{BucketLifecycleConfiguration, ChecksumAlgorithm, LifecycleRule, ObjectLockEnabled},
};
use aws_sdk_sts::Client as StsClient;
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chaperone_crds::{AgentConnection, RecordingPolicy, RecordingPolicySpec};
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, PartialObjectMeta},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::EventType,
        finalizer::Event as FinalizerEvent,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::{
    error::Error,
    gateway::config_compiler::Check,
    recording_policy::{
        bucket_policy,
        lifecycle_rules::{self, OwnedRule},
        lockdown,
        status::{self, PolicyChecks},
    },
    runtime::{
        metrics::OperatorMetrics,
        scaffolding::{self, ControllerBase, Reconciles},
    },
};

/// The controller's name in metrics and events.
pub const CONTROLLER: &str = "recordingpolicy";
/// The finalizer that removes the policy's lifecycle rules and bucket-policy statements from its
/// bucket (named for the rules, which came first).
pub const FINALIZER: &str = "chaperone.dev/lifecycle-rules";
/// How often a Ready policy is checked anyway (drift of the bucket's rules, new keys).
pub const RESYNC: Duration = Duration::from_secs(300);
/// How soon a policy that is not Ready is checked again.
pub const RETRY_NOT_READY: Duration = Duration::from_secs(20);

/// What every reconcile shares.
#[derive(Debug)]
pub struct Context {
    base: ControllerBase,
}

impl Reconciles for Context {
    fn base(&self) -> &ControllerBase {
        &self.base
    }
}

impl Context {
    /// A context reconciling with `client`.
    pub fn new(client: Client, metrics: Arc<OperatorMetrics>) -> Self {
        Self { base: ControllerBase::new(CONTROLLER, client, metrics) }
    }
}

/// Runs the controller until `shutdown` completes, then lets running reconciles finish.
///
/// `namespace` limits it to one namespace (`None`: all namespaces).
pub async fn run(
    context: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = context.base.client.clone();
    let ns = namespace.as_deref();
    let policies = scaffolding::scoped::<RecordingPolicy>(&client, ns);
    let secrets = scaffolding::scoped::<PartialObjectMeta<Secret>>(&client, ns);
    let connections = scaffolding::scoped::<AgentConnection>(&client, ns);
    let controller = Controller::new(policies, watcher::Config::default());
    let store = controller.store();
    let controller = controller
        // Metadata only, as the gateway controller's.
        .watches_stream(watcher(secrets, watcher::Config::default()).touched_objects(), {
            let store = store.clone();
            move |secret: PartialObjectMeta<Secret>| policies_using_secret(&store, &secret)
        })
        // A connection's status carries the recording public keys to publish.
        .watches(connections, watcher::Config::default(), |connection: AgentConnection| {
            let name = connection.spec.recording_policy_ref.name.clone();
            connection
                .namespace()
                .map(|ns| ObjectRef::<RecordingPolicy>::new(&name).within(&ns))
                .into_iter()
                .collect::<Vec<_>>()
        });
    scaffolding::run(controller, reconcile, context, shutdown).await;
}

fn policies_using_secret(
    store: &Store<RecordingPolicy>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<RecordingPolicy>> {
    let name = secret.name_any();
    scaffolding::objects_in(store, secret.namespace().as_deref(), |p| {
        p.spec.s3.credentials.as_ref().is_some_and(|c| c.secret_ref.name == name)
    })
}

/// Reconciles one RecordingPolicy: checks and configures its bucket and writes its status, or,
/// when it is being deleted, removes its lifecycle rules.
pub async fn reconcile(
    policy: Arc<RecordingPolicy>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let context = context.as_ref();
    context
        .base
        .reconcile_finalized(policy, "RecordingPolicy", FINALIZER, |event, namespace| async move {
            match event {
                FinalizerEvent::Apply(policy) => apply(&policy, &namespace, context).await,
                FinalizerEvent::Cleanup(policy) => cleanup(&policy, &namespace, context).await,
            }
        })
        .await
}

/// The bucket of a policy and the clients that reach it.
pub(crate) struct PolicyBucket {
    pub(crate) client: S3Client,
    /// STS with the same credentials, to learn whose they are (sts:GetCallerIdentity).
    pub(crate) sts: StsClient,
    pub(crate) bucket: String,
    /// Where the bucket is, for messages: the endpoint, or AWS S3 and the region.
    pub(crate) location: String,
    /// Where the credentials come from, for messages.
    pub(crate) credentials: String,
}

pub(crate) fn check(passed: bool, reason: &str, message: String) -> Check {
    Check { passed, reason: reason.into(), message }
}

/// The policy's bucket client, or the check that says what is missing to build one. The audit
/// API reads recordings with the same client.
pub(crate) async fn policy_bucket(
    client: &Client,
    namespace: &str,
    spec: &RecordingPolicySpec,
) -> Result<Result<PolicyBucket, Check>, Error> {
    let s3 = &spec.s3;
    let location = match &s3.endpoint {
        Some(endpoint) => format!("{endpoint} (region {})", s3.region),
        None => format!("AWS S3 in region {}", s3.region),
    };
    let (credentials, source) = match &s3.credentials {
        Some(reference) => {
            let name = &reference.secret_ref.name;
            let hint = format!(
                "kubectl -n {namespace} create secret generic {name} \
                 --from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=..."
            );
            let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(Error::kube(format!("reading Secret {namespace}/{name}")))?;
            let Some(secret) = secret else {
                return Ok(Err(check(
                    false,
                    "CredentialsSecretNotFound",
                    format!(
                        "Secret {namespace}/{name}, named by spec.s3.credentials.secretRef, does not \
                         exist: create it with the recorder's keys ({hint})."
                    ),
                )));
            };
            let Some(keys) = scaffolding::aws_keys(&scaffolding::secret_data(secret)) else {
                return Ok(Err(check(
                    false,
                    "CredentialsKeyMissing",
                    format!(
                        "Secret {namespace}/{name} needs the keys AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY: add them ({hint})."
                    ),
                )));
            };
            let source = format!("Secret {namespace}/{name} (access key {})", keys.access_key_id);
            (
                Some(Credentials::new(
                    keys.access_key_id,
                    keys.secret_access_key.0,
                    keys.session_token.map(|t| t.0),
                    None,
                    "chaperone-recording-policy",
                )),
                source,
            )
        }
        None => match ambient_credentials().await {
            Ok(credentials) => {
                let source = format!(
                    "the operator's own credentials (the AWS SDK's default chain; access key {})",
                    credentials.access_key_id()
                );
                (Some(credentials), source)
            }
            Err(reason) => {
                return Ok(Err(check(
                    false,
                    "NoCredentials",
                    format!(
                        "spec.s3.credentials is unset and the operator has no AWS credentials of \
                         its own ({reason}): set spec.s3.credentials.secretRef to a Secret in \
                         {namespace} with the recorder's keys, or give the operator's and the \
                         gateways' service accounts an IAM role (IRSA or EKS Pod Identity)."
                    ),
                )));
            }
        },
    };
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s3.region.clone()))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(200)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(15))
                .build(),
        );
    // STS answers where S3 does when an endpoint is set (moto, or an S3-compatible store that
    // serves STS), else at the region's STS endpoint.
    let mut sts = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(s3.region.clone()))
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            aws_sdk_sts::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(15))
                .build(),
        );
    if let Some(credentials) = credentials {
        sts = sts.credentials_provider(credentials.clone());
        config = config.credentials_provider(credentials);
    }
    if let Some(endpoint) = &s3.endpoint {
        sts = sts.endpoint_url(endpoint.clone());
        config = config.endpoint_url(endpoint.clone()).force_path_style(true);
    }
    Ok(Ok(PolicyBucket {
        sts: StsClient::from_conf(sts.build()),
        client: S3Client::from_conf(config.build()),
        bucket: s3.bucket.clone(),
        location,
        credentials: source,
    }))
}

/// The operator's own AWS credentials, resolved now by the AWS SDK's default chain (environment
/// keys, web identity as IRSA injects it, EKS Pod Identity and other container credentials, the
/// shared config files, the instance metadata service); the chain is built once.
async fn ambient_credentials() -> Result<Credentials, String> {
    use aws_config::default_provider::credentials::DefaultCredentialsChain;
    use aws_credential_types::provider::ProvideCredentials;
    static CHAIN: tokio::sync::OnceCell<DefaultCredentialsChain> =
        tokio::sync::OnceCell::const_new();
    // The chain itself does not cache: without this, every reconcile of every policy would
    // exchange the web identity token at STS again. Credentials are reused until five minutes
    // before they expire.
    static CACHED: tokio::sync::Mutex<Option<Credentials>> = tokio::sync::Mutex::const_new(None);
    let mut cached = CACHED.lock().await;
    let fresh = |c: &Credentials| {
        c.expiry().is_none_or(|expiry| {
            expiry > std::time::SystemTime::now() + std::time::Duration::from_secs(300)
        })
    };
    if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
        return Ok(credentials.clone());
    }
    let chain = CHAIN.get_or_init(|| DefaultCredentialsChain::builder().build()).await;
    let credentials = chain.provide_credentials().await.map_err(|e| stable_error_text(&e))?;
    *cached = Some(credentials.clone());
    Ok(credentials)
}

/// `error` and its sources, joined with ": ", without the raw HTTP response (whose date header
/// would change the condition's message, and so the status, on every try).
fn stable_error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in std::iter::successors(Some(error), |e| e.source()).map(ToString::to_string) {
        if !parts.iter().any(|p| p.ends_with(&part)) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// The SDK's error text: the error and its sources (it never contains secrets), without the raw
/// response, so that a condition repeating the same failure keeps the same message.
pub(crate) fn sdk_text<E: std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    error: &SdkError<E, R>,
) -> String {
    stable_error_text(error)
}

/// The HTTP status of a service error, if the server answered.
fn http_status<E>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

/// HeadBucket: reachable, or what to do.
async fn check_bucket(bucket: &PolicyBucket) -> Check {
    let PolicyBucket { client, bucket: name, location, credentials, .. } = bucket;
    match client.head_bucket().bucket(name).send().await {
        Ok(_) => check(
            true,
            "Reachable",
            format!("Bucket {name} at {location} answers with the credentials in {credentials}."),
        ),
        Err(error) => match http_status(&error) {
            Some(404) => check(
                false,
                "BucketNotFound",
                format!(
                    "Bucket {name} does not exist at {location}: create it (e.g. `aws s3api \
                     create-bucket --bucket {name}`), or fix spec.s3.bucket, spec.s3.region or \
                     spec.s3.endpoint."
                ),
            ),
            Some(status @ (401 | 403)) => check(
                false,
                "AccessDenied",
                format!(
                    "The credentials in {credentials} cannot reach bucket {name} at {location} \
                     (HTTP {status}): fix the keys in the Secret, or grant them s3:ListBucket, \
                     s3:GetLifecycleConfiguration, s3:PutLifecycleConfiguration, \
                     s3:GetBucketObjectLockConfiguration, s3:GetObject and s3:PutObject on the \
                     bucket."
                ),
            ),
            Some(status @ (301 | 400)) => check(
                false,
                "WrongRegion",
                format!(
                    "Bucket {name} at {location} refused the request (HTTP {status}), usually \
                     because it is in another region: set spec.s3.region to the bucket's region."
                ),
            ),
            Some(status) => check(
                false,
                "BucketCheckFailed",
                format!(
                    "HeadBucket on {name} at {location} failed with HTTP {status}: {}. Check \
                     spec.s3 and the S3 service.",
                    sdk_text(&error)
                ),
            ),
            None => check(
                false,
                "EndpointUnreachable",
                format!(
                    "Could not reach {location} for bucket {name}: {}. Check spec.s3.endpoint \
                     and spec.s3.region, and that the operator can connect to S3.",
                    sdk_text(&error)
                ),
            ),
        },
    }
}

/// The bucket's lifecycle rules (none when it has no configuration).
async fn current_rules(bucket: &PolicyBucket) -> Result<Vec<LifecycleRule>, String> {
    match bucket.client.get_bucket_lifecycle_configuration().bucket(&bucket.bucket).send().await {
        Ok(output) => Ok(output.rules().to_vec()),
        Err(error) if error.code() == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
        Err(error) => {
            Err(lifecycle_failure(bucket, "reading", "s3:GetLifecycleConfiguration", &error))
        }
    }
}

/// Why a call on the bucket's lifecycle configuration failed: what was being done, the
/// permission it needs, and S3's answer.
fn lifecycle_failure<E: std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    bucket: &PolicyBucket,
    doing: &str,
    permission: &str,
    error: &SdkError<E, R>,
) -> String {
    format!(
        "{doing} the lifecycle configuration of bucket {} (needs {permission}): {}",
        bucket.bucket,
        sdk_text(error)
    )
}

/// Writes `rules` as the bucket's whole lifecycle configuration (deletes it when empty).
async fn write_rules(bucket: &PolicyBucket, rules: Vec<LifecycleRule>) -> Result<(), String> {
    const PUT: &str = "s3:PutLifecycleConfiguration";
    let client = &bucket.client;
    if rules.is_empty() {
        let deleted = client.delete_bucket_lifecycle().bucket(&bucket.bucket).send().await;
        return deleted.map(|_| ()).map_err(|e| lifecycle_failure(bucket, "deleting", PUT, &e));
    }
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|e| format!("building the lifecycle configuration: {e}"))?;
    let written = client
        .put_bucket_lifecycle_configuration()
        .bucket(&bucket.bucket)
        .lifecycle_configuration(configuration)
        .send()
        .await;
    written.map(|_| ()).map_err(|e| lifecycle_failure(bucket, "writing", PUT, &e))
}

/// Applies the policy's rule, keeping foreign ones; returns the check and whether it wrote.
async fn apply_lifecycle(
    bucket: &PolicyBucket,
    namespace: &str,
    name: &str,
    spec: &RecordingPolicySpec,
) -> (Check, bool) {
    let desired = match lifecycle_rules::desired_rule(namespace, name, spec) {
        Ok(rule) => rule,
        Err(error) => {
            return (
                check(
                    false,
                    "InvalidRetention",
                    format!("S3 would refuse this retention: {error}. Fix spec.retention."),
                ),
                false,
            );
        }
    };
    let current = match current_rules(bucket).await {
        Ok(rules) => rules,
        Err(message) => {
            return (check(false, "LifecycleReadFailed", format!("Failed {message}.")), false);
        }
    };
    let owner = lifecycle_rules::owner_prefix(namespace, name);
    let plan = lifecycle_rules::merge(&current, &owner, std::slice::from_ref(&desired));
    if plan.changed
        && let Err(message) = write_rules(bucket, plan.rules).await
    {
        return (check(false, "LifecycleWriteFailed", format!("Failed {message}.")), false);
    }
    (
        check(
            true,
            "Applied",
            format!(
                "Bucket {} has {}; {} rule(s) the operator does not own are kept.",
                bucket.bucket,
                lifecycle_rules::describe(&desired),
                plan.foreign
            ),
        ),
        plan.changed,
    )
}

/// Versioning and Object Lock, when the policy asks for Object Lock.
async fn check_object_lock(bucket: &PolicyBucket, spec: &RecordingPolicySpec) -> Check {
    let Some(lock) = &spec.object_lock else {
        return check(
            true,
            "NotRequested",
            "spec.objectLock is unset: recordings are not locked.".into(),
        );
    };
    let name = &bucket.bucket;
    let client = &bucket.client;
    let locked = match client.get_object_lock_configuration().bucket(name).send().await {
        Ok(output) => output
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|e| *e == ObjectLockEnabled::Enabled),
        Err(error) if error.code() == Some("ObjectLockConfigurationNotFoundError") => false,
        Err(error) => {
            return check(
                false,
                "ObjectLockCheckFailed",
                format!(
                    "Reading the Object Lock configuration of bucket {name} failed (the \
                     credentials need s3:GetBucketObjectLockConfiguration): {}",
                    sdk_text(&error)
                ),
            );
        }
    };
    let mode = format!("{:?}", lock.mode);
    if !locked {
        return check(
            false,
            "ObjectLockNotEnabled",
            format!(
                "spec.objectLock asks for {mode} locks, but bucket {name} does not have Object \
                 Lock enabled, so the gateway's uploads would fail: enable it (`aws s3api \
                 put-bucket-versioning --bucket {name} --versioning-configuration Status=Enabled` \
                 then `aws s3api put-object-lock-configuration --bucket {name} \
                 --object-lock-configuration ObjectLockEnabled=Enabled`), use a bucket created \
                 with --object-lock-enabled-for-bucket, or remove spec.objectLock."
            ),
        );
    }
    // S3 turns versioning on with Object Lock and refuses to suspend it on such a bucket, so
    // Object Lock enabled means versioning enabled.
    check(
        true,
        "Verified",
        format!(
            "Bucket {name} has Object Lock (and so versioning) on; the gateway locks each \
             recording object in {mode} mode for {} days.",
            lock.days
        ),
    )
}

/// The key a recording public key is published under:
/// `<prefix>keys/<namespace>/<key-id>.pub`, outside the `v1/` recordings (so the lifecycle rule
/// never expires a key while recordings it verifies remain).
pub fn public_key_object(spec: &RecordingPolicySpec, namespace: &str, key_id: &str) -> String {
    format!("{}keys/{namespace}/{key_id}.pub", spec.s3.prefix)
}

/// The key id of a published key (standard base64 of its 32 bytes): the first 16 hex digits of
/// the SHA-256 of the raw key, as manifests carry it in `key_id`.
pub fn public_key_id(public_key: &str) -> Option<String> {
    let raw = B64.decode(public_key.trim()).ok().filter(|k| k.len() == 32)?;
    let digest = Sha256::digest(&raw);
    Some(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// The object body: comment lines, then the key, in the form `verify --public-keys-file` reads.
pub fn public_key_file(namespace: &str, key_id: &str, public_key: &str) -> String {
    format!(
        "# Chaperone recording public key {key_id} of namespace {namespace}, published by \
         chaperone-operator.\n# Trust it only after comparing it with a copy you trust, e.g. \
         AgentConnection status.recordingPublicKeys.\n{public_key}\n"
    )
}

/// The recording public keys of the namespace's connections that use this policy.
async fn policy_public_keys(
    context: &Context,
    namespace: &str,
    name: &str,
) -> Result<BTreeSet<String>, Error> {
    let connections = Api::<AgentConnection>::namespaced(context.base.client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(Error::kube(format!("listing AgentConnections in {namespace}")))?;
    Ok(connections
        .items
        .iter()
        .filter(|c| c.spec.recording_policy_ref.name == name)
        .filter_map(|c| c.status.as_ref())
        .flat_map(|s| s.recording_public_keys.iter().cloned())
        .collect())
}

/// Puts each key that is not in the bucket yet; keys are never removed (they verify recordings
/// for their whole retention).
async fn publish_keys(
    bucket: &PolicyBucket,
    spec: &RecordingPolicySpec,
    namespace: &str,
    keys: &BTreeSet<String>,
) -> (Check, Vec<String>) {
    if keys.is_empty() {
        return (
            check(
                true,
                "NoKeysYet",
                "No AgentConnection using this policy has a recording key yet; its keys are \
                 published here once its gateway's keys exist."
                    .into(),
            ),
            Vec::new(),
        );
    }
    let mut written = Vec::new();
    let mut objects = Vec::new();
    for key in keys {
        let Some(id) = public_key_id(key) else { continue };
        let object = public_key_object(spec, namespace, &id);
        objects.push(object.clone());
        let exists =
            match bucket.client.head_object().bucket(&bucket.bucket).key(&object).send().await {
                Ok(_) => true,
                Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => false,
                Err(error) => {
                    return (
                        check(
                            false,
                            "KeysNotPublished",
                            format!(
                                "Reading s3://{}/{object} failed: {}. The credentials need \
                             s3:GetObject and s3:PutObject under {}keys/.",
                                bucket.bucket,
                                sdk_text(&error),
                                spec.s3.prefix
                            ),
                        ),
                        written,
                    );
                }
            };
        if exists {
            continue;
        }
        let body = public_key_file(namespace, &id, key).into_bytes();
        let checksum = B64.encode(Sha256::digest(&body));
        let put = bucket
            .client
            .put_object()
            .bucket(&bucket.bucket)
            .key(&object)
            .content_type("text/plain")
            // Object Lock buckets need a checksum on every PUT.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .body(ByteStream::from(body))
            .send()
            .await;
        if let Err(error) = put {
            return (
                check(
                    false,
                    "KeysNotPublished",
                    format!(
                        "Writing s3://{}/{object} failed: {}. The credentials need s3:PutObject \
                         under {}keys/.",
                        bucket.bucket,
                        sdk_text(&error),
                        spec.s3.prefix
                    ),
                ),
                written,
            );
        }
        written.push(object);
    }
    (
        check(
            true,
            "Published",
            format!(
                "The recording public keys are in bucket {}: {}.",
                bucket.bucket,
                objects.join(", ")
            ),
        ),
        written,
    )
}

async fn apply(
    policy: &RecordingPolicy,
    namespace: &str,
    context: &Context,
) -> Result<Action, Error> {
    let name = policy.name_any();
    let spec = &policy.spec;
    let reference = policy.object_ref(&());
    let checks = match policy_bucket(&context.base.client, namespace, spec).await? {
        Err(missing) => PolicyChecks::unreachable(missing),
        Ok(bucket) => {
            let reachable = check_bucket(&bucket).await;
            if !reachable.passed {
                PolicyChecks::unreachable(reachable)
            } else {
                let (lifecycle, changed) = apply_lifecycle(&bucket, namespace, &name, spec).await;
                if changed {
                    info!(policy = %name, namespace, bucket = %bucket.bucket, "lifecycle rules written");
                    context
                        .base
                        .publish(
                            &reference,
                            EventType::Normal,
                            "LifecycleApplied",
                            "ApplyLifecycle",
                            lifecycle.message.clone(),
                        )
                        .await;
                }
                let object_lock = check_object_lock(&bucket, spec).await;
                let keys = policy_public_keys(context, namespace, &name).await?;
                let (public_keys, written) = publish_keys(&bucket, spec, namespace, &keys).await;
                if !written.is_empty() {
                    context
                        .base
                        .publish(
                            &reference,
                            EventType::Normal,
                            "PublicKeysPublished",
                            "PublishKeys",
                            format!("Wrote s3://{}/{}.", bucket.bucket, written.join(", ")),
                        )
                        .await;
                }
                let lockdown = lockdown::apply(&bucket, namespace, &name, spec).await;
                if !lockdown.written.is_empty() {
                    info!(policy = %name, namespace, bucket = %bucket.bucket, "bucket lockdown written");
                    context
                        .base
                        .publish(
                            &reference,
                            EventType::Normal,
                            "BucketLockdownApplied",
                            "ApplyLockdown",
                            lockdown.written.join(" "),
                        )
                        .await;
                }
                PolicyChecks {
                    bucket: reachable,
                    lifecycle,
                    object_lock,
                    public_keys,
                    lockdown: lockdown.check,
                }
            }
        }
    };
    let ready_message = format!(
        "Recordings of namespace {namespace} go to s3://{}/{} and are kept {} days.",
        spec.s3.bucket,
        lifecycle_rules::recordings_prefix(spec, namespace),
        spec.retention.days
    );
    let status = status::policy_status(
        &checks,
        ready_message,
        policy.metadata.generation,
        policy.status.as_ref(),
        Timestamp::now(),
    );
    if policy.status.as_ref() != Some(&status) {
        let before = policy.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
        context.base.publish_condition_changes(&reference, before, &status.conditions).await;
        context.base.apply_status::<RecordingPolicy>(namespace, &name, &status).await?;
        info!(policy = %name, namespace, "status written");
    }
    Ok(Action::requeue(if checks.first_failure().is_none() { RESYNC } else { RETRY_NOT_READY }))
}

/// Removes the policy's lifecycle rules, leaving every other rule. When the bucket cannot be
/// reached at all (its Secret or the bucket is gone) there is nothing the operator can do: a
/// Warning event names the rule to remove by hand and the deletion goes ahead.
async fn cleanup(
    policy: &RecordingPolicy,
    namespace: &str,
    context: &Context,
) -> Result<Action, Error> {
    let name = policy.name_any();
    let reference = policy.object_ref(&());
    let owner = lifecycle_rules::owner_prefix(namespace, &name);
    let statements = match policy.spec.access {
        Some(_) => format!(
            " and the bucket-policy statements {}*",
            bucket_policy::owner_prefix(namespace, &name)
        ),
        None => String::new(),
    };
    let bucket = match policy_bucket(&context.base.client, namespace, &policy.spec).await? {
        Ok(bucket) => bucket,
        Err(missing) => {
            let note = format!(
                "Could not remove the lifecycle rules {owner}*{statements} from bucket {}: {} \
                 Remove them by hand if they are still there.",
                policy.spec.s3.bucket, missing.message
            );
            context
                .base
                .publish(&reference, EventType::Warning, "LifecycleRulesLeft", "Cleanup", note)
                .await;
            return Ok(Action::await_change());
        }
    };
    let reachable = check_bucket(&bucket).await;
    if !reachable.passed {
        let note = format!(
            "Could not remove the lifecycle rules {owner}*{statements} from bucket {}: {} Remove \
             them by hand if they are still there.",
            bucket.bucket, reachable.message
        );
        context
            .base
            .publish(&reference, EventType::Warning, "LifecycleRulesLeft", "Cleanup", note)
            .await;
        return Ok(Action::await_change());
    }
    let current = current_rules(&bucket)
        .await
        .map_err(|message| Error::S3 { policy: format!("{namespace}/{name}"), message })?;
    let plan = lifecycle_rules::merge(&current, &owner, &[]);
    if plan.changed {
        write_rules(&bucket, plan.rules)
            .await
            .map_err(|message| Error::S3 { policy: format!("{namespace}/{name}"), message })?;
        info!(policy = %name, namespace, bucket = %bucket.bucket, "lifecycle rules removed");
    }
    // The policy's bucket-policy statements go too; Block Public Access and access logging stay
    // (they are bucket-wide and harmless to keep). A failure does not hold the deletion up.
    match lockdown::remove_statements(&bucket, namespace, &name).await {
        Ok(Some(removed)) => {
            info!(policy = %name, namespace, bucket = %bucket.bucket, "bucket-policy statements removed");
            context
                .base
                .publish(
                    &reference,
                    EventType::Normal,
                    "BucketPolicyStatementsRemoved",
                    "Cleanup",
                    removed,
                )
                .await;
        }
        Ok(None) => {}
        Err(message) if policy.spec.access.is_some() => {
            let owner = bucket_policy::owner_prefix(namespace, &name);
            context
                .base
                .publish(
                    &reference,
                    EventType::Warning,
                    "BucketPolicyStatementsLeft",
                    "Cleanup",
                    format!(
                        "Could not remove the bucket-policy statements {owner}* from bucket {}:                          {message} Remove them by hand (aws s3api get-bucket-policy, then                          put-bucket-policy without them).",
                        bucket.bucket
                    ),
                )
                .await;
        }
        // Without spec.access the credentials need not read bucket policies.
        Err(_) => {}
    }
    context
        .base
        .publish(
            &reference,
            EventType::Normal,
            "LifecycleRulesRemoved",
            "Cleanup",
            format!(
                "Removed the lifecycle rules {owner}* from bucket {}; {} other rule(s) kept. \
             Recordings and published keys stay in the bucket.",
                bucket.bucket, plan.foreign
            ),
        )
        .await;
    Ok(Action::await_change())
}

/// The rules a policy owns, as [`OwnedRule`]s, from a bucket's configuration (for tests and
/// tooling that compare what is on the bucket with the policy).
pub fn owned_rules(rules: &[LifecycleRule], namespace: &str, name: &str) -> Vec<OwnedRule> {
    let owner = lifecycle_rules::owner_prefix(namespace, name);
    rules.iter().filter(|r| lifecycle_rules::is_owned(r, &owner)).map(OwnedRule::from_sdk).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_key_sits_outside_the_recordings_and_reads_as_a_keys_file() {
        let spec: RecordingPolicySpec = serde_json::from_value(serde_json::json!({
            "s3": {"bucket": "audit", "prefix": "agents/", "region": "us-east-1"},
            "retention": {"days": 30},
        }))
        .unwrap();
        let key = B64.encode([7u8; 32]);
        let id = public_key_id(&key).unwrap();
        assert_eq!(id.len(), 16);
        let object = public_key_object(&spec, "team-a", &id);
        assert_eq!(object, format!("agents/keys/team-a/{id}.pub"));
        assert!(!object.starts_with(&lifecycle_rules::recordings_prefix(&spec, "team-a")));
        let file = public_key_file("team-a", &id, &key);
        let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, [key.as_str()]);
        assert_eq!(public_key_id("not base64"), None);
    }
}
