//! Settings of the graph aggregator (ARCHITECTURE.md §3). The ingest embeds them in its own
//! configuration; the offline `meshwatch snapshot` command builds them from flags.

use serde::{Deserialize, Serialize};

/// Aggregator settings. Times are milliseconds so that the pure core needs no duration types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// Tumbling window length (event time, by span end).
    pub window_ms: u32,
    /// How long after a window's end (in watermark time) it stays open for late spans.
    pub allowed_lateness_ms: u32,
    /// Live mode: how long a graph may receive nothing before its past windows are flushed by
    /// wall clock.
    pub idle_flush_ms: u32,
    /// Live mode: spans ending further than this beyond the wall clock are rejected.
    pub max_future_skew_ms: u32,
    /// Bound of the pairing store per graph (spans waiting for their peer).
    pub max_pending_spans: usize,
    /// Cardinality guard: distinct nodes per graph; the excess folds into `__overflow__`.
    pub max_nodes_per_graph: usize,
    /// Cardinality guard: distinct edges per window; the excess folds into the overflow edge.
    pub max_edges_per_window: usize,
    /// Most graphs tracked at once; spans of further graphs go to the default graph.
    pub max_graphs: usize,
    /// Resource attributes whose values, joined with `/`, name the graph.
    pub graph_keys: Vec<String>,
    /// Resource attributes naming the service, tried in order: the first non-empty value names
    /// it (`k8s.pod.name` through its workload), else `unknown_service`
    /// ([`crate::service::service_name`]). Spans and metrics alike.
    pub service_keys: Vec<String>,
    /// Graph of resources that carry none of `graph_keys`.
    pub default_graph: String,
    /// Longest service, peer or graph name kept; longer names are cut at a character boundary.
    pub max_name_bytes: usize,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            window_ms: 30_000,
            allowed_lateness_ms: 10_000,
            idle_flush_ms: 10_000,
            max_future_skew_ms: 300_000,
            max_pending_spans: 2_000_000,
            max_nodes_per_graph: 5_000,
            max_edges_per_window: 50_000,
            max_graphs: 64,
            graph_keys: vec![
                "k8s.cluster.name".to_owned(),
                "deployment.environment.name".to_owned(),
            ],
            service_keys: crate::service::default_service_keys(),
            default_graph: "default".to_owned(),
            max_name_bytes: 256,
        }
    }
}

impl AggregatorConfig {
    /// Every problem with the settings, empty when they are valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.window_ms < 1_000 {
            problems.push(format!(
                "window must be at least 1s (got {} ms)",
                self.window_ms
            ));
        }
        if self.window_ms > 3_600_000 {
            problems.push(format!(
                "window must be at most 1h (got {} ms)",
                self.window_ms
            ));
        }
        if self.allowed_lateness_ms > 3_600_000 {
            problems.push("allowed lateness must be at most 1h".to_owned());
        }
        if self.max_pending_spans == 0 {
            problems.push("max_pending_spans must be positive".to_owned());
        }
        if self.max_nodes_per_graph < 3 {
            problems.push(
                "max_nodes_per_graph must be at least 3 (overflow and user are reserved)"
                    .to_owned(),
            );
        }
        if self.max_edges_per_window < 1 {
            problems.push("max_edges_per_window must be positive".to_owned());
        }
        if self.max_graphs == 0 {
            problems.push("max_graphs must be positive".to_owned());
        }
        if self.default_graph.trim().is_empty() {
            problems.push("default_graph must not be empty".to_owned());
        }
        if self.graph_keys.len() > crate::span::MAX_GRAPH_KEYS {
            problems.push(format!(
                "graph_keys: at most {} keys (got {})",
                crate::span::MAX_GRAPH_KEYS,
                self.graph_keys.len()
            ));
        }
        if self.graph_keys.iter().any(|k| k.trim().is_empty()) {
            problems.push("graph_keys must not contain empty keys".to_owned());
        }
        if self.service_keys.is_empty() {
            problems.push("service_keys must name at least one key".to_owned());
        }
        if self.service_keys.len() > crate::service::MAX_SERVICE_KEYS {
            problems.push(format!(
                "service_keys: at most {} keys (got {})",
                crate::service::MAX_SERVICE_KEYS,
                self.service_keys.len()
            ));
        }
        if self.service_keys.iter().any(|k| k.trim().is_empty()) {
            problems.push("service_keys must not contain empty keys".to_owned());
        }
        if self.max_name_bytes < 16 {
            problems.push("max_name_bytes must be at least 16".to_owned());
        }
        problems
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub fn truncate_name(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(AggregatorConfig::default().validate().is_empty());
    }

    #[test]
    fn all_problems_reported() {
        let cfg = AggregatorConfig {
            window_ms: 10,
            max_pending_spans: 0,
            default_graph: " ".into(),
            ..AggregatorConfig::default()
        };
        assert_eq!(cfg.validate().len(), 3);
    }

    #[test]
    fn service_keys_are_validated() {
        let with = |keys: Vec<&str>| AggregatorConfig {
            service_keys: keys.into_iter().map(str::to_owned).collect(),
            ..AggregatorConfig::default()
        };
        assert!(with(vec!["app"]).validate().is_empty());
        assert_eq!(with(vec![]).validate().len(), 1);
        assert_eq!(with(vec!["app", " "]).validate().len(), 1);
        assert_eq!(with(vec!["k"; 9]).validate().len(), 1);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_name("abc", 10), "abc");
        assert_eq!(truncate_name("héllo", 2), "h");
        assert_eq!(truncate_name("héllo", 3), "hé");
    }
}
