//! What an ApprovalRequest's reviews decide. Only reviews count: the status phase is written by
//! gateways for people and is never read back as a decision.
//!
//! Reviews are stamped by the admission webhook with the user the API server authenticated; a
//! review without a user is ignored, as is one by the agent's own service account (the webhook
//! refuses both; this is a second lock). Any Deny decides Denied. Otherwise `requiredApprovals`
//! distinct users with Approve decide Approved.

use chaperone_crds::{ApprovalRequestSpec, Decision, Review};
use time::OffsetDateTime;

/// One reviewer, as the API server authenticated them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reviewer {
    /// User name.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl From<&Review> for Reviewer {
    fn from(review: &Review) -> Self {
        Reviewer { user: review.user.clone(), groups: review.groups.clone() }
    }
}

/// The decision the reviews make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough approvals yet, and no denial.
    Pending {
        /// Distinct approvers so far.
        approvals: usize,
    },
    /// Enough distinct reviewers approved.
    Approved {
        /// Who approved, first review first.
        approvers: Vec<Reviewer>,
    },
    /// A reviewer denied.
    Denied {
        /// Who denied.
        reviewer: Reviewer,
        /// Their reason.
        reason: String,
    },
}

/// The verdict of `spec`'s reviews; `agent_user` is the agent's own user name
/// (`system:serviceaccount:<namespace>:<name>`), whose reviews never count.
pub fn verdict(spec: &ApprovalRequestSpec, agent_user: &str) -> Verdict {
    let counted = spec.reviews.iter().filter(|r| !r.user.is_empty() && r.user != agent_user);
    let mut approvers: Vec<Reviewer> = Vec::new();
    for review in counted {
        match review.decision {
            Decision::Deny => {
                return Verdict::Denied { reviewer: review.into(), reason: review.reason.clone() };
            }
            Decision::Approve => {
                if !approvers.iter().any(|a| a.user == review.user) {
                    approvers.push(review.into());
                }
            }
        }
    }
    let required = usize::try_from(spec.required_approvals.max(1)).unwrap_or(1);
    if approvers.len() >= required {
        Verdict::Approved { approvers }
    } else {
        Verdict::Pending { approvals: approvers.len() }
    }
}

/// Whether the request's `expiresAt` has passed at `now`; an unparsable time counts as expired
/// (the gateway writes it, so this only happens to a hand-made object).
pub fn is_expired(spec: &ApprovalRequestSpec, now: OffsetDateTime) -> bool {
    match OffsetDateTime::parse(&spec.expires_at, &time::format_description::well_known::Rfc3339) {
        Ok(expires_at) => expires_at <= now,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use chaperone_crds::AgentIdentity;

    use super::*;

    const AGENT: &str = "system:serviceaccount:team-a:pr-bot";

    fn review(decision: Decision, user: &str, reason: &str) -> Review {
        Review {
            decision,
            reason: reason.into(),
            user: user.into(),
            groups: vec!["sre".into()],
            time: String::new(),
        }
    }

    fn request(required: i32, reviews: Vec<Review>) -> ApprovalRequestSpec {
        ApprovalRequestSpec {
            connection: "prod-aws".into(),
            rule: "prod-deletes".into(),
            session_id: "s".into(),
            agent: AgentIdentity { service_account: "pr-bot".into(), ..Default::default() },
            actions: vec!["s3:DeleteBucket".into()],
            resources: vec![],
            parameters_preview: String::new(),
            fingerprint: "0".repeat(64),
            required_approvals: required,
            expires_at: "2026-11-25T10:00:00Z".into(),
            reviews,
        }
    }

    #[test]
    fn approvals_count_distinct_users() {
        let spec = request(
            2,
            vec![review(Decision::Approve, "alice", ""), review(Decision::Approve, "alice", "")],
        );
        assert_eq!(verdict(&spec, AGENT), Verdict::Pending { approvals: 1 });
        let spec = request(
            2,
            vec![review(Decision::Approve, "alice", ""), review(Decision::Approve, "bob", "")],
        );
        assert!(
            matches!(verdict(&spec, AGENT), Verdict::Approved { approvers } if approvers.len() == 2)
        );
    }

    #[test]
    fn any_denial_decides() {
        let spec = request(
            1,
            vec![
                review(Decision::Approve, "alice", ""),
                review(Decision::Deny, "bob", "not today"),
            ],
        );
        assert_eq!(
            verdict(&spec, AGENT),
            Verdict::Denied {
                reviewer: Reviewer { user: "bob".into(), groups: vec!["sre".into()] },
                reason: "not today".into()
            }
        );
    }

    #[test]
    fn unstamped_reviews_and_the_agents_own_reviews_do_not_count() {
        let spec = request(
            1,
            vec![review(Decision::Approve, "", ""), review(Decision::Approve, AGENT, "")],
        );
        assert_eq!(verdict(&spec, AGENT), Verdict::Pending { approvals: 0 });
    }

    #[test]
    fn expiry_is_read_from_expires_at() {
        let spec = request(1, vec![]);
        let before = time::macros::datetime!(2026-11-25 09:59:59 UTC);
        let after = time::macros::datetime!(2026-11-25 10:00:00 UTC);
        assert!(!is_expired(&spec, before));
        assert!(is_expired(&spec, after));
        let mut garbled = spec;
        garbled.expires_at = "soon".into();
        assert!(is_expired(&garbled, before));
    }
}
