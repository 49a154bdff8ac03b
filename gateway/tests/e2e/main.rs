//! The gateway's integration and end-to-end tests, one test binary (one link, one environment
//! attach): each file of this folder is a module, named as the test binary it used to be.
//! Run one file with `cargo test -p chaperone-gateway --test e2e <file>::`.

#[path = "../common/mod.rs"]
mod common;

mod adversarial;
mod adversarial_approval;
mod adversarial_bodies;
mod adversarial_quota;
mod adversarial_scope;
mod agent_tls;
mod approvals_aws_cli;
mod data_path_aws_cli;
mod data_path_boto3;
mod data_path_presigned;
mod data_path_sdks;
mod data_path_streaming_upload;
mod identity_web_identity;
mod recorder_s3;
mod recording_capture;
mod recording_crash_recovery;
mod recording_storage_outage;
mod sigv4_aws_signing_test_suite;
mod sigv4_verifier;
mod upstream_credentials;
