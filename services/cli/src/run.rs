//! `meshwatch run`: the ingest, the detector, the forecaster and the aggregator in one process
//! (`docs/all-in-one.md`).
//!
//! - `bus = "in-process"` (the default): the ingest publishes its snapshots on an in-process bus
//!   ([`InProcessSink`]); one pipeline task scores each snapshot with both models (the stream's
//!   history rules, [`Scorer`]), and hands the snapshot and both reports to the aggregator's
//!   analysis and batching writer ([`Embedded`]), into the SQLite file by default or
//!   ClickHouse. The detector and forecaster serve their gRPC APIs as the services do.
//! - `bus = "nats"`: the four services as they run in production, on NATS JetStream (the
//!   top-level `nats` table), in one process: the same code as the four binaries.
//!
//! Shutdown (SIGTERM/SIGINT) in-process: the ingest stops its intake and flushes its open
//! windows onto the bus, then closes it; the pipeline scores and stores what is left, then the
//! model servers close. Nothing of the in-process path is durable before it reaches the sink: a
//! crash loses the windows in flight (at most the bus capacity and one batch) — use the NATS
//! topology where that matters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use meshwatch_aggregator::embedded::Embedded;
use meshwatch_aggregator::{AggregatorConfig, SinkKind};
use meshwatch_bus::{InProcessSink, NatsConfig, SnapshotMessage};
use meshwatch_inference::engine::Report;
use meshwatch_inference::local::{Scored, Scorer};
use meshwatch_inference::metrics::ServiceMetrics;
use meshwatch_inference::{Detector, Forecaster, InferenceConfig};
use meshwatch_ingest::IngestConfig;
use meshwatch_runtime::service::ServiceConfig;
use meshwatch_runtime::{LogConfig, Shutdown, ShutdownConfig, Validate, nested};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Snapshots the in-process bus holds before the ingest waits (then refuses new data).
const BUS_CAPACITY: usize = 256;
/// Share of the grace period the ingest's drain may use; the pipeline has the rest.
const INGEST_SHARE: f64 = 0.5;
/// Share of the grace period after which retries (inference, sink) give up.
const GIVE_UP_SHARE: f64 = 0.9;

/// Which bus connects the components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusKind {
    /// One process, no broker: snapshots handed over in memory.
    #[default]
    InProcess,
    /// NATS JetStream, as in the production topology.
    Nats,
}

impl BusKind {
    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Nats => "nats",
        }
    }
}

/// The configuration of `meshwatch run`: each component's own configuration under its name,
/// plus what they share.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// `in-process` (default) or `nats`.
    pub bus: BusKind,
    /// NATS of every component when `bus = "nats"` (the components' own `nats` tables must
    /// stay unset).
    pub nats: NatsConfig,
    /// Logging of the process (the components' `log` tables must stay unset).
    pub log: LogConfig,
    /// Drain budget of the process (the components' `shutdown` tables must stay unset).
    pub shutdown: ShutdownConfig,
    pub ingest: IngestConfig,
    pub detector: InferenceConfig<Detector>,
    pub forecaster: InferenceConfig<Forecaster>,
    pub aggregator: AggregatorConfig,
}

/// Whether `value` serialises like `T::default()` (a table left unset).
fn is_default<T: Serialize + Default>(value: &T) -> bool {
    match (
        serde_json::to_value(value),
        serde_json::to_value(T::default()),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

impl Validate for RunConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        problems.extend(nested("ingest", &self.ingest));
        problems.extend(nested("detector", &self.detector));
        problems.extend(nested("forecaster", &self.forecaster));
        problems.extend(nested("aggregator", &self.aggregator));
        let components = [
            (
                "ingest",
                [
                    is_default(&self.ingest.nats),
                    is_default(&self.ingest.log),
                    is_default(&self.ingest.shutdown),
                ],
            ),
            (
                "detector",
                [
                    is_default(&self.detector.nats),
                    is_default(&self.detector.log),
                    is_default(&self.detector.shutdown),
                ],
            ),
            (
                "forecaster",
                [
                    is_default(&self.forecaster.nats),
                    is_default(&self.forecaster.log),
                    is_default(&self.forecaster.shutdown),
                ],
            ),
            (
                "aggregator",
                [
                    is_default(&self.aggregator.nats),
                    is_default(&self.aggregator.log),
                    is_default(&self.aggregator.shutdown),
                ],
            ),
        ];
        for (component, unset) in components {
            for (table, unset) in ["nats", "log", "shutdown"].into_iter().zip(unset) {
                if !unset {
                    problems.push(format!(
                        "{component}.{table}: meshwatch run uses one `{table}` table for every \
                         component; set `{table}.*` instead"
                    ));
                }
            }
        }
        problems
    }
}

impl RunConfig {
    /// The components' configurations with the shared tables filled in.
    fn components(
        &self,
    ) -> (
        IngestConfig,
        InferenceConfig<Detector>,
        InferenceConfig<Forecaster>,
        AggregatorConfig,
    ) {
        let grace = self.shutdown.grace;
        let mut ingest = self.ingest.clone();
        let mut detector = self.detector.clone();
        let mut forecaster = self.forecaster.clone();
        let mut aggregator = self.aggregator.clone();
        ingest.nats = self.nats.clone();
        detector.nats = self.nats.clone();
        forecaster.nats = self.nats.clone();
        aggregator.nats = self.nats.clone();
        match self.bus {
            BusKind::Nats => {
                ingest.shutdown.grace = grace;
                detector.shutdown.grace = grace;
                forecaster.shutdown.grace = grace;
                aggregator.shutdown.grace = grace;
            }
            BusKind::InProcess => {
                ingest.shutdown.grace = grace.mul_f64(INGEST_SHARE);
                detector.shutdown.grace = grace.mul_f64(INGEST_SHARE);
                forecaster.shutdown.grace = grace.mul_f64(INGEST_SHARE);
                aggregator.shutdown.grace = grace;
                // The pipeline task feeds the model servers; no JetStream consumers.
                detector.stream.enabled = false;
                forecaster.stream.enabled = false;
            }
        }
        (ingest, detector, forecaster, aggregator)
    }
}

/// The defaults of `meshwatch run` that differ from the services' own: 10 s windows (the
/// shipped models were trained on them) and the SQLite sink.
const BASE_LAYER: &str = r#"
[ingest.graph]
window = "10s"

[aggregator.sink]
kind = "sqlite"
"#;

impl ServiceConfig for RunConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn grace(&self) -> Duration {
        self.shutdown.grace
    }

    fn base_layer() -> toml::Table {
        match toml::from_str(BASE_LAYER) {
            Ok(table) => table,
            Err(error) => {
                // A constant of this file: covered by a unit test.
                tracing::error!(%error, "the built-in defaults of meshwatch run do not parse");
                toml::Table::new()
            }
        }
    }
}

/// Loads the configuration as `meshwatch run` does (defaults, its base layer, file,
/// environment, `--set`).
pub fn load(
    args: &meshwatch_runtime::CommonArgs,
) -> Result<RunConfig, meshwatch_runtime::ConfigError> {
    meshwatch_runtime::load_with_base(args, std::env::vars_os(), RunConfig::base_layer())
}

/// Counters of the in-process pipeline (progress of `meshwatch demo`).
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Snapshots taken from the bus.
    pub snapshots: AtomicU64,
    /// Anomaly reports stored.
    pub scored: AtomicU64,
    /// Forecast reports stored.
    pub forecasts: AtomicU64,
    /// Windows the models could not score (errors logged).
    pub failed: AtomicU64,
    /// Start of the newest window handled, unix ms (0: none yet).
    pub last_window_ms: AtomicI64,
}

impl PipelineStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a started `meshwatch run` listens and writes.
#[derive(Debug, Clone)]
pub struct Running {
    pub bus: BusKind,
    /// OTLP/gRPC (traces and metrics).
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP and Zipkin.
    pub otlp_http: Option<SocketAddr>,
    /// `/metrics`, `/healthz`, `/readyz` of the ingest (the process's metrics, all components).
    pub admin: SocketAddr,
    /// The detector's and the forecaster's gRPC APIs.
    pub detector_grpc: Option<SocketAddr>,
    pub forecaster_grpc: Option<SocketAddr>,
    /// The sink, in words (`sqlite /path`, `clickhouse http://... database`).
    pub sink: String,
    /// The in-process pipeline's counters (`None` with NATS).
    pub stats: Option<Arc<PipelineStats>>,
}

/// Errors starting `meshwatch run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("ingest: {0}")]
    Ingest(#[from] meshwatch_ingest::IngestError),
    #[error("inference: {0}")]
    Inference(#[from] meshwatch_inference::StartError),
    #[error("aggregator: {0}")]
    Aggregator(#[from] meshwatch_aggregator::StartError),
    #[error("metrics: {0}")]
    Metrics(#[from] meshwatch_runtime::MetricsError),
    #[error("the in-process pipeline failed: {0}")]
    Pipeline(String),
}

fn describe_sink(config: &AggregatorConfig) -> String {
    match config.sink.kind {
        SinkKind::Sqlite => format!("sqlite {}", config.sink.sqlite.path.display()),
        SinkKind::Clickhouse => format!(
            "clickhouse {} database {}",
            config.sink.clickhouse.url, config.sink.clickhouse.database
        ),
    }
}

/// Starts every component on `shutdown`; returns once all of them serve.
pub async fn start(config: RunConfig, shutdown: &Shutdown) -> Result<Running, RunError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(RunError::Config(problems));
    }
    meshwatch_runtime::metrics::set_build_info("meshwatch-run", env!("CARGO_PKG_VERSION"))?;
    let sink = describe_sink(&config.aggregator);
    let (ingest, detector, forecaster, aggregator) = config.components();
    match config.bus {
        BusKind::Nats => {
            // Consumers first, so that the first snapshots find them bound.
            meshwatch_aggregator::run(aggregator, shutdown).await?;
            let detector = meshwatch_inference::run(detector, shutdown).await?;
            let forecaster = meshwatch_inference::run(forecaster, shutdown).await?;
            let ingest = meshwatch_ingest::run(ingest, shutdown).await?;
            Ok(Running {
                bus: BusKind::Nats,
                otlp_grpc: ingest.grpc,
                otlp_http: ingest.http,
                admin: ingest.admin,
                detector_grpc: detector.grpc,
                forecaster_grpc: forecaster.grpc,
                sink,
                stats: None,
            })
        }
        BusKind::InProcess => {
            start_in_process(ingest, detector, forecaster, aggregator, sink, shutdown).await
        }
    }
}

async fn start_in_process(
    ingest: IngestConfig,
    detector: InferenceConfig<Detector>,
    forecaster: InferenceConfig<Forecaster>,
    aggregator: AggregatorConfig,
    sink: String,
    shutdown: &Shutdown,
) -> Result<Running, RunError> {
    let sink_ready = shutdown.readiness().register("sink");
    let bus = InProcessSink::new();
    let rx = bus.subscribe(BUS_CAPACITY);

    // The model servers stay open until the pipeline has scored the last flushed window.
    let release = CancellationToken::new();
    let stream = detector.stream.clone();
    let forecaster_stream = forecaster.stream.clone();
    let detector_running =
        meshwatch_inference::run_held(detector, shutdown, Some(release.clone())).await?;
    let forecaster_running =
        meshwatch_inference::run_held(forecaster, shutdown, Some(release.clone())).await?;
    let metrics = ServiceMetrics::register()?;
    let detector_scorer = Scorer::new(
        detector_running.server.clone(),
        stream.late_windows,
        stream.max_graphs,
        stream.top_contributions,
        metrics.clone(),
    );
    let forecaster_scorer = Scorer::new(
        forecaster_running.server.clone(),
        forecaster_stream.late_windows,
        forecaster_stream.max_graphs,
        forecaster_stream.top_contributions,
        metrics,
    );
    let results = Embedded::open(&aggregator, shutdown).await?;
    sink_ready.set(true);

    // Retries (a busy model, a sink that is down) give up when the drain budget is spent.
    let give_up = CancellationToken::new();
    {
        let give_up = give_up.clone();
        let root = shutdown.token();
        let budget = aggregator.shutdown.grace.mul_f64(GIVE_UP_SHARE);
        tokio::spawn(async move {
            root.cancelled().await;
            tokio::time::sleep(budget).await;
            give_up.cancel();
        });
    }
    let stats = Arc::new(PipelineStats::default());
    let pipeline = Pipeline {
        detector: detector_scorer,
        forecaster: forecaster_scorer,
        results,
        stats: Arc::clone(&stats),
        give_up,
    };
    shutdown.spawn("pipeline", async move {
        let outcome = pipeline.run(rx).await;
        release.cancel();
        outcome
    });

    let ingest =
        meshwatch_ingest::run_on(ingest, shutdown, meshwatch_ingest::Bus::InProcess(bus)).await?;
    tracing::info!(
        otlp_grpc = ?ingest.grpc,
        otlp_http = ?ingest.http,
        admin = %ingest.admin,
        sink,
        "meshwatch run started (in-process bus)"
    );
    Ok(Running {
        bus: BusKind::InProcess,
        otlp_grpc: ingest.grpc,
        otlp_http: ingest.http,
        admin: ingest.admin,
        detector_grpc: detector_running.grpc,
        forecaster_grpc: forecaster_running.grpc,
        sink,
        stats: Some(stats),
    })
}

/// The in-process pipeline: bus → both models → analysis → sink.
struct Pipeline {
    detector: Scorer,
    forecaster: Scorer,
    results: Embedded,
    stats: Arc<PipelineStats>,
    give_up: CancellationToken,
}

impl Pipeline {
    /// Handles snapshots until the bus closes (the ingest drained), then writes what is left.
    async fn run(mut self, mut rx: mpsc::Receiver<SnapshotMessage>) -> Result<(), RunError> {
        loop {
            let deadline = self.results.deadline();
            let received = tokio::select! {
                received = rx.recv() => received,
                () = sleep_until(deadline) => {
                    self.flush_if_due().await;
                    continue;
                }
            };
            let Some(message) = received else { break };
            self.handle(&message).await;
            // Full or due: written before the next snapshot is taken (backpressure).
            self.flush_if_due().await;
        }
        self.results
            .flush(&self.give_up)
            .await
            .map_err(|error| RunError::Pipeline(format!("the last batch was not stored: {error}")))
    }

    async fn flush_if_due(&mut self) {
        if let Err(error) = self.results.flush_if_due(&self.give_up).await {
            tracing::error!(%error, "writing to the sink failed");
        }
    }

    async fn handle(&mut self, message: &SnapshotMessage) {
        let snapshot = match message.decode() {
            Ok(snapshot) => snapshot,
            Err(error) => {
                // Encoded by this process: a bug, not bad input.
                tracing::error!(%error, graph = message.graph(), "undecodable snapshot on the in-process bus");
                PipelineStats::add(&self.stats.failed);
                return;
            }
        };
        PipelineStats::add(&self.stats.snapshots);
        self.results.snapshot(&snapshot);
        let (scores, forecast) = tokio::join!(
            self.detector.score(&snapshot, &self.give_up),
            self.forecaster.score(&snapshot, &self.give_up)
        );
        for outcome in [scores, forecast] {
            match outcome {
                Ok(Scored::Report(Report::Anomaly(report))) => {
                    self.results.scores(&report);
                    PipelineStats::add(&self.stats.scored);
                }
                Ok(Scored::Report(Report::Forecast(report))) => {
                    self.results.forecast(&report);
                    PipelineStats::add(&self.stats.forecasts);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(
                        %error,
                        graph = snapshot.graph,
                        window_start_ms = snapshot.window_start_ms,
                        "window not scored"
                    );
                    PipelineStats::add(&self.stats.failed);
                }
            }
        }
        self.stats
            .last_window_ms
            .fetch_max(snapshot.window_start_ms, Ordering::Relaxed);
    }
}

/// Sleeps until `deadline`, forever when there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use meshwatch_runtime::CommonArgs;

    use super::*;

    fn load_sets(sets: &[&str]) -> Result<RunConfig, meshwatch_runtime::ConfigError> {
        let args = CommonArgs {
            set: sets.iter().map(|s| (*s).to_owned()).collect(),
            ..CommonArgs::default()
        };
        meshwatch_runtime::load_with_base(
            &args,
            std::iter::empty::<(String, String)>(),
            RunConfig::base_layer(),
        )
    }

    #[test]
    fn defaults_are_the_in_process_bus_ten_second_windows_and_sqlite() {
        assert!(!RunConfig::base_layer().is_empty());
        let config = load_sets(&[]).expect("valid");
        assert_eq!(config.bus, BusKind::InProcess);
        assert_eq!(config.ingest.graph.window, Duration::from_secs(10));
        assert_eq!(config.aggregator.sink.kind, SinkKind::Sqlite);
    }

    #[test]
    fn the_base_layer_survives_other_keys_of_the_same_tables() {
        let config = load_sets(&[
            "aggregator.sink.sqlite.path=/tmp/x.db",
            "ingest.graph.allowed_lateness=2s",
        ])
        .expect("valid");
        assert_eq!(config.aggregator.sink.kind, SinkKind::Sqlite);
        assert_eq!(config.ingest.graph.window, Duration::from_secs(10));
        let config = load_sets(&["aggregator.sink.kind=clickhouse", "ingest.graph.window=30s"])
            .expect("valid");
        assert_eq!(config.aggregator.sink.kind, SinkKind::Clickhouse);
        assert_eq!(config.ingest.graph.window, Duration::from_secs(30));
    }

    #[test]
    fn component_tables_shared_by_the_process_are_refused() {
        let error = load_sets(&[
            "detector.nats.url=nats://elsewhere:4222",
            "ingest.log.level=debug",
        ])
        .expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("detector.nats"), "{text}");
        assert!(text.contains("ingest.log"), "{text}");
        assert!(load_sets(&["nats.url=nats://elsewhere:4222", "bus=nats"]).is_ok());
    }

    #[test]
    fn the_components_get_the_shared_tables_and_the_in_process_settings() {
        let config = load_sets(&["nats.url=nats://n:4222", "shutdown.grace=20s"]).expect("valid");
        let (ingest, detector, forecaster, aggregator) = config.components();
        assert_eq!(ingest.nats.url, "nats://n:4222");
        assert_eq!(aggregator.nats.url, "nats://n:4222");
        assert!(!detector.stream.enabled && !forecaster.stream.enabled);
        assert_eq!(ingest.shutdown.grace, Duration::from_secs(10));
        assert_eq!(aggregator.shutdown.grace, Duration::from_secs(20));
        let config = load_sets(&["bus=nats"]).expect("valid");
        let (_, detector, _, _) = config.components();
        assert!(detector.stream.enabled);
    }

    #[test]
    fn unknown_keys_and_bad_bus_names_are_errors() {
        let error = load_sets(&["ingest.graph.windw=10s"]).expect_err("unknown");
        assert!(error.to_string().contains("windw"), "{error}");
        let error = load_sets(&["bus=kafka"]).expect_err("bad bus");
        assert!(error.to_string().contains("bus"), "{error}");
    }
}
