//! The AWS SDK for JavaScript v3 and the Rust `aws-sdk-s3`, unmodified and configured only by their
//! environment, run a whole S3 session against moto, and report its refusals by their AWS codes.
//! The gateway's tests run the same sessions through the gateway.

use std::{
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

use chaperone_tests::{
    LocalEnv,
    clients::{
        S3Step, StepResult, node_s3_session, rust_s3_session, rust_s3_session_expecting_denied,
        static_keys_env, web_identity_env,
    },
    ports::free_port,
    process::ManagedProcess,
};

fn every_step_passed(steps: &[StepResult]) {
    let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
    let expected: Vec<&str> = S3Step::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, expected, "{steps:#?}");
    assert!(steps.iter().all(|s| s.ok && !s.denied), "{steps:#?}");
}

fn failed_first_step_with(steps: &[StepResult], code: &str) {
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(steps[0].step, "create-bucket");
    assert!(!steps[0].ok, "{steps:#?}");
    assert_eq!(steps[0].code.as_deref(), Some(code), "{steps:#?}");
}

#[tokio::test]
async fn the_javascript_sdk_runs_a_whole_s3_session_with_static_keys() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let vars = static_keys_env(env.moto.endpoint(), &env.moto.gateway_user);
    let steps = node_s3_session(&env.provisioned.node, &vars, "sdk-js-static", None).await.unwrap();
    every_step_passed(&steps);
}

#[tokio::test]
async fn the_rust_sdk_runs_a_whole_s3_session_with_static_keys() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let vars = static_keys_env(env.moto.endpoint(), &env.moto.gateway_user);
    let steps = rust_s3_session(&vars, "sdk-rust-static").await.unwrap();
    every_step_passed(&steps);
}

#[tokio::test]
async fn both_sdks_report_signature_does_not_match_for_a_wrong_secret() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut user = env.moto.gateway_user.clone();
    user.secret_access_key.push('x');
    let vars = static_keys_env(env.moto.endpoint(), &user);

    let node =
        node_s3_session(&env.provisioned.node, &vars, "sdk-js-wrong-secret", None).await.unwrap();
    failed_first_step_with(&node, "SignatureDoesNotMatch");

    let rust = rust_s3_session(&vars, "sdk-rust-wrong-secret").await.unwrap();
    failed_first_step_with(&rust, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn both_sdks_see_the_expected_access_denied_as_the_sessions_outcome() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    // The auditor may read S3 but not create buckets.
    let vars = static_keys_env(env.moto.endpoint(), &env.moto.auditor_user);
    // The denial, with whatever message moto gave (`Access Denied`).
    let denied = |message: Option<String>| StepResult {
        step: "create-bucket".into(),
        ok: true,
        denied: true,
        code: Some("AccessDenied".into()),
        message,
    };

    let node =
        node_s3_session(&env.provisioned.node, &vars, "sdk-js-auditor", Some(S3Step::CreateBucket))
            .await
            .unwrap();
    assert_eq!(node.len(), 1);
    assert!(node[0].message.as_deref().is_some_and(|m| !m.is_empty()), "{node:?}");
    assert_eq!(node, vec![denied(node[0].message.clone())]);
    let rust = rust_s3_session_expecting_denied(&vars, "sdk-rust-auditor", S3Step::CreateBucket)
        .await
        .unwrap();
    assert_eq!(rust.len(), 1);
    assert!(rust[0].message.as_deref().is_some_and(|m| !m.is_empty()), "{rust:?}");
    assert_eq!(rust, vec![denied(rust[0].message.clone())]);

    // Without the expectation the same denial fails the session, with its code.
    let node = node_s3_session(&env.provisioned.node, &vars, "sdk-js-auditor", None).await.unwrap();
    failed_first_step_with(&node, "AccessDenied");
    let rust = rust_s3_session(&vars, "sdk-rust-auditor").await.unwrap();
    failed_first_step_with(&rust, "AccessDenied");
}

#[tokio::test]
async fn an_expected_denial_that_does_not_happen_fails_the_session() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let vars = static_keys_env(env.moto.endpoint(), &env.moto.gateway_user);
    let node =
        node_s3_session(&env.provisioned.node, &vars, "sdk-js-not-denied", Some(S3Step::Put))
            .await
            .unwrap();
    assert_eq!(node.last().and_then(|s| s.code.as_deref()), Some("UnexpectedSuccess"));
    let rust =
        rust_s3_session_expecting_denied(&vars, "sdk-rust-not-denied", S3Step::Put).await.unwrap();
    assert_eq!(rust.last().and_then(|s| s.code.as_deref()), Some("UnexpectedSuccess"));
    assert_eq!(outline(&node), outline(&rust));
}

/// Each step's name, outcome and code, without the clients' differently worded messages.
fn outline(steps: &[StepResult]) -> Vec<(&str, bool, Option<&str>)> {
    steps.iter().map(|s| (s.step.as_str(), s.ok, s.code.as_deref())).collect()
}

/// A second moto, without signature checking: the environment's moto refuses the unsigned
/// AssumeRoleWithWebIdentity call (the gateway answers it itself), so the web identity chain is
/// shown against this one.
fn start_moto_without_auth(env: &LocalEnv) -> (ManagedProcess, String) {
    let dir = env.dir().join("moto-without-auth");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port().unwrap();
    let mut command = Command::new(env.provisioned.python.bin("moto_server"));
    command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut process =
        ManagedProcess::start("moto-without-auth", command, &dir.join("moto.log")).unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        process.ensure_running().unwrap();
        assert!(started.elapsed() < Duration::from_secs(60), "moto did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (process, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn both_sdks_run_a_whole_s3_session_on_web_identity_from_the_environment_alone() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let (moto, endpoint) = start_moto_without_auth(env);
    let token_file = env.dir().join("moto-without-auth/agent-token");
    std::fs::write(&token_file, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZ2VudCJ9.").unwrap();
    let vars = web_identity_env(
        &endpoint,
        "arn:aws:iam::123456789012:role/agent",
        "agent-session",
        &token_file,
    );

    let node =
        node_s3_session(&env.provisioned.node, &vars, "sdk-js-web-identity", None).await.unwrap();
    every_step_passed(&node);
    let rust = rust_s3_session(&vars, "sdk-rust-web-identity").await.unwrap();
    every_step_passed(&rust);

    // Each SDK exchanged the token with AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL: STS's
    // query protocol is a POST to the root; S3 never is.
    let log = std::fs::read_to_string(moto.log_path()).unwrap();
    let exchanges = log.lines().filter(|l| l.contains("\"POST / HTTP/1.1\" 200")).count();
    assert_eq!(exchanges, 2, "{log}");
}
