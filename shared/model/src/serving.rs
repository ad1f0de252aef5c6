//! A served model: micro-batching of concurrent requests and hot reload (issue 5,
//! ARCHITECTURE.md §5).
//!
//! [`Server::start`] loads the artifact off the reactor, replays its parity vectors, runs it
//! once on a small synthetic graph (warm-up) and starts the batching worker. [`Server::infer`]
//! puts a request on a bounded queue (full: [`ServeError::QueueFull`] at once) and waits for its
//! reply. The worker takes the first request, collects more until
//! [`ServingOptions::max_batch_wait`] passes or [`ServingOptions::max_batch_nodes`] are
//! collected, drops those whose caller gave up, validates each one (a bad request fails
//! alone), joins those with equal [`crate::batch_key`]s as one disjoint union
//! ([`crate::batch`]), runs it on a blocking thread with a bounded wait for a session, and
//! splits the outputs back. Up to [`LoadOptions::sessions`] runs go at once.
//!
//! [`Server::reload`] re-reads the manifest; a new sha256 or version is loaded, checked (manifest,
//! sha256, parity vectors, warm-up) and swapped in atomically. Runs that started before the swap
//! finish on the old model; every reply names the version that computed it
//! ([`Inferred::model`]). A bad artifact is rejected and the old model keeps serving.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ModelError;
use crate::io::{ModelInputs, ModelOutputs};
use crate::manifest::{Manifest, ModelKind};
use crate::metrics::{Metrics, outcome};
use crate::model::{ExecutionProvider, LoadOptions, Model};

mod error;
mod load;
mod worker;

pub use error::ServeError;
use load::{blocking, prepare};

/// How a [`Server`] loads, batches and bounds its work.
#[derive(Debug, Clone)]
pub struct ServingOptions {
    /// Library, execution provider, threads, pool size ([`LoadOptions::sessions`]: runs at
    /// once) and variant. Its `kind` is ignored: [`Server::start`] names the kind.
    pub load: LoadOptions,
    /// Stop collecting a batch when its nodes reach this (default 4096). A larger request runs
    /// alone.
    pub max_batch_nodes: usize,
    /// How long the first request of a batch waits for company (default 2 ms);
    /// [`Duration::ZERO`]: only what is queued already joins it.
    pub max_batch_wait: Duration,
    /// Requests waiting in the queue (default 256); beyond it [`Server::infer`] fails at once
    /// with [`ServeError::QueueFull`].
    pub queue_capacity: usize,
    /// Bounded wait of a run for a free session (default 1 s); beyond it the batch's requests
    /// fail with [`ServeError::Busy`].
    pub session_wait: Duration,
    /// Replay the artifact's parity vectors at start and on every reload and refuse a model
    /// that does not reproduce them (default true).
    pub verify_parity: bool,
}

impl Default for ServingOptions {
    fn default() -> Self {
        Self {
            load: LoadOptions::default(),
            max_batch_nodes: 4096,
            max_batch_wait: Duration::from_millis(2),
            queue_capacity: 256,
            session_wait: Duration::from_secs(1),
            verify_parity: true,
        }
    }
}

/// What a served model is: enough for replies, health and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The manifest's name.
    pub name: String,
    /// [`Model::version`].
    pub version: String,
    pub kind: ModelKind,
    /// The execution provider really in use.
    pub execution_provider: ExecutionProvider,
    /// T: windows per request.
    pub steps: usize,
    /// H: forecast steps (forecaster).
    pub horizon: Option<usize>,
    /// Window length, ms.
    pub window_ms: u64,
    /// Node feature names, in input order.
    pub node_features: Vec<String>,
    /// Forecast target names, in output order.
    pub targets: Vec<String>,
}

impl ModelInfo {
    /// The info of a loaded model.
    pub fn of(model: &Model) -> Self {
        let manifest = model.manifest();
        Self {
            name: manifest.name.clone(),
            version: model.version().to_owned(),
            kind: model.kind(),
            execution_provider: model.execution_provider(),
            steps: manifest.steps,
            horizon: manifest.horizon,
            window_ms: manifest.window_ms,
            node_features: manifest.node_features.clone(),
            targets: manifest.targets.clone(),
        }
    }
}

/// The outputs of one request and the model (version) that computed them.
#[derive(Debug)]
pub struct Inferred {
    pub outputs: ModelOutputs,
    /// The model that really produced `outputs` (after a reload, possibly not the one serving
    /// now).
    pub model: Arc<ModelInfo>,
}

/// What [`Server::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The directory holds the model serving now.
    Unchanged,
    /// A new version serves now.
    Reloaded {
        /// The version before.
        from: String,
        /// The version now.
        to: String,
    },
}

/// The model serving now.
#[derive(Debug)]
struct Current {
    model: Arc<Model>,
    info: Arc<ModelInfo>,
}

/// What the worker and the handles share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    kind: ModelKind,
    options: ServingOptions,
    current: RwLock<Arc<Current>>,
    metrics: &'static Metrics,
}

impl Shared {
    fn current(&self) -> Arc<Current> {
        // the lock guards one Arc, replaced whole: a poisoned lock still holds a valid one
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Request in the queue.
struct Request {
    inputs: ModelInputs,
    reply: oneshot::Sender<Result<Inferred, ServeError>>,
    enqueued: Instant,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` once closed. The worker ends when every sender is gone (the last handle dropped,
    /// or [`Server::close`]).
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    worker: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

/// A served model (see the module docs). Cheap to clone: clones share the queue, the worker
/// and the model. Dropping the last clone stops the worker after the queued requests.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info();
        f.debug_struct("Server")
            .field("dir", &self.inner.shared.dir)
            .field("kind", &self.inner.shared.kind)
            .field("version", &info.version)
            .field("execution_provider", &info.execution_provider)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the `kind` model in `dir` on a blocking thread, replays its parity vectors (with
    /// [`ServingOptions::verify_parity`]), runs it once on a synthetic graph and starts the
    /// batching worker. Must be called within a tokio runtime.
    pub async fn start(
        dir: PathBuf,
        kind: ModelKind,
        options: ServingOptions,
    ) -> Result<Self, ModelError> {
        let current = prepare(dir.clone(), kind, options.clone()).await?;
        let metrics = Metrics::get();
        set_info(metrics, None, &current.info);
        tracing::info!(
            model = %current.info.name,
            version = %current.info.version,
            execution_provider = current.info.execution_provider.name(),
            dir = %dir.display(),
            "model serving"
        );
        let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            dir,
            kind,
            options,
            current: RwLock::new(Arc::new(current)),
            metrics,
        });
        let worker = tokio::spawn(worker::run(Arc::clone(&shared), receiver));
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                sender: Mutex::new(Some(sender)),
                worker: tokio::sync::Mutex::new(Some(worker)),
                reloading: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The model serving now.
    pub fn info(&self) -> Arc<ModelInfo> {
        Arc::clone(&self.inner.shared.current().info)
    }

    /// The model serving now, to run directly (bypassing the queue) or inspect.
    pub fn model(&self) -> Arc<Model> {
        Arc::clone(&self.inner.shared.current().model)
    }

    /// The artifact directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Requests in the queue, not yet taken by the worker.
    pub fn queued(&self) -> usize {
        let sender = self.sender();
        sender.map_or(0, |s| s.max_capacity() - s.capacity())
    }

    /// Runs `inputs` (validated against the model; they may be joined with other requests).
    /// Fails at once with [`ServeError::QueueFull`] when the queue is full. Dropping the
    /// future before the run starts withdraws the request.
    pub async fn infer(&self, inputs: ModelInputs) -> Result<Inferred, ServeError> {
        let Some(sender) = self.sender() else {
            return Err(ServeError::Closed);
        };
        let (reply, receiver) = oneshot::channel();
        let request = Request {
            inputs,
            reply,
            enqueued: Instant::now(),
        };
        match sender.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let error = ServeError::QueueFull {
                    capacity: self.inner.shared.options.queue_capacity.max(1),
                };
                self.inner
                    .shared
                    .metrics
                    .error(&self.info().name, error.reason());
                return Err(error);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(ServeError::Closed),
        }
        drop(sender);
        // the worker dropped the reply only when it stopped (or a run panicked)
        receiver.await.unwrap_or(Err(ServeError::Closed))
    }

    /// Re-reads the directory's manifest; when the sha256 of the model file (the variant's
    /// with [`LoadOptions::variant`]) or the version differs from the serving model's, loads
    /// the new model on a blocking thread, checks it (manifest, sha256, parity vectors with
    /// [`ServingOptions::verify_parity`], warm-up) and swaps it in. On an error the old model
    /// keeps serving. Counted in `meshwatch_model_reloads_total`.
    pub async fn reload(&self) -> Result<ReloadOutcome, ModelError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let shared = &self.inner.shared;
        let current = shared.current();
        let result = self.try_reload(&current).await;
        let label = match &result {
            Ok(ReloadOutcome::Unchanged) => return result,
            Ok(ReloadOutcome::Reloaded { .. }) => outcome::RELOADED,
            Err(_) => outcome::REJECTED,
        };
        shared
            .metrics
            .reloads
            .with_label_values(&[current.info.name.as_str(), label])
            .inc();
        result
    }

    async fn try_reload(&self, current: &Current) -> Result<ReloadOutcome, ModelError> {
        let shared = &self.inner.shared;
        let dir = shared.dir.clone();
        let manifest = blocking(move || Manifest::load(&dir)).await?;
        let sha256 = match &shared.options.load.variant {
            None => manifest.sha256.as_str(),
            Some(name) => manifest.variant(name)?.sha256.as_str(),
        };
        // an empty version is no version (see Model::version)
        let declared = |m: &Manifest| m.version.clone().filter(|v| !v.is_empty());
        if sha256.eq_ignore_ascii_case(current.model.sha256())
            && declared(&manifest) == declared(current.model.manifest())
        {
            return Ok(ReloadOutcome::Unchanged);
        }
        let next = prepare(shared.dir.clone(), shared.kind, shared.options.clone()).await?;
        let (from, to) = (current.info.version.clone(), next.info.version.clone());
        set_info(shared.metrics, Some(&current.info), &next.info);
        let next = Arc::new(next);
        *shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
        tracing::info!(
            model = %next.info.name,
            %from,
            %to,
            execution_provider = next.info.execution_provider.name(),
            "model reloaded"
        );
        Ok(ReloadOutcome::Reloaded { from, to })
    }

    /// Calls [`Server::reload`] every `interval` until `cancel`; logs every outcome but
    /// `Unchanged` and never stops on a bad model (the old one keeps serving). The task holds
    /// a clone of the server.
    pub fn spawn_reload_watcher(
        &self,
        interval: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let server = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // the first tick is immediate: the model was just loaded
            ticker.tick().await;
            let mut last_error: Option<String> = None;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                match server.reload().await {
                    Ok(ReloadOutcome::Unchanged) => {}
                    Ok(ReloadOutcome::Reloaded { .. }) => last_error = None,
                    Err(error) => {
                        let message = error.to_string();
                        // the same bad artifact fails every poll: say it once at warn
                        if last_error.as_deref() == Some(message.as_str()) {
                            tracing::debug!(dir = %server.dir().display(), %error, "model reload still rejected");
                        } else {
                            tracing::warn!(dir = %server.dir().display(), %error, "model reload rejected; the old model keeps serving");
                            last_error = Some(message);
                        }
                    }
                }
            }
        })
    }

    /// Stops accepting requests ([`ServeError::Closed`]), answers those already queued and
    /// waits for the worker.
    pub async fn close(&self) {
        drop(
            self.inner
                .sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let mut worker = self.inner.worker.lock().await;
        if let Some(handle) = worker.take()
            && let Err(error) = handle.await
        {
            tracing::error!(%error, "the model batching worker failed");
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<Request>> {
        self.inner
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Sets `meshwatch_model_info` to 1 for `now`, removing the series of `before`.
fn set_info(metrics: &Metrics, before: Option<&ModelInfo>, now: &ModelInfo) {
    if let Some(before) = before {
        // absent when another server of the same model changed it: nothing to remove
        let _absent = metrics.info.remove_label_values(&[
            before.name.as_str(),
            before.version.as_str(),
            before.execution_provider.name(),
        ]);
    }
    metrics
        .info
        .with_label_values(&[
            now.name.as_str(),
            now.version.as_str(),
            now.execution_provider.name(),
        ])
        .set(1);
}
