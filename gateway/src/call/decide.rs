//! Stage 4, decide and approve: the connection's policy decides; an allowed call that an
//! ApprovalRule matches is held here until reviewers decide. A denied call is recorded (its
//! `denied` event) and refused.

use std::time::Instant;

use chaperone_recording::{Decision, Denied, Effect, EventBody, Timings};
use http::header;

use super::{Call, Refusal, classify::Classified, record::RequestRecord};
use crate::{
    approval::{ApprovalGate, BodyDigest, CallUnderReview},
    aws_error::AwsError,
    identity::SessionContext,
    policy::PolicyDecision,
};

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
            body,
            body_preview,
        };
        let (decision, approval_us) = self.approve(gate, call, &request.call).await;
        request.approval_us = approval_us;
        decision
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
            body: request.body,
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
