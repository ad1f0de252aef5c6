//! Parity vectors: inputs and the outputs the exporter's ONNX Runtime produced for them. The
//! Rust side replays them through `ort` and compares every output element:
//! `|got - want| <= atol + rtol * |want|` (NaN never passes; an infinity only matches itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{Array, ArrayD, Dimension, IxDyn};
use serde::Deserialize;

use crate::error::ModelError;
use crate::io::{ModelInputs, ModelOutputs};
use crate::manifest::{
    DType, EDGE_FEATURES, EDGE_INDEX, EDGE_WEIGHT, NODE_FEATURES, NODE_MASK, ParitySpec,
    WINDOW_START, artifact_file,
};
use crate::model::{LoadOptions, Model};

/// Whether `got` is within tolerance of `want`.
pub fn within_tolerance(got: f32, want: f32, atol: f64, rtol: f64) -> bool {
    if !(got.is_finite() && want.is_finite()) {
        // an infinity matches only itself; NaN matches nothing
        return got == want;
    }
    let (got, want) = (f64::from(got), f64::from(want));
    (got - want).abs() <= atol + rtol * want.abs()
}

/// A tensor in a parity file: C-order data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TensorData {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<serde_json::Number>,
}

/// One case: every model input and every output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParityCase {
    pub name: String,
    pub inputs: BTreeMap<String, TensorData>,
    pub outputs: BTreeMap<String, TensorData>,
}

/// A parity file (`parity.json`). Its own `atol`/`rtol` are informative; the manifest's entry
/// decides.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParityFile {
    #[serde(default)]
    pub atol: Option<f64>,
    #[serde(default)]
    pub rtol: Option<f64>,
    pub cases: Vec<ParityCase>,
}

impl ParityFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// How one output of one case compared.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputReport {
    pub name: String,
    pub elements: usize,
    /// Elements beyond tolerance.
    pub failed: usize,
    /// Largest `|got - want|` (NaN when an element is NaN on either side).
    pub max_abs_error: f64,
    /// The element that uses the most of its tolerance (`|got - want| / (atol + rtol *
    /// |want|)`, NaN the most): index, got, want.
    pub worst_index: Vec<usize>,
    pub worst_got: f32,
    pub worst_want: f32,
}

/// The outputs of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseReport {
    pub name: String,
    pub outputs: Vec<OutputReport>,
}

/// The result of replaying a parity file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityReport {
    pub file: PathBuf,
    pub atol: f64,
    pub rtol: f64,
    pub cases: Vec<CaseReport>,
}

impl ParityReport {
    /// Elements beyond tolerance, over all cases and outputs.
    pub fn failed(&self) -> usize {
        self.outputs().map(|(_, o)| o.failed).sum()
    }

    /// Largest absolute error over everything (NaN if any element was NaN).
    pub fn max_abs_error(&self) -> f64 {
        self.outputs()
            .map(|(_, o)| o.max_abs_error)
            .fold(0.0, |a, b| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(b)
                }
            })
    }

    /// Every (case, output) pair.
    pub fn outputs(&self) -> impl Iterator<Item = (&CaseReport, &OutputReport)> {
        self.cases
            .iter()
            .flat_map(|c| c.outputs.iter().map(move |o| (c, o)))
    }

    /// `Ok` when every element is within tolerance, else [`ModelError::ParityMismatch`] naming
    /// the worst element of each failing output.
    pub fn check(&self) -> Result<(), ModelError> {
        let failed = self.failed();
        if failed == 0 {
            return Ok(());
        }
        let details = self
            .outputs()
            .filter(|(_, o)| o.failed > 0)
            .map(|(c, o)| {
                format!(
                    "case {:?} output {}: {} of {} beyond atol {} + rtol {}; worst at {:?}: got {}, want {}",
                    c.name,
                    o.name,
                    o.failed,
                    o.elements,
                    self.atol,
                    self.rtol,
                    o.worst_index,
                    o.worst_got,
                    o.worst_want
                )
            })
            .collect();
        Err(ModelError::ParityMismatch {
            path: self.file.clone(),
            failed,
            details,
        })
    }
}

/// Loads the artifact in `dir` (with `options`, variant included) and replays its parity
/// vectors; an error when any output is beyond tolerance.
pub fn replay(dir: &Path, options: &LoadOptions) -> Result<ParityReport, ModelError> {
    let model = Model::load(dir, options)?;
    let report = run_cases(&model, dir)?;
    report.check()?;
    Ok(report)
}

/// The parity spec of the loaded model: its variant's if it has one, else the artifact's.
pub fn spec_for(model: &Model) -> Result<&ParitySpec, ModelError> {
    let manifest = model.manifest();
    match model.variant() {
        Some(name) => Ok(manifest
            .variant(name)?
            .parity
            .as_ref()
            .unwrap_or(&manifest.parity)),
        None => Ok(&manifest.parity),
    }
}

/// Runs every case of `model`'s parity file (in `dir`, the artifact directory) and compares
/// the outputs. Returns the report even when outputs are beyond tolerance (see
/// [`ParityReport::check`]); errors for unreadable files and cases that do not fit the model.
pub fn run_cases(model: &Model, dir: &Path) -> Result<ParityReport, ModelError> {
    run_cases_with(model, dir, |inputs| model.run(&inputs))
}

/// [`run_cases`] with the outputs of each case computed by `run` (e.g. through a
/// [`crate::Server`], to check the serving path against the artifact's parity vectors).
pub fn run_cases_with(
    model: &Model,
    dir: &Path,
    mut run: impl FnMut(ModelInputs) -> Result<ModelOutputs, ModelError>,
) -> Result<ParityReport, ModelError> {
    let spec = spec_for(model)?;
    let path = artifact_file(dir, &spec.file).map_err(|message| ModelError::ParityFile {
        path: dir.join(&spec.file),
        message,
    })?;
    let file = ParityFile::load(&path)?;
    let bad = |message: String| ModelError::ParityFile {
        path: path.clone(),
        message,
    };
    if file.cases.is_empty() {
        return Err(bad("no cases".to_owned()));
    }
    let mut cases = Vec::with_capacity(file.cases.len());
    for case in &file.cases {
        let inputs = case_inputs(case).map_err(|m| bad(format!("case {:?}: {m}", case.name)))?;
        let outputs = run(inputs)?;
        let mut reports = Vec::new();
        for name in outputs.names() {
            let want = case
                .outputs
                .get(*name)
                .ok_or_else(|| bad(format!("case {:?}: no expected output {name}", case.name)))?;
            let want = to_array::<f32>(want, DType::F32)
                .map_err(|m| bad(format!("case {:?} output {name}: {m}", case.name)))?;
            let Some(got) = outputs.get(name) else {
                return Err(bad(format!("the model returned no output {name}")));
            };
            if got.shape() != want.shape() {
                return Err(ModelError::ParityMismatch {
                    path: path.clone(),
                    failed: want.len(),
                    details: vec![format!(
                        "case {:?} output {name}: shape {:?}, expected {:?}",
                        case.name,
                        got.shape(),
                        want.shape()
                    )],
                });
            }
            reports.push(compare(
                name,
                got.iter().copied(),
                &want,
                spec.atol,
                spec.rtol,
            ));
        }
        if let Some(extra) = case
            .outputs
            .keys()
            .find(|k| !outputs.names().contains(&k.as_str()))
        {
            return Err(bad(format!(
                "case {:?}: output {extra} is not the model's",
                case.name
            )));
        }
        cases.push(CaseReport {
            name: case.name.clone(),
            outputs: reports,
        });
    }
    Ok(ParityReport {
        file: path,
        atol: spec.atol,
        rtol: spec.rtol,
        cases,
    })
}

/// Compares `got` (in C order) with `want` element by element.
pub fn compare(
    name: &str,
    got: impl Iterator<Item = f32>,
    want: &ArrayD<f32>,
    atol: f64,
    rtol: f64,
) -> OutputReport {
    let mut report = OutputReport {
        name: name.to_owned(),
        elements: want.len(),
        failed: 0,
        max_abs_error: 0.0,
        worst_index: Vec::new(),
        worst_got: 0.0,
        worst_want: 0.0,
    };
    // the worst element uses the most of its tolerance: error / (atol + rtol * |want|)
    let mut worst_ratio = f64::NEG_INFINITY;
    for (got, (index, &want)) in got.zip(want.indexed_iter()) {
        let ok = within_tolerance(got, want, atol, rtol);
        if !ok {
            report.failed += 1;
        }
        let error = if got == want {
            0.0
        } else {
            (f64::from(got) - f64::from(want)).abs()
        };
        if error.is_nan() || report.max_abs_error.is_nan() {
            report.max_abs_error = f64::NAN;
        } else {
            report.max_abs_error = report.max_abs_error.max(error);
        }
        let tolerance = atol + rtol * f64::from(want).abs();
        let ratio = if error.is_nan() || (!ok && !(error / tolerance).is_finite()) {
            f64::INFINITY
        } else if error == 0.0 {
            0.0
        } else {
            error / tolerance
        };
        if ratio > worst_ratio {
            worst_ratio = ratio;
            report.worst_index = index.slice().to_vec();
            report.worst_got = got;
            report.worst_want = want;
        }
    }
    report
}

/// The model inputs of a case.
pub fn case_inputs(case: &ParityCase) -> Result<ModelInputs, String> {
    let get = |name: &str| {
        case.inputs
            .get(name)
            .ok_or_else(|| format!("no input {name}"))
    };
    let known = [
        NODE_FEATURES,
        NODE_MASK,
        EDGE_INDEX,
        EDGE_WEIGHT,
        EDGE_FEATURES,
        WINDOW_START,
    ];
    if let Some(extra) = case.inputs.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("input {extra} is not a contract input"));
    }
    let f32_dim = |name: &str| -> Result<ArrayD<f32>, String> {
        to_array::<f32>(get(name)?, DType::F32).map_err(|m| format!("input {name}: {m}"))
    };
    let i64_dim = |name: &str| -> Result<ArrayD<i64>, String> {
        to_array::<i64>(get(name)?, DType::I64).map_err(|m| format!("input {name}: {m}"))
    };
    Ok(ModelInputs {
        node_features: rank(NODE_FEATURES, f32_dim(NODE_FEATURES)?)?,
        node_mask: rank(NODE_MASK, f32_dim(NODE_MASK)?)?,
        edge_index: rank(EDGE_INDEX, i64_dim(EDGE_INDEX)?)?,
        edge_weight: rank(EDGE_WEIGHT, f32_dim(EDGE_WEIGHT)?)?,
        edge_features: rank(EDGE_FEATURES, f32_dim(EDGE_FEATURES)?)?,
        window_start: if case.inputs.contains_key(WINDOW_START) {
            Some(rank(WINDOW_START, i64_dim(WINDOW_START)?)?)
        } else {
            None
        },
    })
}

fn rank<T, D: Dimension>(name: &str, array: ArrayD<T>) -> Result<Array<T, D>, String> {
    let ndim = array.ndim();
    array.into_dimensionality::<D>().map_err(|_| {
        format!(
            "input {name}: rank {ndim}, expected {}",
            D::NDIM.unwrap_or(0)
        )
    })
}

/// An element type of parity data.
trait Element: Copy {
    fn from_number(number: &serde_json::Number) -> Option<Self>;
}

impl Element for f32 {
    #[allow(clippy::cast_possible_truncation)]
    fn from_number(number: &serde_json::Number) -> Option<Self> {
        number.as_f64().map(|v| v as f32)
    }
}

impl Element for i64 {
    fn from_number(number: &serde_json::Number) -> Option<Self> {
        number.as_i64()
    }
}

fn to_array<T: Element>(data: &TensorData, dtype: DType) -> Result<ArrayD<T>, String> {
    if data.dtype != dtype {
        return Err(format!("dtype {}, expected {dtype}", data.dtype));
    }
    let values = data
        .data
        .iter()
        .map(|n| T::from_number(n).ok_or_else(|| format!("{n} is not a {dtype}")))
        .collect::<Result<Vec<T>, String>>()?;
    let len = values.len();
    Array::from_shape_vec(IxDyn(&data.shape), values)
        .map_err(|_| format!("{len} values do not fill shape {:?}", data.shape))
}

#[cfg(test)]
mod tests;
