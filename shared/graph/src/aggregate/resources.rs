//! OTLP metric samples into the windows of their graphs ([`Aggregator::ingest_metrics`]).

use super::Aggregator;
use crate::metrics::{DecodedMetrics, MetricRejectReason, MetricsReport};
use crate::snapshot::GraphSnapshot;

impl Aggregator {
    /// Aggregates the samples of a decoded metrics request ([`crate::metrics::extract`]).
    ///
    /// Each sample goes to the window of its time in the graph of its resource, on its
    /// service's node (a node that only reports metrics still appears in the snapshot, kind
    /// `service`). The window rules are those of spans: a sample whose window was emitted or
    /// is behind the watermark by more than the allowed lateness is late, and samples move the
    /// watermark. `now_ms` is the wall clock in live mode (samples more than
    /// `max_future_skew_ms` ahead of it are rejected) and `None` offline. Snapshots of the
    /// windows this closes are appended to `out`; the report counts every data point of the
    /// request once.
    pub fn ingest_metrics(
        &mut self,
        metrics: &DecodedMetrics<'_>,
        now_ms: Option<i64>,
        out: &mut Vec<GraphSnapshot>,
    ) -> MetricsReport {
        let mut report = MetricsReport {
            ignored: metrics.ignored,
            rejected: metrics.rejected.clone(),
            ..MetricsReport::default()
        };
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        for resource in &metrics.resources {
            slots.push(self.resource_slot(&resource.graph_values, resource.service));
        }
        let max_ns = now_ms.map(|now| {
            u64::try_from(now)
                .unwrap_or(0)
                .saturating_mul(1_000_000)
                .saturating_add(u64::from(self.cfg.max_future_skew_ms) * 1_000_000)
        });
        for sample in &metrics.samples {
            let points = u64::from(sample.points);
            let resource = metrics.resources.get(sample.resource as usize);
            let (Some(&(slot, node, _)), Some(resource)) =
                (slots.get(sample.resource as usize), resource)
            else {
                // A decoder bug would land here; count it rather than panic.
                report
                    .rejected
                    .add(sample.metric, MetricRejectReason::InvalidTimestamp, points);
                continue;
            };
            self.touched[slot] = true;
            if sample.time_unix_nano == 0 {
                report
                    .rejected
                    .add(sample.metric, MetricRejectReason::InvalidTimestamp, points);
                continue;
            }
            if max_ns.is_some_and(|max| sample.time_unix_nano > max) {
                report
                    .rejected
                    .add(sample.metric, MetricRejectReason::FutureTimestamp, points);
                continue;
            }
            let t_ms = i64::try_from(sample.time_unix_nano / 1_000_000).unwrap_or(i64::MAX);
            let graph = &mut self.graphs[slot];
            let Some(win) = graph.admit(&self.cfg, t_ms, now_ms) else {
                report.late += points;
                continue;
            };
            graph.interner.touch(node, win);
            let window = graph.window(win);
            if window.resources.add(node, resource.instance, sample) {
                window.node(node);
                report.accepted += points;
            } else {
                report
                    .rejected
                    .add(sample.metric, MetricRejectReason::WindowFull, points);
            }
        }
        self.slots = slots;
        self.close_touched(now_ms, out);
        report
    }
}
