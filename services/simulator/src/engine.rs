//! The simulation core: a simulated clock advanced one tick (1 s) at a time. Each tick draws the
//! user requests of every entry point (daily cycle, noise, Poisson arrivals), simulates each
//! request as a trace (own work, calls, timeouts, retries, errors, faults), updates every
//! service's load (CPU utilisation, queueing), and hands out what has finished: spans that ended
//! (as an SDK exports them), metric samples, and the labels of faults that began.
//!
//! Pure: time is the simulated clock, randomness comes from the seed, nothing is read or written
//! outside the returned [`Batch`]. The same settings and start give the same batches.

mod load;
mod trace;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meshwatch_graph::labels::FaultLabel;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::error::SimError;
use crate::faults::{FaultType, Placed};
use crate::otlp::{self, Pods, SpanRec};
use crate::rng::Rng;
use crate::settings::SimulationSettings;
use crate::topology::Topology;
use crate::workload::Workload;

use self::load::SvcState;

/// Length of one step of the simulated clock.
pub const TICK_NS: u64 = 1_000_000_000;

/// Random streams (see [`Rng::derive`]).
const STREAM_TRAFFIC: u64 = 1;
const STREAM_FAULTS: u64 = 3;

/// What one step produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    /// Spans that ended, as OTLP trace requests.
    pub traces: Vec<ExportTraceServiceRequest>,
    /// CPU and memory samples.
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Labels of the faults that began.
    pub labels: Vec<FaultLabel>,
    /// Spans in `traces`.
    pub spans: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty() && self.metrics.is_empty() && self.labels.is_empty()
    }
}

/// Counters over the whole run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimStats {
    pub traces: u64,
    pub spans: u64,
    pub error_spans: u64,
    /// Traces cut at `max_spans_per_trace`.
    pub truncated_traces: u64,
    pub metric_points: u64,
}

/// Per-service effect of the active faults at the current time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Effects {
    /// Own processing time multiplier.
    latency: f64,
    /// CPU cost multiplier.
    cpu: f64,
    /// Added probability of failing a request.
    error: f64,
    /// Share of the CPU taken by a hog.
    hog: f64,
    crashed: bool,
    /// Extra memory, bytes.
    leak_bytes: f64,
}

impl Default for Effects {
    fn default() -> Self {
        Self {
            latency: 1.0,
            cpu: 1.0,
            error: 0.0,
            hog: 0.0,
            crashed: false,
            leak_bytes: 0.0,
        }
    }
}

/// The simulator.
#[derive(Debug)]
pub struct Simulator {
    topology: Arc<Topology>,
    settings: SimulationSettings,
    rng: Rng,
    fault_rng: Rng,
    workload: Workload,
    pods: Pods,
    /// Start of the next tick.
    now_ns: u64,
    start_ns: u64,
    end_ns: Option<u64>,
    svc: Vec<SvcState>,
    effects: Vec<Effects>,
    /// Active edge delays: (caller, callee, ns).
    edge_delays: Vec<(usize, usize, u64)>,
    faults: Vec<Placed>,
    /// Faults whose label has been handed out.
    labelled: usize,
    /// Random faults still to draw: next index and slot length.
    random_next: u32,
    random_slot: Option<Duration>,
    /// Expected requests/s per service at the mean rate (capacity sizing, fault targets).
    traffic: Vec<f64>,
    /// Spans waiting to be exported, by the tick they end in.
    pending: BTreeMap<u64, Vec<SpanRec>>,
    next_metrics_ns: u64,
    stats: SimStats,
}

impl Simulator {
    /// A simulator whose clock starts at `start_ms` (unix ms) and, when `run` is given, ends
    /// `run` later (faults are checked and their labels clipped against it).
    pub fn new(
        settings: &SimulationSettings,
        start_ms: i64,
        run: Option<Duration>,
    ) -> Result<Self, SimError> {
        let problems = settings.problems();
        if !problems.is_empty() {
            return Err(SimError::Settings(problems.join("; ")));
        }
        if start_ms <= 0 {
            return Err(SimError::Settings("start must be after 1970".to_owned()));
        }
        let topology = Arc::new(settings.topology.build(settings.seed)?);
        let start_ns = u64::try_from(start_ms).unwrap_or(0) * 1_000_000;
        let run_ms = run.map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX));
        let end_ms = run_ms.map(|r| start_ms.saturating_add(r));
        let traffic = load::expected_traffic(&topology, settings.rate);
        let svc = load::provision(&topology, settings);
        let mut faults = Vec::new();
        let mut problems = Vec::new();
        for spec in &settings.faults {
            match Placed::new(spec.clone(), &topology, start_ms, end_ms, settings.seed) {
                Ok(p) => faults.push(p),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            return Err(SimError::Fault(problems.join("; ")));
        }
        let random_slot = if settings.random_faults.enabled() {
            Some(settings.random_faults.slot(run).map_err(SimError::Fault)?)
        } else {
            None
        };
        let mut sim = Self {
            pods: Pods::new(&topology, settings.seed),
            workload: Workload::new(&topology, settings),
            rng: Rng::derive(settings.seed, STREAM_TRAFFIC),
            fault_rng: Rng::derive(settings.seed, STREAM_FAULTS),
            effects: vec![Effects::default(); topology.services.len()],
            svc,
            topology,
            settings: settings.clone(),
            now_ns: start_ns,
            start_ns,
            end_ns: end_ms.map(|e| u64::try_from(e).unwrap_or(0) * 1_000_000),
            edge_delays: Vec::new(),
            faults,
            labelled: 0,
            random_next: 0,
            random_slot,
            traffic,
            pending: BTreeMap::new(),
            next_metrics_ns: start_ns + duration_ns(settings.metrics_interval),
            stats: SimStats::default(),
        };
        // With a known end, draw every random fault now: their labels are known up front.
        if sim.end_ns.is_some() {
            sim.draw_random_faults(u64::MAX)?;
        }
        sim.sort_faults();
        Ok(sim)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The simulated clock: the start of the next tick, unix ns.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The end of the run, if it has one.
    pub fn end_ns(&self) -> Option<u64> {
        self.end_ns
    }

    pub fn is_finished(&self) -> bool {
        self.end_ns.is_some_and(|end| self.now_ns >= end)
    }

    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Labels of every fault placed so far (all of them, for a run with an end; a run without
    /// end forgets faults once they are over), by start.
    pub fn labels(&self) -> Vec<FaultLabel> {
        self.faults.iter().map(|f| f.label.clone()).collect()
    }

    /// Expected requests per second of each service at the mean rate.
    pub fn expected_traffic(&self) -> &[f64] {
        &self.traffic
    }

    /// Simulates one tick and appends what finished to `out`.
    pub fn step(&mut self, out: &mut Batch) -> Result<(), SimError> {
        let tick_start = self.now_ns;
        let tick_end = tick_start + TICK_NS;
        if self.end_ns.is_none() {
            self.draw_random_faults(tick_end)?;
        }
        while let Some(f) = self.faults.get(self.labelled) {
            if f.start_ns >= tick_end {
                break;
            }
            out.labels.push(f.label.clone());
            self.labelled += 1;
        }
        if self.end_ns.is_none() {
            // A run without end: forget faults that ended and were labelled.
            let before = self.faults.len();
            let labelled = self.labelled;
            let mut i = 0;
            self.faults.retain(|f| {
                i += 1;
                !(i <= labelled && f.end_ns <= tick_start)
            });
            self.labelled -= before - self.faults.len();
        }
        self.refresh_effects(tick_start);
        let arrivals = self.workload.arrivals(tick_start, TICK_NS, &mut self.rng);
        let mut boundary = self.next_boundary(tick_start);
        let topology = Arc::clone(&self.topology);
        for (t, entry) in arrivals {
            if t >= boundary {
                self.refresh_effects(t);
                boundary = self.next_boundary(t);
            }
            self.simulate_trace(&topology, entry, t);
        }
        self.end_tick(tick_start);
        if tick_end >= self.next_metrics_ns {
            let points = self.sample_metrics(self.next_metrics_ns, out);
            self.stats.metric_points += points;
            self.next_metrics_ns += duration_ns(self.settings.metrics_interval);
        }
        self.now_ns = tick_end;
        self.export_ended(tick_end, out);
        Ok(())
    }

    /// Ends the run: every span still waiting is exported (traces that began before the end
    /// and finish after it).
    pub fn finish(&mut self, out: &mut Batch) {
        self.export_ended(u64::MAX, out);
    }

    fn sort_faults(&mut self) {
        let labelled: Vec<Placed> = self.faults.drain(..self.labelled).collect();
        self.faults.sort_by(|a, b| {
            a.start_ns
                .cmp(&b.start_ns)
                .then(a.label.root_cause.cmp(&b.label.root_cause))
        });
        let mut all = labelled;
        all.append(&mut self.faults);
        self.faults = all;
    }

    /// Draws the random faults whose slot begins before `until_ns`.
    fn draw_random_faults(&mut self, until_ns: u64) -> Result<(), SimError> {
        let Some(slot) = self.random_slot else {
            return Ok(());
        };
        let plan = self.settings.random_faults.clone();
        let run = self
            .end_ns
            .map(|end| Duration::from_nanos(end.saturating_sub(self.start_ns)));
        let warmup = duration_ns(crate::faults::random::RandomFaults::warmup(run));
        let mut added = false;
        loop {
            let i = self.random_next;
            if plan.count > 0 && i >= plan.count {
                break;
            }
            let slot_start = self.start_ns + warmup + duration_ns(slot) * u64::from(i);
            if slot_start >= until_ns || self.end_ns.is_some_and(|e| slot_start >= e) {
                break;
            }
            self.random_next += 1;
            let Some(spec) = plan.draw(
                i,
                slot,
                run,
                &self.topology,
                &self.traffic,
                &mut self.fault_rng,
            ) else {
                continue;
            };
            let start_ms = i64::try_from(self.start_ns / 1_000_000).unwrap_or(0);
            let end_ms = self
                .end_ns
                .map(|e| i64::try_from(e / 1_000_000).unwrap_or(0));
            match Placed::new(spec, &self.topology, start_ms, end_ms, self.settings.seed) {
                Ok(p) => {
                    self.faults.push(p);
                    added = true;
                }
                // A fault that would start after the end of the run is not drawn.
                Err(_) if end_ms.is_some() => {}
                Err(e) => return Err(e),
            }
        }
        if added {
            self.sort_faults();
        }
        Ok(())
    }

    /// The next fault start or end after `t`.
    fn next_boundary(&self, t: u64) -> u64 {
        self.faults
            .iter()
            .flat_map(|f| [f.start_ns, f.end_ns])
            .filter(|&b| b > t)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Recomputes every service's fault effects at time `t`.
    fn refresh_effects(&mut self, t: u64) {
        self.effects.fill(Effects::default());
        self.edge_delays.clear();
        for f in &self.faults {
            if !f.active_at(t) {
                continue;
            }
            let e = &mut self.effects[f.service];
            match f.spec.fault_type {
                FaultType::Latency => e.latency *= f.spec.factor(),
                FaultType::NetworkDelay => {
                    if let Some(callee) = f.callee {
                        self.edge_delays
                            .push((f.service, callee, duration_ns(f.spec.delay())));
                    }
                }
                FaultType::ErrorBurst => e.error = (e.error + f.spec.rate()).min(1.0),
                FaultType::CpuContention => e.hog = (e.hog + f.spec.hog()).min(0.99),
                FaultType::Crash => e.crashed = true,
                FaultType::MemoryLeak => {
                    let p = f.progress(t);
                    let base = self.svc[f.service].memory_bytes;
                    e.leak_bytes += p * (f.spec.factor() - 1.0) * base;
                    let slow = ((p - 0.5) / 0.5).max(0.0);
                    e.latency *= 1.0 + 3.0 * slow * slow;
                    e.error = (e.error + 0.3 * ((p - 0.8) / 0.2).max(0.0)).min(1.0);
                }
                FaultType::Cascade => {
                    e.latency *= f.spec.factor();
                    e.cpu *= f.spec.factor();
                }
            }
        }
    }

    fn edge_delay(&self, caller: usize, callee: usize) -> u64 {
        self.edge_delays
            .iter()
            .filter(|(a, b, _)| *a == caller && *b == callee)
            .map(|(_, _, d)| *d)
            .sum()
    }

    fn push_span(&mut self, span: SpanRec) {
        self.stats.spans += 1;
        if span.error.is_some() {
            self.stats.error_spans += 1;
        }
        self.pending
            .entry(span.end_ns / TICK_NS)
            .or_default()
            .push(span);
    }

    /// Exports every span that ended before `until_ns`.
    fn export_ended(&mut self, until_ns: u64, out: &mut Batch) {
        let mut ended = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().saturating_add(1).saturating_mul(TICK_NS) > until_ns
                && until_ns != u64::MAX
            {
                break;
            }
            ended.append(&mut entry.remove());
        }
        if ended.is_empty() {
            return;
        }
        // As SDKs export them: in order of end time.
        ended.sort_by(|a, b| {
            a.end_ns
                .cmp(&b.end_ns)
                .then(a.start_ns.cmp(&b.start_ns))
                .then(a.span_id.cmp(&b.span_id))
        });
        out.spans += ended.len() as u64;
        otlp::trace_requests(
            &self.topology,
            &self.pods,
            &ended,
            self.settings.spans_per_request,
            &mut out.traces,
        );
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::random::RandomFaults;

    #[test]
    fn a_run_without_end_draws_random_faults_as_it_goes_and_forgets_old_ones() {
        let settings = SimulationSettings {
            topology: crate::topology::TopologyChoice::SockShop,
            rate: 5.0,
            random_faults: RandomFaults {
                every: Duration::from_secs(120),
                duration: Duration::from_secs(30),
                ..RandomFaults::default()
            },
            ..SimulationSettings::default()
        };
        let start_ms = 1_736_150_400_000;
        let mut sim = Simulator::new(&settings, start_ms, None).expect("valid");
        let mut labels = Vec::new();
        for _ in 0..(12 * 60) {
            let mut batch = Batch::default();
            sim.step(&mut batch).expect("step");
            labels.extend(batch.labels);
            assert!(sim.faults.len() <= 2, "old faults are forgotten");
        }
        // Warm-up 5 minutes, then one per 2 minutes: slots at 5, 7, 9 and 11 minutes.
        assert_eq!(labels.len(), 4, "{labels:?}");
        for (i, l) in labels.iter().enumerate() {
            let slot = start_ms + 300_000 + 120_000 * i as i64;
            assert!(l.start_ms >= slot && l.end_ms <= slot + 120_000, "{l:?}");
            assert_eq!(l.end_ms - l.start_ms, 30_000);
        }
    }
}
