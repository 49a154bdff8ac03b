//! The ApprovalRequest webhook as the real API server calls it: over loopback TLS, with the
//! identities it authenticated from client certificates and service-account tokens.

#[path = "support/approval_webhook_env.rs"]
mod approval_webhook_env;

use approval_webhook_env::{AGENT_SERVICE_ACCOUNT, ApprovalNamespace, RULE, environment};
use chaperone_crds::{ApprovalRequest, Decision, Review};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Appends `review` as the client's user would, with the resourceVersion just read.
async fn add_review(
    api: &Api<ApprovalRequest>,
    name: &str,
    review: Review,
) -> Result<ApprovalRequest, kube::Error> {
    let mut request = api.get(name).await?;
    request.spec.reviews.push(review);
    api.replace(name, &PostParams::default(), &request).await
}

fn review(decision: Decision, reason: &str) -> Review {
    Review {
        decision,
        reason: reason.to_owned(),
        user: String::new(),
        groups: Vec::new(),
        time: String::new(),
    }
}

fn refusal(outcome: Result<ApprovalRequest, kube::Error>) -> String {
    match outcome {
        Ok(stored) => panic!("expected a refusal, the API server stored {:?}", stored.spec.reviews),
        Err(kube::Error::Api(status)) => status.message,
        Err(e) => panic!("expected a refusal from the webhook, got {e}"),
    }
}

async fn user(
    namespace: &ApprovalNamespace,
    name: &str,
    groups: &[&str],
) -> (Client, Api<ApprovalRequest>) {
    let env = environment();
    let client = env.control_plane.client_as(name, groups).await.expect("a client certificate");
    let api = namespace.requests(&client);
    (client, api)
}

#[tokio::test]
async fn a_reviewers_approval_is_stamped_with_the_name_and_groups_the_api_server_authenticated() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns = ApprovalNamespace::create(env, "stamp", &["sre"], &[], 1).await.expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");
    let (_client, alice) = user(&ns, "alice", &["sre"]).await;

    let forged = Review {
        user: "mallory".to_owned(),
        groups: vec!["system:masters".to_owned()],
        time: "2000-01-01T00:00:00Z".to_owned(),
        ..review(Decision::Approve, "looks right")
    };
    let stored = add_review(&alice, "delete-scratch", forged).await.expect("alice may approve");

    let [review] = stored.spec.reviews.as_slice() else {
        panic!("one review expected: {:?}", stored.spec.reviews);
    };
    assert_eq!(review.user, "alice");
    assert!(review.groups.contains(&"sre".to_owned()), "groups: {:?}", review.groups);
    assert!(!review.groups.contains(&"system:masters".to_owned()), "groups: {:?}", review.groups);
    assert_ne!(review.time, "2000-01-01T00:00:00Z");
    let stamped =
        time::OffsetDateTime::parse(&review.time, &time::format_description::well_known::Rfc3339);
    let age = stamped
        .map(|t| time::OffsetDateTime::now_utc() - t)
        .unwrap_or_else(|e| panic!("time {:?}: {e}", review.time));
    assert!(age.whole_seconds().abs() < 60, "time: {}", review.time);
    assert_eq!(review.reason, "looks right");
}

#[tokio::test]
async fn a_user_outside_the_rules_reviewers_is_refused_with_a_message_naming_the_rule() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns = ApprovalNamespace::create(env, "outsider", &["sre"], &["carol"], 1)
        .await
        .expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");
    let (_client, dave) = user(&ns, "dave", &["developers"]).await;

    let message = refusal(add_review(&dave, "delete-scratch", review(Decision::Approve, "")).await);

    assert!(message.contains("\"dave\""), "{message}");
    assert!(message.contains(&format!("ApprovalRule \"{RULE}\"")), "{message}");
    assert!(message.contains("is not a reviewer"), "{message}");
    let stored = ns.requests(&ns.admin).get("delete-scratch").await.expect("get");
    assert!(stored.spec.reviews.is_empty());

    // A user the rule names by user name may decide.
    let (_client, carol) = user(&ns, "carol", &["finance"]).await;
    let stored = add_review(&carol, "delete-scratch", review(Decision::Approve, ""))
        .await
        .expect("carol is named");
    assert_eq!(stored.spec.reviews[0].user, "carol");
}

#[tokio::test]
async fn the_agents_own_service_account_cannot_decide_its_request_even_when_its_group_reviews() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns_name = "agent-self";
    // The rule names every service account of the namespace, the agent's included.
    let groups = ["sre", "system:serviceaccounts:agent-self"];
    let ns = ApprovalNamespace::create(env, ns_name, &groups, &[], 1).await.expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");
    let agent = approval_webhook_env::service_account_client(
        env,
        &ns.admin,
        ns_name,
        AGENT_SERVICE_ACCOUNT,
    )
    .await
    .expect("agent token");

    let message = refusal(
        add_review(&ns.requests(&agent), "delete-scratch", review(Decision::Approve, "")).await,
    );

    assert!(message.contains("system:serviceaccount:agent-self:pr-bot"), "{message}");
    assert!(message.contains("never decides its own request"), "{message}");
}

#[tokio::test]
async fn a_decision_after_a_deny_is_refused_because_a_decision_once_made_is_final() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns = ApprovalNamespace::create(env, "final", &["sre"], &[], 1).await.expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");
    let (_client, alice) = user(&ns, "alice", &["sre"]).await;
    let (_client, bob) = user(&ns, "bob", &["sre"]).await;

    let message = refusal(add_review(&bob, "delete-scratch", review(Decision::Deny, "  ")).await);
    assert!(message.contains("needs a reason"), "{message}");

    add_review(&bob, "delete-scratch", review(Decision::Deny, "that bucket holds releases"))
        .await
        .expect("bob may deny");
    let message =
        refusal(add_review(&alice, "delete-scratch", review(Decision::Approve, "")).await);

    assert!(message.contains("already denied by bob"), "{message}");
    assert!(message.contains("a decision once made is final"), "{message}");
}

#[tokio::test]
async fn two_required_approvals_take_two_distinct_reviewers_and_the_same_reviewer_twice_is_refused()
{
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns =
        ApprovalNamespace::create(env, "two-approvals", &["sre"], &[], 2).await.expect("namespace");
    ns.hold_call("delete-scratch", 2).await.expect("held call");
    let (_client, alice) = user(&ns, "alice", &["sre"]).await;
    let (_client, erin) = user(&ns, "erin", &["sre"]).await;

    add_review(&alice, "delete-scratch", review(Decision::Approve, ""))
        .await
        .expect("first approval");
    let message =
        refusal(add_review(&alice, "delete-scratch", review(Decision::Approve, "")).await);
    assert!(message.contains("\"alice\" already reviewed"), "{message}");

    let stored = add_review(&erin, "delete-scratch", review(Decision::Approve, ""))
        .await
        .expect("second approval");
    let users: Vec<&str> = stored.spec.reviews.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, ["alice", "erin"]);

    let (_client, frank) = user(&ns, "frank", &["sre"]).await;
    let message =
        refusal(add_review(&frank, "delete-scratch", review(Decision::Approve, "")).await);
    assert!(message.contains("already approved by alice, erin"), "{message}");
}

#[tokio::test]
async fn only_the_gateway_creates_approval_requests_and_never_with_reviews() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns = ApprovalNamespace::create(env, "creation", &["sre"], &[], 1).await.expect("namespace");

    let mut object = chaperone_tests::objects::example("approvalrequest").expect("example");
    let admin_outcome =
        chaperone_tests::objects::create_in(&ns.admin, "creation", &object).await.expect("create");
    let Err(kube::Error::Api(status)) = admin_outcome else {
        panic!("the admin created an ApprovalRequest: {admin_outcome:?}");
    };
    assert!(status.message.contains("created by the Chaperone gateway"), "{}", status.message);
    assert!(
        status.message.contains("system:serviceaccount:creation:chaperone-gateway"),
        "{}",
        status.message
    );

    chaperone_tests::objects::set(
        &mut object,
        "/spec/reviews",
        json!([{"decision": "Approve", "user": "alice", "groups": ["sre"]}]),
    );
    let gateway_outcome = chaperone_tests::objects::create_in(&ns.gateway, "creation", &object)
        .await
        .expect("create");
    let Err(kube::Error::Api(status)) = gateway_outcome else {
        panic!("an ApprovalRequest was created already reviewed: {gateway_outcome:?}");
    };
    assert!(status.message.contains("must be created without reviews"), "{}", status.message);
}

#[tokio::test]
async fn updates_that_leave_reviews_unchanged_are_allowed() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns =
        ApprovalNamespace::create(env, "other-updates", &["sre"], &[], 1).await.expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");

    let labelled = ns
        .requests(&ns.gateway)
        .patch(
            "delete-scratch",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"chaperone.dev/notified": "true"}}})),
        )
        .await
        .expect("the gateway may label its request");

    assert_eq!(
        labelled
            .metadata
            .labels
            .unwrap_or_default()
            .get("chaperone.dev/notified")
            .map(String::as_str),
        Some("true")
    );
}
