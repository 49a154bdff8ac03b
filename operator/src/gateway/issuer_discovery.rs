//! The one ClusterRoleBinding that lets gateways read the service-account issuer's keys.
//!
//! The API server serves `/openid/v1/jwks` only to identities bound to
//! `system:service-account-issuer-discovery`, and each gateway verifies agents' tokens against
//! those keys. All gateways share one binding of a fixed name, [`BINDING_NAME`], which the chart
//! installs; the operator adds each namespace's gateway ServiceAccount to its subjects when it
//! renders that gateway and removes it when it tears the gateway down. So the operator needs no
//! right to create or delete ClusterRoleBindings: only `get` and `update` of that one, by name.
//!
//! Pure core: [`subjects_with`] (the subjects after adding or removing a namespace's gateway).
//! Thin shell: [`ensure`] (read, change, write with the read resourceVersion, retry on conflict).

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

use super::objects::{GATEWAY_NAME, ISSUER_DISCOVERY_CLUSTER_ROLE, gateway_labels};
use crate::error::Error;

/// The shared binding's name (the chart's `templates/clusterrole.yaml` installs it).
pub const BINDING_NAME: &str = "chaperone-gateways-issuer-discovery";

/// How often a write that lost a race with another reconcile is retried.
const ATTEMPTS: usize = 8;

/// The subject naming `namespace`'s gateway ServiceAccount.
pub fn subject(namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: GATEWAY_NAME.to_owned(),
        namespace: Some(namespace.to_owned()),
        api_group: None,
    }
}

fn is_gateway_of(subject: &Subject, namespace: &str) -> bool {
    subject.kind == "ServiceAccount"
        && subject.name == GATEWAY_NAME
        && subject.namespace.as_deref() == Some(namespace)
}

/// The subjects of a binding holding `current` once `namespace`'s gateway is `present` (or not);
/// `None` when nothing changes. Other subjects stay as they are, in their order.
pub fn subjects_with(current: &[Subject], namespace: &str, present: bool) -> Option<Vec<Subject>> {
    let has = current.iter().any(|s| is_gateway_of(s, namespace));
    match (present, has) {
        (true, false) => {
            let mut subjects = current.to_vec();
            subjects.push(subject(namespace));
            Some(subjects)
        }
        (false, true) => {
            Some(current.iter().filter(|s| !is_gateway_of(s, namespace)).cloned().collect())
        }
        _ => None,
    }
}

/// The binding with no subjects, as the chart installs it.
pub fn binding() -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(BINDING_NAME.to_owned()),
            labels: Some(gateway_labels()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: ISSUER_DISCOVERY_CLUSTER_ROLE.to_owned(),
        },
        subjects: None,
    }
}

/// Makes `namespace`'s gateway a subject of [`BINDING_NAME`] (`present`) or not; returns whether
/// the binding changed. When the binding does not exist, it is created if `present` (the operator
/// outside the chart, e.g. run by hand with a cluster-admin's rights); the chart's ClusterRole
/// does not allow that, and the error says to install the chart's binding.
pub async fn ensure(client: &Client, namespace: &str, present: bool) -> Result<bool, Error> {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    let action = |what: &str| {
        format!("{what} ClusterRoleBinding {BINDING_NAME} (gateway of namespace {namespace})")
    };
    for _ in 0..ATTEMPTS {
        let existing = api
            .get_opt(BINDING_NAME)
            .await
            .map_err(|source| Error::Kube { action: action("reading"), source })?;
        let Some(mut existing) = existing else {
            if !present {
                return Ok(false);
            }
            let mut created = binding();
            created.subjects = Some(vec![subject(namespace)]);
            match api.create(&PostParams::default(), &created).await {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(source) => {
                    return Err(Error::Kube {
                        action: action(
                            "creating (it does not exist: the chart installs it; without the chart, create it binding ClusterRole system:service-account-issuer-discovery)",
                        ),
                        source,
                    });
                }
            }
        };
        let current = existing.subjects.clone().unwrap_or_default();
        let Some(subjects) = subjects_with(&current, namespace, present) else {
            return Ok(false);
        };
        existing.subjects = Some(subjects);
        existing.metadata.managed_fields = None;
        // The resourceVersion read above makes a concurrent change fail with 409: read again.
        match api.replace(BINDING_NAME, &PostParams::default(), &existing).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(source) => return Err(Error::Kube { action: action("updating"), source }),
        }
    }
    Err(Error::Kube {
        action: action("updating"),
        source: kube::Error::Service(
            format!("{ATTEMPTS} attempts lost a race with other writers; retrying later").into(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other() -> Subject {
        Subject { kind: "Group".into(), name: "auditors".into(), ..Default::default() }
    }

    #[test]
    fn a_namespaces_gateway_is_added_once_and_removed_leaving_other_subjects_in_place() {
        let added = subjects_with(&[other()], "agents", true).unwrap_or_default();
        assert_eq!(added, vec![other(), subject("agents")]);
        assert_eq!(subjects_with(&added, "agents", true), None);
        let two = subjects_with(&added, "team-b", true).unwrap_or_default();
        assert_eq!(two.len(), 3);
        let removed = subjects_with(&two, "agents", false).unwrap_or_default();
        assert_eq!(removed, vec![other(), subject("team-b")]);
        assert_eq!(subjects_with(&removed, "agents", false), None);
        // A ServiceAccount of the same name in another namespace is not the gateway's.
        let lookalike = Subject { namespace: Some("x".into()), ..subject("agents") };
        assert_eq!(subjects_with(&[lookalike], "agents", false), None);
    }

    #[test]
    fn the_binding_grants_issuer_discovery_only() {
        let binding = binding();
        assert_eq!(binding.role_ref.name, "system:service-account-issuer-discovery");
        assert_eq!(binding.metadata.name.as_deref(), Some(BINDING_NAME));
    }
}
