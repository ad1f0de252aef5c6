//! Errors of the analysis crate.

/// What can go wrong in the pure analysis core: bad configuration or input that breaks an
/// invariant the caller must keep (one entry per service, windows in order).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// A configuration failed validation; every problem found is listed.
    #[error("invalid analysis configuration: {}", problems.join("; "))]
    InvalidConfig {
        /// One line per problem, naming the field.
        problems: Vec<String>,
    },
    /// A window listed the same service more than once.
    #[error("service {service:?} appears more than once in a window of graph {graph:?}")]
    DuplicateService {
        /// Graph of the window.
        graph: String,
        /// The repeated service.
        service: String,
    },
    /// A window was not after the last window processed for its graph (a replay or a
    /// redelivery); the state is unchanged.
    #[error(
        "window {window_start_ms} of graph {graph:?} is not after the last one processed ({last_window_start_ms})"
    )]
    WindowOutOfOrder {
        /// Graph of the window.
        graph: String,
        /// Start of the rejected window, unix ms.
        window_start_ms: i64,
        /// Start of the last window processed for the graph, unix ms.
        last_window_start_ms: i64,
    },
}

/// Collects configuration problems so that all of them are reported at once.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    /// Records `message` when `bad` holds.
    pub(crate) fn check(&mut self, bad: bool, message: impl Into<String>) {
        if bad {
            self.0.push(message.into());
        }
    }

    /// `Ok` when nothing was recorded, else [`AnalysisError::InvalidConfig`].
    pub(crate) fn finish(self) -> Result<(), AnalysisError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AnalysisError::InvalidConfig { problems: self.0 })
        }
    }
}
