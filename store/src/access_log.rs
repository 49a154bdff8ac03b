//! Appending to and reading a namespace's access log in the bucket (the format is
//! [`chaperone_recording::access_log`]).
//!
//! Appends never fork the chain, even with several operator replicas appending at once: entry
//! `n + 1` is written with `If-None-Match: *`, so S3 lets exactly one writer create it; a writer
//! that loses re-reads the tail (the winner's entry, whose hash becomes its `prev`) and tries
//! `n + 2`. Each replica remembers the tail it last saw and lists only the keys after it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chaperone_recording::{
    AccessEntry, AccessRecord, Hash256, RecordingSigner, access_log_folder, access_log_key,
    access_log_number, access_log_public_key_object,
};
use tokio::sync::Mutex;

use crate::recording_bucket::{BucketError, RecordingBucket};

/// How many times an append re-reads the tail after losing a race before giving up.
const APPEND_ATTEMPTS: usize = 20;

/// Why an access event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("signing access-log entry {n}: {reason}")]
    Sign { n: u64, reason: String },
    #[error(
        "{folder}: {attempts} attempts to append lost the race to other writers; the log is being written faster than it can be appended to"
    )]
    Contended { folder: String, attempts: usize },
}

/// The newest entry of one namespace's log in one bucket, as last seen.
#[derive(Clone, Debug)]
struct Tail {
    n: u64,
    hash: Hash256,
}

/// Appends signed entries to access logs, with the operator's access-log key.
pub struct AccessLogWriter {
    signer: RecordingSigner,
    tails: Mutex<HashMap<String, Tail>>,
    /// Buckets (and prefixes) the public key was published to by this replica.
    published: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for AccessLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogWriter").field("key_id", self.signer.key_id()).finish()
    }
}

impl AccessLogWriter {
    pub fn new(signer: RecordingSigner) -> Self {
        Self { signer, tails: Mutex::new(HashMap::new()), published: Mutex::new(HashSet::new()) }
    }

    /// The signing key's public half, standard base64.
    pub fn public_key(&self) -> String {
        chaperone_recording::signing::encode_public_key(&self.signer.verifying_key())
    }

    /// Publishes the public key at `<prefix>access-log/keys/<key_id>.pub` if it is not there
    /// (once per bucket and prefix for this writer).
    pub async fn publish_public_key(&self, bucket: &RecordingBucket) -> Result<(), BucketError> {
        let key = access_log_public_key_object(bucket.prefix(), self.signer.key_id());
        let mut published = self.published.lock().await;
        let published_key = format!("{}/{key}", bucket.bucket());
        if published.contains(&published_key) {
            return Ok(());
        }
        let body = format!(
            "# Chaperone audit API access-log public key {}, published by chaperone-operator.\n\
             # Trust it only after comparing it with a copy you trust, e.g. the ConfigMap \
             chaperone-access-log-key in the operator's namespace.\n{}\n",
            self.signer.key_id(),
            self.public_key()
        );
        bucket.put_if_absent(&key, body.into_bytes(), "text/plain").await?;
        published.insert(published_key);
        Ok(())
    }

    /// Appends `record` to its namespace's log in `bucket`; returns the entry as written.
    pub async fn append(
        &self,
        bucket: &RecordingBucket,
        record: &AccessRecord,
    ) -> Result<AccessEntry, AccessLogError> {
        let folder = access_log_folder(bucket.prefix(), &record.namespace);
        let cache_key = format!("{}/{folder}", bucket.bucket());
        // One append at a time per replica: they would only race each other.
        let mut tails = self.tails.lock().await;
        let mut tail = tails.get(&cache_key).cloned();
        for _ in 0..APPEND_ATTEMPTS {
            tail = self.newest(bucket, &record.namespace, tail).await?;
            let n = tail.as_ref().map_or(1, |t| t.n + 1);
            let (entry, bytes) =
                AccessEntry::sign(record, n, tail.as_ref().map(|t| t.hash), &self.signer)
                    .map_err(|e| AccessLogError::Sign { n, reason: e.to_string() })?;
            let hash = Hash256::of(&bytes);
            let key = access_log_key(bucket.prefix(), &record.namespace, n);
            if bucket.put_if_absent(&key, bytes, "application/json").await? {
                tails.insert(cache_key, Tail { n, hash });
                return Ok(entry);
            }
        }
        Err(AccessLogError::Contended { folder: bucket.url(&folder), attempts: APPEND_ATTEMPTS })
    }

    /// The newest entry after `known` (or of the whole log without it).
    async fn newest(
        &self,
        bucket: &RecordingBucket,
        namespace: &str,
        known: Option<Tail>,
    ) -> Result<Option<Tail>, BucketError> {
        let folder = access_log_folder(bucket.prefix(), namespace);
        let keys = match &known {
            Some(tail) => {
                bucket
                    .keys_after(&folder, &access_log_key(bucket.prefix(), namespace, tail.n))
                    .await?
            }
            None => bucket.keys(&folder).await?,
        };
        let newest = keys.iter().filter_map(|k| access_log_number(k).map(|n| (n, k))).max();
        match newest {
            None => Ok(known),
            Some((n, key)) => {
                let bytes = bucket.get(key).await?;
                Ok(Some(Tail { n, hash: Hash256::of(&bytes) }))
            }
        }
    }
}

/// Every object of `namespace`'s access log in `bucket`, by key.
pub async fn read_access_log(
    bucket: &RecordingBucket,
    namespace: &str,
) -> Result<BTreeMap<String, Vec<u8>>, BucketError> {
    let keys = bucket.keys(&access_log_folder(bucket.prefix(), namespace)).await?;
    bucket.get_all(&keys).await
}
