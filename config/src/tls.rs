//! The certificates the operator issues and the servers it runs present: a CA made in-process
//! with rcgen, a serving certificate it signs, and the rustls configuration that serves it.
//!
//! Two servers use them: the operator's admission webhooks (the CA is the `caBundle` the API
//! server trusts) and every namespace's gateway (the CA is what agents' AWS clients verify the
//! gateway with). The layout of the Secret holding them ([`CA_CERT_KEY`], [`CERT_KEY`],
//! [`KEY_KEY`]) is part of the operator-to-gateway contract: the gateway serves the files it
//! mounts from there.
//!
//! Pure core: generating, reissuing, deciding when to renew ([`IssuedCertificates::renewal`]) and
//! converting to and from the Secret's data. The operator reads and writes the Secret.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::redacted::Redacted;

/// Secret data key of the CA certificate (PEM).
pub const CA_CERT_KEY: &str = "ca.crt";
/// Secret data key of the CA's private key (PKCS#8 PEM).
pub const CA_KEY_KEY: &str = "ca.key";
/// Secret data key of the serving certificate (PEM).
pub const CERT_KEY: &str = "tls.crt";
/// Secret data key of the serving certificate's private key (PKCS#8 PEM).
pub const KEY_KEY: &str = "tls.key";
/// Annotation: when the CA expires (RFC 3339).
pub const CA_NOT_AFTER_ANNOTATION: &str = "chaperone.dev/ca-not-after";
/// Annotation: when the serving certificate expires (RFC 3339).
pub const CERT_NOT_AFTER_ANNOTATION: &str = "chaperone.dev/cert-not-after";
/// Annotation: the names the serving certificate is valid for, comma-separated.
pub const CERT_NAMES_ANNOTATION: &str = "chaperone.dev/cert-names";

/// Annotation: the CA's common name (absent on Secrets written before it was recorded, whose CA
/// is the webhooks' [`WEBHOOK_CA_NAME`]).
pub const CA_NAME_ANNOTATION: &str = "chaperone.dev/ca-name";
/// The common name of the operator's webhook CA.
pub const WEBHOOK_CA_NAME: &str = "chaperone-webhook-ca";

/// Why the serving certificate or its TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the {what} failed: {source}")]
    Generate { what: &'static str, source: rcgen::Error },
    #[error("the TLS configuration was refused by rustls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the TLS Secret is unusable: {0}")]
    Stored(String),
    #[error("the serving certificate files are unusable: {0}")]
    Files(String),
}

/// How long the CA and the serving certificates live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificateLifetimes {
    /// The CA's validity (default ten years): the caBundle changes only when the CA is replaced.
    pub ca: Duration,
    /// A serving certificate's validity (default 90 days); it is reissued, by the same CA, once
    /// less than a third of it remains.
    pub serving: Duration,
}

impl Default for CertificateLifetimes {
    fn default() -> Self {
        Self {
            ca: Duration::from_secs(10 * 365 * 24 * 3600),
            serving: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// What a stored set of certificates needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Valid for long enough, for the right names.
    Keep,
    /// A new serving certificate from the same CA (the caBundle does not change).
    Serving,
    /// A new CA and serving certificate (the caBundle changes and is re-applied).
    All,
}

/// A CA and the serving certificate it signed, for the names the API server dials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCertificates {
    ca_name: String,
    ca_pem: String,
    ca_key_pem: Redacted<String>,
    cert_pem: String,
    key_pem: Redacted<String>,
    ca_not_after: OffsetDateTime,
    cert_not_after: OffsetDateTime,
    names: Vec<String>,
}

fn fail(what: &'static str) -> impl Fn(rcgen::Error) -> TlsError {
    move |source| TlsError::Generate { what, source }
}

fn ca_params(
    name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

fn after(now: OffsetDateTime, validity: Duration) -> OffsetDateTime {
    now.checked_add(time::Duration::try_from(validity).unwrap_or(time::Duration::DAY))
        .unwrap_or(now + time::Duration::DAY)
}

impl IssuedCertificates {
    /// A fresh CA (ECDSA P-256) named `ca_name` and a serving certificate for `names`: DNS names
    /// (e.g. `chaperone-webhooks.chaperone-system.svc`) or IP addresses (e.g. `127.0.0.1`), with
    /// the default lifetimes.
    pub fn generate(ca_name: &str, names: &[String]) -> Result<Self, TlsError> {
        Self::generate_at(
            ca_name,
            names,
            OffsetDateTime::now_utc(),
            CertificateLifetimes::default(),
        )
    }

    /// A fresh CA and serving certificate valid from `now` (minus a minute of clock skew).
    pub fn generate_at(
        ca_name: &str,
        names: &[String],
        now: OffsetDateTime,
        lifetimes: CertificateLifetimes,
    ) -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate().map_err(fail("CA key"))?;
        let not_before = now - time::Duration::MINUTE;
        let ca_not_after = after(now, lifetimes.ca);
        let ca_cert = ca_params(ca_name, not_before, ca_not_after)
            .self_signed(&ca_key)
            .map_err(fail("CA certificate"))?;
        let unsigned = Self {
            ca_name: ca_name.to_owned(),
            ca_pem: ca_cert.pem(),
            ca_key_pem: ca_key.serialize_pem().into(),
            cert_pem: String::new(),
            key_pem: Redacted::default(),
            ca_not_after,
            cert_not_after: now,
            names: Vec::new(),
        };
        unsigned.reissue_serving(names, now, lifetimes.serving)
    }

    /// A new serving certificate for `names`, signed by this CA (which stays), valid from `now`
    /// for `validity` but never past the CA.
    pub fn reissue_serving(
        &self,
        names: &[String],
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Self, TlsError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).map_err(fail("CA key (stored)"))?;
        // The issuer is the stored CA: same name, same key (so the same key identifier).
        let issuer = Issuer::new(
            ca_params(&self.ca_name, now - time::Duration::MINUTE, self.ca_not_after),
            ca_key,
        );
        let key = KeyPair::generate().map_err(fail("serving key"))?;
        // Strings that parse as IP addresses become IP subject alternative names.
        let mut params = CertificateParams::new(names.to_vec()).map_err(fail("serving names"))?;
        let common_name = names.first().map(String::as_str).unwrap_or("chaperone-webhooks");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - time::Duration::MINUTE;
        params.not_after = after(now, validity).min(self.ca_not_after);
        let cert = params.signed_by(&key, &issuer).map_err(fail("serving certificate"))?;
        Ok(Self {
            ca_name: self.ca_name.clone(),
            ca_pem: self.ca_pem.clone(),
            ca_key_pem: self.ca_key_pem.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem().into(),
            ca_not_after: self.ca_not_after,
            cert_not_after: params.not_after,
            names: names.to_vec(),
        })
    }

    /// What these certificates need at `now` to serve `names`: a CA with less than one serving
    /// lifetime left is replaced (so a serving certificate never outlives its CA by design); a
    /// serving certificate with less than a third of its lifetime left, or for other names, is
    /// reissued.
    pub fn renewal(
        &self,
        names: &[String],
        now: OffsetDateTime,
        lifetimes: CertificateLifetimes,
    ) -> Renewal {
        let serving = time::Duration::try_from(lifetimes.serving).unwrap_or(time::Duration::DAY);
        if self.ca_not_after - now < serving {
            return Renewal::All;
        }
        let wanted: BTreeSet<&String> = names.iter().collect();
        let have: BTreeSet<&String> = self.names.iter().collect();
        if wanted != have || self.cert_not_after - now < serving / 3 {
            return Renewal::Serving;
        }
        Renewal::Keep
    }

    /// The certificates after the renewal they need at `now` (themselves when none is needed).
    pub fn renewed(
        &self,
        names: &[String],
        now: OffsetDateTime,
        lifetimes: CertificateLifetimes,
    ) -> Result<Option<Self>, TlsError> {
        match self.renewal(names, now, lifetimes) {
            Renewal::Keep => Ok(None),
            Renewal::Serving => self.reissue_serving(names, now, lifetimes.serving).map(Some),
            Renewal::All => Self::generate_at(&self.ca_name, names, now, lifetimes).map(Some),
        }
    }

    /// The CA certificate (PEM): the webhook configuration's `caBundle`, the bundle agents
    /// verify their gateway with.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA's common name.
    pub fn ca_name(&self) -> &str {
        &self.ca_name
    }

    /// The serving certificate's private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The serving certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// When the serving certificate expires.
    pub fn cert_not_after(&self) -> OffsetDateTime {
        self.cert_not_after
    }

    /// When the CA expires.
    pub fn ca_not_after(&self) -> OffsetDateTime {
        self.ca_not_after
    }

    /// The names the serving certificate is valid for.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The Secret's `data` (PEM bytes) and annotations holding these certificates.
    pub fn to_secret(&self) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
        let data = [
            (CA_CERT_KEY, &self.ca_pem),
            (CA_KEY_KEY, &*self.ca_key_pem),
            (CERT_KEY, &self.cert_pem),
            (KEY_KEY, &*self.key_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        .collect();
        let format = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        let annotations = [
            (CA_NOT_AFTER_ANNOTATION, format(self.ca_not_after)),
            (CERT_NOT_AFTER_ANNOTATION, format(self.cert_not_after)),
            (CERT_NAMES_ANNOTATION, self.names.join(",")),
            (CA_NAME_ANNOTATION, self.ca_name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        (data, annotations)
    }

    /// Reads certificates written by [`Self::to_secret`]; anything missing or unparsable is an
    /// error (the caller then generates new ones).
    pub fn from_secret(
        data: &BTreeMap<String, Vec<u8>>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, TlsError> {
        let text = |key: &str| -> Result<String, TlsError> {
            let bytes = data.get(key).ok_or_else(|| TlsError::Stored(format!("no key {key}")))?;
            String::from_utf8(bytes.clone())
                .map_err(|_| TlsError::Stored(format!("key {key} is not UTF-8 PEM")))
        };
        let time = |key: &str| -> Result<OffsetDateTime, TlsError> {
            let value = annotations
                .get(key)
                .ok_or_else(|| TlsError::Stored(format!("no annotation {key}")))?;
            OffsetDateTime::parse(value, &Rfc3339)
                .map_err(|e| TlsError::Stored(format!("annotation {key}: {e}")))
        };
        let certificates = Self {
            ca_name: annotations
                .get(CA_NAME_ANNOTATION)
                .cloned()
                .unwrap_or_else(|| WEBHOOK_CA_NAME.to_owned()),
            ca_pem: text(CA_CERT_KEY)?,
            ca_key_pem: text(CA_KEY_KEY)?.into(),
            cert_pem: text(CERT_KEY)?,
            key_pem: text(KEY_KEY)?.into(),
            ca_not_after: time(CA_NOT_AFTER_ANNOTATION)?,
            cert_not_after: time(CERT_NOT_AFTER_ANNOTATION)?,
            names: annotations
                .get(CERT_NAMES_ANNOTATION)
                .map(|names| {
                    names.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect()
                })
                .unwrap_or_default(),
        };
        // Fail now rather than at the first handshake.
        certificates.certified_key()?;
        KeyPair::from_pem(&certificates.ca_key_pem).map_err(fail("CA key (stored)"))?;
        Ok(certificates)
    }

    /// The serving certificate and key as rustls serves them (ring signing).
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        certified_key(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
            .map_err(|e| TlsError::Stored(e.to_string()))
    }

    /// A rustls server configuration serving the certificate over HTTP/1.1, with ring as its
    /// crypto provider (whatever the process default is).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        Ok(CurrentCertificate::new(self)?.server_config())
    }
}

/// A serving certificate chain (PEM, the leaf first) and its private key (PEM) as rustls serves
/// them (ring signing); refused when either does not parse or the key is not the certificate's.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Files(format!("{CERT_KEY}: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Files(format!("{CERT_KEY} holds no certificate")));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Files(format!("{KEY_KEY}: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| TlsError::Files(format!("{CERT_KEY} and {KEY_KEY} do not match: {e}")))
}

/// The certificate every new TLS handshake gets, replaceable while serving (rotation).
#[derive(Debug)]
pub struct CurrentCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CurrentCertificate {
    pub fn new(certificates: &IssuedCertificates) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self { current: RwLock::new(certificates.certified_key()?) }))
    }

    /// The certificate and key read from PEM files' contents (see [`certified_key`]).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self { current: RwLock::new(certified_key(cert_pem, key_pem)?) }))
    }

    /// Serves `certificates` from the next handshake on; connections already open keep theirs.
    pub fn replace(&self, certificates: &IssuedCertificates) -> Result<(), TlsError> {
        self.replace_key(certificates.certified_key()?);
        Ok(())
    }

    /// Serves `key` from the next handshake on; connections already open keep theirs.
    pub fn replace_key(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut current) => *current = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }

    /// A rustls server configuration (HTTP/1.1, ring) resolving to the current certificate.
    pub fn server_config(self: Arc<Self>) -> Arc<ServerConfig> {
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|builder| builder.with_no_client_auth().with_cert_resolver(self.clone()))
                // ring supports the default protocol versions; keep a working fallback anyway.
                .unwrap_or_else(|_| {
                    ServerConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS)
                        .with_no_client_auth()
                        .with_cert_resolver(self)
                });
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(current) => Some(current.clone()),
            Err(poisoned) => Some(poisoned.into_inner().clone()),
        }
    }
}

/// The common name of the CA of `namespace`'s gateway: each namespace has its own CA, trusted by
/// that namespace's agents only.
pub fn gateway_ca_name(namespace: &str) -> String {
    format!("chaperone-gateway-ca.{namespace}")
}

/// The names a gateway's serving certificate is valid for: the Service's cluster IP (when it has
/// one) and its DNS names `<service>`, `<service>.<namespace>`, `<service>.<namespace>.svc` and
/// `<service>.<namespace>.svc.cluster.local`.
pub fn gateway_serving_names(
    service: &str,
    namespace: &str,
    cluster_ip: Option<&str>,
) -> Vec<String> {
    let mut names: Vec<String> = cluster_ip.map(str::to_owned).into_iter().collect();
    names.extend([
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]);
    names
}

/// The file name of the CA certificate inside the directory agents mount it in.
pub const AGENT_CA_FILE: &str = "ca.crt";

/// The variables that make each AWS client verify the gateway with the CA in `ca_dir` (a
/// directory holding only [`AGENT_CA_FILE`]):
///
/// - `AWS_CA_BUNDLE`: the AWS CLI, boto3 and the Go SDK v2 trust this bundle (instead of the
///   system's) for AWS calls, which all go to the gateway;
/// - `NODE_EXTRA_CA_CERTS`: Node adds it to its built-in roots (the JavaScript SDK v3);
/// - `SSL_CERT_DIR`: the Rust SDK's default HTTPS client (rustls with `rustls-native-certs`)
///   then reads its roots from these directories instead of the system store, so the system's
///   directory `/etc/ssl/certs` is listed first to keep the other roots; OpenSSL and Go programs
///   read it as extra certificate directories.
pub fn agent_trust_variables(ca_dir: &str) -> Vec<(&'static str, String)> {
    let file = format!("{ca_dir}/{AGENT_CA_FILE}");
    vec![
        ("AWS_CA_BUNDLE", file.clone()),
        ("NODE_EXTRA_CA_CERTS", file),
        ("SSL_CERT_DIR", format!("{SYSTEM_CERT_DIR}:{ca_dir}")),
    ]
}

/// The system's certificate directory on Debian, Ubuntu, Alpine and distroless images.
pub const SYSTEM_CERT_DIR: &str = "/etc/ssl/certs";

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Vec<String> {
        vec!["127.0.0.1".to_owned()]
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn generated() -> IssuedCertificates {
        IssuedCertificates::generate_at(
            WEBHOOK_CA_NAME,
            &loopback(),
            now(),
            CertificateLifetimes::default(),
        )
        .unwrap_or_else(|e| panic!("generating: {e}"))
    }

    #[test]
    fn a_gateway_certificate_names_the_cluster_ip_and_every_service_name() {
        let names = gateway_serving_names("chaperone-gateway", "agents", Some("10.96.0.12"));
        assert_eq!(
            names,
            [
                "10.96.0.12",
                "chaperone-gateway",
                "chaperone-gateway.agents",
                "chaperone-gateway.agents.svc",
                "chaperone-gateway.agents.svc.cluster.local",
            ]
        );
        let issued = IssuedCertificates::generate(&gateway_ca_name("agents"), &names)
            .unwrap_or_else(|e| panic!("generating: {e}"));
        assert_eq!(issued.ca_name(), "chaperone-gateway-ca.agents");
        let (data, annotations) = issued.to_secret();
        let read = IssuedCertificates::from_secret(&data, &annotations)
            .unwrap_or_else(|e| panic!("reading: {e}"));
        assert_eq!(read.ca_name(), "chaperone-gateway-ca.agents");
        assert!(read.server_config().is_ok());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_naming_both_files() {
        let one = generated();
        let other = generated();
        let error = certified_key(one.cert_pem().as_bytes(), other.key_pem().as_bytes()).err();
        assert!(
            error.as_ref().is_some_and(|e| e.to_string().contains("tls.crt and tls.key")),
            "{error:?}"
        );
        let error = certified_key(b"not a certificate", one.key_pem().as_bytes()).err();
        assert!(error.is_some_and(|e| e.to_string().contains("tls.crt")));
        assert!(
            CurrentCertificate::from_pem(one.cert_pem().as_bytes(), one.key_pem().as_bytes())
                .is_ok()
        );
    }

    #[test]
    fn a_loopback_certificate_builds_a_server_config() {
        let certificates = generated();
        assert!(certificates.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(certificates.server_config().is_ok());
    }

    #[test]
    fn certificates_read_back_from_the_secret_are_the_same() {
        let certificates = generated();
        let (data, annotations) = certificates.to_secret();
        let read = IssuedCertificates::from_secret(&data, &annotations)
            .unwrap_or_else(|e| panic!("reading: {e}"));
        assert_eq!(read, certificates);
    }

    #[test]
    fn a_secret_missing_the_ca_key_is_unusable_and_says_which_key() {
        let (mut data, annotations) = generated().to_secret();
        data.remove(CA_KEY_KEY);
        let error = IssuedCertificates::from_secret(&data, &annotations).err();
        assert!(error.is_some_and(|e| e.to_string().contains("ca.key")));
    }

    #[test]
    fn fresh_certificates_are_kept_and_a_serving_certificate_near_expiry_is_reissued_by_the_same_ca()
     {
        let lifetimes = CertificateLifetimes::default();
        let certificates = generated();
        assert_eq!(certificates.renewal(&loopback(), now(), lifetimes), Renewal::Keep);
        let later = now() + time::Duration::days(61);
        assert_eq!(certificates.renewal(&loopback(), later, lifetimes), Renewal::Serving);
        let renewed = certificates
            .renewed(&loopback(), later, lifetimes)
            .unwrap_or_else(|e| panic!("renewing: {e}"))
            .unwrap_or_else(|| panic!("a renewal"));
        assert_eq!(renewed.ca_pem(), certificates.ca_pem(), "the caBundle does not change");
        assert_ne!(renewed.cert_pem(), certificates.cert_pem());
        assert_eq!(renewed.cert_not_after(), later + time::Duration::days(90));
        assert_eq!(renewed.renewal(&loopback(), later, lifetimes), Renewal::Keep);
        assert!(renewed.server_config().is_ok());
    }

    #[test]
    fn other_names_reissue_the_serving_certificate_and_an_expiring_ca_replaces_everything() {
        let lifetimes = CertificateLifetimes::default();
        let certificates = generated();
        let service = vec!["chaperone-operator.chaperone-system.svc".to_owned()];
        assert_eq!(certificates.renewal(&service, now(), lifetimes), Renewal::Serving);
        let near_ca_end = certificates.ca_not_after() - time::Duration::days(30);
        assert_eq!(certificates.renewal(&loopback(), near_ca_end, lifetimes), Renewal::All);
        let renewed = certificates
            .renewed(&loopback(), near_ca_end, lifetimes)
            .unwrap_or_else(|e| panic!("renewing: {e}"))
            .unwrap_or_else(|| panic!("a renewal"));
        assert_ne!(renewed.ca_pem(), certificates.ca_pem());
    }
}
