//! Builds and installs what the environment needs, once, cached by version under the target dir.
//!
//! - `kube-apiserver` and `etcd` are built with `go build` from the wrapper modules in `tests/go/`,
//!   and so are `helm` and `kubeconform` (commands named in their wrappers' `tool` directives),
//!   the AWS SDK for Go v2 session program the end-to-end tests run and actionlint (the workflow
//!   linter); the cache key is the pinned upstream version plus a hash of the wrapper's files.
//! - The Debian packages of the images (`containers/debian-packages.txt`) are fetched with
//!   `apt-get download`, cached by name, version and architecture.
//! - moto's server, the AWS CLI and boto3 go into a virtualenv keyed by the hash of
//!   `tests/python/requirements.txt`.
//! - The AWS SDK for JavaScript v3 is installed with `npm ci` into a folder keyed by the hash of
//!   `tests/node/package.json` and `tests/node/package-lock.json`.
//!
//! Concurrent callers (parallel test binaries) serialize on a lock file; the first one builds while
//! the others wait, and everyone prints progress while they wait.

use std::{
    fs::{self, File},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::{aws::scrub_aws_env, paths};

/// A Go program built from a wrapper module in `tests/go/`.
#[derive(Debug, Clone, Copy)]
pub struct GoProgram {
    /// Binary name.
    pub name: &'static str,
    /// Wrapper module directory, relative to `tests/go/`.
    pub module: &'static str,
    /// The upstream module whose required version names the build.
    pub upstream: &'static str,
    /// Whether to stamp the Kubernetes version into the binary (`k8s.io/component-base/version`).
    pub kubernetes_version_stamp: bool,
    /// The package `go build` builds: `.` for a wrapper with its own `main.go`, or the import path
    /// of a command the wrapper's go.mod names in a `tool` directive.
    pub package: &'static str,
}

/// kube-apiserver from `k8s.io/kubernetes`.
pub const KUBE_APISERVER: GoProgram = GoProgram {
    name: "kube-apiserver",
    module: "kube-apiserver",
    upstream: "k8s.io/kubernetes",
    kubernetes_version_stamp: true,
    package: ".",
};

/// kubectl from the published `k8s.io/kubectl` module (`tests/go/kubectl/main.go`), so that
/// tests run `kubectl get` against the local API server as a user would (the audit API's Table).
/// Its version is the module's (`v0.x.y` for Kubernetes `v1.x.y`), not stamped.
pub const KUBECTL: GoProgram = GoProgram {
    name: "kubectl",
    module: "kubectl",
    upstream: "k8s.io/kubectl",
    kubernetes_version_stamp: false,
    package: ".",
};

/// etcd from `go.etcd.io/etcd/server/v3`.
pub const ETCD: GoProgram = GoProgram {
    name: "etcd",
    module: "etcd",
    upstream: "go.etcd.io/etcd/server/v3",
    kubernetes_version_stamp: false,
    package: ".",
};

/// helm, for rendering and linting the chart.
pub const HELM: GoProgram = GoProgram {
    name: "helm",
    module: "helm",
    upstream: "helm.sh/helm/v3",
    kubernetes_version_stamp: false,
    package: "helm.sh/helm/v3/cmd/helm",
};

/// kubeconform, for validating the rendered chart against the API server's schemas.
pub const KUBECONFORM: GoProgram = GoProgram {
    name: "kubeconform",
    module: "kubeconform",
    upstream: "github.com/yannh/kubeconform",
    kubernetes_version_stamp: false,
    package: "github.com/yannh/kubeconform/cmd/kubeconform",
};

/// A session with the AWS SDK for Go v2 (`tests/go/aws-sdk-go-v2/main.go`), an end-to-end client.
pub const AWS_SDK_GO_V2_SESSION: GoProgram = GoProgram {
    name: "aws-sdk-go-v2-session",
    module: "aws-sdk-go-v2",
    upstream: "github.com/aws/aws-sdk-go-v2",
    kubernetes_version_stamp: false,
    package: ".",
};

/// actionlint, for linting the release pipeline in `.github/workflows/`.
pub const ACTIONLINT: GoProgram = GoProgram {
    name: "actionlint",
    module: "actionlint",
    upstream: "github.com/rhysd/actionlint",
    kubernetes_version_stamp: false,
    package: "github.com/rhysd/actionlint/cmd/actionlint",
};

/// The version of `upstream` that a wrapper module's go.mod requires.
pub fn required_version(go_mod: &str, upstream: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let (module, version) = if first == "require" {
            (words.next()?, words.next()?)
        } else {
            (first, words.next()?)
        };
        (module == upstream && version.starts_with('v')).then(|| version.to_owned())
    })
}

fn hash_files(files: &[PathBuf]) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    for file in files {
        if file.exists() {
            hasher.update(fs::read(file).with_context(|| format!("reading {}", file.display()))?);
        }
        hasher.update([0u8]);
    }
    Ok(hex::encode(&hasher.finalize()[..6]))
}

/// Holds an exclusive `flock` on a file until dropped.
struct FileLock {
    _file: File,
}

impl FileLock {
    fn acquire(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = File::options().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("could not lock {}: {}", path.display(), std::io::Error::last_os_error());
        }
        Ok(Self { _file: file })
    }
}

/// Prints "still <what> (N s)" every 20 s until dropped, so long provisioning is never silent.
struct Ticker(Arc<AtomicBool>);

impl Ticker {
    fn start(what: String) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if last.elapsed() >= Duration::from_secs(20) {
                    last = Instant::now();
                    eprintln!("chaperone-env: still {what} ({} s)", started.elapsed().as_secs());
                }
            }
        });
        Self(done)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Builds `program` unless a build of the same version and wrapper is cached; returns its path.
pub fn ensure_go_program(program: GoProgram) -> anyhow::Result<PathBuf> {
    let module_dir = paths::workspace_root().join("tests/go").join(program.module);
    let go_mod = fs::read_to_string(module_dir.join("go.mod"))
        .with_context(|| format!("reading {}/go.mod", module_dir.display()))?;
    let version = required_version(&go_mod, program.upstream).with_context(|| {
        format!("{}/go.mod does not require {}", module_dir.display(), program.upstream)
    })?;
    let mut inputs = vec![module_dir.join("go.mod"), module_dir.join("go.sum")];
    if program.package == "." {
        inputs.push(module_dir.join("main.go"));
    }
    let key = hash_files(&inputs)?;
    let bin_dir = paths::cache_dir().join("bin");
    let binary = bin_dir.join(format!("{}-{version}-{key}", program.name));
    if binary.exists() {
        return Ok(binary);
    }
    let _lock = FileLock::acquire(&paths::cache_dir().join("locks").join(program.name))?;
    if binary.exists() {
        return Ok(binary);
    }
    let go = which("go").context(
        "the Go toolchain is needed to build the local control plane: install Go 1.24 or later and put `go` on PATH",
    )?;
    eprintln!(
        "chaperone-env: building {} {version} from Go modules (once; cached at {})",
        program.name,
        binary.display()
    );
    let started = Instant::now();
    let _ticker = Ticker::start(format!("building {} {version}", program.name));
    let mut ldflags = String::from("-s -w");
    if program.kubernetes_version_stamp {
        let minor = version.trim_start_matches('v').split('.').nth(1).unwrap_or("0").to_owned();
        ldflags.push_str(&format!(
            " -X k8s.io/component-base/version.gitVersion={version} \
             -X k8s.io/component-base/version.gitMajor=1 \
             -X k8s.io/component-base/version.gitMinor={minor} \
             -X k8s.io/component-base/version.gitTreeState=clean"
        ));
    }
    if program.name == "helm" {
        ldflags.push_str(&format!(" -X helm.sh/helm/v3/internal/version.version={version}"));
    }
    fs::create_dir_all(&bin_dir)?;
    let partial = bin_dir.join(format!(".{}-{version}-{key}.partial", program.name));
    let output = Command::new(go)
        .current_dir(&module_dir)
        .args(["build", "-trimpath", "-ldflags", &ldflags, "-o"])
        .arg(&partial)
        .arg(program.package)
        .output()
        .with_context(|| format!("running go build in {}", module_dir.display()))?;
    if !output.status.success() {
        bail!(
            "go build of {} {version} failed in {}:\n{}",
            program.name,
            module_dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    fs::rename(&partial, &binary)?;
    eprintln!(
        "chaperone-env: built {} {version} in {} s",
        program.name,
        started.elapsed().as_secs()
    );
    Ok(binary)
}

/// The Python virtualenv with moto's server, the AWS CLI and boto3.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The virtualenv's root.
    pub root: PathBuf,
}

impl PythonEnv {
    /// A program in the virtualenv's `bin/`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }

    /// The virtualenv's Python interpreter.
    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }

    /// The AWS CLI (v1) installed in the virtualenv.
    pub fn aws_cli(&self) -> PathBuf {
        self.bin("aws")
    }
}

/// Installs the pinned Python requirements into a cached virtualenv unless it is already there.
pub fn ensure_python_env() -> anyhow::Result<PythonEnv> {
    let requirements = paths::workspace_root().join("tests/python/requirements.txt");
    let key = hash_files(std::slice::from_ref(&requirements))?;
    let root = paths::cache_dir().join(format!("venv-{key}"));
    let marker = root.join(".chaperone-complete");
    if marker.exists() {
        return Ok(PythonEnv { root });
    }
    let _lock = FileLock::acquire(&paths::cache_dir().join("locks").join("venv"))?;
    if marker.exists() {
        return Ok(PythonEnv { root });
    }
    let python = which("python3").context(
        "Python 3.9 or later is needed for moto and the AWS CLI: install python3 (with venv) and put it on PATH",
    )?;
    eprintln!(
        "chaperone-env: installing moto, the AWS CLI and boto3 into {} (once)",
        root.display()
    );
    let started = Instant::now();
    let _ticker = Ticker::start("installing Python packages".into());
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    run(Command::new(python).args(["-m", "venv"]).arg(&root), "python3 -m venv")?;
    run(
        Command::new(root.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--no-input", "--quiet", "-r"])
            .arg(&requirements),
        "pip install -r tests/python/requirements.txt",
    )?;
    fs::write(&marker, b"ok\n")?;
    eprintln!("chaperone-env: Python packages installed in {} s", started.elapsed().as_secs());
    Ok(PythonEnv { root })
}

/// The AWS SDK for JavaScript v3 as pinned by `tests/node/package-lock.json`, installed with `npm ci`.
#[derive(Debug, Clone)]
pub struct NodeEnv {
    /// The install folder: a copy of `package.json` and the lock file, and `node_modules/`.
    pub root: PathBuf,
    node: PathBuf,
}

impl NodeEnv {
    /// `node <script>` for a script in `tests/node/` (or at an absolute path), with no `AWS_*`
    /// variable inherited from the caller: the test sets what the agent would have.
    ///
    /// Node resolves an ES module's imports from the script's own folder and ignores `NODE_PATH`,
    /// so the script runs from a copy beside the installed `node_modules/` (named by its content's
    /// hash, so concurrent tests never see a half-written copy). `NODE_PATH` is set as well, for
    /// CommonJS scripts, and the working directory is the install folder. The instance metadata
    /// service is disabled (`AWS_EC2_METADATA_DISABLED=true`): a session without credentials fails
    /// at once instead of reaching for a link-local address; a test may set it otherwise.
    pub fn command(&self, script: impl AsRef<Path>) -> anyhow::Result<Command> {
        let source = paths::workspace_root().join("tests/node").join(script.as_ref());
        let name = source
            .file_name()
            .with_context(|| format!("{} does not name a script file", source.display()))?
            .to_string_lossy()
            .into_owned();
        let key = hash_files(std::slice::from_ref(&source))?;
        let scripts = self.root.join("scripts");
        let copy = scripts.join(format!("{key}-{name}"));
        if !copy.exists() {
            fs::create_dir_all(&scripts)?;
            // A name of its own for each copy in flight: tests of one binary copy concurrently.
            static COPIES: AtomicU64 = AtomicU64::new(0);
            let partial = scripts.join(format!(
                ".{key}-{name}.{}-{}.partial",
                std::process::id(),
                COPIES.fetch_add(1, Ordering::Relaxed)
            ));
            fs::copy(&source, &partial).with_context(|| {
                format!("copying {} into {}", source.display(), scripts.display())
            })?;
            fs::rename(&partial, &copy)
                .with_context(|| format!("moving {} to {}", partial.display(), copy.display()))?;
        }
        let mut command = Command::new(&self.node);
        command.arg(copy).current_dir(&self.root).env("NODE_PATH", self.root.join("node_modules"));
        scrub_aws_env(&mut command);
        command.env("AWS_EC2_METADATA_DISABLED", "true");
        Ok(command)
    }
}

/// The oldest Node.js major version the pinned SDK supports (its `engines` field).
const NODE_MIN_MAJOR: u32 = 20;

/// The major version in `node --version`'s output (`v20.11.1`).
pub fn node_major_version(output: &str) -> Option<u32> {
    output.trim().strip_prefix('v')?.split('.').next()?.parse().ok()
}

/// Installs the pinned AWS SDK for JavaScript with `npm ci` into a cached folder unless it is
/// already there.
pub fn ensure_node_env() -> anyhow::Result<NodeEnv> {
    let package_dir = paths::workspace_root().join("tests/node");
    let manifest = package_dir.join("package.json");
    let lock = package_dir.join("package-lock.json");
    let missing = "Node.js 20 or later with npm is needed to run the AWS SDK for JavaScript: \
                   install nodejs and npm and put `node` and `npm` on PATH";
    let node = which("node").context(missing)?;
    let npm = which("npm").context(missing)?;
    let key = hash_files(&[manifest.clone(), lock.clone()])?;
    let root = paths::cache_dir().join(format!("node-{key}"));
    let marker = root.join(".chaperone-complete");
    if marker.exists() {
        return Ok(NodeEnv { root, node });
    }
    let _lock = FileLock::acquire(&paths::cache_dir().join("locks").join("node"))?;
    if marker.exists() {
        return Ok(NodeEnv { root, node });
    }
    let version =
        Command::new(&node).arg("--version").output().context("running node --version")?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    match node_major_version(&version) {
        Some(major) if major >= NODE_MIN_MAJOR => {}
        _ => bail!("{} is Node.js {version:?}; {missing}", node.display()),
    }
    eprintln!(
        "chaperone-env: installing the AWS SDK for JavaScript into {} (once)",
        root.display()
    );
    let started = Instant::now();
    let _ticker = Ticker::start("installing npm packages".into());
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    fs::create_dir_all(&root)?;
    for file in [&manifest, &lock] {
        if let Some(name) = file.file_name() {
            fs::copy(file, root.join(name))
                .with_context(|| format!("copying {} into {}", file.display(), root.display()))?;
        }
    }
    run(
        Command::new(npm).current_dir(&root).args(["ci", "--no-audit", "--no-fund"]),
        "npm ci (tests/node/package-lock.json)",
    )?;
    fs::write(&marker, b"ok\n")?;
    eprintln!("chaperone-env: npm packages installed in {} s", started.elapsed().as_secs());
    Ok(NodeEnv { root, node })
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// A headless browser and its WebDriver server, for the console's end-to-end test.
#[derive(Debug, Clone)]
pub struct Chromium {
    /// The browser binary.
    pub browser: PathBuf,
    /// chromedriver, the WebDriver server that drives it.
    pub driver: PathBuf,
}

/// Debian's packages of the browser and its driver.
const CHROMIUM_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// Chromium and chromedriver: from PATH when both are there; else installed with
/// `apt-get install --no-install-recommends chromium chromium-driver` when running as root (once:
/// the next call finds them on PATH); else an error naming what to install.
pub fn ensure_chromium() -> anyhow::Result<Chromium> {
    if let Some(found) = chromium_on_path() {
        return Ok(found);
    }
    let _lock = FileLock::acquire(&paths::cache_dir().join("locks").join("chromium"))?;
    if let Some(found) = chromium_on_path() {
        return Ok(found);
    }
    let install =
        format!("apt-get install -y --no-install-recommends {}", CHROMIUM_PACKAGES.join(" "));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(apt_get) = which("apt-get").filter(|_| root) else {
        bail!(
            "the console's browser test needs Chromium and chromedriver on PATH: install them \
             (Debian/Ubuntu as root: `{install}`; elsewhere your distribution's chromium and \
             chromedriver packages) and run the test again"
        );
    };
    eprintln!("chaperone-env: installing {} with apt-get (once)", CHROMIUM_PACKAGES.join(" "));
    let started = Instant::now();
    let _ticker = Ticker::start("installing chromium".to_owned());
    run(
        Command::new(&apt_get).args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get update",
    )?;
    run(
        Command::new(&apt_get)
            .args(["install", "-y", "--no-install-recommends"])
            .args(CHROMIUM_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &install,
    )?;
    eprintln!("chaperone-env: chromium installed in {} s", started.elapsed().as_secs());
    chromium_on_path().with_context(|| {
        format!("`{install}` succeeded but chromium or chromedriver is still not on PATH")
    })
}

fn chromium_on_path() -> Option<Chromium> {
    let browser = which("chromium").or_else(|| which("chromium-browser"))?;
    let driver = which("chromedriver")?;
    Some(Chromium { browser, driver })
}

/// Everything the environment needs, provisioned.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The kube-apiserver binary.
    pub kube_apiserver: PathBuf,
    /// The etcd binary.
    pub etcd: PathBuf,
    /// The Python virtualenv.
    pub python: PythonEnv,
    /// The AWS SDK for JavaScript.
    pub node: NodeEnv,
}

/// The tools that render, lint and validate the Helm chart.
#[derive(Debug, Clone)]
pub struct ChartTools {
    /// The helm binary.
    pub helm: PathBuf,
    /// The kubeconform binary.
    pub kubeconform: PathBuf,
    /// helm's cache/config/data home (kept out of the user's own).
    pub home: PathBuf,
    /// The Prometheus Operator's ServiceMonitor CRD, from its Go module, so that the chart's
    /// optional ServiceMonitor is validated against the real schema.
    pub service_monitor_crd: PathBuf,
}

/// The Prometheus Operator release whose ServiceMonitor CRD the chart is validated against.
pub const PROMETHEUS_OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator@v0.85.0";

/// Builds helm and kubeconform and fetches the ServiceMonitor CRD, unless cached.
pub fn ensure_chart_tools() -> anyhow::Result<ChartTools> {
    let helm = ensure_go_program(HELM)?;
    let kubeconform = ensure_go_program(KUBECONFORM)?;
    let home = paths::cache_dir().join("helm-home");
    fs::create_dir_all(&home)?;
    let go = which("go").context("the Go toolchain is needed to fetch the ServiceMonitor CRD")?;
    let output = Command::new(go)
        .args(["mod", "download", "-json", PROMETHEUS_OPERATOR])
        .current_dir(paths::workspace_root().join("tests/go/kubeconform"))
        .output()
        .with_context(|| format!("running go mod download {PROMETHEUS_OPERATOR}"))?;
    if !output.status.success() {
        bail!(
            "go mod download {PROMETHEUS_OPERATOR} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let info: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading go mod download's JSON")?;
    let dir = info["Dir"].as_str().context("go mod download printed no Dir")?;
    let service_monitor_crd = Path::new(dir)
        .join("example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml");
    if !service_monitor_crd.exists() {
        bail!("{} is missing from {PROMETHEUS_OPERATOR}", service_monitor_crd.display());
    }
    Ok(ChartTools { helm, kubeconform, home, service_monitor_crd })
}

/// The `.deb` files of `containers/debian-packages.txt` for `arch` (amd64 or arm64), in pin
/// order, fetched with `apt-get download` once and cached under `<cache>/debs/` by name, version
/// and architecture. A package of another architecture than this machine's needs that
/// architecture added to dpkg first (`dpkg --add-architecture arm64 && apt-get update`).
pub fn ensure_debian_packages(arch: &str) -> anyhow::Result<Vec<PathBuf>> {
    let pin_file = crate::images::pin_file();
    let text =
        fs::read_to_string(&pin_file).with_context(|| format!("reading {}", pin_file.display()))?;
    let pins =
        crate::images::parse_pins(&text).with_context(|| format!("in {}", pin_file.display()))?;
    let dir = paths::cache_dir().join("debs");
    let file_name = |pin: &crate::images::DebianPin| {
        let arch = if pin.arch_all { "all" } else { arch };
        format!("{}_{}_{arch}.deb", pin.name, pin.version.replace(':', "%3a"))
    };
    if pins.iter().all(|pin| dir.join(file_name(pin)).exists()) {
        return Ok(pins.iter().map(|pin| dir.join(file_name(pin))).collect());
    }
    let _lock = FileLock::acquire(&paths::cache_dir().join("locks").join("debs"))?;
    let apt_get = which("apt-get").context(
        "apt-get is needed to fetch the images' pinned Debian packages: build the images on \
         Debian or in a debian:bookworm container (docs/images.md)",
    )?;
    let mut debs = Vec::new();
    for pin in &pins {
        let deb = dir.join(file_name(pin));
        if !deb.exists() {
            let work = dir.join(format!(".download-{}", std::process::id()));
            if work.exists() {
                fs::remove_dir_all(&work)?;
            }
            fs::create_dir_all(&work)?;
            let spec = if pin.arch_all {
                format!("{}={}", pin.name, pin.version)
            } else {
                format!("{}:{arch}={}", pin.name, pin.version)
            };
            eprintln!("chaperone-env: apt-get download {spec} (once; cached in {})", dir.display());
            let output = Command::new(&apt_get)
                .current_dir(&work)
                .args(["download", "--quiet", &spec])
                .output()
                .with_context(|| format!("running apt-get download {spec}"))?;
            if !output.status.success() {
                bail!(
                    "apt-get download {spec} failed: {}\nIf apt has no package lists, run \
                     `apt-get update` first; if the version has left the Debian mirror, update \
                     {} (docs/images.md explains how)",
                    String::from_utf8_lossy(&output.stderr).trim(),
                    pin_file.display()
                );
            }
            let downloaded = fs::read_dir(&work)?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
                .with_context(|| format!("apt-get download {spec} wrote no .deb"))?;
            fs::rename(&downloaded, &deb)?;
            fs::remove_dir_all(&work)?;
        }
        debs.push(deb);
    }
    Ok(debs)
}

/// The oldest tools the project builds with (README.md, Requirements).
pub const RUST_MIN: (u32, u32) = (1, 90);
/// Go: the wrapper modules in `tests/go/` say `go 1.26`.
pub const GO_MIN: (u32, u32) = (1, 26);
/// Python: moto, the AWS CLI and boto3 as pinned.
pub const PYTHON_MIN: (u32, u32) = (3, 9);

/// `(major, minor)` of the first `N.N` in `text` after `prefix` (`rustc 1.95.0 (...)`,
/// `go version go1.26.8 linux/amd64`, `Python 3.12.1`).
pub fn version_after(text: &str, prefix: &str) -> Option<(u32, u32)> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let mut numbers = rest.split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some((major, minor))
}

/// Checks that each tool of README.md's Requirements is on PATH and new enough; returns one line
/// per tool found, or an error listing every missing or old tool with what to install.
pub fn check_toolchain() -> anyhow::Result<Vec<String>> {
    check_toolchain_in(&std::env::var_os("PATH").unwrap_or_default())
}

/// [`check_toolchain`] with the programs looked up in `path` (a PATH-style list of folders).
pub fn check_toolchain_in(path: &std::ffi::OsStr) -> anyhow::Result<Vec<String>> {
    let which = |program: &str| {
        std::env::split_paths(path).map(|dir| dir.join(program)).find(|c| c.is_file())
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut check = |program: &str, args: &[&str], prefix: &str, min: (u32, u32), install: &str| {
        let Some(path) = which(program) else {
            problems.push(format!("{program} is not on PATH: {install}"));
            return;
        };
        let output = Command::new(&path).args(args).output();
        let text = match &output {
            Ok(output) => format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => {
                problems.push(format!("{} {}: {e}", path.display(), args.join(" ")));
                return;
            }
        };
        match version_after(&text, prefix) {
            Some(version) if version >= min => {
                found.push(format!("{program} {}.{} ({})", version.0, version.1, path.display()));
            }
            Some(version) => problems.push(format!(
                "{program} is {}.{}, older than {}.{} ({}): {install}",
                version.0,
                version.1,
                min.0,
                min.1,
                path.display()
            )),
            None => problems.push(format!(
                "could not read {program}'s version from {:?}: {install}",
                text.trim()
            )),
        }
    };
    check(
        "rustc",
        &["--version"],
        "rustc ",
        RUST_MIN,
        "install Rust with rustup (https://rustup.rs) and run `rustup update stable`",
    );
    check(
        "go",
        &["version"],
        "go version go",
        GO_MIN,
        "install Go 1.26 or later from https://go.dev/dl and put its bin/ on PATH",
    );
    check(
        "node",
        &["--version"],
        "v",
        (NODE_MIN_MAJOR, 0),
        "install Node.js 20 or later with npm (https://nodejs.org)",
    );
    check(
        "python3",
        &["-c", "import sys, venv; print('Python %d.%d' % sys.version_info[:2])"],
        "Python ",
        PYTHON_MIN,
        "install Python 3.9 or later with its venv module (Debian/Ubuntu: apt-get install python3-venv)",
    );
    if which("npm").is_none() {
        problems.push("npm is not on PATH: install Node.js 20 or later with npm".into());
    }
    match ["cc", "gcc", "clang"].into_iter().find_map(which) {
        Some(cc) => found.push(format!("C compiler {}", cc.display())),
        None => problems.push(
            "no C compiler (cc, gcc or clang) on PATH: ring and aws-lc-rs compile C; install \
             build-essential (Debian/Ubuntu) or the Xcode command line tools"
                .into(),
        ),
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        bail!("the toolchain is incomplete (README.md, Requirements):\n  {}", problems.join("\n  "))
    }
}

/// Provisions everything (builds run one after the other: the machine has few cores).
pub fn provision_all() -> anyhow::Result<Provisioned> {
    Ok(Provisioned {
        etcd: ensure_go_program(ETCD)?,
        kube_apiserver: ensure_go_program(KUBE_APISERVER)?,
        python: ensure_python_env()?,
        node: ensure_node_env()?,
    })
}

#[cfg(test)]
mod tests {
    use super::{node_major_version, required_version, version_after};

    #[test]
    fn an_old_or_missing_tool_is_named_with_what_to_install() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("chaperone-toolchain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, says) in [
            ("rustc", "rustc 1.95.0 (59807616e 2026-04-14)"),
            ("go", "go version go1.22.5 linux/amd64"),
            ("node", "v18.19.0"),
            ("python3", "Python 3.12"),
            ("cc", ""),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\necho '{says}'\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let error = super::check_toolchain_in(dir.as_os_str()).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("go is 1.22, older than 1.26"), "{error}");
        assert!(error.contains("install Go 1.26 or later"), "{error}");
        assert!(error.contains("node is 18.19, older than 20.0"), "{error}");
        assert!(error.contains("npm is not on PATH"), "{error}");
        assert!(!error.contains("rustc"), "{error}");
        assert!(!error.contains("Python"), "{error}");
        assert!(!error.contains("C compiler"), "{error}");
    }

    #[test]
    fn version_after_reads_the_tools_version_lines() {
        assert_eq!(version_after("rustc 1.95.0 (59807616e 2026-04-14)", "rustc "), Some((1, 95)));
        assert_eq!(
            version_after("go version go1.26.8 linux/amd64", "go version go"),
            Some((1, 26))
        );
        assert_eq!(version_after("go version go1.9 linux/amd64", "go version go"), Some((1, 9)));
        assert_eq!(version_after("Python 3.12\n", "Python "), Some((3, 12)));
        assert_eq!(version_after("v20.20.2\n", "v"), Some((20, 20)));
        assert_eq!(version_after("command not found", "Python "), None);
        // Compared as numbers, not text: 1.9 is older than 1.26.
        assert!(version_after("go version go1.9.2", "go version go").unwrap() < (1, 26));
    }

    #[test]
    fn node_major_version_reads_the_major_of_node_version_output() {
        assert_eq!(node_major_version("v20.20.2\n"), Some(20));
        assert_eq!(node_major_version("v8.1.0"), Some(8));
        assert_eq!(node_major_version("20.1.0"), None);
        assert_eq!(node_major_version(""), None);
    }

    #[test]
    fn required_version_reads_single_and_block_requires() {
        assert_eq!(
            required_version(
                "module x\n\nrequire k8s.io/kubernetes v1.34.4\n",
                "k8s.io/kubernetes"
            )
            .as_deref(),
            Some("v1.34.4")
        );
        let block = "require (\n\tgo.etcd.io/etcd/server/v3 v3.6.6\n\tgithub.com/x/y v1.0.0 // indirect\n)\n";
        assert_eq!(required_version(block, "go.etcd.io/etcd/server/v3").as_deref(), Some("v3.6.6"));
        assert_eq!(required_version(block, "k8s.io/kubernetes"), None);
    }
}
