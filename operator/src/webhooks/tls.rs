//! The webhooks' serving certificate: the operator's certificate core
//! ([`chaperone_config::tls`]) under the names the webhooks use. The CA certificate is the
//! `caBundle` the API server trusts in the webhook configuration; its common name is
//! [`WEBHOOK_CA_NAME`]. The Secret is read and written by [`super::certificate_store`].

pub use chaperone_config::tls::{
    CA_CERT_KEY, CA_KEY_KEY, CA_NAME_ANNOTATION, CA_NOT_AFTER_ANNOTATION, CERT_KEY,
    CERT_NAMES_ANNOTATION, CERT_NOT_AFTER_ANNOTATION, CertificateLifetimes, KEY_KEY, Renewal,
    WEBHOOK_CA_NAME,
};

/// The webhooks' CA and serving certificate.
pub type WebhookCertificates = chaperone_config::tls::IssuedCertificates;
/// Why the webhooks' certificates could not be made or read.
pub type WebhookTlsError = chaperone_config::tls::TlsError;
/// The certificate every new webhook handshake gets, replaced on rotation.
pub type ServingCertificate = chaperone_config::tls::CurrentCertificate;
