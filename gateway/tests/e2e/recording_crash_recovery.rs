//! No call reaches AWS unrecorded, even when the gateway is killed: SIGKILL in the middle of a
//! stream of 1,000 calls, restart, and every call the upstream received (by moto's own count) has
//! its request event in S3, in a session that verifies as recovered. Under both RecordingPolicy
//! durabilities: `Fsync` (fsynced before forwarding) and `Written` (written to the spool file
//! before forwarding, fsynced within 10 ms), which both survive a crash of the gateway process.
//! What only `Fsync` survives, a crash of the node (power loss, kernel panic), cannot be caused
//! from a test: it would take the machine down (docs/recorder.md, "Durability").

use crate::common;

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

use chaperone_recording::EventBody;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec},
};

const AGENT: &str = r#"
import sys, boto3
from botocore.config import Config
sqs = boto3.client("sqs", config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))
queue = sqs.create_queue(QueueName=sys.argv[1])["QueueUrl"]
print("ready", flush=True)
sent = 0
for i in range(1000):
    try:
        sqs.send_message(QueueUrl=queue, MessageBody=f"m-{i}")
        sent += 1
    except Exception as e:
        print(f"stopped at {i}: {type(e).__name__}", flush=True)
        break
print(f"sent {sent}", flush=True)
"#;

const DRAIN: &str = r#"
import sys, json, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
queue = sqs.get_queue_url(QueueName=sys.argv[4])["QueueUrl"]
bodies = set()
while True:
    batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    if not batch:
        break
    for m in batch:
        bodies.add(m["Body"])
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
print(json.dumps(sorted(bodies)))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_call_the_upstream_received_is_recorded_after_a_sigkill_mid_stream() {
    sigkill_mid_stream_then_recover("e2e-crash", "Fsync").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_durability_written_every_call_the_upstream_received_is_recorded_after_a_sigkill() {
    sigkill_mid_stream_then_recover("e2e-crash-written", "Written").await;
}

/// Streams calls through a gateway whose RecordingPolicy has `durability`, kills it with
/// SIGKILL mid-stream, restarts it and checks every delivered call against the recording.
async fn sigkill_mid_stream_then_recover(namespace: &str, durability: &str) {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new(namespace);
    spec.durability = durability.into();
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent_env = gateway.agent_env(env, "pr-bot").await.unwrap();
    let queue = format!("{namespace}-stream");

    let mut agent = env.moto.python_command();
    agent.args(["-c", AGENT, &queue]).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, value) in &agent_env {
        agent.env(key, value);
    }
    let mut agent = agent.spawn().unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // Let a few hundred calls through, then kill the gateway without warning.
    std::thread::sleep(Duration::from_millis(1500));
    gateway.kill();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    agent.wait().unwrap();
    assert!(
        rest.iter().any(|l| l.starts_with("stopped at")),
        "the agent saw the gateway die: {rest:?}"
    );

    // What the upstream received, by its own account.
    let upstream = &env.moto.gateway_user;
    let drained = env
        .moto
        .python_command()
        .args([
            "-c",
            DRAIN,
            env.moto.endpoint(),
            &upstream.access_key_id,
            &upstream.secret_access_key,
            &queue,
        ])
        .output()
        .unwrap();
    assert!(drained.status.success(), "{}", String::from_utf8_lossy(&drained.stderr));
    let delivered: BTreeSet<String> = serde_json::from_slice(&drained.stdout).unwrap();
    assert!(
        delivered.len() >= 20,
        "enough calls reached the upstream before the kill: {}",
        delivered.len()
    );
    assert!(delivered.len() < 1000, "the kill happened mid-stream");

    // Restart: the spool left by the killed process is uploaded and its stream closed as recovered.
    gateway.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (objects, recorded) = loop {
        let objects = common::recorded_objects(env, &gateway).await;
        let recorded: BTreeSet<String> = common::events(&objects)
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Request(r)
                    if r.aws.actions.first().map(String::as_str) == Some("sqs:SendMessage") =>
                {
                    let body: serde_json::Value =
                        serde_json::from_slice(&r.body.captured_bytes().ok()?).ok()?;
                    body["MessageBody"].as_str().map(str::to_owned)
                }
                _ => None,
            })
            .collect();
        let recovered = objects.keys().any(|k| k.ends_with("_manifest.json"))
            && common::verify(&gateway, &objects).is_valid();
        if (delivered.is_subset(&recorded) && recovered) || Instant::now() > deadline {
            break (objects, recorded);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let missing: Vec<_> = delivered.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "{} calls reached the upstream without a recorded request: {missing:?}\n{}",
        missing.len(),
        gateway.log()
    );
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let recovered_manifest = objects
        .iter()
        .filter(|(k, _)| k.ends_with("_manifest.json"))
        .any(|(_, bytes)| String::from_utf8_lossy(bytes).contains("recovered"));
    assert!(recovered_manifest, "the killed stream's manifest says it was recovered");
    eprintln!(
        "durability {durability}: delivered {} calls before SIGKILL; recorded {} request events",
        delivered.len(),
        recorded.len()
    );
}
