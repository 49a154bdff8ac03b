//! Chaperone's custom resources, group `chaperone.dev`, version `v1alpha1`, all namespaced.
//!
//! - [`AgentConnection`]: which agents may come in through a namespace's gateway, and what the
//!   gateway signs their calls with.
//! - [`RecordingPolicy`]: where recordings go, how long they stay, what is captured and redacted.
//! - [`ApprovalRule`]: which calls wait for which human reviewers.
//! - [`ApprovalRequest`]: one held call, created by a gateway and decided by reviewers.
//!
//! - [`Session`], [`SessionList`], [`SessionEventList`]: the read-only objects of the audit API
//!   (group `audit.chaperone.dev`) the operator serves through the aggregation layer.
//!
//! Admission-time validation lives in the types as CEL rules (`x-kubernetes-validations`) and
//! OpenAPI bounds, so the API server refuses a bad object with a message naming the field.
//! [`crd_yaml`] renders all four CustomResourceDefinitions; `cargo xtask crdgen` writes them into
//! `charts/chaperone/crds/`.

mod agent_connection;
mod approval_request;
mod approval_rule;
mod audit;
mod common;
mod glob;
mod recording_policy;
mod render;

pub use agent_connection::*;
pub use approval_request::*;
pub use approval_rule::*;
pub use audit::*;
pub use common::*;
pub use glob::glob_matches;
pub use recording_policy::*;
pub use render::{GROUP, VERSION, all_crds, crd_yaml};
