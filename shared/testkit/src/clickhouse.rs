//! A real ClickHouse 26.9 (HTTP interface) for the tests: the one named by `CLICKHOUSE_URL`, or
//! one this process starts from the launcher `scripts/install-clickhouse.sh` installs (PyPI
//! `chdb-core==26.9.0`, which contains the full server).
//!
//! - [`url`]: `CLICKHOUSE_URL` when set (as `scripts/test.sh` does), else one server shared by
//!   every test of this process, started on first use. It ends with the process (the launcher
//!   runs with `--exit-with-parent`).
//! - [`ClickHouseServer`]: a server of a test's own, which the test can stop and restart (to
//!   see what the code does while ClickHouse is down).
//! - [`unique_database`]: every test writes to a database of its own, so tests sharing a
//!   server see nothing of each other; [`drop_database`] removes it at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How to get the server the tests look for.
const INSTALL_HINT: &str = "install it with `scripts/install-clickhouse.sh` (PyPI chdb-core \
     26.9.0 into $MESHWATCH_CACHE/venv-clickhouse), or set MESHWATCH_CLICKHOUSE_SERVE to its \
     launcher, or CLICKHOUSE_URL to a running ClickHouse HTTP interface \
     (`scripts/clickhouse.sh start`)";

/// The prefix of the data directories of servers started here (under the system temp dir).
const DIR_PREFIX: &str = "meshwatch-clickhouse-";

/// The launcher: `MESHWATCH_CLICKHOUSE_SERVE`, else
/// `venv-clickhouse/bin/meshwatch-clickhouse-serve` in the project's cache directory
/// ([`crate::python::cache_dir`]). It takes `DIR PORT [--exit-with-parent]`.
pub fn launcher() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MESHWATCH_CLICKHOUSE_SERVE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "MESHWATCH_CLICKHOUSE_SERVE={} is not a file; {INSTALL_HINT}",
                path.display()
            );
        }
        return Ok(path);
    }
    let path = crate::python::cache_dir()?.join("venv-clickhouse/bin/meshwatch-clickhouse-serve");
    if !path.is_file() {
        bail!(
            "no ClickHouse launcher at {}; {INSTALL_HINT}",
            path.display()
        );
    }
    Ok(path)
}

/// The URL of the ClickHouse the tests use: `CLICKHOUSE_URL` when set, else a server shared by
/// this process's tests, started on the first call.
pub async fn url() -> anyhow::Result<String> {
    match std::env::var("CLICKHOUSE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(url.trim().trim_end_matches('/').to_owned()),
        _ => shared_server_url().await,
    }
}

async fn shared_server_url() -> anyhow::Result<String> {
    static SHARED: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_try_init(|| async {
            let server = ClickHouseServer::start().await?;
            let url = server.url();
            // Lives as long as the process: the launcher exits with its parent, and statics
            // are never dropped.
            std::mem::forget(server);
            Ok::<_, anyhow::Error>(url)
        })
        .await
        .cloned()
}

/// A database name no other test (or earlier run against a shared server) uses:
/// `t_`, up to 12 letters of `test`, the process id, a counter and the clock's nanoseconds.
pub fn unique_database(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let short: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("t_{short}_{}_{n}_{nanos}", std::process::id())
}

/// Drops `database` on the server at `url`; best effort, for the end of a test.
pub async fn drop_database(url: &str, database: &str) {
    if database
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        let _ = post(url, &format!("DROP DATABASE IF EXISTS {database}")).await;
    }
}

/// Whether the server at `url` answers `GET /ping` with 200.
pub async fn ping(url: &str) -> bool {
    matches!(request(url, "GET", "/ping", "").await, Ok((200, _)))
}

/// Runs `sql` on the server at `url` (HTTP POST) and returns the response body; an error when
/// ClickHouse answers anything but 200.
pub async fn post(url: &str, sql: &str) -> anyhow::Result<String> {
    let (status, body) = request(url, "POST", "/", sql).await?;
    if status != 200 {
        bail!("clickhouse answered {status} to {sql:?}: {}", body.trim());
    }
    Ok(body)
}

/// A minimal HTTP/1.0 exchange (no client library in the harness for three calls).
async fn request(url: &str, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not an http:// URL"))?
        .trim_end_matches('/');
    let io = async {
        let mut stream = TcpStream::connect(authority).await?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(30), io)
        .await
        .with_context(|| format!("{method} {url}{path} timed out"))?
        .with_context(|| format!("{method} {url}{path}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response from {url}: {text:.200}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A ClickHouse child process with a data directory that outlives restarts.
#[derive(Debug)]
pub struct ClickHouseServer {
    launcher: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl ClickHouseServer {
    /// Starts a server on a free loopback port and waits until it answers `/ping`.
    pub async fn start() -> anyhow::Result<Self> {
        let mut server = Self::reserve()?;
        server.spawn().await?;
        Ok(server)
    }

    /// A server with a port and data directory, not running yet ([`ClickHouseServer::restart`]
    /// starts it).
    pub fn reserve() -> anyhow::Result<Self> {
        remove_stale_dirs();
        let launcher = launcher()?;
        let port = crate::ports::free_port()?;
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            launcher,
            port,
            dir,
            child: None,
        })
    }

    /// The server's URL (also while it is stopped).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data directory (config.xml, data/, the log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("clickhouse.log")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.launcher)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .arg("--exit-with-parent")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.launcher.display()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let url = self.url();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("clickhouse exited with {status}: {}", self.log_tail());
            }
            if ping(&url).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("clickhouse at {url} not ready: {}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        crate::process::log_tail(&self.log_path())
    }

    /// Kills the server (like a crash); the data stays.
    pub fn stop(&mut self) {
        crate::process::kill(&mut self.child);
    }

    /// Starts the server (again) on the same port with the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn().await
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the data directories of servers whose test process has gone (a crashed or killed
/// test run cannot clean up after itself). Linux only (it looks in /proc); best effort.
fn remove_stale_dirs() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
