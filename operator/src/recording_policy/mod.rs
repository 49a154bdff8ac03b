//! RecordingPolicies: each policy's bucket and status.
//!
//! Pure core:
//! - [`lifecycle_rules`]: a RecordingPolicy's bucket lifecycle rule, merged with foreign rules.
//! - [`status`]: a RecordingPolicy's status and conditions.
//!
//! Thin shell: [`controller`] checks and configures each policy's bucket.

pub mod controller;
pub mod lifecycle_rules;
pub mod status;
