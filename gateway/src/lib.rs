//! The Chaperone gateway: one per namespace, the only holder of upstream AWS credentials.
//!
//! Data path of one call (see docs/ and DESIGN.md): authenticate the agent (SigV4 over credentials
//! the gateway minted at AssumeRoleWithWebIdentity), classify the call into IAM actions, decide
//! (policy, credential-returning denylist, approval rules), record the request write-ahead,
//! re-sign and forward, stream the response back and record it.
//!
//! Modules are added here as each part of the data path lands.

pub mod identity;
