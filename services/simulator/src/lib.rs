//! Meshwatch workload and fault-injection simulator (ARCHITECTURE.md §2, `services/simulator`).
//!
//! The core ([`engine`], [`topology`], [`workload`], [`faults`], [`otlp`]) is pure: a simulated
//! clock, a seeded generator, no I/O; the same settings give byte-identical output. Around it:
//! [`output`] writes files, [`export`] sends OTLP over gRPC or HTTP, [`driver`] paces a run in
//! real or compressed time, and [`run`] is the service (`meshwatch-simulator`).

pub mod engine;
pub mod error;
pub mod faults;
pub mod otlp;
pub mod rng;
pub mod settings;
pub mod topology;
pub mod workload;

pub use engine::{Batch, SimStats, Simulator};
pub use error::SimError;
pub use settings::SimulationSettings;

pub mod config;
pub mod driver;
pub mod export;
pub mod metrics;
pub mod output;

use std::net::SocketAddr;
use std::time::Duration;

use meshwatch_runtime::{Shutdown, bind_admin, serve_admin};

pub use config::SimulatorConfig;

/// Where a started simulator serves its admin endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    pub admin: SocketAddr,
}

/// Starts the service: validates the simulation (topology, faults), binds the admin endpoint
/// (`/metrics`, `/healthz`, `/readyz`), and spawns the simulation task, which sends OTLP to
/// `export.endpoint` until `run.duration` has been simulated (then the service shuts down by
/// itself) or shutdown begins (then it exports what has ended and drains its queue).
pub async fn run(config: SimulatorConfig, shutdown: &Shutdown) -> Result<Running, SimError> {
    let metrics = metrics::Metrics::register()?;
    meshwatch_runtime::metrics::set_build_info("simulator", env!("CARGO_PKG_VERSION"))?;
    let readiness = shutdown.readiness().clone();
    let running_ready = readiness.register("simulating");
    let start_ms = driver::paced_start_ms(driver::now_ms(), config.run.duration, config.run.speed);
    let sim = Simulator::new(&config.simulation, start_ms, config.run.duration)?;
    let listener = bind_admin(config.admin.listen)
        .await
        .map_err(|e| SimError::Endpoint(e.to_string()))?;
    let admin = listener
        .local_addr()
        .map_err(|e| SimError::Endpoint(e.to_string()))?;
    let admin_readiness = readiness.clone();
    let admin_token = shutdown.drained_token();
    // Not tracked: it stops on the drained token, after every tracked task ended.
    tokio::spawn(async move {
        if let Err(error) = serve_admin(listener, admin_readiness, admin_token).await {
            tracing::error!(%error, "admin server failed");
        }
    });
    let options = driver::EndpointOptions {
        endpoint: config.export.endpoint.clone(),
        protocol: config.export.protocol,
        timeout: config.export.timeout,
        max_in_flight: config.export.max_in_flight,
        queue_requests: config.export.queue_requests,
        retries: config.export.retries,
        labels_path: config.export.labels_path.clone(),
    };
    tracing::info!(
        topology = %config.simulation.topology,
        services = sim.topology().services.len(),
        seed = config.simulation.seed,
        rate = config.simulation.rate,
        endpoint = %options.endpoint,
        start_ms,
        "simulator started"
    );
    let cancel = shutdown.child_token();
    let speed = config.run.speed;
    let handle = shutdown.clone();
    let progress: driver::ProgressFn = Box::new(|p: &driver::Progress| {
        tracing::info!(
            clock_ms = p.sim_clock_ms,
            traces = p.traces,
            spans_accepted = p.spans_accepted,
            spans_dropped = p.spans_dropped,
            refused = p.refused,
            failed = p.failed,
            lag_ms = p.lag_ms,
            "progress"
        );
    });
    shutdown.spawn("simulation", async move {
        running_ready.set(true);
        let report = driver::run_to_endpoint(
            sim,
            speed,
            options,
            cancel,
            Some(metrics),
            Some((Duration::from_secs(30), progress)),
        )
        .await?;
        running_ready.set(false);
        tracing::info!(
            traces = report.stats.traces,
            spans = report.stats.spans,
            spans_accepted = report.progress.spans_accepted,
            spans_dropped = report.progress.spans_dropped,
            faults = report.labels.len(),
            cancelled = report.cancelled,
            "simulation ended"
        );
        if !report.cancelled {
            handle.trigger("simulation finished");
        }
        Ok::<(), SimError>(())
    });
    Ok(Running { admin })
}
