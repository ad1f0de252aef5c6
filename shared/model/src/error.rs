//! The crate's one error type.

use std::path::PathBuf;

/// How to get the ONNX Runtime library, for the messages that need it.
pub const INSTALL_HINT: &str = "run scripts/install-ort.sh and set ORT_DYLIB_PATH to the path it prints, or set the library path (services: model.library; meshwatch model check: --ort-library)";

/// Everything that can go wrong loading or running a model artifact.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Neither the caller nor `ORT_DYLIB_PATH` names the ONNX Runtime library.
    #[error("no onnx runtime library configured: {INSTALL_HINT}")]
    LibraryNotConfigured,
    /// The configured library file does not exist.
    #[error("onnx runtime library {} (from {origin}) does not exist: {INSTALL_HINT}", path.display())]
    LibraryMissing {
        path: PathBuf,
        /// Where the path came from: `ORT_DYLIB_PATH` or the configuration.
        origin: &'static str,
    },
    /// The library exists but could not be loaded (not a library, wrong version, ...).
    #[error("cannot load onnx runtime library {}: {message}", path.display())]
    LibraryLoad { path: PathBuf, message: String },
    /// ONNX Runtime is loaded once per process; a later load named another library.
    #[error(
        "onnx runtime is already loaded from {} in this process; cannot load {} as well",
        loaded.display(),
        requested.display()
    )]
    LibraryConflict { loaded: PathBuf, requested: PathBuf },
    /// A file of the artifact could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the artifact does not parse or lacks fields.
    #[error("invalid json in {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The manifest does not match the feature schema or the model contract (all problems).
    #[error("model manifest {} does not match this build: {}", path.display(), problems.join("; "))]
    SchemaMismatch {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// The model file is not the one the manifest describes.
    #[error("sha256 of {} is {actual}, the manifest says {expected}", path.display())]
    Sha256Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The requested variant is not in the manifest.
    #[error("model {model} has no variant {variant:?} (variants: {available:?})")]
    UnknownVariant {
        model: String,
        variant: String,
        available: Vec<String>,
    },
    /// The variant was measured but not shipped: it has no file.
    #[error(
        "variant {variant:?} of model {model} was not shipped (the manifest lists no file for it)"
    )]
    VariantNotShipped { model: String, variant: String },
    /// The ONNX session's inputs or outputs differ from the manifest's.
    #[error("{} does not match its manifest: {}", path.display(), problems.join("; "))]
    SessionMismatch {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// The requested execution provider could not be registered (and no fallback was allowed).
    #[error("execution provider {provider} is unavailable: {message}")]
    ExecutionProviderUnavailable {
        provider: &'static str,
        message: String,
    },
    /// No session of the pool became free within the bounded wait of [`crate::Model::run_within`].
    #[error("all sessions of model {model} busy for {waited_ms} ms")]
    Busy {
        /// The model's name (from its manifest).
        model: String,
        /// How long the run waited for a session, ms.
        waited_ms: u64,
    },
    /// An ONNX Runtime call failed.
    #[error("onnx runtime: {context}: {message}")]
    Ort {
        context: &'static str,
        message: String,
    },
    /// Model inputs (or the outputs ONNX Runtime returned) do not have the contract's shapes.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The parity file is malformed or does not fit the model.
    #[error("invalid parity file {}: {message}", path.display())]
    ParityFile { path: PathBuf, message: String },
    /// Outputs differ from the parity vectors beyond tolerance.
    #[error("parity mismatch in {}: {} element(s) beyond tolerance; {}", path.display(), failed, details.join("; "))]
    ParityMismatch {
        path: PathBuf,
        /// Number of output elements beyond tolerance, over all cases.
        failed: usize,
        /// One line per failing case and output (the worst element).
        details: Vec<String>,
    },
}

impl ModelError {
    /// Whether the same call can succeed later without a change: only [`ModelError::Busy`]
    /// (the pool was saturated, nothing is wrong with the model or the inputs).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn ort<R>(context: &'static str, error: ort::Error<R>) -> Self {
        Self::Ort {
            context,
            message: error.to_string(),
        }
    }
}

/// Model inputs or outputs that do not fit the contract (ARCHITECTURE.md §5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// An input has the wrong rank or a dimension that disagrees with the others.
    #[error("input {input}: shape {actual:?}, expected {expected}")]
    Input {
        input: &'static str,
        actual: Vec<usize>,
        /// The expected shape with the resolved T, N, E (e.g. `[T=12, N=7, 29]`).
        expected: String,
    },
    /// T or N is 0.
    #[error("empty input: {axis} = 0 (the model needs at least one window and one node)")]
    Empty { axis: &'static str },
    /// The forecaster needs `window_start`.
    #[error("input {input} is required by the {kind} model")]
    MissingInput {
        input: &'static str,
        kind: &'static str,
    },
    /// The detector takes no `window_start`.
    #[error("input {input} is not an input of the {kind} model")]
    UnexpectedInput {
        input: &'static str,
        kind: &'static str,
    },
    /// An edge endpoint is no node.
    #[error("edge_index[{row}, {edge}] = {value} is outside [0, {nodes})")]
    EdgeIndex {
        row: usize,
        edge: usize,
        value: i64,
        nodes: usize,
    },
    /// ONNX Runtime returned an output of an unexpected shape or type.
    #[error("output {output}: {message}")]
    Output {
        output: &'static str,
        message: String,
    },
}
