//! The parameters preview a reviewer reads on an ApprovalRequest: method, path and query, and the
//! body only when it is small JSON or XML. Credential query parameters are left out, and JSON
//! values under keys that name secrets are replaced by a marker.

use serde_json::Value;

use super::fingerprint::is_volatile_query;

/// Bodies larger than this are not previewed.
pub const MAX_PREVIEW_BODY: usize = 4096;
/// The preview is cut to this many bytes (on a character boundary).
pub const MAX_PREVIEW: usize = 8192;

/// Key fragments whose JSON values are never shown.
const SECRET_KEYS: &[&str] =
    &["secret", "password", "token", "plaintext", "privatekey", "credential", "ciphertext"];

/// The preview of a call.
pub fn parameters_preview(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> String {
    let query: Vec<&str> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| !is_volatile_query(p.split_once('=').map_or(*p, |(name, _)| name)))
        .collect();
    let mut preview = format!("{method} {raw_path}");
    if !query.is_empty() {
        preview.push('?');
        preview.push_str(&query.join("&"));
    }
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        preview.push('\n');
        preview.push_str(&body_preview(content_type.unwrap_or(""), body));
    }
    truncate(preview, MAX_PREVIEW)
}

fn body_preview(content_type: &str, body: &[u8]) -> String {
    if body.len() > MAX_PREVIEW_BODY {
        return format!("(body of {} bytes not shown)", body.len());
    }
    let content_type = content_type.to_ascii_lowercase();
    let json = content_type.contains("json") || body.first() == Some(&b'{');
    if json && let Ok(mut value) = serde_json::from_slice::<Value>(body) {
        redact_secrets(&mut value);
        return value.to_string();
    }
    let xml = content_type.contains("xml") || body.first() == Some(&b'<');
    if xml
        && let Ok(text) = std::str::from_utf8(body)
        && !SECRET_KEYS.iter().any(|k| text.to_ascii_lowercase().contains(k))
    {
        return text.to_owned();
    }
    format!("(body of {} bytes not shown)", body.len())
}

fn redact_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|k| key.contains(k)) {
                    *inner = Value::String("(redacted)".into());
                } else {
                    redact_secrets(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("…(truncated)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_leaves_out_credentials_and_secret_values() {
        let preview = parameters_preview(
            "POST",
            "/",
            "X-Amz-Signature=abc&X-Amz-Security-Token=tok&keep=1",
            Some("application/x-amz-json-1.1"),
            Some(br#"{"SecretId":"db","SecretString":"hunter2","Tags":[{"Key":"a"}]}"#),
        );
        assert!(preview.starts_with("POST /?keep=1\n"), "{preview}");
        assert!(
            !preview.contains("hunter2") && !preview.contains("tok") && !preview.contains("abc")
        );
        assert!(preview.contains("\"Key\":\"a\""), "{preview}");
    }

    #[test]
    fn large_and_binary_bodies_are_not_shown() {
        let big = vec![b'a'; MAX_PREVIEW_BODY + 1];
        assert!(parameters_preview("PUT", "/b/k", "", None, Some(&big)).contains("not shown"));
        assert!(
            parameters_preview("PUT", "/b/k", "", None, Some(&[0, 159, 146])).contains("not shown")
        );
    }
}
