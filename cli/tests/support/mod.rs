//! Sessions recorded the way a gateway records them (with the recording crate's writer, manifest
//! and digest chain), uploaded to moto with the gateway's keys, and the CLI run with the auditor's.

// The audit API's setup, for the tests that read through it (audit_api, console).
#[allow(dead_code)]
pub mod audit_api;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use chaperone_recording::{
    AgentIdentity, AwsCall, Body, Decision, Denied, DigestChain, Effect, EndReason, EventBody,
    Hash256, Manifest, RecordingSigner, Request, Response, SegmentWriter, SessionEnd,
    SessionLocation, SessionStart, Timestamp, Timings, new_session_id,
};
use chaperone_tests::{AwsUser, LocalEnv, aws::REGION, aws::scrub_aws_env};

/// The seed of the fixtures' signing key (a test key).
pub const SIGNING_SEED: [u8; 32] = [42; 32];

pub fn signer() -> RecordingSigner {
    RecordingSigner::from_seed(&SIGNING_SEED)
}

/// The public key that verifies the fixtures, in its published base64 form.
pub fn public_key() -> String {
    chaperone_recording::signing::encode_public_key(&signer().verifying_key())
}

/// The shared local environment. Its kube clients use rustls's process-default provider, which
/// must be named because this binary links both ring (kube) and aws-lc-rs (the AWS SDK).
pub fn environment() -> &'static LocalEnv {
    let _ = rustls::crypto::ring::default_provider().install_default();
    LocalEnv::shared()
}

/// One recorded call.
#[derive(Clone, Debug)]
pub struct Call {
    pub action: &'static str,
    pub resource: &'static str,
    /// The HTTP status of the response; `None` records a policy denial instead.
    pub status: Option<u16>,
}

pub fn call(action: &'static str, resource: &'static str, status: u16) -> Call {
    Call { action, resource, status: Some(status) }
}

pub fn denied(action: &'static str, resource: &'static str) -> Call {
    Call { action, resource, status: None }
}

/// A session to record.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    pub prefix: &'static str,
    pub namespace: &'static str,
    pub connection: &'static str,
    pub service_account: &'static str,
    pub pod: &'static str,
    /// How long ago the session was issued.
    pub age: Duration,
    /// Each replica's calls.
    pub replicas: Vec<(&'static str, Vec<Call>)>,
    /// Calls per segment (each replica cuts a segment after this many).
    pub calls_per_segment: usize,
    /// Still being recorded: no `session.end`, no manifest yet, no final digest.
    pub live: bool,
}

impl SessionSpec {
    pub fn new(
        namespace: &'static str,
        connection: &'static str,
        service_account: &'static str,
    ) -> Self {
        Self {
            prefix: "agents/",
            namespace,
            connection,
            service_account,
            pod: "agent-pod-1",
            age: Duration::from_secs(600),
            replicas: Vec::new(),
            calls_per_segment: 2,
            live: false,
        }
    }

    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    pub fn replica(mut self, name: &'static str, calls: Vec<Call>) -> Self {
        self.replicas.push((name, calls));
        self
    }

    pub fn age(mut self, age: Duration) -> Self {
        self.age = age;
        self
    }
}

/// A recorded session: its id, location and objects (key to bytes).
#[derive(Clone, Debug)]
pub struct RecordedSession {
    pub id: String,
    pub location: SessionLocation,
    pub objects: BTreeMap<String, Vec<u8>>,
}

fn after(start: Timestamp, millis: u64) -> Timestamp {
    start.checked_add(Duration::from_millis(millis)).expect("fixture time is representable")
}

/// Records a session: closed (every replica ended with `expired`, manifest and final digest), or
/// live (segments and digests only).
pub fn record(spec: &SessionSpec) -> RecordedSession {
    let issued = Timestamp::now().checked_sub(spec.age).expect("fixture time is representable");
    let id = new_session_id(issued);
    let location =
        SessionLocation::from_session_id(spec.prefix, spec.namespace, spec.connection, &id)
            .expect("fixture location is valid");
    let signer = signer();
    let start = SessionStart {
        connection: spec.connection.into(),
        agent: AgentIdentity {
            namespace: spec.namespace.into(),
            service_account: spec.service_account.into(),
            pod_name: spec.pod.into(),
            pod_uid: "0d6c5e4f-uid".into(),
            role_session_name: spec.service_account.into(),
        },
        credentials_expire: after(issued, 3_600_000),
    };
    let mut objects = BTreeMap::new();
    for (r, (replica, calls)) in spec.replicas.iter().enumerate() {
        let stream = location.stream(replica).expect("fixture replica name is valid");
        let mut writer = SegmentWriter::new(&id, replica);
        // Replicas interleave: replica r records at r*100 ms past each second.
        let mut clock = r as u64 * 100;
        let started = after(issued, clock);
        let mut manifest = Manifest::new(&stream, &start, started, writer.head());
        let mut digests = DigestChain::new(&stream, started);
        writer.append(started, EventBody::SessionStart(start.clone())).expect("append");
        let chunks: Vec<&[Call]> = calls.chunks(spec.calls_per_segment.max(1)).collect();
        let chunk_count = chunks.len().max(1);
        for segment in 0..chunk_count {
            for (i, c) in chunks.get(segment).copied().unwrap_or_default().iter().enumerate() {
                clock += 1000;
                let call_id = format!("{replica}-{segment}-{i}");
                record_call(&mut writer, after(issued, clock), &call_id, c);
            }
            let last = segment + 1 == chunk_count && !spec.live;
            if last {
                clock += 1000;
                writer
                    .append(
                        after(issued, clock),
                        EventBody::SessionEnd(SessionEnd { reason: EndReason::Expired }),
                    )
                    .expect("append");
            }
            let finished = writer.finish_segment().expect("segment").expect("segment holds events");
            objects.insert(stream.segment_key(finished.index), finished.bytes.clone());
            manifest.add_segment(finished.entry.clone());
            digests.record_segment(finished.entry);
            if last {
                manifest.close(EndReason::Expired, after(issued, clock));
                let bytes = manifest.sign(&signer, after(issued, clock)).expect("manifest signs");
                digests.record_manifest(Hash256::of(&bytes));
                objects.insert(stream.manifest_key(), bytes);
            }
            clock += 10;
            let digest = digests.emit(after(issued, clock), last, &signer).expect("digest signs");
            objects.insert(stream.digest_key(digest.n), digest.bytes);
        }
    }
    RecordedSession { id, location, objects }
}

fn record_call(writer: &mut SegmentWriter, at: Timestamp, call_id: &str, call: &Call) {
    let (service, operation) = call.action.split_once(':').expect("actions are service:Operation");
    let aws = AwsCall {
        service: service.into(),
        operation: operation.into(),
        actions: vec![call.action.into()],
        resources: vec![call.resource.into()],
    };
    let method = if operation.starts_with("Delete") { "DELETE" } else { "POST" };
    match call.status {
        Some(status) => {
            let request = Request {
                call: call_id.into(),
                method: method.into(),
                path: "/".into(),
                query: vec![],
                headers: vec![("host".into(), "gateway:8080".into())],
                body: Body::empty(),
                aws,
                decision: Decision {
                    effect: Effect::Allow,
                    object: Some("AgentConnection/ns/conn".into()),
                    rule: Some("policy.allow[0]".into()),
                },
                timings: Timings { decide_us: Some(40), ..Timings::default() },
                redacted: vec![],
            };
            writer.append(at, EventBody::Request(request)).expect("append");
            let response = Response {
                call: call_id.into(),
                status: Some(status),
                headers: vec![],
                body: Body::empty(),
                timings: Timings { total_us: Some(2_500), ..Timings::default() },
                upstream_error: None,
                redacted: vec![],
                request_body: None,
            };
            writer.append(at, EventBody::Response(response)).expect("append");
        }
        None => {
            let denied = Denied {
                call: call_id.into(),
                method: method.into(),
                path: "/".into(),
                query: vec![],
                headers: vec![],
                body: Body::empty(),
                aws,
                decision: Decision {
                    effect: Effect::Deny,
                    object: Some("AgentConnection/ns/conn".into()),
                    rule: Some("policy.deny[0]: iam:*".into()),
                },
                timings: Timings::default(),
                status: 403,
                error_code: "AccessDenied".into(),
                message: "denied by policy.deny[0]".into(),
                redacted: vec![],
            };
            writer.append(at, EventBody::Denied(denied)).expect("append");
        }
    }
}

/// An S3 client for moto with `user`'s keys.
pub fn s3_client(env: &LocalEnv, user: &AwsUser) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(env.moto.endpoint())
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            user.access_key_id.clone(),
            user.secret_access_key.clone(),
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The gateway's writes: creates `bucket` and uploads every object of `sessions`.
pub async fn upload(env: &LocalEnv, bucket: &str, sessions: &[&RecordedSession]) {
    let s3 = s3_client(env, &env.moto.gateway_user);
    s3.create_bucket().bucket(bucket).send().await.expect("the gateway creates the bucket");
    for session in sessions {
        for (key, bytes) in &session.objects {
            put(&s3, bucket, key, bytes.clone()).await;
        }
    }
}

pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .expect("the gateway uploads");
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `kubectl-chaperone` with `user`'s keys as its only AWS settings.
pub fn run_as(user: &AwsUser, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-chaperone"));
    scrub_aws_env(&mut command);
    command
        .env("AWS_ACCESS_KEY_ID", &user.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &user.secret_access_key)
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("KUBECONFIG")
        .args(args);
    command.output().expect("kubectl-chaperone runs").into()
}

/// Runs `kubectl-chaperone` as the auditor against `bucket` at moto, with the fixtures' prefix.
pub fn auditor(env: &LocalEnv, bucket: &str, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--bucket", bucket, "--prefix", "agents/", "--endpoint-url", env.moto.endpoint()]);
    run_as(&env.moto.auditor_user, &all)
}

/// A bucket name no other test uses.
pub fn bucket_name(test: &str) -> String {
    let nanos = Timestamp::now().unix_nanos() % 1_000_000_000;
    format!("cli-{test}-{nanos}").chars().take(63).collect()
}

const CREATE_USER_WITHOUT_POLICY: &str = r#"
import json, sys, boto3
endpoint, key, secret, name = sys.argv[1:5]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
iam.create_user(UserName=name)
k = iam.create_access_key(UserName=name)["AccessKey"]
print(json.dumps({"user": name, "accessKeyId": k["AccessKeyId"], "secretAccessKey": k["SecretAccessKey"]}))
"#;

/// A new IAM user in moto with no policy at all: every S3 call it makes is denied.
pub fn user_without_permissions(env: &LocalEnv, name: &str) -> AwsUser {
    let gateway = &env.moto.gateway_user;
    let output = env
        .moto
        .python_command()
        .args([
            "-c",
            CREATE_USER_WITHOUT_POLICY,
            env.moto.endpoint(),
            &gateway.access_key_id,
            &gateway.secret_access_key,
            name,
        ])
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the script prints the new user's keys")
}
