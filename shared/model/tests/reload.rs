//! Hot reload of a [`Server`] on copies of the committed artifacts through real ONNX Runtime:
//! a new version swaps in, bad ones are rejected while the old one keeps serving, requests
//! during a reload all succeed, the reload watcher.
//!
//! Needs `ORT_DYLIB_PATH` (see `tests/artifacts.rs`).

#[path = "serving/support.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use meshwatch_model::metrics::{Metrics, outcome};
use meshwatch_model::{LoadOptions, ModelError, ModelKind, ReloadOutcome, Server, ServingOptions};
use meshwatch_testkit::models::{artifact, copy_artifact};
use support::{
    check, close_to, edit_json, eventually, inputs, options, renamed_copy, tamper_parity,
};
use tokio_util::sync::CancellationToken;

fn set_version(dir: &Path, version: &str) -> Result<()> {
    edit_json(&dir.join("manifest.json"), |m| {
        m["version"] = version.into()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_a_new_version_and_rejects_bad_ones() -> Result<()> {
    let name = "detector-reload-test";
    let copy = renamed_copy(ModelKind::Detector, name)?;
    let dir = copy.path();
    let server = Server::start(dir.to_path_buf(), ModelKind::Detector, options()?).await?;
    let first = server.info().version.clone();
    ensure!(first.starts_with("sha256:"), "{first}");
    ensure!(server.reload().await? == ReloadOutcome::Unchanged);

    set_version(dir, "2026.11.27-2")?;
    let outcome = server.reload().await?;
    ensure!(
        outcome
            == ReloadOutcome::Reloaded {
                from: first.clone(),
                to: "2026.11.27-2".to_owned()
            },
        "{outcome:?}"
    );
    ensure!(server.info().version == "2026.11.27-2");
    let input = inputs(ModelKind::Detector, 1, 5, 4, 0);
    let want = server.model().run(&input)?;
    check(&server.infer(input.clone()).await?, &want, "2026.11.27-2")?;
    ensure!(server.reload().await? == ReloadOutcome::Unchanged);

    // parity vectors that the model does not reproduce
    set_version(dir, "2026.11.27-3")?;
    tamper_parity(dir, "anomaly_score")?;
    let error = server.reload().await.err();
    ensure!(
        matches!(error, Some(ModelError::ParityMismatch { .. })),
        "got {error:?}"
    );
    ensure!(server.info().version == "2026.11.27-2");
    check(&server.infer(input.clone()).await?, &want, "2026.11.27-2")?;

    // a model file that is not the one the manifest describes
    std::fs::copy(
        artifact("detector").join("parity.json"),
        dir.join("parity.json"),
    )?;
    let mut bytes = std::fs::read(dir.join("model.onnx"))?;
    bytes.push(0);
    std::fs::write(dir.join("model.onnx"), bytes)?;
    set_version(dir, "2026.11.27-4")?;
    let error = server.reload().await.err();
    ensure!(
        matches!(error, Some(ModelError::Sha256Mismatch { .. })),
        "got {error:?}"
    );
    check(&server.infer(input).await?, &want, "2026.11.27-2")?;

    let reloads = |outcome: &str| {
        Metrics::get()
            .reloads
            .with_label_values(&[name, outcome])
            .get()
    };
    ensure!(reloads(outcome::RELOADED) == 1 && reloads(outcome::REJECTED) == 2);
    let info = Metrics::get().info.clone();
    ensure!(info.with_label_values(&[name, "2026.11.27-2", "cpu"]).get() == 1);
    ensure!(
        info.get_metric_with_label_values(&[name, first.as_str(), "cpu"])
            .map(|g| g.get())
            .unwrap_or(0)
            == 0
    );
    server.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_a_reload_all_succeed() -> Result<()> {
    let copy = copy_artifact("forecaster")?;
    let dir = copy.path();
    let server = Server::start(
        dir.to_path_buf(),
        ModelKind::Forecaster,
        ServingOptions {
            load: LoadOptions {
                sessions: 2,
                ..options()?.load
            },
            ..options()?
        },
    )
    .await?;
    let old = server.info().version.clone();
    let reloaded = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|seed| {
            let (server, reloaded) = (server.clone(), Arc::clone(&reloaded));
            let input = inputs(
                ModelKind::Forecaster,
                seed,
                3 + seed,
                2 * seed,
                1_736_150_400,
            );
            tokio::spawn(async move {
                let mut versions = Vec::new();
                let mut after = 0;
                // until a few requests were served after the swap
                while after < 5 {
                    let got = server.infer(input.clone()).await?;
                    if reloaded.load(Ordering::SeqCst) {
                        after += 1;
                    }
                    versions.push((got.model.version.clone(), got.outputs));
                }
                anyhow::Ok((input, versions))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    set_version(dir, "forecaster-v2")?;
    let outcome = server.reload().await?;
    reloaded.store(true, Ordering::SeqCst);
    ensure!(
        outcome
            == ReloadOutcome::Reloaded {
                from: old.clone(),
                to: "forecaster-v2".to_owned()
            }
    );
    let model = server.model();
    for client in clients {
        let (input, versions) = client.await??;
        let want = model.run(&input)?;
        let Some((last, _)) = versions.last() else {
            bail!("no request served");
        };
        ensure!(last == "forecaster-v2", "{last}");
        for (version, outputs) in versions {
            ensure!(version == old || version == "forecaster-v2", "{version}");
            // the same model file under both versions
            close_to(&outputs, &want)?;
        }
    }
    server.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_watcher_survives_a_bad_model_and_swaps_a_good_one() -> Result<()> {
    let name = "detector-watcher-test";
    let copy = renamed_copy(ModelKind::Detector, name)?;
    let dir = copy.path();
    let server = Server::start(dir.to_path_buf(), ModelKind::Detector, options()?).await?;
    let cancel = CancellationToken::new();
    let watcher = server.spawn_reload_watcher(Duration::from_millis(10), cancel.clone());
    let rejected = || {
        Metrics::get()
            .reloads
            .with_label_values(&[name, outcome::REJECTED])
            .get()
    };

    tamper_parity(dir, "feature_contribution")?;
    set_version(dir, "bad")?;
    eventually("the bad model was rejected", || rejected() >= 1).await?;
    ensure!(server.info().version.starts_with("sha256:"));
    ensure!(!watcher.is_finished());

    std::fs::copy(
        artifact("detector").join("parity.json"),
        dir.join("parity.json"),
    )?;
    set_version(dir, "good")?;
    eventually("the good model serves", || server.info().version == "good").await?;
    cancel.cancel();
    watcher.await?;
    server.close().await;
    Ok(())
}
