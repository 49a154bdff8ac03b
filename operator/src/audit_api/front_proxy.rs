//! Who is asking: the audit API believes only the Kubernetes API server's front proxy. The API
//! server authenticates and authorizes the user, then proxies the request with a client
//! certificate signed by the request-header CA and the user in headers (`X-Remote-User`,
//! `X-Remote-Group`, as `kube-system/extension-apiserver-authentication` names them). A request
//! without such a certificate, or from a certificate whose common name is not allowed, is refused
//! before any header is read: whoever reaches the port directly cannot claim a user.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// The ConfigMap the API server publishes its request-header settings in.
pub const AUTHENTICATION_CONFIG_MAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// The front proxy's settings, as the API server publishes them.
#[derive(Clone, Debug)]
pub struct FrontProxy {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
    username_headers: Vec<String>,
    group_headers: Vec<String>,
    extra_headers_prefixes: Vec<String>,
}

/// The user the API server authenticated, as its front proxy says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUser {
    pub name: String,
    pub groups: Vec<String>,
    /// `extra` values by lower-case key.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why the front-proxy settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrontProxyConfigError {
    #[error(
        "reading ConfigMap kube-system/extension-apiserver-authentication: {0}; the operator needs the Role \
         extension-apiserver-authentication-reader in kube-system (the chart binds it)"
    )]
    Kube(#[source] kube::Error),
    #[error(
        "ConfigMap kube-system/extension-apiserver-authentication has no {0}: the API server runs without \
         the aggregation layer; start it with --requestheader-client-ca-file, --requestheader-allowed-names, \
         --requestheader-username-headers, --requestheader-group-headers and --proxy-client-cert-file \
         (on by default on EKS, GKE and kubeadm clusters)"
    )]
    Missing(&'static str),
    #[error(
        "ConfigMap kube-system/extension-apiserver-authentication: {key} is not {what}: {reason}"
    )]
    Invalid { key: &'static str, what: &'static str, reason: String },
}

/// Why a request was not believed. Each says what the caller should do instead.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error(
        "no client certificate: the Chaperone audit API answers only the Kubernetes API server's front proxy; \
         read sessions through the API server (kubectl get sessions, kubectl chaperone sessions)"
    )]
    NoCertificate,
    #[error(
        "the client certificate is not signed by the API server's request-header CA ({0}); the Chaperone audit \
         API answers only the Kubernetes API server's front proxy"
    )]
    UntrustedCertificate(String),
    #[error(
        "the client certificate's common name {found:?} is not among the front proxy's allowed names {allowed:?}"
    )]
    NameNotAllowed { found: String, allowed: Vec<String> },
    #[error("the front proxy named no user (none of the headers {0:?})")]
    NoUser(Vec<String>),
}

impl FrontProxy {
    /// Reads the settings from `kube-system/extension-apiserver-authentication`.
    pub async fn load(client: &Client) -> Result<Self, FrontProxyConfigError> {
        let (namespace, name) = AUTHENTICATION_CONFIG_MAP;
        let config_map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(FrontProxyConfigError::Kube)?;
        Self::from_data(&config_map.data.unwrap_or_default())
    }

    /// The settings from the ConfigMap's data.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, FrontProxyConfigError> {
        let ca_pem = data
            .get("requestheader-client-ca-file")
            .filter(|pem| !pem.trim().is_empty())
            .ok_or(FrontProxyConfigError::Missing("requestheader-client-ca-file"))?;
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let certificate = certificate.map_err(|e| FrontProxyConfigError::Invalid {
                key: "requestheader-client-ca-file",
                what: "PEM certificates",
                reason: e.to_string(),
            })?;
            roots.add(certificate).map_err(|e| FrontProxyConfigError::Invalid {
                key: "requestheader-client-ca-file",
                what: "a usable CA certificate",
                reason: e.to_string(),
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| FrontProxyConfigError::Invalid {
                key: "requestheader-client-ca-file",
                what: "a usable CA certificate",
                reason: e.to_string(),
            })?;
        let list = |key: &'static str| -> Result<Vec<String>, FrontProxyConfigError> {
            match data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(Vec::new()),
                Some(text) => {
                    serde_json::from_str(text).map_err(|e| FrontProxyConfigError::Invalid {
                        key,
                        what: "a JSON list of strings",
                        reason: e.to_string(),
                    })
                }
            }
        };
        let username_headers = list("requestheader-username-headers")?;
        if username_headers.is_empty() {
            return Err(FrontProxyConfigError::Missing("requestheader-username-headers"));
        }
        Ok(Self {
            verifier,
            allowed_names: list("requestheader-allowed-names")?,
            username_headers,
            group_headers: list("requestheader-group-headers")?,
            extra_headers_prefixes: list("requestheader-extra-headers-prefix")?,
        })
    }

    /// The user of a request that came with `certificates` (the TLS peer's chain, end entity
    /// first) and `headers`.
    pub fn authenticate(
        &self,
        certificates: Option<&[CertificateDer<'static>]>,
        headers: &HeaderMap,
    ) -> Result<RemoteUser, Unauthenticated> {
        let Some((end_entity, intermediates)) = certificates.and_then(|c| c.split_first()) else {
            return Err(Unauthenticated::NoCertificate);
        };
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(|e| Unauthenticated::UntrustedCertificate(e.to_string()))?;
        if !self.allowed_names.is_empty() {
            let name = common_name(end_entity).unwrap_or_default();
            if !self.allowed_names.contains(&name) {
                return Err(Unauthenticated::NameNotAllowed {
                    found: name,
                    allowed: self.allowed_names.clone(),
                });
            }
        }
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect()
        };
        let user = self
            .username_headers
            .iter()
            .flat_map(|h| values(h))
            .find(|u| !u.is_empty())
            .ok_or_else(|| Unauthenticated::NoUser(self.username_headers.clone()))?;
        let groups = self.group_headers.iter().flat_map(|h| values(h)).collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            let lower = name.as_str().to_ascii_lowercase();
            for prefix in &self.extra_headers_prefixes {
                if let Some(key) = lower.strip_prefix(&prefix.to_ascii_lowercase())
                    && let Ok(value) = value.to_str()
                {
                    extra.entry(key.to_owned()).or_default().push(value.to_owned());
                }
            }
        }
        Ok(RemoteUser { name: user, groups, extra })
    }
}

/// The subject common name of a DER certificate.
fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(name)
}

/// Asks every client for a certificate and checks that it holds the key (the handshake
/// signature), but leaves the chain to [`FrontProxy::authenticate`], so that a client without a
/// trusted certificate gets a 401 that says why instead of a failed handshake, and a rotated
/// request-header CA applies without rebuilding the listener.
#[derive(Debug)]
pub struct RequestClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCertificate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    fn client(ca: &Ca, name: &str) -> Vec<CertificateDer<'static>> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        vec![params.signed_by(&key, &ca.issuer).unwrap().der().clone()]
    }

    fn front_proxy(ca: &Ca) -> FrontProxy {
        let data = BTreeMap::from([
            ("requestheader-client-ca-file".to_owned(), ca.pem.clone()),
            ("requestheader-allowed-names".to_owned(), r#"["front-proxy-client"]"#.to_owned()),
            ("requestheader-username-headers".to_owned(), r#"["X-Remote-User"]"#.to_owned()),
            ("requestheader-group-headers".to_owned(), r#"["X-Remote-Group"]"#.to_owned()),
            ("requestheader-extra-headers-prefix".to_owned(), r#"["X-Remote-Extra-"]"#.to_owned()),
        ]);
        FrontProxy::from_data(&data).unwrap()
    }

    fn headers(user: &str, groups: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-remote-user", user.parse().unwrap());
        for group in groups {
            headers.append("x-remote-group", group.parse().unwrap());
        }
        headers.insert("x-remote-extra-scopes", "read".parse().unwrap());
        headers
    }

    #[test]
    fn the_front_proxys_certificate_carries_the_user_and_groups_of_its_headers() {
        let ca = ca("front-proxy-ca");
        let proxy = front_proxy(&ca);
        let user = proxy
            .authenticate(
                Some(&client(&ca, "front-proxy-client")),
                &headers("alice", &["auditors", "system:authenticated"]),
            )
            .unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["auditors", "system:authenticated"]);
        assert_eq!(user.extra["scopes"], ["read"]);
    }

    #[test]
    fn headers_without_the_front_proxys_certificate_are_not_believed() {
        let ca = ca("front-proxy-ca");
        let proxy = front_proxy(&ca);
        let claim = headers("system:admin", &["system:masters"]);
        assert_eq!(proxy.authenticate(None, &claim), Err(Unauthenticated::NoCertificate));
        let other = self::ca("another-ca");
        assert!(matches!(
            proxy.authenticate(Some(&client(&other, "front-proxy-client")), &claim),
            Err(Unauthenticated::UntrustedCertificate(_))
        ));
        assert!(matches!(
            proxy.authenticate(Some(&client(&ca, "someone-else")), &claim),
            Err(Unauthenticated::NameNotAllowed { .. })
        ));
        assert!(matches!(
            proxy.authenticate(Some(&client(&ca, "front-proxy-client")), &HeaderMap::new()),
            Err(Unauthenticated::NoUser(_))
        ));
    }

    #[test]
    fn an_api_server_without_the_aggregation_layer_is_named_as_the_cause() {
        let error = FrontProxy::from_data(&BTreeMap::new()).unwrap_err();
        assert!(error.to_string().contains("--requestheader-client-ca-file"), "{error}");
    }
}
