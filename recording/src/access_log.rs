//! The access log: one signed object per read of recordings served by the operator's audit API,
//! numbered from 1 and hash-chained (`prev` is the SHA-256 of the previous entry's bytes as
//! stored), kept per namespace beside the recordings at
//! `<prefix>access-log/v1/<namespace>/<n as 10 digits>.json`. Documented in
//! docs/recording-format.md, section "Access log".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical::signing_bytes_of;
use crate::event::FORMAT_VERSION;
use crate::hash::Hash256;
use crate::signed_object::{SignedObjectError, verify_signed};
use crate::signing::{KeyId, RecordingSigner, TrustedKeys};
use crate::timestamp::Timestamp;

/// The `format` member of every access-log entry.
pub const ACCESS_FORMAT: &str = "chaperone.access";

/// Digits of the entry number in its key.
const NUMBER_DIGITS: usize = 10;

/// One read served by the audit API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Always [`ACCESS_FORMAT`].
    pub format: String,
    pub v: u32,
    /// The namespace whose recordings were read; equals the one in the key.
    pub namespace: String,
    /// Number of this entry, from 1, contiguous; equals the number in its key.
    pub n: u64,
    /// Entry 1: null; later: SHA-256 of the previous entry's bytes as stored.
    pub prev: Option<Hash256>,
    /// When the read was served.
    pub ts: Timestamp,
    /// Who read, as the Kubernetes API server authenticated them.
    pub user: String,
    pub groups: Vec<String>,
    /// `list` or `get`.
    pub verb: String,
    /// The request path, e.g. `/apis/audit.chaperone.dev/v1alpha1/namespaces/team-a/sessions/<id>/events`.
    pub resource: String,
    /// The sessions whose content the answer held (a list names every session listed).
    pub sessions: Vec<String>,
    pub key_id: KeyId,
    /// Standard base64 Ed25519 signature over the canonical form without this member.
    pub signature: String,
}

/// What a read was, before it is numbered, chained and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    pub namespace: String,
    pub ts: Timestamp,
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    pub resource: String,
    pub sessions: Vec<String>,
}

impl AccessEntry {
    /// Entry `n` of `record`'s namespace after the entry whose bytes hash to `prev`, signed.
    /// Returns the entry and its object bytes.
    pub fn sign(
        record: &AccessRecord,
        n: u64,
        prev: Option<Hash256>,
        signer: &RecordingSigner,
    ) -> Result<(Self, Vec<u8>), SignedObjectError> {
        let mut entry = Self {
            format: ACCESS_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            namespace: record.namespace.clone(),
            n,
            prev,
            ts: record.ts,
            user: record.user.clone(),
            groups: record.groups.clone(),
            verb: record.verb.clone(),
            resource: record.resource.clone(),
            sessions: record.sessions.clone(),
            key_id: signer.key_id().clone(),
            signature: String::new(),
        };
        entry.signature = signer.sign_base64(&signing_bytes_of(&entry)?);
        let bytes = serde_json::to_vec(&entry).map_err(SignedObjectError::Schema)?;
        Ok((entry, bytes))
    }

    /// Parses entry bytes and checks the signature against `keys`.
    pub fn verify(bytes: &[u8], keys: &TrustedKeys) -> Result<Self, SignedObjectError> {
        verify_signed(bytes, keys, ACCESS_FORMAT)
    }
}

/// `<prefix>access-log/v1/<namespace>/`: the folder of a namespace's access log.
pub fn access_log_folder(prefix: &str, namespace: &str) -> String {
    format!("{prefix}access-log/v1/{namespace}/")
}

/// The key of entry `n` of a namespace's access log.
pub fn access_log_key(prefix: &str, namespace: &str, n: u64) -> String {
    format!("{}{n:0width$}.json", access_log_folder(prefix, namespace), width = NUMBER_DIGITS)
}

/// `<prefix>access-log/keys/<key_id>.pub`: where the operator publishes its access-log key.
pub fn access_log_public_key_object(prefix: &str, key_id: &KeyId) -> String {
    format!("{prefix}access-log/keys/{key_id}.pub")
}

/// The number in an entry's key (`.../0000000012.json` is 12), if it is one.
pub fn access_log_number(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?.strip_suffix(".json")?;
    (name.len() == NUMBER_DIGITS && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// A problem found in a namespace's access log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessLogProblem {
    #[error("{key}: not an access-log entry key (expected a 10-digit number and .json)")]
    UnrecognizedObject { key: String },
    #[error("{key}: {reason}")]
    InvalidEntry { key: String, reason: String },
    #[error("{key}: {field} is {found:?}, expected {expected:?}")]
    FieldMismatch { key: String, field: &'static str, expected: String, found: String },
    #[error("entry {n} is missing (entries are numbered from 1 without gaps)")]
    EntryMissing { n: u64 },
    #[error(
        "{key}: prev is {found}, but the previous entry's bytes hash to {expected}: an entry was changed, removed or inserted"
    )]
    ChainBroken { key: String, expected: String, found: String },
}

/// The outcome of checking a namespace's access log.
#[derive(Clone, Debug, Default)]
pub struct AccessLogReport {
    /// Entries whose signature verified, in order.
    pub entries: Vec<AccessEntry>,
    pub problems: Vec<AccessLogProblem>,
}

impl AccessLogReport {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every object of a namespace's access log (`objects`: key to bytes, all under
/// [`access_log_folder`]): each entry's signature with `keys`, its namespace and number against its
/// key, numbers contiguous from 1, and each `prev` against the previous entry's bytes.
pub fn verify_access_log(
    namespace: &str,
    objects: &BTreeMap<String, Vec<u8>>,
    keys: &TrustedKeys,
) -> AccessLogReport {
    let mut report = AccessLogReport::default();
    let mut numbered: BTreeMap<u64, (&String, &Vec<u8>)> = BTreeMap::new();
    for (key, bytes) in objects {
        match access_log_number(key) {
            Some(n) => {
                numbered.insert(n, (key, bytes));
            }
            None => report.problems.push(AccessLogProblem::UnrecognizedObject { key: key.clone() }),
        }
    }
    let highest = numbered.keys().next_back().copied().unwrap_or(0);
    let mut previous: Option<Hash256> = None;
    for n in 1..=highest {
        let Some((key, bytes)) = numbered.get(&n) else {
            report.problems.push(AccessLogProblem::EntryMissing { n });
            previous = None;
            continue;
        };
        let hash = Hash256::of(bytes);
        match AccessEntry::verify(bytes, keys) {
            Err(e) => report.problems.push(AccessLogProblem::InvalidEntry {
                key: (*key).clone(),
                reason: e.to_string(),
            }),
            Ok(entry) => {
                let mismatch = |field, expected: String, found: String| {
                    AccessLogProblem::FieldMismatch { key: (*key).clone(), field, expected, found }
                };
                if entry.namespace != namespace {
                    report.problems.push(mismatch(
                        "namespace",
                        namespace.to_owned(),
                        entry.namespace.clone(),
                    ));
                }
                if entry.n != n {
                    report.problems.push(mismatch("n", n.to_string(), entry.n.to_string()));
                }
                let expected_prev = if n == 1 { None } else { previous };
                // After a missing or unreadable predecessor nothing is known to compare with.
                if (n == 1 || previous.is_some()) && entry.prev != expected_prev {
                    report.problems.push(AccessLogProblem::ChainBroken {
                        key: (*key).clone(),
                        expected: expected_prev.map_or("null".to_owned(), |h| h.to_hex()),
                        found: entry.prev.map_or("null".to_owned(), |h| h.to_hex()),
                    });
                }
                report.entries.push(entry);
            }
        }
        previous = Some(hash);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> RecordingSigner {
        RecordingSigner::from_seed(&[7; 32])
    }

    fn keys() -> TrustedKeys {
        [signer().verifying_key()].into_iter().collect()
    }

    fn record(user: &str) -> AccessRecord {
        AccessRecord {
            namespace: "team-a".into(),
            ts: Timestamp::parse("2026-12-06T10:00:00Z").unwrap(),
            user: user.into(),
            groups: vec!["auditors".into()],
            verb: "get".into(),
            resource: "/apis/audit.chaperone.dev/v1alpha1/namespaces/team-a/sessions/x".into(),
            sessions: vec!["x".into()],
        }
    }

    fn log(users: &[&str]) -> BTreeMap<String, Vec<u8>> {
        let mut objects = BTreeMap::new();
        let mut prev = None;
        for (i, user) in users.iter().enumerate() {
            let n = i as u64 + 1;
            let (_, bytes) = AccessEntry::sign(&record(user), n, prev, &signer()).unwrap();
            prev = Some(Hash256::of(&bytes));
            objects.insert(access_log_key("agents/", "team-a", n), bytes);
        }
        objects
    }

    #[test]
    fn an_appended_log_verifies_in_order() {
        let report = verify_access_log("team-a", &log(&["alice", "bob", "carol"]), &keys());
        assert!(report.is_valid(), "{:?}", report.problems);
        let users: Vec<_> = report.entries.iter().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["alice", "bob", "carol"]);
    }

    #[test]
    fn an_edited_entry_fails_its_signature_and_a_removed_one_is_missing() {
        let mut objects = log(&["alice", "bob", "carol"]);
        let key = access_log_key("agents/", "team-a", 2);
        let edited = String::from_utf8(objects[&key].clone()).unwrap().replace("bob", "eve");
        objects.insert(key.clone(), edited.into_bytes());
        let report = verify_access_log("team-a", &objects, &keys());
        assert!(
            report.problems.iter().any(|p| matches!(p, AccessLogProblem::InvalidEntry { .. })),
            "{:?}",
            report.problems
        );
        assert!(
            report.problems.iter().any(|p| matches!(p, AccessLogProblem::ChainBroken { .. })),
            "the next entry's prev no longer matches: {:?}",
            report.problems
        );
        let mut objects = log(&["alice", "bob", "carol"]);
        objects.remove(&key);
        let report = verify_access_log("team-a", &objects, &keys());
        assert_eq!(report.problems, vec![AccessLogProblem::EntryMissing { n: 2 }]);
    }

    #[test]
    fn a_resigned_fork_breaks_the_chain_and_a_foreign_key_is_untrusted() {
        let mut objects = log(&["alice", "bob"]);
        // A second entry 2 chained to nothing replaces the real one.
        let (_, forged) = AccessEntry::sign(&record("mallory"), 2, None, &signer()).unwrap();
        objects.insert(access_log_key("agents/", "team-a", 2), forged);
        let report = verify_access_log("team-a", &objects, &keys());
        assert!(matches!(report.problems[..], [AccessLogProblem::ChainBroken { .. }]));
        let other: TrustedKeys =
            [RecordingSigner::from_seed(&[8; 32]).verifying_key()].into_iter().collect();
        let report = verify_access_log("team-a", &log(&["alice"]), &other);
        assert!(matches!(report.problems[..], [AccessLogProblem::InvalidEntry { .. }]));
    }

    #[test]
    fn only_ten_digit_json_names_are_entries() {
        assert_eq!(access_log_number("p/access-log/v1/ns/0000000012.json"), Some(12));
        assert_eq!(access_log_number("p/access-log/v1/ns/12.json"), None);
        assert_eq!(access_log_number("p/access-log/v1/ns/000000001x.json"), None);
        assert_eq!(access_log_key("", "ns", 3), "access-log/v1/ns/0000000003.json");
    }
}
