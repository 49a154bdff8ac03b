//! The whole local environment: control plane plus moto, started once per test run.
//!
//! `cargo xtask test` starts one environment (`chaperone-env up --describe FILE`) and passes the
//! description's path to every test binary in [`ENV_VAR`]; [`LocalEnv::shared`] attaches to it and
//! first removes what earlier test binaries left behind ([`reset`]). Without the variable (e.g.
//! `cargo test -p chaperone-gateway --test recorder_s3`), a test binary starts its own.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde::{Deserialize, Serialize};

use crate::{
    aws::{MotoDescription, MotoServer},
    control_plane::{ControlPlane, ControlPlaneDescription},
    paths,
    process::print_log_tail,
    provision::{self, Provisioned},
};

/// The environment variable naming the description file of the run's shared environment.
pub const ENV_VAR: &str = "CHAPERONE_TEST_ENV";

/// Everything a test binary needs to use an environment another process runs: written as JSON
/// by `chaperone-env up --describe FILE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvDescription {
    /// Process id of the environment's owner (`chaperone-env up`).
    pub pid: u32,
    /// etcd + kube-apiserver.
    pub control_plane: ControlPlaneDescription,
    /// moto and its IAM users.
    pub moto: MotoDescription,
}

impl EnvDescription {
    /// Writes the description atomically (readers never see half a file).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))
    }

    /// Reads a description written by [`EnvDescription::write`].
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read(path).with_context(|| {
            format!("reading the shared environment's description {} ({ENV_VAR})", path.display())
        })?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// A running local environment: etcd, kube-apiserver and moto.
#[derive(Debug)]
pub struct LocalEnv {
    /// What was built and installed.
    pub provisioned: Provisioned,
    /// etcd + kube-apiserver.
    pub control_plane: ControlPlane,
    /// moto, the S3 server and upstream AWS.
    pub moto: MotoServer,
    dir: PathBuf,
}

impl LocalEnv {
    /// Provisions what is missing and starts everything in a fresh run directory.
    pub async fn start() -> anyhow::Result<Self> {
        let provisioned = tokio::task::spawn_blocking(provision::provision_all)
            .await
            .context("provisioning")??;
        let dir = new_run_dir()?;
        let control_plane = ControlPlane::start(&provisioned, &dir).await?;
        let python = provisioned.python.clone();
        let moto_dir = dir.clone();
        let moto = tokio::task::spawn_blocking(move || MotoServer::start(&python, &moto_dir))
            .await
            .context("starting moto")??;
        Ok(Self { provisioned, control_plane, moto, dir })
    }

    /// Attaches to the environment described in `path`, removes what earlier test binaries left
    /// in it ([`reset`]), and gives this process its own folder under the run directory.
    pub async fn attach(path: &Path) -> anyhow::Result<Self> {
        let description = EnvDescription::read(path)?;
        // SAFETY: kill with signal 0 only checks for existence.
        if unsafe { libc::kill(description.pid as i32, 0) } != 0 {
            bail!(
                "the shared environment of {} (process {}) is gone; unset {ENV_VAR} to start one",
                path.display(),
                description.pid
            );
        }
        let provisioned = tokio::task::spawn_blocking(provision::provision_all)
            .await
            .context("provisioning")??;
        let control_plane = ControlPlane::attach(&description.control_plane).await?;
        let moto = MotoServer::attach(&provisioned.python, &description.moto);
        let started = Instant::now();
        reset(&control_plane.client().await?).await.context("resetting the shared environment")?;
        eprintln!(
            "chaperone-tests: attached to the shared environment {} (reset in {:.1} s)",
            path.display(),
            started.elapsed().as_secs_f64()
        );
        let exe = std::env::current_exe().ok();
        let name = exe.as_deref().and_then(Path::file_name).map(|n| n.to_string_lossy());
        let dir = description.control_plane.dir.join(format!(
            "{}-{}",
            std::process::id(),
            name.unwrap_or_default()
        ));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { provisioned, control_plane, moto, dir })
    }

    /// The environment of this test run: the one named by [`ENV_VAR`] when it is set (shared by
    /// every test binary of `cargo xtask test`), else one started for this test binary on first use.
    ///
    /// An environment this process started ends with it (the kernel kills its processes).
    pub fn shared() -> &'static LocalEnv {
        static SHARED: OnceLock<LocalEnv> = OnceLock::new();
        SHARED.get_or_init(|| {
            let started = std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                match std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
                    Some(path) => runtime.block_on(LocalEnv::attach(Path::new(&path))),
                    None => {
                        let started = Instant::now();
                        let env = runtime.block_on(LocalEnv::start());
                        eprintln!(
                            "chaperone-tests: started a local environment for this test binary in {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                        env
                    }
                }
            })
            .join();
            match started {
                Ok(Ok(env)) => env,
                Ok(Err(e)) => panic!("the local environment did not start: {e:#}"),
                Err(_) => panic!("the local environment's start-up thread panicked"),
            }
        })
    }

    /// An environment of this test binary's own, never the run's shared one: for tests whose
    /// assertions read moto's whole state (`/moto-api/data.json` fails once any bucket holding
    /// objects was deleted, as other tests do) or that switch moto's signature checks off
    /// (`/moto-api/reset-auth`), which would let other tests' unsigned calls through.
    pub fn own() -> &'static LocalEnv {
        static OWN: OnceLock<LocalEnv> = OnceLock::new();
        OWN.get_or_init(|| {
            let started = std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(LocalEnv::start())
            })
            .join();
            match started {
                Ok(Ok(env)) => env,
                Ok(Err(e)) => panic!("the local environment did not start: {e:#}"),
                Err(_) => panic!("the local environment's start-up thread panicked"),
            }
        })
    }

    /// What another process needs to attach to this environment.
    pub fn describe(&self) -> EnvDescription {
        EnvDescription {
            pid: std::process::id(),
            control_plane: self.control_plane.describe(),
            moto: self.moto.describe(),
        }
    }

    /// This process's folder for files (the run directory, or a folder of its own in the run
    /// directory of a shared environment).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A guard that prints every component's log tail if the current test panics.
    pub fn logs_on_failure(&self) -> LogsOnFailure<'_> {
        LogsOnFailure(self)
    }

    /// Every component's log.
    pub fn logs(&self) -> Vec<(&str, &Path)> {
        let mut logs = self.control_plane.logs();
        logs.push(("moto", self.moto.log_path()));
        logs
    }
}

/// Prints the environment's logs when dropped during a panic.
pub struct LogsOnFailure<'a>(&'a LocalEnv);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, path) in self.0.logs() {
                print_log_tail(name, path, 40);
            }
        }
    }
}

fn new_run_dir() -> anyhow::Result<PathBuf> {
    let runs = paths::runs_dir();
    fs::create_dir_all(&runs)?;
    // Remove run directories of processes that are gone.
    for entry in fs::read_dir(&runs)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
        // SAFETY: kill with signal 0 only checks for existence.
        if let Some(pid) = pid
            && unsafe { libc::kill(pid, 0) } != 0
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let dir = runs.join(format!("{}-{stamp}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The committed CRD manifests of the Helm chart, as installed by users.
pub fn chart_crd_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = paths::workspace_root().join("charts/chaperone/crds");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Applies the chart's CRDs with server-side apply and waits until each is Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in chart_crd_files()? {
        let crd: CustomResourceDefinition = serde_yaml::from_str(&fs::read_to_string(&file)?)
            .with_context(|| format!("parsing {}", file.display()))?;
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        api.patch(&name, &PatchParams::apply("chaperone-tests").force(), &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying {}", file.display()))?;
        names.push(name);
    }
    let started = Instant::now();
    for name in &names {
        loop {
            let crd = api.get(name).await?;
            let established =
                crd.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                    cs.iter().any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("CRD {name} was not Established within 60 s: {:?}", crd.status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(names)
}

/// Namespaces the API server itself keeps; [`reset`] leaves them alone.
const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Cluster-scoped kinds [`reset`] removes: admission webhooks and policies (one registered by an
/// earlier test binary would intercept this binary's requests, and refuse them once its server
/// is gone) and RBAC (bindings granting rights to names another binary reuses). The API server's
/// own RBAC objects carry `kubernetes.io/bootstrapping` and are kept.
const CLUSTER_KINDS: [&str; 8] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ClusterRole",
    "ClusterRoleBinding",
];

/// Removes what earlier test binaries left in a shared environment, so that each binary meets
/// the API server as a freshly started one, except that:
///
/// - namespaces stay (without a controller-manager a deleted namespace never finishes
///   terminating and its name could not be used again); they are emptied instead: every object of
///   every namespaced kind the API server lists (finalizers removed first) outside kube-system,
///   kube-public and kube-node-lease, and outside the `default` namespace's `kubernetes` Service;
/// - CustomResourceDefinitions stay (the chart's CRDs, applied by tests with server-side apply);
/// - moto's state stays: its IAM users cannot be made again (unsigned calls are allowed only at
///   its start), so tests name their AWS resources (buckets, tables, roles) uniquely instead.
///
/// The audit API's APIService (registered by `cli/tests/audit_api.rs`, whose in-process server is
/// gone) is deleted first, so that discovery here and in later binaries does not meet an
/// unavailable aggregated API. The API server's own APIServices stay.
///
/// Test binaries run one after another (`cargo test` runs them sequentially), so nothing else
/// is using the API server meanwhile.
pub async fn reset(client: &Client) -> anyhow::Result<()> {
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    use kube::discovery::{Discovery, Scope, verbs};
    match Api::<APIService>::all(client.clone())
        .delete("v1alpha1.audit.chaperone.dev", &Default::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e).context("deleting the audit API's APIService"),
    }
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .context("discovering the API server's kinds")?;
    // One task per kind: the kinds are independent, and the API server answers them in parallel.
    let mut tasks = tokio::task::JoinSet::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if !capabilities.supports_operation(verbs::LIST)
                || !capabilities.supports_operation(verbs::DELETE)
            {
                continue;
            }
            if capabilities.scope == Scope::Cluster
                && !CLUSTER_KINDS.contains(&resource.kind.as_str())
            {
                continue;
            }
            tasks.spawn(reset_kind(client.clone(), resource));
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a reset task panicked")??;
    }
    Ok(())
}

/// Deletes every object of one kind that [`reset`] removes.
async fn reset_kind(client: Client, resource: kube::api::ApiResource) -> anyhow::Result<()> {
    use kube::api::{DeleteParams, DynamicObject, ListParams, PropagationPolicy};
    let delete = DeleteParams {
        grace_period_seconds: Some(0),
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let objects = all
        .list_metadata(&ListParams::default())
        .await
        .with_context(|| format!("listing {}", resource.plural))?;
    for object in objects.items {
        let meta = object.metadata;
        let Some(name) = meta.name else { continue };
        let namespace = meta.namespace;
        if let Some(ns) = namespace.as_deref()
            && (SYSTEM_NAMESPACES.contains(&ns) || (ns == "default" && name == "kubernetes"))
        {
            continue;
        }
        if meta.labels.as_ref().is_some_and(|l| l.contains_key("kubernetes.io/bootstrapping")) {
            continue;
        }
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        if meta.finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
            let patch = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
        }
        match api.delete(&name, &delete).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            // Kinds that list but refuse deletes of some objects (the API server's own): what
            // stays cannot have been left by a test.
            Err(kube::Error::Api(e)) if e.code == 405 || e.code == 403 => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "deleting {} {}{name}",
                        resource.kind,
                        namespace.map(|n| format!("{n}/")).unwrap_or_default()
                    )
                });
            }
        }
    }
    Ok(())
}
