//! Generalised Pareto fit of the excesses over a high threshold, by maximum likelihood with
//! Grimshaw's reduction (Grimshaw, "Computing maximum likelihood estimates for the generalized
//! Pareto distribution", Technometrics 1993), as used by SPOT (Siffer et al., KDD 2017, §3.2).
//!
//! For peaks `Y_1..Y_N > 0` the GPD has the survival function
//! `P(Y > y) = (1 + γ·y/σ)^(−1/γ)` (`exp(−y/σ)` when `γ = 0`) and the log-likelihood
//!
//! ```text
//! L(γ, σ) = −N·ln σ − (1 + 1/γ)·Σ ln(1 + γ·Y_i/σ)      (γ ≠ 0)
//! L(0, σ) = −N·ln σ − Σ Y_i/σ
//! ```
//!
//! With `x = γ/σ`, the maximum is at a root `x*` of `w(x) = u(x)·v(x) − 1` where
//! `u(x) = (1/N)·Σ 1/(1 + x·Y_i)` and `v(x) = 1 + (1/N)·Σ ln(1 + x·Y_i)`; then
//! `γ = v(x*) − 1` and `σ = γ/x*`. The non-trivial roots lie in `(−1/Y_max, 0)` and in
//! `(0, 2(Ȳ − Y_min)/Y_min²)`. We scan both intervals on a grid (the positive one geometrically,
//! from `10⁻⁶/Ȳ`: the lower bound `2(Ȳ − Y_min)/(Ȳ·Y_min)` quoted with SPOT misses the root when
//! the smallest peak is tiny, as it is for large samples), refine each sign change by bisection,
//! and keep the candidate with the largest likelihood, the exponential fit (`γ = 0`, `σ = Ȳ`)
//! included, so a fit always exists for non-empty positive peaks.
//!
//! # Truncated peaks
//! SPOT keeps anomalies out of the model, so a peak accepted while the threshold was `z` is a
//! draw from the tail *truncated* at `c = z − t`. Fitting such peaks as if untruncated biases
//! the tail light, which lowers `z`, which truncates more: the false-alarm rate creeps far
//! above the risk. [`fit_truncated`] maximises the truncated likelihood instead,
//!
//! ```text
//! L(γ, σ) = Σ_i [ ln f(Y_i) − ln F(c_i) ],   F(c) = 1 − (1 + γ·c/σ)^(−1/γ)   (1 − e^(−c/σ) at γ = 0)
//! ```
//!
//! (`F(c_i) = 1` for a peak with no cap, e.g. from the calibration batch), by Nelder–Mead on
//! `(γ, ln σ)` started from the untruncated fit, keeping whichever of the two is more likely.

use serde::{Deserialize, Serialize};

/// Grid points per root interval.
const GRID: usize = 96;
/// Bisection steps per sign change (interval shrinks by 2^-60).
const BISECTIONS: usize = 60;
/// `|γ|` below which the `γ = 0` (exponential) limit of the quantile is used.
const GAMMA_ZERO: f64 = 1e-9;

/// Parameters of a Generalised Pareto distribution of excesses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpdFit {
    /// Shape γ (tail index): > 0 heavy tail, 0 exponential, < 0 bounded.
    pub gamma: f64,
    /// Scale σ > 0.
    pub sigma: f64,
}

impl GpdFit {
    /// The excess over `t` that is exceeded with probability `r` among the peaks:
    /// `σ/γ·(r^(−γ) − 1)`, or its `γ → 0` limit `−σ·ln r`.
    ///
    /// SPOT passes `r = q·n/N_t` (risk `q`, `n` observations, `N_t` peaks), giving the threshold
    /// `z_q = t + σ/γ·((q·n/N_t)^(−γ) − 1)` (Siffer et al., KDD 2017, eq. (1)).
    #[must_use]
    pub fn excess_quantile(&self, r: f64) -> f64 {
        if self.gamma.abs() < GAMMA_ZERO {
            -self.sigma * r.ln()
        } else {
            self.sigma / self.gamma * (r.powf(-self.gamma) - 1.0)
        }
    }

    /// Log-likelihood of `peaks` under this distribution (`−∞` outside its support).
    #[must_use]
    pub fn log_likelihood(&self, peaks: &[f64]) -> f64 {
        log_likelihood(peaks, self.gamma, self.sigma)
    }
}

/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

fn log_likelihood(peaks: &[f64], gamma: f64, sigma: f64) -> f64 {
    if !positive(sigma) || !gamma.is_finite() {
        return f64::NEG_INFINITY;
    }
    let n = peaks.len() as f64;
    if gamma.abs() < GAMMA_ZERO {
        return -n * sigma.ln() - peaks.iter().sum::<f64>() / sigma;
    }
    let mut acc = 0.0;
    for &y in peaks {
        let s = 1.0 + gamma * y / sigma;
        if !positive(s) {
            return f64::NEG_INFINITY;
        }
        acc += s.ln();
    }
    -n * sigma.ln() - (1.0 + 1.0 / gamma) * acc
}

/// `(u(x), v(x))` of Grimshaw's reduction; `None` when `1 + x·Y_i ≤ 0` for some peak.
fn uv(peaks: &[f64], x: f64) -> Option<(f64, f64)> {
    let n = peaks.len() as f64;
    let (mut u, mut v) = (0.0, 0.0);
    for &y in peaks {
        let s = 1.0 + x * y;
        if !positive(s) {
            return None;
        }
        u += 1.0 / s;
        v += s.ln();
    }
    Some((u / n, 1.0 + v / n))
}

fn w(peaks: &[f64], x: f64) -> Option<f64> {
    uv(peaks, x).map(|(u, v)| u * v - 1.0)
}

/// Roots of `w` in `[lo, hi]`: grid scan (geometric when `geometric` and both ends share a sign,
/// else uniform) and bisection of each sign change.
fn roots(peaks: &[f64], lo: f64, hi: f64, geometric: bool, out: &mut Vec<f64>) {
    if !lo.is_finite() || !hi.is_finite() || lo >= hi {
        return;
    }
    let point = |i: usize| -> f64 {
        let f = i as f64 / (GRID - 1) as f64;
        if geometric && lo > 0.0 {
            lo * (hi / lo).powf(f)
        } else {
            lo + (hi - lo) * f
        }
    };
    let mut prev: Option<(f64, f64)> = None;
    for i in 0..GRID {
        let x = point(i);
        let Some(wx) = w(peaks, x) else {
            prev = None;
            continue;
        };
        if wx == 0.0 {
            out.push(x);
        } else if let Some((px, pw)) = prev
            && pw != 0.0
            && (pw < 0.0) != (wx < 0.0)
        {
            out.push(bisect(peaks, px, pw, x));
        }
        prev = Some((x, wx));
    }
}

fn bisect(peaks: &[f64], mut a: f64, mut wa: f64, mut b: f64) -> f64 {
    for _ in 0..BISECTIONS {
        let m = 0.5 * (a + b);
        let Some(wm) = w(peaks, m) else {
            return m;
        };
        if wm == 0.0 {
            return m;
        }
        if (wm < 0.0) == (wa < 0.0) {
            a = m;
            wa = wm;
        } else {
            b = m;
        }
    }
    0.5 * (a + b)
}

/// Maximum-likelihood GPD fit of `peaks` (all `> 0` and finite; others are ignored).
/// `None` when no usable peak is left.
#[must_use]
pub fn fit(peaks: &[f64]) -> Option<GpdFit> {
    let ys: Vec<f64> = peaks
        .iter()
        .copied()
        .filter(|y| y.is_finite() && *y > 0.0)
        .collect();
    if ys.is_empty() {
        return None;
    }
    let n = ys.len() as f64;
    let mean = ys.iter().sum::<f64>() / n;
    let (mut y_min, mut y_max) = (f64::INFINITY, 0.0_f64);
    for &y in &ys {
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    let mut best = GpdFit {
        gamma: 0.0,
        sigma: mean,
    };
    let mut best_ll = best.log_likelihood(&ys);

    let mut candidates = Vec::new();
    // Left interval (−1/Y_max, 0), kept away from its ends.
    let a = -1.0 / y_max;
    let eps = a.abs() * 1e-6;
    roots(&ys, a + eps, -eps, false, &mut candidates);
    // Right interval (0, 2(Ȳ − Y_min)/Y_min²), scanned geometrically from 1e-6/Ȳ, when the
    // peaks are not all equal.
    if mean > y_min {
        let c = 2.0 * (mean - y_min) / (y_min * y_min);
        roots(&ys, 1e-6 / mean, c, true, &mut candidates);
    }
    for x in candidates {
        if x == 0.0 {
            continue;
        }
        let Some((_, v)) = uv(&ys, x) else { continue };
        let gamma = v - 1.0;
        let sigma = gamma / x;
        let ll = log_likelihood(&ys, gamma, sigma);
        if ll.is_finite() && ll > best_ll {
            best = GpdFit { gamma, sigma };
            best_ll = ll;
        }
    }
    Some(best)
}

/// One peak for [`fit_truncated`]: the excess over `t` and, when the peak could only be
/// accepted below a threshold, the excess `c` at which it was truncated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// `Y = X − t > 0`.
    pub excess: f64,
    /// `c = z − t` in force when the peak was accepted; `None`: not truncated.
    pub cap: Option<f64>,
}

/// Nelder–Mead iterations at most.
const NM_ITERATIONS: usize = 400;
/// Nelder–Mead stops when the simplex's log-likelihoods differ by less than this (relative to
/// the best).
const NM_TOLERANCE: f64 = 1e-10;

/// `ln F(c)` of the GPD (`−∞` where undefined).
fn ln_cdf(c: f64, gamma: f64, sigma: f64) -> f64 {
    let ln_survival = if gamma.abs() < GAMMA_ZERO {
        -c / sigma
    } else {
        let s = 1.0 + gamma * c / sigma;
        if !positive(s) {
            // Beyond the upper end of a bounded tail: F = 1.
            return 0.0;
        }
        -s.ln() / gamma
    };
    // F = 1 − e^(ln S), computed without cancellation.
    let f = -ln_survival.exp_m1();
    if positive(f) {
        f.ln()
    } else {
        f64::NEG_INFINITY
    }
}

fn truncated_log_likelihood(peaks: &[Peak], ys: &[f64], gamma: f64, sigma: f64) -> f64 {
    let mut ll = log_likelihood(ys, gamma, sigma);
    if !ll.is_finite() {
        return f64::NEG_INFINITY;
    }
    for cap in peaks.iter().filter_map(|p| p.cap) {
        ll -= ln_cdf(cap, gamma, sigma);
    }
    if ll.is_finite() {
        ll
    } else {
        f64::NEG_INFINITY
    }
}

/// Maximum-likelihood GPD fit of peaks that may be truncated (see the module docs). Peaks with
/// a non-finite or non-positive excess, and caps that are not finite and positive, are ignored.
/// `previous`, the last fit of nearly the same peaks, warm-starts the search (SPOT refits after
/// every new peak); without it the search starts from the untruncated fit. `None` when no
/// usable peak is left.
#[must_use]
pub fn fit_truncated(peaks: &[Peak], previous: Option<GpdFit>) -> Option<GpdFit> {
    let peaks: Vec<Peak> = peaks
        .iter()
        .filter(|p| p.excess.is_finite() && p.excess > 0.0)
        .map(|p| Peak {
            excess: p.excess,
            cap: p.cap.filter(|c| c.is_finite() && *c > 0.0),
        })
        .collect();
    let ys: Vec<f64> = peaks.iter().map(|p| p.excess).collect();
    if ys.is_empty() {
        return None;
    }
    if peaks.iter().all(|p| p.cap.is_none()) {
        return fit(&ys);
    }
    let warm = previous.filter(|f| {
        f.gamma.is_finite()
            && f.sigma.is_finite()
            && truncated_log_likelihood(&peaks, &ys, f.gamma, f.sigma).is_finite()
    });
    let (start, step) = match warm {
        Some(f) => (f, 0.02),
        None => (fit(&ys)?, 0.1),
    };
    let objective = |v: [f64; 2]| -> f64 {
        let ll = truncated_log_likelihood(&peaks, &ys, v[0], v[1].exp());
        if ll.is_finite() { -ll } else { f64::INFINITY }
    };
    let best = nelder_mead(objective, [start.gamma, start.sigma.ln()], [step, step]);
    let candidate = GpdFit {
        gamma: best[0],
        sigma: best[1].exp(),
    };
    let ll_start = truncated_log_likelihood(&peaks, &ys, start.gamma, start.sigma);
    let ll_candidate = truncated_log_likelihood(&peaks, &ys, candidate.gamma, candidate.sigma);
    if ll_candidate.is_finite() && ll_candidate > ll_start && candidate.sigma.is_finite() {
        Some(candidate)
    } else if ll_start.is_finite() {
        Some(start)
    } else {
        fit(&ys)
    }
}

/// Minimises `f` over two variables by Nelder–Mead (reflection 1, expansion 2, contraction ½,
/// shrink ½) from `x0` with initial steps `step`.
fn nelder_mead(f: impl Fn([f64; 2]) -> f64, x0: [f64; 2], step: [f64; 2]) -> [f64; 2] {
    let mut simplex = [x0, [x0[0] + step[0], x0[1]], [x0[0], x0[1] + step[1]]];
    let mut values = simplex.map(&f);
    let lerp =
        |a: [f64; 2], b: [f64; 2], t: f64| [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
    for _ in 0..NM_ITERATIONS {
        // Order best (lowest) first.
        let mut order = [0, 1, 2];
        order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
        simplex = order.map(|i| simplex[i]);
        values = order.map(|i| values[i]);
        if values[0].is_finite()
            && (values[2] - values[0]).abs() < NM_TOLERANCE * (1.0 + values[0].abs())
        {
            break;
        }
        let centroid = lerp(simplex[0], simplex[1], 0.5);
        let reflected = lerp(centroid, simplex[2], -1.0);
        let fr = f(reflected);
        if fr < values[0] {
            let expanded = lerp(centroid, simplex[2], -2.0);
            let fe = f(expanded);
            if fe < fr {
                simplex[2] = expanded;
                values[2] = fe;
            } else {
                simplex[2] = reflected;
                values[2] = fr;
            }
        } else if fr < values[1] {
            simplex[2] = reflected;
            values[2] = fr;
        } else {
            let contracted = if fr < values[2] {
                lerp(centroid, reflected, 0.5)
            } else {
                lerp(centroid, simplex[2], 0.5)
            };
            let fc = f(contracted);
            if fc < values[2].min(fr) {
                simplex[2] = contracted;
                values[2] = fc;
            } else {
                for k in 1..3 {
                    simplex[k] = lerp(simplex[0], simplex[k], 0.5);
                    values[k] = f(simplex[k]);
                }
            }
        }
    }
    let mut best = 0;
    for k in 1..3 {
        if values[k] < values[best] {
            best = k;
        }
    }
    simplex[best]
}
