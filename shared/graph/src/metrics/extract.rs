//! An owned `ExportMetricsServiceRequest` to [`DecodedMetrics`].
//!
//! Per data point of a mapped metric ([`super::names`]):
//! - a point flagged `DATA_POINT_FLAGS_NO_RECORDED_VALUE` is ignored;
//! - the value (`as_double` or `as_int`) must be present, finite and not negative, and
//!   `time_unix_nano` set; a delta point needs `0 < start_time_unix_nano < time_unix_nano`;
//! - gauges and cumulative sums are read as levels or running totals; a delta sum is read as
//!   increases (counters only: a delta of a level is refused), histograms and summaries are
//!   refused, as is an unspecified temporality;
//! - levels: the points of one metric at one time become one sample: CPU utilisation is the
//!   sum over non-idle `cpu.mode`s divided by the number of distinct `cpu.logical_number`s
//!   (the Collector's per-CPU, per-state `system.cpu.utilization`), every other level is the
//!   sum of the points (`system.memory.*` only with `system.memory.state` `used`);
//! - counters: one sample per point, its series named by the metric, its attributes and its
//!   temporality; `*.network.io` needs `network.io.direction` `receive` or `transmit`, an idle
//!   `cpu.mode` of a CPU time counter is ignored.

use std::hash::{DefaultHasher, Hash, Hasher};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};

use super::attribution::instance_key;
use super::names::{Level, MetricName, attr, classify};
use super::{
    DecodedMetrics, MetricRejectReason, MetricResource, MetricSample, Quantity, Temporality,
};
use crate::otlp::attrs::{empty_resource, set_resource_attr};
use crate::otlp::owned::string_value;
use crate::service::service_name;
use crate::span::ResourceKeys;

pub use crate::service::K8S_POD_NAME;

/// `DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`.
const NO_RECORDED_VALUE: u32 = 1;

/// Fills `out` (cleared first) from `req`: one [`MetricResource`] per `ResourceMetrics`, in
/// order (also for those without metrics), and the samples of their mapped metrics.
pub fn extract<'a>(
    req: &'a ExportMetricsServiceRequest,
    keys: &ResourceKeys,
    out: &mut DecodedMetrics<'a>,
) {
    out.clear();
    let mut scratch = Vec::new();
    for rm in &req.resource_metrics {
        // More than u32::MAX resources cannot be in memory; saturate rather than panic.
        let index = u32::try_from(out.resources.len()).unwrap_or(u32::MAX);
        let mut view = empty_resource(keys);
        let mut instance = 0;
        if let Some(resource) = &rm.resource {
            for kv in &resource.attributes {
                set_resource_attr(&mut view, keys, kv.key.as_bytes(), string_value(kv));
            }
            instance = instance_key(&resource.attributes);
        }
        out.resources.push(MetricResource {
            graph_values: view.graph_values,
            service: service_name(&view.service_values, &keys.service_keys),
            instance,
        });
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                extract_metric(m, index, out, &mut scratch);
            }
        }
    }
}

/// A level point before points of the same time are combined.
#[derive(Debug, Clone, Copy)]
struct LevelPoint {
    time: u64,
    value: f64,
    idle: bool,
    cpu: Option<u64>,
}

fn point_count(m: &Metric) -> usize {
    match &m.data {
        None => 0,
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
    }
}

fn extract_metric<'a>(
    m: &'a Metric,
    resource: u32,
    out: &mut DecodedMetrics<'a>,
    scratch: &mut Vec<LevelPoint>,
) {
    let count = point_count(m) as u64;
    out.data_points += count;
    let Some((name, level)) = classify(&m.name) else {
        out.ignored += count;
        return;
    };
    let counter = matches!(
        name,
        MetricName::CpuTime | MetricName::NetworkIo | MetricName::Restarts
    );
    let (points, temporality) = match &m.data {
        None => return,
        Some(metric::Data::Gauge(g)) => (
            &g.data_points,
            if counter {
                Temporality::Cumulative
            } else {
                Temporality::Level
            },
        ),
        Some(metric::Data::Sum(s)) => match (s.aggregation_temporality, counter) {
            (2, true) => (&s.data_points, Temporality::Cumulative),
            // The current value of an up-down counter (`process.memory.usage`) is a level.
            (2, false) => (&s.data_points, Temporality::Level),
            (1, true) => (&s.data_points, Temporality::Delta),
            _ => {
                out.rejected
                    .add(&m.name, MetricRejectReason::UnsupportedType, count);
                return;
            }
        },
        Some(_) => {
            out.rejected
                .add(&m.name, MetricRejectReason::UnsupportedType, count);
            return;
        }
    };
    if counter {
        counter_points(m, name, level, temporality, points, resource, out);
    } else {
        level_points(m, name, level, points, resource, out, scratch);
    }
}

/// The value of a point, if it is usable.
fn value_of(p: &NumberDataPoint) -> Result<f64, MetricRejectReason> {
    let v = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => return Err(MetricRejectReason::InvalidValue),
    };
    if !v.is_finite() || v < 0.0 {
        return Err(MetricRejectReason::InvalidValue);
    }
    if p.time_unix_nano == 0 {
        return Err(MetricRejectReason::InvalidTimestamp);
    }
    Ok(v)
}

/// The value of the first of `names` present (the last occurrence of a key wins).
fn find<'a>(attrs: &'a [KeyValue], names: &[&str]) -> Option<&'a any_value::Value> {
    names.iter().find_map(|name| {
        attrs
            .iter()
            .rev()
            .find(|kv| kv.key == *name)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    })
}

fn find_str<'a>(attrs: &'a [KeyValue], names: &[&str]) -> Option<&'a str> {
    match find(attrs, names)? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn is_idle(attrs: &[KeyValue]) -> bool {
    find_str(attrs, &attr::CPU_MODE) == Some("idle")
}

fn level_points<'a>(
    m: &'a Metric,
    name: MetricName,
    level: Level,
    points: &[NumberDataPoint],
    resource: u32,
    out: &mut DecodedMetrics<'a>,
    scratch: &mut Vec<LevelPoint>,
) {
    let quantity = match name {
        MetricName::CpuUtilization => Quantity::CpuUtilization,
        MetricName::CpuCores => Quantity::CpuCores,
        MetricName::CpuLimit => Quantity::CpuLimit,
        MetricName::MemoryUsage => Quantity::MemoryUsage,
        MetricName::MemoryUtilization => Quantity::MemoryUtilization,
        MetricName::MemoryLimit => Quantity::MemoryLimit,
        // Counters are handled by `counter_points`.
        MetricName::CpuTime | MetricName::NetworkIo | MetricName::Restarts => return,
    };
    scratch.clear();
    for p in points {
        if p.flags & NO_RECORDED_VALUE != 0 {
            out.ignored += 1;
            continue;
        }
        let value = match value_of(p) {
            Ok(v) => v,
            Err(reason) => {
                out.rejected.add(&m.name, reason, 1);
                continue;
            }
        };
        if matches!(
            quantity,
            Quantity::MemoryUsage | Quantity::MemoryUtilization
        ) && find_str(&p.attributes, &attr::MEMORY_STATE).is_some_and(|s| s != "used")
        {
            out.ignored += 1;
            continue;
        }
        let (idle, cpu) = if quantity == Quantity::CpuUtilization {
            let cpu = find(&p.attributes, &attr::CPU_NUMBER).map(|v| {
                let mut h = DefaultHasher::new();
                match v {
                    any_value::Value::StringValue(s) => s.hash(&mut h),
                    any_value::Value::IntValue(i) => i.hash(&mut h),
                    _ => 0u8.hash(&mut h),
                }
                h.finish()
            });
            (is_idle(&p.attributes), cpu)
        } else {
            (false, None)
        };
        scratch.push(LevelPoint {
            time: p.time_unix_nano,
            value,
            idle,
            cpu,
        });
    }
    // Points of one time combine into one sample, whatever their order.
    scratch.sort_unstable_by(|a, b| {
        (a.time, a.idle, a.cpu, a.value.to_bits()).cmp(&(b.time, b.idle, b.cpu, b.value.to_bits()))
    });
    let mut cpus = Vec::new();
    for group in scratch.chunk_by(|a, b| a.time == b.time) {
        let busy: f64 = group.iter().filter(|p| !p.idle).map(|p| p.value).sum();
        let value = if quantity == Quantity::CpuUtilization {
            cpus.clear();
            cpus.extend(group.iter().filter_map(|p| p.cpu));
            cpus.sort_unstable();
            cpus.dedup();
            busy / cpus.len().max(1) as f64
        } else {
            busy
        };
        out.samples.push(MetricSample {
            resource,
            metric: &m.name,
            quantity,
            level,
            series: 0,
            temporality: Temporality::Level,
            start_time_unix_nano: 0,
            time_unix_nano: group[0].time,
            value,
            points: u32::try_from(group.len()).unwrap_or(u32::MAX),
        });
    }
}

fn counter_points<'a>(
    m: &'a Metric,
    name: MetricName,
    level: Level,
    temporality: Temporality,
    points: &[NumberDataPoint],
    resource: u32,
    out: &mut DecodedMetrics<'a>,
) {
    for p in points {
        if p.flags & NO_RECORDED_VALUE != 0 {
            out.ignored += 1;
            continue;
        }
        let value = match value_of(p) {
            Ok(v) => v,
            Err(reason) => {
                out.rejected.add(&m.name, reason, 1);
                continue;
            }
        };
        if temporality == Temporality::Delta
            && !(p.start_time_unix_nano > 0 && p.start_time_unix_nano < p.time_unix_nano)
        {
            out.rejected
                .add(&m.name, MetricRejectReason::InvalidTimestamp, 1);
            continue;
        }
        let quantity = match name {
            MetricName::CpuTime => {
                if is_idle(&p.attributes) {
                    out.ignored += 1;
                    continue;
                }
                Quantity::CpuTime
            }
            MetricName::Restarts => Quantity::Restarts,
            _ => match find_str(&p.attributes, &attr::NETWORK_IO_DIRECTION) {
                Some("receive") => Quantity::NetworkRx,
                Some("transmit") => Quantity::NetworkTx,
                _ => {
                    out.rejected
                        .add(&m.name, MetricRejectReason::MissingDirection, 1);
                    continue;
                }
            },
        };
        let mut h = DefaultHasher::new();
        m.name.hash(&mut h);
        instance_key(&p.attributes).hash(&mut h);
        (temporality as u8).hash(&mut h);
        out.samples.push(MetricSample {
            resource,
            metric: &m.name,
            quantity,
            level,
            series: h.finish(),
            temporality,
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            value,
            points: 1,
        });
    }
}
