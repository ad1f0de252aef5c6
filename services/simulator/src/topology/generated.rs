//! Generated topologies: a layered DAG of `n` nodes (10 to 10,000) shaped like large
//! production call graphs (Alibaba's 2021 cluster traces, Luo et al. SoCC 2021; Meta's
//! "Canopy"): a few entry services, layers growing with depth, power-law fan-out (most services
//! call one to three others, a few call dozens), preferential attachment (popular services have
//! many callers), and databases and queues as leaves (about 15 % and 3 % of the nodes).
//!
//! Per request, each call is made with a probability that keeps the expected branching near
//! 1.5 per level, so traces stay at tens of spans however wide the graph is.

use super::{Builder, Call, OpRef, Protocol, Topology};
use crate::error::SimError;
use crate::rng::Rng;

const DOMAINS: [&str; 24] = [
    "user",
    "order",
    "payment",
    "inventory",
    "search",
    "catalog",
    "pricing",
    "cart",
    "shipping",
    "review",
    "auth",
    "profile",
    "session",
    "media",
    "notification",
    "ledger",
    "fraud",
    "ads",
    "recommend",
    "geo",
    "billing",
    "coupon",
    "tax",
    "audit",
];
const ROLES: [&str; 8] = [
    "service", "api", "worker", "adapter", "indexer", "resolver", "store", "engine",
];
const DB_SYSTEMS: [(&str, f64); 5] = [
    ("postgresql", 2.0),
    ("mysql", 2.0),
    ("mongodb", 1.5),
    ("redis", 0.3),
    ("cassandra", 2.5),
];

/// A generated topology of `n` nodes, shaped by `seed`.
pub fn generate(n: usize, seed: u64) -> Result<Topology, SimError> {
    if !(10..=super::MAX_GENERATED_SERVICES).contains(&n) {
        return Err(SimError::Topology(format!(
            "generated topologies have 10 to {} nodes, not {n}",
            super::MAX_GENERATED_SERVICES
        )));
    }
    let mut rng = Rng::derive(seed, 0x70_70);
    let n_db = (n * 15 / 100).max(1);
    let n_queue = (n * 3 / 100).max(1);
    let n_svc = n - n_db - n_queue;
    let depth = ((n_svc as f64).ln() / 3f64.ln()).round().clamp(3.0, 8.0) as usize;
    let n_entry = (n_svc / 100).clamp(1, 20);
    // Layer sizes after the entry layer grow geometrically (ratio 1.6).
    let rest = n_svc - n_entry;
    let weights: Vec<f64> = (1..depth).map(|i| 1.6f64.powi(i as i32)).collect();
    let total: f64 = weights.iter().sum();
    let mut sizes = vec![n_entry];
    let mut assigned = 0;
    for (i, w) in weights.iter().enumerate() {
        let size = if i + 1 == weights.len() {
            rest - assigned
        } else {
            ((rest as f64) * w / total).round().max(1.0) as usize
        };
        let size = size.min(rest - assigned);
        sizes.push(size);
        assigned += size;
    }
    sizes.retain(|&s| s > 0);

    let name = format!("generated-{n}");
    let mut b = Builder::new(&name, "generated");
    b.retries = 1;
    let mut layers: Vec<Vec<usize>> = Vec::new();
    let mut counter = 0usize;
    for (layer, &size) in sizes.iter().enumerate() {
        let mut ids = Vec::with_capacity(size);
        for _ in 0..size {
            let service_name = if layer == 0 {
                format!("edge-gateway-{counter:04}")
            } else {
                format!(
                    "{}-{}-{counter:04}",
                    DOMAINS[rng.index(DOMAINS.len())],
                    ROLES[rng.index(ROLES.len())]
                )
            };
            counter += 1;
            let protocol = if layer == 0 || rng.chance(0.4) {
                Protocol::Http
            } else {
                Protocol::Grpc
            };
            let replicas = rng.power_law(2.5, 12);
            let memory = rng.lognormal(160.0, 0.6).round();
            let id = b.service(&service_name, protocol, replicas, memory);
            let work = rng.lognormal(1.5, 0.7).clamp(0.1, 40.0);
            let route = if protocol == Protocol::Http {
                format!("POST /api/v1/{service_name}/handle")
            } else {
                format!("{service_name}.Service/Handle")
            };
            b.op(id, &route, round3(work), 0.5);
            ids.push(id);
        }
        layers.push(ids);
    }
    let mut dbs = Vec::with_capacity(n_db);
    for i in 0..n_db {
        let (system, median) = DB_SYSTEMS[rng.index(DB_SYSTEMS.len())];
        let db_name = format!("{system}-{i:04}");
        dbs.push(b.database(&db_name, system, &db_name, median));
    }
    let mut queues = Vec::with_capacity(n_queue);
    for i in 0..n_queue {
        let topic = format!("{}-events-{i:03}", DOMAINS[rng.index(DOMAINS.len())]);
        queues.push(b.queue(&format!("kafka-{topic}"), "kafka", &topic, None));
    }

    // Preferential attachment urns, one per layer: a service appears once plus once per caller.
    let mut urns: Vec<Vec<usize>> = layers.clone();
    let deepest = layers.len() - 1;
    for (layer, ids) in layers.iter().enumerate() {
        for &svc in ids {
            let op = OpRef {
                service: svc,
                op: 0,
            };
            let mut calls: Vec<Call> = Vec::new();
            if layer < deepest {
                let degree = rng.power_law(2.1, 50) as usize;
                let mut chosen = Vec::with_capacity(degree);
                for _ in 0..degree {
                    // Mostly the next layer, sometimes deeper.
                    let target_layer = if layer + 2 <= deepest && rng.chance(0.25) {
                        layer + 2 + rng.index(deepest - layer - 1)
                    } else {
                        layer + 1
                    };
                    let urn = &mut urns[target_layer];
                    let callee = urn[rng.index(urn.len())];
                    if chosen.contains(&callee) {
                        continue;
                    }
                    chosen.push(callee);
                    urn.push(callee);
                    let mut call = b.call(
                        OpRef {
                            service: callee,
                            op: 0,
                        },
                        1.0,
                        (1, 1),
                    );
                    call.timeout_ms = 500.0 * (deepest - layer + 1) as f64;
                    call.retries = u32::from(layer < 2);
                    calls.push(call);
                }
            }
            // Database access: most services own one; deeper ones more often.
            if !dbs.is_empty() && rng.chance(0.3 + 0.5 * layer as f64 / deepest.max(1) as f64) {
                let db = dbs[rng.index(dbs.len())];
                let stmt = OpRef {
                    service: db,
                    op: rng.index(3.min(b.ops_of(db))),
                };
                calls.push(b.call(stmt, 0.9, (1, rng.range_u32(1, 3))));
            }
            if !queues.is_empty() && layer > 0 && rng.chance(0.08) {
                let q = queues[rng.index(queues.len())];
                calls.push(b.call(q, 0.5, (1, 1)));
            }
            if !calls.is_empty() {
                let parallel = calls.len() > 2 && rng.chance(0.5);
                b.stage(op, parallel, calls);
            }
        }
    }
    // Every service has a caller (no dead code): one from the layer above for the orphans.
    let mut called = vec![false; b.len()];
    for &svc in layers.iter().flatten() {
        for callee in b.callees_of(svc) {
            called[callee] = true;
        }
    }
    for layer in 1..layers.len() {
        for &svc in &layers[layer] {
            if called[svc] {
                continue;
            }
            let above = &layers[layer - 1];
            let caller = above[rng.index(above.len())];
            let mut call = b.call(
                OpRef {
                    service: svc,
                    op: 0,
                },
                0.0,
                (1, 1),
            );
            call.timeout_ms = 500.0 * (deepest - layer + 2) as f64;
            call.retries = u32::from(layer < 3);
            b.add_call(
                OpRef {
                    service: caller,
                    op: 0,
                },
                call,
            );
            called[svc] = true;
        }
    }
    // Per request, the calls of a service are made with a probability that keeps the
    // expected branching near its target, whatever its fan-out.
    for (layer, ids) in layers.iter().enumerate() {
        let branching = if layer == 0 { 2.5 } else { 1.3 };
        for &svc in ids {
            b.set_service_call_probabilities(svc, branching);
        }
    }
    for (i, &svc) in layers[0].iter().enumerate() {
        b.entry(
            OpRef {
                service: svc,
                op: 0,
            },
            1.0 / (i as f64 + 1.0),
        );
    }
    Ok(b.finish())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_topologies_are_valid_and_deterministic() {
        for n in [10, 100, 1_000, 10_000] {
            let t = generate(n, 3).expect("generates");
            t.validate().expect("valid DAG");
            assert_eq!(t.services.len(), n);
            assert_eq!(t, generate(n, 3).expect("generates"));
        }
        assert_ne!(generate(100, 1).ok(), generate(100, 2).ok());
        assert!(generate(9, 1).is_err());
        assert!(generate(10_001, 1).is_err());
    }

    #[test]
    fn fan_out_is_heavy_tailed() {
        let t = generate(10_000, 5).expect("generates");
        let mut degrees: Vec<usize> = vec![0; t.services.len()];
        for (a, _) in t.service_edges() {
            degrees[a] += 1;
        }
        let callers: Vec<usize> = degrees.iter().copied().filter(|&d| d > 0).collect();
        let max = callers.iter().copied().max().unwrap_or(0);
        let small = callers.iter().filter(|&&d| d <= 3).count();
        assert!(max >= 20, "max fan-out {max}");
        assert!(
            small * 10 >= callers.len() * 7,
            "{small} of {}",
            callers.len()
        );
    }
}
