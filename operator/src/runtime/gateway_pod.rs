//! Where gateway pods run and what they may use: the chart's `gateway.resources`,
//! `gateway.nodeSelector`, `gateway.tolerations`, `gateway.affinity`,
//! `gateway.topologySpreadConstraints` and `gateway.priorityClassName`, carried to the operator as
//! one JSON object (`--gateway-pod`, or `CHAPERONE_GATEWAY_POD`) and checked at start.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The keys [`GatewayPodSettings::from_json`] accepts, as the chart's `gateway.*` values name them.
pub const GATEWAY_POD_KEYS: [&str; 6] = [
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
];

/// The gateway pods' scheduling and resources. Unset parts leave the Deployment's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayPodSettings {
    /// The gateway container's requests and limits; `None` keeps the built-in ones.
    pub resources: Option<ResourceRequirements>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    pub priority_class_name: Option<String>,
}

impl GatewayPodSettings {
    /// Parses and checks the JSON object the chart renders from its `gateway.*` values. Every
    /// refusal names the value (`gateway.<key>...`) and what is wrong with it.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("--gateway-pod is not JSON ({e}): give a JSON object"))?;
        let Value::Object(object) = value else {
            return Err("--gateway-pod is not a JSON object: give {\"resources\": ..., ...}".into());
        };
        let mut settings = Self::default();
        for (key, value) in object {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "resources" => {
                    let value = quantities_as_strings(value);
                    let resources: ResourceRequirements = parse_value(&key, value)?;
                    check_quantities(&resources)?;
                    settings.resources = Some(resources);
                }
                "nodeSelector" => settings.node_selector = parse_value(&key, value)?,
                "tolerations" => settings.tolerations = parse_value(&key, value)?,
                "affinity" => {
                    let affinity: Affinity = parse_value(&key, value)?;
                    settings.affinity = (affinity != Affinity::default()).then_some(affinity);
                }
                "topologySpreadConstraints" => {
                    settings.topology_spread_constraints = parse_value(&key, value)?;
                }
                "priorityClassName" => {
                    let name: String = parse_value(&key, value)?;
                    if !name.is_empty() {
                        if !super::settings::is_dns_subdomain(&name) {
                            return Err(format!(
                                "gateway.priorityClassName {name:?} is not a PriorityClass name \
                                 (lowercase letters, digits, '-' and '.', at most 253)"
                            ));
                        }
                        settings.priority_class_name = Some(name);
                    }
                }
                other => {
                    return Err(format!(
                        "gateway.{other} is not a gateway pod setting: use one of {}",
                        GATEWAY_POD_KEYS.join(", ")
                    ));
                }
            }
        }
        Ok(settings)
    }
}

/// Deserializes `value` as the type of `gateway.<key>`, and refuses fields the type does not have
/// (Kubernetes' types drop them silently, so a misspelt `nodeAffinty` would vanish).
fn parse_value<T: DeserializeOwned + serde::Serialize>(
    key: &str,
    value: Value,
) -> Result<T, String> {
    let parsed: T = serde_json::from_value(value.clone())
        .map_err(|e| format!("gateway.{key} is not valid: {e}"))?;
    let round_trip = serde_json::to_value(&parsed)
        .map_err(|e| format!("gateway.{key} cannot be rendered: {e}"))?;
    if let Some(path) = first_dropped_field(&value, &round_trip, &format!("gateway.{key}")) {
        return Err(format!(
            "{path} is not a field Kubernetes knows there: check its spelling and place"
        ));
    }
    Ok(parsed)
}

/// The first path present (and not null) in `given` but missing from `kept`.
fn first_dropped_field(given: &Value, kept: &Value, path: &str) -> Option<String> {
    match (given, kept) {
        (Value::Object(given), Value::Object(kept)) => given.iter().find_map(|(k, v)| {
            let inner = format!("{path}.{k}");
            match kept.get(k) {
                None if !v.is_null() && !is_empty_container(v) => Some(inner),
                None => None,
                Some(kept) => first_dropped_field(v, kept, &inner),
            }
        }),
        (Value::Array(given), Value::Array(kept)) => given
            .iter()
            .zip(kept)
            .enumerate()
            .find_map(|(i, (g, k))| first_dropped_field(g, k, &format!("{path}[{i}]"))),
        _ => None,
    }
}

fn is_empty_container(value: &Value) -> bool {
    matches!(value, Value::Object(m) if m.is_empty())
        || matches!(value, Value::Array(a) if a.is_empty())
}

/// YAML `cpu: 1` reaches the JSON as a number; a Kubernetes quantity is a string.
fn quantities_as_strings(mut value: Value) -> Value {
    for part in ["requests", "limits"] {
        if let Some(Value::Object(quantities)) = value.get_mut(part) {
            let converted: Map<String, Value> = std::mem::take(quantities)
                .into_iter()
                .map(|(name, q)| match q {
                    Value::Number(n) => (name, Value::String(n.to_string())),
                    other => (name, other),
                })
                .collect();
            *quantities = converted;
        }
    }
    value
}

fn check_quantities(resources: &ResourceRequirements) -> Result<(), String> {
    for (part, quantities) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        for (name, quantity) in quantities.iter().flatten() {
            if !is_quantity(&quantity.0) {
                return Err(format!(
                    "gateway.resources.{part}.{name} {:?} is not a Kubernetes quantity \
                     (e.g. 100m, 0.5, 256Mi, 1G)",
                    quantity.0
                ));
            }
        }
    }
    Ok(())
}

/// Whether `text` is a Kubernetes quantity: a decimal number and an optional binary (Ki..Ei),
/// decimal (n, u, m, k, M..E) or exponent (e3, E-2) suffix.
pub fn is_quantity(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    let valid_number = !number.is_empty() && number != "." && number.matches('.').count() <= 1;
    let valid_suffix = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        exponent => exponent
            .strip_prefix(['e', 'E'])
            .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
            .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())),
    };
    valid_number && valid_suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_parsed_and_numbers_become_quantities() {
        let settings = GatewayPodSettings::from_json(
            r#"{"resources": {"requests": {"cpu": 1, "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "agents", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["agents"]}]}]}}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "chaperone-gateway"}}}],
                "priorityClassName": "agents-high"}"#,
        )
        .unwrap();
        let resources = settings.resources.unwrap();
        assert_eq!(resources.requests.unwrap()["cpu"].0, "1");
        assert_eq!(settings.node_selector["kubernetes.io/os"], "linux");
        assert_eq!(settings.tolerations[0].key.as_deref(), Some("dedicated"));
        assert!(settings.affinity.unwrap().node_affinity.is_some());
        assert_eq!(settings.topology_spread_constraints[0].max_skew, 1);
        assert_eq!(settings.priority_class_name.as_deref(), Some("agents-high"));
    }

    #[test]
    fn empty_values_leave_the_defaults() {
        let settings = GatewayPodSettings::from_json(
            r#"{"nodeSelector": {}, "tolerations": [], "affinity": {}, "topologySpreadConstraints": [], "priorityClassName": ""}"#,
        )
        .unwrap();
        assert_eq!(settings, GatewayPodSettings::default());
    }

    #[test]
    fn refusals_name_the_value_to_fix() {
        for (json, expected) in [
            (r#"{"resource": {}}"#, "gateway.resource is not a gateway pod setting"),
            (
                r#"{"affinity": {"nodeAffinty": {"x": 1}}}"#,
                "gateway.affinity.nodeAffinty is not a field Kubernetes knows there",
            ),
            (
                r#"{"tolerations": [{"key": "a", "efect": "NoSchedule"}]}"#,
                "gateway.tolerations[0].efect is not a field",
            ),
            (r#"{"tolerations": {"key": "a"}}"#, "gateway.tolerations is not valid"),
            (
                r#"{"resources": {"limits": {"memory": "lots"}}}"#,
                "gateway.resources.limits.memory \"lots\" is not a Kubernetes quantity",
            ),
            (r#"{"priorityClassName": "High"}"#, "gateway.priorityClassName \"High\" is not"),
            (r#"[]"#, "--gateway-pod is not a JSON object"),
            (r#"{"#, "--gateway-pod is not JSON"),
        ] {
            let refused = GatewayPodSettings::from_json(json).unwrap_err();
            assert!(refused.contains(expected), "{json}: {refused}");
        }
    }

    #[test]
    fn quantities_follow_the_kubernetes_grammar() {
        for good in ["1", "100m", "0.5", ".5", "256Mi", "1G", "1e3", "2E-2", "+1"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "m", "1.2.3", "1MB", "1e", "lots", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
