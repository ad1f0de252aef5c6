use serde_json::{Value, json};

use super::*;

fn specs(kind: ModelKind, horizon: Option<usize>) -> (Value, Value) {
    let schema = FeatureSchema::current();
    let to_json = |specs: Vec<TensorSpec>| serde_json::to_value(specs).unwrap_or(Value::Null);
    (
        to_json(expected_inputs(kind, &schema)),
        to_json(expected_outputs(kind, &schema, horizon)),
    )
}

/// A manifest as the export writes it, with fields this crate does not read.
fn manifest_json(kind: ModelKind) -> Value {
    let schema = FeatureSchema::current();
    let horizon = (kind == ModelKind::Forecaster).then_some(5);
    let (inputs, outputs) = specs(kind, horizon);
    json!({
        "format": "meshwatch.model",
        "format_version": 1,
        "name": kind.as_str(),
        "kind": kind.as_str(),
        "opset": 17,
        "feature_schema_version": schema.version,
        "node_features": schema.node_features,
        "edge_features": schema.edge_features,
        "targets": schema.targets,
        "steps": 12,
        "horizon": horizon,
        "window_ms": 10000,
        "inputs": inputs,
        "outputs": outputs,
        "sha256": "ab".repeat(32),
        "parity": {"file": "parity.json", "atol": 1e-4, "rtol": 1e-3},
        "variants": [
            {"name": "int8", "file": "model.int8.onnx", "sha256": "cd".repeat(32), "shipped": true, "size_bytes": 1234,
             "parity": {"file": "parity.int8.json", "atol": 1e-5, "rtol": 1e-4}},
            {"name": "fp16", "file": null, "sha256": "ef".repeat(32), "shipped": false, "parity": null, "rule": {"rank": 0.9}}
        ],
        "training": {"epochs": 30, "dataset": {"sha256": "x"}},
        "eval": {"auc": 0.9},
        "code_revision": "abc123",
        "created": "2026-11-27T12:00:00Z"
    })
}

fn parse(value: &Value) -> Manifest {
    Manifest::from_json(&value.to_string(), "manifest.json").expect("the test manifest parses")
}

fn problems(value: &Value, kind: ModelKind) -> Vec<String> {
    parse(value).problems(kind, &FeatureSchema::current())
}

#[test]
fn a_good_manifest_passes_with_unknown_fields() {
    for kind in [ModelKind::Detector, ModelKind::Forecaster] {
        let manifest = parse(&manifest_json(kind));
        assert_eq!(manifest.model_kind().ok(), Some(kind));
        assert_eq!(manifest.steps, 12);
        assert_eq!(manifest.variants.len(), 2);
        assert_eq!(manifest.variants[1].file, None);
        assert_eq!(manifest.variants[1].parity, None);
        assert_eq!(
            manifest.variants[0]
                .parity
                .as_ref()
                .map(|p| p.file.as_str()),
            Some("parity.int8.json")
        );
        assert!(manifest.check(kind, &FeatureSchema::current()).is_ok());
        assert_eq!(manifest.path, PathBuf::from("manifest.json"));
    }
}

#[test]
fn the_example_of_the_docs_parses() {
    let text = r#"{"format": "meshwatch.model", "format_version": 1, "name": "detector",
        "kind": "detector", "opset": 17, "feature_schema_version": 1,
        "node_features": [], "edge_features": [], "targets": [], "steps": 12, "window_ms": 10000,
        "inputs": [{"name": "edge_index", "dtype": "int64", "shape": [2, "E"]}],
        "outputs": [], "sha256": "00", "parity": {"file": "parity.json", "atol": 0.0001, "rtol": 0.001}}"#;
    let manifest = Manifest::from_json(text, "m.json").expect("parses");
    assert_eq!(manifest.horizon, None);
    assert!(manifest.variants.is_empty());
    assert_eq!(
        manifest.inputs[0].shape,
        vec![Dim::Fixed(2), Dim::Dynamic("E".to_owned())]
    );
    assert_eq!(manifest.inputs[0].dtype, DType::I64);
}

#[test]
fn dims_are_integers_or_axis_names() {
    let dims: Vec<Dim> = serde_json::from_str(r#"[12, "N", 0, "T"]"#).expect("parses");
    assert_eq!(
        dims,
        vec![
            Dim::Fixed(12),
            Dim::Dynamic("N".to_owned()),
            Dim::Fixed(0),
            Dim::Dynamic("T".to_owned())
        ]
    );
    assert_eq!(shape_string(&dims), "[12, N, 0, T]");
    for bad in ["[-1]", "[1.5]", "[null]", "[[1]]"] {
        assert!(serde_json::from_str::<Vec<Dim>>(bad).is_err(), "{bad}");
    }
    assert_eq!(
        serde_json::to_string(&dims).ok().as_deref(),
        Some(r#"[12,"N",0,"T"]"#)
    );
}

#[test]
fn unknown_dtypes_parse_and_are_reported() {
    let dtype: DType = serde_json::from_str(r#""float16""#).expect("parses");
    assert_eq!(dtype, DType::Other("float16".to_owned()));
    let mut value = manifest_json(ModelKind::Detector);
    value["inputs"][0]["dtype"] = "float16".into();
    assert_eq!(
        problems(&value, ModelKind::Detector),
        vec!["input \"node_features\": dtype float16, expected float32"]
    );
}

#[test]
fn a_missing_required_field_is_a_json_error() {
    let mut value = manifest_json(ModelKind::Detector);
    value.as_object_mut().map(|m| m.remove("sha256"));
    let error = Manifest::from_json(&value.to_string(), "m.json").err();
    assert!(
        matches!(&error, Some(ModelError::Json { path, .. }) if path == Path::new("m.json")),
        "{error:?}"
    );
}

#[test]
fn each_kind_of_mismatch_is_reported() {
    let kind = ModelKind::Detector;
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str)> = vec![
        (|m| m["format"] = "onnx".into(), "format is \"onnx\""),
        (|m| m["format_version"] = 2.into(), "format_version is 2"),
        (
            |m| m["kind"] = "forecaster".into(),
            "kind is \"forecaster\", expected \"detector\"",
        ),
        (
            |m| m["feature_schema_version"] = 2.into(),
            "feature_schema_version is 2, this build encodes version 1",
        ),
        (
            |m| m["node_features"][28] = "other".into(),
            "node_features differ from the feature schema: 29 names, expected 29; first difference at index 28: \"other\"",
        ),
        (
            |m| {
                m["edge_features"].as_array_mut().map(Vec::pop);
            },
            "edge_features differ from the feature schema: 11 names, expected 12; first difference at index 11: (end), expected \"conn_virtual_peer\"",
        ),
        (|m| m["targets"][0] = "rps".into(), "targets differ"),
        (|m| m["steps"] = 0.into(), "steps is 0"),
        (|m| m["window_ms"] = 0.into(), "window_ms is 0"),
        (
            |m| m["horizon"] = 5.into(),
            "horizon is 5, a detector has none",
        ),
        (
            |m| m["inputs"][2]["name"] = "edges".into(),
            "unexpected input \"edges\"",
        ),
        (
            |m| m["inputs"][2]["name"] = "edges".into(),
            "missing input \"edge_index\"",
        ),
        (
            |m| m["inputs"][0]["shape"] = json!(["T", "N", 30]),
            "input \"node_features\": shape [T, N, 30], expected [T, N, 29]",
        ),
        (
            |m| m["inputs"][1]["shape"] = json!(["T", "nodes"]),
            "input \"node_mask\": shape [T, nodes], expected [T, N]",
        ),
        (
            |m| m["inputs"][3]["shape"] = json!(["T"]),
            "input \"edge_weight\": shape [T], expected [T, E]",
        ),
        (
            |m| m["outputs"][1]["dtype"] = "int64".into(),
            "output \"feature_contribution\": dtype int64, expected float32",
        ),
        (
            |m| {
                let first = m["outputs"][0].clone();
                if let Some(outputs) = m["outputs"].as_array_mut() {
                    outputs.push(first);
                }
            },
            "output \"anomaly_score\" listed twice",
        ),
        (
            |m| m["sha256"] = "xyz".into(),
            "sha256 is \"xyz\", expected 64 hex digits",
        ),
        (
            |m| m["parity"]["file"] = "../parity.json".into(),
            "parity.file: file name \"../parity.json\"",
        ),
        (|m| m["parity"]["atol"] = (-1.0).into(), "parity.atol is -1"),
        (
            |m| m["variants"][0]["file"] = "/abs/model.onnx".into(),
            "variants[0] (\"int8\").file",
        ),
        (
            |m| m["variants"][0]["sha256"] = "".into(),
            "variants[0] (\"int8\").sha256 is \"\"",
        ),
        (
            |m| m["variants"][0]["file"] = Value::Null,
            "variants[0] (\"int8\"): shipped without a file",
        ),
        (
            |m| m["variants"][1]["name"] = "int8".into(),
            "variants[1] (\"int8\"): name listed twice",
        ),
        (
            |m| m["variants"][0]["parity"]["rtol"] = (-0.5).into(),
            "variants[0] (\"int8\").parity.rtol is -0.5",
        ),
    ];
    for (edit, expected) in cases {
        let mut value = manifest_json(kind);
        edit(&mut value);
        let problems = problems(&value, kind);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem containing {expected:?}, got {problems:?}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() -> Result<(), String> {
    let mut value = manifest_json(ModelKind::Forecaster);
    value["feature_schema_version"] = 7.into();
    value["horizon"] = Value::Null;
    value["inputs"].as_array_mut().map(Vec::pop);
    value["targets"] = json!(["request_rate"]);
    let manifest = parse(&value);
    let Err(ModelError::SchemaMismatch { problems, path }) =
        manifest.check(ModelKind::Forecaster, &FeatureSchema::current())
    else {
        return Err("expected a schema mismatch".to_owned());
    };
    assert_eq!(path, PathBuf::from("manifest.json"));
    let expected = [
        "feature_schema_version is 7",
        "targets differ",
        "horizon is missing or 0",
        "missing input \"window_start\"",
        // without H, the output shapes cannot match (M comes from the schema)
        "output \"forecast\": shape [5, N, 4], expected [H, N, 4]",
    ];
    for want in expected {
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want:?} not in {problems:?}"
        );
    }
    let message = ModelError::SchemaMismatch {
        path,
        problems: problems.clone(),
    }
    .to_string();
    assert!(message.contains(&problems.join("; ")));
    Ok(())
}

#[test]
fn a_forecaster_manifest_is_not_a_detector() {
    let problems = problems(&manifest_json(ModelKind::Forecaster), ModelKind::Detector);
    for want in [
        "kind is \"forecaster\", expected \"detector\"",
        "horizon is 5, a detector has none",
        "unexpected input \"window_start\"",
        "missing output \"anomaly_score\"",
        "unexpected output \"forecast\"",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want:?} not in {problems:?}"
        );
    }
}

#[test]
fn an_unknown_kind_is_an_error() {
    let mut value = manifest_json(ModelKind::Detector);
    value["kind"] = "classifier".into();
    let error = parse(&value).model_kind().err();
    assert!(
        matches!(error, Some(ModelError::SchemaMismatch { .. })),
        "{error:?}"
    );
}

#[test]
fn variants_are_found_by_name() {
    let manifest = parse(&manifest_json(ModelKind::Detector));
    assert_eq!(
        manifest
            .variant("int8")
            .ok()
            .and_then(|v| v.file.as_deref()),
        Some("model.int8.onnx")
    );
    let error = manifest.variant("bf16").err();
    assert!(
        matches!(&error, Some(ModelError::UnknownVariant { available, .. }) if available == &["int8", "fp16"]),
        "{error:?}"
    );
}

#[test]
fn artifact_files_stay_inside_the_directory() {
    let dir = Path::new("/models/detector");
    assert_eq!(
        artifact_file(dir, "parity.json").ok(),
        Some(PathBuf::from("/models/detector/parity.json"))
    );
    assert_eq!(
        artifact_file(dir, "vectors/parity.json").ok(),
        Some(PathBuf::from("/models/detector/vectors/parity.json"))
    );
    for bad in ["", "/etc/passwd", "../x.onnx", "a/../../x", "./x.onnx"] {
        assert!(artifact_file(dir, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_current_schema_is_the_graph_crates() {
    let schema = FeatureSchema::current();
    assert_eq!(
        schema.version,
        meshwatch_graph::features::FEATURE_SCHEMA_VERSION
    );
    assert_eq!(schema.node_features.len(), 29);
    assert_eq!(schema.edge_features.len(), 12);
    assert_eq!(
        schema.targets,
        [
            "request_rate",
            "latency_p90_ms",
            "latency_p99_ms",
            "error_ratio"
        ]
    );
}

#[test]
fn the_version_is_optional() {
    let manifest = parse(&manifest_json(ModelKind::Detector));
    assert_eq!(manifest.version, None);
    let serialised = serde_json::to_value(&manifest).unwrap_or(Value::Null);
    assert!(serialised.get("version").is_none(), "{serialised}");

    let mut value = manifest_json(ModelKind::Detector);
    value["version"] = json!("2026.11.27-1");
    let manifest = parse(&value);
    assert_eq!(manifest.version.as_deref(), Some("2026.11.27-1"));
    assert!(
        manifest
            .check(ModelKind::Detector, &FeatureSchema::current())
            .is_ok()
    );
}
