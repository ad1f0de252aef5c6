//! The envelope of a message on the bus: protobuf payload plus the headers every Meshwatch
//! message carries (ARCHITECTURE.md §6, `proto/meshwatch/v1/graph.proto`).

use async_nats::HeaderMap;
use bytes::Bytes;
use meshwatch_graph::snapshot::GraphSnapshot;
use meshwatch_proto::{ConvertError, SCHEMA, SNAPSHOT_CONTENT_TYPE, v1};
use prost::Message;

use crate::subjects::{self, MessageKind};

/// JetStream de-duplication header.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Names the protobuf message of the payload ([`meshwatch_proto::content_type`]).
pub const HEADER_CONTENT_TYPE: &str = "Content-Type";
/// Names the schema (protobuf package) of the payload: [`SCHEMA`].
pub const HEADER_SCHEMA: &str = "Meshwatch-Schema";

/// A graph snapshot ready to publish: encoded once, then published (and retried) as is.
///
/// Cloning is cheap (the payload is reference-counted).
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotMessage {
    graph: String,
    window_start_ms: i64,
    msg_id: String,
    payload: Bytes,
}

impl SnapshotMessage {
    /// Encodes a domain snapshot. CPU work proportional to the snapshot's size: for large
    /// graphs call it off the async reactor.
    pub fn from_domain(snapshot: &GraphSnapshot) -> Self {
        Self::from_proto(&v1::GraphSnapshot::from(snapshot))
    }

    /// Encodes a protobuf snapshot. The message id names the producer (replica and process
    /// incarnation), so that partial snapshots of the same window from several ingest replicas,
    /// or from a restarted one, are all kept, while a retry of the same publish is de-duplicated.
    pub fn from_proto(snapshot: &v1::GraphSnapshot) -> Self {
        Self {
            msg_id: subjects::msg_id(
                MessageKind::Snapshot,
                &snapshot.graph,
                snapshot.window_start_ms,
                Some(snapshot.producer.as_str()).filter(|p| !p.is_empty()),
            ),
            graph: snapshot.graph.clone(),
            window_start_ms: snapshot.window_start_ms,
            payload: Bytes::from(snapshot.encode_to_vec()),
        }
    }

    /// Graph id of the snapshot (unescaped).
    pub fn graph(&self) -> &str {
        &self.graph
    }

    /// Start of the snapshot's window, unix milliseconds.
    pub fn window_start_ms(&self) -> i64 {
        self.window_start_ms
    }

    /// The `Nats-Msg-Id`: `snapshot:<graph>:<window_start_ms>`.
    pub fn msg_id(&self) -> &str {
        &self.msg_id
    }

    /// The protobuf encoding of `meshwatch.v1.GraphSnapshot`.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Size of the payload in bytes.
    pub fn encoded_len(&self) -> usize {
        self.payload.len()
    }

    /// The headers published with it: `Nats-Msg-Id`, `Content-Type`, `Meshwatch-Schema`.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_MSG_ID, self.msg_id.as_str());
        headers.insert(HEADER_CONTENT_TYPE, SNAPSHOT_CONTENT_TYPE);
        headers.insert(HEADER_SCHEMA, SCHEMA);
        headers
    }

    /// Decodes the payload back into a checked domain snapshot.
    pub fn decode(&self) -> Result<GraphSnapshot, ConvertError> {
        meshwatch_proto::decode_snapshot(&self.payload)
    }
}

impl From<&GraphSnapshot> for SnapshotMessage {
    fn from(snapshot: &GraphSnapshot) -> Self {
        Self::from_domain(snapshot)
    }
}

impl From<&v1::GraphSnapshot> for SnapshotMessage {
    fn from(snapshot: &v1::GraphSnapshot) -> Self {
        Self::from_proto(snapshot)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use meshwatch_graph::snapshot::IngestStats;

    pub(crate) fn snapshot(graph: &str, window_start_ms: i64) -> GraphSnapshot {
        GraphSnapshot {
            graph: graph.to_owned(),
            window_start_ms,
            window_ms: 30_000,
            nodes: Vec::new(),
            edges: Vec::new(),
            stats: IngestStats::default(),
            producer: "test".to_owned(),
            producer_version: "0".to_owned(),
        }
    }

    #[test]
    fn partial_snapshots_of_two_producers_have_distinct_ids() {
        let a = snapshot("prod", 60_000);
        let mut b = a.clone();
        b.producer = "ingest-1@1700000000000".to_owned();
        assert_ne!(
            SnapshotMessage::from_domain(&a).msg_id(),
            SnapshotMessage::from_domain(&b).msg_id()
        );
        assert_eq!(
            SnapshotMessage::from_domain(&b).msg_id(),
            "snapshot:prod:60000:ingest-1%401700000000000"
        );
    }

    #[test]
    fn envelope_carries_id_headers_and_payload() {
        let s = snapshot("prod.eu", 60_000);
        let m = SnapshotMessage::from_domain(&s);
        assert_eq!(m.msg_id(), "snapshot:prod%2Eeu:60000:test");
        assert_eq!(m.graph(), "prod.eu");
        assert_eq!(m.window_start_ms(), 60_000);
        let h = m.headers();
        assert_eq!(
            h.get(HEADER_MSG_ID).map(|v| v.as_str()),
            Some("snapshot:prod%2Eeu:60000:test")
        );
        assert_eq!(
            h.get(HEADER_CONTENT_TYPE).map(|v| v.as_str()),
            Some("application/x-protobuf; proto=meshwatch.v1.GraphSnapshot")
        );
        assert_eq!(
            h.get(HEADER_SCHEMA).map(|v| v.as_str()),
            Some("meshwatch.v1")
        );
        assert_eq!(m.decode(), Ok(s.clone()));
        assert_eq!(SnapshotMessage::from_proto(&v1::GraphSnapshot::from(&s)), m);
    }
}
