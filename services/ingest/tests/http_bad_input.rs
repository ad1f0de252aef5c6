//! OTLP/HTTP: what every kind of bad input gets (ARCHITECTURE.md §8), against a running ingest.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::{Http, config, gzip, kv, now_ns, request, span, start, stop_with_nats_down};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

const PROTO: &str = "application/x-protobuf";

async fn partial(resp: reqwest::Response) -> (u16, i64, String) {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    let decoded = ExportTraceServiceResponse::decode(&body[..]).expect("an OTLP response");
    let p = decoded.partial_success.unwrap_or_default();
    (status, p.rejected_spans, p.error_message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_a_clear_answer() {
    let mut c = config();
    c.otlp.max_request_bytes = 64 * 1024;
    c.otlp.max_decompressed_bytes = 1 << 20;
    let (running, shutdown) = start(c).await;
    let http = Http::new(running.http.expect("http enabled"), "/v1/traces");
    let now = now_ns();

    // A valid request: 200 and no partial success.
    let ok = request(
        Some("checkout"),
        vec![span(1, 1, now - 2_000_000, now - 1_000_000)],
    );
    let (status, rejected, _) = partial(http.post(PROTO, None, ok.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 0));

    // Empty body and a request without spans: 400 INVALID_ARGUMENT.
    let resp = http.post(PROTO, None, Vec::new()).await;
    assert_eq!(resp.status().as_u16(), 400);
    let no_spans = request(Some("checkout"), Vec::new());
    let resp = http.post(PROTO, None, no_spans.encode_to_vec()).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.expect("body").contains("no spans"));

    // Invalid id lengths and end before start: the valid span is accepted, the others are
    // counted in partial_success with a message.
    let mut bad_trace = span(2, 1, now - 2_000_000, now - 1_000_000);
    bad_trace.trace_id = vec![1; 5];
    let mut bad_span = span(2, 2, now - 2_000_000, now - 1_000_000);
    bad_span.span_id = vec![1; 3];
    let backwards = span(2, 3, now - 1_000_000, now - 2_000_000);
    let good = span(2, 4, now - 2_000_000, now - 1_000_000);
    let mixed = request(Some("checkout"), vec![bad_trace, bad_span, backwards, good]);
    let (status, rejected, message) =
        partial(http.post(PROTO, None, mixed.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 3));
    assert!(message.contains("trace_id must be 16 bytes"), "{message}");
    assert!(message.contains("span_id must be 8 bytes"), "{message}");
    assert!(message.contains("end must not precede start"), "{message}");

    // Missing service.name (spec default unknown_service) and huge attribute values: accepted.
    let mut huge = span(3, 1, now - 2_000_000, now - 1_000_000);
    huge.attributes = vec![
        kv("http.request.body", &"x".repeat(30_000)),
        kv("peer.service", &"p".repeat(10_000)),
    ];
    let unnamed = request(None, vec![huge]);
    let (status, rejected, _) =
        partial(http.post(PROTO, None, unnamed.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 0));

    // Far in the future: rejected; far behind the watermark: late, also reported.
    let future = span(4, 1, now + 3_600_000_000_000, now + 3_600_000_000_001);
    let ancient = span(4, 2, 946_684_800_000_000_000, 946_684_800_001_000_000);
    let times = request(Some("checkout"), vec![future, ancient]);
    let (status, rejected, message) =
        partial(http.post(PROTO, None, times.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 2));
    assert!(message.contains("future"), "{message}");
    assert!(
        message.contains("after their time window had closed"),
        "{message}"
    );

    // Truncated protobuf: 400, nothing accepted.
    let mut truncated = ok.encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    let resp = http.post(PROTO, None, truncated).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.expect("body").contains("malformed"));

    // JSON: valid is 200 `{}`; invalid UTF-8 is 400.
    let json = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
        now - 2_000_000,
        now - 1_000_000
    );
    let resp = http
        .post("application/json", None, json.clone().into_bytes())
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.expect("body"), "{}");
    let mut invalid_utf8 = json.into_bytes();
    invalid_utf8[30] = 0xff;
    let resp = http
        .post("application/json; charset=utf-8", None, invalid_utf8)
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.text().await.expect("body");
    assert!(body.contains("\"code\":3"), "{body}");

    // Oversized body: 413. A gzip bomb: 413 once decompression passes the limit.
    let resp = http.post(PROTO, None, vec![0u8; 100 * 1024]).await;
    assert_eq!(resp.status().as_u16(), 413);
    let bomb = gzip(&vec![0u8; 50 << 20]);
    assert!(bomb.len() < 64 * 1024);
    let resp = http.post(PROTO, Some("gzip"), bomb).await;
    assert_eq!(resp.status().as_u16(), 413);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("after decompression")
    );

    // gzip and zstd bodies are accepted.
    let resp = http
        .post(PROTO, Some("gzip"), gzip(&ok.encode_to_vec()))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let z = zstd::bulk::compress(&ok.encode_to_vec(), 3).expect("in memory");
    let resp = http.post(PROTO, Some("zstd"), z).await;
    assert_eq!(resp.status().as_u16(), 200);

    // Unsupported media type or encoding: 415.
    let resp = http.post("text/plain", None, b"hello".to_vec()).await;
    assert_eq!(resp.status().as_u16(), 415);
    let resp = http.post(PROTO, Some("br"), ok.encode_to_vec()).await;
    assert_eq!(resp.status().as_u16(), 415);

    // Wrong method and path.
    let resp = http.client.get(&http.url).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 405);

    stop_with_nats_down(shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_refuses_with_retry_after_and_never_ok_for_dropped_data() {
    let mut c = config();
    c.buffer.max_snapshots = 1;
    c.graph.window = Duration::from_secs(1);
    c.graph.allowed_lateness = Duration::ZERO;
    let (running, shutdown) = start(c).await;
    let http = Http::new(running.http.expect("http enabled"), "/v1/traces");
    let now = now_ns();
    let mut saw_503 = false;
    // Each request closes the previous window; with NATS down the one-snapshot buffer fills
    // and the ingest must start refusing.
    for i in 0..10u64 {
        let end = now - (60 - i * 5) * 1_000_000_000;
        let req = request(
            Some("checkout"),
            vec![span(i as u8 + 1, 1, end - 1_000_000, end)],
        );
        let resp = http.post(PROTO, None, req.encode_to_vec()).await;
        match resp.status().as_u16() {
            200 => assert!(!saw_503, "accepted again while the buffer is still full"),
            503 => {
                saw_503 = true;
                assert_eq!(
                    resp.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()),
                    Some("5")
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(saw_503, "a full publish buffer must refuse new data");
    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(10)).await;
}
