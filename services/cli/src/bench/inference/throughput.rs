//! `meshwatch bench inference --throughput`: graphs scored per second through
//! [`Server::infer`] with many small requests in flight, batching off and on.
//!
//! Each mode starts its own [`Server`] (same model, provider and threads) and keeps
//! `concurrency` requests in flight for the measuring time, each a synthetic graph of
//! `nodes` nodes (different seeds). Graphs per run come from the served model's
//! `meshwatch_model_batch_graphs` histogram (the change over the measurement).

use std::path::Path;
use std::time::{Duration, Instant};

use meshwatch_model::metrics::Metrics;
use meshwatch_model::{ModelKind, Server, ServingOptions};
use serde::Serialize;

use super::input::{GraphSpec, synthetic_inputs};
use super::percentile_ms;

/// One batching mode of the throughput run.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    pub name: &'static str,
    pub max_batch_wait: Duration,
    pub max_batch_nodes: usize,
}

/// The modes compared: one graph per run; what is queued already joins (no wait); joined
/// within a 2 ms wait up to 4,096 nodes (the service default).
pub const MODES: [Mode; 3] = [
    Mode {
        name: "off (1 graph per run)",
        max_batch_wait: Duration::ZERO,
        max_batch_nodes: 1,
    },
    Mode {
        name: "queued only (wait 0)",
        max_batch_wait: Duration::ZERO,
        max_batch_nodes: 4096,
    },
    Mode {
        name: "on (wait 2 ms)",
        max_batch_wait: Duration::from_millis(2),
        max_batch_nodes: 4096,
    },
];

/// What one mode achieved.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    pub mode: String,
    pub max_batch_wait_ms: f64,
    pub max_batch_nodes: usize,
    pub graphs: u64,
    pub errors: u64,
    pub seconds: f64,
    pub graphs_per_s: f64,
    /// Graphs per model run (from the batch histogram).
    pub mean_batch_graphs: f64,
    pub runs: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The load of a throughput run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub steps: usize,
    pub nodes: usize,
    pub edges_per_node: usize,
    pub window_start: Option<(i64, i64)>,
    pub concurrency: usize,
    pub duration: Duration,
    pub seed: u64,
}

/// (count, sum) of the batch-graphs histogram of `model`.
fn batch_graphs(model: &str) -> (u64, f64) {
    let histogram = Metrics::get().batch_graphs.with_label_values(&[model]);
    (histogram.get_sample_count(), histogram.get_sample_sum())
}

/// Runs one mode: a fresh server, `load.concurrency` clients for `load.duration`.
pub async fn measure(
    dir: &Path,
    kind: ModelKind,
    base: &ServingOptions,
    mode: Mode,
    load: Load,
) -> anyhow::Result<ThroughputRow> {
    let options = ServingOptions {
        max_batch_wait: mode.max_batch_wait,
        max_batch_nodes: mode.max_batch_nodes,
        queue_capacity: base.queue_capacity.max(load.concurrency),
        ..base.clone()
    };
    let server = Server::start(dir.to_path_buf(), kind, options).await?;
    let name = server.info().name.clone();
    let (count_before, sum_before) = batch_graphs(&name);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + load.duration;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..load.concurrency.max(1) {
        let server = server.clone();
        let inputs = synthetic_inputs(&GraphSpec {
            steps: load.steps,
            nodes: load.nodes,
            edges_per_node: load.edges_per_node,
            seed: load.seed.wrapping_add(client as u64),
            window_start: load.window_start,
        });
        clients.spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while tokio::time::Instant::now() < deadline {
                let request = inputs.clone();
                let sent = Instant::now();
                match server.infer(request).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0u64);
    while let Some(done) = clients.join_next().await {
        let (l, e) = done?;
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    server.close().await;
    let (count_after, sum_after) = batch_graphs(&name);
    let runs = count_after.saturating_sub(count_before);
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let (graphs_per_s, mean_batch_graphs) = (
        latencies.len() as f64 / seconds,
        if runs == 0 {
            0.0
        } else {
            (sum_after - sum_before) / runs as f64
        },
    );
    latencies.sort_unstable();
    Ok(ThroughputRow {
        mode: mode.name.to_owned(),
        max_batch_wait_ms: mode.max_batch_wait.as_secs_f64() * 1e3,
        max_batch_nodes: mode.max_batch_nodes,
        graphs: latencies.len() as u64,
        errors,
        seconds,
        graphs_per_s,
        mean_batch_graphs,
        runs,
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
    })
}
