//! The gateway's STS face: AssumeRoleWithWebIdentity exchanges a projected service-account token
//! for session credentials, answered in STS's own XML so every SDK understands it.

use std::{collections::BTreeMap, sync::Arc};

use aws_lc_rs::digest;
use chaperone_config::Redacted;
use time::Duration;

use chaperone_config::{
    DEFAULT_SESSION_SECONDS, IdentityConfig, MAX_SESSION_SECONDS, MIN_SESSION_SECONDS, SessionKeys,
};

use super::{
    jwks::{JwksCache, JwksError},
    session::{Credentials, SessionContext, SessionMinter},
    sts_xml::{XmlWriter, sts_timestamp},
    token_review::KubeTokenReviewer,
    validator::{TokenError, TokenValidator},
};

/// The account id in every ARN the gateway hands out (agents never see the real account).
pub const GATEWAY_ACCOUNT_ID: &str = "000000000000";
/// The STS API version SDKs send.
pub const STS_API_VERSION: &str = "2011-06-15";
const ROLE_ARN_PREFIX: &str = "arn:aws:iam::000000000000:role/chaperone/";
/// Request bodies larger than this are refused (STS's own limits are far below it).
pub const MAX_STS_REQUEST_BYTES: usize = 64 * 1024;

/// The error codes SDKs know from STS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StsErrorCode {
    /// The web identity token was refused.
    InvalidIdentityToken,
    /// The web identity token expired (SDKs re-read the token file and retry).
    ExpiredTokenException,
    /// The caller may not assume that role.
    AccessDenied,
    /// A parameter is missing or out of range.
    ValidationError,
    /// The issuer's keys could not be fetched (SDKs retry).
    IdpCommunicationError,
    /// The action is not one this endpoint serves.
    InvalidAction,
}

impl StsErrorCode {
    /// The code as it appears in `<Code>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidIdentityToken => "InvalidIdentityToken",
            Self::ExpiredTokenException => "ExpiredTokenException",
            Self::AccessDenied => "AccessDenied",
            Self::ValidationError => "ValidationError",
            Self::IdpCommunicationError => "IDPCommunicationError",
            Self::InvalidAction => "InvalidAction",
        }
    }

    /// The HTTP status STS answers it with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::AccessDenied => 403,
            _ => 400,
        }
    }
}

impl std::fmt::Display for StsErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal, answered as STS's `ErrorResponse`. The message names what to fix and never contains
/// a token or secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StsError {
    /// The STS error code.
    pub code: StsErrorCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl StsError {
    /// An error with `code` and `message`.
    pub fn new(code: StsErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StsErrorCode::ValidationError, message)
    }

    fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StsErrorCode::AccessDenied, message)
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// STS's XML error document.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut xml = XmlWriter::new();
        xml.open_root("ErrorResponse");
        xml.open("Error");
        xml.element("Type", "Sender");
        xml.element("Code", self.code.as_str());
        xml.element("Message", &self.message);
        xml.close("Error");
        xml.element("RequestId", request_id);
        xml.close("ErrorResponse");
        xml.finish()
    }
}

impl From<TokenError> for StsError {
    fn from(error: TokenError) -> Self {
        let code = match &error {
            TokenError::Expired => StsErrorCode::ExpiredTokenException,
            TokenError::IssuerUnavailable(_) | TokenError::ReviewUnavailable(_) => {
                StsErrorCode::IdpCommunicationError
            }
            _ => StsErrorCode::InvalidIdentityToken,
        };
        Self::new(code, error.to_string())
    }
}

/// The parameters of an STS Query API request: the query string and the form-encoded body,
/// merged; a parameter given twice is refused rather than guessed at.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StsParameters(BTreeMap<String, String>);

impl std::fmt::Debug for StsParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: WebIdentityToken is a credential.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl StsParameters {
    /// Parses `query` (without `?`) and a form-encoded `body`.
    pub fn parse(query: &str, body: &[u8]) -> Result<Self, StsError> {
        if body.len() > MAX_STS_REQUEST_BYTES {
            return Err(StsError::validation(format!(
                "the request body exceeds {MAX_STS_REQUEST_BYTES} bytes"
            )));
        }
        let mut parameters = BTreeMap::new();
        let pairs = form_urlencoded::parse(query.as_bytes()).chain(form_urlencoded::parse(body));
        for (name, value) in pairs {
            if name.is_empty() {
                continue;
            }
            if parameters.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(StsError::validation(format!(
                    "the parameter {name} appears more than once; send it once"
                )));
            }
        }
        Ok(Self(parameters))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The `Action` parameter.
    pub fn action(&self) -> Option<&str> {
        self.get("Action")
    }

    fn required(&self, name: &str) -> Result<&str, StsError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            StsError::validation(format!(
                "1 validation error detected: the parameter {name} is required"
            ))
        })
    }
}

/// An AssumeRoleWithWebIdentity request, checked for shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleWithWebIdentityRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub role_session_name: String,
    /// `WebIdentityToken` (a credential: never logged).
    pub web_identity_token: Redacted<String>,
    /// `DurationSeconds`, if given.
    pub duration_seconds: Option<i64>,
}

impl AssumeRoleWithWebIdentityRequest {
    /// Parses the query string and form-encoded body of the request.
    pub fn parse(query: &str, body: &[u8]) -> Result<Self, StsError> {
        Self::from_parameters(&StsParameters::parse(query, body)?)
    }

    /// Reads and checks the request's parameters.
    pub fn from_parameters(parameters: &StsParameters) -> Result<Self, StsError> {
        match parameters.action() {
            Some("AssumeRoleWithWebIdentity") => {}
            Some(other) => {
                return Err(StsError::new(
                    StsErrorCode::InvalidAction,
                    format!(
                        "the gateway answers unsigned STS requests only for \
                         AssumeRoleWithWebIdentity, not {other}; sign other calls with the \
                         credentials it returns"
                    ),
                ));
            }
            None => {
                return Err(StsError::new(
                    StsErrorCode::InvalidAction,
                    "the request has no Action parameter",
                ));
            }
        }
        if let Some(version) = parameters.get("Version")
            && version != STS_API_VERSION
        {
            return Err(StsError::validation(format!(
                "the STS API version {version} is not supported; use {STS_API_VERSION}"
            )));
        }
        let role_arn = parameters.required("RoleArn")?;
        if role_arn.len() < 20 || role_arn.len() > 2048 {
            return Err(StsError::validation(
                "1 validation error detected: RoleArn must be 20 to 2048 characters long",
            ));
        }
        let role_session_name = parameters.required("RoleSessionName")?;
        check_role_session_name(role_session_name)?;
        let web_identity_token = parameters.required("WebIdentityToken")?;
        if web_identity_token.len() < 4 || web_identity_token.len() > 20_000 {
            return Err(StsError::validation(
                "1 validation error detected: WebIdentityToken must be 4 to 20000 characters long",
            ));
        }
        let duration_seconds = match parameters.get("DurationSeconds") {
            None | Some("") => None,
            Some(text) => {
                let seconds: i64 = text.parse().map_err(|_| {
                    StsError::validation(format!(
                        "1 validation error detected: DurationSeconds {text:?} is not a whole \
                         number of seconds"
                    ))
                })?;
                if !(MIN_SESSION_SECONDS..=MAX_SESSION_SECONDS).contains(&seconds) {
                    return Err(StsError::validation(format!(
                        "1 validation error detected: Value '{seconds}' at 'durationSeconds' \
                         failed to satisfy constraint: Member must be between \
                         {MIN_SESSION_SECONDS} and {MAX_SESSION_SECONDS}"
                    )));
                }
                Some(seconds)
            }
        };
        Ok(Self {
            role_arn: role_arn.to_owned(),
            role_session_name: role_session_name.to_owned(),
            web_identity_token: Redacted(web_identity_token.to_owned()),
            duration_seconds,
        })
    }
}

/// STS's rule for RoleSessionName: 2 to 64 characters of `[A-Za-z0-9_+=,.@-]`.
fn check_role_session_name(name: &str) -> Result<(), StsError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    if !(2..=64).contains(&name.len()) || !name.chars().all(allowed) {
        return Err(StsError::validation(
            "1 validation error detected: RoleSessionName must be 2 to 64 characters of letters, \
             digits and _+=,.@- (set AWS_ROLE_SESSION_NAME accordingly)",
        ));
    }
    Ok(())
}

/// The namespace and connection a chaperone role ARN names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChaperoneRole {
    /// The namespace.
    pub namespace: String,
    /// The AgentConnection.
    pub connection: String,
}

impl ChaperoneRole {
    /// Reads `arn:aws:iam::000000000000:role/chaperone/<namespace>/<connection>`.
    pub fn parse(role_arn: &str) -> Result<Self, StsError> {
        let refusal = || {
            StsError::validation(format!(
                "RoleArn {role_arn:?} is not a Chaperone role; it must be \
                 {ROLE_ARN_PREFIX}<namespace>/<connection> (the pod's AWS_ROLE_ARN, which \
                 Chaperone's webhook sets)"
            ))
        };
        let rest = role_arn.strip_prefix(ROLE_ARN_PREFIX).ok_or_else(refusal)?;
        let (namespace, connection) = rest.split_once('/').ok_or_else(refusal)?;
        if !is_dns_label(namespace) || !is_dns_subdomain(connection) {
            return Err(refusal());
        }
        Ok(Self { namespace: namespace.to_owned(), connection: connection.to_owned() })
    }

    /// The role's ARN.
    pub fn arn(&self) -> String {
        format!("{ROLE_ARN_PREFIX}{}/{}", self.namespace, self.connection)
    }

    /// `arn:aws:sts::000000000000:assumed-role/chaperone/<namespace>/<connection>/<session name>`.
    pub fn assumed_role_arn(&self, role_session_name: &str) -> String {
        format!(
            "arn:aws:sts::{GATEWAY_ACCOUNT_ID}:assumed-role/chaperone/{}/{}/{role_session_name}",
            self.namespace, self.connection
        )
    }

    /// `AROA` + 17 characters derived from the role, as STS's role ids look.
    pub fn role_id(&self) -> String {
        let digest = digest::digest(&digest::SHA256, self.arn().as_bytes());
        let encoded = data_encoding::BASE32_NOPAD.encode(digest.as_ref());
        format!("AROA{}", &encoded[..17])
    }

    /// `<role id>:<session name>`, STS's AssumedRoleId and GetCallerIdentity UserId.
    pub fn assumed_role_id(&self, role_session_name: &str) -> String {
        format!("{}:{role_session_name}", self.role_id())
    }
}

fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn is_dns_subdomain(name: &str) -> bool {
    (1..=253).contains(&name.len()) && name.split('.').all(is_dns_label)
}

/// A successful AssumeRoleWithWebIdentity.
#[derive(Clone, Debug)]
pub struct AssumeRoleWithWebIdentityResult {
    /// The minted credentials (and the session they open).
    pub credentials: Credentials,
    /// The token's `sub`.
    pub subject_from_web_identity_token: String,
    /// The token audience the gateway required.
    pub audience: String,
    /// The token issuer.
    pub provider: String,
    /// The role assumed.
    pub role: ChaperoneRole,
}

impl AssumeRoleWithWebIdentityResult {
    /// STS's XML answer.
    pub fn to_xml(&self, request_id: &str) -> String {
        let session_name = &self.credentials.session.role_session_name;
        let mut xml = XmlWriter::new();
        xml.open_root("AssumeRoleWithWebIdentityResponse");
        xml.open("AssumeRoleWithWebIdentityResult");
        xml.element("SubjectFromWebIdentityToken", &self.subject_from_web_identity_token);
        xml.element("Audience", &self.audience);
        xml.open("AssumedRoleUser");
        xml.element("Arn", &self.role.assumed_role_arn(session_name));
        xml.element("AssumedRoleId", &self.role.assumed_role_id(session_name));
        xml.close("AssumedRoleUser");
        xml.open("Credentials");
        xml.element("AccessKeyId", &self.credentials.access_key_id);
        xml.element("SecretAccessKey", self.credentials.secret_access_key.expose());
        xml.element("SessionToken", &self.credentials.session_token);
        xml.element("Expiration", &sts_timestamp(self.credentials.expiration));
        xml.close("Credentials");
        xml.element("Provider", &self.provider);
        xml.close("AssumeRoleWithWebIdentityResult");
        xml.request_metadata(request_id);
        xml.close("AssumeRoleWithWebIdentityResponse");
        xml.finish()
    }
}

/// Who a session's calls come from, as GetCallerIdentity answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `arn:aws:sts::000000000000:assumed-role/chaperone/<namespace>/<connection>/<session name>`.
    pub arn: String,
    /// `<role id>:<session name>`.
    pub user_id: String,
    /// `000000000000`.
    pub account: String,
}

impl CallerIdentity {
    /// The identity of an opened session.
    pub fn of_session(session: &SessionContext) -> Self {
        let role = ChaperoneRole {
            namespace: session.namespace.clone(),
            connection: session.connection.clone(),
        };
        Self {
            arn: role.assumed_role_arn(&session.role_session_name),
            user_id: role.assumed_role_id(&session.role_session_name),
            account: GATEWAY_ACCOUNT_ID.to_owned(),
        }
    }

    /// STS's XML answer to GetCallerIdentity.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut xml = XmlWriter::new();
        xml.open_root("GetCallerIdentityResponse");
        xml.open("GetCallerIdentityResult");
        xml.element("Arn", &self.arn);
        xml.element("UserId", &self.user_id);
        xml.element("Account", &self.account);
        xml.close("GetCallerIdentityResult");
        xml.request_metadata(request_id);
        xml.close("GetCallerIdentityResponse");
        xml.finish()
    }
}

/// AssumeRoleWithWebIdentity at the gateway: verify the token, admit the service account to the
/// connection its RoleArn names, mint session credentials.
#[derive(Debug)]
pub struct WebIdentityExchange {
    config: IdentityConfig,
    validator: TokenValidator,
    minter: SessionMinter,
}

/// Why the identity part of the gateway could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IdentitySetupError {
    /// The JWKS client could not be built (CA bundle, TLS).
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// `tokenReview` is on but no Kubernetes client was given.
    #[error(
        "identity.tokenReview is on, but the gateway has no Kubernetes client to review tokens with"
    )]
    TokenReviewWithoutClient,
}

impl WebIdentityExchange {
    /// Everything wired from the configuration: a JWKS cache for the issuer, a validator (with a
    /// TokenReview through `kube` when `tokenReview` is on), and a minter over `session_keys`.
    pub fn from_config(
        config: IdentityConfig,
        session_keys: SessionKeys,
        kube: Option<kube::Client>,
    ) -> Result<Self, IdentitySetupError> {
        let jwks = Arc::new(JwksCache::new(&config)?);
        let mut validator = TokenValidator::new(&config, jwks);
        if config.source.token_review {
            let client = kube.ok_or(IdentitySetupError::TokenReviewWithoutClient)?;
            validator = validator.with_reviewer(Arc::new(KubeTokenReviewer::new(client)));
        }
        Ok(Self::new(config, validator, SessionMinter::new(session_keys)))
    }

    /// An exchange for `config`'s namespace and connections.
    pub fn new(config: IdentityConfig, validator: TokenValidator, minter: SessionMinter) -> Self {
        Self { config, validator, minter }
    }

    /// The minter (for opening sessions on later calls).
    pub fn minter(&self) -> &SessionMinter {
        &self.minter
    }

    /// Answers one AssumeRoleWithWebIdentity.
    pub async fn assume_role_with_web_identity(
        &self,
        request: &AssumeRoleWithWebIdentityRequest,
    ) -> Result<AssumeRoleWithWebIdentityResult, StsError> {
        let result = self.exchange(request).await;
        match &result {
            Ok(answer) => tracing::info!(
                session = %answer.credentials.session.session_id,
                connection = %answer.role.connection,
                service_account = %answer.credentials.session.service_account,
                pod = answer.credentials.session.pod.as_ref().map(|p| p.name.as_str()).unwrap_or(""),
                role_session_name = %answer.credentials.session.role_session_name,
                expires_at = %sts_timestamp(answer.credentials.expiration),
                "issued session credentials"
            ),
            Err(error) => tracing::warn!(
                role_arn = %request.role_arn,
                code = error.code.as_str(),
                message = %error.message,
                "refused AssumeRoleWithWebIdentity"
            ),
        }
        result
    }

    async fn exchange(
        &self,
        request: &AssumeRoleWithWebIdentityRequest,
    ) -> Result<AssumeRoleWithWebIdentityResult, StsError> {
        let role = ChaperoneRole::parse(&request.role_arn)?;
        let identity = self.validator.validate(&request.web_identity_token).await?;

        let namespace = &self.config.namespace;
        if identity.namespace != *namespace {
            return Err(StsError::access_denied(format!(
                "the web identity token is for service account {} of namespace {}, but this \
                 gateway serves namespace {namespace}; use the gateway of the agent's own namespace",
                identity.service_account, identity.namespace
            )));
        }
        if role.namespace != *namespace {
            return Err(StsError::access_denied(format!(
                "RoleArn names namespace {}, but this gateway serves namespace {namespace}; set \
                 AWS_ROLE_ARN to {ROLE_ARN_PREFIX}{namespace}/<connection>",
                role.namespace
            )));
        }
        let connection = self.config.connection(&role.connection).ok_or_else(|| {
            StsError::access_denied(format!(
                "namespace {namespace} has no AgentConnection {}; check the pod's \
                 chaperone.dev/connection label",
                role.connection
            ))
        })?;
        if !connection.admits(&identity.service_account) {
            return Err(StsError::access_denied(format!(
                "AgentConnection {namespace}/{} does not admit service account {}; add it to \
                 spec.agents.serviceAccounts",
                connection.name, identity.service_account
            )));
        }
        // STS's default is one hour, shortened to the connection's limit when that is lower.
        let seconds = request
            .duration_seconds
            .unwrap_or(DEFAULT_SESSION_SECONDS.min(connection.max_session_seconds));
        if seconds > connection.max_session_seconds {
            return Err(StsError::validation(format!(
                "The requested DurationSeconds ({seconds}) exceeds the MaxSessionDuration of \
                 AgentConnection {namespace}/{} ({} s, spec.session.maxDurationSeconds)",
                connection.name, connection.max_session_seconds
            )));
        }
        let credentials = self
            .minter
            .mint(
                &identity,
                &connection.name,
                &request.role_session_name,
                Duration::seconds(seconds),
            )
            .map_err(|e| StsError::validation(e.to_string()))?;
        Ok(AssumeRoleWithWebIdentityResult {
            credentials,
            subject_from_web_identity_token: identity.subject,
            audience: self.validator.audience().to_owned(),
            provider: self.validator.issuer().to_owned(),
            role,
        })
    }
}

/// A fresh request id (time-ordered UUID) for `<RequestId>`.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use chaperone_config::SessionKey;

    use crate::identity::validator::{AgentIdentity, PodRef};

    const FORM: &str = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15\
        &RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fchaperone%2Fteam-a%2Fprod-aws\
        &RoleSessionName=botocore-session-1764093600&WebIdentityToken=eyJhbGciOiJFUzI1NiJ9.e30.c2ln";

    #[test]
    fn a_botocore_form_body_parses_into_the_request() {
        let request = AssumeRoleWithWebIdentityRequest::parse("", FORM.as_bytes()).unwrap();
        assert_eq!(request.role_arn, "arn:aws:iam::000000000000:role/chaperone/team-a/prod-aws");
        assert_eq!(request.role_session_name, "botocore-session-1764093600");
        assert_eq!(*request.web_identity_token, "eyJhbGciOiJFUzI1NiJ9.e30.c2ln");
        assert_eq!(request.duration_seconds, None);
        assert!(!format!("{request:?}").contains("eyJ"), "Debug must not show the token");
    }

    #[test]
    fn the_same_parameters_in_the_query_string_parse_too() {
        let request = AssumeRoleWithWebIdentityRequest::parse(FORM, b"").unwrap();
        assert_eq!(request.role_session_name, "botocore-session-1764093600");
    }

    #[test]
    fn plus_and_percent_escapes_decode_as_form_encoding_says() {
        let parameters = StsParameters::parse("", b"A=a+b%2Bc%20d&B=%E2%9C%93").unwrap();
        assert_eq!(parameters.get("A"), Some("a b+c d"));
        assert_eq!(parameters.get("B"), Some("✓"));
    }

    #[test]
    fn a_parameter_given_twice_is_refused_even_across_query_and_body() {
        let error = StsParameters::parse("RoleArn=a", b"RoleArn=b").unwrap_err();
        assert_eq!(error.code, StsErrorCode::ValidationError);
        assert!(error.message.contains("RoleArn"));
    }

    #[test]
    fn missing_and_out_of_range_parameters_are_validation_errors_naming_the_parameter() {
        let without_token = FORM.split("&WebIdentityToken").next().unwrap();
        let cases = [
            (without_token.to_owned(), "WebIdentityToken"),
            (FORM.replace("botocore-session-1764093600", "x"), "RoleSessionName"),
            (FORM.replace("botocore-session-1764093600", "has%20space"), "RoleSessionName"),
            (format!("{FORM}&DurationSeconds=899"), "durationSeconds"),
            (format!("{FORM}&DurationSeconds=43201"), "durationSeconds"),
            (format!("{FORM}&DurationSeconds=soon"), "DurationSeconds"),
            (FORM.replace("2011-06-15", "2099-01-01"), "version"),
        ];
        for (body, named) in cases {
            let error = AssumeRoleWithWebIdentityRequest::parse("", body.as_bytes()).unwrap_err();
            assert_eq!(error.code, StsErrorCode::ValidationError, "{body}");
            assert!(error.message.contains(named), "{named}: {}", error.message);
        }
    }

    #[test]
    fn another_action_is_refused_as_invalid_action() {
        let error =
            AssumeRoleWithWebIdentityRequest::parse("", b"Action=GetCallerIdentity").unwrap_err();
        assert_eq!(error.code, StsErrorCode::InvalidAction);
        assert!(error.message.contains("GetCallerIdentity"));
    }

    #[test]
    fn role_arns_outside_chaperones_shape_are_refused() {
        let role = ChaperoneRole::parse("arn:aws:iam::000000000000:role/chaperone/team-a/prod-aws")
            .unwrap();
        assert_eq!((role.namespace.as_str(), role.connection.as_str()), ("team-a", "prod-aws"));
        for arn in [
            "arn:aws:iam::123456789012:role/chaperone/team-a/prod-aws",
            "arn:aws:iam::000000000000:role/other/team-a/prod-aws",
            "arn:aws:iam::000000000000:role/chaperone/team-a",
            "arn:aws:iam::000000000000:role/chaperone/team-a/prod/aws",
            "arn:aws:iam::000000000000:role/chaperone/Team-A/prod-aws",
        ] {
            assert_eq!(
                ChaperoneRole::parse(arn).unwrap_err().code,
                StsErrorCode::ValidationError,
                "{arn}"
            );
        }
    }

    #[test]
    fn error_xml_has_stss_shape_and_escapes_the_message() {
        let error = StsError::new(StsErrorCode::AccessDenied, "<b>&\"quoted\"</b>");
        let xml = error.to_xml("req-1");
        assert_eq!(
            xml,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    \
             <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n    \
             <Message>&lt;b&gt;&amp;&quot;quoted&quot;&lt;/b&gt;</Message>\n  </Error>\n  \
             <RequestId>req-1</RequestId>\n</ErrorResponse>\n"
        );
        assert_eq!(error.http_status(), 403);
        assert_eq!(
            StsError::new(StsErrorCode::IdpCommunicationError, "x")
                .to_xml("r")
                .matches("IDPCommunicationError")
                .count(),
            1
        );
    }

    fn minted() -> AssumeRoleWithWebIdentityResult {
        let keys = SessionKeys::new(SessionKey::new("k1", vec![7; 32]).unwrap(), None).unwrap();
        let identity = AgentIdentity {
            subject: "system:serviceaccount:team-a:pr-bot".into(),
            namespace: "team-a".into(),
            service_account: "pr-bot".into(),
            service_account_uid: "sa-uid".into(),
            pod: Some(PodRef { name: "pr-bot-0".into(), uid: "pod-uid".into() }),
            token_id: None,
            token_expires_at: OffsetDateTime::now_utc(),
        };
        let now = OffsetDateTime::from_unix_timestamp(1_764_093_600).unwrap();
        let credentials = SessionMinter::new(keys)
            .mint_at(&identity, "prod-aws", "run-1", Duration::seconds(3600), now)
            .unwrap();
        AssumeRoleWithWebIdentityResult {
            credentials,
            subject_from_web_identity_token: identity.subject,
            audience: "chaperone.dev".into(),
            provider: "https://kubernetes.default.svc".into(),
            role: ChaperoneRole { namespace: "team-a".into(), connection: "prod-aws".into() },
        }
    }

    fn text_of<'a>(xml: &'a str, element: &str) -> &'a str {
        let open = format!("<{element}>");
        let start = xml.find(&open).map(|i| i + open.len()).unwrap();
        let end = xml[start..].find(&format!("</{element}>")).unwrap();
        &xml[start..start + end]
    }

    #[test]
    fn the_assume_role_answer_carries_every_element_sdks_read() {
        let result = minted();
        let xml = result.to_xml("req-1");
        assert!(xml.starts_with(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
             <AssumeRoleWithWebIdentityResult>\n"
        ));
        assert_eq!(text_of(&xml, "AccessKeyId"), result.credentials.access_key_id);
        assert_eq!(text_of(&xml, "SecretAccessKey"), result.credentials.secret_access_key.expose());
        assert_eq!(text_of(&xml, "SessionToken"), result.credentials.session_token);
        assert_eq!(text_of(&xml, "Expiration"), "2025-11-25T19:00:00Z");
        assert_eq!(
            text_of(&xml, "SubjectFromWebIdentityToken"),
            "system:serviceaccount:team-a:pr-bot"
        );
        assert_eq!(text_of(&xml, "Audience"), "chaperone.dev");
        assert_eq!(text_of(&xml, "Provider"), "https://kubernetes.default.svc");
        assert_eq!(
            text_of(&xml, "Arn"),
            "arn:aws:sts::000000000000:assumed-role/chaperone/team-a/prod-aws/run-1"
        );
        let role_id = text_of(&xml, "AssumedRoleId");
        assert!(
            role_id.starts_with("AROA") && role_id.ends_with(":run-1") && role_id.len() == 27,
            "{role_id}"
        );
        assert_eq!(text_of(&xml, "RequestId"), "req-1");
    }

    #[test]
    fn get_caller_identity_names_the_sessions_assumed_role() {
        let result = minted();
        let caller = CallerIdentity::of_session(&result.credentials.session);
        let xml = caller.to_xml("req-2");
        assert!(xml.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ));
        assert_eq!(
            text_of(&xml, "Arn"),
            "arn:aws:sts::000000000000:assumed-role/chaperone/team-a/prod-aws/run-1"
        );
        assert_eq!(text_of(&xml, "UserId"), result.role.assumed_role_id("run-1"));
        assert_eq!(text_of(&xml, "Account"), "000000000000");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_and_queries_never_panic_the_parser(query in ".{0,200}", body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = AssumeRoleWithWebIdentityRequest::parse(&query, &body);
        }

        #[test]
        fn a_chaperone_role_arn_reads_back_the_namespace_and_connection_it_was_made_of(
            namespace in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
            connection in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]{1,10}){0,2}",
        ) {
            let role = ChaperoneRole { namespace, connection };
            proptest::prop_assert_eq!(ChaperoneRole::parse(&role.arn()).unwrap(), role);
        }
    }
}
