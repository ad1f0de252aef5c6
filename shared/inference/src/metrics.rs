//! Metrics of an inference service (the model server's own — latency per model and provider,
//! batch sizes, queue waits, errors — are `meshwatch_model_*`, registered by `meshwatch-model`).

use std::time::Duration;

use meshwatch_runtime::metrics::{self, MetricsError};
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge};

/// Request latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Metrics of `meshwatch-detector` / `meshwatch-forecaster`.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    /// gRPC requests by method and outcome (`ok` or an error reason).
    pub requests: IntCounterVec,
    /// gRPC request latency by method.
    pub request_seconds: HistogramVec,
    /// Streamed snapshots by outcome: `scored`, `already_scored`, `too_old`, `dead_letter`,
    /// `retry`.
    pub windows: IntCounterVec,
    /// Reports published (PubAck received), by kind (`score`, `forecast`) and whether JetStream
    /// found them duplicates.
    pub reports_published: IntCounterVec,
    /// Histories rebuilt from the stream (graph seen first since start).
    pub history_rebuilds: IntCounter,
    /// Graphs with a history in memory.
    pub history_graphs: IntGauge,
    /// From snapshot delivery to report PubAck, seconds.
    pub stream_seconds: HistogramVec,
}

impl ServiceMetrics {
    pub fn register() -> Result<Self, MetricsError> {
        Ok(Self {
            requests: metrics::register_int_counter_vec(
                "meshwatch_inference_requests_total",
                "gRPC inference requests by method and outcome",
                &["method", "outcome"],
            )?,
            request_seconds: metrics::register_histogram_vec(
                "meshwatch_inference_request_seconds",
                "gRPC inference request latency by method",
                &["method"],
                LATENCY_BUCKETS,
            )?,
            windows: metrics::register_int_counter_vec(
                "meshwatch_inference_stream_windows_total",
                "Snapshots taken from the stream, by outcome",
                &["outcome"],
            )?,
            reports_published: metrics::register_int_counter_vec(
                "meshwatch_inference_reports_published_total",
                "Reports published with a PubAck, by kind and duplicate flag",
                &["kind", "duplicate"],
            )?,
            history_rebuilds: metrics::register_int_counter(
                "meshwatch_inference_history_rebuilds_total",
                "Graph histories rebuilt by reading back the snapshots stream",
            )?,
            history_graphs: metrics::register_int_gauge(
                "meshwatch_inference_history_graphs",
                "Graphs with a history in memory",
            )?,
            stream_seconds: metrics::register_histogram_vec(
                "meshwatch_inference_stream_seconds",
                "From snapshot delivery to the report's PubAck, by kind",
                &["kind"],
                LATENCY_BUCKETS,
            )?,
        })
    }

    /// Counts a finished gRPC request.
    pub fn observe_request(&self, method: &str, outcome: &str, elapsed: Duration) {
        self.requests.with_label_values(&[method, outcome]).inc();
        self.request_seconds
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
    }
}
