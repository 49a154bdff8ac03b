//! Approvals end to end, every part real: the API server; the operator binary serving the
//! ApprovalRequest admission webhook over loopback TLS, writing phases, notifying and cleaning up;
//! the gateway process holding the AWS CLI's calls against moto; reviewers deciding with the
//! `kubectl-chaperone` binary under their own client certificates; a local HTTP receiver for
//! notifications; and the recording read back with `kubectl-chaperone sessions show`.
//!
//! The gateway and `kubectl-chaperone` binaries come from the target directory (built when
//! missing): build them first (`cargo build -p chaperone-gateway -p kubectl-chaperone`) so the
//! run uses current code.
//!
//! What `gateway/tests/approvals_aws_cli.rs` already covers with reviews written by the admin (two
//! replicas racing for one approval, a denial's reason) is not repeated here.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use base64::Engine;
use chaperone_crds::{ApprovalPhase, ApprovalRequest, NotificationState};
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
    objects::ensure_namespace,
    paths::workspace_binary,
    ports::free_port,
    process::ManagedProcess,
};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Secret, ServiceAccount},
    events::v1::Event,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// The AWS CLI's read timeout stays above every hold used here.
const CLI_FLAGS: &[&str] = &["--cli-read-timeout", "60", "--cli-connect-timeout", "10"];
/// How long the operator keeps a finished ApprovalRequest after its expiry, in these tests.
const RETENTION_SECONDS: u64 = 3;
/// The rule's name in every namespace.
const RULE: &str = "deletes";

/// The operator process, started once per test binary: the ApprovalRequest webhook it serves and
/// registers over loopback TLS, and its controllers (phase, notifications, expiry, cleanup).
struct Operator {
    log: PathBuf,
    _process: ManagedProcess,
}

fn environment() -> (&'static LocalEnv, &'static Operator) {
    chaperone_operator::runtime::tls::install_crypto_provider();
    let env = LocalEnv::shared();
    static OPERATOR: OnceLock<Result<Operator, String>> = OnceLock::new();
    let operator = OPERATOR.get_or_init(|| {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(start_operator(env)).map_err(|e| format!("{e:#}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the operator's start-up thread panicked".into()))
    });
    match operator {
        Ok(operator) => (env, operator),
        Err(e) => panic!("the operator did not start: {e}"),
    }
}

async fn start_operator(env: &'static LocalEnv) -> anyhow::Result<Operator> {
    let admin = env.control_plane.client().await?;
    chaperone_tests::env::install_crds(&admin).await?;
    ensure_namespace(&admin, "chaperone-system").await?;
    let webhook_port = free_port()?;
    let log = env.dir().join("operator.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_chaperone-operator"));
    command
        .env("KUBECONFIG", env.control_plane.admin_kubeconfig())
        .env("RUST_LOG", "info,chaperone_operator=debug")
        .env("POD_NAME", "operator-e2e")
        .args([
            &format!("--admin=127.0.0.1:{}", free_port()?),
            "--namespace=chaperone-system",
            &format!("--service-account-issuer={}", env.control_plane.issuer()),
            "--log-format=text",
            &format!("--approval-retention-seconds={RETENTION_SECONDS}"),
            &format!("--webhook-listen=127.0.0.1:{webhook_port}"),
            &format!("--webhook-url=https://127.0.0.1:{webhook_port}"),
            // The audit API needs an EndpointSlice at a non-loopback address; cli/tests/audit_api.rs tests it.
            "--audit-api=false",
        ]);
    let mut process = ManagedProcess::start("chaperone-operator", command, &log)?;
    // Leading (the Lease names it) means its controllers run; the API server calls the webhook
    // once the operator registered it: until then the admin's probe is admitted (and deleted
    // again), then the webhook refuses it (only gateways create ApprovalRequests).
    ensure_namespace(&admin, "webhook-probe").await?;
    let probes: Api<ApprovalRequest> = Api::namespaced(admin.clone(), "webhook-probe");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), "chaperone-system");
    let started = Instant::now();
    loop {
        process.ensure_running()?;
        let probe: ApprovalRequest = serde_json::from_value(probe_json())?;
        let refused = match probes.create(&PostParams::default(), &probe).await {
            Err(kube::Error::Api(status)) => {
                status.message.contains("created by the Chaperone gateway")
            }
            Ok(_) => {
                let _ = probes.delete("probe", &Default::default()).await;
                false
            }
            Err(_) => false,
        };
        let holder = leases
            .get_opt("chaperone-operator")
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if refused && holder.as_deref() == Some("operator-e2e") {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!(
                "the operator did not serve its webhook and lead within 60 s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Operator { log, _process: process })
}

fn probe_json() -> Value {
    json!({
        "apiVersion": "chaperone.dev/v1alpha1",
        "kind": "ApprovalRequest",
        "metadata": {"name": "probe", "namespace": "webhook-probe"},
        "spec": {
            "connection": "prod-aws", "rule": RULE, "sessionId": "s-1",
            "agent": {"serviceAccount": "pr-bot"},
            "actions": ["s3:DeleteBucket"], "resources": [],
            "fingerprint": "0".repeat(64), "requiredApprovals": 1,
            "expiresAt": "2099-01-01T00:00:00Z",
        }
    })
}

/// Notifications received so far: (path, body).
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Notifications a local receiver got: (path, body).
#[derive(Clone, Default)]
struct Receiver {
    address: Option<SocketAddr>,
    received: Received,
}

impl Receiver {
    /// A plain HTTP/1.1 server on loopback answering every POST with 200.
    async fn start() -> Self {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received: Received = Arc::default();
        let store = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let store = store.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            async move {
                                let path = request.uri().path().to_owned();
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes().to_vec())
                                    .unwrap_or_default();
                                store.lock().unwrap().push((path, body));
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address: Some(address), received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address.unwrap())
    }

    fn bodies(&self) -> Vec<(String, Vec<u8>)> {
        self.received.lock().unwrap().clone()
    }
}

/// One namespace: the ApprovalRule in the API server (and compiled into the gateway), RBAC for
/// the gateway's service account and for reviewers, the gateway process, the agent's AWS CLI.
struct Setup {
    env: &'static LocalEnv,
    operator: &'static Operator,
    admin: Client,
    namespace: String,
    gateway: GatewayProcess,
    agent: Vec<(String, String)>,
    cli: PathBuf,
}

impl Setup {
    async fn start(
        namespace: &str,
        actions: &[&str],
        hold_seconds: u32,
        approval_valid_seconds: u32,
        notify: Option<(&str, String)>,
    ) -> Self {
        let (env, operator) = environment();
        let admin = env.control_plane.client().await.unwrap();
        ensure_namespace(&admin, namespace).await.unwrap();
        let rule_spec = json!({
            "match": {"actions": actions, "resources": ["arn:aws:s3:::*"]},
            "reviewers": {"groups": ["sre"], "required": 1},
            "holdSeconds": hold_seconds,
            "approvalValidSeconds": approval_valid_seconds,
        });
        let mut rule = json!({
            "apiVersion": "chaperone.dev/v1alpha1", "kind": "ApprovalRule",
            "metadata": {"name": RULE, "namespace": namespace},
            "spec": rule_spec.clone(),
        });
        if let Some((format, url)) = notify {
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": "approvals-webhook"},
                "stringData": {"url": url},
            }))
            .unwrap();
            Api::<Secret>::namespaced(admin.clone(), namespace)
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
            rule["spec"]["notify"] = json!({"webhook": {
                "urlSecretRef": {"name": "approvals-webhook", "key": "url"},
                "format": format,
            }});
        }
        let rules = kube::api::ApiResource::erase::<chaperone_crds::ApprovalRule>(&());
        Api::<kube::api::DynamicObject>::namespaced_with(admin.clone(), namespace, &rules)
            .patch(RULE, &PatchParams::apply("e2e").force(), &Patch::Apply(&rule))
            .await
            .unwrap();
        grant(&admin, namespace).await;

        let mut spec = GatewaySpec::new(namespace);
        spec.approval_rules = json!({ RULE: rule_spec });
        let kubeconfig = token_kubeconfig(env, &admin, namespace, "chaperone-gateway").await;
        spec.extra_args = vec![format!("--kubeconfig={}", kubeconfig.display())];
        let gateway_binary = workspace_binary("chaperone-gateway", "chaperone-gateway").unwrap();
        let gateway = GatewayProcess::start(env, &gateway_binary, spec).await.unwrap();
        let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
        let cli = workspace_binary("kubectl-chaperone", "kubectl-chaperone").unwrap();
        Self { env, operator, admin, namespace: namespace.to_owned(), gateway, agent, cli }
    }

    fn logs(&self) -> String {
        format!(
            "----- gateway log -----\n{}\n----- operator log (tail) -----\n{}",
            self.gateway.log(),
            chaperone_tests::process::log_tail(&self.operator.log, 60)
        )
    }

    fn aws(&self, args: &[&str]) -> (bool, String, String) {
        let args: Vec<&str> = CLI_FLAGS.iter().chain(args).copied().collect();
        aws_cli(self.env, &self.agent, &args)
    }

    fn must(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.aws(args);
        assert!(ok, "aws {} failed:\n{err}\n{}", args.join(" "), self.logs());
        out
    }

    /// Runs `args` with the AWS CLI on its own thread.
    fn aws_in_background(&self, args: &[&str]) -> std::thread::JoinHandle<(bool, String, String)> {
        let (env, agent) = (self.env, self.agent.clone());
        let args: Vec<String> = CLI_FLAGS.iter().chain(args).map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            aws_cli(env, &agent, &args)
        })
    }

    fn bucket_exists(&self, bucket: &str) -> bool {
        self.must(&["s3api", "list-buckets", "--query", "Buckets[].Name", "--output", "text"])
            .split_whitespace()
            .any(|b| b == bucket)
    }

    fn requests(&self) -> Api<ApprovalRequest> {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// The namespace's ApprovalRequests, oldest first.
    async fn all_requests(&self) -> Vec<ApprovalRequest> {
        let mut items = self.requests().list(&ListParams::default()).await.unwrap().items;
        items.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp));
        items
    }

    /// Waits until `check` holds for some request naming `resource`, returning that request.
    async fn wait_for(
        &self,
        what: &str,
        resource: &str,
        check: impl Fn(&ApprovalRequest) -> bool,
    ) -> ApprovalRequest {
        let started = Instant::now();
        loop {
            if let Some(found) = self
                .all_requests()
                .await
                .into_iter()
                .rev()
                .find(|r| r.spec.resources.iter().any(|x| x == resource) && check(r))
            {
                return found;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{what}: never\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `kubectl-chaperone` with `kubeconfig`.
    fn kubectl_chaperone(&self, kubeconfig: &Path, args: &[&str]) -> (Option<i32>, String) {
        let output = Command::new(&self.cli)
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .expect("kubectl-chaperone runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    }

    fn approve_as(&self, kubeconfig: &Path, name: &str) -> (Option<i32>, String) {
        self.kubectl_chaperone(
            kubeconfig,
            &["approvals", "approve", name, "-n", &self.namespace, "--reason", "planned"],
        )
    }

    /// Every session of the gateway's recording as `kubectl-chaperone sessions show` prints it.
    fn recorded_timelines(&mut self) -> String {
        self.gateway.stop();
        let auditor = &self.env.moto.auditor_user;
        let run = |args: &[&str]| {
            let mut command = Command::new(&self.cli);
            chaperone_tests::aws::scrub_aws_env(&mut command);
            let output = command
                .args(args)
                .args(["--bucket", &self.gateway.spec.recording_bucket, "--prefix", "agents/"])
                .args(["--region", "us-east-1", "--endpoint-url", self.env.moto.endpoint()])
                .env("AWS_ACCESS_KEY_ID", &auditor.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &auditor.secret_access_key)
                .env_remove("KUBECONFIG")
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let listing: Value =
            serde_json::from_str(&run(&["sessions", "list", "-o", "json"])).unwrap();
        let sessions: Vec<String> = listing
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["session"].as_str().map(str::to_owned))
            .collect();
        assert!(!sessions.is_empty(), "no recorded session: {listing}");
        sessions.iter().map(|s| run(&["sessions", "show", s])).collect::<Vec<_>>().join("\n")
    }
}

/// RBAC: the gateway's service account may create, watch and consume ApprovalRequests; every
/// authenticated user may get, list and update them, so that refusals below come from the
/// webhook, not from RBAC.
async fn grant(admin: &Client, namespace: &str) {
    let apply = PatchParams::apply("e2e").force();
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    for (name, rules, subject) in [
        (
            "chaperone-gateway",
            json!([
                {"apiGroups": ["chaperone.dev"], "resources": ["approvalrequests"], "verbs": ["get", "list", "watch", "create"]},
                {"apiGroups": ["chaperone.dev"], "resources": ["approvalrequests/status"], "verbs": ["update", "patch"]},
            ]),
            json!({"kind": "ServiceAccount", "name": "chaperone-gateway", "namespace": namespace}),
        ),
        (
            "approval-reviewer",
            json!([{"apiGroups": ["chaperone.dev"], "resources": ["approvalrequests"], "verbs": ["get", "list", "update", "patch"]}]),
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}),
        ),
    ] {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": rules});
        roles.patch(name, &apply, &Patch::Apply(&role)).await.unwrap();
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject]});
        bindings.patch(name, &apply, &Patch::Apply(&binding)).await.unwrap();
    }
}

/// A kubeconfig authenticating as service account `account` with a token the API server minted
/// for itself (the account is created when missing).
async fn token_kubeconfig(
    env: &LocalEnv,
    admin: &Client,
    namespace: &str,
    account: &str,
) -> PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let object: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": account}})).unwrap();
    match accounts.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating service account {account}: {e}"),
    }
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() },
        ..Default::default()
    };
    let token = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let ca = base64::engine::general_purpose::STANDARD.encode(env.control_plane.ca_pem());
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster: {{server: {url}, certificate-authority-data: {ca}}}\nusers:\n- name: {account}\n  user: {{token: {token}}}\ncontexts:\n- name: local\n  context: {{cluster: local, user: {account}, namespace: {namespace}}}\ncurrent-context: local\n",
        url = env.control_plane.url(),
    );
    let path = env.dir().join(format!("kubeconfig-sa-{namespace}-{account}"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn phase(request: &ApprovalRequest) -> ApprovalPhase {
    request.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_delete_bucket_is_released_by_a_reviewer_with_kubectl_chaperone_and_recorded_with_the_approver()
 {
    let receiver = Receiver::start().await;
    let mut setup = Setup::start(
        "e2e-approve",
        &["s3:DeleteBucket"],
        30,
        600,
        Some(("json", receiver.url("/hooks/approvals"))),
    )
    .await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "e2e-held"]);

    let (done, finished) = std::sync::mpsc::channel();
    let held = setup.aws_in_background(&["s3api", "delete-bucket", "--bucket", "e2e-held"]);
    let held = std::thread::spawn(move || {
        let result = held.join().unwrap();
        let _ = done.send(());
        result
    });
    let request = setup
        .wait_for("a notified ApprovalRequest", "arn:aws:s3:::e2e-held", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.notifications.iter().any(|n| n.state == NotificationState::Delivered)
            })
        })
        .await;
    let name = request.metadata.name.clone().unwrap();
    assert_eq!(phase(&request), ApprovalPhase::Pending, "the operator shows it pending");
    assert!(finished.try_recv().is_err(), "the call is held while the request is pending");

    // The JSON notification: what is held, for whom, and the command that approves it.
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "one notification per request");
    assert_eq!(bodies[0].0, "/hooks/approvals");
    let note: Value = serde_json::from_slice(&bodies[0].1).unwrap();
    assert_eq!(note["approvalRequest"]["name"], name.as_str());
    assert_eq!(note["approvalRequest"]["namespace"], "e2e-approve");
    assert_eq!(note["actions"], json!(["s3:DeleteBucket"]));
    assert_eq!(note["resources"], json!(["arn:aws:s3:::e2e-held"]));
    assert_eq!(note["agent"]["serviceAccount"], "pr-bot");
    assert_eq!(note["connection"], "prod-aws");
    assert_eq!(note["expiresAt"], request.spec.expires_at.as_str());
    let command = format!("kubectl chaperone approvals approve {name} -n e2e-approve");
    assert_eq!(note["approveCommand"], command.as_str());

    let alice = setup.env.control_plane.write_kubeconfig_for("alice", &["sre"]).unwrap();
    let (code, out) = setup.approve_as(&alice, &name);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("approved by alice"), "{out}");
    let (ok, _, err) = tokio::task::spawn_blocking(move || held.join().unwrap()).await.unwrap();
    assert!(ok, "the held delete-bucket went through once approved:\n{err}\n{}", setup.logs());
    assert!(!setup.bucket_exists("e2e-held"), "the bucket is gone");
    let consumed = setup.requests().get(&name).await.unwrap();
    assert_eq!(phase(&consumed), ApprovalPhase::Consumed);
    assert_eq!(consumed.spec.reviews[0].user, "alice", "stamped by the webhook");
    assert_eq!(receiver.bodies().len(), 1, "deciding does not notify again");

    let timelines = setup.recorded_timelines();
    let line = timelines
        .lines()
        .find(|l| l.contains("DeleteBucket"))
        .unwrap_or_else(|| panic!("no DeleteBucket call in the recording:\n{timelines}"));
    assert!(line.contains("approved by alice after"), "{line}");
    assert!(line.contains(&format!("[{name}]")), "{line}");
    assert!(line.contains("204"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecided_call_errors_naming_its_request_then_one_retry_succeeds_after_approval_and_a_third_needs_a_new_one()
 {
    let setup = Setup::start("e2e-retry", &["s3:DeleteBucket"], 2, 600, None).await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "e2e-retry"]);
    let delete = ["s3api", "delete-bucket", "--bucket", "e2e-retry"];

    let (ok, _, err) = setup.aws(&delete);
    assert!(!ok, "no decision within holdSeconds: refused");
    let requests = setup.all_requests().await;
    assert_eq!(requests.len(), 1);
    let name = requests[0].metadata.name.clone().unwrap();
    assert!(err.contains("AccessDenied"), "{err}");
    assert!(
        err.contains(&format!("kubectl chaperone approvals approve {name} -n e2e-retry")),
        "{err}"
    );
    assert!(setup.bucket_exists("e2e-retry"));

    let alice = setup.env.control_plane.write_kubeconfig_for("alice", &["sre"]).unwrap();
    let (code, out) = setup.approve_as(&alice, &name);
    assert_eq!(code, Some(0), "{out}");
    setup
        .wait_for("the operator showing it Approved", "arn:aws:s3:::e2e-retry", |r| {
            phase(r) == ApprovalPhase::Approved
        })
        .await;
    setup.must(&delete);
    assert!(!setup.bucket_exists("e2e-retry"), "the approved retry went through");
    assert_eq!(phase(&setup.requests().get(&name).await.unwrap()), ApprovalPhase::Consumed);

    setup.must(&["s3api", "create-bucket", "--bucket", "e2e-retry"]);
    let (ok, _, err) = setup.aws(&delete);
    assert!(!ok, "a used approval admits nothing more");
    let requests = setup.all_requests().await;
    assert_eq!(requests.len(), 2, "the third run made a new ApprovalRequest");
    let third = requests[1].metadata.name.clone().unwrap();
    assert_ne!(third, name);
    assert!(err.contains(&third), "{err}");
    assert!(setup.bucket_exists("e2e-retry"));
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_by_a_non_reviewer_by_the_agent_itself_or_of_another_call_do_not_release_a_held_call()
 {
    let setup = Setup::start("e2e-refuse", &["s3:DeleteBucket"], 20, 600, None).await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "e2e-kept"]);
    setup.must(&["s3api", "create-bucket", "--bucket", "e2e-other"]);

    let kept = setup.aws_in_background(&["s3api", "delete-bucket", "--bucket", "e2e-kept"]);
    let request =
        setup.wait_for("the held call's request", "arn:aws:s3:::e2e-kept", |_| true).await;
    let name = request.metadata.name.clone().unwrap();

    // A user outside the reviewers: refused by the webhook, naming the rule.
    let mallory = setup.env.control_plane.write_kubeconfig_for("mallory", &["dev"]).unwrap();
    let (code, out) = setup.approve_as(&mallory, &name);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("mallory") && out.contains(RULE), "{out}");
    // The agent's own service account, even with RBAC to update: refused.
    let agent = token_kubeconfig(setup.env, &setup.admin, "e2e-refuse", "pr-bot").await;
    let (code, out) = setup.approve_as(&agent, &name);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("system:serviceaccount:e2e-refuse:pr-bot"), "{out}");

    // A reviewer approves a different call (another bucket): that one goes through, not this one.
    let other = setup.aws_in_background(&["s3api", "delete-bucket", "--bucket", "e2e-other"]);
    let other_request =
        setup.wait_for("the other call's request", "arn:aws:s3:::e2e-other", |_| true).await;
    let other_name = other_request.metadata.name.clone().unwrap();
    assert_ne!(other_name, name);
    assert_ne!(other_request.spec.fingerprint, request.spec.fingerprint);
    let alice = setup.env.control_plane.write_kubeconfig_for("alice", &["sre"]).unwrap();
    let (code, out) = setup.approve_as(&alice, &other_name);
    assert_eq!(code, Some(0), "{out}");
    let (ok, _, err) = tokio::task::spawn_blocking(move || other.join().unwrap()).await.unwrap();
    assert!(ok, "{err}");

    let (ok, _, err) = tokio::task::spawn_blocking(move || kept.join().unwrap()).await.unwrap();
    assert!(!ok, "the held call was not released by any of them");
    assert!(err.contains("AccessDenied") && err.contains(&name), "{err}");
    assert!(setup.bucket_exists("e2e-kept"));
    assert!(!setup.bucket_exists("e2e-other"));
    let unreleased = setup.requests().get(&name).await.unwrap();
    assert!(unreleased.spec.reviews.is_empty(), "{:?}", unreleased.spec.reviews);
    assert_eq!(phase(&unreleased), ApprovalPhase::Pending);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_notification_reaches_the_receiver_once_with_the_agents_text_escaped() {
    let receiver = Receiver::start().await;
    let setup = Setup::start(
        "e2e-slack",
        &["s3:DeleteObject"],
        2,
        600,
        Some(("slack", receiver.url("/services/T000/B000/XXX"))),
    )
    .await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "e2e-slack"]);
    let key = "<!channel> <https://evil.example|click> <script>x</script> & more";
    let (ok, _, err) =
        setup.aws(&["s3api", "delete-object", "--bucket", "e2e-slack", "--key", key]);
    assert!(!ok, "held, then refused: {err}");
    let request = setup
        .wait_for("a delivered notification", &format!("arn:aws:s3:::e2e-slack/{key}"), |r| {
            r.status.as_ref().is_some_and(|s| {
                s.notifications.iter().any(|n| n.state == NotificationState::Delivered)
            })
        })
        .await;
    let name = request.metadata.name.clone().unwrap();
    let delivery = &request.status.as_ref().unwrap().notifications[0];
    assert_eq!(delivery.target, "webhook Secret/approvals-webhook key url (slack)");
    assert_eq!(delivery.attempts, 1);
    assert!(delivery.delivered_at.is_some() && delivery.last_error.is_none());

    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0].0, "/services/T000/B000/XXX");
    let message: Value = serde_json::from_slice(&bodies[0].1).unwrap();
    let mut texts = vec![message["text"].as_str().unwrap().to_owned()];
    for block in message["blocks"].as_array().unwrap() {
        texts.extend(block["text"]["text"].as_str().map(str::to_owned));
        for field in block["fields"].as_array().into_iter().flatten() {
            texts.extend(field["text"].as_str().map(str::to_owned));
        }
    }
    let all = texts.join("\n");
    assert!(all.contains("&lt;!channel&gt;"), "{all}");
    assert!(all.contains("&lt;script&gt;x&lt;/script&gt; &amp; more"), "{all}");
    assert!(!all.contains('<') && !all.contains('>'), "no Slack link or mention survives:\n{all}");
    assert!(
        all.contains(&format!("kubectl chaperone approvals approve {name} -n e2e-slack")),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_webhook_shows_in_status_and_events_and_an_unanswered_request_expires_and_is_deleted()
 {
    // Nothing listens on this port: every attempt fails.
    let dead = format!("http://127.0.0.1:{}/hook", free_port().unwrap());
    let setup = Setup::start("e2e-expire", &["s3:DeleteBucket"], 1, 8, Some(("json", dead))).await;
    let _logs = setup.env.logs_on_failure();
    setup.must(&["s3api", "create-bucket", "--bucket", "e2e-expire"]);
    let (ok, _, _) = setup.aws(&["s3api", "delete-bucket", "--bucket", "e2e-expire"]);
    assert!(!ok);

    let request = setup
        .wait_for("a failed delivery in status", "arn:aws:s3:::e2e-expire", |r| {
            r.status.as_ref().is_some_and(|s| s.notifications.iter().any(|n| n.attempts >= 2))
        })
        .await;
    let name = request.metadata.name.clone().unwrap();
    let delivery = &request.status.as_ref().unwrap().notifications[0];
    assert_ne!(delivery.state, NotificationState::Delivered);
    let error = delivery.last_error.clone().unwrap_or_default();
    assert!(error.contains("posting to the webhook failed"), "{error}");
    assert!(!error.contains("127.0.0.1"), "the URL is a credential and stays out: {error}");
    let events: Api<Event> = Api::namespaced(setup.admin.clone(), "e2e-expire");
    let started = Instant::now();
    loop {
        let found = events.list(&ListParams::default()).await.unwrap().items.into_iter().any(|e| {
            e.reason.as_deref() == Some("NotificationFailed")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
        });
        if found {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no NotificationFailed event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    setup
        .wait_for("the request marked Expired", "arn:aws:s3:::e2e-expire", |r| {
            phase(r) == ApprovalPhase::Expired
        })
        .await;
    let started = Instant::now();
    while setup.requests().get_opt(&name).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not deleted after its retention\n{}",
            setup.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
