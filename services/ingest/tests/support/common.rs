//! Shared helpers of the ingest's tests: an in-process ingest on loopback ports and OTLP
//! request builders.

#![allow(dead_code)]

use std::io::Write;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};

use meshwatch_ingest::{IngestConfig, Running, run};
use meshwatch_runtime::{Readiness, Shutdown};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

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

/// Stops the ingest; with NATS unreachable the drain reports unpublished snapshots.
pub async fn stop_with_nats_down(shutdown: Shutdown) {
    shutdown.trigger("test over");
    let report = shutdown.wait(Duration::from_secs(10)).await;
    // NATS is unreachable in this test: the drain reports unpublished snapshots.
    assert!(!report.is_clean());
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

/// An OTLP/HTTP client for one path (`/v1/traces`, `/v1/metrics`).
pub struct Http {
    pub client: reqwest::Client,
    pub url: String,
}

impl Http {
    pub fn new(addr: SocketAddr, path: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("http://{addr}{path}"),
        }
    }

    pub async fn post(
        &self,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", content_type)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        req.send().await.expect("request sent")
    }
}

/// Sends the request message as given bytes; decodes the OTLP response `R`.
#[derive(Debug)]
pub struct RawCodec<R>(PhantomData<fn() -> R>);

impl<R> Clone for RawCodec<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for RawCodec<R> {}

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<R: Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl<R: Message + Default + Send + 'static> Encoder for RawCodec<R> {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl<R: Message + Default + Send + 'static> Decoder for RawCodec<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        R::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("not an OTLP response: {e}")))
    }
}

/// A client of one unary OTLP export method (`path`) that sends raw message bytes and decodes
/// the response `R`.
pub struct GrpcClient<R> {
    channel: Channel,
    path: &'static str,
    response: PhantomData<fn() -> R>,
}

impl<R: Message + Default + Send + 'static> GrpcClient<R> {
    pub async fn connect(addr: SocketAddr, path: &'static str) -> Self {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("valid URI")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("the ingest accepts gRPC connections");
        Self {
            channel,
            path,
            response: PhantomData,
        }
    }

    pub async fn export_bytes(&self, message: impl Into<Bytes>, gzip: bool) -> Result<R, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        if gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc.ready()
            .await
            .map_err(|e| Status::unknown(format!("channel not ready: {e}")))?;
        let path = http::uri::PathAndQuery::from_static(self.path);
        grpc.unary(
            tonic::Request::new(message.into()),
            path,
            RawCodec::<R>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    pub async fn export(&self, request: &impl Message) -> Result<R, Status> {
        self.export_bytes(request.encode_to_vec(), false).await
    }
}
