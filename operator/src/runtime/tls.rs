//! The TLS crypto provider of the process.
//!
//! The dependency tree enables both of rustls's providers (kube uses ring, the gateway crate
//! aws-lc-rs), so rustls cannot pick one by itself; the operator picks ring, as its Kubernetes
//! client is built for it.

/// Installs ring as the process's rustls crypto provider; a provider already installed is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
