//! Free loopback ports, for a process started by a test whose `:0` listeners cannot be read
//! back from outside (an in-process service reports its bound addresses instead; prefer that).
//!
//! The port is free when returned and bound by nobody afterwards, but another process may take
//! it before the service binds it; the window is short and the OS hands out ports in rotation.

use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_addr()?.port())
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("cannot find a free loopback port")
}

/// `n` distinct free loopback addresses (all held until every one is chosen, so no two are
/// the same port).
pub fn free_addrs(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free loopback ports")?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().context("local address"))
        .collect()
}
