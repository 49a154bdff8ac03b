//! The ApprovalRequest admission webhook: who may create ApprovalRequests, who may decide them, and
//! the identity stamped into each decision.
//!
//! [`review_approval_request`] is the whole policy over one AdmissionRequest; the only thing it
//! reads from outside is the ApprovalRule naming the reviewers, through [`RuleLookup`].

use std::future::Future;

use chaperone_crds::{ApprovalPhase, ApprovalRequest, ApprovalRule, Decision, Review, Reviewers};
use json_patch::jsonptr::PointerBuf;
use json_patch::{Patch, PatchOperation, ReplaceOperation};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, Client};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The path the API server posts ApprovalRequest AdmissionReviews to.
pub const APPROVAL_REQUESTS_PATH: &str = "/approvalrequests";

/// Who, besides reviewers, the webhook needs to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalWebhookSettings {
    /// Name of the gateway's ServiceAccount in each namespace: the only identity that may create
    /// ApprovalRequests there.
    pub gateway_service_account: String,
}

impl Default for ApprovalWebhookSettings {
    fn default() -> Self {
        Self { gateway_service_account: "chaperone-gateway".to_owned() }
    }
}

/// Why an ApprovalRule could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading ApprovalRule {rule:?} in namespace {namespace:?} failed: {reason}")]
pub struct RuleLookupError {
    pub namespace: String,
    pub rule: String,
    pub reason: String,
}

/// Where the webhook reads the ApprovalRule an ApprovalRequest names.
pub trait RuleLookup {
    /// The rule `name` in `namespace`, `None` when it does not exist.
    fn approval_rule(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ApprovalRule>, RuleLookupError>> + Send;
}

/// Reads ApprovalRules from the API server, at the moment of each decision.
#[derive(Clone)]
pub struct ApiRuleLookup {
    client: Client,
}

impl ApiRuleLookup {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl RuleLookup for ApiRuleLookup {
    async fn approval_rule(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ApprovalRule>, RuleLookupError> {
        let api: Api<ApprovalRule> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name).await.map_err(|e| RuleLookupError {
            namespace: namespace.to_owned(),
            rule: name.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Admits, refuses or stamps one ApprovalRequest CREATE or UPDATE.
///
/// - CREATE: only the namespace's gateway service account, and never with reviews.
/// - UPDATE that appends reviews: each new review is stamped with the authenticated user, groups and
///   `now`; refused when the user is the agent itself, is not a reviewer of the rule, already
///   reviewed, denies without a reason, or the request is already decided.
/// - Any other UPDATE (metadata, unchanged reviews) is allowed as it is.
pub async fn review_approval_request<L: RuleLookup>(
    request: &AdmissionRequest<ApprovalRequest>,
    settings: &ApprovalWebhookSettings,
    rules: &L,
    now: OffsetDateTime,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let verdict = match request.operation {
        Operation::Create => review_create(request, settings),
        Operation::Update => review_update(request, rules, now).await,
        // The webhook is registered for CREATE and UPDATE only; anything else is not ours to judge.
        Operation::Delete | Operation::Connect => Ok(None),
    };
    match verdict {
        Ok(None) => response,
        Ok(Some(patch)) => match response.with_patch(patch) {
            Ok(patched) => patched,
            Err(e) => AdmissionResponse::from(request)
                .deny(format!("the approval webhook could not encode its stamp: {e}; retry")),
        },
        Err(refusal) => refuse(response, &refusal),
    }
}

/// A refusal, with the HTTP status the API server returns to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    code: u16,
    reason: &'static str,
    message: String,
}

impl Refusal {
    fn forbidden(message: String) -> Self {
        Self { code: 403, reason: "Forbidden", message }
    }
    fn invalid(message: String) -> Self {
        Self { code: 422, reason: "Invalid", message }
    }
    fn conflict(message: String) -> Self {
        Self { code: 409, reason: "Conflict", message }
    }
    fn unavailable(message: String) -> Self {
        Self { code: 503, reason: "ServiceUnavailable", message }
    }
}

fn refuse(response: AdmissionResponse, refusal: &Refusal) -> AdmissionResponse {
    let mut response = response.deny(&refusal.message);
    response.result.code = refusal.code;
    response.result.reason = refusal.reason.to_owned();
    response
}

fn review_create(
    request: &AdmissionRequest<ApprovalRequest>,
    settings: &ApprovalWebhookSettings,
) -> Result<Option<Patch>, Refusal> {
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let user = request.user_info.username.as_deref().unwrap_or_default();
    let gateway = service_account_user(namespace, &settings.gateway_service_account);
    if user != gateway {
        return Err(Refusal::forbidden(format!(
            "ApprovalRequests in namespace {namespace:?} are created by the Chaperone gateway \
             ({gateway}), not by {user:?}; to decide one, use `kubectl chaperone approvals \
             approve|deny NAME -n {namespace}`"
        )));
    }
    let object = request.object.as_ref().ok_or_else(|| {
        Refusal::invalid("the AdmissionReview carries no object to create".to_owned())
    })?;
    if !object.spec.reviews.is_empty() {
        return Err(Refusal::invalid(format!(
            "ApprovalRequest {:?} must be created without reviews (it has {}); reviewers add them \
             afterwards with `kubectl chaperone approvals approve|deny`",
            request.name,
            object.spec.reviews.len()
        )));
    }
    Ok(None)
}

async fn review_update<L: RuleLookup>(
    request: &AdmissionRequest<ApprovalRequest>,
    rules: &L,
    now: OffsetDateTime,
) -> Result<Option<Patch>, Refusal> {
    let (Some(object), Some(old)) = (request.object.as_ref(), request.old_object.as_ref()) else {
        return Err(Refusal::invalid(
            "the AdmissionReview of an UPDATE carries no object or oldObject".to_owned(),
        ));
    };
    let old_reviews = &old.spec.reviews;
    let reviews = &object.spec.reviews;
    if reviews.len() < old_reviews.len()
        || old_reviews.iter().zip(reviews).any(|(before, after)| before != after)
    {
        return Err(Refusal::forbidden(format!(
            "reviews of ApprovalRequest {:?} are append-only: a decision once made is final; \
             add a new review instead of changing or removing one",
            request.name
        )));
    }
    let appended = &reviews[old_reviews.len()..];
    if appended.is_empty() {
        return Ok(None);
    }
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let reviewer = Reviewer::from_request(request)?;
    let rule = match rules.approval_rule(namespace, &object.spec.rule).await {
        Ok(Some(rule)) => rule,
        Ok(None) => {
            return Err(Refusal::conflict(format!(
                "ApprovalRequest {:?} names ApprovalRule {:?}, which does not exist in namespace \
                 {namespace:?}; nobody can decide it until the rule exists again",
                request.name, object.spec.rule
            )));
        }
        Err(e) => {
            return Err(Refusal::unavailable(format!(
                "{e}; the decision was not recorded, retry in a moment"
            )));
        }
    };
    let time = now.replace_nanosecond(0).unwrap_or(now).format(&Rfc3339).map_err(|e| {
        Refusal::unavailable(format!("the webhook cannot format the current time: {e}; retry"))
    })?;
    let mut decided: Vec<Review> = old_reviews.clone();
    let mut operations = Vec::new();
    for (offset, review) in appended.iter().enumerate() {
        let index = old_reviews.len() + offset;
        let stamped = Review {
            user: reviewer.name.clone(),
            groups: reviewer.groups.clone(),
            time: time.clone(),
            ..review.clone()
        };
        judge(request, object, &rule, &reviewer, &stamped, &decided)?;
        let value = serde_json::to_value(&stamped).map_err(|e| {
            Refusal::unavailable(format!("the webhook cannot encode the stamped review: {e}"))
        })?;
        // `replace`, not `add`: the entry exists, and `add` at an array index would insert.
        operations.push(PatchOperation::Replace(ReplaceOperation {
            path: PointerBuf::from_tokens(["spec", "reviews", &index.to_string()]),
            value,
        }));
        decided.push(stamped);
    }
    Ok(Some(Patch(operations)))
}

/// The authenticated user of an AdmissionRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reviewer {
    name: String,
    groups: Vec<String>,
}

impl Reviewer {
    fn from_request(request: &AdmissionRequest<ApprovalRequest>) -> Result<Self, Refusal> {
        let name = request.user_info.username.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(Refusal::forbidden(
                "the API server sent no user name with this review; authenticate (check your \
                 kubeconfig) and try again"
                    .to_owned(),
            ));
        }
        Ok(Self { name, groups: request.user_info.groups.clone().unwrap_or_default() })
    }
}

/// Whether `reviewer` may add `review` to `object`, whose earlier reviews are `decided`.
fn judge(
    request: &AdmissionRequest<ApprovalRequest>,
    object: &ApprovalRequest,
    rule: &ApprovalRule,
    reviewer: &Reviewer,
    review: &Review,
    decided: &[Review],
) -> Result<(), Refusal> {
    let name = &request.name;
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let agent = service_account_user(namespace, &object.spec.agent.service_account);
    if reviewer.name == agent {
        return Err(Refusal::forbidden(format!(
            "{} is the agent that made the call held by ApprovalRequest {name:?}; an agent never \
             decides its own request: ask a reviewer of ApprovalRule {:?}",
            reviewer.name, object.spec.rule
        )));
    }
    if !is_reviewer(&rule.spec.reviewers, reviewer) {
        return Err(Refusal::forbidden(format!(
            "user {:?} (groups: {}) is not a reviewer of ApprovalRule {:?}: it names users [{}] \
             and groups [{}]; ask one of them to decide ApprovalRequest {name:?}, or have the \
             rule's owner add you",
            reviewer.name,
            reviewer.groups.join(", "),
            object.spec.rule,
            rule.spec.reviewers.users.join(", "),
            rule.spec.reviewers.groups.join(", "),
        )));
    }
    if let Some(outcome) = decision_of(decided, object.spec.required_approvals) {
        return Err(Refusal::conflict(format!(
            "ApprovalRequest {name:?} is already {outcome}; a decision once made is final. If the \
             agent still needs the call, it retries and a new request is raised"
        )));
    }
    if let Some(phase @ (ApprovalPhase::Expired | ApprovalPhase::Consumed)) =
        object.status.as_ref().map(|s| s.phase)
    {
        return Err(Refusal::conflict(format!(
            "ApprovalRequest {name:?} is {phase:?} and can no longer be decided; if the agent \
             still needs the call, it retries and a new request is raised"
        )));
    }
    if let Some(earlier) = decided.iter().find(|r| r.user == reviewer.name) {
        return Err(Refusal::conflict(format!(
            "user {:?} already reviewed ApprovalRequest {name:?} ({:?} at {}); each reviewer \
             decides once, so another reviewer of ApprovalRule {:?} must add the next approval",
            reviewer.name, earlier.decision, earlier.time, object.spec.rule
        )));
    }
    if review.decision == Decision::Deny && review.reason.trim().is_empty() {
        return Err(Refusal::invalid(format!(
            "a Deny of ApprovalRequest {name:?} needs a reason (it is shown to the agent): \
             `kubectl chaperone approvals deny {name} --reason \"...\"`"
        )));
    }
    Ok(())
}

/// Whether the rule's reviewers name `reviewer`, by user name or by group membership.
fn is_reviewer(reviewers: &Reviewers, reviewer: &Reviewer) -> bool {
    reviewers.users.contains(&reviewer.name)
        || reviewers.groups.iter().any(|g| reviewer.groups.contains(g))
}

/// "denied by ..." or "approved by ..." once `reviews` decide the request, else `None`.
fn decision_of(reviews: &[Review], required_approvals: i32) -> Option<String> {
    if let Some(deny) = reviews.iter().find(|r| r.decision == Decision::Deny) {
        return Some(format!("denied by {} ({:?})", deny.user, deny.reason));
    }
    let approvers: Vec<&str> = reviews
        .iter()
        .filter(|r| r.decision == Decision::Approve)
        .map(|r| r.user.as_str())
        .collect();
    let required = usize::try_from(required_approvals.max(1)).unwrap_or(1);
    (approvers.len() >= required).then(|| format!("approved by {}", approvers.join(", ")))
}

/// The user name the API server gives service account `name` of `namespace`.
fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// An HTTP body that is not an ApprovalRequest AdmissionReview.
#[derive(Debug, thiserror::Error)]
#[error("the body is not an ApprovalRequest AdmissionReview: {0}")]
pub struct InvalidAdmissionReview(String);

/// Decodes an AdmissionReview body; answer an error with [`AdmissionResponse::invalid`].
pub fn parse_admission_review(
    body: &[u8],
) -> Result<AdmissionRequest<ApprovalRequest>, InvalidAdmissionReview> {
    let review: kube::core::admission::AdmissionReview<ApprovalRequest> =
        serde_json::from_slice(body).map_err(|e| InvalidAdmissionReview(e.to_string()))?;
    review.try_into().map_err(|_| InvalidAdmissionReview("it carries no request".to_owned()))
}

/// The JSON body answering an AdmissionReview.
pub fn admission_review_body(response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&response.into_review())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;

    /// Rules held in memory, by name.
    struct Rules(BTreeMap<String, ApprovalRule>);

    impl RuleLookup for Rules {
        async fn approval_rule(
            &self,
            _namespace: &str,
            name: &str,
        ) -> Result<Option<ApprovalRule>, RuleLookupError> {
            Ok(self.0.get(name).cloned())
        }
    }

    fn rules(groups: &[&str], users: &[&str]) -> Rules {
        let rule: ApprovalRule = serde_json::from_value(json!({
            "apiVersion": "chaperone.dev/v1alpha1",
            "kind": "ApprovalRule",
            "metadata": {"name": "bucket-deletion", "namespace": "agents"},
            "spec": {
                "match": {"actions": ["s3:DeleteBucket"]},
                "reviewers": {"groups": groups, "users": users, "required": 1}
            }
        }))
        .unwrap_or_else(|e| panic!("rule: {e}"));
        Rules(BTreeMap::from([("bucket-deletion".to_owned(), rule)]))
    }

    fn approval_request(reviews: Value) -> Value {
        json!({
            "apiVersion": "chaperone.dev/v1alpha1",
            "kind": "ApprovalRequest",
            "metadata": {"name": "delete-scratch", "namespace": "agents"},
            "spec": {
                "connection": "prod-aws",
                "rule": "bucket-deletion",
                "sessionId": "019abc12",
                "agent": {"serviceAccount": "pr-bot"},
                "actions": ["s3:DeleteBucket"],
                "fingerprint": "0".repeat(64),
                "requiredApprovals": 2,
                "expiresAt": "2026-11-25T18:45:00Z",
                "reviews": reviews
            }
        })
    }

    fn update(
        user: &str,
        groups: &[&str],
        old: Value,
        new: Value,
    ) -> AdmissionRequest<ApprovalRequest> {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "7d0c",
                "kind": {"group": "chaperone.dev", "version": "v1alpha1", "kind": "ApprovalRequest"},
                "resource": {"group": "chaperone.dev", "version": "v1alpha1", "resource": "approvalrequests"},
                "name": "delete-scratch",
                "namespace": "agents",
                "operation": "UPDATE",
                "userInfo": {"username": user, "groups": groups},
                "object": approval_request(new),
                "oldObject": approval_request(old),
                "dryRun": false
            }
        });
        parse_admission_review(review.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    async fn answer(
        request: &AdmissionRequest<ApprovalRequest>,
        rules: &Rules,
    ) -> AdmissionResponse {
        review_approval_request(request, &ApprovalWebhookSettings::default(), rules, now()).await
    }

    #[tokio::test]
    async fn an_appended_review_is_replaced_by_one_stamped_with_the_authenticated_identity() {
        let earlier =
            json!([{"decision": "Approve", "user": "erin", "groups": ["sre"], "time": "t"}]);
        let appended = json!([
            {"decision": "Approve", "user": "erin", "groups": ["sre"], "time": "t"},
            {"decision": "Approve", "reason": "ok", "user": "mallory", "groups": ["system:masters"]}
        ]);
        let request = update("alice", &["sre", "system:authenticated"], earlier, appended);

        let response = answer(&request, &rules(&["sre"], &[])).await;

        assert!(response.allowed, "{}", response.result.message);
        let patch: Value = serde_json::from_slice(response.patch.as_deref().unwrap_or_default())
            .unwrap_or_else(|e| panic!("patch: {e}"));
        assert_eq!(
            patch,
            json!([{"op": "replace", "path": "/spec/reviews/1", "value": {
                "decision": "Approve", "reason": "ok", "user": "alice",
                "groups": ["sre", "system:authenticated"], "time": "2026-11-18T11:06:40Z"
            }}])
        );
    }

    #[tokio::test]
    async fn changing_an_earlier_review_is_refused_as_append_only() {
        let earlier =
            json!([{"decision": "Approve", "user": "erin", "groups": ["sre"], "time": "t"}]);
        let rewritten = json!([{"decision": "Deny", "reason": "x", "user": "erin", "groups": ["sre"], "time": "t"}]);
        let request = update("alice", &["sre"], earlier, rewritten);

        let response = answer(&request, &rules(&["sre"], &[])).await;

        assert!(!response.allowed);
        assert!(response.result.message.contains("append-only"), "{}", response.result.message);
    }

    #[tokio::test]
    async fn a_review_naming_a_missing_rule_is_refused_with_the_rules_name() {
        let request = update("alice", &["sre"], json!([]), json!([{"decision": "Approve"}]));

        let response = answer(&request, &Rules(BTreeMap::new())).await;

        assert!(!response.allowed);
        assert_eq!(response.result.code, 409);
        assert!(
            response
                .result
                .message
                .contains("ApprovalRule \"bucket-deletion\", which does not exist"),
            "{}",
            response.result.message
        );
    }

    #[tokio::test]
    async fn an_update_that_leaves_reviews_alone_is_allowed_without_a_patch_and_without_a_reviewer()
    {
        let reviews =
            json!([{"decision": "Approve", "user": "erin", "groups": ["sre"], "time": "t"}]);
        let request =
            update("system:serviceaccount:agents:chaperone-gateway", &[], reviews.clone(), reviews);

        let response = answer(&request, &Rules(BTreeMap::new())).await;

        assert!(response.allowed, "{}", response.result.message);
        assert!(response.patch.is_none());
    }
}
