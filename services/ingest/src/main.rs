//! `meshwatch-ingest`: parse flags, load config, init telemetry, run, exit code.

use std::process::ExitCode;

use clap::Parser;
use meshwatch_runtime::CommonArgs;
use meshwatch_runtime::service::{self, Leftover};

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
    service::main(
        "meshwatch-ingest",
        &cli.common,
        Leftover::Await,
        meshwatch_ingest::run,
    )
}
