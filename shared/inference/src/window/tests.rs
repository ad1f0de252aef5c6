//! Every refused input class with its field, padding, gaps, ignored old snapshots, and a
//! property of the window layout.

use meshwatch_graph::features::StepFeatures;
use meshwatch_graph::snapshot::NodeKind;
use meshwatch_model::{ModelInputs, ModelKind};
use meshwatch_proto::v1;
use proptest::prelude::*;

use super::fixtures::{WINDOW_MS, domain, edge, proto, service, start, step};
use super::*;

const DETECTOR: ModelKind = ModelKind::Detector;

fn limits() -> Limits {
    Limits::default()
}

/// The error of `from_snapshots` on `snapshots` with T = 4 and default limits.
fn refused(snapshots: &[v1::GraphSnapshot]) -> RequestError {
    refused_with(snapshots, &limits())
}

fn refused_with(snapshots: &[v1::GraphSnapshot], limits: &Limits) -> RequestError {
    from_snapshots(snapshots, DETECTOR, 4, limits).expect_err("request must be refused")
}

fn assert_field(error: &RequestError, field: &str) {
    assert_eq!(error.field, field, "{error}");
    assert!(!error.message.is_empty(), "{error}");
}

/// The node mask of step `t` as (name, present) pairs.
fn presence(window: &Window, t: usize) -> Vec<(String, bool)> {
    window
        .encoded
        .node_names
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let m = window.encoded.node_mask.get(&[t, n]).copied();
            (name.clone(), m == Some(1.0))
        })
        .collect()
}

#[test]
fn empty_request_is_refused() {
    let error = refused(&[]);
    assert_field(&error, "snapshots");
    assert_eq!(
        error.to_string(),
        "snapshots: at least one snapshot is required"
    );
}

#[test]
fn too_many_windows_are_refused() {
    let snapshots: Vec<_> = (0..4).map(|k| proto(k, 1)).collect();
    let limits = Limits {
        max_windows: 3,
        ..Limits::default()
    };
    let error = refused_with(&snapshots, &limits);
    assert_field(&error, "snapshots");
    assert!(error.message.contains("4 snapshots"), "{error}");
    // At the limit it is accepted.
    let ok = from_snapshots(&snapshots[1..], DETECTOR, 4, &limits).expect("3 windows");
    assert_eq!(ok.observed_steps(), 3);
}

#[test]
fn empty_graph_is_refused() {
    let mut snapshots = vec![proto(0, 1), proto(1, 1)];
    snapshots[1].graph.clear();
    assert_field(&refused(&snapshots), "snapshots[1].graph");
    snapshots[0].graph.clear();
    assert_field(&refused(&snapshots), "snapshots[0].graph");
}

#[test]
fn mixed_graphs_are_refused() {
    let mut snapshots = vec![proto(0, 1), proto(1, 1), proto(2, 1)];
    snapshots[2].graph = "other".to_owned();
    let error = refused(&snapshots);
    assert_field(&error, "snapshots[2].graph");
    assert!(error.message.contains("\"other\""), "{error}");
}

#[test]
fn zero_window_is_refused() {
    let mut snapshots = vec![proto(0, 1)];
    snapshots[0].window_ms = 0;
    assert_field(&refused(&snapshots), "snapshots[0].window_ms");
}

#[test]
fn mixed_window_lengths_are_refused() {
    let mut snapshots = vec![proto(0, 1), proto(1, 1)];
    snapshots[1].window_ms = 30_000;
    let error = refused(&snapshots);
    assert_field(&error, "snapshots[1].window_ms");
    assert!(error.message.contains("30000"), "{error}");
}

#[test]
fn repeated_or_decreasing_starts_are_refused() {
    let repeated = vec![proto(0, 1), proto(1, 1), proto(1, 2)];
    assert_field(&refused(&repeated), "snapshots[2].window_start_ms");
    let decreasing = vec![proto(1, 1), proto(0, 1)];
    assert_field(&refused(&decreasing), "snapshots[1].window_start_ms");
}

#[test]
fn misaligned_starts_are_refused() {
    let mut snapshots = vec![proto(0, 1), proto(1, 1)];
    snapshots[1].window_start_ms += 1;
    let error = refused(&snapshots);
    assert_field(&error, "snapshots[1].window_start_ms");
    assert!(error.message.contains("whole number"), "{error}");
}

#[test]
fn extreme_starts_do_not_overflow() {
    let mut snapshots = vec![proto(0, 1), proto(1, 1)];
    snapshots[0].window_start_ms = i64::MIN;
    snapshots[1].window_start_ms = i64::MAX;
    // 2^64 - 1 ms apart: not a whole number of minutes.
    let error = refused(&snapshots);
    assert_field(&error, "snapshots[1].window_start_ms");
    assert!(error.message.contains("whole number"), "{error}");
    // A last window too early for T steps before it.
    let mut early = vec![proto(0, 1)];
    early[0].window_start_ms = i64::MIN + 1;
    let error = refused(&early);
    assert_field(&error, "snapshots[0].window_start_ms");
}

#[test]
fn too_many_nodes_in_one_snapshot_are_refused() {
    let limits = Limits {
        max_nodes: 2,
        ..Limits::default()
    };
    let three = v1::GraphSnapshot::from(&domain(
        1,
        vec![service("a", 1), service("b", 1), service("c", 1)],
        Vec::new(),
    ));
    let error = refused_with(&[proto(0, 1), three], &limits);
    assert_field(&error, "snapshots[1].nodes");
    assert!(error.message.contains("3 nodes"), "{error}");
}

#[test]
fn too_many_edges_in_one_snapshot_are_refused() {
    let limits = Limits {
        max_edges: 1,
        ..Limits::default()
    };
    let two = v1::GraphSnapshot::from(&domain(
        0,
        vec![service("a", 1), service("b", 1)],
        vec![edge("a", "b", 1), edge("b", "a", 1)],
    ));
    assert_field(&refused_with(&[two], &limits), "snapshots[0].edges");
}

#[test]
fn too_many_nodes_in_the_union_are_refused() {
    let limits = Limits {
        max_nodes: 3,
        ..Limits::default()
    };
    let a = v1::GraphSnapshot::from(&domain(0, vec![service("a", 1), service("b", 1)], vec![]));
    let b = v1::GraphSnapshot::from(&domain(1, vec![service("c", 1), service("d", 1)], vec![]));
    let error = refused_with(&[a.clone(), b.clone()], &limits);
    assert_field(&error, "snapshots");
    assert!(error.message.contains("4 distinct nodes"), "{error}");
    // Edge endpoints count as nodes, as in the encoder.
    let endpoints = v1::GraphSnapshot::from(&domain(
        0,
        vec![service("a", 1)],
        vec![edge("a", "b", 1), edge("c", "d", 1)],
    ));
    assert_field(&refused_with(&[endpoints], &limits), "snapshots");
    // The union only covers the T windows fed to the model: with T = 1, `a` is ignored.
    let one = from_snapshots(&[a, b], DETECTOR, 1, &limits).expect("only the last window");
    assert_eq!(one.encoded.node_names, ["c", "d"]);
}

#[test]
fn too_many_edges_in_the_union_are_refused() {
    let limits = Limits {
        max_edges: 1,
        ..Limits::default()
    };
    let a = v1::GraphSnapshot::from(&domain(0, vec![], vec![edge("a", "b", 1)]));
    let b = v1::GraphSnapshot::from(&domain(1, vec![], vec![edge("b", "a", 1)]));
    let error = refused_with(&[a, b], &limits);
    assert_field(&error, "snapshots");
    assert!(error.message.contains("2 distinct edges"), "{error}");
}

#[test]
fn decode_errors_name_the_nested_field() {
    let mut snapshots = vec![proto(0, 1), proto(1, 1), proto(2, 1), proto(3, 1)];
    snapshots[3].nodes[1].kind = 99;
    let error = refused(&snapshots);
    assert_eq!(error.field, "snapshots[3].nodes[1].kind");
    assert_eq!(error.message, "unknown enum value 99");

    let mut unspecified = vec![proto(0, 1)];
    unspecified[0].edges[0].connection_type = 0;
    let error = refused(&unspecified);
    assert_eq!(error.field, "snapshots[0].edges[0].connection_type");
    assert_eq!(error.message, "value must be specified");

    let mut sketch = vec![proto(0, 1), proto(1, 3)];
    if let Some(s) = sketch[1].nodes[0].latency_sketch.as_mut() {
        s.count += 1;
    }
    let error = refused(&sketch);
    assert_eq!(error.field, "snapshots[1].nodes[0].latency_sketch.count");
    assert!(error.message.contains("does not match"), "{error}");
}

#[test]
fn ignored_old_snapshots_are_still_checked() {
    // Snapshot 0 is outside the T = 2 windows, but a bad snapshot makes the request bad.
    let mut snapshots = vec![proto(0, 1), proto(5, 1), proto(6, 1)];
    snapshots[0].nodes[0].kind = 0;
    let error = from_snapshots(&snapshots, DETECTOR, 2, &limits()).expect_err("bad snapshot");
    assert_eq!(error.field, "snapshots[0].nodes[0].kind");
}

#[test]
fn no_nodes_in_the_window_is_refused() {
    let empty = v1::GraphSnapshot::from(&domain(0, vec![], vec![]));
    let error = refused(&[empty]);
    assert_eq!(
        error,
        RequestError::new("snapshots", "no nodes in the window")
    );
    // Nodes only before the window do not count either.
    let later_empty = v1::GraphSnapshot::from(&domain(9, vec![], vec![]));
    let error = refused(&[proto(0, 1), later_empty]);
    assert_eq!(error.field, "snapshots");
}

#[test]
fn a_single_snapshot_is_padded_at_the_front() {
    let window = from_snapshots(&[proto(7, 5)], DETECTOR, 4, &limits()).expect("valid");
    assert_eq!(window.graph, "g");
    assert_eq!(window.window_ms, WINDOW_MS);
    assert_eq!(window.steps(), 4);
    assert_eq!(window.observed_steps(), 1);
    assert_eq!(window.last_window_start_ms(), start(7));
    assert_eq!(
        window.encoded.window_start_ms,
        [start(4), start(5), start(6), start(7)]
    );
    assert_eq!(window.encoded.step_mask.data(), [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(window.encoded.node_names, ["cart", "frontend"]);
    for t in 0..3 {
        assert!(presence(&window, t).iter().all(|(_, p)| !p));
    }
    assert!(presence(&window, 3).iter().all(|(_, p)| *p));
}

#[test]
fn gaps_become_masked_steps() {
    let snapshots = vec![proto(0, 1), proto(2, 2), proto(5, 3)];
    let window = from_snapshots(&snapshots, DETECTOR, 6, &limits()).expect("valid");
    assert_eq!(
        window.encoded.window_start_ms,
        (0..6).map(start).collect::<Vec<_>>()
    );
    assert_eq!(
        window.encoded.step_mask.data(),
        [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(window.observed_steps(), 3);
}

#[test]
fn snapshots_before_the_window_are_ignored() {
    let old = v1::GraphSnapshot::from(&domain(0, vec![service("old", 1)], vec![]));
    let snapshots = vec![old, proto(3, 1), proto(4, 1), proto(5, 1)];
    let window = from_snapshots(&snapshots, DETECTOR, 3, &limits()).expect("valid");
    assert_eq!(
        window.encoded.window_start_ms,
        [start(3), start(4), start(5)]
    );
    assert_eq!(window.observed_steps(), 3);
    assert_eq!(window.encoded.node_names, ["cart", "frontend"]);
}

#[test]
fn nodes_absent_from_the_last_window_are_kept_and_masked() {
    let first = v1::GraphSnapshot::from(&domain(
        0,
        vec![service("gone", 4), service("cart", 1)],
        vec![],
    ));
    let window = from_snapshots(&[first, proto(1, 1)], DETECTOR, 2, &limits()).expect("valid");
    assert_eq!(window.encoded.node_names, ["cart", "frontend", "gone"]);
    assert_eq!(
        presence(&window, 1),
        [
            ("cart".to_owned(), true),
            ("frontend".to_owned(), true),
            ("gone".to_owned(), false)
        ]
    );
    assert_eq!(window.encoded.node_kinds[2], NodeKind::Service);
}

#[test]
fn steps_of_zero_are_read_as_one() {
    let window =
        from_snapshots(&[proto(0, 1), proto(1, 1)], DETECTOR, 0, &limits()).expect("valid");
    assert_eq!(window.steps(), 1);
    assert_eq!(window.last_window_start_ms(), start(1));
}

fn assert_inputs_match(inputs: &ModelInputs, encoded: &EncodedSequence) {
    assert_eq!(inputs.node_features.shape(), encoded.node_features.shape());
    assert_eq!(
        inputs.node_features.iter().copied().collect::<Vec<_>>(),
        encoded.node_features.data()
    );
    assert_eq!(inputs.node_mask.shape(), encoded.node_mask.shape());
    assert_eq!(
        inputs.node_mask.iter().copied().collect::<Vec<_>>(),
        encoded.node_mask.data()
    );
    assert_eq!(inputs.edge_index.shape(), encoded.edge_index.shape());
    assert_eq!(
        inputs.edge_index.iter().copied().collect::<Vec<_>>(),
        encoded.edge_index.data()
    );
    assert_eq!(inputs.edge_weight.shape(), encoded.edge_weight.shape());
    assert_eq!(
        inputs.edge_weight.iter().copied().collect::<Vec<_>>(),
        encoded.edge_weight.data()
    );
    assert_eq!(inputs.edge_features.shape(), encoded.edge_features.shape());
    assert_eq!(
        inputs.edge_features.iter().copied().collect::<Vec<_>>(),
        encoded.edge_features.data()
    );
}

#[test]
fn detector_inputs_are_the_encoded_tensors() {
    let snapshots = vec![proto(0, 3), proto(2, 7)];
    let window = from_snapshots(&snapshots, DETECTOR, 3, &limits()).expect("valid");
    assert_inputs_match(&window.inputs, &window.encoded);
    assert!(window.inputs.window_start.is_none());
    let f = window.encoded.node_features.shape()[2];
    let fe = window.encoded.edge_features.shape()[2];
    let dims = window
        .inputs
        .validate(DETECTOR, f, fe)
        .expect("contract inputs");
    assert_eq!((dims.steps, dims.nodes, dims.edges), (3, 2, 1));
}

#[test]
fn forecaster_inputs_carry_window_starts_in_seconds() {
    let window =
        from_snapshots(&[proto(1, 3)], ModelKind::Forecaster, 2, &limits()).expect("valid");
    assert_inputs_match(&window.inputs, &window.encoded);
    let starts = window
        .inputs
        .window_start
        .as_ref()
        .expect("forecaster input");
    assert_eq!(
        starts.to_vec(),
        [start(0) / 1000, start(1) / 1000],
        "unix seconds"
    );
    let f = window.encoded.node_features.shape()[2];
    let fe = window.encoded.edge_features.shape()[2];
    window
        .inputs
        .validate(ModelKind::Forecaster, f, fe)
        .expect("contract inputs");
}

#[test]
fn from_steps_encodes_exactly_the_steps() {
    let steps = vec![
        StepFeatures::missing(start(0)),
        step(1, 2),
        StepFeatures::missing(start(2)),
        step(3, 4),
    ];
    let window = from_steps("g", WINDOW_MS, &steps, DETECTOR).expect("valid");
    assert_eq!(window.graph, "g");
    assert_eq!(window.steps(), 4);
    assert_eq!(window.observed_steps(), 2);
    assert_eq!(window.last_window_start_ms(), start(3));
    assert_inputs_match(&window.inputs, &window.encoded);

    // The same snapshots through the request path give the same tensors.
    let request = vec![proto(1, 2), proto(3, 4)];
    let from_request = from_snapshots(&request, DETECTOR, 4, &limits()).expect("valid");
    assert_eq!(from_request.encoded, window.encoded);
    assert_eq!(from_request.inputs, window.inputs);
}

#[test]
fn from_steps_problems_name_the_history() {
    let all_missing: Vec<_> = (0..3).map(|k| StepFeatures::missing(start(k))).collect();
    assert_eq!(
        from_steps("g", WINDOW_MS, &all_missing, DETECTOR).expect_err("no nodes"),
        RequestError::new("history", "no nodes in the window")
    );
    assert_eq!(
        from_steps("g", WINDOW_MS, &[], DETECTOR)
            .expect_err("no steps")
            .field,
        "history"
    );
    assert_eq!(
        from_steps("g", 0, &[step(0, 1)], DETECTOR)
            .expect_err("zero window")
            .field,
        "history"
    );
    let unordered = vec![step(1, 1), step(0, 1)];
    assert_eq!(
        from_steps("g", WINDOW_MS, &unordered, DETECTOR)
            .expect_err("not increasing")
            .field,
        "history"
    );
}

#[test]
fn model_inputs_of_a_malformed_sequence_are_refused_downstream() {
    let window = from_snapshots(&[proto(0, 1)], DETECTOR, 1, &limits()).expect("valid");
    let mut encoded = window.encoded.clone();
    encoded.node_features =
        Tensor::from_vec(&[2], vec![0.0, 0.0]).expect("a rank-1 tensor of two elements");
    let inputs = model_inputs(&encoded, DETECTOR);
    assert_eq!(inputs.node_features.shape(), [0, 0, 0]);
    assert!(inputs.validate(DETECTOR, 0, 0).is_err());
}

proptest! {
    /// Whatever the gaps, the window is T steps ending at the last snapshot, one step per
    /// window, and exactly the snapshots within the last T windows are observed.
    #[test]
    fn window_layout_follows_the_last_snapshot(
        gaps in prop::collection::vec(1i64..5, 1..16),
        steps in 1usize..10,
    ) {
        let mut k = 0i64;
        let mut windows = Vec::new();
        for gap in gaps {
            k += gap;
            windows.push(k);
        }
        let snapshots: Vec<_> = windows.iter().map(|&k| proto(k, 1 + k as u64)).collect();
        let window = from_snapshots(&snapshots, DETECTOR, steps, &limits()).expect("valid");
        let last = *windows.last().expect("at least one window");
        let first = last - steps as i64 + 1;
        prop_assert_eq!(window.steps(), steps);
        prop_assert_eq!(window.last_window_start_ms(), start(last));
        prop_assert_eq!(
            &window.encoded.window_start_ms,
            &(first..=last).map(start).collect::<Vec<_>>()
        );
        let recent: Vec<i64> = windows.iter().copied().filter(|&k| k >= first).collect();
        prop_assert_eq!(window.observed_steps(), recent.len());
        for (t, k) in (first..=last).enumerate() {
            let observed = recent.contains(&k);
            prop_assert_eq!(window.encoded.step_mask.data()[t], if observed { 1.0 } else { 0.0 });
            prop_assert!(presence(&window, t).iter().all(|(_, p)| *p == observed));
        }
    }
}
