//! The peers measured beside the gateway: aws-sigv4-proxy (built offline from a source tree or
//! tarball with its `vendor/` folder, or given as a binary) and mitmproxy (PyPI, in a virtualenv,
//! run as a reverse proxy writing its flows to disk). A peer that cannot be installed is reported
//! with the installer's own error and the benchmark goes on without it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Where aws-sigv4-proxy's source is published (docs/benchmarks.md says how to get it).
pub const SIGV4_PROXY_REPOSITORY: &str = "https://github.com/awslabs/aws-sigv4-proxy";
/// The mitmproxy release installed (the newest on PyPI; it needs Python 3.12 or later).
pub const MITMPROXY_VERSION: &str = "12.3.1";

/// A peer's executable, or why there is none.
pub type Installed = Result<PathBuf, String>;

/// Where the aws-sigv4-proxy to measure comes from.
#[derive(Debug, Clone)]
pub enum SigV4ProxyFrom {
    /// A built executable.
    Binary(PathBuf),
    /// Its source: a checkout, or a `.tar.gz` of one, with `vendor/` (built with
    /// `go build -mod=vendor`, no network).
    Source(PathBuf),
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The `go` executable: on PATH, else the official tarball's `/usr/local/go/bin/go`.
fn go_command() -> PathBuf {
    let local = PathBuf::from("/usr/local/go/bin/go");
    let on_path = Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
    if !on_path && local.exists() { local } else { PathBuf::from("go") }
}

/// The folder holding `go.mod` in `root` or one level below (a tarball's top folder).
fn module_root(root: &Path) -> Option<PathBuf> {
    if root.join("go.mod").exists() {
        return Some(root.to_owned());
    }
    std::fs::read_dir(root).ok()?.flatten().map(|e| e.path()).find(|p| p.join("go.mod").exists())
}

/// The aws-sigv4-proxy executable: `from` itself, or built from its source into `dir`
/// (`go build -mod=vendor` with `GOPROXY=off`: offline, from the vendored dependencies only).
/// A build is reused while the source's path, size and modification time are unchanged.
pub fn install_sigv4_proxy(dir: &Path, from: &SigV4ProxyFrom) -> Installed {
    let source = match from {
        SigV4ProxyFrom::Binary(binary) if binary.is_file() => return Ok(binary.clone()),
        SigV4ProxyFrom::Binary(binary) => {
            return Err(format!(
                "--sigv4-proxy-binary {}: no such file; build it from {SIGV4_PROXY_REPOSITORY} \
                 (go build ./cmd/aws-sigv4-proxy) or pass its source with --sigv4-proxy-source",
                binary.display()
            ));
        }
        SigV4ProxyFrom::Source(source) => source,
    };
    let stamp = std::fs::metadata(source)
        .map_err(|e| format!("--sigv4-proxy-source {}: {e}", source.display()))?;
    let stamp = format!(
        "{}|{}|{:?}",
        source.display(),
        stamp.len(),
        stamp.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    );
    let build_dir = dir.join("aws-sigv4-proxy");
    let bin = build_dir.join("aws-sigv4-proxy");
    let stamp_file = build_dir.join("source.stamp");
    if bin.exists() && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(bin);
    }
    let _ = std::fs::remove_dir_all(&build_dir);
    let unpacked = build_dir.join("src");
    std::fs::create_dir_all(&unpacked)
        .map_err(|e| format!("creating {}: {e}", unpacked.display()))?;
    let tree = if source.is_dir() {
        source.clone()
    } else {
        let output = Command::new("tar")
            .arg("-xzf")
            .arg(source)
            .arg("-C")
            .arg(&unpacked)
            .output()
            .map_err(|e| format!("running tar: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "unpacking {} failed (a .tar.gz of aws-sigv4-proxy's source is expected): {}",
                source.display(),
                last_lines(&String::from_utf8_lossy(&output.stderr), 3)
            ));
        }
        unpacked
    };
    let module = module_root(&tree).ok_or_else(|| {
        format!(
            "{} holds no go.mod (aws-sigv4-proxy's source with vendor/ is expected)",
            source.display()
        )
    })?;
    let output = Command::new(go_command())
        .args(["build", "-mod=vendor", "-o"])
        .arg(&bin)
        .arg("./cmd/aws-sigv4-proxy")
        .current_dir(&module)
        .env("GOFLAGS", "-mod=vendor")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .map_err(|e| format!("running `go build` (Go is needed to build aws-sigv4-proxy): {e}"))?;
    if !output.status.success() || !bin.exists() {
        return Err(format!(
            "`go build -mod=vendor ./cmd/aws-sigv4-proxy` in {} failed: {}",
            module.display(),
            last_lines(&String::from_utf8_lossy(&output.stderr), 3)
        ));
    }
    std::fs::write(&stamp_file, stamp)
        .map_err(|e| format!("writing {}: {e}", stamp_file.display()))?;
    Ok(bin)
}

/// A Python of at least 3.12 (mitmproxy 12's floor): on PATH, else one of pyenv's versions.
fn python_312() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> =
        ["python3.13", "python3.12", "python3"].into_iter().map(PathBuf::from).collect();
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(versions) = pyenv.map(|p| p.join("versions")) {
        let mut found: Vec<PathBuf> = std::fs::read_dir(versions)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin").join("python3"))
            .collect();
        found.sort();
        candidates.extend(found.into_iter().rev());
    }
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A virtualenv `<dir>/mitmproxy-venv` with mitmproxy [`MITMPROXY_VERSION`]; returns `mitmdump`.
pub fn install_mitmproxy(dir: &Path) -> Installed {
    let venv = dir.join("mitmproxy-venv");
    let mitmdump = venv.join("bin").join("mitmdump");
    if mitmdump.exists() {
        return Ok(mitmdump);
    }
    let python = python_312().ok_or_else(|| {
        format!(
            "mitmproxy {MITMPROXY_VERSION} needs Python 3.12 or later; none was found on PATH or in pyenv"
        )
    })?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let python_name = python.display().to_string();
    let venv_made = Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("running {python_name} -m venv: {e}"))?;
    if !venv_made.status.success() {
        return Err(format!(
            "{python_name} -m venv failed: {}",
            last_lines(&String::from_utf8_lossy(&venv_made.stderr), 3)
        ));
    }
    let output = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", &format!("mitmproxy=={MITMPROXY_VERSION}")])
        .output()
        .map_err(|e| format!("running pip: {e}"))?;
    if output.status.success() && mitmdump.exists() {
        Ok(mitmdump)
    } else {
        Err(format!(
            "`pip install mitmproxy=={MITMPROXY_VERSION}` failed: {}",
            last_lines(&String::from_utf8_lossy(&output.stderr), 3)
        ))
    }
}

/// `mitmdump` as a reverse proxy to `upstream` on `port`, writing every flow to `flows`.
pub fn mitmdump_command(mitmdump: &Path, upstream: &str, port: u16, flows: &Path) -> Command {
    let mut command = Command::new(mitmdump);
    command
        .arg("--mode")
        .arg(format!("reverse:{upstream}"))
        .args(["--listen-host", "127.0.0.1", "--listen-port", &port.to_string()])
        .arg("-w")
        .arg(flows)
        .args(["--set", "flow_detail=0", "--set", "termlog_verbosity=warn"]);
    command
}

/// `aws-sigv4-proxy` signing for `service` with the credentials in its environment, forwarding
/// to `upstream_host` over plain HTTP.
pub fn sigv4_proxy_command(
    binary: &Path,
    service: &str,
    upstream_host: &str,
    port: u16,
    access_key_id: &str,
    secret_access_key: &str,
) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["--name", service, "--region", "us-east-1", "--host", upstream_host])
        .args(["--sign-host", upstream_host, "--upstream-url-scheme", "http"])
        .arg(format!("--port=127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
        .env("AWS_REGION", "us-east-1");
    command
}
