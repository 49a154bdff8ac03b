//! `Timestamp`: an instant in UTC, written as RFC 3339 with exactly nine fractional digits and `Z`.
//!
//! The fixed width makes the text form sort the same way as the instants it names.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

/// Why a timestamp could not be built or parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimestampError {
    #[error("timestamp {text:?} is not RFC 3339: {reason}")]
    NotRfc3339 { text: String, reason: String },
    #[error("timestamp year {year} is outside 0000..=9999")]
    YearOutOfRange { year: i32 },
    #[error("unix time {nanos} ns is not a representable instant")]
    OutOfRange { nanos: i128 },
}

/// An instant in UTC with nanosecond precision.
///
/// Serialized as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`; any RFC 3339 text (any offset, any number of
/// fractional digits) is accepted when parsing and converted to UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    /// Wraps an `OffsetDateTime`, converting it to UTC. Years outside 0000..=9999 are refused.
    pub fn from_offset_date_time(at: OffsetDateTime) -> Result<Self, TimestampError> {
        let utc = at.to_offset(UtcOffset::UTC);
        if !(0..=9999).contains(&utc.year()) {
            return Err(TimestampError::YearOutOfRange { year: utc.year() });
        }
        Ok(Self(utc))
    }

    /// The instant `nanos` nanoseconds after 1970-01-01T00:00:00Z.
    pub fn from_unix_nanos(nanos: i128) -> Result<Self, TimestampError> {
        let at = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| TimestampError::OutOfRange { nanos })?;
        Self::from_offset_date_time(at)
    }

    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub fn unix_nanos(&self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// Parses any RFC 3339 timestamp.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| TimestampError::NotRfc3339 {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_offset_date_time(at)
    }

    /// The UTC calendar date.
    pub fn date(&self) -> Date {
        self.0.date()
    }

    /// The underlying `OffsetDateTime` (always UTC).
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// This instant plus `duration`, or `None` past year 9999.
    pub fn checked_add(&self, duration: Duration) -> Option<Self> {
        let at = self.0.checked_add(time::Duration::try_from(duration).ok()?)?;
        Self::from_offset_date_time(at).ok()
    }

    /// This instant minus `duration`, or `None` before year 0000.
    pub fn checked_sub(&self, duration: Duration) -> Option<Self> {
        let at = self.0.checked_sub(time::Duration::try_from(duration).ok()?)?;
        Self::from_offset_date_time(at).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond()
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_with_nine_fractional_digits_in_utc() {
        let ts = Timestamp::parse("2026-11-25T18:45:47.5+01:00").unwrap();
        assert_eq!(ts.to_string(), "2026-11-25T17:45:47.500000000Z");
    }

    #[test]
    fn refuses_text_that_is_not_rfc3339() {
        assert!(matches!(
            Timestamp::parse("2026-11-25 17:45:47"),
            Err(TimestampError::NotRfc3339 { .. })
        ));
    }

    proptest! {
        #[test]
        fn text_form_round_trips_and_sorts_like_the_instant(
            a in 0i128..253_402_300_799_000_000_000i128,
            b in 0i128..253_402_300_799_000_000_000i128,
        ) {
            let (ta, tb) = (Timestamp::from_unix_nanos(a).unwrap(), Timestamp::from_unix_nanos(b).unwrap());
            prop_assert_eq!(Timestamp::parse(&ta.to_string()).unwrap(), ta);
            prop_assert_eq!(ta.cmp(&tb), ta.to_string().cmp(&tb.to_string()));
        }
    }
}
