//! One window of one graph reduced to feature rows: what the encoder needs of a snapshot, a few
//! hundred bytes per node instead of its sketches, so a history or a dataset shard of many
//! windows stays small.

use crate::snapshot::{GraphSnapshot, NodeKind};

use super::schema::{
    EDGE_FEATURE_COUNT, EDGE_FEATURES, NODE_FEATURE_COUNT, NODE_FEATURES, TARGET_COUNT, TARGETS,
};

/// A node present in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub kind: NodeKind,
    /// [`NODE_FEATURES`](super::NODE_FEATURES), transformed.
    pub features: [f32; NODE_FEATURE_COUNT],
    /// [`TARGETS`](super::TARGETS), raw; 0 where undefined.
    pub targets: [f32; TARGET_COUNT],
    /// 1 where the target is defined.
    pub target_mask: [f32; TARGET_COUNT],
}

/// An edge with at least one call in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRow {
    pub caller: String,
    pub callee: String,
    /// [`EDGE_FEATURES`](super::EDGE_FEATURES), transformed.
    pub features: [f32; EDGE_FEATURE_COUNT],
}

/// The feature rows of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFeatures {
    pub window_start_ms: i64,
    /// Whether the window was observed: a snapshot with at least one node or edge. A window
    /// without any (no snapshot at all, or one that only carries late/rejected counts) is a
    /// masked step.
    pub observed: bool,
    /// Sorted by name, names unique.
    pub nodes: Vec<NodeRow>,
    /// Sorted by `(caller, callee)`, pairs unique.
    pub edges: Vec<EdgeRow>,
}

impl StepFeatures {
    /// A window without a snapshot.
    pub fn missing(window_start_ms: i64) -> Self {
        Self {
            window_start_ms,
            observed: false,
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }

    /// The rows of a snapshot. Rates use the snapshot's window length. Robust to any snapshot:
    /// unsorted input is sorted, a repeated node name or edge keeps its first entry, and no value
    /// is NaN or infinite.
    pub fn from_snapshot(snapshot: &GraphSnapshot) -> Self {
        // A zero window length cannot come from the aggregator; 1 ms keeps rates finite.
        let window_s = f64::from(snapshot.window_ms.max(1)) / 1000.0;
        let mut nodes: Vec<NodeRow> = snapshot
            .nodes
            .iter()
            .map(|n| {
                let mut row = NodeRow {
                    name: n.name.clone(),
                    kind: n.kind,
                    features: [0.0; NODE_FEATURE_COUNT],
                    targets: [0.0; TARGET_COUNT],
                    target_mask: [0.0; TARGET_COUNT],
                };
                for (slot, f) in row.features.iter_mut().zip(&NODE_FEATURES) {
                    *slot = f.value(n, window_s);
                }
                for ((v, m), t) in row
                    .targets
                    .iter_mut()
                    .zip(row.target_mask.iter_mut())
                    .zip(&TARGETS)
                {
                    if let Some(x) = t.value(n, window_s) {
                        let x = x as f32;
                        if x.is_finite() {
                            *v = x;
                            *m = 1.0;
                        }
                    }
                }
                row
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes.dedup_by(|b, a| a.name == b.name);
        let mut edges: Vec<EdgeRow> = snapshot
            .edges
            .iter()
            .map(|e| {
                let mut row = EdgeRow {
                    caller: e.caller.clone(),
                    callee: e.callee.clone(),
                    features: [0.0; EDGE_FEATURE_COUNT],
                };
                for (slot, f) in row.features.iter_mut().zip(&EDGE_FEATURES) {
                    *slot = f.value(e, window_s);
                }
                row
            })
            .collect();
        edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
        edges.dedup_by(|b, a| a.caller == b.caller && a.callee == b.callee);
        Self {
            window_start_ms: snapshot.window_start_ms,
            observed: !(nodes.is_empty() && edges.is_empty()),
            nodes,
            edges,
        }
    }
}
