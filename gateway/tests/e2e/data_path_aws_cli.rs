//! The real AWS CLI through the real gateway, with only the environment the pod webhook injects,
//! against moto with signature checking on (so a wrong re-signing fails). The recording it leaves
//! is read back with the auditor's keys and verified.

use crate::common;

use chaperone_recording::EventBody;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_completes_a_real_session_through_the_gateway_and_it_is_recorded() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut gateway =
        GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-cli")).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let run = |args: &[&str]| {
        let (ok, out, err) = aws_cli(env, &agent, args);
        assert!(
            ok,
            "aws {} failed:\n{err}\n----- gateway log -----\n{}",
            args.join(" "),
            gateway.log()
        );
        out
    };

    let identity = run(&["sts", "get-caller-identity"]);
    assert!(identity.contains("assumed-role/chaperone/e2e-cli/prod-aws/pr-bot"), "{identity}");

    // S3: small objects, a listing, and a 21 MiB multipart upload streamed through.
    run(&["s3", "mb", "s3://cli-data"]);
    let file = gateway.dir.join("hello.txt");
    std::fs::write(&file, "hello through the gateway\n").unwrap();
    run(&["s3", "cp", file.to_str().unwrap(), "s3://cli-data/greetings/hello.txt"]);
    let big = gateway.dir.join("big.bin");
    let content: Vec<u8> =
        (0..21 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(&big, &content).unwrap();
    run(&["s3", "cp", big.to_str().unwrap(), "s3://cli-data/big.bin"]);
    let listing = run(&["s3", "ls", "s3://cli-data/", "--recursive"]);
    assert!(listing.contains("greetings/hello.txt") && listing.contains("big.bin"), "{listing}");
    let back = gateway.dir.join("big-back.bin");
    run(&["s3", "cp", "s3://cli-data/big.bin", back.to_str().unwrap()]);
    assert_eq!(
        Sha256::digest(std::fs::read(&back).unwrap()),
        Sha256::digest(&content),
        "the multipart object round-trips"
    );
    run(&["s3", "rm", "s3://cli-data/greetings/hello.txt"]);

    // DynamoDB.
    run(&[
        "dynamodb",
        "create-table",
        "--table-name",
        "builds",
        "--attribute-definitions",
        "AttributeName=id,AttributeType=S",
        "--key-schema",
        "AttributeName=id,KeyType=HASH",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    run(&[
        "dynamodb",
        "put-item",
        "--table-name",
        "builds",
        "--item",
        r#"{"id":{"S":"b-1"},"state":{"S":"green"}}"#,
    ]);
    let item =
        run(&["dynamodb", "get-item", "--table-name", "builds", "--key", r#"{"id":{"S":"b-1"}}"#]);
    assert!(item.contains("green"), "{item}");

    // Denied: IAM by the connection's deny list, AssumeRole by the built-in credential denylist.
    let (ok, _, err) = aws_cli(env, &agent, &["iam", "list-users"]);
    assert!(!ok);
    assert!(
        err.contains("AccessDenied")
            && err.contains("AgentConnection/e2e-cli/prod-aws")
            && err.contains("spec.policy.deny"),
        "{err}"
    );
    let (ok, _, err) = aws_cli(
        env,
        &agent,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            "arn:aws:iam::123456789012:role/admin",
            "--role-session-name",
            "escape",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("AccessDenied")
            && err.contains("sts:AssumeRole")
            && err.contains("credentials"),
        "{err}"
    );

    // Nothing secret reaches the gateway's log: upstream keys, the session's keys, the agent's token.
    gateway.stop();
    let log = gateway.log();
    let home = agent.iter().find(|(k, _)| k == "HOME").map(|(_, v)| v.clone()).unwrap();
    let token = std::fs::read_to_string(std::path::Path::new(&home).join("token")).unwrap();
    let mut secrets = vec![env.moto.gateway_user.secret_access_key.clone(), token];
    for entry in std::fs::read_dir(std::path::Path::new(&home).join(".aws/cli/cache")).unwrap() {
        let cached: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        secrets.push(cached["Credentials"]["SecretAccessKey"].as_str().unwrap().to_owned());
        secrets.push(cached["Credentials"]["SessionToken"].as_str().unwrap().to_owned());
    }
    assert!(secrets.len() >= 4, "the CLI cached the session's credentials");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret appears in the gateway's log");
    }

    // The recording: under the documented layout, intact, and telling what happened.
    let objects = common::recorded_objects(env, &gateway).await;
    assert!(
        objects.keys().all(|k| k.starts_with("agents/v1/e2e-cli/prod-aws/")),
        "{:?}",
        objects.keys()
    );
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "verification problems: {:#?}", report.problems);
    let events = common::events(&objects);
    let actions = common::requested_actions(&events);
    for expected in [
        "sts:GetCallerIdentity",
        "s3:CreateBucket",
        "s3:PutObject",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:DeleteObject",
        "dynamodb:CreateTable",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from recorded actions {actions:?}"
        );
    }
    assert_eq!(common::denied_actions(&events), ["iam:ListUsers", "sts:AssumeRole"]);
    let responses = events.iter().filter(|e| matches!(e.body, EventBody::Response(_))).count();
    assert_eq!(responses, actions.len(), "every forwarded request has its response recorded");
    for event in &events {
        let line = serde_json::to_string(event).unwrap();
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "a secret appears in the recording");
        }
    }

    // An auditor reads it with kubectl-chaperone and their own read-only keys.
    let cli =
        chaperone_tests::paths::workspace_binary("kubectl-chaperone", "kubectl-chaperone").unwrap();
    let auditor = &env.moto.auditor_user;
    let chaperone = |args: &[&str]| {
        let mut command = std::process::Command::new(&cli);
        chaperone_tests::aws::scrub_aws_env(&mut command);
        let output = command
            .args(args)
            .args([
                "--bucket",
                &gateway.spec.recording_bucket,
                "--prefix",
                "agents/",
                "--region",
                "us-east-1",
                "--endpoint-url",
                env.moto.endpoint(),
            ])
            .env("AWS_ACCESS_KEY_ID", &auditor.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &auditor.secret_access_key)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, listing, err) = chaperone(&["sessions", "list", "-o", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let sessions: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let session = sessions
        .as_array()
        .and_then(|s| s.first())
        .and_then(|s| s["session"].as_str())
        .unwrap_or_else(|| panic!("{listing}"))
        .to_owned();
    let (code, timeline, err) = chaperone(&["sessions", "show", &session]);
    assert_eq!(code, Some(0), "{err}");
    for expected in
        ["s3:CreateBucket", "s3:PutObject", "dynamodb:PutItem", "iam:ListUsers", "200", "403"]
    {
        assert!(timeline.contains(expected), "sessions show lacks {expected}:\n{timeline}");
    }
    let key = chaperone_recording::signing::encode_public_key(
        &chaperone_recording::RecordingSigner::from_seed(&gateway.recording_seed).verifying_key(),
    );
    let (code, summary, err) = chaperone(&["sessions", "verify", &session, "--public-key", &key]);
    assert_eq!(code, Some(0), "sessions verify: {summary}{err}");
}
