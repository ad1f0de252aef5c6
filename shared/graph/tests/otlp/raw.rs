//! Raw protobuf encoding for tests: hand-built messages, and re-encoding of a valid request
//! with what `prost`'s encoder never writes (fields out of order, repeated scalars, a message
//! field split in two, unknown fields of every wire type including groups, non-minimal
//! varints). Every such re-encoding is still a valid request.

use proptest::prelude::*;

/// Wire types.
pub const VARINT: u8 = 0;
pub const I64: u8 = 1;
pub const LEN: u8 = 2;
pub const SGROUP: u8 = 3;
pub const EGROUP: u8 = 4;
pub const I32: u8 = 5;

pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// `v` in exactly `n` bytes (`n` at least the minimal length, at most 10).
pub fn varint_padded(v: u64, n: usize) -> Vec<u8> {
    let n = n.max(varint(v).len()).min(10);
    (0..n)
        .map(|i| {
            let group = ((v >> (7 * i)) & 0x7f) as u8;
            if i + 1 < n { group | 0x80 } else { group }
        })
        .collect()
}

pub fn key(tag: u32, wire_type: u8) -> Vec<u8> {
    varint((u64::from(tag) << 3) | u64::from(wire_type))
}

pub fn len_field(tag: u32, content: &[u8]) -> Vec<u8> {
    [
        key(tag, LEN),
        varint(content.len() as u64),
        content.to_vec(),
    ]
    .concat()
}

pub fn varint_field(tag: u32, v: u64) -> Vec<u8> {
    [key(tag, VARINT), varint(v)].concat()
}

pub fn fixed64_field(tag: u32, v: u64) -> Vec<u8> {
    [key(tag, I64), v.to_le_bytes().to_vec()].concat()
}

pub fn fixed32_field(tag: u32, v: u32) -> Vec<u8> {
    [key(tag, I32), v.to_le_bytes().to_vec()].concat()
}

/// `KeyValue{key, value: AnyValue{string_value}}`.
pub fn string_attr(k: &str, v: &[u8]) -> Vec<u8> {
    [len_field(1, k.as_bytes()), len_field(2, &len_field(1, v))].concat()
}

/// A request with one resource (`resource` is the `Resource` message content) and one scope
/// holding `spans` (each a `Span` message content).
pub fn request(resource: &[u8], spans: &[Vec<u8>]) -> Vec<u8> {
    let scope: Vec<u8> = spans.iter().flat_map(|s| len_field(2, s)).collect();
    let rs = [len_field(1, resource), len_field(2, &scope)].concat();
    len_field(1, &rs)
}

/// A request with one span and an empty resource.
pub fn request_with_span(span: &[u8]) -> Vec<u8> {
    request(&[], &[span.to_vec()])
}

/// A plausible span: 16-byte trace id, 8-byte span id, kind SERVER, times.
pub fn basic_span() -> Vec<u8> {
    [
        len_field(1, &[0xab; 16]),
        len_field(2, &[0xcd; 8]),
        len_field(5, b"GET /"),
        varint_field(6, 2),
        fixed64_field(7, 1_700_000_000_000_000_000),
        fixed64_field(8, 1_700_000_000_100_000_000),
    ]
    .concat()
}

/// The messages the scanner walks, to know which length-delimited fields to parse further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    Request,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Span,
    KeyValue,
    AnyValue,
    Status,
}

impl Msg {
    fn child(self, tag: u32) -> Option<Msg> {
        match (self, tag) {
            (Msg::Request, 1) => Some(Msg::ResourceSpans),
            (Msg::ResourceSpans, 1) => Some(Msg::Resource),
            (Msg::ResourceSpans, 2) => Some(Msg::ScopeSpans),
            (Msg::Resource, 1) => Some(Msg::KeyValue),
            (Msg::ScopeSpans, 2) => Some(Msg::Span),
            (Msg::Span, 9) => Some(Msg::KeyValue),
            (Msg::Span, 15) => Some(Msg::Status),
            (Msg::KeyValue, 2) => Some(Msg::AnyValue),
            _ => None,
        }
    }

    /// Length-delimited fields holding strings or ids (anything else opaque is a message).
    fn is_text(self, tag: u32) -> bool {
        matches!(
            (self, tag),
            (Msg::ResourceSpans, 3)
                | (Msg::ScopeSpans, 3)
                | (Msg::Span, 1..=5)
                | (Msg::KeyValue, 1)
                | (Msg::AnyValue, 1)
                | (Msg::AnyValue, 7)
                | (Msg::Status, 2)
        )
    }

    /// Field numbers no version of the schema uses for this message.
    fn unknown_tags(self) -> &'static [u32] {
        match self {
            Msg::Request => &[2, 3, 15, 16, 100, 536_870_911],
            Msg::ResourceSpans => &[4, 5, 1000, 2047],
            Msg::Resource => &[4, 5, 20],
            Msg::ScopeSpans => &[4, 5, 99],
            Msg::Span => &[17, 18, 30, 16_000],
            Msg::KeyValue => &[4, 5, 6],
            Msg::AnyValue => &[9, 10, 31],
            Msg::Status => &[1, 4, 5],
        }
    }
}

#[derive(Debug, Clone)]
pub enum Payload {
    Varint(u64),
    I64([u8; 8]),
    I32([u8; 4]),
    Bytes(Vec<u8>),
    Message(Msg, Vec<Field>),
    Group(Vec<Field>),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub tag: u32,
    pub payload: Payload,
    /// Extra bytes in the key and length varints (non-minimal encoding).
    pub pad: usize,
}

/// Parses a valid encoding of `msg` (as `prost` writes it: no groups).
pub fn parse(mut buf: &[u8], msg: Msg) -> Result<Vec<Field>, String> {
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let (tag, wt) = prost::encoding::decode_key(&mut buf).map_err(|e| e.to_string())?;
        let payload = match wt as u8 {
            VARINT => Payload::Varint(
                prost::encoding::decode_varint(&mut buf).map_err(|e| e.to_string())?,
            ),
            I64 => {
                let (v, rest) = buf.split_first_chunk::<8>().ok_or("short i64")?;
                buf = rest;
                Payload::I64(*v)
            }
            I32 => {
                let (v, rest) = buf.split_first_chunk::<4>().ok_or("short i32")?;
                buf = rest;
                Payload::I32(*v)
            }
            LEN => {
                let len = prost::encoding::decode_varint(&mut buf).map_err(|e| e.to_string())?;
                let len = usize::try_from(len).map_err(|e| e.to_string())?;
                if len > buf.len() {
                    return Err("short len".into());
                }
                let (content, rest) = buf.split_at(len);
                buf = rest;
                match msg.child(tag) {
                    Some(child) => Payload::Message(child, parse(content, child)?),
                    None => Payload::Bytes(content.to_vec()),
                }
            }
            _ => return Err(format!("unexpected wire type {wt:?}")),
        };
        fields.push(Field {
            tag,
            payload,
            pad: 0,
        });
    }
    Ok(fields)
}

pub fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let key = |wt: u8| {
            let k = (u64::from(f.tag) << 3) | u64::from(wt);
            varint_padded(k, varint(k).len() + f.pad)
        };
        match &f.payload {
            Payload::Varint(v) => {
                out.extend(key(VARINT));
                out.extend(varint_padded(*v, varint(*v).len() + f.pad));
            }
            Payload::I64(b) => {
                out.extend(key(I64));
                out.extend(b);
            }
            Payload::I32(b) => {
                out.extend(key(I32));
                out.extend(b);
            }
            Payload::Bytes(b) => {
                out.extend(key(LEN));
                out.extend(varint_padded(
                    b.len() as u64,
                    varint(b.len() as u64).len() + f.pad,
                ));
                out.extend(b);
            }
            Payload::Message(_, inner) => {
                let b = encode(inner);
                out.extend(key(LEN));
                out.extend(varint_padded(
                    b.len() as u64,
                    varint(b.len() as u64).len() + f.pad,
                ));
                out.extend(b);
            }
            Payload::Group(inner) => {
                out.extend(key(SGROUP));
                out.extend(encode(inner));
                out.extend(varint(((u64::from(f.tag)) << 3) | u64::from(EGROUP)));
            }
        }
    }
    out
}

/// SplitMix64, for mutations driven by one proptest-chosen seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn ascii(&mut self) -> Vec<u8> {
        const KEYS: [&str; 8] = [
            "service.name",
            "server.address",
            "db.system",
            "peer.service",
            "k8s.cluster.name",
            "other",
            "",
            "net.peer.name",
        ];
        if self.chance(50) {
            KEYS[self.below(KEYS.len())].as_bytes().to_vec()
        } else {
            (0..self.below(12))
                .map(|_| b'a' + (self.below(26) as u8))
                .collect()
        }
    }

    /// A valid `AnyValue` member field of a random type.
    fn any_value_member(&mut self) -> Field {
        let (tag, payload) = match self.below(6) {
            0 | 1 => (1, Payload::Bytes(self.ascii())),
            2 => (
                2 + 6 * (self.below(2) as u32),
                Payload::Varint(self.next() >> self.below(64)),
            ),
            3 => (3, Payload::Varint(self.next())),
            4 => (4, Payload::I64(self.next().to_le_bytes())),
            // An empty bytes value, array or key-value list.
            _ => (5 + self.below(3) as u32, Payload::Bytes(Vec::new())),
        };
        Field {
            tag,
            payload,
            pad: 0,
        }
    }

    fn unknown_field(&mut self, tag: u32, depth: u32) -> Field {
        let payload = match self.below(if depth > 0 { 5 } else { 4 }) {
            0 => Payload::Varint(if self.chance(30) {
                u64::MAX
            } else {
                self.next() >> self.below(64)
            }),
            1 => Payload::I64(self.next().to_le_bytes()),
            2 => Payload::I32((self.next() as u32).to_le_bytes()),
            3 => Payload::Bytes((0..self.below(20)).map(|_| self.next() as u8).collect()),
            _ => {
                let n = self.below(4);
                Payload::Group(
                    (0..n)
                        .map(|_| {
                            let inner = 1 + self.below(40) as u32;
                            self.unknown_field(inner, depth - 1)
                        })
                        .collect(),
                )
            }
        };
        Field {
            tag,
            payload,
            pad: 0,
        }
    }
}

/// Re-encodes a message tree in ways `prost` never writes but accepts; see the module docs.
pub fn mutate(fields: &mut Vec<Field>, msg: Msg, rng: &mut Rng) {
    for f in fields.iter_mut() {
        if let Payload::Message(child, inner) = &mut f.payload {
            mutate(inner, *child, rng);
        }
        if rng.chance(8) {
            f.pad = rng.below(3);
        }
        // Another value for a varint: kind and status code given out-of-range values.
        if let Payload::Varint(v) = &mut f.payload
            && rng.chance(10)
        {
            *v = if rng.chance(50) {
                rng.next()
            } else {
                u64::MAX - rng.below(3) as u64
            };
        }
    }
    if !fields.is_empty() && rng.chance(20) {
        // Another occurrence of a field, before or after the original.
        let i = rng.below(fields.len());
        let mut copy = fields[i].clone();
        match &mut copy.payload {
            Payload::Varint(v) => *v = rng.next() >> rng.below(64),
            Payload::I64(b) => *b = rng.next().to_le_bytes(),
            Payload::I32(b) => *b = (rng.next() as u32).to_le_bytes(),
            Payload::Bytes(b) if msg.is_text(copy.tag) => *b = rng.ascii(),
            _ => {}
        }
        let at = if rng.chance(50) { i } else { i + 1 };
        fields.insert(at, copy);
    }
    if !fields.is_empty() && rng.chance(15) {
        // A message field split in two occurrences: protobuf merges them back.
        let i = rng.below(fields.len());
        if let Payload::Message(child, inner) = &fields[i].payload
            && inner.len() >= 2
        {
            // Each field goes to one of the two parts; their order within a part is kept.
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for f in inner {
                if rng.chance(50) {
                    a.push(f.clone())
                } else {
                    b.push(f.clone())
                }
            }
            let first = Field {
                tag: fields[i].tag,
                payload: Payload::Message(*child, a),
                pad: 0,
            };
            let second = Field {
                tag: fields[i].tag,
                payload: Payload::Message(*child, b),
                pad: 0,
            };
            fields.splice(i..=i, [first, second]);
        }
    }
    if msg == Msg::AnyValue && rng.chance(30) {
        // Another member of the oneof, before or after: the last one is the value.
        let member = rng.any_value_member();
        let at = rng.below(fields.len() + 1);
        fields.insert(at, member);
    }
    if msg == Msg::KeyValue && rng.chance(15) {
        // Another occurrence of `value`: merged into the first.
        let member = rng.any_value_member();
        let at = rng.below(fields.len() + 1);
        fields.insert(
            at,
            Field {
                tag: 2,
                payload: Payload::Message(Msg::AnyValue, vec![member]),
                pad: 0,
            },
        );
    }
    if rng.chance(25) {
        let tags = msg.unknown_tags();
        let tag = tags[rng.below(tags.len())];
        let field = rng.unknown_field(tag, 3);
        let at = rng.below(fields.len() + 1);
        fields.insert(at, field);
    }
    if rng.chance(15) {
        for i in (1..fields.len()).rev() {
            let j = rng.below(i + 1);
            fields.swap(i, j);
        }
    }
}

/// Corrupts `buf` in one of several ways chosen by `rng`.
pub fn corrupt(buf: &mut Vec<u8>, rng: &mut Rng) {
    if buf.is_empty() {
        buf.push(rng.next() as u8);
        return;
    }
    match rng.below(6) {
        0 => buf.truncate(rng.below(buf.len())),
        1 => {
            for _ in 0..=rng.below(3) {
                let i = rng.below(buf.len());
                buf[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let i = rng.below(buf.len());
            buf[i] = rng.next() as u8;
        }
        3 => {
            let i = rng.below(buf.len() + 1);
            buf.insert(i, rng.next() as u8);
        }
        4 => {
            let i = rng.below(buf.len());
            buf.remove(i);
        }
        _ => {
            // A plausible but wrong key: a known field number with another wire type.
            let i = rng.below(buf.len());
            buf[i] = ((1 + rng.below(15) as u8) << 3) | rng.below(8) as u8;
        }
    }
}

/// Any seed, for the mutation functions.
pub fn seed() -> impl Strategy<Value = u64> {
    any::<u64>()
}
