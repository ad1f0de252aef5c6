//! The inference services' side of the bus in tests: synthetic snapshots published on a
//! namespace's snapshots stream, and the results (scores, forecasts) read back with their
//! message ids and content types.

use std::time::Duration;

use anyhow::ensure;
use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::Ordered;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::message::PublishMessage;
use futures::StreamExt as _;
use meshwatch_bus::envelope::{HEADER_CONTENT_TYPE, HEADER_MSG_ID, HEADER_SCHEMA};
use meshwatch_bus::{MessageKind, Names, NatsConfig, SnapshotMessage, subjects};

use crate::synthetic::snapshot;

/// A JetStream context on a namespace, with its streams in place.
#[derive(Debug)]
pub struct Bus {
    pub context: Context,
    pub names: Names,
    /// The config a service under test uses to reach the same namespace.
    pub nats: NatsConfig,
}

impl Bus {
    /// Connects to `url` and creates the namespace's streams.
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let nats = NatsConfig {
            url: url.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..NatsConfig::default()
        };
        let client = meshwatch_bus::connect(&nats).await?;
        let context = meshwatch_bus::context(client, &nats);
        meshwatch_bus::ensure_streams(&context, &nats).await?;
        Ok(Self {
            names: nats.names()?,
            context,
            nats,
        })
    }

    /// Publishes windows `windows` of a synthetic chain graph of `services` services (see
    /// [`snapshot`]) as `producer`.
    pub async fn publish_windows(
        &self,
        graph: &str,
        epoch_ms: i64,
        window_ms: u32,
        windows: std::ops::Range<i64>,
        services: usize,
        producer: &str,
    ) -> anyhow::Result<()> {
        for i in windows {
            let mut s = snapshot(graph, epoch_ms, window_ms, i, services, None);
            s.producer = producer.to_owned();
            let message = SnapshotMessage::from_domain(&s);
            let ack = meshwatch_bus::publish_snapshot(&self.context, &self.names, &message).await?;
            ensure!(!ack.duplicate, "{} was a duplicate", message.msg_id());
        }
        Ok(())
    }

    /// Publishes a report as the detector or the forecaster does — `Nats-Msg-Id`
    /// `<kind>:<graph>:<window>:<model_version>`, content type of the protobuf message
    /// `type_name`, schema — and waits for the PubAck.
    pub async fn publish_result(
        &self,
        kind: MessageKind,
        graph: &str,
        window_start_ms: i64,
        model_version: &str,
        type_name: &str,
        payload: Vec<u8>,
    ) -> anyhow::Result<()> {
        let id = subjects::msg_id(kind, graph, window_start_ms, Some(model_version));
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_MSG_ID, id.as_str());
        headers.insert(
            HEADER_CONTENT_TYPE,
            meshwatch_proto::content_type(type_name).as_str(),
        );
        headers.insert(HEADER_SCHEMA, meshwatch_proto::SCHEMA);
        let message = PublishMessage::build()
            .payload(payload.into())
            .headers(headers);
        self.context
            .send_publish(self.names.subject(kind, graph), message)
            .await?
            .await
            .map_err(|e| anyhow::anyhow!("no PubAck for {id}: {e}"))?;
        Ok(())
    }

    /// The dead letters of the namespace, from the first, through an ordered consumer.
    pub async fn dead_letters(&self) -> anyhow::Result<Ordered> {
        let stream = self.context.get_stream(self.names.results_stream()).await?;
        Ok(stream
            .create_consumer(OrderedConfig {
                filter_subject: self.names.dlq_filter(),
                deliver_policy: DeliverPolicy::All,
                ..OrderedConfig::default()
            })
            .await?
            .messages()
            .await?)
    }

    /// Every message of `kind` in the results stream: waits (up to `timeout`) until there are
    /// `want`, then `settle` longer for any extra one.
    pub async fn results(
        &self,
        kind: MessageKind,
        want: usize,
        timeout: Duration,
        settle: Duration,
    ) -> anyhow::Result<Vec<Published>> {
        let stream = self.context.get_stream(self.names.results_stream()).await?;
        let mut messages = stream
            .create_consumer(OrderedConfig {
                filter_subject: self.names.filter(kind),
                deliver_policy: DeliverPolicy::All,
                ..OrderedConfig::default()
            })
            .await?
            .messages()
            .await?;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let until = if out.len() >= want {
                tokio::time::Instant::now() + settle
            } else {
                deadline
            };
            let Ok(next) = tokio::time::timeout_at(until, messages.next()).await else {
                break;
            };
            let Some(message) = next else {
                anyhow::bail!("the ordered consumer ended");
            };
            let message = message.map_err(|e| anyhow::anyhow!("reading results: {e}"))?;
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            out.push(Published {
                id: header(HEADER_MSG_ID),
                content_type: header(HEADER_CONTENT_TYPE),
                payload: message.payload.clone(),
            });
        }
        ensure!(
            out.len() >= want,
            "only {} of {want} {kind} results arrived within {timeout:?}",
            out.len()
        );
        Ok(out)
    }
}

/// A message of the results stream.
#[derive(Debug, Clone)]
pub struct Published {
    /// `Nats-Msg-Id`.
    pub id: String,
    /// `Content-Type`.
    pub content_type: String,
    pub payload: bytes::Bytes,
}
