//! `meshwatch replay` into an in-process ingest that publishes to a real NATS JetStream: the
//! snapshots read back from the stream must equal, byte for byte in their JSON form, those
//! `meshwatch snapshot` builds offline from the same file — over gRPC as recorded, and over HTTP
//! rebased to now (every window shifted by the whole minutes the summary reports). And an
//! overloaded endpoint: refusals are retried, honouring Retry-After, then counted as failed,
//! and the command exits with an error.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "../../ingest/tests/support/ingest_config.rs"]
mod ingest_config;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ingest_config::nats_config;
use meshwatch_cli::input::InputFormat;
use meshwatch_cli::replay::schedule::Rebase;
use meshwatch_cli::replay::send::Protocol;
use meshwatch_cli::replay::{ReplayArgs, replay};
use meshwatch_cli::snapshot::SnapshotArgs;
use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::snapshot::json::SnapshotJson;
use meshwatch_ingest::IngestConfig;
use meshwatch_runtime::{Readiness, Shutdown};
use meshwatch_testkit::{TestNats, delete_streams, read_all_snapshots, unique_namespace};

/// One minute of Online Boutique, the onset of a CPU fault (24 requests, 4,614 spans).
const FIXTURE: &str = "onlineboutique-2022-08-22-0354-frontend-cpu-contention";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/nezha")
        .join(format!("{FIXTURE}.otlp.jsonl"))
}

/// The ingest with the windows of `meshwatch snapshot`'s defaults (60 s, 10 s lateness).
fn ingest_config(nats_url: &str, namespace: &str) -> IngestConfig {
    let mut c = nats_config(nats_url, namespace, "replay-test");
    c.graph.window = Duration::from_secs(60);
    c.graph.allowed_lateness = Duration::from_secs(10);
    c.graph.idle_flush = Duration::from_secs(1);
    c
}

fn args(endpoint: String, protocol: Protocol) -> ReplayArgs {
    ReplayArgs {
        input: fixture(),
        format: InputFormat::OtlpJson,
        endpoint,
        protocol,
        speed: 600.0,
        rebase_time: None,
        rebase_align: Duration::from_secs(60),
        max_retry_time: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        progress: Duration::ZERO,
        graph_keys: Vec::new(),
    }
}

/// `meshwatch snapshot` on the fixture: its JSON lines.
fn offline_lines() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("snapshots.jsonl");
    let summary = meshwatch_cli::snapshot::run(&SnapshotArgs {
        input: fixture(),
        format: InputFormat::OtlpJson,
        window: Duration::from_secs(60),
        lateness: Duration::from_secs(10),
        output: output.clone(),
        graph_keys: Vec::new(),
        service_keys: Vec::new(),
        default_graph: "default".to_owned(),
        summary: false,
        metrics: Vec::new(),
        metrics_format: InputFormat::OtlpJson,
    })
    .unwrap();
    assert_eq!(summary.spans_accepted, 4_614);
    std::fs::read_to_string(output)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Received snapshots as `meshwatch snapshot` writes them, windows moved by `-offset_ms`.
fn as_lines(received: &[GraphSnapshot], offset_ms: i64) -> Vec<String> {
    received
        .iter()
        .map(|s| {
            let mut json = SnapshotJson::from(s);
            json.window_start_ms -= offset_ms;
            serde_json::to_string(&json).unwrap()
        })
        .collect()
}

/// Replays into a fresh ingest, shuts it down (which flushes every open window) and returns
/// the replay summary and the snapshots the stream holds.
async fn replay_into_ingest(
    protocol: Protocol,
    rebase: Option<Rebase>,
) -> (meshwatch_cli::replay::ReplaySummary, Vec<GraphSnapshot>) {
    let nats = TestNats::get().await.unwrap();
    let namespace = unique_namespace("replay");
    let config = ingest_config(&nats.url(), &namespace);
    let shutdown = Shutdown::new(Readiness::new());
    let running = meshwatch_ingest::run(config, &shutdown).await.unwrap();
    let endpoint = match protocol {
        Protocol::Grpc => format!("http://{}", running.grpc.unwrap()),
        Protocol::Http => format!("http://{}", running.http.unwrap()),
    };
    let mut a = args(endpoint, protocol);
    a.rebase_time = rebase;
    let summary = replay(&a).await.unwrap();
    shutdown.trigger("replay over");
    let report = shutdown.wait(Duration::from_secs(10)).await;
    assert!(report.is_clean(), "{report:?}");
    let received = read_all_snapshots(&nats.url(), &namespace, Duration::from_secs(30))
        .await
        .unwrap();
    delete_streams(&nats.url(), &namespace).await;
    (summary, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_replay_gives_the_offline_snapshots() {
    let (summary, received) = replay_into_ingest(Protocol::Grpc, None).await;
    assert_eq!((summary.requests, summary.spans), (24, 4_614));
    assert_eq!(
        (summary.failed, summary.rejected_spans, summary.refused),
        (0, 0, 0),
        "{summary:?}"
    );
    assert_eq!(summary.offset_ns, 0);
    assert_eq!(as_lines(&received, 0), offline_lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_replay_rebased_to_now_gives_the_same_windows_shifted() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let (summary, received) = replay_into_ingest(Protocol::Http, Some(Rebase::Now)).await;
    assert_eq!(
        (summary.requests, summary.spans, summary.failed),
        (24, 4_614, 0)
    );
    assert_eq!(
        summary.rejected_spans, 0,
        "nothing in the future, nothing late"
    );
    // Whole minutes, and the data now ends within the minute before the replay ended.
    let offset = summary.offset_ns;
    assert_eq!(offset % 60_000_000_000, 0);
    let last = summary.last_data_ns.unwrap() as i64 + offset;
    assert!(last <= before + summary.elapsed.as_nanos() as i64 + 1_000_000_000);
    assert!(last > before - 61_000_000_000, "{last} vs {before}");
    let offset_ms = offset / 1_000_000;
    assert_eq!(as_lines(&received, offset_ms), offline_lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_retried_then_failed_and_the_command_says_so() {
    // NATS unreachable and room for one snapshot; 1 s windows without lateness: every
    // request closes a window, and the ingest soon refuses with Retry-After: 1.
    let mut c = ingest_config("nats://127.0.0.1:1", "unused");
    c.nats.namespace = None;
    c.buffer.max_snapshots = 1;
    c.graph.window = Duration::from_secs(1);
    c.graph.allowed_lateness = Duration::ZERO;
    c.otlp.retry_after = Duration::from_secs(1);
    // Snapshots cannot be published: the drain gives up at the grace.
    c.shutdown.grace = Duration::from_secs(2);
    let shutdown = Shutdown::new(Readiness::new());
    let running = meshwatch_ingest::run(c, &shutdown).await.unwrap();
    // The first 5 requests of the fixture: each refused one waits out the retry budget.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("five.otlp.jsonl");
    let text = std::fs::read_to_string(fixture()).unwrap();
    let five: Vec<&str> = text.lines().take(5).collect();
    std::fs::write(&input, five.join("\n")).unwrap();
    let mut a = args(format!("http://{}", running.grpc.unwrap()), Protocol::Grpc);
    a.input = input.clone();
    a.speed = 0.0;
    // One retry after the 1 s the ingest asks for, then the request has failed.
    a.max_retry_time = Duration::from_millis(1_500);
    let summary = replay(&a).await.unwrap();
    assert!(summary.refused >= 2, "{summary:?}");
    assert!(summary.retries >= 1, "{summary:?}");
    assert!(summary.failed >= 1, "{summary:?}");
    assert_eq!(summary.requests + summary.failed, 5);
    let failure = summary.first_failure.as_deref().unwrap();
    assert!(failure.contains("Unavailable"), "{failure}");
    assert!(failure.contains("gave up"), "{failure}");

    // The command: a summary on stderr, and a failure exit.
    let http = format!("http://{}", running.http.unwrap());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meshwatch"))
            .args(["replay", "--protocol", "http", "--speed", "0"])
            .args(["--max-retry-time", "1200ms", "--endpoint", &http])
            .arg("--input")
            .arg(input)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("replayed "), "{stderr}");
    assert!(
        stderr.contains("requests could not be delivered"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 503"), "{stderr}");
    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(2)).await;
}
