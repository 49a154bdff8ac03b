//! Resource ARNs a request names, per service (S3's live in `actions`, beside its IAM mapping).
//!
//! ARNs are built the way IAM policies match them. Where the request does not carry everything
//! the real ARN holds (a secret's random suffix, a stack's id, an IAM role's path), the ARN ends at
//! what the request names, so `secret:prod-*`, `stack/app/*` and `role/deployer` still match.

use super::params::Params;

/// The account, region and partition that ARNs are built in: the connection's account and the
/// region of the request's credential scope.
#[derive(Debug, Clone, Copy)]
pub struct ResourceContext<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// The region of the request's credential scope.
    pub region: &'a str,
    /// The upstream AWS account the connection acts in.
    pub account_id: &'a str,
}

impl ResourceContext<'_> {
    fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{}:{}:{resource}", self.partition, self.region, self.account_id)
    }

    fn global_arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}::{}:{resource}", self.partition, self.account_id)
    }
}

fn is_arn(value: &str) -> bool {
    value.starts_with("arn:")
}

/// The ARNs of the resources the request names, for every service but S3.
pub(crate) fn named_resources(
    iam_prefix: &str,
    operation: &str,
    params: &Params<'_>,
    ctx: &ResourceContext<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |arn: String| {
        if !arn.is_empty() && !out.contains(&arn) {
            out.push(arn);
        }
    };
    let one = |name: &str| params.string(name).filter(|v| !v.is_empty());
    let many = |path: &str| params.values(path).into_iter().filter(|v| !v.is_empty());
    match iam_prefix {
        "dynamodb" => {
            let table = |name: &str| {
                if is_arn(name) {
                    name.to_owned()
                } else {
                    ctx.arn("dynamodb", &format!("table/{name}"))
                }
            };
            for name in
                one("TableName").into_iter().chain(one("TableArn")).chain(one("ResourceArn"))
            {
                push(table(name));
            }
            for name in params.object_keys("RequestItems") {
                push(table(name));
            }
            for path in [
                "TransactItems[].Get.TableName",
                "TransactItems[].Put.TableName",
                "TransactItems[].Update.TableName",
                "TransactItems[].Delete.TableName",
                "TransactItems[].ConditionCheck.TableName",
            ] {
                for name in many(path) {
                    push(table(name));
                }
            }
        }
        "lambda" => {
            if let Some(name) = one("FunctionName") {
                let mut arn = if is_arn(name) {
                    name.to_owned()
                } else if name.contains(":function:") {
                    format!("arn:{}:lambda:{}:{name}", ctx.partition, ctx.region)
                } else {
                    ctx.arn("lambda", &format!("function:{name}"))
                };
                if let Some(qualifier) = one("Qualifier") {
                    // function:name has 7 colon-separated parts; a qualified one has 8.
                    if arn.split(':').count() == 7 {
                        arn = format!("{arn}:{qualifier}");
                    }
                }
                push(arn);
            }
            if let Some(layer) = one("LayerName") {
                push(if is_arn(layer) {
                    layer.to_owned()
                } else {
                    ctx.arn("lambda", &format!("layer:{layer}"))
                });
            }
        }
        "sqs" => {
            if let Some(arn) = one("QueueUrl").and_then(|url| queue_arn_from_url(url, ctx)) {
                push(arn);
            }
            if let Some(name) = one("QueueName") {
                push(ctx.arn("sqs", name));
            }
        }
        "sns" => {
            for name in ["TopicArn", "TargetArn", "ResourceArn"] {
                if let Some(arn) = one(name) {
                    push(arn.to_owned());
                }
            }
            if operation == "CreateTopic"
                && let Some(name) = one("Name")
            {
                push(ctx.arn("sns", name));
            }
        }
        "kms" => {
            for name in ["KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId"] {
                if let Some(key) = one(name) {
                    push(kms_key_arn(key, ctx));
                }
            }
            if let Some(alias) = one("AliasName") {
                push(kms_key_arn(alias, ctx));
            }
        }
        "secretsmanager" => {
            let secret = |id: &str| {
                if is_arn(id) {
                    id.to_owned()
                } else {
                    ctx.arn("secretsmanager", &format!("secret:{id}"))
                }
            };
            if let Some(id) = one("SecretId") {
                push(secret(id));
            }
            if operation == "CreateSecret"
                && let Some(name) = one("Name")
            {
                push(secret(name));
            }
            for id in many("SecretIdList[]") {
                push(secret(id));
            }
        }
        "ssm" if operation.contains("Parameter") => {
            let parameter = |name: &str| {
                if is_arn(name) {
                    name.to_owned()
                } else if name.starts_with('/') {
                    ctx.arn("ssm", &format!("parameter{name}"))
                } else {
                    ctx.arn("ssm", &format!("parameter/{name}"))
                }
            };
            for name in one("Name").into_iter().chain(one("Path")).chain(many("Names[]")) {
                push(parameter(name));
            }
        }
        "kinesis" => {
            for arn in
                one("StreamARN").into_iter().chain(one("ConsumerARN")).chain(one("ResourceARN"))
            {
                push(arn.to_owned());
            }
            if let Some(name) = one("StreamName") {
                push(ctx.arn("kinesis", &format!("stream/{name}")));
            }
        }
        "states" => {
            for name in
                ["stateMachineArn", "executionArn", "activityArn", "resourceArn", "mapRunArn"]
            {
                if let Some(arn) = one(name) {
                    push(arn.to_owned());
                }
            }
            if operation == "CreateStateMachine"
                && let Some(name) = one("name")
            {
                push(ctx.arn("states", &format!("stateMachine:{name}")));
            }
        }
        "logs" => {
            for name in one("logGroupName").into_iter().chain(one("logGroupIdentifier")) {
                push(if is_arn(name) {
                    name.to_owned()
                } else {
                    ctx.arn("logs", &format!("log-group:{name}"))
                });
            }
            for name in many("logGroupIdentifiers[]") {
                push(if is_arn(name) {
                    name.to_owned()
                } else {
                    ctx.arn("logs", &format!("log-group:{name}"))
                });
            }
        }
        "ecr" => {
            if let Some(name) = one("repositoryName") {
                let account = one("registryId").unwrap_or(ctx.account_id);
                push(format!(
                    "arn:{}:ecr:{}:{account}:repository/{name}",
                    ctx.partition, ctx.region
                ));
            }
        }
        "eks" | "eks-auth" => {
            // The cluster is the `{name}` label of /clusters/{name}/..., `clusterName` in a few
            // bodies, or `name` in CreateCluster's body.
            let cluster = params
                .labels
                .iter()
                .find(|(label, _)| *label == "name")
                .map(|(_, v)| v.as_str())
                .or_else(|| one("clusterName"))
                .or_else(|| if operation == "CreateCluster" { one("name") } else { None });
            if let Some(name) = cluster {
                push(ctx.arn("eks", &format!("cluster/{name}")));
            }
        }
        "cloudformation" => {
            if let Some(name) = one("StackName") {
                push(if is_arn(name) {
                    name.to_owned()
                } else {
                    ctx.arn("cloudformation", &format!("stack/{name}/*"))
                });
            }
            if let Some(name) = one("StackSetName") {
                push(if is_arn(name) {
                    name.to_owned()
                } else {
                    ctx.arn("cloudformation", &format!("stackset/{name}:*"))
                });
            }
        }
        "events" => {
            let bus = one("EventBusName").filter(|b| *b != "default");
            if let Some(bus) = bus {
                push(if is_arn(bus) {
                    bus.to_owned()
                } else {
                    ctx.arn("events", &format!("event-bus/{bus}"))
                });
            }
            let rule = match operation {
                "PutRule" | "DeleteRule" | "DescribeRule" | "EnableRule" | "DisableRule" => {
                    one("Name")
                }
                "PutTargets" | "RemoveTargets" | "ListTargetsByRule" => one("Rule"),
                _ => None,
            };
            if let Some(rule) = rule {
                let bus_name = bus.map(|b| b.rsplit('/').next().unwrap_or(b));
                push(match bus_name {
                    _ if is_arn(rule) => rule.to_owned(),
                    Some(bus) => ctx.arn("events", &format!("rule/{bus}/{rule}")),
                    None => ctx.arn("events", &format!("rule/{rule}")),
                });
            }
            for entry_bus in many("Entries[].EventBusName") {
                push(if is_arn(entry_bus) {
                    entry_bus.to_owned()
                } else {
                    ctx.arn("events", &format!("event-bus/{entry_bus}"))
                });
            }
        }
        "sts" => {
            if let Some(arn) = one("RoleArn") {
                push(arn.to_owned());
            }
        }
        "iam" => {
            for (member, kind) in [
                ("RoleName", "role"),
                ("UserName", "user"),
                ("GroupName", "group"),
                ("InstanceProfileName", "instance-profile"),
            ] {
                if let Some(name) = one(member) {
                    push(ctx.global_arn("iam", &format!("{kind}/{name}")));
                }
            }
            for member in ["PolicyArn", "OpenIDConnectProviderArn", "SAMLProviderArn"] {
                if let Some(arn) = one(member) {
                    push(arn.to_owned());
                }
            }
        }
        "ec2" => {
            for (member, kind) in EC2_ID_MEMBERS {
                let list = format!("{member}[]");
                for id in many(&list).chain(one(member)) {
                    push(ctx.arn("ec2", &format!("{kind}/{id}")));
                }
            }
            // Images are regional and owned by no account in their ARN.
            for id in many("ImageId[]").chain(one("ImageId")) {
                push(format!("arn:{}:ec2:{}::image/{id}", ctx.partition, ctx.region));
            }
        }
        "cloudwatch" => {
            for name in one("AlarmName").into_iter().chain(many("AlarmNames[]")) {
                push(ctx.arn("cloudwatch", &format!("alarm:{name}")));
            }
        }
        "bedrock" => {
            if let Some(model) = one("modelId") {
                push(bedrock_model_arn(model, ctx));
            }
            if let Some(guardrail) = one("guardrailIdentifier") {
                push(if is_arn(guardrail) {
                    guardrail.to_owned()
                } else {
                    ctx.arn("bedrock", &format!("guardrail/{guardrail}"))
                });
            }
        }
        _ => {}
    }
    out
}

/// EC2 members that carry a resource id (singly, or as `Member.N` lists), and the resource type
/// of their ARN.
const EC2_ID_MEMBERS: &[(&str, &str)] = &[
    ("InstanceId", "instance"),
    ("VolumeId", "volume"),
    ("SnapshotId", "snapshot"),
    ("GroupId", "security-group"),
    ("SecurityGroupId", "security-group"),
    ("VpcId", "vpc"),
    ("SubnetId", "subnet"),
    ("NetworkInterfaceId", "network-interface"),
    ("KeyName", "key-pair"),
    ("AllocationId", "elastic-ip"),
    ("LaunchTemplateId", "launch-template"),
];

/// `https://sqs.<region>.amazonaws.com/<account>/<name>` (any host) to the queue's ARN.
fn queue_arn_from_url(url: &str, ctx: &ResourceContext<'_>) -> Option<String> {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = without_scheme.split_once('/').map(|(_, path)| path)?;
    let path = path.split(['?', '#']).next().unwrap_or(path).trim_end_matches('/');
    let (account, name) = path.rsplit_once('/')?;
    let account = account.rsplit('/').next().unwrap_or(account);
    if account.is_empty() || name.is_empty() {
        return None;
    }
    Some(format!("arn:{}:sqs:{}:{account}:{name}", ctx.partition, ctx.region))
}

fn kms_key_arn(key: &str, ctx: &ResourceContext<'_>) -> String {
    if is_arn(key) {
        key.to_owned()
    } else if key.starts_with("alias/") {
        ctx.arn("kms", key)
    } else {
        ctx.arn("kms", &format!("key/{key}"))
    }
}

/// A Bedrock model id to its ARN: ARNs as sent, cross-region inference profile ids
/// (`us.anthropic...`) to the account's inference profile, anything else to the foundation model.
fn bedrock_model_arn(model: &str, ctx: &ResourceContext<'_>) -> String {
    if is_arn(model) {
        return model.to_owned();
    }
    let is_profile = ["us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global."]
        .iter()
        .any(|prefix| model.starts_with(prefix));
    if is_profile {
        ctx.arn("bedrock", &format!("inference-profile/{model}"))
    } else {
        format!("arn:{}:bedrock:{}::foundation-model/{model}", ctx.partition, ctx.region)
    }
}
