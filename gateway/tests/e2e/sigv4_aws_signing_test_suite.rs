//! Runs the AWS SigV4 signing test suite that ships inside the `aws-sigv4` crate's source
//! (`aws-signing-test-suite/v4`, taken from aws-c-auth) through [`SigV4Verifier`].
//!
//! The suite is found through `cargo metadata` (the `aws-sigv4` dev-dependency's manifest path),
//! never copied. Each case directory holds `context.json` (credentials, region, service, the
//! fixed time, whether the signer normalized the path) and the signed request in both forms,
//! `header-signed-request.txt` and `query-signed-request.txt`. Every form present must verify
//! with the suite's secret at its time, and must fail once one hex digit of its signature
//! changes.

use std::path::{Path, PathBuf};

use chaperone_gateway::sigv4::{
    CanonicalPathRules, CredentialRejection, RequestParts, SessionSecret, SigV4Error,
    SigV4Verifier, Verification,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Cases (directory, form) that cannot verify, and why. Everything else must pass.
const SKIPPED: &[(&str, &str, &str)] = &[
    (
        "double-encode-path",
        "header",
        "an old-format case with no context.json whose signed request carries X-Amz-Date \
         20150830T123600Z while its canonical request and signature were made at \
         20210511T154045Z; the signed request cannot verify under any clock",
    ),
    (
        "post-sts-header-after",
        "query",
        "the session token was appended to the presigned URL after signing \
         (omit_session_token); a presigned query is signed over all its parameters, so a \
         parameter added afterwards must fail, as it does at AWS",
    ),
];

fn aws_sigv4_suite_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(std::env::var_os("CARGO_MANIFEST_DIR").unwrap())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let manifest = metadata["packages"]
        .as_array()
        .expect("packages array")
        .iter()
        .find(|package| package["name"] == "aws-sigv4")
        .and_then(|package| package["manifest_path"].as_str())
        .expect("aws-sigv4 is a dev-dependency of chaperone-gateway");
    Path::new(manifest)
        .parent()
        .expect("manifest has a directory")
        .join("aws-signing-test-suite")
        .join("v4")
}

/// A request as the suite writes it: request line, headers (obs-folded lines joined with one
/// space, as RFC 9112 says a recipient may), blank line, body.
struct WireRequest {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn parse_wire_request(text: &str) -> WireRequest {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    let (method, rest) = request_line.split_once(' ').expect("method");
    // The target may hold spaces (get-space-*); the old-format cases omit the HTTP version.
    let target = rest.strip_suffix(" HTTP/1.1").unwrap_or(rest);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("a folded line continues a header");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("name:value");
            fields.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_bytes(value.as_bytes()).expect("header value"),
        );
    }
    WireRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

struct SuiteContext {
    access_key_id: String,
    secret: String,
    token: Option<String>,
    normalize: bool,
    now: Option<OffsetDateTime>,
}

fn read_context(dir: &Path) -> SuiteContext {
    let Ok(text) = std::fs::read_to_string(dir.join("context.json")) else {
        // The two old-format cases have no context: AKIDEXAMPLE-style keys with the suite's
        // secret, a normalizing signer, and the request's own X-Amz-Date as the time.
        return SuiteContext {
            access_key_id: String::new(),
            secret: SUITE_SECRET.to_owned(),
            token: None,
            normalize: true,
            now: None,
        };
    };
    let context: serde_json::Value = serde_json::from_str(&text).expect("context.json");
    let credentials = &context["credentials"];
    SuiteContext {
        access_key_id: credentials["access_key_id"].as_str().expect("access_key_id").to_owned(),
        secret: credentials["secret_access_key"].as_str().expect("secret").to_owned(),
        token: credentials["token"].as_str().map(str::to_owned),
        normalize: context["normalize"].as_bool().unwrap_or(true),
        now: Some(
            OffsetDateTime::parse(context["timestamp"].as_str().expect("timestamp"), &Rfc3339)
                .expect("RFC 3339 timestamp"),
        ),
    }
}

fn unnormalized_path_rules(_service: &str) -> CanonicalPathRules {
    CanonicalPathRules { double_encode: true, normalize: false }
}

fn request_time(request: &WireRequest) -> OffsetDateTime {
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .expect("old-format cases carry X-Amz-Date");
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(amz_date, format).expect("X-Amz-Date").assume_utc()
}

fn verify(context: &SuiteContext, request: &WireRequest) -> Result<(), SigV4Error> {
    let lookup = |access_key_id: &str, token: Option<&str>, _now: OffsetDateTime| {
        if !context.access_key_id.is_empty() && access_key_id != context.access_key_id {
            return Err(CredentialRejection::UnknownAccessKey);
        }
        if let Some(expected) = &context.token
            && token != Some(expected.as_str())
        {
            return Err(CredentialRejection::InvalidToken {
                reason: "not the suite's session token".to_owned(),
            });
        }
        Ok(SessionSecret {
            secret_access_key: chaperone_config::Redacted(context.secret.clone()),
            session: (),
        })
    };
    let mut verifier = SigV4Verifier::new(lookup);
    if !context.normalize {
        verifier = verifier.with_path_rules(unnormalized_path_rules);
    }
    let parts = RequestParts {
        method: &request.method,
        raw_path: &request.path,
        raw_query: &request.query,
        headers: &request.headers,
    };
    let now = context.now.unwrap_or_else(|| request_time(request));
    match verifier.verify(&parts, now)? {
        Verification::Verified(_) => Ok(()),
        Verification::BodyHashRequired(pending) => {
            pending.finish_with_body(&request.body).map(|_| ())
        }
    }
}

/// Changes the first hex digit of the signature in the signed request text.
fn tamper_signature(text: &str, form: &str) -> String {
    let marker = if form == "header" { "Signature=" } else { "X-Amz-Signature=" };
    let start = text.rfind(marker).expect("signature in request") + marker.len();
    let mut bytes = text.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).expect("still UTF-8")
}

#[test]
fn every_applicable_aws_suite_case_verifies_and_fails_with_one_signature_digit_changed() {
    let suite = aws_sigv4_suite_dir();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&suite)
        .unwrap_or_else(|e| panic!("read {}: {e}", suite.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "the suite has shrunk: {}", cases.len());

    let (mut passed, mut skipped, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for dir in &cases {
        let name = dir.file_name().and_then(|n| n.to_str()).expect("case name");
        let context = read_context(dir);
        for form in ["header", "query"] {
            let Ok(text) = std::fs::read_to_string(dir.join(format!("{form}-signed-request.txt")))
            else {
                continue;
            };
            let request = parse_wire_request(&text);
            let outcome = verify(&context, &request);
            if let Some((_, _, reason)) =
                SKIPPED.iter().find(|(case, f, _)| *case == name && *f == form)
            {
                assert!(
                    outcome.is_err(),
                    "{name} ({form}) is listed as skipped ({reason}) but verifies: remove it from SKIPPED"
                );
                skipped.push(format!("{name} ({form})"));
                continue;
            }
            if let Err(error) = outcome {
                failures.push(format!("{name} ({form}): {error}"));
                continue;
            }
            let tampered = parse_wire_request(&tamper_signature(&text, form));
            match verify(&context, &tampered) {
                Err(SigV4Error::SignatureDoesNotMatch { .. }) => {}
                other => failures.push(format!(
                    "{name} ({form}) with a changed signature: expected SignatureDoesNotMatch, got {other:?}"
                )),
            }
            passed.push(format!("{name} ({form})"));
        }
    }
    println!(
        "aws-signing-test-suite v4: {} passed, {} skipped: {skipped:?}",
        passed.len(),
        skipped.len()
    );
    assert!(failures.is_empty(), "suite failures:\n{}", failures.join("\n"));
    assert!(passed.len() >= 75, "only {} suite requests ran", passed.len());
}

#[test]
fn the_skipped_double_encode_path_case_still_agrees_on_its_canonical_path() {
    // Its signature cannot verify (see SKIPPED), but its canonical request's path line can be
    // checked: the wire path encoded once more, `@` and `%` included.
    let dir = aws_sigv4_suite_dir().join("double-encode-path");
    let text = std::fs::read_to_string(dir.join("header-signed-request.txt")).expect("request");
    let request = parse_wire_request(&text);
    let creq = std::fs::read_to_string(dir.join("header-canonical-request.txt")).expect("creq");
    let expected_path = creq.lines().nth(1).expect("path line");
    assert_eq!(
        chaperone_gateway::sigv4::canonical_path(&request.path, CanonicalPathRules::DEFAULT),
        expected_path
    );
}
