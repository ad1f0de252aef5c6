//! The results path of the all-in-one mode (`meshwatch run`): snapshots and reports handed over
//! in process (no JetStream), through the same [`Analyzer`] and batching [`Writer`] as the
//! service, into the configured sink (the SQLite file by default, or ClickHouse).
//!
//! A flush that fails with a retryable error (the sink is down or busy) keeps its rows and is
//! retried with a doubling, capped backoff; the caller stops handing over more meanwhile, so the
//! in-process bus fills and the ingest refuses new data with a retryable error (nothing accepted
//! is dropped). A batch the sink refuses for good (a non-retryable error) is logged with its
//! reason and counted as `dead_letter`: in-process there is no dead-letter subject to keep it.

use std::sync::Arc;
use std::time::Duration;

use meshwatch_graph::GraphSnapshot;
use meshwatch_proto::v1;
use meshwatch_runtime::Shutdown;
use meshwatch_store::{Store, StoreError, Writer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::analyzer::{Analyzed, Analyzer};
use crate::config::AggregatorConfig;
use crate::convert;
use crate::error::StartError;
use crate::metrics::{Metrics, TableRows};

/// The name of this path in the `worker` label of the metrics.
const WORKER: &str = "embedded";

/// Analysis and batching writer of the all-in-one mode.
#[derive(Debug)]
pub struct Embedded {
    analyzer: Analyzer,
    writer: Writer<Arc<dyn Store>, ()>,
    store: Arc<dyn Store>,
    /// Rows per table in `writer`.
    pending: TableRows,
    metrics: Metrics,
    retry_backoff: Duration,
    max_backoff: Duration,
}

impl Embedded {
    /// Validates `config`, opens the sink (ClickHouse connected and migrated, retried while it
    /// is unreachable until `shutdown` fires; or the SQLite file) and the analysis state.
    pub async fn open(config: &AggregatorConfig, shutdown: &Shutdown) -> Result<Self, StartError> {
        let problems = meshwatch_runtime::Validate::validate(config);
        if !problems.is_empty() {
            return Err(StartError::Config(problems));
        }
        let metrics = Metrics::register()?;
        let analyzer = Analyzer::new(
            config.thresholds.clone(),
            config.max_threshold_series,
            config.incidents.clone(),
            config.slo.clone(),
        )
        .map_err(|e| StartError::Config(vec![e.to_string()]))?;
        let store = crate::open_sink(config, shutdown).await?;
        Ok(Self {
            analyzer,
            writer: Writer::new(Arc::clone(&store), config.batch.clone()),
            store,
            pending: TableRows::default(),
            metrics,
            retry_backoff: config.results.retry_backoff,
            max_backoff: config.results.max_backoff,
        })
    }

    /// The sink.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Buffers the graph rows of `snapshot`.
    pub fn snapshot(&mut self, snapshot: &GraphSnapshot) {
        self.push(
            "snapshots",
            Analyzed {
                rows: convert::snapshot_rows(snapshot),
                ..Analyzed::default()
            },
        );
    }

    /// Buffers the score rows and incident changes of `report`; a report the analysis refuses
    /// is logged and counted (`dead_letter`).
    pub fn scores(&mut self, report: &v1::AnomalyReport) {
        match self.analyzer.scores(report) {
            Ok(analyzed) => self.push("results", analyzed),
            Err(error) => self.refused(&report.graph, report.window_start_ms, &error),
        }
        let series = self.analyzer.series();
        self.metrics
            .threshold_series
            .set(i64::try_from(series).unwrap_or(i64::MAX));
    }

    /// Buffers the forecast rows and predicted incidents of `report`.
    pub fn forecast(&mut self, report: &v1::ForecastReport) {
        match self.analyzer.forecast(report) {
            Ok(analyzed) => self.push("results", analyzed),
            Err(error) => self.refused(&report.graph, report.window_start_ms, &error),
        }
    }

    fn refused(&self, graph: &str, window_start_ms: i64, error: &dyn std::fmt::Display) {
        tracing::error!(%error, graph, window_start_ms, "report refused by the analysis; not stored");
        self.metrics
            .messages
            .with_label_values(&["results", "dead_letter"])
            .inc();
    }

    fn push(&mut self, worker: &str, analyzed: Analyzed) {
        for change in &analyzed.changes {
            self.metrics
                .incident_changes
                .with_label_values(&[change])
                .inc();
        }
        self.metrics
            .messages
            .with_label_values(&[worker, "stored"])
            .inc();
        self.pending.add(&analyzed.rows);
        self.writer.push(analyzed.rows, ());
    }

    /// When the buffered rows must be written at the latest; `None` when nothing is buffered.
    pub fn deadline(&self) -> Option<Instant> {
        self.writer.deadline()
    }

    /// Flushes when full or due.
    pub async fn flush_if_due(&mut self, give_up: &CancellationToken) -> Result<(), StoreError> {
        if !self.writer.is_empty() && self.writer.is_due(Instant::now()) {
            self.flush(give_up).await
        } else {
            Ok(())
        }
    }

    /// Writes everything buffered, retrying a retryable failure with backoff until it succeeds
    /// or `give_up` fires (then the error is returned and the rows stay buffered). A
    /// non-retryable failure drops the batch (logged, counted) and is returned.
    pub async fn flush(&mut self, give_up: &CancellationToken) -> Result<(), StoreError> {
        let mut backoff = self.retry_backoff;
        loop {
            match self.writer.flush().await {
                Ok(flushed) => {
                    self.metrics
                        .flush_seconds
                        .with_label_values(&[WORKER])
                        .observe(flushed.elapsed.as_secs_f64());
                    self.metrics.rows_written(&self.pending);
                    self.pending = TableRows::default();
                    return Ok(());
                }
                Err(error) => {
                    self.metrics
                        .flush_errors
                        .with_label_values(&[WORKER, error.kind()])
                        .inc();
                    if !error.is_retryable() {
                        let rows = self.writer.pending_rows();
                        tracing::error!(%error, rows, "the sink refused a batch; its rows are not stored");
                        self.metrics
                            .messages
                            .with_label_values(&[WORKER, "dead_letter"])
                            .inc_by(u64::try_from(self.writer.pending_units()).unwrap_or(0));
                        // Start over with an empty batch.
                        self.writer =
                            Writer::new(Arc::clone(&self.store), self.writer.config().clone());
                        self.pending = TableRows::default();
                        return Err(error);
                    }
                    tracing::warn!(%error, ?backoff, "writing to the sink failed; retrying");
                    tokio::select! {
                        () = give_up.cancelled() => return Err(error),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }
}
