//! One environment per test run: a test binary attaches to an environment another process runs
//! from its description alone (client certificates its CA signs are accepted, moto's users are
//! handed on), and attaching removes what an earlier test binary left behind while keeping
//! namespaces, CRDs and the API server's own RBAC.
//!
//! A test binary of its own, with one test: the reset it exercises deletes objects cluster-wide.

use chaperone_tests::{
    LocalEnv,
    env::install_crds,
    objects::{create_in, ensure_namespace, example, set},
};
use k8s_openapi::{
    api::{
        admissionregistration::v1::MutatingWebhookConfiguration,
        core::v1::{ConfigMap, Namespace},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, PostParams},
};
use serde_json::json;

const NAMESPACE: &str = "shared-env-leftovers";

#[tokio::test]
async fn an_attached_test_binary_uses_the_environment_and_meets_no_leftovers() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.expect("admin client");
    install_crds(&admin).await.expect("CRDs install");

    // What an earlier test binary could leave: a namespaced object, a custom resource an operator
    // holds with a finalizer, a webhook pointing at a server that is gone, a cluster-wide binding.
    ensure_namespace(&admin, NAMESPACE).await.expect("namespace");
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "left-behind"}})).unwrap();
    config_maps.create(&PostParams::default(), &config_map).await.expect("ConfigMap");
    let mut connection = example("agentconnection").expect("example");
    set(&mut connection, "/metadata/finalizers", json!(["chaperone.dev/test-holds-it"]));
    create_in(&admin, NAMESPACE, &connection).await.expect("request").expect("AgentConnection");
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let webhook: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": "shared-env-gone-server"},
        "webhooks": [{
            "name": "gone.shared-env.chaperone.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "clientConfig": {"url": "https://127.0.0.1:1/gone"},
            "rules": [{"apiGroups": ["chaperone.dev"], "apiVersions": ["*"],
                       "operations": ["CREATE"], "resources": ["approvalrequests"]}],
        }],
    }))
    .unwrap();
    webhooks.create(&PostParams::default(), &webhook).await.expect("webhook configuration");
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "shared-env-left-behind"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}],
    }))
    .unwrap();
    bindings.create(&PostParams::default(), &binding).await.expect("ClusterRoleBinding");

    let description = env.dir().join("shared-environment-test.json");
    env.describe().write(&description).expect("description written");
    let attached = LocalEnv::attach(&description).await.expect("attaches");
    let _attached_logs = attached.logs_on_failure();

    assert!(config_maps.get_opt("left-behind").await.unwrap().is_none(), "ConfigMap left");
    let connections: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        NAMESPACE,
        &ApiResource::erase::<chaperone_crds::AgentConnection>(&()),
    );
    assert!(connections.get_opt("prod-aws").await.unwrap().is_none(), "AgentConnection left");
    assert!(webhooks.get_opt("shared-env-gone-server").await.unwrap().is_none(), "webhook left");
    assert!(bindings.get_opt("shared-env-left-behind").await.unwrap().is_none(), "binding left");
    // Kept: the namespace (it could not be made again), the API server's RBAC, the CRDs.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    assert!(namespaces.get_opt(NAMESPACE).await.unwrap().is_some(), "namespace deleted");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    assert!(roles.get_opt("view").await.unwrap().is_some(), "bootstrap ClusterRole deleted");
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    assert!(crds.get_opt("agentconnections.chaperone.dev").await.unwrap().is_some(), "CRD deleted");

    // The attached process mints client certificates from the description's CA: the API server
    // authenticates them (403 for a user without rights, not 401).
    let alice = attached.control_plane.client_as("alice", &["team"]).await.expect("client");
    match Api::<ConfigMap>::namespaced(alice, NAMESPACE).list(&Default::default()).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403, "{e:?}");
            assert!(e.message.contains("\"alice\""), "{}", e.message);
        }
        other => panic!("alice should be authenticated and refused: {other:?}"),
    }
    // moto's users come with the description, and they work.
    assert_eq!(attached.moto.endpoint(), env.moto.endpoint());
    let user = &attached.moto.gateway_user;
    let output = attached
        .moto
        .python_command()
        .args([
            "-c",
            "import sys,boto3\nboto3.client('sts',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id=sys.argv[2],aws_secret_access_key=sys.argv[3]).get_caller_identity()",
            attached.moto.endpoint(),
            &user.access_key_id,
            &user.secret_access_key,
        ])
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        attached.dir().starts_with(attached.control_plane.dir()),
        "a folder in the run directory"
    );
}
