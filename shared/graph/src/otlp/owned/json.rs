//! OTLP/JSON trace requests (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>).
//!
//! The `with-serde` derives of `opentelemetry-proto` fall short of the spec: they ignore
//! snake_case keys (silently dropping e.g. `resource_spans`), reject enum names
//! (`"SPAN_KIND_SERVER"`), 32-bit integers given as strings, and `null` for a field with a
//! custom deserializer. So the JSON is read into the mirror structs below and converted.
//!
//! Accepted, per the spec and the protobuf JSON mapping it refers to:
//! - keys in lowerCamelCase, and the original snake_case names;
//! - `traceId`, `spanId`, `parentSpanId` (spans and links) as hex strings, either case; other
//!   bytes (`bytesValue`) as base64, standard or URL-safe, padding optional;
//! - enums (`kind`, `status.code`) as integers, numeric strings, or enum value names; an unknown
//!   name is an error, as in the OpenTelemetry Collector;
//! - integers of any width as JSON numbers or decimal strings; doubles as numbers or the strings
//!   `"NaN"`, `"Infinity"`, `"-Infinity"` or a decimal;
//! - `null` for any field: its default;
//! - unknown fields are ignored.
//!
//! Invalid UTF-8, malformed JSON, and values of the wrong type are errors, never panics.
//! `serde_json`'s nesting limit (128) bounds the recursion of nested attribute values.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde::Deserialize;
use thiserror::Error;

use crate::otlp::protojson::scalars::{Enum, EnumNames, Hex, Int};
use crate::otlp::protojson::{JKeyValue, JResource, JScope, list};

struct SpanKindNames;

impl EnumNames for SpanKindNames {
    fn value_of(name: &str) -> Option<i32> {
        span::SpanKind::from_str_name(name).map(|k| k as i32)
    }
}

struct StatusCodeNames;

impl EnumNames for StatusCodeNames {
    fn value_of(name: &str) -> Option<i32> {
        status::StatusCode::from_str_name(name).map(|c| c as i32)
    }
}

/// Why an OTLP/JSON body could not be decoded.
#[derive(Debug, Error)]
pub enum JsonError {
    /// Malformed JSON, invalid UTF-8, or a value of the wrong type or format; the message
    /// names the problem and its line and column.
    /// (The cause is in the message, not also a `source`, so an error chain names it once.)
    #[error("invalid OTLP/JSON trace request: {0}")]
    Invalid(serde_json::Error),
}

impl From<serde_json::Error> for JsonError {
    fn from(error: serde_json::Error) -> Self {
        Self::Invalid(error)
    }
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    let req: JRequest = serde_json::from_slice(body)?;
    Ok(req.into())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JRequest {
    #[serde(alias = "resource_spans")]
    resource_spans: Option<Vec<JResourceSpans>>,
}

impl From<JRequest> for ExportTraceServiceRequest {
    fn from(j: JRequest) -> Self {
        Self {
            resource_spans: list(j.resource_spans),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JResourceSpans {
    resource: Option<JResource>,
    #[serde(alias = "scope_spans")]
    scope_spans: Option<Vec<JScopeSpans>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl From<JResourceSpans> for ResourceSpans {
    fn from(j: JResourceSpans) -> Self {
        Self {
            resource: j.resource.map(Resource::from),
            scope_spans: list(j.scope_spans),
            schema_url: j.schema_url.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JScopeSpans {
    scope: Option<JScope>,
    spans: Option<Vec<JSpan>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl From<JScopeSpans> for ScopeSpans {
    fn from(j: JScopeSpans) -> Self {
        Self {
            scope: j.scope.map(InstrumentationScope::from),
            spans: list(j.spans),
            schema_url: j.schema_url.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JSpan {
    #[serde(alias = "trace_id")]
    trace_id: Option<Hex>,
    #[serde(alias = "span_id")]
    span_id: Option<Hex>,
    #[serde(alias = "trace_state")]
    trace_state: Option<String>,
    #[serde(alias = "parent_span_id")]
    parent_span_id: Option<Hex>,
    flags: Option<Int<u32>>,
    name: Option<String>,
    kind: Option<Enum<SpanKindNames>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<Int<u64>>,
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    events: Option<Vec<JEvent>>,
    #[serde(alias = "dropped_events_count")]
    dropped_events_count: Option<Int<u32>>,
    links: Option<Vec<JLink>>,
    #[serde(alias = "dropped_links_count")]
    dropped_links_count: Option<Int<u32>>,
    status: Option<JStatus>,
}

impl From<JSpan> for Span {
    fn from(j: JSpan) -> Self {
        Self {
            trace_id: Hex::get(j.trace_id),
            span_id: Hex::get(j.span_id),
            trace_state: j.trace_state.unwrap_or_default(),
            parent_span_id: Hex::get(j.parent_span_id),
            flags: Int::get(j.flags),
            name: j.name.unwrap_or_default(),
            kind: Enum::get(j.kind),
            start_time_unix_nano: Int::get(j.start_time_unix_nano),
            end_time_unix_nano: Int::get(j.end_time_unix_nano),
            attributes: list(j.attributes),
            dropped_attributes_count: Int::get(j.dropped_attributes_count),
            events: list(j.events),
            dropped_events_count: Int::get(j.dropped_events_count),
            links: list(j.links),
            dropped_links_count: Int::get(j.dropped_links_count),
            status: j.status.map(Status::from),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JEvent {
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    name: Option<String>,
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
}

impl From<JEvent> for span::Event {
    fn from(j: JEvent) -> Self {
        Self {
            time_unix_nano: Int::get(j.time_unix_nano),
            name: j.name.unwrap_or_default(),
            attributes: list(j.attributes),
            dropped_attributes_count: Int::get(j.dropped_attributes_count),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JLink {
    #[serde(alias = "trace_id")]
    trace_id: Option<Hex>,
    #[serde(alias = "span_id")]
    span_id: Option<Hex>,
    #[serde(alias = "trace_state")]
    trace_state: Option<String>,
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    flags: Option<Int<u32>>,
}

impl From<JLink> for span::Link {
    fn from(j: JLink) -> Self {
        Self {
            trace_id: Hex::get(j.trace_id),
            span_id: Hex::get(j.span_id),
            trace_state: j.trace_state.unwrap_or_default(),
            attributes: list(j.attributes),
            dropped_attributes_count: Int::get(j.dropped_attributes_count),
            flags: Int::get(j.flags),
        }
    }
}

#[derive(Deserialize)]
struct JStatus {
    message: Option<String>,
    code: Option<Enum<StatusCodeNames>>,
}

impl From<JStatus> for Status {
    fn from(j: JStatus) -> Self {
        Self {
            message: j.message.unwrap_or_default(),
            code: Enum::get(j.code),
        }
    }
}
