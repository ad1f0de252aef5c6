//! `meshwatch loadgen` and `meshwatch simulate --endpoint` against an in-process ingest (NATS
//! unreachable: snapshots stay buffered): what the client counts as accepted is what the
//! ingest counted (`meshwatch_ingest_spans_total{outcome="accepted"}` on its /metrics), over
//! gRPC and HTTP; an overloaded ingest (tiny buffer, tiny queue) refuses, and the load
//! generator reports it.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use meshwatch_cli::loadgen::{LoadgenArgs, load};
use meshwatch_ingest::{IngestConfig, run};
use meshwatch_runtime::{Readiness, Shutdown};
use meshwatch_simulator::driver::{EndpointOptions, now_ms, paced_start_ms, run_to_endpoint};
use meshwatch_simulator::export::Protocol;
use meshwatch_simulator::{SimulationSettings, Simulator};
use tokio_util::sync::CancellationToken;

/// The ingest's metrics are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config() -> IngestConfig {
    let mut c = IngestConfig::default();
    c.admin.listen = loopback();
    c.otlp.grpc_listen = loopback();
    c.otlp.http_listen = loopback();
    c.nats.url = "nats://127.0.0.1:1".to_owned();
    c.shutdown.grace = Duration::from_secs(2);
    c
}

async fn accepted_spans(admin: SocketAddr) -> u64 {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("meshwatch_ingest_spans_total{outcome=\"accepted\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

fn args(endpoint: String, protocol: Protocol) -> LoadgenArgs {
    LoadgenArgs {
        endpoint,
        protocol,
        spans_per_request: 200,
        concurrency: 2,
        duration: Duration::from_millis(1500),
        rate: None,
        services: 20,
        spans_per_resource: 20,
        attrs_per_span: 6,
        pool: 4,
        timeout: Duration::from_secs(10),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn loadgen_counts_what_the_ingest_accepted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let shutdown = Shutdown::new(Readiness::new());
        let running = run(config(), &shutdown).await.unwrap();
        for (protocol, addr) in [
            (Protocol::Grpc, running.grpc.unwrap()),
            (Protocol::Http, running.http.unwrap()),
        ] {
            let before = accepted_spans(running.admin).await;
            let mut a = args(format!("http://{addr}"), protocol);
            if protocol == Protocol::Http {
                // Fixed rate as well: 20 requests/s for 1.5 s.
                a.rate = Some(20.0);
            }
            let report = load(&a).await.unwrap();
            let after = accepted_spans(running.admin).await;
            assert!(report.ok > 0, "{protocol:?}: {report:?}");
            assert_eq!(report.errors, 0, "{protocol:?}: {:?}", report.first_error);
            assert_eq!(report.refused, 0);
            assert_eq!(report.spans_rejected, 0, "nothing late, nothing invalid");
            assert_eq!(report.spans_accepted, report.ok * 200);
            assert_eq!(report.spans_accepted, after - before, "{protocol:?}");
            assert!(report.latency.quantile(0.99).is_some());
            if protocol == Protocol::Http {
                assert!((25..=31).contains(&report.requests), "{}", report.requests);
            }
        }
        shutdown.trigger("test done");
        shutdown.wait(Duration::from_secs(5)).await;
    });
}

#[test]
fn loadgen_reports_refusals_of_an_overloaded_ingest() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let mut c = config();
        c.buffer.max_snapshots = 1;
        c.pipeline.queue_requests = 1;
        c.graph.window = Duration::from_secs(1);
        c.graph.allowed_lateness = Duration::ZERO;
        let shutdown = Shutdown::new(Readiness::new());
        let running = run(c, &shutdown).await.unwrap();
        let before = accepted_spans(running.admin).await;
        let mut a = args(format!("http://{}", running.grpc.unwrap()), Protocol::Grpc);
        a.concurrency = 4;
        a.duration = Duration::from_secs(4);
        let report = load(&a).await.unwrap();
        let after = accepted_spans(running.admin).await;
        assert!(report.refused > 0, "{report:?}");
        assert!(report.ok > 0, "accepted until the buffer filled");
        assert_eq!(report.spans_accepted, after - before);
        let rendered = report.render(&a);
        assert!(
            rendered.contains(&format!("{} refused", report.refused)),
            "{rendered}"
        );
        shutdown.trigger("test done");
        shutdown.wait(Duration::from_secs(5)).await;
    });
}

#[test]
fn simulate_to_an_endpoint_delivers_every_span() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let shutdown = Shutdown::new(Readiness::new());
        let running = run(config(), &shutdown).await.unwrap();
        // One graph per protocol: a second run into the same graph would start behind the
        // watermark the first left (its spans would be late).
        for (protocol, addr, topology) in [
            (Protocol::Grpc, running.grpc.unwrap(), "sockshop"),
            (Protocol::Http, running.http.unwrap(), "socialnetwork"),
        ] {
            let before = accepted_spans(running.admin).await;
            let settings = SimulationSettings {
                topology: topology.parse().unwrap(),
                rate: 30.0,
                ..SimulationSettings::default()
            };
            let duration = Duration::from_secs(40);
            let start = paced_start_ms(now_ms(), Some(duration), 0.0);
            let sim = Simulator::new(&settings, start, Some(duration)).unwrap();
            let options = EndpointOptions {
                endpoint: format!("http://{addr}"),
                protocol,
                timeout: Duration::from_secs(10),
                max_in_flight: 2,
                queue_requests: 16,
                retries: 3,
                labels_path: None,
            };
            let report = run_to_endpoint(sim, 0.0, options, CancellationToken::new(), None, None)
                .await
                .unwrap();
            let after = accepted_spans(running.admin).await;
            let p = report.progress;
            assert!(report.stats.spans > 1000);
            assert_eq!(
                p.spans_accepted + p.spans_rejected,
                report.stats.spans,
                "{p:?}"
            );
            assert_eq!(p.spans_rejected, 0, "{protocol:?}: {p:?}");
            assert_eq!(p.spans_dropped, 0);
            assert_eq!(p.spans_accepted, after - before, "{protocol:?}");
        }
        shutdown.trigger("test done");
        shutdown.wait(Duration::from_secs(5)).await;
    });
}
