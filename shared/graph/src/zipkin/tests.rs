//! Unit tests of the Zipkin mapping (the edges of whole fixtures: `tests/zipkin.rs`).

use opentelemetry_proto::tonic::trace::v1::Span;

use super::*;
use crate::otlp::owned::views_from_owned;
use crate::span::{DecodedTraces, RejectReason};

fn convert_json(json: &str) -> ExportTraceServiceRequest {
    decode_to_otlp(json.as_bytes(), &ResourceKeys::default()).expect("valid Zipkin JSON")
}

fn spans(req: &ExportTraceServiceRequest) -> Vec<(&str, &Span)> {
    req.resource_spans
        .iter()
        .flat_map(|rs| {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == SERVICE_NAME)
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.as_str()),
                    _ => None,
                })
                .unwrap_or("");
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .map(move |s| (service, s))
        })
        .collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn str_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attr(span, key)? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

#[test]
fn ids_are_padded_and_invalid_ids_are_rejected_per_span() {
    let req = convert_json(
        r#"[
        {"traceId":"1e223ff1f80f1c69","id":"a","parentId":"00000000000000bc","timestamp":1,"duration":2,
         "localEndpoint":{"serviceName":"a"}},
        {"traceId":"5aab74dbb904746bb33447baae403ed6","id":"e457b5a2e4d86bd1","timestamp":1,"duration":2},
        {"traceId":"xyz","id":"e457b5a2e4d86bd1","timestamp":1,"duration":2},
        {"traceId":"1e223ff1f80f1c69","id":"1e223ff1f80f1c6900","timestamp":1,"duration":2},
        {"traceId":"1e223ff1f80f1c69","id":"0000000000000001","parentId":"nothex!!","timestamp":1,"duration":2}
    ]"#,
    );
    let all = spans(&req);
    assert_eq!(all.len(), 5);
    let (_, s) = all[0];
    assert_eq!(hex::encode(&s.trace_id), "00000000000000001e223ff1f80f1c69");
    assert_eq!(hex::encode(&s.span_id), "000000000000000a");
    assert_eq!(hex::encode(&s.parent_span_id), "00000000000000bc");
    assert_eq!(
        hex::encode(&all[1].1.trace_id),
        "5aab74dbb904746bb33447baae403ed6"
    );
    assert!(all[1].1.parent_span_id.is_empty(), "no parentId: a root");

    let mut views = DecodedTraces::default();
    views_from_owned(&req, &ResourceKeys::default(), &mut views);
    let verdicts: Vec<_> = views
        .spans
        .iter()
        .map(|v| v.validate(None, 0).err())
        .collect();
    assert_eq!(
        verdicts,
        vec![
            None,
            None,
            Some(RejectReason::InvalidTraceId),
            Some(RejectReason::InvalidSpanId),
            Some(RejectReason::InvalidParentSpanId),
        ]
    );
}

#[test]
fn kinds_times_and_status() {
    let req = convert_json(
        r#"[
        {"traceId":"1","id":"1","kind":"CLIENT","timestamp":1500000000000001,"duration":250,"name":"get"},
        {"traceId":"1","id":"2","kind":"SERVER","timestamp":1500000000000002,"tags":{"error":"boom"}},
        {"traceId":"1","id":"3","kind":"PRODUCER","timestamp":1,"duration":1,"tags":{"error":""}},
        {"traceId":"1","id":"4","kind":"CONSUMER","timestamp":1,"duration":1,
         "tags":{"otel.status_code":"ERROR","otel.status_description":"bad"}},
        {"traceId":"1","id":"5","kind":"LOCAL","duration":1},
        {"traceId":"1","id":"6","timestamp":1,"duration":1,"tags":{"otel.status_code":"OK"}}
    ]"#,
    );
    let all = spans(&req);
    let kinds: Vec<i32> = all.iter().map(|(_, s)| s.kind).collect();
    assert_eq!(kinds, vec![3, 2, 4, 5, 0, 0]);
    let s = all[0].1;
    assert_eq!(s.name, "get");
    assert_eq!(s.start_time_unix_nano, 1_500_000_000_000_001_000);
    assert_eq!(s.end_time_unix_nano, 1_500_000_000_000_251_000);
    assert!(s.status.is_none());
    // No duration: a zero-length span.
    assert_eq!(all[1].1.end_time_unix_nano, all[1].1.start_time_unix_nano);
    let status = |i: usize| {
        all[i]
            .1
            .status
            .as_ref()
            .map(|s| (s.code, s.message.as_str()))
    };
    assert_eq!(status(1), Some((STATUS_CODE_ERROR, "boom")));
    assert_eq!(status(2), Some((STATUS_CODE_ERROR, "")));
    assert_eq!(status(3), Some((STATUS_CODE_ERROR, "bad")));
    assert_eq!(status(5), None);
    // The error tag becomes the status, not an attribute.
    assert!(attr(all[1].1, "error").is_none());
    // No timestamp: start stays 0 and validation rejects the span.
    assert_eq!(all[4].1.start_time_unix_nano, 0);
    let mut views = DecodedTraces::default();
    views_from_owned(&req, &ResourceKeys::default(), &mut views);
    assert_eq!(
        views.spans[4].validate(None, 0),
        Err(RejectReason::InvalidTimestamps)
    );
}

#[test]
fn endpoints_tags_and_graph_keys() {
    let req = convert_json(
        r#"[
        {"traceId":"1","id":"1","kind":"CLIENT","timestamp":1,"duration":1,
         "localEndpoint":{"serviceName":"api","ipv4":"10.0.0.1"},
         "remoteEndpoint":{"serviceName":"users","ipv4":"10.0.0.2","port":8080},
         "tags":{"db.system":"postgresql","http.status_code":200,"sampled":true,"gone":null,
                 "deployment.environment.name":"prod"}},
        {"traceId":"1","id":"2","kind":"CLIENT","timestamp":1,"duration":1,
         "localEndpoint":{"serviceName":"api"},
         "remoteEndpoint":{"serviceName":"ignored"},"tags":{"peer.service":"billing"}},
        {"traceId":"1","id":"3","kind":"PRODUCER","timestamp":1,"duration":1,
         "localEndpoint":{"serviceName":"api"},"remoteEndpoint":{"serviceName":"kafka"}},
        {"traceId":"1","id":"4","kind":"CONSUMER","timestamp":1,"duration":1,
         "localEndpoint":{"serviceName":"worker"},"remoteEndpoint":{"serviceName":"kafka"},
         "tags":{"messaging.system":"rabbitmq"}},
        {"traceId":"1","id":"5","timestamp":1,"duration":1,"annotations":[{"timestamp":7,"value":"ws"}]}
    ]"#,
    );
    // Resources: (api, prod), (api, -), (worker, -), (none, -), in order of appearance.
    let resources: Vec<Vec<(String, String)>> = req
        .resource_spans
        .iter()
        .map(|rs| {
            rs.resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.clone(), v)
                })
                .collect()
        })
        .collect();
    let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        resources,
        vec![
            vec![
                kv("service.name", "api"),
                kv("deployment.environment.name", "prod")
            ],
            vec![kv("service.name", "api")],
            vec![kv("service.name", "worker")],
            vec![],
        ]
    );
    let all = spans(&req);
    let s = all[0].1;
    assert_eq!(str_attr(s, "peer.service"), Some("users"));
    assert_eq!(str_attr(s, "db.system"), Some("postgresql"));
    assert_eq!(str_attr(s, "http.status_code"), Some("200"));
    assert_eq!(str_attr(s, "sampled"), Some("true"));
    assert_eq!(str_attr(s, "gone"), None);
    assert_eq!(str_attr(s, "deployment.environment.name"), None);
    assert_eq!(str_attr(s, "network.peer.address"), Some("10.0.0.2"));
    assert_eq!(
        attr(s, "network.peer.port"),
        Some(&any_value::Value::IntValue(8080))
    );
    // A peer.service tag wins over the remote endpoint; only messaging spans get a system.
    assert_eq!(str_attr(all[1].1, "peer.service"), Some("billing"));
    assert_eq!(str_attr(all[1].1, "messaging.system"), None);
    assert_eq!(str_attr(all[2].1, "messaging.system"), Some("kafka"));
    assert_eq!(str_attr(all[3].1, "messaging.system"), Some("rabbitmq"));
    let event = &all[4].1.events[0];
    assert_eq!((event.name.as_str(), event.time_unix_nano), ("ws", 7_000));

    let mut views = DecodedTraces::default();
    views_from_owned(&req, &ResourceKeys::default(), &mut views);
    assert_eq!(
        views.resources[0].service_values,
        vec![Some("api"), None, None]
    );
    assert_eq!(views.resources[0].graph_values, vec![None, Some("prod")]);
    assert_eq!(views.spans[0].attrs.db_system, Some("postgresql"));
    assert_eq!(views.spans[0].attrs.peer_service, Some("users"));
    assert_eq!(views.spans[2].attrs.messaging_system, Some("kafka"));
}

const SKEW: &str = r#"[
    {"traceId":"1e223ff1f80f1c69","parentId":"74280ae0c10d8062","id":"43210ae0c10d1234",
     "name":"async","timestamp":1,"duration":1,"localEndpoint":{"serviceName":"serviceb"}},
    {"traceId":"1e223ff1f80f1c69","parentId":"bf396325699c84bf","id":"74280ae0c10d8062",
     "kind":"SERVER","timestamp":1,"duration":1,"localEndpoint":{"serviceName":"serviceb"},
     "shared":true},
    {"traceId":"1e223ff1f80f1c69","id":"bf396325699c84bf","kind":"SERVER","timestamp":1,
     "duration":1,"localEndpoint":{"serviceName":"servicea"}},
    {"traceId":"1e223ff1f80f1c69","parentId":"bf396325699c84bf","id":"74280ae0c10d8062",
     "kind":"CLIENT","timestamp":1,"duration":1,"localEndpoint":{"serviceName":"servicea"}}
]"#;

#[test]
fn shared_spans_get_their_own_id_and_their_children() {
    // skew.json in short: client and server share 7428; the server's child `async` names 7428.
    let req = convert_json(SKEW);
    let all = spans(&req);
    let by_kind = |service: &str, kind: i32| {
        all.iter()
            .find(|(s, span)| *s == service && span.kind == kind)
            .map(|(_, span)| *span)
            .expect("span present")
    };
    let trace = parse_id("1e223ff1f80f1c69", 16);
    let shared = parse_id("74280ae0c10d8062", 8);
    let decoded = decode_json(SKEW.as_bytes()).expect("valid");
    let server = by_kind("serviceb", 2);
    let expected = shared_server_id(&trace, &shared, &decoded[1]);
    assert_eq!(server.span_id, expected.to_vec());
    assert_eq!(
        server.parent_span_id, shared,
        "the server's parent is its client"
    );
    let client = by_kind("servicea", 3);
    assert_eq!(client.span_id, shared);
    assert_eq!(hex::encode(&client.parent_span_id), "bf396325699c84bf");
    let child = by_kind("serviceb", 0);
    assert_eq!(
        child.parent_span_id,
        expected.to_vec(),
        "the server's child moves to the server half"
    );
    // Deterministic, and distinct per service and per half.
    assert_eq!(shared_server_id(&trace, &shared, &decoded[1]), expected);
    let mut other = decoded[1].clone();
    other.timestamp = Some(2);
    assert_ne!(shared_server_id(&trace, &shared, &other), expected);
    assert_ne!(shared_server_id(&trace, &shared, &decoded[3]), expected);
    assert_ne!(expected.to_vec(), shared);
}

#[test]
fn several_server_halves_of_one_client_id() {
    // A broadcast, as in the SmartThings trace: two server halves of one client id on two
    // hosts, each with a child; each child goes to the half on its host.
    let req = convert_json(
        r#"[
        {"traceId":"1","id":"a","kind":"CLIENT","timestamp":100,"duration":50,
         "localEndpoint":{"serviceName":"bouncer"}},
        {"traceId":"1","id":"a","parentId":"9","kind":"SERVER","timestamp":110,"shared":true,
         "localEndpoint":{"serviceName":"pusher","ipv4":"10.0.0.1"}},
        {"traceId":"1","id":"a","parentId":"9","kind":"SERVER","timestamp":120,"shared":true,
         "localEndpoint":{"serviceName":"pusher","ipv4":"10.0.0.2"}},
        {"traceId":"1","id":"c1","parentId":"a","timestamp":111,"duration":1,
         "localEndpoint":{"serviceName":"pusher","ipv4":"10.0.0.1"}},
        {"traceId":"1","id":"c2","parentId":"a","timestamp":121,"duration":1,
         "localEndpoint":{"serviceName":"pusher","ipv4":"10.0.0.2"}}
    ]"#,
    );
    let all = spans(&req);
    let by_id = |id: &str| {
        all.iter()
            .map(|(_, s)| *s)
            .find(|s| s.span_id == parse_id(id, 8))
            .expect("span present")
    };
    let servers: Vec<&Span> = all
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| s.kind == 2)
        .collect();
    assert_eq!(servers.len(), 2);
    assert_ne!(servers[0].span_id, servers[1].span_id);
    assert!(servers.iter().all(|s| s.parent_span_id == parse_id("a", 8)));
    assert_eq!(by_id("c1").parent_span_id, servers[0].span_id);
    assert_eq!(by_id("c2").parent_span_id, servers[1].span_id);
}

#[test]
fn a_shared_root_without_its_client_stays_a_root() {
    let body = r#"[{"traceId":"2e8cfb154b59a41f","id":"2e8cfb154b59a41f","kind":"SERVER",
        "timestamp":1,"duration":1,"localEndpoint":{"serviceName":"routing"},"shared":true}]"#;
    let req = convert_json(body);
    let s = spans(&req)[0].1;
    assert_eq!(hex::encode(&s.span_id), "2e8cfb154b59a41f");
    assert!(s.parent_span_id.is_empty());
    // With its client in the batch, it is a server half like any other.
    let body = r#"[{"traceId":"2e8cfb154b59a41f","id":"2e8cfb154b59a41f","kind":"SERVER",
        "timestamp":1,"duration":1,"localEndpoint":{"serviceName":"routing"},"shared":true},
        {"traceId":"2e8cfb154b59a41f","id":"2e8cfb154b59a41f","kind":"CLIENT",
        "timestamp":1,"duration":1,"localEndpoint":{"serviceName":"edge"}}]"#;
    let req = convert_json(body);
    let s = spans(&req)[0].1;
    assert_eq!(hex::encode(&s.parent_span_id), "2e8cfb154b59a41f");
    assert_ne!(hex::encode(&s.span_id), "2e8cfb154b59a41f");
}

#[test]
fn malformed_bodies_are_errors_and_empty_lists_are_empty() {
    for bad in [
        &b""[..],
        b"{}",
        b"[{\"traceId\": 5}]",
        b"[{\"timestamp\": \"x\"}]",
        b"[{\"timestamp\": -1}]",
        b"[{\"tags\": {\"a\": [1]}}]",
        b"[{\"localEndpoint\": {\"port\": 70000}}]",
        b"[1,",
        b"\xff",
    ] {
        let err = decode_json(bad).expect_err("malformed");
        assert!(
            err.to_string()
                .starts_with("invalid Zipkin v2 JSON span list"),
            "{err}"
        );
    }
    let req = convert_json("[]");
    assert!(req.resource_spans.is_empty());
    // Unknown fields and nulls are fine.
    let req = convert_json(r#"[{"traceId":"1","id":"2","debug":true,"future":{},"kind":null}]"#);
    assert_eq!(spans(&req).len(), 1);
}
