//! Where the environment keeps its builds, virtualenv and run directories.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
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
