//! `kubectl-chaperone approvals` against the real API server, with the operator's ApprovalRequest
//! webhook stamping and refusing decisions over loopback TLS, and users authenticated by client
//! certificates from their own kubeconfigs (one user name per test: each user's kubeconfig is one
//! file in the shared run directory).

#[path = "../../operator/tests/support/approval_webhook_env.rs"]
mod approval_webhook_env;

use std::path::Path;
use std::process::{Command, Output};

use approval_webhook_env::{ApprovalNamespace, RULE, environment};
use chaperone_crds::Decision;

fn kubectl_chaperone(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-chaperone"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl-chaperone runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_reviewer_in_sre_approves_with_the_cli_and_the_stored_review_carries_their_authenticated_identity()
 {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns =
        ApprovalNamespace::create(env, "cli-approve", &["sre"], &[], 1).await.expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");
    let alice = env.control_plane.write_kubeconfig_for("alice", &["sre"]).expect("kubeconfig");

    let output = kubectl_chaperone(
        &alice,
        &["approvals", "approve", "delete-scratch", "-n", "cli-approve", "--reason", "ticket 42"],
    );

    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("approved by alice (groups: sre, system:authenticated)"), "{stdout}");
    assert!(stdout.contains("approvals 1/1"), "{stdout}");
    let stored = ns.requests(&ns.admin).get("delete-scratch").await.expect("get");
    let [review] = stored.spec.reviews.as_slice() else {
        panic!("one review expected: {:?}", stored.spec.reviews);
    };
    assert_eq!(review.decision, Decision::Approve);
    assert_eq!(review.user, "alice");
    assert!(review.groups.contains(&"sre".to_owned()), "{:?}", review.groups);
    assert_eq!(review.reason, "ticket 42");
    assert!(!review.time.is_empty());
}

#[tokio::test]
async fn approvals_list_shows_the_inbox_with_approvals_counted_against_the_required_number() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns = ApprovalNamespace::create(env, "cli-list", &["sre"], &[], 2).await.expect("namespace");
    ns.hold_call("delete-scratch", 2).await.expect("held call");
    let lena = env.control_plane.write_kubeconfig_for("lena", &["sre"]).expect("kubeconfig");
    let approved =
        kubectl_chaperone(&lena, &["approvals", "approve", "delete-scratch", "-n", "cli-list"]);
    let (stdout, stderr) = text(&approved);
    assert!(approved.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("1 more reviewer(s) must approve"), "{stdout}");

    let listed = kubectl_chaperone(&lena, &["approvals", "list", "-n", "cli-list"]);

    let (stdout, stderr) = text(&listed);
    assert!(listed.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "ACTION", "RESOURCE", "AGENT", "CONNECTION", "AGE", "APPROVALS"]
    );
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        row[..6],
        [
            "delete-scratch",
            "Pending",
            "s3:DeleteBucket",
            "arn:aws:s3:::scratch-builds",
            "pr-bot",
            "prod-aws"
        ]
    );
    assert_eq!(row.last(), Some(&"1/2"));

    let everywhere = kubectl_chaperone(&lena, &["approvals", "list", "-A"]);
    let (stdout, stderr) = text(&everywhere);
    // lena may list only where the test namespaces' Role lets her: cluster-wide listing is
    // forbidden, and the CLI says what to ask for.
    assert!(!everywhere.status.success(), "stdout: {stdout}");
    assert!(stderr.contains("may not list approvalrequests"), "{stderr}");
    let admin = env.control_plane.admin_kubeconfig();
    let everywhere = kubectl_chaperone(admin, &["approvals", "list", "-A"]);
    let (stdout, stderr) = text(&everywhere);
    assert!(everywhere.status.success(), "stderr: {stderr}");
    assert!(stdout.starts_with("NAMESPACE "), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("cli-list ") && l.contains("delete-scratch")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_user_outside_the_reviewers_is_refused_by_the_cli_with_the_rule_named() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns =
        ApprovalNamespace::create(env, "cli-outsider", &["sre"], &[], 1).await.expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");
    let dave = env.control_plane.write_kubeconfig_for("dave", &["developers"]).expect("kubeconfig");

    let output =
        kubectl_chaperone(&dave, &["approvals", "approve", "delete-scratch", "-n", "cli-outsider"]);

    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("refused your decision"), "{stderr}");
    assert!(
        stderr.contains(&format!("ApprovalRule \\\"{RULE}\\\""))
            || stderr.contains(&format!("ApprovalRule \"{RULE}\"")),
        "{stderr}"
    );
    let stored = ns.requests(&ns.admin).get("delete-scratch").await.expect("get");
    assert!(stored.spec.reviews.is_empty());
}

#[tokio::test]
async fn deny_needs_a_reason_and_a_decision_after_a_deny_is_reported_as_already_decided() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let ns = ApprovalNamespace::create(env, "cli-deny", &["sre"], &[], 1).await.expect("namespace");
    ns.hold_call("delete-scratch", 1).await.expect("held call");
    let bob = env.control_plane.write_kubeconfig_for("bob", &["sre"]).expect("kubeconfig");
    let dana = env.control_plane.write_kubeconfig_for("dana", &["sre"]).expect("kubeconfig");

    let blank = kubectl_chaperone(
        &bob,
        &["approvals", "deny", "delete-scratch", "-n", "cli-deny", "--reason", " "],
    );
    assert!(text(&blank).1.contains("a denial needs a reason"), "{:?}", text(&blank));

    let denied = kubectl_chaperone(
        &bob,
        &["approvals", "deny", "delete-scratch", "-n", "cli-deny", "--reason", "holds releases"],
    );
    let (stdout, stderr) = text(&denied);
    assert!(denied.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("denied by bob"), "{stdout}");

    let late =
        kubectl_chaperone(&dana, &["approvals", "approve", "delete-scratch", "-n", "cli-deny"]);
    let (_, stderr) = text(&late);
    assert_eq!(late.status.code(), Some(2));
    assert!(stderr.contains("is already denied by bob"), "{stderr}");
    assert!(stderr.contains("a decision once made is final"), "{stderr}");

    let missing =
        kubectl_chaperone(&dana, &["approvals", "approve", "no-such-request", "-n", "cli-deny"]);
    let (_, stderr) = text(&missing);
    assert!(
        stderr.contains("\"no-such-request\" does not exist in namespace \"cli-deny\""),
        "{stderr}"
    );
    assert!(stderr.contains("approvals list -n cli-deny"), "{stderr}");
}
