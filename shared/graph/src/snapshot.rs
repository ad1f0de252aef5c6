//! The graph snapshot a window closes into: the domain form of `meshwatch.v1.GraphSnapshot`
//! (`shared/proto` converts it to and from the protobuf message).

use serde::{Deserialize, Serialize};

use crate::sketch::Sketch;

pub mod json;

/// What a node is (`meshwatch.v1.NodeKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Service,
    User,
    Database,
    Messaging,
    Peer,
    Overflow,
}

/// How a caller reaches a callee (`meshwatch.v1.ConnectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionType {
    Direct,
    Entry,
    Database,
    Messaging,
    VirtualPeer,
}

impl ConnectionType {
    /// Precedence when calls of several types meet on one edge (rare): what was observed from
    /// both sides outranks what was inferred from attributes, so the result does not depend on
    /// arrival order and one unpaired call does not relabel a real edge.
    pub fn rank(self) -> u8 {
        match self {
            Self::VirtualPeer => 0,
            Self::Entry => 1,
            Self::Database => 2,
            Self::Direct => 3,
            Self::Messaging => 4,
        }
    }
}

/// Statistics of one node in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub requests: u64,
    pub errors: u64,
    /// Server-side latency of requests served, ms.
    pub latency: Sketch,
    pub out_calls: u64,
    pub out_errors: u64,
    /// Caller-side latency of outgoing calls, ms.
    pub out_latency: Sketch,
    /// Caller-observed minus own server latency on paired calls into this node, ms.
    pub in_gap: Sketch,
    /// All spans of this service in the window.
    pub spans: u64,
    /// Resource metrics of the service in the window (OTLP metrics), each present only when
    /// samples were received: absent is not zero.
    #[serde(default)]
    pub resources: ResourceStats,
}

/// Resource metrics of one service in one window (from OTLP metrics: container, k8s pod,
/// process and system semantic conventions; `docs/resource-metrics.md`). Each field is `None`
/// when no sample arrived. Values aggregate the samples of all the service's instances in the
/// window as documented per field (levels are averaged per instance first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceStats {
    /// CPU utilisation, 0..=1 of the limit, mean over instances; from cores (cores gauges, CPU
    /// time counters) when no utilisation gauge arrived: summed cores over summed CPU limits,
    /// or, with no limit known, cores per instance (which can exceed 1).
    pub cpu_utilization: Option<f64>,
    /// Memory in use, bytes, mean over samples, summed over instances.
    pub memory_bytes: Option<f64>,
    /// Memory utilisation, 0..=1 of the limit, mean over instances (else `memory_bytes` over
    /// the summed memory limits).
    pub memory_utilization: Option<f64>,
    /// Network bytes received per second, summed over instances.
    pub network_rx_bytes_per_s: Option<f64>,
    /// Network bytes sent per second, summed over instances.
    pub network_tx_bytes_per_s: Option<f64>,
    /// Container/process restarts observed in the window, summed over instances.
    pub restarts: Option<u64>,
}

impl Node {
    pub fn new(name: String, kind: NodeKind) -> Self {
        Self {
            name,
            kind,
            requests: 0,
            errors: 0,
            latency: Sketch::default(),
            out_calls: 0,
            out_errors: 0,
            out_latency: Sketch::default(),
            in_gap: Sketch::default(),
            spans: 0,
            resources: ResourceStats::default(),
        }
    }
}

/// Statistics of one caller -> callee edge in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub caller: String,
    pub callee: String,
    pub connection_type: ConnectionType,
    pub calls: u64,
    pub errors: u64,
    pub paired_calls: u64,
    /// Client-span durations, ms.
    pub client_latency: Sketch,
    /// Server-span durations, ms.
    pub server_latency: Sketch,
    /// Client minus server duration per paired call, ms.
    pub gap: Sketch,
}

impl Edge {
    pub fn new(caller: String, callee: String, connection_type: ConnectionType) -> Self {
        Self {
            caller,
            callee,
            connection_type,
            calls: 0,
            errors: 0,
            paired_calls: 0,
            client_latency: Sketch::default(),
            server_latency: Sketch::default(),
            gap: Sketch::default(),
        }
    }
}

/// Outcome counters of the spans attributed to a window (`meshwatch.v1.IngestStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    pub spans: u64,
    pub paired: u64,
    pub unpaired: u64,
    pub late: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub overflow_services: u64,
    pub overflow_edges: u64,
}

impl IngestStats {
    /// Adds another window's (or replica's) counters.
    pub fn add(&mut self, other: &IngestStats) {
        self.spans += other.spans;
        self.paired += other.paired;
        self.unpaired += other.unpaired;
        self.late += other.late;
        self.rejected += other.rejected;
        self.dropped += other.dropped;
        self.overflow_services += other.overflow_services;
        self.overflow_edges += other.overflow_edges;
    }
}

/// One graph over one tumbling window of event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphSnapshot {
    pub graph: String,
    pub window_start_ms: i64,
    pub window_ms: u32,
    /// Sorted by name.
    pub nodes: Vec<Node>,
    /// Sorted by (caller, callee).
    pub edges: Vec<Edge>,
    pub stats: IngestStats,
    pub producer: String,
    pub producer_version: String,
}
