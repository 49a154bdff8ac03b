//! Actions whose responses hand the caller usable AWS credentials (or the means to get them).
//!
//! The gateway denies these unless an AgentConnection allows them by name: an agent that got
//! real credentials could call AWS directly, unrecorded. Data that merely happens to be secret
//! (`secretsmanager:GetSecretValue`, `ssm:GetParameter*` with `WithDecryption`) is not on the list:
//! those are governed by ordinary policy and recording redaction.

/// Returns temporary credentials for a role.
pub const STS_ASSUME_ROLE: &str = "sts:AssumeRole";
/// Returns temporary credentials for a role, given a SAML assertion.
pub const STS_ASSUME_ROLE_WITH_SAML: &str = "sts:AssumeRoleWithSAML";
/// Returns temporary credentials for a role, given an OIDC token.
pub const STS_ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";
/// Returns temporary credentials for the root user of a member account.
pub const STS_ASSUME_ROOT: &str = "sts:AssumeRoot";
/// Returns temporary credentials for the calling IAM user.
pub const STS_GET_SESSION_TOKEN: &str = "sts:GetSessionToken";
/// Returns temporary credentials for a federated user.
pub const STS_GET_FEDERATION_TOKEN: &str = "sts:GetFederationToken";
/// Returns temporary credentials scoped down from the caller's own session.
pub const STS_GET_SCOPED_CREDENTIALS: &str = "sts:GetScopedCredentials";
/// Exchanges a trade-in token for temporary credentials of another principal.
pub const STS_GET_DELEGATED_ACCESS_TOKEN: &str = "sts:GetDelegatedAccessToken";
/// Returns a signed JWT of the caller's identity that external OIDC-trusting services accept.
pub const STS_GET_WEB_IDENTITY_TOKEN: &str = "sts:GetWebIdentityToken";
/// Creates a long-term access key pair and returns its secret.
pub const IAM_CREATE_ACCESS_KEY: &str = "iam:CreateAccessKey";
/// Sets a console password for a user who had none.
pub const IAM_CREATE_LOGIN_PROFILE: &str = "iam:CreateLoginProfile";
/// Changes a user's console password.
pub const IAM_UPDATE_LOGIN_PROFILE: &str = "iam:UpdateLoginProfile";
/// Creates a service-specific credential (CodeCommit, Keyspaces, Bedrock API key) and returns it.
pub const IAM_CREATE_SERVICE_SPECIFIC_CREDENTIAL: &str = "iam:CreateServiceSpecificCredential";
/// Resets a service-specific credential and returns the new password.
pub const IAM_RESET_SERVICE_SPECIFIC_CREDENTIAL: &str = "iam:ResetServiceSpecificCredential";
/// Returns role credentials for an IAM Identity Center user.
pub const SSO_GET_ROLE_CREDENTIALS: &str = "sso:GetRoleCredentials";
/// Returns a Docker registry password valid for 12 hours.
pub const ECR_GET_AUTHORIZATION_TOKEN: &str = "ecr:GetAuthorizationToken";
/// Returns a public-registry Docker password.
pub const ECR_PUBLIC_GET_AUTHORIZATION_TOKEN: &str = "ecr-public:GetAuthorizationToken";
/// Returns the credentials of the role an EKS pod identity association grants.
pub const EKS_AUTH_ASSUME_ROLE_FOR_POD_IDENTITY: &str = "eks-auth:AssumeRoleForPodIdentity";
/// Returns credentials for a Cognito identity.
pub const COGNITO_IDENTITY_GET_CREDENTIALS_FOR_IDENTITY: &str =
    "cognito-identity:GetCredentialsForIdentity";
/// Returns a CodeArtifact repository token.
pub const CODEARTIFACT_GET_AUTHORIZATION_TOKEN: &str = "codeartifact:GetAuthorizationToken";
/// Returns a temporary Redshift database password.
pub const REDSHIFT_GET_CLUSTER_CREDENTIALS: &str = "redshift:GetClusterCredentials";
/// Returns a temporary Redshift database password for the caller's IAM identity.
pub const REDSHIFT_GET_CLUSTER_CREDENTIALS_WITH_IAM: &str = "redshift:GetClusterCredentialsWithIAM";

/// Returns a Cognito OpenID token that STS exchanges for credentials.
pub const COGNITO_IDENTITY_GET_OPEN_ID_TOKEN: &str = "cognito-identity:GetOpenIdToken";
/// Returns a Cognito OpenID token for a developer-authenticated identity.
pub const COGNITO_IDENTITY_GET_OPEN_ID_TOKEN_FOR_DEVELOPER_IDENTITY: &str =
    "cognito-identity:GetOpenIdTokenForDeveloperIdentity";
/// Returns an IAM Identity Center access token (which GetRoleCredentials turns into credentials).
pub const SSO_OAUTH_CREATE_TOKEN: &str = "sso-oauth:CreateToken";
/// Returns an IAM Identity Center access token for an IAM-authenticated application.
pub const SSO_OAUTH_CREATE_TOKEN_WITH_IAM: &str = "sso-oauth:CreateTokenWithIAM";
/// Returns session credentials for an S3 directory bucket.
pub const S3EXPRESS_CREATE_SESSION: &str = "s3express:CreateSession";
/// Returns a temporary Redshift Serverless database password.
pub const REDSHIFT_SERVERLESS_GET_CREDENTIALS: &str = "redshift-serverless:GetCredentials";

/// Every credential-returning action.
pub const CREDENTIAL_RETURNING_ACTIONS: &[&str] = &[
    STS_ASSUME_ROLE,
    STS_ASSUME_ROLE_WITH_SAML,
    STS_ASSUME_ROLE_WITH_WEB_IDENTITY,
    STS_ASSUME_ROOT,
    STS_GET_SESSION_TOKEN,
    STS_GET_FEDERATION_TOKEN,
    STS_GET_SCOPED_CREDENTIALS,
    STS_GET_DELEGATED_ACCESS_TOKEN,
    STS_GET_WEB_IDENTITY_TOKEN,
    IAM_CREATE_ACCESS_KEY,
    IAM_CREATE_LOGIN_PROFILE,
    IAM_UPDATE_LOGIN_PROFILE,
    IAM_CREATE_SERVICE_SPECIFIC_CREDENTIAL,
    IAM_RESET_SERVICE_SPECIFIC_CREDENTIAL,
    SSO_GET_ROLE_CREDENTIALS,
    ECR_GET_AUTHORIZATION_TOKEN,
    ECR_PUBLIC_GET_AUTHORIZATION_TOKEN,
    EKS_AUTH_ASSUME_ROLE_FOR_POD_IDENTITY,
    COGNITO_IDENTITY_GET_CREDENTIALS_FOR_IDENTITY,
    CODEARTIFACT_GET_AUTHORIZATION_TOKEN,
    REDSHIFT_GET_CLUSTER_CREDENTIALS,
    REDSHIFT_GET_CLUSTER_CREDENTIALS_WITH_IAM,
    COGNITO_IDENTITY_GET_OPEN_ID_TOKEN,
    COGNITO_IDENTITY_GET_OPEN_ID_TOKEN_FOR_DEVELOPER_IDENTITY,
    SSO_OAUTH_CREATE_TOKEN,
    SSO_OAUTH_CREATE_TOKEN_WITH_IAM,
    S3EXPRESS_CREATE_SESSION,
    REDSHIFT_SERVERLESS_GET_CREDENTIALS,
];

/// RPC operations (named by `X-Amz-Target: <prefix>.<Operation>` or `Action=<Operation>`) that
/// return credentials, by the signing name of the request: (signing names, operation, action).
/// Keyed by the wire, not the tables, so it holds for services without a model.
const RPC_CREDENTIAL_OPERATIONS: &[(&[&str], &str, &str)] = &[
    (&["sts"], "AssumeRole", STS_ASSUME_ROLE),
    (&["sts"], "AssumeRoleWithSAML", STS_ASSUME_ROLE_WITH_SAML),
    (&["sts"], "AssumeRoleWithWebIdentity", STS_ASSUME_ROLE_WITH_WEB_IDENTITY),
    (&["sts"], "AssumeRoot", STS_ASSUME_ROOT),
    (&["sts"], "GetSessionToken", STS_GET_SESSION_TOKEN),
    (&["sts"], "GetFederationToken", STS_GET_FEDERATION_TOKEN),
    (&["sts"], "GetScopedCredentials", STS_GET_SCOPED_CREDENTIALS),
    (&["sts"], "GetDelegatedAccessToken", STS_GET_DELEGATED_ACCESS_TOKEN),
    (&["sts"], "GetWebIdentityToken", STS_GET_WEB_IDENTITY_TOKEN),
    (&["iam"], "CreateAccessKey", IAM_CREATE_ACCESS_KEY),
    (&["iam"], "CreateLoginProfile", IAM_CREATE_LOGIN_PROFILE),
    (&["iam"], "UpdateLoginProfile", IAM_UPDATE_LOGIN_PROFILE),
    (&["iam"], "CreateServiceSpecificCredential", IAM_CREATE_SERVICE_SPECIFIC_CREDENTIAL),
    (&["iam"], "ResetServiceSpecificCredential", IAM_RESET_SERVICE_SPECIFIC_CREDENTIAL),
    (&["ecr"], "GetAuthorizationToken", ECR_GET_AUTHORIZATION_TOKEN),
    (&["ecr-public"], "GetAuthorizationToken", ECR_PUBLIC_GET_AUTHORIZATION_TOKEN),
    (
        &["cognito-identity"],
        "GetCredentialsForIdentity",
        COGNITO_IDENTITY_GET_CREDENTIALS_FOR_IDENTITY,
    ),
    (&["cognito-identity"], "GetOpenIdToken", COGNITO_IDENTITY_GET_OPEN_ID_TOKEN),
    (
        &["cognito-identity"],
        "GetOpenIdTokenForDeveloperIdentity",
        COGNITO_IDENTITY_GET_OPEN_ID_TOKEN_FOR_DEVELOPER_IDENTITY,
    ),
    (&["redshift"], "GetClusterCredentials", REDSHIFT_GET_CLUSTER_CREDENTIALS),
    (&["redshift"], "GetClusterCredentialsWithIAM", REDSHIFT_GET_CLUSTER_CREDENTIALS_WITH_IAM),
    (&["redshift-serverless"], "GetCredentials", REDSHIFT_SERVERLESS_GET_CREDENTIALS),
];

/// The credential-returning action a request names on the wire, by its signing name and the
/// operation its target header, `Action` parameter or REST path names, whether or not the
/// operation tables know the service. Names compare in any case: over-matching only denies.
pub(crate) fn credential_action(request: &super::AwsRequest<'_>) -> Option<&'static str> {
    let signing = request.signing_name.to_ascii_lowercase();
    let mut names: Vec<String> = Vec::new();
    if let Some(target) = request.header("x-amz-target") {
        names.push(target.rsplit('.').next().unwrap_or(target).trim().to_owned());
    }
    let query = super::params::parse_pairs(request.query, false);
    // A body without a content type may still be read as a form by a query service.
    let is_form = request
        .header("content-type")
        .is_none_or(|ct| ct.to_ascii_lowercase().contains("application/x-www-form-urlencoded"));
    let form = match request.body {
        Some(body) if is_form => super::params::parse_pairs(&String::from_utf8_lossy(body), true),
        _ => Vec::new(),
    };
    names.extend(
        query
            .iter()
            .chain(&form)
            .filter(|(k, _)| k.eq_ignore_ascii_case("Action"))
            .map(|(_, v)| v.clone()),
    );
    if let Some((_, _, action)) = RPC_CREDENTIAL_OPERATIONS.iter().find(|(signing_names, op, _)| {
        signing_names.contains(&signing.as_str())
            && names.iter().any(|n| n.eq_ignore_ascii_case(op))
    }) {
        return Some(action);
    }
    let path = super::params::percent_decode(request.path, false)
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let has_key = |key: &str| query.iter().any(|(k, _)| k.eq_ignore_ascii_case(key));
    match signing.as_str() {
        "s3" | "s3express" if has_key("session") => Some(S3EXPRESS_CREATE_SESSION),
        "codeartifact" if path.ends_with("/v1/authorization-token") => {
            Some(CODEARTIFACT_GET_AUTHORIZATION_TOKEN)
        }
        "eks-auth" if path.ends_with("/assume-role-for-pod-identity") => {
            Some(EKS_AUTH_ASSUME_ROLE_FOR_POD_IDENTITY)
        }
        "awsssoportal" | "sso" if path.ends_with("/federation/credentials") => {
            Some(SSO_GET_ROLE_CREDENTIALS)
        }
        "sso-oauth" | "oidc" if path.ends_with("/token") && has_key("aws_iam") => {
            Some(SSO_OAUTH_CREATE_TOKEN_WITH_IAM)
        }
        "sso-oauth" | "oidc" if path.ends_with("/token") => Some(SSO_OAUTH_CREATE_TOKEN),
        _ => None,
    }
}

/// Whether `action` (`service:Action`, any case, as IAM compares) returns credentials.
pub fn is_credential_returning(action: &str) -> bool {
    CREDENTIAL_RETURNING_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_returning_actions_match_in_any_case() {
        assert!(is_credential_returning("sts:AssumeRole"));
        assert!(is_credential_returning("STS:assumerole"));
        assert!(is_credential_returning("ecr:GetAuthorizationToken"));
        assert!(!is_credential_returning("ssm:GetParameter"));
        assert!(!is_credential_returning("secretsmanager:GetSecretValue"));
        assert!(!is_credential_returning("sts:GetCallerIdentity"));
    }
}
