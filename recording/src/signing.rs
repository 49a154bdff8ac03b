//! Ed25519 keys for manifests and digests: the signer a gateway holds, the key id, and the set of
//! public keys an auditor trusts.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::hash::Hash256;

/// Why a key or signature could not be decoded or did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("public key {text:?} is not 32 bytes of standard base64")]
    BadPublicKey { text: String },
    #[error("signature {text:?} is not 64 bytes of standard base64")]
    BadSignature { text: String },
    #[error("key id {key_id} is not among the trusted keys")]
    UntrustedKey { key_id: KeyId },
    #[error("Ed25519 signature does not verify with key {key_id}")]
    Invalid { key_id: KeyId },
}

/// Names a public key: the first 16 lowercase hex digits of SHA-256 of its 32 raw bytes.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        let mut hex = Hash256::of(key.as_bytes()).to_hex();
        hex.truncate(16);
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// The published text form of a public key: standard base64 (with padding) of its 32 raw bytes.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Parses [`encode_public_key`]'s form.
pub fn decode_public_key(text: &str) -> Result<VerifyingKey, SignatureError> {
    let err = || SignatureError::BadPublicKey { text: text.to_owned() };
    let bytes: [u8; 32] =
        BASE64.decode(text.trim()).map_err(|_| err())?.try_into().map_err(|_| err())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| err())
}

/// The key a gateway signs manifests and digests with.
#[derive(Clone)]
pub struct RecordingSigner {
    key: SigningKey,
    key_id: KeyId,
}

impl RecordingSigner {
    /// A signer from a 32-byte Ed25519 secret key (seed).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::new(SigningKey::from_bytes(seed))
    }

    pub fn new(key: SigningKey) -> Self {
        let key_id = KeyId::of(&key.verifying_key());
        Self { key, key_id }
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Standard base64 (with padding) of the 64-byte Ed25519 signature over `message`.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        BASE64.encode(self.key.sign(message).to_bytes())
    }
}

impl fmt::Debug for RecordingSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// The public keys an auditor accepts, by key id.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, VerifyingKey>,
}

impl TrustedKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key`; returns its id.
    pub fn insert(&mut self, key: VerifyingKey) -> KeyId {
        let id = KeyId::of(&key);
        self.keys.insert(id.clone(), key);
        id
    }

    /// Trusts a key in its published base64 form.
    pub fn insert_encoded(&mut self, text: &str) -> Result<KeyId, SignatureError> {
        Ok(self.insert(decode_public_key(text)?))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a base64 `signature` over `message` with the trusted key named `key_id`.
    pub fn verify(
        &self,
        key_id: &KeyId,
        message: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| SignatureError::UntrustedKey { key_id: key_id.clone() })?;
        let bad = || SignatureError::BadSignature { text: signature.to_owned() };
        let bytes: [u8; 64] =
            BASE64.decode(signature).map_err(|_| bad())?.try_into().map_err(|_| bad())?;
        key.verify(message, &Signature::from_bytes(&bytes))
            .map_err(|_| SignatureError::Invalid { key_id: key_id.clone() })
    }
}

impl FromIterator<VerifyingKey> for TrustedKeys {
    fn from_iter<I: IntoIterator<Item = VerifyingKey>>(iter: I) -> Self {
        let mut keys = Self::new();
        for key in iter {
            keys.insert(key);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_only_with_the_signing_key_and_message() {
        let signer = RecordingSigner::from_seed(&[7; 32]);
        let other = RecordingSigner::from_seed(&[8; 32]);
        let keys: TrustedKeys = [signer.verifying_key()].into_iter().collect();
        let sig = signer.sign_base64(b"hello");
        assert_eq!(keys.verify(signer.key_id(), b"hello", &sig), Ok(()));
        assert_eq!(
            keys.verify(signer.key_id(), b"hellO", &sig),
            Err(SignatureError::Invalid { key_id: signer.key_id().clone() })
        );
        assert_eq!(
            keys.verify(other.key_id(), b"hello", &other.sign_base64(b"hello")),
            Err(SignatureError::UntrustedKey { key_id: other.key_id().clone() })
        );
    }

    #[test]
    fn public_key_text_form_round_trips_and_key_id_is_16_hex() {
        let signer = RecordingSigner::from_seed(&[1; 32]);
        let text = encode_public_key(&signer.verifying_key());
        assert_eq!(decode_public_key(&text).unwrap(), signer.verifying_key());
        assert_eq!(signer.key_id().as_str().len(), 16);
        assert!(decode_public_key("AAAA").is_err());
    }
}
