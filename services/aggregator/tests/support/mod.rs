//! Shared pieces of the aggregator's system tests: a configuration for a test namespace, the
//! synthetic reports the detector and forecaster would publish, and a running aggregator.
#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use meshwatch_aggregator::config::{ConsumerConfig, SinkKind};
use meshwatch_aggregator::{AggregatorConfig, Running};
use meshwatch_analysis::ThresholdConfig;
use meshwatch_bus::subjects::consumers;
use meshwatch_bus::{MessageKind, NatsConfig};
use meshwatch_proto::v1;
use meshwatch_runtime::{Readiness, Shutdown, ShutdownReport};
use meshwatch_testkit::results::Bus;
use meshwatch_testkit::synthetic::service_name;
use prost::{Message as _, Name as _};

/// The graph of every test.
pub const GRAPH: &str = "shop";
/// Window length.
pub const WINDOW_MS: u32 = 10_000;
/// First window's start: an hour ago, aligned to the window (recent, so that the tables' TTLs
/// keep the rows).
pub fn epoch_ms() -> i64 {
    static EPOCH: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        let hour_ago = now - 3_600_000;
        hour_ago - hour_ago % i64::from(WINDOW_MS)
    });
    *EPOCH
}
/// Services of the chain (`frontend`, `svc-1`, `svc-2`, `svc-3`), plus the `user` node.
pub const SERVICES: usize = 4;
/// Nodes per window (the services and `user`).
pub const NODES: usize = SERVICES + 1;
/// Windows with the fault on `svc-3` (and symptoms on its callers).
pub const FAULT: std::ops::RangeInclusive<i64> = 30..=33;
/// The faulty service.
pub const CULPRIT: &str = "svc-3";
/// Forecast horizons per report.
pub const HORIZONS: u32 = 3;
/// SLO on `latency_p99_ms` that the culprit's forecasts cross during the fault.
pub const SLO_P99_MS: f64 = 500.0;
/// Model version in the reports.
pub const MODEL_VERSION: &str = "1";

/// Nodes of a window, sorted.
pub fn nodes() -> Vec<String> {
    let mut nodes: Vec<String> = (0..SERVICES).map(service_name).collect();
    nodes.push("user".to_owned());
    nodes.sort();
    nodes
}

/// A configuration on `nats` (a test namespace): low calibration, short batches and backoffs.
pub fn config(nats: &NatsConfig) -> AggregatorConfig {
    let mut config = AggregatorConfig::default();
    config.admin.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.shutdown.grace = Duration::from_secs(10);
    config.nats = nats.clone();
    config.batch.max_delay = Duration::from_millis(200);
    config.thresholds = ThresholdConfig {
        warmup_windows: 5,
        calibration_windows: 20,
        risk: 1e-3,
        ..ThresholdConfig::default()
    };
    config
        .slo
        .limits
        .insert("latency_p99_ms".to_owned(), SLO_P99_MS);
    for (consumer, name) in [
        (&mut config.snapshots, consumers::AGGREGATOR_SNAPSHOTS),
        (&mut config.results, consumers::AGGREGATOR_RESULTS),
    ] {
        *consumer = ConsumerConfig {
            fetch_expires: Duration::from_millis(200),
            ack_wait: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..ConsumerConfig::named(name)
        };
    }
    config.sink.kind = SinkKind::Clickhouse;
    config
}

/// Score of `node` in window `i`: a small deterministic wobble, and during [`FAULT`] a clear
/// anomaly on the culprit with weaker symptoms on its callers.
pub fn score(node: &str, i: i64) -> f32 {
    // Deterministic noise with an exponential tail (uniform from the classic shader hash).
    let salt: u32 = node.bytes().map(u32::from).sum();
    let x = (i as f64 * 12.9898 + f64::from(salt) * 78.233).sin() * 43_758.545_3;
    let u = (x - x.floor()).clamp(1e-6, 1.0);
    let base = 0.10 + 0.02 * (-u.ln()) as f32;
    if !FAULT.contains(&i) {
        return base;
    }
    match node {
        "svc-3" => 5.0,
        "svc-2" => 2.0,
        "svc-1" => 1.5,
        "frontend" => 1.2,
        _ => base,
    }
}

/// The detector's report of window `i`.
pub fn anomaly_report(i: i64) -> v1::AnomalyReport {
    let mut edges: Vec<v1::CallEdge> = (0..SERVICES)
        .map(|s| v1::CallEdge {
            caller: if s == 0 {
                "user".to_owned()
            } else {
                service_name(s - 1)
            },
            callee: service_name(s),
        })
        .collect();
    edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
    v1::AnomalyReport {
        graph: GRAPH.to_owned(),
        window_start_ms: epoch_ms() + i * i64::from(WINDOW_MS),
        window_ms: WINDOW_MS,
        model: Some(v1::ModelRef {
            name: "detector".to_owned(),
            version: MODEL_VERSION.to_owned(),
            execution_provider: "cpu".to_owned(),
        }),
        steps: 12,
        observed_steps: 12,
        scores: nodes()
            .into_iter()
            .map(|node| v1::NodeScore {
                score: score(&node, i),
                present: true,
                contributions: vec![v1::FeatureContribution {
                    feature: "latency_p99".to_owned(),
                    value: score(&node, i) * 0.6,
                }],
                node,
                ..v1::NodeScore::default()
            })
            .collect(),
        edges,
    }
}

/// The forecaster's report from window `i`: `latency_p99_ms` of each service for the next
/// [`HORIZONS`] windows; the culprit's crosses [`SLO_P99_MS`] from the fault's first window on.
pub fn forecast_report(i: i64) -> v1::ForecastReport {
    let start = epoch_ms() + i * i64::from(WINDOW_MS);
    v1::ForecastReport {
        graph: GRAPH.to_owned(),
        window_start_ms: start,
        window_ms: WINDOW_MS,
        model: Some(v1::ModelRef {
            name: "forecaster".to_owned(),
            version: MODEL_VERSION.to_owned(),
            execution_provider: "cpu".to_owned(),
        }),
        steps: 12,
        observed_steps: 12,
        horizon: HORIZONS,
        forecasts: (0..SERVICES)
            .map(|s| {
                let node = service_name(s);
                let level = if node == CULPRIT && FAULT.contains(&i) {
                    900.0
                } else {
                    10.0 + s as f32
                };
                v1::NodeForecast {
                    node,
                    present: true,
                    metrics: vec![v1::MetricForecast {
                        metric: "latency_p99_ms".to_owned(),
                        points: (1..=HORIZONS)
                            .map(|h| v1::ForecastPoint {
                                horizon: h,
                                target_window_start_ms: start + i64::from(h) * i64::from(WINDOW_MS),
                                value: level,
                                lower: level * 0.8,
                                upper: level * 1.2,
                            })
                            .collect(),
                    }],
                    ..v1::NodeForecast::default()
                }
            })
            .collect(),
    }
}

/// Publishes windows `windows`: snapshots, anomaly reports and forecast reports.
pub async fn publish_windows(bus: &Bus, windows: std::ops::Range<i64>) -> anyhow::Result<()> {
    for i in windows {
        bus.publish_windows(GRAPH, epoch_ms(), WINDOW_MS, i..i + 1, SERVICES, "test")
            .await?;
        let report = anomaly_report(i);
        bus.publish_result(
            MessageKind::Score,
            GRAPH,
            report.window_start_ms,
            MODEL_VERSION,
            &v1::AnomalyReport::full_name(),
            report.encode_to_vec(),
        )
        .await?;
        let forecast = forecast_report(i);
        bus.publish_result(
            MessageKind::Forecast,
            GRAPH,
            forecast.window_start_ms,
            MODEL_VERSION,
            &v1::ForecastReport::full_name(),
            forecast.encode_to_vec(),
        )
        .await?;
    }
    Ok(())
}

/// A running aggregator and its shutdown tree.
#[derive(Debug)]
pub struct Aggregator {
    pub shutdown: Shutdown,
    pub running: Running,
}

impl Aggregator {
    /// Starts one on `config`.
    pub async fn start(config: AggregatorConfig) -> anyhow::Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let shutdown = Shutdown::new(Readiness::new());
        let running = tokio::time::timeout(
            Duration::from_secs(60),
            meshwatch_aggregator::run(config, &shutdown),
        )
        .await
        .context("starting the aggregator timed out")??;
        Ok(Self { shutdown, running })
    }

    /// Whether every readiness condition is met.
    pub fn is_ready(&self) -> bool {
        self.shutdown.readiness().is_ready()
    }

    /// Triggers shutdown and waits for the drain.
    pub async fn stop(self) -> ShutdownReport {
        self.stop_within(Duration::from_secs(15)).await
    }

    /// Triggers shutdown and waits up to `grace` for the drain.
    pub async fn stop_within(self, grace: Duration) -> ShutdownReport {
        self.shutdown.trigger("test");
        self.shutdown.wait(grace).await
    }
}

/// Polls `check` until it returns `Ok(true)` or `timeout` passes; the last error or value is
/// in the failure.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => "not yet".to_owned(),
            Err(error) => format!("{error:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{what}: not reached within {timeout:?} ({last})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One number from a ClickHouse query.
pub async fn number(url: &str, sql: &str) -> anyhow::Result<u64> {
    let body = meshwatch_testkit::clickhouse::post(url, sql).await?;
    body.trim()
        .parse()
        .with_context(|| format!("{sql:?} answered {body:?}"))
}

/// Checks that `value` is `want`, naming `what`.
pub fn expect_eq(what: &str, value: u64, want: u64) -> anyhow::Result<()> {
    ensure!(value == want, "{what}: {value}, expected {want}");
    Ok(())
}

/// The JetStream state of `consumer` on `stream`: delivered-unacknowledged
/// (`num_ack_pending`) and not yet delivered (`num_pending`) messages.
pub async fn consumer_info(
    bus: &Bus,
    stream: String,
    consumer: &str,
) -> anyhow::Result<async_nats::jetstream::consumer::Info> {
    Ok(bus
        .context
        .get_stream(stream)
        .await?
        .consumer_info(consumer)
        .await?)
}
