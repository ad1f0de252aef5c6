use super::*;
use crate::id::stable_id;

#[test]
fn anomaly_ratio_is_bounded_and_total() {
    assert_eq!(anomaly_ratio(3.0, 1.5), 2.0);
    assert_eq!(anomaly_ratio(-1.0, 1.0), 0.0);
    assert_eq!(anomaly_ratio(f64::NAN, 1.0), 0.0);
    assert_eq!(anomaly_ratio(1.0, f64::NAN), MAX_RATIO);
    assert_eq!(anomaly_ratio(1.0, 0.0), MAX_RATIO);
    assert_eq!(anomaly_ratio(f64::INFINITY, 1.0), MAX_RATIO);
    assert_eq!(anomaly_ratio(1.0, f64::INFINITY), 0.0);
}

#[test]
fn canonical_window_sorts_dedups_and_drops_self_calls() {
    let edge = |a: &str, b: &str| CallEdge {
        caller: a.to_owned(),
        callee: b.to_owned(),
    };
    let w = WindowInput {
        graph: "g".to_owned(),
        window_start_ms: 0,
        window_ms: 1,
        edges: vec![
            edge("b", "a"),
            edge("a", "a"),
            edge("b", "a"),
            edge("a", "c"),
        ],
        services: Vec::new(),
    };
    let c = CanonicalWindow::new(&w).expect("ok");
    let edges: Vec<(&str, &str)> = c
        .edges
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(edges, [("a", "c"), ("b", "a")]);
    let n: Vec<&str> = c.neighbours_of("a").map(String::as_str).collect();
    assert_eq!(n, ["b", "c"]);
}

#[test]
fn stable_ids_separate_their_parts() {
    assert_eq!(stable_id(&["ab", "c"]), stable_id(&["ab", "c"]));
    assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
    assert_eq!(stable_id(&[]).len(), 16);
}
