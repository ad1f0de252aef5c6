//! [`ServeError`]: why a request was not served, and whether a retry can help.

use crate::batch::BatchError;
use crate::error::{ModelError, ShapeError};
use crate::metrics::reason;

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The queue holds `capacity` requests already.
    #[error("the inference queue is full ({capacity} requests waiting)")]
    QueueFull { capacity: usize },
    /// No session became free within [`ServingOptions::session_wait`] (holds a
    /// [`ModelError::Busy`]).
    #[error(transparent)]
    Busy(ModelError),
    /// The server is closed (or its worker stopped).
    #[error("the model server is closed")]
    Closed,
    /// The model refused the inputs ([`ModelError::Shape`]: see
    /// [`ServeError::is_invalid_input`]) or failed to run.
    #[error(transparent)]
    Model(ModelError),
    /// The joined outputs could not be split (a model that breaks the contract).
    #[error(transparent)]
    Batch(BatchError),
}

impl ServeError {
    /// Whether a retry (later, or on another replica) can succeed: a full queue, busy
    /// sessions, a closed server.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::QueueFull { .. } | Self::Busy(_) | Self::Closed)
    }

    /// Whether the caller's inputs do not fit the model (shapes, edge indices, missing or
    /// unexpected inputs): the caller's fault, never retryable.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            Self::Model(ModelError::Shape(shape)) => !matches!(shape, ShapeError::Output { .. }),
            _ => false,
        }
    }

    /// The `reason` label of the errors counter.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Self::QueueFull { .. } => reason::QUEUE_FULL,
            Self::Busy(_) => reason::BUSY,
            _ if self.is_invalid_input() => reason::INVALID_INPUT,
            Self::Closed | Self::Model(_) | Self::Batch(_) => reason::RUNTIME,
        }
    }

    /// The same error for another request of the same batch (errors are not `Clone`; what a
    /// caller matches on is kept, other model errors become their message).
    pub(super) fn duplicate(&self) -> Self {
        match self {
            Self::QueueFull { capacity } => Self::QueueFull {
                capacity: *capacity,
            },
            Self::Busy(error) => Self::Busy(duplicate_model_error(error)),
            Self::Closed => Self::Closed,
            Self::Model(error) => Self::Model(duplicate_model_error(error)),
            Self::Batch(error) => Self::Batch(error.clone()),
        }
    }
}

fn duplicate_model_error(error: &ModelError) -> ModelError {
    match error {
        ModelError::Busy { model, waited_ms } => ModelError::Busy {
            model: model.clone(),
            waited_ms: *waited_ms,
        },
        ModelError::Shape(shape) => ModelError::Shape(shape.clone()),
        ModelError::Ort { context, message } => ModelError::Ort {
            context,
            message: message.clone(),
        },
        other => ModelError::Ort {
            context: "running the model",
            message: other.to_string(),
        },
    }
}

impl From<ModelError> for ServeError {
    /// [`ModelError::Busy`] becomes [`ServeError::Busy`], everything else [`ServeError::Model`].
    fn from(error: ModelError) -> Self {
        match error {
            ModelError::Busy { .. } => Self::Busy(error),
            other => Self::Model(other),
        }
    }
}

impl From<BatchError> for ServeError {
    fn from(error: BatchError) -> Self {
        Self::Batch(error)
    }
}
