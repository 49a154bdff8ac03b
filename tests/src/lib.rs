//! Chaperone's local environment and end-to-end tests.
//!
//! The environment runs the real parts as processes, built or installed by the project itself:
//! etcd and kube-apiserver built from Go modules (`tests/go/`), moto's S3/AWS server with signature
//! checking, the AWS CLI and boto3 in a Python virtualenv (`tests/python/`), and the AWS SDK for
//! JavaScript v3 installed with npm (`tests/node/`). Tests, the demo and the benchmarks share it;
//! `chaperone-env` provisions and starts it from the command line. `clients` runs real AWS clients
//! (the JavaScript SDK and the Rust `aws-sdk-s3`) as an agent would.

// The harness signals and locks with libc (process.rs, provision.rs, env.rs).
#![allow(unsafe_code)]

pub mod aws;
pub mod chart;
pub mod clients;
pub mod control_plane;
pub mod demo;
pub mod env;
pub mod gateway;
pub mod images;
pub mod moto_sts;
pub mod network_policy;
pub mod objects;
pub mod paths;
pub mod pki;
pub mod ports;
pub mod process;
pub mod provision;
pub mod webdriver;

pub use aws::{AwsUser, MotoServer};
pub use control_plane::ControlPlane;
pub use env::LocalEnv;
