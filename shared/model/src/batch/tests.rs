use ndarray::{Array1, Array2, Array3, Array4, array};

use super::*;

/// A graph of `t` windows, `n` nodes and `e` edges whose values encode (`tag`, position), so
/// that every element of a union says where it came from.
fn graph(tag: f32, t: usize, n: usize, e: usize, window_start: Option<i64>) -> ModelInputs {
    ModelInputs {
        node_features: Array3::from_shape_fn((t, n, 2), |(a, b, c)| {
            tag + (a * 100 + b * 10 + c) as f32 / 1000.0
        }),
        node_mask: Array2::from_shape_fn((t, n), |(a, b)| tag + (a * 10 + b) as f32 / 100.0),
        edge_index: Array2::from_shape_fn((2, e), |(row, edge)| ((edge + row) % n) as i64),
        edge_weight: Array2::from_shape_fn((t, e), |(a, b)| tag + (a * 10 + b) as f32 / 100.0),
        edge_features: Array3::from_shape_fn((t, e, 3), |(a, b, c)| {
            tag + (a * 100 + b * 10 + c) as f32 / 1000.0
        }),
        window_start: window_start.map(|start| Array1::from_shape_fn(t, |i| start + 10 * i as i64)),
    }
}

#[test]
fn nothing_to_join_is_an_error() {
    assert_eq!(join(&[]), Err(BatchError::Empty));
}

#[test]
fn one_part_joins_to_itself() -> Result<(), BatchError> {
    let a = graph(1.0, 4, 3, 2, None);
    let joined = join(&[&a])?;
    assert_eq!(joined.inputs, a);
    assert_eq!((joined.parts(), joined.nodes(), joined.edges()), (1, 3, 2));
    Ok(())
}

#[test]
fn parts_are_concatenated_and_edges_shifted() -> Result<(), BatchError> {
    let a = graph(1.0, 2, 3, 2, None);
    let b = graph(2.0, 2, 1, 0, None);
    let c = graph(3.0, 2, 2, 3, None);
    let joined = join(&[&a, &b, &c])?;
    assert_eq!(joined.parts(), 3);
    assert_eq!(joined.nodes(), 6);
    assert_eq!(joined.edges(), 5);
    assert_eq!(joined.node_ranges(), &[0..3, 3..4, 4..6]);
    assert_eq!(joined.edge_ranges(), &[0..2, 2..2, 2..5]);

    let inputs = &joined.inputs;
    assert_eq!(inputs.node_features.shape(), &[2, 6, 2]);
    assert_eq!(inputs.node_mask.shape(), &[2, 6]);
    assert_eq!(inputs.edge_index.shape(), &[2, 5]);
    assert_eq!(inputs.edge_weight.shape(), &[2, 5]);
    assert_eq!(inputs.edge_features.shape(), &[2, 5, 3]);
    assert_eq!(inputs.window_start, None);
    // c's node 1 at window 1, feature 0 is node 5 of the union
    assert_eq!(inputs.node_features[[1, 5, 0]], c.node_features[[1, 1, 0]]);
    assert_eq!(inputs.node_mask[[0, 3]], b.node_mask[[0, 0]]);
    assert_eq!(inputs.edge_weight[[1, 4]], c.edge_weight[[1, 2]]);
    assert_eq!(inputs.edge_features[[0, 1, 2]], a.edge_features[[0, 1, 2]]);
    // a's edges unchanged, c's shifted by the 4 nodes of a and b
    assert_eq!(
        inputs.edge_index,
        array![[0_i64, 1, 4, 5, 4], [1, 2, 5, 4, 5]]
    );
    assert_eq!(
        inputs
            .validate(crate::ModelKind::Detector, 2, 3)
            .map(|d| d.nodes),
        Ok(6)
    );
    Ok(())
}

#[test]
fn equal_window_starts_join_and_keep_them() -> Result<(), BatchError> {
    let a = graph(1.0, 3, 2, 1, Some(1_700_000_000));
    let b = graph(2.0, 3, 4, 2, Some(1_700_000_000));
    assert_eq!(batch_key(&a), batch_key(&b));
    let joined = join(&[&a, &b])?;
    assert_eq!(joined.inputs.window_start, a.window_start);
    Ok(())
}

#[test]
fn different_windows_do_not_join() {
    let a = graph(1.0, 3, 2, 1, Some(1_700_000_000));
    let later = graph(2.0, 3, 2, 1, Some(1_700_000_010));
    assert_ne!(batch_key(&a), batch_key(&later));
    assert!(matches!(
        join(&[&a, &later]),
        Err(BatchError::Incompatible { part: 1, reason }) if reason.contains("window_start")
    ));

    let none = graph(2.0, 3, 2, 1, None);
    assert_ne!(batch_key(&a), batch_key(&none));
    assert!(matches!(
        join(&[&a, &none]),
        Err(BatchError::Incompatible { part: 1, .. })
    ));

    let shorter = graph(2.0, 2, 2, 1, None);
    assert_ne!(batch_key(&none), batch_key(&shorter));
    assert!(matches!(
        join(&[&none, &none, &shorter]),
        Err(BatchError::Incompatible { part: 2, reason }) if reason.contains("T = 2")
    ));
}

#[test]
fn other_feature_counts_or_inconsistent_parts_do_not_join() {
    let a = graph(1.0, 2, 2, 1, None);
    let mut wide = graph(2.0, 2, 2, 1, None);
    wide.node_features = Array3::zeros((2, 2, 5));
    assert!(matches!(
        join(&[&a, &wide]),
        Err(BatchError::Incompatible { part: 1, reason }) if reason.contains("node_features")
    ));

    let mut edge_wide = graph(2.0, 2, 2, 1, None);
    edge_wide.edge_features = Array3::zeros((2, 1, 4));
    assert!(matches!(
        join(&[&a, &edge_wide]),
        Err(BatchError::Incompatible { part: 1, reason }) if reason.contains("edge_features")
    ));

    let mut bad_mask = graph(2.0, 2, 2, 1, None);
    bad_mask.node_mask = Array2::zeros((2, 3));
    assert!(matches!(
        join(&[&a, &bad_mask]),
        Err(BatchError::Incompatible { part: 1, reason }) if reason.contains("node_mask")
    ));

    let mut bad_weight = graph(2.0, 2, 2, 1, None);
    bad_weight.edge_weight = Array2::zeros((2, 2));
    assert!(matches!(
        join(&[&bad_weight, &a]),
        Err(BatchError::Incompatible { part: 0, reason }) if reason.contains("edge_weight")
    ));
}

#[test]
fn detector_outputs_split_at_the_node_offsets() -> Result<(), BatchError> {
    let a = graph(1.0, 2, 2, 1, None);
    let b = graph(2.0, 2, 3, 2, None);
    let joined = join(&[&a, &b])?;
    let outputs = ModelOutputs::Detector {
        anomaly_score: array![0.0_f32, 1.0, 2.0, 3.0, 4.0],
        feature_contribution: Array2::from_shape_fn((5, 2), |(n, f)| (n * 10 + f) as f32),
    };
    let parts = joined.split(outputs)?;
    assert_eq!(
        parts,
        vec![
            ModelOutputs::Detector {
                anomaly_score: array![0.0, 1.0],
                feature_contribution: array![[0.0, 1.0], [10.0, 11.0]],
            },
            ModelOutputs::Detector {
                anomaly_score: array![2.0, 3.0, 4.0],
                feature_contribution: array![[20.0, 21.0], [30.0, 31.0], [40.0, 41.0]],
            },
        ]
    );
    Ok(())
}

#[test]
fn forecaster_outputs_split_along_the_node_axis() -> Result<(), BatchError> {
    let a = graph(1.0, 2, 1, 0, Some(0));
    let b = graph(2.0, 2, 2, 1, Some(0));
    let joined = join(&[&a, &b])?;
    let (h, m) = (3, 4);
    let value = |hh: usize, n: usize, mm: usize| (hh * 100 + n * 10 + mm) as f32;
    let outputs = ModelOutputs::Forecaster {
        forecast: Array3::from_shape_fn((h, 3, m), |(hh, n, mm)| value(hh, n, mm)),
        interval: Array4::from_shape_fn((h, 3, m, 2), |(hh, n, mm, side)| {
            value(hh, n, mm) + side as f32 / 2.0
        }),
    };
    let parts = joined.split(outputs)?;
    assert_eq!(parts.len(), 2);
    for (part, range) in parts.iter().zip(joined.node_ranges()) {
        let ModelOutputs::Forecaster { forecast, interval } = part else {
            unreachable!("split keeps the kind");
        };
        assert_eq!(forecast.shape(), &[h, range.len(), m]);
        assert_eq!(interval.shape(), &[h, range.len(), m, 2]);
        for ((hh, n, mm), &v) in forecast.indexed_iter() {
            assert_eq!(v, value(hh, range.start + n, mm));
            assert_eq!(interval[[hh, n, mm, 1]], v + 0.5);
        }
    }
    Ok(())
}

#[test]
fn outputs_that_do_not_cover_the_nodes_are_an_error() -> Result<(), BatchError> {
    let joined = join(&[&graph(1.0, 2, 2, 1, None), &graph(2.0, 2, 2, 1, None)])?;
    let short = ModelOutputs::Detector {
        anomaly_score: Array1::zeros(3),
        feature_contribution: Array2::zeros((4, 2)),
    };
    assert!(matches!(
        joined.split(short),
        Err(BatchError::Output {
            output: "anomaly_score",
            ..
        })
    ));
    let forecast = ModelOutputs::Forecaster {
        forecast: Array3::zeros((4, 3, 4)),
        interval: Array4::zeros((3, 4, 4, 2)),
    };
    assert!(matches!(
        joined.split(forecast),
        Err(BatchError::Output {
            output: "forecast",
            ..
        })
    ));
    Ok(())
}
