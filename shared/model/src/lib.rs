//! Meshwatch model artifacts (ARCHITECTURE.md §5, `docs/model-artifacts.md`): the manifest and
//! its check against this build's feature schema, ONNX Runtime sessions through `ort`, the
//! replay of the artifact's parity vectors, and serving: micro-batching and hot reload.
//!
//! - [`manifest`]: `manifest.json` ([`Manifest`]), the contract v1 as tensor specs, and
//!   [`Manifest::check`], which lists every way an artifact does not fit ([`FeatureSchema`]).
//! - [`runtime`]: the ONNX Runtime library, loaded once per process from a configured path or
//!   `ORT_DYLIB_PATH` (`scripts/install-ort.sh` installs it).
//! - [`model`]: [`Model::load`] (manifest check, sha256, execution provider with an explicit
//!   CPU fallback policy, session pool, graph check), [`Model::run`] and [`Model::run_within`]
//!   (bounded wait for a session: [`ModelError::Busy`]) on [`ModelInputs`], validated before
//!   ONNX Runtime sees them; [`Model::version`] names what computed the outputs.
//! - [`parity`]: [`parity::replay`] runs every parity case and compares every output element
//!   with `|got - want| <= atol + rtol * |want|`.
//! - [`batch`]: [`join`] graphs as one disjoint union and [`Joined::split`] the outputs back;
//!   [`batch_key`] says which requests may share a run. Pure.
//! - [`serving`]: [`Server`]: a bounded queue, a micro-batching worker running on blocking
//!   threads, warm-up, and [`Server::reload`] (checked, atomic swap; a bad model is rejected).
//! - [`metrics`]: the Prometheus metrics of served models (`meshwatch_model_*`).
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

pub mod batch;
pub mod error;
pub mod io;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod parity;
pub mod runtime;
pub mod serving;

pub use batch::{BatchError, BatchKey, Joined, batch_key, join};

pub use error::{ModelError, ShapeError};
pub use io::{InputDims, ModelInputs, ModelOutputs};
pub use manifest::{
    DType, Dim, FeatureSchema, Manifest, ModelKind, ParitySpec, TensorSpec, Variant,
};
pub use model::{ExecutionProvider, LoadOptions, Model};
pub use parity::ParityReport;
pub use serving::{Inferred, ModelInfo, ReloadOutcome, ServeError, Server, ServingOptions};
