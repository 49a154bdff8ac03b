//! The operator binary as a process serves and registers its admission webhooks: the API server
//! reaches them over loopback, with a CA and serving certificate the operator keeps in a Secret
//! shared by its replicas, and SIGTERM stops it cleanly.

#[path = "support/approval_webhook_env.rs"]
#[allow(dead_code)]
mod approval_webhook_env;

use std::process::Command;
use std::time::{Duration, Instant};

use approval_webhook_env::ApprovalNamespace;
use chaperone_crds::{ApprovalRequest, Decision, Review};
use chaperone_operator::webhooks::certificate_store::{
    CertificateSecret, WEBHOOK_TLS_SECRET, ensure_certificates,
};
use chaperone_operator::webhooks::tls::CertificateLifetimes;
use chaperone_tests::LocalEnv;
use chaperone_tests::objects::{create_in, ensure_namespace, example, set};
use chaperone_tests::ports::free_port;
use chaperone_tests::process::{ManagedProcess, log_tail};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const OPERATOR_NAMESPACE: &str = "chaperone-system";
const CONFIGURATION: &str = "chaperone";

fn env() -> &'static LocalEnv {
    chaperone_operator::runtime::tls::install_crypto_provider();
    LocalEnv::shared()
}

/// Starts `chaperone-operator` with its webhooks on a free loopback port, registered by URL.
fn start_operator(env: &LocalEnv, name: &str) -> ManagedProcess {
    start_operator_registering(env, name, CONFIGURATION).0
}

/// [`start_operator`] with the webhook configuration named `configuration`; also returns the
/// admin port.
fn start_operator_registering(
    env: &LocalEnv,
    name: &str,
    configuration: &str,
) -> (ManagedProcess, u16) {
    let webhook_port = free_port().expect("a free port");
    let admin_port = free_port().expect("a free port");
    let mut command = Command::new(env!("CARGO_BIN_EXE_chaperone-operator"));
    command
        .env("KUBECONFIG", env.control_plane.admin_kubeconfig())
        .env("RUST_LOG", "info")
        .args(["--namespace", OPERATOR_NAMESPACE])
        .args(["--watch-namespace", "webhook-process-nothing-to-reconcile"])
        .args(["--service-account-issuer", env.control_plane.issuer()])
        .args(["--admin", &format!("127.0.0.1:{admin_port}")])
        .args(["--webhook-listen", &format!("127.0.0.1:{webhook_port}")])
        .args(["--webhook-url", &format!("https://127.0.0.1:{webhook_port}")])
        .args(["--webhook-config-name", configuration])
        .args(["--leader-election", "false"])
        // Several operator processes run at once here; the audit API is tested in cli/tests/audit_api.rs.
        .args(["--audit-api", "false"])
        .args(["--log-format", "text"]);
    let log = env.dir().join(format!("{name}.log"));
    (ManagedProcess::start(name, command, &log).expect("the operator starts"), admin_port)
}

/// `GET /readyz` on the admin port: (status line, body), or None while nothing listens.
async fn readyz(admin_port: u16) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", admin_port)).await.ok()?;
    let request = "GET /readyz HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

/// Polls `/readyz` until `wanted` says the answer is the one awaited.
async fn readyz_until(
    operator: &mut ManagedProcess,
    admin_port: u16,
    wanted: impl Fn(&str, &str) -> bool,
) -> (String, String) {
    let started = Instant::now();
    let mut last = None;
    loop {
        operator.ensure_running().expect("the operator runs");
        if let Some((status, body)) = readyz(admin_port).await {
            if wanted(&status, &body) {
                return (status, body);
            }
            last = Some((status, body));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/readyz did not give the awaited answer within 60 s (last: {last:?}); log:\n{}",
            log_tail(operator.log_path(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the API server calls the operator's ApprovalRequest webhook: the admin (not the
/// gateway) creating an ApprovalRequest is refused by it.
async fn wait_until_called(client: &Client, operator: &mut ManagedProcess) {
    ensure_namespace(client, "webhook-process-probe").await.expect("namespace");
    let started = Instant::now();
    loop {
        operator.ensure_running().expect("the operator runs");
        let mut object = example("approvalrequest").expect("example");
        set(&mut object, "/metadata/name", json!("probe"));
        match create_in(client, "webhook-process-probe", &object).await.expect("create") {
            Err(kube::Error::Api(status))
                if status.message.contains("created by the Chaperone gateway") =>
            {
                return;
            }
            Ok(_) => {
                let api: Api<ApprovalRequest> =
                    Api::namespaced(client.clone(), "webhook-process-probe");
                let _ = api.delete("probe", &DeleteParams::default()).await;
            }
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the API server did not call the operator's webhook within 60 s; log:\n{}",
            log_tail(operator.log_path(), 40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn ca_bundle(client: &Client) -> Vec<u8> {
    ca_bundle_of(client, CONFIGURATION).await
}

async fn ca_bundle_of(client: &Client, configuration: &str) -> Vec<u8> {
    let configuration = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(configuration)
        .await
        .expect("the operator registered its webhook configuration");
    let webhooks = configuration.webhooks.unwrap_or_default();
    assert!(!webhooks.is_empty());
    let bundles: Vec<Vec<u8>> = webhooks
        .iter()
        .map(|w| w.client_config.ca_bundle.clone().map(|b| b.0).unwrap_or_default())
        .collect();
    assert!(bundles.iter().all(|b| *b == bundles[0]), "one CA for every webhook");
    bundles[0].clone()
}

async fn stored_ca(client: &Client) -> Vec<u8> {
    let secret = Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .get(WEBHOOK_TLS_SECRET)
        .await
        .expect("the operator stored its webhook certificates");
    let data = secret.data.unwrap_or_default();
    for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(data.contains_key(key), "{key} in {:?}", data.keys().collect::<Vec<_>>());
    }
    data["ca.crt"].0.clone()
}

fn review(decision: Decision) -> Review {
    Review {
        decision,
        reason: "checked the bucket".to_owned(),
        user: String::new(),
        groups: Vec::new(),
        time: String::new(),
    }
}

#[tokio::test]
async fn the_operator_process_registers_its_webhook_which_refuses_a_non_reviewer_through_the_api_server_and_stops_on_sigterm()
 {
    let env = env();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.expect("admin client");
    chaperone_tests::env::install_crds(&admin).await.expect("CRDs");
    ensure_namespace(&admin, OPERATOR_NAMESPACE).await.expect("operator namespace");

    let mut operator = start_operator(env, "chaperone-operator-1");
    wait_until_called(&admin, &mut operator).await;
    let ca = stored_ca(&admin).await;
    assert_eq!(ca_bundle(&admin).await, ca, "the caBundle is the CA of the shared Secret");

    let ns = ApprovalNamespace::create(env, "webhook-process", &["sre"], &[], 1)
        .await
        .expect("namespace with a rule");
    ns.hold_call("delete-scratch", 1).await.expect("the gateway holds a call");
    let dave = env.control_plane.client_as("dave", &["developers"]).await.expect("dave");
    let mut request = ns.requests(&dave).get("delete-scratch").await.expect("dave may read");
    request.spec.reviews.push(review(Decision::Approve));
    let refused =
        ns.requests(&dave).replace("delete-scratch", &PostParams::default(), &request).await;
    let message = match refused {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("expected the webhook's refusal, got {other:?}"),
    };
    assert!(message.contains("\"dave\""), "{message}");
    assert!(message.contains("is not a reviewer"), "{message}");

    // A reviewer's approval goes through the same webhook, which stamps who decided.
    let alice = env.control_plane.client_as("alice", &["sre"]).await.expect("alice");
    let mut request = ns.requests(&alice).get("delete-scratch").await.expect("get");
    request.spec.reviews.push(review(Decision::Approve));
    let stored = ns
        .requests(&alice)
        .replace("delete-scratch", &PostParams::default(), &request)
        .await
        .expect("alice may approve");
    assert_eq!(stored.spec.reviews[0].user, "alice");

    // SIGTERM: it stops accepting, finishes, and says so.
    let log = operator.log_path().to_owned();
    operator.terminate(Duration::from_secs(45));
    let tail = log_tail(&log, 20);
    assert!(tail.contains("webhooks stopped"), "{tail}");
    assert!(tail.contains("chaperone-operator stopped"), "{tail}");

    // A replica started later serves the same CA: the caBundle does not change.
    let mut second = start_operator(env, "chaperone-operator-2");
    wait_until_called(&admin, &mut second).await;
    assert_eq!(stored_ca(&admin).await, ca);
    assert_eq!(ca_bundle(&admin).await, ca);
}

#[tokio::test]
async fn replicas_racing_for_the_tls_secret_all_end_up_with_the_same_ca() {
    let env = env();
    let admin = env.control_plane.client().await.expect("admin client");
    let namespace = "webhook-tls-race";
    ensure_namespace(&admin, namespace).await.expect("namespace");
    let names = vec!["127.0.0.1".to_owned()];
    let replicas = (0..4).map(|_| {
        let admin = admin.clone();
        let names = names.clone();
        tokio::spawn(async move {
            let secret = CertificateSecret::webhooks(namespace, "race-tls");
            ensure_certificates(&admin, &secret, &names, CertificateLifetimes::default())
                .await
                .map(|(certificates, _)| certificates)
        })
    });
    let mut cas = Vec::new();
    for replica in replicas {
        let certificates = replica.await.expect("task").expect("certificates");
        cas.push(certificates.ca_pem().to_owned());
    }
    assert!(cas.iter().all(|ca| *ca == cas[0]), "every replica serves the same CA");
    let secret = Api::<Secret>::namespaced(admin, namespace).get("race-tls").await.expect("get");
    let stored = secret.data.unwrap_or_default()["ca.crt"].0.clone();
    assert_eq!(String::from_utf8(stored).expect("PEM"), cas[0]);
}

#[tokio::test]
async fn the_operator_turns_ready_once_its_webhook_configuration_carries_the_serving_certificates_ca()
 {
    let env = env();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.expect("admin client");
    chaperone_tests::env::install_crds(&admin).await.expect("CRDs");
    ensure_namespace(&admin, OPERATOR_NAMESPACE).await.expect("operator namespace");
    let configuration = "chaperone-readiness";

    let (mut operator, admin_port) =
        start_operator_registering(env, "chaperone-operator-readiness", configuration);
    let (status, body) =
        readyz_until(&mut operator, admin_port, |status, _| status.contains(" 200 ")).await;
    assert_eq!(body, "ok\n", "{status}");
    // Ready means registered: the configuration is there, every caBundle the stored CA.
    assert_eq!(ca_bundle_of(&admin, configuration).await, stored_ca(&admin).await);
    // Its ApprovalRequest webhook matches every namespace and fails closed: left pointing at a
    // stopped operator, it would refuse the ApprovalRequests of the tests running beside this one.
    Api::<MutatingWebhookConfiguration>::all(admin.clone())
        .delete(configuration, &DeleteParams::default())
        .await
        .expect("deleting the configuration");
    operator.terminate(Duration::from_secs(45));
}

#[tokio::test]
async fn an_operator_that_cannot_register_its_webhook_configuration_stays_unready_saying_why() {
    let env = env();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.expect("admin client");
    chaperone_tests::env::install_crds(&admin).await.expect("CRDs");
    ensure_namespace(&admin, OPERATOR_NAMESPACE).await.expect("operator namespace");

    // The API server refuses the name, so the configuration is never applied.
    let (mut operator, admin_port) =
        start_operator_registering(env, "chaperone-operator-unregistered", "Not_A_Name");
    let (status, body) = readyz_until(&mut operator, admin_port, |_, body| {
        body.contains("applying MutatingWebhookConfiguration")
    })
    .await;
    assert!(status.contains(" 503 "), "{status}");
    assert!(
        body.starts_with("not ready: applying MutatingWebhookConfiguration \"Not_A_Name\" failed:"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("; retrying"), "{body}");
    // Told to stop while its controllers may still be starting (kube holds a controller's runner
    // until its first list), it stops by itself well within Kubernetes' 30 s grace.
    assert!(
        operator.terminate(Duration::from_secs(15)),
        "the operator did not stop within 15 s of SIGTERM during start-up"
    );
}
