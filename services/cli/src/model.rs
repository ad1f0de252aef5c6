//! `meshwatch model`: model artifacts (`docs/model-artifacts.md`).
//!
//! `meshwatch model check DIR` loads an artifact as a service does (manifest against this
//! build's feature schema, sha256 of the model file, ONNX Runtime session against the
//! manifest) and replays its parity vectors, one line per case and output.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use meshwatch_model::{LoadOptions, Model, parity};

/// The `meshwatch model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Load an artifact (manifest, sha256, ONNX session) and replay its parity vectors; exits
    /// non-zero on any failure.
    Check(CheckArgs),
}

/// Arguments of `meshwatch model check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The artifact directory (`models/<name>`: manifest.json, model.onnx, parity vectors).
    pub dir: PathBuf,
    /// Check this variant of the manifest (e.g. int8) instead of model.onnx.
    #[arg(long)]
    pub variant: Option<String>,
    /// The ONNX Runtime library (default: $ORT_DYLIB_PATH; scripts/install-ort.sh prints one).
    #[arg(long, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
}

/// Runs a `meshwatch model` subcommand.
pub fn run(command: &ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Check(args) => check(args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let options = LoadOptions {
        library: args.ort_library.clone(),
        variant: args.variant.clone(),
        ..LoadOptions::default()
    };
    let model = Model::load(&args.dir, &options)
        .with_context(|| format!("loading model artifact {}", args.dir.display()))?;
    let manifest = model.manifest();
    println!(
        "{}: {} {:?}, feature schema v{}, T={}{}, {} (sha256 ok), session ok ({})",
        args.dir.display(),
        model.kind(),
        manifest.name,
        manifest.feature_schema_version,
        manifest.steps,
        manifest
            .horizon
            .map(|h| format!(", H={h}"))
            .unwrap_or_default(),
        model.file().display(),
        model.execution_provider().name(),
    );
    let report = parity::run_cases(&model, &args.dir)
        .with_context(|| format!("replaying the parity vectors of {}", args.dir.display()))?;
    for (case, output) in report.outputs() {
        println!(
            "{} case {} output {}: max abs error {:.3e} (atol {:e}, rtol {:e}), {} of {} elements beyond tolerance",
            if output.failed == 0 { "ok  " } else { "FAIL" },
            case.name,
            output.name,
            output.max_abs_error,
            report.atol,
            report.rtol,
            output.failed,
            output.elements,
        );
    }
    report.check()?;
    println!(
        "ok: {} cases of {} within tolerance (max abs error {:.3e})",
        report.cases.len(),
        report.file.display(),
        report.max_abs_error()
    );
    Ok(())
}
