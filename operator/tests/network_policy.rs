//! The operator's NetworkPolicies against the real API server: reconciled with the gateway of
//! the namespace, owned by the connections, updated and removed with them; and what they mean,
//! read back from the API server and evaluated (no CNI runs here) by the test support's
//! NetworkPolicy evaluator over a table of (pod, destination) → allowed or denied.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use chaperone_crds::AgentConnection;
use chaperone_operator::{
    Context, GatewaySettings, OperatorMetrics,
    gateway::controller,
    network_policy::policies::{GATEWAY_POLICY_NAME, agent_policy_name},
};
use chaperone_tests::{
    LocalEnv,
    env::install_crds,
    network_policy::{Cluster, Peer, Protocol},
    objects::{create_in, ensure_namespace, example, set},
};
use k8s_openapi::api::{core::v1::Secret, events::v1::Event, networking::v1::NetworkPolicy};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle};

const METRICS_NAMESPACE: &str = "monitoring";

fn env() -> &'static LocalEnv {
    chaperone_operator::runtime::tls::install_crypto_provider();
    LocalEnv::shared()
}

async fn admin_client() -> Client {
    let client = env().control_plane.client().await.expect("admin client");
    install_crds(&client).await.expect("CRDs install and become Established");
    client
}

fn settings() -> GatewaySettings {
    let env = env();
    GatewaySettings {
        image: "example.com/chaperone-gateway:test".into(),
        replicas: 1,
        issuer: env.control_plane.issuer().to_owned(),
        jwks_uri: format!("{}/openid/v1/jwks", env.control_plane.url()),
        session_key_rotation: Duration::from_secs(7 * 24 * 3600),
        spool_mib: 1024,
        image_pull_secrets: Vec::new(),
        metrics_namespace: Some(METRICS_NAMESPACE.into()),
        pod: Default::default(),
    }
}

/// The AgentConnection controller running in-process, limited to one namespace.
struct RunningOperator {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningOperator {
    fn start(client: &Client, namespace: &str) -> Self {
        let context =
            Arc::new(Context::new(client.clone(), settings(), Arc::new(OperatorMetrics::new())));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(context, Some(namespace.to_owned()), async move {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after 60 s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The connection `name` (the example's spec) with `network` as its `spec.network`.
fn connection(name: &str, network: serde_json::Value) -> serde_json::Value {
    let mut connection = example("agentconnection").expect("example");
    set(&mut connection, "/metadata/name", json!(name));
    set(&mut connection, "/spec/network", network);
    connection
}

async fn namespace_with_connections(client: &Client, namespace: &str) {
    ensure_namespace(client, namespace).await.expect("namespace");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-prod"},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIANETPOLTEST000001", "AWS_SECRET_ACCESS_KEY": "s"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
    create_in(client, namespace, &example("recordingpolicy").expect("example"))
        .await
        .expect("create")
        .expect("recording policy accepted");
    for object in [
        connection("prod-aws", json!({})),
        connection(
            "sandbox",
            json!({
                "egress": "GatewayOnly",
                "allowedEgressCidrs": ["10.20.0.0/16", "169.254.0.0/16", "169.254.169.254/32"],
            }),
        ),
    ] {
        create_in(client, namespace, &object).await.expect("create").expect("connection accepted");
    }
}

/// The namespace's NetworkPolicies once `names` (exactly) exist.
async fn policies_named(client: &Client, namespace: &str, names: &[String]) -> Vec<NetworkPolicy> {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("NetworkPolicies {names:?} in {namespace}"), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let mut found: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
        found.sort();
        let mut wanted = names.to_vec();
        wanted.sort();
        (found == wanted).then_some(list.items)
    })
    .await
}

fn owners(policy: &NetworkPolicy) -> Vec<String> {
    policy.owner_references().iter().map(|o| format!("{}/{}", o.kind, o.name)).collect()
}

/// The pods and addresses the table speaks of.
struct Actors {
    prod: Peer,
    sandbox: Peer,
    unlabelled: Peer,
    prod_elsewhere: Peer,
    gateway: Peer,
    dns: Peer,
    prometheus: Peer,
}

fn actors(ns: &str) -> Actors {
    Actors {
        prod: Peer::pod(
            ns,
            &[("chaperone.dev/connection", "prod-aws"), ("app", "bot")],
            "10.0.0.10",
        ),
        sandbox: Peer::pod(ns, &[("chaperone.dev/connection", "sandbox")], "10.0.0.11"),
        unlabelled: Peer::pod(ns, &[("app", "bot")], "10.0.0.12"),
        prod_elsewhere: Peer::pod(
            "elsewhere",
            &[("chaperone.dev/connection", "prod-aws")],
            "10.0.1.10",
        ),
        gateway: Peer::pod(
            ns,
            &[
                ("app.kubernetes.io/name", "chaperone-gateway"),
                ("app.kubernetes.io/managed-by", "chaperone-operator"),
            ],
            "10.0.0.2",
        ),
        dns: Peer::pod("kube-system", &[("k8s-app", "kube-dns")], "10.96.0.10"),
        prometheus: Peer::pod(METRICS_NAMESPACE, &[("app", "prometheus")], "10.0.2.2"),
    }
}

/// Checks each `(from, to, port, protocol, allowed)` row, reporting every mismatch at once.
fn check_table(cluster: &Cluster, rows: &[(&str, &Peer, &Peer, u16, Protocol, bool)]) {
    let wrong: Vec<String> = rows
        .iter()
        .filter(|(_, from, to, port, protocol, allowed)| {
            cluster.allows(from, to, *port, *protocol) != *allowed
        })
        .map(|(what, _, _, _, _, allowed)| {
            format!("{what}: expected {}", if *allowed { "allowed" } else { "denied" })
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\npolicies: {:#?}", cluster.policies);
}

#[tokio::test]
async fn the_policies_keep_agents_on_the_gateway_and_off_the_metadata_endpoints_and_follow_their_connections()
 {
    use Protocol::{Tcp, Udp};
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "netpol-agents";
    namespace_with_connections(&client, ns).await;
    let operator = RunningOperator::start(&client, ns);

    let all = [
        GATEWAY_POLICY_NAME.to_owned(),
        agent_policy_name("prod-aws"),
        agent_policy_name("sandbox"),
    ];
    let policies = policies_named(&client, ns, &all).await;
    let by_name = |name: &str| policies.iter().find(|p| p.name_any() == name).expect(name).clone();
    assert_eq!(
        owners(&by_name(GATEWAY_POLICY_NAME)),
        ["AgentConnection/prod-aws", "AgentConnection/sandbox"]
    );
    assert_eq!(owners(&by_name(&agent_policy_name("prod-aws"))), ["AgentConnection/prod-aws"]);
    assert_eq!(owners(&by_name(&agent_policy_name("sandbox"))), ["AgentConnection/sandbox"]);

    // The metadata endpoint listed exactly is left out, with a Warning event naming the field.
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let ignored = eventually("the EgressEntryIgnored event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("EgressEntryIgnored"))
    })
    .await;
    let note = ignored.note.unwrap_or_default();
    assert!(
        note.contains("spec.network.allowedEgressCidrs entry \"169.254.169.254/32\""),
        "{note}"
    );
    assert_eq!(ignored.regarding.and_then(|r| r.name).as_deref(), Some("sandbox"));

    let a = actors(ns);
    let cluster = Cluster::new(policies, &[ns, "elsewhere", "kube-system", METRICS_NAMESPACE]);
    let metadata = [
        Peer::external("169.254.169.254"),
        Peer::external("169.254.170.2"),
        Peer::external("169.254.170.23"),
        Peer::external("fd00:ec2::254"),
        Peer::external("fd00:ec2::23"),
    ];
    let aws = Peer::external("52.94.0.1");
    let listed = Peer::external("10.20.3.4");
    let link_local = Peer::external("169.254.1.1");
    let mut rows = vec![
        ("prod-aws agent → gateway agents' port", &a.prod, &a.gateway, 8080, Tcp, true),
        ("sandbox agent → gateway agents' port", &a.sandbox, &a.gateway, 8080, Tcp, true),
        ("unlabelled pod → gateway agents' port", &a.unlabelled, &a.gateway, 8080, Tcp, false),
        (
            "labelled pod of another namespace → gateway",
            &a.prod_elsewhere,
            &a.gateway,
            8080,
            Tcp,
            false,
        ),
        ("agent → gateway admin port", &a.prod, &a.gateway, 9090, Tcp, false),
        ("metrics namespace → gateway admin port", &a.prometheus, &a.gateway, 9090, Tcp, true),
        ("metrics namespace → gateway agents' port", &a.prometheus, &a.gateway, 8080, Tcp, false),
        ("prod-aws agent (MetadataDenied) → AWS directly", &a.prod, &aws, 443, Tcp, true),
        ("prod-aws agent → cluster DNS", &a.prod, &a.dns, 53, Udp, true),
        ("sandbox agent (GatewayOnly) → AWS directly", &a.sandbox, &aws, 443, Tcp, false),
        ("sandbox agent → cluster DNS over UDP", &a.sandbox, &a.dns, 53, Udp, true),
        ("sandbox agent → cluster DNS over TCP", &a.sandbox, &a.dns, 53, Tcp, true),
        ("sandbox agent → DNS pod on another port", &a.sandbox, &a.dns, 8080, Tcp, false),
        ("sandbox agent → gateway admin port", &a.sandbox, &a.gateway, 9090, Tcp, false),
        ("sandbox agent → listed CIDR", &a.sandbox, &listed, 5432, Tcp, true),
        ("sandbox agent → listed link-local CIDR", &a.sandbox, &link_local, 80, Tcp, true),
        ("sandbox agent → unlabelled pod", &a.sandbox, &a.unlabelled, 80, Tcp, false),
        ("gateway → AWS (its egress is not restricted)", &a.gateway, &aws, 443, Tcp, true),
        ("unlabelled pod → metadata (not an agent)", &a.unlabelled, &metadata[0], 80, Tcp, true),
    ];
    for endpoint in &metadata {
        rows.push(("prod-aws agent → a metadata endpoint", &a.prod, endpoint, 80, Tcp, false));
        rows.push(("sandbox agent → a metadata endpoint", &a.sandbox, endpoint, 80, Tcp, false));
    }
    check_table(&cluster, &rows);

    // Updated with the connection: sandbox drops GatewayOnly.
    let connections: Api<AgentConnection> = Api::namespaced(client.clone(), ns);
    connections
        .patch(
            "sandbox",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"network": {"egress": "MetadataDenied", "allowedEgressCidrs": null}}})),
        )
        .await
        .expect("patch");
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let sandbox_policy = eventually("sandbox's egress policy to open up", || async {
        let policy = api.get(&agent_policy_name("sandbox")).await.ok()?;
        let cluster = Cluster::new(vec![policy.clone()], &[ns]);
        cluster.allows(&a.sandbox, &aws, 443, Tcp).then_some(policy)
    })
    .await;
    let cluster = Cluster::new(vec![sandbox_policy], &[ns]);
    for endpoint in &metadata {
        assert!(!cluster.allows(&a.sandbox, endpoint, 80, Tcp), "{endpoint:?}");
    }

    // Removed with the connection: sandbox's policy goes, and the gateway no longer admits it.
    connections.delete("sandbox", &DeleteParams::default()).await.expect("delete");
    let left = [GATEWAY_POLICY_NAME.to_owned(), agent_policy_name("prod-aws")];
    let policies = policies_named(&client, ns, &left).await;
    let cluster = Cluster::new(policies, &[ns]);
    assert!(!cluster.allows(&a.sandbox, &a.gateway, 8080, Tcp));
    assert!(cluster.allows(&a.prod, &a.gateway, 8080, Tcp));

    // The last connection takes every policy with the gateway.
    connections.delete("prod-aws", &DeleteParams::default()).await.expect("delete");
    policies_named(&client, ns, &[]).await;
    operator.stop().await;
}
