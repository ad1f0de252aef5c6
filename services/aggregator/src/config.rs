//! Configuration of `meshwatch-aggregator`: strict TOML (unknown keys are errors), defaults for
//! every key, every problem reported at once before anything is bound or connected.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use meshwatch_analysis::{IncidentConfig, SloConfig, ThresholdConfig};
use meshwatch_bus::NatsConfig;
use meshwatch_bus::consumer::PullSettings;
use meshwatch_bus::subjects::consumers;
use meshwatch_runtime::service::ServiceConfig;
use meshwatch_runtime::{AdminConfig, LogConfig, ShutdownConfig, Validate, nested};
use meshwatch_store::{BatchConfig, ClickHouseConfig, StoreError};
use serde::{Deserialize, Serialize};

/// Default admin (metrics, probes) port of the aggregator.
pub const ADMIN_PORT: u16 = 9467;

/// The whole configuration of `meshwatch-aggregator`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// Metrics and probes (`/metrics`, `/livez`, `/readyz`); default `0.0.0.0:9467`.
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
    /// Drain after SIGTERM.
    pub shutdown: ShutdownConfig,
    /// NATS JetStream: where snapshots, scores and forecasts come from.
    pub nats: NatsConfig,
    /// Where rows go.
    pub sink: SinkConfig,
    /// When rows are flushed to the sink (rows, bytes, age).
    pub batch: BatchConfig,
    /// (graph, service) threshold series kept; the least recently used one is forgotten
    /// beyond it (default 100 000).
    pub max_threshold_series: usize,
    /// Adaptive thresholds on the detector's scores (SPOT / DSPOT), the same for every series.
    pub thresholds: ThresholdConfig,
    /// Incident grouping and root-cause ranking.
    pub incidents: IncidentConfig,
    /// SLOs that turn forecasts into predicted incidents.
    pub slo: SloConfig,
    /// The durable consumer on the snapshots stream (graph rows).
    pub snapshots: ConsumerConfig,
    /// The durable consumer on the results stream (scores and forecasts).
    pub results: ConsumerConfig,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            admin: AdminConfig {
                listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, ADMIN_PORT)),
            },
            log: LogConfig::default(),
            shutdown: ShutdownConfig::default(),
            nats: NatsConfig::default(),
            sink: SinkConfig::default(),
            batch: BatchConfig::default(),
            max_threshold_series: 100_000,
            thresholds: ThresholdConfig::default(),
            incidents: IncidentConfig::default(),
            slo: SloConfig::default(),
            snapshots: ConsumerConfig::named(consumers::AGGREGATOR_SNAPSHOTS),
            results: ConsumerConfig::named(consumers::AGGREGATOR_RESULTS),
        }
    }
}

/// Which sink the rows go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// ClickHouse over HTTP (`sink.clickhouse`).
    #[default]
    Clickhouse,
    /// One SQLite file (`sink.sqlite.path`), the embedded sink.
    Sqlite,
}

/// Where rows go: ClickHouse (production) or a SQLite file (all-in-one mode).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// `clickhouse` (default) or `sqlite`.
    pub kind: SinkKind,
    /// ClickHouse, used with `kind = "clickhouse"`.
    pub clickhouse: ClickHouseConfig,
    /// SQLite, used with `kind = "sqlite"`.
    pub sqlite: SqliteConfig,
}

/// The embedded SQLite sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// The database file, created when missing (default `meshwatch.db`).
    pub path: PathBuf,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("meshwatch.db"),
        }
    }
}

/// One durable JetStream pull consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Durable consumer name (shared by the replicas).
    pub consumer: String,
    /// Messages fetched per pull.
    pub fetch_batch: usize,
    /// How long a pull waits for messages (also bounds how late a batch deadline is seen).
    #[serde(with = "humantime_serde")]
    pub fetch_expires: Duration,
    /// Unacknowledged messages the server lets this consumer have (keep it above what one
    /// batch holds).
    pub max_ack_pending: i64,
    /// Time before an unacknowledged message is redelivered (extended while a flush retries).
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Deliveries of a message before the server gives up on it.
    pub max_deliver: i64,
    /// First backoff after a failed flush or pull, doubled up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest backoff.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl ConsumerConfig {
    /// The defaults under the durable name `consumer`.
    pub fn named(consumer: &str) -> Self {
        Self {
            consumer: consumer.to_owned(),
            fetch_batch: 256,
            fetch_expires: Duration::from_millis(500),
            max_ack_pending: 10_000,
            ack_wait: Duration::from_secs(60),
            max_deliver: -1,
            retry_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self::named(consumers::AGGREGATOR_RESULTS)
    }
}

impl ConsumerConfig {
    /// The consumer and pull settings, as `meshwatch_bus::consumer` takes them.
    pub fn pull_settings(&self) -> PullSettings<'_> {
        PullSettings {
            consumer: &self.consumer,
            fetch_batch: self.fetch_batch,
            fetch_expires: self.fetch_expires,
            max_ack_pending: self.max_ack_pending,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            retry_backoff: self.retry_backoff,
        }
    }
}

impl Validate for ConsumerConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = self.pull_settings().problems();
        if self.max_backoff < self.retry_backoff {
            problems.push("max_backoff: must be at least retry_backoff".to_owned());
        }
        if self.max_backoff >= self.ack_wait {
            problems.push(
                "max_backoff: must be below ack_wait (held messages are kept by progress acks \
                 between retries)"
                    .to_owned(),
            );
        }
        problems
    }
}

/// The problems of a store configuration, prefixed by `prefix`.
fn store_problems(prefix: &str, result: Result<(), StoreError>) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(StoreError::Config(problems)) => problems
            .into_iter()
            .map(|p| {
                if p.starts_with(prefix) {
                    p
                } else {
                    format!("{prefix}.{p}")
                }
            })
            .collect(),
        Err(other) => vec![format!("{prefix}: {other}")],
    }
}

/// The problems of an analysis configuration, prefixed by `prefix`.
fn analysis_problems(
    prefix: &str,
    result: Result<(), meshwatch_analysis::AnalysisError>,
) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(meshwatch_analysis::AnalysisError::InvalidConfig { problems }) => problems
            .into_iter()
            .map(|p| format!("{prefix}.{p}"))
            .collect(),
        Err(other) => vec![format!("{prefix}: {other}")],
    }
}

impl Validate for AggregatorConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = nested("admin", &self.admin);
        problems.extend(nested("log", &self.log));
        problems.extend(nested("shutdown", &self.shutdown));
        problems.extend(
            self.nats
                .validate()
                .into_iter()
                .map(|p| format!("nats.{p}")),
        );
        match self.sink.kind {
            SinkKind::Clickhouse => problems.extend(store_problems(
                "sink.clickhouse",
                self.sink.clickhouse.validate(),
            )),
            SinkKind::Sqlite => {
                if self.sink.sqlite.path.as_os_str().is_empty() {
                    problems.push("sink.sqlite.path: must not be empty".to_owned());
                }
            }
        }
        problems.extend(store_problems("batch", self.batch.validate()));
        if self.max_threshold_series == 0 {
            problems.push("max_threshold_series: must be at least 1".to_owned());
        }
        problems.extend(analysis_problems("thresholds", self.thresholds.validate()));
        problems.extend(analysis_problems("incidents", self.incidents.validate()));
        problems.extend(analysis_problems("slo", self.slo.validate()));
        problems.extend(nested("snapshots", &self.snapshots));
        problems.extend(nested("results", &self.results));
        if self.snapshots.consumer == self.results.consumer {
            problems.push("snapshots.consumer, results.consumer: must differ".to_owned());
        }
        problems
    }
}

impl ServiceConfig for AggregatorConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn grace(&self) -> Duration {
        self.shutdown.grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = AggregatorConfig::default();
        assert_eq!(config.validate(), Vec::<String>::new());
        assert_eq!(config.admin.listen.port(), ADMIN_PORT);
        assert_eq!(config.snapshots.consumer, consumers::AGGREGATOR_SNAPSHOTS);
        assert_eq!(config.results.consumer, consumers::AGGREGATOR_RESULTS);
    }

    #[test]
    fn a_partly_set_consumer_table_keeps_its_own_consumer_name() {
        let args = meshwatch_runtime::CommonArgs {
            set: vec!["snapshots.fetch_batch=10".to_owned()],
            ..meshwatch_runtime::CommonArgs::default()
        };
        let config: AggregatorConfig =
            meshwatch_runtime::load_with_env(&args, std::iter::empty::<(String, String)>())
                .expect("valid");
        assert_eq!(config.snapshots.fetch_batch, 10);
        assert_eq!(
            config.snapshots.consumer,
            AggregatorConfig::default().snapshots.consumer
        );
        assert_ne!(config.snapshots.consumer, config.results.consumer);
    }

    #[test]
    fn parses_strictly() {
        let text = r#"
            max_threshold_series = 10
            [sink]
            kind = "sqlite"
            sqlite.path = "/tmp/x.db"
            [thresholds]
            calibration_windows = 10
            risk = 0.01
            [slo.limits]
            latency_p99_ms = 500.0
            [results]
            fetch_batch = 8
            ack_wait = "45s"
        "#;
        let config: AggregatorConfig = toml::from_str(text).expect("parses");
        assert_eq!(config.sink.kind, SinkKind::Sqlite);
        assert_eq!(config.thresholds.calibration_windows, 10);
        assert_eq!(config.results.fetch_batch, 8);
        assert_eq!(config.results.consumer, consumers::AGGREGATOR_RESULTS);
        assert_eq!(config.validate(), Vec::<String>::new());
        assert!(toml::from_str::<AggregatorConfig>("[sink]\nknd = \"sqlite\"").is_err());
        assert!(toml::from_str::<AggregatorConfig>("[thresholds]\nrisc = 0.1").is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let mut config = AggregatorConfig {
            max_threshold_series: 0,
            ..AggregatorConfig::default()
        };
        config.thresholds.risk = 2.0;
        config.batch.max_rows = 0;
        config.results.fetch_batch = 0;
        config.results.max_backoff = Duration::from_secs(120);
        config.snapshots.consumer = config.results.consumer.clone();
        config.sink.clickhouse.database = "no-dashes".to_owned();
        let problems = config.validate();
        for key in [
            "max_threshold_series",
            "thresholds.risk",
            "batch.max_rows",
            "results.fetch_batch",
            "results.max_backoff",
            "snapshots.consumer, results.consumer",
            "sink.clickhouse",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key} missing in {problems:#?}"
            );
        }
    }
}
