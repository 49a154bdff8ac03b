//! The local API server mints real projected service-account tokens, verifiable against its JWKS.

use chaperone_tests::{LocalEnv, objects::ensure_namespace};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde_json::Value;

async fn token_for(client: &Client, namespace: &str, sa: &str, audience: &str) -> String {
    ensure_namespace(client, namespace).await.unwrap();
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some(sa.into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating service account {sa}: {e}"),
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.into()],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer: TokenRequest = api
        .create_subresource("token", sa, &PostParams::default(), &request)
        .await
        .expect("TokenRequest is answered");
    answer.status.expect("TokenRequest has a status").token
}

async fn jwks(client: &Client) -> JwkSet {
    let request = http::Request::get("/openid/v1/jwks").body(Vec::new()).unwrap();
    serde_json::from_str(&client.request_text(request).await.expect("JWKS is served"))
        .expect("JWKS parses")
}

fn validation(issuer: &str, audience: &str, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation
}

#[tokio::test]
async fn token_request_with_chaperone_audience_verifies_against_the_api_servers_jwks() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    let token = token_for(&client, "tokens", "pr-bot", "chaperone.dev").await;

    let header = decode_header(&token).unwrap();
    let kid = header.kid.clone().expect("projected tokens carry a kid");
    let keys = jwks(&client).await;
    let jwk = keys.find(&kid).expect("the token's kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();

    let claims = decode::<Value>(
        &token,
        &key,
        &validation(env.control_plane.issuer(), "chaperone.dev", header.alg),
    )
    .expect("the token verifies with the issuer's own key")
    .claims;
    assert_eq!(claims["sub"], "system:serviceaccount:tokens:pr-bot");
    assert_eq!(claims["kubernetes.io"]["namespace"], "tokens");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "pr-bot");
    assert_eq!(claims["aud"], serde_json::json!(["chaperone.dev"]));

    // The same token is refused for another audience, and once a byte of it changes.
    assert!(
        decode::<Value>(
            &token,
            &key,
            &validation(env.control_plane.issuer(), "sts.amazonaws.com", header.alg)
        )
        .is_err()
    );
    let mut tampered = token.clone().into_bytes();
    let middle = token.find('.').unwrap() + 5;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(
        decode::<Value>(
            &tampered,
            &key,
            &validation(env.control_plane.issuer(), "chaperone.dev", header.alg)
        )
        .is_err()
    );
}

#[tokio::test]
async fn the_issuer_publishes_openid_discovery_pointing_at_its_jwks() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    let request = http::Request::get("/.well-known/openid-configuration").body(Vec::new()).unwrap();
    let discovery: Value =
        serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(discovery["issuer"], env.control_plane.issuer());
    assert_eq!(discovery["jwks_uri"], format!("{}/openid/v1/jwks", env.control_plane.issuer()));
}

#[tokio::test]
async fn a_user_outside_system_masters_is_subject_to_rbac() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let alice = env.control_plane.client_as("alice", &["sre"]).await.unwrap();
    let api: Api<ServiceAccount> = Api::namespaced(alice, "default");
    match api.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403);
            assert!(e.message.contains("\"alice\""), "RBAC names the user: {}", e.message);
        }
        other => panic!("alice should be forbidden without a RoleBinding: {other:?}"),
    }
}
