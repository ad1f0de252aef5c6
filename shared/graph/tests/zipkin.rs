//! Zipkin v2 JSON through the graph: the real traces and edge cases of `tests/fixtures/zipkin`
//! (OpenZipkin test data, Apache-2.0), decoded, viewed and aggregated as the receiver and
//! `meshwatch snapshot --format zipkin` do. For the small files the expected edges were derived
//! by hand from the JSON (each case says how); the graph model is `docs/graph-model.md`.

#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use meshwatch_graph::otlp::owned::views_from_owned;
use meshwatch_graph::snapshot::{ConnectionType, IngestStats};
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use meshwatch_graph::zipkin::decode_to_otlp;
use meshwatch_graph::{Aggregator, AggregatorConfig, GraphSnapshot};

use ConnectionType::{Direct, Entry, Messaging, VirtualPeer};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/zipkin")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every snapshot of the file, aggregated offline with 60 s windows.
fn snapshots(name: &str) -> Vec<GraphSnapshot> {
    snapshots_with_lateness(name, AggregatorConfig::default().allowed_lateness_ms)
}

/// The same with another allowed lateness.
fn snapshots_with_lateness(name: &str, allowed_lateness_ms: u32) -> Vec<GraphSnapshot> {
    let keys = ResourceKeys::default();
    let request = decode_to_otlp(&fixture(name), &keys).expect("valid Zipkin JSON");
    let mut views = DecodedTraces::default();
    views_from_owned(&request, &keys, &mut views);
    let cfg = AggregatorConfig {
        window_ms: 60_000,
        allowed_lateness_ms,
        ..AggregatorConfig::default()
    };
    let mut aggregator = Aggregator::new(cfg, "test").expect("valid config");
    let mut out = Vec::new();
    let report = aggregator.ingest(&views, None, &mut out);
    assert_eq!(report.rejected(), 0, "{name}: {}", report.message());
    aggregator.flush_all(&mut out);
    out
}

type Edges = BTreeMap<(String, String), (u64, u64, ConnectionType)>;

/// (caller, callee) -> (calls, errors, connection type), over all windows.
fn edges(snapshots: &[GraphSnapshot]) -> Edges {
    let mut out = Edges::new();
    for s in snapshots {
        for e in &s.edges {
            let t = out.entry((e.caller.clone(), e.callee.clone())).or_insert((
                0,
                0,
                e.connection_type,
            ));
            t.0 += e.calls;
            t.1 += e.errors;
            assert_eq!(t.2, e.connection_type);
        }
    }
    out
}

fn stats(snapshots: &[GraphSnapshot]) -> IngestStats {
    let mut total = IngestStats::default();
    for s in snapshots {
        total.add(&s.stats);
    }
    total
}

fn expect(list: &[(&str, &str, u64, u64, ConnectionType)]) -> Edges {
    list.iter()
        .map(|(a, b, calls, errors, t)| ((a.to_string(), b.to_string()), (*calls, *errors, *t)))
        .collect()
}

fn check(name: &str, spans: u64, expected: &[(&str, &str, u64, u64, ConnectionType)]) {
    let snaps = snapshots(name);
    assert_eq!(snaps.len(), 1, "{name}: one window");
    assert_eq!(edges(&snaps), expect(expected), "{name}");
    let st = stats(&snaps);
    assert_eq!(st.spans, spans, "{name}: every span counted");
    assert_eq!(st.paired + st.unpaired + st.dropped, st.spans, "{name}");
    assert_eq!((st.dropped, st.late, st.rejected), (0, 0, 0), "{name}");
}

/// skew.json: servicea's root SERVER `get` (user -> servicea) has a CLIENT `post` 7428 whose
/// SERVER half in serviceb is shared (-> servicea -> serviceb, although the server half starts
/// 65 ms before its client: clock skew); serviceb's `async` is the server half's child (same
/// service: internal, no edge).
#[test]
fn skew() {
    check(
        "skew.json",
        4,
        &[
            ("user", "servicea", 1, 0, Entry),
            ("servicea", "serviceb", 1, 0, Direct),
        ],
    );
    let snaps = snapshots("skew.json");
    let e = snaps[0]
        .edges
        .iter()
        .find(|e| e.callee == "serviceb")
        .unwrap();
    // Client view 94.539 ms, server view 93.577 ms: a gap of 0.962 ms (sketch: 1 % error).
    assert_eq!(e.paired_calls, 1);
    let gap = e.gap.quantile(0.5).unwrap();
    assert!((gap - 0.962).abs() < 0.962 * 0.011, "gap {gap}");
    let client = e.client_latency.quantile(0.5).unwrap();
    assert!((client - 94.539).abs() < 94.539 * 0.011, "client {client}");
}

/// messaging.json: frontend's root SERVER `get /` (user -> frontend) has a PRODUCER `publish`
/// to RabbitMQ; backend's CONSUMER `next-message` names it as parent (a kinded pair of
/// messaging spans: frontend -> backend, messaging); backend's kind-less `on-message` is the
/// consumer's child (internal).
#[test]
fn messaging() {
    check(
        "messaging.json",
        4,
        &[
            ("user", "frontend", 1, 0, Entry),
            ("frontend", "backend", 1, 0, Messaging),
        ],
    );
}

/// simple-db-p6.json: bootifulmeters' root SERVER `http:/book` (user -> bootifulmeters) and four
/// CLIENT spans with remote service `app_db` and no `db.system` tag: nothing answers them, so
/// they fall back to their peer.service (bootifulmeters -> app_db, virtual peer, 4 calls).
#[test]
fn database_clients_without_db_system() {
    check(
        "simple-db-p6.json",
        5,
        &[
            ("user", "bootifulmeters", 1, 0, Entry),
            ("bootifulmeters", "app_db", 4, 0, VirtualPeer),
        ],
    );
}

/// ascend.json: mobile-gateway's root SERVER (user -> mobile-gateway) calls content-service and
/// auth-service, each a CLIENT whose SERVER half is shared (two direct edges). The kind-less
/// children of the shared ids are in the servers' own services: re-parented to the server
/// halves, internal. content-service's CLIENT `c21c` has no remote endpoint and nothing answers
/// it: an outgoing call without an edge.
#[test]
fn shared_servers_with_kindless_children() {
    check(
        "ascend.json",
        8,
        &[
            ("user", "mobile-gateway", 1, 0, Entry),
            ("mobile-gateway", "content-service", 1, 0, Direct),
            ("mobile-gateway", "auth-service", 1, 0, Direct),
        ],
    );
    let snaps = snapshots("ascend.json");
    let node = |n: &str| snaps[0].nodes.iter().find(|x| x.name == n).unwrap();
    assert_eq!(node("content-service").out_calls, 1);
    assert_eq!(node("content-service").requests, 1);
    assert_eq!(node("auth-service").requests, 1);
}

/// envoy.json: one shared SERVER span without parent and without a service name: no client
/// in the batch, so it stays a root (user -> unknown_service).
#[test]
fn envoy_root_without_service_name() {
    check("envoy.json", 1, &[("user", "unknown_service", 1, 0, Entry)]);
}

/// yelp.json, by hand (ids shortened to 4 digits):
/// - `routing` SERVER 2e8c: shared, no parent, no client 2e8c in the file: a root
///   (user -> routing).
/// - CLIENT 668e of service `unknown` (child of 2e8c) is answered by the shared SERVER 668e of
///   `yelp_main/api_proxy` (unknown -> yelp_main/api_proxy) and by yelp-main's kind-less 241c,
///   whose parent 668e is not re-parented because yelp-main is not the server half's service:
///   it stays the client's child (unknown -> yelp-main), as in Zipkin's own trace tree.
/// - yelp-main's CLIENT f5f2 is answered by mobile_api's shared SERVER f5f2
///   (yelp-main -> mobile_api); mobile_api's CLIENT 7a77 by spectre's shared SERVER 7a77
///   (mobile_api -> spectre).
/// - Unanswered clients fall back to their remote service: mobile_api -> blt (15fc),
///   mobile_api -> memcache (6a65, cb4d), yelp-main -> memcache (0fac, 2b68, e7d1),
///   yelp-main -> mysql (50b5, b593).
#[test]
fn yelp() {
    check(
        "yelp.json",
        16,
        &[
            ("user", "routing", 1, 0, Entry),
            ("unknown", "yelp_main/api_proxy", 1, 0, Direct),
            ("unknown", "yelp-main", 1, 0, Direct),
            ("yelp-main", "mobile_api", 1, 0, Direct),
            ("mobile_api", "spectre", 1, 0, Direct),
            ("mobile_api", "blt", 1, 0, VirtualPeer),
            ("mobile_api", "memcache", 2, 0, VirtualPeer),
            ("yelp-main", "memcache", 3, 0, VirtualPeer),
            ("yelp-main", "mysql", 2, 0, VirtualPeer),
        ],
    );
}

/// The two larger real traces: every span is counted, nothing is dropped or rejected.
/// The SmartThings trace lasts 100 s and its spans are not in time order: with the default
/// 10 s allowed lateness the spans of its first windows come after the watermark has passed
/// them (late); with 2 minutes every span is on time.
#[test]
fn larger_real_traces_are_fully_accounted() {
    let snaps = snapshots("smartthings-oauth-authorization.json");
    let st = stats(&snaps);
    assert_eq!((st.spans, st.late), (103, 72), "{st:?}");
    for (name, spans) in [
        ("messaging-kafka.json", 28),
        ("smartthings-oauth-authorization.json", 175),
    ] {
        let snaps = snapshots_with_lateness(name, 120_000);
        let st = stats(&snaps);
        assert_eq!(st.spans, spans, "{name}");
        assert_eq!(st.paired + st.unpaired + st.dropped, st.spans, "{name}");
        assert_eq!((st.dropped, st.late, st.rejected), (0, 0, 0), "{name}");
        assert!(!edges(&snaps).is_empty(), "{name}");
    }
    // messaging-kafka.json, by hand: servicea's root CONSUMER (remote kafka, so
    // messaging.system kafka) is called by the messaging node (kafka -> servicea); of its nine
    // PRODUCERs three are each consumed twice, once in serviceb and once in servicea itself
    // (servicea -> serviceb and servicea -> servicea, 3 each); the six nobody consumes fall back
    // to their messaging system (servicea -> kafka). The three `error` tags are on kind-less
    // children of serviceb's consumers: internal spans, on no edge.
    assert_eq!(
        edges(&snapshots("messaging-kafka.json")),
        expect(&[
            ("kafka", "servicea", 1, 0, Messaging),
            ("servicea", "serviceb", 3, 0, Messaging),
            ("servicea", "servicea", 3, 0, Messaging),
            ("servicea", "kafka", 6, 0, Messaging),
        ])
    );
}
