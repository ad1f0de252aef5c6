//! The in-process path of the all-in-one mode (`meshwatch run`): snapshots handed over directly
//! (no JetStream), one report per graph and window back, with the stream's history rules.
//!
//! A [`Scorer`] keeps each graph's last T (+ late) windows like the stream worker does, scores
//! a window once, and retries a transient failure (model overloaded, reloading) in place until it
//! succeeds or the caller gives up (shutdown), so windows of a graph are reported in order.
//! Nothing is persisted: a restarted all-in-one starts its histories empty.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::features::StepFeatures;
use meshwatch_model::Server;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, Report};
use crate::error::InferError;
use crate::history::{History, Insert};
use crate::metrics::ServiceMetrics;

/// First wait before retrying a transient failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What became of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Scored {
    /// A report of the snapshot's window.
    Report(Report),
    /// The window was scored already (a duplicate snapshot).
    AlreadyScored,
    /// The window is older than the history keeps (late beyond `late_windows`).
    TooOld,
    /// No node in the history: nothing to score.
    Empty,
}

impl Scored {
    /// Metric label (the same as the stream's outcomes).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Report(_) => "scored",
            Self::AlreadyScored => "already_scored",
            Self::TooOld => "too_old",
            Self::Empty => "empty",
        }
    }
}

/// One model's in-process scorer.
#[derive(Debug)]
pub struct Scorer {
    server: Server,
    history: Mutex<History>,
    top_k: usize,
    metrics: ServiceMetrics,
}

impl Scorer {
    /// A scorer over `server` keeping `late_windows` windows beyond the model's T for late
    /// snapshots, at most `max_graphs` graphs (least recently used evicted), and `top_k`
    /// feature contributions per node in detector reports.
    pub fn new(
        server: Server,
        late_windows: usize,
        max_graphs: usize,
        top_k: usize,
        metrics: ServiceMetrics,
    ) -> Self {
        let steps = server.info().steps;
        Self {
            server,
            history: Mutex::new(History::with_late_windows(steps, late_windows, max_graphs)),
            top_k,
            metrics,
        }
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scores `snapshot`'s window with the graph's history. A retryable failure is retried
    /// with backoff until it succeeds or `cancel` fires (then the last error is returned); any
    /// other failure is returned at once. Either way the window is not marked scored.
    pub async fn score(
        &self,
        snapshot: &GraphSnapshot,
        cancel: &CancellationToken,
    ) -> Result<Scored, InferError> {
        let graph = snapshot.graph.as_str();
        let step = StepFeatures::from_snapshot(snapshot);
        let inserted = self.history().insert(graph, snapshot.window_ms, step);
        let outcome = match inserted {
            Insert::New => {
                self.score_window(graph, snapshot.window_start_ms, cancel)
                    .await
            }
            Insert::AlreadyScored => Ok(Scored::AlreadyScored),
            Insert::TooOld => Ok(Scored::TooOld),
        };
        let label = match &outcome {
            Ok(scored) => scored.label(),
            Err(error) => error.reason(),
        };
        self.metrics.windows.with_label_values(&[label]).inc();
        let graphs = self.history().graphs();
        self.metrics
            .history_graphs
            .set(i64::try_from(graphs).unwrap_or(i64::MAX));
        outcome
    }

    async fn score_window(
        &self,
        graph: &str,
        window_start_ms: i64,
        cancel: &CancellationToken,
    ) -> Result<Scored, InferError> {
        let Some((window_ms, steps)) = self.history().window(graph, window_start_ms) else {
            return Ok(Scored::Empty);
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            match engine::infer_steps(&self.server, graph, window_ms, &steps, self.top_k).await {
                Ok(report) => {
                    self.history().mark_scored(graph, window_start_ms);
                    return Ok(report.map_or(Scored::Empty, Scored::Report));
                }
                Err(error) if error.is_retryable() => {
                    tracing::debug!(%error, graph, window_start_ms, "inference failed; retrying");
                    tokio::select! {
                        () = cancel.cancelled() => return Err(error),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => return Err(error),
            }
        }
    }
}
