//! Leader election over a `coordination.k8s.io` Lease, so that one operator replica reconciles at
//! a time (webhooks, when they land, are served by every replica).
//!
//! [`next_step`] decides from the Lease as it is (pure); [`LeaderLease`] carries the decision out
//! with create and resourceVersion-guarded replace, so two replicas can never both win.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

/// What to do with the Lease now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseStep {
    /// No Lease exists: create it, holding it.
    Create,
    /// This replica holds it: renew it.
    Renew,
    /// Nobody holds it, or its holder stopped renewing: take it over.
    TakeOver,
    /// Another replica holds it: wait.
    Follow {
        /// The holder's identity.
        holder: String,
    },
}

/// Decides what `identity` does with `lease` at `now`; `lease_duration` applies when the Lease
/// names none.
pub fn next_step(
    lease: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> LeaseStep {
    let Some(spec) = lease else { return LeaseStep::Create };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return LeaseStep::TakeOver;
    }
    if holder == identity {
        return LeaseStep::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| SignedDuration::from_secs(i64::from(s)))
        .unwrap_or_else(|| SignedDuration::from_secs(lease_duration.as_secs() as i64));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    match renewed.and_then(|t| t.checked_add(duration).ok()) {
        Some(expiry) if now <= expiry => LeaseStep::Follow { holder: holder.to_owned() },
        _ => LeaseStep::TakeOver,
    }
}

/// One replica's side of the election.
#[derive(Clone)]
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
}

impl std::fmt::Debug for LeaderLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderLease")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LeaderLease {
    /// The Lease `namespace/name`, contended for as `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration,
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One attempt to acquire or renew the Lease; true when this replica holds it afterwards.
    /// Losing a race to another replica is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let now = Timestamp::now();
        let step = next_step(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
            self.lease_duration,
        );
        let duration_seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let result = match (step, current) {
            (LeaseStep::Follow { .. }, _) => return Ok(false),
            (LeaseStep::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration_seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (step, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if step == LeaseStep::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration_seconds);
                spec.renew_time = Some(MicroTime(now));
                // The resourceVersion read above makes this a compare-and-swap.
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this replica holds it, so another takes over without waiting for it
    /// to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn held_by(holder: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            ..Default::default()
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_missing_lease_is_created_and_an_own_lease_renewed() {
        assert_eq!(next_step(None, "a", at("2026-11-25T18:00:00Z"), DURATION), LeaseStep::Create);
        let lease = held_by("a", "2026-11-25T18:00:00Z");
        assert_eq!(
            next_step(Some(&lease), "a", at("2026-11-25T18:00:05Z"), DURATION),
            LeaseStep::Renew
        );
    }

    #[test]
    fn another_holders_fresh_lease_is_followed_and_an_expired_one_taken_over() {
        let lease = held_by("b", "2026-11-25T18:00:00Z");
        assert_eq!(
            next_step(Some(&lease), "a", at("2026-11-25T18:00:10Z"), DURATION),
            LeaseStep::Follow { holder: "b".into() }
        );
        assert_eq!(
            next_step(Some(&lease), "a", at("2026-11-25T18:00:16Z"), DURATION),
            LeaseStep::TakeOver
        );
    }

    #[test]
    fn a_released_lease_is_taken_over_at_once() {
        let mut lease = held_by("b", "2026-11-25T18:00:00Z");
        lease.holder_identity = None;
        assert_eq!(
            next_step(Some(&lease), "a", at("2026-11-25T18:00:01Z"), DURATION),
            LeaseStep::TakeOver
        );
    }
}
