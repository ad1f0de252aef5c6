//! Root-cause ranking of an incident: personalised PageRank on its anomalous subgraph.
//!
//! Anomalies propagate from a callee to its callers (a slow or failing dependency makes its
//! callers slow or failing), so the walk toward the origin goes the other way, caller → callee,
//! and mass collects where the anomaly starts — the idea of MicroRCA (Wu et al., NOMS 2020) and
//! MicroRank (Yu et al., WWW 2021), in our own formulation:
//!
//! - nodes `V`: the incident's services and their direct neighbours in the window's edges;
//! - `r_u`: the [`anomaly_ratio`](crate::window::anomaly_ratio) `score/threshold` of `u` (0 when
//!   unscored);
//! - forward edge `u → v` (caller → callee) of weight `w(u, v) = r_v · min(1, r_v / r_u)`: the
//!   callee's anomaly, scaled by how fully it explains the caller's (a callee at least as far
//!   over its threshold as its caller explains it fully; a milder one only in proportion);
//! - self-loop `w(u, u) = max(0, r_u − max_v w(u, v))`: a node more anomalous than anything it
//!   calls keeps the walker, which is what makes a faulty service with healthy dependencies
//!   rank first (a leaf's self-loop is `r_u`);
//! - personalisation `p_u = r_u / Σ r`, damping `d = 0.85`, power iteration to `‖Δπ‖₁ < 10⁻⁹`
//!   or 100 steps ([`personalized_pagerank`]).
//!
//! Candidates are ranked by `π` (descending, equal to 12 decimals counts as a tie) then by name.
//! Each keeps its evidence: its top feature contributions and the shortest caller → callee
//! path to it from the *entry*: the most anomalous anomalous service that no anomalous service
//! of `V` calls (ties by name).

mod pagerank;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

pub use pagerank::personalized_pagerank;

use crate::error::{AnalysisError, Problems};
use crate::window::{CanonicalWindow, FeatureContribution, WindowInput};

/// Configuration of the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankConfig {
    /// Probability of following an edge rather than jumping back (`d`).
    pub damping: f64,
    /// L1 change of `π` under which the iteration stops.
    pub tolerance: f64,
    /// Iterations at most.
    pub max_iterations: usize,
    /// Candidates kept per incident.
    pub max_candidates: usize,
    /// Feature contributions kept per candidate.
    pub top_features: usize,
}

impl Default for RankConfig {
    fn default() -> Self {
        Self {
            damping: 0.85,
            tolerance: 1e-9,
            max_iterations: 100,
            max_candidates: 5,
            top_features: 3,
        }
    }
}

impl RankConfig {
    /// Checks every field, reporting all problems at once.
    pub fn validate(&self) -> Result<(), AnalysisError> {
        let mut p = Problems::default();
        self.check(&mut p);
        p.finish()
    }

    pub(crate) fn check(&self, p: &mut Problems) {
        p.check(
            !(self.damping > 0.0 && self.damping < 1.0),
            "rank.damping must be in (0, 1)",
        );
        p.check(
            !(self.tolerance > 0.0 && self.tolerance.is_finite()),
            "rank.tolerance must be finite and > 0",
        );
        p.check(
            !(1..=10_000).contains(&self.max_iterations),
            "rank.max_iterations must be in 1..=10000",
        );
        p.check(
            !(1..=1_000).contains(&self.max_candidates),
            "rank.max_candidates must be in 1..=1000",
        );
        p.check(
            self.top_features > 1_000,
            "rank.top_features must be <= 1000",
        );
    }
}

/// One ranked root-cause candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    /// Service (node) name.
    pub service: String,
    /// 1 = most likely.
    pub rank: u32,
    /// PageRank mass (the candidates of an incident and the rest of `V` sum to 1).
    pub score: f64,
    /// The service's `score/threshold` in the window.
    pub anomaly_ratio: f64,
    /// Whether the service was anomalous in the window.
    pub is_anomaly: bool,
    /// Its largest feature contributions, by magnitude.
    pub top_features: Vec<FeatureContribution>,
    /// Caller → callee path from the entry service to it (both included); empty when it is not
    /// reachable from the entry.
    pub path: Vec<String>,
}

/// Ranks the root-cause candidates of an incident made of `services` in `window`.
pub fn rank_root_causes(
    services: &[String],
    window: &WindowInput,
    config: &RankConfig,
) -> Result<Vec<RootCause>, AnalysisError> {
    let canonical = CanonicalWindow::new(window)?;
    let services: BTreeSet<String> = services.iter().cloned().collect();
    Ok(rank(&services, &canonical, config))
}

/// Quantised score for ordering: equal to 12 decimals is a tie (broken by name).
fn sort_key(score: f64) -> i64 {
    (score * 1e12).round() as i64
}

pub(crate) fn rank(
    services: &BTreeSet<String>,
    window: &CanonicalWindow,
    config: &RankConfig,
) -> Vec<RootCause> {
    // V: the incident's services and their neighbours, sorted.
    let mut nodes: BTreeSet<&String> = services.iter().collect();
    for s in services {
        nodes.extend(window.neighbours_of(s));
    }
    let nodes: Vec<&String> = nodes.into_iter().collect();
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let ratio: Vec<f64> = nodes.iter().map(|s| window.ratio(s)).collect();
    let mut calls: Vec<(usize, usize)> = Vec::new();
    for (caller, callee) in &window.edges {
        if let (Some(&u), Some(&v)) = (index.get(caller.as_str()), index.get(callee.as_str())) {
            calls.push((u, v));
        }
    }

    let mut weighted: Vec<(usize, usize, f64)> = Vec::with_capacity(calls.len() + nodes.len());
    let mut max_out = vec![0.0_f64; nodes.len()];
    for &(u, v) in &calls {
        let explains = if ratio[u] > 0.0 {
            (ratio[v] / ratio[u]).min(1.0)
        } else {
            1.0
        };
        let w = ratio[v] * explains;
        max_out[u] = max_out[u].max(w);
        weighted.push((u, v, w));
    }
    for (u, r) in ratio.iter().enumerate() {
        weighted.push((u, u, (r - max_out[u]).max(0.0)));
    }
    let pi = personalized_pagerank(
        nodes.len(),
        &weighted,
        &ratio,
        config.damping,
        config.tolerance,
        config.max_iterations,
    );

    let entry = entry(&nodes, &calls, &ratio, window);
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by(|&a, &b| {
        sort_key(pi[b])
            .cmp(&sort_key(pi[a]))
            .then_with(|| nodes[a].cmp(nodes[b]))
    });
    order
        .into_iter()
        .take(config.max_candidates)
        .zip(1u32..)
        .map(|(i, rank)| RootCause {
            service: nodes[i].clone(),
            rank,
            score: pi[i],
            anomaly_ratio: ratio[i],
            is_anomaly: window.is_anomalous(nodes[i]),
            top_features: window.top_features(nodes[i], config.top_features),
            path: entry
                .map(|e| path(e, i, &calls, nodes.len()))
                .unwrap_or_default()
                .into_iter()
                .map(|k| nodes[k].clone())
                .collect(),
        })
        .collect()
}

/// The most anomalous anomalous node that no anomalous node calls (ties by name, i.e. index);
/// when every anomalous node has an anomalous caller (a cycle), the most anomalous one.
fn entry(
    nodes: &[&String],
    calls: &[(usize, usize)],
    ratio: &[f64],
    window: &CanonicalWindow,
) -> Option<usize> {
    let anomalous: Vec<bool> = nodes.iter().map(|s| window.is_anomalous(s)).collect();
    let mut called_by_anomalous = vec![false; nodes.len()];
    for &(u, v) in calls {
        if anomalous[u] {
            called_by_anomalous[v] = true;
        }
    }
    let best = |filter: &dyn Fn(usize) -> bool| -> Option<usize> {
        (0..nodes.len())
            .filter(|&i| anomalous[i] && filter(i))
            .fold(None, |best: Option<usize>, i| match best {
                Some(b) if ratio[b] >= ratio[i] => Some(b),
                _ => Some(i),
            })
    };
    best(&|i| !called_by_anomalous[i]).or_else(|| best(&|_| true))
}

/// Shortest caller → callee path from `from` to `to` (BFS, neighbours by index, so ties go to
/// names first in order); empty when unreachable.
fn path(from: usize, to: usize, calls: &[(usize, usize)], n: usize) -> Vec<usize> {
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(u, v) in calls {
        callees[u].push(v);
    }
    callees.iter_mut().for_each(|c| c.sort_unstable());
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut seen = vec![false; n];
    seen[from] = true;
    let mut queue = VecDeque::from([from]);
    while let Some(u) = queue.pop_front() {
        if u == to {
            let mut out = vec![to];
            let mut k = to;
            while let Some(p) = parent[k] {
                out.push(p);
                k = p;
            }
            out.reverse();
            return out;
        }
        for &v in &callees[u] {
            if !seen[v] {
                seen[v] = true;
                parent[v] = Some(u);
                queue.push_back(v);
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
pub(crate) mod tests;
