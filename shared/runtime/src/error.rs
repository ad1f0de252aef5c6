//! The one place that maps error classes to gRPC codes and HTTP statuses, and says whether a
//! retry can help.
//!
//! Each crate's error type implements [`Classify`]; servers turn errors into responses with
//! [`to_status`] (gRPC) or [`ErrorClass::http_status`] + [`public_message`] (HTTP). Internal
//! details never reach a caller: an [`ErrorClass::Internal`] error is answered with a generic
//! message, so log the error itself before converting it.

use std::fmt;

use http::StatusCode;
use tonic::Code;

/// What kind of failure an error is, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request is malformed or violates a limit on its content (name the field).
    InvalidArgument,
    /// The request body's media type is not supported (OTLP/HTTP answers 415).
    UnsupportedMediaType,
    /// The request is larger than the configured maximum.
    PayloadTooLarge,
    /// The requested entity (graph, model) does not exist.
    NotFound,
    /// The system is not in a state to serve this request (e.g. a model whose manifest does not
    /// match); retrying the same request will not help until an operator acts.
    FailedPrecondition,
    /// A quota or rate limit was hit; retry later, with backoff.
    ResourceExhausted,
    /// Temporarily unable to serve (overload, a dependency down, shutting down); retry with
    /// backoff. Load shedding uses this class: OTLP clients retry it.
    Unavailable,
    /// The deadline passed before the work finished.
    DeadlineExceeded,
    /// The caller cancelled the request.
    Cancelled,
    /// The operation is not implemented.
    Unimplemented,
    /// A bug or an unexpected failure; details are logged, never shown.
    Internal,
}

impl ErrorClass {
    /// Every class, for exhaustive tests and metric label pre-registration.
    pub const ALL: [Self; 11] = [
        Self::InvalidArgument,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::NotFound,
        Self::FailedPrecondition,
        Self::ResourceExhausted,
        Self::Unavailable,
        Self::DeadlineExceeded,
        Self::Cancelled,
        Self::Unimplemented,
        Self::Internal,
    ];

    /// The gRPC status code.
    ///
    /// `PayloadTooLarge` is `RESOURCE_EXHAUSTED`, as gRPC itself answers an oversized message;
    /// `UnsupportedMediaType` cannot happen over gRPC and maps to `INVALID_ARGUMENT`.
    pub fn grpc_code(self) -> Code {
        match self {
            Self::InvalidArgument | Self::UnsupportedMediaType => Code::InvalidArgument,
            Self::PayloadTooLarge | Self::ResourceExhausted => Code::ResourceExhausted,
            Self::NotFound => Code::NotFound,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::Unavailable => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Cancelled => Code::Cancelled,
            Self::Unimplemented => Code::Unimplemented,
            Self::Internal => Code::Internal,
        }
    }

    /// The HTTP status (OTLP/HTTP: 400, 413, 415, 429, 503 as the spec lists them).
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidArgument | Self::FailedPrecondition => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            // 499 "client closed request" (nginx, Google's gRPC-HTTP mapping).
            Self::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Self::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the same request may succeed later (the client should retry with backoff).
    pub fn retryable(self) -> bool {
        match self {
            Self::Unavailable
            | Self::ResourceExhausted
            | Self::DeadlineExceeded
            | Self::Cancelled => true,
            Self::InvalidArgument
            | Self::UnsupportedMediaType
            | Self::PayloadTooLarge
            | Self::NotFound
            | Self::FailedPrecondition
            | Self::Unimplemented
            | Self::Internal => false,
        }
    }

    /// A stable snake_case name, for metric labels and logs (a closed set).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::NotFound => "not_found",
            Self::FailedPrecondition => "failed_precondition",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Cancelled => "cancelled",
            Self::Unimplemented => "unimplemented",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error type that can reach a caller.
pub trait Classify {
    /// The class of this error.
    fn class(&self) -> ErrorClass;

    /// A message safe to show the caller: what was wrong with the request (naming the field),
    /// never internal details such as addresses, queries or stack traces. Ignored for
    /// [`ErrorClass::Internal`].
    fn public_message(&self) -> String;
}

/// The message shown for [`ErrorClass::Internal`] errors.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// The message a caller may see: [`Classify::public_message`], or [`INTERNAL_MESSAGE`] for
/// internal errors.
pub fn public_message<E: Classify + ?Sized>(error: &E) -> String {
    match error.class() {
        ErrorClass::Internal => INTERNAL_MESSAGE.to_owned(),
        _ => error.public_message(),
    }
}

/// The gRPC status for `error`: its class's code and [`public_message`].
pub fn to_status<E: Classify + ?Sized>(error: &E) -> tonic::Status {
    tonic::Status::new(error.class().grpc_code(), public_message(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestError(ErrorClass, &'static str);

    impl Classify for TestError {
        fn class(&self) -> ErrorClass {
            self.0
        }

        fn public_message(&self) -> String {
            self.1.to_owned()
        }
    }

    #[test]
    fn mapping_table() {
        let table = [
            (
                ErrorClass::InvalidArgument,
                Code::InvalidArgument,
                400,
                false,
            ),
            (
                ErrorClass::UnsupportedMediaType,
                Code::InvalidArgument,
                415,
                false,
            ),
            (
                ErrorClass::PayloadTooLarge,
                Code::ResourceExhausted,
                413,
                false,
            ),
            (ErrorClass::NotFound, Code::NotFound, 404, false),
            (
                ErrorClass::FailedPrecondition,
                Code::FailedPrecondition,
                400,
                false,
            ),
            (
                ErrorClass::ResourceExhausted,
                Code::ResourceExhausted,
                429,
                true,
            ),
            (ErrorClass::Unavailable, Code::Unavailable, 503, true),
            (
                ErrorClass::DeadlineExceeded,
                Code::DeadlineExceeded,
                504,
                true,
            ),
            (ErrorClass::Cancelled, Code::Cancelled, 499, true),
            (ErrorClass::Unimplemented, Code::Unimplemented, 501, false),
            (ErrorClass::Internal, Code::Internal, 500, false),
        ];
        assert_eq!(table.len(), ErrorClass::ALL.len());
        for (class, code, http, retryable) in table {
            assert_eq!(class.grpc_code(), code, "{class}");
            assert_eq!(class.http_status().as_u16(), http, "{class}");
            assert_eq!(class.retryable(), retryable, "{class}");
        }
        let names: std::collections::HashSet<_> =
            ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorClass::ALL.len(), "labels are distinct");
    }

    #[test]
    fn internal_details_are_never_shown() {
        let internal = TestError(ErrorClass::Internal, "connect 10.0.0.7:9000: refused");
        let status = to_status(&internal);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), INTERNAL_MESSAGE);

        let bad = TestError(
            ErrorClass::InvalidArgument,
            "node_features: expected rank 3",
        );
        let status = to_status(&bad);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "node_features: expected rank 3");
    }
}
