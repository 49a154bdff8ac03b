//! Stage 3, classify: the connection the session belongs to, the operation the request is, and
//! the IAM actions and resources it needs.

use chaperone_recording::AwsCall;
use http::StatusCode;

use super::{Call, Refusal};
use crate::{
    approval::fingerprint::semantic_headers,
    aws_error::{AwsError, shape_for_protocol},
    body::Inbound,
    classify::{AwsRequest, Classification, ResourceContext},
    forward::{EndpointError, check_scope, forward_unsigned, resolve_endpoint},
    identity::SessionContext,
    metrics::CallLabels,
    partition::Partition,
    sigv4::VerifiedRequest,
};
use chaperone_config::ConnectionConfig;

/// How much of a body the classifier looks at.
const CLASSIFY_BODY_LIMIT: usize = 64 * 1024;

/// What the call is: its connection and classification.
pub(super) struct Classified<'a> {
    /// The connection the session was minted for.
    pub(super) connection: &'a ConnectionConfig,
    /// The operation, its actions and resources, and how S3 addressed its bucket.
    pub(super) classification: Classification,
    /// The first IAM action (`<service>:Unknown` when there is none): what metrics and logs name.
    pub(super) first_action: String,
    /// Where the call goes upstream (the connection's override or the partition's endpoint of the
    /// modelled service), resolved before the call is decided and recorded.
    pub(super) endpoint: String,
    /// The semantic headers that go upstream (signed, or harmless unsigned ones), as an approval
    /// binds them.
    pub(super) semantic_headers: Vec<(String, String)>,
}

impl Classified<'_> {
    /// The metric labels of the call with `decision`.
    pub(super) fn labels(&self, service: &str, decision: &str) -> CallLabels {
        CallLabels {
            connection: self.connection.name.clone(),
            service: service.to_owned(),
            action: self.first_action.clone(),
            decision: decision.to_owned(),
        }
    }
}

impl<'a> Call<'a> {
    /// Finds the session's connection and classifies the request; errors from here on take the
    /// shape of the protocol the request was recognised by. Returns the call as the recording
    /// names it, too.
    pub(super) fn classify(
        &mut self,
        verified: &VerifiedRequest<SessionContext>,
        inbound: &Inbound,
    ) -> Result<(Classified<'a>, AwsCall), Refusal> {
        let session = &verified.session;
        let runtime = self.runtime;
        let connection = runtime.config.connection(&session.connection).ok_or_else(|| Refusal {
            error: AwsError::access_denied(
                format!(
                    "AgentConnection {}/{} no longer exists; the session's credentials are void",
                    session.namespace, session.connection
                ),
                self.request_id,
            ),
            shape: self.shape,
        })?;
        let service = &verified.scope.service;
        let region = &verified.scope.region;
        // Client text never steers the upstream: the scope passes its grammar before it names a
        // resource, an endpoint or a signing scope.
        check_scope(region, service).map_err(|error| self.unroutable(&error))?;
        let header_pairs: Vec<(&str, &str)> = self
            .parts
            .headers
            .iter()
            // Classified on the headers that go upstream: an unsigned header is stripped, so it
            // must not make the call look like another one.
            .filter(|(n, _)| verified.is_header_signed(n.as_str()) || forward_unsigned(n.as_str()))
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
            .collect();
        let (classify_body, body_truncated) = match inbound.buffered_payload() {
            Some(payload) => {
                let end = payload.len().min(CLASSIFY_BODY_LIMIT);
                (Some(&payload[..end]), payload.len() > CLASSIFY_BODY_LIMIT)
            }
            None => (None, true),
        };
        let classification = self.gateway.classifier.classify(
            &AwsRequest {
                signing_name: service,
                method: self.parts.method.as_str(),
                path: self.parts.uri.path(),
                query: self.parts.uri.query().unwrap_or(""),
                headers: &header_pairs,
                body: classify_body,
                body_truncated,
            },
            &ResourceContext {
                partition: Partition::of_region(region).name(),
                region,
                account_id: connection.account_id().unwrap_or("*"),
            },
        );
        if let Some(protocol) = classification.protocol {
            self.shape = shape_for_protocol(protocol);
        }
        let endpoint = resolve_endpoint(
            &connection.endpoints,
            &session.namespace,
            &connection.name,
            service,
            classification.endpoint_prefix,
            region,
        )
        .map_err(|error| self.unroutable(&error))?;
        let actions: Vec<String> =
            classification.actions.iter().map(|a| a.action.clone()).collect();
        let resources: Vec<String> =
            classification.actions.iter().flat_map(|a| a.resources.iter().cloned()).collect();
        let first_action = actions.first().cloned().unwrap_or_else(|| format!("{service}:Unknown"));
        let aws = AwsCall {
            service: service.clone(),
            operation: classification.operation.unwrap_or("Unknown").to_owned(),
            actions,
            resources,
        };
        let semantic_headers = semantic_headers(header_pairs.iter().copied());
        Ok((
            Classified { connection, classification, first_action, endpoint, semantic_headers },
            aws,
        ))
    }

    /// The refusal of a call with no upstream: a scope outside the grammar is a malformed
    /// signature (400), a service nobody says where to send is refused (403).
    fn unroutable(&self, error: &EndpointError) -> Refusal {
        let message = format!("{error} (Chaperone gateway; request {})", self.request_id);
        match error {
            EndpointError::Region { .. } | EndpointError::Service { .. } => {
                self.refuse(StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed", message)
            }
            EndpointError::UnknownService { .. } => {
                self.refuse(StatusCode::FORBIDDEN, "AccessDenied", message)
            }
        }
    }
}
