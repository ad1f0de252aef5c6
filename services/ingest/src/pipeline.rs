//! The aggregation thread: one dedicated OS thread owns the [`Aggregator`], decodes protobuf
//! requests zero-copy, aggregates them, and hands closed snapshots to the publish buffer.
//!
//! Receivers submit through a bounded queue ([`Pipeline::export`] for traces,
//! [`Pipeline::export_metrics`] for OTLP metrics, which the receivers decode themselves) and
//! wait for the report, so a response is sent only once its data is aggregated. Admission
//! control: a full queue, a full publish buffer, or snapshots held back by the thread all refuse
//! new data with a retryable error — nothing accepted is dropped silently.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use meshwatch_bus::{BufferedPublisher, SnapshotMessage};
use meshwatch_graph::metrics::{DecodedMetrics, extract};
use meshwatch_graph::otlp::owned::views_from_owned;
use meshwatch_graph::otlp::wire::decode_traces;
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use meshwatch_graph::{Aggregator, GraphSnapshot, IngestReport, MetricsReport};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::oneshot;

use crate::config::IngestConfig;
use crate::error::{IngestError, RequestError};
use crate::metrics::Metrics;

/// A request body, ready for the aggregation thread.
#[derive(Debug)]
pub enum Payload {
    /// Protobuf `ExportTraceServiceRequest` bytes (decoded zero-copy on the thread).
    Protobuf(Bytes),
    /// An already decoded request (OTLP/JSON).
    Request(Box<ExportTraceServiceRequest>),
}

enum Msg {
    Export(Payload, oneshot::Sender<Result<IngestReport, RequestError>>),
    /// A decoded OTLP metrics request (metrics are decoded by the receivers, off this thread:
    /// `prost` decoding costs more per byte than the zero-copy span scanner).
    ExportMetrics(
        Box<ExportMetricsServiceRequest>,
        oneshot::Sender<Result<MetricsReport, RequestError>>,
    ),
    Flush(Instant, oneshot::Sender<usize>),
}

/// Handle to the aggregation thread. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Pipeline {
    tx: SyncSender<Msg>,
    publisher: Arc<BufferedPublisher>,
    held: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    closing: AtomicBool,
    retry_after: Duration,
    metrics: Metrics,
}

/// Wall clock, unix milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Pipeline {
    /// Starts the aggregation thread.
    pub fn start(
        config: &IngestConfig,
        publisher: Arc<BufferedPublisher>,
        metrics: Metrics,
    ) -> Result<(Self, JoinHandle<()>), IngestError> {
        // The producer names the replica and this process's start, so that snapshots of the
        // same window from other replicas or a restarted process are not de-duplicated away.
        let producer = format!("{}@{}", config.producer_name(), now_ms());
        let aggregator = Aggregator::new(config.graph.aggregator(), producer)
            .map_err(|e| IngestError::Config(e.to_string()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(config.pipeline.queue_requests);
        let held = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            aggregator,
            keys: ResourceKeys {
                graph_keys: config.graph.graph_keys.clone(),
                service_keys: config.graph.service_keys.clone(),
            },
            publisher: Arc::clone(&publisher),
            metrics: metrics.clone(),
            held: Arc::clone(&held),
            queued: Arc::clone(&queued),
            held_back: VecDeque::new(),
            tick: config.pipeline.tick,
        };
        let handle = std::thread::Builder::new()
            .name("aggregator".to_owned())
            .spawn(move || worker.run(rx))
            .map_err(IngestError::Thread)?;
        Ok((
            Self {
                tx,
                publisher,
                held,
                queued,
                closing: AtomicBool::new(false),
                retry_after: config.otlp.retry_after,
                metrics,
            },
            handle,
        ))
    }

    /// Aggregates one request and returns what happened to its spans.
    pub async fn export(&self, payload: Payload) -> Result<IngestReport, RequestError> {
        self.submit(|reply| Msg::Export(payload, reply)).await
    }

    /// Aggregates one OTLP metrics request and returns what happened to its data points. Same
    /// queue and admission control as [`Pipeline::export`].
    pub async fn export_metrics(
        &self,
        request: Box<ExportMetricsServiceRequest>,
    ) -> Result<MetricsReport, RequestError> {
        self.submit(|reply| Msg::ExportMetrics(request, reply))
            .await
    }

    /// Admission control, then the bounded queue; waits for the thread's answer.
    async fn submit<R>(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<R, RequestError>>) -> Msg,
    ) -> Result<R, RequestError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(RequestError::ShuttingDown);
        }
        let overloaded = RequestError::Overloaded {
            retry_after: self.retry_after,
        };
        if self.held.load(Ordering::Acquire) > 0 || !self.publisher.has_room() {
            return Err(overloaded);
        }
        let (reply, answer) = oneshot::channel();
        // Counted before sending, so that the thread never takes more than was counted.
        let depth = self.queued.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        match self.tx.try_send(msg(reply)) {
            Ok(()) => self
                .metrics
                .queue_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX)),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(match e {
                    TrySendError::Full(_) => overloaded,
                    TrySendError::Disconnected(_) => RequestError::ShuttingDown,
                });
            }
        }
        answer
            .await
            .map_err(|_| RequestError::Internal("aggregation thread stopped".to_owned()))?
    }

    /// Refuses new requests from now on, closes every open window and hands the snapshots to
    /// the publish buffer, waiting at most until `deadline`. Returns how many snapshots could
    /// not be handed over.
    pub async fn flush(&self, deadline: Instant) -> usize {
        self.closing.store(true, Ordering::Release);
        let (reply, answer) = oneshot::channel();
        // The queue may be full: keep trying until the deadline.
        let mut msg = Msg::Flush(deadline, reply);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return usize::MAX,
            }
        }
        answer.await.unwrap_or(usize::MAX)
    }
}

struct Worker {
    aggregator: Aggregator,
    keys: ResourceKeys,
    publisher: Arc<BufferedPublisher>,
    metrics: Metrics,
    held: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    /// Snapshots the publish buffer refused; retried in order before any newer one.
    held_back: VecDeque<SnapshotMessage>,
    tick: Duration,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut spare: DecodedTraces<'static> = DecodedTraces::default();
        let mut closed = Vec::new();
        let mut last_tick = Instant::now();
        loop {
            let timeout = if self.held_back.is_empty() {
                self.tick
            } else {
                Duration::from_millis(20)
            };
            match rx.recv_timeout(timeout) {
                Ok(Msg::Export(payload, reply)) => {
                    self.dequeued();
                    let mut decoded = std::mem::take(&mut spare).recycle();
                    let result = self.export(&payload, &mut decoded, &mut closed);
                    spare = decoded.recycle();
                    if let Ok(report) = &result {
                        self.metrics.record_report(report);
                    }
                    // The client may have gone (deadline); its spans are aggregated anyway.
                    let _ = reply.send(result);
                }
                Ok(Msg::ExportMetrics(request, reply)) => {
                    self.dequeued();
                    let result = self.export_metrics(&request, &mut closed);
                    if let Ok(report) = &result {
                        self.metrics.record_metrics_report(report);
                    }
                    let _ = reply.send(result);
                }
                Ok(Msg::Flush(deadline, reply)) => {
                    self.aggregator.flush_all(&mut closed);
                    self.hand_off(&mut closed);
                    while !self.held_back.is_empty() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                        self.retry_held();
                    }
                    let _ = reply.send(self.held_back.len());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.aggregator.flush_all(&mut closed);
                    self.hand_off(&mut closed);
                    if !self.held_back.is_empty() {
                        tracing::error!(
                            snapshots = self.held_back.len(),
                            "publish buffer full at exit; snapshots lost"
                        );
                    }
                    return;
                }
            }
            if last_tick.elapsed() >= self.tick {
                last_tick = Instant::now();
                self.aggregator.tick(now_ms(), &mut closed);
            }
            self.hand_off(&mut closed);
            self.metrics.record_state(self.aggregator.state());
        }
    }

    fn dequeued(&self) {
        let depth = self.queued.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        self.metrics
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    fn export_metrics(
        &mut self,
        request: &ExportMetricsServiceRequest,
        closed: &mut Vec<GraphSnapshot>,
    ) -> Result<MetricsReport, RequestError> {
        let mut decoded = DecodedMetrics::default();
        extract(request, &self.keys, &mut decoded);
        if decoded.data_points == 0 {
            return Err(RequestError::NoDataPoints);
        }
        Ok(self
            .aggregator
            .ingest_metrics(&decoded, Some(now_ms()), closed))
    }

    fn export<'a>(
        &mut self,
        payload: &'a Payload,
        decoded: &mut DecodedTraces<'a>,
        closed: &mut Vec<GraphSnapshot>,
    ) -> Result<IngestReport, RequestError> {
        match payload {
            Payload::Protobuf(bytes) => {
                decode_traces(bytes, &self.keys, decoded)
                    .map_err(|e| RequestError::Malformed(e.to_string()))?;
                self.ingest(decoded, closed)
            }
            Payload::Request(request) => {
                let mut views = DecodedTraces::default();
                views_from_owned(request, &self.keys, &mut views);
                self.ingest(&views, closed)
            }
        }
    }

    fn ingest(
        &mut self,
        decoded: &DecodedTraces<'_>,
        closed: &mut Vec<GraphSnapshot>,
    ) -> Result<IngestReport, RequestError> {
        if decoded.spans.is_empty() {
            return Err(RequestError::Empty);
        }
        Ok(self.aggregator.ingest(decoded, Some(now_ms()), closed))
    }

    /// Hands closed snapshots to the publish buffer, keeping order; what does not fit is held.
    fn hand_off(&mut self, closed: &mut Vec<GraphSnapshot>) {
        self.retry_held();
        for snapshot in closed.drain(..) {
            self.metrics.record_snapshot(&snapshot.stats);
            let message = SnapshotMessage::from_domain(&snapshot);
            if self.held_back.is_empty() {
                match self.publisher.try_enqueue(message) {
                    Ok(()) => {
                        self.metrics
                            .snapshots
                            .with_label_values(&["buffered"])
                            .inc();
                        continue;
                    }
                    Err(full) => self.held_back.push_back(full.into_snapshot()),
                }
            } else {
                self.held_back.push_back(message);
            }
            self.metrics.snapshots.with_label_values(&["held"]).inc();
        }
        self.update_held();
    }

    fn retry_held(&mut self) {
        while let Some(message) = self.held_back.pop_front() {
            match self.publisher.try_enqueue(message) {
                Ok(()) => {
                    self.metrics
                        .snapshots
                        .with_label_values(&["buffered"])
                        .inc();
                }
                Err(full) => {
                    self.held_back.push_front(full.into_snapshot());
                    break;
                }
            }
        }
        self.update_held();
    }

    fn update_held(&self) {
        self.held.store(self.held_back.len(), Ordering::Release);
        self.metrics
            .held_snapshots
            .set(i64::try_from(self.held_back.len()).unwrap_or(i64::MAX));
    }
}
