//! The four CRDs against the real API server: they install, the examples are accepted, and bad
//! objects are refused with messages that name the offending field.

use chaperone_tests::{
    LocalEnv,
    env::install_crds,
    objects::{all_examples, create_in, ensure_namespace, example, remove, set},
};
use serde_json::{Value, json};

async fn setup(namespace: &str) -> kube::Client {
    let env = LocalEnv::shared();
    let client = env.control_plane.client().await.expect("admin client");
    install_crds(&client).await.expect("CRDs install and become Established");
    ensure_namespace(&client, namespace).await.expect("namespace");
    client
}

#[tokio::test]
async fn the_four_crds_install_and_become_established() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    let mut names = install_crds(&client).await.unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "agentconnections.chaperone.dev",
            "approvalrequests.chaperone.dev",
            "approvalrules.chaperone.dev",
            "recordingpolicies.chaperone.dev"
        ]
    );
}

#[tokio::test]
async fn every_example_is_accepted_by_the_api_server() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let client = setup("examples-accepted").await;
    let examples = all_examples().unwrap();
    let custom: Vec<_> =
        examples.iter().filter(|(_, v)| v["apiVersion"] == "chaperone.dev/v1alpha1").collect();
    assert_eq!(custom.len(), 4, "one example of each kind");
    for (file, object) in custom {
        let created = create_in(&client, "examples-accepted", object).await.unwrap();
        let created = created.unwrap_or_else(|e| panic!("examples/{file}.yaml was refused: {e}"));
        assert_eq!(created.metadata.namespace.as_deref(), Some("examples-accepted"));
    }
}

/// Creates a variant of an example and asserts the API server refuses it with a message naming
/// `field` and containing `hint`.
async fn assert_refused(client: &kube::Client, object: Value, field: &str, hint: &str) {
    let answer = create_in(client, "invalid-objects", &object).await.unwrap();
    match answer {
        Ok(created) => panic!(
            "the API server accepted an invalid {} (expected a refusal naming {field})",
            created.types.map(|t| t.kind).unwrap_or_default()
        ),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "refusal should be Invalid (422): {status:?}");
            assert!(
                status.message.contains(field),
                "refusal does not name {field}: {}",
                status.message
            );
            assert!(status.message.contains(hint), "refusal lacks '{hint}': {}", status.message);
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn named(mut object: Value, name: &str) -> Value {
    set(&mut object, "/metadata/name", json!(name));
    object
}

#[tokio::test]
async fn invalid_agent_connections_are_refused_naming_the_field() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let client = setup("invalid-objects").await;
    let base = example("agentconnection").unwrap();

    let mut both = named(base.clone(), "two-credential-sources");
    set(
        &mut both,
        "/spec/aws/credentials/webIdentity",
        json!({"roleArn": "arn:aws:iam::123456789012:role/gw"}),
    );
    assert_refused(&client, both, "spec.aws.credentials", "exactly one credentials source").await;

    let mut none = named(base.clone(), "no-credential-source");
    remove(&mut none, "/spec/aws/credentials/secretRef");
    assert_refused(&client, none, "spec.aws.credentials", "exactly one credentials source").await;

    let mut bad_action = named(base.clone(), "bad-action-pattern");
    set(&mut bad_action, "/spec/policy/allow", json!(["s3:GetObject", "s3-PutObject"]));
    assert_refused(&client, bad_action, "spec.policy.allow", "IAM action pattern").await;

    let mut bad_deny = named(base.clone(), "bad-deny-pattern");
    set(&mut bad_deny, "/spec/policy/deny", json!(["iam"]));
    assert_refused(&client, bad_deny, "spec.policy.deny", "IAM action pattern").await;

    let mut no_agents = named(base.clone(), "no-agents");
    set(&mut no_agents, "/spec/agents/serviceAccounts", json!([]));
    assert_refused(&client, no_agents, "spec.agents.serviceAccounts", "at least 1").await;

    let mut bad_cidr = named(base.clone(), "bad-egress-cidr");
    set(
        &mut bad_cidr,
        "/spec/network",
        json!({"egress": "GatewayOnly", "allowedEgressCidrs": ["10.20.0.0/16", "10.0.0.0/33"]}),
    );
    let hint = "each entry must be a CIDR such as 10.20.0.0/16 or 2001:db8::/64";
    assert_refused(&client, bad_cidr, "spec.network.allowedEgressCidrs", hint).await;

    let mut cidrs_without_gateway_only = named(base.clone(), "egress-cidrs-without-gateway-only");
    set(
        &mut cidrs_without_gateway_only,
        "/spec/network",
        json!({"allowedEgressCidrs": ["10.0.0.0/8"]}),
    );
    let hint = "allowedEgressCidrs applies only with egress: GatewayOnly";
    assert_refused(&client, cidrs_without_gateway_only, "spec.network", hint).await;

    let mut unknown_egress = named(base.clone(), "unknown-egress-mode");
    set(&mut unknown_egress, "/spec/network", json!({"egress": "Everything"}));
    assert_refused(&client, unknown_egress, "spec.network.egress", "MetadataDenied").await;

    let mut short_session = named(base, "short-session");
    set(&mut short_session, "/spec/session/maxDurationSeconds", json!(60));
    assert_refused(&client, short_session, "spec.session.maxDurationSeconds", "900").await;
}

#[tokio::test]
async fn invalid_approval_rules_are_refused_naming_the_field() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let client = setup("invalid-objects").await;
    let base = example("approvalrule").unwrap();

    let mut long_hold = named(base.clone(), "hold-too-long");
    set(&mut long_hold, "/spec/holdSeconds", json!(601));
    assert_refused(&client, long_hold, "spec.holdSeconds", "600").await;

    let mut hold_over_validity = named(base.clone(), "hold-over-validity");
    set(&mut hold_over_validity, "/spec/holdSeconds", json!(120));
    set(&mut hold_over_validity, "/spec/approvalValidSeconds", json!(60));
    assert_refused(
        &client,
        hold_over_validity,
        "spec.holdSeconds",
        "holdSeconds must be less than approvalValidSeconds",
    )
    .await;

    let mut no_reviewers = named(base.clone(), "no-reviewers");
    set(&mut no_reviewers, "/spec/reviewers", json!({"required": 1}));
    assert_refused(&client, no_reviewers, "spec.reviewers", "name at least one reviewer").await;

    let mut zero_required = named(base.clone(), "zero-required");
    set(&mut zero_required, "/spec/reviewers/required", json!(0));
    assert_refused(&client, zero_required, "spec.reviewers.required", "1").await;

    let mut bad_match = named(base, "bad-match-action");
    set(&mut bad_match, "/spec/match/actions", json!(["DeleteBucket"]));
    assert_refused(&client, bad_match, "spec.match.actions", "IAM action pattern").await;
}

#[tokio::test]
async fn invalid_recording_policies_are_refused_naming_the_field() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let client = setup("invalid-objects").await;
    let base = example("recordingpolicy").unwrap();

    let mut zero_days = named(base.clone(), "zero-retention");
    set(&mut zero_days, "/spec/retention/days", json!(0));
    assert_refused(&client, zero_days, "spec.retention.days", "1").await;

    let mut lock_outlives = named(base.clone(), "lock-outlives-retention");
    set(&mut lock_outlives, "/spec/retention/days", json!(30));
    set(&mut lock_outlives, "/spec/retention/transitions", json!([]));
    set(&mut lock_outlives, "/spec/objectLock", json!({"mode": "Compliance", "days": 365}));
    assert_refused(&client, lock_outlives, "spec.retention.days", "at least objectLock.days").await;

    let mut bad_bucket = named(base.clone(), "bad-bucket");
    set(&mut bad_bucket, "/spec/s3/bucket", json!("Audit_Bucket"));
    assert_refused(&client, bad_bucket, "spec.s3.bucket", "valid S3 bucket name").await;

    let mut short_bucket = named(base.clone(), "short-bucket");
    set(&mut short_bucket, "/spec/s3/bucket", json!("ab"));
    assert_refused(&client, short_bucket, "spec.s3.bucket", "valid S3 bucket name").await;

    let mut huge_capture = named(base.clone(), "huge-capture");
    set(&mut huge_capture, "/spec/capture/maxBodyBytes", json!(1_073_741_824_i64));
    assert_refused(&client, huge_capture, "spec.capture.maxBodyBytes", "16777216").await;

    let mut bad_mode = named(base.clone(), "bad-failure-mode");
    set(&mut bad_mode, "/spec/onFailure", json!("Ignore"));
    assert_refused(&client, bad_mode, "spec.onFailure", "FailClosed").await;

    let mut bad_prefix = named(base, "bad-prefix");
    set(&mut bad_prefix, "/spec/s3/prefix", json!("/agents"));
    assert_refused(&client, bad_prefix, "spec.s3.prefix", "end with '/'").await;
}
