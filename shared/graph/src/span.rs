//! Borrowed views of the parts of an OTLP span that a service graph needs.
//!
//! Every decoder (the zero-copy protobuf scanner, the owned prost/JSON path, and Zipkin through
//! it) yields the same views, and validation happens once, here, so that all inputs get the same
//! decisions.

/// OTLP span kind (`opentelemetry.proto.trace.v1.Span.SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// Maps the OTLP enum value; values outside the enum are treated as unspecified, as the
    /// protobuf rules for open enums require.
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }
}

/// OTLP status code value for ERROR (`Status.StatusCode.STATUS_CODE_ERROR`).
pub const STATUS_CODE_ERROR: i32 = 2;

/// The resource attributes the graph needs, borrowed from the request.
///
/// `graph_values[i]` is the string value of the i-th configured graph-id attribute
/// ([`ResourceKeys::graph_keys`]), if the resource has it; `service_values[i]` likewise for the
/// i-th service attribute ([`ResourceKeys::service_keys`], resolved by
/// [`crate::service::service_name`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceView<'a> {
    /// Values of the configured service attributes, in configuration order (inline).
    pub service_values: GraphValues<'a>,
    /// Values of the configured graph-id attributes, in configuration order (inline up to four
    /// keys: no allocation per resource on the hot path).
    pub graph_values: GraphValues<'a>,
}

/// Most graph-id attributes that can be configured.
pub const MAX_GRAPH_KEYS: usize = 8;

/// Values of the graph-id attributes of one resource, stored inline (no allocation per
/// resource on the hot path). Dereferences to a slice of the configured length.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphValues<'a> {
    values: [Option<&'a str>; MAX_GRAPH_KEYS],
    len: usize,
}

impl<'a> GraphValues<'a> {
    /// `n` absent values (`n` is capped at [`MAX_GRAPH_KEYS`]).
    pub fn none(n: usize) -> Self {
        Self {
            values: [None; MAX_GRAPH_KEYS],
            len: n.min(MAX_GRAPH_KEYS),
        }
    }

    /// The values as given (at most [`MAX_GRAPH_KEYS`]).
    pub fn from_slice(values: &[Option<&'a str>]) -> Self {
        let mut v = Self::none(values.len());
        v.values[..v.len].copy_from_slice(&values[..v.len]);
        v
    }
}

impl<'a> std::ops::Deref for GraphValues<'a> {
    type Target = [Option<&'a str>];

    fn deref(&self) -> &Self::Target {
        &self.values[..self.len]
    }
}

impl std::ops::DerefMut for GraphValues<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.values[..self.len]
    }
}

impl PartialEq for GraphValues<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for GraphValues<'_> {}

impl<'a> PartialEq<Vec<Option<&'a str>>> for GraphValues<'a> {
    fn eq(&self, other: &Vec<Option<&'a str>>) -> bool {
        **self == other[..]
    }
}

/// The span attributes the graph needs (semantic conventions, old names as fallbacks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanAttrs<'a> {
    /// `peer.service`.
    pub peer_service: Option<&'a str>,
    /// `server.address`, else `net.peer.name`.
    pub server_address: Option<&'a str>,
    /// `db.system.name`, else `db.system`.
    pub db_system: Option<&'a str>,
    /// `db.namespace`, else `db.name`.
    pub db_namespace: Option<&'a str>,
    /// `messaging.system`.
    pub messaging_system: Option<&'a str>,
    /// `messaging.destination.name`.
    pub messaging_destination: Option<&'a str>,
}

/// One span as decoded, before validation. Ids are raw bytes so that validation of their
/// lengths happens in one place ([`SpanView::validate`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanView<'a> {
    /// Index of the span's resource in [`DecodedTraces::resources`].
    pub resource: u32,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    /// Empty for a root span.
    pub parent_span_id: &'a [u8],
    /// Raw OTLP kind value ([`SpanKind::from_otlp`]).
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// Raw OTLP status code value.
    pub status_code: i32,
    pub attrs: SpanAttrs<'a>,
}

/// A decoded OTLP trace request: resources and their spans, borrowed from the request bytes
/// (or from an owned request for the JSON path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedTraces<'a> {
    pub resources: Vec<ResourceView<'a>>,
    pub spans: Vec<SpanView<'a>>,
}

impl DecodedTraces<'_> {
    /// Clears both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.resources.clear();
        self.spans.clear();
    }

    /// Empties the lists and hands their allocations over to views of another borrow, so that
    /// one `DecodedTraces` can serve request after request without re-growing its vectors.
    ///
    /// The views' types differ only in their lifetime, so the standard library's in-place
    /// `collect` reuses the allocations; no element is ever produced.
    pub fn recycle<'b>(self) -> DecodedTraces<'b> {
        fn reuse<T, U>(mut v: Vec<T>) -> Vec<U> {
            v.clear();
            v.into_iter().filter_map(|_| None).collect()
        }
        DecodedTraces {
            resources: reuse(self.resources),
            spans: reuse(self.spans),
        }
    }
}

/// Which attribute keys to extract. The span attribute keys are fixed by the semantic
/// conventions; the graph-id and service resource keys are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKeys {
    /// Resource attributes whose values, joined, name the graph.
    pub graph_keys: Vec<String>,
    /// Resource attributes that name the service, first non-empty value first
    /// ([`crate::service::service_name`]); at most [`MAX_GRAPH_KEYS`] are read.
    pub service_keys: Vec<String>,
}

impl Default for ResourceKeys {
    fn default() -> Self {
        Self {
            graph_keys: vec![
                "k8s.cluster.name".to_owned(),
                "deployment.environment.name".to_owned(),
            ],
            service_keys: crate::service::default_service_keys(),
        }
    }
}

/// Why a span was rejected. Closed set: used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// trace id not 16 bytes, or all zero.
    InvalidTraceId,
    /// span id not 8 bytes, or all zero.
    InvalidSpanId,
    /// parent span id neither empty nor 8 bytes.
    InvalidParentSpanId,
    /// end time before start time, or a zero timestamp.
    InvalidTimestamps,
    /// end time further in the future than the allowed clock skew.
    FutureTimestamp,
}

impl RejectReason {
    pub const ALL: [RejectReason; 5] = [
        Self::InvalidTraceId,
        Self::InvalidSpanId,
        Self::InvalidParentSpanId,
        Self::InvalidTimestamps,
        Self::FutureTimestamp,
    ];

    /// Stable label for metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTraceId => "invalid_trace_id",
            Self::InvalidSpanId => "invalid_span_id",
            Self::InvalidParentSpanId => "invalid_parent_span_id",
            Self::InvalidTimestamps => "invalid_timestamps",
            Self::FutureTimestamp => "future_timestamp",
        }
    }

    /// Human-readable explanation, for `partial_success.error_message`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::InvalidTraceId => "trace_id must be 16 bytes and not all zero",
            Self::InvalidSpanId => "span_id must be 8 bytes and not all zero",
            Self::InvalidParentSpanId => "parent_span_id must be empty or 8 bytes",
            Self::InvalidTimestamps => {
                "start_time_unix_nano and end_time_unix_nano must be set and end must not precede start"
            }
            Self::FutureTimestamp => {
                "end_time_unix_nano is further in the future than the allowed clock skew"
            }
        }
    }
}

/// Validated ids of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
}

impl SpanView<'_> {
    /// Checks ids and timestamps. `now_unix_nano` with `max_future_skew_nanos` bounds end times
    /// from above (pass `None` offline, where wall time means nothing).
    pub fn validate(
        &self,
        now_unix_nano: Option<u64>,
        max_future_skew_nanos: u64,
    ) -> Result<SpanIds, RejectReason> {
        let trace_id: [u8; 16] = self
            .trace_id
            .try_into()
            .map_err(|_| RejectReason::InvalidTraceId)?;
        if trace_id == [0; 16] {
            return Err(RejectReason::InvalidTraceId);
        }
        let span_id: [u8; 8] = self
            .span_id
            .try_into()
            .map_err(|_| RejectReason::InvalidSpanId)?;
        if span_id == [0; 8] {
            return Err(RejectReason::InvalidSpanId);
        }
        let parent_span_id = match self.parent_span_id.len() {
            0 => None,
            8 => {
                let p: [u8; 8] = self
                    .parent_span_id
                    .try_into()
                    .map_err(|_| RejectReason::InvalidParentSpanId)?;
                // An all-zero parent is how some exporters write "no parent".
                (p != [0; 8]).then_some(p)
            }
            _ => return Err(RejectReason::InvalidParentSpanId),
        };
        if self.start_time_unix_nano == 0
            || self.end_time_unix_nano == 0
            || self.end_time_unix_nano < self.start_time_unix_nano
        {
            return Err(RejectReason::InvalidTimestamps);
        }
        if let Some(now) = now_unix_nano
            && self.end_time_unix_nano > now.saturating_add(max_future_skew_nanos)
        {
            return Err(RejectReason::FutureTimestamp);
        }
        Ok(SpanIds {
            trace_id,
            span_id,
            parent_span_id,
        })
    }
}
