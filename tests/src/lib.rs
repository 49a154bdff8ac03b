//! Chaperone's local environment and end-to-end tests.
//!
//! The environment runs the real parts as processes, built or installed by the project itself:
//! etcd and kube-apiserver built from Go modules (`tests/go/`), moto's S3/AWS server and the AWS CLI
//! and boto3 in a Python virtualenv. Tests, the demo and the benchmarks share it.
