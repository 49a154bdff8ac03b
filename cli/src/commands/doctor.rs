//! `doctor`: reads what an install consists of and prints one line per check
//! ([`crate::install_checks`] decides each verdict and fix).

use std::collections::BTreeMap;
use std::process::ExitCode;

use chaperone_crds::{AgentConnection, RecordingPolicy, all_crds};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::cluster::Cluster;
use crate::flags::DoctorArgs;
use crate::install_checks::{
    CONNECTION_LABEL, CheckLine, GATEWAY, Verdict, crd_check, gateway_check, lockdown_check,
    network_policy_note, operator_check, recording_check, webhook_configuration_check,
    webhook_dry_run_check,
};

/// Name of the pod the webhook check creates with `dryRun: All` (never stored).
const PROBE_POD: &str = "chaperone-doctor-probe";

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let client = cluster.client().clone();
    let mut failed = false;
    let mut print = |line: CheckLine| {
        failed |= line.verdict == Verdict::Fail;
        print!("{}", line.render());
    };

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for expected in all_crds() {
        let name = expected.metadata.name.clone().unwrap_or_default();
        match crds.get_opt(&name).await {
            Ok(installed) => print(crd_check(&expected, installed.as_ref())),
            Err(e) => print(unreadable(&format!("crd {name}"), "customresourcedefinitions", e)),
        }
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &args.operator_namespace);
    match deployments.get_opt(&args.operator_deployment).await {
        Ok(found) => print(operator_check(
            &args.operator_namespace,
            &args.operator_deployment,
            found.as_ref(),
        )),
        Err(e) => print(unreadable("operator", "deployments", e)),
    }

    let configurations: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    match configurations.get_opt(&args.webhook_configuration).await {
        Ok(found) => {
            print(webhook_configuration_check(&args.webhook_configuration, found.as_ref()))
        }
        Err(e) => print(unreadable("webhook configuration", "mutatingwebhookconfigurations", e)),
    }

    // Namespace -> its first AgentConnection (by name).
    let connections = match agent_namespaces(&client, args.namespace.as_deref()).await {
        Ok(connections) => connections,
        Err(e) => {
            print(unreadable("agent namespaces", "agentconnections", e));
            BTreeMap::new()
        }
    };
    match connections.iter().next() {
        Some((namespace, connection)) => {
            match dry_run_labelled_pod(&client, namespace, connection).await {
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    print(unreadable(
                        "webhooks reachable",
                        "pods (create, dry run)",
                        kube::Error::Api(status),
                    ));
                }
                Err(kube::Error::Api(status)) => {
                    print(webhook_dry_run_check(namespace, &Err(status.message)));
                }
                Err(e) => print(webhook_dry_run_check(namespace, &Err(e.to_string()))),
                Ok(pod) => print(webhook_dry_run_check(namespace, &Ok(pod))),
            }
        }
        None => print(CheckLine::note(
            "webhooks reachable",
            match &args.namespace {
                Some(ns) => {
                    format!("namespace {ns} has no AgentConnection, so no labelled pod to try")
                }
                None => "no namespace has an AgentConnection yet, so no labelled pod to try \
                         (create one: examples/agentconnection.yaml)"
                    .to_owned(),
            },
        )),
    }

    let mut with_network_policies = Vec::new();
    for namespace in connections.keys() {
        print(gateway_line(&client, namespace).await);
        let policies: Api<RecordingPolicy> = Api::namespaced(client.clone(), namespace);
        match policies.list(&ListParams::default()).await {
            Ok(list) if list.items.is_empty() => print(CheckLine {
                verdict: Verdict::Fail,
                check: format!("recording {namespace}"),
                detail: "no RecordingPolicy: the namespace's connections cannot record".into(),
                fix: Some(format!(
                    "create the RecordingPolicy your AgentConnections name in {namespace} \
                     (examples/recordingpolicy.yaml)"
                )),
            }),
            Ok(list) => list.items.iter().for_each(|p| {
                print(recording_check(namespace, p));
                if let Some(line) = lockdown_check(namespace, p) {
                    print(line);
                }
            }),
            Err(e) => print(unreadable(&format!("recording {namespace}"), "recordingpolicies", e)),
        }
        let network_policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
        if let Ok(list) = network_policies.list(&ListParams::default()).await
            && !list.items.is_empty()
        {
            with_network_policies.push(namespace.clone());
        }
    }
    if !connections.is_empty() {
        print(network_policy_note(&with_network_policies));
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// A check that could not read what it needs.
fn unreadable(check: &str, resource: &str, error: kube::Error) -> CheckLine {
    let fix = match &error {
        kube::Error::Api(status) if status.code == 403 => {
            format!("your kubeconfig's user needs access to {resource}: {}", status.message)
        }
        _ => "check that the API server answers (kubectl get --raw /readyz)".to_owned(),
    };
    CheckLine {
        verdict: Verdict::Fail,
        check: check.to_owned(),
        detail: format!("could not read {resource}: {error}"),
        fix: Some(fix),
    }
}

/// Every namespace with an AgentConnection (or just `only`), with its first connection's name.
async fn agent_namespaces(
    client: &Client,
    only: Option<&str>,
) -> Result<BTreeMap<String, String>, kube::Error> {
    let api: Api<AgentConnection> = match only {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let mut namespaces = BTreeMap::new();
    for connection in api.list(&ListParams::default()).await?.items {
        if let (Some(namespace), Some(name)) =
            (connection.metadata.namespace, connection.metadata.name)
        {
            let first = namespaces.entry(namespace).or_insert_with(|| name.clone());
            if name < *first {
                *first = name;
            }
        }
    }
    Ok(namespaces)
}

/// Creates (server-side dry run: the API server runs admission, stores nothing) a pod labelled
/// with `connection`, as an agent's pod would be.
async fn dry_run_labelled_pod(
    client: &Client,
    namespace: &str,
    connection: &str,
) -> Result<Pod, kube::Error> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": PROBE_POD, "labels": {CONNECTION_LABEL: connection}},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}],
        },
    }))
    .map_err(kube::Error::SerdeError)?;
    let params = PostParams { dry_run: true, ..PostParams::default() };
    Api::<Pod>::namespaced(client.clone(), namespace).create(&params, &pod).await
}

/// The gateway's Deployment and the ready endpoints behind its Service.
async fn gateway_line(client: &Client, namespace: &str) -> CheckLine {
    let check = format!("gateway {namespace}");
    let deployment =
        match Api::<Deployment>::namespaced(client.clone(), namespace).get_opt(GATEWAY).await {
            Ok(found) => found,
            Err(e) => return unreadable(&check, "deployments", e),
        };
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={GATEWAY}")))
        .await;
    let ready = match slices {
        Ok(list) => list
            .items
            .iter()
            .flat_map(|slice| &slice.endpoints)
            // An endpoint without a ready condition counts as ready (discovery.k8s.io/v1).
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .count(),
        Err(e) => return unreadable(&check, "endpointslices", e),
    };
    gateway_check(namespace, deployment.as_ref(), ready)
}
