//! A 3 MiB upload signed chunk by chunk (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, by `aws-sigv4`'s
//! own chunk signer, as the SDKs sign) goes through the gateway: each chunk is verified, and the
//! upload reaches moto re-chunked and re-signed with the gateway's credentials, intact.

use crate::common;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use bytes::Bytes;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};

const ASSUME: &str = r#"
import json, os, boto3
sts = boto3.client("sts")
answer = sts.assume_role_with_web_identity(RoleArn=os.environ["AWS_ROLE_ARN"], RoleSessionName="chunked",
    WebIdentityToken=open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]).read())
print(json.dumps(answer["Credentials"], default=str))
"#;

const FETCH: &str = r#"
import sys, hashlib, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
print(hashlib.sha256(s3.get_object(Bucket="chunked-data", Key="stream.bin")["Body"].read()).hexdigest())
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_signed_upload_is_verified_and_re_signed_chunk_by_chunk() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-chunked"))
        .await
        .unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", "s3://chunked-data"]);
    assert!(ok, "{err}");

    // The agent's session credentials, from the gateway's STS.
    let mut python = env.moto.python_command();
    python.args(["-c", ASSUME]);
    for (key, value) in &agent {
        python.env(key, value);
    }
    let output = python.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let credentials: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let identity = Credentials::new(
        credentials["AccessKeyId"].as_str().unwrap(),
        credentials["SecretAccessKey"].as_str().unwrap(),
        Some(credentials["SessionToken"].as_str().unwrap().to_owned()),
        None,
        "agent",
    )
    .into();

    // 3 MiB in 128 KiB chunks, signed as the SDKs sign aws-chunked uploads.
    let payload: Vec<u8> =
        (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2246822519) >> 25) as u8).collect();
    let chunks: Vec<&[u8]> = payload.chunks(128 * 1024).collect();
    let url = format!("{}/chunked-data/stream.bin", gateway.endpoint);
    let host = common::authority(&gateway);
    let decoded_length = payload.len().to_string();
    let now = SystemTime::now();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
    settings.uri_path_normalization_mode =
        aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    // The wire length: every chunk's framing plus the final empty chunk.
    let wire_length: usize = chunks
        .iter()
        .map(|c| format!("{:x}", c.len()).len() + 17 + 64 + 2 + c.len() + 2)
        .sum::<usize>()
        + 86;
    let wire_length = wire_length.to_string();
    let headers = [
        ("host", host.as_str()),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", decoded_length.as_str()),
        ("content-length", wire_length.as_str()),
    ];
    let signable = SignableRequest::new(
        "PUT",
        &url,
        headers.iter().copied(),
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
    )
    .unwrap();
    let (instructions, seed) = sign(signable, &params).unwrap().into_parts();
    let chunk_params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(now)
        .settings(())
        .build()
        .unwrap();
    let mut wire = Vec::with_capacity(payload.len() + 8192);
    let mut previous = seed;
    for chunk in chunks.iter().copied().chain(std::iter::once(&b""[..])) {
        let signature = v4::sign_chunk(&Bytes::copy_from_slice(chunk), &previous, &chunk_params)
            .unwrap()
            .into_parts()
            .1;
        wire.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
        previous = signature;
    }
    assert_eq!(wire.len().to_string(), wire_length);

    let mut request = http::Request::put(&url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut request = request.body(Full::new(Bytes::from(wire))).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    assert_eq!(request.headers()["x-amz-content-sha256"], "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    let client = common::agent_client(&gateway);
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(status.is_success(), "{status}: {}\n{}", String::from_utf8_lossy(&body), gateway.log());

    // moto holds exactly the payload (it checked the gateway's own signature on the way in).
    let upstream = &env.moto.gateway_user;
    let fetched = env
        .moto
        .python_command()
        .args([
            "-c",
            FETCH,
            env.moto.endpoint(),
            &upstream.access_key_id,
            &upstream.secret_access_key,
        ])
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    assert_eq!(
        String::from_utf8_lossy(&fetched.stdout).trim(),
        hex::encode(Sha256::digest(&payload))
    );
}
