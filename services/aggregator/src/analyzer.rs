//! The stateful part of the results path: adaptive thresholds per (graph, service) and incident
//! tracking per graph, fed one report at a time, turning reports into rows.
//!
//! A window of a graph that is not after the last one seen (a JetStream redelivery) is judged
//! against the current thresholds without updating them, and gives no incident rows: its
//! incident changes were emitted when it was first seen (and, until acked, they are in the same
//! batch as its score rows). The state lives in memory: a restarted aggregator calibrates its
//! thresholds again from the windows it is given.

use std::collections::{BTreeMap, BTreeSet};

use meshwatch_analysis::{
    AnalysisError, CallEdge, ChangeKind, FeatureContribution, IncidentConfig, IncidentTracker,
    ServiceWindow, SloConfig, ThresholdConfig, Thresholds, WindowInput, predicted_incidents,
};
use meshwatch_proto::v1;
use meshwatch_store::{AnomalyScoreRow, Rows};

use crate::convert;

/// What one report became.
#[derive(Debug, Default)]
pub struct Analyzed {
    /// Rows to write.
    pub rows: Rows,
    /// Incident changes by kind label (`opened`, `updated`, `resolved`, `merged`, `predicted`).
    pub changes: Vec<&'static str>,
    /// Whether the report's window had been seen already (a redelivery).
    pub redelivery: bool,
}

/// Why a report cannot be used (it goes to the dead-letter subject).
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// A node is scored twice in one report.
    #[error("node {0:?} is scored more than once")]
    DuplicateNode(String),
    /// The analysis refused the input.
    #[error("{0}")]
    Analysis(#[from] AnalysisError),
}

/// Thresholds, incidents and SLOs of the results path.
#[derive(Debug)]
pub struct Analyzer {
    thresholds: Thresholds,
    tracker: IncidentTracker,
    slo: SloConfig,
    /// Latest window start seen per graph.
    last_window: BTreeMap<String, i64>,
}

fn change_label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Opened => "opened",
        ChangeKind::Updated => "updated",
        ChangeKind::Resolved => "resolved",
        ChangeKind::Merged => "merged",
    }
}

impl Analyzer {
    /// A fresh state; the configurations are validated.
    pub fn new(
        thresholds: ThresholdConfig,
        max_series: usize,
        incidents: IncidentConfig,
        slo: SloConfig,
    ) -> Result<Self, AnalysisError> {
        slo.validate()?;
        Ok(Self {
            thresholds: Thresholds::new(thresholds, max_series)?,
            tracker: IncidentTracker::new(incidents)?,
            slo,
            last_window: BTreeMap::new(),
        })
    }

    /// Threshold series held.
    pub fn series(&self) -> usize {
        self.thresholds.len()
    }

    /// Score rows of `report` (one per node) and, for a new window, its incident changes.
    pub fn scores(&mut self, report: &v1::AnomalyReport) -> Result<Analyzed, Rejected> {
        let mut seen = BTreeSet::new();
        for node in &report.scores {
            if !seen.insert(node.node.as_str()) {
                return Err(Rejected::DuplicateNode(node.node.clone()));
            }
        }
        let graph = report.graph.as_str();
        let redelivery = self
            .last_window
            .get(graph)
            .is_some_and(|&last| report.window_start_ms <= last);
        let version = convert::model_version(report.model.as_ref());
        let mut rows = Vec::with_capacity(report.scores.len());
        let mut services = Vec::with_capacity(report.scores.len());
        for node in &report.scores {
            let score = f64::from(node.score);
            let (threshold, is_anomaly) = if !node.present || redelivery {
                // Judged, not learned from: an absent node's score says nothing about its
                // normal level, and a redelivered one was learned from already.
                // A node without a series yet gets threshold 0 and is not anomalous.
                match self.thresholds.get(graph, &node.node) {
                    Some(spot) => (spot.threshold(), node.present && score > spot.threshold()),
                    None => (0.0, false),
                }
            } else {
                let decision = self.thresholds.observe(graph, &node.node, score);
                (decision.threshold, decision.is_anomaly)
            };
            rows.push(AnomalyScoreRow {
                graph: report.graph.clone(),
                service: node.node.clone(),
                window_start: report.window_start_ms,
                window_ms: report.window_ms,
                model_version: version.clone(),
                score: node.score,
                threshold: threshold as f32,
                is_anomaly,
                present: node.present,
                contributions: node
                    .contributions
                    .iter()
                    .map(|c| (c.feature.clone(), c.value))
                    .collect(),
            });
            if node.present {
                services.push(ServiceWindow {
                    service: node.node.clone(),
                    score,
                    threshold,
                    is_anomaly,
                    contributions: node
                        .contributions
                        .iter()
                        .map(|c| FeatureContribution {
                            name: c.feature.clone(),
                            value: f64::from(c.value),
                        })
                        .collect(),
                });
            }
        }
        let mut analyzed = Analyzed {
            rows: Rows {
                anomaly_scores: rows,
                ..Rows::default()
            },
            changes: Vec::new(),
            redelivery,
        };
        if redelivery {
            return Ok(analyzed);
        }
        self.last_window
            .insert(report.graph.clone(), report.window_start_ms);
        let window = WindowInput {
            graph: report.graph.clone(),
            window_start_ms: report.window_start_ms,
            window_ms: report.window_ms,
            edges: report
                .edges
                .iter()
                .map(|e| CallEdge {
                    caller: e.caller.clone(),
                    callee: e.callee.clone(),
                })
                .collect(),
            services,
        };
        match self.tracker.observe(&window) {
            Ok(changes) => {
                for change in &changes {
                    analyzed.changes.push(change_label(change.kind));
                    analyzed.rows.incidents.push(convert::incident_row(change));
                }
            }
            Err(AnalysisError::WindowOutOfOrder { .. }) => analyzed.redelivery = true,
            Err(other) => return Err(other.into()),
        }
        Ok(analyzed)
    }

    /// Forecast rows of `report` and its predicted incidents.
    pub fn forecast(&self, report: &v1::ForecastReport) -> Result<Analyzed, Rejected> {
        let (forecasts, input) = convert::forecast_rows(report);
        let predicted = predicted_incidents(&input, &self.slo)?;
        Ok(Analyzed {
            changes: vec!["predicted"; predicted.len()],
            rows: Rows {
                forecasts,
                incidents: predicted.iter().map(convert::predicted_row).collect(),
                ..Rows::default()
            },
            redelivery: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(window: i64, scores: &[(&str, f32)]) -> v1::AnomalyReport {
        v1::AnomalyReport {
            graph: "g".to_owned(),
            window_start_ms: window * 1000,
            window_ms: 1000,
            scores: scores
                .iter()
                .map(|(node, score)| v1::NodeScore {
                    node: (*node).to_owned(),
                    score: *score,
                    present: true,
                    ..v1::NodeScore::default()
                })
                .collect(),
            edges: vec![
                v1::CallEdge {
                    caller: "a".to_owned(),
                    callee: "b".to_owned(),
                },
                v1::CallEdge {
                    caller: "b".to_owned(),
                    callee: "c".to_owned(),
                },
            ],
            ..v1::AnomalyReport::default()
        }
    }

    fn analyzer() -> Analyzer {
        Analyzer::new(
            ThresholdConfig {
                calibration_windows: 10,
                risk: 0.01,
                ..ThresholdConfig::default()
            },
            100,
            IncidentConfig::default(),
            SloConfig::default(),
        )
        .expect("valid")
    }

    #[test]
    fn a_fault_opens_an_incident_and_a_redelivery_adds_none() {
        let mut analyzer = analyzer();
        for w in 0..30 {
            let noise = (w % 5) as f32 * 0.01;
            let out = analyzer
                .scores(&report(
                    w,
                    &[("a", 0.1 + noise), ("b", 0.1), ("c", 0.12 - noise)],
                ))
                .expect("ok");
            assert_eq!(out.rows.anomaly_scores.len(), 3);
        }
        let out = analyzer
            .scores(&report(30, &[("a", 5.0), ("b", 8.0), ("c", 50.0)]))
            .expect("ok");
        assert!(out.rows.anomaly_scores.iter().all(|r| r.is_anomaly));
        assert_eq!(out.changes, vec!["opened"]);
        let incident = &out.rows.incidents[0];
        assert_eq!(incident.kind, "detected");
        assert_eq!(incident.root_cause_services[0], "c");

        let again = analyzer
            .scores(&report(30, &[("a", 5.0), ("b", 8.0), ("c", 50.0)]))
            .expect("ok");
        assert!(again.redelivery);
        assert!(again.rows.incidents.is_empty());
        assert_eq!(again.rows.anomaly_scores.len(), 3);
        assert!(again.rows.anomaly_scores.iter().all(|r| r.is_anomaly));
        assert_eq!(analyzer.series(), 3);
    }

    #[test]
    fn duplicate_nodes_are_rejected() {
        let mut analyzer = analyzer();
        assert!(matches!(
            analyzer.scores(&report(0, &[("a", 1.0), ("a", 2.0)])),
            Err(Rejected::DuplicateNode(_))
        ));
    }

    #[test]
    fn forecasts_over_the_slo_predict_incidents() {
        let mut slo = SloConfig::default();
        slo.limits.insert("latency_p99_ms".to_owned(), 100.0);
        let analyzer = Analyzer::new(
            ThresholdConfig::default(),
            10,
            IncidentConfig::default(),
            slo,
        )
        .expect("valid");
        let report = v1::ForecastReport {
            graph: "g".to_owned(),
            window_start_ms: 0,
            window_ms: 1000,
            forecasts: vec![v1::NodeForecast {
                node: "a".to_owned(),
                present: true,
                metrics: vec![v1::MetricForecast {
                    metric: "latency_p99_ms".to_owned(),
                    points: vec![
                        v1::ForecastPoint {
                            horizon: 1,
                            target_window_start_ms: 1000,
                            value: 50.0,
                            lower: 40.0,
                            upper: 60.0,
                        },
                        v1::ForecastPoint {
                            horizon: 2,
                            target_window_start_ms: 2000,
                            value: 150.0,
                            lower: 140.0,
                            upper: 160.0,
                        },
                    ],
                }],
                ..v1::NodeForecast::default()
            }],
            ..v1::ForecastReport::default()
        };
        let out = analyzer.forecast(&report).expect("ok");
        assert_eq!(out.rows.forecasts.len(), 2);
        assert_eq!(out.rows.incidents.len(), 1);
        let row = &out.rows.incidents[0];
        assert_eq!(row.kind, "predicted");
        assert_eq!(row.opened_at, 2000);
        assert_eq!(row.root_cause_services, vec!["a".to_owned()]);
    }
}
