//! Meshwatch ingest: OTLP traces and metrics in (gRPC :4317, HTTP :4318), one graph snapshot per
//! graph and window out, on NATS JetStream (ARCHITECTURE.md §1, §3, §6, §8).
//!
//! Receivers ([`grpc`], [`http`], and Zipkin's `POST /api/v2/spans` on the HTTP port:
//! [`zipkin`]) hand request bodies to the aggregation thread ([`pipeline`]),
//! which decodes them zero-copy, pairs spans and closes windows with `meshwatch-graph`, and
//! passes closed snapshots to a bounded, retrying publish buffer in front of JetStream.
//! SIGTERM: not ready → stop intake → flush open windows → publish → exit.

pub mod config;
pub mod decompress;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod metrics_grpc;
pub mod pipeline;
pub mod retry_info;
pub mod zipkin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::serve::ListenerExt;
use meshwatch_bus::{BufferedPublisher, InProcessSink, JetStreamSink, SnapshotSink};
use meshwatch_runtime::{Shutdown, bind_admin, serve_admin};
use tokio::net::TcpListener;

pub use config::IngestConfig;
pub use error::{IngestError, RequestError};

/// Where a started ingest listens.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub admin: SocketAddr,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, IngestError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| IngestError::Bind { what, addr, source })
}

fn local(
    what: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, IngestError> {
    listener
        .local_addr()
        .map_err(|source| IngestError::Bind { what, addr, source })
}

/// Where the snapshots go.
#[derive(Debug, Clone)]
pub enum Bus {
    /// NATS JetStream (`config.nats`): the production topology.
    Nats,
    /// The in-process bus of the all-in-one mode; closed once the ingest has drained, so that
    /// its subscribers see the end of the stream.
    InProcess(InProcessSink),
}

/// Starts the ingest: binds every listener (failing fast), spawns its named tasks on
/// `shutdown`, and returns where it listens. The service runs until `shutdown` fires and drains
/// within `config.shutdown.grace`.
pub async fn run(config: IngestConfig, shutdown: &Shutdown) -> Result<Running, IngestError> {
    run_on(config, shutdown, Bus::Nats).await
}

/// [`run`], publishing to `bus`.
pub async fn run_on(
    config: IngestConfig,
    shutdown: &Shutdown,
    bus: Bus,
) -> Result<Running, IngestError> {
    let metrics = metrics::Metrics::register()?;
    meshwatch_runtime::metrics::set_build_info("ingest", env!("CARGO_PKG_VERSION"))?;
    if let Err(error) = meshwatch_bus::metrics::register(meshwatch_runtime::metrics::registry()) {
        // Already registered by an earlier run in this process.
        tracing::debug!(%error, "bus metrics registration");
    }
    let readiness = shutdown.readiness().clone();
    let nats_ready = matches!(bus, Bus::Nats).then(|| readiness.register("nats"));
    let intake_ready = readiness.register("listening");

    let admin_listener = bind_admin(config.admin.listen)
        .await
        .map_err(|e| IngestError::Config(e.to_string()))?;
    let admin = local("admin", &admin_listener, config.admin.listen)?;
    let grpc_listener = match config.otlp.grpc_enabled {
        true => Some(bind("otlp grpc", config.otlp.grpc_listen).await?),
        false => None,
    };
    let http_listener = match config.otlp.http_enabled {
        true => Some(bind("otlp http", config.otlp.http_listen).await?),
        false => None,
    };
    let running = Running {
        grpc: grpc_listener
            .as_ref()
            .map(|l| local("otlp grpc", l, config.otlp.grpc_listen))
            .transpose()?,
        http: http_listener
            .as_ref()
            .map(|l| local("otlp http", l, config.otlp.http_listen))
            .transpose()?,
        admin,
    };

    let (sink, in_process): (Arc<dyn SnapshotSink>, _) = match bus {
        // Connects in the background: the ingest accepts (and buffers) while NATS is
        // unreachable.
        Bus::Nats => {
            let jetstream = Arc::new(JetStreamSink::start(&config.nats).await?);
            if let Some(ready) = nats_ready {
                spawn_nats_readiness(shutdown, Arc::clone(&jetstream), ready);
            }
            (jetstream, None)
        }
        Bus::InProcess(sink) => (Arc::new(sink.clone()), Some(sink)),
    };
    let publisher = Arc::new(BufferedPublisher::spawn(sink, config.buffer.clone()));
    let (pipeline, worker) =
        pipeline::Pipeline::start(&config, Arc::clone(&publisher), metrics.clone())?;
    let pipeline = Arc::new(pipeline);

    let admin_token = shutdown.drained_token();
    let admin_readiness = readiness.clone();
    // Not a tracked task: it stops on the drained token, which `Shutdown::wait` cancels only
    // after every tracked task ended, so tracking it made every shutdown wait out the grace.
    tokio::spawn(async move {
        if let Err(error) = serve_admin(admin_listener, admin_readiness, admin_token).await {
            tracing::error!(%error, "admin server failed");
        }
    });
    let intake = shutdown.child_token();
    let mut servers = Vec::new();
    if let Some(listener) = grpc_listener {
        let service = grpc::TraceGrpc::new(
            Arc::clone(&pipeline),
            metrics.clone(),
            config.otlp.max_request_bytes,
        );
        let metrics_service = metrics_grpc::MetricsGrpc::new(
            Arc::clone(&pipeline),
            metrics.clone(),
            config.otlp.max_request_bytes,
        );
        let token = intake.clone();
        servers.push(tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(service)
                .add_service(metrics_service)
                .serve_with_incoming_shutdown(
                    // Without TCP_NODELAY a large response waits for the peer's delayed ACK
                    // (~40 ms per request); tonic's own setting does not reach a listener
                    // passed in.
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    token.cancelled_owned(),
                )
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "otlp grpc server failed");
            }
        }));
    }
    if let Some(listener) = http_listener {
        let app = http::router(
            Arc::clone(&pipeline),
            metrics.clone(),
            config.otlp.max_request_bytes,
            config.otlp.max_decompressed_bytes,
        )
        .merge(zipkin::router(
            Arc::clone(&pipeline),
            metrics.clone(),
            meshwatch_graph::span::ResourceKeys {
                graph_keys: config.graph.graph_keys.clone(),
                service_keys: config.graph.service_keys.clone(),
            },
            config.otlp.max_request_bytes,
            config.otlp.max_decompressed_bytes,
        ));
        let token = intake.clone();
        servers.push(tokio::spawn(async move {
            let result = axum::serve(
                listener.tap_io(|tcp| {
                    // Same reason as for gRPC: no delayed-ACK stall on large responses.
                    if let Err(error) = tcp.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                }),
                app,
            )
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
            if let Err(error) = result {
                tracing::error!(%error, "otlp http server failed");
            }
        }));
    }
    intake_ready.set(true);
    tracing::info!(grpc = ?running.grpc, http = ?running.http, admin = %running.admin, "ingest started");

    let grace = config.shutdown.grace;
    let root = shutdown.token();
    shutdown.spawn("drain", async move {
        root.cancelled().await;
        let deadline = Instant::now() + grace.mul_f64(0.9);
        tracing::info!("draining: intake stopped, flushing open windows");
        // In-flight requests finish first (their replies wait on the aggregation thread).
        let half = grace.mul_f64(0.4);
        for server in servers {
            if tokio::time::timeout(half, server).await.is_err() {
                tracing::warn!("a receiver did not stop in time");
            }
        }
        let held = pipeline.flush(deadline).await;
        let unflushed = publisher
            .flush(tokio::time::Instant::from_std(deadline))
            .await;
        // The thread ends once the last handle is gone; a receiver task that still holds one
        // must not hang the drain past the deadline.
        drop(pipeline);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let joined = tokio::time::timeout(
            remaining,
            tokio::task::spawn_blocking(move || worker.join()),
        )
        .await;
        if joined.is_err() {
            tracing::warn!("aggregation thread still running at the deadline");
        }
        if let Some(bus) = in_process {
            bus.close();
        }
        match (held, unflushed) {
            (0, Ok(())) => {
                tracing::info!("drained: every snapshot published");
                Ok(())
            }
            (held, result) => {
                let unpublished = held + result.err().map_or(0, |u| u.remaining);
                tracing::error!(
                    unpublished,
                    "shutdown deadline passed with snapshots unpublished"
                );
                Err(IngestError::Config(format!(
                    "{unpublished} snapshots unpublished at shutdown"
                )))
            }
        }
    });
    Ok(running)
}

/// Ready while connected with the streams in place; not ready while disconnected.
fn spawn_nats_readiness(
    shutdown: &Shutdown,
    sink: Arc<JetStreamSink>,
    ready: meshwatch_runtime::Condition,
) {
    let watch = shutdown.child_token();
    shutdown.spawn("nats-readiness", async move {
        loop {
            ready.set(sink.is_connected() && sink.streams_ensured());
            tokio::select! {
                () = watch.cancelled() => return Ok::<(), IngestError>(()),
                () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
        }
    });
}
