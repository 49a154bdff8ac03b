//! moto's IAM and STS as an AWS account with roles: roles to assume, the sessions STS handed out,
//! and moto's signature checks opened for a counted number of calls.
//!
//! moto checks every signed call, but it cannot serve an unsigned AssumeRoleWithWebIdentity while
//! its checks are on (it looks for an Authorization header); real STS never asks for one. Tests of
//! web identity open moto's check for one call at a time (`/moto-api/reset-auth`) until the
//! exchange succeeds, and prove the checks are back on afterwards. A test binary doing so must not
//! share the environment with another binary's calls at that moment (the shared environment's
//! binaries run one at a time).

use serde_json::Value;

use crate::LocalEnv;

/// Runs a Python snippet in the harness's virtualenv; `argv[1]` is moto's endpoint, `argv[2..]`
/// are `args`. Returns stdout, or stderr as the error.
pub fn python(env: &LocalEnv, script: &str, args: &[&str]) -> Result<String, String> {
    let output = env
        .moto
        .python_command()
        .arg("-c")
        .arg(script)
        .arg(env.moto.endpoint())
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Creates an IAM role in moto (with the gateway user's keys) allowed `s3:*` only on buckets
/// named `<bucket_prefix>*`; returns its ARN.
pub fn create_role(env: &LocalEnv, name: &str, bucket_prefix: &str) -> String {
    let user = &env.moto.gateway_user;
    let script = r#"
import json, sys, boto3
endpoint, key, secret, name, prefix = sys.argv[1:6]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key, aws_secret_access_key=secret)
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
         "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"]}]}
try:
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
except iam.exceptions.EntityAlreadyExistsException:
    arn = iam.get_role(RoleName=name)["Role"]["Arn"]
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
          "Resource": [f"arn:aws:s3:::{prefix}*", f"arn:aws:s3:::{prefix}*/*"]}]}
iam.put_role_policy(RoleName=name, PolicyName="s3-prefix", PolicyDocument=json.dumps(policy))
print(arn)
"#;
    python(env, script, &[&user.access_key_id, &user.secret_access_key, name, bucket_prefix])
        .expect("creating the role in moto")
        .trim()
        .to_owned()
}

/// The role sessions moto's STS has handed out: (role ARN, session name, external id, access key
/// id, secret access key), from moto's state dump.
pub fn assumed_roles(env: &LocalEnv) -> Vec<Value> {
    let script = r#"
import json, sys, urllib.request
data = json.loads(urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json").read())
print(json.dumps(data.get("sts", {}).get("AssumedRole", [])))
"#;
    let out = python(env, script, &[]).expect("reading moto's state");
    serde_json::from_str(&out).expect("moto's AssumedRole list is JSON")
}

/// Lets moto serve the next `calls` calls without checking signatures (then checks resume).
pub fn open_moto_checks_for(env: &LocalEnv, calls: u32) {
    let script = r#"
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/moto-api/reset-auth", data=sys.argv[2].encode(), method="POST", headers={"Content-Type": "text/plain"})).read()
"#;
    python(env, script, &[&calls.to_string()]).expect("resetting moto's auth counter");
}

/// Whether moto refuses a call signed with keys it never issued (its checks are on).
pub fn moto_checks_signatures(env: &LocalEnv) -> bool {
    let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="AKIANOTISSUED0000000", aws_secret_access_key="bogus")
try:
    s3.list_buckets()
    print("accepted")
except Exception as e:
    print("refused", e)
"#;
    python(env, script, &[]).expect("probing moto").starts_with("refused")
}
