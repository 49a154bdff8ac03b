//! A session's calls as a readable timeline: one line per call, joining its `approval`,
//! `request`, `response` or `denied` events by call id.

use std::collections::HashMap;

use chaperone_recording::{
    ApprovalDecision, AwsCall, Decision, Effect, EventBody, RecordedEvent, Timestamp,
};
use serde::Serialize;

use crate::text_table::TextTable;

/// One call (the console's page reads it as JSON, the time shortened as the CLI prints it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CallLine {
    #[serde(serialize_with = "serialize_short_time")]
    pub time: Option<Timestamp>,
    pub replica: String,
    pub call: String,
    pub method: String,
    pub operation: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// `allow`, or `deny (<rule>, <object>)`.
    pub decision: String,
    /// HTTP status returned to the agent (with the error code for denials), `upstream-error`,
    /// or `-` when no response was recorded.
    pub status: String,
    /// First byte received to last byte sent, in microseconds.
    pub latency_us: Option<u64>,
    /// How an approval hold ended and who decided.
    pub approval: Option<String>,
}

/// The calls of `events` (already in display order), in the order their first event appears.
pub fn calls(events: &[RecordedEvent]) -> Vec<CallLine> {
    let mut lines: Vec<CallLine> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut line_for = |lines: &mut Vec<CallLine>, replica: &str, call: &str| -> usize {
        *index.entry((replica.to_owned(), call.to_owned())).or_insert_with(|| {
            lines.push(CallLine {
                replica: replica.to_owned(),
                call: call.to_owned(),
                status: "-".to_owned(),
                ..CallLine::default()
            });
            lines.len() - 1
        })
    };
    for recorded in events {
        let event = &recorded.event;
        let Some(call) = event.body.call() else { continue };
        let i = line_for(&mut lines, &event.replica, call);
        let Some(line) = lines.get_mut(i) else { continue };
        match &event.body {
            EventBody::Approval(approval) => {
                let who =
                    approval.approvers.iter().map(|a| a.username.as_str()).collect::<Vec<_>>();
                let waited = waited(approval.waited_ms);
                let mut text = match approval.outcome {
                    ApprovalDecision::Approved => {
                        format!("approved by {} after {waited}", who.join(","))
                    }
                    ApprovalDecision::Denied => {
                        format!("denied by {} after {waited}", who.join(","))
                    }
                    ApprovalDecision::TimedOut => format!("timed out after {waited}"),
                };
                if let Some(reason) = &approval.reason {
                    text.push_str(&format!(": {reason}"));
                }
                text.push_str(&format!(" [{}]", approval.approval_request));
                line.time.get_or_insert(event.ts);
                line.approval = Some(text);
            }
            EventBody::Request(request) => {
                describe(line, event.ts, &request.method, &request.aws, &request.decision);
            }
            EventBody::Denied(denied) => {
                describe(line, event.ts, &denied.method, &denied.aws, &denied.decision);
                line.status = format!("{} {}", denied.status, denied.error_code);
                line.latency_us = denied.timings.total_us;
            }
            EventBody::Response(response) => {
                line.time.get_or_insert(event.ts);
                line.status = match (response.status, &response.upstream_error) {
                    (Some(status), _) => status.to_string(),
                    (None, Some(_)) => "upstream-error".to_owned(),
                    (None, None) => "-".to_owned(),
                };
                line.latency_us = response.timings.total_us;
            }
            EventBody::SessionStart(_) | EventBody::SessionEnd(_) => {}
        }
    }
    lines
}

/// The line of a forwarded or denied call: when it was asked, what it was, how it was decided.
fn describe(line: &mut CallLine, at: Timestamp, method: &str, aws: &AwsCall, decision: &Decision) {
    line.time = Some(at);
    line.method = method.to_owned();
    line.operation = aws.operation.clone();
    line.actions = aws.actions.clone();
    line.resources = aws.resources.clone();
    line.decision = match decision.effect {
        Effect::Allow => "allow".to_owned(),
        Effect::Deny => {
            let why: Vec<&str> = [decision.rule.as_deref(), decision.object.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if why.is_empty() { "deny".to_owned() } else { format!("deny ({})", why.join(", ")) }
        }
    };
}

/// `2026-11-25T17:00:01.123Z`: millisecond precision is enough to read.
pub fn short_time(at: Timestamp) -> String {
    let text = at.to_string();
    match text.get(..23) {
        Some(head) => format!("{head}Z"),
        None => text,
    }
}

fn serialize_short_time<S: serde::Serializer>(
    at: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    at.map(short_time).serialize(serializer)
}

/// How long a call was held: `0.4s`, `12.0s`.
fn waited(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1_000.0)
}

/// `850us`, `12.3ms`, `4.2s`.
pub fn latency(us: u64) -> String {
    if us < 1_000 {
        format!("{us}us")
    } else if us < 10_000_000 {
        format!("{:.1}ms", us as f64 / 1_000.0)
    } else {
        format!("{:.1}s", us as f64 / 1_000_000.0)
    }
}

/// The calls as a table; with `show_replica`, a REPLICA column after TIME.
pub fn render(lines: &[CallLine], show_replica: bool) -> String {
    let mut headers = vec!["TIME"];
    if show_replica {
        headers.push("REPLICA");
    }
    headers.extend([
        "METHOD",
        "OPERATION",
        "ACTIONS",
        "RESOURCE",
        "DECISION",
        "STATUS",
        "LATENCY",
        "APPROVAL",
    ]);
    let mut table = TextTable::new(&headers);
    for line in lines {
        let mut row = vec![line.time.map(short_time).unwrap_or_else(|| "-".to_owned())];
        if show_replica {
            row.push(line.replica.clone());
        }
        let resource = match line.resources.as_slice() {
            [] => "-".to_owned(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
        };
        row.extend([
            or_dash(&line.method),
            or_dash(&line.operation),
            or_dash(&line.actions.join(",")),
            resource,
            or_dash(&line.decision),
            line.status.clone(),
            line.latency_us.map(latency).unwrap_or_else(|| "-".to_owned()),
            line.approval.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
        table.push(row);
    }
    table.render()
}

fn or_dash(text: &str) -> String {
    if text.is_empty() { "-".to_owned() } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_recording::{
        Approval, Approver, Body, Denied, Request, Response, SegmentReader, SegmentWriter, Timings,
    };

    const SESSION: &str = "019abc00-0000-7000-8000-000000000001";

    fn ts(secs: u64) -> Timestamp {
        Timestamp::parse("2026-11-25T17:00:00Z")
            .unwrap()
            .checked_add(std::time::Duration::from_secs(secs))
            .unwrap()
    }

    fn aws(action: &str) -> AwsCall {
        let (service, operation) = action.split_once(':').unwrap();
        AwsCall {
            service: service.into(),
            operation: operation.into(),
            actions: vec![action.into()],
            resources: vec!["arn:aws:s3:::prod-data".into()],
        }
    }

    fn request(call: &str, action: &str) -> Request {
        Request {
            call: call.into(),
            method: "DELETE".into(),
            path: "/prod-data".into(),
            query: vec![],
            headers: vec![],
            body: Body::empty(),
            aws: aws(action),
            decision: Decision { effect: Effect::Allow, object: None, rule: None },
            timings: Timings::default(),
            redacted: vec![],
        }
    }

    #[test]
    fn an_approved_call_and_a_denied_call_make_one_line_each() {
        let mut writer = SegmentWriter::new(SESSION, "gw-0");
        let approval = Approval {
            call: "c1".into(),
            approval_request: "ar-1".into(),
            rule: "deletes".into(),
            outcome: ApprovalDecision::Approved,
            approvers: vec![Approver { username: "alice".into(), groups: vec!["sre".into()] }],
            reason: None,
            waited_ms: 3000,
            fingerprint: "f".into(),
        };
        writer.append(ts(1), EventBody::Approval(approval)).unwrap();
        writer.append(ts(1), EventBody::Request(request("c1", "s3:DeleteBucket"))).unwrap();
        let response = Response {
            call: "c1".into(),
            status: Some(204),
            headers: vec![],
            body: Body::empty(),
            timings: Timings { total_us: Some(12_345), ..Timings::default() },
            upstream_error: None,
            redacted: vec![],
            request_body: None,
        };
        writer.append(ts(2), EventBody::Response(response)).unwrap();
        let r = request("c2", "iam:CreateUser");
        let denied = Denied {
            call: "c2".into(),
            method: "POST".into(),
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
            aws: r.aws,
            decision: Decision {
                effect: Effect::Deny,
                object: Some("AgentConnection/team-a/prod".into()),
                rule: Some("policy.deny[0]: iam:*".into()),
            },
            timings: Timings::default(),
            status: 403,
            error_code: "AccessDenied".into(),
            message: "denied".into(),
            redacted: vec![],
        };
        writer.append(ts(3), EventBody::Denied(denied)).unwrap();
        let segment = writer.finish_segment().unwrap().unwrap();
        let events = SegmentReader::read_all(&segment.bytes).unwrap();

        let lines = calls(&events);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].status, "204");
        assert_eq!(lines[0].approval.as_deref(), Some("approved by alice after 3.0s [ar-1]"));
        assert_eq!(lines[0].actions, vec!["s3:DeleteBucket".to_owned()]);
        assert_eq!(lines[1].status, "403 AccessDenied");
        assert_eq!(lines[1].decision, "deny (policy.deny[0]: iam:*, AgentConnection/team-a/prod)");
        let text = render(&lines, false);
        assert!(text.starts_with("TIME "), "{text}");
        assert!(
            text.contains("2026-11-25T17:00:01.000Z   DELETE   DeleteBucket   s3:DeleteBucket"),
            "{text}"
        );
        assert!(text.contains("12.3ms"), "{text}");
    }

    #[test]
    fn latencies_read_in_the_unit_that_fits() {
        assert_eq!(latency(850), "850us");
        assert_eq!(latency(12_345), "12.3ms");
        assert_eq!(latency(42_000_000), "42.0s");
    }
}
