//! `meshwatch snapshot`: OTLP trace files in, one JSON object per graph and window out — the
//! ingest's own graph code (decoders, pairing, windows) run over files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::sketch::Sketch;
use meshwatch_graph::snapshot::json::SnapshotJson;

use crate::input::{InputFormat, open};
use crate::offline::{InputStream, OfflineGraph, aggregator_config};

/// Arguments of `meshwatch snapshot`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// OTLP trace file (`-` for stdin; gzip is detected).
    #[arg(long)]
    pub input: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub format: InputFormat,
    /// Window length (e.g. 30s, 1m).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// Allowed lateness of spans behind the newest one seen.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub lateness: Duration,
    /// Output file of JSON lines (`-` for stdout).
    #[arg(long, default_value = "-")]
    pub output: PathBuf,
    /// Resource attributes naming the graph (repeat; default: k8s.cluster.name,
    /// deployment.environment.name).
    #[arg(long = "graph-key")]
    pub graph_keys: Vec<String>,
    /// Resource attributes naming the service, first non-empty first; `k8s.pod.name` names its
    /// workload (repeat; default: service.name, k8s.deployment.name, k8s.pod.name).
    #[arg(long = "service-key")]
    pub service_keys: Vec<String>,
    /// Graph of resources without the graph attributes.
    #[arg(long, default_value = "default")]
    pub default_graph: String,
    /// Print a readable summary to stderr at the end.
    #[arg(long)]
    pub summary: bool,
    /// OTLP metrics files joined as node resource metrics (repeatable; merged with the traces
    /// by time, as the ingest would see them).
    #[arg(long)]
    pub metrics: Vec<PathBuf>,
    /// Format of the metrics files.
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub metrics_format: InputFormat,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub spans_accepted: u64,
    pub spans_late: u64,
    pub spans_rejected: u64,
    pub snapshots: u64,
    /// Per graph: windows, distinct services, distinct edges, total calls.
    pub graphs: BTreeMap<String, GraphSummary>,
}

/// Totals of one graph over all its windows (sketches merge exactly).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphSummary {
    pub windows: u64,
    pub nodes: BTreeMap<String, NodeTotals>,
    pub edges: BTreeMap<(String, String), EdgeTotals>,
    pub paired: u64,
    pub unpaired: u64,
}

/// One node over all windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeTotals {
    pub requests: u64,
    pub errors: u64,
    pub latency: Sketch,
}

/// One edge over all windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeTotals {
    pub calls: u64,
    pub errors: u64,
    pub client_latency: Sketch,
    pub gap: Sketch,
}

impl Summary {
    fn record(&mut self, snapshot: &GraphSnapshot) {
        self.snapshots += 1;
        let g = self.graphs.entry(snapshot.graph.clone()).or_default();
        g.windows += 1;
        g.paired += snapshot.stats.paired;
        g.unpaired += snapshot.stats.unpaired;
        for n in &snapshot.nodes {
            let t = g.nodes.entry(n.name.clone()).or_default();
            t.requests += n.requests;
            t.errors += n.errors;
            // Same accuracy everywhere: merging cannot fail.
            let _ = t.latency.merge(&n.latency);
        }
        for e in &snapshot.edges {
            let t = g
                .edges
                .entry((e.caller.clone(), e.callee.clone()))
                .or_default();
            t.calls += e.calls;
            t.errors += e.errors;
            let _ = t.client_latency.merge(&e.client_latency);
            let _ = t.gap.merge(&e.gap);
        }
    }

    /// A readable report.
    pub fn render(&self) -> String {
        let q = |s: &Sketch, p: f64| {
            s.quantile(p)
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
        };
        let mut s = format!(
            "{} requests, {} spans aggregated, {} late, {} rejected -> {} snapshots\n",
            self.requests,
            self.spans_accepted,
            self.spans_late,
            self.spans_rejected,
            self.snapshots
        );
        for (name, g) in &self.graphs {
            s.push_str(&format!(
                "\ngraph {name}: {} windows, {} nodes, {} edges ({} spans paired, {} unpaired)\n",
                g.windows,
                g.nodes.len(),
                g.edges.len(),
                g.paired,
                g.unpaired
            ));
            s.push_str(&format!(
                "  {:<32} {:>8} {:>7} {:>9} {:>9}\n",
                "service (latency ms)", "requests", "errors", "p50", "p99"
            ));
            let mut nodes: Vec<_> = g.nodes.iter().filter(|(_, t)| t.requests > 0).collect();
            nodes.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(b.0)));
            for (service, t) in nodes.iter().take(15) {
                s.push_str(&format!(
                    "  {service:<32} {:>8} {:>7} {:>9} {:>9}\n",
                    t.requests,
                    t.errors,
                    q(&t.latency, 0.5),
                    q(&t.latency, 0.99)
                ));
            }
            s.push_str(&format!(
                "  {:<54} {:>7} {:>7} {:>11} {:>9}\n",
                "busiest edges", "calls", "errors", "client p99", "gap p50"
            ));
            let mut edges: Vec<_> = g.edges.iter().collect();
            edges.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
            for ((caller, callee), t) in edges.iter().take(10) {
                let edge = format!("{caller} -> {callee}");
                s.push_str(&format!(
                    "  {edge:<54} {:>7} {:>7} {:>11} {:>9}\n",
                    t.calls,
                    t.errors,
                    q(&t.client_latency, 0.99),
                    q(&t.gap, 0.5)
                ));
            }
        }
        s
    }
}

/// Runs the command.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<Summary> {
    let cfg = aggregator_config(
        args.window,
        args.lateness,
        &args.graph_keys,
        &args.service_keys,
        &args.default_graph,
    )?;
    if args.metrics_format == InputFormat::Zipkin {
        bail!("--metrics-format zipkin: Zipkin holds traces only");
    }
    let mut graph = OfflineGraph::new(cfg, "meshwatch-snapshot")?;
    // Open the input first: a missing input creates no output file.
    let mut reader = open(&args.input)?;
    for path in &args.metrics {
        drop(open(path)?);
    }
    let mut writer: Box<dyn Write> = if args.output.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = File::create(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        Box::new(BufWriter::new(file))
    };
    let mut summary = Summary::default();
    let mut sink = |snapshot: GraphSnapshot| write_one(&mut writer, &snapshot, &mut summary);
    if args.metrics.is_empty() {
        graph.feed(reader.as_mut(), args.format, &mut sink)?;
    } else {
        drop(reader);
        let mut traces = InputStream::new(vec![args.input.clone()], args.format);
        let mut metrics = InputStream::new(args.metrics.clone(), args.metrics_format);
        graph.feed_streams(&mut traces, Some(&mut metrics), &mut sink)?;
    }
    let totals = graph.finish(&mut sink)?;
    writer.flush().context("cannot write output")?;
    summary.requests = totals.requests;
    summary.spans_accepted = totals.spans_accepted;
    summary.spans_late = totals.spans_late;
    summary.spans_rejected = totals.spans_rejected;
    if summary.requests == 0 {
        bail!("{} holds no trace requests", args.input.display());
    }
    if args.summary {
        eprint!("{}", summary.render());
    }
    Ok(summary)
}

fn write_one(
    writer: &mut dyn Write,
    snapshot: &GraphSnapshot,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    summary.record(snapshot);
    serde_json::to_writer(&mut *writer, &SnapshotJson::from(snapshot))
        .context("cannot write output")?;
    writer.write_all(b"\n").context("cannot write output")?;
    Ok(())
}
