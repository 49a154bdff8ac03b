//! The AgentConnection controller: for each namespace with AgentConnections, one gateway.
//!
//! Every reconcile of an AgentConnection renders its whole namespace's gateway (the objects are
//! shared by the namespace's connections), then writes that connection's status. The plan is pure
//! ([`crate::gateway::config_compiler`], [`crate::gateway::keys`], [`crate::gateway::objects`],
//! [`crate::gateway::connection_status`]); this module fetches inputs, applies the plan with server-side
//! apply under [`crate::FIELD_MANAGER`], publishes events and tears the gateway down through a
//! finalizer when the namespace's last connection goes.
//!
//! Watched besides AgentConnections: Secrets (a connection's credentials and the gateway's own
//! two), RecordingPolicies, ApprovalRules and the gateway Deployments, so that a change to any of
//! them re-renders the namespace's config Secret.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use chaperone_config::{IdentitySource, tls};
use chaperone_crds::{AgentConnection, ApprovalRule, RecordingPolicy};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Secret, networking::v1::NetworkPolicy},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, PartialObjectMeta, Patch, PostParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::EventType,
        finalizer::Event as FinalizerEvent,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tracing::info;

use crate::{
    FIELD_MANAGER,
    error::Error,
    gateway::config_compiler::{self, Compilation, NamespaceInputs, SecretData},
    gateway::connection_status::{self, GatewayReplicas, StatusInputs},
    gateway::issuer_discovery,
    gateway::keys::{self, ExistingKeys, KeysChange, KeysPlan},
    gateway::objects::{self, Manifest},
    network_policy::policies::{self as network_policies, NetworkPolicies},
    runtime::{
        metrics::OperatorMetrics,
        scaffolding::{self, ControllerBase, Reconciles, apply_params},
        settings::GatewaySettings,
    },
    webhooks::certificate_store::{CertificateSecret, ensure_certificates},
};

/// The controller's name in metrics and events.
pub const CONTROLLER: &str = "agentconnection";
/// The finalizer that tears a namespace's gateway down when its last connection goes.
pub const FINALIZER: &str = "chaperone.dev/gateway-teardown";
/// How often a converged connection is reconciled anyway (drift repair, key rotation).
pub const RESYNC: Duration = Duration::from_secs(300);

/// What every reconcile shares.
#[derive(Debug)]
pub struct Context {
    base: ControllerBase,
    settings: GatewaySettings,
    /// One lock per namespace: reconciles of a namespace's connections render the same objects,
    /// so they take turns (a teardown must not interleave with another connection's render).
    namespace_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Reconciles for Context {
    fn base(&self) -> &ControllerBase {
        &self.base
    }
}

impl Context {
    /// A context reconciling with `client`.
    pub fn new(client: Client, settings: GatewaySettings, metrics: Arc<OperatorMetrics>) -> Self {
        Self {
            base: ControllerBase::new(CONTROLLER, client, metrics),
            settings,
            namespace_locks: Mutex::new(HashMap::new()),
        }
    }

    fn namespace_lock(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.namespace_locks.lock() {
            Ok(mut locks) => locks.entry(namespace.to_owned()).or_default().clone(),
            // A poisoned map only means another reconcile panicked; a fresh lock still
            // serializes the ones to come.
            Err(_) => Arc::default(),
        }
    }
}

/// Runs the controller until `shutdown` completes, then lets running reconciles finish.
///
/// `namespace` limits it to one namespace (`None`: all namespaces).
pub async fn run(
    context: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = context.base.client.clone();
    let ns = namespace.as_deref();
    let connections = scaffolding::scoped::<AgentConnection>(&client, ns);
    let secrets = scaffolding::scoped::<PartialObjectMeta<Secret>>(&client, ns);
    let policies = scaffolding::scoped::<RecordingPolicy>(&client, ns);
    let rules = scaffolding::scoped::<ApprovalRule>(&client, ns);
    let deployments = scaffolding::scoped::<Deployment>(&client, ns);
    let controller = Controller::new(connections, watcher::Config::default());
    let store = controller.store();
    let gateway_selector = objects::gateway_label_selector();
    let controller = controller
        // Only the Secrets' metadata (`Api<PartialObjectMeta<_>>` asks the metadata API): which
        // one changed is all a reconcile needs (it reads the ones it uses), and the operator's
        // memory stays independent of the cluster's Secrets.
        .watches_stream(watcher(secrets, watcher::Config::default()).touched_objects(), {
            let store = store.clone();
            move |secret: PartialObjectMeta<Secret>| connections_using_secret(&store, &secret)
        })
        .watches(policies, watcher::Config::default(), {
            let store = store.clone();
            move |policy: RecordingPolicy| {
                let name = policy.name_any();
                scaffolding::objects_in(&store, policy.namespace().as_deref(), |c| {
                    c.spec.recording_policy_ref.name == name
                })
            }
        })
        .watches(rules, watcher::Config::default(), {
            let store = store.clone();
            move |rule: ApprovalRule| {
                scaffolding::objects_in(&store, rule.namespace().as_deref(), |_| true)
            }
        })
        .watches(deployments, watcher::Config::default().labels(&gateway_selector), {
            let store = store.clone();
            move |deployment: Deployment| {
                scaffolding::objects_in(&store, deployment.namespace().as_deref(), |_| true)
            }
        });
    scaffolding::run(controller, reconcile, context, shutdown).await;
}

fn connections_using_secret(
    store: &Store<AgentConnection>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<AgentConnection>> {
    let name = secret.name_any();
    let own = name == objects::CONFIG_SECRET_NAME
        || name == objects::KEYS_SECRET_NAME
        || name == objects::TLS_SECRET_NAME;
    scaffolding::objects_in(store, secret.namespace().as_deref(), |c| {
        own || c.spec.aws.credentials.secret_ref.as_ref().is_some_and(|r| r.name == name)
    })
}

/// Reconciles one AgentConnection: renders its namespace's gateway and writes its status, or,
/// when it is being deleted, tears the gateway down if it was the namespace's last connection.
pub async fn reconcile(
    connection: Arc<AgentConnection>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let context = context.as_ref();
    context
        .base
        .reconcile_finalized(
            connection,
            "AgentConnection",
            FINALIZER,
            |event, namespace| async move {
                let lock = context.namespace_lock(&namespace);
                let _turn = lock.lock().await;
                match event {
                    FinalizerEvent::Apply(connection) => {
                        apply(&connection, &namespace, context).await
                    }
                    FinalizerEvent::Cleanup(connection) => {
                        cleanup(&connection, &namespace, context).await
                    }
                }
            },
        )
        .await
}

async fn apply(
    connection: &AgentConnection,
    namespace: &str,
    context: &Context,
) -> Result<Action, Error> {
    let name = connection.name_any();
    let live = live_connections(context, namespace, None).await?;
    if !live.iter().any(|c| c.name_any() == name) {
        // A stale copy of a connection that is gone or going: rendering without it could
        // recreate a gateway its teardown just removed.
        return Ok(Action::await_change());
    }
    let rendered = render_gateway(context, namespace, &live).await?;
    let Some(outcome) = rendered.compilation.outcomes.get(&name) else {
        // Compiled from the list that contains it: cannot happen; render again shortly.
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let status = connection_status::connection_status(&StatusInputs {
        name: &name,
        namespace,
        generation: connection.metadata.generation,
        outcome,
        endpoint: rendered.endpoint.clone(),
        replicas: rendered.replicas,
        recording_public_keys: rendered.keys.recording_public_keys.clone(),
        previous: connection.status.as_ref(),
        now: Timestamp::now(),
    });

    let reference = connection.object_ref(&());
    if !rendered.changed.is_empty() {
        context
            .base
            .publish(
                &reference,
                EventType::Normal,
                "GatewayApplied",
                "Apply",
                format!("Applied in namespace {namespace}: {}.", rendered.changed.join(", ")),
            )
            .await;
    }
    for ignored in rendered.ignored_network.iter().filter(|i| i.connection == name) {
        context
            .base
            .publish(
                &reference,
                EventType::Warning,
                ignored.reason,
                "Apply",
                ignored.message.clone(),
            )
            .await;
    }
    if let KeysChange::Rotated { reason } | KeysChange::Regenerated { problem: reason } =
        &rendered.keys.change
    {
        context
            .base
            .publish(
                &reference,
                EventType::Normal,
                "KeysRotated",
                "RotateKeys",
                format!("Secret {namespace}/{}: {reason}.", objects::KEYS_SECRET_NAME),
            )
            .await;
    }
    if connection.status.as_ref() != Some(&status) {
        let before = connection.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
        context.base.publish_condition_changes(&reference, before, &status.conditions).await;
        context.base.apply_status::<AgentConnection>(namespace, &name, &status).await?;
        info!(connection = %name, namespace, "status written");
    }
    Ok(Action::requeue(RESYNC))
}

async fn cleanup(
    connection: &AgentConnection,
    namespace: &str,
    context: &Context,
) -> Result<Action, Error> {
    let name = connection.name_any();
    let others = live_connections(context, namespace, Some(&name)).await?;
    let reference = connection.object_ref(&());
    if others.is_empty() {
        let removed = delete_gateway(context, namespace).await?;
        info!(connection = %name, namespace, removed = removed.len(), "gateway torn down");
        context
            .base
            .publish(
                &reference,
                EventType::Normal,
                "GatewayRemoved",
                "Teardown",
                format!(
                    "{name} was the last AgentConnection of namespace {namespace}; deleted {}.",
                    if removed.is_empty() {
                        "nothing (no gateway objects existed)".into()
                    } else {
                        removed.join(", ")
                    }
                ),
            )
            .await;
    } else {
        render_gateway(context, namespace, &others).await?;
        context
            .base
            .publish(
                &reference,
                EventType::Normal,
                "ConnectionRemoved",
                "Teardown",
                format!("Removed {name} from the gateway configuration of namespace {namespace}."),
            )
            .await;
    }
    Ok(Action::await_change())
}

/// The namespace's AgentConnections that are not being deleted (and are not `except`).
async fn live_connections(
    context: &Context,
    namespace: &str,
    except: Option<&str>,
) -> Result<Vec<AgentConnection>, Error> {
    let api: Api<AgentConnection> = Api::namespaced(context.base.client.clone(), namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(Error::kube(format!("listing AgentConnections in {namespace}")))?;
    let mut live: Vec<AgentConnection> = list
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter(|c| except.is_none_or(|e| c.name_any() != e))
        .collect();
    live.sort_by_key(|c| c.name_any());
    Ok(live)
}

/// The result of rendering a namespace's gateway.
struct RenderedGateway {
    compilation: Compilation,
    keys: KeysPlan,
    endpoint: Option<String>,
    replicas: GatewayReplicas,
    /// Objects created or changed, as `Kind name`.
    changed: Vec<String>,
    /// What of the connections the NetworkPolicies could not honour.
    ignored_network: Vec<network_policies::Ignored>,
}

async fn render_gateway(
    context: &Context,
    namespace: &str,
    live: &[AgentConnection],
) -> Result<RenderedGateway, Error> {
    let client = &context.base.client;
    let policies: BTreeMap<String, RecordingPolicy> =
        Api::<RecordingPolicy>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(Error::kube(format!("listing RecordingPolicies in {namespace}")))?
            .items
            .into_iter()
            .map(|p| (p.name_any(), p))
            .collect();
    // The connections' Secrets, then the recorders' own, named by the RecordingPolicies.
    let mut names = config_compiler::referenced_secrets(live);
    names.extend(
        policies
            .values()
            .filter_map(|p| p.spec.s3.credentials.as_ref().map(|c| c.secret_ref.name.clone())),
    );
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets = SecretData::new();
    for name in names {
        if secrets.contains_key(&name) {
            continue;
        }
        let secret = secrets_api
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("reading Secret {namespace}/{name}")))?;
        if let Some(secret) = secret {
            secrets.insert(name, scaffolding::secret_data(secret));
        }
    }
    let rules = Api::<ApprovalRule>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(Error::kube(format!("listing ApprovalRules in {namespace}")))?
        .items
        .into_iter()
        .map(|r| (r.name_any(), r.spec))
        .collect();
    let compilation = config_compiler::compile(&NamespaceInputs {
        namespace,
        identity: identity_source(&context.settings),
        connections: live,
        secrets: &secrets,
        recording_policies: &policies,
        approval_rules: &rules,
    })
    .map_err(|source| Error::Config { namespace: namespace.to_owned(), source })?;
    let yaml = compilation
        .to_yaml()
        .map_err(|source| Error::Yaml { namespace: namespace.to_owned(), source })?;

    let owners = owner_references(live);
    let mut changed = Vec::new();
    let config_secret = objects::secret(
        namespace,
        objects::CONFIG_SECRET_NAME,
        &owners,
        &BTreeMap::from([(objects::CONFIG_SECRET_KEY.to_owned(), yaml.into_bytes())]),
        &BTreeMap::new(),
    );
    let keys = apply_keys(context, namespace, &owners, &mut changed).await?;
    apply_manifest(context, &config_secret, &mut changed).await?;

    let mut endpoint = None;
    let mut replicas = GatewayReplicas::default();
    let web_identity_role = compilation.web_identity_role_arn().map(str::to_owned);
    // Before the Deployment: the gateway fetches the issuer's keys with its ServiceAccount.
    if issuer_discovery::ensure(client, namespace, true).await? {
        changed.push(format!("ClusterRoleBinding {} (subject)", issuer_discovery::BINDING_NAME));
    }
    for manifest in objects::gateway_manifests(
        namespace,
        &context.settings,
        &owners,
        web_identity_role.as_deref(),
    ) {
        let applied = apply_manifest(context, &manifest, &mut changed).await?;
        match manifest.resource.kind.as_str() {
            "Service" => {
                let cluster_ip = applied.data["spec"]["clusterIP"]
                    .as_str()
                    .filter(|ip| !ip.is_empty() && *ip != "None");
                endpoint = cluster_ip.map(service_endpoint);
                // Before the Deployment that mounts it: the serving certificate for the
                // Service's names, and its CA for the agents.
                apply_tls(context, namespace, &owners, cluster_ip, &mut changed).await?;
            }
            "Deployment" => {
                let number = |v: &serde_json::Value| v.as_i64().and_then(|n| i32::try_from(n).ok());
                replicas = GatewayReplicas {
                    desired: number(&applied.data["spec"]["replicas"]).unwrap_or_default(),
                    available: number(&applied.data["status"]["availableReplicas"])
                        .unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    let NetworkPolicies { manifests, ignored } = network_policies::network_policies(
        namespace,
        live,
        &owners,
        context.settings.metrics_namespace.as_deref(),
    );
    for manifest in &manifests {
        apply_manifest(context, manifest, &mut changed).await?;
    }
    changed.extend(delete_network_policies(context, namespace, &manifests).await?);
    Ok(RenderedGateway { compilation, keys, endpoint, replicas, changed, ignored_network: ignored })
}

fn service_endpoint(ip: &str) -> String {
    if ip.contains(':') {
        format!("https://[{ip}]:{}", objects::AGENTS_PORT)
    } else {
        format!("https://{ip}:{}", objects::AGENTS_PORT)
    }
}

/// Issues (once), renews (when due, by the same CA) and keeps the namespace's gateway CA and
/// serving certificate in [`objects::TLS_SECRET_NAME`], for the Service's cluster IP and DNS
/// names, and publishes the CA in [`objects::CA_CONFIG_MAP_NAME`]. Runs at every reconcile, so a
/// certificate is renewed well before it expires (a third of its lifetime remains).
async fn apply_tls(
    context: &Context,
    namespace: &str,
    owners: &[OwnerReference],
    cluster_ip: Option<&str>,
    changed: &mut Vec<String>,
) -> Result<(), Error> {
    let secret = CertificateSecret {
        namespace: namespace.to_owned(),
        name: objects::TLS_SECRET_NAME.to_owned(),
        ca_name: tls::gateway_ca_name(namespace),
        labels: objects::gateway_labels(),
    };
    let names = tls::gateway_serving_names(objects::GATEWAY_NAME, namespace, cluster_ip);
    let (certificates, written) = ensure_certificates(
        &context.base.client,
        &secret,
        &names,
        tls::CertificateLifetimes::default(),
    )
    .await
    .map_err(|source| Error::Certificates { namespace: namespace.to_owned(), source })?;
    if written {
        changed.push(format!("Secret {} (certificate issued)", objects::TLS_SECRET_NAME));
    }
    let config_map = objects::ca_config_map(namespace, owners, certificates.ca_pem());
    apply_manifest(context, &config_map, changed).await?;
    Ok(())
}

/// How gateways of this operator verify agents' tokens.
pub fn identity_source(settings: &GatewaySettings) -> IdentitySource {
    IdentitySource {
        jwks_uri: Some(settings.jwks_uri.clone()),
        ca_file: Some(objects::jwks_ca_file()),
        token_file: Some(objects::jwks_token_file()),
        ..IdentitySource::for_issuer(&settings.issuer)
    }
}

/// Owner references to every live connection of the namespace, by name; none is the controller.
pub fn owner_references(live: &[AgentConnection]) -> Vec<OwnerReference> {
    let mut owners: Vec<OwnerReference> = live
        .iter()
        .filter_map(|c| {
            Some(OwnerReference {
                api_version: AgentConnection::api_version(&()).into_owned(),
                kind: AgentConnection::kind(&()).into_owned(),
                name: c.metadata.name.clone()?,
                uid: c.metadata.uid.clone()?,
                controller: None,
                block_owner_deletion: None,
            })
        })
        .collect();
    owners.sort_by(|a, b| a.name.cmp(&b.name));
    owners
}

fn dynamic_api(
    context: &Context,
    manifest_resource: &kube::api::ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(context.base.client.clone(), ns, manifest_resource),
        None => Api::all_with(context.base.client.clone(), manifest_resource),
    }
}

/// Server-side applies `manifest`, noting it in `changed` when it was created or changed.
async fn apply_manifest(
    context: &Context,
    manifest: &Manifest,
    changed: &mut Vec<String>,
) -> Result<DynamicObject, Error> {
    let api = dynamic_api(context, &manifest.resource, manifest.namespace.as_deref());
    let where_ = manifest.namespace.as_deref().map(|ns| format!(" in {ns}")).unwrap_or_default();
    let before = api
        .get_metadata_opt(&manifest.name)
        .await
        .map_err(Error::kube(format!("reading {}{where_}", manifest.describe())))?;
    let applied = api
        .patch(&manifest.name, &apply_params(), &Patch::Apply(&manifest.body))
        .await
        .map_err(Error::kube(format!("applying {}{where_}", manifest.describe())))?;
    let before_version = before.and_then(|b| b.metadata.resource_version);
    if before_version.is_none() || before_version != applied.metadata.resource_version {
        changed.push(manifest.describe());
    }
    Ok(applied)
}

/// Creates the keys Secret once, rotates its session key when due (with a resourceVersion
/// precondition, so concurrent reconciles cannot each rotate), and keeps labels and owners up.
async fn apply_keys(
    context: &Context,
    namespace: &str,
    owners: &[OwnerReference],
    changed: &mut Vec<String>,
) -> Result<KeysPlan, Error> {
    let api: Api<Secret> = Api::namespaced(context.base.client.clone(), namespace);
    let name = objects::KEYS_SECRET_NAME;
    let existing = api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("reading Secret {namespace}/{name}")))?;
    let existing_keys = existing.as_ref().map(|s| ExistingKeys {
        keys_json: s
            .data
            .as_ref()
            .and_then(|d| d.get(objects::KEYS_SECRET_KEY))
            .map(|v| v.0.clone()),
        annotations: s.metadata.annotations.clone().unwrap_or_default(),
    });
    let plan = keys::plan_keys(
        existing_keys.as_ref(),
        Timestamp::now(),
        context.settings.session_key_rotation,
        &mut keys::system_random,
    )
    .map_err(|source| Error::Keys { namespace: namespace.to_owned(), source })?;
    let mut manifest = objects::secret(
        namespace,
        name,
        owners,
        &BTreeMap::from([(objects::KEYS_SECRET_KEY.to_owned(), plan.keys_json.clone())]),
        &plan.annotations,
    );
    match existing {
        None => {
            // Create, never overwrite: a concurrent reconcile that created first wins, and this
            // one fails with a conflict and retries with its keys.
            let secret: Secret =
                serde_json::from_value(manifest.body.clone()).map_err(|e| Error::Keys {
                    namespace: namespace.to_owned(),
                    source: keys::KeysPlanError::Invalid(e.to_string()),
                })?;
            let params =
                PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
            api.create(&params, &secret)
                .await
                .map_err(Error::kube(format!("creating Secret {namespace}/{name}")))?;
            changed.push(format!("Secret {name} (keys generated)"));
            // Take ownership of the fields under server-side apply too.
            apply_manifest(context, &manifest, &mut Vec::new()).await?;
        }
        Some(existing) => {
            if plan.change != KeysChange::Unchanged
                && let Some(object) = manifest.body["metadata"].as_object_mut()
            {
                object.insert(
                    "resourceVersion".into(),
                    serde_json::json!(existing.metadata.resource_version),
                );
            }
            apply_manifest(context, &manifest, changed).await?;
        }
    }
    Ok(plan)
}

/// Deletes the operator's NetworkPolicies of `namespace` that `wanted` does not name; returns
/// them as `NetworkPolicy name (deleted)`.
async fn delete_network_policies(
    context: &Context,
    namespace: &str,
    wanted: &[Manifest],
) -> Result<Vec<String>, Error> {
    let api: Api<NetworkPolicy> = Api::namespaced(context.base.client.clone(), namespace);
    let existing: Vec<String> = api
        .list_metadata(&ListParams::default().labels(&objects::gateway_label_selector()))
        .await
        .map_err(Error::kube(format!("listing the operator's NetworkPolicies in {namespace}")))?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let mut removed = Vec::new();
    for name in network_policies::stale(&existing, wanted) {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => removed.push(format!("NetworkPolicy {name} (deleted)")),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    action: format!("deleting NetworkPolicy {name} of namespace {namespace}"),
                    source,
                });
            }
        }
    }
    Ok(removed)
}

/// Deletes every gateway object of the namespace; returns those that existed.
async fn delete_gateway(context: &Context, namespace: &str) -> Result<Vec<String>, Error> {
    let mut removed = delete_network_policies(context, namespace, &[]).await?;
    for (resource, name, object_namespace) in objects::gateway_object_names(namespace) {
        let api = dynamic_api(context, &resource, object_namespace.as_deref());
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => removed.push(format!("{} {name}", resource.kind)),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    action: format!("deleting {} {name} of namespace {namespace}", resource.kind),
                    source,
                });
            }
        }
    }
    if issuer_discovery::ensure(&context.base.client, namespace, false).await? {
        removed.push(format!("ClusterRoleBinding {} subject", issuer_discovery::BINDING_NAME));
    }
    Ok(removed)
}
