//! A loaded model: manifest checked, file verified, ONNX Runtime sessions ready. Load once, run
//! many times, from several threads.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ndarray::{Array, ArrayViewD, Dimension};
use ort::session::builder::SessionBuilder;
use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::{TensorElementType, TensorRef, ValueType};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, ShapeError};
use crate::io::{InputDims, ModelInputs, ModelOutputs};
use crate::manifest::{
    ANOMALY_SCORE, DType, Dim, EDGE_FEATURES, EDGE_INDEX, EDGE_WEIGHT, FEATURE_CONTRIBUTION,
    FORECAST, FORECAST_INTERVAL, FeatureSchema, MODEL_FILE, Manifest, ModelKind, NODE_FEATURES,
    NODE_MASK, TensorSpec, WINDOW_START, artifact_file,
};
use crate::runtime;

/// Where ONNX Runtime runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// An NVIDIA GPU (needs the `cuda` cargo feature and a CUDA build of ONNX Runtime).
    Cuda { device_id: i32 },
}

impl ExecutionProvider {
    /// Short name for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda { .. } => "cuda",
        }
    }
}

/// How [`Model::load`] loads an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The ONNX Runtime library; `None`: `ORT_DYLIB_PATH` (see [`runtime::resolve_library`]).
    pub library: Option<PathBuf>,
    /// The kind the caller serves; `None` takes the manifest's.
    pub kind: Option<ModelKind>,
    /// Where to run.
    pub execution_provider: ExecutionProvider,
    /// With an execution provider other than the CPU that cannot be registered: run on the CPU
    /// (logged) instead of failing.
    pub fallback_to_cpu: bool,
    /// Threads per session within an operator; 0: ONNX Runtime's default (all cores). 1 was
    /// fastest for small graphs on 2 cores.
    pub intra_threads: usize,
    /// Sessions in the pool: concurrent runs (they share prepacked weights). At least 1.
    pub sessions: usize,
    /// Load this variant's file instead of `model.onnx`.
    pub variant: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            library: None,
            kind: None,
            execution_provider: ExecutionProvider::Cpu,
            fallback_to_cpu: false,
            intra_threads: 1,
            sessions: 1,
            variant: None,
        }
    }
}

/// A model artifact ready to run. `Send + Sync`: share it (in an `Arc`) between threads; each
/// [`Model::run`] takes a free session of the pool, or waits for one. A run is CPU work: call
/// it off the async reactor (`spawn_blocking`).
#[derive(Debug)]
pub struct Model {
    manifest: Manifest,
    kind: ModelKind,
    file: PathBuf,
    variant: Option<String>,
    execution_provider: ExecutionProvider,
    node_features: usize,
    edge_features: usize,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

impl Model {
    /// Loads the artifact in `dir`: reads the manifest and checks it against this build's
    /// feature schema and the contract, verifies the sha256 of the model file (or of the
    /// variant's), loads ONNX Runtime if needed, builds the sessions and checks that the ONNX
    /// graph's inputs and outputs are the manifest's.
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Self, ModelError> {
        let manifest = Manifest::load(dir)?;
        let kind = match options.kind {
            Some(kind) => kind,
            None => manifest.model_kind()?,
        };
        let schema = FeatureSchema::current();
        manifest.check(kind, &schema)?;
        let (file, sha256) = match &options.variant {
            None => (dir.join(MODEL_FILE), manifest.sha256.as_str()),
            Some(name) => {
                let variant = manifest.variant(name)?;
                let Some(file) = &variant.file else {
                    return Err(ModelError::VariantNotShipped {
                        model: manifest.name.clone(),
                        variant: name.clone(),
                    });
                };
                let file =
                    artifact_file(dir, file).map_err(|problem| ModelError::SchemaMismatch {
                        path: manifest.path.clone(),
                        problems: vec![problem],
                    })?;
                (file, variant.sha256.as_str())
            }
        };
        verify_sha256(&file, sha256)?;
        let environment = runtime::environment(options.library.as_deref())?;

        let count = options.sessions.max(1);
        let prepacked = (count > 1).then(ort::session::builder::PrepackedWeights::new);
        let mut sessions = Vec::with_capacity(count);
        let mut provider = options.execution_provider;
        for _ in 0..count {
            let mut builder = Session::builder(&environment)
                .map_err(|e| ModelError::ort("creating session options", e))?;
            if options.intra_threads > 0 {
                builder = builder
                    .with_intra_threads(options.intra_threads)
                    .map_err(|e| ModelError::ort("setting intra-op threads", e))?;
            }
            if let Some(weights) = &prepacked {
                builder = builder
                    .with_prepacked_weights(weights)
                    .map_err(|e| ModelError::ort("sharing prepacked weights", e))?;
            }
            let (mut builder, used) =
                register_provider(builder, options.execution_provider, options.fallback_to_cpu)?;
            provider = used;
            let session = builder
                .commit_from_file(&file)
                .map_err(|e| ModelError::ort("loading the model", e))?;
            sessions.push(session);
        }
        if let Some(session) = sessions.first() {
            verify_session(&file, session, &manifest)?;
        }
        tracing::info!(
            model = %manifest.name,
            kind = %kind,
            file = %file.display(),
            execution_provider = provider.name(),
            sessions = count,
            "model loaded"
        );
        Ok(Self {
            node_features: schema.node_features.len(),
            edge_features: schema.edge_features.len(),
            manifest,
            kind,
            file,
            variant: options.variant.clone(),
            execution_provider: provider,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// The artifact's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the model computes.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The ONNX file the sessions run.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The variant loaded, if not the main model file.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// The execution provider the sessions really use (the CPU after a fallback).
    pub fn execution_provider(&self) -> ExecutionProvider {
        self.execution_provider
    }

    /// Checks `inputs` (see [`ModelInputs::validate`]) and runs the model.
    pub fn run(&self, inputs: &ModelInputs) -> Result<ModelOutputs, ModelError> {
        let dims = inputs.validate(self.kind, self.node_features, self.edge_features)?;
        let node_features = inputs.node_features.as_standard_layout();
        let node_mask = inputs.node_mask.as_standard_layout();
        let edge_index = inputs.edge_index.as_standard_layout();
        let edge_weight = inputs.edge_weight.as_standard_layout();
        let edge_features = inputs.edge_features.as_standard_layout();
        let window_start = inputs.window_start.as_ref().map(|a| a.as_standard_layout());

        let tensor = |e| ModelError::ort("creating an input tensor", e);
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (
                NODE_FEATURES.into(),
                TensorRef::from_array_view(node_features.view())
                    .map_err(tensor)?
                    .into(),
            ),
            (
                NODE_MASK.into(),
                TensorRef::from_array_view(node_mask.view())
                    .map_err(tensor)?
                    .into(),
            ),
            (
                EDGE_INDEX.into(),
                TensorRef::from_array_view(edge_index.view())
                    .map_err(tensor)?
                    .into(),
            ),
            (
                EDGE_WEIGHT.into(),
                TensorRef::from_array_view(edge_weight.view())
                    .map_err(tensor)?
                    .into(),
            ),
            (
                EDGE_FEATURES.into(),
                TensorRef::from_array_view(edge_features.view())
                    .map_err(tensor)?
                    .into(),
            ),
        ];
        if let Some(window_start) = &window_start {
            values.push((
                WINDOW_START.into(),
                TensorRef::from_array_view(window_start.view())
                    .map_err(tensor)?
                    .into(),
            ));
        }

        let mut session = self.session();
        let outputs = session
            .run(values)
            .map_err(|e| ModelError::ort("running the model", e))?;
        self.collect(&outputs, dims)
    }

    /// A free session, or the next one in turn when all are busy.
    fn session(&self) -> MutexGuard<'_, Session> {
        for session in &self.sessions {
            if let Ok(guard) = session.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        // A panic during a run leaves the session usable: ONNX Runtime keeps no state between
        // runs that a half-finished Rust caller could corrupt.
        self.sessions[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn collect(
        &self,
        outputs: &SessionOutputs<'_>,
        dims: InputDims,
    ) -> Result<ModelOutputs, ModelError> {
        let n = dims.nodes;
        let f = self.node_features;
        match self.kind {
            ModelKind::Detector => Ok(ModelOutputs::Detector {
                anomaly_score: output(outputs, ANOMALY_SCORE, &[n])?,
                feature_contribution: output(outputs, FEATURE_CONTRIBUTION, &[n, f])?,
            }),
            ModelKind::Forecaster => {
                let h = self.manifest.horizon.unwrap_or(0);
                let m = self.manifest.targets.len();
                Ok(ModelOutputs::Forecaster {
                    forecast: output(outputs, FORECAST, &[h, n, m])?,
                    interval: output(outputs, FORECAST_INTERVAL, &[h, n, m, 2])?,
                })
            }
        }
    }
}

/// Output `name` as an owned array of rank `D`, with the `want` shape.
fn output<D: Dimension>(
    outputs: &SessionOutputs<'_>,
    name: &'static str,
    want: &[usize],
) -> Result<Array<f32, D>, ModelError> {
    let shape_error = |message: String| {
        ModelError::Shape(ShapeError::Output {
            output: name,
            message,
        })
    };
    let value = outputs
        .get(name)
        .ok_or_else(|| shape_error("missing from the run's outputs".to_owned()))?;
    let view: ArrayViewD<'_, f32> = value
        .try_extract_array::<f32>()
        .map_err(|e| shape_error(e.to_string()))?;
    if view.shape() != want {
        return Err(shape_error(format!(
            "shape {:?}, expected {want:?}",
            view.shape()
        )));
    }
    view.to_owned()
        .into_dimensionality::<D>()
        .map_err(|e| shape_error(e.to_string()))
}

fn register_provider(
    builder: SessionBuilder,
    requested: ExecutionProvider,
    fallback_to_cpu: bool,
) -> Result<(SessionBuilder, ExecutionProvider), ModelError> {
    match requested {
        ExecutionProvider::Cpu => Ok((builder, ExecutionProvider::Cpu)),
        ExecutionProvider::Cuda { device_id } => match register_cuda(builder, device_id) {
            (builder, None) => Ok((builder, requested)),
            (builder, Some(message)) if fallback_to_cpu => {
                tracing::warn!(%message, "cuda execution provider unavailable; running on the cpu");
                Ok((builder, ExecutionProvider::Cpu))
            }
            (_, Some(message)) => Err(ModelError::ExecutionProviderUnavailable {
                provider: "cuda",
                message,
            }),
        },
    }
}

/// Registers the CUDA execution provider; on failure the builder comes back unchanged with
/// the reason.
#[cfg(feature = "cuda")]
fn register_cuda(builder: SessionBuilder, device_id: i32) -> (SessionBuilder, Option<String>) {
    let cuda = ort::ep::CUDA::default()
        .with_device_id(device_id)
        .build()
        .error_on_failure();
    match builder.with_execution_providers([cuda]) {
        Ok(builder) => (builder, None),
        Err(error) => {
            let message = error.to_string();
            (error.recover(), Some(message))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(builder: SessionBuilder, _device_id: i32) -> (SessionBuilder, Option<String>) {
    (
        builder,
        Some("this build of meshwatch-model has no `cuda` feature".to_owned()),
    )
}

/// Refuses `file` unless its sha256 is `expected` (hex, any case).
pub fn verify_sha256(file: &Path, expected: &str) -> Result<(), ModelError> {
    let actual = sha256_file(file)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ModelError::Sha256Mismatch {
            path: file.to_path_buf(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(file: &Path) -> Result<String, ModelError> {
    let mut reader = std::fs::File::open(file).map_err(|e| ModelError::io(file, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 16];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|e| ModelError::io(file, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Compares the session's inputs and outputs with the manifest's specs: the same names, element
/// types and ranks; a dimension the manifest fixes must be that size or dynamic in the graph,
/// and a dimension the manifest declares dynamic must be dynamic in the graph.
fn verify_session(file: &Path, session: &Session, manifest: &Manifest) -> Result<(), ModelError> {
    let mut problems = Vec::new();
    for (what, outlets, specs) in [
        ("input", session.inputs(), &manifest.inputs),
        ("output", session.outputs(), &manifest.outputs),
    ] {
        for outlet in outlets {
            if !specs.iter().any(|s| s.name == outlet.name()) {
                problems.push(format!(
                    "the graph has {what} {:?}, the manifest does not",
                    outlet.name()
                ));
            }
        }
        for spec in specs {
            match outlets.iter().find(|o| o.name() == spec.name) {
                None => problems.push(format!("the graph has no {what} {:?}", spec.name)),
                Some(outlet) => compare_outlet(what, spec, outlet.dtype(), &mut problems),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ModelError::SessionMismatch {
            path: file.to_path_buf(),
            problems,
        })
    }
}

fn compare_outlet(what: &str, spec: &TensorSpec, dtype: &ValueType, problems: &mut Vec<String>) {
    let ValueType::Tensor { ty, shape, .. } = dtype else {
        problems.push(format!(
            "{what} {:?} is not a tensor in the graph",
            spec.name
        ));
        return;
    };
    let want = match spec.dtype {
        DType::F32 => Some(TensorElementType::Float32),
        DType::I64 => Some(TensorElementType::Int64),
        DType::Other(_) => None,
    };
    if want != Some(*ty) {
        problems.push(format!(
            "{what} {:?}: element type {ty:?} in the graph, {} in the manifest",
            spec.name, spec.dtype
        ));
    }
    let dims: &[i64] = shape;
    let fits = dims.len() == spec.shape.len()
        && dims.iter().zip(&spec.shape).all(|(&graph, dim)| match dim {
            Dim::Fixed(size) => graph < 0 || usize::try_from(graph).is_ok_and(|g| g == *size),
            Dim::Dynamic(_) => graph < 0,
        });
    if !fits {
        problems.push(format!(
            "{what} {:?}: shape {dims:?} in the graph (-1: dynamic), {} in the manifest",
            spec.name,
            crate::manifest::shape_string(&spec.shape)
        ));
    }
}
