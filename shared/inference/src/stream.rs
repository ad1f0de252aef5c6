//! The streaming path: snapshots in from a durable JetStream pull consumer, one report per graph
//! and window out (ARCHITECTURE.md §6).
//!
//! - Each snapshot joins its graph's [`History`]; the last T windows (missing ones masked) are
//!   run through the model and the report is published on `meshwatch.v1.scores.<graph>` or
//!   `meshwatch.v1.forecasts.<graph>` with `Nats-Msg-Id` =
//!   `<score|forecast>:<graph>:<window_start_ms>:<model_version>`. The snapshot is acked (double
//!   ack) only after the report's PubAck.
//! - The first snapshot of a graph since start rebuilds the graph's history by reading back the
//!   stream (an ordered consumer filtered to the graph's subject, from a little more than T
//!   windows before the snapshot's publication, up to the snapshot), and looks up the graph's last
//!   published report so that a window scored before a restart is not scored again.
//! - Within a graph, windows are handled in delivery order; a transient failure (model
//!   overloaded, NATS publish failed) is retried in place with backoff (the message's ack
//!   deadline extended meanwhile), so a later window can never overtake an earlier one.
//!   Different graphs of one fetch run concurrently, so the model server batches them.
//! - A message that can never succeed (not a snapshot, a report that cannot be built) goes to
//!   `meshwatch.v1.dlq.snapshot` with its reason and is terminated.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::{Config as PullConfig, OrderedConfig};
use async_nats::jetstream::consumer::{Consumer, DeliverPolicy};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{AckKind, Context, Message};
use futures::StreamExt as _;
use meshwatch_bus::consumer::{self, sleep_or_cancel};
use meshwatch_bus::envelope::{HEADER_CONTENT_TYPE, HEADER_MSG_ID, HEADER_SCHEMA};
use meshwatch_bus::{MessageKind, Names, dead_letter, subjects};
use meshwatch_graph::features::StepFeatures;
use meshwatch_model::{ModelKind, Server};
use meshwatch_proto::v1;
use prost::{Message as _, Name as _};
use tokio_util::sync::CancellationToken;

use crate::config::StreamConfig;
use crate::engine::{self, Report};
use crate::error::InferError;
use crate::history::{History, Insert};
use crate::metrics::ServiceMetrics;

/// Longest backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest a history rebuild may read.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(10);

/// The stream worker of one service.
#[derive(Debug)]
pub struct StreamWorker {
    config: StreamConfig,
    names: Names,
    context: Context,
    server: Server,
    kind: ModelKind,
    metrics: ServiceMetrics,
    history: Mutex<History>,
    /// Whether a window length other than the model's was logged already.
    window_warned: std::sync::atomic::AtomicBool,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Scored,
    AlreadyScored,
    TooOld,
    Empty,
    DeadLetter,
    /// Left unacknowledged (shutting down): redelivered later.
    Abandoned,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Scored => "scored",
            Self::AlreadyScored => "already_scored",
            Self::TooOld => "too_old",
            Self::Empty => "empty",
            Self::DeadLetter => "dead_letter",
            Self::Abandoned => "abandoned",
        }
    }
}

impl StreamWorker {
    pub fn new(
        config: StreamConfig,
        names: Names,
        context: Context,
        server: Server,
        metrics: ServiceMetrics,
    ) -> Self {
        let kind = server.info().kind;
        let steps = server.info().steps;
        let history = Mutex::new(History::with_late_windows(
            steps,
            config.late_windows,
            config.max_graphs,
        ));
        Self {
            config,
            names,
            context,
            server,
            kind,
            metrics,
            history,
            window_warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn result_kind(&self) -> MessageKind {
        match self.kind {
            ModelKind::Detector => MessageKind::Score,
            ModelKind::Forecaster => MessageKind::Forecast,
        }
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pulls and handles snapshots until `cancel` fires; the batch in hand is finished first.
    /// `bound` is told whether the consumer is in place (readiness).
    pub async fn run(self: Arc<Self>, cancel: CancellationToken, bound: impl Fn(bool)) {
        let mut backoff = self.config.retry_backoff;
        'outer: while !cancel.is_cancelled() {
            let consumer = match self.consumer().await {
                Ok(consumer) => consumer,
                Err(error) => {
                    bound(false);
                    tracing::warn!(%error, "cannot bind the snapshots consumer; retrying");
                    if sleep_or_cancel(&cancel, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            bound(true);
            backoff = self.config.retry_backoff;
            tracing::info!(consumer = %self.config.consumer, "consuming snapshots");
            while !cancel.is_cancelled() {
                let fetched = tokio::select! {
                    () = cancel.cancelled() => break 'outer,
                    fetched = self.fetch(&consumer) => fetched,
                };
                match fetched {
                    Ok(messages) if messages.is_empty() => {}
                    Ok(messages) => self.handle_batch(messages, &cancel).await,
                    Err(error) => {
                        bound(false);
                        tracing::warn!(%error, "fetching snapshots failed; rebinding");
                        if sleep_or_cancel(&cancel, backoff).await {
                            break 'outer;
                        }
                        continue 'outer;
                    }
                }
            }
        }
        bound(false);
        tracing::info!("stream worker stopped");
    }

    async fn consumer(&self) -> Result<Consumer<PullConfig>, String> {
        consumer::durable_pull(
            &self.context,
            &self.names.snapshots_stream(),
            &self.config.pull_settings(),
            vec![self.names.filter(MessageKind::Snapshot)],
            format!("meshwatch {}: graph snapshots to reports", self.kind),
        )
        .await
    }

    async fn fetch(&self, consumer: &Consumer<PullConfig>) -> Result<Vec<Message>, String> {
        meshwatch_bus::fetch_batch(consumer, self.config.fetch_batch, self.config.fetch_expires)
            .await
    }

    /// Handles one fetch: graphs concurrently, each graph's messages in order.
    async fn handle_batch(&self, messages: Vec<Message>, cancel: &CancellationToken) {
        let mut by_subject: BTreeMap<String, Vec<Message>> = BTreeMap::new();
        for message in messages {
            by_subject
                .entry(message.subject.to_string())
                .or_default()
                .push(message);
        }
        let graphs = by_subject.into_values().map(|messages| async move {
            let mut abandoned = false;
            for message in messages {
                let outcome = if abandoned {
                    self.abandon(&message).await
                } else {
                    self.handle(&message, cancel).await
                };
                abandoned |= outcome == Outcome::Abandoned;
                self.metrics
                    .windows
                    .with_label_values(&[outcome.label()])
                    .inc();
            }
        });
        futures::future::join_all(graphs).await;
        self.metrics
            .history_graphs
            .set(i64::try_from(self.history().graphs()).unwrap_or(i64::MAX));
    }

    async fn handle(&self, message: &Message, cancel: &CancellationToken) -> Outcome {
        let started = Instant::now();
        let snapshot = match meshwatch_proto::decode_snapshot(&message.payload) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                return self
                    .dead_letter(message, &format!("not a valid GraphSnapshot: {error}"))
                    .await;
            }
        };
        if snapshot.window_ms == 0 {
            return self.dead_letter(message, "window_ms is 0").await;
        }
        let graph = snapshot.graph.clone();
        let window_start_ms = snapshot.window_start_ms;
        let model_window_ms = self.server.info().window_ms;
        if u64::from(snapshot.window_ms) != model_window_ms
            && !self
                .window_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                graph,
                window_ms = snapshot.window_ms,
                model_window_ms,
                "snapshots' window length differs from the model's training windows; set the \
                 ingest's graph.window to match (logged once)"
            );
        }
        if !self.history().has_graph(&graph) {
            self.rebuild(&graph, message, snapshot.window_ms).await;
        }
        let step = StepFeatures::from_snapshot(&snapshot);
        let inserted = self.history().insert(&graph, snapshot.window_ms, step);
        match inserted {
            Insert::New => {}
            Insert::AlreadyScored => return self.ack(message, Outcome::AlreadyScored).await,
            Insert::TooOld => return self.ack(message, Outcome::TooOld).await,
        }

        let mut backoff = self.config.retry_backoff;
        loop {
            match self.score(&graph, window_start_ms).await {
                Ok(None) => {
                    self.history().mark_scored(&graph, window_start_ms);
                    return self.ack(message, Outcome::Empty).await;
                }
                Ok(Some(report)) => match self.publish(&graph, &report).await {
                    Ok(duplicate) => {
                        self.history().mark_scored(&graph, window_start_ms);
                        self.metrics
                            .reports_published
                            .with_label_values(&[
                                self.result_kind().as_str(),
                                if duplicate { "true" } else { "false" },
                            ])
                            .inc();
                        self.metrics
                            .stream_seconds
                            .with_label_values(&[self.result_kind().as_str()])
                            .observe(started.elapsed().as_secs_f64());
                        return self.ack(message, Outcome::Scored).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, graph, window_start_ms, "publishing the report failed; retrying");
                    }
                },
                Err(error) if error.is_retryable() => {
                    tracing::warn!(%error, graph, window_start_ms, "inference failed; retrying");
                }
                Err(error) => {
                    return self.dead_letter(message, &error.to_string()).await;
                }
            }
            // Keep the message ours while retrying.
            if let Err(error) = message.ack_with(AckKind::Progress).await {
                tracing::debug!(%error, "extending the ack deadline failed");
            }
            if sleep_or_cancel(cancel, backoff).await {
                return self.abandon(message).await;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Gives a message back unhandled (shutting down): redelivered at once, to this consumer's
    /// next process or another replica.
    async fn abandon(&self, message: &Message) -> Outcome {
        if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
            tracing::debug!(%error, "nak failed; redelivered after ack_wait");
        }
        Outcome::Abandoned
    }

    /// The report of the window ending at `window_start_ms`; `None` when the window has no
    /// node at all (nothing to score).
    async fn score(&self, graph: &str, window_start_ms: i64) -> Result<Option<Report>, InferError> {
        let Some((window_ms, steps)) = self.history().window(graph, window_start_ms) else {
            return Ok(None);
        };
        engine::infer_steps(
            &self.server,
            graph,
            window_ms,
            &steps,
            self.config.top_contributions,
        )
        .await
    }

    /// Publishes `report` and waits for the PubAck; `Ok(true)` when JetStream already had it.
    async fn publish(&self, graph: &str, report: &Report) -> Result<bool, String> {
        let kind = self.result_kind();
        let subject = self.names.subject(kind, graph);
        let id = subjects::msg_id(
            kind,
            graph,
            report.window_start_ms(),
            Some(report.model_version()),
        );
        let (payload, message_name) = match report {
            Report::Anomaly(r) => (r.encode_to_vec(), v1::AnomalyReport::full_name()),
            Report::Forecast(r) => (r.encode_to_vec(), v1::ForecastReport::full_name()),
        };
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_MSG_ID, id.as_str());
        headers.insert(
            HEADER_CONTENT_TYPE,
            meshwatch_proto::content_type(&message_name).as_str(),
        );
        headers.insert(HEADER_SCHEMA, meshwatch_proto::SCHEMA);
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(headers);
        let ack = self
            .context
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|e| format!("publish to {subject}: {e}"))?
            .await
            .map_err(|e| format!("PubAck from {subject}: {e}"))?;
        Ok(ack.duplicate)
    }

    async fn ack(&self, message: &Message, outcome: Outcome) -> Outcome {
        if let Err(error) = message.double_ack().await {
            // Redelivered later; the history tells it was scored.
            tracing::warn!(%error, subject = %message.subject, "ack failed");
        }
        outcome
    }

    async fn dead_letter(&self, message: &Message, reason: &str) -> Outcome {
        let subject = self.names.dlq_subject(MessageKind::Snapshot);
        dead_letter::send(
            &self.context,
            &subject,
            &self.config.consumer,
            message,
            reason,
            self.config.retry_backoff,
        )
        .await;
        Outcome::DeadLetter
    }

    /// Reads the windows of `graph` published shortly before `message` back from the stream,
    /// and the graph's last report, into the history. Best effort: what cannot be read stays
    /// masked.
    async fn rebuild(&self, graph: &str, message: &Message, window_ms: u32) {
        self.metrics.history_rebuilds.inc();
        let Ok(info) = message.info() else {
            return;
        };
        let until = info.stream_sequence;
        let steps = self.server.info().steps;
        let windows = u32::try_from(steps + self.config.late_windows)
            .unwrap_or(u32::MAX)
            .saturating_add(2);
        let lookback = Duration::from_millis(u64::from(window_ms) * u64::from(windows))
            + Duration::from_secs(60);
        let start_time = info.published - lookback;
        let last_scored = self.last_report(graph).await;
        let read = tokio::time::timeout(
            REBUILD_TIMEOUT,
            self.read_back(graph, DeliverPolicy::ByStartTime { start_time }, until),
        )
        .await;
        let snapshots = match read {
            Ok(Ok(snapshots)) => snapshots,
            Ok(Err(error)) => {
                tracing::warn!(%error, graph, "history rebuild failed; earlier windows stay masked");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(
                    graph,
                    "history rebuild timed out; earlier windows stay masked"
                );
                Vec::new()
            }
        };
        let mut history = self.history();
        let read = snapshots.len();
        for snapshot in snapshots {
            if snapshot.window_ms == window_ms {
                let step = StepFeatures::from_snapshot(&snapshot);
                history.insert(graph, window_ms, step);
            }
        }
        if let Some(window_start_ms) = last_scored {
            history.mark_scored_through(graph, window_start_ms);
        }
        tracing::info!(graph, read, last_scored = ?last_scored, "history rebuilt from the stream");
    }

    async fn read_back(
        &self,
        graph: &str,
        deliver_policy: DeliverPolicy,
        until: u64,
    ) -> Result<Vec<meshwatch_graph::GraphSnapshot>, String> {
        let stream = self
            .context
            .get_stream(self.names.snapshots_stream())
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = stream
            .create_consumer(OrderedConfig {
                filter_subject: self.names.snapshot_subject(graph),
                deliver_policy,
                ..OrderedConfig::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut snapshots = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| e.to_string())?;
            let info = message.info().map_err(|e| e.to_string())?;
            if info.stream_sequence >= until {
                break;
            }
            if let Ok(snapshot) = meshwatch_proto::decode_snapshot(&message.payload) {
                snapshots.push(snapshot);
            }
            if info.pending == 0 {
                break;
            }
        }
        Ok(snapshots)
    }

    /// Window start of the last report published for `graph`, if any.
    async fn last_report(&self, graph: &str) -> Option<i64> {
        let stream = self
            .context
            .get_stream(self.names.results_stream())
            .await
            .ok()?;
        let subject = self.names.subject(self.result_kind(), graph);
        let message = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .ok()?;
        match self.kind {
            ModelKind::Detector => v1::AnomalyReport::decode(message.payload)
                .ok()
                .map(|r| r.window_start_ms),
            ModelKind::Forecaster => v1::ForecastReport::decode(message.payload)
                .ok()
                .map(|r| r.window_start_ms),
        }
    }
}
