//! A session's calls for the session page: the CLI's timeline lines (one per call) with each
//! call's recorded events attached, and bodies made readable (JSON and XML indented, binary
//! named as such, redactions and truncation marked as the recording marks them).

use std::collections::HashMap;

use chaperone_recording::{ApprovalDecision, Body, BodyEncoding, Effect, EventBody, RecordedEvent};
use serde::Serialize;
use serde_json::Value;

use crate::timeline::{CallLine, calls};

/// How the page draws a call: the colour of its mark on the timeline.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Allowed by policy and forwarded.
    Allow,
    /// Denied by policy.
    Deny,
    /// Held, then released by reviewers.
    Approved,
    /// Held, then denied by a reviewer or timed out.
    Refused,
}

/// One call with everything recorded about it: its timeline line (flattened; `latency_us` falls
/// back to the response's `upstream_total_us`, forwarding to the upstream's last byte, which is
/// what gateways record today when `timings.total_us` is absent) and what the page adds.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    #[serde(flatten)]
    pub line: CallLine,
    /// Unix milliseconds, for the timeline's x axis.
    pub at_ms: Option<i64>,
    pub outcome: Outcome,
    /// The recorded events of the call, as recorded (`approval`, `request`, `response`, `denied`).
    pub events: Vec<Value>,
    /// The request's and response's bodies, readable.
    pub request_body: Option<BodyView>,
    pub response_body: Option<BodyView>,
}

/// A body as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BodyView {
    /// `json`, `xml`, `text`, `binary`, `redacted` (the whole body replaced) or `empty`.
    pub format: &'static str,
    pub text: String,
    pub size: u64,
    /// Bytes captured (less than `size` when truncated).
    pub captured: u64,
    pub truncated: bool,
    pub sha256: String,
}

/// The calls of `events` (merged by time), in the order they appear.
pub fn call_views(events: &[RecordedEvent]) -> Vec<CallView> {
    let lines = calls(events);
    let mut by_call: HashMap<(&str, &str), Vec<&RecordedEvent>> = HashMap::new();
    for recorded in events {
        let Some(call) = recorded.event.body.call() else { continue };
        by_call.entry((recorded.event.replica.as_str(), call)).or_default().push(recorded);
    }
    lines
        .into_iter()
        .map(|line| {
            let recorded = by_call
                .get(&(line.replica.as_str(), line.call.as_str()))
                .cloned()
                .unwrap_or_default();
            view(line, &recorded)
        })
        .collect()
}

fn view(mut line: CallLine, recorded: &[&RecordedEvent]) -> CallView {
    let mut outcome = Outcome::Allow;
    let mut request_body = None;
    let mut response_body = None;
    let mut events = Vec::new();
    let mut upstream_total_us = None;
    for r in recorded {
        match &r.event.body {
            EventBody::Approval(a) => {
                outcome = match a.outcome {
                    ApprovalDecision::Approved => Outcome::Approved,
                    ApprovalDecision::Denied | ApprovalDecision::TimedOut => Outcome::Refused,
                };
            }
            EventBody::Request(q) => request_body = Some(body_view(&q.body)),
            EventBody::Denied(d) => {
                request_body = Some(body_view(&d.body));
                if outcome == Outcome::Allow && d.decision.effect == Effect::Deny {
                    outcome = Outcome::Deny;
                }
            }
            EventBody::Response(p) => {
                response_body = Some(body_view(&p.body));
                upstream_total_us = p.timings.upstream_total_us;
            }
            EventBody::SessionStart(_) | EventBody::SessionEnd(_) => {}
        }
        // The line as recorded: what an auditor would read in the segment.
        events.push(
            serde_json::from_slice(&r.line)
                .unwrap_or_else(|e| Value::String(format!("unreadable line: {e}"))),
        );
    }
    line.latency_us = line.latency_us.or(upstream_total_us);
    CallView {
        at_ms: line.time.map(|t| (t.unix_nanos() / 1_000_000) as i64),
        line,
        outcome,
        events,
        request_body,
        response_body,
    }
}

/// A recorded body made readable.
pub fn body_view(body: &Body) -> BodyView {
    let bytes = body.captured_bytes();
    let captured = bytes.as_ref().map(|b| b.len() as u64).unwrap_or(0);
    let (format, text) = match (&body.encoding, &bytes) {
        (_, Err(_)) => ("binary", format!("(undecodable {} data)", encoding_name(body.encoding))),
        (_, Ok(b)) if b.is_empty() => ("empty", String::new()),
        (BodyEncoding::Base64, Ok(b)) => ("binary", hex_preview(b)),
        (BodyEncoding::Utf8, Ok(_)) => readable(&body.data),
    };
    BodyView {
        format,
        text,
        size: body.size,
        captured,
        truncated: body.truncated,
        sha256: body.sha256.to_string(),
    }
}

fn encoding_name(encoding: BodyEncoding) -> &'static str {
    match encoding {
        BodyEncoding::Utf8 => "utf8",
        BodyEncoding::Base64 => "base64",
    }
}

/// Text as JSON or XML indented when it is one, else as is.
fn readable(text: &str) -> (&'static str, String) {
    let trimmed = text.trim_start();
    if is_whole_body_marker(trimmed) {
        return ("redacted", text.to_owned());
    }
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<Value>(text)
        && let Ok(pretty) = serde_json::to_string_pretty(&value)
    {
        return ("json", pretty);
    }
    if trimmed.starts_with('<') {
        return ("xml", indent_xml(trimmed));
    }
    ("text", text.to_owned())
}

/// True for `{"redacted":"sha256:<hex>"}`: the recording replaced the whole body.
fn is_whole_body_marker(text: &str) -> bool {
    text.trim_end()
        .strip_prefix("{\"redacted\":\"sha256:")
        .and_then(|rest| rest.strip_suffix("\"}"))
        .is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Puts each element on its own line, indented by depth; text stays beside its tags.
pub fn indent_xml(text: &str) -> String {
    let mut out = String::new();
    let mut depth: usize = 0;
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let before = rest[..start].trim();
        if !before.is_empty() {
            out.push_str(before);
        }
        let Some(len) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let tag = &rest[start..start + len + 1];
        let closing = tag.starts_with("</");
        let self_closing = tag.ends_with("/>") || tag.starts_with("<?") || tag.starts_with("<!");
        if closing {
            depth = depth.saturating_sub(1);
        }
        // A closing tag right after its text stays on the text's line.
        if !closing || before.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&"  ".repeat(depth));
        }
        out.push_str(tag);
        if !closing && !self_closing {
            depth += 1;
        }
        rest = &rest[start + len + 1..];
    }
    let tail = rest.trim();
    if !tail.is_empty() {
        out.push_str(tail);
    }
    out
}

/// The first bytes of a binary body in hex, 16 to a line.
fn hex_preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 512;
    let mut lines: Vec<String> = bytes[..bytes.len().min(SHOWN)]
        .chunks(16)
        .map(|chunk| chunk.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
        .collect();
    if bytes.len() > SHOWN {
        lines.push(format!("… ({} more captured bytes)", bytes.len() - SHOWN));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_recording::redaction::redaction_marker_text;
    use chaperone_recording::{Hash256, redact_body};

    #[test]
    fn json_bodies_are_indented_with_their_redaction_markers_kept() {
        let mut body = Body::complete(br#"{"Name":"db","SecretString":"hunter2"}"#);
        let mut redacted = Vec::new();
        redact_body(&mut body, &["/SecretString"], &mut redacted).unwrap();
        assert_eq!(redacted, vec!["body:/SecretString".to_owned()]);
        let view = body_view(&body);
        assert_eq!(view.format, "json");
        assert!(view.text.contains("\"Name\": \"db\""), "{}", view.text);
        assert!(view.text.contains("\"redacted\": \"sha256:"), "{}", view.text);
        assert!(!view.text.contains("hunter2"));
    }

    #[test]
    fn xml_is_indented_by_depth() {
        let text = indent_xml("<?xml version=\"1.0\"?><A><B>x</B><C/></A>");
        assert_eq!(text, "<?xml version=\"1.0\"?>\n<A>\n  <B>x</B>\n  <C/>\n</A>");
    }

    #[test]
    fn truncated_binary_and_wholly_redacted_bodies_say_so() {
        let truncated = Body::captured(b"{\"a\":", 100, Hash256::of(b"x"));
        let view = body_view(&truncated);
        assert!(view.truncated);
        assert_eq!((view.captured, view.size), (5, 100));
        assert_eq!(view.format, "text", "a cut JSON body is shown as text");

        let binary = Body::complete(&[0xff, 0x00, 0x10]);
        assert_eq!(body_view(&binary).format, "binary");
        assert_eq!(body_view(&binary).text, "ff 00 10");

        let marker = redaction_marker_text(Hash256::of(b"whole body"));
        let redacted = Body { data: marker, ..Body::complete(b"whole body") };
        assert_eq!(body_view(&redacted).format, "redacted");
    }

    fn ts(secs: u64) -> chaperone_recording::Timestamp {
        chaperone_recording::Timestamp::parse("2026-11-25T17:00:00Z")
            .unwrap()
            .checked_add(std::time::Duration::from_secs(secs))
            .unwrap()
    }

    fn request(call: &str, effect: Effect) -> chaperone_recording::Request {
        chaperone_recording::Request {
            call: call.into(),
            method: "DELETE".into(),
            path: "/scratch".into(),
            query: vec![],
            headers: vec![("authorization".into(), "{\"redacted\":\"sha256:00\"}".into())],
            body: Body::empty(),
            aws: chaperone_recording::AwsCall {
                service: "s3".into(),
                operation: "DeleteBucket".into(),
                actions: vec!["s3:DeleteBucket".into()],
                resources: vec!["arn:aws:s3:::scratch".into()],
            },
            decision: chaperone_recording::Decision { effect, object: None, rule: None },
            timings: chaperone_recording::Timings::default(),
            redacted: vec!["header:authorization".into()],
        }
    }

    fn approval(call: &str, outcome: ApprovalDecision) -> chaperone_recording::Approval {
        chaperone_recording::Approval {
            call: call.into(),
            approval_request: "ar-1".into(),
            rule: "deletes".into(),
            outcome,
            approvers: vec![chaperone_recording::Approver {
                username: "rita".into(),
                groups: vec!["sre".into()],
            }],
            reason: None,
            waited_ms: 4000,
            fingerprint: "f".into(),
        }
    }

    #[test]
    fn each_call_joins_its_events_and_is_coloured_by_how_it_was_decided() {
        use chaperone_recording::{Denied, Response, SegmentReader, SegmentWriter, Timings};
        let mut writer = SegmentWriter::new("019abc00-0000-7000-8000-000000000001", "gw-0");
        let mut append = |at: u64, body: EventBody| writer.append(ts(at), body).unwrap();
        append(1, EventBody::Approval(approval("c1", ApprovalDecision::Approved)));
        append(1, EventBody::Request(request("c1", Effect::Allow)));
        append(
            2,
            EventBody::Response(Response {
                call: "c1".into(),
                status: Some(204),
                headers: vec![],
                body: Body::empty(),
                timings: Timings { upstream_total_us: Some(9_000), ..Timings::default() },
                upstream_error: None,
                redacted: vec![],
                request_body: None,
            }),
        );
        let refused = request("c2", Effect::Deny);
        append(3, EventBody::Approval(approval("c2", ApprovalDecision::TimedOut)));
        let denied = |call: &str| Denied {
            call: call.into(),
            method: refused.method.clone(),
            path: refused.path.clone(),
            query: vec![],
            headers: vec![],
            body: Body::complete(b"<Delete><Bucket>scratch</Bucket></Delete>"),
            aws: refused.aws.clone(),
            decision: refused.decision.clone(),
            timings: Timings::default(),
            status: 403,
            error_code: "AccessDenied".into(),
            message: "no".into(),
            redacted: vec![],
        };
        append(3, EventBody::Denied(denied("c2")));
        append(4, EventBody::Denied(denied("c3")));
        let segment = writer.finish_segment().unwrap().unwrap();
        let events = SegmentReader::read_all(&segment.bytes).unwrap();

        let views = call_views(&events);
        assert_eq!(views.len(), 3);
        let (approved, timed_out, denied) = (&views[0], &views[1], &views[2]);
        assert_eq!(approved.outcome, Outcome::Approved);
        assert!(approved.line.approval.as_deref().unwrap().starts_with("approved by rita"));
        assert_eq!(
            approved.line.latency_us,
            Some(9_000),
            "upstream_total_us when total_us is absent"
        );
        assert_eq!(approved.events.len(), 3, "approval, request, response as recorded");
        assert_eq!(approved.events[1]["headers"][0][1], "{\"redacted\":\"sha256:00\"}");
        assert_eq!(approved.at_ms, Some(1_795_626_001_000));
        // The page's JSON: the line's fields beside the view's, the time shortened.
        let page = serde_json::to_value(approved).unwrap();
        assert_eq!(page["time"], "2026-11-25T17:00:01.000Z");
        assert_eq!(page["operation"], approved.line.operation);
        assert!(page["approval"].as_str().unwrap().contains("rita"));
        assert_eq!(timed_out.outcome, Outcome::Refused);
        assert_eq!(denied.outcome, Outcome::Deny);
        let body = denied.request_body.as_ref().unwrap();
        assert_eq!(body.format, "xml");
        assert_eq!(body.text, "<Delete>\n  <Bucket>scratch</Bucket>\n</Delete>");
    }

    #[test]
    fn undecodable_base64_is_shown_as_broken_not_a_panic() {
        let broken = Body { encoding: BodyEncoding::Base64, data: "***".into(), ..Body::empty() };
        let view = body_view(&broken);
        assert_eq!(view.format, "binary");
        assert!(view.text.contains("undecodable"));
    }
}
