//! Prometheus metrics of the ingest (`meshwatch_ingest_*`), registered once per `run`.

use meshwatch_graph::metrics::MetricRejectReason;
use meshwatch_graph::snapshot::IngestStats;
use meshwatch_graph::span::RejectReason;
use meshwatch_graph::{AggregatorState, IngestReport, MetricsReport};
use meshwatch_runtime::metrics::{
    MetricsError, register_histogram_vec, register_int_counter_vec, register_int_gauge,
};
use prometheus::{HistogramVec, IntCounterVec, IntGauge};

/// Every metric of the ingest.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Requests by protocol (grpc, http; grpc_metrics, http_metrics for OTLP metrics) and
    /// result (ok, partial, or the error label).
    pub requests: IntCounterVec,
    /// Request handling time by protocol, seconds.
    pub request_duration: HistogramVec,
    /// Received request bytes by protocol, as on the wire.
    pub request_bytes: IntCounterVec,
    /// Spans by outcome at arrival: accepted, late, rejected (and why, in `rejected_spans`).
    pub spans: IntCounterVec,
    /// Rejected spans by reason.
    pub rejected_spans: IntCounterVec,
    /// Aggregated spans by final outcome, counted when their window closes: paired, unpaired,
    /// dropped; and spans folded by the cardinality guard.
    pub span_outcomes: IntCounterVec,
    /// Snapshots closed by the aggregator.
    pub snapshots: IntCounterVec,
    /// Spans waiting in the pairing stores.
    pub pending_spans: IntGauge,
    /// Open windows over all graphs.
    pub open_windows: IntGauge,
    /// Graphs tracked.
    pub graphs: IntGauge,
    /// Requests waiting for the aggregation thread.
    pub queue_depth: IntGauge,
    /// Snapshots held by the aggregation thread because the publish buffer was full.
    pub held_snapshots: IntGauge,
    /// OTLP metric data points by outcome at arrival: accepted, late, rejected, ignored.
    pub data_points: IntCounterVec,
    /// Rejected OTLP metric data points by reason.
    pub rejected_data_points: IntCounterVec,
}

impl Metrics {
    /// Registers (or finds) every metric in the process registry.
    pub fn register() -> Result<Self, MetricsError> {
        Ok(Self {
            requests: register_int_counter_vec(
                "meshwatch_ingest_requests_total",
                "OTLP export requests by protocol and result",
                &["protocol", "result"],
            )?,
            request_duration: register_histogram_vec(
                "meshwatch_ingest_request_duration_seconds",
                "time to handle one OTLP export request",
                &["protocol"],
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            )?,
            request_bytes: register_int_counter_vec(
                "meshwatch_ingest_request_bytes_total",
                "OTLP request bytes received, as on the wire",
                &["protocol"],
            )?,
            spans: register_int_counter_vec(
                "meshwatch_ingest_spans_total",
                "spans received, by outcome at arrival (accepted, late, rejected)",
                &["outcome"],
            )?,
            rejected_spans: register_int_counter_vec(
                "meshwatch_ingest_rejected_spans_total",
                "spans refused as invalid, by reason",
                &["reason"],
            )?,
            span_outcomes: register_int_counter_vec(
                "meshwatch_ingest_span_outcomes_total",
                "aggregated spans by pairing outcome when their window closed",
                &["outcome"],
            )?,
            snapshots: register_int_counter_vec(
                "meshwatch_ingest_snapshots_total",
                "graph snapshots closed, by how they were handed to the publisher",
                &["result"],
            )?,
            pending_spans: register_int_gauge(
                "meshwatch_ingest_pending_spans",
                "spans waiting for their peer in the pairing stores",
            )?,
            open_windows: register_int_gauge(
                "meshwatch_ingest_open_windows",
                "time windows open over all graphs",
            )?,
            graphs: register_int_gauge("meshwatch_ingest_graphs", "graphs tracked")?,
            queue_depth: register_int_gauge(
                "meshwatch_ingest_queue_depth",
                "requests waiting for the aggregation thread",
            )?,
            held_snapshots: register_int_gauge(
                "meshwatch_ingest_held_snapshots",
                "closed snapshots held because the publish buffer was full",
            )?,
            data_points: register_int_counter_vec(
                "meshwatch_ingest_data_points_total",
                "OTLP metric data points received, by outcome at arrival (accepted, late, \
                 rejected, ignored)",
                &["outcome"],
            )?,
            rejected_data_points: register_int_counter_vec(
                "meshwatch_ingest_rejected_data_points_total",
                "OTLP metric data points refused as invalid, by reason",
                &["reason"],
            )?,
        })
    }

    /// Counts what one request did.
    pub fn record_report(&self, report: &IngestReport) {
        self.spans
            .with_label_values(&["accepted"])
            .inc_by(report.accepted);
        self.spans.with_label_values(&["late"]).inc_by(report.late);
        self.spans
            .with_label_values(&["rejected"])
            .inc_by(report.rejected());
        for (reason, &n) in RejectReason::ALL.iter().zip(&report.rejected_by_reason) {
            if n > 0 {
                self.rejected_spans
                    .with_label_values(&[reason.as_str()])
                    .inc_by(n);
            }
        }
    }

    /// Counts what one OTLP metrics request did.
    pub fn record_metrics_report(&self, report: &MetricsReport) {
        for (outcome, n) in [
            ("accepted", report.accepted),
            ("late", report.late),
            ("rejected", report.rejected()),
            ("ignored", report.ignored),
        ] {
            self.data_points.with_label_values(&[outcome]).inc_by(n);
        }
        for (reason, &n) in MetricRejectReason::ALL
            .iter()
            .zip(&report.rejected.by_reason)
        {
            if n > 0 {
                self.rejected_data_points
                    .with_label_values(&[reason.as_str()])
                    .inc_by(n);
            }
        }
    }

    /// Counts the outcomes of a closed window.
    pub fn record_snapshot(&self, stats: &IngestStats) {
        self.span_outcomes
            .with_label_values(&["paired"])
            .inc_by(stats.paired);
        self.span_outcomes
            .with_label_values(&["unpaired"])
            .inc_by(stats.unpaired);
        self.span_outcomes
            .with_label_values(&["dropped"])
            .inc_by(stats.dropped);
        self.span_outcomes
            .with_label_values(&["overflow_service"])
            .inc_by(stats.overflow_services);
        self.span_outcomes
            .with_label_values(&["overflow_edge"])
            .inc_by(stats.overflow_edges);
    }

    /// Updates the state gauges.
    pub fn record_state(&self, state: AggregatorState) {
        self.pending_spans
            .set(i64::try_from(state.pending_spans).unwrap_or(i64::MAX));
        self.open_windows
            .set(i64::try_from(state.open_windows).unwrap_or(i64::MAX));
        self.graphs
            .set(i64::try_from(state.graphs).unwrap_or(i64::MAX));
    }
}
