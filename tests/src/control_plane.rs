//! etcd and kube-apiserver as local processes, started the way controller-runtime's envtest does.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use kube::{Client, Config, config::Kubeconfig};
use serde::{Deserialize, Serialize};

use crate::{
    pki::{CertifiedKey, ServiceAccountKey, TestCa},
    ports::free_port,
    process::ManagedProcess,
    provision::Provisioned,
};

/// The admin user's name; its client certificate is in `system:masters`.
pub const ADMIN_USER: &str = "chaperone-admin";

/// Common name of the test cluster's CA.
const CA_NAME: &str = "chaperone-test-ca";

/// Common name of the aggregation layer's request-header (front-proxy) CA.
const FRONT_PROXY_CA_NAME: &str = "chaperone-test-front-proxy-ca";

/// Common name of the API server's front-proxy client certificate: the only name aggregated API
/// servers accept (`--requestheader-allowed-names`).
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// The audit policy: requests to the audit API (group audit.chaperone.dev) at Metadata level, so a
/// test can find each read; nothing else, to keep the log small.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: audit.chaperone.dev
  - level: None
";

/// How to reach and impersonate a running control plane: written by the process that runs it,
/// read by test binaries that share it (see [`crate::env::EnvDescription`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneDescription {
    /// The run directory (certificates, etcd data, logs).
    pub dir: PathBuf,
    /// The API server's URL.
    pub url: String,
    /// The cluster CA's certificate, PEM.
    pub ca_cert_pem: String,
    /// The cluster CA's key, PEM: attached processes sign client certificates with it.
    pub ca_key_pem: String,
    /// The service-account signing key, PEM.
    pub sa_private_pem: String,
    /// The service-account public key, PEM.
    pub sa_public_pem: String,
    /// The admin kubeconfig.
    pub admin_kubeconfig: PathBuf,
    /// Component name and log path of etcd and kube-apiserver.
    pub logs: Vec<(String, PathBuf)>,
    /// The Kubernetes audit log (JSON lines; audit.chaperone.dev requests only).
    #[serde(default)]
    pub audit_log: PathBuf,
}

/// A running etcd + kube-apiserver pair with RBAC, a service-account issuer and client certificates.
#[derive(Debug)]
pub struct ControlPlane {
    /// etcd and kube-apiserver when this process started them; empty when attached to an
    /// environment another process runs ([`ControlPlane::attach`]).
    processes: Vec<ManagedProcess>,
    logs: Vec<(String, PathBuf)>,
    dir: PathBuf,
    url: String,
    ca: TestCa,
    sa_key: ServiceAccountKey,
    admin_kubeconfig: PathBuf,
    audit_log: PathBuf,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver under `dir` and waits until /readyz answers ok.
    pub async fn start(provisioned: &Provisioned, dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)?;
        let ca = TestCa::generate(CA_NAME)?;
        let serving = ca.serving_cert(&["kubernetes", "kubernetes.default.svc"])?;
        let sa_key = ServiceAccountKey::generate()?;
        let pki = dir.join("pki");
        fs::create_dir_all(&pki)?;
        fs::write(pki.join("ca.crt"), ca.cert_pem())?;
        fs::write(pki.join("apiserver.crt"), &serving.cert_pem)?;
        fs::write(pki.join("apiserver.key"), &serving.key_pem)?;
        fs::write(pki.join("sa.key"), &sa_key.private_pem)?;
        fs::write(pki.join("sa.pub"), &sa_key.public_pem)?;
        // The aggregation layer: the API server proxies to aggregated API servers (the audit API)
        // with this client certificate and the user in X-Remote-* headers.
        let front_proxy_ca = TestCa::generate(FRONT_PROXY_CA_NAME)?;
        let front_proxy_client = front_proxy_ca.client_cert(FRONT_PROXY_CLIENT, &[])?;
        fs::write(pki.join("front-proxy-ca.crt"), front_proxy_ca.cert_pem())?;
        fs::write(pki.join("front-proxy-client.crt"), &front_proxy_client.cert_pem)?;
        fs::write(pki.join("front-proxy-client.key"), &front_proxy_client.key_pem)?;
        let audit_policy = dir.join("audit-policy.yaml");
        fs::write(&audit_policy, AUDIT_POLICY)?;
        let audit_log = dir.join("kube-apiserver-audit.log");

        let etcd_client_port = free_port()?;
        let etcd_peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_client_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut etcd_cmd = Command::new(&provisioned.etcd);
        etcd_cmd
            .arg("--name=chaperone-test")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=chaperone-test={peer_url}"))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn");
        let etcd = ManagedProcess::start("etcd", etcd_cmd, &dir.join("etcd.log"))?;

        let port = free_port()?;
        let url = format!("https://127.0.0.1:{port}");
        let mut apiserver_cmd = Command::new(&provisioned.kube_apiserver);
        apiserver_cmd
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", pki.display()))
            .arg(format!("--tls-cert-file={}", pki.join("apiserver.crt").display()))
            .arg(format!("--tls-private-key-file={}", pki.join("apiserver.key").display()))
            .arg(format!("--client-ca-file={}", pki.join("ca.crt").display()))
            .arg(format!("--service-account-key-file={}", pki.join("sa.pub").display()))
            .arg(format!("--service-account-signing-key-file={}", pki.join("sa.key").display()))
            .arg(format!("--service-account-issuer={url}"))
            .arg("--service-account-extend-token-expiration=false")
            .arg("--authorization-mode=RBAC")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg("--allow-privileged=true")
            .arg("--enable-priority-and-fairness=false")
            .arg("--endpoint-reconciler-type=none")
            .arg(format!(
                "--requestheader-client-ca-file={}",
                pki.join("front-proxy-ca.crt").display()
            ))
            .arg(format!("--requestheader-allowed-names={FRONT_PROXY_CLIENT}"))
            .arg("--requestheader-username-headers=X-Remote-User")
            .arg("--requestheader-group-headers=X-Remote-Group")
            .arg("--requestheader-extra-headers-prefix=X-Remote-Extra-")
            .arg(format!(
                "--proxy-client-cert-file={}",
                pki.join("front-proxy-client.crt").display()
            ))
            .arg(format!(
                "--proxy-client-key-file={}",
                pki.join("front-proxy-client.key").display()
            ))
            // No kube-proxy: the aggregator dials an APIService's endpoint, not its cluster IP.
            .arg("--enable-aggregator-routing=true")
            .arg(format!("--audit-policy-file={}", audit_policy.display()))
            .arg(format!("--audit-log-path={}", audit_log.display()))
            .arg("--audit-log-format=json")
            .arg("--audit-log-mode=blocking")
            .arg("--v=1");
        let apiserver = ManagedProcess::start(
            "kube-apiserver",
            apiserver_cmd,
            &dir.join("kube-apiserver.log"),
        )?;

        let admin = ca.client_cert(ADMIN_USER, &["system:masters"])?;
        let admin_kubeconfig = dir.join("kubeconfig");
        fs::write(&admin_kubeconfig, kubeconfig_yaml(&url, ca.cert_pem(), &admin, ADMIN_USER))?;

        let logs = [&etcd, &apiserver]
            .iter()
            .map(|p| (p.name().to_owned(), p.log_path().to_owned()))
            .collect();
        let mut plane = Self {
            processes: vec![etcd, apiserver],
            logs,
            dir: dir.to_owned(),
            url,
            ca,
            sa_key,
            admin_kubeconfig,
            audit_log,
        };
        plane.wait_ready(Duration::from_secs(120)).await?;
        Ok(plane)
    }

    /// The control plane another process runs, as its [`ControlPlaneDescription`] tells; checks
    /// that it answers /readyz.
    pub async fn attach(description: &ControlPlaneDescription) -> anyhow::Result<Self> {
        let d = description;
        let mut plane = Self {
            processes: Vec::new(),
            logs: d.logs.clone(),
            dir: d.dir.clone(),
            url: d.url.clone(),
            ca: TestCa::from_pem(CA_NAME, &d.ca_cert_pem, &d.ca_key_pem)?,
            sa_key: ServiceAccountKey {
                private_pem: d.sa_private_pem.clone(),
                public_pem: d.sa_public_pem.clone(),
            },
            admin_kubeconfig: d.admin_kubeconfig.clone(),
            audit_log: d.audit_log.clone(),
        };
        plane.wait_ready(Duration::from_secs(30)).await?;
        Ok(plane)
    }

    /// What another process needs to [`attach`](ControlPlane::attach) to this control plane.
    pub fn describe(&self) -> ControlPlaneDescription {
        ControlPlaneDescription {
            dir: self.dir.clone(),
            url: self.url.clone(),
            ca_cert_pem: self.ca.cert_pem().to_owned(),
            ca_key_pem: self.ca.key_pem().to_owned(),
            sa_private_pem: self.sa_key.private_pem.clone(),
            sa_public_pem: self.sa_key.public_pem.clone(),
            admin_kubeconfig: self.admin_kubeconfig.clone(),
            logs: self.logs.clone(),
            audit_log: self.audit_log.clone(),
        }
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = self.client().await?;
        let mut last_error = String::new();
        while started.elapsed() < timeout {
            for process in &mut self.processes {
                process.ensure_running()?;
            }
            let request = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last_error = body,
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "kube-apiserver at {} was not ready after {} s (last answer: {last_error}); logs: {}",
            self.url,
            timeout.as_secs(),
            self.logs.iter().map(|(_, p)| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    }

    /// The API server's URL, e.g. `https://127.0.0.1:41234`; also the service-account issuer.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The service-account token issuer (`iss` of every token the API server mints).
    pub fn issuer(&self) -> &str {
        &self.url
    }

    /// The cluster CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The service-account signing key pair.
    pub fn service_account_key(&self) -> &ServiceAccountKey {
        &self.sa_key
    }

    /// Path of the admin kubeconfig (`system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The Kubernetes audit log (JSON lines): requests to group audit.chaperone.dev.
    pub fn audit_log(&self) -> &Path {
        &self.audit_log
    }

    /// The run directory (certificates, etcd data, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Components' logs, for printing when a test fails.
    pub fn logs(&self) -> Vec<(&str, &Path)> {
        self.logs.iter().map(|(name, path)| (name.as_str(), path.as_path())).collect()
    }

    /// A client authenticated as the admin (`system:masters`).
    pub async fn client(&self) -> anyhow::Result<Client> {
        client_from_kubeconfig(&fs::read_to_string(&self.admin_kubeconfig)?).await
    }

    /// A kubeconfig (YAML) for `user` in `groups`, authenticated by a fresh client certificate.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> anyhow::Result<String> {
        let cert = self.ca.client_cert(user, groups)?;
        Ok(kubeconfig_yaml(&self.url, self.ca.cert_pem(), &cert, user))
    }

    /// Writes a kubeconfig for `user` in `groups` into the run directory and returns its path.
    pub fn write_kubeconfig_for(&self, user: &str, groups: &[&str]) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(format!("kubeconfig-{user}"));
        fs::write(&path, self.kubeconfig_for(user, groups)?)?;
        Ok(path)
    }

    /// A client authenticated as `user` in `groups` (RBAC applies to it as to anyone).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> anyhow::Result<Client> {
        client_from_kubeconfig(&self.kubeconfig_for(user, groups)?).await
    }
}

/// Chooses ring as rustls' process-wide crypto provider. Builds that link several providers
/// (the AWS SDK brings aws-lc-rs, kube brings ring) need one chosen before any TLS client starts.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds a client from kubeconfig YAML.
pub async fn client_from_kubeconfig(yaml: &str) -> anyhow::Result<Client> {
    install_crypto_provider();
    let kubeconfig = Kubeconfig::from_yaml(yaml).context("parsing kubeconfig")?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("loading kubeconfig")?;
    Client::try_from(config).context("building a Kubernetes client")
}

fn kubeconfig_yaml(url: &str, ca_pem: &str, cert: &CertifiedKey, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: chaperone-local
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: chaperone-local
  context:
    cluster: chaperone-local
    user: {user}
current-context: chaperone-local
",
        ca = B64.encode(ca_pem),
        cert = B64.encode(&cert.cert_pem),
        key = B64.encode(&cert.key_pem),
    )
}
