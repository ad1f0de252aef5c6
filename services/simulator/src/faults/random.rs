//! Random faults (`--random-faults N`, or one every `every` in the service): drawn from the
//! seed's own stream, one per slot of time so that they never overlap, each followed by a quiet
//! stretch, on services that carry traffic.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultSpec, FaultType};
use crate::rng::Rng;
use crate::topology::Topology;

/// Settings of random faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomFaults {
    /// How many (0: none). With a run of unknown length (the service without a duration) and
    /// `every` set, 0 means without end.
    pub count: u32,
    /// Length of each fault's slot; `0s` spreads `count` faults over the run after a warm-up.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// How long each fault lasts (Nezha's faults last 3 minutes).
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Which types to draw from (empty: all).
    pub types: Vec<FaultType>,
}

impl Default for RandomFaults {
    fn default() -> Self {
        Self {
            count: 0,
            every: Duration::ZERO,
            duration: Duration::from_secs(180),
            types: Vec::new(),
        }
    }
}

impl RandomFaults {
    /// Whether any random fault is to be drawn.
    pub fn enabled(&self) -> bool {
        self.count > 0 || !self.every.is_zero()
    }

    /// Warm-up before the first slot: a tenth of the run, at most 5 minutes.
    pub fn warmup(run: Option<Duration>) -> Duration {
        run.map_or(Duration::from_secs(300), |r| {
            (r / 10).min(Duration::from_secs(300))
        })
    }

    /// The slot length for a run of length `run` (None: unknown), or why there is none.
    pub fn slot(&self, run: Option<Duration>) -> Result<Duration, String> {
        let slot = if !self.every.is_zero() {
            self.every
        } else {
            match (run, self.count) {
                (Some(run), n) if n > 0 => (run.saturating_sub(Self::warmup(Some(run)))) / n,
                _ => return Err("random faults need a run duration or `every`".to_owned()),
            }
        };
        let needed = self.duration + self.duration / 2;
        if slot < needed {
            return Err(format!(
                "{} random faults of {} do not fit: each needs a slot of at least {} (the run \
                 after its warm-up, divided by the count)",
                self.count,
                humantime::format_duration(self.duration),
                humantime::format_duration(needed)
            ));
        }
        Ok(slot)
    }

    /// Draws fault number `i` (0-based) of the plan. `traffic` is the expected request rate of
    /// each service; targets are drawn among the services that carry traffic.
    pub fn draw(
        &self,
        i: u32,
        slot: Duration,
        run: Option<Duration>,
        topology: &Topology,
        traffic: &[f64],
        rng: &mut Rng,
    ) -> Option<FaultSpec> {
        let types: &[FaultType] = if self.types.is_empty() {
            &FaultType::ALL
        } else {
            &self.types
        };
        let busy = busy_services(topology, traffic);
        if busy.is_empty() {
            return None;
        }
        let edges: Vec<(usize, usize)> = topology
            .service_edges()
            .into_iter()
            .filter(|(a, b)| busy.contains(a) && busy.contains(b))
            .collect();
        let called: Vec<usize> = busy
            .iter()
            .copied()
            .filter(|s| edges.iter().any(|(_, b)| b == s))
            .collect();
        let fault_type = types[rng.index(types.len())];
        let (service, callee) = match fault_type {
            FaultType::NetworkDelay if !edges.is_empty() => {
                let (a, b) = edges[rng.index(edges.len())];
                (a, Some(b))
            }
            FaultType::NetworkDelay => return None,
            FaultType::Cascade if !called.is_empty() => (called[rng.index(called.len())], None),
            _ => (busy[rng.index(busy.len())], None),
        };
        let warmup = Self::warmup(run);
        let room = slot.saturating_sub(self.duration).as_secs() / 2;
        let offset = Duration::from_secs(rng.below(room + 1));
        Some(FaultSpec {
            fault_type,
            service: topology.services[service].name.clone(),
            callee: callee.map(|c| topology.services[c].name.clone()),
            start: warmup + slot * i + offset,
            duration: self.duration,
            factor: None,
            delay: None,
            rate: None,
            hog: None,
        })
    }
}

/// Services with at least 1 request/s expected, or the 20 busiest when none has that much.
fn busy_services(topology: &Topology, traffic: &[f64]) -> Vec<usize> {
    let mut services: Vec<usize> = (0..topology.services.len())
        .filter(|&i| topology.services[i].is_service() && traffic.get(i).is_some_and(|&t| t > 0.0))
        .collect();
    let busy: Vec<usize> = services
        .iter()
        .copied()
        .filter(|&i| traffic[i] >= 1.0)
        .collect();
    if !busy.is_empty() {
        return busy;
    }
    services.sort_by(|&a, &b| traffic[b].total_cmp(&traffic[a]).then(a.cmp(&b)));
    services.truncate(20);
    services.sort_unstable();
    services
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::builtin::online_boutique;

    #[test]
    fn random_faults_fit_their_slots_and_are_valid() {
        let t = online_boutique();
        let traffic = vec![5.0; t.services.len()];
        let plan = RandomFaults {
            count: 4,
            ..RandomFaults::default()
        };
        let run = Some(Duration::from_secs(3600));
        let slot = plan.slot(run).expect("fits");
        let mut rng = Rng::new(1);
        let mut last_end = Duration::ZERO;
        for i in 0..4 {
            let f = plan
                .draw(i, slot, run, &t, &traffic, &mut rng)
                .expect("drawn");
            assert!(f.check(&t).is_empty(), "{:?}", f.check(&t));
            assert!(f.start >= last_end, "no overlap");
            last_end = f.start + f.duration;
        }
        assert!(last_end <= Duration::from_secs(3600));
        let crowded = RandomFaults {
            count: 30,
            ..RandomFaults::default()
        };
        assert!(crowded.slot(run).is_err());
    }
}
