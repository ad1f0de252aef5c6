//! Errors of the aggregator.

/// Why the aggregator could not start (or a worker had to stop).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid (also checked when loading).
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// A metric could not be registered.
    #[error(transparent)]
    Metrics(#[from] meshwatch_runtime::MetricsError),
    /// The admin endpoint could not bind.
    #[error(transparent)]
    Admin(#[from] meshwatch_runtime::AdminError),
    /// The sink refused to start (a non-retryable error: schema, configuration, file).
    #[error("sink: {0}")]
    Store(#[from] meshwatch_store::StoreError),
    /// NATS: configuration or connection.
    #[error(transparent)]
    Bus(#[from] meshwatch_bus::BusError),
    /// Shutdown started before the service was up.
    #[error("shut down while starting ({0})")]
    Interrupted(&'static str),
}
