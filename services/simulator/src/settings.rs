//! What a simulation simulates: topology, seed, traffic, resource sampling and faults. The CLI
//! (`meshwatch simulate`) fills it from flags, the service from its configuration
//! (`[simulation]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::faults::FaultSpec;
use crate::faults::random::RandomFaults;
use crate::topology::TopologyChoice;

/// Settings of the simulation core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationSettings {
    /// `onlineboutique`, `trainticket`, `sockshop`, `socialnetwork` or `generated:N`.
    pub topology: TopologyChoice,
    /// Seed of every random draw (traffic, latencies, ids, random faults, generated topology).
    pub seed: u64,
    /// Mean user requests per second over a day, all entry points together.
    pub rate: f64,
    /// Relative amplitude of the daily cycle: the rate swings between `rate × (1 − a)` and
    /// `rate × (1 + a)` as a sinusoid over 24 h.
    pub daily_amplitude: f64,
    /// Hour of the day (UTC, 0–24) at which the rate peaks.
    pub daily_peak_hour: f64,
    /// Size of the slow random wander of each entry point's rate (log scale, AR(1) with a
    /// correlation of about 10 s).
    pub noise: f64,
    /// Interval of the CPU and memory samples.
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
    /// Most spans per OTLP trace request.
    pub spans_per_request: usize,
    /// Most spans per trace; calls beyond are not made.
    pub max_spans_per_trace: usize,
    /// CPU utilisation each service is provisioned for at the daily peak (capacity sizing).
    pub target_utilization: f64,
    /// Faults at fixed times.
    pub faults: Vec<FaultSpec>,
    /// Random faults.
    pub random_faults: RandomFaults,
}

impl Default for SimulationSettings {
    fn default() -> Self {
        Self {
            topology: TopologyChoice::OnlineBoutique,
            seed: 1,
            rate: 20.0,
            daily_amplitude: 0.5,
            daily_peak_hour: 14.0,
            noise: 0.1,
            metrics_interval: Duration::from_secs(15),
            spans_per_request: 1_000,
            max_spans_per_trace: 2_000,
            target_utilization: 0.4,
            faults: Vec::new(),
            random_faults: RandomFaults::default(),
        }
    }
}

impl SimulationSettings {
    /// Every problem with the settings (keys relative to this block), empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.rate > 0.0 && self.rate <= 1_000_000.0) {
            p.push("rate: must be in (0, 1000000] requests/s".to_owned());
        }
        if !(0.0..1.0).contains(&self.daily_amplitude) {
            p.push("daily_amplitude: must be in [0, 1)".to_owned());
        }
        if !(0.0..24.0).contains(&self.daily_peak_hour) {
            p.push("daily_peak_hour: must be in [0, 24)".to_owned());
        }
        if !(0.0..=2.0).contains(&self.noise) {
            p.push("noise: must be in [0, 2]".to_owned());
        }
        if self.metrics_interval < Duration::from_secs(1)
            || self.metrics_interval > Duration::from_secs(600)
        {
            p.push("metrics_interval: must be between 1s and 10m".to_owned());
        }
        if !(1..=100_000).contains(&self.spans_per_request) {
            p.push("spans_per_request: must be between 1 and 100000".to_owned());
        }
        if !(1..=100_000).contains(&self.max_spans_per_trace) {
            p.push("max_spans_per_trace: must be between 1 and 100000".to_owned());
        }
        if !(self.target_utilization > 0.0 && self.target_utilization < 1.0) {
            p.push("target_utilization: must be in (0, 1)".to_owned());
        }
        if self.random_faults.duration.is_zero() {
            p.push("random_faults.duration: must be positive".to_owned());
        }
        p
    }
}
