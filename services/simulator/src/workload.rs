//! User traffic: per entry point, a rate that follows a daily sinusoid, wanders slowly (AR(1)
//! noise on a log scale), and arrives as a Poisson process.

use std::f64::consts::TAU;

use crate::rng::Rng;
use crate::settings::SimulationSettings;
use crate::topology::Topology;

const DAY_NS: f64 = 86_400e9;
/// AR(1) coefficient per 1 s tick: a correlation time of about 10 s.
const NOISE_PHI: f64 = 0.9;

/// Traffic of the entry points.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Mean requests/s of each entry point.
    rates: Vec<f64>,
    amplitude: f64,
    peak_hour: f64,
    noise: f64,
    /// AR(1) state per entry point (unit variance).
    wander: Vec<f64>,
}

impl Workload {
    pub fn new(topology: &Topology, settings: &SimulationSettings) -> Self {
        let total: f64 = topology.entries.iter().map(|e| e.weight.max(0.0)).sum();
        let rates = topology
            .entries
            .iter()
            .map(|e| {
                if total > 0.0 {
                    settings.rate * e.weight.max(0.0) / total
                } else {
                    0.0
                }
            })
            .collect();
        Self {
            rates,
            amplitude: settings.daily_amplitude,
            peak_hour: settings.daily_peak_hour,
            noise: settings.noise,
            wander: vec![0.0; topology.entries.len()],
        }
    }

    /// The daily multiplier at unix time `t_ns`: `1 + a·cos(2π(h − peak)/24)`.
    pub fn daily(&self, t_ns: u64) -> f64 {
        let day_fraction = (t_ns as f64 % DAY_NS) / DAY_NS;
        let peak = self.peak_hour / 24.0;
        1.0 + self.amplitude * (TAU * (day_fraction - peak)).cos()
    }

    /// The arrivals of one tick, `(time, entry index)`, in time order.
    pub fn arrivals(&mut self, tick_start: u64, tick_ns: u64, rng: &mut Rng) -> Vec<(u64, usize)> {
        let daily = self.daily(tick_start + tick_ns / 2);
        let seconds = tick_ns as f64 / 1e9;
        let mut out = Vec::new();
        let innovation = (1.0 - NOISE_PHI * NOISE_PHI).sqrt();
        for (entry, rate) in self.rates.iter().enumerate() {
            let w = &mut self.wander[entry];
            *w = NOISE_PHI * *w + innovation * rng.normal();
            let noise = (self.noise * *w - self.noise * self.noise / 2.0).exp();
            let n = rng.poisson(rate * daily * noise * seconds);
            for _ in 0..n {
                out.push((tick_start + rng.below(tick_ns), entry));
            }
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::builtin::online_boutique;

    #[test]
    fn daily_cycle_peaks_at_the_peak_hour_and_rates_add_up() {
        let t = online_boutique();
        let settings = SimulationSettings {
            rate: 100.0,
            noise: 0.0,
            ..SimulationSettings::default()
        };
        let mut w = Workload::new(&t, &settings);
        let hour = 3_600_000_000_000u64;
        assert!((w.daily(14 * hour) - 1.5).abs() < 1e-9);
        assert!((w.daily(2 * hour) - 0.5).abs() < 1e-9);
        let mut rng = Rng::new(1);
        // 08:00 UTC: cos(-π/2) = 0, so the mean rate.
        let mut n = 0;
        for i in 0..100 {
            let a = w.arrivals(8 * hour + i * 1_000_000_000, 1_000_000_000, &mut rng);
            assert!(a.windows(2).all(|p| p[0] <= p[1]));
            n += a.len();
        }
        assert!((9_000..11_000).contains(&n), "{n}");
    }
}
