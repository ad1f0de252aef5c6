//! Service binaries of the workspace as child processes, for the system tests that run the
//! pipeline as deployed: started with `--set` flags, ready when `/readyz` answers 200, killed
//! when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use meshwatch_testkit::bins;
pub use meshwatch_testkit::process::http_status;

/// A service binary running as a child process, killed when dropped.
pub struct Service {
    pub name: &'static str,
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl Service {
    /// Starts `binary` with `settings` (each passed as `--set`), its output in `dir/<name>.log`.
    pub fn start(
        name: &'static str,
        admin: SocketAddr,
        settings: &[String],
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let binary = bins::path(name)?;
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(&binary);
        for kv in settings {
            command.arg("--set").arg(kv);
        }
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self {
            name,
            child,
            admin,
            log,
        })
    }

    /// Waits until `/readyz` answers 200; fails at once when the process exits.
    pub async fn ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status}: {}", self.name, self.log_tail());
            }
            if matches!(http_status(self.admin, "/readyz").await, Ok(200)) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{} not ready within {timeout:?}: {}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        meshwatch_testkit::process::log_tail(&self.log)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
