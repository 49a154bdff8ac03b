//! `kubectl chaperone console` end to end, every part real: the API server with the operator's
//! ApprovalRequest webhook stamping reviewers and the operator's audit API behind its aggregation
//! layer; the gateway process holding an agent's boto3 call against moto and recording to moto's
//! S3; the console binary run as a reviewer (a client certificate from the test CA) and as a user
//! without rights to the namespace, reading sessions through the audit API with that identity
//! (the corrupt-segment case reads S3 directly with --bucket: the API path serves what it could
//! read and reports no unreadable segment); and headless Chromium (Debian's package, provisioned
//! by chaperone-tests) driven over WebDriver by clicks.
//!
//! With CHAPERONE_CONSOLE_SCREENSHOTS=DIR set, a PNG of each page is written to DIR (the ones in
//! docs/images/ come from here).
//!
//! The gateway binary comes from the target directory (built when missing): build it first
//! (`cargo build -p chaperone-gateway`) so the run uses current code.

// Shared with the operator's webhook tests; this test uses only the environment it starts.
#[allow(dead_code)]
#[path = "../../operator/tests/support/approval_webhook_env.rs"]
mod approval_webhook_env;
// The CLI tests' recorded fixtures; this test uses the recording and uploading part.
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use chaperone_crds::{ApprovalRequest, Decision};
use chaperone_tests::gateway::{GatewayProcess, GatewaySpec};
use chaperone_tests::objects::ensure_namespace;
use chaperone_tests::paths::workspace_binary;
use chaperone_tests::process::{ManagedProcess, log_tail};
use chaperone_tests::webdriver::Browser;
use chaperone_tests::{LocalEnv, aws::REGION, aws::scrub_aws_env};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::audit_api::{
    AuditApiServer, bind_session_auditor, recorded_namespace, verified_access_log,
};

const NAMESPACE: &str = "console-team-a";
const RULE: &str = "bucket-deletes";
const REVIEWER: &str = "rita";
const OUTSIDER: &str = "otto";
const WAIT: Duration = Duration::from_secs(60);

/// The agent: one boto3 session that creates a bucket, deletes it (held for approval), then,
/// once told to, makes one more call while the reviewer watches the session live.
const AGENT: &str = r#"
import os, sys, time, boto3
from botocore.config import Config
deleted, go_on = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", config=Config(read_timeout=120, retries={"max_attempts": 1}))
s3.create_bucket(Bucket="console-held")
s3.delete_bucket(Bucket="console-held")
open(deleted, "w").write("deleted")
deadline = time.time() + 180
while not os.path.exists(go_on):
    if time.time() > deadline:
        sys.exit("never told to go on")
    time.sleep(0.2)
s3.create_bucket(Bucket="console-live")
print("live call done")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_approves_a_held_call_by_clicking_then_finds_it_with_its_approver_while_an_outsider_sees_nothing()
 {
    let env = approval_webhook_env::environment();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.expect("admin client");
    let audit_api = AuditApiServer::start(&admin).await;
    prepare_namespace(&admin).await;
    let gateway = start_gateway(env, &admin).await;
    // The operator's audit API reads the gateway's bucket through the namespace's
    // RecordingPolicy and verifies against the key its AgentConnection publishes.
    let bucket = gateway.spec.recording_bucket.clone();
    recorded_namespace(env, &admin, NAMESPACE, &bucket, &gateway_public_key(&gateway)).await;
    let dir = env.dir().join("console-e2e");
    std::fs::create_dir_all(&dir).expect("test folder");
    let (deleted, go_on) = (dir.join("deleted"), dir.join("go-on"));
    let _ = std::fs::remove_file(&deleted);
    let _ = std::fs::remove_file(&go_on);
    let agent = start_agent(env, &gateway, &deleted, &go_on).await;

    // The held call's ApprovalRequest.
    let requests: Api<ApprovalRequest> = Api::namespaced(admin.clone(), NAMESPACE);
    let held = wait_until("the held call's ApprovalRequest", &gateway, || async {
        requests
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|r| r.spec.resources.iter().any(|x| x == "arn:aws:s3:::console-held"))
    })
    .await;
    let name = held.metadata.name.clone().expect("named");
    let session = held.spec.session_id.clone();
    let key = format!("{NAMESPACE}/{name}");
    let screenshots = std::env::var_os("CHAPERONE_CONSOLE_SCREENSHOTS").map(PathBuf::from);
    let browser = Browser::start(&dir.join("chromedriver.log")).await.expect("chromium starts");

    // The outsider first, while the call is held and its session is being recorded: nothing of
    // the namespace shows, and the page says why.
    let outsider_kubeconfig =
        env.control_plane.write_kubeconfig_for(OUTSIDER, &["developers"]).expect("kubeconfig");
    let (outsider_console, outsider_url) =
        start_console(&outsider_kubeconfig, &dir.join("console-otto.log"));
    browser.goto(&outsider_url).await.expect("open the outsider's console");
    browser
        .wait_for(&format!("[data-skipped=\"{NAMESPACE}\"]"), "may not list approvalrequests", WAIT)
        .await
        .expect("the approvals page names the namespace it may not read");
    assert!(browser.find_all("[data-approval]").await.unwrap().is_empty(), "no approval shows");
    shoot(&browser, &screenshots, "console-outsider").await;
    browser.goto(&format!("{}#/sessions", origin(&outsider_url))).await.expect("sessions page");
    // The API server's refusal, with the RoleBinding to ask for.
    let skipped = browser
        .wait_for(&format!("[data-skipped=\"{NAMESPACE}\"]"), "sessions.audit.chaperone.dev", WAIT)
        .await
        .expect("the sessions page names the namespace it may not read");
    let skipped = browser.text(&skipped).await.unwrap();
    for expected in [
        "user \"otto\" may not list sessions in namespace console-team-a",
        "chaperone-session-auditor",
        "is forbidden",
    ] {
        assert!(skipped.contains(expected), "{expected:?} missing from {skipped}");
    }
    assert!(browser.find_all("[data-session]").await.unwrap().is_empty(), "no session shows");
    // Nor does the session's own page, addressed directly.
    browser
        .goto(&format!("{}#/session/{NAMESPACE}/prod-aws/{session}", origin(&outsider_url)))
        .await
        .expect("session page");
    browser
        .wait_for("#page-error", "may not get sessions in namespace console-team-a", WAIT)
        .await
        .expect("the session page refuses the outsider");
    assert!(browser.find_all("#calls-table").await.unwrap().is_empty(), "no call shows");
    drop(outsider_console);

    // The reviewer: the pending approval, approved with a reason by clicking.
    let reviewer_kubeconfig =
        env.control_plane.write_kubeconfig_for(REVIEWER, &["sre"]).expect("kubeconfig");
    let (reviewer_console, url) =
        start_console(&reviewer_kubeconfig, &dir.join("console-rita.log"));
    refuses_without_its_token_or_from_another_host(&url).await;
    browser.goto(&url).await.expect("open the reviewer's console");
    let card = browser
        .wait_for(&format!("[data-approval=\"{key}\"]"), "s3:DeleteBucket", WAIT)
        .await
        .expect("the held call is pending on the approvals page");
    let card_text = browser.text(&card).await.unwrap();
    for expected in ["arn:aws:s3:::console-held", "pr-bot", "prod-aws", &session, "0/1", " more"] {
        assert!(card_text.contains(expected), "{expected:?} missing from:\n{card_text}");
    }
    assert!(!browser.current_url().await.unwrap().contains("token="), "the token left the URL");
    browser.wait_for("#whoami", "signed in as rita", WAIT).await.expect("who is signed in");
    shoot(&browser, &screenshots, "console-approvals").await;
    let reason = browser.find_in(&card, "input[name=reason]").await.unwrap();
    browser.type_text(&reason, "ticket 7: planned cleanup").await.unwrap();
    let approve = browser.find_in(&card, "button.approve").await.unwrap();
    browser.click(&approve).await.unwrap();
    browser
        .wait_for(&format!("[data-decided=\"{key}\"]"), "approved by rita", WAIT)
        .await
        .expect("the page reports the decision the API server stored");

    // The agent's held call completes, and the stored review is rita's, stamped by the webhook.
    wait_until("the agent's delete-bucket to complete", &gateway, || async {
        deleted.exists().then_some(())
    })
    .await;
    let stored = requests.get(&name).await.expect("get");
    let [review] = stored.spec.reviews.as_slice() else {
        panic!("one review expected: {:?}", stored.spec.reviews);
    };
    assert_eq!((review.decision, review.user.as_str()), (Decision::Approve, REVIEWER));
    assert_eq!(review.reason, "ticket 7: planned cleanup");

    // The session list, then the session: the call with its approver, verified.
    let sessions = browser.find_all("#nav-sessions").await.unwrap();
    browser.click(&sessions[0]).await.unwrap();
    let row = format!("tr[data-session=\"{session}\"]");
    browser.wait_for(&row, "pr-bot", WAIT).await.expect("the session is listed");
    browser
        .wait_for(&format!("tr[data-session=\"{session}\"] td.outcome-approved"), "1", WAIT)
        .await
        .expect("the list counts the approval decision once its segment is read");
    let header = browser.find_all("#sessions-table thead").await.unwrap();
    let header = browser.text(&header[0]).await.unwrap();
    assert!(header.contains("Approvals") && !header.contains("Approved"), "{header}");
    shoot(&browser, &screenshots, "console-sessions").await;
    browser.click_on(&row, "pr-bot", WAIT).await.expect("open the session");
    let call = browser
        .wait_for("#calls-table tbody tr", "approved by rita", WAIT)
        .await
        .expect("the approved call shows its approver");
    let call_text = browser.text(&call).await.unwrap();
    // (The gateway records an approval's reviewers, not an approving reviewer's reason.)
    assert!(call_text.contains("DeleteBucket") && call_text.contains("204"), "{call_text}");
    assert!(call_text.contains(&format!("[{name}]")), "{call_text}");
    browser
        .wait_for("#verify-badge", "verified: intact (by the operator)", WAIT)
        .await
        .expect("the operator verified the session with the key its AgentConnection publishes");
    assert!(!browser.find_all("#timeline-svg .outcome-approved").await.unwrap().is_empty());

    // Live: the agent's next call appears on the open page within seconds.
    std::fs::write(&go_on, b"go").expect("signal the agent");
    browser
        .wait_for("#calls-table tbody tr", "arn:aws:s3:::console-live", Duration::from_secs(20))
        .await
        .expect("a call recorded while the page is open shows up");
    shoot(&browser, &screenshots, "console-session").await;

    // The call's request and response, credentials redacted as recorded.
    browser
        .click_on("#calls-table tbody tr", "approved by rita", WAIT)
        .await
        .expect("open the approved call");
    let detail = browser
        .wait_for("#call-detail-panel", "Reviewers: rita", WAIT)
        .await
        .expect("the call's detail shows its reviewers");
    let detail_text = browser.text(&detail).await.unwrap();
    assert!(detail_text.contains("DELETE /console-held"), "{detail_text}");
    assert!(detail_text.contains("{\"redacted\":\"sha256:"), "{detail_text}");
    assert!(detail_text.contains("Response 204"), "{detail_text}");
    browser.scroll_to(&detail).await.expect("scroll to the call");
    shoot(&browser, &screenshots, "console-call").await;

    let output = tokio::task::spawn_blocking(move || agent.join().expect("agent thread"))
        .await
        .expect("join");
    assert!(output.0, "the agent failed:\n{}", output.1);

    // Every read the reviewer's console made is in the namespace's signed access log, under the
    // reviewer's name; the outsider's were refused by the API server before the operator saw
    // them, so none is logged.
    let report = verified_access_log(env, &admin, &bucket, NAMESPACE).await;
    assert!(report.is_valid(), "{:?}", report.problems);
    let sessions_path =
        format!("/apis/audit.chaperone.dev/v1alpha1/namespaces/{NAMESPACE}/sessions");
    let reads: Vec<(&str, &str, &str)> = report
        .entries
        .iter()
        .map(|e| (e.user.as_str(), e.verb.as_str(), e.resource.as_str()))
        .collect();
    for (verb, resource) in [
        ("list", sessions_path.clone()),
        ("get", format!("{sessions_path}/{session}")),
        ("get", format!("{sessions_path}/{session}/events?limit=500")),
    ] {
        assert!(
            reads.contains(&(REVIEWER, verb, resource.as_str())),
            "{REVIEWER}'s {verb} {resource} missing from the access log: {reads:?}"
        );
    }
    assert!(reads.iter().all(|(user, _, _)| *user == REVIEWER), "{reads:?}");
    let entry = report
        .entries
        .iter()
        .find(|e| e.resource == format!("{sessions_path}/{session}"))
        .expect("the get of the session");
    assert!(entry.groups.iter().any(|g| g == "sre"), "{:?}", entry.groups);
    drop(reviewer_console);
    audit_api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_with_a_corrupt_segment_shows_as_partly_unreadable_and_fails_verification_with_the_reason()
 {
    const AUDIT_NAMESPACE: &str = "console-audit";
    let env = approval_webhook_env::environment();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.expect("admin client");
    ensure_namespace(&admin, AUDIT_NAMESPACE).await.expect("namespace");
    let apply = PatchParams::apply("console-e2e").force();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "session-reader"},
        "rules": [{"apiGroups": ["audit.chaperone.dev"], "resources": ["sessions"], "verbs": ["get", "list"]}]});
    Api::<Role>::namespaced(admin.clone(), AUDIT_NAMESPACE)
        .patch("session-reader", &apply, &Patch::Apply(&role))
        .await
        .expect("role");
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "session-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "session-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ada"}]});
    Api::<RoleBinding>::namespaced(admin.clone(), AUDIT_NAMESPACE)
        .patch("session-reader", &apply, &Patch::Apply(&binding))
        .await
        .expect("binding");

    // Two sessions as a gateway records them; the second loses its second segment to garbage.
    let calls = vec![
        support::call("s3:PutObject", "arn:aws:s3:::data/report.csv", 200),
        support::denied("iam:CreateUser", "arn:aws:iam::000000000000:user/x"),
        support::call("s3:GetObject", "arn:aws:s3:::data/report.csv", 200),
    ];
    let spec = support::SessionSpec::new(AUDIT_NAMESPACE, "prod-aws", "pr-bot");
    let intact = support::record(&spec.clone().replica("gw-0", calls.clone()));
    let mut broken = support::record(&spec.replica("gw-0", calls));
    let segment = broken
        .objects
        .keys()
        .find(|k| k.ends_with("/000002.jsonl.zst"))
        .cloned()
        .expect("a second segment");
    broken.objects.insert(segment, b"not a zstd frame".to_vec());
    let bucket = support::bucket_name("console");
    support::upload(env, &bucket, &[&intact, &broken]).await;

    let ada = env.control_plane.write_kubeconfig_for("ada", &["auditors"]).expect("kubeconfig");
    let dir = env.dir().join("console-audit");
    std::fs::create_dir_all(&dir).expect("test folder");
    let (_console, url) = start_console_over(
        env,
        AUDIT_NAMESPACE,
        &ada,
        &bucket,
        &support::public_key(),
        &dir.join("console-ada.log"),
    );
    let browser = Browser::start(&dir.join("chromedriver.log")).await.expect("chromium starts");
    browser.goto(&url).await.expect("open the console");
    browser.goto(&format!("{}#/sessions", origin(&url))).await.expect("sessions page");
    browser
        .wait_for(&format!("tr[data-session=\"{}\"]", broken.id), "partly unreadable", WAIT)
        .await
        .expect("the broken session is listed as partly unreadable");

    let page = |id: &str| format!("{}#/session/{AUDIT_NAMESPACE}/prod-aws/{id}", origin(&url));
    browser.goto(&page(&broken.id)).await.expect("the broken session");
    browser.wait_for("#verify-badge", "verification failed", WAIT).await.expect("a failed badge");
    browser
        .wait_for("#verify-problems", "000002.jsonl.zst", WAIT)
        .await
        .expect("the reason names the broken segment");
    browser
        .wait_for("#session-meta", "Unreadable", WAIT)
        .await
        .expect("the page lists what could not be read");
    browser
        .wait_for("#calls-table tbody tr", "PutObject", WAIT)
        .await
        .expect("what could be read is still shown");
    let screenshots = std::env::var_os("CHAPERONE_CONSOLE_SCREENSHOTS").map(PathBuf::from);
    shoot(&browser, &screenshots, "console-broken").await;

    browser.goto(&page(&intact.id)).await.expect("the intact session");
    browser.wait_for("#verify-badge", "verified: intact", WAIT).await.expect("an intact badge");
    browser
        .wait_for("#calls-table tbody tr", "deny (policy.deny[0]: iam:*", WAIT)
        .await
        .expect("the denied call with its rule");
    assert_eq!(
        browser.find_all("#timeline-svg .outcome-deny").await.unwrap().len(),
        1,
        "one red mark"
    );
}

/// The console answers nothing without its token, nor to another Host or Origin even with it.
async fn refuses_without_its_token_or_from_another_host(url: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let base = origin(url);
    for path in ["/", "/api/approvals", "/api/sessions", "/app.js"] {
        let answer = http.get(format!("{base}{path}")).send().await.expect("the console answers");
        assert_eq!(answer.status().as_u16(), 401, "{path}");
        let text = answer.text().await.unwrap_or_default();
        assert!(text.contains("needs its token"), "{path}: {text}");
    }
    let wrong = http.get(format!("{base}/?token={}", "0".repeat(64))).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let rebound = http.get(url).header("host", "attacker.example").send().await.unwrap();
    assert_eq!(rebound.status().as_u16(), 403, "another Host is refused even with the token");
    let first = http.get(url).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 303, "the token is traded for a cookie");
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let cross = http
        .post(format!("{base}/api/approvals/decide"))
        .header("cookie", &pair)
        .header("origin", "http://attacker.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403, "a cross-origin call is refused");
    let own =
        http.get(format!("{base}/api/approvals")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(own.status().as_u16(), 200, "the cookie admits");
    let blank = http
        .post(format!("{base}/api/approvals/decide"))
        .header("cookie", &pair)
        .body(
            json!({"namespace": NAMESPACE, "name": "any", "decision": "deny", "reason": " "})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(blank.status().as_u16(), 400);
    let text = blank.text().await.unwrap_or_default();
    assert!(text.contains("a denial needs a reason"), "{text}");
}

/// `http://127.0.0.1:PORT` of a console URL.
fn origin(url: &str) -> String {
    url.split_once("/?").map(|(o, _)| o.to_owned()).unwrap_or_else(|| url.to_owned())
}

async fn shoot(browser: &Browser, dir: &Option<PathBuf>, name: &str) {
    let Some(dir) = dir else { return };
    // Let the page settle (fonts, the timeline) before the picture.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(dir).expect("screenshot folder");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn wait_until<T, F, Fut>(what: &str, gateway: &GatewayProcess, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            started.elapsed() < WAIT,
            "{what}: never\n----- gateway log -----\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The namespace: the ApprovalRule the webhook checks reviewers against, the gateway's RBAC, and
/// the reviewer's (approve and read sessions there); the outsider gets nothing.
async fn prepare_namespace(admin: &Client) {
    ensure_namespace(admin, NAMESPACE).await.expect("namespace");
    let apply = PatchParams::apply("console-e2e").force();
    let rule = json!({
        "apiVersion": "chaperone.dev/v1alpha1", "kind": "ApprovalRule",
        "metadata": {"name": RULE, "namespace": NAMESPACE},
        "spec": rule_spec(),
    });
    let rules = ApiResource::erase::<chaperone_crds::ApprovalRule>(&());
    Api::<DynamicObject>::namespaced_with(admin.clone(), NAMESPACE, &rules)
        .patch(RULE, &apply, &Patch::Apply(&rule))
        .await
        .expect("the ApprovalRule");
    let roles: Api<Role> = Api::namespaced(admin.clone(), NAMESPACE);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), NAMESPACE);
    for (name, rules, subject) in [
        (
            "chaperone-gateway",
            json!([
                {"apiGroups": ["chaperone.dev"], "resources": ["approvalrequests"], "verbs": ["get", "list", "watch", "create"]},
                {"apiGroups": ["chaperone.dev"], "resources": ["approvalrequests/status"], "verbs": ["update", "patch"]},
            ]),
            json!({"kind": "ServiceAccount", "name": "chaperone-gateway", "namespace": NAMESPACE}),
        ),
        (
            "console-reviewer",
            json!([
                {"apiGroups": ["chaperone.dev"], "resources": ["approvalrequests"], "verbs": ["get", "list", "update"]},
                {"apiGroups": ["chaperone.dev"], "resources": ["approvalrules"], "verbs": ["get", "list"]},
            ]),
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": REVIEWER}),
        ),
    ] {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": rules});
        roles.patch(name, &apply, &Patch::Apply(&role)).await.expect("role");
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject]});
        bindings.patch(name, &apply, &Patch::Apply(&binding)).await.expect("binding");
    }
    // Sessions through the audit API: the chart's ClusterRole, bound in the namespace.
    bind_session_auditor(
        admin,
        NAMESPACE,
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": REVIEWER}),
    )
    .await;
}

fn rule_spec() -> serde_json::Value {
    json!({
        "match": {"actions": ["s3:DeleteBucket"], "resources": ["arn:aws:s3:::*"]},
        "reviewers": {"groups": ["sre"], "required": 1},
        "holdSeconds": 120,
        "approvalValidSeconds": 600,
    })
}

async fn start_gateway(env: &LocalEnv, admin: &Client) -> GatewayProcess {
    let mut spec = GatewaySpec::new(NAMESPACE);
    spec.approval_rules = json!({ RULE: rule_spec() });
    let kubeconfig = gateway_kubeconfig(env, admin).await;
    spec.extra_args = vec![format!("--kubeconfig={}", kubeconfig.display())];
    let binary =
        workspace_binary("chaperone-gateway", "chaperone-gateway").expect("gateway binary");
    GatewayProcess::start(env, &binary, spec).await.expect("the gateway starts")
}

/// A kubeconfig with a token the API server minted for the gateway's service account.
async fn gateway_kubeconfig(env: &LocalEnv, admin: &Client) -> PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    for account in ["chaperone-gateway", "pr-bot"] {
        let object: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": account}})).unwrap();
        match accounts.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("creating service account {account}: {e}"),
        }
    }
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("chaperone-gateway", &PostParams::default(), &request)
        .await
        .expect("token")
        .status
        .expect("token status")
        .token;
    let ca = base64::engine::general_purpose::STANDARD.encode(env.control_plane.ca_pem());
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster: {{server: {url}, certificate-authority-data: {ca}}}\nusers:\n- name: gw\n  user: {{token: {token}}}\ncontexts:\n- name: local\n  context: {{cluster: local, user: gw, namespace: {NAMESPACE}}}\ncurrent-context: local\n",
        url = env.control_plane.url(),
    );
    let path = env.dir().join(format!("kubeconfig-sa-{NAMESPACE}-gateway"));
    std::fs::write(&path, yaml).expect("write kubeconfig");
    path
}

/// Runs the agent's boto3 script on its own thread; returns (success, output).
async fn start_agent(
    env: &'static LocalEnv,
    gateway: &GatewayProcess,
    deleted: &Path,
    go_on: &Path,
) -> std::thread::JoinHandle<(bool, String)> {
    let vars = gateway.agent_env(env, "pr-bot").await.expect("agent environment");
    let mut command = env.moto.python_command();
    command.arg("-c").arg(AGENT).arg(deleted).arg(go_on).envs(vars);
    std::thread::spawn(move || match command.output() {
        Ok(output) => (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    })
}

/// The recording key of `gateway`, in its published form.
fn gateway_public_key(gateway: &GatewayProcess) -> String {
    chaperone_recording::signing::encode_public_key(
        &chaperone_recording::RecordingSigner::from_seed(&gateway.recording_seed).verifying_key(),
    )
}

/// The console of the user of `kubeconfig` for NAMESPACE, reading sessions through the audit
/// API (no AWS credentials at all: the kubeconfig's identity is the only one it has).
fn start_console(kubeconfig: &Path, log: &Path) -> (ManagedProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-chaperone"));
    scrub_aws_env(&mut command);
    command
        .args(["console", "--no-open", "-n", NAMESPACE, "--kubeconfig"])
        .arg(kubeconfig)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("KUBECONFIG");
    run_console(command, log)
}

/// Starts the console for `namespace` as the user of `kubeconfig`, reading `bucket` (prefix
/// `agents/`) with the auditor's keys and trusting `public_key`; returns it and the URL it printed.
fn start_console_over(
    env: &LocalEnv,
    namespace: &str,
    kubeconfig: &Path,
    bucket: &str,
    public_key: &str,
    log: &Path,
) -> (ManagedProcess, String) {
    let auditor = &env.moto.auditor_user;
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-chaperone"));
    scrub_aws_env(&mut command);
    command
        .args(["console", "--no-open", "-n", namespace, "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--bucket", bucket, "--prefix", "agents/"])
        .args(["--region", REGION, "--endpoint-url", env.moto.endpoint()])
        .args(["--public-key", public_key])
        .env("AWS_ACCESS_KEY_ID", &auditor.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &auditor.secret_access_key)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("KUBECONFIG");
    run_console(command, log)
}

/// Starts the console `command`, logging to `log`; returns it and the URL it printed.
fn run_console(command: Command, log: &Path) -> (ManagedProcess, String) {
    let _ = std::fs::remove_file(log);
    let mut process = ManagedProcess::start("console", command, log).expect("the console starts");
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| l.strip_prefix("Chaperone console: ")) {
            assert!(url.starts_with("http://127.0.0.1:") && url.contains("/?token="), "{url}");
            return (process, url.trim().to_owned());
        }
        if let Err(e) = process.ensure_running() {
            panic!("the console stopped: {e}");
        }
        assert!(started.elapsed() < WAIT, "the console printed no URL:\n{}", log_tail(log, 40));
        std::thread::sleep(Duration::from_millis(100));
    }
}
