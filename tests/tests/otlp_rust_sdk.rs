//! The Rust OpenTelemetry SDK with its OTLP exporter (`opentelemetry-otlp`, a real third-party
//! client) sends a three-service workload to a running ingest over OTLP/gRPC and OTLP/HTTP
//! (protobuf); the snapshots the ingest publishes to a real NATS JetStream must hold exactly the
//! nodes, edges, counts and latencies sent.
//!
//! Each service has its own `SdkTracerProvider` with its own `Resource` and exporter, as three
//! processes would; the context crosses services as a W3C `traceparent`, injected and extracted
//! in memory. Per trace (times in ms from the trace's start):
//!
//! ```text
//! frontend SERVER GET /checkout        0-60  root: edge user -> frontend
//! frontend CLIENT POST /api/checkout   2-56  -> checkout SERVER 4-52   (gap 54 - 48 = 6)
//! checkout CLIENT SELECT orders        6-16  db.system=postgresql, db.namespace=orders
//! checkout CLIENT POST /api/charge    18-50  -> payments SERVER 21-46  (gap 32 - 25 = 7),
//!                                              every 5th payments SERVER span has status ERROR
//! ```

#![allow(clippy::panic, clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use meshwatch_graph::snapshot::{ConnectionType, NodeKind};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use support::{ExpectedEdge, ExpectedNode, Ingest, all_equal, check_graph, within};

const SERVICES: [&str; 3] = ["frontend", "checkout", "payments"];
const GRAPH: &str = "rust-cluster";
const TRACES: u64 = 25;
const ERROR_EVERY: u64 = 5;
/// Between trace starts: 25 traces span 24 * 4 + 60 = 156 ms, well inside the allowed lateness.
const INTERVAL_MS: u64 = 4;

/// (start, end) of each span, ms from the trace's start.
const FRONTEND_SERVER: (u64, u64) = (0, 60);
const FRONTEND_CLIENT: (u64, u64) = (2, 56);
const CHECKOUT_SERVER: (u64, u64) = (4, 52);
const DB_CLIENT: (u64, u64) = (6, 16);
const PAYMENTS_CLIENT: (u64, u64) = (18, 50);
const PAYMENTS_SERVER: (u64, u64) = (21, 46);

/// The OTLP transport under test.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Grpc,
    HttpProtobuf,
}

/// Wraps the real exporter and counts what it reported as exported or failed (the SDK's
/// processors drop export results).
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    exported: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.exported.fetch_add(n, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(n, Ordering::Relaxed),
        };
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One service's SDK: provider (own resource, own exporter), tracer and export counters.
struct Service {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exported: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

fn exporter(
    transport: Transport,
    ingest: &Ingest,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", ingest.grpc()?))
            .with_timeout(Duration::from_secs(10))
            .build()?,
        Transport::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("http://{}/v1/traces", ingest.http()?))
            .with_timeout(Duration::from_secs(10))
            .build()?,
    };
    Ok(exporter)
}

/// Must run inside the tokio runtime: the batch processor runs on it.
fn service(name: &str, transport: Transport, ingest: &Ingest) -> anyhow::Result<Service> {
    let exported = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: exporter(transport, ingest)?,
        exported: Arc::clone(&exported),
        failed: Arc::clone(&failed),
    };
    let resource = Resource::builder_empty()
        .with_service_name(name.to_owned())
        .with_attribute(KeyValue::new("k8s.cluster.name", GRAPH))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_span_processor(BatchSpanProcessor::builder(counting, runtime::Tokio).build())
        .build();
    let tracer = provider.tracer("meshwatch.system-tests");
    Ok(Service {
        provider,
        tracer,
        exported,
        failed,
    })
}

/// The caller's side of a remote call: the context as a W3C `traceparent` header map.
fn inject(cx: &Context) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier
}

/// The callee's side: the remote parent from the headers.
fn extract(carrier: &HashMap<String, String>) -> Context {
    TraceContextPropagator::new().extract(carrier)
}

/// Emits the workload; returns how many payments server spans have status ERROR.
fn run_workload(fe: &SdkTracer, co: &SdkTracer, pay: &SdkTracer, base: SystemTime) -> u64 {
    let mut errors = 0;
    for i in 0..TRACES {
        let t0 = base + Duration::from_millis(i * INTERVAL_MS);
        let at = |ms: u64| t0 + Duration::from_millis(ms);

        // frontend: the root SERVER span, then its CLIENT span towards checkout.
        let root = fe
            .span_builder("GET /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(at(FRONTEND_SERVER.0))
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/checkout"),
                KeyValue::new("http.response.status_code", 200),
            ])
            .start_with_context(fe, &Context::new());
        let root_cx = Context::new().with_span(root);
        let fe_client = fe
            .span_builder("POST /api/checkout")
            .with_kind(SpanKind::Client)
            .with_start_time(at(FRONTEND_CLIENT.0))
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("server.address", "checkout"),
                KeyValue::new("server.port", 8080),
            ])
            .start_with_context(fe, &root_cx);
        let fe_client_cx = root_cx.with_span(fe_client);

        // checkout: SERVER span under the propagated context, a database call, a call on.
        let co_server = co
            .span_builder("POST /api/checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(at(CHECKOUT_SERVER.0))
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/api/checkout"),
            ])
            .start_with_context(co, &extract(&inject(&fe_client_cx)));
        let co_cx = Context::new().with_span(co_server);
        let db = co
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .with_start_time(at(DB_CLIENT.0))
            .with_attributes([
                KeyValue::new("db.system", "postgresql"),
                KeyValue::new("db.namespace", "orders"),
            ])
            .start_with_context(co, &co_cx);
        Context::new()
            .with_span(db)
            .span()
            .end_with_timestamp(at(DB_CLIENT.1));
        let pay_client = co
            .span_builder("POST /api/charge")
            .with_kind(SpanKind::Client)
            .with_start_time(at(PAYMENTS_CLIENT.0))
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("server.address", "payments"),
                KeyValue::new("server.port", 8080),
            ])
            .start_with_context(co, &co_cx);
        let pay_client_cx = co_cx.with_span(pay_client);

        // payments: the SERVER span, failing every 5th time.
        let failed = (i + 1) % ERROR_EVERY == 0;
        let pay_server = pay
            .span_builder("POST /api/charge")
            .with_kind(SpanKind::Server)
            .with_start_time(at(PAYMENTS_SERVER.0))
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", "/api/charge"),
                KeyValue::new("http.response.status_code", if failed { 500 } else { 200 }),
            ])
            .start_with_context(pay, &extract(&inject(&pay_client_cx)));
        let pay_server_cx = Context::new().with_span(pay_server);
        if failed {
            pay_server_cx
                .span()
                .set_status(Status::error("card declined"));
            errors += 1;
        }
        pay_server_cx
            .span()
            .end_with_timestamp(at(PAYMENTS_SERVER.1));
        pay_client_cx
            .span()
            .end_with_timestamp(at(PAYMENTS_CLIENT.1));
        co_cx.span().end_with_timestamp(at(CHECKOUT_SERVER.1));
        fe_client_cx
            .span()
            .end_with_timestamp(at(FRONTEND_CLIENT.1));
        root_cx.span().end_with_timestamp(at(FRONTEND_SERVER.1));
    }
    errors
}

fn ms(span: (u64, u64)) -> f64 {
    (span.1 - span.0) as f64
}

async fn sends_the_workload(transport: Transport, test: &str) -> anyhow::Result<()> {
    let ingest = Ingest::start(test).await?;
    let mut reader = ingest.reader().await?;
    let services = SERVICES
        .iter()
        .map(|name| service(name, transport, &ingest))
        .collect::<anyhow::Result<Vec<_>>>()?;

    // The last span ends 50 ms ago: every window is still open, all spans within 160 ms.
    let length = Duration::from_millis((TRACES - 1) * INTERVAL_MS + FRONTEND_SERVER.1 + 50);
    let base = SystemTime::now() - length;
    let errors = run_workload(
        &services[0].tracer,
        &services[1].tracer,
        &services[2].tracer,
        base,
    );
    assert_eq!(errors, TRACES / ERROR_EVERY);

    // Flush and shut down every provider (blocking calls: off the runtime's workers).
    for (name, s) in SERVICES.iter().zip(&services) {
        let provider = s.provider.clone();
        tokio::task::spawn_blocking(move || {
            provider.force_flush()?;
            provider.shutdown()
        })
        .await?
        .with_context(|| format!("{name}: flush and shutdown of the SDK"))?;
    }
    let per_service = [2 * TRACES, 3 * TRACES, TRACES];
    for ((name, s), want) in SERVICES.iter().zip(&services).zip(per_service) {
        let (exported, failed) = (
            s.exported.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed),
        );
        assert_eq!(
            (exported, failed),
            (want, 0),
            "{name}: spans exported / failed"
        );
    }
    let spans = per_service.iter().sum::<u64>();

    let totals = ingest.totals_after(&mut reader, GRAPH, spans).await?;
    let n = TRACES;
    let e = errors;
    let node = |name: &str, kind, requests, errors| ExpectedNode {
        name: name.to_owned(),
        kind,
        requests,
        errors,
    };
    let edge = |caller: &str, callee: &str, connection_type, calls, errors| ExpectedEdge {
        caller: caller.to_owned(),
        callee: callee.to_owned(),
        connection_type,
        calls,
        errors,
    };
    check_graph(
        &totals,
        spans,
        &[
            // The virtual caller's "requests" are the entry calls it makes (none served).
            node("user", NodeKind::User, 0, 0),
            node("frontend", NodeKind::Service, n, 0),
            node("checkout", NodeKind::Service, n, 0),
            node("payments", NodeKind::Service, n, e),
            node("postgresql/orders", NodeKind::Database, n, 0),
        ],
        &[
            edge("user", "frontend", ConnectionType::Entry, n, 0),
            edge("frontend", "checkout", ConnectionType::Direct, n, 0),
            edge("checkout", "payments", ConnectionType::Direct, n, e),
            edge(
                "checkout",
                "postgresql/orders",
                ConnectionType::Database,
                n,
                0,
            ),
        ],
        reader.received(),
    )?;

    // Outgoing calls per service (the database call counts as one).
    let out = |name: &str| -> anyhow::Result<(u64, u64)> {
        let n = totals.node(name)?;
        Ok((n.out_calls, n.out_errors))
    };
    assert_eq!(out("frontend")?, (n, 0));
    assert_eq!(out("checkout")?, (2 * n, 0));
    assert_eq!(out("payments")?, (0, 0));

    // Both views of the frontend -> checkout calls and the gap between them, on every call.
    let fc = totals.edge("frontend", "checkout")?;
    assert_eq!(fc.paired_calls, n);
    all_equal(
        &fc.client_latency,
        n,
        ms(FRONTEND_CLIENT),
        "frontend->checkout client",
    )?;
    all_equal(
        &fc.server_latency,
        n,
        ms(CHECKOUT_SERVER),
        "frontend->checkout server",
    )?;
    all_equal(
        &fc.gap,
        n,
        ms(FRONTEND_CLIENT) - ms(CHECKOUT_SERVER),
        "frontend->checkout gap",
    )?;
    let cp = totals.edge("checkout", "payments")?;
    assert_eq!(cp.paired_calls, n);
    all_equal(
        &cp.gap,
        n,
        ms(PAYMENTS_CLIENT) - ms(PAYMENTS_SERVER),
        "checkout->payments gap",
    )?;
    // A database call has only the caller's view.
    let db = totals.edge("checkout", "postgresql/orders")?;
    all_equal(&db.client_latency, n, ms(DB_CLIENT), "checkout->db client")?;
    assert!(db.server_latency.is_empty() && db.gap.is_empty());
    // The entry edge has only the callee's view.
    let entry = totals.edge("user", "frontend")?;
    all_equal(
        &entry.server_latency,
        n,
        ms(FRONTEND_SERVER),
        "user->frontend server",
    )?;

    ingest.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_over_grpc_builds_the_service_graph() -> anyhow::Result<()> {
    within(sends_the_workload(Transport::Grpc, "rustgrpc")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_over_http_protobuf_builds_the_service_graph() -> anyhow::Result<()> {
    within(sends_the_workload(Transport::HttpProtobuf, "rusthttp")).await
}
