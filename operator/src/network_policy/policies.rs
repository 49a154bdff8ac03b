//! The namespace's NetworkPolicies as apply manifests, from its live AgentConnections.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chaperone_crds::{AgentConnection, EgressMode};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::gateway::objects::{ADMIN_PORT, AGENTS_PORT, GATEWAY_NAME, Manifest, metadata};
use crate::webhooks::pod::CONNECTION_LABEL;

/// The longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;
/// Name of the policy on the gateway's pods (ingress).
pub const GATEWAY_POLICY_NAME: &str = GATEWAY_NAME;
/// Prefix of each connection's egress policy: `chaperone-agents-<connection>`.
pub const AGENT_POLICY_PREFIX: &str = "chaperone-agents-";
/// The cloud metadata and pod-identity endpoints no agent pod may reach: EC2 instance metadata
/// (IPv4 and IPv6), the ECS task credentials endpoint and the EKS Pod Identity agent (IPv4 and
/// IPv6).
pub const METADATA_ENDPOINTS: [&str; 5] = [
    "169.254.169.254/32",
    "169.254.170.2/32",
    "169.254.170.23/32",
    "fd00:ec2::254/128",
    "fd00:ec2::23/128",
];
/// Namespace of the cluster DNS that `GatewayOnly` pods may query.
pub const DNS_NAMESPACE: &str = "kube-system";
/// Label of the cluster DNS pods (CoreDNS and kube-dns both carry it).
pub const DNS_POD_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace's policies and what in the connections' specs could not be honoured.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkPolicies {
    /// The manifests to apply, the gateway's first.
    pub manifests: Vec<Manifest>,
    /// What could not be honoured, each for one connection (the policies are stricter for it).
    pub ignored: Vec<Ignored>,
}

/// Something of a connection the policies could not honour, as an event says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// The connection's name.
    pub connection: String,
    /// The event's reason: `EgressEntryIgnored` or `ConnectionNameTooLong`.
    pub reason: &'static str,
    /// The event's note, a sentence naming the object or field and what to do.
    pub message: String,
}

/// Name of `connection`'s egress policy.
pub fn agent_policy_name(connection: &str) -> String {
    format!("{AGENT_POLICY_PREFIX}{connection}")
}

/// Renders the policies of `namespace` for its live connections (sorted by name) owned by
/// `owners` (every live connection: the gateway's policy is shared); each connection's egress
/// policy is owned by that connection alone, so it goes with it.
pub fn network_policies(
    namespace: &str,
    live: &[AgentConnection],
    owners: &[OwnerReference],
    metrics_namespace: Option<&str>,
) -> NetworkPolicies {
    let mut ignored = Vec::new();
    // A label value has at most 63 characters: a longer connection name labels no pod, and would
    // make the API server refuse the selectors naming it.
    let (live, unlabelable): (Vec<&AgentConnection>, Vec<&AgentConnection>) =
        live.iter().partition(|c| c.name_any().len() <= MAX_LABEL_VALUE);
    for connection in unlabelable {
        ignored.push(Ignored {
            connection: connection.name_any(),
            reason: "ConnectionNameTooLong",
            message: format!(
                "AgentConnection {namespace}/{}: the name is longer than {MAX_LABEL_VALUE} characters, so no pod can carry it as the label {CONNECTION_LABEL}: the connection gets no NetworkPolicy and no pod reaches the gateway through it; recreate it with a shorter name.",
                connection.name_any()
            ),
        });
    }
    let names: Vec<String> = live.iter().map(|c| c.name_any()).collect();
    let mut manifests = vec![gateway_policy(namespace, &names, owners, metrics_namespace)];
    for connection in live {
        let name = connection.name_any();
        let own: Vec<OwnerReference> = owners.iter().filter(|o| o.name == name).cloned().collect();
        let (manifest, problems) = agent_policy(namespace, connection, &own);
        manifests.push(manifest);
        ignored.extend(problems.into_iter().map(|problem| Ignored {
            connection: name.clone(),
            reason: "EgressEntryIgnored",
            message: format!("NetworkPolicy {namespace}/{}: {problem}.", agent_policy_name(&name)),
        }));
    }
    NetworkPolicies { manifests, ignored }
}

/// The managed policies (of `existing`) that `wanted` no longer names.
pub fn stale(existing: &[String], wanted: &[Manifest]) -> Vec<String> {
    existing.iter().filter(|name| !wanted.iter().any(|m| &m.name == *name)).cloned().collect()
}

fn tcp(port: i32) -> Value {
    json!({"protocol": "TCP", "port": port})
}

fn gateway_pods() -> Value {
    json!({"matchLabels": {"app.kubernetes.io/name": GATEWAY_NAME}})
}

/// The gateway's pods accept agents' calls only from the pods of the namespace's connections,
/// and their admin port (metrics) only from `metrics_namespace`.
fn gateway_policy(
    namespace: &str,
    connections: &[String],
    owners: &[OwnerReference],
    metrics_namespace: Option<&str>,
) -> Manifest {
    let mut ingress = vec![json!({
        "from": [{"podSelector": {"matchExpressions": [{
            "key": CONNECTION_LABEL,
            "operator": "In",
            "values": connections,
        }]}}],
        "ports": [tcp(AGENTS_PORT)],
    })];
    if let Some(metrics) = metrics_namespace {
        ingress.push(json!({
            "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: metrics}}}],
            "ports": [tcp(ADMIN_PORT)],
        }));
    }
    Manifest::new::<NetworkPolicy>(
        GATEWAY_POLICY_NAME,
        Some(namespace),
        metadata(GATEWAY_POLICY_NAME, namespace, owners),
        json!({"spec": {
            "podSelector": gateway_pods(),
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        }}),
    )
}

/// The egress of `connection`'s pods, and the `spec.network` entries left out.
fn agent_policy(
    namespace: &str,
    connection: &AgentConnection,
    owners: &[OwnerReference],
) -> (Manifest, Vec<String>) {
    let name = connection.name_any();
    let network = &connection.spec.network;
    let mut problems = Vec::new();
    let egress = match network.egress {
        EgressMode::MetadataDenied => {
            vec![json!({"to": [ip_block(&ANY_V4), ip_block(&ANY_V6)]})]
        }
        EgressMode::GatewayOnly => {
            let mut rules = vec![
                json!({"to": [{"podSelector": gateway_pods()}], "ports": [tcp(AGENTS_PORT)]}),
                json!({
                    "to": [{
                        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}},
                        "podSelector": {"matchLabels": {DNS_POD_LABEL.0: DNS_POD_LABEL.1}},
                    }],
                    "ports": [{"protocol": "UDP", "port": 53}, tcp(53)],
                }),
            ];
            let mut blocks = Vec::new();
            for text in &network.allowed_egress_cidrs {
                match parse_cidr(text) {
                    None => problems.push(format!(
                        "spec.network.allowedEgressCidrs entry {text:?} is not a CIDR (e.g. 10.20.0.0/16); it was left out"
                    )),
                    Some(cidr) if METADATA_ENDPOINTS.iter().filter_map(|m| parse_cidr(m)).any(|m| cidr.within(&m)) => {
                        problems.push(format!(
                            "spec.network.allowedEgressCidrs entry {text:?} is a cloud metadata or pod-identity endpoint, which agent pods may never reach; it was left out"
                        ))
                    }
                    Some(cidr) => blocks.push(ip_block(&cidr)),
                }
            }
            if !blocks.is_empty() {
                rules.push(json!({"to": blocks}));
            }
            rules
        }
    };
    let policy_name = agent_policy_name(&name);
    let manifest = Manifest::new::<NetworkPolicy>(
        &policy_name,
        Some(namespace),
        metadata(&policy_name, namespace, owners),
        json!({"spec": {
            "podSelector": {"matchLabels": {CONNECTION_LABEL: name}},
            "policyTypes": ["Egress"],
            "egress": egress,
        }}),
    );
    (manifest, problems)
}

/// An `ipBlock` of `cidr` (normalized) excepting every metadata endpoint inside it.
fn ip_block(cidr: &Cidr) -> Value {
    let except: Vec<String> = METADATA_ENDPOINTS
        .iter()
        .filter_map(|m| parse_cidr(m))
        .filter(|m| m.within(cidr) && m.prefix > cidr.prefix)
        .map(|m| m.to_string())
        .collect();
    if except.is_empty() {
        json!({"ipBlock": {"cidr": cidr.to_string()}})
    } else {
        json!({"ipBlock": {"cidr": cidr.to_string(), "except": except}})
    }
}

/// Every IPv4 address.
pub const ANY_V4: Cidr = Cidr { address: IpAddr::V4(Ipv4Addr::UNSPECIFIED), prefix: 0 };
/// Every IPv6 address.
pub const ANY_V6: Cidr = Cidr { address: IpAddr::V6(Ipv6Addr::UNSPECIFIED), prefix: 0 };

/// An IP network: its first address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network's address, host bits cleared.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `address` is inside this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                mask_v4(u32::from(a), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                mask_v6(u128::from(a), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Whether this network lies inside `other`.
    pub fn within(&self, other: &Cidr) -> bool {
        self.prefix >= other.prefix && other.contains(self.address)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix))) }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix))) }
}

/// Parses `address/prefix` (IPv4 or IPv6), clearing host bits; `None` when it is not one.
pub fn parse_cidr(text: &str) -> Option<Cidr> {
    let (address, prefix) = text.trim().split_once('/')?;
    let prefix: u8 = prefix.parse().ok()?;
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) if prefix <= 32 => Some(Cidr {
            address: IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(a), prefix))),
            prefix,
        }),
        IpAddr::V6(a) if prefix <= 128 => Some(Cidr {
            address: IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(a), prefix))),
            prefix,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(name: &str, uid: &str, network: Value) -> AgentConnection {
        serde_json::from_value(json!({
            "apiVersion": "chaperone.dev/v1alpha1",
            "kind": "AgentConnection",
            "metadata": {"name": name, "namespace": "agents", "uid": uid},
            "spec": {
                "agents": {"serviceAccounts": ["pr-bot"]},
                "aws": {"region": "us-east-1", "credentials": {"secretRef": {"name": "aws-prod"}}},
                "recordingPolicyRef": {"name": "default"},
                "network": network,
            },
        }))
        .unwrap()
    }

    #[test]
    fn cidrs_are_normalized_and_refused_when_malformed() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("fd00:ec2::254/128").unwrap().to_string(), "fd00:ec2::254/128");
        assert_eq!(parse_cidr("2001:db8::1/32").unwrap().to_string(), "2001:db8::/32");
        for bad in ["10.0.0.0", "10.0.0.0/33", "::/129", "example.com/8", "10.0.0.0/-1"] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
        let metadata = parse_cidr("169.254.169.254/32").unwrap();
        assert!(metadata.within(&parse_cidr("169.254.0.0/16").unwrap()));
        assert!(!metadata.within(&parse_cidr("::/0").unwrap()));
    }

    #[test]
    fn every_policy_is_a_network_policy_and_each_connection_owns_its_own_egress() {
        let connections =
            [live("a", "ua", json!({})), live("b", "ub", json!({"egress": "GatewayOnly"}))];
        let owners = crate::gateway::controller::owner_references(&connections);
        let rendered = network_policies("agents", &connections, &owners, None);
        assert!(rendered.ignored.is_empty());
        let names: Vec<&str> = rendered.manifests.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["chaperone-gateway", "chaperone-agents-a", "chaperone-agents-b"]);
        for manifest in &rendered.manifests {
            let _: NetworkPolicy = serde_json::from_value(manifest.body.clone()).unwrap();
        }
        assert_eq!(rendered.manifests[0].body["metadata"]["ownerReferences"][1]["name"], "b");
        let own = &rendered.manifests[2].body["metadata"]["ownerReferences"];
        assert_eq!(own.as_array().map(Vec::len), Some(1));
        assert_eq!(own[0]["uid"], "ub");
        // No metrics namespace: the admin port is open to no pod.
        assert_eq!(rendered.manifests[0].body["spec"]["ingress"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn listed_cidrs_except_the_metadata_endpoints_inside_them_and_an_endpoint_itself_is_left_out() {
        let connection = live(
            "a",
            "ua",
            json!({"egress": "GatewayOnly", "allowedEgressCidrs": ["0.0.0.0/0", "fd00:ec2::/32", "169.254.170.2/32", "10.0.0.0/8"]}),
        );
        let rendered = network_policies("agents", &[connection], &[], None);
        assert_eq!(rendered.ignored.len(), 1, "{:?}", rendered.ignored);
        let ignored = &rendered.ignored[0];
        assert_eq!(ignored.reason, "EgressEntryIgnored");
        assert!(
            ignored.message.starts_with("NetworkPolicy agents/chaperone-agents-a: spec.network.allowedEgressCidrs entry \"169.254.170.2/32\""),
            "{}",
            ignored.message
        );
        let blocks = &rendered.manifests[1].body["spec"]["egress"][2]["to"];
        assert_eq!(
            blocks[0]["ipBlock"],
            json!({"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "169.254.170.2/32", "169.254.170.23/32"]})
        );
        assert_eq!(
            blocks[1]["ipBlock"],
            json!({"cidr": "fd00:ec2::/32", "except": ["fd00:ec2::254/128", "fd00:ec2::23/128"]})
        );
        assert_eq!(blocks[2]["ipBlock"], json!({"cidr": "10.0.0.0/8"}));
    }

    #[test]
    fn a_connection_name_too_long_for_a_label_gets_no_policy_and_says_why() {
        let long = "a".repeat(64);
        let rendered = network_policies(
            "agents",
            &[live("short", "u1", json!({})), live(&long, "u2", json!({}))],
            &[],
            None,
        );
        let names: Vec<&str> = rendered.manifests.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["chaperone-gateway", "chaperone-agents-short"]);
        let values = &rendered.manifests[0].body["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
            [0]["values"];
        assert_eq!(values, &json!(["short"]));
        assert_eq!(rendered.ignored.len(), 1);
        assert_eq!(rendered.ignored[0].connection, long);
        assert_eq!(rendered.ignored[0].reason, "ConnectionNameTooLong");
        assert!(rendered.ignored[0].message.contains("longer than 63 characters"));
    }

    #[test]
    fn stale_names_the_managed_policies_no_connection_wants() {
        let rendered = network_policies("agents", &[live("a", "ua", json!({}))], &[], None);
        let existing =
            ["chaperone-gateway", "chaperone-agents-a", "chaperone-agents-gone"].map(String::from);
        assert_eq!(stale(&existing, &rendered.manifests), ["chaperone-agents-gone"]);
        assert_eq!(stale(&existing, &[]).len(), 3);
    }
}
