//! Where the ingest's closed snapshots go: the [`SnapshotSink`] trait, its NATS JetStream and
//! in-process implementations, and the [`BufferedPublisher`] in front of either.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::Context;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::config::NatsConfig;
use crate::envelope::SnapshotMessage;
use crate::error::BusError;
use crate::jetstream::{self, PublishOutcome};
use crate::subjects::Names;

mod buffered;

pub use buffered::{BufferFull, BufferedPublisher, PublisherStats, RefusedReason, Unflushed};

/// A destination for graph snapshots. Publishing returns once the snapshot is durable
/// (JetStream PubAck) or handed to every in-process subscriber.
pub trait SnapshotSink: Send + Sync + fmt::Debug {
    /// Publishes one snapshot. Publishing the same snapshot again is harmless (JetStream
    /// de-duplicates by message id).
    fn publish<'a>(
        &'a self,
        message: &'a SnapshotMessage,
    ) -> BoxFuture<'a, Result<PublishOutcome, BusError>>;

    /// Whether a publish can succeed right now (connected to the server); used to wait instead
    /// of piling up publishes while disconnected, and for readiness.
    fn is_connected(&self) -> bool {
        true
    }
}

/// Publishes snapshots to NATS JetStream.
#[derive(Clone)]
pub struct JetStreamSink {
    context: Context,
    names: Names,
    config: Arc<NatsConfig>,
    /// The background stream set-up of [`JetStreamSink::start`], stopped with the last clone.
    ensure_task: Option<Arc<AbortOnDrop>>,
    /// Whether the streams were created or checked.
    streams_ensured: Arc<AtomicBool>,
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for JetStreamSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamSink")
            .field("names", &self.names)
            .field("state", &self.context.client().connection_state())
            .field("streams_ensured", &self.streams_ensured())
            .finish_non_exhaustive()
    }
}

impl JetStreamSink {
    /// A sink on an existing context (its streams are assumed to be ensured).
    pub fn new(context: Context, config: &NatsConfig) -> Result<Self, BusError> {
        let names = config
            .names()
            .map_err(|e| BusError::Config(format!("namespace: {e}")))?;
        Ok(Self {
            context,
            names,
            config: Arc::new(config.clone()),
            ensure_task: None,
            streams_ensured: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Connects, ensures the streams and returns the sink; fails if NATS is unreachable.
    pub async fn connect(config: &NatsConfig) -> Result<Self, BusError> {
        let client = jetstream::connect(config).await?;
        let context = jetstream::context(client, config);
        jetstream::ensure_streams(&context, config).await?;
        let sink = Self::new(context, config)?;
        sink.streams_ensured.store(true, Ordering::Release);
        Ok(sink)
    }

    /// Returns at once, even while NATS is unreachable (only configuration problems are
    /// errors): the client connects in the background, and a background task ensures the
    /// streams as soon as the server answers (retrying with backoff; an incompatible stream is
    /// logged as an error). Until connected, [`SnapshotSink::is_connected`] is `false`, so a
    /// [`BufferedPublisher`] in front buffers.
    pub async fn start(config: &NatsConfig) -> Result<Self, BusError> {
        let client = jetstream::connect_in_background(config).await?;
        let context = jetstream::context(client, config);
        let mut sink = Self::new(context, config)?;
        let task = tokio::spawn(ensure_when_reachable(
            sink.context.clone(),
            Arc::clone(&sink.config),
            Arc::clone(&sink.streams_ensured),
        ));
        sink.ensure_task = Some(Arc::new(AbortOnDrop(task)));
        Ok(sink)
    }

    /// Whether the streams have been created or checked: at once after
    /// [`JetStreamSink::connect`], once the background set-up succeeded after
    /// [`JetStreamSink::start`]. With [`SnapshotSink::is_connected`], the readiness of a
    /// publishing service.
    pub fn streams_ensured(&self) -> bool {
        self.streams_ensured.load(Ordering::Acquire)
    }

    /// The JetStream context (for consumers sharing the connection).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The subject and stream names in use.
    pub fn names(&self) -> &Names {
        &self.names
    }
}

impl SnapshotSink for JetStreamSink {
    fn publish<'a>(
        &'a self,
        message: &'a SnapshotMessage,
    ) -> BoxFuture<'a, Result<PublishOutcome, BusError>> {
        Box::pin(async move {
            match jetstream::publish_snapshot(&self.context, &self.names, message).await {
                Err(e) if jetstream::is_stream_missing(&e) => {
                    // The stream vanished (deleted, or a server that lost its store): recreate
                    // it and try once more.
                    warn!(error = %e, "no stream for snapshots, ensuring streams");
                    jetstream::ensure_streams(&self.context, &self.config).await?;
                    jetstream::publish_snapshot(&self.context, &self.names, message).await
                }
                other => other,
            }
        })
    }

    fn is_connected(&self) -> bool {
        self.context.client().connection_state() == State::Connected
    }
}

/// Ensures the streams once the client is connected, retrying what can succeed later.
async fn ensure_when_reachable(
    context: Context,
    config: Arc<NatsConfig>,
    ensured: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if context.client().connection_state() == State::Connected {
            match jetstream::ensure_streams(&context, &config).await {
                Ok(_) => {
                    ensured.store(true, Ordering::Release);
                    return;
                }
                Err(e) if e.is_retryable() => {
                    warn!(error = %e, backoff = ?backoff, "cannot ensure streams yet, will retry");
                }
                Err(e) => {
                    error!(error = %e, "cannot ensure streams; publishing may fail until resolved");
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(Duration::from_secs(10));
    }
}

/// The in-process bus of the all-in-one mode: every subscriber gets every snapshot, in
/// publish order, through its own bounded channel. A full channel makes `publish` wait
/// (backpressure; the [`BufferedPublisher`] in front keeps the ingest from blocking).
#[derive(Debug, Clone, Default)]
pub struct InProcessSink {
    subscribers: Arc<Mutex<Vec<mpsc::Sender<SnapshotMessage>>>>,
}

impl InProcessSink {
    /// A bus without subscribers (publishing fails until one subscribes).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscriber receiving every snapshot published from now on; its channel holds
    /// `capacity` snapshots (at least 1).
    pub fn subscribe(&self, capacity: usize) -> mpsc::Receiver<SnapshotMessage> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }

    /// Ends the bus: every subscriber's channel closes once it has received what was already
    /// sent, and later publishes fail with [`BusError::NoSubscribers`]. The all-in-one closes it
    /// when the ingest has drained, so that the consumers know nothing more will come.
    pub fn close(&self) {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(|s| !s.is_closed());
        subscribers.len()
    }
}

impl SnapshotSink for InProcessSink {
    fn publish<'a>(
        &'a self,
        message: &'a SnapshotMessage,
    ) -> BoxFuture<'a, Result<PublishOutcome, BusError>> {
        Box::pin(async move {
            let senders = self
                .subscribers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let mut delivered = 0;
            for sender in &senders {
                if sender.send(message.clone()).await.is_ok() {
                    delivered += 1;
                }
            }
            if delivered < senders.len() {
                self.subscribers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|s| !s.is_closed());
            }
            if delivered == 0 {
                return Err(BusError::NoSubscribers);
            }
            Ok(PublishOutcome {
                duplicate: false,
                sequence: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::snapshot;

    #[tokio::test]
    async fn in_process_sink_delivers_to_every_subscriber_in_order() {
        let sink = InProcessSink::new();
        let mut a = sink.subscribe(4);
        let mut b = sink.subscribe(4);
        for w in 0..3 {
            let m = SnapshotMessage::from_domain(&snapshot("g", w * 30_000));
            let outcome = sink.publish(&m).await.expect("delivered");
            assert!(!outcome.duplicate);
        }
        for rx in [&mut a, &mut b] {
            for w in 0..3 {
                let m = rx.recv().await.expect("message");
                assert_eq!(m.window_start_ms(), w * 30_000);
                assert_eq!(m.decode().map(|s| s.window_start_ms), Ok(w * 30_000));
            }
        }
    }

    #[tokio::test]
    async fn buffered_publisher_over_the_in_process_sink_delivers_in_order() {
        let sink = InProcessSink::new();
        let mut rx = sink.subscribe(1);
        let publisher =
            BufferedPublisher::spawn(Arc::new(sink.clone()), crate::BufferConfig::default());
        for w in 0..5 {
            publisher
                .try_enqueue(SnapshotMessage::from_domain(&snapshot("g", w)))
                .expect("room");
        }
        for w in 0..5 {
            let m = rx.recv().await.expect("message");
            assert_eq!(m.window_start_ms(), w);
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        publisher.flush(deadline).await.expect("flushed");
        assert_eq!(publisher.stats().published, 5);
    }

    #[tokio::test]
    async fn closing_the_in_process_sink_ends_subscriptions_after_what_was_sent() {
        let sink = InProcessSink::new();
        let mut rx = sink.subscribe(4);
        let m = SnapshotMessage::from_domain(&snapshot("g", 0));
        sink.publish(&m).await.expect("delivered");
        sink.close();
        assert_eq!(rx.recv().await, Some(m.clone()));
        assert_eq!(rx.recv().await, None);
        assert!(matches!(
            sink.publish(&m).await,
            Err(BusError::NoSubscribers)
        ));
    }

    #[tokio::test]
    async fn in_process_sink_without_subscribers_fails() {
        let sink = InProcessSink::new();
        let m = SnapshotMessage::from_domain(&snapshot("g", 0));
        assert!(matches!(
            sink.publish(&m).await,
            Err(BusError::NoSubscribers)
        ));
        let rx = sink.subscribe(1);
        drop(rx);
        assert!(matches!(
            sink.publish(&m).await,
            Err(BusError::NoSubscribers)
        ));
        assert_eq!(sink.subscriber_count(), 0);
        let mut rx = sink.subscribe(1);
        sink.publish(&m).await.expect("delivered");
        assert_eq!(rx.recv().await, Some(m));
    }
}
