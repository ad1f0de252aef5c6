//! The references the zero-copy scanner is compared with.
//!
//! - The full decode: `prost` with the real `opentelemetry-proto` types, then
//!   `views_from_owned`. When it accepts, the scanner must accept and give equal views.
//! - The reduced decode: `prost` with a schema that declares every field of the messages the
//!   scanner walks, with the same field numbers and types, but declares the length-delimited
//!   fields the scanner does not read (names, trace state, events, links, scope, schema urls,
//!   nested attribute values) as opaque `bytes`, and an attribute's `value` as `repeated bytes`
//!   that are only decoded (merged, as protobuf merges a message given twice) when the key is
//!   one the graph reads. Its decisions must equal the scanner's on every input.
//!
//! The one accepted difference between the two: the full decode also checks the inside of
//! what the scanner skips (UTF-8 of the span name and other strings, the structure of events,
//! links, scope and nested attribute values, the values of attributes the graph does not read),
//! so it rejects some inputs that the scanner — allowed to skip those fields without looking
//! inside — accepts. The reverse never happens.

use meshwatch_graph::otlp::owned::views_from_owned;
use meshwatch_graph::otlp::wire::decode_traces;
use meshwatch_graph::span::{DecodedTraces, ResourceKeys, ResourceView, SpanAttrs, SpanView};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct RRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<RResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<RResource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<RScopeSpans>,
    #[prost(bytes = "vec", tag = "3")]
    pub schema_url: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RResource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<RKeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub entity_refs: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RScopeSpans {
    #[prost(bytes = "vec", tag = "1")]
    pub scope: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<RSpan>,
    #[prost(bytes = "vec", tag = "3")]
    pub schema_url: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub trace_state: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
    #[prost(bytes = "vec", tag = "5")]
    pub name: Vec<u8>,
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<RKeyValue>,
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    #[prost(bytes = "vec", repeated, tag = "11")]
    pub events: Vec<Vec<u8>>,
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    #[prost(bytes = "vec", repeated, tag = "13")]
    pub links: Vec<Vec<u8>>,
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    pub status: Option<RStatus>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RStatus {
    #[prost(bytes = "vec", tag = "2")]
    pub message: Vec<u8>,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct RKeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub value: Vec<Vec<u8>>,
    #[prost(int32, tag = "3")]
    pub key_strindex: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct RAnyValue {
    #[prost(oneof = "RValue", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub value: Option<RValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RValue {
    #[prost(bytes = "vec", tag = "1")]
    Str(Vec<u8>),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(bytes = "vec", tag = "5")]
    Array(Vec<u8>),
    #[prost(bytes = "vec", tag = "6")]
    Kvlist(Vec<u8>),
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
    #[prost(int32, tag = "8")]
    Strindex(i32),
}

const SPAN_KEYS: [&str; 9] = [
    "peer.service",
    "server.address",
    "net.peer.name",
    "db.system.name",
    "db.system",
    "db.namespace",
    "db.name",
    "messaging.system",
    "messaging.destination.name",
];

/// The string value of an attribute whose key the graph reads: its `AnyValue` occurrences
/// merged in order (each must be a complete message on its own, as in protobuf), UTF-8 checked.
fn oracle_value(kv: &RKeyValue) -> Result<Option<String>, String> {
    let mut any = RAnyValue::default();
    for occurrence in &kv.value {
        any.merge(occurrence.as_slice())
            .map_err(|e| format!("value: {e}"))?;
    }
    match any.value {
        Some(RValue::Str(bytes)) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| format!("utf-8: {e}")),
        _ => Ok(None),
    }
}

/// A [`ResourceView`] with owned strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedResource {
    pub service_values: Vec<Option<String>>,
    pub graph_values: Vec<Option<String>>,
}

/// A [`SpanView`] with owned ids and strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSpan {
    pub resource: u32,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub status_code: i32,
    /// peer.service, server.address, db.system, db.namespace, messaging.system,
    /// messaging.destination (after fallbacks).
    pub attrs: [Option<String>; 6],
}

/// [`DecodedTraces`] with owned data, to compare views borrowed from different places.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedTraces {
    pub resources: Vec<OwnedResource>,
    pub spans: Vec<OwnedSpan>,
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

impl OwnedTraces {
    pub fn from_views(d: &DecodedTraces<'_>) -> Self {
        OwnedTraces {
            resources: d
                .resources
                .iter()
                .map(|r: &ResourceView<'_>| OwnedResource {
                    service_values: r.service_values.iter().map(|v| owned(*v)).collect(),
                    graph_values: r.graph_values.iter().map(|v| owned(*v)).collect(),
                })
                .collect(),
            spans: d
                .spans
                .iter()
                .map(|s: &SpanView<'_>| {
                    let a: &SpanAttrs<'_> = &s.attrs;
                    OwnedSpan {
                        resource: s.resource,
                        trace_id: s.trace_id.to_vec(),
                        span_id: s.span_id.to_vec(),
                        parent_span_id: s.parent_span_id.to_vec(),
                        kind: s.kind,
                        start_time_unix_nano: s.start_time_unix_nano,
                        end_time_unix_nano: s.end_time_unix_nano,
                        status_code: s.status_code,
                        attrs: [
                            owned(a.peer_service),
                            owned(a.server_address),
                            owned(a.db_system),
                            owned(a.db_namespace),
                            owned(a.messaging_system),
                            owned(a.messaging_destination),
                        ],
                    }
                })
                .collect(),
        }
    }
}

/// Views from the reduced decode, with the attribute rules written out independently of the
/// crate's own (`otlp::attrs`).
pub fn reduced_views(req: &RRequest, keys: &ResourceKeys) -> Result<OwnedTraces, String> {
    let mut out = OwnedTraces::default();
    for (index, rs) in req.resource_spans.iter().enumerate() {
        let mut view = OwnedResource {
            service_values: vec![None; keys.service_keys.len()],
            graph_values: vec![None; keys.graph_keys.len()],
        };
        for kv in rs.resource.iter().flat_map(|r| &r.attributes) {
            let key = kv.key.as_slice();
            let wanted = keys.service_keys.iter().any(|k| k.as_bytes() == key)
                || keys.graph_keys.iter().any(|k| k.as_bytes() == key);
            if !wanted {
                continue;
            }
            let value = oracle_value(kv)?;
            for (slot, k) in view.service_values.iter_mut().zip(&keys.service_keys) {
                if k.as_bytes() == key {
                    *slot = value.clone();
                }
            }
            for (slot, k) in view.graph_values.iter_mut().zip(&keys.graph_keys) {
                if k.as_bytes() == key {
                    *slot = value.clone();
                }
            }
        }
        out.resources.push(view);
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            let mut found: [Option<String>; 9] = Default::default();
            for kv in &span.attributes {
                if let Some(i) = SPAN_KEYS
                    .iter()
                    .position(|k| k.as_bytes() == kv.key.as_slice())
                {
                    found[i] = oracle_value(kv)?;
                }
            }
            let [
                peer,
                server,
                net_peer,
                db_system_name,
                db_system,
                db_namespace,
                db_name,
                msg_system,
                msg_dest,
            ] = found;
            out.spans.push(OwnedSpan {
                resource: u32::try_from(index).map_err(|e| e.to_string())?,
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                kind: span.kind,
                start_time_unix_nano: span.start_time_unix_nano,
                end_time_unix_nano: span.end_time_unix_nano,
                status_code: span.status.as_ref().map_or(0, |s| s.code),
                attrs: [
                    peer,
                    server.or(net_peer),
                    db_system_name.or(db_system),
                    db_namespace.or(db_name),
                    msg_system,
                    msg_dest,
                ],
            });
        }
    }
    Ok(out)
}

/// What [`check`] saw, for tests that want to know which paths their inputs took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Full decode, reduced decode and scanner all accepted, with equal views.
    AllAccepted,
    /// Scanner and reduced decode accepted (equal views); the full decode rejected something
    /// inside a skipped field.
    SkippedFieldRejected,
    /// Everyone rejected.
    AllRejected,
}

/// Runs the scanner on `buf` and checks it against both references (panics on a mismatch).
pub fn check(buf: &[u8], keys: &ResourceKeys) -> Outcome {
    let mut scanned = DecodedTraces::default();
    let scan = decode_traces(buf, keys, &mut scanned);

    let reduced = RRequest::decode(buf);
    let reduced_ok = match &reduced {
        Ok(req) => match reduced_views(req, keys) {
            Ok(views) => {
                assert!(
                    scan.is_ok(),
                    "scanner rejected what the reduced decode accepts: {scan:?}"
                );
                assert_eq!(
                    OwnedTraces::from_views(&scanned),
                    views,
                    "scanner and reduced decode differ"
                );
                true
            }
            Err(e) => {
                assert!(
                    scan.is_err(),
                    "scanner accepted what the reduced decode rejects ({e})"
                );
                false
            }
        },
        Err(e) => {
            assert!(
                scan.is_err(),
                "scanner accepted what the reduced decode rejects ({e})"
            );
            false
        }
    };

    match ExportTraceServiceRequest::decode(buf) {
        Ok(full) => {
            assert!(
                scan.is_ok(),
                "scanner rejected what prost accepts: {scan:?}"
            );
            let mut views = DecodedTraces::default();
            views_from_owned(&full, keys, &mut views);
            assert_eq!(
                scanned, views,
                "scanner and prost + views_from_owned differ"
            );
            Outcome::AllAccepted
        }
        Err(_) if reduced_ok => Outcome::SkippedFieldRejected,
        Err(_) => Outcome::AllRejected,
    }
}
