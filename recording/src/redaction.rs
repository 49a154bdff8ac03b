//! Redaction: replacing a recorded value by its SHA-256, never dropping it.
//!
//! The marker is the JSON object `{"redacted":"sha256:<64 lowercase hex>"}`. Inside a JSON body it
//! replaces the value at an RFC 6901 pointer; in a header or query value (which are strings) the
//! value becomes the marker's compact JSON text. Every redaction is also listed in the event's
//! `redacted` array as `header:<name>`, `query:<name>`, `body:<pointer>` or `body` (whole body).
//!
//! The hash covers the original value: a string's UTF-8 bytes (without quotes or escapes); any
//! other JSON value's canonical form ([`crate::canonical`], floats written as serde_json writes
//! them); a whole body's captured bytes. So an auditor holding a candidate value can confirm it.

use serde_json::{Value, json};

use crate::canonical::canonical_json;
use crate::event::{Body, BodyEncoding};
use crate::hash::Hash256;

/// Headers that always carry credentials; the gateway redacts them from every request.
pub const CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "x-amz-security-token", "proxy-authorization", "cookie"];

/// Query parameters of presigned requests that carry credentials.
pub const CREDENTIAL_QUERY_PARAMS: &[&str] = &["X-Amz-Signature", "X-Amz-Security-Token"];

/// A pointer that is not RFC 6901.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("JSON pointer {pointer:?} must be empty or start with '/' (RFC 6901)")]
pub struct RedactionError {
    pub pointer: String,
}

/// The marker object for a value whose hash is `hash`.
pub fn redaction_marker(hash: Hash256) -> Value {
    json!({ "redacted": format!("sha256:{hash}") })
}

/// The marker as compact JSON text, for string-valued places (headers, query values).
pub fn redaction_marker_text(hash: Hash256) -> String {
    format!(r#"{{"redacted":"sha256:{hash}"}}"#)
}

/// The hash a marker carries for `value`.
pub fn redacted_value_hash(value: &Value) -> Hash256 {
    match value {
        Value::String(s) => Hash256::of(s.as_bytes()),
        other => match canonical_json(other) {
            Ok(bytes) => Hash256::of(bytes),
            // Floats have no signing form; hash them as serde_json prints them.
            Err(_) => Hash256::of(canonical_json_with_floats(other)),
        },
    }
}

fn canonical_json_with_floats(value: &Value) -> Vec<u8> {
    match value {
        Value::Object(members) => {
            let mut sorted: Vec<_> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let mut out = b"{".to_vec();
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(Value::String(k.clone()).to_string().into_bytes());
                out.push(b':');
                out.extend(canonical_json_with_floats(v));
            }
            out.push(b'}');
            out
        }
        Value::Array(items) => {
            let mut out = b"[".to_vec();
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(canonical_json_with_floats(v));
            }
            out.push(b']');
            out
        }
        scalar => scalar.to_string().into_bytes(),
    }
}

/// Replaces the value at `pointer` in `root` by its marker. Returns the hash, or `None` when
/// nothing is at `pointer`.
pub fn redact_pointer(root: &mut Value, pointer: &str) -> Result<Option<Hash256>, RedactionError> {
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        return Err(RedactionError { pointer: pointer.to_owned() });
    }
    let Some(target) = root.pointer_mut(pointer) else {
        return Ok(None);
    };
    let hash = redacted_value_hash(target);
    *target = redaction_marker(hash);
    Ok(Some(hash))
}

/// Redacts the value of every header whose name matches one of `names` (ASCII case-insensitive),
/// recording `header:<lowercase name>` in `redacted` once per name.
pub fn redact_headers<S: AsRef<str>>(
    headers: &mut [(String, String)],
    names: &[S],
    redacted: &mut Vec<String>,
) {
    redact_pairs(headers, names, redacted, "header", true);
}

/// Redacts query parameter values by name (ASCII case-insensitive), recording `query:<name>`.
pub fn redact_query<S: AsRef<str>>(
    query: &mut [(String, String)],
    names: &[S],
    redacted: &mut Vec<String>,
) {
    redact_pairs(query, names, redacted, "query", false);
}

fn redact_pairs<S: AsRef<str>>(
    pairs: &mut [(String, String)],
    names: &[S],
    redacted: &mut Vec<String>,
    place: &str,
    lowercase: bool,
) {
    for (name, value) in pairs.iter_mut() {
        if !names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name)) {
            continue;
        }
        *value = redaction_marker_text(Hash256::of(value.as_bytes()));
        let label = if lowercase { name.to_ascii_lowercase() } else { name.clone() };
        let entry = format!("{place}:{label}");
        if !redacted.contains(&entry) {
            redacted.push(entry);
        }
    }
}

/// Redacts the credential headers and presigned-query credentials.
pub fn redact_credentials(
    headers: &mut [(String, String)],
    query: &mut [(String, String)],
    redacted: &mut Vec<String>,
) {
    redact_headers(headers, CREDENTIAL_HEADERS, redacted);
    redact_query(query, CREDENTIAL_QUERY_PARAMS, redacted);
}

/// Redacts `pointers` inside a JSON body, recording `body:<pointer>` for each value replaced.
///
/// A body that cannot be redacted value by value (binary, truncated, or not JSON) has its whole
/// captured data replaced by the marker text of the captured bytes' hash, recorded as `body`:
/// when in doubt, hide more. `size` and `sha256` keep describing the original body.
pub fn redact_body<S: AsRef<str>>(
    body: &mut Body,
    pointers: &[S],
    redacted: &mut Vec<String>,
) -> Result<(), RedactionError> {
    if pointers.is_empty() {
        return Ok(());
    }
    for p in pointers {
        let p = p.as_ref();
        if !(p.is_empty() || p.starts_with('/')) {
            return Err(RedactionError { pointer: p.to_owned() });
        }
    }
    let parsed = match (body.encoding, body.truncated) {
        (BodyEncoding::Utf8, false) => serde_json::from_str::<Value>(&body.data).ok(),
        _ => None,
    };
    let Some(mut value) = parsed else {
        let captured = body.captured_bytes().unwrap_or_else(|_| body.data.as_bytes().to_vec());
        body.data = redaction_marker_text(Hash256::of(captured));
        body.encoding = BodyEncoding::Utf8;
        redacted.push("body".to_owned());
        return Ok(());
    };
    let mut changed = false;
    for p in pointers {
        if redact_pointer(&mut value, p.as_ref())?.is_some() {
            redacted.push(format!("body:{}", p.as_ref()));
            changed = true;
        }
    }
    if changed {
        body.data = value.to_string();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_value_becomes_marker_of_its_hash() {
        let mut v = json!({"SecretString": "hunter2", "Name": "db", "a/b": [1, {"k": 2}]});
        let hash = redact_pointer(&mut v, "/SecretString").unwrap().unwrap();
        assert_eq!(hash, Hash256::of(b"hunter2"));
        assert_eq!(
            v["SecretString"],
            json!({"redacted": "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"})
        );
        redact_pointer(&mut v, "/a~1b/1").unwrap().unwrap();
        assert_eq!(v["a/b"][1], redaction_marker(Hash256::of(br#"{"k":2}"#)));
        assert_eq!(v["Name"], "db");
    }

    #[test]
    fn missing_pointer_is_reported_not_invented_and_bad_pointer_is_refused() {
        let mut v = json!({"a": 1});
        assert_eq!(redact_pointer(&mut v, "/b").unwrap(), None);
        assert_eq!(v, json!({"a": 1}));
        assert!(redact_pointer(&mut v, "a").is_err());
    }

    #[test]
    fn credential_headers_and_query_are_replaced_and_listed() {
        let mut headers = vec![
            ("Authorization".to_owned(), "AWS4-HMAC-SHA256 Credential=...".to_owned()),
            ("host".to_owned(), "h".to_owned()),
        ];
        let mut query = vec![("X-Amz-Signature".to_owned(), "abcd".to_owned())];
        let mut redacted = vec![];
        redact_credentials(&mut headers, &mut query, &mut redacted);
        assert_eq!(
            headers[0].1,
            redaction_marker_text(Hash256::of(b"AWS4-HMAC-SHA256 Credential=..."))
        );
        assert_eq!(headers[1].1, "h");
        assert_eq!(query[0].1, redaction_marker_text(Hash256::of(b"abcd")));
        assert_eq!(redacted, vec!["header:authorization", "query:X-Amz-Signature"]);
    }

    #[test]
    fn json_body_is_redacted_by_pointer_and_opaque_body_whole() {
        let mut body = Body::complete(br#"{"SecretString":"s3cr3t","ARN":"arn"}"#);
        let original_hash = body.sha256;
        let mut redacted = vec![];
        redact_body(&mut body, &["/SecretString", "/Missing"], &mut redacted).unwrap();
        assert!(!body.data.contains("s3cr3t"));
        assert!(body.data.contains("arn"));
        assert_eq!(body.sha256, original_hash);
        assert_eq!(redacted, vec!["body:/SecretString"]);

        let mut opaque = Body::captured(b"{\"SecretString\":\"s3", 100, Hash256::of(b"x"));
        let mut redacted = vec![];
        redact_body(&mut opaque, &["/SecretString"], &mut redacted).unwrap();
        assert_eq!(opaque.data, redaction_marker_text(Hash256::of(b"{\"SecretString\":\"s3")));
        assert_eq!(redacted, vec!["body"]);
    }

    proptest::proptest! {
        #[test]
        fn redaction_keeps_every_member_and_marks_only_the_target(
            members in proptest::collection::btree_map("[a-z~/]{1,6}", ".*", 1..8),
            pick in 0usize..8,
        ) {
            let original = Value::Object(members.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
            let target = members.keys().nth(pick % members.len()).cloned().unwrap_or_default();
            let pointer = format!("/{}", target.replace('~', "~0").replace('/', "~1"));
            let mut redacted = original.clone();
            let hash = redact_pointer(&mut redacted, &pointer).unwrap();
            proptest::prop_assert_eq!(hash, Some(Hash256::of(members[&target].as_bytes())));
            for (k, v) in &members {
                if *k == target {
                    proptest::prop_assert_eq!(&redacted[k], &redaction_marker(Hash256::of(v.as_bytes())));
                } else {
                    proptest::prop_assert_eq!(&redacted[k], &original[k]);
                }
            }
        }
    }
}
