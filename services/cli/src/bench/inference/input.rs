//! The benchmark's inputs: a deterministic synthetic service graph with plausible feature
//! values, and its `.npz` for the PyTorch side.
//!
//! N nodes, each calling `edges_per_node` distinct others (never itself), so E =
//! `edges_per_node` · N when N > `edges_per_node`; every node present in every one of the T
//! windows, edge weights 1. Feature values are drawn as raw statistics of the unit each feature
//! has (requests/s, ms, ratios, bytes) and put through the feature's own transform
//! ([`meshwatch_graph::features::Transform`]), so they sit on the scale the models were trained
//! on: small non-negative floats, kinds one-hot. A small xorshift generator, seeded, makes the
//! same inputs on every machine.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use meshwatch_graph::features::{EDGE_FEATURES, NODE_FEATURES, Transform};
use meshwatch_model::{ModelInputs, manifest};
use ndarray::{Array, Array1, Array2, Array3, Dimension};

use crate::dataset::npz::{Element, NpzWriter};

/// xorshift64*: small, fast and the same everywhere (not for anything but benchmark inputs).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // any seed, zero included, gives a non-zero state
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // 53 bits: exact
        let x = (self.next_u64() >> 11) as f64;
        x / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `[0, n)`; `n` > 0.
    pub fn below(&mut self, n: usize) -> usize {
        // the modulo bias of a 64-bit draw over n ≤ 2^32 is far below what a benchmark sees
        usize::try_from(self.next_u64() % n.max(1) as u64).unwrap_or(0)
    }
}

/// The size and seed of a synthetic graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphSpec {
    /// T: windows.
    pub steps: usize,
    /// N: nodes.
    pub nodes: usize,
    /// Callees per node (fewer when N is smaller).
    pub edges_per_node: usize,
    pub seed: u64,
    /// Unix seconds of the first window and the window length in seconds: `window_start` (the
    /// forecaster's input); `None` for the detector.
    pub window_start: Option<(i64, i64)>,
}

/// Node kinds of the synthetic graph, by the suffix of their `kind_*` feature.
fn node_kind(node: usize, rng: &mut XorShift) -> &'static str {
    if node == 0 {
        return "user";
    }
    match rng.below(20) {
        0 | 1 => "database",
        2 => "messaging",
        _ => "service",
    }
}

/// A raw statistic of the unit feature `name` suggests.
fn raw_value(name: &str, transform: Transform, rng: &mut XorShift) -> f64 {
    match transform {
        Transform::Presence => 1.0,
        Transform::OneHot => 0.0,
        Transform::Ratio if name == "paired_ratio" => rng.range(0.95, 1.0),
        Transform::Ratio if name.ends_with("utilization") => rng.range(0.1, 0.8),
        Transform::Ratio => rng.range(0.0, 0.02),
        Transform::SignedLog1p => rng.range(0.1, 10.0),
        Transform::Log1p if name.ends_with("_ms") => rng.range(2.0, 200.0),
        Transform::Log1p if name.contains("bytes_per_s") => rng.range(1e4, 1e6),
        Transform::Log1p if name.contains("bytes") => rng.range(1e8, 1e9),
        Transform::Log1p if name.ends_with("_per_s") => rng.range(1.0, 200.0),
        Transform::Log1p => 0.0,
    }
}

/// The contract inputs of the synthetic graph `spec` (see the module docs), for this build's
/// feature schema.
pub fn synthetic_inputs(spec: &GraphSpec) -> ModelInputs {
    let (t, n) = (spec.steps, spec.nodes);
    let mut rng = XorShift::new(spec.seed);
    let kinds: Vec<&'static str> = (0..n).map(|i| node_kind(i, &mut rng)).collect();

    // each node calls `per` distinct others, drawn among the N - 1 that are not itself
    let per = spec.edges_per_node.min(n.saturating_sub(1));
    let mut callers = Vec::with_capacity(n * per);
    let mut callees = Vec::with_capacity(n * per);
    let mut mine = Vec::with_capacity(per);
    for caller in 0..n {
        mine.clear();
        while mine.len() < per {
            let callee = (caller + 1 + rng.below(n - 1)) % n;
            if !mine.contains(&callee) {
                mine.push(callee);
            }
        }
        for &callee in &mine {
            callers.push(caller);
            callees.push(callee);
        }
    }
    let e = callers.len();
    let to_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let edge_index = Array2::from_shape_fn((2, e), |(row, edge)| {
        to_i64(if row == 0 {
            callers[edge]
        } else {
            callees[edge]
        })
    });

    let mut node_features = Array3::<f32>::zeros((t, n, NODE_FEATURES.len()));
    for (node, kind) in kinds.iter().enumerate() {
        for step in 0..t {
            for (f, feature) in NODE_FEATURES.iter().enumerate() {
                let value = if feature.transform == Transform::OneHot {
                    let own = feature.name.strip_prefix("kind_") == Some(*kind);
                    if own { 1.0 } else { 0.0 }
                } else {
                    feature
                        .transform
                        .apply(raw_value(feature.name, feature.transform, &mut rng))
                };
                node_features[[step, node, f]] = value;
            }
        }
    }
    let mut edge_features = Array3::<f32>::zeros((t, e, EDGE_FEATURES.len()));
    for edge in 0..e {
        let connection = match kinds[callees[edge]] {
            "database" => "database",
            "messaging" => "messaging",
            _ if callers[edge] == 0 => "entry",
            _ => "direct",
        };
        for step in 0..t {
            for (f, feature) in EDGE_FEATURES.iter().enumerate() {
                let value = if feature.transform == Transform::OneHot {
                    let own = feature.name.strip_prefix("conn_") == Some(connection);
                    if own { 1.0 } else { 0.0 }
                } else {
                    feature
                        .transform
                        .apply(raw_value(feature.name, feature.transform, &mut rng))
                };
                edge_features[[step, edge, f]] = value;
            }
        }
    }
    ModelInputs {
        node_features,
        node_mask: Array2::ones((t, n)),
        edge_index,
        edge_weight: Array2::ones((t, e)),
        edge_features,
        window_start: spec
            .window_start
            .map(|(first, step)| Array1::from_shape_fn(t, |i| first + step * to_i64(i))),
    }
}

/// Writes `inputs` as an `.npz` with the contract's names (what
/// `python -m meshwatch_training latency --inputs` reads).
pub fn write_npz(inputs: &ModelInputs, path: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut npz = NpzWriter::new(std::io::BufWriter::new(file));
    put(&mut npz, manifest::NODE_FEATURES, &inputs.node_features)?;
    put(&mut npz, manifest::NODE_MASK, &inputs.node_mask)?;
    put(&mut npz, manifest::EDGE_INDEX, &inputs.edge_index)?;
    put(&mut npz, manifest::EDGE_WEIGHT, &inputs.edge_weight)?;
    put(&mut npz, manifest::EDGE_FEATURES, &inputs.edge_features)?;
    if let Some(window_start) = &inputs.window_start {
        put(&mut npz, manifest::WINDOW_START, window_start)?;
    }
    npz.finish()?
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Adds `array` (row-major) to `npz` as `name`.
fn put<T, D, W>(npz: &mut NpzWriter<W>, name: &str, array: &Array<T, D>) -> anyhow::Result<()>
where
    T: Element,
    D: Dimension,
    W: Write,
{
    let standard = array.as_standard_layout();
    // a standard-layout array is contiguous
    let data = standard
        .as_slice()
        .with_context(|| format!("{name} is not contiguous"))?;
    npz.array(name, standard.shape(), data)
}

#[cfg(test)]
mod tests {
    use meshwatch_graph::features::{EDGE_FEATURE_COUNT, NODE_FEATURE_COUNT};
    use meshwatch_model::ModelKind;

    use super::*;

    fn spec(nodes: usize, edges_per_node: usize, seed: u64) -> GraphSpec {
        GraphSpec {
            steps: 12,
            nodes,
            edges_per_node,
            seed,
            window_start: None,
        }
    }

    #[test]
    fn shapes_follow_the_spec_and_the_schema() {
        let inputs = synthetic_inputs(&spec(50, 2, 1));
        assert_eq!(inputs.node_features.shape(), &[12, 50, NODE_FEATURE_COUNT]);
        assert_eq!(inputs.node_mask.shape(), &[12, 50]);
        assert_eq!(inputs.edge_index.shape(), &[2, 100]);
        assert_eq!(inputs.edge_weight.shape(), &[12, 100]);
        assert_eq!(inputs.edge_features.shape(), &[12, 100, EDGE_FEATURE_COUNT]);
        assert!(inputs.window_start.is_none());
        let dims = inputs.validate(ModelKind::Detector, NODE_FEATURE_COUNT, EDGE_FEATURE_COUNT);
        assert!(dims.is_ok(), "{dims:?}");
        assert!(inputs.node_mask.iter().all(|&m| m == 1.0));
        assert!(inputs.edge_weight.iter().all(|&w| w == 1.0));
    }

    #[test]
    fn edges_have_no_self_loops_no_duplicates_and_endpoints_in_range() {
        for (nodes, per) in [(1, 2), (2, 2), (3, 2), (10, 2), (1000, 4)] {
            let inputs = synthetic_inputs(&spec(nodes, per, 7));
            let e = inputs.edge_index.shape()[1];
            assert_eq!(e, nodes * per.min(nodes - 1), "N={nodes}");
            let mut pairs = std::collections::HashSet::new();
            for edge in 0..e {
                let (a, b) = (inputs.edge_index[[0, edge]], inputs.edge_index[[1, edge]]);
                assert_ne!(a, b, "self loop at edge {edge}");
                for v in [a, b] {
                    assert!(
                        usize::try_from(v).is_ok_and(|v| v < nodes),
                        "{v} of N={nodes}"
                    );
                }
                assert!(pairs.insert((a, b)), "duplicate edge {a} -> {b}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_inputs_and_another_seed_others() {
        assert_eq!(
            synthetic_inputs(&spec(30, 2, 5)),
            synthetic_inputs(&spec(30, 2, 5))
        );
        assert_ne!(
            synthetic_inputs(&spec(30, 2, 5)),
            synthetic_inputs(&spec(30, 2, 6))
        );
    }

    #[test]
    fn feature_values_are_plausible() {
        let inputs = synthetic_inputs(&spec(200, 2, 3));
        let x = &inputs.node_features;
        assert!(x.iter().all(|v| v.is_finite() && (0.0..25.0).contains(v)));
        // one kind per node, in every window
        let kinds: Vec<usize> = NODE_FEATURES
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name.starts_with("kind_"))
            .map(|(i, _)| i)
            .collect();
        for step in 0..12 {
            for node in 0..200 {
                let ones: f32 = kinds.iter().map(|&k| x[[step, node, k]]).sum();
                assert_eq!(ones, 1.0, "node {node} step {step}");
            }
        }
        let ef = &inputs.edge_features;
        assert!(ef.iter().all(|v| v.is_finite() && (0.0..25.0).contains(v)));
    }

    #[test]
    fn the_forecaster_gets_consecutive_windows() {
        let mut s = spec(4, 2, 1);
        s.window_start = Some((1_736_121_600, 10));
        let inputs = synthetic_inputs(&s);
        let ws = inputs.window_start.expect("asked for");
        assert_eq!(ws.len(), 12);
        assert_eq!(ws[0], 1_736_121_600);
        assert!(ws.iter().zip(ws.iter().skip(1)).all(|(a, b)| b - a == 10));
    }

    #[test]
    fn the_npz_holds_every_input() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("inputs.npz");
        let mut s = spec(5, 2, 1);
        s.window_start = Some((0, 10));
        write_npz(&synthetic_inputs(&s), &path)?;
        let bytes = std::fs::read(&path)?;
        for name in [
            "node_features.npy",
            "node_mask.npy",
            "edge_index.npy",
            "edge_weight.npy",
            "edge_features.npy",
            "window_start.npy",
        ] {
            assert!(
                bytes.windows(name.len()).any(|w| w == name.as_bytes()),
                "{name} missing"
            );
        }
        Ok(())
    }
}
