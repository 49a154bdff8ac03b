//! The agents' port: every AWS call an agent makes arrives here.
//!
//! Unsigned AssumeRoleWithWebIdentity is answered by the identity exchange; everything else is a
//! call on the data path, stage by stage in [`crate::call`]: authenticated against the session the
//! gateway minted, classified, decided by the connection's policy (and approval rules), recorded
//! write-ahead, re-signed with the connection's upstream credentials and forwarded, and its
//! response streamed back while it is captured for the recording.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, RwLock},
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{
    approval::{ApprovalGate, ApprovalRules},
    aws_error::{AwsError, ErrorShape},
    body::buffer_body,
    call::Call,
    classify::Classifier,
    forward::{BoxError, UpstreamForwarder},
    identity::{AssumeRoleWithWebIdentityRequest, WebIdentityExchange, sts::new_request_id},
    metrics::{CodeLabels, GatewayMetrics},
    policy::CompiledPolicy,
    record::EventRecorder,
    upstream::UpstreamCredentialsProvider,
};
use chaperone_config::{ConnectionConfig, GatewayConfig};

/// The body type of every response the gateway sends.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// Largest unsigned STS request accepted.
const MAX_STS_BODY: usize = 64 * 1024;

/// Everything derived from one configuration; swapped whole on reload.
pub struct GatewayRuntime {
    /// The configuration.
    pub config: GatewayConfig,
    /// Each connection's compiled policy.
    pub policies: HashMap<String, CompiledPolicy>,
    /// AssumeRoleWithWebIdentity and session opening.
    pub exchange: WebIdentityExchange,
    /// ApprovalRules and their ApprovalRequests; `None` when the namespace has no rules.
    pub approvals: Option<ApprovalGate>,
}

/// The gateway: shared by every connection task.
pub struct Gateway {
    runtime: RwLock<Arc<GatewayRuntime>>,
    pub(crate) classifier: Classifier,
    pub(crate) forwarder: UpstreamForwarder,
    pub(crate) credentials: Arc<UpstreamCredentialsProvider>,
    pub(crate) metrics: Arc<GatewayMetrics>,
    pub(crate) recorder: Arc<dyn EventRecorder>,
}

impl Gateway {
    /// A gateway over a compiled runtime.
    pub fn new(
        runtime: GatewayRuntime,
        gateway_hosts: Vec<String>,
        metrics: Arc<GatewayMetrics>,
        recorder: Arc<dyn EventRecorder>,
    ) -> Self {
        let forwarder = UpstreamForwarder::new();
        let credentials =
            Arc::new(UpstreamCredentialsProvider::new(forwarder.clone(), metrics.clone()));
        Self {
            runtime: RwLock::new(Arc::new(runtime)),
            classifier: Classifier::new(gateway_hosts),
            forwarder,
            credentials,
            metrics,
            recorder,
        }
    }

    /// Replaces the configuration; calls in flight finish under the one they started with.
    pub fn reload(&self, runtime: GatewayRuntime) {
        if let Ok(mut current) = self.runtime.write() {
            *current = Arc::new(runtime);
        }
        self.prime_upstream_credentials();
    }

    /// Fetches the connections' web identity credentials in the background, so the first call
    /// does not wait for STS (failures are logged, counted, and retried by calls).
    pub fn prime_upstream_credentials(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let runtime = self.runtime();
        let credentials = self.credentials.clone();
        handle.spawn(async move {
            for connection in &runtime.config.connections {
                credentials.prime(&runtime.config.namespace, connection).await;
            }
        });
    }

    fn runtime(&self) -> Arc<GatewayRuntime> {
        match self.runtime.read() {
            Ok(runtime) => runtime.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves agents on `listener` in plain HTTP until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        self.accept(listener, None).await
    }

    /// Serves agents on `listener` over TLS with `tls` until the task is dropped. A connection
    /// whose handshake fails (a client that does not trust the certificate, or speaks plain
    /// HTTP) is closed; the others are unaffected.
    pub async fn serve_tls(self: Arc<Self>, listener: TcpListener, tls: Arc<ServerConfig>) {
        self.accept(listener, Some(TlsAcceptor::from(tls))).await
    }

    async fn accept(self: Arc<Self>, listener: TcpListener, tls: Option<TlsAcceptor>) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => gateway.serve_connection(stream).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => gateway.serve_connection(stream).await,
                        Err(error) => {
                            tracing::info!(%peer, %error, "TLS handshake with an agent failed");
                        }
                    },
                }
            });
        }
    }

    async fn serve_connection<IO>(self: Arc<Self>, stream: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request: Request<Incoming>| {
            let gateway = self.clone();
            async move { Ok::<_, Infallible>(gateway.handle(request).await) }
        });
        if let Err(error) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(%error, "agent connection ended with an error");
        }
    }

    /// Handles one request from an agent.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<GatewayBody> {
        let request_id = new_request_id();
        let started = Instant::now();
        let runtime = self.runtime();
        if is_unsigned_sts(&request) {
            return self.assume_role_with_web_identity(&runtime, request, &request_id).await;
        }
        match Call::run(&self, &runtime, request, &request_id, started).await {
            Ok(response) => response,
            Err(refusal) => full(refusal.error.render(refusal.shape)),
        }
    }

    async fn assume_role_with_web_identity(
        &self,
        runtime: &GatewayRuntime,
        request: Request<Incoming>,
        request_id: &str,
    ) -> Response<GatewayBody> {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().unwrap_or("").to_owned();
        let body = match buffer_body(body, MAX_STS_BODY).await {
            Ok(body) => body,
            Err(error) => {
                return xml(
                    StatusCode::BAD_REQUEST,
                    sts_error_xml("ValidationError", &error.to_string(), request_id),
                );
            }
        };
        let parsed = match AssumeRoleWithWebIdentityRequest::parse(&query, &body) {
            Ok(parsed) => parsed,
            Err(error) => {
                return xml(
                    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                    error.to_xml(request_id),
                );
            }
        };
        match runtime.exchange.assume_role_with_web_identity(&parsed).await {
            Ok(result) => {
                self.metrics.sessions_issued_total.inc();
                xml(StatusCode::OK, result.to_xml(request_id))
            }
            Err(error) => {
                self.metrics
                    .authentication_failures_total
                    .get_or_create(&CodeLabels { code: error.code.as_str().to_owned() })
                    .inc();
                xml(
                    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN),
                    error.to_xml(request_id),
                )
            }
        }
    }
}

/// An unsigned STS call: no Authorization header and no presigned signature.
fn is_unsigned_sts<B>(request: &Request<B>) -> bool {
    let query = request.uri().query().unwrap_or("");
    !request.headers().contains_key(header::AUTHORIZATION)
        && !query.to_ascii_lowercase().contains("x-amz-signature=")
        && (request.method() == http::Method::POST || query.contains("AssumeRoleWithWebIdentity"))
}

fn full(response: Response<Bytes>) -> Response<GatewayBody> {
    response.map(|b| Full::new(b).map_err(|e| match e {}).boxed_unsync())
}

/// A `text/xml` answer.
pub(crate) fn xml(status: StatusCode, body: String) -> Response<GatewayBody> {
    let mut response =
        Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

fn sts_error_xml(code: &str, message: &str, request_id: &str) -> String {
    let rendered = AwsError::new(StatusCode::BAD_REQUEST, code, message, request_id)
        .render(ErrorShape::QueryXml);
    String::from_utf8_lossy(rendered.body()).into_owned()
}

impl GatewayRuntime {
    /// Compiles a configuration and the session keys into a runtime.
    pub fn build(
        config: GatewayConfig,
        session_keys: chaperone_config::SessionKeys,
        kube: Option<kube::Client>,
    ) -> anyhow::Result<Self> {
        let policies = config
            .connections
            .iter()
            .map(|c: &ConnectionConfig| {
                CompiledPolicy::compile(&config.namespace, &c.name, &c.policy)
                    .map(|p| (c.name.clone(), p))
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        let exchange =
            WebIdentityExchange::from_config(config.identity_config(), session_keys, kube.clone())?;
        let rules = ApprovalRules::compile(&config.approval_rules)?;
        let approvals = match (rules.is_empty(), kube) {
            (true, _) => None,
            (false, Some(client)) => Some(ApprovalGate::new(client, &config.namespace, rules)),
            (false, None) => anyhow::bail!(
                "the configuration has approvalRules, which need the Kubernetes API for ApprovalRequests: run in a cluster or pass --kubeconfig"
            ),
        };
        Ok(Self { config, policies, exchange, approvals })
    }
}
