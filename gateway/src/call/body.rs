//! Stage 2, read the body: small bodies are read whole (and checked against their signed hash or
//! chunk signatures), large S3 bodies stream through; requests whose signature covers the body
//! hash are finished here. The body types themselves are in [`crate::body`].

use http::StatusCode;
use hyper::body::Incoming;

use super::{Call, Refusal};
use crate::{
    aws_error::{credential_service, shape_for_service},
    body::{Inbound, InboundError, MAX_BUFFERED_BODY, buffer_body},
    identity::SessionContext,
    sigv4::{Verification, VerifiedRequest},
};

impl Call<'_> {
    /// Reads or prepares to stream the body and finishes the signature check it takes part in.
    /// From here on errors are shaped for the service the credential scope names.
    pub(super) async fn read_body(
        &mut self,
        verification: Verification<SessionContext>,
        body: Incoming,
    ) -> Result<(VerifiedRequest<SessionContext>, Inbound), Refusal> {
        match verification {
            Verification::BodyHashRequired(pending) => {
                let bytes = buffer_body(body, MAX_BUFFERED_BODY).await.map_err(|e| {
                    self.refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestEntityTooLarge",
                        e.to_string(),
                    )
                })?;
                let verified = pending
                    .finish_with_body(&bytes)
                    .map_err(|e| self.auth_refusal(e, credential_service(&self.parts.headers)))?;
                self.shape = shape_for_service(&verified.scope.service, self.shape);
                Ok((verified, Inbound::buffered(bytes)))
            }
            Verification::Verified(verified) => {
                self.shape = shape_for_service(&verified.scope.service, self.shape);
                let inbound = Inbound::read(&verified, &self.parts.headers, body).await.map_err(
                    |e| match e {
                        InboundError::Auth(e) => self.auth_refusal(e, &verified.scope.service),
                        InboundError::Read(message) => {
                            self.refuse(StatusCode::BAD_REQUEST, "IncompleteBody", message)
                        }
                    },
                )?;
                Ok((verified, inbound))
            }
        }
    }

    /// A streamed body's first `capture_limit` bytes, read ahead (bounded) for the write-ahead
    /// record.
    pub(super) async fn read_prefix(
        &self,
        inbound: Inbound,
        capture_limit: usize,
    ) -> Result<Inbound, Refusal> {
        inbound
            .with_prefix(capture_limit)
            .await
            .map_err(|e| self.refuse(StatusCode::BAD_REQUEST, "IncompleteBody", e.to_string()))
    }
}
