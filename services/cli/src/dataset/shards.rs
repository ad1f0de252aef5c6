//! Cutting one graph's window sequence into shards as the windows close, so that memory stays
//! bounded by the shard length, not the input's.
//!
//! - Windows are consecutive: a window without a snapshot between two observed ones is a
//!   masked step (`StepFeatures::missing`).
//! - A gap of `steps` or more missing windows ends a **segment**; the next observed window
//!   starts a new one. (A slice of `steps` windows inside such a gap would be all masked.)
//! - A shard holds at most `shard_steps` windows. Consecutive shards of a segment overlap by
//!   `steps - 1` windows, so every run of `steps` consecutive windows of a segment lies inside
//!   exactly one shard: a consumer slicing `steps`-long sequences from each shard sees each of
//!   them once, none lost at a shard boundary.

use anyhow::{bail, ensure};
use meshwatch_graph::features::StepFeatures;

/// The sharding parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardPlan {
    /// Longest sequence a consumer slices (T; T + H for a forecaster).
    pub steps: usize,
    /// Windows per shard at most.
    pub shard_steps: usize,
}

impl ShardPlan {
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.steps >= 1, "--steps must be at least 1");
        ensure!(
            self.shard_steps >= self.steps,
            "--shard-steps ({}) must be at least --steps ({})",
            self.shard_steps,
            self.steps
        );
        Ok(())
    }
}

/// A shard ready to be written.
#[derive(Debug)]
pub struct Shard<'a> {
    /// Segment of the graph's sequence (0, 1, ... after each long gap).
    pub segment: u32,
    /// Shard number within the graph (0, 1, ...).
    pub index: u32,
    /// Leading windows shared with the previous shard of the segment.
    pub overlap: usize,
    pub steps: &'a [StepFeatures],
}

/// Receives finished shards.
pub type Emit<'a> = dyn FnMut(Shard<'_>) -> anyhow::Result<()> + 'a;

/// The open shard of one graph.
#[derive(Debug)]
pub struct GraphShards {
    graph: String,
    window_ms: i64,
    plan: ShardPlan,
    steps: Vec<StepFeatures>,
    /// Leading entries of `steps` carried over from the previous shard.
    carried: usize,
    last_start_ms: Option<i64>,
    segment: u32,
    shards: u32,
    /// Observed windows pushed.
    pub windows_observed: u64,
    /// Missing windows filled in as masked steps.
    pub windows_missing: u64,
}

impl GraphShards {
    pub fn new(graph: &str, window_ms: u32, plan: ShardPlan) -> Self {
        Self {
            graph: graph.to_owned(),
            window_ms: i64::from(window_ms.max(1)),
            plan,
            steps: Vec::new(),
            carried: 0,
            last_start_ms: None,
            segment: 0,
            shards: 0,
            windows_observed: 0,
            windows_missing: 0,
        }
    }

    /// Segments started so far.
    pub fn segments(&self) -> u32 {
        if self.last_start_ms.is_some() {
            self.segment + 1
        } else {
            0
        }
    }

    /// Adds the next window of the graph. Windows must come in increasing order (the
    /// aggregator closes them so); an unobserved one (no nodes, no edges) is left out here and
    /// becomes a masked step only if an observed window follows.
    pub fn push(&mut self, step: StepFeatures, emit: &mut Emit<'_>) -> anyhow::Result<()> {
        if !step.observed {
            return Ok(());
        }
        let start = step.window_start_ms;
        if let Some(last) = self.last_start_ms {
            let delta = i128::from(start) - i128::from(last);
            let w = i128::from(self.window_ms);
            if delta <= 0 || delta % w != 0 {
                bail!(
                    "graph {}: window {start} ms does not follow window {last} ms on a {} ms grid",
                    self.graph,
                    self.window_ms
                );
            }
            let missing = delta / w - 1;
            if missing >= self.plan.steps as i128 {
                self.end_segment(emit)?;
            } else {
                for k in 1..=missing as i64 {
                    self.append(StepFeatures::missing(last + k * self.window_ms), emit)?;
                }
                self.windows_missing += missing as u64;
            }
        }
        self.append(step, emit)?;
        self.last_start_ms = Some(start);
        self.windows_observed += 1;
        Ok(())
    }

    fn append(&mut self, step: StepFeatures, emit: &mut Emit<'_>) -> anyhow::Result<()> {
        self.steps.push(step);
        if self.steps.len() >= self.plan.shard_steps {
            self.emit(emit)?;
            let keep = self.plan.steps - 1;
            let done = self.steps.len() - keep;
            self.steps.drain(..done);
            self.carried = keep;
        }
        Ok(())
    }

    fn emit(&mut self, emit: &mut Emit<'_>) -> anyhow::Result<()> {
        emit(Shard {
            segment: self.segment,
            index: self.shards,
            overlap: self.carried,
            steps: &self.steps,
        })?;
        self.shards += 1;
        Ok(())
    }

    fn end_segment(&mut self, emit: &mut Emit<'_>) -> anyhow::Result<()> {
        if self.steps.len() > self.carried {
            self.emit(emit)?;
        }
        self.steps.clear();
        self.carried = 0;
        self.segment += 1;
        Ok(())
    }

    /// Writes what is left (the end of the input).
    pub fn finish(&mut self, emit: &mut Emit<'_>) -> anyhow::Result<()> {
        if self.steps.len() > self.carried {
            self.emit(emit)?;
        }
        self.steps.clear();
        self.carried = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(start_ms: i64) -> StepFeatures {
        StepFeatures {
            observed: true,
            ..StepFeatures::missing(start_ms)
        }
    }

    /// (segment, index, overlap, [(window index, observed)]) of every shard.
    type Cut = (u32, u32, usize, Vec<(i64, bool)>);

    fn cut(plan: ShardPlan, windows: &[i64]) -> (Vec<Cut>, GraphShards) {
        let mut shards = Vec::new();
        let mut g = GraphShards::new("g", 10, plan);
        let mut emit = |s: Shard<'_>| {
            let steps = s
                .steps
                .iter()
                .map(|st| (st.window_start_ms / 10, st.observed))
                .collect();
            shards.push((s.segment, s.index, s.overlap, steps));
            Ok(())
        };
        for w in windows {
            g.push(observed(w * 10), &mut emit).expect("in order");
        }
        g.finish(&mut emit).expect("ok");
        (shards, g)
    }

    #[test]
    fn shards_overlap_by_steps_minus_one() {
        let plan = ShardPlan {
            steps: 2,
            shard_steps: 3,
        };
        let (shards, g) = cut(plan, &[0, 1, 2, 3, 4, 5]);
        let starts: Vec<(usize, Vec<i64>)> = shards
            .iter()
            .map(|(_, _, o, s)| (*o, s.iter().map(|x| x.0).collect()))
            .collect();
        assert_eq!(
            starts,
            [(0, vec![0, 1, 2]), (1, vec![2, 3, 4]), (1, vec![4, 5])]
        );
        // Each shard owns the 2-window slices starting in its first shard_steps - steps + 1
        // windows: (0,1) (1,2) | (2,3) (3,4) | (4,5): every slice once.
        assert_eq!(
            (g.windows_observed, g.windows_missing, g.segments()),
            (6, 0, 1)
        );
    }

    #[test]
    fn no_empty_trailing_shard() {
        let plan = ShardPlan {
            steps: 2,
            shard_steps: 3,
        };
        let (shards, _) = cut(plan, &[0, 1, 2]);
        assert_eq!(shards.len(), 1, "the carried window alone is not a shard");
    }

    #[test]
    fn short_gaps_are_masked_steps_long_gaps_split_segments() {
        let plan = ShardPlan {
            steps: 3,
            shard_steps: 100,
        };
        // Gap of 2 missing windows (3, 4): masked. Gap of 3 (7, 8, 9): new segment.
        let (shards, g) = cut(plan, &[0, 1, 2, 5, 6, 10, 11]);
        assert_eq!(shards.len(), 2);
        assert_eq!(
            shards[0].3,
            [
                (0, true),
                (1, true),
                (2, true),
                (3, false),
                (4, false),
                (5, true),
                (6, true)
            ]
        );
        assert_eq!((shards[1].0, shards[1].1, shards[1].2), (1, 1, 0));
        assert_eq!(shards[1].3, [(10, true), (11, true)]);
        assert_eq!(
            (g.windows_observed, g.windows_missing, g.segments()),
            (7, 2, 2)
        );
    }

    #[test]
    fn unobserved_windows_are_skipped_and_disorder_is_an_error() {
        let plan = ShardPlan {
            steps: 1,
            shard_steps: 10,
        };
        let mut g = GraphShards::new("g", 10, plan);
        let mut n = 0;
        let mut emit = |_: Shard<'_>| {
            n += 1;
            Ok(())
        };
        g.push(StepFeatures::missing(0), &mut emit)
            .expect("skipped");
        g.push(observed(20), &mut emit).expect("first");
        assert!(g.push(observed(20), &mut emit).is_err());
        assert!(g.push(observed(25), &mut emit).is_err(), "off the grid");
        g.finish(&mut emit).expect("ok");
        assert_eq!(n, 1);
        assert!(
            ShardPlan {
                steps: 4,
                shard_steps: 3
            }
            .validate()
            .is_err()
        );
        assert!(
            ShardPlan {
                steps: 0,
                shard_steps: 3
            }
            .validate()
            .is_err()
        );
    }
}
