//! Where the environment keeps its builds, virtualenv and run directories.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding the top-level Cargo.toml): the parent of the running
/// package's folder. `cargo test` and `cargo run` set `CARGO_MANIFEST_DIR` for the process (and
/// the processes it starts inherit it); the compile-time value is only a fallback, since a target
/// directory shared by several clones may hold a build made in another one.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` when set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        _ => workspace_root().join("target"),
    }
}

/// Root of everything the local environment builds and runs: `<target>/chaperone-env`.
pub fn env_root() -> PathBuf {
    target_dir().join("chaperone-env")
}

/// Cached builds and installs, keyed by version.
pub fn cache_dir() -> PathBuf {
    env_root().join("cache")
}

/// Per-run state (certificates, etcd data, logs) of environments started by this machine.
pub fn runs_dir() -> PathBuf {
    env_root().join("runs")
}

/// A binary of this workspace (`target/debug/<bin>`), built with cargo if it is not there yet.
pub fn workspace_binary(package: &str, bin: &str) -> std::io::Result<PathBuf> {
    let path = target_dir().join("debug").join(bin);
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--package", package, "--bin", bin])
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("cargo build of {bin} failed ({status})")));
        }
    }
    Ok(path)
}
