//! A durable JetStream pull consumer that turns messages into rows and writes them in batches,
//! acknowledging each message only after its rows are durable in the sink.
//!
//! - Each fetched message is decoded and handled ([`Handler`]); its rows go into a
//!   [`Writer`] with the message as the acknowledgement token. A message that can never be
//!   stored (not decodable, refused by the analysis) is dead-lettered at once:
//!   `meshwatch.v1.dlq.<kind>` with a reason header, then terminated.
//! - The writer flushes when full, or at its deadline (the fetch waits at most until then).
//!   After a successful flush the messages are double-acked.
//! - A retryable flush error (the sink is down or busy) is retried with a doubling, capped
//!   backoff, without fetching more: the held messages are kept by progress acks. A
//!   non-retryable one dead-letters the batch's messages and terminates them.
//! - On shutdown the worker stops fetching, flushes, acks and returns. A flush still failing
//!   when the drain budget runs out gives the messages back (nak): they are redelivered.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::Consumer;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::{AckKind, Context, Message};
use meshwatch_bus::consumer::{self, sleep_or_cancel};
use meshwatch_bus::{MessageKind, Names, dead_letter};
use meshwatch_proto::v1;
use meshwatch_runtime::Condition;
use meshwatch_store::{BatchConfig, Store, Writer};
use prost::Message as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::analyzer::{Analyzed, Analyzer};
use crate::config::ConsumerConfig;
use crate::convert;
use crate::metrics::{Metrics, TableRows};

/// The shortest pull (when a batch deadline is close).
const MIN_FETCH: Duration = Duration::from_millis(10);

/// What a worker does with its messages.
#[derive(Debug, Clone)]
pub enum Handler {
    /// Graph snapshots to `graph_nodes` and `graph_edges`.
    Snapshots,
    /// Scores and forecasts through the analysis to `anomaly_scores`, `incidents`, `forecasts`.
    Results(Arc<Mutex<Analyzer>>),
}

/// The result of handling one message.
#[derive(Debug)]
enum Handled {
    Rows(Analyzed),
    Poison(String),
}

impl Handler {
    fn name(&self) -> &'static str {
        match self {
            Self::Snapshots => "snapshots",
            Self::Results(_) => "results",
        }
    }

    /// Decodes and handles `payload` off the async reactor.
    async fn handle(&self, kind: MessageKind, payload: bytes::Bytes) -> Handled {
        let handler = self.clone();
        let joined = tokio::task::spawn_blocking(move || handler.handle_blocking(kind, &payload));
        joined
            .await
            .unwrap_or_else(|error| Handled::Poison(format!("handler panicked: {error}")))
    }

    fn handle_blocking(&self, kind: MessageKind, payload: &[u8]) -> Handled {
        match (self, kind) {
            (Self::Snapshots, _) => match meshwatch_proto::decode_snapshot(payload) {
                Ok(snapshot) => Handled::Rows(Analyzed {
                    rows: convert::snapshot_rows(&snapshot),
                    ..Analyzed::default()
                }),
                Err(error) => Handled::Poison(format!("not a valid GraphSnapshot: {error}")),
            },
            (Self::Results(analyzer), MessageKind::Forecast) => {
                match v1::ForecastReport::decode(payload) {
                    Ok(report) => match lock(analyzer).forecast(&report) {
                        Ok(analyzed) => Handled::Rows(analyzed),
                        Err(error) => Handled::Poison(format!("forecast refused: {error}")),
                    },
                    Err(error) => Handled::Poison(format!("not a valid ForecastReport: {error}")),
                }
            }
            (Self::Results(analyzer), _) => match v1::AnomalyReport::decode(payload) {
                Ok(report) => match lock(analyzer).scores(&report) {
                    Ok(analyzed) => Handled::Rows(analyzed),
                    Err(error) => Handled::Poison(format!("scores refused: {error}")),
                },
                Err(error) => Handled::Poison(format!("not a valid AnomalyReport: {error}")),
            },
        }
    }
}

fn lock(analyzer: &Mutex<Analyzer>) -> std::sync::MutexGuard<'_, Analyzer> {
    analyzer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One durable consumer and its batching writer.
#[derive(Debug)]
pub struct Worker {
    handler: Handler,
    config: ConsumerConfig,
    /// Stream the consumer is on.
    stream: String,
    /// Subjects it is filtered to.
    filters: Vec<String>,
    names: Names,
    context: Context,
    store: Arc<dyn Store>,
    batch: BatchConfig,
    writer: Writer<Arc<dyn Store>, Message>,
    /// The messages buffered in `writer`, for progress acks and dead letters.
    held: Vec<Message>,
    /// Rows per table in `writer`.
    pending: TableRows,
    metrics: Metrics,
    sink_ready: Arc<Condition>,
}

/// What a worker is given.
#[derive(Debug)]
pub struct WorkerParts {
    /// What it does.
    pub handler: Handler,
    /// Its consumer.
    pub config: ConsumerConfig,
    /// Subject and stream names.
    pub names: Names,
    /// JetStream.
    pub context: Context,
    /// The sink.
    pub store: Arc<dyn Store>,
    /// Batching.
    pub batch: BatchConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// Readiness of the sink (set by flush outcomes).
    pub sink_ready: Arc<Condition>,
}

impl Worker {
    /// A worker for `parts`; binds nothing yet.
    pub fn new(parts: WorkerParts) -> Self {
        let (stream, filters) = match parts.handler {
            Handler::Snapshots => (
                parts.names.snapshots_stream(),
                vec![parts.names.filter(MessageKind::Snapshot)],
            ),
            Handler::Results(_) => (
                parts.names.results_stream(),
                vec![
                    parts.names.filter(MessageKind::Score),
                    parts.names.filter(MessageKind::Forecast),
                ],
            ),
        };
        Self {
            writer: Writer::new(Arc::clone(&parts.store), parts.batch.clone()),
            handler: parts.handler,
            config: parts.config,
            stream,
            filters,
            names: parts.names,
            context: parts.context,
            store: parts.store,
            batch: parts.batch,
            held: Vec::new(),
            pending: TableRows::default(),
            metrics: parts.metrics,
            sink_ready: parts.sink_ready,
        }
    }

    fn count(&self, outcome: &str, n: usize) {
        self.metrics
            .messages
            .with_label_values(&[self.handler.name(), outcome])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Consumes until `cancel` fires, then flushes what it holds; `hard` ends a flush retry
    /// that outlasts the drain budget. `bound` tells whether the consumer is in place.
    pub async fn run(
        mut self,
        cancel: CancellationToken,
        hard: CancellationToken,
        bound: Condition,
    ) {
        let mut backoff = self.config.retry_backoff;
        'outer: while !cancel.is_cancelled() {
            let consumer = match self.consumer().await {
                Ok(consumer) => consumer,
                Err(error) => {
                    bound.set(false);
                    tracing::warn!(worker = self.handler.name(), %error, "cannot bind the consumer; retrying");
                    if sleep_or_cancel(&cancel, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            };
            bound.set(true);
            backoff = self.config.retry_backoff;
            tracing::info!(worker = self.handler.name(), consumer = %self.config.consumer, "consuming");
            while !cancel.is_cancelled() {
                let expires = match self.writer.deadline() {
                    Some(deadline) => deadline
                        .saturating_duration_since(Instant::now())
                        .clamp(MIN_FETCH, self.config.fetch_expires),
                    None => self.config.fetch_expires,
                };
                // Not raced with `cancel`: a pull ends by itself within `expires`, and messages
                // delivered to an abandoned pull would wait `ack_wait` to come back.
                match self.fetch(&consumer, expires).await {
                    Ok(messages) => {
                        for message in messages {
                            self.take(message, &hard).await;
                        }
                    }
                    Err(error) => {
                        bound.set(false);
                        tracing::warn!(worker = self.handler.name(), %error, "fetching failed; rebinding");
                        if sleep_or_cancel(&cancel, backoff).await {
                            break 'outer;
                        }
                        continue 'outer;
                    }
                }
                if self.writer.is_due(Instant::now()) && !self.writer.is_empty() {
                    self.flush(&hard).await;
                }
            }
        }
        bound.set(false);
        if !self.writer.is_empty() {
            self.flush(&hard).await;
        }
        tracing::info!(worker = self.handler.name(), "worker stopped");
    }

    async fn consumer(&self) -> Result<Consumer<PullConfig>, String> {
        consumer::durable_pull(
            &self.context,
            &self.stream,
            &self.config.pull_settings(),
            self.filters.clone(),
            format!("meshwatch aggregator: {} to the sink", self.handler.name()),
        )
        .await
    }

    async fn fetch(
        &self,
        consumer: &Consumer<PullConfig>,
        expires: Duration,
    ) -> Result<Vec<Message>, String> {
        meshwatch_bus::fetch_batch(consumer, self.config.fetch_batch, expires).await
    }

    /// The kind of a message on this worker's subjects.
    fn kind_of(&self, message: &Message) -> MessageKind {
        let forecasts = self.names.filter(MessageKind::Forecast);
        match &self.handler {
            Handler::Snapshots => MessageKind::Snapshot,
            Handler::Results(_)
                if message
                    .subject
                    .as_str()
                    .starts_with(forecasts.trim_end_matches('>')) =>
            {
                MessageKind::Forecast
            }
            Handler::Results(_) => MessageKind::Score,
        }
    }

    /// Handles one message: its rows into the writer (flushing when full), or the dead letter.
    async fn take(&mut self, message: Message, hard: &CancellationToken) {
        let kind = self.kind_of(&message);
        match self.handler.handle(kind, message.payload.clone()).await {
            Handled::Rows(analyzed) => {
                for change in &analyzed.changes {
                    self.metrics
                        .incident_changes
                        .with_label_values(&[change])
                        .inc();
                }
                if analyzed.redelivery {
                    self.metrics
                        .redeliveries
                        .with_label_values(&[kind.as_str()])
                        .inc();
                }
                if let Handler::Results(analyzer) = &self.handler {
                    let series = lock(analyzer).series();
                    self.metrics
                        .threshold_series
                        .set(i64::try_from(series).unwrap_or(i64::MAX));
                }
                self.held.push(message.clone());
                self.pending.add(&analyzed.rows);
                self.writer.push(analyzed.rows, message);
                if self.writer.is_full() {
                    self.flush(hard).await;
                }
            }
            Handled::Poison(reason) => {
                self.dead_letter(&message, kind, &reason).await;
            }
        }
    }

    /// Writes what the writer holds, retrying while the error is retryable; see the module docs.
    async fn flush(&mut self, hard: &CancellationToken) {
        let mut backoff = self.config.retry_backoff;
        loop {
            let rows = self.writer.pending_rows();
            match self.writer.flush().await {
                Ok(flushed) => {
                    self.sink_ready.set(true);
                    self.metrics
                        .flush_seconds
                        .with_label_values(&[self.handler.name()])
                        .observe(flushed.elapsed.as_secs_f64());
                    self.held.clear();
                    self.metrics.rows_written(&self.pending);
                    self.pending = TableRows::default();
                    let acks = futures::future::join_all(
                        flushed.acks.iter().map(|message| message.double_ack()),
                    )
                    .await;
                    let failed = acks.iter().filter(|ack| ack.is_err()).count();
                    if failed > 0 {
                        // Redelivered later; the rows' keys make the second copy harmless.
                        tracing::warn!(worker = self.handler.name(), failed, "acks failed");
                    }
                    self.count("stored", flushed.acks.len() - failed);
                    self.count("ack_failed", failed);
                    tracing::debug!(
                        worker = self.handler.name(),
                        rows,
                        messages = flushed.acks.len(),
                        "flushed"
                    );
                    return;
                }
                Err(error) if error.is_retryable() => {
                    self.sink_ready.set(false);
                    self.metrics
                        .flush_errors
                        .with_label_values(&[self.handler.name(), error.kind()])
                        .inc();
                    tracing::warn!(worker = self.handler.name(), %error, rows, ?backoff, "flush failed; retrying");
                    futures::future::join_all(
                        self.held
                            .iter()
                            .map(|message| message.ack_with(AckKind::Progress)),
                    )
                    .await;
                    tokio::select! {
                        () = hard.cancelled() => {
                            tracing::warn!(worker = self.handler.name(), messages = self.held.len(), "drain budget spent; giving the messages back");
                            let held = std::mem::take(&mut self.held);
                            futures::future::join_all(
                                held.iter().map(|message| message.ack_with(AckKind::Nak(None))),
                            )
                            .await;
                            self.count("abandoned", held.len());
                            self.pending = TableRows::default();
                            self.writer = Writer::new(Arc::clone(&self.store), self.batch.clone());
                            return;
                        }
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
                Err(error) => {
                    self.metrics
                        .flush_errors
                        .with_label_values(&[self.handler.name(), error.kind()])
                        .inc();
                    tracing::error!(worker = self.handler.name(), %error, messages = self.held.len(), "flush refused; dead-lettering the batch");
                    let reason = format!("the sink refused the batch: {error}");
                    for message in std::mem::take(&mut self.held) {
                        let kind = self.kind_of(&message);
                        self.dead_letter(&message, kind, &reason).await;
                    }
                    self.pending = TableRows::default();
                    self.writer = Writer::new(Arc::clone(&self.store), self.batch.clone());
                    return;
                }
            }
        }
    }

    /// Dead-letters `message` (see [`dead_letter::send`]) and counts it.
    async fn dead_letter(&self, message: &Message, kind: MessageKind, reason: &str) {
        let subject = self.names.dlq_subject(kind);
        let outcome = dead_letter::send(
            &self.context,
            &subject,
            &self.config.consumer,
            message,
            reason,
            self.config.retry_backoff,
        )
        .await;
        self.count(outcome.label(), 1);
    }
}
