//! Errors of the bus, with whether a retry can help.

use async_nats::jetstream::context::PublishErrorKind;

/// Boxed source error (the `async-nats` error types are many and generic).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong talking to the bus. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configuration is unusable (see [`crate::NatsConfig::validate`]).
    #[error("invalid bus configuration: {0}")]
    Config(String),
    /// A credentials, certificate or key file could not be read.
    #[error("cannot read {what} {path}")]
    ReadFile {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// No connection to the NATS server(s) could be established.
    #[error("cannot connect to nats at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    /// A JetStream API request about a stream failed (unreachable, timed out, refused).
    #[error("jetstream request for stream {stream} failed")]
    Stream {
        stream: String,
        #[source]
        source: BoxError,
    },
    /// An existing stream differs from the wanted one in a way that cannot be updated
    /// (storage type, retention policy); an operator must resolve it.
    #[error("stream {stream} is incompatible: {reason}")]
    IncompatibleStream { stream: String, reason: String },
    /// Publishing (or awaiting the PubAck) failed.
    #[error("publish to {subject} failed ({kind})")]
    Publish {
        subject: String,
        kind: PublishErrorKind,
        #[source]
        source: BoxError,
    },
    /// The in-process bus has no subscriber left to deliver to.
    #[error("in-process bus has no subscribers")]
    NoSubscribers,
}

impl BusError {
    /// Whether trying again later can succeed (the server may come back, the stream may be
    /// created, the ack may arrive). `false` for problems only a change of config or data fixes.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config(_) | Self::ReadFile { .. } | Self::IncompatibleStream { .. } => false,
            Self::Publish { kind, .. } => !matches!(
                kind,
                PublishErrorKind::MaxPayloadExceeded
                    | PublishErrorKind::WrongLastMessageId
                    | PublishErrorKind::WrongLastSequence
            ),
            Self::Connect { .. } | Self::Stream { .. } | Self::NoSubscribers => true,
        }
    }

    pub(crate) fn publish(
        subject: &str,
        error: async_nats::jetstream::context::PublishError,
    ) -> Self {
        Self::Publish {
            subject: subject.to_owned(),
            kind: error.kind(),
            source: Box::new(error),
        }
    }

    pub(crate) fn stream(stream: &str, source: impl Into<BoxError>) -> Self {
        Self::Stream {
            stream: stream.to_owned(),
            source: source.into(),
        }
    }
}
