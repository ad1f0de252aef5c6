//! Logging: one global `tracing` subscriber, JSON or human-readable, on stderr.
//!
//! Log lines go to stderr so stdout stays clean for command output (`--check-config` prints the
//! effective config there). The filter comes from `RUST_LOG` when it is set and non-empty,
//! otherwise from [`LogConfig::level`].

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter directives do not parse.
    #[error("invalid log filter `{directives}` from {origin}")]
    Filter {
        /// The directives as given.
        directives: String,
        /// `RUST_LOG` or `log.level`.
        origin: &'static str,
        /// What the parser rejected.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// `RUST_LOG` is set but is not valid UTF-8.
    #[error("RUST_LOG is not valid utf-8")]
    FilterNotUnicode,
    /// A global subscriber is already installed (a second call, or another library's); the
    /// existing one stays in place.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialized(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Installs the process-wide `tracing` subscriber described by `config`.
///
/// Call once, early in `main`, after the config loaded. A second call changes nothing and returns
/// [`TelemetryError::AlreadyInitialized`].
///
/// # Errors
///
/// An unparsable filter, or a subscriber already installed.
pub fn init_tracing(config: &LogConfig) -> Result<(), TelemetryError> {
    let rust_log = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(TelemetryError::FilterNotUnicode),
    };
    init_tracing_with(config, rust_log.as_deref())
}

/// [`init_tracing`] with the `RUST_LOG` value passed in, so tests need not touch the environment.
fn init_tracing_with(config: &LogConfig, rust_log: Option<&str>) -> Result<(), TelemetryError> {
    let (directives, origin) = match rust_log {
        Some(directives) => (directives, "RUST_LOG"),
        None => (config.level.as_str(), "log.level"),
    };
    let filter = EnvFilter::try_new(directives).map_err(|source| TelemetryError::Filter {
        directives: directives.to_owned(),
        origin,
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    installed.map_err(TelemetryError::AlreadyInitialized)?;
    tracing::debug!(filter = %directives, from = origin, format = ?config.format, "logging initialised");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filter_is_an_error_that_names_its_origin() {
        let config = LogConfig {
            level: "info".to_owned(),
            ..LogConfig::default()
        };
        let error = init_tracing_with(&config, Some("meshwatch=loud"));
        assert!(
            matches!(
                error,
                Err(TelemetryError::Filter {
                    origin: "RUST_LOG",
                    ..
                })
            ),
            "{error:?}"
        );
    }

    /// The only test in this crate that installs the global subscriber.
    #[test]
    fn second_init_is_an_error_not_a_panic() {
        let config = LogConfig {
            format: LogFormat::Json,
            level: "error".to_owned(),
        };
        assert!(init_tracing_with(&config, None).is_ok());
        let again = init_tracing_with(&config, None);
        assert!(
            matches!(again, Err(TelemetryError::AlreadyInitialized(_))),
            "{again:?}"
        );
    }
}
