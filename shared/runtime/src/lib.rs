//! What every Meshwatch service binary shares: layered configuration, logging, Prometheus
//! metrics, the admin endpoint (`/metrics`, `/healthz`, `/readyz`), the shutdown tree, and the
//! mapping of error classes to gRPC codes and HTTP statuses.
//!
//! # A service's `main.rs`
//!
//! [`service::main`] runs the sequence below for a service whose `run` starts everything it
//! needs; the example spells it out.
//!
//! Parse the CLI → load and validate the config (before any port is bound) → with
//! `--check-config` print the effective config and exit 0 → init logging → bind the admin
//! endpoint → `run(config, shutdown)` → wait for the drain → exit code.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use clap::Parser;
//! use meshwatch_runtime::{
//!     AdminConfig, CommonArgs, LogConfig, Readiness, Shutdown, ShutdownConfig, Validate,
//!     bind_admin, effective_toml, init_tracing, load, metrics, nested, serve_admin,
//! };
//!
//! #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
//! #[serde(deny_unknown_fields, default)]
//! struct Config {
//!     admin: AdminConfig,
//!     log: LogConfig,
//!     shutdown: ShutdownConfig,
//!     // ... the service's own sections
//! }
//!
//! impl Validate for Config {
//!     fn validate(&self) -> Vec<String> {
//!         let mut problems = nested("admin", &self.admin);
//!         problems.extend(nested("log", &self.log));
//!         problems.extend(nested("shutdown", &self.shutdown));
//!         problems
//!     }
//! }
//!
//! #[derive(Debug, Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     common: CommonArgs,
//! }
//!
//! /// The service's `lib.rs` entry point: spawns its named tasks on `shutdown`, registers its
//! /// readiness conditions, and returns once started.
//! async fn run(_config: Config, _shutdown: Shutdown) -> anyhow::Result<()> {
//!     Ok(())
//! }
//!
//! fn main() -> ExitCode {
//!     let cli = Cli::parse();
//!     let config: Config = match load(&cli.common) {
//!         Ok(config) => config,
//!         Err(error) => {
//!             eprintln!("{error}");
//!             return ExitCode::from(2);
//!         }
//!     };
//!     if cli.common.check_config {
//!         return match effective_toml(&config) {
//!             Ok(text) => {
//!                 print!("{text}");
//!                 ExitCode::SUCCESS
//!             }
//!             Err(error) => {
//!                 eprintln!("{error}");
//!                 ExitCode::from(2)
//!             }
//!         };
//!     }
//!     if let Err(error) = init_tracing(&config.log) {
//!         eprintln!("{error}");
//!         return ExitCode::from(2);
//!     }
//!     let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
//!         Ok(runtime) => runtime,
//!         Err(error) => {
//!             tracing::error!(%error, "cannot start the tokio runtime");
//!             return ExitCode::FAILURE;
//!         }
//!     };
//!     let code = runtime.block_on(serve(config));
//!     // Tasks that outlived the grace period must not hold the exit.
//!     runtime.shutdown_background();
//!     ExitCode::from(code)
//! }
//!
//! async fn serve(config: Config) -> u8 {
//!     if let Err(error) = metrics::set_build_info("meshwatch-example", env!("CARGO_PKG_VERSION")) {
//!         tracing::warn!(%error, "cannot set build info");
//!     }
//!     let readiness = Readiness::new();
//!     let shutdown = Shutdown::new(readiness.clone());
//!     if let Err(error) = shutdown.listen_for_signals() {
//!         tracing::error!(%error, "cannot listen for shutdown signals");
//!         return 1;
//!     }
//!     let listener = match bind_admin(config.admin.listen).await {
//!         Ok(listener) => listener,
//!         Err(error) => {
//!             tracing::error!(%error, "cannot start the admin server");
//!             return 1;
//!         }
//!     };
//!     let admin = tokio::spawn(serve_admin(listener, readiness, shutdown.drained_token()));
//!     let grace = config.shutdown.grace;
//!     if let Err(error) = run(config, shutdown.clone()).await {
//!         tracing::error!(error = %format!("{error:#}"), "start-up failed");
//!         shutdown.trigger("start-up failed");
//!     }
//!     let report = shutdown.wait(grace).await;
//!     let _ = admin.await;
//!     report.exit_code()
//! }
//! ```
//!
//! Exit codes: 0 clean shutdown; 1 a task failed or did not drain in time; 2 invalid
//! configuration; 130 a second SIGTERM/SIGINT.
//!
//! # Metrics
//!
//! Each crate declares its metrics in its `metrics.rs` as one struct built once at start-up with
//! the helpers of [`metrics`]; registration errors surface at start-up through `?`, never as a
//! panic on the data path. Registering the same definition twice returns the same metric, so
//! `register()` may run once per `run()` (tests run services several times in one process);
//! assert on deltas in tests.
//!
//! ```
//! use meshwatch_runtime::metrics::{self, MetricsError};
//! use prometheus::{IntCounterVec, IntGauge};
//!
//! /// Metrics of the ingest service (`services/ingest/src/metrics.rs`).
//! #[derive(Debug, Clone)]
//! pub struct IngestMetrics {
//!     /// Spans received, by transport (`grpc`, `http`).
//!     pub spans_received: IntCounterVec,
//!     /// Spans waiting in the pairing store.
//!     pub store_spans: IntGauge,
//! }
//!
//! impl IngestMetrics {
//!     pub fn register() -> Result<Self, MetricsError> {
//!         Ok(Self {
//!             spans_received: metrics::register_int_counter_vec(
//!                 "meshwatch_ingest_spans_received_total",
//!                 "Spans received, by transport",
//!                 &["transport"],
//!             )?,
//!             store_spans: metrics::register_int_gauge(
//!                 "meshwatch_ingest_store_spans",
//!                 "Spans waiting in the pairing store",
//!             )?,
//!         })
//!     }
//! }
//!
//! let metrics = IngestMetrics::register()?;
//! metrics.spans_received.with_label_values(&["grpc"]).inc_by(512);
//! let again = IngestMetrics::register()?; // same series, not an error
//! assert_eq!(again.spans_received.with_label_values(&["grpc"]).get(), 512);
//! # Ok::<(), MetricsError>(())
//! ```
//!
//! # Errors to callers
//!
//! Error types that reach a caller implement [`Classify`]; gRPC handlers return
//! [`to_status`]`(&error)` and HTTP handlers use [`ErrorClass::http_status`] with
//! [`public_message`]. Log the error (with its details) before converting it.

pub mod admin;
pub mod config;
pub mod error;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use admin::{AdminError, Condition, Readiness, bind_admin, router, serve_admin};
pub use config::{
    AdminConfig, CommonArgs, ConfigError, LogConfig, LogFormat, ShutdownConfig, Validate,
    effective_toml, load, load_with_base, load_with_env, nested,
};
pub use error::{Classify, ErrorClass, public_message, to_status};
pub use metrics::MetricsError;
pub use shutdown::{Shutdown, ShutdownError, ShutdownReport};
pub use telemetry::{TelemetryError, init_tracing};
