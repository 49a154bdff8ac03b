//! The request fingerprint an approval is bound to: only an identical call is admitted by it.
//!
//! `fingerprint = sha256_hex(canonical(connection, namespace, service account, actions,
//! resources, parameters digest))`, where each field is written as `<byte length>:<bytes>\n`
//! after a version tag, lists are preceded by their length, and actions and resources are
//! sorted. The session id is deliberately left out: a retry from the agent's next session (new
//! credentials, same pod or service account) must match.
//!
//! The parameters digest is `sha256(canonical(method, raw path, query, headers, body))`: the
//! query as `(name, value)` pairs sorted, as they appear on the wire, without the signature,
//! credential, date and token parameters of presigned URLs and without the SDK's `x-id` hint; the
//! semantic headers ([`semantic_headers`]: every `x-amz-*` header but the signing ones, and the
//! standard headers that change what a call does or stores) as `(name, value)` pairs sorted; the
//! body by the sha256 of its payload, or for streamed bodies by the hash the request declared
//! (checked while the body streams). A streamed body without a declared hash binds nothing: a
//! call an approval rule holds is refused instead ([`BodyDigest::Unbound`]).

use sha2::{Digest, Sha256};

/// Query parameters that change on every signing, or only name the (gateway-minted) credentials.
const VOLATILE_QUERY: &[&str] = &[
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
    "x-id",
];

/// Whether a query parameter is left out of fingerprints and previews.
pub fn is_volatile_query(name: &str) -> bool {
    VOLATILE_QUERY.iter().any(|v| name.eq_ignore_ascii_case(v))
}

/// `x-amz-*` headers that only sign the request or frame its body (the body itself is bound by
/// its hash): they differ between two sendings of the same call.
const SIGNING_HEADERS: &[&str] = &[
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    "x-amz-user-agent",
];

/// Standard headers that change what a call does, stores or returns.
const SEMANTIC_STANDARD_HEADERS: &[&str] = &[
    "content-type",
    "content-md5",
    "content-encoding",
    "content-language",
    "content-disposition",
    "cache-control",
    "expires",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// Whether a header changes the meaning of a call, so an approval binds its value: every
/// `x-amz-*` header but the signing and framing ones, and the standard headers that change what
/// a call does or stores.
pub fn is_semantic_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    (name.starts_with("x-amz-") && !SIGNING_HEADERS.contains(&name.as_str()))
        || SEMANTIC_STANDARD_HEADERS.contains(&name.as_str())
}

/// The semantic headers of a call (see [`is_semantic_header`]) as an approval binds them: names
/// lowercase, values trimmed, `aws-chunked` (framing) dropped from `content-encoding`, sorted.
pub fn semantic_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut semantic: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(name, _)| is_semantic_header(name))
        .filter_map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let value = if name == "content-encoding" {
                let codings: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
                    .collect();
                if codings.is_empty() {
                    return None;
                }
                codings.join(",")
            } else {
                value.trim().to_owned()
            };
            Some((name, value))
        })
        .collect();
    semantic.sort_unstable();
    semantic
}

/// What the gateway knows of a request body when it decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyDigest {
    /// The payload was read whole; its sha256.
    Sha256([u8; 32]),
    /// It streams; the sha256 it declared (`x-amz-content-sha256`), which the gateway checks
    /// while it streams (a body that does not match never reaches the upstream whole).
    DeclaredSha256([u8; 32]),
    /// It streams without a declared hash (unsigned, or signed chunk by chunk with the agent's
    /// own key): nothing the gateway knows before forwarding binds its bytes, so an approval
    /// cannot be bound to it.
    Unbound {
        /// The declared payload size, if any.
        size: Option<u64>,
        /// How the agent sent it, e.g. `UNSIGNED-PAYLOAD`.
        payload_mode: &'static str,
    },
}

impl BodyDigest {
    fn canonical(&self) -> String {
        match self {
            BodyDigest::Sha256(hash) | BodyDigest::DeclaredSha256(hash) => {
                format!("sha256:{}", chaperone_recording::lower_hex(hash))
            }
            BodyDigest::Unbound { size: Some(size), payload_mode } => {
                format!("unbound:{payload_mode}:{size}")
            }
            BodyDigest::Unbound { size: None, payload_mode } => {
                format!("unbound:{payload_mode}:unknown")
            }
        }
    }
}

/// The parameters of a call, as they arrived.
#[derive(Clone, Copy, Debug)]
pub struct CallParameters<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as on the wire (not percent-decoded).
    pub raw_path: &'a str,
    /// The query string as on the wire, without `?`.
    pub raw_query: &'a str,
    /// The semantic headers, as [`semantic_headers`] gives them.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: BodyDigest,
}

impl CallParameters<'_> {
    /// `sha256` over the canonical parameters.
    pub fn digest(&self) -> [u8; 32] {
        let mut query: Vec<(&str, &str)> = self
            .raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .filter(|(name, _)| !is_volatile_query(name))
            .collect();
        query.sort_unstable();
        let mut encoder = CanonicalEncoder::new("chaperone.approval.parameters.v2");
        encoder.field(self.method);
        encoder.field(self.raw_path);
        encoder.count(query.len());
        for (name, value) in query {
            encoder.field(name);
            encoder.field(value);
        }
        let mut headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        headers.sort_unstable();
        encoder.count(headers.len());
        for (name, value) in headers {
            encoder.field(name);
            encoder.field(value);
        }
        encoder.field(&self.body.canonical());
        encoder.finish()
    }
}

/// Who made a call and what it does: everything an approval is bound to.
#[derive(Clone, Copy, Debug)]
pub struct CallIdentity<'a> {
    /// The AgentConnection.
    pub connection: &'a str,
    /// The agent's namespace.
    pub namespace: &'a str,
    /// The agent's service account.
    pub service_account: &'a str,
    /// IAM actions.
    pub actions: &'a [String],
    /// Resource ARNs.
    pub resources: &'a [String],
    /// The call's parameters.
    pub parameters: CallParameters<'a>,
}

/// A request fingerprint: 64 lowercase hex characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallFingerprint(String);

impl CallFingerprint {
    /// The fingerprint of `call`.
    pub fn of(call: &CallIdentity<'_>) -> Self {
        let mut actions: Vec<&str> = call.actions.iter().map(String::as_str).collect();
        actions.sort_unstable();
        actions.dedup();
        let mut resources: Vec<&str> = call.resources.iter().map(String::as_str).collect();
        resources.sort_unstable();
        resources.dedup();
        let mut encoder = CanonicalEncoder::new("chaperone.approval.fingerprint.v1");
        encoder.field(call.connection);
        encoder.field(call.namespace);
        encoder.field(call.service_account);
        encoder.count(actions.len());
        for action in actions {
            encoder.field(action);
        }
        encoder.count(resources.len());
        for resource in resources {
            encoder.field(resource);
        }
        encoder.field(&chaperone_recording::lower_hex(call.parameters.digest()));
        CallFingerprint(chaperone_recording::lower_hex(encoder.finish()))
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value of the `chaperone.dev/fingerprint` label: label values hold at most 63
    /// characters, so the label narrows the search and `spec.fingerprint` decides.
    pub fn label_value(&self) -> &str {
        self.0.get(..63).unwrap_or(&self.0)
    }

    /// The first ten hex characters, for object names.
    pub fn short(&self) -> &str {
        self.0.get(..10).unwrap_or(&self.0)
    }
}

impl std::fmt::Display for CallFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Length-prefixed fields, so no two different field lists encode alike.
struct CanonicalEncoder(Sha256);

impl CanonicalEncoder {
    fn new(tag: &str) -> Self {
        let mut encoder = CanonicalEncoder(Sha256::new());
        encoder.field(tag);
        encoder
    }

    fn field(&mut self, value: &str) {
        self.0.update(value.len().to_string().as_bytes());
        self.0.update(b":");
        self.0.update(value.as_bytes());
        self.0.update(b"\n");
    }

    fn count(&mut self, n: usize) {
        self.field(&format!("#{n}"));
    }

    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delete_bucket<'a>(
        actions: &'a [String],
        resources: &'a [String],
        path: &'a str,
        query: &'a str,
    ) -> CallIdentity<'a> {
        CallIdentity {
            connection: "prod-aws",
            namespace: "team-a",
            service_account: "pr-bot",
            actions,
            resources,
            parameters: CallParameters {
                method: "DELETE",
                raw_path: path,
                raw_query: query,
                headers: &[],
                body: BodyDigest::Sha256([0; 32]),
            },
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn the_same_call_from_a_new_session_has_the_same_fingerprint() {
        // The session id is not an input at all; what differs between two sessions on the wire is
        // the presigned credential, date, token and signature, and the SDK's x-id hint.
        let actions = strings(&["s3:DeleteBucket"]);
        let resources = strings(&["arn:aws:s3:::prod-logs"]);
        let first = delete_bucket(
            &actions,
            &resources,
            "/prod-logs",
            "x-id=DeleteBucket&X-Amz-Credential=ASIAONE%2F20261125&X-Amz-Date=20261125T100000Z&X-Amz-Security-Token=one&X-Amz-Signature=aa",
        );
        let retry = delete_bucket(
            &actions,
            &resources,
            "/prod-logs",
            "X-Amz-Signature=bb&X-Amz-Security-Token=two&X-Amz-Date=20261125T101500Z&X-Amz-Credential=ASIATWO%2F20261125",
        );
        assert_eq!(CallFingerprint::of(&first), CallFingerprint::of(&retry));
    }

    #[test]
    fn query_order_does_not_matter_but_values_do() {
        let actions = strings(&["s3:DeleteObjects"]);
        let resources = strings(&["arn:aws:s3:::b"]);
        let a = CallFingerprint::of(&delete_bucket(&actions, &resources, "/b", "delete=&a=1"));
        let b = CallFingerprint::of(&delete_bucket(&actions, &resources, "/b", "a=1&delete="));
        let c = CallFingerprint::of(&delete_bucket(&actions, &resources, "/b", "a=2&delete="));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn changed_parameters_change_the_fingerprint() {
        let actions = strings(&["s3:DeleteBucket"]);
        let resources = strings(&["arn:aws:s3:::prod-logs"]);
        let other_resources = strings(&["arn:aws:s3:::prod-other"]);
        let base = delete_bucket(&actions, &resources, "/prod-logs", "");
        let fingerprint = CallFingerprint::of(&base);

        let other_bucket = delete_bucket(&actions, &other_resources, "/prod-other", "");
        assert_ne!(fingerprint, CallFingerprint::of(&other_bucket));
        let other_path = delete_bucket(&actions, &resources, "/prod-other", "");
        assert_ne!(fingerprint, CallFingerprint::of(&other_path));

        let mut other_body = base;
        other_body.parameters.body = BodyDigest::Sha256([1; 32]);
        assert_ne!(fingerprint, CallFingerprint::of(&other_body));

        let mut other_method = base;
        other_method.parameters.method = "GET";
        assert_ne!(fingerprint, CallFingerprint::of(&other_method));

        let mut other_agent = base;
        other_agent.service_account = "other-bot";
        assert_ne!(fingerprint, CallFingerprint::of(&other_agent));

        let mut other_connection = base;
        other_connection.connection = "staging-aws";
        assert_ne!(fingerprint, CallFingerprint::of(&other_connection));

        let mut other_body = base;
        other_body.parameters.body = BodyDigest::Sha256([1; 32]);
        assert_ne!(fingerprint, CallFingerprint::of(&other_body));
        let mut declared = base;
        declared.parameters.body = BodyDigest::DeclaredSha256([1; 32]);
        assert_eq!(CallFingerprint::of(&other_body), CallFingerprint::of(&declared));
    }

    #[test]
    fn every_semantic_header_is_bound_and_signing_headers_are_not() {
        let actions = strings(&["s3:PutObject"]);
        let base = delete_bucket(&actions, &[], "/b/k", "");
        let bound = |headers: &[(&str, &str)]| {
            let headers = semantic_headers(headers.iter().copied());
            let mut call = base;
            call.parameters.headers = &headers;
            CallFingerprint::of(&call)
        };
        let plain = bound(&[("x-amz-date", "20261125T100000Z"), ("content-type", "text/plain")]);
        assert_eq!(
            plain,
            bound(&[
                ("Content-Type", " text/plain "),
                ("x-amz-date", "20261125T101500Z"),
                ("x-amz-security-token", "other"),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                ("x-amz-decoded-content-length", "5"),
                ("content-encoding", "aws-chunked"),
                ("amz-sdk-invocation-id", "abc"),
                ("user-agent", "aws-cli/2"),
            ]),
            "signing, framing and client headers do not change the call"
        );
        for header in [
            ("x-amz-storage-class", "GLACIER"),
            ("x-amz-website-redirect-location", "/elsewhere"),
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-meta-owner", "agent"),
            ("x-amz-target", "DynamoDB_20120810.DeleteTable"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("content-encoding", "aws-chunked,gzip"),
            ("cache-control", "no-cache"),
            ("if-match", "\"etag\""),
        ] {
            assert_ne!(
                plain,
                bound(&[("content-type", "text/plain"), header]),
                "{header:?} must change the fingerprint"
            );
        }
        assert_ne!(plain, bound(&[("content-type", "application/octet-stream")]));
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let actions = strings(&["s3:DeleteBucket"]);
        let none: Vec<String> = Vec::new();
        let mut a = delete_bucket(&actions, &none, "/x", "");
        a.connection = "ab";
        a.namespace = "c";
        let mut b = a;
        b.connection = "a";
        b.namespace = "bc";
        assert_ne!(CallFingerprint::of(&a), CallFingerprint::of(&b));
    }

    proptest::proptest! {
        #[test]
        fn query_order_and_signing_parameters_never_change_the_fingerprint(
            pairs in proptest::collection::vec(("[a-z][a-z0-9-]{0,8}", "[A-Za-z0-9%._-]{0,12}"), 0..6),
            rotate in 0usize..6,
            signature in "[0-9a-f]{8,64}",
            token in "[A-Za-z0-9%]{1,40}",
        ) {
            let actions = strings(&["s3:DeleteObjects"]);
            let encode = |pairs: &[(String, String)]| {
                pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
            };
            let query = encode(&pairs);
            let mut shuffled = pairs.clone();
            if !shuffled.is_empty() {
                let by = rotate % shuffled.len();
                shuffled.rotate_left(by);
            }
            shuffled.push(("X-Amz-Signature".into(), signature));
            shuffled.push(("X-Amz-Security-Token".into(), token));
            let signed = encode(&shuffled);
            proptest::prop_assert_eq!(
                CallFingerprint::of(&delete_bucket(&actions, &[], "/b", &query)),
                CallFingerprint::of(&delete_bucket(&actions, &[], "/b", &signed))
            );
        }
    }

    #[test]
    fn fingerprints_are_lowercase_hex_and_labels_fit() {
        let actions = strings(&["s3:DeleteBucket"]);
        let fingerprint = CallFingerprint::of(&delete_bucket(&actions, &[], "/x", ""));
        assert_eq!(fingerprint.as_str().len(), 64);
        assert!(
            fingerprint.as_str().chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(fingerprint.label_value().len(), 63);
        assert_eq!(fingerprint.short().len(), 10);
    }
}
