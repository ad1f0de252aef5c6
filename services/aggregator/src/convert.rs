//! Pure conversions from bus messages and analysis results to store rows (no I/O, no state).

use meshwatch_analysis::{
    ForecastInput, ForecastPoint, IncidentChange, MetricForecast, PredictedIncident, RootCause,
};
use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::{ConnectionType, NodeKind};
use meshwatch_proto::v1;
use meshwatch_store::{ForecastRow, GraphEdgeRow, GraphNodeRow, IncidentRow, Rows};
use serde::Serialize;

/// `kind` of an incident found in the scores.
pub const KIND_DETECTED: &str = "detected";
/// `kind` of an incident predicted from a forecast crossing an SLO.
pub const KIND_PREDICTED: &str = "predicted";

/// The stored name of a node kind (as in the feature schema: `service`, `user`, ...).
pub fn node_kind(kind: NodeKind) -> &'static str {
    meshwatch_graph::features::schema::node_kind_name(kind)
}

/// The stored name of a connection type.
pub fn connection_type(kind: ConnectionType) -> &'static str {
    match kind {
        ConnectionType::Direct => "direct",
        ConnectionType::Entry => "entry",
        ConnectionType::Database => "database",
        ConnectionType::Messaging => "messaging",
        ConnectionType::VirtualPeer => "virtual_peer",
    }
}

/// Quantile `q` of `sketch`, 0 when empty.
fn quantile(sketch: &Sketch, q: f64) -> f64 {
    sketch.quantile(q).unwrap_or(0.0)
}

/// One snapshot's `graph_nodes` and `graph_edges` rows.
pub fn snapshot_rows(snapshot: &GraphSnapshot) -> Rows {
    let graph_nodes = snapshot
        .nodes
        .iter()
        .map(|node| {
            let latency = meshwatch_proto::latency_summary(&node.latency);
            GraphNodeRow {
                graph: snapshot.graph.clone(),
                window_start: snapshot.window_start_ms,
                window_ms: snapshot.window_ms,
                service: node.name.clone(),
                kind: node_kind(node.kind).to_owned(),
                requests: node.requests,
                errors: node.errors,
                latency_p50_ms: latency.p50_ms,
                latency_p95_ms: latency.p95_ms,
                latency_p99_ms: latency.p99_ms,
                latency_mean_ms: latency.mean_ms,
                out_calls: node.out_calls,
                out_errors: node.out_errors,
                out_latency_p99_ms: quantile(&node.out_latency, 0.99),
                in_gap_p99_ms: quantile(&node.in_gap, 0.99),
                spans: node.spans,
                cpu_utilization: node.resources.cpu_utilization,
                memory_bytes: node.resources.memory_bytes,
            }
        })
        .collect();
    let graph_edges = snapshot
        .edges
        .iter()
        .map(|edge| GraphEdgeRow {
            graph: snapshot.graph.clone(),
            window_start: snapshot.window_start_ms,
            window_ms: snapshot.window_ms,
            caller: edge.caller.clone(),
            callee: edge.callee.clone(),
            connection_type: connection_type(edge.connection_type).to_owned(),
            calls: edge.calls,
            errors: edge.errors,
            paired_calls: edge.paired_calls,
            client_p50_ms: quantile(&edge.client_latency, 0.50),
            client_p99_ms: quantile(&edge.client_latency, 0.99),
            server_p99_ms: quantile(&edge.server_latency, 0.99),
            gap_p99_ms: quantile(&edge.gap, 0.99),
        })
        .collect();
    Rows {
        graph_nodes,
        graph_edges,
        ..Rows::default()
    }
}

/// The stored model version of a report: `name:version`, or what of it is set.
pub fn model_version(model: Option<&v1::ModelRef>) -> String {
    match model {
        None => String::new(),
        Some(m) if m.name.is_empty() => m.version.clone(),
        Some(m) if m.version.is_empty() => m.name.clone(),
        Some(m) => format!("{}:{}", m.name, m.version),
    }
}

/// The evidence of a root-cause candidate, as stored (JSON).
#[derive(Debug, Serialize)]
struct Evidence<'a> {
    rank: u32,
    anomaly_ratio: f64,
    is_anomaly: bool,
    top_features: Vec<(&'a str, f64)>,
    path: &'a [String],
}

/// JSON of `value`; `{}` if it cannot be encoded (non-finite numbers are written as null by
/// serde_json, so this does not happen in practice).
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

fn evidence(candidate: &RootCause) -> String {
    to_json(&Evidence {
        rank: candidate.rank,
        anomaly_ratio: candidate.anomaly_ratio,
        is_anomaly: candidate.is_anomaly,
        top_features: candidate
            .top_features
            .iter()
            .map(|f| (f.name.as_str(), f.value))
            .collect(),
        path: &candidate.path,
    })
}

/// The `incidents` row of one change of a detected incident.
pub fn incident_row(change: &IncidentChange) -> IncidentRow {
    let incident = &change.incident;
    let mut row = IncidentRow {
        graph: incident.graph.clone(),
        incident_id: incident.id.clone(),
        kind: KIND_DETECTED.to_owned(),
        status: incident.status.as_str().to_owned(),
        opened_at: incident.opened_ms,
        updated_at: incident.updated_ms,
        resolved_at: incident.resolved_ms,
        severity: incident.severity as f32,
        services: incident.services.clone(),
        root_cause_services: Vec::new(),
        root_cause_scores: Vec::new(),
        root_cause_evidence: Vec::new(),
        version: incident.version,
    };
    for candidate in &incident.root_causes {
        row.push_root_cause(
            candidate.service.clone(),
            candidate.score,
            evidence(candidate),
        );
    }
    row
}

/// The evidence of a predicted incident, as stored (JSON).
#[derive(Debug, Serialize)]
struct PredictedEvidence<'a> {
    metric: &'a str,
    limit: f64,
    basis: meshwatch_analysis::ForecastBasis,
    issued_ms: i64,
    crossing_window_start_ms: i64,
    horizon: u32,
    value: f64,
    lower: f64,
    upper: f64,
    peak: f64,
}

/// The `incidents` row of a predicted SLO violation: `kind = predicted`, `status = open`,
/// `opened_at` = the predicted crossing window (stable for the incident's id, which is part of
/// the key), `updated_at` = the issuing window, `version` = the issuing window's start (a later
/// forecast that agrees replaces the row). Severity is the peak over the limit.
pub fn predicted_row(predicted: &PredictedIncident) -> IncidentRow {
    let severity = if predicted.limit > 0.0 {
        predicted.peak / predicted.limit
    } else {
        1.0
    };
    let mut row = IncidentRow {
        graph: predicted.graph.clone(),
        incident_id: predicted.id.clone(),
        kind: KIND_PREDICTED.to_owned(),
        status: "open".to_owned(),
        opened_at: predicted.crossing_window_start_ms,
        updated_at: predicted.issued_ms,
        resolved_at: None,
        severity: severity as f32,
        services: vec![predicted.service.clone()],
        root_cause_services: Vec::new(),
        root_cause_scores: Vec::new(),
        root_cause_evidence: Vec::new(),
        version: predicted.version,
    };
    row.push_root_cause(
        predicted.service.clone(),
        1.0,
        to_json(&PredictedEvidence {
            metric: &predicted.metric,
            limit: predicted.limit,
            basis: predicted.basis,
            issued_ms: predicted.issued_ms,
            crossing_window_start_ms: predicted.crossing_window_start_ms,
            horizon: predicted.horizon,
            value: predicted.value,
            lower: predicted.lower,
            upper: predicted.upper,
            peak: predicted.peak,
        }),
    );
    row
}

/// A forecast report's `forecasts` rows and its input to the SLO check.
pub fn forecast_rows(report: &v1::ForecastReport) -> (Vec<ForecastRow>, ForecastInput) {
    let version = model_version(report.model.as_ref());
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for node in &report.forecasts {
        for metric in &node.metrics {
            let mut points = Vec::with_capacity(metric.points.len());
            for point in &metric.points {
                rows.push(ForecastRow {
                    graph: report.graph.clone(),
                    service: node.node.clone(),
                    metric: metric.metric.clone(),
                    issued_at: report.window_start_ms,
                    target_time: point.target_window_start_ms,
                    horizon: u16::try_from(point.horizon).unwrap_or(u16::MAX),
                    value: point.value,
                    lower: point.lower,
                    upper: point.upper,
                    model_version: version.clone(),
                });
                points.push(ForecastPoint {
                    horizon: point.horizon,
                    target_window_start_ms: point.target_window_start_ms,
                    value: f64::from(point.value),
                    lower: f64::from(point.lower),
                    upper: f64::from(point.upper),
                });
            }
            series.push(MetricForecast {
                service: node.node.clone(),
                metric: metric.metric.clone(),
                points,
            });
        }
    }
    let input = ForecastInput {
        graph: report.graph.clone(),
        issued_window_start_ms: report.window_start_ms,
        window_ms: report.window_ms,
        series,
    };
    (rows, input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_versions() {
        assert_eq!(model_version(None), "");
        let m = v1::ModelRef {
            name: "detector".to_owned(),
            version: "3".to_owned(),
            ..v1::ModelRef::default()
        };
        assert_eq!(model_version(Some(&m)), "detector:3");
    }

    #[test]
    fn forecast_rows_follow_the_report() {
        let report = v1::ForecastReport {
            graph: "g".to_owned(),
            window_start_ms: 1000,
            window_ms: 10,
            forecasts: vec![v1::NodeForecast {
                node: "a".to_owned(),
                metrics: vec![v1::MetricForecast {
                    metric: "latency_p99_ms".to_owned(),
                    points: (1..=3)
                        .map(|h| v1::ForecastPoint {
                            horizon: h,
                            target_window_start_ms: 1000 + 10 * i64::from(h),
                            value: 1.0,
                            lower: 0.5,
                            upper: 2.0,
                        })
                        .collect(),
                }],
                ..v1::NodeForecast::default()
            }],
            ..v1::ForecastReport::default()
        };
        let (rows, input) = forecast_rows(&report);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].horizon, 3);
        assert_eq!(rows[2].target_time, 1030);
        assert_eq!(input.series.len(), 1);
        assert_eq!(input.series[0].points.len(), 3);
    }
}
