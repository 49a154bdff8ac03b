//! The webhooks' serving certificate: a CA made in-process with rcgen, a serving certificate it
//! signs, and the rustls configuration that serves it. The CA certificate is the `caBundle` the
//! API server trusts in the webhook configuration.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the serving certificate or its TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WebhookTlsError {
    #[error("generating the webhook {what} failed: {source}")]
    Generate { what: &'static str, source: rcgen::Error },
    #[error("the webhook's TLS configuration was refused by rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A CA and the serving certificate it signed, for the names the API server dials.
#[derive(Clone)]
pub struct WebhookCertificates {
    ca_pem: String,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for WebhookCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCertificates").finish_non_exhaustive()
    }
}

impl WebhookCertificates {
    /// A fresh CA (ECDSA P-256) and a serving certificate for `names`: DNS names (e.g.
    /// `chaperone-webhooks.chaperone-system.svc`) or IP addresses (e.g. `127.0.0.1`).
    pub fn generate(names: &[String]) -> Result<Self, WebhookTlsError> {
        let fail = |what| move |source| WebhookTlsError::Generate { what, source };
        let ca_key = KeyPair::generate().map_err(fail("CA key"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail("CA"))?;
        ca_params.distinguished_name.push(DnType::CommonName, "chaperone-webhook-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(fail("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(fail("serving key"))?;
        // Strings that parse as IP addresses become IP subject alternative names.
        let mut params = CertificateParams::new(names.to_vec()).map_err(fail("serving names"))?;
        let common_name = names.first().map(String::as_str).unwrap_or("chaperone-webhooks");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).map_err(fail("serving certificate"))?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// The CA certificate (PEM): the webhook configuration's `caBundle`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The serving certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A rustls server configuration serving the certificate over HTTP/1.1, with ring as its
    /// crypto provider (whatever the process default is).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, WebhookTlsError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(vec![self.cert_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_certificate_builds_a_server_config() {
        let certificates =
            WebhookCertificates::generate(&["127.0.0.1".to_owned()]).map_err(|e| e.to_string());
        let Ok(certificates) = certificates else {
            panic!("generating: {certificates:?}");
        };
        assert!(certificates.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(certificates.server_config().is_ok());
    }
}
