//! Meshwatch aggregator (ARCHITECTURE.md §1, §6, §7): the results of the pipeline, stored.
//!
//! Two durable JetStream pull consumers feed one sink (ClickHouse, or the embedded SQLite
//! file):
//!
//! ```text
//!  MESHWATCH_SNAPSHOTS ── aggregator-snapshots ──► graph_nodes, graph_edges
//!  MESHWATCH_RESULTS   ── aggregator-results ────► anomaly_scores (score, SPOT threshold)
//!    (scores.>, forecasts.>)                       incidents (detected: grouped, ranked root
//!                                                  causes; predicted: forecast over an SLO)
//!                                                  forecasts
//! ```
//!
//! - [`config`]: [`AggregatorConfig`], strict, with `--check-config`;
//! - [`convert`]: messages and analysis results to rows (pure);
//! - [`analyzer`]: thresholds and incident tracking over the score reports (in memory);
//! - [`worker`]: consumer, batching writer, ack after the flush, retries;
//! - [`metrics`]: the `meshwatch_aggregator_*` metrics;
//! - [`run`]: sink, streams, the two workers as named tasks, readiness, drain.
//!
//! Delivery is at least once and storage exactly once per key: a message is double-acked only
//! after the flush that holds its rows succeeded, and every row has a deterministic key
//! (ReplacingMergeTree in ClickHouse, upserts in SQLite), so a redelivered message replaces its
//! own rows.

pub mod analyzer;
pub mod config;
pub mod convert;
pub mod embedded;
pub mod error;
pub mod metrics;
pub mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshwatch_runtime::{Shutdown, Validate, bind_admin, serve_admin};
use meshwatch_store::{ClickHouseStore, SqliteStore, Store, StoreError};
use tokio_util::sync::CancellationToken;

pub use config::{AggregatorConfig, SinkKind};
pub use error::StartError;

use crate::analyzer::Analyzer;
use crate::worker::{Handler, Worker, WorkerParts};

/// Share of the shutdown grace a failing flush may keep retrying before its messages are
/// given back.
const DRAIN_SHARE: f64 = 0.8;
/// Longest backoff while starting (sink, streams).
const MAX_START_BACKOFF: Duration = Duration::from_secs(10);

/// Where a started aggregator listens and writes.
#[derive(Debug, Clone)]
pub struct Running {
    /// The admin endpoint (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// The sink's kind (`clickhouse`, `sqlite`).
    pub sink: &'static str,
}

/// Waits `wait` or until shutdown starts; `Err` when it did.
async fn pause(shutdown: &Shutdown, wait: Duration, what: &'static str) -> Result<(), StartError> {
    tokio::select! {
        () = shutdown.cancelled() => Err(StartError::Interrupted(what)),
        () = tokio::time::sleep(wait) => Ok(()),
    }
}

/// Opens the sink: ClickHouse connected and migrated (TTLs applied; retried while it is
/// unreachable), or the SQLite file.
async fn open_sink(
    config: &AggregatorConfig,
    shutdown: &Shutdown,
) -> Result<Arc<dyn Store>, StartError> {
    match config.sink.kind {
        SinkKind::Sqlite => {
            let path = config.sink.sqlite.path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                .await
                .map_err(|e| {
                    StartError::Store(StoreError::Embedded {
                        path: config.sink.sqlite.path.display().to_string(),
                        message: e.to_string(),
                    })
                })??;
            tracing::info!(path = %store.path().display(), "sqlite sink open");
            Ok(Arc::new(store))
        }
        SinkKind::Clickhouse => {
            let mut wait = config.results.retry_backoff;
            loop {
                match ClickHouseStore::connect(&config.sink.clickhouse).await {
                    Ok((store, report)) => {
                        tracing::info!(
                            url = %config.sink.clickhouse.url,
                            database = %config.sink.clickhouse.database,
                            ?report,
                            "clickhouse sink ready"
                        );
                        return Ok(Arc::new(store));
                    }
                    Err(error) if error.is_retryable() => {
                        tracing::warn!(%error, "clickhouse not reachable; retrying");
                        pause(shutdown, wait, "connecting to clickhouse").await?;
                        wait = (wait * 2).min(MAX_START_BACKOFF);
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
}

/// Starts the aggregator: admin endpoint (not ready), sink (ClickHouse migrated), NATS streams,
/// then the `snapshots` and `results` workers as named tasks. Returns once they run. When
/// `shutdown` fires the workers stop fetching, flush, ack and return within the grace period.
pub async fn run(config: AggregatorConfig, shutdown: &Shutdown) -> Result<Running, StartError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(StartError::Config(problems));
    }
    let metrics = metrics::Metrics::register()?;
    meshwatch_runtime::metrics::set_build_info("aggregator", env!("CARGO_PKG_VERSION"))?;
    if let Err(error) = meshwatch_bus::metrics::register(meshwatch_runtime::metrics::registry()) {
        tracing::debug!(%error, "bus metrics registration");
    }
    let analyzer = Analyzer::new(
        config.thresholds.clone(),
        config.max_threshold_series,
        config.incidents.clone(),
        config.slo.clone(),
    )
    .map_err(|e| StartError::Config(vec![e.to_string()]))?;

    let readiness = shutdown.readiness().clone();
    let sink_ready = Arc::new(readiness.register("sink"));
    let snapshots_ready = readiness.register("snapshots");
    let results_ready = readiness.register("results");

    let listener = bind_admin(config.admin.listen).await?;
    let admin = listener
        .local_addr()
        .map_err(|source| meshwatch_runtime::AdminError::Bind {
            addr: config.admin.listen,
            source,
        })?;
    let admin_token = shutdown.drained_token();
    let admin_readiness = readiness.clone();
    tokio::spawn(async move {
        if let Err(error) = serve_admin(listener, admin_readiness, admin_token).await {
            tracing::error!(%error, "admin server failed");
        }
    });

    let store = open_sink(&config, shutdown).await?;
    let sink = store.kind();
    sink_ready.set(true);

    let client = meshwatch_bus::connect_in_background(&config.nats).await?;
    let context = meshwatch_bus::context(client, &config.nats);
    let names = config
        .nats
        .names()
        .map_err(|e| meshwatch_bus::BusError::Config(e.to_string()))?;
    let mut wait = config.results.retry_backoff;
    loop {
        match meshwatch_bus::ensure_streams(&context, &config.nats).await {
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(%error, "cannot ensure the streams; retrying");
                pause(shutdown, wait, "ensuring the streams").await?;
                wait = (wait * 2).min(MAX_START_BACKOFF);
            }
        }
    }

    // Fires when a flush still failing at shutdown has used its share of the grace period.
    let hard = CancellationToken::new();
    {
        let hard = hard.clone();
        let root = shutdown.token();
        let budget = config.shutdown.grace.mul_f64(DRAIN_SHARE);
        tokio::spawn(async move {
            root.cancelled().await;
            tokio::time::sleep(budget).await;
            hard.cancel();
        });
    }

    let handlers = [
        (
            "snapshots",
            Handler::Snapshots,
            config.snapshots.clone(),
            snapshots_ready,
        ),
        (
            "results",
            Handler::Results(Arc::new(Mutex::new(analyzer))),
            config.results.clone(),
            results_ready,
        ),
    ];
    for (name, handler, consumer, bound) in handlers {
        let worker = Worker::new(WorkerParts {
            handler,
            config: consumer,
            names: names.clone(),
            context: context.clone(),
            store: Arc::clone(&store),
            batch: config.batch.clone(),
            metrics: metrics.clone(),
            sink_ready: Arc::clone(&sink_ready),
        });
        let cancel = shutdown.child_token();
        let hard = hard.clone();
        shutdown.spawn(name, async move {
            worker.run(cancel, hard, bound).await;
            Ok::<(), StartError>(())
        });
    }
    tracing::info!(%admin, sink, "meshwatch-aggregator started");
    Ok(Running { admin, sink })
}
