//! The expected snapshots of a kind-less OTLP/JSON trace file, derived from the file alone.
//!
//! Reads the requests with `serde_json` values only (none of the project's decoders, none of its
//! graph code) and applies the documented rules (`docs/graph-model.md`) to spans without kinds,
//! status or span attributes, as in the Nezha fixtures:
//! - a span belongs to the window `[s, s + w)` that holds its end time (ms, floored);
//! - per graph, after each request, every open window with `s + w + lateness <= max end time seen`
//!   closes, in start order; at the end of the input every window closes. A span whose
//!   `s + w + lateness <= max end time seen before it` is late: counted in the next snapshot
//!   the graph emits, nowhere else;
//! - a root span is a request of its service and a call `user -> service`;
//! - a parent/child pair pairs when the later of the two arrives (request index) no later than
//!   the request after which the earlier one's window closed; a pair across services is a call
//!   `parent service -> child service` in the child's window (client view: the parent's
//!   duration, server view: the child's, gap: their difference), a request of the child's service
//!   and an outgoing call of the parent's service in the parent's window; a pair within one
//!   service is internal;
//! - a child whose parent never pairs with it (missing, late, or its window closed first) is
//!   unpaired, and a request of its own service.
//!
//! The fixtures' preconditions (no kinds, no status, no span attributes, valid ids and times)
//! are asserted, so that a regenerated fixture that breaks them fails loudly instead of making
//! these expectations silently wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

/// The graph-id resource attributes of the command's default configuration, in order.
const GRAPH_KEYS: [&str; 2] = ["k8s.cluster.name", "deployment.environment.name"];
/// Graph of resources without them.
const DEFAULT_GRAPH: &str = "default";
/// The virtual caller of root spans.
pub const USER: &str = "user";

/// One span of the file.
#[derive(Debug, Clone)]
pub struct Span {
    pub graph: String,
    pub service: String,
    pub trace: String,
    pub id: String,
    pub parent: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Index of its request (non-blank line) in the file.
    pub request: usize,
}

impl Span {
    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e6
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn string_attr<'a>(attributes: &'a Value, key: &str) -> Option<&'a str> {
    attributes
        .as_array()?
        .iter()
        .rev()
        .find(|kv| str_at(kv, "key") == Some(key))
        .and_then(|kv| kv.get("value"))
        .and_then(|v| str_at(v, "stringValue"))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

fn nanos(span: &Value, key: &str) -> u64 {
    match span.get(key) {
        Some(Value::String(s)) => s.parse().expect("fixture time is a decimal string"),
        Some(Value::Number(n)) => n.as_u64().expect("fixture time is an unsigned integer"),
        other => panic!("fixture span without {key}: {other:?}"),
    }
}

/// The spans of an OTLP/JSON lines file, in file order.
pub fn read_spans(jsonl: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    let lines = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    for (request, line) in lines.enumerate() {
        let req: Value = serde_json::from_slice(line).expect("fixture line is JSON");
        let resource_spans = req["resourceSpans"].as_array().expect("resourceSpans");
        for rs in resource_spans {
            let attributes = &rs["resource"]["attributes"];
            let graph: Vec<&str> = GRAPH_KEYS
                .iter()
                .filter_map(|k| string_attr(attributes, k))
                .filter(|v| !v.is_empty())
                .collect();
            let graph = if graph.is_empty() {
                DEFAULT_GRAPH.to_owned()
            } else {
                graph.join("/")
            };
            let service = string_attr(attributes, "service.name")
                .filter(|s| !s.is_empty())
                .expect("fixture resource has a service.name")
                .to_owned();
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                for span in ss["spans"].as_array().expect("spans") {
                    spans.push(read_span(span, &graph, &service, request));
                }
            }
        }
    }
    spans
}

fn read_span(span: &Value, graph: &str, service: &str, request: usize) -> Span {
    // The rules above hold for spans without kinds, status or span attributes only.
    for absent in ["kind", "status", "attributes"] {
        assert!(
            span.get(absent).is_none(),
            "fixture precondition: spans carry no {absent}: {span}"
        );
    }
    let trace = str_at(span, "traceId").expect("traceId");
    let id = str_at(span, "spanId").expect("spanId");
    let parent = str_at(span, "parentSpanId").filter(|p| !p.is_empty());
    assert!(is_hex(trace, 32), "fixture precondition: trace id {trace}");
    assert!(is_hex(id, 16), "fixture precondition: span id {id}");
    assert!(parent.is_none_or(|p| is_hex(p, 16)), "parent id {parent:?}");
    let (start_ns, end_ns) = (
        nanos(span, "startTimeUnixNano"),
        nanos(span, "endTimeUnixNano"),
    );
    assert!(
        0 < start_ns && start_ns <= end_ns,
        "fixture span times: {span}"
    );
    Span {
        graph: graph.to_owned(),
        service: service.to_owned(),
        trace: trace.to_ascii_lowercase(),
        id: id.to_ascii_lowercase(),
        parent: parent.map(str::to_ascii_lowercase),
        start_ns,
        end_ns,
        request,
    }
}

/// Expected statistics of one node.
#[derive(Debug, Default)]
pub struct NodeExp {
    pub requests: u64,
    pub spans: u64,
    pub out_calls: u64,
    pub latency: Vec<f64>,
    pub out_latency: Vec<f64>,
    pub in_gap: Vec<f64>,
}

/// Expected statistics of one edge.
#[derive(Debug, Default)]
pub struct EdgeExp {
    pub calls: u64,
    pub paired_calls: u64,
    pub client: Vec<f64>,
    pub server: Vec<f64>,
    pub gap: Vec<f64>,
}

/// Expected ingest statistics of one snapshot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsExp {
    pub spans: u64,
    pub paired: u64,
    pub unpaired: u64,
    pub late: u64,
}

/// One expected snapshot.
#[derive(Debug, Default)]
pub struct WindowExp {
    pub nodes: BTreeMap<String, NodeExp>,
    pub edges: BTreeMap<(String, String), EdgeExp>,
    pub stats: StatsExp,
    /// Index of the request after which it is written; `usize::MAX`: at the end of the input.
    pub closed_after: usize,
}

impl WindowExp {
    fn node(&mut self, name: &str) -> &mut NodeExp {
        self.nodes.entry(name.to_owned()).or_default()
    }

    fn edge(&mut self, caller: &str, callee: &str) -> &mut EdgeExp {
        self.edges
            .entry((caller.to_owned(), callee.to_owned()))
            .or_default()
    }
}

/// The expected output: snapshots keyed by (graph, window start ms), and the order in which
/// the command writes them.
#[derive(Debug, Default)]
pub struct Expected {
    pub windows: HashMap<(String, i64), WindowExp>,
    pub order: Vec<(String, i64)>,
    pub late: u64,
}

#[derive(Default)]
struct GraphClock {
    max_end_ms: Option<i64>,
    open: BTreeSet<i64>,
    carried_late: u64,
}

/// Applies the rules of the module doc to `spans` (in file order).
pub fn expected(spans: &[Span], window_ms: i64, lateness_ms: i64) -> Expected {
    let mut exp = Expected::default();
    let mut clocks: Vec<(String, GraphClock)> = Vec::new();
    // Window of each accepted span (None: late).
    let mut window_of: Vec<Option<i64>> = vec![None; spans.len()];
    let requests = spans.last().map_or(0, |s| s.request + 1);
    let mut next = 0;
    for request in 0..requests {
        let mut touched = BTreeSet::new();
        while let Some(span) = spans.get(next).filter(|s| s.request == request) {
            let g = match clocks.iter().position(|(name, _)| *name == span.graph) {
                Some(g) => g,
                None => {
                    clocks.push((span.graph.clone(), GraphClock::default()));
                    clocks.len() - 1
                }
            };
            touched.insert(g);
            let clock = &mut clocks[g].1;
            let end_ms = i64::try_from(span.end_ns / 1_000_000).expect("time fits");
            let win = end_ms - end_ms.rem_euclid(window_ms);
            if clock
                .max_end_ms
                .is_some_and(|max| win + window_ms + lateness_ms <= max)
            {
                clock.carried_late += 1;
                exp.late += 1;
            } else {
                clock.max_end_ms = Some(clock.max_end_ms.map_or(end_ms, |m| m.max(end_ms)));
                clock.open.insert(win);
                window_of[next] = Some(win);
                let w = exp.windows.entry((span.graph.clone(), win)).or_default();
                w.stats.spans += 1;
                w.node(&span.service).spans += 1;
            }
            next += 1;
        }
        for g in touched {
            let (graph, clock) = &mut clocks[g];
            let watermark = clock.max_end_ms.unwrap_or(i64::MIN);
            close(&mut exp, graph, clock, request, |start| {
                start + window_ms + lateness_ms <= watermark
            });
        }
    }
    for (graph, clock) in &mut clocks {
        close(&mut exp, graph, clock, usize::MAX, |_| true);
    }
    relations(spans, &window_of, &mut exp);
    exp
}

fn close(
    exp: &mut Expected,
    graph: &str,
    clock: &mut GraphClock,
    request: usize,
    closes: impl Fn(i64) -> bool,
) {
    while let Some(&start) = clock.open.first() {
        if !closes(start) {
            break;
        }
        clock.open.remove(&start);
        let key = (graph.to_owned(), start);
        let w = exp.windows.get_mut(&key).expect("an open window has spans");
        w.closed_after = request;
        w.stats.late += std::mem::take(&mut clock.carried_late);
        exp.order.push(key);
    }
}

fn window<'a>(exp: &'a mut Expected, key: &(String, i64)) -> &'a mut WindowExp {
    exp.windows
        .get_mut(key)
        .expect("the window of an accepted span")
}

/// Roots, parent/child pairs and unpaired children of the accepted spans.
fn relations(spans: &[Span], window_of: &[Option<i64>], exp: &mut Expected) {
    let index: HashMap<(&str, &str, &str), usize> = spans
        .iter()
        .enumerate()
        .filter(|(i, _)| window_of[*i].is_some())
        .map(|(i, s)| ((s.graph.as_str(), s.trace.as_str(), s.id.as_str()), i))
        .collect();
    for (c, child) in spans.iter().enumerate() {
        let Some(cw) = window_of[c] else { continue };
        let key = (child.graph.clone(), cw);
        let duration = child.duration_ms();
        let Some(parent_id) = &child.parent else {
            let w = window(exp, &key);
            w.stats.paired += 1;
            let node = w.node(&child.service);
            node.requests += 1;
            node.latency.push(duration);
            let user = w.node(USER);
            user.out_calls += 1;
            user.out_latency.push(duration);
            let edge = w.edge(USER, &child.service);
            edge.calls += 1;
            edge.server.push(duration);
            continue;
        };
        let parent = index
            .get(&(
                child.graph.as_str(),
                child.trace.as_str(),
                parent_id.as_str(),
            ))
            .copied()
            .filter(|&p| {
                // The earlier of the two waits in the store until its window closes.
                let (earlier, later) = if p < c { (p, c) } else { (c, p) };
                let ew = (
                    spans[earlier].graph.clone(),
                    window_of[earlier].expect("accepted"),
                );
                spans[later].request <= exp.windows[&ew].closed_after
            });
        let Some(p) = parent else {
            let w = window(exp, &key);
            w.stats.unpaired += 1;
            let node = w.node(&child.service);
            node.requests += 1;
            node.latency.push(duration);
            continue;
        };
        let parent = &spans[p];
        let w = window(exp, &key);
        w.stats.paired += 1;
        if parent.service == child.service {
            continue;
        }
        let (client, gap) = (parent.duration_ms(), parent.duration_ms() - duration);
        let node = w.node(&child.service);
        node.requests += 1;
        node.latency.push(duration);
        node.in_gap.push(gap);
        let edge = w.edge(&parent.service, &child.service);
        edge.calls += 1;
        edge.paired_calls += 1;
        edge.client.push(client);
        edge.server.push(duration);
        edge.gap.push(gap);
        let pkey = (parent.graph.clone(), window_of[p].expect("accepted"));
        let caller = window(exp, &pkey).node(&parent.service);
        caller.out_calls += 1;
        caller.out_latency.push(client);
    }
}
