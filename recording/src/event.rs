//! The event schema: one JSON object per line of a segment.
//!
//! Every event carries the envelope (`v`, `seq`, `ts`, `session`, `replica`, `prev`) and a `type`
//! that selects its payload. Field names are snake_case so Athena's JSON SerDe maps them directly.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::hash::Hash256;
use crate::timestamp::Timestamp;

/// The format version this crate writes and reads: the `v` of every event, manifest and digest,
/// and the `v1/` of the object layout.
pub const FORMAT_VERSION: u32 = 1;

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Format version, [`FORMAT_VERSION`].
    pub v: u32,
    /// Position in the replica's stream, 1 for the first event, contiguous.
    pub seq: u64,
    /// When the gateway recorded the event.
    pub ts: Timestamp,
    /// Session id.
    pub session: String,
    /// The gateway replica that wrote this stream.
    pub replica: String,
    /// SHA-256 of the previous event's line, or the stream's genesis value for `seq` 1.
    pub prev: Hash256,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The `type` of an event and its payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    #[serde(rename = "session.start")]
    SessionStart(SessionStart),
    #[serde(rename = "request")]
    Request(Request),
    #[serde(rename = "response")]
    Response(Response),
    #[serde(rename = "denied")]
    Denied(Denied),
    #[serde(rename = "approval")]
    Approval(Approval),
    #[serde(rename = "session.end")]
    SessionEnd(SessionEnd),
}

impl EventBody {
    /// The call id an `approval`, `request`, `response` or `denied` event belongs to; `None` for
    /// `session.start` and `session.end`.
    pub fn call(&self) -> Option<&str> {
        match self {
            Self::Request(r) => Some(&r.call),
            Self::Response(r) => Some(&r.call),
            Self::Denied(d) => Some(&d.call),
            Self::Approval(a) => Some(&a.call),
            Self::SessionStart(_) | Self::SessionEnd(_) => None,
        }
    }

    /// The `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::SessionStart(_) => "session.start",
            Self::Request(_) => "request",
            Self::Response(_) => "response",
            Self::Denied(_) => "denied",
            Self::Approval(_) => "approval",
            Self::SessionEnd(_) => "session.end",
        }
    }
}

/// First event of every stream: who the agent is and what its credentials allow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionStart {
    /// The AgentConnection the agent came in through.
    pub connection: String,
    pub agent: AgentIdentity,
    /// When the session's credentials expire; the session ends then at the latest.
    pub credentials_expire: Timestamp,
}

/// The agent as its service-account token proved it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIdentity {
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// The RoleSessionName the SDK sent with AssumeRoleWithWebIdentity.
    pub role_session_name: String,
}

/// Headers of a recorded request that belong to its hop to the gateway, not to the AWS call: the
/// agent's authentication (the gateway, or a replay, signs anew), the gateway's host, and
/// hop-by-hop transport headers. The gateway never forwards them; a replay never re-sends them.
pub const HOP_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-security-token",
    "x-amz-date",
    "x-amz-content-sha256",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "transfer-encoding",
];

/// Headers that describe an aws-chunked body: they go once the body is decoded (the gateway
/// forwards it decoded; a replay sends the recorded bytes plain).
pub const AWS_CHUNKED_HEADERS: &[&str] = &["x-amz-decoded-content-length", "x-amz-trailer"];

/// A call the gateway is about to forward (recorded before forwarding).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Links this request to its `response` (and any `approval`).
    pub call: String,
    pub method: String,
    /// Path as on the wire (not percent-decoded).
    pub path: String,
    /// Query parameters in wire order, `[name, value]`, neither percent-decoded.
    pub query: Vec<(String, String)>,
    /// Headers in wire order, `[name, value]`, names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub aws: AwsCall,
    pub decision: Decision,
    pub timings: Timings,
    /// Where values were redacted, see [`crate::redaction`].
    #[serde(default)]
    pub redacted: Vec<String>,
}

/// What came back for a forwarded call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub call: String,
    /// HTTP status returned to the agent; absent when the upstream could not be reached.
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub timings: Timings,
    /// Why the upstream exchange failed (connect error, timeout), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_error: Option<String>,
    #[serde(default)]
    pub redacted: Vec<String>,
    /// The request body the gateway streamed upstream, measured while it passed: present only
    /// for streamed request bodies (the `request` event, written before the body passed, holds
    /// only what the request declared). Absent in recordings made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<StreamedBody>,
}

/// A request body as the gateway streamed it upstream: the length and sha256 of the payload it
/// received from the agent (aws-chunked framing removed), computed while it streamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamedBody {
    /// Payload bytes received from the agent.
    pub size: u64,
    /// SHA-256 of the payload bytes received from the agent.
    pub sha256: Hash256,
    /// True when the body went upstream to its end; false when it broke off (the agent or the
    /// upstream stopped, or the gateway cut it off because it did not match its declared
    /// sha256), in which case `size` and `sha256` describe what the agent sent up to then.
    pub complete: bool,
}

/// A call the gateway refused without forwarding: the request and the answer it gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Denied {
    pub call: String,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub aws: AwsCall,
    pub decision: Decision,
    pub timings: Timings,
    /// HTTP status of the AWS-shaped error returned.
    pub status: u16,
    /// AWS error code returned, e.g. `AccessDenied`.
    pub error_code: String,
    /// Error message returned; names the rule and object that denied.
    pub message: String,
    #[serde(default)]
    pub redacted: Vec<String>,
}

/// The outcome of holding a call for human approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub call: String,
    /// Name of the ApprovalRequest object.
    pub approval_request: String,
    /// Name of the ApprovalRule that matched.
    pub rule: String,
    pub outcome: ApprovalDecision,
    /// Who decided, as the API server authenticated them. Empty for `timed_out`.
    pub approvers: Vec<Approver>,
    /// The reviewer's reason, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the call was held, in milliseconds.
    pub waited_ms: u64,
    /// The request fingerprint the approval is bound to.
    pub fingerprint: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Approved while the call was held, or an earlier approval was consumed.
    Approved,
    Denied,
    /// Nobody decided within the hold; the agent was told to retry after approval.
    TimedOut,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub username: String,
    pub groups: Vec<String>,
}

/// Last event of a stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionEnd {
    pub reason: EndReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The session's credentials expired.
    Expired,
    /// The replica died; the stream was closed when its spool was recovered.
    Recovered,
    /// The replica shut down gracefully.
    Shutdown,
}

/// How a call was classified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsCall {
    /// Signing name, e.g. `s3`.
    pub service: String,
    /// Operation name, e.g. `PutObject`, or `Unknown`.
    pub operation: String,
    /// IAM actions, e.g. `s3:PutObject`.
    pub actions: Vec<String>,
    /// Resource ARNs.
    pub resources: Vec<String>,
}

/// The policy decision and what made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub effect: Effect,
    /// The object that decided, `Kind/namespace/name`, e.g. `AgentConnection/team-a/prod-aws`.
    pub object: Option<String>,
    /// The rule inside it, e.g. `policy.deny[0]: iam:*` or `builtin:credential-denylist`.
    pub rule: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// Durations in microseconds; absent when not measured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// From the first byte received to the decision (authenticate, classify, decide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decide_us: Option<u64>,
    /// Time held for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_us: Option<u64>,
    /// From forwarding to the upstream's first response byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_first_byte_us: Option<u64>,
    /// From forwarding to the upstream's last response byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_total_us: Option<u64>,
    /// From the first byte received to the last byte sent to the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_us: Option<u64>,
}

/// A captured HTTP body: up to the capture limit, with the full length and hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub encoding: BodyEncoding,
    /// The captured bytes: UTF-8 text, or standard base64 (with padding).
    pub data: String,
    /// True when `data` holds fewer bytes than `size`.
    pub truncated: bool,
    /// Full length of the body in bytes.
    pub size: u64,
    /// SHA-256 of the full body, as received or sent (before any redaction).
    pub sha256: Hash256,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    Utf8,
    Base64,
}

/// `data` is not valid for its `encoding`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("body data is not valid standard base64")]
pub struct BodyDecodeError;

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::complete(b"")
    }

    /// A body captured whole.
    pub fn complete(bytes: &[u8]) -> Self {
        Self::captured(bytes, bytes.len() as u64, Hash256::of(bytes))
    }

    /// A body of which `captured` are the first bytes, `size` the full length and `sha256` the
    /// full hash. UTF-8 text is kept as text; anything else (including text cut inside a
    /// character) is base64.
    pub fn captured(captured: &[u8], size: u64, sha256: Hash256) -> Self {
        let (encoding, data) = match std::str::from_utf8(captured) {
            Ok(text) => (BodyEncoding::Utf8, text.to_owned()),
            Err(_) => (BodyEncoding::Base64, BASE64.encode(captured)),
        };
        Self { encoding, data, truncated: (captured.len() as u64) < size, size, sha256 }
    }

    /// The captured bytes.
    pub fn captured_bytes(&self) -> Result<Vec<u8>, BodyDecodeError> {
        match self.encoding {
            BodyEncoding::Utf8 => Ok(self.data.as_bytes().to_vec()),
            BodyEncoding::Base64 => BASE64.decode(&self.data).map_err(|_| BodyDecodeError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_serializes_with_envelope_then_type_then_payload() {
        let event = Event {
            v: 1,
            seq: 2,
            ts: Timestamp::parse("2026-11-25T17:00:00Z").unwrap(),
            session: "s".into(),
            replica: "r".into(),
            prev: Hash256::of(b""),
            body: EventBody::SessionEnd(SessionEnd { reason: EndReason::Expired }),
        };
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"v":1,"seq":2,"ts":"2026-11-25T17:00:00.000000000Z","session":"s","replica":"r","prev":"{}","type":"session.end","reason":"expired"}}"#,
                Hash256::of(b"")
            )
        );
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
    }

    #[test]
    fn request_payload_has_pairs_body_and_decision() {
        let value =
            serde_json::to_value(EventBody::Request(crate::fixtures::request("c-1"))).unwrap();
        assert_eq!(value["type"], "request");
        assert_eq!(value["headers"], json!([["host", "10.0.0.1:8080"]]));
        assert_eq!(value["body"]["encoding"], "utf8");
        assert_eq!(value["body"]["size"], 5);
        assert_eq!(value["decision"]["effect"], "allow");
        assert_eq!(value["timings"], json!({"decide_us": 42}));
    }

    #[test]
    fn a_response_without_request_body_reads_as_before_and_one_with_it_round_trips() {
        // A response line as written before `request_body` existed: no member, no `null`.
        let old =
            serde_json::to_value(EventBody::Response(crate::fixtures::response("c-1"))).unwrap();
        assert!(old.get("request_body").is_none(), "{old}");
        let EventBody::Response(read) = serde_json::from_value::<EventBody>(old).unwrap() else {
            panic!("not a response");
        };
        assert_eq!(read.request_body, None);

        let mut response = crate::fixtures::response("c-2");
        response.request_body =
            Some(StreamedBody { size: 3, sha256: Hash256::of(b"abc"), complete: true });
        let value = serde_json::to_value(EventBody::Response(response.clone())).unwrap();
        assert_eq!(
            value["request_body"],
            json!({"size": 3, "sha256": Hash256::of(b"abc").to_string(), "complete": true})
        );
        assert_eq!(
            serde_json::from_value::<EventBody>(value).unwrap(),
            EventBody::Response(response)
        );
    }

    #[test]
    fn binary_and_truncated_bodies_are_base64_with_full_size_and_hash() {
        let full = [0xffu8, 0, 1, 2, 3];
        let body = Body::captured(&full[..3], 5, Hash256::of(full));
        assert_eq!(body.encoding, BodyEncoding::Base64);
        assert!(body.truncated);
        assert_eq!(body.captured_bytes().unwrap(), &full[..3]);
        assert_eq!(body.sha256, Hash256::of(full));
    }

    #[test]
    fn approval_event_names_the_request_outcome_and_approvers() {
        let body = EventBody::Approval(Approval {
            call: "c-9".into(),
            approval_request: "delete-bucket-7f3a".into(),
            rule: "prod-deletes".into(),
            outcome: ApprovalDecision::Approved,
            approvers: vec![Approver { username: "alice".into(), groups: vec!["sre".into()] }],
            reason: None,
            waited_ms: 12_500,
            fingerprint: "ab12".into(),
        });
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(value["type"], "approval");
        assert_eq!(value["outcome"], "approved");
        assert_eq!(value["approvers"], json!([{"username": "alice", "groups": ["sre"]}]));
        assert_eq!(serde_json::from_value::<EventBody>(value).unwrap(), body);
    }
}
