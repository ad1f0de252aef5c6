//! OTLP metrics to node resource metrics (ARCHITECTURE.md §3, §4; `docs/resource-metrics.md`).
//!
//! An `ExportMetricsServiceRequest` (protobuf via `prost`, or OTLP/JSON via [`decode_json`]) is
//! read by [`extract`] into [`DecodedMetrics`]: per resource the graph, the service and an
//! instance key, and one [`MetricSample`] per data point (or per group of data points of one
//! metric at one time, such as the per-CPU, per-mode points of `system.cpu.utilization`) of the
//! metrics in the mapping ([`names`]). [`crate::Aggregator::ingest_metrics`] places the samples
//! into the windows of their timestamps, under the same watermark and lateness rules as spans,
//! and each closed window's snapshot carries the [`crate::snapshot::ResourceStats`] of the
//! services that reported samples in it.
//!
//! - [`names`]: which metric names count, what they measure and at which level;
//! - [`attribution`]: resource attributes to the service (`service.name`, else
//!   `k8s.deployment.name`, else the workload name in `k8s.pod.name`) and the instance;
//! - [`extract`]: the owned request to samples, with the per-point checks;
//! - [`json`]: OTLP/JSON decoding (same rules as the trace decoder);
//! - `window`: per-window accumulation, and counters to rates across windows and resets.
//!
//! Every data point of a request ends in exactly one of: accepted, late, rejected (with a
//! reason) or ignored (a metric outside the mapping, a `system.memory.state` other than
//! `used`, an idle CPU time counter, a point flagged as having no recorded value).

pub mod attribution;
pub mod extract;
pub mod json;
pub mod names;
pub(crate) mod window;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use crate::span::GraphValues;

pub use extract::extract;
pub use json::{MetricsJsonError, decode_json};
pub use names::{Level, MetricName, classify};

/// Decodes the protobuf encoding of an `ExportMetricsServiceRequest` (`prost`: metrics arrive at
/// a far lower rate than spans, so the owned decode is cheap enough).
pub fn decode_protobuf(bytes: &[u8]) -> Result<ExportMetricsServiceRequest, prost::DecodeError> {
    ExportMetricsServiceRequest::decode(bytes)
}

/// What a sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantity {
    /// Busy fraction of the CPU, 0..=1 (gauge).
    CpuUtilization,
    /// CPU cores busy (gauge).
    CpuCores,
    /// CPU seconds consumed (counter); its rate is cores busy.
    CpuTime,
    /// CPU limit, cores (gauge).
    CpuLimit,
    /// Memory in use, bytes (gauge).
    MemoryUsage,
    /// Memory utilisation, 0..=1 (gauge).
    MemoryUtilization,
    /// Memory limit, bytes (gauge).
    MemoryLimit,
    /// Network bytes received (counter).
    NetworkRx,
    /// Network bytes sent (counter).
    NetworkTx,
    /// Restarts (counter).
    Restarts,
}

impl Quantity {
    /// Counters are turned into increases and rates; the others are levels, averaged.
    pub fn is_counter(self) -> bool {
        matches!(
            self,
            Self::CpuTime | Self::NetworkRx | Self::NetworkTx | Self::Restarts
        )
    }
}

/// How a sample's value relates to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Temporality {
    /// A level at `time` (gauge, or the current value of an up-down counter).
    Level,
    /// A running total since `start_time` (cumulative sum; a gauge of a counter, such as
    /// `k8s.container.restarts`, is read the same way without a start time).
    Cumulative,
    /// The increase over `[start_time, time)` (delta sum).
    Delta,
}

/// One sample of one resource, ready for a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSample<'a> {
    /// Index of its resource in [`DecodedMetrics::resources`].
    pub resource: u32,
    /// The metric's name (for messages).
    pub metric: &'a str,
    pub quantity: Quantity,
    pub level: Level,
    /// Counters: the series (metric name and data point attributes, hashed); 0 for levels.
    pub series: u64,
    pub temporality: Temporality,
    /// 0 when unknown.
    pub start_time_unix_nano: u64,
    /// Never 0 ([`extract`] rejects such points).
    pub time_unix_nano: u64,
    /// Finite and not negative.
    pub value: f64,
    /// Data points this sample stands for (several for per-CPU or per-mode points).
    pub points: u32,
}

/// The resource attributes the aggregator needs, borrowed from the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricResource<'a> {
    /// Values of the configured graph-id attributes, in configuration order.
    pub graph_values: GraphValues<'a>,
    /// The service ([`attribution::service_of`]); never empty.
    pub service: &'a str,
    /// The instance: a hash of all resource attributes. Levels are averaged per instance
    /// before they are combined over the instances of a service.
    pub instance: u64,
}

/// Why a data point was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricRejectReason {
    InvalidTimestamp,
    FutureTimestamp,
    InvalidValue,
    UnsupportedType,
    MissingDirection,
    WindowFull,
}

impl MetricRejectReason {
    /// Every reason, in the order of [`MetricsReport::rejected_by_reason`].
    pub const ALL: [Self; 6] = [
        Self::InvalidTimestamp,
        Self::FutureTimestamp,
        Self::InvalidValue,
        Self::UnsupportedType,
        Self::MissingDirection,
        Self::WindowFull,
    ];

    /// Metric label (closed set).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::InvalidValue => "invalid_value",
            Self::UnsupportedType => "unsupported_type",
            Self::MissingDirection => "missing_direction",
            Self::WindowFull => "window_full",
        }
    }

    /// For messages to clients.
    pub fn describe(self) -> &'static str {
        match self {
            Self::InvalidTimestamp => {
                "time_unix_nano must be set, and a delta point's start must precede its time"
            }
            Self::FutureTimestamp => "time too far in the future",
            Self::InvalidValue => "value missing, not finite or negative",
            Self::UnsupportedType => {
                "type or temporality not usable for this metric (histograms, summaries, \
                 unspecified temporality, delta sums of levels)"
            }
            Self::MissingDirection => {
                "network.io point without network.io.direction receive or transmit"
            }
            Self::WindowFull => "too many data points in one window",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Rejected data points by reason, and the first one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Indexed like [`MetricRejectReason::ALL`].
    pub by_reason: [u64; MetricRejectReason::ALL.len()],
    /// Metric name of the first rejected point, and why.
    pub first: Option<(String, MetricRejectReason)>,
}

impl Rejections {
    pub fn add(&mut self, metric: &str, reason: MetricRejectReason, points: u64) {
        if points == 0 {
            return;
        }
        self.by_reason[reason.index()] += points;
        if self.first.is_none() {
            self.first = Some((metric.to_owned(), reason));
        }
    }

    pub fn total(&self) -> u64 {
        self.by_reason.iter().sum()
    }
}

/// A decoded metrics request: resources and the samples of the metrics in the mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedMetrics<'a> {
    pub resources: Vec<MetricResource<'a>>,
    pub samples: Vec<MetricSample<'a>>,
    /// Data points in the request, of every metric and type.
    pub data_points: u64,
    /// Data points not used: metrics outside the mapping, and the points of mapped metrics
    /// that do not count (see the module documentation).
    pub ignored: u64,
    /// Data points refused while extracting (type, value, missing attribute).
    pub rejected: Rejections,
}

impl DecodedMetrics<'_> {
    pub fn clear(&mut self) {
        self.resources.clear();
        self.samples.clear();
        self.data_points = 0;
        self.ignored = 0;
        self.rejected = Rejections::default();
    }
}

/// What one [`crate::Aggregator::ingest_metrics`] call did with a request's data points.
/// `accepted + late + rejected + ignored` is the request's number of data points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsReport {
    /// Data points aggregated into an open window.
    pub accepted: u64,
    /// Data points whose window had already closed (not aggregated).
    pub late: u64,
    /// Data points not used (metrics outside the mapping and the like); not an error.
    pub ignored: u64,
    /// Data points refused, by reason.
    pub rejected: Rejections,
}

impl MetricsReport {
    /// All data points refused as invalid.
    pub fn rejected(&self) -> u64 {
        self.rejected.total()
    }

    /// Data points not aggregated (late or invalid): OTLP's
    /// `partial_success.rejected_data_points`. Ignored points are not errors.
    pub fn not_accepted(&self) -> u64 {
        self.late + self.rejected()
    }

    /// A message for OTLP's `partial_success.error_message`, empty when nothing was refused.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        for (reason, &n) in MetricRejectReason::ALL.iter().zip(&self.rejected.by_reason) {
            if n > 0 {
                parts.push(format!("{n} data points rejected: {}", reason.describe()));
            }
        }
        if let Some((metric, reason)) = &self.rejected.first {
            parts.push(format!(
                "first rejected data point in metric {metric:?} ({})",
                reason.as_str()
            ));
        }
        if self.late > 0 {
            parts.push(format!(
                "{} data points arrived after their time window had closed (allowed lateness \
                 exceeded)",
                self.late
            ));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests;
