//! AssumeRoleWithWebIdentity at the gateway against the local API server's real tokens: what it
//! refuses, and how the session credentials it mints open again.
//!
//! The gateway fetches the issuer's JWKS the way it does in a cluster: OIDC discovery at the
//! issuer, TLS verified against the cluster CA, authenticated with a service account's token
//! (TokenRequest) whose service account is bound to `system:service-account-issuer-discovery`.

use std::{io::Write, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chaperone_config::{
    ConnectionAdmission, IdentityConfig, IdentitySource, SessionKey, SessionKeys,
};
use chaperone_gateway::identity::{
    AssumeRoleWithWebIdentityRequest, AssumeRoleWithWebIdentityResult, CallerIdentity, JwksCache,
    SessionError, SessionMinter, StsError, StsErrorCode, StsParameters, TokenValidator,
    WebIdentityExchange,
};
use chaperone_tests::{LocalEnv, objects::ensure_namespace};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{Pod, ServiceAccount},
    rbac::v1::{ClusterRoleBinding, RoleRef, Subject},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};
use serde_json::{Value, json};
use tempfile::{NamedTempFile, TempDir};
use time::{Duration, OffsetDateTime};

const GATEWAY_NAMESPACE: &str = "identity-a";
const OTHER_NAMESPACE: &str = "identity-b";
const CONNECTION: &str = "prod-aws";
const ADMITTED: &str = "pr-bot";
const NOT_ADMITTED: &str = "intruder";
const AUDIENCE: &str = "chaperone.dev";
const JWKS_READER_NAMESPACE: &str = "chaperone-system";
const JWKS_READER: &str = "chaperone-gateway";

fn role_arn(namespace: &str, connection: &str) -> String {
    format!("arn:aws:iam::000000000000:role/chaperone/{namespace}/{connection}")
}

async fn ensure_service_account(client: &Client, namespace: &str, name: &str) {
    ensure_namespace(client, namespace).await.unwrap();
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating service account {namespace}/{name}: {e}"),
    }
}

/// A token for `namespace/name` from the API server's TokenRequest API.
async fn token_request(
    client: &Client,
    namespace: &str,
    name: &str,
    audiences: Vec<String>,
    bound_pod: Option<&Pod>,
) -> String {
    ensure_service_account(client, namespace, name).await;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences,
            expiration_seconds: Some(600),
            bound_object_ref: bound_pod.map(|pod| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let answer: TokenRequest = api
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest is answered");
    answer.status.expect("TokenRequest has a status").token
}

async fn agent_token(client: &Client, namespace: &str, name: &str) -> String {
    token_request(client, namespace, name, vec![AUDIENCE.into()], None).await
}

/// The gateway's own identity for fetching the JWKS: a service account bound to
/// `system:service-account-issuer-discovery`, its token (API server audience) in a file.
async fn jwks_reader_token_file(client: &Client) -> NamedTempFile {
    ensure_service_account(client, JWKS_READER_NAMESPACE, JWKS_READER).await;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some("chaperone-gateway-issuer-discovery".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "system:service-account-issuer-discovery".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: JWKS_READER.into(),
            namespace: Some(JWKS_READER_NAMESPACE.into()),
            ..Default::default()
        }]),
    };
    match bindings.create(&PostParams::default(), &binding).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("binding the JWKS reader: {e}"),
    }
    let token = token_request(client, JWKS_READER_NAMESPACE, JWKS_READER, vec![], None).await;
    let mut file = NamedTempFile::new().unwrap();
    file.write_all(token.as_bytes()).unwrap();
    file
}

/// A gateway's identity part for `GATEWAY_NAMESPACE`, wired to the local API server.
struct Gateway {
    exchange: WebIdentityExchange,
    client: Client,
    _files: TempDir,
    _token_file: NamedTempFile,
}

impl Gateway {
    async fn start() -> Self {
        Self::start_with_token_review(false).await
    }

    async fn start_with_token_review(token_review: bool) -> Self {
        let env = LocalEnv::shared();
        let client = env.control_plane.client().await.unwrap();
        let files = TempDir::new().unwrap();
        let ca_file = files.path().join("ca.crt");
        std::fs::write(&ca_file, env.control_plane.ca_pem()).unwrap();
        let token_file = jwks_reader_token_file(&client).await;
        let source: IdentitySource = serde_json::from_value(json!({
            "issuer": env.control_plane.issuer(),
            "caFile": ca_file,
            "tokenFile": token_file.path(),
            "tokenReview": token_review,
        }))
        .unwrap();
        let config = admitting(source, 3600);
        let exchange =
            WebIdentityExchange::from_config(config, keys(&[("k1", 1)]), Some(client.clone()))
                .unwrap();
        Self { exchange, client, _files: files, _token_file: token_file }
    }

    /// Sends AssumeRoleWithWebIdentity the way botocore does: a form-encoded POST body.
    async fn assume(
        &self,
        role_arn: &str,
        token: &str,
    ) -> Result<AssumeRoleWithWebIdentityResult, StsError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", role_arn)
            .append_pair("RoleSessionName", "identity-test")
            .append_pair("WebIdentityToken", token)
            .finish();
        let request = AssumeRoleWithWebIdentityRequest::parse("", body.as_bytes())?;
        self.exchange.assume_role_with_web_identity(&request).await
    }

    async fn refusal(&self, token: &str) -> StsError {
        self.refusal_for(&role_arn(GATEWAY_NAMESPACE, CONNECTION), token).await
    }

    async fn refusal_for(&self, role_arn: &str, token: &str) -> StsError {
        match self.assume(role_arn, token).await {
            Ok(result) => panic!(
                "expected a refusal, got credentials for {:?}",
                result.credentials.session.service_account
            ),
            Err(error) => {
                assert!(!error.message.contains(token), "the refusal quotes the token");
                assert!(!error.to_xml("r").contains(token), "the XML quotes the token");
                error
            }
        }
    }
}

/// Session keys from `(id, secret byte)` pairs, first current.
/// The gateway namespace's identity settings, with [`CONNECTION`] admitting [`ADMITTED`].
fn admitting(source: IdentitySource, max_session_seconds: i64) -> IdentityConfig {
    let mut config = IdentityConfig::new(source, GATEWAY_NAMESPACE);
    config.connections.push(ConnectionAdmission {
        name: CONNECTION.into(),
        service_accounts: vec![ADMITTED.into()],
        max_session_seconds,
    });
    config
}

fn keys(list: &[(&str, u8)]) -> SessionKeys {
    let mut keys = list.iter().map(|(id, byte)| SessionKey::new(*id, vec![*byte; 32]).unwrap());
    let current = keys.next().unwrap();
    SessionKeys::new(current, keys.next()).unwrap()
}

fn segments(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = |what: &str| -> Value {
        let part = parts.next().unwrap_or_else(|| panic!("the token has no {what}"));
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    (decode("header"), decode("claims"))
}

fn encode_segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Claims of a real agent token, re-signed with the API server's own signing key after `edit`:
/// what a token the issuer minted with those claims would be.
async fn reissued_with(edit: impl FnOnce(&mut Value)) -> String {
    let env = LocalEnv::shared();
    let client = env.control_plane.client().await.unwrap();
    let real = agent_token(&client, GATEWAY_NAMESPACE, ADMITTED).await;
    let (header, mut claims) = segments(&real);
    edit(&mut claims);
    let mut new_header = Header::new(Algorithm::ES256);
    new_header.kid = header["kid"].as_str().map(str::to_owned);
    let key =
        EncodingKey::from_ec_pem(env.control_plane.service_account_key().private_pem.as_bytes())
            .unwrap();
    jsonwebtoken::encode(&new_header, &claims, &key).unwrap()
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_as_an_invalid_identity_token() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let token = token_request(
        &gateway.client,
        GATEWAY_NAMESPACE,
        ADMITTED,
        vec!["sts.amazonaws.com".into()],
        None,
    )
    .await;
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::InvalidIdentityToken, "{error}");
    assert!(
        error.message.contains("sts.amazonaws.com") && error.message.contains(AUDIENCE),
        "{error}"
    );
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused_even_when_signed_with_the_clusters_key() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let token =
        reissued_with(|claims| claims["iss"] = json!("https://other-cluster.example")).await;
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::InvalidIdentityToken, "{error}");
    assert!(error.message.contains("https://other-cluster.example"), "{error}");
}

#[tokio::test]
async fn an_expired_token_is_refused_as_expired_so_the_sdk_rereads_its_token_file() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let an_hour_ago = (OffsetDateTime::now_utc() - Duration::hours(1)).unix_timestamp();
    let token = reissued_with(|claims| {
        claims["iat"] = json!(an_hour_ago - 600);
        claims["nbf"] = json!(an_hour_ago - 600);
        claims["exp"] = json!(an_hour_ago);
    })
    .await;
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::ExpiredTokenException, "{error}");
    assert_eq!(error.http_status(), 400);
}

#[tokio::test]
async fn a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let real = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let (_, claims) = segments(&real);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("not-published-by-the-issuer".into());
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8.as_ref())).unwrap();
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::InvalidIdentityToken, "{error}");
    assert!(error.message.contains("not-published-by-the-issuer"), "{error}");
}

#[tokio::test]
async fn an_unsigned_token_with_alg_none_is_refused() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let real = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let (header, claims) = segments(&real);
    let none = json!({"alg": "none", "kid": header["kid"], "typ": "JWT"});
    let token = format!("{}.{}.", encode_segment(&none), encode_segment(&claims));
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::InvalidIdentityToken, "{error}");
    assert!(error.message.contains("\"none\""), "{error}");
}

#[tokio::test]
async fn a_token_signed_with_hs256_using_the_issuers_public_key_as_secret_is_refused() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let real = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let (header, claims) = segments(&real);
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    let public_pem = &env.control_plane.service_account_key().public_pem;
    let token =
        jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(public_pem.as_bytes()))
            .unwrap();
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::InvalidIdentityToken, "{error}");
    assert!(error.message.contains("HS256"), "{error}");
}

#[tokio::test]
async fn a_token_whose_payload_was_altered_is_refused() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    // A token of a service account the connection does not admit, altered to name one it does.
    let real = agent_token(&gateway.client, GATEWAY_NAMESPACE, NOT_ADMITTED).await;
    let (_, mut claims) = segments(&real);
    claims["sub"] = json!(format!("system:serviceaccount:{GATEWAY_NAMESPACE}:{ADMITTED}"));
    claims["kubernetes.io"]["serviceaccount"]["name"] = json!(ADMITTED);
    let mut parts: Vec<&str> = real.split('.').collect();
    let altered = encode_segment(&claims);
    parts[1] = &altered;
    let token = parts.join(".");
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::InvalidIdentityToken, "{error}");
    assert!(error.message.contains("signature"), "{error}");
}

#[tokio::test]
async fn a_service_account_the_connection_does_not_admit_is_denied() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let token = agent_token(&gateway.client, GATEWAY_NAMESPACE, NOT_ADMITTED).await;
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::AccessDenied, "{error}");
    assert_eq!(error.http_status(), 403);
    assert!(
        error.message.contains(NOT_ADMITTED)
            && error.message.contains("spec.agents.serviceAccounts"),
        "{error}"
    );
}

#[tokio::test]
async fn a_token_from_another_namespace_is_denied_even_for_an_admitted_name() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let token = agent_token(&gateway.client, OTHER_NAMESPACE, ADMITTED).await;
    let error = gateway.refusal(&token).await;
    assert_eq!(error.code, StsErrorCode::AccessDenied, "{error}");
    assert!(error.message.contains(OTHER_NAMESPACE), "{error}");
}

#[tokio::test]
async fn a_role_arn_for_another_namespace_or_an_unknown_connection_is_denied() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let token = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let error = gateway.refusal_for(&role_arn(OTHER_NAMESPACE, CONNECTION), &token).await;
    assert_eq!(error.code, StsErrorCode::AccessDenied, "{error}");
    assert!(error.message.contains(OTHER_NAMESPACE), "{error}");
    let error = gateway.refusal_for(&role_arn(GATEWAY_NAMESPACE, "staging"), &token).await;
    assert_eq!(error.code, StsErrorCode::AccessDenied, "{error}");
    assert!(error.message.contains("staging"), "{error}");
}

#[tokio::test]
async fn a_valid_token_yields_credentials_whose_session_opens_again() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start().await;
    let token = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let result = gateway.assume(&role_arn(GATEWAY_NAMESPACE, CONNECTION), &token).await.unwrap();
    let credentials = &result.credentials;
    assert!(credentials.access_key_id.starts_with("ASIA"));
    let lifetime = credentials.expiration - OffsetDateTime::now_utc();
    assert!(lifetime > Duration::minutes(59) && lifetime <= Duration::hours(1), "{lifetime}");
    assert_eq!(result.subject_from_web_identity_token, "system:serviceaccount:identity-a:pr-bot");
    assert_eq!(result.provider, env.control_plane.issuer());

    let xml = result.to_xml("req-1");
    assert!(xml.contains(&format!("<AccessKeyId>{}</AccessKeyId>", credentials.access_key_id)));
    assert!(xml.contains(&format!("<SessionToken>{}</SessionToken>", credentials.session_token)));

    let opened = gateway
        .exchange
        .minter()
        .open(&credentials.access_key_id, &credentials.session_token, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(opened.secret_access_key, credentials.secret_access_key);
    assert_eq!(opened.context.connection, CONNECTION);
    assert_eq!(opened.context.namespace, GATEWAY_NAMESPACE);
    assert_eq!(opened.context.service_account, ADMITTED);
    assert_eq!(opened.context.role_session_name, "identity-test");
    assert_eq!(opened.context.key_id, "k1");
}

async fn minted_session() -> (String, String, OffsetDateTime) {
    let gateway = Gateway::start().await;
    let token = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let result = gateway.assume(&role_arn(GATEWAY_NAMESPACE, CONNECTION), &token).await.unwrap();
    let credentials = result.credentials;
    (credentials.access_key_id, credentials.session_token, credentials.expiration)
}

#[tokio::test]
async fn a_session_still_opens_after_one_rotation_with_its_key_kept_as_previous() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let (access_key_id, session_token, _) = minted_session().await;
    let rotated = SessionMinter::new(keys(&[("k2", 2), ("k1", 1)]));
    let opened = rotated.open(&access_key_id, &session_token, OffsetDateTime::now_utc()).unwrap();
    assert_eq!(opened.context.key_id, "k1");
}

#[tokio::test]
async fn a_session_no_longer_opens_once_its_key_is_rotated_beyond_previous() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let (access_key_id, session_token, _) = minted_session().await;
    let rotated_twice = SessionMinter::new(keys(&[("k3", 3), ("k2", 2)]));
    let error =
        rotated_twice.open(&access_key_id, &session_token, OffsetDateTime::now_utc()).unwrap_err();
    assert!(matches!(&error, SessionError::UnknownKey { key_id } if key_id == "k1"), "{error}");
    assert!(!error.is_expired());
}

#[tokio::test]
async fn an_expired_session_is_reported_as_expired() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let (access_key_id, session_token, expiration) = minted_session().await;
    let minter = SessionMinter::new(keys(&[("k1", 1)]));
    let error =
        minter.open(&access_key_id, &session_token, expiration + Duration::seconds(1)).unwrap_err();
    assert!(error.is_expired(), "{error}");
}

#[tokio::test]
async fn a_session_minted_under_a_key_the_gateway_does_not_hold_does_not_open() {
    let _logs = LocalEnv::shared().logs_on_failure();
    let (access_key_id, session_token, _) = minted_session().await;
    // Another namespace's gateway holds other keys.
    let elsewhere = SessionMinter::new(keys(&[("other-k1", 9)]));
    let error =
        elsewhere.open(&access_key_id, &session_token, OffsetDateTime::now_utc()).unwrap_err();
    assert!(matches!(error, SessionError::UnknownKey { .. }), "{error}");
    // Same key id, other secret: the MAC does not verify.
    let impostor = SessionMinter::new(keys(&[("k1", 9)]));
    let error =
        impostor.open(&access_key_id, &session_token, OffsetDateTime::now_utc()).unwrap_err();
    assert!(matches!(error, SessionError::BadMac), "{error}");
}

#[tokio::test]
async fn jwks_cannot_be_fetched_without_the_gateways_bearer_token() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let files = TempDir::new().unwrap();
    let ca_file = files.path().join("ca.crt");
    std::fs::write(&ca_file, env.control_plane.ca_pem()).unwrap();
    let source: IdentitySource =
        serde_json::from_value(json!({"issuer": env.control_plane.issuer(), "caFile": ca_file}))
            .unwrap();
    let config = admitting(source, chaperone_config::DEFAULT_SESSION_SECONDS);
    let jwks = Arc::new(JwksCache::new(&config).unwrap());
    let exchange = WebIdentityExchange::new(
        config.clone(),
        TokenValidator::new(&config, jwks),
        SessionMinter::new(keys(&[("k1", 1)])),
    );
    let client = env.control_plane.client().await.unwrap();
    let token = agent_token(&client, GATEWAY_NAMESPACE, ADMITTED).await;
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&RoleSessionName=s1&RoleArn={}&WebIdentityToken={token}",
        role_arn(GATEWAY_NAMESPACE, CONNECTION)
    );
    let request = AssumeRoleWithWebIdentityRequest::parse("", body.as_bytes()).unwrap();
    let error = exchange.assume_role_with_web_identity(&request).await.unwrap_err();
    assert_eq!(error.code, StsErrorCode::IdpCommunicationError, "{error}");
    assert!(error.message.contains("openid-configuration"), "{error}");
}

#[tokio::test]
async fn a_pod_bound_token_is_accepted_while_its_pod_exists_and_refused_once_it_is_deleted() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Gateway::start_with_token_review(true).await;
    ensure_service_account(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let pods: Api<Pod> = Api::namespaced(gateway.client.clone(), GATEWAY_NAMESPACE);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "agent-bound"},
        "spec": {"serviceAccountName": ADMITTED, "containers": [{"name": "agent", "image": "agent"}]},
    }))
    .unwrap();
    let pod = match pods.create(&PostParams::default(), &pod).await {
        Ok(pod) => pod,
        Err(kube::Error::Api(e)) if e.code == 409 => pods.get("agent-bound").await.unwrap(),
        Err(e) => panic!("creating the agent's pod: {e}"),
    };
    let token = token_request(
        &gateway.client,
        GATEWAY_NAMESPACE,
        ADMITTED,
        vec![AUDIENCE.into()],
        Some(&pod),
    )
    .await;
    let arn = role_arn(GATEWAY_NAMESPACE, CONNECTION);
    let result = gateway.assume(&arn, &token).await.unwrap();
    let bound = result.credentials.session.pod.clone().expect("the session names the pod");
    assert_eq!(bound.name, "agent-bound");
    assert_eq!(Some(bound.uid), pod.metadata.uid);

    pods.delete(
        "agent-bound",
        &DeleteParams { grace_period_seconds: Some(0), ..Default::default() },
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pods.get_opt("agent-bound").await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "the pod was not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The API server caches a token's successful authentication for 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let error = loop {
        match gateway.assume(&arn, &token).await {
            Err(error) => break error,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Ok(_) => panic!("the token of the deleted pod was still accepted after 40 s"),
        }
    };
    assert_eq!(error.code, StsErrorCode::InvalidIdentityToken, "{error}");
    assert!(error.message.contains("no longer accepts"), "{error}");
    assert!(!error.message.contains(&token), "the refusal quotes the token");
}

/// Serves the gateway's AssumeRoleWithWebIdentity over HTTP/1.1 on loopback, one request per
/// connection, as the gateway's listener will; returns its URL.
async fn serve_sts(gateway: Arc<Gateway>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut received = Vec::new();
            let mut buf = [0u8; 8192];
            let (head_end, content_length) = loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break (None, 0),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
                if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (Some(end + 4), length);
                }
            };
            let Some(head_end) = head_end else { continue };
            while received.len() < head_end + content_length {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
            let target = head.split_whitespace().nth(1).unwrap_or("/");
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
            let body = &received[head_end..];
            let request_id = "c0ffee00-0000-4000-8000-000000000000";
            let is_get_caller_identity = StsParameters::parse(query, body)
                .is_ok_and(|p| p.action() == Some("GetCallerIdentity"));
            let (status, xml) = if is_get_caller_identity {
                caller_identity(&gateway, &head, request_id)
            } else {
                match AssumeRoleWithWebIdentityRequest::parse(query, body) {
                    Ok(request) => {
                        match gateway.exchange.assume_role_with_web_identity(&request).await {
                            Ok(result) => (200, result.to_xml(request_id)),
                            Err(error) => (error.http_status(), error.to_xml(request_id)),
                        }
                    }
                    Err(error) => (error.http_status(), error.to_xml(request_id)),
                }
            };
            let answer = format!(
                "HTTP/1.1 {status} STS\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\
                 x-amzn-requestid: {request_id}\r\nconnection: close\r\n\r\n{xml}",
                xml.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    url
}

/// GetCallerIdentity for the session whose access key id and token a signed request carries.
/// The signature itself is not checked here: that is the SigV4 verifier's job, not identity's.
fn caller_identity(gateway: &Gateway, head: &str, request_id: &str) -> (u16, String) {
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    let access_key_id = header("authorization")
        .and_then(|a| {
            a.split("Credential=").nth(1).map(|c| c.split('/').next().unwrap_or("").to_owned())
        })
        .unwrap_or_default();
    let token = header("x-amz-security-token").unwrap_or_default();
    match gateway.exchange.minter().open(&access_key_id, &token, OffsetDateTime::now_utc()) {
        Ok(opened) => (200, CallerIdentity::of_session(&opened.context).to_xml(request_id)),
        Err(error) => {
            (403, StsError::new(StsErrorCode::AccessDenied, error.to_string()).to_xml(request_id))
        }
    }
}

/// Runs boto3 with only the environment Chaperone's webhook injects, and returns what it printed.
async fn boto3_with_web_identity(endpoint: &str, token: &str, script: &str) -> Value {
    let env = LocalEnv::shared();
    let home = TempDir::new().unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let output = tokio::process::Command::new(env.provisioned.python.python())
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ROLE_ARN", role_arn(GATEWAY_NAMESPACE, CONNECTION))
        .env("AWS_ROLE_SESSION_NAME", "boto3-agent")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test]
async fn boto3_exchanges_its_token_file_at_the_gateway_for_credentials_that_open_again() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Arc::new(Gateway::start().await);
    let endpoint = serve_sts(gateway.clone()).await;
    let token = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let answer = boto3_with_web_identity(
        &endpoint,
        &token,
        "import boto3, json\n\
         credentials = boto3.Session().get_credentials().get_frozen_credentials()\n\
         print(json.dumps({'access_key': credentials.access_key, \
         'secret_key': credentials.secret_key, 'token': credentials.token}))",
    )
    .await;
    let access_key = answer["access_key"].as_str().unwrap();
    let session_token = answer["token"].as_str().unwrap();
    assert!(access_key.starts_with("ASIA"), "{access_key}");
    let opened = gateway
        .exchange
        .minter()
        .open(access_key, session_token, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(answer["secret_key"].as_str(), Some(opened.secret_access_key.expose()));
    assert_eq!(opened.context.role_session_name, "boto3-agent");
    assert_eq!(opened.context.service_account, ADMITTED);
}

#[tokio::test]
async fn boto3_surfaces_the_gateways_refusal_code_and_message() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Arc::new(Gateway::start().await);
    let endpoint = serve_sts(gateway.clone()).await;
    let token = agent_token(&gateway.client, GATEWAY_NAMESPACE, NOT_ADMITTED).await;
    let answer = boto3_with_web_identity(
        &endpoint,
        &token,
        "import boto3, json, botocore.exceptions\n\
         try:\n    boto3.Session().get_credentials().get_frozen_credentials()\n    print('{}')\n\
         except botocore.exceptions.ClientError as e:\n\
         \x20   print(json.dumps({'code': e.response['Error']['Code'], \
         'message': e.response['Error']['Message'], \
         'status': e.response['ResponseMetadata']['HTTPStatusCode']}))",
    )
    .await;
    assert_eq!(answer["code"], "AccessDenied", "{answer}");
    assert_eq!(answer["status"], 403);
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(NOT_ADMITTED) && message.contains("spec.agents.serviceAccounts"),
        "{message}"
    );
}

#[tokio::test]
async fn boto3_reads_get_caller_identity_for_its_session_as_the_assumed_chaperone_role() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = Arc::new(Gateway::start().await);
    let endpoint = serve_sts(gateway.clone()).await;
    let token = agent_token(&gateway.client, GATEWAY_NAMESPACE, ADMITTED).await;
    let answer = boto3_with_web_identity(
        &endpoint,
        &token,
        "import boto3, json\n\
         identity = boto3.client('sts').get_caller_identity()\n\
         print(json.dumps({k: identity[k] for k in ('Arn', 'UserId', 'Account')}))",
    )
    .await;
    assert_eq!(
        answer["Arn"],
        "arn:aws:sts::000000000000:assumed-role/chaperone/identity-a/prod-aws/boto3-agent"
    );
    assert_eq!(answer["Account"], "000000000000");
    let user_id = answer["UserId"].as_str().unwrap();
    assert!(user_id.starts_with("AROA") && user_id.ends_with(":boto3-agent"), "{user_id}");
}
