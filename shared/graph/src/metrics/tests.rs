//! Unit and property tests of metrics extraction and of resource metrics in windows.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;
use crate::snapshot::{NodeKind, ResourceStats};
use crate::span::ResourceKeys;
use crate::{Aggregator, AggregatorConfig, GraphSnapshot};

mod properties;

const S: u64 = 1_000_000_000;
const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn point(time_ns: u64, value: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: time_ns,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    }
}

fn int_point(time_ns: u64, value: i64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: time_ns,
        value: Some(number_data_point::Value::AsInt(value)),
        ..NumberDataPoint::default()
    }
}

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Metric::default()
    }
}

fn sum(name: &str, temporality: i32, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: true,
        })),
        ..Metric::default()
    }
}

fn resource(attrs: Vec<KeyValue>, metrics: Vec<Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes: attrs,
            ..Resource::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            metrics,
            ..ScopeMetrics::default()
        }],
        schema_url: String::new(),
    }
}

fn svc(name: &str, metrics: Vec<Metric>) -> ResourceMetrics {
    resource(vec![kv("service.name", name)], metrics)
}

fn request(resources: Vec<ResourceMetrics>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: resources,
    }
}

fn decoded(req: &ExportMetricsServiceRequest) -> DecodedMetrics<'_> {
    let mut out = DecodedMetrics::default();
    extract(req, &ResourceKeys::default(), &mut out);
    out
}

fn cfg() -> AggregatorConfig {
    AggregatorConfig {
        window_ms: 30_000,
        allowed_lateness_ms: 10_000,
        ..AggregatorConfig::default()
    }
}

/// Ingests the requests offline, in order, then flushes.
fn run(requests: &[ExportMetricsServiceRequest]) -> (Vec<GraphSnapshot>, Vec<MetricsReport>) {
    let mut agg = Aggregator::new(cfg(), "test").expect("valid config");
    let mut out = Vec::new();
    let reports = requests
        .iter()
        .map(|r| agg.ingest_metrics(&decoded(r), None, &mut out))
        .collect();
    agg.flush_all(&mut out);
    (out, reports)
}

fn resources_of(snapshots: &[GraphSnapshot], window_start_ms: i64, node: &str) -> ResourceStats {
    snapshots
        .iter()
        .find(|s| s.window_start_ms == window_start_ms)
        .and_then(|s| s.nodes.iter().find(|n| n.name == node))
        .map(|n| n.resources.clone())
        .unwrap_or_else(|| panic!("no node {node} in window {window_start_ms}: {snapshots:?}"))
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

// ---------------------------------------------------------------------------------------------
// extraction

#[test]
fn gauges_of_several_cpus_and_modes_combine_per_time() {
    let cpu = |n: i64, mode: &str, v: f64, t: u64| {
        point(
            t,
            v,
            vec![kv_int("cpu.logical_number", n), kv("cpu.mode", mode)],
        )
    };
    let req = request(vec![svc(
        "host-agent",
        vec![gauge(
            "system.cpu.utilization",
            vec![
                cpu(0, "user", 0.3, 10 * S),
                cpu(0, "system", 0.1, 10 * S),
                cpu(0, "idle", 0.6, 10 * S),
                cpu(1, "user", 0.5, 10 * S),
                cpu(1, "idle", 0.5, 10 * S),
                // Another time: one sample of its own.
                cpu(0, "user", 1.0, 20 * S),
            ],
        )],
    )]);
    let d = decoded(&req);
    assert_eq!(d.samples.len(), 2);
    let first = d.samples[0];
    assert_eq!(
        (first.quantity, first.level),
        (Quantity::CpuUtilization, Level::System)
    );
    assert!(close(Some(first.value), (0.3 + 0.1 + 0.5) / 2.0));
    assert_eq!(first.points, 5);
    assert!(close(Some(d.samples[1].value), 1.0));
    assert_eq!((d.data_points, d.ignored, d.rejected.total()), (6, 0, 0));
}

#[test]
fn memory_states_other_than_used_are_ignored() {
    let state = |s: &str, v: f64| point(10 * S, v, vec![kv("system.memory.state", s)]);
    let req = request(vec![svc(
        "vm",
        vec![sum(
            "system.memory.usage",
            CUMULATIVE,
            vec![state("used", 1e9), state("free", 3e9), state("cached", 5e8)],
        )],
    )]);
    let d = decoded(&req);
    assert_eq!(d.samples.len(), 1);
    assert_eq!(d.samples[0].value, 1e9);
    assert_eq!(d.samples[0].temporality, Temporality::Level);
    assert_eq!((d.data_points, d.ignored), (3, 2));
}

#[test]
fn every_data_point_is_accepted_ignored_or_rejected_once() {
    let mut no_value = point(10 * S, 1.0, vec![]);
    no_value.value = None;
    let mut flagged = point(10 * S, 1.0, vec![]);
    flagged.flags = 1;
    let mut delta_without_start = point(10 * S, 5.0, vec![kv("network.io.direction", "receive")]);
    delta_without_start.start_time_unix_nano = 0;
    let mut no_direction = point(10 * S, 5.0, vec![]);
    no_direction.start_time_unix_nano = 5 * S;
    let mut sideways = point(10 * S, 5.0, vec![kv("network.io.direction", "sideways")]);
    sideways.start_time_unix_nano = 5 * S;
    let histogram = Metric {
        name: "container.memory.usage".to_owned(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint::default(); 2],
            aggregation_temporality: CUMULATIVE,
        })),
        ..Metric::default()
    };
    let req = request(vec![svc(
        "checkout",
        vec![
            gauge(
                "http.server.active_requests",
                vec![point(10 * S, 3.0, vec![])],
            ),
            gauge(
                "container.cpu.utilization",
                vec![
                    point(10 * S, 0.5, vec![]),
                    point(10 * S, f64::NAN, vec![]),
                    point(10 * S, -1.0, vec![]),
                    point(0, 0.5, vec![]),
                    no_value,
                    flagged,
                ],
            ),
            histogram,
            sum(
                "container.memory.usage",
                DELTA,
                vec![point(10 * S, 1.0, vec![])],
            ),
            sum("container.cpu.time", 0, vec![point(10 * S, 1.0, vec![])]),
            sum(
                "container.network.io",
                DELTA,
                vec![no_direction, delta_without_start, sideways],
            ),
            gauge("k8s.container.restarts", vec![int_point(10 * S, 2)]),
        ],
    )]);
    let d = decoded(&req);
    let by = |r: MetricRejectReason| d.rejected.by_reason[r.index()];
    assert_eq!(by(MetricRejectReason::InvalidValue), 3);
    assert_eq!(by(MetricRejectReason::InvalidTimestamp), 2);
    assert_eq!(by(MetricRejectReason::UnsupportedType), 4);
    assert_eq!(by(MetricRejectReason::MissingDirection), 2);
    assert_eq!(d.ignored, 2, "the unknown metric and the flagged point");
    assert_eq!(d.samples.len(), 2);
    assert_eq!(
        d.rejected.first,
        Some((
            "container.cpu.utilization".to_owned(),
            MetricRejectReason::InvalidValue
        ))
    );
    let (_, reports) = run(std::slice::from_ref(&req));
    let r = &reports[0];
    assert_eq!(r.accepted, 2);
    assert_eq!(
        r.accepted + r.late + r.rejected() + r.ignored,
        d.data_points
    );
    assert_eq!(r.not_accepted(), 11);
    let message = r.message();
    assert!(
        message.contains("3 data points rejected: value missing"),
        "{message}"
    );
    assert!(
        message.contains("\"container.cpu.utilization\""),
        "{message}"
    );
}

#[test]
fn services_come_from_service_name_deployment_or_pod_and_graphs_from_the_keys() {
    let req = request(vec![
        resource(
            vec![
                kv("k8s.pod.name", "frontend-7d9b8c6f5-xk2lp"),
                kv("k8s.cluster.name", "prod"),
            ],
            vec![],
        ),
        resource(
            vec![
                kv("k8s.pod.name", "db-0"),
                kv("k8s.deployment.name", "orders"),
            ],
            vec![],
        ),
        resource(vec![], vec![]),
    ]);
    let d = decoded(&req);
    let services: Vec<_> = d.resources.iter().map(|r| r.service).collect();
    assert_eq!(services, ["frontend", "orders", "unknown_service"]);
    assert_eq!(d.resources[0].graph_values[..], [Some("prod"), None]);
    assert_ne!(d.resources[0].instance, d.resources[1].instance);
}

#[test]
fn services_follow_custom_service_keys() {
    let req = request(vec![
        resource(vec![kv("service.name", "svc"), kv("app", "shop")], vec![]),
        resource(
            vec![kv("service.name", "svc"), kv("k8s.pod.name", "db-0")],
            vec![],
        ),
    ]);
    let keys = ResourceKeys {
        service_keys: vec!["app".to_owned(), "k8s.pod.name".to_owned()],
        ..ResourceKeys::default()
    };
    let mut d = DecodedMetrics::default();
    extract(&req, &keys, &mut d);
    let services: Vec<_> = d.resources.iter().map(|r| r.service).collect();
    assert_eq!(services, ["shop", "db"]);
}

// ---------------------------------------------------------------------------------------------
// aggregation

#[test]
fn a_node_with_only_metrics_appears_and_absent_metrics_stay_none() {
    let req = request(vec![svc(
        "worker",
        vec![
            gauge("process.cpu.utilization", vec![point(10 * S, 0.25, vec![])]),
            sum(
                "process.memory.usage",
                CUMULATIVE,
                vec![int_point(12 * S, 1_000)],
            ),
        ],
    )]);
    let (out, _) = run(&[req]);
    assert_eq!(out.len(), 1);
    let node = &out[0].nodes[0];
    assert_eq!(
        (node.name.as_str(), node.kind),
        ("worker", NodeKind::Service)
    );
    assert_eq!((node.requests, node.spans), (0, 0));
    assert_eq!(
        node.resources,
        ResourceStats {
            cpu_utilization: Some(0.25),
            memory_bytes: Some(1_000.0),
            ..ResourceStats::default()
        }
    );
    assert_eq!(out[0].stats, Default::default());
}

#[test]
fn levels_average_per_instance_then_combine_over_instances() {
    let pod = |name: &str, metrics| {
        resource(
            vec![kv("k8s.deployment.name", "cart"), kv("k8s.pod.name", name)],
            metrics,
        )
    };
    let req = request(vec![
        pod(
            "cart-7d9b8c6f5-xk2lp",
            vec![
                gauge(
                    "container.cpu.utilization",
                    vec![point(5 * S, 0.2, vec![]), point(15 * S, 0.4, vec![])],
                ),
                gauge(
                    "container.memory.usage",
                    vec![point(5 * S, 100.0, vec![]), point(15 * S, 300.0, vec![])],
                ),
            ],
        ),
        pod(
            "cart-7d9b8c6f5-bbbbb",
            vec![
                gauge("container.cpu.utilization", vec![point(5 * S, 0.9, vec![])]),
                gauge("container.memory.usage", vec![point(5 * S, 1000.0, vec![])]),
                gauge(
                    "k8s.container.memory_limit",
                    vec![point(5 * S, 4000.0, vec![])],
                ),
            ],
        ),
    ]);
    let (out, _) = run(&[req]);
    let r = resources_of(&out, 0, "cart");
    // CPU: instance means 0.3 and 0.9, averaged; memory: 200 + 1000; utilisation from limits.
    assert!(close(r.cpu_utilization, 0.6));
    assert_eq!(r.memory_bytes, Some(1200.0));
    assert!(close(r.memory_utilization, 1200.0 / 4000.0));
}

#[test]
fn the_pod_level_wins_over_containers_so_nothing_counts_twice() {
    let req = request(vec![
        resource(
            vec![kv("k8s.pod.name", "api-7d9b8c6f5-xk2lp")],
            vec![gauge(
                "k8s.pod.memory.usage",
                vec![point(5 * S, 500.0, vec![])],
            )],
        ),
        resource(
            vec![
                kv("k8s.pod.name", "api-7d9b8c6f5-xk2lp"),
                kv("k8s.container.name", "app"),
            ],
            vec![
                gauge("container.memory.usage", vec![point(5 * S, 400.0, vec![])]),
                gauge("container.cpu.utilization", vec![point(5 * S, 0.5, vec![])]),
            ],
        ),
    ]);
    let (out, _) = run(&[req]);
    let r = resources_of(&out, 0, "api");
    assert_eq!(r.memory_bytes, Some(500.0));
    assert_eq!(
        r.cpu_utilization,
        Some(0.5),
        "no pod-level CPU: the container's"
    );
}

#[test]
fn cumulative_counters_become_rates_across_windows_and_resets() {
    let rx = |t: u64, v: f64| point(t, v, vec![kv("network.io.direction", "receive")]);
    let tx = |t: u64, v: f64| point(t, v, vec![kv("network.io.direction", "transmit")]);
    let first = request(vec![svc(
        "gw",
        vec![sum(
            "k8s.pod.network.io",
            CUMULATIVE,
            vec![rx(10 * S, 100.0), rx(20 * S, 300.0), tx(20 * S, 50.0)],
        )],
    )]);
    let second = request(vec![svc(
        "gw",
        vec![sum(
            "k8s.pod.network.io",
            CUMULATIVE,
            // rx: +200 from the last point of the first window, then a reset to 40.
            vec![rx(40 * S, 500.0), rx(50 * S, 40.0), tx(50 * S, 350.0)],
        )],
    )]);
    let (out, _) = run(&[first, second]);
    let w0 = resources_of(&out, 0, "gw");
    assert!(close(w0.network_rx_bytes_per_s, 200.0 / 10.0));
    assert_eq!(w0.network_tx_bytes_per_s, None, "one point: no rate yet");
    let w1 = resources_of(&out, 30_000, "gw");
    assert!(close(w1.network_rx_bytes_per_s, (200.0 + 40.0) / 30.0));
    assert!(close(w1.network_tx_bytes_per_s, 300.0 / 30.0));
    assert_eq!(w1.cpu_utilization, None);
}

#[test]
fn a_new_start_time_is_a_reset() {
    let p = |start: u64, t: u64, v: f64| {
        let mut p = point(t, v, vec![kv("network.io.direction", "receive")]);
        p.start_time_unix_nano = start;
        p
    };
    let req = request(vec![svc(
        "gw",
        vec![sum(
            "container.network.io",
            CUMULATIVE,
            vec![p(S, 10 * S, 1000.0), p(15 * S, 20 * S, 1500.0)],
        )],
    )]);
    let (out, _) = run(&[req]);
    let r = resources_of(&out, 0, "gw");
    assert!(close(r.network_rx_bytes_per_s, 1500.0 / 10.0));
}

#[test]
fn delta_sums_are_increases_over_their_intervals() {
    let p = |start: u64, t: u64, v: f64| {
        let mut p = point(t, v, vec![kv("direction", "transmit")]);
        p.start_time_unix_nano = start;
        p
    };
    let req = request(vec![svc(
        "gw",
        vec![sum(
            "container.network.io",
            DELTA,
            vec![p(5 * S, 10 * S, 100.0), p(10 * S, 20 * S, 200.0)],
        )],
    )]);
    let (out, _) = run(&[req]);
    let r = resources_of(&out, 0, "gw");
    assert!(close(r.network_tx_bytes_per_s, 300.0 / 15.0));
}

#[test]
fn cpu_time_counters_give_cores_or_utilisation_of_the_limit() {
    let t = |time: u64, v: f64, mode: &str| point(time, v, vec![kv("cpu.mode", mode)]);
    let counters = || {
        sum(
            "container.cpu.time",
            CUMULATIVE,
            vec![
                t(10 * S, 5.0, "user"),
                t(20 * S, 10.0, "user"),
                t(10 * S, 1.0, "system"),
                t(20 * S, 3.0, "system"),
                t(10 * S, 100.0, "idle"),
                t(20 * S, 200.0, "idle"),
            ],
        )
    };
    let (out, reports) = run(&[request(vec![svc("a", vec![counters()])])]);
    // (5 + 2) CPU seconds in 10 s: 0.7 cores, no limit known.
    assert!(close(resources_of(&out, 0, "a").cpu_utilization, 0.7));
    assert_eq!(reports[0].ignored, 2, "idle CPU time");
    let limit = gauge("k8s.container.cpu_limit", vec![point(10 * S, 2.0, vec![])]);
    let (out, _) = run(&[request(vec![svc("a", vec![counters(), limit])])]);
    assert!(close(resources_of(&out, 0, "a").cpu_utilization, 0.35));
}

#[test]
fn restarts_are_the_increase_of_the_count() {
    let first = request(vec![svc(
        "db",
        vec![gauge(
            "k8s.container.restarts",
            vec![int_point(10 * S, 2), int_point(20 * S, 3)],
        )],
    )]);
    let second = request(vec![svc(
        "db",
        vec![gauge("k8s.container.restarts", vec![int_point(40 * S, 3)])],
    )]);
    let third = request(vec![svc(
        "db",
        vec![gauge("k8s.container.restarts", vec![int_point(70 * S, 5)])],
    )]);
    let (out, _) = run(&[first, second, third]);
    assert_eq!(resources_of(&out, 0, "db").restarts, Some(1));
    assert_eq!(resources_of(&out, 30_000, "db").restarts, Some(0));
    assert_eq!(resources_of(&out, 60_000, "db").restarts, Some(2));
}

#[test]
fn spans_and_metrics_meet_on_one_node() {
    use crate::span::{DecodedTraces, GraphValues, ResourceView, SpanView};
    let mut agg = Aggregator::new(cfg(), "test").expect("valid config");
    let mut out = Vec::new();
    let trace = [7u8; 16];
    let span = [1u8; 8];
    let traces = DecodedTraces {
        resources: vec![ResourceView {
            service_values: GraphValues::from_slice(&[Some("checkout"), None, None]),
            graph_values: GraphValues::none(2),
        }],
        spans: vec![SpanView {
            resource: 0,
            trace_id: &trace,
            span_id: &span,
            kind: 2,
            start_time_unix_nano: 9 * S,
            end_time_unix_nano: 10 * S,
            ..SpanView::default()
        }],
    };
    agg.ingest(&traces, None, &mut out);
    let req = request(vec![svc(
        "checkout",
        vec![gauge(
            "container.cpu.utilization",
            vec![point(11 * S, 0.8, vec![])],
        )],
    )]);
    agg.ingest_metrics(&decoded(&req), None, &mut out);
    agg.flush_all(&mut out);
    assert_eq!(out.len(), 1);
    let node = out[0]
        .nodes
        .iter()
        .find(|n| n.name == "checkout")
        .expect("node");
    assert_eq!(
        (node.requests, node.resources.cpu_utilization),
        (1, Some(0.8))
    );
}

#[test]
fn late_and_future_samples_are_counted_not_aggregated() {
    let mut agg = Aggregator::new(cfg(), "test").expect("valid config");
    let mut out = Vec::new();
    let now_ms = 1_000_000;
    let now = now_ms as u64 * 1_000_000;
    let req = request(vec![svc(
        "a",
        vec![gauge(
            "container.cpu.utilization",
            vec![
                point(now - S, 0.5, vec![]),
                point(now + 3600 * S, 0.5, vec![]),
            ],
        )],
    )]);
    let r = agg.ingest_metrics(&decoded(&req), Some(now_ms), &mut out);
    assert_eq!((r.accepted, r.late), (1, 0));
    assert_eq!(
        r.rejected.by_reason[MetricRejectReason::FutureTimestamp.index()],
        1
    );
    // The watermark moves on: an hour later, a sample of the first window is late.
    // (Points of one metric are taken in time order: the late one is in a later metric.)
    let later = request(vec![svc(
        "a",
        vec![
            gauge(
                "container.cpu.utilization",
                vec![point(now + 3000 * S, 0.5, vec![])],
            ),
            gauge("container.memory.usage", vec![point(now - S, 9.0, vec![])]),
        ],
    )]);
    let r = agg.ingest_metrics(&decoded(&later), Some(now_ms + 3_600_000), &mut out);
    assert_eq!((r.accepted, r.late), (1, 1));
    assert!(r.message().contains("after their time window had closed"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].nodes[0].resources.cpu_utilization, Some(0.5));
}

#[test]
fn idle_graphs_flush_metric_windows_by_wall_clock() {
    let mut agg = Aggregator::new(cfg(), "test").expect("valid config");
    let mut out = Vec::new();
    let req = request(vec![svc(
        "a",
        vec![gauge(
            "container.cpu.utilization",
            vec![point(10 * S, 0.5, vec![])],
        )],
    )]);
    agg.ingest_metrics(&decoded(&req), Some(11_000), &mut out);
    assert!(out.is_empty());
    agg.tick(60_000, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].nodes[0].resources.cpu_utilization, Some(0.5));
}

#[test]
fn counter_state_forgets_stale_series() {
    let p = |t: u64, v: f64| point(t, v, vec![kv("network.io.direction", "receive")]);
    let old = request(vec![svc(
        "gw",
        vec![sum(
            "container.network.io",
            CUMULATIVE,
            vec![p(10 * S, 100.0)],
        )],
    )]);
    // Twenty minutes later: the old point is too stale to make a rate with.
    let new = request(vec![svc(
        "gw",
        vec![sum(
            "container.network.io",
            CUMULATIVE,
            vec![p(1210 * S, 900.0)],
        )],
    )]);
    let (out, _) = run(&[old, new]);
    assert_eq!(
        resources_of(&out, 1_200_000, "gw").network_rx_bytes_per_s,
        None
    );
}
