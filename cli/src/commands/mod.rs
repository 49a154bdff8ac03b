//! The subcommands, and what they share: opening the recording bucket from flags or from a
//! RecordingPolicy.

pub mod access_log;
pub mod doctor;
pub mod list;
pub mod policy_suggest;
pub mod replay;
pub mod show;
pub mod verify;

use anyhow::{Context, bail};

use crate::audit_client::AuditClient;
use crate::cluster::Cluster;
use crate::flags::{ClusterFlags, SourceFlags};
use chaperone_recording::SessionLocation;
use chaperone_recording_store::locate_session;
use chaperone_recording_store::{BucketAddress, RecordingBucket};

/// The bucket to read, the namespace sessions are limited to, and the cluster if one was used.
pub struct RecordingSource {
    pub bucket: RecordingBucket,
    pub namespace: Option<String>,
    pub cluster: Option<Cluster>,
}

impl SourceFlags {
    /// True when sessions are read through the audit API: neither --direct, --bucket nor
    /// --recording-policy was given.
    pub fn via_api(&self) -> bool {
        !self.direct && self.s3.bucket.is_none() && self.s3.recording_policy.is_none()
    }
}

/// The audit API client with the kubeconfig's identity, and the namespace to read (-n, else the
/// context's namespace).
pub async fn open_audit_api(flags: &SourceFlags) -> anyhow::Result<(AuditClient, String)> {
    let cluster = connect_cluster(&flags.cluster).await?;
    let namespace =
        flags.cluster.namespace.clone().unwrap_or_else(|| cluster.default_namespace().to_owned());
    Ok((AuditClient::new(&cluster), namespace))
}

/// Connects to the cluster named by the kubeconfig flags.
pub async fn connect_cluster(flags: &ClusterFlags) -> anyhow::Result<Cluster> {
    Ok(Cluster::connect(flags.kubeconfig.as_deref(), flags.context.as_deref()).await?)
}

/// Opens the bucket named by `--bucket` or by `--recording-policy`. With a policy, sessions are
/// limited to its namespace unless `all_namespaces`.
pub async fn open_source(
    flags: &SourceFlags,
    all_namespaces: bool,
) -> anyhow::Result<RecordingSource> {
    let (address, namespace, cluster) = match (&flags.s3.recording_policy, &flags.s3.bucket) {
        (Some(policy), _) => {
            let cluster = connect_cluster(&flags.cluster).await?;
            let namespace = flags
                .cluster
                .namespace
                .clone()
                .unwrap_or_else(|| cluster.default_namespace().to_owned());
            let s3 = cluster
                .recording_destination(&namespace, policy)
                .await
                .with_context(|| format!("reading RecordingPolicy {policy:?} for its bucket"))?;
            let address = BucketAddress {
                bucket: s3.bucket,
                prefix: flags.s3.prefix.clone().unwrap_or(s3.prefix),
                region: flags.s3.region.clone().or(Some(s3.region)),
                endpoint: flags.s3.endpoint_url.clone().or(s3.endpoint),
                profile: flags.s3.profile.clone(),
            };
            (address, (!all_namespaces).then_some(namespace), Some(cluster))
        }
        (None, Some(bucket)) => {
            let address = BucketAddress {
                bucket: bucket.clone(),
                prefix: flags.s3.prefix.clone().unwrap_or_default(),
                region: flags.s3.region.clone(),
                endpoint: flags.s3.endpoint_url.clone(),
                profile: flags.s3.profile.clone(),
            };
            (address, flags.cluster.namespace.clone(), None)
        }
        (None, None) => bail!(
            "--direct reads S3: say where recordings are with --bucket NAME or --recording-policy NAME -n NAMESPACE (without --direct, sessions are read through the audit API)"
        ),
    };
    if address.prefix.starts_with('/')
        || !(address.prefix.is_empty() || address.prefix.ends_with('/'))
    {
        bail!(
            "prefix {:?} must be empty or end with '/' and not start with '/', e.g. agents/",
            address.prefix
        );
    }
    let bucket = RecordingBucket::open(&address).await?;
    Ok(RecordingSource { bucket, namespace, cluster })
}

/// Opens the bucket as [`open_source`] does (one namespace) and finds session `session` in it,
/// in `connection` only when given: what `show`, `verify` and `replay` start from.
pub async fn open_session(
    flags: &SourceFlags,
    session: &str,
    connection: Option<&str>,
) -> anyhow::Result<(RecordingSource, SessionLocation)> {
    let source = open_source(flags, false).await?;
    let location =
        locate_session(&source.bucket, session, source.namespace.as_deref(), connection).await?;
    Ok((source, location))
}
