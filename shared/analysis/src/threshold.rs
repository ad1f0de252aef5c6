//! Per-series adaptive thresholds on anomaly scores: SPOT and DSPOT (Siffer, Fouque, Termier,
//! Largouët, "Anomaly Detection in Streams with Extreme Value Theory", KDD 2017).
//!
//! # SPOT
//! The first `calibration_windows` finite scores `X_1..X_n` calibrate the model: `t` is their
//! empirical `initial_quantile` (the smallest `X_(k)` with `k ≥ ⌈p·n⌉`), the *peaks* are the
//! excesses `Y_i = X_i − t` of the scores above `t`, and a Generalised Pareto distribution
//! `(γ, σ)` is fitted to them ([`gpd::fit`], maximum likelihood by Grimshaw's reduction).
//! With `N_t` peaks among `n` normal scores, the threshold at risk `q` is (the paper's eq. (1))
//!
//! ```text
//! z_q = t + σ/γ·((q·n/N_t)^(−γ) − 1)        (γ ≠ 0)
//! z_q = t − σ·ln(q·n/N_t)                    (γ → 0)
//! ```
//!
//! so that `P(X > z_q) ≈ q`. Then each score `X`:
//! - `X > z_q`: an anomaly; the model is **not** updated;
//! - `t < X ≤ z_q`: a new peak `X − t`; `n` and `N_t` grow and the GPD is refitted (on the
//!   peaks as truncated at the threshold they were accepted under, [`gpd::fit_truncated`]:
//!   a plain refit would bias the tail light and let the false-alarm rate creep up);
//! - `X ≤ t`: `n` grows.
//!
//! `z_q` is never below `t` (when `q·n/N_t ≥ 1` the formula would put it there), and the
//! reported threshold is never below `min_threshold`. Memory is bounded: only the last
//! `max_peaks` peaks are kept for the fit (`n` and `N_t` keep counting all of them, so the
//! exceedance rate `N_t/n` stays a long-run estimate).
//!
//! # DSPOT (drift)
//! With `depth = Some(d)`, the model runs on `X'_i = X_i − M_i`, where `M_i` is the mean of the
//! last `d` normal scores (the first `d` normal scores only fill that window). The threshold
//! reported in score units is `z_q + M_i`, and normal scores slide into the window.
//!
//! # Warm-up
//! The first `warmup_windows` finite scores of a series (12: the detector's history length T)
//! are neither judged nor learned from: the detector scores a new service on a partial history,
//! and its first scores say little about its normal level. They are reported with threshold
//! `+∞` (never an anomaly); calibration starts after them.
//!
//! # Calibration fallback
//! Until calibrated, a score is judged against a robust threshold on the calibration scores
//! seen so far *and the current one*: Tukey's outer fence `max(min_threshold, Q3 +
//! fallback_iqrs·IQR)` (with the default 3, about mean + 4.7σ for normal data; unlike a
//! median-and-MAD rule it does not flag the upper mode of a two-level score series — a
//! service whose score alternates with its traffic — as extreme); for DSPOT, once its
//! window is full, on the scores relative to the moving average, plus that average. Counting the
//! current score means the first score of a series is never an anomaly on its own. A score of
//! twice the fence or more is set aside — not calibrated on — up to a tenth of
//! `calibration_windows` (at least one); scores just over the fence are the normal tail and
//! stay in: a fault during calibration would otherwise become the model, raising the
//! fence within a few windows so that the rest of the fault passes unflagged (seen on the local
//! topology: 4 windows of an error burst took the fence from 0.1 to 30). Past that budget
//! flagged scores enter as well, as in the paper (the batch is taken as normal): leaving all of
//! them out would stall the calibration for good on a series whose level moves while it
//! calibrates.
//!
//! Non-finite scores never update the model; `+∞` is reported as an anomaly, NaN and `−∞` are not.

pub mod gpd;
mod registry;
mod tail;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::{AnalysisError, Problems};
pub use gpd::{GpdFit, Peak};
pub use registry::{SeriesKey, SeriesState, Thresholds, ThresholdsState};
use tail::Tail;

/// Configuration of one adaptive threshold (the same for every series).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Risk `q`: the probability that a normal score exceeds the threshold (e.g. `1e-3`).
    pub risk: f64,
    /// First scores of a series that are neither judged nor learned from (threshold `+∞`).
    pub warmup_windows: usize,
    /// Normal scores used to calibrate the model (`n` of the initial batch).
    pub calibration_windows: usize,
    /// Quantile `p` of the calibration scores that sets `t`, the start of the tail.
    pub initial_quantile: f64,
    /// DSPOT: length of the moving average of normal scores the model runs relative to;
    /// `None` runs plain SPOT.
    pub depth: Option<usize>,
    /// Width, in interquartile ranges above the third quartile, of the threshold used while
    /// calibrating (Tukey's fence).
    pub fallback_iqrs: f64,
    /// Floor of every threshold reported.
    pub min_threshold: f64,
    /// Peaks kept for the GPD fit (the most recent ones).
    pub max_peaks: usize,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        Self {
            risk: 1e-3,
            warmup_windows: 12,
            calibration_windows: 100,
            initial_quantile: 0.9,
            depth: None,
            fallback_iqrs: 3.0,
            min_threshold: 0.0,
            max_peaks: 500,
        }
    }
}

impl ThresholdConfig {
    /// Checks every field, reporting all problems at once.
    pub fn validate(&self) -> Result<(), AnalysisError> {
        let mut p = Problems::default();
        p.check(
            !(self.risk > 0.0 && self.risk < 1.0),
            "risk must be in (0, 1)",
        );
        p.check(
            !(self.initial_quantile > 0.0 && self.initial_quantile < 1.0),
            "initial_quantile must be in (0, 1)",
        );
        p.check(
            self.risk >= 1.0 - self.initial_quantile,
            "risk must be below 1 - initial_quantile (the tail starts above the threshold)",
        );
        p.check(
            self.warmup_windows > 1_000_000,
            "warmup_windows must be at most 1000000",
        );
        p.check(
            !(2..=1_000_000).contains(&self.calibration_windows),
            "calibration_windows must be in 2..=1000000",
        );
        p.check(
            self.depth.is_some_and(|d| !(1..=100_000).contains(&d)),
            "depth must be in 1..=100000",
        );
        p.check(
            !(self.fallback_iqrs.is_finite() && self.fallback_iqrs >= 0.0),
            "fallback_iqrs must be finite and >= 0",
        );
        p.check(
            !self.min_threshold.is_finite(),
            "min_threshold must be finite",
        );
        p.check(
            !(1..=1_000_000).contains(&self.max_peaks),
            "max_peaks must be in 1..=1000000",
        );
        p.finish()
    }
}

/// What [`Spot::observe`] decided for one score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The threshold the score was compared with (score units).
    pub threshold: f64,
    /// `score > threshold`.
    pub is_anomaly: bool,
    /// Whether the threshold came from the calibrated model (else from the fallback).
    pub calibrated: bool,
}

/// One series' adaptive threshold: SPOT, or DSPOT when `depth` is set. Serialisable so that
/// its state can be persisted and restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spot {
    config: ThresholdConfig,
    /// Calibration values in model units (relative to the drift for DSPOT).
    calibration: Vec<f64>,
    /// DSPOT: the last `depth` normal raw scores.
    drift: VecDeque<f64>,
    tail: Option<Tail>,
    observed: u64,
    anomalies: u64,
    /// Flagged scores kept out of the calibration so far (see the module docs).
    #[serde(default)]
    set_aside: u64,
}

impl Spot {
    /// A fresh, uncalibrated threshold.
    pub fn new(config: ThresholdConfig) -> Result<Self, AnalysisError> {
        config.validate()?;
        Ok(Self::from_valid(config))
    }

    /// A fresh threshold from a configuration already validated.
    pub(crate) fn from_valid(config: ThresholdConfig) -> Self {
        Self {
            config,
            calibration: Vec::new(),
            drift: VecDeque::new(),
            tail: None,
            observed: 0,
            anomalies: 0,
            set_aside: 0,
        }
    }

    /// The configuration this threshold runs with.
    #[must_use]
    pub fn config(&self) -> &ThresholdConfig {
        &self.config
    }

    /// Whether the calibration is complete.
    #[must_use]
    pub fn is_calibrated(&self) -> bool {
        self.tail.is_some()
    }

    /// Finite scores observed so far (anomalies included).
    #[must_use]
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Scores reported as anomalies so far.
    #[must_use]
    pub fn anomalies(&self) -> u64 {
        self.anomalies
    }

    /// Judges `score` against the current threshold and, if it is normal, learns from it.
    pub fn observe(&mut self, score: f64) -> Decision {
        if !score.is_finite() {
            let threshold = self.threshold();
            let is_anomaly = score == f64::INFINITY;
            if is_anomaly {
                self.anomalies = self.anomalies.saturating_add(1);
            }
            return Decision {
                threshold,
                is_anomaly,
                calibrated: self.is_calibrated(),
            };
        }
        if self.observed < self.config.warmup_windows as u64 {
            self.observed = self.observed.saturating_add(1);
            return Decision {
                threshold: f64::INFINITY,
                is_anomaly: false,
                calibrated: false,
            };
        }
        self.observed = self.observed.saturating_add(1);
        let decision = if self.tail.is_some() {
            self.observe_calibrated(score)
        } else {
            self.observe_calibrating(score)
        };
        if decision.is_anomaly {
            self.anomalies = self.anomalies.saturating_add(1);
        }
        decision
    }

    /// The threshold the next score would be compared with (for the fallback, computed on the
    /// scores seen so far only).
    #[must_use]
    pub fn threshold(&self) -> f64 {
        match &self.tail {
            Some(tail) => self.floor(tail.z + self.drift_mean()),
            None => self.fallback(None),
        }
    }

    /// The threshold the calibrated model would give at another risk level (same state), in
    /// score units and floored at `min_threshold`; `None` while calibrating or for a risk
    /// outside `(0, 1)`. Non-increasing in `risk`.
    #[must_use]
    pub fn threshold_for_risk(&self, risk: f64) -> Option<f64> {
        if !(risk > 0.0 && risk < 1.0) {
            return None;
        }
        let tail = self.tail.as_ref()?;
        Some(self.floor(tail.threshold_for_risk(risk) + self.drift_mean()))
    }

    /// Start of the tail `t` and the GPD fit, once calibrated.
    #[must_use]
    pub fn tail(&self) -> Option<(f64, Option<GpdFit>)> {
        self.tail.as_ref().map(|t| (t.t, t.fit))
    }

    fn floor(&self, threshold: f64) -> f64 {
        threshold.max(self.config.min_threshold)
    }

    fn drift_mean(&self) -> f64 {
        if self.config.depth.is_none() || self.drift.is_empty() {
            0.0
        } else {
            self.drift.iter().sum::<f64>() / self.drift.len() as f64
        }
    }

    /// Slides a normal raw score into the DSPOT window.
    fn push_drift(&mut self, score: f64) {
        if let Some(depth) = self.config.depth {
            if self.drift.len() >= depth {
                self.drift.pop_front();
            }
            self.drift.push_back(score);
        }
    }

    fn observe_calibrated(&mut self, score: f64) -> Decision {
        let base = self.drift_mean();
        let threshold = self.threshold();
        let is_anomaly = score > threshold;
        if !is_anomaly {
            let config = self.config.clone();
            if let Some(tail) = self.tail.as_mut() {
                // Accepted only because it was at most `threshold`: truncated there.
                tail.add_normal(score - base, threshold - base, &config);
            }
            self.push_drift(score);
        }
        Decision {
            threshold,
            is_anomaly,
            calibrated: true,
        }
    }

    fn observe_calibrating(&mut self, score: f64) -> Decision {
        let threshold = self.fallback(Some(score));
        let is_anomaly = score > threshold;
        let budget = (self.config.calibration_windows / 10).max(1) as u64;
        // Only a clear outlier (twice the fence, or more) is set aside: scores just over it
        // are the normal tail the calibration must see.
        if is_anomaly && score > 2.0 * threshold && threshold > 0.0 && self.set_aside < budget {
            self.set_aside += 1;
            return Decision {
                threshold,
                is_anomaly,
                calibrated: false,
            };
        }
        match self.config.depth {
            Some(depth) if self.drift.len() < depth => self.drift.push_back(score),
            _ => {
                let rel = score - self.drift_mean();
                self.calibration.push(rel);
                self.push_drift(score);
            }
        }
        if self.calibration.len() >= self.config.calibration_windows {
            self.tail = Some(Tail::calibrate(&self.calibration, &self.config));
            self.calibration = Vec::new();
        }
        Decision {
            threshold,
            is_anomaly,
            calibrated: false,
        }
    }

    /// `max(min_threshold, Q3 + k·IQR)` of the calibration values plus `current`
    /// (relative to the moving average, which is added back, once a DSPOT window is full);
    /// `min_threshold` when there is nothing.
    fn fallback(&self, current: Option<f64>) -> f64 {
        let relative = self
            .config
            .depth
            .is_some_and(|depth| self.drift.len() >= depth);
        let (mut values, base) = if relative {
            let base = self.drift_mean();
            let mut values = self.calibration.clone();
            values.extend(current.map(|x| x - base));
            (values, base)
        } else if self.config.depth.is_some() {
            let mut values: Vec<f64> = self.drift.iter().copied().collect();
            values.extend(current);
            (values, 0.0)
        } else {
            let mut values = self.calibration.clone();
            values.extend(current);
            (values, 0.0)
        };
        if values.is_empty() {
            return self.config.min_threshold;
        }
        values.sort_unstable_by(f64::total_cmp);
        let q1 = quantile_sorted(&values, 0.25);
        let q3 = quantile_sorted(&values, 0.75);
        self.floor(base + q3 + self.config.fallback_iqrs * (q3 - q1))
    }
}

/// Quantile `p` of sorted `values` by linear interpolation between order statistics (type 7, as
/// numpy's default); 0 when empty.
fn quantile_sorted(values: &[f64], p: f64) -> f64 {
    let Some(last) = values.len().checked_sub(1) else {
        return 0.0;
    };
    let h = p.clamp(0.0, 1.0) * last as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (a, b) = (values[lo.min(last)], values[hi.min(last)]);
    a + (h - lo as f64) * (b - a)
}

#[cfg(test)]
mod tests;
