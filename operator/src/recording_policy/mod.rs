//! RecordingPolicies: each policy's bucket and status.
//!
//! Pure core:
//! - [`lifecycle_rules`]: a RecordingPolicy's bucket lifecycle rule, merged with foreign rules.
//! - [`bucket_policy`]: a RecordingPolicy's bucket-policy statements, merged with foreign ones.
//! - [`status`]: a RecordingPolicy's status and conditions.
//!
//! Thin shell: [`controller`] checks and configures each policy's bucket; [`lockdown`] applies
//! the bucket policy, Block Public Access and access logging that `spec.access` asks for.

pub mod bucket_policy;
pub mod controller;
pub mod lifecycle_rules;
pub mod lockdown;
pub mod status;
