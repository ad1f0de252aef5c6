//! Errors of the inference services: what a caller sees (gRPC status) and why a service
//! cannot start.

use std::net::SocketAddr;

use meshwatch_model::{ModelError, ServeError};
use meshwatch_runtime::{Classify, ErrorClass};

use crate::report::ReportError;
use crate::window::RequestError;

/// Why one inference (gRPC request or streamed window) failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The input is invalid; names the field.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The model is still loading (the service is not ready).
    #[error("the model is loading; retry when the health check says SERVING")]
    Loading,
    /// The deadline passed first.
    #[error("deadline of {timeout_ms} ms exceeded")]
    Deadline { timeout_ms: u64 },
    /// Serving failed: overload (retryable), bad input the model refused, or a runtime error.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The outputs could not be turned into a report (e.g. a non-finite score).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The service is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A blocking task failed (a bug).
    #[error("worker task failed: {0}")]
    Task(String),
}

impl InferError {
    /// Whether trying the same input again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Loading | Self::Deadline { .. } | Self::ShuttingDown => true,
            Self::Serve(error) => error.is_retryable(),
            Self::Request(_) | Self::Report(_) | Self::Task(_) => false,
        }
    }

    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Request(_) => "invalid_argument",
            Self::Loading => "loading",
            Self::Deadline { .. } => "deadline",
            Self::Serve(error) if error.is_invalid_input() => "invalid_argument",
            Self::Serve(error) if error.is_retryable() => "overloaded",
            Self::Serve(_) => "model",
            Self::Report(_) => "report",
            Self::ShuttingDown => "shutting_down",
            Self::Task(_) => "internal",
        }
    }
}

impl Classify for InferError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Request(_) => ErrorClass::InvalidArgument,
            Self::Serve(error) if error.is_invalid_input() => ErrorClass::InvalidArgument,
            Self::Loading | Self::ShuttingDown => ErrorClass::Unavailable,
            Self::Serve(error) if error.is_retryable() => ErrorClass::Unavailable,
            Self::Deadline { .. } => ErrorClass::DeadlineExceeded,
            Self::Serve(_) | Self::Report(_) | Self::Task(_) => ErrorClass::Internal,
        }
    }

    fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Why an inference service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("model {dir}: {source}")]
    Model {
        dir: String,
        #[source]
        source: ModelError,
    },
    #[error(transparent)]
    Bus(#[from] meshwatch_bus::BusError),
    #[error("metrics: {0}")]
    Metrics(#[from] meshwatch_runtime::MetricsError),
    #[error("admin endpoint: {0}")]
    Admin(#[from] meshwatch_runtime::AdminError),
    #[error("grpc reflection: {0}")]
    Reflection(String),
}
