//! SIGTERM flushes the open window to NATS before exit (ARCHITECTURE.md §8): the real
//! `meshwatch-ingest` binary, configured through `MESHWATCH_` environment variables, publishing
//! to a real NATS JetStream.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{kv, now_ns, request, span};
use meshwatch_graph::snapshot::{ConnectionType, NodeKind};
use meshwatch_testkit::{TestNats, Totals, describe, free_addrs, read_all_snapshots};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const GRAPH: &str = "sigterm-cluster";
const TRACES: u8 = 5;
const GRACE: Duration = Duration::from_secs(10);

/// The child process; killed if the test ends before it exited.
struct Ingest {
    child: Child,
    log: std::path::PathBuf,
}

impl Ingest {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `limit` for the process to exit.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_ingest(env: &[(&str, String)], log: &Path) -> Ingest {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meshwatch-ingest"));
    // Only this test's settings: a MESHWATCH_<SECTION>__<KEY> variable of the environment the
    // tests run in would change the ingest's configuration.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MESHWATCH_") {
            command.env_remove(name);
        }
    }
    let file = std::fs::File::create(log).expect("log file");
    let child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .expect("meshwatch-ingest starts");
    Ingest {
        child,
        log: log.to_owned(),
    }
}

/// Polls `GET /readyz` until it answers 200.
async fn wait_ready(ingest: &mut Ingest, admin: SocketAddr) {
    let client = reqwest::Client::new();
    let url = format!("http://{admin}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = ingest.child.try_wait().expect("child status") {
            panic!("meshwatch-ingest exited with {status}:\n{}", ingest.log());
        }
        if let Ok(resp) = client.get(&url).send().await
            && resp.status().as_u16() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready within 30 s:\n{}",
            ingest.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One service's spans in the test's graph.
fn service_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    let mut req = request(Some(service), spans);
    if let Some(resource) = req.resource_spans[0].resource.as_mut() {
        resource.attributes.push(kv("k8s.cluster.name", GRAPH));
    }
    req
}

async fn post(url: &str, req: &ExportTraceServiceRequest) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.expect("body");
    let decoded = ExportTraceServiceResponse::decode(&body[..]).expect("an OTLP response");
    assert_eq!(decoded.partial_success, None, "every span accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_open_window_to_nats_and_exits_0() {
    let nats = TestNats::get().await.expect("a NATS server");
    let namespace = meshwatch_testkit::unique_namespace("sigterm");
    let [admin, grpc, http] = free_addrs(3).expect("free ports")[..] else {
        panic!("three addresses");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ingest = spawn_ingest(
        &[
            ("MESHWATCH_NATS__URL", nats.url()),
            ("MESHWATCH_NATS__NAMESPACE", namespace.clone()),
            ("MESHWATCH_ADMIN__LISTEN", admin.to_string()),
            ("MESHWATCH_OTLP__GRPC_LISTEN", grpc.to_string()),
            ("MESHWATCH_OTLP__HTTP_LISTEN", http.to_string()),
            // A long window (and idle flush): only the shutdown can close it during the test.
            ("MESHWATCH_GRAPH__WINDOW", "60s".to_owned()),
            ("MESHWATCH_GRAPH__IDLE_FLUSH", "10m".to_owned()),
            ("MESHWATCH_SHUTDOWN__GRACE", format!("{}s", GRACE.as_secs())),
            ("MESHWATCH_GRAPH__PRODUCER", "sigterm-test".to_owned()),
        ],
        &dir.path().join("ingest.log"),
    );
    wait_ready(&mut ingest, admin).await;

    // TRACES traces of frontend SERVER (root) -> frontend CLIENT -> checkout SERVER.
    let now = now_ns();
    let ms = 1_000_000;
    let (mut frontend, mut checkout) = (Vec::new(), Vec::new());
    for t in 1..=TRACES {
        let root = span(t, 1, now - 60 * ms, now - 10 * ms);
        let mut client = span(t, 2, now - 55 * ms, now - 15 * ms);
        client.kind = 3;
        client.parent_span_id = root.span_id.clone();
        let mut server = span(t, 3, now - 50 * ms, now - 20 * ms);
        server.parent_span_id = client.span_id.clone();
        frontend.extend([root, client]);
        checkout.push(server);
    }
    let url = format!("http://{http}/v1/traces");
    post(&url, &service_request("frontend", frontend)).await;
    post(&url, &service_request("checkout", checkout)).await;

    // The window is open: nothing published yet.
    let before = read_all_snapshots(&nats.url(), &namespace, Duration::from_secs(10))
        .await
        .expect("the ingest created its stream");
    assert!(before.is_empty(), "{}", describe(&before));

    let pid = ingest.child.id().to_string();
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = ingest
        .wait_exit(GRACE + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no exit within the grace period:\n{}", ingest.log()));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "exit status:\n{}", ingest.log());
    assert!(
        took < GRACE,
        "exit took {took:?}, grace {GRACE:?}:\n{}",
        ingest.log()
    );

    // The open window's snapshot is in JetStream, with every span sent.
    let after = read_all_snapshots(&nats.url(), &namespace, Duration::from_secs(10))
        .await
        .expect("snapshots");
    assert_eq!(after.len(), 1, "{}", describe(&after));
    let snapshot = &after[0];
    assert_eq!(snapshot.graph, GRAPH);
    assert_eq!(snapshot.window_ms, 60_000);
    let n = u64::from(TRACES);
    assert_eq!(snapshot.stats.spans, 3 * n, "{}", describe(&after));
    let totals = Totals::of(&after, GRAPH).expect("totals");
    assert_eq!(
        (
            totals.stats.paired,
            totals.stats.unpaired,
            totals.stats.late,
            totals.stats.rejected,
            totals.stats.dropped
        ),
        (3 * n, 0, 0, 0, 0),
        "{:?}",
        totals.stats
    );
    let frontend = totals.node("frontend").expect("frontend");
    assert_eq!(
        (frontend.kind, frontend.requests, frontend.out_calls),
        (NodeKind::Service, n, n)
    );
    let checkout = totals.node("checkout").expect("checkout");
    assert_eq!((checkout.kind, checkout.requests), (NodeKind::Service, n));
    assert_eq!(
        totals.edges.keys().collect::<Vec<_>>(),
        [
            &("frontend".to_owned(), "checkout".to_owned()),
            &("user".to_owned(), "frontend".to_owned())
        ]
    );
    let call = totals.edge("frontend", "checkout").expect("edge");
    assert_eq!(
        (
            call.connection_type,
            call.calls,
            call.paired_calls,
            call.errors
        ),
        (ConnectionType::Direct, n, n, 0)
    );
    let entry = totals.edge("user", "frontend").expect("edge");
    assert_eq!(
        (entry.connection_type, entry.calls),
        (ConnectionType::Entry, n)
    );
    let log = ingest.log();
    assert!(log.contains("every snapshot published"), "{log}");
    meshwatch_testkit::delete_streams(&nats.url(), &namespace).await;
}
