//! Every built-in topology, and a generated one, runs through the real graph code into the
//! service graph its definition describes: the same caller → callee edges (plus `user` entry
//! edges, database and messaging nodes), every span paired, nothing late.

mod support;

use std::collections::BTreeSet;

use meshwatch_simulator::topology::{ServiceKind, TopologyChoice};
use support::*;

fn check(choice: &str, rate: f64, minutes: u64) {
    let s = settings(choice, rate, &[]);
    let topology = s.topology.build(s.seed).expect("topology");
    let run = simulate(&s, minutes);
    assert_eq!(run.late, 0, "{choice}");
    assert_eq!(run.accepted, run.stats.spans, "{choice}");
    assert!(
        run.stats.spans > 1000,
        "{choice}: {} spans",
        run.stats.spans
    );
    assert!(run.snapshots.iter().all(|w| w.graph == topology.name));
    let unpaired: u64 = run.snapshots.iter().map(|w| w.stats.unpaired).sum();
    // Fault-free, every span pairs, except producer spans to queues nobody consumes: they
    // fall back to the messaging node (`kafka/<topic>`).
    let to_queues: u64 = run
        .snapshots
        .iter()
        .flat_map(|w| &w.edges)
        .filter(|e| e.connection_type == meshwatch_graph::snapshot::ConnectionType::Messaging)
        .filter(|e| e.paired_calls == 0)
        .map(|e| e.calls)
        .sum();
    assert_eq!(unpaired, to_queues, "{choice}");
    let seen: BTreeSet<(String, String)> = run
        .snapshots
        .iter()
        .flat_map(|w| &w.edges)
        .filter(|e| e.caller != "user")
        .filter(|e| {
            // Service-to-service edges only.
            let kind = |n: &str| {
                topology
                    .service_index(n)
                    .map(|i| &topology.services[i].kind)
            };
            matches!(kind(&e.caller), Some(ServiceKind::Service { .. }))
                && matches!(kind(&e.callee), Some(ServiceKind::Service { .. }))
        })
        .map(|e| (e.caller.clone(), e.callee.clone()))
        .collect();
    let defined: BTreeSet<(String, String)> = topology
        .service_edges()
        .into_iter()
        .map(|(a, b)| {
            (
                topology.services[a].name.clone(),
                topology.services[b].name.clone(),
            )
        })
        .collect();
    assert!(
        seen.is_subset(&defined),
        "{choice}: {:?}",
        seen.difference(&defined).collect::<Vec<_>>()
    );
    if matches!(s.topology, TopologyChoice::Generated(_)) {
        // Rarely called services may not show up in a short run.
        assert!(
            seen.len() * 2 > defined.len(),
            "{choice}: {} of {}",
            seen.len(),
            defined.len()
        );
    } else {
        assert_eq!(seen, defined, "{choice}");
    }
    // Entry points are called by `user`; databases appear as database nodes.
    let nodes: BTreeSet<&str> = run
        .snapshots
        .iter()
        .flat_map(|w| &w.nodes)
        .map(|n| n.name.as_str())
        .collect();
    for e in &topology.entries {
        assert!(nodes.contains(topology.services[e.target.service].name.as_str()));
    }
    let db_nodes = run
        .snapshots
        .iter()
        .flat_map(|w| &w.nodes)
        .filter(|n| n.kind == meshwatch_graph::snapshot::NodeKind::Database)
        .count();
    assert!(db_nodes > 0, "{choice}: database nodes");
}

#[test]
fn online_boutique() {
    check("onlineboutique", 20.0, 3);
}

#[test]
fn train_ticket() {
    check("trainticket", 10.0, 3);
}

#[test]
fn sock_shop() {
    check("sockshop", 20.0, 3);
}

#[test]
fn social_network() {
    check("socialnetwork", 40.0, 3);
}

#[test]
fn generated_thousand() {
    check("generated:1000", 50.0, 3);
}
