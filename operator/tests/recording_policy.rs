//! The RecordingPolicy controller against the real API server and moto's S3 (signature checks
//! on): the bucket's lifecycle configuration follows the policy and keeps the rules the operator
//! does not own, the recording public keys land in the bucket, and a bucket that is missing,
//! unreachable or without Object Lock shows a condition that says what to do; `spec.access`
//! locks the direct S3 path down (bucket-policy statements merged with others', Block Public
//! Access, access logging), read back from moto as applied.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_sdk_s3::{
    Client as S3Client,
    config::{BehaviorVersion, Credentials, Region},
    types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter,
    },
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chaperone_crds::{AgentConnection, RecordingPolicy};
use chaperone_operator::{
    OperatorMetrics,
    recording_policy::bucket_policy::{
        DENY_DELETES, DENY_INSECURE_TRANSPORT, DENY_READS_BUT_READERS, DENY_WRITES_BUT_GATEWAY,
    },
    recording_policy::controller::{
        self, Context, FINALIZER, owned_rules, public_key_id, public_key_object,
    },
    recording_policy::lifecycle_rules::{self, OwnedRule},
    recording_policy::lockdown::owned_statements,
};
use chaperone_tests::{
    LocalEnv,
    env::install_crds,
    objects::{create_in, ensure_namespace, example, set},
    ports::free_port,
};
use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

fn env() -> &'static LocalEnv {
    chaperone_operator::runtime::tls::install_crypto_provider();
    LocalEnv::shared()
}

async fn admin_client() -> Client {
    let client = env().control_plane.client().await.expect("admin client");
    install_crds(&client).await.expect("CRDs install and become Established");
    client
}

/// The controller running in-process, limited to one namespace.
struct RunningController {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningController {
    fn start(client: &Client, namespace: &str) -> Self {
        let context = Arc::new(Context::new(client.clone(), Arc::new(OperatorMetrics::new())));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(context, Some(namespace.to_owned()), async move {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after 90 s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An S3 client for moto with the gateway user's keys (the same the recorder Secret holds).
fn s3() -> S3Client {
    let env = env();
    let user = &env.moto.gateway_user;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            &user.access_key_id,
            &user.secret_access_key,
            None,
            None,
            "test",
        ))
        .endpoint_url(env.moto.endpoint())
        .force_path_style(true)
        .build();
    S3Client::from_conf(config)
}

async fn create_bucket(bucket: &str, object_lock: bool) {
    let mut create = s3().create_bucket().bucket(bucket);
    if object_lock {
        create = create.object_lock_enabled_for_bucket(true);
    }
    create.send().await.unwrap_or_else(|e| panic!("creating bucket {bucket}: {e:?}"));
}

async fn lifecycle_rules_of(bucket: &str) -> Vec<LifecycleRule> {
    match s3().get_bucket_lifecycle_configuration().bucket(bucket).send().await {
        Ok(output) => output.rules().to_vec(),
        Err(error) => {
            let text = format!("{error:?}");
            assert!(text.contains("NoSuchLifecycleConfiguration"), "{text}");
            Vec::new()
        }
    }
}

fn foreign_rule() -> LifecycleRule {
    LifecycleRule::builder()
        .id("team-logs-expire")
        .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(7).build())
        .build()
        .unwrap()
}

/// A namespace with the `recorder` Secret holding moto's keys.
async fn namespace_with_recorder_secret(client: &Client, namespace: &str) {
    ensure_namespace(client, namespace).await.unwrap();
    let user = &env().moto.gateway_user;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "recorder"},
        "stringData": {
            "AWS_ACCESS_KEY_ID": user.access_key_id,
            "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
        },
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// `examples/recordingpolicy.yaml` named `name`, at moto, with `bucket`.
async fn create_policy(
    client: &Client,
    namespace: &str,
    name: &str,
    bucket: &str,
    change: impl FnOnce(&mut Value),
) {
    let mut policy = example("recordingpolicy").unwrap();
    set(&mut policy, "/metadata/name", json!(name));
    set(&mut policy, "/spec/s3/bucket", json!(bucket));
    set(&mut policy, "/spec/s3/endpoint", json!(env().moto.endpoint()));
    change(&mut policy);
    create_in(client, namespace, &policy)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("RecordingPolicy {name} refused: {e}"));
}

fn condition(policy: &RecordingPolicy, type_: &str) -> Option<Condition> {
    policy.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).cloned()
}

/// Waits until `name`'s status describes its current generation with `type_` at `status`.
async fn wait_for_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> Condition {
    let api: Api<RecordingPolicy> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("{type_}={status} on RecordingPolicy {namespace}/{name}"), || async {
        let policy = api.get(name).await.ok()?;
        let observed = policy.status.as_ref()?.observed_generation;
        let found = condition(&policy, type_)?;
        (observed == policy.metadata.generation && found.status == status).then_some(found)
    })
    .await
}

fn wanted_rule(namespace: &str, name: &str, policy: &RecordingPolicy) -> OwnedRule {
    lifecycle_rules::desired_rule(namespace, name, &policy.spec).unwrap()
}

#[tokio::test]
async fn the_buckets_lifecycle_follows_the_policy_and_a_rule_the_operator_does_not_own_survives() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "recpol-lifecycle";
    let bucket = "recpol-lifecycle-audit";
    namespace_with_recorder_secret(&client, ns).await;
    create_bucket(bucket, false).await;
    s3().put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder().rules(foreign_rule()).build().unwrap(),
        )
        .send()
        .await
        .unwrap();
    create_policy(&client, ns, "default", bucket, |_| {}).await;
    let controller = RunningController::start(&client, ns);

    let ready = wait_for_condition(&client, ns, "default", "Ready", "True").await;
    assert!(ready.message.contains(&format!("s3://{bucket}/agents/v1/{ns}/")), "{}", ready.message);
    let api: Api<RecordingPolicy> = Api::namespaced(client.clone(), ns);
    let policy = api.get("default").await.unwrap();
    assert!(policy.finalizers().iter().any(|f| f == FINALIZER));
    let rules = lifecycle_rules_of(bucket).await;
    assert!(rules.contains(&foreign_rule()), "the foreign rule is kept as it was: {rules:?}");
    let owned = owned_rules(&rules, ns, "default");
    let wanted = wanted_rule(ns, "default", &policy);
    assert_eq!(owned, std::slice::from_ref(&wanted), "moto holds exactly the policy's rule");
    assert_eq!(wanted.expiration_days, 400);
    assert_eq!(wanted.transitions, [(30, "GLACIER_IR".to_owned())]);
    assert_eq!(wanted.prefix, format!("agents/v1/{ns}/"));
    assert_eq!(condition(&policy, "LifecycleApplied").unwrap().reason, "Applied");
    assert_eq!(condition(&policy, "ObjectLockVerified").unwrap().reason, "NotRequested");

    // A second reconcile of the unchanged policy changes nothing: not the bucket, not the status.
    let context = Arc::new(Context::new(client.clone(), Arc::new(OperatorMetrics::new())));
    controller::reconcile(Arc::new(policy.clone()), context).await.unwrap();
    let again = api.get("default").await.unwrap();
    assert_eq!(again.resource_version(), policy.resource_version());
    let plan = lifecycle_rules::merge(
        &lifecycle_rules_of(bucket).await,
        &lifecycle_rules::owner_prefix(ns, "default"),
        std::slice::from_ref(&wanted),
    );
    assert!(!plan.changed);

    // Changing the retention changes the rule, and only it.
    api.patch(
        "default",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"retention": {"days": 90, "transitions": [{"days": 60, "storageClass": "STANDARD_IA"}]}}})),
    )
    .await
    .unwrap();
    let rules = eventually("the rule with 90 days", || async {
        let rules = lifecycle_rules_of(bucket).await;
        owned_rules(&rules, ns, "default")
            .first()
            .is_some_and(|r| r.expiration_days == 90)
            .then_some(rules)
    })
    .await;
    let owned = owned_rules(&rules, ns, "default");
    assert_eq!(owned[0].transitions, [(60, "STANDARD_IA".to_owned())]);
    assert!(rules.contains(&foreign_rule()), "{rules:?}");
    wait_for_condition(&client, ns, "default", "Ready", "True").await;

    // Deleting the policy removes its rule and keeps the foreign one.
    api.delete("default", &DeleteParams::default()).await.unwrap();
    eventually("the policy to be gone", || async {
        api.get_opt("default").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(lifecycle_rules_of(bucket).await, [foreign_rule()]);
    controller.stop().await;
}

#[tokio::test]
async fn the_recording_public_keys_of_the_connections_using_the_policy_are_published_in_the_bucket()
{
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "recpol-keys";
    let bucket = "recpol-keys-audit";
    namespace_with_recorder_secret(&client, ns).await;
    create_bucket(bucket, false).await;
    create_policy(&client, ns, "default", bucket, |_| {}).await;
    create_in(&client, ns, &example("agentconnection").unwrap()).await.unwrap().unwrap();
    let controller = RunningController::start(&client, ns);
    let nokeys = wait_for_condition(&client, ns, "default", "PublicKeysPublished", "True").await;
    assert_eq!(nokeys.reason, "NoKeysYet");

    // The AgentConnection controller publishes the gateway's keys in the connection's status.
    let key = B64.encode([42u8; 32]);
    Api::<AgentConnection>::namespaced(client.clone(), ns)
        .patch_status(
            "prod-aws",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"recordingPublicKeys": [key]}})),
        )
        .await
        .unwrap();
    let published = eventually("the key in the bucket", || async {
        let api: Api<RecordingPolicy> = Api::namespaced(client.clone(), ns);
        let policy = api.get("default").await.ok()?;
        let c = condition(&policy, "PublicKeysPublished")?;
        (c.reason == "Published").then_some(c)
    })
    .await;
    let policy: RecordingPolicy = Api::namespaced(client.clone(), ns).get("default").await.unwrap();
    let id = public_key_id(&key).unwrap();
    let object = public_key_object(&policy.spec, ns, &id);
    assert!(published.message.contains(&object), "{}", published.message);
    let body = s3().get_object().bucket(bucket).key(&object).send().await.unwrap();
    let text = String::from_utf8(body.body.collect().await.unwrap().to_vec()).unwrap();
    let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(keys, [key.as_str()], "the object reads as a --public-keys-file");
    controller.stop().await;
}

#[tokio::test]
async fn a_missing_bucket_an_unreachable_endpoint_and_a_missing_secret_each_say_what_to_do() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "recpol-problems";
    namespace_with_recorder_secret(&client, ns).await;
    create_policy(&client, ns, "missing-bucket", "recpol-not-created-yet", |_| {}).await;
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    create_policy(&client, ns, "dead-endpoint", "recpol-problems-audit", |p| {
        set(p, "/spec/s3/endpoint", json!(dead));
    })
    .await;
    create_policy(&client, ns, "no-secret", "recpol-problems-audit", |p| {
        set(p, "/spec/s3/credentials/secretRef/name", json!("nowhere"));
    })
    .await;
    let controller = RunningController::start(&client, ns);

    let missing = wait_for_condition(&client, ns, "missing-bucket", "Ready", "False").await;
    assert_eq!(missing.reason, "BucketNotFound", "{}", missing.message);
    assert!(
        missing.message.contains("Bucket recpol-not-created-yet does not exist")
            && missing.message.contains("create it"),
        "{}",
        missing.message
    );
    let lifecycle =
        wait_for_condition(&client, ns, "missing-bucket", "LifecycleApplied", "False").await;
    assert_eq!(lifecycle.reason, "BucketUnreachable");

    let unreachable =
        wait_for_condition(&client, ns, "dead-endpoint", "BucketReachable", "False").await;
    assert_eq!(unreachable.reason, "EndpointUnreachable", "{}", unreachable.message);
    assert!(
        unreachable.message.contains(&dead) && unreachable.message.contains("spec.s3.endpoint"),
        "{}",
        unreachable.message
    );

    let secret = wait_for_condition(&client, ns, "no-secret", "Ready", "False").await;
    assert_eq!(secret.reason, "CredentialsSecretNotFound", "{}", secret.message);
    assert!(
        secret.message.contains(&format!("Secret {ns}/nowhere"))
            && secret.message.contains("kubectl -n recpol-problems create secret generic nowhere"),
        "{}",
        secret.message
    );

    // Creating the bucket is what it took.
    create_bucket("recpol-not-created-yet", false).await;
    wait_for_condition(&client, ns, "missing-bucket", "Ready", "True").await;
    controller.stop().await;
}

#[tokio::test]
async fn object_lock_asked_for_on_a_bucket_without_it_gives_a_condition_saying_what_to_enable() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "recpol-object-lock";
    namespace_with_recorder_secret(&client, ns).await;
    create_bucket("recpol-unlocked", false).await;
    create_bucket("recpol-locked", true).await;
    let lock =
        |p: &mut Value| set(p, "/spec/objectLock", json!({"mode": "Governance", "days": 30}));
    create_policy(&client, ns, "unlocked", "recpol-unlocked", lock).await;
    create_policy(&client, ns, "locked", "recpol-locked", lock).await;
    let controller = RunningController::start(&client, ns);

    let refused = wait_for_condition(&client, ns, "unlocked", "ObjectLockVerified", "False").await;
    assert_eq!(refused.reason, "ObjectLockNotEnabled", "{}", refused.message);
    assert!(
        refused.message.contains("recpol-unlocked")
            && refused.message.contains("put-object-lock-configuration")
            && refused.message.contains("remove spec.objectLock"),
        "{}",
        refused.message
    );
    let ready = wait_for_condition(&client, ns, "unlocked", "Ready", "False").await;
    assert_eq!(ready.reason, "ObjectLockNotEnabled");
    // The lifecycle rule is applied all the same.
    wait_for_condition(&client, ns, "unlocked", "LifecycleApplied", "True").await;

    let verified = wait_for_condition(&client, ns, "locked", "ObjectLockVerified", "True").await;
    assert_eq!(verified.reason, "Verified", "{}", verified.message);
    wait_for_condition(&client, ns, "locked", "Ready", "True").await;
    controller.stop().await;
}

/// A statement someone else added to the bucket's policy by hand.
fn team_audit_read(bucket: &str) -> Value {
    json!({
        "Sid": "TeamAuditRead",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:role/team-audit"},
        "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/reports/*"),
    })
}

/// The bucket's policy as JSON (`None`: it has none).
async fn bucket_policy_of(bucket: &str) -> Option<Value> {
    match s3().get_bucket_policy().bucket(bucket).send().await {
        Ok(output) => Some(serde_json::from_str(output.policy().unwrap()).unwrap()),
        Err(error) => {
            let text = format!("{error:?}");
            assert!(text.contains("NoSuchBucketPolicy"), "{text}");
            None
        }
    }
}

/// The owned statement named `name` (after the owner prefix).
fn owned<'a>(statements: &'a [Value], name: &str) -> &'a Value {
    statements
        .iter()
        .find(|s| s["Sid"].as_str().is_some_and(|sid| sid.ends_with(name)))
        .unwrap_or_else(|| panic!("no {name} statement in {statements:#?}"))
}

/// The ARNs a condition names under `ArnNotLike` `aws:PrincipalArn`, as a list.
fn principals(statement: &Value) -> Vec<String> {
    match &statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        other => panic!("no aws:PrincipalArn condition: {other}"),
    }
}

/// The identity moto's STS says the recorder's keys belong to.
async fn recorder_arn() -> String {
    let user = &env().moto.gateway_user;
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            &user.access_key_id,
            &user.secret_access_key,
            None,
            None,
            "test",
        ))
        .endpoint_url(env().moto.endpoint())
        .build();
    let identity =
        aws_sdk_sts::Client::from_conf(config).get_caller_identity().send().await.unwrap();
    identity.arn().unwrap().to_owned()
}

/// A bucket that lets S3's logging service deliver access logs into it.
async fn create_log_bucket(bucket: &str) {
    create_bucket(bucket, false).await;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "S3ServerAccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
        }],
    });
    s3().put_bucket_policy().bucket(bucket).policy(policy.to_string()).send().await.unwrap();
}

#[tokio::test]
async fn access_locks_the_bucket_down_and_a_statement_the_operator_does_not_own_survives() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "recpol-lockdown";
    let bucket = "recpol-lockdown-audit";
    let logs = "recpol-lockdown-logs";
    let auditor = "arn:aws:iam::123456789012:role/auditor";
    let second = "arn:aws:iam::123456789012:user/second-auditor";
    namespace_with_recorder_secret(&client, ns).await;
    create_bucket(bucket, false).await;
    create_log_bucket(logs).await;
    let hand_written = json!({"Version": "2012-10-17", "Statement": [team_audit_read(bucket)]});
    s3().put_bucket_policy().bucket(bucket).policy(hand_written.to_string()).send().await.unwrap();
    create_policy(&client, ns, "default", bucket, |p| {
        set(
            p,
            "/spec/access",
            json!({"readers": [auditor], "accessLogging": {"targetBucket": logs}}),
        );
    })
    .await;
    let controller = RunningController::start(&client, ns);

    let locked = wait_for_condition(&client, ns, "default", "BucketLockedDown", "True").await;
    assert_eq!(locked.reason, "Applied", "{}", locked.message);
    assert!(
        locked.message.contains(auditor)
            && locked.message.contains(&format!("s3://{logs}/chaperone-access/"))
            && locked.message.contains("Block Public Access"),
        "{}",
        locked.message
    );
    wait_for_condition(&client, ns, "default", "Ready", "True").await;

    // The bucket policy: the hand-written statement first, as it was, then the policy's own.
    let writer = recorder_arn().await;
    assert_eq!(writer, format!("arn:aws:iam::123456789012:user/{}", env().moto.gateway_user.user));
    let policy = bucket_policy_of(bucket).await.expect("a bucket policy");
    let statements = policy["Statement"].as_array().unwrap().clone();
    assert_eq!(statements[0], team_audit_read(bucket), "{policy:#}");
    let ours = owned_statements(&policy.to_string(), ns, "default");
    assert_eq!(ours.len(), 4, "{policy:#}");
    assert_eq!(statements.len(), 5, "{policy:#}");
    let objects = format!("arn:aws:s3:::{bucket}/agents/v1/{ns}/*");
    let tls = owned(&ours, DENY_INSECURE_TRANSPORT);
    assert_eq!(tls["Condition"]["Bool"]["aws:SecureTransport"], "false");
    assert_eq!(tls["Resource"], json!([format!("arn:aws:s3:::{bucket}"), objects]));
    let writes = owned(&ours, DENY_WRITES_BUT_GATEWAY);
    assert_eq!(principals(writes), std::slice::from_ref(&writer));
    assert_eq!(writes["Resource"], objects);
    let reads = owned(&ours, DENY_READS_BUT_READERS);
    assert_eq!(principals(reads), [auditor.to_owned(), writer.clone()]);
    let deletes = owned(&ours, DENY_DELETES);
    assert_eq!(deletes["Action"], json!(["s3:DeleteObject", "s3:DeleteObjectVersion"]));
    assert!(ours.iter().all(|s| s["Effect"] == "Deny" && s["Principal"] == "*"));

    let block = s3().get_public_access_block().bucket(bucket).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        [
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ],
        [Some(true); 4]
    );
    let logging = s3().get_bucket_logging().bucket(bucket).send().await.unwrap();
    let logging = logging.logging_enabled().expect("access logging on");
    assert_eq!((logging.target_bucket(), logging.target_prefix()), (logs, "chaperone-access/"));

    // A second reconcile of the unchanged policy writes nothing.
    let api: Api<RecordingPolicy> = Api::namespaced(client.clone(), ns);
    let current = api.get("default").await.unwrap();
    let context = Arc::new(Context::new(client.clone(), Arc::new(OperatorMetrics::new())));
    controller::reconcile(Arc::new(current.clone()), context).await.unwrap();
    assert_eq!(bucket_policy_of(bucket).await.unwrap(), policy);
    assert_eq!(api.get("default").await.unwrap().resource_version(), current.resource_version());

    // A reader added: the policy's statements change, the hand-written one stays.
    api.patch(
        "default",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"access": {"readers": [auditor, second]}}})),
    )
    .await
    .unwrap();
    let policy = eventually("the second reader in the bucket policy", || async {
        let policy = bucket_policy_of(bucket).await?;
        let ours = owned_statements(&policy.to_string(), ns, "default");
        ours.iter()
            .any(|s| {
                s["Sid"].as_str().unwrap().ends_with(DENY_READS_BUT_READERS)
                    && principals(s).iter().any(|p| p == second)
            })
            .then_some(policy)
    })
    .await;
    assert_eq!(policy["Statement"][0], team_audit_read(bucket), "{policy:#}");
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 5, "{policy:#}");
    wait_for_condition(&client, ns, "default", "BucketLockedDown", "True").await;

    // Deleting the policy removes its statements only.
    api.delete("default", &DeleteParams::default()).await.unwrap();
    eventually("the policy to be gone", || async {
        api.get_opt("default").await.unwrap().is_none().then_some(())
    })
    .await;
    let left = bucket_policy_of(bucket).await.expect("the hand-written statement's policy");
    assert_eq!(left["Statement"], json!([team_audit_read(bucket)]), "{left:#}");
    controller.stop().await;
}

#[tokio::test]
async fn lockdown_problems_leave_ready_alone_and_say_what_could_not_be_applied() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "recpol-lockdown-problems";
    let logs = "recpol-lockdown-problems-logs";
    namespace_with_recorder_secret(&client, ns).await;
    create_log_bucket(logs).await;
    create_bucket("recpol-lockdown-unmanaged", false).await;
    create_bucket("recpol-lockdown-conflict", false).await;
    // The bucket already logs elsewhere: the operator must not overwrite it.
    s3().put_bucket_logging()
        .bucket("recpol-lockdown-conflict")
        .bucket_logging_status(
            aws_sdk_s3::types::BucketLoggingStatus::builder()
                .logging_enabled(
                    aws_sdk_s3::types::LoggingEnabled::builder()
                        .target_bucket(logs)
                        .target_prefix("security-team/")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    create_policy(&client, ns, "unmanaged", "recpol-lockdown-unmanaged", |_| {}).await;
    create_policy(&client, ns, "conflict", "recpol-lockdown-conflict", |p| {
        set(p, "/spec/access", json!({"accessLogging": {"targetBucket": logs}}));
    })
    .await;
    // A session ARN as a reader is refused at admission, naming the role to give instead.
    let mut session_reader = example("recordingpolicy").unwrap();
    set(&mut session_reader, "/metadata/name", json!("session-reader"));
    set(
        &mut session_reader,
        "/spec/access",
        json!({"readers": ["arn:aws:sts::123456789012:assumed-role/auditor/alice"]}),
    );
    let refused = create_in(&client, ns, &session_reader).await.unwrap().unwrap_err().to_string();
    assert!(
        refused.contains("spec.access.readers") && refused.contains("give the role's ARN"),
        "{refused}"
    );
    let controller = RunningController::start(&client, ns);

    let unmanaged = wait_for_condition(&client, ns, "unmanaged", "BucketLockedDown", "False").await;
    assert_eq!(unmanaged.reason, "NotManaged", "{}", unmanaged.message);
    assert!(unmanaged.message.contains("Set spec.access"), "{}", unmanaged.message);
    assert_eq!(bucket_policy_of("recpol-lockdown-unmanaged").await, None, "nothing written");
    wait_for_condition(&client, ns, "unmanaged", "Ready", "True").await;

    let conflict = wait_for_condition(&client, ns, "conflict", "BucketLockedDown", "False").await;
    assert_eq!(conflict.reason, "LoggingConflict", "{}", conflict.message);
    assert!(
        conflict.message.contains(&format!("s3://{logs}/security-team/"))
            && conflict.message.contains("does not overwrite")
            && conflict.message.contains("Applied: bucket-policy statements"),
        "{}",
        conflict.message
    );
    let logging =
        s3().get_bucket_logging().bucket("recpol-lockdown-conflict").send().await.unwrap();
    assert_eq!(logging.logging_enabled().unwrap().target_prefix(), "security-team/");
    // What could be applied was.
    let policy = bucket_policy_of("recpol-lockdown-conflict").await.expect("the statements");
    assert_eq!(owned_statements(&policy.to_string(), ns, "conflict").len(), 4);
    wait_for_condition(&client, ns, "conflict", "Ready", "True").await;
    controller.stop().await;
}
