//! Unit and property tests of pairing and windowing.

use proptest::prelude::*;

use super::*;
use crate::snapshot::Edge;
use crate::span::{GraphValues, ResourceView, SpanAttrs};

/// An owned span for tests; `views` borrows a batch of them.
#[derive(Debug, Clone)]
struct T {
    service: &'static str,
    trace: u8,
    id: u8,
    parent: Option<u8>,
    kind: i32,
    start_ms: u64,
    end_ms: u64,
    error: bool,
    db: Option<&'static str>,
    peer: Option<&'static str>,
    messaging: Option<&'static str>,
}

const UNSPEC: i32 = 0;
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

fn t(
    service: &'static str,
    trace: u8,
    id: u8,
    parent: Option<u8>,
    kind: i32,
    start_ms: u64,
    end_ms: u64,
) -> T {
    T {
        service,
        trace,
        id,
        parent,
        kind,
        start_ms,
        end_ms,
        error: false,
        db: None,
        peer: None,
        messaging: None,
    }
}

struct Owned {
    ids: Vec<([u8; 16], [u8; 8], Vec<u8>)>,
}

fn owned(spans: &[T]) -> Owned {
    Owned {
        ids: spans
            .iter()
            .map(|s| {
                let mut trace = [0u8; 16];
                trace[0] = s.trace;
                trace[15] = 1;
                let mut id = [0u8; 8];
                id[0] = s.id;
                id[7] = s.trace;
                let parent = s
                    .parent
                    .map(|p| {
                        let mut pid = [0u8; 8];
                        pid[0] = p;
                        pid[7] = s.trace;
                        pid.to_vec()
                    })
                    .unwrap_or_default();
                (trace, id, parent)
            })
            .collect(),
    }
}

fn views<'a>(spans: &'a [T], o: &'a Owned, graph: Option<&'a str>) -> DecodedTraces<'a> {
    let mut d = DecodedTraces::default();
    for (i, s) in spans.iter().enumerate() {
        d.resources.push(ResourceView {
            service_values: GraphValues::from_slice(&[Some(s.service), None, None]),
            graph_values: GraphValues::from_slice(&[graph, None]),
        });
        let (trace, id, parent) = &o.ids[i];
        d.spans.push(SpanView {
            resource: i as u32,
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            kind: s.kind,
            start_time_unix_nano: s.start_ms * 1_000_000 + 1_000,
            end_time_unix_nano: s.end_ms * 1_000_000 + 1_000,
            status_code: if s.error { STATUS_CODE_ERROR } else { 0 },
            attrs: SpanAttrs {
                db_system: s.db,
                db_namespace: s.db.map(|_| "orders"),
                peer_service: s.peer,
                messaging_system: s.messaging,
                messaging_destination: s.messaging.map(|_| "payments"),
                ..SpanAttrs::default()
            },
        });
    }
    d
}

fn cfg() -> AggregatorConfig {
    AggregatorConfig {
        window_ms: 30_000,
        allowed_lateness_ms: 10_000,
        ..AggregatorConfig::default()
    }
}

/// Feeds spans one request at a time (offline) and flushes.
fn run(cfg: AggregatorConfig, batches: &[Vec<T>]) -> (Vec<GraphSnapshot>, Vec<IngestReport>) {
    let mut agg = Aggregator::new(cfg, "test").expect("valid config");
    let mut out = Vec::new();
    let mut reports = Vec::new();
    for batch in batches {
        let o = owned(batch);
        let v = views(batch, &o, None);
        reports.push(agg.ingest(&v, None, &mut out));
    }
    agg.flush_all(&mut out);
    (out, reports)
}

fn edge<'a>(s: &'a GraphSnapshot, caller: &str, callee: &str) -> &'a Edge {
    s.edges
        .iter()
        .find(|e| e.caller == caller && e.callee == callee)
        .unwrap_or_else(|| panic!("edge {caller}->{callee} missing in {:?}", s.edges))
}

fn node<'a>(s: &'a GraphSnapshot, name: &str) -> &'a crate::snapshot::Node {
    s.nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("node {name} missing"))
}

fn kinded_trace(trace: u8, base: u64) -> Vec<T> {
    vec![
        t("frontend", trace, 1, None, SERVER, base, base + 100),
        t("frontend", trace, 2, Some(1), CLIENT, base + 10, base + 90),
        t("checkout", trace, 3, Some(2), SERVER, base + 20, base + 80),
    ]
}

#[test]
fn kinded_client_server_pair_is_an_edge_with_both_views_and_gap() {
    let (snaps, reports) = run(cfg(), &[kinded_trace(1, 1_000)]);
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!(s.window_start_ms, 0);
    let e = edge(s, "frontend", "checkout");
    assert_eq!((e.calls, e.paired_calls, e.errors), (1, 1, 0));
    assert_eq!(e.connection_type, ConnectionType::Direct);
    assert!((e.client_latency.quantile(0.5).expect("sample") - 80.0).abs() < 1.0);
    assert!((e.server_latency.quantile(0.5).expect("sample") - 60.0).abs() < 1.0);
    assert!((e.gap.quantile(0.5).expect("sample") - 20.0).abs() < 0.3);
    let entry = edge(s, "user", "frontend");
    assert_eq!(entry.connection_type, ConnectionType::Entry);
    assert_eq!(node(s, "checkout").requests, 1);
    assert_eq!(node(s, "frontend").requests, 1);
    assert_eq!(node(s, "frontend").out_calls, 1);
    assert_eq!(node(s, "frontend").spans, 2);
    assert_eq!(node(s, "user").kind, NodeKind::User);
    assert_eq!(s.stats.spans, 3);
    assert_eq!(s.stats.paired, 3);
    assert_eq!(reports[0].accepted, 3);
}

#[test]
fn arrival_order_does_not_matter_for_a_pair() {
    let mut reversed = kinded_trace(1, 1_000);
    reversed.reverse();
    let (a, _) = run(cfg(), &[kinded_trace(1, 1_000)]);
    let (b, _) = run(cfg(), &[reversed]);
    assert_eq!(a, b);
}

#[test]
fn spans_without_kind_pair_across_services_only() {
    let spans = vec![
        t("ts-ui", 1, 1, None, UNSPEC, 0, 500),
        t("ts-ui", 1, 2, Some(1), UNSPEC, 10, 400),
        t("ts-order", 1, 3, Some(2), UNSPEC, 20, 300),
        t("ts-order", 1, 4, Some(3), UNSPEC, 30, 100),
        t("ts-db", 1, 5, Some(3), UNSPEC, 110, 200),
    ];
    for order in [spans.clone(), spans.iter().rev().cloned().collect()] {
        let (snaps, _) = run(cfg(), &[order]);
        let s = &snaps[0];
        assert_eq!(s.edges.len(), 3, "{:?}", s.edges);
        edge(s, "user", "ts-ui");
        let e = edge(s, "ts-ui", "ts-order");
        assert!((e.gap.quantile(0.5).expect("sample") - 110.0).abs() < 1.5);
        edge(s, "ts-order", "ts-db");
        // Requests: the root and the two cross-service children; internal spans are not.
        assert_eq!(node(s, "ts-ui").requests, 1);
        assert_eq!(node(s, "ts-order").requests, 1);
        assert_eq!(node(s, "ts-order").out_calls, 1);
        assert_eq!(node(s, "ts-db").requests, 1);
        assert_eq!(s.stats.paired, 5);
        assert_eq!(s.stats.unpaired, 0);
    }
}

#[test]
fn database_client_span_calls_a_virtual_database_node() {
    let mut db = t("checkout", 1, 1, None, CLIENT, 0, 10);
    db.db = Some("postgresql");
    let (snaps, _) = run(cfg(), &[vec![db]]);
    let s = &snaps[0];
    let e = edge(s, "checkout", "postgresql/orders");
    assert_eq!(e.connection_type, ConnectionType::Database);
    assert_eq!(node(s, "postgresql/orders").kind, NodeKind::Database);
    assert_eq!(s.stats.paired, 1);
}

#[test]
fn unpaired_client_with_peer_service_gets_a_virtual_callee_at_close() {
    let mut c = t("checkout", 1, 1, None, CLIENT, 0, 10);
    c.peer = Some("payments-api");
    c.error = true;
    let lonely = t("checkout", 2, 1, None, CLIENT, 0, 10);
    let (snaps, _) = run(cfg(), &[vec![c, lonely]]);
    let s = &snaps[0];
    let e = edge(s, "checkout", "payments-api");
    assert_eq!((e.calls, e.errors, e.paired_calls), (1, 1, 0));
    assert_eq!(e.connection_type, ConnectionType::VirtualPeer);
    assert_eq!(s.edges.len(), 1);
    assert_eq!(s.stats.unpaired, 2);
    assert_eq!(node(s, "checkout").out_errors, 1);
}

#[test]
fn producer_consumer_pair_is_a_messaging_edge_and_unpaired_producer_reaches_its_system() {
    let mut p = t("orders", 1, 1, None, PRODUCER, 0, 5);
    p.messaging = Some("kafka");
    let c = t("billing", 1, 2, Some(1), CONSUMER, 10, 20);
    let mut lonely = t("orders", 2, 1, None, PRODUCER, 0, 5);
    lonely.messaging = Some("kafka");
    let (snaps, _) = run(cfg(), &[vec![c, p, lonely]]);
    let s = &snaps[0];
    assert_eq!(
        edge(s, "orders", "billing").connection_type,
        ConnectionType::Messaging
    );
    assert_eq!(edge(s, "orders", "kafka/payments").calls, 1);
    assert_eq!(node(s, "kafka/payments").kind, NodeKind::Messaging);
}

#[test]
fn late_spans_are_counted_in_the_next_snapshot_and_reported() {
    let first = vec![t("a", 1, 1, None, SERVER, 0, 1_000)];
    // Pushes the watermark past window [0, 30 s) + 10 s lateness.
    let second = vec![t("a", 2, 1, None, SERVER, 40_000, 41_000)];
    let late = vec![t("a", 3, 1, None, SERVER, 2_000, 3_000)];
    let (snaps, reports) = run(cfg(), &[first, second, late]);
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0].stats.late, 0);
    assert_eq!(snaps[1].stats.late, 1);
    assert_eq!(reports[2].late, 1);
    assert_eq!(reports[2].not_accepted(), 1);
    assert!(
        reports[2]
            .message()
            .contains("after their time window had closed")
    );
}

#[test]
fn invalid_spans_are_rejected_with_reasons() {
    let spans = vec![
        t("a", 1, 1, None, SERVER, 0, 10),
        t("a", 1, 2, None, SERVER, 20, 10),
    ];
    let o = owned(&spans);
    let mut v = views(&spans, &o, None);
    let short = [1u8; 4];
    v.spans[0].span_id = &short;
    let mut agg = Aggregator::new(cfg(), "t").expect("valid");
    let mut out = Vec::new();
    let report = agg.ingest(&v, None, &mut out);
    assert_eq!(report.rejected(), 2);
    assert_eq!(report.accepted, 0);
    assert_eq!(
        report.first_rejection,
        Some((0, RejectReason::InvalidSpanId))
    );
    assert!(report.message().contains("span_id must be 8 bytes"));
    // Counted in the graph's next snapshot.
    let ok = vec![t("a", 2, 1, None, SERVER, 0, 10)];
    let o2 = owned(&ok);
    agg.ingest(&views(&ok, &o2, None), None, &mut out);
    agg.flush_all(&mut out);
    assert_eq!(out[0].stats.rejected, 2);
}

#[test]
fn future_timestamps_are_rejected_in_live_mode_only() {
    let spans = vec![t("a", 1, 1, None, SERVER, 1_000_000, 1_000_000 + 400_000)];
    let o = owned(&spans);
    let v = views(&spans, &o, None);
    let mut agg = Aggregator::new(cfg(), "t").expect("valid");
    let mut out = Vec::new();
    let live = agg.ingest(&v, Some(1_000_000), &mut out);
    assert_eq!(live.rejected_by_reason[4], 1);
    let offline = agg.ingest(&v, None, &mut out);
    assert_eq!(offline.accepted, 1);
}

#[test]
fn live_watermark_is_capped_by_wall_clock_and_idle_graphs_flush() {
    let mut agg = Aggregator::new(cfg(), "t").expect("valid");
    let mut out = Vec::new();
    let now = 1_000_000_000;
    // A span from a host whose clock runs 100 s ahead must not close the current window.
    let ahead = vec![t(
        "a",
        1,
        1,
        None,
        SERVER,
        now as u64 + 99_000,
        now as u64 + 100_000,
    )];
    let o = owned(&ahead);
    agg.ingest(&views(&ahead, &o, None), Some(now), &mut out);
    let current = vec![t("a", 2, 1, None, SERVER, now as u64 - 20, now as u64 - 10)];
    let o2 = owned(&current);
    let r = agg.ingest(&views(&current, &o2, None), Some(now), &mut out);
    assert_eq!(r.accepted, 1);
    assert!(out.is_empty());
    // Nothing arrives; wall time passes: the past window flushes once idle.
    agg.tick(now + 5_000, &mut out);
    assert!(out.is_empty(), "not idle long enough, window not over");
    agg.tick(now + 45_000, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].window_start_ms, window_start(now - 10, 30_000));
    assert_eq!(agg.state().open_windows, 1);
}

#[test]
fn full_store_drops_relations_but_keeps_node_statistics() {
    let c = AggregatorConfig {
        max_pending_spans: 1,
        ..cfg()
    };
    let spans = vec![
        t("a", 1, 1, None, CLIENT, 0, 10),
        t("a", 2, 1, None, CLIENT, 0, 10),
    ];
    let (snaps, _) = run(c, &[spans]);
    let s = &snaps[0];
    assert_eq!(s.stats.dropped, 1);
    assert_eq!(s.stats.unpaired, 1);
    assert_eq!(node(s, "a").out_calls, 2);
}

#[test]
fn cardinality_guard_folds_services_into_overflow() {
    let c = AggregatorConfig {
        max_nodes_per_graph: 3,
        ..cfg()
    };
    // Interner holds __overflow__ and user first; one service fits.
    let spans = vec![
        t("a", 1, 1, None, SERVER, 0, 10),
        t("b", 2, 1, None, SERVER, 0, 10),
        t("c", 3, 1, None, SERVER, 0, 10),
    ];
    let (snaps, _) = run(c, &[spans]);
    let s = &snaps[0];
    assert_eq!(s.stats.overflow_services, 2);
    assert_eq!(node(s, "__overflow__").requests, 2);
}

#[test]
fn graphs_are_separated_by_resource_attributes() {
    let a = vec![t("a", 1, 1, None, SERVER, 0, 10)];
    let oa = owned(&a);
    let mut agg = Aggregator::new(cfg(), "t").expect("valid");
    let mut out = Vec::new();
    agg.ingest(&views(&a, &oa, Some("prod")), None, &mut out);
    agg.ingest(&views(&a, &oa, None), None, &mut out);
    agg.flush_all(&mut out);
    let mut graphs: Vec<_> = out.iter().map(|s| s.graph.as_str()).collect();
    graphs.sort_unstable();
    assert_eq!(graphs, ["default", "prod"]);
}

/// A random trace tree: spans with random services and kinds, child times nested in parents.
fn arb_traces() -> impl Strategy<Value = Vec<T>> {
    let services = ["a", "b", "c", "d"];
    let span = (0usize..4, 0i32..6, any::<bool>(), 0u8..20, 1u64..500);
    prop::collection::vec(prop::collection::vec(span, 1..8), 1..12).prop_map(move |traces| {
        let mut all = Vec::new();
        for (ti, spans) in traces.iter().enumerate() {
            for (si, &(svc, kind, err, parent_pick, dur)) in spans.iter().enumerate() {
                let parent = if si == 0 {
                    None
                } else {
                    Some((parent_pick as usize % si) as u8 + 1)
                };
                let base = 1_000 + (ti as u64) * 997 % 25_000;
                let mut s = t(
                    services[svc],
                    ti as u8 + 1,
                    si as u8 + 1,
                    parent,
                    kind,
                    base,
                    base + dur,
                );
                s.error = err;
                all.push(s);
            }
        }
        all
    })
}

fn totals(snaps: &[GraphSnapshot]) -> IngestStats {
    let mut total = IngestStats::default();
    for s in snaps {
        total.add(&s.stats);
    }
    total
}

proptest! {
    #[test]
    fn order_does_not_change_snapshots_and_every_span_counts_once(
        spans in arb_traces(),
        seed in any::<u64>(),
        split in 1usize..5,
    ) {
        let (expected, _) = run(cfg(), std::slice::from_ref(&spans));
        // A deterministic shuffle, fed in `split` requests.
        let mut shuffled = spans.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let chunk = shuffled.len().div_ceil(split);
        let batches: Vec<Vec<T>> = shuffled.chunks(chunk).map(<[T]>::to_vec).collect();
        let (got, reports) = run(cfg(), &batches);
        prop_assert_eq!(&got, &expected);
        let total = totals(&got);
        let accepted: u64 = reports.iter().map(|r| r.accepted).sum();
        prop_assert_eq!(total.spans, spans.len() as u64);
        prop_assert_eq!(accepted, spans.len() as u64);
        prop_assert_eq!(total.paired + total.unpaired + total.dropped, total.spans);
    }

    #[test]
    fn bounds_hold_and_accounting_is_exact_under_pressure(
        spans in arb_traces(),
        limit in 1usize..6,
        nodes in 3usize..6,
    ) {
        let c = AggregatorConfig { max_pending_spans: limit, max_nodes_per_graph: nodes, max_edges_per_window: 2, ..cfg() };
        let mut agg = Aggregator::new(c, "t").expect("valid");
        let mut out = Vec::new();
        let o = owned(&spans);
        let v = views(&spans, &o, None);
        let r = agg.ingest(&v, None, &mut out);
        prop_assert!(agg.state().pending_spans <= limit);
        agg.flush_all(&mut out);
        prop_assert_eq!(agg.state().pending_spans, 0);
        let total = totals(&out);
        prop_assert_eq!(r.accepted, spans.len() as u64);
        prop_assert_eq!(total.paired + total.unpaired + total.dropped, total.spans);
        for s in &out {
            prop_assert!(s.edges.len() <= 3, "2 edges + the overflow edge");
            prop_assert!(s.nodes.len() <= nodes + 1);
        }
    }
}

#[test]
fn peer_fallback_naming_a_real_service_becomes_that_service_whatever_the_order() {
    // checkout's client span names payments by server.address but never pairs; payments' own
    // (unrelated) span arrives later in the window.
    let mut lonely = t("checkout", 1, 1, None, CLIENT, 0, 10);
    lonely.peer = Some("payments");
    let served = t("payments", 2, 1, None, SERVER, 0, 5);
    for order in [vec![lonely.clone(), served.clone()], vec![served, lonely]] {
        let (snaps, _) = run(cfg(), &[order]);
        let s = &snaps[0];
        assert_eq!(node(s, "payments").kind, NodeKind::Service);
        // Its requests are its own server spans, not the callers' unpaired views.
        assert_eq!(node(s, "payments").requests, 1);
        let e = edge(s, "checkout", "payments");
        assert_eq!((e.calls, e.paired_calls), (1, 0));
    }
}

#[test]
fn internal_children_of_a_server_span_are_not_requests() {
    let spans = vec![
        t("a", 1, 1, None, SERVER, 0, 100),
        t("a", 1, 2, Some(1), 1, 10, 50),
        t("a", 1, 3, Some(2), CLIENT, 20, 40),
        t("b", 1, 4, Some(3), SERVER, 25, 35),
    ];
    for order in [spans.clone(), spans.iter().rev().cloned().collect()] {
        let (snaps, _) = run(cfg(), &[order]);
        let s = &snaps[0];
        assert_eq!(
            node(s, "a").requests,
            1,
            "the internal span is not a request"
        );
        assert_eq!(node(s, "b").requests, 1);
        assert_eq!(edge(s, "a", "b").paired_calls, 1);
        assert_eq!(s.stats.unpaired, 0);
        assert_eq!(s.edges.len(), 2, "user -> a and a -> b only: {:?}", s.edges);
    }
}

#[test]
fn a_server_span_parent_of_another_services_span_is_an_edge() {
    // The caller's client instrumentation is missing: B's server span is a child of A's.
    let spans = vec![
        t("a", 1, 1, None, SERVER, 0, 100),
        t("b", 1, 2, Some(1), SERVER, 10, 60),
    ];
    let (snaps, _) = run(cfg(), &[spans]);
    let s = &snaps[0];
    let e = edge(s, "a", "b");
    assert_eq!((e.calls, e.paired_calls), (1, 1));
    assert_eq!(node(s, "a").out_calls, 1);
    assert_eq!(s.stats.unpaired, 0);
}

#[test]
fn late_and_rejected_spans_after_the_last_window_still_reach_a_snapshot() {
    let mut bad = t("a", 1, 1, None, SERVER, 20, 10);
    bad.kind = SERVER;
    let (snaps, reports) = run(cfg(), &[vec![bad]]);
    assert_eq!(reports[0].rejected(), 1);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].stats.rejected, 1);
    assert!(snaps[0].nodes.is_empty());
}

#[test]
fn custom_service_keys_name_nodes_by_their_attribute() {
    use crate::otlp::owned::views_from_owned;
    use crate::span::ResourceKeys;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    let kv = |k: &str, v: &str| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
        ..KeyValue::default()
    };
    let resource = |attrs: Vec<KeyValue>, id: u8| ResourceSpans {
        resource: Some(Resource {
            attributes: attrs,
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![id; 16],
                span_id: vec![id; 8],
                kind: 2,
                start_time_unix_nano: 1_000_000_000,
                end_time_unix_nano: 2_000_000_000,
                ..Span::default()
            }],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            // `app` wins over `service.name`, which is not configured.
            resource(vec![kv("service.name", "svc"), kv("app", "shop")], 1),
            // Without `app`, no fallback to `service.name`.
            resource(vec![kv("service.name", "svc")], 2),
        ],
    };
    let cfg = AggregatorConfig {
        service_keys: vec!["app".to_owned()],
        ..cfg()
    };
    let keys = ResourceKeys {
        graph_keys: cfg.graph_keys.clone(),
        service_keys: cfg.service_keys.clone(),
    };
    let mut views = DecodedTraces::default();
    views_from_owned(&req, &keys, &mut views);
    let mut agg = Aggregator::new(cfg, "t").expect("valid");
    let mut out = Vec::new();
    agg.ingest(&views, None, &mut out);
    agg.flush_all(&mut out);
    let s = &out[0];
    assert_eq!(node(s, "shop").requests, 1);
    assert_eq!(node(s, "unknown_service").requests, 1);
    assert!(s.nodes.iter().all(|n| n.name != "svc"));
}

#[test]
fn a_pod_name_names_its_workload_by_default() {
    let spans = vec![t("x", 1, 1, None, SERVER, 0, 10)];
    let o = owned(&spans);
    let mut v = views(&spans, &o, None);
    v.resources[0].service_values[0] = None;
    v.resources[0].service_values[2] = Some("checkout-7d9b8c6f5-xk2lp");
    let mut agg = Aggregator::new(cfg(), "t").expect("valid");
    let mut out = Vec::new();
    agg.ingest(&v, None, &mut out);
    agg.flush_all(&mut out);
    assert_eq!(node(&out[0], "checkout").requests, 1);
}

#[test]
fn service_name_falls_back_to_the_deployment_then_unknown_service_and_long_names_are_cut() {
    let long = "s".repeat(10_000);
    let spans = vec![
        t("x", 1, 1, None, SERVER, 0, 10),
        t("x", 2, 1, None, SERVER, 0, 10),
        t("x", 3, 1, None, SERVER, 0, 10),
    ];
    let o = owned(&spans);
    let mut v = views(&spans, &o, None);
    v.resources[0].service_values[0] = None;
    v.resources[0].service_values[1] = Some("checkout");
    v.resources[1].service_values[0] = Some("");
    v.resources[2].service_values[0] = Some(&long);
    let mut agg = Aggregator::new(cfg(), "t").expect("valid");
    let mut out = Vec::new();
    agg.ingest(&v, None, &mut out);
    agg.flush_all(&mut out);
    let s = &out[0];
    assert_eq!(node(s, "checkout").requests, 1);
    assert_eq!(node(s, "unknown_service").requests, 1);
    let cut = "s".repeat(cfg().max_name_bytes);
    assert_eq!(node(s, &cut).requests, 1);
}
