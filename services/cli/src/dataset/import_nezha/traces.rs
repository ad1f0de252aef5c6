//! Nezha trace minutes (`trace/HH_MM_trace.csv[.gz]`) to OTLP trace requests.
//!
//! Per CSV row one span, as `scripts/fixtures/nezha_to_otlp.py` maps it: `TraceID`, `SpanID`,
//! `ParentID` (`root`: none) kept when they are 32 / 16 hex digits (else derived from SHA-256,
//! the same derivation as the script), `OperationName` as the name, `StartTimeUnixNano` and
//! `EndTimeUnixNano`; `Duration` is dropped. No span kind, no status, no attributes: the data
//! has none. Spans are grouped by pod into resources with `service.name` (the pod name without
//! its Kubernetes hash suffix), `k8s.pod.name` and `k8s.cluster.name` (the system).
//!
//! Order and memory: each minute file is read whole (tens of thousands of rows), de-duplicated
//! (rows repeating a (trace, span) id pair are dropped and counted) and sorted by (end, start,
//! trace id, span id); consecutive files overlap by a few seconds (a trace's spans can span
//! two files), so the sorted rest of the previous files is merged in, and only what ends
//! before the new file's earliest end is written. The output is ordered by end time, as an SDK
//! exports spans when they end, with memory bounded by about two minute files.
//!
//! Requests: at most `spans_per_request` spans, and spans whose end times lie within
//! `max_request_span` of the request's first one (as a batch span processor exports at least
//! every few seconds); within a request one resource per pod, ordered by pod name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::bail;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::csv::CsvReader;
use super::{SCOPE_NAME, resource_attributes};
use crate::output::OtlpWriter;

/// The header of a trace minute file.
pub const HEADER: [&str; 8] = [
    "TraceID",
    "SpanID",
    "ParentID",
    "PodName",
    "OperationName",
    "StartTimeUnixNano",
    "EndTimeUnixNano",
    "Duration",
];
const ROOT: &str = "root";

/// What the trace import read and wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TraceStats {
    pub files: u64,
    /// Data rows read.
    pub rows: u64,
    /// Rows with a wrong field count, a number that does not parse, an empty pod, or an end
    /// before the start: skipped.
    pub bad_rows: u64,
    /// Rows repeating the (trace id, span id) of an earlier row of the same file, or repeating
    /// a row of the previous file exactly: skipped (the TrainTicket day repeats rows within a
    /// file; consecutive Online Boutique files repeat the traces they share).
    pub duplicate_rows: u64,
    /// Rows whose ids were not 32 / 16 hex digits and were derived.
    pub derived_ids: u64,
    pub spans: u64,
    pub requests: u64,
    /// Earliest start and latest end written, unix ns (0 when nothing was written).
    pub first_start_unix_nano: u64,
    pub last_end_unix_nano: u64,
    /// Spans per service.
    pub spans_by_service: BTreeMap<String, u64>,
}

/// Limits of one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_spans: usize,
    pub max_span_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    end: u64,
    start: u64,
    trace: [u8; 16],
    span: [u8; 8],
    parent: Option<[u8; 8]>,
    pod: u32,
    name: String,
}

impl Row {
    fn key(&self) -> (u64, u64, [u8; 16], [u8; 8]) {
        (self.end, self.start, self.trace, self.span)
    }
}

/// 16-byte trace id: the CSV's 32 hex digits, else the first 16 bytes of
/// SHA-256(`nezha-trace:` + raw).
pub fn trace_id(raw: &str) -> ([u8; 16], bool) {
    let low = raw.trim().to_ascii_lowercase();
    let mut id = [0u8; 16];
    if low.len() == 32 && hex::decode_to_slice(&low, &mut id).is_ok() && id != [0; 16] {
        return (id, false);
    }
    let digest = Sha256::digest(format!("nezha-trace:{raw}").as_bytes());
    id.copy_from_slice(&digest[..16]);
    (id, true)
}

/// 8-byte span id: the CSV's 16 hex digits, else the first 8 bytes of
/// SHA-256(`nezha-span:` + raw trace id + `:` + raw span id).
pub fn span_id(raw_trace: &str, raw: &str) -> ([u8; 8], bool) {
    let low = raw.trim().to_ascii_lowercase();
    let mut id = [0u8; 8];
    if low.len() == 16 && hex::decode_to_slice(&low, &mut id).is_ok() && id != [0; 8] {
        return (id, false);
    }
    let digest = Sha256::digest(format!("nezha-span:{raw_trace}:{raw}").as_bytes());
    id.copy_from_slice(&digest[..8]);
    (id, true)
}

/// Pod names, interned.
#[derive(Debug, Default)]
struct Pods {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Pods {
    fn intern(&mut self, pod: &str) -> u32 {
        if let Some(&i) = self.index.get(pod) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(pod.to_owned());
        self.index.insert(pod.to_owned(), i);
        i
    }
}

/// Writes every trace file of `files` (in order) to `out`.
pub fn import(
    files: &[&Path],
    system: &str,
    limits: RequestLimits,
    out: &mut OtlpWriter,
) -> anyhow::Result<TraceStats> {
    let mut stats = TraceStats::default();
    let mut pods = Pods::default();
    let mut batcher = Batcher {
        limits,
        system,
        spans: Vec::new(),
    };
    // The sorted rest of the files read so far.
    let mut pending: Vec<Row> = Vec::new();
    for path in files {
        let mut rows = read_file(path, &mut pods, &mut stats)?;
        stats.files += 1;
        rows.sort_unstable_by_key(Row::key);
        let Some(first) = rows.first().map(Row::key) else {
            continue;
        };
        let cut = pending.partition_point(|r| r.key() < first);
        for row in pending.drain(..cut) {
            batcher.push(row, &pods, &mut stats, out)?;
        }
        let (merged, repeated) = merge(std::mem::take(&mut pending), rows);
        pending = merged;
        stats.duplicate_rows += repeated;
    }
    for row in pending {
        batcher.push(row, &pods, &mut stats, out)?;
    }
    batcher.flush(&pods, &mut stats, out)?;
    Ok(stats)
}

/// Merges two sorted lists; a row equal to the one before it (the same span in two files) is
/// dropped and counted.
fn merge(a: Vec<Row>, b: Vec<Row>) -> (Vec<Row>, u64) {
    let mut out: Vec<Row> = Vec::with_capacity(a.len() + b.len());
    let mut repeated = 0;
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.key() <= y.key() => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        if let Some(row) = next {
            if out.last() == Some(&row) {
                repeated += 1;
            } else {
                out.push(row);
            }
        }
    }
    (out, repeated)
}

fn read_file(path: &Path, pods: &mut Pods, stats: &mut TraceStats) -> anyhow::Result<Vec<Row>> {
    let mut reader = CsvReader::open(path)?;
    let mut fields = Vec::new();
    if !reader.next_record(&mut fields)? {
        return Ok(Vec::new());
    }
    if fields.first().map(|f| f.trim_start_matches('\u{feff}')) != Some(HEADER[0])
        || fields.len() != HEADER.len()
        || fields[1..] != HEADER[1..]
    {
        bail!(
            "{}: not a Nezha trace file: header {fields:?}, want {HEADER:?}",
            path.display()
        );
    }
    let mut rows = Vec::new();
    let mut seen: HashSet<([u8; 16], [u8; 8])> = HashSet::new();
    while reader.next_record(&mut fields)? {
        stats.rows += 1;
        if fields.len() != HEADER.len() {
            stats.bad_rows += 1;
            continue;
        }
        let (raw_trace, raw_span, raw_parent, pod) =
            (&fields[0], &fields[1], &fields[2], &fields[3]);
        let (Ok(start), Ok(end)) = (
            fields[5].trim().parse::<u64>(),
            fields[6].trim().parse::<u64>(),
        ) else {
            stats.bad_rows += 1;
            continue;
        };
        if end < start || start == 0 || pod.is_empty() {
            stats.bad_rows += 1;
            continue;
        }
        let (trace, d1) = trace_id(raw_trace);
        let (span, d2) = span_id(raw_trace, raw_span);
        let (parent, d3) = if raw_parent == ROOT {
            (None, false)
        } else {
            let (p, d) = span_id(raw_trace, raw_parent);
            (Some(p), d)
        };
        if d1 || d2 || d3 {
            stats.derived_ids += 1;
        }
        if !seen.insert((trace, span)) {
            stats.duplicate_rows += 1;
            continue;
        }
        rows.push(Row {
            end,
            start,
            trace,
            span,
            parent,
            pod: pods.intern(pod),
            name: std::mem::take(&mut fields[4]),
        });
    }
    Ok(rows)
}

/// Cuts the ordered spans into requests.
struct Batcher<'a> {
    limits: RequestLimits,
    system: &'a str,
    spans: Vec<Row>,
}

impl Batcher<'_> {
    fn push(
        &mut self,
        row: Row,
        pods: &Pods,
        stats: &mut TraceStats,
        out: &mut OtlpWriter,
    ) -> anyhow::Result<()> {
        if let Some(first) = self.spans.first()
            && (self.spans.len() >= self.limits.max_spans
                || row.end.saturating_sub(first.end) > self.limits.max_span_ns)
        {
            self.flush(pods, stats, out)?;
        }
        self.spans.push(row);
        Ok(())
    }

    fn flush(
        &mut self,
        pods: &Pods,
        stats: &mut TraceStats,
        out: &mut OtlpWriter,
    ) -> anyhow::Result<()> {
        if self.spans.is_empty() {
            return Ok(());
        }
        let mut by_pod: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
        for row in self.spans.drain(..) {
            let pod = pods.names[row.pod as usize].as_str();
            stats.spans += 1;
            if stats.first_start_unix_nano == 0 || row.start < stats.first_start_unix_nano {
                stats.first_start_unix_nano = row.start;
            }
            stats.last_end_unix_nano = stats.last_end_unix_nano.max(row.end);
            *stats
                .spans_by_service
                .entry(super::service_name(pod).to_owned())
                .or_default() += 1;
            by_pod.entry(pod).or_default().push(Span {
                trace_id: row.trace.to_vec(),
                span_id: row.span.to_vec(),
                parent_span_id: row.parent.map(|p| p.to_vec()).unwrap_or_default(),
                name: row.name,
                start_time_unix_nano: row.start,
                end_time_unix_nano: row.end,
                ..Span::default()
            });
        }
        let request = ExportTraceServiceRequest {
            resource_spans: by_pod
                .into_iter()
                .map(|(pod, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: resource_attributes(pod, self.system),
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: SCOPE_NAME.to_owned(),
                            ..InstrumentationScope::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        };
        out.write_traces(&request)?;
        stats.requests += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_or_derived_like_the_fixture_script() {
        let (id, derived) = trace_id("0087f677c0a2cf3f80a551987167911b");
        assert_eq!(hex::encode(id), "0087f677c0a2cf3f80a551987167911b");
        assert!(!derived);
        let (id, derived) = span_id("t", "EE744A66E6EFCB2E");
        assert_eq!(hex::encode(id), "ee744a66e6efcb2e");
        assert!(!derived);
        // Python: hashlib.sha256(b"nezha-trace:abc").hexdigest()[:32]
        let (id, derived) = trace_id("abc");
        assert!(derived);
        assert_eq!(
            hex::encode(id),
            hex::encode(&Sha256::digest(b"nezha-trace:abc")[..16])
        );
        let (a, _) = span_id("t1", "0");
        let (b, _) = span_id("t2", "0");
        assert_ne!(a, b, "equal raw span ids of different traces stay distinct");
    }

    fn row(end: u64, span: u8) -> Row {
        Row {
            end,
            start: 1,
            trace: [1; 16],
            span: [span; 8],
            parent: None,
            pod: 0,
            name: String::new(),
        }
    }

    #[test]
    fn merge_keeps_order_and_drops_repeats() {
        let (merged, repeated) = merge(
            vec![row(1, 1), row(5, 2), row(9, 3)],
            vec![row(2, 4), row(5, 2), row(7, 5)],
        );
        let ends: Vec<u64> = merged.iter().map(|r| r.end).collect();
        assert_eq!(ends, vec![1, 2, 5, 7, 9]);
        assert_eq!(repeated, 1);
    }
}
