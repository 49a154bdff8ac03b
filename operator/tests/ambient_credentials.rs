//! A RecordingPolicy without `spec.s3.credentials` is checked with the operator's own AWS
//! credentials: the AWS SDK's default chain, here a web identity as IRSA gives the operator's pod
//! (a real TokenRequest token with audience sts.amazonaws.com, `AWS_ROLE_ARN`,
//! `AWS_WEB_IDENTITY_TOKEN_FILE`), exchanged at moto's STS. The operator runs as its own process
//! so that the chain reads exactly that environment. See `chaperone_tests::moto_sts` for why
//! moto's checks are opened one call at a time.

use std::process::Command;
use std::time::{Duration, Instant};

use chaperone_crds::RecordingPolicy;
use chaperone_tests::aws::scrub_aws_env;
use chaperone_tests::gateway::service_account_token;
use chaperone_tests::moto_sts::{
    create_role, moto_checks_signatures, open_moto_checks_for, python,
};
use chaperone_tests::objects::{create_in, ensure_namespace, example, set};
use chaperone_tests::ports::free_port;
use chaperone_tests::process::ManagedProcess;
use chaperone_tests::{LocalEnv, env::install_crds};
use kube::Api;
use serde_json::json;

const NAMESPACE: &str = "operator-ambient";
const BUCKET: &str = "operator-ambient-audit";
const SESSION: &str = "chaperone-operator";

#[tokio::test]
async fn a_recording_policy_without_credentials_is_checked_with_the_operators_web_identity() {
    chaperone_operator::runtime::tls::install_crypto_provider();
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.unwrap();
    install_crds(&admin).await.unwrap();
    ensure_namespace(&admin, NAMESPACE).await.unwrap();

    // The role may use only operator-ambient-* buckets; the bucket exists (made with moto's keys).
    let role_arn = create_role(env, "chaperone-operator-ambient", "operator-ambient-");
    let user = &env.moto.gateway_user;
    let script = r#"
import sys, boto3
endpoint, key, secret, bucket = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key, aws_secret_access_key=secret)
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
"#;
    python(env, script, &[&user.access_key_id, &user.secret_access_key, BUCKET])
        .expect("creating the bucket");

    let token =
        service_account_token(&admin, NAMESPACE, SESSION, "sts.amazonaws.com").await.unwrap();
    let dir = env.dir().join("operator-ambient");
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();

    let mut policy = example("recordingpolicy").unwrap();
    set(&mut policy, "/metadata/name", json!("ambient"));
    set(&mut policy, "/spec/s3/bucket", json!(BUCKET));
    set(&mut policy, "/spec/s3/endpoint", json!(env.moto.endpoint()));
    if let Some(s3) = policy["spec"]["s3"].as_object_mut() {
        s3.remove("credentials");
    }
    create_in(&admin, NAMESPACE, &policy).await.unwrap().unwrap();

    // What IRSA puts into the operator's pod (STS at moto), and nothing else the chain could
    // take first.
    let missing = dir.join("no-such-aws-file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_chaperone-operator"));
    scrub_aws_env(&mut command);
    command
        .env("KUBECONFIG", env.control_plane.admin_kubeconfig())
        .env("RUST_LOG", "info,chaperone_operator=debug")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_ROLE_ARN", &role_arn)
        .env("AWS_ROLE_SESSION_NAME", SESSION)
        .env("AWS_ENDPOINT_URL_STS", env.moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["--namespace", "chaperone-system"])
        .args(["--watch-namespace", NAMESPACE])
        .args(["--service-account-issuer", env.control_plane.issuer()])
        .args(["--admin", &format!("127.0.0.1:{}", free_port().unwrap())])
        .args(["--webhooks", "false"])
        .args(["--audit-api", "false"])
        .args(["--leader-election", "false"])
        .args(["--log-format", "text"]);
    let log = env.dir().join("operator-ambient.log");
    let mut operator = ManagedProcess::start("chaperone-operator", command, &log).unwrap();

    // The chain exchanges the token at moto's STS on the first check: open moto's checks for one
    // call at a time until the policy's bucket answers.
    let policies: Api<RecordingPolicy> = Api::namespaced(admin.clone(), NAMESPACE);
    let started = Instant::now();
    let reachable = loop {
        operator.ensure_running().unwrap();
        let current = policies.get("ambient").await.unwrap();
        let conditions = current.status.map(|s| s.conditions).unwrap_or_default();
        if let Some(found) =
            conditions.iter().find(|c| c.type_ == "BucketReachable" && c.status == "True")
        {
            break found.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the policy's bucket never answered with the operator's credentials: {conditions:?}\n----- operator log -----\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        open_moto_checks_for(env, 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert!(moto_checks_signatures(env), "moto's signature checks are back on");
    assert!(
        reachable.message.contains("the operator's own credentials (the AWS SDK's default chain"),
        "{}",
        reachable.message
    );
    // Temporary keys from STS (moto's start with ASIA, as AWS's do): the only source in the
    // chain's reach was the web identity. (moto's state dump, which would name the role, does
    // not serialize in the shared environment once other tests stored bucket policies.)
    assert!(reachable.message.contains("access key ASIA"), "{}", reachable.message);
    // The lifecycle rule was written with the assumed role's keys too.
    let started = Instant::now();
    loop {
        let current = policies.get("ambient").await.unwrap();
        let conditions = current.status.map(|s| s.conditions).unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "LifecycleApplied" && c.status == "True") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{conditions:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(operator);
}
