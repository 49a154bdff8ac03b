//! Issue 15 class 8, approvals bind everything that changes the call: the real AWS CLI through the
//! real gateway, ApprovalRequests in the real API server, moto upstream. An approval admits only
//! the call it was given for: the same method, path and query, the same semantic headers, and
//! the same body by its sha256; a held call whose streamed body no hash binds is refused before
//! any ApprovalRequest exists, and nothing of the refused calls reaches moto.

use crate::approvals_aws_cli::ApprovalSetup;

use chaperone_crds::ApprovalPhase;
use chaperone_tests::LocalEnv;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The objects moto holds in `bucket` (key, size, content type, sha256 of the bytes), as the
/// gateway's own upstream user reads them: what reached upstream, not what the gateway says.
const OBJECTS: &str = r#"
import hashlib, json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
out = []
for o in s3.list_objects_v2(Bucket=sys.argv[4]).get("Contents", []):
    got = s3.get_object(Bucket=sys.argv[4], Key=o["Key"])
    out.append([o["Key"], o["Size"], got["ContentType"], got.get("WebsiteRedirectLocation"),
                hashlib.sha256(got["Body"].read()).hexdigest()])
print(json.dumps(out))
"#;

pub(crate) fn moto_objects(env: &LocalEnv, bucket: &str) -> serde_json::Value {
    let user = &env.moto.gateway_user;
    let output = env
        .moto
        .python_command()
        .args([
            "-c",
            OBJECTS,
            env.moto.endpoint(),
            &user.access_key_id,
            &user.secret_access_key,
            bucket,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The agent's environment with an AWS config file that turns S3 payload signing off: the CLI
/// then sends `x-amz-content-sha256: UNSIGNED-PAYLOAD` even over plain HTTP.
pub(crate) fn unsigned_payload_agent(
    dir: &std::path::Path,
    agent: &[(String, String)],
) -> Vec<(String, String)> {
    payload_signing_agent(dir, agent, false)
}

/// `agent` with an AWS config file that sets the CLI's S3 `payload_signing_enabled` (by default
/// the CLI signs payloads over HTTP and not over HTTPS).
pub(crate) fn payload_signing_agent(
    dir: &std::path::Path,
    agent: &[(String, String)],
    enabled: bool,
) -> Vec<(String, String)> {
    let config = dir.join(format!("payload-signing-{enabled}.config"));
    // Over HTTPS botocore streams uploads with a trailing checksum, unsigned, whenever it
    // computes a checksum it need not: signing them takes checksums only when required too.
    let checksums = if enabled { "request_checksum_calculation = when_required\n" } else { "" };
    let text = format!("[default]\n{checksums}s3 =\n    payload_signing_enabled = {enabled}\n");
    std::fs::write(&config, text).unwrap();
    let mut agent = agent.to_vec();
    agent.push(("AWS_CONFIG_FILE".into(), config.display().to_string()));
    agent
}

/// Two MiB: above the 1 MiB the gateway reads whole, below the CLI's multipart threshold (one
/// PutObject that streams).
pub(crate) fn streamed_file(dir: &std::path::Path, name: &str, seed: u32) -> (String, Vec<u8>) {
    let content: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &content).unwrap();
    (path.display().to_string(), content)
}

fn object_writes(hold_seconds: u32) -> serde_json::Value {
    json!({
        "object-writes": {
            "match": {"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::bind-*/*"]},
            "reviewers": {"groups": ["sre"], "required": 1},
            "holdSeconds": hold_seconds,
            "approvalValidSeconds": 600,
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_upload_whose_streamed_body_no_hash_binds_is_refused_naming_what_to_sign() {
    let setup = ApprovalSetup::start_with_rules("adv-bind-body", object_writes(3)).await;
    let _logs = setup.env.logs_on_failure();
    let env = setup.env;
    setup.must(&["s3", "mb", "s3://bind-body"]);
    let (file, content) = streamed_file(&setup.gateway.dir, "upload.bin", 1);

    // UNSIGNED-PAYLOAD, 2 MiB: refused at once, no ApprovalRequest, nothing in moto.
    let unsigned = unsigned_payload_agent(&setup.gateway.dir, &setup.agent);
    let (ok, _, err) = chaperone_tests::gateway::aws_cli(
        env,
        &unsigned,
        &["s3", "cp", &file, "s3://bind-body/unsigned.bin"],
    );
    assert!(!ok, "the unsigned held upload was admitted");
    for part in [
        "AccessDenied",
        "ApprovalRule object-writes holds this call",
        // UNSIGNED-PAYLOAD over HTTP, STREAMING-UNSIGNED-PAYLOAD-TRAILER over HTTPS.
        "UNSIGNED-PAYLOAD",
        "(2097152 bytes)",
        "an approval is bound to the sha256 of the whole body",
        "Sign the payload",
        "payload_signing_enabled",
    ] {
        assert!(err.contains(part), "{part:?} missing from:\n{err}\n{}", setup.gateway.log());
    }
    assert!(setup.all_requests().await.is_empty(), "no ApprovalRequest for an unbindable body");
    assert_eq!(moto_objects(env, "bind-body"), json!([]), "nothing reached moto");

    // The same upload with its payload signed (the CLI's default over HTTP; over HTTPS it takes
    // payload_signing_enabled = true) is bindable: held, approved, and then admitted once, intact.
    let signed = payload_signing_agent(&setup.gateway.dir, &setup.agent, true);
    let cp_signed = ["s3", "cp", &file, "s3://bind-body/signed.bin"];
    let (ok, _, err) = chaperone_tests::gateway::aws_cli(env, &signed, &cp_signed);
    assert!(!ok, "held without a decision: refused");
    assert!(err.contains("none decided within the hold"), "{err}");
    let requests = setup.all_requests().await;
    assert_eq!(requests.len(), 1, "one ApprovalRequest for the signed upload");
    let name = requests[0].metadata.name.clone().unwrap();
    assert_eq!(moto_objects(env, "bind-body"), json!([]));
    setup.review(&name, "Approve", "alice", "").await;
    let (ok, _, err) = chaperone_tests::gateway::aws_cli(env, &signed, &cp_signed);
    assert!(ok, "the approved upload failed: {err}\n{}", setup.gateway.log());
    let objects = moto_objects(env, "bind-body");
    assert_eq!(objects[0][0], "signed.bin");
    assert_eq!(objects[0][4], hex::encode(Sha256::digest(&content)), "{objects}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_does_not_admit_the_call_with_other_semantic_headers_or_another_body() {
    let mut setup = ApprovalSetup::start_with_rules("adv-bind-headers", object_writes(3)).await;
    let _logs = setup.env.logs_on_failure();
    let env = setup.env;
    setup.must(&["s3", "mb", "s3://bind-headers"]);
    let file = setup.gateway.dir.join("page.txt");
    std::fs::write(&file, "the approved page\n").unwrap();
    let other = setup.gateway.dir.join("other.txt");
    std::fs::write(&other, "the switched page\n").unwrap();
    let put = |body: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "s3api",
            "put-object",
            "--bucket",
            "bind-headers",
            "--key",
            "index.html",
            "--body",
            body.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let approved_call = put(&file, &["--content-type", "text/plain"]);
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        setup.aws(&args)
    };

    let (ok, _, err) = run(&approved_call);
    assert!(!ok && err.contains("none decided within the hold"), "{err}");
    let first = setup.all_requests().await;
    assert_eq!(first.len(), 1);
    let approved = first[0].metadata.name.clone().unwrap();
    setup.review(&approved, "Approve", "alice", "").await;

    // Each variant differs from the approved call only in what S3 would do or store; each is a
    // call of its own: held under a new ApprovalRequest, refused, and the approval stays unused.
    let variants = [
        ("content type", put(&file, &["--content-type", "text/html"])),
        (
            "redirect",
            put(
                &file,
                &["--content-type", "text/plain", "--website-redirect-location", "/elsewhere"],
            ),
        ),
        ("metadata", put(&file, &["--content-type", "text/plain", "--metadata", "owner=agent"])),
        ("body of the same length", put(&other, &["--content-type", "text/plain"])),
    ];
    for (i, (what, call)) in variants.iter().enumerate() {
        let (ok, _, err) = run(call);
        assert!(!ok, "the approval admitted the call with another {what}");
        let requests = setup.all_requests().await;
        assert_eq!(requests.len(), i + 2, "{what}: a new ApprovalRequest\n{err}");
        let newest = requests.last().unwrap();
        let name = newest.metadata.name.clone().unwrap();
        assert_ne!(newest.spec.fingerprint, first[0].spec.fingerprint, "{what}");
        assert!(err.contains(&name) && err.contains("AccessDenied"), "{what}: {err}");
        assert_eq!(moto_objects(env, "bind-headers"), json!([]), "{what} reached moto");
        let approval = setup.requests_phase(&approved).await;
        assert_ne!(approval, ApprovalPhase::Consumed, "{what} consumed the approval");
    }

    // The approved call itself goes through, once, as approved.
    let (ok, _, err) = run(&approved_call);
    assert!(ok, "the approved call was refused: {err}");
    assert_eq!(setup.requests_phase(&approved).await, ApprovalPhase::Consumed);
    let objects = moto_objects(env, "bind-headers");
    assert_eq!(objects[0][2], "text/plain", "{objects}");
    assert_eq!(objects[0][3], serde_json::Value::Null, "{objects}");
    assert_eq!(objects[0][4], hex::encode(Sha256::digest(b"the approved page\n")), "{objects}");

    // The recording names each approval's fingerprint: the admitted call's is the approved one.
    let events = setup.recorded_events().await;
    let approvals: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            chaperone_recording::EventBody::Approval(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    let admitted = approvals
        .iter()
        .find(|a| a.outcome == chaperone_recording::ApprovalDecision::Approved)
        .expect("an approved approval event");
    assert_eq!(admitted.fingerprint, first[0].spec.fingerprint);
}
