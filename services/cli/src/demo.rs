//! `meshwatch demo`: the all-in-one ([`crate::run`]) on loopback, driven by the fault-injection
//! simulator, then a report read back from what was stored: the incidents found (time,
//! services, top-3 root causes) beside the injected faults, detection and root-cause hit rates,
//! the forecast error, and where the results are and how to query them (`docs/demo.md`).
//!
//! The simulated clock starts at a fixed time (`--start`, 2025-01-06T08:00:00Z) and runs
//! unpaced by default (`--speed 0`), so 45 simulated minutes take well under a minute and the
//! same flags give the same report. The first 20 minutes are fault-free: the models
//! need T windows of history and the thresholds calibrate on the first 100 windows
//! (`aggregator.thresholds.calibration_windows`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use meshwatch_graph::labels::FaultLabel;
use meshwatch_runtime::{CommonArgs, Readiness, Shutdown};
use meshwatch_simulator::driver::{self, EndpointOptions, Progress, ProgressFn};
use meshwatch_simulator::export::Protocol;
use meshwatch_simulator::faults::parse_faults;
use meshwatch_simulator::{SimulationSettings, Simulator};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::run::{self, RunConfig};

/// The faults of the default demo (Online Boutique, 45 minutes): one of each kind of symptom —
/// slow, failing, saturated, and a slow network link — after 20 fault-free minutes.
pub const DEFAULT_FAULTS: &str = "latency:service=productcatalogservice,factor=8,start=20m,duration=4m;\
error_burst:service=paymentservice,rate=0.5,start=27m,duration=3m;\
cpu_contention:service=currencyservice,hog=0.8,start=33m,duration=4m;\
network_delay:service=frontend,callee=cartservice,delay=150ms,start=39m,duration=3m";

/// Windows after a fault's end in which an incident still counts as its detection.
const GRACE_WINDOWS: i64 = 2;
/// Fault-free traffic simulated after `--duration`: the drain at the end flushes the last,
/// partial windows (the traffic stops mid-window), whose drop in traffic the detector rightly
/// flags; they fall in this tail, which the report leaves out.
const TAIL: Duration = Duration::from_secs(30);

/// Arguments of `meshwatch demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Simulated system: onlineboutique (with the default faults), or any topology of
    /// `meshwatch simulate` with `--faults`.
    #[arg(long, default_value = "onlineboutique")]
    pub topology: String,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated time.
    #[arg(long, default_value = "45m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Mean user requests per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Faults (`meshwatch simulate` syntax); default: four faults of different kinds on Online
    /// Boutique from minute 20.
    #[arg(long = "faults", value_name = "SPEC|FILE")]
    pub faults: Vec<String>,
    /// Simulated seconds per wall-clock second (0: as fast as the pipeline takes it).
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Start of the simulated clock (RFC 3339). Fixed by default, so that the same flags give
    /// the same report (the daily traffic cycle depends on the time of day).
    #[arg(long, default_value = crate::simulate::DEFAULT_FILE_START)]
    pub start: String,
    /// Folder of the results (the SQLite file `meshwatch.db`, the labels, `report.json`);
    /// default `$MESHWATCH_CACHE/demo` (`~/.cache/meshwatch/demo`). Its previous results are
    /// replaced.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Setting of `meshwatch run` (`--set aggregator.thresholds.risk=1e-4`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print progress every this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub progress: Duration,
}

/// One injected fault and what was found of it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultOutcome {
    pub fault_type: String,
    pub root_cause: String,
    pub callee: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Incidents overlapping the fault (or its next windows).
    pub incidents: Vec<String>,
    /// Whether any such incident exists.
    pub detected: bool,
    /// Best rank (1-based) of the root cause among those incidents' root causes.
    pub root_cause_rank: Option<usize>,
    /// From the fault's start to the opening (the first anomalous window) of the first
    /// overlapping incident, ms; 0 when that window began before the fault (the window holding
    /// the fault's start, or an anomaly just before it).
    pub delay_ms: Option<i64>,
    /// Opening of the first overlapping incident, unix ms.
    pub first_incident_at: Option<i64>,
}

/// One detected incident as stored.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentSummary {
    pub incident_id: String,
    pub status: String,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub severity: f64,
    pub services: Vec<String>,
    pub root_causes: Vec<String>,
    /// The faults it overlaps (empty: a false alarm).
    pub matches: Vec<String>,
}

/// Forecast error of one target at one horizon against what was then observed.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastError {
    pub metric: String,
    pub horizon: u32,
    pub points: u64,
    pub mae: f64,
    /// MAE of "the next window equals the last observed one" on the same points.
    pub last_value_mae: f64,
}

/// What `meshwatch demo` found (also written as `report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub topology: String,
    pub seed: u64,
    pub simulated_ms: u64,
    pub start_ms: i64,
    pub window_ms: u64,
    pub spans_accepted: u64,
    pub windows_scored: u64,
    pub faults: Vec<FaultOutcome>,
    pub incidents: Vec<IncidentSummary>,
    pub predicted_incidents: u64,
    pub detection_rate: f64,
    pub root_cause_top1_rate: f64,
    pub root_cause_top3_rate: f64,
    pub false_alarms: u64,
    pub forecast: Vec<ForecastError>,
    pub database: PathBuf,
    pub wall_ms: u64,
}

fn default_out() -> PathBuf {
    crate::cache_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("demo")
}

fn settings(args: &DemoArgs) -> anyhow::Result<SimulationSettings> {
    let mut faults = Vec::new();
    if args.faults.is_empty() {
        if args.topology != "onlineboutique" {
            bail!(
                "--topology {}: give the faults to inject with --faults (the default faults are \
                 for onlineboutique)",
                args.topology
            );
        }
        faults.extend(parse_faults(DEFAULT_FAULTS)?);
    } else {
        for value in &args.faults {
            faults.extend(parse_faults(value)?);
        }
    }
    Ok(SimulationSettings {
        topology: args.topology.parse()?,
        seed: args.seed,
        rate: args.rate,
        // One CPU/memory sample per 10 s window, as the windows are (the simulator's 15 s
        // default leaves every third window without one, which the detector reads as a change).
        metrics_interval: Duration::from_secs(10),
        faults,
        ..SimulationSettings::default()
    })
}

/// The configuration of the all-in-one for the demo: loopback, free ports, the SQLite file in
/// `db`, warnings only; `args.set` over it.
fn run_config(args: &DemoArgs, db: &Path) -> anyhow::Result<RunConfig> {
    let mut set: Vec<String> = [
        "ingest.otlp.grpc_listen=127.0.0.1:0",
        "ingest.otlp.http_enabled=false",
        "ingest.admin.listen=127.0.0.1:0",
        "detector.admin.listen=127.0.0.1:0",
        "forecaster.admin.listen=127.0.0.1:0",
        "detector.grpc.listen=127.0.0.1:0",
        "forecaster.grpc.listen=127.0.0.1:0",
        "aggregator.sink.kind=sqlite",
        "log.level=warn",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    set.push(format!("aggregator.sink.sqlite.path={}", db.display()));
    set.extend(args.set.iter().cloned());
    let common = CommonArgs {
        set,
        ..CommonArgs::default()
    };
    run::load(&common).map_err(|error| anyhow::anyhow!("{error}"))
}

fn remove_previous(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot remove {}", path.display()));
            }
        }
    }
    Ok(())
}

/// Runs `meshwatch demo`: prints progress and the report, writes `report.json`.
pub fn run(args: &DemoArgs) -> anyhow::Result<DemoReport> {
    if args.duration < Duration::from_secs(60) {
        bail!("--duration must be at least 1m");
    }
    if !(0.0..=10_000.0).contains(&args.speed) {
        bail!("--speed must be between 0 and 10000");
    }
    let out = args.out.clone().unwrap_or_else(default_out);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let db = out.join("meshwatch.db");
    remove_previous(&db)?;
    let labels_path = out.join("labels.jsonl");
    remove_previous(&labels_path)?;
    let config = run_config(args, &db)?;
    let window_ms = u64::try_from(config.ingest.graph.window.as_millis()).unwrap_or(u64::MAX);
    let grace = config.shutdown.grace;
    let settings = settings(args)?;
    // The simulation is checked (topology, faults) before anything starts.
    let start = humantime::parse_rfc3339_weak(&args.start)
        .with_context(|| format!("--start {}: expected RFC 3339", args.start))?;
    let start_ms = i64::try_from(
        start
            .duration_since(std::time::UNIX_EPOCH)
            .context("--start before 1970")?
            .as_millis(),
    )?;
    if start_ms > driver::now_ms() {
        bail!("--start {} is in the future", args.start);
    }
    let sim = Simulator::new(&settings, start_ms, Some(args.duration + TAIL))?;
    let faults = settings.faults.len();
    if let Err(error) = meshwatch_runtime::init_tracing(&config.log) {
        eprintln!("meshwatch: logging: {error}");
    }
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(drive(args, config, sim, faults, labels_path, grace));
    runtime.shutdown_background();
    let driven = outcome?;
    let until_ms = start_ms.saturating_add(i64::try_from(args.duration.as_millis())?);
    let mut report = analyse(&db, &driven.labels, window_ms, until_ms)?;
    report.topology = args.topology.clone();
    report.seed = args.seed;
    report.simulated_ms = u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX);
    report.start_ms = start_ms;
    report.spans_accepted = driven.spans_accepted;
    report.windows_scored = driven.windows_scored;
    report.wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let json = serde_json::to_string_pretty(&report)?;
    let json_path = out.join("report.json");
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    print!("{}", render(&report));
    println!("The report as JSON: {}", json_path.display());
    Ok(report)
}

/// What the drive left for the analysis.
struct Driven {
    labels: Vec<FaultLabel>,
    spans_accepted: u64,
    windows_scored: u64,
}

async fn drive(
    args: &DemoArgs,
    config: RunConfig,
    sim: Simulator,
    faults: usize,
    labels_path: PathBuf,
    grace: Duration,
) -> anyhow::Result<Driven> {
    let shutdown = Shutdown::new(Readiness::new());
    let running = run::start(config, &shutdown)
        .await
        .context("cannot start the all-in-one")?;
    let otlp = running
        .otlp_grpc
        .context("the OTLP/gRPC receiver is disabled")?;
    let stats = running
        .stats
        .clone()
        .context("the demo needs the in-process bus")?;
    eprintln!(
        "meshwatch demo: all-in-one up (OTLP {otlp}, metrics http://{}/metrics, {}); simulating {} of {} with {} fault(s)",
        running.admin,
        running.sink,
        humantime::format_duration(args.duration),
        args.topology,
        faults
    );
    let start_ms = i64::try_from(sim.now_ns() / 1_000_000).unwrap_or(i64::MAX);
    let options = EndpointOptions {
        endpoint: format!("http://{otlp}"),
        protocol: Protocol::Grpc,
        timeout: Duration::from_secs(30),
        // One request at a time, in order: with two in flight a span could arrive after its
        // window closed (late, refused), and a faster build refused a few hundred more than a
        // slower one. In order, the same flags give the same windows in any build.
        max_in_flight: 1,
        queue_requests: 64,
        retries: 20,
        labels_path: Some(labels_path),
    };
    let progress_stats = std::sync::Arc::clone(&stats);
    let total_ms = (args.duration + TAIL).as_millis();
    let progress: ProgressFn = Box::new(move |p: &Progress| {
        let done = u128::from(
            p.sim_clock_ms
                .saturating_sub(u64::try_from(start_ms).unwrap_or(0)),
        );
        eprintln!(
            "meshwatch demo: simulated {:>3}% ({} spans accepted, {} fault(s) begun), {} windows scored",
            (done * 100 / total_ms.max(1)).min(100),
            p.spans_accepted,
            p.faults,
            progress_stats
                .scored
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    });
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("meshwatch demo: interrupted; storing what was sent and reporting");
            on_signal.cancel();
        }
    });
    let sent = driver::run_to_endpoint(
        sim,
        args.speed,
        options,
        cancel,
        None,
        Some((args.progress, progress)),
    )
    .await;
    // The ingest flushes its open windows, the pipeline scores and stores them.
    shutdown.trigger("demo traffic sent");
    let drained = shutdown.wait(grace).await;
    let sent = sent.context("the simulator failed")?;
    if sent.progress.spans_dropped > 0 {
        eprintln!(
            "meshwatch demo: warning: {} spans were dropped by the simulator after retries",
            sent.progress.spans_dropped
        );
    }
    if !drained.is_clean() {
        bail!("the all-in-one did not drain cleanly: {drained:?}");
    }
    let windows_scored = stats.scored.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "meshwatch demo: done: {} spans accepted ({} refused: late or invalid), {} windows scored",
        sent.progress.spans_accepted, sent.progress.spans_rejected, windows_scored
    );
    Ok(Driven {
        labels: sent.labels,
        spans_accepted: sent.progress.spans_accepted,
        windows_scored,
    })
}

/// One incident row, parsed.
struct Incident {
    id: String,
    kind: String,
    status: String,
    opened_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
    severity: f64,
    services: Vec<String>,
    root_causes: Vec<String>,
}

#[derive(serde::Deserialize)]
struct RootCause {
    service: String,
}

fn read_incidents(connection: &rusqlite::Connection) -> anyhow::Result<Vec<Incident>> {
    let mut statement = connection.prepare(
        "SELECT incident_id, kind, status, opened_at, updated_at, resolved_at, severity, \
         services, root_causes FROM incidents ORDER BY opened_at, incident_id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<i64>>(5)?,
            row.get::<_, f64>(6)?,
            row.get::<_, String>(7)?,
            row.get::<_, String>(8)?,
        ))
    })?;
    let mut incidents = Vec::new();
    for row in rows {
        let (id, kind, status, opened_at, updated_at, resolved_at, severity, services, causes) =
            row?;
        let services: Vec<String> =
            serde_json::from_str(&services).context("incidents.services is not a JSON list")?;
        let causes: Vec<RootCause> = serde_json::from_str(&causes)
            .context("incidents.root_causes is not a JSON list of causes")?;
        incidents.push(Incident {
            id,
            kind,
            status,
            opened_at,
            updated_at,
            resolved_at,
            severity,
            services,
            root_causes: causes.into_iter().map(|c| c.service).collect(),
        });
    }
    Ok(incidents)
}

fn fault_name(label: &FaultLabel) -> String {
    match &label.callee {
        Some(callee) => format!("{} {}->{}", label.fault_type, label.root_cause, callee),
        None => format!("{} {}", label.fault_type, label.root_cause),
    }
}

/// Reads the stored results back and matches them with the injected faults; incidents opened
/// at or after `until_ms` (the tail) are left out.
pub fn analyse(
    db: &Path,
    labels: &[FaultLabel],
    window_ms: u64,
    until_ms: i64,
) -> anyhow::Result<DemoReport> {
    let connection = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", db.display()))?;
    let window = i64::try_from(window_ms).unwrap_or(i64::MAX);
    let all = read_incidents(&connection)?;
    let predicted_incidents = all.iter().filter(|i| i.kind == "predicted").count() as u64;
    let detected: Vec<&Incident> = all
        .iter()
        .filter(|i| i.kind == "detected" && i.opened_at < until_ms)
        .collect();
    // An incident still open at the end of the run lasts until its last update.
    let end_of = |i: &Incident| i.resolved_at.unwrap_or(i.updated_at).max(i.opened_at);
    let overlaps = |i: &Incident, l: &FaultLabel| {
        i.opened_at < l.end_ms + GRACE_WINDOWS * window && end_of(i) >= l.start_ms
    };
    let mut faults = Vec::new();
    for label in labels {
        let matching: Vec<&&Incident> = detected.iter().filter(|i| overlaps(i, label)).collect();
        let root_cause_rank = matching
            .iter()
            .filter_map(|i| i.root_causes.iter().position(|s| *s == label.root_cause))
            .min()
            .map(|p| p + 1);
        let first_incident_at = matching.iter().map(|i| i.opened_at).min();
        let delay_ms = first_incident_at.map(|t| (t - label.start_ms).max(0));
        faults.push(FaultOutcome {
            fault_type: label.fault_type.clone(),
            root_cause: label.root_cause.clone(),
            callee: label.callee.clone(),
            start_ms: label.start_ms,
            end_ms: label.end_ms,
            incidents: matching.iter().map(|i| i.id.clone()).collect(),
            detected: !matching.is_empty(),
            root_cause_rank,
            delay_ms,
            first_incident_at,
        });
    }
    let incidents: Vec<IncidentSummary> = detected
        .iter()
        .map(|i| IncidentSummary {
            incident_id: i.id.clone(),
            status: i.status.clone(),
            opened_at: i.opened_at,
            resolved_at: i.resolved_at,
            severity: i.severity,
            services: i.services.clone(),
            root_causes: i.root_causes.iter().take(3).cloned().collect(),
            matches: labels
                .iter()
                .filter(|l| overlaps(i, l))
                .map(fault_name)
                .collect(),
        })
        .collect();
    let n = faults.len().max(1) as f64;
    let rate =
        |f: &dyn Fn(&FaultOutcome) -> bool| faults.iter().filter(|o| f(o)).count() as f64 / n;
    let detection_rate = rate(&|o| o.detected);
    let root_cause_top1_rate = rate(&|o| o.root_cause_rank == Some(1));
    let root_cause_top3_rate = rate(&|o| o.root_cause_rank.is_some_and(|r| r <= 3));
    let false_alarms = incidents.iter().filter(|i| i.matches.is_empty()).count() as u64;
    let forecast = forecast_errors(&connection, window_ms)?;
    Ok(DemoReport {
        topology: String::new(),
        seed: 0,
        simulated_ms: 0,
        start_ms: 0,
        window_ms,
        spans_accepted: 0,
        windows_scored: 0,
        faults,
        incidents,
        predicted_incidents,
        detection_rate,
        root_cause_top1_rate,
        root_cause_top3_rate,
        false_alarms,
        forecast,
        database: db.to_path_buf(),
        wall_ms: 0,
    })
}

/// MAE per target and horizon of the stored forecasts against the windows then observed, with
/// the last-value baseline on the same points. Targets observed in `graph_nodes`: request rate,
/// p99 latency (of windows with requests) and error ratio.
fn forecast_errors(
    connection: &rusqlite::Connection,
    window_ms: u64,
) -> anyhow::Result<Vec<ForecastError>> {
    let seconds = (window_ms as f64 / 1000.0).max(1e-9);
    // The observation at the target window and at the issuing window (the last value known).
    let mut statement = connection.prepare(
        "SELECT f.metric, f.horizon, f.value, \
                t.requests, t.errors, t.latency_p99_ms, \
                l.requests, l.errors, l.latency_p99_ms \
         FROM forecasts f \
         JOIN graph_nodes t ON t.graph = f.graph AND t.service = f.service \
              AND t.window_start = f.target_time \
         JOIN graph_nodes l ON l.graph = f.graph AND l.service = f.service \
              AND l.window_start = f.issued_at \
         WHERE f.metric IN ('request_rate', 'latency_p99_ms', 'error_ratio')",
    )?;
    type Row = (String, u32, f64, i64, i64, f64, i64, i64, f64);
    let rows = statement.query_map([], |row| -> rusqlite::Result<Row> {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
        ))
    })?;
    let observed = |metric: &str, requests: i64, errors: i64, p99: f64| -> Option<f64> {
        match metric {
            "request_rate" => Some(requests as f64 / seconds),
            "latency_p99_ms" if requests > 0 => Some(p99),
            "error_ratio" if requests > 0 => Some(errors as f64 / requests as f64),
            _ => None,
        }
    };
    // (metric, horizon) → (points, |error| sum, |last-value error| sum)
    let mut sums: BTreeMap<(String, u32), (u64, f64, f64)> = BTreeMap::new();
    for row in rows {
        let (metric, horizon, value, tr, te, tp, lr, le, lp) = row?;
        let (Some(actual), Some(last)) =
            (observed(&metric, tr, te, tp), observed(&metric, lr, le, lp))
        else {
            continue;
        };
        let entry = sums.entry((metric, horizon)).or_default();
        entry.0 += 1;
        entry.1 += (value - actual).abs();
        entry.2 += (last - actual).abs();
    }
    Ok(sums
        .into_iter()
        .map(|((metric, horizon), (points, error, last))| ForecastError {
            metric,
            horizon,
            points,
            mae: error / points.max(1) as f64,
            last_value_mae: last / points.max(1) as f64,
        })
        .collect())
}

fn clock(start_ms: i64, t_ms: i64) -> String {
    let s = (t_ms - start_ms) / 1000;
    let sign = if s < 0 { "-" } else { "" };
    let s = s.abs();
    format!("{sign}{:02}:{:02}", s / 60, s % 60)
}

fn percent(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// The report as text.
pub fn render(report: &DemoReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let start = report.start_ms;
    let _ = writeln!(
        out,
        "\n== Meshwatch demo: {} (seed {}), {} simulated, {} s windows ==\n",
        report.topology,
        report.seed,
        humantime::format_duration(Duration::from_millis(report.simulated_ms)),
        report.window_ms / 1000
    );
    let _ = writeln!(
        out,
        "{} spans accepted, {} windows scored, in {:.1} s. Times are mm:ss from the start of the simulation.\n",
        report.spans_accepted,
        report.windows_scored,
        report.wall_ms as f64 / 1000.0
    );
    let _ = writeln!(out, "Injected faults:");
    for f in &report.faults {
        let target = match &f.callee {
            Some(callee) => format!("{} -> {}", f.root_cause, callee),
            None => f.root_cause.clone(),
        };
        let rank = match f.root_cause_rank {
            Some(rank) => format!("root cause ranked #{rank}"),
            None => "root cause NOT among the ranked candidates".to_owned(),
        };
        let found = match f.first_incident_at {
            Some(at) if f.detected => {
                format!("detected, incident from {}; {rank}", clock(start, at))
            }
            _ => "MISSED".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {}-{}  {:<15} {:<38} {found}",
            clock(start, f.start_ms),
            clock(start, f.end_ms),
            f.fault_type,
            target
        );
    }
    let _ = writeln!(out, "\nIncidents found ({}):", report.incidents.len());
    for i in &report.incidents {
        let until = i
            .resolved_at
            .map_or_else(|| "open ".to_owned(), |t| clock(start, t));
        let verdict = if i.matches.is_empty() {
            "no injected fault (false alarm)".to_owned()
        } else {
            format!("matches {}", i.matches.join(", "))
        };
        let _ = writeln!(
            out,
            "  {}-{}  severity {:>5.1}  top causes: {:<60} {verdict}",
            clock(start, i.opened_at),
            until,
            i.severity,
            i.root_causes.join(", "),
        );
        let _ = writeln!(
            out,
            "               services: {} (id {})",
            i.services.join(", "),
            i.incident_id
        );
    }
    let _ = writeln!(
        out,
        "\nDetection: {} of faults; root cause #1: {}, in the top 3: {}; false alarms: {}; predicted (forecast over an SLO): {}",
        percent(report.detection_rate),
        percent(report.root_cause_top1_rate),
        percent(report.root_cause_top3_rate),
        report.false_alarms,
        report.predicted_incidents
    );
    let _ = writeln!(
        out,
        "\nForecast error (MAE; last-value baseline in brackets):"
    );
    let last_horizon = report.forecast.iter().map(|f| f.horizon).max();
    for f in report
        .forecast
        .iter()
        .filter(|f| f.horizon == 1 || Some(f.horizon) == last_horizon)
    {
        let _ = writeln!(
            out,
            "  {:<15} {} window(s) ahead: {:>9.3} ({:.3}) over {} points",
            f.metric, f.horizon, f.mae, f.last_value_mae, f.points
        );
    }
    let db = report.database.display();
    let _ = writeln!(
        out,
        "\nResults are in the SQLite file {db} (tables graph_nodes, graph_edges, anomaly_scores, \
         incidents, forecasts; docs/store.md). For example:\n\
         \n  sqlite3 {db} \"SELECT datetime(opened_at/1000,'unixepoch'), status, services, root_causes FROM incidents WHERE kind='detected' ORDER BY opened_at\"\
         \n  sqlite3 {db} \"SELECT service, window_start, score, threshold FROM anomaly_scores WHERE is_anomaly ORDER BY window_start\"\
         \n  python3 -c \"import sqlite3; print(sqlite3.connect('{db}').execute('SELECT count(*) FROM forecasts').fetchone())\"\n"
    );
    out
}
