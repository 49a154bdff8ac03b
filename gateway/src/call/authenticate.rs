//! Stage 1, authenticate: the agent's SigV4 signature over credentials the gateway minted at
//! AssumeRoleWithWebIdentity (the session token carries the session, sealed).

use http::StatusCode;
use time::OffsetDateTime;

use super::{Call, Refusal};
use crate::{
    identity::{SessionContext, SessionError, WebIdentityExchange},
    metrics::CodeLabels,
    sigv4::{
        CredentialRejection, RequestParts, SessionSecret, SigV4Error, SigV4Verifier, Verification,
    },
};

impl Call<'_> {
    /// Verifies the request's signature and opens its session. A request whose signature covers
    /// the body hash comes back pending: [`Call::read_body`] finishes it once the body is read.
    pub(super) fn authenticate(&self) -> Result<Verification<SessionContext>, Refusal> {
        let now = OffsetDateTime::now_utc();
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
            secret_access_key: opened.secret_access_key.expose().to_owned(),
            session: opened.context,
        }),
        Err(SessionError::Expired { expired_at }) => {
            Err(CredentialRejection::Expired { expired_at: Some(expired_at) })
        }
        Err(error) => Err(CredentialRejection::InvalidToken { reason: error.to_string() }),
    }
}
