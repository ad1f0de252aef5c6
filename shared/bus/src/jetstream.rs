//! Connecting to NATS, creating Meshwatch's JetStream streams and publishing with de-duplication.

use std::time::Instant;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectOptions, ServerAddr};
use tracing::{debug, info, warn};

use crate::config::NatsConfig;
use crate::envelope::SnapshotMessage;
use crate::error::BusError;
use crate::metrics;
use crate::subjects::{MessageKind, Names};

/// What became of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The stream already held a message with this `Nats-Msg-Id` (within its duplicate
    /// window): nothing new was stored.
    pub duplicate: bool,
    /// Stream sequence of the stored (or original) message; `None` on the in-process bus.
    pub sequence: Option<u64>,
}

/// What [`ensure_stream`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamChange {
    /// The stream did not exist and was created.
    Created,
    /// The stream existed with other limits or fewer subjects and was updated.
    Updated,
    /// The stream existed as wanted.
    Unchanged,
}

/// Connects to the configured server(s). The client reconnects on its own afterwards; a
/// server that is down at this moment is an error (the caller decides whether to retry).
pub async fn connect(config: &NatsConfig) -> Result<Client, BusError> {
    establish(config, false).await
}

/// Like [`connect`], but returns at once while the client keeps trying to connect in the
/// background (state `Pending` until it succeeds). Only configuration problems are errors.
/// For services that should start, and buffer, while NATS is not reachable yet.
pub async fn connect_in_background(config: &NatsConfig) -> Result<Client, BusError> {
    establish(config, true).await
}

async fn establish(config: &NatsConfig, in_background: bool) -> Result<Client, BusError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(BusError::Config(problems.join("; ")));
    }
    let addrs = config
        .server_urls()
        .map(|url| url.parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BusError::Config(format!("url: {e}")))?;

    let mut options = ConnectOptions::new()
        .connection_timeout(config.connect_timeout)
        .request_timeout(Some(config.request_timeout));
    if in_background {
        options = options.retry_on_initial_connect();
    }
    if let Some(path) = &config.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| BusError::ReadFile {
                what: "credentials file",
                path: path.display().to_string(),
                source,
            })?;
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(token) = &config.token {
        options = options.token(token.expose().to_owned());
    }
    if let Some(tls) = &config.tls {
        options = options.require_tls(tls.require);
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    options = options.event_callback(|event| async move {
        match event {
            async_nats::Event::Connected => info!("nats connected"),
            async_nats::Event::Disconnected => warn!("nats disconnected"),
            other => debug!(event = %other, "nats event"),
        }
    });

    let url = config.redacted_url();
    let client = options
        .connect(addrs)
        .await
        .map_err(|source| BusError::Connect {
            url: url.clone(),
            source,
        })?;
    if in_background {
        info!(url = %url, "connecting to nats in the background");
    } else {
        info!(url = %url, "connected to nats");
    }
    Ok(client)
}

/// A JetStream context whose API requests and PubAck waits are bounded by
/// [`NatsConfig::request_timeout`].
pub fn context(client: Client, config: &NatsConfig) -> Context {
    jetstream::context::ContextBuilder::new()
        .timeout(config.request_timeout)
        .build(client)
}

/// The two streams as configured: snapshots and results (scores, forecasts, dead letters).
/// File storage, limits retention, oldest messages discarded at the limits.
pub fn stream_configs(config: &NatsConfig) -> Result<[StreamConfig; 2], BusError> {
    let names = config
        .names()
        .map_err(|e| BusError::Config(format!("namespace: {e}")))?;
    let stream =
        |name: String, subjects, max_age, max_bytes: Option<u64>, what: &str| StreamConfig {
            name,
            description: Some(format!("Meshwatch {what} (meshwatch.v1)")),
            subjects,
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            max_age,
            max_bytes: max_bytes.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
            num_replicas: config.stream_replicas,
            duplicate_window: config.duplicate_window,
            ..StreamConfig::default()
        };
    Ok([
        stream(
            names.snapshots_stream(),
            names.snapshots_stream_subjects(),
            config.snapshots_max_age,
            config.snapshots_max_bytes,
            "graph snapshots",
        ),
        stream(
            names.results_stream(),
            names.results_stream_subjects(),
            config.results_max_age,
            config.results_max_bytes,
            "scores, forecasts and dead letters",
        ),
    ])
}

/// Creates or updates both streams; safe to call from every replica at every start.
pub async fn ensure_streams(
    context: &Context,
    config: &NatsConfig,
) -> Result<Vec<(String, StreamChange)>, BusError> {
    let mut done = Vec::with_capacity(2);
    for wanted in stream_configs(config)? {
        let name = wanted.name.clone();
        let change = ensure_stream(context, wanted).await?;
        done.push((name, change));
    }
    Ok(done)
}

/// Creates `wanted` if missing. If it exists, the fields Meshwatch manages (subjects, max age,
/// max bytes, duplicate window, replicas, discard policy) are brought to the wanted values —
/// subjects an operator added are kept — and everything else the operator set (placement,
/// compression, ...) is left alone. Storage type and retention policy cannot change in place:
/// a difference there is [`BusError::IncompatibleStream`].
pub async fn ensure_stream(
    context: &Context,
    wanted: StreamConfig,
) -> Result<StreamChange, BusError> {
    let name = wanted.name.clone();
    // Two tries: a replica starting beside us may create the stream between our look and our
    // create.
    for _ in 0..2 {
        let existing = match context.get_stream(&name).await {
            Ok(stream) => stream.cached_info().config.clone(),
            Err(e) if is_not_found(e.kind()) => match context.create_stream(wanted.clone()).await {
                Ok(_) => {
                    info!(stream = %name, subjects = ?wanted.subjects, "created stream");
                    return Ok(StreamChange::Created);
                }
                Err(e) if is_name_exists(&e.kind()) => continue,
                Err(e) => return Err(BusError::stream(&name, e)),
            },
            Err(e) => return Err(BusError::stream(&name, e)),
        };
        return update_if_needed(context, existing, &wanted).await;
    }
    Err(BusError::stream(
        &name,
        "stream was reported both missing and existing",
    ))
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e)
        if e.error_code() == ErrorCode::STREAM_NOT_FOUND || e.code() == 404)
}

fn is_name_exists(kind: &CreateStreamErrorKind) -> bool {
    matches!(kind, CreateStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NAME_EXIST)
}

async fn update_if_needed(
    context: &Context,
    existing: StreamConfig,
    wanted: &StreamConfig,
) -> Result<StreamChange, BusError> {
    let name = &wanted.name;
    if existing.storage != wanted.storage {
        return Err(BusError::IncompatibleStream {
            stream: name.clone(),
            reason: format!(
                "storage is {:?}, wanted {:?}",
                existing.storage, wanted.storage
            ),
        });
    }
    if existing.retention != wanted.retention {
        return Err(BusError::IncompatibleStream {
            stream: name.clone(),
            reason: format!(
                "retention is {:?}, wanted {:?}",
                existing.retention, wanted.retention
            ),
        });
    }
    let mut updated = existing.clone();
    let mut changes = Vec::new();
    for subject in &wanted.subjects {
        if !updated.subjects.contains(subject) {
            updated.subjects.push(subject.clone());
            changes.push("subjects");
        }
    }
    if updated.max_age != wanted.max_age {
        updated.max_age = wanted.max_age;
        changes.push("max_age");
    }
    if updated.max_bytes != wanted.max_bytes {
        updated.max_bytes = wanted.max_bytes;
        changes.push("max_bytes");
    }
    if updated.duplicate_window != wanted.duplicate_window {
        updated.duplicate_window = wanted.duplicate_window;
        changes.push("duplicate_window");
    }
    if updated.num_replicas != wanted.num_replicas {
        updated.num_replicas = wanted.num_replicas;
        changes.push("num_replicas");
    }
    if updated.discard != wanted.discard {
        updated.discard = wanted.discard;
        changes.push("discard");
    }
    if changes.is_empty() {
        debug!(stream = %name, "stream up to date");
        return Ok(StreamChange::Unchanged);
    }
    changes.dedup();
    context
        .update_stream(&updated)
        .await
        .map_err(|e| BusError::stream(name, e))?;
    info!(stream = %name, changed = ?changes, "updated stream");
    Ok(StreamChange::Updated)
}

/// Publishes a snapshot on `meshwatch.v1.snapshots.<graph>` with its headers (`Nats-Msg-Id`,
/// `Content-Type`, `Meshwatch-Schema`) and waits for the PubAck.
pub async fn publish_snapshot(
    context: &Context,
    names: &Names,
    message: &SnapshotMessage,
) -> Result<PublishOutcome, BusError> {
    let subject = names.snapshot_subject(message.graph());
    let started = Instant::now();
    let publish = PublishMessage::build()
        .payload(message.payload().clone())
        .headers(message.headers());
    let ack = context
        .send_publish(subject.clone(), publish)
        .await
        .map_err(|e| BusError::publish(&subject, e))?
        .await
        .map_err(|e| BusError::publish(&subject, e))?;
    metrics::observe_publish(MessageKind::Snapshot, started.elapsed());
    if ack.duplicate {
        debug!(subject = %subject, msg_id = message.msg_id(), seq = ack.sequence, "duplicate publish");
    }
    Ok(PublishOutcome {
        duplicate: ack.duplicate,
        sequence: Some(ack.sequence),
    })
}

/// Whether a publish failed because no stream listens on the subject (stream deleted, or a
/// fresh server without its store).
pub(crate) fn is_stream_missing(error: &BusError) -> bool {
    matches!(
        error,
        BusError::Publish {
            kind: PublishErrorKind::StreamNotFound,
            ..
        }
    )
}

/// Pulls one batch from a durable pull consumer: at most `max` messages, waiting at most
/// `expires`. A batch that fails part-way returns what arrived before the error; a batch that
/// fails before any message is an error.
pub async fn fetch_batch(
    consumer: &async_nats::jetstream::consumer::Consumer<
        async_nats::jetstream::consumer::pull::Config,
    >,
    max: usize,
    expires: std::time::Duration,
) -> Result<Vec<async_nats::jetstream::Message>, String> {
    use futures::StreamExt as _;

    let mut batch = consumer
        .fetch()
        .max_messages(max)
        .expires(expires)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    while let Some(message) = batch.next().await {
        match message {
            Ok(message) => messages.push(message),
            Err(error) if messages.is_empty() => return Err(error.to_string()),
            Err(error) => {
                debug!(%error, "fetch ended early");
                break;
            }
        }
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stream_configs_follow_the_config() {
        let config = NatsConfig {
            namespace: Some("t1".to_owned()),
            stream_replicas: 3,
            snapshots_max_age: Duration::from_secs(3600),
            snapshots_max_bytes: Some(1 << 30),
            ..NatsConfig::default()
        };
        let [snapshots, results] = stream_configs(&config).expect("valid");
        assert_eq!(snapshots.name, "t1_MESHWATCH_SNAPSHOTS");
        assert_eq!(snapshots.subjects, ["t1.meshwatch.v1.snapshots.>"]);
        assert_eq!(snapshots.max_age, Duration::from_secs(3600));
        assert_eq!(snapshots.max_bytes, 1 << 30);
        assert_eq!(snapshots.num_replicas, 3);
        assert_eq!(snapshots.duplicate_window, Duration::from_secs(120));
        assert_eq!(snapshots.storage, StorageType::File);
        assert_eq!(results.name, "t1_MESHWATCH_RESULTS");
        assert_eq!(results.max_bytes, -1);
        assert_eq!(results.subjects.len(), 3);
    }
}
