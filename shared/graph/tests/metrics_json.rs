//! OTLP/JSON metrics decoding against the spec
//! (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>), and against `prost`:
//! a JSON request and its protobuf encoding give the same samples.

#[allow(dead_code)]
#[path = "otlp/generate.rs"]
mod generate;

use meshwatch_graph::metrics::{DecodedMetrics, Quantity, decode_json, decode_protobuf, extract};
use meshwatch_graph::span::ResourceKeys;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use prost::Message;

/// The example of the OTLP specification's repository (`examples/metrics.json`), abridged.
const EXAMPLE: &str = r#"{
  "resourceMetrics": [{
    "resource": {
      "attributes": [
        {"key": "service.name", "value": {"stringValue": "my.service"}},
        {"key": "k8s.cluster.name", "value": {"stringValue": "prod"}}
      ]
    },
    "scopeMetrics": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "metrics": [
        {
          "name": "my.counter", "unit": "1", "description": "I am a Counter",
          "sum": {
            "aggregationTemporality": 1, "isMonotonic": true,
            "dataPoints": [{"asDouble": 5, "startTimeUnixNano": "1544712660300000000",
                            "timeUnixNano": "1544712660300000000",
                            "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}]}]
          }
        },
        {
          "name": "container.cpu.utilization", "unit": "1",
          "gauge": {"dataPoints": [{"asDouble": 0.25, "timeUnixNano": "1544712660300000000"}]}
        },
        {
          "name": "container.memory.usage", "unit": "By",
          "gauge": {"dataPoints": [{"asInt": "1048576", "timeUnixNano": "1544712660300000000"}]}
        },
        {
          "name": "container.network.io", "unit": "By",
          "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE", "isMonotonic": true,
                  "dataPoints": [{"asInt": 1000, "startTimeUnixNano": "1544712600000000000",
                                  "timeUnixNano": "1544712660300000000",
                                  "attributes": [{"key": "network.io.direction", "value": {"stringValue": "receive"}}]}]}
        },
        {
          "name": "my.histogram", "unit": "1", "description": "I am a Histogram",
          "histogram": {
            "aggregationTemporality": 1,
            "dataPoints": [{"startTimeUnixNano": "1544712660300000000", "timeUnixNano": "1544712660300000000",
                            "count": 2, "sum": 2, "bucketCounts": [1, 1], "explicitBounds": [1],
                            "min": 0, "max": 2,
                            "exemplars": [{"timeUnixNano": "1544712660300000000", "asDouble": 1.5,
                                           "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174"}]}]
          }
        },
        {
          "name": "my.exponential.histogram", "unit": "1",
          "exponentialHistogram": {
            "aggregationTemporality": 1,
            "dataPoints": [{"startTimeUnixNano": "1544712660300000000", "timeUnixNano": "1544712660300000000",
                            "count": 3, "sum": 10, "scale": 0, "zeroCount": 1,
                            "positive": {"offset": 1, "bucketCounts": [0, 2]}, "min": 0, "max": 5, "zeroThreshold": 0}]
          }
        },
        {
          "name": "my.summary", "unit": "1",
          "summary": {"dataPoints": [{"startTimeUnixNano": "1544712660300000000", "timeUnixNano": "1544712660300000000",
                                      "count": 2, "sum": 3, "quantileValues": [{"quantile": 0.5, "value": 1.5}]}]}
        }
      ]
    }]
  }]
}"#;

fn decode(body: &str) -> ExportMetricsServiceRequest {
    decode_json(body.as_bytes()).expect("valid OTLP/JSON")
}

fn samples(req: &ExportMetricsServiceRequest) -> DecodedMetrics<'_> {
    let mut out = DecodedMetrics::default();
    extract(req, &ResourceKeys::default(), &mut out);
    out
}

#[test]
fn spec_example_decodes_and_extracts() {
    let req = decode(EXAMPLE);
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 7);
    let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
        panic!("a sum: {:?}", metrics[0]);
    };
    assert_eq!((sum.aggregation_temporality, sum.is_monotonic), (1, true));
    assert_eq!(
        sum.data_points[0].value,
        Some(number_data_point::Value::AsDouble(5.0))
    );
    let Some(metric::Data::Histogram(h)) = &metrics[4].data else {
        panic!("a histogram");
    };
    let p = &h.data_points[0];
    assert_eq!(
        (p.count, p.sum, &p.bucket_counts[..], &p.explicit_bounds[..]),
        (2, Some(2.0), &[1, 1][..], &[1.0][..])
    );
    assert_eq!(p.exemplars[0].trace_id.len(), 16);
    assert_eq!(p.exemplars[0].value, Some(exemplar::Value::AsDouble(1.5)));
    // Through the protobuf encoding, the same request.
    assert_eq!(decode_protobuf(&req.encode_to_vec()).expect("valid"), req);

    let d = samples(&req);
    assert_eq!(d.resources[0].service, "my.service");
    assert_eq!(d.resources[0].graph_values[..], [Some("prod"), None]);
    assert_eq!((d.data_points, d.ignored, d.rejected.total()), (7, 4, 0));
    let got: Vec<_> = d.samples.iter().map(|s| (s.quantity, s.value)).collect();
    assert_eq!(
        got,
        [
            (Quantity::CpuUtilization, 0.25),
            (Quantity::MemoryUsage, 1_048_576.0),
            (Quantity::NetworkRx, 1000.0)
        ]
    );
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

#[test]
fn snake_case_keys_are_accepted() {
    let camel: serde_json::Value = serde_json::from_str(EXAMPLE).expect("json");
    let snake = serde_json::to_string(&to_snake_case(camel)).expect("json");
    assert!(snake.contains("\"resource_metrics\"") && snake.contains("\"exponential_histogram\""));
    assert_eq!(decode(&snake), decode(EXAMPLE));
}

#[test]
fn the_last_oneof_member_wins_and_nulls_are_defaults() {
    // (A raw string: `json!` would sort the keys.)
    let body = r#"{"resourceMetrics": [{"resource": null, "scopeMetrics": [{"scope": null, "metrics": [
        {"name": "m", "gauge": {"dataPoints": []}, "sum": {"dataPoints": [
            {"asInt": "3", "asDouble": "Infinity", "timeUnixNano": 7, "flags": null}
        ]}, "histogram": null},
        {"name": null, "description": null, "gauge": null},
        {"name": "x", "sum": {"aggregationTemporality": null, "isMonotonic": null, "dataPoints": [{"asDouble": 1, "asInt": -2}]}}
    ]}]}]}"#;
    let req = decode(body);
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
        panic!("the sum, given last: {:?}", metrics[0]);
    };
    let p = &sum.data_points[0];
    assert_eq!(
        p.value,
        Some(number_data_point::Value::AsDouble(f64::INFINITY))
    );
    assert_eq!((p.time_unix_nano, p.flags), (7, 0));
    assert_eq!(metrics[1], Metric::default());
    let Some(metric::Data::Sum(sum)) = &metrics[2].data else {
        panic!("a sum");
    };
    assert_eq!(sum.aggregation_temporality, 0);
    assert_eq!(
        sum.data_points[0].value,
        Some(number_data_point::Value::AsInt(-2))
    );
    assert_eq!(decode("{}"), ExportMetricsServiceRequest::default());
}

#[test]
fn invalid_bodies_are_clean_errors() {
    let bad: [&[u8]; 10] = [
        b"",
        b"not json",
        b"{\"resourceMetrics\": [",
        b"{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"\xff\"}}]}}]}",
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_SOMETIMES"}}]}]}]}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"asInt":1.5}]}}]}]}]}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"asDouble":"lots"}]}}]}]}]}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"timeUnixNano":"-1"}]}}]}]}]}"#,
        br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[{"exemplars":[{"traceId":"zz"}]}]}}]}]}]}"#,
        br#"{"resourceMetrics":{"a":1}}"#,
    ];
    for body in bad {
        let err = decode_json(body).expect_err(&String::from_utf8_lossy(body));
        assert!(
            err.to_string()
                .starts_with("invalid OTLP/JSON metrics request: "),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// random requests

const NAMES: [&str; 8] = [
    "container.cpu.utilization",
    "k8s.pod.memory.usage",
    "system.cpu.utilization",
    "container.network.io",
    "k8s.container.restarts",
    "process.cpu.time",
    "http.server.request.duration",
    "my.counter",
];

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![-1e9f64..1e9, Just(0.0), Just(1.0)]
}

fn number_point() -> impl Strategy<Value = NumberDataPoint> {
    let value = option::weighted(
        0.9,
        prop_oneof![
            double().prop_map(number_data_point::Value::AsDouble),
            any::<i64>().prop_map(number_data_point::Value::AsInt),
        ],
    );
    (
        vec(generate::key_value(), 0..3),
        any::<u64>(),
        any::<u64>(),
        value,
        prop_oneof![Just(0u32), any::<u32>()],
        vec(exemplar(), 0..2),
    )
        .prop_map(
            |(attributes, start, time, value, flags, exemplars)| NumberDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                exemplars,
                flags,
                value,
            },
        )
}

fn exemplar() -> impl Strategy<Value = Exemplar> {
    (
        vec(generate::key_value(), 0..2),
        any::<u64>(),
        vec(any::<u8>(), 0..9),
        vec(any::<u8>(), 0..17),
        option::of(prop_oneof![
            double().prop_map(exemplar::Value::AsDouble),
            any::<i64>().prop_map(exemplar::Value::AsInt),
        ]),
    )
        .prop_map(
            |(filtered_attributes, time_unix_nano, span_id, trace_id, value)| Exemplar {
                filtered_attributes,
                time_unix_nano,
                span_id,
                trace_id,
                value,
            },
        )
}

fn histogram_point() -> impl Strategy<Value = HistogramDataPoint> {
    (
        any::<u64>(),
        option::of(double()),
        vec(any::<u64>(), 0..4),
        vec(double(), 0..3),
        option::of(double()),
        vec(exemplar(), 0..2),
    )
        .prop_map(
            |(count, sum, bucket_counts, explicit_bounds, min, exemplars)| HistogramDataPoint {
                count,
                sum,
                bucket_counts,
                explicit_bounds,
                min,
                max: sum,
                exemplars,
                time_unix_nano: count,
                ..HistogramDataPoint::default()
            },
        )
}

fn exponential_point() -> impl Strategy<Value = ExponentialHistogramDataPoint> {
    (
        any::<u64>(),
        any::<i32>(),
        any::<u64>(),
        option::of((any::<i32>(), vec(any::<u64>(), 0..3))),
        double(),
    )
        .prop_map(|(count, scale, zero_count, positive, zero_threshold)| {
            ExponentialHistogramDataPoint {
                count,
                scale,
                zero_count,
                positive: positive.map(|(offset, bucket_counts)| {
                    exponential_histogram_data_point::Buckets {
                        offset,
                        bucket_counts,
                    }
                }),
                zero_threshold,
                sum: Some(zero_threshold),
                ..ExponentialHistogramDataPoint::default()
            }
        })
}

fn summary_point() -> impl Strategy<Value = SummaryDataPoint> {
    (any::<u64>(), double(), vec((double(), double()), 0..3)).prop_map(|(count, sum, q)| {
        SummaryDataPoint {
            count,
            sum,
            quantile_values: q
                .into_iter()
                .map(|(quantile, value)| summary_data_point::ValueAtQuantile { quantile, value })
                .collect(),
            ..SummaryDataPoint::default()
        }
    })
}

fn data() -> impl Strategy<Value = Option<metric::Data>> {
    let temporality = prop_oneof![Just(0), Just(1), Just(2), any::<i32>()];
    option::weighted(
        0.95,
        prop_oneof![
            3 => vec(number_point(), 0..4).prop_map(|data_points| metric::Data::Gauge(Gauge { data_points })),
            3 => (vec(number_point(), 0..4), temporality.clone(), any::<bool>()).prop_map(
                |(data_points, aggregation_temporality, is_monotonic)| metric::Data::Sum(Sum {
                    data_points,
                    aggregation_temporality,
                    is_monotonic,
                })
            ),
            1 => (vec(histogram_point(), 0..2), temporality.clone()).prop_map(
                |(data_points, aggregation_temporality)| metric::Data::Histogram(Histogram {
                    data_points,
                    aggregation_temporality,
                })
            ),
            1 => (vec(exponential_point(), 0..2), temporality).prop_map(
                |(data_points, aggregation_temporality)| {
                    metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points,
                        aggregation_temporality,
                    })
                }
            ),
            1 => vec(summary_point(), 0..2)
                .prop_map(|data_points| metric::Data::Summary(Summary { data_points })),
        ],
    )
}

fn a_metric() -> impl Strategy<Value = Metric> {
    (
        prop_oneof![
            3 => proptest::sample::select(&NAMES[..]).prop_map(str::to_owned),
            1 => generate::text(),
        ],
        generate::text(),
        data(),
        vec(generate::key_value(), 0..2),
    )
        .prop_map(|(name, unit, data, metadata)| Metric {
            name,
            description: String::new(),
            unit,
            metadata,
            data,
        })
}

fn a_request() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    let scope =
        (vec(a_metric(), 0..4), generate::text()).prop_map(|(metrics, schema_url)| ScopeMetrics {
            scope: None,
            metrics,
            schema_url,
        });
    let resource = (
        option::weighted(0.9, vec(generate::key_value(), 0..5)),
        vec(scope, 0..3),
    )
        .prop_map(|(attributes, scope_metrics)| ResourceMetrics {
            resource: attributes.map(|attributes| Resource {
                attributes,
                ..Resource::default()
            }),
            scope_metrics,
            schema_url: String::new(),
        });
    vec(resource, 0..3)
        .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
}

proptest! {
    #![proptest_config(generate::config(256))]

    /// What the `opentelemetry-proto` serializer writes decodes back to the same request, also
    /// with snake_case keys; and JSON and protobuf give the same samples.
    #[test]
    fn json_written_by_opentelemetry_proto_round_trips(req in a_request()) {
        let value = serde_json::to_value(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for variant in [value.clone(), to_snake_case(value)] {
            let body = serde_json::to_vec(&variant).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded = decode_json(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&decoded, &req);
        }
        let from_protobuf = decode_protobuf(&req.encode_to_vec()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let a = samples(&req);
        let b = samples(&from_protobuf);
        prop_assert_eq!(&a, &b);
        let accounted = a.samples.iter().map(|s| u64::from(s.points)).sum::<u64>()
            + a.ignored
            + a.rejected.total();
        prop_assert_eq!(accounted, a.data_points);
    }

    /// Arbitrary bytes and mangled documents never panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in vec(any::<u8>(), 0..200), cut in 0usize..6000) {
        let _ = decode_json(&body);
        let _ = decode_json(&EXAMPLE.as_bytes()[..cut.min(EXAMPLE.len())]);
        let _ = decode_protobuf(&body);
    }
}
