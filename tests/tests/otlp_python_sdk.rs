//! The OpenTelemetry Python SDK with its OTLP exporters (a real third-party client,
//! `tests/python/send_otlp.py`) sends its three-service workload to a running ingest over
//! OTLP/gRPC and OTLP/HTTP; the snapshots the ingest publishes to a real NATS JetStream must
//! match the JSON summary the script prints: every expected node and edge with its exact counts
//! and nothing else, every span accounted for, and the latencies of both sides of each call.

#![allow(clippy::panic, clippy::unwrap_used)]

mod support;

use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use meshwatch_graph::snapshot::{ConnectionType, NodeKind};
use serde_json::Value;
use support::{ExpectedEdge, ExpectedNode, Ingest, all_equal, check_graph, within};

const TRACES: u64 = 20;

fn u64_of(value: &Value, key: &str) -> anyhow::Result<u64> {
    value
        .get(key)
        .and_then(Value::as_u64)
        .with_context(|| format!("summary: no number {key:?} in {value}"))
}

fn str_of<'a>(value: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("summary: no string {key:?} in {value}"))
}

fn array_of<'a>(value: &'a Value, key: &str) -> anyhow::Result<&'a Vec<Value>> {
    value
        .get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("summary: no array {key:?}"))
}

fn node_kind(kind: &str) -> anyhow::Result<NodeKind> {
    Ok(match kind {
        "user" => NodeKind::User,
        "service" => NodeKind::Service,
        "database" => NodeKind::Database,
        "messaging" => NodeKind::Messaging,
        "peer" => NodeKind::Peer,
        other => bail!("summary: unknown node kind {other:?}"),
    })
}

/// Runs `send_otlp.py` and returns its summary (the last stdout line); fails unless it exited
/// 0 with `"ok": true`.
async fn send(protocol: &str, endpoint: String, extra: &[&str]) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/send_otlp.py");
    let mut args: Vec<String> = ["--protocol", protocol, "--endpoint", &endpoint]
        .into_iter()
        .map(str::to_owned)
        .collect();
    args.extend(
        ["--traces", &TRACES.to_string(), "--timeout", "10"]
            .iter()
            .map(|a| a.to_string()),
    );
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    meshwatch_testkit::run_client(&script, args).await
}

async fn sends_the_workload(protocol: &str, extra: &[&str], test: &str) -> anyhow::Result<()> {
    let ingest = Ingest::start(test).await?;
    let mut reader = ingest.reader().await?;
    let endpoint = match protocol {
        "grpc" => format!("http://{}", ingest.grpc()?),
        _ => format!("http://{}", ingest.http()?),
    };
    let summary = send(protocol, endpoint, extra).await?;
    assert_eq!(u64_of(&summary, "traces")?, TRACES);
    let graph = str_of(&summary, "graph")?;
    let spans = u64_of(summary.get("spans").context("summary: spans")?, "total")?;
    assert_eq!(spans, 6 * TRACES);

    let nodes = array_of(&summary, "nodes")?
        .iter()
        .map(|n| {
            Ok(ExpectedNode {
                name: str_of(n, "name")?.to_owned(),
                kind: node_kind(str_of(n, "kind")?)?,
                // The virtual caller serves nothing: the summary gives it no counts.
                requests: n.get("requests").and_then(Value::as_u64).unwrap_or(0),
                errors: n.get("errors").and_then(Value::as_u64).unwrap_or(0),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let edges = array_of(&summary, "edges")?;
    let expected_edges = edges
        .iter()
        .map(|e| {
            let caller = str_of(e, "caller")?;
            let connection_type = match e.get("virtual").and_then(Value::as_str) {
                Some("database") => ConnectionType::Database,
                Some("messaging") => ConnectionType::Messaging,
                Some(other) => bail!("summary: unknown virtual callee {other:?}"),
                None if caller == "user" => ConnectionType::Entry,
                None => ConnectionType::Direct,
            };
            Ok(ExpectedEdge {
                caller: caller.to_owned(),
                callee: str_of(e, "callee")?.to_owned(),
                connection_type,
                calls: u64_of(e, "calls")?,
                errors: u64_of(e, "errors")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The workload has failures to find.
    assert!(expected_edges.iter().any(|e| e.errors > 0), "{summary}");

    let totals = ingest.totals_after(&mut reader, graph, spans).await?;
    check_graph(&totals, spans, &nodes, &expected_edges, reader.received())?;

    // Latency of both sides of every call, and the gap where both exist.
    for e in edges {
        let (caller, callee) = (str_of(e, "caller")?, str_of(e, "callee")?);
        let got = totals.edge(caller, callee)?;
        let calls = u64_of(e, "calls")?;
        let client = e.get("client_ms").and_then(Value::as_f64);
        let server = e.get("server_ms").and_then(Value::as_f64);
        let what = |side: &str| format!("{caller}->{callee} {side}");
        match client {
            Some(ms) => all_equal(&got.client_latency, calls, ms, &what("client"))?,
            None => ensure!(got.client_latency.is_empty(), "{}", what("client")),
        }
        match server {
            Some(ms) => all_equal(&got.server_latency, calls, ms, &what("server"))?,
            None => ensure!(got.server_latency.is_empty(), "{}", what("server")),
        }
        match client.zip(server) {
            Some((c, s)) => {
                assert_eq!(got.paired_calls, calls, "{}", what("paired"));
                all_equal(&got.gap, calls, c - s, &what("gap"))?;
            }
            None => ensure!(got.gap.is_empty(), "{}", what("gap")),
        }
    }

    ingest.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_builds_the_service_graph() -> anyhow::Result<()> {
    within(sends_the_workload("grpc", &[], "pygrpc")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_with_gzip_builds_the_service_graph() -> anyhow::Result<()> {
    within(sends_the_workload(
        "grpc",
        &["--compression", "gzip"],
        "pygrpcgz",
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_protobuf_builds_the_service_graph() -> anyhow::Result<()> {
    within(sends_the_workload("http", &[], "pyhttp")).await
}
