//! Durable pull consumers as the services use them (explicit acks, from the start of the
//! stream): their settings' checks, their creation, and the cancellable backoff sleep of the
//! workers that pull from them (the inference stream, the aggregator).

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy};
use tokio_util::sync::CancellationToken;

/// The settings of a durable pull consumer and its worker's pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSettings<'a> {
    /// Durable consumer name.
    pub consumer: &'a str,
    /// Messages per pull.
    pub fetch_batch: usize,
    /// How long a pull waits.
    pub fetch_expires: Duration,
    /// Unacknowledged messages the server lets the consumer have.
    pub max_ack_pending: i64,
    /// Time before an unacknowledged message is redelivered.
    pub ack_wait: Duration,
    /// Deliveries of a message; -1: unlimited.
    pub max_deliver: i64,
    /// First backoff of the worker's retries.
    pub retry_backoff: Duration,
}

impl PullSettings<'_> {
    /// Every problem, as `"<key>: <what is wrong>"` with the services' config key names.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !is_valid_consumer_name(self.consumer) {
            problems.push("consumer: must be non-empty letters, digits, '-' or '_'".to_owned());
        }
        if self.fetch_batch == 0 || self.fetch_batch > 10_000 {
            problems.push("fetch_batch: must be between 1 and 10000".to_owned());
        }
        if self.fetch_expires < Duration::from_millis(10) {
            problems.push("fetch_expires: must be at least 10ms".to_owned());
        }
        if self.max_ack_pending < 1 {
            problems.push("max_ack_pending: must be at least 1".to_owned());
        }
        if self.ack_wait < Duration::from_secs(1) {
            problems.push("ack_wait: must be at least 1s".to_owned());
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            problems.push("max_deliver: must be -1 (unlimited) or at least 1".to_owned());
        }
        if self.retry_backoff.is_zero() {
            problems.push("retry_backoff: must be greater than 0".to_owned());
        }
        problems
    }
}

/// Whether `name` can name a durable consumer: non-empty ASCII letters, digits, `-`, `_`.
pub fn is_valid_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The durable pull consumer `settings.consumer` on `stream`, created when missing (explicit
/// acks, every message from the start of the stream, on `filter_subjects`); an existing one is
/// taken as it is.
pub async fn durable_pull(
    context: &Context,
    stream: &str,
    settings: &PullSettings<'_>,
    filter_subjects: Vec<String>,
    description: String,
) -> Result<Consumer<PullConfig>, String> {
    let handle = context
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
    let config = PullConfig {
        durable_name: Some(settings.consumer.to_owned()),
        name: Some(settings.consumer.to_owned()),
        description: Some(description),
        filter_subjects,
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: settings.max_deliver,
        max_ack_pending: settings.max_ack_pending,
        deliver_policy: DeliverPolicy::All,
        ..PullConfig::default()
    };
    handle
        .get_or_create_consumer(settings.consumer, config)
        .await
        .map_err(|e| format!("consumer {}: {e}", settings.consumer))
}

/// Sleeps `duration`; `true` when `cancel` fired first.
pub async fn sleep_or_cancel(cancel: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PullSettings<'static> {
        PullSettings {
            consumer: "detector",
            fetch_batch: 64,
            fetch_expires: Duration::from_secs(1),
            max_ack_pending: 1024,
            ack_wait: Duration::from_secs(60),
            max_deliver: 5,
            retry_backoff: Duration::from_millis(500),
        }
    }

    #[test]
    fn good_settings_have_no_problems() {
        assert!(settings().problems().is_empty());
        let unlimited = PullSettings {
            max_deliver: -1,
            ..settings()
        };
        assert!(unlimited.problems().is_empty());
    }

    #[test]
    fn every_bad_setting_is_named() {
        let bad = PullSettings {
            consumer: "a.b",
            fetch_batch: 0,
            fetch_expires: Duration::ZERO,
            max_ack_pending: 0,
            ack_wait: Duration::ZERO,
            max_deliver: 0,
            retry_backoff: Duration::ZERO,
        };
        let problems = bad.problems();
        for key in [
            "consumer",
            "fetch_batch",
            "fetch_expires",
            "max_ack_pending",
            "ack_wait",
            "max_deliver",
            "retry_backoff",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(&format!("{key}:"))),
                "{key}: {problems:?}"
            );
        }
        assert!(!is_valid_consumer_name(""));
        assert!(is_valid_consumer_name("aggregator-results_2"));
    }
}
