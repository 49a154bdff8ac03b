//! The "pass-through" reference way: a minimal hyper reverse proxy that forwards each request
//! unchanged (same Host header, same signature) over pooled connections and streams the
//! response back. No authentication, no re-signing, no recording.
//!
//! It is not a peer and not a stand-in for the gateway: it measures what putting any process
//! between the client and the upstream costs on the machine of the run (an extra hop of
//! loopback I/O and HTTP parsing, sharing the same cores), the floor under the gateway's own
//! numbers.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use anyhow::Context;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::load::client;

type ProxyBody = BoxBody<bytes::Bytes, hyper::Error>;

/// Serves the pass-through proxy on `listen`, forwarding to `upstream` (`host:port`), until
/// killed.
pub async fn serve_pass_through(upstream: SocketAddr, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let http = Arc::new(client(256));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let http = http.clone();
                async move { Ok::<_, Infallible>(forward(&http, upstream, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    http: &crate::load::HttpClient,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{upstream}{path}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(error) => return bad_gateway(format!("bad request target: {error}")),
    };
    let request = Request::from_parts(parts, body.map_err(std::io::Error::other).boxed());
    match http.request(request).await {
        Ok(response) => response.map(|b| b.boxed()),
        Err(error) => bad_gateway(format!("upstream: {error}")),
    }
}

fn bad_gateway(message: String) -> Response<ProxyBody> {
    let mut response =
        Response::new(Full::new(message.into()).map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
