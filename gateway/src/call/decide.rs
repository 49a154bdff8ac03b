//! Stage 4, decide and approve: the connection's policy decides; an allowed call that an
//! ApprovalRule matches is held here until reviewers decide. A denied call is recorded (its
//! `denied` event) and refused.

use std::{collections::BTreeMap, time::Instant};

use chaperone_crds::RecordingPolicySpec;

use chaperone_recording::{Body as RecordedBody, Decision, Denied, Effect, EventBody, Timings};
use http::header;

use super::{Call, Refusal, classify::Classified, record::RequestRecord};
use crate::{
    approval::{ApprovalError, ApprovalGate, BodyDigest, CallUnderReview},
    aws_error::AwsError,
    classify::Classification,
    identity::SessionContext,
    policy::PolicyDecision,
};

/// Body bytes a `denied` event keeps: a refused call forwards nothing, so its body is evidence,
/// not data, and an agent sending refused calls cannot fill the spool with their bodies. The
/// recording keeps the full size and sha256 and marks the body `truncated`.
pub(super) const DENIED_BODY_CAP: usize = 4096;

impl Call<'_> {
    /// The decision on the call, after approval rules; how long a held call waited goes into
    /// `request`'s timings.
    pub(super) async fn decide(
        &self,
        session: &SessionContext,
        classified: &Classified<'_>,
        request: &mut RequestRecord,
        body: BodyDigest,
        body_preview: Option<&[u8]>,
    ) -> PolicyDecision {
        let connection = classified.connection;
        if let Some(denial) = self.recording_bucket_denial(session, &classified.classification) {
            return denial;
        }
        let decision = match self.runtime.policies.get(&connection.name) {
            Some(policy) => policy.decide(&classified.classification),
            None => PolicyDecision::Deny {
                object: format!("AgentConnection/{}/{}", session.namespace, connection.name),
                rule: "policy".into(),
                message: "the connection's policy did not compile; see the operator's conditions"
                    .into(),
            },
        };
        let Some(gate) = &self.runtime.approvals else {
            return decision;
        };
        if !matches!(decision, PolicyDecision::Allow) {
            return decision;
        }
        let call = CallUnderReview {
            session,
            actions: &request.aws.actions,
            resources: &request.aws.resources,
            resources_complete: classified.classification.resources_complete,
            method: self.parts.method.as_str(),
            raw_path: self.path(),
            raw_query: self.query(),
            content_type: self
                .parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            headers: &classified.semantic_headers,
            body,
            body_preview,
        };
        let (decision, approval_us) = self.approve(gate, call, &request.call).await;
        request.approval_us = approval_us;
        decision
    }

    /// A call that names a bucket a RecordingPolicy of the namespace writes to (as its bucket, a
    /// resource, or a copy source): refused whatever the connection's policy allows.
    fn recording_bucket_denial(
        &self,
        session: &SessionContext,
        classification: &Classification,
    ) -> Option<PolicyDecision> {
        let (policy, bucket) =
            recording_bucket_named(&self.runtime.config.recording_policies, classification)?;
        Some(PolicyDecision::Deny {
            object: format!("RecordingPolicy/{}/{policy}", session.namespace),
            rule: "builtin:recording-bucket".into(),
            message: format!(
                "S3 bucket {bucket} holds the recordings of RecordingPolicy {}/{policy}; agents never read or change it, whatever spec.policy.allow says (auditors read recordings with kubectl chaperone)",
                session.namespace
            ),
        })
    }

    /// Holds a call an ApprovalRule matches until reviewers decide and records its `approval`
    /// event (before the request event). Returns the decision and how long the call was held.
    async fn approve(
        &self,
        gate: &ApprovalGate,
        call: CallUnderReview<'_>,
        call_id: &str,
    ) -> (PolicyDecision, Option<u64>) {
        let held_since = Instant::now();
        let Some(held) = gate.review(&call).await else {
            return (PolicyDecision::Allow, None);
        };
        let session = call.session;
        let decision = match held {
            Ok(result) => {
                let event = EventBody::Approval(result.event(call_id));
                if let Err(failure) = self.gateway.recorder.append(session, event).await {
                    tracing::warn!(session = %session.session_id, %failure, "could not record an approval");
                }
                result.decision()
            }
            Err(error @ ApprovalError::UnboundBody { .. }) => {
                tracing::info!(session = %session.session_id, connection = %session.connection, action = ?call.actions, %error, "refused a held call whose body no approval can bind");
                error.decision(&session.namespace)
            }
            Err(error) => {
                tracing::error!(session = %session.session_id, connection = %session.connection, action = ?call.actions, %error, "approval store failed; refusing the held call");
                error.decision(&session.namespace)
            }
        };
        (decision, Some(held_since.elapsed().as_micros() as u64))
    }

    /// A denied call: counted, logged, its `denied` event recorded (best effort: a denial
    /// forwards nothing), and the agent answered AccessDenied with the rule's message.
    pub(super) async fn deny(
        &self,
        session: &SessionContext,
        classified: &Classified<'_>,
        request: RequestRecord,
        object: String,
        rule: String,
        message: String,
    ) -> Refusal {
        let service = &request.aws.service;
        self.gateway.metrics.calls_total.get_or_create(&classified.labels(service, "denied")).inc();
        let request_id = self.request_id;
        let message = format!("{message} (Chaperone gateway; request {request_id})");
        tracing::info!(session = %session.session_id, connection = %classified.connection.name, action = %classified.first_action, %rule, "denied");
        let error = AwsError::access_denied(message.clone(), request_id);
        let event = EventBody::Denied(Denied {
            call: request.call,
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: capped(request.body, DENIED_BODY_CAP),
            aws: request.aws,
            decision: Decision { effect: Effect::Deny, object: Some(object), rule: Some(rule) },
            timings: Timings {
                decide_us: Some(request.decide_us),
                approval_us: request.approval_us,
                ..Default::default()
            },
            status: error.status.as_u16(),
            error_code: error.code.clone(),
            message,
            redacted: Vec::new(),
        });
        if let Err(failure) = self.gateway.recorder.append(session, event).await {
            tracing::warn!(session = %session.session_id, %failure, "could not record a denial");
        }
        Refusal { error, shape: self.shape }
    }
}

/// `body` with at most `cap` captured bytes (size and sha256 unchanged, `truncated` set when
/// bytes were left out).
fn capped(body: RecordedBody, cap: usize) -> RecordedBody {
    match body.captured_bytes() {
        Ok(bytes) if bytes.len() > cap => {
            RecordedBody::captured(&bytes[..cap], body.size, body.sha256)
        }
        _ => body,
    }
}

/// The RecordingPolicy whose bucket the call names, and the bucket: the call's S3 bucket, or the
/// bucket of any S3 resource it needs (a copy source is one).
fn recording_bucket_named<'p>(
    policies: &'p BTreeMap<String, RecordingPolicySpec>,
    classification: &'p Classification,
) -> Option<(&'p str, &'p str)> {
    if policies.is_empty() {
        return None;
    }
    let resources = classification
        .actions
        .iter()
        .flat_map(|action| &action.resources)
        .filter_map(|arn| s3_bucket_of(arn));
    classification.s3_bucket.as_deref().into_iter().chain(resources).find_map(|bucket| {
        policies
            .iter()
            .find(|(_, policy)| policy.s3.bucket == bucket)
            .map(|(name, _)| (name.as_str(), bucket))
    })
}

/// The bucket of an S3 bucket or object ARN (`arn:<partition>:s3:::<bucket>[/<key>]`).
fn s3_bucket_of(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("s3:::")?;
    let bucket = rest.split_once('/').map_or(rest, |(bucket, _)| bucket);
    (!bucket.is_empty()).then_some(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{AwsRequest, Classifier, ResourceContext};

    fn policies() -> BTreeMap<String, RecordingPolicySpec> {
        let spec = serde_json::json!({
            "s3": {"bucket": "team-audit", "prefix": "agents/", "region": "us-east-1"},
            "retention": {"days": 30},
        });
        [("default".to_owned(), serde_json::from_value(spec).unwrap())].into()
    }

    fn classify(
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Classification {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        Classifier::new(["localhost"]).classify(
            &AwsRequest {
                signing_name: "s3",
                method,
                path,
                query,
                headers: &all,
                body: Some(b""),
                body_truncated: false,
            },
            &ResourceContext { partition: "aws", region: "us-east-1", account_id: "*" },
        )
    }

    #[test]
    fn calls_naming_a_recording_bucket_are_found_however_they_name_it() {
        let policies = policies();
        let named = |c: &Classification| {
            recording_bucket_named(&policies, c).map(|(p, b)| (p.to_owned(), b.to_owned()))
        };
        let hit = Some(("default".to_owned(), "team-audit".to_owned()));
        for (method, host, path, query) in [
            ("GET", "localhost", "/team-audit/agents/x.jsonl", ""),
            ("PUT", "localhost", "/team-audit/agents/x.jsonl", ""),
            ("DELETE", "localhost", "/team-audit/agents/x.jsonl", ""),
            ("GET", "localhost", "/team-audit", "list-type=2"),
            ("GET", "team-audit.localhost", "/agents/x.jsonl", ""),
        ] {
            assert_eq!(
                named(&classify(method, host, path, query, &[])),
                hit,
                "{method} {host}{path}"
            );
        }
        for source in [
            "team-audit/agents/x.jsonl",
            "/team-audit/agents/x.jsonl?versionId=1",
            "%2Fteam-audit%2Fagents%2Fx",
        ] {
            let copy =
                classify("PUT", "localhost", "/mine/copy", "", &[("x-amz-copy-source", source)]);
            assert_eq!(named(&copy), hit, "copy source {source}");
        }
        assert_eq!(named(&classify("GET", "localhost", "/team-audit-2/x", "", &[])), None);
        assert_eq!(named(&classify("GET", "localhost", "/", "", &[])), None);
        assert_eq!(
            recording_bucket_named(
                &BTreeMap::new(),
                &classify("GET", "localhost", "/team-audit/x", "", &[])
            ),
            None
        );
    }

    #[test]
    fn s3_arns_name_their_bucket() {
        assert_eq!(s3_bucket_of("arn:aws:s3:::b/k/l"), Some("b"));
        assert_eq!(s3_bucket_of("arn:aws-cn:s3:::b"), Some("b"));
        assert_eq!(s3_bucket_of("arn:aws:s3:::"), None);
        assert_eq!(s3_bucket_of("arn:aws:sqs:us-east-1:1:b"), None);
        assert_eq!(s3_bucket_of("arn:aws:s3:us-east-1:1:accesspoint/ap"), None);
    }
}
