//! The contract between the operator and the gateways it runs: everything the operator writes
//! into a namespace and the gateway reads back, with no I/O beyond reading a file.
//!
//! - [`gateway`]: the gateway's configuration file ([`GatewayConfig`]), its schema version and
//!   the errors naming the field to fix.
//! - [`identity`]: how agents' tokens are verified ([`IdentitySource`]), the runtime view the
//!   gateway derives from it ([`IdentityConfig`]), and the shared defaults (audience, leeway).
//! - [`keys`]: the keys file (session MAC keys, recording signing key).
//! - [`approval`]: what an ApprovalRequest's reviews decide, and when it expires.
//! - [`redacted`]: [`Redacted`], a value `Debug` never prints (keys, tokens).
//! - [`tls`]: the CA and serving certificates the operator issues (webhooks, gateways), the
//!   Secret layout they are stored in, and the rotating certificate a server presents.
//!
//! Session bounds live with the AgentConnection CRD that declares them and are re-exported here.

pub mod approval;
pub mod gateway;
pub mod identity;
pub mod keys;
pub mod redacted;
pub mod tls;

pub use chaperone_crds::{DEFAULT_SESSION_SECONDS, MAX_SESSION_SECONDS, MIN_SESSION_SECONDS};
pub use gateway::{
    AssumeRoleConfig, CONFIG_VERSION, ConfigError, ConnectionConfig, GatewayConfig, UpstreamConfig,
    UpstreamCredentials, WebIdentityConfig,
};
pub use identity::{
    ConnectionAdmission, DEFAULT_AUDIENCE, DEFAULT_LEEWAY_SECONDS, IdentityConfig, IdentitySource,
};
pub use keys::{
    GatewayKeys, KeysError, KeysFile, KeysFileEntry, RecordingSigningKey, SessionKey, SessionKeys,
};
pub use redacted::Redacted;
