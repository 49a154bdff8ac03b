//! `kubectl-chaperone doctor` against the real API server and moto: a healthy install passes every
//! check, and each way an install can be broken is one failing line with its fix.
//!
//! The operator runs in-process (its webhooks on their own thread and runtime, its gateway and
//! RecordingPolicy controllers per test), as in the operator's own tests. The local environment
//! has no kubelet and no controller-manager, so nothing ever runs a pod: where a check reads what
//! those write (a Deployment's status, a Service's EndpointSlice), the test writes it, as they
//! would for running, ready pods.

use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use chaperone_crds::RecordingPolicy;
use chaperone_operator::webhooks::run::{WebhookOptions, run_webhooks};
use chaperone_operator::webhooks::tls::CertificateLifetimes;
use chaperone_operator::webhooks::{WebhookEndpoint, WebhookSettings, register_webhooks};
use chaperone_operator::{Context, GatewaySettings, OperatorMetrics, recording_policy};
use chaperone_tests::LocalEnv;
use chaperone_tests::objects::{create_in, ensure_namespace, example, set};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const OPERATOR_NAMESPACE: &str = "doctor-system";
const WEBHOOK_CONFIGURATION: &str = "chaperone";

/// The shared environment with the chart's CRDs, an available operator Deployment, and the
/// operator's webhooks serving and registered (once per test binary).
fn environment() -> &'static LocalEnv {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = LocalEnv::shared();
    static INSTALL: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = INSTALL.get_or_init(|| start_operator_webhooks(env)) {
        panic!("the install did not come up: {e}");
    }
    env
}

fn start_operator_webhooks(env: &'static LocalEnv) -> Result<(), String> {
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
                available_deployment(&client, OPERATOR_NAMESPACE, "chaperone-operator", 2).await?;
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
                configuration_name: WEBHOOK_CONFIGURATION.to_owned(),
                namespace: OPERATOR_NAMESPACE.to_owned(),
                tls_secret: "chaperone-webhook-tls".to_owned(),
                lifetimes: CertificateLifetimes::default(),
                refresh_every: Duration::from_secs(300),
                settings: WebhookSettings::default(),
            };
            let server = tokio::spawn(run_webhooks(
                client.clone(),
                listener,
                options,
                std::future::pending(),
            ));
            let registered = eventually_async("the webhook configuration", || async {
                Api::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>::all(
                    client.clone(),
                )
                .get_opt(WEBHOOK_CONFIGURATION)
                .await
                .ok()
                .flatten()
            })
            .await;
            let _ = ready.send(registered.map(|_| ()));
            let _ = server.await;
        });
    });
    started
        .recv_timeout(Duration::from_secs(180))
        .map_err(|_| "the webhooks did not start within 180 s".to_owned())?
}

async fn eventually_async<T, F, Fut>(what: &str, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after 90 s waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_async(what, probe).await.unwrap_or_else(|e| panic!("{e}"))
}

fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

/// Creates `kind` or leaves it when it exists.
async fn create<T>(api: &Api<T>, value: Value) -> anyhow::Result<()>
where
    T: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), &object(value)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A Deployment `name` whose status says `replicas` pods are ready and it is Available, as the
/// controller-manager writes it once the kubelet reports the pods ready.
async fn available_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    create(
        &api,
        json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": name}},
                    "spec": {"containers": [{"name": "main", "image": "example.com/chaperone:test"}]},
                },
            },
        }),
    )
    .await?;
    mark_available(client, namespace, name, replicas).await
}

async fn mark_available(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let status = json!({"status": {
        "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "updatedReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability."}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// An S3 client for moto with the gateway user's keys.
fn s3(env: &LocalEnv) -> aws_sdk_s3::Client {
    let user = &env.moto.gateway_user;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            &user.access_key_id,
            &user.secret_access_key,
            None,
            None,
            "test",
        ))
        .endpoint_url(env.moto.endpoint())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// An agent namespace as a user sets it up: the `default` ServiceAccount (the controller-manager
/// makes it in a real cluster), the upstream and recorder Secrets, the example RecordingPolicy
/// (at moto, with `bucket`), ApprovalRule and AgentConnection.
async fn agent_namespace(env: &LocalEnv, client: &Client, namespace: &str, bucket: &str) {
    ensure_namespace(client, namespace).await.unwrap();
    create(
        &Api::<ServiceAccount>::namespaced(client.clone(), namespace),
        json!({"metadata": {"name": "default"}}),
    )
    .await
    .unwrap();
    let user = &env.moto.gateway_user;
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    for name in ["aws-prod", "recorder"] {
        create(
            &secrets,
            json!({"metadata": {"name": name}, "stringData": {
                "AWS_ACCESS_KEY_ID": user.access_key_id,
                "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
            }}),
        )
        .await
        .unwrap();
    }
    let mut policy = example("recordingpolicy").unwrap();
    set(&mut policy, "/spec/s3/bucket", json!(bucket));
    set(&mut policy, "/spec/s3/endpoint", json!(env.moto.endpoint()));
    for (file, mut value) in [
        ("recordingpolicy", policy),
        ("approvalrule", example("approvalrule").unwrap()),
        ("agentconnection", example("agentconnection").unwrap()),
    ] {
        set(&mut value, "/metadata/namespace", json!(namespace));
        match create_in(client, namespace, &value).await.unwrap() {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("examples/{file}.yaml refused: {e}"),
        }
    }
}

/// The operator's gateway and RecordingPolicy controllers, in-process, for one namespace.
struct Controllers {
    stops: Vec<oneshot::Sender<()>>,
}

impl Controllers {
    fn start(env: &LocalEnv, client: &Client, namespace: &str) -> Self {
        let metrics = Arc::new(OperatorMetrics::new());
        let settings = GatewaySettings {
            image: "example.com/chaperone-gateway:test".into(),
            replicas: 2,
            issuer: env.control_plane.issuer().to_owned(),
            jwks_uri: format!("{}/openid/v1/jwks", env.control_plane.url()),
            session_key_rotation: Duration::from_secs(7 * 24 * 3600),
            spool_mib: 1024,
            image_pull_secrets: Vec::new(),
            pod: Default::default(),
            metrics_namespace: None,
        };
        let (gateway_stop, gateway_stopped) = oneshot::channel::<()>();
        tokio::spawn(chaperone_operator::run(
            Arc::new(Context::new(client.clone(), settings, metrics.clone())),
            Some(namespace.to_owned()),
            async move {
                let _ = gateway_stopped.await;
            },
        ));
        let (policy_stop, policy_stopped) = oneshot::channel::<()>();
        tokio::spawn(recording_policy::controller::run(
            Arc::new(recording_policy::controller::Context::new(client.clone(), metrics)),
            Some(namespace.to_owned()),
            async move {
                let _ = policy_stopped.await;
            },
        ));
        Self { stops: vec![gateway_stop, policy_stop] }
    }

    fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
    }
}

/// Waits until the namespace's RecordingPolicy `default` has `type_` at `status`.
async fn wait_for_policy(client: &Client, namespace: &str, type_: &str, status: &str) {
    let api: Api<RecordingPolicy> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("{type_}={status} on RecordingPolicy {namespace}/default"), || async {
        let policy = api.get("default").await.ok()?;
        let current = policy.status.as_ref()?.observed_generation == policy.metadata.generation;
        let found = policy
            .status
            .as_ref()?
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status);
        (current && found).then_some(())
    })
    .await;
}

/// Waits until the operator has made the namespace's gateway Deployment.
async fn wait_for_gateway(client: &Client, namespace: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("the gateway Deployment of {namespace}"), || async {
        api.get_opt("chaperone-gateway").await.ok().flatten()
    })
    .await;
}

/// The gateway's pods ready behind its Service, as the kubelet and the EndpointSlice controller
/// would report them.
async fn gateway_ready(client: &Client, namespace: &str) {
    mark_available(client, namespace, "chaperone-gateway", 2).await.unwrap();
    create(
        &Api::<EndpointSlice>::namespaced(client.clone(), namespace),
        json!({
            "metadata": {"name": "chaperone-gateway-ready",
                         "labels": {"kubernetes.io/service-name": "chaperone-gateway"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.10"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.11"], "conditions": {"ready": true}},
            ],
            "ports": [{"name": "agents", "port": 8080, "protocol": "TCP"}],
        }),
    )
    .await
    .unwrap();
}

/// Runs `kubectl-chaperone doctor` as the cluster admin.
async fn doctor(env: &LocalEnv, args: &[&str]) -> (Output, String) {
    doctor_as(env.control_plane.admin_kubeconfig().to_owned(), args).await
}

/// Runs `kubectl-chaperone doctor` with `kubeconfig`.
async fn doctor_as(kubeconfig: std::path::PathBuf, args: &[&str]) -> (Output, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kubectl-chaperone"))
            .arg("doctor")
            .args(&args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .expect("kubectl-chaperone runs")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// The line starting with `prefix`, and the fix line after it.
fn line_and_fix<'a>(text: &'a str, prefix: &str) -> (&'a str, &'a str) {
    let mut lines = text.lines();
    let line = lines
        .by_ref()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"));
    let fix = lines.next().filter(|l| l.trim_start().starts_with("fix: ")).unwrap_or("");
    (line, fix)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_install_passes_every_check_and_exits_zero() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    let ns = "doctor-healthy";
    let bucket = "doctor-healthy-audit";
    match s3(env).create_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e) if format!("{e:?}").contains("BucketAlreadyOwnedByYou") => {}
        Err(e) => panic!("creating {bucket}: {e:?}"),
    }
    agent_namespace(env, &client, ns, bucket).await;
    let controllers = Controllers::start(env, &client, ns);
    wait_for_policy(&client, ns, "Ready", "True").await;
    wait_for_gateway(&client, ns).await;
    gateway_ready(&client, ns).await;

    let (output, text) = doctor(env, &["-n", ns, "--operator-namespace", OPERATOR_NAMESPACE]).await;
    controllers.stop();

    assert_eq!(output.status.code(), Some(0), "{text}");
    for crd in [
        "agentconnections.chaperone.dev",
        "recordingpolicies.chaperone.dev",
        "approvalrules.chaperone.dev",
        "approvalrequests.chaperone.dev",
    ] {
        let (line, _) = line_and_fix(&text, &format!("ok    crd {crd}:"));
        assert!(line.ends_with("Established, serves v1alpha1 as this CLI expects"), "{line}");
    }
    line_and_fix(
        &text,
        "ok    operator: Deployment doctor-system/chaperone-operator available (2/2",
    );
    line_and_fix(&text, "ok    webhook configuration: MutatingWebhookConfiguration \"chaperone\"");
    line_and_fix(
        &text,
        "ok    webhooks reachable: a labelled pod created in doctor-healthy (dry run) got the Chaperone token",
    );
    line_and_fix(
        &text,
        "ok    gateway doctor-healthy: 2/2 replicas ready, Service chaperone-gateway answers on 2 ready endpoint(s)",
    );
    line_and_fix(
        &text,
        "ok    recording doctor-healthy/default: bucket \"doctor-healthy-audit\" reachable, lifecycle rules applied",
    );
    // The policy has no spec.access: a note that the direct S3 path is not locked down, not a
    // failure.
    let (lockdown, _) = line_and_fix(&text, "note  bucket lockdown doctor-healthy/default: ");
    assert!(lockdown.contains("reads the recordings directly"), "{lockdown}");
    // The operator puts NetworkPolicies beside each gateway; whether they hold is the CNI's.
    line_and_fix(&text, "note  networkpolicy: NetworkPolicies exist in doctor-healthy");
    assert!(!text.contains("FAIL"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_install_without_the_operator_fails_the_operator_check_with_the_install_command() {
    let env = environment();
    let (output, text) =
        doctor(env, &["-n", "doctor-none", "--operator-namespace", "doctor-nowhere"]).await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    let (line, fix) = line_and_fix(&text, "FAIL  operator:");
    assert_eq!(line, "FAIL  operator: Deployment doctor-nowhere/chaperone-operator does not exist");
    assert!(
        fix.contains("fix: install the chart: helm install chaperone charts/chaperone -n doctor-nowhere --create-namespace --wait"),
        "{fix}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_webhook_configuration_is_reported_with_who_applies_it() {
    let env = environment();
    let (output, text) = doctor(
        env,
        &[
            "-n",
            "doctor-none",
            "--operator-namespace",
            OPERATOR_NAMESPACE,
            "--webhook-configuration",
            "chaperone-elsewhere",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    let (line, fix) = line_and_fix(&text, "FAIL  webhook configuration:");
    assert_eq!(
        line,
        "FAIL  webhook configuration: MutatingWebhookConfiguration \"chaperone-elsewhere\" does not exist"
    );
    assert!(fix.contains("the operator applies it when its webhooks start"), "{fix}");
    // The namespace has no AgentConnection: nothing to dry-run, which is not a failure.
    line_and_fix(&text, "note  webhooks reachable: namespace doctor-none has no AgentConnection");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_without_ready_replicas_fails_its_line_with_where_to_look() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    let ns = "doctor-gateway";
    agent_namespace(env, &client, ns, "doctor-gateway-audit").await;
    let controllers = Controllers::start(env, &client, ns);
    wait_for_gateway(&client, ns).await;

    let (output, text) = doctor(env, &["-n", ns, "--operator-namespace", OPERATOR_NAMESPACE]).await;
    controllers.stop();

    assert_eq!(output.status.code(), Some(1), "{text}");
    let (line, fix) = line_and_fix(&text, "FAIL  gateway doctor-gateway:");
    assert_eq!(
        line,
        "FAIL  gateway doctor-gateway: Deployment chaperone-gateway has no ready replica (0/2)"
    );
    assert!(
        fix.contains("kubectl -n doctor-gateway describe deployment chaperone-gateway"),
        "{fix}"
    );
    // The webhook works in this namespace: only the gateway is at fault.
    line_and_fix(&text, "ok    webhooks reachable: a labelled pod created in doctor-gateway");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_recording_bucket_fails_with_the_operators_condition_and_its_fix() {
    let env = environment();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    let ns = "doctor-bucket";
    agent_namespace(env, &client, ns, "doctor-bucket-never-created").await;
    let controllers = Controllers::start(env, &client, ns);
    wait_for_policy(&client, ns, "BucketReachable", "False").await;

    let (output, text) = doctor(env, &["-n", ns, "--operator-namespace", OPERATOR_NAMESPACE]).await;
    controllers.stop();

    assert_eq!(output.status.code(), Some(1), "{text}");
    let (line, fix) = line_and_fix(&text, "FAIL  recording doctor-bucket/default:");
    assert_eq!(
        line,
        "FAIL  recording doctor-bucket/default: bucket \"doctor-bucket-never-created\": BucketReachable is False (BucketNotFound)"
    );
    assert!(fix.contains("doctor-bucket-never-created"), "{fix}");
    assert!(fix.ends_with("(docs/troubleshooting.md lists BucketNotFound)"), "{fix}");
}

/// An environment of this binary's own, for the breakages that would disturb the other tests:
/// the ApprovalRule CRD deleted, and a webhook configuration whose server is not there.
async fn broken_install() -> &'static LocalEnv {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = LocalEnv::own();
    static BROKEN: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BROKEN
        .get_or_init(|| async {
            let client = env.control_plane.client().await.unwrap();
            chaperone_tests::env::install_crds(&client).await.unwrap();
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            crds.delete("approvalrules.chaperone.dev", &DeleteParams::default()).await.unwrap();
            eventually("the ApprovalRule CRD to go", || async {
                crds.get_opt("approvalrules.chaperone.dev").await.ok()?.is_none().then_some(())
            })
            .await;
            // Registered as the operator does, at a port nothing listens on.
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = closed.local_addr().unwrap().port();
            drop(closed);
            register_webhooks(
                &client,
                WEBHOOK_CONFIGURATION,
                &WebhookEndpoint::Url(format!("https://127.0.0.1:{port}")),
                env.control_plane.ca_pem(),
            )
            .await
            .unwrap();
            ensure_namespace(&client, OPERATOR_NAMESPACE).await.unwrap();
            available_deployment(&client, OPERATOR_NAMESPACE, "chaperone-operator", 1)
                .await
                .unwrap();
            ensure_namespace(&client, "doctor-broken").await.unwrap();
            create(
                &Api::<ServiceAccount>::namespaced(client.clone(), "doctor-broken"),
                json!({"metadata": {"name": "default"}}),
            )
            .await
            .unwrap();
            let connection = example("agentconnection").unwrap();
            create_in(&client, "doctor-broken", &connection).await.unwrap().unwrap();
        })
        .await;
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_crd_fails_its_line_with_how_to_apply_the_charts_crds() {
    let env = broken_install().await;
    let (output, text) = doctor(env, &["--operator-namespace", OPERATOR_NAMESPACE]).await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    let (line, fix) = line_and_fix(&text, "FAIL  crd approvalrules.chaperone.dev:");
    assert_eq!(line, "FAIL  crd approvalrules.chaperone.dev: not installed");
    assert!(fix.contains("kubectl apply --server-side -f charts/chaperone/crds/"), "{fix}");
    line_and_fix(&text, "ok    crd agentconnections.chaperone.dev:");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_webhook_server_fails_the_dry_run_with_what_to_open() {
    let env = broken_install().await;
    let (output, text) = doctor(env, &["--operator-namespace", OPERATOR_NAMESPACE]).await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    // The configuration is there: only calling it fails.
    line_and_fix(&text, "ok    webhook configuration:");
    let (line, fix) = line_and_fix(&text, "FAIL  webhooks reachable:");
    assert!(
        line.starts_with(
            "FAIL  webhooks reachable: a labelled pod created in doctor-broken (dry run) was refused:"
        ),
        "{line}"
    );
    assert!(line.contains("failed calling webhook \"pods.chaperone.dev\""), "{line}");
    assert!(fix.contains("port 9443"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_read_access_is_told_which_access_is_missing() {
    let env = environment();
    let nobody = env.control_plane.write_kubeconfig_for("doctor-nobody", &[]).expect("kubeconfig");
    let (output, text) = doctor_as(nobody, &["-n", "doctor-none"]).await;
    assert_eq!(output.status.code(), Some(1), "{text}");
    let (line, fix) = line_and_fix(&text, "FAIL  crd agentconnections.chaperone.dev:");
    assert!(line.contains("could not read customresourcedefinitions"), "{line}");
    assert!(
        fix.contains("your kubeconfig's user needs access to customresourcedefinitions"),
        "{fix}"
    );
    assert!(fix.contains("\"doctor-nobody\" cannot get resource"), "{fix}");
    let (line, _) = line_and_fix(&text, "FAIL  operator:");
    assert!(line.contains("could not read deployments"), "{line}");
}
