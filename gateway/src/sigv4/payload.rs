//! How the body is bound to the signature (`x-amz-content-sha256`), and the check of a body
//! against the hash it was signed with.

use sha2::{Digest, Sha256};

use super::error::SigV4Error;

/// `x-amz-content-sha256` value of an unsigned body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// aws-chunked body, every chunk signed.
pub const STREAMING_SIGNED_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// aws-chunked body, every chunk and the trailing headers signed.
pub const STREAMING_SIGNED_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// aws-chunked body without chunk signatures, with trailing checksum headers.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// How the verified signature covers the body, and so what the caller still has to check
/// while it streams the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMode {
    /// The signature covers this SHA-256 of the body (`x-amz-content-sha256`). Hash the body as
    /// it streams and refuse it when it differs: see [`BodyHashVerifier`].
    Sha256 { expected: [u8; 32] },
    /// No `x-amz-content-sha256`: the caller hashed the whole body and the signature was checked
    /// over that hash. Nothing is left to check.
    BodyHashVerified,
    /// `UNSIGNED-PAYLOAD` (or a presigned S3 URL): the body is not covered by the signature.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: an aws-chunked body whose chunks chain
    /// signatures from the request's. Decode it with a
    /// [`ChunkedPayloadVerifier`](super::ChunkedPayloadVerifier).
    StreamingSigned { trailer: bool },
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked without chunk signatures, ending in
    /// trailing checksum headers. Decode it with a
    /// [`ChunkedPayloadVerifier`](super::ChunkedPayloadVerifier).
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    /// Reads an `x-amz-content-sha256` value.
    pub fn from_content_sha256(value: &str) -> Result<Self, SigV4Error> {
        match value {
            UNSIGNED_PAYLOAD => Ok(Self::Unsigned),
            STREAMING_SIGNED_PAYLOAD => Ok(Self::StreamingSigned { trailer: false }),
            STREAMING_SIGNED_PAYLOAD_TRAILER => Ok(Self::StreamingSigned { trailer: true }),
            STREAMING_UNSIGNED_PAYLOAD_TRAILER => Ok(Self::StreamingUnsignedTrailer),
            other if other.starts_with("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD") => {
                Err(SigV4Error::UnsupportedAlgorithm { algorithm: other.to_owned() })
            }
            other => {
                let mut expected = [0u8; 32];
                match hex::decode_to_slice(other, &mut expected) {
                    Ok(()) => Ok(Self::Sha256 { expected }),
                    Err(_) => Err(SigV4Error::InvalidContentSha256 { value: other.to_owned() }),
                }
            }
        }
    }

    /// Whether the body is aws-chunked (decode it with a `ChunkedPayloadVerifier`).
    pub fn is_chunked(&self) -> bool {
        matches!(self, Self::StreamingSigned { .. } | Self::StreamingUnsignedTrailer)
    }
}

/// Hashes a body as it streams and checks it against the SHA-256 it was signed with.
#[derive(Debug, Clone)]
pub struct BodyHashVerifier {
    expected: [u8; 32],
    hasher: Sha256,
}

impl BodyHashVerifier {
    pub fn new(expected: [u8; 32]) -> Self {
        Self { expected, hasher: Sha256::new() }
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Checks the whole body's hash. Call it before the last byte is passed on as trusted.
    pub fn finish(self) -> Result<(), SigV4Error> {
        let computed: [u8; 32] = self.hasher.finalize().into();
        if super::signing_key::signatures_match(&computed, &self.expected) {
            Ok(())
        } else {
            Err(SigV4Error::ContentSha256Mismatch {
                expected: chaperone_recording::lower_hex(self.expected),
                computed: chaperone_recording::lower_hex(computed),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_sha256_values_map_to_modes() {
        assert_eq!(PayloadMode::from_content_sha256("UNSIGNED-PAYLOAD"), Ok(PayloadMode::Unsigned));
        assert_eq!(
            PayloadMode::from_content_sha256("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
            Ok(PayloadMode::StreamingSigned { trailer: true })
        );
        assert!(matches!(
            PayloadMode::from_content_sha256("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
            Err(SigV4Error::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            PayloadMode::from_content_sha256("abc"),
            Err(SigV4Error::InvalidContentSha256 { .. })
        ));
    }

    #[test]
    fn body_hash_verifier_accepts_the_signed_body_and_refuses_another() {
        let expected: [u8; 32] = Sha256::digest(b"hello world").into();
        let mut verifier = BodyHashVerifier::new(expected);
        verifier.update(b"hello ");
        verifier.update(b"world");
        assert_eq!(verifier.finish(), Ok(()));
        let mut verifier = BodyHashVerifier::new(expected);
        verifier.update(b"hello World");
        assert!(matches!(verifier.finish(), Err(SigV4Error::ContentSha256Mismatch { .. })));
    }
}
