//! OTLP/gRPC `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`, on the same port
//! as `TraceService` and with the same plumbing (`grpc::serve_unary`: raw-bytes codec, gzip and
//! zstd, the message size limit). The request is decoded with `prost` on the blocking pool (off
//! the reactor and off the aggregation thread), then aggregated by the pipeline.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use meshwatch_graph::MetricsReport;
use meshwatch_graph::metrics::decode_protobuf;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use tonic::Status;
use tonic::body::Body;
use tonic::server::{NamedService, UnaryService};

use crate::error::RequestError;
use crate::grpc::{counted, serve_unary};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// Path of the one method served.
pub const EXPORT_METRICS_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Protocol label of OTLP metrics over gRPC in the request metrics.
const PROTOCOL: &str = "grpc_metrics";

/// The gRPC service, for `tonic::transport::Server::add_service`.
#[derive(Debug, Clone)]
pub struct MetricsGrpc {
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    max_message_bytes: usize,
}

impl MetricsGrpc {
    pub fn new(pipeline: Arc<Pipeline>, metrics: Metrics, max_message_bytes: usize) -> Self {
        Self {
            pipeline,
            metrics,
            max_message_bytes,
        }
    }
}

impl NamedService for MetricsGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

impl tower_service::Service<http::Request<Body>> for MetricsGrpc {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        serve_unary(
            req,
            EXPORT_METRICS_PATH,
            self.max_message_bytes,
            Export(self.clone()),
        )
    }
}

struct Export(MetricsGrpc);

impl UnaryService<Bytes> for Export {
    type Response = ExportMetricsServiceResponse;
    type Future =
        futures::future::BoxFuture<'static, Result<tonic::Response<Self::Response>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move {
            let report = counted(
                &svc.metrics,
                PROTOCOL,
                "otlp grpc metrics request refused",
                request.into_inner(),
                |body| handle(&svc, body),
                |report| report.not_accepted() > 0,
            )
            .await?;
            Ok(tonic::Response::new(response(&report)))
        })
    }
}

async fn handle(svc: &MetricsGrpc, body: Bytes) -> Result<MetricsReport, RequestError> {
    if body.is_empty() {
        return Err(RequestError::NoDataPoints);
    }
    let request = tokio::task::spawn_blocking(move || decode_protobuf(&body))
        .await
        .map_err(|e| RequestError::Internal(format!("decode task failed: {e}")))?
        .map_err(|e| RequestError::Malformed(format!("invalid OTLP metrics request: {e}")))?;
    svc.pipeline.export_metrics(Box::new(request)).await
}

/// The OTLP response: `partial_success` with the refused data points, when there are any.
pub fn response(report: &MetricsReport) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (report.not_accepted() > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(report.not_accepted()).unwrap_or(i64::MAX),
            error_message: report.message(),
        }),
    }
}
