//! `chaperone-env demo` (run by `cargo xtask demo`): the whole story on the local control plane.
//!
//! The operator runs as a process, its webhooks reached by the API server over loopback; the
//! examples are applied; no kubelet runs here, so this program plays the kubelet's part twice: it
//! starts the gateway from the config and keys Secrets the operator wrote, and it runs the agent's
//! AWS CLI with the environment the pod webhook injected into the agent's pod (the gateway
//! Service's address replaced by the gateway's local one, the projected token written to a file).
//! A reviewer approves the held delete-bucket with kubectl-chaperone; an auditor shows and
//! verifies the recording, then reads it through the operator's audit API (a Service and an
//! EndpointSlice at the operator process, as in docs/local-environment.md) and shows the access
//! log those reads left.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chaperone_crds::{AgentConnection, ApprovalRequest};
use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{Pod, Secret, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use serde_json::{Value, json};

use crate::{
    LocalEnv,
    env::install_crds,
    gateway::{GatewayProcess, create_bucket},
    objects::{ensure_namespace, example, set},
    paths,
    ports::free_port,
    process::{ManagedProcess, print_log_tail},
};

/// The namespace, connection, agent and reviewer of the story (as in `examples/`).
const NAMESPACE: &str = "agents";
const CONNECTION: &str = "prod-aws";
const AGENT: &str = "pr-bot";
const REVIEWER: &str = "alice";
const REVIEWERS_GROUP: &str = "sre";
/// The auditor who reads the recording through the audit API.
const AUDITOR: &str = "audra";
const RECORDING_BUCKET: &str = "chaperone-audit";
const SCRATCH_BUCKET: &str = "scratch-builds";
const FIELD_MANAGER: &str = "chaperone-demo";

/// What `demo` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Leave everything running, write `<target>/demo/agent.env` and `<target>/demo/kubeconfig`,
    /// print `demo ready` and wait for Ctrl-C.
    pub keep: bool,
    /// Run the binaries taken out of these OCI layouts (`cargo xtask images`' output folder)
    /// instead of the workspace's debug builds.
    pub images: Option<PathBuf>,
}

/// The folder `--keep` writes the agent's env and the kubeconfig into: `<target>/demo`.
pub fn demo_dir() -> PathBuf {
    paths::target_dir().join("demo")
}

/// The workspace binaries the demo runs (built by `cargo xtask demo` beforehand).
struct Binaries {
    operator: PathBuf,
    gateway: PathBuf,
    cli: PathBuf,
}

impl Binaries {
    /// The operator, gateway and CLI binaries of the images in `layouts`, unpacked for this
    /// machine's architecture under `<target>/demo/image-roots/`.
    fn from_images(layouts: &Path) -> anyhow::Result<Self> {
        let roots = demo_dir().join("image-roots");
        let unpack = |name: &str| -> anyhow::Result<PathBuf> {
            let root = roots.join(name);
            if root.exists() {
                std::fs::remove_dir_all(&root)?;
            }
            let unpacked =
                crate::images::unpack(&layouts.join(name), crate::images::host_arch(), &root)
                    .with_context(|| {
                        format!("unpacking the {name} image from {}", layouts.display())
                    })?;
            let entrypoint = unpacked
                .entrypoint
                .first()
                .with_context(|| format!("the {name} image has no entrypoint"))?;
            Ok(root.join(entrypoint.trim_start_matches('/')))
        };
        Ok(Self {
            operator: unpack("chaperone-operator")?,
            gateway: unpack("chaperone-gateway")?,
            cli: unpack("kubectl-chaperone")?,
        })
    }

    fn locate() -> anyhow::Result<Self> {
        Ok(Self {
            operator: paths::workspace_binary("chaperone-operator", "chaperone-operator")?,
            gateway: paths::workspace_binary("chaperone-gateway", "chaperone-gateway")?,
            cli: paths::workspace_binary("kubectl-chaperone", "kubectl-chaperone")?,
        })
    }
}

/// Numbered, timed steps on stdout.
struct Progress {
    started: Instant,
    step: usize,
}

impl Progress {
    fn step(&mut self, what: &str) {
        self.step += 1;
        println!("\n[{:>5.1} s] {}. {what}", self.started.elapsed().as_secs_f64(), self.step);
    }

    fn show(&self, what: impl AsRef<str>) {
        for line in what.as_ref().lines() {
            println!("    {line}");
        }
    }
}

/// Runs the demo; Ok when every step did what it should.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let mut progress = Progress { started: Instant::now(), step: 0 };
    progress.step("provisioning and starting the local environment (kube-apiserver, etcd, moto)");
    let env = LocalEnv::start().await.context("starting the local environment")?;
    let admin = env.control_plane.client().await?;
    install_crds(&admin).await?;
    progress.show(format!("API server   {}", env.control_plane.url()));
    progress.show(format!("S3/AWS moto  {}", env.moto.endpoint()));
    let binaries = match &options.images {
        Some(layouts) => {
            let binaries = Binaries::from_images(layouts)?;
            progress.show(format!("binaries from the images in {}", layouts.display()));
            binaries
        }
        None => Binaries::locate()?,
    };

    progress.step(
        "starting chaperone-operator; its webhooks are reached over loopback, its audit API \
         through a Service and EndpointSlice",
    );
    ensure_namespace(&admin, "chaperone-system").await?;
    let (mut operator, audit_api) = start_operator(&env, &binaries.operator)?;
    // The Service the operator registers its APIService against, with an EndpointSlice at the
    // operator process (no kube-proxy here).
    crate::objects::service_at(
        &admin,
        "chaperone-system",
        "chaperone-operator",
        8443,
        audit_api,
        FIELD_MANAGER,
    )
    .await?;
    let outcome = story(&env, &admin, &binaries, &mut progress).await;
    match outcome {
        Ok(mut running) => {
            println!(
                "\ndemo finished in {:.0} s: every step passed",
                progress.started.elapsed().as_secs_f64()
            );
            if options.keep {
                keep_running(&env, &running).await?;
            }
            running.gateway.stop();
            operator.terminate(Duration::from_secs(10));
            Ok(())
        }
        Err(e) => {
            print_log_tail("chaperone-operator", operator.log_path(), 40);
            for (name, path) in env.logs() {
                print_log_tail(name, path, 15);
            }
            Err(e)
        }
    }
}

/// What stays up after the story, for `--keep`.
struct Running {
    gateway: GatewayProcess,
    agent_env: Vec<(String, String)>,
}

async fn story(
    env: &LocalEnv,
    admin: &Client,
    binaries: &Binaries,
    progress: &mut Progress,
) -> anyhow::Result<Running> {
    wait_for_webhook_configuration(admin).await?;
    progress.show("MutatingWebhookConfiguration chaperone registered (pods, gateway identity, approvalrequests)");

    progress
        .step("applying examples/ (RecordingPolicy, ApprovalRule, AgentConnection) and Secrets");
    create_bucket(env, RECORDING_BUCKET)?;
    ensure_namespace(admin, NAMESPACE).await?;
    let keys = &env.moto.gateway_user;
    for name in ["aws-prod", "recorder"] {
        apply(
            admin,
            &json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "stringData": {
                    "AWS_ACCESS_KEY_ID": keys.access_key_id,
                    "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
                },
            }),
        )
        .await?;
        progress.show(format!("Secret/{name} (upstream keys; only the gateway reads them)"));
    }
    // The ApprovalRule announces requests to a Slack-compatible webhook: a local receiver here.
    let notifications = NotificationReceiver::start().await?;
    apply(
        admin,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "approvals-slack", "namespace": NAMESPACE},
            "stringData": {"url": notifications.url},
        }),
    )
    .await?;
    progress.show(format!(
        "Secret/approvals-slack (a local Slack-compatible receiver at {})",
        notifications.url
    ));
    // The examples as written, pointed at moto instead of AWS.
    let mut policy = example("recordingpolicy")?;
    set(&mut policy, "/spec/s3/endpoint", json!(env.moto.endpoint()));
    let mut connection = example("agentconnection")?;
    let moto: serde_json::Map<String, Value> = ["s3", "sts", "dynamodb", "iam"]
        .iter()
        .map(|service| (service.to_string(), json!(env.moto.endpoint())))
        .collect();
    set(&mut connection, "/spec/aws/endpoints", Value::Object(moto));
    let mut rule = example("approvalrule")?;
    set(&mut rule, "/spec/holdSeconds", json!(120));
    for object in
        [policy, rule, connection, example("reviewers-role")?, example("reviewers-rolebinding")?]
    {
        apply(admin, &object).await?;
        progress.show(format!(
            "{}/{}",
            object["kind"].as_str().unwrap_or("?"),
            object["metadata"]["name"].as_str().unwrap_or("?")
        ));
    }

    progress.step("the operator reconciles the namespace's gateway");
    let (config_yaml, keys_json) = wait_for_gateway_secrets(admin).await?;
    let connection = wait_for_condition(admin, "CredentialsResolved").await?;
    for condition in connection.status.iter().flat_map(|s| s.conditions.iter()) {
        progress.show(format!(
            "AgentConnection {CONNECTION} {}={} ({})",
            condition.type_, condition.status, condition.reason
        ));
    }
    progress.show("Secrets chaperone-gateway-config and chaperone-gateway-keys written");

    progress.step("starting the gateway from those Secrets, as the kubelet would");
    let gateway_kubeconfig = service_account_kubeconfig(env, admin, "chaperone-gateway").await?;
    let gateway = GatewayProcess::start_from_operator_config(
        env,
        &binaries.gateway,
        NAMESPACE,
        CONNECTION,
        &config_yaml,
        &keys_json,
        &[format!("--kubeconfig={}", gateway_kubeconfig.display())],
    )
    .await?;
    progress.show(format!(
        "gateway listening at {} (log {})",
        gateway.endpoint,
        gateway.log_path().display()
    ));

    progress
        .step("creating the agent's pod through the API; the webhook injects the gateway's env");
    let pod = create_agent_pod(admin).await?;
    let injected = injected_env(&pod)?;
    for (key, value) in &injected {
        progress.show(format!("{key}={value}"));
    }
    let ca_pem = gateway.certificates.as_ref().map(|c| c.ca_pem().to_owned());
    let agent_env =
        local_agent_env(env, admin, &pod, &injected, &gateway.endpoint, ca_pem.as_deref()).await?;

    progress.step("the agent's AWS CLI session, through the gateway");
    let report = "build 4711: 0 failures\n";
    let report_file = env.dir().join("report.txt");
    fs::write(&report_file, report)?;
    let report_path = report_file.display().to_string();
    let object = format!("s3://{SCRATCH_BUCKET}/reports/report.txt");
    aws(env, &agent_env, progress, &["sts", "get-caller-identity", "--output", "text"])?;
    aws(env, &agent_env, progress, &["s3", "mb", &format!("s3://{SCRATCH_BUCKET}")])?;
    aws(env, &agent_env, progress, &["s3", "cp", &report_path, &object])?;
    aws(
        env,
        &agent_env,
        progress,
        &["s3", "ls", &format!("s3://{SCRATCH_BUCKET}"), "--recursive"],
    )?;
    let read_back = aws(env, &agent_env, progress, &["s3", "cp", &object, "-"])?;
    if read_back != report {
        bail!("the object read back through the gateway differs: {read_back:?}");
    }
    let (ok, _, err) = aws_cli_output(env, &agent_env, &["iam", "list-users"]);
    if ok || !err.contains("AccessDenied") {
        bail!("iam:ListUsers should be denied by the connection's policy; the CLI said: {err}");
    }
    progress.show("$ aws iam list-users");
    progress.show(format!("  refused: {}", err.trim()));
    aws(env, &agent_env, progress, &["s3", "rm", &object])?;

    progress.step("aws s3api delete-bucket: held by the gateway until a reviewer approves");
    let held = {
        let env_vars = agent_env.clone();
        let mut command = env.moto.aws_cli_command();
        command.args([
            "--cli-read-timeout",
            "180",
            "s3api",
            "delete-bucket",
            "--bucket",
            SCRATCH_BUCKET,
        ]);
        command.envs(env_vars);
        std::thread::spawn(move || command.output())
    };
    let request = wait_for_pending_request(admin).await?;
    let name = request.metadata.name.clone().unwrap_or_default();
    progress.show(format!("ApprovalRequest {name} is pending; the CLI is waiting"));
    let notification = notifications.first(Duration::from_secs(30)).await?;
    progress.show(format!(
        "the operator notified the reviewers (Slack-compatible webhook): {notification}"
    ));
    let reviewer = env.control_plane.write_kubeconfig_for(REVIEWER, &[REVIEWERS_GROUP])?;
    let inbox =
        kubectl_chaperone(&binaries.cli, &reviewer, &[], &["approvals", "list", "-n", NAMESPACE])?;
    progress.show(format!("$ kubectl chaperone approvals list -n {NAMESPACE}   (as {REVIEWER}, group {REVIEWERS_GROUP})"));
    progress.show(&inbox);
    let approved = kubectl_chaperone(
        &binaries.cli,
        &reviewer,
        &[],
        &[
            "approvals",
            "approve",
            &name,
            "-n",
            NAMESPACE,
            "--reason",
            "scratch bucket of build 4711",
        ],
    )?;
    progress
        .show(format!("$ kubectl chaperone approvals approve {name} -n {NAMESPACE} --reason ..."));
    progress.show(&approved);
    let output = held
        .join()
        .map_err(|_| anyhow::anyhow!("the delete-bucket thread panicked"))?
        .context("running aws s3api delete-bucket")?;
    if !output.status.success() {
        bail!("delete-bucket failed after approval: {}", String::from_utf8_lossy(&output.stderr));
    }
    let (_, buckets, _) = aws_cli_output(
        env,
        &agent_env,
        &["s3api", "list-buckets", "--query", "Buckets[].Name", "--output", "text"],
    );
    if buckets.split_whitespace().any(|b| b == SCRATCH_BUCKET) {
        bail!("bucket {SCRATCH_BUCKET} still exists after the approved delete");
    }
    progress.show(format!("the held call completed: bucket {SCRATCH_BUCKET} is gone"));

    progress.step("the session ends; an auditor reads and verifies the recording");
    let mut gateway = gateway;
    // A graceful stop closes the session: its last segment, digest and manifest are uploaded.
    gateway.stop();
    let admin_kubeconfig = env.control_plane.admin_kubeconfig().to_path_buf();
    let auditor = &env.moto.auditor_user;
    let auditor_env = [
        ("AWS_ACCESS_KEY_ID", auditor.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", auditor.secret_access_key.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    let where_from =
        ["--recording-policy", "default", "-n", NAMESPACE, "--endpoint-url", env.moto.endpoint()];
    let mut list_args = vec!["sessions", "list"];
    list_args.extend(where_from);
    let listing = kubectl_chaperone(&binaries.cli, &admin_kubeconfig, &auditor_env, &list_args)?;
    progress.show("$ kubectl chaperone sessions list --recording-policy default -n agents");
    progress.show(&listing);
    list_args.extend(["-o", "json"]);
    let sessions: Value = serde_json::from_str(&kubectl_chaperone(
        &binaries.cli,
        &admin_kubeconfig,
        &auditor_env,
        &list_args,
    )?)
    .context("parsing sessions list -o json")?;
    let session = newest_session_id(&sessions).context("no recorded session was listed")?;
    let mut show_args = vec!["sessions", "show", session.as_str()];
    show_args.extend(where_from);
    let timeline = kubectl_chaperone(&binaries.cli, &admin_kubeconfig, &auditor_env, &show_args)?;
    progress.show(format!("$ kubectl chaperone sessions show {session}"));
    progress.show(&timeline);
    for expected in [
        "s3:CreateBucket",
        "s3:PutObject",
        "s3:GetObject",
        "iam:ListUsers",
        "s3:DeleteBucket",
        REVIEWER,
    ] {
        if !timeline.contains(expected) {
            bail!("the recording's timeline lacks {expected}");
        }
    }
    let mut verify_args = vec!["sessions", "verify", session.as_str(), "--cluster-keys"];
    verify_args.extend(where_from);
    let verified = kubectl_chaperone(&binaries.cli, &admin_kubeconfig, &auditor_env, &verify_args)?;
    progress.show(format!("$ kubectl chaperone sessions verify {session} --cluster-keys"));
    progress.show(&verified);
    audited_reads(env, admin, binaries, progress, &session, &auditor_env).await?;
    gateway.restart()?;
    Ok(Running { gateway, agent_env })
}

/// The default read path: an auditor bound to chaperone-session-auditor in the namespace reads
/// the session through the operator's audit API with their own Kubernetes identity, and each
/// read lands in the namespace's signed access log.
async fn audited_reads(
    env: &LocalEnv,
    admin: &Client,
    binaries: &Binaries,
    progress: &mut Progress,
    session: &str,
    auditor_env: &[(&str, &str)],
) -> anyhow::Result<()> {
    progress.step("an auditor reads it through the audit API; each read is logged");
    apply(admin, &crate::objects::session_auditor_cluster_role()).await?;
    let auditor = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": AUDITOR});
    apply(admin, &crate::objects::session_auditor_binding(NAMESPACE, auditor)).await?;
    let services: Api<k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService> =
        Api::all(admin.clone());
    eventually("the audit APIService to become Available", Duration::from_secs(90), || async {
        let service = services.get_opt("v1alpha1.audit.chaperone.dev").await?;
        let available = service
            .and_then(|s| s.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True");
        Ok(available.then_some(()))
    })
    .await?;
    let kubeconfig = env.control_plane.write_kubeconfig_for(AUDITOR, &["auditors"])?;
    let listing =
        kubectl_chaperone(&binaries.cli, &kubeconfig, &[], &["sessions", "list", "-n", NAMESPACE])?;
    progress.show(format!("$ kubectl chaperone sessions list -n {NAMESPACE}    # as {AUDITOR}"));
    progress.show(&listing);
    if !listing.contains(session) {
        bail!("the audit API's list lacks session {session}:\n{listing}");
    }
    let shown = kubectl_chaperone(
        &binaries.cli,
        &kubeconfig,
        &[],
        &["sessions", "show", session, "-n", NAMESPACE],
    )?;
    progress.show(format!(
        "$ kubectl chaperone sessions show {session} -n {NAMESPACE}    # as {AUDITOR}"
    ));
    progress.show(shown.lines().take(4).collect::<Vec<_>>().join("\n"));
    if !shown.contains("s3:DeleteBucket") {
        bail!("the session read through the audit API lacks s3:DeleteBucket:\n{shown}");
    }
    let log_args = [
        "sessions",
        "access-log",
        "--recording-policy",
        "default",
        "-n",
        NAMESPACE,
        "--endpoint-url",
        env.moto.endpoint(),
        "--cluster-access-log-key",
    ];
    let log = kubectl_chaperone(
        &binaries.cli,
        env.control_plane.admin_kubeconfig(),
        auditor_env,
        &log_args,
    )?;
    progress.show(format!(
        "$ kubectl chaperone sessions access-log --recording-policy default -n {NAMESPACE} --cluster-access-log-key"
    ));
    progress.show(&log);
    if !log.contains(AUDITOR) {
        bail!("the access log does not name {AUDITOR}:\n{log}");
    }
    Ok(())
}

/// `--keep`: writes the agent's env and a kubeconfig, says `demo ready`, waits for Ctrl-C.
async fn keep_running(env: &LocalEnv, running: &Running) -> anyhow::Result<()> {
    let dir = demo_dir();
    fs::create_dir_all(&dir)?;
    let mut agent = String::new();
    for (key, value) in &running.agent_env {
        let _ = writeln!(agent, "{key}={value}");
    }
    fs::write(dir.join("agent.env"), agent)?;
    fs::copy(env.control_plane.admin_kubeconfig(), dir.join("kubeconfig"))?;
    println!("\nagent env:  {}", dir.join("agent.env").display());
    println!("kubeconfig: {}", dir.join("kubeconfig").display());
    println!("try:        set -a; . {}; set +a; aws s3 ls", dir.join("agent.env").display());
    println!(
        "            KUBECONFIG={} kubectl get agentconnections,approvalrequests -A",
        dir.join("kubeconfig").display()
    );
    println!("demo ready");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// The operator process, and the address its audit API listens on (a non-loopback address of
/// this machine, since the API server refuses loopback endpoints).
fn start_operator(
    env: &LocalEnv,
    binary: &Path,
) -> anyhow::Result<(ManagedProcess, std::net::SocketAddr)> {
    let webhook_port = free_port()?;
    let admin_port = free_port()?;
    let ip = crate::ports::non_loopback_address()
        .context("the audit API needs a non-loopback address on this machine")?;
    let audit_api = std::net::SocketAddr::new(ip, crate::ports::free_port_on(ip)?);
    let mut command = Command::new(binary);
    command
        .env("KUBECONFIG", env.control_plane.admin_kubeconfig())
        .env("RUST_LOG", "info")
        .args([
            "--log-format=text",
            "--namespace=chaperone-system",
            "--gateway-replicas=1",
            "--gateway-image=chaperone-gateway:demo",
        ])
        .arg(format!("--admin=127.0.0.1:{admin_port}"))
        .arg(format!("--webhook-listen=127.0.0.1:{webhook_port}"))
        .arg(format!("--webhook-url=https://127.0.0.1:{webhook_port}"))
        .arg(format!("--audit-api-listen={audit_api}"))
        .arg(format!("--gateway-jwks-uri={}/openid/v1/jwks", env.control_plane.url()));
    crate::aws::scrub_aws_env(&mut command);
    let process =
        ManagedProcess::start("chaperone-operator", command, &env.dir().join("operator.log"))?;
    Ok((process, audit_api))
}

async fn apply(client: &Client, object: &Value) -> anyhow::Result<()> {
    crate::objects::apply(client, object, FIELD_MANAGER).await
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_for_webhook_configuration(admin: &Client) -> anyhow::Result<()> {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let api: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    eventually("the operator's webhook configuration", Duration::from_secs(60), || async {
        Ok(api.get_opt("chaperone").await?.filter(|c| {
            c.webhooks.as_ref().is_some_and(|w| {
                w.len() >= 2 && w.iter().all(|w| w.client_config.ca_bundle.is_some())
            })
        }))
    })
    .await
    .map(|_| ())
}

async fn wait_for_gateway_secrets(admin: &Client) -> anyhow::Result<(String, Vec<u8>)> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    eventually("the gateway's config and keys Secrets", Duration::from_secs(60), || async {
        let config = secrets.get_opt("chaperone-gateway-config").await?;
        let keys = secrets.get_opt("chaperone-gateway-keys").await?;
        let value = |secret: Option<Secret>, key: &str| {
            secret.and_then(|s| s.data).and_then(|d| d.get(key).map(|v| v.0.clone()))
        };
        Ok(match (value(config, "gateway.yaml"), value(keys, "keys.json")) {
            (Some(config), Some(keys)) => Some((String::from_utf8(config)?, keys)),
            _ => None,
        })
    })
    .await
}

async fn wait_for_condition(admin: &Client, type_: &str) -> anyhow::Result<AgentConnection> {
    let api: Api<AgentConnection> = Api::namespaced(admin.clone(), NAMESPACE);
    eventually(
        &format!("AgentConnection {CONNECTION} {type_}=True"),
        Duration::from_secs(60),
        || async {
            let connection = api.get(CONNECTION).await?;
            let ready = connection
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .any(|c| c.type_ == type_ && c.status == "True");
            Ok(ready.then_some(connection))
        },
    )
    .await
}

/// A kubeconfig that authenticates as `service_account` of the namespace with a TokenRequest
/// token, as a pod of that account would.
async fn service_account_kubeconfig(
    env: &LocalEnv,
    admin: &Client,
    service_account: &str,
) -> anyhow::Result<PathBuf> {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(24 * 3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = eventually("the gateway's ServiceAccount", Duration::from_secs(30), || async {
        Ok(
            match api
                .create_subresource::<TokenRequest, TokenRequest>(
                    "token",
                    service_account,
                    &PostParams::default(),
                    &request,
                )
                .await
            {
                Ok(answer) => answer.status.map(|s| s.token),
                Err(kube::Error::Api(e)) if e.code == 404 => None,
                Err(e) => return Err(e.into()),
            },
        )
    })
    .await?;
    let ca = env.dir().join("demo-ca.crt");
    fs::write(&ca, env.control_plane.ca_pem())?;
    let kubeconfig = serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": env.control_plane.url(), "certificate-authority": ca}}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": service_account, "namespace": NAMESPACE}}],
        "current-context": "local",
    }))?;
    let path = env.dir().join(format!("{service_account}.kubeconfig"));
    fs::write(&path, kubeconfig)?;
    Ok(path)
}

async fn create_agent_pod(admin: &Client) -> anyhow::Result<Pod> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some(AGENT.into()), ..Default::default() },
        ..Default::default()
    };
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating the agent's ServiceAccount"),
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": AGENT,
            "labels": {"chaperone.dev/connection": CONNECTION, "app": AGENT},
        },
        "spec": {
            "serviceAccountName": AGENT,
            "containers": [{
                "name": "agent",
                "image": "public.ecr.aws/aws-cli/aws-cli:2",
                "command": ["sleep", "infinity"],
            }],
        },
    }))?;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    pods.create(&PostParams::default(), &pod)
        .await
        .context("creating the agent's pod (the pod webhook of the operator must admit it)")
}

/// The literal env the webhook put into the pod's container, and the token's mount path.
fn injected_env(pod: &Pod) -> anyhow::Result<Vec<(String, String)>> {
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .context("the pod came back without containers")?;
    let env: Vec<(String, String)> = container
        .env
        .iter()
        .flatten()
        .filter(|e| e.name.starts_with("AWS_"))
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    if !env.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL") {
        bail!("the pod webhook did not inject AWS_ENDPOINT_URL: {:?}", container.env);
    }
    Ok(env)
}

/// The injected env, as the agent's process sees it on this machine: the gateway's local address
/// instead of its Service, and the projected token (minted for the pod, audience chaperone.dev)
/// in a file.
async fn local_agent_env(
    env: &LocalEnv,
    admin: &Client,
    pod: &Pod,
    injected: &[(String, String)],
    gateway_endpoint: &str,
    gateway_ca_pem: Option<&str>,
) -> anyhow::Result<Vec<(String, String)>> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["chaperone.dev".into()],
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let token = accounts
        .create_subresource::<TokenRequest, TokenRequest>(
            "token",
            AGENT,
            &PostParams::default(),
            &request,
        )
        .await
        .context("minting the pod's projected token")?
        .status
        .context("TokenRequest without status")?
        .token;
    let dir = demo_dir();
    fs::create_dir_all(&dir)?;
    let token_file = dir.join("token");
    fs::write(&token_file, token)?;
    // The injected volume's contents (token and the gateway's CA), at a local folder: the CA
    // variables the webhook injected then name the local copies.
    let volume = dir.join("agent-volume");
    fs::create_dir_all(&volume)?;
    fs::write(volume.join("token"), fs::read(&token_file)?)?;
    if let Some(ca) = gateway_ca_pem {
        fs::write(volume.join(chaperone_config::tls::AGENT_CA_FILE), ca)?;
    }
    let mount = "/var/run/secrets/chaperone.dev/serviceaccount";
    let home = env.dir().join("agent-home");
    fs::create_dir_all(&home)?;
    let mut local: Vec<(String, String)> = injected
        .iter()
        .map(|(key, value)| match key.as_str() {
            "AWS_ENDPOINT_URL" | "AWS_ENDPOINT_URL_STS" => {
                (key.clone(), gateway_endpoint.to_owned())
            }
            "AWS_WEB_IDENTITY_TOKEN_FILE" => (key.clone(), token_file.display().to_string()),
            _ => (key.clone(), value.replace(mount, &volume.display().to_string())),
        })
        .collect();
    local.push(("HOME".into(), home.display().to_string()));
    Ok(local)
}

fn aws_cli_output(
    env: &LocalEnv,
    agent_env: &[(String, String)],
    args: &[&str],
) -> (bool, String, String) {
    crate::gateway::aws_cli(env, agent_env, args)
}

/// Runs one AWS CLI command as the agent, shows it and its output; fails if it fails.
fn aws(
    env: &LocalEnv,
    agent_env: &[(String, String)],
    progress: &Progress,
    args: &[&str],
) -> anyhow::Result<String> {
    progress.show(format!("$ aws {}", args.join(" ")));
    let (ok, out, err) = aws_cli_output(env, agent_env, args);
    if !ok {
        bail!("aws {} failed:\n{err}", args.join(" "));
    }
    for line in out.lines().take(8) {
        progress.show(format!("  {line}"));
    }
    Ok(out)
}

fn kubectl_chaperone(
    binary: &Path,
    kubeconfig: &Path,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> anyhow::Result<String> {
    let mut command = Command::new(binary);
    crate::aws::scrub_aws_env(&mut command);
    command.env("KUBECONFIG", kubeconfig).envs(extra_env.iter().copied()).args(args);
    let output = command.output().context("running kubectl-chaperone")?;
    if !output.status.success() {
        bail!(
            "kubectl-chaperone {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn wait_for_pending_request(admin: &Client) -> anyhow::Result<ApprovalRequest> {
    let api: Api<ApprovalRequest> = Api::namespaced(admin.clone(), NAMESPACE);
    eventually("the gateway's ApprovalRequest", Duration::from_secs(60), || async {
        Ok(api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|r| r.spec.actions.iter().any(|a| a == "s3:DeleteBucket")))
    })
    .await
}

fn newest_session_id(sessions: &Value) -> Option<String> {
    let list = sessions.as_array().or_else(|| sessions["sessions"].as_array())?;
    list.iter()
        .filter_map(|s| {
            Some((
                s["started"].as_str().or(s["startedAt"].as_str()).unwrap_or(""),
                s["session"].as_str().or(s["id"].as_str())?,
            ))
        })
        .max()
        .map(|(_, id)| id.to_owned())
}

/// A local HTTP receiver standing in for a Slack incoming webhook: it keeps each POST's `text`.
struct NotificationReceiver {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl NotificationReceiver {
    async fn start() -> anyhow::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/services/demo", listener.local_addr()?);
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 8192];
                    // Read the head, then Content-Length bytes of body.
                    loop {
                        let Ok(n) = stream.read(&mut buffer).await else { return };
                        if n == 0 {
                            break;
                        }
                        request.extend_from_slice(&buffer[..n]);
                        let text = String::from_utf8_lossy(&request).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                let body = &request[end + 4..end + 4 + length];
                                let text = serde_json::from_slice::<Value>(body)
                                    .ok()
                                    .and_then(|v| v["text"].as_str().map(str::to_owned))
                                    .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
                                if let Ok(mut list) = store.lock() {
                                    list.push(text);
                                }
                                break;
                            }
                        }
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        Ok(Self { url, received })
    }

    async fn first(&self, timeout: Duration) -> anyhow::Result<String> {
        eventually("the approval notification", timeout, || async {
            Ok(self.received.lock().ok().and_then(|list| list.first().cloned()))
        })
        .await
    }
}
