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
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
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
async fn a_pod_taking_variables_from_a_secret_is_admitted_with_a_warning_naming_it() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let namespace = "pod-env-from";
    let (admin, _) = agent_namespace(namespace).await;
    let pod = pod_manifest(
        "agent",
        Some(CONNECTION),
        json!([{"name": "agent", "image": "agent", "envFrom": [{"secretRef": {"name": "agent-settings"}}]}]),
    );
    // A raw POST: the API server passes the webhook's warnings on as `Warning` headers.
    let request = http::Request::post(format!("/api/v1/namespaces/{namespace}/pods"))
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(&pod).expect("pod JSON")))
        .expect("request");
    let response = admin.send(request).await.expect("the API server answers");
    let status = response.status();
    let warnings: Vec<String> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    assert!(status.is_success(), "{status}: {warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains("envFrom Secret") && w.contains("agent-settings")),
        "{warnings:?}"
    );
}
