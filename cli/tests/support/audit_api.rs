//! The operator's audit API in a test: served in-process on a non-loopback address (the
//! aggregator dials it), registered as the APIService v1alpha1.audit.chaperone.dev through a
//! Service and an EndpointSlice, with the chart's ClusterRole chaperone-session-auditor, and
//! namespaces recorded to a bucket by a RecordingPolicy with an AgentConnection publishing the
//! recording key. Each read through it lands in the namespace's signed access log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaperone_crds::AgentConnection;
use chaperone_operator::audit_api::access_key::ACCESS_LOG_KEY_CONFIG_MAP;
use chaperone_operator::audit_api::registration::AuditService;
use chaperone_operator::audit_api::{AuditApiError, AuditApiOptions, run_audit_api};
use chaperone_operator::webhooks::tls::CertificateLifetimes;
use chaperone_recording::{AccessLogReport, TrustedKeys, access_log_folder, verify_access_log};
use chaperone_tests::LocalEnv;
use chaperone_tests::objects::{ensure_namespace, example, set};
use chaperone_tests::ports::{free_port_on, non_loopback_address};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

pub const OPERATOR_NAMESPACE: &str = "chaperone-system";
pub const SERVICE: &str = "chaperone-audit-api-test";
pub const API_SERVICE: &str = "v1alpha1.audit.chaperone.dev";

/// The chart's ClusterRole chaperone-session-auditor.
pub fn auditor_cluster_role() -> Value {
    chaperone_tests::objects::session_auditor_cluster_role()
}

pub async fn apply(client: &Client, object: &Value) {
    chaperone_tests::objects::apply(client, object, "audit-api-test").await.expect("applied");
}

/// Binds `subject` (an RBAC subject) to chaperone-session-auditor in `namespace`.
pub async fn bind_session_auditor(client: &Client, namespace: &str, subject: Value) {
    apply(client, &chaperone_tests::objects::session_auditor_binding(namespace, subject)).await;
}

/// A namespace recorded to `bucket` (prefix `agents/`) by the RecordingPolicy `default` with the
/// gateway's AWS keys, and the AgentConnection prod-aws publishing `public_key`.
pub async fn recorded_namespace(
    env: &LocalEnv,
    client: &Client,
    namespace: &str,
    bucket: &str,
    public_key: &str,
) {
    ensure_namespace(client, namespace).await.unwrap();
    let user = &env.moto.gateway_user;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "recorder"},
        "stringData": {"AWS_ACCESS_KEY_ID": user.access_key_id,
                       "AWS_SECRET_ACCESS_KEY": user.secret_access_key},
    }))
    .unwrap();
    let _ = Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await;
    let mut policy = example("recordingpolicy").unwrap();
    set(&mut policy, "/metadata/namespace", json!(namespace));
    set(&mut policy, "/spec/s3/bucket", json!(bucket));
    set(&mut policy, "/spec/s3/prefix", json!("agents/"));
    set(&mut policy, "/spec/s3/endpoint", json!(env.moto.endpoint()));
    apply(client, &policy).await;
    let mut connection = example("agentconnection").unwrap();
    set(&mut connection, "/metadata/namespace", json!(namespace));
    apply(client, &connection).await;
    Api::<AgentConnection>::namespaced(client.clone(), namespace)
        .patch_status(
            "prod-aws",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"recordingPublicKeys": [public_key]}})),
        )
        .await
        .unwrap();
}

/// Polls `probe` until it answers Ok, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if started.elapsed() > timeout => {
                panic!("{what} did not happen within {timeout:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The operator's audit API, served on this test's runtime until [`AuditApiServer::stop`].
pub struct AuditApiServer {
    pub address: SocketAddr,
    admin: Client,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), AuditApiError>>,
}

impl AuditApiServer {
    /// Serves the audit API, registers it, waits until the APIService is Available, and applies
    /// the ClusterRole chaperone-session-auditor.
    pub async fn start(admin: &Client) -> Self {
        chaperone_tests::env::install_crds(admin).await.expect("CRDs install");
        ensure_namespace(admin, OPERATOR_NAMESPACE).await.unwrap();
        let ip = non_loopback_address().expect("a non-loopback address");
        let address = SocketAddr::new(ip, free_port_on(ip).unwrap());
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let options = AuditApiOptions {
            service: AuditService {
                namespace: OPERATOR_NAMESPACE.into(),
                name: SERVICE.into(),
                port: 8443,
            },
            namespace: OPERATOR_NAMESPACE.into(),
            lifetimes: CertificateLifetimes::default(),
            refresh_every: Duration::from_secs(5),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run_audit_api(admin.clone(), listener, options, async move {
            let _ = stopped.await;
        }));
        service_at(admin, address).await;
        eventually("the APIService to become Available", Duration::from_secs(90), || async {
            let service = Api::<APIService>::all(admin.clone())
                .get_opt(API_SERVICE)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("not registered yet")?;
            let conditions = service.status.and_then(|s| s.conditions).unwrap_or_default();
            match conditions.iter().find(|c| c.type_ == "Available") {
                Some(c) if c.status == "True" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        apply(admin, &auditor_cluster_role()).await;
        Self { address, admin: admin.clone(), stop, server }
    }

    /// Stops serving and removes the APIService, so that later test binaries sharing the API
    /// server never discover an API whose server is gone.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
        Api::<APIService>::all(self.admin.clone())
            .delete(API_SERVICE, &Default::default())
            .await
            .unwrap();
    }
}

/// The Service the APIService names, with an EndpointSlice at the in-process audit API.
async fn service_at(client: &Client, address: SocketAddr) {
    chaperone_tests::objects::service_at(
        client,
        OPERATOR_NAMESPACE,
        SERVICE,
        8443,
        address,
        "audit-api-test",
    )
    .await
    .expect("the audit API's Service and EndpointSlice");
}

/// Every object of `namespace`'s access log, read with the gateway's keys.
pub async fn access_log(
    env: &LocalEnv,
    bucket: &str,
    namespace: &str,
) -> BTreeMap<String, Vec<u8>> {
    let s3 = super::s3_client(env, &env.moto.gateway_user);
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(access_log_folder("agents/", namespace))
        .send()
        .await
        .unwrap();
    let mut objects = BTreeMap::new();
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        let body = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
        objects.insert(key.to_owned(), body.body.collect().await.unwrap().to_vec());
    }
    objects
}

/// The public key the operator signs access logs with, as it publishes it.
pub async fn access_log_key(admin: &Client) -> String {
    let published: ConfigMap = Api::namespaced(admin.clone(), OPERATOR_NAMESPACE)
        .get(ACCESS_LOG_KEY_CONFIG_MAP)
        .await
        .unwrap();
    published.data.unwrap()["publicKey"].clone()
}

/// `namespace`'s access log, verified with the key the operator publishes.
pub async fn verified_access_log(
    env: &LocalEnv,
    admin: &Client,
    bucket: &str,
    namespace: &str,
) -> AccessLogReport {
    let mut trusted = TrustedKeys::new();
    trusted.insert_encoded(&access_log_key(admin).await).unwrap();
    verify_access_log(namespace, &access_log(env, bucket, namespace).await, &trusted)
}
