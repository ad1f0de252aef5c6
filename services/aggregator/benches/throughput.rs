//! Windows per second the aggregator stores: `W` windows of one graph of `N` services — a graph
//! snapshot, an anomaly report and a forecast report (4 targets × 5 horizons) each — published
//! to JetStream first, then one aggregator (the service's `run`, both consumers, the analysis)
//! started against a real NATS and ClickHouse; timed from its start until every row is in
//! ClickHouse. `docs/benchmarks.md` records the results.
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:4222 CLICKHOUSE_URL=http://127.0.0.1:8123 \
//!     cargo bench -p meshwatch-aggregator --bench throughput -- [SERVICES [WINDOWS]]
//! ```
//!
//! (`scripts/nats.sh start`, `scripts/clickhouse.sh start` and their `.env` files give both.)
//! Under `cargo test --all-targets` (no `--bench` flag) it runs once on 5 services × 20 windows,
//! so the benchmark itself stays tested.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meshwatch_aggregator::{AggregatorConfig, SinkKind};
use meshwatch_bus::MessageKind;
use meshwatch_proto::v1;
use meshwatch_runtime::{Readiness, Shutdown};
use meshwatch_testkit::results::Bus;
use meshwatch_testkit::synthetic::service_name;
use meshwatch_testkit::{clickhouse, unique_namespace};
use prost::{Message as _, Name as _};

const GRAPH: &str = "bench";
const WINDOW_MS: u32 = 10_000;
const HORIZONS: u32 = 5;
const METRICS: [&str; 4] = [
    "request_rate",
    "latency_p90_ms",
    "latency_p99_ms",
    "error_ratio",
];

fn nodes(services: usize) -> Vec<String> {
    std::iter::once("user".to_owned())
        .chain((0..services).map(service_name))
        .collect()
}

fn edges(services: usize) -> Vec<v1::CallEdge> {
    (0..services)
        .map(|s| v1::CallEdge {
            caller: if s == 0 {
                "user".to_owned()
            } else {
                service_name(s - 1)
            },
            callee: service_name(s),
        })
        .collect()
}

fn model(name: &str) -> Option<v1::ModelRef> {
    Some(v1::ModelRef {
        name: name.to_owned(),
        version: "bench".to_owned(),
        execution_provider: "cpu".to_owned(),
    })
}

fn anomaly_report(epoch_ms: i64, services: usize, i: i64) -> v1::AnomalyReport {
    v1::AnomalyReport {
        graph: GRAPH.to_owned(),
        window_start_ms: epoch_ms + i * i64::from(WINDOW_MS),
        window_ms: WINDOW_MS,
        model: model("detector"),
        steps: 12,
        observed_steps: 12,
        scores: nodes(services)
            .into_iter()
            .enumerate()
            .map(|(k, node)| {
                // A deterministic wobble, an anomaly now and then.
                let x = ((i as f64 * 12.9898 + k as f64 * 78.233).sin() * 43_758.545).fract();
                let score = if x.abs() > 0.999 {
                    5.0
                } else {
                    0.1 + 0.05 * x.abs() as f32
                };
                v1::NodeScore {
                    node,
                    score,
                    present: true,
                    contributions: vec![v1::FeatureContribution {
                        feature: "latency_p90_ms".to_owned(),
                        value: 0.6,
                    }],
                    ..v1::NodeScore::default()
                }
            })
            .collect(),
        edges: edges(services),
    }
}

fn forecast_report(epoch_ms: i64, services: usize, i: i64) -> v1::ForecastReport {
    let start = epoch_ms + i * i64::from(WINDOW_MS);
    v1::ForecastReport {
        graph: GRAPH.to_owned(),
        window_start_ms: start,
        window_ms: WINDOW_MS,
        model: model("forecaster"),
        steps: 12,
        observed_steps: 12,
        horizon: HORIZONS,
        forecasts: (0..services)
            .map(|s| v1::NodeForecast {
                node: service_name(s),
                present: true,
                metrics: METRICS
                    .iter()
                    .map(|metric| v1::MetricForecast {
                        metric: (*metric).to_owned(),
                        points: (1..=HORIZONS)
                            .map(|h| v1::ForecastPoint {
                                horizon: h,
                                target_window_start_ms: start + i64::from(h) * i64::from(WINDOW_MS),
                                value: 10.0,
                                lower: 8.0,
                                upper: 12.0,
                            })
                            .collect(),
                    })
                    .collect(),
                ..v1::NodeForecast::default()
            })
            .collect(),
    }
}

async fn count(url: &str, database: &str, table: &str) -> anyhow::Result<u64> {
    let body = clickhouse::post(url, &format!("SELECT count() FROM {database}.{table}")).await?;
    body.trim()
        .parse()
        .with_context(|| format!("count of {table}: {body:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once as a smoke test
    // of the benchmark itself, on a small graph.
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse::<usize>());
    let services = args
        .next()
        .transpose()?
        .unwrap_or(if measuring { 50 } else { 5 });
    let windows = args
        .next()
        .transpose()?
        .unwrap_or(if measuring { 1000 } else { 20 });
    let (Ok(nats_url), Ok(ch_url)) = (std::env::var("NATS_URL"), std::env::var("CLICKHOUSE_URL"))
    else {
        bail!(
            "set NATS_URL and CLICKHOUSE_URL (scripts/nats.sh start, scripts/clickhouse.sh start)"
        );
    };
    let namespace = unique_namespace("bench-aggregator");
    let database = clickhouse::unique_database("bench_aggregator");
    let bus = Bus::connect(&nats_url, &namespace).await?;

    eprintln!("publishing {windows} windows of {services} services ...");
    let published = Instant::now();
    let n = i64::try_from(windows)?;
    // Windows ending now: older ones would fall to the tables' TTLs (7 to 30 days) at insert.
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let epoch_ms = now_ms - now_ms % i64::from(WINDOW_MS) - n * i64::from(WINDOW_MS);
    for i in 0..n {
        bus.publish_windows(GRAPH, epoch_ms, WINDOW_MS, i..i + 1, services, "bench")
            .await?;
        let report = anomaly_report(epoch_ms, services, i);
        bus.publish_result(
            MessageKind::Score,
            GRAPH,
            report.window_start_ms,
            "bench",
            &v1::AnomalyReport::full_name(),
            report.encode_to_vec(),
        )
        .await?;
        let forecast = forecast_report(epoch_ms, services, i);
        bus.publish_result(
            MessageKind::Forecast,
            GRAPH,
            forecast.window_start_ms,
            "bench",
            &v1::ForecastReport::full_name(),
            forecast.encode_to_vec(),
        )
        .await?;
    }
    eprintln!("published in {:.1} s", published.elapsed().as_secs_f64());

    let mut config = AggregatorConfig::default();
    config.admin.listen = "127.0.0.1:0".parse()?;
    config.nats = bus.nats.clone();
    config.sink.kind = SinkKind::Clickhouse;
    config.sink.clickhouse.url = ch_url.clone();
    config.sink.clickhouse.database = database.clone();
    let shutdown = Shutdown::new(Readiness::new());
    let snapshot_nodes =
        meshwatch_testkit::synthetic::snapshot(GRAPH, epoch_ms, WINDOW_MS, 0, services, None)
            .nodes
            .len() as u64;
    let scored_nodes = nodes(services).len() as u64;
    let want = [
        ("graph_nodes", windows as u64 * snapshot_nodes),
        ("anomaly_scores", windows as u64 * scored_nodes),
        (
            "forecasts",
            windows as u64 * services as u64 * METRICS.len() as u64 * u64::from(HORIZONS),
        ),
    ];
    let started = Instant::now();
    meshwatch_aggregator::run(config, &shutdown).await?;
    let deadline = started + Duration::from_secs(1800);
    let mut done = false;
    while !done {
        tokio::time::sleep(Duration::from_millis(100)).await;
        done = true;
        for (table, rows) in want {
            if count(&ch_url, &database, table).await? < rows {
                done = false;
            }
        }
        if Instant::now() > deadline {
            bail!("not every row arrived within 30 minutes");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows: u64 = want.iter().map(|(_, r)| r).sum::<u64>()
        + count(&ch_url, &database, "graph_edges").await?
        + count(&ch_url, &database, "incidents").await?;
    shutdown.trigger("bench done");
    let _ = shutdown.wait(Duration::from_secs(20)).await;
    clickhouse::drop_database(&ch_url, &database).await;
    meshwatch_testkit::nats::delete_streams(&nats_url, &namespace).await;

    println!("| services | windows | rows | seconds | windows/s | rows/s |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {services} | {windows} | {rows} | {elapsed:.2} | {:.0} | {:.0} |",
        windows as f64 / elapsed,
        rows as f64 / elapsed
    );
    Ok(())
}
