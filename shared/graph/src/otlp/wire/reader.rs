//! The byte-level cursor of the scanner: varints, keys, bounds-checked slices, and
//! `prost`-compatible handling of unknown fields and wrong wire types.
//!
//! Errors are boxed inside the scanner so that every `Result` on the hot path fits in two
//! registers; they are built in cold functions and unboxed once, at the public boundary.

use super::{WireError, WireType};

/// Result type of the scanner's internals.
pub(super) type Res<T> = Result<T, Box<WireError>>;

/// What the scanner knows of one message type: its path (for errors), the recursion budget
/// `prost` has left when it skips an unknown field of it, and its fields with their wire types.
#[derive(Debug)]
pub(super) struct Schema {
    pub(super) path: &'static str,
    pub(super) depth: u32,
    pub(super) fields: &'static [(u32, WireType)],
}

/// The key of field `tag` with wire type `wt`, as a varint value (for `match` arms).
pub(super) const fn key(tag: u32, wt: WireType) -> u64 {
    ((tag as u64) << 3)
        | match wt {
            WireType::Varint => 0,
            WireType::I64 => 1,
            WireType::Len => 2,
            WireType::StartGroup => 3,
            WireType::EndGroup => 4,
            WireType::I32 => 5,
        }
}

/// A cursor over one message's bytes. `base` is the offset of `buf` in the request, for errors.
///
/// Invariant: `pos <= buf.len()`, and `base + buf.len()` is at most the request's length, so the
/// offset arithmetic below cannot overflow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pos: usize,
    pub(super) base: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    pub(super) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    #[inline(always)]
    pub(super) fn has_more(&self) -> bool {
        self.pos < self.buf.len()
    }

    #[inline(always)]
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[inline(always)]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// A varint: one-byte fast path, then [`Self::varint_multi`].
    #[inline(always)]
    pub(super) fn varint(&mut self, s: &'static Schema) -> Res<u64> {
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_multi(s)
    }

    /// A varint of up to 10 bytes; the 10th may only carry bit 63 (as `prost` requires).
    #[inline]
    fn varint_multi(&mut self, s: &'static Schema) -> Res<u64> {
        let mut value = 0u64;
        let mut shift = 0u32;
        let mut at = self.pos;
        for _ in 0..10 {
            let Some(&b) = self.buf.get(at) else { break };
            at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                if shift == 63 && b > 1 {
                    break;
                }
                self.pos = at;
                return Ok(value);
            }
            shift += 7;
        }
        Err(invalid_varint(s, self.offset()))
    }

    /// A field key, as its varint value. Keys the caller does not match go to
    /// [`Self::other_field`], which validates them.
    #[inline(always)]
    pub(super) fn key(&mut self, s: &'static Schema) -> Res<u64> {
        self.varint(s)
    }

    /// Advances over `len` bytes, or fails without moving.
    #[inline(always)]
    fn take(&mut self, s: &'static Schema, field: u32, len: u64) -> Res<Reader<'a>> {
        let start = self.pos;
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => {
                let end = start + n;
                let sub = self.buf.get(start..end).unwrap_or_default();
                self.pos = end;
                Ok(Reader::new(sub, self.base + start))
            }
            _ => Err(truncated(s, field, self.offset(), len, self.remaining())),
        }
    }

    /// The content of a length-delimited field (its key already read).
    #[inline(always)]
    pub(super) fn len(&mut self, s: &'static Schema, field: u32) -> Res<Reader<'a>> {
        let len = self.varint(s)?;
        self.take(s, field, len)
    }

    /// A fixed64 value (its key already read).
    #[inline(always)]
    pub(super) fn fixed64(&mut self, s: &'static Schema, field: u32) -> Res<u64> {
        let bytes = self.take(s, field, 8)?.buf;
        let array: [u8; 8] = bytes
            .try_into()
            .map_err(|_| truncated(s, field, self.offset(), 8, 0))?;
        Ok(u64::from_le_bytes(array))
    }

    /// Skips a fixed32 value (its key already read).
    #[inline(always)]
    pub(super) fn skip_fixed32(&mut self, s: &'static Schema, field: u32) -> Res<()> {
        self.take(s, field, 4).map(drop)
    }

    /// Handles a key the caller's explicit arms did not match: an invalid key or a known field
    /// with the wrong wire type is an error (`prost` checks both); an unknown field, or a known
    /// one that is not read, is skipped.
    #[inline(never)]
    pub(super) fn other_field(&mut self, s: &'static Schema, key: u64) -> Res<()> {
        let at = self.offset();
        let (tag, wt) = split_key(s, key, at)?;
        if let Some(&(_, expected)) = s.fields.iter().find(|(t, _)| *t == tag)
            && expected != wt
        {
            return Err(Box::new(WireError::WrongWireType {
                path: s.path,
                field: tag,
                offset: at,
                actual: wt,
                expected,
            }));
        }
        self.skip_unknown(s, tag, wt, s.depth)
    }

    /// Skips an unknown field of any wire type, as `prost::encoding::skip_field` does: groups
    /// are walked to their matching end tag, one recursion level per nesting, and `depth` is
    /// the recursion budget left (0: limit reached).
    fn skip_unknown(
        &mut self,
        s: &'static Schema,
        field: u32,
        wt: WireType,
        depth: u32,
    ) -> Res<()> {
        if depth == 0 {
            return Err(Box::new(WireError::RecursionLimit {
                path: s.path,
                offset: self.offset(),
            }));
        }
        match wt {
            WireType::Varint => self.varint(s).map(drop),
            WireType::I64 => self.take(s, field, 8).map(drop),
            WireType::I32 => self.take(s, field, 4).map(drop),
            WireType::Len => self.len(s, field).map(drop),
            WireType::StartGroup => loop {
                let at = self.offset();
                let key = self.varint(s)?;
                let (tag, inner) = split_key(s, key, at)?;
                if inner == WireType::EndGroup {
                    if tag == field {
                        return Ok(());
                    }
                    return Err(Box::new(WireError::UnexpectedEndGroup {
                        path: s.path,
                        field: tag,
                        offset: at,
                    }));
                }
                self.skip_unknown(s, tag, inner, depth - 1)?;
            },
            WireType::EndGroup => Err(Box::new(WireError::UnexpectedEndGroup {
                path: s.path,
                field,
                offset: self.offset(),
            })),
        }
    }
}

/// Validates a key as `prost::encoding::decode_key` does: at most `u32::MAX`, wire type 0–5,
/// field number at least 1.
fn split_key(s: &'static Schema, key: u64, at: usize) -> Res<(u32, WireType)> {
    let wt = match key & 7 {
        0 => WireType::Varint,
        1 => WireType::I64,
        2 => WireType::Len,
        3 => WireType::StartGroup,
        4 => WireType::EndGroup,
        5 => WireType::I32,
        _ => return Err(invalid_key(s, at, key)),
    };
    match u32::try_from(key) {
        Ok(k) if k >> 3 != 0 => Ok((k >> 3, wt)),
        _ => Err(invalid_key(s, at, key)),
    }
}

#[cold]
#[inline(never)]
fn invalid_varint(s: &'static Schema, offset: usize) -> Box<WireError> {
    Box::new(WireError::InvalidVarint {
        path: s.path,
        offset,
    })
}

#[cold]
#[inline(never)]
fn invalid_key(s: &'static Schema, offset: usize, key: u64) -> Box<WireError> {
    Box::new(WireError::InvalidKey {
        path: s.path,
        offset,
        key,
    })
}

#[cold]
#[inline(never)]
fn truncated(
    s: &'static Schema,
    field: u32,
    offset: usize,
    needed: u64,
    available: usize,
) -> Box<WireError> {
    Box::new(WireError::Truncated {
        path: s.path,
        field,
        offset,
        needed,
        available,
    })
}
