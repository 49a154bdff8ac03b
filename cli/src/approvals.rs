//! `approvals list|approve|deny`: the reviewers' inbox of held calls and their decisions.
//!
//! A decision is a review appended to the ApprovalRequest with an update that carries the
//! resourceVersion read (so a concurrent decision is never overwritten). The reviewer's name, groups
//! and time are left empty here: the operator's admission webhook stamps them from the identity the
//! API server authenticated, and refuses reviewers the ApprovalRule does not name.

use std::process::ExitCode;
use std::time::Duration;

use chaperone_crds::{ApprovalPhase, ApprovalRequest, Decision, Review};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use time::OffsetDateTime;

use crate::cluster::Cluster;
use crate::flags::{ApprovalsListArgs, ApproveArgs, DenyArgs, KubeFlags};
use crate::text_table::TextTable;

/// Attempts at appending a review when another writer changed the object in between.
const DECIDE_ATTEMPTS: usize = 3;

/// Why an approvals command failed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalsError {
    #[error(
        "ApprovalRequest {name:?} does not exist in namespace {namespace:?}; list the pending ones \
         with `kubectl chaperone approvals list -n {namespace}`"
    )]
    NotFound { name: String, namespace: String },
    #[error(
        "your kubeconfig's user may not {verb} approvalrequests {scope} ({message}); ask a \
         cluster admin for a Role (a ClusterRole for -A) granting get, list and update on \
         approvalrequests.chaperone.dev"
    )]
    Forbidden { verb: &'static str, scope: String, message: String },
    #[error("the API server refused your decision on ApprovalRequest {name:?}: {message}")]
    Refused { name: String, message: String },
    #[error(
        "ApprovalRequest {name:?} in namespace {namespace:?} is already {outcome}; a decision once \
         made is final"
    )]
    AlreadyDecided { name: String, namespace: String, outcome: String },
    #[error(
        "ApprovalRequest {name:?} kept changing while your review was being added \
         ({DECIDE_ATTEMPTS} attempts); run the command again"
    )]
    KeptChanging { name: String },
    #[error(
        "a denial needs a reason, which is shown to the agent: --reason \"why not\"; nothing was \
         changed"
    )]
    DenialWithoutReason,
    #[error("listing ApprovalRequests {scope} failed: {reason}")]
    List { scope: String, reason: String },
    #[error("{what} ApprovalRequest {name:?} in namespace {namespace:?} failed: {reason}")]
    Request { what: &'static str, name: String, namespace: String, reason: String },
}

/// `approvals list`: one line per ApprovalRequest, oldest first.
pub async fn list(args: ApprovalsListArgs) -> anyhow::Result<ExitCode> {
    let cluster = connect(&args.kube).await?;
    let namespace = namespace(&args.kube, &cluster);
    let api: Api<ApprovalRequest> = if args.all_namespaces {
        Api::all(cluster.client().clone())
    } else {
        Api::namespaced(cluster.client().clone(), &namespace)
    };
    let scope = if args.all_namespaces {
        "in any namespace".to_owned()
    } else {
        format!("in namespace {namespace:?}")
    };
    let requests = api.list(&ListParams::default()).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 403 => ApprovalsError::Forbidden {
            verb: "list",
            scope: scope.clone(),
            message: status.message,
        },
        other => ApprovalsError::List { scope: scope.clone(), reason: other.to_string() },
    })?;
    let mut requests = requests.items;
    requests.sort_by(|a, b| {
        (a.namespace(), a.creation_timestamp().map(|t| t.0), a.name_any()).cmp(&(
            b.namespace(),
            b.creation_timestamp().map(|t| t.0),
            b.name_any(),
        ))
    });
    if requests.is_empty() {
        eprintln!("No ApprovalRequests {scope}.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", inbox(&requests, args.all_namespaces, OffsetDateTime::now_utc()));
    Ok(ExitCode::SUCCESS)
}

/// `approvals approve NAME`.
pub async fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    decide(&args.kube, &args.name, Decision::Approve, args.reason).await
}

/// `approvals deny NAME --reason`.
pub async fn deny(args: DenyArgs) -> anyhow::Result<ExitCode> {
    check_reason(Decision::Deny, &args.reason)?;
    decide(&args.kube, &args.name, Decision::Deny, args.reason).await
}

async fn decide(
    kube: &KubeFlags,
    name: &str,
    decision: Decision,
    reason: String,
) -> anyhow::Result<ExitCode> {
    let cluster = connect(kube).await?;
    let namespace = namespace(kube, &cluster);
    let decided = record_decision(&cluster, &namespace, name, decision, reason).await?;
    print!("{}", decision_summary(&decided));
    Ok(ExitCode::SUCCESS)
}

/// A denial needs a reason (the agent is shown it); an approval may go without.
pub fn check_reason(decision: Decision, reason: &str) -> Result<(), ApprovalsError> {
    if decision == Decision::Deny && reason.trim().is_empty() {
        return Err(ApprovalsError::DenialWithoutReason);
    }
    Ok(())
}

/// Appends the caller's review to ApprovalRequest `name` in `namespace` and returns the object as
/// the API server stored it (with the reviewer the webhook stamped). The path every decision
/// takes: `approvals approve|deny` and the console.
pub async fn record_decision(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    decision: Decision,
    reason: String,
) -> Result<ApprovalRequest, ApprovalsError> {
    check_reason(decision, &reason)?;
    let api: Api<ApprovalRequest> = Api::namespaced(cluster.client().clone(), namespace);
    let review =
        Review { decision, reason, user: String::new(), groups: Vec::new(), time: String::new() };
    for _ in 0..DECIDE_ATTEMPTS {
        let mut request =
            api.get(name).await.map_err(|e| classify(e, "get", "reading", name, namespace))?;
        if let Some(outcome) = outcome(&request) {
            return Err(ApprovalsError::AlreadyDecided {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                outcome,
            });
        }
        request.spec.reviews.push(review.clone());
        // `replace` sends the resourceVersion just read: a concurrent change answers 409.
        match api.replace(name, &PostParams::default(), &request).await {
            Ok(decided) => return Ok(decided),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(classify(e, "update", "updating", name, namespace)),
        }
    }
    Err(ApprovalsError::KeptChanging { name: name.to_owned() })
}

async fn connect(kube: &KubeFlags) -> anyhow::Result<Cluster> {
    Ok(Cluster::connect(kube.kubeconfig.as_deref(), kube.context.as_deref()).await?)
}

fn namespace(kube: &KubeFlags, cluster: &Cluster) -> String {
    kube.namespace.clone().unwrap_or_else(|| cluster.default_namespace().to_owned())
}

fn classify(
    error: kube::Error,
    verb: &'static str,
    what: &'static str,
    name: &str,
    namespace: &str,
) -> ApprovalsError {
    match error {
        kube::Error::Api(status) if status.code == 404 => {
            ApprovalsError::NotFound { name: name.to_owned(), namespace: namespace.to_owned() }
        }
        // A refusal by an admission webhook carries the webhook's own explanation.
        kube::Error::Api(status) if status.message.contains("admission webhook") => {
            ApprovalsError::Refused { name: name.to_owned(), message: status.message }
        }
        kube::Error::Api(status) if status.code == 403 => ApprovalsError::Forbidden {
            verb,
            scope: format!("in namespace {namespace:?}"),
            message: status.message,
        },
        kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
            ApprovalsError::Refused { name: name.to_owned(), message: status.message }
        }
        other => ApprovalsError::Request {
            what,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// "denied by …" or "approved by …" once the reviews (or the status) decide `request`.
pub fn outcome(request: &ApprovalRequest) -> Option<String> {
    let reviews = &request.spec.reviews;
    if let Some(deny) = reviews.iter().find(|r| r.decision == Decision::Deny) {
        return Some(format!("denied by {} ({:?})", deny.user, deny.reason));
    }
    let approvers: Vec<&str> = approvers(reviews).collect();
    if approvers.len() >= required(request) {
        return Some(format!("approved by {}", approvers.join(", ")));
    }
    match request.status.as_ref().map(|s| s.phase) {
        Some(ApprovalPhase::Expired) => Some("expired".to_owned()),
        Some(ApprovalPhase::Consumed) => Some("approved and consumed".to_owned()),
        _ => None,
    }
}

pub fn approvers(reviews: &[Review]) -> impl Iterator<Item = &str> {
    reviews.iter().filter(|r| r.decision == Decision::Approve).map(|r| r.user.as_str())
}

pub fn required(request: &ApprovalRequest) -> usize {
    usize::try_from(request.spec.required_approvals.max(1)).unwrap_or(1)
}

/// The phase to show: the status's when written, else what the reviews say.
pub fn phase(request: &ApprovalRequest) -> String {
    if let Some(status) = &request.status {
        return format!("{:?}", status.phase);
    }
    let reviews = &request.spec.reviews;
    if reviews.iter().any(|r| r.decision == Decision::Deny) {
        "Denied".to_owned()
    } else if approvers(reviews).count() >= required(request) {
        "Approved".to_owned()
    } else {
        "Pending".to_owned()
    }
}

/// The inbox table.
pub fn inbox(requests: &[ApprovalRequest], all_namespaces: bool, now: OffsetDateTime) -> String {
    let mut headers =
        vec!["NAME", "PHASE", "ACTION", "RESOURCE", "AGENT", "CONNECTION", "AGE", "APPROVALS"];
    if all_namespaces {
        headers.insert(0, "NAMESPACE");
    }
    let mut table = TextTable::new(&headers);
    for request in requests {
        let spec = &request.spec;
        let more = |items: &[String]| match items {
            [] => "-".to_owned(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (+{})", rest.len()),
        };
        let age = request
            .creation_timestamp()
            .map(|t| short_age(now.unix_timestamp() - t.0.as_second()))
            .unwrap_or_else(|| "-".to_owned());
        let mut row = vec![
            request.name_any(),
            phase(request),
            more(&spec.actions),
            more(&spec.resources),
            spec.agent.service_account.clone(),
            spec.connection.clone(),
            age,
            format!("{}/{}", approvers(&spec.reviews).count(), required(request)),
        ];
        if all_namespaces {
            row.insert(0, request.namespace().unwrap_or_default());
        }
        table.push(row);
    }
    table.render()
}

/// kubectl's ages: 45s, 12m, 5h, 3d.
pub fn short_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

/// What the API server stored for the newest review, and where the request stands.
pub fn decision_summary(request: &ApprovalRequest) -> String {
    let name = request.name_any();
    let namespace = request.namespace().unwrap_or_default();
    let Some(review) = request.spec.reviews.last() else {
        return format!("ApprovalRequest {namespace}/{name} has no reviews.\n");
    };
    let verb = match review.decision {
        Decision::Approve => "approved",
        Decision::Deny => "denied",
    };
    let groups = if review.groups.is_empty() { "-".to_owned() } else { review.groups.join(", ") };
    let mut out = format!(
        "ApprovalRequest {namespace}/{name} {verb} by {} (groups: {groups}) at {}",
        review.user, review.time
    );
    if !review.reason.is_empty() {
        out.push_str(&format!(": {:?}", review.reason));
    }
    out.push('\n');
    let approvals = approvers(&request.spec.reviews).count();
    let required = required(request);
    let standing = match review.decision {
        Decision::Deny => "the call is refused with your reason".to_owned(),
        Decision::Approve if approvals >= required => {
            format!(
                "approvals {approvals}/{required}: the held call (or its retry) may proceed once"
            )
        }
        Decision::Approve => format!(
            "approvals {approvals}/{required}: {} more reviewer(s) must approve",
            required - approvals
        ),
    };
    out.push_str(&standing);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectls() {
        assert_eq!(short_age(5), "5s");
        assert_eq!(short_age(600), "10m");
        assert_eq!(short_age(3 * 3600), "3h");
        assert_eq!(short_age(5 * 86400), "5d");
        assert_eq!(short_age(-3), "0s");
    }
}
