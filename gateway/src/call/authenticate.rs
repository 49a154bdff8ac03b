//! Stage 1, authenticate: the agent's SigV4 signature over credentials the gateway minted at
//! AssumeRoleWithWebIdentity (the session token carries the session, sealed).

use http::{StatusCode, header};
use time::OffsetDateTime;

use super::{Call, Refusal};
use crate::{
    aws_error::ErrorShape,
    identity::{SessionContext, SessionError, WebIdentityExchange},
    metrics::CodeLabels,
    sigv4::{
        CredentialRejection, RequestParts, SessionSecret, SigV2Presigned, SigV2PresignedVerifier,
        SigV4Error, SigV4Verifier, Verification, is_sigv2_presigned,
    },
};

impl Call<'_> {
    /// Verifies the request's signature and opens its session. A request whose signature covers
    /// the body hash comes back pending: [`Call::read_body`] finishes it once the body is read.
    ///
    /// An S3 SigV2 presigned URL is verified into the same verified request; the call's URI then
    /// keeps only the query parameters its signature covers, so classification, the recording and
    /// the forwarded request never see the signature, the access key id or the token.
    pub(super) fn authenticate(&mut self) -> Result<Verification<SessionContext>, Refusal> {
        let now = OffsetDateTime::now_utc();
        if is_sigv2_presigned(self.query()) {
            let presigned = self.verify_sigv2_presigned(now).map_err(|e| {
                self.shape = ErrorShape::S3Xml;
                self.auth_refusal(e, "s3")
            })?;
            self.keep_query(&presigned.forward_query)?;
            return Ok(Verification::Verified(presigned.verified));
        }
        let exchange = &self.runtime.exchange;
        let lookup = |access_key_id: &str, token: Option<&str>, now: OffsetDateTime| {
            open_session(exchange, access_key_id, token, now)
        };
        let request = RequestParts {
            method: self.parts.method.as_str(),
            raw_path: self.path(),
            raw_query: self.query(),
            headers: &self.parts.headers,
        };
        SigV4Verifier::new(lookup).verify(&request, now).map_err(|e| self.auth_refusal(e, ""))
    }

    /// Verifies an S3 SigV2 presigned URL: the session's secret as for SigV4, the bucket of a
    /// virtual-host-style Host as the classifier reads it, the connection's region upstream.
    fn verify_sigv2_presigned(
        &self,
        now: OffsetDateTime,
    ) -> Result<SigV2Presigned<SessionContext>, SigV4Error> {
        let exchange = &self.runtime.exchange;
        let lookup = |access_key_id: &str, token: Option<&str>, now: OffsetDateTime| {
            open_session(exchange, access_key_id, token, now)
        };
        let config = &self.runtime.config;
        let verifier = SigV2PresignedVerifier::new(
            lookup,
            |session: &SessionContext| {
                config
                    .connection(&session.connection)
                    .map(|connection| connection.region.clone())
                    .unwrap_or_default()
            },
            |session: &SessionContext| Some(session.expires_at),
        );
        let request = RequestParts {
            method: self.parts.method.as_str(),
            raw_path: self.path(),
            raw_query: self.query(),
            headers: &self.parts.headers,
        };
        let host = self.parts.headers.get(header::HOST).and_then(|value| value.to_str().ok());
        let bucket = self.gateway.classifier.s3_virtual_host_bucket(host);
        verifier.verify(&request, bucket.as_deref(), now)
    }

    /// Replaces the call's query string with `query` (the parameters a signature covers).
    fn keep_query(&mut self, query: &str) -> Result<(), Refusal> {
        let path_and_query = if query.is_empty() {
            self.path().to_owned()
        } else {
            format!("{}?{query}", self.path())
        };
        let uri = http::Uri::builder().path_and_query(path_and_query).build().map_err(|e| {
            self.refuse(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                format!("the presigned URL's query does not form a valid URI: {e}"),
            )
        })?;
        self.parts.uri = uri;
        Ok(())
    }

    /// A request that did not authenticate: counted, logged, and answered with the AWS code of
    /// the signature error (`service` picks the code's spelling where services differ).
    pub(super) fn auth_refusal(&self, error: SigV4Error, service: &str) -> Refusal {
        let code = error.aws_code(service);
        self.gateway
            .metrics
            .authentication_failures_total
            .get_or_create(&CodeLabels { code: code.to_owned() })
            .inc();
        tracing::info!(code, %error, "refused a request that did not authenticate");
        self.refuse(
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN),
            code,
            error.to_string(),
        )
    }
}

/// The secret and session behind an access key id the gateway minted, from its sealed token.
fn open_session(
    exchange: &WebIdentityExchange,
    access_key_id: &str,
    token: Option<&str>,
    now: OffsetDateTime,
) -> Result<SessionSecret<SessionContext>, CredentialRejection> {
    let Some(token) = token else {
        return Err(CredentialRejection::InvalidToken {
            reason: "the request carries no X-Amz-Security-Token; sign with the session credentials the gateway issued".into(),
        });
    };
    match exchange.minter().open(access_key_id, token, now) {
        Ok(opened) => Ok(SessionSecret {
            secret_access_key: opened.secret_access_key.into_redacted(),
            session: opened.context,
        }),
        Err(SessionError::Expired { expired_at }) => {
            Err(CredentialRejection::Expired { expired_at: Some(expired_at) })
        }
        Err(error) => Err(CredentialRejection::InvalidToken { reason: error.to_string() }),
    }
}
