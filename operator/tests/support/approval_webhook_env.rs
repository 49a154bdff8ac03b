//! The local API server with the operator's ApprovalRequest webhook served in-process over
//! loopback TLS and registered with its CA bundle, plus per-test namespaces holding an
//! ApprovalRule, the gateway's and the agent's service accounts, and reviewers' RBAC.
//!
//! Shared by the operator's webhook tests and the CLI's approvals tests.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use chaperone_crds::ApprovalRequest;
use chaperone_operator::webhooks::tls::WEBHOOK_CA_NAME;
use chaperone_operator::webhooks::{
    ApprovalWebhookSettings, WebhookCertificates, WebhookEndpoint, register_approval_webhook,
    serve_webhooks,
};
use chaperone_tests::LocalEnv;
use chaperone_tests::control_plane::client_from_kubeconfig;
use chaperone_tests::objects::{create_in, ensure_namespace, example, set};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The name of the gateway's service account (the only creator of ApprovalRequests).
pub const GATEWAY_SERVICE_ACCOUNT: &str = "chaperone-gateway";
/// The agent's service account, as in examples/approvalrequest.yaml.
pub const AGENT_SERVICE_ACCOUNT: &str = "pr-bot";
/// The rule of examples/approvalrule.yaml.
pub const RULE: &str = "bucket-deletion";

/// The shared environment, with the webhook serving and registered (once per test binary).
pub fn environment() -> &'static LocalEnv {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = LocalEnv::shared();
    static WEBHOOK: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = WEBHOOK.get_or_init(|| start_webhook(env)) {
        panic!("the ApprovalRequest webhook did not start: {e}");
    }
    env
}

/// Serves the webhook on its own thread and runtime (tests' runtimes end with each test), and
/// returns once the API server calls it.
fn start_webhook(env: &'static LocalEnv) -> Result<(), String> {
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            match prepare_webhook(env).await {
                Ok((listener, tls, client)) => {
                    let _ = ready.send(Ok(()));
                    let settings = ApprovalWebhookSettings {
                        gateway_service_account: GATEWAY_SERVICE_ACCOUNT.to_owned(),
                    };
                    serve_webhooks(listener, tls, client, settings).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("{e:#}")));
                }
            }
        });
    });
    let outcome = started.recv().map_err(|e| e.to_string())?;
    outcome?;
    // The API server picks up the configuration asynchronously; wait until it calls the webhook.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(wait_until_called(env)).map_err(|e| format!("{e:#}"))
    })
    .join()
    .map_err(|_| "the readiness check panicked".to_owned())?
}

async fn prepare_webhook(
    env: &LocalEnv,
) -> anyhow::Result<(tokio::net::TcpListener, std::sync::Arc<rustls::ServerConfig>, Client)> {
    let client = env.control_plane.client().await?;
    chaperone_tests::env::install_crds(&client).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let certificates = WebhookCertificates::generate(WEBHOOK_CA_NAME, &["127.0.0.1".to_owned()])?;
    register_approval_webhook(
        &client,
        "chaperone-approvalrequests",
        &WebhookEndpoint::Url(format!("https://127.0.0.1:{port}")),
        certificates.ca_pem(),
    )
    .await?;
    Ok((listener, certificates.server_config()?, client))
}

/// Creates an ApprovalRequest as the admin until the webhook refuses it (the admin is not the
/// gateway): proof that the API server reaches the webhook over TLS.
async fn wait_until_called(env: &LocalEnv) -> anyhow::Result<()> {
    let client = env.control_plane.client().await?;
    ensure_namespace(&client, "webhook-probe").await?;
    let started = Instant::now();
    loop {
        let mut object = example("approvalrequest")?;
        set(&mut object, "/metadata/name", json!("probe"));
        match create_in(&client, "webhook-probe", &object).await? {
            Err(kube::Error::Api(status))
                if status.message.contains("created by the Chaperone gateway") =>
            {
                return Ok(());
            }
            Ok(_) => {
                let api: Api<DynamicObject> = Api::namespaced_with(
                    client.clone(),
                    "webhook-probe",
                    &kube::api::ApiResource::erase::<ApprovalRequest>(&()),
                );
                let _ = api.delete("probe", &Default::default()).await;
            }
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the API server did not call the ApprovalRequest webhook within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A namespace with the example ApprovalRule (reviewers as given), the gateway's and the agent's
/// service accounts, and RBAC that lets every authenticated user get, list, update and patch
/// ApprovalRequests there, so that refusals come from the webhook and not from RBAC.
pub struct ApprovalNamespace {
    pub name: String,
    pub admin: Client,
    pub gateway: Client,
}

impl ApprovalNamespace {
    pub async fn create(
        env: &LocalEnv,
        name: &str,
        groups: &[&str],
        users: &[&str],
        required: i32,
    ) -> anyhow::Result<Self> {
        let admin = env.control_plane.client().await?;
        ensure_namespace(&admin, name).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), name);
        for account in [GATEWAY_SERVICE_ACCOUNT, AGENT_SERVICE_ACCOUNT] {
            let object: ServiceAccount =
                serde_json::from_value(json!({"metadata": {"name": account}}))?;
            create_or_keep(accounts.create(&PostParams::default(), &object).await)?;
        }
        let roles: Api<Role> = Api::namespaced(admin.clone(), name);
        let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), name);
        for (role, verbs) in [
            ("chaperone-gateway", json!(["create", "get", "list", "watch", "update", "patch"])),
            ("approval-reviewer", json!(["get", "list", "update", "patch"])),
        ] {
            let object: Role = serde_json::from_value(json!({
                "metadata": {"name": role},
                "rules": [{"apiGroups": ["chaperone.dev"], "resources": ["approvalrequests"], "verbs": verbs}],
            }))?;
            create_or_keep(roles.create(&PostParams::default(), &object).await)?;
        }
        let gateway_binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "chaperone-gateway"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "chaperone-gateway"},
            "subjects": [{"kind": "ServiceAccount", "name": GATEWAY_SERVICE_ACCOUNT, "namespace": name}],
        }))?;
        create_or_keep(bindings.create(&PostParams::default(), &gateway_binding).await)?;
        let reviewer_binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "approval-reviewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approval-reviewer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}],
        }))?;
        create_or_keep(bindings.create(&PostParams::default(), &reviewer_binding).await)?;

        let mut rule = example("approvalrule")?;
        set(
            &mut rule,
            "/spec/reviewers",
            json!({"groups": groups, "users": users, "required": required}),
        );
        create_or_keep(create_in(&admin, name, &rule).await?.map(|_| ()))?;

        let gateway = service_account_client(env, &admin, name, GATEWAY_SERVICE_ACCOUNT).await?;
        Ok(Self { name: name.to_owned(), admin, gateway })
    }

    /// The gateway holds a call: it creates ApprovalRequest `request` needing `required` approvals.
    pub async fn hold_call(&self, request: &str, required: i32) -> anyhow::Result<()> {
        let mut object = example("approvalrequest")?;
        set(&mut object, "/metadata/name", json!(request));
        set(&mut object, "/spec/requiredApprovals", json!(required));
        create_in(&self.gateway, &self.name, &object)
            .await?
            .with_context(|| format!("the gateway creating ApprovalRequest {request}"))?;
        Ok(())
    }

    pub fn requests(&self, client: &Client) -> Api<ApprovalRequest> {
        Api::namespaced(client.clone(), &self.name)
    }
}

fn create_or_keep<T>(outcome: Result<T, kube::Error>) -> anyhow::Result<()> {
    match outcome {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A client authenticated by a token the API server minted for service account `account`.
pub async fn service_account_client(
    env: &LocalEnv,
    admin: &Client,
    namespace: &str,
    account: &str,
) -> anyhow::Result<Client> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() },
        ..Default::default()
    };
    let token = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await?
        .status
        .context("TokenRequest without status")?
        .token;
    let ca = base64::engine::general_purpose::STANDARD.encode(env.control_plane.ca_pem());
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: {url}, certificate-authority-data: {ca}}}
users:
- name: {account}
  user: {{token: {token}}}
contexts:
- name: local
  context: {{cluster: local, user: {account}}}
current-context: local
",
        url = env.control_plane.url(),
    );
    client_from_kubeconfig(&kubeconfig).await
}
