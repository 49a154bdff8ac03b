//! The operator under the RBAC the Helm chart grants it (not as a cluster admin): it builds
//! and tears down a gateway, and without one of those permissions it says what failed.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use chaperone_crds::AgentConnection;
use chaperone_operator::{
    Context, GatewaySettings, OperatorMetrics, gateway::controller, gateway::issuer_discovery,
    gateway::objects::GATEWAY_NAME,
};
use chaperone_tests::{
    LocalEnv,
    env::install_crds,
    objects::{create_in, ensure_namespace, example},
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    authorization::v1::SubjectAccessReview,
    core::v1::Secret,
    events::v1::Event,
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

fn env() -> &'static LocalEnv {
    chaperone_operator::runtime::tls::install_crypto_provider();
    LocalEnv::shared()
}

/// The operator's ClusterRole as the Helm chart renders it (its Role for leases aside), minus
/// the rules on `without`: the chart is what users install, so it is what must suffice.
fn operator_rules(without: Option<&str>) -> Value {
    let tools = chaperone_tests::provision::ensure_chart_tools().expect("helm is provisioned");
    let rendered =
        chaperone_tests::chart::operator_cluster_role_rules(&tools).expect("the chart renders");
    let rules = rendered.as_array().cloned().expect("the ClusterRole has rules");
    Value::Array(
        rules
            .into_iter()
            .filter(|r| {
                without.is_none_or(|resource| {
                    !r["resources"].as_array().is_some_and(|rs| rs.iter().any(|x| x == resource))
                })
            })
            .collect(),
    )
}

/// A client authenticated as `user`, bound to the operator's ClusterRole (minus `without`).
async fn operator_client(admin: &Client, user: &str, without: Option<&str>) -> Client {
    let role: ClusterRole = serde_json::from_value(
        json!({"metadata": {"name": user}, "rules": operator_rules(without)}),
    )
    .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    let params = PatchParams::apply("chaperone-tests").force();
    Api::<ClusterRole>::all(admin.clone())
        .patch(user, &params, &Patch::Apply(&role))
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .patch(user, &params, &Patch::Apply(&binding))
        .await
        .unwrap();
    env().control_plane.client_as(user, &[]).await.unwrap()
}

fn settings() -> GatewaySettings {
    GatewaySettings {
        image: "example.com/chaperone-gateway:test".into(),
        replicas: 1,
        issuer: env().control_plane.issuer().to_owned(),
        jwks_uri: format!("{}/openid/v1/jwks", env().control_plane.url()),
        session_key_rotation: Duration::from_secs(7 * 24 * 3600),
        spool_mib: 1024,
        image_pull_secrets: Vec::new(),
        pod: Default::default(),
        metrics_namespace: None,
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

async fn namespace_with_examples(admin: &Client, ns: &str) {
    ensure_namespace(admin, ns).await.unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-prod"},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIAPERMISSIONS", "AWS_SECRET_ACCESS_KEY": "secret"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    for file in ["recordingpolicy", "approvalrule", "agentconnection"] {
        create_in(admin, ns, &example(file).unwrap()).await.unwrap().unwrap();
    }
}

/// The gateways' shared issuer-discovery binding, as the chart installs it (the operator only
/// edits its subjects).
async fn install_chart_binding(admin: &Client) {
    match Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &issuer_discovery::binding())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating the chart's binding: {e}"),
    }
}

fn start(client: Client, ns: &str) -> tokio::task::JoinHandle<()> {
    let context = Arc::new(Context::new(client, settings(), Arc::new(OperatorMetrics::new())));
    tokio::spawn(controller::run(context, Some(ns.to_owned()), std::future::pending()))
}

#[tokio::test]
async fn the_operator_builds_and_tears_down_a_gateway_with_only_its_documented_permissions() {
    let _logs = env().logs_on_failure();
    let admin = env().control_plane.client().await.unwrap();
    install_crds(&admin).await.unwrap();
    let ns = "operator-least-privilege";
    namespace_with_examples(&admin, ns).await;
    let client = operator_client(&admin, "chaperone-operator-documented", None).await;
    install_chart_binding(&admin).await;
    let operator = start(client, ns);

    let connections = Api::<AgentConnection>::namespaced(admin.clone(), ns);
    eventually("prod-aws resolved with an endpoint", || async {
        let status = connections.get("prod-aws").await.ok()?.status?;
        let resolved = status
            .conditions
            .iter()
            .any(|c| c.type_ == "CredentialsResolved" && c.status == "True");
        (resolved && status.endpoint.is_some()).then_some(())
    })
    .await;
    assert!(
        Api::<Deployment>::namespaced(admin.clone(), ns)
            .get_opt(GATEWAY_NAME)
            .await
            .unwrap()
            .is_some()
    );
    let bindings = Api::<ClusterRoleBinding>::all(admin.clone());
    let bound = || async {
        let binding = bindings.get(issuer_discovery::BINDING_NAME).await.unwrap();
        binding.subjects.unwrap_or_default().contains(&issuer_discovery::subject(ns))
    };
    assert!(bound().await, "the gateway's ServiceAccount is a subject of the shared binding");

    connections.delete("prod-aws", &DeleteParams::default()).await.unwrap();
    eventually("the gateway torn down", || async {
        let gone = connections.get_opt("prod-aws").await.ok()?.is_none() && !bound().await;
        gone.then_some(())
    })
    .await;
    operator.abort();

    // What the documented rules do not allow: deleting or creating ClusterRoleBindings, changing
    // another one, deleting a Secret other than the gateway's own.
    let user = "chaperone-operator-documented";
    for (verb, resource, group, name, namespace) in [
        ("delete", "clusterrolebindings", "rbac.authorization.k8s.io", Some("cluster-admin"), None),
        ("create", "clusterrolebindings", "rbac.authorization.k8s.io", None, None),
        ("update", "clusterrolebindings", "rbac.authorization.k8s.io", Some("cluster-admin"), None),
        ("delete", "secrets", "", Some("aws-prod"), Some(ns)),
        ("patch", "secrets", "", Some("aws-prod"), Some(ns)),
    ] {
        let review: SubjectAccessReview = serde_json::from_value(json!({
            "spec": {"user": user, "resourceAttributes": {
                "verb": verb, "resource": resource, "group": group, "name": name, "namespace": namespace,
            }},
        }))
        .unwrap();
        let answer = Api::<SubjectAccessReview>::all(admin.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap();
        assert!(
            !answer.status.is_some_and(|s| s.allowed),
            "the operator's rules allow {verb} {resource} {name:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_permission_becomes_a_reconcile_failed_event_naming_what_failed() {
    let _logs = env().logs_on_failure();
    let admin = env().control_plane.client().await.unwrap();
    install_crds(&admin).await.unwrap();
    let ns = "operator-missing-permission";
    namespace_with_examples(&admin, ns).await;
    let client =
        operator_client(&admin, "chaperone-operator-no-pdb", Some("poddisruptionbudgets")).await;
    install_chart_binding(&admin).await;
    let operator = start(client, ns);

    let events = Api::<Event>::namespaced(admin.clone(), ns);
    let note = eventually("a ReconcileFailed event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("ReconcileFailed"))
            .filter_map(|e| e.note)
            .find(|note| note.contains("PodDisruptionBudget"))
    })
    .await;
    assert!(note.contains("PodDisruptionBudget"), "{note}");
    assert!(note.contains("forbidden"), "{note}");
    operator.abort();
}
