//! Runs the workspace's test binaries in two lanes at once.
//!
//! `cargo test` runs one test binary after another. Most of ours attach to the run's shared
//! environment, and attaching resets it (`chaperone_tests::env::reset`), so those must still run
//! one at a time. The others never touch it: unit tests, and the binaries that build images, run
//! the demo or the bench smoke test on environments of their own. They run in a second lane
//! alongside the first, without the shared environment's variable, so that if one ever did call
//! `LocalEnv::shared()` it would start an environment of its own rather than reset the shared one.
//!
//! Each binary runs as `cargo test` would run it: from its package's folder, with the package's
//! `CARGO_*` variables. Doc tests run last in the second lane (`cargo test --doc`).

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::Instant,
};

use anyhow::{Context, bail};

use crate::{TestTotals, add_result_line, cargo};

/// Integration-test targets that never attach to the shared environment (they build their own
/// or need none). Unit-test targets (`lib`, `bin`) never do either.
const OWN_ENVIRONMENT_TARGETS: &[&str] =
    &["images", "demo", "bench_smoke", "workflows", "chart_crds_match_types"];

/// One test executable cargo built.
#[derive(Clone, Debug)]
pub struct TestBinary {
    package: String,
    version: String,
    /// e.g. `unittests src/lib.rs` or `tests/images.rs`, as cargo prints it.
    label: String,
    kind: String,
    name: String,
    manifest_dir: PathBuf,
    executable: PathBuf,
    /// This build's `chaperone-env`, given to the test as `CHAPERONE_ENV_BIN` so that tests
    /// running its client sessions use it rather than building it again (`clients.rs`).
    chaperone_env: PathBuf,
}

impl TestBinary {
    /// Whether this binary may attach to the shared environment.
    fn uses_shared_environment(&self) -> bool {
        let unit = self.kind == "lib" || self.kind == "bin" || self.kind == "proc-macro";
        !unit && !OWN_ENVIRONMENT_TARGETS.contains(&self.name.as_str())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.executable);
        command
            .current_dir(&self.manifest_dir)
            .env("CARGO_MANIFEST_DIR", &self.manifest_dir)
            .env("CARGO_PKG_NAME", &self.package)
            .env("CARGO_PKG_VERSION", &self.version)
            .env("CARGO_CRATE_NAME", self.name.replace('-', "_"))
            .env("CHAPERONE_ENV_BIN", &self.chaperone_env);
        command
    }
}

/// What `cargo test --workspace --no-run` built: the test executables, and the local
/// environment's command line (`chaperone-env`), which cargo builds alongside because
/// chaperone-tests has integration tests. Using that build, rather than `cargo run -p
/// chaperone-tests`, spares a second compilation of the workspace with another feature set.
pub struct TestBuild {
    pub binaries: Vec<TestBinary>,
    pub chaperone_env: PathBuf,
}

/// Builds every test target of the workspace (`cargo test --no-run`) and lists the executables.
pub fn build() -> anyhow::Result<TestBuild> {
    println!("==> build the tests (cargo test --workspace --no-run)");
    let started = Instant::now();
    let output = cargo()
        .args(["test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !output.status.success() {
        bail!("building the tests failed ({})", output.status);
    }
    let mut binaries = Vec::new();
    let mut chaperone_env = None;
    for line in output.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if message["profile"]["test"] != true {
            if message["target"]["name"] == "chaperone-env" && message["target"]["kind"][0] == "bin"
            {
                chaperone_env = message["executable"].as_str().map(PathBuf::from);
            }
            continue;
        }
        let Some(executable) = message["executable"].as_str() else { continue };
        let target = &message["target"];
        let kind = target["kind"][0].as_str().unwrap_or_default().to_owned();
        let name = target["name"].as_str().unwrap_or_default().to_owned();
        let manifest = PathBuf::from(message["manifest_path"].as_str().unwrap_or_default());
        let manifest_dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
        let source = PathBuf::from(target["src_path"].as_str().unwrap_or_default());
        let relative = source.strip_prefix(&manifest_dir).unwrap_or(&source).display().to_string();
        let label = if kind == "test" { relative } else { format!("unittests {relative}") };
        // package_id: "path+file:///…/gateway#chaperone-gateway@0.1.0" (or "…#0.1.0").
        let id = message["package_id"].as_str().unwrap_or_default();
        let after_hash = id.rsplit('#').next().unwrap_or_default();
        let (package, version) = match after_hash.split_once('@') {
            Some((package, version)) => (package.to_owned(), version.to_owned()),
            None => (
                manifest_dir.file_name().map(|n| n.to_string_lossy().into()).unwrap_or_default(),
                after_hash.to_owned(),
            ),
        };
        binaries.push(TestBinary {
            package,
            version,
            label,
            kind,
            name,
            manifest_dir,
            executable: executable.into(),
            chaperone_env: PathBuf::new(),
        });
    }
    binaries.sort_by(|a, b| (&a.package, &a.label).cmp(&(&b.package, &b.label)));
    println!(
        "==> build the tests: ok in {:.0} s ({} test binaries)",
        started.elapsed().as_secs_f64(),
        binaries.len()
    );
    let chaperone_env = chaperone_env
        .context("cargo test --no-run built no chaperone-env binary (package chaperone-tests)")?;
    for binary in &mut binaries {
        binary.chaperone_env.clone_from(&chaperone_env);
    }
    Ok(TestBuild { binaries, chaperone_env })
}

/// What one lane saw.
#[derive(Default)]
struct LaneResult {
    totals: TestTotals,
    failed: Vec<String>,
}

/// Runs the binaries in the two lanes, `env_var=description` given to the shared lane only, and
/// the doc tests at the end of the other lane.
pub fn run(
    binaries: &[TestBinary],
    env_var: &str,
    description: &Path,
) -> anyhow::Result<TestTotals> {
    println!("==> run the tests (two lanes: the shared environment's, and the rest alongside)");
    let started = Instant::now();
    let (shared, own): (Vec<&TestBinary>, Vec<&TestBinary>) =
        binaries.iter().partition(|b| b.uses_shared_environment());
    let output = Mutex::new(());
    let (shared_result, own_result) = std::thread::scope(|scope| {
        let own_lane = scope.spawn(|| run_own_lane(&own, &output));
        let shared_result = run_shared_lane(&shared, env_var, description, &output);
        let own_result = own_lane.join().unwrap_or_else(|_| {
            let mut result = LaneResult::default();
            result.failed.push("the second lane's thread panicked".into());
            result
        });
        (shared_result, own_result)
    });
    let mut totals = TestTotals::default();
    let mut failed = BTreeSet::new();
    for result in [shared_result, own_result] {
        totals.passed += result.totals.passed;
        totals.failed += result.totals.failed;
        totals.ignored += result.totals.ignored;
        failed.extend(result.failed);
    }
    totals.success = failed.is_empty();
    for name in &failed {
        println!("FAILED: {name}");
    }
    println!(
        "==> run the tests: {} in {:.0} s",
        if totals.success { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(totals)
}

/// One binary after another, its output streamed as it comes.
fn run_shared_lane(
    binaries: &[&TestBinary],
    env_var: &str,
    description: &Path,
    output: &Mutex<()>,
) -> LaneResult {
    let mut result = LaneResult::default();
    for binary in binaries {
        let started = Instant::now();
        say(output, &format!("     Running {} ({})", binary.label, binary.executable.display()));
        let mut command = binary.command();
        command.env(env_var, description).stdout(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                result.failed.push(format!("{} {}: {e}", binary.package, binary.label));
                continue;
            }
        };
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                say(output, &line);
                add_result_line(&mut result.totals, &line);
            }
        }
        let ok = child.wait().is_ok_and(|s| s.success());
        if !ok {
            result.failed.push(format!("{} {}", binary.package, binary.label));
        }
        say(output, &format!("     ({} {}: {:.1} s)", binary.package, binary.label, secs(started)));
    }
    result
}

/// One binary after another, each one's output printed whole when it ends; then the doc tests.
fn run_own_lane(binaries: &[&TestBinary], output: &Mutex<()>) -> LaneResult {
    let mut result = LaneResult::default();
    let mut commands: Vec<(String, Command)> = binaries
        .iter()
        .map(|b| (format!("{} {} ({})", b.package, b.label, b.executable.display()), b.command()))
        .collect();
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    commands.push(("doc tests (cargo test --workspace --doc)".to_owned(), doc));
    for (name, mut command) in commands {
        let started = Instant::now();
        let ran = command.stdin(Stdio::null()).output();
        let (ok, text) = match ran {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                (out.status.success(), text)
            }
            Err(e) => (false, format!("could not run it: {e}")),
        };
        for line in text.lines() {
            add_result_line(&mut result.totals, line);
        }
        if !ok {
            result.failed.push(name.clone());
        }
        let _guard = output.lock().unwrap_or_else(|e| e.into_inner());
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "     Ran alongside: {name}, {:.1} s", secs(started));
        let _ = write!(stdout, "{text}");
        let _ = stdout.flush();
    }
    result
}

fn say(output: &Mutex<()>, line: &str) {
    let _guard = output.lock().unwrap_or_else(|e| e.into_inner());
    println!("{line}");
}

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}
