//! The approvals page: pending ApprovalRequests of the visible namespaces, and decisions on them
//! through the CLI's own path ([`crate::approvals::record_decision`]).

use std::collections::HashMap;

use chaperone_crds::{ApprovalPhase, ApprovalRequest, ApprovalRule, Decision};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::approvals::{self, ApprovalsError};
use crate::cluster::Cluster;
use crate::console::access::Skipped;

/// One held call as the page shows it: the ApprovalRequest as the API server gave it (flattened:
/// `metadata`, `spec`, `status`), and what the page computes from it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingApproval {
    #[serde(flatten)]
    pub request: ApprovalRequest,
    /// Seconds until the approval window closes (negative once past).
    pub seconds_left: Option<i64>,
    /// Seconds the call is still held (the rule's holdSeconds from the request's creation);
    /// `None` when the rule cannot be read.
    pub held_seconds_left: Option<i64>,
    /// Distinct reviewers who approved so far.
    pub approvers: Vec<String>,
    /// Distinct approvals the call needs.
    pub required: usize,
}

/// The pending requests of `namespaces` (oldest first), and the namespaces the user may not list.
pub async fn pending(
    cluster: &Cluster,
    namespaces: &[String],
    now: OffsetDateTime,
) -> (Vec<PendingApproval>, Vec<Skipped>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    // One cluster-wide list when the user may (an admin with many namespaces); else one per
    // namespace, each 403 named.
    let all: Api<ApprovalRequest> = Api::all(cluster.client().clone());
    if namespaces.len() > 1
        && let Ok(list) = all.list(&ListParams::default()).await
    {
        let mut holds: HashMap<String, HashMap<String, i32>> = HashMap::new();
        for request in &list.items {
            let namespace = request.namespace().unwrap_or_default();
            if !namespaces.contains(&namespace) {
                continue;
            }
            if !holds.contains_key(&namespace) {
                holds.insert(namespace.clone(), hold_seconds(cluster, &namespace).await);
            }
            let hold = holds.get(&namespace).and_then(|h| h.get(&request.spec.rule)).copied();
            found.extend(pending_view(request, hold, now));
        }
        return (oldest_first(found), skipped);
    }
    for namespace in namespaces {
        let api: Api<ApprovalRequest> = Api::namespaced(cluster.client().clone(), namespace);
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let holds = if list.items.is_empty() {
                    HashMap::new()
                } else {
                    hold_seconds(cluster, namespace).await
                };
                found.extend(
                    list.items
                        .iter()
                        .filter_map(|r| pending_view(r, holds.get(&r.spec.rule).copied(), now)),
                );
            }
            Err(kube::Error::Api(status)) if status.code == 403 => skipped.push(Skipped {
                namespace: namespace.clone(),
                reason: ApprovalsError::Forbidden {
                    verb: "list",
                    scope: format!("in namespace {namespace:?}"),
                    message: status.message,
                }
                .to_string(),
            }),
            Err(other) => skipped.push(Skipped {
                namespace: namespace.clone(),
                reason: format!("listing ApprovalRequests failed: {other}"),
            }),
        }
    }
    (oldest_first(found), skipped)
}

fn oldest_first(mut found: Vec<PendingApproval>) -> Vec<PendingApproval> {
    let order = |a: &PendingApproval| {
        let m = &a.request.metadata;
        (m.creation_timestamp.as_ref().map(|t| t.0), m.namespace.clone(), m.name.clone())
    };
    found.sort_by_key(order);
    found
}

/// The holdSeconds of the namespace's ApprovalRules, by name; empty when they cannot be read
/// (the page then shows only the approval window).
async fn hold_seconds(cluster: &Cluster, namespace: &str) -> HashMap<String, i32> {
    let api: Api<ApprovalRule> = Api::namespaced(cluster.client().clone(), namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().map(|r| (r.name_any(), r.spec.hold_seconds)).collect(),
        Err(_) => HashMap::new(),
    }
}

/// The request as a pending approval, or `None` once it is decided, expired or consumed.
/// `hold_seconds` is its rule's, when known.
pub fn pending_view(
    request: &ApprovalRequest,
    hold_seconds: Option<i32>,
    now: OffsetDateTime,
) -> Option<PendingApproval> {
    if approvals::outcome(request).is_some() {
        return None;
    }
    let phase = request.status.as_ref().map(|s| s.phase).unwrap_or_default();
    if phase != ApprovalPhase::Pending {
        return None;
    }
    let seconds_left = OffsetDateTime::parse(&request.spec.expires_at, &Rfc3339)
        .ok()
        .map(|at| (at - now).whole_seconds());
    let held_seconds_left = request
        .creation_timestamp()
        .map(|t| t.0.as_second())
        .zip(hold_seconds)
        .map(|(created, hold)| created + i64::from(hold) - now.unix_timestamp());
    // The server's field bookkeeping is not the reviewer's business and would be most of what
    // the page polls for.
    let mut request = request.clone();
    request.metadata.managed_fields = None;
    Some(PendingApproval {
        approvers: approvals::approvers(&request.spec.reviews).map(str::to_owned).collect(),
        required: approvals::required(&request),
        request,
        seconds_left,
        held_seconds_left,
    })
}

/// Reads the decision the page posted: `approve` or `deny`.
pub fn parse_decision(verb: &str) -> Option<Decision> {
    match verb {
        "approve" => Some(Decision::Approve),
        "deny" => Some(Decision::Deny),
        _ => None,
    }
}

/// Decides through the CLI's path and returns the sentence it prints.
pub async fn decide(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    decision: Decision,
    reason: String,
) -> Result<String, ApprovalsError> {
    let decided = approvals::record_decision(cluster, namespace, name, decision, reason).await?;
    Ok(approvals::decision_summary(&decided))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_crds::{ApprovalRequestSpec, ApprovalRequestStatus, Review};

    fn request(reviews: Vec<Review>, phase: Option<ApprovalPhase>) -> ApprovalRequest {
        let spec: ApprovalRequestSpec = serde_json::from_value(serde_json::json!({
            "connection": "prod-aws", "rule": "deletes", "sessionId": "s-1",
            "agent": {"serviceAccount": "pr-bot", "pod": "agent-0"},
            "actions": ["s3:DeleteBucket"], "resources": ["arn:aws:s3:::scratch"],
            "parametersPreview": "{\"Bucket\":\"scratch\"}",
            "fingerprint": "0".repeat(64), "requiredApprovals": 2,
            "expiresAt": "2026-11-25T17:10:00Z", "reviews": reviews,
        }))
        .unwrap();
        let mut request = ApprovalRequest::new("ar-1", spec);
        request.metadata.namespace = Some("team-a".into());
        request.status = phase.map(|phase| {
            serde_json::from_value::<ApprovalRequestStatus>(serde_json::json!({"phase": phase}))
                .unwrap()
        });
        request
    }

    fn review(decision: Decision, user: &str) -> Review {
        Review {
            decision,
            reason: String::new(),
            user: user.into(),
            groups: vec![],
            time: "t".into(),
        }
    }

    #[test]
    fn a_pending_request_shows_what_is_held_and_how_long_it_stays_held() {
        let now = OffsetDateTime::parse("2026-11-25T17:00:00Z", &Rfc3339).unwrap();
        let mut held = request(vec![review(Decision::Approve, "alice")], None);
        held.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-11-25T16:59:00Z".parse().unwrap(),
            ));
        held.metadata.managed_fields = Some(vec![Default::default()]);
        let view = pending_view(&held, Some(120), now).expect("pending");
        assert_eq!(view.request.metadata.managed_fields, None, "not sent to the page");
        assert_eq!(view.held_seconds_left, Some(60));
        assert_eq!(pending_view(&held, None, now).unwrap().held_seconds_left, None);
        assert_eq!(view.seconds_left, Some(600));
        assert_eq!((view.approvers.len(), view.required), (1, 2));
        assert_eq!(view.approvers, vec!["alice"]);
        // The page reads the request as the API server gave it, with the computed fields beside.
        let page = serde_json::to_value(&view).unwrap();
        assert_eq!(page["metadata"]["namespace"], "team-a");
        assert_eq!(page["spec"]["parametersPreview"], "{\"Bucket\":\"scratch\"}");
        assert_eq!(page["spec"]["agent"]["pod"], "agent-0");
        assert_eq!(page["held_seconds_left"], 60);
    }

    #[test]
    fn decided_expired_or_consumed_requests_are_not_pending() {
        let now = OffsetDateTime::parse("2026-11-25T17:00:00Z", &Rfc3339).unwrap();
        assert!(
            pending_view(&request(vec![review(Decision::Deny, "bob")], None), None, now).is_none()
        );
        assert!(pending_view(&request(vec![], Some(ApprovalPhase::Expired)), None, now).is_none());
        assert!(pending_view(&request(vec![], Some(ApprovalPhase::Consumed)), None, now).is_none());
        assert!(pending_view(&request(vec![], Some(ApprovalPhase::Pending)), None, now).is_some());
    }
}
