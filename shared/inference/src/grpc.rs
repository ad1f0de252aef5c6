//! The gRPC API: `meshwatch.v1.Detector/Detect` and `meshwatch.v1.Forecaster/Forecast`.
//!
//! Stateless: the request carries the window of snapshots. Limits are checked before the model
//! sees anything ([`Limits`]; INVALID_ARGUMENT naming the field); the caller's deadline
//! (`grpc-timeout`), capped by `grpc.default_timeout`, bounds the whole request
//! (DEADLINE_EXCEEDED); an overloaded model answers UNAVAILABLE at once (retryable); a model
//! still loading answers UNAVAILABLE too (health says NOT_SERVING until it is warm).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use meshwatch_model::{ModelKind, Server};
use meshwatch_proto::v1;
use meshwatch_runtime::to_status;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::engine::{self, Report};
use crate::error::InferError;
use crate::limits::Limits;
use crate::metrics::ServiceMetrics;
use crate::window;

/// Taken off the caller's deadline (see [`ApiState`]'s `timeout`).
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(2);

/// What both APIs share: the model server (once loaded), limits and metrics.
#[derive(Debug)]
pub struct ApiState {
    server: Arc<OnceLock<Server>>,
    limits: Limits,
    default_timeout: Duration,
    metrics: ServiceMetrics,
}

impl ApiState {
    pub fn new(
        server: Arc<OnceLock<Server>>,
        limits: Limits,
        default_timeout: Duration,
        metrics: ServiceMetrics,
    ) -> Self {
        Self {
            server,
            limits,
            default_timeout,
            metrics,
        }
    }

    fn server(&self) -> Result<&Server, InferError> {
        self.server.get().ok_or(InferError::Loading)
    }

    /// The request's time budget: its `grpc-timeout` less [`DEADLINE_MARGIN`], at most
    /// `default_timeout`. The margin lets this service answer DEADLINE_EXCEEDED itself before
    /// tonic's own timer (which answers CANCELLED) fires at the caller's deadline.
    fn timeout(&self, metadata: &MetadataMap) -> Duration {
        metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(self.default_timeout, |t| {
                t.saturating_sub(DEADLINE_MARGIN).min(self.default_timeout)
            })
    }

    async fn run(
        &self,
        kind: ModelKind,
        snapshots: Vec<v1::GraphSnapshot>,
        top_contributions: u32,
        timeout: Duration,
    ) -> Result<Report, InferError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let server = self.server()?.clone();
        let top_k = self.limits.top_contributions(top_contributions)?;
        let steps = server.info().steps;
        let limits = self.limits.clone();
        // Decoding and encoding are CPU work proportional to the request.
        let encode = tokio::task::spawn_blocking(move || {
            window::from_snapshots(&snapshots, kind, steps, &limits)
        });
        let work = async move {
            let window = encode
                .await
                .map_err(|e| InferError::Task(e.to_string()))??;
            engine::infer(&server, window, top_k).await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(InferError::Deadline {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    fn finish<T>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<T, InferError>,
    ) -> Result<T, Status> {
        let elapsed = started.elapsed();
        match result {
            Ok(value) => {
                self.metrics.observe_request(method, "ok", elapsed);
                Ok(value)
            }
            Err(error) => {
                self.metrics
                    .observe_request(method, error.reason(), elapsed);
                if error.is_retryable() || matches!(error, InferError::Request(_)) {
                    tracing::debug!(%error, method, "request failed");
                } else {
                    tracing::warn!(%error, method, "request failed");
                }
                Err(to_status(&error))
            }
        }
    }
}

/// `meshwatch.v1.Detector`.
#[derive(Debug, Clone)]
pub struct DetectorApi(pub Arc<ApiState>);

#[tonic::async_trait]
impl v1::detector_server::Detector for DetectorApi {
    async fn detect(
        &self,
        request: Request<v1::DetectRequest>,
    ) -> Result<Response<v1::DetectResponse>, Status> {
        let started = Instant::now();
        let timeout = self.0.timeout(request.metadata());
        let request = request.into_inner();
        let result = self
            .0
            .run(
                ModelKind::Detector,
                request.snapshots,
                request.top_contributions,
                timeout,
            )
            .await
            .and_then(|report| match report {
                Report::Anomaly(report) => Ok(report),
                Report::Forecast(_) => Err(InferError::Task(
                    "the detector service serves a forecaster".to_owned(),
                )),
            });
        self.0.finish("Detect", started, result).map(|report| {
            Response::new(v1::DetectResponse {
                report: Some(report),
            })
        })
    }
}

/// `meshwatch.v1.Forecaster`.
#[derive(Debug, Clone)]
pub struct ForecasterApi(pub Arc<ApiState>);

#[tonic::async_trait]
impl v1::forecaster_server::Forecaster for ForecasterApi {
    async fn forecast(
        &self,
        request: Request<v1::ForecastRequest>,
    ) -> Result<Response<v1::ForecastResponse>, Status> {
        let started = Instant::now();
        let timeout = self.0.timeout(request.metadata());
        let request = request.into_inner();
        let result = self
            .0
            .run(ModelKind::Forecaster, request.snapshots, 0, timeout)
            .await
            .and_then(|report| match report {
                Report::Forecast(report) => Ok(report),
                Report::Anomaly(_) => Err(InferError::Task(
                    "the forecaster service serves a detector".to_owned(),
                )),
            });
        self.0.finish("Forecast", started, result).map(|report| {
            Response::new(v1::ForecastResponse {
                report: Some(report),
            })
        })
    }
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`). `None` when malformed (the server's default applies).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit_at = value.len().checked_sub(1)?;
    if !value.is_char_boundary(unit_at) {
        return None;
    }
    let (digits, unit) = value.split_at(unit_at);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "10", "10x", "123456789S", "-1S", "1.5S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
