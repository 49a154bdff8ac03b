//! What of a call is kept: the RecordingPolicy's capture limit and redaction, plus the redactions
//! that always apply (credentials) or apply by default (secret values), in one place.
//!
//! Everything here is pure: [`CapturePolicy::apply`] rewrites an event body before it is spooled.
//! Redaction replaces a value by the marker of its sha256 (docs/recording-format.md, 3.10), never
//! drops it, and lists where it did so in the event's `redacted` array.

use chaperone_crds::RecordingPolicySpec;
use chaperone_recording::redaction::CREDENTIAL_HEADERS;
use chaperone_recording::{
    Body, EventBody, redact_body, redact_credentials, redact_headers, redact_query,
};
use serde_json::Value;

use crate::classify::ActionPattern;

/// Query parameters of presigned URLs redacted besides the crate's signature and token: the
/// credential scope names the (gateway-minted) access key id.
pub const PRESIGNED_CREDENTIAL_QUERY: &[&str] = &["X-Amz-Credential"];

/// Response headers that carry credentials.
pub const CREDENTIAL_RESPONSE_HEADERS: &[&str] = &["set-cookie"];

/// Which body a default redaction applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Request,
    Response,
    /// The response, only when the request asked for decrypted values (`WithDecryption`).
    ResponseWithDecryption,
}

/// Redactions that apply whatever the RecordingPolicy says: the credential fields of calls that
/// return credentials, and secret values. `*` as a pointer segment stands for every array index.
/// Bodies that are not JSON (STS and IAM answer in XML) are redacted whole.
const DEFAULT_BODY_REDACTIONS: &[(&str, Side, &[&str])] = &[
    // Calls that hand out credentials.
    (
        "sts:AssumeRole",
        Side::Response,
        &["/Credentials/SecretAccessKey", "/Credentials/SessionToken"],
    ),
    (
        "sts:AssumeRoleWithSAML",
        Side::Response,
        &["/Credentials/SecretAccessKey", "/Credentials/SessionToken"],
    ),
    (
        "sts:AssumeRoleWithWebIdentity",
        Side::Response,
        &["/Credentials/SecretAccessKey", "/Credentials/SessionToken"],
    ),
    (
        "sts:AssumeRoot",
        Side::Response,
        &["/Credentials/SecretAccessKey", "/Credentials/SessionToken"],
    ),
    (
        "sts:GetSessionToken",
        Side::Response,
        &["/Credentials/SecretAccessKey", "/Credentials/SessionToken"],
    ),
    (
        "sts:GetFederationToken",
        Side::Response,
        &["/Credentials/SecretAccessKey", "/Credentials/SessionToken"],
    ),
    ("iam:CreateAccessKey", Side::Response, &["/AccessKey/SecretAccessKey"]),
    (
        "sso:GetRoleCredentials",
        Side::Response,
        &["/roleCredentials/secretAccessKey", "/roleCredentials/sessionToken"],
    ),
    (
        "cognito-identity:GetCredentialsForIdentity",
        Side::Response,
        &["/Credentials/SecretKey", "/Credentials/SessionToken"],
    ),
    ("ecr:GetAuthorizationToken", Side::Response, &["/authorizationData/*/authorizationToken"]),
    // Secret values.
    ("secretsmanager:GetSecretValue", Side::Response, &["/SecretString", "/SecretBinary"]),
    (
        "secretsmanager:BatchGetSecretValue",
        Side::Response,
        &["/SecretValues/*/SecretString", "/SecretValues/*/SecretBinary"],
    ),
    ("secretsmanager:CreateSecret", Side::Request, &["/SecretString", "/SecretBinary"]),
    ("secretsmanager:PutSecretValue", Side::Request, &["/SecretString", "/SecretBinary"]),
    ("secretsmanager:UpdateSecret", Side::Request, &["/SecretString", "/SecretBinary"]),
    ("kms:Decrypt", Side::Response, &["/Plaintext"]),
    ("kms:GenerateDataKey", Side::Response, &["/Plaintext"]),
    ("kms:GenerateDataKeyPair", Side::Response, &["/PrivateKeyPlaintext"]),
    ("kms:GenerateRandom", Side::Response, &["/Plaintext"]),
    ("kms:Encrypt", Side::Request, &["/Plaintext"]),
    ("ssm:GetParameter", Side::ResponseWithDecryption, &["/Parameter/Value"]),
    ("ssm:GetParameters", Side::ResponseWithDecryption, &["/Parameters/*/Value"]),
    ("ssm:GetParametersByPath", Side::ResponseWithDecryption, &["/Parameters/*/Value"]),
    ("ssm:PutParameter", Side::Request, &["/Value"]),
];

/// What the recorder remembers about a call between its request and its response, to redact the
/// response by the request's actions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The call's IAM actions.
    pub actions: Vec<String>,
    /// Whether the request asked for decrypted values (SSM `WithDecryption: true`).
    pub with_decryption: bool,
}

impl CallContext {
    /// The context of a request (or denied call) with these actions and (unredacted) body.
    pub fn of_request(actions: &[String], body: &Body) -> Self {
        // Only SSM requests say WithDecryption; other bodies (possibly large) are not parsed.
        let ssm =
            actions.iter().any(|a| a.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("ssm:")));
        let with_decryption = ssm
            && !body.truncated
            && serde_json::from_str::<Value>(&body.data)
                .ok()
                .and_then(|v| v.get("WithDecryption").and_then(Value::as_bool))
                .unwrap_or(false);
        Self { actions: actions.to_vec(), with_decryption }
    }
}

/// A RecordingPolicy's capture and redaction settings, compiled.
#[derive(Clone, Debug)]
pub struct CapturePolicy {
    max_body_bytes: usize,
    headers: Vec<String>,
    actions: Vec<(ActionPattern, Vec<String>)>,
}

impl CapturePolicy {
    /// Compiles a RecordingPolicy. Action patterns that do not parse (the CRD's validation
    /// prevents them) are skipped with a warning.
    pub fn from_spec(spec: &RecordingPolicySpec) -> Self {
        let actions = spec
            .redact
            .actions
            .iter()
            .filter_map(|a| match ActionPattern::parse(&a.action) {
                Ok(pattern) => Some((pattern, a.pointers.clone())),
                Err(error) => {
                    tracing::warn!(action = %a.action, %error, "redaction rule skipped");
                    None
                }
            })
            .collect();
        Self {
            max_body_bytes: usize::try_from(spec.capture.max_body_bytes.max(0)).unwrap_or(0),
            headers: spec.redact.headers.clone(),
            actions,
        }
    }

    /// Bytes of each body kept.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Applies capture limits and redaction to `event`. `call` is the context of the call the
    /// event belongs to (for a response: the one remembered from its request).
    pub fn apply(&self, event: &mut EventBody, call: &CallContext) {
        match event {
            EventBody::Request(r) => {
                self.truncate(&mut r.body);
                self.redact_request(
                    &mut r.headers,
                    &mut r.query,
                    &mut r.body,
                    &r.aws.actions,
                    &mut r.redacted,
                );
            }
            EventBody::Denied(d) => {
                self.truncate(&mut d.body);
                self.redact_request(
                    &mut d.headers,
                    &mut d.query,
                    &mut d.body,
                    &d.aws.actions,
                    &mut d.redacted,
                );
            }
            EventBody::Response(r) => {
                self.truncate(&mut r.body);
                redact_headers(&mut r.headers, CREDENTIAL_HEADERS, &mut r.redacted);
                redact_headers(&mut r.headers, CREDENTIAL_RESPONSE_HEADERS, &mut r.redacted);
                redact_headers(&mut r.headers, &self.headers, &mut r.redacted);
                let pointers = self.pointers(&call.actions, |side| match side {
                    Side::Response => true,
                    Side::ResponseWithDecryption => call.with_decryption,
                    Side::Request => false,
                });
                redact_json_body(&mut r.body, &pointers, &mut r.redacted);
            }
            EventBody::SessionStart(_) | EventBody::Approval(_) | EventBody::SessionEnd(_) => {}
        }
    }

    fn redact_request(
        &self,
        headers: &mut [(String, String)],
        query: &mut [(String, String)],
        body: &mut Body,
        actions: &[String],
        redacted: &mut Vec<String>,
    ) {
        redact_credentials(headers, query, redacted);
        redact_query(query, PRESIGNED_CREDENTIAL_QUERY, redacted);
        redact_headers(headers, &self.headers, redacted);
        let pointers = self.pointers(actions, |side| side == Side::Request);
        redact_json_body(body, &pointers, redacted);
    }

    /// The pointers to redact for `actions`: the defaults for the sides `side_applies` accepts,
    /// and the policy's (which apply to request and response bodies alike).
    fn pointers(&self, actions: &[String], side_applies: impl Fn(Side) -> bool) -> Vec<String> {
        let mut pointers: Vec<String> = Vec::new();
        let mut add = |p: &str| {
            if !pointers.iter().any(|q| q == p) {
                pointers.push(p.to_owned());
            }
        };
        for action in actions {
            for (name, side, defaults) in DEFAULT_BODY_REDACTIONS {
                if side_applies(*side) && name.eq_ignore_ascii_case(action) {
                    defaults.iter().for_each(|p| add(p));
                }
            }
            for (pattern, policy_pointers) in &self.actions {
                if pattern.matches(action) {
                    policy_pointers.iter().for_each(|p| add(p));
                }
            }
        }
        pointers
    }

    /// Cuts a body's captured bytes to the policy's limit; size and sha256 keep describing the
    /// whole body.
    fn truncate(&self, body: &mut Body) {
        let max = self.max_body_bytes;
        match body.encoding {
            chaperone_recording::BodyEncoding::Utf8 => {
                if body.data.len() > max {
                    let kept = Body::captured(&body.data.as_bytes()[..max], body.size, body.sha256);
                    *body = kept;
                }
            }
            chaperone_recording::BodyEncoding::Base64 => {
                // Decode only the prefix that is kept: 4 characters hold 3 bytes.
                let chars = max.div_ceil(3).saturating_mul(4);
                if body.data.len() <= chars {
                    return;
                }
                // Data that is not base64 (not even ASCII) keeps nothing rather than garbage.
                let bytes = body
                    .data
                    .get(..chars)
                    .and_then(|text| {
                        Body {
                            encoding: chaperone_recording::BodyEncoding::Base64,
                            data: text.to_owned(),
                            truncated: true,
                            size: body.size,
                            sha256: body.sha256,
                        }
                        .captured_bytes()
                        .ok()
                    })
                    .unwrap_or_default();
                let kept = &bytes[..bytes.len().min(max)];
                *body = Body::captured(kept, body.size, body.sha256);
            }
        }
    }
}

/// Redacts `pointers` in a body; `*` segments are expanded over the arrays the body holds. A body
/// that is not JSON is redacted whole (by the recording crate's rule).
fn redact_json_body(body: &mut Body, pointers: &[String], redacted: &mut Vec<String>) {
    if pointers.is_empty() {
        return;
    }
    let parsed = if body.truncated || body.encoding != chaperone_recording::BodyEncoding::Utf8 {
        None
    } else {
        serde_json::from_str::<Value>(&body.data).ok()
    };
    let concrete: Vec<String> = match &parsed {
        Some(value) => pointers.iter().flat_map(|p| expand_pointer(value, p)).collect(),
        None => pointers.to_vec(),
    };
    if let Err(error) = redact_body(body, &concrete, redacted) {
        // A pointer that is not RFC 6901 (the CRD's validation prevents it): hide the whole body.
        tracing::warn!(%error, "redaction pointer refused; redacting the whole body");
        let _ = redact_body(body, &[""], redacted);
    }
}

/// Expands `*` segments of `pointer` to the indices (or member names) present in `value`.
fn expand_pointer(value: &Value, pointer: &str) -> Vec<String> {
    if !pointer.split('/').any(|s| s == "*") {
        return vec![pointer.to_owned()];
    }
    let mut prefixes: Vec<(String, &Value)> = vec![(String::new(), value)];
    for segment in pointer.split('/').skip(1) {
        let mut next = Vec::new();
        for (prefix, node) in prefixes {
            if segment == "*" {
                match node {
                    Value::Array(items) => next.extend(
                        items.iter().enumerate().map(|(i, v)| (format!("{prefix}/{i}"), v)),
                    ),
                    Value::Object(members) => next.extend(members.iter().map(|(k, v)| {
                        (format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1")), v)
                    })),
                    _ => {}
                }
            } else {
                let key = segment.replace("~1", "/").replace("~0", "~");
                let child = match node {
                    Value::Object(members) => members.get(&key),
                    Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                };
                if let Some(child) = child {
                    next.push((format!("{prefix}/{segment}"), child));
                }
            }
        }
        prefixes = next;
    }
    prefixes.into_iter().map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_crds::{ActionRedaction, Capture, Redaction, Retention, S3Destination};
    use chaperone_recording::{
        AwsCall, BodyEncoding, Decision, Effect, Hash256, Request, Response, Timings,
        redaction_marker,
    };

    fn spec(max_body_bytes: i64, redact: Redaction) -> RecordingPolicySpec {
        RecordingPolicySpec {
            s3: S3Destination {
                bucket: "audit".into(),
                region: "us-east-1".into(),
                ..S3Destination::default()
            },
            retention: Retention { days: 1, transitions: vec![] },
            object_lock: None,
            capture: Capture { max_body_bytes },
            redact,
            on_failure: Default::default(),
            durability: Default::default(),
            access: None,
        }
    }

    fn request(action: &str, body: &[u8]) -> Request {
        Request {
            call: "c1".into(),
            method: "POST".into(),
            path: "/".into(),
            query: vec![
                ("X-Amz-Credential".into(), "ASIAXXX/20261125/us-east-1/s3/aws4_request".into()),
                ("X-Amz-Signature".into(), "abcd".into()),
            ],
            headers: vec![
                ("authorization".into(), "AWS4-HMAC-SHA256 Credential=ASIA...".into()),
                ("x-amz-security-token".into(), "token".into()),
                ("x-team-secret".into(), "s".into()),
                ("host".into(), "gw".into()),
            ],
            body: Body::complete(body),
            aws: AwsCall {
                service: action.split(':').next().unwrap_or_default().into(),
                operation: action.split(':').nth(1).unwrap_or_default().into(),
                actions: vec![action.into()],
                resources: vec![],
            },
            decision: Decision { effect: Effect::Allow, object: None, rule: None },
            timings: Timings::default(),
            redacted: vec![],
        }
    }

    fn response(body: &[u8]) -> Response {
        Response {
            call: "c1".into(),
            status: Some(200),
            headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
            body: Body::complete(body),
            timings: Timings::default(),
            upstream_error: None,
            redacted: vec![],
            request_body: None,
        }
    }

    fn apply_response(policy: &CapturePolicy, call: &CallContext, body: &[u8]) -> Response {
        let mut event = EventBody::Response(response(body));
        policy.apply(&mut event, call);
        match event {
            EventBody::Response(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn request_credentials_and_policy_headers_are_replaced_by_their_hash() {
        let policy = CapturePolicy::from_spec(&spec(
            1024,
            Redaction { headers: vec!["X-Team-Secret".into()], actions: vec![] },
        ));
        let mut event = EventBody::Request(request("s3:GetObject", b""));
        policy.apply(&mut event, &CallContext::default());
        let EventBody::Request(r) = event else { unreachable!() };
        let text = serde_json::to_string(&r).unwrap();
        for secret in ["ASIA...", "\"token\"", "abcd", "ASIAXXX"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains(&Hash256::of(b"token").to_hex()));
        assert_eq!(r.headers[3], ("host".to_owned(), "gw".to_owned()));
        assert_eq!(
            r.redacted,
            [
                "header:authorization",
                "header:x-amz-security-token",
                "query:X-Amz-Signature",
                "query:X-Amz-Credential",
                "header:x-team-secret"
            ]
        );
    }

    #[test]
    fn secret_string_of_get_secret_value_is_replaced_by_its_hash_by_default() {
        let policy = CapturePolicy::from_spec(&spec(1024, Redaction::default()));
        let call = CallContext {
            actions: vec!["secretsmanager:GetSecretValue".into()],
            with_decryption: false,
        };
        let r = apply_response(&policy, &call, br#"{"ARN":"arn:x","SecretString":"hunter2"}"#);
        let value: Value = serde_json::from_str(&r.body.data).unwrap();
        assert_eq!(value["SecretString"], redaction_marker(Hash256::of(b"hunter2")));
        assert_eq!(value["ARN"], "arn:x");
        assert_eq!(r.redacted, ["body:/SecretString"]);
        assert_eq!(r.body.sha256, Hash256::of(br#"{"ARN":"arn:x","SecretString":"hunter2"}"#));
    }

    #[test]
    fn ssm_parameters_are_redacted_only_when_decrypted() {
        let policy = CapturePolicy::from_spec(&spec(1024, Redaction::default()));
        let body = br#"{"Parameters":[{"Name":"a","Value":"v1"},{"Name":"b","Value":"v2"}]}"#;
        let request_body = Body::complete(br#"{"Names":["a","b"],"WithDecryption":true}"#);
        let call = CallContext::of_request(&["ssm:GetParameters".into()], &request_body);
        assert!(call.with_decryption);
        let r = apply_response(&policy, &call, body);
        assert!(!r.body.data.contains("v1") && !r.body.data.contains("v2"), "{}", r.body.data);
        assert_eq!(r.redacted, ["body:/Parameters/0/Value", "body:/Parameters/1/Value"]);

        let plain = CallContext { with_decryption: false, ..call };
        assert!(apply_response(&policy, &plain, body).redacted.is_empty());
    }

    #[test]
    fn sts_credentials_in_an_xml_body_hide_the_whole_body() {
        let policy = CapturePolicy::from_spec(&spec(1024, Redaction::default()));
        let call = CallContext { actions: vec!["sts:AssumeRole".into()], with_decryption: false };
        let xml = b"<AssumeRoleResponse><Credentials><SecretAccessKey>wJalr</SecretAccessKey></Credentials></AssumeRoleResponse>";
        let r = apply_response(&policy, &call, xml);
        assert!(!r.body.data.contains("wJalr"));
        assert_eq!(r.redacted, ["body"]);
        assert_eq!(r.body.size, xml.len() as u64);
    }

    #[test]
    fn policy_pointers_apply_to_matching_actions_on_both_sides() {
        let policy = CapturePolicy::from_spec(&spec(
            1024,
            Redaction {
                headers: vec![],
                actions: vec![ActionRedaction {
                    action: "dynamodb:Put*".into(),
                    pointers: vec!["/Item/ssn".into()],
                }],
            },
        ));
        let mut event = EventBody::Request(request(
            "dynamodb:PutItem",
            br#"{"TableName":"t","Item":{"ssn":{"S":"123"}}}"#,
        ));
        policy.apply(&mut event, &CallContext::default());
        let EventBody::Request(r) = event else { unreachable!() };
        assert!(!r.body.data.contains("123"));
        assert!(r.redacted.contains(&"body:/Item/ssn".to_owned()));
    }

    #[test]
    fn bodies_beyond_the_capture_limit_are_cut_with_full_size_and_hash_kept() {
        let policy = CapturePolicy::from_spec(&spec(4, Redaction::default()));
        let full = b"hello world";
        let mut event = EventBody::Request(request("s3:PutObject", full));
        policy.apply(&mut event, &CallContext::default());
        let EventBody::Request(r) = event else { unreachable!() };
        assert_eq!(r.body.data, "hell");
        assert!(r.body.truncated);
        assert_eq!(r.body.size, 11);
        assert_eq!(r.body.sha256, Hash256::of(full));

        let binary = [0xffu8; 10];
        let mut event = EventBody::Request(request("s3:PutObject", &binary));
        policy.apply(&mut event, &CallContext::default());
        let EventBody::Request(r) = event else { unreachable!() };
        assert_eq!(r.body.encoding, BodyEncoding::Base64);
        assert_eq!(r.body.captured_bytes().unwrap(), [0xff; 4]);
    }
}
