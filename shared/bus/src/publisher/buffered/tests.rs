use std::sync::atomic::{AtomicBool, AtomicUsize};

use futures::future::BoxFuture;

use super::*;
use crate::envelope::tests::snapshot;
use crate::error::BusError;
use crate::jetstream::PublishOutcome;

/// A sink that fails its first `fail_first` attempts (retryably), refuses `poison` for good,
/// can pretend to be disconnected, and records what it published.
#[derive(Debug, Default)]
struct FakeSink {
    fail_first: AtomicUsize,
    disconnected: AtomicBool,
    poison: Option<String>,
    published: Mutex<Vec<i64>>,
    attempts: AtomicUsize,
}

impl FakeSink {
    fn published(&self) -> Vec<i64> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl SnapshotSink for FakeSink {
    fn publish<'a>(
        &'a self,
        message: &'a SnapshotMessage,
    ) -> BoxFuture<'a, Result<PublishOutcome, BusError>> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.poison.as_deref() == Some(message.msg_id()) {
                return Err(BusError::Config("poison".to_owned()));
            }
            let failing = self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(BusError::NoSubscribers);
            }
            let mut published = self
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let window = message.window_start_ms() - BASE_MS;
            let duplicate = published.contains(&window);
            published.push(window);
            Ok(PublishOutcome {
                duplicate,
                sequence: Some(published.len() as u64),
            })
        })
    }

    fn is_connected(&self) -> bool {
        !self.disconnected.load(Ordering::SeqCst)
    }
}

/// Window starts with equally long encodings, so every test message has the same size.
const BASE_MS: i64 = 1_764_000_000_000;

fn message(window: i64) -> SnapshotMessage {
    SnapshotMessage::from_domain(&snapshot("g", BASE_MS + window))
}

fn config(max_snapshots: usize) -> BufferConfig {
    BufferConfig {
        max_snapshots,
        max_bytes: 1 << 20,
        retry_initial_backoff: Duration::from_millis(100),
        retry_max_backoff: Duration::from_secs(5),
    }
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test(start_paused = true)]
async fn publishes_in_order_through_failures() {
    let sink = Arc::new(FakeSink {
        fail_first: AtomicUsize::new(3),
        ..FakeSink::default()
    });
    let publisher = BufferedPublisher::spawn(sink.clone(), config(8));
    for w in 0..3 {
        publisher.try_enqueue(message(w)).expect("room");
    }
    publisher.flush(deadline(60)).await.expect("flushed");
    assert_eq!(sink.published(), [0, 1, 2]);
    let stats = publisher.stats();
    assert_eq!((stats.published, stats.retries, stats.failed), (3, 3, 0));
    assert_eq!((stats.buffered, stats.buffered_bytes), (0, 0));
    assert!(publisher.is_empty());
}

#[tokio::test(start_paused = true)]
async fn duplicates_are_counted() {
    let sink = Arc::new(FakeSink::default());
    let publisher = BufferedPublisher::spawn(sink.clone(), config(8));
    publisher.try_enqueue(message(0)).expect("room");
    publisher.try_enqueue(message(0)).expect("room");
    publisher.flush(deadline(5)).await.expect("flushed");
    assert_eq!(publisher.stats().duplicates, 1);
}

#[tokio::test(start_paused = true)]
async fn full_buffer_refuses_and_hands_the_snapshot_back() {
    let sink = Arc::new(FakeSink::default());
    sink.disconnected.store(true, Ordering::SeqCst);
    let publisher = BufferedPublisher::spawn(sink.clone(), config(2));
    assert!(publisher.has_room());
    publisher.try_enqueue(message(0)).expect("room");
    assert!((publisher.fill_ratio() - 0.5).abs() < 1e-9);
    publisher.try_enqueue(message(1)).expect("room");
    assert!(!publisher.has_room());
    assert_eq!(publisher.fill_ratio(), 1.0);
    let refused = publisher.try_enqueue(message(2)).expect_err("full");
    assert_eq!(refused.reason, RefusedReason::Count);
    assert!(refused.is_retryable());
    assert_eq!(refused.into_snapshot(), message(2));
    assert_eq!(publisher.stats().refused, 1);
    // Time passes, nothing is lost or published while disconnected.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(publisher.len(), 2);
    assert!(publisher.stats().retries > 0);
    assert_eq!(sink.attempts.load(Ordering::SeqCst), 0);
    sink.disconnected.store(false, Ordering::SeqCst);
    publisher.flush(deadline(60)).await.expect("flushed");
    assert_eq!(sink.published(), [0, 1]);
    assert!(publisher.has_room());
}

#[tokio::test(start_paused = true)]
async fn byte_bound_refuses_and_oversized_snapshots_never_fit() {
    let sink = Arc::new(FakeSink::default());
    sink.disconnected.store(true, Ordering::SeqCst);
    let one = message(0).encoded_len() as u64;
    let publisher = BufferedPublisher::spawn(
        sink.clone(),
        BufferConfig {
            max_bytes: 2 * one + one / 2,
            ..config(100)
        },
    );
    publisher.try_enqueue(message(0)).expect("room");
    publisher.try_enqueue(message(1)).expect("room");
    assert!(publisher.has_room());
    let refused = publisher.try_enqueue(message(2)).expect_err("bytes");
    assert_eq!(refused.reason, RefusedReason::Bytes);
    assert_eq!(publisher.stats().buffered_bytes, 2 * one);

    let tiny = BufferedPublisher::spawn(
        sink,
        BufferConfig {
            max_bytes: one - 1,
            ..config(100)
        },
    );
    let refused = tiny.try_enqueue(message(0)).expect_err("too large");
    assert_eq!(refused.reason, RefusedReason::TooLarge);
    assert!(!refused.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn flush_reports_what_could_not_be_published() {
    let sink = Arc::new(FakeSink::default());
    sink.disconnected.store(true, Ordering::SeqCst);
    let publisher = BufferedPublisher::spawn(sink, config(8));
    for w in 0..3 {
        publisher.try_enqueue(message(w)).expect("room");
    }
    assert_eq!(
        publisher.flush(deadline(5)).await,
        Err(Unflushed { remaining: 3 })
    );
}

#[tokio::test(start_paused = true)]
async fn flush_cuts_a_long_backoff_short() {
    let sink = Arc::new(FakeSink::default());
    sink.disconnected.store(true, Ordering::SeqCst);
    let publisher = BufferedPublisher::spawn(
        sink.clone(),
        BufferConfig {
            retry_initial_backoff: Duration::from_secs(600),
            retry_max_backoff: Duration::from_secs(600),
            ..config(8)
        },
    );
    publisher.try_enqueue(message(0)).expect("room");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Waiting out the first 600 s backoff now (the enqueue's wake-up may have cut an
    // earlier one short).
    assert!(publisher.stats().retries >= 1);
    sink.disconnected.store(false, Ordering::SeqCst);
    publisher
        .flush(deadline(1))
        .await
        .expect("flush retried at once");
    assert_eq!(sink.published(), [0]);
}

#[tokio::test(start_paused = true)]
async fn unfixable_error_drops_only_that_snapshot_and_counts_it() {
    let poison = message(1).msg_id().to_owned();
    let sink = Arc::new(FakeSink {
        poison: Some(poison),
        ..FakeSink::default()
    });
    let publisher = BufferedPublisher::spawn(sink.clone(), config(8));
    for w in 0..3 {
        publisher.try_enqueue(message(w)).expect("room");
    }
    publisher.flush(deadline(5)).await.expect("flushed");
    assert_eq!(sink.published(), [0, 2]);
    let stats = publisher.stats();
    assert_eq!((stats.published, stats.failed), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn closed_publisher_refuses_but_drains() {
    let sink = Arc::new(FakeSink::default());
    sink.disconnected.store(true, Ordering::SeqCst);
    let publisher = BufferedPublisher::spawn(sink.clone(), config(8));
    publisher.try_enqueue(message(0)).expect("room");
    publisher.close();
    assert!(!publisher.has_room());
    let refused = publisher.try_enqueue(message(1)).expect_err("closed");
    assert_eq!(refused.reason, RefusedReason::Closed);
    sink.disconnected.store(false, Ordering::SeqCst);
    publisher.flush(deadline(60)).await.expect("flushed");
    assert_eq!(sink.published(), [0]);
}

#[tokio::test(start_paused = true)]
async fn dropping_with_buffered_snapshots_counts_them_failed() {
    let sink = Arc::new(FakeSink::default());
    sink.disconnected.store(true, Ordering::SeqCst);
    let publisher = BufferedPublisher::spawn(sink, config(8));
    publisher.try_enqueue(message(0)).expect("room");
    let shared = Arc::clone(&publisher.shared);
    drop(publisher);
    assert_eq!(shared.counters.failed.load(Ordering::Relaxed), 1);
}
