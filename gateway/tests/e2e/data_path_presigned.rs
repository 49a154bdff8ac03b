//! Presigned URLs made the SDKs' default way, with only the injected environment: boto3's
//! `generate_presigned_url` and `aws s3 presign` make S3 SigV2 query-string URLs
//! (`AWSAccessKeyId=…&Expires=…&Signature=…`). Fetched with a plain HTTP client, they go through
//! the gateway, are recorded, and are refused (AWS-shaped XML) when the policy denies the action
//! or the URL was altered.

use crate::common;

use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};

const BUCKET: &str = "presigned-v2";
const KEY: &str = "shared/report 1.txt";

/// Presigns with boto3's defaults and fetches with `http.client` (no SDK, no extra headers),
/// verifying the gateway with `AWS_CA_BUNDLE`.
/// argv: the bucket, the key, then URLs presigned elsewhere to GET.
const AGENT: &str = r#"
import json, os, ssl, sys, http.client, urllib.parse
import boto3

bucket, key, others = sys.argv[1], sys.argv[2], sys.argv[3:]
s3 = boto3.client("s3")

def fetch(method, url, body=None):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        # Verified with the injected CA bundle, as an agent's own HTTP client would be.
        tls = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
        conn = http.client.HTTPSConnection(u.netloc, timeout=60, context=tls)
    else:
        conn = http.client.HTTPConnection(u.netloc, timeout=60)
    conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body)
    r = conn.getresponse()
    return {"status": r.status, "body": r.read().decode(errors="replace"), "query": u.query}

results = {}
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
results["put"] = fetch("PUT", put_url, b"shared by a presigned URL")
get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
results["get"] = fetch("GET", get_url)
results["extra_param"] = fetch("GET", get_url + "&prefix=x")
results["other_key"] = fetch("GET", get_url.replace("report%201", "report%202"))
results["others"] = [fetch("GET", url) for url in others]
print(json.dumps(results))
"#;

fn run_agent(
    env: &LocalEnv,
    gateway: &GatewayProcess,
    agent: &[(String, String)],
    others: &[&str],
) -> serde_json::Value {
    let mut command = env.moto.python_command();
    command.args(["-c", AGENT, BUCKET, KEY]).args(others);
    for (key, value) in agent {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "the boto3 agent failed:\n{}\n----- gateway log -----\n{}",
        String::from_utf8_lossy(&output.stderr),
        gateway.log()
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `aws s3 presign` with the CLI's defaults.
fn cli_presign(env: &LocalEnv, gateway: &GatewayProcess, agent: &[(String, String)]) -> String {
    let (ok, out, err) = aws_cli(
        env,
        agent,
        &["s3", "presign", &format!("s3://{BUCKET}/{KEY}"), "--expires-in", "600"],
    );
    assert!(ok, "aws s3 presign failed:\n{err}\n----- gateway log -----\n{}", gateway.log());
    out.trim().to_owned()
}

fn assert_sigv2(url_query: &str) {
    assert!(
        url_query.contains("AWSAccessKeyId=")
            && url_query.contains("Signature=")
            && !url_query.contains("X-Amz-Algorithm"),
        "the default presigned URL is SigV2: {url_query}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn default_sigv2_presigned_urls_from_boto3_and_the_aws_cli_work_and_are_recorded() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut gateway =
        GatewayProcess::start(env, common::binary(), GatewaySpec::new("e2e-presigned"))
            .await
            .unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let cli_url = cli_presign(env, &gateway, &agent);
    assert_sigv2(&cli_url);
    let results = run_agent(env, &gateway, &agent, &[&cli_url]);

    assert_sigv2(results["get"]["query"].as_str().unwrap());
    assert_eq!(results["put"]["status"], 200, "{results}\n{}", gateway.log());
    assert_eq!(results["get"]["status"], 200, "{results}");
    assert_eq!(results["get"]["body"], "shared by a presigned URL");
    let cli = &results["others"][0];
    assert_eq!(cli["status"], 200, "{results}");
    assert_eq!(cli["body"], "shared by a presigned URL");

    // What the signature does not cover is refused, in S3's XML error shape.
    let extra = &results["extra_param"];
    assert_eq!(extra["status"], 400, "{results}");
    let body = extra["body"].as_str().unwrap();
    assert!(
        body.contains("<Code>AuthorizationQueryParametersError</Code>")
            && body.contains("query parameter &quot;prefix&quot; is not accepted"),
        "{body}"
    );
    let other = &results["other_key"];
    assert_eq!(other["status"], 403, "{results}");
    assert!(
        other["body"].as_str().unwrap().contains("<Code>SignatureDoesNotMatch</Code>"),
        "{results}"
    );

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let report = common::verify(&gateway, &objects);
    assert!(report.is_valid(), "{:#?}", report.problems);
    let events = common::events(&objects);
    let actions = common::requested_actions(&events);
    assert_eq!(actions.iter().filter(|a| *a == "s3:PutObject").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "s3:GetObject").count(), 2, "{actions:?}");
    // Neither the signature nor the session token reaches the recording.
    let recorded = serde_json::to_string(&events).unwrap();
    assert!(
        !recorded.contains("AWSAccessKeyId") && !recorded.contains("\"Signature\""),
        "{recorded}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_default_presigned_get_is_refused_when_the_policy_denies_get_object() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let mut spec = GatewaySpec::new("e2e-presigned-deny");
    spec.deny.push("s3:GetObject".into());
    let mut gateway = GatewayProcess::start(env, common::binary(), spec).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let cli_url = cli_presign(env, &gateway, &agent);
    let results = run_agent(env, &gateway, &agent, &[&cli_url]);

    assert_eq!(results["put"]["status"], 200, "{results}\n{}", gateway.log());
    for refused in [&results["get"], &results["others"][0]] {
        assert_eq!(refused["status"], 403, "{results}");
        let body = refused["body"].as_str().unwrap();
        assert!(
            body.contains("<Code>AccessDenied</Code>") && body.contains("s3:GetObject"),
            "{body}"
        );
    }

    gateway.stop();
    let objects = common::recorded_objects(env, &gateway).await;
    let events = common::events(&objects);
    assert_eq!(common::denied_actions(&events), ["s3:GetObject", "s3:GetObject"]);
}
