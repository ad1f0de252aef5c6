//! Shared helpers of the simulator's tests: run a simulation in memory through the real graph
//! code (`meshwatch_graph::Aggregator`, the ingest's decoder) and read the snapshots.

#![allow(dead_code, clippy::panic)]

use std::time::Duration;

use meshwatch_graph::labels::FaultLabel;
use meshwatch_graph::otlp::wire::decode_traces;
use meshwatch_graph::snapshot::{Edge, Node};
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use meshwatch_graph::{Aggregator, AggregatorConfig, GraphSnapshot};
use meshwatch_simulator::{Batch, SimStats, SimulationSettings, Simulator};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;

/// 2025-01-06T08:00:00Z: a Monday, at the mean of the default daily cycle.
pub const START_MS: i64 = 1_736_150_400_000;
pub const MINUTE_MS: i64 = 60_000;

/// What a simulation produced, aggregated into 60 s windows.
pub struct Run {
    pub snapshots: Vec<GraphSnapshot>,
    pub labels: Vec<FaultLabel>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub stats: SimStats,
    pub accepted: u64,
    pub late: u64,
}

pub fn settings(topology: &str, rate: f64, faults: &[&str]) -> SimulationSettings {
    SimulationSettings {
        topology: topology.parse().expect("topology"),
        rate,
        seed: 11,
        faults: faults
            .iter()
            .map(|f| meshwatch_simulator::faults::FaultSpec::parse(f).expect("fault spec"))
            .collect(),
        ..SimulationSettings::default()
    }
}

/// Simulates `minutes` from [`START_MS`] and aggregates the spans as the ingest would (protobuf
/// wire decoding, pairing, 60 s windows, 10 s lateness).
pub fn simulate(settings: &SimulationSettings, minutes: u64) -> Run {
    let mut sim = Simulator::new(settings, START_MS, Some(Duration::from_secs(minutes * 60)))
        .expect("valid simulation");
    let cfg = AggregatorConfig {
        window_ms: 60_000,
        ..AggregatorConfig::default()
    };
    let mut agg = Aggregator::new(cfg, "test").expect("aggregator");
    let keys = ResourceKeys::default();
    let mut snapshots = Vec::new();
    let mut metrics = Vec::new();
    let mut labels = Vec::new();
    let mut accepted = 0;
    let mut late = 0;
    let mut feed = |batch: &Batch, agg: &mut Aggregator, snapshots: &mut Vec<GraphSnapshot>| {
        for request in &batch.traces {
            let bytes = request.encode_to_vec();
            let mut decoded = DecodedTraces::default();
            decode_traces(&bytes, &keys, &mut decoded).expect("decodes");
            let report = agg.ingest(&decoded, None, snapshots);
            assert_eq!(report.rejected(), 0, "{}", report.message());
            accepted += report.accepted;
            late += report.late;
        }
    };
    while !sim.is_finished() {
        let mut batch = Batch::default();
        sim.step(&mut batch).expect("step");
        feed(&batch, &mut agg, &mut snapshots);
        metrics.extend(batch.metrics);
        labels.extend(batch.labels);
    }
    let mut last = Batch::default();
    sim.finish(&mut last);
    feed(&last, &mut agg, &mut snapshots);
    agg.flush_all(&mut snapshots);
    Run {
        snapshots,
        labels,
        metrics,
        stats: sim.stats(),
        accepted,
        late,
    }
}

impl Run {
    /// The snapshot of the window starting `minute` minutes after [`START_MS`].
    pub fn window(&self, minute: i64) -> &GraphSnapshot {
        let start = START_MS + minute * MINUTE_MS;
        self.snapshots
            .iter()
            .find(|s| s.window_start_ms == start)
            .unwrap_or_else(|| panic!("no window at minute {minute}"))
    }

    pub fn node(&self, minute: i64, name: &str) -> Option<&Node> {
        self.window(minute).nodes.iter().find(|n| n.name == name)
    }

    pub fn edge(&self, minute: i64, caller: &str, callee: &str) -> Option<&Edge> {
        self.window(minute)
            .edges
            .iter()
            .find(|e| e.caller == caller && e.callee == callee)
    }

    /// p90 of a node's own (server) latency, ms.
    pub fn p90(&self, minute: i64, name: &str) -> f64 {
        self.node(minute, name)
            .and_then(|n| n.latency.quantile(0.9))
            .unwrap_or_else(|| panic!("{name} has no latency at minute {minute}"))
    }

    /// Mean of a per-window value over minutes `from..to`.
    pub fn mean(&self, from: i64, to: i64, f: impl Fn(i64) -> f64) -> f64 {
        (from..to).map(&f).sum::<f64>() / (to - from) as f64
    }

    /// Mean of a metric's samples of `service` with time in `[from, to)` minutes.
    pub fn metric_mean(&self, name: &str, service: &str, from: i64, to: i64) -> Option<f64> {
        let lo = (START_MS + from * MINUTE_MS) as u64 * 1_000_000;
        let hi = (START_MS + to * MINUTE_MS) as u64 * 1_000_000;
        let mut sum = 0.0;
        let mut n = 0.0;
        for request in &self.metrics {
            for rm in &request.resource_metrics {
                let is = rm.resource.as_ref().is_some_and(|r| {
                    r.attributes.iter().any(|kv| {
                        kv.key == "service.name"
                            && kv.value.as_ref().and_then(|v| v.value.as_ref())
                                == Some(
                                    &opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                        service.to_owned(),
                                    ),
                                )
                    })
                });
                if !is {
                    continue;
                }
                for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    if m.name != name {
                        continue;
                    }
                    let Some(metric::Data::Gauge(g)) = &m.data else {
                        continue;
                    };
                    for p in &g.data_points {
                        if p.time_unix_nano >= lo && p.time_unix_nano < hi {
                            sum += match p.value {
                                Some(number_data_point::Value::AsDouble(v)) => v,
                                Some(number_data_point::Value::AsInt(v)) => v as f64,
                                None => 0.0,
                            };
                            n += 1.0;
                        }
                    }
                }
            }
        }
        (n > 0.0).then(|| sum / n)
    }
}
