//! Simulated spans and samples as OTLP: span kinds (SERVER, CLIENT, PRODUCER, CONSUMER), names
//! and attributes as the OpenTelemetry semantic conventions give them (HTTP, RPC, database,
//! messaging; `error.type` and status ERROR on failures), one resource per pod (`service.name`,
//! `k8s.cluster.name` = the topology, `k8s.namespace.name`, `k8s.deployment.name`,
//! `k8s.pod.name`, `service.instance.id`), and metrics as gauges
//! (`container.cpu.utilization`, `container.memory.usage`, `k8s.container.restarts`).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

use crate::rng::Rng;
use crate::topology::{OpRef, Protocol, ServiceKind, Topology};

/// Instrumentation scope of every span and metric.
pub const SCOPE_NAME: &str = "meshwatch-simulator";
/// Resources (pods) per OTLP metrics request.
const RESOURCES_PER_METRICS_REQUEST: usize = 1_000;

/// What a span is in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanRole {
    Server,
    Consumer,
    Client,
    Database,
    Producer,
}

/// Why a span failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operation failed by itself (intrinsic or injected errors).
    Internal,
    /// A required call failed, or the called server answered with an error.
    Downstream,
    /// The client gave up waiting.
    Timeout,
    /// Nothing listens: the called service is down.
    Refused,
    /// The server shed the request (queue too long).
    Overloaded,
}

impl ErrorKind {
    fn describe(self) -> (&'static str, &'static str, i64, i64) {
        // (error.type, message, HTTP status, gRPC status)
        match self {
            Self::Internal => ("internal", "internal error", 500, 13),
            Self::Downstream => ("downstream", "a downstream call failed", 500, 2),
            Self::Timeout => ("timeout", "deadline exceeded", 0, 4),
            Self::Refused => ("connection_refused", "connection refused", 0, 14),
            Self::Overloaded => ("overloaded", "server overloaded, request shed", 503, 8),
        }
    }
}

/// A simulated span, compact until it is exported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanRec {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent: [u8; 8],
    pub start_ns: u64,
    pub end_ns: u64,
    /// The service (and pod) that emits the span.
    pub service: u32,
    pub pod: u32,
    pub role: SpanRole,
    /// Server and consumer: the operation served; client, database, producer: the one called.
    pub op: OpRef,
    pub error: Option<ErrorKind>,
    /// Retry number of a client span (0 for the first attempt).
    pub attempt: u8,
}

/// One CPU and memory sample of a pod.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodSample {
    pub service: usize,
    pub pod: u32,
    pub cpu_utilization: f64,
    pub memory_bytes: i64,
    pub restarts: i64,
}

/// Names and resources of every pod, fixed for a run.
#[derive(Debug, Clone)]
pub struct Pods {
    /// `[service][replica]`: pod name and its resource.
    resources: Vec<Vec<(String, Resource)>>,
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

impl Pods {
    /// Pod names like Kubernetes makes them (`cartservice-7c9f8d6b5-x2k4p`), from the seed.
    pub fn new(topology: &Topology, seed: u64) -> Self {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let resources = topology
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| {
                let mut rng = Rng::derive(seed ^ (index as u64).wrapping_mul(0x9e37), 2);
                let mut word = |n: usize| -> String {
                    (0..n)
                        .map(|_| char::from(ALPHABET[rng.index(ALPHABET.len())]))
                        .collect()
                };
                let replica_set = word(9);
                (0..service.replicas.max(1))
                    .map(|_| {
                        let pod = format!("{}-{replica_set}-{}", service.name, word(5));
                        let resource = Resource {
                            attributes: vec![
                                s("service.name", &service.name),
                                s("service.instance.id", &pod),
                                s("k8s.cluster.name", &topology.name),
                                s("k8s.namespace.name", &topology.namespace),
                                s("k8s.deployment.name", &service.name),
                                s("k8s.pod.name", &pod),
                                s("k8s.container.name", &service.name),
                            ],
                            dropped_attributes_count: 0,
                            entity_refs: Vec::new(),
                        };
                        (pod, resource)
                    })
                    .collect()
            })
            .collect();
        Self { resources }
    }

    /// The pod name of replica `pod` of `service`.
    pub fn name(&self, service: usize, pod: u32) -> &str {
        self.resources
            .get(service)
            .and_then(|r| r.get(pod as usize))
            .map_or("", |(name, _)| name.as_str())
    }

    fn resource(&self, service: usize, pod: u32) -> Resource {
        self.resources
            .get(service)
            .and_then(|r| r.get(pod as usize))
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

/// Appends the OTLP trace requests for `spans` (already in export order): grouped by pod, at
/// most `per_request` spans per request.
pub fn trace_requests(
    topology: &Topology,
    pods: &Pods,
    spans: &[SpanRec],
    per_request: usize,
    out: &mut Vec<ExportTraceServiceRequest>,
) {
    for chunk in spans.chunks(per_request.max(1)) {
        let mut by_pod: BTreeMap<(u32, u32), Vec<Span>> = BTreeMap::new();
        for rec in chunk {
            by_pod
                .entry((rec.service, rec.pod))
                .or_default()
                .push(to_span(topology, rec));
        }
        let resource_spans = by_pod
            .into_iter()
            .map(|((service, pod), spans)| ResourceSpans {
                resource: Some(pods.resource(service as usize, pod)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        out.push(ExportTraceServiceRequest { resource_spans });
    }
}

fn port(protocol: Protocol) -> i64 {
    match protocol {
        Protocol::Http => 8080,
        Protocol::Grpc => 50051,
        Protocol::Thrift => 9090,
    }
}

fn db_port(system: &str) -> i64 {
    match system {
        "redis" => 6379,
        "memcached" => 11211,
        "mongodb" => 27017,
        "mysql" => 3306,
        "postgresql" => 5432,
        "cassandra" => 9042,
        _ => 0,
    }
}

/// RPC attributes of an operation name `pkg.Service/Method` (or a bare method name).
fn rpc_attrs(system: &str, service: &str, op: &str, attrs: &mut Vec<KeyValue>) {
    let (rpc_service, method) = op.split_once('/').unwrap_or((service, op));
    attrs.push(s("rpc.system", system));
    attrs.push(s("rpc.service", rpc_service));
    attrs.push(s("rpc.method", method));
}

/// HTTP method and route of an operation name `GET /route`.
fn http_parts(op: &str) -> (&str, &str) {
    op.split_once(' ').unwrap_or(("GET", op))
}

fn to_span(topology: &Topology, rec: &SpanRec) -> Span {
    let target = &topology.services[rec.op.service];
    let op = &target.ops[rec.op.op].name;
    let mut attrs = Vec::with_capacity(10);
    let error = rec.error.map(ErrorKind::describe);
    let (kind, name) = match (rec.role, &target.kind) {
        (SpanRole::Server, ServiceKind::Service { protocol }) => {
            match protocol {
                Protocol::Http => {
                    let (method, route) = http_parts(op);
                    attrs.push(s("http.request.method", method));
                    attrs.push(s("http.route", route));
                    attrs.push(s("url.path", route));
                    attrs.push(s("url.scheme", "http"));
                    attrs.push(i("server.port", port(*protocol)));
                    attrs.push(i(
                        "http.response.status_code",
                        error.map_or(200, |e| e.2.max(500)),
                    ));
                }
                Protocol::Grpc => {
                    rpc_attrs("grpc", &target.name, op, &mut attrs);
                    attrs.push(i("rpc.grpc.status_code", error.map_or(0, |e| e.3)));
                }
                Protocol::Thrift => rpc_attrs("apache_thrift", &target.name, op, &mut attrs),
            }
            (span::SpanKind::Server, op.clone())
        }
        (SpanRole::Client, ServiceKind::Service { protocol }) => {
            match protocol {
                Protocol::Http => {
                    let (method, route) = http_parts(op);
                    attrs.push(s("http.request.method", method));
                    attrs.push(s(
                        "url.full",
                        &format!("http://{}:{}{route}", target.name, port(*protocol)),
                    ));
                    if let Some(e) = error.filter(|e| e.2 > 0) {
                        attrs.push(i("http.response.status_code", e.2));
                    } else if error.is_none() {
                        attrs.push(i("http.response.status_code", 200));
                    }
                    if rec.attempt > 0 {
                        attrs.push(i("http.request.resend_count", i64::from(rec.attempt)));
                    }
                }
                Protocol::Grpc => {
                    rpc_attrs("grpc", &target.name, op, &mut attrs);
                    attrs.push(i("rpc.grpc.status_code", error.map_or(0, |e| e.3)));
                }
                Protocol::Thrift => rpc_attrs("apache_thrift", &target.name, op, &mut attrs),
            }
            attrs.push(s("server.address", &target.name));
            attrs.push(i("server.port", port(*protocol)));
            attrs.push(s("peer.service", &target.name));
            (span::SpanKind::Client, op.clone())
        }
        (SpanRole::Database, ServiceKind::Database { system, namespace }) => {
            attrs.push(s("db.system", system));
            attrs.push(s("db.system.name", system));
            attrs.push(s("db.namespace", namespace));
            attrs.push(s("db.operation.name", op));
            attrs.push(s("server.address", &target.name));
            attrs.push(i("server.port", db_port(system)));
            (span::SpanKind::Client, format!("{op} {namespace}"))
        }
        (SpanRole::Producer, ServiceKind::Queue { system, topic, .. }) => {
            attrs.push(s("messaging.system", system));
            attrs.push(s("messaging.destination.name", topic));
            attrs.push(s("messaging.operation.type", "send"));
            attrs.push(s("messaging.operation.name", "publish"));
            attrs.push(s("server.address", &target.name));
            (span::SpanKind::Producer, format!("publish {topic}"))
        }
        (SpanRole::Consumer, _) => {
            // The queue is found from the consumer operation's topology (whoever publishes).
            let queue = topology.services.iter().find_map(|q| match &q.kind {
                ServiceKind::Queue {
                    system,
                    topic,
                    consumer: Some(c),
                } if *c == rec.op => Some((system.as_str(), topic.as_str())),
                _ => None,
            });
            let (system, topic) = queue.unwrap_or(("queue", "unknown"));
            attrs.push(s("messaging.system", system));
            attrs.push(s("messaging.destination.name", topic));
            attrs.push(s("messaging.operation.type", "process"));
            (span::SpanKind::Consumer, format!("process {topic}"))
        }
        // Roles and kinds never mismatch (the engine pairs them); keep the span anyway.
        _ => (span::SpanKind::Internal, op.clone()),
    };
    if let Some((error_type, _, _, _)) = error {
        attrs.push(s("error.type", error_type));
    }
    Span {
        trace_id: rec.trace_id.to_vec(),
        span_id: rec.span_id.to_vec(),
        trace_state: String::new(),
        parent_span_id: if rec.parent == [0; 8] {
            Vec::new()
        } else {
            rec.parent.to_vec()
        },
        flags: 0x101,
        name,
        kind: kind as i32,
        start_time_unix_nano: rec.start_ns,
        end_time_unix_nano: rec.end_ns.max(rec.start_ns + 1),
        attributes: attrs,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(match error {
            Some((_, message, _, _)) => Status {
                message: message.to_owned(),
                code: status::StatusCode::Error as i32,
            },
            None => Status {
                message: String::new(),
                code: status::StatusCode::Unset as i32,
            },
        }),
    }
}

fn gauge(
    name: &str,
    description: &str,
    unit: &str,
    at_ns: u64,
    value: number_data_point::Value,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        metadata: Vec::new(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: Vec::new(),
                start_time_unix_nano: 0,
                time_unix_nano: at_ns,
                exemplars: Vec::new(),
                flags: 0,
                value: Some(value),
            }],
        })),
    }
}

/// Appends the OTLP metrics requests for `samples` taken at `at_ns`.
pub fn metrics_requests(
    pods: &Pods,
    samples: &[PodSample],
    at_ns: u64,
    out: &mut Vec<ExportMetricsServiceRequest>,
) {
    for chunk in samples.chunks(RESOURCES_PER_METRICS_REQUEST) {
        let resource_metrics = chunk
            .iter()
            .map(|sample| ResourceMetrics {
                resource: Some(pods.resource(sample.service, sample.pod)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics: vec![
                        gauge(
                            "container.cpu.utilization",
                            "CPU in use, share of the container's limit",
                            "1",
                            at_ns,
                            number_data_point::Value::AsDouble(sample.cpu_utilization),
                        ),
                        gauge(
                            "container.memory.usage",
                            "memory in use by the container",
                            "By",
                            at_ns,
                            number_data_point::Value::AsInt(sample.memory_bytes),
                        ),
                        gauge(
                            "k8s.container.restarts",
                            "restarts of the container",
                            "{restart}",
                            at_ns,
                            number_data_point::Value::AsInt(sample.restarts),
                        ),
                    ],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        out.push(ExportMetricsServiceRequest { resource_metrics });
    }
}
