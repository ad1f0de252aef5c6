//! The common part of Meshwatch's inference services, `meshwatch-detector` and
//! `meshwatch-forecaster` (ARCHITECTURE.md §1, §5, §6, §8; `docs/inference.md`): both serve one
//! model artifact through [`meshwatch_model::Server`] (session pool, micro-batching, hot reload)
//! as a stream (snapshots in from JetStream, reports out) and as a gRPC API.
//!
//! - [`config`]: the configuration, with per-service defaults ([`Role`]: [`Detector`],
//!   [`Forecaster`]);
//! - [`limits`]: request limits (windows, nodes, edges, message size) and their checks;
//! - [`window`]: a window of snapshots (from a gRPC request or the per-graph history) checked
//!   and encoded into the model contract's tensors;
//! - [`history`]: the last T windows of each graph, for the streaming path;
//! - [`report`]: model outputs to `AnomalyReport` / `ForecastReport`;
//! - [`engine`]: one inference, the same for both paths;
//! - [`grpc`]: `meshwatch.v1.Detector/Detect`, `meshwatch.v1.Forecaster/Forecast`;
//! - [`stream`]: the durable JetStream consumer, history rebuild, publishing with
//!   de-duplication ids, dead letters;
//! - [`run`]: the service (admin endpoint, gRPC with health and reflection, model, stream,
//!   graceful drain).

pub mod config;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod history;
pub mod limits;
pub mod local;
pub mod metrics;
pub mod report;
pub mod stream;
pub mod window;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use meshwatch_model::{ModelKind, Server};
use meshwatch_proto::v1;
use meshwatch_runtime::{Shutdown, bind_admin, serve_admin};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

pub use config::{Detector, Forecaster, InferenceConfig, Role};
pub use error::{InferError, StartError};

/// Where a started inference service listens.
#[derive(Debug, Clone)]
pub struct Running {
    pub grpc: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The model server (its version changes on hot reload).
    pub server: Server,
}

/// The gRPC service name of a kind, as health checks name it.
pub fn grpc_service_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Detector => "meshwatch.v1.Detector",
        ModelKind::Forecaster => "meshwatch.v1.Forecaster",
    }
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })?;
    Ok((listener, local))
}

/// Sets the health of the service and of the server as a whole (`""`).
async fn set_health(
    health: &tonic_health::server::HealthReporter,
    service: &str,
    status: ServingStatus,
) {
    health.set_service_status(service, status).await;
    health.set_service_status("", status).await;
}

/// Starts an inference service: admin endpoint and gRPC first (health NOT_SERVING), then the
/// model (loaded, parity-checked and warmed up; a missing ONNX Runtime or a bad artifact is an
/// error here), then health SERVING, the reload watcher and the stream worker. Returns once
/// serving; the service drains when `shutdown` fires: not ready and NOT_SERVING, gRPC and the
/// stream stop taking work, in-flight work finishes, the model server closes.
pub async fn run<R: Role>(
    config: InferenceConfig<R>,
    shutdown: &Shutdown,
) -> Result<Running, StartError> {
    run_held(config, shutdown, None).await
}

/// [`run`], keeping the model server open after the drain until `release` is cancelled: in
/// the all-in-one, the in-process pipeline still scores the windows the ingest flushes at
/// shutdown, after the gRPC server stopped.
pub async fn run_held<R: Role>(
    config: InferenceConfig<R>,
    shutdown: &Shutdown,
    release: Option<tokio_util::sync::CancellationToken>,
) -> Result<Running, StartError> {
    let started = Instant::now();
    let metrics = metrics::ServiceMetrics::register()?;
    let service = R::NAME.strip_prefix("meshwatch-").unwrap_or(R::NAME);
    meshwatch_runtime::metrics::set_build_info(service, env!("CARGO_PKG_VERSION"))?;
    if let Err(error) = meshwatch_bus::metrics::register(meshwatch_runtime::metrics::registry()) {
        tracing::debug!(%error, "bus metrics registration");
    }
    let readiness = shutdown.readiness().clone();
    let model_ready = readiness.register("model");
    let stream_ready = config.stream.enabled.then(|| readiness.register("stream"));

    let admin_listener = bind_admin(config.admin.listen).await?;
    let admin = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            what: "admin",
            addr: config.admin.listen,
            source,
        })?;
    let admin_token = shutdown.drained_token();
    let admin_readiness = readiness.clone();
    tokio::spawn(async move {
        if let Err(error) = serve_admin(admin_listener, admin_readiness, admin_token).await {
            tracing::error!(%error, "admin server failed");
        }
    });

    let slot: Arc<OnceLock<Server>> = Arc::new(OnceLock::new());
    let (health, health_service) = tonic_health::server::health_reporter();
    let service_name = grpc_service_name(R::KIND);
    set_health(&health, service_name, ServingStatus::NotServing).await;

    let mut grpc_addr = None;
    let mut grpc_task = None;
    if config.grpc.enabled {
        let (listener, local) = bind("grpc", config.grpc.listen).await?;
        grpc_addr = Some(local);
        let state = Arc::new(grpc::ApiState::new(
            Arc::clone(&slot),
            config.limits.clone(),
            config.grpc.default_timeout,
            metrics.clone(),
        ));
        let max_bytes = config.limits.max_message_bytes;
        let mut router = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(config.grpc.concurrency_per_connection)
            .add_service(health_service);
        if config.grpc.reflection {
            let reflection = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(meshwatch_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(|e| StartError::Reflection(e.to_string()))?;
            router = router.add_service(reflection);
        }
        router = match R::KIND {
            ModelKind::Detector => router.add_service(
                v1::detector_server::DetectorServer::new(grpc::DetectorApi(state))
                    .max_decoding_message_size(max_bytes)
                    .max_encoding_message_size(max_bytes),
            ),
            ModelKind::Forecaster => router.add_service(
                v1::forecaster_server::ForecasterServer::new(grpc::ForecasterApi(state))
                    .max_decoding_message_size(max_bytes)
                    .max_encoding_message_size(max_bytes),
            ),
        };
        let token = shutdown.child_token();
        grpc_task = Some(tokio::spawn(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            if let Err(error) = router
                .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                .await
            {
                tracing::error!(%error, "grpc server failed");
            }
        }));
    }

    let dir = config.model.dir.clone();
    let server = Server::start(dir.clone(), R::KIND, config.serving_options())
        .await
        .map_err(|source| StartError::Model {
            dir: dir.display().to_string(),
            source,
        })?;
    let _ = slot.set(server.clone());
    let info = server.info();
    model_ready.set(true);
    set_health(&health, service_name, ServingStatus::Serving).await;

    if !config.model.reload_interval.is_zero() {
        server.spawn_reload_watcher(config.model.reload_interval, shutdown.child_token());
    }

    let mut stream_task = None;
    if let Some(ready) = stream_ready {
        let client = meshwatch_bus::connect_in_background(&config.nats).await?;
        let context = meshwatch_bus::context(client, &config.nats);
        let names = config
            .nats
            .names()
            .map_err(|e| StartError::Bus(meshwatch_bus::BusError::Config(e.to_string())))?;
        let worker = Arc::new(stream::StreamWorker::new(
            config.stream.clone(),
            names,
            context.clone(),
            server.clone(),
            metrics.clone(),
        ));
        let token = shutdown.child_token();
        let nats = config.nats.clone();
        let backoff = config.stream.retry_backoff;
        stream_task = Some(tokio::spawn(async move {
            // The streams may not exist yet (first start, NATS still starting): create them.
            let mut wait = backoff;
            loop {
                match meshwatch_bus::ensure_streams(&context, &nats).await {
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "cannot ensure the streams; retrying");
                        tokio::select! {
                            () = token.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(std::time::Duration::from_secs(30));
                    }
                }
            }
            worker.run(token, move |bound| ready.set(bound)).await;
        }));
    }

    let root = shutdown.token();
    let drain_server = server.clone();
    let grace = config.shutdown.grace;
    shutdown.spawn("drain", async move {
        root.cancelled().await;
        set_health(&health, service_name, ServingStatus::NotServing).await;
        // In-flight requests finish; a client holding a stream open (a health Watch) must not
        // hold the drain past its share of the grace period.
        if let Some(task) = grpc_task
            && tokio::time::timeout(grace.mul_f64(0.4), task)
                .await
                .is_err()
        {
            tracing::warn!("the grpc server did not stop in time (streams still open)");
        }
        if let Some(task) = stream_task
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "stream worker task");
        }
        if let Some(release) = release {
            release.cancelled().await;
        }
        drain_server.close().await;
        tracing::info!("drained");
        Ok::<(), StartError>(())
    });

    tracing::info!(
        model = %info.name,
        version = %info.version,
        execution_provider = info.execution_provider.name(),
        grpc = ?grpc_addr,
        admin = %admin,
        stream = config.stream.enabled,
        startup_ms = started.elapsed().as_millis(),
        "{} started",
        R::NAME
    );
    Ok(Running {
        grpc: grpc_addr,
        admin,
        server,
    })
}
