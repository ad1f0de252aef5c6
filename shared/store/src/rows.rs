//! One row type per table, field for field the table's columns (same names, same order).
//!
//! Times are Unix milliseconds (`i64`), stored as `DateTime64(3, 'UTC')`. The types depend on
//! no other Meshwatch crate: the aggregator maps its messages onto them. Each is a
//! `clickhouse::Row` (RowBinary, checked against the table's schema on the first insert) and
//! serde-serialisable, and knows its approximate size for the writer's byte limit.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// One node of a graph in one window (`graph_nodes`). Key: (graph, window_start, service).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct GraphNodeRow {
    /// The graph (tenant, cluster or environment) the snapshot belongs to.
    pub graph: String,
    /// Start of the window, Unix ms.
    pub window_start: i64,
    /// Length of the window, ms.
    pub window_ms: u32,
    /// Service (or virtual node) name.
    pub service: String,
    /// Node kind (`service`, `database`, `messaging`, `user`, ...).
    pub kind: String,
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Median server-side latency, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile server-side latency, ms.
    pub latency_p95_ms: f64,
    /// 99th percentile server-side latency, ms.
    pub latency_p99_ms: f64,
    /// Mean server-side latency, ms.
    pub latency_mean_ms: f64,
    /// Calls made to other nodes.
    pub out_calls: u64,
    /// Outgoing calls that failed.
    pub out_errors: u64,
    /// 99th percentile of the outgoing calls' caller-side latency, ms.
    pub out_latency_p99_ms: f64,
    /// 99th percentile of the gap on calls into this node (caller view minus server view), ms.
    pub in_gap_p99_ms: f64,
    /// All spans of the node in the window.
    pub spans: u64,
    /// CPU utilisation (0..1 of the limit), when reported.
    pub cpu_utilization: Option<f64>,
    /// Memory in use, bytes, when reported.
    pub memory_bytes: Option<f64>,
}

/// One caller -> callee edge of a graph in one window (`graph_edges`).
/// Key: (graph, window_start, caller, callee).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct GraphEdgeRow {
    /// The graph.
    pub graph: String,
    /// Start of the window, Unix ms.
    pub window_start: i64,
    /// Length of the window, ms.
    pub window_ms: u32,
    /// Calling node.
    pub caller: String,
    /// Called node.
    pub callee: String,
    /// Connection type (`http`, `grpc`, `database`, `messaging`, ...).
    pub connection_type: String,
    /// Calls observed.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Calls seen from both sides.
    pub paired_calls: u64,
    /// Median caller-side latency, ms.
    pub client_p50_ms: f64,
    /// 99th percentile caller-side latency, ms.
    pub client_p99_ms: f64,
    /// 99th percentile callee-side latency, ms.
    pub server_p99_ms: f64,
    /// 99th percentile of client minus server duration per paired call, ms.
    pub gap_p99_ms: f64,
}

/// The detector's score of one node in one window (`anomaly_scores`).
/// Key: (graph, service, window_start, model_version).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct AnomalyScoreRow {
    /// The graph.
    pub graph: String,
    /// The scored node.
    pub service: String,
    /// Start of the window, Unix ms.
    pub window_start: i64,
    /// Length of the window, ms.
    pub window_ms: u32,
    /// The model that scored (name and version).
    pub model_version: String,
    /// Anomaly score.
    pub score: f32,
    /// The node's adaptive threshold at this window.
    pub threshold: f32,
    /// Whether `score` exceeded `threshold`.
    pub is_anomaly: bool,
    /// Whether the node had traffic in the window.
    pub present: bool,
    /// Top feature contributions `(feature, contribution)`, largest first (a `Map` column).
    pub contributions: Vec<(String, f32)>,
}

/// One state of an incident (`incidents`); a change is a new row with a higher `version`.
/// Key: (graph, opened_at, incident_id).
///
/// The ranked root causes are the Nested column `root_causes`: three arrays of equal length,
/// best candidate first ([`IncidentRow::root_causes`] zips them; [`IncidentRow::push_root_cause`]
/// keeps them aligned; ClickHouse refuses a row whose arrays differ in length).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct IncidentRow {
    /// The graph.
    pub graph: String,
    /// Stable id of the incident.
    pub incident_id: String,
    /// `detected` or `predicted` (a forecast crossing an SLO).
    pub kind: String,
    /// `open` or `resolved`.
    pub status: String,
    /// When the incident opened, Unix ms; never changes for an id.
    pub opened_at: i64,
    /// When this state was reached, Unix ms.
    pub updated_at: i64,
    /// When it resolved, Unix ms.
    pub resolved_at: Option<i64>,
    /// Severity (the analysis' scale).
    pub severity: f32,
    /// Services involved.
    pub services: Vec<String>,
    /// Root-cause candidates' services, best first (`root_causes.service`).
    #[serde(rename = "root_causes.service")]
    pub root_cause_services: Vec<String>,
    /// Their scores (`root_causes.score`).
    #[serde(rename = "root_causes.score")]
    pub root_cause_scores: Vec<f64>,
    /// Their evidence as JSON: top features, propagation path (`root_causes.evidence`).
    #[serde(rename = "root_causes.evidence")]
    pub root_cause_evidence: Vec<String>,
    /// Version of this state; the highest one is the incident's current state.
    pub version: u64,
}

impl IncidentRow {
    /// Appends a root-cause candidate (after the better ones).
    pub fn push_root_cause(
        &mut self,
        service: impl Into<String>,
        score: f64,
        evidence: impl Into<String>,
    ) {
        self.root_cause_services.push(service.into());
        self.root_cause_scores.push(score);
        self.root_cause_evidence.push(evidence.into());
    }

    /// The root-cause candidates `(service, score, evidence)`, best first.
    pub fn root_causes(&self) -> impl Iterator<Item = (&str, f64, &str)> {
        self.root_cause_services
            .iter()
            .zip(&self.root_cause_scores)
            .zip(&self.root_cause_evidence)
            .map(|((service, score), evidence)| (service.as_str(), *score, evidence.as_str()))
    }
}

/// One forecast point (`forecasts`).
/// Key: (graph, service, metric, target_time, horizon, model_version).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ForecastRow {
    /// The graph.
    pub graph: String,
    /// The forecast node.
    pub service: String,
    /// The forecast metric (e.g. `latency_p99_ms`, `error_ratio`).
    pub metric: String,
    /// Start of the last window the forecaster saw, Unix ms.
    pub issued_at: i64,
    /// Start of the forecast window, Unix ms.
    pub target_time: i64,
    /// Windows ahead of `issued_at`.
    pub horizon: u16,
    /// Point forecast.
    pub value: f32,
    /// Lower bound of the prediction interval.
    pub lower: f32,
    /// Upper bound of the prediction interval.
    pub upper: f32,
    /// The model that forecast.
    pub model_version: String,
}

/// Fixed overhead counted per row and per string (lengths, framing), so small rows still count.
const ROW_OVERHEAD: usize = 16;

impl GraphNodeRow {
    /// Approximate encoded size, bytes.
    pub fn approx_bytes(&self) -> usize {
        ROW_OVERHEAD + self.graph.len() + self.service.len() + self.kind.len() + 8 * 16
    }
}

impl GraphEdgeRow {
    /// Approximate encoded size, bytes.
    pub fn approx_bytes(&self) -> usize {
        ROW_OVERHEAD
            + self.graph.len()
            + self.caller.len()
            + self.callee.len()
            + self.connection_type.len()
            + 8 * 9
    }
}

impl AnomalyScoreRow {
    /// Approximate encoded size, bytes.
    pub fn approx_bytes(&self) -> usize {
        ROW_OVERHEAD
            + self.graph.len()
            + self.service.len()
            + self.model_version.len()
            + 24
            + self
                .contributions
                .iter()
                .map(|(feature, _)| feature.len() + 5)
                .sum::<usize>()
    }
}

impl IncidentRow {
    /// Approximate encoded size, bytes.
    pub fn approx_bytes(&self) -> usize {
        ROW_OVERHEAD
            + self.graph.len()
            + self.incident_id.len()
            + self.kind.len()
            + self.status.len()
            + 40
            + self.services.iter().map(|s| s.len() + 1).sum::<usize>()
            + self
                .root_causes()
                .map(|(service, _, evidence)| service.len() + evidence.len() + 10)
                .sum::<usize>()
    }
}

impl ForecastRow {
    /// Approximate encoded size, bytes.
    pub fn approx_bytes(&self) -> usize {
        ROW_OVERHEAD
            + self.graph.len()
            + self.service.len()
            + self.metric.len()
            + self.model_version.len()
            + 30
    }
}

/// Rows for every table, written together: one message's rows (a snapshot's nodes and edges)
/// or one batch of many messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Rows of `graph_nodes`.
    pub graph_nodes: Vec<GraphNodeRow>,
    /// Rows of `graph_edges`.
    pub graph_edges: Vec<GraphEdgeRow>,
    /// Rows of `anomaly_scores`.
    pub anomaly_scores: Vec<AnomalyScoreRow>,
    /// Rows of `incidents`.
    pub incidents: Vec<IncidentRow>,
    /// Rows of `forecasts`.
    pub forecasts: Vec<ForecastRow>,
}

impl Rows {
    /// Rows over all tables.
    pub fn len(&self) -> usize {
        self.graph_nodes.len()
            + self.graph_edges.len()
            + self.anomaly_scores.len()
            + self.incidents.len()
            + self.forecasts.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate encoded size of all rows, bytes.
    pub fn approx_bytes(&self) -> usize {
        self.graph_nodes
            .iter()
            .map(GraphNodeRow::approx_bytes)
            .sum::<usize>()
            + self
                .graph_edges
                .iter()
                .map(GraphEdgeRow::approx_bytes)
                .sum::<usize>()
            + self
                .anomaly_scores
                .iter()
                .map(AnomalyScoreRow::approx_bytes)
                .sum::<usize>()
            + self
                .incidents
                .iter()
                .map(IncidentRow::approx_bytes)
                .sum::<usize>()
            + self
                .forecasts
                .iter()
                .map(ForecastRow::approx_bytes)
                .sum::<usize>()
    }

    /// Moves all rows of `other` to the end of `self`.
    pub fn append(&mut self, mut other: Rows) {
        self.graph_nodes.append(&mut other.graph_nodes);
        self.graph_edges.append(&mut other.graph_edges);
        self.anomaly_scores.append(&mut other.anomaly_scores);
        self.incidents.append(&mut other.incidents);
        self.forecasts.append(&mut other.forecasts);
    }
}

impl From<Vec<GraphNodeRow>> for Rows {
    fn from(graph_nodes: Vec<GraphNodeRow>) -> Self {
        Self {
            graph_nodes,
            ..Self::default()
        }
    }
}

impl From<Vec<GraphEdgeRow>> for Rows {
    fn from(graph_edges: Vec<GraphEdgeRow>) -> Self {
        Self {
            graph_edges,
            ..Self::default()
        }
    }
}

impl From<Vec<AnomalyScoreRow>> for Rows {
    fn from(anomaly_scores: Vec<AnomalyScoreRow>) -> Self {
        Self {
            anomaly_scores,
            ..Self::default()
        }
    }
}

impl From<Vec<IncidentRow>> for Rows {
    fn from(incidents: Vec<IncidentRow>) -> Self {
        Self {
            incidents,
            ..Self::default()
        }
    }
}

impl From<Vec<ForecastRow>> for Rows {
    fn from(forecasts: Vec<ForecastRow>) -> Self {
        Self {
            forecasts,
            ..Self::default()
        }
    }
}
