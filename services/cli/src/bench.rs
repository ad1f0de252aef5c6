//! `meshwatch bench`: throughput of the hot paths, single-threaded, on pre-encoded realistic
//! requests (`docs/benchmarks.md` records the results and the machine).

pub mod inference;
pub mod simulator;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use meshwatch_graph::otlp::bench_data::synthetic_request;
use meshwatch_graph::otlp::wire::decode_traces;
use meshwatch_graph::span::{DecodedTraces, GraphValues, ResourceKeys, ResourceView, SpanView};
use meshwatch_graph::{Aggregator, AggregatorConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// OTLP decode and graph aggregation throughput, and the pairing store's memory.
    Ingest(IngestBenchArgs),
    /// Simulator generation rate per topology.
    Simulator(simulator::SimulatorBenchArgs),
    /// Model latency per graph size (service path, ONNX Runtime, PyTorch eager) and
    /// micro-batching throughput.
    Inference(inference::InferenceBenchArgs),
}

/// Arguments of `meshwatch bench ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestBenchArgs {
    /// Distinct pre-encoded requests per layout.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Spans per request.
    #[arg(long, default_value_t = 1000)]
    pub spans_per_request: usize,
    /// Attributes per span.
    #[arg(long, default_value_t = 10)]
    pub attrs_per_span: usize,
    /// Unpaired spans put in the pairing store before the "large store" runs.
    #[arg(long, default_value_t = 1_000_000)]
    pub prefill: usize,
    /// Which layouts to run.
    #[arg(long, value_enum, default_value = "all")]
    pub layout: LayoutChoice,
    /// Minimum measuring time of each measurement.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub min_time: Duration,
}

/// Runs a benchmark and prints a Markdown table to stdout.
pub fn run(cmd: &BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(args) => ingest(args),
        BenchCommand::Simulator(args) => simulator::run(args),
        BenchCommand::Inference(args) => inference::run(args),
    }
}

/// Layouts of `meshwatch bench ingest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutChoice {
    /// 50 services, 20 spans per resource.
    Typical,
    /// 5,000 services, one span per resource.
    Worst,
    All,
}

struct Layout {
    name: &'static str,
    services: usize,
    spans_per_resource: usize,
}

const LAYOUTS: [Layout; 2] = [
    Layout {
        name: "50 services, 20 spans/resource",
        services: 50,
        spans_per_resource: 20,
    },
    Layout {
        name: "5,000 services, 1 span/resource",
        services: 5_000,
        spans_per_resource: 1,
    },
];

fn mspans(spans: u64, elapsed: Duration) -> f64 {
    spans as f64 / elapsed.as_secs_f64() / 1e6
}

/// Repeats `f` over all bodies until `min_time` has passed; spans per second in millions.
fn repeat(bodies: &[Vec<u8>], min_time: Duration, mut f: impl FnMut(&[u8]) -> u64) -> f64 {
    let start = Instant::now();
    let mut spans = 0;
    loop {
        for body in bodies {
            spans += f(body);
        }
        if start.elapsed() >= min_time {
            return mspans(spans, start.elapsed());
        }
    }
}

fn bench_config() -> AggregatorConfig {
    AggregatorConfig {
        window_ms: 30_000,
        // Nothing closes during a run: the store only grows, the worst case.
        allowed_lateness_ms: 3_600_000,
        max_pending_spans: 8_000_000,
        max_nodes_per_graph: 20_000,
        ..AggregatorConfig::default()
    }
}

/// Decode + aggregation throughput: passes over all bodies, each on a fresh aggregator (after
/// `prefill` untimed waiting spans), repeated until `min_time` of measured passes; the first
/// pass warms the allocator and is not counted.
fn aggregate_rate(
    bodies: &[Vec<u8>],
    keys: &ResourceKeys,
    decompress: &dyn Fn(&[u8]) -> anyhow::Result<Vec<u8>>,
    compressed: bool,
    prefill_spans: usize,
    min_time: Duration,
) -> anyhow::Result<f64> {
    let mut measured = Duration::ZERO;
    let mut spans = 0u64;
    let mut first = true;
    while measured < min_time {
        let mut aggregator =
            Aggregator::new(bench_config(), "bench").map_err(anyhow::Error::msg)?;
        prefill(&mut aggregator, prefill_spans);
        let (n, elapsed) = aggregate_pass(&mut aggregator, bodies, keys, decompress, compressed)?;
        if !first {
            measured += elapsed;
            spans += n;
        }
        first = false;
    }
    Ok(mspans(spans, measured))
}

/// One pass of decode + aggregation over all bodies (optionally decompressing each first):
/// spans aggregated and the time it took.
fn aggregate_pass(
    aggregator: &mut Aggregator,
    bodies: &[Vec<u8>],
    keys: &ResourceKeys,
    decompress: &dyn Fn(&[u8]) -> anyhow::Result<Vec<u8>>,
    compressed: bool,
) -> anyhow::Result<(u64, Duration)> {
    let mut spare: DecodedTraces<'static> = DecodedTraces::default();
    let mut out = Vec::new();
    let mut spans = 0u64;
    let mut plain = Vec::new();
    let start = Instant::now();
    for body in bodies {
        if compressed {
            plain = decompress(body)?;
        }
        let bytes: &[u8] = if compressed { &plain } else { body };
        let mut decoded = std::mem::take(&mut spare).recycle();
        decode_traces(bytes, keys, &mut decoded).context("benchmark request must decode")?;
        let report = aggregator.ingest(&decoded, None, &mut out);
        spare = decoded.recycle();
        spans += report.accepted;
        out.clear();
    }
    Ok((spans, start.elapsed()))
}

/// Fills the store with `n` client spans that never pair.
fn prefill(aggregator: &mut Aggregator, n: usize) {
    if n == 0 {
        return;
    }
    let ids: Vec<([u8; 16], [u8; 8])> = (0..n as u64)
        .map(|i| {
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&(i + 1).to_le_bytes());
            t[8] = 0xfe;
            (t, (i + 1).to_le_bytes())
        })
        .collect();
    let base = meshwatch_graph::otlp::bench_data::BASE_TIME_UNIX_NANO;
    let mut out = Vec::new();
    for chunk in ids.chunks(10_000) {
        let mut d = DecodedTraces::default();
        d.resources.push(ResourceView {
            // The first default service key, `service.name`.
            service_values: GraphValues::from_slice(&[Some("prefill")]),
            ..ResourceView::default()
        });
        for (trace, span) in chunk {
            d.spans.push(SpanView {
                resource: 0,
                trace_id: trace,
                span_id: span,
                kind: 3,
                start_time_unix_nano: base,
                end_time_unix_nano: base + 1_000_000,
                ..SpanView::default()
            });
        }
        aggregator.ingest(&d, None, &mut out);
    }
}

/// Resident and peak resident memory of this process, MiB (Linux).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn ingest(args: &IngestBenchArgs) -> anyhow::Result<()> {
    let keys = ResourceKeys::default();
    let mut stdout = std::io::stdout().lock();
    // Memory of the pairing store, measured first in a fresh process: RSS around a prefill.
    let (rss_before, _) = rss_mib();
    let mut agg = Aggregator::new(bench_config(), "bench").map_err(anyhow::Error::msg)?;
    prefill(&mut agg, args.prefill);
    let (rss_after, peak) = rss_mib();
    let pending = agg.state().pending_spans;
    drop(agg);
    let store_report = format!(
        "pairing store: {pending} spans waiting; RSS {rss_before:.0} MiB -> {rss_after:.0} MiB ({:.0} B per waiting span); process peak {peak:.0} MiB\n",
        (rss_after - rss_before) * 1024.0 * 1024.0 / pending.max(1) as f64,
    );
    writeln!(
        stdout,
        "requests per layout: {} x {} spans, {} attributes per span; single thread\n",
        args.requests, args.spans_per_request, args.attrs_per_span
    )?;
    writeln!(
        stdout,
        "| layout | bytes/span | prost decode | zero-copy decode | decode + aggregate | + gzip | + zstd | decode + aggregate, {} waiting spans |",
        args.prefill
    )?;
    writeln!(stdout, "|---|---|---|---|---|---|---|---|")?;
    let chosen = LAYOUTS
        .iter()
        .enumerate()
        .filter(|(i, _)| match args.layout {
            LayoutChoice::Typical => *i == 0,
            LayoutChoice::Worst => *i == 1,
            LayoutChoice::All => true,
        });
    for (_, layout) in chosen {
        let bodies: Vec<Vec<u8>> = (0..args.requests)
            .map(|i| {
                synthetic_request(
                    layout.services,
                    args.spans_per_request,
                    layout.spans_per_resource,
                    args.attrs_per_span,
                    i as u64 + 1,
                )
                .encode_to_vec()
            })
            .collect();
        let total_bytes: usize = bodies.iter().map(Vec::len).sum();
        let bytes_per_span = total_bytes as f64 / (args.requests * args.spans_per_request) as f64;
        let gzip: Vec<Vec<u8>> = bodies
            .iter()
            .map(|b| {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(b)?;
                e.finish()
            })
            .collect::<Result<_, _>>()?;
        let zstd: Vec<Vec<u8>> = bodies
            .iter()
            .map(|b| zstd::bulk::compress(b, 3))
            .collect::<Result<_, _>>()?;

        let prost_rate = repeat(&bodies, args.min_time, |b| {
            ExportTraceServiceRequest::decode(b).map_or(0, |r| {
                r.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .map(|ss| ss.spans.len() as u64)
                    .sum()
            })
        });
        let mut spare: DecodedTraces<'static> = DecodedTraces::default();
        let wire_rate = repeat(&bodies, args.min_time, |b| {
            let mut decoded = std::mem::take(&mut spare).recycle();
            let n =
                decode_traces(b, &keys, &mut decoded).map_or(0, |()| decoded.spans.len() as u64);
            spare = decoded.recycle();
            n
        });
        let none = |_: &[u8]| -> anyhow::Result<Vec<u8>> { Ok(Vec::new()) };
        let gunzip = |b: &[u8]| -> anyhow::Result<Vec<u8>> {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut out)?;
            Ok(out)
        };
        let unzstd = |b: &[u8]| -> anyhow::Result<Vec<u8>> { Ok(zstd::stream::decode_all(b)?) };

        let t = args.min_time;
        let plain_rate = aggregate_rate(&bodies, &keys, &none, false, 0, t)?;
        let gzip_rate = aggregate_rate(&gzip, &keys, &gunzip, true, 0, t)?;
        let zstd_rate = aggregate_rate(&zstd, &keys, &unzstd, true, 0, t)?;
        let large_rate = aggregate_rate(&bodies, &keys, &none, false, args.prefill, t)?;

        writeln!(
            stdout,
            "| {} | {:.0} | {:.2} M/s | {:.2} M/s | {:.2} M/s | {:.2} M/s | {:.2} M/s | {:.2} M/s |",
            layout.name,
            bytes_per_span,
            prost_rate,
            wire_rate,
            plain_rate,
            gzip_rate,
            zstd_rate,
            large_rate
        )?;
    }
    writeln!(stdout, "\n{store_report}")?;
    Ok(())
}
