//! The admin port: `/healthz`, `/readyz` and `/metrics`, apart from the agents' port.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::CONTENT_TYPE};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::metrics::GatewayMetrics;

/// What the admin endpoints report.
pub struct AdminState {
    /// Prometheus metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Whether the gateway can serve calls (config loaded, recorder writable).
    pub ready: AtomicBool,
    /// Why the gateway is not ready, when it is not.
    pub not_ready_reason: std::sync::Mutex<String>,
}

impl AdminState {
    /// Marks the gateway ready or not, with a reason shown by /readyz.
    pub fn set_ready(&self, ready: bool, reason: &str) {
        self.ready.store(ready, Ordering::SeqCst);
        if let Ok(mut r) = self.not_ready_reason.lock() {
            *r = reason.to_owned();
        }
    }
}

fn respond(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if state.ready.load(Ordering::SeqCst) => {
            (StatusCode::OK, "text/plain", "ok\n".to_owned())
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!(
                "not ready: {}\n",
                state.not_ready_reason.lock().map(|r| r.clone()).unwrap_or_default()
            ),
        ),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "try /healthz, /readyz or /metrics\n".into()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve_admin(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&state, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the admin address.
pub async fn bind_admin(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
