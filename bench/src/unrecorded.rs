//! The "recording off" way: the gateway's own data path (`chaperone_gateway::server::Gateway`,
//! same configuration and keys files as the real binary) with a recorder that discards events.
//!
//! The `chaperone-gateway` binary has no switch to turn recording off (docs/architecture.md promise 3: no
//! call reaches AWS unrecorded), so the benchmark serves this from its own binary
//! (`chaperone-bench serve-unrecorded-gateway`) to measure what recording costs.

use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::Context;
use chaperone_config::{GatewayConfig, GatewayKeys};
use chaperone_gateway::{
    identity::SessionContext,
    metrics::GatewayMetrics,
    record::{EventRecorder, RecordFuture},
    server::{Gateway, GatewayRuntime},
};
use chaperone_recording::EventBody;
use tokio::net::TcpListener;

/// Accepts every event and keeps none.
pub struct DiscardingRecorder;

impl EventRecorder for DiscardingRecorder {
    fn append<'a>(&'a self, _session: &'a SessionContext, event: EventBody) -> RecordFuture<'a> {
        drop(event);
        Box::pin(async { Ok(()) })
    }

    fn append_detached(
        &self,
        _session: &SessionContext,
        event: EventBody,
    ) -> Result<(), chaperone_gateway::record::RecordError> {
        drop(event);
        Ok(())
    }
}

/// Serves the gateway's data path on `listen` with recording discarded, until killed.
pub async fn serve_unrecorded_gateway(
    config: &Path,
    keys: &Path,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let config = GatewayConfig::load(config)?;
    let keys = GatewayKeys::load(keys).with_context(|| format!("loading {}", keys.display()))?;
    let runtime = GatewayRuntime::build(config, keys.session.clone(), None)?;
    let hosts = vec![listen.to_string(), listen.ip().to_string()];
    let gateway = Arc::new(Gateway::new(
        runtime,
        hosts,
        Arc::new(GatewayMetrics::new()),
        Arc::new(DiscardingRecorder),
    ));
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    gateway.serve(listener).await;
    Ok(())
}
