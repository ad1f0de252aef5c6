//! Shared by the system tests: an in-process ingest publishing to a real NATS under a namespace
//! of its own, with windows short enough that snapshots close within seconds, and the check of
//! summed snapshots against an expected graph.

#![allow(dead_code)]

#[path = "../../../services/ingest/tests/support/ingest_config.rs"]
mod ingest_config;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ingest_config::short_window_config;
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::{ConnectionType, NodeKind};
use meshwatch_ingest::{IngestConfig, Running};
use meshwatch_runtime::{Readiness, Shutdown, ShutdownReport};
use meshwatch_testkit::{SnapshotReader, TestNats, Totals, describe, unique_namespace};

/// Every system test ends within this, or fails.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long snapshots may take to reach JetStream once everything is sent: the idle flush
/// (2 s) plus the tick, publishing and a wide margin for a loaded machine.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Fails the test when `test` runs past [`TEST_TIMEOUT`].
pub async fn within<F: Future<Output = anyhow::Result<()>>>(test: F) -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .context("test timed out")?
}

/// An ingest config for tests: loopback ports chosen by the OS, NATS at `nats_url` under
/// `namespace`, 1 s windows with 1 s allowed lateness and a 2 s idle flush, so that a window
/// closes about 2 s after the last request of a workload. A workload's spans must end within
/// the allowed lateness of each other (else some are late), and its requests must arrive less
/// than the idle flush apart.
pub fn config(nats_url: &str, namespace: &str) -> IngestConfig {
    short_window_config(nats_url, namespace, "system-test")
}

/// A running in-process ingest and the NATS server it publishes to.
#[derive(Debug)]
pub struct Ingest {
    pub running: Running,
    pub namespace: String,
    pub nats: TestNats,
    shutdown: Shutdown,
    grace: Duration,
}

impl Ingest {
    /// Starts an ingest with [`config`] under a fresh namespace for `test`.
    pub async fn start(test: &str) -> anyhow::Result<Self> {
        let nats = TestNats::get().await?;
        let namespace = unique_namespace(test);
        let config = config(&nats.url(), &namespace);
        let grace = config.shutdown.grace;
        let shutdown = Shutdown::new(Readiness::new());
        let running = meshwatch_ingest::run(config, &shutdown)
            .await
            .context("the ingest does not start")?;
        Ok(Self {
            running,
            namespace,
            nats,
            shutdown,
            grace,
        })
    }

    pub fn grpc(&self) -> anyhow::Result<SocketAddr> {
        self.running.grpc.context("gRPC is disabled")
    }

    pub fn http(&self) -> anyhow::Result<SocketAddr> {
        self.running.http.context("HTTP is disabled")
    }

    /// A reader of this ingest's snapshots stream (waits for the ingest to create it).
    pub async fn reader(&self) -> anyhow::Result<SnapshotReader> {
        SnapshotReader::open(&self.nats.url(), &self.namespace, SNAPSHOT_TIMEOUT).await
    }

    /// Reads snapshots until those of `graph` account for `spans` spans, then sums them.
    pub async fn totals_after(
        &self,
        reader: &mut SnapshotReader,
        graph: &str,
        spans: u64,
    ) -> anyhow::Result<Totals> {
        let received = reader
            .wait_until(SNAPSHOT_TIMEOUT, |all| {
                all.iter()
                    .filter(|s| s.graph == graph)
                    .map(|s| s.stats.spans)
                    .sum::<u64>()
                    >= spans
            })
            .await?;
        Totals::of(received, graph)
    }

    /// Shuts the ingest down (as SIGTERM does), checks that the drain was clean and deletes
    /// the namespace's streams.
    pub async fn stop(self) -> anyhow::Result<ShutdownReport> {
        self.shutdown.trigger("test over");
        let report = self.shutdown.wait(self.grace).await;
        meshwatch_testkit::delete_streams(&self.nats.url(), &self.namespace).await;
        ensure!(report.is_clean(), "unclean shutdown: {report:?}");
        Ok(report)
    }
}

/// An expected node: name, kind, requests and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedNode {
    pub name: String,
    pub kind: NodeKind,
    pub requests: u64,
    pub errors: u64,
}

/// An expected edge: caller, callee, connection type, calls and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedEdge {
    pub caller: String,
    pub callee: String,
    pub connection_type: ConnectionType,
    pub calls: u64,
    pub errors: u64,
}

/// Checks that `totals` has exactly the expected nodes and edges with exactly the expected
/// counts, that every one of `spans` spans was counted and none was late, rejected or dropped.
pub fn check_graph(
    totals: &Totals,
    spans: u64,
    nodes: &[ExpectedNode],
    edges: &[ExpectedEdge],
    snapshots: &[meshwatch_graph::GraphSnapshot],
) -> anyhow::Result<()> {
    let context = || describe(snapshots);
    let stats = totals.stats;
    ensure!(
        (stats.spans, stats.late, stats.rejected, stats.dropped) == (spans, 0, 0, 0),
        "span accounting {stats:?}, expected {spans} spans, none late, rejected or dropped\n{}",
        context()
    );
    // Every span has its peer (or is a root, or a database call): nothing unpaired.
    ensure!(
        stats.unpaired == 0,
        "unpaired spans: {stats:?}\n{}",
        context()
    );
    let mut want_nodes: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    want_nodes.sort_unstable();
    let got_nodes: Vec<&str> = totals.nodes.keys().map(String::as_str).collect();
    ensure!(
        got_nodes == want_nodes,
        "nodes {got_nodes:?}, expected {want_nodes:?}\n{}",
        context()
    );
    for want in nodes {
        let got = totals.node(&want.name)?;
        let got = ExpectedNode {
            name: want.name.clone(),
            kind: got.kind,
            requests: got.requests,
            errors: got.errors,
        };
        ensure!(
            &got == want,
            "node {got:?}, expected {want:?}\n{}",
            context()
        );
    }
    let mut want_edges: Vec<(&str, &str)> = edges
        .iter()
        .map(|e| (e.caller.as_str(), e.callee.as_str()))
        .collect();
    want_edges.sort_unstable();
    let got_edges: Vec<(&str, &str)> = totals
        .edges
        .keys()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    ensure!(
        got_edges == want_edges,
        "edges {got_edges:?}, expected {want_edges:?}\n{}",
        context()
    );
    for want in edges {
        let got = totals.edge(&want.caller, &want.callee)?;
        let got = ExpectedEdge {
            caller: want.caller.clone(),
            callee: want.callee.clone(),
            connection_type: got.connection_type,
            calls: got.calls,
            errors: got.errors,
        };
        ensure!(
            &got == want,
            "edge {got:?}, expected {want:?}\n{}",
            context()
        );
    }
    Ok(())
}

/// Every one of `count` observations in `sketch` is `value` ms (the workloads give every call
/// of one kind the same duration): exact count, min and max, and the median within the
/// sketch's 1 % relative error.
pub fn all_equal(sketch: &Sketch, count: u64, value: f64, what: &str) -> anyhow::Result<()> {
    ensure!(
        sketch.count == count,
        "{what}: {} observations, expected {count}",
        sketch.count
    );
    let (min, max) = (sketch.min, sketch.max);
    ensure!(
        (min - value).abs() < 1e-6 && (max - value).abs() < 1e-6,
        "{what}: observations in [{min}, {max}] ms, expected all {value} ms"
    );
    let p50 = sketch.quantile(0.5).context("empty sketch")?;
    ensure!(
        (p50 - value).abs() <= value * 0.01 + 1e-6,
        "{what}: p50 {p50} ms, expected {value} ms within 1 %"
    );
    Ok(())
}
