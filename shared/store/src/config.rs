//! Configuration of the store: where ClickHouse is, how long data lives, how rows are batched.
//!
//! Every struct deserialises strictly (unknown keys are errors) with defaults for every field,
//! so a service embeds them in its own configuration (e.g. `[clickhouse]`, `[batch]`) and
//! calls [`ClickHouseConfig::validate`] / [`BatchConfig::validate`] before connecting.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Where ClickHouse is and what the store keeps there.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123` (no TLS in this build).
    pub url: String,
    /// The database, created when missing (default `meshwatch`).
    pub database: String,
    /// The user (default: the server's `default` user).
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// Limit of one request (an insert of one table's batch, a query), including connecting.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long rows are kept.
    pub ttl: TtlConfig,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "meshwatch".to_owned(),
            user: None,
            password: None,
            request_timeout: Duration::from_secs(30),
            ttl: TtlConfig::default(),
        }
    }
}

impl fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl ClickHouseConfig {
    /// Checks the configuration; every problem is reported at once.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut problems = Vec::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            problems.push(format!(
                "clickhouse.url must be an http:// URL of ClickHouse's HTTP interface, got {:?}",
                self.url
            ));
        } else if self.url.starts_with("https://") {
            problems.push(
                "clickhouse.url: https is not supported by this build (no TLS); use http:// \
                 on a trusted network"
                    .to_owned(),
            );
        }
        if !is_identifier(&self.database) {
            problems.push(format!(
                "clickhouse.database must match [A-Za-z_][A-Za-z0-9_]* (at most 64 bytes), got {:?}",
                self.database
            ));
        }
        if self.password.is_some() && self.user.is_none() {
            problems.push("clickhouse.password is set but clickhouse.user is not".to_owned());
        }
        if self.request_timeout < Duration::from_millis(100) {
            problems.push(format!(
                "clickhouse.request_timeout must be at least 100ms, got {:?}",
                self.request_timeout
            ));
        }
        problems.extend(self.ttl.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Config(problems))
        }
    }
}

/// How long rows are kept, in days per table group; `0` keeps them forever. Applied with
/// `ALTER TABLE ... MODIFY TTL` (or `REMOVE TTL`) after the migrations, only where the table's
/// TTL differs, so a changed value takes effect at the next start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtlConfig {
    /// `graph_nodes` and `graph_edges`, by `window_start` (default 7).
    pub graph_days: u32,
    /// `anomaly_scores`, by `window_start` (default 30).
    pub scores_days: u32,
    /// `incidents`, by `updated_at` (default 365).
    pub incidents_days: u32,
    /// `forecasts`, by `issued_at` (default 30).
    pub forecasts_days: u32,
}

impl Default for TtlConfig {
    fn default() -> Self {
        Self {
            graph_days: 7,
            scores_days: 30,
            incidents_days: 365,
            forecasts_days: 30,
        }
    }
}

impl TtlConfig {
    /// The longest TTL accepted (100 years), far beyond any retention and far from overflow.
    pub const MAX_DAYS: u32 = 36_500;

    fn problems(&self) -> Vec<String> {
        [
            ("graph_days", self.graph_days),
            ("scores_days", self.scores_days),
            ("incidents_days", self.incidents_days),
            ("forecasts_days", self.forecasts_days),
        ]
        .into_iter()
        .filter(|(_, days)| *days > Self::MAX_DAYS)
        .map(|(name, days)| {
            format!(
                "clickhouse.ttl.{name} must be at most {} (0 = keep forever), got {days}",
                Self::MAX_DAYS
            )
        })
        .collect()
    }

    /// The TTL of each table: `(table, time column, days)`.
    pub fn tables(&self) -> [(&'static str, &'static str, u32); 5] {
        [
            ("graph_nodes", "window_start", self.graph_days),
            ("graph_edges", "window_start", self.graph_days),
            ("anomaly_scores", "window_start", self.scores_days),
            ("incidents", "updated_at", self.incidents_days),
            ("forecasts", "issued_at", self.forecasts_days),
        ]
    }
}

/// When a [`crate::Writer`] flushes: whichever limit is reached first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Rows buffered over all tables (default 50 000).
    pub max_rows: usize,
    /// Approximate bytes buffered (default 16 MiB).
    pub max_bytes: usize,
    /// Age of the oldest buffered row (default 1 s).
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: 50_000,
            max_bytes: 16 << 20,
            max_delay: Duration::from_secs(1),
        }
    }
}

impl BatchConfig {
    /// Checks the configuration; every problem is reported at once.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut problems = Vec::new();
        if self.max_rows == 0 {
            problems.push("batch.max_rows must be at least 1".to_owned());
        }
        if self.max_bytes == 0 {
            problems.push("batch.max_bytes must be at least 1".to_owned());
        }
        if self.max_delay.is_zero() {
            problems.push("batch.max_delay must be positive".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Config(problems))
        }
    }
}

/// Whether `name` is a plain SQL identifier (safe to splice into DDL unquoted).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ClickHouseConfig::default().validate().expect("valid");
        BatchConfig::default().validate().expect("valid");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let config = ClickHouseConfig {
            url: "tcp://x".to_owned(),
            database: "no-dashes".to_owned(),
            password: Some("p".to_owned()),
            request_timeout: Duration::ZERO,
            ttl: TtlConfig {
                graph_days: 100_000,
                ..TtlConfig::default()
            },
            ..ClickHouseConfig::default()
        };
        let Err(StoreError::Config(problems)) = config.validate() else {
            panic!("expected a config error");
        };
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn parses_strictly_with_defaults() {
        let config: ClickHouseConfig =
            toml::from_str("database = \"mw\"\nrequest_timeout = \"5s\"\n[ttl]\ngraph_days = 3\n")
                .expect("parses");
        assert_eq!(config.database, "mw");
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.ttl.graph_days, 3);
        assert_eq!(config.ttl.scores_days, 30);
        assert!(toml::from_str::<ClickHouseConfig>("databse = \"x\"").is_err());
        let batch: BatchConfig = toml::from_str("max_delay = \"250ms\"").expect("parses");
        assert_eq!(batch.max_delay, Duration::from_millis(250));
    }

    #[test]
    fn password_is_not_printed() {
        let config = ClickHouseConfig {
            user: Some("u".to_owned()),
            password: Some("secret".to_owned()),
            ..ClickHouseConfig::default()
        };
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("meshwatch"));
        assert!(is_identifier("_t1"));
        assert!(!is_identifier("1t"));
        assert!(!is_identifier("a.b"));
        assert!(!is_identifier(""));
    }
}
