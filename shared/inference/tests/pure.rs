//! The pure core end to end: the gRPC path (snapshots in a request) and the streaming path
//! (snapshots one by one through the history) feed the model the same window, and a report
//! comes out of it.

use meshwatch_graph::features::{NODE_FEATURE_NAMES, StepFeatures};
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::{ConnectionType, Edge, GraphSnapshot, IngestStats, Node, NodeKind};
use meshwatch_inference::history::{History, Insert};
use meshwatch_inference::limits::Limits;
use meshwatch_inference::report::anomaly_report;
use meshwatch_inference::window::{from_snapshots, from_steps};
use meshwatch_model::{ModelKind, ModelOutputs};
use meshwatch_proto::v1;
use ndarray::{Array1, Array2};

const WINDOW_MS: u32 = 10_000;
const T: usize = 4;

fn snapshot(k: i64) -> GraphSnapshot {
    let mut latency = Sketch::default();
    let mut frontend = Node::new("frontend".to_owned(), NodeKind::Service);
    let requests = 10 + k.unsigned_abs();
    for i in 0..requests {
        latency.add(5.0 + i as f64);
    }
    frontend.requests = requests;
    frontend.latency = latency;
    frontend.out_calls = requests;
    let mut user = Node::new("user".to_owned(), NodeKind::User);
    user.out_calls = requests;
    let mut entry = Edge::new(
        "user".to_owned(),
        "frontend".to_owned(),
        ConnectionType::Entry,
    );
    entry.calls = requests;
    let mut db = Edge::new(
        "frontend".to_owned(),
        "postgresql/orders".to_owned(),
        ConnectionType::Database,
    );
    db.calls = requests;
    GraphSnapshot {
        graph: "prod".to_owned(),
        window_start_ms: k * i64::from(WINDOW_MS),
        window_ms: WINDOW_MS,
        nodes: vec![frontend, user],
        edges: vec![db, entry],
        stats: IngestStats::default(),
        producer: "ingest-0".to_owned(),
        producer_version: "0.1.0".to_owned(),
    }
}

#[test]
fn request_and_stream_paths_give_the_same_window() {
    // Windows 0..=9 with 3, 6 and 7 missing; the stream delivers 5 late and 8 twice.
    let windows = [0, 1, 2, 4, 5, 8, 9];
    let arrivals = [0, 1, 2, 4, 8, 5, 8, 9];
    // Window 5 comes back 3 windows behind the newest: kept windows cover its history.
    let mut history = History::with_late_windows(T, 3, 16);
    let mut outcomes = Vec::new();
    for k in arrivals {
        let decoded =
            meshwatch_proto::decode_snapshot(&meshwatch_proto::encode_snapshot(&snapshot(k)))
                .expect("round trip");
        let step = StepFeatures::from_snapshot(&decoded);
        let outcome = history.insert("prod", WINDOW_MS, step);
        outcomes.push((k, outcome));
        if outcome != Insert::New {
            continue;
        }
        let (window_ms, steps) = history
            .window("prod", decoded.window_start_ms)
            .expect("graph just inserted");
        assert_eq!(steps.len(), T);
        let stream =
            from_steps("prod", window_ms, &steps, ModelKind::Detector).expect("valid history");
        history.mark_scored("prod", decoded.window_start_ms);

        let request: Vec<v1::GraphSnapshot> = windows
            .iter()
            .filter(|&&w| w <= k && arrivals_before(&arrivals, k, w))
            .map(|&w| v1::GraphSnapshot::from(&snapshot(w)))
            .collect();
        let grpc = from_snapshots(&request, ModelKind::Detector, T, &Limits::default())
            .expect("valid request");
        assert_eq!(grpc.encoded, stream.encoded, "window {k}");
        assert_eq!(grpc.inputs, stream.inputs, "window {k}");
        assert_eq!(grpc.last_window_start_ms(), decoded.window_start_ms);
    }
    // 5 arrives after 8 was scored: never scored, so scored now, late, with the windows
    // before it; 8 is redelivered: not scored again.
    assert_eq!(
        outcomes,
        [
            (0, Insert::New),
            (1, Insert::New),
            (2, Insert::New),
            (4, Insert::New),
            (8, Insert::New),
            (5, Insert::New),
            (8, Insert::AlreadyScored),
            (9, Insert::New),
        ]
    );
}

/// Whether window `w` had arrived by the time window `k` was scored (first arrival of `k`).
fn arrivals_before(arrivals: &[i64], k: i64, w: i64) -> bool {
    let first_k = arrivals.iter().position(|&a| a == k);
    let first_w = arrivals.iter().position(|&a| a == w);
    matches!((first_w, first_k), (Some(a), Some(b)) if a <= b)
}

#[test]
fn a_request_becomes_a_report() {
    let request: Vec<v1::GraphSnapshot> = [7, 9]
        .iter()
        .map(|&k| v1::GraphSnapshot::from(&snapshot(k)))
        .collect();
    let window = from_snapshots(&request, ModelKind::Detector, T, &Limits::default())
        .expect("valid request");
    let n = window.encoded.node_count();
    assert_eq!(
        window.encoded.node_names,
        ["frontend", "postgresql/orders", "user"]
    );
    let f = NODE_FEATURE_NAMES.len();
    let outputs = ModelOutputs::Detector {
        anomaly_score: Array1::from_shape_fn(n, |i| i as f32),
        feature_contribution: Array2::from_shape_fn((n, f), |(i, j)| (i + j) as f32),
    };
    let names: Vec<String> = NODE_FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let model = v1::ModelRef {
        name: "detector".to_owned(),
        version: "1".to_owned(),
        execution_provider: "cpu".to_owned(),
    };
    let top = Limits::default().top_contributions(0).expect("the default");
    let report = anomaly_report(&window, &outputs, &model, &names, top).expect("report");
    assert_eq!(report.graph, "prod");
    assert_eq!(report.window_start_ms, 90_000);
    assert_eq!(report.steps, T as u32);
    assert_eq!(report.observed_steps, 2);
    assert_eq!(report.scores.len(), n);
    assert!(report.scores.iter().all(|s| s.contributions.len() == 5));
    // Never a node of its own in the snapshots: the encoder calls an edge endpoint a peer.
    assert_eq!(report.scores[1].kind, v1::NodeKind::Peer as i32);
    assert!(!report.scores[1].present, "only an edge endpoint");
    assert!(report.scores[0].present && report.scores[2].present);
    assert_eq!(report.scores[0].contributions[0].feature, names[f - 1]);
}
