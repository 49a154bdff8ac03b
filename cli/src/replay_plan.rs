//! Which recorded calls a replay re-issues, and how: from a session's events (replicas merged by
//! time) to requests ready to be signed for a sandbox, or the reason a call is skipped. Pure.

use std::collections::BTreeMap;

use chaperone_recording::{
    AWS_CHUNKED_HEADERS, ApprovalDecision, Body, Effect, Event, EventBody, HOP_HEADERS, Hash256,
    Request, Response,
};

/// One recorded call, in the order the session made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The call id in the recording.
    pub call: String,
    /// `s3:PutObject PUT /bucket/key`: what the call was.
    pub label: String,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Replay(Box<ReplayRequest>),
    Skip { reason: String },
}

/// A request to re-issue, with what the recording says came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayRequest {
    pub method: String,
    /// Path and query as on the wire (still percent-encoded).
    pub path_and_query: String,
    /// Headers to send (the agent's authentication, host and transport headers removed).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Signing name, e.g. `s3`.
    pub service: String,
    /// The region the call's resource ARNs name, if any.
    pub region: Option<String>,
    pub recorded_status: u16,
    pub recorded_content_type: Option<String>,
    pub recorded_body: Vec<u8>,
    /// Why the recorded response body cannot be compared, if it cannot.
    pub recorded_body_comparable: Result<(), String>,
}

/// Whether a recorded request header is re-sent: not the hop's headers the gateway drops too
/// ([`HOP_HEADERS`]: the agent's authentication, the gateway's host, transport), not aws-chunked
/// framing, and not the length, proxy credentials or cookies, which the replay's own request
/// carries or must not carry.
fn is_re_sent(name: &str) -> bool {
    !(HOP_HEADERS.contains(&name)
        || AWS_CHUNKED_HEADERS.contains(&name)
        || ["content-length", "proxy-authorization", "cookie"].contains(&name))
}

/// Verbs of IAM actions that only read.
const READ_ONLY_VERBS: &[&str] = &[
    "Get", "List", "Describe", "Head", "Query", "Scan", "BatchGet", "Select", "Lookup", "Search",
    "Check", "View", "Filter",
];

/// Whether every action of a call only reads, judged from the IAM actions the recording holds
/// (`s3:GetObject`, `dynamodb:Query`...). Unknown actions count as mutating.
pub fn is_read_only(actions: &[String]) -> bool {
    !actions.is_empty()
        && actions.iter().all(|action| {
            let verb = action.split_once(':').map_or("", |(_, verb)| verb);
            verb != "Unknown" && READ_ONLY_VERBS.iter().any(|prefix| verb.starts_with(prefix))
        })
}

/// Plans the replay of `events` (all replicas, merged by time).
pub fn plan(events: &[Event], only_mutating: bool) -> Vec<Step> {
    let mut responses: BTreeMap<&str, &Response> = BTreeMap::new();
    let mut approvals: BTreeMap<&str, ApprovalDecision> = BTreeMap::new();
    for event in events {
        match &event.body {
            EventBody::Response(response) => {
                responses.insert(&response.call, response);
            }
            EventBody::Approval(approval) => {
                approvals.insert(&approval.call, approval.outcome);
            }
            _ => {}
        }
    }
    let mut steps = Vec::new();
    for event in events {
        match &event.body {
            EventBody::Request(request) => {
                let label = label(&request.aws.actions, &request.method, &request.path);
                let action = match plan_request(
                    request,
                    responses.get(request.call.as_str()).copied(),
                    only_mutating,
                ) {
                    Ok(replay) => Action::Replay(Box::new(replay)),
                    Err(reason) => Action::Skip { reason },
                };
                steps.push(Step { call: request.call.clone(), label, action });
            }
            EventBody::Denied(denied) => {
                let reason = match approvals.get(denied.call.as_str()) {
                    Some(ApprovalDecision::Denied) => {
                        "held for approval and denied by a reviewer; never forwarded".to_owned()
                    }
                    Some(ApprovalDecision::TimedOut) => {
                        "held for approval and timed out; never forwarded".to_owned()
                    }
                    _ => format!(
                        "denied by {}{}; never forwarded",
                        denied.decision.rule.as_deref().unwrap_or("the gateway"),
                        denied
                            .decision
                            .object
                            .as_deref()
                            .map(|o| format!(" ({o})"))
                            .unwrap_or_default()
                    ),
                };
                steps.push(Step {
                    call: denied.call.clone(),
                    label: label(&denied.aws.actions, &denied.method, &denied.path),
                    action: Action::Skip { reason },
                });
            }
            _ => {}
        }
    }
    steps
}

fn label(actions: &[String], method: &str, path: &str) -> String {
    let actions = if actions.is_empty() { "-".to_owned() } else { actions.join(",") };
    format!("{actions} {method} {path}")
}

fn is_redaction_marker(value: &str) -> bool {
    value.starts_with("{\"redacted\":\"sha256:")
}

fn plan_request(
    request: &Request,
    response: Option<&Response>,
    only_mutating: bool,
) -> Result<ReplayRequest, String> {
    if request.decision.effect != Effect::Allow {
        return Err("not forwarded (the decision was deny)".into());
    }
    if request.aws.service == "sts" {
        return Err(
            "STS call answered by the gateway itself (credentials and identity), not by AWS".into(),
        );
    }
    if only_mutating && is_read_only(&request.aws.actions) {
        return Err("read-only (--only-mutating)".into());
    }
    let Some(response) = response else {
        return Err(
            "no response was recorded (the session ended or the replica died mid-call)".into()
        );
    };
    let Some(recorded_status) = response.status else {
        return Err(format!(
            "the upstream could not be reached when recorded ({})",
            response.upstream_error.as_deref().unwrap_or("no status")
        ));
    };
    if request.query.iter().any(|(name, _)| {
        name.eq_ignore_ascii_case("X-Amz-Signature")
            || name.eq_ignore_ascii_case("X-Amz-Credential")
    }) {
        return Err("presigned URL: its signature was redacted and cannot be re-made".into());
    }
    let body = full_body(&request.body, &request.redacted, "request")?;
    let mut chunked = false;
    let mut headers = Vec::new();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        if name == "x-amz-content-sha256" && value.starts_with("STREAMING-") {
            chunked = true;
        }
        if !is_re_sent(&name) {
            continue;
        }
        if is_redaction_marker(value) {
            return Err(format!("request header {name} was redacted"));
        }
        if name == "content-encoding" {
            let kept: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|e| {
                    let aws_chunked = e.eq_ignore_ascii_case("aws-chunked");
                    chunked |= aws_chunked;
                    !aws_chunked && !e.is_empty()
                })
                .collect();
            if !kept.is_empty() {
                headers.push((name, kept.join(", ")));
            }
            continue;
        }
        headers.push((name, value.clone()));
    }
    if chunked {
        // The checksum the SDK sent in the aws-chunked trailer is gone with the framing.
        headers.retain(|(name, _)| name != "x-amz-sdk-checksum-algorithm");
    }
    let recorded_content_type = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.clone());
    let (recorded_body, recorded_body_comparable) =
        match full_body(&response.body, &response.redacted, "recorded response") {
            Ok(bytes) => (bytes, Ok(())),
            Err(why) => (Vec::new(), Err(why)),
        };
    let path = path_style(request);
    let path_and_query = if request.query.is_empty() {
        path
    } else {
        let query: Vec<String> = request
            .query
            .iter()
            .map(
                |(name, value)| {
                    if value.is_empty() { name.clone() } else { format!("{name}={value}") }
                },
            )
            .collect();
        format!("{path}?{}", query.join("&"))
    };
    Ok(ReplayRequest {
        method: request.method.clone(),
        path_and_query,
        headers,
        body,
        service: request.aws.service.clone(),
        region: request
            .aws
            .resources
            .iter()
            .filter_map(|arn| arn.split(':').nth(3))
            .find(|region| !region.is_empty())
            .map(str::to_owned),
        recorded_status,
        recorded_content_type,
        recorded_body,
        recorded_body_comparable,
    })
}

/// The path, path-style: an S3 call the agent addressed virtual-host style (`<bucket>.<host>`) gets
/// its bucket (from the call's resource ARN) in front of the path, since the sandbox's host is not
/// the gateway's.
fn path_style(request: &Request) -> String {
    if request.aws.service != "s3" {
        return request.path.clone();
    }
    let host = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    let bucket = request
        .aws
        .resources
        .iter()
        .filter_map(|arn| arn.strip_prefix("arn:aws:s3:::"))
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .find(|bucket| !bucket.is_empty());
    match bucket {
        Some(bucket) if host.starts_with(&format!("{bucket}.")) => {
            format!("/{bucket}{}", request.path)
        }
        _ => request.path.clone(),
    }
}

/// The whole body, or why the recording does not hold it.
fn full_body(body: &Body, redacted: &[String], what: &str) -> Result<Vec<u8>, String> {
    if redacted.iter().any(|r| r == "body" || r.starts_with("body:")) {
        return Err(format!("{what} body was redacted"));
    }
    if body.sha256 == Hash256::from_bytes([0; 32]) && body.size > 0 {
        return Err(format!(
            "{what} body was a streamed upload whose sha256 the gateway did not know ({} bytes)",
            body.size
        ));
    }
    let bytes = body.captured_bytes().map_err(|e| format!("{what} body is not readable: {e}"))?;
    if body.truncated {
        if bytes.is_empty() {
            return Err(format!("{what} body was not captured ({} bytes)", body.size));
        }
        return Err(format!(
            "{what} body was truncated ({} of {} bytes captured)",
            bytes.len(),
            body.size
        ));
    }
    if Hash256::of(&bytes) != body.sha256 {
        return Err(format!("{what} body does not match its recorded sha256"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_recording::{Approval, AwsCall, Decision, Denied, Hash256, Timestamp, Timings};

    fn event(seq: u64, body: EventBody) -> Event {
        Event {
            v: 1,
            seq,
            ts: Timestamp::parse("2026-11-29T20:00:00Z").unwrap(),
            session: "s".into(),
            replica: "gw-0".into(),
            prev: Hash256::of(b""),
            body,
        }
    }

    fn request(call: &str, action: &str, method: &str, path: &str, body: Body) -> Request {
        Request {
            call: call.into(),
            method: method.into(),
            path: path.into(),
            query: vec![],
            headers: vec![
                ("host".into(), "127.0.0.1:9000".into()),
                ("authorization".into(), r#"{"redacted":"sha256:00"}"#.into()),
                ("x-amz-date".into(), "20261129T200000Z".into()),
                ("content-type".into(), "application/xml".into()),
            ],
            body,
            aws: AwsCall {
                service: action.split(':').next().unwrap().into(),
                operation: action.split(':').nth(1).unwrap().into(),
                actions: vec![action.into()],
                resources: vec!["arn:aws:dynamodb:eu-west-1:1:table/t".into()],
            },
            decision: Decision { effect: Effect::Allow, object: None, rule: None },
            timings: Timings::default(),
            redacted: vec!["header:authorization".into()],
        }
    }

    fn response(call: &str, status: u16, body: &str) -> Response {
        Response {
            call: call.into(),
            status: Some(status),
            headers: vec![("Content-Type".into(), "application/xml".into())],
            body: Body::complete(body.as_bytes()),
            timings: Timings::default(),
            upstream_error: None,
            redacted: vec![],
            request_body: None,
        }
    }

    fn skip_reason(step: &Step) -> &str {
        match &step.action {
            Action::Skip { reason } => reason,
            Action::Replay(_) => panic!("{} is replayed", step.label),
        }
    }

    #[test]
    fn a_complete_call_is_replayed_without_the_agents_authentication_or_host() {
        let events = vec![
            event(
                2,
                EventBody::Request(request(
                    "c1",
                    "s3:PutObject",
                    "PUT",
                    "/b/k",
                    Body::complete(b"hi"),
                )),
            ),
            event(3, EventBody::Response(response("c1", 200, ""))),
        ];
        let steps = plan(&events, false);
        let Action::Replay(replay) = &steps[0].action else { panic!("{steps:?}") };
        assert_eq!(steps[0].label, "s3:PutObject PUT /b/k");
        assert_eq!(replay.body, b"hi");
        assert_eq!(replay.headers, vec![("content-type".to_owned(), "application/xml".to_owned())]);
        assert_eq!(replay.region.as_deref(), Some("eu-west-1"));
        assert_eq!(replay.recorded_status, 200);
        assert_eq!(replay.recorded_content_type.as_deref(), Some("application/xml"));
        assert_eq!(replay.recorded_body_comparable, Ok(()));
    }

    #[test]
    fn truncated_uncaptured_streamed_and_redacted_bodies_are_skipped_with_their_reason() {
        let mut truncated = Body::captured(b"ab", 10, Hash256::of(b"abcdefghij"));
        truncated.truncated = true;
        let uncaptured = Body::captured(b"", 10, Hash256::of(b"abcdefghij"));
        let streamed = Body::captured(b"", 10, Hash256::from_bytes([0; 32]));
        let mut redacted = request("c4", "s3:PutObject", "PUT", "/b/k", Body::complete(b"{}"));
        redacted.redacted.push("body:/SecretString".into());
        let events = vec![
            event(1, EventBody::Request(request("c1", "s3:PutObject", "PUT", "/b/1", truncated))),
            event(2, EventBody::Request(request("c2", "s3:PutObject", "PUT", "/b/2", uncaptured))),
            event(3, EventBody::Request(request("c3", "s3:PutObject", "PUT", "/b/3", streamed))),
            event(4, EventBody::Request(redacted)),
        ]
        .into_iter()
        .chain(
            (1..=4)
                .map(|i| event(10 + i, EventBody::Response(response(&format!("c{i}"), 200, "")))),
        )
        .collect::<Vec<_>>();
        let steps = plan(&events, false);
        assert_eq!(skip_reason(&steps[0]), "request body was truncated (2 of 10 bytes captured)");
        assert_eq!(skip_reason(&steps[1]), "request body was not captured (10 bytes)");
        assert!(skip_reason(&steps[2]).contains("streamed upload whose sha256"), "{steps:?}");
        assert_eq!(skip_reason(&steps[3]), "request body was redacted");
    }

    #[test]
    fn denied_unapproved_sts_and_unanswered_calls_are_skipped_and_say_why() {
        let mut sts = request("c2", "sts:GetCallerIdentity", "POST", "/", Body::empty());
        sts.aws.service = "sts".into();
        let denied = |call: &str, action: &str| Denied {
            call: call.into(),
            method: "DELETE".into(),
            path: "/b".into(),
            query: vec![],
            headers: vec![],
            body: Body::empty(),
            aws: AwsCall {
                service: "s3".into(),
                operation: "DeleteBucket".into(),
                actions: vec![action.into()],
                resources: vec![],
            },
            decision: Decision {
                effect: Effect::Deny,
                object: Some("AgentConnection/a/prod".into()),
                rule: Some("policy.deny[0]: iam:*".into()),
            },
            timings: Timings::default(),
            status: 403,
            error_code: "AccessDenied".into(),
            message: "no".into(),
            redacted: vec![],
        };
        let events = vec![
            event(1, EventBody::Denied(denied("c1", "iam:ListUsers"))),
            event(2, EventBody::Request(sts)),
            event(3, EventBody::Response(response("c2", 200, ""))),
            event(
                4,
                EventBody::Approval(Approval {
                    call: "c3".into(),
                    approval_request: "ar".into(),
                    rule: "deletes".into(),
                    outcome: ApprovalDecision::TimedOut,
                    approvers: vec![],
                    reason: None,
                    waited_ms: 1,
                    fingerprint: "f".into(),
                }),
            ),
            event(5, EventBody::Denied(denied("c3", "s3:DeleteBucket"))),
            event(
                6,
                EventBody::Request(request("c4", "s3:GetObject", "GET", "/b/k", Body::empty())),
            ),
        ];
        let steps = plan(&events, false);
        assert_eq!(
            skip_reason(&steps[0]),
            "denied by policy.deny[0]: iam:* (AgentConnection/a/prod); never forwarded"
        );
        assert!(skip_reason(&steps[1]).starts_with("STS call answered by the gateway"));
        assert_eq!(skip_reason(&steps[2]), "held for approval and timed out; never forwarded");
        assert!(skip_reason(&steps[3]).starts_with("no response was recorded"));
    }

    #[test]
    fn only_mutating_skips_calls_whose_actions_only_read() {
        let events = vec![
            event(
                1,
                EventBody::Request(request("c1", "s3:GetObject", "GET", "/b/k", Body::empty())),
            ),
            event(2, EventBody::Response(response("c1", 200, "x"))),
            event(
                3,
                EventBody::Request(request(
                    "c2",
                    "dynamodb:PutItem",
                    "POST",
                    "/",
                    Body::complete(b"{}"),
                )),
            ),
            event(4, EventBody::Response(response("c2", 200, "{}"))),
        ];
        let steps = plan(&events, true);
        assert_eq!(skip_reason(&steps[0]), "read-only (--only-mutating)");
        assert!(matches!(steps[1].action, Action::Replay(_)));
        assert!(is_read_only(&["s3:ListBucket".into(), "s3:GetObject".into()]));
        assert!(is_read_only(&["dynamodb:Query".into()]));
        assert!(!is_read_only(&["s3:Unknown".into()]));
        assert!(!is_read_only(&["s3:GetObject".into(), "s3:PutObject".into()]));
        assert!(!is_read_only(&[]));
    }

    #[test]
    fn a_virtual_host_style_s3_call_is_replayed_path_style() {
        let mut call = request("c1", "s3:GetObject", "GET", "/notes/a.txt", Body::empty());
        call.headers[0].1 = "data.gateway.team-a.svc:8080".into();
        call.aws.resources = vec!["arn:aws:s3:::data/notes/a.txt".into()];
        let events = vec![
            event(1, EventBody::Request(call)),
            event(2, EventBody::Response(response("c1", 200, "x"))),
        ];
        let steps = plan(&events, false);
        let Action::Replay(replay) = &steps[0].action else { panic!("{steps:?}") };
        assert_eq!(replay.path_and_query, "/data/notes/a.txt");
    }

    #[test]
    fn an_aws_chunked_upload_is_replayed_as_its_plain_payload() {
        let mut chunked = request("c1", "s3:PutObject", "PUT", "/b/k", Body::complete(b"payload"));
        chunked.headers.extend([
            ("x-amz-content-sha256".into(), "STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()),
            ("content-encoding".into(), "aws-chunked".into()),
            ("x-amz-decoded-content-length".into(), "7".into()),
            ("x-amz-trailer".into(), "x-amz-checksum-crc32".into()),
            ("x-amz-sdk-checksum-algorithm".into(), "CRC32".into()),
        ]);
        chunked.query =
            vec![("x-id".into(), "PutObject".into()), ("uploads".into(), String::new())];
        let events = vec![
            event(1, EventBody::Request(chunked)),
            event(2, EventBody::Response(response("c1", 200, ""))),
        ];
        let steps = plan(&events, false);
        let Action::Replay(replay) = &steps[0].action else { panic!("{steps:?}") };
        assert_eq!(replay.headers, vec![("content-type".to_owned(), "application/xml".to_owned())]);
        assert_eq!(replay.path_and_query, "/b/k?x-id=PutObject&uploads");
        assert_eq!(replay.body, b"payload");
    }
}
