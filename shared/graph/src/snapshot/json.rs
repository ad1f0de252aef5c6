//! The JSON form of a snapshot written by `meshwatch snapshot` (one object per line), documented
//! in `docs/snapshot-json.md`. Quantiles come from the sketches (1 % relative error) and are
//! rounded to microseconds.

use serde::{Deserialize, Serialize};

use super::{ConnectionType, GraphSnapshot, IngestStats, NodeKind, ResourceStats};
use crate::sketch::Sketch;

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyJson {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

fn round_us(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl LatencyJson {
    /// `None` for an empty sketch.
    pub fn from_sketch(s: &Sketch) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        let q = |p| round_us(s.quantile(p).unwrap_or(0.0));
        Some(Self {
            count: s.count,
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            mean: round_us(s.mean().unwrap_or(0.0)),
            max: round_us(s.max),
        })
    }
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeJson {
    pub service: String,
    pub kind: NodeKind,
    pub requests: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyJson>,
    pub out_calls: u64,
    pub out_errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_latency_ms: Option<LatencyJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_gap_ms: Option<LatencyJson>,
    pub spans: u64,
    /// Resource metrics (OTLP metrics); absent when none arrived, and each metric absent
    /// when it did not arrive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesJson>,
}

/// Resource metrics of a node (`docs/resource-metrics.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourcesJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_utilization: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_utilization: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_rx_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_tx_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

impl ResourcesJson {
    fn from_stats(r: &ResourceStats) -> Option<Self> {
        (*r != ResourceStats::default()).then_some(Self {
            cpu_utilization: r.cpu_utilization,
            memory_bytes: r.memory_bytes,
            memory_utilization: r.memory_utilization,
            network_rx_bytes_per_s: r.network_rx_bytes_per_s,
            network_tx_bytes_per_s: r.network_tx_bytes_per_s,
            restarts: r.restarts,
        })
    }
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeJson {
    pub caller: String,
    pub callee: String,
    pub connection_type: ConnectionType,
    pub calls: u64,
    pub errors: u64,
    pub paired_calls: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_latency_ms: Option<LatencyJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_latency_ms: Option<LatencyJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<LatencyJson>,
}

/// One graph and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotJson {
    pub graph: String,
    pub window_start_ms: i64,
    pub window_seconds: f64,
    pub nodes: Vec<NodeJson>,
    pub edges: Vec<EdgeJson>,
    pub stats: IngestStats,
}

impl From<&GraphSnapshot> for SnapshotJson {
    fn from(s: &GraphSnapshot) -> Self {
        Self {
            graph: s.graph.clone(),
            window_start_ms: s.window_start_ms,
            window_seconds: f64::from(s.window_ms) / 1000.0,
            nodes: s
                .nodes
                .iter()
                .map(|n| NodeJson {
                    service: n.name.clone(),
                    kind: n.kind,
                    requests: n.requests,
                    errors: n.errors,
                    latency_ms: LatencyJson::from_sketch(&n.latency),
                    out_calls: n.out_calls,
                    out_errors: n.out_errors,
                    out_latency_ms: LatencyJson::from_sketch(&n.out_latency),
                    in_gap_ms: LatencyJson::from_sketch(&n.in_gap),
                    spans: n.spans,
                    resources: ResourcesJson::from_stats(&n.resources),
                })
                .collect(),
            edges: s
                .edges
                .iter()
                .map(|e| EdgeJson {
                    caller: e.caller.clone(),
                    callee: e.callee.clone(),
                    connection_type: e.connection_type,
                    calls: e.calls,
                    errors: e.errors,
                    paired_calls: e.paired_calls,
                    client_latency_ms: LatencyJson::from_sketch(&e.client_latency),
                    server_latency_ms: LatencyJson::from_sketch(&e.server_latency),
                    gap_ms: LatencyJson::from_sketch(&e.gap),
                })
                .collect(),
            stats: s.stats,
        }
    }
}
