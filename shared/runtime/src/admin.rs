//! The admin HTTP server: `/metrics`, `/healthz` and `/readyz`.
//!
//! - `GET /metrics` — every metric of [`crate::metrics::registry`], Prometheus text format 0.0.4.
//! - `GET /healthz` — liveness: `200 ok` whenever the runtime answers at all.
//! - `GET /readyz` — readiness: `200 ready` when every registered [`Condition`] is met and
//!   shutdown has not begun; otherwise `503` with `shutting down` and/or the names of the unmet
//!   conditions, one per line.
//!
//! Bind first with [`bind_admin`] (so a bind failure stops start-up, and tests can bind
//! `127.0.0.1:0` and read the port), then run [`serve_admin`] until its token is cancelled. Give
//! it [`Shutdown::drained_token`](crate::Shutdown::drained_token) so probes and metrics keep
//! answering while the service drains.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::{TEXT_CONTENT_TYPE, encode_text};

/// Why the admin server failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The listen address could not be bound.
    #[error("cannot bind the admin server to {addr}")]
    Bind {
        /// The address from `admin.listen`.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("admin server failed")]
    Serve(#[source] std::io::Error),
}

/// The process's readiness: a set of named conditions plus the shutting-down flag.
///
/// Cheap to clone; all clones share one state.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug, Default)]
struct ReadinessInner {
    conditions: Mutex<Vec<Arc<ConditionState>>>,
    shutting_down: AtomicBool,
}

#[derive(Debug)]
struct ConditionState {
    name: String,
    met: AtomicBool,
}

/// One readiness condition, unmet until [`set`](Condition::set) to true.
///
/// Keep it for the life of the subsystem it describes. Dropping it leaves its last state in
/// place (a start-up step can set it and finish); a subsystem that fails should return an error
/// from its task, which starts shutdown and so makes the process not ready.
#[derive(Debug)]
pub struct Condition {
    state: Arc<ConditionState>,
}

impl Condition {
    /// Marks the condition met (`true`) or unmet (`false`).
    pub fn set(&self, met: bool) {
        self.state.met.store(met, Ordering::Release);
    }

    /// Whether the condition is met.
    pub fn is_met(&self) -> bool {
        self.state.met.load(Ordering::Acquire)
    }

    /// The name it was registered with.
    pub fn name(&self) -> &str {
        &self.state.name
    }
}

impl Readiness {
    /// No conditions, not shutting down: ready until a condition is registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an unmet condition named `name` (`nats`, `model`, `clickhouse`). Register before the
    /// admin server starts, or `/readyz` answers ready before the condition exists.
    pub fn register(&self, name: impl Into<String>) -> Condition {
        let state = Arc::new(ConditionState {
            name: name.into(),
            met: AtomicBool::new(false),
        });
        self.inner
            .conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&state));
        Condition { state }
    }

    /// Marks the process as shutting down: not ready from now on, whatever the conditions say.
    pub fn set_shutting_down(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// The names of the conditions that are not met, in registration order.
    pub fn unmet(&self) -> Vec<String> {
        self.inner
            .conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|c| !c.met.load(Ordering::Acquire))
            .map(|c| c.name.clone())
            .collect()
    }

    /// Ready: every condition met and shutdown not begun.
    pub fn is_ready(&self) -> bool {
        !self.is_shutting_down() && self.unmet().is_empty()
    }
}

/// The admin routes, for serving on a listener of your own or merging into another router.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

/// Binds the admin listener on `addr` (port 0 picks a free port; read it with
/// `TcpListener::local_addr`).
///
/// # Errors
///
/// [`AdminError::Bind`] when the address cannot be bound.
pub async fn bind_admin(addr: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })
}

/// Serves the admin routes on `listener` until `stop` is cancelled, then finishes the requests
/// in flight and returns.
///
/// # Errors
///
/// [`AdminError::Serve`] when the server fails.
pub async fn serve_admin(
    listener: TcpListener,
    readiness: Readiness,
    stop: CancellationToken,
) -> Result<(), AdminError> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "admin server listening"),
        Err(error) => tracing::warn!(%error, "admin server listening on an unknown address"),
    }
    axum::serve(listener, router(readiness))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .map_err(AdminError::Serve)?;
    tracing::debug!("admin server stopped");
    Ok(())
}

async fn metrics() -> Response {
    // Encoding walks every series; keep it off the reactor.
    match tokio::task::spawn_blocking(encode_text).await {
        Ok(text) => ([(CONTENT_TYPE, TEXT_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::warn!(%error, "metrics encoding task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, String) {
    let mut lines = Vec::new();
    if readiness.is_shutting_down() {
        lines.push("shutting down".to_owned());
    }
    lines.extend(readiness.unmet());
    if lines.is_empty() {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;

    struct Reply {
        status: u16,
        headers: String,
        body: String,
    }

    /// A minimal HTTP/1.1 GET over a raw socket.
    async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Reply> {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8(raw)?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("no header end in {text:?}"))?;
        let status = head
            .split(' ')
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("no status in {head:?}"))?
            .parse()?;
        Ok(Reply {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_owned(),
        })
    }

    async fn start(
        readiness: Readiness,
    ) -> anyhow::Result<(SocketAddr, CancellationToken, tokio::task::JoinHandle<()>)> {
        let listener = bind_admin(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                if let Err(error) = serve_admin(listener, readiness, stop).await {
                    tracing::error!(%error, "test admin server failed");
                }
            }
        });
        Ok((addr, stop, server))
    }

    #[tokio::test]
    async fn readyz_follows_conditions_and_shutdown() -> anyhow::Result<()> {
        let readiness = Readiness::new();
        let nats = readiness.register("nats");
        let model = readiness.register("model");
        let (addr, stop, server) = start(readiness.clone()).await?;

        let reply = get(addr, "/readyz").await?;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, "nats\nmodel");

        nats.set(true);
        let reply = get(addr, "/readyz").await?;
        assert_eq!((reply.status, reply.body.as_str()), (503, "model"));

        model.set(true);
        let reply = get(addr, "/readyz").await?;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready"));
        assert!(readiness.is_ready());

        readiness.set_shutting_down();
        let reply = get(addr, "/readyz").await?;
        assert_eq!((reply.status, reply.body.as_str()), (503, "shutting down"));

        let reply = get(addr, "/healthz").await?;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
        let reply = get(addr, "/nope").await?;
        assert_eq!(reply.status, 404);

        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), server).await??;
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
        Ok(())
    }

    #[tokio::test]
    async fn metrics_serves_registered_counter() -> anyhow::Result<()> {
        let counter = crate::metrics::register_int_counter_vec(
            "meshwatch_test_admin_requests_total",
            "requests seen by the admin test",
            &["route"],
        )?;
        counter.with_label_values(&["metrics"]).inc_by(3);
        let (addr, stop, server) = start(Readiness::new()).await?;

        let reply = get(addr, "/metrics").await?;
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .headers
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{}",
            reply.headers
        );
        assert!(
            reply
                .body
                .contains(r#"meshwatch_test_admin_requests_total{route="metrics"} 3"#),
            "{}",
            reply.body
        );

        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), server).await??;
        Ok(())
    }
}
