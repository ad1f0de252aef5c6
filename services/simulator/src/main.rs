//! `meshwatch-simulator`: parse flags, load config, init telemetry, run, exit code.

use std::process::ExitCode;

use clap::Parser;
use meshwatch_runtime::CommonArgs;
use meshwatch_runtime::service::{self, Leftover};

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
    service::main(
        "meshwatch-simulator",
        &cli.common,
        Leftover::Abandon,
        meshwatch_simulator::run,
    )
}
