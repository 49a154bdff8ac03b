//! Registering the webhooks against the real API server: a configuration the chart installed
//! keeps its timeouts, side effects and selectors, only each webhook's `clientConfig` (address
//! and `caBundle`) is the operator's; a missing configuration is created whole.

use chaperone_operator::webhooks::{
    APPROVAL_WEBHOOK_NAME, POD_WEBHOOK_NAME, WebhookEndpoint, register_webhooks,
};
use chaperone_tests::LocalEnv;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const NAME: &str = "chaperone-registration-test";
const CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nQ0EgZm9yIGEgdGVzdA==\n-----END CERTIFICATE-----\n";

/// The configuration as the chart renders it (timeout 3 s, namespaces excluded, no caBundle).
fn as_the_chart_installs_it() -> MutatingWebhookConfiguration {
    let webhook = |name: &str, path: &str, side_effects: &str| {
        json!({
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "chaperone-system", "name": "chaperone-operator", "path": path, "port": 443}},
            "failurePolicy": "Fail",
            "sideEffects": side_effects,
            "timeoutSeconds": 3,
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "flux-system"]}]},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        })
    };
    serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "webhooks": [
            webhook(POD_WEBHOOK_NAME, "/pods", "NoneOnDryRun"),
            webhook(APPROVAL_WEBHOOK_NAME, "/approvalrequests", "None"),
        ],
    }))
    .expect("a configuration")
}

fn webhook<'a>(configuration: &'a MutatingWebhookConfiguration, name: &str) -> &'a MutatingWebhook {
    configuration.webhooks.iter().flatten().find(|w| w.name == name).expect(name)
}

#[tokio::test]
async fn the_operator_patches_only_the_client_config_of_an_installed_configuration_and_creates_a_missing_one()
 {
    chaperone_operator::runtime::tls::install_crypto_provider();
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.expect("admin client");
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = api.delete(NAME, &DeleteParams::default()).await;
    api.create(&PostParams::default(), &as_the_chart_installs_it()).await.expect("installed");
    let endpoint = WebhookEndpoint::Service {
        namespace: "chaperone-system".into(),
        name: "chaperone-operator".into(),
        port: 443,
    };

    let registered = register_webhooks(&client, NAME, &endpoint, CA_PEM).await.expect("registered");
    let stored = api.get(NAME).await.expect("stored");
    assert_eq!(stored.resource_version(), registered.resource_version());
    for name in [POD_WEBHOOK_NAME, APPROVAL_WEBHOOK_NAME] {
        let w = webhook(&stored, name);
        assert_eq!(
            w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()),
            Some(CA_PEM.as_bytes()),
            "{name}"
        );
        assert_eq!(w.timeout_seconds, Some(3), "{name}: the chart's timeout stays");
        let excluded =
            w.namespace_selector.clone().and_then(|s| s.match_expressions).expect("selector");
        assert_eq!(
            excluded[0].values.as_deref(),
            Some(&["kube-system".to_owned(), "flux-system".to_owned()][..])
        );
    }
    assert_eq!(webhook(&stored, POD_WEBHOOK_NAME).side_effects, "NoneOnDryRun");
    assert_eq!(webhook(&stored, APPROVAL_WEBHOOK_NAME).side_effects, "None");
    assert_eq!(
        webhook(&stored, POD_WEBHOOK_NAME)
            .client_config
            .service
            .as_ref()
            .and_then(|s| s.path.as_deref()),
        Some("/pods")
    );

    // Registering again with the same CA writes nothing.
    let again = register_webhooks(&client, NAME, &endpoint, CA_PEM).await.expect("registered");
    assert_eq!(again.resource_version(), stored.resource_version());

    // Deleted: created again whole, with the operator's own defaults.
    api.delete(NAME, &DeleteParams::default()).await.expect("deleted");
    register_webhooks(&client, NAME, &endpoint, CA_PEM).await.expect("registered");
    let created = api.get(NAME).await.expect("created");
    assert_eq!(webhook(&created, POD_WEBHOOK_NAME).timeout_seconds, Some(10));
    assert_eq!(
        webhook(&created, APPROVAL_WEBHOOK_NAME)
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice()),
        Some(CA_PEM.as_bytes())
    );
    api.delete(NAME, &DeleteParams::default()).await.expect("cleaned up");
}
