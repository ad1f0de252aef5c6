//! The graph aggregator: validated spans in, one [`GraphSnapshot`] per graph and closed window
//! out (ARCHITECTURE.md §3). Pure: wall time is a parameter (`None` offline).
//!
//! Relation rules (see `docs/graph-model.md`):
//! - client/producer spans wait (by their span id) for server/consumer children; a kinded pair
//!   is an edge, even within one service;
//! - spans without a kind (unspecified/internal) are both would-be callers and would-be callees:
//!   a parent/child pair across two services is an edge, within one service it is internal;
//! - a root server (or unkinded) span is called by the virtual `user` (a root consumer with
//!   `messaging.system`, by its messaging system);
//! - a client span with `db.system` calls a database node at once; an unpaired client span with
//!   messaging or peer attributes calls a virtual node when its window closes.
//!
//! Every span is counted exactly once in its window's [`IngestStats`]: paired, unpaired or
//! dropped once aggregated, or else late or rejected.
//!
//! OTLP metrics join the same windows ([`Aggregator::ingest_metrics`], in `resources.rs`).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::config::{AggregatorConfig, truncate_name};
use crate::metrics::window::CounterState;
use crate::pairing::{CallerEntry, ChildEntry, Key, PairingStore, Side, key};
use crate::service::service_name;
use crate::snapshot::{ConnectionType, GraphSnapshot, IngestStats, NodeKind};
use crate::span::{
    DecodedTraces, RejectReason, STATUS_CODE_ERROR, SpanAttrs, SpanIds, SpanKind, SpanView,
};
use crate::window::{Interner, NodeId, PendingRef, USER_NODE, WindowAcc, window_start};

/// What one [`Aggregator::ingest`] call did with the spans it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Spans aggregated into an open window.
    pub accepted: u64,
    /// Spans whose window had already closed (not aggregated).
    pub late: u64,
    /// Spans refused as invalid, by reason (indexed like [`RejectReason::ALL`]).
    pub rejected_by_reason: [u64; RejectReason::ALL.len()],
    /// The first rejected span: its index in the request and why.
    pub first_rejection: Option<(usize, RejectReason)>,
}

impl IngestReport {
    /// All spans refused as invalid.
    pub fn rejected(&self) -> u64 {
        self.rejected_by_reason.iter().sum()
    }

    /// Spans not aggregated (late or invalid): OTLP's `partial_success.rejected_spans`.
    pub fn not_accepted(&self) -> u64 {
        self.late + self.rejected()
    }

    /// A message for OTLP's `partial_success.error_message`, empty when all were accepted.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        for (reason, &n) in RejectReason::ALL.iter().zip(&self.rejected_by_reason) {
            if n > 0 {
                parts.push(format!("{n} spans rejected: {}", reason.describe()));
            }
        }
        if let Some((index, reason)) = self.first_rejection {
            parts.push(format!(
                "first rejected span at index {index} ({})",
                reason.as_str()
            ));
        }
        if self.late > 0 {
            parts.push(format!(
                "{} spans arrived after their time window had closed (allowed lateness exceeded)",
                self.late
            ));
        }
        parts.join("; ")
    }
}

/// Gauges of the aggregator's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregatorState {
    pub graphs: usize,
    pub open_windows: usize,
    pub pending_spans: usize,
}

/// Per-graph state: interner, pairing store, open windows and the watermark.
#[derive(Debug)]
struct GraphState {
    name: Box<str>,
    interner: Interner,
    store: PairingStore,
    windows: BTreeMap<i64, WindowAcc>,
    /// Windows starting before this have been emitted.
    closed_until: i64,
    max_event_ms: i64,
    last_arrival_wall_ms: Option<i64>,
    /// Late and rejected spans since the last snapshot; added to the next one.
    carried: IngestStats,
    scratch: String,
    /// Last points of cumulative metric counters, from closed windows.
    counters: CounterState,
}

/// The aggregator over all graphs.
#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregatorConfig,
    producer: String,
    graphs: Vec<GraphState>,
    graph_index: FxHashMap<Box<str>, usize>,
    /// Per resource of the request being ingested: graph, service node, folded by the guard.
    slots: Vec<(usize, NodeId, bool)>,
    touched: Vec<bool>,
    /// Scratch buffer for graph names.
    graph_name: String,
}

/// Invalid aggregator settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid aggregator settings: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

impl Aggregator {
    /// An aggregator; `producer` names this instance in the snapshots it emits.
    pub fn new(cfg: AggregatorConfig, producer: impl Into<String>) -> Result<Self, ConfigError> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Self {
            cfg,
            producer: producer.into(),
            graphs: Vec::new(),
            graph_index: FxHashMap::default(),
            slots: Vec::new(),
            touched: Vec::new(),
            graph_name: String::new(),
        })
    }

    pub fn config(&self) -> &AggregatorConfig {
        &self.cfg
    }

    /// Current sizes, for gauges.
    pub fn state(&self) -> AggregatorState {
        AggregatorState {
            graphs: self.graphs.len(),
            open_windows: self.graphs.iter().map(|g| g.windows.len()).sum(),
            pending_spans: self.graphs.iter().map(|g| g.store.len()).sum(),
        }
    }

    fn graph_slot(&mut self, name: &str) -> usize {
        if let Some(&slot) = self.graph_index.get(name) {
            return slot;
        }
        let name = if self.graphs.len() >= self.cfg.max_graphs {
            // Beyond the limit, new graphs share the default graph.
            self.cfg.default_graph.clone()
        } else {
            name.to_owned()
        };
        if let Some(&slot) = self.graph_index.get(name.as_str()) {
            return slot;
        }
        let slot = self.graphs.len();
        self.graphs.push(GraphState {
            name: name.as_str().into(),
            interner: Interner::new(self.cfg.max_nodes_per_graph),
            store: PairingStore::new(self.cfg.max_pending_spans),
            windows: BTreeMap::new(),
            closed_until: i64::MIN,
            max_event_ms: i64::MIN,
            last_arrival_wall_ms: None,
            carried: IngestStats::default(),
            scratch: String::new(),
            counters: CounterState::default(),
        });
        self.touched.push(false);
        self.graph_index.insert(name.into(), slot);
        slot
    }

    /// Aggregates a decoded request. `now_ms` is the wall clock in live mode (bounds future
    /// timestamps, caps the watermark, tracks idleness) and `None` offline. Snapshots of the
    /// windows this closes are appended to `out`.
    pub fn ingest(
        &mut self,
        traces: &DecodedTraces<'_>,
        now_ms: Option<i64>,
        out: &mut Vec<GraphSnapshot>,
    ) -> IngestReport {
        let mut report = IngestReport::default();
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        for resource in &traces.resources {
            let service = service_name(&resource.service_values, &self.cfg.service_keys);
            slots.push(self.resource_slot(&resource.graph_values, service));
        }
        let now_ns = now_ms.map(|ms| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000));
        let skew_ns = u64::from(self.cfg.max_future_skew_ms) * 1_000_000;
        for (index, span) in traces.spans.iter().enumerate() {
            let Some(&(slot, service, folded)) = slots.get(span.resource as usize) else {
                // A decoder bug would land here; count it rather than panic.
                report.rejected_by_reason[0] += 1;
                report
                    .first_rejection
                    .get_or_insert((index, RejectReason::InvalidTraceId));
                continue;
            };
            self.touched[slot] = true;
            let graph = &mut self.graphs[slot];
            match span.validate(now_ns, skew_ns) {
                Err(reason) => {
                    graph.carried.rejected += 1;
                    let i = RejectReason::ALL
                        .iter()
                        .position(|r| *r == reason)
                        .unwrap_or(0);
                    report.rejected_by_reason[i] += 1;
                    report.first_rejection.get_or_insert((index, reason));
                }
                Ok(ids) => {
                    if graph.ingest_span(&self.cfg, span, ids, service, folded, now_ms) {
                        report.accepted += 1;
                    } else {
                        report.late += 1;
                    }
                }
            }
        }
        self.slots = slots;
        self.close_touched(now_ms, out);
        report
    }

    /// The graph of a resource (from its graph-key values) and its service node, interned:
    /// `(graph slot, node, folded by the cardinality guard)`.
    fn resource_slot(
        &mut self,
        graph_values: &[Option<&str>],
        service: &str,
    ) -> (usize, NodeId, bool) {
        let mut graph_name = std::mem::take(&mut self.graph_name);
        graph_name.clear();
        for value in graph_values.iter().flatten() {
            if value.is_empty() {
                continue;
            }
            if !graph_name.is_empty() {
                graph_name.push('/');
            }
            graph_name.push_str(value);
        }
        if graph_name.is_empty() {
            graph_name.push_str(&self.cfg.default_graph);
        }
        let keep = truncate_name(&graph_name, self.cfg.max_name_bytes).len();
        graph_name.truncate(keep);
        let slot = self.graph_slot(&graph_name);
        self.graph_name = graph_name;
        let service = truncate_name(service, self.cfg.max_name_bytes);
        let (node, folded) = self.graphs[slot]
            .interner
            .intern(service, NodeKind::Service);
        (slot, node, folded)
    }

    /// After a request: records the arrival and closes what the watermark allows, in every
    /// graph the request touched.
    fn close_touched(&mut self, now_ms: Option<i64>, out: &mut Vec<GraphSnapshot>) {
        for slot in 0..self.graphs.len() {
            if std::mem::take(&mut self.touched[slot]) {
                let graph = &mut self.graphs[slot];
                if let Some(now) = now_ms {
                    graph.last_arrival_wall_ms = Some(now);
                }
                let watermark = match now_ms {
                    Some(now) => graph.max_event_ms.min(now),
                    None => graph.max_event_ms,
                };
                graph.close_until(&self.cfg, &self.producer, watermark, out);
            }
        }
    }

    /// Live mode housekeeping: flushes the past windows of graphs that received nothing for
    /// `idle_flush_ms` of wall time.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<GraphSnapshot>) {
        for graph in &mut self.graphs {
            let idle = graph.last_arrival_wall_ms.is_none_or(|last| {
                now_ms.saturating_sub(last) >= i64::from(self.cfg.idle_flush_ms)
            });
            if idle && !graph.windows.is_empty() {
                graph.close_until(&self.cfg, &self.producer, now_ms, out);
            }
        }
    }

    /// Closes every open window of every graph (shutdown, end of an offline input).
    pub fn flush_all(&mut self, out: &mut Vec<GraphSnapshot>) {
        for graph in &mut self.graphs {
            graph.close_until(&self.cfg, &self.producer, i64::MAX, out);
            graph.emit_carried(&self.cfg, &self.producer, out);
        }
    }
}

impl GraphState {
    /// Closes, in order, every window with `start + window + lateness <= watermark`.
    fn close_until(
        &mut self,
        cfg: &AggregatorConfig,
        producer: &str,
        watermark: i64,
        out: &mut Vec<GraphSnapshot>,
    ) {
        let span_ms = i64::from(cfg.window_ms) + i64::from(cfg.allowed_lateness_ms);
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            if start.saturating_add(span_ms) > watermark {
                break;
            }
            let mut window = entry.remove();
            self.expire(&mut window, cfg);
            let end_ns = u64::try_from(start.saturating_add(i64::from(cfg.window_ms)))
                .unwrap_or(0)
                .saturating_mul(1_000_000);
            let resources = std::mem::take(&mut window.resources);
            for (node, stats) in resources.finish(&mut self.counters, &self.interner, end_ns) {
                window.node(node).resources = stats;
            }
            self.closed_until = self
                .closed_until
                .max(start.saturating_add(i64::from(cfg.window_ms)));
            let carried = std::mem::take(&mut self.carried);
            out.push(window.into_snapshot(
                &self.name,
                cfg.window_ms,
                &self.interner,
                producer,
                &carried,
            ));
            // Names only closed windows referenced can go.
            self.interner.sweep(self.closed_until);
        }
    }

    /// At a final flush, late and rejected spans counted after the last window still need a
    /// snapshot: one without nodes, for the next window, carries them.
    fn emit_carried(
        &mut self,
        cfg: &AggregatorConfig,
        producer: &str,
        out: &mut Vec<GraphSnapshot>,
    ) {
        if self.carried == IngestStats::default() {
            return;
        }
        let start = if self.closed_until != i64::MIN {
            self.closed_until
        } else if self.max_event_ms != i64::MIN {
            window_start(self.max_event_ms, cfg.window_ms)
        } else {
            0
        };
        let carried = std::mem::take(&mut self.carried);
        out.push(WindowAcc::new(start).into_snapshot(
            &self.name,
            cfg.window_ms,
            &self.interner,
            producer,
            &carried,
        ));
        self.closed_until = start.saturating_add(i64::from(cfg.window_ms));
    }

    /// Expires the pairing-store entries of a closing window.
    fn expire(&mut self, window: &mut WindowAcc, cfg: &AggregatorConfig) {
        let overflow = self.interner.overflow();
        for pending in std::mem::take(&mut window.pending) {
            match pending {
                PendingRef::Caller(k) => {
                    let Some(entry) = self.store.remove_caller(&k) else {
                        continue;
                    };
                    if !entry.side.kinded || entry.matched > 0 {
                        // Unkinded spans are accounted for by their callee-side role, paired
                        // client spans at their first pairing.
                        continue;
                    }
                    window.stats.unpaired += 1;
                    if let Some((callee, connection_type)) = entry.virtual_callee {
                        let edge = window.edge(
                            entry.side.service,
                            callee,
                            connection_type,
                            cfg.max_edges_per_window,
                            overflow,
                        );
                        edge.calls += 1;
                        edge.errors += u64::from(entry.side.error);
                        edge.client_latency.add(entry.side.duration_ms);
                        // A virtual node's requests are what its callers saw; a real service
                        // named by `peer.service` keeps only its own server spans.
                        let node = window.node(callee);
                        if self.interner.kind(callee) != NodeKind::Service {
                            node.request(entry.side.duration_ms, entry.side.error);
                        }
                    }
                }
                PendingRef::Orphan(k, span_id) => {
                    let Some(child) = self.store.remove_orphan(&k, &span_id) else {
                        continue;
                    };
                    window.stats.unpaired += 1;
                    if !child.side.kinded {
                        // Its parent never came: still a request to this service.
                        window
                            .node(child.side.service)
                            .request(child.side.duration_ms, child.side.error);
                    }
                }
            }
        }
    }

    /// Interns a virtual node `prefix[/suffix]`.
    fn virtual_node(
        &mut self,
        kind: NodeKind,
        prefix: &str,
        suffix: Option<&str>,
        max: usize,
        window: i64,
    ) -> NodeId {
        self.scratch.clear();
        self.scratch.push_str(prefix);
        if let Some(s) = suffix.filter(|s| !s.is_empty()) {
            self.scratch.push('/');
            self.scratch.push_str(s);
        }
        let name = truncate_name(&self.scratch, max);
        let id = self.interner.intern(name, kind).0;
        self.interner.touch(id, window);
        id
    }

    fn user_node(&mut self) -> NodeId {
        self.interner.intern(USER_NODE, NodeKind::User).0
    }

    /// Aggregates one valid span; `false` when it is late.
    fn ingest_span(
        &mut self,
        cfg: &AggregatorConfig,
        span: &SpanView<'_>,
        ids: SpanIds,
        service: NodeId,
        folded: bool,
        now_ms: Option<i64>,
    ) -> bool {
        let end_ms = i64::try_from(span.end_time_unix_nano / 1_000_000).unwrap_or(i64::MAX);
        let Some(win) = self.admit(cfg, end_ms, now_ms) else {
            self.carried.late += 1;
            return false;
        };
        let kind = SpanKind::from_otlp(span.kind);
        let duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6;
        let error = span.status_code == STATUS_CODE_ERROR;
        let window = self
            .windows
            .entry(win)
            .or_insert_with(|| WindowAcc::new(win));
        window.stats.spans += 1;
        window.stats.overflow_services += u64::from(folded);
        window.node(service).spans += 1;
        self.interner.touch(service, win);
        let side = Side {
            service,
            kinded: !matches!(kind, SpanKind::Unspecified | SpanKind::Internal),
            messaging: matches!(kind, SpanKind::Producer | SpanKind::Consumer)
                || span.attrs.messaging_system.is_some(),
            duration_ms,
            error,
            window: win,
        };
        match kind {
            SpanKind::Client | SpanKind::Producer => {
                self.caller_span(cfg, &span.attrs, ids, side, kind)
            }
            SpanKind::Server | SpanKind::Consumer => {
                self.window(win).node(service).request(duration_ms, error);
                // A server span is also the parent of its handler's spans (internal ones stay
                // internal) and, where a client span is missing, of another service's spans:
                // as a parent it pairs like a span without a kind.
                self.parent_role(
                    cfg,
                    ids,
                    Side {
                        kinded: false,
                        ..side
                    },
                );
                self.callee_role(cfg, &span.attrs, ids, side, kind);
            }
            SpanKind::Unspecified | SpanKind::Internal => {
                if span.attrs.db_system.is_some() {
                    self.window(win).node(service).out_call(duration_ms, error);
                    self.database_call(cfg, &span.attrs, side);
                }
                self.parent_role(cfg, ids, side);
                self.callee_role(cfg, &span.attrs, ids, side, kind);
            }
        }
        true
    }

    /// The window of an event at `t_ms`, advancing the watermark; `None` when it is late: its
    /// window was emitted, or would already be closed by the watermark. Spans (by end time)
    /// and metric samples follow this one rule.
    #[inline]
    fn admit(&mut self, cfg: &AggregatorConfig, t_ms: i64, now_ms: Option<i64>) -> Option<i64> {
        let win = window_start(t_ms, cfg.window_ms);
        let watermark = match now_ms {
            Some(now) => self.max_event_ms.min(now),
            None => self.max_event_ms,
        };
        let closes_at = win
            .saturating_add(i64::from(cfg.window_ms))
            .saturating_add(i64::from(cfg.allowed_lateness_ms));
        if win < self.closed_until || closes_at <= watermark {
            return None;
        }
        self.max_event_ms = self.max_event_ms.max(t_ms);
        Some(win)
    }

    fn window(&mut self, start: i64) -> &mut WindowAcc {
        self.windows
            .entry(start)
            .or_insert_with(|| WindowAcc::new(start))
    }

    /// A client or producer span.
    fn caller_span(
        &mut self,
        cfg: &AggregatorConfig,
        attrs: &SpanAttrs<'_>,
        ids: SpanIds,
        side: Side,
        kind: SpanKind,
    ) {
        self.window(side.window)
            .node(side.service)
            .out_call(side.duration_ms, side.error);
        if kind == SpanKind::Client && !side.messaging && attrs.db_system.is_some() {
            self.database_call(cfg, attrs, side);
            self.window(side.window).stats.paired += 1;
            return;
        }
        let k = key(&ids.trace_id, &ids.span_id);
        let matched = self.adopt_orphans(cfg, &k, side);
        if matched > 0 {
            self.window(side.window).stats.paired += 1;
        }
        let virtual_callee = if matched == 0 {
            self.virtual_callee(cfg, attrs, side)
        } else {
            None
        };
        let entry = CallerEntry {
            side,
            virtual_callee,
            matched,
        };
        // Kept until its window closes, so that later children pair too whatever the order.
        match self.store.insert_caller(k, entry) {
            Ok(()) => self.window(side.window).pending.push(PendingRef::Caller(k)),
            Err(_) if matched == 0 => self.window(side.window).stats.dropped += 1,
            Err(_) => {}
        }
    }

    /// The parent role of a span that is not a client span (`side.kinded` is false): it may be
    /// the parent of other services' spans (an edge) or of its own service's (internal).
    fn parent_role(&mut self, cfg: &AggregatorConfig, ids: SpanIds, side: Side) {
        let k = key(&ids.trace_id, &ids.span_id);
        let matched = self.adopt_orphans(cfg, &k, side);
        let entry = CallerEntry {
            side,
            virtual_callee: None,
            matched,
        };
        // Not stored (full or duplicate id): later children simply stay unpaired.
        if self.store.insert_caller(k, entry).is_ok() {
            self.window(side.window).pending.push(PendingRef::Caller(k));
        }
    }

    /// Resolves the orphans waiting for the caller `k`; returns how many became edges.
    fn adopt_orphans(&mut self, cfg: &AggregatorConfig, k: &Key, caller: Side) -> u32 {
        let Some(children) = self.store.take_orphans(k) else {
            return 0;
        };
        let mut matched = 0;
        for child in children {
            if self.resolve(cfg, caller, child.side) {
                matched += 1;
            }
            self.window(child.side.window).stats.paired += 1;
        }
        matched
    }

    /// The callee role of a server/consumer span or a span without a kind.
    fn callee_role(
        &mut self,
        cfg: &AggregatorConfig,
        attrs: &SpanAttrs<'_>,
        ids: SpanIds,
        side: Side,
        kind: SpanKind,
    ) {
        let Some(parent) = ids.parent_span_id else {
            // A root span: called from outside.
            let (caller, connection_type) = match attrs.messaging_system {
                Some(system) if kind == SpanKind::Consumer => (
                    self.virtual_node(
                        NodeKind::Messaging,
                        system,
                        attrs.messaging_destination,
                        cfg.max_name_bytes,
                        side.window,
                    ),
                    ConnectionType::Messaging,
                ),
                _ => (self.user_node(), ConnectionType::Entry),
            };
            let overflow = self.interner.overflow();
            let window = self.window(side.window);
            if !side.kinded {
                window
                    .node(side.service)
                    .request(side.duration_ms, side.error);
            }
            let edge = window.edge(
                caller,
                side.service,
                connection_type,
                cfg.max_edges_per_window,
                overflow,
            );
            edge.calls += 1;
            edge.errors += u64::from(side.error);
            edge.server_latency.add(side.duration_ms);
            // The virtual caller's outgoing view is the entry span itself.
            window.node(caller).out_call(side.duration_ms, side.error);
            window.stats.paired += 1;
            return;
        };
        let pk = key(&ids.trace_id, &parent);
        if let Some(entry) = self.store.caller_mut(&pk) {
            let caller = entry.side;
            let first_match = entry.matched == 0;
            if self.resolve(cfg, caller, side) {
                if let Some(entry) = self.store.caller_mut(&pk) {
                    entry.matched += 1;
                }
                if caller.kinded && first_match {
                    // A client span is accounted for at its first pairing.
                    self.window(caller.window).stats.paired += 1;
                }
            }
            self.window(side.window).stats.paired += 1;
            return;
        }
        let child = ChildEntry {
            span_id: ids.span_id,
            side,
        };
        match self.store.insert_orphan(pk, child) {
            Ok(()) => self
                .window(side.window)
                .pending
                .push(PendingRef::Orphan(pk, ids.span_id)),
            Err(_) => {
                let window = self.window(side.window);
                if !side.kinded {
                    window
                        .node(side.service)
                        .request(side.duration_ms, side.error);
                }
                window.stats.dropped += 1;
            }
        }
    }

    /// Records the relation between a caller and a callee side; `true` when it is an edge,
    /// `false` when it is internal to one service.
    fn resolve(&mut self, cfg: &AggregatorConfig, caller: Side, callee: Side) -> bool {
        let cross = caller.service != callee.service;
        let kinded_pair = caller.kinded && callee.kinded;
        if !(cross || kinded_pair) {
            return false;
        }
        let connection_type = if caller.messaging || callee.messaging {
            ConnectionType::Messaging
        } else {
            ConnectionType::Direct
        };
        let gap = caller.duration_ms - callee.duration_ms;
        let overflow = self.interner.overflow();
        let window = self.window(callee.window);
        let edge = window.edge(
            caller.service,
            callee.service,
            connection_type,
            cfg.max_edges_per_window,
            overflow,
        );
        edge.calls += 1;
        edge.errors += u64::from(caller.error || callee.error);
        edge.paired_calls += 1;
        edge.client_latency.add(caller.duration_ms);
        edge.server_latency.add(callee.duration_ms);
        edge.gap.add(gap);
        let node = window.node(callee.service);
        node.in_gap.add(gap);
        if !callee.kinded {
            node.request(callee.duration_ms, callee.error);
        }
        if !caller.kinded {
            self.window(caller.window)
                .node(caller.service)
                .out_call(caller.duration_ms, caller.error);
        }
        true
    }

    /// A call to a database (not instrumented itself): an edge to its virtual node at once.
    fn database_call(&mut self, cfg: &AggregatorConfig, attrs: &SpanAttrs<'_>, side: Side) {
        let Some(system) = attrs.db_system else {
            return;
        };
        let db = self.virtual_node(
            NodeKind::Database,
            system,
            attrs.db_namespace.or(attrs.server_address),
            cfg.max_name_bytes,
            side.window,
        );
        let overflow = self.interner.overflow();
        let window = self.window(side.window);
        let edge = window.edge(
            side.service,
            db,
            ConnectionType::Database,
            cfg.max_edges_per_window,
            overflow,
        );
        edge.calls += 1;
        edge.errors += u64::from(side.error);
        edge.client_latency.add(side.duration_ms);
        // A virtual node's requests are what its callers saw.
        window.node(db).request(side.duration_ms, side.error);
    }

    /// The callee an unpaired client span falls back to, from its attributes.
    fn virtual_callee(
        &mut self,
        cfg: &AggregatorConfig,
        attrs: &SpanAttrs<'_>,
        side: Side,
    ) -> Option<(NodeId, ConnectionType)> {
        if side.messaging
            && let Some(system) = attrs.messaging_system
        {
            let node = self.virtual_node(
                NodeKind::Messaging,
                system,
                attrs.messaging_destination,
                cfg.max_name_bytes,
                side.window,
            );
            return Some((node, ConnectionType::Messaging));
        }
        let peer = attrs.peer_service.or(attrs.server_address)?;
        let node = self.virtual_node(NodeKind::Peer, peer, None, cfg.max_name_bytes, side.window);
        Some((node, ConnectionType::VirtualPeer))
    }
}

mod resources;
#[cfg(test)]
mod tests;
