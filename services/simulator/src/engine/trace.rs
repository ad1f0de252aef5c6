//! One user request as a trace: the server side of an operation (CPU wait, own work split
//! around its stages of calls, intrinsic and injected errors, failure of a required call), and
//! the client side of each call (network, edge delay, timeout, retries with backoff, connection
//! refused by a crashed service; database calls; producer → consumer through a queue).

use super::Simulator;
use crate::otlp::{ErrorKind, SpanRec, SpanRole};
use crate::topology::{Call, OpRef, ServiceKind, Topology};

/// Share of the own work done before the first call (the rest after the last).
const PRE_SHARE: f64 = 0.3;
/// One-way network latency inside the cluster, median ms.
const NET_MS: f64 = 0.15;
/// Between the starts of the calls of a parallel stage.
const STAGGER_NS: u64 = 20_000;
/// Between one call's end and the next call's start in a sequential stage.
const GAP_NS: u64 = 30_000;
/// Guards the recursion (topologies are DAGs; this bounds the stack whatever they are).
const MAX_DEPTH: u32 = 64;

/// Per trace.
struct TraceCtx {
    trace_id: [u8; 16],
    spans: usize,
    truncated: bool,
}

/// Outcome of the server side.
#[derive(Clone, Copy)]
struct Served {
    end: u64,
    error: Option<ErrorKind>,
}

/// Outcome of a call as the caller sees it (after retries).
#[derive(Clone, Copy)]
struct CallResult {
    end: u64,
    failed: bool,
}

fn ms(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        (v * 1e6) as u64
    } else {
        0
    }
}

/// A request arriving at a server or consumer.
#[derive(Clone, Copy)]
struct Arrival {
    op: OpRef,
    /// The client (or producer) span; all zero for a root.
    parent: [u8; 8],
    at: u64,
    role: SpanRole,
}

/// Who makes a call.
#[derive(Clone, Copy)]
struct Caller {
    service: usize,
    pod: u32,
    span: [u8; 8],
}

impl Simulator {
    /// Simulates the request of entry point `entry` arriving at `t`.
    pub(super) fn simulate_trace(&mut self, topology: &Topology, entry: usize, t: u64) {
        let Some(target) = topology.entries.get(entry).map(|e| e.target) else {
            return;
        };
        self.stats.traces += 1;
        if self.effects[target.service].crashed {
            // The user's connection is refused: nothing is instrumented to see it.
            return;
        }
        let mut ctx = TraceCtx {
            trace_id: self.rng.id16(),
            spans: 0,
            truncated: false,
        };
        let arrival = Arrival {
            op: target,
            parent: [0; 8],
            at: t,
            role: SpanRole::Server,
        };
        self.serve(topology, &mut ctx, arrival, 0);
        if ctx.truncated {
            self.stats.truncated_traces += 1;
        }
    }

    /// The server (or consumer) side of a request.
    fn serve(
        &mut self,
        topology: &Topology,
        ctx: &mut TraceCtx,
        arrival: Arrival,
        depth: u32,
    ) -> Served {
        let Arrival {
            op,
            parent,
            at: arrive,
            role,
        } = arrival;
        let service = op.service;
        let pod = self.pick_pod(service);
        let span_id = self.rng.id8();
        ctx.spans += 1;
        let effects = self.effects[service];
        let (wait_ms, shed) = self.cpu_wait(service);
        let operation = topology.op(op);
        let mut span = SpanRec {
            trace_id: ctx.trace_id,
            span_id,
            parent,
            start_ns: arrive,
            end_ns: arrive,
            service: service as u32,
            pod,
            role,
            op,
            error: None,
            attempt: 0,
        };
        if shed {
            span.end_ns = arrive + ms(self.rng.lognormal(0.3, 0.3)).max(1_000);
            span.error = Some(ErrorKind::Overloaded);
            let served = Served {
                end: span.end_ns,
                error: span.error,
            };
            self.push_span(span);
            return served;
        }
        self.account(op, effects.cpu);
        let own = self.rng.lognormal(operation.work_ms, operation.sigma) * effects.latency;
        let mut cursor = arrive + ms(wait_ms + own * PRE_SHARE);
        let mut failed = false;
        let me = Caller {
            service,
            pod,
            span: span_id,
        };
        if depth < MAX_DEPTH {
            'stages: for stage in &operation.stages {
                if stage.parallel {
                    let mut stage_end = cursor;
                    let mut k = 0;
                    for call in &stage.calls {
                        if !self.rng.chance(call.probability) {
                            continue;
                        }
                        for _ in 0..self.rng.range_u32(call.count.0, call.count.1) {
                            let start = cursor + k * STAGGER_NS;
                            k += 1;
                            if let Some(r) = self.call(topology, ctx, me, call, start, depth) {
                                stage_end = stage_end.max(r.end);
                                failed |= r.failed && !call.optional;
                            }
                        }
                    }
                    cursor = stage_end;
                    if failed {
                        break 'stages;
                    }
                } else {
                    for call in &stage.calls {
                        if !self.rng.chance(call.probability) {
                            continue;
                        }
                        for _ in 0..self.rng.range_u32(call.count.0, call.count.1) {
                            if let Some(r) = self.call(topology, ctx, me, call, cursor, depth) {
                                cursor = r.end + GAP_NS;
                                if r.failed && !call.optional {
                                    failed = true;
                                    break 'stages;
                                }
                            }
                        }
                    }
                }
            }
        }
        cursor += ms(own * (1.0 - PRE_SHARE)).max(1_000);
        span.end_ns = cursor;
        span.error = if failed {
            Some(ErrorKind::Downstream)
        } else if self.rng.chance(operation.error_rate + effects.error) {
            Some(ErrorKind::Internal)
        } else {
            None
        };
        let served = Served {
            end: cursor,
            error: span.error,
        };
        self.push_span(span);
        served
    }

    /// One call from `caller`, with its retries. `None` when the trace is full (not made).
    fn call(
        &mut self,
        topology: &Topology,
        ctx: &mut TraceCtx,
        caller: Caller,
        call: &Call,
        start: u64,
        depth: u32,
    ) -> Option<CallResult> {
        let max_spans = self.settings.max_spans_per_trace;
        if ctx.spans >= max_spans {
            ctx.truncated = true;
            return None;
        }
        let target = call.target;
        let mut span = SpanRec {
            trace_id: ctx.trace_id,
            span_id: [0; 8],
            parent: caller.span,
            start_ns: start,
            end_ns: start,
            service: caller.service as u32,
            pod: caller.pod,
            role: SpanRole::Client,
            op: target,
            error: None,
            attempt: 0,
        };
        match &topology.services[target.service].kind {
            ServiceKind::Database { .. } => {
                let op = topology.op(target);
                span.span_id = self.rng.id8();
                span.role = SpanRole::Database;
                span.end_ns = start + ms(self.rng.lognormal(op.work_ms, op.sigma)).max(1_000);
                if self.rng.chance(op.error_rate) {
                    span.error = Some(ErrorKind::Internal);
                }
                ctx.spans += 1;
                let result = CallResult {
                    end: span.end_ns,
                    failed: span.error.is_some(),
                };
                self.push_span(span);
                Some(result)
            }
            ServiceKind::Queue { consumer, .. } => {
                let op = topology.op(target);
                span.span_id = self.rng.id8();
                span.role = SpanRole::Producer;
                span.end_ns = start + ms(self.rng.lognormal(op.work_ms, op.sigma)).max(1_000);
                ctx.spans += 1;
                let end = span.end_ns;
                let producer = span.span_id;
                self.push_span(span);
                if let Some(consumer) = *consumer {
                    // A crashed consumer leaves the message in the queue.
                    if !self.effects[consumer.service].crashed && ctx.spans < max_spans {
                        let delivered = end + ms(self.rng.lognormal(3.0, 0.8));
                        let arrival = Arrival {
                            op: consumer,
                            parent: producer,
                            at: delivered,
                            role: SpanRole::Consumer,
                        };
                        self.serve(topology, ctx, arrival, depth + 1);
                    }
                }
                Some(CallResult { end, failed: false })
            }
            ServiceKind::Service { .. } => {
                let timeout = ms(call.timeout_ms);
                let mut t = start;
                let mut last = CallResult {
                    end: start,
                    failed: true,
                };
                for attempt in 0..=call.retries {
                    if attempt > 0 && ctx.spans >= max_spans {
                        ctx.truncated = true;
                        break;
                    }
                    let mut client = span;
                    client.span_id = self.rng.id8();
                    client.start_ns = t;
                    client.attempt = u8::try_from(attempt).unwrap_or(u8::MAX);
                    ctx.spans += 1;
                    let out_net = ms(self.rng.lognormal(NET_MS, 0.4));
                    let back_net = ms(self.rng.lognormal(NET_MS, 0.4));
                    if self.effects[target.service].crashed {
                        client.end_ns = t + ms(self.rng.lognormal(1.0, 0.4)).max(1_000);
                        client.error = Some(ErrorKind::Refused);
                    } else {
                        let delay = self.edge_delay(caller.service, target.service);
                        let arrival = Arrival {
                            op: target,
                            parent: client.span_id,
                            at: t + out_net + delay,
                            role: SpanRole::Server,
                        };
                        let served = self.serve(topology, ctx, arrival, depth + 1);
                        let end = served.end + back_net;
                        if end - t > timeout {
                            client.end_ns = t + timeout;
                            client.error = Some(ErrorKind::Timeout);
                        } else {
                            client.end_ns = end;
                            client.error = served.error.map(|e| match e {
                                ErrorKind::Overloaded => ErrorKind::Overloaded,
                                _ => ErrorKind::Downstream,
                            });
                        }
                    }
                    last = CallResult {
                        end: client.end_ns,
                        failed: client.error.is_some(),
                    };
                    self.push_span(client);
                    if !last.failed {
                        break;
                    }
                    // Exponential backoff with jitter before the next attempt.
                    let backoff = self.rng.uniform(5.0, 15.0) * f64::from(1u32 << attempt.min(10));
                    t = last.end + ms(backoff);
                }
                Some(last)
            }
        }
    }
}
