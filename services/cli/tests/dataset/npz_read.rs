//! A minimal `.npz` reader for the tests, written from the zip and NPY specifications (not from
//! the writer): the central directory, stored or deflated entries, NPY 1.0 headers.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail, ensure};

/// One array: its dtype descr, shape and raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct Array {
    pub descr: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Array {
    pub fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.descr, "<f4");
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    pub fn i64s(&self) -> Vec<i64> {
        assert_eq!(self.descr, "<i8");
        self.bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    }

    pub fn u8s(&self) -> Vec<u8> {
        assert_eq!(self.descr, "|u1");
        self.bytes.clone()
    }

    pub fn strings(&self) -> Vec<String> {
        let width: usize = self
            .descr
            .strip_prefix("<U")
            .and_then(|w| w.parse().ok())
            .expect("a <U dtype");
        self.bytes
            .chunks_exact(4 * width)
            .map(|c| {
                c.chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .take_while(|&u| u != 0)
                    .map(|u| char::from_u32(u).expect("a char"))
                    .collect()
            })
            .collect()
    }
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Every array of an `.npz` file, by name (without `.npy`).
pub fn read(bytes: &[u8]) -> anyhow::Result<BTreeMap<String, Array>> {
    ensure!(bytes.len() >= 22, "too short for a zip");
    let end = bytes.len() - 22;
    ensure!(u32_at(bytes, end) == 0x0605_4b50, "no end record");
    let (count, dir_offset) = (u16_at(bytes, end + 10), u32_at(bytes, end + 16));
    let mut out = BTreeMap::new();
    let mut at = dir_offset;
    for _ in 0..count {
        ensure!(u32_at(bytes, at) == 0x0201_4b50, "bad directory entry");
        let method = u16_at(bytes, at + 10);
        let crc = u32_at(bytes, at + 16) as u32;
        let compressed = u32_at(bytes, at + 20);
        let size = u32_at(bytes, at + 24);
        let name_len = u16_at(bytes, at + 28);
        let extra_len = u16_at(bytes, at + 30);
        let comment_len = u16_at(bytes, at + 32);
        let local = u32_at(bytes, at + 42);
        let name = std::str::from_utf8(&bytes[at + 46..at + 46 + name_len])?.to_owned();
        at += 46 + name_len + extra_len + comment_len;
        ensure!(u32_at(bytes, local) == 0x0403_4b50, "bad local header");
        let data_at = local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28);
        let body = &bytes[data_at..data_at + compressed];
        let npy = match method {
            0 => body.to_vec(),
            8 => {
                let mut v = Vec::with_capacity(size);
                flate2::read::DeflateDecoder::new(body).read_to_end(&mut v)?;
                v
            }
            m => bail!("{name}: compression method {m}"),
        };
        ensure!(npy.len() == size, "{name}: size");
        let mut c = flate2::Crc::new();
        c.update(&npy);
        ensure!(c.sum() == crc, "{name}: crc");
        let array = parse_npy(&npy).with_context(|| name.clone())?;
        let key = name.strip_suffix(".npy").context("not .npy")?.to_owned();
        out.insert(key, array);
    }
    Ok(out)
}

fn parse_npy(npy: &[u8]) -> anyhow::Result<Array> {
    ensure!(npy.starts_with(b"\x93NUMPY\x01\x00"), "not NPY 1.0");
    let len = u16_at(npy, 8);
    ensure!((10 + len).is_multiple_of(64), "header not aligned to 64");
    let header = std::str::from_utf8(&npy[10..10 + len])?;
    ensure!(header.ends_with('\n'), "header must end with a newline");
    ensure!(header.contains("'fortran_order': False"), "C order");
    let descr = header
        .split("'descr': '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .context("no descr")?
        .to_owned();
    let dims = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .context("no shape")?;
    let shape: Vec<usize> = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let item = match descr.as_str() {
        "<f4" => 4,
        "<i8" => 8,
        "|u1" => 1,
        d if d.starts_with("<U") => 4 * d[2..].parse::<usize>()?,
        d => bail!("dtype {d}"),
    };
    let bytes = npy[10 + len..].to_vec();
    ensure!(
        bytes.len() == item * shape.iter().product::<usize>(),
        "data size does not match the shape"
    );
    Ok(Array {
        descr,
        shape,
        bytes,
    })
}
