//! The SigV4 signing key and the HMAC and hash primitives over it.

use chaperone_config::Redacted;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The algorithm name of every signature this module accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lower-case hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    chaperone_recording::lower_hex(sha256(data))
}

/// HMAC-SHA256. The key is brought to the block size here (hashed when longer, zero-padded),
/// exactly as HMAC does itself, so the infallible constructor applies.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The key derived from a secret access key for one day, region and service
/// (`kSigning` in AWS's documentation). It signs the request and every chunk of its body.
#[derive(Clone, Debug)]
pub struct SigningKey(Redacted<[u8; 32]>);

impl SigningKey {
    /// Derives the key: HMAC chain over `date` (YYYYMMDD), `region`, `service`, `aws4_request`.
    pub fn derive(secret_access_key: &str, date: &str, region: &str, service: &str) -> Self {
        let mut seed = Vec::with_capacity(4 + secret_access_key.len());
        seed.extend_from_slice(b"AWS4");
        seed.extend_from_slice(secret_access_key.as_bytes());
        let date_key = hmac_sha256(&seed, date.as_bytes());
        let region_key = hmac_sha256(&date_key, region.as_bytes());
        let service_key = hmac_sha256(&region_key, service.as_bytes());
        Self(Redacted(hmac_sha256(&service_key, b"aws4_request")))
    }

    /// The signature of `string_to_sign`.
    pub fn sign(&self, string_to_sign: &[u8]) -> [u8; 32] {
        hmac_sha256(&*self.0, string_to_sign)
    }
}

/// Compares two signatures in time independent of where they differ.
pub(crate) fn signatures_match(computed: &[u8; 32], provided: &[u8; 32]) -> bool {
    computed.ct_eq(provided).into()
}

/// Decodes a 64-digit hex signature.
pub(crate) fn decode_signature(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_matches_aws_documentation_example() {
        // From AWS's "Examples of how to derive a signing key for Signature Version 4".
        let key = SigningKey::derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(*key.0),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn hmac_with_a_key_longer_than_a_block_hashes_the_key_first() {
        // RFC 4231 test case 6.
        let key = [0xaa_u8; 131];
        let tag = hmac_sha256(&key, b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            hex::encode(tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
