//! The OpenTelemetry Python SDK's OTLP metrics exporters (a real third-party client,
//! `tests/python/send_metrics.py`) send CPU and memory gauges, a cumulative network counter, a
//! CPU time counter and an up-down counter for two services, after a few spans of each, to an
//! in-process ingest over OTLP/gRPC and OTLP/HTTP; the snapshots it publishes to a real NATS
//! JetStream must carry, per service and window, the resource metrics the script's summary
//! derives from the data points it exported (within float tolerance), absent metrics as `None`,
//! and every span.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "support/ingest_config.rs"]
mod ingest_config;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ingest_config::short_window_config;
use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::snapshot::NodeKind;
use meshwatch_ingest::IngestConfig;
use meshwatch_runtime::{Readiness, Shutdown};
use meshwatch_testkit::{SnapshotReader, TestNats, describe, unique_namespace};
use serde_json::Value;

const WINDOW_MS: i64 = 1000;
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);

/// 1 s windows with 1 s allowed lateness and a 2 s idle flush (as the system tests have it),
/// NATS under a namespace of this test's own.
fn config(nats_url: &str, namespace: &str) -> IngestConfig {
    let mut c = short_window_config(nats_url, namespace, "metrics-test");
    c.graph.window = Duration::from_millis(WINDOW_MS as u64);
    c
}

/// Runs `send_metrics.py` and returns its summary (the last stdout line); fails unless it
/// exited 0 with `"ok": true`.
async fn send(protocol: &str, endpoint: String, extra: &[&str]) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/send_metrics.py");
    let mut args: Vec<String> = ["--protocol", protocol, "--endpoint", &endpoint]
        .into_iter()
        .map(str::to_owned)
        .collect();
    args.extend(
        ["--window-ms", &WINDOW_MS.to_string(), "--timeout", "10"]
            .iter()
            .map(|a| a.to_string()),
    );
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    meshwatch_testkit::run_client(&script, args).await
}

/// One expected (service, window) row of the summary.
#[derive(Debug)]
struct Expected {
    service: String,
    window_start_ms: i64,
    fields: Vec<(&'static str, Option<f64>)>,
}

const FIELDS: [&str; 6] = [
    "cpu_utilization",
    "memory_bytes",
    "memory_utilization",
    "network_rx_bytes_per_s",
    "network_tx_bytes_per_s",
    "restarts",
];

fn expected_rows(summary: &Value) -> anyhow::Result<Vec<Expected>> {
    summary
        .get("expected")
        .and_then(Value::as_array)
        .context("summary: no expected rows")?
        .iter()
        .map(|row| {
            Ok(Expected {
                service: row["service"].as_str().context("service")?.to_owned(),
                window_start_ms: row["window_start_ms"].as_i64().context("window")?,
                fields: FIELDS.iter().map(|f| (*f, row[*f].as_f64())).collect(),
            })
        })
        .collect()
}

fn actual(node: &meshwatch_graph::snapshot::Node, field: &str) -> Option<f64> {
    let r = &node.resources;
    match field {
        "cpu_utilization" => r.cpu_utilization,
        "memory_bytes" => r.memory_bytes,
        "memory_utilization" => r.memory_utilization,
        "network_rx_bytes_per_s" => r.network_rx_bytes_per_s,
        "network_tx_bytes_per_s" => r.network_tx_bytes_per_s,
        "restarts" => r.restarts.map(|n| n as f64),
        _ => None,
    }
}

fn node_of<'a>(
    snapshots: &'a [GraphSnapshot],
    graph: &str,
    window: i64,
    service: &str,
) -> Option<&'a meshwatch_graph::snapshot::Node> {
    snapshots
        .iter()
        .filter(|s| s.graph == graph && s.window_start_ms == window)
        .flat_map(|s| &s.nodes)
        .find(|n| n.name == service)
}

async fn metrics_reach_the_snapshots(
    protocol: &str,
    extra: &[&str],
    test: &str,
) -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let namespace = unique_namespace(test);
    let shutdown = Shutdown::new(Readiness::new());
    let running = meshwatch_ingest::run(config(&nats.url(), &namespace), &shutdown)
        .await
        .context("the ingest does not start")?;
    let mut reader = SnapshotReader::open(&nats.url(), &namespace, SNAPSHOT_TIMEOUT).await?;
    let endpoint = match protocol {
        "grpc" => format!("http://{}", running.grpc.context("grpc")?),
        _ => format!("http://{}", running.http.context("http")?),
    };
    let summary = send(protocol, endpoint, extra).await?;
    let graph = summary["graph"].as_str().context("graph")?.to_owned();
    let spans = summary["spans"]["total"].as_u64().context("spans")?;
    let rows = expected_rows(&summary)?;
    // Every collection of both services made it, with data for both.
    ensure!(
        rows.len() >= 2 * summary["collections"].as_u64().context("collections")? as usize,
        "{summary}"
    );

    let received = reader
        .wait_until(SNAPSHOT_TIMEOUT, |all| {
            let spans_in: u64 = all
                .iter()
                .filter(|s| s.graph == graph)
                .map(|s| s.stats.spans)
                .sum();
            spans_in >= spans
                && rows
                    .iter()
                    .all(|row| node_of(all, &graph, row.window_start_ms, &row.service).is_some())
        })
        .await?
        .to_vec();

    // Spans and metrics in the same snapshots, on the same nodes.
    let per_service = summary["spans"]["per_service"]
        .as_u64()
        .context("per service")?;
    for service in ["frontend", "payments"] {
        let requests: u64 = received
            .iter()
            .filter(|s| s.graph == graph)
            .flat_map(|s| &s.nodes)
            .filter(|n| n.name == service)
            .map(|n| n.requests)
            .sum();
        assert_eq!(requests, per_service, "{service}: {}", describe(&received));
    }
    let mut checked = 0;
    for row in &rows {
        let node = node_of(&received, &graph, row.window_start_ms, &row.service)
            .with_context(|| format!("no {} in window {}", row.service, row.window_start_ms))?;
        assert_eq!(node.kind, NodeKind::Service);
        for (field, want) in &row.fields {
            let got = actual(node, field);
            let what = format!(
                "{} {} at {}: got {got:?}, want {want:?}",
                row.service, field, row.window_start_ms
            );
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => {
                    ensure!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{what}");
                    checked += 1;
                }
                _ => anyhow::bail!("{what}"),
            }
        }
    }
    // The workload has values to find: each gauge every collection, each counter from the
    // second collection on.
    ensure!(checked >= 10, "only {checked} values compared: {summary}");
    for service in ["frontend", "payments"] {
        let windows: Vec<_> = rows.iter().filter(|r| r.service == service).collect();
        ensure!(
            windows.iter().any(|r| r.fields[0].1.is_some()),
            "{service}: no CPU in any window"
        );
    }
    ensure!(
        rows.iter()
            .filter(|r| r.service == "payments")
            .all(|r| r.fields[3].1.is_none() && r.fields[4].1.is_none()),
        "payments sends no network metrics"
    );

    shutdown.trigger("test over");
    let report = shutdown.wait(Duration::from_secs(10)).await;
    meshwatch_testkit::delete_streams(&nats.url(), &namespace).await;
    ensure!(report.is_clean(), "unclean shutdown: {report:?}");
    Ok(())
}

async fn within(test: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .context("test timed out")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_over_grpc_reach_the_snapshots() -> anyhow::Result<()> {
    within(metrics_reach_the_snapshots("grpc", &[], "pymgrpc")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_over_grpc_with_gzip_reach_the_snapshots() -> anyhow::Result<()> {
    within(metrics_reach_the_snapshots(
        "grpc",
        &["--compression", "gzip"],
        "pymgrpcz",
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_over_http_reach_the_snapshots() -> anyhow::Result<()> {
    within(metrics_reach_the_snapshots("http", &[], "pymhttp")).await
}
