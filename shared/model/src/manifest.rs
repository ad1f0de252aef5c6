//! `manifest.json` of a model artifact, and its check against this build's feature schema and
//! the ONNX model contract v1 (ARCHITECTURE.md §5, `docs/model-artifacts.md`).
//!
//! The Python export writes the manifest; this module only reads it. Unknown top-level fields
//! (training data, eval metrics, code revision, ...) are ignored, so the export can add
//! information without a Rust change; what the contract needs is checked field by field, and
//! every problem is reported at once.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

mod contract;

pub use contract::{
    ANOMALY_SCORE, EDGE_FEATURES, EDGE_INDEX, EDGE_WEIGHT, FEATURE_CONTRIBUTION, FORECAST,
    FORECAST_INTERVAL, FORMAT, FORMAT_VERSION, NODE_FEATURES, NODE_MASK, WINDOW_START,
    expected_inputs, expected_outputs,
};

/// File name of the manifest in an artifact directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What a model computes; decides its inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Anomaly score and feature contributions per node for the last window.
    Detector,
    /// H-step forecasts of the targets per node, with intervals.
    Forecaster,
}

impl ModelKind {
    /// Lowercase name, as in the manifest.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Detector => "detector",
            Self::Forecaster => "forecaster",
        }
    }

    /// The kind named `name` in a manifest.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "detector" => Some(Self::Detector),
            "forecaster" => Some(Self::Forecaster),
            _ => None,
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Element type of a tensor. Any other name in a manifest parses as [`DType::Other`], so that
/// the check can report it with the other problems.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DType {
    /// `float32`
    F32,
    /// `int64`
    I64,
    /// Not supported by the contract.
    Other(String),
}

impl DType {
    /// The name in manifests and parity files.
    pub fn as_str(&self) -> &str {
        match self {
            Self::F32 => "float32",
            Self::I64 => "int64",
            Self::Other(name) => name,
        }
    }
}

impl From<String> for DType {
    fn from(name: String) -> Self {
        match name.as_str() {
            "float32" => Self::F32,
            "int64" => Self::I64,
            _ => Self::Other(name),
        }
    }
}

impl From<DType> for String {
    fn from(dtype: DType) -> Self {
        dtype.as_str().to_owned()
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One dimension of a tensor: fixed, or a named dynamic axis (`T`, `N`, `E`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(usize),
    Dynamic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Dynamic(name) => f.write_str(name),
        }
    }
}

/// A shape as `[T, N, 29]`.
pub fn shape_string(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(Dim::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Name, element type and shape of a model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

/// The parity vectors of a model file and their tolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParitySpec {
    /// File name, relative to the artifact directory.
    pub file: String,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (of the expected value).
    pub rtol: f64,
}

/// Another model file of the same artifact (e.g. an int8 quantisation). The export measures
/// every candidate and keeps only those that meet its rule: a variant that was not shipped has
/// no file (and no parity vectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    /// File name, relative to the artifact directory; `None` when the variant was not shipped.
    #[serde(default)]
    pub file: Option<String>,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// Whether the export kept the variant.
    #[serde(default)]
    pub shipped: bool,
    /// Parity vectors of this variant; without them, [`crate::parity::replay`] uses the
    /// artifact's.
    #[serde(default)]
    pub parity: Option<ParitySpec>,
}

/// The feature schema a build encodes: what a manifest must name, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSchema {
    pub version: u32,
    pub node_features: Vec<String>,
    pub edge_features: Vec<String>,
    pub targets: Vec<String>,
}

impl FeatureSchema {
    /// The schema of `meshwatch_graph::features` in this build.
    pub fn current() -> Self {
        use meshwatch_graph::features::{
            EDGE_FEATURE_NAMES, FEATURE_SCHEMA_VERSION, NODE_FEATURE_NAMES, TARGET_NAMES,
        };
        let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Self {
            version: FEATURE_SCHEMA_VERSION,
            node_features: owned(&NODE_FEATURE_NAMES),
            edge_features: owned(&EDGE_FEATURE_NAMES),
            targets: owned(&TARGET_NAMES),
        }
    }
}

/// `manifest.json` of a model artifact (unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `"meshwatch.model"`.
    pub format: String,
    /// Layout version of this document (1).
    pub format_version: u32,
    pub name: String,
    /// The model's version as outputs name it; `None` (or empty): derived from the sha256 of
    /// the model file (see [`crate::Model::version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `"detector"` or `"forecaster"` (see [`Manifest::model_kind`]).
    pub kind: String,
    /// ONNX opset of the export.
    pub opset: u32,
    pub feature_schema_version: u32,
    pub node_features: Vec<String>,
    pub edge_features: Vec<String>,
    pub targets: Vec<String>,
    /// T: the number of windows the model was trained with (services feed T windows).
    pub steps: usize,
    /// H: forecast steps (forecaster only).
    #[serde(default)]
    pub horizon: Option<usize>,
    /// Window length of the training data, ms.
    pub window_ms: u64,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Hex sha256 of `model.onnx`.
    pub sha256: String,
    pub parity: ParitySpec,
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// The file this manifest was read from (not serialised).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The main model file of an artifact.
pub const MODEL_FILE: &str = "model.onnx";

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses a manifest; `path` is where it came from, for messages.
    pub fn from_json(text: &str, path: impl Into<PathBuf>) -> Result<Self, ModelError> {
        let path = path.into();
        let mut manifest: Self = serde_json::from_str(text).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        manifest.path = path;
        Ok(manifest)
    }

    /// The kind named by the manifest.
    pub fn model_kind(&self) -> Result<ModelKind, ModelError> {
        ModelKind::parse(&self.kind).ok_or_else(|| ModelError::SchemaMismatch {
            path: self.path.clone(),
            problems: vec![format!(
                "kind is {:?}, expected \"detector\" or \"forecaster\"",
                self.kind
            )],
        })
    }

    /// The variant called `name`.
    pub fn variant(&self, name: &str) -> Result<&Variant, ModelError> {
        self.variants
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| ModelError::UnknownVariant {
                model: self.name.clone(),
                variant: name.to_owned(),
                available: self.variants.iter().map(|v| v.name.clone()).collect(),
            })
    }

    /// Refuses a manifest that is not a v1 `kind` model of `schema`: format and version, kind,
    /// feature schema version and names, T and H, every input and output (names, dtypes,
    /// shapes with F, Fe, M and H resolved), hashes and file names. All problems at once.
    pub fn check(&self, kind: ModelKind, schema: &FeatureSchema) -> Result<(), ModelError> {
        let problems = self.problems(kind, schema);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::SchemaMismatch {
                path: self.path.clone(),
                problems,
            })
        }
    }

    /// What [`Manifest::check`] reports, as a list (empty when the manifest fits).
    pub fn problems(&self, kind: ModelKind, schema: &FeatureSchema) -> Vec<String> {
        let mut problems = Vec::new();
        if self.format != FORMAT {
            problems.push(format!("format is {:?}, expected {FORMAT:?}", self.format));
        }
        if self.format_version != FORMAT_VERSION {
            problems.push(format!(
                "format_version is {}, expected {FORMAT_VERSION}",
                self.format_version
            ));
        }
        if self.kind != kind.as_str() {
            problems.push(format!(
                "kind is {:?}, expected {:?}",
                self.kind,
                kind.as_str()
            ));
        }
        if self.feature_schema_version != schema.version {
            problems.push(format!(
                "feature_schema_version is {}, this build encodes version {}",
                self.feature_schema_version, schema.version
            ));
        }
        compare_names(
            "node_features",
            &self.node_features,
            &schema.node_features,
            &mut problems,
        );
        compare_names(
            "edge_features",
            &self.edge_features,
            &schema.edge_features,
            &mut problems,
        );
        compare_names("targets", &self.targets, &schema.targets, &mut problems);
        if self.steps == 0 {
            problems.push("steps is 0, expected at least 1".to_owned());
        }
        if self.window_ms == 0 {
            problems.push("window_ms is 0".to_owned());
        }
        match (kind, self.horizon) {
            (ModelKind::Detector, Some(h)) => {
                problems.push(format!("horizon is {h}, a detector has none"));
            }
            (ModelKind::Forecaster, None | Some(0)) => {
                problems.push("horizon is missing or 0, a forecaster needs H >= 1".to_owned());
            }
            _ => {}
        }
        compare_specs(
            "input",
            &self.inputs,
            &expected_inputs(kind, schema),
            &mut problems,
        );
        compare_specs(
            "output",
            &self.outputs,
            &expected_outputs(kind, schema, self.horizon),
            &mut problems,
        );
        check_sha256("sha256", &self.sha256, &mut problems);
        check_file("parity.file", &self.parity.file, &mut problems);
        check_tolerance("parity", &self.parity, &mut problems);
        for (i, variant) in self.variants.iter().enumerate() {
            let at = format!("variants[{i}] ({:?})", variant.name);
            if self.variants[..i].iter().any(|v| v.name == variant.name) {
                problems.push(format!("{at}: name listed twice"));
            }
            match &variant.file {
                Some(file) => {
                    check_file(&format!("{at}.file"), file, &mut problems);
                    check_sha256(&format!("{at}.sha256"), &variant.sha256, &mut problems);
                }
                None if variant.shipped => {
                    problems.push(format!("{at}: shipped without a file"));
                }
                None => {}
            }
            if let Some(parity) = &variant.parity {
                check_file(&format!("{at}.parity.file"), &parity.file, &mut problems);
                check_tolerance(&format!("{at}.parity"), parity, &mut problems);
            }
        }
        problems
    }
}

/// `dir/file` for a file name from a manifest: relative, inside the artifact directory.
pub fn artifact_file(dir: &Path, file: &str) -> Result<PathBuf, String> {
    let relative = Path::new(file);
    if file.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "file name {file:?} must be a relative path inside the artifact directory"
        ));
    }
    Ok(dir.join(relative))
}

fn check_file(field: &str, file: &str, problems: &mut Vec<String>) {
    if let Err(message) = artifact_file(Path::new("."), file) {
        problems.push(format!("{field}: {message}"));
    }
}

fn check_sha256(field: &str, hex: &str, problems: &mut Vec<String>) {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        problems.push(format!("{field} is {hex:?}, expected 64 hex digits"));
    }
}

fn check_tolerance(field: &str, parity: &ParitySpec, problems: &mut Vec<String>) {
    for (name, value) in [("atol", parity.atol), ("rtol", parity.rtol)] {
        if !(value.is_finite() && value >= 0.0) {
            problems.push(format!(
                "{field}.{name} is {value}, expected a finite number >= 0"
            ));
        }
    }
}

fn compare_names(field: &str, got: &[String], want: &[String], problems: &mut Vec<String>) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let at = |names: &[String]| {
        names
            .get(first)
            .map_or_else(|| "(end)".to_owned(), |n| format!("{n:?}"))
    };
    problems.push(format!(
        "{field} differ from the feature schema: {} names, expected {}; first difference at index {first}: {}, expected {}",
        got.len(),
        want.len(),
        at(got),
        at(want)
    ));
}

fn compare_specs(what: &str, got: &[TensorSpec], want: &[TensorSpec], problems: &mut Vec<String>) {
    for (i, spec) in got.iter().enumerate() {
        if got[..i].iter().any(|s| s.name == spec.name) {
            problems.push(format!("{what} {:?} listed twice", spec.name));
        }
        if !want.iter().any(|w| w.name == spec.name) {
            problems.push(format!("unexpected {what} {:?}", spec.name));
        }
    }
    for expected in want {
        let Some(spec) = got.iter().find(|s| s.name == expected.name) else {
            problems.push(format!("missing {what} {:?}", expected.name));
            continue;
        };
        if spec.dtype != expected.dtype {
            problems.push(format!(
                "{what} {:?}: dtype {}, expected {}",
                spec.name, spec.dtype, expected.dtype
            ));
        }
        if spec.shape != expected.shape {
            problems.push(format!(
                "{what} {:?}: shape {}, expected {}",
                spec.name,
                shape_string(&spec.shape),
                shape_string(&expected.shape)
            ));
        }
    }
}

#[cfg(test)]
mod tests;
