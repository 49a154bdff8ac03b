//! The peers measured beside the gateway, installed from their registries into the target
//! directory: aws-sigv4-proxy (a Go module, `go install`) and mitmproxy (PyPI, in a virtualenv,
//! run as a reverse proxy writing its flows to disk). A peer that cannot be installed is reported
//! with the installer's own error and the benchmark goes on without it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The Go module of aws-sigv4-proxy.
pub const SIGV4_PROXY_MODULE: &str = "github.com/awslabs/aws-sigv4-proxy";
/// The mitmproxy release installed (the newest on PyPI; it needs Python 3.12 or later).
pub const MITMPROXY_VERSION: &str = "12.3.1";

/// A peer's executable, or why there is none.
pub type Installed = Result<PathBuf, String>;

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// `go install <module>@latest` into `<dir>/go` (its own GOPATH and module cache); once
/// installed, the binary is reused.
pub fn install_sigv4_proxy(dir: &Path) -> Installed {
    let gopath = dir.join("go");
    let bin = gopath.join("bin").join("aws-sigv4-proxy");
    if bin.exists() {
        return Ok(bin);
    }
    let output = Command::new("go")
        .args(["install", &format!("{SIGV4_PROXY_MODULE}@latest")])
        .env("GOPATH", &gopath)
        .env("GOBIN", gopath.join("bin"))
        .env("GOMODCACHE", gopath.join("pkg/mod"))
        .env("GOFLAGS", "-modcacherw")
        .output()
        .map_err(|e| format!("running `go install`: {e}"))?;
    if output.status.success() && bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "`go install {SIGV4_PROXY_MODULE}@latest` failed: {}",
            last_lines(&String::from_utf8_lossy(&output.stderr), 3)
        ))
    }
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
