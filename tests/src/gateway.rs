//! A gateway process started the way a cluster would run it: from a config file and a keys file
//! in the shapes the operator writes, serving TLS with a certificate made by the operator's own
//! code ([`chaperone_config::tls`], a CA per namespace), with an agent whose environment is what
//! the pod webhook injects (the https endpoint and the CA variables) and whose token comes from a
//! real TokenRequest.

use std::{
    fs,
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chaperone_config::tls::{
    AGENT_CA_FILE, CertificateLifetimes, IssuedCertificates, agent_trust_variables, gateway_ca_name,
};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
    rbac::v1::{ClusterRoleBinding, RoleRef, Subject},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde_json::{Value, json};

use crate::{
    LocalEnv, aws::REGION, objects::ensure_namespace, ports::free_port, process::ManagedProcess,
};

/// What a test asks of its gateway.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// The namespace the gateway serves (created if missing).
    pub namespace: String,
    /// The AgentConnection name.
    pub connection: String,
    /// Service accounts admitted.
    pub service_accounts: Vec<String>,
    /// `spec.policy.allow`.
    pub allow: Vec<String>,
    /// `spec.policy.deny`.
    pub deny: Vec<String>,
    /// The recording bucket (created in moto if missing).
    pub recording_bucket: String,
    /// RecordingPolicy `capture.maxBodyBytes`.
    pub max_body_bytes: u64,
    /// RecordingPolicy `onFailure`.
    pub on_failure: String,
    /// RecordingPolicy `durability` (`Fsync` or `Written`).
    pub durability: String,
    /// Extra `approvalRules` entries, by name, as JSON.
    pub approval_rules: Value,
    /// Extra command-line flags for the gateway (e.g. `--max-spool-mib=1`).
    pub extra_args: Vec<String>,
    /// The connection's `upstream` block (static keys, `webIdentity`, `assumeRole`) as JSON;
    /// `None` signs with the moto gateway user's static keys.
    pub upstream: Option<Value>,
    /// Where every service and the recording bucket are reached; moto when `None` (the
    /// benchmarks point it at their own upstream).
    pub upstream_endpoint: Option<String>,
    /// The gateway's `RUST_LOG`.
    pub log_filter: String,
    /// Serve plain HTTP (`--plaintext`) instead of TLS.
    pub plaintext: bool,
    /// `None`: the recording policy names the moto gateway user's keys. `Some(vars)`: it names
    /// none, so the recorder uses the gateway's ambient credentials, and the gateway process gets
    /// `vars` (e.g. the web identity variables IRSA injects).
    pub ambient_recorder_env: Option<Vec<(String, String)>>,
}

impl GatewaySpec {
    /// A gateway for `namespace` admitting `pr-bot`, allowing S3, DynamoDB, SQS, Lambda reads and
    /// STS identity, denying IAM.
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.into(),
            connection: "prod-aws".into(),
            service_accounts: vec!["pr-bot".into()],
            allow: [
                "s3:*",
                "dynamodb:*",
                "sqs:*",
                "lambda:List*",
                "sts:GetCallerIdentity",
                "secretsmanager:*",
            ]
            .map(String::from)
            .to_vec(),
            deny: vec!["iam:*".into(), "s3:PutBucketPolicy".into()],
            recording_bucket: format!("{namespace}-audit"),
            max_body_bytes: 1024 * 1024,
            on_failure: "FailClosed".into(),
            durability: "Fsync".into(),
            approval_rules: json!({}),
            extra_args: Vec::new(),
            upstream: None,
            upstream_endpoint: None,
            log_filter: "info,chaperone_gateway=debug".into(),
            ambient_recorder_env: None,
            plaintext: false,
        }
    }
}

/// A running gateway and what its agents and auditors need.
#[derive(Debug)]
pub struct GatewayProcess {
    process: ManagedProcess,
    /// The agents' endpoint, `https://127.0.0.1:<port>` (`http://` with
    /// [`GatewaySpec::plaintext`]).
    pub endpoint: String,
    /// The CA and serving certificate the gateway serves (none in plain HTTP).
    pub certificates: Option<IssuedCertificates>,
    /// The admin endpoint.
    pub admin: String,
    /// The gateway's folder (config, keys, spool, tokens).
    pub dir: PathBuf,
    /// The config file the gateway reads (rewrite it to reload).
    pub config_path: PathBuf,
    /// The config as written.
    pub config: Value,
    /// The recording public key (base64 of the Ed25519 public key is derived by the recorder;
    /// this is the 32-byte seed, base64).
    pub recording_seed: [u8; 32],
    /// The spec it was started from.
    pub spec: GatewaySpec,
    binary: PathBuf,
    args: Vec<String>,
}

/// Mints a token for `service_account` with audience `chaperone.dev` (the SA is created if missing).
pub async fn agent_token(
    client: &Client,
    namespace: &str,
    service_account: &str,
) -> anyhow::Result<String> {
    service_account_token(client, namespace, service_account, "chaperone.dev").await
}

/// Mints a one-hour token for `service_account` with `audience` (the SA is created if missing),
/// e.g. `sts.amazonaws.com` for the gateway's own web identity.
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    service_account: &str,
    audience: &str,
) -> anyhow::Result<String> {
    ensure_namespace(client, namespace).await?;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some(service_account.into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating the service account"),
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.into()],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer: TokenRequest =
        api.create_subresource("token", service_account, &PostParams::default(), &request).await?;
    Ok(answer.status.context("TokenRequest without status")?.token)
}

/// A token the gateway fetches the JWKS with: its own service account, bound to
/// `system:service-account-issuer-discovery`, audience the API server.
async fn gateway_token(client: &Client, namespace: &str) -> anyhow::Result<String> {
    ensure_namespace(client, namespace).await?;
    let sa = "chaperone-gateway";
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some(sa.into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating the gateway's service account"),
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("chaperone-gateway-discovery-{namespace}")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "system:service-account-issuer-discovery".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(namespace.into()),
            ..Default::default()
        }]),
    };
    match bindings.create(&PostParams::default(), &binding).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("binding the gateway to issuer discovery"),
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer: TokenRequest =
        api.create_subresource("token", sa, &PostParams::default(), &request).await?;
    Ok(answer.status.context("TokenRequest without status")?.token)
}

/// The names a local gateway's certificate is valid for.
pub const LOCAL_SERVING_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// The folder of a gateway's CA file as agents mount it (only the CA inside).
pub fn agent_ca_dir(dir: &Path) -> PathBuf {
    dir.join("agent-ca")
}

/// Issues `namespace`'s gateway CA and a serving certificate for 127.0.0.1 with the operator's
/// code, writes `tls.crt` and `tls.key` into `dir` and the CA into [`agent_ca_dir`], and returns
/// the gateway's TLS flags with the certificates.
fn issue_local_certificates(
    dir: &Path,
    namespace: &str,
) -> anyhow::Result<(Vec<String>, IssuedCertificates)> {
    let names: Vec<String> = LOCAL_SERVING_NAMES.map(String::from).to_vec();
    let certificates = IssuedCertificates::generate(&gateway_ca_name(namespace), &names)?;
    write_serving_files(dir, &certificates)?;
    fs::create_dir_all(agent_ca_dir(dir))?;
    fs::write(agent_ca_dir(dir).join(AGENT_CA_FILE), certificates.ca_pem())?;
    let args = vec![
        format!("--tls-cert={}", dir.join("tls.crt").display()),
        format!("--tls-key={}", dir.join("tls.key").display()),
    ];
    Ok((args, certificates))
}

/// Replaces `tls.crt` and `tls.key` in `dir` the way a kubelet updates a Secret volume: each file
/// written aside and renamed into place.
fn write_serving_files(dir: &Path, certificates: &IssuedCertificates) -> anyhow::Result<()> {
    for (name, pem) in [("tls.key", certificates.key_pem()), ("tls.crt", certificates.cert_pem())] {
        let partial = dir.join(format!("{name}.partial"));
        fs::write(&partial, pem)?;
        fs::rename(&partial, dir.join(name))?;
    }
    Ok(())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if let Ok(mut urandom) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut out);
    }
    out
}

/// Creates a bucket in moto with boto3 (signed with the gateway user's keys).
pub fn create_bucket(env: &LocalEnv, bucket: &str) -> anyhow::Result<()> {
    let user = &env.moto.gateway_user;
    let output = env
        .moto
        .python_command()
        .args([
            "-c",
            "import sys,boto3\ns3=boto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id=sys.argv[2],aws_secret_access_key=sys.argv[3])\ntry:\n  s3.create_bucket(Bucket=sys.argv[4])\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n  pass",
            env.moto.endpoint(),
            &user.access_key_id,
            &user.secret_access_key,
            bucket,
        ])
        .output()?;
    if !output.status.success() {
        bail!("creating bucket {bucket}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

impl GatewayProcess {
    /// Writes config and keys for `spec` and starts `binary` (the `chaperone-gateway` executable).
    pub async fn start(env: &LocalEnv, binary: &Path, spec: GatewaySpec) -> anyhow::Result<Self> {
        let client = env.control_plane.client().await?;
        let dir = env.dir().join(format!("gateway-{}-{}", spec.namespace, free_port()?));
        fs::create_dir_all(&dir)?;
        let gateway_token = gateway_token(&client, &spec.namespace).await?;
        fs::write(dir.join("gateway-token"), gateway_token)?;
        fs::write(dir.join("ca.crt"), env.control_plane.ca_pem())?;
        let bucket = spec.recording_bucket.clone();
        create_bucket(env, &bucket)?;

        let user = &env.moto.gateway_user;
        let upstream_endpoint =
            spec.upstream_endpoint.clone().unwrap_or_else(|| env.moto.endpoint().to_owned());
        let static_keys =
            json!({"accessKeyId": user.access_key_id, "secretAccessKey": user.secret_access_key});
        let upstream = spec.upstream.clone().unwrap_or_else(|| static_keys.clone());
        let endpoints: serde_json::Map<String, Value> = [
            "s3",
            "dynamodb",
            "sts",
            "sqs",
            "lambda",
            "iam",
            "secretsmanager",
            "kms",
            "ssm",
            "sns",
            "logs",
            "ec2",
        ]
        .iter()
        .map(|s| (s.to_string(), json!(upstream_endpoint)))
        .collect();
        let config = json!({
            "version": 1,
            "namespace": spec.namespace,
            "identity": {
                "issuer": env.control_plane.issuer(),
                "caFile": dir.join("ca.crt"),
                "tokenFile": dir.join("gateway-token"),
            },
            "connections": [{
                "name": spec.connection,
                "serviceAccounts": spec.service_accounts,
                "region": REGION,
                "upstream": upstream,
                "endpoints": endpoints,
                "policy": {"allow": spec.allow, "deny": spec.deny},
                "recordingPolicy": "default",
            }],
            "recordingPolicies": {
                "default": {
                    "s3": {"bucket": bucket, "prefix": "agents/", "region": REGION, "endpoint": upstream_endpoint},
                    "retention": {"days": 30},
                    "capture": {"maxBodyBytes": spec.max_body_bytes},
                    "onFailure": spec.on_failure,
                    "durability": spec.durability,
                }
            },
            "recordingCredentials": match spec.ambient_recorder_env {
                None => json!({"default": static_keys}),
                Some(_) => json!({}),
            },
            "approvalRules": spec.approval_rules,
        });
        let config_path = dir.join("gateway.yaml");
        fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let recording_seed = random_bytes::<32>();
        let keys = json!({
            "sessionKeys": [{"id": "k1", "secret": B64.encode(random_bytes::<32>())}],
            "recordingSigningKey": B64.encode(recording_seed),
        });
        fs::write(dir.join("keys.json"), serde_json::to_vec_pretty(&keys)?)?;

        let port = free_port()?;
        let admin_port = free_port()?;
        let args: Vec<String> = vec![
            format!("--config={}", config_path.display()),
            format!("--keys={}", dir.join("keys.json").display()),
            format!("--listen=127.0.0.1:{port}"),
            format!("--admin=127.0.0.1:{admin_port}"),
            format!("--spool-dir={}", dir.join("spool").display()),
            "--replica=gw-0".into(),
            "--digest-interval-seconds=5".into(),
            "--segment-max-age-seconds=1".into(),
            "--reload-interval-seconds=1".into(),
        ];
        let (tls_args, certificates) = if spec.plaintext {
            (vec!["--plaintext".to_owned()], None)
        } else {
            let (args, certificates) = issue_local_certificates(&dir, &spec.namespace)?;
            (args, Some(certificates))
        };
        let args: Vec<String> =
            args.into_iter().chain(tls_args).chain(spec.extra_args.iter().cloned()).collect();
        Self::launch(
            binary,
            args,
            dir,
            config_path,
            config,
            recording_seed,
            spec,
            [port, admin_port],
            certificates,
        )
    }

    /// Spawns `binary` with `args` and waits until it listens on the first of `ports` (agents;
    /// the second is the admin port).
    #[allow(clippy::too_many_arguments)]
    fn launch(
        binary: &Path,
        args: Vec<String>,
        dir: PathBuf,
        config_path: PathBuf,
        config: Value,
        recording_seed: [u8; 32],
        spec: GatewaySpec,
        [port, admin_port]: [u16; 2],
        certificates: Option<IssuedCertificates>,
    ) -> anyhow::Result<Self> {
        let scheme = if certificates.is_some() { "https" } else { "http" };
        let mut gateway = Self {
            process: Self::spawn(binary, &args, &dir, &spec)?,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            certificates,
            admin: format!("http://127.0.0.1:{admin_port}"),
            dir,
            config_path,
            config,
            recording_seed,
            spec,
            binary: binary.to_owned(),
            args,
        };
        gateway.wait_listening(port)?;
        Ok(gateway)
    }

    fn spawn(
        binary: &Path,
        args: &[String],
        dir: &Path,
        spec: &GatewaySpec,
    ) -> anyhow::Result<ManagedProcess> {
        let mut command = Command::new(binary);
        command.args(args).env("RUST_LOG", &spec.log_filter);
        crate::aws::scrub_aws_env(&mut command);
        command.envs(spec.ambient_recorder_env.iter().flatten().map(|(k, v)| (k, v)));
        ManagedProcess::start("chaperone-gateway", command, &dir.join("gateway.log"))
    }

    fn wait_listening(&mut self, port: u16) -> anyhow::Result<()> {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.process.ensure_running()?;
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the gateway did not listen on {} within 30 s; see {}",
                    self.endpoint,
                    self.log_path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Kills the gateway with SIGKILL (no shutdown: the spool is left as a crash leaves it).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the gateway again with the same files and ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill();
        self.process = Self::spawn(&self.binary, &self.args, &self.dir, &self.spec)?;
        let port: u16 =
            self.endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).context("port")?;
        self.wait_listening(port)
    }

    /// Stops the gateway with SIGTERM (graceful: streams closed and uploaded).
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(30));
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Peak resident memory of the gateway process so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The gateway's log.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The gateway's whole log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The role ARN an agent of `connection` assumes.
    pub fn role_arn(&self) -> String {
        format!(
            "arn:aws:iam::000000000000:role/chaperone/{}/{}",
            self.spec.namespace, self.spec.connection
        )
    }

    /// Writes the agent's token file and returns the environment the pod webhook injects (plus
    /// a private HOME so the CLI's credential cache is the test's own).
    pub async fn agent_env(
        &self,
        env: &LocalEnv,
        service_account: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let client = env.control_plane.client().await?;
        let token = agent_token(&client, &self.spec.namespace, service_account).await?;
        let home = self.dir.join(format!("home-{service_account}-{}", free_port()?));
        fs::create_dir_all(&home)?;
        let token_file = home.join("token");
        fs::write(&token_file, token)?;
        let mut vars: Vec<(String, String)> = vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ENDPOINT_URL_STS".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_DEFAULT_REGION".into(), REGION.into()),
            ("AWS_ROLE_ARN".into(), self.role_arn()),
            ("AWS_ROLE_SESSION_NAME".into(), service_account.into()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE".into(), token_file.display().to_string()),
            ("HOME".into(), home.display().to_string()),
        ];
        if self.certificates.is_some() {
            let ca_dir = agent_ca_dir(&self.dir);
            vars.extend(
                agent_trust_variables(&ca_dir.display().to_string())
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value)),
            );
        }
        Ok(vars)
    }

    /// The CA file agents verify the gateway with (none in plain HTTP).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.certificates.as_ref().map(|_| agent_ca_dir(&self.dir).join(AGENT_CA_FILE))
    }

    /// Issues a new serving certificate from the same CA (as the operator does when one is due)
    /// and replaces the gateway's files with it, as a kubelet does; the gateway serves it from its
    /// next reload on. Returns the new certificate (PEM).
    pub fn rotate_certificate(&mut self) -> anyhow::Result<String> {
        let current = self.certificates.as_ref().context("the gateway serves plain HTTP")?;
        let rotated = current.reissue_serving(
            current.names(),
            time::OffsetDateTime::now_utc(),
            CertificateLifetimes::default().serving,
        )?;
        write_serving_files(&self.dir, &rotated)?;
        let pem = rotated.cert_pem().to_owned();
        self.certificates = Some(rotated);
        Ok(pem)
    }

    /// Rewrites the config file with `change` applied (the gateway reloads it).
    pub fn rewrite_config(&mut self, change: impl FnOnce(&mut Value)) -> anyhow::Result<()> {
        change(&mut self.config);
        let partial = self.config_path.with_extension("partial");
        fs::write(&partial, serde_json::to_vec_pretty(&self.config)?)?;
        fs::rename(&partial, &self.config_path)?;
        Ok(())
    }
}

/// Runs the AWS CLI with `env` and `args`; returns (success, stdout, stderr).
pub fn aws_cli(
    env: &LocalEnv,
    agent_env: &[(String, String)],
    args: &[&str],
) -> (bool, String, String) {
    let mut command = env.moto.aws_cli_command();
    command.args(args);
    for (key, value) in agent_env {
        command.env(key, value);
    }
    match command.output() {
        Ok(output) => (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        Err(error) => (false, String::new(), error.to_string()),
    }
}

/// Points the cluster-only parts of an operator-written `gateway.yaml` at this machine, as a
/// kubelet and the cluster's DNS would: the projected CA and token files become the gateway
/// folder's copies, and the JWKS URL the API server's own.
fn localize_operator_config(env: &LocalEnv, dir: &Path, yaml: &str) -> anyhow::Result<Value> {
    let mut config: Value =
        serde_yaml::from_str(yaml).context("parsing the config Secret's gateway.yaml")?;
    let identity = config
        .get_mut("identity")
        .and_then(Value::as_object_mut)
        .context("gateway.yaml without identity")?;
    identity.insert("caFile".into(), json!(dir.join("ca.crt")));
    identity.insert("tokenFile".into(), json!(dir.join("gateway-token")));
    identity.insert("jwksUri".into(), json!(format!("{}/openid/v1/jwks", env.control_plane.url())));
    Ok(config)
}

impl GatewayProcess {
    /// Starts `binary` from what the operator wrote: the config Secret's `gateway.yaml` and the
    /// keys Secret's `keys.json` of `namespace`, as a kubelet would mount them (see
    /// [`GatewayProcess::refresh_from_operator_config`] for the Secret's later versions).
    /// `connection` is the AgentConnection agents use; `extra_args` are added to the gateway's
    /// command line (e.g. `--kubeconfig` for approvals).
    pub async fn start_from_operator_config(
        env: &LocalEnv,
        binary: &Path,
        namespace: &str,
        connection: &str,
        config_yaml: &str,
        keys_json: &[u8],
        extra_args: &[String],
    ) -> anyhow::Result<Self> {
        let client = env.control_plane.client().await?;
        let dir = env.dir().join(format!("gateway-{namespace}-{}", free_port()?));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("gateway-token"), gateway_token(&client, namespace).await?)?;
        fs::write(dir.join("ca.crt"), env.control_plane.ca_pem())?;
        let config = localize_operator_config(env, &dir, config_yaml)?;
        let config_path = dir.join("gateway.yaml");
        fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        fs::write(dir.join("keys.json"), keys_json)?;
        let keys: Value = serde_json::from_slice(keys_json).context("parsing keys.json")?;
        let seed = B64
            .decode(keys["recordingSigningKey"].as_str().unwrap_or_default())
            .context("keys.json recordingSigningKey is not base64")?;
        let recording_seed: [u8; 32] =
            seed.try_into().map_err(|_| anyhow::anyhow!("recordingSigningKey is not 32 bytes"))?;
        let mut spec = GatewaySpec::new(namespace);
        spec.connection = connection.to_owned();
        let port = free_port()?;
        let admin_port = free_port()?;
        let (tls_args, certificates) = issue_local_certificates(&dir, namespace)?;
        let args: Vec<String> = vec![
            format!("--config={}", config_path.display()),
            format!("--keys={}", dir.join("keys.json").display()),
            format!("--listen=127.0.0.1:{port}"),
            format!("--admin=127.0.0.1:{admin_port}"),
            format!("--spool-dir={}", dir.join("spool").display()),
            "--replica=gw-0".into(),
            "--reload-interval-seconds=1".into(),
        ]
        .into_iter()
        .chain(tls_args)
        .chain(extra_args.iter().cloned())
        .collect();
        Self::launch(
            binary,
            args,
            dir,
            config_path,
            config,
            recording_seed,
            spec,
            [port, admin_port],
            Some(certificates),
        )
    }

    /// Replaces the config file with a new version of the operator's `gateway.yaml` (localized
    /// as at start), as the kubelet does when the config Secret changes; the gateway reloads it.
    pub fn refresh_from_operator_config(
        &mut self,
        env: &LocalEnv,
        config_yaml: &str,
    ) -> anyhow::Result<()> {
        let config = localize_operator_config(env, &self.dir, config_yaml)?;
        self.rewrite_config(|current| *current = config)
    }
}
