//! Comparing a recorded response with a replayed one: volatile values (request ids, dates and
//! timestamps, ETags, owner ids, generated ids) are normalized away, then the bodies are compared
//! line by line and the differences shown as a small unified diff. Pure: bytes in, verdict out.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What replaying one call showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same status, and the same body after normalization (or the body could not be compared; see
    /// `note`).
    Same { note: Option<String> },
    /// The status differs.
    StatusDiffers { recorded: u16, replayed: u16 },
    /// Same status, different normalized body; `diff` is a unified-ish diff, `-` recorded, `+`
    /// replayed.
    BodyDiffers { diff: String },
}

/// A response, as recorded or as received.
#[derive(Clone, Copy, Debug)]
pub struct ResponseView<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Compares `recorded` with `replayed`. `recorded_body_comparable` is false when the recording
/// does not hold the whole body (truncated, redacted): then only the status is compared.
pub fn compare(
    recorded: ResponseView<'_>,
    replayed: ResponseView<'_>,
    recorded_body_comparable: Result<(), String>,
) -> Verdict {
    if recorded.status != replayed.status {
        return Verdict::StatusDiffers { recorded: recorded.status, replayed: replayed.status };
    }
    if let Err(why) = recorded_body_comparable {
        return Verdict::Same { note: Some(format!("status only: {why}")) };
    }
    if recorded.body == replayed.body {
        return Verdict::Same { note: None };
    }
    let (Ok(old), Ok(new)) =
        (std::str::from_utf8(recorded.body), std::str::from_utf8(replayed.body))
    else {
        return Verdict::BodyDiffers {
            diff: format!(
                "  binary bodies differ: recorded {} bytes, replayed {} bytes",
                recorded.body.len(),
                replayed.body.len()
            ),
        };
    };
    let kind = BodyKind::of(recorded.content_type.or(replayed.content_type), old);
    let old = normalize(kind, old);
    let new = normalize(kind, new);
    if old == new {
        return Verdict::Same { note: None };
    }
    Verdict::BodyDiffers { diff: unified_diff(&old, &new, 2) }
}

/// How a body is read for normalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Xml,
    Text,
}

impl BodyKind {
    /// From the content type, else from the first non-blank character.
    pub fn of(content_type: Option<&str>, body: &str) -> Self {
        let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
        if content_type.contains("json") {
            return Self::Json;
        }
        if content_type.contains("xml") {
            return Self::Xml;
        }
        match body.trim_start().chars().next() {
            Some('{' | '[') => Self::Json,
            Some('<') => Self::Xml,
            _ => Self::Text,
        }
    }
}

/// The body with volatile values replaced by placeholders, one element (XML) or member (JSON, pretty
/// printed with sorted keys) per line, so that equal bodies compare equal and unequal ones diff
/// readably.
pub fn normalize(kind: BodyKind, body: &str) -> String {
    match kind {
        BodyKind::Json => match serde_json::from_str::<Value>(body) {
            Ok(value) => {
                let value = normalize_json(None, value);
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| normalize_text(body))
            }
            Err(_) => normalize_text(body),
        },
        BodyKind::Xml => normalize_xml(body),
        BodyKind::Text => normalize_text(body),
    }
}

/// Whether a member or element of this name holds a value that differs between two runs of the
/// same call: request and host ids, dates and times, ETags, generated ids.
pub fn is_volatile_name(name: &str, parent: Option<&str>) -> bool {
    let lower = name.to_ascii_lowercase();
    let parent = parent.map(str::to_ascii_lowercase);
    let owner_like = |p: &str| matches!(p, "owner" | "initiator" | "grantee");
    if (lower == "id" || lower == "displayname") && parent.as_deref().is_some_and(owner_like) {
        return true;
    }
    matches!(
        lower.as_str(),
        "requestid"
            | "request_id"
            | "x-amz-request-id"
            | "x-amz-id-2"
            | "hostid"
            | "etag"
            | "tableid"
            | "streamarn"
            | "lateststreamarn"
            | "lateststreamlabel"
            | "uploadid"
            | "versionid"
            | "messageid"
            | "md5ofmessagebody"
            | "owneraccountid"
    ) || (lower.ends_with("time") && lower != "runtime")
        || lower.ends_with("date")
        || lower.ends_with("timestamp")
        || lower.ends_with("modified")
}

fn normalize_json(name: Option<&str>, value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(key, member)| {
                    let member = if is_volatile_name(&key, name) && !member.is_object() {
                        Value::String(format!("<{key}>"))
                    } else {
                        normalize_json(Some(&key), member)
                    };
                    (key, member)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|item| normalize_json(name, item)).collect())
        }
        Value::String(text) => Value::String(normalize_text(&text)),
        other => other,
    }
}

/// XML as one tag or text run per line, indented by depth, with volatile elements' text replaced.
fn normalize_xml(body: &str) -> String {
    let mut out = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>').map_or(after.len(), |i| i + 1);
            let tag = &rest[..=end.min(after.len())];
            rest = &after[end.min(after.len())..];
            let inner = tag.trim_start_matches('<').trim_end_matches('>');
            let closing = inner.starts_with('/');
            let declaration = inner.starts_with('?') || inner.starts_with('!');
            let self_closing = inner.ends_with('/');
            if closing {
                stack.pop();
            }
            push_line(&mut out, stack.len(), tag.trim());
            if !closing && !declaration && !self_closing {
                let name = inner.split(|c: char| c.is_whitespace() || c == '/').next();
                stack.push(name.unwrap_or_default().to_owned());
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = rest[..end].trim();
            rest = &rest[end..];
            if text.is_empty() {
                continue;
            }
            let name = stack.last().map(|n| local_name(n));
            let parent =
                stack.len().checked_sub(2).and_then(|i| stack.get(i)).map(|n| local_name(n));
            let text = match name {
                Some(name) if is_volatile_name(name, parent) => format!("<{name}>"),
                _ => normalize_text(text),
            };
            push_line(&mut out, stack.len(), &text);
        }
    }
    out
}

fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn push_line(out: &mut String, depth: usize, line: &str) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    out.push_str(line);
    out.push('\n');
}

static ISO_8601: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
        .expect("a valid pattern")
});
static HTTP_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT")
        .expect("a valid pattern")
});
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
        .expect("a valid pattern")
});
static AMZ_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{8}T\d{6}Z\b").expect("a valid pattern"));

/// Free text with timestamps (ISO 8601, HTTP dates, `x-amz-date` form) and UUIDs replaced.
pub fn normalize_text(text: &str) -> String {
    let text = ISO_8601.replace_all(text, "<timestamp>");
    let text = HTTP_DATE.replace_all(&text, "<http-date>");
    let text = AMZ_DATE.replace_all(&text, "<timestamp>");
    UUID.replace_all(&text, "<uuid>").into_owned()
}

/// A line diff of `old` and `new` (`-` old, `+` new, ` ` context), keeping `context` unchanged
/// lines around each change and `...` for what is left out.
pub fn unified_diff(old: &str, new: &str, context: usize) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Bodies beyond this many line pairs are not diffed line by line.
    const MAX_CELLS: usize = 4_000_000;
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        return format!(
            "  bodies differ ({} recorded lines, {} replayed lines; too long to diff)",
            a.len(),
            b.len()
        );
    }
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] =
                if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> =
        ops.iter().enumerate().filter(|(_, (k, _))| *k != ' ').map(|(i, _)| i).collect();
    let keep = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= context);
    let mut out = String::new();
    let mut skipped = false;
    for (index, (kind, line)) in ops.iter().enumerate() {
        if keep(index) {
            out.push_str(&format!("  {kind} {line}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("    ...\n");
            skipped = true;
        }
    }
    out.trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `diff` has a line of `kind` (`-`, `+`, ` `) whose text is `text`.
    fn has_line(diff: &str, kind: char, text: &str) -> bool {
        diff.lines().any(|l| {
            l.strip_prefix("  ")
                .and_then(|l| l.strip_prefix(kind))
                .is_some_and(|l| l.trim() == text)
        })
    }

    fn view<'a>(status: u16, content_type: &'a str, body: &'a str) -> ResponseView<'a> {
        ResponseView { status, content_type: Some(content_type), body: body.as_bytes() }
    }

    #[test]
    fn s3_listings_that_differ_only_in_dates_etags_owner_and_request_ids_are_the_same() {
        let recorded = r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>data</Name><Contents><Key>a.txt</Key><LastModified>2026-11-29T20:01:02.000Z</LastModified><ETag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</ETag><Size>5</Size><Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner></Contents><RequestId>4442587FB7D0A2F9</RequestId></ListBucketResult>"#;
        let replayed = r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>data</Name><Contents><Key>a.txt</Key><LastModified>2026-11-30T08:00:00.000Z</LastModified><ETag>&quot;0000000000000000000000000000000a&quot;</ETag><Size>5</Size><Owner><ID>other-owner</ID></Owner></Contents><RequestId>ABCDEF</RequestId></ListBucketResult>"#;
        assert_eq!(
            compare(
                view(200, "application/xml", recorded),
                view(200, "application/xml", replayed),
                Ok(())
            ),
            Verdict::Same { note: None }
        );
    }

    #[test]
    fn an_s3_listing_with_another_key_differs_and_the_diff_names_both_keys() {
        let recorded = "<ListBucketResult><Contents><Key>a.txt</Key><Size>5</Size></Contents></ListBucketResult>";
        let replayed = "<ListBucketResult><Contents><Key>b.txt</Key><Size>5</Size></Contents></ListBucketResult>";
        let Verdict::BodyDiffers { diff } = compare(
            view(200, "application/xml", recorded),
            view(200, "application/xml", replayed),
            Ok(()),
        ) else {
            panic!("the keys differ");
        };
        assert!(has_line(&diff, '-', "a.txt") && has_line(&diff, '+', "b.txt"), "{diff}");
        assert!(has_line(&diff, ' ', "<Key>"), "context is kept: {diff}");
    }

    #[test]
    fn dynamodb_table_descriptions_differ_only_in_creation_time_and_table_id_are_the_same() {
        let recorded = r#"{"TableDescription":{"TableName":"builds","TableStatus":"ACTIVE","CreationDateTime":1764446400.123,"TableId":"0b9a7e4c-1111-4222-8333-444455556666","TableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/builds","BillingModeSummary":{"BillingMode":"PAY_PER_REQUEST","LastUpdateToPayPerRequestDateTime":1764446400.5}}}"#;
        let replayed = r#"{"TableDescription":{"TableStatus":"ACTIVE","TableName":"builds","CreationDateTime":1764450000.9,"TableId":"9f9a7e4c-2222-4222-8333-444455556666","TableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/builds","BillingModeSummary":{"BillingMode":"PAY_PER_REQUEST","LastUpdateToPayPerRequestDateTime":1764450001}}}"#;
        assert_eq!(
            compare(
                view(200, "application/x-amz-json-1.0", recorded),
                view(200, "application/x-amz-json-1.0", replayed),
                Ok(())
            ),
            Verdict::Same { note: None }
        );
    }

    #[test]
    fn a_dynamodb_item_with_another_value_differs() {
        let recorded = r#"{"Item":{"id":{"S":"b-1"},"state":{"S":"green"}}}"#;
        let replayed = r#"{"Item":{"id":{"S":"b-1"},"state":{"S":"red"}}}"#;
        let Verdict::BodyDiffers { diff } = compare(
            view(200, "application/json", recorded),
            view(200, "application/json", replayed),
            Ok(()),
        ) else {
            panic!("the items differ");
        };
        assert!(
            has_line(&diff, '-', r#""S": "green""#) && has_line(&diff, '+', r#""S": "red""#),
            "{diff}"
        );
    }

    #[test]
    fn a_different_status_is_reported_before_anything_else() {
        assert_eq!(
            compare(view(200, "", "ok"), view(404, "", "NoSuchBucket"), Ok(())),
            Verdict::StatusDiffers { recorded: 200, replayed: 404 }
        );
    }

    #[test]
    fn a_recorded_body_that_cannot_be_compared_compares_the_status_only() {
        assert_eq!(
            compare(
                view(200, "", "abc"),
                view(200, "", "xyz"),
                Err("recorded body truncated".into())
            ),
            Verdict::Same { note: Some("status only: recorded body truncated".into()) }
        );
    }

    #[test]
    fn timestamps_http_dates_and_uuids_in_free_text_are_normalized() {
        assert_eq!(
            normalize_text(
                "at 2026-11-29T20:01:02Z and 2026-11-29T20:01:02.123+01:00, Sun, 29 Nov 2026 20:01:02 GMT, 20261129T200102Z, id 0b9a7e4c-1111-4222-8333-444455556666"
            ),
            "at <timestamp> and <timestamp>, <http-date>, <timestamp>, id <uuid>"
        );
    }

    #[test]
    fn error_bodies_differ_only_in_request_and_host_ids_are_the_same() {
        let a =
            "<Error><Code>NoSuchKey</Code><RequestId>A1</RequestId><HostId>h1==</HostId></Error>";
        let b =
            "<Error><Code>NoSuchKey</Code><RequestId>B2</RequestId><HostId>h2==</HostId></Error>";
        assert_eq!(normalize(BodyKind::Xml, a), normalize(BodyKind::Xml, b));
        let a = r#"{"__type":"ResourceNotFoundException","message":"x","requestId":"r1"}"#;
        let b = r#"{"message":"x","__type":"ResourceNotFoundException","requestId":"r2"}"#;
        assert_eq!(normalize(BodyKind::Json, a), normalize(BodyKind::Json, b));
    }

    #[test]
    fn names_that_only_look_like_times_are_not_volatile() {
        assert!(!is_volatile_name("TimeToLiveStatus", None));
        assert!(!is_volatile_name("ID", Some("Rule")));
        assert!(is_volatile_name("ID", Some("Owner")));
        assert!(is_volatile_name("LastModified", None));
        assert!(is_volatile_name("CreationDate", None));
    }

    #[test]
    fn binary_bodies_are_compared_byte_for_byte() {
        let recorded = ResponseView { status: 200, content_type: None, body: &[0xff, 0x00] };
        let replayed = ResponseView { status: 200, content_type: None, body: &[0xff, 0x01] };
        assert!(matches!(compare(recorded, replayed, Ok(())), Verdict::BodyDiffers { .. }));
        assert_eq!(compare(recorded, recorded, Ok(())), Verdict::Same { note: None });
    }

    #[test]
    fn a_diff_leaves_out_unchanged_runs_far_from_changes() {
        let old: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 10\n", "line ten\n");
        let diff = unified_diff(&old, &new, 1);
        assert_eq!(diff, "    ...\n    line 9\n  - line 10\n  + line ten\n    line 11\n    ...");
    }
}
