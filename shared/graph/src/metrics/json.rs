//! OTLP/JSON metrics requests (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>).
//!
//! The same rules as the trace decoder (`otlp/owned/json.rs`), with the shared mirror structs
//! and scalars of `otlp/protojson.rs`: keys in lowerCamelCase or snake_case; integers of any
//! width as numbers or decimal strings; doubles as numbers or `"NaN"`, `"Infinity"`,
//! `"-Infinity"` or decimal strings; `aggregationTemporality` as an integer, a numeric string
//! or a value name; exemplar ids as hex, bytes as base64; `null` for any field is its default;
//! unknown fields are ignored. A oneof given more than once (`gauge` and `sum` in one metric,
//! `asDouble` and `asInt` in one point) keeps the last, as protobuf does.
//!
//! The whole request is converted, histograms and summaries included, so the result is the
//! request a protobuf client would have sent.

mod distributions;

use std::fmt;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Gauge, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, exemplar, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use thiserror::Error;

use self::distributions::{JExponentialHistogram, JHistogram, JSummary};
use crate::otlp::protojson::scalars::{Double, Enum, EnumNames, Hex, Int};
use crate::otlp::protojson::{JKeyValue, JResource, JScope, list};

/// Why an OTLP/JSON metrics body could not be decoded.
#[derive(Debug, Error)]
pub enum MetricsJsonError {
    /// Malformed JSON, invalid UTF-8, or a value of the wrong type or format; the message
    /// names the problem and its line and column.
    #[error("invalid OTLP/JSON metrics request: {0}")]
    Invalid(serde_json::Error),
}

impl From<serde_json::Error> for MetricsJsonError {
    fn from(error: serde_json::Error) -> Self {
        Self::Invalid(error)
    }
}

/// Decodes an OTLP/JSON `ExportMetricsServiceRequest`.
pub fn decode_json(body: &[u8]) -> Result<ExportMetricsServiceRequest, MetricsJsonError> {
    let req: JRequest = serde_json::from_slice(body)?;
    Ok(req.into())
}

struct TemporalityNames;

impl EnumNames for TemporalityNames {
    fn value_of(name: &str) -> Option<i32> {
        AggregationTemporality::from_str_name(name).map(|t| t as i32)
    }
}

fn doubles(v: Option<Vec<Double>>) -> Vec<f64> {
    v.unwrap_or_default().into_iter().map(|d| d.0).collect()
}

fn u64s(v: Option<Vec<Int<u64>>>) -> Vec<u64> {
    v.unwrap_or_default().into_iter().map(|i| i.0).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JRequest {
    #[serde(alias = "resource_metrics")]
    resource_metrics: Option<Vec<JResourceMetrics>>,
}

impl From<JRequest> for ExportMetricsServiceRequest {
    fn from(j: JRequest) -> Self {
        Self {
            resource_metrics: list(j.resource_metrics),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JResourceMetrics {
    resource: Option<JResource>,
    #[serde(alias = "scope_metrics")]
    scope_metrics: Option<Vec<JScopeMetrics>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl From<JResourceMetrics> for ResourceMetrics {
    fn from(j: JResourceMetrics) -> Self {
        Self {
            resource: j.resource.map(Resource::from),
            scope_metrics: list(j.scope_metrics),
            schema_url: j.schema_url.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JScopeMetrics {
    scope: Option<JScope>,
    metrics: Option<Vec<JMetric>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

impl From<JScopeMetrics> for ScopeMetrics {
    fn from(j: JScopeMetrics) -> Self {
        Self {
            scope: j.scope.map(InstrumentationScope::from),
            metrics: list(j.metrics),
            schema_url: j.schema_url.unwrap_or_default(),
        }
    }
}

/// `Metric`, read field by field so that the last member of the `data` oneof wins.
struct JMetric(Metric);

impl From<JMetric> for Metric {
    fn from(j: JMetric) -> Self {
        j.0
    }
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum MetricField {
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "description")]
    Description,
    #[serde(rename = "unit")]
    Unit,
    #[serde(rename = "metadata")]
    Metadata,
    #[serde(rename = "gauge")]
    Gauge,
    #[serde(rename = "sum")]
    Sum,
    #[serde(rename = "histogram")]
    Histogram,
    #[serde(rename = "exponentialHistogram", alias = "exponential_histogram")]
    ExponentialHistogram,
    #[serde(rename = "summary")]
    Summary,
    #[serde(other)]
    Unknown,
}

impl<'de> Deserialize<'de> for JMetric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JMetric;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Metric object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JMetric, A::Error> {
                use metric::Data;
                let mut m = Metric::default();
                while let Some(field) = map.next_key::<MetricField>()? {
                    let data = match field {
                        MetricField::Name => {
                            m.name = map.next_value::<Option<String>>()?.unwrap_or_default();
                            None
                        }
                        MetricField::Description => {
                            m.description = map.next_value::<Option<String>>()?.unwrap_or_default();
                            None
                        }
                        MetricField::Unit => {
                            m.unit = map.next_value::<Option<String>>()?.unwrap_or_default();
                            None
                        }
                        MetricField::Metadata => {
                            m.metadata = list::<JKeyValue, KeyValue>(map.next_value()?);
                            None
                        }
                        MetricField::Gauge => map
                            .next_value::<Option<JGauge>>()?
                            .map(|g| Data::Gauge(g.into())),
                        MetricField::Sum => map
                            .next_value::<Option<JSum>>()?
                            .map(|s| Data::Sum(s.into())),
                        MetricField::Histogram => map
                            .next_value::<Option<JHistogram>>()?
                            .map(|h| Data::Histogram(h.into())),
                        MetricField::ExponentialHistogram => map
                            .next_value::<Option<JExponentialHistogram>>()?
                            .map(|h| Data::ExponentialHistogram(h.into())),
                        MetricField::Summary => map
                            .next_value::<Option<JSummary>>()?
                            .map(|s| Data::Summary(s.into())),
                        MetricField::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            None
                        }
                    };
                    if data.is_some() {
                        m.data = data;
                    }
                }
                Ok(JMetric(m))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JGauge {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<JNumberDataPoint>>,
}

impl From<JGauge> for Gauge {
    fn from(j: JGauge) -> Self {
        Self {
            data_points: list(j.data_points),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JSum {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<JNumberDataPoint>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Option<Enum<TemporalityNames>>,
    #[serde(alias = "is_monotonic")]
    is_monotonic: Option<bool>,
}

impl From<JSum> for Sum {
    fn from(j: JSum) -> Self {
        Self {
            data_points: list(j.data_points),
            aggregation_temporality: Enum::get(j.aggregation_temporality),
            is_monotonic: j.is_monotonic.unwrap_or_default(),
        }
    }
}

/// `NumberDataPoint` and `Exemplar` share the `value` oneof (`asDouble`, `asInt`) and most
/// fields; both are read field by field so that the last value member wins.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum PointField {
    #[serde(rename = "attributes")]
    Attributes,
    #[serde(rename = "filteredAttributes", alias = "filtered_attributes")]
    FilteredAttributes,
    #[serde(rename = "startTimeUnixNano", alias = "start_time_unix_nano")]
    StartTime,
    #[serde(rename = "timeUnixNano", alias = "time_unix_nano")]
    Time,
    #[serde(rename = "asDouble", alias = "as_double")]
    AsDouble,
    #[serde(rename = "asInt", alias = "as_int")]
    AsInt,
    #[serde(rename = "exemplars")]
    Exemplars,
    #[serde(rename = "flags")]
    Flags,
    #[serde(rename = "spanId", alias = "span_id")]
    SpanId,
    #[serde(rename = "traceId", alias = "trace_id")]
    TraceId,
    #[serde(other)]
    Unknown,
}

/// The fields of a number point or an exemplar as read.
#[derive(Default)]
struct PointFields {
    attributes: Vec<KeyValue>,
    start_time_unix_nano: u64,
    time_unix_nano: u64,
    value: Option<number_data_point::Value>,
    exemplars: Vec<Exemplar>,
    flags: u32,
    span_id: Vec<u8>,
    trace_id: Vec<u8>,
}

/// Reads a `NumberDataPoint` (`exemplar` false) or an `Exemplar`; the fields of the other
/// message are unknown fields here, ignored.
fn visit_point<'de, A: MapAccess<'de>>(
    mut map: A,
    exemplar: bool,
) -> Result<PointFields, A::Error> {
    use number_data_point::Value;
    let mut p = PointFields::default();
    while let Some(field) = map.next_key::<PointField>()? {
        let known = match field {
            PointField::Attributes
            | PointField::StartTime
            | PointField::Exemplars
            | PointField::Flags => !exemplar,
            PointField::FilteredAttributes | PointField::SpanId | PointField::TraceId => exemplar,
            PointField::Time | PointField::AsDouble | PointField::AsInt => true,
            PointField::Unknown => false,
        };
        if !known {
            map.next_value::<IgnoredAny>()?;
            continue;
        }
        match field {
            PointField::Attributes | PointField::FilteredAttributes => {
                p.attributes = list::<JKeyValue, KeyValue>(map.next_value()?);
            }
            PointField::StartTime => {
                p.start_time_unix_nano = Int::get(map.next_value::<Option<Int<u64>>>()?);
            }
            PointField::Time => {
                p.time_unix_nano = Int::get(map.next_value::<Option<Int<u64>>>()?);
            }
            PointField::AsDouble => {
                if let Some(v) = map.next_value::<Option<Double>>()? {
                    p.value = Some(Value::AsDouble(v.0));
                }
            }
            PointField::AsInt => {
                if let Some(v) = map.next_value::<Option<Int<i64>>>()? {
                    p.value = Some(Value::AsInt(v.0));
                }
            }
            PointField::Exemplars => {
                p.exemplars = list::<JExemplar, Exemplar>(map.next_value()?);
            }
            PointField::Flags => p.flags = Int::get(map.next_value::<Option<Int<u32>>>()?),
            PointField::SpanId => p.span_id = Hex::get(map.next_value::<Option<Hex>>()?),
            PointField::TraceId => p.trace_id = Hex::get(map.next_value::<Option<Hex>>()?),
            PointField::Unknown => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(p)
}

struct JNumberDataPoint(NumberDataPoint);

impl From<JNumberDataPoint> for NumberDataPoint {
    fn from(j: JNumberDataPoint) -> Self {
        j.0
    }
}

impl<'de> Deserialize<'de> for JNumberDataPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JNumberDataPoint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumberDataPoint object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JNumberDataPoint, A::Error> {
                let p = visit_point(map, false)?;
                Ok(JNumberDataPoint(NumberDataPoint {
                    attributes: p.attributes,
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    exemplars: p.exemplars,
                    flags: p.flags,
                    value: p.value,
                }))
            }
        }
        d.deserialize_map(V)
    }
}

struct JExemplar(Exemplar);

impl From<JExemplar> for Exemplar {
    fn from(j: JExemplar) -> Self {
        j.0
    }
}

impl<'de> Deserialize<'de> for JExemplar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JExemplar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Exemplar object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JExemplar, A::Error> {
                let p = visit_point(map, true)?;
                Ok(JExemplar(Exemplar {
                    filtered_attributes: p.attributes,
                    time_unix_nano: p.time_unix_nano,
                    span_id: p.span_id,
                    trace_id: p.trace_id,
                    value: p.value.map(|v| match v {
                        number_data_point::Value::AsDouble(d) => exemplar::Value::AsDouble(d),
                        number_data_point::Value::AsInt(i) => exemplar::Value::AsInt(i),
                    }),
                }))
            }
        }
        d.deserialize_map(V)
    }
}
