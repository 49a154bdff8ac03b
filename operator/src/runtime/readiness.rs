//! Whether this replica is ready to take webhook traffic (`/readyz`), and if not, why.

use std::sync::{Arc, Mutex};

/// Shared between what makes the replica ready (the webhooks) and the admin port that reports it.
#[derive(Clone, Debug)]
pub struct Readiness {
    not_ready: Arc<Mutex<Option<String>>>,
}

impl Readiness {
    /// Not ready, for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { not_ready: Arc::new(Mutex::new(Some(reason.into()))) }
    }

    /// Ready from the start (an operator that serves no webhooks).
    pub fn ready() -> Self {
        Self { not_ready: Arc::new(Mutex::new(None)) }
    }

    pub fn set_ready(&self) {
        *self.lock() = None;
    }

    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.lock() = Some(reason.into());
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), String> {
        match self.lock().as_ref() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.not_ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
