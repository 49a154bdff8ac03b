//! The globs of policy statements, approval rules and the CLI's filters, matched as IAM matches
//! them: `*` any run of characters, `?` one character, actions without regard to ASCII case,
//! resource ARNs exactly.

/// Whether `text` matches the whole of `pattern`, comparing letters without regard to ASCII case
/// when `ignore_ascii_case` (IAM actions) and exactly otherwise (ARNs). Linear backtracking on the
/// last `*`, so no pattern blows up.
pub fn glob_matches(pattern: &str, text: &str, ignore_ascii_case: bool) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let same = |a: u8, b: u8| if ignore_ascii_case { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and how much of the text it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || same(c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn stars_and_question_marks_match_whole_texts_with_or_without_case() {
        let cases = [
            ("s3:*", "s3:PutObject", true, true),
            ("s3:delete*", "s3:DeleteObject", true, true),
            ("s3:delete*", "s3:DeleteObject", false, false),
            ("dynamodb:?etItem", "dynamodb:GetItem", true, true),
            ("dynamodb:?etItem", "dynamodb:BatchGetItem", true, false),
            ("s3:*Object", "s3:PutObjectAcl", true, false),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b/k/1", false, true),
            ("arn:aws:s3:::B/*", "arn:aws:s3:::b/k", false, false),
            ("*a*a*a*a*a*b", &"a".repeat(200), false, false),
            ("", "", false, true),
            ("*", "", false, true),
            ("?", "", false, false),
        ];
        for (pattern, text, ignore_case, expected) in cases {
            assert_eq!(glob_matches(pattern, text, ignore_case), expected, "{pattern} ~ {text}");
        }
    }
}
