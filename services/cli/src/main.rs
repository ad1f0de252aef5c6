//! `meshwatch`: the command-line entry point (ARCHITECTURE.md §2, services/cli).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Meshwatch: anomalies and forecasts from the OpenTelemetry traces a microservice system emits.
#[derive(Debug, Parser)]
#[command(name = "meshwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest, detector, forecaster and aggregator in one process (in-process bus and SQLite by
    /// default, or NATS and ClickHouse).
    Run(RunArgs),
    /// The all-in-one driven by the simulator with a few faults, then a report of what was found.
    Demo(meshwatch_cli::demo::DemoArgs),
    /// Build graph snapshots from OTLP trace files, with the ingest's own graph code.
    Snapshot(meshwatch_cli::snapshot::SnapshotArgs),
    /// Benchmarks of the hot paths.
    #[command(subcommand)]
    Bench(meshwatch_cli::bench::BenchCommand),
    /// Fault-injection workload simulator: OTLP traces, metrics and fault labels.
    Simulate(meshwatch_cli::simulate::SimulateArgs),
    /// OTLP load generator: spans/s accepted, latency and refusals of an endpoint.
    Loadgen(meshwatch_cli::loadgen::LoadgenArgs),
    /// Training datasets: encoded tensors from traces, with labels.
    #[command(subcommand)]
    Dataset(meshwatch_cli::dataset::DatasetCommand),
    /// Send OTLP trace files to an endpoint, keeping their timing (time-compressed, rebased).
    Replay(meshwatch_cli::replay::ReplayArgs),
    /// Model artifacts: check one against this build and replay its parity vectors.
    #[command(subcommand)]
    Model(meshwatch_cli::model::ModelCommand),
    /// Apply the ClickHouse schema (versioned migrations, then TTLs), as the aggregator does.
    Migrate(meshwatch_cli::migrate::MigrateArgs),
}

/// Arguments of `meshwatch run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: meshwatch_runtime::CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            return meshwatch_runtime::service::main(
                "meshwatch run",
                &args.common,
                meshwatch_runtime::service::Leftover::Abandon,
                meshwatch_cli::run::start,
            );
        }
        Command::Demo(args) => meshwatch_cli::demo::run(&args).map(|_| ()),
        Command::Snapshot(args) => meshwatch_cli::snapshot::run(&args).map(|_| ()),
        Command::Bench(cmd) => meshwatch_cli::bench::run(&cmd),
        Command::Simulate(args) => meshwatch_cli::simulate::run(&args).map(|_| ()),
        Command::Loadgen(args) => meshwatch_cli::loadgen::run(&args).map(|_| ()),
        Command::Dataset(cmd) => meshwatch_cli::dataset::run(&cmd),
        Command::Replay(args) => meshwatch_cli::replay::run(&args).map(|_| ()),
        Command::Model(cmd) => meshwatch_cli::model::run(&cmd),
        Command::Migrate(args) => meshwatch_cli::migrate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "meshwatch: error: {}",
                meshwatch_cli::describe_error(&error)
            );
            ExitCode::FAILURE
        }
    }
}
