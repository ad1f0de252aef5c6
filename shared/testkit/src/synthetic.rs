//! Small, deterministic graph snapshots for the inference tests: a chain
//! `user -> frontend -> svc-1 -> ... -> svc-(n-1)` with latencies that grow along the chain
//! and a per-window load factor, so consecutive windows differ a little, as real ones do.

use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::{ConnectionType, Edge, IngestStats, Node, NodeKind, ResourceStats};
use meshwatch_proto::v1;

/// Name of service `i` of the chain.
pub fn service_name(i: usize) -> String {
    match i {
        0 => "frontend".to_owned(),
        i => format!("svc-{i}"),
    }
}

fn sketch(values: impl IntoIterator<Item = f64>) -> Sketch {
    let mut sketch = Sketch::default();
    for v in values {
        sketch.add(v);
    }
    sketch
}

/// Window `index` (start `index * window_ms`, offset by `epoch_ms`) of graph `graph` with
/// `services` services (at least 1). `slow` multiplies the latency of service `slow.0` by
/// `slow.1` (a fault).
pub fn snapshot(
    graph: &str,
    epoch_ms: i64,
    window_ms: u32,
    index: i64,
    services: usize,
    slow: Option<(usize, f64)>,
) -> GraphSnapshot {
    let services = services.max(1);
    let load = 1.0 + 0.1 * ((index % 7) as f64 / 7.0);
    let requests = (20.0 * load).round() as u64;
    let latency_of = |i: usize| {
        let base = 2.0 + 1.5 * i as f64;
        match slow {
            Some((s, factor)) if s == i => base * factor,
            _ => base,
        }
    };
    let mut nodes = Vec::with_capacity(services + 1);
    let mut edges = Vec::with_capacity(services);
    let samples =
        |center: f64| (0..requests).map(move |k| center * (0.8 + 0.4 * (k % 5) as f64 / 4.0));
    nodes.push(Node {
        name: "user".to_owned(),
        kind: NodeKind::User,
        requests: 0,
        errors: 0,
        latency: Sketch::default(),
        out_calls: requests,
        out_errors: 0,
        out_latency: sketch(samples(latency_of(0) + 1.0)),
        in_gap: Sketch::default(),
        spans: 0,
        resources: ResourceStats::default(),
    });
    for i in 0..services {
        let calls_out = if i + 1 < services { requests } else { 0 };
        nodes.push(Node {
            name: service_name(i),
            kind: NodeKind::Service,
            requests,
            errors: 0,
            latency: sketch(samples(latency_of(i))),
            out_calls: calls_out,
            out_errors: 0,
            out_latency: if calls_out > 0 {
                sketch(samples(latency_of(i + 1) + 0.5))
            } else {
                Sketch::default()
            },
            in_gap: sketch(samples(0.5)),
            spans: requests * 2,
            resources: ResourceStats::default(),
        });
        let caller = if i == 0 {
            "user".to_owned()
        } else {
            service_name(i - 1)
        };
        edges.push(Edge {
            caller,
            callee: service_name(i),
            connection_type: if i == 0 {
                ConnectionType::Entry
            } else {
                ConnectionType::Direct
            },
            calls: requests,
            errors: 0,
            paired_calls: requests,
            client_latency: sketch(samples(latency_of(i) + 0.5)),
            server_latency: sketch(samples(latency_of(i))),
            gap: sketch(samples(0.5)),
        });
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
    GraphSnapshot {
        graph: graph.to_owned(),
        window_start_ms: epoch_ms + index * i64::from(window_ms),
        window_ms,
        nodes,
        edges,
        stats: IngestStats::default(),
        producer: "testkit".to_owned(),
        producer_version: "0".to_owned(),
    }
}

/// [`snapshot`] as the protobuf message.
pub fn proto_snapshot(
    graph: &str,
    epoch_ms: i64,
    window_ms: u32,
    index: i64,
    services: usize,
    slow: Option<(usize, f64)>,
) -> v1::GraphSnapshot {
    v1::GraphSnapshot::from(&snapshot(graph, epoch_ms, window_ms, index, services, slow))
}

/// Windows `from..to` as protobuf messages.
pub fn proto_window(
    graph: &str,
    epoch_ms: i64,
    window_ms: u32,
    from: i64,
    to: i64,
    services: usize,
) -> Vec<v1::GraphSnapshot> {
    (from..to)
        .map(|i| proto_snapshot(graph, epoch_ms, window_ms, i, services, None))
        .collect()
}
