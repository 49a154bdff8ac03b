//! The audit API's HTTPS server: every request is authenticated as coming from the API server's
//! front proxy ([`super::front_proxy`]), routed ([`super::routes`]), read from the namespace's
//! buckets ([`super::sessions`]), written to the access log, and only then answered.

use std::future::Future;

use crate::runtime::tls::serve_tls_until;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use chaperone_crds::Session;
use chaperone_recording::{AccessRecord, Timestamp};
use chaperone_recording_store::{AccessLogWriter, RecordingBucket};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use kube::Client;
use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use tokio::net::TcpListener;

use super::front_proxy::{FrontProxy, RemoteUser};
use super::objects;
use super::routes::{Route, continue_token, paging};
use super::sessions::{
    ConnectionKeys, ReadError, list_sessions, locate, namespace_buckets, read_session,
    recorded_namespaces,
};

/// What every request handler shares.
pub struct AuditState {
    client: Client,
    /// None until the front-proxy settings were read; the error says why not.
    front_proxy: RwLock<Result<Arc<FrontProxy>, String>>,
    writer: AccessLogWriter,
}

impl AuditState {
    pub fn new(client: Client, writer: AccessLogWriter) -> Arc<Self> {
        Arc::new(Self {
            client,
            front_proxy: RwLock::new(Err(
                "the front-proxy settings have not been read yet".to_owned()
            )),
            writer,
        })
    }

    /// Replaces the front-proxy settings (re-read periodically: the CA can rotate).
    pub fn set_front_proxy(&self, front_proxy: Result<FrontProxy, String>) {
        let value = front_proxy.map(Arc::new);
        match self.front_proxy.write() {
            Ok(mut current) => *current = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }

    fn front_proxy(&self) -> Result<Arc<FrontProxy>, String> {
        match self.front_proxy.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Answers one request from a client that presented `certificates`.
    pub async fn answer(
        &self,
        request: Request<Incoming>,
        certificates: Option<&[CertificateDer<'static>]>,
    ) -> Response<Full<Bytes>> {
        let front_proxy = match self.front_proxy() {
            Ok(front_proxy) => front_proxy,
            Err(reason) => {
                return failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    &format!("the audit API cannot authenticate requests yet: {reason}"),
                );
            }
        };
        let user = match front_proxy.authenticate(certificates, request.headers()) {
            Ok(user) => user,
            Err(refusal) => {
                tracing::warn!(reason = %refusal, path = %request.uri().path(), "audit API: unauthenticated request refused");
                return failure(StatusCode::UNAUTHORIZED, "Unauthorized", &refusal.to_string());
            }
        };
        if request.method() != Method::GET {
            return failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("{} is not allowed: sessions are read-only (get, list)", request.method()),
            );
        }
        let path = request.uri().path().to_owned();
        let query = request.uri().query().map(str::to_owned);
        let table = objects::wants_table(
            request.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
        );
        let route = match Route::parse(&path) {
            Ok(route) => route,
            Err(e) => return failure(StatusCode::NOT_FOUND, "NotFound", &e.to_string()),
        };
        let resource = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let outcome = match route {
            Route::Discovery => return json(StatusCode::OK, &objects::resource_list()),
            Route::Group => return json(StatusCode::OK, &objects::api_group()),
            Route::List { namespace } => self.list(&user, namespace, &resource, table).await,
            Route::Get { namespace, session } => {
                self.get(&user, &namespace, &session, &resource, table).await
            }
            Route::Events { namespace, session } => {
                self.events(&user, &namespace, &session, &resource, query.as_deref()).await
            }
        };
        match outcome {
            Ok(response) => {
                tracing::info!(user = %user.name, resource = %resource, "audit API: read served and logged");
                response
            }
            Err(refusal) => {
                tracing::warn!(user = %user.name, resource = %resource, code = refusal.code.as_u16(), message = %refusal.message, "audit API: read refused");
                failure(refusal.code, refusal.reason, &refusal.message)
            }
        }
    }

    async fn list(
        &self,
        user: &RemoteUser,
        namespace: Option<String>,
        resource: &str,
        table: bool,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let namespaces = match namespace {
            Some(ns) => vec![ns],
            None => recorded_namespaces(&self.client).await?,
        };
        let mut items: Vec<Session> = Vec::new();
        for namespace in namespaces {
            let mut keys = ConnectionKeys::default();
            for bucket in namespace_buckets(&self.client, &namespace).await? {
                let sessions = list_sessions(&self.client, &bucket, &namespace, &mut keys).await?;
                let ids = sessions.iter().map(|s| s.summary.session.clone()).collect();
                self.log(&bucket, user, &namespace, "list", resource, ids).await?;
                items.extend(sessions.iter().map(|s| s.summary.to_session(s.verification.clone())));
            }
        }
        let list = objects::session_list(items);
        if table {
            return Ok(json(StatusCode::OK, &objects::session_table(&list.items)));
        }
        Ok(json(StatusCode::OK, &list))
    }

    async fn get(
        &self,
        user: &RemoteUser,
        namespace: &str,
        session: &str,
        resource: &str,
        table: bool,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let buckets = namespace_buckets(&self.client, namespace).await?;
        let (bucket, location) = locate(&buckets, namespace, session).await?;
        let mut keys = ConnectionKeys::default();
        let read = read_session(&self.client, &bucket, &location, &mut keys).await?;
        self.log(&bucket, user, namespace, "get", resource, vec![session.to_owned()]).await?;
        let object = read.summary.to_session(read.verification);
        if table {
            return Ok(json(StatusCode::OK, &objects::session_table(&[object])));
        }
        Ok(json(StatusCode::OK, &object))
    }

    async fn events(
        &self,
        user: &RemoteUser,
        namespace: &str,
        session: &str,
        resource: &str,
        query: Option<&str>,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let paging = paging(query).map_err(|e| Refusal {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: e.to_string(),
        })?;
        let buckets = namespace_buckets(&self.client, namespace).await?;
        let (bucket, location) = locate(&buckets, namespace, session).await?;
        let mut keys = ConnectionKeys::default();
        let read = read_session(&self.client, &bucket, &location, &mut keys).await?;
        let events = read.events();
        if paging.start > events.len() {
            return Err(Refusal {
                code: StatusCode::GONE,
                reason: "Expired",
                message: format!(
                    "the continue token points past the session's {} events; start again without continue",
                    events.len()
                ),
            });
        }
        let end = paging.limit.map_or(events.len(), |l| (paging.start + l).min(events.len()));
        let page: Vec<serde_json::Value> = events[paging.start..end].to_vec();
        let next = (end < events.len()).then(|| continue_token(end));
        self.log(&bucket, user, namespace, "get", resource, vec![session.to_owned()]).await?;
        Ok(json(StatusCode::OK, &objects::event_list(page, next, events.len() - end)))
    }

    /// Appends the read to the namespace's access log in `bucket`; a read that cannot be logged
    /// is refused.
    async fn log(
        &self,
        bucket: &RecordingBucket,
        user: &RemoteUser,
        namespace: &str,
        verb: &str,
        resource: &str,
        sessions: Vec<String>,
    ) -> Result<(), Refusal> {
        let record = AccessRecord {
            namespace: namespace.to_owned(),
            ts: Timestamp::now(),
            user: user.name.clone(),
            groups: user.groups.clone(),
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            sessions,
        };
        let unlogged = |detail: String| Refusal {
            code: StatusCode::SERVICE_UNAVAILABLE,
            reason: "ServiceUnavailable",
            message: format!(
                "the read was not served because its access event could not be written to the access log \
                 ({detail}); the RecordingPolicy's credentials need s3:PutObject and s3:ListBucket under \
                 <prefix>access-log/ of bucket {}",
                bucket.bucket()
            ),
        };
        self.writer.publish_public_key(bucket).await.map_err(|e| unlogged(e.to_string()))?;
        self.writer.append(bucket, &record).await.map_err(|e| unlogged(e.to_string()))?;
        Ok(())
    }
}

/// A refusal: the HTTP status, the Status reason, and a message saying what to do.
#[derive(Debug)]
struct Refusal {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl From<ReadError> for Refusal {
    fn from(error: ReadError) -> Self {
        let (code, reason) = match &error {
            ReadError::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
            ReadError::Ambiguous { .. } => (StatusCode::CONFLICT, "Conflict"),
            ReadError::Kube { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            ReadError::Policy { .. } | ReadError::Bucket(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
        };
        Self { code, reason, message: error.to_string() }
    }
}

fn json<T: Serialize>(code: StatusCode, body: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(format!(
                "the answer could not be serialized: {e}"
            ))));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

fn failure(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    json(code, &objects::status(code.as_u16(), reason, message))
}

/// Serves the audit API on `listener` with `tls` until `shutdown` completes.
pub async fn serve_until(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    state: Arc<AuditState>,
    shutdown: impl Future<Output = ()>,
) {
    let answer = move |request, certificates: Option<Arc<Vec<CertificateDer<'static>>>>| {
        let state = state.clone();
        async move { state.answer(request, certificates.as_deref().map(Vec::as_slice)).await }
    };
    serve_tls_until("audit API", listener, tls, answer, shutdown).await;
}
