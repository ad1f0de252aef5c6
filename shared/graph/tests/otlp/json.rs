//! OTLP/JSON decoding against the spec
//! (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>).

use meshwatch_graph::otlp::owned::{decode_json, views_from_owned};
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use proptest::prelude::*;
use serde_json::json;

use super::generate;

const EXAMPLE: &str = r#"{
  "resourceSpans": [{
    "resource": {
      "attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "k8s.cluster.name", "value": {"stringValue": "prod"}},
        {"key": "retries", "value": {"intValue": "3"}}
      ],
      "droppedAttributesCount": 0
    },
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0", "attributes": []},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "GET /cart",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000100000000",
        "attributes": [
          {"key": "server.address", "value": {"stringValue": "cart"}},
          {"key": "http.response.status_code", "value": {"intValue": "200"}},
          {"key": "ratio", "value": {"doubleValue": 0.5}},
          {"key": "cached", "value": {"boolValue": true}},
          {"key": "payload", "value": {"bytesValue": "aGVsbG8="}}
        ],
        "events": [{"timeUnixNano": "1700000000050000000", "name": "retry"}],
        "status": {"code": 2, "message": "boom"},
        "aFieldFromTheFuture": {"x": [1, 2, {"y": null}]}
      }],
      "schemaUrl": "https://opentelemetry.io/schemas/1.27.0"
    }]
  }],
  "unknownTopLevel": true
}"#;

fn decode(body: &str) -> ExportTraceServiceRequest {
    decode_json(body.as_bytes()).expect("valid OTLP/JSON")
}

fn only_span(req: &ExportTraceServiceRequest) -> &opentelemetry_proto::tonic::trace::v1::Span {
    &req.resource_spans[0].scope_spans[0].spans[0]
}

#[test]
fn spec_example_decodes() {
    let req = decode(EXAMPLE);
    let span = only_span(&req);
    assert_eq!(
        hex::encode(&span.trace_id),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(
        span.span_id,
        [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
    );
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_100_000_000);
    assert_eq!(span.events[0].time_unix_nano, 1_700_000_000_050_000_000);
    let values: Vec<_> = span
        .attributes
        .iter()
        .map(|kv| kv.value.clone().and_then(|v| v.value))
        .collect();
    assert_eq!(
        values,
        vec![
            Some(Value::StringValue("cart".into())),
            Some(Value::IntValue(200)),
            Some(Value::DoubleValue(0.5)),
            Some(Value::BoolValue(true)),
            Some(Value::BytesValue(b"hello".to_vec())),
        ]
    );
    let retries = &req.resource_spans[0]
        .resource
        .as_ref()
        .expect("resource")
        .attributes[2];
    assert_eq!(
        retries.value.as_ref().and_then(|v| v.value.clone()),
        Some(Value::IntValue(3))
    );

    let mut views = DecodedTraces::default();
    views_from_owned(&req, &ResourceKeys::default(), &mut views);
    assert_eq!(views.resources[0].service_values[0], Some("checkout"));
    assert_eq!(views.resources[0].graph_values[..], [Some("prod"), None]);
    let s = &views.spans[0];
    assert_eq!(
        (s.kind, s.status_code, s.attrs.server_address),
        (2, 2, Some("cart"))
    );
    assert!(s.validate(None, 0).is_ok());
}

/// Converts every object key from lowerCamelCase to snake_case.
fn to_snake_case(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let snake: String = k
                        .chars()
                        .flat_map(|c| {
                            if c.is_ascii_uppercase() {
                                vec!['_', c.to_ascii_lowercase()]
                            } else {
                                vec![c]
                            }
                        })
                        .collect();
                    (snake, to_snake_case(v))
                })
                .collect(),
        ),
        J::Array(items) => J::Array(items.into_iter().map(to_snake_case).collect()),
        other => other,
    }
}

/// Writes the 64-bit integers (`*TimeUnixNano`, `intValue`) as JSON numbers instead of strings.
fn int_strings_to_numbers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (k.ends_with("TimeUnixNano") || k == "intValue", v) {
                        (true, J::String(s)) => s
                            .parse::<u64>()
                            .map(J::from)
                            .or_else(|_| s.parse::<i64>().map(J::from))
                            .unwrap_or(J::String(s)),
                        (_, v) => int_strings_to_numbers(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        J::Array(items) => J::Array(items.into_iter().map(int_strings_to_numbers).collect()),
        other => other,
    }
}

#[test]
fn snake_case_keys_are_accepted() {
    let camel: serde_json::Value = serde_json::from_str(EXAMPLE).expect("json");
    let snake = serde_json::to_string(&to_snake_case(camel)).expect("json");
    assert!(snake.contains("\"resource_spans\"") && snake.contains("\"start_time_unix_nano\""));
    assert_eq!(decode(&snake), decode(EXAMPLE));
}

#[test]
fn enum_names_and_integers_as_numbers_are_accepted() {
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "00000000000000000000000000000001",
        "spanId": "0000000000000002",
        "kind": "SPAN_KIND_CLIENT",
        "startTimeUnixNano": 1_700_000_000_000_000_000u64,
        "endTimeUnixNano": 18_446_744_073_709_551_615u64,
        "droppedAttributesCount": "4",
        "flags": 257,
        "attributes": [
            {"key": "n", "value": {"intValue": -5}},
            {"key": "big", "value": {"intValue": "-9223372036854775808"}},
            {"key": "d", "value": {"doubleValue": "NaN"}},
            {"key": "e", "value": {"doubleValue": "-Infinity"}}
        ],
        "status": {"code": "STATUS_CODE_ERROR"}
    }]}]}]})
    .to_string();
    let req = decode(&body);
    let span = only_span(&req);
    assert_eq!(span.kind, 3);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, u64::MAX);
    assert_eq!((span.dropped_attributes_count, span.flags), (4, 257));
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
    let values: Vec<_> = span
        .attributes
        .iter()
        .map(|kv| kv.value.clone().and_then(|v| v.value))
        .collect();
    assert_eq!(values[0], Some(Value::IntValue(-5)));
    assert_eq!(values[1], Some(Value::IntValue(i64::MIN)));
    assert!(matches!(values[2], Some(Value::DoubleValue(d)) if d.is_nan()));
    assert_eq!(values[3], Some(Value::DoubleValue(f64::NEG_INFINITY)));
}

#[test]
fn nulls_and_missing_fields_are_defaults() {
    let req = decode(
        r#"{"resourceSpans": [{"resource": null, "scopeSpans": [{"scope": null, "spans": [{
            "traceId": null, "spanId": "", "kind": null, "startTimeUnixNano": null,
            "attributes": [{"key": "server.address", "value": {"stringValue": null, "intValue": "7"}},
                           {"key": "peer.service", "value": null}, {"value": {"stringValue": "no key"}}],
            "status": null
        }]}]}, {}]}"#,
    );
    let span = only_span(&req);
    assert!(span.trace_id.is_empty() && span.span_id.is_empty());
    assert_eq!(
        (span.kind, span.start_time_unix_nano, span.status.clone()),
        (0, 0, None)
    );
    assert_eq!(
        span.attributes[0].value.clone().and_then(|v| v.value),
        Some(Value::IntValue(7))
    );
    assert_eq!(span.attributes[1].value, None);
    assert_eq!(span.attributes[2].key, "");
    assert_eq!(req.resource_spans.len(), 2);
    assert_eq!(decode("{}"), ExportTraceServiceRequest::default());
}

#[test]
fn invalid_bodies_are_clean_errors() {
    let bad: [&[u8]; 16] = [
        b"",
        b"not json",
        b"{\"resourceSpans\": [",
        // Invalid UTF-8 in a string value, in a key, and outside strings.
        b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"\xff\"}}]}}]}",
        b"{\"resource\xc3Spans\": []}",
        b"{\"resourceSpans\": [\xff]}",
        // Ids: not hex, odd length, base64 (the generic bytes encoding, not OTLP's).
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"abc"}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W4799wOBA9JptjOBP8YM=="}]}]}]}"#,
        // Enums: unknown name; integers out of range or not integers.
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_SERVERLESS"}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":4294967296}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"droppedAttributesCount":-1}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"12x"}]}]}]}"#,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":1.5}]}]}]}"#,
        // Wrong types.
        br#"{"resourceSpans":{"a":1}}"#,
        br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"bytesValue":"%%"}}]}}]}"#,
    ];
    for body in bad {
        let err = decode_json(body).expect_err(&String::from_utf8_lossy(body));
        assert!(
            err.to_string()
                .starts_with("invalid OTLP/JSON trace request: "),
            "{err}"
        );
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let body = |depth: usize| {
        let value = format!(
            "{}{{\"stringValue\":\"x\"}}{}",
            "{\"arrayValue\":{\"values\":[".repeat(depth),
            "]}}".repeat(depth)
        );
        format!(
            "{{\"resourceSpans\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"k\",\"value\":{value}}}]}}}}]}}"
        )
    };
    assert!(decode_json(body(3).as_bytes()).is_ok());
    assert!(decode_json(body(10_000).as_bytes()).is_err());
}

proptest! {
    #![proptest_config(generate::config(256))]

    /// What the `opentelemetry-proto` serializer writes (camelCase, hex ids, 64-bit integers as
    /// strings, base64 bytes) decodes back to the same request, also with snake_case keys and
    /// with integers written as numbers.
    #[test]
    fn json_written_by_opentelemetry_proto_round_trips(req in generate::request()) {
        let value = serde_json::to_value(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for variant in [value.clone(), to_snake_case(value.clone()), int_strings_to_numbers(value)] {
            let body = serde_json::to_vec(&variant).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded = decode_json(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&decoded, &req);
        }
    }

    /// Arbitrary bytes and mangled documents never panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..2000) {
        let _ = decode_json(&body);
        let _ = decode_json(&EXAMPLE.as_bytes()[..cut.min(EXAMPLE.len())]);
    }
}
