//! A mergeable relative-error quantile sketch (after DDSketch, Masson et al., VLDB 2019).
//!
//! A value `v > 0` falls in bucket `i = ceil(ln v / ln γ)` with `γ = (1 + α) / (1 − α)`; bucket
//! `i` covers `(γ^(i−1), γ^i]` and is reported as `2γ^i / (γ + 1)`, which is within relative
//! error `α` of every value in it. Negative values (a client-minus-server gap under clock skew)
//! go to a second store by magnitude; magnitudes below `min_value` count as zero. Two sketches
//! with the same `α` merge exactly by adding bucket counts, so partial snapshots of several
//! ingest replicas combine without loss.

use serde::{Deserialize, Serialize};

/// Relative accuracy used throughout Meshwatch (1 %).
pub const DEFAULT_ALPHA: f64 = 0.01;
/// Smallest magnitude kept in a bucket, in the sketch's unit (milliseconds: 100 ns).
pub const DEFAULT_MIN_VALUE: f64 = 1e-4;
/// Most buckets per store; beyond it the lowest buckets collapse into one (bounded memory:
/// ~1,200 buckets already span 100 ns to 3 hours at 1 %).
pub const MAX_BUCKETS: usize = 2048;

/// Errors from combining or decoding sketches.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SketchError {
    #[error("sketches with different accuracy cannot merge (alpha {left} vs {right})")]
    AlphaMismatch { left: f64, right: f64 },
    #[error("invalid sketch: {0}")]
    Invalid(&'static str),
}

/// Dense bucket counts starting at `offset`. The vector may hold empty buckets at either end
/// (room to grow without copying); [`Store::trimmed`] gives the buckets that hold counts, and
/// equality compares those.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Store {
    pub offset: i32,
    pub counts: Vec<u64>,
}

impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        self.trimmed() == other.trimmed()
    }
}

impl Store {
    /// The offset and counts of the buckets from the first to the last non-empty one.
    pub fn trimmed(&self) -> (i32, &[u64]) {
        let Some(first) = self.counts.iter().position(|&c| c > 0) else {
            return (0, &[]);
        };
        let last = self.counts.iter().rposition(|&c| c > 0).unwrap_or(first);
        (self.offset + first as i32, &self.counts[first..=last])
    }

    fn add(&mut self, index: i32, n: u64) {
        if self.counts.is_empty() {
            // Start in the middle of a small range: neighbours of the first value fit without
            // copying.
            const START: usize = 8;
            self.counts.resize(2 * START, 0);
            self.offset = index - START as i32;
            self.counts[START] = n;
            return;
        }
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            if self.counts.len() + grow > MAX_BUCKETS {
                // Collapse: values below the kept range go to the lowest bucket.
                let first = self.counts.first_mut().expect("store is not empty");
                *first += n;
                return;
            }
            // Leave room below too, so that a run of ever smaller values does not copy the
            // store each time.
            let room = (self.counts.len() / 2)
                .max(4)
                .min(MAX_BUCKETS - self.counts.len() - grow);
            let front = grow + room;
            let mut counts = Vec::with_capacity(front + self.counts.len());
            counts.resize(front, 0);
            counts.extend_from_slice(&self.counts);
            self.counts = counts;
            self.offset = index - room as i32;
        }
        let pos = (index - self.offset) as usize;
        if pos >= self.counts.len() {
            let needed = pos + 1;
            if needed > MAX_BUCKETS {
                // Keep the highest buckets: collapse the lowest ones into the new first bucket.
                let shift = needed - MAX_BUCKETS;
                let collapsed: u64 = self.counts.iter().take(shift + 1).sum();
                self.counts.drain(..shift.min(self.counts.len()));
                self.offset += shift as i32;
                if let Some(first) = self.counts.first_mut() {
                    *first = collapsed;
                }
            }
            let pos = (index - self.offset) as usize;
            self.counts.resize(pos + 1, 0);
            self.counts[pos] += n;
            return;
        }
        self.counts[pos] += n;
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The sketch. Values are in milliseconds wherever Meshwatch uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    pub alpha: f64,
    pub min_value: f64,
    pub positive: Store,
    pub negative: Store,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    #[serde(skip)]
    ln_gamma: f64,
}

impl Default for Sketch {
    fn default() -> Self {
        Self::new(DEFAULT_ALPHA, DEFAULT_MIN_VALUE)
    }
}

impl Sketch {
    /// A sketch with relative accuracy `alpha` in (0, 1).
    pub fn new(alpha: f64, min_value: f64) -> Self {
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Self {
            alpha,
            min_value,
            positive: Store::default(),
            negative: Store::default(),
            zero_count: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ln_gamma: gamma.ln(),
        }
    }

    /// Rebuilds a sketch from its parts (e.g. decoded from a snapshot), checking them.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        alpha: f64,
        min_value: f64,
        positive: Store,
        negative: Store,
        zero_count: u64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Result<Self, SketchError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(SketchError::Invalid("alpha must be in (0, 1)"));
        }
        if !(min_value > 0.0 && min_value.is_finite()) {
            return Err(SketchError::Invalid("min_value must be positive"));
        }
        if positive.counts.len() > MAX_BUCKETS || negative.counts.len() > MAX_BUCKETS {
            return Err(SketchError::Invalid("too many buckets"));
        }
        let mut s = Self::new(alpha, min_value);
        s.count = positive.total() + negative.total() + zero_count;
        s.positive = positive;
        s.negative = negative;
        s.zero_count = zero_count;
        if s.count > 0 {
            s.sum = sum;
            s.min = min;
            s.max = max;
        }
        Ok(s)
    }

    fn index(&self, magnitude: f64) -> i32 {
        // ceil(log_gamma(v)); the clamp keeps absurd values inside i32.
        (magnitude.ln() / self.ln_gamma).ceil().clamp(-1e6, 1e6) as i32
    }

    fn bucket_value(&self, index: i32) -> f64 {
        let gamma = self.ln_gamma.exp();
        2.0 * (self.ln_gamma * f64::from(index)).exp() / (gamma + 1.0)
    }

    /// Adds one observation. Non-finite values are ignored.
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let magnitude = value.abs();
        if magnitude < self.min_value {
            self.zero_count += 1;
        } else if value > 0.0 {
            let i = self.index(magnitude);
            self.positive.add(i, 1);
        } else {
            let i = self.index(magnitude);
            self.negative.add(i, 1);
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds every observation of `other`. Exact: the result equals a sketch that saw both
    /// streams.
    pub fn merge(&mut self, other: &Sketch) -> Result<(), SketchError> {
        if other.count == 0 {
            return Ok(());
        }
        if (self.alpha - other.alpha).abs() > 1e-12
            || (self.min_value - other.min_value).abs() > 1e-15
        {
            return Err(SketchError::AlphaMismatch {
                left: self.alpha,
                right: other.alpha,
            });
        }
        for (k, &c) in other.positive.counts.iter().enumerate() {
            if c > 0 {
                self.positive.add(other.positive.offset + k as i32, c);
            }
        }
        for (k, &c) in other.negative.counts.iter().enumerate() {
            if c > 0 {
                self.negative.add(other.negative.offset + k as i32, c);
            }
        }
        self.zero_count += other.zero_count;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The q-quantile (0 ≤ q ≤ 1), within relative error `alpha`, clamped to [min, max];
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        // Rank of the wanted observation, 0-based (lower quantile, as DDSketch does).
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let neg_total = self.negative.total();
        let value = if rank < neg_total {
            // Negative values, from the most negative (largest magnitude) upwards.
            let mut seen = 0;
            let mut found = None;
            for (k, &c) in self.negative.counts.iter().enumerate().rev() {
                seen += c;
                if seen > rank {
                    found = Some(-self.bucket_value(self.negative.offset + k as i32));
                    break;
                }
            }
            found
        } else if rank < neg_total + self.zero_count {
            Some(0.0)
        } else {
            let mut seen = neg_total + self.zero_count;
            let mut found = None;
            for (k, &c) in self.positive.counts.iter().enumerate() {
                seen += c;
                if seen > rank {
                    found = Some(self.bucket_value(self.positive.offset + k as i32));
                    break;
                }
            }
            found
        };
        // A sketch rebuilt from untrusted parts may hold min > max or NaN: clamp only when the
        // bounds are sane (`f64::clamp` panics otherwise).
        value.map(|v| {
            if self.min <= self.max {
                v.clamp(self.min, self.max)
            } else {
                v
            }
        })
    }

    /// Mean of the observations; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        sorted[rank]
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.mean(), None);
    }

    #[test]
    fn quantiles_within_relative_error() {
        let mut s = Sketch::default();
        let mut values: Vec<f64> = (1..=10_000).map(|i| f64::from(i) * 0.37).collect();
        for v in &values {
            s.add(*v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let got = s.quantile(q).expect("not empty");
            let want = exact_quantile(&values, q);
            assert!(
                (got - want).abs() <= want * DEFAULT_ALPHA + 1e-9,
                "q={q} got={got} want={want}"
            );
        }
        assert_eq!(s.count, 10_000);
    }

    #[test]
    fn negative_and_zero_values() {
        let mut s = Sketch::default();
        for v in [-5.0, -1.0, 0.0, 0.00001, 2.0, 3.0] {
            s.add(v);
        }
        assert_eq!(s.zero_count, 2);
        let q0 = s.quantile(0.0).expect("not empty");
        assert!((q0 + 5.0).abs() <= 5.0 * DEFAULT_ALPHA);
        assert!((s.quantile(1.0).expect("not empty") - 3.0).abs() <= 3.0 * DEFAULT_ALPHA);
        assert_eq!(s.quantile(0.4), Some(0.0));
    }

    #[test]
    fn quantile_does_not_panic_on_inconsistent_bounds() {
        let mut s = Sketch::default();
        s.add(5.0);
        s.min = 10.0;
        s.max = 1.0;
        assert!(s.quantile(0.5).is_some());
        s.min = f64::NAN;
        assert!(s.quantile(0.5).is_some());
    }

    #[test]
    fn buckets_stay_bounded() {
        let mut s = Sketch::default();
        let mut v = 1e-3;
        while v < 1e300 {
            s.add(v);
            v *= 1.001;
        }
        assert!(s.positive.counts.len() <= MAX_BUCKETS);
        assert_eq!(s.positive.total(), s.count);
    }

    #[test]
    fn merge_rejects_other_alpha() {
        let mut a = Sketch::new(0.01, DEFAULT_MIN_VALUE);
        let mut b = Sketch::new(0.02, DEFAULT_MIN_VALUE);
        b.add(1.0);
        a.add(1.0);
        assert!(matches!(
            a.merge(&b),
            Err(SketchError::AlphaMismatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn merge_is_exact(xs in prop::collection::vec(-1e5f64..1e6, 0..300),
                          ys in prop::collection::vec(-1e5f64..1e6, 0..300)) {
            let mut a = Sketch::default();
            let mut b = Sketch::default();
            let mut both = Sketch::default();
            for x in &xs { a.add(*x); both.add(*x); }
            for y in &ys { b.add(*y); both.add(*y); }
            a.merge(&b).expect("same alpha");
            prop_assert_eq!(&a.positive, &both.positive);
            prop_assert_eq!(&a.negative, &both.negative);
            prop_assert_eq!(a.zero_count, both.zero_count);
            prop_assert_eq!(a.count, both.count);
            for q in [0.5, 0.9, 0.99] {
                prop_assert_eq!(a.quantile(q), both.quantile(q));
            }
        }

        #[test]
        fn positive_quantiles_are_accurate(xs in prop::collection::vec(0.001f64..1e6, 1..500)) {
            let mut s = Sketch::default();
            for x in &xs { s.add(*x); }
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.5, 0.9, 0.95, 0.99] {
                let got = s.quantile(q).expect("not empty");
                let want = exact_quantile(&sorted, q);
                prop_assert!((got - want).abs() <= want * DEFAULT_ALPHA * 1.0001 + 1e-12,
                    "q={} got={} want={}", q, got, want);
            }
        }
    }
}
