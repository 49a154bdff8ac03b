//! The pod webhook as the real API server calls it over loopback TLS (served in-process by
//! `run_webhooks`, with its certificates in the shared Secret and its configuration applied by
//! the operator's code): labelled pods get the gateway's environment and a read-only projected
//! token, pods bringing their own AWS credentials or naming an unknown connection are refused, and
//! an agent that could read the upstream credentials is reported (and refused when asked).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chaperone_crds::AgentConnection;
use chaperone_operator::webhooks::pod::{
    AGENTS_ISOLATED, CONNECTION_LABEL, INJECT_SKIP_ANNOTATION, PodWebhookSettings,
};
use chaperone_operator::webhooks::run::{WebhookOptions, run_webhooks};
use chaperone_operator::webhooks::tls::CertificateLifetimes;
use chaperone_operator::webhooks::{WebhookEndpoint, WebhookSettings};
use chaperone_tests::LocalEnv;
use chaperone_tests::objects::{create_in, ensure_namespace, example, set};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const OPERATOR_NAMESPACE: &str = "chaperone-system";
const CONNECTION: &str = "prod-aws";
const AGENT: &str = "pr-bot";
const TOKEN_EXPIRATION_SECONDS: i64 = 1800;

/// The shared environment with the webhooks serving and registered (once per test binary).
fn environment() -> &'static LocalEnv {
    chaperone_operator::runtime::tls::install_crypto_provider();
    let env = LocalEnv::shared();
    static WEBHOOKS: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = WEBHOOKS.get_or_init(|| start_webhooks(env)) {
        panic!("the webhooks did not start: {e}");
    }
    env
}

/// Runs the webhooks on their own thread and runtime (each test's runtime ends with the test),
/// and returns once the API server calls them.
fn start_webhooks(env: &'static LocalEnv) -> Result<(), String> {
    let (ready, started) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            let setup = async {
                let client = env.control_plane.client().await?;
                chaperone_tests::env::install_crds(&client).await?;
                ensure_namespace(&client, OPERATOR_NAMESPACE).await?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let port = listener.local_addr()?.port();
                anyhow::Ok((client, listener, port))
            };
            let (client, listener, port) = match setup.await {
                Ok(setup) => setup,
                Err(e) => {
                    let _ = ready.send(Err(format!("{e:#}")));
                    return;
                }
            };
            let options = WebhookOptions {
                endpoint: WebhookEndpoint::Url(format!("https://127.0.0.1:{port}")),
                configuration_name: "chaperone".to_owned(),
                namespace: OPERATOR_NAMESPACE.to_owned(),
                tls_secret: "chaperone-webhook-tls".to_owned(),
                lifetimes: CertificateLifetimes::default(),
                refresh_every: Duration::from_secs(300),
                settings: WebhookSettings {
                    pods: PodWebhookSettings { token_expiration_seconds: TOKEN_EXPIRATION_SECONDS },
                    ..WebhookSettings::default()
                },
            };
            let server = tokio::spawn(run_webhooks(
                client.clone(),
                listener,
                options,
                std::future::pending(),
            ));
            let _ = ready.send(wait_until_called(&client).await);
            let _ = server.await;
        });
    });
    started
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| "the webhooks did not start within 120 s".to_owned())?
}

/// Creates a pod naming a connection that does not exist until the webhook refuses it.
async fn wait_until_called(client: &Client) -> Result<(), String> {
    let probe = "pod-webhook-probe";
    ensure_namespace(client, probe).await.map_err(|e| format!("{e:#}"))?;
    // The ServiceAccount admission plugin refuses pods of a service account that does not exist.
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": AGENT}})).map_err(|e| e.to_string())?;
    match Api::<ServiceAccount>::namespaced(client.clone(), probe)
        .create(&PostParams::default(), &account)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(e.to_string()),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), probe);
    let started = Instant::now();
    loop {
        let pod =
            pod_manifest("probe", Some("no-such-connection"), json!([{"name": "a", "image": "a"}]));
        match pods.create(&PostParams::default(), &pod).await {
            Err(kube::Error::Api(status)) if status.message.contains("does not exist") => {
                return Ok(());
            }
            Ok(_) => {
                let _ = pods.delete("probe", &DeleteParams::default()).await;
            }
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the API server did not call the pod webhook within 60 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pod_manifest(name: &str, connection: Option<&str>, containers: Value) -> Pod {
    let labels = match connection {
        Some(connection) => json!({CONNECTION_LABEL: connection, "app": "agent"}),
        None => json!({"app": "agent"}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceAccountName": AGENT,
            "automountServiceAccountToken": false,
            "containers": containers,
        },
    }))
    .expect("a pod")
}

/// A namespace with the example AgentConnection, the agent's service account, and the gateway
/// Service (which the API server gives a cluster IP; no controller runs in these tests).
async fn agent_namespace(namespace: &str) -> (Client, String) {
    let env = environment();
    let admin = env.control_plane.client().await.expect("admin");
    ensure_namespace(&admin, namespace).await.expect("namespace");
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": AGENT}})).expect("account");
    keep(
        Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &account)
            .await,
    );
    let mut connection = example("agentconnection").expect("example");
    set(&mut connection, "/metadata/namespace", json!(namespace));
    keep(create_in(&admin, namespace, &connection).await.expect("create").map(|_| ()));
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "chaperone-gateway"},
        "spec": {"ports": [{"name": "agents", "port": 8080}], "selector": {"app.kubernetes.io/name": "chaperone-gateway"}},
    }))
    .expect("service");
    let services = Api::<Service>::namespaced(admin.clone(), namespace);
    keep(services.create(&PostParams::default(), &service).await);
    let ip = services
        .get("chaperone-gateway")
        .await
        .expect("service")
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP");
    (admin, format!("https://{ip}:8080"))
}

fn keep<T>(outcome: Result<T, kube::Error>) {
    match outcome {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating: {e}"),
    }
}

fn env_of(pod: &Pod, container: usize) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers[container].env.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.name, v.value.unwrap_or_default()))
        .collect()
}

fn refusal(outcome: Result<Pod, kube::Error>) -> String {
    match outcome {
        Err(kube::Error::Api(status)) => status.message,
        Ok(pod) => panic!("expected a refusal, the API server stored {:?}", pod.spec),
        Err(e) => panic!("expected the webhook's refusal, got {e}"),
    }
}

#[tokio::test]
async fn a_labelled_pod_comes_back_with_the_gateway_env_and_a_read_only_chaperone_token_and_creating_it_again_changes_nothing()
 {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-inject";
    let (admin, endpoint) = agent_namespace(namespace).await;
    let pods: Api<Pod> = Api::namespaced(admin, namespace);

    let pod = pod_manifest(
        "agent",
        Some(CONNECTION),
        json!([
            {"name": "agent", "image": "agent", "env": [{"name": "LOG_LEVEL", "value": "debug"}]},
            {"name": "helper", "image": "helper"},
        ]),
    );
    let stored = pods.create(&PostParams::default(), &pod).await.expect("the pod is admitted");
    let gateway_host = endpoint.trim_start_matches("https://").trim_end_matches(":8080").to_owned();
    let gateway_host = gateway_host.as_str();

    for container in 0..2 {
        let env = env_of(&stored, container);
        for (name, value) in [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ENDPOINT_URL_STS", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ROLE_ARN", "arn:aws:iam::000000000000:role/chaperone/pod-inject/prod-aws"),
            ("AWS_ROLE_SESSION_NAME", AGENT),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/chaperone.dev/serviceaccount/token"),
            ("AWS_CA_BUNDLE", "/var/run/secrets/chaperone.dev/serviceaccount/ca.crt"),
            ("NODE_EXTRA_CA_CERTS", "/var/run/secrets/chaperone.dev/serviceaccount/ca.crt"),
            ("SSL_CERT_DIR", "/etc/ssl/certs:/var/run/secrets/chaperone.dev/serviceaccount"),
            ("NO_PROXY", gateway_host),
            ("no_proxy", gateway_host),
        ] {
            assert!(env.contains(&(name.to_owned(), value.to_owned())), "{name} in {env:?}");
        }
        let spec = stored.spec.as_ref().expect("spec");
        let mounts = spec.containers[container].volume_mounts.clone().unwrap_or_default();
        let mount = mounts.iter().find(|m| m.name == "chaperone-token").expect("the token mount");
        assert_eq!(mount.mount_path, "/var/run/secrets/chaperone.dev/serviceaccount");
        assert_eq!(mount.read_only, Some(true));
    }
    assert_eq!(env_of(&stored, 0)[0], ("LOG_LEVEL".to_owned(), "debug".to_owned()));
    let volumes = stored.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
    let volume = volumes.iter().find(|v| v.name == "chaperone-token").expect("the token volume");
    let sources = volume.projected.as_ref().and_then(|p| p.sources.clone()).unwrap_or_default();
    let token = sources[0].service_account_token.as_ref().expect("a service account token");
    assert_eq!(token.audience.as_deref(), Some("chaperone.dev"));
    assert_eq!(token.expiration_seconds, Some(TOKEN_EXPIRATION_SECONDS));
    assert_eq!(token.path, "token");
    // The gateway's CA beside the token, from the ConfigMap the operator publishes.
    let ca = sources[1].config_map.as_ref().expect("the gateway's CA");
    assert_eq!(ca.name, "chaperone-gateway-ca");
    assert_eq!(ca.items.clone().unwrap_or_default()[0].path, "ca.crt");

    // The same, already injected, pod created again passes the webhook unchanged.
    let mut again = stored.clone();
    again.metadata = kube::api::ObjectMeta {
        name: Some("agent-again".to_owned()),
        labels: stored.metadata.labels.clone(),
        ..Default::default()
    };
    let stored_again = pods.create(&PostParams::default(), &again).await.expect("admitted");
    assert_eq!(stored_again.spec, stored.spec);
}

#[tokio::test]
async fn a_pod_with_its_own_access_key_is_refused_with_a_message_naming_the_variable_and_the_container()
 {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-own-keys";
    let (admin, _) = agent_namespace(namespace).await;
    let pods: Api<Pod> = Api::namespaced(admin, namespace);
    let pod = pod_manifest(
        "agent",
        Some(CONNECTION),
        json!([
            {"name": "agent", "image": "agent"},
            {"name": "uploader", "image": "u", "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIAEXAMPLE"}]},
        ]),
    );

    let message = refusal(pods.create(&PostParams::default(), &pod).await);

    assert!(message.contains("container \"uploader\" sets AWS_ACCESS_KEY_ID"), "{message}");
    assert!(message.contains("remove AWS_ACCESS_KEY_ID"), "{message}");
    assert!(pods.get_opt("agent").await.expect("get").is_none());
}

#[tokio::test]
async fn a_pod_naming_an_unknown_connection_is_refused_with_a_message_naming_it() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-unknown-connection";
    let (admin, _) = agent_namespace(namespace).await;
    let pods: Api<Pod> = Api::namespaced(admin, namespace);
    let pod = pod_manifest("agent", Some("staging-aws"), json!([{"name": "agent", "image": "a"}]));

    let message = refusal(pods.create(&PostParams::default(), &pod).await);

    assert!(message.contains("AgentConnection \"staging-aws\" does not exist"), "{message}");
    assert!(message.contains("pod-unknown-connection"), "{message}");
}

#[tokio::test]
async fn an_opted_out_container_and_an_unlabelled_pod_are_left_untouched() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-opt-out";
    let (admin, _) = agent_namespace(namespace).await;
    let pods: Api<Pod> = Api::namespaced(admin, namespace);

    let mut pod = pod_manifest(
        "agent",
        Some(CONNECTION),
        json!([
            {"name": "agent", "image": "agent"},
            {"name": "legacy", "image": "l", "env": [{"name": "AWS_PROFILE", "value": "legacy"}]},
        ]),
    );
    pod.metadata.annotations =
        Some([(INJECT_SKIP_ANNOTATION.to_owned(), "legacy".to_owned())].into());
    let stored = pods.create(&PostParams::default(), &pod).await.expect("admitted");
    assert_eq!(env_of(&stored, 1), vec![("AWS_PROFILE".to_owned(), "legacy".to_owned())]);
    let spec = stored.spec.as_ref().expect("spec");
    assert!(spec.containers[1].volume_mounts.as_ref().is_none_or(|m| m.is_empty()));
    assert!(env_of(&stored, 0).iter().any(|(name, _)| name == "AWS_ROLE_ARN"));

    let plain = pod_manifest(
        "plain",
        None,
        json!([{"name": "app", "image": "app", "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA"}]}]),
    );
    let stored = pods.create(&PostParams::default(), &plain).await.expect("not ours to refuse");
    assert_eq!(env_of(&stored, 0), vec![("AWS_ACCESS_KEY_ID".to_owned(), "AKIA".to_owned())]);
    assert!(stored.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default().is_empty());
}

fn isolated(connection: &AgentConnection) -> Option<Condition> {
    connection
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == AGENTS_ISOLATED).cloned())
}

/// Creates pods `<prefix>-<n>` until `done` accepts the outcome (RBAC changes reach the
/// authorizer's cache within moments).
async fn admit_until(
    pods: &Api<Pod>,
    connections: &Api<AgentConnection>,
    prefix: &str,
    mut done: impl FnMut(&Result<Pod, kube::Error>, Option<Condition>) -> bool,
) -> (Result<Pod, kube::Error>, Option<Condition>) {
    let started = Instant::now();
    for attempt in 0.. {
        let pod = pod_manifest(
            &format!("{prefix}-{attempt}"),
            Some(CONNECTION),
            json!([{"name": "agent", "image": "agent"}]),
        );
        let outcome = pods.create(&PostParams::default(), &pod).await;
        let condition = isolated(&connections.get(CONNECTION).await.expect("connection"));
        if done(&outcome, condition.clone()) {
            return (outcome, condition);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not within 30 s: {outcome:?} {condition:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn an_agent_that_can_read_the_credentials_secret_is_reported_naming_the_binding_and_refused_when_the_connection_asks()
 {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-security";
    let (admin, _) = agent_namespace(namespace).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let connections: Api<AgentConnection> = Api::namespaced(admin.clone(), namespace);

    // Isolated to begin with.
    let (outcome, condition) = admit_until(&pods, &connections, "before", |_, c| c.is_some()).await;
    outcome.expect("admitted");
    let condition = condition.expect("condition");
    assert_eq!(condition.status, "True", "{condition:?}");

    // The agent's service account is granted get on the upstream credentials Secret.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["aws-prod"], "verbs": ["get"]}],
    }))
    .expect("role");
    keep(
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &role)
            .await,
    );
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "agent-reads-credentials"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": namespace}],
    }))
    .expect("binding");
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), namespace);
    keep(bindings.create(&PostParams::default(), &binding).await);

    let (outcome, condition) =
        admit_until(&pods, &connections, "granted", |_, c| c.is_some_and(|c| c.status == "False"))
            .await;
    outcome.expect("still admitted: the connection does not ask for refusal");
    let condition = condition.expect("condition");
    assert_eq!(condition.reason, "AgentCanReadCredentials");
    let message = &condition.message;
    assert!(
        message.contains("ServiceAccount pod-security/pr-bot can get Secret pod-security/aws-prod"),
        "{message}"
    );
    assert!(message.contains("agent-reads-credentials"), "{message}");
    assert!(message.contains("secret-reader"), "{message}");

    // The connection asks for refusal.
    connections
        .patch(
            CONNECTION,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"security": {"refuseIfAgentCanReadCredentials": true}}})),
        )
        .await
        .expect("patch");
    let (outcome, _) = admit_until(&pods, &connections, "refused", |o, _| o.is_err()).await;
    let message = refusal(outcome);
    assert!(message.contains("refuseIfAgentCanReadCredentials"), "{message}");
    assert!(message.contains("can get Secret pod-security/aws-prod"), "{message}");
    assert!(message.contains("agent-reads-credentials"), "{message}");

    // Removing the binding admits the agent again, and the condition turns True.
    bindings.delete("agent-reads-credentials", &DeleteParams::default()).await.expect("delete");
    let (outcome, condition) = admit_until(&pods, &connections, "fixed", |o, c| {
        o.is_ok() && c.is_some_and(|c| c.status == "True")
    })
    .await;
    outcome.expect("admitted");
    assert_eq!(condition.expect("condition").reason, "AgentsCannotReadCredentials");
}

#[tokio::test]
async fn an_agent_that_can_list_secrets_or_watch_the_recorders_secret_is_reported_and_refused_when_the_connection_asks()
 {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-security-list";
    let (admin, _) = agent_namespace(namespace).await;
    let mut policy = example("recordingpolicy").expect("example");
    set(&mut policy, "/metadata/namespace", json!(namespace));
    keep(create_in(&admin, namespace, &policy).await.expect("create").map(|_| ()));
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let connections: Api<AgentConnection> = Api::namespaced(admin.clone(), namespace);

    // No `get` anywhere: `list` on every Secret, `watch` on the recorder's by name.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "secret-lister"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["recorder"], "verbs": ["watch"]},
        ],
    }))
    .expect("role");
    keep(
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &role)
            .await,
    );
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "agent-lists-secrets"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-lister"},
        "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": namespace}],
    }))
    .expect("binding");
    keep(
        Api::<RoleBinding>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await,
    );

    let (outcome, condition) = admit_until(&pods, &connections, "granted", |_, c| {
        c.is_some_and(|c| c.status == "False" && c.message.contains("watch"))
    })
    .await;
    outcome.expect("still admitted: the connection does not ask for refusal");
    let condition = condition.expect("condition");
    assert_eq!(condition.reason, "AgentCanReadCredentials");
    let message = &condition.message;
    let lists =
        format!("ServiceAccount {namespace}/{AGENT} can list Secrets in namespace {namespace}");
    assert!(message.contains(&lists), "{message}");
    let watches =
        format!("ServiceAccount {namespace}/{AGENT} can watch Secret {namespace}/recorder");
    assert!(message.contains(&watches), "{message}");
    assert!(message.contains("agent-lists-secrets"), "{message}");
    // The namespace-wide list is reported once, not again for each Secret; no get was granted.
    assert!(!message.contains(&format!("can list Secret {namespace}/")), "{message}");
    assert!(!message.contains("can get"), "{message}");

    connections
        .patch(
            CONNECTION,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"security": {"refuseIfAgentCanReadCredentials": true}}})),
        )
        .await
        .expect("patch");
    let (outcome, _) = admit_until(&pods, &connections, "refused", |o, _| o.is_err()).await;
    let message = refusal(outcome);
    assert!(message.contains("refuseIfAgentCanReadCredentials"), "{message}");
    assert!(message.contains(&lists), "{message}");
    assert!(message.contains(&watches), "{message}");
}

#[tokio::test]
async fn env_from_sources_holding_aws_keys_or_endpoints_are_refused_and_clean_ones_admitted() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-env-from";
    let (admin, _) = agent_namespace(namespace).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "agent-settings"},
        "stringData": {"LOG_LEVEL": "debug", "AWS_SECRET_ACCESS_KEY": "wJalr"},
    }))
    .expect("secret");
    keep(
        Api::<Secret>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &secret)
            .await,
    );
    let maps = Api::<ConfigMap>::namespaced(admin.clone(), namespace);
    for (name, data) in [
        ("agent-endpoints", json!({"ENDPOINT_URL_S3": "https://s3.amazonaws.com"})),
        ("agent-config", json!({"LOG_LEVEL": "debug", "AWS_REGION": "us-east-1"})),
    ] {
        let map: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("map");
        keep(maps.create(&PostParams::default(), &map).await);
    }
    let pods: Api<Pod> = Api::namespaced(admin, namespace);
    let with = |name: &str, env_from: Value| {
        pod_manifest(
            name,
            Some(CONNECTION),
            json!([{"name": "agent", "image": "a", "envFrom": env_from}]),
        )
    };

    let keys = refusal(
        pods.create(
            &PostParams::default(),
            &with("keys", json!([{"secretRef": {"name": "agent-settings"}}])),
        )
        .await,
    );
    assert!(
        keys.contains("container \"agent\" takes AWS_SECRET_ACCESS_KEY from Secret \"agent-settings\" (envFrom)"),
        "{keys}"
    );
    let prefixed = refusal(
        pods.create(
            &PostParams::default(),
            &with(
                "prefixed",
                json!([{"configMapRef": {"name": "agent-endpoints"}, "prefix": "AWS_"}]),
            ),
        )
        .await,
    );
    assert!(
        prefixed.contains("takes AWS_ENDPOINT_URL_S3 from ConfigMap \"agent-endpoints\""),
        "{prefixed}"
    );
    let missing = refusal(
        pods.create(
            &PostParams::default(),
            &with("missing", json!([{"configMapRef": {"name": "later", "optional": true}}])),
        )
        .await,
    );
    assert!(missing.contains("ConfigMap \"later\" (envFrom), which does not exist"), "{missing}");

    let clean = with("clean", json!([{"configMapRef": {"name": "agent-config"}}]));
    let stored =
        pods.create(&PostParams::default(), &clean).await.expect("a clean envFrom is admitted");
    assert!(env_of(&stored, 0).iter().any(|(name, _)| name == "AWS_ROLE_ARN"));
}

#[tokio::test]
async fn opting_a_container_out_needs_the_skip_injection_verb_for_the_creator_or_the_pods_service_account()
 {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-skip-rbac";
    let (admin, _) = agent_namespace(namespace).await;
    // mallory may create pods in the namespace, nothing more.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "pod-creator"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}],
    }))
    .expect("role");
    keep(
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &role)
            .await,
    );
    let binding = |name: &str, role: &str, subject: Value| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [subject],
        }))
        .expect("binding")
    };
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), namespace);
    let mallory =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"});
    keep(
        bindings.create(&PostParams::default(), &binding("mallory", "pod-creator", mallory)).await,
    );
    let as_mallory = env.control_plane.client_as("mallory", &[]).await.expect("mallory");
    let pods: Api<Pod> = Api::namespaced(as_mallory, namespace);
    let mut pod = pod_manifest(
        "opted-out",
        Some(CONNECTION),
        json!([{"name": "agent", "image": "a"}, {"name": "legacy", "image": "l"}]),
    );
    pod.metadata.annotations =
        Some([(INJECT_SKIP_ANNOTATION.to_owned(), "legacy".to_owned())].into());

    let message = refusal(pods.create(&PostParams::default(), &pod).await);
    assert!(
        message.contains(&format!("the pod opts containers [\"legacy\"] out of the gateway ({INJECT_SKIP_ANNOTATION}), but neither user \"mallory\" nor ServiceAccount {namespace}/{AGENT} may skip-injection AgentConnection \"{CONNECTION}\"")),
        "{message}"
    );

    // Granted to the pod's service account: its pods may keep a container outside.
    let skipper: Role = serde_json::from_value(json!({
        "metadata": {"name": "skipper"},
        "rules": [{"apiGroups": ["chaperone.dev"], "resources": ["agentconnections"], "verbs": ["skip-injection"], "resourceNames": [CONNECTION]}],
    }))
    .expect("role");
    keep(
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &skipper)
            .await,
    );
    let account = json!({"kind": "ServiceAccount", "name": AGENT, "namespace": namespace});
    keep(
        bindings.create(&PostParams::default(), &binding("agent-skips", "skipper", account)).await,
    );
    let stored = admit_until_created(&pods, &pod).await;
    let spec = stored.spec.as_ref().expect("spec");
    assert!(spec.containers[1].env.as_ref().is_none_or(|e| e.is_empty()));
}

/// Creates `pod` until the API server stores it (RBAC changes reach the authorizer's cache
/// within moments).
async fn admit_until_created(pods: &Api<Pod>, pod: &Pod) -> Pod {
    let started = Instant::now();
    loop {
        match pods.create(&PostParams::default(), pod).await {
            Ok(stored) => return stored,
            Err(e) if started.elapsed() > Duration::from_secs(20) => panic!("still refused: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn ephemeral_containers_added_to_an_agent_pod_get_the_gateway_environment_and_no_keys_of_their_own()
 {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-ephemeral";
    let (admin, _) = agent_namespace(namespace).await;
    let pods: Api<Pod> = Api::namespaced(admin, namespace);
    let pod = pod_manifest("agent", Some(CONNECTION), json!([{"name": "agent", "image": "a"}]));
    let stored = pods.create(&PostParams::default(), &pod).await.expect("admitted");

    let mut keyed = stored.clone();
    let debugger = |env: Value| json!([{"name": "debugger", "image": "busybox", "targetContainerName": "agent", "env": env}]);
    keyed.spec.as_mut().expect("spec").ephemeral_containers = Some(
        serde_json::from_value(debugger(json!([{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA"}])))
            .expect("ephemeral"),
    );
    let outcome = pods
        .replace_subresource("ephemeralcontainers", "agent", &PostParams::default(), &keyed)
        .await;
    let message = refusal(outcome);
    assert!(message.contains("container \"debugger\" sets AWS_ACCESS_KEY_ID"), "{message}");

    let mut debugged = stored.clone();
    debugged.spec.as_mut().expect("spec").ephemeral_containers =
        Some(serde_json::from_value(debugger(json!([]))).expect("ephemeral"));
    let updated = pods
        .replace_subresource("ephemeralcontainers", "agent", &PostParams::default(), &debugged)
        .await
        .expect("the ephemeral container is admitted");
    let ephemeral = updated
        .spec
        .and_then(|s| s.ephemeral_containers)
        .and_then(|c| c.into_iter().next())
        .expect("the ephemeral container");
    let variables: Vec<String> =
        ephemeral.env.unwrap_or_default().into_iter().map(|v| v.name).collect();
    assert!(variables.iter().any(|v| v == "AWS_ROLE_ARN"), "{variables:?}");
    assert!(variables.iter().any(|v| v == "AWS_WEB_IDENTITY_TOKEN_FILE"), "{variables:?}");
    let mounts = ephemeral.volume_mounts.unwrap_or_default();
    assert!(
        mounts.iter().any(|m| m.name == "chaperone-token" && m.read_only == Some(true)),
        "{mounts:?}"
    );
}

#[tokio::test]
async fn only_the_gateway_deployments_own_pods_may_run_as_the_gateways_service_account() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-gateway-identity";
    let (admin, _) = agent_namespace(namespace).await;
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "chaperone-gateway"}}))
            .expect("account");
    keep(
        Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &account)
            .await,
    );
    let template = json!({
        "metadata": {"labels": {"app.kubernetes.io/name": "chaperone-gateway"}},
        "spec": {"serviceAccountName": "chaperone-gateway", "automountServiceAccountToken": false,
                 "containers": [{"name": "gateway", "image": "chaperone-gateway:1"}]},
    });
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "chaperone-gateway"},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "chaperone-gateway"}}, "template": template},
    }))
    .expect("deployment");
    let deployments = Api::<Deployment>::namespaced(admin.clone(), namespace);
    keep(deployments.create(&PostParams::default(), &deployment).await);
    let uid =
        deployments.get("chaperone-gateway").await.expect("deployment").metadata.uid.expect("uid");
    let replica_sets = Api::<ReplicaSet>::namespaced(admin.clone(), namespace);
    for (name, image) in [
        ("chaperone-gateway-6c9d", "chaperone-gateway:1"),
        ("chaperone-gateway-evil", "attacker:1"),
    ] {
        let mut spec = template.clone();
        spec["spec"]["containers"][0]["image"] = json!(image);
        let replica_set: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chaperone-gateway", "uid": uid, "controller": true},
            ]},
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "chaperone-gateway"}}, "template": spec},
        }))
        .expect("replica set");
        keep(replica_sets.create(&PostParams::default(), &replica_set).await);
    }
    let rs_uid = |name: &str| {
        let replica_sets = replica_sets.clone();
        let name = name.to_owned();
        async move { replica_sets.get(&name).await.expect("replica set").metadata.uid.expect("uid") }
    };
    let gateway_pod = |name: &str, replica_set: &str, uid: &str, image: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "chaperone-gateway"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set, "uid": uid, "controller": true},
            ]},
            "spec": {"serviceAccountName": "chaperone-gateway", "automountServiceAccountToken": false,
                     "containers": [{"name": "gateway", "image": image}]},
        }))
        .expect("pod")
    };
    let good_uid = rs_uid("chaperone-gateway-6c9d").await;
    let evil_uid = rs_uid("chaperone-gateway-evil").await;

    // Anyone but the ReplicaSet controller, even an admin copying the gateway's pod, is refused.
    let by_admin = Api::<Pod>::namespaced(admin.clone(), namespace);
    let copy = gateway_pod("copy", "chaperone-gateway-6c9d", &good_uid, "chaperone-gateway:1");
    let message = refusal(by_admin.create(&PostParams::default(), &copy).await);
    assert!(
        message.contains(&format!(
            "ServiceAccount {namespace}/chaperone-gateway is the Chaperone gateway's"
        )),
        "{message}"
    );
    assert!(message.contains("created by \"chaperone-admin\""), "{message}");

    // The ReplicaSet controller creating for a ReplicaSet made by hand with another template: refused.
    let controller = env
        .control_plane
        .client_as(
            "system:serviceaccount:kube-system:replicaset-controller",
            &["system:serviceaccounts"],
        )
        .await
        .expect("the ReplicaSet controller's identity");
    let by_controller = Api::<Pod>::namespaced(controller, namespace);
    let evil = gateway_pod("evil", "chaperone-gateway-evil", &evil_uid, "attacker:1");
    let message = refusal(by_controller.create(&PostParams::default(), &evil).await);
    assert!(message.contains("pod template is not Deployment chaperone-gateway's"), "{message}");

    // ... and for the gateway Deployment's own ReplicaSet: admitted.
    let own = gateway_pod(
        "chaperone-gateway-6c9d-x7k2p",
        "chaperone-gateway-6c9d",
        &good_uid,
        "chaperone-gateway:1",
    );
    by_controller
        .create(&PostParams::default(), &own)
        .await
        .expect("the gateway's own pod is admitted");

    // No ephemeral container on it: it would run with the gateway's token.
    let mut debugged = by_admin.get("chaperone-gateway-6c9d-x7k2p").await.expect("pod");
    debugged.spec.as_mut().expect("spec").ephemeral_containers = Some(
        serde_json::from_value(json!([{"name": "debugger", "image": "busybox"}]))
            .expect("ephemeral"),
    );
    let outcome = by_admin
        .replace_subresource(
            "ephemeralcontainers",
            "chaperone-gateway-6c9d-x7k2p",
            &PostParams::default(),
            &debugged,
        )
        .await;
    let message = refusal(outcome);
    assert!(message.contains("ephemeral containers would run with its token"), "{message}");

    // An agent pod labelled for a connection but running as the gateway is refused too.
    let mut agent =
        pod_manifest("agent-as-gateway", Some(CONNECTION), json!([{"name": "a", "image": "a"}]));
    agent.spec.as_mut().expect("spec").service_account_name = Some("chaperone-gateway".to_owned());
    let message = refusal(by_admin.create(&PostParams::default(), &agent).await);
    assert!(message.contains("is the Chaperone gateway's"), "{message}");
}
