//! The recorder interface the data path calls at its two write points (docs/architecture.md, "The data path
//! of one call"): the request event, durable before the call is forwarded, and the response event.

use std::{future::Future, pin::Pin};

use chaperone_recording::EventBody;

use crate::identity::SessionContext;
pub use crate::recorder::RecordError;

/// A future returned by [`EventRecorder`] methods: why the event was not recorded, typed, so
/// the data path answers a full spool and an ended session differently.
pub type RecordFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RecordError>> + Send + 'a>>;

/// Where the gateway writes session events.
pub trait EventRecorder: Send + Sync + 'static {
    /// Appends one event of `session`; resolves once it is durable (fsynced in the spool).
    fn append<'a>(&'a self, session: &'a SessionContext, event: EventBody) -> RecordFuture<'a>;

    /// Appends one event of `session` that nobody waits for (a response), without a task or an
    /// acknowledgement; a failure after it was queued is logged by the recorder. `Err` when it
    /// was refused before the queue (the caller logs it).
    fn append_detached(
        &self,
        session: &SessionContext,
        event: EventBody,
    ) -> Result<(), RecordError>;
}

/// The session handle the recorder keys streams by, from a verified session.
pub fn session_handle(session: &SessionContext) -> crate::recorder::SessionHandle {
    let expires = chaperone_recording::Timestamp::from_offset_date_time(session.expires_at)
        .unwrap_or_else(|_| chaperone_recording::Timestamp::now());
    crate::recorder::SessionHandle {
        session: session.session_id.to_string(),
        connection: session.connection.clone(),
        start: chaperone_recording::SessionStart {
            connection: session.connection.clone(),
            agent: chaperone_recording::AgentIdentity {
                namespace: session.namespace.clone(),
                service_account: session.service_account.clone(),
                pod_name: session.pod.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
                pod_uid: session.pod.as_ref().map(|p| p.uid.clone()).unwrap_or_default(),
                role_session_name: session.role_session_name.clone(),
            },
            credentials_expire: expires,
        },
    }
}

impl EventRecorder for crate::recorder::Recorder {
    fn append<'a>(&'a self, session: &'a SessionContext, event: EventBody) -> RecordFuture<'a> {
        Box::pin(async move {
            let handle = session_handle(session);
            crate::recorder::Recorder::append(self, &handle, event).await
        })
    }

    fn append_detached(
        &self,
        session: &SessionContext,
        event: EventBody,
    ) -> Result<(), RecordError> {
        crate::recorder::Recorder::append_detached(self, &session_handle(session), event)
    }
}
