//! Model outputs to the published results (`proto/meshwatch/v1/inference.proto`):
//! [`AnomalyReport`] from the detector's outputs, [`ForecastReport`] from the forecaster's.
//!
//! Outputs are checked against the window before anything is built: the right variant, shapes
//! matching the window's N (and F, M), and only finite numbers — a NaN is never published.

use meshwatch_model::ModelOutputs;
use meshwatch_proto::v1::{
    AnomalyReport, CallEdge, FeatureContribution, ForecastPoint, ForecastReport, MetricForecast,
    ModelRef, NodeForecast, NodeKind, NodeScore,
};

use crate::window::Window;

const ANOMALY_SCORE: &str = "anomaly_score";
const FEATURE_CONTRIBUTION: &str = "feature_contribution";
const FORECAST: &str = "forecast";
const FORECAST_INTERVAL: &str = "forecast_interval";

/// Model outputs that cannot become a report: the output (contract name) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model output {output}: {message}")]
pub struct ReportError {
    /// Contract name of the output (`anomaly_score`, `forecast_interval`, ...).
    pub output: String,
    /// What is wrong with it.
    pub message: String,
}

impl ReportError {
    fn new(output: &str, message: impl Into<String>) -> Self {
        Self {
            output: output.to_owned(),
            message: message.into(),
        }
    }
}

/// The detector's `outputs` for `window` as an [`AnomalyReport`].
///
/// One [`NodeScore`] per node of the window (`window.encoded.node_names`: sorted, same order),
/// its kind from `window.encoded.node_kinds`, `present` when the node is in the last window's
/// snapshot, and the `top_k` largest contributions (at most F) by absolute value, descending,
/// ties in feature order, named from `feature_names` (the manifest's `node_features`).
///
/// Errors: forecaster outputs; `anomaly_score` not `[N]`; `feature_contribution` not `[N, F]`
/// with F the window's node features and `feature_names.len()`; any score or contribution that
/// is NaN or infinite.
pub fn anomaly_report(
    window: &Window,
    outputs: &ModelOutputs,
    model: &ModelRef,
    feature_names: &[String],
    top_k: usize,
) -> Result<AnomalyReport, ReportError> {
    let ModelOutputs::Detector {
        anomaly_score,
        feature_contribution,
    } = outputs
    else {
        return Err(ReportError::new(
            ANOMALY_SCORE,
            "missing: the model produced forecaster outputs",
        ));
    };
    let encoded = &window.encoded;
    let n = encoded.node_count();
    let f = encoded.node_features.shape().get(2).copied().unwrap_or(0);
    if anomaly_score.shape() != [n] {
        return Err(shape_error(ANOMALY_SCORE, anomaly_score.shape(), &[n]));
    }
    if feature_contribution.shape() != [n, f] {
        return Err(shape_error(
            FEATURE_CONTRIBUTION,
            feature_contribution.shape(),
            &[n, f],
        ));
    }
    if feature_names.len() != f {
        return Err(ReportError::new(
            FEATURE_CONTRIBUTION,
            format!(
                "{} feature names for {f} node features",
                feature_names.len()
            ),
        ));
    }

    let last = encoded.steps().saturating_sub(1);
    let top_k = top_k.min(f);
    let mut scores = Vec::with_capacity(n);
    for (i, ((name, &kind), &score)) in encoded
        .node_names
        .iter()
        .zip(&encoded.node_kinds)
        .zip(anomaly_score)
        .enumerate()
    {
        if !score.is_finite() {
            return Err(ReportError::new(
                ANOMALY_SCORE,
                format!("node {name:?}: score {score} is not finite"),
            ));
        }
        let row = feature_contribution.row(i);
        if let Some((j, value)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ReportError::new(
                FEATURE_CONTRIBUTION,
                format!("node {name:?}, feature {j}: {value} is not finite"),
            ));
        }
        let mut order: Vec<usize> = (0..f).collect();
        // Finite values: total_cmp is the numeric order; stable ties in feature order.
        order.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()).then(a.cmp(&b)));
        let contributions = order
            .into_iter()
            .take(top_k)
            .map(|j| FeatureContribution {
                feature: feature_names[j].clone(),
                value: row[j],
            })
            .collect();
        scores.push(NodeScore {
            node: name.clone(),
            kind: NodeKind::from(kind).into(),
            score,
            present: present(window, last, i),
            contributions,
        });
    }

    Ok(AnomalyReport {
        graph: window.graph.clone(),
        window_start_ms: window.last_window_start_ms(),
        window_ms: window.window_ms,
        model: Some(model.clone()),
        steps: saturating_u32(window.steps()),
        observed_steps: saturating_u32(window.observed_steps()),
        scores,
        edges: last_window_edges(window),
    })
}

/// The edges with a call in the window's last step, sorted by (caller, callee) as the encoder
/// orders them.
fn last_window_edges(window: &Window) -> Vec<CallEdge> {
    let encoded = &window.encoded;
    let e = encoded.edge_count();
    let t = encoded.steps();
    let (index, weight) = (encoded.edge_index.data(), encoded.edge_weight.data());
    let name = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| encoded.node_names.get(i))
            .cloned()
    };
    (0..e)
        .filter(|&k| t > 0 && weight.get((t - 1) * e + k).is_some_and(|&w| w > 0.0))
        .filter_map(|k| {
            Some(CallEdge {
                caller: name(*index.get(k)?)?,
                callee: name(*index.get(e + k)?)?,
            })
        })
        .collect()
}

/// The forecaster's `outputs` for `window` as a [`ForecastReport`].
///
/// For every node of the window (sorted, as in `window.encoded.node_names`) and every target
/// in `targets` (the manifest's `targets`: index m of the M axis), H points with horizon
/// h = 1..=H, `target_window_start_ms` = last window start + h · window, value
/// `forecast[h-1, n, m]`, lower and upper `forecast_interval[h-1, n, m, 0 / 1]`.
///
/// Errors: detector outputs; `forecast` not `[H, N, M]` with H ≥ 1 and M = `targets.len()`;
/// `forecast_interval` not `[H, N, M, 2]`; any value or bound that is NaN or infinite.
pub fn forecast_report(
    window: &Window,
    outputs: &ModelOutputs,
    model: &ModelRef,
    targets: &[String],
) -> Result<ForecastReport, ReportError> {
    let ModelOutputs::Forecaster { forecast, interval } = outputs else {
        return Err(ReportError::new(
            FORECAST,
            "missing: the model produced detector outputs",
        ));
    };
    let encoded = &window.encoded;
    let n = encoded.node_count();
    let m = targets.len();
    let h = forecast.shape().first().copied().unwrap_or(0);
    if h == 0 || forecast.shape() != [h, n, m] {
        return Err(ReportError::new(
            FORECAST,
            format!(
                "shape {:?}, expected [H, {n}, {m}] with H at least 1 ({n} nodes, {m} targets)",
                forecast.shape()
            ),
        ));
    }
    if interval.shape() != [h, n, m, 2] {
        return Err(shape_error(
            FORECAST_INTERVAL,
            interval.shape(),
            &[h, n, m, 2],
        ));
    }

    let last_start = window.last_window_start_ms();
    let starts = (1..=h)
        .map(|step| {
            let offset = i64::try_from(step)
                .ok()
                .and_then(|s| s.checked_mul(i64::from(window.window_ms)))?;
            last_start.checked_add(offset)
        })
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| {
            ReportError::new(FORECAST, format!("{h} windows after {last_start} overflow"))
        })?;

    let last = encoded.steps().saturating_sub(1);
    let mut forecasts = Vec::with_capacity(n);
    for (i, (name, &kind)) in encoded
        .node_names
        .iter()
        .zip(&encoded.node_kinds)
        .enumerate()
    {
        let mut metrics = Vec::with_capacity(m);
        for (j, metric) in targets.iter().enumerate() {
            let mut points = Vec::with_capacity(h);
            for (step, &target_window_start_ms) in starts.iter().enumerate() {
                let value = forecast[[step, i, j]];
                let lower = interval[[step, i, j, 0]];
                let upper = interval[[step, i, j, 1]];
                let horizon = saturating_u32(step + 1);
                if !value.is_finite() {
                    return Err(not_finite(FORECAST, name, metric, horizon, value));
                }
                for bound in [lower, upper] {
                    if !bound.is_finite() {
                        return Err(not_finite(FORECAST_INTERVAL, name, metric, horizon, bound));
                    }
                }
                points.push(ForecastPoint {
                    horizon,
                    target_window_start_ms,
                    value,
                    lower,
                    upper,
                });
            }
            metrics.push(MetricForecast {
                metric: metric.clone(),
                points,
            });
        }
        forecasts.push(NodeForecast {
            node: name.clone(),
            kind: NodeKind::from(kind).into(),
            present: present(window, last, i),
            metrics,
        });
    }

    Ok(ForecastReport {
        graph: window.graph.clone(),
        window_start_ms: last_start,
        window_ms: window.window_ms,
        model: Some(model.clone()),
        steps: saturating_u32(window.steps()),
        observed_steps: saturating_u32(window.observed_steps()),
        horizon: saturating_u32(h),
        forecasts,
    })
}

/// Whether node `n` is in the snapshot of step `t`.
fn present(window: &Window, t: usize, n: usize) -> bool {
    window
        .encoded
        .node_mask
        .get(&[t, n])
        .is_some_and(|&m| m > 0.5)
}

fn shape_error(output: &str, actual: &[usize], expected: &[usize]) -> ReportError {
    ReportError::new(output, format!("shape {actual:?}, expected {expected:?}"))
}

fn not_finite(output: &str, node: &str, metric: &str, horizon: u32, value: f32) -> ReportError {
    ReportError::new(
        output,
        format!("node {node:?}, {metric}, horizon {horizon}: {value} is not finite"),
    )
}

fn saturating_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
