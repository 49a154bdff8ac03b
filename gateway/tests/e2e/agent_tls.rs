//! The agents' port over TLS: each real client verifies the gateway's certificate with the CA the
//! pod webhook injects, refuses the gateway by its own verification without it, and a rotated
//! certificate is served without a restart while calls go on.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common;

use chaperone_tests::{
    LocalEnv,
    clients::{first_failure, node_s3_session, rust_s3_session},
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

/// The CA variables the webhook injects.
const CA_VARIABLES: [&str; 3] = ["AWS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "SSL_CERT_DIR"];

fn without_ca(agent: &[(String, String)]) -> Vec<(String, String)> {
    agent.iter().filter(|(k, _)| !CA_VARIABLES.contains(&k.as_str())).cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_the_gateways_ca_is_refused_by_its_own_certificate_verification() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway =
        GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-tls")).await.unwrap();
    assert!(gateway.endpoint.starts_with("https://"), "{}", gateway.endpoint);
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();

    // With the injected CA: verified, and through.
    let (ok, out, err) = aws_cli(env, &agent, &["sts", "get-caller-identity"]);
    assert!(ok && out.contains("e2e-tls/prod-aws/pr-bot"), "{err}\n{}", gateway.log());

    // Without it, each client's own verification refuses the gateway.
    let bare = without_ca(&agent);
    let (ok, _, err) = aws_cli(env, &bare, &["sts", "get-caller-identity"]);
    assert!(!ok && err.contains("CERTIFICATE_VERIFY_FAILED"), "AWS CLI: {err}");
    eprintln!("AWS CLI without the CA: {err}");

    let node = &env.provisioned.node;
    let steps = node_s3_session(node, &bare, "tls-node-no-ca", None).await.unwrap();
    let failure = first_failure(&steps).expect("the JavaScript SDK must fail").clone();
    let message = failure.message.unwrap_or_default();
    assert!(
        message.contains("self-signed certificate") || message.contains("unable to verify"),
        "JavaScript SDK: {message}"
    );
    eprintln!("JavaScript SDK without the CA: {message}");

    let steps = rust_s3_session(&bare, "tls-rust-no-ca").await.unwrap();
    let failure = first_failure(&steps).expect("the Rust SDK must fail").clone();
    let message = failure.message.unwrap_or_default();
    assert!(message.contains("UnknownIssuer"), "Rust SDK: {message}");
    eprintln!("Rust SDK without the CA: {message}");

    // Another namespace's CA does not verify this gateway either.
    let other = GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-tls-other"))
        .await
        .unwrap();
    let other_agent = other.agent_env(env, "pr-bot").await.unwrap();
    let mut crossed = agent.clone();
    for (key, value) in crossed.iter_mut() {
        if let Some((_, theirs)) = other_agent.iter().find(|(k, _)| k == key)
            && CA_VARIABLES.contains(&key.as_str())
        {
            *value = theirs.clone();
        }
    }
    let (ok, _, err) = aws_cli(env, &crossed, &["sts", "get-caller-identity"]);
    assert!(!ok && err.contains("CERTIFICATE_VERIFY_FAILED"), "AWS CLI with another CA: {err}");
    assert!(gateway.log().contains("TLS handshake with an agent failed"), "{}", gateway.log());
}

/// The certificate the gateway presents to a new handshake (verified against its CA).
fn served_certificate(gateway: &GatewayProcess) -> Vec<u8> {
    let certificates = gateway.certificates.as_ref().expect("a TLS gateway");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certificates.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(common::authority(gateway)).unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp).unwrap();
    }
    connection.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_certificate_is_served_without_a_restart_while_calls_go_on() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut gateway =
        GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-tls-rotate"))
            .await
            .unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let first = gateway.certificates.as_ref().unwrap().cert_pem().to_owned();
    assert_eq!(served_certificate(&gateway), der(&first));
    let pid = gateway.pid();

    // An agent keeps calling through the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let stop = stop.clone();
        let agent = agent.clone();
        std::thread::spawn(move || {
            let mut results = Vec::new();
            while !stop.load(Ordering::SeqCst) || results.len() < 2 {
                results.push(aws_cli(env, &agent, &["sts", "get-caller-identity"]));
            }
            results
        })
    };

    let rotated = gateway.rotate_certificate().unwrap();
    assert_ne!(rotated, first);
    let started = Instant::now();
    while served_certificate(&gateway) != der(&rotated) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rotated certificate was not served:\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    // Calls after the new certificate is served, verified with the same injected CA.
    let (ok, _, err) = aws_cli(env, &agent, &["sts", "get-caller-identity"]);
    assert!(ok, "after rotation: {err}");
    let results = caller.join().unwrap();
    for (ok, _, err) in &results {
        assert!(ok, "a call during the rotation failed: {err}\n{}", gateway.log());
    }
    assert_eq!(gateway.pid(), pid, "no restart");
    assert!(gateway.log().contains("serving the changed TLS certificate"), "{}", gateway.log());
}
