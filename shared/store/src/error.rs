//! The store's errors, and whether a retry can help.

use std::time::Duration;

/// An error of the store.
///
/// [`StoreError::is_retryable`] says whether the same request can succeed later (the server is
/// down, overloaded, or timed out): the aggregator then keeps the rows, does not ack their
/// messages and retries with backoff. Anything else (a schema mismatch, a rejected query, a
/// changed migration) needs a person.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// ClickHouse could not be reached, or the connection broke mid-request.
    #[error("clickhouse unavailable: {source}")]
    Unavailable {
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// The request took longer than the configured timeout.
    #[error("clickhouse request timed out after {0:?}")]
    Timeout(Duration),
    /// ClickHouse answered with an error.
    #[error("clickhouse error {}: {message}", code.map_or_else(|| "(no code)".to_owned(), |c| c.to_string()))]
    Server {
        /// The ClickHouse error code (`Code: N`), when the answer had one.
        code: Option<u32>,
        /// The server's message.
        message: String,
        /// Whether the code says the server is busy or failing (e.g. `TOO_MANY_PARTS`,
        /// `MEMORY_LIMIT_EXCEEDED`, an HTTP 5xx without a code) rather than refusing the request.
        retryable: bool,
    },
    /// The rows do not fit the table (a row type and the schema disagree), or the answer could
    /// not be decoded.
    #[error("clickhouse data does not match the schema: {source}")]
    Schema {
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// Another error of the ClickHouse client.
    #[error("clickhouse client error: {source}")]
    Client {
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// A migration that was applied earlier has a different text now.
    #[error(
        "migration {version} ({name}) was changed after it was applied to database {database}: \
         checksum {applied} in schema_migrations, {current} now; add a new migration instead"
    )]
    MigrationChanged {
        /// The migration's version.
        version: u32,
        /// The migration's name.
        name: String,
        /// The database.
        database: String,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the text in this build.
        current: String,
    },
    /// The configuration is invalid; every problem is listed.
    #[error("invalid store configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The embedded sink failed.
    #[error("embedded store {path}: {message}")]
    Embedded {
        /// The database file.
        path: String,
        /// What failed.
        message: String,
    },
}

impl StoreError {
    /// Whether the same request can succeed later; see the type's documentation.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Timeout(_) => true,
            Self::Server { retryable, .. } => *retryable,
            Self::Schema { .. }
            | Self::Client { .. }
            | Self::MigrationChanged { .. }
            | Self::Config(_)
            | Self::Embedded { .. } => false,
        }
    }

    /// A short, closed-set name of the error's kind, for metric labels and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Server {
                retryable: true, ..
            } => "server_busy",
            Self::Server { .. } => "server_rejected",
            Self::Schema { .. } => "schema",
            Self::Client { .. } => "client",
            Self::MigrationChanged { .. } => "migration_changed",
            Self::Config(_) => "config",
            Self::Embedded { .. } => "embedded",
        }
    }
}

/// ClickHouse error codes that say "try again later" rather than "this request is wrong"
/// (`src/Common/ErrorCodes.cpp`).
const RETRYABLE_CODES: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    160, // TOO_SLOW
    173, // CANNOT_ALLOCATE_MEMORY
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    203, // NO_FREE_CONNECTION
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    225, // NO_ZOOKEEPER
    236, // ABORTED
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    243, // NOT_ENOUGH_SPACE
    252, // TOO_MANY_PARTS
    279, // ALL_CONNECTION_TRIES_FAILED
    319, // UNKNOWN_STATUS_OF_INSERT
    394, // QUERY_WAS_CANCELLED
    425, // SYSTEM_ERROR
    439, // CANNOT_SCHEDULE_TASK
    999, // KEEPER_EXCEPTION
];

/// Reads the code of a ClickHouse error message (`Code: 60. DB::Exception: ...`).
fn exception_code(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code:")? + "Code:".len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Classifies an error of the `clickhouse` client.
pub(crate) fn classify(error: clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error as E;
    match error {
        E::Network(_) => StoreError::Unavailable { source: error },
        E::TimedOut => StoreError::Unavailable { source: error },
        E::BadResponse(message) => {
            let code = exception_code(&message);
            let retryable = match code {
                Some(code) => RETRYABLE_CODES.contains(&code),
                // No code: the client puts "<status> <reason>" in the message.
                None => message.trim_start().starts_with('5'),
            };
            StoreError::Server {
                code,
                message,
                retryable,
            }
        }
        E::SchemaMismatch(_)
        | E::NotEnoughData
        | E::InvalidColumnsHeader(_)
        | E::DataFormat(_)
        | E::InvalidUtf8Encoding(_)
        | E::InvalidTagEncoding(_) => StoreError::Schema { source: error },
        other => StoreError::Client { source: other },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(message: &str) -> StoreError {
        classify(clickhouse::error::Error::BadResponse(message.to_owned()))
    }

    #[test]
    fn server_errors_are_classified_by_code() {
        let busy = server("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)");
        assert!(busy.is_retryable());
        assert_eq!(busy.kind(), "server_busy");
        let wrong = server("Code: 60. DB::Exception: Unknown table expression identifier");
        assert!(!wrong.is_retryable());
        assert!(matches!(wrong, StoreError::Server { code: Some(60), .. }));
        assert_eq!(wrong.kind(), "server_rejected");
    }

    #[test]
    fn server_errors_without_code_use_the_status() {
        assert!(server("503 Service Unavailable").is_retryable());
        assert!(server("502 Bad Gateway").is_retryable());
        assert!(!server("400 Bad Request").is_retryable());
        assert!(!server("404 Not Found").is_retryable());
    }

    #[test]
    fn timeouts_and_network_errors_are_retryable() {
        assert!(StoreError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(classify(clickhouse::error::Error::TimedOut).is_retryable());
        let schema = classify(clickhouse::error::Error::SchemaMismatch("x".into()));
        assert!(!schema.is_retryable());
        assert_eq!(schema.kind(), "schema");
    }

    #[test]
    fn exception_codes_are_parsed() {
        assert_eq!(exception_code("Code: 241. DB::Exception: x"), Some(241));
        assert_eq!(exception_code("Code: 81"), Some(81));
        assert_eq!(exception_code("no code here"), None);
    }
}
