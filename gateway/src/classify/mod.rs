//! Classification: from a verified request to the IAM actions and resources it needs.
//!
//! [`Classifier::classify`] is a pure function of an [`AwsRequest`] and a [`ResourceContext`]
//! (partition, region, account). It never fails: what it cannot recognise is `<prefix>:Unknown`,
//! with the reason in [`Classification::unclassified`], and is subject to policy like any call.
//!
//! # How the operation is found
//!
//! - **Service**: the signing name of the verified credential scope. Several models may share one
//!   (Bedrock's runtime, control and agent planes all sign as `bedrock`); they are matched
//!   together and [`Classification::endpoint_prefix`] tells the forwarder which one it was.
//! - **JSON**: `X-Amz-Target: <prefix>.<Operation>`; the prefix must be the model's.
//! - **Query and EC2**: `Action` from the form body (when the content type says form) and from the
//!   query string.
//! - **Smithy RPC v2 CBOR** (CloudWatch): `/service/<ServiceName>/operation/<Operation>`.
//! - **REST-JSON and REST-XML**: method + URI template + the required query keys and headers of
//!   the model. The most specific route wins: more literal segments, then more required query
//!   keys and headers, then fewer greedy labels. So `PUT /b/k` is PutObject, with
//!   `x-amz-copy-source` CopyObject, with `partNumber&uploadId` UploadPart, with both UploadPartCopy.
//!   A trailing `/` in a template is significant; a request's trailing `/` is otherwise ignored
//!   if nothing matches with it (`PUT /bucket/` is CreateBucket, `PUT /bucket/dir/` PutObject).
//! - The `x-id` query hint that SDKs add is never consulted; the request's shape decides.
//! - **Ambiguity is refused**: a request whose signals name two operations (a target header and
//!   a form `Action`; `Action` more than once; two REST routes of equal specificity, like
//!   `?acl&tagging`), or that carries something AWS could read otherwise (a semantic header twice,
//!   a query string on a JSON or CBOR service, an `X-Amz-Target` where the protocol has none, an
//!   S3 subresource key the matched operation does not take, like `DELETE /b?versioning`) is not
//!   resolved in anyone's favour: it is Unknown with [`Unclassified::is_ambiguous`], which policy
//!   refuses whatever it allows.
//! - **Headers carry permissions**: S3 ACL and grant headers, tagging, object-lock retention and
//!   legal hold, governance bypass, the copy source (a read of the source) and the SSE-KMS key add
//!   their IAM actions to the call's.
//! - **Credential operations without models**: an operation that returns credentials is found by
//!   signing name and the operation the wire names (target header, `Action`, REST path), whether
//!   or not a table knows the service, and its action (`cognito-identity:GetOpenIdToken`) is added
//!   so the credential denylist sees it.
//!
//! # S3 addressing
//!
//! The bucket comes from the path, or from the Host header when the host is `<bucket>.<host>`.
//! A host is not a bucket host when it is an IP literal, one of the gateway's own host names
//! (given to [`Classifier::new`]), or a bare AWS S3 endpoint. Hosts under a gateway name or an
//! AWS S3 endpoint yield everything before that suffix (dotted buckets work); any other dotted host
//! yields its first label. [`Classification::s3_addressing`] says which style was read: the
//! forwarder must address upstream the bucket that was classified ([`Classification::s3_bucket`]).
//! Bucket names outside `[A-Za-z0-9._-]` are refused (Unknown), so `a%2Fb` cannot pose as
//! bucket `a`, key `b/...`.
//!
//! # Actions and resources
//!
//! The action is `<iam-prefix>:<Operation>` unless IAM names it otherwise (most of S3, Lambda's
//! `Invoke`, Bedrock's `Converse`, DynamoDB PartiQL by verb). Operations that hand a role to a
//! service add `iam:PassRole` on that role. Resource ARNs are built from what the request names,
//! in the context's account and region; where the real ARN holds more than the request says (a
//! secret's random suffix, a stack id, an IAM path) the ARN stops at what is known
//! (`secret:prod/db`, `stack/app/*`, `role/name`).
//!
//! [`Classification::resources_complete`] is false when the call may touch resources that are not
//! listed: the body that names them was not passed whole or did not parse (DeleteObjects then
//! names `bucket/*`), a CBOR body (not decoded), a role passed inside an EC2 instance profile
//! (PassRole then names `role/*`), or an ARN built without the account (the context's account is
//! `*`). Policy should treat an incomplete classification as touching
//! anything its actions allow.
//!
//! # Tables
//!
//! Operation tables are generated from botocore's service models by
//! `gateway/codegen/gen_operations.py` and committed under `generated/`; see its README.

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
mod differential;
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
