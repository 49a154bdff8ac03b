//! The gateway's Prometheus metrics (units in the names).

use std::sync::{Arc, OnceLock};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};

use crate::recorder::RecorderMetrics;

/// Labels of a handled call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// AgentConnection name.
    pub connection: String,
    /// Service signing name.
    pub service: String,
    /// First IAM action of the call.
    pub action: String,
    /// allowed, denied, held, approved, refused_unrecorded.
    pub decision: String,
}

/// Labels carrying a service only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// Service signing name.
    pub service: String,
}

/// Labels of a refusal before a call is even classified.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The AWS error code answered, e.g. `SignatureDoesNotMatch`.
    pub code: String,
}

/// Labels of the gateway's own STS calls for upstream credentials.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    /// `web_identity` or `assume_role`.
    pub kind: String,
    /// `ok` or `error`.
    pub outcome: String,
}

/// Every metric the gateway exports.
pub struct GatewayMetrics {
    registry: Registry,
    /// Calls handled, by connection, service, action and decision.
    pub calls_total: Family<CallLabels, Counter>,
    /// Time from receiving a call to the first byte of its response, by service.
    pub call_duration_seconds: Family<ServiceLabels, Histogram>,
    /// Upstream calls that failed at the transport level, by service.
    pub upstream_errors_total: Family<ServiceLabels, Counter>,
    /// Requests refused before classification (authentication), by error code.
    pub authentication_failures_total: Family<CodeLabels, Counter>,
    /// Credentials issued by AssumeRoleWithWebIdentity.
    pub sessions_issued_total: Counter,
    /// The gateway's own STS calls for upstream credentials, by kind and outcome.
    pub upstream_credential_exchanges_total: Family<ExchangeLabels, Counter>,
    /// The recorder's counters and gauges, exported once the recorder is open.
    recorder: Arc<OnceLock<Arc<RecorderMetrics>>>,
}

/// Exports the recorder's atomics (`chaperone_gateway_recorder_*`) at each scrape.
#[derive(Debug)]
struct RecorderCollector(Arc<OnceLock<Arc<RecorderMetrics>>>);

impl Collector for RecorderCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(metrics) = self.0.get() else { return Ok(()) };
        let m = metrics.snapshot();
        let gauges: [(&str, &str, Option<Unit>, u64); 3] = [
            (
                "recorder_spool",
                "Spooled event bytes not yet uploaded (appends are refused at --max-spool-mib)",
                Some(Unit::Bytes),
                m.spool_bytes,
            ),
            (
                "recorder_upload_backlog_segments",
                "Segments cut and waiting for upload",
                None,
                m.upload_backlog_segments,
            ),
            (
                "recorder_open_streams",
                "Recording streams open on this replica",
                None,
                m.open_streams,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        let counters: [(&str, &str, Option<Unit>, u64); 8] = [
            ("recorder_events", "Events made durable in the spool", None, m.events_recorded_total),
            (
                "recorder_fsyncs",
                "Spool fsyncs (one per touched stream per group commit)",
                None,
                m.fsyncs_total,
            ),
            (
                "recorder_objects_uploaded",
                "Recording objects uploaded (segments, manifests, digests)",
                None,
                m.objects_uploaded_total,
            ),
            ("recorder_segments_uploaded", "Segments uploaded", None, m.segments_uploaded_total),
            (
                "recorder_uploaded",
                "Bytes uploaded, as stored",
                Some(Unit::Bytes),
                m.uploaded_bytes_total,
            ),
            (
                "recorder_upload_failures",
                "Upload attempts that failed (each retry counts)",
                None,
                m.upload_failures_total,
            ),
            (
                "recorder_spool_full_refusals",
                "Appends refused because the spool was full",
                None,
                m.spool_full_refusals_total,
            ),
            (
                "recorder_connection_quota_refusals",
                "Appends refused because their connection's share of the spool was used up",
                None,
                m.connection_quota_refusals_total,
            ),
        ];
        for (name, help, unit, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chaperone_gateway");
        let calls_total = Family::<CallLabels, Counter>::default();
        registry.register("calls", "AWS calls handled, by decision", calls_total.clone());
        let call_duration_seconds =
            Family::<ServiceLabels, Histogram>::new_with_constructor(|| {
                Histogram::new([
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ])
            });
        registry.register(
            "call_duration_seconds",
            "Time from receiving a call to its response headers",
            call_duration_seconds.clone(),
        );
        let upstream_errors_total = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream calls that failed to connect or broke",
            upstream_errors_total.clone(),
        );
        let authentication_failures_total = Family::<CodeLabels, Counter>::default();
        registry.register(
            "authentication_failures",
            "Requests refused before classification, by AWS error code",
            authentication_failures_total.clone(),
        );
        let sessions_issued_total = Counter::default();
        registry.register(
            "sessions_issued",
            "Session credentials minted by AssumeRoleWithWebIdentity",
            sessions_issued_total.clone(),
        );
        let upstream_credential_exchanges_total = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "upstream_credential_exchanges",
            "The gateway's own STS calls for upstream credentials (web identity, assumed roles)",
            upstream_credential_exchanges_total.clone(),
        );
        let recorder = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(RecorderCollector(recorder.clone())));
        Self {
            registry,
            recorder,
            upstream_credential_exchanges_total,
            calls_total,
            call_duration_seconds,
            upstream_errors_total,
            authentication_failures_total,
            sessions_issued_total,
        }
    }

    /// Exports `recorder`'s metrics from now on (the first recorder given wins).
    pub fn attach_recorder(&self, recorder: Arc<RecorderMetrics>) {
        let _ = self.recorder.set(recorder);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_with_units_and_labels() {
        let metrics = GatewayMetrics::new();
        metrics
            .calls_total
            .get_or_create(&CallLabels {
                connection: "prod".into(),
                service: "s3".into(),
                action: "s3:GetObject".into(),
                decision: "allowed".into(),
            })
            .inc();
        metrics
            .call_duration_seconds
            .get_or_create(&ServiceLabels { service: "s3".into() })
            .observe(0.002);
        let text = metrics.encode();
        assert!(text.contains("chaperone_gateway_calls_total{connection=\"prod\",service=\"s3\",action=\"s3:GetObject\",decision=\"allowed\"} 1"), "{text}");
        assert!(text.contains("chaperone_gateway_call_duration_seconds_bucket"), "{text}");
        assert!(text.contains("# EOF"));
    }

    #[test]
    fn the_recorders_metrics_are_exported_once_attached() {
        use std::sync::atomic::Ordering;
        let metrics = GatewayMetrics::new();
        assert!(!metrics.encode().contains("recorder"), "nothing before a recorder is attached");
        let recorder = Arc::new(RecorderMetrics::default());
        metrics.attach_recorder(recorder.clone());
        recorder.spool_bytes.store(4096, Ordering::Relaxed);
        recorder.fsyncs_total.store(7, Ordering::Relaxed);
        recorder.upload_failures_total.store(2, Ordering::Relaxed);
        let text = metrics.encode();
        for line in [
            "chaperone_gateway_recorder_spool_bytes 4096",
            "chaperone_gateway_recorder_fsyncs_total 7",
            "chaperone_gateway_recorder_upload_failures_total 2",
            "chaperone_gateway_recorder_open_streams 0",
            "# TYPE chaperone_gateway_recorder_uploaded_bytes counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
