//! The data path of one agent call (docs/architecture.md, "The data path of one call"), one stage per file:
//!
//! 1. [`authenticate`]: SigV4 against the session the gateway minted;
//! 2. [`body`]: small bodies read whole, large ones streamed; body-hash signatures finished;
//! 3. [`classify`]: the credential scope's region and service checked against their grammar; the
//!    connection, the operation, its IAM actions and resources; the upstream endpoint (the
//!    connection's override, else the partition's endpoint of the modelled service), so the call
//!    decided and recorded is the one forwarded;
//! 4. [`decide`]: calls naming a RecordingPolicy's bucket are denied, then the connection's
//!    policy, then approval rules (a held call waits for reviewers; its approval binds the
//!    semantic headers and the body's sha256, and a held body no hash binds is refused); a
//!    denied call is recorded (4 KiB of its body) and refused;
//! 5. [`record`]: the request event, write-ahead (FailClosed refuses what it cannot record,
//!    FailOpen forwards it unrecorded);
//! 6. [`forward`]: re-signed with the connection's upstream credentials and sent (a streamed
//!    body hashed as it passes and cut off if it does not match its declared sha256), then the
//!    response streamed back, captured for the response event with the streamed body's hash.
//!
//! [`Call`] is the per-call value every stage reads; a stage that stops the call returns a
//! [`Refusal`] made by [`Call::refuse`].

mod authenticate;
mod body;
mod classify;
mod decide;
mod forward;
mod record;
#[cfg(test)]
mod tests;

use std::time::Instant;

use http::{Request, Response, StatusCode, request::Parts};
use hyper::body::Incoming;

use crate::{
    aws_error::{AwsError, ErrorShape, guess_shape},
    policy::PolicyDecision,
    server::{Gateway, GatewayBody, GatewayRuntime},
};

/// Why a call stops at the gateway: an AWS-shaped error to send back.
pub(crate) struct Refusal {
    pub(crate) error: AwsError,
    pub(crate) shape: ErrorShape,
}

/// One call on its way through the data path: the gateway and configuration it runs under, the
/// request line and headers, and the error shape known so far (refined as the stages learn the
/// service and the protocol).
pub(crate) struct Call<'a> {
    gateway: &'a Gateway,
    runtime: &'a GatewayRuntime,
    request_id: &'a str,
    started: Instant,
    parts: Parts,
    shape: ErrorShape,
}

impl<'a> Call<'a> {
    /// Runs one signed call through the stages.
    pub(crate) async fn run(
        gateway: &'a Gateway,
        runtime: &'a GatewayRuntime,
        request: Request<Incoming>,
        request_id: &'a str,
        started: Instant,
    ) -> Result<Response<GatewayBody>, Refusal> {
        let (parts, body) = request.into_parts();
        let shape = guess_shape(&parts.headers, parts.uri.query().unwrap_or(""));
        let mut call = Call { gateway, runtime, request_id, started, parts, shape };

        let verification = call.authenticate()?;
        let (verified, inbound) = call.read_body(verification, body).await?;
        let (classified, aws) = call.classify(&verified, &inbound)?;
        let recording = call.recording(classified.connection);
        let inbound = call.read_prefix(inbound, recording.capture_limit).await?;
        let mut request = call.request_record(aws, &inbound, recording.capture_limit);

        let session = &verified.session;
        let decision = call
            .decide(
                session,
                &classified,
                &mut request,
                inbound.body_digest(),
                inbound.buffered_payload(),
            )
            .await;
        if let PolicyDecision::Deny { object, rule, message } = decision {
            return Err(call.deny(session, &classified, request, object, rule, message).await);
        }
        call.record_request(&verified, &classified, &recording, request).await?;

        if let Some(response) = call.answer_locally(&verified, &classified) {
            return Ok(response);
        }
        let (inbound, streamed) = inbound.measured();
        let forwarded = call.forward(&verified, &classified, inbound, streamed.as_ref()).await?;
        Ok(call.stream_back(verified.session, forwarded, recording.capture_limit, streamed))
    }

    /// Stops the call with an AWS error of `status` and `code`, in the shape known so far.
    fn refuse(&self, status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
        Refusal { error: AwsError::new(status, code, message, self.request_id), shape: self.shape }
    }

    /// The request path, still percent-encoded.
    fn path(&self) -> &str {
        self.parts.uri.path()
    }

    /// The raw query string (`""` when there is none).
    fn query(&self) -> &str {
        self.parts.uri.query().unwrap_or("")
    }
}
