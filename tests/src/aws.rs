//! moto's server as the local S3 and upstream AWS, with signature checking on, and its IAM users.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::{paths, ports::free_port, process::ManagedProcess, provision::PythonEnv};

/// The region the local environment uses.
pub const REGION: &str = "us-east-1";

/// Static keys of an IAM user in moto.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsUser {
    /// IAM user name.
    pub user: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

#[derive(Deserialize)]
struct BootstrapOutput {
    gateway: AwsUser,
    auditor: AwsUser,
}

/// How to reach a running moto server and its IAM users (moto allows unsigned calls only at its
/// start, so the process that started it hands the users' keys on).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MotoDescription {
    /// Endpoint URL.
    pub endpoint: String,
    /// moto's log.
    pub log: PathBuf,
    /// The gateway's upstream identity.
    pub gateway_user: AwsUser,
    /// The auditor's identity.
    pub auditor_user: AwsUser,
}

/// A running moto server (`moto_server`) that checks signatures after its first four calls.
#[derive(Debug)]
pub struct MotoServer {
    /// The server when this process started it; `None` when attached to another process's.
    process: Option<ManagedProcess>,
    log: PathBuf,
    endpoint: String,
    python: PythonEnv,
    /// The gateway's upstream identity: allowed everything.
    pub gateway_user: AwsUser,
    /// An auditor's identity: may read S3 only.
    pub auditor_user: AwsUser,
}

impl MotoServer {
    /// Starts moto on a free loopback port and creates the gateway and auditor IAM users.
    pub fn start(python: &PythonEnv, dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(python.bin("moto_server"));
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .env("MOTO_ALLOW_NONEXISTENT_REGION", "false")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN");
        let mut process = ManagedProcess::start("moto", command, &dir.join("moto.log"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            process.ensure_running()?;
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "moto did not listen on {endpoint} within 60 s; see {}",
                    dir.join("moto.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = Command::new(python.python())
            .arg(paths::workspace_root().join("tests/python/bootstrap_iam.py"))
            .arg(&endpoint)
            .env_remove("AWS_PROFILE")
            .output()
            .context("running tests/python/bootstrap_iam.py")?;
        if !output.status.success() {
            bail!("creating moto's IAM users failed:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        let users: BootstrapOutput = serde_json::from_slice(&output.stdout)
            .context("reading the IAM users bootstrap_iam.py printed")?;
        Ok(Self {
            log: process.log_path().to_owned(),
            process: Some(process),
            endpoint,
            python: python.clone(),
            gateway_user: users.gateway,
            auditor_user: users.auditor,
        })
    }

    /// The moto server another process runs, as its [`MotoDescription`] tells; its IAM users
    /// are the ones that process created.
    pub fn attach(python: &PythonEnv, description: &MotoDescription) -> Self {
        Self {
            process: None,
            log: description.log.clone(),
            endpoint: description.endpoint.clone(),
            python: python.clone(),
            gateway_user: description.gateway_user.clone(),
            auditor_user: description.auditor_user.clone(),
        }
    }

    /// What another process needs to [`attach`](MotoServer::attach) to this server.
    pub fn describe(&self) -> MotoDescription {
        MotoDescription {
            endpoint: self.endpoint.clone(),
            log: self.log.clone(),
            gateway_user: self.gateway_user.clone(),
            auditor_user: self.auditor_user.clone(),
        }
    }

    /// Whether this process runs the server (else it is attached to another process's).
    pub fn is_owned(&self) -> bool {
        self.process.is_some()
    }

    /// moto's endpoint URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// moto's log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A `python` command in the environment's virtualenv (boto3 importable), with no AWS
    /// credentials inherited from the caller's environment.
    pub fn python_command(&self) -> Command {
        let mut command = Command::new(self.python.python());
        scrub_aws_env(&mut command);
        command
    }

    /// An `aws` (CLI v1) command with no AWS settings inherited from the caller's environment.
    pub fn aws_cli_command(&self) -> Command {
        let mut command = Command::new(self.python.aws_cli());
        scrub_aws_env(&mut command);
        command
    }
}

/// Removes every `AWS_*` variable so only what a test sets reaches a client.
pub fn scrub_aws_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command.env("AWS_CONFIG_FILE", "/dev/null").env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
}
