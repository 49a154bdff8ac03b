//! Real AWS clients run the way an agent runs them: the AWS SDK for JavaScript v3
//! (`tests/node/s3-session.mjs`), the AWS SDK for Go v2 (`tests/go/aws-sdk-go-v2`) and the Rust
//! `aws-sdk-s3`, each configured by nothing but an
//! environment (endpoint, region, and static keys or a web identity), running the same S3 session
//! and reporting each step as a [`StepResult`].
//!
//! The environment is passed explicitly, as a process environment with every inherited `AWS_*`
//! variable removed: to the Node process, to the Go program, and to the Rust SDK, which runs in
//! a child process (`chaperone-env rust-s3-session`) so that what its default HTTPS client reads
//! from the environment (`SSL_CERT_DIR`, `SSL_CERT_FILE`, read once per process) is the agent's
//! and no test mutates its own process environment.

use std::{collections::HashMap, process::Output};

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use aws_sdk_s3::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
};
use serde::{Deserialize, Serialize};

use crate::{
    AwsUser,
    aws::{REGION, scrub_aws_env},
    provision::{AWS_SDK_GO_V2_SESSION, NodeEnv, ensure_go_program},
};

/// The key the S3 session writes, lists, reads back and deletes.
pub const SESSION_KEY: &str = "chaperone/session.txt";

/// One step of the S3 session, in the order the session runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Step {
    /// CreateBucket.
    CreateBucket,
    /// PutObject of [`SESSION_KEY`].
    Put,
    /// ListObjectsV2; the listing must show [`SESSION_KEY`].
    List,
    /// GetObject; the content must be what was put.
    Get,
    /// DeleteObject.
    DeleteObject,
    /// DeleteBucket.
    DeleteBucket,
}

impl S3Step {
    /// Every step, in session order.
    pub const ALL: [S3Step; 6] = [
        S3Step::CreateBucket,
        S3Step::Put,
        S3Step::List,
        S3Step::Get,
        S3Step::DeleteObject,
        S3Step::DeleteBucket,
    ];

    /// The step named `name` ([`S3Step::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.name() == name)
    }

    /// The step's name as the scripts print it (`create-bucket`, `put`, ...).
    pub fn name(self) -> &'static str {
        match self {
            S3Step::CreateBucket => "create-bucket",
            S3Step::Put => "put",
            S3Step::List => "list",
            S3Step::Get => "get",
            S3Step::DeleteObject => "delete-object",
            S3Step::DeleteBucket => "delete-bucket",
        }
    }
}

/// What one step of a session did: one JSON line of `s3-session.mjs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct StepResult {
    /// The step's name ([`S3Step::name`]).
    pub step: String,
    /// Whether the step went as expected (for an expected denial: whether it was denied).
    pub ok: bool,
    /// The step was expected to be denied and was, with AccessDenied.
    #[serde(default)]
    pub denied: bool,
    /// The AWS error code (`AccessDenied`, `SignatureDoesNotMatch`, ...), or the script's own
    /// (`UnexpectedSuccess`, `ContentMismatch`, `ObjectNotListed`), when the step failed or was
    /// denied.
    #[serde(default)]
    pub code: Option<String>,
    /// The error's message.
    #[serde(default)]
    pub message: Option<String>,
}

impl StepResult {
    fn passed(step: S3Step) -> Self {
        Self { step: step.name().into(), ok: true, denied: false, code: None, message: None }
    }

    fn denied(step: S3Step, message: String) -> Self {
        Self {
            step: step.name().into(),
            ok: true,
            denied: true,
            code: Some("AccessDenied".into()),
            message: Some(message),
        }
    }

    fn failed(step: S3Step, code: &str, message: String) -> Self {
        Self {
            step: step.name().into(),
            ok: false,
            denied: false,
            code: Some(code.into()),
            message: Some(message),
        }
    }
}

/// The first step that failed, if any.
pub fn first_failure(steps: &[StepResult]) -> Option<&StepResult> {
    steps.iter().find(|step| !step.ok)
}

/// The environment of an agent holding static keys: endpoint, region and the key pair.
pub fn static_keys_env(endpoint: &str, user: &AwsUser) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_REGION".into(), REGION.into()),
        ("AWS_ACCESS_KEY_ID".into(), user.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), user.secret_access_key.clone()),
    ]
}

/// The environment Chaperone's gateway hands an agent: endpoint, region, the role to assume and
/// the file holding the web identity token (the SDK exchanges it with AssumeRoleWithWebIdentity at
/// the same endpoint).
pub fn web_identity_env(
    endpoint: &str,
    role_arn: &str,
    session_name: &str,
    token_file: &std::path::Path,
) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_REGION".into(), REGION.into()),
        ("AWS_ROLE_ARN".into(), role_arn.into()),
        ("AWS_ROLE_SESSION_NAME".into(), session_name.into()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE".into(), token_file.display().to_string()),
    ]
}

/// Runs `tests/node/s3-session.mjs` on `bucket` with exactly `env_vars` as its AWS environment.
///
/// With `expect_denied`, that step must fail with AccessDenied and the session stops there. The
/// result holds every step the script reported; the last one failed if the session did. An error
/// means the script itself could not run or reported nothing a test could read.
pub async fn node_s3_session(
    node: &NodeEnv,
    env_vars: &[(String, String)],
    bucket: &str,
    expect_denied: Option<S3Step>,
) -> anyhow::Result<Vec<StepResult>> {
    let mut command = node.command("s3-session.mjs")?;
    command.arg(bucket).envs(env_vars.iter().map(|(key, value)| (key, value)));
    if let Some(step) = expect_denied {
        command.args(["--expect-denied", step.name()]);
    }
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .context("running node tests/node/s3-session.mjs")?;
    read_node_session(&output)
}

/// The steps in the script's output, checked against its exit status.
fn read_node_session(output: &Output) -> anyhow::Result<Vec<StepResult>> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let steps = parse_step_lines(&stdout).with_context(|| {
        format!("s3-session.mjs printed something other than step lines:\n{stdout}\n{stderr}")
    })?;
    let failed = first_failure(&steps).is_some();
    match output.status.code() {
        Some(0) if !steps.is_empty() && !failed => Ok(steps),
        Some(1) if failed => Ok(steps),
        _ => bail!(
            "s3-session.mjs exited with {} after reporting {steps:?}:\n{stderr}",
            output.status
        ),
    }
}

/// Builds (once, cached) and runs `tests/go/aws-sdk-go-v2` on `bucket` with exactly `env_vars` as
/// its AWS environment: web identity, S3 create-bucket, put, list, get, DynamoDB ListTables. The
/// result holds every step it reported; the last one failed if the session did.
pub async fn go_sdk_session(
    env_vars: &[(String, String)],
    bucket: &str,
) -> anyhow::Result<Vec<StepResult>> {
    let binary = tokio::task::spawn_blocking(|| ensure_go_program(AWS_SDK_GO_V2_SESSION))
        .await
        .context("building the AWS SDK for Go v2 session")??;
    let mut command = std::process::Command::new(&binary);
    scrub_aws_env(&mut command);
    command.arg(bucket).envs(env_vars.iter().map(|(key, value)| (key, value)));
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let steps = parse_step_lines(&stdout).with_context(|| {
        format!("the Go SDK session printed something other than step lines:\n{stdout}\n{stderr}")
    })?;
    let failed = first_failure(&steps).is_some();
    match output.status.code() {
        Some(0) if !steps.is_empty() && !failed => Ok(steps),
        Some(1) if failed => Ok(steps),
        _ => bail!(
            "the Go SDK session exited with {} after reporting {steps:?}:\n{stderr}",
            output.status
        ),
    }
}

/// Parses one [`StepResult`] per non-empty line.
pub fn parse_step_lines(stdout: &str) -> Result<Vec<StepResult>, serde_json::Error> {
    stdout.lines().filter(|line| !line.trim().is_empty()).map(serde_json::from_str).collect()
}

/// Runs the S3 session with the Rust `aws-sdk-s3`, configured from `env_vars` alone.
pub async fn rust_s3_session(
    env_vars: &[(String, String)],
    bucket: &str,
) -> anyhow::Result<Vec<StepResult>> {
    run_rust_s3_session(env_vars, bucket, None).await
}

/// Runs the S3 session with the Rust `aws-sdk-s3`; `step` must fail with AccessDenied, and the
/// session stops there.
pub async fn rust_s3_session_expecting_denied(
    env_vars: &[(String, String)],
    bucket: &str,
    step: S3Step,
) -> anyhow::Result<Vec<StepResult>> {
    run_rust_s3_session(env_vars, bucket, Some(step)).await
}

/// The environment the Rust SDK's process gets: `env_vars`, and unless they say otherwise, no
/// shared config or credentials file and no instance metadata service (a session without
/// credentials fails at once instead of reaching for a link-local address).
fn sdk_env(env_vars: &[(String, String)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = env_vars.iter().cloned().collect();
    for (key, value) in [
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        vars.entry(key.into()).or_insert_with(|| value.into());
    }
    vars
}

/// `chaperone-env`, built once per process so that its `rust-s3-session` is this source's, or
/// the one `CHAPERONE_ENV_BIN` names: `cargo xtask test` passes the one its test build made from
/// this source, which spares building the workspace again with chaperone-tests' features alone.
fn session_binary() -> anyhow::Result<std::path::PathBuf> {
    static BUILT: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(built) = std::env::var_os("CHAPERONE_ENV_BIN").filter(|p| !p.is_empty()) {
                return Ok(built.into());
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .current_dir(crate::paths::workspace_root())
                .args([
                    "build",
                    "--quiet",
                    "--package",
                    "chaperone-tests",
                    "--bin",
                    "chaperone-env",
                ])
                .status()
                .map_err(|e| format!("running cargo build of chaperone-env: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build of chaperone-env failed ({status})"));
            }
            Ok(crate::paths::target_dir().join("debug").join("chaperone-env"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

async fn run_rust_s3_session(
    env_vars: &[(String, String)],
    bucket: &str,
    expect_denied: Option<S3Step>,
) -> anyhow::Result<Vec<StepResult>> {
    let binary = tokio::task::spawn_blocking(session_binary)
        .await
        .context("building chaperone-env for the Rust SDK session")??;
    let mut command = std::process::Command::new(&binary);
    scrub_aws_env(&mut command);
    for key in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        command.env_remove(key);
    }
    command.args(["rust-s3-session", bucket]).envs(sdk_env(env_vars));
    if let Some(step) = expect_denied {
        command.args(["--expect-denied", step.name()]);
    }
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .with_context(|| format!("running {} rust-s3-session", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let steps = parse_step_lines(&stdout).with_context(|| {
        format!("the Rust SDK session printed something other than step lines:\n{stdout}\n{stderr}")
    })?;
    let failed = first_failure(&steps).is_some();
    match output.status.code() {
        Some(0) if !steps.is_empty() && !failed => Ok(steps),
        Some(1) if failed => Ok(steps),
        _ => bail!(
            "the Rust SDK session exited with {} after reporting {steps:?}:\n{stderr}",
            output.status
        ),
    }
}

/// Runs the S3 session with the Rust `aws-sdk-s3` configured from this process's environment
/// alone, as an agent's program would be (`chaperone-env rust-s3-session`); `expect_denied` must
/// fail with AccessDenied and the session stops there.
pub async fn rust_s3_session_in_this_process(
    bucket: &str,
    expect_denied: Option<S3Step>,
) -> Vec<StepResult> {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = aws_sdk_s3::Client::new(&config);
    let body = format!("written by the AWS SDK for Rust into {bucket}\n");
    let mut steps = Vec::new();
    for step in S3Step::ALL {
        let outcome = run_step(&s3, step, bucket, &body).await;
        if expect_denied == Some(step) {
            let result = match outcome {
                Err(failure) if failure.code == "AccessDenied" => {
                    StepResult::denied(step, failure.message)
                }
                Ok(()) => StepResult::failed(
                    step,
                    "UnexpectedSuccess",
                    format!("{} was expected to be denied", step.name()),
                ),
                Err(failure) => StepResult::failed(step, &failure.code, failure.message),
            };
            steps.push(result);
            return steps;
        }
        match outcome {
            Ok(()) => steps.push(StepResult::passed(step)),
            Err(failure) => {
                steps.push(StepResult::failed(step, &failure.code, failure.message));
                return steps;
            }
        }
    }
    steps
}

/// Why a step of the Rust session failed.
struct StepFailure {
    /// The AWS error code, or the session's own (`ObjectNotListed`, `ContentMismatch`, ...).
    code: String,
    message: String,
}

impl StepFailure {
    fn new(code: &str, message: String) -> Self {
        Self { code: code.into(), message }
    }
}

/// Runs one step of the session.
async fn run_step(
    s3: &aws_sdk_s3::Client,
    step: S3Step,
    bucket: &str,
    body: &str,
) -> Result<(), StepFailure> {
    match step {
        S3Step::CreateBucket => {
            s3.create_bucket().bucket(bucket).send().await.map(drop).map_err(sdk_failure)
        }
        S3Step::Put => s3
            .put_object()
            .bucket(bucket)
            .key(SESSION_KEY)
            .content_type("text/plain")
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .map(drop)
            .map_err(sdk_failure),
        S3Step::List => {
            let listed = s3.list_objects_v2().bucket(bucket).send().await.map_err(sdk_failure)?;
            let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
            if keys.contains(&SESSION_KEY) {
                Ok(())
            } else {
                Err(StepFailure::new(
                    "ObjectNotListed",
                    format!("listing shows {keys:?}, not {SESSION_KEY}"),
                ))
            }
        }
        S3Step::Get => {
            let got = s3
                .get_object()
                .bucket(bucket)
                .key(SESSION_KEY)
                .send()
                .await
                .map_err(sdk_failure)?;
            let bytes = got
                .body
                .collect()
                .await
                .map_err(|e| StepFailure::new("BodyReadFailed", e.to_string()))?
                .into_bytes();
            if bytes.as_ref() == body.as_bytes() {
                Ok(())
            } else {
                Err(StepFailure::new(
                    "ContentMismatch",
                    format!("read back {:?}, wrote {body:?}", String::from_utf8_lossy(&bytes)),
                ))
            }
        }
        S3Step::DeleteObject => s3
            .delete_object()
            .bucket(bucket)
            .key(SESSION_KEY)
            .send()
            .await
            .map(drop)
            .map_err(sdk_failure),
        S3Step::DeleteBucket => {
            s3.delete_bucket().bucket(bucket).send().await.map(drop).map_err(sdk_failure)
        }
    }
}

/// The AWS error code (or, for a failure before any response, the kind of failure) and the
/// message with its sources.
fn sdk_failure<E, R>(error: SdkError<E, R>) -> StepFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = match (&error, error.code()) {
        (_, Some(code)) => code,
        (SdkError::ConstructionFailure(_), None) => "ConstructionFailure",
        (SdkError::TimeoutError(_), None) => "TimeoutError",
        (SdkError::DispatchFailure(_), None) => "DispatchFailure",
        (SdkError::ResponseError(_), None) => "ResponseError",
        (SdkError::ServiceError(_), None) => "ServiceError",
        (_, None) => "SdkError",
    };
    StepFailure::new(code, DisplayErrorContext(&error).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_parse_into_results_with_their_codes() {
        let stdout = "{\"step\":\"create-bucket\",\"ok\":true}\n\
                      {\"step\":\"put\",\"ok\":false,\"code\":\"AccessDenied\",\"status\":403,\"message\":\"no\"}\n";
        let steps = parse_step_lines(stdout).unwrap();
        assert_eq!(steps[0], StepResult::passed(S3Step::CreateBucket));
        assert_eq!(steps[1].code.as_deref(), Some("AccessDenied"));
        assert_eq!(first_failure(&steps).map(|s| s.step.as_str()), Some("put"));
    }

    #[test]
    fn a_line_that_is_not_a_step_is_an_error() {
        assert!(parse_step_lines("{\"step\":\"put\",\"ok\":true}\nhello\n").is_err());
    }

    #[test]
    fn the_sdk_environment_reads_no_shared_files_unless_told() {
        let env = sdk_env(&[("AWS_CONFIG_FILE".into(), "/etc/aws".into())]);
        assert_eq!(env.get("AWS_CONFIG_FILE").unwrap(), "/etc/aws");
        assert_eq!(env.get("AWS_SHARED_CREDENTIALS_FILE").unwrap(), "/dev/null");
        assert_eq!(env.get("AWS_EC2_METADATA_DISABLED").unwrap(), "true");
    }
}
