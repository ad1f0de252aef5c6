//! OTLP metrics (`POST /v1/metrics`, `MetricsService/Export`): what every kind of input gets
//! (ARCHITECTURE.md §8, docs/ingest.md), against a running ingest with NATS unreachable
//! (snapshots stay buffered). The gRPC client sends raw message bytes, so that malformed
//! messages can be sent as they are.

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::{GrpcClient, Http, config, gzip, kv, now_ns, start, stop_with_nats_down};
use meshwatch_ingest::metrics_grpc::EXPORT_METRICS_PATH;
use meshwatch_ingest::retry_info::{RetryInfo, RpcStatus};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tonic::Code;

const PROTO: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// A request with one resource of `service` holding one gauge with the given points.
fn gauge_request(service: &str, name: &str, points: &[(u64, f64)]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.to_owned(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points
                            .iter()
                            .map(|&(t, v)| NumberDataPoint {
                                time_unix_nano: t,
                                value: Some(number_data_point::Value::AsDouble(v)),
                                ..NumberDataPoint::default()
                            })
                            .collect(),
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// A `MetricsService/Export` client that sends raw message bytes.
type Grpc = GrpcClient<ExportMetricsServiceResponse>;

/// Status, rejected data points and message of a protobuf response.
async fn partial(resp: reqwest::Response) -> (u16, i64, String) {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    let decoded = ExportMetricsServiceResponse::decode(&body[..]).expect("an OTLP response");
    let p = decoded.partial_success.unwrap_or_default();
    (status, p.rejected_data_points, p.error_message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_metrics_input_over_http_gets_a_clear_answer() {
    let mut c = config();
    c.otlp.max_request_bytes = 64 * 1024;
    c.otlp.max_decompressed_bytes = 1 << 20;
    let (running, shutdown) = start(c).await;
    let http = Http::new(running.http.expect("http enabled"), "/v1/metrics");
    let now = now_ns();
    let ok = gauge_request(
        "checkout",
        "container.cpu.utilization",
        &[(now - 1_000_000, 0.5)],
    );

    // A valid request: 200 and no partial success.
    let (status, rejected, _) = partial(http.post(PROTO, None, ok.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 0));

    // A request of unknown metrics only is fine: they are ignored, not errors.
    let unknown = gauge_request("checkout", "http.server.active_requests", &[(now, 3.0)]);
    let (status, rejected, _) =
        partial(http.post(PROTO, None, unknown.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 0));

    // Empty body, and a request without data points: 400 INVALID_ARGUMENT.
    let resp = http.post(PROTO, None, Vec::new()).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.expect("body").contains("no data points"));
    let resp = http
        .post(
            PROTO,
            None,
            gauge_request("checkout", "container.cpu.utilization", &[]).encode_to_vec(),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http.post(JSON, None, b"{}".to_vec()).await;
    assert_eq!(resp.status().as_u16(), 400);

    // Invalid values, a zero time, a time far in the future, and a point behind the
    // watermark: 200 with the count and the reasons in partial_success.
    let mixed = gauge_request(
        "checkout",
        "container.cpu.utilization",
        &[
            (now - 1_000_000, 0.5),
            (now - 1_000_000, f64::NAN),
            (now - 1_000_000, -2.0),
            (0, 0.5),
            (now + 3_600_000_000_000, 0.5),
        ],
    );
    let (status, rejected, message) =
        partial(http.post(PROTO, None, mixed.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 4), "{message}");
    assert!(
        message.contains("value missing, not finite or negative"),
        "{message}"
    );
    assert!(message.contains("time_unix_nano must be set"), "{message}");
    assert!(message.contains("future"), "{message}");
    assert!(message.contains("container.cpu.utilization"), "{message}");
    let ancient = gauge_request(
        "checkout",
        "container.memory.usage",
        &[(946_684_800_000_000_000, 1.0)],
    );
    let (status, rejected, message) =
        partial(http.post(PROTO, None, ancient.encode_to_vec()).await).await;
    assert_eq!((status, rejected), (200, 1));
    assert!(
        message.contains("after their time window had closed"),
        "{message}"
    );

    // Truncated or malformed protobuf: 400, nothing accepted.
    let mut truncated = ok.encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    let resp = http.post(PROTO, None, truncated).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("invalid OTLP metrics request")
    );
    let resp = http.post(PROTO, None, vec![0xff; 16]).await;
    assert_eq!(resp.status().as_u16(), 400);

    // JSON: valid is 200 `{}`; a partial success names its data points; invalid JSON is 400
    // with a google.rpc.Status in JSON.
    let json = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"k8s.pod.memory.usage","gauge":{{"dataPoints":[{{"asInt":"1048576","timeUnixNano":"{}"}}]}}}}]}}]}}]}}"#,
        now - 1_000_000
    );
    let resp = http.post(JSON, None, json.clone().into_bytes()).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.expect("body"), "{}");
    let resp = http
        .post(JSON, None, json.replace("1048576", "-5").into_bytes())
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON");
    assert_eq!(body["partialSuccess"]["rejectedDataPoints"], 1, "{body}");
    let resp = http
        .post(JSON, None, b"{\"resourceMetrics\": [".to_vec())
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("\"code\":3") && body.contains("invalid OTLP/JSON metrics"),
        "{body}"
    );

    // Oversized body: 413. A gzip bomb: 413 once decompression passes the limit; a corrupt
    // gzip body: 400.
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
    let resp = http.post(PROTO, Some("gzip"), b"not gzip".to_vec()).await;
    assert_eq!(resp.status().as_u16(), 400);

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

    stop_with_nats_down(shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_metrics_input_over_grpc_gets_the_right_status() {
    let mut c = config();
    c.otlp.max_request_bytes = 64 * 1024;
    let (running, shutdown) = start(c).await;
    let client = Grpc::connect(running.grpc.expect("grpc enabled"), EXPORT_METRICS_PATH).await;
    let now = now_ns();
    let ok = gauge_request(
        "checkout",
        "container.cpu.utilization",
        &[(now - 1_000_000, 0.5)],
    );

    let response = client
        .export(&ok)
        .await
        .expect("a valid request is accepted");
    assert_eq!(response.partial_success, None);

    // Empty message, and a request without data points: INVALID_ARGUMENT.
    for empty in [
        ExportMetricsServiceRequest::default(),
        gauge_request("checkout", "container.cpu.utilization", &[]),
    ] {
        let status = client.export(&empty).await.expect_err("empty");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("no data points"), "{status:?}");
    }

    // Some points invalid: OK with partial_success.
    let mixed = gauge_request(
        "checkout",
        "k8s.pod.cpu.utilization",
        &[(now - 1_000_000, 0.5), (now - 1_000_000, f64::INFINITY)],
    );
    let response = client.export(&mixed).await.expect("partially accepted");
    let p = response.partial_success.expect("partial success");
    assert_eq!(p.rejected_data_points, 1, "{}", p.error_message);
    assert!(
        p.error_message.contains("not finite"),
        "{}",
        p.error_message
    );

    // Truncated protobuf: INVALID_ARGUMENT.
    let mut truncated = ok.encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    let status = client
        .export_bytes(truncated, false)
        .await
        .expect_err("truncated");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed"), "{status:?}");

    // Above otlp.max_request_bytes: RESOURCE_EXHAUSTED without RetryInfo.
    let mut big = ok.clone();
    big.resource_metrics[0].resource = Some(Resource {
        attributes: vec![
            kv("service.name", "checkout"),
            kv("blob", &"x".repeat(100 * 1024)),
        ],
        ..Resource::default()
    });
    let status = client.export(&big).await.expect_err("oversized");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.details().is_empty(), "no RetryInfo: {status:?}");

    // gzip is accepted.
    let response = client
        .export_bytes(ok.encode_to_vec(), true)
        .await
        .expect("gzip");
    assert_eq!(response.partial_success, None);

    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_overload_is_refused_like_traces() {
    let mut c = config();
    c.buffer.max_snapshots = 1;
    c.graph.window = Duration::from_secs(1);
    c.graph.allowed_lateness = Duration::ZERO;
    let (running, shutdown) = start(c).await;
    let http = Http::new(running.http.expect("http enabled"), "/v1/metrics");
    let client = Grpc::connect(running.grpc.expect("grpc enabled"), EXPORT_METRICS_PATH).await;
    let now = now_ns();
    // Each request closes the previous window (a metrics-only snapshot); with NATS down the
    // one-snapshot buffer fills and both receivers must refuse, never answer OK.
    let mut saw_503 = false;
    let mut unavailable = None;
    for i in 0..10u64 {
        let t = now - (60 - i * 5) * 1_000_000_000;
        let req = gauge_request("checkout", "container.cpu.utilization", &[(t, 0.5)]);
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
                let status = client
                    .export(&req)
                    .await
                    .expect_err("refused over gRPC too");
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                unavailable = Some(status);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(saw_503, "a full publish buffer must refuse new data");
    let status = unavailable.expect("refused over gRPC");
    let details = RpcStatus::decode(status.details()).expect("details are a google.rpc.Status");
    let info = RetryInfo::decode(&details.details[0].value[..]).expect("a RetryInfo");
    assert_eq!(info.retry_delay.map(|d| d.seconds), Some(5));
    shutdown.trigger("test over");
    shutdown.wait(Duration::from_secs(10)).await;
}
