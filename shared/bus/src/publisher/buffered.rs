//! A bounded buffer of closed snapshots in front of a [`SnapshotSink`], drained in order by one
//! background task that retries with exponential backoff while the bus is unreachable
//! (ARCHITECTURE.md §8: "NATS down: ingest buffers to a bound, then refuses").
//!
//! Policy: [`BufferedPublisher::try_enqueue`] never blocks and never drops: when the buffer is
//! full (by count or bytes) it hands the snapshot back in [`BufferFull`], so the ingest can
//! refuse new data with a retryable status. The head snapshot is retried until it is published;
//! only an error no retry can fix (e.g. larger than the server's max payload) drops it, counted
//! as failed and logged. Order is preserved: nothing overtakes the head.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::SnapshotSink;
use crate::config::BufferConfig;
use crate::envelope::SnapshotMessage;
use crate::metrics;
use crate::subjects::MessageKind;

/// Why a snapshot was not taken into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedReason {
    /// The buffer holds `max_snapshots` snapshots.
    Count,
    /// The snapshot would take the buffer over `max_bytes`.
    Bytes,
    /// The snapshot alone is larger than `max_bytes`; it can never be buffered.
    TooLarge,
    /// The publisher was closed (shutting down).
    Closed,
}

impl RefusedReason {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Bytes => "bytes",
            Self::TooLarge => "too_large",
            Self::Closed => "closed",
        }
    }
}

/// The buffer had no room: the snapshot comes back untouched.
#[derive(Debug, thiserror::Error)]
#[error("snapshot buffer refused the snapshot ({})", reason.as_str())]
pub struct BufferFull {
    /// Why it was refused.
    pub reason: RefusedReason,
    snapshot: SnapshotMessage,
}

impl BufferFull {
    /// The refused snapshot.
    pub fn into_snapshot(self) -> SnapshotMessage {
        self.snapshot
    }

    /// Whether waiting can help (the buffer drains); `false` for `TooLarge` and `Closed`.
    pub fn is_retryable(&self) -> bool {
        matches!(self.reason, RefusedReason::Count | RefusedReason::Bytes)
    }
}

/// [`BufferedPublisher::flush`] reached its deadline with snapshots left unpublished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{remaining} buffered snapshots could not be published before the deadline")]
pub struct Unflushed {
    /// Snapshots still buffered (including one being published).
    pub remaining: usize,
}

/// Counters of one publisher since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Snapshots published and acknowledged (duplicates included).
    pub published: u64,
    /// Of those, the ones the stream already had.
    pub duplicates: u64,
    /// Waits before trying the head snapshot again (failed attempt, or not connected).
    pub retries: u64,
    /// Snapshots dropped because of an error no retry can fix.
    pub failed: u64,
    /// Snapshots refused by `try_enqueue`.
    pub refused: u64,
    /// Snapshots in the buffer now (including one being published).
    pub buffered: usize,
    /// Encoded bytes in the buffer now.
    pub buffered_bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<SnapshotMessage>,
    bytes: u64,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    config: BufferConfig,
    queue: Mutex<Queue>,
    /// New snapshot, flush or close: wakes the drain task (from idle or from a backoff).
    wake: Notify,
    /// Snapshots buffered, for `flush` to wait on.
    pending: watch::Sender<usize>,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The bounded, ordered, retrying publish buffer. Create it inside a tokio runtime; dropping it
/// stops the drain task (anything still buffered is then counted as failed and logged — call
/// [`BufferedPublisher::flush`] first).
pub struct BufferedPublisher {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for BufferedPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedPublisher")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl BufferedPublisher {
    /// Starts the drain task publishing to `sink`. `config` should have passed
    /// [`BufferConfig::validate`]; zero bounds are raised to 1.
    pub fn spawn(sink: Arc<dyn SnapshotSink>, mut config: BufferConfig) -> Self {
        config.max_snapshots = config.max_snapshots.max(1);
        config.max_bytes = config.max_bytes.max(1);
        config.retry_initial_backoff = config.retry_initial_backoff.max(Duration::from_millis(1));
        config.retry_max_backoff = config.retry_max_backoff.max(config.retry_initial_backoff);
        let shared = Arc::new(Shared {
            config,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            pending: watch::Sender::new(0),
            counters: Counters::default(),
        });
        let task = tokio::spawn(drain(Arc::clone(&shared), sink));
        Self { shared, task }
    }

    /// Takes a closed snapshot for publishing, or hands it back if there is no room. Never
    /// blocks.
    pub fn try_enqueue(&self, snapshot: SnapshotMessage) -> Result<(), BufferFull> {
        let len = snapshot.encoded_len() as u64;
        let config = &self.shared.config;
        let mut queue = self.shared.lock();
        let refused = if queue.closed {
            Some(RefusedReason::Closed)
        } else if len > config.max_bytes {
            Some(RefusedReason::TooLarge)
        } else if queue.items.len() >= config.max_snapshots {
            Some(RefusedReason::Count)
        } else if queue.bytes + len > config.max_bytes {
            Some(RefusedReason::Bytes)
        } else {
            None
        };
        if let Some(reason) = refused {
            drop(queue);
            self.shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            metrics::refused(MessageKind::Snapshot, reason.as_str());
            return Err(BufferFull { reason, snapshot });
        }
        queue.items.push_back(snapshot);
        queue.bytes += len;
        // Updated under the lock, so `pending` never goes back to a stale count.
        self.shared.pending.send_replace(queue.items.len());
        drop(queue);
        metrics::buffered_delta(MessageKind::Snapshot, 1, len as i64);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Whether one more snapshot fits by count and the byte bound is not reached (a large
    /// snapshot may still be refused for its size). `false` once closed.
    pub fn has_room(&self) -> bool {
        let queue = self.shared.lock();
        !queue.closed
            && queue.items.len() < self.shared.config.max_snapshots
            && queue.bytes < self.shared.config.max_bytes
    }

    /// How full the buffer is, 0.0 to 1.0: the larger of the count and byte fractions.
    pub fn fill_ratio(&self) -> f64 {
        let queue = self.shared.lock();
        let by_count = queue.items.len() as f64 / self.shared.config.max_snapshots as f64;
        let by_bytes = queue.bytes as f64 / self.shared.config.max_bytes as f64;
        by_count.max(by_bytes).min(1.0)
    }

    /// Snapshots buffered now (including one being published).
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters and current fill.
    pub fn stats(&self) -> PublisherStats {
        let c = &self.shared.counters;
        let queue = self.shared.lock();
        PublisherStats {
            published: c.published.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            buffered: queue.items.len(),
            buffered_bytes: queue.bytes,
        }
    }

    /// Refuses further snapshots ([`RefusedReason::Closed`]); what is buffered keeps draining.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }

    /// Waits until everything buffered so far is published, or until `deadline`. Cuts the
    /// current backoff short to try at once. Used at shutdown, after the last window was
    /// enqueued (and usually after [`BufferedPublisher::close`]).
    pub async fn flush(&self, deadline: Instant) -> Result<(), Unflushed> {
        self.shared.wake.notify_one();
        let mut pending = self.shared.pending.subscribe();
        let drained = tokio::time::timeout_at(deadline, pending.wait_for(|n| *n == 0)).await;
        match drained {
            Ok(Ok(_)) => Ok(()),
            // Timed out, or the drain task ended (it never does while the publisher lives).
            _ => {
                let remaining = self.len();
                if remaining == 0 {
                    Ok(())
                } else {
                    Err(Unflushed { remaining })
                }
            }
        }
    }
}

impl Drop for BufferedPublisher {
    fn drop(&mut self) {
        self.task.abort();
        let queue = self.shared.lock();
        let lost = queue.items.len();
        if lost > 0 {
            error!(
                snapshots = lost,
                bytes = queue.bytes,
                "publisher dropped with unpublished snapshots"
            );
            self.shared
                .counters
                .failed
                .fetch_add(lost as u64, Ordering::Relaxed);
            metrics::failed(MessageKind::Snapshot, "unflushed", lost as u64);
            metrics::buffered_delta(MessageKind::Snapshot, -(lost as i64), -(queue.bytes as i64));
        }
    }
}

/// The drain task: publishes the head snapshot until it succeeds, then removes it.
async fn drain(shared: Arc<Shared>, sink: Arc<dyn SnapshotSink>) {
    loop {
        let head = shared.lock().items.front().cloned();
        let Some(message) = head else {
            // A notification sent before this point is kept as a permit: no lost wake-up.
            shared.wake.notified().await;
            continue;
        };
        let delivered = publish_with_retry(&shared, sink.as_ref(), &message).await;
        let mut queue = shared.lock();
        queue.items.pop_front();
        let len = message.encoded_len() as u64;
        queue.bytes = queue.bytes.saturating_sub(len);
        if !delivered {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            metrics::failed(MessageKind::Snapshot, "rejected", 1);
        }
        shared.pending.send_replace(queue.items.len());
        drop(queue);
        metrics::buffered_delta(MessageKind::Snapshot, -1, -(len as i64));
    }
}

/// Publishes until success (`true`) or an error no retry can fix (`false`).
async fn publish_with_retry(
    shared: &Shared,
    sink: &dyn SnapshotSink,
    message: &SnapshotMessage,
) -> bool {
    let config = &shared.config;
    let mut backoff = config.retry_initial_backoff;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        if sink.is_connected() {
            match sink.publish(message).await {
                Ok(outcome) => {
                    shared.counters.published.fetch_add(1, Ordering::Relaxed);
                    metrics::published(MessageKind::Snapshot, outcome.duplicate);
                    if outcome.duplicate {
                        shared.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt > 1 {
                        debug!(
                            msg_id = message.msg_id(),
                            attempt, "published after retries"
                        );
                    }
                    return true;
                }
                Err(e) if !e.is_retryable() => {
                    error!(msg_id = message.msg_id(), bytes = message.encoded_len(), error = %e,
                        "snapshot dropped: publish failed and cannot succeed on retry");
                    return false;
                }
                Err(e) => {
                    warn!(msg_id = message.msg_id(), attempt, backoff = ?backoff, error = %e,
                        "publish failed, will retry");
                }
            }
        } else {
            debug!(msg_id = message.msg_id(), attempt, backoff = ?backoff, "bus not connected, waiting");
        }
        shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        metrics::retried(MessageKind::Snapshot);
        // A flush (or a new snapshot) cuts the wait short; the doubling continues either way.
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.wake.notified() => {}
        }
        backoff = backoff.saturating_mul(2).min(config.retry_max_backoff);
    }
}

#[cfg(test)]
mod tests;
