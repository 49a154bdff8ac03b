//! An adversarial agent against the real gateway, with moto (signature checks on) upstream.
//!
//! Each case is a hostile request, signed with the session credentials the gateway minted for the
//! agent, that must be refused with an AWS-shaped error naming the rule; after each, moto's state
//! (buckets, objects, tags, ACLs, tables, access keys) is unchanged and a counting listener that
//! stands in for the services moto lacks has seen nothing. The principle: the request that reaches
//! AWS is exactly the request that was classified, recorded and decided on; anything the gateway
//! cannot account for is refused.
//!
//! Classes (issue 15): 2 wildcards never cover what was not classified; 3 ambiguous requests;
//! 4 header-borne permissions; 5 resource-scoped rules never fail open; 6 the credential
//! denylist without models. Other classes add their cases to [`cases`].

use crate::common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use bytes::Bytes;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DATA: &str = "adv-data";
const SECRET: &str = "adv-secret";
/// moto's account.
const ACCOUNT: &str = "000000000000";

/// Services moto does not serve (or the tables lack): their endpoints are a counting listener.
const LISTENER_SERVICES: &[&str] = &[
    "cognito-identity",
    "cognito-idp",
    "codeartifact",
    "redshift",
    "ecr",
    "ecr-public",
    "s3express",
    "sso-oauth",
    "eks-auth",
    "appsync",
];

/// The services whose unclassified calls the connection opts in to forwarding (every listener
/// service but `appsync`).
const OPTED_IN: &[&str] = &[
    "cognito-identity",
    "cognito-idp",
    "codeartifact",
    "redshift",
    "ecr-public",
    "s3express",
    "sso-oauth",
];

/// The buckets the cases touch or would create.
const BUCKETS: &[&str] = &["adv-data", "adv-secret", "adv-public", "adv-locked"];

const ASSUME: &str = r#"
import json, os, boto3
sts = boto3.client("sts")
answer = sts.assume_role_with_web_identity(RoleArn=os.environ["AWS_ROLE_ARN"], RoleSessionName="adversary",
    WebIdentityToken=open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]).read())
print(json.dumps(answer["Credentials"], default=str))
"#;

/// moto's state as the gateway's own upstream user sees it, minus the recording bucket.
const SNAPSHOT: &str = r#"
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
buckets = sys.argv[4].split(",")
s3 = boto3.client("s3", **kw)
def attempt(f, **a):
    try:
        r = f(**a); r.pop("ResponseMetadata", None); return r
    except Exception as e:
        return type(e).__name__
state = {"buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] in buckets)}
for bucket in state["buckets"]:
    b = {"versioning": attempt(s3.get_bucket_versioning, Bucket=bucket),
         "acl": attempt(s3.get_bucket_acl, Bucket=bucket),
         "policy": attempt(s3.get_bucket_policy, Bucket=bucket),
         "lock": attempt(s3.get_object_lock_configuration, Bucket=bucket),
         "objects": {}}
    for o in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        k = o["Key"]
        b["objects"][k + "@" + str(o.get("VersionId"))] = {
            "etag": o["ETag"],
            "tags": attempt(s3.get_object_tagging, Bucket=bucket, Key=k),
            "acl": attempt(s3.get_object_acl, Bucket=bucket, Key=k),
            "retention": attempt(s3.get_object_retention, Bucket=bucket, Key=k),
            "hold": attempt(s3.get_object_legal_hold, Bucket=bucket, Key=k),
        }
    state[bucket] = b
# Only what this suite owns: other tests of the binary share moto and create their own tables
# and users concurrently. The cases name no other table, and no user (IAM calls act on the caller).
state["tables"] = [t for t in boto3.client("dynamodb", **kw).list_tables()["TableNames"] if t == "prod-orders"]
iam = boto3.client("iam", **kw)
state["users"] = {u["UserName"]: sorted(k["AccessKeyId"] for k in iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"])
                  for u in iam.list_users()["Users"] if u["UserName"].startswith("chaperone-")}
print(json.dumps(state, sort_keys=True, default=str))
"#;

/// One hostile request and the refusal it must meet.
struct Case {
    /// The issue's class number.
    class: u8,
    name: &'static str,
    /// The signing name of the credential scope.
    service: &'static str,
    method: &'static str,
    /// Path and query, as on the wire.
    target: String,
    /// Signed headers (duplicates allowed).
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Substrings the error message must contain.
    message: Vec<&'static str>,
}

fn case(
    class: u8,
    name: &'static str,
    service: &'static str,
    method: &'static str,
    target: &str,
) -> Case {
    Case {
        class,
        name,
        service,
        method,
        target: target.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        message: Vec::new(),
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn json(self, target: &str, body: &str) -> Self {
        self.header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", target)
            .body(body)
    }

    fn form(self, body: &str) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded; charset=utf-8").body(body)
    }

    fn body(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self
    }

    fn says(mut self, parts: &[&'static str]) -> Self {
        self.message.extend_from_slice(parts);
        self
    }
}

const UNCLASSIFIED: &[&str] = &["could not classify", "spec.policy.allowUnclassified"];
const AMBIGUOUS: &[&str] = &["is ambiguous"];
const CREDENTIALS: &[&str] = &["would hand the agent AWS credentials", "no wildcard"];

/// The table: every hostile request of classes 2 to 6.
fn cases() -> Vec<Case> {
    let lock_date = "2099-01-01T00:00:00Z";
    let many_keys: String =
        (0..1200).map(|i| format!("<Object><Key>protected/{i:0>40}</Key></Object>")).collect();
    let big_delete =
        format!("<Delete>{many_keys}<Object><Key>protected/keep</Key></Object></Delete>");
    vec![
        // 2. Wildcards (`*` is allowed) never cover what was not classified.
        case(2, "S3 method with no operation", "s3", "PATCH", &format!("/{DATA}/a.txt"))
            .says(UNCLASSIFIED)
            .says(&["s3:Unknown"]),
        case(2, "S3 POST on an object with no subresource", "s3", "POST", &format!("/{DATA}/a.txt"))
            .says(UNCLASSIFIED),
        case(2, "service without a model", "appsync", "POST", "/v1/apis")
            .header("content-type", "application/json")
            .body(r#"{"name":"x","authenticationType":"API_KEY"}"#)
            .says(&["could not classify", "`appsync`"]),
        case(2, "DynamoDB operation the model lacks", "dynamodb", "POST", "/")
            .json("DynamoDB_20120810.DropEverything", "{}")
            .says(UNCLASSIFIED)
            .says(&["DropEverything"]),
        case(2, "JSON target of another service", "dynamodb", "POST", "/")
            .json("AmazonSQS.DeleteQueue", "{}")
            .says(UNCLASSIFIED),
        case(2, "query Action the model lacks", "sqs", "POST", "/")
            .form("Action=PurgeEverything&Version=2012-11-05")
            .says(UNCLASSIFIED),
        case(2, "EC2 Action the model lacks", "ec2", "POST", "/")
            .form("Action=TerminateEverything&Version=2016-11-15")
            .says(UNCLASSIFIED),
        // 3. Ambiguous requests are refused.
        case(3, "two S3 subresources", "s3", "GET", &format!("/{DATA}/a.txt?acl&tagging"))
            .says(AMBIGUOUS),
        case(3, "subresource of another method", "s3", "DELETE", &format!("/{DATA}?versioning"))
            .says(AMBIGUOUS)
            .says(&["`versioning`", "DeleteBucket"]),
        case(3, "POST-only subresource on PUT", "s3", "PUT", &format!("/{DATA}/new.txt?uploads"))
            .body("x")
            .says(AMBIGUOUS)
            .says(&["`uploads`"]),
        case(3, "bucket subresource pair", "s3", "PUT", &format!("/{DATA}?versioning&policy"))
            .body("<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>")
            .says(AMBIGUOUS),
        case(3, "query string on a JSON service", "dynamodb", "POST", "/?Action=DeleteTable")
            .json("DynamoDB_20120810.ListTables", "{}")
            .says(AMBIGUOUS)
            .says(&["query parameter `Action`"]),
        case(3, "X-Amz-Target twice", "dynamodb", "POST", "/")
            .json("DynamoDB_20120810.ListTables", r#"{"TableName":"prod-orders"}"#)
            .header("x-amz-target", "DynamoDB_20120810.DeleteTable")
            .says(AMBIGUOUS)
            .says(&["header `x-amz-target` appears more than once"]),
        case(3, "X-Amz-Target twice, re-cased", "dynamodb", "POST", "/")
            .json("DynamoDB_20120810.DescribeTable", r#"{"TableName":"prod-orders"}"#)
            .header("X-AMZ-TARGET", "DynamoDB_20120810.DeleteTable")
            .says(AMBIGUOUS),
        case(3, "Action in query and body", "sqs", "POST", "/?Action=ListQueues")
            .form("Action=DeleteQueue&QueueUrl=q&Version=2012-11-05")
            .says(AMBIGUOUS)
            .says(&["`Action` appears 2 times"]),
        case(3, "Action twice in the body", "iam", "POST", "/")
            .form("Action=ListUsers&Action=DeleteUser&UserName=gateway&Version=2010-05-08")
            .says(AMBIGUOUS),
        case(3, "X-Amz-Target on a REST service", "s3", "DELETE", &format!("/{DATA}/a.txt"))
            .header("x-amz-target", "DynamoDB_20120810.DeleteTable")
            .says(AMBIGUOUS),
        case(3, "X-Amz-Target on a query-only service", "iam", "POST", "/")
            .header("x-amz-target", "AWSIdentityManagementV20100508.DeleteUser")
            .form("Action=ListUsers&Version=2010-05-08")
            .says(AMBIGUOUS),
        case(3, "copy source twice", "s3", "PUT", &format!("/{DATA}/copy.txt"))
            .header("x-amz-copy-source", &format!("/{DATA}/a.txt"))
            .header("x-amz-copy-source", &format!("/{SECRET}/key.txt"))
            .says(AMBIGUOUS)
            .says(&["x-amz-copy-source"]),
        // 4. Header-borne permissions are classified (they are denied by name here).
        case(4, "canned ACL on PutObject", "s3", "PUT", &format!("/{DATA}/acl.txt"))
            .header("x-amz-acl", "public-read")
            .body("x")
            .says(&["s3:PutObjectAcl is denied"]),
        case(4, "grant header on PutObject", "s3", "PUT", &format!("/{DATA}/grant.txt"))
            .header("x-amz-grant-full-control", "id=someone-else")
            .body("x")
            .says(&["s3:PutObjectAcl is denied"]),
        case(4, "tagging header on PutObject", "s3", "PUT", &format!("/{DATA}/tagged.txt"))
            .header("x-amz-tagging", "owner=agent")
            .body("x")
            .says(&["s3:PutObjectTagging is denied"]),
        case(4, "object-lock retention", "s3", "PUT", &format!("/{DATA}/locked.txt"))
            .header("x-amz-object-lock-mode", "GOVERNANCE")
            .header("x-amz-object-lock-retain-until-date", lock_date)
            .body("x")
            .says(&["s3:PutObjectRetention is denied"]),
        case(4, "legal hold", "s3", "PUT", &format!("/{DATA}/held.txt"))
            .header("x-amz-object-lock-legal-hold", "ON")
            .body("x")
            .says(&["s3:PutObjectLegalHold is denied"]),
        case(4, "governance bypass on delete", "s3", "DELETE", &format!("/{DATA}/a.txt"))
            .header("x-amz-bypass-governance-retention", "true")
            .says(&["s3:BypassGovernanceRetention is denied"]),
        case(4, "copy source is a read of the source", "s3", "PUT", &format!("/{DATA}/stolen.txt"))
            .header("x-amz-copy-source", &format!("/{SECRET}/key.txt"))
            .says(&["s3:GetObject on arn:aws:s3:::adv-secret/key.txt", "statements[0]"]),
        case(4, "copy source on UploadPartCopy", "s3", "PUT", &format!("/{DATA}/mp.txt?partNumber=1&uploadId=u1"))
            .header("x-amz-copy-source", &format!("/{SECRET}/key.txt"))
            .says(&["adv-secret/key.txt", "statements[0]"]),
        case(4, "SSE-KMS key on PutObject", "s3", "PUT", &format!("/{DATA}/kms.txt"))
            .header("x-amz-server-side-encryption", "aws:kms")
            .header("x-amz-server-side-encryption-aws-kms-key-id", "alias/finance")
            .body("x")
            .says(&["kms:GenerateDataKey is denied"]),
        case(4, "tagging on CreateMultipartUpload", "s3", "POST", &format!("/{DATA}/mp-tagged.txt?uploads"))
            .header("x-amz-tagging", "owner=agent")
            .says(&["s3:PutObjectTagging is denied"]),
        case(4, "canned ACL on CreateBucket", "s3", "PUT", "/adv-public")
            .header("x-amz-acl", "public-read-write")
            .says(&["s3:PutBucketAcl is denied"]),
        case(4, "bucket created with object lock", "s3", "PUT", "/adv-locked")
            .header("x-amz-bucket-object-lock-enabled", "true")
            .says(&["s3:PutBucketObjectLockConfiguration is denied"]),
        // 5. Resource-scoped rules never fail open.
        case(5, "Deny statement naming the real account", "dynamodb", "POST", "/")
            .json("DynamoDB_20120810.DeleteTable", r#"{"TableName":"prod-orders"}"#)
            .says(&[
                "dynamodb:DeleteTable on arn:aws:dynamodb:us-east-1:000000000000:table/prod-orders",
                "statements[1]",
            ]),
        case(5, "DeleteObjects body over the classification limit", "s3", "POST", &format!("/{DATA}?delete"))
            .body(&big_delete)
            .says(&["cannot name", "statements[2]"]),
        case(5, "unparseable DeleteObjects body", "s3", "POST", &format!("/{DATA}?delete"))
            .body("<Delete><Object><Key>protected/keep</Key>")
            .says(&["cannot name", "statements[2]"]),
        // 6. The credential denylist holds without models, and `*` does not lift it.
        case(6, "cognito-identity GetCredentialsForIdentity", "cognito-identity", "POST", "/")
            .json("AWSCognitoIdentityService.GetCredentialsForIdentity", r#"{"IdentityId":"x"}"#)
            .says(CREDENTIALS)
            .says(&["cognito-identity:GetCredentialsForIdentity"]),
        case(6, "cognito-identity GetOpenIdToken", "cognito-identity", "POST", "/")
            .json("AWSCognitoIdentityService.GetOpenIdToken", r#"{"IdentityId":"x"}"#)
            .says(CREDENTIALS)
            .says(&["cognito-identity:GetOpenIdToken"]),
        case(6, "cognito-identity GetOpenIdTokenForDeveloperIdentity", "cognito-identity", "POST", "/")
            .json("AWSCognitoIdentityService.GetOpenIdTokenForDeveloperIdentity", "{}")
            .says(CREDENTIALS),
        case(6, "codeartifact GetAuthorizationToken", "codeartifact", "POST", "/v1/authorization-token?domain=d")
            .says(CREDENTIALS)
            .says(&["codeartifact:GetAuthorizationToken"]),
        case(6, "redshift GetClusterCredentials", "redshift", "POST", "/")
            .form("Action=GetClusterCredentials&DbUser=admin&ClusterIdentifier=c&Version=2012-12-01")
            .says(CREDENTIALS)
            .says(&["redshift:GetClusterCredentials"]),
        case(6, "ecr-public GetAuthorizationToken", "ecr-public", "POST", "/")
            .json("SpencerFrontendService.GetAuthorizationToken", "{}")
            .says(CREDENTIALS)
            .says(&["ecr-public:GetAuthorizationToken"]),
        case(6, "ecr GetAuthorizationToken", "ecr", "POST", "/")
            .json("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", "{}")
            .says(CREDENTIALS),
        case(6, "s3express CreateSession", "s3express", "GET", &format!("/{DATA}?session"))
            .says(CREDENTIALS)
            .says(&["s3express:CreateSession"]),
        case(6, "CreateSession signed as s3", "s3", "GET", &format!("/{DATA}?session"))
            .says(CREDENTIALS),
        case(6, "sso-oauth CreateToken", "sso-oauth", "POST", "/token")
            .header("content-type", "application/json")
            .body(r#"{"clientId":"c","clientSecret":"s","grantType":"refresh_token"}"#)
            .says(CREDENTIALS)
            .says(&["sso-oauth:CreateToken"]),
        case(6, "eks-auth AssumeRoleForPodIdentity", "eks-auth", "POST", "/clusters/c/assume-role-for-pod-identity")
            .header("content-type", "application/json")
            .body(r#"{"token":"t"}"#)
            .says(CREDENTIALS),
        case(6, "sts AssumeRole under `*`", "sts", "POST", "/")
            .form(&format!(
                "Action=AssumeRole&RoleArn=arn:aws:iam::{ACCOUNT}:role/admin&RoleSessionName=x&Version=2011-06-15"
            ))
            .says(CREDENTIALS),
        case(6, "iam CreateAccessKey under `*`", "iam", "POST", "/")
            .form("Action=CreateAccessKey&UserName=gateway&Version=2010-05-08")
            .says(CREDENTIALS),
        case(6, "sts GetSessionToken by GET", "sts", "GET", "/?Action=GetSessionToken&Version=2011-06-15")
            .says(CREDENTIALS),
    ]
}

/// A TCP listener that counts the HTTP requests it gets and answers each `200 {}`.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&seen);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + length {
                            counter.fetch_add(1, Ordering::SeqCst);
                            seen.drain(..end + 4 + length);
                            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\n\r\n{}";
                            if stream.write_all(answer.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    (address, count)
}

/// Signs and sends a request to the gateway; returns the status and the body (preceded by the
/// `x-amzn-ErrorType` header, when there is one).
async fn send(
    gateway: &GatewayProcess,
    identity: &aws_smithy_runtime_api::client::identity::Identity,
    case: &Case,
    unsigned: &[(&str, &str)],
) -> (u16, String) {
    let url = format!("{}{}", gateway.endpoint, case.target);
    let host = common::authority(gateway);
    let mut settings = SigningSettings::default();
    if case.service == "s3" || case.service == "s3express" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region("us-east-1")
        .name(case.service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let length = case.body.len().to_string();
    let mut headers: Vec<(&str, &str)> =
        vec![("host", host.as_str()), ("content-length", length.as_str())];
    headers.extend(case.headers.iter().map(|(n, v)| (*n, v.as_str())));
    let signable = SignableRequest::new(
        case.method,
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(&case.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method(case.method).uri(&url);
    for (name, value) in headers.iter().chain(unsigned) {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Full::new(Bytes::from(case.body.clone()))).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let client = common::agent_client(gateway);
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    // REST-JSON services carry the error code in a header, the others in the body.
    let code = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("x-amzn-ErrorType: {v}\n"))
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, format!("{code}{}", String::from_utf8_lossy(&body)))
}

fn snapshot(env: &LocalEnv) -> String {
    let user = &env.moto.gateway_user;
    let output = env
        .moto
        .python_command()
        .args([
            "-c",
            SNAPSHOT,
            env.moto.endpoint(),
            &user.access_key_id,
            &user.secret_access_key,
            &BUCKETS.join(","),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The agent's session credentials, from the gateway's STS.
pub(crate) fn session(env: &LocalEnv, agent: &[(String, String)]) -> Credentials {
    let mut python = env.moto.python_command();
    python.args(["-c", ASSUME]);
    for (key, value) in agent {
        python.env(key, value);
    }
    let output = python.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let credentials: Value = serde_json::from_slice(&output.stdout).unwrap();
    Credentials::new(
        credentials["AccessKeyId"].as_str().unwrap(),
        credentials["SecretAccessKey"].as_str().unwrap(),
        Some(credentials["SessionToken"].as_str().unwrap().to_owned()),
        None,
        "adversary",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_are_refused_and_nothing_reaches_upstream() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let (listener, reached) = counting_listener().await;
    let mut spec = GatewaySpec::new("e2e-adversarial");
    spec.allow = vec!["*".into()];
    spec.deny = [
        "s3:PutObjectAcl",
        "s3:PutObjectTagging",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
        "s3:BypassGovernanceRetention",
        "s3:PutBucketAcl",
        "s3:PutBucketObjectLockConfiguration",
        "kms:*",
    ]
    .map(String::from)
    .to_vec();
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    for bucket in [DATA, SECRET] {
        let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", &format!("s3://{bucket}")]);
        assert!(ok, "{err}");
    }
    for (bucket, key) in [(DATA, "a.txt"), (SECRET, "key.txt"), (DATA, "protected/keep")] {
        let (ok, _, err) = aws_cli(
            env,
            &agent,
            &["s3api", "put-object", "--bucket", bucket, "--key", key, "--body", "/etc/hostname"],
        );
        assert!(ok, "{err}");
    }
    let (ok, _, err) = aws_cli(
        env,
        &agent,
        &[
            "dynamodb",
            "create-table",
            "--table-name",
            "prod-orders",
            "--attribute-definitions",
            "AttributeName=id,AttributeType=S",
            "--key-schema",
            "AttributeName=id,KeyType=HASH",
            "--billing-mode",
            "PAY_PER_REQUEST",
        ],
    );
    assert!(ok, "{err}");

    // Resource-scoped statements naming the real account, the account itself, endpoints for the
    // services moto lacks, and an explicit opt-in for one unmodelled service.
    gateway
        .rewrite_config(|config| {
            let connection = &mut config["connections"][0];
            connection["accountId"] = json!(ACCOUNT);
            for service in LISTENER_SERVICES {
                connection["endpoints"][*service] = json!(listener);
            }
            let policy = &mut connection["policy"];
            policy["allowUnclassified"] = json!(OPTED_IN);
            policy["statements"] = json!([
                {"effect": "Deny", "actions": ["s3:GetObject*"], "resources": [format!("arn:aws:s3:::{SECRET}/*")]},
                {"effect": "Deny", "actions": ["dynamodb:DeleteTable"], "resources": [format!("arn:aws:dynamodb:*:{ACCOUNT}:table/prod-*")]},
                {"effect": "Deny", "actions": ["s3:DeleteObject*"], "resources": [format!("arn:aws:s3:::{DATA}/protected/*")]},
            ]);
        })
        .unwrap();
    let credentials = session(env, &agent);
    let identity = credentials.into();

    // The opt-in reaches the listener once the new config is loaded: an unclassified call to an
    // opted-in service is forwarded (the positive control for class 2).
    let probe = case(2, "opted-in unclassified service", "cognito-idp", "POST", "/")
        .json("AWSCognitoIdentityProviderService.ListUserPools", r#"{"MaxResults":1}"#);
    let mut loaded = false;
    for _ in 0..100 {
        let (status, _) = send(&gateway, &identity, &probe, &[]).await;
        if status == 200 && reached.load(Ordering::SeqCst) > 0 {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(loaded, "the opted-in call never reached the listener:\n{}", gateway.log());

    let cases = cases();
    let per_class = |class: u8| cases.iter().filter(|c| c.class == class).count();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for class in 2..=6 {
        assert!(per_class(class) >= 3, "class {class} has {} cases", per_class(class));
    }
    let mut failures = Vec::new();
    let mut before = snapshot(env);
    for case in &cases {
        let reached_before = reached.load(Ordering::SeqCst);
        let (status, body) = send(&gateway, &identity, case, &[]).await;
        let after = snapshot(env);
        let mut problems = Vec::new();
        if status != 403 {
            problems.push(format!("status {status}"));
        }
        if !body.contains("AccessDenied") {
            problems.push("no AccessDenied code".to_owned());
        }
        for part in &case.message {
            if !body.contains(part) {
                problems.push(format!("message lacks {part:?}"));
            }
        }
        if before != after {
            problems.push(format!("moto changed:\n  before {before}\n  after  {after}"));
        }
        if reached.load(Ordering::SeqCst) != reached_before {
            problems.push("the request reached the upstream listener".to_owned());
        }
        before = after;
        if !problems.is_empty() {
            failures.push(format!(
                "class {} {}: {}\n  {}",
                case.class,
                case.name,
                problems.join("; "),
                body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Class 3: a header that changes what S3 does but is not signed is stripped, never forwarded;
/// what reaches moto is what was classified (a plain PutObject, untagged).
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_semantic_headers_never_reach_upstream() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("e2e-adversarial-unsigned");
    spec.allow = vec!["s3:*".into()];
    spec.deny = vec!["s3:PutObjectTagging".into(), "s3:GetObject".into()];
    let gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let (ok, _, err) = aws_cli(env, &agent, &["s3", "mb", "s3://adv-unsigned"]);
    assert!(ok, "{err}");
    let identity = session(env, &agent).into();
    let put = case(3, "unsigned tagging", "s3", "PUT", "/adv-unsigned/plain.txt").body("hello");
    let (status, body) = send(
        &gateway,
        &identity,
        &put,
        &[("x-amz-tagging", "owner=agent"), ("x-amz-copy-source", "/adv-unsigned/other.txt")],
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", gateway.log());
    let user = &env.moto.gateway_user;
    let check = r#"
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
print(json.dumps([s3.get_object(Bucket="adv-unsigned", Key="plain.txt")["Body"].read().decode(),
                  s3.get_object_tagging(Bucket="adv-unsigned", Key="plain.txt")["TagSet"]]))
"#;
    let output = env
        .moto
        .python_command()
        .args(["-c", check, env.moto.endpoint(), &user.access_key_id, &user.secret_access_key])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), r#"["hello", []]"#);
}
