//! `meshwatch dataset import zipkin FILE --out DIR`: Zipkin v2 JSON (one span list, or several
//! one after another, as `POST /api/v2/spans` bodies are; gzip detected) to an OTLP trace file,
//! with the mapping of `meshwatch_graph::zipkin` (shared spans split, tags to attributes,
//! `error` to the status). `meshwatch snapshot --format zipkin` reads the same input directly.
//!
//! Each span list is converted as a whole (shared-span halves are matched within it), its
//! spans ordered by end time (stable), as an SDK exports spans when they end, and cut into
//! requests of at most `--spans-per-request` spans whose end times lie within
//! `--request-span` of the request's first (a request groups its spans by resource, so this
//! bounds how far out of time order a reader sees them: keep it below the allowed lateness).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use meshwatch_graph::span::ResourceKeys;
use meshwatch_graph::zipkin;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde::Serialize;

use crate::input::{InputFormat, next_record, open};
use crate::output::{OtlpWriter, OutputFormat};

/// Arguments of `meshwatch dataset import zipkin`.
#[derive(Debug, Clone, Args)]
pub struct ZipkinArgs {
    /// Zipkin v2 JSON file (`-` for stdin): a JSON array of spans, or several arrays.
    pub file: PathBuf,
    /// Output directory (created if missing); writes `traces.otlp.jsonl` (or `.pb`).
    #[arg(long)]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "otlp-json")]
    pub format: OutputFormat,
    /// Most spans in one OTLP request.
    #[arg(long, default_value_t = 500)]
    pub spans_per_request: usize,
    /// Most time between the end of the first and the last span of one request.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub request_span: std::time::Duration,
    /// Span tags that become resource attributes naming the graph (repeat; default:
    /// k8s.cluster.name, deployment.environment.name).
    #[arg(long = "graph-key")]
    pub graph_keys: Vec<String>,
    /// Gzip the output (`.gz` appended to its name).
    #[arg(long)]
    pub gzip: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ZipkinSummary {
    /// Span lists read.
    pub lists: u64,
    pub spans: u64,
    /// OTLP requests written.
    pub requests: u64,
    /// Distinct service names.
    pub services: u64,
    pub output: PathBuf,
}

impl ZipkinSummary {
    pub fn render(&self) -> String {
        format!(
            "{} Zipkin spans from {} span lists, {} services -> {} OTLP requests in {}\n",
            self.spans,
            self.lists,
            self.services,
            self.requests,
            self.output.display()
        )
    }
}

/// Splits a request into requests of at most `max` spans whose end times lie within
/// `max_span_ns` of the first's, ordered by end time (stable); each keeps its spans' resources
/// and scopes (one `ResourceSpans` per resource and scope).
pub fn split_by_end_time(
    request: ExportTraceServiceRequest,
    max: usize,
    max_span_ns: u64,
) -> Vec<ExportTraceServiceRequest> {
    let mut groups: Vec<ResourceSpans> = Vec::new();
    let mut spans: Vec<(usize, Span)> = Vec::new();
    for rs in request.resource_spans {
        for ss in rs.scope_spans {
            spans.extend(ss.spans.into_iter().map(|span| (groups.len(), span)));
            groups.push(ResourceSpans {
                resource: rs.resource.clone(),
                scope_spans: vec![ScopeSpans {
                    scope: ss.scope,
                    spans: Vec::new(),
                    schema_url: ss.schema_url,
                }],
                schema_url: rs.schema_url.clone(),
            });
        }
    }
    spans.sort_by_key(|(_, s)| s.end_time_unix_nano);
    let mut chunks: Vec<Vec<(usize, Span)>> = Vec::new();
    for item in spans {
        match chunks.last_mut() {
            Some(chunk)
                if chunk.len() < max.max(1)
                    && item.1.end_time_unix_nano - chunk[0].1.end_time_unix_nano <= max_span_ns =>
            {
                chunk.push(item);
            }
            _ => chunks.push(vec![item]),
        }
    }
    let mut out = Vec::new();
    for mut chunk in chunks {
        let mut index: HashMap<usize, usize> = HashMap::new();
        let mut resource_spans: Vec<ResourceSpans> = Vec::new();
        for (g, span) in &mut chunk {
            let i = *index.entry(*g).or_insert_with(|| {
                resource_spans.push(groups[*g].clone());
                resource_spans.len() - 1
            });
            resource_spans[i].scope_spans[0]
                .spans
                .push(std::mem::take(span));
        }
        out.push(ExportTraceServiceRequest { resource_spans });
    }
    out
}

/// Runs the import.
pub fn run(args: &ZipkinArgs) -> anyhow::Result<ZipkinSummary> {
    if args.spans_per_request == 0 {
        bail!("--spans-per-request must be at least 1");
    }
    let mut keys = ResourceKeys::default();
    if !args.graph_keys.is_empty() {
        keys.graph_keys.clone_from(&args.graph_keys);
    }
    let mut reader = open(&args.file)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut name = format!("traces.{}", args.format.extension());
    if args.gzip {
        name.push_str(".gz");
    }
    let path = args.out.join(name);
    let mut writer = OtlpWriter::create(&path, args.format, args.gzip)?;
    let mut summary = ZipkinSummary::default();
    let mut services = std::collections::BTreeSet::new();
    let (mut record, mut n) = (Vec::new(), 0u64);
    while next_record(reader.as_mut(), InputFormat::Zipkin, &mut record, &mut n)? {
        let spans = zipkin::decode_json(&record).with_context(|| format!("span list {n}"))?;
        summary.lists += 1;
        summary.spans += spans.len() as u64;
        services.extend(
            spans
                .iter()
                .filter_map(|s| s.local_endpoint.as_ref()?.service_name.clone()),
        );
        let request = zipkin::to_otlp(spans, &keys);
        let span_ns = u64::try_from(args.request_span.as_nanos()).unwrap_or(u64::MAX);
        for part in split_by_end_time(request, args.spans_per_request, span_ns) {
            writer.write_traces(&part)?;
            summary.requests += 1;
        }
    }
    let written = writer.finish()?;
    if summary.lists == 0 {
        bail!("{} holds no Zipkin span list", args.file.display());
    }
    summary.services = services.len() as u64;
    summary.output = written.path;
    Ok(summary)
}
