//! A small NetworkPolicy evaluator, the test oracle for what the operator's policies mean where
//! no CNI runs: Kubernetes semantics over the `networking.k8s.io/v1` objects as stored.
//!
//! - A pod is isolated for a direction when any policy of its namespace selects it
//!   (`podSelector`) with that direction in `policyTypes` (absent: `Ingress`, plus `Egress` when
//!   the policy has egress rules). A pod no policy isolates allows everything that way.
//! - An isolated pod allows a connection when any rule of any selecting policy allows it: a rule
//!   allows when one of its peers matches (no peers: every peer) and one of its ports matches
//!   (no ports: every port).
//! - Peers: `podSelector` alone selects pods of the policy's namespace, `namespaceSelector`
//!   alone every pod of the selected namespaces, both together the selected pods of the selected
//!   namespaces; `ipBlock` matches addresses in `cidr` and outside every `except` (applied to pod
//!   addresses too, which the API leaves to the CNI).
//! - A connection needs the source's egress and the destination's ingress.
//!
//! Named ports are not resolved (no container ports here): a rule naming one matches nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One end of a connection: a pod (namespace, labels, address) or an address outside the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A pod.
    Pod {
        /// Its namespace.
        namespace: String,
        /// Its labels.
        labels: BTreeMap<String, String>,
        /// Its address.
        ip: IpAddr,
    },
    /// An address that is no pod's.
    External(IpAddr),
}

impl Peer {
    /// A pod of `namespace` with `labels` (`key=value` pairs) at `ip`.
    pub fn pod(namespace: &str, labels: &[(&str, &str)], ip: &str) -> Self {
        Peer::Pod {
            namespace: namespace.to_owned(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ip: ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        }
    }

    /// An address outside the cluster.
    pub fn external(ip: &str) -> Self {
        Peer::External(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }

    fn ip(&self) -> IpAddr {
        match self {
            Peer::Pod { ip, .. } | Peer::External(ip) => *ip,
        }
    }
}

/// The policies of a cluster and its namespaces' labels.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Every NetworkPolicy.
    pub policies: Vec<NetworkPolicy>,
    /// Each namespace's labels (the API server gives every one `kubernetes.io/metadata.name`).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// A connection's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// One rule's peers and ports.
type Rule<'a> = (Option<&'a Vec<NetworkPolicyPeer>>, Option<&'a Vec<NetworkPolicyPort>>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Cluster {
    /// The policies in `policies`, namespaces labelled as the API server labels them (with their
    /// own name) plus `extra` labels.
    pub fn new(policies: Vec<NetworkPolicy>, namespaces: &[&str]) -> Self {
        let namespaces = namespaces
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), (*n).to_owned())]),
                )
            })
            .collect();
        Self { policies, namespaces }
    }

    /// Whether `from` may open a `protocol` connection to `to` on `port`.
    pub fn allows(&self, from: &Peer, to: &Peer, port: u16, protocol: Protocol) -> bool {
        let egress = match from {
            Peer::Pod { .. } => self.direction_allows(Direction::Egress, from, to, port, protocol),
            Peer::External(_) => true,
        };
        let ingress = match to {
            Peer::Pod { .. } => self.direction_allows(Direction::Ingress, to, from, port, protocol),
            Peer::External(_) => true,
        };
        egress && ingress
    }

    /// Whether `subject`'s policies of `direction` let it talk with `other` on `port`.
    fn direction_allows(
        &self,
        direction: Direction,
        subject: &Peer,
        other: &Peer,
        port: u16,
        protocol: Protocol,
    ) -> bool {
        let Peer::Pod { namespace, labels, .. } = subject else { return true };
        let selecting: Vec<&NetworkPolicy> = self
            .policies
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .filter(|p| {
                let Some(spec) = &p.spec else { return false };
                selects(&spec.pod_selector.clone().unwrap_or_default(), labels)
                    && policy_types(p).contains(&direction)
            })
            .collect();
        if selecting.is_empty() {
            return true;
        }
        selecting.iter().any(|policy| {
            let Some(spec) = &policy.spec else { return false };
            let rules: Vec<Rule<'_>> = match direction {
                Direction::Ingress => spec
                    .ingress
                    .iter()
                    .flatten()
                    .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                    .collect(),
                Direction::Egress => spec
                    .egress
                    .iter()
                    .flatten()
                    .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                    .collect(),
            };
            rules.into_iter().any(|(peers, ports)| {
                let peer_ok = match peers {
                    None => true,
                    Some(peers) if peers.is_empty() => true,
                    Some(peers) => peers.iter().any(|p| self.peer_matches(p, namespace, other)),
                };
                let port_ok = match ports {
                    None => true,
                    Some(ports) if ports.is_empty() => true,
                    Some(ports) => ports.iter().any(|p| port_matches(p, port, protocol)),
                };
                peer_ok && port_ok
            })
        })
    }

    fn peer_matches(&self, rule: &NetworkPolicyPeer, policy_namespace: &str, other: &Peer) -> bool {
        if let Some(block) = &rule.ip_block {
            let ip = other.ip();
            return cidr_contains(&block.cidr, ip)
                && !block.except.iter().flatten().any(|e| cidr_contains(e, ip));
        }
        let Peer::Pod { namespace, labels, .. } = other else { return false };
        let namespace_ok = match &rule.namespace_selector {
            None => namespace == policy_namespace,
            Some(selector) => self
                .namespaces
                .get(namespace)
                .is_some_and(|namespace_labels| selects(selector, namespace_labels)),
        };
        let pod_ok = rule.pod_selector.as_ref().is_none_or(|s| selects(s, labels));
        (rule.namespace_selector.is_some() || rule.pod_selector.is_some()) && namespace_ok && pod_ok
    }
}

fn policy_types(policy: &NetworkPolicy) -> Vec<Direction> {
    let Some(spec) = &policy.spec else { return Vec::new() };
    match &spec.policy_types {
        Some(types) => types
            .iter()
            .filter_map(|t| match t.as_str() {
                "Ingress" => Some(Direction::Ingress),
                "Egress" => Some(Direction::Egress),
                _ => None,
            })
            .collect(),
        None => {
            let mut types = vec![Direction::Ingress];
            if spec.egress.is_some() {
                types.push(Direction::Egress);
            }
            types
        }
    }
}

/// Whether `selector` selects an object with `labels` (an empty selector selects everything).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

fn port_matches(rule: &NetworkPolicyPort, port: u16, protocol: Protocol) -> bool {
    if rule.protocol.as_deref().unwrap_or("TCP") != protocol.name() {
        return false;
    }
    match &rule.port {
        None => true,
        Some(IntOrString::Int(first)) => {
            let last = rule.end_port.unwrap_or(*first);
            (*first..=last).contains(&i32::from(port))
        }
        Some(IntOrString::String(_)) => false,
    }
}

/// Whether `cidr` (`address/prefix`) contains `ip`; a malformed CIDR contains nothing.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((network, prefix)) = cidr.split_once('/') else { return false };
    let (Ok(network), Ok(prefix)) = (network.parse::<IpAddr>(), prefix.parse::<u32>()) else {
        return false;
    };
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if prefix <= 32 => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if prefix <= 128 => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(namespace: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": namespace},
            "spec": spec,
        }))
        .expect("a NetworkPolicy")
    }

    #[test]
    fn an_unselected_pod_allows_everything_and_a_selected_one_only_what_a_rule_allows() {
        let web = Peer::pod("a", &[("app", "web")], "10.0.0.1");
        let db = Peer::pod("a", &[("app", "db")], "10.0.0.2");
        let other = Peer::pod("b", &[("app", "web")], "10.0.1.1");
        let open = Cluster::new(Vec::new(), &["a", "b"]);
        assert!(open.allows(&web, &db, 5432, Protocol::Tcp));
        let cluster = Cluster::new(
            vec![policy(
                "a",
                json!({
                    "podSelector": {"matchLabels": {"app": "db"}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                 "ports": [{"port": 5432}]}],
                }),
            )],
            &["a", "b"],
        );
        assert!(cluster.allows(&web, &db, 5432, Protocol::Tcp));
        assert!(!cluster.allows(&web, &db, 5433, Protocol::Tcp), "another port");
        assert!(!cluster.allows(&web, &db, 5432, Protocol::Udp), "another protocol");
        assert!(
            !cluster.allows(&other, &db, 5432, Protocol::Tcp),
            "a podSelector alone is same-namespace"
        );
        assert!(
            cluster.allows(&db, &web, 80, Protocol::Tcp),
            "egress is not isolated by an ingress policy"
        );
    }

    #[test]
    fn ip_blocks_honour_except_and_namespace_selectors_combine_with_pod_selectors() {
        let pod = Peer::pod("a", &[("app", "x")], "10.0.0.1");
        let cluster = Cluster::new(
            vec![policy(
                "a",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]},
                        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                         "ports": [{"protocol": "UDP", "port": 53}]},
                    ],
                }),
            )],
            &["a", "kube-system"],
        );
        assert!(cluster.allows(&pod, &Peer::external("52.1.2.3"), 443, Protocol::Tcp));
        assert!(!cluster.allows(&pod, &Peer::external("169.254.169.254"), 80, Protocol::Tcp));
        assert!(
            !cluster.allows(&pod, &Peer::external("fd00:ec2::254"), 80, Protocol::Tcp),
            "no IPv6 rule"
        );
        let dns = Peer::pod("kube-system", &[("k8s-app", "kube-dns")], "fd00::53");
        let not_dns = Peer::pod("kube-system", &[("k8s-app", "other")], "fd00::54");
        assert!(cluster.allows(&pod, &dns, 53, Protocol::Udp));
        assert!(!cluster.allows(&pod, &not_dns, 53, Protocol::Udp));
    }

    #[test]
    fn cidrs_contain_by_prefix_in_their_own_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains("10.0.0.0/8", ip("10.255.0.1")));
        assert!(!cidr_contains("10.0.0.0/8", ip("11.0.0.1")));
        assert!(cidr_contains("::/0", ip("fd00:ec2::23")));
        assert!(!cidr_contains("0.0.0.0/0", ip("fd00:ec2::23")));
        assert!(cidr_contains("fd00:ec2::254/128", ip("fd00:ec2::254")));
        assert!(!cidr_contains("not-a-cidr", ip("10.0.0.1")));
    }
}
