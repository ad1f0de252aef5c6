//! A loaded model: manifest checked, file verified, ONNX Runtime sessions ready. Load once, run
//! many times, from several threads: each run takes a session of the pool ([`Model::run`] waits
//! for one without bound, [`Model::run_within`] gives up after a bounded wait).

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::{Array, ArrayViewD, Dimension};
use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::TensorRef;
use sha2::{Digest, Sha256};

use crate::error::{ModelError, ShapeError};
use crate::io::{InputDims, ModelInputs, ModelOutputs};
use crate::manifest::{
    ANOMALY_SCORE, EDGE_FEATURES, EDGE_INDEX, EDGE_WEIGHT, FEATURE_CONTRIBUTION, FORECAST,
    FORECAST_INTERVAL, FeatureSchema, MODEL_FILE, Manifest, ModelKind, NODE_FEATURES, NODE_MASK,
    WINDOW_START, artifact_file,
};
use crate::runtime;

mod graph;
mod pool;
mod provider;

use graph::verify_session;
use pool::{Checkout, Pool};
use provider::register_provider;

/// Where ONNX Runtime runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// An NVIDIA GPU (needs the `cuda` cargo feature and a CUDA build of ONNX Runtime).
    Cuda {
        /// The CUDA device ordinal.
        device_id: i32,
        /// Upper bound of the device memory arena, bytes; `None`: ONNX Runtime's default (no
        /// limit).
        memory_limit_bytes: Option<u64>,
    },
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
    /// (logged at warn) instead of failing with [`ModelError::ExecutionProviderUnavailable`].
    pub fallback_to_cpu: bool,
    /// Threads per session within an operator; 0: ONNX Runtime's default (all cores). 1 was
    /// fastest for small graphs on 2 cores.
    pub intra_threads: usize,
    /// Sessions in the pool: concurrent runs (they share prepacked weights). At least 1.
    pub sessions: usize,
    /// Load this variant's file instead of `model.onnx`.
    pub variant: Option<String>,
    /// Diagnosis: ONNX Runtime's per-node profile (a Chrome trace, JSON, naming each node's
    /// execution provider) is written to `<prefix>_<session>_<time>.json` when a session is
    /// dropped. Costs time per run; not for serving.
    pub profile: Option<PathBuf>,
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
            profile: None,
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
    /// Hex sha256 of `file`, as computed at load.
    sha256: String,
    /// See [`Model::version`].
    version: String,
    execution_provider: ExecutionProvider,
    node_features: usize,
    edge_features: usize,
    pool: Pool,
}

/// A session of a model's pool held by a test; back in the pool when dropped. See
/// [`Model::hold_session`].
#[doc(hidden)]
#[derive(Debug)]
pub struct HeldSession<'a> {
    _checkout: Checkout<'a>,
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
        let sha256 = verify_sha256(&file, sha256)?;
        let version = match manifest.version.as_deref() {
            Some(version) if !version.is_empty() => version.to_owned(),
            _ => format!("sha256:{}", sha256.get(..12).unwrap_or(&sha256)),
        };
        let environment = runtime::environment(options.library.as_deref())?;

        let count = options.sessions.max(1);
        let prepacked = (count > 1).then(ort::session::builder::PrepackedWeights::new);
        let mut sessions = Vec::with_capacity(count);
        // after a fallback the remaining sessions go straight to the cpu (one warning)
        let mut provider = options.execution_provider;
        for index in 0..count {
            let mut builder = Session::builder(&environment)
                .map_err(|e| ModelError::ort("creating session options", e))?;
            if let Some(prefix) = &options.profile {
                let mut file = prefix.clone().into_os_string();
                file.push(format!("_{index}"));
                builder = builder
                    .with_profiling(file)
                    .map_err(|e| ModelError::ort("enabling profiling", e))?;
            }
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
                register_provider(builder, provider, options.fallback_to_cpu)?;
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
            %version,
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
            sha256,
            version,
            execution_provider: provider,
            pool: Pool::new(sessions),
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

    /// The version that outputs name: the manifest's `version` when set and not empty, else
    /// `sha256:` and the first 12 hex digits of the loaded file's sha256.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Hex sha256 (lowercase) of the loaded file (the variant's file for a variant).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Sessions in the pool: the runs that can go at once.
    pub fn sessions(&self) -> usize {
        self.pool.size()
    }

    /// Sessions not running right now.
    pub fn free_sessions(&self) -> usize {
        self.pool.free()
    }

    /// Checks `inputs` against this model: kind, node and edge feature counts, shapes (see
    /// [`ModelInputs::validate`]).
    pub fn validate(&self, inputs: &ModelInputs) -> Result<InputDims, ShapeError> {
        inputs.validate(self.kind, self.node_features, self.edge_features)
    }

    /// Checks `inputs` (see [`ModelInputs::validate`]) and runs the model, waiting for a free
    /// session as long as it takes.
    pub fn run(&self, inputs: &ModelInputs) -> Result<ModelOutputs, ModelError> {
        self.run_waiting(inputs, None)
    }

    /// [`Model::run`], but waits at most `wait` for a free session:
    /// [`ModelError::Busy`] when all of them stay busy that long. Inputs are checked before
    /// the wait.
    pub fn run_within(
        &self,
        inputs: &ModelInputs,
        wait: Duration,
    ) -> Result<ModelOutputs, ModelError> {
        self.run_waiting(inputs, Some(wait))
    }

    /// Takes a free session out of the pool until the returned guard is dropped; `None` when
    /// none is free. A test hook: it makes the pool busy without timing games.
    #[doc(hidden)]
    pub fn hold_session(&self) -> Option<HeldSession<'_>> {
        self.pool
            .take(Some(Duration::ZERO))
            .map(|checkout| HeldSession {
                _checkout: checkout,
            })
    }

    fn run_waiting(
        &self,
        inputs: &ModelInputs,
        wait: Option<Duration>,
    ) -> Result<ModelOutputs, ModelError> {
        let dims = self.validate(inputs)?;
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

        let started = Instant::now();
        // A panic during a run returns the session to the pool: ONNX Runtime keeps no state
        // between runs that a half-finished Rust caller could corrupt.
        let Some(mut session) = self.pool.take(wait) else {
            return Err(ModelError::Busy {
                model: self.manifest.name.clone(),
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        };
        let outputs = session
            .run(values)
            .map_err(|e| ModelError::ort("running the model", e))?;
        self.collect(&outputs, dims)
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

/// Refuses `file` unless its sha256 is `expected` (hex, any case); returns the sha256 (hex,
/// lowercase).
pub fn verify_sha256(file: &Path, expected: &str) -> Result<String, ModelError> {
    let actual = sha256_file(file)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(actual)
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
