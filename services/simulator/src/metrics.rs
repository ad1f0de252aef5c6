//! Prometheus metrics of the simulator (`meshwatch_simulator_*`), registered once per run.

use meshwatch_runtime::metrics::{
    MetricsError, register_gauge, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge,
};
use prometheus::{Gauge, HistogramVec, IntCounter, IntCounterVec, IntGauge};

/// Every metric of the simulator.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Export requests by signal (traces, metrics) and result (accepted, refused, failed,
    /// dropped: given up after the retries).
    pub requests: IntCounterVec,
    /// Spans and data points by signal and outcome (accepted, rejected by the receiver,
    /// dropped).
    pub items: IntCounterVec,
    /// Time of one export attempt, by signal.
    pub export_duration: HistogramVec,
    /// Traces simulated.
    pub traces: IntCounter,
    /// Faults begun, by type.
    pub faults: IntCounterVec,
    /// How far the generator is behind its schedule, seconds.
    pub lag: Gauge,
    /// The simulated clock, unix seconds.
    pub clock: Gauge,
    /// Encoded requests waiting for a sender.
    pub queue_depth: IntGauge,
}

impl Metrics {
    /// Registers (or finds) every metric in the process registry.
    pub fn register() -> Result<Self, MetricsError> {
        Ok(Self {
            requests: register_int_counter_vec(
                "meshwatch_simulator_export_requests_total",
                "OTLP export requests by signal and result",
                &["signal", "result"],
            )?,
            items: register_int_counter_vec(
                "meshwatch_simulator_exported_items_total",
                "spans and metric data points sent, by signal and outcome",
                &["signal", "outcome"],
            )?,
            export_duration: register_histogram_vec(
                "meshwatch_simulator_export_duration_seconds",
                "time of one OTLP export attempt",
                &["signal"],
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )?,
            traces: register_int_counter(
                "meshwatch_simulator_traces_total",
                "user requests simulated",
            )?,
            faults: register_int_counter_vec(
                "meshwatch_simulator_faults_total",
                "faults begun, by type",
                &["type"],
            )?,
            lag: register_gauge(
                "meshwatch_simulator_lag_seconds",
                "how far the generator is behind its schedule",
            )?,
            clock: register_gauge(
                "meshwatch_simulator_clock_seconds",
                "the simulated clock, unix seconds",
            )?,
            queue_depth: register_int_gauge(
                "meshwatch_simulator_queue_depth",
                "encoded OTLP requests waiting for a sender",
            )?,
        })
    }
}
