//! OTLP/gRPC `TraceService/Export` with a raw-bytes codec: the request message reaches the
//! aggregation thread undecoded, where the zero-copy scanner reads it (`tonic` still handles
//! framing, `grpc-encoding` gzip/zstd and the message size limit). The codec and the unary
//! plumbing ([`serve_unary`]) are shared with `MetricsService/Export` (`metrics_grpc.rs`).

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use meshwatch_runtime::{Classify, to_status};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Status};

use crate::error::RequestError;
use crate::http::count_request;
use crate::metrics::Metrics;
use crate::pipeline::{Payload, Pipeline};

/// Path of the one method served.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC service, for `tonic::transport::Server::add_service`.
#[derive(Debug, Clone)]
pub struct TraceGrpc {
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    max_message_bytes: usize,
}

impl TraceGrpc {
    pub fn new(pipeline: Arc<Pipeline>, metrics: Metrics, max_message_bytes: usize) -> Self {
        Self {
            pipeline,
            metrics,
            max_message_bytes,
        }
    }
}

impl NamedService for TraceGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tower_service::Service<http::Request<Body>> for TraceGrpc {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        serve_unary(
            req,
            EXPORT_PATH,
            self.max_message_bytes,
            Export(self.clone()),
        )
    }
}

/// Serves the one unary method at `path` of a service: the request message as raw bytes (gzip
/// and zstd accepted, at most `max_message_bytes`), the response encoded with `prost`; any
/// other path is UNIMPLEMENTED.
pub(crate) fn serve_unary<M>(
    req: http::Request<Body>,
    path: &'static str,
    max_message_bytes: usize,
    method: M,
) -> futures::future::BoxFuture<'static, Result<http::Response<Body>, Infallible>>
where
    M: UnaryService<Bytes> + Send + 'static,
    M::Response: Message + Send + 'static,
    M::Future: Send + 'static,
{
    if req.uri().path() != path {
        return Box::pin(async move {
            Ok(Status::new(Code::Unimplemented, "unknown method").into_http())
        });
    }
    let mut grpc = Grpc::new(RawCodec::<M::Response>::default())
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(max_message_bytes);
    Box::pin(async move { Ok(too_large_is_not_retryable(grpc.unary(method, req).await)) })
}

/// tonic answers a message above the size limit with OUT_OF_RANGE, which OTLP exporters retry
/// forever; the same request can never succeed, so it becomes RESOURCE_EXHAUSTED without
/// RetryInfo, which OTLP defines as not retryable. (This service never returns OUT_OF_RANGE
/// itself.)
fn too_large_is_not_retryable(mut response: http::Response<Body>) -> http::Response<Body> {
    let out_of_range = http::HeaderValue::from(Code::OutOfRange as i32);
    if response.headers().get("grpc-status") == Some(&out_of_range) {
        response.headers_mut().insert(
            "grpc-status",
            http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    response
}

struct Export(TraceGrpc);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future =
        futures::future::BoxFuture<'static, Result<tonic::Response<Self::Response>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move {
            let pipeline = &svc.pipeline;
            let report = counted(
                &svc.metrics,
                "grpc",
                "otlp grpc request refused",
                request.into_inner(),
                |body| async move {
                    if body.is_empty() {
                        Err(RequestError::Empty)
                    } else {
                        pipeline.export(Payload::Protobuf(body)).await
                    }
                },
                |report| report.not_accepted() > 0,
            )
            .await?;
            let partial = report.not_accepted() > 0;
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: partial.then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(report.not_accepted()).unwrap_or(i64::MAX),
                    error_message: report.message(),
                }),
            }))
        })
    }
}

/// The shared part of a unary export: counts the message bytes under `protocol`, runs
/// `handle`, records the duration and the outcome (`partial` when `is_partial`), and turns a
/// refusal into its gRPC status after logging it as `refused`.
pub(crate) async fn counted<T, F, Fut>(
    metrics: &Metrics,
    protocol: &'static str,
    refused: &'static str,
    body: Bytes,
    handle: F,
    is_partial: impl FnOnce(&T) -> bool,
) -> Result<T, Status>
where
    F: FnOnce(Bytes) -> Fut,
    Fut: Future<Output = Result<T, RequestError>>,
{
    let started = Instant::now();
    metrics
        .request_bytes
        .with_label_values(&[protocol])
        .inc_by(body.len() as u64);
    let result = handle(body).await;
    count_request(metrics, protocol, started, result.as_ref().map(is_partial));
    result.map_err(|error| {
        tracing::debug!(%error, class = %error.class(), "{refused}");
        status_of(&error)
    })
}

/// The gRPC status of a refused request; overload carries a `google.rpc.RetryInfo` detail so
/// that OTLP exporters wait the suggested delay.
pub fn status_of(error: &RequestError) -> Status {
    let status = to_status(error);
    match error.retry_after() {
        Some(delay) => {
            let details =
                crate::retry_info::status_details(status.code() as i32, status.message(), delay);
            Status::with_details(status.code(), status.message().to_owned(), details.into())
        }
        None => status,
    }
}

/// Passes the request message through as bytes; encodes the prost response `R`.
#[derive(Debug)]
struct RawCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<R> Clone for RawCodec<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for RawCodec<R> {}

impl<R: Message + Send + 'static> Codec for RawCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = RawCodec<R>;
    type Decoder = RawCodec<R>;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl<R: Send + 'static> Decoder for RawCodec<R> {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl<R: Message + Send + 'static> Encoder for RawCodec<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode response: {e}")))
    }
}
