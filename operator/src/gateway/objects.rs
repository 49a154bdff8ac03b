//! The Kubernetes objects of one namespace's gateway, as server-side-apply manifests built from
//! values: Deployment, Service, ServiceAccount, Role, RoleBinding, PodDisruptionBudget (the
//! ClusterRoleBinding all gateways share is [`crate::gateway::issuer_discovery`]'s). The config and keys Secrets are built by [`crate::gateway::config_compiler`] and
//! [`crate::gateway::keys`] and wrapped here.
//!
//! Every object carries [`gateway_labels`] and owner references to every live AgentConnection of
//! the namespace (none is the controller). Teardown does not rely on garbage collection: the operator's
//! finalizer deletes the objects when the namespace's last AgentConnection goes.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{Resource, api::ApiResource};
use serde_json::{Value, json};

use crate::runtime::{gateway_pod::GatewayPodSettings, settings::GatewaySettings};

/// Name of the gateway's Deployment, Service, ServiceAccount, Role, RoleBinding and PDB.
pub const GATEWAY_NAME: &str = "chaperone-gateway";
/// Name of the Secret holding the gateway's configuration.
pub const CONFIG_SECRET_NAME: &str = "chaperone-gateway-config";
/// Key of the configuration file in the config Secret.
pub const CONFIG_SECRET_KEY: &str = "gateway.yaml";
/// Name of the Secret holding the namespace's gateway CA (with its key) and the serving
/// certificate and key of the agents' port; the gateway mounts only the serving pair.
pub const TLS_SECRET_NAME: &str = "chaperone-gateway-tls";
/// Name of the ConfigMap publishing the gateway's CA certificate (`ca.crt`) to agents' pods.
pub const CA_CONFIG_MAP_NAME: &str = "chaperone-gateway-ca";
/// Name of the Secret holding the session MAC keys and the recording signing key.
pub const KEYS_SECRET_NAME: &str = "chaperone-gateway-keys";
/// Key of the keys file in the keys Secret.
pub const KEYS_SECRET_KEY: &str = "keys.json";
/// The ClusterRole that lets a service account read the issuer's discovery document and JWKS.
pub const ISSUER_DISCOVERY_CLUSTER_ROLE: &str = "system:service-account-issuer-discovery";
/// Port agents' AWS calls arrive on (Service and container).
pub const AGENTS_PORT: i32 = 8080;
/// Port of the gateway's /healthz, /readyz and /metrics.
pub const ADMIN_PORT: i32 = 9090;
/// Label naming the namespace a cluster-scoped gateway object belongs to.
pub const GATEWAY_NAMESPACE_LABEL: &str = "chaperone.dev/gateway-namespace";

const CONFIG_DIR: &str = "/etc/chaperone/config";
const KEYS_DIR: &str = "/etc/chaperone/keys";
const TLS_DIR: &str = "/etc/chaperone/tls";
const JWKS_CREDENTIALS_DIR: &str = "/var/run/secrets/chaperone.dev/jwks";
const SPOOL_DIR: &str = "/var/lib/chaperone/spool";
const AWS_TOKEN_DIR: &str = "/var/run/secrets/chaperone.dev/aws";
/// Audience of the gateway's own AWS web identity token (what STS and IRSA expect).
pub const AWS_TOKEN_AUDIENCE: &str = "sts.amazonaws.com";
/// Annotation the EKS pod identity webhook reads on a ServiceAccount.
pub const EKS_ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The gateway's unprivileged user and group (distroless `nonroot`).
const GATEWAY_UID: i64 = 65532;

/// Path of the CA bundle that verifies the API server, inside a gateway pod.
pub fn jwks_ca_file() -> String {
    format!("{JWKS_CREDENTIALS_DIR}/ca.crt")
}

/// Path of the gateway's own projected token used to fetch the JWKS, inside a gateway pod.
pub fn jwks_token_file() -> String {
    format!("{JWKS_CREDENTIALS_DIR}/token")
}

/// Path of the gateway's own projected token (audience `sts.amazonaws.com`) that the gateway
/// exchanges at STS for connections with `spec.aws.credentials.webIdentity`.
pub fn aws_web_identity_token_file() -> String {
    format!("{AWS_TOKEN_DIR}/token")
}

/// Labels every gateway object carries; the first one also selects the gateway's pods.
pub fn gateway_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), GATEWAY_NAME.to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), crate::FIELD_MANAGER.to_owned()),
    ])
}

/// The label selector matching every gateway object of a namespace.
pub fn gateway_label_selector() -> String {
    gateway_labels().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// One object to server-side apply: its API resource, name, namespace and full body.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The object's API resource (group, version, kind, plural).
    pub resource: ApiResource,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The body sent as the apply patch.
    pub body: Value,
}

impl Manifest {
    /// A namespaced object of kind `K` owned by `owners`, with the gateway's labels
    /// ([`metadata`]).
    pub fn owned<K: Resource<DynamicType = ()>>(
        name: &str,
        namespace: &str,
        owners: &[OwnerReference],
        rest: Value,
    ) -> Self {
        Self::new::<K>(name, Some(namespace), metadata(name, namespace, owners), rest)
    }

    /// A manifest of kind `K` from its metadata and the rest of its body.
    pub fn new<K: Resource<DynamicType = ()>>(
        name: &str,
        namespace: Option<&str>,
        metadata: Value,
        rest: Value,
    ) -> Self {
        let resource = ApiResource::erase::<K>(&());
        let mut body = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": metadata,
        });
        if let (Some(body), Some(rest)) = (body.as_object_mut(), rest.as_object()) {
            body.extend(rest.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Self { resource, name: name.to_owned(), namespace: namespace.map(str::to_owned), body }
    }

    /// `Kind/name`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.resource.kind, self.name)
    }
}

/// Metadata of a namespaced gateway object: name, namespace, [`gateway_labels`], owners.
pub fn metadata(name: &str, namespace: &str, owners: &[OwnerReference]) -> Value {
    json!({
        "name": name,
        "namespace": namespace,
        "labels": gateway_labels(),
        "ownerReferences": owners,
    })
}

/// Every gateway object of `namespace` except the two Secrets, in apply order (identity and RBAC
/// before the workload that uses them).
///
/// `web_identity_role` is the role of the namespace's first connection with
/// `spec.aws.credentials.webIdentity`: when set, the Deployment mounts the AWS token and the
/// ServiceAccount carries the EKS role annotation.
pub fn gateway_manifests(
    namespace: &str,
    settings: &GatewaySettings,
    owners: &[OwnerReference],
    web_identity_role: Option<&str>,
) -> Vec<Manifest> {
    vec![
        service_account(namespace, owners, web_identity_role),
        role(namespace, owners),
        role_binding(namespace, owners),
        service(namespace, owners),
        deployment(namespace, settings, owners, web_identity_role.is_some()),
        pod_disruption_budget(namespace, owners),
    ]
}

/// The gateway's ServiceAccount. Its token is mounted: the gateway talks to the API server for
/// ApprovalRequests and fetches the issuer's JWKS with it.
///
/// With a web identity role it is annotated `eks.amazonaws.com/role-arn`, so on EKS the pod
/// identity webhook also gives the pod `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`: the
/// recorder's ambient credentials (a RecordingPolicy without a secretRef) come from there. The
/// gateway's upstream signing does not: it reads the role from its config and the token the
/// Deployment mounts at [`aws_web_identity_token_file`].
pub fn service_account(
    namespace: &str,
    owners: &[OwnerReference],
    web_identity_role: Option<&str>,
) -> Manifest {
    let mut meta = metadata(GATEWAY_NAME, namespace, owners);
    if let (Some(role), Some(meta)) = (web_identity_role, meta.as_object_mut()) {
        meta.insert("annotations".into(), json!({ EKS_ROLE_ARN_ANNOTATION: role }));
    }
    Manifest::new::<ServiceAccount>(GATEWAY_NAME, Some(namespace), meta, json!({}))
}

/// The least the gateway needs in its namespace.
pub fn role(namespace: &str, owners: &[OwnerReference]) -> Manifest {
    let rules = json!([
        // A call matching an ApprovalRule is held: the gateway creates the ApprovalRequest (or
        // lists the ones with the same fingerprint label), and watches it for the reviewers'
        // decision.
        {
            "apiGroups": ["chaperone.dev"],
            "resources": ["approvalrequests"],
            "verbs": ["create", "get", "list", "watch"],
        },
        // Consuming an approval sets status.phase with a conditional update (resourceVersion), so
        // two replicas cannot both use one approval; expiry and denial are written the same way.
        // Reviews themselves are never the gateway's to write: no update on the object.
        {
            "apiGroups": ["chaperone.dev"],
            "resources": ["approvalrequests/status"],
            "verbs": ["update", "patch"],
        },
        // Its own configuration and keys, by name only, so a reload can read them from the API
        // without waiting for the kubelet's volume refresh. No other Secret: upstream credentials
        // reach the gateway inside its config Secret, resolved by the operator.
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [CONFIG_SECRET_NAME, KEYS_SECRET_NAME],
            "verbs": ["get", "watch"],
        },
    ]);
    Manifest::owned::<Role>(GATEWAY_NAME, namespace, owners, json!({ "rules": rules }))
}

/// Binds the gateway's Role to its ServiceAccount.
pub fn role_binding(namespace: &str, owners: &[OwnerReference]) -> Manifest {
    Manifest::owned::<RoleBinding>(
        GATEWAY_NAME,
        namespace,
        owners,
        json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATEWAY_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": GATEWAY_NAME, "namespace": namespace}],
        }),
    )
}

/// The agents' entry point: ClusterIP, port 8080, ClientIP affinity so one pod's calls usually
/// stay on one replica (correctness does not depend on it).
pub fn service(namespace: &str, owners: &[OwnerReference]) -> Manifest {
    Manifest::owned::<Service>(
        GATEWAY_NAME,
        namespace,
        owners,
        json!({
            "spec": {
                "type": "ClusterIP",
                "selector": selector_labels(),
                "ports": [{
                    "name": "agents",
                    "protocol": "TCP",
                    "port": AGENTS_PORT,
                    "targetPort": "agents",
                }],
                "sessionAffinity": "ClientIP",
            }
        }),
    )
}

fn selector_labels() -> Value {
    json!({ "app.kubernetes.io/name": GATEWAY_NAME })
}

/// The gateway Deployment: config and keys mounted read-only from their Secrets (whole
/// directories, so updates reach the running pods and the gateway reloads them), the gateway's own
/// projected token and the cluster CA for fetching the JWKS, an emptyDir spool, probes on the admin
/// port, and a locked-down security context. With `aws_web_identity`, also a projected token of
/// audience `sts.amazonaws.com` at [`aws_web_identity_token_file`].
pub fn deployment(
    namespace: &str,
    settings: &GatewaySettings,
    owners: &[OwnerReference],
    aws_web_identity: bool,
) -> Manifest {
    let mut container = json!({
        "name": "gateway",
        "image": settings.image,
        "args": [
            format!("--config={CONFIG_DIR}/{CONFIG_SECRET_KEY}"),
            format!("--keys={KEYS_DIR}/{KEYS_SECRET_KEY}"),
            format!("--listen=0.0.0.0:{AGENTS_PORT}"),
            format!("--admin=0.0.0.0:{ADMIN_PORT}"),
            format!("--spool-dir={SPOOL_DIR}"),
            format!("--max-spool-mib={}", settings.spool_mib),
            format!("--tls-cert={TLS_DIR}/{}", chaperone_config::tls::CERT_KEY),
            format!("--tls-key={TLS_DIR}/{}", chaperone_config::tls::KEY_KEY),
        ],
        "env": [
            // The replica's name separates its recording stream from other replicas'.
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "ports": [
            {"name": "agents", "containerPort": AGENTS_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "admin"},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "admin"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": {
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": true},
            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": true},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": true},
            {"name": "jwks-credentials", "mountPath": JWKS_CREDENTIALS_DIR, "readOnly": true},
            {"name": "spool", "mountPath": SPOOL_DIR},
        ],
    });
    let mut volumes = json!([
        {"name": "config", "secret": {"secretName": CONFIG_SECRET_NAME, "defaultMode": 0o440}},
        {"name": "keys", "secret": {"secretName": KEYS_SECRET_NAME, "defaultMode": 0o440}},
        // The serving pair only: the CA's key stays in the Secret, out of the gateway's files.
        {"name": "tls", "secret": {"secretName": TLS_SECRET_NAME, "defaultMode": 0o440, "items": [
            {"key": chaperone_config::tls::CERT_KEY, "path": chaperone_config::tls::CERT_KEY},
            {"key": chaperone_config::tls::KEY_KEY, "path": chaperone_config::tls::KEY_KEY},
        ]}},
        {"name": "jwks-credentials", "projected": {"defaultMode": 0o440, "sources": [
            // The API server's default audience: this token is for the API server itself
            // (the issuer's JWKS endpoint), never the agents' audience.
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        ]}},
        {"name": "spool", "emptyDir": {"sizeLimit": format!("{}Mi", settings.spool_volume_mib())}},
    ]);
    if aws_web_identity {
        if let Some(mounts) = container["volumeMounts"].as_array_mut() {
            mounts.push(
                json!({"name": "aws-web-identity", "mountPath": AWS_TOKEN_DIR, "readOnly": true}),
            );
        }
        if let Some(volumes) = volumes.as_array_mut() {
            // Exchanged at STS for the connection's webIdentity role; the kubelet rotates it and
            // the gateway re-reads it at every exchange.
            volumes.push(json!({"name": "aws-web-identity", "projected": {"defaultMode": 0o440, "sources": [
                {"serviceAccountToken": {"path": "token", "audience": AWS_TOKEN_AUDIENCE, "expirationSeconds": 86400}},
            ]}}));
        }
    }
    let mut manifest = Manifest::owned::<Deployment>(
        GATEWAY_NAME,
        namespace,
        owners,
        json!({
            "spec": {
                "replicas": settings.replicas,
                "selector": {"matchLabels": selector_labels()},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {"labels": gateway_labels()},
                    "spec": {
                        "serviceAccountName": GATEWAY_NAME,
                        "automountServiceAccountToken": true,
                        "enableServiceLinks": false,
                        // Held calls wait up to an ApprovalRule's holdSeconds (at most 600 s, 45 s
                        // by default); a minute lets typical in-flight calls finish.
                        "terminationGracePeriodSeconds": 60,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": GATEWAY_UID,
                            "runAsGroup": GATEWAY_UID,
                            "fsGroup": GATEWAY_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                        "volumes": volumes,
                    }
                },
            }
        }),
    );
    if !settings.image_pull_secrets.is_empty() {
        manifest.body["spec"]["template"]["spec"]["imagePullSecrets"] =
            settings.image_pull_secrets.iter().map(|name| json!({"name": name})).collect();
    }
    apply_pod_settings(&mut manifest.body["spec"]["template"]["spec"], &settings.pod);
    manifest
}

/// Puts the chart's `gateway.*` resources and scheduling values into the gateway's pod spec.
fn apply_pod_settings(pod: &mut Value, settings: &GatewayPodSettings) {
    // Serializing these types cannot fail: their maps have string keys.
    fn json<T: serde::Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap_or(Value::Null)
    }
    if let Some(resources) = &settings.resources {
        pod["containers"][0]["resources"] = json(resources);
    }
    if !settings.node_selector.is_empty() {
        pod["nodeSelector"] = json(&settings.node_selector);
    }
    if !settings.tolerations.is_empty() {
        pod["tolerations"] = json(&settings.tolerations);
    }
    if let Some(affinity) = &settings.affinity {
        pod["affinity"] = json(affinity);
    }
    if !settings.topology_spread_constraints.is_empty() {
        pod["topologySpreadConstraints"] = json(&settings.topology_spread_constraints);
    }
    if let Some(name) = &settings.priority_class_name {
        pod["priorityClassName"] = json!(name);
    }
}

/// Keeps all but one gateway replica up through voluntary disruptions (never blocks a drain of a
/// single-replica gateway for ever, as `minAvailable: 1` would).
pub fn pod_disruption_budget(namespace: &str, owners: &[OwnerReference]) -> Manifest {
    Manifest::owned::<PodDisruptionBudget>(
        GATEWAY_NAME,
        namespace,
        owners,
        json!({
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector_labels()},
            }
        }),
    )
}

/// An Opaque Secret of the gateway holding `key: bytes`, with extra annotations.
pub fn secret(
    namespace: &str,
    name: &str,
    owners: &[OwnerReference],
    data: &BTreeMap<String, Vec<u8>>,
    annotations: &BTreeMap<String, String>,
) -> Manifest {
    let mut meta = metadata(name, namespace, owners);
    if !annotations.is_empty()
        && let Some(meta) = meta.as_object_mut()
    {
        meta.insert("annotations".into(), json!(annotations));
    }
    let data: BTreeMap<&String, String> =
        data.iter().map(|(k, v)| (k, STANDARD.encode(v))).collect();
    Manifest::new::<Secret>(name, Some(namespace), meta, json!({"type": "Opaque", "data": data}))
}

/// The ConfigMap publishing the gateway's CA certificate to the namespace's agents (the pod
/// webhook mounts its `ca.crt` read-only into every injected container).
pub fn ca_config_map(namespace: &str, owners: &[OwnerReference], ca_pem: &str) -> Manifest {
    Manifest::owned::<ConfigMap>(
        CA_CONFIG_MAP_NAME,
        namespace,
        owners,
        json!({"data": {chaperone_config::tls::AGENT_CA_FILE: ca_pem}}),
    )
}

/// Every gateway object of `namespace` by kind and name, for deletion (order: workload first).
pub fn gateway_object_names(namespace: &str) -> Vec<(ApiResource, String, Option<String>)> {
    let ns = Some(namespace.to_owned());
    vec![
        (ApiResource::erase::<Deployment>(&()), GATEWAY_NAME.into(), ns.clone()),
        (ApiResource::erase::<PodDisruptionBudget>(&()), GATEWAY_NAME.into(), ns.clone()),
        (ApiResource::erase::<Service>(&()), GATEWAY_NAME.into(), ns.clone()),
        (ApiResource::erase::<Secret>(&()), CONFIG_SECRET_NAME.into(), ns.clone()),
        (ApiResource::erase::<Secret>(&()), KEYS_SECRET_NAME.into(), ns.clone()),
        (ApiResource::erase::<Secret>(&()), TLS_SECRET_NAME.into(), ns.clone()),
        (ApiResource::erase::<ConfigMap>(&()), CA_CONFIG_MAP_NAME.into(), ns.clone()),
        (ApiResource::erase::<RoleBinding>(&()), GATEWAY_NAME.into(), ns.clone()),
        (ApiResource::erase::<Role>(&()), GATEWAY_NAME.into(), ns.clone()),
        (ApiResource::erase::<ServiceAccount>(&()), GATEWAY_NAME.into(), ns),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GatewaySettings {
        GatewaySettings {
            image: "example.com/gateway:1".into(),
            replicas: 2,
            issuer: "https://issuer".into(),
            jwks_uri: "https://kubernetes.default.svc/openid/v1/jwks".into(),
            session_key_rotation: std::time::Duration::from_secs(7 * 24 * 3600),
            spool_mib: 1024,
            image_pull_secrets: Vec::new(),
            pod: Default::default(),
            metrics_namespace: None,
        }
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "chaperone.dev/v1alpha1".into(),
            kind: "AgentConnection".into(),
            name: "prod-aws".into(),
            uid: "u1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_manifest_deserializes_as_its_kind_and_carries_the_labels() {
        let manifests = gateway_manifests("agents", &settings(), &[owner()], None);
        for m in &manifests {
            let labels = &m.body["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/name"], GATEWAY_NAME, "{}", m.describe());
            assert_eq!(labels["app.kubernetes.io/managed-by"], "chaperone-operator");
            assert_eq!(m.body["kind"], m.resource.kind.as_str());
        }
        let typed = |kind: &str| {
            manifests.iter().find(|m| m.resource.kind == kind).map(|m| m.body.clone()).unwrap()
        };
        let _: Deployment = serde_json::from_value(typed("Deployment")).unwrap();
        let _: Service = serde_json::from_value(typed("Service")).unwrap();
        let _: Role = serde_json::from_value(typed("Role")).unwrap();
        let _: RoleBinding = serde_json::from_value(typed("RoleBinding")).unwrap();
        let _: PodDisruptionBudget = serde_json::from_value(typed("PodDisruptionBudget")).unwrap();
        let _: ServiceAccount = serde_json::from_value(typed("ServiceAccount")).unwrap();
    }

    #[test]
    fn gateway_pods_pull_with_the_configured_secrets() {
        let mut settings = settings();
        settings.image_pull_secrets = vec!["regcred".into(), "mirror.creds".into()];
        settings.check().unwrap();
        let deployment: Deployment =
            serde_json::from_value(deployment("agents", &settings, &[owner()], false).body)
                .unwrap();
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        let names: Vec<String> =
            pod.image_pull_secrets.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["regcred", "mirror.creds"]);
        settings.image_pull_secrets = vec!["Reg_Cred".into()];
        let refused = settings.check().unwrap_err();
        assert!(refused.contains("--gateway-image-pull-secret \"Reg_Cred\""), "{refused}");
    }

    #[test]
    fn gateway_pod_settings_reach_the_pod_spec_and_unset_ones_keep_the_defaults() {
        let defaults = deployment("agents", &settings(), &[owner()], false);
        let pod = &defaults.body["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["resources"]["requests"]["cpu"], "100m");
        for absent in [
            "nodeSelector",
            "tolerations",
            "affinity",
            "topologySpreadConstraints",
            "priorityClassName",
        ] {
            assert!(pod.get(absent).is_none(), "{absent} without a setting: {pod}");
        }

        let mut settings = settings();
        settings.pod = GatewayPodSettings::from_json(
            r#"{"resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}},
                "nodeSelector": {"pool": "agents"},
                "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}],
                "priorityClassName": "agents-high"}"#,
        )
        .unwrap();
        let rendered = deployment("agents", &settings, &[owner()], false);
        let typed: Deployment = serde_json::from_value(rendered.body.clone()).unwrap();
        let pod = typed.spec.unwrap().template.spec.unwrap();
        let resources = pod.containers[0].resources.clone().unwrap();
        assert_eq!(resources.requests.unwrap()["cpu"].0, "250m");
        assert_eq!(resources.limits.unwrap()["memory"].0, "1Gi");
        assert_eq!(pod.node_selector.unwrap()["pool"], "agents");
        assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("dedicated"));
        assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
        assert_eq!(
            pod.topology_spread_constraints.unwrap()[0].topology_key,
            "topology.kubernetes.io/zone"
        );
        assert_eq!(pod.priority_class_name.as_deref(), Some("agents-high"));
        // What the operator decides stays: the locked-down security context and the volumes.
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        assert_eq!(pod.volumes.unwrap().len(), 5);
    }

    #[test]
    fn the_spool_limit_leaves_headroom_in_its_volume() {
        let mut settings = settings();
        for (spool, volume) in [(1024, "1280Mi"), (64, "128Mi"), (10_240, "12800Mi")] {
            settings.spool_mib = spool;
            let deployment: Deployment =
                serde_json::from_value(deployment("agents", &settings, &[owner()], false).body)
                    .unwrap();
            let pod = deployment.spec.unwrap().template.spec.unwrap();
            let args = pod.containers[0].args.clone().unwrap();
            assert!(args.contains(&format!("--max-spool-mib={spool}")), "{args:?}");
            let spool_volume =
                pod.volumes.unwrap().into_iter().find(|v| v.name == "spool").unwrap();
            let limit = spool_volume.empty_dir.unwrap().size_limit.unwrap();
            assert_eq!(limit.0, volume);
        }
        settings.spool_mib = 32;
        let refused = settings.check().unwrap_err();
        assert!(refused.contains("--gateway-spool-mib is 32: at least 64"), "{refused}");
    }

    #[test]
    fn namespaced_objects_are_owned_by_the_connections_and_the_cluster_binding_by_none() {
        for m in gateway_manifests("agents", &settings(), &[owner()], None) {
            let owners = &m.body["metadata"]["ownerReferences"];
            if m.namespace.is_some() {
                assert_eq!(owners[0]["name"], "prod-aws", "{}", m.describe());
            } else {
                assert!(owners.is_null(), "{} must not have owners", m.describe());
                assert_eq!(m.body["metadata"]["labels"][GATEWAY_NAMESPACE_LABEL], "agents");
            }
        }
    }

    #[test]
    fn the_role_touches_no_secret_but_the_gateways_own_two() {
        let role: Role = serde_json::from_value(role("agents", &[]).body).unwrap();
        let rules = role.rules.unwrap_or_default();
        for rule in &rules {
            assert!(!rule.verbs.iter().any(|v| v == "*" || v == "delete"));
            if rule.resources.as_deref().unwrap_or_default().iter().any(|r| r == "secrets") {
                assert!(
                    !rule.verbs.iter().any(|v| v == "list"),
                    "listing Secrets reveals them all"
                );
                assert_eq!(
                    rule.resource_names.as_deref(),
                    Some(&[CONFIG_SECRET_NAME.to_owned(), KEYS_SECRET_NAME.to_owned()][..])
                );
            }
        }
        assert!(
            rules
                .iter()
                .any(|r| r.resources.as_deref().unwrap_or_default() == ["approvalrequests"]
                    && r.verbs == ["create", "get", "list", "watch"])
        );
    }

    #[test]
    fn the_deployment_is_locked_down_and_mounts_its_secrets_read_only() {
        let d: Deployment =
            serde_json::from_value(deployment("agents", &settings(), &[], false).body).unwrap();
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("example.com/gateway:1"));
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        let mounts = c.volume_mounts.clone().unwrap();
        for name in ["config", "keys", "tls", "jwks-credentials"] {
            let m = mounts.iter().find(|m| m.name == name).unwrap();
            assert_eq!(m.read_only, Some(true), "{name}");
        }
        let probe = c.readiness_probe.clone().unwrap().http_get.unwrap();
        assert_eq!(probe.path.as_deref(), Some("/readyz"));
        let volumes = pod.volumes.unwrap();
        let projected = volumes.iter().find(|v| v.name == "jwks-credentials").unwrap();
        assert!(projected.projected.is_some());
    }

    #[test]
    fn a_web_identity_mounts_an_sts_token_and_annotates_the_service_account() {
        let role = "arn:aws:iam::123456789012:role/chaperone-gateway";
        let manifests = gateway_manifests("agents", &settings(), &[owner()], Some(role));
        let typed = |kind: &str| manifests.iter().find(|m| m.resource.kind == kind).unwrap();
        let account: ServiceAccount =
            serde_json::from_value(typed("ServiceAccount").body.clone()).unwrap();
        assert_eq!(account.metadata.annotations.unwrap()[EKS_ROLE_ARN_ANNOTATION], role);
        let d: Deployment = serde_json::from_value(typed("Deployment").body.clone()).unwrap();
        let pod = d.spec.unwrap().template.spec.unwrap();
        let mount = pod.containers[0]
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "aws-web-identity")
            .unwrap();
        assert_eq!(format!("{}/token", mount.mount_path), aws_web_identity_token_file());
        assert_eq!(mount.read_only, Some(true));
        let volume =
            pod.volumes.unwrap().into_iter().find(|v| v.name == "aws-web-identity").unwrap();
        let token =
            volume.projected.unwrap().sources.unwrap()[0].service_account_token.clone().unwrap();
        assert_eq!(token.audience.as_deref(), Some("sts.amazonaws.com"));
        assert_eq!(token.path, "token");
    }

    #[test]
    fn without_a_web_identity_there_is_no_sts_token_and_no_role_annotation() {
        let manifests = gateway_manifests("agents", &settings(), &[owner()], None);
        for m in &manifests {
            let text = m.body.to_string();
            assert!(!text.contains("sts.amazonaws.com"), "{}", m.describe());
            assert!(!text.contains(EKS_ROLE_ARN_ANNOTATION), "{}", m.describe());
        }
    }

    #[test]
    fn the_service_sends_port_8080_to_the_agents_port_with_client_ip_affinity() {
        let s: Service = serde_json::from_value(service("agents", &[]).body).unwrap();
        let spec = s.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.session_affinity.as_deref(), Some("ClientIP"));
        assert_eq!(spec.ports.unwrap()[0].port, 8080);
    }

    #[test]
    fn secret_data_is_base64_and_annotations_are_kept() {
        let m = secret(
            "agents",
            KEYS_SECRET_NAME,
            &[],
            &BTreeMap::from([(KEYS_SECRET_KEY.to_owned(), b"{}".to_vec())]),
            &BTreeMap::from([("a".to_owned(), "b".to_owned())]),
        );
        let s: Secret = serde_json::from_value(m.body).unwrap();
        assert_eq!(s.data.unwrap()[KEYS_SECRET_KEY].0, b"{}");
        assert_eq!(s.metadata.annotations.unwrap()["a"], "b");
    }
}
