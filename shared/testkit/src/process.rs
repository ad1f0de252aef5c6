//! What the harness's server processes (NATS, ClickHouse, the services under test) share: the
//! tail of a log for error messages, killing a child like a crash, and the status of an admin
//! endpoint.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The HTTP status of `GET path` on `addr` (a minimal HTTP/1.0 exchange, 5 s at most): how a
/// test polls a service's `/readyz`.
pub async fn http_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), io).await??;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response: {text:.200}"))
}

/// The last 2,000 bytes of the log at `path` (empty when unreadable).
pub fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let mut start = log.len().saturating_sub(2000);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    log.get(start..).unwrap_or_default().to_owned()
}

/// Kills the child (SIGKILL, like a crash) and reaps it; nothing when there is none.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
