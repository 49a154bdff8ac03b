//! The kube-backed shell of approvals: finds, creates, watches and consumes ApprovalRequests in
//! the gateway's namespace. Decisions come only from the pure core ([`super::reviews`]).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chaperone_config::approval::{Reviewer, Verdict, is_expired, verdict};
use chaperone_crds::{
    AgentIdentity, ApprovalPhase, ApprovalRequest, ApprovalRequestSpec, ApprovalRequestStatus,
};
use chaperone_recording::{Approval, ApprovalDecision, Approver};
use futures_util::{StreamExt, TryStreamExt};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    fingerprint::{BodyDigest, CallFingerprint, CallIdentity, CallParameters},
    preview::parameters_preview,
    rules::{ApprovalRules, CompiledApprovalRule},
};
use crate::{identity::SessionContext, policy::PolicyDecision};

/// Label holding the first 63 characters of an ApprovalRequest's fingerprint.
pub const FINGERPRINT_LABEL: &str = "chaperone.dev/fingerprint";
/// Label marking objects the gateway created.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "chaperone-gateway");
/// How often a conditional update is retried after a conflict, and names tried on collision.
const MAX_ATTEMPTS: usize = 8;
/// Pause after a failed watch before looking again.
const WATCH_RETRY: Duration = Duration::from_millis(250);

/// The approval store failed; the held call is refused (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// A Kubernetes API call failed.
    #[error(
        "ApprovalRule {rule} holds this call, but the gateway could not {doing} in namespace {namespace}: {source}"
    )]
    Api {
        /// The rule that holds the call.
        rule: String,
        /// The namespace.
        namespace: String,
        /// What the gateway was doing, e.g. `create ApprovalRequest prod-deletes-1a2b3c4d5e`.
        doing: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Every name tried for a new ApprovalRequest was taken by other requests.
    #[error(
        "ApprovalRule {rule} holds this call, but ApprovalRequests {base} to {base}-{last} in namespace {namespace} are all taken by other requests; delete old ones and retry"
    )]
    NoFreeName {
        /// The rule that holds the call.
        rule: String,
        /// The namespace.
        namespace: String,
        /// The first name tried.
        base: String,
        /// The last suffix tried.
        last: usize,
    },
    /// The held call's body streams without a declared sha256, so no approval can be bound to
    /// its bytes.
    #[error(
        "ApprovalRule {rule} holds this call, and its body streams {payload_mode}{size}: an approval is bound to the sha256 of the whole body, which the gateway cannot know before forwarding. Sign the payload (x-amz-content-sha256 set to the body's sha256; the AWS CLI and boto3 do with request_checksum_calculation = when_required and s3 payload_signing_enabled = true in their config, and by default only over plain HTTP) or send at most 1048576 bytes, which the gateway reads whole"
    )]
    UnboundBody {
        /// The rule that holds the call.
        rule: String,
        /// How the body was sent, e.g. `UNSIGNED-PAYLOAD`.
        payload_mode: &'static str,
        /// ` (<n> bytes)` when the size is declared.
        size: String,
    },
}

impl ApprovalError {
    /// The data path's decision: the held call is refused (fail closed).
    pub fn decision(&self, namespace: &str) -> PolicyDecision {
        let (rule, what) = match self {
            ApprovalError::Api { rule, .. } | ApprovalError::NoFreeName { rule, .. } => {
                (rule, "approval store")
            }
            ApprovalError::UnboundBody { rule, .. } => (rule, "approval binding: unsigned body"),
        };
        PolicyDecision::Deny {
            object: format!("ApprovalRule/{namespace}/{rule}"),
            rule: what.into(),
            message: self.to_string(),
        }
    }
}

/// An allowed call, as the data path hands it to the gate.
#[derive(Clone, Copy, Debug)]
pub struct CallUnderReview<'a> {
    /// The agent's session.
    pub session: &'a SessionContext,
    /// IAM actions.
    pub actions: &'a [String],
    /// Resource ARNs.
    pub resources: &'a [String],
    /// Whether `resources` names everything the call may touch; when not, a rule scoped to
    /// resources holds the call anyway.
    pub resources_complete: bool,
    /// HTTP method.
    pub method: &'a str,
    /// The path as on the wire.
    pub raw_path: &'a str,
    /// The query as on the wire.
    pub raw_query: &'a str,
    /// The request's Content-Type.
    pub content_type: Option<&'a str>,
    /// The semantic headers that go upstream ([`super::fingerprint::semantic_headers`]).
    pub headers: &'a [(String, String)],
    /// The body, as the fingerprint sees it.
    pub body: BodyDigest,
    /// The body when it was read whole, for the preview.
    pub body_preview: Option<&'a [u8]>,
}

/// A call an approval rule holds.
#[derive(Clone, Debug)]
pub struct HeldCall<'a> {
    /// The rule that holds it.
    pub rule: &'a CompiledApprovalRule,
    /// The agent's session.
    pub session: &'a SessionContext,
    /// IAM actions.
    pub actions: &'a [String],
    /// Resource ARNs.
    pub resources: &'a [String],
    /// Its fingerprint.
    pub fingerprint: CallFingerprint,
    /// The redacted parameters preview reviewers read.
    pub parameters_preview: String,
}

/// How a held call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Approved (while held, or earlier) and consumed by this call: forward it.
    Approved {
        /// Who approved.
        approvers: Vec<Reviewer>,
    },
    /// A reviewer denied it.
    Denied {
        /// Who denied.
        reviewer: Reviewer,
        /// Their reason.
        reason: String,
    },
    /// Nobody decided within `holdSeconds`.
    TimedOut,
}

/// The result of holding one call.
#[derive(Clone, Debug)]
pub struct HoldResult {
    /// The ApprovalRequest's name.
    pub approval_request: String,
    /// The gateway's namespace.
    pub namespace: String,
    /// The rule's name.
    pub rule: String,
    /// `approvalValidSeconds` of the rule.
    pub approval_valid_seconds: i32,
    /// When the request's approval stops admitting the call (RFC 3339).
    pub expires_at: String,
    /// The fingerprint.
    pub fingerprint: String,
    /// How it ended.
    pub outcome: HoldOutcome,
    /// How long the call was held.
    pub waited: Duration,
}

impl HoldResult {
    /// Whether the call may go on.
    pub fn admits(&self) -> bool {
        matches!(self.outcome, HoldOutcome::Approved { .. })
    }

    /// The `approval` event of call `call`.
    pub fn event(&self, call: &str) -> Approval {
        let approver =
            |r: &Reviewer| Approver { username: r.user.clone(), groups: r.groups.clone() };
        let (outcome, approvers, reason) = match &self.outcome {
            HoldOutcome::Approved { approvers } => {
                (ApprovalDecision::Approved, approvers.iter().map(approver).collect(), None)
            }
            HoldOutcome::Denied { reviewer, reason } => {
                (ApprovalDecision::Denied, vec![approver(reviewer)], Some(reason.clone()))
            }
            HoldOutcome::TimedOut => (ApprovalDecision::TimedOut, Vec::new(), None),
        };
        Approval {
            call: call.to_owned(),
            approval_request: self.approval_request.clone(),
            rule: self.rule.clone(),
            outcome,
            approvers,
            reason: reason.filter(|r| !r.is_empty()),
            waited_ms: u64::try_from(self.waited.as_millis()).unwrap_or(u64::MAX),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// `ApprovalRequest/<namespace>/<name>`.
    pub fn object(&self) -> String {
        format!("ApprovalRequest/{}/{}", self.namespace, self.approval_request)
    }

    /// The data path's decision: allow, or a denial naming the ApprovalRequest.
    pub fn decision(&self) -> PolicyDecision {
        let Some(message) = self.refusal_message() else {
            return PolicyDecision::Allow;
        };
        let rule = format!("ApprovalRule/{}/{}", self.namespace, self.rule);
        let rule = match self.outcome {
            HoldOutcome::Denied { .. } => format!("{rule}: denied by a reviewer"),
            _ => format!("{rule}: no decision within holdSeconds"),
        };
        PolicyDecision::Deny { object: self.object(), rule, message }
    }

    /// What the agent is told when the call is refused; `None` when it is admitted.
    pub fn refusal_message(&self) -> Option<String> {
        let (name, namespace) = (&self.approval_request, &self.namespace);
        match &self.outcome {
            HoldOutcome::Approved { .. } => None,
            HoldOutcome::Denied { reviewer, reason } => Some(format!(
                "ApprovalRequest {namespace}/{name} (ApprovalRule {rule}) was denied by {user}: {reason}. The same call stays refused until {expires}; change the call or ask the reviewer",
                rule = self.rule,
                user = reviewer.user,
                reason = if reason.is_empty() { "no reason given" } else { reason },
                expires = self.expires_at,
            )),
            HoldOutcome::TimedOut => Some(format!(
                "ApprovalRule {rule} holds this call for a reviewer and none decided within the hold ({waited} s). Ask a reviewer to run `kubectl chaperone approvals approve {name} -n {namespace}`, then retry the same call: once approved, it goes through once until {expires} (approvalValidSeconds {valid} s from the request)",
                rule = self.rule,
                waited = self.waited.as_secs(),
                valid = self.approval_valid_seconds,
                expires = self.expires_at,
            )),
        }
    }
}

/// Holds calls that approval rules match until reviewers decide, over ApprovalRequests in the
/// gateway's namespace.
#[derive(Clone)]
pub struct ApprovalGate {
    api: Api<ApprovalRequest>,
    namespace: String,
    rules: ApprovalRules,
}

impl std::fmt::Debug for ApprovalGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalGate").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl ApprovalGate {
    /// A gate over ApprovalRequests in `namespace`.
    pub fn new(client: Client, namespace: &str, rules: ApprovalRules) -> Self {
        Self { api: Api::namespaced(client, namespace), namespace: namespace.to_owned(), rules }
    }

    /// The compiled rules.
    pub fn rules(&self) -> &ApprovalRules {
        &self.rules
    }

    /// Holds `call` when a rule matches it (see [`ApprovalGate::hold`]); `None` when no rule does.
    pub async fn review(
        &self,
        call: &CallUnderReview<'_>,
    ) -> Option<Result<HoldResult, ApprovalError>> {
        let session = call.session;
        let rule = self.rules.matching(
            &session.connection,
            call.actions,
            call.resources,
            call.resources_complete,
        )?;
        if let BodyDigest::Unbound { size, payload_mode } = call.body {
            return Some(Err(ApprovalError::UnboundBody {
                rule: rule.name.clone(),
                payload_mode,
                size: size.map(|size| format!(" ({size} bytes)")).unwrap_or_default(),
            }));
        }
        let fingerprint = CallFingerprint::of(&CallIdentity {
            connection: &session.connection,
            namespace: &session.namespace,
            service_account: &session.service_account,
            actions: call.actions,
            resources: call.resources,
            parameters: CallParameters {
                method: call.method,
                raw_path: call.raw_path,
                raw_query: call.raw_query,
                headers: call.headers,
                body: call.body,
            },
        });
        let held = HeldCall {
            rule,
            session,
            actions: call.actions,
            resources: call.resources,
            fingerprint,
            parameters_preview: parameters_preview(
                call.method,
                call.raw_path,
                call.raw_query,
                call.content_type,
                call.body_preview,
            ),
        };
        Some(self.hold(&held).await)
    }

    /// Holds `call` until it is approved, denied or `holdSeconds` pass. An approved, unexpired,
    /// unconsumed request with the same fingerprint admits it at once (and is consumed); a denied
    /// unexpired one refuses it at once.
    pub async fn hold(&self, call: &HeldCall<'_>) -> Result<HoldResult, ApprovalError> {
        let started = Instant::now();
        let agent_user = format!(
            "system:serviceaccount:{}:{}",
            call.session.namespace, call.session.service_account
        );
        let existing = self.find(call).await?;
        let mut pending: Option<ApprovalRequest> = None;
        for request in &existing {
            let now = OffsetDateTime::now_utc();
            if phase(request) == ApprovalPhase::Consumed {
                continue;
            }
            if is_expired(&request.spec, now) {
                if phase(request) == ApprovalPhase::Pending
                    || phase(request) == ApprovalPhase::Approved
                {
                    self.mark(request, ApprovalPhase::Expired).await;
                }
                continue;
            }
            match verdict(&request.spec, &agent_user) {
                Verdict::Approved { .. } => {
                    if let Some(approvers) = self.consume(call, request, &agent_user).await? {
                        return Ok(self.result(
                            call,
                            request,
                            HoldOutcome::Approved { approvers },
                            started,
                        ));
                    }
                }
                Verdict::Denied { reviewer, reason } => {
                    self.mark(request, ApprovalPhase::Denied).await;
                    let outcome = HoldOutcome::Denied { reviewer, reason };
                    return Ok(self.result(call, request, outcome, started));
                }
                Verdict::Pending { .. } => {
                    pending.get_or_insert_with(|| request.clone());
                }
            }
        }
        let request = match pending {
            Some(request) => {
                tracing::info!(session = %call.session.session_id, connection = %call.session.connection, action = ?call.actions, rule = %call.rule.name, approval_request = %name_of(&request), "joining a pending approval request");
                request
            }
            None => self.create(call, existing.len()).await?,
        };
        self.wait(call, request, &agent_user, started).await
    }

    /// Requests with the call's fingerprint, newest first.
    async fn find(&self, call: &HeldCall<'_>) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let selector = format!("{FINGERPRINT_LABEL}={}", call.fingerprint.label_value());
        let list = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| self.error(call, "list ApprovalRequests".into(), source))?;
        let mut requests: Vec<ApprovalRequest> = list
            .items
            .into_iter()
            .filter(|r| r.spec.fingerprint == call.fingerprint.as_str())
            .collect();
        requests.sort_by(|a, b| b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp));
        Ok(requests)
    }

    async fn create(
        &self,
        call: &HeldCall<'_>,
        existing: usize,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let rule = &call.rule.spec;
        let expires_at = (OffsetDateTime::now_utc()
            + time::Duration::seconds(i64::from(rule.approval_valid_seconds)))
        .format(&Rfc3339)
        .unwrap_or_default();
        let spec = ApprovalRequestSpec {
            connection: call.session.connection.clone(),
            rule: call.rule.name.clone(),
            session_id: call.session.session_id.to_string(),
            agent: AgentIdentity {
                service_account: call.session.service_account.clone(),
                pod: call.session.pod.as_ref().map(|p| p.name.clone()),
                role_session_name: Some(call.session.role_session_name.clone())
                    .filter(|n| !n.is_empty()),
            },
            actions: call.actions.to_vec(),
            resources: call.resources.to_vec(),
            parameters_preview: call.parameters_preview.clone(),
            fingerprint: call.fingerprint.as_str().to_owned(),
            required_approvals: rule.reviewers.required.max(1),
            expires_at,
            reviews: Vec::new(),
        };
        let labels = BTreeMap::from([
            (FINGERPRINT_LABEL.to_owned(), call.fingerprint.label_value().to_owned()),
            (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        ]);
        let base = format!("{}-{}", call.rule.name, call.fingerprint.short());
        for attempt in existing..existing + MAX_ATTEMPTS {
            let name = if attempt == 0 { base.clone() } else { format!("{base}-{}", attempt + 1) };
            let object = ApprovalRequest {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.namespace.clone()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                spec: spec.clone(),
                status: None,
            };
            match self.api.create(&PostParams::default(), &object).await {
                Ok(created) => {
                    tracing::info!(session = %call.session.session_id, connection = %call.session.connection, action = ?call.actions, rule = %call.rule.name, approval_request = %name, "holding a call for approval");
                    return Ok(created);
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    // Another replica (or an earlier call) took the name: join it when it holds
                    // this same call and is still open, else try the next name.
                    let taken = self.api.get_opt(&name).await.map_err(|source| {
                        self.error(call, format!("read ApprovalRequest {name}"), source)
                    })?;
                    if let Some(taken) = taken.filter(|t| {
                        t.spec.fingerprint == call.fingerprint.as_str()
                            && phase(t) == ApprovalPhase::Pending
                            && !is_expired(&t.spec, OffsetDateTime::now_utc())
                    }) {
                        return Ok(taken);
                    }
                }
                Err(source) => {
                    return Err(self.error(call, format!("create ApprovalRequest {name}"), source));
                }
            }
        }
        Err(ApprovalError::NoFreeName {
            rule: call.rule.name.clone(),
            namespace: self.namespace.clone(),
            base,
            last: existing + MAX_ATTEMPTS,
        })
    }

    /// Waits on `request` for a decision until the rule's hold ends.
    async fn wait(
        &self,
        call: &HeldCall<'_>,
        mut request: ApprovalRequest,
        agent_user: &str,
        started: Instant,
    ) -> Result<HoldResult, ApprovalError> {
        let hold = Duration::from_secs(u64::try_from(call.rule.spec.hold_seconds).unwrap_or(0));
        let deadline = started + hold;
        let name = name_of(&request);
        loop {
            if phase(&request) != ApprovalPhase::Consumed
                && !is_expired(&request.spec, OffsetDateTime::now_utc())
            {
                match verdict(&request.spec, agent_user) {
                    Verdict::Approved { .. } => {
                        if let Some(approvers) = self.consume(call, &request, agent_user).await? {
                            let outcome = HoldOutcome::Approved { approvers };
                            return Ok(self.result(call, &request, outcome, started));
                        }
                    }
                    Verdict::Denied { reviewer, reason } => {
                        self.mark(&request, ApprovalPhase::Denied).await;
                        let outcome = HoldOutcome::Denied { reviewer, reason };
                        return Ok(self.result(call, &request, outcome, started));
                    }
                    Verdict::Pending { .. } => {}
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                tracing::info!(session = %call.session.session_id, connection = %call.session.connection, action = ?call.actions, rule = %call.rule.name, approval_request = %name, "no decision within the hold");
                return Ok(self.result(call, &request, HoldOutcome::TimedOut, started));
            }
            request = self.next_change(call, &request, remaining).await?;
        }
    }

    /// The request after its next change, or as it is when `within` passes first.
    async fn next_change(
        &self,
        call: &HeldCall<'_>,
        request: &ApprovalRequest,
        within: Duration,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let name = name_of(request);
        let version = request.metadata.resource_version.clone().unwrap_or_default();
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(u32::try_from(within.as_secs().clamp(1, 290)).unwrap_or(290));
        let deadline = Instant::now() + within;
        if let Ok(stream) = self.api.watch(&params, &version).await {
            let mut stream = stream.boxed();
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, stream.try_next()).await {
                    Err(_elapsed) => return Ok(request.clone()),
                    Ok(Ok(Some(WatchEvent::Added(changed) | WatchEvent::Modified(changed)))) => {
                        return Ok(changed);
                    }
                    Ok(Ok(Some(WatchEvent::Bookmark(_)))) => continue,
                    Ok(Ok(Some(WatchEvent::Deleted(_)))) => {
                        tracing::warn!(approval_request = %name, "the ApprovalRequest was deleted while a call waited on it");
                        tokio::time::sleep(remaining).await;
                        return Ok(request.clone());
                    }
                    Ok(Ok(Some(WatchEvent::Error(error)))) => {
                        tracing::debug!(approval_request = %name, error = %error.message, "watch ended; reading again");
                        break;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(approval_request = %name, %error, "watch failed; reading again");
                        break;
                    }
                    Ok(Ok(None)) => break,
                }
            }
        }
        let pause = WATCH_RETRY.min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
        let current =
            self.api.get_opt(&name).await.map_err(|source| {
                self.error(call, format!("read ApprovalRequest {name}"), source)
            })?;
        Ok(current.unwrap_or_else(|| request.clone()))
    }

    /// Marks an approved request Consumed with a conditional update, so only one call (on any
    /// replica) uses an approval. Returns the approvers, or `None` when the request turns out not
    /// to admit this call (consumed elsewhere, denied or expired meanwhile).
    async fn consume(
        &self,
        call: &HeldCall<'_>,
        request: &ApprovalRequest,
        agent_user: &str,
    ) -> Result<Option<Vec<Reviewer>>, ApprovalError> {
        let name = name_of(request);
        let mut current = request.clone();
        for _ in 0..MAX_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            if phase(&current) == ApprovalPhase::Consumed || is_expired(&current.spec, now) {
                return Ok(None);
            }
            let Verdict::Approved { approvers } = verdict(&current.spec, agent_user) else {
                return Ok(None);
            };
            let mut consumed = current.clone();
            // Everything else in the status (the operator's notification deliveries) is kept.
            consumed.status = Some(ApprovalRequestStatus {
                phase: ApprovalPhase::Consumed,
                consumed_at: now.format(&Rfc3339).ok(),
                ..current.status.clone().unwrap_or_default()
            });
            // `consumed` carries the resourceVersion it was read at: the API server refuses the
            // update with 409 when anything changed since.
            match self.api.replace_status(&name, &PostParams::default(), &consumed).await {
                Ok(_) => {
                    tracing::info!(session = %call.session.session_id, connection = %call.session.connection, action = ?call.actions, approval_request = %name, "approval consumed");
                    return Ok(Some(approvers));
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    match self.api.get_opt(&name).await.map_err(|source| {
                        self.error(call, format!("read ApprovalRequest {name}"), source)
                    })? {
                        Some(fresh) => current = fresh,
                        None => return Ok(None),
                    }
                }
                Err(source) => {
                    return Err(self.error(
                        call,
                        format!("consume ApprovalRequest {name}"),
                        source,
                    ));
                }
            }
        }
        Ok(None)
    }

    /// Sets a request's phase for people reading it; failures are only logged.
    async fn mark(&self, request: &ApprovalRequest, to: ApprovalPhase) {
        if phase(request) == to {
            return;
        }
        let name = name_of(request);
        let patch = serde_json::json!({"status": {"phase": to}});
        if let Err(error) =
            self.api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await
        {
            tracing::warn!(approval_request = %name, phase = ?to, %error, "could not update the ApprovalRequest's phase");
        }
    }

    fn result(
        &self,
        call: &HeldCall<'_>,
        request: &ApprovalRequest,
        outcome: HoldOutcome,
        started: Instant,
    ) -> HoldResult {
        HoldResult {
            approval_request: name_of(request),
            namespace: self.namespace.clone(),
            rule: call.rule.name.clone(),
            approval_valid_seconds: call.rule.spec.approval_valid_seconds,
            expires_at: request.spec.expires_at.clone(),
            fingerprint: call.fingerprint.as_str().to_owned(),
            outcome,
            waited: started.elapsed(),
        }
    }

    fn error(&self, call: &HeldCall<'_>, doing: String, source: kube::Error) -> ApprovalError {
        ApprovalError::Api {
            rule: call.rule.name.clone(),
            namespace: self.namespace.clone(),
            doing,
            source,
        }
    }
}

fn phase(request: &ApprovalRequest) -> ApprovalPhase {
    request.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

fn name_of(request: &ApprovalRequest) -> String {
    request.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: HoldOutcome) -> HoldResult {
        HoldResult {
            approval_request: "bucket-deletes-1a2b3c4d5e".into(),
            namespace: "team-a".into(),
            rule: "bucket-deletes".into(),
            approval_valid_seconds: 900,
            expires_at: "2026-11-25T10:15:00Z".into(),
            fingerprint: "f".repeat(64),
            outcome,
            waited: Duration::from_millis(3_200),
        }
    }

    fn alice() -> Reviewer {
        Reviewer { user: "alice".into(), groups: vec!["sre".into()] }
    }

    #[test]
    fn a_timed_out_call_is_told_which_request_to_approve_and_to_retry() {
        let timed_out = result(HoldOutcome::TimedOut);
        assert!(!timed_out.admits());
        let message = timed_out.refusal_message().unwrap();
        assert!(
            message.contains(
                "kubectl chaperone approvals approve bucket-deletes-1a2b3c4d5e -n team-a"
            ),
            "{message}"
        );
        assert!(message.contains("retry the same call") && message.contains("900 s"), "{message}");
        let event = timed_out.event("c-1");
        assert_eq!(event.outcome, ApprovalDecision::TimedOut);
        assert!(event.approvers.is_empty());
        assert_eq!(event.waited_ms, 3_200);
    }

    #[test]
    fn a_denial_names_the_reviewer_and_reason_and_an_approval_lists_the_approvers() {
        let denied = result(HoldOutcome::Denied {
            reviewer: alice(),
            reason: "holds the audit trail".into(),
        });
        let message = denied.refusal_message().unwrap();
        assert!(message.contains("denied by alice: holds the audit trail"), "{message}");
        assert_eq!(denied.event("c-2").reason.as_deref(), Some("holds the audit trail"));
        assert!(matches!(denied.decision(), PolicyDecision::Deny { object, rule, .. }
                if object == "ApprovalRequest/team-a/bucket-deletes-1a2b3c4d5e"
                    && rule == "ApprovalRule/team-a/bucket-deletes: denied by a reviewer"));

        let approved = result(HoldOutcome::Approved { approvers: vec![alice()] });
        assert!(approved.admits() && approved.refusal_message().is_none());
        assert_eq!(approved.decision(), PolicyDecision::Allow);
        let event = approved.event("c-3");
        assert_eq!(event.outcome, ApprovalDecision::Approved);
        assert_eq!(
            event.approvers,
            [Approver { username: "alice".into(), groups: vec!["sre".into()] }]
        );
        assert_eq!(event.call, "c-3");
        assert_eq!(event.fingerprint, "f".repeat(64));
    }
}
