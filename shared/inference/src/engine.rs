//! One inference, the same for the gRPC API and the stream: a checked window through the
//! model server to a report that names the model version that produced it.

use meshwatch_graph::features::StepFeatures;
use meshwatch_model::{ModelInfo, ModelKind, Server};
use meshwatch_proto::v1;

use crate::error::InferError;
use crate::report::{anomaly_report, forecast_report};
use crate::window::{self, Window};

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

/// The report of a graph's history `steps` (oldest first, the scored window last; from
/// [`History::window`](crate::history::History::window)); `None` when no step has a node
/// (nothing to score). The same for the stream and the all-in-one.
pub async fn infer_steps(
    server: &Server,
    graph: &str,
    window_ms: u32,
    steps: &[StepFeatures],
    top_k: usize,
) -> Result<Option<Report>, InferError> {
    if steps.iter().all(|s| s.nodes.is_empty()) {
        return Ok(None);
    }
    let window = window::from_steps(graph, window_ms, steps, server.info().kind)?;
    infer(server, window, top_k).await.map(Some)
}
