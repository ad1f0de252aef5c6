//! One inference, the same for the gRPC API and the stream: a checked window through the
//! model server to a report that names the model version that produced it.

use meshwatch_model::{ModelInfo, ModelKind, Server};
use meshwatch_proto::v1;

use crate::error::InferError;
use crate::report::{anomaly_report, forecast_report};
use crate::window::Window;

/// A report of either service.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Anomaly(v1::AnomalyReport),
    Forecast(v1::ForecastReport),
}

impl Report {
    /// The model version that produced it.
    pub fn model_version(&self) -> &str {
        let model = match self {
            Self::Anomaly(r) => r.model.as_ref(),
            Self::Forecast(r) => r.model.as_ref(),
        };
        model.map_or("", |m| m.version.as_str())
    }

    /// Start of the last window of the history it was computed from.
    pub fn window_start_ms(&self) -> i64 {
        match self {
            Self::Anomaly(r) => r.window_start_ms,
            Self::Forecast(r) => r.window_start_ms,
        }
    }
}

/// The `ModelRef` of a served model.
pub fn model_ref(info: &ModelInfo) -> v1::ModelRef {
    v1::ModelRef {
        name: info.name.clone(),
        version: info.version.clone(),
        execution_provider: info.execution_provider.name().to_owned(),
    }
}

/// Runs `window` through `server` and builds the report (`top_k` contributions per node for
/// the detector).
pub async fn infer(
    server: &Server,
    mut window: Window,
    top_k: usize,
) -> Result<Report, InferError> {
    let inferred = server.infer(window.take_inputs()).await?;
    let model = model_ref(&inferred.model);
    let report = match inferred.model.kind {
        ModelKind::Detector => Report::Anomaly(anomaly_report(
            &window,
            &inferred.outputs,
            &model,
            &inferred.model.node_features,
            top_k,
        )?),
        ModelKind::Forecaster => Report::Forecast(forecast_report(
            &window,
            &inferred.outputs,
            &model,
            &inferred.model.targets,
        )?),
    };
    Ok(report)
}
