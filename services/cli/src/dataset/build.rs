//! `meshwatch dataset build`: OTLP trace files in, per graph a sequence of encoded windows out
//! (`.npz` shards and a `manifest.json`; `docs/dataset-format.md`).
//!
//! The snapshots come from the same offline run of the ingest's graph code as
//! `meshwatch snapshot` ([`OfflineGraph`]); each is reduced to its feature rows as soon as its
//! window closes and dropped, and a graph's rows are encoded and written shard by shard
//! ([`GraphShards`]), so memory is bounded by the shard length and the number of graphs, not
//! by the input.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use meshwatch_graph::GraphSnapshot;
use meshwatch_graph::features::schema::{NODE_KINDS, node_kind_index, node_kind_name};
use meshwatch_graph::features::{
    EDGE_FEATURE_NAMES, EncodedSequence, FEATURE_SCHEMA_VERSION, NODE_FEATURE_NAMES, StepFeatures,
    TARGET_NAMES, encode, fault_types, window_labels,
};
use meshwatch_graph::labels::{FaultLabel, read_labels};

use super::npz::NpzWriter;
use super::shards::{GraphShards, Shard, ShardPlan};
use crate::input::InputFormat;
use crate::offline::{FeedTotals, InputStream, OfflineGraph, aggregator_config};

mod manifest;

pub use manifest::{GraphEntry, Inputs, Manifest, ShardEntry, Totals};

/// Version of the file layout (`manifest.json`, array names, dtypes), independent of the
/// feature schema version.
pub const DATASET_FORMAT_VERSION: u32 = 1;

/// Arguments of `meshwatch dataset build`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// OTLP trace file (`-` for stdin; gzip is detected). Repeat the flag to read several
    /// files in order, as one stream (e.g. consecutive recordings).
    #[arg(long = "traces", required = true)]
    pub traces: Vec<PathBuf>,
    /// Format of the trace files.
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub format: InputFormat,
    /// OTLP metrics file (resource metrics of the services), merged with the traces by time.
    /// Repeat the flag for several files, read in order.
    #[arg(long = "metrics")]
    pub metrics: Vec<PathBuf>,
    /// Format of the metrics files (`otlp-json` or `otlp-proto`).
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub metrics_format: InputFormat,
    /// Fault labels (JSON lines, `docs/labels.md`): adds per-window, per-node labels.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Window length (e.g. 30s, 1m).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// Allowed lateness of spans behind the newest one seen.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub lateness: Duration,
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
    /// Output directory: created; if it exists it must be empty.
    #[arg(long)]
    pub out: PathBuf,
    /// Longest window sequence a consumer slices (T; T + H for the forecaster): consecutive
    /// shards overlap by steps - 1 windows, and a gap of at least this many windows without
    /// spans starts a new segment.
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// Windows per shard at most; bounds memory (see docs/dataset-format.md).
    #[arg(long, default_value_t = 720)]
    pub shard_steps: usize,
}

/// One graph being written.
#[derive(Debug)]
struct GraphOut {
    shards: GraphShards,
    entry: GraphEntry,
    node_names: BTreeSet<String>,
}

/// What every shard writer needs.
#[derive(Debug)]
struct ShardContext {
    out: PathBuf,
    window_ms: u32,
    labels: Option<Vec<FaultLabel>>,
    fault_types: Vec<String>,
}

/// Runs the command; returns the manifest it wrote.
pub fn run(args: &BuildArgs) -> anyhow::Result<Manifest> {
    let plan = ShardPlan {
        steps: args.steps,
        shard_steps: args.shard_steps,
    };
    plan.validate()?;
    if args.metrics_format == InputFormat::Zipkin {
        bail!("--metrics-format must be otlp-json or otlp-proto (Zipkin holds no metrics)");
    }
    let stdin = |p: &PathBuf| p.as_os_str() == "-";
    if args
        .traces
        .iter()
        .chain(&args.metrics)
        .filter(|p| stdin(p))
        .count()
        > 1
    {
        bail!("only one input can be stdin (-)");
    }
    let cfg = aggregator_config(
        args.window,
        args.lateness,
        &args.graph_keys,
        &args.service_keys,
        &args.default_graph,
    )?;
    let window_ms = cfg.window_ms;
    let mut graph_code = OfflineGraph::new(cfg, "meshwatch-dataset")?;
    let labels = match &args.labels {
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            Some(
                read_labels(BufReader::new(file))
                    .with_context(|| format!("cannot read labels {}", path.display()))?,
            )
        }
        None => None,
    };
    prepare_out_dir(&args.out)?;
    let ctx = ShardContext {
        out: args.out.clone(),
        window_ms,
        fault_types: labels.as_deref().map(fault_types).unwrap_or_default(),
        labels,
    };

    let mut graphs: Vec<GraphOut> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut snapshots = 0u64;
    let mut sink = |snapshot: GraphSnapshot| -> anyhow::Result<()> {
        snapshots += 1;
        let i = *index.entry(snapshot.graph.clone()).or_insert_with(|| {
            graphs.push(new_graph(&snapshot.graph, graphs.len(), window_ms, plan));
            graphs.len() - 1
        });
        let step = StepFeatures::from_snapshot(&snapshot);
        drop(snapshot);
        let GraphOut {
            shards,
            entry,
            node_names,
        } = &mut graphs[i];
        shards.push(step, &mut |s| write_shard(&ctx, entry, node_names, s))
    };
    let mut traces = InputStream::new(args.traces.clone(), args.format);
    let mut metrics = (!args.metrics.is_empty())
        .then(|| InputStream::new(args.metrics.clone(), args.metrics_format));
    graph_code.feed_streams(&mut traces, metrics.as_mut(), &mut sink)?;
    let totals: FeedTotals = graph_code.finish(&mut sink)?;
    for g in &mut graphs {
        let GraphOut {
            shards,
            entry,
            node_names,
        } = g;
        shards.finish(&mut |s| write_shard(&ctx, entry, node_names, s))?;
        entry.windows_observed = shards.windows_observed;
        entry.windows_missing = shards.windows_missing;
        entry.segments = shards.segments();
        if let Some(labels) = &ctx.labels {
            let ours: Vec<&FaultLabel> = labels.iter().filter(|l| l.graph == entry.graph).collect();
            entry.faults = Some(ours.len());
            let unmatched: BTreeSet<&str> = ours
                .iter()
                .map(|l| l.root_cause.as_str())
                .filter(|r| !node_names.contains(*r))
                .collect();
            entry.unmatched_root_causes = unmatched.into_iter().map(str::to_owned).collect();
        }
    }

    let labels_without_data: Vec<String> = ctx
        .labels
        .iter()
        .flatten()
        .map(|l| l.graph.as_str())
        .filter(|g| !index.contains_key(*g))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let manifest = Manifest {
        format: "meshwatch.dataset",
        format_version: DATASET_FORMAT_VERSION,
        feature_schema_version: FEATURE_SCHEMA_VERSION,
        node_features: NODE_FEATURE_NAMES.to_vec(),
        edge_features: EDGE_FEATURE_NAMES.to_vec(),
        targets: TARGET_NAMES.to_vec(),
        node_kinds: NODE_KINDS.iter().map(|k| node_kind_name(*k)).collect(),
        fault_types: ctx.labels.as_ref().map(|_| ctx.fault_types.clone()),
        window_ms,
        steps: plan.steps,
        shard_steps: plan.shard_steps,
        producer: format!("meshwatch-dataset {}", env!("CARGO_PKG_VERSION")),
        inputs: Inputs {
            traces: args
                .traces
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            format: args.format.name(),
            metrics: args
                .metrics
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            metrics_format: (!args.metrics.is_empty()).then(|| args.metrics_format.name()),
            labels: args.labels.as_ref().map(|p| p.display().to_string()),
        },
        totals: Totals {
            requests: totals.requests,
            spans_accepted: totals.spans_accepted,
            spans_late: totals.spans_late,
            spans_rejected: totals.spans_rejected,
            metrics_requests: totals.metrics_requests,
            points_accepted: totals.points_accepted,
            points_late: totals.points_late,
            points_rejected: totals.points_rejected,
            points_ignored: totals.points_ignored,
            snapshots,
        },
        graphs: graphs.into_iter().map(|g| g.entry).collect(),
        labels_without_data,
    };
    write_atomically(&args.out.join("manifest.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest)?;
        w.write_all(b"\n")?;
        Ok(())
    })?;
    eprint!("{}", manifest::render(&manifest));
    Ok(manifest)
}

fn new_graph(graph: &str, index: usize, window_ms: u32, plan: ShardPlan) -> GraphOut {
    GraphOut {
        shards: GraphShards::new(graph, window_ms, plan),
        entry: GraphEntry {
            graph: graph.to_owned(),
            dir: format!("graphs/{index:03}-{}", file_name_part(graph)),
            windows_observed: 0,
            windows_missing: 0,
            segments: 0,
            shards: Vec::new(),
            faults: None,
            unmatched_root_causes: Vec::new(),
        },
        node_names: BTreeSet::new(),
    }
}

/// A graph name as a readable file name part: `[A-Za-z0-9._-]` kept, the rest `_`, at most
/// 64 characters (the index before it keeps folders apart).
fn file_name_part(graph: &str) -> String {
    let s: String = graph
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "graph".to_owned()
    } else {
        s
    }
}

fn prepare_out_dir(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries =
            std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: write a dataset into a new or empty folder",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

/// Writes `path` through a temporary file renamed into place, so a file that exists is whole.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = BufWriter::new(file);
    write(&mut w).with_context(|| format!("cannot write {}", tmp.display()))?;
    let file = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

fn write_shard(
    ctx: &ShardContext,
    entry: &mut GraphEntry,
    node_names: &mut BTreeSet<String>,
    shard: Shard<'_>,
) -> anyhow::Result<()> {
    let enc = encode(ctx.window_ms, shard.steps)
        .with_context(|| format!("graph {}: cannot encode shard {}", entry.graph, shard.index))?;
    let rel = format!("{}/shard-{:05}.npz", entry.dir, shard.index);
    let path = ctx.out.join(&rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomically(&path, |w| {
        let mut npz = NpzWriter::new(w);
        write_arrays(&mut npz, ctx, &entry.graph, &shard, &enc)?;
        npz.finish()?;
        Ok(())
    })?;
    node_names.extend(enc.node_names.iter().cloned());
    entry.shards.push(ShardEntry {
        file: rel,
        segment: shard.segment,
        first_window_start_ms: enc.window_start_ms.first().copied().unwrap_or_default(),
        steps: enc.steps(),
        observed_steps: shard.steps.iter().filter(|s| s.observed).count(),
        overlap: shard.overlap,
        nodes: enc.node_count(),
        edges: enc.edge_count(),
    });
    Ok(())
}

/// The arrays of one shard (documented in docs/dataset-format.md).
fn write_arrays<W: Write>(
    npz: &mut NpzWriter<W>,
    ctx: &ShardContext,
    graph: &str,
    shard: &Shard<'_>,
    enc: &EncodedSequence,
) -> anyhow::Result<()> {
    npz.array(
        "feature_schema_version",
        &[],
        &[i64::from(FEATURE_SCHEMA_VERSION)],
    )?;
    npz.array("format_version", &[], &[i64::from(DATASET_FORMAT_VERSION)])?;
    npz.strings("graph", &[], &[graph])?;
    npz.array("window_ms", &[], &[i64::from(enc.window_ms)])?;
    npz.array("segment", &[], &[i64::from(shard.segment)])?;
    npz.array("overlap", &[], &[shard.overlap as i64])?;
    npz.strings("node_names", &[enc.node_count()], &enc.node_names)?;
    let kinds: Vec<i64> = enc
        .node_kinds
        .iter()
        .map(|k| node_kind_index(*k) as i64)
        .collect();
    npz.array("node_kind", &[kinds.len()], &kinds)?;
    let kind_names: Vec<&str> = NODE_KINDS.iter().map(|k| node_kind_name(*k)).collect();
    npz.strings("node_kind_names", &[kind_names.len()], &kind_names)?;
    npz.strings(
        "node_feature_names",
        &[NODE_FEATURE_NAMES.len()],
        &NODE_FEATURE_NAMES,
    )?;
    npz.strings(
        "edge_feature_names",
        &[EDGE_FEATURE_NAMES.len()],
        &EDGE_FEATURE_NAMES,
    )?;
    npz.strings("target_names", &[TARGET_NAMES.len()], &TARGET_NAMES)?;
    let t = &enc.node_features;
    npz.array("node_features", t.shape(), t.data())?;
    npz.array("node_mask", enc.node_mask.shape(), enc.node_mask.data())?;
    npz.array("edge_index", enc.edge_index.shape(), enc.edge_index.data())?;
    npz.array(
        "edge_weight",
        enc.edge_weight.shape(),
        enc.edge_weight.data(),
    )?;
    npz.array(
        "edge_features",
        enc.edge_features.shape(),
        enc.edge_features.data(),
    )?;
    npz.array(
        "window_start",
        enc.window_start.shape(),
        enc.window_start.data(),
    )?;
    npz.array(
        "window_start_ms",
        &[enc.window_start_ms.len()],
        &enc.window_start_ms,
    )?;
    npz.array("step_mask", enc.step_mask.shape(), enc.step_mask.data())?;
    npz.array("targets", enc.targets.shape(), enc.targets.data())?;
    npz.array(
        "target_mask",
        enc.target_mask.shape(),
        enc.target_mask.data(),
    )?;
    if let Some(labels) = &ctx.labels {
        let l = window_labels(
            labels,
            graph,
            enc.window_ms,
            &enc.window_start_ms,
            &enc.node_names,
            &ctx.fault_types,
        )?;
        npz.array(
            "label_root_cause",
            l.root_cause.shape(),
            l.root_cause.data(),
        )?;
        npz.array("label_any_fault", l.any_fault.shape(), l.any_fault.data())?;
        npz.array(
            "label_fault_type",
            l.fault_type.shape(),
            l.fault_type.data(),
        )?;
        npz.strings(
            "fault_type_names",
            &[ctx.fault_types.len()],
            &ctx.fault_types,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_names_become_safe_file_names() {
        assert_eq!(file_name_part("onlineboutique"), "onlineboutique");
        assert_eq!(file_name_part("prod/eu-west 1"), "prod_eu-west_1");
        assert_eq!(file_name_part(".."), "graph");
        assert_eq!(file_name_part(""), "graph");
        assert_eq!(file_name_part(&"x".repeat(300)).len(), 64);
    }
}
