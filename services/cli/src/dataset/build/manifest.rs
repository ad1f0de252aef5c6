//! `manifest.json` of a dataset (`docs/dataset-format.md`) and its readable summary.

use serde::Serialize;

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Manifest {
    pub format: &'static str,
    pub format_version: u32,
    pub feature_schema_version: u32,
    pub node_features: Vec<&'static str>,
    pub edge_features: Vec<&'static str>,
    pub targets: Vec<&'static str>,
    pub node_kinds: Vec<&'static str>,
    /// Fault type vocabulary (`label_fault_type` indexes it); absent without labels.
    pub fault_types: Option<Vec<String>>,
    pub window_ms: u32,
    pub steps: usize,
    pub shard_steps: usize,
    pub producer: String,
    pub inputs: Inputs,
    pub totals: Totals,
    pub graphs: Vec<GraphEntry>,
    /// Graphs named in the labels file that had no data.
    pub labels_without_data: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Inputs {
    pub traces: Vec<String>,
    pub format: &'static str,
    pub metrics: Vec<String>,
    pub metrics_format: Option<&'static str>,
    pub labels: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub spans_accepted: u64,
    pub spans_late: u64,
    pub spans_rejected: u64,
    pub metrics_requests: u64,
    pub points_accepted: u64,
    pub points_late: u64,
    pub points_rejected: u64,
    pub points_ignored: u64,
    pub snapshots: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GraphEntry {
    pub graph: String,
    /// Folder of the shards, relative to the dataset root.
    pub dir: String,
    pub windows_observed: u64,
    pub windows_missing: u64,
    pub segments: u32,
    pub shards: Vec<ShardEntry>,
    /// Labels of this graph (with `--labels`).
    pub faults: Option<usize>,
    /// Root causes of this graph's labels that are no node of any shard.
    pub unmatched_root_causes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShardEntry {
    /// Path relative to the dataset root.
    pub file: String,
    pub segment: u32,
    pub first_window_start_ms: i64,
    pub steps: usize,
    pub observed_steps: usize,
    pub overlap: usize,
    pub nodes: usize,
    pub edges: usize,
}

/// A readable report for stderr.
pub(super) fn render(m: &Manifest) -> String {
    let t = &m.totals;
    let mut s = format!(
        "meshwatch: dataset: {} trace requests, {} spans aggregated, {} late, {} rejected -> {} snapshots\n",
        t.requests, t.spans_accepted, t.spans_late, t.spans_rejected, t.snapshots
    );
    if t.metrics_requests > 0 {
        s.push_str(&format!(
            "meshwatch: dataset: {} metrics requests, {} data points aggregated, {} late, {} rejected, {} ignored\n",
            t.metrics_requests, t.points_accepted, t.points_late, t.points_rejected, t.points_ignored
        ));
    }
    for g in &m.graphs {
        let nodes = g.shards.iter().map(|x| x.nodes).max().unwrap_or(0);
        s.push_str(&format!(
            "meshwatch: dataset: graph {}: {} windows ({} missing), {} segments, {} shards, up to {} nodes\n",
            g.graph,
            g.windows_observed + g.windows_missing,
            g.windows_missing,
            g.segments,
            g.shards.len(),
            nodes
        ));
        if !g.unmatched_root_causes.is_empty() {
            s.push_str(&format!(
                "meshwatch: dataset: graph {}: label root causes that are no node: {}\n",
                g.graph,
                g.unmatched_root_causes.join(", ")
            ));
        }
    }
    if !m.labels_without_data.is_empty() {
        s.push_str(&format!(
            "meshwatch: dataset: labels of graphs without data: {}\n",
            m.labels_without_data.join(", ")
        ));
    }
    s
}
