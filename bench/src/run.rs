//! One benchmark run: start the local environment, the upstream, the gateways and the peers;
//! measure every scenario every way in one run; collect what the kernel says about each proxy.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use bytes::Bytes;
use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec},
    ports::free_port,
    process::ManagedProcess,
};
use http_body_util::{BodyExt, Full};

use crate::{
    load::{Budget, CellResult, HttpClient, UploadResult, client, run_cell, streamed_upload},
    peers::{self, SigV4ProxyFrom},
    pin::{self, Cores},
    procstat::{self, RssSampler},
    scenario::{Scenario, Target},
    upstream::FastUpstream,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrency levels of the small-call scenarios.
    pub concurrency: Vec<usize>,
    /// How long each (scenario, concurrency, way) cell runs.
    pub budget: Budget,
    /// Size of the streamed upload.
    pub upload_bytes: u64,
    /// The `chaperone-gateway` executable (a release build for numbers).
    pub gateway_binary: PathBuf,
    /// The `chaperone-bench` executable (serves the recording-off way).
    pub bench_binary: PathBuf,
    /// Where peers are installed; `None` runs without peers.
    pub peers_dir: Option<PathBuf>,
    /// The aws-sigv4-proxy to measure (with `peers_dir`); `None`: not measured, said so.
    pub sigv4_proxy: Option<SigV4ProxyFrom>,
    /// Measure every cell a second time with the proxy under test pinned to a core of its own
    /// and this process (load generator, upstream) to another (needs two cores).
    pub pin: bool,
    /// Requests of each profile of the gateway under 1 KiB GetObject (a `perf record` sample of
    /// CPU time, then callgrind's instruction counts); `None` skips both.
    pub profile_requests: Option<u64>,
    /// Wait after each scenario for the recorder's uploads before counting stored bytes.
    pub settle: Duration,
}

/// The ways every scenario is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WayKind {
    /// Straight to the upstream, signed with the upstream keys.
    Direct,
    /// Through a minimal forwarding proxy (no checks, no re-signing, no recording): the floor.
    PassThrough,
    /// The gateway's data path with recording discarded.
    GatewayUnrecorded,
    /// The real `chaperone-gateway` binary with write-ahead recording (`durability: Fsync`).
    GatewayRecorded,
    /// The same with `durability: Written` (request written to the spool, fsynced within 10 ms).
    GatewayRecordedWritten,
    /// aws-sigv4-proxy re-signing with the upstream keys.
    SigV4Proxy,
    /// mitmproxy as a reverse proxy writing its flows to disk.
    Mitmproxy,
}

impl WayKind {
    /// The report's name.
    pub fn name(self) -> &'static str {
        match self {
            WayKind::Direct => "direct",
            WayKind::PassThrough => "pass-through proxy (floor)",
            WayKind::GatewayUnrecorded => "gateway, recording off",
            WayKind::GatewayRecorded => "gateway, recording on",
            WayKind::GatewayRecordedWritten => "gateway, recording on, Written",
            WayKind::SigV4Proxy => "aws-sigv4-proxy",
            WayKind::Mitmproxy => "mitmproxy -w",
        }
    }

    /// The ways through the recording gateway binary.
    pub fn is_recording_gateway(self) -> bool {
        matches!(self, WayKind::GatewayRecorded | WayKind::GatewayRecordedWritten)
    }
}

struct Way {
    kind: WayKind,
    s3: Target,
    dynamodb: Target,
    /// The process serving `s3` (also its memory row).
    pid: Option<u32>,
    /// The process serving `dynamodb` when not the same (aws-sigv4-proxy runs one per service).
    dynamodb_pid: Option<u32>,
    /// The recording gateway's admin endpoint (spool counters) and recording bucket.
    recorder: Option<(String, String)>,
    _processes: Vec<ManagedProcess>,
}

impl Way {
    fn new(kind: WayKind, base: &str, credentials: &Credentials, pid: Option<u32>) -> Self {
        Way {
            kind,
            s3: Target::new(base, credentials.clone()),
            dynamodb: Target::new(base, credentials.clone()),
            pid,
            dynamodb_pid: None,
            recorder: None,
            _processes: vec![],
        }
    }

    fn target(&self, scenario: Scenario) -> &Target {
        match scenario {
            Scenario::DynamoDbPutItem => &self.dynamodb,
            _ => &self.s3,
        }
    }

    /// The proxy process serving `scenario`.
    fn pid_for(&self, scenario: Scenario) -> Option<u32> {
        match scenario {
            Scenario::DynamoDbPutItem => self.dynamodb_pid.or(self.pid),
            _ => self.pid,
        }
    }

    /// Every proxy process of the way.
    fn pids(&self) -> Vec<u32> {
        self.pid.into_iter().chain(self.dynamodb_pid).collect()
    }
}

/// One measured (scenario, concurrency, way).
#[derive(Debug, Clone)]
pub struct Cell {
    pub scenario: Scenario,
    pub concurrency: usize,
    pub way: WayKind,
    /// Measured with the proxy on a core of its own and the load generator and upstream on
    /// another ([`Options::pin`]).
    pub pinned: bool,
    pub result: CellResult,
    /// CPU seconds the way's proxy process spent during the cell.
    pub proxy_cpu_seconds: Option<f64>,
    /// (events spooled, fsyncs) during the cell, warm-up included, from the recording gateway's
    /// `/metrics`.
    pub spool_events_fsyncs: Option<(u64, u64)>,
}

/// The streamed upload through one way.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub way: WayKind,
    pub result: UploadResult,
    /// Largest sampled RSS of the proxy during the upload, KiB.
    pub peak_rss_kib: Option<u64>,
    pub proxy_cpu_seconds: Option<f64>,
}

/// Memory of one proxy process.
#[derive(Debug, Clone)]
pub struct MemoryRow {
    pub way: WayKind,
    /// RSS after start-up and one session, before any load, KiB.
    pub idle_kib: Option<u64>,
    /// Largest sampled RSS during the small-call scenarios, KiB.
    pub load_kib: Option<u64>,
    /// `VmHWM` at the end of the run, KiB.
    pub hwm_kib: Option<u64>,
}

/// What one way stored for one scenario's traffic.
#[derive(Debug, Clone)]
pub struct StorageRow {
    pub scenario: Scenario,
    pub way: WayKind,
    /// Request plus response bytes through the way in the scenario (warm-up included).
    pub traffic_bytes: u64,
    /// Bytes that reached durable storage: recording objects PUT to S3 (compressed), or the
    /// flow file.
    pub stored_bytes: u64,
    /// Bytes the process wrote to local storage (the spool, fsynced), when known.
    pub local_written_bytes: Option<u64>,
}

/// The callgrind profile of the gateway.
#[derive(Debug, Clone)]
pub struct Profile {
    pub requests: u64,
    pub ok: u64,
    /// `callgrind_annotate` self-cost top lines.
    pub self_top: String,
    /// `callgrind_annotate --inclusive=yes` top lines.
    pub inclusive_top: String,
    pub total_instructions: Option<u64>,
}

/// Where the gateway's CPU time goes natively: `perf record -e cpu-clock` (a software clock,
/// available where hardware counters are not) sampling the running recorded gateway.
#[derive(Debug, Clone)]
pub struct CpuProfile {
    pub requests: u64,
    pub ok: u64,
    /// CPU seconds the samples stand for (`perf report`'s event count of cpu-clock, in ns).
    pub cpu_seconds: Option<f64>,
    /// `perf report --no-children` top lines (self time, kernel included).
    pub self_top: String,
    /// `perf report --children` top lines (time including callees).
    pub inclusive_top: String,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Measurements {
    pub options: Options,
    pub ways: Vec<WayKind>,
    pub cells: Vec<Cell>,
    pub uploads: Vec<UploadRow>,
    pub memory: Vec<MemoryRow>,
    pub storage: Vec<StorageRow>,
    /// (verified, refused) signatures at the upstream.
    pub upstream_verification: (u64, u64),
    pub upstream_last_failure: Option<String>,
    /// Recorder objects the upstream received.
    pub recording_objects: u64,
    /// Peers that could not run, and why.
    pub peer_problems: Vec<(String, String)>,
    /// The cores of the pinned cells; `None` when none were measured, with why.
    pub pinning: Result<Cores, String>,
    /// Sampled CPU time (`perf record -e cpu-clock`) of the running gateway.
    pub cpu_profile: Option<Result<CpuProfile, String>>,
    pub profile: Option<Result<Profile, String>>,
    /// `/proc/loadavg` at the start and the end.
    pub load_average: (String, String),
    pub elapsed: Duration,
}

/// (events, fsyncs) the recorder has counted, from the gateway's admin `/metrics`.
async fn spool_counters(http: &HttpClient, admin: &str) -> Option<(u64, u64)> {
    let request = http::Request::get(format!("{admin}/metrics"))
        .body(Full::new(Bytes::new()).map_err(|never| match never {}).boxed())
        .ok()?;
    let response = http.request(request).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
    };
    value("chaperone_gateway_recorder_events_total")
        .zip(value("chaperone_gateway_recorder_fsyncs_total"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn wait_listening(
    address: &str,
    process: &mut ManagedProcess,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while TcpStream::connect(address).is_err() {
        process.ensure_running()?;
        if started.elapsed() > limit {
            bail!(
                "{} did not listen on {address} within {} s; see {}",
                process.name(),
                limit.as_secs(),
                process.log_path().display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// AssumeRoleWithWebIdentity at the gateway, as an SDK sends it (unsigned form POST).
async fn session_credentials(
    client: &HttpClient,
    gateway: &GatewayProcess,
    token: &str,
) -> anyhow::Result<Credentials> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &gateway.role_arn())
        .append_pair("RoleSessionName", "chaperone-bench")
        .append_pair("WebIdentityToken", token)
        .finish();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}/", gateway.endpoint))
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .body(Full::new(Bytes::from(form)).map_err(|never| match never {}).boxed())?;
    let response = client.request(request).await.context("calling the gateway's STS")?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let xml = String::from_utf8_lossy(&body);
    if !status.is_success() {
        bail!("AssumeRoleWithWebIdentity at the gateway answered {status}: {xml}");
    }
    let field = |tag: &str| {
        xml_value(&xml, tag).with_context(|| format!("the STS answer has no {tag}: {xml}"))
    };
    Ok(Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
        None,
        "chaperone-gateway",
    ))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs the whole benchmark.
pub async fn run(options: Options) -> anyhow::Result<Measurements> {
    let started = Instant::now();
    let load_before = loadavg();
    println!("==> starting the local environment (kube-apiserver, etcd, moto)");
    let env = LocalEnv::start().await.context("starting the local environment")?;
    let user = env.moto.gateway_user.clone();
    let upstream = FastUpstream::start(&user.access_key_id, &user.secret_access_key).await?;
    let upstream_keys =
        Credentials::new(&user.access_key_id, &user.secret_access_key, None, None, "upstream");
    let max_concurrency = options.concurrency.iter().copied().max().unwrap_or(1);
    let http = client(max_concurrency * 2);

    println!("==> starting the gateways ({})", options.gateway_binary.display());
    let (gateway, session) =
        start_recording_gateway(&env, &options.gateway_binary, &upstream, "bench", "Fsync", &http)
            .await?;
    let (gateway_written, session_written) = start_recording_gateway(
        &env,
        &options.gateway_binary,
        &upstream,
        "bench-written",
        "Written",
        &http,
    )
    .await?;

    // The recording-off way: the same config and keys, so the same session credentials work.
    let unrecorded_port = free_port()?;
    let unrecorded_address = format!("127.0.0.1:{unrecorded_port}");
    let mut command = Command::new(&options.bench_binary);
    command
        .arg("serve-unrecorded-gateway")
        .arg("--config")
        .arg(&gateway.config_path)
        .arg("--keys")
        .arg(gateway.dir.join("keys.json"))
        .arg("--listen")
        .arg(&unrecorded_address)
        .env("RUST_LOG", "warn");
    let mut unrecorded = ManagedProcess::start(
        "gateway-unrecorded",
        command,
        &gateway.dir.join("gateway-unrecorded.log"),
    )?;
    wait_listening(&unrecorded_address, &mut unrecorded, Duration::from_secs(30))?;

    // The floor: a minimal proxy forwarding the client's signed requests unchanged.
    let pass_through_address = format!("127.0.0.1:{}", free_port()?);
    let mut command = Command::new(&options.bench_binary);
    command
        .arg("serve-pass-through")
        .arg("--upstream")
        .arg(upstream.address.to_string())
        .arg("--listen")
        .arg(&pass_through_address)
        .env("RUST_LOG", "warn");
    let mut pass_through =
        ManagedProcess::start("pass-through", command, &gateway.dir.join("pass-through.log"))?;
    wait_listening(&pass_through_address, &mut pass_through, Duration::from_secs(30))?;

    let upstream_host = upstream.address.to_string();
    let mut pass_through_way = Way::new(
        WayKind::PassThrough,
        &format!("http://{pass_through_address}"),
        &upstream_keys,
        Some(pass_through.pid()),
    );
    pass_through_way._processes.push(pass_through);
    let mut unrecorded_way = Way::new(
        WayKind::GatewayUnrecorded,
        &format!("http://{unrecorded_address}"),
        &session,
        Some(unrecorded.pid()),
    );
    unrecorded_way._processes.push(unrecorded);
    let mut recorded_way =
        Way::new(WayKind::GatewayRecorded, &gateway.endpoint, &session, Some(gateway.pid()));
    recorded_way.recorder = Some((gateway.admin.clone(), gateway.spec.recording_bucket.clone()));
    let mut written_way = Way::new(
        WayKind::GatewayRecordedWritten,
        &gateway_written.endpoint,
        &session_written,
        Some(gateway_written.pid()),
    );
    written_way.recorder =
        Some((gateway_written.admin.clone(), gateway_written.spec.recording_bucket.clone()));
    let mut ways = vec![
        Way::new(WayKind::Direct, &upstream.endpoint(), &upstream_keys, None),
        pass_through_way,
        unrecorded_way,
        recorded_way,
        written_way,
    ];

    let mut peer_problems = Vec::new();
    let mut mitm_flows: Option<PathBuf> = None;
    if let Some(dir) = &options.peers_dir {
        println!("==> installing the peers into {}", dir.display());
        let _ = std::fs::create_dir_all(dir);
        let sigv4_proxy = match &options.sigv4_proxy {
            None => Err(format!(
                "no aws-sigv4-proxy given: pass --sigv4-proxy-source (its source with vendor/, a \
                 folder or .tar.gz, from {}) or --sigv4-proxy-binary",
                peers::SIGV4_PROXY_REPOSITORY
            )),
            Some(from) => {
                println!("    building aws-sigv4-proxy from {from:?} (offline, vendored)");
                peers::install_sigv4_proxy(dir, from)
            }
        };
        match sigv4_proxy {
            Err(why) => peer_problems.push((WayKind::SigV4Proxy.name().to_owned(), why)),
            Ok(binary) => match start_sigv4_proxies(&binary, &upstream_host, &user, &gateway.dir) {
                Ok(way) => ways.push(way),
                Err(e) => {
                    peer_problems.push((WayKind::SigV4Proxy.name().to_owned(), format!("{e:#}")))
                }
            },
        }
        match peers::install_mitmproxy(dir) {
            Err(why) => peer_problems.push((WayKind::Mitmproxy.name().to_owned(), why)),
            Ok(mitmdump) => {
                let port = free_port()?;
                let flows = gateway.dir.join("mitmproxy.flows");
                let command =
                    peers::mitmdump_command(&mitmdump, &upstream.endpoint(), port, &flows);
                let started =
                    ManagedProcess::start("mitmdump", command, &gateway.dir.join("mitmdump.log"))
                        .and_then(|mut process| {
                            wait_listening(
                                &format!("127.0.0.1:{port}"),
                                &mut process,
                                Duration::from_secs(60),
                            )
                            .map(|()| process)
                        });
                match started {
                    Ok(process) => {
                        let base = format!("http://127.0.0.1:{port}");
                        let mut way = Way::new(
                            WayKind::Mitmproxy,
                            &base,
                            &upstream_keys,
                            Some(process.pid()),
                        );
                        // Reverse mode rewrites Host to the upstream's, so sign for it.
                        way.s3.host = upstream_host.clone();
                        way.dynamodb.host = upstream_host.clone();
                        way._processes.push(process);
                        mitm_flows = Some(flows);
                        ways.push(way);
                    }
                    Err(e) => {
                        peer_problems.push((WayKind::Mitmproxy.name().to_owned(), format!("{e:#}")))
                    }
                }
            }
        }
    }

    let pinning = match (options.pin, Cores::split()) {
        (false, _) => Err("not asked for (--no-pin)".to_owned()),
        (true, None) => {
            Err(format!("the machine has {} core(s); pinning needs two", pin::online()))
        }
        (true, Some(cores)) => Ok(cores),
    };
    let pin_modes: Vec<Option<Cores>> = match &pinning {
        Ok(cores) => vec![None, Some(*cores)],
        Err(_) => vec![None],
    };

    // Idle memory: after start-up and one session, before load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<(WayKind, Option<u64>)> =
        ways.iter().map(|w| (w.kind, w.pid.and_then(procstat::rss_kib))).collect();
    let samplers: Vec<(WayKind, Option<RssSampler>)> =
        ways.iter().map(|w| (w.kind, w.pid.map(RssSampler::start))).collect();

    let mut cells = Vec::new();
    let mut storage = Vec::new();
    for scenario in Scenario::ALL {
        // Per way that stores: (stored bytes, local bytes written) before the scenario.
        let stored_before: Vec<(WayKind, u64, Option<u64>)> = ways
            .iter()
            .filter_map(|way| match (&way.recorder, way.kind) {
                (Some((_, bucket)), _) => Some((
                    way.kind,
                    upstream.counters.recording_bytes_in(bucket),
                    way.pid.and_then(procstat::storage_write_bytes),
                )),
                (None, WayKind::Mitmproxy) => {
                    Some((way.kind, mitm_flows.as_deref().map(file_len).unwrap_or(0), None))
                }
                _ => None,
            })
            .collect();
        let mut traffic: Vec<(WayKind, u64)> = ways.iter().map(|w| (w.kind, 0)).collect();
        for &concurrency in &options.concurrency {
            for &cores in &pin_modes {
                for (index, way) in ways.iter().enumerate() {
                    if let Some(cores) = cores {
                        pin_cell(way, cores).context("pinning a cell's processes")?;
                    }
                    let cell =
                        measure_cell(&http, way, scenario, concurrency, options.budget).await;
                    if cores.is_some() {
                        unpin_cell(way).context("unpinning a cell's processes")?;
                    }
                    let cell = Cell { pinned: cores.is_some(), ..cell };
                    traffic[index].1 += cell.result.sent_traffic_bytes;
                    cells.push(cell);
                }
            }
        }
        tokio::time::sleep(options.settle).await;
        for (kind, traffic_bytes) in traffic {
            let Some((_, stored_0, local_0)) = stored_before.iter().find(|(k, ..)| *k == kind)
            else {
                continue;
            };
            let Some(way) = ways.iter().find(|w| w.kind == kind) else { continue };
            let (stored_now, local_now) = match &way.recorder {
                Some((_, bucket)) => (
                    upstream.counters.recording_bytes_in(bucket),
                    way.pid.and_then(procstat::storage_write_bytes),
                ),
                None => (mitm_flows.as_deref().map(file_len).unwrap_or(0), None),
            };
            storage.push(StorageRow {
                scenario,
                way: kind,
                traffic_bytes,
                stored_bytes: stored_now.saturating_sub(*stored_0),
                local_written_bytes: local_0.zip(local_now).map(|(a, b)| b.saturating_sub(a)),
            });
        }
    }
    let mut memory = Vec::new();
    for ((kind, idle_kib), (_, sampler)) in idle.into_iter().zip(samplers) {
        let pid = ways.iter().find(|w| w.kind == kind).and_then(|w| w.pid);
        memory.push(MemoryRow {
            way: kind,
            idle_kib,
            load_kib: sampler.map(RssSampler::finish),
            hwm_kib: pid.and_then(procstat::hwm_kib),
        });
    }

    println!("==> streamed upload of {} MiB", options.upload_bytes / (1024 * 1024));
    let mut uploads = Vec::new();
    for way in ways.iter().filter(|w| {
        matches!(w.kind, WayKind::Direct | WayKind::GatewayUnrecorded | WayKind::GatewayRecorded)
    }) {
        let sampler = way.pid.map(RssSampler::start);
        let cpu_before = way.pid.and_then(procstat::cpu_seconds);
        let key = format!("large/upload-{}.bin", way.kind.name().replace([' ', ','], "-"));
        let result = streamed_upload(&http, &way.s3, &key, options.upload_bytes).await;
        let cpu_after = way.pid.and_then(procstat::cpu_seconds);
        let peak_rss_kib = sampler.map(RssSampler::finish);
        println!(
            "    {:<24} {:?} in {:.1} s ({:.0} MiB/s), peak RSS {}",
            way.kind.name(),
            result.outcome,
            result.elapsed.as_secs_f64(),
            result.bytes as f64 / 1048576.0 / result.elapsed.as_secs_f64().max(1e-9),
            peak_rss_kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or("-".into())
        );
        uploads.push(UploadRow {
            way: way.kind,
            result,
            peak_rss_kib,
            proxy_cpu_seconds: cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        });
    }
    for row in &mut memory {
        if let Some(pid) = ways.iter().find(|w| w.kind == row.way).and_then(|w| w.pid) {
            row.hwm_kib = procstat::hwm_kib(pid);
        }
    }

    let cpu_profile = match (
        options.profile_requests,
        ways.iter().find(|w| w.kind == WayKind::GatewayRecorded).and_then(|w| w.pid),
    ) {
        (Some(requests), Some(pid)) => {
            println!("==> perf cpu-clock profile of the gateway under {requests} GetObject calls");
            Some(
                cpu_profile_gateway(
                    &gateway.dir,
                    pid,
                    &http,
                    &session,
                    &gateway.endpoint,
                    requests,
                )
                .await
                .map_err(|e| format!("{e:#}")),
            )
        }
        _ => None,
    };

    let profile = match options.profile_requests {
        None => None,
        Some(requests) => {
            println!("==> callgrind profile of the gateway under {requests} GetObject calls");
            Some(
                profile_gateway(&options, &gateway, &http, &session, requests)
                    .await
                    .map_err(|e| format!("{e:#}")),
            )
        }
    };

    let last_failure = upstream.last_failure.lock().ok().and_then(|l| l.clone());
    Ok(Measurements {
        options: options.clone(),
        ways: ways.iter().map(|w| w.kind).collect(),
        cells,
        uploads,
        memory,
        storage,
        upstream_verification: upstream.counters.verification(),
        upstream_last_failure: last_failure,
        recording_objects: upstream.counters.recording_objects.load(Ordering::Relaxed),
        peer_problems,
        pinning,
        cpu_profile,
        profile,
        load_average: (load_before, loadavg()),
        elapsed: started.elapsed(),
    })
}

/// Starts a `chaperone-gateway` recording with RecordingPolicy `durability` for `namespace`,
/// forwarding to `upstream`, and takes an agent's session through its STS.
async fn start_recording_gateway(
    env: &LocalEnv,
    binary: &Path,
    upstream: &FastUpstream,
    namespace: &str,
    durability: &str,
    http: &HttpClient,
) -> anyhow::Result<(GatewayProcess, Credentials)> {
    let mut spec = GatewaySpec::new(namespace);
    spec.upstream_endpoint = Some(upstream.endpoint());
    // The load generator speaks plain HTTP: the benchmark measures the gateway without TLS.
    spec.plaintext = true;
    spec.log_filter = "warn".into();
    spec.durability = durability.into();
    let gateway = GatewayProcess::start(env, binary, spec).await?;
    let agent_env = gateway.agent_env(env, "pr-bot").await?;
    let token_file = agent_env
        .iter()
        .find(|(k, _)| k == "AWS_WEB_IDENTITY_TOKEN_FILE")
        .map(|(_, v)| v.clone())
        .context("agent environment without a token file")?;
    let token = std::fs::read_to_string(&token_file)?;
    let session = session_credentials(http, &gateway, token.trim()).await?;
    Ok((gateway, session))
}

/// Puts the way's proxy processes on `cores.proxy` and this process (load generator and
/// upstream) on `cores.load`.
fn pin_cell(way: &Way, cores: Cores) -> std::io::Result<()> {
    for pid in way.pids() {
        pin::pin(pid, &[cores.proxy])?;
    }
    pin::pin(std::process::id(), &[cores.load])
}

/// Lets the way's processes and this one run on every core again.
fn unpin_cell(way: &Way) -> std::io::Result<()> {
    let all = pin::all();
    for pid in way.pids() {
        pin::pin(pid, &all)?;
    }
    pin::pin(std::process::id(), &all)
}

/// Measures one (scenario, concurrency, way) cell with the kernel's and the recorder's counters.
async fn measure_cell(
    http: &HttpClient,
    way: &Way,
    scenario: Scenario,
    concurrency: usize,
    budget: Budget,
) -> Cell {
    let admin = way.recorder.as_ref().map(|(admin, _)| admin.as_str());
    let spool_before = match admin {
        Some(admin) => spool_counters(http, admin).await,
        None => None,
    };
    let pid = way.pid_for(scenario);
    let cpu_before = pid.and_then(procstat::cpu_seconds);
    let result = run_cell(http, way.target(scenario), scenario, concurrency, budget).await;
    let cpu_after = pid.and_then(procstat::cpu_seconds);
    let spool_events_fsyncs = match (spool_before, admin) {
        (Some((e0, f0)), Some(admin)) => spool_counters(http, admin)
            .await
            .map(|(e1, f1)| (e1.saturating_sub(e0), f1.saturating_sub(f0))),
        _ => None,
    };
    let proxy_cpu_seconds = cpu_before.zip(cpu_after).map(|(a, b)| b - a);
    println!(
        "    {:<20} c={:<3} {:<32} {:>8.0} calls/s  p50 {:>7.3} ms  p99 {:>7.3} ms  CPU {:>6} µs/call  errors {}",
        scenario.name(),
        concurrency,
        way.kind.name(),
        result.throughput(),
        result.quantile_ms(0.5),
        result.quantile_ms(0.99),
        proxy_cpu_seconds
            .and_then(|s| result.cpu_us_per_call(s))
            .map(|us| format!("{us:.0}"))
            .unwrap_or_else(|| "–".into()),
        result.errors
    );
    if let Some(error) = &result.first_error {
        println!("        first error: {error}");
    }
    Cell {
        scenario,
        concurrency,
        way: way.kind,
        pinned: false,
        result,
        proxy_cpu_seconds,
        spool_events_fsyncs,
    }
}

fn start_sigv4_proxies(
    binary: &Path,
    upstream_host: &str,
    user: &chaperone_tests::AwsUser,
    dir: &Path,
) -> anyhow::Result<Way> {
    let mut processes = Vec::new();
    let mut bases = Vec::new();
    for service in ["s3", "dynamodb"] {
        let port = free_port()?;
        let command = peers::sigv4_proxy_command(
            binary,
            service,
            upstream_host,
            port,
            &user.access_key_id,
            &user.secret_access_key,
        );
        let mut process = ManagedProcess::start(
            &format!("aws-sigv4-proxy-{service}"),
            command,
            &dir.join(format!("aws-sigv4-proxy-{service}.log")),
        )?;
        wait_listening(&format!("127.0.0.1:{port}"), &mut process, Duration::from_secs(30))?;
        bases.push(format!("http://127.0.0.1:{port}"));
        processes.push(process);
    }
    // The proxy replaces the client's signature with its own; the client signs with throwaway
    // keys, as an SDK pointed at the proxy would.
    let throwaway = Credentials::new("AKIDPROXYCLIENT", "throwaway", None, None, "proxy-client");
    Ok(Way {
        kind: WayKind::SigV4Proxy,
        s3: Target::new(&bases[0], throwaway.clone()),
        dynamodb: Target::new(&bases[1], throwaway),
        pid: processes.first().map(ManagedProcess::pid),
        dynamodb_pid: processes.get(1).map(ManagedProcess::pid),
        recorder: None,
        _processes: processes,
    })
}

/// Samples the running recorded gateway (`pid`) with `perf record -e cpu-clock --call-graph dwarf`
/// while `requests` 1 KiB GetObject calls go through it at concurrency 8, then reports self and
/// inclusive time by function. Native execution: unlike under valgrind, the CPU's SHA extensions
/// and the kernel's share (syscalls, fsync) are seen as they are.
async fn cpu_profile_gateway(
    dir: &Path,
    pid: u32,
    http: &HttpClient,
    session: &Credentials,
    endpoint: &str,
    requests: u64,
) -> anyhow::Result<CpuProfile> {
    let dir = dir.join("perf");
    std::fs::create_dir_all(&dir)?;
    let data = dir.join("perf.data");
    let probe = Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-o"])
        .arg(dir.join("probe.data"))
        .arg("true")
        .output()
        .context("running perf (Debian's linux-perf)")?;
    if !probe.status.success() {
        bail!(
            "perf record -e cpu-clock does not work here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
    }
    let mut command = Command::new("perf");
    command
        .args(["record", "-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf,16384", "-o"])
        .arg(&data)
        .arg("-p")
        .arg(pid.to_string());
    let mut perf = ManagedProcess::start("perf-record", command, &dir.join("perf.log"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    perf.ensure_running()?;
    let target = Target::new(endpoint, session.clone());
    let result =
        run_cell(http, &target, Scenario::GetObject1KiB, 8, Budget::Requests(requests)).await;
    // SIGTERM: perf stops sampling and writes its data.
    perf.terminate(Duration::from_secs(120));
    if !data.exists() {
        bail!("perf wrote no profile at {}; see {}", data.display(), perf.log_path().display());
    }
    let report = |children: bool| -> anyhow::Result<String> {
        let output = Command::new("perf")
            .arg("report")
            .arg("-i")
            .arg(&data)
            .args([
                "--stdio",
                "--no-inline",
                "-g",
                "none",
                "--sort",
                "symbol",
                "--percent-limit",
                "0.5",
            ])
            .arg(if children { "--children" } else { "--no-children" })
            .output()
            .context("running perf report")?;
        if !output.status.success() {
            bail!("perf report failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let self_time = report(false)?;
    let inclusive = report(true)?;
    let cpu_seconds = self_time
        .lines()
        .find_map(|l| l.strip_prefix("# Event count (approx.):"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|ns| ns as f64 / 1e9);
    Ok(CpuProfile {
        requests,
        ok: result.ok,
        cpu_seconds,
        self_top: perf_top(&self_time, 30),
        inclusive_top: perf_top(&inclusive, 30),
    })
}

/// The first `n` rows of a `perf report --stdio` table (comments and blank lines skipped).
fn perf_top(report: &str, n: usize) -> String {
    report
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(n)
        .map(shorten)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the real gateway binary under callgrind, drives `requests` 1 KiB GetObject calls through
/// it at concurrency 8, stops it (callgrind writes its profile at exit) and annotates.
async fn profile_gateway(
    options: &Options,
    gateway: &GatewayProcess,
    http: &HttpClient,
    session: &Credentials,
    requests: u64,
) -> anyhow::Result<Profile> {
    let dir = gateway.dir.join("profile");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("callgrind.out");
    let port = free_port()?;
    let admin = free_port()?;
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&options.gateway_binary)
        .arg(format!("--config={}", gateway.config_path.display()))
        .arg(format!("--keys={}", gateway.dir.join("keys.json").display()))
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--admin=127.0.0.1:{admin}"))
        .arg(format!("--spool-dir={}", dir.join("spool").display()))
        .arg("--replica=gw-profile")
        .arg("--segment-max-age-seconds=1")
        // The load generator speaks plain HTTP, as to the measured gateways.
        .arg("--plaintext")
        .env("RUST_LOG", "warn");
    chaperone_tests::aws::scrub_aws_env(&mut command);
    let mut process =
        ManagedProcess::start("gateway-callgrind", command, &dir.join("gateway.log"))?;
    let address = format!("127.0.0.1:{port}");
    wait_listening(&address, &mut process, Duration::from_secs(120))?;
    let target = Target::new(&format!("http://{address}"), session.clone());
    let result =
        run_cell(http, &target, Scenario::GetObject1KiB, 8, Budget::Requests(requests)).await;
    process.terminate(Duration::from_secs(120));
    if !out.exists() {
        bail!(
            "callgrind wrote no profile at {}; see {}",
            out.display(),
            process.log_path().display()
        );
    }
    let annotate = |inclusive: bool| -> anyhow::Result<String> {
        let output = Command::new("callgrind_annotate")
            .arg(format!("--inclusive={}", if inclusive { "yes" } else { "no" }))
            .arg(&out)
            .output()
            .context("running callgrind_annotate")?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let self_cost = annotate(false)?;
    let inclusive = annotate(true)?;
    let total_instructions = self_cost
        .lines()
        .find(|l| l.contains("PROGRAM TOTALS"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok());
    Ok(Profile {
        requests,
        ok: result.ok,
        self_top: top_functions(&self_cost, 25),
        inclusive_top: top_functions(&inclusive, 25),
        total_instructions,
    })
}

/// The first `n` function lines after callgrind_annotate's header, names shortened.
fn top_functions(annotated: &str, n: usize) -> String {
    annotated
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(shorten)
        .collect::<Vec<_>>()
        .join("\n")
}

fn shorten(line: &str) -> String {
    let line = line.trim();
    let cut: String = line.chars().take(160).collect();
    cut.trim_end().to_owned()
}
