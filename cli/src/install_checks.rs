//! What `kubectl chaperone doctor` concludes from the objects it read: one [`CheckLine`] per
//! check, each failure with the fix. Pure, so every verdict and fix text is tested without a
//! cluster; `commands::doctor` does the reading.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use chaperone_crds::RecordingPolicy;

/// The pod webhook's name in the operator's MutatingWebhookConfiguration.
pub const POD_WEBHOOK: &str = "pods.chaperone.dev";
/// The volume the pod webhook adds to a labelled pod (its projected Chaperone token).
pub const TOKEN_VOLUME: &str = "chaperone-token";
/// The label that sends a pod to the webhook.
pub const CONNECTION_LABEL: &str = "chaperone.dev/connection";
/// Name of each namespace's gateway Deployment and Service.
pub const GATEWAY: &str = "chaperone-gateway";

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Fail,
    /// Information the doctor cannot verify from the API (never fails the run).
    Note,
}

/// One line of the report, and the fix when it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckLine {
    pub verdict: Verdict,
    /// What was checked, e.g. `operator` or `gateway agents`.
    pub check: String,
    pub detail: String,
    pub fix: Option<String>,
}

impl CheckLine {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { verdict: Verdict::Ok, check: check.into(), detail: detail.into(), fix: None }
    }

    fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Fail,
            check: check.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn note(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { verdict: Verdict::Note, check: check.into(), detail: detail.into(), fix: None }
    }

    /// `ok    <check>: <detail>`, and for a failure a second line `      fix: <fix>`.
    pub fn render(&self) -> String {
        let word = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Fail => "FAIL",
            Verdict::Note => "note",
        };
        let mut text = format!("{word:<5} {}: {}\n", self.check, self.detail);
        if let Some(fix) = &self.fix {
            text.push_str(&format!("      fix: {fix}\n"));
        }
        text
    }
}

/// Whether `condition` of a CRD or Deployment status is `True`.
fn is_true<'a>(mut conditions: impl Iterator<Item = (&'a str, &'a str)>, wanted: &str) -> bool {
    conditions.any(|(type_, status)| type_ == wanted && status == "True")
}

/// One of the CLI's CRDs against what the cluster has.
pub fn crd_check(
    expected: &CustomResourceDefinition,
    installed: Option<&CustomResourceDefinition>,
) -> CheckLine {
    let name = expected.metadata.name.clone().unwrap_or_default();
    let check = format!("crd {name}");
    let apply = "apply the CRDs of the chart this CLI comes with: kubectl apply --server-side -f \
                 charts/chaperone/crds/ (helm install applies them once; helm upgrade never updates \
                 CRDs)";
    let Some(installed) = installed else {
        return CheckLine::fail(check, "not installed", apply);
    };
    let established =
        installed.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|conditions| {
            is_true(conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str())), "Established")
        });
    if !established {
        return CheckLine::fail(
            check,
            "installed but not Established",
            format!("kubectl describe crd {name} shows why (its NamesAccepted condition)"),
        );
    }
    for version in &expected.spec.versions {
        let Some(found) = installed.spec.versions.iter().find(|v| v.name == version.name) else {
            return CheckLine::fail(
                check,
                format!("does not have version {} (this CLI's)", version.name),
                apply,
            );
        };
        if !found.served {
            return CheckLine::fail(
                check,
                format!("version {} is not served", version.name),
                apply,
            );
        }
        let schema = |v: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion| {
            v.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).and_then(|s| serde_json::to_value(s).ok())
        };
        if schema(found) != schema(version) {
            return CheckLine::fail(
                check,
                format!(
                    "version {} has a different schema than this CLI's (kubectl-chaperone {})",
                    version.name,
                    env!("CARGO_PKG_VERSION")
                ),
                apply,
            );
        }
    }
    let versions: Vec<&str> = expected.spec.versions.iter().map(|v| v.name.as_str()).collect();
    CheckLine::ok(check, format!("Established, serves {} as this CLI expects", versions.join(", ")))
}

/// The operator's Deployment.
pub fn operator_check(namespace: &str, name: &str, deployment: Option<&Deployment>) -> CheckLine {
    let check = "operator";
    let Some(deployment) = deployment else {
        return CheckLine::fail(
            check,
            format!("Deployment {namespace}/{name} does not exist"),
            format!(
                "install the chart: helm install chaperone charts/chaperone -n {namespace} \
                 --create-namespace --wait (or name your install with --operator-namespace and \
                 --operator-deployment)"
            ),
        );
    };
    let status = deployment.status.clone().unwrap_or_default();
    let available = is_true(
        status.conditions.iter().flatten().map(|c| (c.type_.as_str(), c.status.as_str())),
        "Available",
    );
    let ready = status.ready_replicas.unwrap_or(0);
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if !available || ready < 1 {
        return CheckLine::fail(
            check,
            format!(
                "Deployment {namespace}/{name} is not available ({ready}/{wanted} replicas ready)"
            ),
            format!(
                "kubectl -n {namespace} describe deployment {name}, and kubectl -n {namespace} logs \
                 deployment/{name}: a replica is ready once its webhook certificate is loaded and \
                 registered"
            ),
        );
    }
    CheckLine::ok(
        check,
        format!("Deployment {namespace}/{name} available ({ready}/{wanted} replicas ready)"),
    )
}

/// The operator's MutatingWebhookConfiguration: present, with the pod webhook and a CA bundle.
pub fn webhook_configuration_check(
    name: &str,
    configuration: Option<&MutatingWebhookConfiguration>,
) -> CheckLine {
    let check = "webhook configuration";
    let restart = "the operator applies it when its webhooks start: check that the operator runs \
                   (kubectl -n <operator namespace> logs deployment/chaperone-operator) or name \
                   yours with --webhook-configuration";
    let Some(configuration) = configuration else {
        return CheckLine::fail(
            check,
            format!("MutatingWebhookConfiguration {name:?} does not exist"),
            restart,
        );
    };
    let pods = configuration.webhooks.iter().flatten().find(|w| w.name == POD_WEBHOOK);
    let Some(pods) = pods else {
        return CheckLine::fail(
            check,
            format!("MutatingWebhookConfiguration {name:?} has no {POD_WEBHOOK} webhook"),
            restart,
        );
    };
    if pods.client_config.ca_bundle.as_ref().is_none_or(|b| b.0.is_empty()) {
        return CheckLine::fail(
            check,
            format!("{POD_WEBHOOK} in {name:?} has no caBundle"),
            restart,
        );
    }
    CheckLine::ok(
        check,
        format!("MutatingWebhookConfiguration {name:?} has {POD_WEBHOOK} with a caBundle"),
    )
}

/// The server-side dry-run create of a labelled pod in `namespace`: the webhook must have added
/// its token volume.
pub fn webhook_dry_run_check(namespace: &str, outcome: &Result<Pod, String>) -> CheckLine {
    let check = "webhooks reachable";
    match outcome {
        Ok(pod) => {
            let injected = pod
                .spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .is_some_and(|v| v.iter().any(|v| v.name == TOKEN_VOLUME));
            if injected {
                CheckLine::ok(
                    check,
                    format!(
                        "a labelled pod created in {namespace} (dry run) got the Chaperone token"
                    ),
                )
            } else {
                CheckLine::fail(
                    check,
                    format!(
                        "a labelled pod created in {namespace} (dry run) came back without the \
                         Chaperone token: the pod webhook did not mutate it"
                    ),
                    format!(
                        "check that the MutatingWebhookConfiguration selects pods labelled \
                         {CONNECTION_LABEL} and that namespace {namespace} is not excluded \
                         (webhooks.excludeNamespaces)"
                    ),
                )
            }
        }
        Err(message) => CheckLine::fail(
            check,
            format!("a labelled pod created in {namespace} (dry run) was refused: {message}"),
            "the API server cannot call the operator's webhooks: check that the operator's pods \
             are ready, that its Service chaperone-operator has endpoints, and that a \
             NetworkPolicy or firewall lets the API server reach port 9443 (on EKS the cluster \
             security group must allow it)",
        ),
    }
}

/// One namespace's gateway: its Deployment available, and ready endpoints behind its Service.
pub fn gateway_check(
    namespace: &str,
    deployment: Option<&Deployment>,
    ready_endpoints: usize,
) -> CheckLine {
    let check = format!("gateway {namespace}");
    let Some(deployment) = deployment else {
        return CheckLine::fail(
            check,
            format!("Deployment {GATEWAY} does not exist"),
            format!(
                "the operator creates it for the namespace's AgentConnections: kubectl -n \
                 {namespace} describe agentconnections (the Ready condition says what is \
                 missing) and the operator's logs"
            ),
        );
    };
    let status = deployment.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let describe = format!(
        "kubectl -n {namespace} describe deployment {GATEWAY} (scheduling, image pulls) and \
         kubectl -n {namespace} logs deployment/{GATEWAY} (its /readyz fails until its \
         configuration, keys and JWKS are loaded)"
    );
    if ready < 1 {
        return CheckLine::fail(
            check,
            format!("Deployment {GATEWAY} has no ready replica (0/{wanted})"),
            describe,
        );
    }
    if ready_endpoints == 0 {
        return CheckLine::fail(
            check,
            format!("Service {GATEWAY} has no ready endpoint: agents' calls have nowhere to go"),
            describe,
        );
    }
    CheckLine::ok(
        check,
        format!(
            "{ready}/{wanted} replicas ready, Service {GATEWAY} answers on {ready_endpoints} ready \
             endpoint(s)"
        ),
    )
}

/// One RecordingPolicy, from the conditions the operator writes after checking its bucket.
pub fn recording_check(namespace: &str, policy: &RecordingPolicy) -> CheckLine {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let check = format!("recording {namespace}/{name}");
    let bucket = &policy.spec.s3.bucket;
    let Some(status) = &policy.status else {
        return CheckLine::fail(
            check,
            format!("bucket {bucket:?} not checked yet (no status)"),
            "the operator checks the bucket when it reconciles the policy: check that the \
             operator runs and leads (kubectl -n <operator namespace> logs \
             deployment/chaperone-operator)",
        );
    };
    if status.observed_generation != policy.metadata.generation {
        return CheckLine::fail(
            check,
            format!("bucket {bucket:?}: the status describes an older generation of the policy"),
            "wait a few seconds and run doctor again; if it stays, check the operator's logs",
        );
    }
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    match ready {
        Some(ready) if ready.status == "True" => CheckLine::ok(
            check,
            format!("bucket {bucket:?} reachable, lifecycle rules applied, public keys published"),
        ),
        _ => {
            // The first failing check names the cause; its message says what to do.
            let failing = status
                .conditions
                .iter()
                .find(|c| {
                    !matches!(c.type_.as_str(), "Ready" | BUCKET_LOCKED_DOWN) && c.status != "True"
                })
                .or(ready);
            let (type_, reason, message) = failing
                .map(|c| (c.type_.as_str(), c.reason.as_str(), c.message.as_str()))
                .unwrap_or(("Ready", "Unknown", "no Ready condition"));
            CheckLine::fail(
                check,
                format!("bucket {bucket:?}: {type_} is False ({reason})"),
                format!("{message} (docs/troubleshooting.md lists {reason})"),
            )
        }
    }
}

/// The RecordingPolicy condition on the direct S3 path's lockdown, which Ready does not sum up.
const BUCKET_LOCKED_DOWN: &str = "BucketLockedDown";

/// One RecordingPolicy's lockdown of its bucket (`spec.access`, the `BucketLockedDown`
/// condition): ok when applied, a note when the policy does not manage it (a choice, not a fault),
/// a failure naming what could not be applied otherwise. `None` before the operator reported it.
pub fn lockdown_check(namespace: &str, policy: &RecordingPolicy) -> Option<CheckLine> {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let check = format!("bucket lockdown {namespace}/{name}");
    let status = policy.status.as_ref()?;
    let condition = status.conditions.iter().find(|c| c.type_ == BUCKET_LOCKED_DOWN)?;
    Some(match (condition.status.as_str(), condition.reason.as_str()) {
        ("True", _) => CheckLine::ok(check, condition.message.clone()),
        (_, "NotManaged") => CheckLine::note(
            check,
            format!(
                "{} (anyone with read keys to the bucket reads the recordings directly; \
                 docs/auditing.md, \"The direct S3 path\")",
                condition.message
            ),
        ),
        (_, reason) => CheckLine::fail(
            check,
            format!("BucketLockedDown is False ({reason})"),
            format!("{} (docs/troubleshooting.md lists {reason})", condition.message),
        ),
    })
}

/// NetworkPolicies are stored by any API server but enforced only by some network plugins.
pub fn network_policy_note(namespaces_with_policies: &[String]) -> CheckLine {
    let enforced = "they are enforced only when the cluster's network plugin supports them \
                    (Calico, Cilium, Antrea, the VPC CNI with network policy enabled); the API \
                    cannot tell, so try a denied connection once";
    if namespaces_with_policies.is_empty() {
        CheckLine::note(
            "networkpolicy",
            format!(
                "no NetworkPolicy in the agent namespaces: agents can reach AWS directly, \
                 bypassing the gateway, unless egress is restricted elsewhere (see \
                 docs/security-model.md); {enforced}"
            ),
        )
    } else {
        CheckLine::note(
            "networkpolicy",
            format!("NetworkPolicies exist in {}; {enforced}", namespaces_with_policies.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, ready: i32, available: bool) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {
                "readyReplicas": ready,
                "conditions": [{"type": "Available", "status": if available { "True" } else { "False" }}],
            },
        }))
        .unwrap()
    }

    fn policy(conditions: serde_json::Value, generation: i64, observed: i64) -> RecordingPolicy {
        serde_json::from_value(json!({
            "apiVersion": "chaperone.dev/v1alpha1", "kind": "RecordingPolicy",
            "metadata": {"name": "default", "namespace": "agents", "generation": generation},
            "spec": {"s3": {"bucket": "audit", "region": "us-east-1"}, "retention": {"days": 30}},
            "status": {"observedGeneration": observed, "conditions": conditions},
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn a_failure_renders_with_its_fix_on_the_next_line() {
        let line = operator_check("chaperone-system", "chaperone-operator", None);
        assert_eq!(
            line.render().lines().next().unwrap(),
            "FAIL  operator: Deployment chaperone-system/chaperone-operator does not exist"
        );
        assert!(line.render().lines().nth(1).unwrap().starts_with("      fix: install the chart"));
        let ok = operator_check("s", "o", Some(&deployment(2, 2, true)));
        assert_eq!(ok.render(), "ok    operator: Deployment s/o available (2/2 replicas ready)\n");
    }

    #[test]
    fn an_operator_without_ready_replicas_fails() {
        let line = operator_check("s", "o", Some(&deployment(2, 0, false)));
        assert_eq!(line.verdict, Verdict::Fail);
        assert!(line.detail.contains("0/2 replicas ready"), "{}", line.detail);
    }

    #[test]
    fn crds_match_when_the_cluster_has_the_clis_schema() {
        let ours = chaperone_crds::all_crds().remove(0);
        let mut installed = ours.clone();
        installed.status = serde_json::from_value(
            json!({"conditions": [{"type": "Established", "status": "True"}]}),
        )
        .unwrap();
        assert_eq!(crd_check(&ours, Some(&installed)).verdict, Verdict::Ok);
        assert_eq!(crd_check(&ours, None).detail, "not installed");
        installed.spec.versions[0].name = "v1alpha0".into();
        let old = crd_check(&ours, Some(&installed));
        assert!(old.detail.contains("does not have version v1alpha1"), "{}", old.detail);
    }

    #[test]
    fn a_gateway_needs_a_ready_replica_and_a_ready_endpoint() {
        assert!(gateway_check("agents", None, 0).detail.contains("does not exist"));
        assert!(
            gateway_check("agents", Some(&deployment(2, 0, false)), 0)
                .detail
                .contains("no ready replica")
        );
        assert!(
            gateway_check("agents", Some(&deployment(2, 1, true)), 0)
                .detail
                .contains("no ready endpoint")
        );
        assert_eq!(gateway_check("agents", Some(&deployment(2, 2, true)), 2).verdict, Verdict::Ok);
    }

    #[test]
    fn a_policy_reports_its_first_failing_condition_and_its_message() {
        let failing = policy(
            json!([
                condition(
                    "Ready",
                    "False",
                    "BucketNotFound",
                    "Bucket \"audit\" does not exist: create it."
                ),
                condition(
                    "BucketReachable",
                    "False",
                    "BucketNotFound",
                    "Bucket \"audit\" does not exist: create it."
                ),
                condition("LifecycleApplied", "False", "BucketUnreachable", "waits"),
            ]),
            1,
            1,
        );
        let line = recording_check("agents", &failing);
        assert_eq!(line.detail, "bucket \"audit\": BucketReachable is False (BucketNotFound)");
        assert!(line.fix.unwrap().starts_with("Bucket \"audit\" does not exist: create it."));
        let stale = policy(json!([condition("Ready", "True", "Ready", "ok")]), 2, 1);
        assert!(recording_check("agents", &stale).detail.contains("older generation"));
        let ready = policy(json!([condition("Ready", "True", "Ready", "ok")]), 1, 1);
        assert_eq!(recording_check("agents", &ready).verdict, Verdict::Ok);
        assert_eq!(lockdown_check("agents", &ready), None);
    }

    #[test]
    fn the_lockdown_is_its_own_line_and_never_taken_for_the_recording_failure() {
        let unmanaged = condition("BucketLockedDown", "False", "NotManaged", "no spec.access");
        let ready = policy(json!([unmanaged, condition("Ready", "True", "Ready", "ok")]), 1, 1);
        assert_eq!(recording_check("agents", &ready).verdict, Verdict::Ok);
        let note = lockdown_check("agents", &ready).unwrap();
        assert_eq!(note.verdict, Verdict::Note);
        assert!(note.detail.starts_with("no spec.access"));

        let failing = policy(
            json!([
                condition("BucketLockedDown", "False", "BucketPolicyFailed", "AccessDenied"),
                condition("Ready", "False", "BucketNotFound", "gone"),
                condition("BucketReachable", "False", "BucketNotFound", "gone"),
            ]),
            1,
            1,
        );
        assert_eq!(
            recording_check("agents", &failing).detail,
            "bucket \"audit\": BucketReachable is False (BucketNotFound)"
        );
        let line = lockdown_check("agents", &failing).unwrap();
        assert_eq!(line.verdict, Verdict::Fail);
        assert_eq!(line.detail, "BucketLockedDown is False (BucketPolicyFailed)");

        let applied = condition("BucketLockedDown", "True", "Applied", "policy statements applied");
        let locked = policy(json!([applied]), 1, 1);
        assert_eq!(lockdown_check("agents", &locked).unwrap().verdict, Verdict::Ok);
    }

    #[test]
    fn a_dry_run_pod_without_the_token_means_the_webhook_did_not_run() {
        let plain: Pod = serde_json::from_value(json!({"spec": {"containers": []}})).unwrap();
        assert!(
            webhook_dry_run_check("agents", &Ok(plain))
                .detail
                .contains("without the Chaperone token")
        );
        let refused = webhook_dry_run_check("agents", &Err("failed calling webhook".into()));
        assert_eq!(refused.verdict, Verdict::Fail);
        assert!(refused.fix.unwrap().contains("port 9443"));
    }
}
