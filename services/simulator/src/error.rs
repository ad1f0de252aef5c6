//! Errors of the simulator.

/// What can go wrong building or running a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid topology: {0}")]
    Topology(String),
    #[error("invalid fault: {0}")]
    Fault(String),
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the OTLP endpoint: {0}")]
    Endpoint(String),
    #[error(transparent)]
    Metrics(#[from] meshwatch_runtime::metrics::MetricsError),
}
