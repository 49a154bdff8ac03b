//! The APIService that makes the API server proxy `audit.chaperone.dev/v1alpha1` to the operator,
//! applied with the CA of the audit API's serving certificate as its caBundle (as the webhooks'
//! configuration gets theirs). The chart installs it without a caBundle; the operator fills it in.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chaperone_crds::{AUDIT_API_SERVICE, AUDIT_GROUP, AUDIT_VERSION};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// The Service the API server reaches the audit API through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditService {
    pub namespace: String,
    pub name: String,
    pub port: i32,
}

impl AuditService {
    /// `namespace/name[:port]` or `name[:port]` (in `default_namespace`), port 443 by default.
    pub fn parse(spec: &str, default_namespace: &str) -> Result<Self, String> {
        match crate::webhooks::WebhookEndpoint::service(spec, default_namespace)
            .map_err(|e| e.replace("--webhook-service", "--audit-api-service"))?
        {
            crate::webhooks::WebhookEndpoint::Service { namespace, name, port } => {
                Ok(Self { namespace, name, port })
            }
            crate::webhooks::WebhookEndpoint::Url(_) => {
                Err(format!("--audit-api-service {spec:?} must name a Service"))
            }
        }
    }

    /// The names the serving certificate must hold: the Service's DNS names.
    pub fn serving_names(&self) -> Vec<String> {
        crate::webhooks::WebhookEndpoint::Service {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            port: self.port,
        }
        .serving_names()
    }
}

/// Applies the APIService `v1alpha1.audit.chaperone.dev` pointing at `service`, trusting `ca_pem`.
pub async fn register_api_service(
    client: &Client,
    service: &AuditService,
    ca_pem: &str,
) -> Result<APIService, kube::Error> {
    let api_service = json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": AUDIT_API_SERVICE},
        "spec": {
            "group": AUDIT_GROUP,
            "version": AUDIT_VERSION,
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"namespace": service.namespace, "name": service.name, "port": service.port},
            "caBundle": B64.encode(ca_pem),
        },
    });
    Api::<APIService>::all(client.clone())
        .patch(
            AUDIT_API_SERVICE,
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(&api_service),
        )
        .await
}
