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
];

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
