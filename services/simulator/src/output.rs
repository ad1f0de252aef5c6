//! Files out: `traces.otlp.jsonl` (or `traces.otlp.pb`), `metrics.otlp.jsonl` (or `.pb`) and
//! `labels.jsonl` in one folder. JSON: one OTLP/JSON request per line; protobuf: requests each
//! preceded by its length as a varint, the format `meshwatch snapshot --format otlp-proto`
//! reads. Labels: `meshwatch_graph::labels` JSON lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use meshwatch_graph::labels::{FaultLabel, write_labels};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::engine::Batch;
use crate::error::SimError;

/// Encoding of the OTLP files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// OTLP/JSON, one request per line (`*.otlp.jsonl`).
    OtlpJson,
    /// Length-delimited protobuf requests (`*.otlp.pb`).
    OtlpProto,
}

impl FileFormat {
    fn extension(self) -> &'static str {
        match self {
            Self::OtlpJson => "otlp.jsonl",
            Self::OtlpProto => "otlp.pb",
        }
    }
}

/// The three output files of a run.
#[derive(Debug)]
pub struct FileSink {
    format: FileFormat,
    traces: (PathBuf, BufWriter<File>),
    metrics: (PathBuf, BufWriter<File>),
    labels: (PathBuf, BufWriter<File>),
}

fn create(path: PathBuf) -> Result<(PathBuf, BufWriter<File>), SimError> {
    let file = File::create(&path).map_err(|source| SimError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok((path, BufWriter::with_capacity(1 << 20, file)))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
    move |source| SimError::Write {
        path: path.display().to_string(),
        source,
    }
}

impl FileSink {
    /// Creates (or truncates) the files in `dir`, creating the folder if needed.
    pub fn create(dir: &Path, format: FileFormat) -> Result<Self, SimError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(Self {
            format,
            traces: create(dir.join(format!("traces.{}", format.extension())))?,
            metrics: create(dir.join(format!("metrics.{}", format.extension())))?,
            labels: create(dir.join("labels.jsonl"))?,
        })
    }

    pub fn traces_path(&self) -> &Path {
        &self.traces.0
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &Batch) -> Result<(), SimError> {
        for request in &batch.traces {
            write_one(self.format, &mut self.traces, request)?;
        }
        for request in &batch.metrics {
            write_one(self.format, &mut self.metrics, request)?;
        }
        self.write_labels(&batch.labels)
    }

    fn write_labels(&mut self, labels: &[FaultLabel]) -> Result<(), SimError> {
        let (path, w) = &mut self.labels;
        write_labels(w, labels).map_err(|e| SimError::Write {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Flushes every file.
    pub fn finish(mut self) -> Result<(), SimError> {
        for (path, w) in [&mut self.traces, &mut self.metrics, &mut self.labels] {
            w.flush().map_err(io(path))?;
        }
        Ok(())
    }
}

fn write_one<M: Message + Serialize>(
    format: FileFormat,
    (path, w): &mut (PathBuf, BufWriter<File>),
    request: &M,
) -> Result<(), SimError> {
    match format {
        FileFormat::OtlpJson => {
            serde_json::to_writer(&mut *w, request)
                .map_err(|e| io(path)(std::io::Error::other(e)))?;
            w.write_all(b"\n").map_err(io(path))
        }
        FileFormat::OtlpProto => {
            let bytes = request.encode_length_delimited_to_vec();
            w.write_all(&bytes).map_err(io(path))
        }
    }
}
