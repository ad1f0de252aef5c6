//! Metrics of `meshwatch-aggregator` (`meshwatch_aggregator_*`), updated per message or batch.

use meshwatch_runtime::metrics::{self, MetricsError};
use prometheus::{HistogramVec, IntCounterVec, IntGauge};

/// Flush latency buckets, seconds.
const FLUSH_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// The aggregator's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Messages by worker (`snapshots`, `results`) and outcome (`stored`, `dead_letter`,
    /// `abandoned`, `ack_failed`).
    pub messages: IntCounterVec,
    /// Rows written (acknowledged by the sink) by table.
    pub rows: IntCounterVec,
    /// Duration of successful flushes by worker, seconds.
    pub flush_seconds: HistogramVec,
    /// Failed flushes by worker and error kind (`StoreError::kind`).
    pub flush_errors: IntCounterVec,
    /// Incident changes by kind (`opened`, `updated`, `resolved`, `merged`, `predicted`).
    pub incident_changes: IntCounterVec,
    /// Score reports whose window had been seen already (redeliveries), by kind.
    pub redeliveries: IntCounterVec,
    /// Adaptive-threshold series held.
    pub threshold_series: IntGauge,
}

impl Metrics {
    /// Registers (or finds, when already registered) the metrics.
    pub fn register() -> Result<Self, MetricsError> {
        Ok(Self {
            messages: metrics::register_int_counter_vec(
                "meshwatch_aggregator_messages_total",
                "Messages taken from JetStream, by worker and outcome",
                &["worker", "outcome"],
            )?,
            rows: metrics::register_int_counter_vec(
                "meshwatch_aggregator_rows_written_total",
                "Rows acknowledged by the sink, by table",
                &["table"],
            )?,
            flush_seconds: metrics::register_histogram_vec(
                "meshwatch_aggregator_flush_seconds",
                "Duration of successful flushes to the sink, by worker",
                &["worker"],
                FLUSH_BUCKETS,
            )?,
            flush_errors: metrics::register_int_counter_vec(
                "meshwatch_aggregator_flush_errors_total",
                "Failed flushes to the sink, by worker and error kind",
                &["worker", "kind"],
            )?,
            incident_changes: metrics::register_int_counter_vec(
                "meshwatch_aggregator_incident_changes_total",
                "Incident changes written, by kind",
                &["kind"],
            )?,
            redeliveries: metrics::register_int_counter_vec(
                "meshwatch_aggregator_redeliveries_total",
                "Reports whose window had been processed already, by kind",
                &["kind"],
            )?,
            threshold_series: metrics::register_int_gauge(
                "meshwatch_aggregator_threshold_series",
                "Adaptive-threshold series (graph, service) held",
            )?,
        })
    }

    /// Counts the rows of one successful flush, per table.
    pub fn rows_written(&self, tables: &TableRows) {
        for (table, n) in TABLES.iter().zip(tables.0) {
            if n > 0 {
                self.rows.with_label_values(&[table]).inc_by(n);
            }
        }
    }
}

/// The tables, in the order of [`TableRows`].
const TABLES: [&str; 5] = [
    "graph_nodes",
    "graph_edges",
    "anomaly_scores",
    "incidents",
    "forecasts",
];

/// Rows per table (in the order `graph_nodes`, `graph_edges`, `anomaly_scores`, `incidents`,
/// `forecasts`), counted while a batch fills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableRows(pub [u64; 5]);

impl TableRows {
    /// Adds the rows of `rows`.
    pub fn add(&mut self, rows: &meshwatch_store::Rows) {
        let lens = [
            rows.graph_nodes.len(),
            rows.graph_edges.len(),
            rows.anomaly_scores.len(),
            rows.incidents.len(),
            rows.forecasts.len(),
        ];
        for (total, n) in self.0.iter_mut().zip(lens) {
            *total += u64::try_from(n).unwrap_or(u64::MAX);
        }
    }
}
