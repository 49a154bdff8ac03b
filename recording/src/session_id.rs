//! Session ids: UUIDv7, so they sort by issuance time and carry the date their layout uses.

use uuid::Uuid;

use crate::timestamp::Timestamp;

/// A new session id (UUIDv7, lowercase hyphenated) for a session issued at `issued`.
pub fn new_session_id(issued: Timestamp) -> String {
    let nanos = issued.unix_nanos().max(0);
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, subsec);
    Uuid::new_v7(ts).hyphenated().to_string()
}

/// The issuance time (millisecond precision) a UUIDv7 session id carries, so every replica
/// derives the same `<yyyy>/<mm>/<dd>` for it. `None` for ids that are not UUIDv7.
pub fn session_id_time(session: &str) -> Option<Timestamp> {
    let id = Uuid::try_parse(session).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Timestamp::from_unix_nanos(i128::from(secs) * 1_000_000_000 + i128::from(nanos)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_carry_their_issuance_time_to_the_millisecond() {
        let issued = Timestamp::parse("2026-11-25T23:59:59.999999999Z").unwrap();
        let id = new_session_id(issued);
        assert_eq!(id.len(), 36);
        assert_eq!(
            session_id_time(&id).unwrap(),
            Timestamp::parse("2026-11-25T23:59:59.999Z").unwrap()
        );
        assert!(
            new_session_id(issued)
                > new_session_id(Timestamp::parse("2026-11-25T00:00:00Z").unwrap())
        );
        assert_eq!(session_id_time("not-a-uuid"), None);
        assert_eq!(session_id_time("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), None);
    }
}
