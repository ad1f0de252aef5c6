use proptest::prelude::*;

use super::*;
use crate::id::stable_id;
use crate::rootcause::tests::shuffle;
use crate::window::{CallEdge, ServiceWindow, WindowInput};

const W: i64 = 10_000;

fn window(t: i64, edges: &[(&str, &str)], anomalous: &[(&str, f64)]) -> WindowInput {
    let mut names: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for (a, b) in edges {
        names.insert(a);
        names.insert(b);
    }
    names.extend(anomalous.iter().map(|(n, _)| *n));
    WindowInput {
        graph: "shop".to_owned(),
        window_start_ms: t * W,
        window_ms: 10_000,
        edges: edges
            .iter()
            .map(|(a, b)| CallEdge {
                caller: (*a).to_owned(),
                callee: (*b).to_owned(),
            })
            .collect(),
        services: names
            .into_iter()
            .map(|n| {
                let ratio = anomalous.iter().find(|(m, _)| *m == n).map(|(_, r)| *r);
                ServiceWindow {
                    service: n.to_owned(),
                    score: ratio.unwrap_or(0.2),
                    threshold: 1.0,
                    is_anomaly: ratio.is_some(),
                    contributions: Vec::new(),
                }
            })
            .collect(),
    }
}

const CHAIN: &[(&str, &str)] = &[("a", "b"), ("b", "c"), ("c", "d"), ("x", "y"), ("y", "z")];

fn tracker(bridge_normal: bool, resolve_after_windows: u32) -> IncidentTracker {
    IncidentTracker::new(IncidentConfig {
        resolve_after_windows,
        bridge_normal,
        // These tests are about grouping: open at the first anomalous window.
        open_after_windows: 1,
        ..IncidentConfig::default()
    })
    .expect("valid")
}

#[test]
fn a_one_window_blip_opens_nothing_but_a_run_or_a_severe_window_does() {
    let mut t = IncidentTracker::new(IncidentConfig::default()).expect("valid");
    // A mild blip of b: nothing; b normal again; then c mild for two windows: opens, dated
    // to the first of them.
    assert!(
        t.observe(&window(1, CHAIN, &[("b", 1.3)]))
            .expect("ok")
            .is_empty()
    );
    assert!(t.observe(&window(2, CHAIN, &[])).expect("ok").is_empty());
    assert!(
        t.observe(&window(3, CHAIN, &[("c", 1.2)]))
            .expect("ok")
            .is_empty()
    );
    let changes = t.observe(&window(4, CHAIN, &[("c", 1.4)])).expect("ok");
    assert_eq!(summary(&changes), [(ChangeKind::Opened, vec!["c"], 1)]);
    assert_eq!(changes[0].incident.opened_ms, 3 * W);
    assert_eq!(
        changes[0].incident.id,
        stable_id(&["incident", "shop", &(3 * W).to_string(), "c"])
    );
    // A severe window of an unrelated service opens at once.
    let changes = t
        .observe(&window(5, CHAIN, &[("c", 1.4), ("y", 2.5)]))
        .expect("ok");
    let kinds: Vec<(ChangeKind, Vec<&str>)> = summary(&changes)
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .collect();
    assert!(
        kinds.contains(&(ChangeKind::Opened, vec!["y"])),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ChangeKind::Updated, vec!["c"])),
        "{kinds:?}"
    );
}

#[test]
fn root_causes_come_from_the_window_of_peak_severity() {
    let mut t = tracker(false, 3);
    let opened = t.observe(&window(1, CHAIN, &[("c", 5.0)])).expect("ok");
    assert_eq!(opened[0].incident.root_causes[0].service, "c");
    // A weaker window with only a neighbour anomalous: joins, does not re-rank.
    let weaker = t.observe(&window(2, CHAIN, &[("b", 1.5)])).expect("ok");
    assert_eq!(summary(&weaker), [(ChangeKind::Updated, vec!["b", "c"], 2)]);
    assert_eq!(weaker[0].incident.root_causes[0].service, "c");
    // A stronger one does.
    let stronger = t.observe(&window(3, CHAIN, &[("b", 9.0)])).expect("ok");
    assert_eq!(stronger[0].incident.root_causes[0].service, "b");
    assert_eq!(stronger[0].incident.severity, 9.0);
}

#[test]
fn a_gap_in_the_windows_ends_a_run() {
    let mut t = IncidentTracker::new(IncidentConfig::default()).expect("valid");
    assert!(
        t.observe(&window(1, CHAIN, &[("b", 1.3)]))
            .expect("ok")
            .is_empty()
    );
    // Window 2 missing: b's run starts again at 3.
    assert!(
        t.observe(&window(3, CHAIN, &[("b", 1.3)]))
            .expect("ok")
            .is_empty()
    );
    let changes = t.observe(&window(4, CHAIN, &[("b", 1.3)])).expect("ok");
    assert_eq!(changes[0].incident.opened_ms, 3 * W);
}

fn summary(changes: &[IncidentChange]) -> Vec<(ChangeKind, Vec<&str>, u64)> {
    changes
        .iter()
        .map(|c| {
            (
                c.kind,
                c.incident.services.iter().map(String::as_str).collect(),
                c.incident.version,
            )
        })
        .collect()
}

#[test]
fn connected_anomalies_open_one_incident_with_a_stable_id() {
    let mut t = tracker(false, 2);
    let changes = t
        .observe(&window(1, CHAIN, &[("b", 2.0), ("c", 4.0)]))
        .expect("ok");
    assert_eq!(summary(&changes), [(ChangeKind::Opened, vec!["b", "c"], 1)]);
    let incident = &changes[0].incident;
    assert_eq!(incident.id, stable_id(&["incident", "shop", "10000", "b"]));
    assert_eq!(incident.id.len(), 16);
    assert_eq!(incident.status, IncidentStatus::Open);
    assert_eq!((incident.opened_ms, incident.updated_ms), (W, W));
    assert_eq!(incident.resolved_ms, None);
    assert_eq!(incident.severity, 4.0);
    assert_eq!(incident.root_causes[0].service, "c");
    assert_eq!(t.open_incidents("shop").count(), 1);
}

#[test]
fn disconnected_anomalies_open_separate_incidents() {
    let mut t = tracker(true, 2);
    let changes = t
        .observe(&window(1, CHAIN, &[("b", 2.0), ("z", 3.0)]))
        .expect("ok");
    assert_eq!(
        summary(&changes)
            .into_iter()
            .map(|(k, s, _)| (k, s))
            .collect::<std::collections::BTreeSet<_>>(),
        [
            (ChangeKind::Opened, vec!["b"]),
            (ChangeKind::Opened, vec!["z"])
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn one_normal_intermediate_bridges_when_enabled() {
    let anomalous = [("a", 2.0), ("c", 3.0)]; // b normal in between
    let bridged = tracker(true, 2)
        .observe(&window(1, CHAIN, &anomalous))
        .expect("ok");
    assert_eq!(summary(&bridged), [(ChangeKind::Opened, vec!["a", "c"], 1)]);
    let strict = tracker(false, 2)
        .observe(&window(1, CHAIN, &anomalous))
        .expect("ok");
    assert_eq!(strict.len(), 2);
    // Two normal nodes in between never bridge.
    let far = tracker(true, 2)
        .observe(&window(1, CHAIN, &[("a", 2.0), ("d", 3.0)]))
        .expect("ok");
    assert_eq!(far.len(), 2);
}

#[test]
fn incident_grows_then_resolves_after_quiet_windows() {
    let mut t = tracker(false, 2);
    let opened = t.observe(&window(1, CHAIN, &[("c", 2.0)])).expect("ok");
    let id = opened[0].incident.id.clone();
    // d is adjacent to c (not anomalous now): joins the same incident.
    let grown = t.observe(&window(2, CHAIN, &[("d", 5.0)])).expect("ok");
    assert_eq!(summary(&grown), [(ChangeKind::Updated, vec!["c", "d"], 2)]);
    assert_eq!(grown[0].incident.id, id);
    assert_eq!(grown[0].incident.severity, 5.0);
    assert_eq!(grown[0].incident.opened_ms, W);
    assert_eq!(grown[0].incident.last_anomalous_ms, 2 * W);
    // Milder window: severity keeps its maximum.
    let milder = t.observe(&window(3, CHAIN, &[("c", 1.5)])).expect("ok");
    assert_eq!(milder[0].incident.severity, 5.0);
    assert_eq!(milder[0].incident.version, 3);
    // One quiet window: nothing; the second resolves.
    assert!(t.observe(&window(4, CHAIN, &[])).expect("ok").is_empty());
    let resolved = t.observe(&window(5, CHAIN, &[])).expect("ok");
    assert_eq!(
        summary(&resolved),
        [(ChangeKind::Resolved, vec!["c", "d"], 4)]
    );
    let r = &resolved[0].incident;
    assert_eq!(r.status, IncidentStatus::Resolved);
    assert_eq!(r.resolved_ms, Some(5 * W));
    assert_eq!(r.id, id);
    assert_eq!(t.open_incidents("shop").count(), 0);
    // The same services anomalous again: a new incident, new id.
    let again = t.observe(&window(6, CHAIN, &[("c", 2.0)])).expect("ok");
    assert_eq!(again[0].kind, ChangeKind::Opened);
    assert_ne!(again[0].incident.id, id);
}

#[test]
fn missing_windows_count_as_quiet() {
    let mut t = tracker(false, 3);
    t.observe(&window(1, CHAIN, &[("c", 2.0)])).expect("ok");
    let resolved = t.observe(&window(9, CHAIN, &[])).expect("ok");
    assert_eq!(resolved[0].kind, ChangeKind::Resolved);
}

#[test]
fn a_group_touching_two_incidents_merges_them_into_the_oldest() {
    let mut t = tracker(false, 5);
    let first = t.observe(&window(1, CHAIN, &[("a", 2.0)])).expect("ok");
    let second = t.observe(&window(2, CHAIN, &[("c", 3.0)])).expect("ok");
    let (older, newer) = (&first[0].incident.id, &second[0].incident.id);
    // b anomalous links a and c.
    let merged = t.observe(&window(3, CHAIN, &[("b", 2.5)])).expect("ok");
    assert_eq!(merged.len(), 2, "{merged:?}");
    let survivor = merged
        .iter()
        .find(|c| c.kind == ChangeKind::Updated)
        .expect("update");
    let absorbed = merged
        .iter()
        .find(|c| c.kind == ChangeKind::Merged)
        .expect("merge");
    assert_eq!(&survivor.incident.id, older);
    assert_eq!(survivor.incident.services, ["a", "b", "c"]);
    assert_eq!(survivor.incident.severity, 3.0);
    assert_eq!(&absorbed.incident.id, newer);
    assert_eq!(absorbed.incident.merged_into.as_ref(), Some(older));
    assert_eq!(absorbed.incident.status, IncidentStatus::Resolved);
    assert_eq!(t.open_incidents("shop").count(), 1);
}

#[test]
fn windows_out_of_order_and_duplicate_services_are_refused() {
    let mut t = tracker(false, 2);
    t.observe(&window(2, CHAIN, &[("c", 2.0)])).expect("ok");
    let before = t.clone();
    assert!(matches!(
        t.observe(&window(2, CHAIN, &[("c", 2.0)])),
        Err(AnalysisError::WindowOutOfOrder { .. })
    ));
    assert!(matches!(
        t.observe(&window(1, CHAIN, &[])),
        Err(AnalysisError::WindowOutOfOrder { .. })
    ));
    let mut dup = window(3, CHAIN, &[("c", 2.0)]);
    dup.services.push(dup.services[0].clone());
    assert!(matches!(
        t.observe(&dup),
        Err(AnalysisError::DuplicateService { .. })
    ));
    assert_eq!(t, before);
    // Another graph has its own clock.
    let mut other = window(1, CHAIN, &[("a", 2.0)]);
    other.graph = "other".to_owned();
    assert_eq!(t.observe(&other).expect("ok").len(), 1);
}

#[test]
fn state_round_trips_and_replays_identically() {
    let windows = [
        window(1, CHAIN, &[("b", 2.0)]),
        window(2, CHAIN, &[("b", 2.0), ("y", 3.0)]),
        window(3, CHAIN, &[]),
        window(4, CHAIN, &[("z", 2.0)]),
    ];
    let mut a = tracker(true, 2);
    let mut b = tracker(true, 2);
    for w in &windows[..2] {
        assert_eq!(a.observe(w).expect("ok"), b.observe(w).expect("ok"));
    }
    let json = serde_json::to_string(&a).expect("serialise");
    let mut restored: IncidentTracker = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(restored, a);
    for w in &windows[2..] {
        let expected = a.observe(w).expect("ok");
        assert_eq!(restored.observe(w).expect("ok"), expected);
        assert_eq!(b.observe(w).expect("ok"), expected);
    }
}

#[test]
fn config_validation() {
    let bad = IncidentConfig {
        resolve_after_windows: 0,
        ..IncidentConfig::default()
    };
    assert!(IncidentTracker::new(bad).is_err());
    for bad in [
        IncidentConfig {
            open_after_windows: 0,
            ..IncidentConfig::default()
        },
        IncidentConfig {
            open_severity: f64::NAN,
            ..IncidentConfig::default()
        },
        IncidentConfig {
            open_severity: 0.5,
            ..IncidentConfig::default()
        },
    ] {
        assert!(IncidentTracker::new(bad).is_err());
    }
}

proptest! {
    #[test]
    fn grouping_is_invariant_under_permutation(
        seed in any::<u64>(),
        bridge in any::<bool>(),
        steps in proptest::collection::vec(
            (
                proptest::collection::vec((0usize..8, 0usize..8), 0..14),
                proptest::collection::vec(proptest::option::of(1.0f64..6.0), 8),
            ),
            1..6,
        ),
    ) {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let mut straight = tracker(bridge, 2);
        let mut shuffled = tracker(bridge, 2);
        for (t, (edges, ratios)) in steps.iter().enumerate() {
            let edges: Vec<(&str, &str)> =
                edges.iter().map(|&(a, b)| (names[a], names[b])).collect();
            let anomalous: Vec<(&str, f64)> = names
                .iter()
                .zip(ratios)
                .filter_map(|(n, r)| r.map(|r| (*n, r)))
                .collect();
            let w = window(t as i64 + 1, &edges, &anomalous);
            let mut s = w.clone();
            shuffle(&mut s.services, seed ^ t as u64);
            shuffle(&mut s.edges, seed.rotate_left(7) ^ t as u64);
            let a = straight.observe(&w).expect("ok");
            let b = shuffled.observe(&s).expect("ok");
            prop_assert_eq!(&a, &b);
            // Every anomalous service is in exactly one open incident.
            for (name, _) in &anomalous {
                let holders = straight
                    .open_incidents("shop")
                    .filter(|i| i.services.iter().any(|s| s == name))
                    .count();
                prop_assert_eq!(holders, 1, "{}", name);
            }
        }
        prop_assert_eq!(straight, shuffled);
    }
}
