//! Issue 15 classes 8 and 9 for streamed bodies, against the real gateway with moto upstream: a
//! streamed upload is recorded with the sha256 of the bytes that really passed (the AWS CLI
//! sending `UNSIGNED-PAYLOAD`, so nothing declared it), and a streamed body that differs from the
//! sha256 it was signed and decided with never reaches moto whole.

use crate::{
    adversarial::session,
    adversarial_approval::{moto_objects, streamed_file, unsigned_payload_agent},
    common,
};

use std::time::SystemTime;

use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use bytes::Bytes;
use chaperone_recording::{EventBody, Hash256};
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_unsigned_upload_is_recorded_with_the_sha256_of_its_real_bytes() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    // Plain HTTP, where the AWS CLI with payload signing off sends UNSIGNED-PAYLOAD (over HTTPS
    // it sends an aws-chunked body with a trailing checksum instead).
    let mut spec = GatewaySpec::new("adv-streamed-sha");
    spec.plaintext = true;
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", "s3://streamed-sha"]);
    assert!(ok, "{err}");
    let (file, content) = streamed_file(&gateway.dir, "unsigned.bin", 7);
    let unsigned = unsigned_payload_agent(&gateway.dir, &agent);
    let (ok, _, err) = aws_cli(env, &unsigned, &["s3", "cp", &file, "s3://streamed-sha/u.bin"]);
    assert!(ok, "{err}\n{}", gateway.log());
    let real = Hash256::of(&content);
    let objects = moto_objects(env, "streamed-sha");
    assert_eq!(objects[0][4], real.to_string(), "moto holds the file: {objects}");

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "verification problems: {:#?}", report.problems);
    let events = common::events(&objects);
    let request = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Request(r) if r.aws.operation == "PutObject" => Some(r.clone()),
            _ => None,
        })
        .expect("the PutObject request event");
    assert!(
        request.headers.iter().any(|(n, v)| n == "x-amz-content-sha256" && v == "UNSIGNED-PAYLOAD"),
        "the CLI streamed it unsigned: {:?}",
        request.headers
    );
    // Written ahead, before the body passed: only the declared size, no hash to declare.
    assert_eq!(request.body.size, content.len() as u64);
    assert_eq!(request.body.sha256, Hash256::from_bytes([0; 32]));
    let response = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Response(r) if r.call == request.call => Some(r.clone()),
            _ => None,
        })
        .expect("the PutObject response event");
    assert_eq!(response.status, Some(200));
    let streamed = response.request_body.expect("the response records the streamed body");
    assert_eq!(streamed.sha256, real, "the recorded sha256 is the real bytes'");
    assert_eq!(streamed.size, content.len() as u64);
    assert!(streamed.complete);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_body_that_differs_from_its_signed_sha256_never_reaches_upstream_whole() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    // Plain HTTP: the request below is sent by a bare HTTP client.
    let mut spec = GatewaySpec::new("adv-switched-body");
    spec.plaintext = true;
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", "s3://switched-body"]);
    assert!(ok, "{err}");
    let identity = session(env, &agent).into();

    // Signed (and decided, and recorded) with the sha256 of `declared`; `sent` has the same
    // length and differs only in its last byte.
    let (_, declared) = streamed_file(&gateway.dir, "declared.bin", 3);
    let mut sent = declared.clone();
    *sent.last_mut().unwrap() ^= 0xff;
    let url = format!("{}/switched-body/switched.bin", gateway.endpoint);
    let host = gateway.endpoint.trim_start_matches("http://").to_owned();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let length = declared.len().to_string();
    let headers = [("host", host.as_str()), ("content-length", length.as_str())];
    let signable =
        SignableRequest::new("PUT", &url, headers.iter().copied(), SignableBody::Bytes(&declared))
            .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::put(&url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut request = request.body(Full::new(Bytes::from(sent.clone()))).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "the switched body was not refused: {body}");
    assert!(
        body.contains("XAmzContentSHA256Mismatch")
            && body.contains("does not match its x-amz-content-sha256")
            && body.contains("never received it whole"),
        "{status} {body}\n{}",
        gateway.log()
    );
    assert_eq!(moto_objects(env, "switched-body"), json!([]), "nothing reached moto whole");

    // The recording says what the agent sent, and that it did not go upstream whole.
    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let events = common::events(&objects);
    let streamed = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Response(r) => r.request_body.clone(),
            _ => None,
        })
        .expect("the failed call's response event records the streamed body");
    // What the agent sent, measured; not complete: its last frame never went upstream.
    assert!(!streamed.complete, "{streamed:?}");
    assert_eq!(streamed.sha256, Hash256::of(&sent));
    assert_eq!(streamed.size, sent.len() as u64);
}
