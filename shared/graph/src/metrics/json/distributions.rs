//! The distribution types of the metrics data oneof (histogram, exponential histogram,
//! summary): mirrored in full so that a JSON request converts into exactly the protobuf request
//! it stands for, although the node resource metrics do not read them.

use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Summary,
    SummaryDataPoint, exponential_histogram_data_point, summary_data_point,
};
use serde::Deserialize;

use super::{JExemplar, TemporalityNames, doubles, u64s};
use crate::otlp::protojson::scalars::{Double, Enum, Int};
use crate::otlp::protojson::{JKeyValue, list};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JHistogram {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<JHistogramDataPoint>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Option<Enum<TemporalityNames>>,
}

impl From<JHistogram> for Histogram {
    fn from(j: JHistogram) -> Self {
        Self {
            data_points: list(j.data_points),
            aggregation_temporality: Enum::get(j.aggregation_temporality),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JExponentialHistogram {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<JExponentialHistogramDataPoint>>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Option<Enum<TemporalityNames>>,
}

impl From<JExponentialHistogram> for ExponentialHistogram {
    fn from(j: JExponentialHistogram) -> Self {
        Self {
            data_points: list(j.data_points),
            aggregation_temporality: Enum::get(j.aggregation_temporality),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JSummary {
    #[serde(alias = "data_points")]
    data_points: Option<Vec<JSummaryDataPoint>>,
}

impl From<JSummary> for Summary {
    fn from(j: JSummary) -> Self {
        Self {
            data_points: list(j.data_points),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JHistogramDataPoint {
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    count: Option<Int<u64>>,
    sum: Option<Double>,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Option<Vec<Int<u64>>>,
    #[serde(alias = "explicit_bounds")]
    explicit_bounds: Option<Vec<Double>>,
    exemplars: Option<Vec<JExemplar>>,
    flags: Option<Int<u32>>,
    min: Option<Double>,
    max: Option<Double>,
}

impl From<JHistogramDataPoint> for HistogramDataPoint {
    fn from(j: JHistogramDataPoint) -> Self {
        Self {
            attributes: list(j.attributes),
            start_time_unix_nano: Int::get(j.start_time_unix_nano),
            time_unix_nano: Int::get(j.time_unix_nano),
            count: Int::get(j.count),
            sum: j.sum.map(|d| d.0),
            bucket_counts: u64s(j.bucket_counts),
            explicit_bounds: doubles(j.explicit_bounds),
            exemplars: list(j.exemplars),
            flags: Int::get(j.flags),
            min: j.min.map(|d| d.0),
            max: j.max.map(|d| d.0),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JBuckets {
    offset: Option<Int<i32>>,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Option<Vec<Int<u64>>>,
}

impl From<JBuckets> for exponential_histogram_data_point::Buckets {
    fn from(j: JBuckets) -> Self {
        Self {
            offset: Int::get(j.offset),
            bucket_counts: u64s(j.bucket_counts),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JExponentialHistogramDataPoint {
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    count: Option<Int<u64>>,
    sum: Option<Double>,
    scale: Option<Int<i32>>,
    #[serde(alias = "zero_count")]
    zero_count: Option<Int<u64>>,
    positive: Option<JBuckets>,
    negative: Option<JBuckets>,
    flags: Option<Int<u32>>,
    exemplars: Option<Vec<JExemplar>>,
    min: Option<Double>,
    max: Option<Double>,
    #[serde(alias = "zero_threshold")]
    zero_threshold: Option<Double>,
}

impl From<JExponentialHistogramDataPoint> for ExponentialHistogramDataPoint {
    fn from(j: JExponentialHistogramDataPoint) -> Self {
        Self {
            attributes: list(j.attributes),
            start_time_unix_nano: Int::get(j.start_time_unix_nano),
            time_unix_nano: Int::get(j.time_unix_nano),
            count: Int::get(j.count),
            sum: j.sum.map(|d| d.0),
            scale: Int::get(j.scale),
            zero_count: Int::get(j.zero_count),
            positive: j.positive.map(Into::into),
            negative: j.negative.map(Into::into),
            flags: Int::get(j.flags),
            exemplars: list(j.exemplars),
            min: j.min.map(|d| d.0),
            max: j.max.map(|d| d.0),
            zero_threshold: j.zero_threshold.map_or(0.0, |d| d.0),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JValueAtQuantile {
    quantile: Option<Double>,
    value: Option<Double>,
}

impl From<JValueAtQuantile> for summary_data_point::ValueAtQuantile {
    fn from(j: JValueAtQuantile) -> Self {
        Self {
            quantile: j.quantile.map_or(0.0, |d| d.0),
            value: j.value.map_or(0.0, |d| d.0),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JSummaryDataPoint {
    attributes: Option<Vec<JKeyValue>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Int<u64>>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<Int<u64>>,
    count: Option<Int<u64>>,
    sum: Option<Double>,
    #[serde(alias = "quantile_values")]
    quantile_values: Option<Vec<JValueAtQuantile>>,
    flags: Option<Int<u32>>,
}

impl From<JSummaryDataPoint> for SummaryDataPoint {
    fn from(j: JSummaryDataPoint) -> Self {
        Self {
            attributes: list(j.attributes),
            start_time_unix_nano: Int::get(j.start_time_unix_nano),
            time_unix_nano: Int::get(j.time_unix_nano),
            count: Int::get(j.count),
            sum: j.sum.map_or(0.0, |d| d.0),
            quantile_values: list(j.quantile_values),
            flags: Int::get(j.flags),
        }
    }
}
