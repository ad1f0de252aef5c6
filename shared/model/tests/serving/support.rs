//! Helpers of the serving tests (`tests/serving.rs`, `tests/reload.rs`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meshwatch_model::{
    Inferred, LoadOptions, ModelInputs, ModelKind, ModelOutputs, ServingOptions,
};
use meshwatch_testkit::models::{copy_artifact, ort_library};
use ndarray::{Array1, Array2, Array3};

pub fn options() -> Result<ServingOptions> {
    Ok(ServingOptions {
        load: LoadOptions {
            library: Some(ort_library()?),
            ..LoadOptions::default()
        },
        ..ServingOptions::default()
    })
}

pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    edit(&mut value);
    std::fs::write(path, serde_json::to_string(&value)?)?;
    Ok(())
}

/// A copy of `models/<kind>` whose manifest names the model `name`.
pub fn renamed_copy(kind: ModelKind, name: &str) -> Result<tempfile::TempDir> {
    let copy = copy_artifact(kind.as_str())?;
    edit_json(&copy.path().join("manifest.json"), |m| {
        m["name"] = name.into();
    })?;
    Ok(copy)
}

/// Adds 1 to an expected output of the first parity case.
pub fn tamper_parity(dir: &Path, output: &str) -> Result<()> {
    edit_json(&dir.join("parity.json"), |p| {
        let value = &mut p["cases"][0]["outputs"][output]["data"][0];
        *value = (value.as_f64().unwrap_or(0.0) + 1.0).into();
    })
}

/// Inputs of 12 windows, `n` nodes and `e` edges, deterministic per `seed`; the forecaster's
/// windows start at `start`.
pub fn inputs(kind: ModelKind, seed: usize, n: usize, e: usize, start: i64) -> ModelInputs {
    let t = 12;
    let value = |i: usize| ((i * 7919 + seed * 104_729) % 101) as f32 / 101.0;
    ModelInputs {
        node_features: Array3::from_shape_fn((t, n, 29), |(a, b, c)| value(a * 1000 + b * 31 + c)),
        node_mask: Array2::ones((t, n)),
        edge_index: Array2::from_shape_fn((2, e), |(row, edge)| ((edge + row) % n) as i64),
        edge_weight: Array2::ones((t, e)),
        edge_features: Array3::from_shape_fn((t, e, 12), |(a, b, c)| value(a * 500 + b * 13 + c)),
        window_start: (kind == ModelKind::Forecaster)
            .then(|| Array1::from_shape_fn(t, |i| start + 10 * i as i64)),
    }
}

/// Checks that `got` came from the model serving as `version` and is [`close_to`] `want`.
pub fn check(got: &Inferred, want: &ModelOutputs, version: &str) -> Result<()> {
    ensure!(
        got.model.version == version,
        "{} != {version}",
        got.model.version
    );
    close_to(&got.outputs, want)
}

/// Checks that `got` equals `want` within 1e-5, or within 8 float32 ulps of a value above 10
/// (where 1e-5 is finer than float32 can tell apart: the detector's calibrated scores reach
/// hundreds, and a joined run sums in another order than a lone one).
pub fn close_to(got: &ModelOutputs, want: &ModelOutputs) -> Result<()> {
    for name in want.names() {
        let (Some(x), Some(y)) = (got.get(name), want.get(name)) else {
            bail!("output {name} missing");
        };
        ensure!(
            x.shape() == y.shape(),
            "{name}: {:?} vs {:?}",
            x.shape(),
            y.shape()
        );
        for (p, q) in x.iter().zip(y.iter()) {
            let tolerance = 1e-5_f32.max(8.0 * f32::EPSILON * q.abs());
            ensure!(
                (p - q).abs() <= tolerance,
                "{name}: {p} vs {q} differ by {} (tolerance {tolerance})",
                (p - q).abs()
            );
        }
    }
    Ok(())
}

/// Waits (at most 10 s) until `condition` holds.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .with_context(|| format!("timed out waiting until {what}"))
}
