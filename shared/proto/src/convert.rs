//! Conversions between the domain snapshot ([`meshwatch_graph::snapshot`]) and its protobuf
//! form ([`crate::v1`]).
//!
//! Domain → proto is infallible; the [`v1::LatencySummary`] fields are derived from the
//! sketches (p50/p90/p95/p99 via [`Sketch::quantile`], exact mean, min and max; all zero when
//! the sketch is empty).
//!
//! Proto → domain is checked: every sketch is validated (bucket limits, bucket index range,
//! counts that add up, finite extremes) before [`Sketch::from_parts`] rebuilds it, enums must be
//! known and specified, and the error names the offending field (`nodes[2].latency_sketch`),
//! ready to become an `INVALID_ARGUMENT`. Nothing on this path panics, whatever the input.
//!
//! Decoding ignores the `LatencySummary` fields: they are derived data, recomputed from the
//! sketch. An absent sketch decodes as an empty sketch with the default accuracy.

use meshwatch_graph::sketch::{MAX_BUCKETS, Sketch, SketchError, Store};
use meshwatch_graph::snapshot::{
    ConnectionType, Edge, GraphSnapshot, IngestStats, Node, NodeKind, ResourceStats,
};
use prost::Message;

use crate::v1;

/// Largest bucket index magnitude a sketch can hold: `Sketch` clamps `ceil(log_γ v)` to
/// ±1,000,000, so every valid store lies inside `[-MAX_BUCKET_INDEX, MAX_BUCKET_INDEX]`. Checking
/// it keeps `offset + position` arithmetic in merges far from `i32` overflow.
pub const MAX_BUCKET_INDEX: i32 = 1_000_000;

/// Why a protobuf message could not become a domain value. `field` is the path of the
/// offending field inside the message (`edges[0].gap_sketch.positive_counts`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvertError {
    /// An enum field holds a number this version does not know.
    #[error("{field}: unknown enum value {value}")]
    UnknownEnumValue { field: String, value: i32 },
    /// An enum field holds its `*_UNSPECIFIED` zero value.
    #[error("{field}: value must be specified")]
    Unspecified { field: String },
    /// A sketch store has more buckets than [`MAX_BUCKETS`].
    #[error("{field}: {len} buckets exceed the limit of {max}")]
    TooManyBuckets {
        field: String,
        len: usize,
        max: usize,
    },
    /// A sketch store reaches outside `[-MAX_BUCKET_INDEX, MAX_BUCKET_INDEX]`.
    #[error("{field}: buckets from index {offset} ({len} buckets) are outside the valid range")]
    BucketIndexOutOfRange {
        field: String,
        offset: i32,
        len: usize,
    },
    /// The bucket counts of a sketch do not fit in `u64`.
    #[error("{field}: bucket counts overflow")]
    CountOverflow { field: String },
    /// A sketch's `count` differs from the observations in its buckets.
    #[error("{field}: count {declared} does not match the {actual} observations in the buckets")]
    CountMismatch {
        field: String,
        declared: u64,
        actual: u64,
    },
    /// A sketch was refused by [`Sketch::from_parts`].
    #[error("{field}: {reason}")]
    InvalidSketch { field: String, reason: SketchError },
    /// A scalar field holds a value outside its domain.
    #[error("{field}: {reason}")]
    InvalidValue { field: String, reason: &'static str },
    /// The bytes are not a protobuf encoding of the message.
    #[error("invalid protobuf encoding: {0}")]
    Decode(#[from] prost::DecodeError),
}

impl ConvertError {
    /// Path of the offending field, when the error concerns one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::UnknownEnumValue { field, .. }
            | Self::Unspecified { field }
            | Self::TooManyBuckets { field, .. }
            | Self::BucketIndexOutOfRange { field, .. }
            | Self::CountOverflow { field }
            | Self::CountMismatch { field, .. }
            | Self::InvalidSketch { field, .. }
            | Self::InvalidValue { field, .. } => Some(field),
            Self::Decode(_) => None,
        }
    }
}

/// Encodes a domain snapshot as protobuf bytes (`meshwatch.v1.GraphSnapshot`).
pub fn encode_snapshot(snapshot: &GraphSnapshot) -> Vec<u8> {
    v1::GraphSnapshot::from(snapshot).encode_to_vec()
}

/// Decodes protobuf bytes into a checked domain snapshot.
pub fn decode_snapshot(bytes: &[u8]) -> Result<GraphSnapshot, ConvertError> {
    let message = v1::GraphSnapshot::decode(bytes)?;
    GraphSnapshot::try_from(message)
}

/// The latency summary of a sketch: quantiles, exact mean, min and max; zeros when empty.
pub fn latency_summary(sketch: &Sketch) -> v1::LatencySummary {
    if sketch.is_empty() {
        return v1::LatencySummary::default();
    }
    let q = |q: f64| sketch.quantile(q).unwrap_or(0.0);
    v1::LatencySummary {
        count: sketch.count,
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        mean_ms: sketch.mean().unwrap_or(0.0),
        min_ms: sketch.min,
        max_ms: sketch.max,
    }
}

// ---------------------------------------------------------------------------------------------
// domain -> proto

impl From<&Sketch> for v1::LatencySketch {
    fn from(s: &Sketch) -> Self {
        let empty = s.is_empty();
        // Only the buckets that hold counts travel (the domain store keeps room to grow).
        let (positive_offset, positive) = s.positive.trimmed();
        let (negative_offset, negative) = s.negative.trimmed();
        Self {
            alpha: s.alpha,
            min_value: s.min_value,
            positive_offset,
            positive_counts: positive.to_vec(),
            negative_offset,
            negative_counts: negative.to_vec(),
            zero_count: s.zero_count,
            count: s.count,
            sum: if empty { 0.0 } else { s.sum },
            // An empty domain sketch holds ±infinity as neutral extremes; the wire says zero.
            min: if empty { 0.0 } else { s.min },
            max: if empty { 0.0 } else { s.max },
        }
    }
}

impl From<NodeKind> for v1::NodeKind {
    fn from(kind: NodeKind) -> Self {
        match kind {
            NodeKind::Service => Self::Service,
            NodeKind::User => Self::User,
            NodeKind::Database => Self::Database,
            NodeKind::Messaging => Self::Messaging,
            NodeKind::Peer => Self::Peer,
            NodeKind::Overflow => Self::Overflow,
        }
    }
}

impl From<ConnectionType> for v1::ConnectionType {
    fn from(kind: ConnectionType) -> Self {
        match kind {
            ConnectionType::Direct => Self::Direct,
            ConnectionType::Entry => Self::Entry,
            ConnectionType::Database => Self::Database,
            ConnectionType::Messaging => Self::Messaging,
            ConnectionType::VirtualPeer => Self::VirtualPeer,
        }
    }
}

impl From<&Node> for v1::Node {
    fn from(n: &Node) -> Self {
        Self {
            name: n.name.clone(),
            kind: v1::NodeKind::from(n.kind).into(),
            requests: n.requests,
            errors: n.errors,
            latency: Some(latency_summary(&n.latency)),
            latency_sketch: Some((&n.latency).into()),
            out_calls: n.out_calls,
            out_errors: n.out_errors,
            out_latency: Some(latency_summary(&n.out_latency)),
            out_latency_sketch: Some((&n.out_latency).into()),
            in_gap: Some(latency_summary(&n.in_gap)),
            in_gap_sketch: Some((&n.in_gap).into()),
            spans: n.spans,
            resources: resources_to_proto(&n.resources),
        }
    }
}

/// The node's resource metrics; absent when none was reported.
fn resources_to_proto(r: &ResourceStats) -> Option<v1::ResourceMetrics> {
    (*r != ResourceStats::default()).then_some(v1::ResourceMetrics {
        cpu_utilization: r.cpu_utilization,
        memory_bytes: r.memory_bytes,
        memory_utilization: r.memory_utilization,
        network_rx_bytes_per_s: r.network_rx_bytes_per_s,
        network_tx_bytes_per_s: r.network_tx_bytes_per_s,
        restarts: r.restarts,
    })
}

/// Checks the resource metrics of node `i`: every value present is finite and not negative.
fn resources_from_proto(
    i: usize,
    r: Option<v1::ResourceMetrics>,
) -> Result<ResourceStats, ConvertError> {
    let Some(r) = r else {
        return Ok(ResourceStats::default());
    };
    let check = |value: Option<f64>, name: &str| match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(ConvertError::InvalidValue {
            field: format!("nodes[{i}].resources.{name}"),
            reason: "must be finite and not negative",
        }),
        _ => Ok(value),
    };
    Ok(ResourceStats {
        cpu_utilization: check(r.cpu_utilization, "cpu_utilization")?,
        memory_bytes: check(r.memory_bytes, "memory_bytes")?,
        memory_utilization: check(r.memory_utilization, "memory_utilization")?,
        network_rx_bytes_per_s: check(r.network_rx_bytes_per_s, "network_rx_bytes_per_s")?,
        network_tx_bytes_per_s: check(r.network_tx_bytes_per_s, "network_tx_bytes_per_s")?,
        restarts: r.restarts,
    })
}

impl From<&Edge> for v1::Edge {
    fn from(e: &Edge) -> Self {
        Self {
            caller: e.caller.clone(),
            callee: e.callee.clone(),
            connection_type: v1::ConnectionType::from(e.connection_type).into(),
            calls: e.calls,
            errors: e.errors,
            paired_calls: e.paired_calls,
            client_latency: Some(latency_summary(&e.client_latency)),
            client_latency_sketch: Some((&e.client_latency).into()),
            server_latency: Some(latency_summary(&e.server_latency)),
            server_latency_sketch: Some((&e.server_latency).into()),
            gap: Some(latency_summary(&e.gap)),
            gap_sketch: Some((&e.gap).into()),
        }
    }
}

impl From<&IngestStats> for v1::IngestStats {
    fn from(s: &IngestStats) -> Self {
        Self {
            spans: s.spans,
            paired: s.paired,
            unpaired: s.unpaired,
            late: s.late,
            rejected: s.rejected,
            dropped: s.dropped,
            overflow_services: s.overflow_services,
            overflow_edges: s.overflow_edges,
        }
    }
}

impl From<&GraphSnapshot> for v1::GraphSnapshot {
    fn from(s: &GraphSnapshot) -> Self {
        Self {
            graph: s.graph.clone(),
            window_start_ms: s.window_start_ms,
            window_ms: s.window_ms,
            nodes: s.nodes.iter().map(v1::Node::from).collect(),
            edges: s.edges.iter().map(v1::Edge::from).collect(),
            stats: Some((&s.stats).into()),
            producer: s.producer.clone(),
            producer_version: s.producer_version.clone(),
        }
    }
}

impl From<GraphSnapshot> for v1::GraphSnapshot {
    fn from(s: GraphSnapshot) -> Self {
        Self::from(&s)
    }
}

// ---------------------------------------------------------------------------------------------
// proto -> domain

/// A sketch problem before the field path is known; [`SketchIssue::at`] names the field.
enum SketchIssue {
    TooManyBuckets {
        store: &'static str,
        len: usize,
    },
    IndexOutOfRange {
        store: &'static str,
        offset: i32,
        len: usize,
    },
    CountOverflow,
    CountMismatch {
        declared: u64,
        actual: u64,
    },
    NotFinite(&'static str),
    MinAboveMax,
    Invalid(SketchError),
}

impl SketchIssue {
    fn at(self, field: &str) -> ConvertError {
        match self {
            Self::TooManyBuckets { store, len } => ConvertError::TooManyBuckets {
                field: format!("{field}.{store}"),
                len,
                max: MAX_BUCKETS,
            },
            Self::IndexOutOfRange { store, offset, len } => ConvertError::BucketIndexOutOfRange {
                field: format!("{field}.{store}"),
                offset,
                len,
            },
            Self::CountOverflow => ConvertError::CountOverflow {
                field: field.to_owned(),
            },
            Self::CountMismatch { declared, actual } => ConvertError::CountMismatch {
                field: format!("{field}.count"),
                declared,
                actual,
            },
            Self::NotFinite(name) => ConvertError::InvalidValue {
                field: format!("{field}.{name}"),
                reason: "must be a finite number",
            },
            Self::MinAboveMax => ConvertError::InvalidValue {
                field: format!("{field}.min"),
                reason: "must not exceed max",
            },
            Self::Invalid(reason) => ConvertError::InvalidSketch {
                field: field.to_owned(),
                reason,
            },
        }
    }
}

/// Checks one store of a sketch and returns its total count.
fn check_store(store: &'static str, offset: i32, counts: &[u64]) -> Result<u64, SketchIssue> {
    let len = counts.len();
    if len > MAX_BUCKETS {
        return Err(SketchIssue::TooManyBuckets { store, len });
    }
    if len > 0 {
        // len <= MAX_BUCKETS, so the cast is lossless; i64 keeps the sum exact.
        let last = i64::from(offset) + len as i64 - 1;
        if i64::from(offset) < -i64::from(MAX_BUCKET_INDEX) || last > i64::from(MAX_BUCKET_INDEX) {
            return Err(SketchIssue::IndexOutOfRange { store, offset, len });
        }
    }
    counts
        .iter()
        .try_fold(0u64, |acc, &c| acc.checked_add(c))
        .ok_or(SketchIssue::CountOverflow)
}

fn sketch_from_proto(s: Option<v1::LatencySketch>) -> Result<Sketch, SketchIssue> {
    let Some(s) = s else {
        return Ok(Sketch::default());
    };
    let positive = check_store("positive_counts", s.positive_offset, &s.positive_counts)?;
    let negative = check_store("negative_counts", s.negative_offset, &s.negative_counts)?;
    let actual = positive
        .checked_add(negative)
        .and_then(|n| n.checked_add(s.zero_count))
        .ok_or(SketchIssue::CountOverflow)?;
    if actual != s.count {
        return Err(SketchIssue::CountMismatch {
            declared: s.count,
            actual,
        });
    }
    if actual > 0 {
        if !s.min.is_finite() {
            return Err(SketchIssue::NotFinite("min"));
        }
        if !s.max.is_finite() {
            return Err(SketchIssue::NotFinite("max"));
        }
        if s.sum.is_nan() {
            return Err(SketchIssue::NotFinite("sum"));
        }
        if s.min > s.max {
            return Err(SketchIssue::MinAboveMax);
        }
    }
    Sketch::from_parts(
        s.alpha,
        s.min_value,
        Store {
            offset: s.positive_offset,
            counts: s.positive_counts,
        },
        Store {
            offset: s.negative_offset,
            counts: s.negative_counts,
        },
        s.zero_count,
        s.sum,
        s.min,
        s.max,
    )
    .map_err(SketchIssue::Invalid)
}

fn node_kind(value: i32, field: impl FnOnce() -> String) -> Result<NodeKind, ConvertError> {
    match v1::NodeKind::try_from(value) {
        Ok(v1::NodeKind::Service) => Ok(NodeKind::Service),
        Ok(v1::NodeKind::User) => Ok(NodeKind::User),
        Ok(v1::NodeKind::Database) => Ok(NodeKind::Database),
        Ok(v1::NodeKind::Messaging) => Ok(NodeKind::Messaging),
        Ok(v1::NodeKind::Peer) => Ok(NodeKind::Peer),
        Ok(v1::NodeKind::Overflow) => Ok(NodeKind::Overflow),
        Ok(v1::NodeKind::Unspecified) => Err(ConvertError::Unspecified { field: field() }),
        Err(_) => Err(ConvertError::UnknownEnumValue {
            field: field(),
            value,
        }),
    }
}

fn connection_type(
    value: i32,
    field: impl FnOnce() -> String,
) -> Result<ConnectionType, ConvertError> {
    match v1::ConnectionType::try_from(value) {
        Ok(v1::ConnectionType::Direct) => Ok(ConnectionType::Direct),
        Ok(v1::ConnectionType::Entry) => Ok(ConnectionType::Entry),
        Ok(v1::ConnectionType::Database) => Ok(ConnectionType::Database),
        Ok(v1::ConnectionType::Messaging) => Ok(ConnectionType::Messaging),
        Ok(v1::ConnectionType::VirtualPeer) => Ok(ConnectionType::VirtualPeer),
        Ok(v1::ConnectionType::Unspecified) => Err(ConvertError::Unspecified { field: field() }),
        Err(_) => Err(ConvertError::UnknownEnumValue {
            field: field(),
            value,
        }),
    }
}

fn node_from_proto(i: usize, n: v1::Node) -> Result<Node, ConvertError> {
    let sketch =
        |s, name: &str| sketch_from_proto(s).map_err(|e| e.at(&format!("nodes[{i}].{name}")));
    Ok(Node {
        kind: node_kind(n.kind, || format!("nodes[{i}].kind"))?,
        latency: sketch(n.latency_sketch, "latency_sketch")?,
        out_latency: sketch(n.out_latency_sketch, "out_latency_sketch")?,
        in_gap: sketch(n.in_gap_sketch, "in_gap_sketch")?,
        name: n.name,
        requests: n.requests,
        errors: n.errors,
        out_calls: n.out_calls,
        out_errors: n.out_errors,
        spans: n.spans,
        resources: resources_from_proto(i, n.resources)?,
    })
}

fn edge_from_proto(i: usize, e: v1::Edge) -> Result<Edge, ConvertError> {
    let sketch =
        |s, name: &str| sketch_from_proto(s).map_err(|err| err.at(&format!("edges[{i}].{name}")));
    Ok(Edge {
        connection_type: connection_type(e.connection_type, || {
            format!("edges[{i}].connection_type")
        })?,
        client_latency: sketch(e.client_latency_sketch, "client_latency_sketch")?,
        server_latency: sketch(e.server_latency_sketch, "server_latency_sketch")?,
        gap: sketch(e.gap_sketch, "gap_sketch")?,
        caller: e.caller,
        callee: e.callee,
        calls: e.calls,
        errors: e.errors,
        paired_calls: e.paired_calls,
    })
}

impl From<v1::IngestStats> for IngestStats {
    fn from(s: v1::IngestStats) -> Self {
        Self {
            spans: s.spans,
            paired: s.paired,
            unpaired: s.unpaired,
            late: s.late,
            rejected: s.rejected,
            dropped: s.dropped,
            overflow_services: s.overflow_services,
            overflow_edges: s.overflow_edges,
        }
    }
}

impl TryFrom<v1::GraphSnapshot> for GraphSnapshot {
    type Error = ConvertError;

    fn try_from(s: v1::GraphSnapshot) -> Result<Self, Self::Error> {
        if s.window_ms == 0 {
            return Err(ConvertError::InvalidValue {
                field: "window_ms".to_owned(),
                reason: "must be positive",
            });
        }
        let nodes = s
            .nodes
            .into_iter()
            .enumerate()
            .map(|(i, n)| node_from_proto(i, n))
            .collect::<Result<Vec<_>, _>>()?;
        let edges = s
            .edges
            .into_iter()
            .enumerate()
            .map(|(i, e)| edge_from_proto(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            graph: s.graph,
            window_start_ms: s.window_start_ms,
            window_ms: s.window_ms,
            nodes,
            edges,
            stats: s.stats.map(IngestStats::from).unwrap_or_default(),
            producer: s.producer,
            producer_version: s.producer_version,
        })
    }
}

impl TryFrom<&v1::GraphSnapshot> for GraphSnapshot {
    type Error = ConvertError;

    fn try_from(s: &v1::GraphSnapshot) -> Result<Self, Self::Error> {
        Self::try_from(s.clone())
    }
}

#[cfg(test)]
mod tests;
