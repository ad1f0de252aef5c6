//! Bounded decompression of request bodies: a gzip or zstd bomb stops at the configured size.

use std::io::Read;

use crate::error::RequestError;

/// Content encodings the receivers accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// Parses a `Content-Encoding` header value (absent means identity).
    pub fn parse(header: Option<&str>) -> Result<Self, RequestError> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "identity") => Ok(Self::Identity),
            Some("gzip" | "x-gzip") => Ok(Self::Gzip),
            Some("zstd") => Ok(Self::Zstd),
            Some(other) => Err(RequestError::UnsupportedEncoding(other.to_owned())),
        }
    }
}

/// Decompresses `body` into at most `limit` bytes.
pub fn decompress(
    body: bytes::Bytes,
    encoding: Encoding,
    limit: usize,
) -> Result<bytes::Bytes, RequestError> {
    let (reader, name): (Box<dyn Read + '_>, &'static str) = match encoding {
        Encoding::Identity => return Ok(body),
        Encoding::Gzip => (
            Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
            "gzip",
        ),
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&body[..]).map_err(|e| {
                RequestError::BadCompression {
                    encoding: "zstd",
                    detail: e.to_string(),
                }
            })?;
            (Box::new(decoder), "zstd")
        }
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RequestError::BadCompression {
            encoding: name,
            detail: e.to_string(),
        })?;
    if read > limit {
        return Err(RequestError::DecompressedTooLarge { limit });
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("in memory");
        e.finish().expect("in memory").into()
    }

    #[test]
    fn round_trips_gzip_and_zstd() {
        let data = b"hello spans".repeat(100);
        let out = decompress(gzip(&data), Encoding::Gzip, 1 << 20).expect("valid gzip");
        assert_eq!(&out[..], &data[..]);
        let z = zstd::bulk::compress(&data, 3).expect("in memory");
        let out = decompress(z.into(), Encoding::Zstd, 1 << 20).expect("valid zstd");
        assert_eq!(&out[..], &data[..]);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100_000);
        let err = decompress(bomb, Encoding::Gzip, 1 << 20).expect_err("too large");
        assert!(matches!(err, RequestError::DecompressedTooLarge { limit } if limit == 1 << 20));
    }

    #[test]
    fn corrupt_bodies_and_unknown_encodings_are_clear_errors() {
        let err = decompress(bytes::Bytes::from_static(b"not gzip"), Encoding::Gzip, 1024)
            .expect_err("corrupt");
        assert!(matches!(
            err,
            RequestError::BadCompression {
                encoding: "gzip",
                ..
            }
        ));
        assert!(matches!(
            Encoding::parse(Some("br")),
            Err(RequestError::UnsupportedEncoding(e)) if e == "br"
        ));
        assert_eq!(
            Encoding::parse(Some(" GZIP ")).expect("gzip"),
            Encoding::Gzip
        );
    }
}
