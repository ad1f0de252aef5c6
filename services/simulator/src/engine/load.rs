//! Load and resources: expected traffic per operation (for capacity sizing), each service's CPU
//! utilisation (rate × CPU cost per request over its capacity, smoothed), queueing in front of
//! the CPU (Sakasegawa's M/M/c approximation below saturation, a fluid backlog above), load
//! shedding, and the CPU and memory samples.

use super::{Simulator, TICK_NS};
use crate::otlp::{self, PodSample};
use crate::rng::Rng;
use crate::settings::SimulationSettings;
use crate::topology::{OpRef, ServiceKind, Topology};

/// Share of an operation's own processing time spent on the CPU (the rest waits on locks,
/// I/O, the runtime).
pub const CPU_SHARE: f64 = 0.5;
/// Smoothing of the utilisation per tick (exponentially weighted, about 3 s).
const EWMA: f64 = 0.3;
/// A service sheds new requests (fails them at once) while its backlog is above this.
pub const SHED_MS: f64 = 5_000.0;
/// Backlog cap: clients have long given up.
const MAX_BACKLOG_MS: f64 = 30_000.0;
/// Smallest CPU allocation of a pod, cores.
const MIN_CORES_PER_POD: f64 = 0.1;
/// CPU of an idle pod, share of its allocation.
const IDLE_CPU: f64 = 0.01;
const STREAM_METRICS: u64 = 4;

/// Load state of one service.
#[derive(Debug, Clone)]
pub(crate) struct SvcState {
    pub capacity_cores: f64,
    /// Servers of the queueing model (cores of one pod, at least 1).
    pub servers: f64,
    /// Mean CPU time per request at the expected mix, ms.
    pub mean_cpu_ms: f64,
    /// Memory of one idle pod, bytes.
    pub memory_bytes: f64,
    pub cpu_ms_tick: f64,
    /// Smoothed utilisation of the capacity by the service's own work.
    pub rho: f64,
    pub backlog_ms: f64,
    pub cpu_ms_interval: f64,
    pub hog_interval: f64,
    pub leak_interval: f64,
    pub ticks_interval: u32,
    pub down_ticks_interval: u32,
    pub restarts: u64,
    pub was_down: bool,
    pub had_leak: bool,
    pub next_pod: u32,
}

/// Expected calls per second of every operation at the mean rate, `[service][op]`.
pub(crate) fn op_rates(topology: &Topology, rate: f64) -> Vec<Vec<f64>> {
    let mut offsets = Vec::with_capacity(topology.services.len());
    let mut total = 0;
    for s in &topology.services {
        offsets.push(total);
        total += s.ops.len();
    }
    let idx = |r: OpRef| offsets[r.service] + r.op;
    // Weighted edges between operations.
    let mut edges: Vec<Vec<(usize, f64)>> = vec![Vec::new(); total];
    let mut indegree = vec![0usize; total];
    for (si, s) in topology.services.iter().enumerate() {
        for (oi, op) in s.ops.iter().enumerate() {
            let from = idx(OpRef {
                service: si,
                op: oi,
            });
            for stage in &op.stages {
                for call in &stage.calls {
                    let mean = f64::from(call.count.0 + call.count.1.max(call.count.0)) / 2.0;
                    edges[from].push((idx(call.target), call.probability * mean));
                    indegree[idx(call.target)] += 1;
                }
            }
            if let ServiceKind::Queue {
                consumer: Some(c), ..
            } = &s.kind
            {
                edges[from].push((idx(*c), 1.0));
                indegree[idx(*c)] += 1;
            }
        }
    }
    let mut flow = vec![0.0; total];
    let weights: f64 = topology.entries.iter().map(|e| e.weight.max(0.0)).sum();
    for e in &topology.entries {
        if weights > 0.0 {
            flow[idx(e.target)] += rate * e.weight.max(0.0) / weights;
        }
    }
    // Kahn's algorithm: the graph is a DAG (checked by `Topology::validate`).
    let mut ready: Vec<usize> = (0..total).filter(|&i| indegree[i] == 0).collect();
    while let Some(i) = ready.pop() {
        for &(to, w) in &edges[i] {
            flow[to] += flow[i] * w;
            indegree[to] -= 1;
            if indegree[to] == 0 {
                ready.push(to);
            }
        }
    }
    topology
        .services
        .iter()
        .enumerate()
        .map(|(si, s)| (0..s.ops.len()).map(|oi| flow[offsets[si] + oi]).collect())
        .collect()
}

/// Expected requests per second of each service at the mean rate.
pub(crate) fn expected_traffic(topology: &Topology, rate: f64) -> Vec<f64> {
    op_rates(topology, rate)
        .iter()
        .map(|ops| ops.iter().sum())
        .collect()
}

/// Sizes every service for its expected CPU demand at the daily peak.
pub(crate) fn provision(topology: &Topology, settings: &SimulationSettings) -> Vec<SvcState> {
    let rates = op_rates(topology, settings.rate);
    topology
        .services
        .iter()
        .zip(&rates)
        .map(|(s, op_rates)| {
            let requests: f64 = op_rates.iter().sum();
            let cpu_ms_per_s: f64 = s
                .ops
                .iter()
                .zip(op_rates)
                .map(|(op, r)| r * op.work_ms * CPU_SHARE)
                .sum();
            let mean_cpu_ms = if requests > 0.0 {
                cpu_ms_per_s / requests
            } else {
                s.ops.first().map_or(1.0, |o| o.work_ms * CPU_SHARE)
            };
            let peak = cpu_ms_per_s * (1.0 + settings.daily_amplitude) / 1_000.0;
            let replicas = f64::from(s.replicas.max(1));
            let capacity = (peak / settings.target_utilization).max(MIN_CORES_PER_POD * replicas);
            SvcState {
                capacity_cores: capacity,
                servers: (capacity / replicas).round().max(1.0),
                mean_cpu_ms,
                memory_bytes: s.memory_mib * 1_048_576.0,
                cpu_ms_tick: 0.0,
                rho: 0.0,
                backlog_ms: 0.0,
                cpu_ms_interval: 0.0,
                hog_interval: 0.0,
                leak_interval: 0.0,
                ticks_interval: 0,
                down_ticks_interval: 0,
                restarts: 0,
                was_down: false,
                had_leak: false,
                next_pod: 0,
            }
        })
        .collect()
}

impl Simulator {
    /// Time a request of `service` waits for the CPU, ms (random, with the mean of the
    /// queueing model at the current utilisation), and whether the service sheds it.
    pub(super) fn cpu_wait(&mut self, service: usize) -> (f64, bool) {
        let s = &self.svc[service];
        let hog = self.effects[service].hog;
        let rho = s.rho / (1.0 - hog);
        let c = s.servers;
        let capped = rho.min(0.99);
        let mean = if capped > 0.0 {
            s.mean_cpu_ms * capped.powf((2.0 * (c + 1.0)).sqrt() - 1.0) / (c * (1.0 - capped))
        } else {
            0.0
        };
        let backlog = s.backlog_ms;
        let wait = if mean > 0.0 {
            self.rng.exponential(mean)
        } else {
            0.0
        };
        (wait + backlog, backlog > SHED_MS)
    }

    /// Counts the CPU a request of `op` costs.
    pub(super) fn account(&mut self, op: OpRef, cpu_factor: f64) {
        let work = self.topology.op(op).work_ms;
        self.svc[op.service].cpu_ms_tick += work * CPU_SHARE * cpu_factor;
    }

    /// Picks the pod of `service` that serves the next request (round robin).
    pub(super) fn pick_pod(&mut self, service: usize) -> u32 {
        let replicas = self.topology.services[service].replicas.max(1);
        let s = &mut self.svc[service];
        let pod = s.next_pod % replicas;
        s.next_pod = s.next_pod.wrapping_add(1);
        pod
    }

    /// Updates utilisation, backlog and the metric accumulators at the end of a tick.
    pub(super) fn end_tick(&mut self, _tick_start: u64) {
        let tick_ms = TICK_NS as f64 / 1e6;
        for (s, e) in self.svc.iter_mut().zip(&self.effects) {
            let sample = s.cpu_ms_tick / (s.capacity_cores * tick_ms);
            s.rho = (1.0 - EWMA) * s.rho + EWMA * sample;
            let rho = s.rho / (1.0 - e.hog);
            s.backlog_ms = if rho > 1.0 {
                (s.backlog_ms + (rho - 1.0) * tick_ms).min(MAX_BACKLOG_MS)
            } else {
                (s.backlog_ms - (1.0 - rho) * tick_ms).max(0.0)
            };
            s.cpu_ms_interval += s.cpu_ms_tick;
            s.cpu_ms_tick = 0.0;
            s.hog_interval += e.hog;
            s.leak_interval += e.leak_bytes;
            s.ticks_interval += 1;
            if e.crashed {
                s.down_ticks_interval += 1;
                // The pods are gone: no queue survives.
                s.backlog_ms = 0.0;
                s.rho = 0.0;
            } else if s.was_down {
                s.restarts += 1;
            }
            let leaking = e.leak_bytes > 0.0;
            if s.had_leak && !leaking {
                // Killed for its memory and restarted.
                s.restarts += 1;
            }
            s.had_leak = leaking;
            s.was_down = e.crashed;
        }
    }

    /// Appends the CPU and memory samples of every pod at `at_ns`; returns the data points.
    pub(super) fn sample_metrics(&mut self, at_ns: u64, out: &mut super::Batch) -> u64 {
        let mut rng = Rng::derive(self.settings.seed ^ at_ns, STREAM_METRICS);
        let mut samples = Vec::new();
        for (i, (service, s)) in self.topology.services.iter().zip(&mut self.svc).enumerate() {
            let ticks = s.ticks_interval;
            let down = s.down_ticks_interval;
            let cpu_ms = s.cpu_ms_interval;
            let hog = s.hog_interval;
            let leak = s.leak_interval;
            s.cpu_ms_interval = 0.0;
            s.hog_interval = 0.0;
            s.leak_interval = 0.0;
            s.ticks_interval = 0;
            s.down_ticks_interval = 0;
            if !service.is_service() || ticks == 0 || down == ticks || self.effects[i].crashed {
                continue;
            }
            let n = f64::from(ticks);
            let app = cpu_ms / (n * 1_000.0 * s.capacity_cores);
            for pod in 0..service.replicas.max(1) {
                let cpu = (app + hog / n + IDLE_CPU + 0.005 * rng.normal()).clamp(0.0, 1.0);
                let memory =
                    s.memory_bytes * (1.0 + 0.25 * s.rho.min(1.0) + 0.01 * rng.normal()) + leak / n;
                samples.push(PodSample {
                    service: i,
                    pod,
                    cpu_utilization: (cpu * 1e4).round() / 1e4,
                    memory_bytes: memory.max(0.0).round() as i64,
                    restarts: i64::try_from(s.restarts).unwrap_or(i64::MAX),
                });
            }
        }
        let points = samples.len() as u64 * 3;
        otlp::metrics_requests(&self.pods, &samples, at_ns, &mut out.metrics);
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::builtin::{online_boutique, train_ticket};

    #[test]
    fn expected_traffic_follows_the_call_graph() {
        let t = online_boutique();
        let traffic = expected_traffic(&t, 19.0);
        let get = |n: &str| traffic[t.service_index(n).expect("service")];
        assert!((get("frontend") - 19.0).abs() < 1e-9);
        // Checkout: 1 of 19 requests; one email per order.
        assert!((get("checkoutservice") - 1.0).abs() < 1e-9);
        assert!((get("emailservice") - 1.0).abs() < 1e-9);
        // Recommendations: product pages, cart views and checkouts.
        assert!((get("recommendationservice") - 14.0).abs() < 1e-9);
        let tt = train_ticket();
        let traffic = expected_traffic(&tt, 10.0);
        assert!(traffic[tt.service_index("ts-seat-service").expect("seat")] > 10.0);
    }
}
