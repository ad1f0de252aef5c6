//! Configuration blocks that every service embeds: admin endpoint, logging and shutdown.
//!
//! A service's config type holds them as fields named `admin`, `log` and `shutdown`, so the keys
//! (`admin.listen`, `log.format`, `shutdown.grace`, ...) are the same in every binary.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Validate;

/// Default port of the admin endpoint (`/metrics`, `/healthz`, `/readyz`).
pub const DEFAULT_ADMIN_PORT: u16 = 9464;

/// The admin HTTP endpoint: Prometheus metrics and Kubernetes probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address the admin server listens on. Port 0 picks a free port (tests); the bound address
    /// is logged.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_ADMIN_PORT)),
        }
    }
}

impl Validate for AdminConfig {
    /// Every socket address is usable here; the bind itself reports a busy or foreign address.
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per event (Kubernetes, log shippers).
    Json,
    /// Human-readable text, one line per event, coloured on a terminal.
    #[default]
    Pretty,
}

/// Logging: format and default filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// Filter directives in `tracing_subscriber::EnvFilter` syntax (`info`,
    /// `info,meshwatch_ingest=debug`). `RUST_LOG`, when set, wins over this value.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: "info".to_owned(),
        }
    }
}

impl Validate for LogConfig {
    fn validate(&self) -> Vec<String> {
        match tracing_subscriber::EnvFilter::try_new(&self.level) {
            Ok(_) => Vec::new(),
            Err(error) => vec![format!("level: invalid filter `{}`: {error}", self.level)],
        }
    }
}

/// Upper bound for [`ShutdownConfig::grace`]; a longer drain is almost certainly a typo.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(3600);

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long tasks may take to drain after the first SIGTERM/SIGINT (humantime: `25s`,
    /// `1m 30s`). Keep it below the pod's `terminationGracePeriodSeconds` minus the `preStop`
    /// delay, so the process exits on its own before the kubelet kills it.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(25),
        }
    }
}

impl Validate for ShutdownConfig {
    fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.grace.is_zero() {
            problems.push("grace: must be greater than 0".to_owned());
        }
        if self.grace > MAX_SHUTDOWN_GRACE {
            problems.push(format!(
                "grace: must be at most {}",
                humantime::format_duration(MAX_SHUTDOWN_GRACE)
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(AdminConfig::default().validate().is_empty());
        assert!(LogConfig::default().validate().is_empty());
        assert!(ShutdownConfig::default().validate().is_empty());
        assert_eq!(AdminConfig::default().listen.port(), DEFAULT_ADMIN_PORT);
        assert_eq!(ShutdownConfig::default().grace, Duration::from_secs(25));
    }

    #[test]
    fn bad_values_are_reported() {
        let log = LogConfig {
            level: "info,meshwatch=loud".to_owned(),
            ..LogConfig::default()
        };
        let problems = log.validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("level: "), "{problems:?}");

        let zero = ShutdownConfig {
            grace: Duration::ZERO,
        };
        assert_eq!(zero.validate(), vec!["grace: must be greater than 0"]);
        let long = ShutdownConfig {
            grace: Duration::from_secs(7200),
        };
        assert_eq!(long.validate(), vec!["grace: must be at most 1h"]);
    }
}
