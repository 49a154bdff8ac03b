//! [`Redacted`]: a value that `Debug` never prints, so that structs holding keys, tokens and
//! passwords can derive `Debug` and still be logged safely.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// A value shown as `<redacted>` by `Debug`; reached through `Deref` (or `.0`) on purpose.
/// Serializes as the value itself: only `Debug` hides it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Redacted<T>(pub T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> Deref for Redacted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Login {
        user: String,
        password: Redacted<String>,
    }

    #[test]
    fn debug_never_shows_the_value_and_serde_sees_through_it() {
        let login = Login { user: "ada".into(), password: Redacted("hunter2".into()) };
        let shown = format!("{login:?} {:?}", Some(Redacted([7u8; 4])));
        assert!(!shown.contains("hunter2") && !shown.contains('7'), "{shown}");
        assert!(shown.contains("ada") && shown.contains("<redacted>"), "{shown}");
        assert_eq!(login.password.len(), 7, "reached through Deref");
        let json = serde_json::to_string(&Redacted("k")).unwrap();
        assert_eq!(json, "\"k\"");
        assert_eq!(serde_json::from_str::<Redacted<String>>(&json).unwrap().0, "k");
    }
}
