//! `Hash256`: a SHA-256 value, written as 64 lowercase hex digits; and the event chain's rules.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Lowercase hex of `bytes`, two digits per byte by table lookup (`hex::encode` builds its
/// `String` one `char` at a time; this runs on every hash the data path writes).
pub fn lower_hex(bytes: impl AsRef<[u8]>) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bytes = bytes.as_ref();
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    // Only ASCII digits were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// A hex string that is not 64 lowercase hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not a sha256 value (64 lowercase hex digits)")]
pub struct HashParseError {
    pub text: String,
}

/// A SHA-256 value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash256([u8; 32]);

impl Hash256 {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: impl AsRef<[u8]>) -> Self {
        Self(Sha256::digest(bytes.as_ref()).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        lower_hex(self.0)
    }

    /// Parses exactly 64 lowercase hex digits.
    pub fn from_hex(text: &str) -> Result<Self, HashParseError> {
        let err = || HashParseError { text: text.to_owned() };
        if text.len() != 64
            || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({})", self.to_hex())
    }
}

impl Serialize for Hash256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// The `prev` of the first event of a stream: SHA-256 of the UTF-8 text
/// `chaperone:v1:<session>:<replica>`.
pub fn chain_genesis(session: &str, replica: &str) -> Hash256 {
    Hash256::of(format!("chaperone:v1:{session}:{replica}"))
}

/// The chain value of one event: SHA-256 of its JSON line bytes, without the terminating LF.
/// The next event's `prev` must equal it.
pub fn line_hash(line: &[u8]) -> Hash256 {
    Hash256::of(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_hex_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(lower_hex(&bytes), hex::encode(&bytes));
        assert_eq!(lower_hex([]), "");
    }

    #[test]
    fn hex_round_trips_and_rejects_uppercase() {
        let h = Hash256::of(b"abc");
        assert_eq!(h.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Hash256::from_hex(&h.to_hex()).unwrap(), h);
        assert!(Hash256::from_hex(&h.to_hex().to_uppercase()).is_err());
        assert!(Hash256::from_hex("ab").is_err());
    }

    #[test]
    fn genesis_depends_on_session_and_replica() {
        assert_eq!(chain_genesis("s", "r"), Hash256::of(b"chaperone:v1:s:r"));
        assert_ne!(chain_genesis("s", "r1"), chain_genesis("s", "r2"));
    }
}
