//! [`SigV4Verifier`]: checks a request's SigV4 signature against a secret the caller looks up.

use chaperone_config::Redacted;
use http::HeaderMap;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, macros::format_description};

use super::authorization::{ClaimLocation, CredentialScope, SignatureClaim, parse_claim};
use super::canonical_request::{CanonicalRequest, RequestParts};
use super::chunked::{ChunkedPayloadVerifier, SignatureChain};
use super::error::SigV4Error;
use super::payload::{BodyHashVerifier, PayloadMode, UNSIGNED_PAYLOAD};
use super::signing_key::{SigningKey, sha256, signatures_match};
use super::uri_encoding::CanonicalPathRules;

/// How far a request's timestamp may be from the gateway's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(15);
/// The longest validity of a presigned URL: seven days.
pub const MAX_PRESIGNED_EXPIRES_SECONDS: i64 = 604_800;

/// The secret behind an access key id, and whatever the caller knows of its session.
#[derive(Debug)]
pub struct SessionSecret<S> {
    pub secret_access_key: Redacted<String>,
    pub session: S,
}

/// Why a [`SecretLookup`] refuses an access key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRejection {
    /// The access key id was not issued here.
    UnknownAccessKey,
    /// The session's credentials have expired; SDKs refresh on the resulting `ExpiredToken`.
    Expired { expired_at: Option<OffsetDateTime> },
    /// The session token is absent, malformed, or does not belong to the access key id.
    InvalidToken { reason: String },
}

/// Finds the secret access key of an access key id. The gateway implements it by deriving the
/// secret from its key and checking the session token, so any replica can verify any request.
///
/// Any `Fn(&str, Option<&str>, OffsetDateTime) -> Result<SessionSecret<S>, CredentialRejection>`
/// is a lookup.
pub trait SecretLookup {
    /// What the caller keeps of the session (for example the agent's identity from the token).
    type Session;

    /// The secret for `access_key_id`, given the request's session token at `now`.
    fn lookup(
        &self,
        access_key_id: &str,
        security_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<SessionSecret<Self::Session>, CredentialRejection>;
}

impl<F, S> SecretLookup for F
where
    F: Fn(&str, Option<&str>, OffsetDateTime) -> Result<SessionSecret<S>, CredentialRejection>,
{
    type Session = S;

    fn lookup(
        &self,
        access_key_id: &str,
        security_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<SessionSecret<S>, CredentialRejection> {
        self(access_key_id, security_token, now)
    }
}

/// Where the verified signature travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureLocation {
    AuthorizationHeader,
    PresignedUrl { expires_at: OffsetDateTime },
}

/// A request whose signature verified.
#[derive(Debug)]
pub struct VerifiedRequest<S> {
    pub scope: CredentialScope,
    /// The signed header names, lower-case, in the client's order. Headers not listed here are
    /// not covered by the signature: forward only these as trusted.
    pub signed_headers: Vec<String>,
    pub payload: PayloadMode,
    pub security_token: Option<String>,
    /// Whether the session token is covered by the signature (presigned query, or a signed
    /// `x-amz-security-token` header).
    pub security_token_signed: bool,
    pub location: SignatureLocation,
    /// The request's signing time (`X-Amz-Date` or `Date`).
    pub request_time: OffsetDateTime,
    pub session: S,
    chain: SignatureChain,
    decoded_content_length: Option<u64>,
    declared_trailers: Vec<String>,
}

impl<S> VerifiedRequest<S> {
    /// A request verified by a SigV2 presigned URL: no chunked body, payload unsigned.
    pub(super) fn from_sigv2_presigned(
        scope: CredentialScope,
        signed_headers: Vec<String>,
        security_token: Option<String>,
        location: SignatureLocation,
        request_time: OffsetDateTime,
        session: S,
    ) -> Self {
        let chain = SignatureChain {
            // Never used: a SigV2 presigned request has no signed chunks.
            key: SigningKey::derive("", &scope.date, &scope.region, &scope.service),
            amz_date: String::new(),
            scope_line: scope.scope_line(),
            previous: [0; 32],
        };
        Self {
            scope,
            signed_headers,
            payload: PayloadMode::Unsigned,
            security_token_signed: security_token.is_some(),
            security_token,
            location,
            request_time,
            session,
            chain,
            decoded_content_length: None,
            declared_trailers: Vec::new(),
        }
    }

    /// Whether `name` (any case) is one of the signed headers.
    pub fn is_header_signed(&self, name: &str) -> bool {
        self.signed_headers.iter().any(|signed| signed.eq_ignore_ascii_case(name))
    }

    /// For [`PayloadMode::Sha256`], the check to run over the body as it streams.
    pub fn body_hash_verifier(&self) -> Option<BodyHashVerifier> {
        match self.payload {
            PayloadMode::Sha256 { expected } => Some(BodyHashVerifier::new(expected)),
            _ => None,
        }
    }

    /// For the aws-chunked modes, the decoder that yields verified body bytes.
    pub fn chunked_payload_verifier(&self) -> Option<ChunkedPayloadVerifier> {
        let (chain, trailer) = match self.payload {
            PayloadMode::StreamingSigned { trailer } => (Some(self.chain.clone()), trailer),
            PayloadMode::StreamingUnsignedTrailer => (None, true),
            _ => return None,
        };
        Some(ChunkedPayloadVerifier::new(
            chain,
            trailer,
            self.declared_trailers.clone(),
            self.decoded_content_length,
        ))
    }
}

/// The outcome of [`SigV4Verifier::verify`].
#[derive(Debug)]
pub enum Verification<S> {
    Verified(VerifiedRequest<S>),
    /// The signature covers the body's SHA-256 but the request did not send it in
    /// `x-amz-content-sha256` (usual outside S3): hash the body, then call
    /// [`PendingBodyHash::finish`].
    BodyHashRequired(PendingBodyHash<S>),
}

/// A request whose signature can be checked once the body's SHA-256 is known.
#[derive(Debug)]
pub struct PendingBodyHash<S> {
    request: VerifiedRequest<S>,
    canonical_request: CanonicalRequest,
    amz_date: String,
    provided: [u8; 32],
}

impl<S> PendingBodyHash<S> {
    /// Checks the signature over the body whose SHA-256 is `body_sha256`.
    pub fn finish(mut self, body_sha256: [u8; 32]) -> Result<VerifiedRequest<S>, SigV4Error> {
        self.canonical_request.payload_hash = chaperone_recording::lower_hex(body_sha256);
        check_signature(
            &self.canonical_request,
            &self.amz_date,
            &self.request.scope,
            &self.request.chain.key,
            &self.provided,
        )?;
        Ok(self.request)
    }

    /// Checks the signature over `body`, the whole body.
    pub fn finish_with_body(self, body: &[u8]) -> Result<VerifiedRequest<S>, SigV4Error> {
        self.finish(sha256(body))
    }
}

/// Verifies SigV4 (AWS4-HMAC-SHA256) signatures, in the Authorization header or a presigned
/// URL, over the request exactly as it arrived. Pure: no I/O, the clock is an argument.
pub struct SigV4Verifier<L> {
    lookup: L,
    path_rules: fn(&str) -> CanonicalPathRules,
}

impl<L: SecretLookup> SigV4Verifier<L> {
    pub fn new(lookup: L) -> Self {
        Self { lookup, path_rules: CanonicalPathRules::for_service }
    }

    /// Replaces the per-service path rules (default: [`CanonicalPathRules::for_service`]).
    pub fn with_path_rules(mut self, rules: fn(&str) -> CanonicalPathRules) -> Self {
        self.path_rules = rules;
        self
    }

    /// Verifies `request`'s signature at `now`.
    pub fn verify(
        &self,
        request: &RequestParts<'_>,
        now: OffsetDateTime,
    ) -> Result<Verification<L::Session>, SigV4Error> {
        let claim = parse_claim(request.headers, request.raw_query)?;
        if !claim.signed_headers.iter().any(|name| name == "host") {
            return Err(SigV4Error::SignedHeaderMissing {
                detail: format!("SignedHeaders {:?} must include host", claim.signed_headers_line),
            });
        }
        let (amz_date, request_time, location) = check_time(&claim, request.headers, now)?;
        let request_day = amz_date.get(..8).unwrap_or_default();
        if claim.scope.date != request_day {
            return Err(SigV4Error::ScopeDateMismatch {
                scope_date: claim.scope.date.clone(),
                request_date: request_day.to_owned(),
            });
        }

        let (security_token, security_token_signed) = security_token(&claim, request.headers)?;
        let secret = self
            .lookup
            .lookup(&claim.scope.access_key_id, security_token.as_deref(), now)
            .map_err(|rejection| rejection_error(rejection, &claim.scope.access_key_id))?;
        let key = SigningKey::derive(
            &secret.secret_access_key,
            &claim.scope.date,
            &claim.scope.region,
            &claim.scope.service,
        );

        let presigned = matches!(claim.location, ClaimLocation::Query { .. });
        let payload = payload_binding(request.headers, presigned, &claim.scope.service)?;

        let canonical_request = CanonicalRequest::build(
            request,
            &claim.signed_headers_line,
            &claim.signed_headers,
            (self.path_rules)(&claim.scope.service),
            presigned.then_some("X-Amz-Signature"),
            payload.as_ref().map(|(_, literal)| literal.clone()).unwrap_or_default(),
        )?;

        let (decoded_content_length, declared_trailers) = streaming_headers(request.headers)?;

        let verified = VerifiedRequest {
            signed_headers: claim.signed_headers,
            payload: payload.as_ref().map_or(PayloadMode::BodyHashVerified, |(mode, _)| *mode),
            security_token,
            security_token_signed,
            location,
            request_time,
            session: secret.session,
            chain: SignatureChain {
                key,
                amz_date: amz_date.clone(),
                scope_line: claim.scope.scope_line(),
                previous: claim.signature,
            },
            scope: claim.scope,
            decoded_content_length,
            declared_trailers,
        };
        if payload.is_none() {
            return Ok(Verification::BodyHashRequired(PendingBodyHash {
                request: verified,
                canonical_request,
                amz_date,
                provided: claim.signature,
            }));
        }
        check_signature(
            &canonical_request,
            &amz_date,
            &verified.scope,
            &verified.chain.key,
            &claim.signature,
        )?;
        Ok(Verification::Verified(verified))
    }
}

/// The session token (presigned query first, then header) and whether the signature covers it.
fn security_token(
    claim: &SignatureClaim,
    headers: &HeaderMap,
) -> Result<(Option<String>, bool), SigV4Error> {
    let header_token = single_header(headers, "x-amz-security-token")?;
    Ok(match (&claim.query_security_token, header_token) {
        (Some(token), _) => (Some(token.clone()), true),
        (None, Some(token)) => (
            Some(token.to_owned()),
            claim.signed_headers.iter().any(|n| n == "x-amz-security-token"),
        ),
        (None, None) => (None, false),
    })
}

fn rejection_error(rejection: CredentialRejection, access_key_id: &str) -> SigV4Error {
    match rejection {
        CredentialRejection::UnknownAccessKey => {
            SigV4Error::InvalidAccessKeyId { access_key_id: access_key_id.to_owned() }
        }
        CredentialRejection::Expired { expired_at } => SigV4Error::ExpiredToken { expired_at },
        CredentialRejection::InvalidToken { reason } => SigV4Error::InvalidToken { reason },
    }
}

/// How the body is bound to the signature: the payload mode and the literal that ends the
/// canonical request, or `None` when the body's own hash must be computed.
fn payload_binding(
    headers: &HeaderMap,
    presigned: bool,
    service: &str,
) -> Result<Option<(PayloadMode, String)>, SigV4Error> {
    match single_header(headers, "x-amz-content-sha256")? {
        Some(value) => Ok(Some((PayloadMode::from_content_sha256(value)?, value.to_owned()))),
        None if presigned && service == "s3" => {
            Ok(Some((PayloadMode::Unsigned, UNSIGNED_PAYLOAD.to_owned())))
        }
        None if service == "s3" => Err(SigV4Error::MissingContentSha256),
        None => Ok(None),
    }
}

/// `x-amz-decoded-content-length` and the trailer names declared in `x-amz-trailer`, which an
/// aws-chunked body is checked against.
fn streaming_headers(headers: &HeaderMap) -> Result<(Option<u64>, Vec<String>), SigV4Error> {
    let decoded_content_length = single_header(headers, "x-amz-decoded-content-length")?
        .map(|value| {
            value.trim().parse::<u64>().map_err(|_| SigV4Error::IncompleteBody {
                detail: format!("x-amz-decoded-content-length {value:?} is not a byte count"),
            })
        })
        .transpose()?;
    let declared_trailers = headers
        .get_all("x-amz-trailer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    Ok((decoded_content_length, declared_trailers))
}

fn check_signature(
    canonical_request: &CanonicalRequest,
    amz_date: &str,
    scope: &CredentialScope,
    key: &SigningKey,
    provided: &[u8; 32],
) -> Result<(), SigV4Error> {
    let string_to_sign = canonical_request.string_to_sign(amz_date, &scope.scope_line());
    let computed = key.sign(string_to_sign.as_bytes());
    if signatures_match(&computed, provided) {
        Ok(())
    } else {
        Err(SigV4Error::SignatureDoesNotMatch {
            canonical_request: canonical_request.to_redacted_string(),
            string_to_sign,
        })
    }
}

/// The value of a header that may appear at most once, as text.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, SigV4Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SigV4Error::DuplicateHeader { name: name.to_owned() });
    }
    first.to_str().map(Some).map_err(|_| SigV4Error::MalformedAuthorization {
        location: "Authorization header",
        detail: format!("header {name} is not visible ASCII"),
    })
}

/// Parses `X-Amz-Date`'s ISO 8601 basic form, `20150830T123600Z`.
fn parse_amz_date(value: &str) -> Result<OffsetDateTime, SigV4Error> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| SigV4Error::InvalidDate { value: value.to_owned() })
}

/// Parses an HTTP `Date` (IMF-fixdate, `Sun, 30 Aug 2015 12:36:00 GMT`).
fn parse_http_date(value: &str) -> Result<OffsetDateTime, SigV4Error> {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(value.trim(), format)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| SigV4Error::InvalidDate { value: value.to_owned() })
}

fn format_amz_date(time: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// Reads the signing time and checks it against `now`: ±15 minutes for a signed header, and
/// not yet expired (nor more than 15 minutes early) for a presigned URL.
fn check_time(
    claim: &SignatureClaim,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Result<(String, OffsetDateTime, SignatureLocation), SigV4Error> {
    let too_skewed = |request_time| SigV4Error::RequestTimeTooSkewed {
        request_time,
        server_time: now,
        max_skew_minutes: MAX_CLOCK_SKEW.whole_minutes(),
    };
    match &claim.location {
        ClaimLocation::Header => {
            let (amz_date, request_time) = match single_header(headers, "x-amz-date")? {
                Some(value) => (value.to_owned(), parse_amz_date(value)?),
                None => match single_header(headers, "date")? {
                    Some(value) => {
                        let time = parse_http_date(value)?;
                        (format_amz_date(time), time)
                    }
                    None => {
                        return Err(SigV4Error::IncompleteSignature {
                            missing: "the X-Amz-Date (or Date) header".to_owned(),
                        });
                    }
                },
            };
            if (request_time - now).abs() > MAX_CLOCK_SKEW {
                return Err(too_skewed(request_time));
            }
            Ok((amz_date, request_time, SignatureLocation::AuthorizationHeader))
        }
        ClaimLocation::Query { amz_date, expires } => {
            let request_time = parse_amz_date(amz_date)?;
            let seconds = expires
                .parse::<i64>()
                .ok()
                .filter(|s| (1..=MAX_PRESIGNED_EXPIRES_SECONDS).contains(s))
                .ok_or_else(|| SigV4Error::InvalidExpires { value: expires.clone() })?;
            if request_time - now > MAX_CLOCK_SKEW {
                return Err(too_skewed(request_time));
            }
            let expires_at = request_time + Duration::seconds(seconds);
            if now > expires_at {
                return Err(SigV4Error::PresignedUrlExpired { expired_at: expires_at, now });
            }
            Ok((amz_date.clone(), request_time, SignatureLocation::PresignedUrl { expires_at }))
        }
    }
}
