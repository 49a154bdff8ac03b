//! What the operator does with one ApprovalRequest now (pure): the phase people read, whether to
//! notify the rule's target, whether to delete it, and when to look again.
//!
//! - **Phase**: from the reviews, exactly as the gateway decides (a Deny denies; enough distinct
//!   approvals approve; the agent's own reviews never count), `Expired` once `expiresAt` has
//!   passed without a decision that was used. `Consumed`, `Denied` and `Expired` are final; the
//!   operator never writes `Consumed` (only a gateway using the approval does).
//! - **Notification**: only while the request is undecided and unexpired, once per target:
//!   attempts are recorded in `status.notifications`, retried with exponential backoff up to
//!   [`LifecycleSettings::max_attempts`], then marked `Failed`.
//! - **Cleanup**: a request in a final phase is deleted [`LifecycleSettings::retention`] after
//!   its `expiresAt` (after its creation when `expiresAt` does not parse).

use std::time::Duration;

use chaperone_config::approval::{Verdict, is_expired, verdict};
use chaperone_crds::{ApprovalPhase, ApprovalRequest, NotificationDelivery, NotificationState};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// How requests age and how notifications are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// How long a decided, consumed or expired request is kept after its `expiresAt`.
    pub retention: Duration,
    /// Delivery attempts per target before it is marked `Failed`.
    pub max_attempts: u32,
    /// Pause after the first failed attempt; it doubles after each further one.
    pub first_retry: Duration,
    /// The longest pause between attempts.
    pub max_retry: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_attempts: 5,
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(60),
        }
    }
}

impl LifecycleSettings {
    /// The pause after `attempts` failed attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(16);
        self.first_retry.saturating_mul(1u32 << doublings).min(self.max_retry)
    }
}

/// What to do with one request now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecyclePlan {
    /// Write this phase (it differs from the stored one, or none is stored).
    pub phase: Option<ApprovalPhase>,
    /// Make one delivery attempt to the rule's target now.
    pub notify: bool,
    /// Delete the request: its retention has passed.
    pub delete: bool,
    /// Look at it again after this long (expiry, a retry, the end of retention).
    pub requeue_after: Option<Duration>,
}

/// The phase stored in the request's status (`Pending` when none is).
pub fn stored_phase(request: &ApprovalRequest) -> ApprovalPhase {
    request.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// Whether a phase is final: nothing changes it any more.
pub fn is_final(phase: ApprovalPhase) -> bool {
    matches!(phase, ApprovalPhase::Consumed | ApprovalPhase::Denied | ApprovalPhase::Expired)
}

/// The phase the request should show at `now`.
pub fn desired_phase(request: &ApprovalRequest, now: OffsetDateTime) -> ApprovalPhase {
    let stored = stored_phase(request);
    if is_final(stored) {
        return stored;
    }
    let agent = format!(
        "system:serviceaccount:{}:{}",
        request.metadata.namespace.as_deref().unwrap_or_default(),
        request.spec.agent.service_account
    );
    match verdict(&request.spec, &agent) {
        Verdict::Denied { .. } => ApprovalPhase::Denied,
        _ if is_expired(&request.spec, now) => ApprovalPhase::Expired,
        Verdict::Approved { .. } => ApprovalPhase::Approved,
        Verdict::Pending { .. } => ApprovalPhase::Pending,
    }
}

/// The delivery recorded for `target`, if any.
pub fn delivery_for<'a>(
    request: &'a ApprovalRequest,
    target: &str,
) -> Option<&'a NotificationDelivery> {
    request.status.as_ref()?.notifications.iter().find(|d| d.target == target)
}

/// When the request may be deleted.
pub fn deletion_time(request: &ApprovalRequest, settings: &LifecycleSettings) -> OffsetDateTime {
    let base = OffsetDateTime::parse(&request.spec.expires_at, &Rfc3339)
        .ok()
        .or_else(|| {
            let created = request.metadata.creation_timestamp.as_ref()?.0;
            OffsetDateTime::from_unix_timestamp(created.as_second()).ok()
        })
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    base.saturating_add(to_time(settings.retention))
}

fn to_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// Until `at`, from `now` (at least one second, so a requeue never spins).
fn until(at: OffsetDateTime, now: OffsetDateTime) -> Duration {
    Duration::try_from(at - now).unwrap_or_default().max(Duration::from_secs(1))
}

/// What to do with `request` at `now`; `target` identifies the rule's notification target
/// (`None` when the rule notifies nobody or is gone).
pub fn plan(
    request: &ApprovalRequest,
    target: Option<&str>,
    now: OffsetDateTime,
    settings: &LifecycleSettings,
) -> LifecyclePlan {
    let stored = stored_phase(request);
    let desired = desired_phase(request, now);
    let mut plan = LifecyclePlan {
        phase: (request.status.is_none() || desired != stored).then_some(desired),
        ..LifecyclePlan::default()
    };
    let mut wake: Vec<Duration> = Vec::new();

    if is_final(stored) {
        let delete_at = deletion_time(request, settings);
        if now >= delete_at {
            plan.delete = true;
            plan.phase = None;
            return plan;
        }
        wake.push(until(delete_at, now));
    } else if is_final(desired) {
        // Written now; the write brings the request back to start its retention.
    } else if let Ok(expires_at) = OffsetDateTime::parse(&request.spec.expires_at, &Rfc3339) {
        wake.push(until(expires_at, now));
    }

    if desired == ApprovalPhase::Pending
        && let Some(target) = target
    {
        match delivery_for(request, target) {
            None => plan.notify = true,
            Some(d) if d.state == NotificationState::Retrying => {
                let attempts = u32::try_from(d.attempts).unwrap_or(0);
                let last = d
                    .last_attempt_at
                    .as_deref()
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
                match last {
                    Some(last) if attempts > 0 => {
                        let next = last.saturating_add(to_time(settings.backoff(attempts)));
                        if now >= next {
                            plan.notify = true;
                        } else {
                            wake.push(until(next, now));
                        }
                    }
                    _ => plan.notify = true,
                }
            }
            Some(_) => {}
        }
    }
    plan.requeue_after = wake.into_iter().min();
    plan
}

/// The delivery record after one attempt to `target` at `now` (`outcome` is the error message
/// of a failed attempt).
pub fn record_attempt(
    previous: Option<&NotificationDelivery>,
    target: &str,
    outcome: Result<(), String>,
    now: OffsetDateTime,
    settings: &LifecycleSettings,
) -> NotificationDelivery {
    let attempts = previous.map(|p| p.attempts).unwrap_or(0).saturating_add(1);
    let at = now.replace_nanosecond(0).unwrap_or(now).format(&Rfc3339).ok();
    match outcome {
        Ok(()) => NotificationDelivery {
            target: target.to_owned(),
            state: NotificationState::Delivered,
            attempts,
            last_attempt_at: at.clone(),
            delivered_at: at,
            last_error: None,
        },
        Err(error) => {
            let exhausted = u32::try_from(attempts).unwrap_or(u32::MAX) >= settings.max_attempts;
            NotificationDelivery {
                target: target.to_owned(),
                state: if exhausted {
                    NotificationState::Failed
                } else {
                    NotificationState::Retrying
                },
                attempts,
                last_attempt_at: at,
                delivered_at: None,
                last_error: Some(error.chars().take(1000).collect()),
            }
        }
    }
}

/// `deliveries` with `delivery` in place of the entry for its target (appended when new).
pub fn with_delivery(
    deliveries: &[NotificationDelivery],
    delivery: NotificationDelivery,
) -> Vec<NotificationDelivery> {
    let mut all: Vec<NotificationDelivery> =
        deliveries.iter().filter(|d| d.target != delivery.target).cloned().collect();
    all.push(delivery);
    // The CRD keeps at most 8 (targets change rarely): the oldest entries go first.
    let excess = all.len().saturating_sub(8);
    all.drain(..excess);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_crds::{
        AgentIdentity, ApprovalRequestSpec, ApprovalRequestStatus, Decision, Review,
    };
    use kube::api::ObjectMeta;

    const TARGET: &str = "webhook Secret/notify key url (json)";

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    fn request(reviews: Vec<Review>, status: Option<ApprovalRequestStatus>) -> ApprovalRequest {
        ApprovalRequest {
            metadata: ObjectMeta {
                name: Some("deletes-1a2b3c4d5e".into()),
                namespace: Some("agents".into()),
                ..Default::default()
            },
            spec: ApprovalRequestSpec {
                connection: "prod-aws".into(),
                rule: "deletes".into(),
                session_id: "s".into(),
                agent: AgentIdentity { service_account: "pr-bot".into(), ..Default::default() },
                actions: vec!["s3:DeleteBucket".into()],
                resources: vec![],
                parameters_preview: String::new(),
                fingerprint: "f".repeat(64),
                required_approvals: 1,
                expires_at: "2026-11-25T12:15:00Z".into(),
                reviews,
            },
            status,
        }
    }

    fn review(decision: Decision, user: &str) -> Review {
        Review {
            decision,
            reason: "because".into(),
            user: user.into(),
            groups: vec!["sre".into()],
            time: "2026-11-25T12:01:00Z".into(),
        }
    }

    fn with_phase(phase: ApprovalPhase) -> Option<ApprovalRequestStatus> {
        Some(ApprovalRequestStatus { phase, ..Default::default() })
    }

    fn settings() -> LifecycleSettings {
        LifecycleSettings { retention: Duration::from_secs(3600), ..LifecycleSettings::default() }
    }

    #[test]
    fn a_new_request_is_shown_pending_and_notified_once_and_looked_at_again_at_expiry() {
        let now = at("2026-11-25T12:00:00Z");
        let plan = plan(&request(vec![], None), Some(TARGET), now, &settings());
        assert_eq!(plan.phase, Some(ApprovalPhase::Pending));
        assert!(plan.notify && !plan.delete);
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(15 * 60)));

        let mut notified = request(vec![], with_phase(ApprovalPhase::Pending));
        let delivered = record_attempt(None, TARGET, Ok(()), now, &settings());
        assert_eq!(delivered.state, NotificationState::Delivered);
        assert_eq!(delivered.delivered_at.as_deref(), Some("2026-11-25T12:00:00Z"));
        notified.status.as_mut().unwrap().notifications = vec![delivered];
        let again = super::plan(&notified, Some(TARGET), now, &settings());
        assert_eq!(
            again,
            LifecyclePlan { requeue_after: Some(Duration::from_secs(900)), ..Default::default() }
        );
    }

    #[test]
    fn reviews_set_the_phase_and_the_agents_own_approval_does_not_count() {
        let now = at("2026-11-25T12:02:00Z");
        let approved =
            request(vec![review(Decision::Approve, "alice")], with_phase(ApprovalPhase::Pending));
        assert_eq!(
            plan(&approved, Some(TARGET), now, &settings()).phase,
            Some(ApprovalPhase::Approved)
        );
        assert!(
            !plan(&approved, Some(TARGET), now, &settings()).notify,
            "decided: no notification"
        );

        let by_agent = request(
            vec![review(Decision::Approve, "system:serviceaccount:agents:pr-bot")],
            with_phase(ApprovalPhase::Pending),
        );
        assert_eq!(plan(&by_agent, None, now, &settings()).phase, None);

        let denied = request(
            vec![review(Decision::Approve, "alice"), review(Decision::Deny, "bob")],
            with_phase(ApprovalPhase::Approved),
        );
        assert_eq!(plan(&denied, None, now, &settings()).phase, Some(ApprovalPhase::Denied));
    }

    #[test]
    fn a_consumed_request_is_never_rewritten_and_is_deleted_after_retention() {
        let consumed =
            request(vec![review(Decision::Approve, "alice")], with_phase(ApprovalPhase::Consumed));
        let before = plan(&consumed, Some(TARGET), at("2026-11-25T13:00:00Z"), &settings());
        assert_eq!(
            before,
            LifecyclePlan {
                requeue_after: Some(Duration::from_secs(15 * 60)),
                ..Default::default()
            }
        );
        let after = plan(&consumed, Some(TARGET), at("2026-11-25T13:15:00Z"), &settings());
        assert!(after.delete && after.phase.is_none());
    }

    #[test]
    fn an_undecided_request_past_its_expiry_becomes_expired_and_is_not_notified() {
        let now = at("2026-11-25T12:20:00Z");
        let pending = request(vec![], with_phase(ApprovalPhase::Pending));
        let plan = plan(&pending, Some(TARGET), now, &settings());
        assert_eq!(plan.phase, Some(ApprovalPhase::Expired));
        assert!(!plan.notify && !plan.delete);

        let unused_approval =
            request(vec![review(Decision::Approve, "alice")], with_phase(ApprovalPhase::Approved));
        assert_eq!(
            super::plan(&unused_approval, None, now, &settings()).phase,
            Some(ApprovalPhase::Expired)
        );
    }

    #[test]
    fn failed_deliveries_are_retried_with_backoff_until_the_attempts_run_out() {
        let settings = settings();
        assert_eq!(settings.backoff(1), Duration::from_secs(2));
        assert_eq!(settings.backoff(3), Duration::from_secs(8));
        assert_eq!(settings.backoff(30), Duration::from_secs(60));

        let t0 = at("2026-11-25T12:00:00Z");
        let first = record_attempt(None, TARGET, Err("connection refused".into()), t0, &settings);
        assert_eq!((first.state, first.attempts), (NotificationState::Retrying, 1));
        let mut pending = request(vec![], with_phase(ApprovalPhase::Pending));
        pending.status.as_mut().unwrap().notifications = vec![first.clone()];
        let soon = plan(&pending, Some(TARGET), at("2026-11-25T12:00:01Z"), &settings);
        assert!(!soon.notify);
        assert_eq!(soon.requeue_after, Some(Duration::from_secs(1)));
        assert!(plan(&pending, Some(TARGET), at("2026-11-25T12:00:02Z"), &settings).notify);

        let mut last = first;
        for _ in 1..settings.max_attempts {
            last = record_attempt(Some(&last), TARGET, Err("503".into()), t0, &settings);
        }
        assert_eq!((last.state, last.attempts), (NotificationState::Failed, 5));
        assert_eq!(last.last_error.as_deref(), Some("503"));
        pending.status.as_mut().unwrap().notifications = vec![last];
        assert!(!plan(&pending, Some(TARGET), at("2026-11-25T12:10:00Z"), &settings).notify);
        // A new target (the rule's notify changed) is notified in its own right.
        assert!(plan(&pending, Some("webhook Secret/other key url (slack)"), t0, &settings).notify);
    }

    #[test]
    fn a_delivery_replaces_the_entry_of_its_target() {
        let t0 = at("2026-11-25T12:00:00Z");
        let failed = record_attempt(None, "a", Err("x".into()), t0, &settings());
        let other = record_attempt(None, "b", Ok(()), t0, &settings());
        let ok = record_attempt(Some(&failed), "a", Ok(()), t0, &settings());
        let all = with_delivery(&[failed, other.clone()], ok.clone());
        assert_eq!(all, vec![other, ok]);
    }
}
