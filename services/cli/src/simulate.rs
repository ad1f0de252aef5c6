//! `meshwatch simulate`: the fault-injection workload simulator (`meshwatch-simulator`'s core)
//! to files or to an OTLP endpoint (`docs/simulator.md`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use meshwatch_graph::labels::FaultLabel;
use meshwatch_simulator::driver::{self, EndpointOptions, Progress, ProgressFn};
use meshwatch_simulator::export::Protocol;
use meshwatch_simulator::faults::parse_faults;
use meshwatch_simulator::faults::random::RandomFaults;
use meshwatch_simulator::output::FileFormat;
use meshwatch_simulator::{SimStats, SimulationSettings, Simulator};
use tokio_util::sync::CancellationToken;

/// Default start of the simulated clock for files: 2025-01-06T08:00:00Z (a Monday, at the
/// mean of the default daily cycle), so that the same flags give the same files.
pub const DEFAULT_FILE_START: &str = "2025-01-06T08:00:00Z";

/// Arguments of `meshwatch simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Topology: onlineboutique, trainticket, sockshop, socialnetwork, or generated:N (10 to
    /// 10000 nodes).
    #[arg(long, default_value = "onlineboutique")]
    pub topology: String,
    /// Seed of every random draw; the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated time to run.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Mean user requests per second (all entry points; the daily cycle swings around it).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Faults: `TYPE:key=value,...` specs separated by `;`, or a TOML scenario file
    /// (`[[fault]]` tables). Repeatable.
    #[arg(long = "faults", value_name = "SPEC|FILE")]
    pub faults: Vec<String>,
    /// Number of random faults, spread over the run after a warm-up.
    #[arg(long, default_value_t = 0)]
    pub random_faults: u32,
    /// Length of each random fault.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub random_fault_duration: Duration,
    /// Write traces, metrics and labels into this folder.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "endpoint",
        required_unless_present = "endpoint"
    )]
    pub out: Option<PathBuf>,
    /// Encoding of the files.
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub format: FileFormat,
    /// Send to this OTLP endpoint instead (`http://host:4317` for gRPC, `:4318` for HTTP).
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// To an endpoint: simulated seconds per wall-clock second (1 real time, 60 an hour a
    /// minute, 0 unpaced).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// To an endpoint: append the fault labels to this file as faults begin.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Start of the simulated clock (RFC 3339). Default: 2025-01-06T08:00:00Z for files; for an
    /// endpoint, such that the run ends about now.
    #[arg(long)]
    pub start: Option<String>,
    /// Relative amplitude of the daily cycle (0 to <1).
    #[arg(long, default_value_t = 0.5)]
    pub daily_amplitude: f64,
    /// Hour of the day (UTC) of the peak.
    #[arg(long, default_value_t = 14.0)]
    pub daily_peak_hour: f64,
    /// Size of the random wander of the rates.
    #[arg(long, default_value_t = 0.1)]
    pub noise: f64,
    /// Interval of the CPU and memory samples.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub metrics_interval: Duration,
    /// Most spans per OTLP request.
    #[arg(long, default_value_t = 1000)]
    pub spans_per_request: usize,
    /// To an endpoint: requests in flight.
    #[arg(long, default_value_t = 4)]
    pub max_in_flight: usize,
    /// To an endpoint: timeout of one request.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// To an endpoint: further attempts of a refused or failed request.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
}

impl SimulateArgs {
    /// The simulation settings these flags describe.
    pub fn settings(&self) -> anyhow::Result<SimulationSettings> {
        let mut faults = Vec::new();
        for value in &self.faults {
            faults.extend(parse_faults(value)?);
        }
        Ok(SimulationSettings {
            topology: self.topology.parse()?,
            seed: self.seed,
            rate: self.rate,
            daily_amplitude: self.daily_amplitude,
            daily_peak_hour: self.daily_peak_hour,
            noise: self.noise,
            metrics_interval: self.metrics_interval,
            spans_per_request: self.spans_per_request,
            faults,
            random_faults: RandomFaults {
                count: self.random_faults,
                duration: self.random_fault_duration,
                ..RandomFaults::default()
            },
            ..SimulationSettings::default()
        })
    }

    fn start_ms(&self, default: &str) -> anyhow::Result<i64> {
        let text = self.start.as_deref().unwrap_or(default);
        let t = humantime::parse_rfc3339_weak(text).with_context(|| {
            format!("--start {text}: expected RFC 3339, e.g. {DEFAULT_FILE_START}")
        })?;
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .context("--start before 1970")?
            .as_millis();
        Ok(i64::try_from(ms)?)
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateReport {
    pub stats: SimStats,
    pub labels: Vec<FaultLabel>,
    /// Endpoint runs: what the endpoint accepted, refused, dropped.
    pub progress: Option<Progress>,
    pub elapsed: Duration,
}

/// Runs `meshwatch simulate` and prints a summary to stderr.
pub fn run(args: &SimulateArgs) -> anyhow::Result<SimulateReport> {
    if args.duration.is_zero() {
        bail!("--duration must be positive");
    }
    let settings = args.settings()?;
    let started = Instant::now();
    let report = match (&args.out, &args.endpoint) {
        (Some(dir), _) => {
            let start = args.start_ms(DEFAULT_FILE_START)?;
            let files = driver::run_to_files(&settings, start, args.duration, dir, args.format)?;
            SimulateReport {
                stats: files.stats,
                labels: files.labels,
                progress: None,
                elapsed: started.elapsed(),
            }
        }
        (None, Some(endpoint)) => to_endpoint(args, &settings, endpoint, started)?,
        (None, None) => bail!("give --out DIR or --endpoint URL"),
    };
    print_summary(args, &report);
    Ok(report)
}

fn to_endpoint(
    args: &SimulateArgs,
    settings: &SimulationSettings,
    endpoint: &str,
    started: Instant,
) -> anyhow::Result<SimulateReport> {
    if !(0.0..=10_000.0).contains(&args.speed) {
        bail!("--speed must be between 0 and 10000");
    }
    let start = match &args.start {
        Some(_) => args.start_ms(DEFAULT_FILE_START)?,
        None => driver::paced_start_ms(driver::now_ms(), Some(args.duration), args.speed),
    };
    let sim = Simulator::new(settings, start, Some(args.duration))?;
    let options = EndpointOptions {
        endpoint: endpoint.to_owned(),
        protocol: args.protocol,
        timeout: args.timeout,
        max_in_flight: args.max_in_flight.clamp(1, 256),
        queue_requests: 64,
        retries: args.retries.min(100),
        labels_path: args.labels.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let progress: ProgressFn = Box::new(|p: &Progress| {
        eprintln!(
            "meshwatch: simulated to {}: {} traces, {} spans accepted, {} refused, {} failed, {} dropped, {} ms behind",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(p.sim_clock_ms)
            ),
            p.traces,
            p.spans_accepted,
            p.refused,
            p.failed,
            p.spans_dropped,
            p.lag_ms
        );
    });
    let report = runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("meshwatch: interrupted, sending what has ended");
                on_signal.cancel();
            }
        });
        driver::run_to_endpoint(
            sim,
            args.speed,
            options,
            cancel,
            None,
            Some((Duration::from_secs(10), progress)),
        )
        .await
    })?;
    runtime.shutdown_background();
    Ok(SimulateReport {
        stats: report.stats,
        labels: report.labels,
        progress: Some(report.progress),
        elapsed: started.elapsed(),
    })
}

fn print_summary(args: &SimulateArgs, report: &SimulateReport) {
    let s = &report.stats;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "meshwatch: {} ({} simulated, seed {}): {} traces, {} spans ({} with errors), {} metric points, {:.0} spans/s generated",
        args.topology,
        humantime::format_duration(args.duration),
        args.seed,
        s.traces,
        s.spans,
        s.error_spans,
        s.metric_points,
        s.spans as f64 / secs
    );
    if let Some(p) = &report.progress {
        eprintln!(
            "meshwatch: endpoint accepted {} spans ({} rejected, {} dropped) and {} metric points; {} requests refused, {} failed",
            p.spans_accepted,
            p.spans_rejected,
            p.spans_dropped,
            p.points_accepted,
            p.refused,
            p.failed
        );
    }
    if let Some(dir) = &args.out {
        eprintln!("meshwatch: wrote {}", dir.display());
    }
    for l in &report.labels {
        eprintln!(
            "meshwatch: fault {} on {}{} from {} to {}",
            l.fault_type,
            l.root_cause,
            l.callee
                .as_deref()
                .map(|c| format!(" -> {c}"))
                .unwrap_or_default(),
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(l.start_ms).unwrap_or(0))
            ),
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(l.end_ms).unwrap_or(0))
            ),
        );
    }
}
