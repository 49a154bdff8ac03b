//! Chaperone's benchmarks (`cargo xtask bench`, docs/benchmarks.md): the gateway measured beside
//! direct calls and peers in one run.
//!
//! - [`upstream`]: a fast local S3/DynamoDB stand-in that verifies every SigV4 signature.
//! - [`scenario`]: the calls, signed as an SDK signs them (`aws-sigv4`).
//! - [`load`]: the closed-loop load generator with HDR histograms, and the streamed upload.
//! - [`unrecorded`]: the gateway's data path with recording discarded (the "recording off" way).
//! - [`passthrough`]: a minimal forwarding proxy, the floor any proxy pays on the machine.
//! - [`peers`]: aws-sigv4-proxy (built offline from its source) and mitmproxy (PyPI).
//! - [`pin`]: the proxy under test on a core of its own in the pinned cells.
//! - [`procstat`]: CPU, memory and storage writes of a process from `/proc`.
//! - [`run`]: one whole run; [`report`]: its tables and targets.

pub mod load;
pub mod passthrough;
pub mod peers;
#[allow(unsafe_code)] // sched_setaffinity
pub mod pin;
#[allow(unsafe_code)] // sysconf(_SC_CLK_TCK)
pub mod procstat;
pub mod report;
pub mod run;
pub mod scenario;
pub mod unrecorded;
pub mod upstream;
