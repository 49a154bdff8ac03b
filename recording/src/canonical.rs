//! The canonical byte form of a JSON value, which manifests and digests are signed over.
//!
//! Objects have their members sorted by the UTF-8 bytes of their keys; there is no whitespace;
//! strings are escaped minimally (`"`, `\`, and control characters: `\b \f \n \r \t`, others as
//! `\u00xx` with lowercase hex; everything else, including non-ASCII, as raw UTF-8); numbers must be
//! integers and are written in shortest decimal form. For the values a manifest or digest can hold
//! (ASCII keys, integers) this equals RFC 8785 (JCS).

use serde::Serialize;
use serde_json::Value;

/// A value that has no canonical form.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    #[error("number {number} at {pointer:?} is not an integer; signed objects hold only integers")]
    NotAnInteger { pointer: String, number: String },
    #[error("value is not JSON-serializable: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("signed object is not a JSON object")]
    NotAnObject,
}

/// The canonical bytes of `value`.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::new();
    write_value(value, &mut out, &mut String::new())?;
    Ok(out)
}

/// The bytes a signature covers: `value` serialized, its top-level `signature` member removed,
/// in canonical form.
pub fn signing_bytes(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let Value::Object(members) = value else {
        return Err(CanonicalError::NotAnObject);
    };
    let mut members = members.clone();
    members.remove("signature");
    canonical_json(&Value::Object(members))
}

/// [`signing_bytes`] of a serializable value.
pub fn signing_bytes_of<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    signing_bytes(&serde_json::to_value(value)?)
}

fn write_value(
    value: &Value,
    out: &mut Vec<u8>,
    pointer: &mut String,
) -> Result<(), CanonicalError> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => serde_json::to_writer(&mut *out, value)?,
        Value::Number(n) => {
            if !(n.is_i64() || n.is_u64()) {
                return Err(CanonicalError::NotAnInteger {
                    pointer: pointer.clone(),
                    number: n.to_string(),
                });
            }
            serde_json::to_writer(&mut *out, n)?;
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                write_value(item, out, pointer)?;
                pointer.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                write_value(item, out, pointer)?;
                pointer.truncate(len);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x\u{1}\"é/"});
        assert_eq!(
            String::from_utf8(canonical_json(&v).unwrap()).unwrap(),
            r#"{"a":"x\u0001\"é/","b":[1,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn refuses_floats_naming_where_they_are() {
        let err = canonical_json(&json!({"a": [0, 1.5]})).unwrap_err();
        assert!(err.to_string().contains("\"/a/1\""), "{err}");
    }

    #[test]
    fn signing_bytes_leave_out_only_the_top_level_signature() {
        let v = json!({"signature": "x", "inner": {"signature": "kept"}});
        assert_eq!(signing_bytes(&v).unwrap(), br#"{"inner":{"signature":"kept"}}"#);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_form_parses_back_to_the_same_value_and_is_a_fixed_point(v in json_value()) {
            let bytes = canonical_json(&v).unwrap();
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&parsed, &v);
            prop_assert_eq!(canonical_json(&parsed).unwrap(), bytes);
        }

        #[test]
        fn canonical_form_does_not_depend_on_member_order(
            members in prop::collection::vec((".*", any::<i64>()), 0..10)
        ) {
            let forward: serde_json::Map<String, Value> =
                members.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let backward: serde_json::Map<String, Value> =
                forward.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(
                canonical_json(&Value::Object(forward)).unwrap(),
                canonical_json(&Value::Object(backward)).unwrap()
            );
        }
    }
}
