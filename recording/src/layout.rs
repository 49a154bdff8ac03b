//! Object keys: where a session's segments, manifests and digests live in the bucket.
//!
//! ```text
//! <prefix>v1/<namespace>/<connection>/<yyyy>/<mm>/<dd>/<session>/<replica>/000001.jsonl.zst
//! <prefix>v1/<namespace>/<connection>/<yyyy>/<mm>/<dd>/<session>/<replica>/_manifest.json
//! <prefix>v1/<namespace>/<connection>/<yyyy>/<mm>/<dd>/<session>/<replica>/_digests/000001.json
//! ```
//! The date is the UTC date the session started. Each replica writes only under its own
//! `<replica>/` folder. The manifest and digests start with `_` so that query engines that treat
//! such names as hidden (Athena, Trino, Hive, Spark) read only the segments under a table location.

use std::fmt;

use time::{Date, Month};

/// A key or key part that does not fit the layout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error(
        "{part} {value:?} must be non-empty, not '.' or '..', and hold no '/' or control characters"
    )]
    BadComponent { part: &'static str, value: String },
    #[error("prefix {prefix:?} must be empty or end with '/', and not start with '/'")]
    BadPrefix { prefix: String },
    #[error(
        "session id {session:?} is not a UUIDv7, so it carries no date; pass the date explicitly"
    )]
    NoDateInSessionId { session: String },
    #[error("key {key:?} is not a Chaperone recording object: {reason}")]
    NotARecordingKey { key: String, reason: String },
}

/// Where one session's objects live.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionLocation {
    prefix: String,
    namespace: String,
    connection: String,
    date: Date,
    session: String,
}

/// Where one replica's stream of one session lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamLocation {
    session: SessionLocation,
    replica: String,
}

/// Which object of a stream a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectName {
    /// `NNNNNN.jsonl.zst`, numbered from 1.
    Segment(u32),
    /// `_manifest.json`.
    Manifest,
    /// `_digests/NNNNNN.json`, numbered from 1.
    Digest(u64),
}

/// A parsed object key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub stream: StreamLocation,
    pub name: ObjectName,
}

fn check_component(part: &'static str, value: &str) -> Result<(), LayoutError> {
    if value.is_empty()
        || value == "."
        || value == ".."
        || value.contains('/')
        || value.chars().any(char::is_control)
    {
        return Err(LayoutError::BadComponent { part, value: value.to_owned() });
    }
    Ok(())
}

impl SessionLocation {
    /// `prefix` is the RecordingPolicy's prefix (empty, or ending with `/`); `date` the UTC date
    /// the session started.
    pub fn new(
        prefix: &str,
        namespace: &str,
        connection: &str,
        date: Date,
        session: &str,
    ) -> Result<Self, LayoutError> {
        if prefix.starts_with('/') || !(prefix.is_empty() || prefix.ends_with('/')) {
            return Err(LayoutError::BadPrefix { prefix: prefix.to_owned() });
        }
        check_component("namespace", namespace)?;
        check_component("connection", connection)?;
        check_component("session", session)?;
        Ok(Self {
            prefix: prefix.to_owned(),
            namespace: namespace.to_owned(),
            connection: connection.to_owned(),
            date,
            session: session.to_owned(),
        })
    }

    /// Like [`SessionLocation::new`], with the date taken from the UUIDv7 session id, so every
    /// replica derives the same date for a session.
    pub fn from_session_id(
        prefix: &str,
        namespace: &str,
        connection: &str,
        session: &str,
    ) -> Result<Self, LayoutError> {
        let issued = crate::session_id::session_id_time(session)
            .ok_or_else(|| LayoutError::NoDateInSessionId { session: session.to_owned() })?;
        Self::new(prefix, namespace, connection, issued.date(), session)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    pub fn connection(&self) -> &str {
        &self.connection
    }
    pub fn date(&self) -> Date {
        self.date
    }
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The key prefix under which all of the session's replicas write, ending with `/`.
    pub fn key_prefix(&self) -> String {
        format!(
            "{}v1/{}/{}/{:04}/{:02}/{:02}/{}/",
            self.prefix,
            self.namespace,
            self.connection,
            self.date.year(),
            u8::from(self.date.month()),
            self.date.day(),
            self.session
        )
    }

    /// The stream of `replica`.
    pub fn stream(&self, replica: &str) -> Result<StreamLocation, LayoutError> {
        check_component("replica", replica)?;
        Ok(StreamLocation { session: self.clone(), replica: replica.to_owned() })
    }
}

impl StreamLocation {
    pub fn session(&self) -> &SessionLocation {
        &self.session
    }
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The key prefix of this stream, ending with `/`.
    pub fn key_prefix(&self) -> String {
        format!("{}{}/", self.session.key_prefix(), self.replica)
    }

    pub fn key(&self, name: ObjectName) -> String {
        format!("{}{}", self.key_prefix(), name)
    }

    pub fn segment_key(&self, index: u32) -> String {
        self.key(ObjectName::Segment(index))
    }

    pub fn manifest_key(&self) -> String {
        self.key(ObjectName::Manifest)
    }

    pub fn digest_key(&self, n: u64) -> String {
        self.key(ObjectName::Digest(n))
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Segment(i) => write!(f, "{}", segment_file_name(*i)),
            Self::Manifest => f.write_str("_manifest.json"),
            Self::Digest(n) => write!(f, "_digests/{n:06}.json"),
        }
    }
}

/// `000001.jsonl.zst` for segment 1: at least six digits, zero-padded.
pub fn segment_file_name(index: u32) -> String {
    format!("{index:06}.jsonl.zst")
}

/// Parses a zero-padded number of at least six digits, at least 1.
fn parse_number(digits: &str) -> Option<u64> {
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A longer name must not have a leading zero, so each number has exactly one name.
    if digits.len() > 6 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok().filter(|n| *n >= 1)
}

/// Parses a segment file name back to its index.
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let n = parse_number(name.strip_suffix(".jsonl.zst")?)?;
    u32::try_from(n).ok()
}

impl ObjectKey {
    /// Parses a full object key (bucket-relative). The prefix is whatever precedes `v1/` at the
    /// position the layout dictates, counted from the end of the key.
    pub fn parse(key: &str) -> Result<Self, LayoutError> {
        let fail = |reason: &str| LayoutError::NotARecordingKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts: Vec<&str> = key.split('/').collect();
        let file = parts.pop().ok_or_else(|| fail("empty key"))?;
        let name = if let Some(i) = parse_segment_file_name(file) {
            ObjectName::Segment(i)
        } else if file == "_manifest.json" {
            ObjectName::Manifest
        } else if let Some(n) = file.strip_suffix(".json").and_then(parse_number) {
            if parts.pop() != Some("_digests") {
                return Err(fail("a numbered .json object must be under _digests/"));
            }
            ObjectName::Digest(n)
        } else {
            return Err(fail(
                "file name is none of NNNNNN.jsonl.zst, _manifest.json, _digests/NNNNNN.json",
            ));
        };
        if parts.len() < 8 {
            return Err(fail("too few path components"));
        }
        let rest = parts.split_off(parts.len() - 8);
        let [v1, namespace, connection, yyyy, mm, dd, session, replica] = rest.as_slice() else {
            return Err(fail("too few path components"));
        };
        let [v1, namespace, connection, yyyy, mm, dd, session, replica] =
            [*v1, *namespace, *connection, *yyyy, *mm, *dd, *session, *replica];
        if v1 != "v1" {
            return Err(fail(&format!("expected \"v1\" where {v1:?} is")));
        }
        let number = |text: &str, what: &str, len: usize| -> Result<u8, LayoutError> {
            if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(&format!("{what} {text:?} is not {len} digits")));
            }
            text.parse().map_err(|_| fail(&format!("{what} {text:?} is out of range")))
        };
        let year: i32 = if yyyy.len() == 4 && yyyy.bytes().all(|b| b.is_ascii_digit()) {
            yyyy.parse().map_err(|_| fail(&format!("year {yyyy:?} is not 4 digits")))?
        } else {
            return Err(fail(&format!("year {yyyy:?} is not 4 digits")));
        };
        let month = number(mm, "month", 2)?;
        let day = number(dd, "day", 2)?;
        let date = Month::try_from(month)
            .ok()
            .and_then(|m| Date::from_calendar_date(year, m, day).ok())
            .ok_or_else(|| fail(&format!("{yyyy}/{mm}/{dd} is not a date")))?;
        let prefix = if parts.is_empty() { String::new() } else { format!("{}/", parts.join("/")) };
        let session = SessionLocation::new(&prefix, namespace, connection, date, session)?;
        let stream = session.stream(replica)?;
        Ok(Self { stream, name })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stream.key(self.name))
    }
}

impl std::str::FromStr for ObjectKey {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    fn stream(prefix: &str) -> StreamLocation {
        SessionLocation::new(prefix, "team-a", "prod", date!(2026 - 11 - 25), "019abc")
            .unwrap()
            .stream("gw-0")
            .unwrap()
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let s = stream("agents/");
        assert_eq!(
            s.segment_key(1),
            "agents/v1/team-a/prod/2026/11/25/019abc/gw-0/000001.jsonl.zst"
        );
        assert_eq!(s.manifest_key(), "agents/v1/team-a/prod/2026/11/25/019abc/gw-0/_manifest.json");
        assert_eq!(
            s.digest_key(12),
            "agents/v1/team-a/prod/2026/11/25/019abc/gw-0/_digests/000012.json"
        );
        assert_eq!(s.segment_key(1_234_567), format!("{}1234567.jsonl.zst", s.key_prefix()));
    }

    #[test]
    fn date_comes_from_the_uuidv7_session_id() {
        let issued = crate::timestamp::Timestamp::parse("2026-11-25T23:59:59.999Z").unwrap();
        let id = crate::session_id::new_session_id(issued);
        let location = SessionLocation::from_session_id("", "ns", "conn", &id).unwrap();
        assert_eq!(location.key_prefix(), format!("v1/ns/conn/2026/11/25/{id}/"));
        assert!(matches!(
            SessionLocation::from_session_id("", "ns", "conn", "not-a-uuid"),
            Err(LayoutError::NoDateInSessionId { .. })
        ));
    }

    #[test]
    fn keys_parse_back_with_any_prefix() {
        for prefix in ["", "agents/", "a/b/c/", "x/v1/"] {
            let s = stream(prefix);
            for name in [ObjectName::Segment(3), ObjectName::Manifest, ObjectName::Digest(7)] {
                let key = s.key(name);
                assert_eq!(ObjectKey::parse(&key).unwrap(), ObjectKey { stream: s.clone(), name });
            }
        }
    }

    #[test]
    fn foreign_keys_are_refused_with_the_reason() {
        for key in [
            "agents/v1/team-a/prod/2026/11/25/019abc/gw-0/notes.txt",
            "agents/v2/team-a/prod/2026/11/25/019abc/gw-0/_manifest.json",
            "agents/v1/team-a/prod/2026/13/25/019abc/gw-0/_manifest.json",
            "v1/prod/2026/11/25/019abc/gw-0/_manifest.json",
            "agents/v1/team-a/prod/2026/11/25/019abc/gw-0/000000.jsonl.zst",
            "agents/v1/team-a/prod/2026/11/25/019abc/gw-0/0000001.jsonl.zst",
            "agents/v1/team-a/prod/2026/11/25/019abc/gw-0/000001.json",
        ] {
            assert!(ObjectKey::parse(key).is_err(), "{key}");
        }
        assert!(SessionLocation::new("agents", "a", "b", date!(2026 - 01 - 01), "s").is_err());
        assert!(stream("").session().stream("a/b").is_err());
    }

    proptest! {
        #[test]
        fn any_valid_location_round_trips(
            prefix in "([a-z0-9._-]{1,8}/){0,3}",
            ns in "[a-z0-9-]{1,20}",
            conn in "[a-z0-9.-]{1,20}",
            session in "[0-9a-f-]{1,36}",
            replica in "[a-z0-9-]{1,20}",
            days in 0i64..2_900_000,
            index in 1u32..,
        ) {
            prop_assume!(![ns.as_str(), conn.as_str(), session.as_str(), replica.as_str()].iter().any(|c| *c == "." || *c == ".."));
            prop_assume!(!prefix.split('/').any(|c| c == "." || c == ".."));
            let date = Date::from_julian_day(1_721_426 + days as i32).unwrap();
            let s = SessionLocation::new(&prefix, &ns, &conn, date, &session).unwrap().stream(&replica).unwrap();
            for name in [ObjectName::Segment(index), ObjectName::Manifest, ObjectName::Digest(u64::from(index))] {
                prop_assert_eq!(ObjectKey::parse(&s.key(name)).unwrap(), ObjectKey { stream: s.clone(), name });
            }
        }
    }
}
