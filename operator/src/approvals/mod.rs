//! ApprovalRequests after a gateway created them. What the reviews decide is the shared contract
//! (`chaperone_config::approval`); the reviews themselves are stamped by [`crate::webhooks`].
//!
//! Pure core:
//! - [`lifecycle`]: an ApprovalRequest's phase, notification, retries and cleanup.
//! - [`notifier`]: the JSON and Slack notifications of a pending ApprovalRequest (and the thin
//!   sender posting them).
//!
//! Thin shell: [`controller`] notifies, phases, expires and deletes ApprovalRequests.

pub mod controller;
pub mod lifecycle;
pub mod notifier;
