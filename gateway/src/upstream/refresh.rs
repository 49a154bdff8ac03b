//! When temporary credentials are refreshed: ahead of expiry in the background while they still
//! serve, and synchronously only once they are too close to expiry to sign with.

use std::time::{Duration, SystemTime};

/// Credentials with less than this left are refreshed in the background; calls keep using them.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// Credentials with less than this left are not used: the call waits for fresh ones (a signed
/// request may take this long to reach AWS and finish a large upload).
pub const MIN_REMAINING: Duration = Duration::from_secs(60);

/// What to do with cached credentials at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Use them.
    Fresh,
    /// Use them, and start a background refresh unless one is running.
    RefreshAhead,
    /// Do not use them: wait for a refresh.
    Expired,
}

/// How credentials expiring at `expires_at` stand at `now`.
pub fn freshness(expires_at: SystemTime, now: SystemTime) -> Freshness {
    match expires_at.duration_since(now) {
        Ok(left) if left > REFRESH_AHEAD => Freshness::Fresh,
        Ok(left) if left > MIN_REMAINING => Freshness::RefreshAhead,
        _ => Freshness::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds_left: i64) -> Freshness {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let expires = if seconds_left >= 0 {
            now + Duration::from_secs(seconds_left as u64)
        } else {
            now - Duration::from_secs(seconds_left.unsigned_abs())
        };
        freshness(expires, now)
    }

    #[test]
    fn credentials_with_more_than_five_minutes_left_are_used_as_they_are() {
        assert_eq!(at(3600), Freshness::Fresh);
        assert_eq!(at(301), Freshness::Fresh);
    }

    #[test]
    fn credentials_within_five_minutes_of_expiry_serve_while_a_refresh_runs() {
        assert_eq!(at(300), Freshness::RefreshAhead);
        assert_eq!(at(61), Freshness::RefreshAhead);
    }

    #[test]
    fn credentials_within_a_minute_of_expiry_or_past_it_are_not_used() {
        assert_eq!(at(60), Freshness::Expired);
        assert_eq!(at(0), Freshness::Expired);
        assert_eq!(at(-10), Freshness::Expired);
    }
}
