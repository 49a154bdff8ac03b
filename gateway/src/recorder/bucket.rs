//! The recording bucket of one connection: an S3 client configured from the RecordingPolicy and
//! the recorder's own credentials, and the PUT of one recording object with the policy's
//! checksum, Object Lock and encryption headers.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode, ServerSideEncryption};
use base64::Engine as _;
use chaperone_crds::ObjectLockMode as PolicyLockMode;
use chaperone_crds::RecordingPolicySpec;
use chaperone_recording::Hash256;

use chaperone_config::UpstreamCredentials;

/// Which kind of recording object is being written (sets its content type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `NNNNNN.jsonl.zst`.
    Segment,
    /// `_manifest.json` or `_digests/NNNNNN.json`.
    SignedJson,
}

/// The gateway's own AWS credentials, for RecordingPolicies that name none: the AWS SDK's default
/// chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, web identity as IRSA injects it, EKS Pod
/// Identity and other container credentials, the shared config files, then the instance
/// metadata service), built on first use. Each bucket's client caches what it returns and
/// refreshes it before it expires.
pub fn ambient_credentials() -> SharedCredentialsProvider {
    static AMBIENT: OnceLock<SharedCredentialsProvider> = OnceLock::new();
    AMBIENT.get_or_init(|| SharedCredentialsProvider::new(LazyDefaultChain::default())).clone()
}

/// [`DefaultCredentialsChain`], whose construction is async, made on the first call.
#[derive(Debug, Default)]
struct LazyDefaultChain(tokio::sync::OnceCell<DefaultCredentialsChain>);

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self.0.get_or_init(|| DefaultCredentialsChain::builder().build()).await;
            chain.provide_credentials().await
        })
    }
}

/// Writes recording objects to one RecordingPolicy's bucket.
#[derive(Clone, Debug)]
pub struct RecordingBucket {
    client: aws_sdk_s3::Client,
    policy: RecordingPolicySpec,
}

impl RecordingBucket {
    /// A client for `policy`'s bucket. Without `credentials`, the gateway's ambient credentials
    /// ([`ambient_credentials`]).
    pub fn new(policy: &RecordingPolicySpec, credentials: Option<&UpstreamCredentials>) -> Self {
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(policy.s3.region.clone()))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(100)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        let credentials = match credentials {
            Some(c) => SharedCredentialsProvider::new(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.0.clone(),
                c.session_token.as_ref().map(|t| t.0.clone()),
                None,
                "chaperone-recording-policy",
            )),
            None => ambient_credentials(),
        };
        config = config.credentials_provider(credentials);
        if let Some(endpoint) = &policy.s3.endpoint {
            config = config.endpoint_url(endpoint.clone()).force_path_style(true);
        }
        Self { client: aws_sdk_s3::Client::from_conf(config.build()), policy: policy.clone() }
    }

    /// The policy this bucket was built from.
    pub fn policy(&self) -> &RecordingPolicySpec {
        &self.policy
    }

    /// PUTs one object into `bucket` (the stream's, fixed when it opened) with a SHA-256
    /// checksum, and the policy's Object Lock and encryption. The error is the SDK's full
    /// message (it never contains credentials).
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: bytes::Bytes,
        kind: ObjectKind,
    ) -> Result<(), String> {
        let checksum =
            base64::engine::general_purpose::STANDARD.encode(Hash256::of(&bytes).as_bytes());
        let mut put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            // Our own value: the SDK then computes nothing, and S3 checks it (Object Lock needs
            // a checksum or Content-MD5 on every PUT).
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .content_type(match kind {
                ObjectKind::Segment => "application/zstd",
                ObjectKind::SignedJson => "application/json",
            })
            .body(ByteStream::from(bytes));
        if let Some(lock) = &self.policy.object_lock {
            let days = u64::try_from(lock.days.max(1)).unwrap_or(1);
            let until = SystemTime::now() + Duration::from_secs(days * 86_400);
            put = put
                .object_lock_mode(match lock.mode {
                    PolicyLockMode::Compliance => ObjectLockMode::Compliance,
                    PolicyLockMode::Governance => ObjectLockMode::Governance,
                })
                .object_lock_retain_until_date(DateTime::from(until));
        }
        if let Some(sse) = &self.policy.s3.server_side_encryption {
            put = match &sse.kms_key_id {
                Some(key_id) => {
                    put.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(key_id)
                }
                None => put.server_side_encryption(ServerSideEncryption::Aes256),
            };
        }
        put.send().await.map(|_| ()).map_err(|e| DisplayErrorContext(e).to_string())
    }
}
