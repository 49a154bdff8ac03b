//! The issuer's signing keys: OIDC discovery, a key cache, and a rate-limited refetch on an unknown kid.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use chaperone_config::IdentityConfig;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use rustls_platform_verifier::BuilderVerifierExt;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// At most one refetch of the JWKS per this interval, however many unknown kids arrive.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Fetched keys are fetched again on use once they are this old (so a key the issuer withdrew
/// stops verifying), unless the issuer cannot be reached.
pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(15 * 60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents and key sets larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Why the issuer's keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The CA bundle or bearer token file could not be read or used.
    #[error("cannot read {what} {path}: {reason}")]
    LocalFile {
        /// Which file (`CA bundle`, `bearer token file`).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the issuer: {0}")]
    Client(String),
    /// The issuer's discovery document or JWKS could not be fetched.
    #[error("fetching {url} failed: {reason}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// What went wrong (status, TLS, timeout).
        reason: String,
    },
    /// The discovery document names another issuer than the configured one.
    #[error(
        "the discovery document at {url} names issuer {found:?}, not the configured {expected:?}; \
         fix identity.issuer in the gateway configuration"
    )]
    IssuerMismatch {
        /// Where discovery was fetched.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The one the document names.
        found: String,
    },
    /// The document was not what OIDC discovery or a JWKS looks like.
    #[error("{url} did not answer a usable document: {reason}")]
    Malformed {
        /// What was fetched.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The last fetch failed moments ago; the next may be tried after the refetch interval.
    #[error("{reason}; the gateway asks the issuer again in {retry_in_seconds} s")]
    RecentFailure {
        /// Why the last fetch failed.
        reason: String,
        /// When the next fetch may be tried.
        retry_in_seconds: u64,
    },
    /// The token names a key the issuer does not publish (even after a refetch).
    #[error("the issuer publishes no key with kid {kid:?}")]
    UnknownKid {
        /// The kid the token names.
        kid: String,
    },
}

/// One of the issuer's public keys, with the only algorithm it may verify.
#[derive(Clone)]
pub struct VerificationKey {
    /// RS256 for an RSA key, ES256 for a P-256 key; nothing else is kept.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Where the JWKS comes from and how the fetch authenticates.
#[derive(Clone, Debug)]
struct JwksSource {
    issuer: String,
    jwks_uri: Option<String>,
    bearer_token_file: Option<PathBuf>,
}

#[derive(Default)]
struct CachedKeys {
    keys: HashMap<String, VerificationKey>,
    /// The JWKS URL discovery found (or the configured one).
    jwks_uri: Option<String>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
}

/// The last fetch attempt, successful or not: what rate-limits the next one.
struct FetchAttempt {
    at: Instant,
    failure: Option<String>,
}

/// The issuer's verification keys, fetched on first use, again when a token names an unknown
/// kid, and again on use once they are older than `max_key_age`; at most one fetch per
/// `min_refetch_interval` however many tokens arrive, so made-up kids cannot flood the issuer.
///
/// Only RS256 (RSA keys) and ES256 (P-256 keys) are kept; a JWK whose declared `alg` does not fit
/// its key type, or that is not for signatures, is skipped. When a refresh fails, the keys
/// already cached keep verifying.
pub struct JwksCache {
    source: JwksSource,
    http: reqwest::Client,
    cached: RwLock<CachedKeys>,
    last_attempt: Mutex<Option<FetchAttempt>>,
    min_refetch_interval: Duration,
    max_key_age: Duration,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("source", &self.source).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

impl JwksCache {
    /// A cache for the configured issuer; nothing is fetched until a key is asked for (or
    /// [`JwksCache::refresh`] is called).
    pub fn new(config: &IdentityConfig) -> Result<Self, JwksError> {
        let tls = tls_config(config.source.ca_file.as_deref().map(Path::new))?;
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| JwksError::Client(error_chain(&e)))?;
        Ok(Self {
            source: JwksSource {
                issuer: config.source.issuer.trim_end_matches('/').to_owned(),
                jwks_uri: config.source.jwks_uri.clone(),
                bearer_token_file: config.source.token_file.clone().map(PathBuf::from),
            },
            http,
            cached: RwLock::new(CachedKeys::default()),
            last_attempt: Mutex::new(None),
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            max_key_age: DEFAULT_MAX_KEY_AGE,
        })
    }

    /// Changes how often an unknown kid (or stale keys) may trigger a refetch.
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Changes how long fetched keys are used before they are fetched again.
    pub fn with_max_key_age(mut self, age: Duration) -> Self {
        self.max_key_age = age;
        self
    }

    /// The key with this kid: from the cache while it is fresh, else after a refetch if the last
    /// attempt is older than the refetch interval.
    pub async fn key(&self, kid: &str) -> Result<VerificationKey, JwksError> {
        if let Some(key) = self.fresh_key(kid).await {
            return Ok(key);
        }
        let mut last_attempt = self.last_attempt.lock().await;
        // Another caller may have fetched while this one waited for the lock.
        if let Some(key) = self.fresh_key(kid).await {
            return Ok(key);
        }
        let recent = last_attempt.as_ref().filter(|a| a.at.elapsed() < self.min_refetch_interval);
        let fetched = match recent {
            Some(FetchAttempt { failure: Some(reason), at }) => Err(JwksError::RecentFailure {
                reason: reason.clone(),
                retry_in_seconds: self.min_refetch_interval.saturating_sub(at.elapsed()).as_secs()
                    + 1,
            }),
            Some(FetchAttempt { failure: None, .. }) => Ok(()),
            None => {
                let result = self.fetch().await.map(|_| ());
                *last_attempt = Some(FetchAttempt {
                    at: Instant::now(),
                    failure: result.as_ref().err().map(ToString::to_string),
                });
                result
            }
        };
        drop(last_attempt);
        let cached_key = self.cached.read().await.keys.get(kid).cloned();
        match (cached_key, fetched) {
            (Some(key), Ok(())) => Ok(key),
            (Some(key), Err(error)) => {
                tracing::warn!(kid, error = %error, "refreshing the issuer's keys failed; using the cached ones");
                Ok(key)
            }
            (None, Ok(())) => Err(JwksError::UnknownKid { kid: kid.to_owned() }),
            (None, Err(error)) => Err(error),
        }
    }

    /// Fetches the JWKS now (e.g. at start-up, so readiness reflects whether the issuer answers),
    /// and returns how many usable keys it holds.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let mut last_attempt = self.last_attempt.lock().await;
        let result = self.fetch().await;
        *last_attempt = Some(FetchAttempt {
            at: Instant::now(),
            failure: result.as_ref().err().map(ToString::to_string),
        });
        result
    }

    async fn fresh_key(&self, kid: &str) -> Option<VerificationKey> {
        let cached = self.cached.read().await;
        let fresh = cached.fetched_at.is_some_and(|at| at.elapsed() < self.max_key_age);
        cached.keys.get(kid).filter(|_| fresh).cloned()
    }

    /// The kids currently cached.
    pub async fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.cached.read().await.keys.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// Puts `set`'s usable keys in the cache as if fetched (unit tests have no issuer to ask).
    #[cfg(test)]
    pub(crate) async fn preload(&self, set: &JwkSet) {
        let mut cached = self.cached.write().await;
        cached.keys = usable_keys(set);
        cached.fetched_at = Some(Instant::now());
    }

    async fn fetch(&self) -> Result<usize, JwksError> {
        let jwks_uri = match self.jwks_uri().await? {
            Some(uri) => uri,
            None => self.discover().await?,
        };
        let body = self.get(&jwks_uri).await?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| JwksError::Malformed {
            url: jwks_uri.clone(),
            reason: format!("not a JWK set: {e}"),
        })?;
        let keys = usable_keys(&set);
        let count = keys.len();
        tracing::info!(jwks_uri = %jwks_uri, keys = count, "fetched the issuer's signing keys");
        let mut cached = self.cached.write().await;
        cached.keys = keys;
        cached.jwks_uri = Some(jwks_uri);
        cached.fetched_at = Some(Instant::now());
        Ok(count)
    }

    async fn jwks_uri(&self) -> Result<Option<String>, JwksError> {
        if let Some(uri) = &self.source.jwks_uri {
            return Ok(Some(uri.clone()));
        }
        Ok(self.cached.read().await.jwks_uri.clone())
    }

    async fn discover(&self) -> Result<String, JwksError> {
        let url = format!("{}/.well-known/openid-configuration", self.source.issuer);
        let body = self.get(&url).await?;
        let document: DiscoveryDocument =
            serde_json::from_slice(&body).map_err(|e| JwksError::Malformed {
                url: url.clone(),
                reason: format!("not an OpenID discovery document: {e}"),
            })?;
        if document.issuer.trim_end_matches('/') != self.source.issuer {
            return Err(JwksError::IssuerMismatch {
                url,
                expected: self.source.issuer.clone(),
                found: document.issuer,
            });
        }
        Ok(document.jwks_uri)
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, JwksError> {
        let mut request = self.http.get(url);
        if let Some(path) = &self.source.bearer_token_file {
            let token =
                tokio::fs::read_to_string(path).await.map_err(|e| JwksError::LocalFile {
                    what: "bearer token file",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            request = request.bearer_auth(token.trim());
        }
        let fetch_error = |reason: String| JwksError::Fetch { url: url.to_owned(), reason };
        let response = request.send().await.map_err(|e| fetch_error(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 => "; the bearer token was not accepted (check identity.bearerTokenFile)",
                403 => {
                    "; the gateway's identity may not read it (bind it to the ClusterRole \
                     system:service-account-issuer-discovery)"
                }
                _ => "",
            };
            return Err(fetch_error(format!("HTTP {status}{hint}")));
        }
        if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(fetch_error(format!("the document exceeds {MAX_DOCUMENT_BYTES} bytes")));
        }
        let body = response.bytes().await.map_err(|e| fetch_error(error_chain(&e)))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(fetch_error(format!("the document exceeds {MAX_DOCUMENT_BYTES} bytes")));
        }
        Ok(body.to_vec())
    }
}

/// The keys of `set` that may verify tokens, by kid: RSA keys for RS256 and P-256 keys for ES256.
pub fn usable_keys(set: &JwkSet) -> HashMap<String, VerificationKey> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::debug!("skipping a JWK without kid");
            continue;
        };
        match verification_key(jwk) {
            Some(key) => {
                keys.insert(kid, key);
            }
            None => {
                tracing::debug!(kid = %kid, "skipping a JWK that is not an RS256 or ES256 signing key")
            }
        }
    }
    keys
}

/// The verification key of one JWK, if it is an RSA or P-256 signing key whose declared `alg`
/// (if any) fits its key type.
pub fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)))
    {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let declared_fits = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_fits {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerificationKey { algorithm, key })
}

/// TLS for the issuer: the configured CA bundle only, or the platform's roots; always the ring
/// provider, given explicitly so no process-wide default provider is needed.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, JwksError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JwksError::Client(e.to_string()))?;
    let Some(path) = ca_file else {
        return Ok(builder
            .with_platform_verifier()
            .map_err(|e| JwksError::Client(e.to_string()))?
            .with_no_client_auth());
    };
    let ca_error =
        |reason: String| JwksError::LocalFile { what: "CA bundle", path: path.to_owned(), reason };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| ca_error(format!("it is not a PEM bundle: {e}")))?;
        roots.add(cert).map_err(|e| ca_error(format!("a certificate in it is not usable: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ca_error("it holds no PEM certificate".into()));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `error` and its sources, `": "`-separated (reqwest names the cause only in its sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let chain = std::iter::successors(Some(error), |e| e.source());
    chain.map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: serde_json::Value) -> JwkSet {
        serde_json::from_value(serde_json::json!({ "keys": keys })).unwrap()
    }

    use std::{
        collections::HashMap as Routes,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// A plain-HTTP issuer on loopback whose answers the test changes and whose requests it counts.
    struct FakeIssuer {
        url: String,
        routes: Arc<std::sync::Mutex<Routes<String, (u16, String)>>>,
        requests: Arc<AtomicUsize>,
    }

    impl FakeIssuer {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let routes = Arc::new(std::sync::Mutex::new(Routes::<String, (u16, String)>::new()));
            let requests = Arc::new(AtomicUsize::new(0));
            let (served_routes, served_requests) = (routes.clone(), requests.clone());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    served_requests.fetch_add(1, Ordering::SeqCst);
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, body) = served_routes
                        .lock()
                        .unwrap()
                        .get(&path)
                        .cloned()
                        .unwrap_or((404, String::new()));
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
            Self { url, routes, requests }
        }

        fn serve(&self, path: &str, status: u16, body: serde_json::Value) {
            self.routes.lock().unwrap().insert(path.to_owned(), (status, body.to_string()));
        }

        fn publish(&self, kids: &[&str]) {
            let keys: Vec<_> = kids
                .iter()
                .map(|kid| serde_json::json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": P256_X, "y": P256_Y}))
                .collect();
            self.serve("/keys", 200, serde_json::json!({ "keys": keys }));
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }

        fn cache(&self) -> JwksCache {
            let config = IdentityConfig::new(
                chaperone_config::IdentitySource::for_issuer(&self.url),
                "team-a",
            );
            JwksCache::new(&config).unwrap()
        }
    }

    #[tokio::test]
    async fn keys_are_found_by_discovery_and_an_unknown_kid_refetches_at_most_once_per_interval() {
        let issuer = FakeIssuer::start().await;
        let discovery =
            serde_json::json!({"issuer": issuer.url, "jwks_uri": format!("{}/keys", issuer.url)});
        issuer.serve("/.well-known/openid-configuration", 200, discovery);
        issuer.publish(&["a"]);
        let cache = issuer.cache().with_min_refetch_interval(Duration::from_millis(300));

        assert_eq!(cache.key("a").await.unwrap().algorithm, Algorithm::ES256);
        assert_eq!(issuer.requests(), 2, "discovery, then the key set");

        issuer.publish(&["a", "b"]);
        for _ in 0..5 {
            assert!(matches!(cache.key("b").await, Err(JwksError::UnknownKid { .. })));
        }
        assert_eq!(issuer.requests(), 2, "unknown kids within the interval fetch nothing");

        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(cache.key("b").await.is_ok(), "after the interval an unknown kid refetches");
        assert_eq!(issuer.requests(), 3, "the discovered JWKS URL is remembered");
        assert_eq!(cache.kids().await, ["a", "b"]);
    }

    #[tokio::test]
    async fn stale_keys_are_fetched_again_and_a_withdrawn_key_stops_verifying() {
        let issuer = FakeIssuer::start().await;
        issuer.serve(
            "/.well-known/openid-configuration",
            200,
            serde_json::json!({"issuer": issuer.url, "jwks_uri": format!("{}/keys", issuer.url)}),
        );
        issuer.publish(&["old"]);
        let cache = issuer
            .cache()
            .with_min_refetch_interval(Duration::ZERO)
            .with_max_key_age(Duration::from_millis(100));
        assert!(cache.key("old").await.is_ok());
        issuer.publish(&["new"]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(matches!(cache.key("old").await, Err(JwksError::UnknownKid { .. })));
        assert!(cache.key("new").await.is_ok());
    }

    #[tokio::test]
    async fn a_failing_issuer_is_reported_and_not_asked_again_within_the_interval() {
        let issuer = FakeIssuer::start().await;
        issuer.serve("/.well-known/openid-configuration", 503, serde_json::json!({}));
        let cache = issuer.cache();
        let first = cache.key("a").await.unwrap_err();
        assert!(
            matches!(&first, JwksError::Fetch { reason, .. } if reason.contains("503")),
            "{first}"
        );
        let second = cache.key("a").await.unwrap_err();
        assert!(matches!(second, JwksError::RecentFailure { .. }), "{second}");
        assert_eq!(issuer.requests(), 1);
    }

    #[tokio::test]
    async fn a_discovery_document_naming_another_issuer_is_refused() {
        let issuer = FakeIssuer::start().await;
        issuer.serve(
            "/.well-known/openid-configuration",
            200,
            serde_json::json!({"issuer": "https://elsewhere.example", "jwks_uri": format!("{}/keys", issuer.url)}),
        );
        issuer.publish(&["a"]);
        let error = issuer.cache().refresh().await.unwrap_err();
        assert!(matches!(error, JwksError::IssuerMismatch { .. }), "{error}");
    }

    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn rsa_and_p256_keys_are_kept_with_the_one_algorithm_each_may_verify() {
        let keys = usable_keys(&set(serde_json::json!([
            {"kty": "RSA", "kid": "rsa", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": P256_X, "y": P256_Y},
        ])));
        assert_eq!(keys.get("rsa").map(|k| k.algorithm), Some(Algorithm::RS256));
        assert_eq!(keys.get("ec").map(|k| k.algorithm), Some(Algorithm::ES256));
    }

    #[test]
    fn a_key_whose_declared_alg_does_not_fit_its_type_is_skipped() {
        let keys = usable_keys(&set(serde_json::json!([
            {"kty": "EC", "kid": "ec-says-rs", "alg": "RS256", "crv": "P-256", "x": P256_X, "y": P256_Y},
            {"kty": "EC", "kid": "ec-says-hs", "alg": "HS256", "crv": "P-256", "x": P256_X, "y": P256_Y},
        ])));
        assert!(keys.is_empty(), "{:?}", keys.keys().collect::<Vec<_>>());
    }

    #[test]
    fn symmetric_and_encryption_keys_and_keys_without_kid_are_skipped() {
        let keys = usable_keys(&set(serde_json::json!([
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256", "x": P256_X, "y": P256_Y},
            {"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y},
        ])));
        assert!(keys.is_empty(), "{:?}", keys.keys().collect::<Vec<_>>());
    }
}
