//! Reading OTLP trace files: JSON lines (one `ExportTraceServiceRequest` per line) or a stream
//! of varint-length-delimited protobuf requests, either possibly gzip-compressed; and Zipkin v2
//! JSON span lists (one JSON array, or several one after another), converted to OTLP.

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
    /// Zipkin v2 JSON: a JSON array of spans (a `POST /api/v2/spans` body), or several arrays
    /// one after another; each array is one request (`meshwatch_graph::zipkin`).
    Zipkin,
}

impl InputFormat {
    /// The name on the command line (`otlp-json`, `otlp-proto`, `zipkin`).
    pub fn name(self) -> &'static str {
        match self {
            Self::OtlpJson => "otlp-json",
            Self::OtlpProto => "otlp-proto",
            Self::Zipkin => "zipkin",
        }
    }

    /// What one record is called in messages (`line 3`, `record 3`, `span list 3`).
    pub fn record_label(self) -> &'static str {
        match self {
            Self::OtlpJson => "line",
            Self::OtlpProto => "record",
            Self::Zipkin => "span list",
        }
    }
}

/// Decodes one record (from [`next_record`]) into an owned OTLP request: OTLP/JSON and Zipkin
/// through their decoders, protobuf with `prost`. `keys` are the graph keys (Zipkin tags of
/// those names become resource attributes). Errors name the record.
pub fn decode_request(
    format: InputFormat,
    record: &[u8],
    n: u64,
    keys: &meshwatch_graph::span::ResourceKeys,
) -> anyhow::Result<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest> {
    use prost::Message;
    let label = format.record_label();
    match format {
        InputFormat::OtlpJson => meshwatch_graph::otlp::owned::decode_json(record)
            .with_context(|| format!("{label} {n}")),
        InputFormat::OtlpProto => {
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                record,
            )
            .with_context(|| format!("{label} {n}: invalid OTLP protobuf trace request"))
        }
        InputFormat::Zipkin => meshwatch_graph::zipkin::decode_to_otlp(record, keys)
            .with_context(|| format!("{label} {n}")),
    }
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

/// Reads the next record into `buf`: one JSON line, one length-delimited protobuf message, or
/// one top-level JSON value (Zipkin). Returns `false` at the end of the input. Empty JSON lines
/// are skipped.
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
        InputFormat::Zipkin => {
            let found =
                next_json_value(reader, buf).with_context(|| format!("span list {}", *line + 1))?;
            if found {
                *line += 1;
            }
            Ok(found)
        }
    }
}

/// Reads one top-level JSON array or object (whitespace around it skipped, strings and their
/// escapes respected) into `buf`; `false` at a clean end of input. Only the framing is checked
/// here: the decoder judges the content.
fn next_json_value(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
    let (mut started, mut depth, mut in_string, mut escaped) = (false, 0usize, false, false);
    loop {
        let chunk = reader.fill_buf().context("cannot read input")?;
        if chunk.is_empty() {
            if started {
                bail!("truncated JSON (the input ends inside the value)");
            }
            return Ok(false);
        }
        let mut from = 0;
        let mut end = None;
        for (i, &b) in chunk.iter().enumerate() {
            if !started {
                if b.is_ascii_whitespace() {
                    from = i + 1;
                    continue;
                }
                if b != b'[' && b != b'{' {
                    bail!("expected a JSON array of spans, found {:?}", char::from(b));
                }
                started = true;
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        let upto = end.unwrap_or(chunk.len());
        buf.extend_from_slice(&chunk[from..upto]);
        reader.consume(upto);
        if buf.len() > MAX_RECORD_BYTES {
            bail!("longer than {MAX_RECORD_BYTES} bytes");
        }
        if end.is_some() {
            return Ok(true);
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
    fn zipkin_arrays_are_framed_by_their_brackets() {
        let data = b" [{\"name\":\"a]\\\"[\"},{}]\n\n[]\r\n[\n{\"x\":[1]}\n]";
        let mut reader: &[u8] = data;
        let (mut buf, mut n) = (Vec::new(), 0);
        assert!(next_record(&mut reader, InputFormat::Zipkin, &mut buf, &mut n).expect("ok"));
        assert_eq!(buf, br#"[{"name":"a]\"["},{}]"#);
        assert!(next_record(&mut reader, InputFormat::Zipkin, &mut buf, &mut n).expect("ok"));
        assert_eq!(buf, b"[]");
        assert!(next_record(&mut reader, InputFormat::Zipkin, &mut buf, &mut n).expect("ok"));
        assert_eq!(buf, b"[\n{\"x\":[1]}\n]");
        assert!(!next_record(&mut reader, InputFormat::Zipkin, &mut buf, &mut n).expect("ok"));
        assert_eq!(n, 3);
        for bad in [&b"[{}"[..], b"x", b"[] 5"] {
            let mut reader: &[u8] = bad;
            let last = loop {
                match next_record(&mut reader, InputFormat::Zipkin, &mut buf, &mut n) {
                    Ok(true) => {}
                    other => break other,
                }
            };
            assert!(last.is_err(), "{bad:?} must end in an error");
        }
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
