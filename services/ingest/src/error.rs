//! Errors of the ingest, and how each maps to OTLP responses (ARCHITECTURE.md §8) through the
//! one mapping of `meshwatch_runtime::ErrorClass`.

use std::time::Duration;

use meshwatch_runtime::{Classify, ErrorClass};

/// Why a request was refused as a whole. Nothing of a refused request is aggregated.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request contains no spans")]
    Empty,
    #[error("request contains no data points")]
    NoDataPoints,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body larger than {limit} bytes after decompression")]
    DecompressedTooLarge { limit: usize },
    #[error("invalid {encoding} body: {detail}")]
    BadCompression {
        encoding: &'static str,
        detail: String,
    },
    #[error("unsupported content encoding {0:?} (supported: gzip, zstd, identity)")]
    UnsupportedEncoding(String),
    #[error("unsupported content type {0:?} (supported: application/x-protobuf, application/json)")]
    UnsupportedMediaType(String),
    #[error("ingest is overloaded, retry after {}s", retry_after.as_secs())]
    Overloaded { retry_after: Duration },
    #[error("ingest is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    /// Label for metrics (closed set).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Empty | Self::NoDataPoints => "empty",
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } | Self::DecompressedTooLarge { .. } => "too_large",
            Self::BadCompression { .. } => "bad_compression",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Overloaded { .. } => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::Internal(_) => "internal",
        }
    }

    /// The delay to suggest to the client, for retryable errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after } => Some(*retry_after),
            Self::ShuttingDown => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

impl Classify for RequestError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Empty | Self::NoDataPoints | Self::Malformed(_) | Self::BadCompression { .. } => {
                ErrorClass::InvalidArgument
            }
            Self::TooLarge { .. } | Self::DecompressedTooLarge { .. } => {
                ErrorClass::PayloadTooLarge
            }
            Self::UnsupportedEncoding(_) | Self::UnsupportedMediaType(_) => {
                ErrorClass::UnsupportedMediaType
            }
            Self::Overloaded { .. } | Self::ShuttingDown => ErrorClass::Unavailable,
            Self::Internal(_) => ErrorClass::Internal,
        }
    }

    fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Why the service could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid graph settings: {0}")]
    Config(String),
    #[error(transparent)]
    Bus(#[from] meshwatch_bus::BusError),
    #[error("cannot start the aggregation thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] meshwatch_runtime::metrics::MetricsError),
}
