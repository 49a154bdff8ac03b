//! What the recording keeps of bodies, through the real gateway: a 50 MiB upload is recorded
//! truncated at maxBodyBytes with its full length and full sha256 (and streams through in bounded
//! memory); a secret read with GetSecretValue is stored nowhere, only its sha256.

use crate::common;

use chaperone_recording::EventBody;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mib_upload_is_recorded_truncated_with_its_full_length_sha256() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    // Plain HTTP: the AWS CLI then signs the payload, so the write-ahead request event carries
    // the body's sha256 (over HTTPS it streams it unsigned, and the sha256 is recorded with the
    // response instead: adversarial_bodies.rs).
    let mut spec = GatewaySpec::new("e2e-capture");
    spec.plaintext = true;
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", "s3://capture-data"]);
    assert!(ok, "{err}");
    let rss_before = gateway.peak_rss_kib().unwrap_or(0);

    let file = gateway.dir.join("fifty.bin");
    let content: Vec<u8> =
        (0..50 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 23) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let body = file.display().to_string();
    let (ok, _, err) = aws_cli(
        env,
        &agent,
        &["s3api", "put-object", "--bucket", "capture-data", "--key", "fifty.bin", "--body", &body],
    );
    assert!(ok, "{err}\n{}", gateway.log());
    let rss_after = gateway.peak_rss_kib().unwrap_or(0);
    eprintln!(
        "gateway peak RSS: {rss_before} KiB before, {rss_after} KiB after streaming a 50 MiB upload"
    );

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    assert!(common::verify(&gateway, &objects).is_valid());
    let events = common::events(&objects);
    let put = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Request(r) if r.aws.operation == "PutObject" => Some(r.clone()),
            _ => None,
        })
        .expect("the upload's request event");
    assert!(put.body.truncated);
    assert_eq!(put.body.size, content.len() as u64);
    assert_eq!(put.body.sha256.to_hex(), hex::encode(Sha256::digest(&content)));
    let captured = put.body.captured_bytes().unwrap();
    assert_eq!(captured.len(), 1024 * 1024, "maxBodyBytes of the payload is kept");
    assert_eq!(&captured[..], &content[..captured.len()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_read_through_the_gateway_is_stored_nowhere_but_as_its_sha256() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut gateway =
        GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-secret")).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let secret = "correct-horse-battery-staple-4f9a";
    let (ok, _, err) = aws_cli(
        env,
        &agent,
        &["secretsmanager", "create-secret", "--name", "db-password", "--secret-string", secret],
    );
    assert!(ok, "{err}\n{}", gateway.log());
    let (ok, out, err) =
        aws_cli(env, &agent, &["secretsmanager", "get-secret-value", "--secret-id", "db-password"]);
    assert!(ok, "{err}");
    assert!(out.contains(secret), "the agent itself gets the secret: {out}");

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let mut stored = Vec::new();
    for (key, bytes) in &objects {
        if key.ends_with(".zst") {
            stored.extend(zstd::decode_all(&bytes[..]).unwrap());
        } else {
            stored.extend_from_slice(bytes);
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("GetSecretValue"), "the call itself is recorded");
    assert!(!stored.contains(secret), "the secret value appears in the recording");
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));
    assert!(stored.contains(&digest), "its sha256 stands in its place");
    let log = gateway.log();
    assert!(!log.contains(secret), "the secret appears in the gateway's log");
}
