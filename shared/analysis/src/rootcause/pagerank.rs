//! Personalised PageRank by power iteration.

/// Stationary distribution `π` of the walk that, at each step, follows an out-edge of the
/// current node with probability `damping` (in proportion to the edge weights) and jumps to a
/// node drawn from `personalization` otherwise; a node without out-weight jumps by
/// `personalization` too (dangling mass). Power iteration
///
/// ```text
/// π_{k+1} = (1 − d)·p + d·(π_k·P + (Σ_{u dangling} π_k(u))·p),   π_0 = p
/// ```
///
/// until `‖π_{k+1} − π_k‖₁ < tolerance` or `max_iterations` steps (Page et al. 1999; the
/// personalised form as used for root-cause ranking by MicroRCA, Wu et al., NOMS 2020, and
/// MicroRank, Yu et al., WWW 2021).
///
/// `edges` are `(from, to, weight)`; weights that are not finite and positive, and edges out of
/// range, are ignored; parallel edges add. `personalization` is normalised (non-finite and
/// negative entries count as 0; all zero: uniform). The result is non-negative and sums to 1
/// (empty for `n = 0`). `damping` is clamped to `[0, 1]`.
#[must_use]
pub fn personalized_pagerank(
    n: usize,
    edges: &[(usize, usize, f64)],
    personalization: &[f64],
    damping: f64,
    tolerance: f64,
    max_iterations: usize,
) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let d = if damping.is_nan() {
        0.0
    } else {
        damping.clamp(0.0, 1.0)
    };
    let p = normalise(n, personalization);
    let mut out_weight = vec![0.0; n];
    let usable: Vec<(usize, usize, f64)> = edges
        .iter()
        .copied()
        .filter(|&(u, v, w)| u < n && v < n && w.is_finite() && w > 0.0)
        .collect();
    for &(u, _, w) in &usable {
        out_weight[u] += w;
    }
    let mut pi = p.clone();
    for _ in 0..max_iterations {
        let dangling: f64 = (0..n)
            .filter(|&u| !(out_weight[u] > 0.0 && out_weight[u].is_finite()))
            .map(|u| pi[u])
            .sum();
        let mut next: Vec<f64> = p.iter().map(|pu| (1.0 - d + d * dangling) * pu).collect();
        for &(u, v, w) in &usable {
            if out_weight[u].is_finite() {
                next[v] += d * pi[u] * w / out_weight[u];
            }
        }
        let total: f64 = next.iter().sum();
        if total > 0.0 && total.is_finite() {
            next.iter_mut().for_each(|x| *x /= total);
        }
        let delta: f64 = next.iter().zip(&pi).map(|(a, b)| (a - b).abs()).sum();
        pi = next;
        if delta < tolerance {
            break;
        }
    }
    pi
}

fn normalise(n: usize, weights: &[f64]) -> Vec<f64> {
    let clean: Vec<f64> = (0..n)
        .map(|i| {
            weights
                .get(i)
                .copied()
                .filter(|w| w.is_finite() && *w > 0.0)
                .unwrap_or(0.0)
        })
        .collect();
    let total: f64 = clean.iter().sum();
    if total > 0.0 && total.is_finite() {
        clean.iter().map(|w| w / total).collect()
    } else {
        vec![1.0 / n as f64; n]
    }
}
