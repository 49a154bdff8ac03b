//! boto3 through the real gateway with only the injected environment: S3 including a presigned
//! GET made against the gateway, DynamoDB, SQS and Lambda; denials surface as AccessDenied.

use crate::common;

use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec},
};

const AGENT: &str = r#"
import json, os, ssl, sys, urllib.request
import boto3, botocore
from botocore.config import Config

results = {}
s3 = boto3.client("s3")
s3.create_bucket(Bucket="boto-data")
s3.put_object(Bucket="boto-data", Key="notes/a b+c.txt", Body=b"from boto3")
results["get"] = s3.get_object(Bucket="boto-data", Key="notes/a b+c.txt")["Body"].read().decode()
results["list"] = [o["Key"] for o in s3.list_objects_v2(Bucket="boto-data")["Contents"]]
presigner = boto3.client("s3", config=Config(signature_version="s3v4"))
url = presigner.generate_presigned_url("get_object", Params={"Bucket": "boto-data", "Key": "notes/a b+c.txt"}, ExpiresIn=300)
results["presigned_host"] = url.split("/")[2]
# A plain HTTP client verifies the gateway with the injected CA bundle, as an agent's would.
tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))
results["presigned"] = urllib.request.urlopen(url, context=tls).read().decode()

ddb = boto3.client("dynamodb")
ddb.create_table(TableName="jobs", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
ddb.put_item(TableName="jobs", Item={"id": {"S": "j-1"}, "state": {"S": "queued"}})
results["item"] = ddb.get_item(TableName="jobs", Key={"id": {"S": "j-1"}})["Item"]["state"]["S"]

sqs = boto3.client("sqs")
queue = sqs.create_queue(QueueName="work")["QueueUrl"]
sqs.send_message(QueueUrl=queue, MessageBody="build #42")
messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
results["message"] = messages[0]["Body"] if messages else None

def list_functions(client):
    try:
        return client.list_functions()["Functions"]
    except botocore.exceptions.ClientError as e:
        return "error:" + e.response["Error"]["Code"]
results["functions"] = list_functions(boto3.client("lambda"))
if len(sys.argv) > 1:
    # The same call straight to the upstream with the gateway's own keys, for comparison.
    results["functions_direct"] = list_functions(boto3.client(
        "lambda", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]))

try:
    boto3.client("iam").list_roles()
    results["iam"] = "allowed"
except botocore.exceptions.ClientError as e:
    results["iam"] = e.response["Error"]["Code"] + ": " + e.response["Error"]["Message"]
try:
    s3.put_bucket_policy(Bucket="boto-data", Policy="{}")
    results["bucket_policy"] = "allowed"
except botocore.exceptions.ClientError as e:
    results["bucket_policy"] = e.response["Error"]["Code"] + ": " + e.response["Error"]["Message"]
try:
    ddb.delete_table(TableName="jobs")
    results["delete_table"] = "allowed"
except botocore.exceptions.ClientError as e:
    results["delete_table"] = e.response["Error"]["Code"]
print(json.dumps(results))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn boto3_uses_s3_presigned_urls_dynamodb_sqs_and_lambda_through_the_gateway() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("e2e-boto3");
    spec.deny.push("dynamodb:DeleteTable".into());
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let mut command = env.moto.python_command();
    let upstream = &env.moto.gateway_user;
    command.args([
        "-c",
        AGENT,
        env.moto.endpoint(),
        &upstream.access_key_id,
        &upstream.secret_access_key,
    ]);
    for (key, value) in &agent {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "the boto3 agent failed:\n{}\n----- gateway log -----\n{}",
        String::from_utf8_lossy(&output.stderr),
        gateway.log()
    );
    let results: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results["get"], "from boto3");
    assert_eq!(results["list"], serde_json::json!(["notes/a b+c.txt"]));
    assert_eq!(results["presigned_host"].as_str().unwrap(), common::authority(&gateway));
    assert_eq!(results["presigned"], "from boto3");
    assert_eq!(results["item"], "queued");
    assert_eq!(results["message"], "build #42");
    // moto 5.2.5 refuses even boto3's own signature on Lambda's REST routes when auth is on; the
    // gateway must be transparent: the same answer through it as straight to the upstream.
    assert_eq!(
        results["functions"], results["functions_direct"],
        "Lambda answers the same through the gateway"
    );
    let iam = results["iam"].as_str().unwrap();
    assert!(
        iam.starts_with("AccessDenied")
            && iam.contains("iam:ListRoles")
            && iam.contains("spec.policy.deny[0] (iam:*)"),
        "{iam}"
    );
    let policy = results["bucket_policy"].as_str().unwrap();
    assert!(
        policy.starts_with("AccessDenied") && policy.contains("s3:PutBucketPolicy"),
        "{policy}"
    );
    assert_eq!(results["delete_table"], "AccessDeniedException");

    // The admin port reports health and what happened, by service, action and decision.
    let (status, _) = common::http_get(&gateway.admin, "/readyz");
    assert!(status.contains("200"), "{status}");
    let (_, metrics) = common::http_get(&gateway.admin, "/metrics");
    assert!(metrics.contains(r#"chaperone_gateway_calls_total{connection="prod-aws",service="dynamodb",action="dynamodb:PutItem",decision="allowed"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"action="iam:ListRoles",decision="denied"} 1"#), "{metrics}");
    assert!(metrics.contains("chaperone_gateway_call_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("chaperone_gateway_sessions_issued_total"), "{metrics}");
    // The recorder's own counters: every call above was spooled, in fewer fsyncs than events.
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {metrics}"))
    };
    let (events, fsyncs) = (
        value("chaperone_gateway_recorder_events_total"),
        value("chaperone_gateway_recorder_fsyncs_total"),
    );
    assert!(events >= 12 && fsyncs >= 1 && fsyncs <= events, "{events} events, {fsyncs} fsyncs");
    value("chaperone_gateway_recorder_spool_bytes");

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let events = common::events(&objects);
    let actions = common::requested_actions(&events);
    for expected in [
        "s3:PutObject",
        "s3:GetObject",
        "dynamodb:PutItem",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "lambda:ListFunctions",
    ] {
        assert!(actions.iter().any(|a| a == expected), "{expected} missing from {actions:?}");
    }
    assert_eq!(
        common::denied_actions(&events),
        ["iam:ListRoles", "s3:PutBucketPolicy", "dynamodb:DeleteTable"]
    );
}
