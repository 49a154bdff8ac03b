//! The two STS calls the gateway makes for itself: `AssumeRoleWithWebIdentity` (unsigned, with
//! its own projected token) and `AssumeRole` (signed with the base credentials). Request bodies
//! and answers are pure functions; [`StsClient`] sends them over the forwarder's pool.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chaperone_config::{Redacted, UpstreamCredentials};
use http::{HeaderMap, HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use sha2::{Digest, Sha256};

use crate::forward::{OutboundPayload, OutboundRequest, UpstreamForwarder};

/// Longest wait for one STS answer.
const STS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest STS answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Which STS call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StsAction {
    /// `sts:AssumeRole`.
    AssumeRole,
    /// `sts:AssumeRoleWithWebIdentity`.
    AssumeRoleWithWebIdentity,
}

impl StsAction {
    /// The action's name, as in the `Action` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Self::AssumeRole => "AssumeRole",
            Self::AssumeRoleWithWebIdentity => "AssumeRoleWithWebIdentity",
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::AssumeRole => "assume_role",
            Self::AssumeRoleWithWebIdentity => "web_identity",
        }
    }
}

impl std::fmt::Display for StsAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sts:{}", self.name())
    }
}

/// Temporary credentials from STS.
#[derive(Clone, Debug)]
pub struct TemporaryCredentials {
    /// The keys (with their session token).
    pub keys: UpstreamCredentials,
    /// When they expire.
    pub expires_at: SystemTime,
}

/// What went wrong with one STS call.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StsError {
    /// The projected token could not be read.
    #[error("cannot read the web identity token file {path}: {reason}")]
    TokenFile {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// STS could not be reached.
    #[error("STS could not be reached: {0}")]
    Unreachable(String),
    /// STS did not answer in time.
    #[error("STS did not answer within {} s", STS_TIMEOUT.as_secs())]
    Timeout,
    /// STS answered with an error.
    #[error("STS answered HTTP {status} {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code, e.g. `AccessDenied`.
        code: String,
        /// STS's message.
        message: String,
    },
    /// STS answered something without credentials.
    #[error("STS answered HTTP {status} without usable credentials: {reason}")]
    Malformed {
        /// HTTP status.
        status: u16,
        /// What was missing.
        reason: String,
    },
}

/// One failed STS call, naming the role and the endpoint.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{action} of role {role_arn} at {endpoint} failed: {error}")]
pub struct StsFailure {
    /// The call.
    pub action: StsAction,
    /// The role.
    pub role_arn: String,
    /// The STS endpoint.
    pub endpoint: String,
    /// What went wrong.
    pub error: StsError,
}

/// The form body of `AssumeRoleWithWebIdentity`.
pub fn web_identity_form(role_arn: &str, session_name: &str, token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role_arn)
        .append_pair("RoleSessionName", session_name)
        .append_pair("WebIdentityToken", token)
        .finish()
}

/// The form body of `AssumeRole`.
pub fn assume_role_form(role_arn: &str, session_name: &str, external_id: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role_arn)
        .append_pair("RoleSessionName", session_name);
    if let Some(id) = external_id {
        form.append_pair("ExternalId", id);
    }
    form.finish()
}

/// The content of the first `<name>` element of `xml`, as written.
fn raw_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].trim())
}

/// The text of the first `<name>` element of `xml`, unescaped.
fn element(xml: &str, name: &str) -> Option<String> {
    quick_xml::escape::unescape(raw_element(xml, name)?).ok().map(|text| text.into_owned())
}

/// Reads an STS answer: the credentials of a 200, or the error STS gave.
pub fn parse_answer(status: u16, body: &str) -> Result<TemporaryCredentials, StsError> {
    if status != 200 {
        return Err(match element(body, "Code") {
            Some(code) => StsError::Refused {
                status,
                code,
                message: element(body, "Message").unwrap_or_default(),
            },
            None => StsError::Malformed { status, reason: "no error code in the answer".into() },
        });
    }
    let malformed = |reason: &str| StsError::Malformed { status, reason: reason.into() };
    let credentials =
        raw_element(body, "Credentials").ok_or_else(|| malformed("no Credentials"))?;
    let field = |name: &str| {
        element(credentials, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| malformed(&format!("no Credentials.{name}")))
    };
    let expiration = field("Expiration")?;
    let expires_at =
        time::OffsetDateTime::parse(&expiration, &time::format_description::well_known::Rfc3339)
            .map_err(|e| malformed(&format!("Credentials.Expiration {expiration:?}: {e}")))?;
    Ok(TemporaryCredentials {
        keys: UpstreamCredentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: Redacted(field("SecretAccessKey")?),
            session_token: Some(Redacted(field("SessionToken")?)),
        },
        expires_at: expires_at.into(),
    })
}

/// Sends the gateway's STS calls.
#[derive(Clone)]
pub struct StsClient {
    forwarder: UpstreamForwarder,
}

impl StsClient {
    /// A client over `forwarder`'s connection pool.
    pub fn new(forwarder: UpstreamForwarder) -> Self {
        Self { forwarder }
    }

    /// Exchanges the token in `token_file` for `role_arn`'s credentials.
    pub async fn assume_role_with_web_identity(
        &self,
        endpoint: &str,
        role_arn: &str,
        session_name: &str,
        token_file: &str,
    ) -> Result<TemporaryCredentials, StsFailure> {
        let failure = |error| StsFailure {
            action: StsAction::AssumeRoleWithWebIdentity,
            role_arn: role_arn.to_owned(),
            endpoint: endpoint.to_owned(),
            error,
        };
        let token = tokio::fs::read_to_string(token_file).await.map_err(|e| {
            failure(StsError::TokenFile { path: token_file.to_owned(), reason: e.to_string() })
        })?;
        let body = web_identity_form(role_arn, session_name, token.trim());
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/", endpoint.trim_end_matches('/')))
            .header(header::CONTENT_TYPE, FORM)
            .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed_unsync())
            .map_err(|e| failure(StsError::Unreachable(e.to_string())))?;
        self.call(endpoint, request).await.map_err(failure)
    }

    /// Assumes `role_arn` with `base`, signed for `region`.
    pub async fn assume_role(
        &self,
        endpoint: &str,
        region: &str,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
        base: &UpstreamCredentials,
    ) -> Result<TemporaryCredentials, StsFailure> {
        let failure = |error| StsFailure {
            action: StsAction::AssumeRole,
            role_arn: role_arn.to_owned(),
            endpoint: endpoint.to_owned(),
            error,
        };
        let body = assume_role_form(role_arn, session_name, external_id);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FORM));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let outbound = OutboundRequest {
            method: Method::POST,
            path_and_query: "/".into(),
            headers,
            payload: OutboundPayload::Sha256Hex(chaperone_recording::lower_hex(Sha256::digest(
                body.as_bytes(),
            ))),
            body: Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed_unsync(),
            service: "sts".into(),
            endpoint_prefix: None,
            region: region.to_owned(),
        };
        let request = UpstreamForwarder::sign(endpoint, outbound, base, SystemTime::now())
            .map_err(|e| failure(StsError::Unreachable(e.to_string())))?;
        self.call(endpoint, request).await.map_err(failure)
    }

    async fn call(
        &self,
        endpoint: &str,
        request: Request<crate::forward::OutboundBody>,
    ) -> Result<TemporaryCredentials, StsError> {
        let exchange = async {
            let response = self
                .forwarder
                .send_signed(endpoint, request)
                .await
                .map_err(|e| StsError::Unreachable(e.to_string()))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| StsError::Unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            parse_answer(status, &String::from_utf8_lossy(&body))
        };
        tokio::time::timeout(STS_TIMEOUT, exchange).await.unwrap_or(Err(StsError::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/agents.pr-bot</Arn></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>s3cr&amp;t/+x</SecretAccessKey>
      <SessionToken>tok==</SessionToken>
      <Expiration>2026-11-29T21:25:24.123Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    #[test]
    fn an_sts_answer_gives_the_keys_and_their_expiry() {
        let credentials = parse_answer(200, ANSWER).unwrap();
        assert_eq!(credentials.keys.access_key_id, "ASIAEXAMPLE");
        assert_eq!(*credentials.keys.secret_access_key, "s3cr&t/+x");
        assert_eq!(credentials.keys.session_token.as_deref().map(String::as_str), Some("tok=="));
        let expected = time::macros::datetime!(2026-11-29 21:25:24.123 UTC);
        assert_eq!(credentials.expires_at, SystemTime::from(expected));
    }

    #[test]
    fn an_sts_error_keeps_its_code_and_message() {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User x is not authorized to perform: sts:AssumeRole</Message></Error></ErrorResponse>";
        let error = parse_answer(403, body).unwrap_err().to_string();
        assert_eq!(
            error,
            "STS answered HTTP 403 AccessDenied: User x is not authorized to perform: sts:AssumeRole"
        );
    }

    #[test]
    fn an_answer_without_credentials_is_refused_naming_what_is_missing() {
        let error = parse_answer(200, &ANSWER.replace("<SessionToken>tok==</SessionToken>", ""))
            .unwrap_err()
            .to_string();
        assert!(error.contains("Credentials.SessionToken"), "{error}");
        let error = parse_answer(500, "<html>oops</html>").unwrap_err().to_string();
        assert!(error.contains("HTTP 500"), "{error}");
    }

    #[test]
    fn request_forms_carry_the_role_session_name_and_external_id() {
        let form =
            assume_role_form("arn:aws:iam::123456789012:role/r", "agents.pr-bot", Some("ext"));
        assert_eq!(
            form,
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr&RoleSessionName=agents.pr-bot&ExternalId=ext"
        );
        let form = web_identity_form("arn:aws:iam::1:role/r", "gw", "a.b.c");
        assert!(form.starts_with("Action=AssumeRoleWithWebIdentity&"), "{form}");
        assert!(form.ends_with("&WebIdentityToken=a.b.c"), "{form}");
    }
}
