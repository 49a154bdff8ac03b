//! Body plumbing on the data path: the agent's body as a call holds it ([`Inbound`]: small ones
//! read whole, large ones streamed), bounded buffering, streaming capture for the recorder, and
//! streamed decoding of aws-chunked uploads. Nothing here holds a whole large body in memory.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use chaperone_recording::{Body as RecordedBody, Hash256, StreamedBody};
use http::{HeaderMap, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::{
    approval::BodyDigest,
    forward::{BoxError, OutboundPayload},
    identity::SessionContext,
    server::GatewayBody,
    sigv4::{ChunkedPayloadVerifier, PayloadMode, SigV4Error, VerifiedRequest},
};

/// Largest body buffered for services whose signature covers the body hash (JSON and query
/// protocols): their payloads are small by AWS's own limits.
pub const MAX_BUFFERED_BODY: usize = 16 * 1024 * 1024;
/// Bodies up to this size are buffered before forwarding (for classification and an exact
/// recording); larger S3 bodies stream.
pub const STREAM_THRESHOLD: u64 = 1024 * 1024;

/// The agent's request body, as the data path holds it.
pub enum Inbound {
    /// Read whole: `wire` as received, `payload` decoded (differs for aws-chunked), `hash` of payload.
    Buffered {
        /// The bytes as received.
        wire: Bytes,
        /// The payload (aws-chunked decoded).
        payload: Bytes,
        /// SHA-256 of `payload`.
        hash: [u8; 32],
    },
    /// Streams through; `size` and `declared_sha256` are what the request says of it.
    Streamed {
        /// The rest of the body.
        body: GatewayBody,
        /// The payload size the request declares.
        size: Option<u64>,
        /// The payload hash the request declares.
        declared_sha256: Option<[u8; 32]>,
        /// How the payload is signed upstream.
        payload: OutboundPayload,
        /// The first bytes, read ahead for the write-ahead record.
        prefix: Bytes,
        /// For a body that goes upstream still aws-chunked (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`):
        /// the decoder that finds its payload, so the payload's hash can be measured.
        wire_decoder: Option<Box<ChunkedPayloadVerifier>>,
    },
}

/// Why an agent's body could not be read.
pub enum InboundError {
    /// It does not match its signature.
    Auth(SigV4Error),
    /// It could not be read (too large, broken off).
    Read(String),
}

impl Inbound {
    /// A body read whole whose wire bytes are its payload.
    pub fn buffered(bytes: Bytes) -> Self {
        let hash = sha256(&bytes);
        Inbound::Buffered { payload: bytes.clone(), wire: bytes, hash }
    }

    /// Reads (small) or prepares to stream (large) the body of a verified request, checking it
    /// against its signed payload hash or chunk signatures.
    pub async fn read(
        verified: &VerifiedRequest<SessionContext>,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Inbound, InboundError> {
        let content_length = header_u64(headers, header::CONTENT_LENGTH.as_str());
        let decoded_length = header_u64(headers, "x-amz-decoded-content-length");
        let small = |length: Option<u64>| length.is_some_and(|l| l <= STREAM_THRESHOLD);
        let read = |e: BufferError| InboundError::Read(e.to_string());
        match verified.payload {
            PayloadMode::Sha256 { expected }
                if small(content_length) || content_length.is_none() =>
            {
                let inbound =
                    Inbound::buffered(buffer_body(body, MAX_BUFFERED_BODY).await.map_err(read)?);
                if let Inbound::Buffered { hash, .. } = &inbound
                    && *hash != expected
                {
                    return Err(InboundError::Auth(SigV4Error::ContentSha256Mismatch {
                        expected: chaperone_recording::lower_hex(expected),
                        computed: chaperone_recording::lower_hex(hash),
                    }));
                }
                Ok(inbound)
            }
            PayloadMode::Unsigned | PayloadMode::BodyHashVerified
                if small(content_length) || content_length.is_none() =>
            {
                Ok(Inbound::buffered(buffer_body(body, MAX_BUFFERED_BODY).await.map_err(read)?))
            }
            PayloadMode::Sha256 { expected } => Ok(Inbound::Streamed {
                body: body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
                size: content_length,
                declared_sha256: Some(expected),
                payload: OutboundPayload::Sha256Hex(chaperone_recording::lower_hex(expected)),
                prefix: Bytes::new(),
                wire_decoder: None,
            }),
            PayloadMode::Unsigned | PayloadMode::BodyHashVerified => Ok(Inbound::Streamed {
                body: body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
                size: content_length,
                declared_sha256: None,
                payload: OutboundPayload::Unsigned,
                prefix: Bytes::new(),
                wire_decoder: None,
            }),
            PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer => {
                let Some(mut decoder) = verified.chunked_payload_verifier() else {
                    return Err(InboundError::Read("an aws-chunked body without a decoder".into()));
                };
                if small(decoded_length) {
                    let wire = buffer_body(body, MAX_BUFFERED_BODY).await.map_err(read)?;
                    let mut payload = Vec::new();
                    decoder.feed(&wire, &mut payload).map_err(InboundError::Auth)?;
                    decoder.finish().map_err(InboundError::Auth)?;
                    let hash = sha256(&payload);
                    Ok(Inbound::Buffered { wire, payload: Bytes::from(payload), hash })
                } else if matches!(verified.payload, PayloadMode::StreamingUnsignedTrailer) {
                    Ok(Inbound::Streamed {
                        body: body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
                        size: decoded_length,
                        declared_sha256: None,
                        payload: OutboundPayload::StreamingUnsignedTrailer,
                        prefix: Bytes::new(),
                        wire_decoder: Some(Box::new(decoder)),
                    })
                } else {
                    // Verified chunk by chunk here, re-chunked and re-signed upstream.
                    let payload = match decoded_length {
                        Some(decoded_length) => OutboundPayload::StreamingSigned { decoded_length },
                        None => OutboundPayload::Unsigned,
                    };
                    Ok(Inbound::Streamed {
                        body: DechunkingBody::new(body, decoder).boxed_unsync(),
                        size: decoded_length,
                        declared_sha256: None,
                        payload,
                        prefix: Bytes::new(),
                        wire_decoder: None,
                    })
                }
            }
        }
    }

    /// A streamed body with its first `limit` bytes read ahead (bounded) for the write-ahead
    /// record; a buffered body, or `limit` 0, as it is.
    pub async fn with_prefix(self, limit: usize) -> Result<Inbound, BoxError> {
        match self {
            Inbound::Streamed { body, size, declared_sha256, payload, wire_decoder, .. }
                if limit > 0 =>
            {
                let (prefix, rest) = split_prefix(body, limit).await?;
                Ok(Inbound::Streamed {
                    body: rest.boxed_unsync(),
                    size,
                    declared_sha256,
                    payload,
                    prefix,
                    wire_decoder,
                })
            }
            other => Ok(other),
        }
    }

    /// The first `limit` bytes of the body with its size and hash, as the recording holds them.
    pub fn recorded_body(&self, limit: usize) -> RecordedBody {
        match self {
            Inbound::Buffered { payload, hash, .. } => {
                let end = payload.len().min(limit);
                RecordedBody::captured(
                    &payload[..end],
                    payload.len() as u64,
                    Hash256::from_bytes(*hash),
                )
            }
            Inbound::Streamed { size, declared_sha256, prefix, .. } => RecordedBody::captured(
                &prefix[..prefix.len().min(limit)],
                size.unwrap_or(0),
                Hash256::from_bytes(declared_sha256.unwrap_or([0; 32])),
            ),
        }
    }

    /// The body as an approval fingerprint sees it: a streamed body without a declared sha256
    /// (unsigned, or signed chunk by chunk by the agent itself) is unbound.
    pub fn body_digest(&self) -> BodyDigest {
        match self {
            Inbound::Buffered { hash, .. } => BodyDigest::Sha256(*hash),
            Inbound::Streamed { declared_sha256: Some(hash), .. } => {
                BodyDigest::DeclaredSha256(*hash)
            }
            Inbound::Streamed { size, payload, .. } => BodyDigest::Unbound {
                size: *size,
                payload_mode: match payload {
                    OutboundPayload::Sha256Hex(_) => "a payload hash",
                    OutboundPayload::Unsigned => "UNSIGNED-PAYLOAD",
                    OutboundPayload::StreamingUnsignedTrailer => {
                        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
                    }
                    OutboundPayload::StreamingSigned { .. } => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                },
            },
        }
    }

    /// The body with a streamed one measured as it passes (its payload's size and sha256, and
    /// checked against a declared sha256: a body that does not match is cut off before its last
    /// byte); what was measured lands in the returned [`StreamedPayload`]. A buffered body is
    /// measured already: `None`.
    pub fn measured(self) -> (Inbound, Option<StreamedPayload>) {
        match self {
            Inbound::Streamed { body, size, declared_sha256, payload, prefix, wire_decoder } => {
                let measured = StreamedPayload::default();
                // Still aws-chunked on the wire: the payload ends where the decoder says.
                let length = if wire_decoder.is_some() { None } else { size };
                let body = PayloadHashingBody::new(
                    body,
                    length,
                    declared_sha256,
                    wire_decoder,
                    measured.clone(),
                );
                let inbound = Inbound::Streamed {
                    body: body.boxed_unsync(),
                    size,
                    declared_sha256,
                    payload,
                    prefix,
                    wire_decoder: None,
                };
                (inbound, Some(measured))
            }
            buffered => (buffered, None),
        }
    }

    /// The bytes a reader may look at without consuming the body: the payload of a buffered
    /// body, none of a streamed one.
    pub fn buffered_payload(&self) -> Option<&[u8]> {
        match self {
            Inbound::Buffered { payload, .. } => Some(&payload[..]),
            Inbound::Streamed { .. } => None,
        }
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What a capturing body saw, handed over once the body ends (or is dropped early).
#[derive(Debug, Clone, Default)]
pub struct CapturedBody {
    /// The first bytes, at most the capture limit.
    pub prefix: Bytes,
    /// Bytes seen in all.
    pub size: u64,
    /// sha256 of every byte seen.
    pub sha256: [u8; 32],
    /// Whether the body ended normally (false: error or dropped by the client).
    pub complete: bool,
    /// The error that ended it, if one did.
    pub error: Option<String>,
}

/// Why a body could not be buffered.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The body is larger than the gateway buffers for this kind of request.
    #[error(
        "the request body is larger than {limit} bytes, the most the gateway buffers for this service"
    )]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client's connection failed while sending.
    #[error("reading the request body failed: {0}")]
    Read(String),
}

/// Reads a whole body, refusing it past `limit` bytes.
pub async fn buffer_body<B>(body: B, limit: usize) -> Result<Bytes, BufferError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut body = body;
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BufferError::Read(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(BufferError::TooLarge { limit });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

type OnEnd = Box<dyn FnOnce(CapturedBody) + Send>;

/// Streams a body through unchanged while hashing all of it and keeping its first `limit` bytes;
/// calls `on_end` exactly once, when the body ends, fails, or is dropped.
pub struct CapturingBody<B> {
    inner: B,
    limit: usize,
    prefix: BytesMut,
    size: u64,
    hasher: Sha256,
    on_end: Option<OnEnd>,
}

impl<B> CapturingBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, limit: usize, on_end: impl FnOnce(CapturedBody) + Send + 'static) -> Self {
        Self {
            inner,
            limit,
            prefix: BytesMut::new(),
            size: 0,
            hasher: Sha256::new(),
            on_end: Some(Box::new(on_end)),
        }
    }

    fn finish(&mut self, complete: bool, error: Option<String>) {
        if let Some(on_end) = self.on_end.take() {
            let hasher = std::mem::take(&mut self.hasher);
            on_end(CapturedBody {
                prefix: std::mem::take(&mut self.prefix).freeze(),
                size: self.size,
                sha256: hasher.finalize().into(),
                complete,
                error,
            });
        }
    }
}

impl<B> Drop for CapturingBody<B> {
    fn drop(&mut self) {
        self.finish(false, Some("the body was not read to its end".into()));
    }
}

impl<B> Body for CapturingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.hasher.update(data);
                    this.size += data.len() as u64;
                    let room = this.limit.saturating_sub(this.prefix.len());
                    this.prefix.extend_from_slice(&data[..room.min(data.len())]);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish(false, Some(error.to_string()));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.finish(true, None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a streamed request body turned out to be once it passed, shared between the body on its
/// way upstream and the response event that records it.
#[derive(Clone, Debug, Default)]
pub struct StreamedPayload(Arc<Mutex<Option<StreamedBody>>>);

impl StreamedPayload {
    /// The measurement, once the body ended (or broke off).
    pub fn get(&self) -> Option<StreamedBody> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, measured: StreamedBody) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(measured);
    }
}

/// A request body that does not match the sha256 its request declared.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body does not match its x-amz-content-sha256 (declared {declared}, the {size} bytes sent hash to {sent}); the gateway cut it off before its end, so the upstream never received it whole"
)]
pub struct PayloadMismatch {
    /// The declared hash, hex.
    pub declared: String,
    /// The hash of what was sent, hex.
    pub sent: String,
    /// Bytes sent.
    pub size: u64,
}

/// Streams a request body through while hashing its payload (the decoded payload of a raw
/// aws-chunked body); with a declared sha256 and length, the frame that completes the body is
/// released only when the hash matches, so a body that differs from what was signed and decided
/// never reaches the upstream whole.
pub struct PayloadHashingBody<B> {
    inner: B,
    hasher: Sha256,
    size: u64,
    length: Option<u64>,
    declared: Option<[u8; 32]>,
    decoder: Option<Box<ChunkedPayloadVerifier>>,
    measured: StreamedPayload,
    ended: bool,
}

impl<B> PayloadHashingBody<B> {
    /// Wraps `inner`: `length` is the payload's declared length (where the body ends), `declared`
    /// its declared sha256, `decoder` the aws-chunked decoder of a body that stays chunked on the
    /// wire.
    pub fn new(
        inner: B,
        length: Option<u64>,
        declared: Option<[u8; 32]>,
        decoder: Option<Box<ChunkedPayloadVerifier>>,
        measured: StreamedPayload,
    ) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            size: 0,
            length,
            declared,
            decoder,
            measured,
            ended: false,
        }
    }

    fn finish(&mut self, complete: bool) -> [u8; 32] {
        let sha256: [u8; 32] = self.hasher.clone().finalize().into();
        if !self.ended {
            self.ended = true;
            self.measured.set(StreamedBody {
                size: self.size,
                sha256: Hash256::from_bytes(sha256),
                complete,
            });
        }
        sha256
    }

    /// Whether the payload has reached its end: the inner body says so, or it is as long as
    /// declared.
    fn reached_end(&self, inner_ended: bool) -> bool {
        inner_ended || self.length.is_some_and(|length| self.size >= length)
    }

    /// Ends the measurement: the aws-chunked decoder must have seen a whole body, and a declared
    /// hash and length must match what passed.
    fn end(&mut self) -> Result<(), BoxError> {
        if let Some(decoder) = self.decoder.take()
            && let Err(error) = decoder.finish()
        {
            self.finish(false);
            return Err(Box::new(error));
        }
        let sent: [u8; 32] = self.hasher.clone().finalize().into();
        if let Some(declared) = self.declared
            && (sent != declared || self.length.is_some_and(|l| l != self.size))
        {
            self.finish(false);
            let mismatch = PayloadMismatch {
                declared: chaperone_recording::lower_hex(declared),
                sent: chaperone_recording::lower_hex(sent),
                size: self.size,
            };
            tracing::warn!(%mismatch, "cut off a request body");
            return Err(Box::new(mismatch));
        }
        self.finish(true);
        Ok(())
    }
}

impl<B> Drop for PayloadHashingBody<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<B> Body for PayloadHashingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    match this.decoder.as_mut() {
                        Some(decoder) => {
                            let mut payload = Vec::new();
                            if let Err(error) = decoder.feed(data, &mut payload) {
                                this.finish(false);
                                return Poll::Ready(Some(Err(Box::new(error))));
                            }
                            this.hasher.update(&payload);
                            this.size += payload.len() as u64;
                        }
                        None => {
                            this.hasher.update(data);
                            this.size += data.len() as u64;
                        }
                    }
                }
                // The frame that completes the body is released only once the body checks out.
                if this.reached_end(this.inner.is_end_stream())
                    && let Err(error) = this.end()
                {
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish(false);
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => match this.end() {
                Ok(()) => Poll::Ready(None),
                Err(error) => Poll::Ready(Some(Err(error))),
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Decodes an aws-chunked upload as it streams, releasing only payload whose chunk signatures
/// (when signed) verified; a bad chunk ends the body with an error, so the upstream never
/// receives a complete forged upload.
pub struct DechunkingBody<B> {
    inner: B,
    decoder: Option<ChunkedPayloadVerifier>,
    done: bool,
}

impl<B> DechunkingBody<B> {
    /// Wraps the raw aws-chunked `inner`.
    pub fn new(inner: B, decoder: ChunkedPayloadVerifier) -> Self {
        Self { inner, decoder: Some(decoder), done: false }
    }
}

impl<B> Body for DechunkingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    let Some(decoder) = this.decoder.as_mut() else { continue };
                    let mut out = Vec::new();
                    if let Err(error) = decoder.feed(&data, &mut out) {
                        this.done = true;
                        return Poll::Ready(Some(Err(Box::new(error))));
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let finished: Result<_, SigV4Error> = match this.decoder.take() {
                        Some(decoder) => decoder.finish().map(|_| ()),
                        None => Ok(()),
                    };
                    return match finished {
                        Ok(()) => Poll::Ready(None),
                        Err(error) => Poll::Ready(Some(Err(Box::new(error)))),
                    };
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads the first `limit` bytes of a streamed body (for the write-ahead record) and gives back
/// the prefix and a body that yields the same bytes as the original, prefix first.
pub async fn split_prefix<B>(
    mut body: B,
    limit: usize,
) -> Result<(Bytes, PrefixedBody<B>), B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut prefix = BytesMut::new();
    let mut ended = false;
    while prefix.len() < limit {
        match body.frame().await {
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    prefix.extend_from_slice(&data);
                }
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let prefix = prefix.freeze();
    let captured = prefix.slice(..prefix.len().min(limit));
    Ok((
        captured,
        PrefixedBody { prefix: Some(prefix).filter(|p| !p.is_empty()), inner: body, ended },
    ))
}

/// A body whose first bytes were already read: yields them, then the rest of the inner body.
pub struct PrefixedBody<B> {
    prefix: Option<Bytes>,
    inner: B,
    ended: bool,
}

impl<B> Body for PrefixedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && (self.ended || self.inner.is_end_stream())
    }
}

/// Bytes of aws-chunked framing around one chunk of `length` bytes with a SigV4 chunk signature.
fn signed_chunk_overhead(length: u64) -> u64 {
    let hex_digits = format!("{length:x}").len() as u64;
    hex_digits + ";chunk-signature=".len() as u64 + 64 + 2 + 2
}

/// Length on the wire of `decoded` payload bytes re-chunked at `chunk_size` with SigV4 chunk
/// signatures, final empty chunk included (what `content-length` must say).
pub fn signed_chunked_length(decoded: u64, chunk_size: u64) -> u64 {
    let full = decoded / chunk_size;
    let rest = decoded % chunk_size;
    let mut total = full * (chunk_size + signed_chunk_overhead(chunk_size));
    if rest > 0 {
        total += rest + signed_chunk_overhead(rest);
    }
    total + signed_chunk_overhead(0)
}

/// Re-encodes a plain payload stream as aws-chunked with SigV4 chunk signatures chained from the
/// outbound request's seed signature (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`). Chunks are exactly
/// `chunk_size` bytes but the last, so the length is known before the first byte.
pub struct ChunkSigningBody<B> {
    inner: B,
    buffer: BytesMut,
    chunk_size: usize,
    key: crate::sigv4::SigningKey,
    amz_date: String,
    scope: String,
    previous: String,
    inner_done: bool,
    finished: bool,
}

impl<B> ChunkSigningBody<B> {
    /// Wraps the plain payload `inner`; `seed_signature` is the signature of the request headers.
    pub fn new(
        inner: B,
        chunk_size: usize,
        key: crate::sigv4::SigningKey,
        amz_date: String,
        scope: String,
        seed_signature: String,
    ) -> Self {
        Self {
            inner,
            buffer: BytesMut::new(),
            chunk_size: chunk_size.max(1),
            key,
            amz_date,
            scope,
            previous: seed_signature,
            inner_done: false,
            finished: false,
        }
    }

    fn frame(&mut self, data: &[u8]) -> Bytes {
        const EMPTY_SHA256_HEX: &str =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256_HEX}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            chaperone_recording::lower_hex(Sha256::digest(data))
        );
        let signature = chaperone_recording::lower_hex(self.key.sign(string_to_sign.as_bytes()));
        let mut out = BytesMut::with_capacity(data.len() + 100);
        out.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", data.len()).as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.previous = signature;
        out.freeze()
    }
}

impl<B> Body for ChunkSigningBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            if this.buffer.len() >= this.chunk_size {
                let chunk = this.buffer.split_to(this.chunk_size);
                return Poll::Ready(Some(Ok(Frame::data(this.frame(&chunk)))));
            }
            if this.inner_done {
                if !this.buffer.is_empty() {
                    let chunk = this.buffer.split();
                    return Poll::Ready(Some(Ok(Frame::data(this.frame(&chunk)))));
                }
                this.finished = true;
                let last = this.frame(&[]);
                return Poll::Ready(Some(Ok(Frame::data(last))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.buffer.extend_from_slice(&data);
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => this.inner_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    #[tokio::test]
    async fn capturing_body_passes_everything_and_keeps_a_bounded_prefix() {
        let seen = Arc::new(Mutex::new(None));
        let sink = seen.clone();
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            (0..10).map(|i| Ok(Frame::data(Bytes::from(vec![i as u8; 100])))).collect();
        let body = CapturingBody::new(
            StreamBody::new(futures_util::stream::iter(chunks)),
            250,
            move |c| {
                *sink.lock().unwrap() = Some(c);
            },
        );
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 1000);
        let captured = seen.lock().unwrap().take().unwrap();
        assert!(captured.complete);
        assert_eq!(captured.size, 1000);
        assert_eq!(captured.prefix.len(), 250);
        assert_eq!(captured.sha256, <[u8; 32]>::from(Sha256::digest(&all)));
    }

    fn frames(
        chunks: &[&[u8]],
    ) -> StreamBody<
        impl futures_util::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> + Unpin,
    > {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            chunks.iter().map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_streamed_body_is_measured_as_it_passes() {
        let measured = StreamedPayload::default();
        let body = PayloadHashingBody::new(
            frames(&[b"hello ", b"streamed ", b"world"]),
            Some(20),
            None,
            None,
            measured.clone(),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), &b"hello streamed world"[..]);
        let seen = measured.get().unwrap();
        assert!(seen.complete);
        assert_eq!(seen.size, 20);
        assert_eq!(seen.sha256, Hash256::of(b"hello streamed world"));
    }

    #[tokio::test]
    async fn a_body_that_differs_from_its_declared_sha256_is_cut_before_its_last_frame() {
        let measured = StreamedPayload::default();
        let declared: [u8; 32] = Sha256::digest(b"hello approved world").into();
        let mut body = PayloadHashingBody::new(
            frames(&[b"hello ", b"switched ", b"world"]),
            Some(20),
            Some(declared),
            None,
            measured.clone(),
        );
        let mut passed = Vec::new();
        let error = loop {
            match body.frame().await {
                Some(Ok(frame)) => passed.extend_from_slice(&frame.into_data().unwrap()),
                Some(Err(error)) => break error,
                None => panic!("the mismatching body ended normally"),
            }
        };
        assert_eq!(passed, b"hello switched ", "the completing frame is held back");
        assert!(error.to_string().contains("does not match its x-amz-content-sha256"), "{error}");
        assert!(!measured.get().unwrap().complete);

        let matching = StreamedPayload::default();
        let body = PayloadHashingBody::new(
            frames(&[b"hello ", b"approved ", b"world"]),
            Some(20),
            Some(declared),
            None,
            matching.clone(),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 20);
        assert!(matching.get().unwrap().complete);
    }

    #[tokio::test]
    async fn an_aws_chunked_body_forwarded_as_is_is_measured_by_its_payload() {
        let measured = StreamedPayload::default();
        let decoder =
            ChunkedPayloadVerifier::new(None, true, vec!["x-amz-checksum-crc32".to_owned()], None);
        let wire: &[&[u8]] = &[b"5\r\nhel", b"lo\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"];
        let body = PayloadHashingBody::new(
            frames(wire),
            None,
            None,
            Some(Box::new(decoder)),
            measured.clone(),
        );
        let passed = body.collect().await.unwrap().to_bytes();
        assert_eq!(passed, wire.concat(), "the wire goes upstream unchanged");
        let seen = measured.get().unwrap();
        assert!(seen.complete);
        assert_eq!((seen.size, seen.sha256), (5, Hash256::of(b"hello")));
    }

    #[tokio::test]
    async fn a_streamed_body_dropped_early_is_measured_incomplete() {
        let measured = StreamedPayload::default();
        let mut body = PayloadHashingBody::new(
            frames(&[b"abc", b"def"]),
            Some(6),
            None,
            None,
            measured.clone(),
        );
        body.frame().await.unwrap().unwrap();
        drop(body);
        let seen = measured.get().unwrap();
        assert!(!seen.complete);
        assert_eq!((seen.size, seen.sha256), (3, Hash256::of(b"abc")));
    }

    #[tokio::test]
    async fn a_capturing_body_dropped_early_reports_incomplete() {
        let seen = Arc::new(Mutex::new(None));
        let sink = seen.clone();
        let body = CapturingBody::new(Full::new(Bytes::from_static(b"abc")), 10, move |c| {
            *sink.lock().unwrap() = Some(c);
        });
        drop(body);
        let captured = seen.lock().unwrap().take().unwrap();
        assert!(!captured.complete);
        assert_eq!(captured.size, 0);
    }

    #[tokio::test]
    async fn re_signed_chunks_have_the_announced_length_and_verify_with_the_same_key() {
        use crate::sigv4::{ChunkedPayloadVerifier, SigningKey};
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for chunk_size in [65_536usize, 1000, 200_000, 300_000] {
            let key = SigningKey::derive("secret", "20261125", "us-east-1", "s3");
            let seed = "a".repeat(64);
            let scope = "20261125/us-east-1/s3/aws4_request".to_owned();
            let body = ChunkSigningBody::new(
                Full::new(Bytes::from(payload.clone())),
                chunk_size,
                key.clone(),
                "20261125T120000Z".into(),
                scope.clone(),
                seed.clone(),
            );
            let wire = body.collect().await.unwrap().to_bytes();
            assert_eq!(
                wire.len() as u64,
                signed_chunked_length(payload.len() as u64, chunk_size as u64)
            );
            let mut verifier =
                ChunkedPayloadVerifier::for_test_chain(key, "20261125T120000Z", &scope, &seed);
            let mut decoded = Vec::new();
            verifier.feed(&wire, &mut decoded).unwrap();
            verifier.finish().unwrap();
            assert_eq!(decoded, payload, "chunk size {chunk_size}");
        }
    }

    #[tokio::test]
    async fn a_split_prefix_is_bounded_and_the_body_still_yields_every_byte() {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            (0..8).map(|i| Ok(Frame::data(Bytes::from(vec![i as u8; 300])))).collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let (prefix, rest) = split_prefix(body, 1000).await.unwrap();
        assert_eq!(prefix.len(), 1000);
        let all = rest.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 2400);
        assert_eq!(&all[..1000], &prefix[..]);
        let (prefix, rest) =
            split_prefix(Full::new(Bytes::from_static(b"short")), 1000).await.unwrap();
        assert_eq!(&prefix[..], b"short");
        assert_eq!(&rest.collect().await.unwrap().to_bytes()[..], b"short");
    }

    #[tokio::test]
    async fn buffering_refuses_bodies_over_the_limit() {
        let error = buffer_body(Full::new(Bytes::from(vec![0u8; 11])), 10).await.unwrap_err();
        assert!(error.to_string().contains("larger than 10 bytes"), "{error}");
        let ok = buffer_body(Full::new(Bytes::from_static(b"0123456789")), 10).await.unwrap();
        assert_eq!(&ok[..], b"0123456789");
    }
}
