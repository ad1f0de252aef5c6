//! Report shapes, ordering, top-k, presence and refused outputs.

use meshwatch_graph::features::{NODE_FEATURE_NAMES, TARGET_NAMES};
use meshwatch_graph::snapshot::NodeKind as DomainKind;
use meshwatch_model::{ModelKind, ModelOutputs};
use meshwatch_proto::v1;
use ndarray::{Array1, Array2, Array3, Array4};

use super::*;
use crate::limits::Limits;
use crate::window::fixtures::{WINDOW_MS, domain, edge, proto, service, start};
use crate::window::from_snapshots;

fn model() -> ModelRef {
    ModelRef {
        name: "detector".to_owned(),
        version: "sha256:0123456789ab".to_owned(),
        execution_provider: "cpu".to_owned(),
    }
}

fn feature_names() -> Vec<String> {
    NODE_FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect()
}

fn target_names() -> Vec<String> {
    TARGET_NAMES.iter().map(|s| (*s).to_owned()).collect()
}

/// Window 0 has `cart`, `frontend` and `gone`; the last (window 2) has `cart`, `frontend` and
/// the edge endpoint `postgres` (never a node of its own), T = 3 with window 1 missing.
fn window(kind: ModelKind) -> Window {
    let first = v1::GraphSnapshot::from(&domain(
        0,
        vec![service("cart", 1), service("gone", 1)],
        vec![],
    ));
    let mut last = crate::window::fixtures::small(2, 3);
    last.edges.push(edge("cart", "postgres", 2));
    let snapshots = vec![first, v1::GraphSnapshot::from(&last)];
    from_snapshots(&snapshots, kind, 3, &Limits::default()).expect("valid request")
}

const N: usize = 4;
const F: usize = NODE_FEATURE_NAMES.len();

fn detector_outputs(scores: [f32; N], contributions: Array2<f32>) -> ModelOutputs {
    ModelOutputs::Detector {
        anomaly_score: Array1::from(scores.to_vec()),
        feature_contribution: contributions,
    }
}

/// Contribution of feature `j` to node `i`: distinct magnitudes with alternating signs.
fn contributions() -> Array2<f32> {
    Array2::from_shape_fn((N, F), |(i, j)| {
        let magnitude = (i * F + j) as f32 / 10.0;
        if j % 2 == 0 { magnitude } else { -magnitude }
    })
}

#[test]
fn anomaly_report_has_one_sorted_score_per_node() {
    let w = window(ModelKind::Detector);
    assert_eq!(
        w.encoded.node_names,
        ["cart", "frontend", "gone", "postgres"]
    );
    let outputs = detector_outputs([0.1, 0.2, 0.3, 0.4], contributions());
    let report = anomaly_report(&w, &outputs, &model(), &feature_names(), 3).expect("report");
    assert_eq!(report.graph, "g");
    assert_eq!(report.window_start_ms, start(2));
    assert_eq!(report.window_ms, WINDOW_MS);
    assert_eq!(report.model, Some(model()));
    assert_eq!(report.steps, 3);
    assert_eq!(report.observed_steps, 2);
    let names: Vec<&str> = report.scores.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(names, ["cart", "frontend", "gone", "postgres"]);
    let scores: Vec<f32> = report.scores.iter().map(|s| s.score).collect();
    assert_eq!(scores, [0.1, 0.2, 0.3, 0.4]);
    let present: Vec<bool> = report.scores.iter().map(|s| s.present).collect();
    assert_eq!(present, [true, true, false, false]);
    let kinds: Vec<i32> = report.scores.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            v1::NodeKind::Service as i32,
            v1::NodeKind::Service as i32,
            v1::NodeKind::Service as i32,
            v1::NodeKind::Peer as i32,
        ]
    );
    assert_eq!(w.encoded.node_kinds[3], DomainKind::Peer);
}

#[test]
fn top_contributions_are_the_largest_by_magnitude() {
    let w = window(ModelKind::Detector);
    let outputs = detector_outputs([0.0; N], contributions());
    let report = anomaly_report(&w, &outputs, &model(), &feature_names(), 3).expect("report");
    for (i, score) in report.scores.iter().enumerate() {
        let got: Vec<(&str, f32)> = score
            .contributions
            .iter()
            .map(|c| (c.feature.as_str(), c.value))
            .collect();
        let want: Vec<(&str, f32)> = [F - 1, F - 2, F - 3]
            .iter()
            .map(|&j| (NODE_FEATURE_NAMES[j], contributions()[[i, j]]))
            .collect();
        assert_eq!(got, want, "node {i}");
    }
    assert!(report.scores[1].contributions.iter().any(|c| c.value < 0.0));
}

#[test]
fn ties_are_broken_by_feature_order() {
    let w = window(ModelKind::Detector);
    let mut values = Array2::zeros((N, F));
    values[[0, 7]] = -2.0;
    values[[0, 3]] = 2.0;
    values[[0, 20]] = 2.0;
    values[[0, 1]] = 1.0;
    let outputs = detector_outputs([0.0; N], values);
    let report = anomaly_report(&w, &outputs, &model(), &feature_names(), 4).expect("report");
    let got: Vec<(&str, f32)> = report.scores[0]
        .contributions
        .iter()
        .map(|c| (c.feature.as_str(), c.value))
        .collect();
    assert_eq!(
        got,
        [
            (NODE_FEATURE_NAMES[3], 2.0),
            (NODE_FEATURE_NAMES[7], -2.0),
            (NODE_FEATURE_NAMES[20], 2.0),
            (NODE_FEATURE_NAMES[1], 1.0),
        ]
    );
    // All zero: the first features in order.
    let zero: Vec<&str> = report.scores[1]
        .contributions
        .iter()
        .map(|c| c.feature.as_str())
        .collect();
    assert_eq!(zero, NODE_FEATURE_NAMES[..4]);
}

#[test]
fn top_k_is_capped_at_the_features_and_may_be_zero() {
    let w = window(ModelKind::Detector);
    let outputs = detector_outputs([0.0; N], contributions());
    let all = anomaly_report(&w, &outputs, &model(), &feature_names(), 1000).expect("report");
    assert!(all.scores.iter().all(|s| s.contributions.len() == F));
    let none = anomaly_report(&w, &outputs, &model(), &feature_names(), 0).expect("report");
    assert!(none.scores.iter().all(|s| s.contributions.is_empty()));
}

#[test]
fn non_finite_scores_and_contributions_are_refused() {
    let w = window(ModelKind::Detector);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let outputs = detector_outputs([0.0, bad, 0.0, 0.0], contributions());
        let error = anomaly_report(&w, &outputs, &model(), &feature_names(), 3)
            .expect_err("non-finite score");
        assert_eq!(error.output, "anomaly_score");
        assert!(error.message.contains("\"frontend\""), "{error}");

        let mut values = contributions();
        values[[2, 5]] = bad;
        let outputs = detector_outputs([0.0; N], values);
        let error = anomaly_report(&w, &outputs, &model(), &feature_names(), 3)
            .expect_err("non-finite contribution");
        assert_eq!(error.output, "feature_contribution");
        assert!(error.message.contains("\"gone\", feature 5"), "{error}");
    }
}

#[test]
fn detector_shapes_must_match_the_window() {
    let w = window(ModelKind::Detector);
    let short = ModelOutputs::Detector {
        anomaly_score: Array1::zeros(N - 1),
        feature_contribution: Array2::zeros((N - 1, F)),
    };
    let error = anomaly_report(&w, &short, &model(), &feature_names(), 3).expect_err("N - 1");
    assert_eq!(error.output, "anomaly_score");
    assert_eq!(
        error.to_string(),
        "model output anomaly_score: shape [3], expected [4]"
    );

    let narrow = ModelOutputs::Detector {
        anomaly_score: Array1::zeros(N),
        feature_contribution: Array2::zeros((N, F - 1)),
    };
    let error = anomaly_report(&w, &narrow, &model(), &feature_names(), 3).expect_err("F - 1");
    assert_eq!(error.output, "feature_contribution");

    let outputs = detector_outputs([0.0; N], contributions());
    let names = &feature_names()[..F - 1];
    let error = anomaly_report(&w, &outputs, &model(), names, 3).expect_err("names");
    assert_eq!(error.output, "feature_contribution");
    assert!(error.message.contains("feature names"), "{error}");
}

#[test]
fn wrong_output_variants_are_refused() {
    let w = window(ModelKind::Detector);
    let forecaster = forecaster_outputs(2, |_, _, _| 0.0);
    let error = anomaly_report(&w, &forecaster, &model(), &feature_names(), 3)
        .expect_err("forecaster outputs");
    assert_eq!(error.output, "anomaly_score");
    let detector = detector_outputs([0.0; N], contributions());
    let error =
        forecast_report(&w, &detector, &model(), &target_names()).expect_err("detector outputs");
    assert_eq!(error.output, "forecast");
}

const M: usize = TARGET_NAMES.len();

/// Forecasts `value(h, n, m)` with bounds value ∓ 1.
fn forecaster_outputs(h: usize, value: impl Fn(usize, usize, usize) -> f32) -> ModelOutputs {
    let forecast = Array3::from_shape_fn((h, N, M), |(a, b, c)| value(a, b, c));
    let interval = Array4::from_shape_fn((h, N, M, 2), |(a, b, c, d)| {
        value(a, b, c) + if d == 0 { -1.0 } else { 1.0 }
    });
    ModelOutputs::Forecaster { forecast, interval }
}

fn encoded_value(h: usize, n: usize, m: usize) -> f32 {
    (h * 100 + n * 10 + m) as f32
}

#[test]
fn forecast_report_has_h_points_per_node_and_metric() {
    let w = window(ModelKind::Forecaster);
    let outputs = forecaster_outputs(3, encoded_value);
    let report = forecast_report(&w, &outputs, &model(), &target_names()).expect("report");
    assert_eq!(report.graph, "g");
    assert_eq!(report.window_start_ms, start(2));
    assert_eq!(report.window_ms, WINDOW_MS);
    assert_eq!(report.model, Some(model()));
    assert_eq!(report.steps, 3);
    assert_eq!(report.observed_steps, 2);
    assert_eq!(report.horizon, 3);
    let names: Vec<&str> = report.forecasts.iter().map(|f| f.node.as_str()).collect();
    assert_eq!(names, ["cart", "frontend", "gone", "postgres"]);
    let present: Vec<bool> = report.forecasts.iter().map(|f| f.present).collect();
    assert_eq!(present, [true, true, false, false]);
    assert_eq!(report.forecasts[3].kind, v1::NodeKind::Peer as i32);
    for (n, node) in report.forecasts.iter().enumerate() {
        let metrics: Vec<&str> = node.metrics.iter().map(|m| m.metric.as_str()).collect();
        assert_eq!(metrics, TARGET_NAMES);
        for (m, metric) in node.metrics.iter().enumerate() {
            let want: Vec<ForecastPoint> = (0..3)
                .map(|h| ForecastPoint {
                    horizon: h as u32 + 1,
                    target_window_start_ms: start(3 + h as i64),
                    value: encoded_value(h, n, m),
                    lower: encoded_value(h, n, m) - 1.0,
                    upper: encoded_value(h, n, m) + 1.0,
                })
                .collect();
            assert_eq!(metric.points, want, "node {n}, metric {m}");
        }
    }
}

#[test]
fn forecast_shapes_must_match_the_window() {
    let w = window(ModelKind::Forecaster);
    let empty = ModelOutputs::Forecaster {
        forecast: Array3::zeros((0, N, M)),
        interval: Array4::zeros((0, N, M, 2)),
    };
    let error = forecast_report(&w, &empty, &model(), &target_names()).expect_err("H = 0");
    assert_eq!(error.output, "forecast");

    let wrong_n = ModelOutputs::Forecaster {
        forecast: Array3::zeros((2, N + 1, M)),
        interval: Array4::zeros((2, N + 1, M, 2)),
    };
    let error = forecast_report(&w, &wrong_n, &model(), &target_names()).expect_err("N + 1");
    assert_eq!(error.output, "forecast");

    let outputs = forecaster_outputs(2, encoded_value);
    let error = forecast_report(&w, &outputs, &model(), &target_names()[..M - 1])
        .expect_err("M - 1 targets");
    assert_eq!(error.output, "forecast");

    let wrong_interval = ModelOutputs::Forecaster {
        forecast: Array3::zeros((2, N, M)),
        interval: Array4::zeros((2, N, M, 3)),
    };
    let error =
        forecast_report(&w, &wrong_interval, &model(), &target_names()).expect_err("bounds");
    assert_eq!(error.output, "forecast_interval");
    assert_eq!(
        error.message,
        format!("shape [2, {N}, {M}, 3], expected [2, {N}, {M}, 2]")
    );
}

#[test]
fn non_finite_forecasts_are_refused() {
    let w = window(ModelKind::Forecaster);
    let nan_value = forecaster_outputs(2, |h, n, m| {
        if (h, n, m) == (1, 2, 3) {
            f32::NAN
        } else {
            0.0
        }
    });
    let error = forecast_report(&w, &nan_value, &model(), &target_names()).expect_err("NaN");
    assert_eq!(error.output, "forecast");
    assert!(
        error
            .message
            .contains(&format!("\"gone\", {}, horizon 2", TARGET_NAMES[3])),
        "{error}"
    );

    let forecast = Array3::zeros((2, N, M));
    let mut interval = Array4::zeros((2, N, M, 2));
    interval[[0, 0, 0, 1]] = f32::INFINITY;
    let outputs = ModelOutputs::Forecaster { forecast, interval };
    let error = forecast_report(&w, &outputs, &model(), &target_names()).expect_err("inf");
    assert_eq!(error.output, "forecast_interval");
}

#[test]
fn forecast_starts_that_overflow_are_refused() {
    let mut snapshot = proto(0, 1);
    snapshot.window_start_ms = i64::MAX - 1;
    let w = from_snapshots(&[snapshot], ModelKind::Forecaster, 1, &Limits::default())
        .expect("valid request");
    let outputs = ModelOutputs::Forecaster {
        forecast: Array3::zeros((1, 2, M)),
        interval: Array4::zeros((1, 2, M, 2)),
    };
    let error = forecast_report(&w, &outputs, &model(), &target_names()).expect_err("overflow");
    assert_eq!(error.output, "forecast");
}
