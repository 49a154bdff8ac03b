//! The recorder against the local S3 (moto, signature checking on): layout and verification,
//! crash recovery, back-pressure and draining, redaction, and large bodies.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use chaperone_config::UpstreamCredentials;
use chaperone_crds::{Capture, RecordingPolicySpec, Redaction, Retention, S3Destination};
use chaperone_gateway::recorder::{
    RecordError, Recorder, RecorderSettings, RecordingTarget, SessionHandle,
};
use chaperone_recording::{
    AgentIdentity, AwsCall, Body, CutPolicy, Decision, Effect, EndReason, EventBody, Hash256,
    Manifest, RecordingSigner, Request, Response, SegmentReader, SessionStart, SessionVerifier,
    StreamStatus, Timestamp, Timings, TrustedKeys, VerificationReport, VerifyOptions,
    new_session_id,
};
use chaperone_tests::{AwsUser, LocalEnv};

const SEED: [u8; 32] = [7; 32];

/// The shared environment. This binary links rustls with both aws-lc-rs (the S3 SDK) and ring
/// (kube, in the environment), so the process-wide provider must be chosen explicitly.
fn env() -> &'static LocalEnv {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    LocalEnv::shared()
}

fn s3_client(endpoint: &str, user: &AwsUser) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            &user.access_key_id,
            &user.secret_access_key,
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn create_bucket(env: &LocalEnv, bucket: &str) {
    s3_client(env.moto.endpoint(), &env.moto.gateway_user)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket is created");
}

fn target(env: &LocalEnv, bucket: &str, endpoint: &str, max_body_bytes: i64) -> RecordingTarget {
    RecordingTarget {
        namespace: "team-a".into(),
        connection: "prod".into(),
        policy: RecordingPolicySpec {
            s3: S3Destination {
                bucket: bucket.into(),
                prefix: "agents/".into(),
                region: "us-east-1".into(),
                endpoint: Some(endpoint.into()),
                credentials: None,
                server_side_encryption: None,
            },
            retention: Retention { days: 1, transitions: vec![] },
            object_lock: None,
            capture: Capture { max_body_bytes },
            redact: Redaction::default(),
            on_failure: Default::default(),
            durability: Default::default(),
            access: None,
        },
        credentials: Some(UpstreamCredentials {
            access_key_id: env.moto.gateway_user.access_key_id.clone(),
            secret_access_key: chaperone_config::Redacted(
                env.moto.gateway_user.secret_access_key.clone(),
            ),
            session_token: None,
        }),
    }
}

fn settings(spool: &Path, replica: &str) -> RecorderSettings {
    let mut settings =
        RecorderSettings::new(spool.to_owned(), replica, RecordingSigner::from_seed(&SEED));
    settings.cut = CutPolicy { max_bytes: 4096, max_age: Duration::from_secs(3600) };
    settings.digest_interval = Duration::from_secs(3600);
    settings.max_upload_backoff = Duration::from_millis(500);
    settings
}

fn session() -> SessionHandle {
    let now = Timestamp::now();
    SessionHandle {
        session: new_session_id(now),
        connection: "prod".into(),
        start: SessionStart {
            connection: "prod".into(),
            agent: AgentIdentity {
                namespace: "team-a".into(),
                service_account: "pr-bot".into(),
                pod_name: "pr-bot-7d9f".into(),
                pod_uid: "5f0c".into(),
                role_session_name: "pr-bot".into(),
            },
            credentials_expire: now.checked_add(Duration::from_secs(3600)).unwrap(),
        },
    }
}

fn request(call: &str, action: &str, body: Body) -> EventBody {
    let (service, operation) = action.split_once(':').unwrap();
    EventBody::Request(Request {
        call: call.into(),
        method: "POST".into(),
        path: "/".into(),
        query: vec![],
        headers: vec![
            ("host".into(), "10.96.0.12:8080".into()),
            ("authorization".into(), "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/...".into()),
        ],
        body,
        aws: AwsCall {
            service: service.into(),
            operation: operation.into(),
            actions: vec![action.into()],
            resources: vec![],
        },
        decision: Decision {
            effect: Effect::Allow,
            object: Some("AgentConnection/team-a/prod".into()),
            rule: Some("policy.allow[0]: *".into()),
        },
        timings: Timings { decide_us: Some(40), ..Timings::default() },
        redacted: vec![],
    })
}

fn response(call: &str, body: Body) -> EventBody {
    EventBody::Response(Response {
        call: call.into(),
        status: Some(200),
        headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
        body,
        timings: Timings::default(),
        upstream_error: None,
        redacted: vec![],
        request_body: None,
    })
}

/// Every object of the session, read with the auditor's read-only keys.
async fn download_session(
    env: &LocalEnv,
    bucket: &str,
    session: &str,
) -> BTreeMap<String, Vec<u8>> {
    let client = s3_client(env.moto.endpoint(), &env.moto.auditor_user);
    let mut objects = BTreeMap::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix("agents/v1/team-a/prod/")
            .set_continuation_token(token)
            .send()
            .await
            .expect("listing works");
        for object in page.contents() {
            let key = object.key().unwrap().to_owned();
            if !key.contains(session) {
                continue;
            }
            let bytes = client.get_object().bucket(bucket).key(&key).send().await.unwrap();
            objects.insert(key, bytes.body.collect().await.unwrap().into_bytes().to_vec());
        }
        match page.next_continuation_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    objects
}

fn verify(objects: &BTreeMap<String, Vec<u8>>) -> VerificationReport {
    let keys: TrustedKeys =
        [RecordingSigner::from_seed(&SEED).verifying_key()].into_iter().collect();
    SessionVerifier::new(keys, VerifyOptions::at(Timestamp::now())).verify(objects)
}

fn events(report: &VerificationReport) -> Vec<EventBody> {
    report.streams.iter().flat_map(|s| s.events.iter().map(|e| e.event.body.clone())).collect()
}

/// Waits until every cut segment is uploaded.
async fn wait_for_uploads(recorder: &Recorder, within: Duration) {
    let started = Instant::now();
    while recorder.status().upload_backlog_segments > 0 {
        assert!(
            started.elapsed() < within,
            "the upload backlog did not drain within {within:?}: {:?}",
            recorder.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_for_a_session_appear_in_s3_under_the_documented_layout_and_verify() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-layout";
    create_bucket(env, bucket).await;
    let spool = tempfile::tempdir().unwrap();
    let recorder = Recorder::open(
        settings(spool.path(), "gw-0"),
        vec![target(env, bucket, env.moto.endpoint(), 1 << 20)],
    )
    .await
    .unwrap();
    let handle = session();
    for i in 0..20 {
        let call = format!("c{i}");
        let body = Body::complete(format!(r#"{{"TableName":"t{i}"}}"#).as_bytes());
        recorder.append(&handle, request(&call, "dynamodb:Query", body)).await.unwrap();
        recorder.append(&handle, response(&call, Body::complete(b"{}"))).await.unwrap();
    }
    recorder.shutdown().await;

    let objects = download_session(env, bucket, &handle.session).await;
    let date = chaperone_recording::session_id_time(&handle.session).unwrap().date();
    let stream_prefix = format!(
        "agents/v1/team-a/prod/{:04}/{:02}/{:02}/{}/gw-0/",
        date.year(),
        u8::from(date.month()),
        date.day(),
        handle.session
    );
    assert!(objects.keys().all(|k| k.starts_with(&stream_prefix)), "{:?}", objects.keys());
    for name in ["000001.jsonl.zst", "000002.jsonl.zst", "_manifest.json", "_digests/000001.json"] {
        assert!(objects.contains_key(&format!("{stream_prefix}{name}")), "{name} missing");
    }
    let report = verify(&objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    assert_eq!(report.streams[0].status, Some(StreamStatus::Closed));
    let events = events(&report);
    assert_eq!(events.len(), 1 + 40 + 1);
    assert!(matches!(events[0], EventBody::SessionStart(_)));
    assert!(matches!(
        events.last(),
        Some(EventBody::SessionEnd(end)) if end.reason == EndReason::Shutdown
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_dropped_without_shutdown_is_recovered_on_reopen_and_verifies_as_recovered() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-recovery";
    create_bucket(env, bucket).await;
    let spool = tempfile::tempdir().unwrap();
    let targets = vec![target(env, bucket, env.moto.endpoint(), 1 << 20)];
    let handle = session();
    {
        let mut crashing = settings(spool.path(), "gw-0");
        crashing.cut.max_bytes = 1 << 30; // nothing is cut, so nothing is uploaded before the crash
        let recorder = Recorder::open(crashing, targets.clone()).await.unwrap();
        for i in 0..10 {
            let call = format!("c{i}");
            recorder
                .append(&handle, request(&call, "s3:ListBuckets", Body::empty()))
                .await
                .unwrap();
        }
        drop(recorder); // no shutdown: a crash
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A write the crash interrupted: a partial last line, never acknowledged.
    let spool_file = spool.path().join(&handle.session).join("000001.jsonl");
    let mut bytes = std::fs::read(&spool_file).unwrap();
    bytes.extend_from_slice(br#"{"v":1,"seq":12,"ts":"2026-"#);
    std::fs::write(&spool_file, bytes).unwrap();

    let recorder = Recorder::open(settings(spool.path(), "gw-1"), targets).await.unwrap();
    let recovery = recorder.recovery().clone();
    let after_recovery = recorder.append(&handle, request("late", "s3:ListBuckets", Body::empty()));
    let after_recovery = after_recovery.await;
    wait_for_uploads(&recorder, Duration::from_secs(60)).await;
    recorder.shutdown().await;

    assert!(
        matches!(&after_recovery, Err(RecordError::SessionEnded { .. })),
        "a closed stream must not be restarted over itself: {after_recovery:?}"
    );

    assert_eq!((recovery.streams, recovery.events), (1, 1 + 10 + 1));
    assert_eq!(recovery.torn_lines.len(), 1);
    let objects = download_session(env, bucket, &handle.session).await;
    let report = verify(&objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    assert_eq!(report.streams.len(), 1);
    assert_eq!(report.streams[0].stream.replica(), "gw-0");
    assert_eq!(report.streams[0].status, Some(StreamStatus::Recovered));
    let manifest_key = objects.keys().find(|k| k.ends_with("_manifest.json")).unwrap();
    let manifest: Manifest = serde_json::from_slice(&objects[manifest_key]).unwrap();
    assert_eq!(manifest.end_reason, Some(EndReason::Recovered));
    let events = events(&report);
    assert_eq!(events.len(), 12);
    assert!(matches!(
        events.last(),
        Some(EventBody::SessionEnd(end)) if end.reason == EndReason::Recovered
    ));
    assert!(std::fs::read_dir(spool.path()).unwrap().next().is_none(), "spool not emptied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_with_spool_full_while_s3_is_down_and_the_backlog_drains_once_targets_point_at_s3()
 {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-backpressure";
    create_bucket(env, bucket).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = format!("http://127.0.0.1:{closed_port}");
    let spool = tempfile::tempdir().unwrap();
    let mut settings = settings(spool.path(), "gw-0");
    settings.max_spool_bytes = 64 * 1024;
    let recorder =
        Recorder::open(settings, vec![target(env, bucket, &down, 1 << 20)]).await.unwrap();
    let handle = session();
    let padding = "x".repeat(900);
    let mut recorded = 0;
    let refusal = loop {
        let body = Body::complete(format!(r#"{{"pad":"{padding}"}}"#).as_bytes());
        match recorder.append(&handle, request(&format!("c{recorded}"), "s3:PutObject", body)).await
        {
            Ok(()) => recorded += 1,
            Err(error) => break error,
        }
        assert!(recorded < 1000, "the spool limit was never reached");
    };
    let message = refusal.to_string();
    assert!(matches!(refusal, RecordError::SpoolFull { limit: 65536, .. }), "{refusal:?}");
    assert!(message.contains("spool is full") && message.contains("check the recording bucket"));
    let started = Instant::now();
    while recorder.status().last_upload_error.is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "no upload error was reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let still_full = recorder.append(&handle, request("refused", "s3:PutObject", Body::empty()));
    assert!(matches!(still_full.await, Err(RecordError::SpoolFull { last_error: Some(_), .. })));

    recorder.update_targets(vec![target(env, bucket, env.moto.endpoint(), 1 << 20)]);
    wait_for_uploads(&recorder, Duration::from_secs(60)).await;
    recorder
        .append(&handle, request("after", "s3:PutObject", Body::empty()))
        .await
        .expect("appends work again once the backlog drained");
    recorder.shutdown().await;

    let report = verify(&download_session(env, bucket, &handle.session).await);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let requests: Vec<String> = events(&report)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::Request(r) => Some(r.call),
            _ => None,
        })
        .collect();
    let mut expected: Vec<String> = (0..recorded).map(|i| format!("c{i}")).collect();
    expected.push("after".into());
    assert_eq!(requests, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_secret_value_secret_string_is_stored_nowhere_but_its_sha256_is() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-redaction";
    create_bucket(env, bucket).await;
    let spool = tempfile::tempdir().unwrap();
    let recorder = Recorder::open(
        settings(spool.path(), "gw-0"),
        vec![target(env, bucket, env.moto.endpoint(), 1 << 20)],
    )
    .await
    .unwrap();
    let handle = session();
    let secret = "correct horse battery staple 4711";
    let answer = format!(
        r#"{{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:db","Name":"db","SecretString":"{secret}"}}"#
    );
    let get = Body::complete(br#"{"SecretId":"db"}"#);
    recorder.append(&handle, request("c1", "secretsmanager:GetSecretValue", get)).await.unwrap();
    recorder.append(&handle, response("c1", Body::complete(answer.as_bytes()))).await.unwrap();
    recorder.shutdown().await;

    let objects = download_session(env, bucket, &handle.session).await;
    let report = verify(&objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let mut stored = Vec::new();
    for (key, bytes) in &objects {
        if key.ends_with(".jsonl.zst") {
            for line in SegmentReader::read_all(bytes).unwrap() {
                stored.extend(line.line);
                stored.push(b'\n');
            }
        } else {
            stored.extend(bytes);
        }
    }
    let stored = String::from_utf8(stored).unwrap();
    assert!(!stored.contains(secret), "the secret was stored");
    assert!(!stored.contains("ASIAEXAMPLE"), "the authorization header was stored");
    assert!(stored.contains(&format!("sha256:{}", Hash256::of(secret.as_bytes()))));
    assert!(stored.contains(r#""redacted":["body:/SecretString"]"#), "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_body_recorded_with_max_body_bytes_1_mib_is_truncated_with_its_full_sha256() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-large-body";
    create_bucket(env, bucket).await;
    let spool = tempfile::tempdir().unwrap();
    let recorder = Recorder::open(
        settings(spool.path(), "gw-0"),
        vec![target(env, bucket, env.moto.endpoint(), 1 << 20)],
    )
    .await
    .unwrap();
    let handle = session();
    let full: Vec<u8> =
        (0..50u32 << 20).map(|i| b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26).collect();
    let full_sha256 = Hash256::of(&full);
    let body = Body::captured(&full, full.len() as u64, full_sha256);
    let started = Instant::now();
    recorder.append(&handle, request("big", "s3:PutObject", body)).await.unwrap();
    let append_took = started.elapsed();
    let spooled = recorder.status().spool_bytes_used;
    recorder.shutdown().await;
    println!("50 MiB body: append took {append_took:?}, spool grew to {spooled} bytes");

    let objects = download_session(env, bucket, &handle.session).await;
    let report = verify(&objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let recorded = events(&report)
        .into_iter()
        .find_map(|e| match e {
            EventBody::Request(r) => Some(r.body),
            _ => None,
        })
        .unwrap();
    assert!(recorded.truncated);
    assert_eq!(recorded.size, 50 << 20);
    assert_eq!(recorded.sha256, full_sha256);
    assert_eq!(recorded.captured_bytes().unwrap(), &full[..1 << 20]);
    assert!(spooled < 2 << 20, "the spool held {spooled} bytes for a 1 MiB capture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_credentials_expired_is_closed_with_session_end_expired_and_verifies() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-expiry";
    create_bucket(env, bucket).await;
    let spool = tempfile::tempdir().unwrap();
    let mut settings = settings(spool.path(), "gw-0");
    settings.expiry_grace = Duration::ZERO;
    let recorder =
        Recorder::open(settings, vec![target(env, bucket, env.moto.endpoint(), 1 << 20)])
            .await
            .unwrap();
    let mut handle = session();
    handle.start.credentials_expire = Timestamp::now().checked_add(Duration::from_secs(1)).unwrap();
    recorder.append(&handle, request("c1", "s3:ListBuckets", Body::empty())).await.unwrap();
    let started = Instant::now();
    while recorder.status().open_streams > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the stream was not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = recorder.append(&handle, request("c2", "s3:ListBuckets", Body::empty())).await;
    recorder.shutdown().await;

    assert!(matches!(late, Err(RecordError::SessionEnded { .. })), "{late:?}");
    let report = verify(&download_session(env, bucket, &handle.session).await);
    assert!(report.is_valid(), "{:#?}", report.problems);
    assert_eq!(report.streams[0].status, Some(StreamStatus::Closed));
    assert!(matches!(
        events(&report).last(),
        Some(EventBody::SessionEnd(end)) if end.reason == EndReason::Expired
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_that_crashed_after_uploading_segments_and_digests_continues_both_on_recovery() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-recovery-mid";
    create_bucket(env, bucket).await;
    let spool = tempfile::tempdir().unwrap();
    let targets = vec![target(env, bucket, env.moto.endpoint(), 1 << 20)];
    let handle = session();
    let mut crashing = settings(spool.path(), "gw-0");
    crashing.digest_interval = Duration::from_millis(700);
    {
        let recorder = Recorder::open(crashing.clone(), targets.clone()).await.unwrap();
        for i in 0..30 {
            let body = Body::complete(format!(r#"{{"Key":"k{i}"}}"#).as_bytes());
            recorder
                .append(&handle, request(&format!("c{i}"), "s3:GetObject", body))
                .await
                .unwrap();
        }
        wait_for_uploads(&recorder, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(1600)).await; // at least two digests
        assert!(recorder.metrics().snapshot().segments_uploaded_total >= 2);
        drop(recorder);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let recorder = Recorder::open(crashing, targets).await.unwrap();
    wait_for_uploads(&recorder, Duration::from_secs(60)).await;
    recorder.shutdown().await;

    let objects = download_session(env, bucket, &handle.session).await;
    let digests = objects.keys().filter(|k| k.contains("/_digests/")).count();
    assert!(digests >= 3, "{digests} digests");
    let report = verify(&objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    assert_eq!(report.streams[0].status, Some(StreamStatus::Recovered));
    let requests = events(&report).iter().filter(|e| matches!(e, EventBody::Request(_))).count();
    assert_eq!(requests, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_writes_a_digest_every_interval_even_when_nothing_was_uploaded() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-digests";
    create_bucket(env, bucket).await;
    let spool = tempfile::tempdir().unwrap();
    let mut settings = settings(spool.path(), "gw-0");
    settings.digest_interval = Duration::from_millis(500);
    let recorder =
        Recorder::open(settings, vec![target(env, bucket, env.moto.endpoint(), 1 << 20)])
            .await
            .unwrap();
    let handle = session();
    recorder.append(&handle, request("c1", "s3:ListBuckets", Body::empty())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let while_open = download_session(env, bucket, &handle.session).await;
    recorder.shutdown().await;

    let open_digests = while_open.keys().filter(|k| k.contains("/_digests/")).count();
    assert!(open_digests >= 3, "{open_digests} digests after 1.8 s at 0.5 s intervals");
    assert!(!while_open.keys().any(|k| k.ends_with(".jsonl.zst")), "nothing was cut yet");
    let report = verify(&download_session(env, bucket, &handle.session).await);
    assert!(report.is_valid(), "{:#?}", report.problems);
    // Shutdown adds the closing digest; an interval digest may also land between the download
    // above and the shutdown, so the count is at least one more, not exactly one more.
    assert!(
        report.streams[0].digests > open_digests,
        "{} digests after shutdown, {open_digests} while open",
        report.streams[0].digests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_objects_carry_the_policys_object_lock_retention_and_encryption() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-object-lock";
    let admin = s3_client(env.moto.endpoint(), &env.moto.gateway_user);
    admin
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("bucket with Object Lock is created");
    let mut locked = target(env, bucket, env.moto.endpoint(), 1 << 20);
    locked.policy.object_lock = Some(chaperone_crds::ObjectLock {
        mode: chaperone_crds::ObjectLockMode::Governance,
        days: 2,
    });
    locked.policy.s3.server_side_encryption =
        Some(chaperone_crds::ServerSideEncryption { kms_key_id: None });
    let spool = tempfile::tempdir().unwrap();
    let recorder = Recorder::open(settings(spool.path(), "gw-0"), vec![locked]).await.unwrap();
    let handle = session();
    recorder.append(&handle, request("c1", "s3:ListBuckets", Body::empty())).await.unwrap();
    recorder.shutdown().await;

    let objects = download_session(env, bucket, &handle.session).await;
    assert!(verify(&objects).is_valid());
    for key in objects.keys() {
        let head = admin.head_object().bucket(bucket).key(key).send().await.unwrap();
        assert_eq!(
            head.object_lock_mode(),
            Some(&aws_sdk_s3::types::ObjectLockMode::Governance),
            "{key}"
        );
        let until = head.object_lock_retain_until_date().expect("retain-until is set").secs();
        let in_two_days = Timestamp::now().unix_nanos() / 1_000_000_000 + 2 * 86_400;
        assert!((until as i128 - in_two_days).abs() < 600, "{key}: retain until {until}");
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_recording_one_session_write_separate_streams_that_verify_together() {
    let env = env();
    let _logs = env.logs_on_failure();
    let bucket = "rec-replicas";
    create_bucket(env, bucket).await;
    let targets = vec![target(env, bucket, env.moto.endpoint(), 1 << 20)];
    let (spool_a, spool_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Recorder::open(settings(spool_a.path(), "gw-a"), targets.clone()).await.unwrap();
    let b = Recorder::open(settings(spool_b.path(), "gw-b"), targets).await.unwrap();
    let handle = session();
    for i in 0..6 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let call = format!("c{i}");
        replica.append(&handle, request(&call, "s3:ListBuckets", Body::empty())).await.unwrap();
        replica.append(&handle, response(&call, Body::empty())).await.unwrap();
    }
    a.shutdown().await;
    b.shutdown().await;

    let report = verify(&download_session(env, bucket, &handle.session).await);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let replicas: Vec<&str> = report.streams.iter().map(|s| s.stream.replica()).collect();
    assert_eq!(replicas, ["gw-a", "gw-b"]);
    assert!(report.streams.iter().all(|s| s.events.len() == 1 + 6 + 1));
}
