//! The `meshwatch-detector` binary killed (SIGKILL) mid-stream and started again, against a real
//! `nats-server`: the restarted process rebuilds each graph's history from the stream, and
//! every window is scored exactly once — none twice, none skipped.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meshwatch_bus::MessageKind;
use meshwatch_proto::v1;
use meshwatch_testkit::models::{artifact, ort_library};
use meshwatch_testkit::results::Bus;
use meshwatch_testkit::{TestNats, unique_namespace};
use prost::Message as _;

const EPOCH: i64 = 1_764_000_000_000;
const WINDOW: u32 = 10_000;

fn start(bus: &Bus, log: &std::path::Path) -> anyhow::Result<Child> {
    let nats = &bus.nats;
    let set = |kv: String| ["--set".to_owned(), kv];
    let mut args: Vec<String> = Vec::new();
    for kv in [
        format!("model.dir={:?}", artifact("detector").display().to_string()),
        format!("model.library={:?}", ort_library()?.display().to_string()),
        "model.reload_interval=\"0s\"".to_owned(),
        format!("nats.url={:?}", nats.url),
        format!(
            "nats.namespace={:?}",
            nats.namespace.clone().unwrap_or_default()
        ),
        "grpc.enabled=false".to_owned(),
        "admin.listen=\"127.0.0.1:0\"".to_owned(),
        "stream.fetch_expires=\"200ms\"".to_owned(),
        // One message per fetch: the kill lands between windows of one graph.
        "stream.fetch_batch=1".to_owned(),
        // The message in hand at the kill comes back after this, behind later windows.
        "stream.ack_wait=\"2s\"".to_owned(),
    ] {
        args.extend(set(kv));
    }
    let log = std::fs::File::create(log)?;
    Ok(Command::new(env!("CARGO_BIN_EXE_meshwatch-detector"))
        .args(&args)
        .env_remove("ORT_DYLIB_PATH")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

fn reports(published: &[meshwatch_testkit::results::Published]) -> Vec<v1::AnomalyReport> {
    published
        .iter()
        .map(|p| v1::AnomalyReport::decode(p.payload.clone()).expect("an AnomalyReport"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_scores_every_window_exactly_once() -> anyhow::Result<()> {
    let nats = TestNats::get().await?;
    let bus = Bus::connect(&nats.url(), &unique_namespace("detkill")).await?;
    let logs = tempfile::tempdir()?;
    let mut detector = start(&bus, &logs.path().join("first.log"))?;

    bus.publish_windows("shop", EPOCH, WINDOW, 0..6, 4, "a")
        .await?;
    let first = bus
        .results(
            MessageKind::Score,
            6,
            Duration::from_secs(60),
            Duration::ZERO,
        )
        .await?;
    assert!(first.len() >= 6);
    // More windows, and the kill while they are being scored.
    bus.publish_windows("shop", EPOCH, WINDOW, 6..14, 4, "a")
        .await?;
    bus.results(
        MessageKind::Score,
        8,
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .await?;
    detector.kill()?;
    detector.wait()?;
    let at_kill = bus
        .results(
            MessageKind::Score,
            0,
            Duration::from_secs(5),
            Duration::from_millis(300),
        )
        .await?
        .len();

    bus.publish_windows("shop", EPOCH, WINDOW, 14..16, 4, "a")
        .await?;
    let mut detector = start(&bus, &logs.path().join("second.log"))?;
    let all = bus
        .results(
            MessageKind::Score,
            16,
            Duration::from_secs(90),
            Duration::from_secs(2),
        )
        .await;
    detector.kill()?;
    detector.wait()?;
    let all = all.map_err(|e| {
        let log = std::fs::read_to_string(logs.path().join("second.log")).unwrap_or_default();
        anyhow::anyhow!("{e}\nsecond run's log:\n{log}")
    })?;
    let reports = reports(&all);
    let mut per_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for r in &reports {
        let k = (r.window_start_ms - EPOCH) / i64::from(WINDOW);
        per_window.entry(k).or_default().push(r.observed_steps);
    }
    assert_eq!(
        per_window.keys().copied().collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>(),
        "killed after {at_kill} reports: {per_window:?}"
    );
    for (k, observed) in &per_window {
        assert_eq!(
            observed.len(),
            1,
            "window {k} scored {} times",
            observed.len()
        );
        // Every window saw its whole history, also those scored after the restart.
        let want = u32::try_from((k + 1).min(12))?;
        assert_eq!(observed[0], want, "window {k}: {per_window:?}");
    }
    Ok(())
}
