//! Errors in the shape each AWS protocol uses, so SDKs and the CLI surface them as they would AWS's.

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Response, StatusCode, header::AUTHORIZATION, header::CONTENT_TYPE,
};

use crate::classify::Protocol;

/// How a service's errors look on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    /// S3: `<Error><Code/><Message/><RequestId/></Error>`.
    S3Xml,
    /// The query protocol (STS, IAM, SNS, CloudFormation, CloudWatch...):
    /// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
    QueryXml,
    /// EC2: `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
    Ec2Xml,
    /// awsJson 1.0/1.1 (DynamoDB, KMS, SQS, Secrets Manager...): `{"__type": "...#Code", "message"}`.
    Json,
    /// REST-JSON (Lambda, EKS...): `x-amzn-ErrorType` header and `{"message"}`.
    RestJson,
}

/// An AWS-shaped error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// HTTP status.
    pub status: StatusCode,
    /// The AWS error code, e.g. `AccessDenied`, `SignatureDoesNotMatch`, `ExpiredToken`.
    pub code: String,
    /// A message that names the rule or object responsible and what to do.
    pub message: String,
    /// The gateway's request id (also in the recording).
    pub request_id: String,
}

impl AwsError {
    /// A new error.
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        request_id: &str,
    ) -> Self {
        Self { status, code: code.into(), message: message.into(), request_id: request_id.into() }
    }

    /// 403 AccessDenied with `message`.
    pub fn access_denied(message: impl Into<String>, request_id: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message, request_id)
    }

    /// The code JSON protocols use: AWS appends `Exception` to AccessDenied there.
    fn json_code(&self) -> String {
        match self.code.as_str() {
            "AccessDenied" => "AccessDeniedException".into(),
            other => other.into(),
        }
    }

    /// Renders the error for a protocol.
    pub fn render(&self, shape: ErrorShape) -> Response<Bytes> {
        let [code, message, id] =
            [&self.code, &self.message, &self.request_id].map(|t| xml_escape(t));
        let (content_type, body) = match shape {
            ErrorShape::S3Xml => (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{id}</RequestId></Error>"
                ),
            ),
            ErrorShape::QueryXml => (
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
                    if self.status.is_server_error() { "Receiver" } else { "Sender" },
                ),
            ),
            ErrorShape::Ec2Xml => (
                "text/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
                ),
            ),
            ErrorShape::Json => (
                "application/x-amz-json-1.1",
                serde_json::json!({"__type": self.json_code(), "message": self.message, "Message": self.message})
                    .to_string(),
            ),
            ErrorShape::RestJson => (
                "application/json",
                serde_json::json!({"message": self.message, "Message": self.message}).to_string(),
            ),
        };
        let mut response = Response::new(Bytes::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            headers.insert("x-amzn-requestid", id.clone());
            headers.insert("x-amz-request-id", id);
        }
        if matches!(shape, ErrorShape::Json | ErrorShape::RestJson)
            && let Ok(kind) = HeaderValue::from_str(&self.json_code())
        {
            headers.insert("x-amzn-errortype", kind);
        }
        response
    }
}

/// XML character data: `&`, `<`, `>`, `"` and `'` escaped, and characters XML 1.0 cannot carry
/// (control characters other than tab, line feed and carriage return) replaced by U+FFFD, so that
/// text from a request or an upstream never makes an answer unparseable.
pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => escaped.push('\u{FFFD}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The service named by the credential scope of an `Authorization` header, before the signature
/// is verified (`""` when there is none): enough to pick an error shape.
pub fn credential_service(headers: &HeaderMap) -> &str {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split('/').nth(3))
        .unwrap_or("")
}

/// The error shape of a request nothing is known of yet but its headers and query.
pub fn guess_shape(headers: &HeaderMap, query: &str) -> ErrorShape {
    let service = credential_service(headers);
    if !service.is_empty() {
        return shape_for_service(service, ErrorShape::Json);
    }
    if headers.contains_key("x-amz-target") {
        ErrorShape::Json
    } else if query.contains("X-Amz-Credential") || query.contains("x-amz-credential") {
        ErrorShape::S3Xml
    } else {
        ErrorShape::QueryXml
    }
}

/// The error shape of a service by its signing name; `fallback` for others.
pub fn shape_for_service(service: &str, fallback: ErrorShape) -> ErrorShape {
    match service {
        "s3" => ErrorShape::S3Xml,
        "ec2" => ErrorShape::Ec2Xml,
        "sts" | "iam" | "sns" | "cloudformation" | "monitoring" => ErrorShape::QueryXml,
        "dynamodb" | "kms" | "secretsmanager" | "ssm" | "logs" | "ecr" | "events" | "states"
        | "kinesis" | "sqs" => ErrorShape::Json,
        "lambda" | "eks" | "bedrock" => ErrorShape::RestJson,
        _ => fallback,
    }
}

/// The error shape of a protocol the classifier recognised the request by.
pub fn shape_for_protocol(protocol: Protocol) -> ErrorShape {
    match protocol {
        Protocol::Json | Protocol::RpcV2Cbor => ErrorShape::Json,
        Protocol::Query => ErrorShape::QueryXml,
        Protocol::Ec2 => ErrorShape::Ec2Xml,
        Protocol::RestJson => ErrorShape::RestJson,
        Protocol::RestXml => ErrorShape::S3Xml,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response<Bytes>) -> String {
        String::from_utf8(response.body().to_vec()).unwrap()
    }

    #[test]
    fn s3_errors_are_xml_with_escaped_message() {
        let error = AwsError::access_denied("rule <deny> & co", "req-1");
        let response = error.render(ErrorShape::S3Xml);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(
            body(&response)
                .contains("<Code>AccessDenied</Code><Message>rule &lt;deny&gt; &amp; co</Message>")
        );
    }

    #[test]
    fn json_errors_use_the_exception_suffix_in_type_and_header() {
        let response = AwsError::access_denied("no", "r").render(ErrorShape::Json);
        let json: serde_json::Value = serde_json::from_str(&body(&response)).unwrap();
        assert_eq!(json["__type"], "AccessDeniedException");
        assert_eq!(response.headers()["x-amzn-errortype"], "AccessDeniedException");
    }

    #[test]
    fn query_errors_say_sender_or_receiver() {
        let client = AwsError::new(StatusCode::FORBIDDEN, "ExpiredToken", "x", "r")
            .render(ErrorShape::QueryXml);
        assert!(body(&client).contains("<Type>Sender</Type><Code>ExpiredToken</Code>"));
        let server = AwsError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "x", "r")
            .render(ErrorShape::QueryXml);
        assert!(body(&server).contains("<Type>Receiver</Type>"));
    }

    #[test]
    fn ec2_errors_use_the_response_errors_envelope() {
        let response = AwsError::access_denied("no", "r").render(ErrorShape::Ec2Xml);
        assert!(body(&response).contains("<Response><Errors><Error><Code>AccessDenied</Code>"));
    }
}
