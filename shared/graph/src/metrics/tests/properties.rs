//! Property tests: arrival order, absent quantities, counters across resets.

use proptest::prelude::*;

use super::*;

/// One sample in the property tests: service, instance (pod), what, time in ms, value.
#[derive(Debug, Clone)]
struct Gen {
    service: usize,
    pod: usize,
    metric: usize,
    time_ms: u64,
    value: f64,
}

const SERVICES: [&str; 3] = ["a", "b", "c"];
const GEN_METRICS: [&str; 7] = [
    "container.cpu.utilization",
    "process.cpu.utilization",
    "container.memory.usage",
    "k8s.pod.memory.usage",
    "container.cpu.time",
    "k8s.container.restarts",
    "container.network.io",
];

/// Samples within 1 s .. 39 s: two windows of 30 s that stay open (lateness 10 s) until the
/// final flush, so that no order makes a sample late.
fn arb_samples() -> impl Strategy<Value = Vec<Gen>> {
    proptest::collection::vec(
        (
            0..3usize,
            0..2usize,
            0..GEN_METRICS.len(),
            1_000u64..39_000,
            0u32..1000,
        )
            .prop_map(|(service, pod, metric, time_ms, value)| Gen {
                service,
                pod,
                metric,
                time_ms,
                value: f64::from(value) / 7.0,
            }),
        1..40,
    )
}

fn requests_of(samples: &[Gen]) -> Vec<ExportMetricsServiceRequest> {
    // One resource per sample: several resources of one pod are one instance.
    vec![request(
        samples
            .iter()
            .map(|g| {
                let name = GEN_METRICS[g.metric];
                let t = g.time_ms * 1_000_000;
                let p = point(t, g.value, vec![kv("network.io.direction", "receive")]);
                let m = if name.ends_with(".time") || name.ends_with(".io") {
                    sum(name, CUMULATIVE, vec![p])
                } else {
                    gauge(name, vec![p])
                };
                resource(
                    vec![
                        kv("service.name", SERVICES[g.service]),
                        kv(
                            "k8s.pod.name",
                            &format!("{}-{}", SERVICES[g.service], g.pod),
                        ),
                    ],
                    vec![m],
                )
            })
            .collect(),
    )]
}

proptest! {
    /// Arrival order and request boundaries do not change the snapshots, and every data point
    /// is accepted exactly once.
    #[test]
    fn order_does_not_change_resources(samples in arb_samples(), seed in any::<u64>(), split in 1usize..5) {
        let (expected, _) = run(&requests_of(&samples));
        let mut shuffled = samples.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let chunk = shuffled.len().div_ceil(split);
        let requests: Vec<_> = shuffled.chunks(chunk).flat_map(requests_of).collect();
        let (got, reports) = run(&requests);
        prop_assert_eq!(&got, &expected);
        let accepted: u64 = reports.iter().map(|r| r.accepted).sum();
        prop_assert_eq!(accepted, samples.len() as u64);
    }

    /// A quantity never reported stays `None`, whatever else arrives.
    #[test]
    fn absent_quantities_stay_none(samples in arb_samples()) {
        let (out, _) = run(&requests_of(&samples));
        for snapshot in &out {
            for node in &snapshot.nodes {
                let sent = |names: &[&str]| samples.iter().any(|g| {
                    SERVICES[g.service] == node.name
                        && names.contains(&GEN_METRICS[g.metric])
                });
                let r = &node.resources;
                if !sent(&["container.cpu.utilization", "process.cpu.utilization", "container.cpu.time"]) {
                    prop_assert_eq!(r.cpu_utilization, None);
                }
                if !sent(&["container.memory.usage", "k8s.pod.memory.usage"]) {
                    prop_assert_eq!(r.memory_bytes, None);
                }
                if !sent(&["k8s.container.restarts"]) {
                    prop_assert_eq!(r.restarts, None);
                }
                if !sent(&["container.network.io"]) {
                    prop_assert_eq!(r.network_rx_bytes_per_s, None);
                }
                prop_assert_eq!(r.memory_utilization, None);
                prop_assert_eq!(r.network_tx_bytes_per_s, None);
            }
        }
    }

    /// A cumulative counter with resets, sampled at random times over several windows: the
    /// rate of each window times the time it covers adds up to the true total increase.
    #[test]
    fn rates_from_cumulative_counters_survive_resets(
        steps in proptest::collection::vec((1u64..20_000, 0u32..10_000, prop::bool::weighted(0.2)), 2..30),
    ) {
        // A reset restarts the counter from zero with a new start time (a restarted
        // process), so that it is visible even when the new value is not smaller.
        let mut t_ms = 1_000u64;
        let mut start_ms = 500u64;
        let mut value = 0.0f64;
        let mut points = Vec::new();
        let mut total = 0.0;
        for (i, &(dt, inc, reset)) in steps.iter().enumerate() {
            if i > 0 {
                if reset {
                    start_ms = t_ms + 1;
                    value = 0.0;
                }
                t_ms += dt;
                total += f64::from(inc);
            }
            value += f64::from(inc);
            points.push((t_ms, start_ms, value));
        }
        let req = request(vec![svc(
            "gw",
            vec![sum(
                "container.network.io",
                CUMULATIVE,
                points
                    .iter()
                    .map(|&(t, start, v)| {
                        let mut p = point(t * 1_000_000, v, vec![kv("network.io.direction", "receive")]);
                        p.start_time_unix_nano = start * 1_000_000;
                        p
                    })
                    .collect(),
            )],
        )]);
        let (out, _) = run(&[req]);
        // Each window covers from the last point before it to its own last point.
        let mut recovered = 0.0;
        let mut prev_last: Option<u64> = None;
        for snapshot in &out {
            let start = snapshot.window_start_ms as u64;
            let end = start + u64::from(snapshot.window_ms);
            let in_window: Vec<u64> = points.iter().map(|p| p.0).filter(|t| (start..end).contains(t)).collect();
            let Some(&last) = in_window.last() else { continue };
            let from = prev_last.unwrap_or(in_window[0]);
            let covered = (last - from) as f64 / 1e3;
            let rate = snapshot.nodes[0].resources.network_rx_bytes_per_s;
            if covered > 0.0 {
                let rate = rate.expect("a rate where two points are known");
                recovered += rate * covered;
            } else {
                prop_assert_eq!(rate, None);
            }
            prev_last = Some(last);
        }
        prop_assert!((recovered - total).abs() <= 1e-6 * total.max(1.0), "{} vs {}", recovered, total);
    }
}
