//! An OTLP client for pre-encoded requests: protobuf bodies of `ExportTraceServiceRequest` or
//! `ExportMetricsServiceRequest` sent as they are, over gRPC (a pass-through codec on a tonic
//! channel) or HTTP/1.1 (`POST /v1/traces`, `/v1/metrics`, `application/x-protobuf`). Used by
//! the simulator and by `meshwatch loadgen`.
//!
//! Outcomes follow the OTLP specification: success (with the partial-success count of
//! rejected items), refusal the client may retry (gRPC UNAVAILABLE or RESOURCE_EXHAUSTED with
//! retry info; HTTP 429, 502, 503, 504), or failure.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::SimError;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318).
    Http,
}

/// What a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn grpc_path(self) -> &'static str {
        match self {
            Self::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Self::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "/v1/traces",
            Self::Metrics => "/v1/metrics",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
        }
    }
}

/// The answer to one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `rejected` items (spans or data points) of it were not (partial success).
    Accepted { rejected: u64 },
    /// Refused for now (overload, shutting down): retry later.
    Refused { retry_after: Option<Duration> },
    /// Failed for good (bad request, unreachable endpoint, timeout, other status).
    Failed(String),
}

/// A connection to one OTLP endpoint.
#[derive(Debug, Clone)]
pub struct OtlpClient {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Grpc(tonic::client::Grpc<Channel>),
    Http {
        client: reqwest::Client,
        base: String,
    },
}

impl OtlpClient {
    /// A client for `endpoint` (`http://host:port`); nothing is connected until the first
    /// export. `timeout` bounds each request.
    pub fn new(endpoint: &str, protocol: Protocol, timeout: Duration) -> Result<Self, SimError> {
        let base = endpoint.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(SimError::Endpoint(format!(
                "{endpoint}: expected http://host:port"
            )));
        }
        let inner = match protocol {
            Protocol::Grpc => {
                let channel = Endpoint::from_shared(base.clone())
                    .map_err(|e| SimError::Endpoint(format!("{endpoint}: {e}")))?
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .tcp_nodelay(true)
                    .connect_lazy();
                Inner::Grpc(tonic::client::Grpc::new(channel).max_decoding_message_size(4 << 20))
            }
            Protocol::Http => {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| SimError::Endpoint(format!("{endpoint}: {e}")))?;
                Inner::Http { client, base }
            }
        };
        Ok(Self { inner })
    }

    /// Sends one protobuf-encoded request.
    pub async fn export(&mut self, signal: Signal, body: Bytes) -> Outcome {
        match &mut self.inner {
            Inner::Grpc(grpc) => {
                if let Err(e) = grpc.ready().await {
                    return Outcome::Failed(format!("not connected: {e}"));
                }
                let path = http::uri::PathAndQuery::from_static(signal.grpc_path());
                match grpc
                    .unary(tonic::Request::new(body), path, PassThrough)
                    .await
                {
                    Ok(response) => accepted(signal, response.into_inner()),
                    Err(status) => grpc_failure(&status),
                }
            }
            Inner::Http { client, base } => {
                let url = format!("{base}{}", signal.http_path());
                let response = client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                let response = match response {
                    Ok(r) => r,
                    Err(e) => return Outcome::Failed(format!("{e}")),
                };
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let bytes = match response.bytes().await {
                    Ok(b) => b,
                    Err(e) => return Outcome::Failed(format!("reading the response: {e}")),
                };
                match status.as_u16() {
                    200..=299 => accepted(signal, bytes),
                    429 | 502 | 503 | 504 => Outcome::Refused { retry_after },
                    code => Outcome::Failed(format!(
                        "HTTP {code}: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                    )),
                }
            }
        }
    }
}

fn accepted(signal: Signal, body: Bytes) -> Outcome {
    let rejected = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .map(|r| r.partial_success.map_or(0, |p| p.rejected_spans)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .map(|r| r.partial_success.map_or(0, |p| p.rejected_data_points)),
    };
    match rejected {
        Ok(n) => Outcome::Accepted {
            rejected: u64::try_from(n).unwrap_or(0),
        },
        Err(e) => Outcome::Failed(format!("undecodable response: {e}")),
    }
}

fn grpc_failure(status: &Status) -> Outcome {
    match status.code() {
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted => {
            Outcome::Refused { retry_after: None }
        }
        code => Outcome::Failed(format!("gRPC {code:?}: {}", status.message())),
    }
}

/// Sends the pre-encoded request as it is; hands back the response bytes.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}
