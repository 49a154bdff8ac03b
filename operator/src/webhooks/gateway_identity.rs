//! Pods that run as the gateway's ServiceAccount. Its token reads the gateway's config Secret,
//! which holds the upstream AWS credentials, so a pod of any other workload running as it would
//! take the credentials around the gateway. The API server sends every pod of that service
//! account here (a `matchConditions` expression on the webhook, [`MATCH_EXPRESSION`]); only the
//! pods the ReplicaSet controller creates for the gateway's own Deployment are admitted.
//!
//! Pure core: [`verdict`] (is this a gateway pod?) and [`refusal`] (the message). Thin shell:
//! [`check`] reads the ReplicaSet and the Deployment.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client};

use crate::gateway::objects::{CONFIG_SECRET_NAME, GATEWAY_NAME};

/// The name of the webhook that receives pods of the gateway's ServiceAccount.
pub const GATEWAY_IDENTITY_WEBHOOK_NAME: &str = "gateway-identity.pods.chaperone.dev";

/// The CEL expression that sends a pod (or its ephemeral containers) to that webhook.
pub const MATCH_EXPRESSION: &str =
    "has(object.spec.serviceAccountName) && object.spec.serviceAccountName == 'chaperone-gateway'";

/// The users the ReplicaSet controller creates pods as: its own service account when the
/// controller manager runs with `--use-service-account-credentials` (EKS, kubeadm), else the
/// controller manager's identity.
pub const REPLICA_SET_CONTROLLERS: [&str; 2] =
    ["system:serviceaccount:kube-system:replicaset-controller", "system:kube-controller-manager"];

/// Why ephemeral containers are never added to a gateway pod.
pub const EPHEMERAL_REASON: &str =
    "ephemeral containers would run with its token; read the gateway's logs and metrics instead";

/// The refusal of a pod of the gateway's ServiceAccount that is not a gateway pod, `reason`
/// saying why.
pub fn refusal(namespace: &str, reason: &str) -> String {
    format!(
        "ServiceAccount {namespace}/{GATEWAY_NAME} is the Chaperone gateway's: its token can read Secret {CONFIG_SECRET_NAME}, which holds the upstream AWS credentials, so only the pods of Deployment {namespace}/{GATEWAY_NAME} may run as it, and this one may not ({reason}); run the pod as another ServiceAccount"
    )
}

fn controller_of(references: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    references.into_iter().flatten().find(|r| r.controller == Some(true))
}

/// The ReplicaSet a pod's controller reference names, or why the pod is not a gateway pod.
pub fn replica_set_of<'a>(pod: &'a Pod, requester: &str) -> Result<&'a str, String> {
    if !REPLICA_SET_CONTROLLERS.contains(&requester) {
        return Err(format!(
            "it is created by {requester:?}, not by the ReplicaSet controller of Deployment {GATEWAY_NAME}"
        ));
    }
    match controller_of(pod.metadata.owner_references.as_ref()) {
        Some(owner) if owner.kind == "ReplicaSet" && owner.api_version == "apps/v1" => {
            Ok(&owner.name)
        }
        _ => Err("it is not controlled by a ReplicaSet".to_owned()),
    }
}

/// Whether `replica_set` is one the Deployment controller made from the gateway's `deployment`
/// as it is now: controlled by it (same uid) with the same pod template spec. A ReplicaSet made by
/// hand that points its owner reference at the gateway's Deployment has a template of its own.
pub fn verdict(replica_set: &ReplicaSet, deployment: Option<&Deployment>) -> Result<(), String> {
    let name = replica_set.metadata.name.clone().unwrap_or_default();
    let Some(deployment) = deployment else {
        return Err(format!("Deployment {GATEWAY_NAME} does not exist"));
    };
    let owner = controller_of(replica_set.metadata.owner_references.as_ref());
    let owned = owner.is_some_and(|o| {
        o.kind == "Deployment"
            && o.name == GATEWAY_NAME
            && Some(&o.uid) == deployment.metadata.uid.as_ref()
    });
    if !owned {
        return Err(format!("ReplicaSet {name} is not controlled by Deployment {GATEWAY_NAME}"));
    }
    let template = |spec: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>| {
        spec.and_then(|t| t.spec.as_ref()).map(serde_json::to_value).and_then(Result::ok)
    };
    let ours = template(deployment.spec.as_ref().map(|s| &s.template));
    let theirs = template(replica_set.spec.as_ref().and_then(|s| s.template.as_ref()));
    if ours.is_none() || ours != theirs {
        return Err(format!("ReplicaSet {name}'s pod template is not Deployment {GATEWAY_NAME}'s"));
    }
    Ok(())
}

/// Whether `pod`, created by `requester` in `namespace`, is a pod of the gateway's Deployment.
pub async fn check(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    requester: &str,
) -> Result<(), String> {
    let replica_set = replica_set_of(pod, requester)?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let read = |what: &str, e: kube::Error| format!("could not read {what}: {e}; retry");
    let Some(replica_set) = replica_sets
        .get_opt(replica_set)
        .await
        .map_err(|e| read(&format!("ReplicaSet {replica_set}"), e))?
    else {
        return Err(format!("ReplicaSet {replica_set} does not exist"));
    };
    let deployment = deployments
        .get_opt(GATEWAY_NAME)
        .await
        .map_err(|e| read(&format!("Deployment {GATEWAY_NAME}"), e))?;
    verdict(&replica_set, deployment.as_ref())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": GATEWAY_NAME, "uid": "d-1"},
            "spec": {
                "selector": {"matchLabels": {"app": "gw"}},
                "template": {"spec": {"serviceAccountName": GATEWAY_NAME, "containers": [{"name": "gateway", "image": "gw:1"}]}},
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn replica_set(owner_uid: &str, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "chaperone-gateway-5d8f", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY_NAME, "uid": owner_uid, "controller": true},
            ]},
            "spec": {
                "selector": {"matchLabels": {"app": "gw"}},
                "template": {"spec": {"serviceAccountName": GATEWAY_NAME, "containers": [{"name": "gateway", "image": image}]}},
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(owner: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "ownerReferences": owner},
            "spec": {"serviceAccountName": GATEWAY_NAME, "containers": [{"name": "gateway", "image": "gw:1"}]},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_the_replica_set_controller_creating_for_the_gateways_deployment_passes() {
        let owned = pod(
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "chaperone-gateway-5d8f", "uid": "r", "controller": true}]),
        );
        assert_eq!(
            replica_set_of(&owned, REPLICA_SET_CONTROLLERS[0]),
            Ok("chaperone-gateway-5d8f")
        );
        assert_eq!(
            replica_set_of(&owned, REPLICA_SET_CONTROLLERS[1]),
            Ok("chaperone-gateway-5d8f")
        );
        let by_hand = replica_set_of(&owned, "alice").err().unwrap_or_default();
        assert!(by_hand.contains("created by \"alice\""), "{by_hand}");
        let loose = pod(json!([]));
        assert!(replica_set_of(&loose, REPLICA_SET_CONTROLLERS[0]).is_err());

        let deployment = deployment();
        assert_eq!(verdict(&replica_set("d-1", "gw:1"), Some(&deployment)), Ok(()));
        let other_owner = verdict(&replica_set("d-2", "gw:1"), Some(&deployment));
        assert!(other_owner.err().unwrap_or_default().contains("not controlled by"));
        let other_template = verdict(&replica_set("d-1", "attacker:1"), Some(&deployment));
        assert!(other_template.err().unwrap_or_default().contains("pod template"));
        assert!(verdict(&replica_set("d-1", "gw:1"), None).is_err());
    }

    #[test]
    fn the_refusal_names_the_secret_at_stake_and_the_fix() {
        let message = refusal("agents", "it is created by \"alice\"");
        assert!(message.contains("ServiceAccount agents/chaperone-gateway"), "{message}");
        assert!(message.contains(CONFIG_SECRET_NAME), "{message}");
        assert!(message.ends_with("run the pod as another ServiceAccount"), "{message}");
    }
}
