//! Changing an AgentConnection's policy changes the config Secret the operator renders, and a
//! running gateway process started from that Secret enforces the change within seconds, while a
//! call that was in flight when the configuration changed completes unharmed.
//!
//! No kubelet runs here: the harness plays its part, writing the Secret's `gateway.yaml` to the
//! gateway's config file at start and again after the change (as the kubelet refreshes a mounted
//! Secret), with the cluster-only paths pointed at local copies.

use std::{
    io::{BufRead, BufReader, Write},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_sdk_s3::{
    Client as S3Client,
    config::{BehaviorVersion, Credentials, Region},
};
use chaperone_config::GatewayConfig;
use chaperone_crds::AgentConnection;
use chaperone_operator::{
    Context, GatewaySettings, OperatorMetrics,
    gateway::controller,
    gateway::objects::{CONFIG_SECRET_KEY, CONFIG_SECRET_NAME, KEYS_SECRET_KEY, KEYS_SECRET_NAME},
};
use chaperone_tests::{
    LocalEnv,
    env::install_crds,
    gateway::{GatewayProcess, aws_cli, create_bucket},
    objects::{create_in, ensure_namespace, example, set},
    paths::workspace_binary,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::sync::oneshot;

const NAMESPACE: &str = "reload-e2e";
const DATA_BUCKET: &str = "reload-data";
/// The in-flight upload's size; half is sent before the policy changes, half after.
const UPLOAD_BYTES: usize = 6 * 1024 * 1024;

/// A PUT that the agent starts, then holds open half-sent until told to finish: signed by botocore
/// with the agent's session credentials from the gateway's STS, sent with `http.client` so the
/// body can pause. Prints `in-flight` once half the body is sent, reads a line from stdin, sends
/// the rest and prints the response as JSON.
const HELD_PUT: &str = r#"
import http.client, json, os, sys, urllib.parse
import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
endpoint, bucket, key, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = boto3.client("sts").assume_role_with_web_identity(
    RoleArn=os.environ["AWS_ROLE_ARN"], RoleSessionName="held-upload",
    WebIdentityToken=open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]).read())["Credentials"]
credentials = Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
half = size // 2
body = b"a" * half + b"b" * (size - half)
# Signed over the whole body's sha256 (the gateway checks a streamed body against it).
request = AWSRequest(method="PUT", url=f"{endpoint}/{bucket}/{key}", data=body,
    headers={"Content-Length": str(size)})
S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
url = urllib.parse.urlsplit(endpoint)
if url.scheme == "https":
    import ssl
    tls = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
    conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=120, context=tls)
else:
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
conn.putrequest("PUT", f"/{bucket}/{key}", skip_accept_encoding=True)
for name, value in request.headers.items():
    conn.putheader(name, value)
conn.endheaders()
conn.send(body[:half])
print("in-flight", flush=True)
sys.stdin.readline()
conn.send(body[half:])
response = conn.getresponse()
print(json.dumps({"status": response.status, "body": response.read().decode(errors="replace")}), flush=True)
"#;

fn env() -> &'static LocalEnv {
    chaperone_operator::runtime::tls::install_crypto_provider();
    LocalEnv::shared()
}

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

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after 60 s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn secret_value(client: &Client, name: &str, key: &str) -> Option<Vec<u8>> {
    let secret =
        Api::<Secret>::namespaced(client.clone(), NAMESPACE).get_opt(name).await.ok()??;
    Some(secret.data?.get(key)?.0.clone())
}

/// The config Secret's `gateway.yaml` once it satisfies `wanted`.
async fn rendered_config(
    client: &Client,
    what: &str,
    wanted: impl Fn(&GatewayConfig) -> bool,
) -> String {
    eventually(what, || async {
        let bytes = secret_value(client, CONFIG_SECRET_NAME, CONFIG_SECRET_KEY).await?;
        let yaml = String::from_utf8(bytes).ok()?;
        let config = GatewayConfig::parse(&yaml).ok()?;
        wanted(&config).then_some(yaml)
    })
    .await
}

/// The examples, pointed at moto: the connection's S3 endpoint, the recording bucket, and the
/// two Secrets they name, holding moto's keys.
async fn apply_examples(client: &Client) {
    let env = env();
    ensure_namespace(client, NAMESPACE).await.unwrap();
    let user = &env.moto.gateway_user;
    for name in ["aws-prod", "recorder"] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": {
                "AWS_ACCESS_KEY_ID": user.access_key_id,
                "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
            },
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), NAMESPACE)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    create_bucket(env, "reload-recordings").unwrap();
    let mut policy = example("recordingpolicy").unwrap();
    set(&mut policy, "/spec/s3/bucket", json!("reload-recordings"));
    set(&mut policy, "/spec/s3/endpoint", json!(env.moto.endpoint()));
    create_in(client, NAMESPACE, &policy).await.unwrap().unwrap();
    let mut connection = example("agentconnection").unwrap();
    set(&mut connection, "/spec/aws/endpoints", json!({"s3": env.moto.endpoint()}));
    create_in(client, NAMESPACE, &connection).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_change_reaches_the_running_gateway_within_seconds_and_an_in_flight_call_completes()
 {
    let env = env();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    install_crds(&client).await.unwrap();
    apply_examples(&client).await;
    let settings = GatewaySettings {
        image: "example.com/chaperone-gateway:test".into(),
        replicas: 1,
        issuer: env.control_plane.issuer().to_owned(),
        jwks_uri: "https://kubernetes.default.svc/openid/v1/jwks".into(),
        session_key_rotation: Duration::from_secs(7 * 24 * 3600),
        spool_mib: 1024,
        image_pull_secrets: Vec::new(),
        pod: Default::default(),
        metrics_namespace: None,
    };
    let context =
        Arc::new(Context::new(client.clone(), settings, Arc::new(OperatorMetrics::new())));
    let (stop, stopped) = oneshot::channel::<()>();
    let operator = tokio::spawn(controller::run(context, Some(NAMESPACE.into()), async move {
        let _ = stopped.await;
    }));

    // The operator renders the examples into the config and keys Secrets; the gateway starts from them.
    let yaml = rendered_config(&client, "the connection in the config Secret", |c| {
        c.connections.iter().any(|c| c.name == "prod-aws")
    })
    .await;
    let keys =
        eventually("the keys Secret", || secret_value(&client, KEYS_SECRET_NAME, KEYS_SECRET_KEY))
            .await;
    let binary = workspace_binary("chaperone-gateway", "chaperone-gateway").unwrap();
    let mut gateway = GatewayProcess::start_from_operator_config(
        env,
        &binary,
        NAMESPACE,
        "prod-aws",
        &yaml,
        &keys,
        &[],
    )
    .await
    .unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let cli = |args: &[&str]| aws_cli(env, &agent, args);
    create_bucket(env, DATA_BUCKET).unwrap();
    let note = gateway.dir.join("note.txt");
    std::fs::write(&note, "before the change\n").unwrap();
    let (ok, _, err) = cli(&["s3", "cp", note.to_str().unwrap(), "s3://reload-data/note.txt"]);
    assert!(ok, "{err}\n{}", gateway.log());
    let (ok, _, err) =
        cli(&["s3api", "delete-object", "--bucket", DATA_BUCKET, "--key", "note.txt"]);
    assert!(ok, "deleting is allowed before the change: {err}");

    // A call in flight: its headers and half its body are at the gateway.
    let mut held = env.moto.python_command();
    held.args([
        "-c",
        HELD_PUT,
        &gateway.endpoint,
        DATA_BUCKET,
        "held.bin",
        &UPLOAD_BYTES.to_string(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (key, value) in &agent {
        held.env(key, value);
    }
    let mut held = held.spawn().unwrap();
    let mut held_out = BufReader::new(held.stdout.take().unwrap());
    let mut line = String::new();
    held_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "in-flight", "the held upload did not start: {line}");

    // The policy changes: s3:DeleteObject is denied from now on.
    Api::<AgentConnection>::namespaced(client.clone(), NAMESPACE)
        .patch(
            "prod-aws",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"policy": {"deny": ["iam:*", "s3:PutBucketPolicy", "s3:DeleteObject"]}}})),
        )
        .await
        .unwrap();
    let changed = rendered_config(&client, "s3:DeleteObject denied in the config Secret", |c| {
        c.connections
            .iter()
            .any(|c| c.name == "prod-aws" && c.policy.deny.iter().any(|d| d == "s3:DeleteObject"))
    })
    .await;
    assert_ne!(changed, yaml, "the config Secret changed");
    gateway.refresh_from_operator_config(env, &changed).unwrap();

    // The running gateway enforces it within seconds.
    std::fs::write(&note, "after the change\n").unwrap();
    let (ok, _, err) = cli(&["s3", "cp", note.to_str().unwrap(), "s3://reload-data/note.txt"]);
    assert!(ok, "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let denial = loop {
        let (ok, _, err) =
            cli(&["s3api", "delete-object", "--bucket", DATA_BUCKET, "--key", "note.txt"]);
        if !ok {
            break err;
        }
        // Deleted under the old configuration: put it back and try again.
        let (ok, _, err) = cli(&["s3", "cp", note.to_str().unwrap(), "s3://reload-data/note.txt"]);
        assert!(ok, "{err}");
        assert!(
            Instant::now() < deadline,
            "the gateway still allows s3:DeleteObject after 30 s\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(denial.contains("AccessDenied") && denial.contains("spec.policy.deny"), "{denial}");

    // The call that was in flight when the configuration changed completes unharmed.
    let stdin = held.stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
    let mut answer = String::new();
    held_out.read_line(&mut answer).unwrap();
    let status = held.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = held.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(answer.trim())
        .unwrap_or_else(|e| panic!("{e}: {answer:?}\n{stderr}\n{}", gateway.log()));
    assert_eq!(answer["status"], 200, "{answer}\n{}", gateway.log());
    let stored = s3().head_object().bucket(DATA_BUCKET).key("held.bin").send().await.unwrap();
    assert_eq!(stored.content_length(), Some(UPLOAD_BYTES as i64));

    gateway.stop();
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;
}
