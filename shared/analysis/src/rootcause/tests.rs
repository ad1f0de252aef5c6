use proptest::prelude::*;

use super::*;
use crate::window::{CallEdge, ServiceWindow};

fn svc(name: &str, score: f64, anomalous: bool) -> ServiceWindow {
    ServiceWindow {
        service: name.to_owned(),
        score,
        threshold: 1.0,
        is_anomaly: anomalous,
        contributions: vec![
            FeatureContribution {
                name: "latency_p99_ms".to_owned(),
                value: score,
            },
            FeatureContribution {
                name: "error_ratio".to_owned(),
                value: -2.0 * score,
            },
            FeatureContribution {
                name: "request_rate".to_owned(),
                value: 0.1,
            },
            FeatureContribution {
                name: "cpu".to_owned(),
                value: 0.01,
            },
        ],
    }
}

fn window(edges: &[(&str, &str)], services: Vec<ServiceWindow>) -> WindowInput {
    WindowInput {
        graph: "g".to_owned(),
        window_start_ms: 0,
        window_ms: 10_000,
        edges: edges
            .iter()
            .map(|(a, b)| CallEdge {
                caller: (*a).to_owned(),
                callee: (*b).to_owned(),
            })
            .collect(),
        services,
    }
}

fn names(ranked: &[RootCause]) -> Vec<&str> {
    ranked.iter().map(|r| r.service.as_str()).collect()
}

fn incident(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn chain_ranks_the_faulty_callee_first() {
    // a → b → c, c faulty; a and b show propagated symptoms.
    let w = window(
        &[("a", "b"), ("b", "c")],
        vec![
            svc("a", 2.0, true),
            svc("b", 3.0, true),
            svc("c", 6.0, true),
        ],
    );
    let ranked = rank_root_causes(&incident(&["a", "b", "c"]), &w, &RankConfig::default())
        .expect("valid window");
    assert_eq!(names(&ranked), ["c", "b", "a"]);
    let top = &ranked[0];
    assert_eq!(top.rank, 1);
    assert!(top.is_anomaly);
    assert_eq!(top.anomaly_ratio, 6.0);
    assert_eq!(top.path, ["a", "b", "c"]);
    let features: Vec<&str> = top.top_features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(features, ["error_ratio", "latency_p99_ms", "request_rate"]);
}

#[test]
fn chain_with_milder_root_still_ranks_the_callee_first() {
    // The root's ratio need not be the largest: c barely over, its callers more so.
    let w = window(
        &[("a", "b"), ("b", "c")],
        vec![
            svc("a", 3.0, true),
            svc("b", 2.5, true),
            svc("c", 2.0, true),
        ],
    );
    let ranked =
        rank_root_causes(&incident(&["a", "b", "c"]), &w, &RankConfig::default()).expect("ok");
    assert_eq!(ranked[0].service, "c", "{ranked:?}");
}

#[test]
fn fan_in_ranks_the_shared_callee_first_and_breaks_ties_by_name() {
    let w = window(
        &[("x", "z"), ("y", "z")],
        vec![
            svc("y", 2.0, true),
            svc("x", 2.0, true),
            svc("z", 4.0, true),
        ],
    );
    let ranked =
        rank_root_causes(&incident(&["x", "y", "z"]), &w, &RankConfig::default()).expect("ok");
    assert_eq!(names(&ranked), ["z", "x", "y"]);
    assert_eq!(ranked[1].score, ranked[2].score);
    assert_eq!(
        ranked[0].path,
        ["x", "z"],
        "entry is x (tie with y, by name)"
    );
}

#[test]
fn faulty_service_with_healthy_dependencies_ranks_first() {
    // frontend → b → c: b is faulty (CPU), c healthy; frontend suffers.
    let w = window(
        &[("frontend", "b"), ("b", "c")],
        vec![
            svc("frontend", 3.0, true),
            svc("b", 5.0, true),
            svc("c", 0.5, false),
        ],
    );
    let ranked =
        rank_root_causes(&incident(&["frontend", "b"]), &w, &RankConfig::default()).expect("ok");
    assert_eq!(ranked[0].service, "b", "{ranked:?}");
    let c = ranked
        .iter()
        .find(|r| r.service == "c")
        .expect("c is a neighbour");
    assert!(!c.is_anomaly);
    assert_eq!(c.path, ["frontend", "b", "c"]);
}

#[test]
fn neighbours_are_candidates_and_unreachable_paths_are_empty() {
    // lb (normal, unscored) calls a; a → db (db unscored, e.g. a virtual node).
    let w = window(&[("lb", "a"), ("a", "db")], vec![svc("a", 4.0, true)]);
    let ranked = rank_root_causes(&incident(&["a"]), &w, &RankConfig::default()).expect("ok");
    assert_eq!(ranked.len(), 3);
    assert_eq!(ranked[0].service, "a");
    let lb = ranked.iter().find(|r| r.service == "lb").expect("lb");
    assert!(lb.path.is_empty());
    assert_eq!(lb.anomaly_ratio, 0.0);
    let total: f64 = ranked.iter().map(|r| r.score).sum();
    assert!((total - 1.0).abs() < 1e-9);
}

#[test]
fn max_candidates_truncates() {
    let w = window(
        &[("a", "b"), ("b", "c")],
        vec![
            svc("a", 2.0, true),
            svc("b", 3.0, true),
            svc("c", 6.0, true),
        ],
    );
    let config = RankConfig {
        max_candidates: 1,
        ..RankConfig::default()
    };
    let ranked = rank_root_causes(&incident(&["a", "b", "c"]), &w, &config).expect("ok");
    assert_eq!(names(&ranked), ["c"]);
}

#[test]
fn rank_config_validation() {
    let bad = RankConfig {
        damping: 1.0,
        tolerance: 0.0,
        max_iterations: 0,
        max_candidates: 0,
        top_features: 5_000,
    };
    let Err(AnalysisError::InvalidConfig { problems }) = bad.validate() else {
        panic!("invalid config accepted");
    };
    assert_eq!(problems.len(), 5);
}

#[test]
fn pagerank_known_values() {
    // Two nodes pointing at each other, uniform personalisation: π = (½, ½).
    let pi = personalized_pagerank(
        2,
        &[(0, 1, 1.0), (1, 0, 1.0)],
        &[1.0, 1.0],
        0.85,
        1e-12,
        1000,
    );
    assert!((pi[0] - 0.5).abs() < 1e-12 && (pi[1] - 0.5).abs() < 1e-12);
    // 0 → 1, 1 absorbing (self-loop), restart at 0: π_0 = 1 − d, π_1 = d.
    let pi = personalized_pagerank(
        2,
        &[(0, 1, 1.0), (1, 1, 1.0)],
        &[1.0, 0.0],
        0.85,
        1e-12,
        1000,
    );
    assert!((pi[0] - 0.15).abs() < 1e-9, "{pi:?}");
    assert!((pi[1] - 0.85).abs() < 1e-9, "{pi:?}");
    assert!(personalized_pagerank(0, &[], &[], 0.85, 1e-9, 100).is_empty());
}

proptest! {
    #[test]
    fn pagerank_is_a_distribution(
        n in 1usize..12,
        raw_edges in proptest::collection::vec((0usize..12, 0usize..12, -1.0f64..10.0), 0..40),
        personalization in proptest::collection::vec(-1.0f64..5.0, 0..12),
        damping in 0.0f64..1.0,
    ) {
        let pi = personalized_pagerank(n, &raw_edges, &personalization, damping, 1e-9, 100);
        prop_assert_eq!(pi.len(), n);
        prop_assert!(pi.iter().all(|x| x.is_finite() && *x >= 0.0), "{:?}", pi);
        let total: f64 = pi.iter().sum();
        prop_assert!((total - 1.0).abs() < 1e-9, "{}", total);
    }

    #[test]
    fn ranking_ignores_input_order(
        seed in any::<u64>(),
        ratios in proptest::collection::vec(0.0f64..5.0, 6),
        edges in proptest::collection::vec((0usize..6, 0usize..6), 0..15),
    ) {
        let names = ["a", "b", "c", "d", "e", "f"];
        let services: Vec<ServiceWindow> = names
            .iter()
            .zip(&ratios)
            .map(|(n, r)| svc(n, *r, *r > 1.0))
            .collect();
        let edges: Vec<(&str, &str)> = edges.iter().map(|&(a, b)| (names[a], names[b])).collect();
        let w = window(&edges, services);
        let mut shuffled = w.clone();
        shuffle(&mut shuffled.services, seed);
        shuffle(&mut shuffled.edges, seed.rotate_left(17));
        let members = incident(&names);
        let a = rank_root_causes(&members, &w, &RankConfig::default()).expect("ok");
        let b = rank_root_causes(&members, &shuffled, &RankConfig::default()).expect("ok");
        prop_assert_eq!(a, b);
    }
}

/// Fisher–Yates with a xorshift stream.
pub(crate) fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
