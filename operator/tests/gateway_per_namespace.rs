//! The AgentConnection controller against the real API server: the examples become a gateway,
//! changes re-render it, problems become conditions that say what to create, and the last
//! connection's deletion tears it down. No kubelet runs here, so the tests assert on objects.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use chaperone_config::{GatewayConfig, GatewayKeys, KeysFile};
use chaperone_crds::{AgentConnection, ApprovalRule, FailureMode, RecordingPolicy};
use chaperone_operator::{
    Context, GatewaySettings, OperatorMetrics,
    gateway::controller::{self, FINALIZER},
    gateway::issuer_discovery,
    gateway::keys::{ROTATE_RECORDING_KEY_ANNOTATION, ROTATE_SESSION_KEY_ANNOTATION},
    gateway::objects::{
        CA_CONFIG_MAP_NAME, CONFIG_SECRET_KEY, CONFIG_SECRET_NAME, GATEWAY_NAME, KEYS_SECRET_KEY,
        KEYS_SECRET_NAME, TLS_SECRET_NAME, gateway_label_selector,
    },
    runtime::gateway_pod::GatewayPodSettings,
};
use chaperone_tests::{
    LocalEnv, chart,
    env::install_crds,
    objects::{create_in, ensure_namespace, example, set},
    provision::ensure_chart_tools,
};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        events::v1::Event,
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle};

const ACCESS_KEY_ID: &str = "AKIAOPERATORTEST0001";
const SECRET_ACCESS_KEY: &str = "operator-test-secret-access-key";

/// The shared local environment (the TLS provider is chosen before its first client is built).
fn env() -> &'static LocalEnv {
    chaperone_operator::runtime::tls::install_crypto_provider();
    LocalEnv::shared()
}

/// Verifies `cert_pem` as a TLS client would for `name`, trusting only `ca_pem`.
fn verify_serving_certificate(ca_pem: &str, cert_pem: &[u8], name: &str) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let cert = CertificateDer::from_pem_slice(cert_pem).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    verifier
        .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn admin_client() -> Client {
    let env = env();
    let client = env.control_plane.client().await.expect("admin client");
    install_crds(&client).await.expect("CRDs install and become Established");
    client
}

fn settings() -> GatewaySettings {
    let env = env();
    GatewaySettings {
        image: "example.com/chaperone-gateway:test".into(),
        replicas: 2,
        issuer: env.control_plane.issuer().to_owned(),
        jwks_uri: format!("{}/openid/v1/jwks", env.control_plane.url()),
        session_key_rotation: Duration::from_secs(7 * 24 * 3600),
        spool_mib: 1024,
        image_pull_secrets: Vec::new(),
        pod: Default::default(),
        metrics_namespace: None,
    }
}

/// The operator's controller running in-process, limited to one namespace.
struct RunningOperator {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    context: Arc<Context>,
}

impl RunningOperator {
    fn start(client: &Client, namespace: &str) -> Self {
        Self::start_with(client, namespace, settings())
    }

    fn start_with(client: &Client, namespace: &str, settings: GatewaySettings) -> Self {
        let context =
            Arc::new(Context::new(client.clone(), settings, Arc::new(OperatorMetrics::new())));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            context.clone(),
            Some(namespace.to_owned()),
            async move {
                let _ = stopped.await;
            },
        ));
        Self { stop, task, context }
    }

    /// Graceful stop: running reconciles finish.
    async fn stop(self) -> Arc<Context> {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        self.context
    }

    /// Abrupt stop, as a crash or a SIGKILL: whatever was in flight is cut off.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
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

async fn create_example(client: &Client, namespace: &str, file: &str) {
    create_in(client, namespace, &example(file).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("examples/{file}.yaml refused: {e}"));
}

async fn create_aws_secret(client: &Client, namespace: &str, data: serde_json::Value) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-prod"},
        "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn full_credentials() -> serde_json::Value {
    json!({"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY})
}

/// A namespace with the examples (recording policy, approval rule, connection) and, when asked,
/// the aws-prod Secret.
async fn namespace_with_examples(client: &Client, namespace: &str, with_secret: bool) {
    ensure_namespace(client, namespace).await.unwrap();
    if with_secret {
        create_aws_secret(client, namespace, full_credentials()).await;
    }
    create_example(client, namespace, "recordingpolicy").await;
    create_example(client, namespace, "approvalrule").await;
    create_example(client, namespace, "agentconnection").await;
}

fn connections(client: &Client, namespace: &str) -> Api<AgentConnection> {
    Api::namespaced(client.clone(), namespace)
}

fn condition(connection: &AgentConnection, type_: &str) -> Option<Condition> {
    connection.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).cloned()
}

/// Waits until prod-aws's status describes its current generation with `type_` at `status`.
async fn wait_for_condition(
    client: &Client,
    namespace: &str,
    type_: &str,
    status: &str,
) -> Condition {
    let api = connections(client, namespace);
    eventually(&format!("{type_}={status} on {namespace}/prod-aws"), || async {
        let connection = api.get("prod-aws").await.ok()?;
        let observed = connection.status.as_ref()?.observed_generation;
        let found = condition(&connection, type_)?;
        (observed == connection.metadata.generation && found.status == status).then_some(found)
    })
    .await
}

async fn config_of(client: &Client, namespace: &str) -> Option<GatewayConfig> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(CONFIG_SECRET_NAME)
        .await
        .ok()??;
    let bytes = secret.data?.get(CONFIG_SECRET_KEY)?.0.clone();
    let config =
        GatewayConfig::parse(std::str::from_utf8(&bytes).expect("gateway.yaml is UTF-8")).unwrap();
    Some(config)
}

/// Every gateway object of the namespace as `(kind/name, resourceVersion)`.
async fn gateway_versions(client: &Client, namespace: &str) -> Vec<(String, String)> {
    async fn version<K>(api: Api<K>, name: &str) -> (String, String)
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let object = api.get(name).await.unwrap_or_else(|e| panic!("{} {name}: {e}", K::kind(&())));
        (format!("{}/{name}", K::kind(&())), object.resource_version().unwrap_or_default())
    }
    let c = client.clone();
    vec![
        version(Api::<Deployment>::namespaced(c.clone(), namespace), GATEWAY_NAME).await,
        version(Api::<Service>::namespaced(c.clone(), namespace), GATEWAY_NAME).await,
        version(Api::<ServiceAccount>::namespaced(c.clone(), namespace), GATEWAY_NAME).await,
        version(Api::<Role>::namespaced(c.clone(), namespace), GATEWAY_NAME).await,
        version(Api::<RoleBinding>::namespaced(c.clone(), namespace), GATEWAY_NAME).await,
        version(Api::<PodDisruptionBudget>::namespaced(c.clone(), namespace), GATEWAY_NAME).await,
        version(Api::<Secret>::namespaced(c.clone(), namespace), CONFIG_SECRET_NAME).await,
        version(Api::<Secret>::namespaced(c.clone(), namespace), KEYS_SECRET_NAME).await,
        version(Api::<AgentConnection>::namespaced(c, namespace), "prod-aws").await,
    ]
}

fn assert_gateway_labels(kind: &str, labels: &std::collections::BTreeMap<String, String>) {
    assert_eq!(
        labels.get("app.kubernetes.io/name").map(String::as_str),
        Some("chaperone-gateway"),
        "{kind} labels: {labels:?}"
    );
    assert_eq!(
        labels.get("app.kubernetes.io/managed-by").map(String::as_str),
        Some("chaperone-operator"),
        "{kind} labels: {labels:?}"
    );
}

#[tokio::test]
async fn applying_the_examples_produces_the_labelled_gateway_objects_and_a_config_with_the_resolved_keys()
 {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-examples";
    namespace_with_examples(&client, ns, true).await;
    let operator = RunningOperator::start(&client, ns);
    wait_for_condition(&client, ns, "CredentialsResolved", "True").await;
    wait_for_condition(&client, ns, "RecordingPolicyReady", "True").await;

    let c = client.clone();
    let deployment = Api::<Deployment>::namespaced(c.clone(), ns).get(GATEWAY_NAME).await.unwrap();
    assert_gateway_labels("Deployment", deployment.labels());
    let pod = deployment.spec.clone().unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(GATEWAY_NAME));
    assert_eq!(pod.containers[0].image.as_deref(), Some("example.com/chaperone-gateway:test"));
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));

    let service = Api::<Service>::namespaced(c.clone(), ns).get(GATEWAY_NAME).await.unwrap();
    assert_gateway_labels("Service", service.labels());
    let spec = service.spec.unwrap();
    assert_eq!(spec.session_affinity.as_deref(), Some("ClientIP"));
    assert_eq!(spec.ports.unwrap()[0].port, 8080);
    let cluster_ip = spec.cluster_ip.expect("the API server allocates a cluster IP");

    let sa = Api::<ServiceAccount>::namespaced(c.clone(), ns).get(GATEWAY_NAME).await.unwrap();
    assert_gateway_labels("ServiceAccount", sa.labels());
    let role = Api::<Role>::namespaced(c.clone(), ns).get(GATEWAY_NAME).await.unwrap();
    assert_gateway_labels("Role", role.labels());
    let binding = Api::<RoleBinding>::namespaced(c.clone(), ns).get(GATEWAY_NAME).await.unwrap();
    assert_gateway_labels("RoleBinding", binding.labels());
    assert_eq!(binding.role_ref.name, GATEWAY_NAME);
    let pdb =
        Api::<PodDisruptionBudget>::namespaced(c.clone(), ns).get(GATEWAY_NAME).await.unwrap();
    assert_gateway_labels("PodDisruptionBudget", pdb.labels());
    let discovery = Api::<ClusterRoleBinding>::all(c.clone())
        .get(issuer_discovery::BINDING_NAME)
        .await
        .unwrap();
    assert_gateway_labels("ClusterRoleBinding", discovery.labels());
    assert_eq!(discovery.role_ref.name, "system:service-account-issuer-discovery");
    assert!(discovery.subjects.unwrap_or_default().contains(&issuer_discovery::subject(ns)));

    let secrets = Api::<Secret>::namespaced(c.clone(), ns);
    let config_secret = secrets.get(CONFIG_SECRET_NAME).await.unwrap();
    assert_gateway_labels("config Secret", config_secret.labels());
    let config = config_of(&client, ns).await.expect("gateway.yaml");
    config.validate().unwrap();
    assert_eq!(config.namespace, ns);
    assert_eq!(config.identity.issuer, env().control_plane.issuer());
    let prod = config.connection("prod-aws").expect("prod-aws is compiled");
    assert_eq!(prod.upstream.access_key_id.as_deref(), Some(ACCESS_KEY_ID));
    assert_eq!(
        prod.upstream.secret_access_key.as_deref().map(String::as_str),
        Some(SECRET_ACCESS_KEY)
    );
    assert_eq!(prod.service_accounts, ["pr-bot"]);
    assert!(prod.policy.deny.contains(&"iam:*".to_owned()));
    assert!(config.recording_policies.contains_key("default"));
    assert!(config.approval_rules.contains_key("bucket-deletion"));

    let keys_secret = secrets.get(KEYS_SECRET_NAME).await.unwrap();
    assert_gateway_labels("keys Secret", keys_secret.labels());
    let keys = keys_secret.data.unwrap()[KEYS_SECRET_KEY].0.clone();
    GatewayKeys::parse(&keys).expect("the keys Secret is a valid gateway keys file");

    // TLS: the namespace's CA and a serving certificate that verifies for the Service's IP and
    // every DNS name of it (and no other), the CA published to agents, the serving pair mounted.
    let tls_secret = secrets.get(TLS_SECRET_NAME).await.unwrap();
    assert_gateway_labels("TLS Secret", tls_secret.labels());
    let tls_data = tls_secret.data.clone().unwrap();
    let ca_pem = String::from_utf8(tls_data["ca.crt"].0.clone()).unwrap();
    let cert_pem = tls_data["tls.crt"].0.clone();
    let ca_map = Api::<ConfigMap>::namespaced(c.clone(), ns).get(CA_CONFIG_MAP_NAME).await.unwrap();
    assert_gateway_labels("CA ConfigMap", ca_map.labels());
    assert_eq!(ca_map.data.unwrap()["ca.crt"], ca_pem, "agents get the Secret's CA");
    assert!(ca_pem.contains("BEGIN CERTIFICATE"));
    let verifies = |name: &str| verify_serving_certificate(&ca_pem, &cert_pem, name);
    for name in [
        cluster_ip.clone(),
        GATEWAY_NAME.to_owned(),
        format!("{GATEWAY_NAME}.{ns}"),
        format!("{GATEWAY_NAME}.{ns}.svc"),
        format!("{GATEWAY_NAME}.{ns}.svc.cluster.local"),
    ] {
        assert!(verifies(&name).is_ok(), "{name}: {:?}", verifies(&name));
    }
    assert!(verifies(&format!("{GATEWAY_NAME}.other.svc")).is_err());
    let pod_spec = pod.clone();
    let tls_volume = pod_spec.volumes.unwrap().into_iter().find(|v| v.name == "tls").unwrap();
    let items: Vec<String> =
        tls_volume.secret.unwrap().items.unwrap().into_iter().map(|i| i.key).collect();
    assert_eq!(items, ["tls.crt", "tls.key"], "the CA key stays out of the gateway's files");
    let args = pod_spec.containers[0].args.clone().unwrap();
    assert!(args.contains(&"--tls-cert=/etc/chaperone/tls/tls.crt".to_owned()), "{args:?}");

    let connection = connections(&client, ns).get("prod-aws").await.unwrap();
    let status = connection.status.clone().unwrap();
    assert_eq!(status.endpoint.as_deref(), Some(format!("https://{cluster_ip}:8080").as_str()));
    assert_eq!(status.recording_public_keys.len(), 1);
    assert!(connection.finalizers().iter().any(|f| f == FINALIZER));
    let owned_by_prod_aws = |kind: &str, owners: Option<Vec<OwnerReference>>| {
        let owners = owners.unwrap_or_default();
        assert_eq!(owners.len(), 1, "{kind} owners: {owners:?}");
        assert_eq!(Some(&owners[0].uid), connection.uid().as_ref(), "{kind} owner");
        assert_ne!(owners[0].controller, Some(true), "{kind}: no connection is the controller");
    };
    owned_by_prod_aws("Deployment", deployment.metadata.owner_references.clone());
    owned_by_prod_aws("Service", service.metadata.owner_references.clone());
    owned_by_prod_aws("Role", role.metadata.owner_references.clone());
    owned_by_prod_aws("config Secret", config_secret.metadata.owner_references.clone());
    owned_by_prod_aws("keys Secret", keys_secret.metadata.owner_references.clone());
    // No replica can be available without a kubelet: Ready says so instead of pretending.
    let ready = condition(&connection, "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "GatewayUnavailable"));

    let events = Api::<Event>::namespaced(c, ns).list(&ListParams::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| e.reason.as_deref() == Some("GatewayApplied")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("prod-aws")),
        "an event on prod-aws says what was applied: {:?}",
        events.items.iter().map(|e| (&e.reason, &e.note)).collect::<Vec<_>>()
    );
    operator.stop().await;
}

#[tokio::test]
async fn changing_the_connections_policy_its_approval_rule_or_its_recording_policy_changes_the_config_secret()
 {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-policy-change";
    namespace_with_examples(&client, ns, true).await;
    let operator = RunningOperator::start(&client, ns);
    wait_for_condition(&client, ns, "CredentialsResolved", "True").await;
    let before = config_of(&client, ns).await.unwrap();
    assert!(
        !before.connection("prod-aws").unwrap().policy.allow.contains(&"sqs:SendMessage".into())
    );

    connections(&client, ns)
        .patch(
            "prod-aws",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"policy": {"allow": ["s3:GetObject", "sqs:SendMessage"]}}}),
            ),
        )
        .await
        .unwrap();
    let after = eventually("the config Secret to carry the new policy", || async {
        let config = config_of(&client, ns).await?;
        let allow = &config.connection("prod-aws")?.policy.allow;
        (allow == &["s3:GetObject", "sqs:SendMessage"]).then_some(config)
    })
    .await;
    assert_eq!(after.connection("prod-aws").unwrap().policy.deny, ["iam:*", "s3:PutBucketPolicy"]);

    // ApprovalRules and RecordingPolicies are watched too.
    Api::<ApprovalRule>::namespaced(client.clone(), ns)
        .patch(
            "bucket-deletion",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holdSeconds": 30}})),
        )
        .await
        .unwrap();
    Api::<RecordingPolicy>::namespaced(client.clone(), ns)
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"onFailure": "FailOpen"}})),
        )
        .await
        .unwrap();
    eventually("the config Secret to carry the changed rule and policy", || async {
        let config = config_of(&client, ns).await?;
        let hold = config.approval_rules.get("bucket-deletion")?.hold_seconds;
        let mode = config.recording_policies.get("default")?.on_failure;
        (hold == 30 && mode == FailureMode::FailOpen).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn rotations_asked_for_on_the_keys_secret_keep_the_previous_session_key_and_the_old_recording_public_key()
 {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-key-rotation";
    namespace_with_examples(&client, ns, true).await;
    let operator = RunningOperator::start(&client, ns);
    wait_for_condition(&client, ns, "CredentialsResolved", "True").await;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let keys_of = |secret: Secret| -> Option<KeysFile> {
        serde_json::from_slice(&secret.data?.get(KEYS_SECRET_KEY)?.0).ok()
    };
    let before = keys_of(secrets.get(KEYS_SECRET_NAME).await.unwrap()).unwrap();
    assert_eq!(before.session_keys.len(), 1);

    secrets
        .patch(
            KEYS_SECRET_NAME,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {ROTATE_SESSION_KEY_ANNOTATION: "test-1"}}}),
            ),
        )
        .await
        .unwrap();
    let after = eventually("a rotated session key", || async {
        keys_of(secrets.get(KEYS_SECRET_NAME).await.ok()?).filter(|k| k.session_keys.len() == 2)
    })
    .await;
    assert_eq!(after.session_keys[1].id, before.session_keys[0].id, "the old key is now previous");
    assert_eq!(after.session_keys[1].secret, before.session_keys[0].secret);
    assert_ne!(after.session_keys[0].secret, before.session_keys[0].secret);
    assert_eq!(after.recording_signing_key, before.recording_signing_key);
    GatewayKeys::parse(&serde_json::to_vec(&after).unwrap()).unwrap();

    // The recording signing key too, when asked: the old public key stays in the status.
    let connections_api = connections(&client, ns);
    let public_keys_before =
        connections_api.get("prod-aws").await.unwrap().status.unwrap().recording_public_keys;
    assert_eq!(public_keys_before.len(), 1);
    secrets
        .patch(
            KEYS_SECRET_NAME,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {ROTATE_RECORDING_KEY_ANNOTATION: "test-2"}}}),
            ),
        )
        .await
        .unwrap();
    let public_keys = eventually("two recording public keys in the status", || async {
        let status = connections_api.get("prod-aws").await.ok()?.status?;
        (status.recording_public_keys.len() == 2).then_some(status.recording_public_keys)
    })
    .await;
    assert_eq!(
        public_keys[1], public_keys_before[0],
        "the retired key is listed after the new one"
    );
    let after = keys_of(secrets.get(KEYS_SECRET_NAME).await.unwrap()).unwrap();
    assert_ne!(after.recording_signing_key, before.recording_signing_key);
    assert_eq!(after.session_keys.len(), 2, "the session keys are untouched");
    let keys_json = serde_json::to_vec(&after).unwrap();

    // Handled once: further reconciles keep the rotated keys.
    let context = operator.stop().await;
    let connection = connections(&client, ns).get("prod-aws").await.unwrap();
    controller::reconcile(Arc::new(connection), context).await.unwrap();
    let settled = keys_of(secrets.get(KEYS_SECRET_NAME).await.unwrap()).unwrap();
    assert_eq!(serde_json::to_vec(&settled).unwrap(), keys_json);
}

#[tokio::test]
async fn a_second_reconcile_of_an_unchanged_connection_changes_nothing() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-idempotent";
    namespace_with_examples(&client, ns, true).await;
    let operator = RunningOperator::start(&client, ns);
    wait_for_condition(&client, ns, "CredentialsResolved", "True").await;
    let context = operator.stop().await;

    let before = gateway_versions(&client, ns).await;
    let connection = connections(&client, ns).get("prod-aws").await.unwrap();
    controller::reconcile(Arc::new(connection), context.clone()).await.unwrap();
    let after = gateway_versions(&client, ns).await;
    assert_eq!(before, after, "a reconcile of an unchanged connection changed objects");
}

#[tokio::test]
async fn a_missing_credentials_secret_or_key_gives_a_condition_saying_what_to_create() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-missing-secret";
    namespace_with_examples(&client, ns, false).await;
    let operator = RunningOperator::start(&client, ns);

    let missing = wait_for_condition(&client, ns, "CredentialsResolved", "False").await;
    assert_eq!(missing.reason, "SecretNotFound");
    for needed in
        [&format!("{ns}/aws-prod"), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "create"]
    {
        assert!(missing.message.contains(needed), "message lacks {needed}: {}", missing.message);
    }
    let config = config_of(&client, ns).await.expect("the gateway exists, serving nothing");
    assert!(config.connections.is_empty());

    // A Secret with one key only: the condition names the missing one.
    create_aws_secret(&client, ns, json!({"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID})).await;
    let api = connections(&client, ns);
    let key_missing = eventually("CredentialsResolved reason KeyMissing", || async {
        let c = condition(&api.get("prod-aws").await.ok()?, "CredentialsResolved")?;
        (c.reason == "KeyMissing").then_some(c)
    })
    .await;
    assert!(key_missing.message.contains("AWS_SECRET_ACCESS_KEY"), "{}", key_missing.message);
    assert!(key_missing.message.contains("aws-prod"), "{}", key_missing.message);

    // Completing the Secret resolves the connection without touching the AgentConnection.
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            "aws-prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}})),
        )
        .await
        .unwrap();
    wait_for_condition(&client, ns, "CredentialsResolved", "True").await;
    let config = eventually("the connection in the config Secret", || async {
        config_of(&client, ns).await.filter(|c| c.connection("prod-aws").is_some())
    })
    .await;
    assert_eq!(
        config
            .connection("prod-aws")
            .unwrap()
            .upstream
            .secret_access_key
            .as_deref()
            .map(String::as_str),
        Some(SECRET_ACCESS_KEY)
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_missing_recording_policy_gives_a_condition_naming_the_policy_to_create() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-missing-policy";
    ensure_namespace(&client, ns).await.unwrap();
    create_aws_secret(&client, ns, full_credentials()).await;
    create_example(&client, ns, "agentconnection").await;
    let operator = RunningOperator::start(&client, ns);

    let missing = wait_for_condition(&client, ns, "RecordingPolicyReady", "False").await;
    assert_eq!(missing.reason, "RecordingPolicyNotFound");
    assert!(
        missing.message.contains("create a RecordingPolicy named default"),
        "{}",
        missing.message
    );
    let ready = wait_for_condition(&client, ns, "Ready", "False").await;
    assert_eq!(ready.reason, "RecordingPolicyNotReady");

    create_example(&client, ns, "recordingpolicy").await;
    wait_for_condition(&client, ns, "RecordingPolicyReady", "True").await;
    eventually("the connection in the config Secret", || async {
        config_of(&client, ns).await.filter(|c| c.connection("prod-aws").is_some())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn deleting_the_last_connection_removes_the_gateway_objects() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-teardown";
    namespace_with_examples(&client, ns, true).await;
    // A second connection: deleting it alone keeps the gateway.
    let mut second = example("agentconnection").unwrap();
    set(&mut second, "/metadata/name", json!("staging-aws"));
    create_in(&client, ns, &second).await.unwrap().unwrap();
    let operator = RunningOperator::start(&client, ns);
    eventually("both connections in the config", || async {
        config_of(&client, ns).await.filter(|c| c.connections.len() == 2)
    })
    .await;

    let api = connections(&client, ns);
    api.delete("staging-aws", &DeleteParams::default()).await.unwrap();
    eventually("staging-aws gone and out of the config", || async {
        let gone = api.get_opt("staging-aws").await.ok()?.is_none();
        let config = config_of(&client, ns).await?;
        (gone
            && config.connection("staging-aws").is_none()
            && config.connection("prod-aws").is_some())
        .then_some(())
    })
    .await;
    let deployment =
        Api::<Deployment>::namespaced(client.clone(), ns).get(GATEWAY_NAME).await.unwrap();
    let owners: Vec<String> = deployment
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(owners, ["prod-aws"]);

    api.delete("prod-aws", &DeleteParams::default()).await.unwrap();
    eventually("prod-aws gone", || async {
        api.get_opt("prod-aws").await.ok()?.is_none().then_some(())
    })
    .await;
    let c = client.clone();
    let checks: Vec<(&str, bool)> = vec![
        (
            "Deployment",
            Api::<Deployment>::namespaced(c.clone(), ns)
                .get_opt(GATEWAY_NAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "Service",
            Api::<Service>::namespaced(c.clone(), ns)
                .get_opt(GATEWAY_NAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ServiceAccount",
            Api::<ServiceAccount>::namespaced(c.clone(), ns)
                .get_opt(GATEWAY_NAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "Role",
            Api::<Role>::namespaced(c.clone(), ns).get_opt(GATEWAY_NAME).await.unwrap().is_some(),
        ),
        (
            "RoleBinding",
            Api::<RoleBinding>::namespaced(c.clone(), ns)
                .get_opt(GATEWAY_NAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "PodDisruptionBudget",
            Api::<PodDisruptionBudget>::namespaced(c.clone(), ns)
                .get_opt(GATEWAY_NAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "config Secret",
            Api::<Secret>::namespaced(c.clone(), ns)
                .get_opt(CONFIG_SECRET_NAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "keys Secret",
            Api::<Secret>::namespaced(c.clone(), ns)
                .get_opt(KEYS_SECRET_NAME)
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "the gateway's subject in ClusterRoleBinding chaperone-gateways-issuer-discovery",
            Api::<ClusterRoleBinding>::all(c.clone())
                .get_opt(issuer_discovery::BINDING_NAME)
                .await
                .unwrap()
                .and_then(|b| b.subjects)
                .unwrap_or_default()
                .contains(&issuer_discovery::subject(ns)),
        ),
    ];
    let left: Vec<&str> =
        checks.into_iter().filter(|(_, exists)| *exists).map(|(k, _)| k).collect();
    assert!(left.is_empty(), "left behind after the last connection went: {left:?}");
    // The credentials Secret is the user's: it stays.
    assert!(Api::<Secret>::namespaced(c, ns).get_opt("aws-prod").await.unwrap().is_some());
    operator.stop().await;
}

#[tokio::test]
async fn an_operator_killed_midway_and_restarted_converges_without_duplicates_or_new_keys() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-restart";
    namespace_with_examples(&client, ns, true).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);

    let first = RunningOperator::start(&client, ns);
    eventually("the keys Secret", || async { secrets.get_opt(KEYS_SECRET_NAME).await.ok()? }).await;
    first.kill().await;
    let keys_before =
        secrets.get(KEYS_SECRET_NAME).await.unwrap().data.unwrap()[KEYS_SECRET_KEY].clone();

    let second = RunningOperator::start(&client, ns);
    wait_for_condition(&client, ns, "CredentialsResolved", "True").await;
    eventually("the config Secret", || config_of(&client, ns)).await;
    let context = second.stop().await;
    // Converged: one more reconcile changes nothing.
    let before = gateway_versions(&client, ns).await;
    let connection = connections(&client, ns).get("prod-aws").await.unwrap();
    controller::reconcile(Arc::new(connection), context).await.unwrap();
    assert_eq!(before, gateway_versions(&client, ns).await);

    let selector = ListParams::default().labels(&gateway_label_selector());
    let c = client.clone();
    assert_eq!(
        Api::<Deployment>::namespaced(c.clone(), ns).list(&selector).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        Api::<Service>::namespaced(c.clone(), ns).list(&selector).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        Api::<ServiceAccount>::namespaced(c.clone(), ns).list(&selector).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        Api::<Role>::namespaced(c.clone(), ns).list(&selector).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        Api::<RoleBinding>::namespaced(c.clone(), ns).list(&selector).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        Api::<PodDisruptionBudget>::namespaced(c.clone(), ns)
            .list(&selector)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        Api::<Secret>::namespaced(c.clone(), ns).list(&selector).await.unwrap().items.len(),
        3,
        "config, keys and TLS Secrets, once each"
    );
    let subjects = Api::<ClusterRoleBinding>::all(c)
        .get(issuer_discovery::BINDING_NAME)
        .await
        .unwrap()
        .subjects
        .unwrap_or_default();
    let ours = subjects.iter().filter(|s| **s == issuer_discovery::subject(ns)).count();
    assert_eq!(ours, 1, "the gateway is a subject of the shared binding once: {subjects:?}");
    let keys_after =
        secrets.get(KEYS_SECRET_NAME).await.unwrap().data.unwrap()[KEYS_SECRET_KEY].clone();
    assert_eq!(keys_before, keys_after, "a restart must not regenerate the gateway's keys");
}

/// The `CHAPERONE_GATEWAY_POD` value the chart gives the operator for `values`.
fn chart_gateway_pod(values: &[&str]) -> String {
    let tools = ensure_chart_tools().expect("helm is provisioned");
    let rendered = chart::render(&tools, "chaperone", "chaperone-system", values)
        .unwrap()
        .unwrap_or_else(|failure| panic!("helm template failed: {}", failure.stderr));
    let objects = chart::objects(&rendered).unwrap();
    let deployment = chart::find(&objects, "Deployment", "chaperone-operator").unwrap();
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    let variable = env.iter().find(|v| v["name"] == "CHAPERONE_GATEWAY_POD").unwrap();
    variable["value"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_charts_gateway_pod_values_reach_the_reconciled_deployment() {
    let _logs = env().logs_on_failure();
    let client = admin_client().await;
    let ns = "operator-gateway-pod";
    let carried = chart_gateway_pod(&[
        "--set",
        "gateway.resources.requests.cpu=1",
        "--set",
        "gateway.resources.limits.memory=512Mi",
        "--set",
        "gateway.nodeSelector.pool=agents",
        "--set",
        "gateway.tolerations[0].key=dedicated",
        "--set",
        "gateway.tolerations[0].operator=Exists",
        "--set",
        "gateway.tolerations[0].effect=NoSchedule",
        "--set",
        "gateway.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone-class",
        "--set",
        "gateway.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
        "--set",
        "gateway.topologySpreadConstraints[0].maxSkew=1",
        "--set",
        "gateway.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "--set",
        "gateway.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
        "--set",
        "gateway.priorityClassName=agents-high",
    ]);
    let mut settings = settings();
    settings.pod = GatewayPodSettings::from_json(&carried).expect("the chart's JSON is accepted");
    namespace_with_examples(&client, ns, true).await;
    let operator = RunningOperator::start_with(&client, ns, settings);

    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let pod = eventually("the gateway Deployment", || async {
        deployments.get_opt(GATEWAY_NAME).await.ok()?.and_then(|d| d.spec?.template.spec)
    })
    .await;
    let resources = pod.containers[0].resources.clone().unwrap();
    assert_eq!(resources.requests.unwrap()["cpu"].0, "1");
    assert_eq!(resources.limits.unwrap()["memory"].0, "512Mi");
    assert_eq!(pod.node_selector.unwrap()["pool"], "agents");
    let toleration = &pod.tolerations.unwrap()[0];
    assert_eq!(toleration.key.as_deref(), Some("dedicated"));
    assert_eq!(toleration.effect.as_deref(), Some("NoSchedule"));
    let node_affinity = pod.affinity.unwrap().node_affinity.unwrap();
    let required = node_affinity.required_during_scheduling_ignored_during_execution.unwrap();
    let term = &required.node_selector_terms[0].match_expressions.as_ref().unwrap()[0];
    assert_eq!(term.key, "zone-class");
    let spread = &pod.topology_spread_constraints.unwrap()[0];
    assert_eq!(spread.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");
    assert_eq!(pod.priority_class_name.as_deref(), Some("agents-high"));
    operator.stop().await;
}

#[test]
fn the_charts_default_gateway_pod_values_keep_the_built_in_resources() {
    let carried = chart_gateway_pod(&[]);
    let pod = GatewayPodSettings::from_json(&carried).expect("the chart's defaults are accepted");
    let resources = pod.resources.expect("the chart sets gateway.resources");
    assert_eq!(resources.requests.unwrap()["cpu"].0, "100m");
    assert!(pod.node_selector.is_empty() && pod.tolerations.is_empty());
    assert!(pod.affinity.is_none() && pod.topology_spread_constraints.is_empty());
    assert_eq!(pod.priority_class_name, None);
}

#[test]
fn the_operator_refuses_to_start_with_a_misspelt_gateway_value_naming_it() {
    for (carried, expected) in [
        (
            r#"{"affinity": {"nodeAffinty": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}}"#,
            "gateway.affinity.nodeAffinty is not a field Kubernetes knows there",
        ),
        (
            r#"{"resources": {"limits": {"memory": "lots"}}}"#,
            "gateway.resources.limits.memory \"lots\" is not a Kubernetes quantity",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_chaperone-operator"))
            .env("CHAPERONE_GATEWAY_POD", carried)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .args(["--log-format", "text"])
            .output()
            .expect("the operator binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}
