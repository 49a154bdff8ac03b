//! `kubectl chaperone replay` and `policy suggest` on sessions the real gateway recorded while the
//! real AWS CLI worked through it against moto (signature checks on); replays go to fresh moto
//! servers (sandboxes) signed with the sandbox's own keys.

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use chaperone_tests::{
    AwsUser, LocalEnv, MotoServer,
    aws::{REGION, scrub_aws_env},
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
    ports::free_port,
};
use support::Run;

fn gateway_binary() -> PathBuf {
    chaperone_tests::paths::workspace_binary("chaperone-gateway", "chaperone-gateway")
        .expect("the gateway binary builds")
}

/// Runs the AWS CLI directly against `endpoint` as `user` (not through the gateway, not recorded).
fn aws_direct(env: &LocalEnv, endpoint: &str, user: &AwsUser, args: &[&str]) -> String {
    let output = env
        .moto
        .aws_cli_command()
        .args(["--endpoint-url", endpoint, "--region", REGION])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &user.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &user.secret_access_key)
        .output()
        .expect("the AWS CLI runs");
    assert!(
        output.status.success(),
        "aws {} at {endpoint} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the agent's session relies on existing beforehand: a bucket with one object.
fn prepare_sandbox(env: &LocalEnv, endpoint: &str, user: &AwsUser, dir: &Path) {
    let seed = dir.join("seed.txt");
    std::fs::write(&seed, "prepared before the session\n").expect("write seed");
    aws_direct(env, endpoint, user, &["s3api", "create-bucket", "--bucket", "replay-fixtures"]);
    aws_direct(
        env,
        endpoint,
        user,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "replay-fixtures",
            "--key",
            "seed.txt",
            "--body",
            seed.to_str().expect("utf-8 path"),
        ],
    );
}

/// The agent's work: S3 and DynamoDB calls through the gateway, and one call its policy denies.
fn agent_session(
    env: &LocalEnv,
    gateway: &GatewayProcess,
    agent: &[(String, String)],
    bucket: &str,
    table: &str,
    read_fixture: bool,
) {
    let run = |args: &[&str]| {
        let (ok, out, err) = aws_cli(env, agent, args);
        assert!(
            ok,
            "aws {} failed:\n{err}\n----- gateway log -----\n{}",
            args.join(" "),
            gateway.log()
        );
        out
    };
    let dir = &gateway.dir;
    let file = dir.join("a.txt");
    std::fs::write(&file, "first line\nsecond line\n").expect("write");
    let out = dir.join("a-back.txt");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    run(&["s3api", "create-bucket", "--bucket", bucket]);
    run(&[
        "s3api",
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "notes/a.txt",
        "--body",
        &path(&file),
    ]);
    run(&["s3api", "get-object", "--bucket", bucket, "--key", "notes/a.txt", &path(&out)]);
    let listing = run(&["s3api", "list-objects-v2", "--bucket", bucket]);
    assert!(listing.contains("notes/a.txt"), "{listing}");
    if read_fixture {
        run(&[
            "s3api",
            "get-object",
            "--bucket",
            "replay-fixtures",
            "--key",
            "seed.txt",
            &path(&dir.join("seed-back.txt")),
        ]);
    }
    run(&[
        "dynamodb",
        "create-table",
        "--table-name",
        table,
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
        table,
        "--item",
        r#"{"id":{"S":"b-1"},"state":{"S":"green"}}"#,
    ]);
    let item =
        run(&["dynamodb", "get-item", "--table-name", table, "--key", r#"{"id":{"S":"b-1"}}"#]);
    assert!(item.contains("green"), "{item}");
}

/// Runs `kubectl-chaperone` with a shared credentials file holding the named profiles, and no
/// other AWS settings.
fn chaperone(dir: &Path, profiles: &[(&str, &AwsUser)], args: &[&str]) -> Run {
    let credentials = dir.join(format!("credentials-{}", free_port().expect("a port")));
    let text: String = profiles
        .iter()
        .map(|(name, user)| {
            format!(
                "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                user.access_key_id, user.secret_access_key
            )
        })
        .collect();
    std::fs::write(&credentials, text).expect("write credentials");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-chaperone"));
    scrub_aws_env(&mut command);
    command
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("KUBECONFIG")
        .args(args);
    command.output().expect("kubectl-chaperone runs").into()
}

/// The recording bucket flags, read with the auditor's profile.
fn bucket_flags<'a>(env: &'a LocalEnv, gateway: &'a GatewayProcess) -> Vec<&'a str> {
    vec![
        "--bucket",
        &gateway.spec.recording_bucket,
        "--prefix",
        "agents/",
        "--region",
        REGION,
        "--endpoint-url",
        env.moto.endpoint(),
        "--profile",
        "recordings",
    ]
}

/// The id of the one session in the gateway's bucket.
fn only_session(env: &LocalEnv, gateway: &GatewayProcess) -> String {
    let mut args = vec!["sessions", "list", "-o", "json"];
    args.extend(bucket_flags(env, gateway));
    let run = chaperone(&gateway.dir, &[("recordings", &env.moto.auditor_user)], &args);
    assert_eq!(run.code, Some(0), "{run:?}");
    let sessions: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let list = sessions.as_array().expect("an array");
    assert_eq!(list.len(), 1, "{}", run.stdout);
    list[0]["session"].as_str().expect("a session id").to_owned()
}

/// The line of `stdout` about the call with this action (and, if given, path), by its label.
fn line_for<'a>(stdout: &'a str, action: &str, path: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(&format!("] {action} ")) && l.contains(path))
        .unwrap_or_else(|| panic!("no line for {action} {path} in:\n{stdout}"))
}

fn sandbox(env: &LocalEnv, name: &str) -> MotoServer {
    let dir = env.dir().join(format!("{name}-{}", free_port().expect("a port")));
    std::fs::create_dir_all(&dir).expect("sandbox dir");
    MotoServer::start(&env.provisioned.python, &dir).expect("a sandbox moto starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_session_replays_the_same_on_a_sandbox_prepared_alike_and_differs_where_a_bucket_is_missing()
 {
    let env = support::environment();
    let _logs = env.logs_on_failure();
    prepare_sandbox(env, env.moto.endpoint(), &env.moto.gateway_user, env.dir());
    // Plain HTTP: over HTTPS the AWS CLI sends uploads aws-chunked with a trailing CRC32, which a
    // replay does not re-send (docs/auditing.md), so the replayed listing would differ by its
    // ChecksumAlgorithm.
    let mut spec = GatewaySpec::new("replay-e2e");
    spec.plaintext = true;
    let mut gateway =
        GatewayProcess::start(env, &gateway_binary(), spec).await.expect("the gateway starts");
    let agent = gateway.agent_env(env, "pr-bot").await.expect("agent environment");
    agent_session(env, &gateway, &agent, "replay-data", "replay-builds", true);
    let (ok, _, err) = aws_cli(env, &agent, &["iam", "list-users"]);
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    gateway.stop();
    let session = only_session(env, &gateway);
    let key = chaperone_recording::signing::encode_public_key(
        &chaperone_recording::RecordingSigner::from_seed(&gateway.recording_seed).verifying_key(),
    );

    let prepared = sandbox(env, "sandbox-prepared");
    prepare_sandbox(env, prepared.endpoint(), &prepared.gateway_user, &gateway.dir);
    let missing_bucket = sandbox(env, "sandbox-missing-bucket");
    let replay = |target: &MotoServer, extra: &[&str]| {
        let mut args = vec!["replay", session.as_str(), "--endpoint", target.endpoint()];
        args.extend(["--sandbox-profile", "sandbox", "--public-key", key.as_str()]);
        args.extend(bucket_flags(env, &gateway));
        args.extend_from_slice(extra);
        chaperone(
            &gateway.dir,
            &[("recordings", &env.moto.auditor_user), ("sandbox", &target.gateway_user)],
            &args,
        )
    };

    // A sandbox prepared the same way answers every replayed call as the recording says.
    let run = replay(&prepared, &[]);
    println!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("verified intact"), "{}", run.stdout);
    for (action, path) in [
        ("s3:CreateBucket", "/replay-data"),
        ("s3:PutObject", "/replay-data/notes/a.txt"),
        ("s3:GetObject", "/replay-data/notes/a.txt"),
        ("s3:ListBucket", "/replay-data"),
        ("s3:GetObject", "/replay-fixtures/seed.txt"),
        ("dynamodb:CreateTable", "POST /"),
        ("dynamodb:PutItem", "POST /"),
        ("dynamodb:GetItem", "POST /"),
    ] {
        let line = line_for(&run.stdout, action, path);
        assert!(line.ends_with(": same"), "{line}");
    }
    let denied = line_for(&run.stdout, "iam:ListUsers", "");
    assert!(denied.contains("skipped: denied by policy.deny[0]: iam:*"), "{denied}");
    assert!(run.stdout.contains(", 0 status differs, 0 body differs,"), "{}", run.stdout);

    // Without the prepared bucket, the read of it differs (and the rest still matches); the
    // exit status says something differed.
    let run = replay(&missing_bucket, &["--stop-on-diff"]);
    println!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let differs = line_for(&run.stdout, "s3:GetObject", "/replay-fixtures/seed.txt");
    assert!(differs.contains("status differs: recorded 200, replayed 404"), "{differs}");
    assert!(run.stdout.contains("NoSuchBucket"), "{}", run.stdout);
    assert!(run.stdout.contains("stopping at the first difference"), "{}", run.stdout);
    assert!(!run.stdout.contains("dynamodb:CreateTable"), "stopped before it: {}", run.stdout);
    assert!(line_for(&run.stdout, "s3:PutObject", "/replay-data/notes/a.txt").ends_with(": same"));

    // Only the mutating calls: the missing bucket's read is skipped, the table is created anew.
    let run = replay(&missing_bucket, &["--only-mutating"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let read = line_for(&run.stdout, "s3:GetObject", "/replay-fixtures/seed.txt");
    assert!(read.ends_with("skipped: read-only (--only-mutating)"), "{read}");
    assert!(line_for(&run.stdout, "dynamodb:CreateTable", "POST /").ends_with(": same"));

    // A recording that does not verify is not replayed.
    let other_key = chaperone_recording::signing::encode_public_key(
        &chaperone_recording::RecordingSigner::from_seed(&[7; 32]).verifying_key(),
    );
    let mut args = vec!["replay", session.as_str(), "--endpoint", prepared.endpoint()];
    args.extend(["--sandbox-profile", "sandbox", "--public-key", other_key.as_str()]);
    args.extend(bucket_flags(env, &gateway));
    let run = chaperone(
        &gateway.dir,
        &[("recordings", &env.moto.auditor_user), ("sandbox", &prepared.gateway_user)],
        &args,
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("NOT intact") && run.stderr.contains("--no-verify"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_suggest_admits_a_rerun_of_the_session_and_denies_an_action_it_never_used() {
    let env = support::environment();
    let _logs = env.logs_on_failure();
    let (bucket, table) = ("policy-data", "policy-builds");
    let mut recorded =
        GatewayProcess::start(env, &gateway_binary(), GatewaySpec::new("policy-e2e"))
            .await
            .expect("the gateway starts");
    let agent = recorded.agent_env(env, "pr-bot").await.expect("agent environment");
    agent_session(env, &recorded, &agent, bucket, table, false);
    let (ok, _, err) = aws_cli(env, &agent, &["iam", "list-users"]);
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    recorded.stop();
    let session = only_session(env, &recorded);
    let auditor = [("recordings", &env.moto.auditor_user)];
    let suggest = |format: &str| {
        let mut args = vec!["policy", "suggest", session.as_str(), "--format", format];
        args.extend(bucket_flags(env, &recorded));
        let run = chaperone(&recorded.dir, &auditor, &args);
        assert_eq!(run.code, Some(0), "{run:?}");
        run
    };
    let expected: BTreeSet<String> = [
        "dynamodb:CreateTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "s3:CreateBucket",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    ]
    .map(String::from)
    .into();

    // The IAM policy: exactly the session's actions, with the resources it touched.
    let run = suggest("iam");
    println!("{}{}", run.stdout, run.stderr);
    let policy: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("the IAM policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("statements");
    let actions: BTreeSet<String> = statements
        .iter()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    assert_eq!(actions, expected, "{}", run.stdout);
    assert!(statements.iter().all(|s| s["Effect"] == "Allow"), "{}", run.stdout);
    assert!(run.stdout.contains("arn:aws:s3:::policy-data"), "{}", run.stdout);
    assert!(run.stdout.contains(":table/policy-builds"), "{}", run.stdout);
    assert!(
        run.stderr.contains("iam:ListUsers") && run.stderr.contains("policy.deny[0]"),
        "{}",
        run.stderr
    );

    // The AgentConnection allow list: the same actions.
    let run = suggest("agentconnection");
    println!("{}{}", run.stdout, run.stderr);
    let patch: serde_yaml::Value =
        serde_yaml::from_str(&run.stdout).expect("the allow list is YAML");
    let allow: Vec<String> = patch["spec"]["policy"]["allow"]
        .as_sequence()
        .expect("spec.policy.allow")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    assert_eq!(allow.iter().cloned().collect::<BTreeSet<_>>(), expected, "{}", run.stdout);
    assert!(run.stdout.contains("# Denied in these sessions"), "{}", run.stdout);

    // Applied to the connection, it admits the same session again (on a clean moto) ...
    aws_direct(
        env,
        env.moto.endpoint(),
        &env.moto.gateway_user,
        &["s3", "rb", &format!("s3://{bucket}"), "--force"],
    );
    aws_direct(
        env,
        env.moto.endpoint(),
        &env.moto.gateway_user,
        &["dynamodb", "delete-table", "--table-name", table],
    );
    let mut spec = GatewaySpec::new("policy-e2e");
    spec.allow = allow;
    spec.deny = Vec::new();
    let rerun =
        GatewayProcess::start(env, &gateway_binary(), spec).await.expect("the gateway starts");
    let agent = rerun.agent_env(env, "pr-bot").await.expect("agent environment");
    agent_session(env, &rerun, &agent, bucket, table, false);

    // ... and denies what the session never did, naming the rule.
    for args in [
        vec!["dynamodb", "delete-table", "--table-name", table],
        vec!["s3api", "delete-bucket", "--bucket", bucket],
    ] {
        let (ok, _, err) = aws_cli(env, &agent, &args);
        assert!(!ok, "aws {} was admitted", args.join(" "));
        assert!(
            err.contains("AccessDenied")
                && err.contains("AgentConnection/policy-e2e/prod-aws")
                && err.contains("spec.policy.allow"),
            "{err}"
        );
    }
}
