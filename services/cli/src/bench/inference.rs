//! `meshwatch bench inference`: latency of a model artifact per graph size, through the Rust
//! service path, directly through ONNX Runtime, and in PyTorch eager on the same inputs (issue
//! 5; `docs/benchmarks.md` records the results and the machine).
//!
//! For each N of `--nodes`, a deterministic synthetic graph ([`input`]) of N nodes and
//! E = `--edges-per-node` · N edges over the manifest's T windows is run, after `--warmup`
//! untimed runs, `--iterations` times (or for `--min-time`), three ways:
//!
//! - *service*: [`Server::infer`] (queue, batching worker with a wait of 0, validation, one
//!   session on a blocking thread, the reply), one request at a time; the copy of the inputs a
//!   request takes is made before its clock starts;
//! - *`Model::run`*: the same loaded model run directly (validation and ONNX Runtime only);
//! - *PyTorch eager*: `python -m meshwatch_training latency` on the same inputs written to an
//!   `.npz`, with the same number of threads ([`torch`]); `--torch auto` reports "n/a" and why
//!   when no interpreter can, `--torch on` fails instead.
//!
//! `--throughput` measures graphs per second instead ([`throughput`]). Percentiles are
//! nearest-rank (the ⌈p·n/100⌉-th of n sorted times), on both sides.

pub mod input;
pub mod throughput;
pub mod torch;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use meshwatch_model::{
    ExecutionProvider, LoadOptions, Manifest, ModelInfo, ModelKind, Server, ServingOptions,
};
use serde::Serialize;

use input::{GraphSpec, synthetic_inputs, write_npz};
use torch::{Runs, Torch, TorchTiming};

/// Arguments of `meshwatch bench inference`.
#[derive(Debug, Clone, Args)]
pub struct InferenceBenchArgs {
    /// The model artifact directory (models/detector, models/forecaster).
    #[arg(long)]
    pub model: PathBuf,
    /// Graph sizes N (nodes), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub nodes: Vec<usize>,
    /// Callees per node: E = edges-per-node · N.
    #[arg(long, default_value_t = 2)]
    pub edges_per_node: usize,
    /// Execution provider to ask for (the one really in use is printed).
    #[arg(long, value_enum, default_value = "cpu")]
    pub provider: ProviderChoice,
    /// CUDA device ordinal (with --provider cuda).
    #[arg(long, default_value_t = 0)]
    pub device_id: i32,
    /// With --provider cuda: run on the CPU when CUDA cannot be used instead of failing.
    #[arg(long)]
    pub fallback_to_cpu: bool,
    /// Intra-op threads of ONNX Runtime and of PyTorch.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Untimed runs before each measurement.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Timed runs per measurement.
    #[arg(long, default_value_t = 50, conflicts_with = "min_time")]
    pub iterations: usize,
    /// Time each measurement for this long instead (at least 3 runs).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub min_time: Option<Duration>,
    /// The PyTorch eager column: auto (when an interpreter can), on (required), off.
    #[arg(long, value_enum, default_value = "auto")]
    pub torch: TorchChoice,
    /// The Python interpreter with torch (default: MESHWATCH_TRAINING_PYTHON, MESHWATCH_PYTHON,
    /// then $MESHWATCH_CACHE/venv-training/bin/python).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Measure graphs per second with many small requests in flight, batching off and on,
    /// instead of the latency table.
    #[arg(long)]
    pub throughput: bool,
    /// Nodes per request of --throughput.
    #[arg(long, default_value_t = 20)]
    pub throughput_nodes: usize,
    /// Requests in flight of --throughput.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Measuring time per batching mode of --throughput.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub throughput_time: Duration,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// The ONNX Runtime library (default: $ORT_DYLIB_PATH; scripts/install-ort.sh prints one).
    #[arg(long, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
    /// Seed of the synthetic graphs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Diagnosis: write ONNX Runtime's per-node profile (Chrome trace JSON: each node's time
    /// and execution provider) to `<PREFIX>_0_<time>.json`. It slows every run down: the
    /// latency table of a profiled run is not a measurement.
    #[arg(long, value_name = "PREFIX")]
    pub ort_profile: Option<PathBuf>,
}

/// `--provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderChoice {
    Cpu,
    Cuda,
}

/// `--torch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TorchChoice {
    Auto,
    On,
    Off,
}

/// Percentiles of one measurement, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub runs: usize,
}

impl Timing {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort_unstable();
        let total: Duration = times.iter().sum();
        #[allow(clippy::cast_precision_loss)] // run counts far below 2^52
        let mean_ms = total.as_secs_f64() * 1e3 / times.len().max(1) as f64;
        Self {
            p50_ms: percentile_ms(&times, 50.0),
            p99_ms: percentile_ms(&times, 99.0),
            mean_ms,
            runs: times.len(),
        }
    }
}

/// Nearest-rank percentile `p` of ascending `sorted` times, ms (NaN when empty).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // a rank between 1 and the (small) run count
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// One graph size.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    pub nodes: usize,
    pub edges: usize,
    pub service: Timing,
    pub model_run: Timing,
    pub torch: Option<TorchTiming>,
    /// Why the PyTorch column is empty.
    pub torch_missing: Option<String>,
    /// PyTorch p50 / service p50.
    pub speedup: Option<f64>,
}

/// The machine the benchmark ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    /// The NVIDIA GPUs the driver lists (`/proc/driver/nvidia/gpus/*/information`), by model.
    pub gpus: Vec<String>,
}

impl Machine {
    /// The CPU model (`/proc/cpuinfo`), the cores this process may use, and the GPUs.
    pub fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let gpus = nvidia_gpus(std::path::Path::new("/proc/driver/nvidia/gpus"));
        Self { cpu, cores, gpus }
    }

    /// `AMD EPYC, 2 cores` or `Intel Xeon, 16 cores; GPU: NVIDIA H200`.
    pub fn describe(&self) -> String {
        let mut text = format!("{}, {} cores", self.cpu, self.cores);
        if !self.gpus.is_empty() {
            text.push_str("; GPU: ");
            text.push_str(&self.gpus.join(", "));
        }
        text
    }
}

/// The `Model:` of each GPU folder under `root` (the NVIDIA driver's procfs), in bus order;
/// empty without the driver.
fn nvidia_gpus(root: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join("information")).ok())
        .filter_map(|info| gpu_model(&info))
        .collect()
}

/// The value of the `Model:` line of a driver `information` file.
fn gpu_model(information: &str) -> Option<String> {
    information
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(key, _)| key.trim() == "Model")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|model| !model.is_empty())
}

/// Everything `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub version: String,
    pub kind: String,
    pub steps: usize,
    pub provider_requested: &'static str,
    pub provider: &'static str,
    pub threads: usize,
    pub machine: Machine,
    pub torch: Option<String>,
    pub latency: Vec<LatencyRow>,
    pub throughput: Vec<throughput::ThroughputRow>,
}

/// Runs the benchmark, prints Markdown to stdout and, with `--json`, writes the report.
pub fn run(args: &InferenceBenchArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let report = run_to(args, &mut stdout)?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn serving_options(args: &InferenceBenchArgs) -> ServingOptions {
    let execution_provider = match args.provider {
        ProviderChoice::Cpu => ExecutionProvider::Cpu,
        ProviderChoice::Cuda => ExecutionProvider::Cuda {
            device_id: args.device_id,
            memory_limit_bytes: None,
        },
    };
    ServingOptions {
        load: LoadOptions {
            library: args.ort_library.clone(),
            kind: None,
            execution_provider,
            fallback_to_cpu: args.fallback_to_cpu,
            intra_threads: args.threads,
            sessions: 1,
            variant: None,
            profile: args.ort_profile.clone(),
        },
        max_batch_wait: Duration::ZERO,
        // a run of 10,000 nodes on one CPU thread takes seconds: never give up on a session
        session_wait: Duration::from_secs(600),
        ..ServingOptions::default()
    }
}

/// [`run`], printing to `out`; returns the report.
pub fn run_to(args: &InferenceBenchArgs, out: &mut dyn Write) -> anyhow::Result<Report> {
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    anyhow::ensure!(args.iterations >= 1, "--iterations must be at least 1");
    let manifest = Manifest::load(&args.model)
        .with_context(|| format!("reading the manifest of {}", args.model.display()))?;
    let kind = manifest.model_kind()?;
    let options = serving_options(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .context("cannot start the async runtime")?;
    let machine = Machine::this();
    let torch = match args.torch {
        TorchChoice::Off => Err("--torch off".to_owned()),
        TorchChoice::Auto | TorchChoice::On => torch::find(args.python.as_deref(), &args.model),
    };
    if let (TorchChoice::On, Err(reason)) = (args.torch, &torch) {
        anyhow::bail!("--torch on: no Python interpreter with torch: {reason}");
    }

    let server = runtime
        .block_on(Server::start(args.model.clone(), kind, options.clone()))
        .with_context(|| format!("loading model artifact {}", args.model.display()))?;
    let info = server.info();
    let mut report = Report {
        model: info.name.clone(),
        version: info.version.clone(),
        kind: kind.as_str().to_owned(),
        steps: info.steps,
        provider_requested: options.load.execution_provider.name(),
        provider: info.execution_provider.name(),
        threads: args.threads,
        machine,
        torch: torch.as_ref().ok().map(|t| t.version.clone()),
        latency: Vec::new(),
        throughput: Vec::new(),
    };
    writeln!(
        out,
        "model {} (version {}), {}, T = {}{}; execution provider: {} (asked for {})",
        info.name,
        info.version,
        kind,
        info.steps,
        info.horizon
            .map(|h| format!(", H = {h}"))
            .unwrap_or_default(),
        report.provider,
        report.provider_requested,
    )?;
    writeln!(
        out,
        "machine: {}; {} intra-op thread(s)",
        report.machine.describe(),
        args.threads
    )?;

    if args.throughput {
        runtime.block_on(server.close());
        report.throughput = runtime.block_on(run_throughput(args, kind, &info, &options, out))?;
        return Ok(report);
    }

    let runs = args
        .min_time
        .map_or(Runs::Count(args.iterations), Runs::MinTime);
    match &torch {
        Ok(t) => writeln!(
            out,
            "PyTorch eager: torch {} ({})",
            t.version,
            t.python.display()
        )?,
        Err(reason) => writeln!(out, "PyTorch eager: n/a ({reason})")?,
    }
    let plan = match runs {
        Runs::Count(n) => format!("{n} timed runs"),
        Runs::MinTime(t) => format!("timed runs for {}", humantime::format_duration(t)),
    };
    writeln!(
        out,
        "{} warm-up runs, then {plan} per cell; E = {} · N; p50/p99 nearest-rank\n",
        args.warmup, args.edges_per_node
    )?;
    writeln!(
        out,
        "| N | E | service p50 | service p99 | Model::run p50 | Model::run p99 | PyTorch p50 | PyTorch p99 | service vs PyTorch (p50) | runs |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let device = match info.execution_provider {
        ExecutionProvider::Cpu => "cpu".to_owned(),
        ExecutionProvider::Cuda { device_id, .. } => format!("cuda:{device_id}"),
    };
    let mut weights_notes = Vec::new();
    for &nodes in &args.nodes {
        let spec = GraphSpec {
            steps: info.steps,
            nodes,
            edges_per_node: args.edges_per_node,
            seed: args.seed,
            window_start: window_start(kind, &info),
        };
        let row = measure_size(
            args,
            &runtime,
            &server,
            &spec,
            torch.as_ref(),
            scratch.path(),
            &device,
        )?;
        if let Some(t) = &row.torch {
            let note = format!("weights {} ({})", t.weights, t.weights_note);
            if !weights_notes.contains(&note) {
                weights_notes.push(note);
            }
        }
        print_row(out, &row)?;
        report.latency.push(row);
    }
    writeln!(out)?;
    for note in &weights_notes {
        writeln!(out, "PyTorch {note}")?;
    }
    if torch.is_ok() {
        for row in &report.latency {
            if let Some(reason) = &row.torch_missing {
                writeln!(out, "PyTorch at N = {}: n/a ({reason})", row.nodes)?;
            }
        }
    }
    let resident: Vec<String> = report
        .latency
        .iter()
        .filter_map(|row| {
            let t = row.torch.as_ref()?;
            Some(format!(
                "N = {}: p50 {}, p99 {}",
                row.nodes,
                ms(t.resident_p50_ms?),
                ms(t.resident_p99_ms?)
            ))
        })
        .collect();
    if !resident.is_empty() {
        writeln!(
            out,
            "PyTorch with its inputs already on the device and the outputs left there (the \
             columns above include the copies, as the service's runs do): {}",
            resident.join("; ")
        )?;
    }
    runtime.block_on(server.close());
    Ok(report)
}

/// `window_start` of the forecaster: T consecutive windows from 2025-01-06T00:00:00Z.
fn window_start(kind: ModelKind, info: &ModelInfo) -> Option<(i64, i64)> {
    let window_s = i64::try_from(info.window_ms / 1000).unwrap_or(1).max(1);
    (kind == ModelKind::Forecaster).then_some((1_736_121_600, window_s))
}

/// Repeats `f` (one run, returning its own duration) after `warmup` untimed runs.
fn repeat(
    warmup: usize,
    runs: Runs,
    mut f: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Timing> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    loop {
        times.push(f()?);
        let done = match runs {
            Runs::Count(n) => times.len() >= n,
            Runs::MinTime(t) => started.elapsed() >= t && times.len() >= 3,
        };
        if done {
            return Ok(Timing::of(times));
        }
    }
}

fn measure_size(
    args: &InferenceBenchArgs,
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    spec: &GraphSpec,
    torch: Result<&Torch, &String>,
    scratch: &Path,
    device: &str,
) -> anyhow::Result<LatencyRow> {
    let runs = args
        .min_time
        .map_or(Runs::Count(args.iterations), Runs::MinTime);
    let inputs = synthetic_inputs(spec);
    let edges = inputs.edge_index.shape()[1];
    let service = repeat(args.warmup, runs, || {
        let request = inputs.clone();
        let started = Instant::now();
        runtime
            .block_on(server.infer(request))
            .with_context(|| format!("service path, N = {}", spec.nodes))?;
        Ok(started.elapsed())
    })?;
    let model = server.model();
    let model_run = repeat(args.warmup, runs, || {
        let started = Instant::now();
        model
            .run(&inputs)
            .with_context(|| format!("Model::run, N = {}", spec.nodes))?;
        Ok(started.elapsed())
    })?;
    let (torch, torch_missing) = match torch {
        Err(reason) => (None, Some(reason.clone())),
        Ok(torch) => {
            let path = scratch.join(format!("inputs-n{}.npz", spec.nodes));
            write_npz(&inputs, &path)?;
            let result = torch.latency(&args.model, &path, args.threads, args.warmup, runs, device);
            // the inputs of large graphs take tens of MB
            let _gone = std::fs::remove_file(&path);
            match result {
                Ok(timing) => (Some(timing), None),
                Err(error) if args.torch == TorchChoice::On => return Err(error),
                Err(error) => (None, Some(crate::describe_error(&error))),
            }
        }
    };
    let speedup = torch.as_ref().map(|t| t.p50_ms / service.p50_ms);
    Ok(LatencyRow {
        nodes: spec.nodes,
        edges,
        service,
        model_run,
        torch,
        torch_missing,
        speedup,
    })
}

/// `1.23 ms`, `45.6 ms`, `789 ms`.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn print_row(out: &mut dyn Write, row: &LatencyRow) -> anyhow::Result<()> {
    let (tp50, tp99, truns) = match &row.torch {
        Some(t) => (ms(t.p50_ms), ms(t.p99_ms), t.runs.to_string()),
        None => ("n/a".to_owned(), "n/a".to_owned(), "-".to_owned()),
    };
    writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
        row.nodes,
        row.edges,
        ms(row.service.p50_ms),
        ms(row.service.p99_ms),
        ms(row.model_run.p50_ms),
        ms(row.model_run.p99_ms),
        tp50,
        tp99,
        row.speedup
            .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.2}×")),
        row.service.runs,
        row.model_run.runs,
        truns,
    )?;
    Ok(())
}

async fn run_throughput(
    args: &InferenceBenchArgs,
    kind: ModelKind,
    info: &ModelInfo,
    options: &ServingOptions,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<throughput::ThroughputRow>> {
    let load = throughput::Load {
        steps: info.steps,
        nodes: args.throughput_nodes,
        edges_per_node: args.edges_per_node,
        window_start: window_start(kind, info),
        concurrency: args.concurrency,
        duration: args.throughput_time,
        seed: args.seed,
    };
    writeln!(
        out,
        "throughput: {} requests in flight, N = {} per request (E = {} · N), {} per mode, 1 session\n",
        load.concurrency,
        load.nodes,
        load.edges_per_node,
        humantime::format_duration(load.duration)
    )?;
    writeln!(
        out,
        "| batching | max wait | max nodes | graphs/s | graphs per run (mean) | request p50 | request p99 | errors |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut rows = Vec::new();
    for mode in throughput::MODES {
        let row = throughput::measure(&args.model, kind, options, mode, load).await?;
        writeln!(
            out,
            "| {} | {} ms | {} | {:.0} | {:.2} | {} | {} | {} |",
            row.mode,
            row.max_batch_wait_ms,
            row.max_batch_nodes,
            row.graphs_per_s,
            row.mean_batch_graphs,
            ms(row.p50_ms),
            ms(row.p99_ms),
            row.errors
        )?;
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
