//! `sessions access-log`: the reads the audit API served in a namespace (who, when, what), read
//! from S3 with the auditor's own identity, and the log's signatures and hash chain checked
//! against access-log keys the auditor trusts.

use std::process::ExitCode;

use anyhow::{Context, bail};
use chaperone_recording::{TrustedKeys, access_log_folder, verify_access_log};
use chaperone_recording_store::read_access_log;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::commands::{RecordingSource, connect_cluster, open_source};
use crate::flags::{AccessLogArgs, AccessLogTrustFlags, ClusterFlags};
use crate::text_table::TextTable;

/// The ConfigMap the operator publishes its access-log public key in.
const ACCESS_LOG_KEY_CONFIG_MAP: &str = "chaperone-access-log-key";

pub async fn run(args: AccessLogArgs) -> anyhow::Result<ExitCode> {
    if !access_log_requested(&args.trust) {
        bail!(
            "no trusted access-log key: pass --access-log-key BASE64 (the publicKey of the ConfigMap \
             chaperone-access-log-key in the operator's namespace, compared with a copy you trust) or \
             --cluster-access-log-key; the key published in the bucket is never trusted by itself"
        );
    }
    if args.source.via_api() {
        bail!(
            "the access log is read from S3 with your own AWS identity: say where with --bucket NAME \
             (and --prefix, --endpoint-url) or --recording-policy NAME, and the namespace with -n"
        );
    }
    let source = open_source(&args.source, false).await?;
    let Some(namespace) = source.namespace.clone() else {
        bail!("say whose access log to read with -n NAMESPACE");
    };
    let keys = trusted_keys(&source, &args.source.cluster, &args.trust).await?;
    let objects = read_access_log(&source.bucket, &namespace).await?;
    let report = verify_access_log(&namespace, &objects, &keys);
    let location = source.bucket.url(&access_log_folder(source.bucket.prefix(), &namespace));
    let mut table = TextTable::new(&["N", "TIME", "USER", "GROUPS", "VERB", "RESOURCE"]);
    for entry in &report.entries {
        table.push(vec![
            entry.n.to_string(),
            entry.ts.to_string(),
            entry.user.clone(),
            entry.groups.join(","),
            entry.verb.clone(),
            entry.resource.clone(),
        ]);
    }
    if !report.entries.is_empty() {
        print!("{}", table.render());
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if report.is_valid() {
        println!(
            "access log of namespace {namespace}: intact: {} entries under {location}",
            report.entries.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "access log of namespace {namespace}: NOT intact: {} problem(s) in {} objects under {location}",
            report.problems.len(),
            objects.len()
        );
        Ok(ExitCode::from(1))
    }
}

/// True when any access-log key was given.
pub fn access_log_requested(flags: &AccessLogTrustFlags) -> bool {
    !flags.access_log_key.is_empty() || flags.cluster_access_log_key
}

/// Checks `namespace`'s access log in the source's bucket: (entries that verified, problems).
pub async fn check_access_log(
    source: &RecordingSource,
    cluster: &ClusterFlags,
    namespace: &str,
    flags: &AccessLogTrustFlags,
) -> anyhow::Result<(usize, Vec<String>)> {
    let keys = trusted_keys(source, cluster, flags).await?;
    let objects = read_access_log(&source.bucket, namespace).await?;
    let report = verify_access_log(namespace, &objects, &keys);
    Ok((report.entries.len(), report.problems.iter().map(ToString::to_string).collect()))
}

async fn trusted_keys(
    source: &RecordingSource,
    cluster_flags: &ClusterFlags,
    flags: &AccessLogTrustFlags,
) -> anyhow::Result<TrustedKeys> {
    let mut keys = TrustedKeys::new();
    for (i, text) in flags.access_log_key.iter().enumerate() {
        keys.insert_encoded(text).with_context(|| format!("--access-log-key number {}", i + 1))?;
    }
    if flags.cluster_access_log_key {
        let cluster = match &source.cluster {
            Some(cluster) => cluster.clone(),
            None => connect_cluster(cluster_flags).await?,
        };
        let namespace = &flags.operator_namespace;
        let config_map = Api::<ConfigMap>::namespaced(cluster.client().clone(), namespace)
            .get(ACCESS_LOG_KEY_CONFIG_MAP)
            .await
            .with_context(|| {
                format!(
                    "reading ConfigMap {namespace}/{ACCESS_LOG_KEY_CONFIG_MAP} for --cluster-access-log-key \
                     (is the operator's namespace --operator-namespace?)"
                )
            })?;
        let key = config_map.data.and_then(|d| d.get("publicKey").cloned()).with_context(|| {
            format!("ConfigMap {namespace}/{ACCESS_LOG_KEY_CONFIG_MAP} has no publicKey")
        })?;
        keys.insert_encoded(&key).with_context(|| {
            format!("ConfigMap {namespace}/{ACCESS_LOG_KEY_CONFIG_MAP} publicKey")
        })?;
    }
    Ok(keys)
}
