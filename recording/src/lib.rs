//! Chaperone's session-record format: the contract between gateways and auditors.
//!
//! Events (JSON Lines, zstd segments), the hash chain, signed manifests and digests, the writer,
//! the reader and the verifier. Documented for other implementations in docs/recording-format.md.
