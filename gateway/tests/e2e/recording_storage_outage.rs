//! S3 down under load: with a small spool the gateway refuses calls it cannot record (FailClosed)
//! and never forwards them; once S3 is back the backlog drains and no event is missing.

use crate::common;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use chaperone_recording::EventBody;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec},
    ports::free_port,
};
use serde_json::json;

pub(crate) const AGENT: &str = r#"
import sys, json, boto3, botocore
from botocore.config import Config
sqs = boto3.client("sqs", config=Config(retries={"max_attempts": 1}))
queue = sqs.create_queue(QueueName=sys.argv[1])["QueueUrl"]
padding = "x" * 60000
results = []
for i in range(int(sys.argv[2]), int(sys.argv[3])):
    try:
        sqs.send_message(QueueUrl=queue, MessageBody=f"{sys.argv[4]}-{i}-{padding}")
        results.append({"i": i, "ok": True})
    except botocore.exceptions.ClientError as e:
        results.append({"i": i, "ok": False, "code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]})
print(json.dumps(results))
"#;

pub(crate) const DRAIN: &str = r#"
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
        bodies.add(m["Body"].split("-x")[0])
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
print(json.dumps(sorted(bodies)))
"#;

fn send(
    env: &LocalEnv,
    agent: &[(String, String)],
    range: (u32, u32),
    tag: &str,
) -> Vec<serde_json::Value> {
    let mut command = env.moto.python_command();
    command.args(["-c", AGENT, "outage", &range.0.to_string(), &range.1.to_string(), tag]);
    for (key, value) in agent {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_s3_down_calls_are_refused_never_forwarded_unrecorded_and_nothing_is_lost() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("e2e-outage");
    spec.extra_args.push("--max-spool-mib=1".into());
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();

    // S3 is reachable: calls go through.
    let before = send(env, &agent, (0, 3), "up");
    assert!(before.iter().all(|r| r["ok"] == true), "{before:?}");

    // Take S3 away from the recorder (a closed port), then push calls until the spool is full.
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    gateway
        .rewrite_config(|c| c["recordingPolicies"]["default"]["s3"]["endpoint"] = json!(dead))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = send(env, &agent, (0, 60), "down");
    let refused: Vec<_> = during.iter().filter(|r| r["ok"] == false).collect();
    assert!(
        !refused.is_empty(),
        "a 1 MiB spool fills with 60 KiB calls while S3 is down: {during:?}"
    );
    for r in &refused {
        assert_eq!(r["code"], "ServiceUnavailable", "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("FailClosed") && message.contains("cannot record"), "{message}");
    }
    let accepted_during: BTreeSet<String> =
        during.iter().filter(|r| r["ok"] == true).map(|r| format!("down-{}", r["i"])).collect();

    // Nothing refused reached the upstream.
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
            "outage",
        ])
        .output()
        .unwrap();
    let delivered: BTreeSet<String> = serde_json::from_slice(&drained.stdout).unwrap();
    let delivered_during: BTreeSet<String> =
        delivered.iter().filter(|b| b.starts_with("down-")).cloned().collect();
    assert_eq!(
        delivered_during, accepted_during,
        "exactly the accepted calls reached the upstream"
    );

    // S3 comes back: the backlog drains and calls are accepted again.
    gateway
        .rewrite_config(|c| {
            c["recordingPolicies"]["default"]["s3"]["endpoint"] = json!(env.moto.endpoint())
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = send(env, &agent, (0, 1), "back");
        if after[0]["ok"] == true || Instant::now() > deadline {
            break after;
        }
    };
    assert_eq!(
        after[0]["ok"],
        true,
        "calls are accepted once S3 is back: {after:?}\n{}",
        gateway.log()
    );

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let recorded: BTreeSet<String> = common::events(&objects)
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Request(r) => {
                let body: serde_json::Value =
                    serde_json::from_slice(&r.body.captured_bytes().ok()?).ok()?;
                body["MessageBody"]
                    .as_str()
                    .map(|b| b.split("-x").next().unwrap_or_default().to_owned())
            }
            _ => None,
        })
        .collect();
    let missing: Vec<_> = delivered.difference(&recorded).collect();
    assert!(missing.is_empty(), "delivered but not recorded: {missing:?}");
    eprintln!(
        "accepted {} and refused {} calls while S3 was down",
        accepted_during.len(),
        refused.len()
    );
}
