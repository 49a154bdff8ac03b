//! The AWS SDK for JavaScript v3 on Node, the AWS SDK for Go v2 and the Rust aws-sdk-s3 through
//! the real gateway, with only the injected environment (web identity at AWS_ENDPOINT_URL, and AWS_ENDPOINT_URL_STS for the Go SDK); a denied action reaches each
//! as AccessDenied naming the rule.

use crate::common;

use chaperone_tests::{
    LocalEnv,
    clients::{
        S3Step, first_failure, go_sdk_session, node_s3_session, rust_s3_session,
        rust_s3_session_expecting_denied,
    },
    gateway::{GatewayProcess, GatewaySpec},
};

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_and_rust_sdks_complete_s3_sessions_and_see_denials_through_the_gateway() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("e2e-sdks");
    spec.deny.push("s3:DeleteBucket".into());
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let node = &env.provisioned.node;

    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let steps =
        node_s3_session(node, &agent, "node-sdk-data", Some(S3Step::DeleteBucket)).await.unwrap();
    assert!(first_failure(&steps).is_none(), "JavaScript SDK: {steps:?}\n{}", gateway.log());
    let denied = steps.last().unwrap();
    assert!(denied.denied && denied.step == "delete-bucket", "{steps:?}");
    let message = denied.message.clone().unwrap_or_default();
    assert!(
        message.contains("s3:DeleteBucket") && message.contains("spec.policy.deny"),
        "{message}"
    );

    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let steps = rust_s3_session_expecting_denied(&agent, "rust-sdk-data", S3Step::DeleteBucket)
        .await
        .unwrap();
    assert!(first_failure(&steps).is_none(), "Rust SDK: {steps:?}\n{}", gateway.log());
    let denied = steps.last().unwrap();
    assert!(denied.denied, "{steps:?}");
    let message = denied.message.clone().unwrap_or_default();
    assert!(
        message.contains("s3:DeleteBucket")
            && message.contains("AgentConnection/e2e-sdks/prod-aws"),
        "{message}"
    );

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let events = common::events(&objects);
    assert_eq!(common::denied_actions(&events), ["s3:DeleteBucket", "s3:DeleteBucket"]);
    let actions = common::requested_actions(&events);
    assert_eq!(actions.iter().filter(|a| *a == "s3:PutObject").count(), 2, "{actions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_rust_sdk_session_goes_through_with_only_web_identity() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway =
        GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-rust")).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let steps = rust_s3_session(&agent, "rust-full").await.unwrap();
    assert!(first_failure(&steps).is_none(), "{steps:?}\n{}", gateway.log());
    assert_eq!(steps.len(), 6, "{steps:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_go_sdk_v2_runs_web_identity_s3_and_dynamodb_through_the_gateway() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut gateway =
        GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-go")).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let steps = go_sdk_session(&agent, "go-sdk-data").await.unwrap();
    assert!(first_failure(&steps).is_none(), "Go SDK v2: {steps:?}\n{}", gateway.log());
    let names: Vec<&str> = steps.iter().map(|step| step.step.as_str()).collect();
    assert_eq!(
        names,
        ["web-identity", "create-bucket", "put", "list", "get", "dynamodb-list-tables"],
        "{steps:?}"
    );

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let actions = common::requested_actions(&common::events(&objects));
    for action in
        ["s3:CreateBucket", "s3:PutObject", "s3:ListBucket", "s3:GetObject", "dynamodb:ListTables"]
    {
        assert!(actions.iter().any(|a| a == action), "{action} not recorded: {actions:?}");
    }
}
