//! `meshwatch-aggregator`: parse flags, load config, init telemetry, run, exit code.

use std::process::ExitCode;

use clap::Parser;
use meshwatch_runtime::CommonArgs;
use meshwatch_runtime::service::{self, Leftover};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Meshwatch aggregator: snapshots, scores and forecasts from NATS JetStream into ClickHouse (or
/// SQLite), with adaptive thresholds, incidents and ranked root causes.
#[derive(Debug, Parser)]
#[command(name = "meshwatch-aggregator", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    service::main(
        "meshwatch-aggregator",
        &cli.common,
        Leftover::Abandon,
        meshwatch_aggregator::run,
    )
}
