//! `meshwatch bench simulator`: how fast the simulator generates spans, per topology, on one
//! core: the core alone (simulated requests to OTLP request structs, as `Simulator::step`
//! returns them) and with protobuf encoding (what a run to a file or an endpoint adds).

use std::time::{Duration, Instant};

use clap::Args;
use meshwatch_simulator::{Batch, SimulationSettings, Simulator};
use prost::Message;

/// Arguments of `meshwatch bench simulator`.
#[derive(Debug, Clone, Args)]
pub struct SimulatorBenchArgs {
    /// Topologies to run (default: the four built-ins and generated:10000).
    #[arg(long = "topology")]
    pub topologies: Vec<String>,
    /// Mean user requests per second of the simulation.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Simulated time per measurement.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// 2025-01-06T08:00:00Z.
const START_MS: i64 = 1_736_150_400_000;

struct Measured {
    spans: u64,
    traces: u64,
    points: u64,
    bytes: u64,
    seconds: f64,
}

fn measure(
    settings: &SimulationSettings,
    duration: Duration,
    encode: bool,
) -> anyhow::Result<Measured> {
    let mut sim = Simulator::new(settings, START_MS, Some(duration))?;
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut spans = 0u64;
    while !sim.is_finished() {
        let mut batch = Batch::default();
        sim.step(&mut batch)?;
        spans += batch.spans;
        if encode {
            for r in &batch.traces {
                bytes += r.encode_to_vec().len() as u64;
            }
            for r in &batch.metrics {
                bytes += r.encode_to_vec().len() as u64;
            }
        }
    }
    let mut last = Batch::default();
    sim.finish(&mut last);
    spans += last.spans;
    let seconds = started.elapsed().as_secs_f64();
    let stats = sim.stats();
    Ok(Measured {
        spans,
        traces: stats.traces,
        points: stats.metric_points,
        bytes,
        seconds,
    })
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &SimulatorBenchArgs) -> anyhow::Result<()> {
    let topologies = if args.topologies.is_empty() {
        [
            "onlineboutique",
            "trainticket",
            "sockshop",
            "socialnetwork",
            "generated:10000",
        ]
        .map(str::to_owned)
        .to_vec()
    } else {
        args.topologies.clone()
    };
    println!(
        "| topology | nodes | spans/trace | core: spans/s | + protobuf: spans/s | bytes/span | metric points |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for name in &topologies {
        let settings = SimulationSettings {
            topology: name.parse()?,
            seed: args.seed,
            rate: args.rate,
            ..SimulationSettings::default()
        };
        let nodes = settings.topology.build(args.seed)?.services.len();
        // A short warm-up run (allocator, page faults), not counted.
        measure(&settings, Duration::from_secs(10), true)?;
        let core = measure(&settings, args.duration, false)?;
        let encoded = measure(&settings, args.duration, true)?;
        println!(
            "| {name} | {nodes} | {:.1} | {:.2} M | {:.2} M | {:.0} | {} |",
            core.spans as f64 / core.traces.max(1) as f64,
            core.spans as f64 / core.seconds / 1e6,
            encoded.spans as f64 / encoded.seconds / 1e6,
            encoded.bytes as f64 / encoded.spans.max(1) as f64,
            core.points
        );
    }
    Ok(())
}
