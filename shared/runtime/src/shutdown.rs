//! The shutdown tree: one cancellation token, named tasks, a grace period.
//!
//! ```text
//! SIGTERM/SIGINT ─► readiness "shutting down" ─► root token cancelled ─► tasks stop intake,
//!                   flush and drain ─► wait(grace) reports stragglers ─► drained token ─► exit
//! second signal  ─► exit(130) at once
//! ```
//!
//! A task that returns an error (or panics) also starts shutdown: a service whose essential
//! task died must not linger half-alive; it exits non-zero and the orchestrator restarts it.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Readiness;

/// Exit status after a second shutdown signal (128 + SIGINT).
pub const FORCED_EXIT_CODE: i32 = 130;

/// Why the signal listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// Not called from within a tokio runtime.
    #[error("the signal listener needs a tokio runtime")]
    NoRuntime,
    /// The OS refused the signal handler.
    #[error("cannot listen for {signal}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What happened during shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Tasks still running when the grace period ran out, by name.
    pub unfinished: Vec<String>,
    /// Tasks that returned an error or panicked, by name.
    pub failed: Vec<String>,
    /// From the start of shutdown to the end of the drain (or of the grace period).
    pub drain_time: Duration,
}

impl ShutdownReport {
    /// Every task finished in time and none failed.
    pub fn is_clean(&self) -> bool {
        self.unfinished.is_empty() && self.failed.is_empty()
    }

    /// The process exit status: 0 when clean, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.is_clean() { 0 } else { 1 }
    }
}

/// Handle to the shutdown tree; cheap to clone, all clones share it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: CancellationToken,
    drained: CancellationToken,
    tracker: TaskTracker,
    readiness: Readiness,
    next_id: AtomicU64,
    running: Mutex<BTreeMap<u64, String>>,
    failed: Mutex<Vec<String>>,
}

impl Inner {
    fn begin(&self, reason: &str) {
        self.readiness.set_shutting_down();
        if !self.root.is_cancelled() {
            tracing::info!(reason, "shutdown started");
            self.root.cancel();
        }
    }
}

impl Shutdown {
    /// A new tree whose shutdown marks `readiness` as shutting down.
    pub fn new(readiness: Readiness) -> Self {
        Self {
            inner: Arc::new(Inner {
                root: CancellationToken::new(),
                drained: CancellationToken::new(),
                tracker: TaskTracker::new(),
                readiness,
                next_id: AtomicU64::new(0),
                running: Mutex::default(),
                failed: Mutex::default(),
            }),
        }
    }

    /// The root token, cancelled when shutdown starts.
    pub fn token(&self) -> CancellationToken {
        self.inner.root.clone()
    }

    /// A child of the root token for one subsystem: cancelled with the root, and cancelling it
    /// stops only that subsystem.
    pub fn child_token(&self) -> CancellationToken {
        self.inner.root.child_token()
    }

    /// Cancelled when [`wait`](Self::wait) returns, after the drain: for the admin server, so
    /// `/metrics` and `/readyz` keep answering while the service drains.
    pub fn drained_token(&self) -> CancellationToken {
        self.inner.drained.clone()
    }

    /// The readiness this tree marks as shutting down.
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.root.is_cancelled()
    }

    /// Resolves when shutdown starts.
    pub async fn cancelled(&self) {
        self.inner.root.cancelled().await;
    }

    /// Starts shutdown: not ready, then the root token is cancelled. Idempotent.
    pub fn trigger(&self, reason: &str) {
        self.inner.begin(reason);
    }

    /// Spawns `future` as the task `name`, tracked until it ends.
    ///
    /// An error (or a panic) is logged with the task's name, recorded in the report, and starts
    /// shutdown. A task that returns `Ok` just ends. Must be called within a tokio runtime.
    pub fn spawn<F, E>(&self, name: impl Into<String>, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        let name = name.into();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.running).insert(id, name.clone());
        let inner = Arc::clone(&self.inner);
        self.inner.tracker.spawn(async move {
            // The inner spawn turns a panic into a JoinError instead of unwinding through here.
            let outcome = tokio::spawn(async move { future.await.map_err(Into::into) }).await;
            lock(&inner.running).remove(&id);
            let failure = match outcome {
                Ok(Ok(())) => {
                    tracing::debug!(task = %name, "task finished");
                    return;
                }
                Ok(Err(error)) => {
                    let error: Box<dyn StdError + Send + Sync> = error;
                    tracing::error!(task = %name, error = %chain(error.as_ref()), "task failed");
                    "task failed"
                }
                Err(join) if join.is_panic() => {
                    let panic = panic_message(join.into_panic());
                    tracing::error!(task = %name, panic = %panic, "task panicked");
                    "task panicked"
                }
                Err(_) => {
                    tracing::warn!(task = %name, "task cancelled by the runtime");
                    "task cancelled"
                }
            };
            lock(&inner.failed).push(name);
            inner.begin(failure);
        });
    }

    /// Listens for SIGTERM and SIGINT (Ctrl-C): the first starts shutdown, a second exits the
    /// process at once with status [`FORCED_EXIT_CODE`]. Call once, early, within the runtime.
    ///
    /// # Errors
    ///
    /// No runtime, or the signal handler could not be installed.
    pub fn listen_for_signals(&self) -> Result<(), ShutdownError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ShutdownError::NoRuntime)?;
        let signals = Signals::new()?;
        let inner = Arc::clone(&self.inner);
        runtime.spawn(async move {
            let mut signals = signals;
            let mut received = 0_u32;
            while let Some(signal) = signals.next().await {
                received += 1;
                if received == 1 {
                    tracing::info!(signal, "shutdown signal received, draining");
                    inner.begin(signal);
                } else {
                    tracing::warn!(signal, "second shutdown signal, exiting now");
                    std::process::exit(FORCED_EXIT_CODE);
                }
            }
        });
        Ok(())
    }

    /// Waits for shutdown to start (a signal, [`trigger`](Self::trigger), a failed task — or
    /// every task ending by itself), then up to `grace` for the tasks to finish; logs and
    /// reports the ones that did not. Cancels [`drained_token`](Self::drained_token) before
    /// returning. Tasks still running are left to die with the process.
    pub async fn wait(self, grace: Duration) -> ShutdownReport {
        let inner = &self.inner;
        inner.tracker.close();
        tokio::select! {
            () = inner.root.cancelled() => {}
            () = inner.tracker.wait() => inner.begin("all tasks finished"),
        }
        let started = Instant::now();
        let drained = tokio::time::timeout(grace, inner.tracker.wait())
            .await
            .is_ok();
        let drain_time = started.elapsed();
        let unfinished: Vec<String> = if drained {
            Vec::new()
        } else {
            lock(&inner.running).values().cloned().collect()
        };
        let failed = lock(&inner.failed).clone();
        let grace_text = humantime::format_duration(grace).to_string();
        if unfinished.is_empty() {
            tracing::info!(
                drain_ms = drain_time.as_millis(),
                failed = ?failed,
                "all tasks finished"
            );
        } else {
            tracing::warn!(
                tasks = ?unfinished,
                grace = %grace_text,
                "tasks did not finish within the shutdown grace period"
            );
        }
        inner.drained.cancel();
        ShutdownReport {
            unfinished,
            failed,
            drain_time,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `error: cause: cause ...`
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "non-string panic payload".to_owned(),
        },
    }
}

/// SIGTERM and SIGINT as one stream of signal names.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Result<Self, ShutdownError> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).map_err(|source| ShutdownError::Signal {
            signal: "SIGTERM",
            source,
        })?;
        let int = signal(SignalKind::interrupt()).map_err(|source| ShutdownError::Signal {
            signal: "SIGINT",
            source,
        })?;
        Ok(Self { term, int })
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Option<&'static str> {
        tokio::select! {
            received = self.term.recv() => received.map(|()| "SIGTERM"),
            received = self.int.recv() => received.map(|()| "SIGINT"),
        }
    }

    #[cfg(not(unix))]
    fn new() -> Result<Self, ShutdownError> {
        Ok(Self {})
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Option<&'static str> {
        tokio::signal::ctrl_c().await.ok().map(|()| "ctrl-c")
    }
}

#[cfg(test)]
mod tests;
