//! Verifying an agent's projected service-account token and reading who it names.

use std::{future::Future, pin::Pin, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chaperone_config::IdentityConfig;
use jsonwebtoken::{Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::jwks::{JwksCache, JwksError};

/// Tokens longer than this are refused before any parsing (projected tokens are ~1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Who an agent is, as its verified service-account token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentIdentity {
    /// The token's `sub`, `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
    /// The service account's uid.
    pub service_account_uid: String,
    /// The pod the token is bound to, when it is (projected volumes always are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// The token's `jti`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// When the token expires.
    #[serde(with = "time::serde::timestamp")]
    pub token_expires_at: OffsetDateTime,
}

/// A pod (or other object) by name and uid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// Why a token was refused. Messages name what to fix and never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWS compact serialization, or its header or claims are not JSON of the right shape.
    #[error("the web identity token is malformed: {0}")]
    Malformed(String),
    /// `alg` is not RS256 or ES256 (`none` and HMAC algorithms are always refused).
    #[error(
        "the web identity token is signed with {alg:?}; only RS256 and ES256 service-account \
         tokens are accepted"
    )]
    UnsupportedAlgorithm {
        /// The token's `alg`.
        alg: String,
    },
    /// The header has no `kid`.
    #[error("the web identity token's header has no kid, so no issuer key can verify it")]
    MissingKid,
    /// The issuer publishes no key with the token's kid.
    #[error(
        "the web identity token was signed by a key (kid {kid:?}) that the issuer {issuer} does \
         not publish; use a token the cluster's API server issued"
    )]
    UnknownKey {
        /// The token's kid.
        kid: String,
        /// The configured issuer.
        issuer: String,
    },
    /// The token's `alg` does not fit the key its kid names.
    #[error(
        "the web identity token says {alg:?} but the issuer's key {kid:?} is for {key_algorithm:?}"
    )]
    AlgorithmMismatch {
        /// The token's alg.
        alg: String,
        /// The kid.
        kid: String,
        /// What the key verifies.
        key_algorithm: String,
    },
    /// The signature does not verify.
    #[error("the web identity token's signature does not verify against the issuer's key {kid:?}")]
    BadSignature {
        /// The kid.
        kid: String,
    },
    /// `exp` (plus leeway) has passed.
    #[error(
        "the web identity token has expired; the kubelet refreshes projected tokens, so re-read \
         the token file"
    )]
    Expired,
    /// `nbf` (minus leeway) is still ahead.
    #[error("the web identity token is not valid yet (nbf is in the future); check the clocks")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error(
        "the web identity token's issuer is {found:?}, but this gateway trusts only {expected:?}"
    )]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// `aud` does not contain the configured audience.
    #[error(
        "the web identity token's audience is {found}, but this gateway requires {expected:?}; set \
         the projected service-account token volume's audience to {expected:?}"
    )]
    WrongAudience {
        /// The configured audience.
        expected: String,
        /// The token's `aud`, as JSON.
        found: String,
    },
    /// A required claim is absent.
    #[error("the web identity token has no {0:?} claim; use a Kubernetes service-account token")]
    MissingClaim(String),
    /// The `kubernetes.io` claims are absent or inconsistent with `sub`.
    #[error("the web identity token is not a Kubernetes service-account token: {0}")]
    NotAServiceAccountToken(String),
    /// The issuer's keys could not be fetched.
    #[error("the gateway could not fetch the issuer's signing keys: {0}")]
    IssuerUnavailable(#[source] JwksError),
    /// A TokenReview said the token is no longer valid (e.g. its pod was deleted).
    #[error("the API server no longer accepts the web identity token: {0}")]
    Revoked(String),
    /// The TokenReview could not be made.
    #[error("the gateway could not confirm the web identity token with the API server: {0}")]
    ReviewUnavailable(String),
}

/// What a TokenReview says about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenReviewOutcome {
    /// The API server authenticates it as `username`, bound to the pod with `pod_uid` if any.
    Authenticated {
        /// The authenticated user's name.
        username: String,
        /// `authentication.kubernetes.io/pod-uid`, when the token is bound to a pod.
        pod_uid: Option<String>,
    },
    /// The API server refuses it (e.g. the pod it is bound to no longer exists).
    Rejected {
        /// What the API server said.
        reason: String,
    },
}

/// A boxed future, as [`TokenReviewer`] returns (so the trait stays object-safe).
pub type ReviewFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TokenReviewOutcome, String>> + Send + 'a>>;

/// Confirms with the issuer that a token is still good (its pod still exists); optional, called
/// after the signature and claims verified.
pub trait TokenReviewer: std::fmt::Debug + Send + Sync {
    /// Reviews `token` for `audience`; `Err` means the review could not be made.
    fn review<'a>(&'a self, token: &'a str, audience: &'a str) -> ReviewFuture<'a>;
}

/// Verifies agents' projected service-account tokens against the issuer's JWKS.
#[derive(Debug)]
pub struct TokenValidator {
    jwks: Arc<JwksCache>,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    reviewer: Option<Arc<dyn TokenReviewer>>,
}

#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct ServiceAccountClaims {
    sub: String,
    exp: i64,
    jti: Option<String>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
}

#[derive(Deserialize)]
struct KubernetesClaims {
    namespace: Option<String>,
    serviceaccount: Option<PodRef>,
    pod: Option<PodRef>,
}

impl TokenValidator {
    /// A validator for `config`'s issuer and audience, using `jwks` for keys.
    pub fn new(config: &IdentityConfig, jwks: Arc<JwksCache>) -> Self {
        Self {
            jwks,
            issuer: config.source.issuer.clone(),
            audience: config.source.audience.clone(),
            leeway_seconds: config.source.leeway_seconds,
            reviewer: None,
        }
    }

    /// Also confirms every token with `reviewer` (a TokenReview) after it verified.
    pub fn with_reviewer(mut self, reviewer: Arc<dyn TokenReviewer>) -> Self {
        self.reviewer = Some(reviewer);
        self
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The issuer tokens must come from.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies `token` (signature, `iss`, `aud`, `exp`, `nbf`, the `kubernetes.io` claims, and
    /// the TokenReview if configured) and returns whom it names.
    pub async fn validate(&self, token: &str) -> Result<AgentIdentity, TokenError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "it is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header: UnverifiedHeader = decode_segment(token, 0, "header")?;
        let alg =
            header.alg.ok_or_else(|| TokenError::Malformed("its header has no alg".into()))?;
        if alg != "RS256" && alg != "ES256" {
            return Err(TokenError::UnsupportedAlgorithm { alg: shortened(&alg) });
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self.jwks.key(&kid).await.map_err(|e| match e {
            JwksError::UnknownKid { kid } => {
                TokenError::UnknownKey { kid: shortened(&kid), issuer: self.issuer.clone() }
            }
            other => TokenError::IssuerUnavailable(other),
        })?;
        let key_algorithm = format!("{:?}", key.algorithm);
        if key_algorithm != alg {
            return Err(TokenError::AlgorithmMismatch { alg, kid, key_algorithm });
        }

        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<ServiceAccountClaims>(token, &key.key, &validation)
            .map_err(|e| self.claim_error(token, &kid, e))?
            .claims;

        let identity = identity_from(claims)?;
        if let Some(reviewer) = &self.reviewer {
            self.confirm(reviewer.as_ref(), token, &identity).await?;
        }
        Ok(identity)
    }

    async fn confirm(
        &self,
        reviewer: &dyn TokenReviewer,
        token: &str,
        identity: &AgentIdentity,
    ) -> Result<(), TokenError> {
        match reviewer.review(token, &self.audience).await {
            Err(reason) => Err(TokenError::ReviewUnavailable(reason)),
            Ok(TokenReviewOutcome::Rejected { reason }) => Err(TokenError::Revoked(reason)),
            Ok(TokenReviewOutcome::Authenticated { username, pod_uid }) => {
                if username != identity.subject {
                    return Err(TokenError::Revoked(format!(
                        "the API server authenticates it as {username:?}, not {:?}",
                        identity.subject
                    )));
                }
                let expected_pod_uid = identity.pod.as_ref().map(|p| p.uid.as_str());
                if expected_pod_uid.is_some() && pod_uid.as_deref() != expected_pod_uid {
                    return Err(TokenError::Revoked(
                        "the API server binds it to another pod than the token names".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    fn claim_error(
        &self,
        token: &str,
        kid: &str,
        error: jsonwebtoken::errors::Error,
    ) -> TokenError {
        match error.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidSignature => TokenError::BadSignature { kid: kid.to_owned() },
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer {
                expected: self.issuer.clone(),
                found: shortened(
                    &unverified_claim(token, "iss")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
            },
            ErrorKind::InvalidAudience => TokenError::WrongAudience {
                expected: self.audience.clone(),
                found: shortened(
                    &unverified_claim(token, "aud").map(|v| v.to_string()).unwrap_or_default(),
                ),
            },
            ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                TokenError::UnsupportedAlgorithm {
                    alg: shortened(&unverified_header_alg(token).unwrap_or_default()),
                }
            }
            other => TokenError::Malformed(format!("{other:?}")),
        }
    }
}

fn identity_from(claims: ServiceAccountClaims) -> Result<AgentIdentity, TokenError> {
    let missing = |what: &str| TokenError::NotAServiceAccountToken(format!("it has no {what}"));
    let kubernetes = claims.kubernetes.ok_or_else(|| missing("\"kubernetes.io\" claim"))?;
    let namespace = kubernetes.namespace.ok_or_else(|| missing("kubernetes.io namespace"))?;
    let service_account =
        kubernetes.serviceaccount.ok_or_else(|| missing("kubernetes.io serviceaccount"))?;
    if namespace.is_empty() || service_account.name.is_empty() || service_account.uid.is_empty() {
        return Err(TokenError::NotAServiceAccountToken(
            "its kubernetes.io namespace, service account name or uid is empty".into(),
        ));
    }
    if kubernetes.pod.as_ref().is_some_and(|pod| pod.name.is_empty() || pod.uid.is_empty()) {
        return Err(TokenError::NotAServiceAccountToken(
            "its kubernetes.io pod has an empty name or uid".into(),
        ));
    }
    let expected_subject = format!("system:serviceaccount:{namespace}:{}", service_account.name);
    if claims.sub != expected_subject {
        return Err(TokenError::NotAServiceAccountToken(format!(
            "its sub {:?} does not match its kubernetes.io claims ({expected_subject:?})",
            claims.sub
        )));
    }
    let token_expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
        .map_err(|_| TokenError::Malformed("its exp is out of range".into()))?;
    Ok(AgentIdentity {
        subject: claims.sub,
        namespace,
        service_account: service_account.name,
        service_account_uid: service_account.uid,
        pod: kubernetes.pod,
        token_id: claims.jti,
        token_expires_at,
    })
}

fn decode_segment<T: serde::de::DeserializeOwned>(
    token: &str,
    index: usize,
    what: &str,
) -> Result<T, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(TokenError::Malformed(format!(
            "it has {} dot-separated parts, a signed JWT has 3",
            parts.len()
        )));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[index])
        .map_err(|_| TokenError::Malformed(format!("its {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("its {what} is not the expected JSON: {e}")))
}

/// Values from a token quoted in a refusal are cut to this many characters.
const MAX_QUOTED_CHARS: usize = 128;

/// `value`, cut to [`MAX_QUOTED_CHARS`] characters (a token's claims are the sender's to choose).
fn shortened(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// A claim read without verification, only to explain a refusal of a token whose signature verified.
fn unverified_claim(token: &str, name: &str) -> Option<serde_json::Value> {
    let claims: serde_json::Value = decode_segment(token, 1, "claims").ok()?;
    claims.get(name).cloned()
}

fn unverified_header_alg(token: &str) -> Option<String> {
    decode_segment::<UnverifiedHeader>(token, 0, "header").ok()?.alg
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{
        rand::SystemRandom,
        rsa::KeySize,
        signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair},
    };
    use jsonwebtoken::jwk::JwkSet;
    use serde_json::{Value, json};

    use super::*;

    const ISSUER: &str = "https://issuer.test";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs `header.claims` with whichever key the test made.
    enum TestKey {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
    }

    impl TestKey {
        fn rsa() -> Self {
            Self::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
        }

        fn ec() -> Self {
            Self::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
        }

        fn jwk(&self, kid: &str) -> Value {
            match self {
                Self::Rsa(key) => json!({
                    "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": b64(key.public_key().modulus().big_endian_without_leading_zero()),
                    "e": b64(key.public_key().exponent().big_endian_without_leading_zero()),
                }),
                Self::Ec(key) => {
                    let point = key.public_key().as_ref();
                    json!({
                        "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                    })
                }
            }
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            let signing_input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let signature = match self {
                Self::Rsa(key) => {
                    let mut signature = vec![0; key.public_modulus_len()];
                    key.sign(
                        &signature::RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        signing_input.as_bytes(),
                        &mut signature,
                    )
                    .unwrap();
                    signature
                }
                Self::Ec(key) => key
                    .sign(&SystemRandom::new(), signing_input.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
            };
            format!("{signing_input}.{}", b64(&signature))
        }
    }

    fn claims(exp_offset: i64) -> Value {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        json!({
            "iss": ISSUER, "aud": ["chaperone.dev"], "sub": "system:serviceaccount:team-a:pr-bot",
            "iat": now, "nbf": now, "exp": now + exp_offset, "jti": "j-1",
            "kubernetes.io": {
                "namespace": "team-a",
                "serviceaccount": {"name": "pr-bot", "uid": "sa-uid"},
                "pod": {"name": "pr-bot-0", "uid": "pod-uid"},
            },
        })
    }

    async fn validator(keys: &[(&str, &TestKey)]) -> TokenValidator {
        let config =
            IdentityConfig::new(chaperone_config::IdentitySource::for_issuer(ISSUER), "team-a");
        let jwks = JwksCache::new(&config).unwrap();
        let set: JwkSet = serde_json::from_value(
            json!({"keys": keys.iter().map(|(kid, key)| key.jwk(kid)).collect::<Vec<_>>()}),
        )
        .unwrap();
        jwks.preload(&set).await;
        TokenValidator::new(&config, Arc::new(jwks))
    }

    #[tokio::test]
    async fn an_rs256_token_verifies_against_the_issuers_rsa_key() {
        let key = TestKey::rsa();
        let validator = validator(&[("rsa-1", &key)]).await;
        let token = key.sign(&json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}), &claims(600));
        let identity = validator.validate(&token).await.unwrap();
        assert_eq!(identity.namespace, "team-a");
        assert_eq!(identity.service_account, "pr-bot");
        assert_eq!(identity.service_account_uid, "sa-uid");
        assert_eq!(identity.pod, Some(PodRef { name: "pr-bot-0".into(), uid: "pod-uid".into() }));
        assert_eq!(identity.token_id.as_deref(), Some("j-1"));
    }

    #[tokio::test]
    async fn an_es256_token_verifies_against_the_issuers_p256_key() {
        let key = TestKey::ec();
        let validator = validator(&[("ec-1", &key)]).await;
        let token = key.sign(&json!({"alg": "ES256", "kid": "ec-1"}), &claims(600));
        assert_eq!(validator.validate(&token).await.unwrap().service_account, "pr-bot");
    }

    #[tokio::test]
    async fn a_token_claiming_another_algorithm_than_its_keys_type_is_refused() {
        let rsa = TestKey::rsa();
        let ec = TestKey::ec();
        let validator = validator(&[("rsa-1", &rsa), ("ec-1", &ec)]).await;
        let token = ec.sign(&json!({"alg": "ES256", "kid": "rsa-1"}), &claims(600));
        let error = validator.validate(&token).await.unwrap_err();
        assert!(matches!(error, TokenError::AlgorithmMismatch { .. }), "{error}");
    }

    #[tokio::test]
    async fn hmac_and_none_algorithms_are_refused_before_any_key_is_looked_up() {
        let key = TestKey::ec();
        let validator = validator(&[("ec-1", &key)]).await;
        for alg in ["none", "HS256", "HS512", "ES384", "PS256"] {
            let header = b64(json!({"alg": alg, "kid": "ec-1"}).to_string().as_bytes());
            let payload = b64(claims(600).to_string().as_bytes());
            let token = format!("{header}.{payload}.{}", b64(b"signature"));
            let error = validator.validate(&token).await.unwrap_err();
            assert!(
                matches!(&error, TokenError::UnsupportedAlgorithm { alg: a } if a == alg),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn expiry_is_judged_with_the_configured_leeway() {
        let key = TestKey::ec();
        let validator = validator(&[("ec-1", &key)]).await;
        let header = json!({"alg": "ES256", "kid": "ec-1"});
        assert!(validator.validate(&key.sign(&header, &claims(-10))).await.is_ok());
        let error = validator.validate(&key.sign(&header, &claims(-120))).await.unwrap_err();
        assert!(matches!(error, TokenError::Expired), "{error}");
    }

    #[tokio::test]
    async fn a_token_without_kubernetes_claims_or_with_a_mismatched_subject_is_refused() {
        let key = TestKey::ec();
        let validator = validator(&[("ec-1", &key)]).await;
        let header = json!({"alg": "ES256", "kid": "ec-1"});
        let mut without = claims(600);
        without.as_object_mut().unwrap().remove("kubernetes.io");
        let mut mismatched = claims(600);
        mismatched["sub"] = json!("system:serviceaccount:team-a:admin");
        for claims in [without, mismatched] {
            let error = validator.validate(&key.sign(&header, &claims)).await.unwrap_err();
            assert!(matches!(error, TokenError::NotAServiceAccountToken(_)), "{error}");
        }
    }

    #[tokio::test]
    async fn a_wrong_audience_is_named_in_the_refusal() {
        let key = TestKey::ec();
        let validator = validator(&[("ec-1", &key)]).await;
        let mut claims = claims(600);
        claims["aud"] = json!(["sts.amazonaws.com"]);
        let token = key.sign(&json!({"alg": "ES256", "kid": "ec-1"}), &claims);
        let error = validator.validate(&token).await.unwrap_err().to_string();
        assert!(error.contains("sts.amazonaws.com") && error.contains("chaperone.dev"), "{error}");
        assert!(!error.contains(&token[..40]));
    }

    #[derive(Debug)]
    struct RefusingReviewer;

    impl TokenReviewer for RefusingReviewer {
        fn review<'a>(&'a self, _token: &'a str, _audience: &'a str) -> ReviewFuture<'a> {
            Box::pin(async {
                Ok(TokenReviewOutcome::Rejected { reason: "pod pr-bot-0 not found".into() })
            })
        }
    }

    #[tokio::test]
    async fn a_token_the_review_rejects_is_refused_even_though_it_verified() {
        let key = TestKey::ec();
        let validator =
            validator(&[("ec-1", &key)]).await.with_reviewer(Arc::new(RefusingReviewer));
        let token = key.sign(&json!({"alg": "ES256", "kid": "ec-1"}), &claims(600));
        let error = validator.validate(&token).await.unwrap_err();
        assert!(matches!(&error, TokenError::Revoked(r) if r.contains("not found")), "{error}");
    }
}
