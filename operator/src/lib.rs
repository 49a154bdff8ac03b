//! The Chaperone operator: reconciles AgentConnections, RecordingPolicies and ApprovalRules into
//! one gateway per namespace (Deployment, Service, RBAC, config and key Secrets,
//! PodDisruptionBudget). See `docs/operator.md`.
//!
//! Pure core:
//! - [`config_compiler`]: a namespace's connections, policies, rules and Secrets into the
//!   gateway's configuration file, with a per-connection outcome.
//! - [`gateway_keys`]: the keys Secret's content (generate once, keep, rotate).
//! - [`gateway_objects`]: the gateway's Kubernetes objects as apply manifests.
//! - [`connection_status`]: an AgentConnection's status and conditions.
//! - [`lifecycle_rules`]: a RecordingPolicy's bucket lifecycle rule, merged with foreign rules.
//! - [`recording_policy_status`]: a RecordingPolicy's status and conditions.
//! - [`approval_lifecycle`]: an ApprovalRequest's phase, notification, retries and cleanup.
//! - [`approval_notifier`]: the JSON and Slack notifications of a pending ApprovalRequest (and
//!   the thin sender posting them).
//!
//! Thin shell:
//! - [`gateway_controller`]: the controller that fetches, applies, writes status and tears down.
//! - [`recording_policy_controller`]: checks and configures each RecordingPolicy's bucket.
//! - [`approval_controller`]: notifies, phases, expires and deletes ApprovalRequests.
//! - [`service_account_issuer`]: discovers the cluster's token issuer.
//! - [`leader_election`]: one replica reconciles at a time, through a Lease.
//! - [`admin`] and [`metrics`]: `/healthz` and Prometheus `/metrics`.
//! - [`tls`]: the process's TLS crypto provider.
//! - [`webhooks`]: the admission webhooks every replica serves: ApprovalRequests (stamps
//!   reviewers, refuses non-reviewers); their TLS certificates (CA and serving certificate
//!   shared by replicas through a Secret, rotated), and their registration
//!   ([`webhooks::run::run_webhooks`]).

pub mod admin;
pub mod approval_controller;
pub mod approval_lifecycle;
pub mod approval_notifier;
pub mod config_compiler;
pub mod connection_status;
pub mod error;
pub mod gateway_controller;
pub mod gateway_keys;
pub mod gateway_objects;
pub mod leader_election;
pub mod lifecycle_rules;
pub mod metrics;
pub mod recording_policy_controller;
pub mod recording_policy_status;
pub mod service_account_issuer;
pub mod settings;
pub mod tls;
pub mod webhooks;

pub use error::Error;
pub use gateway_controller::{Context, reconcile, run};
pub use metrics::OperatorMetrics;
pub use settings::GatewaySettings;

/// The field manager of everything the operator applies, and its name in events and labels.
pub const FIELD_MANAGER: &str = "chaperone-operator";
