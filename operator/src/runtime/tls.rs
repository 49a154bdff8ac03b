//! The TLS crypto provider of the process, and the TLS serving loop of its HTTPS servers.
//!
//! The dependency tree enables both of rustls's providers (kube uses ring, the gateway crate
//! aws-lc-rs), so rustls cannot pick one by itself; the operator picks ring, as its Kubernetes
//! client is built for it.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use rustls::{ServerConfig, pki_types::CertificateDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Installs ring as the process's rustls crypto provider; a provider already installed is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How long in-flight requests get to finish after a TLS server is told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 over TLS on `listener` until `shutdown` completes, then stops accepting and
/// lets in-flight requests finish (at most [`SHUTDOWN_GRACE`]). `answer` gets each request with
/// the client's certificate chain, if it sent one. `what` names the server in logs (`webhook`,
/// `audit API`). The webhooks and the audit API both serve through this.
pub async fn serve_tls_until<F, Fut>(
    what: &'static str,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    answer: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<Incoming>, Option<Arc<Vec<CertificateDer<'static>>>>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a {what} connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let answer = answer.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "{what} TLS handshake failed");
                    return;
                }
            };
            let certificates = stream.get_ref().1.peer_certificates().map(|c| Arc::new(c.to_vec()));
            let service = service_fn(move |request| {
                let answer = answer.clone();
                let certificates = certificates.clone();
                async move { Ok::<_, Infallible>(answer(request, certificates).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "{what} connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        open_connections = graceful.count(),
        "{what}: stopped accepting, finishing in-flight requests"
    );
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("{what}: in-flight requests did not finish within the grace period");
    }
}
