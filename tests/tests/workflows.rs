//! The release pipeline in `.github/workflows/`, linted with actionlint (built from its Go module
//! by provisioning, `tests/go/actionlint`), and kept in step with what the tests use.

use std::{fs, path::PathBuf, process::Command};

use chaperone_tests::{
    paths,
    provision::{ACTIONLINT, HELM, ensure_go_program, required_version},
};

fn workflows() -> Vec<PathBuf> {
    let dir = paths::workspace_root().join(".github/workflows");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect(".github/workflows")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml" || ext == "yaml"))
        .collect();
    files.sort();
    files
}

fn actionlint(files: &[PathBuf]) -> std::process::Output {
    let actionlint = ensure_go_program(ACTIONLINT).expect("actionlint is provisioned");
    Command::new(actionlint)
        .arg("-no-color")
        .args(files)
        .current_dir(paths::workspace_root())
        .output()
        .expect("running actionlint")
}

#[test]
fn the_workflows_lint_clean() {
    let files = workflows();
    assert!(
        files.iter().any(|file| file.ends_with("release.yml")),
        "no release workflow in {files:?}"
    );
    let output = actionlint(&files);
    assert!(
        output.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn actionlint_refuses_a_broken_workflow() {
    let dir = paths::runs_dir().join(format!("actionlint-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yml");
    fs::write(
        &broken,
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nonexistent_context_key }}\n        shell: bash\n    needs: missing-job\n",
    )
    .unwrap();
    let output = actionlint(std::slice::from_ref(&broken));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    fs::remove_dir_all(&dir).unwrap();
    assert!(!output.status.success(), "actionlint passed a broken workflow");
    assert!(stdout.contains("missing-job"), "{stdout}");
}

#[test]
fn the_release_pipeline_uses_the_helm_version_the_chart_is_tested_with() {
    let go_mod = fs::read_to_string(paths::workspace_root().join("tests/go/helm/go.mod")).unwrap();
    let tested = required_version(&go_mod, HELM.upstream).expect("helm's version");
    let release =
        fs::read_to_string(paths::workspace_root().join(".github/workflows/release.yml")).unwrap();
    assert!(
        release.contains(&format!("version: {tested}")),
        "release.yml's setup-helm does not pin {tested} (tests/go/helm/go.mod)"
    );
}
