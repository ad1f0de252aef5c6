//! OTLP/gRPC: what every kind of bad input gets (ARCHITECTURE.md §8), against a running ingest
//! (NATS unreachable: snapshots stay buffered). Requests go through `tonic`'s client with a
//! raw-bytes codec, so that malformed messages can be sent as they are.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::{GrpcClient, config, gzip, kv, now_ns, request, span, start, stop_with_nats_down};
use meshwatch_ingest::grpc::EXPORT_PATH;
use meshwatch_ingest::retry_info::{RetryInfo, RpcStatus};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::Code;

/// A `TraceService/Export` client that sends raw message bytes.
type Client = GrpcClient<ExportTraceServiceResponse>;

fn partial(response: &ExportTraceServiceResponse) -> (i64, &str) {
    response
        .partial_success
        .as_ref()
        .map_or((0, ""), |p: &ExportTracePartialSuccess| {
            (p.rejected_spans, p.error_message.as_str())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_the_right_status() {
    let mut c = config();
    c.otlp.max_request_bytes = 64 * 1024;
    c.otlp.max_decompressed_bytes = 1 << 20;
    let (running, shutdown) = start(c).await;
    let client = Client::connect(running.grpc.expect("grpc enabled"), EXPORT_PATH).await;
    let now = now_ns();

    // A valid request: OK without partial success.
    let ok = request(
        Some("checkout"),
        vec![span(1, 1, now - 2_000_000, now - 1_000_000)],
    );
    let response = client
        .export(&ok)
        .await
        .expect("a valid request is accepted");
    assert_eq!(response.partial_success, None);

    // An empty request (zero bytes) and a request without spans: INVALID_ARGUMENT.
    let status = client
        .export(&ExportTraceServiceRequest::default())
        .await
        .expect_err("empty request");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("no spans"), "{status:?}");
    let status = client
        .export(&request(Some("checkout"), Vec::new()))
        .await
        .expect_err("no spans");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Invalid id lengths and end before start: OK, the valid span accepted and the three
    // others reported in partial_success with the reasons.
    let mut bad_trace = span(2, 1, now - 2_000_000, now - 1_000_000);
    bad_trace.trace_id = vec![1; 5];
    let mut bad_span = span(2, 2, now - 2_000_000, now - 1_000_000);
    bad_span.span_id = vec![1; 3];
    let backwards = span(2, 3, now - 1_000_000, now - 2_000_000);
    let good = span(2, 4, now - 2_000_000, now - 1_000_000);
    let mixed = request(Some("checkout"), vec![bad_trace, bad_span, backwards, good]);
    let response = client.export(&mixed).await.expect("partially accepted");
    let (rejected, message) = partial(&response);
    assert_eq!(rejected, 3, "{message}");
    assert!(message.contains("trace_id must be 16 bytes"), "{message}");
    assert!(message.contains("span_id must be 8 bytes"), "{message}");
    assert!(message.contains("end must not precede start"), "{message}");

    // Missing service.name and huge attribute values: accepted.
    let mut huge = span(3, 1, now - 2_000_000, now - 1_000_000);
    huge.attributes = vec![kv("http.request.body", &"x".repeat(30_000))];
    let response = client.export(&request(None, vec![huge])).await.expect("ok");
    assert_eq!(response.partial_success, None);

    // Truncated protobuf: INVALID_ARGUMENT, nothing accepted.
    let mut truncated = ok.encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    let status = client
        .export_bytes(truncated, false)
        .await
        .expect_err("truncated");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed"), "{status:?}");

    // A message above otlp.max_request_bytes: tonic refuses it from the frame header with
    // OUT_OF_RANGE, which OTLP clients would retry forever; the service turns it into
    // RESOURCE_EXHAUSTED without RetryInfo (not retryable).
    let mut big = span(5, 1, now - 2_000_000, now - 1_000_000);
    big.attributes = vec![kv("http.request.body", &"x".repeat(100 * 1024))];
    let status = client
        .export(&request(Some("checkout"), vec![big]))
        .await
        .expect_err("oversized");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    assert!(status.details().is_empty(), "no RetryInfo: {status:?}");

    // A gzip-compressed request is accepted.
    let response = client
        .export_bytes(ok.encode_to_vec(), true)
        .await
        .expect("gzip accepted");
    assert_eq!(response.partial_success, None);

    // A gzip bomb: 50 MiB of zeros, which the client compresses to about 50 KiB (under the
    // frame limit): refused once decompression passes the limit, with RESOURCE_EXHAUSTED.
    assert!(gzip(&vec![0u8; 50 << 20]).len() < 64 * 1024);
    let status = client
        .export_bytes(vec![0u8; 50 << 20], true)
        .await
        .expect_err("gzip bomb");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("decompressing"), "{status:?}");

    // The service still works after all that.
    let response = client.export(&ok).await.expect("still accepting");
    assert_eq!(response.partial_success, None);

    stop_with_nats_down(shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_unavailable_with_retry_info_and_never_ok_for_dropped_data() {
    let mut c = config();
    c.buffer.max_snapshots = 1;
    c.graph.window = Duration::from_secs(1);
    c.graph.allowed_lateness = Duration::ZERO;
    let (running, shutdown) = start(c).await;
    let client = Client::connect(running.grpc.expect("grpc enabled"), EXPORT_PATH).await;
    let now = now_ns();
    let mut refused = None;
    // Each request closes the previous window (old timestamps, no lateness); with NATS down the
    // one-snapshot buffer fills and the ingest must start refusing.
    for i in 0..10u64 {
        let end = now - (60 - i * 5) * 1_000_000_000;
        let req = request(
            Some("checkout"),
            vec![span(i as u8 + 1, 1, end - 1_000_000, end)],
        );
        match client.export(&req).await {
            Ok(response) => {
                assert!(
                    refused.is_none(),
                    "accepted again while the buffer is still full"
                );
                assert_eq!(response.partial_success, None);
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                refused = Some(status);
            }
        }
    }
    let status = refused.expect("a full publish buffer must refuse new data");
    assert!(status.message().contains("overloaded"), "{status:?}");
    // grpc-status-details-bin: a google.rpc.Status with the same code and a RetryInfo of the
    // configured delay (otlp.retry_after, 5 s by default).
    let details = RpcStatus::decode(status.details()).expect("details are a google.rpc.Status");
    assert_eq!(details.code, Code::Unavailable as i32);
    assert_eq!(details.message, status.message());
    assert_eq!(details.details.len(), 1, "{details:?}");
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    let info = RetryInfo::decode(&details.details[0].value[..]).expect("a RetryInfo");
    let delay = info.retry_delay.expect("a retry delay");
    assert_eq!((delay.seconds, delay.nanos), (5, 0));

    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(10)).await;
}
