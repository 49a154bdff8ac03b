//! The Chaperone operator: reconciles AgentConnections, RecordingPolicies and ApprovalRules into
//! one gateway per namespace (Deployment, Service, RBAC, config and key Secrets,
//! PodDisruptionBudget). See `docs/operator.md`.
//!
//! One folder per thing reconciled; in each, pure planning modules and one thin controller that
//! fetches, applies and writes status:
//! - [`gateway`]: AgentConnections into a namespace's gateway (configuration file, keys Secret,
//!   Kubernetes objects, connection status).
//! - [`network_policy`]: the NetworkPolicies that keep agents' traffic on the gateway (the
//!   gateway's ingress, each connection's pods' egress), applied with the gateway.
//! - [`recording_policy`]: each RecordingPolicy's bucket (lifecycle rules, checks, published
//!   keys) and status.
//! - [`approvals`]: ApprovalRequests' phase, notifications, expiry and cleanup.
//! - [`webhooks`]: the admission webhooks every replica serves (ApprovalRequest reviews, agent
//!   pods), their TLS certificates and their registration.
//! - [`audit_api`]: recorded sessions served read-only through the aggregation layer, each read
//!   written to a signed access log in the bucket.
//! - [`runtime`]: what the controllers share and the process around them: controller
//!   scaffolding (backoff, events, status writes, AWS keys from Secrets), settings, leader
//!   election, the admin port and metrics, TLS, the token issuer's discovery.
//!
//! The contract with the gateway (its configuration and keys files) is the `chaperone-config`
//! crate.

pub mod approvals;
pub mod audit_api;
pub mod error;
pub mod gateway;
pub mod network_policy;
pub mod recording_policy;
pub mod runtime;
pub mod webhooks;

pub use error::Error;
pub use gateway::controller::{Context, reconcile, run};
pub use runtime::{metrics::OperatorMetrics, settings::GatewaySettings};

/// The field manager of everything the operator applies, and its name in events and labels.
pub const FIELD_MANAGER: &str = "chaperone-operator";
