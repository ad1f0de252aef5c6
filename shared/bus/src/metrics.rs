//! Prometheus metrics of the bus (`meshwatch_bus_*`). They are process-wide and live outside
//! any registry until the service calls [`register`] with its own registry.
//!
//! Labels come from closed sets: `kind` ∈ {snapshot, score, forecast}; `reason` as documented
//! per metric.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::subjects::MessageKind;

static PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "meshwatch_bus_published_messages_total",
            "Messages published and acknowledged by the bus (duplicates included)",
        ),
        &["kind"],
    )
    .expect("static metric definition is valid")
});

static DUPLICATES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "meshwatch_bus_duplicate_messages_total",
            "Published messages the stream already held (same Nats-Msg-Id)",
        ),
        &["kind"],
    )
    .expect("static metric definition is valid")
});

static RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "meshwatch_bus_publish_retries_total",
            "Backoff waits before publishing a buffered message again (failure or not connected)",
        ),
        &["kind"],
    )
    .expect("static metric definition is valid")
});

static FAILED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "meshwatch_bus_failed_messages_total",
            "Buffered messages never published; reason: rejected (error no retry fixes), \
             unflushed (still buffered when the publisher stopped)",
        ),
        &["kind", "reason"],
    )
    .expect("static metric definition is valid")
});

static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "meshwatch_bus_refused_messages_total",
            "Messages the publish buffer refused; reason: count, bytes, too_large, closed",
        ),
        &["kind", "reason"],
    )
    .expect("static metric definition is valid")
});

static BUFFERED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    IntGaugeVec::new(
        Opts::new(
            "meshwatch_bus_buffered_messages",
            "Messages waiting in the publish buffer",
        ),
        &["kind"],
    )
    .expect("static metric definition is valid")
});

static BUFFERED_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    IntGaugeVec::new(
        Opts::new(
            "meshwatch_bus_buffered_bytes",
            "Encoded bytes waiting in the publish buffer",
        ),
        &["kind"],
    )
    .expect("static metric definition is valid")
});

static PUBLISH_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        HistogramOpts::new(
            "meshwatch_bus_publish_duration_seconds",
            "Time from publish to PubAck of successful JetStream publishes",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["kind"],
    )
    .expect("static metric definition is valid")
});

/// Registers every bus metric in `registry`. Registering again in the same registry is a
/// no-op.
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    let collectors: [Box<dyn Collector>; 8] = [
        Box::new(PUBLISHED.clone()),
        Box::new(DUPLICATES.clone()),
        Box::new(RETRIES.clone()),
        Box::new(FAILED.clone()),
        Box::new(REFUSED.clone()),
        Box::new(BUFFERED.clone()),
        Box::new(BUFFERED_BYTES.clone()),
        Box::new(PUBLISH_DURATION.clone()),
    ];
    for collector in collectors {
        match registry.register(collector) {
            Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(crate) fn published(kind: MessageKind, duplicate: bool) {
    PUBLISHED.with_label_values(&[kind.as_str()]).inc();
    if duplicate {
        DUPLICATES.with_label_values(&[kind.as_str()]).inc();
    }
}

pub(crate) fn retried(kind: MessageKind) {
    RETRIES.with_label_values(&[kind.as_str()]).inc();
}

pub(crate) fn failed(kind: MessageKind, reason: &'static str, n: u64) {
    FAILED.with_label_values(&[kind.as_str(), reason]).inc_by(n);
}

pub(crate) fn refused(kind: MessageKind, reason: &'static str) {
    REFUSED.with_label_values(&[kind.as_str(), reason]).inc();
}

pub(crate) fn buffered_delta(kind: MessageKind, messages: i64, bytes: i64) {
    BUFFERED.with_label_values(&[kind.as_str()]).add(messages);
    BUFFERED_BYTES
        .with_label_values(&[kind.as_str()])
        .add(bytes);
}

pub(crate) fn observe_publish(kind: MessageKind, elapsed: Duration) {
    PUBLISH_DURATION
        .with_label_values(&[kind.as_str()])
        .observe(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_twice_is_fine_and_names_are_prefixed() {
        let registry = Registry::new();
        register(&registry).expect("first registration");
        register(&registry).expect("second registration is a no-op");
        published(MessageKind::Snapshot, true);
        let families = registry.gather();
        assert!(!families.is_empty());
        for family in &families {
            assert!(
                family.name().starts_with("meshwatch_bus_"),
                "{}",
                family.name()
            );
        }
        assert!(
            families
                .iter()
                .any(|f| f.name() == "meshwatch_bus_duplicate_messages_total")
        );
    }
}
