//! The Chaperone gateway: one per namespace, the only holder of upstream AWS credentials.
//!
//! Data path of one call (docs/gateway.md): authenticate the agent (SigV4 over credentials the
//! gateway minted at AssumeRoleWithWebIdentity), classify the call into IAM actions, decide
//! (policy, credential-returning denylist, approval rules), record the request write-ahead,
//! re-sign and forward, stream the response back and record it: one file per stage in `call/`.

pub mod admin;
pub mod approval;
pub mod aws_error;
pub mod body;
mod call;
pub mod classify;
pub mod forward;
pub mod identity;
pub mod metrics;
pub mod partition;
pub mod policy;
pub mod record;
pub mod recorder;
pub mod server;
pub mod serving_tls;
pub mod sigv4;
pub mod upstream;
