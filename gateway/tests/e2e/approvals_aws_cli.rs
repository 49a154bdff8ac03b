//! Approvals end to end: the real AWS CLI through the real gateway, ApprovalRequests in the real
//! API server, moto upstream. Reviews are appended by the admin client with a JSON patch, stamped
//! with user and groups as the operator's admission webhook would.

use crate::common;

use std::time::{Duration, Instant};

use chaperone_crds::{ApprovalPhase, ApprovalRequest};
use chaperone_recording::{ApprovalDecision, EventBody};
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use kube::{Api, Client, api::ListParams};
use serde_json::json;

/// The CLI's read timeout (its default, 60 s, stated) stays above every hold used here.
const CLI_FLAGS: &[&str] = &["--cli-read-timeout", "60", "--cli-connect-timeout", "10"];

pub(crate) struct ApprovalSetup {
    pub(crate) env: &'static LocalEnv,
    pub(crate) gateway: GatewayProcess,
    pub(crate) agent: Vec<(String, String)>,
    admin: Client,
    namespace: String,
}

impl ApprovalSetup {
    async fn start(namespace: &str, hold_seconds: u32) -> Self {
        Self::start_with_rules(
            namespace,
            json!({
                "bucket-deletes": {
                    "match": {"actions": ["s3:DeleteBucket"], "resources": ["arn:aws:s3:::*"]},
                    "reviewers": {"groups": ["sre"], "required": 1},
                    "holdSeconds": hold_seconds,
                    "approvalValidSeconds": 600,
                }
            }),
        )
        .await
    }

    /// A gateway for `namespace` with the ApprovalRules `rules`.
    pub(crate) async fn start_with_rules(namespace: &str, rules: serde_json::Value) -> Self {
        let env = LocalEnv::shared();
        let admin = env.control_plane.client().await.unwrap();
        chaperone_tests::env::install_crds(&admin).await.unwrap();
        let mut spec = GatewaySpec::new(namespace);
        spec.approval_rules = rules;
        let kubeconfig = gateway_kubeconfig(env, &admin, namespace).await;
        spec.extra_args = vec![format!("--kubeconfig={}", kubeconfig.display())];
        let gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
        // The CLI as shipped: its default retry mode does not retry AccessDenied, so a refusal
        // surfaces after one hold.
        let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
        Self { env, gateway, agent, admin, namespace: namespace.to_owned() }
    }

    /// Runs the CLI; returns (success, stdout, stderr).
    pub(crate) fn aws(&self, args: &[&str]) -> (bool, String, String) {
        let args: Vec<&str> = CLI_FLAGS.iter().chain(args).copied().collect();
        aws_cli(self.env, &self.agent, &args)
    }

    pub(crate) fn must(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.aws(args);
        assert!(
            ok,
            "aws {} failed:\n{err}\n----- gateway log -----\n{}",
            args.join(" "),
            self.gateway.log()
        );
        out
    }

    fn bucket_exists(&self, bucket: &str) -> bool {
        self.must(&["s3api", "list-buckets", "--query", "Buckets[].Name", "--output", "text"])
            .split_whitespace()
            .any(|b| b == bucket)
    }

    fn requests(&self) -> Api<ApprovalRequest> {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// The ApprovalRequests of the namespace, oldest first.
    pub(crate) async fn all_requests(&self) -> Vec<ApprovalRequest> {
        let mut items = self.requests().list(&ListParams::default()).await.unwrap().items;
        items.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp));
        items
    }

    /// The phase of ApprovalRequest `name`.
    pub(crate) async fn requests_phase(&self, name: &str) -> ApprovalPhase {
        phase(&self.requests().get(name).await.unwrap())
    }

    /// Waits until an ApprovalRequest for `bucket` exists and returns its name.
    async fn wait_for_request(&self, bucket: &str) -> String {
        let started = Instant::now();
        loop {
            let resource = format!("arn:aws:s3:::{bucket}");
            if let Some(request) = self
                .all_requests()
                .await
                .into_iter()
                .rev()
                .find(|r| r.spec.resources.contains(&resource))
            {
                return request.metadata.name.unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no ApprovalRequest for {bucket} appeared; gateway log:\n{}",
                self.gateway.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Appends a review the way `kubectl patch --type=json` does, stamped as the webhook would.
    pub(crate) async fn review(&self, name: &str, decision: &str, user: &str, reason: &str) {
        let patch = json!([{
            "op": "add",
            "path": "/spec/reviews/-",
            "value": {
                "decision": decision,
                "reason": reason,
                "user": user,
                "groups": ["sre", "system:authenticated"],
                "time": "2026-11-25T12:00:00Z",
            }
        }]);
        let request = http::Request::patch(format!(
            "/apis/chaperone.dev/v1alpha1/namespaces/{}/approvalrequests/{name}",
            self.namespace
        ))
        .header("Content-Type", "application/json-patch+json")
        .body(serde_json::to_vec(&patch).unwrap())
        .unwrap();
        let _: ApprovalRequest = self.admin.request(request).await.unwrap();
    }

    /// Stops the gateway and returns its verified recording's events.
    pub(crate) async fn recorded_events(&mut self) -> Vec<chaperone_recording::Event> {
        self.gateway.stop();
        let objects = common::recorded_objects(self.env, &self.gateway).await;
        let report = common::verify(&self.gateway, &objects);
        assert!(report.is_valid(), "verification problems: {:#?}", report.problems);
        common::events(&objects)
    }

    async fn approval_events(&mut self) -> Vec<chaperone_recording::Approval> {
        approvals(&self.recorded_events().await)
    }
}

fn approvals(events: &[chaperone_recording::Event]) -> Vec<chaperone_recording::Approval> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Approval(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

/// A kubeconfig for the gateway with only the Role docs/approvals.md asks for, so a missing
/// permission fails these tests.
async fn gateway_kubeconfig(env: &LocalEnv, admin: &Client, namespace: &str) -> std::path::PathBuf {
    use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
    use kube::api::{ObjectMeta, Patch, PatchParams};

    let user = format!("chaperone-gateway-{namespace}");
    let rule = |resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec!["chaperone.dev".into()]),
        resources: Some(vec![resource.into()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    };
    let meta = ObjectMeta {
        name: Some("chaperone-gateway-approvals".into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    let role = Role {
        metadata: meta.clone(),
        rules: Some(vec![
            rule("approvalrequests", &["get", "list", "watch", "create"]),
            rule("approvalrequests/status", &["update", "patch"]),
        ]),
    };
    let binding = RoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "chaperone-gateway-approvals".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    chaperone_tests::objects::ensure_namespace(admin, namespace).await.unwrap();
    let apply = PatchParams::apply("approvals-test").force();
    Api::<Role>::namespaced(admin.clone(), namespace)
        .patch("chaperone-gateway-approvals", &apply, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .patch("chaperone-gateway-approvals", &apply, &Patch::Apply(&binding))
        .await
        .unwrap();
    env.control_plane.write_kubeconfig_for(&user, &[]).unwrap()
}

fn phase(request: &ApprovalRequest) -> ApprovalPhase {
    request.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_bucket_waits_for_approval_and_proceeds_once_approved() {
    let mut setup = ApprovalSetup::start("approve-held", 20).await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "held-bucket"]);

    let started = Instant::now();
    let (done, held) = std::sync::mpsc::channel();
    let (env, agent) = (setup.env, setup.agent.clone());
    let cli = std::thread::spawn(move || {
        let args: Vec<&str> = CLI_FLAGS
            .iter()
            .chain(&["s3api", "delete-bucket", "--bucket", "held-bucket"])
            .copied()
            .collect();
        let result = aws_cli(env, &agent, &args);
        let _ = done.send(());
        result
    });
    let name = setup.wait_for_request("held-bucket").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(held.try_recv().is_err(), "the call is held while the request is pending");
    setup.review(&name, "Approve", "alice", "planned cleanup").await;
    let (ok, _, err) = tokio::task::spawn_blocking(move || cli.join().unwrap()).await.unwrap();
    assert!(
        ok,
        "the held delete-bucket went through once approved:\n{err}\n{}",
        setup.gateway.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "released by the review, not the hold's end"
    );
    assert!(!setup.bucket_exists("held-bucket"), "the bucket is gone");

    let request = setup.requests().get(&name).await.unwrap();
    assert_eq!(phase(&request), ApprovalPhase::Consumed);
    assert_eq!(request.spec.actions, ["s3:DeleteBucket"]);
    assert_eq!(request.spec.agent.service_account, "pr-bot");
    assert!(
        request.spec.parameters_preview.starts_with("DELETE /held-bucket"),
        "{}",
        request.spec.parameters_preview
    );

    let events = setup.recorded_events().await;
    let approvals = approvals(&events);
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let approval = &approvals[0];
    let position =
        |wanted: &dyn Fn(&EventBody) -> bool| events.iter().position(|e| wanted(&e.body));
    let approval_at = position(&|b| matches!(b, EventBody::Approval(_))).unwrap();
    let request_at = position(&|b| {
        matches!(b, EventBody::Request(r) if r.call == approval.call && r.aws.actions == ["s3:DeleteBucket"])
    })
    .expect("the released call's request event, linked by call id");
    assert!(approval_at < request_at, "the approval is recorded before the request");
    let EventBody::Request(request_event) = &events[request_at].body else { unreachable!() };
    assert!(
        request_event.timings.approval_us.is_some_and(|us| us >= 500_000),
        "{:?}",
        request_event.timings
    );
    assert!(approval.waited_ms >= 500, "{}", approval.waited_ms);
    assert_eq!(approval.outcome, ApprovalDecision::Approved);
    assert_eq!(approval.approval_request, name);
    assert_eq!(approval.rule, "bucket-deletes");
    assert_eq!(approval.approvers.len(), 1);
    assert_eq!(approval.approvers[0].username, "alice");
    assert!(approval.approvers[0].groups.contains(&"sre".to_string()));
    assert_eq!(approval.fingerprint, request.spec.fingerprint);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecided_call_is_refused_naming_the_request_and_one_retry_passes_after_approval() {
    let mut setup = ApprovalSetup::start("approve-retry", 3).await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "retry-bucket"]);
    let delete = ["s3api", "delete-bucket", "--bucket", "retry-bucket"];

    let started = Instant::now();
    let (ok, _, err) = setup.aws(&delete);
    assert!(!ok, "no decision: refused");
    assert!(started.elapsed() >= Duration::from_secs(3), "held for holdSeconds first");
    let requests = setup.all_requests().await;
    assert_eq!(requests.len(), 1);
    let name = requests[0].metadata.name.clone().unwrap();
    assert!(name.starts_with("bucket-deletes-"), "{name}");
    assert!(err.contains("AccessDenied"), "{err}");
    assert!(
        err.contains(&format!("kubectl chaperone approvals approve {name} -n approve-retry")),
        "{err}"
    );
    assert!(
        err.contains("retry the same call") && err.contains("approvalValidSeconds 600 s"),
        "{err}"
    );
    assert!(setup.bucket_exists("retry-bucket"));

    setup.review(&name, "Approve", "alice", "").await;
    setup.must(&delete);
    assert!(!setup.bucket_exists("retry-bucket"), "the approved retry went through");
    assert_eq!(phase(&setup.requests().get(&name).await.unwrap()), ApprovalPhase::Consumed);

    // The approval is used up: the same call again needs a new approval.
    setup.must(&["s3api", "create-bucket", "--bucket", "retry-bucket"]);
    let (ok, _, err) = setup.aws(&delete);
    assert!(!ok, "a consumed approval admits nothing more");
    let requests = setup.all_requests().await;
    assert_eq!(requests.len(), 2, "a new ApprovalRequest for the third run");
    let second = requests[1].metadata.name.clone().unwrap();
    assert_ne!(second, name);
    assert_eq!(requests[1].spec.fingerprint, requests[0].spec.fingerprint);
    assert!(err.contains(&second), "{err}");
    assert!(setup.bucket_exists("retry-bucket"));

    let outcomes: Vec<ApprovalDecision> =
        setup.approval_events().await.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [ApprovalDecision::TimedOut, ApprovalDecision::Approved, ApprovalDecision::TimedOut]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_request_answers_with_the_reviewers_reason() {
    let mut setup = ApprovalSetup::start("approve-deny", 20).await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "denied-bucket"]);

    let (env, agent) = (setup.env, setup.agent.clone());
    let cli = std::thread::spawn(move || {
        let args: Vec<&str> = CLI_FLAGS
            .iter()
            .chain(&["s3api", "delete-bucket", "--bucket", "denied-bucket"])
            .copied()
            .collect();
        aws_cli(env, &agent, &args)
    });
    let name = setup.wait_for_request("denied-bucket").await;
    setup.review(&name, "Deny", "bob", "this bucket holds the audit trail").await;
    let (ok, _, err) = tokio::task::spawn_blocking(move || cli.join().unwrap()).await.unwrap();
    assert!(!ok);
    assert!(
        err.contains("AccessDenied")
            && err.contains("denied by bob")
            && err.contains("this bucket holds the audit trail"),
        "{err}"
    );
    assert!(setup.bucket_exists("denied-bucket"));
    assert_eq!(phase(&setup.requests().get(&name).await.unwrap()), ApprovalPhase::Denied);

    // The same call again is refused at once with the same reason.
    let started = Instant::now();
    let (ok, _, err) = setup.aws(&["s3api", "delete-bucket", "--bucket", "denied-bucket"]);
    assert!(!ok && err.contains("this bucket holds the audit trail"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "no new hold for a denied call");

    let approvals = setup.approval_events().await;
    assert_eq!(approvals.len(), 2);
    assert!(approvals.iter().all(|a| a.outcome == ApprovalDecision::Denied));
    assert_eq!(approvals[0].approvers[0].username, "bob");
    assert_eq!(approvals[0].reason.as_deref(), Some("this bucket holds the audit trail"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_of_a_different_call_does_not_release_this_one() {
    let setup = ApprovalSetup::start("approve-other", 3).await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "bucket-one"]);
    setup.must(&["s3api", "create-bucket", "--bucket", "bucket-two"]);

    let (ok, _, _) = setup.aws(&["s3api", "delete-bucket", "--bucket", "bucket-one"]);
    assert!(!ok);
    let first = setup.wait_for_request("bucket-one").await;
    setup.review(&first, "Approve", "alice", "").await;

    let (ok, _, err) = setup.aws(&["s3api", "delete-bucket", "--bucket", "bucket-two"]);
    assert!(!ok, "bucket-one's approval does not admit deleting bucket-two");
    let second = setup.wait_for_request("bucket-two").await;
    assert_ne!(first, second);
    assert!(err.contains(&second), "{err}");
    assert!(setup.bucket_exists("bucket-two"));
    let approved = setup.requests().get(&first).await.unwrap();
    assert_ne!(phase(&approved), ApprovalPhase::Consumed, "the other call's approval is untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateway_replicas_cannot_both_use_one_approval() {
    let setup = ApprovalSetup::start("approve-replicas", 3).await;
    let _logs = setup.env.logs_on_failure();
    let env = setup.env;
    // A second replica of the same namespace's gateway: its own process and session keys, the
    // same ApprovalRequests.
    let mut spec = setup.gateway.spec.clone();
    spec.recording_bucket = "approve-replicas-audit-b".into();
    let replica = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let replica_agent = replica.agent_env(env, "pr-bot").await.unwrap();
    setup.must(&["s3api", "create-bucket", "--bucket", "contested"]);
    let delete = ["s3api", "delete-bucket", "--bucket", "contested"];
    let (ok, _, _) = setup.aws(&delete);
    assert!(!ok);
    let name = setup.wait_for_request("contested").await;
    setup.review(&name, "Approve", "alice", "").await;

    let run_on = |agent: Vec<(String, String)>| {
        std::thread::spawn(move || {
            let args: Vec<&str> = CLI_FLAGS.iter().chain(&delete).copied().collect();
            aws_cli(env, &agent, &args)
        })
    };
    let (first, second) = (run_on(setup.agent.clone()), run_on(replica_agent));
    let (first, second) =
        tokio::task::spawn_blocking(move || (first.join().unwrap(), second.join().unwrap()))
            .await
            .unwrap();
    let admitted = [&first, &second].iter().filter(|(ok, _, _)| *ok).count();
    assert_eq!(
        admitted,
        1,
        "exactly one replica used the approval:\n{first:?}\n{second:?}\n--- a ---\n{}\n--- b ---\n{}",
        setup.gateway.log(),
        replica.log()
    );
    let refused = if first.0 { &second } else { &first };
    assert!(refused.2.contains("AccessDenied"), "{refused:?}");
    assert!(!setup.bucket_exists("contested"));
    assert_eq!(phase(&setup.requests().get(&name).await.unwrap()), ApprovalPhase::Consumed);
}
