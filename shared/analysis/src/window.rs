//! The per-window input of incident tracking and root-cause ranking, and its canonical form
//! (sorted, de-duplicated) that makes every result independent of input order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::AnalysisError;

/// Largest anomaly ratio used (keeps sums finite for absurd scores).
pub const MAX_RATIO: f64 = 1e6;
/// Thresholds below this count as this, so a ratio never divides by zero.
const MIN_THRESHOLD_FOR_RATIO: f64 = 1e-9;

/// One feature's share of a service's anomaly score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    /// Feature name (as in the model manifest).
    pub name: String,
    /// Contribution; larger magnitude, larger share.
    pub value: f64,
}

/// One call edge of a window's call graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallEdge {
    /// Calling service.
    pub caller: String,
    /// Called service.
    pub callee: String,
}

/// One service's result in a window: its score and the threshold it was judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceWindow {
    /// Service (node) name.
    pub service: String,
    /// Anomaly score.
    pub score: f64,
    /// Threshold in force for this score.
    pub threshold: f64,
    /// Whether the score was over the threshold.
    pub is_anomaly: bool,
    /// Top feature contributions to the score.
    pub contributions: Vec<FeatureContribution>,
}

/// Everything incident tracking needs from one window of one graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowInput {
    /// Graph name.
    pub graph: String,
    /// Start of the window, unix ms.
    pub window_start_ms: i64,
    /// Window length, ms.
    pub window_ms: u32,
    /// The window's call edges (any order, duplicates allowed, self-calls ignored).
    pub edges: Vec<CallEdge>,
    /// The window's scored services (any order, each at most once).
    pub services: Vec<ServiceWindow>,
}

/// How far over its threshold a score is: `max(score, 0) / max(threshold, 10⁻⁹)`, clamped to
/// `[0, MAX_RATIO]`; 0 for NaN. Above 1 for an anomaly with a positive threshold.
#[must_use]
pub fn anomaly_ratio(score: f64, threshold: f64) -> f64 {
    let threshold = if threshold.is_nan() {
        MIN_THRESHOLD_FOR_RATIO
    } else {
        threshold.max(MIN_THRESHOLD_FOR_RATIO)
    };
    let ratio = score.max(0.0) / threshold;
    if ratio.is_nan() {
        0.0
    } else {
        ratio.clamp(0.0, MAX_RATIO)
    }
}

/// A window in canonical form: services by name, edges sorted and de-duplicated.
#[derive(Debug, Clone)]
pub(crate) struct CanonicalWindow {
    pub(crate) services: BTreeMap<String, ServiceWindow>,
    /// Directed (caller, callee) edges, no self-loops.
    pub(crate) edges: BTreeSet<(String, String)>,
    /// Undirected adjacency over `edges`.
    pub(crate) neighbours: BTreeMap<String, BTreeSet<String>>,
}

impl CanonicalWindow {
    pub(crate) fn new(window: &WindowInput) -> Result<Self, AnalysisError> {
        let mut services = BTreeMap::new();
        for s in &window.services {
            if services.insert(s.service.clone(), s.clone()).is_some() {
                return Err(AnalysisError::DuplicateService {
                    graph: window.graph.clone(),
                    service: s.service.clone(),
                });
            }
        }
        let edges: BTreeSet<(String, String)> = window
            .edges
            .iter()
            .filter(|e| e.caller != e.callee)
            .map(|e| (e.caller.clone(), e.callee.clone()))
            .collect();
        let mut neighbours: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in &edges {
            neighbours.entry(a.clone()).or_default().insert(b.clone());
            neighbours.entry(b.clone()).or_default().insert(a.clone());
        }
        Ok(Self {
            services,
            edges,
            neighbours,
        })
    }

    /// Whether `service` was scored anomalous in this window.
    pub(crate) fn is_anomalous(&self, service: &str) -> bool {
        self.services.get(service).is_some_and(|s| s.is_anomaly)
    }

    /// The service's [`anomaly_ratio`]; 0 for a service without a score.
    pub(crate) fn ratio(&self, service: &str) -> f64 {
        self.services
            .get(service)
            .map_or(0.0, |s| anomaly_ratio(s.score, s.threshold))
    }

    /// Anomalous services, sorted.
    pub(crate) fn anomalous(&self) -> impl Iterator<Item = &String> {
        self.services
            .iter()
            .filter(|(_, s)| s.is_anomaly)
            .map(|(name, _)| name)
    }

    /// Neighbours of `service` (either direction).
    pub(crate) fn neighbours_of(&self, service: &str) -> impl Iterator<Item = &String> {
        self.neighbours.get(service).into_iter().flatten()
    }

    /// The `n` largest contributions of `service` by magnitude (ties by name).
    pub(crate) fn top_features(&self, service: &str, n: usize) -> Vec<FeatureContribution> {
        let mut features: Vec<FeatureContribution> = self
            .services
            .get(service)
            .map(|s| {
                s.contributions
                    .iter()
                    .filter(|c| c.value.is_finite())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        features.sort_by(|a, b| {
            b.value
                .abs()
                .total_cmp(&a.value.abs())
                .then_with(|| a.name.cmp(&b.name))
        });
        features.truncate(n);
        features
    }
}

#[cfg(test)]
mod tests;
