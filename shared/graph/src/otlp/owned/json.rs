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

mod scalars;

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use thiserror::Error;

use self::scalars::{Base64, Double, Enum, Hex, Int, SpanKindNames, StatusCodeNames};

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

fn list<T, U: From<T>>(items: Option<Vec<T>>) -> Vec<U> {
    items.unwrap_or_default().into_iter().map(U::from).collect()
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
struct JResource {
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
    #[serde(alias = "entity_refs")]
    entity_refs: Option<Vec<JEntityRef>>,
}

impl From<JResource> for Resource {
    fn from(j: JResource) -> Self {
        Self {
            attributes: list(j.attributes),
            dropped_attributes_count: Int::get(j.dropped_attributes_count),
            entity_refs: list(j.entity_refs),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JEntityRef {
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
    r#type: Option<String>,
    #[serde(alias = "id_keys")]
    id_keys: Option<Vec<String>>,
    #[serde(alias = "description_keys")]
    description_keys: Option<Vec<String>>,
}

impl From<JEntityRef> for EntityRef {
    fn from(j: JEntityRef) -> Self {
        Self {
            schema_url: j.schema_url.unwrap_or_default(),
            r#type: j.r#type.unwrap_or_default(),
            id_keys: j.id_keys.unwrap_or_default(),
            description_keys: j.description_keys.unwrap_or_default(),
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
struct JScope {
    name: Option<String>,
    version: Option<String>,
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<Int<u32>>,
}

impl From<JScope> for InstrumentationScope {
    fn from(j: JScope) -> Self {
        Self {
            name: j.name.unwrap_or_default(),
            version: j.version.unwrap_or_default(),
            attributes: list(j.attributes),
            dropped_attributes_count: Int::get(j.dropped_attributes_count),
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JKeyValue {
    key: Option<String>,
    value: Option<JAnyValue>,
    #[serde(alias = "key_strindex")]
    key_strindex: Option<Int<i32>>,
}

impl From<JKeyValue> for KeyValue {
    fn from(j: JKeyValue) -> Self {
        Self {
            key: j.key.unwrap_or_default(),
            value: j.value.map(|v| AnyValue { value: v.0 }),
            key_strindex: Int::get(j.key_strindex),
        }
    }
}

#[derive(Deserialize)]
struct JArrayValue {
    values: Option<Vec<JAnyValue>>,
}

#[derive(Deserialize)]
struct JKeyValueList {
    values: Option<Vec<JKeyValue>>,
}

/// `AnyValue`: an object with (at most) one of the oneof members; with several, the last wins.
struct JAnyValue(Option<any_value::Value>);

impl From<JAnyValue> for AnyValue {
    fn from(j: JAnyValue) -> Self {
        AnyValue { value: j.0 }
    }
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum AnyValueField {
    #[serde(rename = "stringValue", alias = "string_value")]
    String,
    #[serde(rename = "boolValue", alias = "bool_value")]
    Bool,
    #[serde(rename = "intValue", alias = "int_value")]
    Int,
    #[serde(rename = "doubleValue", alias = "double_value")]
    Double,
    #[serde(rename = "arrayValue", alias = "array_value")]
    Array,
    #[serde(rename = "kvlistValue", alias = "kvlist_value")]
    Kvlist,
    #[serde(rename = "bytesValue", alias = "bytes_value")]
    Bytes,
    #[serde(rename = "stringValueStrindex", alias = "string_value_strindex")]
    StringStrindex,
    #[serde(other)]
    Unknown,
}

impl<'de> Deserialize<'de> for JAnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JAnyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AnyValue object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JAnyValue, A::Error> {
                use any_value::Value;
                let mut value = None;
                while let Some(field) = map.next_key::<AnyValueField>()? {
                    let next = match field {
                        AnyValueField::String => {
                            map.next_value::<Option<String>>()?.map(Value::StringValue)
                        }
                        AnyValueField::Bool => {
                            map.next_value::<Option<bool>>()?.map(Value::BoolValue)
                        }
                        AnyValueField::Int => map
                            .next_value::<Option<Int<i64>>>()?
                            .map(|v| Value::IntValue(v.0)),
                        AnyValueField::Double => map
                            .next_value::<Option<Double>>()?
                            .map(|v| Value::DoubleValue(v.0)),
                        AnyValueField::Array => map.next_value::<Option<JArrayValue>>()?.map(|a| {
                            Value::ArrayValue(ArrayValue {
                                values: list(a.values),
                            })
                        }),
                        AnyValueField::Kvlist => {
                            map.next_value::<Option<JKeyValueList>>()?.map(|l| {
                                Value::KvlistValue(KeyValueList {
                                    values: list(l.values),
                                })
                            })
                        }
                        AnyValueField::Bytes => map
                            .next_value::<Option<Base64>>()?
                            .map(|b| Value::BytesValue(b.0)),
                        AnyValueField::StringStrindex => map
                            .next_value::<Option<Int<i32>>>()?
                            .map(|v| Value::StringValueStrindex(v.0)),
                        AnyValueField::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            None
                        }
                    };
                    if next.is_some() {
                        value = next;
                    }
                }
                Ok(JAnyValue(value))
            }
        }
        d.deserialize_map(V)
    }
}
