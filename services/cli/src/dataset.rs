//! `meshwatch dataset`: training data in and out. `build` runs the ingest's graph code and the
//! feature encoder (`meshwatch_graph::features`) over trace files and writes the encoded
//! tensors (`docs/dataset-format.md`), so training reads exactly what the services compute.

use clap::Subcommand;

pub mod build;
pub mod import;
pub mod import_nezha;
pub mod import_zipkin;
pub mod npz;
pub mod shards;

/// The `dataset` subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Encode trace files into training tensors (`.npz` shards per graph, labels optional).
    Build(build::BuildArgs),
    /// Import a public data set or trace format (Nezha, Zipkin) as OTLP files and labels.
    Import(import::ImportArgs),
}

/// Runs a `dataset` subcommand.
pub fn run(command: &DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Build(args) => build::run(args).map(|_| ()),
        DatasetCommand::Import(args) => import::run(args),
    }
}
