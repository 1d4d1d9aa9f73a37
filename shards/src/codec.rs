//! Binary encoding of [`LogCommand`], the payload of a Raft log entry.
//!
//! Layout (format version 1): `version: u8`, `now_ms: varint`, `tag: u8`, then the fields of the
//! [`WriteOp`] variant in declaration order. Integers are LEB128 varints (signed ones zig-zag
//! encoded), byte strings are `len: varint` followed by the bytes, `f64` is its 8 IEEE bits
//! little-endian, lists are `count: varint` followed by the items.
//!
//! Decoding is strict: an unknown version or tag, a truncated field, an over-long varint or
//! trailing bytes all give a [`DecodeError`]. Entries written by this version must decode with
//! every later version, so tags and layouts are never reused; a changed layout gets a new
//! version byte.

use bytes::Bytes;

use crate::ops::{DecodeError, ExpireCond, ExpireSpec, LogCommand, SetCond, WriteOp};

/// Format version written by [`LogCommand::encode`].
const VERSION: u8 = 1;

// WriteOp tags (format version 1). Never reuse a number.
const T_SET: u8 = 1;
const T_SETNX: u8 = 2;
const T_GETDEL: u8 = 3;
const T_MSET: u8 = 4;
const T_MSETNX: u8 = 5;
const T_DEL: u8 = 6;
const T_INCRBY: u8 = 7;
const T_INCRBYFLOAT: u8 = 8;
const T_APPEND: u8 = 9;
const T_SETRANGE: u8 = 10;
const T_EXPIRE: u8 = 11;
const T_PERSIST: u8 = 12;
const T_FLUSHALL: u8 = 13;
const T_DELETE_EXPIRED: u8 = 14;

impl LogCommand {
    /// Encodes the command in the current format version.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_capacity(32 + payload_hint(&self.op));
        e.u8(VERSION);
        e.varint(self.now_ms);
        encode_op(&mut e, &self.op);
        e.into_vec()
    }

    /// Decodes an entry written by [`LogCommand::encode`] (any supported version).
    pub fn decode(b: &[u8]) -> Result<LogCommand, DecodeError> {
        let mut d = Dec::new(b);
        let version = d.u8()?;
        if version != VERSION {
            return Err(DecodeError(format!("unknown format version {version}")));
        }
        let now_ms = d.varint()?;
        let op = decode_op(&mut d)?;
        d.finish()?;
        Ok(LogCommand { now_ms, op })
    }
}

/// Rough encoded size of the byte strings in `op`, to size the buffer once.
fn payload_hint(op: &WriteOp) -> usize {
    let pairs = |p: &[(Bytes, Bytes)]| p.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    match op {
        WriteOp::Set { key, value, .. }
        | WriteOp::SetNx { key, value }
        | WriteOp::Append { key, value }
        | WriteOp::SetRange { key, value, .. } => key.len() + value.len(),
        WriteOp::MSet { pairs: p } | WriteOp::MSetNx { pairs: p } => pairs(p),
        WriteOp::Del { keys } | WriteOp::DeleteExpired { keys } => {
            keys.iter().map(|k| k.len() + 2).sum()
        }
        WriteOp::GetDel { key }
        | WriteOp::IncrBy { key, .. }
        | WriteOp::IncrByFloat { key, .. }
        | WriteOp::Expire { key, .. }
        | WriteOp::Persist { key } => key.len(),
        WriteOp::FlushAll => 0,
    }
}

pub(crate) fn encode_op(e: &mut Enc, op: &WriteOp) {
    match op {
        WriteOp::Set {
            key,
            value,
            cond,
            expire,
            get,
        } => {
            e.u8(T_SET);
            e.bytes(key);
            e.bytes(value);
            e.u8(match cond {
                SetCond::Always => 0,
                SetCond::IfAbsent => 1,
                SetCond::IfPresent => 2,
            });
            match expire {
                None => e.u8(0),
                Some(spec) => {
                    e.u8(1);
                    expire_spec(e, spec);
                }
            }
            e.u8(u8::from(*get));
        }
        WriteOp::SetNx { key, value } => {
            e.u8(T_SETNX);
            e.bytes(key);
            e.bytes(value);
        }
        WriteOp::GetDel { key } => {
            e.u8(T_GETDEL);
            e.bytes(key);
        }
        WriteOp::MSet { pairs } => {
            e.u8(T_MSET);
            e.pairs(pairs);
        }
        WriteOp::MSetNx { pairs } => {
            e.u8(T_MSETNX);
            e.pairs(pairs);
        }
        WriteOp::Del { keys } => {
            e.u8(T_DEL);
            e.list(keys);
        }
        WriteOp::IncrBy { key, delta } => {
            e.u8(T_INCRBY);
            e.bytes(key);
            e.varint(zigzag(*delta));
        }
        WriteOp::IncrByFloat { key, delta } => {
            e.u8(T_INCRBYFLOAT);
            e.bytes(key);
            e.raw(&delta.to_bits().to_le_bytes());
        }
        WriteOp::Append { key, value } => {
            e.u8(T_APPEND);
            e.bytes(key);
            e.bytes(value);
        }
        WriteOp::SetRange { key, offset, value } => {
            e.u8(T_SETRANGE);
            e.bytes(key);
            e.varint(*offset);
            e.bytes(value);
        }
        WriteOp::Expire { key, at, cond } => {
            e.u8(T_EXPIRE);
            e.bytes(key);
            expire_spec(e, at);
            e.u8(match cond {
                ExpireCond::Always => 0,
                ExpireCond::IfNoTtl => 1,
                ExpireCond::IfTtl => 2,
                ExpireCond::Greater => 3,
                ExpireCond::Less => 4,
                ExpireCond::IfTtlLess => 5,
            });
        }
        WriteOp::Persist { key } => {
            e.u8(T_PERSIST);
            e.bytes(key);
        }
        WriteOp::FlushAll => e.u8(T_FLUSHALL),
        WriteOp::DeleteExpired { keys } => {
            e.u8(T_DELETE_EXPIRED);
            e.list(keys);
        }
    }
}

fn expire_spec(e: &mut Enc, spec: &ExpireSpec) {
    match spec {
        ExpireSpec::In(ms) => {
            e.u8(0);
            e.varint(*ms);
        }
        ExpireSpec::At(ms) => {
            e.u8(1);
            e.varint(*ms);
        }
        ExpireSpec::Keep => e.u8(2),
    }
}

pub(crate) fn decode_op(d: &mut Dec<'_>) -> Result<WriteOp, DecodeError> {
    let tag = d.u8()?;
    Ok(match tag {
        T_SET => {
            let key = d.bytes()?;
            let value = d.bytes()?;
            let cond = match d.u8()? {
                0 => SetCond::Always,
                1 => SetCond::IfAbsent,
                2 => SetCond::IfPresent,
                t => return Err(bad("set condition", t)),
            };
            let expire = match d.u8()? {
                0 => None,
                1 => Some(decode_expire_spec(d)?),
                t => return Err(bad("set expiry flag", t)),
            };
            let get = d.bool()?;
            WriteOp::Set {
                key,
                value,
                cond,
                expire,
                get,
            }
        }
        T_SETNX => WriteOp::SetNx {
            key: d.bytes()?,
            value: d.bytes()?,
        },
        T_GETDEL => WriteOp::GetDel { key: d.bytes()? },
        T_MSET => WriteOp::MSet { pairs: d.pairs()? },
        T_MSETNX => WriteOp::MSetNx { pairs: d.pairs()? },
        T_DEL => WriteOp::Del { keys: d.list()? },
        T_INCRBY => WriteOp::IncrBy {
            key: d.bytes()?,
            delta: unzigzag(d.varint()?),
        },
        T_INCRBYFLOAT => {
            let key = d.bytes()?;
            let raw = d.take(8)?;
            let mut bits = [0u8; 8];
            bits.copy_from_slice(raw);
            WriteOp::IncrByFloat {
                key,
                delta: f64::from_bits(u64::from_le_bytes(bits)),
            }
        }
        T_APPEND => WriteOp::Append {
            key: d.bytes()?,
            value: d.bytes()?,
        },
        T_SETRANGE => WriteOp::SetRange {
            key: d.bytes()?,
            offset: d.varint()?,
            value: d.bytes()?,
        },
        T_EXPIRE => {
            let key = d.bytes()?;
            let at = decode_expire_spec(d)?;
            let cond = match d.u8()? {
                0 => ExpireCond::Always,
                1 => ExpireCond::IfNoTtl,
                2 => ExpireCond::IfTtl,
                3 => ExpireCond::Greater,
                4 => ExpireCond::Less,
                5 => ExpireCond::IfTtlLess,
                t => return Err(bad("expire condition", t)),
            };
            WriteOp::Expire { key, at, cond }
        }
        T_PERSIST => WriteOp::Persist { key: d.bytes()? },
        T_FLUSHALL => WriteOp::FlushAll,
        T_DELETE_EXPIRED => WriteOp::DeleteExpired { keys: d.list()? },
        t => return Err(bad("operation tag", t)),
    })
}

fn decode_expire_spec(d: &mut Dec<'_>) -> Result<ExpireSpec, DecodeError> {
    Ok(match d.u8()? {
        0 => ExpireSpec::In(d.varint()?),
        1 => ExpireSpec::At(d.varint()?),
        2 => ExpireSpec::Keep,
        t => return Err(bad("expiry kind", t)),
    })
}

fn bad(what: &str, tag: u8) -> DecodeError {
    DecodeError(format!("unknown {what} {tag}"))
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Append-only encoder shared by the log codec and KV snapshots.
pub(crate) struct Enc(Vec<u8>);

impl Enc {
    pub(crate) fn with_capacity(n: usize) -> Enc {
        Enc(Vec::with_capacity(n))
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub(crate) fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    /// LEB128: 7 bits per byte, low group first, high bit set on all but the last byte.
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    pub(crate) fn list(&mut self, items: &[Bytes]) {
        self.varint(items.len() as u64);
        for b in items {
            self.bytes(b);
        }
    }

    pub(crate) fn pairs(&mut self, pairs: &[(Bytes, Bytes)]) {
        self.varint(pairs.len() as u64);
        for (k, v) in pairs {
            self.bytes(k);
            self.bytes(v);
        }
    }
}

/// Strict decoder over a byte slice: every read is bounds-checked and fails with
/// [`DecodeError`] instead of panicking.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError(format!("{} trailing bytes", self.remaining())))
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError(format!(
                "truncated: need {n} bytes at offset {}, have {}",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(bad("boolean", t)),
        }
    }

    /// Rejects varints longer than 10 bytes, with bits beyond 64, or not in their shortest
    /// form (so every value has exactly one encoding).
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let group = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError("varint overflows 64 bits".into()));
            }
            if i > 0 && b == 0 {
                return Err(DecodeError("varint not in shortest form".into()));
            }
            v |= group << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes".into()))
    }

    /// A length that must fit in the remaining input (each counted item takes at least
    /// `min_item` bytes), so a corrupt length cannot trigger a huge allocation.
    pub(crate) fn len(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let max = (self.remaining() / min_item.max(1)) as u64;
        if n > max {
            return Err(DecodeError(format!(
                "length {n} exceeds the {} remaining bytes",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.len(1)?;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }

    pub(crate) fn list(&mut self) -> Result<Vec<Bytes>, DecodeError> {
        let n = self.len(1)?;
        (0..n).map(|_| self.bytes()).collect()
    }

    pub(crate) fn pairs(&mut self) -> Result<Vec<(Bytes, Bytes)>, DecodeError> {
        let n = self.len(2)?;
        (0..n).map(|_| Ok((self.bytes()?, self.bytes()?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_strategies::arb_write_op;
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn samples() -> Vec<WriteOp> {
        vec![
            WriteOp::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfAbsent,
                expire: Some(ExpireSpec::In(1500)),
                get: true,
            },
            WriteOp::Set {
                key: b(""),
                value: b(""),
                cond: SetCond::Always,
                expire: None,
                get: false,
            },
            WriteOp::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfPresent,
                expire: Some(ExpireSpec::Keep),
                get: false,
            },
            WriteOp::SetNx {
                key: b("a"),
                value: b("b"),
            },
            WriteOp::GetDel { key: b("a") },
            WriteOp::MSet {
                pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
            },
            WriteOp::MSetNx { pairs: vec![] },
            WriteOp::Del {
                keys: vec![b("a"), b("a")],
            },
            WriteOp::IncrBy {
                key: b("n"),
                delta: i64::MIN,
            },
            WriteOp::IncrBy {
                key: b("n"),
                delta: -1,
            },
            WriteOp::IncrByFloat {
                key: b("f"),
                delta: -0.1,
            },
            WriteOp::Append {
                key: b("s"),
                value: Bytes::from_static(b"\x00\xff"),
            },
            WriteOp::SetRange {
                key: b("s"),
                offset: u64::MAX,
                value: b("x"),
            },
            WriteOp::Expire {
                key: b("e"),
                at: ExpireSpec::At(u64::MAX),
                cond: ExpireCond::IfTtlLess,
            },
            WriteOp::Persist { key: b("p") },
            WriteOp::FlushAll,
            WriteOp::DeleteExpired {
                keys: vec![b("x"), b("y")],
            },
        ]
    }

    #[test]
    fn round_trips_every_variant() {
        for (i, op) in samples().into_iter().enumerate() {
            let cmd = LogCommand {
                now_ms: 1_700_000_000_000 + i as u64,
                op,
            };
            let enc = cmd.encode();
            assert_eq!(enc[0], VERSION);
            assert_eq!(LogCommand::decode(&enc), Ok(cmd));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for op in samples() {
            let enc = LogCommand { now_ms: 99, op }.encode();
            for cut in 0..enc.len() {
                assert!(LogCommand::decode(&enc[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn rejects_unknown_version_tag_and_trailing_bytes() {
        let mut enc = LogCommand {
            now_ms: 1,
            op: WriteOp::FlushAll,
        }
        .encode();
        enc.push(0);
        assert!(LogCommand::decode(&enc).unwrap_err().0.contains("trailing"));
        assert!(LogCommand::decode(&[2, 1, T_FLUSHALL]).is_err());
        assert!(LogCommand::decode(&[VERSION, 1, 200]).is_err());
        assert!(LogCommand::decode(&[]).is_err());
        // Bad condition byte inside SET.
        assert!(LogCommand::decode(&[VERSION, 0, T_SET, 1, b'k', 1, b'v', 9, 0, 0]).is_err());
    }

    #[test]
    fn rejects_overlong_varints_and_huge_lengths() {
        let eleven = [0xffu8; 11];
        let mut v = vec![VERSION];
        v.extend_from_slice(&eleven);
        assert!(LogCommand::decode(&v).is_err());
        // 10th byte carrying bits beyond 64.
        let mut v = vec![VERSION];
        v.extend_from_slice(&[0xff; 9]);
        v.push(0x02);
        assert!(LogCommand::decode(&v).is_err());
        // DEL with a count of 2^63 and no items: must fail without allocating.
        let mut e = Enc::with_capacity(16);
        e.u8(VERSION);
        e.varint(0);
        e.u8(T_DEL);
        e.varint(1 << 63);
        assert!(LogCommand::decode(e.as_slice()).is_err());
    }

    #[test]
    fn varint_and_zigzag_edges() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX >> 1, u64::MAX] {
            let mut e = Enc::with_capacity(10);
            e.varint(v);
            let mut d = Dec::new(e.as_slice());
            assert_eq!(d.varint(), Ok(v));
            assert_eq!(d.finish(), Ok(()));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(now_ms in any::<u64>(), op in arb_write_op()) {
            let cmd = LogCommand { now_ms, op };
            prop_assert_eq!(LogCommand::decode(&cmd.encode()), Ok(cmd));
        }

        #[test]
        fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Any outcome is fine as long as it is not a panic; a successful decode must
            // re-encode to the same bytes (the format has one encoding per value).
            if let Ok(cmd) = LogCommand::decode(&data) {
                prop_assert_eq!(cmd.encode(), data);
            }
        }
    }
}
