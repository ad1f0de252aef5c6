//! Micro-batching as a disjoint union (ARCHITECTURE.md §5): several graphs with the same
//! windows become one graph whose nodes and edges are those of all parts, side by side. The
//! model contract has no interaction between nodes that no edge connects, so each part's
//! outputs are the union's outputs at that part's nodes.
//!
//! [`join`] concatenates node inputs along N and edge inputs along E and shifts each part's
//! edge endpoints by the nodes before it; [`Joined::split`] cuts the outputs back at the same
//! node offsets. Parts can be joined when their [`batch_key`]s are equal (same T and the same
//! `window_start`). Pure functions: no ONNX Runtime, no I/O.

use std::ops::Range;

use ndarray::{Array2, ArrayView, Axis, Dimension, RemoveAxis, Slice, concatenate};

use crate::io::{ModelInputs, ModelOutputs};
use crate::manifest::{
    ANOMALY_SCORE, EDGE_FEATURES, EDGE_INDEX, EDGE_WEIGHT, FEATURE_CONTRIBUTION, FORECAST,
    FORECAST_INTERVAL, NODE_FEATURES, NODE_MASK, WINDOW_START,
};

/// Why graphs cannot be joined, or outputs not split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Nothing to join.
    #[error("no graphs to join")]
    Empty,
    /// A part does not fit the first one (T, F, Fe, `window_start`) or its inputs disagree with
    /// each other.
    #[error("graph {part} of the batch cannot be joined: {reason}")]
    Incompatible {
        /// Index of the part in the slice given to [`join`].
        part: usize,
        reason: String,
    },
    /// The outputs of the joined run do not cover the joined nodes.
    #[error("output {output} of the joined run: {message}")]
    Output {
        output: &'static str,
        message: String,
    },
}

/// Which requests may share a run: those with equal keys (the same T and the same window
/// starts; F and Fe are the model's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchKey {
    /// T: windows.
    pub steps: usize,
    /// `window_start` (forecaster), `None` for the detector.
    pub window_start: Option<Vec<i64>>,
}

/// The key of `inputs`.
pub fn batch_key(inputs: &ModelInputs) -> BatchKey {
    BatchKey {
        steps: inputs.node_features.shape()[0],
        window_start: inputs.window_start.as_ref().map(|w| w.to_vec()),
    }
}

/// Graphs joined as one disjoint union, and where each one's nodes and edges are in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The union: run this.
    pub inputs: ModelInputs,
    nodes: Vec<Range<usize>>,
    edges: Vec<Range<usize>>,
}

impl Joined {
    /// The number of graphs joined.
    pub fn parts(&self) -> usize {
        self.nodes.len()
    }

    /// N of the union.
    pub fn nodes(&self) -> usize {
        self.nodes.last().map_or(0, |r| r.end)
    }

    /// E of the union.
    pub fn edges(&self) -> usize {
        self.edges.last().map_or(0, |r| r.end)
    }

    /// The nodes of each part in the union, in order.
    pub fn node_ranges(&self) -> &[Range<usize>] {
        &self.nodes
    }

    /// The edges of each part in the union, in order.
    pub fn edge_ranges(&self) -> &[Range<usize>] {
        &self.edges
    }

    /// Cuts the outputs of a run of [`Joined::inputs`] into one per part, in the order of the
    /// parts: the detector's `anomaly_score` `[N]` and `feature_contribution` `[N, F]` along
    /// axis 0, the forecaster's `forecast` `[H, N, M]` and interval `[H, N, M, 2]` along axis 1.
    pub fn split(&self, outputs: ModelOutputs) -> Result<Vec<ModelOutputs>, BatchError> {
        let n = self.nodes();
        match outputs {
            ModelOutputs::Detector {
                anomaly_score,
                feature_contribution,
            } => {
                let scores = cut(ANOMALY_SCORE, anomaly_score.view(), 0, n, &self.nodes)?;
                let contributions = cut(
                    FEATURE_CONTRIBUTION,
                    feature_contribution.view(),
                    0,
                    n,
                    &self.nodes,
                )?;
                Ok(scores
                    .into_iter()
                    .zip(contributions)
                    .map(
                        |(anomaly_score, feature_contribution)| ModelOutputs::Detector {
                            anomaly_score,
                            feature_contribution,
                        },
                    )
                    .collect())
            }
            ModelOutputs::Forecaster { forecast, interval } => {
                let forecasts = cut(FORECAST, forecast.view(), 1, n, &self.nodes)?;
                let intervals = cut(FORECAST_INTERVAL, interval.view(), 1, n, &self.nodes)?;
                Ok(forecasts
                    .into_iter()
                    .zip(intervals)
                    .map(|(forecast, interval)| ModelOutputs::Forecaster { forecast, interval })
                    .collect())
            }
        }
    }
}

/// Copies of `array` cut along `axis` (of length `n`) at `ranges`.
fn cut<D: Dimension>(
    output: &'static str,
    array: ArrayView<'_, f32, D>,
    axis: usize,
    n: usize,
    ranges: &[Range<usize>],
) -> Result<Vec<ndarray::Array<f32, D>>, BatchError> {
    let len = array.shape().get(axis).copied();
    if len != Some(n) {
        return Err(BatchError::Output {
            output,
            message: format!(
                "shape {:?}: axis {axis} is not the {n} joined nodes",
                array.shape()
            ),
        });
    }
    Ok(ranges
        .iter()
        .map(|r| {
            array
                .slice_axis(Axis(axis), Slice::from(r.clone()))
                .to_owned()
        })
        .collect())
}

/// Joins `parts` as one disjoint union: node inputs concatenated along N, edge inputs along E,
/// each part's `edge_index` shifted by the nodes of the parts before it. All parts need the
/// same T, F and Fe as the first and the same `window_start` (all `None`, or all equal), and
/// inputs that agree with each other (`node_mask` `[T, N]`, `edge_index` `[2, E]`,
/// `edge_weight` `[T, E]`, `edge_features` `[T, E, Fe]`). Edge endpoints are not checked here
/// (see [`ModelInputs::validate`]).
pub fn join(parts: &[&ModelInputs]) -> Result<Joined, BatchError> {
    let Some(first) = parts.first() else {
        return Err(BatchError::Empty);
    };
    let nf = first.node_features.shape();
    let (t, f) = (nf[0], nf[2]);
    let fe = first.edge_features.shape()[2];
    let mut nodes = Vec::with_capacity(parts.len());
    let mut edges = Vec::with_capacity(parts.len());
    let (mut n_total, mut e_total) = (0_usize, 0_usize);
    for (part, inputs) in parts.iter().enumerate() {
        let incompatible = |reason: String| BatchError::Incompatible { part, reason };
        let nf = inputs.node_features.shape();
        let (n, e) = (nf[1], inputs.edge_index.shape()[1]);
        if nf[0] != t {
            return Err(incompatible(format!(
                "T = {}, the first graph has T = {t}",
                nf[0]
            )));
        }
        if nf[2] != f {
            return Err(incompatible(format!(
                "{NODE_FEATURES} has {} features, the first graph {f}",
                nf[2]
            )));
        }
        let ef = inputs.edge_features.shape();
        if ef[2] != fe {
            return Err(incompatible(format!(
                "{EDGE_FEATURES} has {} features, the first graph {fe}",
                ef[2]
            )));
        }
        if inputs.window_start != first.window_start {
            return Err(incompatible(format!(
                "{WINDOW_START} differs from the first graph's"
            )));
        }
        for (name, actual, want) in [
            (NODE_MASK, inputs.node_mask.shape(), &[t, n][..]),
            (EDGE_INDEX, inputs.edge_index.shape(), &[2, e][..]),
            (EDGE_WEIGHT, inputs.edge_weight.shape(), &[t, e][..]),
            (EDGE_FEATURES, ef, &[t, e, fe][..]),
        ] {
            if actual != want {
                return Err(incompatible(format!(
                    "{name} has shape {actual:?}, expected {want:?}"
                )));
            }
        }
        nodes.push(n_total..n_total + n);
        edges.push(e_total..e_total + e);
        n_total += n;
        e_total += e;
    }

    let mut edge_index = Array2::<i64>::zeros((2, e_total));
    for (inputs, (node_range, edge_range)) in parts.iter().zip(nodes.iter().zip(&edges)) {
        let offset = i64::try_from(node_range.start).map_err(|_| BatchError::Incompatible {
            part: 0,
            reason: format!("{n_total} nodes do not fit an i64 edge index"),
        })?;
        let mut target = edge_index.slice_axis_mut(Axis(1), Slice::from(edge_range.clone()));
        // an endpoint out of range stays out of range (validation reports it): no overflow
        target.zip_mut_with(&inputs.edge_index, |to, &from| {
            *to = from.saturating_add(offset);
        });
    }
    let inputs = ModelInputs {
        node_features: concat(NODE_FEATURES, 1, parts, |p| p.node_features.view())?,
        node_mask: concat(NODE_MASK, 1, parts, |p| p.node_mask.view())?,
        edge_index,
        edge_weight: concat(EDGE_WEIGHT, 1, parts, |p| p.edge_weight.view())?,
        edge_features: concat(EDGE_FEATURES, 1, parts, |p| p.edge_features.view())?,
        window_start: first.window_start.clone(),
    };
    Ok(Joined {
        inputs,
        nodes,
        edges,
    })
}

/// `view` of every part concatenated along `axis`.
fn concat<'a, D: RemoveAxis>(
    name: &'static str,
    axis: usize,
    parts: &[&'a ModelInputs],
    view: impl Fn(&'a ModelInputs) -> ArrayView<'a, f32, D>,
) -> Result<ndarray::Array<f32, D>, BatchError> {
    let views: Vec<_> = parts.iter().map(|p| view(p)).collect();
    // the shapes were checked above; an error here is a bug, reported rather than a panic
    concatenate(Axis(axis), &views).map_err(|e| BatchError::Incompatible {
        part: 0,
        reason: format!("cannot concatenate {name}: {e}"),
    })
}

#[cfg(test)]
mod tests;
