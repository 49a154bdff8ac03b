//! Reading a session's streams for display (list and show): manifests as stored and every
//! readable event. Nothing here verifies anything; `sessions verify` does.

use std::collections::BTreeMap;

use chaperone_recording::{
    Manifest, ObjectKey, ObjectName, RecordedEvent, SegmentReader, SessionLocation,
};

use crate::recording_bucket::{BucketError, RecordingBucket};

/// One replica's stream of a session, as read.
#[derive(Clone, Debug)]
pub struct ReplicaRecording {
    pub replica: String,
    /// The manifest as stored (its signature is not checked here).
    pub manifest: Option<Manifest>,
    pub segments: usize,
    /// Every event that could be read, in segment order.
    pub events: Vec<RecordedEvent>,
    /// What could not be read.
    pub unreadable: Vec<String>,
}

/// Every key under the session's prefix.
pub async fn session_keys(
    bucket: &RecordingBucket,
    location: &SessionLocation,
) -> Result<Vec<String>, BucketError> {
    bucket.keys(&location.key_prefix()).await
}

/// Reads the streams of `replicas` (all when empty), in replica-name order.
pub async fn read_session(
    bucket: &RecordingBucket,
    location: &SessionLocation,
    replicas: &[String],
) -> Result<Vec<ReplicaRecording>, BucketError> {
    let keys: Vec<String> = session_keys(bucket, location)
        .await?
        .into_iter()
        .filter(|key| match ObjectKey::parse(key) {
            Ok(parsed) => {
                !matches!(parsed.name, ObjectName::Digest(_))
                    && (replicas.is_empty()
                        || replicas.iter().any(|r| r == parsed.stream.replica()))
            }
            Err(_) => false,
        })
        .collect();
    let objects = bucket.get_all(&keys).await?;
    Ok(streams_from_objects(bucket, &objects, replicas))
}

/// The streams of `replicas` (all when empty) among a session's `objects` (key to bytes), in
/// replica-name order; `bucket` only names objects in messages.
pub fn streams_from_objects(
    bucket: &RecordingBucket,
    objects: &BTreeMap<String, Vec<u8>>,
    replicas: &[String],
) -> Vec<ReplicaRecording> {
    let mut wanted: BTreeMap<String, (Option<String>, BTreeMap<u32, String>)> = BTreeMap::new();
    for key in objects.keys() {
        let Ok(parsed) = ObjectKey::parse(key) else { continue };
        let replica = parsed.stream.replica().to_owned();
        if !replicas.is_empty() && !replicas.contains(&replica) {
            continue;
        }
        let entry = wanted.entry(replica).or_default();
        match parsed.name {
            ObjectName::Manifest => entry.0 = Some(key.clone()),
            ObjectName::Segment(i) => {
                entry.1.insert(i, key.clone());
            }
            ObjectName::Digest(_) => {}
        }
    }
    let mut recordings = Vec::new();
    for (replica, (manifest_key, segment_keys)) in wanted {
        let mut recording = ReplicaRecording {
            replica,
            manifest: None,
            segments: segment_keys.len(),
            events: Vec::new(),
            unreadable: Vec::new(),
        };
        if let Some(bytes) = manifest_key.as_ref().and_then(|k| objects.get(k)) {
            match serde_json::from_slice::<Manifest>(bytes) {
                Ok(manifest) => recording.manifest = Some(manifest),
                Err(e) => recording.unreadable.push(format!(
                    "{}: not a manifest: {e}",
                    bucket.url(manifest_key.as_deref().unwrap_or_default())
                )),
            }
        }
        for key in segment_keys.values() {
            let Some(bytes) = objects.get(key) else { continue };
            let reader = match SegmentReader::new(bytes) {
                Ok(reader) => reader,
                Err(e) => {
                    recording.unreadable.push(format!("{}: {e}", bucket.url(key)));
                    continue;
                }
            };
            for event in reader {
                match event {
                    Ok(event) => recording.events.push(event),
                    Err(e) => {
                        recording.unreadable.push(format!("{}: {e}", bucket.url(key)));
                        break;
                    }
                }
            }
        }
        recordings.push(recording);
    }
    recordings
}
