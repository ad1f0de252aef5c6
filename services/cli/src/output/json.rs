//! OTLP/JSON encoding (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>) of
//! trace and metrics requests, compact: lowerCamelCase keys, trace and span ids as lowercase hex,
//! 64-bit integers as decimal strings, enums as numbers, bytes as base64, and every field at its
//! default value omitted (the `with-serde` derives of `opentelemetry-proto` write them all).
//! The project's decoder (`meshwatch_graph::otlp::owned::decode_json`) and the OpenTelemetry
//! Collector read it back.
//!
//! Traces: every field. Metrics: gauges and sums of number data points (what the importers
//! write); histograms, summaries and exemplars are refused rather than dropped.

use anyhow::bail;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Map, Value, json};

/// A JSON object under construction that skips default values.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn put(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.to_owned(), value);
        self
    }

    fn str(self, key: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.put(key, Value::String(value.to_owned()))
        }
    }

    fn hex(self, key: &str, bytes: &[u8]) -> Self {
        if bytes.is_empty() {
            self
        } else {
            self.put(key, Value::String(hex::encode(bytes)))
        }
    }

    fn u64_str(self, key: &str, value: u64) -> Self {
        if value == 0 {
            self
        } else {
            self.put(key, Value::String(value.to_string()))
        }
    }

    fn num(self, key: &str, value: i64) -> Self {
        if value == 0 {
            self
        } else {
            self.put(key, json!(value))
        }
    }

    fn list(self, key: &str, items: Vec<Value>) -> Self {
        if items.is_empty() {
            self
        } else {
            self.put(key, Value::Array(items))
        }
    }

    fn opt(self, key: &str, value: Option<Value>) -> Self {
        match value {
            Some(v) => self.put(key, v),
            None => self,
        }
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        None => json!({}),
        Some(any_value::Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(any_value::Value::BoolValue(b)) => json!({ "boolValue": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(any_value::Value::DoubleValue(d)) => json!({ "doubleValue": double(*d) }),
        Some(any_value::Value::BytesValue(b)) => json!({ "bytesValue": base64(b) }),
        Some(any_value::Value::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Some(any_value::Value::KvlistValue(l)) => {
            json!({ "kvlistValue": { "values": attributes(&l.values) } })
        }
        Some(any_value::Value::StringValueStrindex(i)) => json!({ "stringValueStrindex": i }),
    }
}

fn attributes(list: &[KeyValue]) -> Vec<Value> {
    list.iter()
        .map(|kv| {
            Obj::default()
                .put("key", Value::String(kv.key.clone()))
                .put("value", kv.value.as_ref().map_or(json!({}), any_value))
                .done()
        })
        .collect()
}

fn resource(r: Option<&Resource>) -> Option<Value> {
    let r = r?;
    Some(
        Obj::default()
            .list("attributes", attributes(&r.attributes))
            .num(
                "droppedAttributesCount",
                i64::from(r.dropped_attributes_count),
            )
            .done(),
    )
}

fn scope(s: Option<&InstrumentationScope>) -> Option<Value> {
    let s = s?;
    Some(
        Obj::default()
            .str("name", &s.name)
            .str("version", &s.version)
            .list("attributes", attributes(&s.attributes))
            .num(
                "droppedAttributesCount",
                i64::from(s.dropped_attributes_count),
            )
            .done(),
    )
}

fn span(s: &Span) -> Value {
    let events = s
        .events
        .iter()
        .map(|e| {
            Obj::default()
                .u64_str("timeUnixNano", e.time_unix_nano)
                .str("name", &e.name)
                .list("attributes", attributes(&e.attributes))
                .num(
                    "droppedAttributesCount",
                    i64::from(e.dropped_attributes_count),
                )
                .done()
        })
        .collect();
    let links = s
        .links
        .iter()
        .map(|l| {
            Obj::default()
                .hex("traceId", &l.trace_id)
                .hex("spanId", &l.span_id)
                .str("traceState", &l.trace_state)
                .list("attributes", attributes(&l.attributes))
                .num(
                    "droppedAttributesCount",
                    i64::from(l.dropped_attributes_count),
                )
                .num("flags", i64::from(l.flags))
                .done()
        })
        .collect();
    let status = s
        .status
        .as_ref()
        .filter(|st| st.code != 0 || !st.message.is_empty())
        .map(|st| {
            Obj::default()
                .str("message", &st.message)
                .num("code", i64::from(st.code))
                .done()
        });
    Obj::default()
        .hex("traceId", &s.trace_id)
        .hex("spanId", &s.span_id)
        .str("traceState", &s.trace_state)
        .hex("parentSpanId", &s.parent_span_id)
        .num("flags", i64::from(s.flags))
        .str("name", &s.name)
        .num("kind", i64::from(s.kind))
        .u64_str("startTimeUnixNano", s.start_time_unix_nano)
        .u64_str("endTimeUnixNano", s.end_time_unix_nano)
        .list("attributes", attributes(&s.attributes))
        .num(
            "droppedAttributesCount",
            i64::from(s.dropped_attributes_count),
        )
        .list("events", events)
        .num("droppedEventsCount", i64::from(s.dropped_events_count))
        .list("links", links)
        .num("droppedLinksCount", i64::from(s.dropped_links_count))
        .opt("status", status)
        .done()
}

/// The OTLP/JSON form of a trace request.
pub fn traces_json(request: &ExportTraceServiceRequest) -> Value {
    let resource_spans = request
        .resource_spans
        .iter()
        .map(|rs| {
            let scope_spans = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    Obj::default()
                        .opt("scope", scope(ss.scope.as_ref()))
                        .list("spans", ss.spans.iter().map(span).collect())
                        .str("schemaUrl", &ss.schema_url)
                        .done()
                })
                .collect();
            Obj::default()
                .opt("resource", resource(rs.resource.as_ref()))
                .list("scopeSpans", scope_spans)
                .str("schemaUrl", &rs.schema_url)
                .done()
        })
        .collect();
    Obj::default().list("resourceSpans", resource_spans).done()
}

fn data_point(metric: &str, p: &NumberDataPoint) -> anyhow::Result<Value> {
    if !p.exemplars.is_empty() {
        bail!("metric {metric}: exemplars cannot be written as OTLP/JSON here");
    }
    let value = match p.value {
        Some(number_data_point::Value::AsDouble(v)) => Some(("asDouble", double(v))),
        Some(number_data_point::Value::AsInt(v)) => Some(("asInt", json!(v.to_string()))),
        None => None,
    };
    let mut obj = Obj::default()
        .list("attributes", attributes(&p.attributes))
        .u64_str("startTimeUnixNano", p.start_time_unix_nano)
        .u64_str("timeUnixNano", p.time_unix_nano);
    if let Some((key, v)) = value {
        obj = obj.put(key, v);
    }
    Ok(obj.num("flags", i64::from(p.flags)).done())
}

fn metric_json(m: &Metric) -> anyhow::Result<Value> {
    let points = |list: &[NumberDataPoint]| -> anyhow::Result<Vec<Value>> {
        list.iter().map(|p| data_point(&m.name, p)).collect()
    };
    let data = match &m.data {
        None => None,
        Some(metric::Data::Gauge(g)) => Some((
            "gauge",
            Obj::default()
                .list("dataPoints", points(&g.data_points)?)
                .done(),
        )),
        Some(metric::Data::Sum(s)) => Some((
            "sum",
            Obj::default()
                .list("dataPoints", points(&s.data_points)?)
                .num(
                    "aggregationTemporality",
                    i64::from(s.aggregation_temporality),
                )
                .opt("isMonotonic", s.is_monotonic.then_some(json!(true)))
                .done(),
        )),
        Some(_) => bail!(
            "metric {}: only gauges and sums can be written as OTLP/JSON here",
            m.name
        ),
    };
    let mut obj = Obj::default()
        .str("name", &m.name)
        .str("description", &m.description)
        .str("unit", &m.unit)
        .list("metadata", attributes(&m.metadata));
    if let Some((key, v)) = data {
        obj = obj.put(key, v);
    }
    Ok(obj.done())
}

/// The OTLP/JSON form of a metrics request.
pub fn metrics_json(request: &ExportMetricsServiceRequest) -> anyhow::Result<Value> {
    let mut resource_metrics = Vec::with_capacity(request.resource_metrics.len());
    for rm in &request.resource_metrics {
        let mut scope_metrics = Vec::with_capacity(rm.scope_metrics.len());
        for sm in &rm.scope_metrics {
            let metrics = sm
                .metrics
                .iter()
                .map(metric_json)
                .collect::<anyhow::Result<Vec<_>>>()?;
            scope_metrics.push(
                Obj::default()
                    .opt("scope", scope(sm.scope.as_ref()))
                    .list("metrics", metrics)
                    .str("schemaUrl", &sm.schema_url)
                    .done(),
            );
        }
        resource_metrics.push(
            Obj::default()
                .opt("resource", resource(rm.resource.as_ref()))
                .list("scopeMetrics", scope_metrics)
                .str("schemaUrl", &rm.schema_url)
                .done(),
        );
    }
    Ok(Obj::default()
        .list("resourceMetrics", resource_metrics)
        .done())
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status, span};

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn full_request() -> ExportTraceServiceRequest {
        use any_value::Value as V;
        let attrs = vec![
            kv("s", V::StringValue("x".into())),
            kv("b", V::BoolValue(true)),
            kv("i", V::IntValue(-7)),
            kv("d", V::DoubleValue(0.5)),
            kv("y", V::BytesValue(vec![0, 1, 2, 250, 251])),
            kv(
                "a",
                V::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(V::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "l",
                V::KvlistValue(KeyValueList {
                    values: vec![kv("k", V::StringValue("v".into()))],
                }),
            ),
        ];
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: attrs.clone(),
                    dropped_attributes_count: 2,
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "n".into(),
                        version: "1".into(),
                        ..InstrumentationScope::default()
                    }),
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        trace_state: "a=b".into(),
                        parent_span_id: vec![3; 8],
                        flags: 257,
                        name: "op".into(),
                        kind: 3,
                        start_time_unix_nano: 1_661_140_374_351_773_094,
                        end_time_unix_nano: 1_661_140_374_362_982_609,
                        attributes: attrs,
                        dropped_attributes_count: 1,
                        events: vec![span::Event {
                            time_unix_nano: 5,
                            name: "e".into(),
                            ..span::Event::default()
                        }],
                        dropped_events_count: 3,
                        links: vec![span::Link {
                            trace_id: vec![4; 16],
                            span_id: vec![5; 8],
                            flags: 1,
                            ..span::Link::default()
                        }],
                        dropped_links_count: 4,
                        status: Some(Status {
                            message: "bad".into(),
                            code: 2,
                        }),
                    }],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn traces_round_trip_through_the_project_decoder() {
        let request = full_request();
        let text = serde_json::to_vec(&traces_json(&request)).expect("in memory");
        let back = meshwatch_graph::otlp::owned::decode_json(&text).expect("valid OTLP/JSON");
        assert_eq!(back, request);
        // Ids in hex, times as strings, defaults omitted.
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains(r#""traceId":"01010101010101010101010101010101""#));
        assert!(text.contains(r#""startTimeUnixNano":"1661140374351773094""#));
        assert!(text.contains(r#""bytesValue":"AAEC+vs=""#));
        let minimal = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2,
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        assert_eq!(
            traces_json(&minimal).to_string(),
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":"2","spanId":"0202020202020202","startTimeUnixNano":"1","traceId":"01010101010101010101010101010101"}]}]}]}"#
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn metrics_gauges_and_sums_and_nothing_else() {
        let point = |v: number_data_point::Value| NumberDataPoint {
            attributes: vec![kv(
                "network.io.direction",
                any_value::Value::StringValue("receive".into()),
            )],
            start_time_unix_nano: 10,
            time_unix_nano: 20,
            value: Some(v),
            ..NumberDataPoint::default()
        };
        let mut request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource::default()),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "k8s.pod.cpu.utilization".into(),
                            unit: "1".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![point(number_data_point::Value::AsDouble(0.25))],
                            })),
                            ..Metric::default()
                        },
                        Metric {
                            name: "k8s.pod.network.io".into(),
                            unit: "By".into(),
                            data: Some(metric::Data::Sum(Sum {
                                data_points: vec![point(number_data_point::Value::AsInt(7))],
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            })),
                            ..Metric::default()
                        },
                    ],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        };
        let value = metrics_json(&request).expect("gauge and sum");
        let metrics = &value["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
        assert_eq!(
            metrics[0]["gauge"]["dataPoints"][0]["asDouble"],
            json!(0.25)
        );
        assert_eq!(metrics[1]["sum"]["dataPoints"][0]["asInt"], json!("7"));
        assert_eq!(metrics[1]["sum"]["aggregationTemporality"], json!(2));
        assert_eq!(metrics[1]["sum"]["isMonotonic"], json!(true));
        assert_eq!(
            metrics[1]["sum"]["dataPoints"][0]["startTimeUnixNano"],
            json!("10")
        );
        // Through the metrics decoder of the graph crate: the same request.
        let text = serde_json::to_vec(&value).expect("in memory");
        let back = meshwatch_graph::metrics::decode_json(&text).expect("valid OTLP/JSON");
        assert_eq!(back, request);

        request.resource_metrics[0].scope_metrics[0].metrics[0].data =
            Some(metric::Data::Histogram(Histogram::default()));
        let err = metrics_json(&request).expect_err("histograms are refused");
        assert!(err.to_string().contains("only gauges and sums"), "{err}");
    }
}
