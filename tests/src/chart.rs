//! The Helm chart as a user installs it: rendered with the real `helm`, validated with the real
//! `kubeconform` against JSON schemas taken from the local API server's own OpenAPI document (so
//! the schemas are those of the Kubernetes version under test, the chart's CRDs included), and
//! applied to the API server.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
    core::GroupVersionKind,
    discovery,
};
use serde_json::{Map, Value, json};

use crate::{paths, provision::ChartTools};

/// The chart's directory in the workspace.
pub fn chart_dir() -> PathBuf {
    paths::workspace_root().join("charts/chaperone")
}

/// The Kubernetes version of the local API server (the charts' `.Capabilities.KubeVersion`): the
/// version of k8s.io/kubernetes its wrapper module requires.
pub fn kubernetes_version() -> anyhow::Result<String> {
    let go_mod = paths::workspace_root().join("tests/go/kube-apiserver/go.mod");
    let text =
        fs::read_to_string(&go_mod).with_context(|| format!("reading {}", go_mod.display()))?;
    crate::provision::required_version(&text, "k8s.io/kubernetes")
        .with_context(|| format!("{} does not require k8s.io/kubernetes", go_mod.display()))
}

/// What `helm` printed when it failed.
#[derive(Debug)]
pub struct HelmFailure {
    /// helm's exit status and stderr.
    pub stderr: String,
}

/// `helm template <release> charts/chaperone --namespace <namespace> --include-crds` with `args`
/// (e.g. `--set`, `-f`); Ok(rendered YAML) or Err(what helm said).
pub fn render(
    tools: &ChartTools,
    release: &str,
    namespace: &str,
    args: &[&str],
) -> anyhow::Result<Result<String, HelmFailure>> {
    let output = Command::new(&tools.helm)
        .args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", namespace, "--include-crds", "--kube-version"])
        .arg(kubernetes_version()?)
        .args(args)
        .env("HELM_CACHE_HOME", tools.home.join("cache"))
        .env("HELM_CONFIG_HOME", tools.home.join("config"))
        .env("HELM_DATA_HOME", tools.home.join("data"))
        .output()
        .context("running helm template")?;
    if output.status.success() {
        Ok(Ok(String::from_utf8(output.stdout).context("helm printed non-UTF-8")?))
    } else {
        Ok(Err(HelmFailure {
            stderr: format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr)),
        }))
    }
}

/// `helm lint --strict charts/chaperone` with `args`: Ok(output) when it passes.
pub fn lint(tools: &ChartTools, args: &[&str]) -> anyhow::Result<Result<String, HelmFailure>> {
    let output = Command::new(&tools.helm)
        .args(["lint", "--strict"])
        .arg(chart_dir())
        .arg("--kube-version")
        .arg(kubernetes_version()?)
        .args(args)
        .env("HELM_CACHE_HOME", tools.home.join("cache"))
        .env("HELM_CONFIG_HOME", tools.home.join("config"))
        .env("HELM_DATA_HOME", tools.home.join("data"))
        .output()
        .context("running helm lint")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(if output.status.success() { Ok(text) } else { Err(HelmFailure { stderr: text }) })
}

/// The objects of a multi-document YAML stream (empty documents skipped).
pub fn objects(rendered: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(rendered) {
        let value: Value = serde::Deserialize::deserialize(document).context("parsing YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The rendered object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The schema-location template under `dir` that [`write_kubeconform_schemas`] fills.
pub fn schema_location(dir: &Path) -> String {
    format!(
        "{}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}-{{{{ .ResourceAPIVersion }}}}.json",
        dir.display()
    )
}

/// Fetches the API server's `/openapi/v2` document.
pub async fn openapi_v2(client: &Client) -> anyhow::Result<Value> {
    let request = http::Request::get("/openapi/v2").body(Vec::new())?;
    let text = client.request_text(request).await.context("GET /openapi/v2")?;
    serde_json::from_str(&text).context("parsing /openapi/v2")
}

/// Writes one standalone, strict JSON schema per kind the OpenAPI document defines, where
/// [`schema_location`] finds it: `<group or v1>/<kind>-<version>.json`. References are inlined (a
/// recursive one becomes `{}`), objects with properties refuse unknown ones, and int-or-string
/// fields and quantities accept both. Returns how many schemas it wrote.
pub fn write_kubeconform_schemas(openapi: &Value, dir: &Path) -> anyhow::Result<usize> {
    let definitions =
        openapi["definitions"].as_object().context("/openapi/v2 has no definitions")?;
    let mut written = 0;
    for (name, definition) in definitions {
        let Some(kinds) = definition["x-kubernetes-group-version-kind"].as_array() else {
            continue;
        };
        let mut stack = BTreeSet::new();
        stack.insert(name.clone());
        let schema = standalone(definition, definitions, &mut stack);
        for gvk in kinds {
            let (Some(group), Some(version), Some(kind)) =
                (gvk["group"].as_str(), gvk["version"].as_str(), gvk["kind"].as_str())
            else {
                continue;
            };
            let folder = if group.is_empty() { version } else { group };
            let path = dir.join(folder).join(format!("{}-{version}.json", kind.to_lowercase()));
            fs::create_dir_all(path.parent().unwrap_or(dir))?;
            let mut schema = schema.clone();
            if let Some(object) = schema.as_object_mut() {
                object.insert("$schema".into(), json!("http://json-schema.org/draft-07/schema#"));
            }
            fs::write(&path, serde_json::to_vec(&schema)?)
                .with_context(|| format!("writing {}", path.display()))?;
            written += 1;
        }
    }
    Ok(written)
}

fn standalone(
    schema: &Value,
    definitions: &Map<String, Value>,
    stack: &mut BTreeSet<String>,
) -> Value {
    match schema {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                let name = reference.trim_start_matches("#/definitions/");
                if name == "io.k8s.apimachinery.pkg.api.resource.Quantity" {
                    return json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
                }
                if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString" {
                    return json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
                }
                let Some(target) = definitions.get(name) else { return json!({}) };
                if !stack.insert(name.to_owned()) {
                    return json!({});
                }
                let inlined = standalone(target, definitions, stack);
                stack.remove(name);
                return inlined;
            }
            if object.get("format").and_then(Value::as_str) == Some("int-or-string")
                || object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            {
                return json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
            }
            let mut out = Map::new();
            for (key, value) in object {
                // Vendor extensions and the GVK list are not JSON Schema.
                if key.starts_with("x-kubernetes-") {
                    continue;
                }
                let value = match key.as_str() {
                    "properties" | "patternProperties" | "definitions" => match value {
                        Value::Object(members) => Value::Object(
                            members
                                .iter()
                                .map(|(k, v)| (k.clone(), standalone(v, definitions, stack)))
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    "enum" | "required" | "example" | "default" => value.clone(),
                    _ => standalone(value, definitions, stack),
                };
                out.insert(key.clone(), value);
            }
            let has_properties = out.get("properties").is_some_and(|p| p.as_object().is_some());
            let open =
                object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if has_properties && !open && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            // Optional fields may be written as null (`annotations:` with nothing after it).
            if let Some(Value::String(kind)) = out.get("type").cloned() {
                out.insert("type".into(), json!([kind, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| standalone(v, definitions, stack)).collect())
        }
        other => other.clone(),
    }
}

/// What kubeconform said about a rendered chart.
#[derive(Debug)]
pub struct Validation {
    /// Whether every resource was valid.
    pub valid: bool,
    /// kubeconform's output (one line per resource, then the summary).
    pub output: String,
}

/// Validates `rendered` with `kubeconform -strict` against the schemas in `schemas`; a kind with
/// no schema is an error, not a skip.
pub fn kubeconform(
    tools: &ChartTools,
    schemas: &Path,
    rendered: &str,
) -> anyhow::Result<Validation> {
    let file = schemas.join("rendered.yaml");
    fs::write(&file, rendered)?;
    let output = Command::new(&tools.kubeconform)
        .args(["-strict", "-summary", "-verbose", "-schema-location"])
        .arg(schema_location(schemas))
        .arg(&file)
        .output()
        .context("running kubeconform")?;
    Ok(Validation {
        valid: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// Server-side applies every object (`dry_run`: nothing stored) with strict field validation, so
/// the API server refuses an unknown or duplicated field; returns each object's refusal.
pub async fn apply_all(
    client: &Client,
    objects: &[Value],
    dry_run: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut refusals = BTreeMap::new();
    for object in objects {
        let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
        let types = dynamic.types.clone().context("object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let name = dynamic.metadata.name.clone().context("object without a name")?;
        let label = format!("{} {name}", types.kind);
        let (resource, capabilities) = match discovery::pinned_kind(client, &gvk).await {
            Ok(found) => found,
            Err(e) => {
                refusals.insert(label, format!("the API server does not serve this kind: {e}"));
                continue;
            }
        };
        let api: Api<DynamicObject> = match (&capabilities.scope, &dynamic.metadata.namespace) {
            (discovery::Scope::Namespaced, Some(namespace)) => {
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            (discovery::Scope::Namespaced, None) => {
                refusals.insert(label, "a namespaced object without metadata.namespace".into());
                continue;
            }
            (discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        let mut params = PatchParams::apply("chaperone-chart-test").force();
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        params.dry_run = dry_run;
        if let Err(e) = api.patch(&name, &params, &Patch::Apply(object)).await {
            refusals.insert(label, e.to_string());
        }
    }
    Ok(refusals)
}

/// The rules of the operator's ClusterRole as the chart renders them (release `chaperone`).
pub fn operator_cluster_role_rules(tools: &ChartTools) -> anyhow::Result<Value> {
    let rendered = match render(tools, "chaperone", "chaperone-system", &[])? {
        Ok(rendered) => rendered,
        Err(failure) => bail!("helm template failed: {}", failure.stderr),
    };
    let objects = objects(&rendered)?;
    let role = find(&objects, "ClusterRole", "chaperone-operator")
        .context("the chart renders no ClusterRole chaperone-operator")?;
    Ok(role["rules"].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_inlined_strictly_and_recursion_stops() {
        let definitions = json!({
            "a.Thing": {
                "type": "object",
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Thing"}],
                "properties": {
                    "child": {"$ref": "#/definitions/a.Child"},
                    "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
                    "self": {"$ref": "#/definitions/a.Thing"}
                }
            },
            "a.Child": {"type": "object", "properties": {"name": {"type": "string"}}}
        });
        let dir = std::env::temp_dir().join(format!("chaperone-schemas-{}", std::process::id()));
        let written =
            write_kubeconform_schemas(&json!({"definitions": definitions}), &dir).unwrap();
        assert_eq!(written, 1);
        let schema: Value =
            serde_json::from_slice(&fs::read(dir.join("v1/thing-v1.json")).unwrap()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["child"]["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["child"]["properties"]["name"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(schema["properties"]["port"]["oneOf"][1]["type"], "integer");
        assert_eq!(schema["properties"]["self"], json!({}));
        assert!(schema.get("x-kubernetes-group-version-kind").is_none());
        fs::remove_dir_all(dir).unwrap();
    }
}
