//! `meshwatch-simulator`: parse flags, load config, init telemetry, run, exit code.

use std::process::ExitCode;

use clap::Parser;
use meshwatch_runtime::{CommonArgs, Readiness, Shutdown, effective_toml, init_tracing, load};
use meshwatch_simulator::SimulatorConfig;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Meshwatch simulator: a microservice workload with injected faults, as OTLP traces and
/// metrics sent to an OTLP endpoint, with ground-truth fault labels.
#[derive(Debug, Parser)]
#[command(name = "meshwatch-simulator", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: SimulatorConfig = match load(&cli.common) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("meshwatch-simulator: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.common.check_config {
        return match effective_toml(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("meshwatch-simulator: {error}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(error) = init_tracing(&config.log) {
        eprintln!("meshwatch-simulator: {error}");
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
    let code = runtime.block_on(async move {
        let shutdown = Shutdown::new(Readiness::new());
        if let Err(error) = shutdown.listen_for_signals() {
            tracing::error!(%error, "cannot install signal handlers");
            return 1;
        }
        let grace = config.shutdown.grace;
        if let Err(error) = meshwatch_simulator::run(config, &shutdown).await {
            tracing::error!(%error, "simulator failed to start");
            return 1;
        }
        shutdown.wait(grace).await.exit_code()
    });
    // Tasks that outlived the grace period must not hold the exit.
    runtime.shutdown_background();
    ExitCode::from(code)
}
