//! Event-time tumbling windows: the per-window accumulators and the node interner of a graph.
//!
//! A span belongs to the window that contains its end time. A window `[s, s + w)` closes when
//! the graph's watermark reaches `s + w + allowed_lateness`; spans for a closed window are late.

use rustc_hash::FxHashMap;

use crate::metrics::window::ResourceAcc;
use crate::sketch::Sketch;
use crate::snapshot::{
    ConnectionType, Edge, GraphSnapshot, IngestStats, Node, NodeKind, ResourceStats,
};

/// Index of a node in a graph's [`Interner`].
pub(crate) type NodeId = u32;

/// Name of the node the cardinality guard folds excess nodes and edges into.
pub const OVERFLOW_NODE: &str = "__overflow__";
/// Name of the virtual caller of root spans.
pub const USER_NODE: &str = "user";

/// Start of the window containing `t_ms`.
pub fn window_start(t_ms: i64, window_ms: u32) -> i64 {
    t_ms.div_euclid(i64::from(window_ms)) * i64::from(window_ms)
}

/// Node names of one graph, each interned once. Bounded: past the limit every new name maps
/// to the overflow node. Names no open window can reference any more are swept, so that names
/// that come and go (pods, peer addresses) do not fill the graph for the life of the process.
#[derive(Debug)]
pub(crate) struct Interner {
    names: Vec<(Box<str>, NodeKind)>,
    /// Latest window (start ms) whose statistics reference each id.
    last_used: Vec<i64>,
    index: FxHashMap<Box<str>, NodeId>,
    /// Ids of swept names, reused first.
    free: Vec<NodeId>,
    limit: usize,
    overflow: NodeId,
}

/// Ids below this (overflow, user) are never swept.
const RESERVED: NodeId = 2;

impl Interner {
    pub(crate) fn new(limit: usize) -> Self {
        let mut interner = Self {
            names: Vec::new(),
            last_used: Vec::new(),
            index: FxHashMap::default(),
            free: Vec::new(),
            limit,
            overflow: 0,
        };
        interner.overflow = interner.insert(OVERFLOW_NODE, NodeKind::Overflow);
        // Every graph has entry points: the virtual caller is never folded.
        interner.insert(USER_NODE, NodeKind::User);
        interner
    }

    fn insert(&mut self, name: &str, kind: NodeKind) -> NodeId {
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = (name.into(), kind);
                self.last_used[id as usize] = i64::MIN;
                id
            }
            None => {
                self.names.push((name.into(), kind));
                self.last_used.push(i64::MIN);
                (self.names.len() - 1) as NodeId
            }
        };
        self.index.insert(name.into(), id);
        id
    }

    /// Names interned and not swept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The id of `name`, interning it; `(overflow id, true)` when the graph is full.
    /// A name keeps the kind it was first seen with, except that a peer fallback
    /// (`server.address` of a client span that arrived before its server span) becomes a
    /// service once that service reports spans itself: the kind must not depend on arrival order.
    pub(crate) fn intern(&mut self, name: &str, kind: NodeKind) -> (NodeId, bool) {
        if let Some(&id) = self.index.get(name) {
            if kind == NodeKind::Service
                && let Some(entry) = self.names.get_mut(id as usize)
                && entry.1 == NodeKind::Peer
            {
                entry.1 = NodeKind::Service;
            }
            return (id, id == self.overflow && kind != NodeKind::Overflow);
        }
        if self.index.len() >= self.limit {
            return (self.overflow, true);
        }
        (self.insert(name, kind), false)
    }

    /// Records that window `window` references `id`.
    pub(crate) fn touch(&mut self, id: NodeId, window: i64) {
        if let Some(last) = self.last_used.get_mut(id as usize)
            && *last < window
        {
            *last = window;
        }
    }

    /// Forgets every name whose latest reference is a window starting before `before` (all
    /// such windows are closed and their pairing-store entries expired).
    pub(crate) fn sweep(&mut self, before: i64) {
        for id in RESERVED..self.names.len() as NodeId {
            let i = id as usize;
            if self.last_used[i] < before && !self.names[i].0.is_empty() {
                let (name, _) =
                    std::mem::replace(&mut self.names[i], ("".into(), NodeKind::Overflow));
                self.index.remove(&name);
                self.last_used[i] = i64::MAX;
                self.free.push(id);
            }
        }
    }

    pub(crate) fn overflow(&self) -> NodeId {
        self.overflow
    }

    pub(crate) fn name(&self, id: NodeId) -> &str {
        self.names
            .get(id as usize)
            .map_or(OVERFLOW_NODE, |(n, _)| n)
    }

    pub(crate) fn kind(&self, id: NodeId) -> NodeKind {
        self.names
            .get(id as usize)
            .map_or(NodeKind::Overflow, |(_, k)| *k)
    }
}

/// Node statistics being accumulated.
#[derive(Debug, Default)]
pub(crate) struct NodeAcc {
    pub requests: u64,
    pub errors: u64,
    pub latency: Sketch,
    pub out_calls: u64,
    pub out_errors: u64,
    pub out_latency: Sketch,
    pub in_gap: Sketch,
    pub spans: u64,
    /// Filled from [`WindowAcc::resources`] when the window closes.
    pub resources: ResourceStats,
}

impl NodeAcc {
    pub(crate) fn request(&mut self, duration_ms: f64, error: bool) {
        self.requests += 1;
        self.errors += u64::from(error);
        self.latency.add(duration_ms);
    }

    pub(crate) fn out_call(&mut self, duration_ms: f64, error: bool) {
        self.out_calls += 1;
        self.out_errors += u64::from(error);
        self.out_latency.add(duration_ms);
    }
}

/// Edge statistics being accumulated.
#[derive(Debug)]
pub(crate) struct EdgeAcc {
    pub connection_type: ConnectionType,
    pub calls: u64,
    pub errors: u64,
    pub paired_calls: u64,
    pub client_latency: Sketch,
    pub server_latency: Sketch,
    pub gap: Sketch,
}

impl EdgeAcc {
    fn new(connection_type: ConnectionType) -> Self {
        Self {
            connection_type,
            calls: 0,
            errors: 0,
            paired_calls: 0,
            client_latency: Sketch::default(),
            server_latency: Sketch::default(),
            gap: Sketch::default(),
        }
    }
}

/// Where a pending pairing-store entry of this window lives, for expiry at close.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PendingRef {
    Caller(crate::pairing::Key),
    Orphan(crate::pairing::Key, [u8; 8]),
}

/// One open window of one graph.
#[derive(Debug)]
pub(crate) struct WindowAcc {
    pub start_ms: i64,
    nodes: FxHashMap<NodeId, NodeAcc>,
    edges: FxHashMap<(NodeId, NodeId), EdgeAcc>,
    pub stats: IngestStats,
    pub pending: Vec<PendingRef>,
    /// Resource metric samples (OTLP metrics) of the window's nodes.
    pub resources: ResourceAcc,
}

impl WindowAcc {
    pub(crate) fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            nodes: FxHashMap::default(),
            edges: FxHashMap::default(),
            stats: IngestStats::default(),
            pending: Vec::new(),
            resources: ResourceAcc::default(),
        }
    }

    pub(crate) fn node(&mut self, id: NodeId) -> &mut NodeAcc {
        self.nodes.entry(id).or_default()
    }

    /// The accumulator of edge `caller -> callee`; past `max_edges` new edges fold into the
    /// overflow edge (counted).
    pub(crate) fn edge(
        &mut self,
        caller: NodeId,
        callee: NodeId,
        connection_type: ConnectionType,
        max_edges: usize,
        overflow: NodeId,
    ) -> &mut EdgeAcc {
        let key = if self.edges.len() >= max_edges && !self.edges.contains_key(&(caller, callee)) {
            self.stats.overflow_edges += 1;
            (overflow, overflow)
        } else {
            (caller, callee)
        };
        let edge = self
            .edges
            .entry(key)
            .or_insert_with(|| EdgeAcc::new(connection_type));
        // Calls of several types on one edge (rare): the highest rank wins, whatever the order.
        if connection_type.rank() > edge.connection_type.rank() {
            edge.connection_type = connection_type;
        }
        edge
    }

    /// The snapshot of this window, nodes and edges sorted by name.
    pub(crate) fn into_snapshot(
        self,
        graph: &str,
        window_ms: u32,
        interner: &Interner,
        producer: &str,
        carried: &IngestStats,
    ) -> GraphSnapshot {
        let mut nodes: Vec<Node> = self
            .nodes
            .into_iter()
            .map(|(id, acc)| Node {
                name: interner.name(id).to_owned(),
                kind: interner.kind(id),
                requests: acc.requests,
                errors: acc.errors,
                latency: acc.latency,
                out_calls: acc.out_calls,
                out_errors: acc.out_errors,
                out_latency: acc.out_latency,
                in_gap: acc.in_gap,
                spans: acc.spans,
                resources: acc.resources,
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut edges: Vec<Edge> = self
            .edges
            .into_iter()
            .map(|((caller, callee), acc)| Edge {
                caller: interner.name(caller).to_owned(),
                callee: interner.name(callee).to_owned(),
                connection_type: acc.connection_type,
                calls: acc.calls,
                errors: acc.errors,
                paired_calls: acc.paired_calls,
                client_latency: acc.client_latency,
                server_latency: acc.server_latency,
                gap: acc.gap,
            })
            .collect();
        edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
        let mut stats = self.stats;
        stats.add(carried);
        GraphSnapshot {
            graph: graph.to_owned(),
            window_start_ms: self.start_ms,
            window_ms,
            nodes,
            edges,
            stats,
            producer: producer.to_owned(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start_floors_negative_and_positive() {
        assert_eq!(window_start(59_999, 30_000), 30_000);
        assert_eq!(window_start(60_000, 30_000), 60_000);
        assert_eq!(window_start(-1, 30_000), -30_000);
    }

    #[test]
    fn interner_folds_past_limit() {
        let mut i = Interner::new(4);
        let (a, fa) = i.intern("a", NodeKind::Service);
        let (b, fb) = i.intern("b", NodeKind::Service);
        let (c, fc) = i.intern("c", NodeKind::Service);
        assert_eq!(i.kind(1), NodeKind::User);
        assert!(!fa && !fb);
        assert!(fc);
        assert_eq!(c, i.overflow());
        assert_ne!(a, b);
        assert_eq!(i.intern("a", NodeKind::Service), (a, false));
        assert_eq!(i.name(b), "b");
    }

    #[test]
    fn sweep_forgets_names_of_closed_windows_and_reuses_their_ids() {
        let mut i = Interner::new(4);
        let (a, _) = i.intern("a", NodeKind::Service);
        let (b, _) = i.intern("b", NodeKind::Service);
        i.touch(a, 0);
        i.touch(b, 30_000);
        i.sweep(30_000);
        assert_eq!(i.len(), 3, "overflow, user and b stay");
        let (c, folded) = i.intern("c", NodeKind::Service);
        assert!(!folded);
        assert_eq!(c, a, "the swept id is reused");
        assert_eq!(i.name(c), "c");
        assert_eq!(i.intern("b", NodeKind::Service), (b, false));
        // Reserved ids survive any sweep.
        i.sweep(i64::MAX);
        assert_eq!(i.kind(1), NodeKind::User);
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn edges_fold_past_limit() {
        let mut w = WindowAcc::new(0);
        w.edge(1, 2, ConnectionType::Direct, 1, 0).calls += 1;
        w.edge(1, 3, ConnectionType::Direct, 1, 0).calls += 1;
        w.edge(1, 2, ConnectionType::Direct, 1, 0).calls += 1;
        assert_eq!(w.stats.overflow_edges, 1);
        assert_eq!(w.edges.len(), 2);
        assert_eq!(w.edges[&(1, 2)].calls, 2);
        assert_eq!(w.edges[&(0, 0)].calls, 1);
    }
}
