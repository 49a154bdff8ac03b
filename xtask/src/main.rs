//! `cargo xtask`: the project's tasks.
//!
//! - `test`: fmt, builds the tests, provisions the local environment, clippy, then unit and
//!   integration tests; the
//!   test binaries that need a cluster share one environment started for the run, one binary at a
//!   time, while the others run alongside (test_runner.rs, docs/local-environment.md).
//! - `crdgen`: writes the CRD YAML into `charts/chaperone/crds/`.
//! - `bench`: builds `chaperone-gateway` and `chaperone-bench` in release mode and runs the
//!   benchmarks (docs/benchmarks.md); `--quick` is a smoke run of seconds. Passes
//!   `--sigv4-proxy-source` a `shared/peers/aws-sigv4-proxy-*.tar.gz` found above the workspace
//!   (a development machine's copy) unless the arguments name an aws-sigv4-proxy.
//! - `demo`: the whole story (see its issue).
//! - `images`: the operator, gateway and CLI images as OCI layouts, built without a container
//!   engine from release binaries and pinned Debian packages (docs/images.md).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod test_runner;

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "Chaperone's project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Provision what is missing, then run cargo fmt --check, clippy -D warnings and every test.
    Test {
        /// Extra arguments passed to `cargo test` (e.g. a test name filter after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_test_args: Vec<String>,
    },
    /// Write the CustomResourceDefinitions into charts/chaperone/crds/.
    Crdgen,
    /// Run the whole story on a local control plane: operator, gateway, an agent's AWS CLI
    /// session with an approved delete-bucket, the recording shown and verified.
    Demo {
        /// Leave everything running; write target/demo/agent.env and target/demo/kubeconfig.
        #[arg(long)]
        keep: bool,
        /// Run the operator, gateway and CLI binaries taken out of the images in DIR (`cargo
        /// xtask images`' output, e.g. target/images) instead of the workspace's debug builds.
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
    },
    /// Build the operator, gateway and CLI images (OCI layouts, no container engine) from
    /// `cargo build --release --locked` binaries and the Debian packages pinned in
    /// containers/debian-packages.txt; writes target/images/<image>/ and target/images/digests.json.
    Images {
        /// Take this machine's binaries from DIR instead of building release binaries (e.g.
        /// target/debug for a quick local check; published images use release builds).
        #[arg(long, value_name = "DIR", conflicts_with = "platforms")]
        binaries: Option<PathBuf>,
        /// `ARCH=DIR`, repeatable: a multi-arch build from binaries built elsewhere (the release
        /// pipeline passes amd64 and arm64).
        #[arg(long = "platform", value_name = "ARCH=DIR")]
        platforms: Vec<String>,
        /// Output folder (default: <target>/images).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Measure the gateway against direct calls and peers; writes docs/benchmarks.md.
    Bench {
        /// A short smoke run (seconds); prints the tables but leaves docs/benchmarks.md alone.
        #[arg(long)]
        quick: bool,
        /// Extra arguments for `chaperone-bench` (see `chaperone-bench --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        bench_args: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    match task {
        Task::Test { cargo_test_args } => test(&cargo_test_args),
        Task::Crdgen => crdgen(),
        Task::Demo { keep, images } => demo(keep, images),
        Task::Bench { quick, bench_args } => bench(quick, &bench_args),
        Task::Images { binaries, platforms, out } => images(binaries, &platforms, out),
    }
}

/// The checkout xtask runs in. `cargo run` (the `cargo xtask` alias) sets `CARGO_MANIFEST_DIR` for
/// the process; the compile-time value is only a fallback, since a target directory shared by
/// several clones may hold an xtask built in another (possibly deleted) one.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// `cargo run` of the local environment's command line (`chaperone-env <subcommand>`).
fn chaperone_env(subcommand: &str) -> Command {
    let mut command = cargo();
    command.args([
        "run",
        "--quiet",
        "--package",
        "chaperone-tests",
        "--bin",
        "chaperone-env",
        "--",
    ]);
    command.arg(subcommand);
    command
}

fn step(name: &str, command: &mut Command) -> anyhow::Result<()> {
    println!("==> {name}");
    let started = Instant::now();
    let status = command.status().with_context(|| format!("running {name}"))?;
    println!(
        "==> {name}: {} in {:.0} s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

fn demo(keep: bool, images: Option<PathBuf>) -> anyhow::Result<()> {
    match &images {
        // The images bring the operator, gateway and CLI; only the environment is built.
        Some(_) => step(
            "build the local environment",
            cargo().args(["build", "--quiet", "--package", "chaperone-tests", "--bins"]),
        )?,
        None => step(
            "build the operator, gateway, kubectl-chaperone and the local environment",
            cargo().args([
                "build",
                "--quiet",
                "--package",
                "chaperone-operator",
                "--package",
                "chaperone-gateway",
                "--package",
                "kubectl-chaperone",
                "--package",
                "chaperone-tests",
                "--bins",
            ]),
        )?,
    }
    let mut command = chaperone_env("demo");
    if keep {
        command.arg("--keep");
    }
    if let Some(images) = images {
        command.arg("--images").arg(images);
    }
    step("demo", &mut command)
}

fn test(cargo_test_args: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    step("cargo fmt --check", cargo().args(["fmt", "--all", "--", "--check"]))?;
    // Without arguments, the test binaries are built first (with them the environment's own
    // command line, run from that build below) and run in two lanes (test_runner.rs); with
    // arguments, `cargo test` runs as given, one binary after another.
    let build = if cargo_test_args.is_empty() { Some(test_runner::build()?) } else { None };
    let env_command = |subcommand: &str| match &build {
        Some(build) => {
            let mut command = Command::new(&build.chaperone_env);
            command.current_dir(workspace_root()).arg(subcommand);
            command
        }
        None => chaperone_env(subcommand),
    };
    step(
        "provision the local environment (kube-apiserver, etcd, moto, AWS CLI)",
        &mut env_command("provision"),
    )?;
    step(
        "cargo clippy -D warnings",
        cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    )?;
    let env = SharedEnv::start(env_command("up"))?;
    let totals = match &build {
        Some(build) => test_runner::run(&build.binaries, TEST_ENV_VAR, env.description()),
        None => cargo_test(
            cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .args(cargo_test_args)
                .env(TEST_ENV_VAR, env.description()),
        ),
    };
    drop(env);
    let totals = totals?;
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if totals.failed > 0 || !totals.success {
        bail!("cargo test failed");
    }
    println!("==> all checks passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The variable naming the shared environment's description (`chaperone_tests::env::ENV_VAR`).
const TEST_ENV_VAR: &str = "CHAPERONE_TEST_ENV";

/// The one local environment (etcd, kube-apiserver, moto) every test binary of `cargo xtask test`
/// attaches to: `chaperone-env up --describe FILE --until-stdin-closes`, stopped when this value
/// is dropped or, if xtask itself dies, when its end of the child's standard input closes.
struct SharedEnv {
    child: std::process::Child,
    description: PathBuf,
}

impl SharedEnv {
    /// Runs `up` (the local environment's command line, however it is to be run).
    fn start(mut up: Command) -> anyhow::Result<Self> {
        println!("==> start the shared local environment");
        let started = Instant::now();
        let dir = target_dir().join("chaperone-env");
        std::fs::create_dir_all(&dir)?;
        let description = dir.join(format!("test-env-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&description);
        let child = up
            .args(["--until-stdin-closes", "--describe"])
            .arg(&description)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("running chaperone-env up")?;
        let mut env = Self { child, description };
        while !env.description.exists() {
            if let Some(status) = env.child.try_wait()? {
                bail!("the local environment did not start (chaperone-env up: {status})");
            }
            if started.elapsed() > std::time::Duration::from_secs(300) {
                bail!("the local environment was not ready within 300 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        println!(
            "==> start the shared local environment: ok in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(env)
    }

    fn description(&self) -> &Path {
        &self.description
    }
}

impl Drop for SharedEnv {
    fn drop(&mut self) {
        // Closing its standard input stops it; it removes the description and its processes.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.description);
    }
}

/// Passed, failed and ignored tests summed over every `test result:` line of `cargo test`.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
    success: bool,
}

/// Adds one `test result: ok. 5 passed; 0 failed; 1 ignored; ...` line to the totals.
fn add_result_line(totals: &mut TestTotals, line: &str) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else { return };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(kind), Some(count)) = (words.next(), words.next()) else { continue };
        let Ok(count) = count.parse::<u64>() else { continue };
        match kind {
            "passed" => totals.passed += count,
            "failed" => totals.failed += count,
            "ignored" => totals.ignored += count,
            _ => {}
        }
    }
}

/// Runs `cargo test`, echoing its output while summing its results.
fn cargo_test(command: &mut Command) -> anyhow::Result<TestTotals> {
    use std::io::{BufRead, BufReader};
    println!("==> cargo test");
    let started = Instant::now();
    let mut child =
        command.stdout(std::process::Stdio::piped()).spawn().context("running cargo test")?;
    let mut totals = TestTotals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            add_result_line(&mut totals, &line);
        }
    }
    totals.success = child.wait()?.success();
    println!(
        "==> cargo test: {} in {:.0} s",
        if totals.success { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(totals)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` when set, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        _ => workspace_root().join("target"),
    }
}

fn images(
    binaries: Option<PathBuf>,
    platforms: &[String],
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    if binaries.is_none() && platforms.is_empty() {
        step(
            "cargo build --release --locked (chaperone-operator, chaperone-gateway, kubectl-chaperone)",
            cargo().args([
                "build",
                "--release",
                "--locked",
                "--package",
                "chaperone-operator",
                "--bin",
                "chaperone-operator",
                "--package",
                "chaperone-gateway",
                "--bin",
                "chaperone-gateway",
                "--package",
                "kubectl-chaperone",
                "--bin",
                "kubectl-chaperone",
            ]),
        )?;
    }
    // chaperone-env defaults to this machine's architecture and <target>/release.
    let mut command = chaperone_env("images");
    if let Some(dir) = binaries {
        command.arg(format!("--binaries={}", absolute(dir).display()));
    }
    for platform in platforms {
        command.arg(format!("--platform={platform}"));
    }
    if let Some(out) = out {
        command.arg(format!("--out={}", absolute(out).display()));
    }
    step("write the OCI layouts", &mut command)
}

/// `path` relative to the directory `cargo xtask` was started in (`cargo run` keeps it, but the
/// commands xtask starts run in the workspace root).
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir().map(|dir| dir.join(&path)).unwrap_or(path)
    }
}

fn bench(quick: bool, bench_args: &[String]) -> anyhow::Result<()> {
    step(
        "cargo build --release (chaperone-gateway, chaperone-bench)",
        cargo().args([
            "build",
            "--release",
            "--package",
            "chaperone-gateway",
            "--bin",
            "chaperone-gateway",
            "--package",
            "chaperone-bench",
            "--bin",
            "chaperone-bench",
        ]),
    )?;
    let release = target_dir().join("release");
    let mut command = Command::new(release.join("chaperone-bench"));
    command
        .current_dir(workspace_root())
        .arg(format!("--gateway-binary={}", release.join("chaperone-gateway").display()))
        .arg(format!("--peers-dir={}", target_dir().join("bench-peers").display()));
    if quick {
        command.arg("--quick");
    } else {
        command.arg(format!("--docs={}", workspace_root().join("docs/benchmarks.md").display()));
    }
    let sigv4_proxy_given = bench_args
        .iter()
        .any(|a| a.starts_with("--sigv4-proxy-source") || a.starts_with("--sigv4-proxy-binary"));
    if !sigv4_proxy_given {
        match sigv4_proxy_tarball() {
            Some(tarball) => {
                println!("aws-sigv4-proxy: building from {}", tarball.display());
                command.arg(format!("--sigv4-proxy-source={}", tarball.display()));
            }
            None => println!(
                "aws-sigv4-proxy: no --sigv4-proxy-source/--sigv4-proxy-binary and no \
                 shared/peers/aws-sigv4-proxy-*.tar.gz beside the workspace; measured without it"
            ),
        }
    }
    command.args(bench_args);
    step("chaperone-bench", &mut command)
}

/// A development machine's copy of aws-sigv4-proxy's source with its dependencies:
/// `shared/peers/aws-sigv4-proxy-*.tar.gz` in a folder above the workspace (newest name first).
fn sigv4_proxy_tarball() -> Option<PathBuf> {
    let root = workspace_root();
    root.ancestors().skip(1).find_map(|dir| {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("shared/peers"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("aws-sigv4-proxy-") && n.ends_with(".tar.gz"))
            })
            .collect();
        found.sort();
        found.pop()
    })
}

fn crdgen() -> anyhow::Result<()> {
    let dir = workspace_root().join("charts/chaperone/crds");
    std::fs::create_dir_all(&dir)?;
    for crd in chaperone_crds::all_crds() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, chaperone_crds::crd_yaml(&crd)?)?;
        println!("wrote {}", path.strip_prefix(workspace_root()).unwrap_or(&path).display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_summed() {
        let mut totals = TestTotals::default();
        add_result_line(
            &mut totals,
            "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 8.20s",
        );
        add_result_line(
            &mut totals,
            "test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        add_result_line(&mut totals, "running 3 tests");
        assert_eq!((totals.passed, totals.failed, totals.ignored), (7, 3, 1));
    }
}
