//! The pod mutating webhook: a pod labelled `chaperone.dev/connection: <name>` gets, in every
//! container not opted out, the environment that sends its AWS SDK or CLI through the namespace's
//! gateway and a read-only projected volume holding a service-account token (audience
//! `chaperone.dev`) and, for a TLS gateway, the gateway's CA (`ca.crt`, from the ConfigMap
//! `chaperone-gateway-ca`) with the variables that make each AWS client verify the gateway
//! with it ([`chaperone_config::tls::agent_trust_variables`]).
//!
//! Pure core: [`Injection`] (what a connection injects) and [`mutate`] (the JSONPatch, or the
//! refusal naming what to fix), [`isolation`] (the security check's verdict). Thin shell:
//! [`PodWebhook`] reads the AgentConnection and the gateway Service, asks SubjectAccessReviews,
//! writes the `AgentsIsolated` condition and answers the AdmissionReview.

use std::collections::BTreeSet;

use chaperone_config::DEFAULT_AUDIENCE;
use chaperone_config::tls::{AGENT_CA_FILE, agent_trust_variables};
use chaperone_crds::{AgentConnection, RecordingPolicy};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, Container, EnvVar, KeyToPath, Pod, ProjectedVolumeSource,
    Secret, Service, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch as KubePatch, PatchParams, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource as _};
use serde_json::json;

use super::gateway_identity;
use crate::gateway::config_compiler::Check;
use crate::gateway::objects::{
    AGENTS_PORT, CA_CONFIG_MAP_NAME, CONFIG_SECRET_NAME, GATEWAY_NAME, KEYS_SECRET_NAME,
};

/// The label that asks for injection; its value names an AgentConnection of the pod's namespace.
pub const CONNECTION_LABEL: &str = "chaperone.dev/connection";
/// Annotation listing (comma-separated) the containers the webhook leaves alone.
pub const INJECT_SKIP_ANNOTATION: &str = "chaperone.dev/inject-skip";
/// The RBAC verb on `agentconnections` (group `chaperone.dev`, by name) that lets a requester or
/// a pod's service account use [`INJECT_SKIP_ANNOTATION`]: the opted-out containers run without
/// the gateway.
pub const SKIP_INJECTION_VERB: &str = "skip-injection";
/// The path the pod webhook is served at.
pub const PODS_PATH: &str = "/pods";
/// The name of the pod webhook inside the configuration.
pub const POD_WEBHOOK_NAME: &str = "pods.chaperone.dev";
/// The projected token volume's name.
pub const TOKEN_VOLUME: &str = "chaperone-token";
/// Where the token volume is mounted in every injected container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/chaperone.dev/serviceaccount";
/// The token file's name inside the volume.
pub const TOKEN_FILE_NAME: &str = "token";
/// Condition on the AgentConnection: no admitted service account can read its upstream
/// credentials.
pub const AGENTS_ISOLATED: &str = crate::gateway::connection_status::AGENTS_ISOLATED;
/// The field manager of the `AgentsIsolated` condition (the controller owns the rest of status).
pub const SECURITY_FIELD_MANAGER: &str = "chaperone-operator-security";

/// The STS account id of the gateway's role ARNs.
const ROLE_ACCOUNT: &str = "000000000000";

/// Variables a pod may not bring: they would make the SDK use other credentials than the
/// gateway's, or send calls around it.
const CREDENTIAL_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_CREDENTIAL_PROCESS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
];
/// Prefixes of variables a pod may not bring (container credentials providers, per-service
/// endpoints that would bypass the gateway).
const CREDENTIAL_PREFIXES: &[&str] = &["AWS_CONTAINER_", "AWS_ENDPOINT_URL_"];

/// The proxy-bypass variables the webhook adds the gateway's host to, so that a proxy the pod
/// configures never carries (or sees the SNI of) its calls to the gateway. Both spellings: curl,
/// Python and Go read either.
pub const NO_PROXY_VARIABLES: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Settings of the pod webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodWebhookSettings {
    /// `expirationSeconds` of the projected token (the kubelet refreshes it at 80%).
    pub token_expiration_seconds: i64,
}

impl Default for PodWebhookSettings {
    fn default() -> Self {
        Self { token_expiration_seconds: 3600 }
    }
}

/// What a connection injects into a container.
#[derive(Clone, Debug, PartialEq)]
pub struct Injection {
    /// The variables, in order.
    pub env: Vec<EnvVar>,
    /// The token volume.
    pub volume: Volume,
    /// Its read-only mount.
    pub mount: VolumeMount,
    /// The gateway's host (the endpoint's, without port), added to [`NO_PROXY_VARIABLES`].
    pub gateway_host: String,
}

fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), value_from: None }
}

/// The role ARN an agent of `connection` in `namespace` assumes at the gateway.
pub fn role_arn(namespace: &str, connection: &str) -> String {
    format!("arn:aws:iam::{ROLE_ACCOUNT}:role/chaperone/{namespace}/{connection}")
}

/// The RoleSessionName injected for `service_account` (STS allows 2 to 64 characters; a service
/// account's name is always of STS's alphabet).
pub fn session_name(service_account: &str) -> String {
    let name: String = service_account.chars().take(64).collect();
    if name.chars().count() < 2 { format!("agent-{name}") } else { name }
}

impl Injection {
    /// The injection for a pod of `service_account` using AgentConnection `connection` of
    /// `namespace`, whose gateway answers at `endpoint` in `region`. An `https://` endpoint also
    /// gets the gateway's CA in the volume and the variables pointing each client at it.
    pub fn new(
        namespace: &str,
        connection: &str,
        region: &str,
        endpoint: &str,
        service_account: &str,
        settings: &PodWebhookSettings,
    ) -> Self {
        let token_file = format!("{TOKEN_MOUNT_PATH}/{TOKEN_FILE_NAME}");
        let tls = endpoint.starts_with("https://");
        let mut sources = vec![VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                audience: Some(DEFAULT_AUDIENCE.to_owned()),
                expiration_seconds: Some(settings.token_expiration_seconds),
                path: TOKEN_FILE_NAME.to_owned(),
            }),
            ..Default::default()
        }];
        let mut trust = Vec::new();
        if tls {
            sources.push(VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: CA_CONFIG_MAP_NAME.to_owned(),
                    items: Some(vec![KeyToPath {
                        key: AGENT_CA_FILE.to_owned(),
                        path: AGENT_CA_FILE.to_owned(),
                        mode: None,
                    }]),
                    optional: Some(false),
                }),
                ..Default::default()
            });
            trust = agent_trust_variables(TOKEN_MOUNT_PATH)
                .into_iter()
                .map(|(name, value)| literal(name, &value))
                .collect();
        }
        let gateway_host = endpoint
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| {
                uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            })
            .unwrap_or_default();
        let mut injection = Self {
            gateway_host,
            env: vec![
                literal("AWS_ENDPOINT_URL", endpoint),
                // The same endpoint again for STS alone: the Go SDK v2 builds the STS client of
                // its web identity provider before it reads AWS_ENDPOINT_URL, and that client
                // looks only at AWS_ENDPOINT_URL_STS (docs/clients.md).
                literal("AWS_ENDPOINT_URL_STS", endpoint),
                literal("AWS_REGION", region),
                literal("AWS_DEFAULT_REGION", region),
                literal("AWS_ROLE_ARN", &role_arn(namespace, connection)),
                literal("AWS_ROLE_SESSION_NAME", &session_name(service_account)),
                literal("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file),
            ],
            volume: Volume {
                name: TOKEN_VOLUME.to_owned(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(sources),
                    ..Default::default()
                }),
                ..Default::default()
            },
            mount: VolumeMount {
                name: TOKEN_VOLUME.to_owned(),
                mount_path: TOKEN_MOUNT_PATH.to_owned(),
                read_only: Some(true),
                ..Default::default()
            },
        };
        injection.env.extend(trust);
        injection
    }
}

/// Why a labelled pod is refused, with what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodRefusal {
    #[error(
        "container {container:?} sets {variable}: a pod labelled {CONNECTION_LABEL}={connection} gets short-lived credentials from the Chaperone gateway and may not bring its own AWS credentials or endpoints; remove {variable} from container {container:?} (or opt the container out with the annotation {INJECT_SKIP_ANNOTATION}: \"{container}\")"
    )]
    OwnCredentials { container: String, variable: String, connection: String },
    #[error(
        "container {container:?} takes {variable} from {from} (envFrom): a pod labelled {CONNECTION_LABEL}={connection} gets short-lived credentials from the Chaperone gateway and may not bring its own AWS credentials or endpoints; remove that key from {from} or give the envFrom a prefix that renames it (or opt the container out with the annotation {INJECT_SKIP_ANNOTATION}: \"{container}\")"
    )]
    OwnCredentialsFrom { container: String, variable: String, from: String, connection: String },
    #[error(
        "container {container:?} takes variables from {from} (envFrom), which does not exist: the webhook checks envFrom sources for AWS credentials and endpoints when the pod is created, so create {from} first, then the pod"
    )]
    EnvFromMissing { container: String, from: String },
    #[error(
        "could not read {from} (envFrom of container {container:?}) to check it for AWS credentials and endpoints: {error}; retry"
    )]
    EnvFromUnreadable { container: String, from: String, error: String },
    #[error(
        "container {container:?} sets {variable} to {found}, but AgentConnection {connection:?} injects {variable}={wanted:?}; remove {variable} from container {container:?} (the webhook sets it) or opt the container out with the annotation {INJECT_SKIP_ANNOTATION}: \"{container}\""
    )]
    ConflictingVariable {
        container: String,
        variable: String,
        found: String,
        wanted: String,
        connection: String,
    },
    #[error(
        "container {container:?} takes {variable} from a reference, but the webhook adds the gateway ({host}) to {variable} so that no proxy carries calls to the gateway; set {variable} under env as a literal value (the webhook appends {host}) or remove it"
    )]
    NoProxyFromReference { container: String, variable: String, host: String },
    #[error(
        "the pod has a volume named {TOKEN_VOLUME:?} that is not Chaperone's token volume (a projected service-account token with audience {DEFAULT_AUDIENCE}); rename that volume"
    )]
    VolumeTaken,
    #[error(
        "container {container:?} mounts {what} where Chaperone mounts its token ({TOKEN_MOUNT_PATH}, volume {TOKEN_VOLUME:?}, read-only); remove that mount or opt the container out with the annotation {INJECT_SKIP_ANNOTATION}: \"{container}\""
    )]
    MountTaken { container: String, what: String },
    #[error(
        "ephemeral container {container:?} would run without the gateway: ephemeral containers of a pod labelled {CONNECTION_LABEL}={connection} get the gateway's environment and token, but this pod has no volume {TOKEN_VOLUME:?} (all its containers were opted out when it was created); debug a copy instead (kubectl debug --copy-to) or recreate the pod with an injected container"
    )]
    EphemeralWithoutToken { container: String, connection: String },
}

/// Whether `name` is a variable a pod may not set itself.
pub fn is_credential_variable(name: &str) -> bool {
    CREDENTIAL_VARIABLES.contains(&name) || CREDENTIAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The containers the pod opts out of injection, from [`INJECT_SKIP_ANNOTATION`].
pub fn skipped_containers(pod: &Pod) -> BTreeSet<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INJECT_SKIP_ANNOTATION))
        .map(|list| {
            list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
        })
        .unwrap_or_default()
}

/// The containers of `pod` that [`INJECT_SKIP_ANNOTATION`] opts out, in the pod's order (names
/// in the annotation that match no container are not counted).
pub fn opted_out_containers(pod: &Pod) -> Vec<String> {
    let skipped = skipped_containers(pod);
    let Some(spec) = &pod.spec else { return Vec::new() };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter(|c| skipped.contains(&c.name))
        .map(|c| c.name.clone())
        .collect()
}

fn describe(var: &EnvVar) -> String {
    match (&var.value, &var.value_from) {
        (_, Some(_)) => "a value taken from a reference".to_owned(),
        (Some(value), None) => format!("{value:?}"),
        (None, None) => "an empty value".to_owned(),
    }
}

fn add(path: PointerBuf, value: serde_json::Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

fn is_token_volume(volume: &Volume, wanted: &Volume) -> bool {
    // The API server defaults fields such as defaultMode: compare what Chaperone sets.
    let sources = |v: &Volume| v.projected.as_ref().and_then(|p| p.sources.clone());
    volume.name == wanted.name && sources(volume) == sources(wanted) && sources(volume).is_some()
}

/// Which containers an admission injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A pod being created: its init containers and containers, except those opted out, and the
    /// token volume.
    Creation,
    /// Ephemeral containers being added (`pods/ephemeralcontainers`): every one of them (the
    /// opt-out annotation can change after creation without the webhook seeing it, so it does not
    /// apply), into the token volume the pod already has.
    Ephemeral,
}

/// One `envFrom` source of an injected container, named as the refusals name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvFromSource {
    /// The container's name.
    pub container: String,
    /// `Secret "agent-settings"` or `ConfigMap "agent-config"`.
    pub source: String,
    /// Whether it is a Secret (else a ConfigMap).
    pub secret: bool,
    /// The object's name.
    pub name: String,
    /// The prefix put before each key.
    pub prefix: String,
}

/// The containers `scope` injects, as (JSON field, index, container).
fn injected_containers(pod: &Pod, scope: Scope) -> Vec<(&'static str, usize, Container)> {
    let Some(spec) = &pod.spec else { return Vec::new() };
    match scope {
        Scope::Creation => {
            let skipped = skipped_containers(pod);
            let groups: [(&'static str, &[Container]); 2] = [
                ("initContainers", spec.init_containers.as_deref().unwrap_or_default()),
                ("containers", &spec.containers),
            ];
            groups
                .into_iter()
                .flat_map(|(field, containers)| {
                    containers.iter().enumerate().map(move |(i, c)| (field, i, c.clone()))
                })
                .filter(|(_, _, c)| !skipped.contains(&c.name))
                .collect()
        }
        // An EphemeralContainer has the fields of a Container that matter here (env, envFrom,
        // volumeMounts) under the same names.
        Scope::Ephemeral => spec
            .ephemeral_containers
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| {
                let container = serde_json::to_value(c).ok()?;
                Some(("ephemeralContainers", i, serde_json::from_value(container).ok()?))
            })
            .collect(),
    }
}

/// The `envFrom` sources of the containers `scope` injects: the webhook reads each and refuses
/// AWS credentials or endpoints in them ([`env_from_refusal`]).
pub fn env_from_sources(pod: &Pod, scope: Scope) -> Vec<EnvFromSource> {
    let mut sources = Vec::new();
    for (_, _, container) in injected_containers(pod, scope) {
        for from in container.env_from.iter().flatten() {
            let (secret, name) = match (&from.config_map_ref, &from.secret_ref) {
                (Some(map), _) => (false, map.name.clone()),
                (None, Some(secret)) => (true, secret.name.clone()),
                (None, None) => continue,
            };
            let kind = if secret { "Secret" } else { "ConfigMap" };
            sources.push(EnvFromSource {
                container: container.name.clone(),
                source: format!("{kind} {name:?}"),
                secret,
                name,
                prefix: from.prefix.clone().unwrap_or_default(),
            });
        }
    }
    sources
}

/// The refusal for `source` holding `keys`, if one of them (with the prefix) is a variable a pod
/// may not bring. A key the webhook injects under `env` is not one: `env` wins over `envFrom`.
pub fn env_from_refusal<'a>(
    source: &EnvFromSource,
    keys: impl IntoIterator<Item = &'a str>,
    injection: &Injection,
    connection: &str,
) -> Option<PodRefusal> {
    keys.into_iter().map(|key| format!("{}{key}", source.prefix)).find_map(|variable| {
        let injected = injection.env.iter().any(|v| v.name == variable);
        (is_credential_variable(&variable) && !injected).then(|| PodRefusal::OwnCredentialsFrom {
            container: source.container.clone(),
            variable,
            from: source.source.clone(),
            connection: connection.to_owned(),
        })
    })
}

/// The JSONPatch that injects `injection` into every container `scope` covers, `connection`
/// naming the AgentConnection in messages. Only what is missing is added, so an injected pod gives
/// an empty patch. A container that brings its own credentials, or sets an injected variable to
/// something else, is refused. The gateway's host is appended to each [`NO_PROXY_VARIABLES`] the
/// container sets, and set where it does not.
pub fn mutate(
    pod: &Pod,
    injection: &Injection,
    connection: &str,
    scope: Scope,
) -> Result<Patch, PodRefusal> {
    let Some(spec) = &pod.spec else { return Ok(Patch(Vec::new())) };
    let mut operations = Vec::new();
    let containers = injected_containers(pod, scope);
    for (field, index, container) in &containers {
        let env = container.env.as_deref().unwrap_or_default();
        for var in env {
            if let Some(wanted) = injection.env.iter().find(|w| w.name == var.name) {
                if var != wanted {
                    return Err(if is_credential_variable(&var.name) {
                        PodRefusal::OwnCredentials {
                            container: container.name.clone(),
                            variable: var.name.clone(),
                            connection: connection.to_owned(),
                        }
                    } else {
                        PodRefusal::ConflictingVariable {
                            container: container.name.clone(),
                            variable: var.name.clone(),
                            found: describe(var),
                            wanted: wanted.value.clone().unwrap_or_default(),
                            connection: connection.to_owned(),
                        }
                    });
                }
            } else if is_credential_variable(&var.name) {
                return Err(PodRefusal::OwnCredentials {
                    container: container.name.clone(),
                    variable: var.name.clone(),
                    connection: connection.to_owned(),
                });
            }
        }
        let index = index.to_string();
        let mut missing: Vec<EnvVar> = injection
            .env
            .iter()
            .filter(|w| !env.iter().any(|v| v.name == w.name))
            .cloned()
            .collect();
        let host = &injection.gateway_host;
        for variable in NO_PROXY_VARIABLES.into_iter().filter(|_| !host.is_empty()) {
            let Some(position) = env.iter().position(|v| v.name == variable) else {
                missing.push(literal(variable, host));
                continue;
            };
            let var = &env[position];
            if var.value_from.is_some() {
                return Err(PodRefusal::NoProxyFromReference {
                    container: container.name.clone(),
                    variable: variable.to_owned(),
                    host: host.clone(),
                });
            }
            let value = var.value.clone().unwrap_or_default();
            if !value.split(',').any(|h| h.trim() == host) {
                let value =
                    if value.trim().is_empty() { host.clone() } else { format!("{value},{host}") };
                let position = position.to_string();
                operations.push(add(
                    PointerBuf::from_tokens(["spec", field, &index, "env", &position, "value"]),
                    json!(value),
                ));
            }
        }
        if container.env.is_none() && !missing.is_empty() {
            operations
                .push(add(PointerBuf::from_tokens(["spec", field, &index, "env"]), json!(missing)));
        } else {
            for var in missing {
                operations.push(add(
                    PointerBuf::from_tokens(["spec", field, &index, "env", "-"]),
                    json!(var),
                ));
            }
        }

        let mounts = container.volume_mounts.as_deref().unwrap_or_default();
        let wanted = &injection.mount;
        let ours = mounts.iter().find(|m| m.name == wanted.name);
        let at_path = mounts.iter().find(|m| m.mount_path == wanted.mount_path);
        match (ours, at_path) {
            (Some(mount), _)
                if mount.mount_path == wanted.mount_path
                    && mount.read_only == Some(true)
                    && mount.sub_path.as_deref().unwrap_or_default().is_empty() => {}
            (Some(mount), _) => {
                return Err(PodRefusal::MountTaken {
                    container: container.name.clone(),
                    what: format!(
                        "volume {:?} at {}{}",
                        mount.name,
                        mount.mount_path,
                        if mount.read_only == Some(true) { "" } else { " writable" }
                    ),
                });
            }
            (None, Some(other)) => {
                return Err(PodRefusal::MountTaken {
                    container: container.name.clone(),
                    what: format!("volume {:?}", other.name),
                });
            }
            (None, None) if container.volume_mounts.is_none() => operations.push(add(
                PointerBuf::from_tokens(["spec", field, &index, "volumeMounts"]),
                json!([wanted]),
            )),
            (None, None) => operations.push(add(
                PointerBuf::from_tokens(["spec", field, &index, "volumeMounts", "-"]),
                json!(wanted),
            )),
        }
    }
    if let Some((_, _, first)) = containers.first() {
        let volumes = spec.volumes.as_deref().unwrap_or_default();
        match volumes.iter().find(|v| v.name == TOKEN_VOLUME) {
            Some(volume) if is_token_volume(volume, &injection.volume) => {}
            Some(_) => return Err(PodRefusal::VolumeTaken),
            // Ephemeral containers cannot add volumes: they mount the pod's.
            None if scope == Scope::Ephemeral => {
                return Err(PodRefusal::EphemeralWithoutToken {
                    container: first.name.clone(),
                    connection: connection.to_owned(),
                });
            }
            None if spec.volumes.is_none() => operations
                .push(add(PointerBuf::from_tokens(["spec", "volumes"]), json!([injection.volume]))),
            None => operations.push(add(
                PointerBuf::from_tokens(["spec", "volumes", "-"]),
                json!(injection.volume),
            )),
        }
    }
    Ok(Patch(operations))
}

/// The groups the API server puts a service account of `namespace` in.
fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".to_owned(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".to_owned(),
    ]
}

/// The refusal of a pod opting `containers` out of injection when neither `user` nor its
/// service account may [`SKIP_INJECTION_VERB`] `connection`.
pub fn skip_refusal(
    containers: &[String],
    user: &str,
    namespace: &str,
    service_account: &str,
    connection: &str,
) -> String {
    format!(
        "the pod opts containers {containers:?} out of the gateway ({INJECT_SKIP_ANNOTATION}), but neither user {user:?} nor ServiceAccount {namespace}/{service_account} may {SKIP_INJECTION_VERB} AgentConnection {connection:?}: grant one of them the verb {SKIP_INJECTION_VERB} on agentconnections (apiGroup {group}, resourceNames [{connection}]) in namespace {namespace}, or remove the annotation",
        group = chaperone_crds::GROUP,
    )
}

/// One SubjectAccessReview's answer: whether `service_account` may `verb` the Secrets `what`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessFinding {
    /// The service account's name.
    pub service_account: String,
    /// `get`, `list`, `watch`.
    pub verb: String,
    /// `Secret agents/aws-upstream`, `Secrets in namespace agents`.
    pub what: String,
    /// The authorizer's reason (RBAC names the binding and role that allow it).
    pub reason: String,
}

/// The `AgentsIsolated` verdict from the accesses found allowed (an empty list: isolated).
pub fn isolation(namespace: &str, checked: &[String], allowed: &[AccessFinding]) -> Check {
    if allowed.is_empty() {
        return Check {
            passed: true,
            reason: "AgentsCannotReadCredentials".to_owned(),
            message: format!(
                "No admitted service account ({}) can get, list or watch the Secrets holding upstream credentials, the recorder's credentials or the gateway's config and keys, nor list or watch Secrets in namespace {namespace}.",
                checked.join(", ")
            ),
        };
    }
    let findings: Vec<String> = allowed
        .iter()
        .map(|f| {
            let reason =
                if f.reason.is_empty() { String::new() } else { format!(" ({})", f.reason) };
            format!(
                "ServiceAccount {namespace}/{} can {} {}{reason}",
                f.service_account, f.verb, f.what
            )
        })
        .collect();
    Check {
        passed: false,
        reason: "AgentCanReadCredentials".to_owned(),
        message: format!(
            "{}. An agent that can read these Secrets can bypass the gateway: remove the RoleBinding or ClusterRoleBinding named above from the service account, or the rule granting `secrets` from its Role; set spec.security.refuseIfAgentCanReadCredentials to refuse such pods.",
            findings.join("; ")
        ),
    }
}

/// The Secrets whose reading would let an agent around the gateway: the connection's upstream
/// credentials (`spec.aws.credentials.secretRef`), the recorder's (its RecordingPolicy's
/// `spec.s3.credentials.secretRef`), the gateway's config Secret (which holds the resolved
/// credentials) and its keys Secret (whose session MAC keys mint credentials the gateway
/// accepts). Without duplicates, in that order.
pub fn guarded_secrets(connection: &AgentConnection, recorder_secret: Option<&str>) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    let candidates = [
        connection.spec.aws.credentials.secret_ref.as_ref().map(|r| r.name.as_str()),
        recorder_secret,
        Some(CONFIG_SECRET_NAME),
        Some(KEYS_SECRET_NAME),
    ];
    for name in candidates.into_iter().flatten() {
        if !secrets.iter().any(|s| s == name) {
            secrets.push(name.to_owned());
        }
    }
    secrets
}

/// One SubjectAccessReview to ask about Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretAccessCheck {
    /// `get`, `list` or `watch`.
    pub verb: &'static str,
    /// The Secret's name; `None`: every Secret of the namespace.
    pub name: Option<String>,
    /// How a finding names it: `Secret agents/aws-prod`, `Secrets in namespace agents`.
    pub what: String,
}

/// The verbs that reveal a Secret's data: `get` it, `list` it (the list carries the data), or
/// `watch` it (every event carries the object).
pub const SECRET_READ_VERBS: [&str; 3] = ["get", "list", "watch"];

/// The checks for `secrets`: each verb of [`SECRET_READ_VERBS`] on each named Secret (RBAC
/// grants `list` and `watch` by name too, through a `metadata.name` field selector), then `list`
/// and `watch` on every Secret of the namespace.
pub fn secret_access_checks(namespace: &str, secrets: &[String]) -> Vec<SecretAccessCheck> {
    let mut checks: Vec<SecretAccessCheck> = secrets
        .iter()
        .flat_map(|secret| {
            SECRET_READ_VERBS.into_iter().map(move |verb| SecretAccessCheck {
                verb,
                name: Some(secret.clone()),
                what: format!("Secret {namespace}/{secret}"),
            })
        })
        .collect();
    checks.extend(["list", "watch"].into_iter().map(|verb| SecretAccessCheck {
        verb,
        name: None,
        what: format!("Secrets in namespace {namespace}"),
    }));
    checks
}

/// The findings worth reporting: a service account allowed to `list` (or `watch`) every Secret
/// of the namespace is reported once for it, not again for each named Secret.
pub fn condense(findings: Vec<AccessFinding>) -> Vec<AccessFinding> {
    let namespace_wide: Vec<(String, String)> = findings
        .iter()
        .filter(|f| f.what.starts_with("Secrets in namespace "))
        .map(|f| (f.service_account.clone(), f.verb.clone()))
        .collect();
    findings
        .into_iter()
        .filter(|f| {
            f.what.starts_with("Secrets in namespace ")
                || f.verb == "get"
                || !namespace_wide.contains(&(f.service_account.clone(), f.verb.clone()))
        })
        .collect()
}

/// The pod webhook's shell: API reads, SubjectAccessReviews, the condition and the answer.
pub struct PodWebhook {
    client: Client,
    settings: PodWebhookSettings,
    recorder: Recorder,
}

impl PodWebhook {
    pub fn new(client: Client, settings: PodWebhookSettings) -> Self {
        let reporter = Reporter {
            controller: crate::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Self { client, settings, recorder }
    }

    /// Answers one pod AdmissionReview.
    pub async fn review(&self, request: &AdmissionRequest<Pod>) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let scope = match (&request.operation, request.sub_resource.as_deref()) {
            (Operation::Create, None) => Scope::Creation,
            (Operation::Update, Some("ephemeralcontainers")) => Scope::Ephemeral,
            _ => return response,
        };
        let Some(pod) = &request.object else { return response };
        let namespace = request
            .namespace
            .clone()
            .or_else(|| pod.metadata.namespace.clone())
            .unwrap_or_default();
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        if service_account == GATEWAY_NAME {
            let requester = request.user_info.username.clone().unwrap_or_default();
            let verdict = match scope {
                Scope::Ephemeral => Err(gateway_identity::EPHEMERAL_REASON.to_owned()),
                Scope::Creation => {
                    gateway_identity::check(&self.client, &namespace, pod, &requester).await
                }
            };
            if let Err(reason) = verdict {
                return response.deny(gateway_identity::refusal(&namespace, &reason));
            }
        }
        let Some(connection_name) =
            pod.metadata.labels.as_ref().and_then(|l| l.get(CONNECTION_LABEL)).cloned()
        else {
            return response;
        };
        let connections: Api<AgentConnection> = Api::namespaced(self.client.clone(), &namespace);
        let connection = match connections.get_opt(&connection_name).await {
            Ok(Some(connection)) => connection,
            Ok(None) => {
                return response.deny(format!(
                    "the pod is labelled {CONNECTION_LABEL}={connection_name}, but AgentConnection {connection_name:?} does not exist in namespace {namespace:?}: create it (kubectl -n {namespace} get agentconnections lists the existing ones) or fix the label"
                ));
            }
            Err(e) => {
                return response.deny(format!(
                    "could not read AgentConnection {namespace}/{connection_name} to inject the pod: {e}; retry"
                ));
            }
        };
        let endpoint = match self.endpoint(&namespace, &connection).await {
            Ok(endpoint) => endpoint,
            Err(message) => return response.deny(message),
        };
        let injection = Injection::new(
            &namespace,
            &connection_name,
            &connection.spec.aws.region,
            &endpoint,
            &service_account,
            &self.settings,
        );
        let patch = match mutate(pod, &injection, &connection_name, scope) {
            Ok(patch) => patch,
            Err(refusal) => return response.deny(refusal.to_string()),
        };
        for source in env_from_sources(pod, scope) {
            if let Some(refusal) =
                self.check_env_from(&namespace, &source, &injection, &connection_name).await
            {
                return response.deny(refusal.to_string());
            }
        }
        let opted_out = opted_out_containers(pod);
        if scope == Scope::Creation && !opted_out.is_empty() {
            let user = &request.user_info;
            match self.may_skip(&namespace, &connection_name, user, &service_account).await {
                Ok(true) => {}
                Ok(false) => {
                    return response.deny(skip_refusal(
                        &opted_out,
                        user.username.as_deref().unwrap_or_default(),
                        &namespace,
                        &service_account,
                        &connection_name,
                    ));
                }
                Err(e) => {
                    return response.deny(format!(
                        "could not check whether the pod may opt containers out of the gateway ({INJECT_SKIP_ANNOTATION}): {e}; retry"
                    ));
                }
            }
        }

        if scope == Scope::Creation
            && let Some(refusal) = self
                .check_isolation(
                    request,
                    &namespace,
                    &connection,
                    &connection_name,
                    &service_account,
                )
                .await
        {
            return response.deny(refusal);
        }

        match patch.0.is_empty() {
            true => response,
            false => match response.clone().with_patch(patch) {
                Ok(patched) => patched,
                Err(e) => response.deny(format!("encoding the pod's patch failed: {e}")),
            },
        }
    }

    /// The SubjectAccessReview check of the service accounts the connection admits: writes the
    /// `AgentsIsolated` condition (not on dry runs) and returns the refusal when the connection
    /// asks to refuse agents that can read its credentials.
    async fn check_isolation(
        &self,
        request: &AdmissionRequest<Pod>,
        namespace: &str,
        connection: &AgentConnection,
        connection_name: &str,
        service_account: &str,
    ) -> Option<String> {
        let mut checked: Vec<String> = connection.spec.agents.service_accounts.clone();
        if !checked.iter().any(|s| s == service_account) {
            checked.push(service_account.to_owned());
        }
        let refuse = connection.spec.security.refuse_if_agent_can_read_credentials;
        match self.accesses(namespace, connection, &checked).await {
            Ok(allowed) => {
                let verdict = isolation(namespace, &checked, &allowed);
                if !request.dry_run {
                    self.write_condition(connection, &verdict).await;
                }
                let own: Vec<AccessFinding> =
                    allowed.into_iter().filter(|f| f.service_account == service_account).collect();
                (refuse && !own.is_empty()).then(|| {
                    format!(
                        "AgentConnection {connection_name:?} refuses agents that can read its upstream credentials (spec.security.refuseIfAgentCanReadCredentials): {}",
                        isolation(namespace, &[service_account.to_owned()], &own).message
                    )
                })
            }
            Err(error) => {
                tracing::warn!(%error, namespace, connection = %connection_name, "the SubjectAccessReview check failed");
                refuse.then(|| format!(
                    "could not check whether ServiceAccount {namespace}/{service_account} can read AgentConnection {connection_name:?}'s credentials (spec.security.refuseIfAgentCanReadCredentials is set): {error}; retry"
                ))
            }
        }
    }

    /// Reads an `envFrom` source and refuses AWS credentials or endpoints in it; a source that
    /// does not exist is refused too (it could be created with them after admission).
    async fn check_env_from(
        &self,
        namespace: &str,
        source: &EnvFromSource,
        injection: &Injection,
        connection: &str,
    ) -> Option<PodRefusal> {
        let keys: Result<Option<Vec<String>>, kube::Error> = if source.secret {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            api.get_opt(&source.name)
                .await
                .map(|s| s.map(|s| s.data.unwrap_or_default().into_keys().collect()))
        } else {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
            api.get_opt(&source.name).await.map(|m| {
                m.map(|m| {
                    let text = m.data.unwrap_or_default().into_keys();
                    text.chain(m.binary_data.unwrap_or_default().into_keys()).collect()
                })
            })
        };
        match keys {
            Ok(Some(keys)) => {
                env_from_refusal(source, keys.iter().map(String::as_str), injection, connection)
            }
            Ok(None) => Some(PodRefusal::EnvFromMissing {
                container: source.container.clone(),
                from: source.source.clone(),
            }),
            Err(e) => Some(PodRefusal::EnvFromUnreadable {
                container: source.container.clone(),
                from: source.source.clone(),
                error: e.to_string(),
            }),
        }
    }

    /// Whether the requester, or else the pod's service account, may [`SKIP_INJECTION_VERB`]
    /// the connection (a SubjectAccessReview each).
    async fn may_skip(
        &self,
        namespace: &str,
        connection: &str,
        user: &UserInfo,
        service_account: &str,
    ) -> Result<bool, kube::Error> {
        let attributes = ResourceAttributes {
            namespace: Some(namespace.to_owned()),
            verb: Some(SKIP_INJECTION_VERB.to_owned()),
            group: Some(chaperone_crds::GROUP.to_owned()),
            resource: Some("agentconnections".to_owned()),
            name: Some(connection.to_owned()),
            ..Default::default()
        };
        let requester = SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(attributes.clone()),
            ..Default::default()
        };
        let account = SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{namespace}:{service_account}")),
            groups: Some(service_account_groups(namespace)),
            resource_attributes: Some(attributes),
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        for spec in [requester, account] {
            let review = SubjectAccessReview { spec, ..Default::default() };
            let answer = api.create(&PostParams::default(), &review).await?;
            if answer.status.is_some_and(|s| s.allowed) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `https://<ClusterIP>:8080` of the namespace's gateway Service, else the connection's
    /// `status.endpoint`.
    async fn endpoint(
        &self,
        namespace: &str,
        connection: &AgentConnection,
    ) -> Result<String, String> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let service = services.get_opt(GATEWAY_NAME).await.map_err(|e| {
            format!("could not read Service {namespace}/{GATEWAY_NAME} (the gateway's address): {e}; retry")
        })?;
        let cluster_ip = service
            .and_then(|s| s.spec)
            .and_then(|s| s.cluster_ip)
            .filter(|ip| !ip.is_empty() && ip != "None");
        if let Some(ip) = cluster_ip {
            let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
            return Ok(format!("https://{host}:{AGENTS_PORT}"));
        }
        if let Some(endpoint) = connection.status.as_ref().and_then(|s| s.endpoint.clone()) {
            return Ok(endpoint);
        }
        let name = connection.metadata.name.clone().unwrap_or_default();
        Err(format!(
            "the gateway of namespace {namespace:?} has no address yet (Service {GATEWAY_NAME} has no cluster IP): wait until `kubectl -n {namespace} get agentconnection {name}` shows an endpoint (its Ready condition says what is missing), then create the pod again"
        ))
    }

    /// The accesses to upstream credentials each of `service_accounts` is allowed: every
    /// [`secret_access_checks`] of the connection's Secrets (its credentials, the recorder's of
    /// its RecordingPolicy, the gateway's config and keys), reported through [`condense`].
    async fn accesses(
        &self,
        namespace: &str,
        connection: &AgentConnection,
        service_accounts: &[String],
    ) -> Result<Vec<AccessFinding>, kube::Error> {
        let policies: Api<RecordingPolicy> = Api::namespaced(self.client.clone(), namespace);
        let recorder_secret = policies
            .get_opt(&connection.spec.recording_policy_ref.name)
            .await?
            .and_then(|p| p.spec.s3.credentials.map(|c| c.secret_ref.name));
        let secrets = guarded_secrets(connection, recorder_secret.as_deref());
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let mut allowed = Vec::new();
        for account in service_accounts {
            for check in secret_access_checks(namespace, &secrets) {
                let review = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: Some(format!("system:serviceaccount:{namespace}:{account}")),
                        groups: Some(service_account_groups(namespace)),
                        resource_attributes: Some(ResourceAttributes {
                            namespace: Some(namespace.to_owned()),
                            verb: Some(check.verb.to_owned()),
                            resource: Some("secrets".to_owned()),
                            name: check.name.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let answer = api.create(&PostParams::default(), &review).await?;
                if let Some(status) = answer.status
                    && status.allowed
                {
                    allowed.push(AccessFinding {
                        service_account: account.clone(),
                        verb: check.verb.to_owned(),
                        what: check.what,
                        reason: status.reason.unwrap_or_default(),
                    });
                }
            }
        }
        Ok(condense(allowed))
    }

    /// Writes `AgentsIsolated` when it changed (server-side apply of the conditions under
    /// [`SECURITY_FIELD_MANAGER`]; the controller keeps the condition in its own status writes),
    /// with a Warning event when it turns False.
    async fn write_condition(&self, connection: &AgentConnection, verdict: &Check) {
        let previous = connection.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        let current = previous.iter().find(|c| c.type_ == AGENTS_ISOLATED);
        let status = if verdict.passed { "True" } else { "False" };
        if current.is_some_and(|c| {
            c.status == status && c.reason == verdict.reason && c.message == verdict.message
        }) {
            return;
        }
        let condition: Condition = crate::gateway::connection_status::condition(
            AGENTS_ISOLATED,
            verdict,
            connection.metadata.generation,
            Timestamp::now(),
            &previous,
        );
        let mut conditions: Vec<Condition> =
            previous.into_iter().filter(|c| c.type_ != AGENTS_ISOLATED).collect();
        conditions.push(condition);
        let (Some(namespace), Some(name)) =
            (connection.metadata.namespace.clone(), connection.metadata.name.clone())
        else {
            return;
        };
        let api: Api<AgentConnection> = Api::namespaced(self.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": "chaperone.dev/v1alpha1",
            "kind": "AgentConnection",
            "status": {"conditions": conditions},
        });
        if let Err(error) = api
            .patch_status(
                &name,
                &PatchParams::apply(SECURITY_FIELD_MANAGER).force(),
                &KubePatch::Apply(&patch),
            )
            .await
        {
            tracing::warn!(%error, namespace, connection = %name, "could not write the AgentsIsolated condition");
            return;
        }
        let event = Event {
            type_: if verdict.passed { EventType::Normal } else { EventType::Warning },
            reason: verdict.reason.clone(),
            note: Some(format!("{AGENTS_ISOLATED} is {status}: {}", verdict.message)),
            action: "AdmitPod".to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &connection.object_ref(&())).await {
            tracing::warn!(%error, "could not publish an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn injection() -> Injection {
        Injection::new(
            "agents",
            "s3-readonly",
            "us-east-1",
            "https://10.0.0.12:8080",
            "pr-bot",
            &PodWebhookSettings::default(),
        )
    }

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("pod: {e}"))
    }

    fn labelled(containers: Value) -> Pod {
        pod(json!({
            "metadata": {"name": "agent", "labels": {CONNECTION_LABEL: "s3-readonly"}},
            "spec": {"serviceAccountName": "pr-bot", "containers": containers},
        }))
    }

    fn apply(pod: &Pod, patch: &Patch) -> Pod {
        let mut value = serde_json::to_value(pod).unwrap_or_default();
        json_patch::patch(&mut value, patch).unwrap_or_else(|e| panic!("patch: {e}"));
        serde_json::from_value(value).unwrap_or_else(|e| panic!("patched pod: {e}"))
    }

    fn env_of(pod: &Pod, container: usize) -> Vec<(String, String)> {
        pod.spec
            .as_ref()
            .map(|s| s.containers[container].env.clone().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.value.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn every_container_gets_the_gateway_env_and_the_read_only_token_and_a_second_pass_changes_nothing()
     {
        let original = labelled(json!([
            {"name": "agent", "image": "agent", "env": [{"name": "LOG", "value": "debug"}]},
            {"name": "helper", "image": "helper"},
        ]));
        let patch = mutate(&original, &injection(), "s3-readonly", Scope::Creation)
            .unwrap_or_else(|e| panic!("{e}"));
        let injected = apply(&original, &patch);
        for index in 0..2 {
            let env = env_of(&injected, index);
            assert!(env.contains(&("AWS_ENDPOINT_URL".into(), "https://10.0.0.12:8080".into())));
            assert!(
                env.contains(&("AWS_ENDPOINT_URL_STS".into(), "https://10.0.0.12:8080".into()))
            );
            let ca = "/var/run/secrets/chaperone.dev/serviceaccount/ca.crt";
            assert!(env.contains(&("AWS_CA_BUNDLE".into(), ca.into())));
            assert!(env.contains(&("NODE_EXTRA_CA_CERTS".into(), ca.into())));
            assert!(env.contains(&(
                "SSL_CERT_DIR".into(),
                "/etc/ssl/certs:/var/run/secrets/chaperone.dev/serviceaccount".into()
            )));
            assert!(env.contains(&(
                "AWS_ROLE_ARN".into(),
                "arn:aws:iam::000000000000:role/chaperone/agents/s3-readonly".into()
            )));
            assert!(env.contains(&("AWS_REGION".into(), "us-east-1".into())));
            assert!(env.contains(&("AWS_DEFAULT_REGION".into(), "us-east-1".into())));
            assert!(env.contains(&("AWS_ROLE_SESSION_NAME".into(), "pr-bot".into())));
            assert!(env.contains(&(
                "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
                "/var/run/secrets/chaperone.dev/serviceaccount/token".into()
            )));
            let spec = injected.spec.as_ref().unwrap_or_else(|| panic!("spec"));
            let mounts = spec.containers[index].volume_mounts.clone().unwrap_or_default();
            assert_eq!(mounts, vec![injection().mount]);
        }
        assert_eq!(env_of(&injected, 0)[0], ("LOG".into(), "debug".into()));
        let volumes = injected.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
        assert_eq!(volumes, vec![injection().volume]);

        let again = mutate(&injected, &injection(), "s3-readonly", Scope::Creation)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.0.is_empty(), "{again:?}");
    }

    #[test]
    fn a_tls_gateway_puts_its_ca_beside_the_token_and_a_plain_one_injects_no_ca() {
        let sources = |i: &Injection| {
            i.volume.projected.as_ref().and_then(|p| p.sources.clone()).unwrap_or_default()
        };
        let tls = injection();
        let ca = sources(&tls)[1].config_map.clone().unwrap_or_else(|| panic!("a CA source"));
        assert_eq!(ca.name, "chaperone-gateway-ca");
        assert_eq!(ca.items.unwrap_or_default()[0].key, "ca.crt");
        assert_eq!(tls.mount.read_only, Some(true));
        let plain = Injection::new(
            "agents",
            "s3-readonly",
            "us-east-1",
            "http://10.0.0.12:8080",
            "pr-bot",
            &PodWebhookSettings::default(),
        );
        assert_eq!(sources(&plain).len(), 1);
        assert!(!plain.env.iter().any(|v| v.name == "AWS_CA_BUNDLE" || v.name == "SSL_CERT_DIR"));
        // A container that points a client at another CA is refused, naming the variable.
        let pod = labelled(json!([
            {"name": "agent", "image": "agent", "env": [{"name": "AWS_CA_BUNDLE", "value": "/etc/other.pem"}]},
        ]));
        let refusal =
            mutate(&pod, &tls, "s3-readonly", Scope::Creation).err().map(|e| e.to_string());
        assert!(refusal.is_some_and(|r| r.contains("AWS_CA_BUNDLE")));
    }

    #[test]
    fn a_container_with_its_own_access_key_is_refused_naming_the_variable_and_the_container() {
        let pod = labelled(json!([
            {"name": "agent", "image": "agent", "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA"}]},
        ]));
        let refusal =
            mutate(&pod, &injection(), "s3-readonly", Scope::Creation).err().map(|e| e.to_string());
        let message = refusal.unwrap_or_default();
        assert!(message.contains("container \"agent\" sets AWS_ACCESS_KEY_ID"), "{message}");
        assert!(message.contains("remove AWS_ACCESS_KEY_ID"), "{message}");
    }

    #[test]
    fn container_credential_providers_per_service_endpoints_and_other_role_arns_are_refused() {
        for variable in [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ROLE_ARN",
            "AWS_PROFILE",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        ] {
            let pod = labelled(
                json!([{"name": "agent", "image": "a", "env": [{"name": variable, "value": "x"}]}]),
            );
            let refusal = mutate(&pod, &injection(), "s3-readonly", Scope::Creation);
            assert!(
                matches!(refusal, Err(PodRefusal::OwnCredentials { variable: ref v, .. }) if v == variable),
                "{variable}: {refusal:?}"
            );
        }
    }

    #[test]
    fn a_different_region_is_refused_rather_than_overridden() {
        let pod = labelled(
            json!([{"name": "agent", "image": "a", "env": [{"name": "AWS_REGION", "value": "eu-west-1"}]}]),
        );
        let message = mutate(&pod, &injection(), "s3-readonly", Scope::Creation)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("sets AWS_REGION to \"eu-west-1\""), "{message}");
        assert!(message.contains("AWS_REGION=\"us-east-1\""), "{message}");
    }

    #[test]
    fn env_from_sources_of_injected_containers_are_checked_with_their_prefix() {
        let mut pod = labelled(json!([
            {"name": "agent", "image": "agent", "envFrom": [
                {"secretRef": {"name": "agent-settings"}},
                {"configMapRef": {"name": "agent-config"}, "prefix": "AWS_"},
            ]},
            {"name": "sidecar", "image": "s", "envFrom": [{"secretRef": {"name": "other"}}]},
        ]));
        pod.metadata.annotations =
            Some([(INJECT_SKIP_ANNOTATION.to_owned(), "sidecar".to_owned())].into());
        let sources = env_from_sources(&pod, Scope::Creation);
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert_eq!(sources[0].source, "Secret \"agent-settings\"");
        assert!(sources[0].secret && !sources[1].secret);
        let injection = injection();
        let check = |source: &EnvFromSource, keys: &[&str]| {
            env_from_refusal(source, keys.iter().copied(), &injection, "s3-readonly")
                .map(|r| r.to_string())
        };
        let keys = check(&sources[0], &["LOG_LEVEL", "AWS_SECRET_ACCESS_KEY"]).unwrap_or_default();
        assert!(
            keys.starts_with("container \"agent\" takes AWS_SECRET_ACCESS_KEY from Secret \"agent-settings\" (envFrom)"),
            "{keys}"
        );
        // The prefix makes ENDPOINT_URL_S3 the variable AWS_ENDPOINT_URL_S3.
        let prefixed = check(&sources[1], &["ENDPOINT_URL_S3"]).unwrap_or_default();
        assert!(prefixed.contains("takes AWS_ENDPOINT_URL_S3 from ConfigMap"), "{prefixed}");
        // What the webhook injects under env wins over envFrom; other keys are harmless.
        assert_eq!(check(&sources[0], &["AWS_ROLE_ARN", "AWS_REGION", "LOG_LEVEL"]), None);
        assert_eq!(check(&sources[1], &["REGION"]), None);
    }

    #[test]
    fn the_gateway_is_added_to_no_proxy_appended_to_the_containers_own_value_once() {
        let pod = labelled(json!([
            {"name": "agent", "image": "a", "env": [{"name": "NO_PROXY", "value": "localhost,.svc"}]},
            {"name": "helper", "image": "h"},
        ]));
        let injection = injection();
        assert_eq!(injection.gateway_host, "10.0.0.12");
        let patch = mutate(&pod, &injection, "s3-readonly", Scope::Creation)
            .unwrap_or_else(|e| panic!("{e}"));
        let injected = apply(&pod, &patch);
        let agent = env_of(&injected, 0);
        assert!(
            agent.contains(&("NO_PROXY".into(), "localhost,.svc,10.0.0.12".into())),
            "{agent:?}"
        );
        assert!(agent.contains(&("no_proxy".into(), "10.0.0.12".into())), "{agent:?}");
        let helper = env_of(&injected, 1);
        assert!(helper.contains(&("NO_PROXY".into(), "10.0.0.12".into())), "{helper:?}");
        let again = mutate(&injected, &injection, "s3-readonly", Scope::Creation)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.0.is_empty(), "{again:?}");

        let referenced = labelled(json!([{"name": "agent", "image": "a", "env": [
            {"name": "no_proxy", "valueFrom": {"configMapKeyRef": {"name": "proxy", "key": "skip"}}},
        ]}]));
        let refusal = mutate(&referenced, &injection, "s3-readonly", Scope::Creation)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refusal.contains("takes no_proxy from a reference"), "{refusal}");
    }

    #[test]
    fn ephemeral_containers_are_injected_whatever_the_annotation_and_need_the_token_volume() {
        let injection = injection();
        let mut created = labelled(json!([{"name": "agent", "image": "a"}]));
        let patch = mutate(&created, &injection, "s3-readonly", Scope::Creation)
            .unwrap_or_else(|e| panic!("{e}"));
        created = apply(&created, &patch);
        created.metadata.annotations =
            Some([(INJECT_SKIP_ANNOTATION.to_owned(), "debugger".to_owned())].into());
        let mut value = serde_json::to_value(&created).unwrap_or_default();
        value["spec"]["ephemeralContainers"] =
            json!([{"name": "debugger", "image": "busybox", "targetContainerName": "agent"}]);
        let debugged = pod(value.clone());
        let patch = mutate(&debugged, &injection, "s3-readonly", Scope::Ephemeral)
            .unwrap_or_else(|e| panic!("{e}"));
        // Only the ephemeral container is touched: the subresource allows nothing else.
        assert!(
            patch
                .0
                .iter()
                .all(|op| op.path().to_string().starts_with("/spec/ephemeralContainers/0/")),
            "{patch:?}"
        );
        let injected = apply(&debugged, &patch);
        let ephemeral = &injected
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.clone())
            .unwrap_or_default()[0];
        let env = ephemeral.env.clone().unwrap_or_default();
        assert!(env.iter().any(|v| v.name == "AWS_ROLE_ARN"), "{env:?}");
        assert_eq!(
            ephemeral.volume_mounts.clone().unwrap_or_default(),
            vec![injection.mount.clone()]
        );

        // Its own keys are refused as in any container.
        value["spec"]["ephemeralContainers"][0]["env"] =
            json!([{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA"}]);
        let refusal = mutate(&pod(value), &injection, "s3-readonly", Scope::Ephemeral);
        assert!(matches!(refusal, Err(PodRefusal::OwnCredentials { .. })), "{refusal:?}");

        // A pod whose every container was opted out has no token for it.
        let bare = pod(json!({
            "metadata": {"name": "agent", "labels": {CONNECTION_LABEL: "s3-readonly"}},
            "spec": {"containers": [{"name": "agent", "image": "a"}],
                     "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]},
        }));
        let refusal = mutate(&bare, &injection, "s3-readonly", Scope::Ephemeral)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refusal.starts_with("ephemeral container \"debugger\" would run without the gateway"),
            "{refusal}"
        );
    }

    #[test]
    fn opting_out_names_the_containers_and_the_refusal_says_what_to_grant() {
        let mut pod = labelled(json!([
            {"name": "agent", "image": "a"}, {"name": "legacy", "image": "l"},
        ]));
        assert!(opted_out_containers(&pod).is_empty());
        pod.metadata.annotations =
            Some([(INJECT_SKIP_ANNOTATION.to_owned(), "legacy, missing".to_owned())].into());
        assert_eq!(opted_out_containers(&pod), vec!["legacy".to_owned()]);
        let message = skip_refusal(&["legacy".into()], "alice", "agents", "pr-bot", "s3-readonly");
        assert!(
            message.contains("neither user \"alice\" nor ServiceAccount agents/pr-bot"),
            "{message}"
        );
        assert!(message.contains("verb skip-injection on agentconnections (apiGroup chaperone.dev, resourceNames [s3-readonly])"), "{message}");
    }

    #[test]
    fn an_opted_out_container_is_left_alone_even_with_its_own_keys() {
        let mut pod = labelled(json!([
            {"name": "agent", "image": "a"},
            {"name": "sidecar", "image": "s", "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA"}]},
        ]));
        pod.metadata.annotations =
            Some([(INJECT_SKIP_ANNOTATION.to_owned(), " sidecar , other".to_owned())].into());
        let patch = mutate(&pod, &injection(), "s3-readonly", Scope::Creation)
            .unwrap_or_else(|e| panic!("{e}"));
        let injected = apply(&pod, &patch);
        assert_eq!(env_of(&injected, 1), vec![("AWS_ACCESS_KEY_ID".into(), "AKIA".into())]);
        let spec = injected.spec.unwrap_or_default();
        assert!(spec.containers[1].volume_mounts.is_none());
        assert_eq!(
            env_of_len(&spec.containers[0]),
            injection().env.len() + NO_PROXY_VARIABLES.len()
        );
    }

    fn env_of_len(container: &Container) -> usize {
        container.env.as_ref().map(Vec::len).unwrap_or_default()
    }

    #[test]
    fn a_foreign_volume_named_like_the_token_volume_is_refused() {
        let mut pod = labelled(json!([{"name": "agent", "image": "a"}]));
        if let Some(spec) = pod.spec.as_mut() {
            spec.volumes = Some(vec![Volume {
                name: TOKEN_VOLUME.to_owned(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            }]);
        }
        assert_eq!(
            mutate(&pod, &injection(), "s3-readonly", Scope::Creation),
            Err(PodRefusal::VolumeTaken)
        );
    }

    #[test]
    fn isolation_names_the_service_account_the_access_and_the_binding_rbac_reports() {
        let ok = isolation("agents", &["pr-bot".to_owned()], &[]);
        assert!(ok.passed);
        let finding = AccessFinding {
            service_account: "pr-bot".to_owned(),
            verb: "get".to_owned(),
            what: "Secret agents/aws-upstream".to_owned(),
            reason: "RBAC: allowed by RoleBinding \"read-secrets/agents\" of Role \"secret-reader\" to ServiceAccount \"pr-bot/agents\"".to_owned(),
        };
        let bad = isolation("agents", &["pr-bot".to_owned()], &[finding]);
        assert!(!bad.passed);
        assert_eq!(bad.reason, "AgentCanReadCredentials");
        assert!(
            bad.message.contains("ServiceAccount agents/pr-bot can get Secret agents/aws-upstream"),
            "{}",
            bad.message
        );
        assert!(bad.message.contains("RoleBinding \"read-secrets/agents\""), "{}", bad.message);
    }

    #[test]
    fn the_check_covers_get_list_and_watch_of_every_secret_that_leads_around_the_gateway() {
        let mut connection: AgentConnection = serde_json::from_value(json!({
            "apiVersion": "chaperone.dev/v1alpha1",
            "kind": "AgentConnection",
            "metadata": {"name": "prod-aws", "namespace": "agents"},
            "spec": {
                "agents": {"serviceAccounts": ["pr-bot"]},
                "aws": {"region": "us-east-1", "credentials": {"secretRef": {"name": "aws-prod"}}},
                "recordingPolicyRef": {"name": "default"},
            },
        }))
        .unwrap();
        let secrets = guarded_secrets(&connection, Some("recorder-keys"));
        assert_eq!(
            secrets,
            ["aws-prod", "recorder-keys", CONFIG_SECRET_NAME, KEYS_SECRET_NAME].map(String::from)
        );
        let checks = secret_access_checks("agents", &secrets);
        for secret in &secrets {
            for verb in SECRET_READ_VERBS {
                assert!(
                    checks.iter().any(|c| c.verb == verb && c.name.as_deref() == Some(secret)),
                    "{verb} {secret}"
                );
            }
        }
        for verb in ["list", "watch"] {
            let wide = checks.iter().find(|c| c.verb == verb && c.name.is_none()).unwrap();
            assert_eq!(wide.what, "Secrets in namespace agents");
        }
        // A web identity connection whose recorder shares the gateway's ambient credentials.
        connection.spec.aws.credentials.secret_ref = None;
        assert_eq!(
            guarded_secrets(&connection, None),
            [CONFIG_SECRET_NAME, KEYS_SECRET_NAME].map(String::from)
        );
    }

    #[test]
    fn a_namespace_wide_list_is_reported_once_not_again_for_each_secret() {
        let finding = |verb: &str, what: &str| AccessFinding {
            service_account: "pr-bot".to_owned(),
            verb: verb.to_owned(),
            what: what.to_owned(),
            reason: String::new(),
        };
        let findings = vec![
            finding("get", "Secret agents/aws-prod"),
            finding("list", "Secret agents/aws-prod"),
            finding("watch", "Secret agents/aws-prod"),
            finding("list", "Secrets in namespace agents"),
        ];
        let kept: Vec<(String, String)> =
            condense(findings).into_iter().map(|f| (f.verb, f.what)).collect();
        assert_eq!(
            kept,
            [
                ("get", "Secret agents/aws-prod"),
                ("watch", "Secret agents/aws-prod"),
                ("list", "Secrets in namespace agents"),
            ]
            .map(|(v, w)| (v.to_owned(), w.to_owned()))
        );
    }

    #[test]
    fn session_names_fit_sts_limits() {
        assert_eq!(session_name("a"), "agent-a");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
    }
}
