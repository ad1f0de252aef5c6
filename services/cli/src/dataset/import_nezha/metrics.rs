//! Nezha pod metrics (`metric/<pod>_metric.csv[.gz]`, one row per pod and minute) to OTLP
//! metrics, under the names of the ingest's resource-metric mapping
//! (`meshwatch_graph::metrics::names`, `docs/resource-metrics.md`). The rows are per pod, so
//! the pod-level names:
//!
//! | CSV column | metric | type, unit |
//! |---|---|---|
//! | `CpuUsageRate(%)` | `k8s.pod.cpu.utilization` = value / 100 | gauge, `1` |
//! | `CpuUsage(m)` | `k8s.pod.cpu.usage` = value / 1000 | gauge, `{cpu}` (cores) |
//! | `MemoryUsage(Mi)` | `k8s.pod.memory.usage` = value × 2^20 | gauge, `By` |
//! | `MemoryUsageRate(%)` | `k8s.pod.memory.utilization` = value / 100 | gauge, `1` |
//! | `NetworkReceiveBytes`, `NetworkTransmitBytes` | `k8s.pod.network.io`, `network.io.direction` = `receive` / `transmit` | cumulative monotonic sum, `By` |
//!
//! The network columns are rates (bytes per second over the preceding minute); OTLP has
//! counters, so each pod's counter starts at 0 one minute before its first row and adds
//! rate × seconds since the previous row (60 s for the first): its rate over a window is the
//! CSV's rate again. The other columns (Istio latencies, workload, syscalls, node metrics)
//! have no place in the mapping and are not written.
//!
//! Time: the `Time` column (`2022-08-22 03:51:19.799087274 +0000 UTC m=+…`), read as UTC. The
//! `TimeStamp` column is wrong in about 2 % of the rows (200,000,000 s and more ahead of
//! `Time`); it is used only where `Time` does not parse, and disagreements are counted.
//!
//! Streaming: the pod files are read side by side, one row each at a time, and merged by
//! minute: one request per minute with one resource per pod (`service.name`, `k8s.pod.name`,
//! `k8s.cluster.name`, as for traces). Rows that are not later than their file's previous row
//! are skipped and counted, so each counter only grows.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;

use super::csv::CsvReader;
use super::time::parse_utc_ns;
use super::{SCOPE_NAME, resource_attributes};
use crate::output::OtlpWriter;

/// Metric names written (the pod level of the ingest's mapping).
pub mod names {
    pub const CPU_UTILIZATION: &str = "k8s.pod.cpu.utilization";
    pub const CPU_USAGE: &str = "k8s.pod.cpu.usage";
    pub const MEMORY_USAGE: &str = "k8s.pod.memory.usage";
    pub const MEMORY_UTILIZATION: &str = "k8s.pod.memory.utilization";
    pub const NETWORK_IO: &str = "k8s.pod.network.io";
    /// Every name, in the order each resource lists them.
    pub const ALL: [&str; 5] = [
        CPU_UTILIZATION,
        CPU_USAGE,
        MEMORY_USAGE,
        MEMORY_UTILIZATION,
        NETWORK_IO,
    ];
}

/// Columns read, by header name.
const COLUMNS: [&str; 8] = [
    "Time",
    "TimeStamp",
    "CpuUsage(m)",
    "CpuUsageRate(%)",
    "MemoryUsage(Mi)",
    "MemoryUsageRate(%)",
    "NetworkReceiveBytes",
    "NetworkTransmitBytes",
];

const MINUTE_NS: u64 = 60_000_000_000;

/// What the metrics import read and wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetricStats {
    /// Pod metric files read.
    pub files: u64,
    pub rows: u64,
    /// Rows with a missing or unparsable time or value, or a negative or non-finite value:
    /// skipped.
    pub bad_rows: u64,
    /// Rows not later than the previous row of their file: skipped.
    pub out_of_order_rows: u64,
    /// Rows whose `TimeStamp` disagrees with `Time` by more than a second.
    pub timestamp_disagreements: u64,
    /// Requests written (one per minute with data).
    pub requests: u64,
    pub data_points: u64,
    /// Rows written per pod.
    pub rows_by_pod: BTreeMap<String, u64>,
    /// First and last sample time written, unix ns.
    pub first_time_unix_nano: u64,
    pub last_time_unix_nano: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    time: u64,
    cpu_millicores: f64,
    cpu_percent: f64,
    memory_mib: f64,
    memory_percent: f64,
    rx_per_s: f64,
    tx_per_s: f64,
}

/// One pod's file, read a row at a time.
struct Series {
    pod: String,
    reader: CsvReader,
    columns: [usize; COLUMNS.len()],
    head: Option<Sample>,
    previous: Option<u64>,
    start: u64,
    rx: f64,
    tx: f64,
    fields: Vec<String>,
}

impl Series {
    fn open(path: &Path, pod: String) -> anyhow::Result<Self> {
        let mut reader = CsvReader::open(path)?;
        let mut fields = Vec::new();
        if !reader.next_record(&mut fields)? {
            bail!("{}: empty metric file", path.display());
        }
        let mut columns = [0usize; COLUMNS.len()];
        for (slot, name) in columns.iter_mut().zip(COLUMNS) {
            *slot = fields
                .iter()
                .position(|f| f.trim_start_matches('\u{feff}') == name)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: not a Nezha pod metric file: no column {name:?} in {fields:?}",
                        path.display()
                    )
                })?;
        }
        Ok(Self {
            pod,
            reader,
            columns,
            head: None,
            previous: None,
            start: 0,
            rx: 0.0,
            tx: 0.0,
            fields,
        })
    }

    /// Reads the next good row into `head` (none at the end of the file).
    fn advance(&mut self, stats: &mut MetricStats) -> anyhow::Result<()> {
        self.head = None;
        while self.reader.next_record(&mut self.fields)? {
            stats.rows += 1;
            let Some(sample) = self.parse(stats) else {
                stats.bad_rows += 1;
                continue;
            };
            if self.previous.is_some_and(|p| sample.time <= p) {
                stats.out_of_order_rows += 1;
                continue;
            }
            self.head = Some(sample);
            return Ok(());
        }
        Ok(())
    }

    fn parse(&self, stats: &mut MetricStats) -> Option<Sample> {
        let field = |i: usize| self.fields.get(self.columns[i]).map(|s| s.trim());
        let value = |i: usize| {
            field(i)?
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let stamp = field(1).and_then(|s| s.parse::<u64>().ok());
        let time = match (field(0).and_then(parse_utc_ns), stamp) {
            (Some(t), Some(s)) => {
                if t / 1_000_000_000 > s + 1 || s > t / 1_000_000_000 + 1 {
                    stats.timestamp_disagreements += 1;
                }
                t
            }
            (Some(t), None) => t,
            (None, Some(s)) => s.checked_mul(1_000_000_000)?,
            (None, None) => return None,
        };
        Some(Sample {
            time,
            cpu_millicores: value(2)?,
            cpu_percent: value(3)?,
            memory_mib: value(4)?,
            memory_percent: value(5)?,
            rx_per_s: value(6)?,
            tx_per_s: value(7)?,
        })
    }

    /// The resource of the head sample, and moves on.
    fn take(&mut self, system: &str, stats: &mut MetricStats) -> anyhow::Result<ResourceMetrics> {
        let s = self.head.take().ok_or_else(|| anyhow::anyhow!("no row"))?;
        let seconds = match self.previous {
            Some(p) => (s.time - p) as f64 / 1e9,
            None => {
                self.start = s.time.saturating_sub(MINUTE_NS);
                60.0
            }
        };
        self.previous = Some(s.time);
        self.rx += s.rx_per_s * seconds;
        self.tx += s.tx_per_s * seconds;
        let gauge = |name: &str, unit: &str, value: f64| Metric {
            name: name.to_owned(),
            unit: unit.to_owned(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(s.time, 0, value, None)],
            })),
            ..Metric::default()
        };
        let metrics = vec![
            gauge(names::CPU_UTILIZATION, "1", s.cpu_percent / 100.0),
            gauge(names::CPU_USAGE, "{cpu}", s.cpu_millicores / 1000.0),
            gauge(
                names::MEMORY_USAGE,
                "By",
                (s.memory_mib * 1_048_576.0).round(),
            ),
            gauge(names::MEMORY_UTILIZATION, "1", s.memory_percent / 100.0),
            Metric {
                name: names::NETWORK_IO.to_owned(),
                unit: "By".to_owned(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: vec![
                        point(s.time, self.start, self.rx.round(), Some("receive")),
                        point(s.time, self.start, self.tx.round(), Some("transmit")),
                    ],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })),
                ..Metric::default()
            },
        ];
        stats.data_points += 6;
        *stats.rows_by_pod.entry(self.pod.clone()).or_default() += 1;
        if stats.first_time_unix_nano == 0 || s.time < stats.first_time_unix_nano {
            stats.first_time_unix_nano = s.time;
        }
        stats.last_time_unix_nano = stats.last_time_unix_nano.max(s.time);
        self.advance(stats)?;
        Ok(ResourceMetrics {
            resource: Some(Resource {
                attributes: resource_attributes(&self.pod, system),
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    ..InstrumentationScope::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
    }
}

fn point(time: u64, start: u64, value: f64, direction: Option<&str>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: direction
            .map(|d| {
                vec![KeyValue {
                    key: "network.io.direction".to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(d.to_owned())),
                    }),
                    ..KeyValue::default()
                }]
            })
            .unwrap_or_default(),
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    }
}

/// Writes the pod metric files `files` ((path, pod) pairs) to `out`.
pub fn import(
    files: &[(&Path, String)],
    system: &str,
    out: &mut OtlpWriter,
) -> anyhow::Result<MetricStats> {
    let mut stats = MetricStats::default();
    let mut series = Vec::with_capacity(files.len());
    for (path, pod) in files {
        let mut s = Series::open(path, pod.clone())?;
        s.advance(&mut stats)?;
        series.push(s);
        stats.files += 1;
    }
    while let Some(minute) = series
        .iter()
        .filter_map(|s| s.head.map(|h| h.time / MINUTE_NS))
        .min()
    {
        let mut resource_metrics = Vec::new();
        for s in &mut series {
            while s.head.is_some_and(|h| h.time / MINUTE_NS == minute) {
                resource_metrics.push(s.take(system, &mut stats)?);
            }
        }
        out.write_metrics(&ExportMetricsServiceRequest { resource_metrics })?;
        stats.requests += 1;
    }
    Ok(stats)
}
