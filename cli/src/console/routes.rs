//! What each address answers: the embedded page and its assets, and the JSON API under `/api/`.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Api;
use kube::api::PostParams;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::approvals::ApprovalsError;
use crate::console::Console;
use crate::console::access::{Scope, visible_namespaces};
use crate::console::assets;
use crate::console::call_detail::call_views;
use crate::console::inbox::{decide, parse_decision, pending};
use crate::console::sessions::{SessionFilter, SessionKey};

/// The largest decision body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn answer(request: Request<Incoming>, console: &Console) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/") | (Method::GET, "/index.html") => {
            asset("text/html; charset=utf-8", assets::INDEX_HTML)
        }
        (Method::GET, "/app.js") => asset("text/javascript; charset=utf-8", assets::APP_JS),
        (Method::GET, "/style.css") => asset("text/css; charset=utf-8", assets::STYLE_CSS),
        (Method::GET, "/api/whoami") => json_answer(whoami(console).await),
        (Method::GET, "/api/approvals") => json_answer(approvals(console).await),
        (Method::POST, "/api/approvals/decide") => {
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            };
            decide_answer(console, &body).await
        }
        (Method::GET, "/api/sessions") => json_answer(sessions(console, &query).await),
        (Method::GET, "/api/session") => match session(console, &query).await {
            Ok(value) => json_answer(Ok(value)),
            Err(e) => error(StatusCode::BAD_GATEWAY, &format!("{e:#}")),
        },
        (Method::GET, "/api/verify") => match verify(console, &query).await {
            Ok(value) => json_answer(Ok(value)),
            Err(e) => error(StatusCode::BAD_GATEWAY, &format!("{e:#}")),
        },
        (_, p) if p.starts_with("/api/") => {
            error(StatusCode::NOT_FOUND, &format!("no API {} {p}", request.method()))
        }
        _ => error(StatusCode::NOT_FOUND, &format!("nothing at {path}; the console is at /")),
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Vec<u8>, String> {
    Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .map_err(|e| {
            format!("reading the request body failed (at most {MAX_BODY_BYTES} bytes): {e}")
        })
}

/// Who the API server says the kubeconfig's user is.
async fn whoami(console: &Console) -> anyhow::Result<Value> {
    let api: Api<SelfSubjectReview> = Api::all(console.cluster.client().clone());
    let review = api.create(&PostParams::default(), &SelfSubjectReview::default()).await;
    let user = review
        .ok()
        .and_then(|r| r.status)
        .and_then(|s| s.user_info)
        .map(|u| json!({"username": u.username, "groups": u.groups}));
    Ok(json!({"user": user, "sessions_via": console.sessions.via()}))
}

async fn scope(console: &Console) -> anyhow::Result<Scope> {
    Ok(visible_namespaces(
        console.cluster.client(),
        &console.requested_namespaces,
        console.cluster.default_namespace(),
    )
    .await?)
}

async fn approvals(console: &Console) -> anyhow::Result<Value> {
    let scope = scope(console).await?;
    let (approvals, skipped) =
        pending(&console.cluster, &scope.namespaces, OffsetDateTime::now_utc()).await;
    Ok(json!({"scope": scope, "skipped": skipped, "approvals": approvals}))
}

#[derive(Deserialize)]
struct DecisionForm {
    namespace: String,
    name: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

async fn decide_answer(console: &Console, body: &[u8]) -> Response<Full<Bytes>> {
    let form: DecisionForm = match serde_json::from_slice(body) {
        Ok(form) => form,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the decision must be JSON {{namespace, name, decision, reason}}: {e}"),
            );
        }
    };
    let Some(decision) = parse_decision(&form.decision) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("decision {:?} is neither approve nor deny", form.decision),
        );
    };
    match decide(&console.cluster, &form.namespace, &form.name, decision, form.reason).await {
        Ok(summary) => {
            print!("{summary}");
            json_answer(Ok(json!({"message": summary})))
        }
        Err(e) => error(decision_status(&e), &e.to_string()),
    }
}

/// The HTTP status the page gets for a refused decision (its text is the CLI's message).
fn decision_status(refusal: &ApprovalsError) -> StatusCode {
    match refusal {
        ApprovalsError::DenialWithoutReason => StatusCode::BAD_REQUEST,
        ApprovalsError::NotFound { .. } => StatusCode::NOT_FOUND,
        ApprovalsError::Forbidden { .. } | ApprovalsError::Refused { .. } => StatusCode::FORBIDDEN,
        ApprovalsError::AlreadyDecided { .. } | ApprovalsError::KeptChanging { .. } => {
            StatusCode::CONFLICT
        }
        ApprovalsError::List { .. } | ApprovalsError::Request { .. } => StatusCode::BAD_GATEWAY,
    }
}

fn filter(query: &HashMap<String, String>) -> SessionFilter {
    let get = |k: &str| query.get(k).filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_owned());
    SessionFilter {
        namespace: get("namespace"),
        connection: get("connection"),
        agent: get("agent"),
        since: get("since"),
        until: get("until"),
        calls: get("calls"),
    }
}

async fn sessions(console: &Console, query: &HashMap<String, String>) -> anyhow::Result<Value> {
    let scope = scope(console).await?;
    let (sessions, skipped) =
        console.sessions.list(console.cluster.client(), &scope.namespaces, &filter(query)).await?;
    Ok(
        json!({"scope": scope, "sessions": sessions, "skipped": skipped, "via": console.sessions.via()}),
    )
}

fn session_key(query: &HashMap<String, String>) -> anyhow::Result<SessionKey> {
    let namespace = query.get("namespace").cloned().unwrap_or_default();
    let id = query.get("id").cloned().unwrap_or_default();
    if namespace.is_empty() || id.is_empty() {
        anyhow::bail!("say which session: ?namespace=NAMESPACE&id=SESSION[&connection=NAME]");
    }
    let connection = query.get("connection").filter(|c| !c.is_empty()).cloned();
    Ok(SessionKey { namespace, connection, id })
}

async fn session(console: &Console, query: &HashMap<String, String>) -> anyhow::Result<Value> {
    let key = session_key(query)?;
    let recording = console.sessions.show(console.cluster.client(), &key).await?;
    let calls = call_views(&recording.events);
    Ok(json!({"summary": recording.summary, "calls": calls}))
}

async fn verify(console: &Console, query: &HashMap<String, String>) -> anyhow::Result<Value> {
    let key = session_key(query)?;
    let verdict = console.sessions.verify(console.cluster.client(), &key).await?;
    Ok(serde_json::to_value(verdict)?)
}

fn asset(content_type: &str, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

fn json_answer(result: anyhow::Result<Value>) -> Response<Full<Bytes>> {
    match result {
        Ok(value) => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from(value.to_string())))
            .unwrap_or_default(),
        Err(e) => error(StatusCode::BAD_GATEWAY, &format!("{e:#}")),
    }
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(json!({"error": message}).to_string())))
        .unwrap_or_default()
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
