//! The ApprovalRequest controller: carries out [`crate::approvals::lifecycle::plan`] for each
//! request — writes the phase people read, notifies the rule's webhook once, records each
//! delivery in `status.notifications` (with an Event when one fails), and deletes requests whose
//! retention has passed. It runs only on the leader, like the AgentConnection controller, so one
//! replica notifies.
//!
//! Status writes are JSON merge patches carrying the resourceVersion they were planned from, under
//! the field manager [`FIELD_MANAGER`]: a write planned from a stale copy fails with a conflict
//! instead of overwriting a gateway's `Consumed`, and the request is planned again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chaperone_crds::{
    ApprovalPhase, ApprovalRequest, ApprovalRule, NotificationDelivery, NotificationState,
    WebhookNotify,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::{Controller, controller::Action, events::EventType, watcher},
};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::{
    approvals::lifecycle::{self, LifecycleSettings},
    approvals::notifier::{NotifyError, WebhookSender, notification_body},
    error::Error,
    runtime::{
        metrics::OperatorMetrics,
        scaffolding::{self, ControllerBase, Reconciles},
    },
};

/// The controller's name in metrics.
pub const CONTROLLER: &str = "approvalrequest";
/// The field manager of the operator's writes to ApprovalRequest status (the gateway's are its
/// own).
pub const FIELD_MANAGER: &str = "chaperone-operator-approvals";
/// Attempts at writing a delivery's outcome when the request keeps changing underneath.
const STATUS_WRITE_ATTEMPTS: usize = 5;

/// What every reconcile of an ApprovalRequest shares.
#[derive(Debug)]
pub struct ApprovalContext {
    base: ControllerBase,
    settings: LifecycleSettings,
    sender: WebhookSender,
    /// Deliveries this replica recorded, by request uid, until its cache shows them: a reconcile
    /// from a copy older than the status write must not notify again.
    recorded: Mutex<HashMap<String, Vec<NotificationDelivery>>>,
}

impl Reconciles for ApprovalContext {
    fn base(&self) -> &ControllerBase {
        &self.base
    }
}

impl ApprovalContext {
    /// A context acting with `client`.
    pub fn new(
        client: Client,
        settings: LifecycleSettings,
        metrics: Arc<OperatorMetrics>,
    ) -> Result<Self, NotifyError> {
        Ok(Self {
            base: ControllerBase::new(CONTROLLER, client, metrics),
            settings,
            sender: WebhookSender::new()?,
            recorded: Mutex::new(HashMap::new()),
        })
    }
}

/// Runs the controller until `shutdown` completes; `namespace` limits it to one namespace.
pub async fn run(
    context: Arc<ApprovalContext>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api = scaffolding::scoped::<ApprovalRequest>(&context.base.client, namespace.as_deref());
    let controller = Controller::new(api, watcher::Config::default());
    scaffolding::run(controller, reconcile, context, shutdown).await;
}

/// The notification target of a rule, as recorded in status (never the URL itself).
pub fn target_id(webhook: &WebhookNotify) -> String {
    let format = match webhook.format {
        chaperone_crds::WebhookFormat::Json => "json",
        chaperone_crds::WebhookFormat::Slack => "slack",
    };
    format!(
        "webhook Secret/{} key {} ({format})",
        webhook.url_secret_ref.name, webhook.url_secret_ref.key
    )
}

/// Plans and carries out what `request` needs now.
pub async fn reconcile(
    request: Arc<ApprovalRequest>,
    context: Arc<ApprovalContext>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let _running = context.base.running();
    let result = act(&request, &context).await;
    context.base.finished(request.as_ref(), started, &result);
    result
}

async fn act(request: &ApprovalRequest, context: &ApprovalContext) -> Result<Action, Error> {
    if request.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = request
        .namespace()
        .ok_or(Error::MissingField { kind: "ApprovalRequest", field: "metadata.namespace" })?;
    let name = request.name_any();
    let request = &with_recorded_deliveries(context, request);
    let webhook = notify_target(context, &namespace, &request.spec.rule).await?;
    let target = webhook.as_ref().map(target_id);
    let now = OffsetDateTime::now_utc();
    let plan = lifecycle::plan(request, target.as_deref(), now, &context.settings);

    if plan.delete {
        let api: Api<ApprovalRequest> = Api::namespaced(context.base.client.clone(), &namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: request.metadata.uid.clone(),
                resource_version: request.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        if let (Some(uid), Ok(mut recorded)) = (&request.metadata.uid, context.recorded.lock()) {
            recorded.remove(uid);
        }
        return match api.delete(&name, &params).await {
            Ok(_) => {
                info!(approval_request = %name, namespace, "deleted after its retention");
                Ok(Action::await_change())
            }
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                Ok(Action::requeue(Duration::from_secs(1)))
            }
            Err(source) => Err(Error::Kube {
                action: format!("deleting ApprovalRequest {namespace}/{name} after its retention"),
                source,
            }),
        };
    }

    let mut delivery = None;
    if plan.notify
        && let (Some(webhook), Some(target)) = (&webhook, &target)
    {
        let outcome = deliver(context, request, &namespace, webhook).await;
        let previous = lifecycle::delivery_for(request, target);
        let record = lifecycle::record_attempt(
            previous,
            target,
            outcome.map_err(|e| e.to_string()),
            OffsetDateTime::now_utc(),
            &context.settings,
        );
        announce(context, request, &record).await;
        delivery = Some(record);
    }

    if plan.phase.is_some() || delivery.is_some() {
        match write_status(context, request, &namespace, plan.phase, delivery.clone()).await? {
            Written::Yes => {
                if let (Some(delivery), Some(uid)) = (&delivery, &request.metadata.uid)
                    && let Ok(mut recorded) = context.recorded.lock()
                {
                    let entry = recorded.entry(uid.clone()).or_default();
                    *entry = lifecycle::with_delivery(entry, delivery.clone());
                }
                if let Some(phase) = plan.phase {
                    info!(approval_request = %name, namespace, ?phase, "phase written");
                }
            }
            Written::Stale => return Ok(Action::requeue(Duration::from_secs(1))),
        }
    }
    let retry_soon = delivery
        .filter(|d| d.state == NotificationState::Retrying)
        .map(|d| context.settings.backoff(u32::try_from(d.attempts).unwrap_or(1)));
    match plan.requeue_after.into_iter().chain(retry_soon).min() {
        Some(after) => Ok(Action::requeue(after.min(Duration::from_secs(3600)))),
        None => Ok(Action::await_change()),
    }
}

/// `request` with the deliveries this replica recorded and its copy does not show yet; entries
/// the copy shows are forgotten.
fn with_recorded_deliveries(
    context: &ApprovalContext,
    request: &ApprovalRequest,
) -> ApprovalRequest {
    let mut request = request.clone();
    let (Some(uid), Ok(mut recorded)) = (request.metadata.uid.clone(), context.recorded.lock())
    else {
        return request;
    };
    let Some(mine) = recorded.get_mut(&uid) else { return request };
    let status = request.status.get_or_insert_with(Default::default);
    mine.retain(|delivery| {
        let shown = status
            .notifications
            .iter()
            .any(|d| d.target == delivery.target && d.attempts >= delivery.attempts);
        if !shown {
            status.notifications =
                lifecycle::with_delivery(&status.notifications, delivery.clone());
        }
        !shown
    });
    if mine.is_empty() {
        recorded.remove(&uid);
    }
    request
}

/// The rule's webhook, when the rule exists and notifies one.
async fn notify_target(
    context: &ApprovalContext,
    namespace: &str,
    rule: &str,
) -> Result<Option<WebhookNotify>, Error> {
    let rules: Api<ApprovalRule> = Api::namespaced(context.base.client.clone(), namespace);
    let rule = rules
        .get_opt(rule)
        .await
        .map_err(Error::kube(format!("reading ApprovalRule {namespace}/{rule}")))?;
    Ok(rule.and_then(|r| r.spec.notify).and_then(|n| n.webhook))
}

/// One delivery attempt: the URL from the Secret, the body in the rule's format, one POST.
async fn deliver(
    context: &ApprovalContext,
    request: &ApprovalRequest,
    namespace: &str,
    webhook: &WebhookNotify,
) -> Result<(), NotifyError> {
    let reference = &webhook.url_secret_ref;
    let source_ref = format!("Secret {namespace}/{} key {}", reference.name, reference.key);
    let secrets: Api<Secret> = Api::namespaced(context.base.client.clone(), namespace);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|e| NotifyError::Transport(format!("reading {source_ref}: {e}")))?;
    let url = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&reference.key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .ok_or_else(|| NotifyError::Transport(format!(
            "{source_ref} does not exist; create it with the webhook URL, e.g. `kubectl create secret generic {} -n {namespace} --from-literal={}=https://...`",
            reference.name, reference.key
        )))?;
    let body = notification_body(webhook.format, request)?;
    let outcome = context.sender.post(&url, &source_ref, body).await;
    let format = match webhook.format {
        chaperone_crds::WebhookFormat::Json => "json",
        chaperone_crds::WebhookFormat::Slack => "slack",
    };
    context.base.metrics.notified(format, if outcome.is_ok() { "delivered" } else { "failed" });
    outcome
}

/// A log line and an Event for one attempt: Normal when delivered, Warning when it failed.
async fn announce(
    context: &ApprovalContext,
    request: &ApprovalRequest,
    record: &NotificationDelivery,
) {
    let name = request.name_any();
    let (type_, reason, note) = match record.state {
        NotificationState::Delivered => (
            EventType::Normal,
            "NotificationDelivered",
            format!("Notified {} (attempt {}).", record.target, record.attempts),
        ),
        state => {
            let error = record.last_error.clone().unwrap_or_default();
            let next = if state == NotificationState::Failed {
                "no more attempts; reviewers must find it with `kubectl chaperone approvals list`"
                    .to_owned()
            } else {
                format!(
                    "retrying in {} s",
                    context.settings.backoff(u32::try_from(record.attempts).unwrap_or(1)).as_secs()
                )
            };
            (
                EventType::Warning,
                "NotificationFailed",
                format!(
                    "Notifying {} failed (attempt {} of {}): {error}; {next}.",
                    record.target, record.attempts, context.settings.max_attempts
                ),
            )
        }
    };
    if type_ == EventType::Normal {
        info!(approval_request = %name, target = %record.target, attempts = record.attempts, "notification delivered");
    } else {
        warn!(approval_request = %name, target = %record.target, attempts = record.attempts, error = record.last_error.as_deref().unwrap_or_default(), "notification failed");
    }
    context.base.publish(&request.object_ref(&()), type_, reason, "Notify", note).await;
}

enum Written {
    Yes,
    /// The request changed since it was planned and the phase may no longer apply.
    Stale,
}

/// Writes the phase (only onto the version it was planned from) and the delivery (re-read and
/// merged on a conflict, so a made attempt is never lost nor made twice).
async fn write_status(
    context: &ApprovalContext,
    request: &ApprovalRequest,
    namespace: &str,
    phase: Option<ApprovalPhase>,
    delivery: Option<NotificationDelivery>,
) -> Result<Written, Error> {
    let api: Api<ApprovalRequest> = Api::namespaced(context.base.client.clone(), namespace);
    let name = request.name_any();
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let mut current = request.clone();
    let mut phase = phase;
    for _ in 0..STATUS_WRITE_ATTEMPTS {
        let mut status = serde_json::Map::new();
        if let Some(phase) = phase {
            status.insert("phase".into(), serde_json::to_value(phase).unwrap_or_default());
        }
        if let Some(delivery) = &delivery {
            let existing =
                current.status.as_ref().map(|s| s.notifications.clone()).unwrap_or_default();
            let all = lifecycle::with_delivery(&existing, delivery.clone());
            status.insert("notifications".into(), serde_json::to_value(all).unwrap_or_default());
        }
        if status.is_empty() {
            return Ok(Written::Stale);
        }
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "status": status,
        });
        match api.patch_status(&name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(Written::Yes),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Someone (a reviewer, a gateway) changed it: the phase is planned again from the
                // fresh copy; the delivery already happened and is kept.
                phase = None;
                match api
                    .get_opt(&name)
                    .await
                    .map_err(Error::kube(format!("reading ApprovalRequest {namespace}/{name}")))?
                {
                    Some(fresh) => current = fresh,
                    None => return Ok(Written::Stale),
                }
                if delivery.is_none() {
                    return Ok(Written::Stale);
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Written::Stale),
            Err(source) => {
                return Err(Error::Kube {
                    action: format!("writing the status of ApprovalRequest {namespace}/{name}"),
                    source,
                });
            }
        }
    }
    Ok(Written::Stale)
}
