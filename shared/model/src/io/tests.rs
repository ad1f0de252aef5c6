use ndarray::{Array1, Array2, Array3};

use super::*;

const F: usize = 29;
const FE: usize = 12;

fn inputs(kind: ModelKind, t: usize, n: usize, e: usize) -> ModelInputs {
    ModelInputs {
        node_features: Array3::zeros((t, n, F)),
        node_mask: Array2::ones((t, n)),
        edge_index: Array2::from_shape_fn((2, e), |(row, edge)| ((edge + row) % n.max(1)) as i64),
        edge_weight: Array2::ones((t, e)),
        edge_features: Array3::zeros((t, e, FE)),
        window_start: (kind == ModelKind::Forecaster).then(|| Array1::zeros(t)),
    }
}

fn validate(inputs: &ModelInputs, kind: ModelKind) -> Result<InputDims, ShapeError> {
    inputs.validate(kind, F, FE)
}

#[test]
fn consistent_inputs_give_their_dims() {
    for kind in [ModelKind::Detector, ModelKind::Forecaster] {
        assert_eq!(
            validate(&inputs(kind, 12, 7, 9), kind),
            Ok(InputDims {
                steps: 12,
                nodes: 7,
                edges: 9
            })
        );
        assert_eq!(
            validate(&inputs(kind, 1, 1, 0), kind),
            Ok(InputDims {
                steps: 1,
                nodes: 1,
                edges: 0
            })
        );
    }
}

#[test]
fn each_input_must_agree_on_t_n_and_e() {
    let kind = ModelKind::Forecaster;
    type Edit = fn(&mut ModelInputs);
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            |i| i.node_features = Array3::zeros((12, 7, 28)),
            "node_features",
            "[T=12, N=7, 29]",
        ),
        (
            |i| i.node_mask = Array2::zeros((11, 7)),
            "node_mask",
            "[T=12, N=7]",
        ),
        (
            |i| i.node_mask = Array2::zeros((12, 6)),
            "node_mask",
            "[T=12, N=7]",
        ),
        (
            |i| i.edge_index = Array2::zeros((3, 9)),
            "edge_index",
            "[2, E=9]",
        ),
        (
            |i| i.edge_weight = Array2::zeros((12, 8)),
            "edge_weight",
            "[T=12, E=9]",
        ),
        (
            |i| i.edge_features = Array3::zeros((12, 9, 11)),
            "edge_features",
            "[T=12, E=9, 12]",
        ),
        (
            |i| i.edge_features = Array3::zeros((13, 9, 12)),
            "edge_features",
            "[T=12, E=9, 12]",
        ),
        (
            |i| i.window_start = Some(Array1::zeros(11)),
            "window_start",
            "[T=12]",
        ),
    ];
    for (edit, input, expected) in cases {
        let mut bad = inputs(kind, 12, 7, 9);
        edit(&mut bad);
        let error = validate(&bad, kind);
        assert!(
            matches!(&error, Err(ShapeError::Input { input: i, expected: e, .. }) if *i == input && e == expected),
            "{input}: {error:?}"
        );
    }
}

#[test]
fn the_message_names_the_input_and_both_shapes() {
    let mut bad = inputs(ModelKind::Detector, 12, 7, 9);
    bad.edge_weight = Array2::zeros((12, 8));
    let message = validate(&bad, ModelKind::Detector)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some("input edge_weight: shape [12, 8], expected [T=12, E=9]")
    );
}

#[test]
fn no_windows_or_no_nodes_is_refused() {
    let kind = ModelKind::Detector;
    assert_eq!(
        validate(&inputs(kind, 0, 3, 0), kind),
        Err(ShapeError::Empty { axis: "T" })
    );
    assert_eq!(
        validate(&inputs(kind, 4, 0, 0), kind),
        Err(ShapeError::Empty { axis: "N" })
    );
}

#[test]
fn edge_endpoints_must_be_nodes() {
    let kind = ModelKind::Detector;
    for (value, row, edge) in [(7, 0, 3), (-1, 1, 8), (i64::MAX, 1, 0)] {
        let mut bad = inputs(kind, 2, 7, 9);
        bad.edge_index[[row, edge]] = value;
        assert_eq!(
            validate(&bad, kind),
            Err(ShapeError::EdgeIndex {
                row,
                edge,
                value,
                nodes: 7
            })
        );
    }
}

#[test]
fn window_start_is_for_the_forecaster_only() {
    let mut forecaster = inputs(ModelKind::Forecaster, 3, 2, 1);
    forecaster.window_start = None;
    assert!(matches!(
        validate(&forecaster, ModelKind::Forecaster),
        Err(ShapeError::MissingInput {
            input: "window_start",
            kind: "forecaster"
        })
    ));
    let mut detector = inputs(ModelKind::Detector, 3, 2, 1);
    detector.window_start = Some(Array1::zeros(3));
    assert!(matches!(
        validate(&detector, ModelKind::Detector),
        Err(ShapeError::UnexpectedInput {
            input: "window_start",
            kind: "detector"
        })
    ));
}

#[test]
fn outputs_are_found_by_contract_name() {
    let outputs = ModelOutputs::Detector {
        anomaly_score: Array1::from_vec(vec![0.5, 0.25]),
        feature_contribution: Array2::zeros((2, F)),
    };
    assert_eq!(outputs.names(), [ANOMALY_SCORE, FEATURE_CONTRIBUTION]);
    assert_eq!(
        outputs.get(ANOMALY_SCORE).map(|a| a.shape().to_vec()),
        Some(vec![2])
    );
    assert_eq!(
        outputs
            .get(FEATURE_CONTRIBUTION)
            .map(|a| a.shape().to_vec()),
        Some(vec![2, F])
    );
    assert!(outputs.get(FORECAST).is_none());
}
