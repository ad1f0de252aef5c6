//! Tests of `meshwatch bench inference`: argument parsing, percentiles, and end-to-end runs
//! on the committed models (they need `ORT_DYLIB_PATH`; without it they fail, never skip).

use clap::Parser;
use meshwatch_testkit::models::{artifact, ort_library};

use super::*;
use crate::bench::BenchCommand;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn parse(args: &[&str]) -> anyhow::Result<InferenceBenchArgs> {
    let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))?;
    match cli.command {
        BenchCommand::Inference(args) => Ok(args),
        other => anyhow::bail!("parsed {other:?}"),
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert!((percentile_ms(&times, 50.0) - 50.0).abs() < 1e-9);
    assert!((percentile_ms(&times, 99.0) - 99.0).abs() < 1e-9);
    let two = [Duration::from_millis(1), Duration::from_millis(2)];
    assert!((percentile_ms(&two, 50.0) - 1.0).abs() < 1e-9);
    assert!((percentile_ms(&two, 99.0) - 2.0).abs() < 1e-9);
    assert!(percentile_ms(&[], 50.0).is_nan());
}

#[test]
fn iterations_and_min_time_exclude_each_other() {
    let args = [
        "inference",
        "--model",
        "m",
        "--iterations",
        "3",
        "--min-time",
        "1s",
    ];
    assert!(parse(&args).is_err());
}

#[test]
fn the_detector_runs_end_to_end_on_ten_nodes() -> anyhow::Result<()> {
    let library = ort_library()?;
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("report.json");
    let model = artifact("detector");
    let mut args = parse(&[
        "inference",
        "--model",
        &model.to_string_lossy(),
        "--nodes",
        "10",
        "--iterations",
        "2",
        "--warmup",
        "1",
        "--torch",
        "off",
        "--json",
        &json.to_string_lossy(),
    ])?;
    args.ort_library = Some(library);
    let mut out = Vec::new();
    let report = run_to(&args, &mut out)?;
    let text = String::from_utf8(out)?;
    assert!(
        text.contains("execution provider: cpu (asked for cpu)"),
        "{text}"
    );
    assert!(text.contains("PyTorch eager: n/a (--torch off)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("| 10 |"))
        .with_context(|| format!("no row for N = 10: {text}"))?;
    assert!(row.starts_with("| 10 | 20 | "), "{row}");
    assert!(row.ends_with("| 2 / 2 / - |"), "{row}");
    assert_eq!(report.latency.len(), 1);
    let r = &report.latency[0];
    assert_eq!(
        (r.nodes, r.edges, r.service.runs, r.model_run.runs),
        (10, 20, 2, 2)
    );
    assert!(r.service.p50_ms > 0.0 && r.service.p50_ms <= r.service.p99_ms);
    assert!(r.torch.is_none() && r.speedup.is_none());
    // run() writes the same report as JSON
    run(&args)?;
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    assert_eq!(written["latency"][0]["edges"], 20);
    assert_eq!(written["provider"], "cpu");
    Ok(())
}

#[test]
fn throughput_counts_graphs_per_run() -> anyhow::Result<()> {
    // the forecaster: the batch histogram is per model, and the test above runs the detector
    let library = ort_library()?;
    let model = artifact("forecaster");
    let mut args = parse(&[
        "inference",
        "--model",
        &model.to_string_lossy(),
        "--throughput",
        "--throughput-nodes",
        "5",
        "--concurrency",
        "8",
        "--throughput-time",
        "300ms",
        "--torch",
        "off",
    ])?;
    args.ort_library = Some(library);
    let mut out = Vec::new();
    let report = run_to(&args, &mut out)?;
    let text = String::from_utf8(out)?;
    assert_eq!(report.throughput.len(), throughput::MODES.len(), "{text}");
    let off = &report.throughput[0];
    assert!(off.graphs > 0 && off.errors == 0, "{off:?}");
    // one graph per run: the mean is exactly 1
    assert!((off.mean_batch_graphs - 1.0).abs() < 1e-9, "{off:?}");
    for row in &report.throughput {
        assert!(row.graphs > 0 && row.errors == 0, "{row:?}");
        assert!(row.mean_batch_graphs >= 1.0, "{row:?}");
    }
    assert!(report.latency.is_empty());
    Ok(())
}

/// The GPU line of a driver `information` file names the card; a machine without the driver
/// (or a folder without one) lists none.
#[test]
fn gpus_are_read_from_the_driver_information_files() -> anyhow::Result<()> {
    let info = "Model: \t\t NVIDIA H200\nIRQ:   \t\t 42\nGPU UUID: \t GPU-0\nBus Location: \t 0000:1b:00.0\n";
    assert_eq!(gpu_model(info).as_deref(), Some("NVIDIA H200"));
    assert_eq!(gpu_model("IRQ: 42\n"), None);
    assert_eq!(gpu_model("Model:   \n"), None);

    let root = tempfile::tempdir()?;
    assert!(nvidia_gpus(&root.path().join("absent")).is_empty());
    for (bus, model) in [
        ("0000:2a:00.0", "NVIDIA H100 80GB HBM3"),
        ("0000:1b:00.0", "NVIDIA H200"),
    ] {
        std::fs::create_dir(root.path().join(bus))?;
        std::fs::write(
            root.path().join(bus).join("information"),
            format!("Model: {model}\n"),
        )?;
    }
    std::fs::create_dir(root.path().join("0000:3c:00.0"))?; // no information file
    assert_eq!(
        nvidia_gpus(root.path()),
        ["NVIDIA H200", "NVIDIA H100 80GB HBM3"]
    );
    let machine = Machine {
        cpu: "Intel Xeon".to_owned(),
        cores: 16,
        gpus: vec!["NVIDIA H200".to_owned()],
    };
    assert_eq!(machine.describe(), "Intel Xeon, 16 cores; GPU: NVIDIA H200");
    Ok(())
}
