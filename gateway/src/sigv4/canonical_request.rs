//! The canonical request and the string to sign, rebuilt from the request as it arrived.

use http::{HeaderMap, HeaderName};

use super::error::SigV4Error;
use super::signing_key::{ALGORITHM, sha256_hex};
use super::uri_encoding::{CanonicalPathRules, canonical_path, canonical_query};

/// A request as it arrived on the wire, before any decoding: what the verifier signs over.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path exactly as received (still percent-encoded, never re-decoded).
    pub raw_path: &'a str,
    /// The query string exactly as received, without the `?`; empty when there is none.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
}

/// The SigV4 canonical request: method, canonical URI, canonical query, canonical headers,
/// signed headers and payload hash, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// `name:value\n` for each signed header, in SignedHeaders order. Bytes, because header
    /// values may carry non-UTF-8 octets and must be hashed as sent.
    pub headers: Vec<u8>,
    pub signed_headers: String,
    /// Hex SHA-256 of the body, or the payload mode's literal (`UNSIGNED-PAYLOAD`, ...).
    pub payload_hash: String,
}

impl CanonicalRequest {
    /// Builds the canonical request over the raw wire path and query and exactly the headers
    /// named in `signed_headers` (lower-case names), in that order.
    ///
    /// `skip_query_param` is the presigned `X-Amz-Signature`, which is not part of what it signs.
    pub fn build(
        request: &RequestParts<'_>,
        signed_headers_line: &str,
        signed_headers: &[String],
        path_rules: CanonicalPathRules,
        skip_query_param: Option<&str>,
        payload_hash: String,
    ) -> Result<Self, SigV4Error> {
        let mut canonical_headers = Vec::with_capacity(256);
        for name in signed_headers {
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                SigV4Error::MalformedAuthorization {
                    location: "Authorization header",
                    detail: format!("SignedHeaders names {name:?}, which is not a header name"),
                }
            })?;
            let mut values = request.headers.get_all(&header_name).iter().peekable();
            if values.peek().is_none() {
                return Err(SigV4Error::SignedHeaderMissing {
                    detail: format!(
                        "header {name:?} is listed in SignedHeaders but is not in the request: send it, or sign without it"
                    ),
                });
            }
            canonical_headers.extend_from_slice(name.as_bytes());
            canonical_headers.push(b':');
            for (index, value) in values.enumerate() {
                if index > 0 {
                    canonical_headers.push(b',');
                }
                push_trimmed_value(value.as_bytes(), &mut canonical_headers);
            }
            canonical_headers.push(b'\n');
        }
        Ok(Self {
            method: request.method.to_owned(),
            path: canonical_path(request.raw_path, path_rules),
            query: canonical_query(request.raw_query, skip_query_param),
            headers: canonical_headers,
            signed_headers: signed_headers_line.to_owned(),
            payload_hash,
        })
    }

    /// The canonical request's bytes, as they are hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.method.len()
                + self.path.len()
                + self.query.len()
                + self.headers.len()
                + self.signed_headers.len()
                + self.payload_hash.len()
                + 5,
        );
        for part in [&self.method, &self.path, &self.query] {
            out.extend_from_slice(part.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(&self.headers);
        out.push(b'\n');
        out.extend_from_slice(self.signed_headers.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.payload_hash.as_bytes());
        out
    }

    /// The string to sign for this canonical request at `amz_date` (ISO 8601 basic) in `scope`.
    pub fn string_to_sign(&self, amz_date: &str, scope_line: &str) -> String {
        format!("{ALGORITHM}\n{amz_date}\n{scope_line}\n{}", sha256_hex(&self.to_bytes()))
    }
}

impl CanonicalRequest {
    /// The canonical request as text with the session token's value replaced by `<redacted>`,
    /// in the `x-amz-security-token` header line and the `X-Amz-Security-Token` parameter, so it
    /// can be logged and returned in an error.
    pub fn to_redacted_string(&self) -> String {
        let text = self.to_string();
        let mut out = String::with_capacity(text.len());
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 {
                out.push('\n');
            }
            if line.starts_with("x-amz-security-token:") {
                out.push_str("x-amz-security-token:<redacted>");
            } else if index == 2 {
                let params: Vec<String> = line
                    .split('&')
                    .map(|param| match param.split_once('=') {
                        Some(("X-Amz-Security-Token", _)) => {
                            "X-Amz-Security-Token=<redacted>".to_owned()
                        }
                        _ => param.to_owned(),
                    })
                    .collect();
                out.push_str(&params.join("&"));
            } else {
                out.push_str(line);
            }
        }
        out
    }
}

impl std::fmt::Display for CanonicalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// Appends a header value with leading and trailing spaces removed and runs of spaces
/// collapsed to one, as SigV4 canonical headers require.
fn push_trimmed_value(value: &[u8], out: &mut Vec<u8>) {
    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
    let end = value.iter().rposition(|&b| b != b' ').map_or(start, |i| i + 1);
    let mut previous_space = false;
    for &byte in value.get(start..end).unwrap_or_default() {
        if byte == b' ' {
            if !previous_space {
                out.push(byte);
            }
            previous_space = true;
        } else {
            out.push(byte);
            previous_space = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn header_values_are_trimmed_collapsed_and_joined_by_commas_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("my-header", HeaderValue::from_static("  a   b  "));
        headers.append("my-header", HeaderValue::from_static("c"));
        headers.insert("host", HeaderValue::from_static("example.com"));
        headers.insert("unsigned", HeaderValue::from_static("ignored"));
        let signed = ["host".to_owned(), "my-header".to_owned()];
        let request =
            RequestParts { method: "GET", raw_path: "/", raw_query: "", headers: &headers };
        let creq = CanonicalRequest::build(
            &request,
            "host;my-header",
            &signed,
            CanonicalPathRules::S3,
            None,
            "UNSIGNED-PAYLOAD".to_owned(),
        );
        let Ok(creq) = creq else {
            panic!("build failed: {creq:?}");
        };
        assert_eq!(
            creq.to_string(),
            "GET\n/\n\nhost:example.com\nmy-header:a b,c\n\nhost;my-header\nUNSIGNED-PAYLOAD"
        );
    }

    #[test]
    fn a_signed_header_absent_from_the_request_is_refused() {
        let signed = ["host".to_owned()];
        let headers = HeaderMap::new();
        let request =
            RequestParts { method: "GET", raw_path: "/", raw_query: "", headers: &headers };
        let creq = CanonicalRequest::build(
            &request,
            "host",
            &signed,
            CanonicalPathRules::S3,
            None,
            String::new(),
        );
        assert!(matches!(creq, Err(SigV4Error::SignedHeaderMissing { .. })));
    }
}
