//! Command-line flags.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Read, verify and replay Chaperone recordings; decide approval requests; check an install.
#[derive(Parser, Debug)]
#[command(name = "kubectl-chaperone", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Recorded sessions: list, show, verify.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Approval requests: list, approve, deny.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Re-issue a recorded session's calls, in order, against a sandbox endpoint and report per
    /// call whether the answer was the same. Exits 0 when all were, 1 when any differed, 2 on
    /// errors.
    Replay(Box<ReplayArgs>),
    /// Policies from recordings: suggest.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check an install end to end: CRDs, operator, webhooks, each namespace's gateway and
    /// recording bucket, NetworkPolicy support. One line per check, with the fix when it fails.
    /// Exits 0 when every check passed, 1 when any failed, 2 when it could not check.
    Doctor(DoctorArgs),
    /// A local web page (on 127.0.0.1, behind a random token) to decide pending approvals and
    /// read recorded sessions, acting with your kubeconfig's identity (docs/console.md). Sessions
    /// are read through the audit API, each read in the namespace's access log; with --bucket or
    /// --recording-policy, directly from S3 instead (the sessions commands' --direct).
    Console(Box<crate::console::ConsoleArgs>),
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Check only this agent namespace's gateway and recording (default: every namespace with an
    /// AgentConnection).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Namespace the chart was installed in.
    #[arg(long, default_value = "chaperone-system")]
    pub operator_namespace: String,
    /// Name of the operator's Deployment.
    #[arg(long, default_value = "chaperone-operator")]
    pub operator_deployment: String,
    /// Name of the operator's MutatingWebhookConfiguration (the Helm release's full name).
    #[arg(long, default_value = "chaperone")]
    pub webhook_configuration: String,
    /// Path to the kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List recorded sessions, pruned by the date folders --since and --until cover.
    List(Box<ListArgs>),
    /// Show one session's calls as a timeline, all replicas merged by time.
    Show(Box<ShowArgs>),
    /// Verify a session's chain, digests and signatures against keys you trust (never keys found in
    /// the bucket). Exits 0 when intact, 1 with one line per problem, 2 when it cannot verify.
    /// Through the audit API (the default) it shows the operator's verification; --direct checks
    /// the objects yourself.
    Verify(Box<VerifyArgs>),
    /// Show and verify a namespace's access log: every read the audit API served (who, when,
    /// what), signed and hash-chained by the operator. Read from S3 with your own AWS identity.
    /// Exits 0 when intact, 1 with one line per problem, 2 when it cannot verify.
    AccessLog(Box<AccessLogArgs>),
}

/// Where recordings are read from: the audit API (the default), or, with --direct, a bucket named
/// on the command line or by a RecordingPolicy.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("recordings").args(["bucket", "recording_policy"])))]
pub struct SourceFlags {
    /// Read S3 directly with your own AWS identity (--bucket or --recording-policy) instead of
    /// through the audit API; implied by --bucket and --recording-policy.
    #[arg(long)]
    pub direct: bool,
    #[command(flatten)]
    pub s3: BucketFlags,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// Where recordings are read from S3 directly: a bucket, or a RecordingPolicy's (the sessions
/// commands with --direct, and the console).
#[derive(Args, Debug, Clone, Default)]
pub struct BucketFlags {
    /// Bucket holding the recordings.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Key prefix of the recordings (the RecordingPolicy's s3.prefix): empty, or ending with '/'.
    /// Default: '' (or the RecordingPolicy's).
    #[arg(long)]
    pub prefix: Option<String>,
    /// The bucket's region. Default: the AWS configuration's (or the RecordingPolicy's), else us-east-1.
    #[arg(long)]
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible store (path-style addressing). Default: AWS (or the
    /// RecordingPolicy's endpoint).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// AWS profile to read with (default: AWS_PROFILE, or the default credential chain).
    #[arg(long)]
    pub profile: Option<String>,
    /// Read bucket, prefix, region and endpoint from this RecordingPolicy (in --namespace; the
    /// console: in each namespace shown) in the cluster; --prefix, --region and --endpoint-url
    /// override its values.
    #[arg(long, value_name = "NAME")]
    pub recording_policy: Option<String>,
}

/// How to reach the cluster, as kubectl does.
#[derive(Args, Debug, Clone)]
pub struct ClusterFlags {
    /// Agents' namespace: sessions are limited to it, and cluster objects are read from it
    /// (default for cluster lookups: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Path to the kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table (list) or a timeline (show).
    Text,
    /// JSON: an array of sessions (list) or the events as JSON Lines, exactly as recorded (show).
    Json,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: SourceFlags,
    /// With --recording-policy: list every namespace under the policy's prefix, not only --namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only sessions of this AgentConnection.
    #[arg(long)]
    pub connection: Option<String>,
    /// Only sessions of this agent (service account name).
    #[arg(long, value_name = "SERVICE_ACCOUNT")]
    pub agent: Option<String>,
    /// Only sessions issued at or after this time: RFC 3339, or an age like 30m, 2h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Only sessions issued at or before this time: RFC 3339, or an age like 30m, 2h, 7d.
    #[arg(long)]
    pub until: Option<String>,
    /// Only sessions with a call whose IAM action matches this glob (e.g. 's3:Delete*',
    /// case-insensitive). Matching needs every event, so narrow with -n, --connection and --since
    /// on large buckets.
    #[arg(long, value_name = "GLOB")]
    pub action: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Session id (a UUIDv7, as `sessions list` prints it).
    pub session: String,
    #[command(flatten)]
    pub source: SourceFlags,
    /// The session's AgentConnection, when the id is recorded under several.
    #[arg(long)]
    pub connection: Option<String>,
    /// Only the stream of this gateway replica (repeatable).
    #[arg(long)]
    pub replica: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Session id (a UUIDv7, as `sessions list` prints it).
    pub session: String,
    #[command(flatten)]
    pub source: SourceFlags,
    /// The session's AgentConnection, when the id is recorded under several.
    #[arg(long)]
    pub connection: Option<String>,
    #[command(flatten)]
    pub trust: TrustFlags,
    /// With --direct: also verify the access log of the session's namespace with these keys.
    #[command(flatten)]
    pub access_log: AccessLogTrustFlags,
}

/// The keys a session is verified with, and how stale its newest digest may be (`sessions
/// verify`, `replay`).
#[derive(Args, Debug)]
pub struct TrustFlags {
    /// A trusted Ed25519 public key, standard base64 of its 32 bytes (repeatable).
    #[arg(long, value_name = "BASE64")]
    pub public_key: Vec<String>,
    /// A file of trusted public keys: one base64 key per line; blank lines and '#' comments ignored.
    #[arg(long, value_name = "PATH")]
    pub public_keys_file: Option<PathBuf>,
    /// Also trust the keys the session's AgentConnection publishes in status.recordingPublicKeys.
    #[arg(long)]
    pub cluster_keys: bool,
    /// How far behind now (or past the session's end) the newest digest may be: 15m, 1h...
    #[arg(long, default_value = "15m")]
    pub grace: String,
}

#[derive(Args, Debug)]
pub struct AccessLogArgs {
    #[command(flatten)]
    pub source: SourceFlags,
    #[command(flatten)]
    pub trust: AccessLogTrustFlags,
}

/// The keys an access log is verified with.
#[derive(Args, Debug, Clone)]
pub struct AccessLogTrustFlags {
    /// A trusted access-log public key (standard base64 of 32 bytes; the ConfigMap
    /// chaperone-access-log-key's publicKey in the operator's namespace), repeatable.
    #[arg(long, value_name = "BASE64")]
    pub access_log_key: Vec<String>,
    /// Also trust the key in the ConfigMap chaperone-access-log-key of --operator-namespace.
    #[arg(long)]
    pub cluster_access_log_key: bool,
    /// The operator's namespace, for --cluster-access-log-key.
    #[arg(long, default_value = "chaperone-system")]
    pub operator_namespace: String,
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// List approval requests: your inbox of held calls.
    List(ApprovalsListArgs),
    /// Approve a held call (your identity is stamped by the API server, not taken from here).
    Approve(ApproveArgs),
    /// Deny a held call; the reason is shown to the agent.
    Deny(DenyArgs),
}

/// Which cluster and namespace approval commands talk to, as kubectl does.
#[derive(Args, Debug, Clone)]
pub struct KubeFlags {
    /// Namespace of the ApprovalRequests (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Path to the kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Args, Debug)]
pub struct ApprovalsListArgs {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// List ApprovalRequests of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// ApprovalRequest name.
    pub name: String,
    #[command(flatten)]
    pub kube: KubeFlags,
    /// Why you approve (recorded with your decision).
    #[arg(long, default_value = "")]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct DenyArgs {
    /// ApprovalRequest name.
    pub name: String,
    #[command(flatten)]
    pub kube: KubeFlags,
    /// Why you deny (shown to the agent).
    #[arg(long)]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Session id (a UUIDv7, as `sessions list` prints it).
    pub session: String,
    #[command(flatten)]
    pub source: SourceFlags,
    /// The session's AgentConnection, when the id is recorded under several.
    #[arg(long)]
    pub connection: Option<String>,
    /// The sandbox to replay against, e.g. http://localhost:5000 (every service's calls go there,
    /// paths as recorded).
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// Region to sign the replayed calls for. Default: the region the call's resource ARNs name,
    /// else the sandbox profile's or environment's region, else us-east-1. (--region is the
    /// recording bucket's region, as for `sessions` commands.)
    #[arg(long, value_name = "REGION")]
    pub sandbox_region: Option<String>,
    /// AWS profile whose credentials sign the replayed calls (default: the usual AWS environment:
    /// AWS_ACCESS_KEY_ID..., AWS_PROFILE, SSO, instance role).
    #[arg(long, value_name = "NAME")]
    pub sandbox_profile: Option<String>,
    /// Replay only calls whose recorded IAM actions are not read-only (Get*, List*, Describe*,
    /// Head*, Query, Scan... are read-only).
    #[arg(long)]
    pub only_mutating: bool,
    /// Stop at the first call whose status or body differs.
    #[arg(long)]
    pub stop_on_diff: bool,
    /// Replay without verifying the session first (not recommended: an altered recording would be
    /// replayed as if it were what the agent did).
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub trust: TrustFlags,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// The least IAM policy, or AgentConnection allow list, that would have admitted exactly what
    /// the given sessions were allowed to do; denied and unapproved calls are listed apart.
    Suggest(Box<PolicySuggestArgs>),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyFormat {
    /// An IAM policy document (JSON); denied and unapproved calls go to stderr.
    Iam,
    /// A merge patch setting an AgentConnection's spec.policy.allow (YAML); denied and unapproved
    /// calls as comments.
    Agentconnection,
}

#[derive(Args, Debug)]
pub struct PolicySuggestArgs {
    /// Session ids (UUIDv7, as `sessions list` prints them).
    #[arg(required = true)]
    pub sessions: Vec<String>,
    #[command(flatten)]
    pub source: SourceFlags,
    /// The sessions' AgentConnection, when an id is recorded under several.
    #[arg(long)]
    pub connection: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "iam")]
    pub format: PolicyFormat,
}
