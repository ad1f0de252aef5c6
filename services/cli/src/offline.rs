//! The ingest's graph code run over OTLP files (offline: no wall clock, the watermark is the
//! newest event time seen): what `meshwatch snapshot` and `meshwatch dataset build` share, so
//! that both see exactly the snapshots the live ingest would publish.
//!
//! Traces and metrics close windows under the same watermark, so a trace stream and a metrics
//! stream are merged by time ([`OfflineGraph::feed_streams`]): of the two next requests, the one
//! whose newest event is older goes first, as they would have arrived at a live ingest.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use meshwatch_graph::metrics::{self, DecodedMetrics};
use meshwatch_graph::otlp::owned::{decode_json, views_from_owned};
use meshwatch_graph::otlp::wire::decode_traces;
use meshwatch_graph::span::{DecodedTraces, ResourceKeys};
use meshwatch_graph::{Aggregator, AggregatorConfig, GraphSnapshot, zipkin};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use crate::input::{InputFormat, next_record, open};

/// The aggregator settings of an offline run.
pub fn aggregator_config(
    window: Duration,
    lateness: Duration,
    graph_keys: &[String],
    service_keys: &[String],
    default_graph: &str,
) -> anyhow::Result<AggregatorConfig> {
    let window_ms = u32::try_from(window.as_millis()).context("window too long")?;
    let lateness_ms = u32::try_from(lateness.as_millis()).context("lateness too long")?;
    let mut cfg = AggregatorConfig {
        window_ms,
        allowed_lateness_ms: lateness_ms,
        default_graph: default_graph.to_owned(),
        ..AggregatorConfig::default()
    };
    if !graph_keys.is_empty() {
        cfg.graph_keys = graph_keys.to_vec();
    }
    if !service_keys.is_empty() {
        cfg.service_keys = service_keys.to_vec();
    }
    Ok(cfg)
}

/// What was read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedTotals {
    /// Trace requests (lines or records) read.
    pub requests: u64,
    pub spans_accepted: u64,
    pub spans_late: u64,
    pub spans_rejected: u64,
    /// Metrics requests read.
    pub metrics_requests: u64,
    pub points_accepted: u64,
    pub points_late: u64,
    pub points_rejected: u64,
    /// Data points of metrics outside the mapping (not an error).
    pub points_ignored: u64,
}

/// Where closed snapshots go, in the order their windows close.
pub type Sink<'a> = dyn FnMut(GraphSnapshot) -> anyhow::Result<()> + 'a;

/// Files read one after the other as one stream of requests (`-` is stdin).
#[derive(Debug)]
pub struct InputStream {
    paths: Vec<PathBuf>,
    format: InputFormat,
    next_file: usize,
    current: Option<Current>,
}

#[derive(Debug)]
struct Current {
    reader: Reader,
    path: PathBuf,
    line: u64,
    requests: u64,
}

/// The open file (a newtype so the stream can derive `Debug`).
struct Reader(Box<dyn BufRead>);

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl InputStream {
    pub fn new(paths: Vec<PathBuf>, format: InputFormat) -> Self {
        Self {
            paths,
            format,
            next_file: 0,
            current: None,
        }
    }

    /// Reads the next record into `buf`; `false` after the last file. A file without any
    /// request is an error, as for `meshwatch snapshot`.
    fn next(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.paths.get(self.next_file) else {
                    return Ok(false);
                };
                self.next_file += 1;
                self.current = Some(Current {
                    reader: Reader(open(path)?),
                    path: path.clone(),
                    line: 0,
                    requests: 0,
                });
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            let more = next_record(cur.reader.0.as_mut(), self.format, buf, &mut cur.line)
                .with_context(|| cur.path.display().to_string())?;
            if more {
                cur.requests += 1;
                return Ok(true);
            }
            if cur.requests == 0 {
                bail!("{} holds no requests", cur.path.display());
            }
            self.current = None;
        }
    }

    /// `PATH: line N` (or `record N`) of the record last read.
    fn position(&self) -> String {
        let label = self.format.record_label();
        match &self.current {
            Some(c) => format!("{}: {label} {}", c.path.display(), c.line),
            None => label.to_owned(),
        }
    }
}

/// A trace request read ahead, with the newest span end time in it (ms).
#[derive(Debug)]
struct PendingTraces {
    record: Vec<u8>,
    newest_ms: i64,
    position: String,
}

/// A metrics request read ahead, with its newest sample time (ms).
#[derive(Debug)]
struct PendingMetrics {
    request: ExportMetricsServiceRequest,
    newest_ms: i64,
    position: String,
}

/// One aggregator fed with OTLP requests as one stream.
#[derive(Debug)]
pub struct OfflineGraph {
    aggregator: Aggregator,
    keys: ResourceKeys,
    spare: DecodedTraces<'static>,
    closed: Vec<GraphSnapshot>,
    totals: FeedTotals,
}

impl OfflineGraph {
    /// `producer` names the snapshots' producer.
    pub fn new(cfg: AggregatorConfig, producer: &str) -> anyhow::Result<Self> {
        let keys = ResourceKeys {
            graph_keys: cfg.graph_keys.clone(),
            service_keys: cfg.service_keys.clone(),
        };
        let aggregator = Aggregator::new(cfg, producer).map_err(anyhow::Error::msg)?;
        Ok(Self {
            aggregator,
            keys,
            spare: DecodedTraces::default(),
            closed: Vec::new(),
            totals: FeedTotals::default(),
        })
    }

    pub fn totals(&self) -> FeedTotals {
        self.totals
    }

    /// Reads every trace request of `reader` (an input opened with [`open`]), handing each
    /// snapshot that closes to `sink`. Stops at the first record that cannot be read
    /// (`line N: ...`/`record N: ...`); invalid spans do not stop it (one line per request on
    /// stderr). Returns the number of requests read from this input.
    pub fn feed(
        &mut self,
        reader: &mut dyn BufRead,
        format: InputFormat,
        sink: &mut Sink<'_>,
    ) -> anyhow::Result<u64> {
        let mut record = Vec::new();
        let mut line = 0u64;
        let mut requests = 0u64;
        let label = format.record_label();
        while next_record(reader, format, &mut record, &mut line)? {
            requests += 1;
            self.traces(&record, format, &format!("{label} {line}"))?;
            self.drain(sink)?;
        }
        Ok(requests)
    }

    /// Reads a trace stream and, if given, a metrics stream, merged by time: the next request
    /// of each is read ahead, and the one whose newest event time is older is aggregated first
    /// (traces first on a tie). Errors name the file and the record.
    pub fn feed_streams(
        &mut self,
        traces: &mut InputStream,
        mut metrics: Option<&mut InputStream>,
        sink: &mut Sink<'_>,
    ) -> anyhow::Result<()> {
        let mut record = Vec::new();
        let mut pending_traces: Option<PendingTraces> = None;
        let mut pending_metrics: Option<PendingMetrics> = None;
        loop {
            if pending_metrics.is_none()
                && let Some(m) = metrics.as_deref_mut()
            {
                if m.next(&mut record)? {
                    pending_metrics = Some(self.read_metrics(&record, m)?);
                } else {
                    metrics = None;
                }
            }
            let Some(m) = pending_metrics.take() else {
                // No metrics (left): the traces go straight in, decoded once.
                if let Some(t) = pending_traces.take() {
                    self.traces(&t.record, traces.format, &t.position)?;
                    self.drain(sink)?;
                }
                while traces.next(&mut record)? {
                    self.traces(&record, traces.format, &traces.position())?;
                    self.drain(sink)?;
                }
                return Ok(());
            };
            if pending_traces.is_none() && traces.next(&mut record)? {
                let newest_ms = self.newest_span_ms(&record, traces.format, traces)?;
                pending_traces = Some(PendingTraces {
                    record: std::mem::take(&mut record),
                    newest_ms,
                    position: traces.position(),
                });
            }
            match pending_traces.take() {
                Some(t) if t.newest_ms <= m.newest_ms => {
                    self.traces(&t.record, traces.format, &t.position)?;
                    record = t.record;
                    pending_metrics = Some(m);
                }
                other => {
                    pending_traces = other;
                    self.metrics(&m.request, &m.position);
                }
            }
            self.drain(sink)?;
        }
    }

    /// Decodes and aggregates one trace request; `position` names it in messages.
    fn traces(&mut self, record: &[u8], format: InputFormat, position: &str) -> anyhow::Result<()> {
        self.totals.requests += 1;
        let mut decoded = std::mem::take(&mut self.spare).recycle();
        match format {
            InputFormat::OtlpJson => {
                let request = decode_json(record).with_context(|| position.to_owned())?;
                views_from_owned(&request, &self.keys, &mut decoded);
                self.ingest(&decoded, position);
                self.spare = decoded.recycle();
            }
            InputFormat::OtlpProto => {
                decode_traces(record, &self.keys, &mut decoded)
                    .with_context(|| format!("{position}: invalid OTLP protobuf trace request"))?;
                self.ingest(&decoded, position);
                self.spare = decoded.recycle();
            }
            InputFormat::Zipkin => {
                let request = zipkin::decode_to_otlp(record, &self.keys)
                    .with_context(|| position.to_owned())?;
                views_from_owned(&request, &self.keys, &mut decoded);
                self.ingest(&decoded, position);
                self.spare = decoded.recycle();
            }
        }
        Ok(())
    }

    fn ingest(&mut self, decoded: &DecodedTraces<'_>, position: &str) {
        let report = self.aggregator.ingest(decoded, None, &mut self.closed);
        if report.rejected() > 0 {
            eprintln!("meshwatch: {position}: {}", report.message());
        }
        self.totals.spans_accepted += report.accepted;
        self.totals.spans_late += report.late;
        self.totals.spans_rejected += report.rejected();
    }

    /// The newest span end time of a trace request, ms (`i64::MIN` without spans).
    fn newest_span_ms(
        &mut self,
        record: &[u8],
        format: InputFormat,
        stream: &InputStream,
    ) -> anyhow::Result<i64> {
        let mut decoded = std::mem::take(&mut self.spare).recycle();
        let newest = |d: &DecodedTraces<'_>| {
            d.spans
                .iter()
                .map(|s| s.end_time_unix_nano / 1_000_000)
                .max()
                .map_or(i64::MIN, |ms| i64::try_from(ms).unwrap_or(i64::MAX))
        };
        let ms = match format {
            InputFormat::OtlpJson => {
                let request = decode_json(record).with_context(|| stream.position())?;
                views_from_owned(&request, &self.keys, &mut decoded);
                let ms = newest(&decoded);
                self.spare = decoded.recycle();
                ms
            }
            InputFormat::OtlpProto => {
                decode_traces(record, &self.keys, &mut decoded).with_context(|| {
                    format!("{}: invalid OTLP protobuf trace request", stream.position())
                })?;
                let ms = newest(&decoded);
                self.spare = decoded.recycle();
                ms
            }
            InputFormat::Zipkin => {
                let request = zipkin::decode_to_otlp(record, &self.keys)
                    .with_context(|| stream.position())?;
                views_from_owned(&request, &self.keys, &mut decoded);
                let ms = newest(&decoded);
                self.spare = decoded.recycle();
                ms
            }
        };
        Ok(ms)
    }

    /// Decodes a metrics request and finds its newest sample time.
    fn read_metrics(&self, record: &[u8], stream: &InputStream) -> anyhow::Result<PendingMetrics> {
        let request = match stream.format {
            InputFormat::OtlpJson => {
                metrics::decode_json(record).with_context(|| stream.position())?
            }
            InputFormat::OtlpProto => metrics::decode_protobuf(record).with_context(|| {
                format!(
                    "{}: invalid OTLP protobuf metrics request",
                    stream.position()
                )
            })?,
            InputFormat::Zipkin => {
                bail!(
                    "{}: Zipkin holds traces only, not metrics",
                    stream.position()
                )
            }
        };
        let mut decoded = DecodedMetrics::default();
        metrics::extract(&request, &self.keys, &mut decoded);
        let newest_ms = decoded
            .samples
            .iter()
            .map(|s| s.time_unix_nano / 1_000_000)
            .max()
            .map_or(i64::MIN, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
        drop(decoded);
        Ok(PendingMetrics {
            request,
            newest_ms,
            position: stream.position(),
        })
    }

    fn metrics(&mut self, request: &ExportMetricsServiceRequest, position: &str) {
        self.totals.metrics_requests += 1;
        let mut decoded = DecodedMetrics::default();
        metrics::extract(request, &self.keys, &mut decoded);
        let report = self
            .aggregator
            .ingest_metrics(&decoded, None, &mut self.closed);
        if report.rejected() > 0 {
            eprintln!("meshwatch: {position}: {}", report.message());
        }
        self.totals.points_accepted += report.accepted;
        self.totals.points_late += report.late;
        self.totals.points_rejected += report.rejected();
        self.totals.points_ignored += report.ignored;
    }

    /// Closes every window still open (the end of the input) and hands the snapshots to `sink`.
    pub fn finish(&mut self, sink: &mut Sink<'_>) -> anyhow::Result<FeedTotals> {
        self.aggregator.flush_all(&mut self.closed);
        self.drain(sink)?;
        Ok(self.totals)
    }

    fn drain(&mut self, sink: &mut Sink<'_>) -> anyhow::Result<()> {
        for snapshot in self.closed.drain(..) {
            sink(snapshot)?;
        }
        Ok(())
    }
}
