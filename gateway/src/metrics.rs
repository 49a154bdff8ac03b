//! The gateway's Prometheus metrics (units in the names).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

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
        Self {
            registry,
            upstream_credential_exchanges_total,
            calls_total,
            call_duration_seconds,
            upstream_errors_total,
            authentication_failures_total,
            sessions_issued_total,
        }
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
}
