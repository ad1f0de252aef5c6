//! `meshwatch loadgen`: OTLP trace load against an endpoint (the ingest), at the maximum rate
//! `--concurrency` senders reach or at a fixed `--rate`, for `--duration`; prints the spans per
//! second accepted, the request latency (p50, p99) and the refused and failed requests.
//!
//! Requests are pre-encoded: a pool of `meshwatch_graph::otlp::bench_data::synthetic_request`s
//! is encoded once; each send copies one and patches it in place (trace ids made unique per
//! send, timestamps shifted so that its spans end now), so the generator spends no time
//! encoding, every span pairs as in a real system, and no span is late or a duplicate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use meshwatch_graph::otlp::bench_data::synthetic_request;
use meshwatch_graph::sketch::Sketch;
use meshwatch_simulator::export::{OtlpClient, Outcome, Protocol, Signal};
use prost::Message;

/// Arguments of `meshwatch loadgen`.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// OTLP endpoint, `http://host:4317` (gRPC) or `http://host:4318` (HTTP).
    #[arg(long)]
    pub endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Spans per request.
    #[arg(long, default_value_t = 1000)]
    pub spans_per_request: usize,
    /// Senders, each with one request in flight and its own connection.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Requests per second over all senders (default: as fast as they can).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Services in the generated requests.
    #[arg(long, default_value_t = 50)]
    pub services: usize,
    /// Spans per resource in the generated requests.
    #[arg(long, default_value_t = 20)]
    pub spans_per_resource: usize,
    /// Attributes per span.
    #[arg(long, default_value_t = 10)]
    pub attrs_per_span: usize,
    /// Distinct pre-encoded requests (sent round robin).
    #[arg(long, default_value_t = 16)]
    pub pool: usize,
    /// Timeout of one request.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadgenReport {
    pub elapsed: Duration,
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Answered with success.
    pub ok: u64,
    /// Refused as overloaded (gRPC UNAVAILABLE / RESOURCE_EXHAUSTED, HTTP 429/502/503/504).
    pub refused: u64,
    /// Failed otherwise (other statuses, timeouts, connection errors).
    pub errors: u64,
    /// Spans in successful requests, less those they reported rejected.
    pub spans_accepted: u64,
    /// Spans reported rejected by partial successes.
    pub spans_rejected: u64,
    /// Latency of successful requests, ms.
    pub latency: Sketch,
    /// Latency of every answered request, ms.
    pub latency_all: Sketch,
    pub first_error: Option<String>,
}

impl LoadgenReport {
    pub fn spans_per_second(&self) -> f64 {
        self.spans_accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The report as printed.
    pub fn render(&self, args: &LoadgenArgs) -> String {
        let q = |s: &Sketch, p: f64| {
            s.quantile(p)
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"))
        };
        let mut out = format!(
            "loadgen: {:?} {}, {} spans/request, concurrency {}, {:.1} s, {}\n",
            args.protocol,
            args.endpoint,
            args.spans_per_request,
            args.concurrency,
            self.elapsed.as_secs_f64(),
            args.rate
                .map_or_else(|| "maximum rate".to_owned(), |r| format!("{r} requests/s"))
        );
        out.push_str(&format!(
            "requests: {} sent, {} ok, {} refused (overloaded), {} errors\n",
            self.requests, self.ok, self.refused, self.errors
        ));
        out.push_str(&format!(
            "spans accepted: {} ({:.0} spans/s), {} rejected in partial successes\n",
            self.spans_accepted,
            self.spans_per_second(),
            self.spans_rejected
        ));
        out.push_str(&format!(
            "latency of ok requests: p50 {}, p99 {}, max {}\n",
            q(&self.latency, 0.5),
            q(&self.latency, 0.99),
            if self.latency.count > 0 {
                format!("{:.2} ms", self.latency.max)
            } else {
                "-".to_owned()
            }
        ));
        if let Some(e) = &self.first_error {
            out.push_str(&format!("first error: {e}\n"));
        }
        out
    }
}

/// An encoded request and where to patch it.
#[derive(Debug, Clone)]
struct Template {
    bytes: Vec<u8>,
    spans: u64,
    /// Offsets of the first 8 bytes of every span's trace id.
    trace_ids: Vec<usize>,
    /// Offsets of every span's start and end time (fixed64, little endian).
    times: Vec<usize>,
    /// Latest end time in the request.
    max_end: u64,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Walks the fields of one message in `buf[start..end]`, calling `f(field, wire type, value
/// start, value end)`.
fn fields(
    buf: &[u8],
    start: usize,
    end: usize,
    f: &mut dyn FnMut(u64, u64, usize, usize) -> Option<()>,
) -> Option<()> {
    let mut pos = start;
    while pos < end {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let (vs, ve) = match wire {
            0 => {
                let s = pos;
                varint(buf, &mut pos)?;
                (s, pos)
            }
            1 => (pos, pos + 8),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                (pos, pos.checked_add(len)?)
            }
            5 => (pos, pos + 4),
            _ => return None,
        };
        if ve > end {
            return None;
        }
        pos = ve;
        f(field, wire, vs, ve)?;
    }
    Some(())
}

impl Template {
    /// Finds the patch points of an encoded `ExportTraceServiceRequest`.
    fn scan(bytes: Vec<u8>) -> Option<Self> {
        let mut t = Self {
            spans: 0,
            trace_ids: Vec::new(),
            times: Vec::new(),
            max_end: 0,
            bytes: Vec::new(),
        };
        let buf = &bytes;
        fields(buf, 0, buf.len(), &mut |f, w, s, e| {
            if (f, w) != (1, 2) {
                return Some(());
            }
            // ResourceSpans → ScopeSpans (2) → Span (2).
            fields(buf, s, e, &mut |f, w, s, e| {
                if (f, w) != (2, 2) {
                    return Some(());
                }
                fields(buf, s, e, &mut |f, w, s, e| {
                    if (f, w) != (2, 2) {
                        return Some(());
                    }
                    t.spans += 1;
                    fields(buf, s, e, &mut |f, w, s, e| {
                        match (f, w) {
                            (1, 2) if e - s == 16 => t.trace_ids.push(s),
                            (7, 1) => t.times.push(s),
                            (8, 1) => {
                                t.times.push(s);
                                let v = u64::from_le_bytes(buf[s..e].try_into().ok()?);
                                t.max_end = t.max_end.max(v);
                            }
                            _ => {}
                        }
                        Some(())
                    })
                })
            })
        })?;
        t.bytes = bytes;
        Some(t)
    }

    /// A copy with trace ids salted by `seq` and times shifted to end at `now_ns`.
    fn instance(&self, seq: u64, now_ns: u64) -> Bytes {
        let mut out = self.bytes.clone();
        let salt = splitmix(seq).to_be_bytes();
        for &o in &self.trace_ids {
            for (b, s) in out[o..o + 8].iter_mut().zip(salt) {
                *b ^= s;
            }
        }
        let shift = now_ns.wrapping_sub(self.max_end);
        for &o in &self.times {
            let mut v = [0u8; 8];
            v.copy_from_slice(&out[o..o + 8]);
            let t = u64::from_le_bytes(v).wrapping_add(shift);
            out[o..o + 8].copy_from_slice(&t.to_le_bytes());
        }
        Bytes::from(out)
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Per sender.
#[derive(Debug)]
struct Tally {
    requests: u64,
    ok: u64,
    refused: u64,
    errors: u64,
    accepted: u64,
    rejected: u64,
    latency: Sketch,
    latency_all: Sketch,
    first_error: Option<String>,
}

/// Runs the load and prints the report to stdout.
pub fn run(args: &LoadgenArgs) -> anyhow::Result<LoadgenReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(load(args))?;
    runtime.shutdown_background();
    print!("{}", report.render(args));
    Ok(report)
}

/// The load itself, on the caller's runtime (tests run it next to an in-process ingest).
pub async fn load(args: &LoadgenArgs) -> anyhow::Result<LoadgenReport> {
    if !(1..=100_000).contains(&args.spans_per_request) {
        bail!("--spans-per-request must be between 1 and 100000");
    }
    if !(1..=1024).contains(&args.concurrency) {
        bail!("--concurrency must be between 1 and 1024");
    }
    if args.duration.is_zero() || args.duration > Duration::from_secs(86_400) {
        bail!("--duration must be between 1ms and 24h");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r <= 1e7)) {
        bail!("--rate must be in (0, 10000000]");
    }
    let pool = args.pool.clamp(1, 1024);
    let templates: Vec<Template> = (0..pool)
        .map(|i| {
            let request = synthetic_request(
                args.services,
                args.spans_per_request,
                args.spans_per_resource,
                args.attrs_per_span,
                i as u64 + 1,
            );
            Template::scan(request.encode_to_vec()).context("cannot scan a generated request")
        })
        .collect::<anyhow::Result<_>>()?;
    let templates = Arc::new(templates);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let mut client = OtlpClient::new(&args.endpoint, args.protocol, args.timeout)?;
        let templates = Arc::clone(&templates);
        let next = Arc::clone(&next);
        let rate = args.rate;
        senders.spawn(async move {
            let mut tally = Tally {
                requests: 0,
                ok: 0,
                refused: 0,
                errors: 0,
                accepted: 0,
                rejected: 0,
                latency: Sketch::default(),
                latency_all: Sketch::default(),
                first_error: None,
            };
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(seq as f64 / rate);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                } else if Instant::now() >= deadline {
                    break;
                }
                let template = &templates[(seq % templates.len() as u64) as usize];
                let body = template.instance(seq, now_ns());
                let sent = Instant::now();
                let outcome = client.export(Signal::Traces, body).await;
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                tally.requests += 1;
                match outcome {
                    Outcome::Accepted { rejected } => {
                        let rejected = rejected.min(template.spans);
                        tally.ok += 1;
                        tally.accepted += template.spans - rejected;
                        tally.rejected += rejected;
                        tally.latency.add(ms);
                        tally.latency_all.add(ms);
                    }
                    Outcome::Refused { .. } => {
                        tally.refused += 1;
                        tally.latency_all.add(ms);
                    }
                    Outcome::Failed(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                }
            }
            tally
        });
    }
    let mut report = LoadgenReport {
        elapsed: Duration::ZERO,
        requests: 0,
        ok: 0,
        refused: 0,
        errors: 0,
        spans_accepted: 0,
        spans_rejected: 0,
        latency: Sketch::default(),
        latency_all: Sketch::default(),
        first_error: None,
    };
    while let Some(joined) = senders.join_next().await {
        let t = joined.context("a sender task failed")?;
        report.requests += t.requests;
        report.ok += t.ok;
        report.refused += t.refused;
        report.errors += t.errors;
        report.spans_accepted += t.accepted;
        report.spans_rejected += t.rejected;
        // Same accuracy everywhere: merging cannot fail.
        let _ = report.latency.merge(&t.latency);
        let _ = report.latency_all.merge(&t.latency_all);
        if report.first_error.is_none() {
            report.first_error = t.first_error;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwatch_graph::otlp::wire::decode_traces;
    use meshwatch_graph::span::{DecodedTraces, ResourceKeys};

    #[test]
    fn instances_patch_trace_ids_and_times_only() {
        let request = synthetic_request(10, 200, 20, 6, 3);
        let t = Template::scan(request.encode_to_vec()).expect("scans");
        assert_eq!(t.spans, 200);
        assert_eq!(t.trace_ids.len(), 200);
        assert_eq!(t.times.len(), 400);
        let now = 1_800_000_000_000_000_000;
        let a = t.instance(1, now);
        let b = t.instance(2, now);
        assert_ne!(a, b);
        let decoded =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(a)
                .expect("still a valid request");
        let spans: Vec<_> = decoded
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        let max_end = spans.iter().map(|s| s.end_time_unix_nano).max();
        assert_eq!(max_end, Some(now));
        let original: Vec<_> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        for (x, y) in spans.iter().zip(original) {
            assert_eq!(x.span_id, y.span_id);
            assert_eq!(x.parent_span_id, y.parent_span_id);
            assert_eq!(x.trace_id[8..], y.trace_id[8..]);
            assert_eq!(
                x.end_time_unix_nano - x.start_time_unix_nano,
                y.end_time_unix_nano - y.start_time_unix_nano
            );
            assert_eq!(x.attributes, y.attributes);
        }
        let mut out = DecodedTraces::default();
        decode_traces(&b, &ResourceKeys::default(), &mut out).expect("decodes");
        assert_eq!(out.spans.len(), 200);
        assert!(Template::scan(vec![0x0a, 0xff]).is_none());
    }
}
