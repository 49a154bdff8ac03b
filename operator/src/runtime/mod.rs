//! What the controllers share, and the process around them.
//!
//! - [`scaffolding`]: backoff and failure events, event publishing, server-side-applied status,
//!   AWS keys read from a Secret.
//! - [`settings`]: what the operator's flags decide about every gateway, and [`gateway_pod`]
//!   the gateway pods' resources and scheduling among them.
//! - [`service_account_issuer`]: discovers the cluster's token issuer.
//! - [`leader_election`]: one replica reconciles at a time, through a Lease.
//! - [`admin`], [`readiness`] and [`metrics`]: `/healthz`, `/readyz` and Prometheus `/metrics`.
//! - [`tls`]: the process's TLS crypto provider and the HTTPS servers' serving loop.
//! - [`stopping`]: one shutdown signal for many tasks, and start-up retried until it works.

pub mod admin;
pub mod gateway_pod;
pub mod leader_election;
pub mod metrics;
pub mod readiness;
pub mod scaffolding;
pub mod service_account_issuer;
pub mod settings;
pub mod stopping;
pub mod tls;
