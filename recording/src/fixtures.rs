//! Sample events and recorded streams for tests.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::digest::DigestChain;
use crate::event::*;
use crate::hash::Hash256;
use crate::layout::{SessionLocation, StreamLocation};
use crate::manifest::Manifest;
use crate::segment::SegmentWriter;
use crate::signing::RecordingSigner;
use crate::timestamp::Timestamp;

pub(crate) const SESSION: &str = "019abc00-0000-7000-8000-000000000001";

pub(crate) fn ts(secs: u64) -> Timestamp {
    Timestamp::parse("2026-11-25T17:00:00Z")
        .unwrap()
        .checked_add(Duration::from_secs(secs))
        .unwrap()
}

pub(crate) fn request(call: &str) -> Request {
    Request {
        call: call.into(),
        method: "PUT".into(),
        path: "/bucket/key".into(),
        query: vec![("x-id".into(), "PutObject".into())],
        headers: vec![("host".into(), "10.0.0.1:8080".into())],
        body: Body::complete(b"hello"),
        aws: AwsCall {
            service: "s3".into(),
            operation: "PutObject".into(),
            actions: vec!["s3:PutObject".into()],
            resources: vec!["arn:aws:s3:::bucket/key".into()],
        },
        decision: Decision {
            effect: Effect::Allow,
            object: Some("AgentConnection/team-a/prod".into()),
            rule: Some("policy.allow[0]: s3:*".into()),
        },
        timings: Timings { decide_us: Some(42), ..Timings::default() },
        redacted: vec![],
    }
}

pub(crate) fn response(call: &str) -> Response {
    Response {
        call: call.into(),
        status: Some(200),
        headers: vec![("etag".into(), "\"abc\"".into())],
        body: Body::empty(),
        timings: Timings { total_us: Some(900), ..Timings::default() },
        upstream_error: None,
        redacted: vec![],
        request_body: None,
    }
}

pub(crate) fn session_start() -> SessionStart {
    SessionStart {
        connection: "prod".into(),
        agent: AgentIdentity {
            namespace: "team-a".into(),
            service_account: "pr-bot".into(),
            pod_name: "pr-bot-7d9f".into(),
            pod_uid: "5f0c".into(),
            role_session_name: "pr-bot".into(),
        },
        credentials_expire: ts(3600),
    }
}

pub(crate) fn signer() -> RecordingSigner {
    RecordingSigner::from_seed(&[42; 32])
}

pub(crate) fn stream(replica: &str) -> StreamLocation {
    SessionLocation::new("agents/", "team-a", "prod", ts(0).date(), SESSION)
        .unwrap()
        .stream(replica)
        .unwrap()
}

/// A closed stream of three segments (3 calls each, plus start and end), its manifest and
/// digests (one per segment, the last one final), as the objects a gateway uploads.
pub(crate) fn closed_stream(replica: &str) -> BTreeMap<String, Vec<u8>> {
    recorded_stream(replica, Some(EndReason::Expired))
}

/// Like [`closed_stream`], ended for `end`; or, for `None`, still live: no `session.end`, no
/// manifest, no final digest.
pub(crate) fn recorded_stream(replica: &str, end: Option<EndReason>) -> BTreeMap<String, Vec<u8>> {
    let closed = end.is_some();
    let reason = end.unwrap_or(EndReason::Expired);
    let location = stream(replica);
    let signer = signer();
    let mut objects = BTreeMap::new();
    let mut writer = SegmentWriter::new(SESSION, replica);
    let mut manifest = Manifest::new(&location, &session_start(), ts(0), writer.head());
    let mut digests = DigestChain::new(&location, ts(0));
    let mut clock = 0;
    writer.append(ts(clock), EventBody::SessionStart(session_start())).unwrap();
    for segment in 0..3u64 {
        for call in 0..3u64 {
            clock += 1;
            let id = format!("c-{segment}-{call}");
            writer.append(ts(clock), EventBody::Request(request(&id))).unwrap();
            writer.append(ts(clock), EventBody::Response(response(&id))).unwrap();
        }
        if closed && segment == 2 {
            clock += 1;
            writer.append(ts(clock), EventBody::SessionEnd(SessionEnd { reason })).unwrap();
        }
        let finished = writer.finish_segment().unwrap().unwrap();
        objects.insert(location.segment_key(finished.index), finished.bytes.clone());
        manifest.add_segment(finished.entry.clone());
        digests.record_segment(finished.entry);
        if closed && segment == 2 {
            manifest.close(reason, ts(clock));
            let bytes = manifest.sign(&signer, ts(clock)).unwrap();
            digests.record_manifest(Hash256::of(&bytes));
            objects.insert(location.manifest_key(), bytes);
        }
        clock += 1;
        let digest = digests.emit(ts(clock), closed && segment == 2, &signer).unwrap();
        objects.insert(location.digest_key(digest.n), digest.bytes);
    }
    objects
}
