//! Deterministic, realistic synthetic OTLP trace requests, for decode benchmarks
//! (`meshwatch bench`) and tests.
//!
//! A request holds call chains: a root SERVER span in an entry service, then calls from service
//! to service, each a CLIENT span in the caller and a SERVER span in the callee with the same
//! trace id and the client span as parent (so they pair), plus leaf database and messaging
//! calls. Spans are grouped by service into resources of at most `spans_per_resource` spans,
//! each resource with 8 attributes (`service.name`, `service.version`, `service.instance.id`,
//! `deployment.environment.name`, `k8s.cluster.name`, `k8s.namespace.name`,
//! `k8s.deployment.name`, `k8s.pod.name`). Ids come from a seeded SplitMix64; no `rand`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

/// First timestamp of the generated spans (2023-11-14T22:13:20Z).
pub const BASE_TIME_UNIX_NANO: u64 = 1_700_000_000_000_000_000;

/// A request of exactly `spans` spans from (at most) `services` services, `spans_per_resource`
/// spans per resource at most, and `attrs_per_span` attributes per span. The same arguments give
/// the same request. Zero `services` or `spans_per_resource` count as one.
pub fn synthetic_request(
    services: usize,
    spans: usize,
    spans_per_resource: usize,
    attrs_per_span: usize,
    seed: u64,
) -> ExportTraceServiceRequest {
    let services = services.max(1);
    let mut rng = SplitMix64(seed);
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); services];
    let mut made = 0usize;
    let mut time = BASE_TIME_UNIX_NANO;
    while made < spans {
        let trace_id = rng.id16();
        time += rng.below(5_000_000);
        let entry = rng.below_usize(services.min(8));
        let start = time;
        let duration = 20_000_000 + rng.below(80_000_000);
        let root = make_span(
            &mut rng,
            Call::Root,
            trace_id,
            &[],
            start,
            duration,
            attrs_per_span,
        );
        let mut parent = root.span_id.clone();
        by_service[entry].push(root);
        made += 1;
        // A chain of synchronous calls, each nested within the previous one.
        let mut caller = entry;
        let mut t = start + 1_000_000;
        let mut d = duration.saturating_sub(2_000_000);
        while made < spans && d > 4_000_000 {
            let r = rng.below(10);
            if r < 2 {
                // A database or messaging call from the caller: a leaf client span.
                let call = if r == 0 {
                    Call::Database
                } else {
                    Call::Messaging
                };
                let s = make_span(&mut rng, call, trace_id, &parent, t, d / 3, attrs_per_span);
                by_service[caller].push(s);
                made += 1;
                break;
            }
            let callee = if services == 1 {
                0
            } else {
                (caller + 1 + rng.below_usize(services - 1)) % services
            };
            let client = make_span(
                &mut rng,
                Call::Client(callee),
                trace_id,
                &parent,
                t,
                d,
                attrs_per_span,
            );
            let client_id = client.span_id.clone();
            by_service[caller].push(client);
            made += 1;
            if made >= spans {
                break;
            }
            let gap = 200_000 + rng.below(800_000);
            let server = make_span(
                &mut rng,
                Call::Server,
                trace_id,
                &client_id,
                t + gap,
                d.saturating_sub(2 * gap),
                attrs_per_span,
            );
            parent = server.span_id.clone();
            by_service[callee].push(server);
            made += 1;
            caller = callee;
            t += gap + 500_000;
            d = d.saturating_sub(2 * gap + 1_000_000);
        }
    }
    let per = spans_per_resource.max(1);
    let mut resource_spans = Vec::new();
    for (service, mut list) in by_service.into_iter().enumerate() {
        let mut instance = 0usize;
        while !list.is_empty() {
            let rest = list.split_off(per.min(list.len()));
            resource_spans.push(ResourceSpans {
                resource: Some(resource(service, instance)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.http".to_owned(),
                        version: "2.10.0".to_owned(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    }),
                    spans: list,
                    schema_url: "https://opentelemetry.io/schemas/1.27.0".to_owned(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.27.0".to_owned(),
            });
            list = rest;
            instance += 1;
        }
    }
    ExportTraceServiceRequest { resource_spans }
}

/// The name of service number `i` in a synthetic request.
pub fn service_name(i: usize) -> String {
    const NAMES: [&str; 8] = [
        "frontend", "checkout", "cart", "catalog", "payment", "shipping", "auth", "search",
    ];
    format!("{}-{i}", NAMES[i % NAMES.len()])
}

#[derive(Clone, Copy)]
enum Call {
    Root,
    Server,
    Client(usize),
    Database,
    Messaging,
}

fn make_span(
    rng: &mut SplitMix64,
    call: Call,
    trace_id: [u8; 16],
    parent: &[u8],
    start: u64,
    duration: u64,
    attrs: usize,
) -> Span {
    const ROUTES: [&str; 6] = [
        "/api/orders",
        "/api/cart/{id}",
        "/api/products",
        "/health",
        "/api/users/{id}",
        "/api/checkout",
    ];
    let route = ROUTES[rng.below_usize(ROUTES.len())];
    let error = rng.below(100) < 2;
    let status_code: i64 = if error { 500 } else { 200 };
    let (kind, name, pool): (span::SpanKind, String, Vec<(String, Val)>) = match call {
        Call::Root | Call::Server => (
            span::SpanKind::Server,
            format!("GET {route}"),
            vec![
                kv("http.request.method", Val::S("GET".into())),
                kv("url.path", Val::S(route.replace("{id}", "42"))),
                kv("http.route", Val::S(route.into())),
                kv("http.response.status_code", Val::I(status_code)),
                kv("url.scheme", Val::S("http".into())),
                kv("server.port", Val::I(8080)),
                kv("network.protocol.version", Val::S("1.1".into())),
                kv(
                    "client.address",
                    Val::S(format!("10.0.{}.{}", rng.below(256), rng.below(256))),
                ),
                kv(
                    "user_agent.original",
                    Val::S("Mozilla/5.0 (X11; Linux x86_64) meshwatch-loadgen/1.0".into()),
                ),
                kv(
                    "network.peer.port",
                    Val::I(40_000 + rng.below(20_000) as i64),
                ),
            ],
        ),
        Call::Client(callee) => {
            let host = service_name(callee);
            (
                span::SpanKind::Client,
                format!("GET {route}"),
                vec![
                    kv("http.request.method", Val::S("GET".into())),
                    kv("server.address", Val::S(host.clone())),
                    kv("server.port", Val::I(8080)),
                    kv(
                        "url.full",
                        Val::S(format!("http://{host}:8080{}", route.replace("{id}", "42"))),
                    ),
                    kv("http.response.status_code", Val::I(status_code)),
                    kv("peer.service", Val::S(host)),
                    kv("network.protocol.version", Val::S("1.1".into())),
                    kv(
                        "network.peer.address",
                        Val::S(format!("10.1.{}.{}", rng.below(256), rng.below(256))),
                    ),
                    kv("http.request.resend_count", Val::I(0)),
                    kv("network.transport", Val::S("tcp".into())),
                ],
            )
        }
        Call::Database => (
            span::SpanKind::Client,
            "SELECT orders".to_owned(),
            vec![
                kv("db.system.name", Val::S("postgresql".into())),
                kv("db.namespace", Val::S("orders".into())),
                kv("db.operation.name", Val::S("SELECT".into())),
                kv("db.collection.name", Val::S("orders".into())),
                kv(
                    "server.address",
                    Val::S("postgres.db.svc.cluster.local".into()),
                ),
                kv("server.port", Val::I(5432)),
                kv(
                    "db.query.text",
                    Val::S("SELECT id, status, total FROM orders WHERE customer_id = $1".into()),
                ),
                kv("db.response.returned_rows", Val::I(rng.below(50) as i64)),
                kv("network.peer.address", Val::S("10.2.0.17".into())),
                kv("network.transport", Val::S("tcp".into())),
            ],
        ),
        Call::Messaging => (
            span::SpanKind::Producer,
            "publish orders.created".to_owned(),
            vec![
                kv("messaging.system", Val::S("kafka".into())),
                kv(
                    "messaging.destination.name",
                    Val::S("orders.created".into()),
                ),
                kv("messaging.operation.type", Val::S("send".into())),
                kv("messaging.operation.name", Val::S("publish".into())),
                kv(
                    "server.address",
                    Val::S("kafka.messaging.svc.cluster.local".into()),
                ),
                kv("server.port", Val::I(9092)),
                kv(
                    "messaging.message.body.size",
                    Val::I(200 + rng.below(2000) as i64),
                ),
                kv(
                    "messaging.kafka.message.key",
                    Val::S(format!("order-{}", rng.below(1_000_000))),
                ),
                kv("messaging.client.id", Val::S("orders-producer".into())),
                kv("network.transport", Val::S("tcp".into())),
            ],
        ),
    };
    let attributes = pool
        .into_iter()
        .chain((0..).map(|i| kv(&format!("app.attribute.{i}"), Val::S(format!("value-{i}")))))
        .take(attrs)
        .map(|(key, value)| KeyValue {
            key,
            value: Some(AnyValue {
                value: Some(match value {
                    Val::S(s) => any_value::Value::StringValue(s),
                    Val::I(i) => any_value::Value::IntValue(i),
                }),
            }),
            key_strindex: 0,
        })
        .collect();
    Span {
        trace_id: trace_id.to_vec(),
        span_id: rng.id8().to_vec(),
        trace_state: String::new(),
        parent_span_id: parent.to_vec(),
        flags: 0x101,
        name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration.max(1_000),
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(Status {
            message: if error {
                "internal error".to_owned()
            } else {
                String::new()
            },
            code: if error {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
        }),
    }
}

enum Val {
    S(String),
    I(i64),
}

fn kv(key: &str, value: Val) -> (String, Val) {
    (key.to_owned(), value)
}

fn resource(service: usize, instance: usize) -> Resource {
    let name = service_name(service);
    let attr = |key: &str, value: String| KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        key_strindex: 0,
    };
    Resource {
        attributes: vec![
            attr("service.name", name.clone()),
            attr("service.version", "1.4.2".to_owned()),
            attr("service.instance.id", format!("{name}-{instance:04}")),
            attr("deployment.environment.name", "production".to_owned()),
            attr("k8s.cluster.name", "prod-eu-west-1".to_owned()),
            attr("k8s.namespace.name", "shop".to_owned()),
            attr("k8s.deployment.name", name.clone()),
            attr("k8s.pod.name", format!("{name}-7d9f8b6c5-{instance:05x}")),
        ],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for synthetic ids.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (`n > 0`; 0 gives 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }

    fn below_usize(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// A non-zero 16-byte id.
    fn id16(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&(self.next() | 1).to_be_bytes());
        id
    }

    /// A non-zero 8-byte id.
    fn id8(&mut self) -> [u8; 8] {
        (self.next() | 1).to_be_bytes()
    }
}
