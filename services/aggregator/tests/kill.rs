//! The `meshwatch-aggregator` binary killed (SIGKILL) mid-stream, while it holds batches it has
//! not flushed, and started again, against a real `nats-server` and ClickHouse: the messages it
//! held come back (JetStream redelivers what was never acked) and every window is stored
//! exactly once — none lost, none twice.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use meshwatch_bus::subjects::consumers::AGGREGATOR_RESULTS;
use meshwatch_testkit::clickhouse;
use meshwatch_testkit::process::http_status;
use meshwatch_testkit::results::Bus;
use meshwatch_testkit::{TestNats, free_addr, unique_namespace};
use support::{HORIZONS, NODES, SERVICES, eventually, expect_eq, number, publish_windows};

/// Windows stored before the kill, published around it, and after the restart.
const BEFORE: std::ops::Range<i64> = 0..15;
const AROUND: std::ops::Range<i64> = 15..35;
const AFTER: std::ops::Range<i64> = 35..50;
const WINDOWS: u64 = 50;

/// Batches are held this long before a flush, so a kill lands on unflushed rows.
const MAX_DELAY: &str = "3s";

/// The tables, their dedup keys (ORDER BY) and the rows of `windows` windows.
fn tables(windows: u64) -> [(&'static str, &'static str, u64); 4] {
    let services = SERVICES as u64;
    [
        (
            "graph_nodes",
            "graph, window_start, service",
            windows * NODES as u64,
        ),
        (
            "graph_edges",
            "graph, window_start, caller, callee",
            windows * services,
        ),
        (
            "anomaly_scores",
            "graph, service, window_start, model_version",
            windows * NODES as u64,
        ),
        (
            "forecasts",
            "graph, service, metric, target_time, horizon, model_version",
            windows * services * u64::from(HORIZONS),
        ),
    ]
}

/// Starts the binary on `bus`'s namespace and the ClickHouse database `db`, its admin endpoint
/// on `admin`, its log in `log`.
fn start(bus: &Bus, url: &str, db: &str, admin: SocketAddr, log: &Path) -> anyhow::Result<Child> {
    let namespace = bus.nats.namespace.clone().unwrap_or_default();
    let mut args: Vec<String> = Vec::new();
    for kv in [
        format!("nats.url={}", bus.nats.url),
        format!("nats.namespace={namespace}"),
        "sink.kind=clickhouse".to_owned(),
        format!("sink.clickhouse.url={url}"),
        format!("sink.clickhouse.database={db}"),
        format!("admin.listen={admin}"),
        format!("batch.max_delay={MAX_DELAY}"),
        "thresholds.calibration_windows=20".to_owned(),
        "shutdown.grace=10s".to_owned(),
        // Named although they are the defaults: a `snapshots.*` setting without
        // `snapshots.consumer` gets `ConsumerConfig::default()`'s name, `aggregator-results`.
        "snapshots.consumer=aggregator-snapshots".to_owned(),
        "results.consumer=aggregator-results".to_owned(),
        // What the killed process held comes back after this.
        "snapshots.ack_wait=4s".to_owned(),
        "results.ack_wait=4s".to_owned(),
        "snapshots.fetch_expires=200ms".to_owned(),
        "results.fetch_expires=200ms".to_owned(),
        "snapshots.max_backoff=1s".to_owned(),
        "results.max_backoff=1s".to_owned(),
    ] {
        args.push("--set".to_owned());
        args.push(kv);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(env!("CARGO_BIN_EXE_meshwatch-aggregator"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start meshwatch-aggregator")
}

/// Waits until the process answers `/readyz` with 200; fails at once when it exits.
async fn wait_ready(child: &mut Child, admin: SocketAddr, log: &Path) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "meshwatch-aggregator exited with {status}: {}",
                meshwatch_testkit::process::log_tail(log)
            );
        }
        if matches!(http_status(admin, "/readyz").await, Ok(200)) {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "meshwatch-aggregator not ready within 60s: {}",
            meshwatch_testkit::process::log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages of `consumer` on `stream` delivered and not acknowledged yet.
async fn ack_pending(bus: &Bus, stream: String, consumer: &str) -> anyhow::Result<u64> {
    let info = support::consumer_info(bus, stream, consumer).await?;
    Ok(info.num_ack_pending as u64)
}

/// Waits until every table holds (with FINAL) the rows of `windows` windows.
async fn wait_for_windows(url: &str, db: &str, windows: u64) -> anyhow::Result<()> {
    for (table, _, want) in tables(windows) {
        eventually(
            &format!("{table} holds {want} rows"),
            Duration::from_secs(60),
            || async move {
                let n = number(url, &format!("SELECT count() FROM {db}.{table} FINAL")).await?;
                ensure!(n <= want, "{n} rows, more than {want}");
                Ok(n == want)
            },
        )
        .await?;
    }
    Ok(())
}

/// Every key is stored once: after FINAL no key has more than one row and the total is what
/// the windows give; without FINAL, the distinct keys are the same (no stray key), and every
/// window has every node scored.
async fn check_exactly_once(url: &str, db: &str, windows: u64) -> anyhow::Result<()> {
    for (table, key, want) in tables(windows) {
        let total = number(url, &format!("SELECT count() FROM {db}.{table} FINAL")).await?;
        expect_eq(&format!("{table} rows with FINAL"), total, want)?;
        let repeated = number(
            url,
            &format!(
                "SELECT count() FROM (SELECT {key}, count() AS n FROM {db}.{table} FINAL \
                 GROUP BY {key} HAVING n != 1)"
            ),
        )
        .await?;
        expect_eq(&format!("{table} keys stored more than once"), repeated, 0)?;
        let distinct = number(url, &format!("SELECT uniqExact({key}) FROM {db}.{table}")).await?;
        expect_eq(&format!("{table} distinct keys"), distinct, want)?;
    }
    let complete = number(
        url,
        &format!(
            "SELECT count() FROM (SELECT window_start, count() AS n FROM {db}.anomaly_scores \
             FINAL GROUP BY window_start HAVING n = {NODES})"
        ),
    )
    .await?;
    expect_eq("windows with every node scored", complete, windows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_unflushed_batches_stores_every_window_exactly_once() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("aggkill")).await?;
    let url = clickhouse::url().await?;
    let db = clickhouse::unique_database("aggkill");
    let logs = tempfile::tempdir()?;
    let (first_log, second_log) = (
        logs.path().join("first.log"),
        logs.path().join("second.log"),
    );
    let admin = free_addr()?;

    let mut first = start(&bus, &url, &db, admin, &first_log)?;
    wait_ready(&mut first, admin, &first_log).await?;
    publish_windows(&bus, BEFORE).await?;
    wait_for_windows(&url, &db, BEFORE.end as u64).await?;

    // More windows; the kill comes while the aggregator holds them in batches that wait for
    // their flush deadline (delivered, not acked).
    publish_windows(&bus, AROUND).await?;
    let (bus_ref, results_stream) = (&bus, bus.names.results_stream());
    let stream_ref = &results_stream;
    eventually(
        "the aggregator holds unflushed results",
        Duration::from_secs(10),
        || async move {
            Ok(ack_pending(bus_ref, stream_ref.clone(), AGGREGATOR_RESULTS).await? > 0)
        },
    )
    .await?;
    let held = ack_pending(&bus, results_stream.clone(), AGGREGATOR_RESULTS).await?;
    first.kill()?;
    first.wait()?;
    let stored_at_kill = number(
        &url,
        &format!("SELECT uniqExact(window_start) FROM {db}.anomaly_scores"),
    )
    .await?;
    eprintln!(
        "killed holding {held} unacked result messages, with {stored_at_kill} of {} windows' \
         scores stored",
        AROUND.end
    );
    ensure!(
        stored_at_kill < AROUND.end as u64,
        "every window was stored before the kill ({stored_at_kill}): the kill tested nothing"
    );

    let mut second = start(&bus, &url, &db, admin, &second_log)?;
    let result = async {
        wait_ready(&mut second, admin, &second_log).await?;
        publish_windows(&bus, AFTER).await?;
        wait_for_windows(&url, &db, WINDOWS).await?;
        check_exactly_once(&url, &db, WINDOWS).await?;
        // Everything is acked once stored: nothing comes back after the test.
        let (bus_ref, stream_ref) = (&bus, &results_stream);
        eventually(
            "every result acked",
            Duration::from_secs(30),
            || async move {
                Ok(ack_pending(bus_ref, stream_ref.clone(), AGGREGATOR_RESULTS).await? == 0)
            },
        )
        .await?;
        // A clean stop: SIGTERM drains and exits 0.
        let status = Command::new("kill")
            .args(["-TERM", &second.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = second.try_wait()? {
                break exit;
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "no exit within 20s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(exit.success(), "exit after SIGTERM: {exit}");
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        let _ = second.kill();
        let _ = second.wait();
    }
    result.with_context(|| {
        format!(
            "first run's log:\n{}\nsecond run's log:\n{}",
            meshwatch_testkit::process::log_tail(&first_log),
            meshwatch_testkit::process::log_tail(&second_log)
        )
    })?;
    clickhouse::drop_database(&url, &db).await;
    meshwatch_testkit::delete_streams(&nats.url(), bus.nats.namespace.as_deref().unwrap_or(""))
        .await;
    Ok(())
}
