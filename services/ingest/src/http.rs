//! OTLP/HTTP: `POST /v1/traces` with protobuf or JSON bodies, gzip/zstd content encoding,
//! bounded body and decompressed sizes, and the OTLP response semantics (ARCHITECTURE.md §8).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use meshwatch_graph::IngestReport;
use meshwatch_graph::otlp::owned::decode_json;
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
        .route(TRACES_PATH, post(export))
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

async fn export(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let format = Format::parse(request.headers());
    let response_format = *format.as_ref().unwrap_or(&Format::Protobuf);
    let result = handle(&state, format, request).await;
    state
        .metrics
        .request_duration
        .with_label_values(&["http"])
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(report) => {
            let partial = report.not_accepted() > 0;
            state
                .metrics
                .requests
                .with_label_values(&["http", if partial { "partial" } else { "ok" }])
                .inc();
            success(response_format, &report)
        }
        Err(error) => {
            state
                .metrics
                .requests
                .with_label_values(&["http", error.label()])
                .inc();
            tracing::debug!(%error, class = %error.class(), "otlp http request refused");
            failure(response_format, &error)
        }
    }
}

async fn handle(
    state: &AppState,
    format: Result<Format, RequestError>,
    request: Request,
) -> Result<IngestReport, RequestError> {
    let format = format?;
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
        && len > state.max_request_bytes as u64
    {
        return Err(RequestError::TooLarge {
            limit: state.max_request_bytes,
        });
    }
    let body = axum::body::to_bytes(request.into_body(), state.max_request_bytes)
        .await
        .map_err(|_| RequestError::TooLarge {
            limit: state.max_request_bytes,
        })?;
    state
        .metrics
        .request_bytes
        .with_label_values(&["http"])
        .inc_by(body.len() as u64);
    if body.is_empty() {
        return Err(RequestError::Empty);
    }
    let limit = state.max_decompressed_bytes;
    // Decompression and JSON parsing are CPU work: off the reactor.
    let payload = tokio::task::spawn_blocking(move || -> Result<Payload, RequestError> {
        let plain = decompress(body, encoding, limit)?;
        match format {
            Format::Protobuf => Ok(Payload::Protobuf(plain)),
            Format::Json => decode_json(&plain)
                .map(|request| Payload::Request(Box::new(request)))
                .map_err(|e| RequestError::Malformed(e.to_string())),
        }
    })
    .await
    .map_err(|e| RequestError::Internal(format!("decode task failed: {e}")))??;
    state.pipeline.export(payload).await
}

fn success(format: Format, report: &IngestReport) -> Response {
    let partial = (report.not_accepted() > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(report.not_accepted()).unwrap_or(i64::MAX),
        error_message: report.message(),
    });
    let body: Bytes = match format {
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
    };
    with_type(StatusCode::OK, format, body)
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
