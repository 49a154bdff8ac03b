//! AgentConnections into one gateway per namespace.
//!
//! Pure core:
//! - [`config_compiler`]: a namespace's connections, policies, rules and Secrets into the
//!   gateway's configuration file, with a per-connection outcome.
//! - [`keys`]: the keys Secret's content (generate once, keep, rotate).
//! - [`objects`]: the gateway's Kubernetes objects as apply manifests.
//! - [`connection_status`]: an AgentConnection's status and conditions.
//!
//! Thin shell: [`controller`] fetches, applies, writes status and tears down.

pub mod config_compiler;
pub mod connection_status;
pub mod controller;
pub mod issuer_discovery;
pub mod keys;
pub mod objects;
