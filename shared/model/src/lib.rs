//! Meshwatch model artifacts (ARCHITECTURE.md §5, `docs/model-artifacts.md`): the manifest and
//! its check against this build's feature schema, ONNX Runtime sessions through `ort`, and the
//! replay of the artifact's parity vectors.
//!
//! - [`manifest`]: `manifest.json` ([`Manifest`]), the contract v1 as tensor specs, and
//!   [`Manifest::check`], which lists every way an artifact does not fit ([`FeatureSchema`]).
//! - [`runtime`]: the ONNX Runtime library, loaded once per process from a configured path or
//!   `ORT_DYLIB_PATH` (`scripts/install-ort.sh` installs it).
//! - [`model`]: [`Model::load`] (manifest check, sha256, sessions, graph check) and
//!   [`Model::run`] on [`ModelInputs`], validated before ONNX Runtime sees them.
//! - [`parity`]: [`parity::replay`] runs every parity case and compares every output element
//!   with `|got - want| <= atol + rtol * |want|`.
//!
//! ```no_run
//! use std::path::Path;
//!
//! use meshwatch_model::{LoadOptions, Model, ModelKind};
//!
//! # fn main() -> Result<(), meshwatch_model::ModelError> {
//! let options = LoadOptions {
//!     kind: Some(ModelKind::Detector),
//!     ..LoadOptions::default()
//! };
//! let model = Model::load(Path::new("models/detector"), &options)?;
//! let report = meshwatch_model::parity::run_cases(&model, Path::new("models/detector"))?;
//! report.check()?;
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod io;
pub mod manifest;
pub mod model;
pub mod parity;
pub mod runtime;

pub use error::{ModelError, ShapeError};
pub use io::{InputDims, ModelInputs, ModelOutputs};
pub use manifest::{
    DType, Dim, FeatureSchema, Manifest, ModelKind, ParitySpec, TensorSpec, Variant,
};
pub use model::{ExecutionProvider, LoadOptions, Model};
pub use parity::ParityReport;
