//! The audit API against the real kube-apiserver with its aggregation layer, and moto as S3: the
//! operator's audit API is served in-process on a non-loopback address, registered as the
//! APIService v1alpha1.audit.chaperone.dev, and reached through the API server, which
//! authenticates and authorizes every read with RBAC. Each read lands in the namespace's signed
//! access log in the bucket, and in the Kubernetes audit log.

// The fixtures serve several test binaries; this one uses part of them.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use chaperone_crds::{Session, SessionEventList, SessionList};
use chaperone_operator::audit_api::AUDIT_API_TLS_SECRET;
use chaperone_recording::{TrustedKeys, verify_access_log};
use chaperone_tests::LocalEnv;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use support::audit_api::{
    AuditApiServer, OPERATOR_NAMESPACE, SERVICE, access_log, access_log_key, bind_session_auditor,
    eventually, recorded_namespace,
};
use support::{RecordedSession, SessionSpec, call, denied, record, run_as, s3_client, upload};

const TEAM_A: &str = "audit-team-a";
const TEAM_B: &str = "audit-team-b";
const API: &str = "/apis/audit.chaperone.dev/v1alpha1";
const AUDITOR: &str = "alice-auditor";
const AUDITORS_GROUP: &str = "team-a-auditors";

async fn get_json(client: &Client, path: &str) -> Result<Value, kube::Error> {
    let request = http::Request::get(path).body(Vec::new()).expect("request");
    let text = client.request_text(request).await?;
    Ok(serde_json::from_str(&text).expect("JSON"))
}

fn status_code(result: Result<Value, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A client authenticated by a token the API server minted for `namespace/service_account`.
async fn service_account_client(env: &LocalEnv, admin: &Client, namespace: &str) -> Client {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "pr-bot"}})).unwrap();
    let _ = accounts.create(&PostParams::default(), &account).await;
    let request = TokenRequest {
        spec: TokenRequestSpec { audiences: vec![], ..Default::default() },
        ..Default::default()
    };
    let token = accounts
        .create_subresource::<TokenRequest, TokenRequest>(
            "token",
            "pr-bot",
            &PostParams::default(),
            &request,
        )
        .await
        .expect("a token")
        .status
        .expect("token status")
        .token;
    let kubeconfig = serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": env.control_plane.url(),
            "certificate-authority-data": base64_of(env.control_plane.ca_pem())}}],
        "users": [{"name": "pr-bot", "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "pr-bot"}}],
        "current-context": "local",
    }))
    .unwrap();
    chaperone_tests::control_plane::client_from_kubeconfig(&kubeconfig).await.unwrap()
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn sessions() -> (RecordedSession, RecordedSession) {
    let a = record(&SessionSpec::new(TEAM_A, "prod-aws", "pr-bot").replica(
        "gw-0",
        vec![
            call("s3:PutObject", "arn:aws:s3:::prod-data/report.csv", 200),
            call("s3:GetObject", "arn:aws:s3:::prod-data/report.csv", 200),
            denied("iam:CreateUser", "arn:aws:iam::1:user/eve"),
        ],
    ));
    let b = record(
        &SessionSpec::new(TEAM_B, "prod-aws", "pr-bot")
            .replica("gw-0", vec![call("s3:ListBuckets", "*", 200)]),
    );
    (a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auditor_bound_in_one_namespace_reads_it_through_the_api_server_and_every_read_is_logged()
 {
    let env = support::environment();
    let _logs = env.logs_on_failure();
    let admin = env.control_plane.client().await.unwrap();
    chaperone_tests::env::install_crds(&admin).await.expect("CRDs install");
    let bucket = support::bucket_name("audit-api");
    let (team_a, team_b) = sessions();
    upload(env, &bucket, &[&team_a, &team_b]).await;
    let server = AuditApiServer::start(&admin).await;
    recorded_namespace(env, &admin, TEAM_A, &bucket, &support::public_key()).await;
    recorded_namespace(env, &admin, TEAM_B, &bucket, &support::public_key()).await;

    // RBAC: the auditor may read team-a's sessions only.
    bind_session_auditor(
        &admin,
        TEAM_A,
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": AUDITORS_GROUP}),
    )
    .await;
    let auditor = env.control_plane.client_as(AUDITOR, &[AUDITORS_GROUP]).await.unwrap();

    // list, get, and the events in pages of two.
    let list_path = format!("{API}/namespaces/{TEAM_A}/sessions");
    let list =
        eventually("the auditor's RoleBinding to apply", Duration::from_secs(30), || async {
            get_json(&auditor, &list_path).await.map_err(|e| e.to_string())
        })
        .await;
    let list: SessionList = serde_json::from_value(list).expect("a SessionList");
    let names: Vec<_> = list.items.iter().filter_map(|s| s.metadata.name.clone()).collect();
    assert_eq!(names, std::slice::from_ref(&team_a.id), "team-a's session only");
    let get_path = format!("{API}/namespaces/{TEAM_A}/sessions/{}", team_a.id);
    let session: Session =
        serde_json::from_value(get_json(&auditor, &get_path).await.unwrap()).unwrap();
    assert_eq!(session.kind, "Session");
    assert_eq!(session.metadata.namespace.as_deref(), Some(TEAM_A));
    assert_eq!((session.status.calls, session.status.denied), (3, 1));
    assert_eq!(session.status.connection, "prod-aws");
    assert_eq!(session.status.state, "closed");
    assert_eq!(session.status.agent.as_ref().map(|a| a.service_account.as_str()), Some("pr-bot"));
    assert!(session.status.end.is_some(), "{:?}", session.status);
    assert_eq!(session.status.verification.state, "Verified", "{:?}", session.status.verification);
    let first_page: SessionEventList = serde_json::from_value(
        get_json(&auditor, &format!("{get_path}/events?limit=2")).await.unwrap(),
    )
    .unwrap();
    assert_eq!(first_page.items.len(), 2);
    assert_eq!(first_page.items[0]["type"], "session.start");
    let token = first_page.metadata.continue_.clone().expect("a continue token");
    // In the order the API server passes query parameters on (sorted by name), as logged.
    let rest_path = format!("{get_path}/events?continue={token}&limit=100");
    let rest: SessionEventList =
        serde_json::from_value(get_json(&auditor, &rest_path).await.unwrap()).unwrap();
    assert!(rest.metadata.continue_.is_none());
    assert_eq!(rest.items.last().map(|e| e["type"].clone()), Some(json!("session.end")));
    assert_eq!(
        first_page.items.len() + rest.items.len(),
        7,
        "start, 2 requests and responses, a denial, end"
    );

    // kubectl get sessions asks for a Table.
    let table_request = http::Request::get(&list_path)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
        .body(Vec::new())
        .unwrap();
    let table: Value =
        serde_json::from_str(&auditor.request_text(table_request).await.unwrap()).unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["cells"][0], json!(team_a.id));

    // RBAC refuses team-b to the auditor, and everything to the agent's own ServiceAccount; the
    // API server answers 403 before the operator sees anything.
    assert_eq!(
        status_code(get_json(&auditor, &format!("{API}/namespaces/{TEAM_B}/sessions")).await),
        403
    );
    assert_eq!(
        status_code(
            get_json(&auditor, &format!("{API}/namespaces/{TEAM_B}/sessions/{}", team_b.id)).await
        ),
        403
    );
    let agent = service_account_client(env, &admin, TEAM_A).await;
    assert_eq!(status_code(get_json(&agent, &list_path).await), 403);
    assert_eq!(status_code(get_json(&agent, &get_path).await), 403);

    // Reaching the operator's port directly, even claiming a user in the front proxy's headers,
    // gets 401: only the API server's front-proxy certificate is believed.
    let tls: Secret =
        Api::namespaced(admin.clone(), OPERATOR_NAMESPACE).get(AUDIT_API_TLS_SECRET).await.unwrap();
    let ca = tls.data.unwrap()["ca.crt"].0.clone();
    let host = format!("{SERVICE}.{OPERATOR_NAMESPACE}.svc");
    let address = server.address;
    let direct = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(&host, address)
        .build()
        .unwrap();
    let answer = direct
        .get(format!("https://{host}:{}{list_path}", address.port()))
        .header("X-Remote-User", "system:admin")
        .header("X-Remote-Group", "system:masters")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let body = answer.text().await.unwrap();
    assert!(body.contains("no client certificate"), "{body}");

    // Each of the auditor's reads is in team-a's access log, signed by the key the operator
    // publishes, with the user and groups the API server authenticated; team-b's has none.
    let key = access_log_key(&admin).await;
    let mut trusted = TrustedKeys::new();
    trusted.insert_encoded(&key).unwrap();
    let objects = access_log(env, &bucket, TEAM_A).await;
    let report = verify_access_log(TEAM_A, &objects, &trusted);
    assert!(report.is_valid(), "{:?}", report.problems);
    let reads: Vec<(String, String)> =
        report.entries.iter().map(|e| (e.verb.clone(), e.resource.clone())).collect();
    for (verb, resource) in [
        ("list", list_path.clone()),
        ("get", get_path.clone()),
        ("get", format!("{get_path}/events?limit=2")),
        ("get", rest_path.clone()),
    ] {
        assert!(
            reads.contains(&(verb.to_owned(), resource.clone())),
            "{verb} {resource} missing from {reads:?}"
        );
    }
    for entry in &report.entries {
        assert_eq!(entry.user, AUDITOR);
        assert!(entry.groups.iter().any(|g| g == AUDITORS_GROUP), "{:?}", entry.groups);
    }
    let get_entry = report.entries.iter().find(|e| e.resource == get_path).unwrap();
    assert_eq!(get_entry.sessions, std::slice::from_ref(&team_a.id));
    assert!(access_log(env, &bucket, TEAM_B).await.is_empty(), "no read of team-b was served");

    // The Kubernetes audit log has the read too, with the user.
    let audit = std::fs::read_to_string(env.control_plane.audit_log()).unwrap();
    assert!(
        audit.lines().any(|line| {
            let Ok(event) = serde_json::from_str::<Value>(line) else { return false };
            event["requestURI"] == json!(get_path) && event["user"]["username"] == json!(AUDITOR)
        }),
        "the get of {get_path} by {AUDITOR} is not in {}",
        env.control_plane.audit_log().display()
    );

    // The CLI reads through the API by default, with the kubeconfig's identity...
    let kubeconfig = env.control_plane.write_kubeconfig_for(AUDITOR, &[AUDITORS_GROUP]).unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap();
    let nobody = &env.moto.auditor_user;
    let run = run_as(nobody, &["sessions", "list", "-n", TEAM_A, "--kubeconfig", kubeconfig]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(&team_a.id) && run.stdout.contains("Verified"), "{}", run.stdout);
    let run =
        run_as(nobody, &["sessions", "show", &team_a.id, "-n", TEAM_A, "--kubeconfig", kubeconfig]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("s3:PutObject") && run.stdout.contains("iam:CreateUser"),
        "{}",
        run.stdout
    );
    let run = run_as(
        nobody,
        &["sessions", "verify", &team_a.id, "-n", TEAM_A, "--kubeconfig", kubeconfig],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("Verified"), "{}", run.stdout);
    // kubectl itself (built from k8s.io/kubectl by the environment's provisioning): discovery
    // through the aggregation layer, then the Table's columns.
    let kubectl =
        chaperone_tests::provision::ensure_go_program(chaperone_tests::provision::KUBECTL)
            .expect("kubectl provisioned");
    let output = std::process::Command::new(&kubectl)
        .args(["get", "sessions", "-n", TEAM_A, "--kubeconfig", kubeconfig])
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let header = stdout.lines().next().unwrap_or_default();
    for column in ["NAME", "CONNECTION", "AGENT", "CALLS", "DENIED", "VERIFIED"] {
        assert!(header.contains(column), "{stdout}");
    }
    assert!(stdout.contains(&team_a.id) && stdout.contains("Verified"), "{stdout}");
    let run = run_as(
        nobody,
        &["policy", "suggest", &team_a.id, "-n", TEAM_A, "--kubeconfig", kubeconfig],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("s3:PutObject") && run.stderr.contains("iam:CreateUser"),
        "{run:?}"
    );
    // replay reads through the API too, and relies on the operator's verification; the sandbox
    // (moto, without the recorded buckets) answers differently, which is replay's exit 1.
    let run = run_as(
        nobody,
        &[
            "replay",
            &team_a.id,
            "-n",
            TEAM_A,
            "--kubeconfig",
            kubeconfig,
            "--endpoint",
            env.moto.endpoint(),
        ],
    );
    assert!(run.stdout.contains("verified intact by the operator"), "{run:?}");
    assert!(run.stdout.contains("s3:PutObject") && run.code == Some(1), "{run:?}");
    // ... says which RBAC to ask for when refused ...
    let run = run_as(nobody, &["sessions", "list", "-n", TEAM_B, "--kubeconfig", kubeconfig]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("chaperone-session-auditor"), "{}", run.stderr);
    // ... and --direct keeps the S3 path, with the auditor's own AWS keys.
    let direct_flags =
        ["--bucket", bucket.as_str(), "--prefix", "agents/", "--endpoint-url", env.moto.endpoint()];
    let mut args = vec!["sessions", "list", "--direct", "-n", TEAM_A];
    args.extend(direct_flags);
    let run = run_as(nobody, &args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(&team_a.id), "{}", run.stdout);

    // sessions access-log shows the reads and verifies the chain; a tampered entry fails.
    let mut args = vec!["sessions", "access-log", "-n", TEAM_A, "--access-log-key", &key];
    args.extend(direct_flags);
    let run = run_as(nobody, &args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(AUDITOR) && run.stdout.contains("intact"), "{}", run.stdout);
    let public_key = support::public_key();
    let mut verify_args = vec!["sessions", "verify", &team_a.id, "--direct", "-n", TEAM_A];
    verify_args.extend(["--public-key", &public_key, "--access-log-key", &key]);
    verify_args.extend(direct_flags);
    let run = run_as(nobody, &verify_args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains(&format!("access log of namespace {TEAM_A}: intact")),
        "{}",
        run.stdout
    );
    let (first_key, first) = objects.iter().next().unwrap();
    let forged = String::from_utf8(first.clone()).unwrap().replace(AUDITOR, "someone-else");
    support::put(&s3_client(env, &env.moto.gateway_user), &bucket, first_key, forged.into_bytes())
        .await;
    let run = run_as(nobody, &args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("NOT intact"), "{}", run.stdout);
    // sessions verify --direct checks the namespace's access log too: the session is intact, the
    // log is not.
    let run = run_as(nobody, &verify_args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains(&format!("access log of namespace {TEAM_A}: NOT intact"))
            && run.stdout.contains(&format!("session {}: intact", team_a.id)),
        "{}",
        run.stdout
    );
    let tampered = verify_access_log(TEAM_A, &access_log(env, &bucket, TEAM_A).await, &trusted);
    assert!(!tampered.is_valid());

    server.stop().await;
}

/// Two operator replicas (two writers with the operator's one key) appending to the same
/// namespace's access log at once: conditional writes let one create each entry, the other
/// re-reads and continues, so the log is one chain with every entry once.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_appending_at_once_never_fork_the_access_log() {
    use chaperone_recording::{AccessRecord, RecordingSigner, Timestamp};
    use chaperone_recording_store::{AccessLogWriter, RecordingBucket};

    let env = support::environment();
    let _logs = env.logs_on_failure();
    let bucket = support::bucket_name("access-log-race");
    let s3 = s3_client(env, &env.moto.gateway_user);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let store = RecordingBucket::with_client(s3, &bucket, "agents/", "moto", "the gateway's keys");
    let seed = [9u8; 32];
    let replicas = [
        std::sync::Arc::new(AccessLogWriter::new(RecordingSigner::from_seed(&seed))),
        std::sync::Arc::new(AccessLogWriter::new(RecordingSigner::from_seed(&seed))),
    ];
    let mut appends = tokio::task::JoinSet::new();
    for (r, writer) in replicas.iter().enumerate() {
        for i in 0..8 {
            let writer = writer.clone();
            let store = store.clone();
            appends.spawn(async move {
                let record = AccessRecord {
                    namespace: "race".into(),
                    ts: Timestamp::now(),
                    user: format!("replica-{r}-read-{i}"),
                    groups: vec![],
                    verb: "get".into(),
                    resource: "/apis/audit.chaperone.dev/v1alpha1/namespaces/race/sessions".into(),
                    sessions: vec![],
                };
                writer.append(&store, &record).await.map(|e| e.n)
            });
        }
    }
    let mut numbers = Vec::new();
    while let Some(joined) = appends.join_next().await {
        numbers.push(joined.unwrap().expect("every append lands"));
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<u64>>(), "each entry number was written once");
    let objects = access_log(env, &bucket, "race").await;
    let trusted: TrustedKeys =
        [RecordingSigner::from_seed(&seed).verifying_key()].into_iter().collect();
    let report = verify_access_log("race", &objects, &trusted);
    assert!(report.is_valid(), "{:?}", report.problems);
    let mut users: Vec<_> = report.entries.iter().map(|e| e.user.clone()).collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 16, "no read lost or logged twice");
}
