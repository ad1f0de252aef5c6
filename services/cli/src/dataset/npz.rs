//! `.npz` writing: a zip archive of `.npy` arrays, what `numpy.load` reads without pickle.
//!
//! Written here rather than with a zip crate: the format needed is small and fixed — NPY
//! format 1.0 (magic, version, a little-endian u16 header length, a Python-literal header dict
//! `{'descr', 'fortran_order', 'shape'}` padded with spaces to a multiple of 64 bytes) and zip
//! entries with local headers, a central directory and its end record, deflated with `flate2`
//! (already a dependency) or stored when deflate does not help. No zip64: an entry or archive
//! past 4 GiB is refused with a hint to make shards smaller. Entry times are fixed
//! (1980-01-01), so the same arrays give the same bytes.

use std::io::Write;

use anyhow::{Context, bail, ensure};
use flate2::Crc;
use flate2::write::DeflateEncoder;

/// An element type of an NPY array.
pub trait Element: Copy {
    /// The NPY `descr`.
    const DESCR: &'static str;
    fn extend_le(values: &[Self], out: &mut Vec<u8>);
}

impl Element for f32 {
    const DESCR: &'static str = "<f4";
    fn extend_le(values: &[Self], out: &mut Vec<u8>) {
        out.reserve(values.len() * 4);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

impl Element for i64 {
    const DESCR: &'static str = "<i8";
    fn extend_le(values: &[Self], out: &mut Vec<u8>) {
        out.reserve(values.len() * 8);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

impl Element for u8 {
    const DESCR: &'static str = "|u1";
    fn extend_le(values: &[Self], out: &mut Vec<u8>) {
        out.extend_from_slice(values);
    }
}

/// The NPY 1.0 preamble and header of an array.
pub fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [] => "()".to_owned(),
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + length (2) + dict + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // The dict of a shape of at most a few dimensions is far below 64 KiB.
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// One zip entry already written.
#[derive(Debug)]
struct Entry {
    name: String,
    method: u16,
    crc: u32,
    compressed: u32,
    size: u32,
    offset: u32,
}

/// Writes an `.npz` archive entry by entry; [`NpzWriter::finish`] writes the directory.
#[derive(Debug)]
pub struct NpzWriter<W: Write> {
    out: W,
    offset: u64,
    entries: Vec<Entry>,
    scratch: Vec<u8>,
}

/// DOS date of 1980-01-01 (time 00:00).
const DOS_DATE: u16 = (1 << 5) | 1;
const TOO_LARGE: &str = "npz entry larger than 4 GiB (no zip64): lower --shard-steps";

impl<W: Write> NpzWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            offset: 0,
            entries: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Adds array `name` (stored as `name.npy`) of `shape`, row-major.
    pub fn array<T: Element>(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[T],
    ) -> anyhow::Result<()> {
        ensure!(
            element_count(shape) == Some(data.len()),
            "array {name}: {} values do not fill shape {shape:?}",
            data.len()
        );
        let mut npy = std::mem::take(&mut self.scratch);
        npy.clear();
        npy.extend_from_slice(&npy_header(T::DESCR, shape));
        T::extend_le(data, &mut npy);
        let result = self.entry(name, &npy);
        self.scratch = npy;
        result
    }

    /// Adds a string array (`<U` of the longest string's length, UTF-32 little-endian, padded
    /// with NULs: numpy gives back `str`s).
    pub fn strings<S: AsRef<str>>(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[S],
    ) -> anyhow::Result<()> {
        ensure!(
            element_count(shape) == Some(data.len()),
            "array {name}: {} strings do not fill shape {shape:?}",
            data.len()
        );
        let width = data
            .iter()
            .map(|s| s.as_ref().chars().count())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut npy = std::mem::take(&mut self.scratch);
        npy.clear();
        npy.extend_from_slice(&npy_header(&format!("<U{width}"), shape));
        for s in data {
            let mut n = 0;
            for c in s.as_ref().chars() {
                npy.extend_from_slice(&u32::from(c).to_le_bytes());
                n += 1;
            }
            npy.resize(npy.len() + 4 * (width - n), 0);
        }
        let result = self.entry(name, &npy);
        self.scratch = npy;
        result
    }

    fn entry(&mut self, name: &str, npy: &[u8]) -> anyhow::Result<()> {
        ensure!(self.entries.len() < 0xFFFF, "too many npz entries");
        let name = format!("{name}.npy");
        let mut crc = Crc::new();
        crc.update(npy);
        let mut deflated = DeflateEncoder::new(
            Vec::with_capacity(npy.len() / 4),
            flate2::Compression::fast(),
        );
        deflated.write_all(npy).context("cannot compress")?;
        let deflated = deflated.finish().context("cannot compress")?;
        let (method, body) = if deflated.len() < npy.len() {
            (8u16, &deflated[..])
        } else {
            (0u16, npy)
        };
        let size = u32::try_from(npy.len())
            .ok()
            .filter(|s| *s < u32::MAX)
            .context(TOO_LARGE)?;
        let compressed = u32::try_from(body.len()).context(TOO_LARGE)?;
        let offset = u32::try_from(self.offset)
            .ok()
            .filter(|o| *o < u32::MAX)
            .context(TOO_LARGE)?;
        let mut header = Vec::with_capacity(30 + name.len());
        header.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
        header.extend_from_slice(&0u16.to_le_bytes()); // flags
        header.extend_from_slice(&method.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // time
        header.extend_from_slice(&DOS_DATE.to_le_bytes());
        header.extend_from_slice(&crc.sum().to_le_bytes());
        header.extend_from_slice(&compressed.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // extra length
        header.extend_from_slice(name.as_bytes());
        self.out.write_all(&header).context("cannot write npz")?;
        self.out.write_all(body).context("cannot write npz")?;
        self.offset += (header.len() + body.len()) as u64;
        self.entries.push(Entry {
            name,
            method,
            crc: crc.sum(),
            compressed,
            size,
            offset,
        });
        Ok(())
    }

    /// Writes the central directory and returns the output.
    pub fn finish(mut self) -> anyhow::Result<W> {
        let start = self.offset;
        let mut dir = Vec::new();
        for e in &self.entries {
            dir.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            dir.extend_from_slice(&20u16.to_le_bytes()); // version made by
            dir.extend_from_slice(&20u16.to_le_bytes()); // version needed
            dir.extend_from_slice(&0u16.to_le_bytes()); // flags
            dir.extend_from_slice(&e.method.to_le_bytes());
            dir.extend_from_slice(&0u16.to_le_bytes()); // time
            dir.extend_from_slice(&DOS_DATE.to_le_bytes());
            dir.extend_from_slice(&e.crc.to_le_bytes());
            dir.extend_from_slice(&e.compressed.to_le_bytes());
            dir.extend_from_slice(&e.size.to_le_bytes());
            dir.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            dir.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
            dir.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            dir.extend_from_slice(&e.offset.to_le_bytes());
            dir.extend_from_slice(e.name.as_bytes());
        }
        let (Ok(dir_offset), Ok(dir_len)) = (u32::try_from(start), u32::try_from(dir.len())) else {
            bail!(TOO_LARGE);
        };
        if dir_offset == u32::MAX {
            bail!(TOO_LARGE);
        }
        let count = self.entries.len() as u16;
        dir.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        dir.extend_from_slice(&[0; 4]); // this disk, disk of the directory
        dir.extend_from_slice(&count.to_le_bytes());
        dir.extend_from_slice(&count.to_le_bytes());
        dir.extend_from_slice(&dir_len.to_le_bytes());
        dir.extend_from_slice(&dir_offset.to_le_bytes());
        dir.extend_from_slice(&0u16.to_le_bytes()); // comment length
        self.out.write_all(&dir).context("cannot write npz")?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_are_padded_python_literals() {
        let h = npy_header("<f4", &[2, 3]);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(h.len() % 64, 0);
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(len + 10, h.len());
        let text = std::str::from_utf8(&h[10..]).expect("ascii");
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(text.ends_with(" \n"));
        let one = String::from_utf8(npy_header("<i8", &[5])[10..].to_vec()).expect("ascii");
        assert!(one.contains("'shape': (5,)"), "{one}");
        let scalar = String::from_utf8(npy_header("|u1", &[])[10..].to_vec()).expect("ascii");
        assert!(scalar.contains("'shape': ()"), "{scalar}");
    }

    #[test]
    fn archive_layout() {
        let mut w = NpzWriter::new(Vec::new());
        w.array("a", &[2, 2], &[1.0f32, 2.0, 3.0, 4.0]).expect("ok");
        w.array("zeros", &[1000], &[0i64; 1000]).expect("ok");
        w.strings("names", &[2], &["ab", "ü"]).expect("ok");
        assert!(w.array("bad", &[3], &[1u8]).is_err());
        let bytes = w.finish().expect("ok");
        // End record: 3 entries, the directory right before it.
        let end = &bytes[bytes.len() - 22..];
        assert_eq!(&end[..4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 3);
        let dir_len = u32::from_le_bytes([end[12], end[13], end[14], end[15]]) as usize;
        let dir_offset = u32::from_le_bytes([end[16], end[17], end[18], end[19]]) as usize;
        assert_eq!(dir_offset + dir_len + 22, bytes.len());
        // The file starts with the first entry's local header and name; the zeros deflate.
        assert_eq!(&bytes[..4], &0x0403_4b50u32.to_le_bytes());
        assert_eq!(&bytes[30..35], b"a.npy");
        let dir = &bytes[dir_offset..dir_offset + dir_len];
        let method_of_second = {
            let first_len = 46 + u16::from_le_bytes([dir[28], dir[29]]) as usize;
            u16::from_le_bytes([dir[first_len + 10], dir[first_len + 11]])
        };
        assert_eq!(method_of_second, 8, "1000 zeros deflate");
    }
}
