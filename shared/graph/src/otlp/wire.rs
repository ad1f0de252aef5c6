//! A targeted zero-copy scanner of the protobuf encoding of
//! `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
//!
//! It walks only the messages on the path to what a service graph needs
//! (`ExportTraceServiceRequest.resource_spans` → `ResourceSpans.{resource, scope_spans}` →
//! `Resource.attributes`, `ScopeSpans.spans` → `Span.{ids, kind, times, attributes, status}` →
//! `KeyValue` → `AnyValue.string_value`, `Status.code`) and borrows ids and strings from the
//! input. Everything else is skipped by its wire type, without allocation and without looking
//! inside.
//!
//! # Decisions, compared with `prost` decoding the full message
//! For every input, the scanner takes the decision `prost` would take on a *reduced* schema that
//! declares the same fields with the same types, but declares the length-delimited fields the
//! scanner does not read as opaque `bytes` (tested in `tests/otlp/differential.rs`):
//! - the same varint rules (at most 10 bytes, no bits beyond 64; non-minimal encodings are
//!   accepted), field keys (tag ≥ 1, key ≤ `u32::MAX`, wire types 0–5) and length checks;
//! - a known field of the walked messages with the wrong wire type is an error, whether or not its
//!   value is read; unknown fields are skipped for every wire type, groups included (`prost`
//!   skips unknown groups and rejects a stray end-group), with `prost`'s recursion limit of 100
//!   counted the way `prost` counts it;
//! - the last occurrence of a scalar field wins; a message field given twice is merged (e.g. two
//!   `status` fields: the last `code` wins); the `AnyValue` oneof keeps its last member;
//! - the strings it returns are checked to be UTF-8.
//!
//! So on a well-formed request the result equals `prost` + [`super::owned::views_from_owned`].
//! The one accepted difference: `prost` also checks what the scanner skips (UTF-8 of the span
//! name and other strings, the structure of events, links, scope, nested attribute values, and
//! attributes whose key the graph does not read), so it rejects some requests the scanner
//! accepts. It never accepts one the scanner rejects.

use thiserror::Error;

mod reader;

use self::reader::Reader;
use super::attrs::{SpanAttrSlots, empty_resource, resource_key_wanted, set_resource_attr};
use crate::span::{AttributeKeys, DecodedTraces, ResourceView, SpanView};

/// Protobuf wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    I64,
    Len,
    StartGroup,
    EndGroup,
    I32,
}

impl std::fmt::Display for WireType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Varint => "VARINT",
            Self::I64 => "I64",
            Self::Len => "LEN",
            Self::StartGroup => "SGROUP",
            Self::EndGroup => "EGROUP",
            Self::I32 => "I32",
        })
    }
}

/// Why a request could not be scanned. `path` names the message being read (from the request
/// down), `field` its field number, `offset` the byte offset in the request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error(
        "{path}: invalid varint at byte {offset} (truncated, longer than 10 bytes, or over 64 bits)"
    )]
    InvalidVarint { path: &'static str, offset: usize },
    #[error("{path}: invalid field key {key:#x} at byte {offset}")]
    InvalidKey {
        path: &'static str,
        offset: usize,
        key: u64,
    },
    #[error("{path}: field {field} has wire type {actual}, expected {expected} (byte {offset})")]
    WrongWireType {
        path: &'static str,
        field: u32,
        offset: usize,
        actual: WireType,
        expected: WireType,
    },
    #[error("{path}: field {field} at byte {offset} needs {needed} bytes, {available} left")]
    Truncated {
        path: &'static str,
        field: u32,
        offset: usize,
        needed: u64,
        available: usize,
    },
    #[error("{path}: end-group tag of field {field} without a matching start (byte {offset})")]
    UnexpectedEndGroup {
        path: &'static str,
        field: u32,
        offset: usize,
    },
    #[error("{path}: groups nested deeper than the recursion limit at byte {offset}")]
    RecursionLimit { path: &'static str, offset: usize },
    #[error("{path}: field {field} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        path: &'static str,
        field: u32,
        offset: usize,
    },
    #[error("more resources than a u32 can index (byte {offset})")]
    TooManyResources { offset: usize },
}

const P_REQUEST: &str = "ExportTraceServiceRequest";
const P_RESOURCE_SPANS: &str = "resource_spans";
const P_RESOURCE: &str = "resource_spans.resource";
const P_RESOURCE_ATTR: &str = "resource_spans.resource.attributes";
const P_RESOURCE_VALUE: &str = "resource_spans.resource.attributes.value";
const P_SCOPE_SPANS: &str = "resource_spans.scope_spans";
const P_SPAN: &str = "resource_spans.scope_spans.spans";
const P_SPAN_ATTR: &str = "resource_spans.scope_spans.spans.attributes";
const P_SPAN_VALUE: &str = "resource_spans.scope_spans.spans.attributes.value";
const P_STATUS: &str = "resource_spans.scope_spans.spans.status";

// The recursion budget `prost` has left when it skips an unknown field of each message: 100 at
// the top level, one less per nested message. Only nested unknown groups can exhaust it.
const DEPTH_REQUEST: u32 = 100;
const DEPTH_RESOURCE_SPANS: u32 = 99;
const DEPTH_RESOURCE: u32 = 98;
const DEPTH_SCOPE_SPANS: u32 = 98;
const DEPTH_RESOURCE_ATTR: u32 = 97;
const DEPTH_RESOURCE_VALUE: u32 = 96;
const DEPTH_SPAN: u32 = 97;
const DEPTH_SPAN_ATTR: u32 = 96;
const DEPTH_SPAN_VALUE: u32 = 95;
const DEPTH_STATUS: u32 = 96;

/// Scans an encoded `ExportTraceServiceRequest` into `out` (cleared first, capacity kept).
///
/// Ids and strings in `out` borrow from `buf`. On error, the content of `out` is unspecified and
/// the caller discards it. An empty buffer is a valid, empty request.
pub fn decode_traces<'a>(
    buf: &'a [u8],
    keys: &AttributeKeys,
    out: &mut DecodedTraces<'a>,
) -> Result<(), WireError> {
    out.clear();
    let mut r = Reader::new(buf, 0);
    while r.has_more() {
        let (tag, wt) = r.key(P_REQUEST)?;
        if tag == 1 {
            let rs = r.len_field(P_REQUEST, tag, wt)?;
            resource_spans(rs, keys, out)?;
        } else {
            r.skip_unknown(P_REQUEST, tag, wt, DEPTH_REQUEST)?;
        }
    }
    Ok(())
}

/// `ResourceSpans`: the resource view is pushed when the message ends, so that `resource` may
/// come before, after or between the `scope_spans` (spans carry its index).
fn resource_spans<'a>(
    mut r: Reader<'a>,
    keys: &AttributeKeys,
    out: &mut DecodedTraces<'a>,
) -> Result<(), WireError> {
    let index = u32::try_from(out.resources.len())
        .map_err(|_| WireError::TooManyResources { offset: r.base })?;
    let mut view = empty_resource(keys);
    while r.has_more() {
        let (tag, wt) = r.key(P_RESOURCE_SPANS)?;
        match tag {
            1 => resource(r.len_field(P_RESOURCE_SPANS, tag, wt)?, keys, &mut view)?,
            2 => scope_spans(
                r.len_field(P_RESOURCE_SPANS, tag, wt)?,
                index,
                &mut out.spans,
            )?,
            3 => r.skip_known(P_RESOURCE_SPANS, tag, wt, WireType::Len)?,
            _ => r.skip_unknown(P_RESOURCE_SPANS, tag, wt, DEPTH_RESOURCE_SPANS)?,
        }
    }
    out.resources.push(view);
    Ok(())
}

/// `Resource` (merged into `view` if given twice).
fn resource<'a>(
    mut r: Reader<'a>,
    keys: &AttributeKeys,
    view: &mut ResourceView<'a>,
) -> Result<(), WireError> {
    while r.has_more() {
        let (tag, wt) = r.key(P_RESOURCE)?;
        match tag {
            1 => {
                let kv = r.len_field(P_RESOURCE, tag, wt)?;
                let attr = KeyValue::scan(kv, P_RESOURCE_ATTR, DEPTH_RESOURCE_ATTR)?;
                if resource_key_wanted(keys, attr.key) {
                    let value = attr.string_value(P_RESOURCE_VALUE, DEPTH_RESOURCE_VALUE)?;
                    set_resource_attr(view, keys, attr.key, value);
                }
            }
            2 => r.skip_known(P_RESOURCE, tag, wt, WireType::Varint)?,
            3 => r.skip_known(P_RESOURCE, tag, wt, WireType::Len)?,
            _ => r.skip_unknown(P_RESOURCE, tag, wt, DEPTH_RESOURCE)?,
        }
    }
    Ok(())
}

/// `ScopeSpans`: pushes its spans.
fn scope_spans<'a>(
    mut r: Reader<'a>,
    resource: u32,
    spans: &mut Vec<SpanView<'a>>,
) -> Result<(), WireError> {
    while r.has_more() {
        let (tag, wt) = r.key(P_SCOPE_SPANS)?;
        match tag {
            2 => spans.push(span(r.len_field(P_SCOPE_SPANS, tag, wt)?, resource)?),
            1 | 3 => r.skip_known(P_SCOPE_SPANS, tag, wt, WireType::Len)?,
            _ => r.skip_unknown(P_SCOPE_SPANS, tag, wt, DEPTH_SCOPE_SPANS)?,
        }
    }
    Ok(())
}

/// `Span`.
#[inline]
fn span(mut r: Reader<'_>, resource: u32) -> Result<SpanView<'_>, WireError> {
    let mut view = SpanView {
        resource,
        ..SpanView::default()
    };
    let mut slots = SpanAttrSlots::default();
    while r.has_more() {
        let (tag, wt) = r.key(P_SPAN)?;
        match tag {
            1 => view.trace_id = r.len_field(P_SPAN, tag, wt)?.buf,
            2 => view.span_id = r.len_field(P_SPAN, tag, wt)?.buf,
            4 => view.parent_span_id = r.len_field(P_SPAN, tag, wt)?.buf,
            // int32 enum: the low 32 bits of the varint, as protobuf specifies.
            6 => view.kind = r.varint_field(P_SPAN, tag, wt)? as i32,
            7 => view.start_time_unix_nano = r.fixed64_field(P_SPAN, tag, wt)?,
            8 => view.end_time_unix_nano = r.fixed64_field(P_SPAN, tag, wt)?,
            9 => {
                let kv = r.len_field(P_SPAN, tag, wt)?;
                let attr = KeyValue::scan(kv, P_SPAN_ATTR, DEPTH_SPAN_ATTR)?;
                if let Some(slot) = slots.slot(attr.key) {
                    *slot = attr.string_value(P_SPAN_VALUE, DEPTH_SPAN_VALUE)?;
                }
            }
            15 => status(r.len_field(P_SPAN, tag, wt)?, &mut view.status_code)?,
            // trace_state, name, events, links.
            3 | 5 | 11 | 13 => r.skip_known(P_SPAN, tag, wt, WireType::Len)?,
            // dropped_{attributes,events,links}_count.
            10 | 12 | 14 => r.skip_known(P_SPAN, tag, wt, WireType::Varint)?,
            // flags.
            16 => r.skip_known(P_SPAN, tag, wt, WireType::I32)?,
            _ => r.skip_unknown(P_SPAN, tag, wt, DEPTH_SPAN)?,
        }
    }
    view.attrs = slots.finish();
    Ok(view)
}

/// `Status`, merged into `code` (a second `status` field updates what the first set).
#[inline]
fn status(mut r: Reader<'_>, code: &mut i32) -> Result<(), WireError> {
    while r.has_more() {
        let (tag, wt) = r.key(P_STATUS)?;
        match tag {
            3 => *code = r.varint_field(P_STATUS, tag, wt)? as i32,
            2 => r.skip_known(P_STATUS, tag, wt, WireType::Len)?,
            _ => r.skip_unknown(P_STATUS, tag, wt, DEPTH_STATUS)?,
        }
    }
    Ok(())
}

/// A `KeyValue` after one pass: its (last) key, and where its value is.
struct KeyValue<'a> {
    /// The whole message, for a second pass when the value occurs more than once.
    msg: Reader<'a>,
    path: &'static str,
    key: &'a [u8],
    /// The only `value` occurrence, if exactly one.
    value: Option<Reader<'a>>,
    values: u32,
}

impl<'a> KeyValue<'a> {
    /// Reads the key and checks the structure of the message; the value is not looked into.
    #[inline]
    fn scan(msg: Reader<'a>, path: &'static str, depth: u32) -> Result<Self, WireError> {
        let mut kv = KeyValue {
            msg,
            path,
            key: &[],
            value: None,
            values: 0,
        };
        let mut r = msg;
        while r.has_more() {
            let (tag, wt) = r.key(path)?;
            match tag {
                1 => kv.key = r.len_field(path, tag, wt)?.buf,
                2 => {
                    kv.value = Some(r.len_field(path, tag, wt)?);
                    kv.values = kv.values.saturating_add(1);
                }
                // key_strindex (int32).
                3 => r.skip_known(path, tag, wt, WireType::Varint)?,
                _ => r.skip_unknown(path, tag, wt, depth)?,
            }
        }
        Ok(kv)
    }

    /// The string value, if the (merged) `AnyValue` holds one. Checks the value's structure and
    /// the string's UTF-8.
    #[inline]
    fn string_value(
        &self,
        value_path: &'static str,
        depth: u32,
    ) -> Result<Option<&'a str>, WireError> {
        let mut state = AnyValue::Empty;
        match self.value {
            None => return Ok(None),
            Some(value) if self.values == 1 => any_value(value, value_path, depth, &mut state)?,
            Some(_) => {
                // `value` given several times: protobuf merges the occurrences in order.
                // Structure and wire types were checked by `scan`.
                let mut r = self.msg;
                while r.has_more() {
                    let (tag, wt) = r.key(self.path)?;
                    if tag == 2 {
                        any_value(
                            r.len_field(self.path, tag, wt)?,
                            value_path,
                            depth,
                            &mut state,
                        )?;
                    } else {
                        r.skip_unknown(self.path, tag, wt, u32::MAX)?;
                    }
                }
            }
        }
        match state {
            AnyValue::Str(s) => {
                std::str::from_utf8(s.buf)
                    .map(Some)
                    .map_err(|_| WireError::InvalidUtf8 {
                        path: value_path,
                        field: 1,
                        offset: s.base,
                    })
            }
            AnyValue::Empty | AnyValue::Other => Ok(None),
        }
    }
}

/// The state of an `AnyValue` oneof as its fields are merged in.
enum AnyValue<'a> {
    Empty,
    Str(Reader<'a>),
    Other,
}

/// Merges one `AnyValue` occurrence into `state`: the last oneof member wins.
#[inline]
fn any_value<'a>(
    mut r: Reader<'a>,
    path: &'static str,
    depth: u32,
    state: &mut AnyValue<'a>,
) -> Result<(), WireError> {
    while r.has_more() {
        let (tag, wt) = r.key(path)?;
        match tag {
            1 => *state = AnyValue::Str(r.len_field(path, tag, wt)?),
            // bool_value, int_value, string_value_strindex.
            2 | 3 | 8 => {
                r.skip_known(path, tag, wt, WireType::Varint)?;
                *state = AnyValue::Other;
            }
            // double_value.
            4 => {
                r.skip_known(path, tag, wt, WireType::I64)?;
                *state = AnyValue::Other;
            }
            // array_value, kvlist_value, bytes_value.
            5..=7 => {
                r.skip_known(path, tag, wt, WireType::Len)?;
                *state = AnyValue::Other;
            }
            _ => r.skip_unknown(path, tag, wt, depth)?,
        }
    }
    Ok(())
}
