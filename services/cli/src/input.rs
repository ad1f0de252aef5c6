//! Reading OTLP trace files: JSON lines (one `ExportTraceServiceRequest` per line) or a stream
//! of varint-length-delimited protobuf requests, either possibly gzip-compressed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, bail};
use clap::ValueEnum;

/// Format of an OTLP trace file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// OTLP/JSON, one `ExportTraceServiceRequest` object per line.
    OtlpJson,
    /// Protobuf `ExportTraceServiceRequest`s, each preceded by its length as a varint.
    OtlpProto,
}

/// Largest single request accepted from a file (same order as the ingest's limit).
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Opens `path` (`-` for stdin), transparently gunzipping when it starts with the gzip magic.
pub fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    let mut reader = BufReader::with_capacity(1 << 20, raw);
    let head = reader.fill_buf().context("cannot read input")?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::read::MultiGzDecoder::new(reader);
        Ok(Box::new(BufReader::with_capacity(1 << 20, gz)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Reads the next record into `buf`: one JSON line, or one length-delimited protobuf message.
/// Returns `false` at the end of the input. Empty JSON lines are skipped.
pub fn next_record(
    reader: &mut dyn BufRead,
    format: InputFormat,
    buf: &mut Vec<u8>,
    line: &mut u64,
) -> anyhow::Result<bool> {
    buf.clear();
    match format {
        InputFormat::OtlpJson => loop {
            let n = reader
                .take(MAX_RECORD_BYTES as u64 + 1)
                .read_until(b'\n', buf)
                .context("cannot read input")?;
            if n == 0 {
                return Ok(false);
            }
            *line += 1;
            if buf.len() > MAX_RECORD_BYTES {
                bail!("line {line}: longer than {MAX_RECORD_BYTES} bytes");
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                buf.clear();
                continue;
            }
            return Ok(true);
        },
        InputFormat::OtlpProto => {
            let Some(len) = read_varint(reader)? else {
                return Ok(false);
            };
            *line += 1;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_RECORD_BYTES {
                bail!("record {line}: length {len} exceeds {MAX_RECORD_BYTES} bytes");
            }
            buf.resize(len, 0);
            reader
                .read_exact(buf)
                .with_context(|| format!("record {line}: truncated (expected {len} bytes)"))?;
            Ok(true)
        }
    }
}

/// A protobuf varint; `None` at a clean end of input.
fn read_varint(reader: &mut dyn BufRead) -> anyhow::Result<Option<u64>> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte).context("cannot read input")? {
            0 if i == 0 => return Ok(None),
            0 => bail!("truncated length prefix"),
            _ => {}
        }
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    bail!("length prefix longer than 10 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_delimited_records() {
        let mut data = Vec::new();
        for payload in [&b"abc"[..], &[7u8; 300][..]] {
            let mut len = payload.len() as u64;
            loop {
                let b = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    data.push(b);
                    break;
                }
                data.push(b | 0x80);
            }
            data.extend_from_slice(payload);
        }
        let mut reader: &[u8] = &data;
        let (mut buf, mut n) = (Vec::new(), 0);
        assert!(next_record(&mut reader, InputFormat::OtlpProto, &mut buf, &mut n).expect("ok"));
        assert_eq!(buf, b"abc");
        assert!(next_record(&mut reader, InputFormat::OtlpProto, &mut buf, &mut n).expect("ok"));
        assert_eq!(buf.len(), 300);
        assert!(!next_record(&mut reader, InputFormat::OtlpProto, &mut buf, &mut n).expect("ok"));
    }

    #[test]
    fn truncated_record_is_an_error() {
        let data = [5u8, 1, 2];
        let mut reader: &[u8] = &data;
        let (mut buf, mut n) = (Vec::new(), 0);
        let err = next_record(&mut reader, InputFormat::OtlpProto, &mut buf, &mut n)
            .expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn json_lines_skip_blank_lines() {
        let data = b"{\"a\":1}\n\n  \n{\"b\":2}";
        let mut reader: &[u8] = data;
        let (mut buf, mut n) = (Vec::new(), 0);
        assert!(next_record(&mut reader, InputFormat::OtlpJson, &mut buf, &mut n).expect("ok"));
        assert_eq!(buf, b"{\"a\":1}\n");
        assert!(next_record(&mut reader, InputFormat::OtlpJson, &mut buf, &mut n).expect("ok"));
        assert_eq!(buf, b"{\"b\":2}");
        assert_eq!(n, 4);
        assert!(!next_record(&mut reader, InputFormat::OtlpJson, &mut buf, &mut n).expect("ok"));
    }
}
