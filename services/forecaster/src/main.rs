//! `meshwatch-forecaster`: parse flags, load config, init telemetry, run, exit code.

use std::process::ExitCode;

use clap::Parser;
use meshwatch_inference::Forecaster;
use meshwatch_runtime::CommonArgs;
use meshwatch_runtime::service::{self, Leftover};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Meshwatch forecaster: forecasts of service latency, traffic and errors (GCN + GRU, ONNX Runtime), over NATS JetStream and gRPC.
#[derive(Debug, Parser)]
#[command(name = "meshwatch-forecaster", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    service::main(
        "meshwatch-forecaster",
        &cli.common,
        Leftover::Abandon,
        meshwatch_inference::run::<Forecaster>,
    )
}
