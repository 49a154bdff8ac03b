//! `--since` and `--until` values: an RFC 3339 timestamp, or an age such as `2h`, `90m`, `7d` or
//! `1h30m` counted back from now.

use std::time::Duration;

use chaperone_recording::Timestamp;

/// Why a time bound could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeBoundError {
    #[error(
        "{text:?} is neither an RFC 3339 timestamp (2026-11-25T17:00:00Z) nor an age like 30m, 2h, 7d or 1h30m"
    )]
    Unreadable { text: String },
    #[error("{text:?} reaches back before year 0000")]
    OutOfRange { text: String },
}

/// Parses a time bound relative to `now`.
pub fn parse_time_bound(text: &str, now: Timestamp) -> Result<Timestamp, TimeBoundError> {
    if let Ok(at) = Timestamp::parse(text) {
        return Ok(at);
    }
    let age =
        parse_age(text).ok_or_else(|| TimeBoundError::Unreadable { text: text.to_owned() })?;
    now.checked_sub(age).ok_or_else(|| TimeBoundError::OutOfRange { text: text.to_owned() })
}

/// Parses an age: one or more `<number><unit>` with units `s`, `m`, `h`, `d`, `w`.
pub fn parse_age(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.trim().chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(u64::from(digit))?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() || text.trim().is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-25T17:00:00Z").unwrap()
    }

    #[test]
    fn ages_count_back_from_now_and_timestamps_are_taken_as_they_are() {
        let at = |t: &str| Timestamp::parse(t).unwrap();
        assert_eq!(parse_time_bound("2h", now()), Ok(at("2026-11-25T15:00:00Z")));
        assert_eq!(parse_time_bound("1h30m", now()), Ok(at("2026-11-25T15:30:00Z")));
        assert_eq!(parse_time_bound("7d", now()), Ok(at("2026-11-18T17:00:00Z")));
        assert_eq!(parse_time_bound("45s", now()), Ok(at("2026-11-25T16:59:15Z")));
        assert_eq!(
            parse_time_bound("2026-11-24T10:00:00+01:00", now()),
            Ok(at("2026-11-24T09:00:00Z"))
        );
    }

    #[test]
    fn text_that_is_neither_is_refused_with_examples() {
        for text in ["", "2", "h", "2x", "yesterday", "2h 30m", "-2h"] {
            let err = parse_time_bound(text, now()).unwrap_err();
            assert!(err.to_string().contains("RFC 3339"), "{text}: {err}");
        }
        assert!(matches!(
            parse_time_bound("99999999w", now()),
            Err(TimeBoundError::OutOfRange { .. })
        ));
    }
}
