//! What the harness's own server processes (NATS, ClickHouse) share: the tail of a log for
//! error messages, and killing a child like a crash.

use std::path::Path;
use std::process::Child;

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
