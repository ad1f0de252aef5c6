//! Meshwatch's message bus (ARCHITECTURE.md §6, §8): NATS JetStream subjects, streams and
//! envelopes, and the publishers the ingest hands its closed snapshots to.
//!
//! - [`consumer`]: durable pull consumers: settings checks, creation, the workers' backoff;
//! - [`dead_letter`]: poison messages to `meshwatch.v1.dlq.<kind>` with a reason;
//! - [`subjects`]: every subject, stream, consumer and message-id format, in one place;
//! - [`config`]: [`NatsConfig`] (connection, streams, publish buffer), strictly parsed;
//! - [`envelope`]: [`SnapshotMessage`], a snapshot encoded once with its headers;
//! - [`jetstream`]: [`connect`], [`ensure_streams`] (idempotent), [`publish_snapshot`] with
//!   `Nats-Msg-Id` de-duplication;
//! - [`publisher`]: the [`SnapshotSink`] trait with a JetStream and an in-process
//!   implementation, and the bounded, ordered, retrying [`BufferedPublisher`];
//! - [`metrics`]: `meshwatch_bus_*` Prometheus metrics, registered by the service.

pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod envelope;
pub mod error;
pub mod jetstream;
pub mod metrics;
pub mod publisher;
pub mod subjects;

pub use config::{BufferConfig, NatsConfig, Secret, TlsConfig};
pub use envelope::SnapshotMessage;
pub use error::BusError;
pub use jetstream::{
    PublishOutcome, StreamChange, connect, connect_in_background, context, ensure_stream,
    ensure_streams, fetch_batch, publish_snapshot, stream_configs,
};
pub use publisher::{
    BufferFull, BufferedPublisher, InProcessSink, JetStreamSink, PublisherStats, RefusedReason,
    SnapshotSink, Unflushed,
};
pub use subjects::{MessageKind, Names};
