//! The span views from an owned `opentelemetry-proto` request, and OTLP/JSON decoding.
//!
//! [`views_from_owned`] is the reference the zero-copy scanner ([`super::wire`]) is tested
//! against: for a request that `prost` decodes, both give equal [`DecodedTraces`]. The attribute
//! rules (string values only, last occurrence wins, fallbacks) live in one place,
//! [`super::attrs`].

mod json;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;

use super::attrs::{SpanAttrSlots, empty_resource, set_resource_attr};
use crate::span::{DecodedTraces, ResourceKeys, SpanView};

pub use json::{JsonError, decode_json};

/// Fills `out` (cleared first, capacity kept) with views borrowed from `req`.
///
/// One [`crate::span::ResourceView`] per `ResourceSpans`, in order (also for those without
/// spans or without a resource), then its spans in order.
pub fn views_from_owned<'a>(
    req: &'a ExportTraceServiceRequest,
    keys: &ResourceKeys,
    out: &mut DecodedTraces<'a>,
) {
    out.clear();
    for rs in &req.resource_spans {
        // More than u32::MAX resources cannot be held in memory as protobuf messages of at
        // least one byte each next to their views; saturate rather than panic.
        let index = u32::try_from(out.resources.len()).unwrap_or(u32::MAX);
        let mut view = empty_resource(keys);
        if let Some(resource) = &rs.resource {
            for kv in &resource.attributes {
                set_resource_attr(&mut view, keys, kv.key.as_bytes(), string_value(kv));
            }
        }
        out.resources.push(view);
        for ss in &rs.scope_spans {
            out.spans
                .extend(ss.spans.iter().map(|span| span_view(span, index)));
        }
    }
}

fn span_view(span: &Span, resource: u32) -> SpanView<'_> {
    let mut slots = SpanAttrSlots::default();
    for kv in &span.attributes {
        if let Some(slot) = slots.slot(kv.key.as_bytes()) {
            *slot = string_value(kv);
        }
    }
    SpanView {
        resource,
        trace_id: &span.trace_id,
        span_id: &span.span_id,
        parent_span_id: &span.parent_span_id,
        kind: span.kind,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        status_code: span.status.as_ref().map_or(0, |s| s.code),
        attrs: slots.finish(),
    }
}

/// The string value of an attribute; any other value type reads as absent ([`super::attrs`]).
pub(crate) fn string_value(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}
