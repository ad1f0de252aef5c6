//! [`Writer`]: buffers rows in front of a [`Store`] and writes them in batches, handing back
//! what to acknowledge only after the store acknowledged the rows.

use std::time::Duration;

use tokio::time::Instant;

use crate::{BatchConfig, Rows, Store, StoreError};

/// A batching writer in front of a [`Store`].
///
/// Each [`Writer::push`] adds one unit of work, typically one message's rows, with its
/// acknowledgement token `A` (e.g. a JetStream message handle). A flush writes all buffered
/// rows, then returns the tokens: the caller acks them only then, so nothing is acked before
/// it is durable. A failed flush keeps rows and tokens for the next attempt (the store's keys
/// make a partly written batch harmless to write again).
///
/// The writer does no I/O by itself and owns no task: the caller's loop decides when to flush,
/// with [`Writer::is_full`] after a push and [`Writer::deadline`] as its timer:
///
/// ```no_run
/// # async fn run(mut writer: meshwatch_store::Writer<meshwatch_store::ClickHouseStore, u64>,
/// #              mut next: tokio::sync::mpsc::Receiver<(meshwatch_store::Rows, u64)>) {
/// loop {
///     let deadline = writer.deadline();
///     tokio::select! {
///         message = next.recv() => {
///             let Some((rows, ack)) = message else { break };
///             writer.push(rows, ack);
///             if !writer.is_full() { continue; }
///         }
///         () = async { tokio::time::sleep_until(deadline.expect("checked")).await },
///             if deadline.is_some() => {}
///     }
///     match writer.flush().await {
///         Ok(flushed) => { /* ack flushed.acks */ }
///         Err(error) if error.is_retryable() => { /* back off, stop pulling, retry */ }
///         Err(error) => { /* poison: dead-letter the batch's messages */ }
///     }
/// }
/// # }
/// ```
///
/// Bounded memory: stop pulling new messages while [`Writer::is_full`] holds and a flush is
/// failing (the broker keeps them); the buffer then never grows far past one batch.
#[derive(Debug)]
pub struct Writer<S, A> {
    store: S,
    config: BatchConfig,
    rows: Rows,
    bytes: usize,
    acks: Vec<A>,
    oldest: Option<Instant>,
}

/// The result of a successful [`Writer::flush`].
#[derive(Debug)]
#[must_use = "the tokens must be acknowledged"]
pub struct Flushed<A> {
    /// The tokens of every unit written, in push order: ack them now.
    pub acks: Vec<A>,
    /// Rows written.
    pub rows: usize,
    /// Approximate bytes written.
    pub bytes: usize,
    /// How long the store took.
    pub elapsed: Duration,
}

impl<S: Store, A> Writer<S, A> {
    /// A writer in front of `store` with the given limits (validate them first with
    /// [`BatchConfig::validate`]).
    pub fn new(store: S, config: BatchConfig) -> Self {
        Self {
            store,
            config,
            rows: Rows::default(),
            bytes: 0,
            acks: Vec::new(),
            oldest: None,
        }
    }

    /// The store written to.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The batch limits.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// Buffers one unit of rows with its token (never writes). A unit without rows still
    /// counts: its token is handed back by the next flush.
    pub fn push(&mut self, rows: Rows, ack: A) {
        self.push_at(rows, ack, Instant::now());
    }

    /// [`Writer::push`] with the time of the push given (for tests and replays).
    pub fn push_at(&mut self, rows: Rows, ack: A, now: Instant) {
        self.bytes += rows.approx_bytes();
        self.rows.append(rows);
        self.acks.push(ack);
        self.oldest.get_or_insert(now);
    }

    /// Buffered rows.
    pub fn pending_rows(&self) -> usize {
        self.rows.len()
    }

    /// Approximate buffered bytes.
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// Buffered units (tokens).
    pub fn pending_units(&self) -> usize {
        self.acks.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// Whether the row or byte limit is reached: flush now.
    pub fn is_full(&self) -> bool {
        self.rows.len() >= self.config.max_rows || self.bytes >= self.config.max_bytes
    }

    /// When the oldest buffered unit reaches `max_delay`; `None` when nothing is buffered.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|oldest| oldest + self.config.max_delay)
    }

    /// Whether a flush is due at `now`: full, or the oldest unit is `max_delay` old.
    pub fn is_due(&self, now: Instant) -> bool {
        self.is_full() || self.deadline().is_some_and(|deadline| deadline <= now)
    }

    /// Writes everything buffered; returns once the store acknowledged it, with the tokens to
    /// ack. On error nothing is dropped: the same rows and tokens are written by the next call.
    pub async fn flush(&mut self) -> Result<Flushed<A>, StoreError> {
        let started = Instant::now();
        if !self.rows.is_empty() {
            self.store.insert(&self.rows).await?;
        }
        let flushed = Flushed {
            acks: std::mem::take(&mut self.acks),
            rows: self.rows.len(),
            bytes: self.bytes,
            elapsed: started.elapsed(),
        };
        self.rows = Rows::default();
        self.bytes = 0;
        self.oldest = None;
        Ok(flushed)
    }

    /// Flushes when [`Writer::is_due`] at `now`; `Ok(None)` when it is not.
    pub async fn flush_if_due(&mut self, now: Instant) -> Result<Option<Flushed<A>>, StoreError> {
        if self.is_due(now) && !self.is_empty() {
            self.flush().await.map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ForecastRow;
    use crate::sink::StoreFuture;

    /// A store that records what it was given and fails while `fail` is set.
    #[derive(Debug, Default)]
    struct Recording {
        batches: Mutex<Vec<usize>>,
        fail: Mutex<bool>,
    }

    impl Store for Recording {
        fn insert<'a>(&'a self, rows: &'a Rows) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                if *self.fail.lock().expect("lock") {
                    return Err(StoreError::Timeout(Duration::from_secs(1)));
                }
                self.batches.lock().expect("lock").push(rows.len());
                Ok(())
            })
        }

        fn kind(&self) -> &'static str {
            "recording"
        }
    }

    fn forecasts(n: usize) -> Rows {
        (0..n)
            .map(|i| ForecastRow {
                graph: "g".to_owned(),
                service: format!("s{i}"),
                metric: "m".to_owned(),
                issued_at: 0,
                target_time: 1,
                horizon: 1,
                value: 1.0,
                lower: 0.0,
                upper: 2.0,
                model_version: "v".to_owned(),
            })
            .collect::<Vec<_>>()
            .into()
    }

    fn config(max_rows: usize, max_bytes: usize, max_delay_ms: u64) -> BatchConfig {
        BatchConfig {
            max_rows,
            max_bytes,
            max_delay: Duration::from_millis(max_delay_ms),
        }
    }

    #[tokio::test]
    async fn full_by_rows_bytes_or_age() {
        let t0 = Instant::now();
        let mut by_rows = Writer::new(Recording::default(), config(5, usize::MAX, 60_000));
        by_rows.push_at(forecasts(4), 1, t0);
        assert!(!by_rows.is_due(t0));
        by_rows.push_at(forecasts(1), 2, t0);
        assert!(by_rows.is_full());

        let mut by_bytes = Writer::new(Recording::default(), config(usize::MAX, 100, 60_000));
        by_bytes.push_at(forecasts(1), 1, t0);
        assert!(!by_bytes.is_full());
        by_bytes.push_at(forecasts(1), 2, t0);
        assert!(by_bytes.is_full(), "{} bytes", by_bytes.pending_bytes());

        let mut by_age = Writer::new(Recording::default(), config(100, usize::MAX, 500));
        assert_eq!(by_age.deadline(), None);
        by_age.push_at(forecasts(1), 1, t0);
        by_age.push_at(forecasts(1), 2, t0 + Duration::from_millis(300));
        assert_eq!(by_age.deadline(), Some(t0 + Duration::from_millis(500)));
        assert!(!by_age.is_due(t0 + Duration::from_millis(499)));
        assert!(by_age.is_due(t0 + Duration::from_millis(500)));
        let flushed = by_age
            .flush_if_due(t0 + Duration::from_millis(500))
            .await
            .expect("flush")
            .expect("due");
        assert_eq!(flushed.acks, vec![1, 2]);
        assert_eq!(flushed.rows, 2);
        assert_eq!(by_age.deadline(), None);
    }

    #[tokio::test]
    async fn failed_flush_keeps_rows_and_tokens() {
        let mut writer = Writer::new(Recording::default(), config(10, usize::MAX, 1000));
        writer.push(forecasts(3), "a");
        writer.push(Rows::default(), "b");
        *writer.store().fail.lock().expect("lock") = true;
        let error = writer.flush().await.expect_err("fails");
        assert!(error.is_retryable());
        assert_eq!(writer.pending_rows(), 3);
        assert_eq!(writer.pending_units(), 2);
        *writer.store().fail.lock().expect("lock") = false;
        let flushed = writer.flush().await.expect("flush");
        assert_eq!(flushed.acks, vec!["a", "b"]);
        assert!(writer.is_empty());
        assert_eq!(*writer.store().batches.lock().expect("lock"), vec![3]);
    }

    #[tokio::test]
    async fn units_without_rows_are_acked_without_a_write() {
        let mut writer = Writer::new(Recording::default(), config(10, usize::MAX, 1000));
        writer.push(Rows::default(), 7);
        let flushed = writer.flush().await.expect("flush");
        assert_eq!(flushed.acks, vec![7]);
        assert!(writer.store().batches.lock().expect("lock").is_empty());
    }
}
