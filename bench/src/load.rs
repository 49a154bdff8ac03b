//! The closed-loop load generator: `concurrency` workers, each sending its next request as soon
//! as the previous response is fully read, over pooled keep-alive connections. Latency is from
//! the first byte sent to the last byte of the response read, into an HDR histogram (µs).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::scenario::{Scenario, Target, build, upload_head};

/// Request bodies the client sends.
pub type ClientBody = BoxBody<Bytes, std::io::Error>;
/// The pooled HTTP/1.1 client.
pub type HttpClient = Client<HttpConnector, ClientBody>;

/// A client with a keep-alive pool of up to `idle_per_host` connections per host.
pub fn client(idle_per_host: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(idle_per_host)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// How long one measurement runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Exactly this many requests (split over the workers).
    Requests(u64),
    /// Warm up, then measure for a duration.
    Time { warmup: Duration, measure: Duration },
}

/// What one (scenario, way, concurrency) measurement saw.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// Latency of successful calls, µs.
    pub latency_us: Histogram<u64>,
    /// Calls answered 2xx.
    pub ok: u64,
    /// Calls answered otherwise, or failed.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Measured wall time.
    pub elapsed: Duration,
    /// Request plus response bytes of measured calls (headers counted as `name: value\r\n`,
    /// bodies exact).
    pub traffic_bytes: u64,
    /// The same over every call sent, warm-up included (what a recorder saw).
    pub sent_traffic_bytes: u64,
    /// Calls answered (any status), warm-up included: what the proxy's CPU time of the cell,
    /// read around the whole cell, is divided by.
    pub sent_calls: u64,
}

impl CellResult {
    /// Proxy CPU µs per call, from CPU seconds read around the whole cell (warm-up included).
    pub fn cpu_us_per_call(&self, cpu_seconds: f64) -> Option<f64> {
        (self.sent_calls > 0).then(|| cpu_seconds * 1e6 / self.sent_calls as f64)
    }

    /// Successful calls per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of latency, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

fn header_bytes(headers: &http::HeaderMap) -> u64 {
    headers.iter().map(|(n, v)| (n.as_str().len() + v.len() + 4) as u64).sum()
}

struct Shared {
    next: AtomicU64,
    limit: u64,
    measuring: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
}

/// Runs `scenario` against `target` at `concurrency` within `budget`.
pub async fn run_cell(
    client: &HttpClient,
    target: &Target,
    scenario: Scenario,
    concurrency: usize,
    budget: Budget,
) -> CellResult {
    let limit = match budget {
        Budget::Requests(n) => n,
        Budget::Time { .. } => u64::MAX,
    };
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        limit,
        measuring: std::sync::atomic::AtomicBool::new(matches!(budget, Budget::Requests(_))),
        stop: std::sync::atomic::AtomicBool::new(false),
    });
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, target, shared) = (client.clone(), target.clone(), shared.clone());
        workers.push(tokio::spawn(async move { worker(client, target, scenario, shared).await }));
    }
    let started;
    if let Budget::Time { warmup, measure } = budget {
        tokio::time::sleep(warmup).await;
        shared.measuring.store(true, Ordering::SeqCst);
        started = Instant::now();
        tokio::time::sleep(measure).await;
        shared.stop.store(true, Ordering::SeqCst);
    } else {
        started = Instant::now();
    }
    let mut total = CellResult {
        latency_us: new_histogram(),
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        traffic_bytes: 0,
        sent_traffic_bytes: 0,
        sent_calls: 0,
    };
    for worker in workers {
        let Ok(part) = worker.await else {
            total.errors += 1;
            continue;
        };
        let _ = total.latency_us.add(&part.latency_us);
        total.ok += part.ok;
        total.errors += part.errors;
        total.traffic_bytes += part.traffic_bytes;
        total.sent_traffic_bytes += part.sent_traffic_bytes;
        total.sent_calls += part.sent_calls;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    total.elapsed = started.elapsed();
    total
}

async fn worker(
    client: HttpClient,
    target: Target,
    scenario: Scenario,
    shared: Arc<Shared>,
) -> CellResult {
    let mut result = CellResult {
        latency_us: new_histogram(),
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        traffic_bytes: 0,
        sent_traffic_bytes: 0,
        sent_calls: 0,
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if n >= shared.limit {
            break;
        }
        let request = match build(scenario, &target, n) {
            Ok(request) => request,
            Err(error) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| error.to_string());
                continue;
            }
        };
        let request_bytes = header_bytes(request.headers()) + request.body().len() as u64;
        let request = request.map(|b| Full::new(b).map_err(|never| match never {}).boxed());
        let sent = Instant::now();
        let outcome = match client.request(request).await {
            Ok(response) => {
                let status = response.status();
                let response_headers = header_bytes(response.headers());
                match response.into_body().collect().await {
                    Ok(body) => Ok((status, response_headers, body.to_bytes())),
                    Err(error) => Err(format!("reading the response: {error}")),
                }
            }
            Err(error) => Err(format!("sending: {error:?}")),
        };
        let latency = sent.elapsed();
        if let Ok((_, headers, body)) = &outcome {
            result.sent_traffic_bytes += request_bytes + headers + body.len() as u64;
            result.sent_calls += 1;
        }
        if !shared.measuring.load(Ordering::Relaxed) {
            continue;
        }
        match outcome {
            Ok((status, headers, body)) if status.is_success() => {
                result.ok += 1;
                let _ = result.latency_us.record((latency.as_micros() as u64).max(1));
                result.traffic_bytes += request_bytes + headers + body.len() as u64;
            }
            Ok((status, _, body)) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| {
                    format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(400)])
                    )
                });
            }
            Err(error) => {
                result.errors += 1;
                result.first_error.get_or_insert(error);
            }
        }
    }
    result
}

/// What a streamed upload saw.
#[derive(Debug, Clone)]
pub struct UploadResult {
    /// HTTP status, or the failure.
    pub outcome: Result<u16, String>,
    /// Wall time from first byte to response.
    pub elapsed: Duration,
    /// Bytes sent.
    pub bytes: u64,
}

/// PUTs `length` bytes generated on the fly in 64 KiB chunks (never held whole).
pub async fn streamed_upload(
    client: &HttpClient,
    target: &Target,
    key: &str,
    length: u64,
) -> UploadResult {
    const CHUNK: u64 = 64 * 1024;
    let head = match upload_head(target, key, length) {
        Ok(head) => head,
        Err(error) => {
            return UploadResult {
                outcome: Err(error.to_string()),
                elapsed: Duration::ZERO,
                bytes: 0,
            };
        }
    };
    let pattern = Bytes::from(crate::scenario::json_ish_bytes(CHUNK as usize, 11));
    let chunks = length.div_ceil(CHUNK);
    let stream = futures_util::stream::iter(0..chunks).map(move |i| {
        let size = (length - i * CHUNK).min(CHUNK) as usize;
        Ok::<_, std::io::Error>(Frame::data(pattern.slice(..size)))
    });
    let body: ClientBody = BodyExt::boxed(StreamBody::new(stream));
    let request = head.map(|()| body);
    let started = Instant::now();
    let outcome = match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            match body {
                Ok(_) if (200..300).contains(&status) => Ok(status),
                Ok(body) => Err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(400)])
                )),
                Err(error) => Err(format!("reading the response: {error}")),
            }
        }
        Err(error) => Err(format!("sending: {error:?}")),
    };
    UploadResult { outcome, elapsed: started.elapsed(), bytes: length }
}
