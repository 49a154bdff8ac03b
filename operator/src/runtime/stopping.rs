//! What the operator's long-running servers share: one shutdown signal many tasks wait on, and
//! the start-up that retries with backoff until it succeeds or the process is told to stop.

use std::{fmt::Display, future::Future, time::Duration};

use tokio::sync::watch;

/// The longest wait between two start-up attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// A shutdown future, turned into a signal any number of tasks can wait on.
#[derive(Clone, Debug)]
pub struct Stopped(watch::Receiver<bool>);

impl Stopped {
    /// Completes every [`Stopped::wait`] once `shutdown` completes.
    pub fn on(shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        Self(stopped)
    }

    /// Completes once the process is told to stop.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }

    /// Sleeps `delay`; false when told to stop first.
    pub async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.clone().wait() => false,
        }
    }

    /// Runs `attempt` until it succeeds, waiting 1 s after the first failure and twice as long
    /// after each next one (at most 30 s), each failure logged as `what` with its error; `None`
    /// when told to stop first.
    pub async fn retry<T, E, Fut>(&self, what: &str, mut attempt: impl FnMut() -> Fut) -> Option<T>
    where
        E: Display,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut delay = Duration::from_secs(1);
        loop {
            match attempt().await {
                Ok(value) => return Some(value),
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?delay, "{what}");
                    if !self.sleep(delay).await {
                        return None;
                    }
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
}
