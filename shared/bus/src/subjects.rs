//! Every NATS subject, stream, consumer and message-id format of Meshwatch, in one place
//! (ARCHITECTURE.md §6).
//!
//! | what | subject | stream |
//! |---|---|---|
//! | graph snapshots | `meshwatch.v1.snapshots.<graph>` | `MESHWATCH_SNAPSHOTS` |
//! | anomaly scores | `meshwatch.v1.scores.<graph>` | `MESHWATCH_RESULTS` |
//! | forecasts | `meshwatch.v1.forecasts.<graph>` | `MESHWATCH_RESULTS` |
//! | poison messages | `meshwatch.v1.dlq.<kind>` | `MESHWATCH_RESULTS` |
//!
//! `<graph>` is the graph id escaped into one subject token by [`subject_token`]. An optional
//! namespace ([`Names::new`]) prefixes every subject (`<ns>.meshwatch.v1...`) and every stream
//! name (`<ns>_MESHWATCH_SNAPSHOTS`), so several installations (or tests) share one NATS account
//! without their streams' subjects overlapping.

use std::fmt;

/// Root of every subject of schema `meshwatch.v1`.
pub const SUBJECT_ROOT: &str = "meshwatch.v1";
/// Base name of the stream holding graph snapshots.
pub const SNAPSHOTS_STREAM: &str = "MESHWATCH_SNAPSHOTS";
/// Base name of the stream holding scores, forecasts and dead letters.
pub const RESULTS_STREAM: &str = "MESHWATCH_RESULTS";

/// Durable pull-consumer names (explicit ack).
pub mod consumers {
    /// The detector, on the snapshots stream.
    pub const DETECTOR: &str = "detector";
    /// The forecaster, on the snapshots stream.
    pub const FORECASTER: &str = "forecaster";
    /// The aggregator, on the snapshots stream (writes graph rows).
    pub const AGGREGATOR_SNAPSHOTS: &str = "aggregator-snapshots";
    /// The aggregator, on the results stream (writes scores, incidents, forecasts).
    pub const AGGREGATOR_RESULTS: &str = "aggregator-results";
}

/// What a message carries; names its subject family and the first part of its message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A `meshwatch.v1.GraphSnapshot`.
    Snapshot,
    /// Anomaly scores of one graph and window.
    Score,
    /// A forecast of one graph from one window.
    Forecast,
}

impl MessageKind {
    /// The kind as used in message ids and dead-letter subjects (`snapshot`, `score`, `forecast`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Score => "score",
            Self::Forecast => "forecast",
        }
    }

    /// The subject family below the root (`snapshots`, `scores`, `forecasts`).
    fn family(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshots",
            Self::Score => "scores",
            Self::Forecast => "forecasts",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subject token or namespace that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The namespace is empty, too long or has characters other than `[A-Za-z0-9_-]`.
    #[error("namespace must be 1 to {max} characters of [A-Za-z0-9_-]", max = MAX_NAMESPACE_LEN)]
    InvalidNamespace,
    /// The token is not something [`subject_token`] produces.
    #[error("invalid escaped subject token")]
    InvalidToken,
}

/// Longest accepted namespace.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// Subject and stream names, optionally under a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    namespace: Option<String>,
}

impl Names {
    /// Names under `namespace` (`None`: the plain production names).
    pub fn new(namespace: Option<&str>) -> Result<Self, SubjectError> {
        match namespace {
            None => Ok(Self { namespace: None }),
            Some(ns) if is_valid_namespace(ns) => Ok(Self {
                namespace: Some(ns.to_owned()),
            }),
            Some(_) => Err(SubjectError::InvalidNamespace),
        }
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn stream(&self, base: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}_{base}"),
            None => base.to_owned(),
        }
    }

    fn root(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{SUBJECT_ROOT}"),
            None => SUBJECT_ROOT.to_owned(),
        }
    }

    /// Name of the snapshots stream (`MESHWATCH_SNAPSHOTS`).
    pub fn snapshots_stream(&self) -> String {
        self.stream(SNAPSHOTS_STREAM)
    }

    /// Name of the results stream (`MESHWATCH_RESULTS`).
    pub fn results_stream(&self) -> String {
        self.stream(RESULTS_STREAM)
    }

    /// Subject of one graph's messages of `kind` (`meshwatch.v1.snapshots.<graph>`).
    pub fn subject(&self, kind: MessageKind, graph: &str) -> String {
        format!("{}.{}.{}", self.root(), kind.family(), subject_token(graph))
    }

    /// Subject of one graph's snapshots.
    pub fn snapshot_subject(&self, graph: &str) -> String {
        self.subject(MessageKind::Snapshot, graph)
    }

    /// Subject of one graph's anomaly scores.
    pub fn score_subject(&self, graph: &str) -> String {
        self.subject(MessageKind::Score, graph)
    }

    /// Subject of one graph's forecasts.
    pub fn forecast_subject(&self, graph: &str) -> String {
        self.subject(MessageKind::Forecast, graph)
    }

    /// Dead-letter subject for poison messages of `kind` (`meshwatch.v1.dlq.<kind>`).
    pub fn dlq_subject(&self, kind: MessageKind) -> String {
        format!("{}.dlq.{}", self.root(), kind.as_str())
    }

    /// Wildcard over every graph's messages of `kind` (`meshwatch.v1.snapshots.>`).
    pub fn filter(&self, kind: MessageKind) -> String {
        format!("{}.{}.>", self.root(), kind.family())
    }

    /// Wildcard over every dead-letter subject (`meshwatch.v1.dlq.>`).
    pub fn dlq_filter(&self) -> String {
        format!("{}.dlq.>", self.root())
    }

    /// Subjects bound to the snapshots stream.
    pub fn snapshots_stream_subjects(&self) -> Vec<String> {
        vec![self.filter(MessageKind::Snapshot)]
    }

    /// Subjects bound to the results stream: scores, forecasts and dead letters.
    pub fn results_stream_subjects(&self) -> Vec<String> {
        vec![
            self.filter(MessageKind::Score),
            self.filter(MessageKind::Forecast),
            self.dlq_filter(),
        ]
    }
}

/// Whether `ns` is an acceptable namespace: 1 to [`MAX_NAMESPACE_LEN`] of `[A-Za-z0-9_-]`.
pub fn is_valid_namespace(ns: &str) -> bool {
    !ns.is_empty() && ns.len() <= MAX_NAMESPACE_LEN && ns.bytes().all(is_plain)
}

/// Bytes that stand for themselves in a token; every other byte is escaped.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Turns a graph id (any string) into one NATS subject token.
///
/// Percent-style escaping of UTF-8 bytes: ASCII letters, digits, `-` and `_` stay as they are;
/// every other byte — `.`, `*`, `>` and whitespace (which NATS forbids in a token), `%` itself,
/// `:` (the message-id separator), `/`, control characters, non-ASCII — becomes `%XX` with two
/// upper-case hex digits. The empty id becomes `%`, which no escape sequence can produce.
/// Deterministic and injective, so [`graph_from_token`] reverses it:
/// `prod/eu-west-1` → `prod%2Feu-west-1`, `a.b` → `a%2Eb`.
pub fn subject_token(graph: &str) -> String {
    if graph.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(graph.len());
    for b in graph.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Reverses [`subject_token`]; refuses anything it cannot have produced.
pub fn graph_from_token(token: &str) -> Result<String, SubjectError> {
    if token == "%" {
        return Ok(String::new());
    }
    if token.is_empty() {
        return Err(SubjectError::InvalidToken);
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_plain(b) {
            out.push(b);
            i += 1;
        } else if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(SubjectError::InvalidToken);
            };
            let decoded = (hi << 4) | lo;
            if is_plain(decoded) {
                // Never produced: plain bytes are not escaped (keeps the mapping one-to-one).
                return Err(SubjectError::InvalidToken);
            }
            out.push(decoded);
            i += 3;
        } else {
            return Err(SubjectError::InvalidToken);
        }
    }
    String::from_utf8(out).map_err(|_| SubjectError::InvalidToken)
}

/// The JetStream message id (`Nats-Msg-Id`) of a message:
/// `<kind>:<graph>:<window_start_ms>[:<qualifier>]`, the qualifier being the model version of a
/// result, or the producer (replica and process incarnation) of a snapshot, so that partial
/// snapshots of one window from several replicas are all kept.
///
/// The graph id and qualifier are escaped like subject tokens, so the id is unambiguous
/// (neither can contain `:`) and a safe header value (no whitespace or control characters).
/// Publishing the same id twice within the stream's duplicate window stores it once.
pub fn msg_id(
    kind: MessageKind,
    graph: &str,
    window_start_ms: i64,
    qualifier: Option<&str>,
) -> String {
    let mut id = format!("{kind}:{}:{window_start_ms}", subject_token(graph));
    if let Some(q) = qualifier {
        id.push(':');
        id.push_str(&subject_token(q));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_names() {
        let n = Names::default();
        assert_eq!(n.snapshots_stream(), "MESHWATCH_SNAPSHOTS");
        assert_eq!(n.results_stream(), "MESHWATCH_RESULTS");
        assert_eq!(n.snapshot_subject("prod"), "meshwatch.v1.snapshots.prod");
        assert_eq!(n.score_subject("prod"), "meshwatch.v1.scores.prod");
        assert_eq!(n.forecast_subject("prod"), "meshwatch.v1.forecasts.prod");
        assert_eq!(n.dlq_subject(MessageKind::Score), "meshwatch.v1.dlq.score");
        assert_eq!(n.snapshots_stream_subjects(), ["meshwatch.v1.snapshots.>"]);
        assert_eq!(
            n.results_stream_subjects(),
            [
                "meshwatch.v1.scores.>",
                "meshwatch.v1.forecasts.>",
                "meshwatch.v1.dlq.>"
            ]
        );
    }

    #[test]
    fn namespaced_names() {
        let n = Names::new(Some("t42")).expect("valid");
        assert_eq!(n.snapshots_stream(), "t42_MESHWATCH_SNAPSHOTS");
        assert_eq!(
            n.snapshot_subject("a.b"),
            "t42.meshwatch.v1.snapshots.a%2Eb"
        );
        assert_eq!(Names::new(Some("a.b")), Err(SubjectError::InvalidNamespace));
        assert_eq!(Names::new(Some("")), Err(SubjectError::InvalidNamespace));
        assert_eq!(
            Names::new(Some(&"x".repeat(33))),
            Err(SubjectError::InvalidNamespace)
        );
    }

    #[test]
    fn tokens_escape_what_nats_forbids() {
        assert_eq!(subject_token("prod-eu_1"), "prod-eu_1");
        assert_eq!(subject_token("prod/eu-west-1"), "prod%2Feu-west-1");
        assert_eq!(subject_token("a.b*c>d e\tf"), "a%2Eb%2Ac%3Ed%20e%09f");
        assert_eq!(subject_token("50%"), "50%25");
        assert_eq!(subject_token("k:v"), "k%3Av");
        assert_eq!(subject_token("é"), "%C3%A9");
        assert_eq!(subject_token(""), "%");
        for g in ["", "prod", "a.b", "x y", "%", "%2E", "é/ü:.*>", "\n"] {
            let t = subject_token(g);
            assert!(!t.is_empty());
            assert!(
                !t.contains(['.', '*', '>', ' ', '\t', '\n', '\r', ':']),
                "{t}"
            );
            assert_eq!(graph_from_token(&t).as_deref(), Ok(g));
        }
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for t in ["", "a%", "a%2", "a%zz", "a%2e", "%41", "a.b", "%C3"] {
            assert_eq!(graph_from_token(t), Err(SubjectError::InvalidToken), "{t}");
        }
    }

    #[test]
    fn message_ids() {
        assert_eq!(
            msg_id(MessageKind::Snapshot, "prod", 1_764_000_000_000, None),
            "snapshot:prod:1764000000000"
        );
        assert_eq!(
            msg_id(MessageKind::Score, "a:b", -30_000, Some("gcn-1.2:rc\n")),
            "score:a%3Ab:-30000:gcn-1%2E2%3Arc%0A"
        );
    }
}
