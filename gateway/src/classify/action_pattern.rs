//! IAM action patterns (`s3:Get*`, `dynamodb:?etItem`, `*`) as policies and approval rules
//! write them.

use std::fmt;
use std::str::FromStr;

/// Why an action pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionPatternError {
    /// The pattern is empty.
    #[error("an action pattern may not be empty; write `service:Action`, `service:*` or `*`")]
    Empty,
    /// The pattern has no `service:` part.
    #[error(
        "action pattern `{0}` has no service prefix; write `service:Action`, e.g. `s3:GetObject`"
    )]
    MissingService(String),
    /// The pattern has whitespace or a second colon.
    #[error(
        "action pattern `{0}` has characters IAM actions never contain (whitespace or a second `:`)"
    )]
    InvalidCharacters(String),
}

/// An IAM action pattern: `service:Action` where `*` matches any run of characters and `?` any
/// one character, compared case-insensitively as IAM does. `*` alone matches every action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionPattern {
    pattern: String,
}

impl ActionPattern {
    /// Parses a pattern.
    pub fn parse(pattern: &str) -> Result<Self, ActionPatternError> {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(ActionPatternError::Empty);
        }
        if pattern.chars().any(char::is_whitespace) || pattern.matches(':').count() > 1 {
            return Err(ActionPatternError::InvalidCharacters(pattern.to_owned()));
        }
        if pattern != "*" && !pattern.contains(':') {
            return Err(ActionPatternError::MissingService(pattern.to_owned()));
        }
        Ok(ActionPattern { pattern: pattern.to_owned() })
    }

    /// Whether `action` (`service:Action`) matches.
    pub fn matches(&self, action: &str) -> bool {
        chaperone_crds::glob_matches(&self.pattern, action, true)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl FromStr for ActionPattern {
    type Err = ActionPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionPattern::parse(s)
    }
}

impl fmt::Display for ActionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, action: &str) -> bool {
        ActionPattern::parse(pattern).map(|p| p.matches(action)).unwrap_or(false)
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(matches("*", "s3:GetObject"));
        assert!(matches("s3:*", "s3:GetObject"));
        assert!(matches("s3:Get*", "s3:GetObjectVersion"));
        assert!(matches("dynamodb:?etItem", "dynamodb:GetItem"));
        assert!(matches("dynamodb:*Item", "dynamodb:BatchWriteItem"));
        assert!(matches("s3:*Object*", "s3:DeleteObjectVersion"));
        assert!(!matches("s3:Get*", "s3:PutObject"));
        assert!(!matches("s3:*", "s3express:CreateSession"));
        assert!(!matches("dynamodb:?etItem", "dynamodb:GetItems"));
        assert!(!matches("s3:GetObject", "s3:GetObjectVersion"));
    }

    #[test]
    fn action_names_compare_case_insensitively() {
        assert!(matches("s3:getobject", "s3:GetObject"));
        assert!(matches("S3:Get*", "s3:GETOBJECT"));
        assert!(matches("iam:passrole", "iam:PassRole"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        assert_eq!(ActionPattern::parse(""), Err(ActionPatternError::Empty));
        assert_eq!(
            ActionPattern::parse("GetObject"),
            Err(ActionPatternError::MissingService("GetObject".into()))
        );
        assert!(matches!(
            ActionPattern::parse("s3:Get Object"),
            Err(ActionPatternError::InvalidCharacters(_))
        ));
        assert!(matches!(
            ActionPattern::parse("s3:a:b"),
            Err(ActionPatternError::InvalidCharacters(_))
        ));
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let pattern = ActionPattern::parse("s3:*a*a*a*a*a*a*a*a*b").unwrap();
        assert!(!pattern.matches(&format!("s3:{}", "a".repeat(10_000))));
    }
}
