//! `meshwatch-detector`: parse flags, load config, init telemetry, run, exit code.

use std::process::ExitCode;

use clap::Parser;
use meshwatch_inference::Detector;
use meshwatch_runtime::CommonArgs;
use meshwatch_runtime::service::{self, Leftover};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Meshwatch detector: anomaly scores per service and window (GCN + Transformer, ONNX Runtime), over NATS JetStream and gRPC.
#[derive(Debug, Parser)]
#[command(name = "meshwatch-detector", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    service::main(
        "meshwatch-detector",
        &cli.common,
        Leftover::Abandon,
        meshwatch_inference::run::<Detector>,
    )
}
