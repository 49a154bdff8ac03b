//! The recorder interface the data path calls at its two write points (DESIGN.md, "The data path
//! of one call"): the request event, durable before the call is forwarded, and the response event.

use std::{future::Future, pin::Pin};

use chaperone_recording::EventBody;

use crate::identity::SessionContext;

/// A future returned by [`EventRecorder`] methods.
pub type RecordFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RecordFailure>> + Send + 'a>>;

/// Why an event could not be recorded. The message says what happened and what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RecordFailure(pub String);

/// Where the gateway writes session events.
pub trait EventRecorder: Send + Sync + 'static {
    /// Appends one event of `session`; resolves once it is durable (fsynced in the spool).
    fn append<'a>(&'a self, session: &'a SessionContext, event: EventBody) -> RecordFuture<'a>;
}
