//! The Zipkin-compatible receiver (`POST /api/v2/spans` on the OTLP/HTTP port) with the real
//! Zipkin traces of `tests/fixtures/zipkin` (OpenZipkin test data, Apache-2.0):
//! - every kind of input gets Zipkin's answer: 202 for span lists (also empty, gzipped, or
//!   without a content type), 400 for malformed bodies, 413, 415, and 503 with Retry-After
//!   when overloaded (NATS unreachable, snapshots stay buffered);
//! - with a real NATS JetStream, the snapshots the ingest publishes for the fixtures equal, one
//!   for one, those of the graph code run offline over the same decoded bodies, and hold the
//!   edges derived by hand for yelp.json.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{config, gzip, start};
use meshwatch_graph::otlp::owned::views_from_owned;
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use meshwatch_graph::zipkin::decode_to_otlp;
use meshwatch_graph::{Aggregator, GraphSnapshot};
use meshwatch_runtime::{Readiness, Shutdown};
use meshwatch_testkit::{SnapshotReader, TestNats, Totals, delete_streams, unique_namespace};

/// The fixtures, oldest first (so that no file's spans are late behind the one before).
const FIXTURES: [&str; 8] = [
    "skew.json",
    "messaging.json",
    "ascend.json",
    "messaging-kafka.json",
    "simple-db-p6.json",
    "smartthings-oauth-authorization.json",
    "envoy.json",
    "yelp.json",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/zipkin")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Zipkin {
    client: reqwest::Client,
    url: String,
}

impl Zipkin {
    fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("http://{addr}/api/v2/spans"),
        }
    }

    /// Posts `body`; returns status, Retry-After and the body text.
    async fn post(
        &self,
        content_type: Option<&str>,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Option<String>, String) {
        let mut req = self.client.post(&self.url).body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry, resp.text().await.unwrap())
    }
}

const JSON: Option<&str> = Some("application/json");

/// The tests of this file share one process-wide metrics registry: they take turns, so that a
/// test's counter deltas are its own.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `meshwatch_ingest_requests_total{protocol="zipkin",result=...}` now, by result.
async fn zipkin_requests(admin: std::net::SocketAddr) -> std::collections::BTreeMap<String, u64> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = "meshwatch_ingest_requests_total{protocol=\"zipkin\",result=\"";
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| {
            let (result, value) = rest.split_once("\"} ").unwrap();
            (result.to_owned(), value.trim().parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_gets_zipkins_answer() {
    let _serial = SERIAL.lock().await;
    let mut c = config();
    c.otlp.max_request_bytes = 64 * 1024;
    c.otlp.max_decompressed_bytes = 256 * 1024;
    // The SmartThings trace lasts 100 s, out of time order: all of it on time.
    c.graph.allowed_lateness = Duration::from_secs(120);
    let (running, shutdown) = start(c).await;
    let admin = running.admin;
    let before = zipkin_requests(admin).await;
    let zipkin = Zipkin::new(running.http.unwrap());

    // Real span lists, oldest first: 202 Accepted, empty body; also gzipped, with a charset, or
    // untyped, and the empty list.
    let (status, _, body) = zipkin.post(JSON, None, fixture("skew.json")).await;
    assert_eq!((status, body.as_str()), (202, ""));
    let gz = gzip(&fixture("messaging.json"));
    assert_eq!(zipkin.post(JSON, Some("gzip"), gz).await.0, 202);
    assert_eq!(zipkin.post(None, None, fixture("ascend.json")).await.0, 202);
    let big = fixture("smartthings-oauth-authorization.json");
    assert!(big.len() > 64 * 1024);
    // Compressed below the limit, the 109 kB trace is accepted.
    assert_eq!(zipkin.post(JSON, Some("gzip"), gzip(&big)).await.0, 202);
    let typed = Some("application/json; charset=utf-8");
    assert_eq!(zipkin.post(typed, None, fixture("yelp.json")).await.0, 202);
    assert_eq!(zipkin.post(JSON, None, b"[]".to_vec()).await.0, 202);
    // Invalid spans inside a valid list are counted, not refused (Zipkin has no partial answer).
    let partial = br#"[{"traceId":"zz","id":"1","timestamp":1,"duration":1}]"#.to_vec();
    assert_eq!(zipkin.post(JSON, None, partial).await.0, 202);

    // Malformed: 400 with a message that says why.
    for bad in [
        &b"{}"[..],
        b"[{\"traceId\": 5}]",
        b"[{\"timestamp\": \"soon\"}]",
        b"not json",
        b"[",
    ] {
        let (status, retry, text) = zipkin.post(JSON, None, bad.to_vec()).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(bad));
        assert!(retry.is_none());
        assert!(text.contains("invalid Zipkin v2 JSON span list"), "{text}");
    }
    let (status, _, text) = zipkin.post(JSON, None, Vec::new()).await;
    assert_eq!(status, 400);
    assert!(text.contains("empty body"), "{text}");
    let (status, _, text) = zipkin.post(JSON, Some("gzip"), b"not gzip".to_vec()).await;
    assert_eq!(status, 400);
    assert!(text.contains("gzip"), "{text}");

    // Other encodings and types: 415; too large: 413, before or after decompression.
    let proto = Some("application/x-protobuf");
    assert_eq!(zipkin.post(proto, None, vec![1, 2, 3]).await.0, 415);
    assert_eq!(zipkin.post(JSON, Some("br"), b"[]".to_vec()).await.0, 415);
    assert_eq!(zipkin.post(JSON, None, big).await.0, 413);
    let mut bomb = b"[".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 300 * 1024));
    bomb.push(b']');
    assert_eq!(zipkin.post(JSON, Some("gzip"), gzip(&bomb)).await.0, 413);

    // Counted under their own protocol label.
    let after = zipkin_requests(admin).await;
    let delta = |result: &str| {
        after.get(result).copied().unwrap_or(0) - before.get(result).copied().unwrap_or(0)
    };
    for (result, n) in [
        ("ok", 6),
        ("partial", 1),
        ("malformed", 6),
        ("bad_compression", 1),
        ("unsupported_media_type", 1),
        ("unsupported_encoding", 1),
        ("too_large", 2),
    ] {
        assert_eq!(delta(result), n, "{result}: {after:?}");
    }
    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_503_with_retry_after() {
    let _serial = SERIAL.lock().await;
    let mut c = config();
    c.buffer.max_snapshots = 1;
    c.graph.window = Duration::from_secs(1);
    c.graph.allowed_lateness = Duration::ZERO;
    let (running, shutdown) = start(c).await;
    let zipkin = Zipkin::new(running.http.unwrap());
    // Each file is years after the one before: it closes the previous window, and with NATS
    // down the one-snapshot buffer fills.
    let mut saw_503 = false;
    for name in FIXTURES {
        let (status, retry, _) = zipkin.post(JSON, None, fixture(name)).await;
        match status {
            202 => assert!(!saw_503, "accepted again while the buffer is still full"),
            503 => {
                saw_503 = true;
                assert_eq!(retry.as_deref(), Some("5"));
            }
            other => panic!("unexpected status {other} for {name}"),
        }
    }
    assert!(saw_503, "a full publish buffer must refuse new data");
    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(10)).await;
}

/// The graph code run offline over the same bodies, in the same order, with the same settings.
fn offline(config: &meshwatch_ingest::IngestConfig) -> Vec<GraphSnapshot> {
    let keys = ResourceKeys {
        graph_keys: config.graph.graph_keys.clone(),
        service_keys: config.graph.service_keys.clone(),
    };
    let mut aggregator = Aggregator::new(config.graph.aggregator(), "system-test").unwrap();
    let mut out = Vec::new();
    for name in FIXTURES {
        let request = decode_to_otlp(&fixture(name), &keys).unwrap();
        let mut views = DecodedTraces::default();
        views_from_owned(&request, &keys, &mut views);
        let report = aggregator.ingest(&views, None, &mut out);
        assert_eq!(report.not_accepted(), 0, "{name}: {}", report.message());
    }
    aggregator.flush_all(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_from_zipkin_equal_the_offline_graph() {
    let _serial = SERIAL.lock().await;
    let nats = TestNats::get().await.unwrap();
    let namespace = unique_namespace("zipkin");
    let mut c = config();
    c.nats.url = nats.url();
    c.nats.namespace = Some(namespace.clone());
    c.nats.connect_timeout = Duration::from_secs(2);
    // 60 s windows; the SmartThings trace lasts 100 s and is not in time order: 2 minutes of
    // allowed lateness keep all of it on time, as offline.
    c.graph.window = Duration::from_secs(60);
    c.graph.allowed_lateness = Duration::from_secs(120);
    c.graph.idle_flush = Duration::from_secs(1);
    c.pipeline.tick = Duration::from_millis(50);
    c.graph.producer = Some("system-test".to_owned());
    let expected = offline(&c);
    let spans: u64 = expected.iter().map(|s| s.stats.spans).sum();
    assert_eq!(spans, 16 + 4 + 8 + 28 + 5 + 175 + 1 + 4);

    let shutdown = Shutdown::new(Readiness::new());
    let running = meshwatch_ingest::run(c, &shutdown).await.unwrap();
    let zipkin = Zipkin::new(running.http.unwrap());
    let mut reader = SnapshotReader::open(&nats.url(), &namespace, Duration::from_secs(30))
        .await
        .unwrap();
    for name in FIXTURES {
        let (status, _, text) = zipkin.post(JSON, Some("gzip"), gzip(&fixture(name))).await;
        assert_eq!(status, 202, "{name}: {text}");
    }
    // The last windows close on the idle flush.
    let received = reader
        .wait_until(Duration::from_secs(30), |all| {
            all.iter().map(|s| s.stats.spans).sum::<u64>() >= spans
        })
        .await
        .unwrap()
        .to_vec();
    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(10)).await;
    delete_streams(&nats.url(), &namespace).await;

    let normalize = |snaps: &[GraphSnapshot]| -> Vec<GraphSnapshot> {
        snaps
            .iter()
            .map(|s| GraphSnapshot {
                producer: String::new(),
                ..s.clone()
            })
            .collect()
    };
    assert_eq!(normalize(&received), normalize(&expected));

    // yelp.json's edges, as derived by hand in shared/graph/tests/zipkin.rs.
    let yelp_window = 1_571_896_375_000 / 60_000 * 60_000;
    let yelp: Vec<GraphSnapshot> = received
        .into_iter()
        .filter(|s| s.window_start_ms == yelp_window)
        .collect();
    let totals = Totals::of(&yelp, "default").unwrap();
    for (caller, callee, calls) in [
        ("user", "routing", 1),
        ("unknown", "yelp_main/api_proxy", 1),
        ("unknown", "yelp-main", 1),
        ("yelp-main", "mobile_api", 1),
        ("mobile_api", "spectre", 1),
        ("mobile_api", "memcache", 2),
        ("yelp-main", "memcache", 3),
        ("yelp-main", "mysql", 2),
    ] {
        assert_eq!(
            totals.edge(caller, callee).unwrap().calls,
            calls,
            "{caller} -> {callee}"
        );
    }
}
