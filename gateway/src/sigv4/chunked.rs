//! [`ChunkedPayloadVerifier`]: decodes an aws-chunked body incrementally and checks its chunk
//! signature chain and trailing headers.
//!
//! Wire format (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, optionally `-TRAILER`):
//! `<hex size>;chunk-signature=<sig>\r\n<data>\r\n` ... `0;chunk-signature=<sig>\r\n`, then
//! trailing headers (`name:value\r\n`, the last being `x-amz-trailer-signature:<sig>` when
//! signed) and an empty line. `STREAMING-UNSIGNED-PAYLOAD-TRAILER` is the same without
//! `;chunk-signature=` and without the trailer signature.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::error::SigV4Error;
use super::signing_key::{SigningKey, decode_signature, sha256_hex, signatures_match};

/// The longest chunk-size or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;
/// The most trailing-header bytes accepted.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// The default largest chunk: a signed chunk is held until its signature checks out.
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 16 * 1024 * 1024;

const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The running signature of a streaming body: the request's signing key and scope, and the
/// signature the next chunk must chain from (the seed is the request's own signature).
#[derive(Debug, Clone)]
pub(crate) struct SignatureChain {
    pub key: SigningKey,
    pub amz_date: String,
    pub scope_line: String,
    pub previous: [u8; 32],
}

impl SignatureChain {
    fn expected(&self, algorithm: &str, payload_hash: &str) -> [u8; 32] {
        let string_to_sign = format!(
            "{algorithm}\n{}\n{}\n{}\n{payload_hash}",
            self.amz_date,
            self.scope_line,
            chaperone_recording::lower_hex(self.previous)
        );
        self.key.sign(string_to_sign.as_bytes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ChunkHeader,
    ChunkData { remaining: u64 },
    ChunkDataEnd,
    Trailers,
    Done,
}

/// What a fully decoded aws-chunked body ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedPayloadSummary {
    /// Bytes of payload produced.
    pub decoded_length: u64,
    /// Chunks read, the final empty one included.
    pub chunk_count: u64,
    /// The trailing headers (lower-case names, trimmed values), without the trailer signature.
    /// `x-amz-checksum-sha256` has been checked against the body; other checksum algorithms are
    /// passed on for the upstream to check.
    pub trailers: Vec<(String, String)>,
}

/// Decodes an aws-chunked body fed in arbitrary pieces and yields only verified payload bytes:
/// in a signed mode a chunk is released once its signature continues the chain.
#[derive(Debug)]
pub struct ChunkedPayloadVerifier {
    chain: Option<SignatureChain>,
    trailer_expected: bool,
    declared_trailers: Vec<String>,
    decoded_content_length: Option<u64>,
    max_chunk_bytes: u64,
    state: State,
    line: Vec<u8>,
    chunk: Vec<u8>,
    chunk_hasher: Sha256,
    chunk_signature: Option<[u8; 32]>,
    body_hasher: Sha256,
    offset: u64,
    decoded: u64,
    chunk_count: u64,
    trailer_bytes: usize,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<[u8; 32]>,
    failed: Option<SigV4Error>,
}

impl ChunkedPayloadVerifier {
    /// A decoder for one body. `chain` is `None` for `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
    /// A verifier for a signed chunk chain seeded with `seed_signature` (hex), for tests of
    /// bodies the gateway signs itself.
    #[cfg(test)]
    pub(crate) fn for_test_chain(
        key: SigningKey,
        amz_date: &str,
        scope_line: &str,
        seed_signature: &str,
    ) -> Self {
        let mut previous = [0u8; 32];
        let _ = hex::decode_to_slice(seed_signature, &mut previous);
        Self::new(
            Some(SignatureChain {
                key,
                amz_date: amz_date.to_owned(),
                scope_line: scope_line.to_owned(),
                previous,
            }),
            false,
            Vec::new(),
            None,
        )
    }

    pub(crate) fn new(
        chain: Option<SignatureChain>,
        trailer_expected: bool,
        declared_trailers: Vec<String>,
        decoded_content_length: Option<u64>,
    ) -> Self {
        Self {
            chain,
            trailer_expected,
            declared_trailers,
            decoded_content_length,
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES as u64,
            state: State::ChunkHeader,
            line: Vec::new(),
            chunk: Vec::new(),
            chunk_hasher: Sha256::new(),
            chunk_signature: None,
            body_hasher: Sha256::new(),
            offset: 0,
            decoded: 0,
            chunk_count: 0,
            trailer_bytes: 0,
            trailers: Vec::new(),
            trailer_signature: None,
            failed: None,
        }
    }

    /// Caps the size of one chunk (default [`DEFAULT_MAX_CHUNK_BYTES`]); a larger chunk is refused.
    pub fn with_max_chunk_bytes(mut self, max: usize) -> Self {
        self.max_chunk_bytes = max as u64;
        self
    }

    /// Whether the final chunk and trailers have been read.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    fn malformed(&self, detail: impl Into<String>) -> SigV4Error {
        SigV4Error::MalformedChunk { offset: self.offset, detail: detail.into() }
    }

    /// Feeds the next bytes of the wire body and appends the payload bytes they complete (and
    /// that verified) to `out`. After an error the body is refused for good: every later call
    /// fails too.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), SigV4Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.decode(input, out);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), SigV4Error> {
        while !input.is_empty() {
            match self.state {
                State::ChunkHeader => {
                    if let Some(line) = self.read_line(&mut input)? {
                        self.start_chunk(&line)?;
                    }
                }
                State::ChunkData { remaining } => {
                    let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
                    let (data, rest) = input.split_at(take);
                    input = rest;
                    self.offset += take as u64;
                    self.decoded += take as u64;
                    if let Some(limit) = self.decoded_content_length
                        && self.decoded > limit
                    {
                        return Err(self.malformed(format!(
                            "the chunks carry more than x-amz-decoded-content-length {limit} bytes"
                        )));
                    }
                    self.body_hasher.update(data);
                    if self.chain.is_some() {
                        self.chunk_hasher.update(data);
                        self.chunk.extend_from_slice(data);
                    } else {
                        out.extend_from_slice(data);
                    }
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData { remaining }
                    };
                }
                State::ChunkDataEnd => {
                    if let Some(line) = self.read_line(&mut input)? {
                        if !line.is_empty() {
                            return Err(self.malformed("chunk data is not followed by CRLF"));
                        }
                        self.finish_chunk(out)?;
                        self.state = State::ChunkHeader;
                    }
                }
                State::Trailers => {
                    if let Some(line) = self.read_line(&mut input)? {
                        if line.is_empty() {
                            self.finish_trailers()?;
                            self.state = State::Done;
                        } else {
                            self.add_trailer(&line)?;
                        }
                    }
                }
                State::Done => {
                    return Err(self.malformed("bytes follow the final chunk"));
                }
            }
        }
        Ok(())
    }

    /// Ends the body: refuses it when the final chunk or trailers did not arrive.
    pub fn finish(self) -> Result<ChunkedPayloadSummary, SigV4Error> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        if self.state != State::Done {
            return Err(SigV4Error::IncompleteBody {
                detail: format!(
                    "the aws-chunked body ended after {} bytes without its final chunk",
                    self.offset
                ),
            });
        }
        if let Some(expected) = self.decoded_content_length
            && expected != self.decoded
        {
            return Err(SigV4Error::IncompleteBody {
                detail: format!(
                    "x-amz-decoded-content-length is {expected} but the chunks carried {} bytes",
                    self.decoded
                ),
            });
        }
        Ok(ChunkedPayloadSummary {
            decoded_length: self.decoded,
            chunk_count: self.chunk_count,
            trailers: self.trailers,
        })
    }

    /// Collects bytes up to CRLF across feeds; returns the line without CRLF once complete.
    fn read_line(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, SigV4Error> {
        let (taken, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(index) => (index + 1, true),
            None => (input.len(), false),
        };
        let (head, rest) = input.split_at(taken);
        self.line.extend_from_slice(head);
        *input = rest;
        self.offset += taken as u64;
        if self.line.len() > MAX_LINE_BYTES {
            return Err(self.malformed(format!("a line is longer than {MAX_LINE_BYTES} bytes")));
        }
        if !complete {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.line);
        if !line.ends_with(b"\r\n") {
            return Err(self.malformed("a line ends in LF without CR"));
        }
        line.truncate(line.len() - 2);
        Ok(Some(line))
    }

    fn start_chunk(&mut self, line: &[u8]) -> Result<(), SigV4Error> {
        let text = std::str::from_utf8(line)
            .map_err(|_| self.malformed("the chunk header is not ASCII"))?;
        let (size_text, extensions) = text.split_once(';').unwrap_or((text, ""));
        let size_text = size_text.trim();
        if size_text.is_empty() || size_text.len() > 16 {
            return Err(self.malformed(format!("chunk size {size_text:?} is not hex")));
        }
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| self.malformed(format!("chunk size {size_text:?} is not hex")))?;
        if size > self.max_chunk_bytes {
            return Err(self.malformed(format!(
                "chunk of {size} bytes exceeds the limit of {} bytes",
                self.max_chunk_bytes
            )));
        }
        if self.chain.is_some() {
            let signature = extensions
                .split(';')
                .find_map(|ext| ext.trim().strip_prefix("chunk-signature="))
                .ok_or_else(|| self.malformed("the chunk header has no chunk-signature"))?;
            self.chunk_signature = Some(
                decode_signature(signature)
                    .ok_or_else(|| self.malformed("chunk-signature is not 64 hex digits"))?,
            );
        }
        self.chunk_count += 1;
        if size == 0 {
            self.finish_chunk(&mut Vec::new())?;
            self.state = State::Trailers;
        } else {
            self.state = State::ChunkData { remaining: size };
        }
        Ok(())
    }

    /// Checks the buffered chunk's signature and releases its bytes.
    fn finish_chunk(&mut self, out: &mut Vec<u8>) -> Result<(), SigV4Error> {
        let hasher = std::mem::take(&mut self.chunk_hasher);
        let Some(chain) = self.chain.as_mut() else {
            return Ok(());
        };
        let chunk_hash = chaperone_recording::lower_hex(hasher.finalize());
        let expected = chain
            .expected("AWS4-HMAC-SHA256-PAYLOAD", &format!("{EMPTY_SHA256_HEX}\n{chunk_hash}"));
        let provided = self.chunk_signature.take().unwrap_or_default();
        if !signatures_match(&expected, &provided) {
            return Err(SigV4Error::ChunkSignatureDoesNotMatch {
                chunk_index: self.chunk_count.saturating_sub(1),
            });
        }
        chain.previous = provided;
        out.append(&mut self.chunk);
        Ok(())
    }

    fn add_trailer(&mut self, line: &[u8]) -> Result<(), SigV4Error> {
        if !self.trailer_expected {
            return Err(self.malformed(
                "trailing headers follow the final chunk, but x-amz-content-sha256 declares no trailer",
            ));
        }
        self.trailer_bytes += line.len();
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(
                self.malformed(format!("trailing headers exceed {MAX_TRAILER_BYTES} bytes"))
            );
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| self.malformed("a trailing header is not UTF-8"))?;
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| self.malformed(format!("trailing header {text:?} is not name:value")))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        if name == "x-amz-trailer-signature" {
            if self.chain.is_none() || self.trailer_signature.is_some() {
                return Err(self.malformed("unexpected x-amz-trailer-signature"));
            }
            self.trailer_signature =
                Some(decode_signature(&value).ok_or_else(|| {
                    self.malformed("x-amz-trailer-signature is not 64 hex digits")
                })?);
        } else if self.trailer_signature.is_some() {
            return Err(self.malformed("a trailing header follows x-amz-trailer-signature"));
        } else {
            self.trailers.push((name, value));
        }
        Ok(())
    }

    fn finish_trailers(&mut self) -> Result<(), SigV4Error> {
        if let Some(chain) = &self.chain
            && self.trailer_expected
        {
            let provided = self.trailer_signature.ok_or_else(|| {
                self.malformed("the signed trailer has no x-amz-trailer-signature")
            })?;
            let mut sorted: Vec<&(String, String)> = self.trailers.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut canonical = String::new();
            for (name, value) in sorted {
                canonical.push_str(name);
                canonical.push(':');
                canonical.push_str(value);
                canonical.push('\n');
            }
            let expected =
                chain.expected("AWS4-HMAC-SHA256-TRAILER", &sha256_hex(canonical.as_bytes()));
            if !signatures_match(&expected, &provided) {
                return Err(SigV4Error::ChunkSignatureDoesNotMatch {
                    chunk_index: self.chunk_count,
                });
            }
        }
        for (name, _) in &self.trailers {
            if !self.declared_trailers.iter().any(|declared| declared == name) {
                return Err(self.malformed(format!(
                    "trailing header {name} was not declared in x-amz-trailer"
                )));
            }
        }
        for declared in &self.declared_trailers {
            if !self.trailers.iter().any(|(name, _)| name == declared) {
                return Err(SigV4Error::IncompleteBody {
                    detail: format!(
                        "the trailing header {declared} declared in x-amz-trailer did not arrive"
                    ),
                });
            }
        }
        let body_sha256 = std::mem::take(&mut self.body_hasher).finalize();
        if let Some((name, value)) =
            self.trailers.iter().find(|(name, _)| name == "x-amz-checksum-sha256")
        {
            let computed = base64::engine::general_purpose::STANDARD.encode(body_sha256);
            if &computed != value {
                return Err(SigV4Error::TrailerChecksumMismatch {
                    name: name.clone(),
                    detail: format!("the trailer says {value}, the body hashes to {computed}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned_decoder(declared: &[&str]) -> ChunkedPayloadVerifier {
        ChunkedPayloadVerifier::new(
            None,
            true,
            declared.iter().map(|name| (*name).to_owned()).collect(),
            None,
        )
    }

    fn decode(decoder: &mut ChunkedPayloadVerifier, wire: &[u8]) -> Result<Vec<u8>, SigV4Error> {
        let mut out = Vec::new();
        decoder.feed(wire, &mut out)?;
        Ok(out)
    }

    #[test]
    fn framing_errors_are_refused_with_their_offset() {
        let cases: [(&[u8], &str); 5] = [
            (b"zz\r\n", "not hex"),
            (b"3\nabc\r\n", "LF without CR"),
            (b"3\r\nabcX\r\n", "not followed by CRLF"),
            (b"0\r\n\r\nextra", "bytes follow the final chunk"),
            (b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", "not declared"),
        ];
        for (wire, expected) in cases {
            let error = decode(&mut unsigned_decoder(&[]), wire).unwrap_err();
            assert!(
                matches!(&error, SigV4Error::MalformedChunk { detail, .. } if detail.contains(expected)),
                "{:?}: {error:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn a_chunk_over_the_size_limit_is_refused_before_it_is_buffered() {
        let mut decoder = unsigned_decoder(&[]).with_max_chunk_bytes(4);
        let error = decode(&mut decoder, b"5\r\n").unwrap_err();
        assert!(matches!(error, SigV4Error::MalformedChunk { .. }), "{error:?}");
    }

    #[test]
    fn after_an_error_every_later_feed_and_the_finish_fail() {
        let mut decoder = unsigned_decoder(&[]);
        assert!(decode(&mut decoder, b"x\r\n").is_err());
        assert!(decode(&mut decoder, b"0\r\n\r\n").is_err());
        assert!(decoder.finish().is_err());
    }

    #[test]
    fn a_declared_trailer_that_never_arrives_leaves_the_body_incomplete() {
        let mut decoder = unsigned_decoder(&["x-amz-checksum-crc32"]);
        let error = decode(&mut decoder, b"1\r\na\r\n0\r\n\r\n").unwrap_err();
        assert!(matches!(error, SigV4Error::IncompleteBody { .. }), "{error:?}");
    }

    #[test]
    fn unsigned_chunks_stream_out_as_they_arrive() {
        let mut decoder = unsigned_decoder(&["x-amz-checksum-crc32"]);
        let mut out = Vec::new();
        decoder.feed(b"5\r\nhel", &mut out).unwrap();
        assert_eq!(out, b"hel");
        decoder.feed(b"lo\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n", &mut out).unwrap();
        assert_eq!(out, b"hello");
        let summary = decoder.finish().unwrap();
        assert_eq!(summary.trailers, [("x-amz-checksum-crc32".to_owned(), "NhCmhg==".to_owned())]);
    }
}
