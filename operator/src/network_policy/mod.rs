//! NetworkPolicies that keep agents' traffic on the gateway, reconciled with the namespace's
//! gateway (every AgentConnection reconcile renders them with the rest of the gateway).
//!
//! Pure core: [`policies`] renders them from the namespace's live connections: the gateway's
//! ingress (agents' port from the connections' pods only, the admin port from the configured
//! metrics namespace) and, per connection, its pods' egress (never the cloud metadata and
//! pod-identity endpoints; with `spec.network.egress: GatewayOnly`, only the gateway, the
//! cluster DNS and the listed CIDRs); [`policies::stale`] names the managed ones to delete.
//!
//! The shell is [`crate::gateway::controller`]: it applies them with the gateway's objects and
//! deletes the ones no live connection wants. Kubernetes only stores NetworkPolicies; a CNI that
//! enforces them (docs/installing.md) makes them real.

pub mod policies;
