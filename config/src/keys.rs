//! The keys file the operator writes from the namespace's key Secret: session MAC keys (current
//! first, then the previous one, still accepted after a rotation) and the recording signing key.
//!
//! ```json
//! {
//!   "sessionKeys": [
//!     {"id": "k2", "secret": "<base64 of at least 32 random bytes>"},
//!     {"id": "k1", "secret": "<base64>"}
//!   ],
//!   "recordingSigningKey": "<base64 of the 32-byte Ed25519 seed>"
//! }
//! ```

use std::path::Path;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

use crate::redacted::Redacted;

/// Session MAC secrets shorter than this are refused.
pub const MIN_SESSION_SECRET_BYTES: usize = 32;
/// Key ids are 1 to this many characters of `[A-Za-z0-9._-]`.
pub const MAX_KEY_ID_CHARS: usize = 64;

/// Why the keys file was refused. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The file could not be read.
    #[error("cannot read the keys file {path}: {reason}")]
    Read {
        /// Its path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The file is not JSON of the documented shape.
    #[error("the keys file is not valid: {0}")]
    Shape(String),
    /// `sessionKeys` is empty or longer than current + previous.
    #[error(
        "the keys file lists {0} session keys; it must list the current key and at most one previous key"
    )]
    KeyCount(usize),
    /// A key id is empty, too long, has other characters, or repeats.
    #[error(
        "session key id {0:?} is not valid: ids are 1 to 64 characters of letters, digits, '.', '_' \
         and '-', and distinct"
    )]
    KeyId(String),
    /// A secret is not base64 or too short.
    #[error("{what} is not valid: {reason}")]
    Secret {
        /// Which secret (`session key "k2"`, `recordingSigningKey`).
        what: String,
        /// What is wrong with it (never its value).
        reason: String,
    },
}

/// One session MAC key.
#[derive(Clone, Debug)]
pub struct SessionKey {
    id: String,
    secret: Redacted<Vec<u8>>,
}

impl SessionKey {
    /// A key from its id and secret bytes.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self, KeysError> {
        let id = id.into();
        let secret = secret.into();
        if !valid_key_id(&id) {
            return Err(KeysError::KeyId(id));
        }
        if secret.len() < MIN_SESSION_SECRET_BYTES {
            return Err(KeysError::Secret {
                what: format!("session key {id:?}"),
                reason: format!(
                    "it has {} bytes, at least {MIN_SESSION_SECRET_BYTES} are required",
                    secret.len()
                ),
            });
        }
        Ok(Self { id, secret: Redacted(secret) })
    }

    /// The key's id, carried in every session token minted under it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret bytes session tokens are MACed with.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// The session MAC keys: `current` mints, `current` and `previous` open.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    current: SessionKey,
    previous: Option<SessionKey>,
}

impl SessionKeys {
    /// Keys with `current` signing and `previous` (if any) still accepted.
    pub fn new(current: SessionKey, previous: Option<SessionKey>) -> Result<Self, KeysError> {
        if previous.as_ref().is_some_and(|p| p.id == current.id) {
            return Err(KeysError::KeyId(current.id));
        }
        Ok(Self { current, previous })
    }

    /// The key new sessions are minted under.
    pub fn current(&self) -> &SessionKey {
        &self.current
    }

    /// The key sessions minted before the last rotation are still opened with.
    pub fn previous(&self) -> Option<&SessionKey> {
        self.previous.as_ref()
    }

    /// The key with this id, if it is the current or the previous one.
    pub fn find(&self, id: &str) -> Option<&SessionKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref()).find(|k| k.id == id)
    }
}

/// The 32-byte Ed25519 seed recordings' manifests and digests are signed with.
#[derive(Clone, Debug)]
pub struct RecordingSigningKey(Redacted<[u8; 32]>);

impl RecordingSigningKey {
    /// The seed.
    pub fn seed(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Everything in the keys file, validated.
#[derive(Clone, Debug)]
pub struct GatewayKeys {
    /// Session MAC keys.
    pub session: SessionKeys,
    /// The recording signing key.
    pub recording_signing_key: RecordingSigningKey,
}

/// The keys file's JSON shape (what the operator serializes into the key Secret).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysFile {
    /// Current key first, then the previous one.
    pub session_keys: Vec<KeysFileEntry>,
    /// Base64 of the 32-byte Ed25519 seed.
    pub recording_signing_key: String,
}

/// One session key in the keys file.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeysFileEntry {
    /// The key id.
    pub id: String,
    /// Base64 (standard alphabet, padded) of the secret bytes.
    pub secret: String,
}

impl GatewayKeys {
    /// Reads and validates the keys file at `path`.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let bytes = std::fs::read(path).map_err(|e| KeysError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&bytes)
    }

    /// Validates the keys file's content.
    pub fn parse(json: &[u8]) -> Result<Self, KeysError> {
        // serde_json's messages quote no input values for these types, so no secret leaks here.
        let file: KeysFile = serde_json::from_slice(json).map_err(|e| {
            KeysError::Shape(format!(
                "{} (line {}, column {})",
                shape_problem(&e),
                e.line(),
                e.column()
            ))
        })?;
        let count = file.session_keys.len();
        if count == 0 || count > 2 {
            return Err(KeysError::KeyCount(count));
        }
        let mut keys = Vec::with_capacity(count);
        for entry in file.session_keys {
            let secret = STANDARD.decode(entry.secret.trim()).map_err(|_| KeysError::Secret {
                what: format!("session key {:?}", entry.id),
                reason: "its secret is not base64".into(),
            })?;
            keys.push(SessionKey::new(entry.id, secret)?);
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or(KeysError::KeyCount(0))?;
        let session = SessionKeys::new(current, keys.next())?;

        let seed =
            STANDARD.decode(file.recording_signing_key.trim()).map_err(|_| KeysError::Secret {
                what: "recordingSigningKey".into(),
                reason: "it is not base64".into(),
            })?;
        let seed: [u8; 32] = seed.try_into().map_err(|bytes: Vec<u8>| KeysError::Secret {
            what: "recordingSigningKey".into(),
            reason: format!("it has {} bytes, an Ed25519 seed has 32", bytes.len()),
        })?;
        Ok(Self { session, recording_signing_key: RecordingSigningKey(Redacted(seed)) })
    }
}

fn shape_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "it is not JSON",
        _ => "it needs sessionKeys [{id, secret}] and recordingSigningKey",
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_CHARS
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn the_first_listed_key_is_current_and_the_second_previous() {
        let json = serde_json::json!({
            "sessionKeys": [{"id": "k2", "secret": b64(&[2; 32])}, {"id": "k1", "secret": b64(&[1; 32])}],
            "recordingSigningKey": b64(&[9; 32]),
        });
        let keys = GatewayKeys::parse(json.to_string().as_bytes()).unwrap();
        assert_eq!(keys.session.current().id(), "k2");
        assert_eq!(keys.session.previous().map(SessionKey::id), Some("k1"));
        assert!(keys.session.find("k1").is_some());
        assert!(keys.session.find("k0").is_none());
        assert_eq!(keys.recording_signing_key.seed(), &[9; 32]);
    }

    #[test]
    fn a_short_secret_is_refused_without_echoing_it() {
        let json = serde_json::json!({
            "sessionKeys": [{"id": "k1", "secret": b64(b"too-short-secret")}],
            "recordingSigningKey": b64(&[9; 32]),
        });
        let error = GatewayKeys::parse(json.to_string().as_bytes()).unwrap_err().to_string();
        assert!(error.contains("\"k1\"") && error.contains("at least 32"), "{error}");
        assert!(!error.contains("too-short-secret") && !error.contains(&b64(b"too-short-secret")));
    }

    #[test]
    fn three_session_keys_or_none_are_refused() {
        for count in [0usize, 3] {
            let entries: Vec<_> = (0..count)
                .map(|i| serde_json::json!({"id": format!("k{i}"), "secret": b64(&[7; 32])}))
                .collect();
            let json =
                serde_json::json!({"sessionKeys": entries, "recordingSigningKey": b64(&[9; 32])});
            assert!(matches!(
                GatewayKeys::parse(json.to_string().as_bytes()),
                Err(KeysError::KeyCount(n)) if n == count
            ));
        }
    }

    #[test]
    fn a_repeated_key_id_is_refused() {
        let json = serde_json::json!({
            "sessionKeys": [{"id": "k1", "secret": b64(&[2; 32])}, {"id": "k1", "secret": b64(&[1; 32])}],
            "recordingSigningKey": b64(&[9; 32]),
        });
        assert!(matches!(
            GatewayKeys::parse(json.to_string().as_bytes()),
            Err(KeysError::KeyId(_))
        ));
    }

    #[test]
    fn debug_output_shows_key_ids_but_no_secret_bytes() {
        let key = SessionKey::new("k1", vec![0xAB; 32]).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("k1") && !shown.contains("171"), "{shown}");
    }
}
