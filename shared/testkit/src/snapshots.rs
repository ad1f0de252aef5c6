//! The graph snapshots published under a namespace, read back from its snapshots stream through
//! an ordered JetStream consumer (ephemeral, no acks, from the first message) and decoded with
//! `meshwatch-proto`, as the detector will read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use futures::StreamExt as _;
use meshwatch_bus::Names;
use meshwatch_bus::envelope::HEADER_CONTENT_TYPE;
use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::{ConnectionType, NodeKind};
use tokio::time::Instant;

/// Reads one namespace's snapshots stream in order.
pub struct SnapshotReader {
    stream: async_nats::jetstream::stream::Stream,
    messages: Ordered,
    received: Vec<GraphSnapshot>,
    last_sequence: u64,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("stream", &self.stream.cached_info().config.name)
            .field("received", &self.received.len())
            .field("last_sequence", &self.last_sequence)
            .finish()
    }
}

impl SnapshotReader {
    /// Connects to `url` and opens an ordered consumer on the snapshots stream of `namespace`,
    /// waiting up to `timeout` for the stream to exist (the service creates it once connected).
    pub async fn open(url: &str, namespace: &str, timeout: Duration) -> anyhow::Result<Self> {
        let deadline = Instant::now() + timeout;
        let names = Names::new(Some(namespace)).context("invalid namespace")?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to NATS at {url}"))?;
        let js = async_nats::jetstream::new(client);
        let name = names.snapshots_stream();
        let stream = loop {
            match js.get_stream(&name).await {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => {
                    bail!("stream {name} does not exist after {timeout:?}: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let messages = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..OrderedConfig::default()
            })
            .await
            .with_context(|| format!("cannot create an ordered consumer on {name}"))?
            .messages()
            .await
            .with_context(|| format!("cannot read {name}"))?;
        Ok(Self {
            stream,
            messages,
            received: Vec::new(),
            last_sequence: 0,
        })
    }

    /// Every snapshot read so far, in stream order.
    pub fn received(&self) -> &[GraphSnapshot] {
        &self.received
    }

    /// Reads the next message, decodes it and keeps it; `Ok(false)` when `deadline` passed.
    async fn next(&mut self, deadline: Instant) -> anyhow::Result<bool> {
        let Ok(next) = tokio::time::timeout_at(deadline, self.messages.next()).await else {
            return Ok(false);
        };
        let message = next
            .context("the ordered consumer ended")?
            .map_err(|e| anyhow::anyhow!("reading the snapshots stream: {e}"))?;
        let sequence = message
            .info()
            .map_err(|e| anyhow::anyhow!("message metadata: {e}"))?
            .stream_sequence;
        let content_type = message
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_CONTENT_TYPE))
            .map(|v| v.as_str().to_owned());
        ensure!(
            content_type.as_deref() == Some(meshwatch_proto::SNAPSHOT_CONTENT_TYPE),
            "message {sequence} on {} has content type {content_type:?}",
            message.subject
        );
        let snapshot = meshwatch_proto::decode_snapshot(&message.payload)
            .with_context(|| format!("message {sequence} is not a valid GraphSnapshot"))?;
        self.received.push(snapshot);
        self.last_sequence = sequence;
        Ok(true)
    }

    /// Reads until `done` holds for everything received so far; fails after `timeout`, listing
    /// what arrived.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[GraphSnapshot]) -> bool,
    ) -> anyhow::Result<&[GraphSnapshot]> {
        let deadline = Instant::now() + timeout;
        while !done(&self.received) {
            if !self.next(deadline).await? {
                bail!(
                    "the expected snapshots did not arrive within {timeout:?}; received: {}",
                    describe(&self.received)
                );
            }
        }
        Ok(&self.received)
    }

    /// Reads every message the stream holds now; fails when they do not arrive within
    /// `timeout`.
    pub async fn read_available(&mut self, timeout: Duration) -> anyhow::Result<&[GraphSnapshot]> {
        let deadline = Instant::now() + timeout;
        let last = self
            .stream
            .info()
            .await
            .context("stream info")?
            .state
            .last_sequence;
        while self.last_sequence < last {
            if !self.next(deadline).await? {
                bail!(
                    "read {} of the stream's messages up to sequence {last} within {timeout:?}",
                    self.received.len()
                );
            }
        }
        Ok(&self.received)
    }
}

/// Every snapshot the snapshots stream of `namespace` holds now, in order.
pub async fn read_all_snapshots(
    url: &str,
    namespace: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<GraphSnapshot>> {
    let mut reader = SnapshotReader::open(url, namespace, timeout).await?;
    reader.read_available(timeout).await?;
    Ok(reader.received)
}

/// One line per snapshot: graph, window, span count, nodes and edges with their counts.
pub fn describe(snapshots: &[GraphSnapshot]) -> String {
    let mut out = format!("{} snapshots", snapshots.len());
    for s in snapshots {
        let _ = write!(
            out,
            "\n  graph {:?} window {}+{}ms spans {} (paired {}, unpaired {}, late {}, rejected {}, dropped {}); nodes:",
            s.graph,
            s.window_start_ms,
            s.window_ms,
            s.stats.spans,
            s.stats.paired,
            s.stats.unpaired,
            s.stats.late,
            s.stats.rejected,
            s.stats.dropped
        );
        for n in &s.nodes {
            let _ = write!(out, " {}={}/{}", n.name, n.requests, n.errors);
        }
        out.push_str("; edges:");
        for e in &s.edges {
            let _ = write!(out, " {}->{}={}/{}", e.caller, e.callee, e.calls, e.errors);
        }
    }
    out
}

/// One node's counters summed over windows.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTotals {
    pub kind: NodeKind,
    pub requests: u64,
    pub errors: u64,
    pub out_calls: u64,
    pub out_errors: u64,
    pub spans: u64,
}

/// One edge's counters summed, and its sketches merged, over windows.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeTotals {
    pub connection_type: ConnectionType,
    pub calls: u64,
    pub errors: u64,
    pub paired_calls: u64,
    pub client_latency: Sketch,
    pub server_latency: Sketch,
    pub gap: Sketch,
}

/// A graph's snapshots summed over their windows (the windows a workload falls into depend on
/// the clock; the sums do not).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Windows summed.
    pub windows: usize,
    pub stats: meshwatch_graph::snapshot::IngestStats,
    pub nodes: BTreeMap<String, NodeTotals>,
    /// By (caller, callee).
    pub edges: BTreeMap<(String, String), EdgeTotals>,
}

impl Totals {
    /// Sums the snapshots of `graph` (others are ignored). Fails when a node's kind or an
    /// edge's connection type differs between windows, or a sketch cannot merge.
    pub fn of(snapshots: &[GraphSnapshot], graph: &str) -> anyhow::Result<Self> {
        let mut totals = Self::default();
        for s in snapshots.iter().filter(|s| s.graph == graph) {
            totals.windows += 1;
            totals.stats.add(&s.stats);
            for n in &s.nodes {
                let t = totals.nodes.entry(n.name.clone()).or_insert(NodeTotals {
                    kind: n.kind,
                    requests: 0,
                    errors: 0,
                    out_calls: 0,
                    out_errors: 0,
                    spans: 0,
                });
                ensure!(
                    t.kind == n.kind,
                    "node {} is {:?} and {:?}",
                    n.name,
                    t.kind,
                    n.kind
                );
                t.requests += n.requests;
                t.errors += n.errors;
                t.out_calls += n.out_calls;
                t.out_errors += n.out_errors;
                t.spans += n.spans;
            }
            for e in &s.edges {
                let key = (e.caller.clone(), e.callee.clone());
                let t = totals.edges.entry(key).or_insert_with(|| EdgeTotals {
                    connection_type: e.connection_type,
                    calls: 0,
                    errors: 0,
                    paired_calls: 0,
                    client_latency: Sketch::default(),
                    server_latency: Sketch::default(),
                    gap: Sketch::default(),
                });
                ensure!(
                    t.connection_type == e.connection_type,
                    "edge {}->{} is {:?} and {:?}",
                    e.caller,
                    e.callee,
                    t.connection_type,
                    e.connection_type
                );
                t.calls += e.calls;
                t.errors += e.errors;
                t.paired_calls += e.paired_calls;
                t.client_latency.merge(&e.client_latency)?;
                t.server_latency.merge(&e.server_latency)?;
                t.gap.merge(&e.gap)?;
            }
        }
        Ok(totals)
    }

    /// The node `name`, or an error listing the nodes there are.
    pub fn node(&self, name: &str) -> anyhow::Result<&NodeTotals> {
        self.nodes.get(name).with_context(|| {
            format!(
                "no node {name:?}; nodes: {:?}",
                self.nodes.keys().collect::<Vec<_>>()
            )
        })
    }

    /// The edge `caller -> callee`, or an error listing the edges there are.
    pub fn edge(&self, caller: &str, callee: &str) -> anyhow::Result<&EdgeTotals> {
        self.edges
            .get(&(caller.to_owned(), callee.to_owned()))
            .with_context(|| {
                format!(
                    "no edge {caller} -> {callee}; edges: {:?}",
                    self.edges.keys().collect::<Vec<_>>()
                )
            })
    }
}
