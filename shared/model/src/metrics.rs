//! Prometheus metrics of served models ([`crate::serving`]), registered once per process in
//! `meshwatch_runtime::metrics::registry()` and shared by every [`crate::Server`]. Labels come
//! from closed sets: model names from manifests, versions, providers and fixed reasons.

use std::sync::LazyLock;

use meshwatch_runtime::metrics::{
    MetricsError, register_histogram_vec, register_int_counter_vec, register_int_gauge_vec,
};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

/// `meshwatch_model_inference_seconds{model, provider}`: one joined run.
pub const INFERENCE_SECONDS: &str = "meshwatch_model_inference_seconds";
/// `meshwatch_model_batch_graphs{model}`: graphs (requests) per run.
pub const BATCH_GRAPHS: &str = "meshwatch_model_batch_graphs";
/// `meshwatch_model_batch_nodes{model}`: N per run.
pub const BATCH_NODES: &str = "meshwatch_model_batch_nodes";
/// `meshwatch_model_queue_wait_seconds{model}`: from `infer` to the start of its run.
pub const QUEUE_WAIT_SECONDS: &str = "meshwatch_model_queue_wait_seconds";
/// `meshwatch_model_errors_total{model, reason}`: failed or dropped requests.
pub const ERRORS_TOTAL: &str = "meshwatch_model_errors_total";
/// `meshwatch_model_info{model, version, provider}`: 1 for the version serving now.
pub const INFO: &str = "meshwatch_model_info";
/// `meshwatch_model_reloads_total{model, outcome}`: reloads that swapped or were rejected.
pub const RELOADS_TOTAL: &str = "meshwatch_model_reloads_total";

/// Values of the `reason` label of [`ERRORS_TOTAL`].
pub mod reason {
    /// The queue was full: `infer` failed at once.
    pub const QUEUE_FULL: &str = "queue_full";
    /// No session became free within the session wait.
    pub const BUSY: &str = "busy";
    /// The inputs do not fit the model.
    pub const INVALID_INPUT: &str = "invalid_input";
    /// ONNX Runtime (or the outputs it returned) failed.
    pub const RUNTIME: &str = "runtime";
    /// The caller gave up (dropped its future, deadline) before the request ran: not run.
    pub const ABANDONED: &str = "abandoned";
}

/// Values of the `outcome` label of [`RELOADS_TOTAL`].
pub mod outcome {
    /// A new version was swapped in.
    pub const RELOADED: &str = "reloaded";
    /// A new version failed its checks; the old one kept serving.
    pub const REJECTED: &str = "rejected";
}

/// The metrics of served models.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub inference_seconds: HistogramVec,
    pub batch_graphs: HistogramVec,
    pub batch_nodes: HistogramVec,
    pub queue_wait_seconds: HistogramVec,
    pub errors: IntCounterVec,
    pub info: IntGaugeVec,
    pub reloads: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics::register().unwrap_or_else(|error| {
        // Only a programming error (a name registered differently elsewhere) gets here; the
        // service keeps working with metrics that are not exported.
        tracing::error!(%error, "cannot register the model metrics; they will not be exported");
        Metrics::unregistered()
    })
});

/// Latency buckets, seconds: 100 µs to ~13 s.
fn seconds_buckets() -> Vec<f64> {
    (0..18).map(|i| 1e-4 * 2_f64.powi(i)).collect()
}

/// Size buckets: 1, 2, 4, ... `2^(count-1)`.
fn size_buckets(count: i32) -> Vec<f64> {
    (0..count).map(|i| 2_f64.powi(i)).collect()
}

const INFERENCE_HELP: &str = "Duration of one model run (a joined batch), seconds";
const GRAPHS_HELP: &str = "Graphs (requests) joined in one model run";
const NODES_HELP: &str = "Nodes (N) of one model run";
const QUEUE_HELP: &str = "Time a request waited from infer to the start of its run, seconds";
const ERRORS_HELP: &str = "Requests that failed or were dropped, by reason";
const INFO_HELP: &str =
    "1 for the model version serving now; labels name it and its execution provider";
const RELOADS_HELP: &str = "Model reloads that swapped in a new version or were rejected";

impl Metrics {
    /// The process's metrics (registered on first use).
    pub fn get() -> &'static Self {
        &METRICS
    }

    fn register() -> Result<Self, MetricsError> {
        Ok(Self {
            inference_seconds: register_histogram_vec(
                INFERENCE_SECONDS,
                INFERENCE_HELP,
                &["model", "provider"],
                &seconds_buckets(),
            )?,
            batch_graphs: register_histogram_vec(
                BATCH_GRAPHS,
                GRAPHS_HELP,
                &["model"],
                &size_buckets(10),
            )?,
            batch_nodes: register_histogram_vec(
                BATCH_NODES,
                NODES_HELP,
                &["model"],
                &size_buckets(17),
            )?,
            queue_wait_seconds: register_histogram_vec(
                QUEUE_WAIT_SECONDS,
                QUEUE_HELP,
                &["model"],
                &seconds_buckets(),
            )?,
            errors: register_int_counter_vec(ERRORS_TOTAL, ERRORS_HELP, &["model", "reason"])?,
            info: register_int_gauge_vec(INFO, INFO_HELP, &["model", "version", "provider"])?,
            reloads: register_int_counter_vec(RELOADS_TOTAL, RELOADS_HELP, &["model", "outcome"])?,
        })
    }

    /// The same metrics, not registered anywhere.
    fn unregistered() -> Self {
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("constant histogram definitions are valid")
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
                .expect("constant counter definitions are valid")
        };
        Self {
            inference_seconds: histogram(
                INFERENCE_SECONDS,
                INFERENCE_HELP,
                &["model", "provider"],
                seconds_buckets(),
            ),
            batch_graphs: histogram(BATCH_GRAPHS, GRAPHS_HELP, &["model"], size_buckets(10)),
            batch_nodes: histogram(BATCH_NODES, NODES_HELP, &["model"], size_buckets(17)),
            queue_wait_seconds: histogram(
                QUEUE_WAIT_SECONDS,
                QUEUE_HELP,
                &["model"],
                seconds_buckets(),
            ),
            errors: counter(ERRORS_TOTAL, ERRORS_HELP, &["model", "reason"]),
            info: IntGaugeVec::new(
                Opts::new(INFO, INFO_HELP),
                &["model", "version", "provider"],
            )
            .expect("constant gauge definitions are valid"),
            reloads: counter(RELOADS_TOTAL, RELOADS_HELP, &["model", "outcome"]),
        }
    }

    /// Counts a failed or dropped request of `model`.
    pub fn error(&self, model: &str, reason: &str) {
        self.errors.with_label_values(&[model, reason]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_increase() {
        for buckets in [seconds_buckets(), size_buckets(10), size_buckets(17)] {
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{buckets:?}");
        }
    }

    #[test]
    fn the_metrics_register_and_are_exported() {
        let metrics = Metrics::get();
        metrics.error("metrics-unit-test", reason::ABANDONED);
        let text = meshwatch_runtime::metrics::encode_text();
        assert!(
            text.contains(
                r#"meshwatch_model_errors_total{model="metrics-unit-test",reason="abandoned"} 1"#
            ),
            "{text}"
        );
        // a second registration is the same series
        let again = Metrics::register();
        assert!(again.is_ok(), "{again:?}");
    }
}
