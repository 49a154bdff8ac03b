//! What every controller does the same way, written once: per-object backoff after failures
//! (with a `ReconcileFailed` Warning event and the failure metric), reconcile timing, event
//! publishing, status written with server-side apply, and AWS keys read from a Secret's data.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chaperone_config::{Redacted, UpstreamCredentials};
use futures::{Stream, StreamExt, TryFuture};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::{
    api::core::v1::{ObjectReference, Secret},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams, ValidationDirective},
    runtime::{
        Controller,
        controller::{Action, Error as ControllerError},
        events::{Event, EventType, Recorder, Reporter},
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::{Error, FIELD_MANAGER, runtime::metrics::OperatorMetrics};

/// How long a stopping controller waits for its running reconciles ([`ControllerBase::drain`]),
/// within the 30 s Kubernetes gives a pod to stop.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// The longest wait before a failed reconcile is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How soon a reconcile refused for reading an object older than the API server's
/// ([`Error::is_stale_read`]) is tried again; the watch usually delivers the newer one first.
pub const STALE_READ_RETRY: Duration = Duration::from_millis(500);

/// Key of the access key id in a Secret of AWS keys.
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
/// Key of the secret access key in a Secret of AWS keys.
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Key of an optional session token in a Secret of AWS keys (temporary keys).
pub const SESSION_TOKEN_KEY: &str = "AWS_SESSION_TOKEN";

/// What every reconcile of one controller shares: the API client, the metrics, the event
/// recorder, and the failure count per object that drives the backoff.
pub struct ControllerBase {
    controller: &'static str,
    /// The client reconciles act with.
    pub client: Client,
    /// The operator's metrics.
    pub metrics: Arc<OperatorMetrics>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// Reconciles running now ([`Self::running`]), which a stopping controller waits for.
    in_flight: Arc<AtomicUsize>,
}

/// A reconcile counted as running until dropped ([`ControllerBase::running`]).
pub struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for ControllerBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerBase")
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

impl ControllerBase {
    /// The scaffolding of the controller called `controller` (its name in metrics and logs).
    pub fn new(controller: &'static str, client: Client, metrics: Arc<OperatorMetrics>) -> Self {
        let reporter =
            Reporter { controller: FIELD_MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Self {
            controller,
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            failures: Mutex::new(HashMap::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Counts a reconcile as running until the returned value is dropped.
    pub fn running(&self) -> Running {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Running(self.in_flight.clone())
    }

    /// Drives a controller's result stream until the controller stops, logging what it
    /// reconciled (failed reconciles were already logged and counted by [`Self::retry`]).
    ///
    /// `shutdown` is the trigger the controller was given (`graceful_shutdown_on`). Once it
    /// fires, running reconciles get [`DRAIN_GRACE`] to finish. kube's controller holds its runner
    /// until its store has listed once, and a shutdown before that leaves the stream open for
    /// good; so when nothing is reconciling, the controller is left without waiting for it.
    pub async fn drain<K>(
        &self,
        results: impl Stream<
            Item = Result<(ObjectRef<K>, Action), ControllerError<Error, watcher::Error>>,
        >,
        shutdown: impl Future<Output = ()>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let logged = results.for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(ControllerError::ReconcilerFailed(..)) => {}
                Err(error) => warn!(%error, "the controller could not schedule a reconcile"),
            }
        });
        let stopped = async {
            shutdown.await;
            let since = Instant::now();
            while self.in_flight.load(Ordering::SeqCst) > 0 && since.elapsed() < DRAIN_GRACE {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                warn!(
                    controller = self.controller,
                    "reconciles still running after {DRAIN_GRACE:?}; stopping anyway"
                );
            }
            // A controller that can finish by itself now does so within this moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        tokio::select! {
            () = logged => {}
            () = stopped => {
                tracing::debug!(controller = self.controller, "stopped before its watches were ready");
            }
        }
    }

    /// Counts a reconcile of `object` that started at `started`; a success resets its backoff.
    pub fn finished<K: ResourceExt, T>(
        &self,
        object: &K,
        started: Instant,
        result: &Result<T, Error>,
    ) {
        self.metrics.reconciled(self.controller, started.elapsed().as_secs_f64());
        if result.is_ok()
            && let Ok(mut failures) = self.failures.lock()
        {
            failures.remove(&object_key(object));
        }
    }

    /// One reconcile of a namespaced object kept by `finalizer_name`: `handle` gets the finalizer's
    /// event (apply, or clean up before deletion) and the object's namespace; the run is timed
    /// and counted ([`Self::finished`]). `kind` names the object in the error when it has no
    /// namespace.
    pub async fn reconcile_finalized<K, F, Fut>(
        &self,
        object: Arc<K>,
        kind: &'static str,
        finalizer_name: &str,
        handle: F,
    ) -> Result<Action, Error>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        F: FnOnce(FinalizerEvent<K>, String) -> Fut,
        Fut: Future<Output = Result<Action, Error>>,
    {
        let started = Instant::now();
        let _running = self.running();
        let namespace =
            object.namespace().ok_or(Error::MissingField { kind, field: "metadata.namespace" })?;
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let result =
            finalizer(&api, finalizer_name, object.clone(), |event| handle(event, namespace))
                .await
                .map_err(|e| Error::Finalizer(Box::new(e)));
        self.finished(object.as_ref(), started, &result);
        result
    }

    /// The error policy: counts the failure, logs it, publishes a `ReconcileFailed` Warning event
    /// on the object and retries with exponential backoff (1 s doubling, at most
    /// [`MAX_BACKOFF`]).
    pub fn retry<K>(&self, object: &K, error: &Error) -> Action
    where
        K: Resource<DynamicType = ()>,
    {
        self.metrics.failed(self.controller, error.kind());
        let key = object_key(object);
        if error.is_stale_read() {
            tracing::debug!(
                controller = self.controller,
                object = %key,
                %error,
                "the object changed since it was read; retrying with the newer one"
            );
            return Action::requeue(STALE_READ_RETRY);
        }
        let attempts = match self.failures.lock() {
            Ok(mut failures) => {
                let attempts = failures.entry(key.clone()).or_insert(0);
                *attempts = attempts.saturating_add(1);
                *attempts
            }
            Err(_) => 1,
        };
        let delay = backoff(attempts);
        warn!(
            controller = self.controller,
            object = %key,
            %error,
            attempts,
            retry_in_seconds = delay.as_secs(),
            "reconcile failed"
        );
        // An error policy is synchronous: the event goes out from a task.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let recorder = self.recorder.clone();
            let reference = object.object_ref(&());
            let event = Event {
                type_: EventType::Warning,
                reason: "ReconcileFailed".into(),
                note: Some(format!(
                    "{error} (attempt {attempts}; retrying in {} s)",
                    delay.as_secs()
                )),
                action: "Reconcile".into(),
                secondary: None,
            };
            runtime.spawn(async move {
                if let Err(error) = recorder.publish(&event, &reference).await {
                    warn!(%error, "could not publish an event");
                }
            });
        }
        Action::requeue(delay)
    }

    /// Publishes an event on `reference`; a failure to publish is logged, never fatal.
    pub async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            warn!(%error, reason, "could not publish an event");
        }
    }

    /// Publishes an event for each condition of `after` whose status or reason differs from the
    /// same type in `before` (Normal when it is True, Warning otherwise).
    pub async fn publish_condition_changes(
        &self,
        reference: &ObjectReference,
        before: &[Condition],
        after: &[Condition],
    ) {
        for condition in after {
            let previous = before.iter().find(|c| c.type_ == condition.type_);
            let changed = previous
                .is_none_or(|b| b.status != condition.status || b.reason != condition.reason);
            if !changed {
                continue;
            }
            let type_ =
                if condition.status == "True" { EventType::Normal } else { EventType::Warning };
            let note =
                format!("{} is {}: {}", condition.type_, condition.status, condition.message);
            self.publish(reference, type_, &condition.reason, "Reconcile", note).await;
        }
    }

    /// Writes `status` onto the object `name` of `namespace` with server-side apply under
    /// [`FIELD_MANAGER`] (strict field validation, conflicts forced).
    pub async fn apply_status<K>(
        &self,
        namespace: &str,
        name: &str,
        status: &impl serde::Serialize,
    ) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(name, &apply_params(), &Patch::Apply(patch)).await.map_err(
            Error::kube(format!("writing the status of {} {namespace}/{name}", K::kind(&()))),
        )?;
        Ok(())
    }
}

/// A controller's shared context: what [`run`] and [`error_policy`] need of it.
pub trait Reconciles: Send + Sync + 'static {
    /// The controller's scaffolding.
    fn base(&self) -> &ControllerBase;
}

/// Runs `controller` (its watches set up) with `reconcile` until `shutdown` completes, then lets
/// running reconciles finish ([`ControllerBase::drain`]). Failures go to [`error_policy`].
pub async fn run<K, C, Fut>(
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<C>) -> Fut,
    context: Arc<C>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    C: Reconciles,
    Fut: TryFuture<Ok = Action, Error = Error> + Send + 'static,
{
    let shutdown = futures::FutureExt::shared(shutdown);
    let results = controller.graceful_shutdown_on(shutdown.clone()).run(
        reconcile,
        error_policy,
        context.clone(),
    );
    context.base().drain(results, shutdown).await;
}

/// The error policy of every controller: [`ControllerBase::retry`].
pub fn error_policy<K, C>(object: Arc<K>, error: &Error, context: Arc<C>) -> Action
where
    K: Resource<DynamicType = ()>,
    C: Reconciles,
{
    context.base().retry(object.as_ref(), error)
}

/// An API over one namespace, or all of them.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The objects of `store` in `namespace` for which `wanted` holds: what a watch of a related
/// kind (a Secret, a policy) maps to, to reconcile them again.
pub fn objects_in<K>(
    store: &Store<K>,
    namespace: Option<&str>,
    wanted: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == namespace && wanted(o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// The delay before retry number `attempts` (1 s, doubling, at most [`MAX_BACKOFF`]).
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(1, 9).saturating_sub(1)).min(MAX_BACKOFF)
}

/// `namespace/name` of an object (its key in logs and in the failure counts).
pub fn object_key<K: ResourceExt>(object: &K) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

/// Server-side apply under [`FIELD_MANAGER`], strict field validation, conflicts forced.
pub fn apply_params() -> PatchParams {
    PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::apply(FIELD_MANAGER).force()
    }
}

/// A Secret's data as plain bytes.
pub fn secret_data(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()
}

/// The text under `key` of a Secret's data: UTF-8, trimmed, not empty.
pub fn secret_text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<String> {
    let text = std::str::from_utf8(data.get(key)?).ok()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// AWS keys under the conventional names ([`ACCESS_KEY_ID_KEY`], [`SECRET_ACCESS_KEY_KEY`],
/// optional [`SESSION_TOKEN_KEY`]); `None` when either key is missing or empty.
pub fn aws_keys(data: &BTreeMap<String, Vec<u8>>) -> Option<UpstreamCredentials> {
    Some(UpstreamCredentials {
        access_key_id: secret_text(data, ACCESS_KEY_ID_KEY)?,
        secret_access_key: Redacted(secret_text(data, SECRET_ACCESS_KEY_KEY)?),
        session_token: secret_text(data, SESSION_TOKEN_KEY).map(Redacted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        let delays: Vec<u64> = [1, 2, 3, 9, 10, 50].map(|n| backoff(n).as_secs()).to_vec();
        assert_eq!(delays, [1, 2, 4, 256, 256, 256]);
        assert_eq!(backoff(0), Duration::from_secs(1));
    }

    #[test]
    fn aws_keys_are_trimmed_and_need_both_halves() {
        let mut data = BTreeMap::from([
            (ACCESS_KEY_ID_KEY.to_owned(), b"AKIAEXAMPLE\n".to_vec()),
            (SECRET_ACCESS_KEY_KEY.to_owned(), b" s3cret ".to_vec()),
        ]);
        let keys = aws_keys(&data).unwrap();
        assert_eq!(
            (keys.access_key_id.as_str(), keys.secret_access_key.as_str()),
            ("AKIAEXAMPLE", "s3cret")
        );
        assert_eq!(keys.session_token, None);
        data.insert(SECRET_ACCESS_KEY_KEY.to_owned(), b"  ".to_vec());
        assert!(aws_keys(&data).is_none());
    }
}
