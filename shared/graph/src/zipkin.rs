//! Zipkin v2 JSON (`POST /api/v2/spans`, <https://zipkin.io/zipkin-api/#/default/post_spans>) to
//! an owned OTLP trace request, whose views ([`crate::otlp::owned::views_from_owned`]) are the
//! same [`crate::span::DecodedTraces`] every other decoder yields.
//!
//! Zipkin spans borrow nothing from a protobuf buffer, so they are decoded into owned structs
//! ([`ZipkinSpan`]), converted into an `ExportTraceServiceRequest` ([`to_otlp`]), and viewed from
//! there: one path for the receiver, `meshwatch snapshot --format zipkin` and the importer.
//!
//! Mapping, per span:
//! - `traceId` (16 or 32 hex digits; shorter ones left-padded with zeros, as Zipkin does) to a
//!   16-byte trace id: 64-bit ids are left-padded to 128 bits. `id` and `parentId` to 8 bytes.
//!   An id that is not hex, or too long, becomes one byte long, a length no id has, so that
//!   validation rejects that span (`invalid_trace_id`, `invalid_span_id`,
//!   `invalid_parent_span_id`), not the batch; an absent `parentId` is a root.
//! - `kind` `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER` to the OTLP kinds; absent or any other
//!   value: unspecified (kind-less).
//! - `timestamp` and `duration` (µs) to start and end (ns): end = start + duration, a missing
//!   duration counting as zero (as the OpenTelemetry Collector's Zipkin receiver does); a
//!   missing timestamp leaves the start at zero, which validation rejects.
//! - `localEndpoint.serviceName` to the resource's `service.name` (spans are grouped into one
//!   resource per service); `remoteEndpoint.serviceName` to `peer.service`, unless a tag gives
//!   one; for `PRODUCER` and `CONSUMER` spans also to `messaging.system`, unless a tag gives
//!   one (Brave and Sleuth name the broker there: `kafka`, `rabbitmq`);
//!   `remoteEndpoint` `ipv4`/`ipv6` and `port` to `network.peer.address` and
//!   `network.peer.port`.
//! - `tags` to span attributes of the same name (string values; numbers and booleans, which
//!   some emitters send although the API says strings, as their JSON text), so that
//!   `db.system`, `db.namespace`, `messaging.system`, `messaging.destination.name`,
//!   `peer.service`, `server.address` act as in OTLP. A tag named like a configured graph key
//!   (`k8s.cluster.name`, `deployment.environment.name`) becomes a resource attribute instead,
//!   so Zipkin data can name its graph. The `error` tag (any value, even empty) sets the status
//!   to ERROR with the tag's value as message, and is not kept as an attribute; so does an
//!   `otel.status_code` tag of `ERROR`.
//! - `annotations` to span events (`value` as name, `timestamp` µs to ns).
//!
//! **Shared spans.** Zipkin's B3 lets a client and its server report one span id: the server
//! half carries `shared: true` (and usually the client's `parentId`). OTLP needs one id per
//! span, so the server half gets an id of its own, derived from the trace id, the shared id and
//! its service name (deterministic, so halves reported in different requests still agree), with
//! the shared id as its parent: the server pairs with its client as a kinded pair. Children of
//! the shared id in the server's service are re-parented to the server half, as Zipkin's own
//! trace tree does (`SpanNode`: a child goes to the shared span of its parent id when both have
//! the same local endpoint, else to the client). One exception: a shared span without
//! `parentId` whose client half is not in the same batch stays as it is, a root called from
//! outside: that is how an uninstrumented proxy that creates the ids shows up (Yelp's
//! `routing` in the test data). Re-parenting and that exception look only inside one batch: a
//! receiver that gets the client half of such a root in another request leaves it unpaired.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::otlp::attrs::SERVICE_NAME;
use crate::span::{ResourceKeys, STATUS_CODE_ERROR};

/// Instrumentation scope name of converted spans.
pub const SCOPE_NAME: &str = "zipkin";

/// Why a Zipkin body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    /// Not a JSON array of span objects, or a value of the wrong type; the message names the
    /// problem and its line and column.
    #[error("invalid Zipkin v2 JSON span list: {0}")]
    Invalid(serde_json::Error),
}

/// One Zipkin v2 span as decoded (unknown fields ignored, `null` as absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Start, µs since the epoch.
    #[serde(default)]
    pub timestamp: Option<u64>,
    /// µs.
    #[serde(default)]
    pub duration: Option<u64>,
    #[serde(default)]
    pub debug: Option<bool>,
    #[serde(default)]
    pub shared: Option<bool>,
    #[serde(default)]
    pub local_endpoint: Option<Endpoint>,
    #[serde(default)]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    pub annotations: Option<Vec<Annotation>>,
    #[serde(default)]
    pub tags: Option<Tags>,
}

/// A Zipkin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub ipv4: Option<String>,
    #[serde(default)]
    pub ipv6: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

/// A Zipkin annotation (an event at a point in time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Annotation {
    /// µs since the epoch.
    #[serde(default)]
    pub timestamp: Option<u64>,
    #[serde(default)]
    pub value: Option<String>,
}

/// Span tags, sorted by key. Values are strings; numbers and booleans are kept as their JSON
/// text, `null` values are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = Tags;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string tags")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
                let mut tags = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, TagValue>()? {
                    if let Some(value) = value.0 {
                        tags.insert(key, value);
                    }
                }
                Ok(Tags(tags))
            }
        }
        deserializer.deserialize_map(TagsVisitor)
    }
}

struct TagValue(Option<String>);

impl<'de> Deserialize<'de> for TagValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        Ok(TagValue(
            match serde_json::Value::deserialize(deserializer)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                v @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_)) => {
                    Some(v.to_string())
                }
                _ => return Err(D::Error::custom("tag values must be strings")),
            },
        ))
    }
}

/// Decodes a Zipkin v2 JSON body: an array of spans.
pub fn decode_json(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    serde_json::from_slice(body).map_err(ZipkinError::Invalid)
}

/// Decodes a Zipkin v2 JSON body and converts it ([`to_otlp`]).
pub fn decode_to_otlp(
    body: &[u8],
    keys: &ResourceKeys,
) -> Result<ExportTraceServiceRequest, ZipkinError> {
    Ok(to_otlp(decode_json(body)?, keys))
}

/// What an invalid id becomes: one byte, a length no valid id has.
const INVALID_ID: [u8; 1] = [0];

/// Parses a hex id of at most `bytes` bytes, left-padding shorter ones with zeros;
/// [`INVALID_ID`] when it is empty, not hex or too long.
fn parse_id(raw: &str, bytes: usize) -> Vec<u8> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 2 * bytes || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return INVALID_ID.to_vec();
    }
    let mut padded = String::with_capacity(2 * bytes);
    for _ in raw.len()..2 * bytes {
        padded.push('0');
    }
    padded.push_str(raw);
    hex::decode(padded).unwrap_or_else(|_| INVALID_ID.to_vec())
}

fn trace_id(raw: Option<&str>) -> Vec<u8> {
    parse_id(raw.unwrap_or(""), 16)
}

fn span_id(raw: Option<&str>) -> Vec<u8> {
    parse_id(raw.unwrap_or(""), 8)
}

/// `parentId`: absent, `null` or empty is a root; anything else must be a valid id.
fn parent_id(raw: Option<&str>) -> Vec<u8> {
    raw.filter(|r| !r.trim().is_empty())
        .map_or_else(Vec::new, |r| parse_id(r, 8))
}

/// The span id of the server half of a shared span: FNV-1a over the trace id, the shared id,
/// the half's service name, local address and port, start and duration, through the SplitMix64
/// finalizer; never zero, never the shared id. Several servers may answer one client id (a
/// broadcast, retries): each half gets an id of its own, and a half reported twice the same.
pub fn shared_server_id(trace_id: &[u8], shared_id: &[u8], span: &ZipkinSpan) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(trace_id);
    feed(shared_id);
    feed(service_of(span).as_bytes());
    let (address, port) = local_address(span);
    feed(address.as_bytes());
    feed(&port.unwrap_or(0).to_be_bytes());
    feed(&span.timestamp.unwrap_or(0).to_be_bytes());
    feed(&span.duration.unwrap_or(0).to_be_bytes());
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut id = z.to_be_bytes();
    if id == [0; 8] || id[..] == *shared_id {
        id[7] ^= 0x5a;
    }
    id
}

fn local_address(span: &ZipkinSpan) -> (&str, Option<u16>) {
    span.local_endpoint.as_ref().map_or(("", None), |e| {
        (
            e.ipv4.as_deref().or(e.ipv6.as_deref()).unwrap_or(""),
            e.port,
        )
    })
}

/// (trace id, shared span id, service): the server halves of one shared id in one service.
type HalfKey<'a> = (&'a [u8], &'a [u8], &'a str);

/// A server half with an id of its own, as a candidate parent of the shared id's children.
struct Half<'a> {
    id: [u8; 8],
    address: (&'a str, Option<u16>),
    start: u64,
    end: u64,
}

/// The half a child of the shared id (in the half's service) belongs to: among the halves on
/// the child's local address if any (else all), the one whose interval holds the child's start,
/// else the latest that started before it, else the first.
fn adopt(halves: &[Half<'_>], child: &ZipkinSpan) -> [u8; 8] {
    let address = local_address(child);
    let same: Vec<&Half<'_>> = halves.iter().filter(|h| h.address == address).collect();
    let pool: Vec<&Half<'_>> = if same.is_empty() {
        halves.iter().collect()
    } else {
        same
    };
    let t = child.timestamp.unwrap_or(0);
    pool.iter()
        .find(|h| h.start <= t && t <= h.end)
        .or_else(|| pool.iter().filter(|h| h.start <= t).max_by_key(|h| h.start))
        .or_else(|| pool.first())
        .map_or([0; 8], |h| h.id)
}

fn kind(raw: Option<&str>) -> span::SpanKind {
    match raw {
        Some("CLIENT") => span::SpanKind::Client,
        Some("SERVER") => span::SpanKind::Server,
        Some("PRODUCER") => span::SpanKind::Producer,
        Some("CONSUMER") => span::SpanKind::Consumer,
        _ => span::SpanKind::Unspecified,
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn service_of(s: &ZipkinSpan) -> &str {
    s.local_endpoint
        .as_ref()
        .and_then(|e| e.service_name.as_deref())
        .unwrap_or("")
}

/// Converts decoded spans into one OTLP request: one resource per (service name, graph-key
/// tags), in order of first appearance, each with one scope ([`SCOPE_NAME`]) holding its spans
/// in input order. See the module documentation for the mapping.
pub fn to_otlp(spans: Vec<ZipkinSpan>, keys: &ResourceKeys) -> ExportTraceServiceRequest {
    type Key = (Vec<u8>, Vec<u8>);
    // Ids of the non-shared halves, to find shared spans whose client is in the batch.
    let mut plain: HashSet<Key> = HashSet::new();
    let ids: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = spans
        .iter()
        .map(|s| {
            let ids = (
                trace_id(s.trace_id.as_deref()),
                span_id(s.id.as_deref()),
                parent_id(s.parent_id.as_deref()),
            );
            if s.shared != Some(true) {
                plain.insert((ids.0.clone(), ids.1.clone()));
            }
            ids
        })
        .collect();
    // Shared halves that get an id of their own, by (trace, shared id, service).
    let mut own: Vec<Option<[u8; 8]>> = vec![None; spans.len()];
    let mut halves: HashMap<HalfKey<'_>, Vec<Half<'_>>> = HashMap::new();
    for (i, (s, (trace, id, parent))) in spans.iter().zip(&ids).enumerate() {
        if s.shared == Some(true)
            && id.len() == 8
            && (!parent.is_empty() || plain.contains(&(trace.clone(), id.clone())))
        {
            let new = shared_server_id(trace, id, s);
            own[i] = Some(new);
            let start = s.timestamp.unwrap_or(0);
            halves
                .entry((trace, id, service_of(s)))
                .or_default()
                .push(Half {
                    id: new,
                    address: local_address(s),
                    start,
                    end: start.saturating_add(s.duration.unwrap_or(0)),
                });
        }
    }
    let parents: Vec<Option<[u8; 8]>> = spans
        .iter()
        .zip(&ids)
        .zip(&own)
        .map(|((s, (trace, _, parent)), own)| match own {
            Some(_) => None,
            None => halves
                .get(&(trace.as_slice(), parent.as_slice(), service_of(s)))
                .map(|h| adopt(h, s)),
        })
        .collect();

    let mut resources: Vec<ResourceSpans> = Vec::new();
    let mut index: HashMap<(String, Vec<Option<String>>), usize> = HashMap::new();
    let mut out_spans: Vec<(usize, Span)> = Vec::with_capacity(spans.len());
    for (i, (s, (trace, id, parent))) in spans.iter().zip(ids.iter().cloned()).enumerate() {
        let service = service_of(s);
        let (span_id, parent_span_id) = match (own[i], parents[i]) {
            (Some(new), _) => (new.to_vec(), id),
            (None, Some(adopted)) => (id, adopted.to_vec()),
            (None, None) => (id, parent),
        };
        let (span, graph_values) = convert(s, trace, span_id, parent_span_id, keys);
        let key = (service.to_owned(), graph_values);
        let r = *index.entry(key).or_insert_with_key(|(_, values)| {
            let mut attributes = Vec::new();
            if let Some(name) = s
                .local_endpoint
                .as_ref()
                .and_then(|e| e.service_name.as_ref())
            {
                attributes.push(string_kv(SERVICE_NAME, name));
            }
            for (k, v) in keys.graph_keys.iter().zip(values) {
                if let Some(v) = v {
                    attributes.push(string_kv(k, v));
                }
            }
            resources.push(ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    ..ScopeSpans::default()
                }],
                schema_url: String::new(),
            });
            resources.len() - 1
        });
        out_spans.push((r, span));
    }
    for (r, span) in out_spans {
        resources[r].scope_spans[0].spans.push(span);
    }
    ExportTraceServiceRequest {
        resource_spans: resources,
    }
}

/// One span, and the values of the graph-key tags (moved to the resource).
fn convert(
    s: &ZipkinSpan,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    keys: &ResourceKeys,
) -> (Span, Vec<Option<String>>) {
    let kind = kind(s.kind.as_deref());
    let start = s.timestamp.unwrap_or(0).saturating_mul(1_000);
    let end = start.saturating_add(s.duration.unwrap_or(0).saturating_mul(1_000));
    let mut graph_values = vec![None; keys.graph_keys.len()];
    let mut attributes = Vec::new();
    let mut status = None;
    let empty = Tags::default();
    let tags = &s.tags.as_ref().unwrap_or(&empty).0;
    for (key, value) in tags {
        if let Some(i) = keys.graph_keys.iter().position(|k| k == key) {
            graph_values[i] = Some(value.clone());
            continue;
        }
        match key.as_str() {
            "error" => {
                status = Some(Status {
                    code: STATUS_CODE_ERROR,
                    message: value.clone(),
                });
            }
            "otel.status_code" if value.eq_ignore_ascii_case("ERROR") => {
                status.get_or_insert_with(|| Status {
                    code: STATUS_CODE_ERROR,
                    message: tags
                        .get("otel.status_description")
                        .cloned()
                        .unwrap_or_default(),
                });
                attributes.push(string_kv(key, value));
            }
            _ => attributes.push(string_kv(key, value)),
        }
    }
    if let Some(remote) = &s.remote_endpoint {
        if let Some(name) = remote.service_name.as_deref().filter(|n| !n.is_empty()) {
            if !tags.contains_key("peer.service") {
                attributes.push(string_kv("peer.service", name));
            }
            if matches!(kind, span::SpanKind::Producer | span::SpanKind::Consumer)
                && !tags.contains_key("messaging.system")
            {
                attributes.push(string_kv("messaging.system", name));
            }
        }
        if let Some(ip) = remote.ipv4.as_deref().or(remote.ipv6.as_deref()) {
            attributes.push(string_kv("network.peer.address", ip));
        }
        if let Some(port) = remote.port {
            attributes.push(KeyValue {
                key: "network.peer.port".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(i64::from(port))),
                }),
                ..KeyValue::default()
            });
        }
    }
    let events = s
        .annotations
        .iter()
        .flatten()
        .map(|a| span::Event {
            time_unix_nano: a.timestamp.unwrap_or(0).saturating_mul(1_000),
            name: a.value.clone().unwrap_or_default(),
            ..span::Event::default()
        })
        .collect();
    let span = Span {
        trace_id,
        span_id,
        parent_span_id,
        name: s.name.clone().unwrap_or_default(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events,
        status,
        ..Span::default()
    };
    (span, graph_values)
}

#[cfg(test)]
mod tests;
