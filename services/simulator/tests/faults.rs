//! Each fault type leaves its documented mark (`docs/simulator.md`) in the snapshots the real
//! graph code builds from the simulator's output, only while it is active, and its label says
//! exactly what was injected.
//!
//! One 42-minute Online Boutique run at 30 requests/s holds one fault of each type, each in its
//! own stretch of time; "before" is the three windows before a fault, "during" the windows
//! wholly inside it.

mod support;

use std::sync::OnceLock;

use meshwatch_graph::labels::FaultLabel;
use support::*;

const FAULTS: [&str; 7] = [
    "latency:service=productcatalogservice,factor=5,start=5m,duration=3m",
    "network_delay:service=frontend,callee=cartservice,delay=100ms,start=10m,duration=3m",
    "error_burst:service=paymentservice,rate=0.5,start=15m,duration=3m",
    "crash:service=shippingservice,start=20m,duration=3m",
    "cpu_contention:service=currencyservice,start=25m,duration=3m",
    "memory_leak:service=cartservice,start=30m,duration=4m",
    "cascade:service=productcatalogservice,start=36m,duration=3m",
];

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| simulate(&settings("onlineboutique", 30.0, &FAULTS), 42))
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b
}

#[test]
fn every_span_reaches_a_window_and_pairs() {
    let r = run();
    assert_eq!(
        r.accepted, r.stats.spans,
        "every span generated is aggregated"
    );
    assert_eq!(
        r.late, 0,
        "spans are exported in end-time order: none is late"
    );
    let spans: u64 = r.snapshots.iter().map(|s| s.stats.spans).sum();
    // Fault-free stretches: every span pairs. (In faults, calls refused by a crashed service
    // and server spans that end long after their client gave up stay unpaired, as in reality.)
    for m in (0..5).chain([9, 14, 19, 24, 29]) {
        assert_eq!(r.window(m).stats.unpaired, 0, "minute {m}");
    }
    assert_eq!(spans, r.stats.spans);
}

#[test]
fn labels_match_the_injected_faults_exactly() {
    let r = run();
    let minute = |m: i64| START_MS + m * MINUTE_MS;
    let expected: Vec<FaultLabel> = [
        ("latency", "productcatalogservice", None, 5, 8, "factor=5"),
        (
            "network_delay",
            "frontend",
            Some("cartservice"),
            10,
            13,
            "delay=100ms",
        ),
        ("error_burst", "paymentservice", None, 15, 18, "rate=0.5"),
        ("crash", "shippingservice", None, 20, 23, ""),
        ("cpu_contention", "currencyservice", None, 25, 28, "hog=0.6"),
        ("memory_leak", "cartservice", None, 30, 34, "factor=4"),
        (
            "cascade",
            "productcatalogservice",
            None,
            36,
            39,
            "factor=10",
        ),
    ]
    .into_iter()
    .map(|(kind, service, callee, from, to, param)| {
        let callee_part = callee.map(|c| format!(",callee={c}")).unwrap_or_default();
        let param_part = if param.is_empty() {
            String::new()
        } else {
            format!(",{param}")
        };
        FaultLabel {
            graph: "onlineboutique".to_owned(),
            start_ms: minute(from),
            end_ms: minute(to),
            root_cause: service.to_owned(),
            callee: callee.map(str::to_owned),
            fault_type: kind.to_owned(),
            source: "simulator:seed=11".to_owned(),
            detail: Some(format!(
                "{kind}:service={service}{callee_part}{param_part},start={from}m,duration={}m",
                to - from
            )),
        }
    })
    .collect();
    assert_eq!(r.labels, expected);
}

#[test]
fn latency_raises_the_root_causes_p90_by_the_factor() {
    let r = run();
    let svc = "productcatalogservice";
    let before = r.mean(2, 5, |m| r.p90(m, svc));
    for m in 5..8 {
        let x = ratio(r.p90(m, svc), before);
        assert!((3.5..6.5).contains(&x), "minute {m}: p90 × {x:.2}");
        // Others keep their own latency.
        let cur = ratio(
            r.p90(m, "currencyservice"),
            r.mean(2, 5, |m| r.p90(m, "currencyservice")),
        );
        assert!(cur < 1.3, "currencyservice × {cur:.2}");
    }
    for m in [8, 9] {
        let x = ratio(r.p90(m, svc), before);
        assert!(x < 1.3, "after the fault, minute {m}: × {x:.2}");
    }
}

#[test]
fn network_delay_shows_in_the_callers_view_and_the_gap_only() {
    let r = run();
    let edge = |m| r.edge(m, "frontend", "cartservice").expect("edge");
    let client = |m| edge(m).client_latency.quantile(0.9).expect("client view");
    let server = |m| edge(m).server_latency.quantile(0.9).expect("server view");
    let gap = |m| edge(m).gap.quantile(0.5).expect("gap");
    let (c0, s0, g0) = (
        r.mean(7, 10, client),
        r.mean(7, 10, server),
        r.mean(7, 10, gap),
    );
    for m in 10..13 {
        let dc = client(m) - c0;
        assert!(
            (85.0..120.0).contains(&dc),
            "minute {m}: client p90 +{dc:.1} ms"
        );
        let dg = gap(m) - g0;
        assert!(
            (90.0..110.0).contains(&dg),
            "minute {m}: gap p50 +{dg:.1} ms"
        );
        let s = ratio(server(m), s0);
        assert!((0.8..1.25).contains(&s), "minute {m}: server view × {s:.2}");
        let own = ratio(
            r.p90(m, "cartservice"),
            r.mean(7, 10, |m| r.p90(m, "cartservice")),
        );
        assert!(
            (0.8..1.25).contains(&own),
            "minute {m}: cartservice latency × {own:.2}"
        );
        // The other caller of cartservice sees no delay.
        if let Some(e) = r.edge(m, "checkoutservice", "cartservice") {
            assert!(e.gap.quantile(0.5).unwrap_or(0.0) < 5.0);
        }
    }
    let after = client(14) - c0;
    assert!(after < 5.0, "after: +{after:.1} ms");
}

#[test]
fn error_burst_raises_the_error_count() {
    let r = run();
    let errors = |m| {
        let n = r.node(m, "paymentservice").expect("payment");
        (n.errors, n.requests)
    };
    for m in 12..15 {
        let (e, n) = errors(m);
        assert!(e * 50 <= n, "before, minute {m}: {e}/{n}");
    }
    for m in 15..18 {
        let (e, n) = errors(m);
        assert!(e * 100 >= n * 35, "minute {m}: {e}/{n} errors");
        // Propagated to its caller.
        let checkout = r.node(m, "checkoutservice").expect("checkout");
        assert!(checkout.errors > 0, "minute {m}: checkout errors");
    }
    let (e, n) = errors(19);
    assert!(e * 50 <= n, "after: {e}/{n}");
}

#[test]
fn crash_removes_the_services_spans_and_adds_errors_at_callers() {
    let r = run();
    assert!(r.node(19, "shippingservice").is_some_and(|n| n.spans > 0));
    for m in 20..23 {
        let spans = r.node(m, "shippingservice").map_or(0, |n| n.spans);
        assert_eq!(spans, 0, "minute {m}: the crashed service emits nothing");
        let edge = r
            .edge(m, "frontend", "shippingservice")
            .expect("refused calls");
        assert!(
            edge.calls > 0 && edge.errors == edge.calls,
            "minute {m}: {edge:?}"
        );
        assert_eq!(edge.paired_calls, 0);
        let fe = r.node(m, "frontend").expect("frontend");
        assert!(fe.out_errors >= edge.errors && fe.errors > 0, "minute {m}");
    }
    // No CPU or memory samples from a crashed pod (the sample at 20:00 covers the 15 s before).
    assert_eq!(
        r.metric_mean("container.memory.usage", "shippingservice", 21, 23),
        None
    );
    assert!(
        r.metric_mean("container.memory.usage", "shippingservice", 24, 25)
            .is_some()
    );
    assert!(r.node(23, "shippingservice").is_some_and(|n| n.spans > 0));
}

#[test]
fn cpu_contention_queues_and_saturates_the_cpu() {
    let r = run();
    let svc = "currencyservice";
    let before = r.mean(22, 25, |m| r.p90(m, svc));
    let cpu_before = r
        .metric_mean("container.cpu.utilization", svc, 22, 25)
        .expect("samples");
    assert!(cpu_before < 0.5, "{cpu_before}");
    for m in 25..28 {
        let x = ratio(r.p90(m, svc), before);
        assert!(x > 1.8, "minute {m}: p90 × {x:.2}");
    }
    let cpu = r
        .metric_mean("container.cpu.utilization", svc, 26, 28)
        .expect("samples");
    assert!(cpu > 0.8, "cpu {cpu}");
    let x = ratio(r.p90(29, svc), before);
    assert!(x < 1.3, "after: × {x:.2}");
}

#[test]
fn memory_leak_grows_memory_then_latency_and_errors() {
    let r = run();
    let svc = "cartservice";
    let mem = |from, to| {
        r.metric_mean("container.memory.usage", svc, from, to)
            .expect("samples")
    };
    let base = mem(27, 30);
    assert!(mem(31, 32) > base * 1.5, "memory grows");
    assert!(mem(33, 34) > base * 2.5, "memory near its peak");
    assert!(mem(35, 36) < base * 1.2, "restarted");
    let restarts_before = r.metric_mean("k8s.container.restarts", svc, 29, 30);
    let restarts_after = r.metric_mean("k8s.container.restarts", svc, 35, 36);
    assert_eq!(restarts_before, Some(0.0));
    assert_eq!(restarts_after, Some(1.0));
    let p90 = r.mean(27, 30, |m| r.p90(m, svc));
    assert!(ratio(r.p90(30, svc), p90) < 1.3, "no slowdown at first");
    assert!(ratio(r.p90(33, svc), p90) > 1.5, "slow near the end");
    let n = r.node(33, svc).expect("cart");
    assert!(
        n.errors * 20 > n.requests,
        "errors near the end: {}/{}",
        n.errors,
        n.requests
    );
}

#[test]
fn cascade_spreads_timeouts_and_errors_to_the_callers() {
    let r = run();
    let svc = "productcatalogservice";
    let p90 = r.mean(33, 36, |m| r.p90(m, svc));
    let requests = r.mean(33, 36, |m| r.node(m, svc).expect("catalog").requests as f64);
    for m in 36..39 {
        assert!(
            ratio(r.p90(m, svc), p90) > 20.0,
            "minute {m}: root cause saturated"
        );
        let n = r.node(m, svc).expect("catalog");
        assert!(
            n.requests as f64 > requests * 1.2,
            "minute {m}: retries amplify the load"
        );
        for caller in ["frontend", "recommendationservice"] {
            let c = r.node(m, caller).expect("caller");
            assert!(
                c.errors * 10 > c.requests,
                "minute {m}: {caller} {}/{}",
                c.errors,
                c.requests
            );
        }
        // Services that do not depend on it are not hit.
        if let Some(ads) = r.node(m, "adservice") {
            assert!(
                ads.errors * 100 <= ads.requests.max(100),
                "minute {m}: adservice"
            );
        }
    }
    let after = r.node(41, "frontend").expect("frontend");
    assert!(after.errors * 50 <= after.requests, "recovered");
}
