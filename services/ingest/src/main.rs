//! `meshwatch-ingest`: parse flags, load config, init telemetry, run, exit code.

use std::process::ExitCode;

use clap::Parser;
use meshwatch_ingest::IngestConfig;
use meshwatch_runtime::{CommonArgs, Readiness, Shutdown, effective_toml, init_tracing, load};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Meshwatch ingest: OTLP traces in, service-graph snapshots out on NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "meshwatch-ingest", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: IngestConfig = match load(&cli.common) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("meshwatch-ingest: {error}");
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
                eprintln!("meshwatch-ingest: {error}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(error) = init_tracing(&config.log) {
        eprintln!("meshwatch-ingest: {error}");
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
    runtime.block_on(async move {
        let shutdown = Shutdown::new(Readiness::new());
        if let Err(error) = shutdown.listen_for_signals() {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
        let grace = config.shutdown.grace;
        if let Err(error) = meshwatch_ingest::run(config, &shutdown).await {
            tracing::error!(%error, "ingest failed to start");
            return ExitCode::FAILURE;
        }
        let report = shutdown.wait(grace).await;
        ExitCode::from(report.exit_code())
    })
}
