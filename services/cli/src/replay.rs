//! `meshwatch replay --input PATH --endpoint URL`: sends the requests of an OTLP trace file (or
//! Zipkin JSON, converted) to an OTLP endpoint over gRPC or HTTP, keeping their relative
//! timing, compressed by `--speed`, and optionally rebasing every timestamp so the data ends
//! now (`docs/replay.md`).
//!
//! - Timing and rebasing: [`schedule`] (a request is due when the latest span in it has ended,
//!   in data time divided by the speed).
//! - Sending, retries, `Retry-After` / RetryInfo: [`send`]. One request is in flight at a time,
//!   in file order, so the endpoint sees the data in the order it was recorded; a refusal holds
//!   the replay back (backpressure) rather than reordering it.
//! - A reader thread decodes the file ahead into a bounded queue (64 requests): memory stays
//!   bounded whatever the file's size. With `--rebase-time` the file is read twice (first for
//!   its time range), so it cannot be stdin.
//! - Progress on stderr every `--progress` (requests, spans, spans/s, refusals, rejected spans,
//!   how far behind schedule), and a summary at the end. The command fails when a request could
//!   not be delivered.

pub mod schedule;
pub mod send;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use meshwatch_graph::span::ResourceKeys;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::input::{InputFormat, decode_request, next_record, open};
use schedule::{Pacer, Rebase};
use send::{Protocol, Sender, deliver};

/// Arguments of `meshwatch replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Trace file (`-` for stdin, without --rebase-time; gzip is detected).
    #[arg(long)]
    pub input: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub format: InputFormat,
    /// OTLP endpoint, `http://host:port` (gRPC: 4317; HTTP: 4318, `/v1/traces` is appended
    /// when no path is given).
    #[arg(long)]
    pub endpoint: String,
    /// Transport.
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Time compression: 60 replays an hour of data in a minute; 1 is real time; 0 sends as
    /// fast as the endpoint takes it.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Shift all timestamps: `now` (the data ends as the replay does; at speed 1 every request
    /// carries spans that end as it is sent), or an RFC 3339 time at which the data ends.
    #[arg(long, value_parser = parse_rebase)]
    pub rebase_time: Option<Rebase>,
    /// Round the rebase shift down to a multiple of this, so that windows dividing it hold the
    /// same spans as before (0s: no rounding).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub rebase_align: Duration,
    /// Longest time one request is retried before it counts as failed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_retry_time: Duration,
    /// Timeout of one attempt.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Progress line interval on stderr (0s: none).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub progress: Duration,
    /// For Zipkin input: span tags that become resource attributes naming the graph (repeat;
    /// default: k8s.cluster.name, deployment.environment.name).
    #[arg(long = "graph-key")]
    pub graph_keys: Vec<String>,
}

fn parse_rebase(s: &str) -> Result<Rebase, String> {
    if s.eq_ignore_ascii_case("now") {
        return Ok(Rebase::Now);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("expected `now` or an RFC 3339 time: {e}"))?;
    let ns = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "a time after 1970".to_owned())?
        .as_nanos();
    u64::try_from(ns)
        .map(Rebase::At)
        .map_err(|_| "time out of range".to_owned())
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    /// Requests delivered (accepted, perhaps partially).
    pub requests: u64,
    /// Spans in the delivered requests.
    pub spans: u64,
    /// Spans the endpoint reported as rejected (OTLP partial success).
    pub rejected_spans: u64,
    /// Retryable refusals received (UNAVAILABLE, 429, 503, ...), over all requests.
    pub refused: u64,
    /// Attempts after the first, over all requests.
    pub retries: u64,
    /// Requests not delivered (a non-retryable error, or refused past --max-retry-time).
    pub failed: u64,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Requests without spans, not sent.
    pub skipped_empty: u64,
    /// The rebase shift applied to every timestamp, ns.
    pub offset_ns: i64,
    /// Data time range (latest span end of the first and last request), before rebasing.
    pub first_data_ns: Option<u64>,
    pub last_data_ns: Option<u64>,
    /// Wall time the replay took.
    pub elapsed: Duration,
    /// How far behind schedule the replay fell at most.
    pub max_lag: Duration,
}

impl ReplaySummary {
    /// Spans accepted per second of wall time.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.spans - self.rejected_spans.min(self.spans)) as f64 / secs
        } else {
            0.0
        }
    }

    /// A readable report.
    pub fn render(&self) -> String {
        let mut s = format!(
            "replayed {} requests, {} spans in {:.1} s ({:.0} spans/s); {} rejected spans, {} \
             refusals, {} retries, {} failed requests",
            self.requests,
            self.spans,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.rejected_spans,
            self.refused,
            self.retries,
            self.failed,
        );
        if self.skipped_empty > 0 {
            s.push_str(&format!(", {} empty requests skipped", self.skipped_empty));
        }
        if self.offset_ns != 0 {
            s.push_str(&format!(
                "; timestamps shifted by {:+.3} s",
                self.offset_ns as f64 / 1e9
            ));
        }
        if self.max_lag >= Duration::from_millis(100) {
            s.push_str(&format!(
                "; at most {:.1} s behind schedule",
                self.max_lag.as_secs_f64()
            ));
        }
        if let Some(f) = &self.first_failure {
            s.push_str(&format!("\nfirst failure: {f}"));
        }
        s.push('\n');
        s
    }
}

/// One request read ahead.
struct Item {
    request: ExportTraceServiceRequest,
    spans: u64,
    data_time: Option<u64>,
}

/// The data time range of the input (first pass of a rebased replay).
fn scan(args: &ReplayArgs, keys: &ResourceKeys) -> anyhow::Result<(Option<u64>, Option<u64>)> {
    let mut reader = open(&args.input)?;
    let (mut record, mut n) = (Vec::new(), 0u64);
    let (mut first, mut last) = (None, None::<u64>);
    while next_record(reader.as_mut(), args.format, &mut record, &mut n)? {
        let request = decode_request(args.format, &record, n, keys)?;
        if let Some(t) = schedule::data_time(&request) {
            first.get_or_insert(t);
            last = Some(last.map_or(t, |l| l.max(t)));
        }
    }
    Ok((first, last))
}

/// Reads, decodes and shifts requests on a thread of its own, into a bounded queue.
fn spawn_reader(
    args: &ReplayArgs,
    keys: ResourceKeys,
    offset_ns: i64,
) -> anyhow::Result<mpsc::Receiver<anyhow::Result<Item>>> {
    let (tx, rx) = mpsc::channel(64);
    let (path, format) = (args.input.clone(), args.format);
    std::thread::Builder::new()
        .name("replay-reader".to_owned())
        .spawn(move || {
            let result = (|| -> anyhow::Result<()> {
                let mut reader = open(&path)?;
                let (mut record, mut n) = (Vec::new(), 0u64);
                while next_record(reader.as_mut(), format, &mut record, &mut n)? {
                    let mut request = decode_request(format, &record, n, &keys)?;
                    let data_time = schedule::data_time(&request);
                    schedule::shift(&mut request, offset_ns);
                    let item = Item {
                        spans: schedule::span_count(&request),
                        request,
                        data_time,
                    };
                    if tx.blocking_send(Ok(item)).is_err() {
                        return Ok(());
                    }
                }
                if n == 0 {
                    bail!("{} holds no trace requests", path.display());
                }
                Ok(())
            })();
            if let Err(error) = result {
                let _ = tx.blocking_send(Err(error));
            }
        })
        .context("cannot start the reader thread")?;
    Ok(rx)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Replays `args.input` (async: for callers on a runtime; [`run`] makes one).
pub async fn replay(args: &ReplayArgs) -> anyhow::Result<ReplaySummary> {
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        bail!("--speed must be 0 (unpaced) or positive");
    }
    if args.rebase_time.is_some() && args.input.as_os_str() == "-" {
        bail!("--rebase-time reads the input twice: give a file, not stdin");
    }
    let mut keys = ResourceKeys::default();
    if !args.graph_keys.is_empty() {
        keys.graph_keys.clone_from(&args.graph_keys);
    }
    let mut summary = ReplaySummary::default();
    if let Some(rebase) = args.rebase_time {
        let (a, k) = (args.clone(), keys.clone());
        let (first, last) = tokio::task::spawn_blocking(move || scan(&a, &k))
            .await
            .context("the scan task failed")??;
        if let (Some(first), Some(last)) = (first, last) {
            let align = u64::try_from(args.rebase_align.as_nanos()).unwrap_or(u64::MAX);
            summary.offset_ns =
                schedule::rebase_offset(rebase, first, last, now_ns(), args.speed, align);
        }
    }
    let mut sender = Sender::new(&args.endpoint, args.protocol, args.timeout)?;
    let mut queue = spawn_reader(args, keys, summary.offset_ns)?;
    let mut pacer = Pacer::new(args.speed);
    let start = Instant::now();
    let mut next_progress = start + args.progress;
    while let Some(item) = queue.recv().await {
        let item = item?;
        if item.spans == 0 {
            summary.skipped_empty += 1;
            continue;
        }
        if let Some(t) = item.data_time {
            summary.first_data_ns.get_or_insert(t);
            summary.last_data_ns = Some(summary.last_data_ns.map_or(t, |l| l.max(t)));
        }
        let due = start + Duration::from_nanos(pacer.due_ns(item.data_time));
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due).await;
        } else if args.speed > 0.0 {
            // Unpaced, nothing is ever behind.
            summary.max_lag = summary.max_lag.max(now - due);
        }
        let delivery = deliver(&mut sender, &item.request, args.max_retry_time).await;
        summary.refused += delivery.refused;
        summary.retries += delivery.retries;
        match delivery.result {
            Ok(rejected) => {
                summary.requests += 1;
                summary.spans += item.spans;
                summary.rejected_spans += rejected;
            }
            Err(reason) => {
                summary.failed += 1;
                summary.first_failure.get_or_insert(reason);
            }
        }
        if !args.progress.is_zero() && Instant::now() >= next_progress {
            next_progress = Instant::now() + args.progress;
            summary.elapsed = start.elapsed();
            let behind = if args.speed > 0.0 {
                Instant::now().saturating_duration_since(due)
            } else {
                Duration::ZERO
            };
            eprintln!(
                "replay: {} requests, {} spans ({:.0} spans/s), {} refused, {} rejected spans, \
                 {} failed, {:.1} s behind",
                summary.requests,
                summary.spans,
                summary.rate(),
                summary.refused,
                summary.rejected_spans,
                summary.failed,
                behind.as_secs_f64(),
            );
        }
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Runs the command on a runtime of its own, prints the summary, and fails when requests
/// could not be delivered.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ReplaySummary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(replay(args))?;
    eprint!("{}", summary.render());
    if summary.failed > 0 {
        bail!(
            "{} of {} requests could not be delivered",
            summary.failed,
            summary.failed + summary.requests
        );
    }
    Ok(summary)
}
