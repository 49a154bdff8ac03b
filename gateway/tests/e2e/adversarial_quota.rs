//! Issue 15 class 10, one agent cannot starve the others: two AgentConnections share one gateway
//! and its recording spool; the recordings of one (`noisy-aws`) cannot reach S3, and its agent
//! keeps sending calls with large bodies. Once it holds its share of the spool its calls are
//! refused (503, naming the share and what to change) and never reach moto, while the other
//! connection's calls keep going through and being recorded. Denied calls keep only a small part
//! of their body in the recording, marked truncated.

use crate::{
    common,
    recording_storage_outage::{AGENT, DRAIN},
};

use std::{collections::BTreeSet, time::Duration};

use chaperone_recording::EventBody;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli, create_bucket},
    ports::free_port,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Sends SQS messages `range` (60 KB each) to `queue` as the agent; one result per message.
fn send(env: &LocalEnv, agent: &[(String, String)], queue: &str, range: (u32, u32)) -> Vec<Value> {
    let mut command = env.moto.python_command();
    command.args(["-c", AGENT, queue, &range.0.to_string(), &range.1.to_string(), queue]);
    for (key, value) in agent {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The messages that reached moto's `queue` (consumed).
fn delivered(env: &LocalEnv, queue: &str) -> BTreeSet<String> {
    let user = &env.moto.gateway_user;
    let output = env
        .moto
        .python_command()
        .args([
            "-c",
            DRAIN,
            env.moto.endpoint(),
            &user.access_key_id,
            &user.secret_access_key,
            queue,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_whose_recordings_do_not_drain_is_refused_at_its_share_and_the_other_keeps_working()
 {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("adv-quota");
    // Two connections: 1 MiB of spool each.
    spec.extra_args.push("--max-spool-mib=2".into());
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();

    // A second connection of the same agents, recorded under a RecordingPolicy whose S3 endpoint
    // is a closed port: its recordings stay in the spool.
    create_bucket(env, "adv-quota-stalled").unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    gateway
        .rewrite_config(|config| {
            let mut noisy = config["connections"][0].clone();
            noisy["name"] = json!("noisy-aws");
            noisy["recordingPolicy"] = json!("stalled");
            config["connections"].as_array_mut().unwrap().push(noisy);
            let mut stalled = config["recordingPolicies"]["default"].clone();
            stalled["s3"]["bucket"] = json!("adv-quota-stalled");
            stalled["s3"]["endpoint"] = json!(dead);
            config["recordingPolicies"]["stalled"] = stalled;
            config["recordingCredentials"]["stalled"] =
                config["recordingCredentials"]["default"].clone();
        })
        .unwrap();
    let noisy_role = gateway.role_arn().replace("/prod-aws", "/noisy-aws");
    let noisy: Vec<(String, String)> = agent
        .iter()
        .map(|(k, v)| match k.as_str() {
            "AWS_ROLE_ARN" => (k.clone(), noisy_role.clone()),
            // Its own credential cache: the CLI caches per role, the SDK script not at all.
            _ => (k.clone(), v.clone()),
        })
        .collect();

    // Wait for the reload: the noisy connection's agent gets credentials once it exists.
    let mut loaded = false;
    for _ in 0..50 {
        let (ok, _, _) = aws_cli(env, &noisy, &["sts", "get-caller-identity"]);
        if ok {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(loaded, "the second connection never loaded:\n{}", gateway.log());

    // The noisy agent pushes 60 KB calls until its share (1 MiB) is held.
    let during = send(env, &noisy, "noisy", (0, 40));
    let refused: Vec<_> = during.iter().filter(|r| r["ok"] == false).collect();
    assert!(!refused.is_empty(), "2.4 MB of calls fit a 1 MiB share: {during:?}");
    for r in &refused {
        assert_eq!(r["code"], "ServiceUnavailable", "{r}");
        let message = r["message"].as_str().unwrap();
        for part in [
            "AgentConnection noisy-aws holds its whole share of the recording spool",
            "of 1048576 bytes, 1/2 of the spool",
            "other connections keep recording",
            "--max-connection-spool-mib",
            "RecordingPolicy stalled says FailClosed",
        ] {
            assert!(message.contains(part), "{part:?} missing from {message}");
        }
    }
    let accepted: BTreeSet<String> =
        during.iter().filter(|r| r["ok"] == true).map(|r| format!("noisy-{}", r["i"])).collect();
    assert_eq!(delivered(env, "noisy"), accepted, "exactly the accepted calls reached moto");

    // The other connection is not starved: every call goes through.
    let other = send(env, &agent, "steady", (0, 8));
    assert!(other.iter().all(|r| r["ok"] == true), "{other:?}\n{}", gateway.log());
    assert_eq!(delivered(env, "steady").len(), 8);

    // A denied call with a 20 KB body: the recording keeps 4 KiB of it, marked truncated.
    let document = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "s3:GetObject", "Resource": "*", "Sid": "x".repeat(20_000)}]})
    .to_string();
    let path = gateway.dir.join("policy.json");
    std::fs::write(&path, &document).unwrap();
    let file = format!("file://{}", path.display());
    let (ok, _, err) = aws_cli(
        env,
        &agent,
        &["iam", "create-policy", "--policy-name", "big", "--policy-document", &file],
    );
    assert!(!ok && err.contains("AccessDenied"), "{err}");

    // Let the stalled recordings go, so the gateway stops without waiting for them.
    gateway
        .rewrite_config(|c| {
            c["recordingPolicies"]["stalled"]["s3"]["endpoint"] = json!(env.moto.endpoint())
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let events = common::events(&objects);
    let denied = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Denied(d) if d.aws.operation == "CreatePolicy" => Some(d.clone()),
            _ => None,
        })
        .expect("the denied CreatePolicy is recorded");
    assert!(denied.body.truncated, "{:?}", denied.body);
    let captured = denied.body.captured_bytes().unwrap();
    assert_eq!(captured.len(), 4096);
    assert!(denied.body.size > 20_000, "{}", denied.body.size);
    assert_ne!(denied.body.sha256.to_string(), hex::encode(Sha256::digest(&captured)));
    let steady: usize = events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Request(r) if r.aws.operation == "SendMessage"))
        .count();
    assert_eq!(steady, 8, "every call of the steady connection is recorded");
}
