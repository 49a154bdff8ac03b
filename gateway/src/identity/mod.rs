//! Agent identity: projected service-account tokens in, stateless session credentials out.
//!
//! An agent's SDK sends an unsigned STS AssumeRoleWithWebIdentity to the gateway. The
//! [`TokenValidator`] verifies the token against the issuer's keys ([`JwksCache`]), the
//! [`WebIdentityExchange`] admits its service account to the AgentConnection its RoleArn names, and
//! the [`SessionMinter`] mints credentials whose session token carries the verified identity under
//! the namespace's session key, so any replica opens them again on every later call.

pub mod jwks;
pub mod session;
pub mod sts;
pub mod sts_xml;
pub mod token_review;
pub mod validator;

pub use jwks::{JwksCache, JwksError, VerificationKey};
pub use session::{
    Credentials, OpenedSession, SecretAccessKey, SessionContext, SessionError, SessionMinter,
};
pub use sts::{
    AssumeRoleWithWebIdentityRequest, AssumeRoleWithWebIdentityResult, CallerIdentity,
    ChaperoneRole, IdentitySetupError, StsError, StsErrorCode, StsParameters, WebIdentityExchange,
};
pub use token_review::KubeTokenReviewer;
pub use validator::{
    AgentIdentity, PodRef, TokenError, TokenReviewOutcome, TokenReviewer, TokenValidator,
};
