//! SigV4's URI encoding: the canonical path and the canonical query string.

/// How a service canonicalizes the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalPathRules {
    /// Percent-encode the wire path once more (`%` becomes `%25`), as every service but S3 does.
    pub double_encode: bool,
    /// Remove dot segments and empty segments (RFC 3986 section 5.2.4) before encoding.
    pub normalize: bool,
}

impl CanonicalPathRules {
    /// S3: the path exactly as sent.
    pub const S3: Self = Self { double_encode: false, normalize: false };
    /// Every other service: normalized, then encoded again.
    pub const DEFAULT: Self = Self { double_encode: true, normalize: true };

    /// The rules AWS applies for `service` (the credential scope's service name).
    pub fn for_service(service: &str) -> Self {
        if service == "s3" { Self::S3 } else { Self::DEFAULT }
    }
}

/// Bytes SigV4 leaves unencoded: RFC 3986 unreserved characters.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes every byte but the unreserved ones (and `/` when `keep_slash`), with
/// upper-case hex, as SigV4 specifies.
pub(crate) fn uri_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        if is_unreserved(byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes a query component as `application/x-www-form-urlencoded` does: `+` is a space,
/// `%XX` a byte, and a `%` not followed by two hex digits stays literal.
pub(crate) fn form_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            b'%' => {
                let high = bytes.get(index + 1).copied().and_then(hex_value);
                let low = bytes.get(index + 2).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    index += 3;
                } else {
                    out.push(b'%');
                    index += 1;
                }
            }
            other => {
                out.push(other);
                index += 1;
            }
        }
    }
    out
}

/// One `name=value` pair of a raw query string, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryParam<'a> {
    pub raw_name: &'a str,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Splits a raw query string into decoded pairs, in wire order; empty pieces are skipped.
pub(crate) fn query_params(raw_query: &str) -> Vec<QueryParam<'_>> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            QueryParam { raw_name: name, name: form_decode(name), value: form_decode(value) }
        })
        .collect()
}

/// The canonical query string: every parameter but `skip` (the presigned `X-Amz-Signature`),
/// decoded and re-encoded, sorted by encoded name then encoded value.
pub fn canonical_query(raw_query: &str, skip: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query_params(raw_query)
        .into_iter()
        .filter(|param| skip.is_none_or(|skip| param.name != skip.as_bytes()))
        .map(|param| {
            let mut name = String::with_capacity(param.name.len());
            uri_encode(&param.name, false, &mut name);
            let mut value = String::with_capacity(param.value.len());
            uri_encode(&param.value, false, &mut value);
            (name, value)
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + 16);
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The canonical URI of `raw_path` (the path exactly as it arrived) under `rules`.
pub fn canonical_path(raw_path: &str, rules: CanonicalPathRules) -> String {
    let path = if rules.normalize {
        remove_dot_segments(raw_path)
    } else if raw_path.is_empty() {
        "/".to_owned()
    } else {
        raw_path.to_owned()
    };
    if rules.double_encode {
        let mut out = String::with_capacity(path.len() + 8);
        uri_encode(path.as_bytes(), true, &mut out);
        out
    } else {
        path
    }
}

/// RFC 3986 section 5.2.4 dot-segment removal, also dropping empty segments, over an absolute
/// path; keeps a trailing slash. This is what AWS services other than S3 do before signing.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let ends_with_slash =
        ["/", "/.", "/..", "/./", "/../"].iter().any(|suffix| path.ends_with(suffix))
            || path == "."
            || path == "..";
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || ends_with_slash {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_paths_are_taken_as_sent() {
        assert_eq!(
            canonical_path("/bucket/a%20b//./c", CanonicalPathRules::S3),
            "/bucket/a%20b//./c"
        );
        assert_eq!(canonical_path("", CanonicalPathRules::S3), "/");
    }

    #[test]
    fn other_services_normalize_then_encode_again() {
        assert_eq!(
            canonical_path("/a//b/./c/../d%3D/", CanonicalPathRules::DEFAULT),
            "/a/b/d%253D/"
        );
        assert_eq!(canonical_path("/..", CanonicalPathRules::DEFAULT), "/");
        assert_eq!(canonical_path("", CanonicalPathRules::DEFAULT), "/");
        assert_eq!(canonical_path("/ሴ x", CanonicalPathRules::DEFAULT), "/%E1%88%B4%20x");
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted_by_name_then_value() {
        assert_eq!(
            canonical_query("b=2&a=z&a=y&c&d=%7e+%2B&X-Amz-Signature=x", Some("X-Amz-Signature")),
            "a=y&a=z&b=2&c=&d=~%20%2B"
        );
        assert_eq!(canonical_query("Param-3=1&Param=2", None), "Param=2&Param-3=1");
        assert_eq!(canonical_query("bad=%zz%4", None), "bad=%25zz%254");
    }
}
