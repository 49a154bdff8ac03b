//! The admin port answers /healthz and serves the reconciliation metrics, and stops on shutdown.

use std::sync::Arc;

use chaperone_operator::{
    OperatorMetrics,
    runtime::{admin::serve_admin, readiness::Readiness},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn healthz_answers_ok_and_metrics_count_reconciliations_by_controller() {
    let metrics = Arc::new(OperatorMetrics::new());
    metrics.reconciled("agentconnection", 0.1);
    metrics.failed("agentconnection", "kube");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_admin(listener, metrics, Readiness::ready(), async move {
        let _ = stopped.await;
    }));

    let health = get(address, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");

    let exposition = get(address, "/metrics").await;
    assert!(exposition.starts_with("HTTP/1.1 200"), "{exposition}");
    assert!(exposition.contains("application/openmetrics-text"), "{exposition}");
    assert!(
        exposition
            .contains("chaperone_operator_reconciliations_total{controller=\"agentconnection\"} 1"),
        "{exposition}"
    );
    assert!(
        exposition.contains(
            "chaperone_operator_reconciliation_failures_total{controller=\"agentconnection\",error=\"kube\"} 1"
        ),
        "{exposition}"
    );

    let missing = get(address, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the admin server stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn readyz_answers_503_with_the_reason_until_the_replica_is_ready() {
    let readiness = Readiness::new("the webhook serving certificate is not loaded yet");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_admin(
        listener,
        Arc::new(OperatorMetrics::new()),
        readiness.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let waiting = get(address, "/readyz").await;
    assert!(waiting.starts_with("HTTP/1.1 503"), "{waiting}");
    assert!(
        waiting.ends_with("not ready: the webhook serving certificate is not loaded yet\n"),
        "{waiting}"
    );
    let health = get(address, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "the process is alive meanwhile: {health}");

    readiness.set_ready();
    let ready = get(address, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.ends_with("ok\n"), "{ready}");

    stop.send(()).unwrap();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
}
