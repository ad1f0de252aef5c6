//! Configuration of the simulator service (`meshwatch-simulator --check-config` prints the
//! effective one). Layers as in every service: defaults < `--config FILE` <
//! `MESHWATCH_<SECTION>__<KEY>` < `--set key=value`.

use std::path::PathBuf;
use std::time::Duration;

use meshwatch_runtime::service::ServiceConfig;
use meshwatch_runtime::{AdminConfig, LogConfig, ShutdownConfig, Validate, nested};
use serde::{Deserialize, Serialize};

use crate::export::Protocol;
use crate::settings::SimulationSettings;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    /// What to simulate (topology, seed, rate, daily cycle, faults).
    pub simulation: SimulationSettings,
    pub run: RunConfig,
    pub export: ExportConfig,
}

/// How long and how fast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Simulated time to run; absent: until stopped (then the service exits when it ends).
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Simulated seconds per wall-clock second: 1 is real time; more compresses time (only with
    /// a duration, so that no span ends in the future); 0 runs unpaced.
    pub speed: f64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            duration: None,
            speed: 1.0,
        }
    }
}

/// Where the OTLP goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// `http://host:port` of an OTLP receiver (the Meshwatch ingest: 4317 gRPC, 4318 HTTP).
    pub endpoint: String,
    pub protocol: Protocol,
    /// Per export request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Export requests in flight at once.
    pub max_in_flight: usize,
    /// Encoded requests waiting for a sender; when full, generation waits.
    pub queue_requests: usize,
    /// Further attempts of a refused or failed request before it is dropped (and counted).
    pub retries: u32,
    /// A file to append the fault labels to as faults begin (JSON lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_path: Option<PathBuf>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://localhost:4317".to_owned(),
            protocol: Protocol::Grpc,
            timeout: Duration::from_secs(10),
            max_in_flight: 4,
            queue_requests: 64,
            retries: 5,
            labels_path: None,
        }
    }
}

impl Validate for RunConfig {
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(0.0..=10_000.0).contains(&self.speed) {
            p.push("speed: must be between 0 and 10000".to_owned());
        }
        if self.duration.is_none() && self.speed != 1.0 {
            p.push("speed: without a duration the simulator runs in real time (1)".to_owned());
        }
        if self.duration.is_some_and(|d| d < Duration::from_secs(1)) {
            p.push("duration: must be at least 1s".to_owned());
        }
        p
    }
}

impl Validate for ExportConfig {
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.endpoint.starts_with("http://") && !self.endpoint.starts_with("https://") {
            p.push("endpoint: must be http://host:port".to_owned());
        }
        if self.timeout < Duration::from_millis(100) || self.timeout > Duration::from_secs(300) {
            p.push("timeout: must be between 100ms and 5m".to_owned());
        }
        if !(1..=256).contains(&self.max_in_flight) {
            p.push("max_in_flight: must be between 1 and 256".to_owned());
        }
        if !(1..=100_000).contains(&self.queue_requests) {
            p.push("queue_requests: must be between 1 and 100000".to_owned());
        }
        if self.retries > 100 {
            p.push("retries: must be at most 100".to_owned());
        }
        p
    }
}

impl Validate for SimulationSettings {
    fn validate(&self) -> Vec<String> {
        let mut p = self.problems();
        match self.topology.build(self.seed) {
            Ok(topology) => {
                for (i, fault) in self.faults.iter().enumerate() {
                    p.extend(
                        fault
                            .check(&topology)
                            .into_iter()
                            .map(|problem| format!("faults[{i}]: {problem}")),
                    );
                }
            }
            Err(e) => p.push(format!("topology: {e}")),
        }
        p
    }
}

impl ServiceConfig for SimulatorConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn grace(&self) -> Duration {
        self.shutdown.grace
    }
}

impl Validate for SimulatorConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = nested("admin", &self.admin);
        problems.extend(nested("log", &self.log));
        problems.extend(nested("shutdown", &self.shutdown));
        problems.extend(nested("simulation", &self.simulation));
        problems.extend(nested("run", &self.run));
        problems.extend(nested("export", &self.export));
        if self.simulation.random_faults.enabled()
            && let Err(e) = self.simulation.random_faults.slot(self.run.duration)
        {
            problems.push(format!("simulation.random_faults: {e}"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultSpec;

    #[test]
    fn defaults_are_valid_and_problems_are_all_reported() {
        let c = SimulatorConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let mut bad = SimulatorConfig::default();
        bad.run.speed = 60.0;
        bad.export.endpoint = "localhost:4317".into();
        bad.simulation.rate = 0.0;
        bad.simulation
            .faults
            .push(FaultSpec::parse("crash:service=nosuch,start=1m,duration=1m").expect("parses"));
        let problems = bad.validate();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("simulation.faults[0]: "))
        );
    }

    #[test]
    fn loads_from_toml_with_faults() {
        let text = r#"
            [simulation]
            topology = "sockshop"
            seed = 4
            [[simulation.faults]]
            type = "latency"
            service = "carts"
            factor = 3.0
            start = "5m"
            duration = "3m"
            [run]
            duration = "1h"
            speed = 10.0
            [export]
            endpoint = "http://ingest:4318"
            protocol = "http"
        "#;
        let c: SimulatorConfig = toml::from_str(text).expect("parses");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.simulation.faults.len(), 1);
        assert_eq!(c.export.protocol, Protocol::Http);
    }
}
