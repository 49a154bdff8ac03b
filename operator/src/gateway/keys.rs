//! The keys Secret of a namespace's gateway: session MAC keys (current, then the previous one
//! still accepted) and the recording signing key, in the gateway's keys-file shape
//! ([`chaperone_config::KeysFile`]).
//!
//! Keys are generated once and kept across reconciles. The session key is rotated when it is older
//! than the rotation interval, or when a user asks by setting the annotation
//! [`ROTATE_SESSION_KEY_ANNOTATION`] on the Secret to a new value; the previous session key stays
//! listed so sessions minted under it keep working until they expire. The recording signing key is
//! replaced only when asked ([`ROTATE_RECORDING_KEY_ANNOTATION`]); the public keys of replaced
//! signing keys stay listed, since they verify recordings for their whole retention.

use std::{collections::BTreeMap, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use chaperone_config::{GatewayKeys, KeysFile, KeysFileEntry, keys::MIN_SESSION_SECRET_BYTES};
use k8s_openapi::jiff::Timestamp;

/// When the current session key was created (RFC 3339), written by the operator.
pub const SESSION_KEY_CREATED_AT_ANNOTATION: &str = "chaperone.dev/session-key-created-at";
/// Set by a user to any new value to rotate the session key now.
pub const ROTATE_SESSION_KEY_ANNOTATION: &str = "chaperone.dev/rotate-session-key";
/// The last value of [`ROTATE_SESSION_KEY_ANNOTATION`] the operator acted on.
pub const ROTATION_HANDLED_ANNOTATION: &str = "chaperone.dev/session-key-rotation-handled";
/// Set by a user to any new value to replace the recording signing key (e.g. after a leak).
pub const ROTATE_RECORDING_KEY_ANNOTATION: &str = "chaperone.dev/rotate-recording-key";
/// The last value of [`ROTATE_RECORDING_KEY_ANNOTATION`] the operator acted on.
pub const RECORDING_ROTATION_HANDLED_ANNOTATION: &str =
    "chaperone.dev/recording-key-rotation-handled";
/// Public keys (base64, comma-separated, newest first) of replaced recording signing keys: they
/// still verify the recordings signed before the rotation.
pub const RETIRED_RECORDING_PUBLIC_KEYS_ANNOTATION: &str =
    "chaperone.dev/retired-recording-public-keys";
/// Retired recording public keys kept.
pub const MAX_RETIRED_RECORDING_KEYS: usize = 16;

/// The keys Secret as it is now.
#[derive(Clone, Debug, Default)]
pub struct ExistingKeys {
    /// The keys file in the Secret, if any.
    pub keys_json: Option<Vec<u8>>,
    /// The Secret's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// What the plan does to the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysChange {
    /// Kept as they are.
    Unchanged,
    /// Generated for the first time.
    Generated,
    /// The Secret's keys file did not validate and was replaced (sessions minted before are lost).
    Regenerated {
        /// Why the old file was refused.
        problem: String,
    },
    /// A new session key was created; the old one is kept as previous.
    Rotated {
        /// Why: age or request.
        reason: String,
    },
}

/// The keys Secret's content to apply.
#[derive(Clone, Debug)]
pub struct KeysPlan {
    /// The keys file (JSON).
    pub keys_json: Vec<u8>,
    /// The annotations the operator owns.
    pub annotations: BTreeMap<String, String>,
    /// What changed.
    pub change: KeysChange,
    /// Base64 Ed25519 public keys that verify this gateway's recordings: the current signing
    /// key's first, then retired ones, newest first.
    pub recording_public_keys: Vec<String>,
}

/// Why keys could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum KeysPlanError {
    /// The random source failed.
    #[error("the system's random source failed while generating gateway keys")]
    Random,
    /// A generated key was refused by the gateway's own validation (a bug).
    #[error("a generated keys file does not validate: {0}")]
    Invalid(String),
}

/// A source of cryptographically secure random bytes.
pub type RandomFill<'a> = &'a mut dyn FnMut(&mut [u8]) -> Result<(), KeysPlanError>;

/// The system's secure random source.
pub fn system_random(buf: &mut [u8]) -> Result<(), KeysPlanError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| KeysPlanError::Random)
}

/// Plans the keys Secret's content at `now`.
pub fn plan_keys(
    existing: Option<&ExistingKeys>,
    now: Timestamp,
    rotation_interval: Duration,
    random: RandomFill<'_>,
) -> Result<KeysPlan, KeysPlanError> {
    let empty = ExistingKeys::default();
    let existing = existing.unwrap_or(&empty);
    let session_request =
        RotationRequest::read(existing, ROTATE_SESSION_KEY_ANNOTATION, ROTATION_HANDLED_ANNOTATION);
    let recording_request = RotationRequest::read(
        existing,
        ROTATE_RECORDING_KEY_ANNOTATION,
        RECORDING_ROTATION_HANDLED_ANNOTATION,
    );
    // The annotations the operator owns, carried over as they are unless changed below, so an
    // unchanged Secret applies as a no-op.
    let mut annotations: BTreeMap<String, String> = [
        SESSION_KEY_CREATED_AT_ANNOTATION,
        ROTATION_HANDLED_ANNOTATION,
        RECORDING_ROTATION_HANDLED_ANNOTATION,
        RETIRED_RECORDING_PUBLIC_KEYS_ANNOTATION,
    ]
    .into_iter()
    .filter_map(|k| existing.annotations.get(k).map(|v| (k.to_owned(), v.clone())))
    .collect();
    let mut retired: Vec<String> = existing
        .annotations
        .get(RETIRED_RECORDING_PUBLIC_KEYS_ANNOTATION)
        .map(|v| v.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();

    let parsed = existing.keys_json.as_deref().map(|json| {
        GatewayKeys::parse(json)
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::from_slice::<KeysFile>(json).map_err(|e| e.to_string()))
    });
    let (file, change) = match parsed {
        None | Some(Err(_)) => {
            let file = fresh_keys(now, random)?;
            annotations.insert(SESSION_KEY_CREATED_AT_ANNOTATION.to_owned(), now.to_string());
            // Fresh keys answer any pending request.
            session_request.mark_handled(&mut annotations);
            recording_request.mark_handled(&mut annotations);
            let change = match parsed {
                Some(Err(problem)) => KeysChange::Regenerated { problem },
                _ => KeysChange::Generated,
            };
            (file, change)
        }
        Some(Ok(mut file)) => {
            let created_at = existing
                .annotations
                .get(SESSION_KEY_CREATED_AT_ANNOTATION)
                .and_then(|t| t.parse::<Timestamp>().ok());
            if created_at.is_none() {
                // No readable creation time: the key's age counts from now.
                annotations.insert(SESSION_KEY_CREATED_AT_ANNOTATION.to_owned(), now.to_string());
            }
            let too_old = created_at.is_some_and(|t| {
                now.duration_since(t).as_secs() >= rotation_interval.as_secs() as i64
            });
            let mut reasons = Vec::new();
            if session_request.pending() || too_old {
                file = rotate(file, now, random)?;
                annotations.insert(SESSION_KEY_CREATED_AT_ANNOTATION.to_owned(), now.to_string());
                reasons.push(match session_request.pending() {
                    true => {
                        format!("session key rotated as asked ({})", session_request.describe())
                    }
                    false => format!(
                        "session key rotated: it was older than {} hours",
                        rotation_interval.as_secs() / 3600
                    ),
                });
                session_request.mark_handled(&mut annotations);
            }
            if recording_request.pending() {
                retired.insert(0, public_key_of(&file)?);
                retired.truncate(MAX_RETIRED_RECORDING_KEYS);
                file.recording_signing_key = random_b64(32, random)?;
                annotations
                    .insert(RETIRED_RECORDING_PUBLIC_KEYS_ANNOTATION.to_owned(), retired.join(","));
                reasons.push(format!(
                    "recording signing key rotated as asked ({}); the old public key stays listed",
                    recording_request.describe()
                ));
                recording_request.mark_handled(&mut annotations);
            }
            let change = match reasons.is_empty() {
                true => KeysChange::Unchanged,
                false => KeysChange::Rotated { reason: reasons.join("; ") },
            };
            (file, change)
        }
    };
    let keys_json = match (&change, &existing.keys_json) {
        (KeysChange::Unchanged, Some(json)) => json.clone(),
        _ => {
            let json =
                serde_json::to_vec(&file).map_err(|e| KeysPlanError::Invalid(e.to_string()))?;
            GatewayKeys::parse(&json).map_err(|e| KeysPlanError::Invalid(e.to_string()))?;
            json
        }
    };
    let mut recording_public_keys = vec![public_key_of(&file)?];
    recording_public_keys.extend(retired);
    Ok(KeysPlan { keys_json, annotations, change, recording_public_keys })
}

/// A user's request for a rotation: the value of the request annotation and the last value the
/// operator acted on.
struct RotationRequest<'a> {
    annotation: &'static str,
    handled_annotation: &'static str,
    requested: Option<&'a String>,
    handled: Option<&'a String>,
}

impl<'a> RotationRequest<'a> {
    fn read(
        existing: &'a ExistingKeys,
        annotation: &'static str,
        handled_annotation: &'static str,
    ) -> Self {
        Self {
            annotation,
            handled_annotation,
            requested: existing.annotations.get(annotation),
            handled: existing.annotations.get(handled_annotation),
        }
    }

    fn pending(&self) -> bool {
        self.requested.is_some() && self.requested != self.handled
    }

    fn describe(&self) -> String {
        format!(
            "annotation {}={}",
            self.annotation,
            self.requested.map(String::as_str).unwrap_or_default()
        )
    }

    fn mark_handled(&self, annotations: &mut BTreeMap<String, String>) {
        if let Some(requested) = self.requested {
            annotations.insert(self.handled_annotation.to_owned(), requested.clone());
        }
    }
}

fn key_id(now: Timestamp) -> String {
    format!("s{}", now.strftime("%Y%m%dT%H%M%SZ"))
}

fn random_b64(len: usize, random: RandomFill<'_>) -> Result<String, KeysPlanError> {
    let mut bytes = vec![0u8; len];
    random(&mut bytes)?;
    Ok(STANDARD.encode(bytes))
}

fn fresh_keys(now: Timestamp, random: RandomFill<'_>) -> Result<KeysFile, KeysPlanError> {
    Ok(KeysFile {
        session_keys: vec![KeysFileEntry {
            id: key_id(now),
            secret: random_b64(MIN_SESSION_SECRET_BYTES, random)?,
        }],
        recording_signing_key: random_b64(32, random)?,
    })
}

fn rotate(
    mut file: KeysFile,
    now: Timestamp,
    random: RandomFill<'_>,
) -> Result<KeysFile, KeysPlanError> {
    let mut id = key_id(now);
    if file.session_keys.first().is_some_and(|current| current.id == id) {
        // Two rotations within one second.
        id.push_str("-2");
    }
    let new = KeysFileEntry { id, secret: random_b64(MIN_SESSION_SECRET_BYTES, random)? };
    file.session_keys.truncate(1);
    file.session_keys.insert(0, new);
    Ok(file)
}

fn public_key_of(file: &KeysFile) -> Result<String, KeysPlanError> {
    use aws_lc_rs::signature::KeyPair;
    let seed = STANDARD
        .decode(file.recording_signing_key.trim())
        .map_err(|e| KeysPlanError::Invalid(format!("recordingSigningKey: {e}")))?;
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|e| KeysPlanError::Invalid(format!("recordingSigningKey: {e}")))?;
    Ok(STANDARD.encode(pair.public_key().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    fn counter() -> impl FnMut(&mut [u8]) -> Result<(), KeysPlanError> {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            n = n.wrapping_add(1);
            buf.fill(n);
            Ok(())
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// The plan at RFC 3339 time `now`, keys rotating weekly, from `existing`.
    fn plan_at(existing: Option<&ExistingKeys>, now: &str) -> KeysPlan {
        plan_keys(existing, at(now), WEEK, &mut counter()).unwrap()
    }

    fn existing_from(plan: &KeysPlan) -> ExistingKeys {
        ExistingKeys {
            keys_json: Some(plan.keys_json.clone()),
            annotations: plan.annotations.clone(),
        }
    }

    fn ids(plan: &KeysPlan) -> Vec<String> {
        let file: KeysFile = serde_json::from_slice(&plan.keys_json).unwrap();
        file.session_keys.into_iter().map(|k| k.id).collect()
    }

    #[test]
    fn first_keys_are_generated_and_validate_as_the_gateways_keys_file() {
        let plan = plan_at(None, "2026-11-25T18:00:00Z");
        assert_eq!(plan.change, KeysChange::Generated);
        GatewayKeys::parse(&plan.keys_json).unwrap();
        assert_eq!(ids(&plan), ["s20261125T180000Z"]);
        assert_eq!(plan.annotations[SESSION_KEY_CREATED_AT_ANNOTATION], "2026-11-25T18:00:00Z");
        assert_eq!(plan.recording_public_keys.len(), 1);
        assert_eq!(STANDARD.decode(&plan.recording_public_keys[0]).unwrap().len(), 32);
    }

    #[test]
    fn existing_keys_are_kept_byte_for_byte_until_they_are_due() {
        let first = plan_at(None, "2026-11-25T18:00:00Z");
        let again = plan_at(Some(&existing_from(&first)), "2026-11-30T18:00:00Z");
        assert_eq!(again.change, KeysChange::Unchanged);
        assert_eq!(again.keys_json, first.keys_json);
        assert_eq!(again.annotations, first.annotations);
        assert_eq!(again.recording_public_keys, first.recording_public_keys);
    }

    #[test]
    fn an_old_session_key_is_rotated_and_kept_as_previous_with_the_signing_key_unchanged() {
        let first = plan_at(None, "2026-11-25T18:00:00Z");
        let rotated = plan_at(Some(&existing_from(&first)), "2026-12-02T18:00:00Z");
        assert!(matches!(rotated.change, KeysChange::Rotated { .. }));
        assert_eq!(ids(&rotated), ["s20261202T180000Z", "s20261125T180000Z"]);
        assert_eq!(rotated.recording_public_keys, first.recording_public_keys);
        let twice = plan_at(Some(&existing_from(&rotated)), "2026-12-09T18:00:00Z");
        assert_eq!(
            ids(&twice),
            ["s20261209T180000Z", "s20261202T180000Z"],
            "at most one previous key"
        );
    }

    #[test]
    fn a_rotation_asked_for_by_annotation_happens_once() {
        let first = plan_at(None, "2026-11-25T18:00:00Z");
        let mut asked = existing_from(&first);
        asked.annotations.insert(ROTATE_SESSION_KEY_ANNOTATION.into(), "please".into());
        let rotated = plan_at(Some(&asked), "2026-11-25T19:00:00Z");
        assert!(
            matches!(rotated.change, KeysChange::Rotated { ref reason } if reason.contains("please"))
        );
        assert_eq!(rotated.annotations[ROTATION_HANDLED_ANNOTATION], "please");
        let mut after = existing_from(&rotated);
        after.annotations.insert(ROTATE_SESSION_KEY_ANNOTATION.into(), "please".into());
        let again = plan_at(Some(&after), "2026-11-25T19:01:00Z");
        assert_eq!(again.change, KeysChange::Unchanged);
        assert_eq!(again.keys_json, rotated.keys_json);
    }

    #[test]
    fn a_keys_file_that_does_not_validate_is_regenerated_with_the_reason() {
        let broken = ExistingKeys {
            keys_json: Some(b"{\"sessionKeys\": []}".to_vec()),
            ..Default::default()
        };
        let plan = plan_at(Some(&broken), "2026-11-25T18:00:00Z");
        assert!(matches!(plan.change, KeysChange::Regenerated { .. }));
        GatewayKeys::parse(&plan.keys_json).unwrap();
    }

    #[test]
    fn a_recording_key_rotation_asked_for_keeps_the_old_public_key_listed_and_the_session_key() {
        let first = plan_at(None, "2026-11-25T18:00:00Z");
        let mut asked = existing_from(&first);
        asked.annotations.insert(ROTATE_RECORDING_KEY_ANNOTATION.into(), "leak-1".into());
        let rotated = plan_at(Some(&asked), "2026-11-26T18:00:00Z");
        assert!(
            matches!(rotated.change, KeysChange::Rotated { ref reason } if reason.contains("leak-1"))
        );
        assert_eq!(rotated.recording_public_keys.len(), 2);
        assert_ne!(rotated.recording_public_keys[0], first.recording_public_keys[0]);
        assert_eq!(rotated.recording_public_keys[1], first.recording_public_keys[0]);
        assert_eq!(ids(&rotated), ids(&first), "the session key is not touched");
        assert_eq!(
            rotated.annotations[SESSION_KEY_CREATED_AT_ANNOTATION],
            first.annotations[SESSION_KEY_CREATED_AT_ANNOTATION]
        );
        let mut after = existing_from(&rotated);
        after.annotations.insert(ROTATE_RECORDING_KEY_ANNOTATION.into(), "leak-1".into());
        let again = plan_at(Some(&after), "2026-11-26T18:05:00Z");
        assert_eq!(again.change, KeysChange::Unchanged);
        assert_eq!(again.recording_public_keys, rotated.recording_public_keys);
    }
}
