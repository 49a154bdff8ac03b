//! The status of one AgentConnection, computed from what the reconcile found: conditions
//! (CredentialsResolved, RecordingPolicyReady, GatewayAvailable, Ready), the gateway endpoint and
//! the recording public key. Pure, so an unchanged situation gives an identical status (and the
//! status apply changes nothing).

use chaperone_crds::AgentConnectionStatus;
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

use crate::gateway::config_compiler::{Check, ConnectionOutcome};

/// Condition written by the pod webhook's security check (`crate::webhooks::pod`), which the
/// controller keeps as it finds it.
pub const AGENTS_ISOLATED: &str = "AgentsIsolated";
/// Condition: the connection's upstream credentials were read from its Secret.
pub const CREDENTIALS_RESOLVED: &str = "CredentialsResolved";
/// Condition: the referenced RecordingPolicy exists.
pub const RECORDING_POLICY_READY: &str = "RecordingPolicyReady";
/// Condition: at least one gateway replica is available.
pub const GATEWAY_AVAILABLE: &str = "GatewayAvailable";
/// Condition: agents can use the connection.
pub const READY: &str = "Ready";

/// Replicas of the gateway Deployment, as its status reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayReplicas {
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// What the reconcile found for one connection.
#[derive(Clone, Debug)]
pub struct StatusInputs<'a> {
    /// The connection's name.
    pub name: &'a str,
    /// The connection's namespace.
    pub namespace: &'a str,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The compile outcome for the connection.
    pub outcome: &'a ConnectionOutcome,
    /// `http://<ClusterIP>:8080`, when the Service has a cluster IP.
    pub endpoint: Option<String>,
    /// The gateway's replicas.
    pub replicas: GatewayReplicas,
    /// The Ed25519 public keys (base64) verifying the gateway's recordings, newest first.
    pub recording_public_keys: Vec<String>,
    /// The status as it is, whose transition times are kept when a condition does not change.
    pub previous: Option<&'a AgentConnectionStatus>,
    /// The time of this reconcile.
    pub now: Timestamp,
}

/// The connection's status.
pub fn connection_status(inputs: &StatusInputs<'_>) -> AgentConnectionStatus {
    let outcome = inputs.outcome;
    let available = if inputs.replicas.available > 0 {
        Check {
            passed: true,
            reason: "ReplicasAvailable".into(),
            message: format!(
                "{} of {} gateway replicas are available.",
                inputs.replicas.available, inputs.replicas.desired
            ),
        }
    } else {
        Check {
            passed: false,
            reason: "NoReplicasAvailable".into(),
            message: format!(
                "No gateway replica is available yet: see `kubectl -n {} describe deployment {}` \
                 and its pods' events.",
                inputs.namespace,
                crate::gateway::objects::GATEWAY_NAME
            ),
        }
    };
    let endpoint_check = match &inputs.endpoint {
        Some(_) => None,
        None => Some(Check {
            passed: false,
            reason: "NoEndpoint".into(),
            message: format!(
                "Service {}/{} has no cluster IP yet.",
                inputs.namespace,
                crate::gateway::objects::GATEWAY_NAME
            ),
        }),
    };
    let ready = [
        (&outcome.credentials, "CredentialsNotResolved"),
        (&outcome.recording_policy, "RecordingPolicyNotReady"),
        (&outcome.compiled, "NotCompiled"),
    ]
    .into_iter()
    .find(|(check, _)| !check.passed)
    .map(|(check, reason)| Check {
        passed: false,
        reason: reason.into(),
        message: check.message.clone(),
    })
    .or(endpoint_check)
    .or_else(|| {
        (!available.passed).then(|| Check {
            passed: false,
            reason: "GatewayUnavailable".into(),
            message: available.message.clone(),
        })
    })
    .unwrap_or_else(|| Check {
        passed: true,
        reason: "Serving".into(),
        message: format!(
            "Pods labelled chaperone.dev/connection: {} reach the gateway at {}.",
            inputs.name,
            inputs.endpoint.as_deref().unwrap_or_default()
        ),
    });

    let previous = inputs.previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let condition = |type_: &str, check: &Check| {
        condition(type_, check, inputs.generation, inputs.now, previous)
    };
    AgentConnectionStatus {
        observed_generation: inputs.generation,
        endpoint: inputs.endpoint.clone(),
        recording_public_keys: inputs.recording_public_keys.clone(),
        conditions: [
            condition(READY, &ready),
            condition(CREDENTIALS_RESOLVED, &outcome.credentials),
            condition(RECORDING_POLICY_READY, &outcome.recording_policy),
            condition(GATEWAY_AVAILABLE, &available),
        ]
        .into_iter()
        // Written by the pod webhook's security check: kept as it is.
        .chain(previous.iter().filter(|c| c.type_ == AGENTS_ISOLATED).cloned())
        .collect(),
    }
}

/// A `metav1.Condition` whose lastTransitionTime is kept from `previous` when its status is the
/// same.
pub fn condition(
    type_: &str,
    check: &Check,
    generation: Option<i64>,
    now: Timestamp,
    previous: &[Condition],
) -> Condition {
    let status = if check.passed { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::from_second(now.as_second()).unwrap_or(now)));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: check.reason.clone(),
        message: check.message.clone(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// The condition of `type_` in `status`, if any.
pub fn find<'a>(status: Option<&'a AgentConnectionStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(reason: &str) -> Check {
        Check { passed: true, reason: reason.into(), message: "fine.".into() }
    }

    fn outcome(credentials: Check) -> ConnectionOutcome {
        ConnectionOutcome {
            credentials,
            recording_policy: pass("Found"),
            compiled: pass("Compiled"),
        }
    }

    fn inputs<'a>(
        outcome: &'a ConnectionOutcome,
        previous: Option<&'a AgentConnectionStatus>,
        now: &str,
    ) -> StatusInputs<'a> {
        StatusInputs {
            name: "prod-aws",
            namespace: "agents",
            generation: Some(3),
            outcome,
            endpoint: Some("http://10.96.0.12:8080".into()),
            replicas: GatewayReplicas { desired: 2, available: 2 },
            recording_public_keys: vec!["pk".into()],
            previous,
            now: now.parse().unwrap(),
        }
    }

    #[test]
    fn everything_resolved_and_available_is_ready_with_the_endpoint() {
        let o = outcome(pass("Resolved"));
        let status = connection_status(&inputs(&o, None, "2026-11-25T18:00:00Z"));
        let ready = find(Some(&status), READY).unwrap();
        assert_eq!(ready.status, "True");
        assert!(ready.message.contains("http://10.96.0.12:8080"));
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.recording_public_keys, ["pk"]);
    }

    #[test]
    fn a_failed_check_makes_ready_false_with_its_message() {
        let o = outcome(Check {
            passed: false,
            reason: "SecretNotFound".into(),
            message: "Secret agents/aws-prod does not exist: create it.".into(),
        });
        let status = connection_status(&inputs(&o, None, "2026-11-25T18:00:00Z"));
        let ready = find(Some(&status), READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "CredentialsNotResolved")
        );
        assert!(ready.message.contains("agents/aws-prod"));
        assert_eq!(find(Some(&status), CREDENTIALS_RESOLVED).unwrap().reason, "SecretNotFound");
    }

    #[test]
    fn an_unchanged_status_keeps_its_transition_times() {
        let o = outcome(pass("Resolved"));
        let first = connection_status(&inputs(&o, None, "2026-11-25T18:00:00Z"));
        let second = connection_status(&inputs(&o, Some(&first), "2026-11-25T19:00:00Z"));
        assert_eq!(first, second);
    }
}
