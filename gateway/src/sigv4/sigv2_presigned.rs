//! S3's SigV2 query-string presigned URLs (`AWSAccessKeyId=…&Expires=…&Signature=…`), which
//! boto3 and the AWS CLI produce by default, verified into the same [`VerifiedRequest`] a SigV4
//! signature yields.
//!
//! The string to sign is S3's (RESTAuthentication, "Query string request authentication"):
//!
//! ```text
//! HTTP-Verb \n Content-MD5 \n Content-Type \n Expires \n CanonicalizedAmzHeaders CanonicalizedResource
//! ```
//!
//! signed with HMAC-SHA1 under the session's secret access key. The signature covers less than
//! SigV4's: not the host, and of the query only the S3 sub-resources and `response-*` overrides.
//! So the verifier refuses every other query parameter, and what the gateway forwards
//! ([`SigV2Presigned::forward_query`]) is the covered parameters alone; the headers it lists as
//! signed are the ones in the string to sign. Anything else signed with SigV2 (an `AWS ...`
//! Authorization header, `SignatureVersion=2` query signing of other services) stays refused.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha1::Sha1;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use super::error::SigV4Error;
use super::verifier::{
    CredentialRejection, MAX_PRESIGNED_EXPIRES_SECONDS, SecretLookup, SignatureLocation,
    VerifiedRequest,
};
use super::{CredentialScope, RequestParts};

/// The query parameters that carry a SigV2 presigned signature.
const SIGNATURE_PARAMS: [&str; 3] = ["AWSAccessKeyId", "Expires", "Signature"];
/// The session token travels as this (signed) parameter.
const SECURITY_TOKEN: &str = "x-amz-security-token";

/// The query parameters S3 puts in the string to sign: its sub-resources and the `response-*`
/// overrides (the list botocore signs, a superset of the one in S3's documentation).
pub const SIGNED_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Whether `raw_query` carries a SigV2 query signature (`AWSAccessKeyId` and `Signature`), as
/// opposed to SigV4's `X-Amz-*` parameters.
pub fn is_sigv2_presigned(raw_query: &str) -> bool {
    let mut access_key = false;
    let mut signature = false;
    for piece in raw_query.split('&') {
        let name = piece.split_once('=').map_or(piece, |(name, _)| name);
        access_key |= name == "AWSAccessKeyId";
        signature |= name == "Signature";
        if name.eq_ignore_ascii_case("X-Amz-Algorithm") {
            return false;
        }
    }
    access_key && signature
}

/// A verified SigV2 presigned request.
#[derive(Debug)]
pub struct SigV2Presigned<S> {
    /// The verified request: service `s3`, the region the caller chose, payload unsigned, the
    /// signed headers those of the string to sign.
    pub verified: VerifiedRequest<S>,
    /// The query to classify, record and forward: the covered parameters, as sent, without the
    /// signature, access key id, expiry and session token.
    pub forward_query: String,
    /// The string to sign the signature verified over.
    pub string_to_sign: String,
}

/// Verifies S3 SigV2 query-string presigned URLs. Pure: no I/O, the clock is an argument.
pub struct SigV2PresignedVerifier<'a, L: SecretLookup> {
    lookup: L,
    region: SessionFn<'a, L::Session, String>,
    session_expiry: SessionFn<'a, L::Session, Option<OffsetDateTime>>,
}

/// Something the caller reads off a session.
type SessionFn<'a, S, T> = Box<dyn Fn(&S) -> T + 'a>;

struct Param<'q> {
    raw: &'q str,
    name: &'q str,
    value: Option<String>,
}

impl<'a, L: SecretLookup> SigV2PresignedVerifier<'a, L> {
    /// `region` names the region the call goes to upstream (SigV2 carries none);
    /// `session_expiry` bounds the URL's validity by its session's.
    pub fn new(
        lookup: L,
        region: impl Fn(&L::Session) -> String + 'a,
        session_expiry: impl Fn(&L::Session) -> Option<OffsetDateTime> + 'a,
    ) -> Self {
        Self { lookup, region: Box::new(region), session_expiry: Box::new(session_expiry) }
    }

    /// Verifies `request` at `now`. `virtual_host_bucket` is the bucket named by the Host header
    /// when the request is virtual-host style (its path then lacks the bucket the signature
    /// covers).
    pub fn verify(
        &self,
        request: &RequestParts<'_>,
        virtual_host_bucket: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<SigV2Presigned<L::Session>, SigV4Error> {
        if request.headers.contains_key(http::header::AUTHORIZATION) {
            return Err(malformed(
                "the request carries both an Authorization header and a SigV2 presigned query; send only one".into(),
            ));
        }
        let params = parse_query(request.raw_query)?;
        let single = |name: &str| single_param(&params, name);
        if let Some(p) = params.iter().find(|p| {
            p.name == "SignatureVersion" || p.name == "SignatureMethod" || p.name == "Timestamp"
        }) {
            return Err(SigV4Error::UnsupportedAlgorithm {
                algorithm: format!("SigV2 query signing ({})", p.name),
            });
        }
        let access_key_id = single("AWSAccessKeyId")?.unwrap_or_default().to_owned();
        let signature_text = single("Signature")?.unwrap_or_default().to_owned();
        let expires_text = single("Expires")?
            .ok_or_else(|| SigV4Error::IncompleteSignature {
                missing: "the Expires parameter of the SigV2 presigned URL".into(),
            })?
            .to_owned();
        let token = single(SECURITY_TOKEN)?.map(str::to_owned);
        if access_key_id.is_empty() {
            return Err(malformed("AWSAccessKeyId is empty".into()));
        }

        // Every other parameter must be covered by the signature.
        let mut query_headers: Vec<(&str, &str)> = Vec::new();
        let mut forwarded: Vec<&str> = Vec::new();
        let mut subresources: Vec<(&str, Option<&str>)> = Vec::new();
        for param in &params {
            if SIGNATURE_PARAMS.contains(&param.name) || param.name == SECURITY_TOKEN {
                continue;
            }
            if SIGNED_SUBRESOURCES.contains(&param.name) {
                forwarded.push(param.raw);
                subresources.push((param.name, param.value.as_deref()));
            } else if param.name == "content-type" || param.name == "content-md5" {
                query_headers.push((param.name, param.value.as_deref().unwrap_or("")));
            } else {
                return Err(SigV4Error::UnsignedQueryParameter { name: param.name.to_owned() });
            }
        }

        let expires_at = parse_expires(&expires_text, now)?;
        if now > expires_at {
            return Err(SigV4Error::PresignedUrlExpired { expired_at: expires_at, now });
        }

        let secret =
            self.lookup.lookup(&access_key_id, token.as_deref(), now).map_err(|rejection| {
                match rejection {
                    CredentialRejection::UnknownAccessKey => {
                        SigV4Error::InvalidAccessKeyId { access_key_id: access_key_id.clone() }
                    }
                    CredentialRejection::Expired { expired_at } => {
                        SigV4Error::ExpiredToken { expired_at }
                    }
                    CredentialRejection::InvalidToken { reason } => {
                        SigV4Error::InvalidToken { reason }
                    }
                }
            })?;

        let (content_md5, content_type, amz_headers, signed_headers) =
            canonical_headers(request.headers, &query_headers, token.as_deref())?;
        let mut string_to_sign = format!(
            "{}\n{content_md5}\n{content_type}\n{expires_text}\n{amz_headers}",
            request.method
        );
        if let Some(bucket) = virtual_host_bucket {
            string_to_sign.push('/');
            string_to_sign.push_str(bucket);
        }
        string_to_sign.push_str(request.raw_path);
        subresources.sort_by_key(|(name, _)| *name);
        for (index, (name, value)) in subresources.iter().enumerate() {
            string_to_sign.push(if index == 0 { '?' } else { '&' });
            string_to_sign.push_str(name);
            if let Some(value) = value {
                string_to_sign.push('=');
                string_to_sign.push_str(value);
            }
        }

        let provided = decode_signature(&signature_text)?;
        let computed = hmac_sha1(secret.secret_access_key.as_bytes(), string_to_sign.as_bytes());
        if !bool::from(computed.ct_eq(&provided)) {
            return Err(SigV4Error::SignatureDoesNotMatch {
                canonical_request: String::new(),
                string_to_sign,
            });
        }

        let expires_at = match (self.session_expiry)(&secret.session) {
            Some(session_end) if session_end < expires_at => session_end,
            _ => expires_at,
        };
        let region = (self.region)(&secret.session);
        let date = now.date();
        let verified = VerifiedRequest::from_sigv2_presigned(
            CredentialScope {
                access_key_id,
                date: format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day()),
                region,
                service: "s3".into(),
            },
            signed_headers,
            token,
            SignatureLocation::PresignedUrl { expires_at },
            now,
            secret.session,
        );
        Ok(SigV2Presigned { verified, forward_query: forwarded.join("&"), string_to_sign })
    }
}

fn malformed(detail: String) -> SigV4Error {
    SigV4Error::MalformedAuthorization { location: "presigned query", detail }
}

/// The value of a parameter that may appear at most once (`""` when it has none).
fn single_param<'p>(params: &'p [Param<'_>], name: &str) -> Result<Option<&'p str>, SigV4Error> {
    let mut found = params.iter().filter(|p| p.name == name);
    let first = found.next();
    if found.next().is_some() {
        return Err(malformed(format!("parameter {name} appears more than once")));
    }
    Ok(first.map(|p| p.value.as_deref().unwrap_or("")))
}

fn parse_query(raw_query: &str) -> Result<Vec<Param<'_>>, SigV4Error> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|raw| {
            let (name, value) = match raw.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (raw, None),
            };
            let value = value
                .map(|value| {
                    percent_decode(value).ok_or_else(|| {
                        malformed(format!("the value of parameter {name} is not UTF-8"))
                    })
                })
                .transpose()?;
            Ok(Param { raw, name, value })
        })
        .collect()
}

/// Decodes `%XX` escapes (a stray `%` stays literal; `+` stays `+`, as S3 and botocore sign it).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `Expires`: Unix seconds, at most seven days from `now`.
fn parse_expires(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, SigV4Error> {
    let invalid = || SigV4Error::InvalidSigV2Expires { value: text.to_owned() };
    let seconds = text.parse::<i64>().map_err(|_| invalid())?;
    let expires_at = OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| invalid())?;
    if expires_at - now > Duration::seconds(MAX_PRESIGNED_EXPIRES_SECONDS) {
        return Err(invalid());
    }
    Ok(expires_at)
}

type CanonicalHeaders = (String, String, String, Vec<String>);

/// Content-MD5, Content-Type, the CanonicalizedAmzHeaders block, and the names of the headers
/// they came from (the request's signed headers).
fn canonical_headers(
    headers: &HeaderMap,
    query_headers: &[(&str, &str)],
    token: Option<&str>,
) -> Result<CanonicalHeaders, SigV4Error> {
    let mut signed = Vec::new();
    let mut standard = |name: &str| -> Result<String, SigV4Error> {
        let header = header_value(headers, name)?;
        let query = query_headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        if let (Some(query), Some(header)) = (query, &header)
            && query.trim() != header.trim()
        {
            return Err(malformed(format!(
                "the URL was presigned for {name} {query:?} but the request sends {header:?}: send the {name} the URL was presigned with"
            )));
        }
        if query.is_some() && header.is_none() {
            return Err(malformed(format!(
                "the URL was presigned for a {name} header: send {name}: {:?}",
                query.unwrap_or_default()
            )));
        }
        if header.is_some() {
            signed.push(name.to_owned());
        }
        Ok(header.map(|v| v.trim().to_owned()).unwrap_or_default())
    };
    let content_md5 = standard("content-md5")?;
    let content_type = standard("content-type")?;

    let mut amz: Vec<(String, String)> = Vec::new();
    for name in headers.keys() {
        let name = name.as_str();
        if !name.starts_with("x-amz-") {
            continue;
        }
        if name == SECURITY_TOKEN && token.is_some() {
            return Err(SigV4Error::DuplicateHeader { name: SECURITY_TOKEN.into() });
        }
        let values: Result<Vec<String>, SigV4Error> = headers
            .get_all(name)
            .iter()
            .map(|value| {
                value
                    .to_str()
                    .map(|v| v.trim().to_owned())
                    .map_err(|_| malformed(format!("header {name} is not visible ASCII")))
            })
            .collect();
        amz.push((name.to_owned(), values?.join(",")));
        signed.push(name.to_owned());
    }
    if let Some(token) = token {
        amz.push((SECURITY_TOKEN.into(), token.trim().to_owned()));
    }
    amz.sort();
    let amz_headers: String = amz.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
    Ok((content_md5, content_type, amz_headers, signed))
}

fn header_value(headers: &HeaderMap, name: &str) -> Result<Option<String>, SigV4Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SigV4Error::DuplicateHeader { name: name.to_owned() });
    }
    first
        .to_str()
        .map(|v| Some(v.to_owned()))
        .map_err(|_| malformed(format!("header {name} is not visible ASCII")))
}

fn decode_signature(text: &str) -> Result<[u8; 20], SigV4Error> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| malformed("Signature must be the base64 of a 20-byte HMAC-SHA1".into()))?;
    <[u8; 20]>::try_from(bytes.as_slice())
        .map_err(|_| malformed("Signature must be the base64 of a 20-byte HMAC-SHA1".into()))
}

/// HMAC-SHA1. The key is brought to the block size here (hashed when longer, zero-padded), as
/// HMAC does itself, so the infallible constructor applies.
fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha1> as KeyInit>::new(&block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use time::macros::datetime;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const NOW: OffsetDateTime = datetime!(2026-12-03 20:00:00 UTC);

    type TestLookup = fn(
        &str,
        Option<&str>,
        OffsetDateTime,
    ) -> Result<super::super::SessionSecret<()>, CredentialRejection>;

    fn verifier() -> SigV2PresignedVerifier<'static, TestLookup> {
        let lookup: TestLookup = |key, token, _now| {
            if key != "ASIAEXAMPLE" {
                return Err(CredentialRejection::UnknownAccessKey);
            }
            if token != Some("the-token") {
                return Err(CredentialRejection::InvalidToken { reason: "wrong token".into() });
            }
            Ok(super::super::SessionSecret {
                secret_access_key: chaperone_config::Redacted(SECRET.into()),
                session: (),
            })
        };
        SigV2PresignedVerifier::new(
            lookup,
            |_| "us-east-1".to_owned(),
            |_| Some(NOW + Duration::hours(1)),
        )
    }

    fn sign(secret: &str, string_to_sign: &str) -> String {
        let mac = hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(mac);
        b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
    }

    fn presigned_query(method: &str, path: &str, expires: i64, extra: &str) -> String {
        let string_to_sign =
            format!("{method}\n\n\n{expires}\nx-amz-security-token:the-token\n{path}");
        format!(
            "{extra}AWSAccessKeyId=ASIAEXAMPLE&Signature={}&Expires={expires}&x-amz-security-token=the-token",
            sign(SECRET, &string_to_sign)
        )
    }

    fn verify(method: &str, path: &str, query: &str) -> Result<SigV2Presigned<()>, SigV4Error> {
        let headers = HeaderMap::new();
        let request = RequestParts { method, raw_path: path, raw_query: query, headers: &headers };
        verifier().verify(&request, None, NOW)
    }

    fn expires_in(seconds: i64) -> i64 {
        (NOW + Duration::seconds(seconds)).unix_timestamp()
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn botocores_signatures_are_reproduced() {
        // Signatures botocore 1.43 put in presigned URLs (secret "x", token "tok"): a GET and an
        // UploadPart, whose sub-resources are signed sorted and percent-decoded.
        for (string_to_sign, expected) in [
            (
                "GET\n\n\n1796330460\nx-amz-security-token:tok\n/b/shared/report%201.txt",
                "/snc+rOx16lu3XtDCOz8v2RYHAE=",
            ),
            (
                "PUT\n\n\n1796330460\nx-amz-security-token:tok\n/b/k?partNumber=2&uploadId=u/1",
                "z0Y0qUxOOsH2mD/Th0NTHZZ0mRw=",
            ),
        ] {
            let mac = hmac_sha1(b"x", string_to_sign.as_bytes());
            assert_eq!(base64::engine::general_purpose::STANDARD.encode(mac), expected);
        }
    }

    #[test]
    fn a_presigned_get_verifies_and_forwards_no_signature_parameters() {
        let query = presigned_query("GET", "/bucket/a%20key", expires_in(300), "");
        let verified = verify("GET", "/bucket/a%20key", &query).unwrap();
        assert_eq!(verified.forward_query, "");
        assert_eq!(verified.verified.scope.service, "s3");
        assert_eq!(verified.verified.security_token.as_deref(), Some("the-token"));
        assert!(verified.verified.security_token_signed);
        assert_eq!(
            verified.verified.location,
            SignatureLocation::PresignedUrl {
                expires_at: OffsetDateTime::from_unix_timestamp(expires_in(300)).unwrap()
            }
        );
    }

    #[test]
    fn subresources_are_signed_sorted_and_forwarded() {
        let expires = expires_in(300);
        let string_to_sign = format!(
            "PUT\n\n\n{expires}\nx-amz-security-token:the-token\n/bucket/key?partNumber=2&uploadId=a/b"
        );
        let query = format!(
            "uploadId=a%2Fb&partNumber=2&AWSAccessKeyId=ASIAEXAMPLE&Signature={}&Expires={expires}&x-amz-security-token=the-token",
            sign(SECRET, &string_to_sign)
        );
        let verified = verify("PUT", "/bucket/key", &query).unwrap();
        assert_eq!(verified.forward_query, "uploadId=a%2Fb&partNumber=2");
    }

    #[test]
    fn virtual_host_requests_sign_the_bucket_into_the_resource() {
        let query = presigned_query("GET", "/bucket/key", expires_in(300), "");
        let headers = HeaderMap::new();
        let request =
            RequestParts { method: "GET", raw_path: "/key", raw_query: &query, headers: &headers };
        verifier().verify(&request, Some("bucket"), NOW).unwrap();
        let error = verifier().verify(&request, None, NOW).unwrap_err();
        assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }), "{error:?}");
    }

    #[test]
    fn a_tampered_signature_is_refused() {
        let query = presigned_query("GET", "/bucket/key", expires_in(300), "");
        // Signed for /bucket/key, used for another key.
        let error = verify("GET", "/bucket/other", &query).unwrap_err();
        assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }), "{error:?}");
        // Signed for GET, used for PUT.
        let error = verify("PUT", "/bucket/key", &query).unwrap_err();
        assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }), "{error:?}");
        assert_eq!(error.aws_code("s3"), "SignatureDoesNotMatch");
    }

    #[test]
    fn a_url_signed_with_another_key_is_refused() {
        let expires = expires_in(300);
        let string_to_sign = format!("GET\n\n\n{expires}\nx-amz-security-token:the-token\n/b/k");
        let query = format!(
            "AWSAccessKeyId=ASIAEXAMPLE&Signature={}&Expires={expires}&x-amz-security-token=the-token",
            sign("another secret", &string_to_sign)
        );
        let error = verify("GET", "/b/k", &query).unwrap_err();
        assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }), "{error:?}");
        let unknown = query.replace("ASIAEXAMPLE", "ASIAOTHER");
        let error = verify("GET", "/b/k", &unknown).unwrap_err();
        assert!(matches!(error, SigV4Error::InvalidAccessKeyId { .. }), "{error:?}");
    }

    #[test]
    fn an_expired_url_or_one_valid_too_long_is_refused() {
        let query = presigned_query("GET", "/b/k", expires_in(-1), "");
        let error = verify("GET", "/b/k", &query).unwrap_err();
        assert!(matches!(error, SigV4Error::PresignedUrlExpired { .. }), "{error:?}");
        assert_eq!(error.aws_code("s3"), "AccessDenied");
        let query =
            presigned_query("GET", "/b/k", expires_in(MAX_PRESIGNED_EXPIRES_SECONDS + 1), "");
        let error = verify("GET", "/b/k", &query).unwrap_err();
        assert!(matches!(error, SigV4Error::InvalidSigV2Expires { .. }), "{error:?}");
    }

    #[test]
    fn validity_is_bounded_by_the_session() {
        let query = presigned_query("GET", "/b/k", expires_in(7200), "");
        let verified = verify("GET", "/b/k", &query).unwrap();
        assert_eq!(
            verified.verified.location,
            SignatureLocation::PresignedUrl { expires_at: NOW + Duration::hours(1) }
        );
    }

    #[test]
    fn a_query_parameter_the_signature_does_not_cover_is_refused() {
        let query = presigned_query("GET", "/b/k", expires_in(300), "prefix=x&");
        let error = verify("GET", "/b/k", &query).unwrap_err();
        assert_eq!(error, SigV4Error::UnsignedQueryParameter { name: "prefix".into() });
        assert!(error.to_string().contains("\"prefix\""), "{error}");
        let query = presigned_query("GET", "/b/k", expires_in(300), "x-amz-acl=public-read&");
        let error = verify("GET", "/b/k", &query).unwrap_err();
        assert_eq!(error, SigV4Error::UnsignedQueryParameter { name: "x-amz-acl".into() });
    }

    #[test]
    fn sigv2_query_signing_of_other_services_stays_refused() {
        let query = "Action=ListUsers&SignatureVersion=2&SignatureMethod=HmacSHA256&AWSAccessKeyId=ASIAEXAMPLE&Timestamp=2026-12-03T20%3A00%3A00Z&Signature=abc";
        assert!(is_sigv2_presigned(query));
        let error = verify("GET", "/", query).unwrap_err();
        assert!(matches!(error, SigV4Error::UnsupportedAlgorithm { .. }), "{error:?}");
    }

    #[test]
    fn sigv4_presigned_queries_are_not_taken_for_sigv2() {
        assert!(!is_sigv2_presigned(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&AWSAccessKeyId=x&Signature=y"
        ));
        assert!(!is_sigv2_presigned("versionId=3"));
    }

    #[test]
    fn a_missing_or_wrong_session_token_is_refused() {
        let query = presigned_query("GET", "/b/k", expires_in(300), "")
            .replace("&x-amz-security-token=the-token", "");
        let error = verify("GET", "/b/k", &query).unwrap_err();
        assert!(matches!(error, SigV4Error::InvalidToken { .. }), "{error:?}");
    }

    #[test]
    fn signed_headers_are_the_ones_in_the_string_to_sign() {
        let expires = expires_in(300);
        let string_to_sign = format!(
            "PUT\n\ntext/plain\n{expires}\nx-amz-meta-a:1\nx-amz-security-token:the-token\n/b/k"
        );
        let query = format!(
            "AWSAccessKeyId=ASIAEXAMPLE&Signature={}&Expires={expires}&x-amz-security-token=the-token&content-type=text%2Fplain",
            sign(SECRET, &string_to_sign)
        );
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("x-amz-meta-a", " 1 ".parse().unwrap());
        headers.insert("x-other", "unsigned".parse().unwrap());
        let request =
            RequestParts { method: "PUT", raw_path: "/b/k", raw_query: &query, headers: &headers };
        let verified = verifier().verify(&request, None, NOW).unwrap();
        assert_eq!(verified.forward_query, "");
        assert!(verified.verified.is_header_signed("content-type"));
        assert!(verified.verified.is_header_signed("x-amz-meta-a"));
        assert!(!verified.verified.is_header_signed("x-other"));
        headers.insert("content-type", "text/html".parse().unwrap());
        let request =
            RequestParts { method: "PUT", raw_path: "/b/k", raw_query: &query, headers: &headers };
        let error = verifier().verify(&request, None, NOW).unwrap_err();
        assert!(error.to_string().contains("text/plain"), "{error}");
    }
}
