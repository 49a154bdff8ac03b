//! Approvals: a call an ApprovalRule matches waits for human reviewers (docs/architecture.md, promise 4;
//! docs/approvals.md).
//!
//! Pure core: which rule holds a call ([`rules`]), the fingerprint an approval is bound to
//! ([`fingerprint`]), what the reviews decide ([`reviews`]), the preview reviewers read
//! ([`preview`]). Thin shell: ApprovalRequests in the Kubernetes API ([`gate`]).

pub mod fingerprint;
pub mod gate;
pub mod preview;
pub mod rules;

pub use fingerprint::{BodyDigest, CallFingerprint, CallIdentity, CallParameters};
pub use gate::{ApprovalError, ApprovalGate, CallUnderReview, HeldCall, HoldOutcome, HoldResult};
pub use preview::parameters_preview;
pub use rules::{ApprovalRules, CompiledApprovalRule, RuleCompileError};
