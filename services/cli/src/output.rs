//! Writing OTLP files, the counterpart of [`crate::input`]: one request per line in OTLP/JSON, or
//! a stream of varint-length-delimited protobuf requests, optionally gzip-compressed. What
//! `meshwatch snapshot`, `dataset build` and `replay` read back.

mod json;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

pub use json::{metrics_json, traces_json};

/// Format of an OTLP file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// OTLP/JSON, one request per line (lowerCamelCase, hex ids, defaults omitted).
    OtlpJson,
    /// Protobuf requests, each preceded by its length as a varint.
    OtlpProto,
}

impl OutputFormat {
    /// File name extension: `otlp.jsonl` or `otlp.pb`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::OtlpJson => "otlp.jsonl",
            Self::OtlpProto => "otlp.pb",
        }
    }

    /// The same format as read by [`crate::input`].
    pub fn input_format(self) -> crate::input::InputFormat {
        match self {
            Self::OtlpJson => crate::input::InputFormat::OtlpJson,
            Self::OtlpProto => crate::input::InputFormat::OtlpProto,
        }
    }
}

enum Sink {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Plain(w) => w,
            Self::Gzip(w) => w,
        }
    }
}

/// One OTLP file being written. [`OtlpWriter::finish`] must be called: it flushes (and ends
/// the gzip stream).
pub struct OtlpWriter {
    path: PathBuf,
    format: OutputFormat,
    sink: Sink,
    buf: Vec<u8>,
    records: u64,
    bytes: u64,
}

impl std::fmt::Debug for OtlpWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpWriter")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

/// What a finished writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    /// Requests written.
    pub records: u64,
    /// Bytes before compression.
    pub bytes: u64,
}

impl OtlpWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, format: OutputFormat, gzip: bool) -> anyhow::Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let inner = BufWriter::with_capacity(1 << 20, file);
        let sink = if gzip {
            Sink::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            ))
        } else {
            Sink::Plain(inner)
        };
        Ok(Self {
            path: path.to_owned(),
            format,
            sink,
            buf: Vec::new(),
            records: 0,
            bytes: 0,
        })
    }

    /// Requests written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends one trace request.
    pub fn write_traces(&mut self, request: &ExportTraceServiceRequest) -> anyhow::Result<()> {
        self.buf.clear();
        match self.format {
            OutputFormat::OtlpJson => {
                serde_json::to_writer(&mut self.buf, &traces_json(request))
                    .context("cannot encode OTLP/JSON")?;
                self.buf.push(b'\n');
            }
            OutputFormat::OtlpProto => request
                .encode_length_delimited(&mut self.buf)
                .context("cannot encode protobuf")?,
        }
        self.flush_record()
    }

    /// Appends one metrics request.
    pub fn write_metrics(&mut self, request: &ExportMetricsServiceRequest) -> anyhow::Result<()> {
        self.buf.clear();
        match self.format {
            OutputFormat::OtlpJson => {
                serde_json::to_writer(&mut self.buf, &metrics_json(request)?)
                    .context("cannot encode OTLP/JSON")?;
                self.buf.push(b'\n');
            }
            OutputFormat::OtlpProto => request
                .encode_length_delimited(&mut self.buf)
                .context("cannot encode protobuf")?,
        }
        self.flush_record()
    }

    fn flush_record(&mut self) -> anyhow::Result<()> {
        self.sink
            .writer()
            .write_all(&self.buf)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.records += 1;
        self.bytes += self.buf.len() as u64;
        Ok(())
    }

    /// Flushes and closes the file.
    pub fn finish(self) -> anyhow::Result<Written> {
        let context = || format!("cannot write {}", self.path.display());
        match self.sink {
            Sink::Plain(mut w) => w.flush().with_context(context)?,
            Sink::Gzip(w) => w
                .finish()
                .and_then(|mut inner| inner.flush())
                .with_context(context)?,
        }
        Ok(Written {
            path: self.path,
            records: self.records,
            bytes: self.bytes,
        })
    }
}
