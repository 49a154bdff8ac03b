//! moto really checks signatures: right keys work, a wrong secret is refused.

use chaperone_tests::{LocalEnv, aws::REGION};

const SCRIPT: &str = r#"
import sys, boto3, botocore
endpoint, key, secret, bucket = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=sys.argv[5],
                  aws_access_key_id=key, aws_secret_access_key=secret)
try:
    s3.create_bucket(Bucket=bucket)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    print("created" if bucket in names else "missing")
except botocore.exceptions.ClientError as e:
    print("refused:" + e.response["Error"]["Code"])
"#;

fn create_bucket(env: &LocalEnv, key: &str, secret: &str, bucket: &str) -> String {
    let output = env
        .moto
        .python_command()
        .args(["-c", SCRIPT, env.moto.endpoint(), key, secret, bucket, REGION])
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn boto3_with_the_gateways_keys_creates_a_bucket_and_a_wrong_secret_is_refused() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let user = &env.moto.gateway_user;
    assert_eq!(
        create_bucket(env, &user.access_key_id, &user.secret_access_key, "signed-right"),
        "created"
    );
    let wrong = format!("{}x", user.secret_access_key);
    assert_eq!(
        create_bucket(env, &user.access_key_id, &wrong, "signed-wrong"),
        "refused:SignatureDoesNotMatch"
    );
}

#[test]
fn the_auditor_may_read_but_not_create_buckets() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let user = &env.moto.auditor_user;
    assert_eq!(
        create_bucket(env, &user.access_key_id, &user.secret_access_key, "auditor-bucket"),
        "refused:AccessDenied"
    );
}
