//! Shared by the gateway's end-to-end tests: reading back what the gateway recorded, as an
//! auditor would (the auditor's read-only keys), and verifying it.

#![allow(dead_code)]

use std::{collections::BTreeMap, path::Path};

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
};
use chaperone_recording::{
    Event, EventBody, RecordingSigner, SegmentReader, SessionVerifier, Timestamp, TrustedKeys,
    VerificationReport, VerifyOptions,
};
use chaperone_tests::{LocalEnv, gateway::GatewayProcess};

/// The `chaperone-gateway` binary under test.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaperone-gateway"))
}

/// An S3 client with the auditor's read-only keys.
pub fn auditor_s3(env: &LocalEnv) -> Client {
    let user = &env.moto.auditor_user;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(env.moto.endpoint())
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &user.access_key_id,
            &user.secret_access_key,
            None,
            None,
            "auditor",
        ))
        .build();
    Client::from_conf(config)
}

/// Every object of the gateway's recording bucket, by key.
pub async fn recorded_objects(
    env: &LocalEnv,
    gateway: &GatewayProcess,
) -> BTreeMap<String, Vec<u8>> {
    let s3 = auditor_s3(env);
    let bucket = &gateway.spec.recording_bucket;
    let mut objects = BTreeMap::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.expect("the auditor can list the recording bucket");
        for object in page.contents() {
            let key = object.key().unwrap_or_default().to_owned();
            let body = s3.get_object().bucket(bucket).key(&key).send().await.expect("get object");
            let bytes = body.body.collect().await.expect("read object").into_bytes().to_vec();
            objects.insert(key, bytes);
        }
    }
    objects
}

/// The verifier's report over every session in `objects` (verified one session at a time),
/// trusting only the gateway's own recording key.
pub fn verify(gateway: &GatewayProcess, objects: &BTreeMap<String, Vec<u8>>) -> VerificationReport {
    let mut keys = TrustedKeys::new();
    keys.insert(RecordingSigner::from_seed(&gateway.recording_seed).verifying_key());
    let verifier = SessionVerifier::new(keys, VerifyOptions::at(Timestamp::now()));
    let mut sessions: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for (key, bytes) in objects {
        // <prefix>/v1/<ns>/<connection>/<yyyy>/<mm>/<dd>/<session>/...
        let session: String = key.split('/').take(8).collect::<Vec<_>>().join("/");
        sessions.entry(session).or_default().insert(key.clone(), bytes.clone());
    }
    assert!(!sessions.is_empty(), "no recording objects at all");
    let mut merged: Option<VerificationReport> = None;
    for session_objects in sessions.values() {
        let report = verifier.verify(session_objects);
        match &mut merged {
            None => merged = Some(report),
            Some(all) => {
                all.problems.extend(report.problems);
                all.streams.extend(report.streams);
            }
        }
    }
    merged.expect("at least one session")
}

/// Every event in the segments of `objects`, in key order.
pub fn events(objects: &BTreeMap<String, Vec<u8>>) -> Vec<Event> {
    objects
        .iter()
        .filter(|(key, _)| key.ends_with(".jsonl.zst"))
        .flat_map(|(key, bytes)| {
            SegmentReader::read_all(bytes)
                .unwrap_or_else(|e| panic!("segment {key} reads: {e}"))
                .into_iter()
                .map(|r| r.event)
        })
        .collect()
}

/// The IAM actions of every forwarded request, in order.
pub fn requested_actions(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Request(r) => r.aws.actions.first().cloned(),
            _ => None,
        })
        .collect()
}

/// The IAM actions of every denied call, in order.
pub fn denied_actions(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Denied(d) => d.aws.actions.first().cloned(),
            _ => None,
        })
        .collect()
}

/// A plain-HTTP GET (the admin port), returning status line and body.
pub fn http_get(base: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("admin port reachable");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// The connector of [`agent_client`]: https verified against the gateway's CA, or plain http.
pub type AgentConnector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// A raw HTTP client of the gateway's agents' port, as an agent's HTTP stack would be: it
/// verifies the gateway's certificate against the gateway's CA (and nothing else), or speaks
/// plain HTTP to a `--plaintext` gateway.
pub fn agent_client<B>(
    gateway: &GatewayProcess,
) -> hyper_util::client::legacy::Client<AgentConnector, B>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let mut roots = rustls::RootCertStore::empty();
    if let Some(certificates) = &gateway.certificates {
        for cert in
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
                certificates.ca_pem().as_bytes(),
            )
        {
            roots.add(cert.expect("the gateway's CA PEM")).expect("the gateway's CA");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// `host:port` of the gateway's agents' endpoint (its `Host` header).
pub fn authority(gateway: &GatewayProcess) -> String {
    gateway.endpoint.trim_start_matches("https://").trim_start_matches("http://").to_owned()
}
