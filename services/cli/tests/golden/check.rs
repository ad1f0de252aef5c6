//! Assertions of the golden tests: the output against the oracle's expectation, and
//! byte comparisons that show the first differing line.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::oracle::{self, Expected, Span, USER};

/// The documented relative accuracy of the latency quantiles (docs/snapshot-json.md).
pub const ALPHA: f64 = 0.01;
/// Magnitudes below this (ms) count as zero in the sketch.
pub const ZERO_BELOW_MS: f64 = 1e-4;
/// Half of the output's rounding step (µs).
pub const HALF_ROUNDING_MS: f64 = 0.0005;

/// The snapshots of an output, one JSON object per line.
pub fn lines(output: &[u8]) -> Vec<Value> {
    output
        .split_inclusive(|&b| b == b'\n')
        .map(|l| {
            assert!(l.ends_with(b"\n"), "every snapshot ends with a newline");
            serde_json::from_slice(l).expect("output line is JSON")
        })
        .collect()
}

pub fn u64_at(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned integer in {v}"))
}

pub fn round_us(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Checks a latency object against the exact values it summarises; absent when there are none.
pub fn check_latency(ctx: &str, got: Option<&Value>, values: &[f64]) {
    if values.is_empty() {
        assert!(got.is_none(), "{ctx}: expected no field, got {got:?}");
        return;
    }
    let got = got.unwrap_or_else(|| panic!("{ctx}: missing ({} values)", values.len()));
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    assert_eq!(got["count"].as_u64(), Some(n as u64), "{ctx}: count");
    let field = |k: &str| {
        let v = got[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{ctx}.{k}: {got}"));
        assert_eq!(round_us(v), v, "{ctx}.{k} is not rounded to µs");
        v
    };
    assert_eq!(field("max"), round_us(sorted[n - 1]), "{ctx}: max");
    let mean = values.iter().sum::<f64>() / n as f64;
    let mean_tol = HALF_ROUNDING_MS + 1e-9 * mean.abs().max(1.0);
    assert!(
        (field("mean") - mean).abs() <= mean_tol,
        "{ctx}: mean {mean}"
    );
    for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
        // The lower quantile: the value of rank floor(q (n - 1)), 0-based.
        let exact = sorted[(q * (n - 1) as f64).floor() as usize];
        let tol = ALPHA * exact.abs() * (1.0 + 1e-9) + ZERO_BELOW_MS + HALF_ROUNDING_MS;
        let v = field(k);
        assert!((v - exact).abs() <= tol, "{ctx}.{k} = {v}, exact {exact}");
    }
}

/// Asserts that the command's output is exactly the oracle's expectation.
pub fn check_against_oracle(ctx: &str, output: &[u8], exp: &Expected, window_ms: i64) {
    let snapshots = lines(output);
    let keys: Vec<(String, i64)> = snapshots
        .iter()
        .map(|s| {
            let graph = s["graph"].as_str().expect("graph").to_owned();
            (
                graph,
                s["window_start_ms"].as_i64().expect("window_start_ms"),
            )
        })
        .collect();
    assert_eq!(keys, exp.order, "{ctx}: snapshots and their order");
    for (s, key) in snapshots.iter().zip(&keys) {
        let ctx = format!("{ctx} {} {}", key.0, key.1);
        let w = &exp.windows[key];
        assert_eq!(
            s["window_seconds"].as_f64(),
            Some(window_ms as f64 / 1000.0)
        );
        let stats = &s["stats"];
        let got = oracle::StatsExp {
            spans: u64_at(stats, "spans"),
            paired: u64_at(stats, "paired"),
            unpaired: u64_at(stats, "unpaired"),
            late: u64_at(stats, "late"),
        };
        assert_eq!(got, w.stats, "{ctx}: stats");
        for zero in ["rejected", "dropped", "overflow_services", "overflow_edges"] {
            assert_eq!(u64_at(stats, zero), 0, "{ctx}: stats.{zero}");
        }
        let dropped = u64_at(stats, "dropped");
        assert_eq!(
            got.paired + got.unpaired + dropped,
            got.spans,
            "{ctx}: each span counted once"
        );

        let nodes = s["nodes"].as_array().expect("nodes");
        let names: Vec<&str> = nodes
            .iter()
            .map(|n| n["service"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = w.nodes.keys().map(String::as_str).collect();
        assert_eq!(names, want, "{ctx}: nodes, sorted by name");
        for (n, (name, e)) in nodes.iter().zip(&w.nodes) {
            let ctx = format!("{ctx} node {name}");
            let kind = if name == USER { "user" } else { "service" };
            assert_eq!(n["kind"], kind, "{ctx}: kind");
            assert_eq!(u64_at(n, "requests"), e.requests, "{ctx}: requests");
            assert_eq!(u64_at(n, "spans"), e.spans, "{ctx}: spans");
            assert_eq!(u64_at(n, "out_calls"), e.out_calls, "{ctx}: out_calls");
            assert_eq!(u64_at(n, "errors") + u64_at(n, "out_errors"), 0, "{ctx}");
            check_latency(&format!("{ctx} latency"), n.get("latency_ms"), &e.latency);
            let out = n.get("out_latency_ms");
            check_latency(&format!("{ctx} out_latency"), out, &e.out_latency);
            check_latency(&format!("{ctx} in_gap"), n.get("in_gap_ms"), &e.in_gap);
        }

        let edges = s["edges"].as_array().expect("edges");
        let pairs: Vec<(&str, &str)> = edges
            .iter()
            .map(|e| (e["caller"].as_str().unwrap(), e["callee"].as_str().unwrap()))
            .collect();
        let want: Vec<(&str, &str)> = w
            .edges
            .keys()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(pairs, want, "{ctx}: edges, sorted by (caller, callee)");
        for (e, ((caller, callee), x)) in edges.iter().zip(&w.edges) {
            let ctx = format!("{ctx} edge {caller} -> {callee}");
            let kind = if caller == USER { "entry" } else { "direct" };
            assert_eq!(e["connection_type"], kind, "{ctx}: connection_type");
            assert_eq!(u64_at(e, "calls"), x.calls, "{ctx}: calls");
            assert_eq!(
                u64_at(e, "paired_calls"),
                x.paired_calls,
                "{ctx}: paired_calls"
            );
            assert_eq!(u64_at(e, "errors"), 0, "{ctx}: errors");
            let client = e.get("client_latency_ms");
            check_latency(&format!("{ctx} client"), client, &x.client);
            let server = e.get("server_latency_ms");
            check_latency(&format!("{ctx} server"), server, &x.server);
            check_latency(&format!("{ctx} gap"), e.get("gap_ms"), &x.gap);
        }
    }
}

/// Totals over a whole fixture, as its generator's summary states them.
pub struct FixtureTotals {
    pub traces: u64,
    pub services: Vec<String>,
    pub spans_by: BTreeMap<String, u64>,
    pub roots: BTreeMap<String, u64>,
    pub same_service_pairs: u64,
    pub edges: BTreeMap<(String, String), u64>,
}

impl FixtureTotals {
    pub fn of(spans: &[Span]) -> Self {
        let by_id: HashMap<(&str, &str), &Span> = spans
            .iter()
            .map(|s| ((s.trace.as_str(), s.id.as_str()), s))
            .collect();
        assert_eq!(by_id.len(), spans.len(), "span ids are unique");
        let mut t = FixtureTotals {
            traces: 0,
            services: Vec::new(),
            spans_by: Default::default(),
            roots: Default::default(),
            same_service_pairs: 0,
            edges: Default::default(),
        };
        let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace.as_str()).collect();
        t.traces = traces.len() as u64;
        for s in spans {
            *t.spans_by.entry(s.service.clone()).or_default() += 1;
            let Some(parent) = &s.parent else {
                *t.roots.entry(s.service.clone()).or_default() += 1;
                continue;
            };
            let parent = by_id[&(s.trace.as_str(), parent.as_str())];
            if parent.service == s.service {
                t.same_service_pairs += 1;
            } else {
                let key = (parent.service.clone(), s.service.clone());
                *t.edges.entry(key).or_default() += 1;
            }
        }
        t.services = t.spans_by.keys().cloned().collect();
        t
    }
}

/// Shows the first differing line rather than two 60 kB strings.
pub fn assert_same_output(ctx: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let (g, w): (Vec<_>, Vec<_>) = (
        got.split(|&b| b == b'\n').collect(),
        want.split(|&b| b == b'\n').collect(),
    );
    let i = g
        .iter()
        .zip(&w)
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(w.len()));
    let show = |l: Option<&&[u8]>| l.map(|l| String::from_utf8_lossy(l).into_owned());
    panic!(
        "{ctx}: output differs at line {} ({} vs {} lines)\n got: {:?}\nwant: {:?}",
        i + 1,
        g.len(),
        w.len(),
        show(g.get(i)),
        show(w.get(i))
    );
}
