//! A small streaming CSV reader (RFC 4180: quoted fields, `""` escapes, quoted line breaks,
//! `\r\n` or `\n`), over files that may be gzip-compressed: the Nezha files need no more.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Longest record accepted (a corrupt file must not grow a line without bound).
const MAX_RECORD_BYTES: usize = 1 << 20;

/// Reads records one at a time.
pub struct CsvReader {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    line: Vec<u8>,
    /// Records read so far (the header included).
    pub records: u64,
}

impl std::fmt::Debug for CsvReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvReader")
            .field("path", &self.path)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl CsvReader {
    /// Opens `path`, gunzipping when it starts with the gzip magic (whatever its name).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            reader: crate::input::open(path)?,
            line: Vec::new(),
            records: 0,
        })
    }

    /// For tests: records from memory.
    #[cfg(test)]
    pub fn from_bytes(data: &'static [u8]) -> Self {
        Self {
            path: PathBuf::from("memory"),
            reader: Box::new(data),
            line: Vec::new(),
            records: 0,
        }
    }

    /// Reads the next record into `fields` (cleared first); `false` at the end of the file.
    /// Blank lines are skipped.
    pub fn next_record(&mut self, fields: &mut Vec<String>) -> anyhow::Result<bool> {
        fields.clear();
        self.line.clear();
        loop {
            let n = Read::take(&mut self.reader, MAX_RECORD_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .with_context(|| format!("cannot read {}", self.path.display()))?;
            if n == 0 {
                if self.line.is_empty() {
                    return Ok(false);
                }
                bail!(
                    "{}: record {}: unterminated quoted field at the end of the file",
                    self.path.display(),
                    self.records + 1
                );
            }
            if self.line.len() > MAX_RECORD_BYTES {
                bail!(
                    "{}: record {}: longer than {MAX_RECORD_BYTES} bytes",
                    self.path.display(),
                    self.records + 1
                );
            }
            // A record ends at a line break outside quotes: an odd number of quotes so far
            // means the break is inside a quoted field.
            if self.line.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
                continue;
            }
            if self.line.iter().all(|b| b.is_ascii_whitespace()) {
                self.line.clear();
                continue;
            }
            break;
        }
        self.records += 1;
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        let text = std::str::from_utf8(&self.line).with_context(|| {
            format!(
                "{}: record {}: not UTF-8",
                self.path.display(),
                self.records
            )
        })?;
        split(text, fields);
        Ok(true)
    }
}

fn split(text: &str, fields: &mut Vec<String>) {
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escapes_and_line_breaks() {
        let mut r =
            CsvReader::from_bytes(b"a,b,c\r\n1,\"x,y\",\"say \"\"hi\"\"\"\n\n2,\"multi\nline\",\n");
        let mut f = Vec::new();
        assert!(r.next_record(&mut f).expect("ok"));
        assert_eq!(f, ["a", "b", "c"]);
        assert!(r.next_record(&mut f).expect("ok"));
        assert_eq!(f, ["1", "x,y", "say \"hi\""]);
        assert!(r.next_record(&mut f).expect("ok"));
        assert_eq!(f, ["2", "multi\nline", ""]);
        assert!(!r.next_record(&mut f).expect("ok"));
        assert_eq!(r.records, 3);
    }

    #[test]
    fn an_open_quote_at_the_end_is_an_error() {
        let mut r = CsvReader::from_bytes(b"a,\"b\n");
        let mut f = Vec::new();
        let err = r.next_record(&mut f).expect_err("unterminated");
        assert!(err.to_string().contains("unterminated"), "{err}");
    }
}
