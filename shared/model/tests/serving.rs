//! [`Server`] on the committed artifacts through real ONNX Runtime: results equal direct runs,
//! micro-batching, a full queue, abandoned requests, a start refused by the parity vectors,
//! CUDA without CUDA, close. Hot reload: `tests/reload.rs`.
//!
//! Needs `ORT_DYLIB_PATH` (see `tests/artifacts.rs`). Metrics are process-wide: tests that
//! assert on them serve a copy of an artifact renamed in its manifest, so that their series
//! are their own.

#[path = "serving/support.rs"]
mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meshwatch_model::metrics::{Metrics, reason};
use meshwatch_model::{
    ExecutionProvider, ModelError, ModelKind, ServeError, Server, ServingOptions,
};
use meshwatch_testkit::models::{artifact, copy_artifact};
use support::{check, eventually, inputs, options, renamed_copy, tamper_parity};

/// Polls `fut` once, so that an `infer` has queued its request, and returns it to await later.
async fn enqueue<'a, T>(
    fut: impl Future<Output = T> + Send + 'a,
) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    let mut fut = Box::pin(fut);
    tokio::select! {
        biased;
        _ = &mut fut => unreachable!("a request finished while every session was held"),
        () = std::future::ready(()) => {}
    }
    fut
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_equals_a_direct_run_and_names_the_version() -> Result<()> {
    for kind in [ModelKind::Detector, ModelKind::Forecaster] {
        let server = Server::start(artifact(kind.as_str()), kind, options()?).await?;
        let model = server.model();
        let info = server.info();
        ensure!(info.name == kind.as_str() && info.kind == kind);
        ensure!(info.version == model.version() && info.version.starts_with("sha256:"));
        ensure!(info.execution_provider == ExecutionProvider::Cpu);
        ensure!(info.steps == 12 && info.node_features.len() == 29 && info.targets.len() == 4);
        ensure!(info.horizon.is_some() == (kind == ModelKind::Forecaster));
        for (seed, n, e) in [(1, 7, 12), (2, 1, 0), (3, 40, 90)] {
            let input = inputs(kind, seed, n, e, 1_736_150_400);
            let want = model.run(&input)?;
            let got = server.infer(input).await?;
            check(&got, &want, &info.version)?;
            ensure!(Arc::ptr_eq(&got.model, &info) || *got.model == *info);
        }
        server.close().await;
        let closed = server.infer(inputs(kind, 4, 3, 2, 1_736_150_400)).await;
        ensure!(matches!(&closed, Err(ServeError::Closed)), "got {closed:?}");
        ensure!(closed.err().is_some_and(|e| e.is_retryable()));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_each_gets_its_own_slice() -> Result<()> {
    let name = "detector-batching-test";
    let copy = renamed_copy(ModelKind::Detector, name)?;
    let server = Server::start(
        copy.path().to_path_buf(),
        ModelKind::Detector,
        ServingOptions {
            max_batch_wait: Duration::from_millis(200),
            ..options()?
        },
    )
    .await?;
    let model = server.model();
    let version = server.info().version.clone();
    let mut requests = Vec::new();
    for seed in 0..8 {
        let input = inputs(ModelKind::Detector, seed, 2 + 3 * seed, 4 * seed, 0);
        let want = model.run(&input)?;
        requests.push((input, want));
    }
    // one bad request among them fails alone
    let mut bad = inputs(ModelKind::Detector, 99, 4, 3, 0);
    bad.edge_index[[1, 2]] = 4;
    let bad = {
        let server = server.clone();
        tokio::spawn(async move { server.infer(bad).await })
    };
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(input, want)| {
            let server = server.clone();
            tokio::spawn(async move { (server.infer(input).await, want) })
        })
        .collect();
    for task in tasks {
        let (got, want) = task.await?;
        check(&got?, &want, &version)?;
    }
    let error = bad.await?.err().context("a bad request was served")?;
    ensure!(
        error.is_invalid_input() && !error.is_retryable(),
        "{error:?}"
    );
    ensure!(
        matches!(error, ServeError::Model(ModelError::Shape(_))),
        "{error:?}"
    );

    let graphs = Metrics::get().batch_graphs.with_label_values(&[name]);
    // runs of one graph each would make the sum equal to the count
    ensure!(
        graphs.get_sample_sum() > graphs.get_sample_count() as f64,
        "no batch of several graphs: {} runs for {} graphs",
        graphs.get_sample_count(),
        graphs.get_sample_sum()
    );
    let invalid = Metrics::get()
        .errors
        .with_label_values(&[name, reason::INVALID_INPUT]);
    ensure!(
        invalid.get() == 1,
        "invalid inputs counted {}",
        invalid.get()
    );
    server.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_of_other_windows_run_apart_and_all_are_right() -> Result<()> {
    let server = Server::start(
        artifact("forecaster"),
        ModelKind::Forecaster,
        ServingOptions {
            max_batch_wait: Duration::from_millis(100),
            ..options()?
        },
    )
    .await?;
    let model = server.model();
    let version = server.info().version.clone();
    let tasks: Vec<_> = (0..6)
        .map(|seed: usize| {
            let start = if seed.is_multiple_of(3) {
                1_736_000_000
            } else {
                1_736_150_400
            };
            let input = inputs(ModelKind::Forecaster, seed, 1 + seed, 2 * seed, start);
            let want = model.run(&input);
            let server = server.clone();
            tokio::spawn(async move { (server.infer(input).await, want) })
        })
        .collect();
    for task in tasks {
        let (got, want) = task.await?;
        check(&got?, &want?, &version)?;
    }
    server.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_fails_fast_and_abandoned_requests_do_not_run() -> Result<()> {
    let name = "detector-queue-test";
    let copy = renamed_copy(ModelKind::Detector, name)?;
    let server = Server::start(
        copy.path().to_path_buf(),
        ModelKind::Detector,
        ServingOptions {
            queue_capacity: 1,
            max_batch_wait: Duration::ZERO,
            session_wait: Duration::from_secs(60),
            ..options()?
        },
    )
    .await?;
    let model = server.model();
    let held = model.hold_session().context("the session is not free")?;

    // a: taken by the worker, its run waits for the held session (the only run permitted)
    let a = enqueue(server.infer(inputs(ModelKind::Detector, 1, 3, 2, 0))).await;
    eventually("the worker took the first request", || server.queued() == 0).await?;
    // b: waits in the queue, which is full now
    let b = enqueue(server.infer(inputs(ModelKind::Detector, 2, 3, 2, 0))).await;
    ensure!(server.queued() == 1);
    let c = server.infer(inputs(ModelKind::Detector, 3, 3, 2, 0)).await;
    let Err(error @ ServeError::QueueFull { capacity: 1 }) = c else {
        bail!("expected a full queue, got {c:?}");
    };
    ensure!(error.is_retryable() && !error.is_invalid_input());

    // b's caller gives up: it must not run
    drop(b);
    drop(held);
    let version = server.info().version.clone();
    ensure!(a.await?.model.version == version);
    // the worker takes b (and drops it) once a's run has given its permit back
    eventually("the worker took b", || server.queued() == 0).await?;
    server
        .infer(inputs(ModelKind::Detector, 4, 3, 2, 0))
        .await?;

    let errors = |reason: &str| {
        Metrics::get()
            .errors
            .with_label_values(&[name, reason])
            .get()
    };
    ensure!(
        errors(reason::QUEUE_FULL) == 1,
        "{}",
        errors(reason::QUEUE_FULL)
    );
    ensure!(
        errors(reason::ABANDONED) == 1,
        "{}",
        errors(reason::ABANDONED)
    );
    let runs = Metrics::get().batch_graphs.with_label_values(&[name]);
    ensure!(
        runs.get_sample_count() == 2 && runs.get_sample_sum() == 2.0,
        "{} runs of {} graphs: the abandoned request ran",
        runs.get_sample_count(),
        runs.get_sample_sum()
    );
    server.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_fails_its_parity_vectors_does_not_start() -> Result<()> {
    let copy = copy_artifact("forecaster")?;
    tamper_parity(copy.path(), "forecast")?;
    let error = Server::start(copy.path().to_path_buf(), ModelKind::Forecaster, options()?)
        .await
        .err();
    ensure!(
        matches!(error, Some(ModelError::ParityMismatch { .. })),
        "got {error:?}"
    );
    let unchecked = ServingOptions {
        verify_parity: false,
        ..options()?
    };
    let server = Server::start(copy.path().to_path_buf(), ModelKind::Forecaster, unchecked).await?;
    server.close().await;
    Ok(())
}

#[cfg(not(feature = "cuda"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuda_requested_without_cuda_fails_or_serves_on_the_cpu() -> Result<()> {
    let name = "detector-cuda-test";
    let copy = renamed_copy(ModelKind::Detector, name)?;
    let cuda = ServingOptions {
        load: meshwatch_model::LoadOptions {
            execution_provider: ExecutionProvider::Cuda {
                device_id: 0,
                memory_limit_bytes: None,
            },
            ..options()?.load
        },
        ..options()?
    };
    let error = Server::start(copy.path().to_path_buf(), ModelKind::Detector, cuda.clone())
        .await
        .err();
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

    let fallback = ServingOptions {
        load: meshwatch_model::LoadOptions {
            fallback_to_cpu: true,
            ..cuda.load
        },
        ..cuda
    };
    let server = Server::start(copy.path().to_path_buf(), ModelKind::Detector, fallback).await?;
    let info = server.info();
    ensure!(info.execution_provider == ExecutionProvider::Cpu);
    let input = inputs(ModelKind::Detector, 1, 4, 3, 0);
    let want = meshwatch_model::Model::load(
        &artifact("detector"),
        &meshwatch_model::LoadOptions {
            kind: Some(ModelKind::Detector),
            ..options()?.load
        },
    )?
    .run(&input)?;
    check(&server.infer(input).await?, &want, &info.version)?;
    let text = meshwatch_runtime::metrics::encode_text();
    let series = format!(
        r#"meshwatch_model_info{{model="{name}",provider="cpu",version="{}"}} 1"#,
        info.version
    );
    ensure!(text.contains(&series), "{series} not in {text}");
    server.close().await;
    Ok(())
}

/// The committed artifacts' parity vectors, computed through the serving path (queue, batching
/// worker, session pool), match within the manifest's tolerance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_vectors_reproduce_through_the_server() -> Result<()> {
    for kind in [ModelKind::Detector, ModelKind::Forecaster] {
        let dir = artifact(kind.as_str());
        let server = Server::start(dir.clone(), kind, options()?).await?;
        let model = server.model();
        let handle = tokio::runtime::Handle::current();
        let report = tokio::task::block_in_place(|| {
            meshwatch_model::parity::run_cases_with(&model, &dir, |inputs| {
                handle
                    .block_on(server.infer(inputs))
                    .map(|inferred| inferred.outputs)
                    .map_err(|e| match e {
                        ServeError::Model(e) | ServeError::Busy(e) => e,
                        other => ModelError::Ort {
                            context: "serving",
                            message: other.to_string(),
                        },
                    })
            })
        })?;
        ensure!(
            report.cases.len() >= 2,
            "{kind}: {} cases",
            report.cases.len()
        );
        report
            .check()
            .with_context(|| format!("{kind} through the server"))?;
        server.close().await;
    }
    Ok(())
}
