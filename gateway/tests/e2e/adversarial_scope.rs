//! Issue 15 classes 1 and 7 against the real gateway, moto (signature checks on) upstream.
//!
//! Class 1, client text never steers the upstream: requests signed (validly, with the agent's own
//! session credentials) for a region or service that would put another host into the upstream URL
//! are refused with a message naming what to change, and a TCP listener standing in for the
//! attacker's host proves nothing connected to it. A service the gateway has no model of is
//! refused until the connection names an endpoint for it; then that endpoint is used.
//!
//! Class 7, the recordings are out of the agents' reach: an agent allowed `*` cannot get, put,
//! list, delete or copy from the bucket its RecordingPolicy writes to; moto's copy of a canary
//! object there is unchanged and nothing the agent tried to write exists.

use crate::common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ASSUME: &str = r#"
import json, os, boto3
sts = boto3.client("sts")
answer = sts.assume_role_with_web_identity(RoleArn=os.environ["AWS_ROLE_ARN"], RoleSessionName="scope",
    WebIdentityToken=open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]).read())
print(json.dumps(answer["Credentials"], default=str))
"#;

/// Puts (argv[6] == "put") or describes `canary` in bucket argv[4] and whether the keys in
/// argv[5] (comma-separated, any bucket `b/k`) exist, with the gateway user's own keys.
const MOTO: &str = r#"
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
bucket = sys.argv[4]
if sys.argv[6] == "put":
    s3.put_object(Bucket=bucket, Key="canary", Body=b"recorded")
head = s3.head_object(Bucket=bucket, Key="canary")
def exists(path):
    b, k = path.split("/", 1)
    try:
        s3.head_object(Bucket=b, Key=k); return True
    except Exception:
        return False
print(json.dumps({"canary": [head["ETag"], head["ContentLength"]],
                  "exists": {p: exists(p) for p in sys.argv[5].split(",")}}, sort_keys=True))
"#;

/// A TCP listener that counts the connections made to it (the attacker's host).
async fn connection_counter() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

/// A plain-HTTP endpoint that counts the requests it gets and answers each `200 {}`.
async fn answering_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                    // Requests here are bodiless GETs: a request ends with its headers.
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        counter.fetch_add(1, Ordering::SeqCst);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (address, count)
}

/// Sends `GET target` signed with the agent's session credentials for `region` and `service`;
/// returns the status and the body (preceded by `x-amzn-ErrorType`, when there is one).
async fn signed_get(
    gateway: &GatewayProcess,
    identity: &Identity,
    region: &str,
    service: &str,
    target: &str,
) -> (u16, String) {
    let url = format!("{}{target}", gateway.endpoint);
    let host = common::authority(gateway);
    let empty = hex::encode(Sha256::digest(b""));
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let headers = [("host", host.as_str())];
    let signable = SignableRequest::new(
        "GET",
        &url,
        headers.iter().copied(),
        SignableBody::Precomputed(empty),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::get(&url)
        .header("host", host.as_str())
        .body(Full::new(Bytes::new()))
        .unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let client = common::agent_client(gateway);
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let code = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("x-amzn-ErrorType: {v}\n"))
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, format!("{code}{}", String::from_utf8_lossy(&body)))
}

/// The agent's session credentials, from the gateway's STS.
fn session(env: &LocalEnv, agent: &[(String, String)]) -> Identity {
    let mut python = env.moto.python_command();
    python.args(["-c", ASSUME]);
    for (key, value) in agent {
        python.env(key, value);
    }
    let output = python.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let credentials: Value = serde_json::from_slice(&output.stdout).unwrap();
    Credentials::new(
        credentials["AccessKeyId"].as_str().unwrap(),
        credentials["SecretAccessKey"].as_str().unwrap(),
        Some(credentials["SessionToken"].as_str().unwrap().to_owned()),
        None,
        "scope",
    )
    .into()
}

/// moto's canary in `bucket` (put first when `put`) and whether each of `paths` exists.
fn moto_state(env: &LocalEnv, bucket: &str, paths: &[&str], put: bool) -> String {
    let user = &env.moto.gateway_user;
    let output = env
        .moto
        .python_command()
        .args([
            "-c",
            MOTO,
            env.moto.endpoint(),
            &user.access_key_id,
            &user.secret_access_key,
            bucket,
            &paths.join(","),
            if put { "put" } else { "look" },
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_scope_never_steers_the_upstream() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("e2e-adv-scope");
    spec.allow = vec!["*".into()];
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let identity = session(env, &agent);

    // Well-formed: moto lists its buckets through the gateway (the refusals below are about the scope).
    let (status, body) = signed_get(&gateway, &identity, "us-east-1", "s3", "/").await;
    assert_eq!(status, 200, "{body}\n{}", gateway.log());
    assert!(body.contains("ListAllMyBucketsResult"), "{body}");

    // CloudWatch (`monitoring`) has a model and no endpoint override here: before the grammar,
    // its region was formatted into `https://monitoring.<region>.amazonaws.com`.
    let (port, reached) = connection_counter().await;
    let attacker = format!("127.0.0.1:{port}");
    let list_metrics = "/?Action=ListMetrics&Version=2010-08-01";
    let hostile_regions = [
        format!("us-east-1@{attacker}"),
        format!("x@{attacker}#"),
        format!("x@{attacker}?"),
        format!("us-east-1.x@{attacker}:{port}"),
        "x#".to_owned(),
        "US-EAST-1".to_owned(),
        "us-east-1.evil.example".to_owned(),
    ];
    for region in &hostile_regions {
        let (status, body) =
            signed_get(&gateway, &identity, region, "monitoring", list_metrics).await;
        assert_eq!(status, 400, "region {region}: {body}");
        assert!(body.contains("AuthorizationHeaderMalformed"), "region {region}: {body}");
        // The message quotes the region (XML bodies escape the quotes).
        assert!(
            body.contains("the credential scope names region")
                && body.contains(region.as_str())
                && body.contains("which is not an AWS region name"),
            "region {region}: {body}"
        );
        assert!(body.contains("sign the request for the region you mean"), "{body}");
    }
    // A `/` splits the credential scope itself: refused (as malformed) before any routing.
    let (status, body) = signed_get(&gateway, &identity, "a/b", "monitoring", list_metrics).await;
    assert!((400..500).contains(&status), "a/b: {status} {body}");

    let hostile_services = [
        format!("monitoring.x@{attacker}"),
        format!("x@{attacker}#"),
        attacker.clone(),
        "S3".to_owned(),
    ];
    for service in &hostile_services {
        let (status, body) = signed_get(&gateway, &identity, "us-east-1", service, "/").await;
        assert_eq!(status, 400, "service {service}: {body}");
        assert!(
            body.contains("the credential scope names service")
                && body.contains(service.as_str())
                && body.contains("which is not an AWS signing name"),
            "service {service}: {body}"
        );
    }

    // A service without a model or an endpoint is refused, naming the setting that fixes it.
    let (status, body) =
        signed_get(&gateway, &identity, "us-east-1", "chaperone-probe", "/probe").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("no endpoint is known for service chaperone-probe")
            && body.contains("AgentConnection e2e-adv-scope/prod-aws names none")
            && body.contains("set spec.aws.endpoints.chaperone-probe on the AgentConnection"),
        "{body}"
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0, "a connection reached the attacker's host");

    // With an endpoint (and the unclassified opt-in), the same call goes exactly there.
    let (endpoint, answered) = answering_endpoint().await;
    gateway
        .rewrite_config(|config| {
            let connection = &mut config["connections"][0];
            connection["endpoints"]["chaperone-probe"] = json!(endpoint);
            connection["policy"]["allowUnclassified"] = json!(["chaperone-probe"]);
        })
        .unwrap();
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = signed_get(&gateway, &identity, "us-east-1", "chaperone-probe", "/probe").await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last.0, 200, "the override was never used: {}\n{}", last.1, gateway.log());
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    assert_eq!(reached.load(Ordering::SeqCst), 0, "a connection reached the attacker's host");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_recording_bucket_is_out_of_the_agents_reach() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("e2e-adv-recordings");
    spec.allow = vec!["*".into()];
    let audit = spec.recording_bucket.clone();
    let gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let mine = "e2e-adv-recordings-mine";
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", &format!("s3://{mine}")]);
    assert!(ok, "{err}");

    let planted =
        [format!("{audit}/planted"), format!("{mine}/stolen"), format!("{mine}/stolen-part")];
    let planted: Vec<&str> = planted.iter().map(String::as_str).collect();
    let before = moto_state(env, &audit, &planted, true);
    assert!(before.contains("\"canary\"") && !before.contains("true"), "{before}");

    let says = "holds the recordings of RecordingPolicy e2e-adv-recordings/default";
    let command = |args: &[&str]| -> Vec<String> { args.iter().map(|s| s.to_string()).collect() };
    let attempts = [
        command(&["s3api", "get-object", "--bucket", &audit, "--key", "canary", "/dev/null"]),
        command(&["s3api", "head-object", "--bucket", &audit, "--key", "canary"]),
        command(&[
            "s3api",
            "put-object",
            "--bucket",
            &audit,
            "--key",
            "canary",
            "--body",
            "/etc/hostname",
        ]),
        command(&[
            "s3api",
            "put-object",
            "--bucket",
            &audit,
            "--key",
            "planted",
            "--body",
            "/etc/hostname",
        ]),
        command(&["s3api", "list-objects-v2", "--bucket", &audit]),
        command(&["s3api", "delete-object", "--bucket", &audit, "--key", "canary"]),
        command(&["s3api", "delete-bucket", "--bucket", &audit]),
        command(&[
            "s3api",
            "copy-object",
            "--bucket",
            mine,
            "--key",
            "stolen",
            "--copy-source",
            &format!("{audit}/canary"),
        ]),
    ];
    for attempt in &attempts {
        let args: Vec<&str> = attempt.iter().map(String::as_str).collect();
        let (ok, out, err) = aws_cli(env, &agent, &args);
        assert!(!ok, "{args:?} succeeded: {out}");
        // head-object has no body: the CLI shows only the status.
        if args[1] == "head-object" {
            assert!(err.contains("403"), "{args:?}: {err}");
        } else {
            assert!(err.contains("AccessDenied") && err.contains(says), "{args:?}: {err}");
        }
    }

    // UploadPartCopy from the recordings into the agent's own bucket.
    let (ok, out, err) = aws_cli(
        env,
        &agent,
        &[
            "s3api",
            "create-multipart-upload",
            "--bucket",
            mine,
            "--key",
            "stolen-part",
            "--query",
            "UploadId",
            "--output",
            "text",
        ],
    );
    assert!(ok, "{err}");
    let upload = out.trim();
    let (ok, out, err) = aws_cli(
        env,
        &agent,
        &[
            "s3api",
            "upload-part-copy",
            "--bucket",
            mine,
            "--key",
            "stolen-part",
            "--upload-id",
            upload,
            "--part-number",
            "1",
            "--copy-source",
            &format!("{audit}/canary"),
        ],
    );
    assert!(!ok, "upload-part-copy succeeded: {out}");
    assert!(err.contains("AccessDenied") && err.contains(says), "{err}");

    // The agent's own bucket still works (the refusals are about the recording bucket).
    let (ok, _, err) = aws_cli(env, &agent, &["s3api", "list-objects-v2", "--bucket", mine]);
    assert!(ok, "{err}");

    let after = moto_state(env, &audit, &planted, false);
    assert_eq!(before, after, "moto's recording bucket or the copy targets changed");
}
