//! The operator's Prometheus metrics: reconciliations and failures by controller, and how long
//! reconciliations take.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Labels of a reconciliation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller, e.g. `agentconnection`.
    pub controller: String,
}

/// Labels of a failed reconciliation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The controller.
    pub controller: String,
    /// The kind of error ([`crate::Error::kind`]).
    pub error: String,
}

/// Labels of a notification attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// The payload format, `json` or `slack`.
    pub format: String,
    /// `delivered` or `failed`.
    pub outcome: String,
}

/// The operator's metrics and their registry.
pub struct OperatorMetrics {
    registry: Registry,
    reconciliations: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    notifications: Family<NotificationLabels, Counter>,
}

impl std::fmt::Debug for OperatorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorMetrics").finish_non_exhaustive()
    }
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OperatorMetrics {
    /// Registers the metrics under the `chaperone_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chaperone_operator");
        let reconciliations = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        registry.register("reconciliations", "Reconciliations started", reconciliations.clone());
        registry.register(
            "reconciliation_failures",
            "Reconciliations that failed and were retried with backoff",
            failures.clone(),
        );
        registry.register(
            "reconciliation_duration_seconds",
            "How long reconciliations took, in seconds",
            durations.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "approval_notifications",
            "Attempts at notifying an ApprovalRequest's webhook, by format and outcome",
            notifications.clone(),
        );
        Self { registry, reconciliations, failures, durations, notifications }
    }

    /// Counts a reconciliation of `controller` and its duration.
    pub fn reconciled(&self, controller: &str, seconds: f64) {
        let labels = ControllerLabels { controller: controller.to_owned() };
        self.reconciliations.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(seconds);
    }

    /// Counts a failed reconciliation of `controller`.
    pub fn failed(&self, controller: &str, error: &str) {
        let labels = FailureLabels { controller: controller.to_owned(), error: error.to_owned() };
        self.failures.get_or_create(&labels).inc();
    }

    /// Counts one attempt at notifying a webhook.
    pub fn notified(&self, format: &str, outcome: &str) {
        let labels = NotificationLabels { format: format.to_owned(), outcome: outcome.to_owned() };
        self.notifications.get_or_create(&labels).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciliations_and_failures_are_counted_by_controller() {
        let metrics = OperatorMetrics::new();
        metrics.reconciled("agentconnection", 0.2);
        metrics.failed("agentconnection", "kube");
        let text = metrics.encode();
        assert!(
            text.contains(
                "chaperone_operator_reconciliations_total{controller=\"agentconnection\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "chaperone_operator_reconciliation_failures_total{controller=\"agentconnection\",error=\"kube\"} 1"
        ), "{text}");
        assert!(
            text.contains("chaperone_operator_reconciliation_duration_seconds_bucket"),
            "{text}"
        );
    }
}
