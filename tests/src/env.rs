//! The whole local environment: control plane plus moto, started once per test binary.

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

use crate::{
    aws::MotoServer,
    control_plane::ControlPlane,
    paths,
    process::print_log_tail,
    provision::{self, Provisioned},
};

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

    /// The environment shared by all tests of this test binary, started on first use.
    ///
    /// Its processes end with the test binary (the kernel kills them when it exits).
    pub fn shared() -> &'static LocalEnv {
        static SHARED: OnceLock<LocalEnv> = OnceLock::new();
        SHARED.get_or_init(|| {
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

    /// The run directory (certificates, data, logs).
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
