//! The gateway's own upstream credentials against real moto STS with signature checking on: a web
//! identity (a real TokenRequest token, audience sts.amazonaws.com) exchanged with
//! AssumeRoleWithWebIdentity, and static keys with an assumed role whose session names the agent.
//! The real AWS CLI goes through the gateway; moto's own state shows which identity signed.
//!
//! moto checks every signed call, but it cannot serve an unsigned AssumeRoleWithWebIdentity while
//! its checks are on (it looks for an Authorization header); real STS never asks for one. So the
//! web identity test opens moto's check for exactly one call (`/moto-api/reset-auth`), lets the
//! gateway spend it on the exchange, and proves the checks are back on before any agent call.

use crate::common;

use std::time::{Duration, Instant};

use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli, service_account_token},
    moto_sts::{assumed_roles, create_role, moto_checks_signatures, open_moto_checks_for, python},
};
use serde_json::{Value, json};

/// The tests share one moto, and one of them opens its signature checks for a call: they run one
/// at a time, so no other test's call is served unchecked.
static MOTO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The gateway's OpenMetrics text.
fn metrics(env: &LocalEnv, gateway: &GatewayProcess) -> String {
    let script = "import sys, urllib.request\nprint(urllib.request.urlopen(sys.argv[2] + '/metrics').read().decode())";
    python(env, script, &[&gateway.admin]).expect("reading the gateway's metrics")
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

const WEB_IDENTITY_OK: &str =
    "chaperone_gateway_upstream_credential_exchanges_total{kind=\"web_identity\",outcome=\"ok\"}";
const ASSUME_ROLE_OK: &str =
    "chaperone_gateway_upstream_credential_exchanges_total{kind=\"assume_role\",outcome=\"ok\"}";
const ASSUME_ROLE_ERROR: &str =
    "chaperone_gateway_upstream_credential_exchanges_total{kind=\"assume_role\",outcome=\"error\"}";

#[tokio::test(flavor = "multi_thread")]
async fn a_web_identity_connection_signs_the_aws_cli_session_with_the_roles_temporary_keys() {
    let _one_at_a_time = MOTO.lock().await;
    let env = LocalEnv::own();
    let _logs = env.logs_on_failure();
    let namespace = "upstream-webid";
    let role_arn = create_role(env, "chaperone-gateway-webid", "webid-");

    // The gateway's own token, as the projected volume the operator adds would hold it.
    let client = env.control_plane.client().await.unwrap();
    let token = service_account_token(&client, namespace, "chaperone-gateway", "sts.amazonaws.com")
        .await
        .unwrap();
    let token_dir = env.dir().join("upstream-webid-token");
    std::fs::create_dir_all(&token_dir).unwrap();
    let token_file = token_dir.join("token");
    std::fs::write(&token_file, &token).unwrap();

    let mut spec = GatewaySpec::new(namespace);
    spec.upstream = Some(json!({"webIdentity": {
        "roleArn": role_arn,
        "tokenFile": token_file,
        "stsEndpoint": env.moto.endpoint(),
    }}));
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let upstream = &gateway.config["connections"][0]["upstream"];
    assert!(upstream.get("accessKeyId").is_none(), "no static keys: {upstream}");

    // Open moto for one unsigned call and make the gateway exchange its token (a config reload
    // primes it); anything else may take that call first, so try a few times.
    let started = Instant::now();
    let mut attempt = 0;
    while counter(&metrics(env, &gateway), WEB_IDENTITY_OK) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway never exchanged its token; log:\n{}",
            gateway.log()
        );
        attempt += 1;
        open_moto_checks_for(env, 1);
        gateway
            .rewrite_config(|c| c["connections"][0]["maxSessionSeconds"] = json!(3600 + attempt))
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(moto_checks_signatures(env), "moto's signature checks are back on");

    let session_name = format!("chaperone-gateway.{namespace}");
    let sessions = assumed_roles(env);
    let session = sessions
        .iter()
        .find(|s| s["role_arn"] == role_arn.as_str() && s["session_name"] == session_name.as_str())
        .unwrap_or_else(|| {
            panic!("moto issued no session {session_name} of {role_arn}: {sessions:?}")
        });

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
    run(&["s3", "mb", "s3://webid-data"]);
    let file = gateway.dir.join("webid.txt");
    std::fs::write(&file, "signed with the role's temporary keys\n").unwrap();
    run(&["s3", "cp", file.to_str().unwrap(), "s3://webid-data/hello.txt"]);
    let listing = run(&["s3", "ls", "s3://webid-data/"]);
    assert!(listing.contains("hello.txt"), "{listing}");

    // The gateway's policy allows s3:*, the role only webid-* buckets: moto's refusal shows the
    // calls are signed as the role, not with any allow-all keys.
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", "s3://elsewhere-data"]);
    assert!(!ok, "a bucket outside the role's policy was created");
    assert!(err.contains("AccessDenied") && !err.contains("AgentConnection"), "{err}");

    let log = gateway.log();
    let secret = session["secret_access_key"].as_str().unwrap();
    let session_token = session["session_token"].as_str().unwrap();
    assert!(!log.contains(secret) && !log.contains(session_token), "temporary keys were logged");
    assert!(!log.contains(&token), "the web identity token was logged");
    gateway.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assumed_role_is_used_once_per_agent_with_a_session_named_after_the_agent() {
    let _one_at_a_time = MOTO.lock().await;
    let env = LocalEnv::own();
    let _logs = env.logs_on_failure();
    let namespace = "upstream-assume";
    let role_arn = create_role(env, "chaperone-agents", "assumed-");
    let user = &env.moto.gateway_user;
    let mut spec = GatewaySpec::new(namespace);
    spec.service_accounts = vec!["pr-bot".into(), "ci-bot".into()];
    spec.upstream = Some(json!({
        "accessKeyId": user.access_key_id,
        "secretAccessKey": user.secret_access_key,
        "assumeRole": {"roleArn": role_arn, "externalId": "chaperone-test"},
    }));
    let gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();

    let pr_bot = gateway.agent_env(env, "pr-bot").await.unwrap();
    let ci_bot = gateway.agent_env(env, "ci-bot").await.unwrap();
    let run = |agent: &[(String, String)], args: &[&str]| {
        let (ok, out, err) = aws_cli(env, agent, args);
        assert!(
            ok,
            "aws {} failed:\n{err}\n----- gateway log -----\n{}",
            args.join(" "),
            gateway.log()
        );
        out
    };
    run(&pr_bot, &["s3", "mb", "s3://assumed-data"]);
    let file = gateway.dir.join("assumed.txt");
    std::fs::write(&file, "signed as the assumed role\n").unwrap();
    run(&pr_bot, &["s3", "cp", file.to_str().unwrap(), "s3://assumed-data/pr-bot.txt"]);
    run(&ci_bot, &["s3", "cp", file.to_str().unwrap(), "s3://assumed-data/ci-bot.txt"]);
    let listing = run(&ci_bot, &["s3", "ls", "s3://assumed-data/"]);
    assert!(listing.contains("pr-bot.txt") && listing.contains("ci-bot.txt"), "{listing}");

    // The static keys are allowed everything, the role only assumed-* buckets.
    let (ok, _, err) = aws_cli(env, &pr_bot, &["s3", "mb", "s3://unassumed-data"]);
    assert!(!ok, "a bucket outside the role's policy was created");
    assert!(err.contains("AccessDenied") && !err.contains("AgentConnection"), "{err}");

    let sessions = assumed_roles(env);
    for agent in ["pr-bot", "ci-bot"] {
        let name = format!("{namespace}.{agent}");
        let found: Vec<&Value> = sessions
            .iter()
            .filter(|s| s["role_arn"] == role_arn.as_str() && s["session_name"] == name.as_str())
            .collect();
        assert_eq!(found.len(), 1, "one cached session {name} of {role_arn}: {sessions:?}");
        assert_eq!(found[0]["external_id"], "chaperone-test");
        assert!(
            found[0]["arn"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":assumed-role/chaperone-agents/{name}")),
            "{}",
            found[0]["arn"]
        );
    }
    assert_eq!(counter(&metrics(env, &gateway), ASSUME_ROLE_OK), 2, "one AssumeRole per agent");
    let log = gateway.log();
    assert!(!log.contains(&user.secret_access_key), "static keys were logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_sts_refuses_answers_the_agent_service_unavailable_naming_the_role_and_sts() {
    let _one_at_a_time = MOTO.lock().await;
    let env = LocalEnv::own();
    let _logs = env.logs_on_failure();
    let role_arn = create_role(env, "chaperone-refused", "refused-");
    // The auditor may only read S3: moto refuses its sts:AssumeRole.
    let auditor = &env.moto.auditor_user;
    let mut spec = GatewaySpec::new("upstream-refused");
    spec.upstream = Some(json!({
        "accessKeyId": auditor.access_key_id,
        "secretAccessKey": auditor.secret_access_key,
        "assumeRole": {"roleArn": role_arn},
    }));
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let mut agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    agent.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));

    let (ok, _, err) = aws_cli(env, &agent, &["s3", "ls", "s3://refused-data/"]);
    assert!(!ok);
    assert!(err.contains("ServiceUnavailable"), "{err}");
    assert!(err.contains(&role_arn) && err.contains("sts:AssumeRole"), "{err}");
    assert!(err.contains("AccessDenied"), "STS's own answer is passed on: {err}");
    assert!(err.contains("AgentConnection upstream-refused/prod-aws"), "{err}");

    let text = metrics(env, &gateway);
    assert!(counter(&text, ASSUME_ROLE_ERROR) >= 1, "{text}");
    // Still serving: the next call gets the same clear answer, not a dropped connection.
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "ls", "s3://refused-data/"]);
    assert!(!ok && err.contains("ServiceUnavailable"), "{err}");
    assert!(!gateway.log().contains(&auditor.secret_access_key), "static keys were logged");
    gateway.stop();
}

/// The sum of every series of metric `name` (whatever its labels).
fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_policy_without_credentials_records_with_the_gateways_web_identity() {
    let _one_at_a_time = MOTO.lock().await;
    let env = LocalEnv::own();
    let _logs = env.logs_on_failure();
    let namespace = "ambient-rec";
    // The role may write only ambient-* buckets; the recording bucket is ambient-rec-audit.
    let role_arn = create_role(env, "chaperone-recorder-ambient", "ambient-");
    let client = env.control_plane.client().await.unwrap();
    let token = service_account_token(&client, namespace, "chaperone-gateway", "sts.amazonaws.com")
        .await
        .unwrap();
    let token_dir = env.dir().join("ambient-rec-token");
    std::fs::create_dir_all(&token_dir).unwrap();
    let token_file = token_dir.join("token");
    std::fs::write(&token_file, &token).unwrap();

    // What IRSA injects into the gateway's pod (with STS at moto), and nothing else the SDK's
    // default chain could take first.
    let mut spec = GatewaySpec::new(namespace);
    let missing = env.dir().join("no-such-aws-file");
    spec.ambient_recorder_env = Some(
        [
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.display().to_string()),
            ("AWS_ROLE_ARN", role_arn.clone()),
            ("AWS_ROLE_SESSION_NAME", "chaperone-recorder".to_owned()),
            ("AWS_ENDPOINT_URL_STS", env.moto.endpoint().to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_CONFIG_FILE", missing.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", missing.display().to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec(),
    );
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    assert_eq!(gateway.config["recordingCredentials"], json!({}), "no recorder keys configured");

    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "ls"]);
    assert!(ok, "aws s3 ls failed:\n{err}\n----- gateway log -----\n{}", gateway.log());

    // The recorder's first upload makes the SDK chain exchange the token at moto's STS, which
    // moto serves only with its checks open (see the module's note): open them for one call at a
    // time until a segment is uploaded.
    let started = Instant::now();
    while metric_sum(&metrics(env, &gateway), "chaperone_gateway_recorder_segments_uploaded_total")
        < 1.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the recorder never uploaded with its ambient credentials; log:\n{}",
            gateway.log()
        );
        open_moto_checks_for(env, 1);
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(moto_checks_signatures(env), "moto's signature checks are back on");
    let sessions = assumed_roles(env);
    assert!(
        sessions.iter().any(
            |s| s["role_arn"] == role_arn.as_str() && s["session_name"] == "chaperone-recorder"
        ),
        "moto issued no session chaperone-recorder of {role_arn}: {sessions:?}"
    );

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let actions = common::requested_actions(&common::events(&objects));
    assert!(actions.iter().any(|a| a == "s3:ListAllMyBuckets"), "{actions:?}");
}
