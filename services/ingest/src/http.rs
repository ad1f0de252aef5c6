//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/metrics` with protobuf or JSON bodies, gzip/zstd
//! content encoding, bounded body and decompressed sizes, and the OTLP response semantics
//! (ARCHITECTURE.md §8). Both routes share the body, encoding and response code; they differ
//! in how the body is decoded, which pipeline call aggregates it, and the success message.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use meshwatch_graph::metrics as otlp_metrics;
use meshwatch_graph::otlp::owned::decode_json;
use meshwatch_graph::{IngestReport, MetricsReport};
use meshwatch_runtime::{Classify, public_message};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::decompress::{Encoding, decompress};
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::pipeline::{Payload, Pipeline};
use crate::retry_info::rpc_status;

/// Path of the traces endpoint.
pub const TRACES_PATH: &str = "/v1/traces";
/// Path of the metrics endpoint.
pub const METRICS_PATH: &str = "/v1/metrics";
/// Protocol labels of the request metrics.
const TRACES_PROTOCOL: &str = "http";
const METRICS_PROTOCOL: &str = "http_metrics";
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[derive(Debug, Clone)]
struct AppState {
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    max_request_bytes: usize,
    max_decompressed_bytes: usize,
}

/// The OTLP/HTTP router.
pub fn router(
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    max_request_bytes: usize,
    max_decompressed_bytes: usize,
) -> Router {
    Router::new()
        .route(TRACES_PATH, post(export_traces))
        .route(METRICS_PATH, post(export_metrics))
        // The handler enforces its own limit with a clear error.
        .layer(DefaultBodyLimit::disable())
        .with_state(AppState {
            pipeline,
            metrics,
            max_request_bytes,
            max_decompressed_bytes,
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn parse(headers: &HeaderMap) -> Result<Self, RequestError> {
        let value = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            PROTOBUF => Ok(Self::Protobuf),
            JSON => Ok(Self::Json),
            _ => Err(RequestError::UnsupportedMediaType(value.to_owned())),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => PROTOBUF,
            Self::Json => JSON,
        }
    }
}

async fn export_traces(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let format = Format::parse(request.headers());
    let response_format = *format.as_ref().unwrap_or(&Format::Protobuf);
    let result = handle_traces(&state, format, request).await;
    respond(
        &state,
        TRACES_PROTOCOL,
        started,
        response_format,
        result.map(|report| {
            (
                report.not_accepted() > 0,
                traces_body(response_format, &report),
            )
        }),
    )
}

async fn handle_traces(
    state: &AppState,
    format: Result<Format, RequestError>,
    request: Request,
) -> Result<IngestReport, RequestError> {
    let body = read_body(state, format, request, TRACES_PROTOCOL, RequestError::Empty).await?;
    let payload = decode_off_reactor(state, body, |format, plain| match format {
        Format::Protobuf => Ok(Payload::Protobuf(plain)),
        Format::Json => decode_json(&plain)
            .map(|request| Payload::Request(Box::new(request)))
            .map_err(|e| RequestError::Malformed(e.to_string())),
    })
    .await?;
    state.pipeline.export(payload).await
}

async fn export_metrics(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let format = Format::parse(request.headers());
    let response_format = *format.as_ref().unwrap_or(&Format::Protobuf);
    let result = handle_metrics(&state, format, request).await;
    respond(
        &state,
        METRICS_PROTOCOL,
        started,
        response_format,
        result.map(|report| {
            (
                report.not_accepted() > 0,
                metrics_body(response_format, &report),
            )
        }),
    )
}

async fn handle_metrics(
    state: &AppState,
    format: Result<Format, RequestError>,
    request: Request,
) -> Result<MetricsReport, RequestError> {
    let body = read_body(
        state,
        format,
        request,
        METRICS_PROTOCOL,
        RequestError::NoDataPoints,
    )
    .await?;
    let request = decode_off_reactor(state, body, |format, plain| match format {
        Format::Protobuf => otlp_metrics::decode_protobuf(&plain)
            .map_err(|e| RequestError::Malformed(format!("invalid OTLP metrics request: {e}"))),
        Format::Json => {
            otlp_metrics::decode_json(&plain).map_err(|e| RequestError::Malformed(e.to_string()))
        }
    })
    .await?;
    state.pipeline.export_metrics(Box::new(request)).await
}

/// A request body as received, with what its headers say about it.
struct ReceivedBody {
    format: Format,
    encoding: Encoding,
    bytes: Bytes,
}

/// Checks the headers and reads the body within `otlp.max_request_bytes`; `empty` is the
/// error for an empty body.
async fn read_body(
    state: &AppState,
    format: Result<Format, RequestError>,
    request: Request,
    protocol: &'static str,
    empty: RequestError,
) -> Result<ReceivedBody, RequestError> {
    let format = format?;
    let (encoding, bytes) = read_limited(
        request,
        &state.metrics,
        state.max_request_bytes,
        protocol,
        || empty,
    )
    .await?;
    Ok(ReceivedBody {
        format,
        encoding,
        bytes,
    })
}

/// Checks the content encoding and length, reads the body within `max_request_bytes` and
/// counts its bytes under `protocol`; `empty` makes the error for an empty body. Shared by
/// the OTLP/HTTP and Zipkin routes.
pub(crate) async fn read_limited(
    request: Request,
    metrics: &Metrics,
    max_request_bytes: usize,
    protocol: &'static str,
    empty: impl FnOnce() -> RequestError,
) -> Result<(Encoding, Bytes), RequestError> {
    let encoding = Encoding::parse(
        request
            .headers()
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    if let Some(len) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max_request_bytes as u64
    {
        return Err(RequestError::TooLarge {
            limit: max_request_bytes,
        });
    }
    let bytes = axum::body::to_bytes(request.into_body(), max_request_bytes)
        .await
        .map_err(|_| RequestError::TooLarge {
            limit: max_request_bytes,
        })?;
    metrics
        .request_bytes
        .with_label_values(&[protocol])
        .inc_by(bytes.len() as u64);
    if bytes.is_empty() {
        return Err(empty());
    }
    Ok((encoding, bytes))
}

/// Decompresses (within `otlp.max_decompressed_bytes`) and decodes the body on the blocking
/// pool: decompression and decoding are CPU work, kept off the reactor.
async fn decode_off_reactor<T: Send + 'static>(
    state: &AppState,
    body: ReceivedBody,
    decode: impl FnOnce(Format, Bytes) -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    let format = body.format;
    decompress_off_reactor(
        body.bytes,
        body.encoding,
        state.max_decompressed_bytes,
        move |plain| decode(format, plain),
    )
    .await
}

/// Decompresses `bytes` (within `limit`) and decodes them on the blocking pool. Shared by the
/// OTLP/HTTP and Zipkin routes.
pub(crate) async fn decompress_off_reactor<T: Send + 'static>(
    bytes: Bytes,
    encoding: Encoding,
    limit: usize,
    decode: impl FnOnce(Bytes) -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    tokio::task::spawn_blocking(move || {
        let plain = decompress(bytes, encoding, limit)?;
        decode(plain)
    })
    .await
    .map_err(|e| RequestError::Internal(format!("decode task failed: {e}")))?
}

/// Counts the request and answers it: the success body (and whether it is a partial
/// success), or the error.
fn respond(
    state: &AppState,
    protocol: &'static str,
    started: Instant,
    format: Format,
    result: Result<(bool, Bytes), RequestError>,
) -> Response {
    count_request(
        &state.metrics,
        protocol,
        started,
        result.as_ref().map(|(partial, _)| *partial),
    );
    match result {
        Ok((_, body)) => with_type(StatusCode::OK, format, body),
        Err(error) => {
            tracing::debug!(%error, class = %error.class(), protocol, "otlp http request refused");
            failure(format, &error)
        }
    }
}

/// Records a request's duration and outcome under `protocol`: `ok`, `partial` (`Ok(true)`)
/// or the error's label. Shared by the OTLP/HTTP and Zipkin routes.
pub(crate) fn count_request(
    metrics: &Metrics,
    protocol: &'static str,
    started: Instant,
    outcome: Result<bool, &RequestError>,
) {
    metrics
        .request_duration
        .with_label_values(&[protocol])
        .observe(started.elapsed().as_secs_f64());
    let label = match outcome {
        Ok(true) => "partial",
        Ok(false) => "ok",
        Err(error) => error.label(),
    };
    metrics.requests.with_label_values(&[protocol, label]).inc();
}

fn traces_body(format: Format, report: &IngestReport) -> Bytes {
    let partial = (report.not_accepted() > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(report.not_accepted()).unwrap_or(i64::MAX),
        error_message: report.message(),
    });
    match format {
        Format::Protobuf => ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec()
        .into(),
        Format::Json => {
            let value = match partial {
                Some(p) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": p.rejected_spans,
                        "errorMessage": p.error_message,
                    }
                }),
                None => serde_json::json!({}),
            };
            value.to_string().into()
        }
    }
}

fn metrics_body(format: Format, report: &MetricsReport) -> Bytes {
    let response = crate::metrics_grpc::response(report);
    match format {
        Format::Protobuf => response.encode_to_vec().into(),
        Format::Json => {
            let value = match response.partial_success {
                Some(p) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedDataPoints": p.rejected_data_points,
                        "errorMessage": p.error_message,
                    }
                }),
                None => serde_json::json!({}),
            };
            value.to_string().into()
        }
    }
}

fn failure(format: Format, error: &RequestError) -> Response {
    let class = error.class();
    let message = public_message(error);
    let status = rpc_status(class.grpc_code() as i32, &message, error.retry_after());
    let body: Bytes = match format {
        Format::Protobuf => status.encode_to_vec().into(),
        Format::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into(),
    };
    let mut response = with_type(class.http_status(), format, body);
    if let Some(delay) = error.retry_after()
        && let Ok(value) = HeaderValue::from_str(&delay.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn with_type(status: StatusCode, format: Format, body: Bytes) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from(body),
    )
        .into_response()
}
