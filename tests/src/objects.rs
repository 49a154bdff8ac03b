//! Applying YAML objects (the project's `examples/`, or variants of them) through the API server.

use std::fs;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DynamicObject, GroupVersionKind, PostParams},
    discovery,
};
use serde_json::Value;

use crate::paths;

/// An object of `examples/<file>.yaml`, as JSON.
pub fn example(file: &str) -> anyhow::Result<Value> {
    let path = paths::workspace_root().join("examples").join(format!("{file}.yaml"));
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Every object in `examples/`, sorted by file name.
pub fn all_examples() -> anyhow::Result<Vec<(String, Value)>> {
    let dir = paths::workspace_root().join("examples");
    let mut names: Vec<String> = fs::read_dir(&dir)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter_map(|n| n.strip_suffix(".yaml").map(str::to_owned))
        .collect();
    names.sort();
    names.into_iter().map(|n| example(&n).map(|v| (n, v))).collect()
}

/// Creates a namespace (no error if it exists).
pub async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name}
    }))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// Creates `object` in `namespace` (overriding its metadata.namespace) and returns the API
/// server's answer; the error is kept as [`kube::Error`] so tests can read the refusal.
pub async fn create_in(
    client: &Client,
    namespace: &str,
    object: &Value,
) -> anyhow::Result<Result<DynamicObject, kube::Error>> {
    let mut object: DynamicObject = serde_json::from_value(object.clone())?;
    object.metadata.namespace = Some(namespace.to_owned());
    let types = object.types.clone().context("object without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types)?;
    let (resource, _caps) = discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("discovering {}", types.kind))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    Ok(api.create(&PostParams::default(), &object).await)
}

/// Sets the value at a JSON pointer, creating intermediate objects.
pub fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut current = object;
    for part in pointer.trim_start_matches('/').split('/') {
        if !current.is_object() {
            *current = Value::Object(Default::default());
        }
        current = current
            .as_object_mut()
            .map(|m| m.entry(part.to_owned()).or_insert(Value::Null))
            .expect("just made an object");
    }
    *current = value;
}

/// Removes the value at a JSON pointer, if present.
pub fn remove(object: &mut Value, pointer: &str) {
    let (parent, last) = match pointer.rsplit_once('/') {
        Some(split) => split,
        None => return,
    };
    if let Some(map) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
        map.remove(last);
    }
}

/// Server-side applies `object` (in the namespace its metadata names, for namespaced kinds) under
/// `field_manager`, forced, with strict field validation.
pub async fn apply(client: &Client, object: &Value, field_manager: &str) -> anyhow::Result<()> {
    let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
    let types = dynamic.types.clone().context("object without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types)?;
    let name = dynamic.metadata.name.clone().context("object without a name")?;
    let (resource, capabilities) = discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("discovering {}", types.kind))?;
    let api: Api<DynamicObject> = match (&capabilities.scope, &dynamic.metadata.namespace) {
        (discovery::Scope::Namespaced, Some(namespace)) => {
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        (discovery::Scope::Namespaced, None) => {
            bail!("{} {name} is namespaced but names no namespace", types.kind)
        }
        (discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    let mut params = kube::api::PatchParams::apply(field_manager).force();
    params.field_validation = Some(kube::api::ValidationDirective::Strict);
    api.patch(&name, &params, &kube::api::Patch::Apply(object))
        .await
        .with_context(|| format!("applying {} {name}", types.kind))?;
    Ok(())
}

/// The rules of the chart's ClusterRole chaperone-session-auditor
/// (charts/chaperone/templates/audit-api.yaml; the helm_chart test checks the chart carries
/// these): read the audit API's sessions and their events.
pub fn session_auditor_cluster_role() -> Value {
    serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "chaperone-session-auditor"},
        "rules": [{"apiGroups": ["audit.chaperone.dev"], "resources": ["sessions", "sessions/events"],
                   "verbs": ["get", "list"]}],
    })
}

/// A RoleBinding `session-auditors` in `namespace` of `subject` (an RBAC subject) to the
/// ClusterRole chaperone-session-auditor: what an admin grants a namespace's auditors.
pub fn session_auditor_binding(namespace: &str, subject: Value) -> Value {
    serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "session-auditors", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "chaperone-session-auditor"},
        "subjects": [subject],
    })
}

/// Service `name` in `namespace` (port `service_port`, named `audit-api`) with an EndpointSlice at
/// `address`: how the API server reaches the audit API of a process on this machine (the local
/// environment has no kube-proxy or EndpointSlice controller, and loopback endpoints are refused).
pub async fn service_at(
    client: &Client,
    namespace: &str,
    name: &str,
    service_port: u16,
    address: std::net::SocketAddr,
    field_manager: &str,
) -> anyhow::Result<()> {
    let port = i32::from(address.port());
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "audit-api", "port": service_port, "targetPort": port, "protocol": "TCP"}]},
    });
    apply(client, &service, field_manager).await?;
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address.ip().to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "audit-api", "port": port, "protocol": "TCP"}],
    });
    apply(client, &slice, field_manager).await
}
