//! Snapshots and steps for the unit tests of this crate.

use meshwatch_graph::features::StepFeatures;
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::{ConnectionType, Edge, GraphSnapshot, IngestStats, Node, NodeKind};
use meshwatch_proto::v1;

/// Window length of the fixtures: one minute.
pub(crate) const WINDOW_MS: u32 = 60_000;
/// Start of the fixtures' window 0 (2024-01-01T00:00:00Z).
pub(crate) const T0: i64 = 1_704_067_200_000;

/// Start of window `k` after [`T0`].
pub(crate) fn start(k: i64) -> i64 {
    T0 + k * i64::from(WINDOW_MS)
}

/// A service node serving `requests` requests of 10 ms each.
pub(crate) fn service(name: &str, requests: u64) -> Node {
    let mut node = Node::new(name.to_owned(), NodeKind::Service);
    node.requests = requests;
    node.spans = requests;
    let mut latency = Sketch::default();
    for _ in 0..requests {
        latency.add(10.0);
    }
    node.latency = latency;
    node
}

/// A direct edge with `calls` calls.
pub(crate) fn edge(caller: &str, callee: &str, calls: u64) -> Edge {
    let mut edge = Edge::new(caller.to_owned(), callee.to_owned(), ConnectionType::Direct);
    edge.calls = calls;
    edge
}

/// A domain snapshot of graph `g` for window `k`.
pub(crate) fn domain(k: i64, nodes: Vec<Node>, edges: Vec<Edge>) -> GraphSnapshot {
    GraphSnapshot {
        graph: "g".to_owned(),
        window_start_ms: start(k),
        window_ms: WINDOW_MS,
        nodes,
        edges,
        stats: IngestStats::default(),
        producer: "test".to_owned(),
        producer_version: "0".to_owned(),
    }
}

/// `frontend -> cart` in window `k`, with `requests` requests to each node.
pub(crate) fn small(k: i64, requests: u64) -> GraphSnapshot {
    domain(
        k,
        vec![service("cart", requests), service("frontend", requests)],
        vec![edge("frontend", "cart", requests)],
    )
}

/// [`small`] as a protobuf message.
pub(crate) fn proto(k: i64, requests: u64) -> v1::GraphSnapshot {
    v1::GraphSnapshot::from(&small(k, requests))
}

/// The feature step of [`small`].
pub(crate) fn step(k: i64, requests: u64) -> StepFeatures {
    StepFeatures::from_snapshot(&small(k, requests))
}
