use std::convert::Infallible;

use super::*;

const GRACE: Duration = Duration::from_secs(25);

#[tokio::test(start_paused = true)]
async fn report_names_the_task_that_ignores_cancellation() {
    let shutdown = Shutdown::new(Readiness::new());
    let token = shutdown.token();
    shutdown.spawn("polite", async move {
        token.cancelled().await;
        Ok::<_, Infallible>(())
    });
    shutdown.spawn("stubborn", async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, Infallible>(())
    });
    let drained = shutdown.drained_token();
    let readiness = shutdown.readiness().clone();

    shutdown.trigger("test");
    assert!(readiness.is_shutting_down());
    assert!(!drained.is_cancelled());
    let started = Instant::now();
    let report = shutdown.wait(GRACE).await;

    assert_eq!(report.unfinished, ["stubborn"]);
    assert!(report.failed.is_empty());
    assert_eq!(report.exit_code(), 1);
    let waited = started.elapsed();
    assert!(
        waited >= GRACE && waited < GRACE + Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(drained.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn clean_drain_reports_nothing_and_takes_the_tasks_time() {
    let shutdown = Shutdown::new(Readiness::new());
    let token = shutdown.child_token();
    shutdown.spawn("flusher", async move {
        token.cancelled().await;
        tokio::time::sleep(Duration::from_secs(3)).await; // flush
        Ok::<_, Infallible>(())
    });
    shutdown.trigger("test");
    let report = shutdown.wait(GRACE).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.exit_code(), 0);
    assert!(report.drain_time >= Duration::from_secs(3) && report.drain_time < GRACE);
}

#[tokio::test(start_paused = true)]
async fn failed_task_starts_shutdown_and_is_reported() {
    let shutdown = Shutdown::new(Readiness::new());
    let token = shutdown.token();
    shutdown.spawn("worker", async move {
        token.cancelled().await;
        Ok::<_, Infallible>(())
    });
    shutdown.spawn("server", async { Err::<(), _>("port vanished") });
    // No trigger: the failure starts shutdown by itself.
    let report = tokio::time::timeout(GRACE, shutdown.clone().wait(GRACE))
        .await
        .expect("a failed task starts shutdown, so wait returns before the outer timeout");
    assert_eq!(report.failed, ["server"]);
    assert!(report.unfinished.is_empty());
    assert!(shutdown.readiness().is_shutting_down());
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(start_paused = true)]
#[allow(clippy::panic, reason = "the test needs a task that panics")]
async fn panicking_task_is_reported_as_failed() {
    let shutdown = Shutdown::new(Readiness::new());
    shutdown.spawn("boom", async {
        if std::hint::black_box(true) {
            std::panic::panic_any("boom");
        }
        Ok::<_, Infallible>(())
    });
    let report = shutdown.wait(GRACE).await;
    assert_eq!(report.failed, ["boom"]);
}

#[tokio::test(start_paused = true)]
async fn wait_returns_when_every_task_ends_by_itself() {
    let shutdown = Shutdown::new(Readiness::new());
    shutdown.spawn("one-shot", async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(())
    });
    let report = shutdown.clone().wait(GRACE).await;
    assert!(report.is_clean(), "{report:?}");
    assert!(shutdown.is_shutting_down());
}

#[cfg(unix)]
#[tokio::test]
async fn first_signal_starts_shutdown() -> anyhow::Result<()> {
    let shutdown = Shutdown::new(Readiness::new());
    shutdown.listen_for_signals()?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()?;
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), shutdown.cancelled()).await?;
    assert!(shutdown.readiness().is_shutting_down());
    Ok(())
}

#[test]
fn signal_listener_without_runtime_is_an_error() {
    let shutdown = Shutdown::new(Readiness::new());
    assert!(matches!(
        shutdown.listen_for_signals(),
        Err(ShutdownError::NoRuntime)
    ));
}
