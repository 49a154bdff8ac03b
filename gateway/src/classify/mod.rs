//! Classification: from a verified request to the IAM actions and resources it needs.
//!
//! The service comes from the request's credential scope (its signing name); the operation from
//! the protocol the service speaks: `X-Amz-Target` (JSON), `Action` (query and EC2), the
//! `/service/<name>/operation/<op>` path (Smithy RPC v2 CBOR), or method + URI template +
//! required query keys and headers (REST-JSON, REST-XML; the most specific route wins). The
//! `x-id` query hint clients add is never consulted. Operation tables are generated from
//! botocore's service models by `gateway/codegen/gen_operations.py` and committed under
//! `generated/`. What cannot be recognised is `<prefix>:Unknown`.

mod action_pattern;
mod actions;
mod classifier;
mod credentials;
mod generated;
mod params;
mod resources;
mod route;
mod s3;
mod table;

#[cfg(test)]
mod tests;

pub use action_pattern::{ActionPattern, ActionPatternError};
pub use actions::IamAction;
pub use classifier::{AwsRequest, Classification, Classifier, Unclassified};
pub use credentials::*;
pub use resources::ResourceContext;
pub use s3::S3Addressing;
pub use table::{
    BOTOCORE_VERSION, HttpRoute, OperationModel, OperationTable, Protocol, ServiceModel,
};
