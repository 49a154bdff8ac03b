//! Which namespaces the console shows, and what the user may do in each, asked of the API server
//! with the user's own identity.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

/// The API group and resource the sessions API serves; its RBAC rule guards the sessions page.
pub const SESSIONS_GROUP: &str = "audit.chaperone.dev";
pub const SESSIONS_RESOURCE: &str = "sessions";

/// The namespaces to look in.
#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    pub namespaces: Vec<String>,
    /// True when they came from a cluster-wide list; false when from --namespace or the
    /// kubeconfig (listing namespaces was forbidden).
    pub cluster_wide: bool,
}

/// A namespace left out, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub namespace: String,
    pub reason: String,
}

/// Every namespace when the user may list them; else `requested`, else `default_namespace`.
pub async fn visible_namespaces(
    client: &Client,
    requested: &[String],
    default_namespace: &str,
) -> Result<Scope, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let mut namespaces: Vec<String> = list.items.iter().map(|n| n.name_any()).collect();
            if !requested.is_empty() {
                namespaces.retain(|n| requested.contains(n));
            }
            namespaces.sort();
            Ok(Scope { namespaces, cluster_wide: true })
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            Ok(Scope { namespaces: fallback(requested, default_namespace), cluster_wide: false })
        }
        Err(other) => Err(other),
    }
}

/// The namespaces named on the command line (deduplicated, in order), else the kubeconfig's.
pub fn fallback(requested: &[String], default_namespace: &str) -> Vec<String> {
    let mut namespaces: Vec<String> = Vec::new();
    for namespace in requested {
        if !namespaces.contains(namespace) {
            namespaces.push(namespace.clone());
        }
    }
    if namespaces.is_empty() {
        namespaces.push(default_namespace.to_owned());
    }
    namespaces
}

/// Whether the user may `verb` `group`/`resource` in `namespace`, as the API server's
/// authorizer answers a SelfSubjectAccessReview.
pub async fn may(
    client: &Client,
    namespace: &str,
    verb: &str,
    group: &str,
    resource: &str,
) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed && !s.denied.unwrap_or(false)))
}

/// The sentence shown for a namespace whose sessions the user may not list.
pub fn sessions_forbidden(namespace: &str) -> String {
    format!(
        "you may not list {SESSIONS_RESOURCE}.{SESSIONS_GROUP} in namespace {namespace:?}; ask a \
         cluster admin for a Role granting get and list on {SESSIONS_RESOURCE} in API group \
         {SESSIONS_GROUP}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_cluster_wide_list_the_named_namespaces_then_the_kubeconfigs_are_used() {
        let named = vec!["team-a".to_owned(), "team-b".to_owned(), "team-a".to_owned()];
        assert_eq!(fallback(&named, "default"), vec!["team-a", "team-b"]);
        assert_eq!(fallback(&[], "dev"), vec!["dev"]);
    }
}
