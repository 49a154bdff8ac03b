//! Finding sessions in the bucket by walking the layout's folders
//! (`<prefix>v1/<namespace>/<connection>/<yyyy>/<mm>/<dd>/<session>/`), pruned by namespace,
//! connection and the date range, so a bounded query lists only the days it covers.

use chaperone_recording::{SessionLocation, Timestamp, session_id_time};
use time::{Date, Month};

use crate::recording_bucket::{BucketError, RecordingBucket};

/// Sessions whose id (issuance time) falls between `since` and `until`, both inclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl TimeRange {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.since.is_none_or(|s| s <= at) && self.until.is_none_or(|u| at <= u)
    }

    /// True when some day from `first` to `last` can hold a session in the range.
    pub fn overlaps_days(&self, first: Date, last: Date) -> bool {
        self.since.is_none_or(|s| s.date() <= last) && self.until.is_none_or(|u| first <= u.date())
    }
}

/// What to look for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogScope {
    pub namespace: Option<String>,
    pub connection: Option<String>,
    pub range: TimeRange,
}

/// Why a session could not be located.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error(
        "{session:?} is not a Chaperone session id: session ids are UUIDv7 (e.g. 019abc00-0000-7000-8000-000000000001), whose time gives the date folder to look in; copy it from `kubectl chaperone sessions list`"
    )]
    NotASessionId { session: String },
    #[error("session {session} was not found: looked under {looked}")]
    NotFound { session: String, looked: String },
    #[error(
        "session {session} is recorded under several connections: {locations}; choose one with --namespace and --connection"
    )]
    Ambiguous { session: String, locations: String },
    #[error(transparent)]
    Bucket(#[from] BucketError),
}

/// The (namespace, connection) pairs to look in.
async fn connections(
    bucket: &RecordingBucket,
    namespace: Option<&str>,
    connection: Option<&str>,
) -> Result<Vec<(String, String)>, BucketError> {
    let root = format!("{}v1/", bucket.prefix());
    let namespaces = match namespace {
        Some(ns) => vec![ns.to_owned()],
        None => bucket.folders(&root).await?,
    };
    let mut pairs = Vec::new();
    for ns in namespaces {
        match connection {
            Some(conn) => pairs.push((ns, conn.to_owned())),
            None => {
                for conn in bucket.folders(&format!("{root}{ns}/")).await? {
                    pairs.push((ns.clone(), conn));
                }
            }
        }
    }
    Ok(pairs)
}

/// Every session in `scope`, in key order (namespace, connection, date, id).
pub async fn find_sessions(
    bucket: &RecordingBucket,
    scope: &CatalogScope,
) -> Result<Vec<SessionLocation>, BucketError> {
    let range = scope.range;
    let mut found = Vec::new();
    for (ns, conn) in
        connections(bucket, scope.namespace.as_deref(), scope.connection.as_deref()).await?
    {
        let base = format!("{}v1/{ns}/{conn}/", bucket.prefix());
        for year in numbered(bucket.folders(&base).await?, 4) {
            let Ok(year_i32) = i32::try_from(year) else { continue };
            let (Ok(first), Ok(last)) = (
                Date::from_calendar_date(year_i32, Month::January, 1),
                Date::from_calendar_date(year_i32, Month::December, 31),
            ) else {
                continue;
            };
            if !range.overlaps_days(first, last) {
                continue;
            }
            let year_prefix = format!("{base}{year:04}/");
            for month in numbered(bucket.folders(&year_prefix).await?, 2) {
                let Some(month_enum) =
                    u8::try_from(month).ok().and_then(|m| Month::try_from(m).ok())
                else {
                    continue;
                };
                let (Ok(first), Ok(last)) = (
                    Date::from_calendar_date(year_i32, month_enum, 1),
                    Date::from_calendar_date(year_i32, month_enum, month_enum.length(year_i32)),
                ) else {
                    continue;
                };
                if !range.overlaps_days(first, last) {
                    continue;
                }
                let month_prefix = format!("{year_prefix}{month:02}/");
                for day in numbered(bucket.folders(&month_prefix).await?, 2) {
                    let Some(date) = u8::try_from(day)
                        .ok()
                        .and_then(|d| Date::from_calendar_date(year_i32, month_enum, d).ok())
                    else {
                        continue;
                    };
                    if !range.overlaps_days(date, date) {
                        continue;
                    }
                    let day_prefix = format!("{month_prefix}{day:02}/");
                    for session in bucket.folders(&day_prefix).await? {
                        // A session id that is not a UUIDv7 has no time; keep it if its day fits.
                        if session_id_time(&session).is_some_and(|t| !range.contains(t)) {
                            continue;
                        }
                        if let Ok(location) =
                            SessionLocation::new(bucket.prefix(), &ns, &conn, date, &session)
                        {
                            found.push(location);
                        }
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Folder names of exactly `digits` digits, as numbers, in order.
fn numbered(folders: Vec<String>, digits: usize) -> Vec<u32> {
    let mut numbers: Vec<u32> = folders
        .iter()
        .filter(|f| f.len() == digits && f.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|f| f.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers
}

/// Finds the one place session `session` is recorded: its date comes from the UUIDv7 id, and
/// every namespace and connection (or only the given ones) is tried.
pub async fn locate_session(
    bucket: &RecordingBucket,
    session: &str,
    namespace: Option<&str>,
    connection: Option<&str>,
) -> Result<SessionLocation, LocateError> {
    let not_an_id = || LocateError::NotASessionId { session: session.to_owned() };
    let issued = session_id_time(session).ok_or_else(not_an_id)?;
    let pairs = connections(bucket, namespace, connection).await?;
    let mut found = Vec::new();
    for (ns, conn) in &pairs {
        let Ok(location) = SessionLocation::new(bucket.prefix(), ns, conn, issued.date(), session)
        else {
            continue;
        };
        if bucket.has_objects_under(&location.key_prefix()).await? {
            found.push(location);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => {
            let date = issued.date();
            let day = format!("{:04}/{:02}/{:02}", date.year(), u8::from(date.month()), date.day());
            let looked = match (namespace, connection) {
                (Some(ns), Some(conn)) => {
                    bucket.url(&format!("{}v1/{ns}/{conn}/{day}/{session}/", bucket.prefix()))
                }
                _ if pairs.is_empty() => format!(
                    "{} (no namespace or connection folders{})",
                    bucket.url(&format!(
                        "{}v1/{}",
                        bucket.prefix(),
                        namespace.map(|n| format!("{n}/")).unwrap_or_default()
                    )),
                    if bucket.prefix().is_empty() { "; is a --prefix needed?" } else { "" }
                ),
                _ => format!(
                    "{} for {} connection(s): {}",
                    bucket.url(&format!(
                        "{}v1/<namespace>/<connection>/{day}/{session}/",
                        bucket.prefix()
                    )),
                    pairs.len(),
                    pairs.iter().map(|(n, c)| format!("{n}/{c}")).collect::<Vec<_>>().join(", ")
                ),
            };
            Err(LocateError::NotFound { session: session.to_owned(), looked })
        }
        _ => Err(LocateError::Ambiguous {
            session: session.to_owned(),
            locations: found
                .iter()
                .map(|l| format!("{}/{}", l.namespace(), l.connection()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn a_range_keeps_only_the_days_and_instants_it_covers() {
        let range = TimeRange {
            since: Some(at("2026-11-24T22:00:00Z")),
            until: Some(at("2026-11-25T01:00:00Z")),
        };
        let day = |d: u8| Date::from_calendar_date(2026, Month::November, d).unwrap();
        assert!(!range.overlaps_days(day(23), day(23)));
        assert!(range.overlaps_days(day(24), day(24)));
        assert!(range.overlaps_days(day(25), day(25)));
        assert!(!range.overlaps_days(day(26), day(30)));
        assert!(range.overlaps_days(day(1), day(30)));
        assert!(range.contains(at("2026-11-24T23:00:00Z")));
        assert!(!range.contains(at("2026-11-24T21:59:59Z")));
        assert!(TimeRange::default().overlaps_days(day(1), day(1)));
    }

    #[test]
    fn only_folders_of_the_right_width_count_as_dates() {
        assert_eq!(
            numbered(vec!["2026".into(), "12".into(), "x".into(), "2025".into()], 4),
            vec![2025, 2026]
        );
    }
}
