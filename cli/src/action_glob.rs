//! IAM action globs (`s3:Delete*`, `dynamodb:?etItem`): `*` matches any run of characters, `?`
//! one character, and matching ignores case, as IAM's own action matching does.

/// An action glob as given, matched with the gateway's own rule ([`chaperone_crds::glob_matches`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionGlob {
    pattern: String,
}

impl ActionGlob {
    pub fn new(pattern: &str) -> Self {
        Self { pattern: pattern.to_owned() }
    }

    /// True when `action` matches the whole pattern.
    pub fn matches(&self, action: &str) -> bool {
        chaperone_crds::glob_matches(&self.pattern, action, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks_match_like_iam_and_case_is_ignored() {
        let cases = [
            ("s3:*", "s3:PutObject", true),
            ("s3:Delete*", "s3:DeleteBucket", true),
            ("s3:delete*", "s3:DeleteObject", true),
            ("s3:Delete*", "s3:PutObject", false),
            ("*", "iam:CreateUser", true),
            ("dynamodb:?etItem", "dynamodb:GetItem", true),
            ("dynamodb:?etItem", "dynamodb:BatchGetItem", false),
            ("*:Get*", "secretsmanager:GetSecretValue", true),
            ("s3:*Object", "s3:PutObjectAcl", false),
            ("s3:*Object*", "s3:PutObjectAcl", true),
            ("s3:PutObject", "s3:PutObject", true),
            ("s3:PutObject", "s3:PutObjectAcl", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ];
        for (pattern, action, expected) in cases {
            assert_eq!(ActionGlob::new(pattern).matches(action), expected, "{pattern} {action}");
        }
    }
}
