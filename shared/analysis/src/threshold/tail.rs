//! The calibrated tail model of SPOT: `t`, the recent peaks, the counts and the GPD fit.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ThresholdConfig;
use super::gpd::{self, GpdFit, Peak};

/// The calibrated tail model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Tail {
    /// Start of the tail (initial quantile of the calibration scores).
    pub(super) t: f64,
    /// The most recent excesses over `t`, oldest first (at most `max_peaks`).
    pub(super) peaks: VecDeque<Peak>,
    /// Normal scores seen by the model (`n`).
    n: u64,
    /// Peaks seen by the model (`N_t`), evicted ones included.
    pub(super) n_peaks: u64,
    /// GPD fit of `peaks`; `None` while there is no peak.
    pub(super) fit: Option<GpdFit>,
    /// `z_q` at the configured risk, model units.
    pub(super) z: f64,
}

impl Tail {
    pub(super) fn calibrate(values: &[f64], config: &ThresholdConfig) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let k = (config.initial_quantile * sorted.len() as f64).ceil() as usize;
        let t = sorted
            .get(k.saturating_sub(1).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
        let excesses: Vec<f64> = values.iter().filter(|&&x| x > t).map(|x| x - t).collect();
        let skip = excesses.len().saturating_sub(config.max_peaks);
        let mut tail = Self {
            t,
            peaks: excesses[skip..]
                .iter()
                .map(|&excess| Peak { excess, cap: None })
                .collect(),
            n: values.len() as u64,
            n_peaks: excesses.len() as u64,
            fit: None,
            z: t,
        };
        tail.refit(config.risk);
        tail
    }

    fn refit(&mut self, risk: f64) {
        let peaks: Vec<Peak> = self.peaks.iter().copied().collect();
        self.fit = gpd::fit_truncated(&peaks, self.fit);
        self.z = self.threshold_for_risk(risk);
    }

    /// `z_q` for `risk`, never below `t`; the exponential fit stands in for a fit whose
    /// quantile is not finite.
    pub(super) fn threshold_for_risk(&self, risk: f64) -> f64 {
        let Some(fit) = self.fit else {
            return self.t;
        };
        if self.n_peaks == 0 || self.n == 0 {
            return self.t;
        }
        let r = risk * self.n as f64 / self.n_peaks as f64;
        let mut excess = fit.excess_quantile(r);
        if !excess.is_finite() {
            let mean =
                self.peaks.iter().map(|p| p.excess).sum::<f64>() / self.peaks.len().max(1) as f64;
            excess = -mean * r.ln();
        }
        if excess.is_finite() {
            self.t + excess.max(0.0)
        } else {
            self.t
        }
    }

    /// Accounts for a normal score `x`, accepted because it was at most `threshold` (both in
    /// model units).
    pub(super) fn add_normal(&mut self, x: f64, threshold: f64, config: &ThresholdConfig) {
        self.n = self.n.saturating_add(1);
        if x > self.t {
            self.n_peaks = self.n_peaks.saturating_add(1);
            if self.peaks.len() >= config.max_peaks {
                self.peaks.pop_front();
            }
            self.peaks.push_back(Peak {
                excess: x - self.t,
                cap: Some(threshold - self.t),
            });
            self.refit(config.risk);
        }
    }
}
