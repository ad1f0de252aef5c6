//! Topologies: services, their operations, and who calls whom (sequential and parallel stages,
//! call probabilities and repetitions, timeouts and retries), plus the entry points users call.
//!
//! Built-in topologies follow the call structure of real systems ([`builtin`]); generated ones
//! are layered DAGs of up to 10,000 services ([`generated`]).

pub mod builtin;
pub mod generated;

use std::fmt;
use std::str::FromStr;

use crate::error::SimError;

/// Largest generated topology.
pub const MAX_GENERATED_SERVICES: usize = 10_000;

/// The wire protocol a service speaks (decides span names and attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
    Thrift,
}

/// What a node of the topology is.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceKind {
    /// An instrumented service: server spans for its operations, client spans for its calls.
    Service { protocol: Protocol },
    /// A database: not instrumented; callers emit client spans with `db.system`.
    Database { system: String, namespace: String },
    /// A message queue topic: callers emit producer spans; an optional consumer operation runs
    /// asynchronously with a consumer span whose parent is the producer span.
    Queue {
        system: String,
        topic: String,
        consumer: Option<OpRef>,
    },
}

/// An operation of a service, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpRef {
    pub service: usize,
    pub op: usize,
}

/// One service (or database, or queue).
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub kind: ServiceKind,
    /// Pods: each span and metric sample comes from one of them.
    pub replicas: u32,
    /// Resident memory of one idle pod, MiB.
    pub memory_mib: f64,
    pub ops: Vec<Operation>,
}

impl Service {
    pub fn is_service(&self) -> bool {
        matches!(self.kind, ServiceKind::Service { .. })
    }
}

/// One operation: own work (log-normal), an intrinsic error rate, and stages of calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// RPC method (`hipstershop.CartService/GetCart`), HTTP route with method (`GET /cart`),
    /// database statement kind (`SELECT`), or topic operation.
    pub name: String,
    /// Median own processing time, ms.
    pub work_ms: f64,
    /// Shape of the log-normal own processing time.
    pub sigma: f64,
    /// Probability that a request fails in this operation by itself.
    pub error_rate: f64,
    /// Executed one after the other; the calls of a parallel stage start together.
    pub stages: Vec<Stage>,
}

/// A group of calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub parallel: bool,
    pub calls: Vec<Call>,
}

/// A call to another operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub target: OpRef,
    /// Probability that the call is made at all in one execution of the caller.
    pub probability: f64,
    /// How many times (uniform in the inclusive range) when made.
    pub count: (u32, u32),
    /// Client-side timeout, ms.
    pub timeout_ms: f64,
    /// Extra attempts after a failed one (error, timeout, refused connection).
    pub retries: u32,
    /// A failure of this call does not fail the caller (e.g. ads on a product page).
    pub optional: bool,
}

/// Where user requests come in, with the share of traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub target: OpRef,
    pub weight: f64,
}

/// A whole system.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The graph id (resource attribute `k8s.cluster.name`).
    pub name: String,
    /// Kubernetes namespace of the pods.
    pub namespace: String,
    pub services: Vec<Service>,
    pub entries: Vec<Entry>,
}

impl Topology {
    /// The index of the service called `name`.
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    pub fn op(&self, r: OpRef) -> &Operation {
        &self.services[r.service].ops[r.op]
    }

    /// Every caller → callee pair of services (instrumented callees only), sorted.
    pub fn service_edges(&self) -> Vec<(usize, usize)> {
        let mut edges = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            for op in &s.ops {
                for stage in &op.stages {
                    for call in &stage.calls {
                        let t = call.target.service;
                        match &self.services[t].kind {
                            ServiceKind::Service { .. } => edges.push((i, t)),
                            ServiceKind::Queue {
                                consumer: Some(c), ..
                            } => edges.push((i, c.service)),
                            _ => {}
                        }
                    }
                }
            }
        }
        edges.sort_unstable();
        edges.dedup();
        edges
    }

    /// Whether `caller` calls `callee` directly.
    pub fn has_edge(&self, caller: usize, callee: usize) -> bool {
        self.service_edges()
            .binary_search(&(caller, callee))
            .is_ok()
    }

    /// Structural checks: indices in range, calls only from services, no call cycles, at least
    /// one entry; every problem at once.
    pub fn validate(&self) -> Result<(), SimError> {
        let mut problems = Vec::new();
        if self.entries.is_empty() {
            problems.push("no entry points".to_owned());
        }
        let valid = |r: &OpRef| {
            self.services
                .get(r.service)
                .is_some_and(|s| r.op < s.ops.len())
        };
        for e in &self.entries {
            if !valid(&e.target) {
                problems.push(format!("entry {:?} out of range", e.target));
            } else if !self.services[e.target.service].is_service() {
                problems.push(format!(
                    "entry {} is not a service",
                    self.services[e.target.service].name
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.services {
            if !names.insert(s.name.as_str()) {
                problems.push(format!("duplicate service name {}", s.name));
            }
            if s.ops.is_empty() {
                problems.push(format!("{} has no operation", s.name));
            }
            if let ServiceKind::Queue {
                consumer: Some(c), ..
            } = &s.kind
                && !valid(c)
            {
                problems.push(format!("consumer of {} out of range", s.name));
            }
            for op in &s.ops {
                for stage in &op.stages {
                    for call in &stage.calls {
                        if !valid(&call.target) {
                            problems
                                .push(format!("{}: call {:?} out of range", s.name, call.target));
                        }
                    }
                    if !stage.calls.is_empty() && !s.is_service() {
                        problems.push(format!("{} is not a service but makes calls", s.name));
                    }
                }
            }
        }
        if problems.is_empty() && self.has_cycle() {
            problems.push("the call graph has a cycle".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SimError::Topology(problems.join("; ")))
        }
    }

    /// Operations called (directly, or through a queue's consumer) by `op`.
    pub fn callees(&self, op: OpRef) -> impl Iterator<Item = OpRef> + '_ {
        self.op(op).stages.iter().flat_map(move |stage| {
            stage.calls.iter().flat_map(move |call| {
                let consumer = match &self.services[call.target.service].kind {
                    ServiceKind::Queue { consumer, .. } => *consumer,
                    _ => None,
                };
                std::iter::once(call.target).chain(consumer)
            })
        })
    }

    fn has_cycle(&self) -> bool {
        // Iterative DFS over operations with three colours.
        let total: usize = self.services.iter().map(|s| s.ops.len()).sum();
        let mut colour = vec![0u8; total];
        let all: Vec<OpRef> = self
            .services
            .iter()
            .enumerate()
            .flat_map(|(si, s)| (0..s.ops.len()).map(move |op| OpRef { service: si, op }))
            .collect();
        let offsets: Vec<usize> = {
            let mut acc = 0;
            self.services
                .iter()
                .map(|s| {
                    let o = acc;
                    acc += s.ops.len();
                    o
                })
                .collect()
        };
        let idx = |r: OpRef| offsets[r.service] + r.op;
        for &root in &all {
            if colour[idx(root)] != 0 {
                continue;
            }
            let mut stack: Vec<(OpRef, Vec<OpRef>)> = vec![(root, self.callees(root).collect())];
            colour[idx(root)] = 1;
            while let Some((node, children)) = stack.last_mut() {
                if let Some(next) = children.pop() {
                    match colour[idx(next)] {
                        0 => {
                            colour[idx(next)] = 1;
                            let c = self.callees(next).collect();
                            stack.push((next, c));
                        }
                        1 => return true,
                        _ => {}
                    }
                } else {
                    colour[idx(*node)] = 2;
                    stack.pop();
                }
            }
        }
        false
    }
}

/// Which topology to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyChoice {
    OnlineBoutique,
    TrainTicket,
    SockShop,
    SocialNetwork,
    /// A layered DAG of this many nodes (services, databases and queues), 10 to 10,000.
    Generated(usize),
}

impl TopologyChoice {
    pub const BUILTIN: [TopologyChoice; 4] = [
        TopologyChoice::OnlineBoutique,
        TopologyChoice::TrainTicket,
        TopologyChoice::SockShop,
        TopologyChoice::SocialNetwork,
    ];

    /// Builds the topology; `seed` shapes generated ones (built-ins are fixed).
    pub fn build(&self, seed: u64) -> Result<Topology, SimError> {
        let topology = match self {
            Self::OnlineBoutique => builtin::online_boutique(),
            Self::TrainTicket => builtin::train_ticket(),
            Self::SockShop => builtin::sock_shop(),
            Self::SocialNetwork => builtin::social_network(),
            Self::Generated(n) => generated::generate(*n, seed)?,
        };
        topology.validate()?;
        Ok(topology)
    }
}

impl fmt::Display for TopologyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OnlineBoutique => f.write_str("onlineboutique"),
            Self::TrainTicket => f.write_str("trainticket"),
            Self::SockShop => f.write_str("sockshop"),
            Self::SocialNetwork => f.write_str("socialnetwork"),
            Self::Generated(n) => write!(f, "generated:{n}"),
        }
    }
}

impl FromStr for TopologyChoice {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, SimError> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "onlineboutique" | "online-boutique" | "boutique" => Self::OnlineBoutique,
            "trainticket" | "train-ticket" => Self::TrainTicket,
            "sockshop" | "sock-shop" => Self::SockShop,
            "socialnetwork" | "social-network" | "deathstarbench" => Self::SocialNetwork,
            other => {
                let n = other
                    .strip_prefix("generated:")
                    .or_else(|| other.strip_prefix("generated-"))
                    .and_then(|n| n.replace('_', "").parse::<usize>().ok())
                    .ok_or_else(|| {
                        SimError::Topology(format!(
                            "unknown topology {s:?} (onlineboutique, trainticket, sockshop, \
                             socialnetwork, generated:N)"
                        ))
                    })?;
                if !(10..=MAX_GENERATED_SERVICES).contains(&n) {
                    return Err(SimError::Topology(format!(
                        "generated topologies have 10 to {MAX_GENERATED_SERVICES} services, not {n}"
                    )));
                }
                Self::Generated(n)
            }
        })
    }
}

impl serde::Serialize for TopologyChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TopologyChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A small builder for hand-written topologies.
#[derive(Debug)]
pub(crate) struct Builder {
    topology: Topology,
    /// Defaults for calls added with [`Builder::call`].
    pub timeout_ms: f64,
    pub retries: u32,
}

impl Builder {
    pub fn new(name: &str, namespace: &str) -> Self {
        Self {
            topology: Topology {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                services: Vec::new(),
                entries: Vec::new(),
            },
            timeout_ms: 2_000.0,
            retries: 1,
        }
    }

    pub fn service(
        &mut self,
        name: &str,
        protocol: Protocol,
        replicas: u32,
        memory_mib: f64,
    ) -> usize {
        self.topology.services.push(Service {
            name: name.to_owned(),
            kind: ServiceKind::Service { protocol },
            replicas,
            memory_mib,
            ops: Vec::new(),
        });
        self.topology.services.len() - 1
    }

    /// A database node with one operation per statement kind, all of the given median.
    pub fn database(&mut self, name: &str, system: &str, namespace: &str, median_ms: f64) -> usize {
        self.topology.services.push(Service {
            name: name.to_owned(),
            kind: ServiceKind::Database {
                system: system.to_owned(),
                namespace: namespace.to_owned(),
            },
            replicas: 1,
            memory_mib: 256.0,
            ops: Vec::new(),
        });
        let id = self.topology.services.len() - 1;
        let statements: &[&str] = match system {
            "redis" | "memcached" => &["GET", "SET"],
            "mongodb" => &["find", "insert", "update"],
            _ => &["SELECT", "INSERT", "UPDATE"],
        };
        for st in statements {
            self.op(id, st, median_ms, 0.6);
        }
        id
    }

    /// A queue topic with an optional consumer operation.
    pub fn queue(
        &mut self,
        name: &str,
        system: &str,
        topic: &str,
        consumer: Option<OpRef>,
    ) -> OpRef {
        self.topology.services.push(Service {
            name: name.to_owned(),
            kind: ServiceKind::Queue {
                system: system.to_owned(),
                topic: topic.to_owned(),
                consumer,
            },
            replicas: 1,
            memory_mib: 256.0,
            ops: Vec::new(),
        });
        let id = self.topology.services.len() - 1;
        self.op(id, "publish", 0.8, 0.5)
    }

    pub fn op(&mut self, service: usize, name: &str, work_ms: f64, sigma: f64) -> OpRef {
        let ops = &mut self.topology.services[service].ops;
        ops.push(Operation {
            name: name.to_owned(),
            work_ms,
            sigma,
            error_rate: 0.0005,
            stages: Vec::new(),
        });
        OpRef {
            service,
            op: ops.len() - 1,
        }
    }

    /// The operation of a database by statement (`SELECT`, `GET`, `find`, ...).
    pub fn stmt(&self, db: usize, statement: &str) -> OpRef {
        let op = self.topology.services[db]
            .ops
            .iter()
            .position(|o| o.name == statement)
            .unwrap_or(0);
        OpRef { service: db, op }
    }

    /// A call with the builder's default timeout and retries (none for databases and queues).
    pub fn call(&self, target: OpRef, probability: f64, count: (u32, u32)) -> Call {
        let retries = if self.topology.services[target.service].is_service() {
            self.retries
        } else {
            0
        };
        Call {
            target,
            probability,
            count,
            timeout_ms: self.timeout_ms,
            retries,
            optional: false,
        }
    }

    /// Appends a stage of calls to `op`.
    pub fn stage(&mut self, op: OpRef, parallel: bool, calls: Vec<Call>) {
        self.topology.services[op.service].ops[op.op]
            .stages
            .push(Stage { parallel, calls });
    }

    /// Appends a sequential stage of single calls to each target (probability 1).
    pub fn seq(&mut self, op: OpRef, targets: &[OpRef]) {
        let calls = targets.iter().map(|t| self.call(*t, 1.0, (1, 1))).collect();
        self.stage(op, false, calls);
    }

    pub fn entry(&mut self, target: OpRef, weight: f64) {
        self.topology.entries.push(Entry { target, weight });
    }

    /// Number of nodes so far.
    pub fn len(&self) -> usize {
        self.topology.services.len()
    }

    /// Services called by the first operation of `service`.
    pub fn callees_of(&self, service: usize) -> Vec<usize> {
        self.topology.services[service]
            .ops
            .iter()
            .flat_map(|o| &o.stages)
            .flat_map(|s| &s.calls)
            .map(|c| c.target.service)
            .collect()
    }

    /// Adds a call to the last stage of `op` (a new sequential stage if it has none).
    pub fn add_call(&mut self, op: OpRef, call: Call) {
        let stages = &mut self.topology.services[op.service].ops[op.op].stages;
        match stages.last_mut() {
            Some(stage) => stage.calls.push(call),
            None => stages.push(Stage {
                parallel: false,
                calls: vec![call],
            }),
        }
    }

    /// Sets the probability of every call of `service` to other services to
    /// `min(1, branching / number of such calls)` (database and queue calls keep theirs).
    pub fn set_service_call_probabilities(&mut self, service: usize, branching: f64) {
        let is_service: Vec<bool> = self
            .topology
            .services
            .iter()
            .map(Service::is_service)
            .collect();
        let op = &mut self.topology.services[service].ops[0];
        let n = op
            .stages
            .iter()
            .flat_map(|s| &s.calls)
            .filter(|c| is_service[c.target.service])
            .count();
        if n == 0 {
            return;
        }
        let p = ((branching / n as f64).min(1.0) * 1000.0).round() / 1000.0;
        for call in op.stages.iter_mut().flat_map(|s| &mut s.calls) {
            if is_service[call.target.service] {
                call.probability = p;
            }
        }
    }

    /// Number of operations of a service.
    pub fn ops_of(&self, service: usize) -> usize {
        self.topology.services[service].ops.len()
    }

    pub fn finish(self) -> Topology {
        self.topology
    }
}
