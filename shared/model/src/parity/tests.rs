use ndarray::ArrayD;

use super::*;

#[test]
fn the_tolerance_rule() {
    let (atol, rtol) = (1e-4, 1e-3);
    assert!(within_tolerance(1.0, 1.0, atol, rtol));
    // atol + rtol * |want| = 1e-4 + 1e-3 * 100 = 0.1001
    assert!(within_tolerance(100.1, 100.0, atol, rtol));
    assert!(!within_tolerance(100.2, 100.0, atol, rtol));
    assert!(within_tolerance(-100.1, -100.0, atol, rtol));
    // the relative part is of the expected value, not of the result
    assert!(!within_tolerance(0.0, 0.5, 0.0, 1.0 - 1e-9));
    assert!(within_tolerance(0.00005, 0.0, atol, rtol));
    assert!(!within_tolerance(0.0002, 0.0, atol, rtol));
    // NaN never passes, not even against NaN; equal infinities do
    assert!(!within_tolerance(f32::NAN, f32::NAN, atol, rtol));
    assert!(!within_tolerance(f32::NAN, 0.0, atol, rtol));
    assert!(!within_tolerance(0.0, f32::NAN, atol, rtol));
    assert!(within_tolerance(f32::INFINITY, f32::INFINITY, atol, rtol));
    assert!(!within_tolerance(
        f32::INFINITY,
        f32::NEG_INFINITY,
        atol,
        rtol
    ));
    assert!(!within_tolerance(f32::MAX, f32::INFINITY, atol, rtol));
}

fn array(shape: &[usize], data: Vec<f32>) -> ArrayD<f32> {
    ArrayD::from_shape_vec(shape, data).expect("shape fits the data")
}

#[test]
fn compare_counts_failures_and_finds_the_worst() {
    let want = array(&[2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let got = [0.0, 1.00005, 2.5, 3.0, 4.0, 5.1];
    let report = compare("out", got.into_iter(), &want, 1e-4, 1e-3);
    assert_eq!(report.elements, 6);
    assert_eq!(report.failed, 2);
    assert!((report.max_abs_error - 0.5).abs() < 1e-6);
    assert_eq!(report.worst_index, vec![0, 2]);
    assert_eq!((report.worst_got, report.worst_want), (2.5, 2.0));
}

#[test]
fn a_nan_output_fails_and_is_the_worst() {
    let want = array(&[3], vec![1.0, 2.0, 3.0]);
    let report = compare("out", [1.0, f32::NAN, 9.0].into_iter(), &want, 1e-4, 1e-3);
    assert_eq!(report.failed, 2);
    assert!(report.max_abs_error.is_nan());
    assert_eq!(report.worst_index, vec![1]);
}

#[test]
fn a_passing_output_reports_its_closest_call() {
    let want = array(&[2], vec![1.0, 1000.0]);
    let report = compare("out", [1.0, 1000.5].into_iter(), &want, 1e-4, 1e-3);
    assert_eq!(report.failed, 0);
    assert_eq!(report.worst_index, vec![1]);
    assert!((report.max_abs_error - 0.5).abs() < 1e-6);
}

fn report(failed: usize) -> ParityReport {
    let output = |name: &str, failed: usize| OutputReport {
        name: name.to_owned(),
        elements: 10,
        failed,
        max_abs_error: if failed > 0 { 0.5 } else { 1e-6 },
        worst_index: vec![3],
        worst_got: 1.5,
        worst_want: 1.0,
    };
    ParityReport {
        file: PathBuf::from("parity.json"),
        atol: 1e-4,
        rtol: 1e-3,
        cases: vec![
            CaseReport {
                name: "random-0".to_owned(),
                outputs: vec![
                    output("anomaly_score", 0),
                    output("feature_contribution", failed),
                ],
            },
            CaseReport {
                name: "random-1".to_owned(),
                outputs: vec![output("anomaly_score", 0)],
            },
        ],
    }
}

#[test]
fn the_report_checks_every_case() {
    assert!(report(0).check().is_ok());
    assert_eq!(report(0).failed(), 0);
    let failing = report(2);
    assert_eq!(failing.failed(), 2);
    assert!((failing.max_abs_error() - 0.5).abs() < 1e-9);
    let Err(ModelError::ParityMismatch {
        failed, details, ..
    }) = failing.check()
    else {
        unreachable!("a failing report is a mismatch");
    };
    assert_eq!(failed, 2);
    assert_eq!(
        details,
        [
            "case \"random-0\" output feature_contribution: 2 of 10 beyond atol 0.0001 + rtol 0.001; worst at [3]: got 1.5, want 1"
        ]
    );
}

fn tensor(dtype: &str, shape: &[usize], data: &str) -> TensorData {
    serde_json::from_str(&format!(
        r#"{{"dtype": "{dtype}", "shape": {shape:?}, "data": {data}}}"#
    ))
    .expect("valid tensor json")
}

#[test]
fn parity_tensors_are_checked() {
    let ok = tensor("float32", &[2, 2], "[1, 2.5, -3, 4e-3]");
    let array = to_array::<f32>(&ok, DType::F32).expect("fits");
    assert_eq!(array.shape(), [2, 2]);
    assert_eq!(array[[0, 1]], 2.5);
    let ints = tensor("int64", &[2, 1], "[0, 9007199254740993]");
    assert_eq!(
        to_array::<i64>(&ints, DType::I64).ok().map(|a| a[[1, 0]]),
        Some(9_007_199_254_740_993)
    );

    assert!(to_array::<f32>(&tensor("float32", &[3], "[1, 2]"), DType::F32).is_err());
    assert!(to_array::<f32>(&ints, DType::F32).is_err());
    assert!(to_array::<i64>(&tensor("int64", &[1], "[1.5]"), DType::I64).is_err());
}

#[test]
fn case_inputs_need_every_contract_input() {
    let case: ParityCase = serde_json::from_str(
        r#"{"name": "c", "outputs": {}, "inputs": {
            "node_features": {"dtype": "float32", "shape": [1, 1, 2], "data": [0, 0]},
            "node_mask": {"dtype": "float32", "shape": [1, 1], "data": [1]},
            "edge_index": {"dtype": "int64", "shape": [2, 0], "data": []},
            "edge_weight": {"dtype": "float32", "shape": [1, 0], "data": []},
            "edge_features": {"dtype": "float32", "shape": [1, 0, 3], "data": []}
        }}"#,
    )
    .expect("valid case json");
    let inputs = case_inputs(&case).expect("complete");
    assert_eq!(inputs.node_features.shape(), [1, 1, 2]);
    assert_eq!(inputs.edge_index.shape(), [2, 0]);
    assert!(inputs.window_start.is_none());

    let mut missing = case.clone();
    missing.inputs.remove("node_mask");
    assert_eq!(
        case_inputs(&missing).err().as_deref(),
        Some("no input node_mask")
    );

    let mut extra = case.clone();
    extra
        .inputs
        .insert("bogus".to_owned(), tensor("float32", &[1], "[1]"));
    assert_eq!(
        case_inputs(&extra).err().as_deref(),
        Some("input bogus is not a contract input")
    );

    let mut wrong_rank = case;
    wrong_rank
        .inputs
        .insert("node_mask".to_owned(), tensor("float32", &[1], "[1]"));
    assert_eq!(
        case_inputs(&wrong_rank).err().as_deref(),
        Some("input node_mask: rank 1, expected 2")
    );
}
