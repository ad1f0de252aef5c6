//! A Zipkin-compatible receiver on the OTLP/HTTP port: `POST /api/v2/spans` with a Zipkin v2
//! JSON span list (what Zipkin reporters, Brave, Sleuth, Envoy and the OpenTelemetry Zipkin
//! exporter send), gzip/zstd content encoding, the same size limits as OTLP/HTTP.
//!
//! The body is decoded off the reactor into an owned OTLP request (`meshwatch_graph::zipkin`:
//! shared spans split, tags to attributes, `error` to the status; tags named like a configured
//! graph key become resource attributes) and aggregated by the same pipeline thread as OTLP
//! (`Payload::Request`). Answers, as Zipkin's own server gives them:
//! - `202 Accepted`, empty body, once the spans are aggregated (an empty list too). Spans that
//!   were invalid or late are counted in the metrics and the snapshots' stats; Zipkin's API has
//!   no partial-success answer to report them to the sender;
//! - `400 Bad Request` for a body that is not a Zipkin v2 JSON span list, an empty body, or a
//!   corrupt compressed body; `413` above the size limits; `415` for another content type
//!   (Zipkin's protobuf encoding is not supported) or content encoding;
//! - `503 Service Unavailable` with `Retry-After` when the ingest is overloaded or shutting
//!   down (retryable: nothing of the request was aggregated).
//!
//! Error bodies are `text/plain` messages.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use meshwatch_graph::span::ResourceKeys;
use meshwatch_graph::zipkin::decode_to_otlp;
use meshwatch_runtime::{Classify, public_message};

use crate::error::RequestError;
use crate::http::{count_request, decompress_off_reactor, read_limited};
use crate::metrics::Metrics;
use crate::pipeline::{Payload, Pipeline};

/// Path of the Zipkin v2 spans endpoint.
pub const SPANS_PATH: &str = "/api/v2/spans";
/// Protocol label of the request metrics.
const PROTOCOL: &str = "zipkin";

#[derive(Debug, Clone)]
struct AppState {
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    keys: Arc<ResourceKeys>,
    max_request_bytes: usize,
    max_decompressed_bytes: usize,
}

/// The Zipkin router; merged into the OTLP/HTTP app. `keys` are the ingest's graph keys.
pub fn router(
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    keys: ResourceKeys,
    max_request_bytes: usize,
    max_decompressed_bytes: usize,
) -> Router {
    Router::new()
        .route(SPANS_PATH, post(export))
        // The handler enforces its own limit with a clear error.
        .layer(DefaultBodyLimit::disable())
        .with_state(AppState {
            pipeline,
            metrics,
            keys: Arc::new(keys),
            max_request_bytes,
            max_decompressed_bytes,
        })
}

/// Zipkin v2 bodies are JSON; a missing content type is taken as JSON, as Zipkin does.
fn check_media_type(request: &Request) -> Result<(), RequestError> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let media = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => Ok(()),
        _ => Err(RequestError::UnsupportedMediaType(text.to_owned())),
    }
}

async fn export(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let result = handle(&state, request).await;
    count_request(&state.metrics, PROTOCOL, started, result.as_ref().copied());
    match result {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => {
            tracing::debug!(%error, class = %error.class(), "zipkin request refused");
            failure(&error)
        }
    }
}

/// Aggregates the request; `Ok(true)` when some spans were not accepted (invalid or late).
async fn handle(state: &AppState, request: Request) -> Result<bool, RequestError> {
    check_media_type(&request)?;
    let (encoding, body) = read_limited(
        request,
        &state.metrics,
        state.max_request_bytes,
        PROTOCOL,
        || {
            RequestError::Malformed(
                "empty body: expected a JSON array of Zipkin v2 spans".to_owned(),
            )
        },
    )
    .await?;
    let keys = Arc::clone(&state.keys);
    // Decompression and JSON parsing are CPU work: off the reactor.
    let request =
        decompress_off_reactor(body, encoding, state.max_decompressed_bytes, move |plain| {
            decode_to_otlp(&plain, &keys).map_err(|e| RequestError::Malformed(e.to_string()))
        })
        .await?;
    if request
        .resource_spans
        .iter()
        .all(|rs| rs.scope_spans.iter().all(|ss| ss.spans.is_empty()))
    {
        // `[]`: nothing to aggregate, and nothing refused.
        return Ok(false);
    }
    let report = state
        .pipeline
        .export(Payload::Request(Box::new(request)))
        .await?;
    Ok(report.not_accepted() > 0)
}

fn failure(error: &RequestError) -> Response {
    let mut response = (
        error.class().http_status(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from(public_message(error)),
    )
        .into_response();
    if let Some(delay) = error.retry_after()
        && let Ok(value) = HeaderValue::from_str(&delay.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
