//! Model inputs and outputs as ndarray arrays, with the contract's shape rules checked before
//! ONNX Runtime sees them (ARCHITECTURE.md §5).

use ndarray::{Array1, Array2, Array3, Array4, ArrayViewD};

use crate::error::ShapeError;
use crate::manifest::{
    ANOMALY_SCORE, EDGE_FEATURES, EDGE_INDEX, EDGE_WEIGHT, FEATURE_CONTRIBUTION, FORECAST,
    FORECAST_INTERVAL, ModelKind, NODE_FEATURES, NODE_MASK, WINDOW_START,
};

/// The contract inputs of one run: T windows of a graph (or a disjoint union of graphs) with N
/// nodes and E edges.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInputs {
    /// `[T, N, F]`
    pub node_features: Array3<f32>,
    /// `[T, N]`
    pub node_mask: Array2<f32>,
    /// `[2, E]`: (caller, callee) node indices in `[0, N)`
    pub edge_index: Array2<i64>,
    /// `[T, E]`
    pub edge_weight: Array2<f32>,
    /// `[T, E, Fe]`
    pub edge_features: Array3<f32>,
    /// `[T]`, unix seconds: required by the forecaster, refused by the detector.
    pub window_start: Option<Array1<i64>>,
}

/// The sizes of the dynamic axes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputDims {
    /// T: windows
    pub steps: usize,
    /// N: nodes
    pub nodes: usize,
    /// E: edges
    pub edges: usize,
}

impl ModelInputs {
    /// Checks the inputs of a `kind` model with `f` node and `fe` edge features: ranks and
    /// sizes agree across inputs (T and N from `node_features`, E from `edge_index`), T ≥ 1,
    /// N ≥ 1, every edge endpoint in `[0, N)`, `window_start` present exactly for the forecaster.
    pub fn validate(&self, kind: ModelKind, f: usize, fe: usize) -> Result<InputDims, ShapeError> {
        let nf = self.node_features.shape();
        let (t, n) = (nf[0], nf[1]);
        let e = self.edge_index.shape()[1];
        let dims = InputDims {
            steps: t,
            nodes: n,
            edges: e,
        };
        let ts = format!("T={t}");
        let ns = format!("N={n}");
        let es = format!("E={e}");
        let fs = f.to_string();
        let fes = fe.to_string();
        expect(NODE_FEATURES, nf, &[t, n, f], &[&ts, &ns, &fs])?;
        if t == 0 {
            return Err(ShapeError::Empty { axis: "T" });
        }
        if n == 0 {
            return Err(ShapeError::Empty { axis: "N" });
        }
        expect(NODE_MASK, self.node_mask.shape(), &[t, n], &[&ts, &ns])?;
        expect(EDGE_INDEX, self.edge_index.shape(), &[2, e], &["2", &es])?;
        expect(EDGE_WEIGHT, self.edge_weight.shape(), &[t, e], &[&ts, &es])?;
        expect(
            EDGE_FEATURES,
            self.edge_features.shape(),
            &[t, e, fe],
            &[&ts, &es, &fes],
        )?;
        match (kind, &self.window_start) {
            (ModelKind::Forecaster, None) => {
                return Err(ShapeError::MissingInput {
                    input: WINDOW_START,
                    kind: kind.as_str(),
                });
            }
            (ModelKind::Detector, Some(_)) => {
                return Err(ShapeError::UnexpectedInput {
                    input: WINDOW_START,
                    kind: kind.as_str(),
                });
            }
            (_, Some(window_start)) => expect(WINDOW_START, window_start.shape(), &[t], &[&ts])?,
            (ModelKind::Detector, None) => {}
        }
        for ((row, edge), &value) in self.edge_index.indexed_iter() {
            if usize::try_from(value).map_or(true, |v| v >= n) {
                return Err(ShapeError::EdgeIndex {
                    row,
                    edge,
                    value,
                    nodes: n,
                });
            }
        }
        Ok(dims)
    }
}

fn expect(
    input: &'static str,
    actual: &[usize],
    want: &[usize],
    names: &[&str],
) -> Result<(), ShapeError> {
    if actual == want {
        Ok(())
    } else {
        Err(ShapeError::Input {
            input,
            actual: actual.to_vec(),
            expected: format!("[{}]", names.join(", ")),
        })
    }
}

/// What a model computed.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelOutputs {
    Detector {
        /// `[N]`: anomaly score of each node in the last window
        anomaly_score: Array1<f32>,
        /// `[N, F]`: contribution of each node feature to the score
        feature_contribution: Array2<f32>,
    },
    Forecaster {
        /// `[H, N, M]`: forecast of each target
        forecast: Array3<f32>,
        /// `[H, N, M, 2]`: (lower, upper) bounds of the forecast
        interval: Array4<f32>,
    },
}

impl ModelOutputs {
    /// The output called `name` in the contract, as a dynamic-rank view.
    pub fn get(&self, name: &str) -> Option<ArrayViewD<'_, f32>> {
        match (self, name) {
            (Self::Detector { anomaly_score, .. }, ANOMALY_SCORE) => {
                Some(anomaly_score.view().into_dyn())
            }
            (
                Self::Detector {
                    feature_contribution,
                    ..
                },
                FEATURE_CONTRIBUTION,
            ) => Some(feature_contribution.view().into_dyn()),
            (Self::Forecaster { forecast, .. }, FORECAST) => Some(forecast.view().into_dyn()),
            (Self::Forecaster { interval, .. }, FORECAST_INTERVAL) => {
                Some(interval.view().into_dyn())
            }
            _ => None,
        }
    }

    /// The contract names of these outputs, in order.
    pub fn names(&self) -> &'static [&'static str] {
        match self {
            Self::Detector { .. } => &[ANOMALY_SCORE, FEATURE_CONTRIBUTION],
            Self::Forecaster { .. } => &[FORECAST, FORECAST_INTERVAL],
        }
    }
}

#[cfg(test)]
mod tests;
