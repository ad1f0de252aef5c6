//! Random `ExportTraceServiceRequest`s for property tests: resources and attributes including
//! the ones the graph reads and many it does not, every attribute value type, out-of-enum kinds
//! and status codes, ids of any length, events, links, scopes.

use meshwatch_graph::span::ResourceKeys;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// `cases` test cases, unless `PROPTEST_CASES` asks for another number (for longer soak runs).
pub fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

const KEYS: [&str; 22] = [
    "service.name",
    "k8s.deployment.name",
    "k8s.cluster.name",
    "deployment.environment.name",
    "peer.service",
    "server.address",
    "net.peer.name",
    "db.system.name",
    "db.system",
    "db.namespace",
    "db.name",
    "messaging.system",
    "messaging.destination.name",
    "http.request.method",
    "url.path",
    "service.namespace",
    "",
    "db.system.nam",
    "Server.address",
    "service.name ",
    "k8s.pod.name",
    "network.peer.address",
];

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9.\\-]{0,12}",
        1 => "\\PC{0,8}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&KEYS[..]).prop_map(str::to_owned),
        1 => "[a-z._]{0,16}",
    ]
}

fn leaf_value() -> impl Strategy<Value = Option<any_value::Value>> {
    use any_value::Value;
    prop_oneof![
        4 => text().prop_map(|s| Some(Value::StringValue(s))),
        1 => Just(None),
        1 => any::<bool>().prop_map(|b| Some(Value::BoolValue(b))),
        1 => any::<i64>().prop_map(|i| Some(Value::IntValue(i))),
        1 => (-1e12f64..1e12).prop_map(|d| Some(Value::DoubleValue(d))),
        1 => vec(any::<u8>(), 0..6).prop_map(|b| Some(Value::BytesValue(b))),
        1 => any::<i32>().prop_map(|i| Some(Value::StringValueStrindex(i))),
    ]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    use any_value::Value;
    let leaf = leaf_value().prop_map(|value| AnyValue { value });
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values })),
            }),
            vec((key(), option::of(inner)), 0..3).prop_map(|kvs| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| KeyValue {
                            key,
                            value,
                            key_strindex: 0
                        })
                        .collect(),
                })),
            }),
        ]
    })
}

pub fn key_value() -> impl Strategy<Value = KeyValue> {
    (
        key(),
        option::weighted(0.9, any_value()),
        prop_oneof![9 => Just(0), 1 => any::<i32>()],
    )
        .prop_map(|(key, value, key_strindex)| KeyValue {
            key,
            value,
            key_strindex,
        })
}

fn attributes(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    vec(key_value(), 0..max)
}

fn id(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), max..=max),
        1 => vec(any::<u8>(), 0..max + 4),
    ]
}

fn enum_value(max: i32) -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0..=max, 1 => any::<i32>()]
}

fn event() -> impl Strategy<Value = span::Event> {
    (any::<u64>(), text(), attributes(3), any::<u32>()).prop_map(
        |(time_unix_nano, name, attributes, dropped_attributes_count)| span::Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count,
        },
    )
}

fn link() -> impl Strategy<Value = span::Link> {
    (
        id(16),
        id(8),
        text(),
        attributes(3),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
                span::Link {
                    trace_id,
                    span_id,
                    trace_state,
                    attributes,
                    dropped_attributes_count,
                    flags,
                }
            },
        )
}

fn status() -> impl Strategy<Value = Option<Status>> {
    option::of((text(), enum_value(2)).prop_map(|(message, code)| Status { message, code }))
}

pub fn span() -> impl Strategy<Value = Span> {
    let ids = (
        id(16),
        id(8),
        text(),
        prop_oneof![Just(Vec::new()), id(8)],
        any::<u32>(),
    );
    let body = (
        text(),
        enum_value(5),
        any::<u64>(),
        any::<u64>(),
        attributes(8),
        any::<u32>(),
    );
    let rest = (
        vec(event(), 0..2),
        any::<u32>(),
        vec(link(), 0..2),
        any::<u32>(),
        status(),
    );
    (ids, body, rest).prop_map(
        |(
            (trace_id, span_id, trace_state, parent_span_id, flags),
            (
                name,
                kind,
                start_time_unix_nano,
                end_time_unix_nano,
                attributes,
                dropped_attributes_count,
            ),
            (events, dropped_events_count, links, dropped_links_count, status),
        )| Span {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            flags,
            name,
            kind,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links,
            dropped_links_count,
            status,
        },
    )
}

fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    option::of((text(), text(), attributes(2), any::<u32>()).prop_map(
        |(name, version, attributes, dropped_attributes_count)| InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count,
        },
    ))
}

fn resource() -> impl Strategy<Value = Option<Resource>> {
    let entity = (text(), text(), vec(text(), 0..2), vec(text(), 0..2)).prop_map(
        |(schema_url, r#type, id_keys, description_keys)| EntityRef {
            schema_url,
            r#type,
            id_keys,
            description_keys,
        },
    );
    option::weighted(
        0.9,
        (attributes(10), any::<u32>(), vec(entity, 0..2)).prop_map(
            |(attributes, dropped_attributes_count, entity_refs)| Resource {
                attributes,
                dropped_attributes_count,
                entity_refs,
            },
        ),
    )
}

fn scope_spans() -> impl Strategy<Value = ScopeSpans> {
    (scope(), vec(span(), 0..4), text()).prop_map(|(scope, spans, schema_url)| ScopeSpans {
        scope,
        spans,
        schema_url,
    })
}

pub fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let rs = (resource(), vec(scope_spans(), 0..3), text()).prop_map(
        |(resource, scope_spans, schema_url)| ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        },
    );
    vec(rs, 0..4).prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// Graph-id and service key configurations, including empty ones, duplicates, and keys that are
/// both.
pub fn keys() -> impl Strategy<Value = ResourceKeys> {
    let some_keys = || {
        vec(
            proptest::sample::select(
                &[
                    "k8s.cluster.name",
                    "deployment.environment.name",
                    "service.name",
                    "k8s.deployment.name",
                    "k8s.namespace.name",
                    "",
                ][..],
            ),
            0..4,
        )
        .prop_map(|keys| keys.into_iter().map(str::to_owned).collect::<Vec<_>>())
    };
    prop_oneof![
        3 => Just(ResourceKeys::default()),
        1 => (some_keys(), some_keys()).prop_map(|(graph_keys, service_keys)| ResourceKeys {
            graph_keys,
            service_keys,
        }),
    ]
}
