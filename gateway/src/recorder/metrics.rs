//! Counters and gauges of the recorder, read by the gateway's Prometheus exporter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (monotonic, `_total`) and gauges of one recorder.
#[derive(Debug, Default)]
pub struct RecorderMetrics {
    /// Bytes in spool files not yet uploaded (gauge).
    pub spool_bytes: AtomicU64,
    /// Segments cut and waiting for upload (gauge).
    pub upload_backlog_segments: AtomicU64,
    /// Streams open on this replica (gauge).
    pub open_streams: AtomicU64,
    /// Events made durable in the spool.
    pub events_recorded_total: AtomicU64,
    /// File fsyncs done by the spool writer (one per touched file per batch).
    pub fsyncs_total: AtomicU64,
    /// Objects (segments, manifests, digests) uploaded.
    pub objects_uploaded_total: AtomicU64,
    /// Segments uploaded.
    pub segments_uploaded_total: AtomicU64,
    /// Bytes uploaded (objects as stored).
    pub uploaded_bytes_total: AtomicU64,
    /// Upload attempts that failed (each retry counts).
    pub upload_failures_total: AtomicU64,
    /// Appends refused because the spool was full.
    pub spool_full_refusals_total: AtomicU64,
    /// Appends refused because their connection's share of the spool was used up.
    pub connection_quota_refusals_total: AtomicU64,
    /// Bytes in spool files not yet uploaded, by AgentConnection (each connection's part of
    /// `spool_bytes`).
    connection_spool_bytes: Mutex<HashMap<String, u64>>,
}

/// A copy of [`RecorderMetrics`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecorderMetricsSnapshot {
    pub spool_bytes: u64,
    pub upload_backlog_segments: u64,
    pub open_streams: u64,
    pub events_recorded_total: u64,
    pub fsyncs_total: u64,
    pub objects_uploaded_total: u64,
    pub segments_uploaded_total: u64,
    pub uploaded_bytes_total: u64,
    pub upload_failures_total: u64,
    pub spool_full_refusals_total: u64,
    pub connection_quota_refusals_total: u64,
}

impl RecorderMetrics {
    /// Reads every value.
    pub fn snapshot(&self) -> RecorderMetricsSnapshot {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        RecorderMetricsSnapshot {
            spool_bytes: get(&self.spool_bytes),
            upload_backlog_segments: get(&self.upload_backlog_segments),
            open_streams: get(&self.open_streams),
            events_recorded_total: get(&self.events_recorded_total),
            fsyncs_total: get(&self.fsyncs_total),
            objects_uploaded_total: get(&self.objects_uploaded_total),
            segments_uploaded_total: get(&self.segments_uploaded_total),
            uploaded_bytes_total: get(&self.uploaded_bytes_total),
            upload_failures_total: get(&self.upload_failures_total),
            spool_full_refusals_total: get(&self.spool_full_refusals_total),
            connection_quota_refusals_total: get(&self.connection_quota_refusals_total),
        }
    }

    /// `connection`'s spool files grew by `bytes`.
    pub(crate) fn spool_grew(&self, connection: &str, bytes: u64) {
        self.spool_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut by_connection =
            self.connection_spool_bytes.lock().unwrap_or_else(|e| e.into_inner());
        *by_connection.entry(connection.to_owned()).or_default() += bytes;
    }

    /// `bytes` of `connection`'s spool files were uploaded or set aside.
    pub(crate) fn spool_shrank(&self, connection: &str, bytes: u64) {
        Self::sub_saturating(&self.spool_bytes, bytes);
        let mut by_connection =
            self.connection_spool_bytes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(used) = by_connection.get_mut(connection) {
            *used = used.saturating_sub(bytes);
            if *used == 0 {
                by_connection.remove(connection);
            }
        }
    }

    /// Bytes of `connection`'s spool files not yet uploaded.
    pub fn connection_spool_bytes(&self, connection: &str) -> u64 {
        let by_connection = self.connection_spool_bytes.lock().unwrap_or_else(|e| e.into_inner());
        by_connection.get(connection).copied().unwrap_or(0)
    }

    pub(crate) fn sub_saturating(gauge: &AtomicU64, by: u64) {
        let _ = gauge
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(by)));
    }
}
