//! `meshwatch dataset import SOURCE`: public trace data sets and formats to the files the rest of
//! Meshwatch reads (OTLP trace and metric files, fault labels; `docs/datasets.md`).

use clap::{Args, Subcommand};

use super::{import_nezha, import_zipkin};

/// Arguments of `meshwatch dataset import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

/// What to import.
#[derive(Debug, Clone, Subcommand)]
pub enum ImportSource {
    /// A day of the Nezha fault-injection data set (span CSV, pod metric CSV, fault list) to
    /// OTLP traces and metrics and fault labels.
    Nezha(import_nezha::NezhaArgs),
    /// Zipkin v2 JSON span lists to OTLP traces.
    Zipkin(import_zipkin::ZipkinArgs),
}

/// Runs an import and prints its summary to stderr.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    match &args.source {
        ImportSource::Nezha(a) => eprint!("{}", import_nezha::run(a)?.render()),
        ImportSource::Zipkin(a) => eprint!("{}", import_zipkin::run(a)?.render()),
    }
    Ok(())
}
