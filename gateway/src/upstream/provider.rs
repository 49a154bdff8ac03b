//! The cache of temporary upstream credentials: one entry per exchange (web identity per role and
//! token file; assumed role per role, base credentials and agent session name), refreshed ahead of
//! expiry in the background, with concurrent callers of an expired entry sharing one STS call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Instant, SystemTime},
};

use chaperone_config::{ConnectionConfig, UpstreamCredentials};
use sha2::{Digest, Sha256};

use super::{
    refresh::{Freshness, freshness},
    session_name::{agent_session_name, gateway_session_name},
    sts::{StsAction, StsClient, StsError, StsFailure, TemporaryCredentials},
};
use crate::{
    forward::{UpstreamForwarder, default_endpoint},
    metrics::{ExchangeLabels, GatewayMetrics},
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WebIdentityKey {
    role_arn: String,
    token_file: String,
    endpoint: String,
    session_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum BaseKey {
    Static { access_key_id: String, secret_digest: [u8; 32] },
    WebIdentity(WebIdentityKey),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ExchangeKey {
    WebIdentity(WebIdentityKey),
    AssumeRole {
        base: BaseKey,
        role_arn: String,
        external_id: Option<String>,
        session_name: String,
        endpoint: String,
        region: String,
    },
}

#[derive(Default)]
struct CachedCredentials {
    current: RwLock<Option<TemporaryCredentials>>,
    refresh: Arc<tokio::sync::Mutex<()>>,
    last_failure: Mutex<Option<(Instant, StsFailure)>>,
}

impl CachedCredentials {
    fn current(&self) -> Option<TemporaryCredentials> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn usable(&self, now: SystemTime) -> bool {
        self.current().is_some_and(|c| freshness(c.expires_at, now) != Freshness::Expired)
    }
}

/// Resolves each connection's upstream credentials for a call, calling STS when needed.
pub struct UpstreamCredentialsProvider {
    sts: StsClient,
    metrics: Arc<GatewayMetrics>,
    cache: Mutex<HashMap<ExchangeKey, Arc<CachedCredentials>>>,
}

impl UpstreamCredentialsProvider {
    /// A provider sending its STS calls over `forwarder`'s pool.
    pub fn new(forwarder: UpstreamForwarder, metrics: Arc<GatewayMetrics>) -> Self {
        Self { sts: StsClient::new(forwarder), metrics, cache: Mutex::default() }
    }

    /// The credentials a call of `service_account` through `connection` is signed with.
    pub async fn credentials(
        self: &Arc<Self>,
        namespace: &str,
        connection: &ConnectionConfig,
        service_account: &str,
    ) -> Result<UpstreamCredentials, StsFailure> {
        let (base_key, base) = self.base(namespace, connection).await?;
        let Some(role) = &connection.upstream.assume_role else {
            return Ok(base);
        };
        let key = ExchangeKey::AssumeRole {
            base: base_key,
            role_arn: role.role_arn.clone(),
            external_id: role.external_id.clone(),
            session_name: agent_session_name(namespace, service_account),
            endpoint: sts_endpoint(connection),
            region: connection.region.clone(),
        };
        self.cached(key, Some(base)).await
    }

    /// Fetches the connection's base credentials ahead of its first call (web identity only);
    /// a failure is logged and counted, and calls retry it.
    pub async fn prime(self: &Arc<Self>, namespace: &str, connection: &ConnectionConfig) {
        if connection.upstream.web_identity.is_some()
            && let Err(failure) = self.base(namespace, connection).await
        {
            tracing::warn!(connection = %connection.name, %failure, "upstream credentials are not available yet; calls will retry");
        }
    }

    async fn base(
        self: &Arc<Self>,
        namespace: &str,
        connection: &ConnectionConfig,
    ) -> Result<(BaseKey, UpstreamCredentials), StsFailure> {
        if let Some(keys) = connection.upstream.static_keys() {
            let key = BaseKey::Static {
                access_key_id: keys.access_key_id.clone(),
                secret_digest: Sha256::digest(keys.secret_access_key.as_bytes()).into(),
            };
            return Ok((key, keys));
        }
        let Some(web) = &connection.upstream.web_identity else {
            // Refused by config validation; answered as STS would if it ever got here.
            return Err(StsFailure {
                action: StsAction::AssumeRoleWithWebIdentity,
                role_arn: String::new(),
                endpoint: String::new(),
                error: StsError::Malformed {
                    status: 0,
                    reason: format!("connection {} has no upstream credentials", connection.name),
                },
            });
        };
        let key = WebIdentityKey {
            role_arn: web.role_arn.clone(),
            token_file: web.token_file.clone(),
            endpoint: web.sts_endpoint.clone().unwrap_or_else(|| sts_endpoint(connection)),
            session_name: gateway_session_name(namespace),
        };
        let credentials = self.cached(ExchangeKey::WebIdentity(key.clone()), None).await?;
        Ok((BaseKey::WebIdentity(key), credentials))
    }

    fn entry(&self, key: &ExchangeKey) -> Arc<CachedCredentials> {
        let mut cache = match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(entry) = cache.get(key) {
            return entry.clone();
        }
        // Forget agents' sessions that expired and that no call holds.
        let now = SystemTime::now();
        cache.retain(|_, entry| Arc::strong_count(entry) > 1 || entry.usable(now));
        cache.entry(key.clone()).or_default().clone()
    }

    async fn cached(
        self: &Arc<Self>,
        key: ExchangeKey,
        base: Option<UpstreamCredentials>,
    ) -> Result<UpstreamCredentials, StsFailure> {
        let entry = self.entry(&key);
        if let Some(current) = entry.current() {
            match freshness(current.expires_at, SystemTime::now()) {
                Freshness::Fresh => return Ok(current.keys),
                Freshness::RefreshAhead => {
                    if let Ok(guard) = entry.refresh.clone().try_lock_owned() {
                        let this = self.clone();
                        let background = entry.clone();
                        tokio::spawn(async move {
                            let _guard = guard;
                            let _ = this.refresh(&key, base.as_ref(), &background).await;
                        });
                    }
                    return Ok(current.keys);
                }
                Freshness::Expired => {}
            }
        }
        let asked = Instant::now();
        let _guard = entry.refresh.lock().await;
        // Another caller may have refreshed (or failed) while this one waited.
        if let Some(current) = entry.current()
            && freshness(current.expires_at, SystemTime::now()) != Freshness::Expired
        {
            return Ok(current.keys);
        }
        let recent_failure = match entry.last_failure.lock() {
            Ok(last) => last.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some((at, failure)) = recent_failure
            && at >= asked
        {
            return Err(failure);
        }
        self.refresh(&key, base.as_ref(), &entry).await.map(|c| c.keys)
    }

    async fn refresh(
        &self,
        key: &ExchangeKey,
        base: Option<&UpstreamCredentials>,
        entry: &CachedCredentials,
    ) -> Result<TemporaryCredentials, StsFailure> {
        let (action, role_arn, session_name) = match key {
            ExchangeKey::WebIdentity(k) => {
                (StsAction::AssumeRoleWithWebIdentity, &k.role_arn, &k.session_name)
            }
            ExchangeKey::AssumeRole { role_arn, session_name, .. } => {
                (StsAction::AssumeRole, role_arn, session_name)
            }
        };
        let result = match (key, base) {
            (ExchangeKey::WebIdentity(k), _) => {
                self.sts
                    .assume_role_with_web_identity(
                        &k.endpoint,
                        &k.role_arn,
                        &k.session_name,
                        &k.token_file,
                    )
                    .await
            }
            (
                ExchangeKey::AssumeRole {
                    role_arn,
                    external_id,
                    session_name,
                    endpoint,
                    region,
                    ..
                },
                Some(base),
            ) => {
                self.sts
                    .assume_role(
                        endpoint,
                        region,
                        role_arn,
                        external_id.as_deref(),
                        session_name,
                        base,
                    )
                    .await
            }
            (ExchangeKey::AssumeRole { role_arn, endpoint, .. }, None) => Err(StsFailure {
                action,
                role_arn: role_arn.clone(),
                endpoint: endpoint.clone(),
                error: StsError::Malformed { status: 0, reason: "no base credentials".into() },
            }),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .upstream_credential_exchanges_total
            .get_or_create(&ExchangeLabels { kind: action.label().into(), outcome: outcome.into() })
            .inc();
        match &result {
            Ok(credentials) => {
                let expires_at = time::OffsetDateTime::from(credentials.expires_at);
                tracing::info!(%action, role = %role_arn, session_name = %session_name, %expires_at, "upstream credentials obtained");
                match entry.current.write() {
                    Ok(mut current) => *current = Some(credentials.clone()),
                    Err(poisoned) => *poisoned.into_inner() = Some(credentials.clone()),
                }
                match entry.last_failure.lock() {
                    Ok(mut last) => *last = None,
                    Err(poisoned) => *poisoned.into_inner() = None,
                }
            }
            Err(failure) => {
                tracing::warn!(%failure, session_name = %session_name, "obtaining upstream credentials failed");
                match entry.last_failure.lock() {
                    Ok(mut last) => *last = Some((Instant::now(), failure.clone())),
                    Err(poisoned) => {
                        *poisoned.into_inner() = Some((Instant::now(), failure.clone()))
                    }
                }
            }
        }
        result
    }
}

/// Where a connection's AssumeRole (and, by default, web identity) calls go: its `sts` endpoint
/// override, else its region's STS.
fn sts_endpoint(connection: &ConnectionConfig) -> String {
    connection
        .endpoints
        .get("sts")
        .cloned()
        .unwrap_or_else(|| default_endpoint("sts", &connection.region))
}
