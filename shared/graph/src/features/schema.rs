//! The versioned feature schema: one row per feature with its name, transform, meaning and the
//! function that reads the raw statistic, so the list, the order and the computation cannot
//! drift apart. `docs/dataset-format.md` carries the table [`schema_markdown`] renders (a test
//! compares them).
//!
//! Change anything here (a feature, its order, a transform, a target) and bump
//! [`FEATURE_SCHEMA_VERSION`]: models record the version they were trained with, and services
//! refuse a model whose version differs (ARCHITECTURE.md §5).

use std::fmt;

use crate::sketch::Sketch;
use crate::snapshot::{ConnectionType, Edge, Node, NodeKind};

/// Version of the feature list below (names, order, transforms, targets).
pub const FEATURE_SCHEMA_VERSION: u32 = 1;

mod markdown;
mod transform;

pub use markdown::schema_markdown;
pub use transform::Transform;

/// One feature of an item `S` (a [`Node`] or an [`Edge`]) in a window.
pub struct Feature<S: 'static> {
    pub name: &'static str,
    pub transform: Transform,
    /// What the raw value is, for the documentation.
    pub meaning: &'static str,
    /// The raw statistic from the item and the window length in seconds.
    raw: fn(&S, f64) -> f64,
}

impl<S> Feature<S> {
    const fn new(
        name: &'static str,
        transform: Transform,
        meaning: &'static str,
        raw: fn(&S, f64) -> f64,
    ) -> Self {
        Self {
            name,
            transform,
            meaning,
            raw,
        }
    }

    /// The raw (untransformed) statistic.
    pub fn raw(&self, item: &S, window_s: f64) -> f64 {
        (self.raw)(item, window_s)
    }

    /// The feature value.
    pub fn value(&self, item: &S, window_s: f64) -> f32 {
        self.transform.apply(self.raw(item, window_s))
    }
}

impl<S> fmt::Debug for Feature<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feature")
            .field("name", &self.name)
            .field("transform", &self.transform)
            .finish_non_exhaustive()
    }
}

/// A forecast target of a node: a raw value (no transform), absent when undefined.
pub struct Target {
    pub name: &'static str,
    pub unit: &'static str,
    pub meaning: &'static str,
    raw: fn(&Node, f64) -> Option<f64>,
}

impl Target {
    /// The raw value of a node present in a window; `None` where it is undefined (a latency
    /// without requests).
    pub fn value(&self, node: &Node, window_s: f64) -> Option<f64> {
        (self.raw)(node, window_s).filter(|v| v.is_finite())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Node kinds in the order of the `kind_*` one-hot features and of the `node_kind` index.
pub const NODE_KINDS: [NodeKind; 6] = [
    NodeKind::Service,
    NodeKind::User,
    NodeKind::Database,
    NodeKind::Messaging,
    NodeKind::Peer,
    NodeKind::Overflow,
];

/// Connection types in the order of the `conn_*` one-hot edge features.
pub const CONNECTION_TYPES: [ConnectionType; 5] = [
    ConnectionType::Direct,
    ConnectionType::Entry,
    ConnectionType::Database,
    ConnectionType::Messaging,
    ConnectionType::VirtualPeer,
];

/// Lower snake case name of a node kind (as in the snapshot JSON).
pub const fn node_kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Service => "service",
        NodeKind::User => "user",
        NodeKind::Database => "database",
        NodeKind::Messaging => "messaging",
        NodeKind::Peer => "peer",
        NodeKind::Overflow => "overflow",
    }
}

/// Index of `kind` in [`NODE_KINDS`].
pub fn node_kind_index(kind: NodeKind) -> usize {
    NODE_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// `num / den`, 0 without a denominator.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Quantile `q` of a latency sketch in ms; 0 when empty. A sketch whose extremes are not
/// ordered (only possible in a hand-made or corrupt snapshot) counts as empty.
pub(crate) fn quantile(s: &Sketch, q: f64) -> Option<f64> {
    if s.count == 0 || s.min.is_nan() || s.max.is_nan() || s.min > s.max {
        return None;
    }
    s.quantile(q).filter(|v| v.is_finite())
}

fn q0(s: &Sketch, q: f64) -> f64 {
    quantile(s, q).unwrap_or(0.0)
}

/// A resource metric value: absent (and so 0) unless a finite sample arrived.
fn metric(v: Option<f64>) -> f64 {
    v.filter(|x| x.is_finite()).unwrap_or(0.0)
}

fn present(v: Option<f64>) -> f64 {
    flag(v.is_some_and(f64::is_finite))
}

/// Node features, in tensor order (`node_features[t, n, f]`).
pub const NODE_FEATURES: [Feature<Node>; 29] = [
    Feature::new(
        "kind_service",
        Transform::OneHot,
        "node kind is `service`",
        |n, _| flag(n.kind == NodeKind::Service),
    ),
    Feature::new(
        "kind_user",
        Transform::OneHot,
        "node kind is `user` (caller of root spans)",
        |n, _| flag(n.kind == NodeKind::User),
    ),
    Feature::new(
        "kind_database",
        Transform::OneHot,
        "node kind is `database`",
        |n, _| flag(n.kind == NodeKind::Database),
    ),
    Feature::new(
        "kind_messaging",
        Transform::OneHot,
        "node kind is `messaging`",
        |n, _| flag(n.kind == NodeKind::Messaging),
    ),
    Feature::new(
        "kind_peer",
        Transform::OneHot,
        "node kind is `peer` (from `peer.service`/`server.address`)",
        |n, _| flag(n.kind == NodeKind::Peer),
    ),
    Feature::new(
        "kind_overflow",
        Transform::OneHot,
        "node kind is `overflow` (`__overflow__`, the cardinality guard's fold)",
        |n, _| flag(n.kind == NodeKind::Overflow),
    ),
    Feature::new(
        "requests_per_s",
        Transform::Log1p,
        "callee view: `requests` / window seconds",
        |n, w| n.requests as f64 / w,
    ),
    Feature::new(
        "error_ratio",
        Transform::Ratio,
        "callee view: `errors` / `requests` (0 without requests)",
        |n, _| ratio(n.errors, n.requests),
    ),
    Feature::new(
        "latency_p50_ms",
        Transform::Log1p,
        "callee view: p50 of `latency` (own server latency), ms; 0 without requests",
        |n, _| q0(&n.latency, 0.5),
    ),
    Feature::new(
        "latency_p90_ms",
        Transform::Log1p,
        "callee view: p90 of `latency`, ms; 0 without requests",
        |n, _| q0(&n.latency, 0.9),
    ),
    Feature::new(
        "latency_p99_ms",
        Transform::Log1p,
        "callee view: p99 of `latency`, ms; 0 without requests",
        |n, _| q0(&n.latency, 0.99),
    ),
    Feature::new(
        "out_calls_per_s",
        Transform::Log1p,
        "caller view: `out_calls` / window seconds",
        |n, w| n.out_calls as f64 / w,
    ),
    Feature::new(
        "out_error_ratio",
        Transform::Ratio,
        "caller view: `out_errors` / `out_calls` (0 without calls)",
        |n, _| ratio(n.out_errors, n.out_calls),
    ),
    Feature::new(
        "out_latency_p90_ms",
        Transform::Log1p,
        "caller view: p90 of `out_latency` (downstream latency as this node saw it), ms; 0 without calls",
        |n, _| q0(&n.out_latency, 0.9),
    ),
    Feature::new(
        "in_gap_p50_ms",
        Transform::SignedLog1p,
        "p50 of `in_gap` (callers' duration minus this node's own, per paired call into it), ms; 0 when absent",
        |n, _| q0(&n.in_gap, 0.5),
    ),
    Feature::new(
        "in_gap_p90_ms",
        Transform::SignedLog1p,
        "p90 of `in_gap`, ms; 0 when absent",
        |n, _| q0(&n.in_gap, 0.9),
    ),
    Feature::new(
        "in_gap_present",
        Transform::Presence,
        "1 when the node had paired calls into it (`in_gap` not empty)",
        |n, _| flag(n.in_gap.count > 0),
    ),
    Feature::new(
        "cpu_utilization",
        Transform::Ratio,
        "`resources.cpu_utilization` (0..1 of the limit; without a known limit, cores per instance, clipped to 1); 0 when absent",
        |n, _| metric(n.resources.cpu_utilization),
    ),
    Feature::new(
        "cpu_utilization_present",
        Transform::Presence,
        "1 when `cpu_utilization` was received",
        |n, _| present(n.resources.cpu_utilization),
    ),
    Feature::new(
        "memory_bytes",
        Transform::Log1p,
        "`resources.memory_bytes` (summed over instances); 0 when absent",
        |n, _| metric(n.resources.memory_bytes),
    ),
    Feature::new(
        "memory_bytes_present",
        Transform::Presence,
        "1 when `memory_bytes` was received",
        |n, _| present(n.resources.memory_bytes),
    ),
    Feature::new(
        "memory_utilization",
        Transform::Ratio,
        "`resources.memory_utilization` (0..1 of the limit); 0 when absent",
        |n, _| metric(n.resources.memory_utilization),
    ),
    Feature::new(
        "memory_utilization_present",
        Transform::Presence,
        "1 when `memory_utilization` was received",
        |n, _| present(n.resources.memory_utilization),
    ),
    Feature::new(
        "network_rx_bytes_per_s",
        Transform::Log1p,
        "`resources.network_rx_bytes_per_s`; 0 when absent",
        |n, _| metric(n.resources.network_rx_bytes_per_s),
    ),
    Feature::new(
        "network_rx_bytes_per_s_present",
        Transform::Presence,
        "1 when `network_rx_bytes_per_s` was received",
        |n, _| present(n.resources.network_rx_bytes_per_s),
    ),
    Feature::new(
        "network_tx_bytes_per_s",
        Transform::Log1p,
        "`resources.network_tx_bytes_per_s`; 0 when absent",
        |n, _| metric(n.resources.network_tx_bytes_per_s),
    ),
    Feature::new(
        "network_tx_bytes_per_s_present",
        Transform::Presence,
        "1 when `network_tx_bytes_per_s` was received",
        |n, _| present(n.resources.network_tx_bytes_per_s),
    ),
    Feature::new(
        "restarts",
        Transform::Log1p,
        "`resources.restarts` in the window (a count, not a rate); 0 when absent",
        |n, _| n.resources.restarts.map_or(0.0, |r| r as f64),
    ),
    Feature::new(
        "restarts_present",
        Transform::Presence,
        "1 when `restarts` was received",
        |n, _| flag(n.resources.restarts.is_some()),
    ),
];

/// Edge features, in tensor order (`edge_features[t, e, f]`).
pub const EDGE_FEATURES: [Feature<Edge>; 12] = [
    Feature::new(
        "calls_per_s",
        Transform::Log1p,
        "`calls` / window seconds",
        |e, w| e.calls as f64 / w,
    ),
    Feature::new(
        "error_ratio",
        Transform::Ratio,
        "`errors` / `calls`",
        |e, _| ratio(e.errors, e.calls),
    ),
    Feature::new(
        "paired_ratio",
        Transform::Ratio,
        "`paired_calls` / `calls`: share of calls seen from both sides (0 on entry, database and fallback edges; drops when callee spans go missing)",
        |e, _| ratio(e.paired_calls, e.calls),
    ),
    Feature::new(
        "client_latency_p90_ms",
        Transform::Log1p,
        "p90 of `client_latency` (the caller's view), ms; 0 when absent (entry edges)",
        |e, _| q0(&e.client_latency, 0.9),
    ),
    Feature::new(
        "server_latency_p90_ms",
        Transform::Log1p,
        "p90 of `server_latency` (the callee's view), ms; 0 when absent (database and fallback edges)",
        |e, _| q0(&e.server_latency, 0.9),
    ),
    Feature::new(
        "gap_p50_ms",
        Transform::SignedLog1p,
        "p50 of `gap` (client minus server duration per paired call), ms; 0 without paired calls",
        |e, _| q0(&e.gap, 0.5),
    ),
    Feature::new(
        "gap_p90_ms",
        Transform::SignedLog1p,
        "p90 of `gap`, ms; 0 without paired calls",
        |e, _| q0(&e.gap, 0.9),
    ),
    Feature::new(
        "conn_direct",
        Transform::OneHot,
        "`connection_type` is `direct`",
        |e, _| flag(e.connection_type == ConnectionType::Direct),
    ),
    Feature::new(
        "conn_entry",
        Transform::OneHot,
        "`connection_type` is `entry`",
        |e, _| flag(e.connection_type == ConnectionType::Entry),
    ),
    Feature::new(
        "conn_database",
        Transform::OneHot,
        "`connection_type` is `database`",
        |e, _| flag(e.connection_type == ConnectionType::Database),
    ),
    Feature::new(
        "conn_messaging",
        Transform::OneHot,
        "`connection_type` is `messaging`",
        |e, _| flag(e.connection_type == ConnectionType::Messaging),
    ),
    Feature::new(
        "conn_virtual_peer",
        Transform::OneHot,
        "`connection_type` is `virtual_peer`",
        |e, _| flag(e.connection_type == ConnectionType::VirtualPeer),
    ),
];

/// Forecast targets, raw (no transform), in tensor order (`targets[t, n, m]`).
pub const TARGETS: [Target; 4] = [
    Target {
        name: "request_rate",
        unit: "requests/s",
        meaning: "`requests` / window seconds; 0 for a node absent from an observed window",
        raw: |n, w| Some(n.requests as f64 / w),
    },
    Target {
        name: "latency_p90_ms",
        unit: "ms",
        meaning: "p90 of `latency`; undefined without requests",
        raw: |n, _| quantile(&n.latency, 0.9),
    },
    Target {
        name: "latency_p99_ms",
        unit: "ms",
        meaning: "p99 of `latency`; undefined without requests",
        raw: |n, _| quantile(&n.latency, 0.99),
    },
    Target {
        name: "error_ratio",
        unit: "1",
        meaning: "`errors` / `requests`; undefined without requests",
        raw: |n, _| (n.requests > 0).then(|| ratio(n.errors, n.requests)),
    },
];

pub const NODE_FEATURE_COUNT: usize = NODE_FEATURES.len();
pub const EDGE_FEATURE_COUNT: usize = EDGE_FEATURES.len();
pub const TARGET_COUNT: usize = TARGETS.len();

/// Names of [`NODE_FEATURES`], in order.
pub const NODE_FEATURE_NAMES: [&str; NODE_FEATURE_COUNT] = feature_names(&NODE_FEATURES);
/// Names of [`EDGE_FEATURES`], in order.
pub const EDGE_FEATURE_NAMES: [&str; EDGE_FEATURE_COUNT] = feature_names(&EDGE_FEATURES);
/// Names of [`TARGETS`], in order.
pub const TARGET_NAMES: [&str; TARGET_COUNT] = {
    let mut out = [""; TARGET_COUNT];
    let mut i = 0;
    while i < TARGET_COUNT {
        out[i] = TARGETS[i].name;
        i += 1;
    }
    out
};

const fn feature_names<S, const N: usize>(features: &[Feature<S>; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = features[i].name;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests;
