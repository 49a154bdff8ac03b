//! Admission webhooks served by every operator replica over TLS: the ApprovalRequest webhook
//! ([`approval`]) that stamps reviewers' identities into decisions, the serving certificate
//! ([`tls`]), and the MutatingWebhookConfiguration that points the API server at them.

pub mod approval;
pub mod certificate_store;
pub mod gateway_identity;
pub mod pod;
pub mod run;
pub mod tls;

use std::future::Future;

use crate::runtime::tls::serve_tls_until;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{Patch, PatchParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::{Api, Client};
use rustls::ServerConfig;
use time::OffsetDateTime;
use tokio::net::TcpListener;

pub use approval::{
    APPROVAL_REQUESTS_PATH, ApiRuleLookup, ApprovalWebhookSettings, RuleLookup, RuleLookupError,
    review_approval_request,
};
pub use pod::{POD_WEBHOOK_NAME, PODS_PATH, PodWebhook, PodWebhookSettings};
pub use tls::{WebhookCertificates, WebhookTlsError};

/// The name of the ApprovalRequest webhook inside its configuration.
pub const APPROVAL_WEBHOOK_NAME: &str = "approvalrequests.chaperone.dev";

/// The field manager the operator applies its webhook configurations with.
pub const FIELD_MANAGER: &str = "chaperone-operator";

/// A request body larger than this is refused (an AdmissionReview of an ApprovalRequest is a few
/// KiB; the API server caps objects at 3 MiB).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What went wrong registering the webhooks.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("applying MutatingWebhookConfiguration {name:?} failed: {source}")]
    Register { name: String, source: kube::Error },
}

/// Where the API server sends AdmissionReviews.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookEndpoint {
    /// A URL reachable from the API server, without the path: `https://127.0.0.1:9443`.
    Url(String),
    /// The operator's Service (port 443 or as given) in the cluster.
    Service { namespace: String, name: String, port: i32 },
}

impl WebhookEndpoint {
    /// `https://host:port` (no path), as given to `--webhook-url`.
    pub fn url(url: &str) -> Result<Self, String> {
        let uri: http::Uri =
            url.parse().map_err(|e| format!("--webhook-url {url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(format!(
                "--webhook-url {url:?} must be https://<host>[:<port>] (the API server only calls webhooks over TLS)"
            ));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!(
                "--webhook-url {url:?} must not have a path: each webhook appends its own"
            ));
        }
        Ok(Self::Url(url.trim_end_matches('/').to_owned()))
    }

    /// `namespace/name[:port]` or `name[:port]` (in `default_namespace`), port 443 by default,
    /// as given to `--webhook-service`.
    pub fn service(spec: &str, default_namespace: &str) -> Result<Self, String> {
        let (reference, port) = match spec.rsplit_once(':') {
            Some((reference, port)) => {
                let port =
                    port.parse::<i32>().ok().filter(|p| (1..=65535).contains(p)).ok_or_else(
                        || format!("--webhook-service {spec:?}: {port:?} is not a port (1-65535)"),
                    )?;
                (reference, port)
            }
            None => (spec, 443),
        };
        let (namespace, name) = reference.split_once('/').unwrap_or((default_namespace, reference));
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!(
                "--webhook-service {spec:?} must be <namespace>/<name>[:<port>] or <name>[:<port>]"
            ));
        }
        Ok(Self::Service { namespace: namespace.to_owned(), name: name.to_owned(), port })
    }

    /// The names the serving certificate must hold for the API server to verify it: the URL's
    /// host, or the Service's DNS names.
    pub fn serving_names(&self) -> Vec<String> {
        match self {
            Self::Url(url) => {
                let host = url
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|uri| uri.host().map(str::to_owned))
                    .unwrap_or_default();
                vec![host.trim_start_matches('[').trim_end_matches(']').to_owned()]
            }
            Self::Service { namespace, name, .. } => vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
                format!("{name}.{namespace}"),
                name.clone(),
            ],
        }
    }
}

/// The settings of every webhook the listener serves.
#[derive(Clone, Debug, Default)]
pub struct WebhookSettings {
    /// The ApprovalRequest webhook's.
    pub approval: ApprovalWebhookSettings,
    /// The pod webhook's.
    pub pods: PodWebhookSettings,
}

impl From<ApprovalWebhookSettings> for WebhookSettings {
    fn from(approval: ApprovalWebhookSettings) -> Self {
        Self { approval, ..Self::default() }
    }
}

/// Serves the webhooks on `listener` with `tls`; it never returns: drop (or abort) the future to
/// stop serving, or use [`serve_webhooks_until`] for a graceful stop.
///
/// Each connection runs on its own task; a failed accept or handshake, or a broken connection, is
/// logged and does not stop the server.
pub async fn serve_webhooks(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    client: Client,
    settings: ApprovalWebhookSettings,
) {
    serve_webhooks_until(listener, tls, client, settings, std::future::pending()).await;
}

/// How long in-flight AdmissionReviews get to finish after shutdown is asked for (the API server
/// gives a webhook at most 30 s).
pub use crate::runtime::tls::SHUTDOWN_GRACE;

/// Serves the webhooks on `listener` until `shutdown` completes; then stops accepting, lets
/// in-flight requests finish (at most [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve_webhooks_until(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    client: Client,
    settings: impl Into<WebhookSettings>,
    shutdown: impl Future<Output = ()>,
) {
    let settings: WebhookSettings = settings.into();
    let state = Arc::new(WebhookState {
        rules: ApiRuleLookup::new(client.clone()),
        settings: settings.approval,
        pods: PodWebhook::new(client, settings.pods),
    });
    let answer = move |request, _certificates| {
        let state = state.clone();
        async move { state.answer(request).await }
    };
    serve_tls_until("webhook", listener, tls, answer, shutdown).await;
}

struct WebhookState {
    rules: ApiRuleLookup,
    settings: ApprovalWebhookSettings,
    pods: PodWebhook,
}

impl WebhookState {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        if path != APPROVAL_REQUESTS_PATH && path != PODS_PATH {
            return plain(StatusCode::NOT_FOUND, "no webhook at this path");
        }
        if request.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "webhooks take POST");
        }
        let body =
            match http_body_util::Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await
            {
                Ok(body) => body.to_bytes(),
                Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")),
            };
        let response = if path == PODS_PATH {
            self.answer_pod(&body).await
        } else {
            self.answer_approval(&body).await
        };
        match approval::admission_review_body(response) {
            Ok(json) => Response::builder()
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(json)))
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response")),
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("encoding: {e}")),
        }
    }

    async fn answer_pod(&self, body: &[u8]) -> AdmissionResponse {
        let review: AdmissionReview<Pod> = match serde_json::from_slice(body) {
            Ok(review) => review,
            Err(e) => return AdmissionResponse::invalid(format!("not a pod AdmissionReview: {e}")),
        };
        let admission: AdmissionRequest<Pod> = match review.try_into() {
            Ok(admission) => admission,
            Err(_) => return AdmissionResponse::invalid("the AdmissionReview carries no request"),
        };
        let response = self.pods.review(&admission).await;
        tracing::info!(
            name = %admission.name,
            namespace = admission.namespace.as_deref().unwrap_or_default(),
            operation = ?admission.operation,
            dry_run = admission.dry_run,
            allowed = response.allowed,
            patched = response.patch.is_some(),
            message = %response.result.message,
            "pod admission"
        );
        response
    }

    async fn answer_approval(&self, body: &[u8]) -> AdmissionResponse {
        match approval::parse_admission_review(body) {
            Ok(admission) => {
                let response = review_approval_request(
                    &admission,
                    &self.settings,
                    &self.rules,
                    OffsetDateTime::now_utc(),
                )
                .await;
                tracing::info!(
                    name = %admission.name,
                    namespace = admission.namespace.as_deref().unwrap_or_default(),
                    operation = ?admission.operation,
                    user = admission.user_info.username.as_deref().unwrap_or_default(),
                    allowed = response.allowed,
                    message = %response.result.message,
                    "ApprovalRequest admission"
                );
                response
            }
            Err(invalid) => AdmissionResponse::invalid(invalid),
        }
    }
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_owned())));
    *response.status_mut() = status;
    response
}

/// How the API server reaches the webhook at `path`.
fn client_config(endpoint: &WebhookEndpoint, ca_pem: &str, path: &str) -> WebhookClientConfig {
    match endpoint {
        WebhookEndpoint::Url(base) => WebhookClientConfig {
            url: Some(format!("{}{path}", base.trim_end_matches('/'))),
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
            service: None,
        },
        WebhookEndpoint::Service { namespace, name, port } => WebhookClientConfig {
            url: None,
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
            service: Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(path.to_owned()),
                port: Some(*port),
            }),
        },
    }
}

/// The MutatingWebhookConfiguration `name` sending every ApprovalRequest CREATE and UPDATE (in any
/// namespace) to `endpoint`, trusted through `ca_pem`.
///
/// It matches every namespace on purpose: an ApprovalRequest anywhere is only trustworthy if its
/// reviews were stamped. `failurePolicy: Fail`, so no review is stored unstamped while the webhook
/// is down.
pub fn approval_webhook_configuration(
    name: &str,
    endpoint: &WebhookEndpoint,
    ca_pem: &str,
) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        webhooks: Some(vec![fail_closed(
            APPROVAL_WEBHOOK_NAME,
            client_config(endpoint, ca_pem, APPROVAL_REQUESTS_PATH),
            vec![rule(chaperone_crds::GROUP, &["CREATE", "UPDATE"], "approvalrequests")],
        )]),
    }
}

/// A webhook the operator serves: fails closed (`failurePolicy: Fail`), 10 s, no side effects,
/// not reinvoked; callers override what differs.
fn fail_closed(
    name: &str,
    client_config: WebhookClientConfig,
    rules: Vec<RuleWithOperations>,
) -> MutatingWebhook {
    MutatingWebhook {
        name: name.to_owned(),
        admission_review_versions: vec!["v1".to_owned()],
        client_config,
        failure_policy: Some("Fail".to_owned()),
        match_policy: Some("Equivalent".to_owned()),
        side_effects: "None".to_owned(),
        timeout_seconds: Some(10),
        reinvocation_policy: Some("Never".to_owned()),
        rules: Some(rules),
        ..Default::default()
    }
}

/// A namespaced rule: `operations` on `resource` of `group`, at version `v1` for the core group
/// (`""`) and at the CRDs' version ([`chaperone_crds::VERSION`]) for ours.
fn rule(group: &str, operations: &[&str], resource: &str) -> RuleWithOperations {
    let version = if group.is_empty() { "v1" } else { chaperone_crds::VERSION };
    RuleWithOperations {
        api_groups: Some(vec![group.to_owned()]),
        api_versions: Some(vec![version.to_owned()]),
        operations: Some(operations.iter().map(|&o| o.to_owned()).collect()),
        resources: Some(vec![resource.to_owned()]),
        scope: Some("Namespaced".to_owned()),
    }
}

/// The MutatingWebhookConfiguration `name` with every webhook the operator serves: the
/// ApprovalRequest webhook (as [`approval_webhook_configuration`]); the pod webhook, which
/// receives pod CREATEs and `pods/ephemeralcontainers` UPDATEs carrying the label
/// `chaperone.dev/connection` (objectSelector), with `sideEffects: NoneOnDryRun` (it writes the
/// `AgentsIsolated` condition, never on dry runs) and `reinvocationPolicy: IfNeeded` (containers
/// added by later webhooks are injected too; the mutation is idempotent); and the gateway-identity
/// webhook, which receives the same requests for pods running as the gateway's ServiceAccount
/// (matchConditions, [`gateway_identity::MATCH_EXPRESSION`]). All fail closed. The chart's
/// `templates/webhooks.yaml` holds the same webhooks.
pub fn webhook_configuration(
    name: &str,
    endpoint: &WebhookEndpoint,
    ca_pem: &str,
) -> MutatingWebhookConfiguration {
    let mut configuration = approval_webhook_configuration(name, endpoint, ca_pem);
    let pod_rules =
        || vec![rule("", &["CREATE"], "pods"), rule("", &["UPDATE"], "pods/ephemeralcontainers")];
    let pods_client = || client_config(endpoint, ca_pem, PODS_PATH);
    let pods = MutatingWebhook {
        side_effects: "NoneOnDryRun".to_owned(),
        reinvocation_policy: Some("IfNeeded".to_owned()),
        object_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: pod::CONNECTION_LABEL.to_owned(),
                operator: "Exists".to_owned(),
                values: None,
            }]),
            match_labels: None,
        }),
        ..fail_closed(POD_WEBHOOK_NAME, pods_client(), pod_rules())
    };
    let gateway_identity = MutatingWebhook {
        match_conditions: Some(vec![MatchCondition {
            name: "gateway-service-account".to_owned(),
            expression: gateway_identity::MATCH_EXPRESSION.to_owned(),
        }]),
        ..fail_closed(gateway_identity::GATEWAY_IDENTITY_WEBHOOK_NAME, pods_client(), pod_rules())
    };
    configuration.webhooks.get_or_insert_with(Vec::new).extend([pods, gateway_identity]);
    configuration
}

/// Creates the configuration `name` with every webhook ([`webhook_configuration`]) when it does
/// not exist; when it does (the chart installs it), patches only each webhook's `clientConfig`
/// (address and `caBundle`, [`client_config_patch`]), so that the installer's `timeoutSeconds`,
/// `sideEffects`, `failurePolicy` and selectors stay as given.
pub async fn register_webhooks(
    client: &Client,
    name: &str,
    endpoint: &WebhookEndpoint,
    ca_pem: &str,
) -> Result<MutatingWebhookConfiguration, WebhookError> {
    apply_configuration(client, name, webhook_configuration(name, endpoint, ca_pem)).await
}

/// The strategic merge patch that gives each webhook of `existing` named in `wanted` the
/// `clientConfig` of `wanted` (webhooks merge by name; `url` or `service`, whichever is not
/// wanted, is cleared). Nothing else is touched; webhooks `wanted` does not name are left alone.
/// `None` when nothing differs.
pub fn client_config_patch(
    existing: &MutatingWebhookConfiguration,
    wanted: &MutatingWebhookConfiguration,
) -> Option<serde_json::Value> {
    let webhooks: Vec<serde_json::Value> = existing
        .webhooks
        .iter()
        .flatten()
        .filter_map(|webhook| {
            let desired = wanted.webhooks.iter().flatten().find(|w| w.name == webhook.name)?;
            let config = &desired.client_config;
            (config != &webhook.client_config).then(|| {
                serde_json::json!({
                    "name": webhook.name,
                    "clientConfig": {
                        "caBundle": config.ca_bundle,
                        "url": config.url,
                        "service": config.service,
                    },
                })
            })
        })
        .collect();
    (!webhooks.is_empty()).then(|| serde_json::json!({ "webhooks": webhooks }))
}

async fn apply_configuration(
    client: &Client,
    name: &str,
    mut configuration: MutatingWebhookConfiguration,
) -> Result<MutatingWebhookConfiguration, WebhookError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let register = |source| WebhookError::Register { name: name.to_owned(), source };
    if let Some(existing) = api.get_opt(name).await.map_err(register)? {
        let missing: Vec<&str> = configuration
            .webhooks
            .iter()
            .flatten()
            .filter(|w| !existing.webhooks.iter().flatten().any(|e| e.name == w.name))
            .map(|w| w.name.as_str())
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                configuration = name,
                ?missing,
                "the webhook configuration lacks webhooks the operator serves; they are not called until it names them"
            );
        }
        let Some(patch) = client_config_patch(&existing, &configuration) else {
            return Ok(existing);
        };
        return api
            .patch(
                name,
                &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
                &Patch::Strategic(patch),
            )
            .await
            .map_err(register);
    }
    configuration.metadata.managed_fields = None;
    let patch = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": configuration.metadata,
        "webhooks": configuration.webhooks,
    });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(register)
}

/// Creates or updates (server-side apply) the ApprovalRequest webhook configuration `name`.
pub async fn register_approval_webhook(
    client: &Client,
    name: &str,
    endpoint: &WebhookEndpoint,
    ca_pem: &str,
) -> Result<MutatingWebhookConfiguration, WebhookError> {
    apply_configuration(client, name, approval_webhook_configuration(name, endpoint, ca_pem)).await
}
