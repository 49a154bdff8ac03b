"""Creates the local environment's IAM users in moto and prints their keys as JSON.

moto runs with INITIAL_NO_AUTH_ACTION_COUNT=4: the first calls below go unchecked (just enough to
create the gateway's user, its key and an allow-all policy); every later call, here and anywhere,
is signature-checked, so the auditor is created with the gateway's own keys.
"""

import json
import sys

import boto3

endpoint = sys.argv[1]
region = "us-east-1"
allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
read_only = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}],
}

bootstrap = boto3.client(
    "iam", endpoint_url=endpoint, region_name=region,
    aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
)
bootstrap.create_user(UserName="chaperone-gateway")
gateway = bootstrap.create_access_key(UserName="chaperone-gateway")["AccessKey"]
bootstrap.put_user_policy(
    UserName="chaperone-gateway", PolicyName="allow-all", PolicyDocument=json.dumps(allow_all)
)

iam = boto3.client(
    "iam", endpoint_url=endpoint, region_name=region,
    aws_access_key_id=gateway["AccessKeyId"], aws_secret_access_key=gateway["SecretAccessKey"],
)
iam.create_user(UserName="chaperone-auditor")
auditor = iam.create_access_key(UserName="chaperone-auditor")["AccessKey"]
iam.put_user_policy(
    UserName="chaperone-auditor", PolicyName="read-recordings", PolicyDocument=json.dumps(read_only)
)

print(json.dumps({
    "gateway": {"user": "chaperone-gateway", "accessKeyId": gateway["AccessKeyId"],
                "secretAccessKey": gateway["SecretAccessKey"]},
    "auditor": {"user": "chaperone-auditor", "accessKeyId": auditor["AccessKeyId"],
                "secretAccessKey": auditor["SecretAccessKey"]},
}))
