//! Stateless session credentials: what AssumeRoleWithWebIdentity hands an agent, and how any
//! replica opens them again on every call.
//!
//! A session token is `base64url(version ‖ key-id length ‖ key id ‖ claims JSON ‖ MAC)`, where the
//! MAC is HMAC-SHA256 under the named session key over everything before it. The access key id is
//! derived from the key and the session id, so a token cannot be paired with another id, and the
//! secret access key is derived from the key and the access key id, so nothing is stored.

use aws_lc_rs::{constant_time, hmac};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
};
use chaperone_config::Redacted;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use chaperone_config::{SessionKey, SessionKeys};

use super::validator::{AgentIdentity, PodRef};

/// The session token format's version byte.
pub const SESSION_TOKEN_VERSION: u8 = 1;
/// Session tokens longer than this are refused before decoding.
pub const MAX_SESSION_TOKEN_CHARS: usize = 4096;
const MAC_BYTES: usize = 32;
const TOKEN_MAC_LABEL: &[u8] = b"chaperone session token v1\0";
const ACCESS_KEY_ID_LABEL: &[u8] = b"chaperone access key id v1\0";
const SECRET_ACCESS_KEY_LABEL: &[u8] = b"chaperone secret access key v1\0";

/// Why a session could not be minted or opened. Never contains a token or secret.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The token is not one this gateway mints.
    #[error("the session token is malformed: {0}")]
    Malformed(&'static str),
    /// The token's format version is unknown.
    #[error("the session token has format version {0}, this gateway reads version 1")]
    UnsupportedVersion(u8),
    /// The token was minted under a key this gateway no longer (or never) held.
    #[error(
        "the session token was minted under key {key_id:?}, which this gateway does not hold \
         (rotated out or from another namespace); call AssumeRoleWithWebIdentity again"
    )]
    UnknownKey {
        /// The key id the token names.
        key_id: String,
    },
    /// The MAC does not verify: the token was altered or forged.
    #[error(
        "the session token's MAC does not verify; it was altered or not minted by this gateway"
    )]
    BadMac,
    /// The access key id is not the one minted with this token.
    #[error("the access key id does not belong to this session token")]
    AccessKeyMismatch,
    /// The session is over; the SDK should call AssumeRoleWithWebIdentity again.
    #[error("the session expired at {expired_at}; call AssumeRoleWithWebIdentity again")]
    Expired {
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The requested duration cannot be represented.
    #[error("the session duration {0} s is out of range")]
    Duration(i64),
}

impl SessionError {
    /// Whether the caller should answer `ExpiredToken` (so SDKs refresh) rather than a refusal.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired { .. })
    }
}

/// A secret access key; shown only on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretAccessKey(Redacted<String>);

impl SecretAccessKey {
    /// The key's 40 characters, for signing or verifying.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key, still redacted from `Debug`, without a copy.
    pub fn into_redacted(self) -> Redacted<String> {
        self.0
    }
}

/// What a session token says, once its MAC verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionContext {
    /// The session's id (UUIDv7, time-ordered).
    pub session_id: Uuid,
    /// The AgentConnection the session uses.
    pub connection: String,
    /// The agent's namespace.
    pub namespace: String,
    /// The agent's service account.
    pub service_account: String,
    /// The service account's uid.
    pub service_account_uid: String,
    /// The pod the agent's token was bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// The RoleSessionName the agent asked for.
    pub role_session_name: String,
    /// When the session began.
    #[serde(with = "time::serde::timestamp")]
    pub issued_at: OffsetDateTime,
    /// When its credentials expire.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
    /// The session key it was minted under.
    pub key_id: String,
}

/// Credentials as AssumeRoleWithWebIdentity returns them.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `ASIA` + 16 characters of base32.
    pub access_key_id: String,
    /// 40 characters, derived from the session key and the access key id.
    pub secret_access_key: SecretAccessKey,
    /// The MAC'd session token (`X-Amz-Security-Token`).
    pub session_token: String,
    /// When they expire.
    pub expiration: OffsetDateTime,
    /// The session they open.
    pub session: SessionContext,
}

/// A session token and access key id that verified.
#[derive(Clone, Debug)]
pub struct OpenedSession {
    /// What the token says.
    pub context: SessionContext,
    /// The secret the agent signs with, to verify its SigV4 signature.
    pub secret_access_key: SecretAccessKey,
}

/// Mints and opens session credentials under the namespace's session keys.
#[derive(Clone, Debug)]
pub struct SessionMinter {
    keys: SessionKeys,
}

impl SessionMinter {
    /// A minter over `keys` (current mints, current and previous open).
    pub fn new(keys: SessionKeys) -> Self {
        Self { keys }
    }

    /// The keys in use.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// Mints credentials for `identity` on `connection`, valid for `duration` from now.
    pub fn mint(
        &self,
        identity: &AgentIdentity,
        connection: &str,
        role_session_name: &str,
        duration: Duration,
    ) -> Result<Credentials, SessionError> {
        self.mint_at(identity, connection, role_session_name, duration, OffsetDateTime::now_utc())
    }

    /// [`SessionMinter::mint`] with an explicit issuance time.
    pub fn mint_at(
        &self,
        identity: &AgentIdentity,
        connection: &str,
        role_session_name: &str,
        duration: Duration,
        now: OffsetDateTime,
    ) -> Result<Credentials, SessionError> {
        let issued_at = now.replace_nanosecond(0).unwrap_or(now);
        let expires_at = issued_at
            .checked_add(duration)
            .filter(|_| duration.is_positive())
            .ok_or(SessionError::Duration(duration.whole_seconds()))?;
        let key = self.keys.current();
        let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let session_id =
            Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, now.nanosecond()));
        let session = SessionContext {
            session_id,
            connection: connection.to_owned(),
            namespace: identity.namespace.clone(),
            service_account: identity.service_account.clone(),
            service_account_uid: identity.service_account_uid.clone(),
            pod: identity.pod.clone(),
            role_session_name: role_session_name.to_owned(),
            issued_at,
            expires_at,
            key_id: key.id().to_owned(),
        };
        let claims = serde_json::to_vec(&session)
            .map_err(|_| SessionError::Malformed("its claims could not be serialized"))?;
        let mut bytes = Vec::with_capacity(2 + key.id().len() + claims.len() + MAC_BYTES);
        bytes.push(SESSION_TOKEN_VERSION);
        // Key ids are at most 64 characters (checked when keys are loaded).
        bytes.push(u8::try_from(key.id().len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(key.id().as_bytes());
        bytes.extend_from_slice(&claims);
        let mac = token_mac(key, &bytes);
        bytes.extend_from_slice(mac.as_ref());

        let access_key_id = derive_access_key_id(key, &session_id);
        let secret_access_key = derive_secret_access_key(key, &access_key_id);
        Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: URL_SAFE_NO_PAD.encode(&bytes),
            expiration: expires_at,
            session,
        })
    }

    /// Verifies `session_token` (MAC under the current or previous key), that `access_key_id` was
    /// minted with it, and that the session has not expired at `now`; returns what it says and the
    /// secret the agent signs with.
    pub fn open(
        &self,
        access_key_id: &str,
        session_token: &str,
        now: OffsetDateTime,
    ) -> Result<OpenedSession, SessionError> {
        if session_token.len() > MAX_SESSION_TOKEN_CHARS {
            return Err(SessionError::Malformed("it is too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(session_token.trim())
            .map_err(|_| SessionError::Malformed("it is not base64url"))?;
        let (&version, rest) = bytes.split_first().ok_or(SessionError::Malformed("it is empty"))?;
        if version != SESSION_TOKEN_VERSION {
            return Err(SessionError::UnsupportedVersion(version));
        }
        let (&key_id_len, rest) =
            rest.split_first().ok_or(SessionError::Malformed("it is truncated"))?;
        let key_id_len = usize::from(key_id_len);
        if rest.len() < key_id_len + MAC_BYTES {
            return Err(SessionError::Malformed("it is truncated"));
        }
        let key_id = std::str::from_utf8(&rest[..key_id_len])
            .map_err(|_| SessionError::Malformed("its key id is not UTF-8"))?;
        let key = self
            .keys
            .find(key_id)
            .ok_or_else(|| SessionError::UnknownKey { key_id: key_id.to_owned() })?;
        let (signed, mac) = bytes.split_at(bytes.len() - MAC_BYTES);
        verify_token_mac(key, signed, mac)?;

        let claims = &signed[2 + key_id_len..];
        let context: SessionContext = serde_json::from_slice(claims)
            .map_err(|_| SessionError::Malformed("its claims are not the expected JSON"))?;
        if context.key_id != key.id() {
            return Err(SessionError::Malformed("its claims name another key"));
        }
        let expected_access_key_id = derive_access_key_id(key, &context.session_id);
        constant_time::verify_slices_are_equal(
            expected_access_key_id.as_bytes(),
            access_key_id.as_bytes(),
        )
        .map_err(|_| SessionError::AccessKeyMismatch)?;
        if now >= context.expires_at {
            return Err(SessionError::Expired { expired_at: context.expires_at });
        }
        let secret_access_key = derive_secret_access_key(key, access_key_id);
        Ok(OpenedSession { context, secret_access_key })
    }
}

fn token_mac(key: &SessionKey, signed: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.secret());
    let mut context = hmac::Context::with_key(&key);
    context.update(TOKEN_MAC_LABEL);
    context.update(signed);
    context.sign()
}

fn verify_token_mac(key: &SessionKey, signed: &[u8], mac: &[u8]) -> Result<(), SessionError> {
    let expected = token_mac(key, signed);
    constant_time::verify_slices_are_equal(expected.as_ref(), mac).map_err(|_| SessionError::BadMac)
}

fn labelled_hmac(key: &SessionKey, label: &[u8], message: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.secret());
    let mut context = hmac::Context::with_key(&key);
    context.update(label);
    context.update(message);
    context.sign()
}

/// `ASIA` + base32 of 80 bits of HMAC(key, session id): 20 characters, like STS's temporary ids.
fn derive_access_key_id(key: &SessionKey, session_id: &Uuid) -> String {
    let tag = labelled_hmac(key, ACCESS_KEY_ID_LABEL, session_id.as_bytes());
    format!("ASIA{}", data_encoding::BASE32_NOPAD.encode(&tag.as_ref()[..10]))
}

/// 40 characters of base64 over 240 bits of HMAC(key, access key id).
fn derive_secret_access_key(key: &SessionKey, access_key_id: &str) -> SecretAccessKey {
    let tag = labelled_hmac(key, SECRET_ACCESS_KEY_LABEL, access_key_id.as_bytes());
    SecretAccessKey(Redacted(STANDARD_NO_PAD.encode(&tag.as_ref()[..30])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> AgentIdentity {
        AgentIdentity {
            subject: "system:serviceaccount:team-a:pr-bot".into(),
            namespace: "team-a".into(),
            service_account: "pr-bot".into(),
            service_account_uid: "0b1c".into(),
            pod: Some(PodRef { name: "pr-bot-7d9".into(), uid: "5e6f".into() }),
            token_id: None,
            token_expires_at: OffsetDateTime::now_utc(),
        }
    }

    fn minter(current: &str, previous: Option<&str>) -> SessionMinter {
        let key = |id: &str| SessionKey::new(id, id.repeat(32).into_bytes()).unwrap();
        SessionMinter::new(SessionKeys::new(key(current), previous.map(key)).unwrap())
    }

    #[test]
    fn minted_credentials_have_sts_shapes_and_open_again() {
        let minter = minter("k1", None);
        let credentials =
            minter.mint(&identity(), "prod-aws", "run-42", Duration::seconds(900)).unwrap();
        assert_eq!(credentials.access_key_id.len(), 20);
        assert!(credentials.access_key_id.starts_with("ASIA"));
        assert!(
            credentials.access_key_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        assert_eq!(credentials.secret_access_key.expose().len(), 40);
        assert_eq!(credentials.session.session_id.get_version_num(), 7);

        let opened = minter
            .open(&credentials.access_key_id, &credentials.session_token, OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(opened.context, credentials.session);
        assert_eq!(opened.secret_access_key, credentials.secret_access_key);
        assert_eq!(opened.context.pod.as_ref().map(|p| p.name.as_str()), Some("pr-bot-7d9"));
    }

    #[test]
    fn a_token_cannot_be_paired_with_another_sessions_access_key_id() {
        let minter = minter("k1", None);
        let first = minter.mint(&identity(), "prod-aws", "a", Duration::seconds(900)).unwrap();
        let second = minter.mint(&identity(), "prod-aws", "b", Duration::seconds(900)).unwrap();
        let result =
            minter.open(&second.access_key_id, &first.session_token, OffsetDateTime::now_utc());
        assert!(matches!(result, Err(SessionError::AccessKeyMismatch)));
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_token_is_refused() {
        let minter = minter("k1", None);
        let credentials =
            minter.mint(&identity(), "prod-aws", "a", Duration::seconds(900)).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&credentials.session_token).unwrap();
        for index in [0, 1, 2, bytes.len() / 2, bytes.len() - 1] {
            let mut altered = bytes.clone();
            altered[index] ^= 0x01;
            let token = URL_SAFE_NO_PAD.encode(&altered);
            assert!(
                minter.open(&credentials.access_key_id, &token, OffsetDateTime::now_utc()).is_err(),
                "a flip at byte {index} went unnoticed"
            );
        }
    }

    #[test]
    fn an_expired_session_is_reported_as_expired_only_after_its_mac_verified() {
        let minter = minter("k1", None);
        let credentials =
            minter.mint(&identity(), "prod-aws", "a", Duration::seconds(900)).unwrap();
        let later = OffsetDateTime::now_utc() + Duration::seconds(901);
        let error =
            minter.open(&credentials.access_key_id, &credentials.session_token, later).unwrap_err();
        assert!(error.is_expired(), "{error}");

        let mut bytes = URL_SAFE_NO_PAD.decode(&credentials.session_token).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        let forged = URL_SAFE_NO_PAD.encode(&bytes);
        assert!(matches!(
            minter.open(&credentials.access_key_id, &forged, later),
            Err(SessionError::BadMac)
        ));
    }

    #[test]
    fn a_zero_or_negative_duration_is_refused() {
        let minter = minter("k1", None);
        assert!(minter.mint(&identity(), "c", "a", Duration::ZERO).is_err());
        assert!(minter.mint(&identity(), "c", "a", Duration::seconds(-5)).is_err());
    }

    #[test]
    fn garbage_tokens_are_malformed_not_panics() {
        let minter = minter("k1", Some("k0"));
        let now = OffsetDateTime::now_utc();
        for token in ["", "!!!", "AQ", "AQJrMQ", &"A".repeat(5000)] {
            assert!(minter.open("ASIAAAAAAAAAAAAAAAAA", token, now).is_err(), "{token:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_opens_and_never_panics(token in ".{0,600}", access_key_id in "[A-Z0-9]{0,24}") {
            let minter = minter("k1", Some("k0"));
            proptest::prop_assert!(minter.open(&access_key_id, &token, OffsetDateTime::now_utc()).is_err());
        }

        #[test]
        fn any_single_byte_change_to_a_minted_token_is_refused(index in 0usize..10_000, flip in 1u8..=255) {
            let minter = minter("k1", None);
            let credentials = minter.mint(&identity(), "prod-aws", "a", Duration::seconds(900)).unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(&credentials.session_token).unwrap();
            let index = index % bytes.len();
            bytes[index] ^= flip;
            let token = URL_SAFE_NO_PAD.encode(&bytes);
            proptest::prop_assert!(
                minter.open(&credentials.access_key_id, &token, OffsetDateTime::now_utc()).is_err()
            );
        }
    }
}
