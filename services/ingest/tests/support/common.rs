//! Shared helpers of the ingest's tests: an in-process ingest on loopback ports and OTLP
//! request builders.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshwatch_ingest::{IngestConfig, Running, run};
use meshwatch_runtime::{Readiness, Shutdown};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A config on loopback ports with NATS unreachable (snapshots stay buffered).
pub fn config() -> IngestConfig {
    let mut c = IngestConfig::default();
    c.admin.listen = loopback();
    c.otlp.grpc_listen = loopback();
    c.otlp.http_listen = loopback();
    c.nats.url = "nats://127.0.0.1:1".to_owned();
    c.shutdown.grace = Duration::from_secs(2);
    c
}

pub async fn start(config: IngestConfig) -> (Running, Shutdown) {
    let shutdown = Shutdown::new(Readiness::new());
    let running = run(config, &shutdown).await.expect("ingest starts");
    (running, shutdown)
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .expect("clock after 1970")
}

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

/// A span with the given ids and times (kind SERVER unless changed).
pub fn span(trace: u8, id: u8, start_ns: u64, end_ns: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        kind: 2,
        name: "GET /".to_owned(),
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
        ..Span::default()
    }
}

/// A request with one resource of `service` (None: no service.name) holding `spans`.
pub fn request(service: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    let attributes = service
        .map(|s| vec![kv("service.name", s)])
        .unwrap_or_default();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            schema_url: String::new(),
        }],
    }
}
