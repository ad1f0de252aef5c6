use super::*;
use proptest::prelude::*;

fn sketch_of(values: &[f64]) -> Sketch {
    let mut s = Sketch::default();
    for v in values {
        s.add(*v);
    }
    s
}

fn node(name: &str, kind: NodeKind, latencies: &[f64], gaps: &[f64]) -> Node {
    let mut n = Node::new(name.to_owned(), kind);
    n.requests = latencies.len() as u64;
    n.errors = 1;
    n.latency = sketch_of(latencies);
    n.out_calls = 7;
    n.out_errors = 2;
    n.out_latency = sketch_of(&[3.5, 12.0, 250.0]);
    n.in_gap = sketch_of(gaps);
    n.spans = 42;
    n
}

fn resources(cpu: Option<f64>, restarts: Option<u64>) -> ResourceStats {
    ResourceStats {
        cpu_utilization: cpu,
        memory_bytes: Some(512.0 * 1024.0 * 1024.0),
        memory_utilization: None,
        network_rx_bytes_per_s: Some(0.0),
        network_tx_bytes_per_s: None,
        restarts,
    }
}

fn edge(caller: &str, callee: &str, kind: ConnectionType, gaps: &[f64]) -> Edge {
    let mut e = Edge::new(caller.to_owned(), callee.to_owned(), kind);
    e.calls = 10;
    e.errors = 1;
    e.paired_calls = gaps.len() as u64;
    e.client_latency = sketch_of(&[1.0, 2.0, 4.0, 8.0, 1000.0]);
    e.server_latency = sketch_of(&[0.5, 1.5, 3.0]);
    e.gap = sketch_of(gaps);
    e
}

fn sample() -> GraphSnapshot {
    let mut checkout = node(
        "checkout",
        NodeKind::Service,
        &[12.0, 15.5, 90.0],
        &[0.2, -0.3],
    );
    checkout.resources = resources(Some(0.42), Some(0));
    GraphSnapshot {
        graph: "prod/eu-west-1".to_owned(),
        window_start_ms: 1_764_000_000_000,
        window_ms: 30_000,
        nodes: vec![
            checkout,
            node("postgresql/orders", NodeKind::Database, &[], &[]),
            node("user", NodeKind::User, &[], &[]),
            node(
                "__overflow__",
                NodeKind::Overflow,
                &[1.0],
                &[-5.0, -0.00001, 0.0],
            ),
        ],
        edges: vec![
            edge(
                "checkout",
                "postgresql/orders",
                ConnectionType::Database,
                &[],
            ),
            edge(
                "frontend",
                "checkout",
                ConnectionType::Direct,
                &[-2.5, -0.1, 0.0, 0.4, 3.0],
            ),
            edge("user", "frontend", ConnectionType::Entry, &[1.0]),
            edge("checkout", "kafka/payments", ConnectionType::Messaging, &[]),
            edge("checkout", "fraud-api", ConnectionType::VirtualPeer, &[]),
        ],
        stats: IngestStats {
            spans: 100,
            paired: 80,
            unpaired: 15,
            late: 3,
            rejected: 2,
            dropped: 5,
            overflow_services: 1,
            overflow_edges: 4,
        },
        producer: "ingest-0".to_owned(),
        producer_version: "0.1.0".to_owned(),
    }
}

#[test]
fn round_trip_through_bytes_is_lossless() {
    let domain = sample();
    let bytes = encode_snapshot(&domain);
    let message = v1::GraphSnapshot::decode(bytes.as_slice()).expect("valid encoding");
    assert_eq!(message, v1::GraphSnapshot::from(&domain));
    let back = GraphSnapshot::try_from(message).expect("valid snapshot");
    assert_eq!(back, domain);
    assert_eq!(decode_snapshot(&bytes), Ok(domain));
}

#[test]
fn negative_gaps_survive() {
    let domain = sample();
    let back = decode_snapshot(&encode_snapshot(&domain)).expect("valid");
    let gap = &back.edges[1].gap;
    assert_eq!(gap.min, -2.5);
    assert_eq!(gap.negative.counts.iter().sum::<u64>(), 2);
    assert_eq!(gap.zero_count, 1);
    let q0 = gap.quantile(0.0).expect("not empty");
    assert!((q0 + 2.5).abs() <= 2.5 * 0.01);
}

#[test]
fn summary_is_derived_from_the_sketch() {
    let domain = sample();
    let message = v1::GraphSnapshot::from(&domain);
    let latency = message.nodes[0].latency.expect("summary present");
    let sketch = &domain.nodes[0].latency;
    assert_eq!(latency.count, 3);
    assert_eq!(Some(latency.p50_ms), sketch.quantile(0.5));
    assert_eq!(Some(latency.p90_ms), sketch.quantile(0.9));
    assert_eq!(Some(latency.p95_ms), sketch.quantile(0.95));
    assert_eq!(Some(latency.p99_ms), sketch.quantile(0.99));
    assert_eq!(latency.min_ms, 12.0);
    assert_eq!(latency.max_ms, 90.0);
    assert!((latency.mean_ms - (12.0 + 15.5 + 90.0) / 3.0).abs() < 1e-12);
}

#[test]
fn empty_sketch_gives_zero_summary_and_finite_wire_values() {
    let message = v1::GraphSnapshot::from(&sample());
    let db = &message.nodes[1];
    assert_eq!(db.latency, Some(v1::LatencySummary::default()));
    let sketch = db.latency_sketch.as_ref().expect("sketch present");
    assert_eq!(
        (sketch.count, sketch.min, sketch.max, sketch.sum),
        (0, 0.0, 0.0, 0.0)
    );
}

#[test]
fn absent_parts_decode_as_empty() {
    let mut message = v1::GraphSnapshot::from(&sample());
    message.stats = None;
    message.nodes[1].latency_sketch = None;
    let back = GraphSnapshot::try_from(message).expect("valid");
    assert_eq!(back.stats, IngestStats::default());
    assert_eq!(back.nodes[1].latency, Sketch::default());
}

#[test]
fn unknown_enum_value_names_the_field() {
    let mut message = v1::GraphSnapshot::from(&sample());
    message.nodes[2].kind = 42;
    let err = GraphSnapshot::try_from(message).expect_err("unknown kind");
    assert_eq!(
        err,
        ConvertError::UnknownEnumValue {
            field: "nodes[2].kind".to_owned(),
            value: 42
        }
    );
    assert_eq!(err.to_string(), "nodes[2].kind: unknown enum value 42");
}

#[test]
fn unspecified_enum_is_refused() {
    let mut message = v1::GraphSnapshot::from(&sample());
    message.edges[3].connection_type = v1::ConnectionType::Unspecified.into();
    let err = GraphSnapshot::try_from(message).expect_err("unspecified");
    assert_eq!(err.field(), Some("edges[3].connection_type"));
    assert!(matches!(err, ConvertError::Unspecified { .. }));
}

#[test]
fn bad_alpha_is_an_invalid_sketch() {
    let mut message = v1::GraphSnapshot::from(&sample());
    if let Some(s) = message.edges[1].gap_sketch.as_mut() {
        s.alpha = 1.5;
    }
    let err = GraphSnapshot::try_from(message).expect_err("bad alpha");
    assert_eq!(
        err,
        ConvertError::InvalidSketch {
            field: "edges[1].gap_sketch".to_owned(),
            reason: SketchError::Invalid("alpha must be in (0, 1)"),
        }
    );
}

#[test]
fn too_many_buckets_is_refused() {
    let mut message = v1::GraphSnapshot::from(&sample());
    if let Some(s) = message.nodes[0].latency_sketch.as_mut() {
        s.positive_counts = vec![1; MAX_BUCKETS + 1];
        s.count = (MAX_BUCKETS + 1) as u64 + s.negative_counts.iter().sum::<u64>() + s.zero_count;
    }
    let err = GraphSnapshot::try_from(message).expect_err("too many buckets");
    assert_eq!(
        err,
        ConvertError::TooManyBuckets {
            field: "nodes[0].latency_sketch.positive_counts".to_owned(),
            len: MAX_BUCKETS + 1,
            max: MAX_BUCKETS,
        }
    );
}

#[test]
fn count_mismatch_is_refused() {
    let mut message = v1::GraphSnapshot::from(&sample());
    if let Some(s) = message.nodes[3].in_gap_sketch.as_mut() {
        s.count += 1;
    }
    let err = GraphSnapshot::try_from(message).expect_err("count mismatch");
    assert_eq!(err.field(), Some("nodes[3].in_gap_sketch.count"));
    assert!(matches!(
        err,
        ConvertError::CountMismatch {
            declared: 4,
            actual: 3,
            ..
        }
    ));
}

#[test]
fn overflowing_counts_do_not_panic() {
    let mut message = v1::GraphSnapshot::from(&sample());
    if let Some(s) = message.nodes[0].latency_sketch.as_mut() {
        s.positive_counts = vec![u64::MAX, 1];
    }
    let err = GraphSnapshot::try_from(message).expect_err("overflow");
    assert!(matches!(err, ConvertError::CountOverflow { .. }));
    assert_eq!(err.field(), Some("nodes[0].latency_sketch"));
}

#[test]
fn bucket_index_outside_range_is_refused() {
    let mut message = v1::GraphSnapshot::from(&sample());
    if let Some(s) = message.edges[0].client_latency_sketch.as_mut() {
        s.positive_offset = i32::MAX - 2;
    }
    let err = GraphSnapshot::try_from(message).expect_err("offset");
    assert_eq!(
        err.field(),
        Some("edges[0].client_latency_sketch.positive_counts")
    );
    assert!(matches!(err, ConvertError::BucketIndexOutOfRange { .. }));
}

#[test]
fn non_finite_extremes_are_refused() {
    let mut message = v1::GraphSnapshot::from(&sample());
    if let Some(s) = message.edges[1].server_latency_sketch.as_mut() {
        s.max = f64::NAN;
    }
    let err = GraphSnapshot::try_from(message).expect_err("nan");
    assert_eq!(err.field(), Some("edges[1].server_latency_sketch.max"));
}

#[test]
fn zero_window_is_refused() {
    let mut message = v1::GraphSnapshot::from(&sample());
    message.window_ms = 0;
    let err = GraphSnapshot::try_from(message).expect_err("zero window");
    assert_eq!(err.field(), Some("window_ms"));
}

#[test]
fn garbage_bytes_are_a_decode_error() {
    let err = decode_snapshot(&[0xff, 0xff, 0xff]).expect_err("garbage");
    assert!(matches!(err, ConvertError::Decode(_)));
    assert_eq!(err.field(), None);
}

#[test]
fn resource_metrics_keep_their_presence() {
    let domain = sample();
    let message = v1::GraphSnapshot::from(&domain);
    let r = message.nodes[0].resources.expect("reported");
    // Zero is a value, absent is absent.
    assert_eq!(r.network_rx_bytes_per_s, Some(0.0));
    assert_eq!(r.restarts, Some(0));
    assert_eq!(
        (r.memory_utilization, r.network_tx_bytes_per_s),
        (None, None)
    );
    // A node that reported nothing carries no message at all.
    assert_eq!(message.nodes[1].resources, None);
    let back = decode_snapshot(&encode_snapshot(&domain)).expect("valid");
    assert_eq!(back.nodes[0].resources, domain.nodes[0].resources);
    assert_eq!(back.nodes[1].resources, ResourceStats::default());
}

#[test]
fn invalid_resource_metrics_name_the_field() {
    for bad in [f64::NAN, f64::INFINITY, -0.5] {
        let mut message = v1::GraphSnapshot::from(&sample());
        if let Some(r) = message.nodes[0].resources.as_mut() {
            r.memory_utilization = Some(bad);
        }
        let err = GraphSnapshot::try_from(message).expect_err("refused");
        assert_eq!(err.field(), Some("nodes[0].resources.memory_utilization"));
    }
}

fn arb_resources() -> impl Strategy<Value = ResourceStats> {
    let value = || prop::option::of(prop_oneof![Just(0.0), 0.0f64..1e12]);
    (
        value(),
        value(),
        value(),
        value(),
        value(),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(cpu, bytes, mem, rx, tx, restarts)| ResourceStats {
            cpu_utilization: cpu,
            memory_bytes: bytes,
            memory_utilization: mem,
            network_rx_bytes_per_s: rx,
            network_tx_bytes_per_s: tx,
            restarts,
        })
}

fn arb_sketch() -> impl Strategy<Value = Sketch> {
    prop::collection::vec(prop_oneof![-1e4f64..1e6, Just(0.0), -1e-5f64..1e-5], 0..60)
        .prop_map(|values| sketch_of(&values))
}

fn arb_wire_sketch() -> impl Strategy<Value = v1::LatencySketch> {
    (
        (any::<f64>(), any::<f64>(), any::<i32>()),
        prop::collection::vec(any::<u64>(), 0..8),
        any::<i32>(),
        prop::collection::vec(0u64..1000, 0..8),
        (
            any::<u64>(),
            any::<u64>(),
            any::<f64>(),
            any::<f64>(),
            any::<f64>(),
        ),
    )
        .prop_map(
            |((alpha, min_value, po), pc, no, nc, (zero, count, sum, min, max))| {
                v1::LatencySketch {
                    alpha,
                    min_value,
                    positive_offset: po,
                    positive_counts: pc,
                    negative_offset: no,
                    negative_counts: nc,
                    zero_count: zero,
                    count,
                    sum,
                    min,
                    max,
                }
            },
        )
}

proptest! {
    #[test]
    fn random_snapshots_round_trip(
        sketches in prop::collection::vec(arb_sketch(), 6),
        start in any::<i64>(),
        window in 1u32..,
    ) {
        let mut domain = sample();
        domain.window_start_ms = start;
        domain.window_ms = window;
        domain.nodes[0].latency = sketches[0].clone();
        domain.nodes[0].out_latency = sketches[1].clone();
        domain.nodes[0].in_gap = sketches[2].clone();
        domain.edges[0].client_latency = sketches[3].clone();
        domain.edges[0].server_latency = sketches[4].clone();
        domain.edges[0].gap = sketches[5].clone();
        let back = decode_snapshot(&encode_snapshot(&domain));
        prop_assert_eq!(back, Ok(domain));
    }

    #[test]
    fn random_resource_metrics_round_trip(r in arb_resources()) {
        let mut domain = sample();
        domain.nodes[2].resources = r;
        let back = decode_snapshot(&encode_snapshot(&domain));
        prop_assert_eq!(back, Ok(domain));
    }

    #[test]
    fn arbitrary_wire_sketches_never_panic(sketch in arb_wire_sketch()) {
        let mut message = v1::GraphSnapshot::from(&sample());
        message.edges[1].gap_sketch = Some(sketch);
        if let Ok(domain) = GraphSnapshot::try_from(message) {
            // Whatever was accepted must be usable.
            let gap = &domain.edges[1].gap;
            let _ = latency_summary(gap);
            let mut merged = Sketch::default();
            let _ = merged.merge(gap);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_snapshot(&bytes);
    }
}
