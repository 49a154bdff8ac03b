//! The Helm chart, rendered with the real helm and checked three ways: `helm lint --strict`,
//! `kubeconform -strict` against schemas taken from the local API server (Kubernetes v1.34, with
//! the chart's CRDs and the Prometheus Operator's ServiceMonitor CRD installed), and a server-side
//! apply with strict field validation by that API server.

use std::sync::OnceLock;

use chaperone_tests::{
    LocalEnv,
    chart::{self, apply_all, find, kubeconform, lint, objects, render, write_kubeconform_schemas},
    env::install_crds,
    objects::ensure_namespace,
    provision::{ChartTools, ensure_chart_tools},
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

/// Every optional part switched on, and every value given a non-default.
const EVERYTHING: &[&str] = &[
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
    "--set",
    "operator.watchNamespace=agents",
    "--set",
    "operator.serviceAccountIssuer=https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
    "--set",
    "operator.replicas=3",
    "--set",
    "gateway.replicas=1",
    "--set",
    "gateway.spoolMiB=4096",
    "--set",
    "gateway.imagePullSecrets[0].name=regcred",
    "--set",
    "gateway.metricsNamespace=monitoring",
    "--set",
    "gateway.image.tag=v9.9.9",
    "--set",
    "gateway.image.digest=sha256:1111111111111111111111111111111111111111111111111111111111111111",
    "--set",
    "operator.image.digest=sha256:2222222222222222222222222222222222222222222222222222222222222222",
    "--set",
    "operator.podAntiAffinity=required",
    "--set",
    "webhooks.excludeNamespaces={monitoring,flux-system}",
    "--set",
    "imagePullSecrets[0].name=registry",
    "--set-string",
    "operator.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/chaperone-operator",
    "--set",
    "operator.priorityClassName=system-cluster-critical",
    "--set",
    "gateway.priorityClassName=agents-high",
    "--set",
    "gateway.nodeSelector.pool=agents",
    "--set",
    "gateway.resources.limits.memory=512Mi",
    "--set",
    "gateway.tolerations[0].key=dedicated",
    "--set",
    "gateway.tolerations[0].operator=Exists",
    "--set",
    "gateway.topologySpreadConstraints[0].maxSkew=1",
    "--set",
    "gateway.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
    "--set",
    "gateway.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
];

fn tools() -> &'static ChartTools {
    static TOOLS: OnceLock<ChartTools> = OnceLock::new();
    TOOLS.get_or_init(|| ensure_chart_tools().expect("helm and kubeconform are provisioned"))
}

/// The admin client of the shared environment, with the chart's CRDs and the ServiceMonitor CRD.
async fn cluster() -> Client {
    let env = LocalEnv::shared();
    let client = env.control_plane.client().await.expect("admin client");
    install_crds(&client).await.expect("the chart's CRDs install");
    let crd: CustomResourceDefinition = serde_yaml::from_str(
        &std::fs::read_to_string(&tools().service_monitor_crd).expect("ServiceMonitor CRD"),
    )
    .expect("ServiceMonitor CRD parses");
    let name = crd.metadata.name.clone().unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(&name, &PatchParams::apply("chaperone-tests").force(), &Patch::Apply(&crd))
        .await
        .expect("ServiceMonitor CRD applies");
    for _ in 0..300 {
        let crd = api.get(&name).await.unwrap();
        if crd
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        {
            return client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the ServiceMonitor CRD was not Established");
}

fn rendered(args: &[&str]) -> String {
    match render(tools(), "chaperone", "chaperone-system", args).unwrap() {
        Ok(yaml) => yaml,
        Err(failure) => panic!("helm template failed: {}", failure.stderr),
    }
}

#[test]
fn the_chart_lints_strictly_with_defaults_and_with_every_option_on() {
    let output = lint(tools(), &[]).unwrap().unwrap_or_else(|f| panic!("{}", f.stderr));
    assert!(output.contains("0 chart(s) failed"), "{output}");
    let output = lint(tools(), EVERYTHING).unwrap().unwrap_or_else(|f| panic!("{}", f.stderr));
    assert!(output.contains("0 chart(s) failed"), "{output}");
}

#[tokio::test]
async fn the_rendered_chart_validates_strictly_against_the_api_servers_own_schemas() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let client = cluster().await;
    let schemas = env.dir().join("kubeconform-schemas");
    // An Established CRD reaches /openapi/v2 a moment later (the API server rebuilds the
    // document asynchronously): wait until every custom kind the chart renders is in it.
    let custom_kinds = [
        "com.coreos.monitoring.v1.ServiceMonitor",
        "dev.chaperone.v1alpha1.AgentConnection",
        "dev.chaperone.v1alpha1.RecordingPolicy",
        "dev.chaperone.v1alpha1.ApprovalRule",
        "dev.chaperone.v1alpha1.ApprovalRequest",
    ];
    let mut openapi = chart::openapi_v2(&client).await.unwrap();
    for _ in 0..300 {
        if custom_kinds.iter().all(|k| openapi["definitions"].get(k).is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        openapi = chart::openapi_v2(&client).await.unwrap();
    }
    let written = write_kubeconform_schemas(&openapi, &schemas).unwrap();
    assert!(written > 50, "only {written} schemas from /openapi/v2");
    for args in [&[][..], EVERYTHING] {
        let yaml = rendered(args);
        let validation = kubeconform(tools(), &schemas, &yaml).unwrap();
        assert!(
            validation.valid,
            "kubeconform refused the chart ({args:?}):\n{}",
            validation.output
        );
        assert!(!validation.output.contains("skipped"), "{}", validation.output);
        // Every kind of the chart was checked against a schema (none skipped for want of one).
        let kinds = objects(&yaml).unwrap().len();
        assert!(
            validation.output.contains(&format!("Summary: {kinds} resources found")),
            "{kinds} objects rendered:\n{}",
            validation.output
        );
    }

    // The check can fail: a misspelt field in a Deployment is refused.
    let mut broken = objects(&rendered(&[])).unwrap();
    let deployment = broken.iter_mut().find(|o| o["kind"] == "Deployment").unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = json!({});
    let yaml = broken.iter().map(|o| serde_yaml::to_string(o).unwrap()).collect::<Vec<_>>();
    let validation = kubeconform(tools(), &schemas, &yaml.join("---\n")).unwrap();
    assert!(!validation.valid, "a misspelt field passed:\n{}", validation.output);
    assert!(validation.output.contains("securityContex"), "{}", validation.output);
}

#[tokio::test]
async fn the_api_server_accepts_every_rendered_object_under_strict_field_validation() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let client = cluster().await;
    ensure_namespace(&client, "chaperone-system").await.unwrap();
    ensure_namespace(&client, "agents").await.unwrap();
    for args in [&[][..], EVERYTHING] {
        let objects = objects(&rendered(args)).unwrap();
        let refusals = apply_all(&client, &objects, true).await.unwrap();
        assert!(refusals.is_empty(), "refused ({args:?}): {refusals:#?}");
    }
}

#[test]
fn values_outside_the_schema_are_refused_naming_the_key() {
    for (args, named) in [
        (&["--set", "operator.replica=3"][..], "replica"),
        (&["--set", "gateway.replicas=0"][..], "replicas"),
        (&["--set", "gateway.spoolMiB=16"][..], "spoolMiB"),
        (&["--set", "gateway.imagePullSecrets[0].name=Reg_Cred"][..], "imagePullSecrets"),
        (&["--set", "operator.logFormat=xml"][..], "logFormat"),
        (&["--set", "gateway.metricsNamespace=Monitoring"][..], "metricsNamespace"),
        (&["--set", "operator.sessionKeyRotationHours=6"][..], "sessionKeyRotationHours"),
        (&["--set", "unknown=1"][..], "unknown"),
        (&["--set", "gateway.image.digest=latest"][..], "digest"),
        (&["--set", "operator.image.digest=sha256:ABC"][..], "digest"),
        (&["--set", "operator.podAntiAffinity=always"][..], "podAntiAffinity"),
    ] {
        match render(tools(), "chaperone", "chaperone-system", args).unwrap() {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(failure) => {
                assert!(
                    failure.stderr.contains("values don't meet the specifications of the schema"),
                    "{}",
                    failure.stderr
                );
                assert!(failure.stderr.contains(named), "{args:?}: {}", failure.stderr);
            }
        }
    }
}

#[test]
fn the_operator_runs_non_root_read_only_without_privilege_escalation_and_is_probed() {
    let objects = objects(&rendered(&[])).unwrap();
    let deployment =
        find(&objects, "Deployment", "chaperone-operator").expect("operator Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    // Ready once the webhook certificate is loaded and registered, not merely alive.
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"].is_object());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let args: Vec<&str> =
        container["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        args.contains(&"--gateway-image=ghcr.io/chaperone-dev/chaperone-gateway:0.1.0"),
        "{args:?}"
    );
    assert!(
        args.contains(&"--webhook-service=chaperone-system/chaperone-operator:443"),
        "{args:?}"
    );
    assert!(args.contains(&"--gateway-spool-mib=1024"), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--gateway-image-pull-secret")), "{args:?}");
}

#[test]
fn gateway_values_reach_the_operators_flags() {
    let objects = objects(&rendered(EVERYTHING)).unwrap();
    let deployment =
        find(&objects, "Deployment", "chaperone-operator").expect("operator Deployment");
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "--gateway-replicas=1",
        "--gateway-spool-mib=4096",
        "--gateway-image-pull-secret=regcred",
        "--gateway-metrics-namespace=monitoring",
        "--gateway-image=ghcr.io/chaperone-dev/chaperone-gateway:v9.9.9@sha256:1111111111111111111111111111111111111111111111111111111111111111",
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/chaperone-dev/chaperone-operator:0.1.0@sha256:2222222222222222222222222222222222222222222222222222222222222222"
    );
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    let pod = env.iter().find(|v| v["name"] == "CHAPERONE_GATEWAY_POD").expect("gateway pod env");
    let pod: Value = serde_json::from_str(pod["value"].as_str().unwrap()).unwrap();
    assert_eq!(pod["priorityClassName"], "agents-high", "{pod}");
    assert_eq!(pod["nodeSelector"], json!({"pool": "agents"}), "{pod}");
    assert_eq!(pod["resources"]["limits"]["memory"], "512Mi", "{pod}");
}

#[test]
fn operator_replicas_spread_over_nodes() {
    let selector = json!({"matchLabels": {
        "app.kubernetes.io/name": "chaperone-operator",
        "app.kubernetes.io/instance": "chaperone",
    }});
    let affinity = |args: &[&str]| {
        let objects = objects(&rendered(args)).unwrap();
        let deployment =
            find(&objects, "Deployment", "chaperone-operator").expect("operator Deployment");
        deployment["spec"]["template"]["spec"]["affinity"].clone()
    };
    let preferred = affinity(&[]);
    let term = &preferred["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname", "{preferred}");
    assert_eq!(term["podAffinityTerm"]["labelSelector"], selector);
    let required = affinity(&["--set", "operator.podAntiAffinity=required"]);
    let term = &required["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname", "{required}");
    assert_eq!(term["labelSelector"], selector);
    assert!(affinity(&["--set", "operator.podAntiAffinity=none"]).is_null());
    // An affinity of the user's replaces the default.
    let own = affinity(&[
        "--set",
        "operator.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
        "--set",
        "operator.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
    ]);
    assert!(own["podAntiAffinity"].is_null() && own["nodeAffinity"].is_object(), "{own}");
}

#[test]
fn the_webhooks_fail_closed_and_the_pod_webhook_sees_only_labelled_pods() {
    let objects = objects(&rendered(&[])).unwrap();
    let configuration =
        find(&objects, "MutatingWebhookConfiguration", "chaperone").expect("webhook configuration");
    let webhooks = configuration["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 3);
    for webhook in webhooks {
        assert_eq!(webhook["failurePolicy"], "Fail", "{webhook}");
        assert!(webhook["clientConfig"].get("caBundle").is_none(), "the operator patches caBundle");
    }
    let pods = webhooks.iter().find(|w| w["name"] == "pods.chaperone.dev").unwrap();
    assert_eq!(
        pods["objectSelector"]["matchExpressions"][0],
        json!({"key": "chaperone.dev/connection", "operator": "Exists"})
    );
    let resources: Vec<&Value> =
        pods["rules"].as_array().unwrap().iter().map(|r| &r["resources"][0]).collect();
    assert_eq!(resources, [&json!("pods"), &json!("pods/ephemeralcontainers")]);
    // Pods of a gateway's ServiceAccount are checked, whatever their labels.
    let identity =
        webhooks.iter().find(|w| w["name"] == "gateway-identity.pods.chaperone.dev").unwrap();
    assert!(identity.get("objectSelector").is_none(), "{identity}");
    assert_eq!(
        identity["matchConditions"][0]["expression"],
        "has(object.spec.serviceAccountName) && object.spec.serviceAccountName == 'chaperone-gateway'"
    );
    assert_eq!(identity["rules"], pods["rules"]);
}

#[test]
fn the_audit_api_is_registered_at_the_operators_service_and_its_auditor_role_only_reads_sessions() {
    let chart = objects(&rendered(&[])).unwrap();
    let service = find(&chart, "APIService", "v1alpha1.audit.chaperone.dev").expect("APIService");
    assert!(service["spec"].get("caBundle").is_none(), "the operator fills in caBundle");
    assert_eq!(
        service["spec"]["service"],
        json!({"namespace": "chaperone-system", "name": "chaperone-operator", "port": 8443})
    );
    let operator_service = find(&chart, "Service", "chaperone-operator").expect("Service");
    let port = operator_service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 8443)
        .expect("the Service has the APIService's port");
    assert_eq!(port["targetPort"], "audit-api");
    let role = find(&chart, "ClusterRole", "chaperone-session-auditor").expect("auditor role");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["audit.chaperone.dev"], "resources": ["sessions", "sessions/events"],
                "verbs": ["get", "list"]}])
    );
    let reader =
        find(&chart, "RoleBinding", "chaperone-operator:extension-apiserver-authentication-reader")
            .expect("front-proxy settings reader");
    assert_eq!(reader["metadata"]["namespace"], "kube-system");
    let deployment = find(&chart, "Deployment", "chaperone-operator").expect("Deployment");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--audit-api-service=chaperone-system/chaperone-operator:8443"),
        "{args}"
    );

    let off = objects(&rendered(&["--set", "auditApi.enabled=false"])).unwrap();
    assert!(find(&off, "APIService", "v1alpha1.audit.chaperone.dev").is_none());
    let deployment = find(&off, "Deployment", "chaperone-operator").expect("Deployment");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--audit-api=false"), "{args}");
}

#[test]
fn every_rbac_rule_in_the_chart_carries_a_comment_saying_why() {
    let mut template =
        std::fs::read_to_string(chart::chart_dir().join("templates/clusterrole.yaml")).unwrap();
    template.push_str(
        &std::fs::read_to_string(chart::chart_dir().join("templates/audit-api.yaml")).unwrap(),
    );
    let lines: Vec<&str> = template.lines().collect();
    let mut rules = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- apiGroups:") {
            rules += 1;
            let before = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).unwrap();
            assert!(
                before.trim_start().starts_with('#'),
                "rule at line {} has no comment: {line}",
                i + 1
            );
        }
    }
    assert!(rules >= 10, "{rules} rules found");
}

#[test]
fn notes_apply_only_examples_that_exist_and_the_webhook_accepts() {
    let notes = std::fs::read_to_string(chart::chart_dir().join("templates/NOTES.txt")).unwrap();
    let applied: Vec<&str> =
        notes.lines().filter_map(|line| line.trim().strip_prefix("kubectl apply -f ")).collect();
    assert!(applied.len() >= 4, "NOTES.txt applies {applied:?}");
    for file in applied {
        let path = chaperone_tests::paths::workspace_root().join(file);
        assert!(path.is_file(), "NOTES.txt applies {file}, which is not a file");
        // ApprovalRequests come from gateways only: the webhook refuses anyone else's.
        assert!(!file.contains("approvalrequest"), "NOTES.txt applies {file}");
    }
}
