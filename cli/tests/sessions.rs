//! `kubectl chaperone sessions list|show|verify` against moto (signature checking on), reading
//! with the auditor's read-only keys what the gateway's keys wrote.

mod support;

use std::io::Write;
use std::time::Duration;

use chaperone_recording::SessionLocation;
use support::{
    RecordedSession, SessionSpec, auditor, bucket_name, call, denied, public_key, put, record,
    run_as, s3_client, upload,
};

/// Three sessions in two namespaces: one of them served by two replicas.
fn three_sessions() -> [RecordedSession; 3] {
    let deploy = record(
        &SessionSpec::new("team-a", "prod", "pr-bot")
            .replica(
                "gw-0",
                vec![
                    call("s3:PutObject", "arn:aws:s3:::prod-data/report.csv", 200),
                    call("s3:DeleteBucket", "arn:aws:s3:::scratch", 204),
                    call("s3:GetObject", "arn:aws:s3:::prod-data/report.csv", 404),
                ],
            )
            .age(Duration::from_secs(10 * 60)),
    );
    let docs = record(
        &SessionSpec::new("team-a", "staging", "docs-bot")
            .replica(
                "gw-0",
                vec![call("dynamodb:Query", "arn:aws:dynamodb:us-east-1:1:table/docs", 200)],
            )
            .age(Duration::from_secs(3 * 3600)),
    );
    let replicated = record(
        &SessionSpec::new("team-b", "prod", "pr-bot")
            .replica(
                "gw-0",
                vec![
                    call("sts:GetCallerIdentity", "*", 200),
                    denied("iam:CreateUser", "arn:aws:iam::1:user/eve"),
                ],
            )
            .replica("gw-1", vec![call("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:jobs", 200)])
            .age(Duration::from_secs(20 * 60)),
    );
    [deploy, docs, replicated]
}

fn listed(stdout: &str, sessions: &[&RecordedSession]) -> Vec<bool> {
    sessions.iter().map(|s| stdout.contains(&s.id)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_every_session_and_each_filter_narrows_it() {
    let env = support::environment();
    let _logs = env.logs_on_failure();
    let bucket = bucket_name("list");
    let [deploy, docs, replicated] = three_sessions();
    upload(env, &bucket, &[&deploy, &docs, &replicated]).await;
    let all = [&deploy, &docs, &replicated];

    let run = auditor(env, &bucket, &["sessions", "list"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(listed(&run.stdout, &all), [true, true, true], "{}", run.stdout);
    let header = run.stdout.lines().next().unwrap_or_default();
    for column in
        ["SESSION", "NAMESPACE", "CONNECTION", "AGENT", "POD", "STARTED", "CALLS", "STATUS"]
    {
        assert!(header.contains(column), "{header}");
    }
    let deploy_line = run.stdout.lines().find(|l| l.contains(&deploy.id)).unwrap_or_default();
    for cell in ["team-a", "prod", "pr-bot", "agent-pod-1", " 3 ", "closed"] {
        assert!(deploy_line.contains(cell), "{cell:?} missing from {deploy_line:?}");
    }

    let filters: [(&[&str], [bool; 3]); 8] = [
        (&["--namespace", "team-a"], [true, true, false]),
        (&["-n", "team-b"], [false, false, true]),
        (&["--connection", "staging"], [false, true, false]),
        (&["--agent", "docs-bot"], [false, true, false]),
        (&["--since", "1h"], [true, false, true]),
        (&["--until", "2h"], [false, true, false]),
        (&["--action", "s3:Delete*"], [true, false, false]),
        (&["--action", "iam:*", "--since", "1h"], [false, false, true]),
    ];
    for (flags, expected) in filters {
        let mut args = vec!["sessions", "list"];
        args.extend_from_slice(flags);
        let run = auditor(env, &bucket, &args);
        assert_eq!(run.code, Some(0), "{flags:?}: {run:?}");
        assert_eq!(listed(&run.stdout, &all), expected, "{flags:?}:\n{}", run.stdout);
    }

    let run = auditor(env, &bucket, &["sessions", "list", "-o", "json"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let sessions: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("list -o json is JSON");
    let entry = sessions
        .as_array()
        .and_then(|a| a.iter().find(|s| s["session"] == replicated.id.as_str()))
        .expect("the replicated session is listed");
    assert_eq!(entry["calls"], 3);
    assert_eq!(entry["denied"], 1);
    assert_eq!(entry["agent"]["service_account"], "pr-bot");
    assert_eq!(entry["replicas"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn show_prints_every_call_with_its_action_and_status_replicas_merged_by_time() {
    let env = support::environment();
    let _logs = env.logs_on_failure();
    let bucket = bucket_name("show");
    let [deploy, _, replicated] = three_sessions();
    upload(env, &bucket, &[&deploy, &replicated]).await;

    let run = auditor(env, &bucket, &["sessions", "show", &deploy.id]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let calls: Vec<&str> =
        run.stdout.lines().skip_while(|l| !l.starts_with("TIME")).skip(1).collect();
    assert_eq!(calls.len(), 3, "{}", run.stdout);
    for (line, (operation, action, status)) in calls.iter().zip([
        ("PutObject", "s3:PutObject", "200"),
        ("DeleteBucket", "s3:DeleteBucket", "204"),
        ("GetObject", "s3:GetObject", "404"),
    ]) {
        for cell in [operation, action, status, "allow", "2.5ms"] {
            assert!(line.contains(cell), "{cell:?} missing from {line:?}");
        }
    }
    assert!(run.stdout.contains("Agent:       pr-bot (pod agent-pod-1"), "{}", run.stdout);
    assert!(run.stdout.contains("Connection:  team-a/prod"), "{}", run.stdout);

    let run = auditor(env, &bucket, &["sessions", "show", &replicated.id]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let calls: Vec<&str> =
        run.stdout.lines().skip_while(|l| !l.starts_with("TIME")).skip(1).collect();
    assert_eq!(calls.len(), 3, "{}", run.stdout);
    // gw-0 records at whole seconds, gw-1 100 ms later: merged, they alternate.
    assert!(calls[0].contains("gw-0") && calls[0].contains("sts:GetCallerIdentity"), "{calls:?}");
    assert!(calls[1].contains("gw-1") && calls[1].contains("sqs:SendMessage"), "{calls:?}");
    assert!(calls[2].contains("gw-0") && calls[2].contains("iam:CreateUser"), "{calls:?}");
    assert!(
        calls[2].contains("403 AccessDenied") && calls[2].contains("deny (policy.deny[0]: iam:*")
    );

    let run = auditor(env, &bucket, &["sessions", "show", &replicated.id, "--replica", "gw-1"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("sqs:SendMessage") && !run.stdout.contains("iam:CreateUser"));

    let run = auditor(env, &bucket, &["sessions", "show", &replicated.id, "-o", "json"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is an event"))
        .collect();
    // gw-0: start, request+response, denied, end; gw-1: start, request+response, end.
    assert_eq!(events.len(), 9, "{}", run.stdout);
    let times: Vec<&str> = events.iter().filter_map(|e| e["ts"].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "merged by time: {times:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_an_intact_session_read_with_the_auditors_read_only_keys() {
    let env = support::environment();
    let _logs = env.logs_on_failure();
    let bucket = bucket_name("verify-intact");
    let [deploy, _, replicated] = three_sessions();
    upload(env, &bucket, &[&deploy, &replicated]).await;

    let key = public_key();
    let run = auditor(env, &bucket, &["sessions", "verify", &deploy.id, "--public-key", &key]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("intact"), "{}", run.stdout);

    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    writeln!(file, "# the fixtures' key\n\n{key}").expect("write keys");
    let path = file.path().to_string_lossy().into_owned();
    let run =
        auditor(env, &bucket, &["sessions", "verify", &replicated.id, "--public-keys-file", &path]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("gw-0 closed") && run.stdout.contains("gw-1 closed"),
        "{}",
        run.stdout
    );

    let other = chaperone_recording::signing::encode_public_key(
        &chaperone_recording::RecordingSigner::from_seed(&[7; 32]).verifying_key(),
    );
    let run = auditor(env, &bucket, &["sessions", "verify", &deploy.id, "--public-key", &other]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("not among the trusted keys"), "{}", run.stdout);
}

/// Uploads `session`, applies `tamper` with the gateway's keys, and returns what verify printed.
async fn verify_after(
    test: &str,
    tamper: impl AsyncFnOnce(&aws_sdk_s3::Client, &str, &RecordedSession),
) -> support::Run {
    let env = support::environment();
    let bucket = bucket_name(test);
    let session = record(&SessionSpec::new("team-a", "prod", "pr-bot").replica(
        "gw-0",
        vec![
            call("s3:PutObject", "arn:aws:s3:::prod-data/a", 200),
            call("s3:PutObject", "arn:aws:s3:::prod-data/b", 200),
            call("s3:DeleteObject", "arn:aws:s3:::prod-data/a", 204),
            call("s3:ListBucket", "arn:aws:s3:::prod-data", 200),
        ],
    ));
    upload(env, &bucket, &[&session]).await;
    let s3 = s3_client(env, &env.moto.gateway_user);
    tamper(&s3, &bucket, &session).await;
    auditor(env, &bucket, &["sessions", "verify", &session.id, "--public-key", &public_key()])
}

fn segment_key(session: &RecordedSession, index: u32) -> String {
    stream(&session.location).segment_key(index)
}

fn stream(location: &SessionLocation) -> chaperone_recording::StreamLocation {
    location.stream("gw-0").expect("fixture replica")
}

fn assert_broken(run: &support::Run, needles: &[&str]) {
    assert_eq!(run.code, Some(1), "{run:?}");
    for needle in needles {
        assert!(run.stdout.contains(needle), "{needle:?} missing from:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("NOT intact"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn flipping_one_byte_of_a_segment_fails_verify_naming_the_segment_and_both_hashes() {
    let _logs = support::environment().logs_on_failure();
    let run = verify_after("flip", async |s3, bucket, session| {
        let key = segment_key(session, 1);
        let mut bytes = session.objects[&key].clone();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        put(s3, bucket, &key, bytes).await;
    })
    .await;
    let key = "/gw-0/000001.jsonl.zst: sha256 is ";
    assert_broken(&run, &[key, "lists"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_segment_fails_verify_naming_the_missing_segment() {
    let _logs = support::environment().logs_on_failure();
    let run = verify_after("delete", async |s3, bucket, session| {
        s3.delete_object()
            .bucket(bucket)
            .key(segment_key(session, 2))
            .send()
            .await
            .expect("the gateway deletes");
    })
    .await;
    assert_broken(&run, &["/gw-0/000002.jsonl.zst: segment is missing"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reordering_two_events_fails_verify_naming_the_seq_that_broke() {
    let _logs = support::environment().logs_on_failure();
    let run = verify_after("reorder", async |s3, bucket, session| {
        let key = segment_key(session, 2);
        let text =
            zstd::decode_all(session.objects[&key].as_slice()).expect("segment decompresses");
        let mut lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        lines.swap(0, 1);
        let swapped = zstd::encode_all(lines.concat().as_slice(), 3).expect("recompress");
        put(s3, bucket, &key, swapped).await;
    })
    .await;
    // Segment 2 begins at seq 6 (start + two calls of request and response in segment 1).
    assert_broken(
        &run,
        &["/gw-0/000002.jsonl.zst line 1: expected seq 6, found seq 7", "sha256 is"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_manifest_fails_verify_because_its_signature_no_longer_verifies() {
    let _logs = support::environment().logs_on_failure();
    let run = verify_after("manifest", async |s3, bucket, session| {
        let key = stream(&session.location).manifest_key();
        let text = String::from_utf8(session.objects[&key].clone()).expect("manifest is UTF-8");
        let edited = text.replace("agent-pod-1", "agent-pod-2");
        assert_ne!(edited, text);
        put(s3, bucket, &key, edited.into_bytes()).await;
    })
    .await;
    assert_broken(&run, &["/gw-0/_manifest.json: signature does not verify"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_bucket_the_credentials_and_where_a_session_was_looked_for() {
    let env = support::environment();
    let _logs = env.logs_on_failure();
    let bucket = bucket_name("errors");
    let [deploy, ..] = three_sessions();
    upload(env, &bucket, &[&deploy]).await;

    let run = auditor(env, "no-such-recordings", &["sessions", "list"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("bucket \"no-such-recordings\" does not exist"), "{}", run.stderr);

    let mut impostor = env.moto.auditor_user.clone();
    impostor.secret_access_key = "not-the-secret-of-this-key".into();
    let run = run_as(
        &impostor,
        &["sessions", "list", "--bucket", &bucket, "--endpoint-url", env.moto.endpoint()],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    // moto answers a wrong secret on ListObjectsV2 with AccessDenied; AWS with SignatureDoesNotMatch.
    assert!(
        run.stderr.contains("access denied") || run.stderr.contains("refused access key"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&impostor.access_key_id), "{}", run.stderr);
    assert!(run.stderr.contains("the environment (AWS_ACCESS_KEY_ID)"), "{}", run.stderr);
    assert!(!run.stderr.contains(&impostor.secret_access_key), "{}", run.stderr);

    let outsider = support::user_without_permissions(env, &format!("outsider-{bucket}"));
    let run = run_as(
        &outsider,
        &[
            "sessions",
            "list",
            "--bucket",
            &bucket,
            "--prefix",
            "agents/",
            "--endpoint-url",
            env.moto.endpoint(),
        ],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(&format!("access denied to list s3://{bucket}/agents/v1/")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("access key {}", outsider.access_key_id)),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&outsider.secret_access_key), "{}", run.stderr);

    let absent = chaperone_recording::new_session_id(chaperone_recording::Timestamp::now());
    let run = auditor(env, &bucket, &["sessions", "show", &absent]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(&format!("session {absent} was not found")), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("s3://{bucket}/agents/v1/")), "{}", run.stderr);
    assert!(run.stderr.contains("team-a/prod"), "{}", run.stderr);

    let run = auditor(env, &bucket, &["sessions", "show", "not-a-session"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("UUIDv7"), "{}", run.stderr);

    let run = auditor(env, &bucket, &["sessions", "verify", &deploy.id]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no trusted public keys"), "{}", run.stderr);
    assert!(run.stderr.contains("never trusted"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_policy_and_an_agent_connections_keys_are_read_from_the_cluster() {
    use chaperone_crds::{AgentConnection, RecordingPolicy};
    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;
    use kube::api::{Patch, PatchParams, PostParams};

    let env = support::environment();
    let _logs = env.logs_on_failure();
    let bucket = bucket_name("cluster");
    let session = record(
        &SessionSpec::new("team-c", "prod-aws", "pr-bot")
            .replica("gw-0", vec![call("s3:ListBuckets", "*", 200)]),
    );
    let elsewhere = record(
        &SessionSpec::new("team-d", "prod-aws", "pr-bot")
            .replica("gw-0", vec![call("s3:ListBuckets", "*", 200)]),
    );
    upload(env, &bucket, &[&session, &elsewhere]).await;

    let client = env.control_plane.client().await.expect("admin client");
    chaperone_tests::env::install_crds(&client).await.expect("CRDs install");
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "team-c"}}))
            .expect("namespace");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt("team-c").await.expect("get namespace").is_none() {
        namespaces.create(&PostParams::default(), &namespace).await.expect("namespace created");
    }
    let policy: RecordingPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "chaperone.dev/v1alpha1",
        "kind": "RecordingPolicy",
        "metadata": {"name": "audit", "namespace": "team-c"},
        "spec": {
            "s3": {"bucket": bucket, "prefix": "agents/", "region": "us-east-1", "endpoint": env.moto.endpoint()},
            "retention": {"days": 30}
        }
    }))
    .expect("policy");
    Api::<RecordingPolicy>::namespaced(client.clone(), "team-c")
        .create(&PostParams::default(), &policy)
        .await
        .expect("RecordingPolicy created");
    let connection: AgentConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "chaperone.dev/v1alpha1",
        "kind": "AgentConnection",
        "metadata": {"name": "prod-aws", "namespace": "team-c"},
        "spec": {
            "agents": {"serviceAccounts": ["pr-bot"]},
            "aws": {"region": "us-east-1", "credentials": {"secretRef": {"name": "aws-prod"}}},
            "policy": {"allow": ["s3:*"]},
            "recordingPolicyRef": {"name": "audit"},
            "session": {"maxDurationSeconds": 3600}
        }
    }))
    .expect("connection");
    let connections = Api::<AgentConnection>::namespaced(client.clone(), "team-c");
    connections.create(&PostParams::default(), &connection).await.expect("AgentConnection created");
    connections
        .patch_status(
            "prod-aws",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"recordingPublicKeys": [public_key()]}})),
        )
        .await
        .expect("status patched");

    let kubeconfig = env.control_plane.admin_kubeconfig().to_string_lossy().into_owned();
    let from_cluster = ["--recording-policy", "audit", "-n", "team-c", "--kubeconfig", &kubeconfig];
    let auditor = &env.moto.auditor_user;

    let mut args = vec!["sessions", "list"];
    args.extend(from_cluster);
    let run = run_as(auditor, &args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(&session.id), "{}", run.stdout);
    assert!(
        !run.stdout.contains(&elsewhere.id),
        "limited to the policy's namespace: {}",
        run.stdout
    );
    args.push("--all-namespaces");
    let run = run_as(auditor, &args);
    assert!(
        run.stdout.contains(&session.id) && run.stdout.contains(&elsewhere.id),
        "{}",
        run.stdout
    );

    let mut args = vec!["sessions", "verify", &session.id, "--cluster-keys"];
    args.extend(from_cluster);
    let run = run_as(auditor, &args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("intact"), "{}", run.stdout);

    let run = run_as(
        auditor,
        &[
            "sessions",
            "list",
            "--recording-policy",
            "absent",
            "-n",
            "team-c",
            "--kubeconfig",
            &kubeconfig,
        ],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("RecordingPolicy \"absent\" does not exist in namespace \"team-c\""),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_session_verifies_while_its_digests_keep_up_and_not_once_they_fall_behind_the_grace()
{
    let env = support::environment();
    let _logs = env.logs_on_failure();
    let bucket = bucket_name("live");
    // Issued ten minutes ago; its newest digest is from then: within the default 15 minutes.
    let live = record(
        &SessionSpec::new("team-a", "prod", "pr-bot")
            .replica("gw-0", vec![call("s3:PutObject", "arn:aws:s3:::prod-data/a", 200)])
            .live(),
    );
    upload(env, &bucket, &[&live]).await;
    let key = public_key();

    let run = auditor(env, &bucket, &["sessions", "list"]);
    let line = run.stdout.lines().find(|l| l.contains(&live.id)).unwrap_or_default();
    assert!(line.ends_with("no-manifest"), "{}", run.stdout);

    let run = auditor(env, &bucket, &["sessions", "verify", &live.id, "--public-key", &key]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("gw-0 no-manifest, 1 segments, 1 digests"), "{}", run.stdout);

    // With a five-minute grace, ten minutes without a digest means the end may have been cut off.
    let run = auditor(
        env,
        &bucket,
        &["sessions", "verify", &live.id, "--public-key", &key, "--grace", "5m"],
    );
    assert_broken(&run, &["newer digests, and the segments they list, may have been deleted"]);
}
