//! Reading a signed object (manifest or digest): format check, schema, and the Ed25519 signature
//! over the canonical form of the JSON as stored.

use serde_json::Value;

use crate::canonical::{CanonicalError, signing_bytes};
use crate::event::FORMAT_VERSION;
use crate::signing::{KeyId, SignatureError, TrustedKeys};

/// A signed object (manifest or digest) that could not be read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum SignedObjectError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("fields do not match the schema: {0}")]
    Schema(#[source] serde_json::Error),
    #[error("format is {found:?}, expected {expected:?} version {FORMAT_VERSION}")]
    WrongFormat { expected: &'static str, found: String },
    #[error("no canonical form: {0}")]
    Canonical(#[from] CanonicalError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Parses a signed object, checks its format and its signature over the canonical form of the
/// JSON as stored (so members unknown to this version are covered too).
pub fn verify_signed<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    keys: &TrustedKeys,
    format: &'static str,
) -> Result<T, SignedObjectError> {
    let value: Value = serde_json::from_slice(bytes).map_err(SignedObjectError::NotJson)?;
    let found_format = value.get("format").and_then(Value::as_str).unwrap_or_default();
    let found_v = value.get("v").and_then(Value::as_u64);
    if found_format != format || found_v != Some(u64::from(FORMAT_VERSION)) {
        return Err(SignedObjectError::WrongFormat {
            expected: format,
            found: format!("{found_format} v{}", found_v.unwrap_or_default()),
        });
    }
    // Typed parsing from the raw bytes also refuses duplicate members.
    let typed: T = serde_json::from_slice(bytes).map_err(SignedObjectError::Schema)?;
    let key_id: KeyId = serde_json::from_value(value.get("key_id").cloned().unwrap_or_default())
        .map_err(SignedObjectError::Schema)?;
    let signature = value.get("signature").and_then(Value::as_str).unwrap_or_default();
    keys.verify(&key_id, &signing_bytes(&value)?, signature)?;
    Ok(typed)
}
