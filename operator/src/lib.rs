//! The Chaperone operator: reconciles AgentConnection, RecordingPolicy and ApprovalRule objects into
//! one gateway per namespace (Deployment, Service, RBAC, config and key Secrets,
//! PodDisruptionBudget), manages the recording bucket's lifecycle rules, and serves the pod and
//! ApprovalRequest admission webhooks.
//!
//! Controllers and webhooks are added here as they land.

pub mod webhooks;
