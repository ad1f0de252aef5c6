//! Faults: what can be injected, how a fault is written (a one-line spec or a TOML scenario),
//! and the label each injected fault leaves (`meshwatch_graph::labels::FaultLabel`).
//!
//! Spec: `TYPE:key=value,key=value,...`, e.g.
//! `latency:service=cartservice,factor=5,start=10m,duration=3m` or
//! `network_delay:service=frontend,callee=cartservice,delay=100ms,start=5m,end=8m`.
//! Scenario file (TOML): one `[[fault]]` table per fault with the same keys.

pub mod random;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use meshwatch_graph::labels::FaultLabel;
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::topology::Topology;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultType {
    /// The service's own processing time × `factor` (default 5).
    Latency,
    /// Requests from `service` to `callee` delayed by `delay` (default 100 ms) on the way: seen
    /// in the caller's client spans and the gap, not in the callee's server spans.
    #[serde(alias = "delay", alias = "edge_latency")]
    NetworkDelay,
    /// The service fails a share `rate` (default 0.3) of its requests.
    #[serde(alias = "errors")]
    ErrorBurst,
    /// A CPU hog takes a share `hog` (default 0.6) of the service's CPU: queueing grows as the
    /// utilisation left to the service approaches 1, and saturates above.
    #[serde(alias = "cpu_saturation", alias = "cpu")]
    CpuContention,
    /// Every pod is down: callers get connection errors, the service emits no spans or metrics.
    Crash,
    /// Memory grows linearly to `factor` (default 4) × its normal size; from half-way latency
    /// rises (up to 4×), in the last fifth requests fail (up to 30 %); the pod restarts at the end.
    #[serde(alias = "memleak")]
    MemoryLeak,
    /// A slow, CPU-hungry code path in the service (own work and CPU × `factor`, default 10):
    /// it saturates, its callers time out and retry (more load), failures propagate upwards.
    Cascade,
}

impl FaultType {
    pub const ALL: [FaultType; 7] = [
        FaultType::Latency,
        FaultType::NetworkDelay,
        FaultType::ErrorBurst,
        FaultType::CpuContention,
        FaultType::Crash,
        FaultType::MemoryLeak,
        FaultType::Cascade,
    ];

    /// The label's `fault_type` (and the spec's type name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::NetworkDelay => "network_delay",
            Self::ErrorBurst => "error_burst",
            Self::CpuContention => "cpu_contention",
            Self::Crash => "crash",
            Self::MemoryLeak => "memory_leak",
            Self::Cascade => "cascade",
        }
    }

    fn parse(s: &str) -> Result<Self, SimError> {
        let value = serde_json::Value::String(s.trim().to_ascii_lowercase());
        Self::deserialize(value).map_err(|_| {
            SimError::Fault(format!(
                "unknown fault type {s:?} (latency, network_delay, error_burst, cpu_contention, \
                 crash, memory_leak, cascade)"
            ))
        })
    }
}

/// One fault to inject, relative to the start of the simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(rename = "type")]
    pub fault_type: FaultType,
    /// The root-cause service (for `network_delay`: the caller).
    pub service: String,
    /// `network_delay` only: the called service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee: Option<String>,
    /// Offset from the start of the simulation.
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// `latency`, `memory_leak`, `cascade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// `network_delay`.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// `error_burst`: probability that a request fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `cpu_contention`: share of the CPU taken by the hog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hog: Option<f64>,
}

/// A TOML scenario: `[[fault]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub fault: Vec<FaultSpec>,
}

impl FaultSpec {
    pub fn factor(&self) -> f64 {
        self.factor.unwrap_or(match self.fault_type {
            FaultType::MemoryLeak => 4.0,
            FaultType::Cascade => 10.0,
            _ => 5.0,
        })
    }

    pub fn delay(&self) -> Duration {
        self.delay.unwrap_or(Duration::from_millis(100))
    }

    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(0.3)
    }

    pub fn hog(&self) -> f64 {
        self.hog.unwrap_or(0.6)
    }

    /// Parses one spec: `TYPE:key=value,...` (keys: service, caller (= service), callee, start,
    /// duration, end, factor, delay, rate, hog).
    pub fn parse(spec: &str) -> Result<Self, SimError> {
        let bad = |msg: String| SimError::Fault(format!("{spec:?}: {msg}"));
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected TYPE:key=value,...".to_owned()))?;
        let fault_type = FaultType::parse(kind)?;
        let mut service = None;
        let mut callee = None;
        let mut start = None;
        let mut duration = None;
        let mut end = None;
        let mut out = Self {
            fault_type,
            service: String::new(),
            callee: None,
            start: Duration::ZERO,
            duration: Duration::ZERO,
            factor: None,
            delay: None,
            rate: None,
            hog: None,
        };
        let time = |v: &str| {
            humantime::parse_duration(v).map_err(|e| bad(format!("invalid duration {v:?}: {e}")))
        };
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(format!("invalid number {v:?}")))
        };
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value, got {part:?}")))?;
            let value = value.trim();
            match key.trim() {
                "service" | "caller" => service = Some(value.to_owned()),
                "callee" => callee = Some(value.to_owned()),
                "start" => start = Some(time(value)?),
                "duration" => duration = Some(time(value)?),
                "end" => end = Some(time(value)?),
                "factor" => out.factor = Some(number(value)?),
                "delay" => out.delay = Some(time(value)?),
                "rate" => out.rate = Some(number(value)?),
                "hog" => out.hog = Some(number(value)?),
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        out.service = service.ok_or_else(|| bad("service=NAME is required".to_owned()))?;
        out.callee = callee;
        out.start = start.ok_or_else(|| bad("start=OFFSET is required".to_owned()))?;
        out.duration = match (duration, end) {
            (Some(d), None) => d,
            (None, Some(e)) if e > out.start => e - out.start,
            (None, Some(_)) => return Err(bad("end must be after start".to_owned())),
            (Some(_), Some(_)) => return Err(bad("give duration or end, not both".to_owned())),
            (None, None) => return Err(bad("duration=D (or end=OFFSET) is required".to_owned())),
        };
        Ok(out)
    }

    /// The spec as one line, as [`parse`](Self::parse) reads it (the labels' `detail`).
    pub fn to_spec(&self) -> String {
        let mut s = format!("{}:service={}", self.fault_type.as_str(), self.service);
        if let Some(c) = &self.callee {
            let _ = write!(s, ",callee={c}");
        }
        match self.fault_type {
            FaultType::Latency | FaultType::MemoryLeak | FaultType::Cascade => {
                let _ = write!(s, ",factor={}", self.factor());
            }
            FaultType::NetworkDelay => {
                let _ = write!(s, ",delay={}", humantime::format_duration(self.delay()));
            }
            FaultType::ErrorBurst => {
                let _ = write!(s, ",rate={}", self.rate());
            }
            FaultType::CpuContention => {
                let _ = write!(s, ",hog={}", self.hog());
            }
            FaultType::Crash => {}
        }
        let _ = write!(
            s,
            ",start={},duration={}",
            humantime::format_duration(self.start),
            humantime::format_duration(self.duration)
        );
        s
    }

    /// Checks the spec against a topology; every problem at once.
    pub fn check(&self, topology: &Topology) -> Vec<String> {
        let mut problems = Vec::new();
        let name = self.to_spec();
        let service = topology.service_index(&self.service);
        match service {
            None => problems.push(format!(
                "{name}: no service {:?} in {}",
                self.service, topology.name
            )),
            Some(i) if !topology.services[i].is_service() => problems.push(format!(
                "{name}: {} is a database or queue; faults target services",
                self.service
            )),
            Some(_) => {}
        }
        if self.duration.is_zero() {
            problems.push(format!("{name}: duration must be positive"));
        }
        match (self.fault_type, &self.callee) {
            (FaultType::NetworkDelay, None) => {
                problems.push(format!("{name}: network_delay needs callee=NAME"));
            }
            (FaultType::NetworkDelay, Some(callee)) => {
                match (service, topology.service_index(callee)) {
                    (Some(a), Some(b)) if topology.has_edge(a, b) => {}
                    (Some(_), Some(_)) => {
                        problems.push(format!("{name}: {} does not call {callee}", self.service))
                    }
                    (_, None) => problems.push(format!("{name}: no service {callee:?}")),
                    _ => {}
                }
            }
            (_, Some(_)) => problems.push(format!("{name}: only network_delay takes a callee")),
            (_, None) => {}
        }
        let factor = self.factor();
        if !(1.0..=1000.0).contains(&factor) {
            problems.push(format!("{name}: factor must be between 1 and 1000"));
        }
        let delay = self.delay();
        if delay.is_zero() || delay > Duration::from_secs(60) {
            problems.push(format!("{name}: delay must be between 1ms and 60s"));
        }
        if !(self.rate() > 0.0 && self.rate() <= 1.0) {
            problems.push(format!("{name}: rate must be in (0, 1]"));
        }
        if !(self.hog() > 0.0 && self.hog() < 1.0) {
            problems.push(format!("{name}: hog must be in (0, 1)"));
        }
        problems
    }
}

/// Parses a `--faults` value: a TOML scenario file (`*.toml`, or an existing file), or one or
/// more specs separated by `;`.
pub fn parse_faults(value: &str) -> Result<Vec<FaultSpec>, SimError> {
    let path = Path::new(value);
    if value.ends_with(".toml") || (path.is_file() && !value.contains(':')) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Fault(format!("cannot read scenario {value}: {e}")))?;
        return parse_scenario(&text)
            .map_err(|e| SimError::Fault(format!("scenario {value}: {e}")));
    }
    value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(FaultSpec::parse)
        .collect()
}

/// Parses a TOML scenario's text.
pub fn parse_scenario(text: &str) -> Result<Vec<FaultSpec>, SimError> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| SimError::Fault(e.to_string()))?;
    Ok(scenario.fault)
}

/// A fault placed in simulated time, with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub spec: FaultSpec,
    pub service: usize,
    pub callee: Option<usize>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub label: FaultLabel,
}

impl Placed {
    /// Places `spec` in a run that starts at `run_start_ms` and ends at `run_end_ms` (the
    /// label's end is clipped to it).
    pub fn new(
        spec: FaultSpec,
        topology: &Topology,
        run_start_ms: i64,
        run_end_ms: Option<i64>,
        seed: u64,
    ) -> Result<Self, SimError> {
        let problems = spec.check(topology);
        if !problems.is_empty() {
            return Err(SimError::Fault(problems.join("; ")));
        }
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let start_ms = run_start_ms.saturating_add(ms(spec.start));
        let mut end_ms = start_ms.saturating_add(ms(spec.duration));
        if let Some(run_end) = run_end_ms {
            if start_ms >= run_end {
                return Err(SimError::Fault(format!(
                    "{}: starts after the end of the run",
                    spec.to_spec()
                )));
            }
            end_ms = end_ms.min(run_end);
        }
        let service = topology.service_index(&spec.service).unwrap_or(0);
        let callee = spec
            .callee
            .as_deref()
            .and_then(|c| topology.service_index(c));
        let label = FaultLabel {
            graph: topology.name.clone(),
            start_ms,
            end_ms,
            root_cause: spec.service.clone(),
            callee: spec.callee.clone(),
            fault_type: spec.fault_type.as_str().to_owned(),
            source: format!("simulator:seed={seed}"),
            detail: Some(spec.to_spec()),
        };
        let ns = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
        Ok(Self {
            service,
            callee,
            start_ns: ns(start_ms),
            end_ns: ns(end_ms),
            label,
            spec,
        })
    }

    pub fn active_at(&self, t_ns: u64) -> bool {
        self.start_ns <= t_ns && t_ns < self.end_ns
    }

    /// Progress through the fault at `t_ns`, 0 at its start to 1 at its end.
    pub fn progress(&self, t_ns: u64) -> f64 {
        let span = self.end_ns.saturating_sub(self.start_ns).max(1) as f64;
        (t_ns.saturating_sub(self.start_ns) as f64 / span).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::builtin::online_boutique;

    #[test]
    fn specs_parse_round_trip_and_check() {
        let s = FaultSpec::parse("latency:service=cartservice,factor=5,start=10m,duration=3m")
            .expect("valid");
        assert_eq!(s.fault_type, FaultType::Latency);
        assert_eq!(s.start, Duration::from_secs(600));
        assert_eq!(s.duration, Duration::from_secs(180));
        assert_eq!(FaultSpec::parse(&s.to_spec()).expect("round trip"), s);
        let t = online_boutique();
        assert!(s.check(&t).is_empty());

        let d = FaultSpec::parse(
            "network_delay:caller=frontend,callee=cartservice,delay=150ms,start=1m,end=4m",
        )
        .expect("valid");
        assert_eq!(d.duration, Duration::from_secs(180));
        assert!(d.check(&t).is_empty(), "{:?}", d.check(&t));
        let mut no_edge = d.clone();
        no_edge.callee = Some("emailservice".into());
        assert_eq!(no_edge.check(&t).len(), 1);

        let cpu = FaultSpec::parse("cpu_saturation:service=frontend,start=0s,duration=1m")
            .expect("alias");
        assert_eq!(cpu.fault_type, FaultType::CpuContention);
        for bad in [
            "latency:service=x,start=1m,duration=1m",
            "latency:service=frontend,start=1m",
            "nope:service=frontend,start=1m,duration=1m",
            "latency:service=frontend,start=1m,duration=1m,color=red",
            "latency:service=frontend,factor=abc,start=1m,duration=1m",
            "latency",
        ] {
            let parsed = FaultSpec::parse(bad);
            assert!(
                parsed.is_err()
                    || !parsed
                        .as_ref()
                        .map(|p| p.check(&t))
                        .unwrap_or_default()
                        .is_empty(),
                "{bad}"
            );
        }
    }

    #[test]
    fn scenarios_parse_and_place() {
        let text = r#"
            [[fault]]
            type = "error_burst"
            service = "paymentservice"
            rate = 0.5
            start = "2m"
            duration = "3m"

            [[fault]]
            type = "crash"
            service = "adservice"
            start = "8m"
            duration = "2m"
        "#;
        let faults = parse_scenario(text).expect("valid");
        assert_eq!(faults.len(), 2);
        let t = online_boutique();
        let p = Placed::new(
            faults[0].clone(),
            &t,
            1_000_000,
            Some(1_000_000 + 240_000),
            9,
        )
        .expect("placed");
        assert_eq!(p.label.start_ms, 1_120_000);
        assert_eq!(p.label.end_ms, 1_240_000, "clipped to the run");
        assert_eq!(p.label.fault_type, "error_burst");
        assert_eq!(p.label.source, "simulator:seed=9");
        assert!(parse_scenario("[[fault]]\ntype = \"crash\"\nservice = \"a\"\nbogus = 1").is_err());
        assert!(
            Placed::new(faults[1].clone(), &t, 0, Some(60_000), 1).is_err(),
            "starts after the end"
        );
    }
}
