//! The committed model artifacts (`models/detector`, `models/forecaster`) through real ONNX
//! Runtime: parity replay, refusals of tampered copies, edge cases of the inputs.
//!
//! Needs the ONNX Runtime library: `export ORT_DYLIB_PATH="$(scripts/install-ort.sh)"`. Without
//! it every test here fails (a skipped test would hide a broken setup). All tests of this
//! binary load the same library, so they also pass when `cargo test` runs them in one process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use meshwatch_model::parity::{self, ParityFile};
use meshwatch_model::{
    LoadOptions, Model, ModelError, ModelInputs, ModelKind, ModelOutputs, ShapeError,
};
use meshwatch_testkit::models::{artifact, copy_artifact, ort_library};
use ndarray::{Array1, Array2, Array3};

fn options(kind: ModelKind) -> Result<LoadOptions> {
    Ok(LoadOptions {
        library: Some(ort_library()?),
        kind: Some(kind),
        ..LoadOptions::default()
    })
}

fn load(kind: ModelKind) -> Result<Model> {
    let dir = artifact(kind.as_str());
    Model::load(&dir, &options(kind)?).with_context(|| format!("loading {}", dir.display()))
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    edit(&mut value);
    std::fs::write(path, serde_json::to_string(&value)?)?;
    Ok(())
}

/// Inputs of `t` windows, `n` nodes and `e` edges (a chain, wrapping around), deterministic.
fn inputs(kind: ModelKind, t: usize, n: usize, e: usize) -> ModelInputs {
    let value = |i: usize| ((i * 7919) % 101) as f32 / 101.0;
    let node_features = Array3::from_shape_fn((t, n, 29), |(a, b, c)| value(a * 1000 + b * 31 + c));
    let edge_index = Array2::from_shape_fn((2, e), |(row, edge)| ((edge + row) % n) as i64);
    ModelInputs {
        node_features,
        node_mask: Array2::ones((t, n)),
        edge_index,
        edge_weight: Array2::ones((t, e)),
        edge_features: Array3::from_shape_fn((t, e, 12), |(a, b, c)| value(a * 500 + b * 13 + c)),
        window_start: (kind == ModelKind::Forecaster)
            .then(|| Array1::from_shape_fn(t, |i| 1_736_150_400 + 10 * i as i64)),
    }
}

fn all_finite(outputs: &ModelOutputs) -> bool {
    outputs
        .names()
        .iter()
        .filter_map(|name| outputs.get(name))
        .all(|view| view.iter().all(|v| v.is_finite()))
}

#[test]
fn detector_replays_its_parity_vectors() -> Result<()> {
    let report = parity::replay(&artifact("detector"), &options(ModelKind::Detector)?)?;
    ensure!(!report.cases.is_empty(), "no parity cases");
    ensure!(report.failed() == 0);
    for (case, output) in report.outputs() {
        ensure!(
            output.elements > 0,
            "case {} output {} is empty",
            case.name,
            output.name
        );
    }
    Ok(())
}

#[test]
fn forecaster_replays_its_parity_vectors() -> Result<()> {
    let report = parity::replay(&artifact("forecaster"), &options(ModelKind::Forecaster)?)?;
    ensure!(!report.cases.is_empty(), "no parity cases");
    ensure!(report.failed() == 0);
    Ok(())
}

#[test]
fn shipped_variants_replay_their_parity_vectors() -> Result<()> {
    for kind in [ModelKind::Detector, ModelKind::Forecaster] {
        let dir = artifact(kind.as_str());
        let model = load(kind)?;
        // a variant that was not shipped has no file to replay
        for variant in model
            .manifest()
            .variants
            .iter()
            .filter(|v| v.file.is_some())
        {
            let options = LoadOptions {
                variant: Some(variant.name.clone()),
                ..options(kind)?
            };
            parity::replay(&dir, &options)
                .with_context(|| format!("{kind} variant {}", variant.name))?;
        }
    }
    Ok(())
}

#[test]
fn a_changed_sha256_is_refused() -> Result<()> {
    let copy = copy_artifact("detector")?;
    edit_json(&copy.path().join("manifest.json"), |m| {
        m["sha256"] = "0".repeat(64).into();
    })?;
    match Model::load(copy.path(), &options(ModelKind::Detector)?) {
        Err(ModelError::Sha256Mismatch {
            expected, actual, ..
        }) => {
            ensure!(expected == "0".repeat(64));
            ensure!(actual.len() == 64 && actual != expected);
            Ok(())
        }
        other => bail!("expected a sha256 mismatch, got {other:?}"),
    }
}

#[test]
fn a_model_file_that_differs_from_its_hash_is_refused() -> Result<()> {
    let copy = copy_artifact("forecaster")?;
    let file = copy.path().join("model.onnx");
    let mut bytes = std::fs::read(&file)?;
    bytes.push(0);
    std::fs::write(&file, bytes)?;
    let error = Model::load(copy.path(), &options(ModelKind::Forecaster)?).err();
    ensure!(
        matches!(error, Some(ModelError::Sha256Mismatch { .. })),
        "got {error:?}"
    );
    Ok(())
}

#[test]
fn a_manifest_of_another_feature_schema_is_refused() -> Result<()> {
    let copy = copy_artifact("detector")?;
    edit_json(&copy.path().join("manifest.json"), |m| {
        m["feature_schema_version"] = 999.into();
        m["node_features"][3] = "renamed".into();
    })?;
    match Model::load(copy.path(), &options(ModelKind::Detector)?) {
        Err(ModelError::SchemaMismatch { problems, .. }) => {
            ensure!(problems.len() == 2, "{problems:?}");
            ensure!(
                problems[0].contains("feature_schema_version is 999"),
                "{problems:?}"
            );
            ensure!(problems[1].contains("\"renamed\""), "{problems:?}");
            Ok(())
        }
        other => bail!("expected a schema mismatch, got {other:?}"),
    }
}

#[test]
fn a_detector_is_refused_where_a_forecaster_is_expected() -> Result<()> {
    let error = Model::load(&artifact("detector"), &options(ModelKind::Forecaster)?).err();
    let Some(ModelError::SchemaMismatch { problems, .. }) = error else {
        bail!("expected a schema mismatch, got {error:?}");
    };
    ensure!(
        problems.iter().any(|p| p.contains("kind is \"detector\"")),
        "{problems:?}"
    );
    ensure!(
        problems
            .iter()
            .any(|p| p.contains("missing input \"window_start\"")),
        "{problems:?}"
    );
    Ok(())
}

#[test]
fn a_corrupted_parity_output_is_a_mismatch() -> Result<()> {
    let copy = copy_artifact("detector")?;
    let model = Model::load(copy.path(), &options(ModelKind::Detector)?)?;
    let parity_path = copy.path().join(&model.manifest().parity.file);
    edit_json(&parity_path, |p| {
        let value = &mut p["cases"][0]["outputs"]["feature_contribution"]["data"][5];
        *value = (value.as_f64().unwrap_or(0.0) + 1.0).into();
    })?;
    let report = parity::run_cases(&model, copy.path())?;
    ensure!(report.failed() == 1, "failed: {}", report.failed());
    let (case, output) = report
        .outputs()
        .find(|(_, o)| o.failed > 0)
        .context("no failing output")?;
    ensure!(case.name == report.cases[0].name && output.name == "feature_contribution");
    ensure!(
        output.worst_index == vec![0, 5],
        "worst at {:?}",
        output.worst_index
    );
    ensure!(
        (output.max_abs_error - 1.0).abs() < 1e-3,
        "{}",
        output.max_abs_error
    );
    match report.check() {
        Err(ModelError::ParityMismatch {
            failed: 1, details, ..
        }) => {
            ensure!(
                details.len() == 1 && details[0].contains("feature_contribution"),
                "{details:?}"
            );
            Ok(())
        }
        other => bail!("expected a parity mismatch, got {other:?}"),
    }
}

#[test]
fn a_parity_file_without_an_output_is_refused() -> Result<()> {
    let copy = copy_artifact("forecaster")?;
    let model = Model::load(copy.path(), &options(ModelKind::Forecaster)?)?;
    let parity_path = copy.path().join(&model.manifest().parity.file);
    edit_json(&parity_path, |p| {
        if let Some(outputs) = p["cases"][0]["outputs"].as_object_mut() {
            outputs.remove("forecast_interval");
        }
    })?;
    let error = parity::run_cases(&model, copy.path()).err();
    ensure!(
        matches!(error, Some(ModelError::ParityFile { .. })),
        "got {error:?}"
    );
    // the file as loaded still parses: only the missing output is the problem
    ensure!(!ParityFile::load(&parity_path)?.cases.is_empty());
    Ok(())
}

#[test]
fn one_node_without_edges_runs() -> Result<()> {
    let detector = load(ModelKind::Detector)?;
    let outputs = detector.run(&inputs(ModelKind::Detector, 12, 1, 0))?;
    let ModelOutputs::Detector {
        anomaly_score,
        feature_contribution,
    } = &outputs
    else {
        bail!("detector returned {outputs:?}");
    };
    ensure!(anomaly_score.shape() == [1] && feature_contribution.shape() == [1, 29]);
    ensure!(all_finite(&outputs), "{outputs:?}");

    let forecaster = load(ModelKind::Forecaster)?;
    let outputs = forecaster.run(&inputs(ModelKind::Forecaster, 12, 1, 0))?;
    let horizon = forecaster.manifest().horizon.context("no horizon")?;
    let ModelOutputs::Forecaster { forecast, interval } = &outputs else {
        bail!("forecaster returned {outputs:?}");
    };
    ensure!(forecast.shape() == [horizon, 1, 4] && interval.shape() == [horizon, 1, 4, 2]);
    ensure!(all_finite(&outputs), "{outputs:?}");
    Ok(())
}

#[test]
fn other_window_counts_and_graph_sizes_run() -> Result<()> {
    let detector = load(ModelKind::Detector)?;
    for (t, n, e) in [(1, 3, 2), (5, 50, 120), (24, 2, 1)] {
        let outputs = detector.run(&inputs(ModelKind::Detector, t, n, e))?;
        ensure!(outputs.get("anomaly_score").map(|a| a.len()) == Some(n));
        ensure!(all_finite(&outputs), "T={t} N={n} E={e}");
    }
    Ok(())
}

#[test]
fn wrong_input_shapes_are_refused_before_the_run() -> Result<()> {
    let detector = load(ModelKind::Detector)?;
    let mut bad = inputs(ModelKind::Detector, 12, 4, 3);
    bad.node_mask = Array2::ones((12, 5));
    let error = detector.run(&bad).err();
    ensure!(
        matches!(
            &error,
            Some(ModelError::Shape(ShapeError::Input { input: "node_mask", actual, .. })) if actual == &[12, 5]
        ),
        "got {error:?}"
    );

    let mut bad = inputs(ModelKind::Detector, 12, 4, 3);
    bad.edge_index[[1, 2]] = 4;
    let error = detector.run(&bad).err();
    ensure!(
        matches!(
            error,
            Some(ModelError::Shape(ShapeError::EdgeIndex {
                row: 1,
                edge: 2,
                value: 4,
                nodes: 4
            }))
        ),
        "got {error:?}"
    );

    let mut bad = inputs(ModelKind::Detector, 12, 4, 3);
    bad.node_features = Array3::zeros((12, 4, 28));
    let error = detector.run(&bad).err().map(|e| e.to_string());
    ensure!(
        error.as_deref()
            == Some("input node_features: shape [12, 4, 28], expected [T=12, N=4, 29]"),
        "got {error:?}"
    );

    let forecaster = load(ModelKind::Forecaster)?;
    let mut bad = inputs(ModelKind::Forecaster, 12, 4, 3);
    bad.window_start = None;
    let error = forecaster.run(&bad).err();
    ensure!(
        matches!(
            error,
            Some(ModelError::Shape(ShapeError::MissingInput {
                input: "window_start",
                ..
            }))
        ),
        "got {error:?}"
    );
    Ok(())
}

#[test]
fn concurrent_runs_from_several_threads_agree() -> Result<()> {
    let model = Arc::new(Model::load(
        &artifact("detector"),
        &LoadOptions {
            sessions: 2,
            ..options(ModelKind::Detector)?
        },
    )?);
    let input = Arc::new(inputs(ModelKind::Detector, 12, 9, 14));
    let expected = model.run(&input)?;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (model, input) = (Arc::clone(&model), Arc::clone(&input));
            std::thread::spawn(move || -> Result<Vec<ModelOutputs>, ModelError> {
                (0..5).map(|_| model.run(&input)).collect()
            })
        })
        .collect();
    for handle in handles {
        let outputs = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a run thread panicked"))??;
        ensure!(outputs.iter().all(|o| o == &expected), "runs disagree");
    }
    Ok(())
}

#[test]
fn a_missing_library_is_a_clear_error() -> Result<()> {
    let options = LoadOptions {
        library: Some(PathBuf::from("/nonexistent/libonnxruntime.so.1.31.1")),
        ..options(ModelKind::Detector)?
    };
    let error = Model::load(&artifact("detector"), &options).err();
    let Some(error @ ModelError::LibraryMissing { .. }) = error else {
        bail!("expected a missing library error, got {error:?}");
    };
    ensure!(
        error.to_string().contains("scripts/install-ort.sh"),
        "{error}"
    );
    Ok(())
}

#[test]
fn a_second_library_in_the_same_process_is_refused() -> Result<()> {
    load(ModelKind::Detector)?;
    let dir = tempfile::tempdir()?;
    let other = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::copy(ort_library()?, &other)?;
    let options = LoadOptions {
        library: Some(other),
        ..options(ModelKind::Detector)?
    };
    let error = Model::load(&artifact("detector"), &options).err();
    ensure!(
        matches!(error, Some(ModelError::LibraryConflict { .. })),
        "got {error:?}"
    );
    Ok(())
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_fails_unless_fallback_is_allowed() -> Result<()> {
    use meshwatch_model::ExecutionProvider;

    let cuda = LoadOptions {
        execution_provider: ExecutionProvider::Cuda {
            device_id: 0,
            memory_limit_bytes: Some(1 << 30),
        },
        ..options(ModelKind::Detector)?
    };
    let error = Model::load(&artifact("detector"), &cuda).err();
    ensure!(
        matches!(
            error,
            Some(ModelError::ExecutionProviderUnavailable {
                provider: "cuda",
                ..
            })
        ),
        "got {error:?}"
    );
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    ensure!(
        message.contains("cuda") && message.contains("--features cuda"),
        "{message}"
    );
    let model = Model::load(
        &artifact("detector"),
        &LoadOptions {
            fallback_to_cpu: true,
            sessions: 2,
            ..cuda
        },
    )?;
    ensure!(model.execution_provider() == ExecutionProvider::Cpu);
    ensure!(model.execution_provider().name() == "cpu");
    // the fallback runs, and computes what a cpu model computes
    let input = inputs(ModelKind::Detector, 12, 6, 8);
    ensure!(model.run(&input)? == load(ModelKind::Detector)?.run(&input)?);
    Ok(())
}

#[test]
fn the_version_is_the_manifests_or_derived_from_the_sha256() -> Result<()> {
    let detector = load(ModelKind::Detector)?;
    let sha256 = detector.manifest().sha256.to_lowercase();
    ensure!(detector.sha256() == sha256);
    ensure!(
        detector.version() == format!("sha256:{}", &sha256[..12]),
        "{}",
        detector.version()
    );

    let copy = copy_artifact("detector")?;
    for (version, want) in [
        ("2026.11.27-1", "2026.11.27-1".to_owned()),
        ("", format!("sha256:{}", &sha256[..12])),
    ] {
        edit_json(&copy.path().join("manifest.json"), |m| {
            m["version"] = version.into();
        })?;
        let model = Model::load(copy.path(), &options(ModelKind::Detector)?)?;
        ensure!(model.version() == want, "{} != {want}", model.version());
    }
    Ok(())
}

/// With the `cuda` feature the outcome depends on the library and the machine; what must hold
/// everywhere: the strict load either runs on CUDA or fails naming cuda, and the fallback
/// reports what it really uses (the CPU exactly when the strict load failed).
#[cfg(feature = "cuda")]
#[test]
fn cuda_is_used_or_refused_and_the_fallback_says_which() -> Result<()> {
    use meshwatch_model::ExecutionProvider;

    let requested = ExecutionProvider::Cuda {
        device_id: 0,
        memory_limit_bytes: Some(1 << 30),
    };
    let cuda = LoadOptions {
        execution_provider: requested,
        ..options(ModelKind::Detector)?
    };
    let strict = Model::load(&artifact("detector"), &cuda);
    match &strict {
        Ok(model) => ensure!(model.execution_provider() == requested),
        Err(ModelError::ExecutionProviderUnavailable {
            provider: "cuda", ..
        }) => {}
        Err(other) => bail!("expected cuda or a cuda error, got {other:?}"),
    }
    let model = Model::load(
        &artifact("detector"),
        &LoadOptions {
            fallback_to_cpu: true,
            ..cuda
        },
    )?;
    let want = if strict.is_ok() {
        requested
    } else {
        ExecutionProvider::Cpu
    };
    ensure!(model.execution_provider() == want);
    let input = inputs(ModelKind::Detector, 12, 6, 8);
    let got = model.run(&input)?;
    ensure!(all_finite(&got), "{got:?}");
    Ok(())
}
