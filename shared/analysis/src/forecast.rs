//! Forecast warnings: a forecast that crosses a service-level objective within its horizon
//! becomes a `predicted` incident.
//!
//! For each (service, metric) with an SLO limit `L` (per metric, optionally overridden per
//! service), the points are taken in order of target window; the first point whose chosen
//! value — the point forecast, or the lower bound of the prediction interval for warnings
//! with high confidence, or the upper bound for early ones ([`ForecastBasis`]) — is above `L`
//! gives the warning, with the crossing's target window, horizon and values. Non-finite values
//! never cross.
//!
//! `id` = the first 16 hex digits of SHA-256(`"predicted"`, graph, service, metric, target window
//! start of the first crossing): successive forecasts that agree on when the SLO will be
//! crossed give the same id (one row in a ReplacingMergeTree, `version` = the issuing window's
//! start), a forecast that moves the crossing gives a new one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{AnalysisError, Problems};
use crate::id::stable_id;

/// Which value of a forecast point is compared with the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastBasis {
    /// The point forecast.
    #[default]
    Value,
    /// The lower bound of the interval: warn only when even it crosses (high confidence).
    Lower,
    /// The upper bound of the interval: warn as soon as a crossing is plausible.
    Upper,
}

/// SLO limits: a metric is over its objective when its value is above the limit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloConfig {
    /// Limit per metric name (e.g. `latency_p99_ms = 500`, `error_ratio = 0.05`).
    pub limits: BTreeMap<String, f64>,
    /// Per-service limits that replace (or add to) those of `limits`: service → metric → limit.
    pub overrides: BTreeMap<String, BTreeMap<String, f64>>,
    /// The value compared with the limit.
    pub basis: ForecastBasis,
}

impl SloConfig {
    /// Checks every limit is finite, reporting all problems at once.
    pub fn validate(&self) -> Result<(), AnalysisError> {
        let mut p = Problems::default();
        for (metric, limit) in &self.limits {
            p.check(
                !limit.is_finite(),
                format!("slo.limits.{metric} must be finite"),
            );
        }
        for (service, limits) in &self.overrides {
            for (metric, limit) in limits {
                p.check(
                    !limit.is_finite(),
                    format!("slo.overrides.{service}.{metric} must be finite"),
                );
            }
        }
        p.finish()
    }

    /// The limit of `metric` for `service`, if any.
    #[must_use]
    pub fn limit(&self, service: &str, metric: &str) -> Option<f64> {
        self.overrides
            .get(service)
            .and_then(|m| m.get(metric))
            .or_else(|| self.limits.get(metric))
            .copied()
    }
}

/// One forecast step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// 1 = the window after the issuing one.
    pub horizon: u32,
    /// Start of the forecast window, unix ms.
    pub target_window_start_ms: i64,
    /// Point forecast.
    pub value: f64,
    /// Lower bound of the prediction interval.
    pub lower: f64,
    /// Upper bound of the prediction interval.
    pub upper: f64,
}

impl ForecastPoint {
    fn basis(&self, basis: ForecastBasis) -> f64 {
        match basis {
            ForecastBasis::Value => self.value,
            ForecastBasis::Lower => self.lower,
            ForecastBasis::Upper => self.upper,
        }
    }
}

/// The forecast of one metric of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricForecast {
    /// Service (node) name.
    pub service: String,
    /// Metric name (`latency_p99_ms`, `error_ratio`, ...).
    pub metric: String,
    /// The forecast steps (any order).
    pub points: Vec<ForecastPoint>,
}

/// One forecast of one graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastInput {
    /// Graph name.
    pub graph: String,
    /// Start of the last observed window the forecast was issued from, unix ms.
    pub issued_window_start_ms: i64,
    /// Window length, ms.
    pub window_ms: u32,
    /// The series.
    pub series: Vec<MetricForecast>,
}

/// A predicted SLO violation (status `predicted` in the incidents table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedIncident {
    /// Stable id (16 hex digits).
    pub id: String,
    /// Graph name.
    pub graph: String,
    /// Service expected to violate its SLO.
    pub service: String,
    /// Metric of the SLO.
    pub metric: String,
    /// The SLO limit.
    pub limit: f64,
    /// Which value crossed it.
    pub basis: ForecastBasis,
    /// Start of the issuing window, unix ms.
    pub issued_ms: i64,
    /// Start of the first window forecast over the limit, unix ms.
    pub crossing_window_start_ms: i64,
    /// Its horizon (1 = next window).
    pub horizon: u32,
    /// Point forecast at the crossing.
    pub value: f64,
    /// Lower bound at the crossing.
    pub lower: f64,
    /// Upper bound at the crossing.
    pub upper: f64,
    /// Largest compared value over the horizon.
    pub peak: f64,
    /// Row version: the issuing window's start (later forecasts replace earlier ones).
    pub version: u64,
}

/// The SLO crossings of `forecast`, sorted by service then metric; the configuration is
/// validated first.
pub fn predicted_incidents(
    forecast: &ForecastInput,
    config: &SloConfig,
) -> Result<Vec<PredictedIncident>, AnalysisError> {
    config.validate()?;
    let mut out = Vec::new();
    for series in &forecast.series {
        let Some(limit) = config.limit(&series.service, &series.metric) else {
            continue;
        };
        let mut points: Vec<&ForecastPoint> = series.points.iter().collect();
        points.sort_by(|a, b| {
            a.target_window_start_ms
                .cmp(&b.target_window_start_ms)
                .then(a.horizon.cmp(&b.horizon))
        });
        let compared = |p: &ForecastPoint| Some(p.basis(config.basis)).filter(|v| v.is_finite());
        let Some(first) = points
            .iter()
            .find(|p| compared(p).is_some_and(|v| v > limit))
        else {
            continue;
        };
        let peak = points
            .iter()
            .filter_map(|p| compared(p))
            .fold(f64::NEG_INFINITY, f64::max);
        let crossing = first.target_window_start_ms.to_string();
        out.push(PredictedIncident {
            id: stable_id(&[
                "predicted",
                &forecast.graph,
                &series.service,
                &series.metric,
                &crossing,
            ]),
            graph: forecast.graph.clone(),
            service: series.service.clone(),
            metric: series.metric.clone(),
            limit,
            basis: config.basis,
            issued_ms: forecast.issued_window_start_ms,
            crossing_window_start_ms: first.target_window_start_ms,
            horizon: first.horizon,
            value: first.value,
            lower: first.lower,
            upper: first.upper,
            peak,
            version: u64::try_from(forecast.issued_window_start_ms).unwrap_or(0),
        });
    }
    out.sort_by(|a, b| {
        (
            a.service.as_str(),
            a.metric.as_str(),
            a.crossing_window_start_ms,
        )
            .cmp(&(
                b.service.as_str(),
                b.metric.as_str(),
                b.crossing_window_start_ms,
            ))
    });
    Ok(out)
}

#[cfg(test)]
mod tests;
