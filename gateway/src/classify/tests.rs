//! Table-driven classification tests: request shape in, operation, actions and resources out.

use std::collections::BTreeSet;

use super::*;

const ACCOUNT: &str = "111122223333";
const CONTEXT: ResourceContext<'static> =
    ResourceContext { partition: "aws", region: "us-east-1", account_id: ACCOUNT };

fn classifier() -> Classifier {
    Classifier::new(["chaperone-gateway.team-a.svc", "localhost"])
}

/// One request shape and what it must classify as.
struct Case {
    signing: &'static str,
    /// `METHOD /path?query`.
    request: &'static str,
    /// `X-Amz-Target`, or empty.
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    operation: Option<&'static str>,
    actions: &'static [(&'static str, &'static [&'static str])],
}

const fn c(
    signing: &'static str,
    request: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    operation: Option<&'static str>,
    actions: &'static [(&'static str, &'static [&'static str])],
) -> Case {
    Case { signing, request, target, headers, body, operation, actions }
}

const NONE: &[(&str, &str)] = &[];
const COPY_B: &[(&str, &str)] = &[("x-amz-copy-source", "/src/b.txt")];

fn run(case: &Case) -> Classification {
    let (method, target) = case.request.split_once(' ').unwrap_or(("GET", case.request));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(&str, &str)> = case.headers.to_vec();
    if !case.target.is_empty() {
        headers.push(("X-Amz-Target", case.target));
        headers.push(("Content-Type", "application/x-amz-json-1.0"));
    } else if case.body.starts_with("Action=") {
        headers.push(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"));
    }
    let request = AwsRequest {
        signing_name: case.signing,
        method,
        path,
        query,
        headers: &headers,
        body: Some(case.body.as_bytes()),
        body_truncated: false,
    };
    classifier().classify(&request, &CONTEXT)
}

fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let got = run(case);
        let actions: Vec<(String, Vec<String>)> =
            got.actions.iter().map(|a| (a.action.clone(), a.resources.clone())).collect();
        let want: Vec<(String, Vec<String>)> = case
            .actions
            .iter()
            .map(|(a, r)| ((*a).to_owned(), r.iter().map(|s| (*s).to_owned()).collect()))
            .collect();
        if got.operation != case.operation || actions != want {
            failures.push(format!(
                "{} {} [{}]\n   want {:?} {:?}\n    got {:?} {:?} ({:?})",
                case.signing,
                case.request,
                case.target,
                case.operation,
                want,
                got.operation,
                actions,
                got.unclassified.map(|u| u.to_string())
            ));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[rustfmt::skip]
const S3_CASES: &[Case] = &[
    c("s3", "GET /bkt/dir/a.txt", "", NONE, "", Some("GetObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt/dir/a.txt"])]),
    c("s3", "GET /bkt/a.txt?versionId=v1", "", NONE, "", Some("GetObject"), &[("s3:GetObjectVersion", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "HEAD /bkt/a.txt", "", NONE, "", Some("HeadObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "HEAD /bkt/a.txt?versionId=v1", "", NONE, "", Some("HeadObject"), &[("s3:GetObjectVersion", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "HEAD /bkt", "", NONE, "", Some("HeadBucket"), &[("s3:ListBucket", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt", "", NONE, "", Some("ListObjects"), &[("s3:ListBucket", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?list-type=2&prefix=a%2F", "", NONE, "", Some("ListObjectsV2"), &[("s3:ListBucket", &["arn:aws:s3:::bkt"])]),
    // A selecting key with a value the route does not take is another operation's, not ours.
    c("s3", "GET /bkt?list-type=3", "", NONE, "", None, &[("s3:Unknown", &[])]),
    c("s3", "GET /", "", NONE, "", Some("ListBuckets"), &[("s3:ListAllMyBuckets", &[])]),
    c("s3", "PUT /bkt", "", NONE, "", Some("CreateBucket"), &[("s3:CreateBucket", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt/", "", NONE, "", Some("CreateBucket"), &[("s3:CreateBucket", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt", "", NONE, "", Some("DeleteBucket"), &[("s3:DeleteBucket", &["arn:aws:s3:::bkt"])]),
    // PutObject and the routes that collide with it.
    c("s3", "PUT /bkt/a.txt", "", NONE, "", Some("PutObject"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "PUT /bkt/dir/", "", NONE, "", Some("PutObject"), &[("s3:PutObject", &["arn:aws:s3:::bkt/dir/"])]),
    c("s3", "PUT /bkt/a.txt", "", COPY_B, "", Some("CopyObject"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"]), ("s3:GetObject", &["arn:aws:s3:::src/b.txt"])]),
    c("s3", "PUT /bkt/a.txt", "", &[("X-Amz-Copy-Source", "src/dir%2Fb%20c.txt?versionId=v9")], "", Some("CopyObject"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"]), ("s3:GetObjectVersion", &["arn:aws:s3:::src/dir/b c.txt"])]),
    c("s3", "PUT /bkt/a.txt?partNumber=1&uploadId=u1", "", NONE, "", Some("UploadPart"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "PUT /bkt/a.txt?partNumber=2&uploadId=u1", "", COPY_B, "", Some("UploadPartCopy"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"]), ("s3:GetObject", &["arn:aws:s3:::src/b.txt"])]),
    c("s3", "PUT /bkt/a.txt?uploadId=u1", "", NONE, "", None, &[("s3:Unknown", &[])]),
    c("s3", "POST /bkt/a.txt?uploads", "", NONE, "", Some("CreateMultipartUpload"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "POST /bkt/a.txt?uploadId=u1", "", NONE, "<CompleteMultipartUpload/>", Some("CompleteMultipartUpload"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "DELETE /bkt/a.txt?uploadId=u1", "", NONE, "", Some("AbortMultipartUpload"), &[("s3:AbortMultipartUpload", &["arn:aws:s3:::bkt/a.txt"])]),
    // GetObject vs ListParts.
    c("s3", "GET /bkt/a.txt?uploadId=u1", "", NONE, "", Some("ListParts"), &[("s3:ListMultipartUploadParts", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt?uploads", "", NONE, "", Some("ListMultipartUploads"), &[("s3:ListBucketMultipartUploads", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt/a.txt", "", NONE, "", Some("DeleteObject"), &[("s3:DeleteObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "DELETE /bkt/a.txt?versionId=v2", "", NONE, "", Some("DeleteObject"), &[("s3:DeleteObjectVersion", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "POST /bkt?delete", "", NONE, "<Delete><Object><Key>a.txt</Key></Object><Object><Key>logs/b&amp;c</Key><VersionId>v3</VersionId></Object><Object><Key>d</Key></Object></Delete>", Some("DeleteObjects"), &[("s3:DeleteObject", &["arn:aws:s3:::bkt/a.txt", "arn:aws:s3:::bkt/d"]), ("s3:DeleteObjectVersion", &["arn:aws:s3:::bkt/logs/b&c"])]),
    // Bucket subresources.
    c("s3", "GET /bkt?lifecycle", "", NONE, "", Some("GetBucketLifecycleConfiguration"), &[("s3:GetLifecycleConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?lifecycle", "", NONE, "", Some("PutBucketLifecycleConfiguration"), &[("s3:PutLifecycleConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt?lifecycle", "", NONE, "", Some("DeleteBucketLifecycle"), &[("s3:PutLifecycleConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?policy", "", NONE, "", Some("GetBucketPolicy"), &[("s3:GetBucketPolicy", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?policy", "", NONE, "{}", Some("PutBucketPolicy"), &[("s3:PutBucketPolicy", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt?policy", "", NONE, "", Some("DeleteBucketPolicy"), &[("s3:DeleteBucketPolicy", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?policyStatus", "", NONE, "", Some("GetBucketPolicyStatus"), &[("s3:GetBucketPolicyStatus", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?tagging", "", NONE, "", Some("GetBucketTagging"), &[("s3:GetBucketTagging", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?tagging", "", NONE, "", Some("PutBucketTagging"), &[("s3:PutBucketTagging", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt?tagging", "", NONE, "", Some("DeleteBucketTagging"), &[("s3:PutBucketTagging", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt/a.txt?tagging", "", NONE, "", Some("GetObjectTagging"), &[("s3:GetObjectTagging", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt/a.txt?tagging&versionId=v1", "", NONE, "", Some("GetObjectTagging"), &[("s3:GetObjectVersionTagging", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "PUT /bkt/a.txt?tagging", "", NONE, "", Some("PutObjectTagging"), &[("s3:PutObjectTagging", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "DELETE /bkt/a.txt?tagging", "", NONE, "", Some("DeleteObjectTagging"), &[("s3:DeleteObjectTagging", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt?versioning", "", NONE, "", Some("GetBucketVersioning"), &[("s3:GetBucketVersioning", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?versioning", "", NONE, "", Some("PutBucketVersioning"), &[("s3:PutBucketVersioning", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?versions", "", NONE, "", Some("ListObjectVersions"), &[("s3:ListBucketVersions", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?acl", "", NONE, "", Some("GetBucketAcl"), &[("s3:GetBucketAcl", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?acl", "", NONE, "", Some("PutBucketAcl"), &[("s3:PutBucketAcl", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt/a.txt?acl", "", NONE, "", Some("GetObjectAcl"), &[("s3:GetObjectAcl", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "PUT /bkt/a.txt?acl&versionId=v1", "", NONE, "", Some("PutObjectAcl"), &[("s3:PutObjectVersionAcl", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt?cors", "", NONE, "", Some("GetBucketCors"), &[("s3:GetBucketCORS", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?cors", "", NONE, "", Some("PutBucketCors"), &[("s3:PutBucketCORS", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt?cors", "", NONE, "", Some("DeleteBucketCors"), &[("s3:PutBucketCORS", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?encryption", "", NONE, "", Some("GetBucketEncryption"), &[("s3:GetEncryptionConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?encryption", "", NONE, "", Some("PutBucketEncryption"), &[("s3:PutEncryptionConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?location", "", NONE, "", Some("GetBucketLocation"), &[("s3:GetBucketLocation", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?logging", "", NONE, "", Some("GetBucketLogging"), &[("s3:GetBucketLogging", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?notification", "", NONE, "", Some("GetBucketNotificationConfiguration"), &[("s3:GetBucketNotification", &["arn:aws:s3:::bkt"])]),
    c("s3", "PUT /bkt?notification", "", NONE, "", Some("PutBucketNotificationConfiguration"), &[("s3:PutBucketNotification", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?publicAccessBlock", "", NONE, "", Some("GetPublicAccessBlock"), &[("s3:GetBucketPublicAccessBlock", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt?publicAccessBlock", "", NONE, "", Some("DeletePublicAccessBlock"), &[("s3:PutBucketPublicAccessBlock", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?object-lock", "", NONE, "", Some("GetObjectLockConfiguration"), &[("s3:GetBucketObjectLockConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?ownershipControls", "", NONE, "", Some("GetBucketOwnershipControls"), &[("s3:GetBucketOwnershipControls", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?replication", "", NONE, "", Some("GetBucketReplication"), &[("s3:GetReplicationConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?website", "", NONE, "", Some("GetBucketWebsite"), &[("s3:GetBucketWebsite", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?accelerate", "", NONE, "", Some("GetBucketAccelerateConfiguration"), &[("s3:GetAccelerateConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?requestPayment", "", NONE, "", Some("GetBucketRequestPayment"), &[("s3:GetBucketRequestPayment", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?analytics", "", NONE, "", Some("ListBucketAnalyticsConfigurations"), &[("s3:GetAnalyticsConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?analytics&id=a1", "", NONE, "", Some("GetBucketAnalyticsConfiguration"), &[("s3:GetAnalyticsConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?metrics&id=m1", "", NONE, "", Some("GetBucketMetricsConfiguration"), &[("s3:GetMetricsConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?inventory", "", NONE, "", Some("ListBucketInventoryConfigurations"), &[("s3:GetInventoryConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt?intelligent-tiering&id=t", "", NONE, "", Some("GetBucketIntelligentTieringConfiguration"), &[("s3:GetIntelligentTieringConfiguration", &["arn:aws:s3:::bkt"])]),
    c("s3", "GET /bkt/a.txt?legal-hold", "", NONE, "", Some("GetObjectLegalHold"), &[("s3:GetObjectLegalHold", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "PUT /bkt/a.txt?retention", "", NONE, "", Some("PutObjectRetention"), &[("s3:PutObjectRetention", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "POST /bkt/a.txt?restore", "", NONE, "", Some("RestoreObject"), &[("s3:RestoreObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "POST /bkt/a.csv?select&select-type=2", "", NONE, "", Some("SelectObjectContent"), &[("s3:GetObject", &["arn:aws:s3:::bkt/a.csv"])]),
    c("s3", "GET /bkt/a.txt?attributes", "", &[("x-amz-object-attributes", "ETag")], "", Some("GetObjectAttributes"), &[("s3:GetObjectAttributes", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt/a.txt?torrent", "", NONE, "", Some("GetObjectTorrent"), &[("s3:GetObjectTorrent", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt?session", "", NONE, "", Some("CreateSession"), &[("s3express:CreateSession", &["arn:aws:s3:::bkt"])]),
    // Keys are decoded once; slashes inside keys stay.
    c("s3", "GET /bkt/dir%2Fa%20b.txt", "", NONE, "", Some("GetObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt/dir/a b.txt"])]),
    c("s3", "GET /bkt//lead", "", NONE, "", Some("GetObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt//lead"])]),
    // The x-id hint never decides: the request's shape does.
    c("s3", "GET /bkt/a.txt?x-id=ListParts", "", NONE, "", Some("GetObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "PUT /bkt/a.txt?x-id=PutObject", "", COPY_B, "", Some("CopyObject"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"]), ("s3:GetObject", &["arn:aws:s3:::src/b.txt"])]),
    c("s3", "PUT /bkt/a.txt?x-id=UploadPart&partNumber=1", "", NONE, "", None, &[("s3:Unknown", &[])]),
    c("s3", "GET /bkt?x-id=ListObjectsV2", "", NONE, "", Some("ListObjects"), &[("s3:ListBucket", &["arn:aws:s3:::bkt"])]),
    c("s3", "DELETE /bkt/a.txt?x-id=AbortMultipartUpload", "", NONE, "", Some("DeleteObject"), &[("s3:DeleteObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt/a.txt?x-id=GetObject&uploadId=u1", "", NONE, "", Some("ListParts"), &[("s3:ListMultipartUploadParts", &["arn:aws:s3:::bkt/a.txt"])]),
    // Virtual-host style, and hosts that are not buckets.
    c("s3", "GET /dir/a.txt", "", &[("Host", "bkt.localhost:8080")], "", Some("GetObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt/dir/a.txt"])]),
    c("s3", "GET /?list-type=2", "", &[("host", "my.bkt.s3.us-east-1.amazonaws.com")], "", Some("ListObjectsV2"), &[("s3:ListBucket", &["arn:aws:s3:::my.bkt"])]),
    c("s3", "POST /a.txt?uploads", "", &[("host", "bkt.chaperone-gateway.team-a.svc:8080")], "", Some("CreateMultipartUpload"), &[("s3:PutObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "PUT /", "", &[("host", "newbkt.localhost")], "", Some("CreateBucket"), &[("s3:CreateBucket", &["arn:aws:s3:::newbkt"])]),
    c("s3", "GET /bkt/a.txt", "", &[("host", "10.96.0.12:8080")], "", Some("GetObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt/a.txt", "", &[("host", "chaperone-gateway.team-a.svc:8080")], "", Some("GetObject"), &[("s3:GetObject", &["arn:aws:s3:::bkt/a.txt"])]),
    c("s3", "GET /bkt?list-type=2", "", &[("host", "s3.us-east-1.amazonaws.com")], "", Some("ListObjectsV2"), &[("s3:ListBucket", &["arn:aws:s3:::bkt"])]),
    // Two subresources, or a subresource and a copy source, at equal specificity: ambiguous.
    c("s3", "GET /bkt?acl&tagging", "", NONE, "", None, &[("s3:Unknown", &[])]),
    c("s3", "PUT /bkt/a.txt?tagging", "", COPY_B, "", None, &[("s3:Unknown", &[])]),
    c("s3", "GET /bkt?uploads&list-type=2", "", NONE, "", None, &[("s3:Unknown", &[])]),
    // A bucket name that is not one cannot smuggle a key prefix past policy.
    c("s3", "GET /bkt%2Fsecret/a.txt", "", NONE, "", None, &[("s3:Unknown", &[])]),
    c("s3", "GET /a.txt", "", &[("host", "bkt%2Fx.localhost")], "", None, &[("s3:Unknown", &[])]),
    // Unknown shapes.
    c("s3", "PATCH /bkt/a.txt", "", NONE, "", None, &[("s3:Unknown", &[])]),
    c("s3", "POST /bkt", "", NONE, "", None, &[("s3:Unknown", &[])]),
];

const DYNAMODB_TABLE: &str = "arn:aws:dynamodb:us-east-1:111122223333:table/users";

#[rustfmt::skip]
const JSON_CASES: &[Case] = &[
    c("dynamodb", "POST /", "DynamoDB_20120810.GetItem", NONE, r#"{"TableName":"users","Key":{"id":{"S":"1"}}}"#, Some("GetItem"), &[("dynamodb:GetItem", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.PutItem", NONE, r#"{"TableName":"users","Item":{}}"#, Some("PutItem"), &[("dynamodb:PutItem", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.UpdateItem", NONE, r#"{"TableName":"users"}"#, Some("UpdateItem"), &[("dynamodb:UpdateItem", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.DeleteItem", NONE, r#"{"TableName":"users"}"#, Some("DeleteItem"), &[("dynamodb:DeleteItem", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.Query", NONE, r#"{"TableName":"users","IndexName":"by-email"}"#, Some("Query"), &[("dynamodb:Query", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.Scan", NONE, r#"{"TableName":"arn:aws:dynamodb:us-east-1:111122223333:table/users"}"#, Some("Scan"), &[("dynamodb:Scan", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.CreateTable", NONE, r#"{"TableName":"users"}"#, Some("CreateTable"), &[("dynamodb:CreateTable", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.DeleteTable", NONE, r#"{"TableName":"users"}"#, Some("DeleteTable"), &[("dynamodb:DeleteTable", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.DescribeTable", NONE, r#"{"TableName":"users"}"#, Some("DescribeTable"), &[("dynamodb:DescribeTable", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.UpdateTable", NONE, r#"{"TableName":"users"}"#, Some("UpdateTable"), &[("dynamodb:UpdateTable", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.ListTables", NONE, "{}", Some("ListTables"), &[("dynamodb:ListTables", &[])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.BatchGetItem", NONE, r#"{"RequestItems":{"users":{},"orders":{}}}"#, Some("BatchGetItem"), &[("dynamodb:BatchGetItem", &["arn:aws:dynamodb:us-east-1:111122223333:table/orders", DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.BatchWriteItem", NONE, r#"{"RequestItems":{"users":[]}}"#, Some("BatchWriteItem"), &[("dynamodb:BatchWriteItem", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.TransactWriteItems", NONE, r#"{"TransactItems":[{"Put":{"TableName":"users"}},{"Delete":{"TableName":"orders"}}]}"#, Some("TransactWriteItems"), &[("dynamodb:TransactWriteItems", &[DYNAMODB_TABLE, "arn:aws:dynamodb:us-east-1:111122223333:table/orders"])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.TransactGetItems", NONE, r#"{"TransactItems":[{"Get":{"TableName":"users"}}]}"#, Some("TransactGetItems"), &[("dynamodb:TransactGetItems", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.DescribeTimeToLive", NONE, r#"{"TableName":"users"}"#, Some("DescribeTimeToLive"), &[("dynamodb:DescribeTimeToLive", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.TagResource", NONE, r#"{"ResourceArn":"arn:aws:dynamodb:us-east-1:111122223333:table/users","Tags":[]}"#, Some("TagResource"), &[("dynamodb:TagResource", &[DYNAMODB_TABLE])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.ExecuteStatement", NONE, r#"{"Statement":"select * from users"}"#, Some("ExecuteStatement"), &[("dynamodb:PartiQLSelect", &[])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.ExecuteStatement", NONE, r#"{"Statement":"DELETE FROM users WHERE id=1"}"#, Some("ExecuteStatement"), &[("dynamodb:PartiQLDelete", &[])]),
    c("dynamodb", "POST /", "DynamoDB_20111205.GetItem", NONE, r#"{"TableName":"users"}"#, None, &[("dynamodb:Unknown", &[])]),
    c("dynamodb", "POST /", "DynamoDB_20120810.Frobnicate", NONE, "{}", None, &[("dynamodb:Unknown", &[])]),
    c("dynamodb", "POST /", "", NONE, r#"{"TableName":"users"}"#, None, &[("dynamodb:Unknown", &[])]),
    c("dynamodb", "POST /", "", NONE, "Action=GetItem&TableName=users", None, &[("dynamodb:Unknown", &[])]),
    // SQS: JSON, and the query protocol older clients still send.
    c("sqs", "POST /", "AmazonSQS.SendMessage", NONE, r#"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs","MessageBody":"x"}"#, Some("SendMessage"), &[("sqs:SendMessage", &["arn:aws:sqs:us-east-1:111122223333:jobs"])]),
    c("sqs", "POST /", "AmazonSQS.ReceiveMessage", NONE, r#"{"QueueUrl":"http://localhost:8080/111122223333/jobs"}"#, Some("ReceiveMessage"), &[("sqs:ReceiveMessage", &["arn:aws:sqs:us-east-1:111122223333:jobs"])]),
    c("sqs", "POST /", "AmazonSQS.DeleteMessage", NONE, r#"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs","ReceiptHandle":"h"}"#, Some("DeleteMessage"), &[("sqs:DeleteMessage", &["arn:aws:sqs:us-east-1:111122223333:jobs"])]),
    c("sqs", "POST /", "AmazonSQS.CreateQueue", NONE, r#"{"QueueName":"jobs"}"#, Some("CreateQueue"), &[("sqs:CreateQueue", &["arn:aws:sqs:us-east-1:111122223333:jobs"])]),
    c("sqs", "POST /", "AmazonSQS.GetQueueUrl", NONE, r#"{"QueueName":"jobs"}"#, Some("GetQueueUrl"), &[("sqs:GetQueueUrl", &["arn:aws:sqs:us-east-1:111122223333:jobs"])]),
    c("sqs", "POST /", "AmazonSQS.ListQueues", NONE, "{}", Some("ListQueues"), &[("sqs:ListQueues", &[])]),
    c("sqs", "POST /", "AmazonSQS.PurgeQueue", NONE, r#"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs"}"#, Some("PurgeQueue"), &[("sqs:PurgeQueue", &["arn:aws:sqs:us-east-1:111122223333:jobs"])]),
    c("sqs", "POST /", "", NONE, "Action=DeleteQueue&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F111122223333%2Fjobs&Version=2012-11-05", Some("DeleteQueue"), &[("sqs:DeleteQueue", &["arn:aws:sqs:us-east-1:111122223333:jobs"])]),
    c("sqs", "POST /", "AmazonSQS.ListQueues", &[("content-type", "application/x-www-form-urlencoded")], "Action=DeleteQueue&QueueUrl=x", None, &[("sqs:Unknown", &[])]),
    // KMS.
    c("kms", "POST /", "TrentService.Encrypt", NONE, r#"{"KeyId":"1234abcd-12ab","Plaintext":"eA=="}"#, Some("Encrypt"), &[("kms:Encrypt", &["arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab"])]),
    c("kms", "POST /", "TrentService.Decrypt", NONE, r#"{"CiphertextBlob":"eA=="}"#, Some("Decrypt"), &[("kms:Decrypt", &[])]),
    c("kms", "POST /", "TrentService.GenerateDataKey", NONE, r#"{"KeyId":"alias/app"}"#, Some("GenerateDataKey"), &[("kms:GenerateDataKey", &["arn:aws:kms:us-east-1:111122223333:alias/app"])]),
    c("kms", "POST /", "TrentService.CreateKey", NONE, "{}", Some("CreateKey"), &[("kms:CreateKey", &[])]),
    c("kms", "POST /", "TrentService.ScheduleKeyDeletion", NONE, r#"{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/k1"}"#, Some("ScheduleKeyDeletion"), &[("kms:ScheduleKeyDeletion", &["arn:aws:kms:us-east-1:111122223333:key/k1"])]),
    c("kms", "POST /", "TrentService.CreateAlias", NONE, r#"{"AliasName":"alias/app","TargetKeyId":"k1"}"#, Some("CreateAlias"), &[("kms:CreateAlias", &["arn:aws:kms:us-east-1:111122223333:key/k1", "arn:aws:kms:us-east-1:111122223333:alias/app"])]),
    c("kms", "POST /", "TrentService.ListKeys", NONE, "{}", Some("ListKeys"), &[("kms:ListKeys", &[])]),
    c("kms", "POST /", "TrentService.ReEncrypt", NONE, r#"{"DestinationKeyId":"k2"}"#, Some("ReEncrypt"), &[("kms:ReEncrypt", &["arn:aws:kms:us-east-1:111122223333:key/k2"])]),
    // Secrets Manager.
    c("secretsmanager", "POST /", "secretsmanager.GetSecretValue", NONE, r#"{"SecretId":"prod/db"}"#, Some("GetSecretValue"), &[("secretsmanager:GetSecretValue", &["arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db"])]),
    c("secretsmanager", "POST /", "secretsmanager.CreateSecret", NONE, r#"{"Name":"prod/api","SecretString":"s"}"#, Some("CreateSecret"), &[("secretsmanager:CreateSecret", &["arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api"])]),
    c("secretsmanager", "POST /", "secretsmanager.DeleteSecret", NONE, r#"{"SecretId":"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"}"#, Some("DeleteSecret"), &[("secretsmanager:DeleteSecret", &["arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"])]),
    c("secretsmanager", "POST /", "secretsmanager.PutSecretValue", NONE, r#"{"SecretId":"prod/db"}"#, Some("PutSecretValue"), &[("secretsmanager:PutSecretValue", &["arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db"])]),
    c("secretsmanager", "POST /", "secretsmanager.ListSecrets", NONE, "{}", Some("ListSecrets"), &[("secretsmanager:ListSecrets", &[])]),
    c("secretsmanager", "POST /", "secretsmanager.BatchGetSecretValue", NONE, r#"{"SecretIdList":["a","b"]}"#, Some("BatchGetSecretValue"), &[("secretsmanager:BatchGetSecretValue", &["arn:aws:secretsmanager:us-east-1:111122223333:secret:a", "arn:aws:secretsmanager:us-east-1:111122223333:secret:b"])]),
    // SSM.
    c("ssm", "POST /", "AmazonSSM.GetParameter", NONE, r#"{"Name":"/app/db","WithDecryption":true}"#, Some("GetParameter"), &[("ssm:GetParameter", &["arn:aws:ssm:us-east-1:111122223333:parameter/app/db"])]),
    c("ssm", "POST /", "AmazonSSM.GetParameters", NONE, r#"{"Names":["plain","/a/b"]}"#, Some("GetParameters"), &[("ssm:GetParameters", &["arn:aws:ssm:us-east-1:111122223333:parameter/plain", "arn:aws:ssm:us-east-1:111122223333:parameter/a/b"])]),
    c("ssm", "POST /", "AmazonSSM.GetParametersByPath", NONE, r#"{"Path":"/app"}"#, Some("GetParametersByPath"), &[("ssm:GetParametersByPath", &["arn:aws:ssm:us-east-1:111122223333:parameter/app"])]),
    c("ssm", "POST /", "AmazonSSM.PutParameter", NONE, r#"{"Name":"/app/db","Value":"v"}"#, Some("PutParameter"), &[("ssm:PutParameter", &["arn:aws:ssm:us-east-1:111122223333:parameter/app/db"])]),
    c("ssm", "POST /", "AmazonSSM.DeleteParameter", NONE, r#"{"Name":"/app/db"}"#, Some("DeleteParameter"), &[("ssm:DeleteParameter", &["arn:aws:ssm:us-east-1:111122223333:parameter/app/db"])]),
    c("ssm", "POST /", "AmazonSSM.DescribeInstanceInformation", NONE, "{}", Some("DescribeInstanceInformation"), &[("ssm:DescribeInstanceInformation", &[])]),
    c("ssm", "POST /", "AmazonSSM.CreateDocument", NONE, r#"{"Name":"not-a-parameter"}"#, Some("CreateDocument"), &[("ssm:CreateDocument", &[])]),
    c("ssm", "POST /", "AmazonSSM.SendCommand", NONE, r#"{"DocumentName":"AWS-RunShellScript","ServiceRoleArn":"arn:aws:iam::111122223333:role/ssm-notify"}"#, Some("SendCommand"), &[("ssm:SendCommand", &[]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/ssm-notify"])]),
    c("ssm", "POST /", "AmazonSSM.CreateActivation", NONE, r#"{"IamRole":"hybrid"}"#, Some("CreateActivation"), &[("ssm:CreateActivation", &[]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/hybrid"])]),
    // CloudWatch Logs.
    c("logs", "POST /", "Logs_20140328.CreateLogGroup", NONE, r#"{"logGroupName":"/app/web"}"#, Some("CreateLogGroup"), &[("logs:CreateLogGroup", &["arn:aws:logs:us-east-1:111122223333:log-group:/app/web"])]),
    c("logs", "POST /", "Logs_20140328.PutLogEvents", NONE, r#"{"logGroupName":"/app/web","logStreamName":"s","logEvents":[]}"#, Some("PutLogEvents"), &[("logs:PutLogEvents", &["arn:aws:logs:us-east-1:111122223333:log-group:/app/web"])]),
    c("logs", "POST /", "Logs_20140328.DescribeLogGroups", NONE, "{}", Some("DescribeLogGroups"), &[("logs:DescribeLogGroups", &[])]),
    c("logs", "POST /", "Logs_20140328.FilterLogEvents", NONE, r#"{"logGroupIdentifier":"arn:aws:logs:us-east-1:111122223333:log-group:/x"}"#, Some("FilterLogEvents"), &[("logs:FilterLogEvents", &["arn:aws:logs:us-east-1:111122223333:log-group:/x"])]),
    c("logs", "POST /", "Logs_20140328.DeleteLogGroup", NONE, r#"{"logGroupName":"/app/web"}"#, Some("DeleteLogGroup"), &[("logs:DeleteLogGroup", &["arn:aws:logs:us-east-1:111122223333:log-group:/app/web"])]),
    c("logs", "POST /", "Logs_20140328.PutSubscriptionFilter", NONE, r#"{"logGroupName":"/a","roleArn":"arn:aws:iam::111122223333:role/cwl"}"#, Some("PutSubscriptionFilter"), &[("logs:PutSubscriptionFilter", &["arn:aws:logs:us-east-1:111122223333:log-group:/a"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/cwl"])]),
    // ECR.
    c("ecr", "POST /", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", NONE, "{}", Some("GetAuthorizationToken"), &[("ecr:GetAuthorizationToken", &[])]),
    c("ecr", "POST /", "AmazonEC2ContainerRegistry_V20150921.CreateRepository", NONE, r#"{"repositoryName":"team/app"}"#, Some("CreateRepository"), &[("ecr:CreateRepository", &["arn:aws:ecr:us-east-1:111122223333:repository/team/app"])]),
    c("ecr", "POST /", "AmazonEC2ContainerRegistry_V20150921.BatchGetImage", NONE, r#"{"repositoryName":"app","registryId":"444455556666"}"#, Some("BatchGetImage"), &[("ecr:BatchGetImage", &["arn:aws:ecr:us-east-1:444455556666:repository/app"])]),
    c("ecr", "POST /", "AmazonEC2ContainerRegistry_V20150921.PutImage", NONE, r#"{"repositoryName":"app"}"#, Some("PutImage"), &[("ecr:PutImage", &["arn:aws:ecr:us-east-1:111122223333:repository/app"])]),
    c("ecr", "POST /", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories", NONE, "{}", Some("DescribeRepositories"), &[("ecr:DescribeRepositories", &[])]),
    c("ecr", "POST /", "AmazonEC2ContainerRegistry_V20150921.DeleteRepository", NONE, r#"{"repositoryName":"app","force":true}"#, Some("DeleteRepository"), &[("ecr:DeleteRepository", &["arn:aws:ecr:us-east-1:111122223333:repository/app"])]),
    // EventBridge.
    c("events", "POST /", "AWSEvents.PutRule", NONE, r#"{"Name":"nightly","ScheduleExpression":"rate(1 day)","RoleArn":"arn:aws:iam::111122223333:role/ev"}"#, Some("PutRule"), &[("events:PutRule", &["arn:aws:events:us-east-1:111122223333:rule/nightly"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/ev"])]),
    c("events", "POST /", "AWSEvents.PutTargets", NONE, r#"{"Rule":"nightly","EventBusName":"orders","Targets":[{"Id":"1","Arn":"x","RoleArn":"arn:aws:iam::111122223333:role/a"},{"Id":"2","Arn":"y"},{"Id":"3","Arn":"z","RoleArn":"arn:aws:iam::111122223333:role/b"}]}"#, Some("PutTargets"), &[("events:PutTargets", &["arn:aws:events:us-east-1:111122223333:event-bus/orders", "arn:aws:events:us-east-1:111122223333:rule/orders/nightly"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/a", "arn:aws:iam::111122223333:role/b"])]),
    c("events", "POST /", "AWSEvents.PutEvents", NONE, r#"{"Entries":[{"EventBusName":"orders","Detail":"{}"}]}"#, Some("PutEvents"), &[("events:PutEvents", &["arn:aws:events:us-east-1:111122223333:event-bus/orders"])]),
    c("events", "POST /", "AWSEvents.ListRules", NONE, "{}", Some("ListRules"), &[("events:ListRules", &[])]),
    c("events", "POST /", "AWSEvents.DeleteRule", NONE, r#"{"Name":"nightly"}"#, Some("DeleteRule"), &[("events:DeleteRule", &["arn:aws:events:us-east-1:111122223333:rule/nightly"])]),
    c("events", "POST /", "AWSEvents.CreateEventBus", NONE, r#"{"Name":"orders"}"#, Some("CreateEventBus"), &[("events:CreateEventBus", &[])]),
    // Step Functions.
    c("states", "POST /", "AWSStepFunctions.CreateStateMachine", NONE, r#"{"name":"flow","definition":"{}","roleArn":"arn:aws:iam::111122223333:role/sfn"}"#, Some("CreateStateMachine"), &[("states:CreateStateMachine", &["arn:aws:states:us-east-1:111122223333:stateMachine:flow"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/sfn"])]),
    c("states", "POST /", "AWSStepFunctions.UpdateStateMachine", NONE, r#"{"stateMachineArn":"arn:aws:states:us-east-1:111122223333:stateMachine:flow","roleArn":"arn:aws:iam::111122223333:role/sfn2"}"#, Some("UpdateStateMachine"), &[("states:UpdateStateMachine", &["arn:aws:states:us-east-1:111122223333:stateMachine:flow"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/sfn2"])]),
    c("states", "POST /", "AWSStepFunctions.StartExecution", NONE, r#"{"stateMachineArn":"arn:aws:states:us-east-1:111122223333:stateMachine:flow","input":"{}"}"#, Some("StartExecution"), &[("states:StartExecution", &["arn:aws:states:us-east-1:111122223333:stateMachine:flow"])]),
    c("states", "POST /", "AWSStepFunctions.DescribeExecution", NONE, r#"{"executionArn":"arn:aws:states:us-east-1:111122223333:execution:flow:e1"}"#, Some("DescribeExecution"), &[("states:DescribeExecution", &["arn:aws:states:us-east-1:111122223333:execution:flow:e1"])]),
    c("states", "POST /", "AWSStepFunctions.StopExecution", NONE, r#"{"executionArn":"arn:aws:states:us-east-1:111122223333:execution:flow:e1"}"#, Some("StopExecution"), &[("states:StopExecution", &["arn:aws:states:us-east-1:111122223333:execution:flow:e1"])]),
    c("states", "POST /", "AWSStepFunctions.ListStateMachines", NONE, "{}", Some("ListStateMachines"), &[("states:ListStateMachines", &[])]),
    c("states", "POST /", "AWSStepFunctions.DeleteStateMachine", NONE, r#"{"stateMachineArn":"arn:aws:states:us-east-1:111122223333:stateMachine:flow"}"#, Some("DeleteStateMachine"), &[("states:DeleteStateMachine", &["arn:aws:states:us-east-1:111122223333:stateMachine:flow"])]),
    // Kinesis.
    c("kinesis", "POST /", "Kinesis_20131202.PutRecord", NONE, r#"{"StreamName":"clicks","Data":"eA==","PartitionKey":"k"}"#, Some("PutRecord"), &[("kinesis:PutRecord", &["arn:aws:kinesis:us-east-1:111122223333:stream/clicks"])]),
    c("kinesis", "POST /", "Kinesis_20131202.PutRecords", NONE, r#"{"StreamARN":"arn:aws:kinesis:us-east-1:111122223333:stream/clicks","Records":[]}"#, Some("PutRecords"), &[("kinesis:PutRecords", &["arn:aws:kinesis:us-east-1:111122223333:stream/clicks"])]),
    c("kinesis", "POST /", "Kinesis_20131202.GetRecords", NONE, r#"{"ShardIterator":"it"}"#, Some("GetRecords"), &[("kinesis:GetRecords", &[])]),
    c("kinesis", "POST /", "Kinesis_20131202.CreateStream", NONE, r#"{"StreamName":"clicks","ShardCount":1}"#, Some("CreateStream"), &[("kinesis:CreateStream", &["arn:aws:kinesis:us-east-1:111122223333:stream/clicks"])]),
    c("kinesis", "POST /", "Kinesis_20131202.DescribeStream", NONE, r#"{"StreamName":"clicks"}"#, Some("DescribeStream"), &[("kinesis:DescribeStream", &["arn:aws:kinesis:us-east-1:111122223333:stream/clicks"])]),
    c("kinesis", "POST /", "Kinesis_20131202.ListStreams", NONE, "{}", Some("ListStreams"), &[("kinesis:ListStreams", &[])]),
    c("kinesis", "POST /", "Kinesis_20131202.GetShardIterator", NONE, r#"{"StreamName":"clicks","ShardId":"s","ShardIteratorType":"LATEST"}"#, Some("GetShardIterator"), &[("kinesis:GetShardIterator", &["arn:aws:kinesis:us-east-1:111122223333:stream/clicks"])]),
    // CloudWatch over JSON and CBOR.
    c("monitoring", "POST /", "GraniteServiceVersion20100801.PutMetricAlarm", NONE, r#"{"AlarmName":"high-cpu"}"#, Some("PutMetricAlarm"), &[("cloudwatch:PutMetricAlarm", &["arn:aws:cloudwatch:us-east-1:111122223333:alarm:high-cpu"])]),
    c("monitoring", "POST /service/GraniteServiceVersion20100801/operation/GetMetricData", "", &[("smithy-protocol", "rpc-v2-cbor"), ("content-type", "application/cbor")], "", Some("GetMetricData"), &[("cloudwatch:GetMetricData", &[])]),
    c("monitoring", "POST /service/GraniteServiceVersion20100801/operation/Nope", "", &[("smithy-protocol", "rpc-v2-cbor")], "", None, &[("cloudwatch:Unknown", &[])]),
];

#[rustfmt::skip]
const QUERY_CASES: &[Case] = &[
    // STS.
    c("sts", "POST /", "", NONE, "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fadmin&RoleSessionName=s&Version=2011-06-15", Some("AssumeRole"), &[("sts:AssumeRole", &["arn:aws:iam::111122223333:role/admin"])]),
    c("sts", "POST /", "", NONE, "Action=GetCallerIdentity&Version=2011-06-15", Some("GetCallerIdentity"), &[("sts:GetCallerIdentity", &[])]),
    c("sts", "GET /?Action=GetCallerIdentity&Version=2011-06-15", "", NONE, "", Some("GetCallerIdentity"), &[("sts:GetCallerIdentity", &[])]),
    c("sts", "POST /", "", NONE, "Action=GetSessionToken&Version=2011-06-15", Some("GetSessionToken"), &[("sts:GetSessionToken", &[])]),
    c("sts", "POST /", "", NONE, "Action=GetFederationToken&Name=bob&Version=2011-06-15", Some("GetFederationToken"), &[("sts:GetFederationToken", &[])]),
    c("sts", "POST /", "", NONE, "Action=AssumeRoleWithWebIdentity&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fweb&WebIdentityToken=t", Some("AssumeRoleWithWebIdentity"), &[("sts:AssumeRoleWithWebIdentity", &["arn:aws:iam::111122223333:role/web"])]),
    c("sts", "POST /", "", NONE, "Action=AssumeRoleWithSAML&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fsaml", Some("AssumeRoleWithSAML"), &[("sts:AssumeRoleWithSAML", &["arn:aws:iam::111122223333:role/saml"])]),
    c("sts", "POST /", "", NONE, "Action=DecodeAuthorizationMessage&EncodedMessage=x", Some("DecodeAuthorizationMessage"), &[("sts:DecodeAuthorizationMessage", &[])]),
    // Two different Actions in one request are not resolved in anyone's favour.
    // Ambiguous, and the credential operation either copy names is still seen.
    c("sts", "POST /?Action=GetCallerIdentity", "", NONE, "Action=AssumeRole&RoleArn=x", None, &[("sts:Unknown", &[]), ("sts:AssumeRole", &[])]),
    c("sts", "POST /", "", NONE, "Action=GetCallerIdentity&Action=GetSessionToken", None, &[("sts:Unknown", &[]), ("sts:GetSessionToken", &[])]),
    c("sts", "POST /", "", NONE, "Version=2011-06-15", None, &[("sts:Unknown", &[])]),
    // IAM.
    c("iam", "POST /", "", NONE, "Action=ListUsers&Version=2010-05-08", Some("ListUsers"), &[("iam:ListUsers", &[])]),
    c("iam", "POST /", "", NONE, "Action=CreateRole&RoleName=deployer&AssumeRolePolicyDocument=%7B%7D", Some("CreateRole"), &[("iam:CreateRole", &["arn:aws:iam::111122223333:role/deployer"])]),
    c("iam", "POST /", "", NONE, "Action=DeleteRole&RoleName=deployer", Some("DeleteRole"), &[("iam:DeleteRole", &["arn:aws:iam::111122223333:role/deployer"])]),
    c("iam", "POST /", "", NONE, "Action=AttachRolePolicy&RoleName=deployer&PolicyArn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FAdministratorAccess", Some("AttachRolePolicy"), &[("iam:AttachRolePolicy", &["arn:aws:iam::111122223333:role/deployer", "arn:aws:iam::aws:policy/AdministratorAccess"])]),
    c("iam", "POST /", "", NONE, "Action=CreateAccessKey&UserName=bob", Some("CreateAccessKey"), &[("iam:CreateAccessKey", &["arn:aws:iam::111122223333:user/bob"])]),
    c("iam", "POST /", "", NONE, "Action=CreateLoginProfile&UserName=bob&Password=p", Some("CreateLoginProfile"), &[("iam:CreateLoginProfile", &["arn:aws:iam::111122223333:user/bob"])]),
    c("iam", "POST /", "", NONE, "Action=GetUser", Some("GetUser"), &[("iam:GetUser", &[])]),
    c("iam", "POST /", "", NONE, "Action=PutRolePolicy&RoleName=r&PolicyName=p&PolicyDocument=%7B%7D", Some("PutRolePolicy"), &[("iam:PutRolePolicy", &["arn:aws:iam::111122223333:role/r"])]),
    c("iam", "POST /", "", NONE, "Action=AddUserToGroup&UserName=bob&GroupName=admins", Some("AddUserToGroup"), &[("iam:AddUserToGroup", &["arn:aws:iam::111122223333:user/bob", "arn:aws:iam::111122223333:group/admins"])]),
    c("iam", "POST /", "", NONE, "Action=ListRoles&PathPrefix=%2F", Some("ListRoles"), &[("iam:ListRoles", &[])]),
    c("iam", "POST /", "", NONE, "Action=Frobnicate", None, &[("iam:Unknown", &[])]),
    // SNS.
    c("sns", "POST /", "", NONE, "Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A111122223333%3Aalerts&Message=hi", Some("Publish"), &[("sns:Publish", &["arn:aws:sns:us-east-1:111122223333:alerts"])]),
    c("sns", "POST /", "", NONE, "Action=CreateTopic&Name=alerts", Some("CreateTopic"), &[("sns:CreateTopic", &["arn:aws:sns:us-east-1:111122223333:alerts"])]),
    c("sns", "POST /", "", NONE, "Action=Subscribe&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A111122223333%3Aalerts&Protocol=email&Endpoint=a%40b", Some("Subscribe"), &[("sns:Subscribe", &["arn:aws:sns:us-east-1:111122223333:alerts"])]),
    c("sns", "POST /", "", NONE, "Action=ListTopics", Some("ListTopics"), &[("sns:ListTopics", &[])]),
    c("sns", "POST /", "", NONE, "Action=DeleteTopic&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A111122223333%3Aalerts", Some("DeleteTopic"), &[("sns:DeleteTopic", &["arn:aws:sns:us-east-1:111122223333:alerts"])]),
    // EC2.
    c("ec2", "POST /", "", NONE, "Action=DescribeInstances&Version=2016-11-15", Some("DescribeInstances"), &[("ec2:DescribeInstances", &[])]),
    c("ec2", "POST /", "", NONE, "Action=TerminateInstances&InstanceId.1=i-1&InstanceId.2=i-2&Version=2016-11-15", Some("TerminateInstances"), &[("ec2:TerminateInstances", &["arn:aws:ec2:us-east-1:111122223333:instance/i-1", "arn:aws:ec2:us-east-1:111122223333:instance/i-2"])]),
    c("ec2", "POST /", "", NONE, "Action=StopInstances&InstanceId.1=i-1", Some("StopInstances"), &[("ec2:StopInstances", &["arn:aws:ec2:us-east-1:111122223333:instance/i-1"])]),
    c("ec2", "POST /", "", NONE, "Action=StartInstances&InstanceId.1=i-1", Some("StartInstances"), &[("ec2:StartInstances", &["arn:aws:ec2:us-east-1:111122223333:instance/i-1"])]),
    c("ec2", "POST /", "", NONE, "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1&IamInstanceProfile.Arn=arn%3Aaws%3Aiam%3A%3A111122223333%3Ainstance-profile%2Fweb", Some("RunInstances"), &[("ec2:RunInstances", &["arn:aws:ec2:us-east-1::image/ami-1"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/*"])]),
    c("ec2", "POST /", "", NONE, "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1&SubnetId=subnet-1&SecurityGroupId.1=sg-9", Some("RunInstances"), &[("ec2:RunInstances", &["arn:aws:ec2:us-east-1:111122223333:security-group/sg-9", "arn:aws:ec2:us-east-1:111122223333:subnet/subnet-1", "arn:aws:ec2:us-east-1::image/ami-1"])]),
    c("ec2", "POST /", "", NONE, "Action=DeleteVolume&VolumeId=vol-1", Some("DeleteVolume"), &[("ec2:DeleteVolume", &["arn:aws:ec2:us-east-1:111122223333:volume/vol-1"])]),
    c("ec2", "POST /", "", NONE, "Action=DeleteSecurityGroup&GroupId=sg-1", Some("DeleteSecurityGroup"), &[("ec2:DeleteSecurityGroup", &["arn:aws:ec2:us-east-1:111122223333:security-group/sg-1"])]),
    c("ec2", "POST /", "", NONE, "Action=CreateVpc&CidrBlock=10.0.0.0%2F16", Some("CreateVpc"), &[("ec2:CreateVpc", &[])]),
    c("ec2", "POST /", "", NONE, "Action=DescribeVpcs", Some("DescribeVpcs"), &[("ec2:DescribeVpcs", &[])]),
    c("ec2", "POST /", "", NONE, "Action=AuthorizeSecurityGroupIngress&GroupId=sg-1", Some("AuthorizeSecurityGroupIngress"), &[("ec2:AuthorizeSecurityGroupIngress", &["arn:aws:ec2:us-east-1:111122223333:security-group/sg-1"])]),
    c("ec2", "POST /", "", NONE, "Action=DescribeInstance", None, &[("ec2:Unknown", &[])]),
    // CloudFormation.
    c("cloudformation", "POST /", "", NONE, "Action=CreateStack&StackName=app&TemplateURL=x&RoleARN=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fcfn", Some("CreateStack"), &[("cloudformation:CreateStack", &["arn:aws:cloudformation:us-east-1:111122223333:stack/app/*"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/cfn"])]),
    c("cloudformation", "POST /", "", NONE, "Action=UpdateStack&StackName=app", Some("UpdateStack"), &[("cloudformation:UpdateStack", &["arn:aws:cloudformation:us-east-1:111122223333:stack/app/*"])]),
    c("cloudformation", "POST /", "", NONE, "Action=DeleteStack&StackName=app", Some("DeleteStack"), &[("cloudformation:DeleteStack", &["arn:aws:cloudformation:us-east-1:111122223333:stack/app/*"])]),
    c("cloudformation", "POST /", "", NONE, "Action=DescribeStacks&StackName=arn%3Aaws%3Acloudformation%3Aus-east-1%3A111122223333%3Astack%2Fapp%2Fid", Some("DescribeStacks"), &[("cloudformation:DescribeStacks", &["arn:aws:cloudformation:us-east-1:111122223333:stack/app/id"])]),
    c("cloudformation", "POST /", "", NONE, "Action=ListStacks", Some("ListStacks"), &[("cloudformation:ListStacks", &[])]),
    c("cloudformation", "POST /", "", NONE, "Action=CreateChangeSet&StackName=app&ChangeSetName=c1&RoleARN=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fcfn", Some("CreateChangeSet"), &[("cloudformation:CreateChangeSet", &["arn:aws:cloudformation:us-east-1:111122223333:stack/app/*"]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/cfn"])]),
    // CloudWatch over query.
    c("monitoring", "POST /", "", NONE, "Action=PutMetricData&Namespace=App&Version=2010-08-01", Some("PutMetricData"), &[("cloudwatch:PutMetricData", &[])]),
    c("monitoring", "POST /", "", NONE, "Action=DeleteAlarms&AlarmNames.member.1=a&AlarmNames.member.2=b", Some("DeleteAlarms"), &[("cloudwatch:DeleteAlarms", &["arn:aws:cloudwatch:us-east-1:111122223333:alarm:a", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:b"])]),
    c("monitoring", "POST /", "", NONE, "Action=DescribeAlarms", Some("DescribeAlarms"), &[("cloudwatch:DescribeAlarms", &[])]),
    c("monitoring", "POST /", "", NONE, "Action=ListMetrics", Some("ListMetrics"), &[("cloudwatch:ListMetrics", &[])]),
];

const LAMBDA_F: &str = "arn:aws:lambda:us-east-1:111122223333:function:my-fn";
const EKS_PROD: &str = "arn:aws:eks:us-east-1:111122223333:cluster/prod";

#[rustfmt::skip]
const REST_JSON_CASES: &[Case] = &[
    // Lambda.
    c("lambda", "GET /2015-03-31/functions", "", NONE, "", Some("ListFunctions"), &[("lambda:ListFunctions", &[])]),
    c("lambda", "GET /2015-03-31/functions/my-fn", "", NONE, "", Some("GetFunction"), &[("lambda:GetFunction", &[LAMBDA_F])]),
    c("lambda", "GET /2015-03-31/functions/my-fn/configuration", "", NONE, "", Some("GetFunctionConfiguration"), &[("lambda:GetFunctionConfiguration", &[LAMBDA_F])]),
    c("lambda", "POST /2015-03-31/functions/my-fn/invocations", "", NONE, r#"{"Role":"arn:aws:iam::1:role/not-passed"}"#, Some("Invoke"), &[("lambda:InvokeFunction", &[LAMBDA_F])]),
    c("lambda", "POST /2015-03-31/functions/my-fn/invocations?Qualifier=prod", "", NONE, "{}", Some("Invoke"), &[("lambda:InvokeFunction", &["arn:aws:lambda:us-east-1:111122223333:function:my-fn:prod"])]),
    c("lambda", "POST /2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A111122223333%3Afunction%3Amy-fn/invocations", "", NONE, "{}", Some("Invoke"), &[("lambda:InvokeFunction", &[LAMBDA_F])]),
    c("lambda", "POST /2021-11-15/functions/my-fn/response-streaming-invocations", "", NONE, "{}", Some("InvokeWithResponseStream"), &[("lambda:InvokeFunction", &[LAMBDA_F])]),
    c("lambda", "POST /2014-11-13/functions/my-fn/invoke-async/", "", NONE, "{}", Some("InvokeAsync"), &[("lambda:InvokeAsync", &[LAMBDA_F])]),
    c("lambda", "POST /2015-03-31/functions", "", NONE, r#"{"FunctionName":"my-fn","Role":"arn:aws:iam::111122223333:role/exec","Runtime":"python3.12"}"#, Some("CreateFunction"), &[("lambda:CreateFunction", &[LAMBDA_F]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/exec"])]),
    c("lambda", "PUT /2015-03-31/functions/my-fn/configuration", "", NONE, r#"{"Role":"arn:aws:iam::111122223333:role/exec2"}"#, Some("UpdateFunctionConfiguration"), &[("lambda:UpdateFunctionConfiguration", &[LAMBDA_F]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/exec2"])]),
    c("lambda", "PUT /2015-03-31/functions/my-fn/configuration", "", NONE, r#"{"Timeout":30}"#, Some("UpdateFunctionConfiguration"), &[("lambda:UpdateFunctionConfiguration", &[LAMBDA_F])]),
    c("lambda", "PUT /2015-03-31/functions/my-fn/code", "", NONE, "{}", Some("UpdateFunctionCode"), &[("lambda:UpdateFunctionCode", &[LAMBDA_F])]),
    c("lambda", "DELETE /2015-03-31/functions/my-fn", "", NONE, "", Some("DeleteFunction"), &[("lambda:DeleteFunction", &[LAMBDA_F])]),
    c("lambda", "POST /2015-03-31/functions/my-fn/policy", "", NONE, "{}", Some("AddPermission"), &[("lambda:AddPermission", &[LAMBDA_F])]),
    c("lambda", "DELETE /2015-03-31/functions/my-fn/policy/sid-1", "", NONE, "", Some("RemovePermission"), &[("lambda:RemovePermission", &[LAMBDA_F])]),
    c("lambda", "GET /2015-03-31/functions/my-fn/aliases", "", NONE, "", Some("ListAliases"), &[("lambda:ListAliases", &[LAMBDA_F])]),
    c("lambda", "GET /2019-09-30/functions/my-fn/provisioned-concurrency?List=ALL", "", NONE, "", Some("ListProvisionedConcurrencyConfigs"), &[("lambda:ListProvisionedConcurrencyConfigs", &[LAMBDA_F])]),
    c("lambda", "GET /2019-09-30/functions/my-fn/provisioned-concurrency?Qualifier=live", "", NONE, "", Some("GetProvisionedConcurrencyConfig"), &[("lambda:GetProvisionedConcurrencyConfig", &["arn:aws:lambda:us-east-1:111122223333:function:my-fn:live"])]),
    c("lambda", "GET /2018-10-31/layers", "", NONE, "", Some("ListLayers"), &[("lambda:ListLayers", &[])]),
    c("lambda", "GET /2018-10-31/layers?find=LayerVersion&Arn=arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Alayer%3Ax%3A1", "", NONE, "", Some("GetLayerVersionByArn"), &[("lambda:GetLayerVersionByArn", &[])]),
    c("lambda", "GET /2015-03-31/event-source-mappings", "", NONE, "", Some("ListEventSourceMappings"), &[("lambda:ListEventSourceMappings", &[])]),
    c("lambda", "PUT /2015-03-31/functions/my-fn/invocations", "", NONE, "", None, &[("lambda:Unknown", &[])]),
    c("lambda", "GET /2099-01-01/functions", "", NONE, "", None, &[("lambda:Unknown", &[])]),
    // EKS.
    c("eks", "GET /clusters", "", NONE, "", Some("ListClusters"), &[("eks:ListClusters", &[])]),
    c("eks", "GET /clusters/prod", "", NONE, "", Some("DescribeCluster"), &[("eks:DescribeCluster", &[EKS_PROD])]),
    c("eks", "POST /clusters", "", NONE, r#"{"name":"prod","roleArn":"arn:aws:iam::111122223333:role/eks","resourcesVpcConfig":{}}"#, Some("CreateCluster"), &[("eks:CreateCluster", &[EKS_PROD]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/eks"])]),
    c("eks", "DELETE /clusters/prod", "", NONE, "", Some("DeleteCluster"), &[("eks:DeleteCluster", &[EKS_PROD])]),
    c("eks", "POST /clusters/prod/node-groups", "", NONE, r#"{"nodegroupName":"ng","nodeRole":"arn:aws:iam::111122223333:role/node"}"#, Some("CreateNodegroup"), &[("eks:CreateNodegroup", &[EKS_PROD]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/node"])]),
    c("eks", "GET /clusters/prod/node-groups/ng", "", NONE, "", Some("DescribeNodegroup"), &[("eks:DescribeNodegroup", &[EKS_PROD])]),
    c("eks", "GET /clusters/prod/node-groups", "", NONE, "", Some("ListNodegroups"), &[("eks:ListNodegroups", &[EKS_PROD])]),
    c("eks", "POST /clusters/prod/update-config", "", NONE, "{}", Some("UpdateClusterConfig"), &[("eks:UpdateClusterConfig", &[EKS_PROD])]),
    c("eks", "POST /clusters/prod/updates", "", NONE, "{}", Some("UpdateClusterVersion"), &[("eks:UpdateClusterVersion", &[EKS_PROD])]),
    c("eks", "GET /clusters/prod/updates", "", NONE, "", Some("ListUpdates"), &[("eks:ListUpdates", &[EKS_PROD])]),
    c("eks", "GET /clusters/prod/updates/u-1", "", NONE, "", Some("DescribeUpdate"), &[("eks:DescribeUpdate", &[EKS_PROD])]),
    c("eks", "POST /clusters/prod/access-entries", "", NONE, "{}", Some("CreateAccessEntry"), &[("eks:CreateAccessEntry", &[EKS_PROD])]),
    c("eks", "POST /clusters/prod/pod-identity-associations", "", NONE, r#"{"roleArn":"arn:aws:iam::111122223333:role/pod"}"#, Some("CreatePodIdentityAssociation"), &[("eks:CreatePodIdentityAssociation", &[EKS_PROD]), ("iam:PassRole", &["arn:aws:iam::111122223333:role/pod"])]),
    // Bedrock Runtime.
    c("bedrock", "POST /model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke", "", NONE, "{}", Some("InvokeModel"), &[("bedrock:InvokeModel", &["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"])]),
    c("bedrock", "POST /model/anthropic.claude-3-haiku-20240307-v1:0/converse", "", NONE, "{}", Some("Converse"), &[("bedrock:InvokeModel", &["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"])]),
    c("bedrock", "POST /model/us.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", "", NONE, "{}", Some("ConverseStream"), &[("bedrock:InvokeModelWithResponseStream", &["arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"])]),
    c("bedrock", "POST /model/amazon.titan-text-lite-v1/invoke-with-response-stream", "", NONE, "{}", Some("InvokeModelWithResponseStream"), &[("bedrock:InvokeModelWithResponseStream", &["arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-lite-v1"])]),
    c("bedrock", "POST /guardrail/g1/version/1/apply", "", NONE, "{}", Some("ApplyGuardrail"), &[("bedrock:ApplyGuardrail", &["arn:aws:bedrock:us-east-1:111122223333:guardrail/g1"])]),
    c("bedrock", "POST /model/amazon.titan-text-lite-v1/count-tokens", "", NONE, "{}", Some("CountTokens"), &[("bedrock:CountTokens", &["arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-lite-v1"])]),
    c("bedrock", "GET /async-invoke", "", NONE, "", Some("ListAsyncInvokes"), &[("bedrock:ListAsyncInvokes", &[])]),
    // Bedrock's other planes share the signing name and are told apart by path.
    c("bedrock", "GET /foundation-models", "", NONE, "", Some("ListFoundationModels"), &[("bedrock:ListFoundationModels", &[])]),
    c("bedrock", "GET /agents/a1/", "", NONE, "", Some("GetAgent"), &[("bedrock:GetAgent", &[])]),
    c("bedrock", "POST /agents/a1/", "", NONE, "{}", Some("PrepareAgent"), &[("bedrock:PrepareAgent", &[])]),
    c("bedrock", "POST /agents/s1", "", NONE, "{}", Some("InvokeInlineAgent"), &[("bedrock:InvokeInlineAgent", &[])]),
    c("bedrock", "GET /tags/arn%3Aaws%3Abedrock%3Aus-east-1%3A111122223333%3Aagent%2Fa1", "", NONE, "", None, &[("bedrock:Unknown", &[])]),
    // Credential-returning REST operations.
    c("eks-auth", "POST /clusters/prod/assume-role-for-pod-identity", "", NONE, r#"{"token":"t"}"#, Some("AssumeRoleForPodIdentity"), &[("eks-auth:AssumeRoleForPodIdentity", &[EKS_PROD])]),
    c("awsssoportal", "GET /federation/credentials?role_name=admin&account_id=111122223333", "", &[("x-amz-sso_bearer_token", "t")], "", Some("GetRoleCredentials"), &[("sso:GetRoleCredentials", &[])]),
    // A signing name no model has.
    c("sso-oauth", "POST /token", "", NONE, "{}", None, &[("sso-oauth:Unknown", &[]), ("sso-oauth:CreateToken", &[])]),
];

#[test]
fn s3_requests_classify_by_shape_with_iam_names_and_arns() {
    check(S3_CASES);
}

#[test]
fn json_and_cbor_requests_classify_by_target_and_name_their_resources() {
    check(JSON_CASES);
}

#[test]
fn query_and_ec2_requests_classify_by_action_and_name_their_resources() {
    check(QUERY_CASES);
}

#[test]
fn rest_json_requests_classify_by_route_and_name_their_resources() {
    check(REST_JSON_CASES);
}

#[test]
fn the_tables_cover_at_least_150_distinct_operations_across_every_service() {
    let all: Vec<&Case> =
        S3_CASES.iter().chain(JSON_CASES).chain(QUERY_CASES).chain(REST_JSON_CASES).collect();
    let operations: BTreeSet<(&str, &str)> =
        all.iter().filter_map(|c| c.operation.map(|op| (c.signing, op))).collect();
    let services: BTreeSet<&str> = operations.iter().map(|(s, _)| *s).collect();
    assert!(operations.len() >= 150, "only {} distinct operations tested", operations.len());
    for signing in [
        "s3",
        "dynamodb",
        "lambda",
        "sts",
        "iam",
        "sqs",
        "sns",
        "kms",
        "secretsmanager",
        "ssm",
        "ec2",
        "monitoring",
        "logs",
        "ecr",
        "eks",
        "cloudformation",
        "events",
        "states",
        "kinesis",
        "bedrock",
    ] {
        assert!(services.contains(signing), "no case for {signing}");
        assert!(
            !OperationTable::get().services_signed_as(signing).is_empty(),
            "no table for {signing}"
        );
    }
}

fn request<'a>(
    signing: &'a str,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
) -> AwsRequest<'a> {
    AwsRequest { signing_name: signing, method, path, query, headers, body, body_truncated: false }
}

#[test]
fn delete_objects_without_a_whole_body_names_the_bucket_and_says_it_is_incomplete() {
    let body = b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Ke";
    let mut req = request("s3", "POST", "/bkt", "delete", &[], Some(body));
    req.body_truncated = true;
    let got = classifier().classify(&req, &CONTEXT);
    assert_eq!(got.operation, Some("DeleteObjects"));
    assert_eq!(got.actions[0].action, "s3:DeleteObject");
    assert_eq!(got.actions[0].resources, vec!["arn:aws:s3:::bkt/*".to_owned()]);
    assert!(!got.resources_complete);

    let whole = request("s3", "POST", "/bkt", "delete", &[], None);
    assert!(!classifier().classify(&whole, &CONTEXT).resources_complete);
}

#[test]
fn resources_are_complete_only_when_the_body_that_names_them_was_read() {
    let headers = [("x-amz-target", "DynamoDB_20120810.GetItem")];
    let whole = request("dynamodb", "POST", "/", "", &headers, Some(br#"{"TableName":"t"}"#));
    assert!(classifier().classify(&whole, &CONTEXT).resources_complete);

    let mut cut = request("dynamodb", "POST", "/", "", &headers, Some(br#"{"TableName":"t","#));
    cut.body_truncated = true;
    let got = classifier().classify(&cut, &CONTEXT);
    assert_eq!(got.operation, Some("GetItem"));
    assert!(!got.resources_complete);

    let repeated = request(
        "dynamodb",
        "POST",
        "/",
        "",
        &headers,
        Some(br#"{"TableName":"t","TableName":"u"}"#),
    );
    let got = classifier().classify(&repeated, &CONTEXT);
    assert_eq!(got.operation, Some("GetItem"));
    assert!(got.actions[0].resources.is_empty());
    assert!(!got.resources_complete);

    let form = [("content-type", "application/x-www-form-urlencoded")];
    let twice =
        request("sts", "POST", "/", "", &form, Some(b"Action=AssumeRole&RoleArn=a&RoleArn=b"));
    assert!(!classifier().classify(&twice, &CONTEXT).resources_complete);
    let once = request("sts", "POST", "/", "", &form, Some(b"Action=AssumeRole&RoleArn=a"));
    assert!(classifier().classify(&once, &CONTEXT).resources_complete);

    let get = request("s3", "GET", "/bkt/key", "", &[], None);
    assert!(classifier().classify(&get, &CONTEXT).resources_complete);

    let ec2 = request(
        "ec2",
        "POST",
        "/",
        "",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"Action=RunInstances&IamInstanceProfile.Name=web"),
    );
    assert!(!classifier().classify(&ec2, &CONTEXT).resources_complete);
}

#[test]
fn s3_addressing_style_is_reported_for_the_forwarder() {
    let virtual_host = request("s3", "GET", "/k", "", &[("host", "bkt.localhost")], None);
    assert_eq!(
        classifier().classify(&virtual_host, &CONTEXT).s3_addressing,
        Some(S3Addressing::VirtualHost)
    );
    assert_eq!(classifier().classify(&virtual_host, &CONTEXT).s3_bucket.as_deref(), Some("bkt"));
    let path_style = request("s3", "GET", "/bkt/k", "", &[("host", "localhost:8080")], None);
    assert_eq!(
        classifier().classify(&path_style, &CONTEXT).s3_addressing,
        Some(S3Addressing::PathStyle)
    );
}

#[test]
fn garbage_never_panics_and_is_unknown() {
    let inputs: &[(&str, &str, &str, &str, &[u8])] = &[
        ("s3", "GET", "", "", b""),
        ("s3", "GET", "%", "%%%=&&=", b""),
        ("s3", "", "/\u{0}/\u{ff}", "versionId", b"\xff"),
        ("s3", "POST", "/b", "delete", b"<Delete><Object><Key>"),
        ("dynamodb", "POST", "/", "", b"{\"TableName\":"),
        ("sts", "POST", "/", "Action", b"Action=%ZZ&&=&Action"),
        ("monitoring", "POST", "/service/", "", b""),
        ("monitoring", "POST", "/service/x/operation/", "", b""),
        ("lambda", "GET", "//////", "", b""),
    ];
    for (signing, method, path, query, body) in inputs {
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-amz-target", "."),
            ("host", ":::"),
        ];
        let got = classifier()
            .classify(&request(signing, method, path, query, &headers, Some(body)), &CONTEXT);
        assert!(!got.actions.is_empty());
    }
}

/// Fills a route template with sample values: every REST operation must be reachable by its own
/// shape and classify as itself.
#[test]
fn every_rest_route_classifies_as_its_own_operation() {
    let table = OperationTable::get();
    let mut failures = Vec::new();
    let mut count = 0;
    for service in table.services() {
        for op in service.operations {
            let (Some(route), None) = (op.route, op.shadowed_by) else { continue };
            count += 1;
            let path: String = route
                .path
                .split('/')
                .map(|segment| {
                    if segment.ends_with("+}") {
                        "deep/key.txt"
                    } else if segment.starts_with('{') {
                        "sample"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let query = route
                .query
                .iter()
                .map(|(k, v)| format!("{k}={}", v.unwrap_or("1")))
                .collect::<Vec<_>>()
                .join("&");
            let headers: Vec<(&str, &str)> =
                route.headers.iter().map(|h| (*h, "/src/key")).collect();
            let req = request(service.signing_name, route.method, &path, &query, &headers, None);
            let got = classifier().classify(&req, &CONTEXT);
            // Models that share a signing name (Bedrock's) can have the very same route; such
            // requests are ambiguous, not misattributed.
            let shared_route = matches!(
                &got.unclassified,
                Some(Unclassified::AmbiguousOperation { first, second }) if first == second
            );
            if got.operation != Some(op.name) && !shared_route {
                failures.push(format!(
                    "{} {} {path}?{query}: {:?}",
                    service.model_name, route.method, got.operation
                ));
            }
        }
    }
    assert!(count > 250, "only {count} REST routes");
    assert!(failures.is_empty(), "{} unreachable routes:\n{}", failures.len(), failures.join("\n"));
}

/// Every RPC operation classifies as itself by its protocol's naming signal.
#[test]
fn every_rpc_operation_classifies_as_itself() {
    let table = OperationTable::get();
    let mut count = 0;
    for service in table.services() {
        let Some(&protocol) = service.protocols.first() else { continue };
        if protocol.is_rest() {
            continue;
        }
        for op in service.operations {
            count += 1;
            let target = format!("{}.{}", service.json_target_prefix.unwrap_or(""), op.name);
            let form = format!("Action={}&Version={}", op.name, service.api_version);
            let cbor_path = format!(
                "/service/{}/operation/{}",
                service.json_target_prefix.unwrap_or(""),
                op.name
            );
            let (path, headers, body): (&str, Vec<(&str, &str)>, &[u8]) = match protocol {
                Protocol::Json => ("/", vec![("x-amz-target", target.as_str())], b"{}"),
                Protocol::RpcV2Cbor => (&cbor_path, vec![("smithy-protocol", "rpc-v2-cbor")], b""),
                _ => (
                    "/",
                    vec![("content-type", "application/x-www-form-urlencoded")],
                    form.as_bytes(),
                ),
            };
            let req = request(service.signing_name, "POST", path, "", &headers, Some(body));
            let got = classifier().classify(&req, &CONTEXT);
            assert_eq!(got.operation, Some(op.name), "{} {}", service.model_name, op.name);
            assert_eq!(got.protocol, Some(protocol));
        }
    }
    assert!(count > 1500, "only {count} RPC operations");
}

#[test]
fn every_service_names_its_signing_name_and_iam_prefix() {
    let table = OperationTable::get();
    assert_eq!(table.services().len(), 25);
    assert!(table.operation_count() > 2000);
    let prefix = |signing: &str| table.services_signed_as(signing)[0].iam_prefix;
    assert_eq!(prefix("monitoring"), "cloudwatch");
    assert_eq!(prefix("states"), "states");
    assert_eq!(prefix("bedrock"), "bedrock");
    assert_eq!(prefix("ecr"), "ecr");
    assert!(table.services_signed_as("sqs")[0].accepts(Protocol::Query));
}

/// The committed tables and request fixtures are what the pinned botocore produces. Runs the
/// generators' `--check` when their virtualenv exists (the generators make it on first run); says
/// so and passes otherwise, so that the Rust tests never need Python.
#[test]
fn generated_tables_match_pinned_botocore() {
    let workspace =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let python = workspace.join("target/codegen-venv/bin/python");
    if !python.exists() {
        eprintln!(
            "skipped: {} does not exist; run gateway/codegen/gen_operations.py",
            python.display()
        );
        return;
    }
    for script in ["gen_operations.py", "gen_request_fixtures.py"] {
        let output = std::process::Command::new(&python)
            .arg(workspace.join("gateway/codegen").join(script))
            .arg("--check")
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) => panic!("could not run {script} with {}: {e}", python.display()),
        };
        assert!(
            output.status.success(),
            "{script}: committed output drifts from botocore {BOTOCORE_VERSION}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    fn xml_escape(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    }

    proptest! {
        #[test]
        fn any_object_key_round_trips_into_its_arn(key in "[^\u{0}]{1,40}") {
            // A key with a `.` or `..` segment is a dot segment on the wire, which the gateway
            // refuses as ambiguous (clients and proxies may normalize it away).
            prop_assume!(!key.split('/').any(|segment| segment == "." || segment == ".."));
            let path = format!("/bkt/{}", encode(&key));
            let got = classifier().classify(&request("s3", "GET", &path, "", &[], None), &CONTEXT);
            prop_assert_eq!(got.operation, Some("GetObject"));
            let want = vec![format!("arn:aws:s3:::bkt/{key}")];
            prop_assert_eq!(&got.actions[0].resources, &want);
        }

        #[test]
        fn keys_with_raw_slashes_keep_every_slash(key in "[a-z/]{1,12}") {
            let path = format!("/bkt/{key}");
            let got = classifier().classify(&request("s3", "GET", &path, "", &[], None), &CONTEXT);
            prop_assert_eq!(got.operation, Some("GetObject"));
            let want = vec![format!("arn:aws:s3:::bkt/{key}")];
            prop_assert_eq!(&got.actions[0].resources, &want);
        }

        #[test]
        fn delete_objects_names_every_key_it_was_given(
            keys in proptest::collection::vec("[a-zA-Z0-9 &<>/._-]{1,20}", 1..8)
        ) {
            let objects: String = keys
                .iter()
                .map(|k| format!("<Object><Key>{}</Key></Object>", xml_escape(k)))
                .collect();
            let body = format!("<Delete>{objects}</Delete>");
            let req = request("s3", "POST", "/bkt", "delete", &[], Some(body.as_bytes()));
            let got = classifier().classify(&req, &CONTEXT);
            prop_assert!(got.resources_complete);
            let mut want: Vec<String> = Vec::new();
            for key in &keys {
                let arn = format!("arn:aws:s3:::bkt/{key}");
                if !want.contains(&arn) {
                    want.push(arn);
                }
            }
            prop_assert_eq!(&got.actions[0].resources, &want);
        }

        #[test]
        fn classification_never_panics_and_always_names_an_action(
            signing in prop::sample::select(vec![
                "s3", "dynamodb", "lambda", "sts", "sqs", "ec2", "monitoring", "bedrock", "nope",
            ]),
            method in prop::sample::select(vec!["GET", "PUT", "POST", "DELETE", "HEAD", "X"]),
            path in "(/[a-zA-Z0-9%{}+.=?&-]{0,8}){0,5}",
            query in "[a-zA-Z0-9%=&-]{0,30}",
            target in "[a-zA-Z0-9._]{0,30}",
            host in "[a-z0-9.:\\[\\]]{0,20}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
            truncated in any::<bool>(),
        ) {
            let headers = [
                ("x-amz-target", target.as_str()),
                ("host", host.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-amz-copy-source", "/a/b"),
            ];
            let mut req = request(signing, method, &path, &query, &headers, Some(&body));
            req.body_truncated = truncated;
            let got = classifier().classify(&req, &CONTEXT);
            prop_assert!(!got.actions.is_empty());
            prop_assert_eq!(got.operation.is_none(), got.unclassified.is_some());
            if got.operation.is_none() {
                prop_assert!(got.actions[0].action.ends_with(":Unknown"));
            }
        }

        #[test]
        fn an_action_matches_itself_in_any_case_and_its_service_wildcard(
            service in "[a-z0-9-]{1,12}",
            name in "[A-Za-z0-9]{1,30}",
            split in 0usize..30,
        ) {
            let action = format!("{service}:{name}");
            let pattern = ActionPattern::parse(&action.to_ascii_uppercase()).unwrap();
            prop_assert!(pattern.matches(&action));
            let service_wildcard = ActionPattern::parse(&format!("{service}:*")).unwrap();
            prop_assert!(service_wildcard.matches(&action));
            let cut = split.min(name.len());
            let prefix = ActionPattern::parse(&format!("{service}:{}*", &name[..cut])).unwrap();
            prop_assert!(prefix.matches(&action));
            let other_service = ActionPattern::parse(&format!("{service}x:*")).unwrap();
            prop_assert!(!other_service.matches(&action));
        }
    }
}

/// Whether some model with IAM prefix `prefix` has operation `operation`.
fn operation_exists(prefix: &str, operation: &str) -> bool {
    OperationTable::get()
        .services()
        .iter()
        .any(|s| s.iam_prefix == prefix && s.operation(operation).is_some())
}

#[test]
fn hand_written_tables_name_only_operations_the_models_have() {
    let mut missing = Vec::new();
    for (prefix, op, _) in super::actions::ACTION_OVERRIDES {
        if !operation_exists(prefix, op) {
            missing.push(format!("ACTION_OVERRIDES {prefix}:{op}"));
        }
    }
    for (op, _, _) in super::actions::S3_ACTIONS {
        if !operation_exists("s3", op) {
            missing.push(format!("S3_ACTIONS {op}"));
        }
    }
    for (op, _) in super::actions::S3_FOREIGN_ACTIONS {
        if !operation_exists("s3", op) {
            missing.push(format!("S3_FOREIGN_ACTIONS {op}"));
        }
    }
    for (prefix, op, _, _) in super::actions::PASS_ROLE_PARAMETERS {
        if !operation_exists(prefix, op) {
            missing.push(format!("PASS_ROLE_PARAMETERS {prefix}:{op}"));
        }
    }
    for (prefix, op) in super::classifier::REST_BODY_OPERATIONS {
        if !operation_exists(prefix, op) {
            missing.push(format!("REST_BODY_OPERATIONS {prefix}:{op}"));
        }
    }
    assert!(missing.is_empty(), "not in the models: {missing:?}");
}

#[test]
fn credential_returning_actions_of_tabled_services_are_real_operations() {
    let prefixes: BTreeSet<&str> =
        OperationTable::get().services().iter().map(|s| s.iam_prefix).collect();
    for action in CREDENTIAL_RETURNING_ACTIONS {
        let Some((prefix, op)) = action.split_once(':') else {
            panic!("{action} has no prefix");
        };
        if prefixes.contains(prefix) {
            assert!(operation_exists(prefix, op), "{action} is not an operation of {prefix}");
        }
    }
}

/// Requests serialized by botocore itself (`gateway/codegen/gen_request_fixtures.py`): every REST
/// operation of the tabled services and the first operations of each RPC service, as the AWS CLI
/// and boto3 put them on the wire to an IP-literal endpoint.
#[test]
fn requests_serialized_by_botocore_classify_as_their_operation() {
    #[derive(serde::Deserialize)]
    struct Fixture {
        service: String,
        signing: String,
        operation: String,
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Option<String>,
    }
    let text = include_str!("fixtures/botocore_requests.jsonl");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let fixture: Fixture = match serde_json::from_str(line) {
            Ok(fixture) => fixture,
            Err(e) => panic!("bad fixture line {line}: {e}"),
        };
        count += 1;
        let headers: Vec<(&str, &str)> =
            fixture.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let req = request(
            &fixture.signing,
            &fixture.method,
            &fixture.path,
            &fixture.query,
            &headers,
            Some(fixture.body.as_deref().unwrap_or("").as_bytes()),
        );
        let got = classifier().classify(&req, &CONTEXT);
        let shared_route = matches!(
            &got.unclassified,
            Some(Unclassified::AmbiguousOperation { first, second }) if *first == fixture.operation && first == second
        );
        // A deprecated twin the wire cannot tell apart classifies as the operation that took
        // its route (GetBucketLifecycle as GetBucketLifecycleConfiguration).
        let taken_by = OperationTable::get()
            .services()
            .iter()
            .find(|s| s.model_name == fixture.service)
            .and_then(|s| s.operation(&fixture.operation))
            .and_then(|op| op.shadowed_by);
        let expected = taken_by.unwrap_or(fixture.operation.as_str());
        // S3 requests name the bucket `sample` (and object `sample`), path-style or virtual-host.
        if fixture.service == "s3" && got.operation == Some(expected) {
            let route = OperationTable::get().services_signed_as("s3")[0]
                .operation(expected)
                .and_then(|op| op.route)
                .map_or("", |r| r.path);
            // DeleteObjects names the keys in its body (botocore's minimal body has `sample`).
            let want = if route.contains("{Key+}") || expected == "DeleteObjects" {
                Some("arn:aws:s3:::sample/sample")
            } else if route.contains("{Bucket}") {
                Some("arn:aws:s3:::sample")
            } else {
                None
            };
            if let Some(want) = want
                && got.actions.first().map(|a| a.resources.as_slice()) != Some(&[want.to_owned()])
            {
                failures.push(format!("s3 {expected} via {:?}: {:?}", headers, got.actions));
            }
        }
        if got.operation != Some(expected) && !shared_route {
            failures.push(format!(
                "{} {}: {} {}?{} -> {:?} ({:?})",
                fixture.service,
                fixture.operation,
                fixture.method,
                fixture.path,
                fixture.query,
                got.operation,
                got.unclassified.map(|u| u.to_string())
            ));
        }
    }
    assert!(count > 700, "only {count} fixtures");
    assert!(failures.is_empty(), "{} misclassified:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn planes_sharing_a_signing_name_report_their_own_upstream_endpoint() {
    let runtime = request("bedrock", "POST", "/model/m/invoke", "", &[], Some(b"{}"));
    assert_eq!(classifier().classify(&runtime, &CONTEXT).endpoint_prefix, Some("bedrock-runtime"));
    let control = request("bedrock", "GET", "/foundation-models", "", &[], None);
    assert_eq!(classifier().classify(&control, &CONTEXT).endpoint_prefix, Some("bedrock"));
    let agent = request("bedrock", "GET", "/agents/a1/", "", &[], None);
    assert_eq!(classifier().classify(&agent, &CONTEXT).endpoint_prefix, Some("bedrock-agent"));
}

fn classify_with(
    signing: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Classification {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    classifier().classify(&request(signing, method, path, query, headers, Some(body)), &CONTEXT)
}

fn reason(c: &Classification) -> String {
    c.unclassified.as_ref().map(ToString::to_string).unwrap_or_default()
}

#[test]
fn ambiguous_requests_are_refused_as_a_class() {
    let json = [("content-type", "application/x-amz-json-1.0")];
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let target =
        |t: &'static str| [("content-type", "application/x-amz-json-1.0"), ("x-amz-target", t)];
    let cases: Vec<(Classification, &str)> = vec![
        (classify_with("s3", "GET", "/b/k?acl&tagging", &[], b""), "two operations"),
        (classify_with("s3", "DELETE", "/b?versioning", &[], b""), "`versioning`"),
        (classify_with("s3", "PUT", "/b/k?uploads", &[], b"x"), "`uploads`"),
        (classify_with("s3", "GET", "/b/k?uploads", &[], b""), "`uploads`"),
        (classify_with("s3", "HEAD", "/b?policy", &[], b""), "`policy`"),
        (
            classify_with(
                "dynamodb",
                "POST",
                "/?Action=DeleteTable",
                &target("DynamoDB_20120810.ListTables"),
                b"{}",
            ),
            "query parameter `Action`",
        ),
        (
            classify_with(
                "dynamodb",
                "POST",
                "/",
                &[
                    json[0],
                    ("x-amz-target", "DynamoDB_20120810.ListTables"),
                    ("X-Amz-Target", "DynamoDB_20120810.DeleteTable"),
                ],
                b"{}",
            ),
            "header `x-amz-target` appears more than once",
        ),
        (
            classify_with(
                "s3",
                "PUT",
                "/b/k",
                &[("x-amz-copy-source", "/a/b"), ("X-AMZ-COPY-SOURCE", "/c/d")],
                b"",
            ),
            "`x-amz-copy-source`",
        ),
        (
            classify_with("sqs", "POST", "/?Action=ListQueues", &form, b"Action=DeleteQueue"),
            "`Action` appears 2 times",
        ),
        (
            classify_with("iam", "POST", "/", &form, b"Action=ListUsers&Action=ListUsers"),
            "`Action` appears 2 times",
        ),
        (
            classify_with(
                "s3",
                "GET",
                "/b",
                &[("x-amz-target", "DynamoDB_20120810.DeleteTable")],
                b"",
            ),
            "on a REST service",
        ),
        (
            classify_with(
                "sts",
                "POST",
                "/",
                &[form[0], ("x-amz-target", "X.AssumeRole")],
                b"Action=GetCallerIdentity",
            ),
            "does not take the JSON protocol",
        ),
        (classify_with("nope", "GET", "/", &[("Host", "a"), ("host", "b")], b""), "`host`"),
    ];
    for (got, want) in cases {
        assert_eq!(got.operation, None, "{want}: {got:?}");
        let unclassified = got.unclassified.as_ref().expect("a reason");
        assert!(unclassified.is_ambiguous(), "{want}: {unclassified}");
        assert!(reason(&got).contains(want), "{want}: {}", reason(&got));
    }
    // Not ambiguous: metadata headers may repeat, GetObject takes partNumber, x-id is a hint.
    let meta = [("x-amz-meta-a", "1"), ("x-amz-meta-a", "2")];
    assert_eq!(classify_with("s3", "PUT", "/b/k", &meta, b"x").operation, Some("PutObject"));
    assert_eq!(
        classify_with("s3", "GET", "/b/k?partNumber=2&x-id=GetObject", &[], b"").operation,
        Some("GetObject")
    );
    assert_eq!(
        classify_with("s3", "GET", "/b/k?versionId=v&acl", &[], b"").operation,
        Some("GetObjectAcl")
    );
}

fn action_names(c: &Classification) -> Vec<(&str, Vec<&str>)> {
    c.actions
        .iter()
        .map(|a| (a.action.as_str(), a.resources.iter().map(String::as_str).collect()))
        .collect()
}

#[test]
fn headers_that_carry_permissions_add_their_actions() {
    let object = "arn:aws:s3:::b/k";
    let put = |headers: &[(&str, &str)]| classify_with("s3", "PUT", "/b/k", headers, b"x");
    assert_eq!(
        action_names(&put(&[("x-amz-acl", "public-read"), ("x-amz-tagging", "a=b")])),
        vec![
            ("s3:PutObject", vec![object]),
            ("s3:PutObjectAcl", vec![object]),
            ("s3:PutObjectTagging", vec![object]),
        ]
    );
    assert_eq!(
        action_names(&put(&[("X-Amz-Grant-Read", "id=x")]))[1],
        ("s3:PutObjectAcl", vec![object])
    );
    let lock = put(&[
        ("x-amz-object-lock-mode", "COMPLIANCE"),
        ("x-amz-object-lock-retain-until-date", "2099-01-01T00:00:00Z"),
        ("x-amz-object-lock-legal-hold", "ON"),
    ]);
    assert_eq!(
        action_names(&lock)[1..],
        [("s3:PutObjectRetention", vec![object]), ("s3:PutObjectLegalHold", vec![object])]
    );
    let kms = put(&[("x-amz-server-side-encryption-aws-kms-key-id", "alias/finance")]);
    let key = "arn:aws:kms:us-east-1:111122223333:alias/finance";
    assert_eq!(
        action_names(&kms)[1..],
        [("kms:GenerateDataKey", vec![key]), ("kms:Decrypt", vec![key])]
    );
    let key_id = put(&[("x-amz-server-side-encryption-aws-kms-key-id", "1234abcd")]);
    assert_eq!(action_names(&key_id)[1].1, vec!["arn:aws:kms:us-east-1:111122223333:key/1234abcd"]);
    let bypass = classify_with(
        "s3",
        "DELETE",
        "/b/k?versionId=v1",
        &[("x-amz-bypass-governance-retention", "true")],
        b"",
    );
    assert_eq!(
        action_names(&bypass),
        vec![
            ("s3:DeleteObjectVersion", vec![object]),
            ("s3:BypassGovernanceRetention", vec![object])
        ]
    );
    let bucket = classify_with(
        "s3",
        "PUT",
        "/nb",
        &[("x-amz-acl", "public-read"), ("x-amz-bucket-object-lock-enabled", "true")],
        b"",
    );
    assert_eq!(
        action_names(&bucket),
        vec![
            ("s3:CreateBucket", vec!["arn:aws:s3:::nb"]),
            ("s3:PutBucketAcl", vec!["arn:aws:s3:::nb"]),
            ("s3:PutBucketObjectLockConfiguration", vec!["arn:aws:s3:::nb"]),
            ("s3:PutBucketVersioning", vec!["arn:aws:s3:::nb"]),
        ]
    );
    let multipart = classify_with("s3", "POST", "/b/k?uploads", &[("x-amz-tagging", "a=b")], b"");
    assert_eq!(action_names(&multipart)[1], ("s3:PutObjectTagging", vec![object]));
    let copy = classify_with("s3", "PUT", "/b/k", &[("x-amz-copy-source", "/src/s.txt")], b"");
    assert_eq!(action_names(&copy)[1], ("s3:GetObject", vec!["arn:aws:s3:::src/s.txt"]));
    // Plain requests carry no extra actions; ACL headers mean nothing to a GET.
    assert_eq!(action_names(&put(&[])).len(), 1);
    assert_eq!(
        action_names(&classify_with("s3", "GET", "/b/k", &[("x-amz-acl", "private")], b"")).len(),
        1
    );
}

#[test]
fn without_the_account_resources_are_incomplete() {
    let req = request(
        "dynamodb",
        "POST",
        "/",
        "",
        &[("x-amz-target", "DynamoDB_20120810.DeleteTable")],
        Some(br#"{"TableName":"prod"}"#),
    );
    let known = classifier().classify(&req, &CONTEXT);
    assert!(known.resources_complete);
    let unknown_account =
        ResourceContext { partition: "aws", region: "us-east-1", account_id: "*" };
    let got = classifier().classify(&req, &unknown_account);
    assert_eq!(got.actions[0].resources, vec!["arn:aws:dynamodb:us-east-1:*:table/prod"]);
    assert!(!got.resources_complete);
    // S3 ARNs carry no account: still complete.
    let s3 =
        classifier().classify(&request("s3", "GET", "/b/k", "", &[], Some(b"")), &unknown_account);
    assert!(s3.resources_complete);
}

#[test]
fn credential_operations_are_found_without_tables() {
    let json =
        |t: &'static str| [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", t)];
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let cases: Vec<(Classification, &str)> = vec![
        (
            classify_with(
                "cognito-identity",
                "POST",
                "/",
                &json("AWSCognitoIdentityService.GetCredentialsForIdentity"),
                b"{}",
            ),
            "cognito-identity:GetCredentialsForIdentity",
        ),
        (
            classify_with(
                "cognito-identity",
                "POST",
                "/",
                &json("AWSCognitoIdentityService.GetOpenIdToken"),
                b"{}",
            ),
            "cognito-identity:GetOpenIdToken",
        ),
        (
            classify_with(
                "cognito-identity",
                "POST",
                "/",
                &json("AWSCognitoIdentityService.GetOpenIdTokenForDeveloperIdentity"),
                b"{}",
            ),
            "cognito-identity:GetOpenIdTokenForDeveloperIdentity",
        ),
        (
            classify_with("codeartifact", "POST", "/v1/authorization-token?domain=d", &[], b""),
            "codeartifact:GetAuthorizationToken",
        ),
        (
            classify_with("redshift", "POST", "/", &form, b"Action=GetClusterCredentials&DbUser=a"),
            "redshift:GetClusterCredentials",
        ),
        (
            classify_with("redshift", "GET", "/?Action=GetClusterCredentialsWithIAM", &[], b""),
            "redshift:GetClusterCredentialsWithIAM",
        ),
        (
            classify_with(
                "redshift-serverless",
                "POST",
                "/",
                &json("RedshiftServerless.GetCredentials"),
                b"{}",
            ),
            "redshift-serverless:GetCredentials",
        ),
        (
            classify_with(
                "ecr-public",
                "POST",
                "/",
                &json("SpencerFrontendService.GetAuthorizationToken"),
                b"{}",
            ),
            "ecr-public:GetAuthorizationToken",
        ),
        (classify_with("s3express", "GET", "/b?session", &[], b""), "s3express:CreateSession"),
        (classify_with("s3", "GET", "/b?session", &[], b""), "s3express:CreateSession"),
        (classify_with("sso-oauth", "POST", "/token", &[], b"{}"), "sso-oauth:CreateToken"),
        (
            classify_with("sso-oauth", "POST", "/token?aws_iam=t", &[], b"{}"),
            "sso-oauth:CreateTokenWithIAM",
        ),
        (
            classify_with("awsssoportal", "GET", "/federation/credentials?role_name=r", &[], b""),
            "sso:GetRoleCredentials",
        ),
        (
            classify_with(
                "eks-auth",
                "POST",
                "/clusters/c/assume-role-for-pod-identity",
                &[],
                b"{}",
            ),
            "eks-auth:AssumeRoleForPodIdentity",
        ),
        (
            classify_with("sts", "POST", "/", &form, b"Action=AssumeRole&RoleArn=r"),
            "sts:AssumeRole",
        ),
        (classify_with("sts", "GET", "/?Action=GetSessionToken", &[], b""), "sts:GetSessionToken"),
        (
            classify_with("iam", "POST", "/", &form, b"Action=CreateAccessKey"),
            "iam:CreateAccessKey",
        ),
        (
            classify_with(
                "ecr",
                "POST",
                "/",
                &json("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"),
                b"{}",
            ),
            "ecr:GetAuthorizationToken",
        ),
    ];
    for (got, want) in &cases {
        assert!(
            got.action_names().any(|a| a == *want),
            "{want} not among {:?}",
            got.action_names().collect::<Vec<_>>()
        );
        assert!(is_credential_returning(want), "{want} is not on the denylist");
    }
    // Ordinary calls of those services name no credential action.
    let ordinary = [
        classify_with(
            "cognito-identity",
            "POST",
            "/",
            &json("AWSCognitoIdentityService.ListIdentityPools"),
            b"{}",
        ),
        classify_with("s3", "GET", "/b/k", &[], b""),
        classify_with("sts", "POST", "/", &form, b"Action=GetCallerIdentity"),
    ];
    for got in ordinary {
        assert!(!got.action_names().any(is_credential_returning), "{:?}", got.actions);
    }
}
