//! NATS connection and stream settings ([`NatsConfig`]), and the publish buffer's settings
//! ([`BufferConfig`], a section of its own: the buffer also fronts the in-process bus).
//!
//! Parsed strictly (`deny_unknown_fields`), every field defaulted, durations in humantime form
//! (`"24h"`, `"2m"`, `"500ms"`). [`NatsConfig::validate`] reports every problem at once and
//! opens no connection. Secrets (password, token, credentials in the URL) never appear in
//! `Debug` output, serialised config or error messages.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::subjects::{self, Names, SubjectError};

/// A secret string: `Debug` and `Serialize` print `<redacted>`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; pass it on, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// TLS towards the NATS server. A `tls://` URL also turns TLS on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Refuse to connect without TLS.
    pub require: bool,
    /// PEM file of the CA(s) that sign the server certificate (else the system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// The bounded in-memory buffer of closed snapshots in front of the bus
/// ([`crate::publisher::BufferedPublisher`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Most snapshots held while the bus is unreachable; beyond it new snapshots are refused.
    pub max_snapshots: usize,
    /// Most encoded bytes held; beyond it new snapshots are refused.
    pub max_bytes: u64,
    /// First delay between publish attempts of the same snapshot.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Cap of the doubling delay between attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_snapshots: 1024,
            max_bytes: 256 * 1024 * 1024,
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(10),
        }
    }
}

impl BufferConfig {
    /// Every problem of this section, with field names relative to it.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_snapshots == 0 {
            problems.push("max_snapshots: must be at least 1".to_owned());
        }
        if self.max_bytes == 0 {
            problems.push("max_bytes: must be at least 1".to_owned());
        }
        if self.retry_initial_backoff.is_zero() {
            problems.push("retry_initial_backoff: must be positive".to_owned());
        }
        if self.retry_max_backoff < self.retry_initial_backoff {
            problems.push("retry_max_backoff: must not be below retry_initial_backoff".to_owned());
        }
        problems
    }
}

/// Everything needed to reach NATS JetStream and shape Meshwatch's streams.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URL, or several separated by commas (`nats://`, `tls://`, `ws://`, `wss://`;
    /// without a scheme `nats://` and port 4222 are assumed). Credentials written into the URL
    /// are redacted when the config is printed.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// NATS credentials file (user JWT and nkey seed), for operator-mode servers.
    pub credentials_file: Option<PathBuf>,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<Secret>,
    /// Authentication token.
    pub token: Option<Secret>,
    /// TLS settings; absent: plain TCP unless the URL says `tls://`.
    pub tls: Option<TlsConfig>,
    /// Prefix of every subject and stream name, for several installations (or tests) sharing
    /// one NATS account; absent in a normal deployment.
    pub namespace: Option<String>,
    /// Replicas of each stream (1 for a single server; 3 for a typical cluster).
    pub stream_replicas: usize,
    /// How long snapshots stay in their stream (a restarted detector rebuilds its history).
    #[serde(with = "humantime_serde")]
    pub snapshots_max_age: Duration,
    /// Size bound of the snapshots stream in bytes (oldest dropped first); absent: none.
    pub snapshots_max_bytes: Option<u64>,
    /// How long scores, forecasts and dead letters stay in their stream.
    #[serde(with = "humantime_serde")]
    pub results_max_age: Duration,
    /// Size bound of the results stream in bytes (oldest dropped first); absent: none.
    pub results_max_bytes: Option<u64>,
    /// JetStream de-duplication window for `Nats-Msg-Id`.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Time allowed to establish a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for a JetStream API reply or a PubAck.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            credentials_file: None,
            user: None,
            password: None,
            token: None,
            tls: None,
            namespace: None,
            stream_replicas: 1,
            snapshots_max_age: Duration::from_secs(24 * 3600),
            snapshots_max_bytes: None,
            results_max_age: Duration::from_secs(24 * 3600),
            results_max_bytes: None,
            duplicate_window: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &redact_url(&self.url))
            .field("credentials_file", &self.credentials_file)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("tls", &self.tls)
            .field("namespace", &self.namespace)
            .field("stream_replicas", &self.stream_replicas)
            .field("snapshots_max_age", &self.snapshots_max_age)
            .field("snapshots_max_bytes", &self.snapshots_max_bytes)
            .field("results_max_age", &self.results_max_age)
            .field("results_max_bytes", &self.results_max_bytes)
            .field("duplicate_window", &self.duplicate_window)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Largest replica count JetStream accepts.
const MAX_REPLICAS: usize = 5;

impl NatsConfig {
    /// The subject and stream names under the configured namespace.
    pub fn names(&self) -> Result<Names, SubjectError> {
        Names::new(self.namespace.as_deref())
    }

    /// The server URLs, split at commas.
    pub fn server_urls(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty())
    }

    /// [`NatsConfig::url`] with any `user:password@` removed, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Every problem of this section (field names relative to it), checked without opening a
    /// connection. Files named by the config must exist.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut urls = 0;
        for url in self.server_urls() {
            urls += 1;
            if let Err(e) = url.parse::<async_nats::ServerAddr>() {
                problems.push(format!(
                    "url: {} is not a NATS server address: {e}",
                    redact_url(url)
                ));
            }
        }
        if urls == 0 {
            problems.push("url: must name at least one server".to_owned());
        }
        match (&self.user, &self.password) {
            (Some(_), None) => problems.push("password: required with user".to_owned()),
            (None, Some(_)) => problems.push("user: required with password".to_owned()),
            _ => {}
        }
        let methods = [
            self.credentials_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            problems.push(
                "credentials_file, user/password and token: set at most one of them".to_owned(),
            );
        }
        if let Some(path) = &self.credentials_file
            && !path.is_file()
        {
            problems.push(format!(
                "credentials_file: {} is not a file",
                path.display()
            ));
        }
        if let Some(tls) = &self.tls {
            for (name, path) in [
                ("tls.ca_file", &tls.ca_file),
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                if let Some(path) = path
                    && !path.is_file()
                {
                    problems.push(format!("{name}: {} is not a file", path.display()));
                }
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                problems.push("tls.cert_file and tls.key_file: set both or neither".to_owned());
            }
        }
        if let Some(ns) = &self.namespace
            && !subjects::is_valid_namespace(ns)
        {
            problems.push(format!(
                "namespace: {ns:?} must be 1 to {} characters of [A-Za-z0-9_-]",
                subjects::MAX_NAMESPACE_LEN
            ));
        }
        if !(1..=MAX_REPLICAS).contains(&self.stream_replicas) {
            problems.push(format!("stream_replicas: must be 1 to {MAX_REPLICAS}"));
        }
        for (name, age) in [
            ("snapshots_max_age", self.snapshots_max_age),
            ("results_max_age", self.results_max_age),
        ] {
            if age.is_zero() {
                problems.push(format!("{name}: must be positive"));
            } else if self.duplicate_window > age {
                problems.push(format!("duplicate_window: must not exceed {name}"));
            }
        }
        for (name, bytes) in [
            ("snapshots_max_bytes", self.snapshots_max_bytes),
            ("results_max_bytes", self.results_max_bytes),
        ] {
            if bytes.is_some_and(|b| b == 0 || b > i64::MAX as u64) {
                problems.push(format!("{name}: must be positive"));
            }
        }
        for (name, d) in [
            ("duplicate_window", self.duplicate_window),
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                problems.push(format!("{name}: must be positive"));
            }
        }
        problems
    }
}

fn serialize_redacted_url<S: serde::Serializer>(
    url: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}

/// Removes `user:password@` (or `token@`) from every URL of a comma-separated list.
pub(crate) fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let (scheme, rest) = match url.split_once("://") {
                Some((scheme, rest)) => (Some(scheme), rest),
                None => (None, url),
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let rest = match rest[..authority_end].rfind('@') {
                Some(at) => format!("{REDACTED}@{}", &rest[at + 1..]),
                None => rest.to_owned(),
            };
            match scheme {
                Some(scheme) => format!("{scheme}://{rest}"),
                None => rest,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = NatsConfig::default();
        assert_eq!(c.validate(), Vec::<String>::new());
        assert_eq!(c.url, "nats://127.0.0.1:4222");
        assert_eq!(c.stream_replicas, 1);
        assert_eq!(c.snapshots_max_age, Duration::from_secs(86_400));
        assert_eq!(c.duplicate_window, Duration::from_secs(120));
    }

    #[test]
    fn parses_humantime_and_refuses_unknown_keys() {
        let c: NatsConfig = toml::from_str(
            r#"
            url = "nats://a:4222, nats://b:4222"
            snapshots_max_age = "6h"
            duplicate_window = "90s"
            request_timeout = "750ms"
            [tls]
            require = true
            "#,
        )
        .expect("valid config");
        assert_eq!(c.snapshots_max_age, Duration::from_secs(6 * 3600));
        assert_eq!(c.duplicate_window, Duration::from_secs(90));
        assert_eq!(c.request_timeout, Duration::from_millis(750));
        assert_eq!(
            c.server_urls().collect::<Vec<_>>(),
            ["nats://a:4222", "nats://b:4222"]
        );
        assert!(c.tls.as_ref().is_some_and(|t| t.require));

        let err = toml::from_str::<NatsConfig>("urll = \"x\"").expect_err("unknown key");
        assert!(err.to_string().contains("urll"), "{err}");
        let err = toml::from_str::<NatsConfig>("[tls]\nrequired = true").expect_err("unknown key");
        assert!(err.to_string().contains("required"), "{err}");
        let b: BufferConfig = toml::from_str("max_snapshots = 10\nretry_max_backoff = \"30s\"")
            .expect("valid buffer config");
        assert_eq!(b.max_snapshots, 10);
        assert_eq!(b.retry_max_backoff, Duration::from_secs(30));
        assert_eq!(b.max_bytes, BufferConfig::default().max_bytes);
        assert!(toml::from_str::<BufferConfig>("max = 1").is_err());
    }

    #[test]
    fn validate_reports_everything_at_once() {
        let c = NatsConfig {
            url: "http://x".to_owned(),
            user: Some("u".to_owned()),
            token: Some(Secret::new("t")),
            namespace: Some("a.b".to_owned()),
            stream_replicas: 0,
            duplicate_window: Duration::from_secs(7200),
            snapshots_max_age: Duration::from_secs(3600),
            request_timeout: Duration::ZERO,
            credentials_file: Some(PathBuf::from("/nonexistent/x.creds")),
            ..NatsConfig::default()
        };
        let problems = c.validate();
        for needle in [
            "url:",
            "password: required with user",
            "set at most one",
            "credentials_file: /nonexistent/x.creds",
            "namespace:",
            "stream_replicas:",
            "duplicate_window: must not exceed snapshots_max_age",
            "request_timeout: must be positive",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle} in {problems:?}"
            );
        }
    }

    #[test]
    fn buffer_validation() {
        assert!(BufferConfig::default().validate().is_empty());
        let b = BufferConfig {
            max_snapshots: 0,
            retry_initial_backoff: Duration::from_secs(2),
            retry_max_backoff: Duration::from_secs(1),
            ..BufferConfig::default()
        };
        let problems = b.validate();
        assert!(
            problems.iter().any(|p| p.starts_with("max_snapshots:")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("retry_max_backoff:")),
            "{problems:?}"
        );
    }

    #[test]
    fn secrets_never_show() {
        let c = NatsConfig {
            url: "nats://alice:hunter2@nats:4222,tls://tok3n@b:4222/x".to_owned(),
            user: Some("alice".to_owned()),
            password: Some(Secret::new("hunter2")),
            token: Some(Secret::new("tok3n")),
            ..NatsConfig::default()
        };
        let debug = format!("{c:?}");
        let toml = toml::to_string(&c).expect("serialisable");
        for shown in [&debug, &toml, &c.redacted_url()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("tok3n"), "{shown}");
        }
        assert_eq!(
            c.redacted_url(),
            "nats://<redacted>@nats:4222,tls://<redacted>@b:4222/x"
        );
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
    }
}
