//! Runs of the committed artifacts through real ONNX Runtime: the session pool (bounded waits,
//! panics) and micro-batching (a joined run split back equals separate runs).
//!
//! Needs `ORT_DYLIB_PATH` (see `tests/artifacts.rs`).

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meshwatch_model::{
    LoadOptions, Model, ModelError, ModelInputs, ModelKind, ModelOutputs, ShapeError, join,
};
use meshwatch_testkit::models::{artifact, ort_library};
use ndarray::{Array1, Array2, Array3};

fn load(kind: ModelKind, sessions: usize) -> Result<Model> {
    let options = LoadOptions {
        library: Some(ort_library()?),
        kind: Some(kind),
        sessions,
        ..LoadOptions::default()
    };
    let dir = artifact(kind.as_str());
    Model::load(&dir, &options).with_context(|| format!("loading {}", dir.display()))
}

/// Inputs of `t` windows, `n` nodes and `e` edges, deterministic per `seed`: a chain of calls
/// (wrapping around), some nodes masked in some windows.
fn inputs(kind: ModelKind, seed: usize, t: usize, n: usize, e: usize) -> ModelInputs {
    let value = |i: usize| ((i * 7919 + seed * 104_729) % 101) as f32 / 101.0;
    ModelInputs {
        node_features: Array3::from_shape_fn((t, n, 29), |(a, b, c)| value(a * 1000 + b * 31 + c)),
        node_mask: Array2::from_shape_fn((t, n), |(a, b)| {
            if (a + b + seed).is_multiple_of(5) {
                0.0
            } else {
                1.0
            }
        }),
        edge_index: Array2::from_shape_fn((2, e), |(row, edge)| ((edge + row) % n) as i64),
        edge_weight: Array2::from_shape_fn((t, e), |(a, b)| 1.0 + value(a * 17 + b)),
        edge_features: Array3::from_shape_fn((t, e, 12), |(a, b, c)| value(a * 500 + b * 13 + c)),
        window_start: (kind == ModelKind::Forecaster)
            .then(|| Array1::from_shape_fn(t, |i| 1_736_150_400 + 10 * i as i64)),
    }
}

/// The largest `|a - b|` over every output; an error when the kinds or shapes differ.
fn max_difference(a: &ModelOutputs, b: &ModelOutputs) -> Result<f32> {
    let mut max = 0.0_f32;
    for name in a.names() {
        let (x, y) = (a.get(name), b.get(name));
        let (Some(x), Some(y)) = (x, y) else {
            bail!("output {name} missing on one side");
        };
        ensure!(
            x.shape() == y.shape(),
            "{name}: {:?} vs {:?}",
            x.shape(),
            y.shape()
        );
        for (p, q) in x.iter().zip(y.iter()) {
            ensure!(p.is_finite() && q.is_finite(), "{name}: {p} vs {q}");
            max = max.max((p - q).abs());
        }
    }
    Ok(max)
}

#[test]
fn run_within_is_busy_while_the_only_session_is_held() -> Result<()> {
    let model = load(ModelKind::Detector, 1)?;
    let input = inputs(ModelKind::Detector, 1, 12, 4, 3);
    let held = model.hold_session().context("the session is not free")?;
    ensure!(model.hold_session().is_none() && model.free_sessions() == 0);

    let error = model
        .run_within(&input, Duration::from_millis(30))
        .err()
        .context("ran while the only session was held")?;
    let ModelError::Busy {
        model: name,
        waited_ms,
    } = &error
    else {
        bail!("expected busy, got {error:?}");
    };
    ensure!(name == "detector" && *waited_ms >= 30, "{error:?}");
    ensure!(error.is_retryable());
    ensure!(
        error.to_string() == format!("all sessions of model detector busy for {waited_ms} ms"),
        "{error}"
    );

    // inputs are checked before the wait: a bad one is refused at once, not busy
    let mut bad = input.clone();
    bad.edge_index[[0, 0]] = 9;
    let error = model.run_within(&bad, Duration::from_secs(60)).err();
    ensure!(
        matches!(error, Some(ModelError::Shape(ShapeError::EdgeIndex { .. }))),
        "got {error:?}"
    );
    ensure!(!error.is_some_and(|e| e.is_retryable()));

    drop(held);
    ensure!(model.free_sessions() == 1);
    model.run_within(&input, Duration::from_millis(30))?;
    Ok(())
}

#[test]
fn run_waits_for_a_session_without_bound() -> Result<()> {
    let model = load(ModelKind::Detector, 1)?;
    let input = inputs(ModelKind::Detector, 2, 12, 5, 4);
    let expected = model.run(&input)?;
    let held = model.hold_session().context("the session is not free")?;
    std::thread::scope(|scope| {
        let run = scope.spawn(|| model.run(&input));
        std::thread::sleep(Duration::from_millis(50));
        // it cannot finish while the session is held, however slow the machine
        ensure!(!run.is_finished(), "ran while the only session was held");
        drop(held);
        let outputs = run
            .join()
            .map_err(|_| anyhow::anyhow!("the run panicked"))??;
        ensure!(outputs == expected);
        Ok(())
    })
}

#[test]
fn a_panic_while_holding_a_session_gives_it_back() -> Result<()> {
    let model = load(ModelKind::Detector, 1)?;
    let panicked = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _held = model.hold_session();
                std::panic::resume_unwind(Box::new("a run failed half-way"));
            })
            .join()
    });
    ensure!(panicked.is_err(), "the thread did not panic");
    ensure!(model.free_sessions() == 1);
    model.run_within(
        &inputs(ModelKind::Detector, 3, 12, 3, 2),
        Duration::from_millis(30),
    )?;
    Ok(())
}

/// Joins `graphs`, runs the union once, splits it and compares each part with its own run.
fn joined_equals_separate(model: &Model, graphs: &[ModelInputs]) -> Result<()> {
    let parts: Vec<&ModelInputs> = graphs.iter().collect();
    let joined = join(&parts)?;
    ensure!(joined.parts() == graphs.len());
    model.validate(&joined.inputs)?;
    let split = joined.split(model.run(&joined.inputs)?)?;
    ensure!(split.len() == graphs.len());
    for (i, (graph, part)) in graphs.iter().zip(&split).enumerate() {
        let alone = model.run(graph)?;
        let difference = max_difference(part, &alone)?;
        ensure!(
            difference <= 1e-5,
            "{} graph {i}: joined and separate runs differ by {difference}",
            model.kind()
        );
    }
    Ok(())
}

#[test]
fn joined_detector_runs_split_back_to_separate_runs() -> Result<()> {
    let model = load(ModelKind::Detector, 1)?;
    let kind = ModelKind::Detector;
    let graphs = [
        inputs(kind, 1, 12, 7, 12),
        inputs(kind, 2, 12, 1, 0),
        inputs(kind, 3, 12, 23, 40),
        inputs(kind, 4, 12, 2, 1),
    ];
    joined_equals_separate(&model, &graphs)
}

#[test]
fn joined_forecaster_runs_split_back_to_separate_runs() -> Result<()> {
    let model = load(ModelKind::Forecaster, 1)?;
    let kind = ModelKind::Forecaster;
    let graphs = [
        inputs(kind, 5, 12, 5, 6),
        inputs(kind, 6, 12, 1, 0),
        inputs(kind, 7, 12, 17, 30),
    ];
    joined_equals_separate(&model, &graphs)
}

/// `LoadOptions::profile`: dropping the model writes ONNX Runtime's profile, one file per
/// session, with a kernel-time event per node naming the CPU provider.
#[test]
fn a_profiled_model_writes_a_trace_per_session_when_dropped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let options = LoadOptions {
        library: Some(ort_library()?),
        kind: Some(ModelKind::Detector),
        sessions: 2,
        profile: Some(dir.path().join("detector")),
        ..LoadOptions::default()
    };
    let model = Model::load(&artifact("detector"), &options)?;
    model.run(&inputs(ModelKind::Detector, 3, 12, 9, 14))?;
    drop(model);
    let mut files: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    files.sort();
    ensure!(files.len() == 2, "one profile per session: {files:?}");
    ensure!(
        files[0].starts_with("detector_0_") && files[1].starts_with("detector_1_"),
        "{files:?}"
    );
    let mut kernels = 0;
    for file in &files {
        let events: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(dir.path().join(file))?)?;
        kernels += events
            .iter()
            .filter(|e| {
                e["cat"] == "Node"
                    && e["name"]
                        .as_str()
                        .is_some_and(|n| n.ends_with("_kernel_time"))
            })
            .inspect(|e| assert_eq!(e["args"]["provider"], "CPUExecutionProvider"))
            .count();
    }
    // the parity replay and the run above, on either session: hundreds of nodes
    ensure!(kernels > 100, "{kernels} kernel events");
    Ok(())
}
