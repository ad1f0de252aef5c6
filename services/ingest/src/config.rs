//! Configuration of the ingest (`meshwatch-ingest --check-config` prints the effective one).

use std::net::SocketAddr;
use std::time::Duration;

use meshwatch_bus::config::{BufferConfig, NatsConfig};
use meshwatch_graph::AggregatorConfig;
use meshwatch_runtime::service::ServiceConfig;
use meshwatch_runtime::{AdminConfig, LogConfig, ShutdownConfig, Validate, nested};
use serde::{Deserialize, Serialize};

/// The whole ingest configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub otlp: OtlpConfig,
    pub graph: GraphConfig,
    pub pipeline: PipelineConfig,
    pub nats: NatsConfig,
    pub buffer: BufferConfig,
}

/// The OTLP receivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// OTLP/gRPC listener (`TraceService/Export`); `grpc_enabled = false` turns it off.
    pub grpc_listen: SocketAddr,
    pub grpc_enabled: bool,
    /// OTLP/HTTP listener (`POST /v1/traces`); `http_enabled = false` turns it off.
    pub http_listen: SocketAddr,
    pub http_enabled: bool,
    /// Largest request body or gRPC message accepted, as received (compressed).
    pub max_request_bytes: usize,
    /// Largest request after decompression (a gzip bomb stops here).
    pub max_decompressed_bytes: usize,
    /// `Retry-After` (and gRPC retry delay) suggested to clients when the ingest is overloaded.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 4317)),
            grpc_enabled: true,
            http_listen: SocketAddr::from(([0, 0, 0, 0], 4318)),
            http_enabled: true,
            max_request_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            retry_after: Duration::from_secs(5),
        }
    }
}

impl Validate for OtlpConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.grpc_enabled && !self.http_enabled {
            problems.push("grpc_enabled: at least one of gRPC and HTTP must be enabled".to_owned());
        }
        if self.max_request_bytes < 1024 {
            problems.push("max_request_bytes: must be at least 1024".to_owned());
        }
        if self.max_decompressed_bytes < self.max_request_bytes {
            problems.push("max_decompressed_bytes: must not be below max_request_bytes".to_owned());
        }
        if self.retry_after.is_zero() || self.retry_after > Duration::from_secs(300) {
            problems.push("retry_after: must be between 1s and 5m".to_owned());
        }
        problems
    }
}

/// Windows, pairing and bounds of the service graph (ARCHITECTURE.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// Tumbling window length in event time.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long a window stays open for late spans after its end.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A graph idle this long (wall clock) has its past windows flushed.
    #[serde(with = "humantime_serde")]
    pub idle_flush: Duration,
    /// Spans ending further in the future than this are rejected.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Pairing store bound per graph (spans waiting for their peer).
    pub max_pending_spans: usize,
    /// Cardinality guard: nodes per graph.
    pub max_nodes_per_graph: usize,
    /// Cardinality guard: edges per window.
    pub max_edges_per_window: usize,
    /// Most graphs tracked at once.
    pub max_graphs: usize,
    /// Resource attributes naming the graph.
    pub graph_keys: Vec<String>,
    /// Resource attributes naming the service of spans and metrics, first non-empty first
    /// (`k8s.pod.name` names its workload), else `unknown_service`.
    pub service_keys: Vec<String>,
    /// Graph of resources without those attributes.
    pub default_graph: String,
    /// Longest service, peer or graph name kept (longer ones are cut).
    pub max_name_bytes: usize,
    /// Name of this replica in the snapshots it publishes (default: `$HOSTNAME`, else `ingest`).
    pub producer: Option<String>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        let d = AggregatorConfig::default();
        Self {
            window: Duration::from_millis(u64::from(d.window_ms)),
            allowed_lateness: Duration::from_millis(u64::from(d.allowed_lateness_ms)),
            idle_flush: Duration::from_millis(u64::from(d.idle_flush_ms)),
            max_future_skew: Duration::from_millis(u64::from(d.max_future_skew_ms)),
            max_pending_spans: d.max_pending_spans,
            max_nodes_per_graph: d.max_nodes_per_graph,
            max_edges_per_window: d.max_edges_per_window,
            max_graphs: d.max_graphs,
            graph_keys: d.graph_keys,
            service_keys: d.service_keys,
            default_graph: d.default_graph,
            max_name_bytes: d.max_name_bytes,
            producer: None,
        }
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl GraphConfig {
    /// The pure aggregator's settings.
    pub fn aggregator(&self) -> AggregatorConfig {
        AggregatorConfig {
            window_ms: millis(self.window),
            allowed_lateness_ms: millis(self.allowed_lateness),
            idle_flush_ms: millis(self.idle_flush),
            max_future_skew_ms: millis(self.max_future_skew),
            max_pending_spans: self.max_pending_spans,
            max_nodes_per_graph: self.max_nodes_per_graph,
            max_edges_per_window: self.max_edges_per_window,
            max_graphs: self.max_graphs,
            graph_keys: self.graph_keys.clone(),
            service_keys: self.service_keys.clone(),
            default_graph: self.default_graph.clone(),
            max_name_bytes: self.max_name_bytes,
        }
    }
}

impl Validate for GraphConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = self.aggregator().validate();
        if self
            .producer
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            problems.push("producer: must not be empty".to_owned());
        }
        problems
    }
}

/// The queue between the receivers and the aggregation thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Requests waiting for the aggregation thread; when full, new requests get UNAVAILABLE /
    /// 503 with Retry-After.
    pub queue_requests: usize,
    /// How often the aggregation thread checks idle graphs and retries held snapshots.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_requests: 64,
            tick: Duration::from_millis(500),
        }
    }
}

impl Validate for PipelineConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.queue_requests == 0 {
            problems.push("queue_requests: must be at least 1".to_owned());
        }
        if self.tick < Duration::from_millis(10) || self.tick > Duration::from_secs(10) {
            problems.push("tick: must be between 10ms and 10s".to_owned());
        }
        problems
    }
}

impl ServiceConfig for IngestConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn grace(&self) -> Duration {
        self.shutdown.grace
    }
}

impl Validate for IngestConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = nested("admin", &self.admin);
        problems.extend(nested("log", &self.log));
        problems.extend(nested("shutdown", &self.shutdown));
        problems.extend(nested("otlp", &self.otlp));
        problems.extend(nested("graph", &self.graph));
        problems.extend(nested("pipeline", &self.pipeline));
        problems.extend(
            self.nats
                .validate()
                .into_iter()
                .map(|p| format!("nats.{p}")),
        );
        problems.extend(
            self.buffer
                .validate()
                .into_iter()
                .map(|p| format!("buffer.{p}")),
        );
        problems
    }
}

impl IngestConfig {
    /// The producer name: configured, else `$HOSTNAME` (the pod name in Kubernetes).
    pub fn producer_name(&self) -> String {
        self.graph
            .producer
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "ingest".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_aggregator() {
        let c = IngestConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.graph.aggregator(), AggregatorConfig::default());
    }

    #[test]
    fn every_problem_is_reported() {
        let mut c = IngestConfig::default();
        c.otlp.grpc_enabled = false;
        c.otlp.http_enabled = false;
        c.graph.window = Duration::from_millis(10);
        c.pipeline.queue_requests = 0;
        let problems = c.validate();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("graph.")));
    }

    #[test]
    fn service_keys_reach_the_aggregator_and_are_validated() {
        let mut c = IngestConfig::default();
        c.graph.service_keys = vec!["app".to_owned()];
        assert_eq!(c.graph.aggregator().service_keys, ["app"]);
        assert!(c.validate().is_empty());
        c.graph.service_keys.clear();
        assert_eq!(c.validate().len(), 1);
    }
}
