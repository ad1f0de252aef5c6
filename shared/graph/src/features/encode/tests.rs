//! Unit tests with hand-computed values, and a property test of the encoder's invariants.

use proptest::prelude::*;

use super::*;
use crate::features::schema::{
    EDGE_FEATURE_NAMES, NODE_FEATURE_NAMES, NODE_FEATURES, TARGET_NAMES, Transform,
};
use crate::sketch::Sketch;
use crate::snapshot::{ConnectionType, Edge, IngestStats, Node, ResourceStats};

fn sketch(values: &[f64]) -> Sketch {
    let mut s = Sketch::default();
    for v in values {
        s.add(*v);
    }
    s
}

fn snapshot(start_ms: i64, nodes: Vec<Node>, edges: Vec<Edge>) -> GraphSnapshot {
    GraphSnapshot {
        graph: "g".into(),
        window_start_ms: start_ms,
        window_ms: 60_000,
        nodes,
        edges,
        stats: IngestStats::default(),
        producer: "test".into(),
        producer_version: "0".into(),
    }
}

fn nf(name: &str) -> usize {
    NODE_FEATURE_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no node feature {name}"))
}

fn ef(name: &str) -> usize {
    EDGE_FEATURE_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no edge feature {name}"))
}

fn tg(name: &str) -> usize {
    TARGET_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"))
}

fn ln1p(x: f64) -> f32 {
    x.ln_1p() as f32
}

/// user -> frontend (entry, 120 calls, 30 errors) and frontend -> cart (60 calls, 6 errors);
/// every latency sketch holds one repeated value, so its quantiles are exact.
fn first_window() -> GraphSnapshot {
    let mut user = Node::new("user".into(), NodeKind::User);
    user.out_calls = 120;
    user.out_errors = 30;
    user.out_latency = sketch(&[100.0; 120]);
    let mut frontend = Node::new("frontend".into(), NodeKind::Service);
    frontend.requests = 120;
    frontend.errors = 30;
    frontend.latency = sketch(&[100.0; 120]);
    frontend.out_calls = 60;
    frontend.out_errors = 6;
    frontend.out_latency = sketch(&[50.0; 60]);
    frontend.resources = ResourceStats {
        cpu_utilization: Some(0.5),
        memory_bytes: None,
        memory_utilization: Some(f64::NAN),
        network_rx_bytes_per_s: Some(1000.0),
        network_tx_bytes_per_s: None,
        restarts: Some(2),
    };
    let mut cart = Node::new("cart".into(), NodeKind::Service);
    cart.requests = 60;
    cart.errors = 6;
    cart.latency = sketch(&[40.0; 60]);
    cart.in_gap = sketch(&[-5.0; 60]);
    let mut entry = Edge::new("user".into(), "frontend".into(), ConnectionType::Entry);
    entry.calls = 120;
    entry.errors = 30;
    entry.server_latency = sketch(&[100.0; 120]);
    let mut call = Edge::new("frontend".into(), "cart".into(), ConnectionType::Direct);
    call.calls = 60;
    call.errors = 6;
    call.paired_calls = 45;
    call.client_latency = sketch(&[50.0; 60]);
    call.server_latency = sketch(&[40.0; 60]);
    call.gap = sketch(&[10.0; 45]);
    snapshot(60_000, vec![cart, frontend, user], vec![call, entry])
}

fn third_window() -> GraphSnapshot {
    let mut s = first_window();
    s.window_start_ms = 180_000;
    s.nodes.retain(|n| n.name != "cart");
    s.edges.retain(|e| e.callee != "cart");
    s
}

#[test]
fn hand_computed_sequence() {
    let (w1, w3) = (first_window(), third_window());
    let enc = encode_snapshots(60_000, 60_000, &[Some(&w1), None, Some(&w3)]).expect("valid");
    assert_eq!(enc.node_names, ["cart", "frontend", "user"]);
    assert_eq!(
        enc.node_kinds,
        [NodeKind::Service, NodeKind::Service, NodeKind::User]
    );
    assert_eq!(enc.node_features.shape(), [3, 3, NODE_FEATURE_COUNT]);
    assert_eq!(enc.node_mask.data(), [1., 1., 1., 0., 0., 0., 0., 1., 1.]);
    assert_eq!(enc.step_mask.data(), [1., 0., 1.]);
    assert_eq!(enc.window_start.data(), [60, 120, 180]);
    assert_eq!(enc.window_start_ms, [60_000, 120_000, 180_000]);
    // Edges sorted by (caller, callee): frontend -> cart, user -> frontend.
    assert_eq!(enc.edge_index.shape(), [2, 2]);
    assert_eq!(enc.edge_index.data(), [1, 2, 0, 1]);
    assert_eq!(enc.edge_weight.data(), [1., 1., 0., 0., 0., 1.]);
    assert_eq!(enc.edge_position("user", "frontend"), Some(1));

    let f = |t: usize, n: usize, name: &str| enc.node_features.get(&[t, n, nf(name)]).copied();
    // frontend, window 1: 120 requests in 60 s = 2/s; 30 errors; latency 100 ms.
    assert_eq!(f(0, 1, "kind_service"), Some(1.0));
    assert_eq!(f(0, 1, "kind_user"), Some(0.0));
    assert_eq!(f(0, 1, "requests_per_s"), Some(ln1p(2.0)));
    assert_eq!(f(0, 1, "error_ratio"), Some(0.25));
    assert_eq!(f(0, 1, "latency_p50_ms"), Some(ln1p(100.0)));
    assert_eq!(f(0, 1, "latency_p99_ms"), Some(ln1p(100.0)));
    assert_eq!(f(0, 1, "out_calls_per_s"), Some(ln1p(1.0)));
    assert_eq!(f(0, 1, "out_error_ratio"), Some(0.1));
    assert_eq!(f(0, 1, "out_latency_p90_ms"), Some(ln1p(50.0)));
    assert_eq!(f(0, 1, "in_gap_present"), Some(0.0));
    assert_eq!(f(0, 1, "cpu_utilization"), Some(0.5));
    assert_eq!(f(0, 1, "cpu_utilization_present"), Some(1.0));
    assert_eq!(f(0, 1, "memory_bytes"), Some(0.0));
    assert_eq!(f(0, 1, "memory_bytes_present"), Some(0.0));
    // NaN counts as absent: value and flag 0.
    assert_eq!(f(0, 1, "memory_utilization"), Some(0.0));
    assert_eq!(f(0, 1, "memory_utilization_present"), Some(0.0));
    assert_eq!(f(0, 1, "network_rx_bytes_per_s"), Some(ln1p(1000.0)));
    assert_eq!(f(0, 1, "network_rx_bytes_per_s_present"), Some(1.0));
    assert_eq!(f(0, 1, "restarts"), Some(ln1p(2.0)));
    assert_eq!(f(0, 1, "restarts_present"), Some(1.0));
    // cart: a negative gap keeps its sign.
    assert_eq!(f(0, 0, "in_gap_p50_ms"), Some(-(5f64.ln_1p() as f32)));
    assert_eq!(f(0, 0, "in_gap_present"), Some(1.0));
    // user: a caller only.
    assert_eq!(f(0, 2, "kind_user"), Some(1.0));
    assert_eq!(f(0, 2, "requests_per_s"), Some(0.0));
    assert_eq!(f(0, 2, "out_calls_per_s"), Some(ln1p(2.0)));
    assert_eq!(f(0, 2, "out_error_ratio"), Some(0.25));
    // The missing window and the absent cart are all zeros.
    for (t, n) in [(1, 0), (1, 1), (1, 2), (2, 0)] {
        assert!(
            enc.node_features
                .row(&[t, n])
                .expect("in range")
                .iter()
                .all(|v| *v == 0.0)
        );
    }

    let e = |t: usize, i: usize, name: &str| enc.edge_features.get(&[t, i, ef(name)]).copied();
    assert_eq!(e(0, 0, "calls_per_s"), Some(ln1p(1.0)));
    assert_eq!(e(0, 0, "error_ratio"), Some(0.1));
    assert_eq!(e(0, 0, "paired_ratio"), Some(0.75));
    assert_eq!(e(0, 0, "client_latency_p90_ms"), Some(ln1p(50.0)));
    assert_eq!(e(0, 0, "server_latency_p90_ms"), Some(ln1p(40.0)));
    assert_eq!(e(0, 0, "gap_p90_ms"), Some(ln1p(10.0)));
    assert_eq!(e(0, 0, "conn_direct"), Some(1.0));
    assert_eq!(e(0, 1, "conn_entry"), Some(1.0));
    assert_eq!(e(0, 1, "client_latency_p90_ms"), Some(0.0));
    assert_eq!(e(2, 1, "calls_per_s"), Some(ln1p(2.0)));
    assert!(
        enc.edge_features
            .row(&[2, 0])
            .expect("in range")
            .iter()
            .all(|v| *v == 0.0)
    );

    // Targets are raw: frontend 2 req/s, p90 100 ms, p99 100 ms, error ratio 0.25.
    assert_eq!(
        enc.targets.row(&[0, 1]),
        Some(&[2.0, 100.0, 100.0, 0.25][..])
    );
    assert_eq!(enc.target_mask.row(&[0, 1]), Some(&[1.0; 4][..]));
    // user serves no requests: rate 0 (defined), latencies and error ratio undefined.
    assert_eq!(enc.targets.row(&[0, 2]), Some(&[0.0; 4][..]));
    assert_eq!(
        enc.target_mask.row(&[0, 2]),
        Some(&[1.0, 0.0, 0.0, 0.0][..])
    );
    // Missing window: nothing defined. Absent cart in an observed window: rate 0 only.
    assert_eq!(enc.target_mask.row(&[1, 1]), Some(&[0.0; 4][..]));
    assert_eq!(
        enc.target_mask.row(&[2, 0]),
        Some(&[1.0, 0.0, 0.0, 0.0][..])
    );
    assert_eq!(enc.targets.get(&[0, 0, tg("error_ratio")]), Some(&0.1));
}

#[test]
fn request_rate_target_index() {
    assert_eq!(TARGET_NAMES[REQUEST_RATE_TARGET], "request_rate");
    assert_eq!(tg("request_rate"), REQUEST_RATE_TARGET);
}

#[test]
fn rates_use_the_window_length() {
    let mut s = first_window();
    s.window_ms = 30_000;
    let enc = encode_snapshots(30_000, 60_000, &[Some(&s)]).expect("valid");
    let frontend = enc.node_index("frontend").expect("node");
    assert_eq!(
        enc.node_features.get(&[0, frontend, nf("requests_per_s")]),
        Some(&ln1p(4.0))
    );
    assert_eq!(enc.targets.get(&[0, frontend, 0]), Some(&4.0));
}

#[test]
fn edge_endpoints_without_a_node_entry_are_masked_nodes() {
    let mut overflow = Edge::new(
        OVERFLOW_NODE.into(),
        OVERFLOW_NODE.into(),
        ConnectionType::Direct,
    );
    overflow.calls = 3;
    let s = snapshot(0, Vec::new(), vec![overflow]);
    let enc = encode_snapshots(60_000, 0, &[Some(&s)]).expect("valid");
    assert_eq!(enc.node_names, [OVERFLOW_NODE]);
    assert_eq!(enc.node_kinds, [NodeKind::Overflow]);
    assert_eq!(enc.node_mask.data(), [0.0]);
    assert_eq!(enc.edge_weight.data(), [1.0]);
    assert_eq!(enc.edge_index.data(), [0, 0]);
    assert_eq!(enc.step_mask.data(), [1.0]);
}

#[test]
fn a_snapshot_without_nodes_or_edges_is_a_masked_step() {
    let mut s = snapshot(0, Vec::new(), Vec::new());
    s.stats.late = 4;
    let step = StepFeatures::from_snapshot(&s);
    assert!(!step.observed);
    let enc = encode(60_000, &[step]).expect("valid");
    assert_eq!(enc.step_mask.data(), [0.0]);
    assert_eq!(enc.node_features.shape(), [1, 0, NODE_FEATURE_COUNT]);
    assert_eq!(enc.edge_index.shape(), [2, 0]);
}

#[test]
fn invalid_sequences_are_refused() {
    let w1 = first_window();
    assert_eq!(encode(60_000, &[]), Err(EncodeError::NoSteps));
    assert_eq!(
        encode(0, &[StepFeatures::missing(0)]),
        Err(EncodeError::ZeroWindow)
    );
    assert!(matches!(
        encode_snapshots(60_000, 0, &[Some(&w1)]),
        Err(EncodeError::StartMismatch { step: 0, .. })
    ));
    let mut other = third_window();
    other.graph = "h".into();
    assert!(matches!(
        encode_snapshots(60_000, 60_000, &[Some(&w1), None, Some(&other)]),
        Err(EncodeError::GraphMismatch { step: 2, .. })
    ));
    assert!(matches!(
        encode_snapshots(30_000, 60_000, &[Some(&w1)]),
        Err(EncodeError::WindowMismatch { step: 0, .. })
    ));
    let steps = [StepFeatures::missing(60_000), StepFeatures::missing(60_000)];
    assert!(matches!(
        encode(60_000, &steps),
        Err(EncodeError::NotIncreasing { step: 1, .. })
    ));
}

#[test]
fn unsorted_and_repeated_entries_keep_the_first() {
    let mut s = first_window();
    s.nodes.reverse();
    let mut dup = Node::new("frontend".into(), NodeKind::Peer);
    dup.requests = 1;
    s.nodes.push(dup);
    let step = StepFeatures::from_snapshot(&s);
    let names: Vec<&str> = step.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["cart", "frontend", "user"]);
    assert_eq!(step.nodes[1].kind, NodeKind::Service);
}

// --- property test ---------------------------------------------------------------------------

const NAMES: [&str; 5] = ["a", "b", "c", USER_NODE, OVERFLOW_NODE];

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e4f64..1e5,
        1 => any::<f64>(),
        1 => Just(0.0),
    ]
}

fn arb_sketch() -> impl Strategy<Value = Sketch> {
    (
        prop::collection::vec(arb_f64(), 0..6),
        prop::option::of((any::<f64>(), any::<f64>())),
    )
        .prop_map(|(values, extremes)| {
            let mut s = sketch(&values);
            // A corrupt sketch (min > max, NaN) must not break the encoder.
            if let Some((min, max)) = extremes {
                s.min = min;
                s.max = max;
            }
            s
        })
}

fn arb_count() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..1000, 1 => any::<u64>()]
}

fn arb_kind() -> impl Strategy<Value = NodeKind> {
    prop::sample::select(crate::features::NODE_KINDS.to_vec())
}

fn arb_node() -> impl Strategy<Value = Node> {
    (
        prop::sample::select(NAMES.to_vec()),
        arb_kind(),
        (arb_count(), arb_count(), arb_count(), arb_count()),
        (arb_sketch(), arb_sketch(), arb_sketch()),
        (
            prop::option::of(any::<f64>()),
            prop::option::of(arb_f64()),
            prop::option::of(any::<f64>()),
            prop::option::of(arb_f64()),
            prop::option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |(
                name,
                kind,
                (req, err, out, out_err),
                (lat, out_lat, gap),
                (cpu, mem, mu, rx, rs),
            )| {
                let mut n = Node::new(name.into(), kind);
                (n.requests, n.errors, n.out_calls, n.out_errors) = (req, err, out, out_err);
                (n.latency, n.out_latency, n.in_gap) = (lat, out_lat, gap);
                n.resources = ResourceStats {
                    cpu_utilization: cpu,
                    memory_bytes: mem,
                    memory_utilization: mu,
                    network_rx_bytes_per_s: rx,
                    network_tx_bytes_per_s: None,
                    restarts: rs,
                };
                n
            },
        )
}

fn arb_edge() -> impl Strategy<Value = Edge> {
    (
        prop::sample::select(NAMES.to_vec()),
        prop::sample::select(NAMES.to_vec()),
        prop::sample::select(crate::features::schema::CONNECTION_TYPES.to_vec()),
        (arb_count(), arb_count(), arb_count()),
        (arb_sketch(), arb_sketch(), arb_sketch()),
    )
        .prop_map(|(a, b, ct, (calls, errors, paired), (c, s, g))| {
            let mut e = Edge::new(a.into(), b.into(), ct);
            (e.calls, e.errors, e.paired_calls) = (calls, errors, paired);
            (e.client_latency, e.server_latency, e.gap) = (c, s, g);
            e
        })
}

fn arb_sequence() -> impl Strategy<Value = (u32, Vec<Option<GraphSnapshot>>)> {
    (
        prop_oneof![Just(60_000u32), 1u32..3_600_000],
        prop::collection::vec(
            prop::option::of((
                prop::collection::vec(arb_node(), 0..5),
                prop::collection::vec(arb_edge(), 0..5),
            )),
            1..6,
        ),
    )
        .prop_map(|(window_ms, steps)| {
            let seq = steps
                .into_iter()
                .enumerate()
                .map(|(t, step)| {
                    step.map(|(nodes, edges)| {
                        let mut s = snapshot(t as i64 * i64::from(window_ms), nodes, edges);
                        s.window_ms = window_ms;
                        s
                    })
                })
                .collect();
            (window_ms, seq)
        })
}

proptest! {
    #[test]
    fn shapes_masks_and_values_are_consistent((window_ms, seq) in arb_sequence()) {
        let refs: Vec<Option<&GraphSnapshot>> = seq.iter().map(Option::as_ref).collect();
        let enc = encode_snapshots(window_ms, 0, &refs).expect("a valid sequence");
        let (t_len, n_len, e_len) = (seq.len(), enc.node_count(), enc.edge_count());
        prop_assert_eq!(enc.node_features.shape(), [t_len, n_len, NODE_FEATURE_COUNT]);
        prop_assert_eq!(enc.node_mask.shape(), [t_len, n_len]);
        prop_assert_eq!(enc.edge_index.shape(), [2, e_len]);
        prop_assert_eq!(enc.edge_weight.shape(), [t_len, e_len]);
        prop_assert_eq!(enc.edge_features.shape(), [t_len, e_len, EDGE_FEATURE_COUNT]);
        prop_assert_eq!(enc.window_start.shape(), [t_len]);
        prop_assert_eq!(enc.step_mask.shape(), [t_len]);
        prop_assert_eq!(enc.targets.shape(), [t_len, n_len, TARGET_COUNT]);
        prop_assert_eq!(enc.target_mask.shape(), [t_len, n_len, TARGET_COUNT]);
        prop_assert_eq!(enc.node_kinds.len(), n_len);
        prop_assert!(enc.node_names.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        prop_assert!(enc.edge_index.data().iter().all(|&i| i >= 0 && (i as usize) < n_len));

        for tensor in [
            &enc.node_features, &enc.node_mask, &enc.edge_weight, &enc.edge_features,
            &enc.step_mask, &enc.targets, &enc.target_mask,
        ] {
            prop_assert!(tensor.data().iter().all(|v| v.is_finite()), "no NaN or inf");
        }
        for tensor in [&enc.node_mask, &enc.edge_weight, &enc.step_mask, &enc.target_mask] {
            prop_assert!(tensor.data().iter().all(|v| *v == 0.0 || *v == 1.0), "0/1 masks");
        }

        for (t, snapshot) in seq.iter().enumerate() {
            let observed = snapshot.as_ref()
                .is_some_and(|s| !(s.nodes.is_empty() && s.edges.is_empty()));
            prop_assert_eq!(enc.step_mask.data()[t], if observed { 1.0 } else { 0.0 });
            for (n, name) in enc.node_names.iter().enumerate() {
                let present = snapshot.as_ref()
                    .is_some_and(|s| s.nodes.iter().any(|x| &x.name == name));
                prop_assert_eq!(enc.node_mask.get(&[t, n]), Some(&f32::from(u8::from(present))));
                let row = enc.node_features.row(&[t, n]).expect("in range");
                if !present {
                    prop_assert!(row.iter().all(|v| *v == 0.0), "absent node is all 0");
                } else {
                    // One kind, and a value only where its presence flag says so.
                    prop_assert_eq!(row[..6].iter().sum::<f32>(), 1.0);
                    for (i, f) in NODE_FEATURES.iter().enumerate() {
                        if f.transform == Transform::Presence && row[i] == 0.0 && i > 0
                            && f.name.starts_with(NODE_FEATURES[i - 1].name)
                        {
                            prop_assert_eq!(row[i - 1], 0.0, "{} absent", f.name);
                        }
                        if f.transform == Transform::Ratio {
                            prop_assert!((0.0..=1.0).contains(&row[i]));
                        }
                    }
                }
                let targets = enc.targets.row(&[t, n]).expect("in range");
                let mask = enc.target_mask.row(&[t, n]).expect("in range");
                prop_assert_eq!(mask[REQUEST_RATE_TARGET], f32::from(u8::from(observed)));
                for (v, m) in targets.iter().zip(mask) {
                    prop_assert!(*m == 1.0 || *v == 0.0, "undefined targets are 0");
                }
            }
            for e in 0..e_len {
                let idx = enc.edge_index.data();
                let (a, b) = (&enc.node_names[idx[e] as usize], &enc.node_names[idx[e_len + e] as usize]);
                let present = snapshot.as_ref()
                    .is_some_and(|s| s.edges.iter().any(|x| &x.caller == a && &x.callee == b));
                prop_assert_eq!(enc.edge_weight.get(&[t, e]), Some(&f32::from(u8::from(present))));
                if !present {
                    prop_assert!(enc.edge_features.row(&[t, e]).expect("in range").iter().all(|v| *v == 0.0));
                }
            }
        }
    }
}
