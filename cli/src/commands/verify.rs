//! `sessions verify`: every object of a session through the recording crate's SessionVerifier,
//! against keys the auditor trusts (never keys found in the bucket).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chaperone_recording::{
    KeyId, SessionLocation, SessionVerifier, Timestamp, TrustedKeys, VerifyOptions,
};

use crate::commands::access_log::{access_log_requested, check_access_log};
use crate::commands::{RecordingSource, connect_cluster, open_audit_api, open_session};
use crate::flags::{ClusterFlags, TrustFlags, VerifyArgs};
use crate::time_bound::parse_age;
use chaperone_recording_store::session_keys;
use chaperone_recording_store::status_name;

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.source.via_api() {
        return verify_via_api(&args).await;
    }
    let trust = TrustSources::from(&args.trust);
    trust.ensure_any()?;
    let grace = args.trust.grace()?;
    let (source, location) =
        open_session(&args.source, &args.session, args.connection.as_deref()).await?;
    let bucket = &source.bucket;
    let (keys, key_ids) = trust.load(&source, &args.source.cluster, &location).await?;
    let keys_used: Vec<&str> = key_ids.iter().map(KeyId::as_str).collect();
    let object_keys = session_keys(bucket, &location).await?;
    let objects = bucket.get_all(&object_keys).await?;
    let options = VerifyOptions { now: Timestamp::now(), digest_grace: grace };
    let report = SessionVerifier::new(keys, options).verify(&objects);
    let streams: Vec<String> = report
        .streams
        .iter()
        .map(|s| {
            format!(
                "{} {}, {} segments, {} digests, {} events",
                s.stream.replica(),
                status_name(s.status),
                s.segments,
                s.digests,
                s.events.len()
            )
        })
        .collect();
    let access_log_intact = if access_log_requested(&args.access_log) {
        let (entries, problems) =
            check_access_log(&source, &args.source.cluster, location.namespace(), &args.access_log)
                .await?;
        for problem in &problems {
            println!("{problem}");
        }
        println!(
            "access log of namespace {}: {} ({} entries, {} problem(s))",
            location.namespace(),
            if problems.is_empty() { "intact" } else { "NOT intact" },
            entries,
            problems.len()
        );
        problems.is_empty()
    } else {
        true
    };
    if report.is_valid() {
        println!(
            "session {}: intact: {} objects under {}; {}; trusted keys: {}",
            args.session,
            objects.len(),
            bucket.url(&location.key_prefix()),
            streams.join("; "),
            keys_used.join(", ")
        );
        return Ok(if access_log_intact { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    println!(
        "session {}: NOT intact: {} problem(s) in {} objects under {} (trusted keys: {})",
        args.session,
        report.problems.len(),
        objects.len(),
        bucket.url(&location.key_prefix()),
        keys_used.join(", ")
    );
    Ok(ExitCode::from(1))
}

/// `sessions verify` through the audit API: the operator's verification, against the keys the
/// session's AgentConnection publishes. For a check that does not trust the operator, --direct.
async fn verify_via_api(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if !args.trust.public_key.is_empty()
        || args.trust.public_keys_file.is_some()
        || args.trust.cluster_keys
        || access_log_requested(&args.access_log)
    {
        anyhow::bail!(
            "--public-key, --public-keys-file, --cluster-keys and --access-log-key check objects you read              from S3 yourself: add --direct with --bucket or --recording-policy (without them, verify shows              the operator's verification through the audit API)"
        );
    }
    let (api, namespace) = open_audit_api(&args.source).await?;
    let session = api.get(&namespace, &args.session).await?;
    let verification = &session.status.verification;
    println!(
        "session {}: {} by the operator: {}",
        args.session, verification.state, verification.reason
    );
    println!(
        "(checked by the operator with the keys its AgentConnection publishes; `kubectl chaperone sessions verify --direct` checks the objects yourself against keys you trust)"
    );
    Ok(match verification.state.as_str() {
        "Verified" => ExitCode::SUCCESS,
        "Failed" => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

/// Where the keys an auditor trusts come from: flags, a file, or the AgentConnection's status.
pub struct TrustSources<'a> {
    pub public_keys: &'a [String],
    pub public_keys_file: Option<&'a Path>,
    pub cluster_keys: bool,
}

impl<'a> From<&'a TrustFlags> for TrustSources<'a> {
    fn from(flags: &'a TrustFlags) -> Self {
        Self {
            public_keys: &flags.public_key,
            public_keys_file: flags.public_keys_file.as_deref(),
            cluster_keys: flags.cluster_keys,
        }
    }
}

impl TrustFlags {
    /// `--grace` as a duration.
    pub fn grace(&self) -> anyhow::Result<std::time::Duration> {
        parse_age(&self.grace)
            .with_context(|| format!("--grace {:?} is not an age like 15m or 1h", self.grace))
    }
}

impl TrustSources<'_> {
    /// Refuses to go on without any trusted key.
    pub fn ensure_any(&self) -> anyhow::Result<()> {
        if self.public_keys.is_empty() && self.public_keys_file.is_none() && !self.cluster_keys {
            bail!(
                "no trusted public keys: pass --public-key BASE64, --public-keys-file PATH, or --cluster-keys \
                 (the AgentConnection's status.recordingPublicKeys); keys stored in the recording bucket are \
                 never trusted, since whoever can rewrite recordings could replace them too"
            );
        }
        Ok(())
    }

    /// The trusted keys and their ids, sorted.
    pub async fn load(
        &self,
        source: &RecordingSource,
        cluster: &ClusterFlags,
        location: &SessionLocation,
    ) -> anyhow::Result<(TrustedKeys, Vec<KeyId>)> {
        let mut keys = TrustedKeys::new();
        let mut key_ids: Vec<KeyId> = Vec::new();
        for (i, text) in self.public_keys.iter().enumerate() {
            key_ids.push(
                keys.insert_encoded(text)
                    .with_context(|| format!("--public-key number {}", i + 1))?,
            );
        }
        if let Some(path) = self.public_keys_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --public-keys-file {}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                key_ids.push(
                    keys.insert_encoded(line)
                        .with_context(|| format!("{} line {}", path.display(), i + 1))?,
                );
            }
        }
        if self.cluster_keys {
            for text in cluster_keys(source, cluster, location).await? {
                key_ids.push(keys.insert_encoded(&text).with_context(|| {
                    format!(
                        "AgentConnection {}/{} status.recordingPublicKeys",
                        location.namespace(),
                        location.connection()
                    )
                })?);
            }
        }
        key_ids.sort();
        key_ids.dedup();
        Ok((keys, key_ids))
    }
}

/// The keys the session's AgentConnection publishes.
async fn cluster_keys(
    source: &RecordingSource,
    cluster_flags: &ClusterFlags,
    location: &SessionLocation,
) -> anyhow::Result<Vec<String>> {
    let cluster = match &source.cluster {
        Some(cluster) => cluster.clone(),
        None => connect_cluster(cluster_flags).await?,
    };
    let keys = cluster
        .recording_public_keys(location.namespace(), location.connection())
        .await
        .context("reading the trusted keys for --cluster-keys")?;
    if keys.is_empty() {
        bail!(
            "AgentConnection {}/{} publishes no status.recordingPublicKeys (is the operator running?); pass --public-key instead",
            location.namespace(),
            location.connection()
        );
    }
    Ok(keys)
}
