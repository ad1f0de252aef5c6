//! Running a simulation: to files as fast as the CPU allows, or to an OTLP endpoint in real
//! time (`speed` 1), compressed time (`speed` > 1) or unpaced (`speed` 0).
//!
//! To an endpoint, a generator thread steps the simulator, waits for the wall-clock moment each
//! simulated second ends (`start + k / speed`), encodes what ended and queues it (bounded: when
//! the senders fall behind, generation waits); up to `max_in_flight` sender tasks export it,
//! retrying refusals (honouring `Retry-After`) and failures with backoff, then dropping with a
//! count. Timestamps are the simulated clock: for a compressed or unpaced run it starts
//! `duration × (1 − 1/speed)` before now, so that no span ends in the future.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use meshwatch_graph::labels::{FaultLabel, write_labels};
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{Batch, SimStats, Simulator, TICK_NS};
use crate::error::SimError;
use crate::export::{OtlpClient, Outcome, Protocol, Signal};
use crate::metrics::Metrics;
use crate::output::{FileFormat, FileSink};
use crate::settings::SimulationSettings;

/// The wall clock, unix ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the simulated clock starts for a paced run ending about now: `now` in real time,
/// `duration × (1 − 1/speed)` earlier when compressed, `duration` earlier when unpaced
/// (`speed` 0). Whole seconds.
pub fn paced_start_ms(now_ms: i64, duration: Option<Duration>, speed: f64) -> i64 {
    let run_ms = duration.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let back = if speed <= 0.0 {
        run_ms
    } else {
        run_ms * (1.0 - 1.0 / speed.max(1.0))
    };
    let start = now_ms - back.ceil() as i64;
    start - start.rem_euclid(1000)
}

/// What a run to files did.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesReport {
    pub stats: SimStats,
    pub labels: Vec<FaultLabel>,
    pub trace_requests: u64,
    pub metrics_requests: u64,
    pub traces_path: PathBuf,
}

/// Simulates `duration` from `start_ms` and writes the files into `dir`.
pub fn run_to_files(
    settings: &SimulationSettings,
    start_ms: i64,
    duration: Duration,
    dir: &std::path::Path,
    format: FileFormat,
) -> Result<FilesReport, SimError> {
    let mut sim = Simulator::new(settings, start_ms, Some(duration))?;
    let mut sink = FileSink::create(dir, format)?;
    let traces_path = sink.traces_path().to_owned();
    let mut trace_requests = 0;
    let mut metrics_requests = 0;
    let mut batch = Batch::default();
    while !sim.is_finished() {
        batch.traces.clear();
        batch.metrics.clear();
        batch.labels.clear();
        sim.step(&mut batch)?;
        trace_requests += batch.traces.len() as u64;
        metrics_requests += batch.metrics.len() as u64;
        sink.write(&batch)?;
    }
    let mut last = Batch::default();
    sim.finish(&mut last);
    trace_requests += last.traces.len() as u64;
    sink.write(&last)?;
    sink.finish()?;
    Ok(FilesReport {
        stats: sim.stats(),
        labels: sim.labels(),
        trace_requests,
        metrics_requests,
        traces_path,
    })
}

/// Sending to an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointOptions {
    pub endpoint: String,
    pub protocol: Protocol,
    /// Per request.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Encoded requests waiting for a sender.
    pub queue_requests: usize,
    /// Further attempts of a refused or failed request before it is dropped.
    pub retries: u32,
    /// Where to append the labels of faults as they begin.
    pub labels_path: Option<PathBuf>,
}

/// Counters of a run to an endpoint (also the progress reports).
#[derive(Debug, Default)]
pub struct Counters {
    pub sim_clock_ms: AtomicU64,
    pub traces: AtomicU64,
    pub spans_accepted: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub spans_dropped: AtomicU64,
    pub points_accepted: AtomicU64,
    pub points_dropped: AtomicU64,
    /// Attempts refused (then retried or dropped).
    pub refused: AtomicU64,
    /// Attempts that failed (then retried or dropped).
    pub failed: AtomicU64,
    pub faults: AtomicU64,
    pub lag_ms: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub sim_clock_ms: u64,
    pub traces: u64,
    pub spans_accepted: u64,
    pub spans_rejected: u64,
    pub spans_dropped: u64,
    pub points_accepted: u64,
    pub points_dropped: u64,
    pub refused: u64,
    pub failed: u64,
    pub faults: u64,
    pub lag_ms: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Progress {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Progress {
            sim_clock_ms: g(&self.sim_clock_ms),
            traces: g(&self.traces),
            spans_accepted: g(&self.spans_accepted),
            spans_rejected: g(&self.spans_rejected),
            spans_dropped: g(&self.spans_dropped),
            points_accepted: g(&self.points_accepted),
            points_dropped: g(&self.points_dropped),
            refused: g(&self.refused),
            failed: g(&self.failed),
            faults: g(&self.faults),
            lag_ms: g(&self.lag_ms),
        }
    }
}

/// What a run to an endpoint did.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointReport {
    pub stats: SimStats,
    pub labels: Vec<FaultLabel>,
    pub progress: Progress,
    /// Whether the run was cut short by `cancel`.
    pub cancelled: bool,
}

struct Item {
    signal: Signal,
    body: Bytes,
    items: u64,
}

/// Called with the counters every `interval` while a run lasts.
pub type ProgressFn = Box<dyn Fn(&Progress) + Send + Sync>;

/// Runs the simulation `sim` (already built, so that its errors come before anything starts)
/// against an endpoint until it ends or `cancel` fires; then exports the spans still waiting
/// and drains the queue.
pub async fn run_to_endpoint(
    sim: Simulator,
    speed: f64,
    options: EndpointOptions,
    cancel: CancellationToken,
    metrics: Option<Metrics>,
    progress: Option<(Duration, ProgressFn)>,
) -> Result<EndpointReport, SimError> {
    let client = OtlpClient::new(&options.endpoint, options.protocol, options.timeout)?;
    let labels_file = match &options.labels_path {
        Some(path) => Some((
            path.clone(),
            BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| SimError::Write {
                        path: path.display().to_string(),
                        source,
                    })?,
            ),
        )),
        None => None,
    };
    let counters = Arc::new(Counters::default());
    let (tx, mut rx) = mpsc::channel::<Item>(options.queue_requests.max(1));
    let generator = {
        let counters = Arc::clone(&counters);
        let cancel = cancel.clone();
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            generate(
                sim,
                speed,
                &tx,
                labels_file,
                &counters,
                &cancel,
                metrics.as_ref(),
            )
        })
    };
    let reporter = progress.map(|(interval, report)| {
        let counters = Arc::clone(&counters);
        let stop = CancellationToken::new();
        let child = stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = child.cancelled() => break,
                    _ = tick.tick() => report(&counters.snapshot()),
                }
            }
        });
        (stop, task)
    });
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    while let Some(item) = rx.recv().await {
        if let Some(m) = &metrics {
            m.queue_depth
                .set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        }
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let mut client = client.clone();
        let counters = Arc::clone(&counters);
        let metrics = metrics.clone();
        let cancel = cancel.clone();
        let retries = options.retries;
        tasks.spawn(async move {
            send(
                &mut client,
                item,
                retries,
                &counters,
                metrics.as_ref(),
                &cancel,
            )
            .await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let generated = generator
        .await
        .map_err(|e| SimError::Endpoint(format!("generator thread: {e}")))??;
    if let Some((stop, task)) = reporter {
        stop.cancel();
        let _ = task.await;
    }
    Ok(EndpointReport {
        stats: generated.0,
        labels: generated.1,
        progress: counters.snapshot(),
        cancelled: cancel.is_cancelled(),
    })
}

type Generated = (SimStats, Vec<FaultLabel>);

/// The generator thread: steps, paces, encodes, queues.
fn generate(
    mut sim: Simulator,
    speed: f64,
    tx: &mpsc::Sender<Item>,
    mut labels_file: Option<(PathBuf, BufWriter<File>)>,
    counters: &Counters,
    cancel: &CancellationToken,
    metrics: Option<&Metrics>,
) -> Result<Generated, SimError> {
    let wall_start = Instant::now();
    let mut ticks = 0u64;
    let mut traces_before = 0;
    let mut open = true;
    while open && !sim.is_finished() && !cancel.is_cancelled() {
        let mut batch = Batch::default();
        sim.step(&mut batch)?;
        ticks += 1;
        let clock_ms = sim.now_ns() / 1_000_000;
        counters.sim_clock_ms.store(clock_ms, Ordering::Relaxed);
        let traces = sim.stats().traces;
        counters.traces.store(traces, Ordering::Relaxed);
        if let Some(m) = metrics {
            m.clock.set(clock_ms as f64 / 1000.0);
            m.traces.inc_by(traces - traces_before);
        }
        traces_before = traces;
        if speed > 0.0 {
            let due =
                wall_start + Duration::from_secs_f64(ticks as f64 * TICK_NS as f64 / 1e9 / speed);
            let lag = Instant::now().saturating_duration_since(due);
            counters.lag_ms.store(
                u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if let Some(m) = metrics {
                m.lag.set(lag.as_secs_f64());
            }
            // Sleep in slices so that a shutdown is seen within 100 ms.
            while !cancel.is_cancelled() {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(100)));
            }
        }
        open = forward(&batch, tx, &mut labels_file, counters, metrics)?;
    }
    let mut last = Batch::default();
    sim.finish(&mut last);
    if open {
        forward(&last, tx, &mut labels_file, counters, metrics)?;
    }
    if let Some((path, mut w)) = labels_file {
        w.flush().map_err(|source| SimError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok((sim.stats(), sim.labels()))
}

/// Queues a batch; `false` once the senders are gone.
fn forward(
    batch: &Batch,
    tx: &mpsc::Sender<Item>,
    labels_file: &mut Option<(PathBuf, BufWriter<File>)>,
    counters: &Counters,
    metrics: Option<&Metrics>,
) -> Result<bool, SimError> {
    for label in &batch.labels {
        tracing::info!(
            fault = %label.fault_type,
            root_cause = %label.root_cause,
            callee = label.callee.as_deref().unwrap_or(""),
            start_ms = label.start_ms,
            end_ms = label.end_ms,
            "fault begins"
        );
        counters.faults.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = metrics {
            m.faults.with_label_values(&[&label.fault_type]).inc();
        }
    }
    if let Some((path, w)) = labels_file.as_mut()
        && !batch.labels.is_empty()
    {
        let written = write_labels(&mut *w, &batch.labels).and_then(|()| Ok(w.flush()?));
        written.map_err(|e| SimError::Write {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    let items = batch
        .traces
        .iter()
        .map(|r| {
            let spans = r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len() as u64)
                .sum();
            (Signal::Traces, Bytes::from(r.encode_to_vec()), spans)
        })
        .chain(batch.metrics.iter().map(|r| {
            let points = r
                .resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .map(|sm| sm.metrics.len() as u64)
                .sum();
            (Signal::Metrics, Bytes::from(r.encode_to_vec()), points)
        }));
    for (signal, body, items) in items {
        if tx
            .blocking_send(Item {
                signal,
                body,
                items,
            })
            .is_err()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Exports one request with retries.
async fn send(
    client: &mut OtlpClient,
    item: Item,
    retries: u32,
    counters: &Counters,
    metrics: Option<&Metrics>,
    cancel: &CancellationToken,
) {
    let signal = item.signal.as_str();
    let mut backoff = Duration::from_millis(100);
    for attempt in 0..=retries {
        let started = Instant::now();
        let outcome = client.export(item.signal, item.body.clone()).await;
        if let Some(m) = metrics {
            m.export_duration
                .with_label_values(&[signal])
                .observe(started.elapsed().as_secs_f64());
        }
        let wait = match outcome {
            Outcome::Accepted { rejected } => {
                let rejected = rejected.min(item.items);
                match item.signal {
                    Signal::Traces => {
                        counters
                            .spans_accepted
                            .fetch_add(item.items - rejected, Ordering::Relaxed);
                        counters
                            .spans_rejected
                            .fetch_add(rejected, Ordering::Relaxed);
                    }
                    Signal::Metrics => {
                        counters
                            .points_accepted
                            .fetch_add(item.items - rejected, Ordering::Relaxed);
                    }
                }
                if let Some(m) = metrics {
                    m.requests.with_label_values(&[signal, "accepted"]).inc();
                    m.items
                        .with_label_values(&[signal, "accepted"])
                        .inc_by(item.items - rejected);
                    m.items
                        .with_label_values(&[signal, "rejected"])
                        .inc_by(rejected);
                }
                return;
            }
            Outcome::Refused { retry_after } => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = metrics {
                    m.requests.with_label_values(&[signal, "refused"]).inc();
                }
                retry_after.unwrap_or(backoff).min(Duration::from_secs(10))
            }
            Outcome::Failed(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = metrics {
                    m.requests.with_label_values(&[signal, "failed"]).inc();
                }
                tracing::debug!(%error, attempt, "otlp export failed");
                backoff
            }
        };
        if attempt == retries {
            break;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    match item.signal {
        Signal::Traces => counters
            .spans_dropped
            .fetch_add(item.items, Ordering::Relaxed),
        Signal::Metrics => counters
            .points_dropped
            .fetch_add(item.items, Ordering::Relaxed),
    };
    if let Some(m) = metrics {
        m.requests.with_label_values(&[signal, "dropped"]).inc();
        m.items
            .with_label_values(&[signal, "dropped"])
            .inc_by(item.items);
    }
    tracing::warn!(
        signal,
        items = item.items,
        "otlp request dropped after retries"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_starts_end_near_now() {
        let now = 1_700_000_000_500;
        assert_eq!(paced_start_ms(now, None, 1.0), 1_700_000_000_000);
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(paced_start_ms(now, hour, 1.0), 1_700_000_000_000);
        // Speed 60: an hour in a minute; the clock starts 59 minutes back.
        assert_eq!(
            paced_start_ms(now, hour, 60.0),
            1_700_000_000_000 - 3_540_000
        );
        assert_eq!(
            paced_start_ms(now, hour, 0.0),
            1_700_000_000_000 - 3_600_000
        );
    }
}
