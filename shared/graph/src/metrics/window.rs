//! Resource samples of one window, and what they become when it closes.
//!
//! Levels (gauges) are kept per (node, quantity, level, instance) and averaged per instance;
//! counters are kept per series and turned into increases and rates when the window closes,
//! using the series' last point of an earlier window (the per-graph [`CounterState`]) so that
//! the increase between two windows is not lost. Everything is sorted before it is summed, so
//! the result does not depend on the order in which samples arrived.
//!
//! Per node, each field of [`ResourceStats`] comes from the first [`Level`] (pod, container,
//! process, system) that yields a value in the window:
//! - `cpu_utilization`: the utilisation gauges, mean over instances; else cores busy (a cores
//!   gauge, else the rate of a CPU time counter) summed over instances and divided by the sum
//!   of the instances' CPU limits when any was reported, else averaged over instances (cores,
//!   so it can exceed 1);
//! - `memory_bytes`: per-instance mean, summed over instances;
//! - `memory_utilization`: the utilisation gauges, mean over instances; else `memory_bytes`
//!   divided by the sum of the memory limits, when any was reported;
//! - `network_*_bytes_per_s`: per series, the increase over the covered time, summed;
//! - `restarts`: the increase of the restart counts, summed (0 when counts arrived but did not
//!   grow).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use rustc_hash::FxHashMap;

use super::names::Level;
use super::{MetricSample, Quantity, Temporality};
use crate::snapshot::ResourceStats;
use crate::window::{Interner, NodeId};

/// Most samples one window of one graph holds; further ones are refused (counted).
pub(crate) const MAX_POINTS_PER_WINDOW: usize = 1_000_000;
/// Most counter series whose last point a graph remembers between windows.
pub(crate) const MAX_COUNTER_SERIES: usize = 100_000;
/// A series' last point older than this (before the window's end) is not used for the next
/// increase: the series went away, or its exporter stalled.
pub(crate) const COUNTER_STALENESS_NS: u64 = 10 * 60 * 1_000_000_000;

/// One point of a counter series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub time: u64,
    pub start: u64,
    pub value: f64,
}

type LevelKey = (NodeId, Quantity, Level, u64);
/// (node, quantity, level, instance, series, delta).
type CounterKey = (NodeId, Quantity, Level, u64, u64, bool);

/// The resource samples of one window of one graph.
#[derive(Debug, Default)]
pub(crate) struct ResourceAcc {
    levels: FxHashMap<LevelKey, Vec<(u64, f64)>>,
    counters: FxHashMap<CounterKey, Vec<Point>>,
    points: usize,
}

/// The last point of each cumulative counter series of a graph, from closed windows.
#[derive(Debug, Default)]
pub(crate) struct CounterState {
    last: FxHashMap<u64, Point>,
}

impl ResourceAcc {
    /// Adds a sample of `node`'s `instance`; `false` when the window is full.
    pub(crate) fn add(&mut self, node: NodeId, instance: u64, s: &MetricSample<'_>) -> bool {
        if self.points >= MAX_POINTS_PER_WINDOW {
            return false;
        }
        self.points += 1;
        if s.quantity.is_counter() {
            let key = (
                node,
                s.quantity,
                s.level,
                instance,
                s.series,
                s.temporality == Temporality::Delta,
            );
            self.counters.entry(key).or_default().push(Point {
                time: s.time_unix_nano,
                start: s.start_time_unix_nano,
                value: s.value,
            });
        } else {
            self.levels
                .entry((node, s.quantity, s.level, instance))
                .or_default()
                .push((s.time_unix_nano, s.value));
        }
        true
    }

    /// The resource statistics of every node with samples, updating the counter state with
    /// this window's last points. `end_ns` is the window's end.
    pub(crate) fn finish(
        self,
        state: &mut CounterState,
        interner: &Interner,
        end_ns: u64,
    ) -> Vec<(NodeId, ResourceStats)> {
        let mut nodes: BTreeMap<NodeId, NodeSums> = BTreeMap::new();
        for ((node, quantity, level, instance), mut values) in self.levels {
            sort_dedup(&mut values, |v| v.0, |v| v.1);
            let mean = sorted_sum(values.iter().map(|v| v.1)) / values.len() as f64;
            nodes
                .entry(node)
                .or_default()
                .push(quantity, level, instance, mean);
        }
        for ((node, quantity, level, instance, series, delta), mut points) in self.counters {
            sort_dedup(&mut points, |p| p.time, |p| p.value);
            let (increase, seconds) = if delta {
                delta_increase(&points)
            } else {
                let key = state_key(interner.name(node), quantity, level, instance, series);
                let prev = state.last.get(&key).copied().filter(|prev| {
                    points.first().is_some_and(|first| {
                        prev.time < first.time && first.time - prev.time <= COUNTER_STALENESS_NS
                    })
                });
                let result = cumulative_increase(prev, &points);
                if let Some(&last) = points.last()
                    && (state.last.contains_key(&key) || state.last.len() < MAX_COUNTER_SERIES)
                {
                    let entry = state.last.entry(key).or_insert(last);
                    if entry.time < last.time {
                        *entry = last;
                    }
                }
                result
            };
            let sums = nodes.entry(node).or_default();
            if quantity == Quantity::Restarts {
                sums.push(quantity, level, instance, increase);
            } else if seconds > 0.0 {
                sums.push(quantity, level, instance, increase / seconds);
            }
            // Else a single point: no rate yet (the node still appears in the snapshot).
        }
        state
            .last
            .retain(|_, p| p.time.saturating_add(COUNTER_STALENESS_NS) >= end_ns);
        nodes
            .into_iter()
            .map(|(node, sums)| (node, sums.stats()))
            .collect()
    }
}

/// Sorts by time (then value) and keeps one point per time, the largest: a retried export
/// must not count twice, and the choice must not depend on arrival order.
fn sort_dedup<T>(items: &mut Vec<T>, time: impl Fn(&T) -> u64, value: impl Fn(&T) -> f64) {
    items.sort_unstable_by_key(|a| (time(a), value(a).to_bits()));
    // `dedup_by` keeps the first of equal neighbours; reversing keeps the largest value.
    items.reverse();
    items.dedup_by(|a, b| time(a) == time(b));
    items.reverse();
}

/// The sum of non-negative values in a fixed order (so equal sets give equal sums).
fn sorted_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_unstable_by_key(|x| x.to_bits());
    v.iter().sum()
}

fn state_key(node: &str, quantity: Quantity, level: Level, instance: u64, series: u64) -> u64 {
    let mut h = DefaultHasher::new();
    node.hash(&mut h);
    quantity.hash(&mut h);
    level.hash(&mut h);
    instance.hash(&mut h);
    series.hash(&mut h);
    h.finish()
}

/// Increase and covered seconds of delta points (each covers `[start, time)`).
fn delta_increase(points: &[Point]) -> (f64, f64) {
    let increase = points.iter().map(|p| p.value).sum();
    let ns: u64 = points.iter().map(|p| p.time.saturating_sub(p.start)).sum();
    (increase, ns as f64 / 1e9)
}

/// Increase and covered seconds of a cumulative series (sorted, one point per time), from
/// `prev` (an earlier window's last point) on. A decrease, or a new start time, is a reset:
/// the counter started again from zero, so the new value is the increase since.
pub(crate) fn cumulative_increase(prev: Option<Point>, points: &[Point]) -> (f64, f64) {
    let mut increase = 0.0;
    let mut ns = 0u64;
    let mut last = prev;
    for &p in points {
        if let Some(a) = last {
            let reset = p.value < a.value || (a.start != 0 && p.start != 0 && p.start != a.start);
            increase += if reset { p.value } else { p.value - a.value };
            ns += p.time - a.time;
        }
        last = Some(p);
    }
    (increase, ns as f64 / 1e9)
}

/// Per-instance values of one node, by (quantity, level).
#[derive(Debug, Default)]
struct NodeSums {
    values: BTreeMap<(Quantity, Level), BTreeMap<u64, Vec<f64>>>,
}

impl NodeSums {
    fn push(&mut self, quantity: Quantity, level: Level, instance: u64, value: f64) {
        self.values
            .entry((quantity, level))
            .or_default()
            .entry(instance)
            .or_default()
            .push(value);
    }

    /// Per-instance values (series of one instance summed) of the first level that has any.
    fn first(&self, quantity: Quantity) -> Option<Vec<f64>> {
        Level::ALL
            .iter()
            .find_map(|&level| self.at(quantity, level))
    }

    fn at(&self, quantity: Quantity, level: Level) -> Option<Vec<f64>> {
        let instances = self.values.get(&(quantity, level))?;
        (!instances.is_empty()).then(|| {
            instances
                .values()
                .map(|v| sorted_sum(v.iter().copied()))
                .collect()
        })
    }

    /// Sum over every level (limits: only containers report them).
    fn all_levels_sum(&self, quantity: Quantity) -> f64 {
        Level::ALL
            .iter()
            .filter_map(|&level| self.at(quantity, level))
            .map(|v| sorted_sum(v.into_iter()))
            .sum()
    }

    fn stats(&self) -> ResourceStats {
        let sum = |v: Vec<f64>| sorted_sum(v.into_iter());
        let mean = |v: Vec<f64>| {
            let n = v.len() as f64;
            sorted_sum(v.into_iter()) / n
        };
        let cpu_utilization = self.first(Quantity::CpuUtilization).map(mean).or_else(|| {
            let cores = Level::ALL.iter().find_map(|&level| {
                self.at(Quantity::CpuCores, level)
                    .or_else(|| self.at(Quantity::CpuTime, level))
            })?;
            let limit = self.all_levels_sum(Quantity::CpuLimit);
            let n = cores.len() as f64;
            let total = sum(cores);
            Some(if limit > 0.0 {
                total / limit
            } else {
                total / n
            })
        });
        let memory_bytes = self.first(Quantity::MemoryUsage).map(sum);
        let memory_utilization = self
            .first(Quantity::MemoryUtilization)
            .map(mean)
            .or_else(|| {
                let limit = self.all_levels_sum(Quantity::MemoryLimit);
                memory_bytes
                    .filter(|_| limit > 0.0)
                    .map(|bytes| bytes / limit)
            });
        ResourceStats {
            cpu_utilization,
            memory_bytes,
            memory_utilization,
            network_rx_bytes_per_s: self.first(Quantity::NetworkRx).map(sum),
            network_tx_bytes_per_s: self.first(Quantity::NetworkTx).map(sum),
            restarts: self
                .first(Quantity::Restarts)
                .map(|v| sum(v).round() as u64),
        }
    }
}
