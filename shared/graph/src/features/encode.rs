//! A sequence of windows of one graph to the tensors of the model contract
//! (ARCHITECTURE.md §5): nodes and edges are the unions over the sequence, absent ones masked.

use std::collections::{BTreeMap, BTreeSet};

use crate::snapshot::{GraphSnapshot, NodeKind};
use crate::window::{OVERFLOW_NODE, USER_NODE};

use super::schema::{EDGE_FEATURE_COUNT, NODE_FEATURE_COUNT, TARGET_COUNT};
use super::step::StepFeatures;
use super::{Tensor, TensorTooLarge};

/// Index of `request_rate` in [`TARGETS`](super::TARGETS): defined (0) for every node of an
/// observed window, also where the node is absent.
pub const REQUEST_RATE_TARGET: usize = 0;

/// The encoded sequence: T steps (windows), N nodes, E edges. Shapes as in ARCHITECTURE.md §5.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSequence {
    pub window_ms: u32,
    /// N node names, sorted (byte order): node `n` of every tensor.
    pub node_names: Vec<String>,
    /// Kind of each node at the last step it was present. A node that only ever appears as an
    /// edge endpoint (the `__overflow__ -> __overflow__` edge of the cardinality guard) is
    /// `overflow` if named so, `user` if named so, else `peer`.
    pub node_kinds: Vec<NodeKind>,
    /// f32 [T, N, F]: [`NODE_FEATURES`](super::NODE_FEATURES); all 0 where the node is absent.
    pub node_features: Tensor<f32>,
    /// f32 [T, N]: 1 where the node is in the window's snapshot.
    pub node_mask: Tensor<f32>,
    /// i64 [2, E]: (caller, callee) node indices of the edges, sorted by (caller, callee) name.
    pub edge_index: Tensor<i64>,
    /// f32 [T, E]: 1 where the edge carried at least one call in the window, else 0 (volume
    /// is edge feature `calls_per_s`).
    pub edge_weight: Tensor<f32>,
    /// f32 [T, E, Fe]: [`EDGE_FEATURES`](super::EDGE_FEATURES); all 0 where the edge is absent.
    pub edge_features: Tensor<f32>,
    /// i64 [T]: window starts, Unix seconds (floored).
    pub window_start: Tensor<i64>,
    /// The same in milliseconds (exact).
    pub window_start_ms: Vec<i64>,
    /// f32 [T]: 1 where the window was observed (see [`StepFeatures::observed`]).
    pub step_mask: Tensor<f32>,
    /// f32 [T, N, M]: [`TARGETS`](super::TARGETS), raw; 0 where undefined.
    pub targets: Tensor<f32>,
    /// f32 [T, N, M]: 1 where the target is defined: `request_rate` for every node of an
    /// observed window, the others where the node served requests.
    pub target_mask: Tensor<f32>,
}

impl EncodedSequence {
    pub fn steps(&self) -> usize {
        self.window_start_ms.len()
    }

    pub fn node_count(&self) -> usize {
        self.node_names.len()
    }

    pub fn edge_count(&self) -> usize {
        self.edge_index.shape()[1]
    }

    /// Index of node `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.node_names
            .binary_search_by(|n| n.as_str().cmp(name))
            .ok()
    }

    /// Index of edge `caller -> callee`.
    pub fn edge_position(&self, caller: &str, callee: &str) -> Option<usize> {
        let (a, b) = (self.node_index(caller)?, self.node_index(callee)?);
        let e = self.edge_count();
        let idx = self.edge_index.data();
        (0..e).find(|&i| idx[i] == a as i64 && idx[e + i] == b as i64)
    }
}

/// Why a sequence cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("a sequence needs at least one step")]
    NoSteps,
    #[error("window length must be positive")]
    ZeroWindow,
    #[error("step {step}: window start {start_ms} is not after the previous step's")]
    NotIncreasing { step: usize, start_ms: i64 },
    #[error("step {step}: snapshot of graph {found:?}, expected {expected:?}")]
    GraphMismatch {
        step: usize,
        expected: String,
        found: String,
    },
    #[error("step {step}: window of {found_ms} ms, expected {expected_ms} ms")]
    WindowMismatch {
        step: usize,
        expected_ms: u32,
        found_ms: u32,
    },
    #[error("step {step}: window starts at {found_ms}, expected {expected_ms}")]
    StartMismatch {
        step: usize,
        expected_ms: i64,
        found_ms: i64,
    },
    #[error(transparent)]
    TooLarge(#[from] TensorTooLarge),
}

/// Encodes consecutive windows `first_window_start_ms + t · window_ms` of one graph; `None`
/// is a window without a snapshot (a masked step).
pub fn encode_snapshots(
    window_ms: u32,
    first_window_start_ms: i64,
    snapshots: &[Option<&GraphSnapshot>],
) -> Result<EncodedSequence, EncodeError> {
    let mut graph: Option<&str> = None;
    let mut steps = Vec::with_capacity(snapshots.len());
    for (step, snapshot) in snapshots.iter().enumerate() {
        let expected_ms = i64::try_from(step)
            .ok()
            .and_then(|t| t.checked_mul(i64::from(window_ms)))
            .and_then(|o| first_window_start_ms.checked_add(o))
            .ok_or(EncodeError::NotIncreasing {
                step,
                start_ms: i64::MAX,
            })?;
        let Some(s) = snapshot else {
            steps.push(StepFeatures::missing(expected_ms));
            continue;
        };
        match graph {
            Some(g) if g != s.graph => {
                return Err(EncodeError::GraphMismatch {
                    step,
                    expected: g.to_owned(),
                    found: s.graph.clone(),
                });
            }
            _ => graph = Some(&s.graph),
        }
        if s.window_ms != window_ms {
            return Err(EncodeError::WindowMismatch {
                step,
                expected_ms: window_ms,
                found_ms: s.window_ms,
            });
        }
        if s.window_start_ms != expected_ms {
            return Err(EncodeError::StartMismatch {
                step,
                expected_ms,
                found_ms: s.window_start_ms,
            });
        }
        steps.push(StepFeatures::from_snapshot(s));
    }
    encode(window_ms, &steps)
}

/// Encodes a sequence of steps (strictly increasing window starts; gaps are allowed, the
/// window starts tell them).
pub fn encode(window_ms: u32, steps: &[StepFeatures]) -> Result<EncodedSequence, EncodeError> {
    if steps.is_empty() {
        return Err(EncodeError::NoSteps);
    }
    if window_ms == 0 {
        return Err(EncodeError::ZeroWindow);
    }
    for (step, pair) in steps.windows(2).enumerate() {
        if pair[1].window_start_ms <= pair[0].window_start_ms {
            return Err(EncodeError::NotIncreasing {
                step: step + 1,
                start_ms: pair[1].window_start_ms,
            });
        }
    }

    // Unions: nodes (with their latest kind) and edges, both sorted by name.
    let mut kinds: BTreeMap<&str, Option<NodeKind>> = BTreeMap::new();
    let mut edge_set: BTreeSet<(&str, &str)> = BTreeSet::new();
    for step in steps {
        for n in &step.nodes {
            kinds.insert(&n.name, Some(n.kind));
        }
        for e in &step.edges {
            kinds.entry(&e.caller).or_insert(None);
            kinds.entry(&e.callee).or_insert(None);
            edge_set.insert((&e.caller, &e.callee));
        }
    }
    let node_names: Vec<String> = kinds.keys().map(|n| (*n).to_owned()).collect();
    let node_kinds: Vec<NodeKind> = kinds
        .iter()
        .map(|(name, kind)| {
            kind.unwrap_or(match *name {
                OVERFLOW_NODE => NodeKind::Overflow,
                USER_NODE => NodeKind::User,
                _ => NodeKind::Peer,
            })
        })
        .collect();
    let edges: Vec<(&str, &str)> = edge_set.into_iter().collect();
    let index_of = |name: &str| {
        node_names
            .binary_search_by(|n| n.as_str().cmp(name))
            .unwrap_or(0)
    };

    let (t_len, n_len, e_len) = (steps.len(), node_names.len(), edges.len());
    let mut node_features = Tensor::filled(&[t_len, n_len, NODE_FEATURE_COUNT], 0.0f32)?;
    let mut node_mask = Tensor::filled(&[t_len, n_len], 0.0f32)?;
    let mut edge_index = Tensor::filled(&[2, e_len], 0i64)?;
    let mut edge_weight = Tensor::filled(&[t_len, e_len], 0.0f32)?;
    let mut edge_features = Tensor::filled(&[t_len, e_len, EDGE_FEATURE_COUNT], 0.0f32)?;
    let mut step_mask = Tensor::filled(&[t_len], 0.0f32)?;
    let mut targets = Tensor::filled(&[t_len, n_len, TARGET_COUNT], 0.0f32)?;
    let mut target_mask = Tensor::filled(&[t_len, n_len, TARGET_COUNT], 0.0f32)?;

    for (e, (caller, callee)) in edges.iter().enumerate() {
        set(&mut edge_index, &[0, e], index_of(caller) as i64);
        set(&mut edge_index, &[1, e], index_of(callee) as i64);
    }
    let window_start_ms: Vec<i64> = steps.iter().map(|s| s.window_start_ms).collect();
    let window_start = Tensor::from_vec(
        &[t_len],
        window_start_ms
            .iter()
            .map(|ms| ms.div_euclid(1000))
            .collect(),
    )
    .ok_or_else(|| TensorTooLarge { shape: vec![t_len] })?;

    for (t, step) in steps.iter().enumerate() {
        if step.observed {
            set(&mut step_mask, &[t], 1.0);
            for n in 0..n_len {
                set(&mut target_mask, &[t, n, REQUEST_RATE_TARGET], 1.0);
            }
        }
        for row in &step.nodes {
            let n = index_of(&row.name);
            set(&mut node_mask, &[t, n], 1.0);
            copy_row(&mut node_features, &[t, n], &row.features);
            copy_row(&mut targets, &[t, n], &row.targets);
            copy_row(&mut target_mask, &[t, n], &row.target_mask);
        }
        for row in &step.edges {
            let key = (row.caller.as_str(), row.callee.as_str());
            let Ok(e) = edges.binary_search(&key) else {
                continue;
            };
            set(&mut edge_weight, &[t, e], 1.0);
            copy_row(&mut edge_features, &[t, e], &row.features);
        }
    }

    Ok(EncodedSequence {
        window_ms,
        node_names,
        node_kinds,
        node_features,
        node_mask,
        edge_index,
        edge_weight,
        edge_features,
        window_start,
        window_start_ms,
        step_mask,
        targets,
        target_mask,
    })
}

/// Writes one element; the indices come from the shapes the tensors were made with.
fn set<T>(tensor: &mut Tensor<T>, index: &[usize], value: T) {
    if let Some(slot) = tensor.get_mut(index) {
        *slot = value;
    }
}

fn copy_row<T: Copy>(tensor: &mut Tensor<T>, prefix: &[usize], values: &[T]) {
    if let Some(row) = tensor.row_mut(prefix) {
        row.copy_from_slice(values);
    }
}

#[cfg(test)]
mod tests;
