//! The gateway's own upstream credentials: static keys, or a web identity exchanged at STS, and
//! optionally a role assumed per agent on top of either (docs/gateway.md, "Upstream credentials").
//!
//! The pure parts (role session names, refresh-ahead timing, STS request and answer shapes) are
//! separate from the cache that calls STS.

mod provider;
mod refresh;
mod session_name;
mod sts;

pub use provider::UpstreamCredentialsProvider;
pub use refresh::{Freshness, MIN_REMAINING, REFRESH_AHEAD, freshness};
pub use session_name::{agent_session_name, gateway_session_name, sanitize_session_name};
pub use sts::{StsAction, StsError, StsFailure, TemporaryCredentials, parse_answer};
