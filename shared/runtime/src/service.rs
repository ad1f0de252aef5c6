//! The `main` of a service binary: parse → load config → `--check-config` → logging → tokio
//! runtime → signals → `run` → drain → exit code, as one function.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use clap::Parser;
//! use meshwatch_runtime::{CommonArgs, Shutdown, service};
//! # #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
//! # struct Config { log: meshwatch_runtime::LogConfig, shutdown: meshwatch_runtime::ShutdownConfig }
//! # impl meshwatch_runtime::Validate for Config { fn validate(&self) -> Vec<String> { Vec::new() } }
//! # impl service::ServiceConfig for Config {
//! #     fn log(&self) -> &meshwatch_runtime::LogConfig { &self.log }
//! #     fn grace(&self) -> std::time::Duration { self.shutdown.grace }
//! # }
//! # async fn run(_config: Config, _shutdown: &Shutdown) -> Result<(), std::io::Error> { Ok(()) }
//!
//! #[derive(Debug, Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     common: CommonArgs,
//! }
//!
//! fn main() -> ExitCode {
//!     let cli = Cli::parse();
//!     service::main("meshwatch-example", &cli.common, service::Leftover::Abandon, run)
//! }
//! ```

use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    CommonArgs, LogConfig, Readiness, Shutdown, Validate, effective_toml, init_tracing,
    load_with_base,
};

/// What [`main`] needs to know about a service's configuration.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default + Validate {
    /// The `log` section, for [`init_tracing`].
    fn log(&self) -> &LogConfig;
    /// How long the drain may take after a shutdown signal (`shutdown.grace`).
    fn grace(&self) -> Duration;
    /// Defaults of this program over the types' own, as a layer below the file
    /// ([`crate::load_with_base`]); none by default.
    fn base_layer() -> toml::Table {
        toml::Table::new()
    }
}

/// What happens to tasks still running on the tokio runtime after the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// Drop the runtime normally (it waits for blocking tasks).
    Await,
    /// `Runtime::shutdown_background`: tasks that outlived the grace period must not hold the
    /// exit.
    Abandon,
}

/// Runs a service binary: loads `C` from `common` (exit 2 when invalid), prints it and exits 0
/// with `--check-config`, initialises logging (exit 2 on failure), builds a multi-thread tokio
/// runtime, listens for signals, calls `run(config, &shutdown)` to start the service (exit 1
/// when it fails), waits for the drain and exits with [`crate::ShutdownReport::exit_code`]
/// (130 after a second signal). `name` prefixes the messages printed before logging is up.
pub fn main<C, F, R, E>(name: &str, common: &CommonArgs, leftover: Leftover, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: AsyncFnOnce(C, &Shutdown) -> Result<R, E>,
    E: Display,
{
    let config: C = match load_with_base(common, std::env::vars_os(), C::base_layer()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
    };
    if common.check_config {
        return match effective_toml(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{name}: {error}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(error) = init_tracing(config.log()) {
        eprintln!("{name}: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    let what = name.strip_prefix("meshwatch-").unwrap_or(name);
    let code = runtime.block_on(async move {
        let shutdown = Shutdown::new(Readiness::new());
        if let Err(error) = shutdown.listen_for_signals() {
            tracing::error!(%error, "cannot install signal handlers");
            return 1;
        }
        let grace = config.grace();
        if let Err(error) = run(config, &shutdown).await {
            tracing::error!(%error, "{what} failed to start");
            return 1;
        }
        shutdown.wait(grace).await.exit_code()
    });
    match leftover {
        Leftover::Await => drop(runtime),
        Leftover::Abandon => runtime.shutdown_background(),
    }
    ExitCode::from(code)
}
