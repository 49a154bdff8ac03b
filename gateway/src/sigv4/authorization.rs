//! Parsing the two places a SigV4 signature travels: the `Authorization` header and the
//! presigned query parameters.

use http::HeaderMap;

use super::error::SigV4Error;
use super::signing_key::{ALGORITHM, decode_signature};
use super::uri_encoding::query_params;

/// Who signed, for which day, region and service: the `Credential` of a SigV4 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
}

impl CredentialScope {
    /// `date/region/service/aws4_request`, the scope line of the string to sign.
    pub fn scope_line(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }

    fn parse(credential: &str, location: &'static str) -> Result<Self, SigV4Error> {
        let malformed = |detail: String| SigV4Error::MalformedAuthorization { location, detail };
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
            return Err(malformed(format!(
                "Credential {credential:?} must be <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request"
            )));
        };
        if *terminator != "aws4_request" {
            return Err(malformed(format!(
                "Credential {credential:?} must end in aws4_request, not {terminator:?}"
            )));
        }
        if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
            return Err(malformed(format!(
                "Credential {credential:?} has an empty access key id, region or service"
            )));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(format!(
                "the date {date:?} in Credential {credential:?} must be YYYYMMDD"
            )));
        }
        Ok(Self {
            access_key_id: (*access_key_id).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
        })
    }
}

/// Where the signature was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimLocation {
    Header,
    /// Presigned, with the raw `X-Amz-Date` and `X-Amz-Expires` values.
    Query {
        amz_date: String,
        expires: String,
    },
}

/// What the client claims: the parsed, not yet verified, signature.
#[derive(Debug, Clone)]
pub(crate) struct SignatureClaim {
    pub location: ClaimLocation,
    pub scope: CredentialScope,
    /// SignedHeaders exactly as sent (the canonical request's signed-headers line).
    pub signed_headers_line: String,
    /// The same names, lower-cased.
    pub signed_headers: Vec<String>,
    pub signature: [u8; 32],
    /// `X-Amz-Security-Token` from the query (presigned form only).
    pub query_security_token: Option<String>,
}

const HEADER: &str = "Authorization header";
const QUERY: &str = "presigned query";

fn check_algorithm(algorithm: &str) -> Result<(), SigV4Error> {
    if algorithm == ALGORITHM {
        Ok(())
    } else {
        Err(SigV4Error::UnsupportedAlgorithm { algorithm: algorithm.to_owned() })
    }
}

fn parse_signed_headers(line: &str, location: &'static str) -> Result<Vec<String>, SigV4Error> {
    let names: Vec<String> = line.split(';').map(str::to_ascii_lowercase).collect();
    if names.iter().any(String::is_empty) {
        return Err(SigV4Error::MalformedAuthorization {
            location,
            detail: format!("SignedHeaders {line:?} has an empty header name"),
        });
    }
    Ok(names)
}

fn parse_signature(text: &str, location: &'static str) -> Result<[u8; 32], SigV4Error> {
    if text.len() != 64 {
        return Err(SigV4Error::MalformedAuthorization {
            location,
            detail: format!("Signature must be 64 hex digits, got {} characters", text.len()),
        });
    }
    decode_signature(text).ok_or_else(|| SigV4Error::MalformedAuthorization {
        location,
        detail: "Signature must be 64 hex digits".to_owned(),
    })
}

/// Finds the signature in the request: the Authorization header or the presigned query.
pub(crate) fn parse_claim(
    headers: &HeaderMap,
    raw_query: &str,
) -> Result<SignatureClaim, SigV4Error> {
    let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return Err(SigV4Error::MalformedAuthorization {
            location: HEADER,
            detail: "more than one Authorization header was sent".to_owned(),
        });
    }
    let params = query_params(raw_query);
    let presigned = params.iter().any(|p| p.name == b"X-Amz-Algorithm");
    match (header, presigned) {
        (Some(_), true) => Err(SigV4Error::MalformedAuthorization {
            location: HEADER,
            detail: "the request carries both an Authorization header and X-Amz-Algorithm; send only one".to_owned(),
        }),
        (Some(value), false) => {
            let text = value.to_str().map_err(|_| SigV4Error::MalformedAuthorization {
                location: HEADER,
                detail: "the value is not visible ASCII".to_owned(),
            })?;
            parse_authorization_header(text)
        }
        (None, true) => parse_presigned_query(raw_query),
        (None, false) if params.iter().any(|p| p.name == b"AWSAccessKeyId") => {
            // SigV2 query parameters without the parts an S3 presigned URL has (those go to
            // `sigv2_presigned`).
            Err(SigV4Error::UnsupportedAlgorithm {
                algorithm: "AWS (SigV2 presigned URL)".to_owned(),
            })
        }
        (None, false) => Err(SigV4Error::MissingAuthentication),
    }
}

fn parse_authorization_header(value: &str) -> Result<SignatureClaim, SigV4Error> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm == "AWS" {
        return Err(SigV4Error::UnsupportedAlgorithm { algorithm: "AWS (SigV2)".to_owned() });
    }
    check_algorithm(algorithm)?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (name, component_value) =
            component.split_once('=').ok_or_else(|| SigV4Error::MalformedAuthorization {
                location: HEADER,
                detail: format!("component {component:?} is not name=value"),
            })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(SigV4Error::MalformedAuthorization {
                    location: HEADER,
                    detail: format!(
                        "unknown component {other:?}; expected Credential, SignedHeaders and Signature"
                    ),
                });
            }
        };
        if slot.replace(component_value).is_some() {
            return Err(SigV4Error::MalformedAuthorization {
                location: HEADER,
                detail: format!("{name} appears more than once"),
            });
        }
    }
    let missing = |name: &str| SigV4Error::IncompleteSignature {
        missing: format!("{name} in the Authorization header"),
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers_line = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    Ok(SignatureClaim {
        location: ClaimLocation::Header,
        scope: CredentialScope::parse(credential, HEADER)?,
        signed_headers: parse_signed_headers(signed_headers_line, HEADER)?,
        signed_headers_line: signed_headers_line.to_owned(),
        signature: parse_signature(signature, HEADER)?,
        query_security_token: None,
    })
}

fn parse_presigned_query(raw_query: &str) -> Result<SignatureClaim, SigV4Error> {
    let params = query_params(raw_query);
    let single = |name: &str| -> Result<Option<String>, SigV4Error> {
        let mut found = params.iter().filter(|p| p.name == name.as_bytes());
        let first = found.next();
        if found.next().is_some() {
            return Err(SigV4Error::MalformedAuthorization {
                location: QUERY,
                detail: format!("{name} appears more than once"),
            });
        }
        first
            .map(|p| {
                String::from_utf8(p.value.clone()).map_err(|_| SigV4Error::MalformedAuthorization {
                    location: QUERY,
                    detail: format!("{name} is not UTF-8 after percent-decoding"),
                })
            })
            .transpose()
    };
    let required = |name: &str| -> Result<String, SigV4Error> {
        single(name)?.ok_or_else(|| SigV4Error::IncompleteSignature {
            missing: format!("the {name} query parameter"),
        })
    };
    check_algorithm(&required("X-Amz-Algorithm")?)?;
    let credential = required("X-Amz-Credential")?;
    let amz_date = required("X-Amz-Date")?;
    let expires = required("X-Amz-Expires")?;
    let signed_headers_line = required("X-Amz-SignedHeaders")?;
    let signature = required("X-Amz-Signature")?;
    Ok(SignatureClaim {
        location: ClaimLocation::Query { amz_date, expires },
        scope: CredentialScope::parse(&credential, QUERY)?,
        signed_headers: parse_signed_headers(&signed_headers_line, QUERY)?,
        signed_headers_line,
        signature: parse_signature(&signature, QUERY)?,
        query_security_token: single("X-Amz-Security-Token")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers_with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("")),
        );
        headers
    }

    #[test]
    fn authorization_header_components_parse_with_or_without_spaces() {
        let sig = "a".repeat(64);
        let value = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/s3/aws4_request,SignedHeaders=Host;x-amz-date, Signature={sig}"
        );
        let claim = parse_claim(&headers_with_authorization(&value), "");
        let Ok(claim) = claim else {
            panic!("parse failed: {claim:?}");
        };
        assert_eq!(claim.scope.service, "s3");
        assert_eq!(claim.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(claim.signed_headers_line, "Host;x-amz-date");
    }

    #[test]
    fn sigv4a_and_missing_parts_are_refused_with_their_reason() {
        let err =
            parse_claim(&headers_with_authorization("AWS4-ECDSA-P256-SHA256 Credential=x"), "");
        assert!(matches!(err, Err(SigV4Error::UnsupportedAlgorithm { .. })));
        let err = parse_claim(
            &headers_with_authorization(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/s3/aws4_request, SignedHeaders=host",
            ),
            "",
        );
        assert!(matches!(err, Err(SigV4Error::IncompleteSignature { .. })));
        assert!(matches!(
            parse_claim(&HeaderMap::new(), "a=b"),
            Err(SigV4Error::MissingAuthentication)
        ));
        let sigv2 =
            parse_claim(&HeaderMap::new(), "AWSAccessKeyId=ASIA&Signature=abc%3D&Expires=1");
        assert!(
            matches!(&sigv2, Err(SigV4Error::UnsupportedAlgorithm { algorithm }) if algorithm.contains("SigV2")),
            "{sigv2:?}"
        );
    }

    #[test]
    fn credential_must_have_five_parts_ending_in_aws4_request() {
        for bad in [
            "AKID/20150830/us-east-1/s3",
            "AKID/20150830/us-east-1/s3/aws5_request",
            "AKID/2015083/us-east-1/s3/aws4_request",
            "/20150830/us-east-1/s3/aws4_request",
        ] {
            assert!(CredentialScope::parse(bad, HEADER).is_err(), "{bad}");
        }
    }
}
