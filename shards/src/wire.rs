//! Binary codec for forwarding a client request to a shard group's leader on another node and
//! returning its reply. (Raft messages travel as protobuf; this is only the request path.)
//!
//! Conventions are those of [`crate::codec`]: integers are LEB128 varints in shortest form,
//! signed ones zig-zag encoded; byte strings are `len: varint` + bytes; lists are
//! `count: varint` + items; `bool` is one byte 0/1; `Option<T>` is a byte 0 (None) or 1
//! followed by `T`.
//!
//! Request (format version 1):
//! ```text
//! version: u8 = 1, kind: u8
//!   kind 1 (read):  read tag: u8, fields of the ReadOp variant in declaration order
//!   kind 2 (write): the WriteOp exactly as in a log entry (op tag + fields, see codec.rs);
//!                   no timestamp: the leader stamps the entry when it proposes it
//! ```
//! Read tags: 1 Get{key}, 2 MGet{keys}, 3 Exists{keys}, 4 Ttl{key, ms: bool}, 5 Type{key},
//! 6 Strlen{key}, 7 GetRange{key, start: zigzag, end: zigzag}, 8 Keys{pattern},
//! 9 Scan{cursor: varint, pattern: Option<bytes>, count: varint, type_filter: Option<bytes>},
//! 10 DbSize.
//!
//! Reply (format version 1):
//! ```text
//! version: u8 = 1, reply
//! reply := tag: u8, then
//!   1 Ok | 2 Status(bytes) | 3 Error(bytes) | 4 Int(zigzag) | 5 Bulk(bytes) | 6 Nil
//!   | 7 NilArray | 8 Array(count, reply*) | 9 Map(count, (reply reply)*)
//! ```
//!
//! Decoding is strict: an unknown version, kind or tag, a truncated field, an over-long or
//! non-shortest varint, or trailing bytes give a [`DecodeError`], never a panic. Each value has
//! exactly one encoding. Array/Map nesting is limited to [`MAX_REPLY_DEPTH`] so a hostile peer
//! cannot exhaust the stack, and no count read from the input allocates more than the remaining
//! input could fill. Tags are never reused; a changed layout gets a new version byte.

use bytes::Bytes;

use crate::codec::{decode_op, encode_op, unzigzag, zigzag, Dec, Enc};
use crate::group::MembershipChange;
use crate::members::Member;
use crate::ops::{DecodeError, ReadOp, WriteOp};
use crate::reply::Reply;

/// Format version written by this module.
const VERSION: u8 = 1;

/// Deepest Array/Map nesting [`decode_reply`] accepts: a reply that is itself an Array has
/// depth 1. Real replies nest at most 2 deep (SCAN); the encoder does not check this, so a
/// deeper reply encodes but is rejected by the decoder.
pub const MAX_REPLY_DEPTH: usize = 64;

/// Upper bound on the capacity reserved up front for a decoded Array/Map. Counts are already
/// bounded by the remaining input, but nested containers each reserving `remaining` slots
/// would multiply that by the depth; beyond this the vector grows as items actually decode.
const PREALLOC_CAP: usize = 64;

// Request kinds.
const K_READ: u8 = 1;
const K_WRITE: u8 = 2;
const K_MEMBERSHIP: u8 = 3;
const K_STATUS: u8 = 4;
const K_TRANSFER: u8 = 5;
const M_ADD_LEARNER: u8 = 1;
const M_PROMOTE: u8 = 2;
const M_REMOVE: u8 = 3;

// ReadOp tags (format version 1). Never reuse a number.
const R_GET: u8 = 1;
const R_MGET: u8 = 2;
const R_EXISTS: u8 = 3;
const R_TTL: u8 = 4;
const R_TYPE: u8 = 5;
const R_STRLEN: u8 = 6;
const R_GETRANGE: u8 = 7;
const R_KEYS: u8 = 8;
const R_SCAN: u8 = 9;
const R_DBSIZE: u8 = 10;

// Reply tags (format version 1). Never reuse a number.
const P_OK: u8 = 1;
const P_STATUS: u8 = 2;
const P_ERROR: u8 = 3;
const P_INT: u8 = 4;
const P_BULK: u8 = 5;
const P_NIL: u8 = 6;
const P_NIL_ARRAY: u8 = 7;
const P_ARRAY: u8 = 8;
const P_MAP: u8 = 9;

/// A client request forwarded to the leader of the shard group owning its keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Read(ReadOp),
    Write(WriteOp),
    /// A membership change, run by the group's leader.
    Membership(MembershipChange),
    /// This node's view of the group's configuration (never forwarded).
    MembershipStatus,
    /// Hand leadership of the group to this node id (run only where it was sent: the
    /// caller asks a leader it chose, so it is never forwarded).
    TransferLeader(u64),
}

/// Appends the encoding of `r` to `out`.
pub fn encode_request(r: &Request, out: &mut Vec<u8>) {
    let mut e = Enc::with_capacity(32);
    e.u8(VERSION);
    match r {
        Request::Read(op) => {
            e.u8(K_READ);
            encode_read(&mut e, op);
        }
        Request::Write(op) => {
            e.u8(K_WRITE);
            encode_op(&mut e, op);
        }
        Request::Membership(change) => {
            e.u8(K_MEMBERSHIP);
            match change {
                MembershipChange::AddLearner(m) => {
                    e.u8(M_ADD_LEARNER);
                    e.bytes(&m.encode());
                }
                MembershipChange::Promote(id) => {
                    e.u8(M_PROMOTE);
                    e.varint(*id);
                }
                MembershipChange::Remove(id) => {
                    e.u8(M_REMOVE);
                    e.varint(*id);
                }
            }
        }
        Request::MembershipStatus => e.u8(K_STATUS),
        Request::TransferLeader(to) => {
            e.u8(K_TRANSFER);
            e.varint(*to);
        }
    }
    out.extend_from_slice(e.as_slice());
}

/// Decodes exactly one request occupying all of `b`.
pub fn decode_request(b: &[u8]) -> Result<Request, DecodeError> {
    let mut d = Dec::new(b);
    version(&mut d)?;
    let req = match d.u8()? {
        K_READ => Request::Read(decode_read(&mut d)?),
        K_WRITE => Request::Write(decode_op(&mut d)?),
        K_MEMBERSHIP => Request::Membership(match d.u8()? {
            M_ADD_LEARNER => MembershipChange::AddLearner(Member::decode(&d.bytes()?)?),
            M_PROMOTE => MembershipChange::Promote(d.varint()?),
            M_REMOVE => MembershipChange::Remove(d.varint()?),
            t => return Err(bad("membership change", t)),
        }),
        K_STATUS => Request::MembershipStatus,
        K_TRANSFER => Request::TransferLeader(d.varint()?),
        k => return Err(bad("request kind", k)),
    };
    d.finish()?;
    Ok(req)
}

/// Appends the encoding of `r` to `out`.
pub fn encode_reply(r: &Reply, out: &mut Vec<u8>) {
    let mut e = Enc::with_capacity(16);
    e.u8(VERSION);
    encode_reply_body(&mut e, r);
    out.extend_from_slice(e.as_slice());
}

/// Decodes exactly one reply occupying all of `b`.
pub fn decode_reply(b: &[u8]) -> Result<Reply, DecodeError> {
    let mut d = Dec::new(b);
    version(&mut d)?;
    let r = decode_reply_body(&mut d, 0)?;
    d.finish()?;
    Ok(r)
}

fn version(d: &mut Dec<'_>) -> Result<(), DecodeError> {
    match d.u8()? {
        VERSION => Ok(()),
        v => Err(DecodeError(format!("unknown wire format version {v}"))),
    }
}

fn bad(what: &str, tag: u8) -> DecodeError {
    DecodeError(format!("unknown {what} {tag}"))
}

fn encode_read(e: &mut Enc, op: &ReadOp) {
    match op {
        ReadOp::Get { key } => {
            e.u8(R_GET);
            e.bytes(key);
        }
        ReadOp::MGet { keys } => {
            e.u8(R_MGET);
            e.list(keys);
        }
        ReadOp::Exists { keys } => {
            e.u8(R_EXISTS);
            e.list(keys);
        }
        ReadOp::Ttl { key, ms } => {
            e.u8(R_TTL);
            e.bytes(key);
            e.u8(u8::from(*ms));
        }
        ReadOp::Type { key } => {
            e.u8(R_TYPE);
            e.bytes(key);
        }
        ReadOp::Strlen { key } => {
            e.u8(R_STRLEN);
            e.bytes(key);
        }
        ReadOp::GetRange { key, start, end } => {
            e.u8(R_GETRANGE);
            e.bytes(key);
            e.varint(zigzag(*start));
            e.varint(zigzag(*end));
        }
        ReadOp::Keys { pattern } => {
            e.u8(R_KEYS);
            e.bytes(pattern);
        }
        ReadOp::Scan {
            cursor,
            pattern,
            count,
            type_filter,
        } => {
            e.u8(R_SCAN);
            e.varint(*cursor);
            opt_bytes(e, pattern.as_ref());
            // usize is at most 64 bits on every supported target: lossless.
            e.varint(*count as u64);
            opt_bytes(e, type_filter.as_ref());
        }
        ReadOp::DbSize => e.u8(R_DBSIZE),
    }
}

fn opt_bytes(e: &mut Enc, b: Option<&Bytes>) {
    match b {
        None => e.u8(0),
        Some(b) => {
            e.u8(1);
            e.bytes(b);
        }
    }
}

fn decode_read(d: &mut Dec<'_>) -> Result<ReadOp, DecodeError> {
    Ok(match d.u8()? {
        R_GET => ReadOp::Get { key: d.bytes()? },
        R_MGET => ReadOp::MGet { keys: d.list()? },
        R_EXISTS => ReadOp::Exists { keys: d.list()? },
        R_TTL => ReadOp::Ttl {
            key: d.bytes()?,
            ms: d.bool()?,
        },
        R_TYPE => ReadOp::Type { key: d.bytes()? },
        R_STRLEN => ReadOp::Strlen { key: d.bytes()? },
        R_GETRANGE => ReadOp::GetRange {
            key: d.bytes()?,
            start: unzigzag(d.varint()?),
            end: unzigzag(d.varint()?),
        },
        R_KEYS => ReadOp::Keys {
            pattern: d.bytes()?,
        },
        R_SCAN => {
            let cursor = d.varint()?;
            let pattern = decode_opt_bytes(d)?;
            let count = d.varint()?;
            let count = usize::try_from(count)
                .map_err(|_| DecodeError(format!("scan count {count} does not fit usize")))?;
            let type_filter = decode_opt_bytes(d)?;
            ReadOp::Scan {
                cursor,
                pattern,
                count,
                type_filter,
            }
        }
        R_DBSIZE => ReadOp::DbSize,
        t => return Err(bad("read tag", t)),
    })
}

fn decode_opt_bytes(d: &mut Dec<'_>) -> Result<Option<Bytes>, DecodeError> {
    match d.u8()? {
        0 => Ok(None),
        1 => Ok(Some(d.bytes()?)),
        t => Err(bad("option flag", t)),
    }
}

fn encode_reply_body(e: &mut Enc, r: &Reply) {
    match r {
        Reply::Ok => e.u8(P_OK),
        Reply::Status(s) => {
            e.u8(P_STATUS);
            e.bytes(s);
        }
        Reply::Error(s) => {
            e.u8(P_ERROR);
            e.bytes(s);
        }
        Reply::Int(v) => {
            e.u8(P_INT);
            e.varint(zigzag(*v));
        }
        Reply::Bulk(b) => {
            e.u8(P_BULK);
            e.bytes(b);
        }
        Reply::Nil => e.u8(P_NIL),
        Reply::NilArray => e.u8(P_NIL_ARRAY),
        Reply::Array(items) => {
            e.u8(P_ARRAY);
            e.varint(items.len() as u64);
            for item in items {
                encode_reply_body(e, item);
            }
        }
        Reply::Map(pairs) => {
            e.u8(P_MAP);
            e.varint(pairs.len() as u64);
            for (k, v) in pairs {
                encode_reply_body(e, k);
                encode_reply_body(e, v);
            }
        }
    }
}

/// `depth` is the number of Arrays/Maps enclosing the reply being decoded; recursion stops
/// at [`MAX_REPLY_DEPTH`], which bounds stack use.
fn decode_reply_body(d: &mut Dec<'_>, depth: usize) -> Result<Reply, DecodeError> {
    let tag = d.u8()?;
    if matches!(tag, P_ARRAY | P_MAP) && depth >= MAX_REPLY_DEPTH {
        return Err(DecodeError(format!(
            "reply nested deeper than {MAX_REPLY_DEPTH}"
        )));
    }
    Ok(match tag {
        P_OK => Reply::Ok,
        P_STATUS => Reply::Status(d.bytes()?),
        P_ERROR => Reply::Error(d.bytes()?),
        P_INT => Reply::Int(unzigzag(d.varint()?)),
        P_BULK => Reply::Bulk(d.bytes()?),
        P_NIL => Reply::Nil,
        P_NIL_ARRAY => Reply::NilArray,
        P_ARRAY => {
            // Every reply takes at least its tag byte.
            let n = d.len(1)?;
            let mut items = Vec::with_capacity(n.min(PREALLOC_CAP));
            for _ in 0..n {
                items.push(decode_reply_body(d, depth + 1)?);
            }
            Reply::Array(items)
        }
        P_MAP => {
            let n = d.len(2)?;
            let mut pairs = Vec::with_capacity(n.min(PREALLOC_CAP));
            for _ in 0..n {
                let k = decode_reply_body(d, depth + 1)?;
                let v = decode_reply_body(d, depth + 1)?;
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
        t => return Err(bad("reply tag", t)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{ExpireCond, ExpireSpec, SetCond};
    use crate::test_strategies::{arb_bytes, arb_write_op};
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn enc_req(r: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(r, &mut out);
        out
    }

    fn enc_reply(r: &Reply) -> Vec<u8> {
        let mut out = Vec::new();
        encode_reply(r, &mut out);
        out
    }

    fn read_samples() -> Vec<ReadOp> {
        vec![
            ReadOp::Get { key: b("k") },
            ReadOp::Get { key: b("") },
            ReadOp::MGet {
                keys: vec![b("a"), b(""), b("a")],
            },
            ReadOp::MGet { keys: vec![] },
            ReadOp::Exists {
                keys: vec![b("x"), b("y")],
            },
            ReadOp::Ttl {
                key: b("t"),
                ms: false,
            },
            ReadOp::Ttl {
                key: b("t"),
                ms: true,
            },
            ReadOp::Type { key: b("ty") },
            ReadOp::Strlen {
                key: Bytes::from_static(b"\x00\xff"),
            },
            ReadOp::GetRange {
                key: b("g"),
                start: i64::MIN,
                end: i64::MAX,
            },
            ReadOp::GetRange {
                key: b("g"),
                start: -1,
                end: 0,
            },
            ReadOp::Keys {
                pattern: b("h*llo"),
            },
            ReadOp::Scan {
                cursor: 0,
                pattern: None,
                count: 10,
                type_filter: None,
            },
            ReadOp::Scan {
                cursor: u64::MAX,
                pattern: Some(b("user:*")),
                count: usize::MAX,
                type_filter: Some(b("string")),
            },
            ReadOp::DbSize,
        ]
    }

    fn write_samples() -> Vec<WriteOp> {
        vec![
            WriteOp::Set {
                key: b("k"),
                value: b("v"),
                cond: SetCond::IfAbsent,
                expire: Some(ExpireSpec::In(1500)),
                get: true,
            },
            WriteOp::SetNx {
                key: b("a"),
                value: b("b"),
            },
            WriteOp::GetDel { key: b("a") },
            WriteOp::MSet {
                pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
            },
            WriteOp::MSetNx {
                pairs: vec![(b("c"), b(""))],
            },
            WriteOp::Del {
                keys: vec![b("a"), b("b")],
            },
            WriteOp::IncrBy {
                key: b("n"),
                delta: i64::MIN,
            },
            WriteOp::IncrByFloat {
                key: b("f"),
                delta: -0.1,
            },
            WriteOp::Append {
                key: b("s"),
                value: b("x"),
            },
            WriteOp::SetRange {
                key: b("s"),
                offset: u64::MAX,
                value: b("x"),
            },
            WriteOp::Expire {
                key: b("e"),
                at: ExpireSpec::At(7),
                cond: ExpireCond::Greater,
            },
            WriteOp::Persist { key: b("p") },
            WriteOp::FlushAll,
            WriteOp::DeleteExpired { keys: vec![b("x")] },
        ]
    }

    fn request_samples() -> Vec<Request> {
        read_samples()
            .into_iter()
            .map(Request::Read)
            .chain(write_samples().into_iter().map(Request::Write))
            .chain([Request::MembershipStatus, Request::TransferLeader(3)])
            .collect()
    }

    fn reply_samples() -> Vec<Reply> {
        vec![
            Reply::Ok,
            Reply::status("PONG"),
            Reply::syntax(),
            Reply::Int(0),
            Reply::Int(i64::MIN),
            Reply::Int(i64::MAX),
            Reply::bulk(Bytes::from_static(b"\x00bin\xff")),
            Reply::bulk(Bytes::new()),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![]),
            Reply::Map(vec![]),
            // SCAN shape.
            Reply::Array(vec![
                Reply::Int(42),
                Reply::Array(vec![Reply::bulk(b("a")), Reply::bulk(b("b"))]),
            ]),
            Reply::Map(vec![
                (
                    Reply::bulk(b("k")),
                    Reply::Array(vec![Reply::Nil, Reply::Ok]),
                ),
                (
                    Reply::Array(vec![Reply::Int(-1)]),
                    Reply::Map(vec![(Reply::NilArray, Reply::err("ERR x"))]),
                ),
            ]),
        ]
    }

    /// `depth` Arrays nested inside each other around an `Int`.
    fn nested(depth: usize) -> Reply {
        let mut r = Reply::Int(7);
        for _ in 0..depth {
            r = Reply::Array(vec![r]);
        }
        r
    }

    #[test]
    fn round_trips_every_request_variant() {
        for r in request_samples() {
            let enc = enc_req(&r);
            assert_eq!(enc[0], VERSION);
            assert_eq!(decode_request(&enc), Ok(r));
        }
    }

    #[test]
    fn round_trips_every_reply_variant() {
        for r in reply_samples() {
            let enc = enc_reply(&r);
            assert_eq!(enc[0], VERSION);
            assert_eq!(decode_reply(&enc), Ok(r));
        }
    }

    #[test]
    fn encoders_append_to_out() {
        let mut out = vec![0xAA];
        encode_reply(&Reply::Ok, &mut out);
        encode_request(&Request::Read(ReadOp::DbSize), &mut out);
        assert_eq!(
            out,
            [0xAA, VERSION, P_OK, VERSION, K_READ, R_DBSIZE].to_vec()
        );
    }

    #[test]
    fn write_body_matches_log_codec() {
        // A forwarded write is the log entry's op encoding, minus the version and timestamp.
        for op in write_samples() {
            let log = crate::ops::LogCommand {
                now_ms: 0,
                op: op.clone(),
            }
            .encode();
            // log = [version, now_ms = 0 (one byte), op...]
            let mut fwd = vec![VERSION, K_WRITE];
            fwd.extend_from_slice(&log[2..]);
            assert_eq!(fwd, enc_req(&Request::Write(op.clone())));
            assert_eq!(decode_request(&fwd), Ok(Request::Write(op)));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for r in request_samples() {
            let enc = enc_req(&r);
            for cut in 0..enc.len() {
                assert!(decode_request(&enc[..cut]).is_err(), "{r:?} cut at {cut}");
            }
        }
        for r in reply_samples() {
            let enc = enc_reply(&r);
            for cut in 0..enc.len() {
                assert!(decode_reply(&enc[..cut]).is_err(), "{r:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut enc = enc_req(&Request::Read(ReadOp::DbSize));
        enc.push(0);
        assert!(decode_request(&enc).unwrap_err().0.contains("trailing"));
        let mut enc = enc_reply(&Reply::Ok);
        enc.push(P_OK);
        assert!(decode_reply(&enc).unwrap_err().0.contains("trailing"));
    }

    #[test]
    fn rejects_unknown_version_kind_and_tags() {
        assert!(decode_request(&[]).is_err());
        assert!(decode_reply(&[]).is_err());
        assert!(decode_request(&[2, K_READ, R_DBSIZE]).is_err());
        assert!(decode_reply(&[0, P_OK]).is_err());
        assert!(decode_request(&[VERSION, 3, R_DBSIZE]).is_err());
        assert!(decode_request(&[VERSION, K_READ, 0]).is_err());
        assert!(decode_request(&[VERSION, K_READ, 11]).is_err());
        assert!(decode_request(&[VERSION, K_WRITE, 200]).is_err());
        assert!(decode_reply(&[VERSION, 0]).is_err());
        assert!(decode_reply(&[VERSION, 10]).is_err());
        // Bad bool in TTL and bad option flag in SCAN.
        assert!(decode_request(&[VERSION, K_READ, R_TTL, 1, b'k', 2]).is_err());
        assert!(decode_request(&[VERSION, K_READ, R_SCAN, 0, 2, 10, 0]).is_err());
        assert!(decode_request(&[VERSION, K_READ, R_SCAN, 0, 0, 10, 0]).is_ok());
    }

    #[test]
    fn rejects_overlong_varints_and_huge_counts() {
        // Int with an 11-byte varint, with bits beyond 64, and not in shortest form.
        let mut v = vec![VERSION, P_INT];
        v.extend_from_slice(&[0xff; 11]);
        assert!(decode_reply(&v).is_err());
        let mut v = vec![VERSION, P_INT];
        v.extend_from_slice(&[0xff; 9]);
        v.push(0x02);
        assert!(decode_reply(&v).is_err());
        assert!(decode_reply(&[VERSION, P_INT, 0x80, 0x00]).is_err());
        // Counts of 2^63 with no items: must fail before allocating.
        for tag in [P_ARRAY, P_MAP] {
            let mut e = Enc::with_capacity(16);
            e.u8(VERSION);
            e.u8(tag);
            e.varint(1 << 63);
            assert!(decode_reply(e.as_slice()).is_err());
        }
        let mut e = Enc::with_capacity(16);
        e.u8(VERSION);
        e.u8(K_READ);
        e.u8(R_MGET);
        e.varint(u64::MAX);
        assert!(decode_request(e.as_slice()).is_err());
        // A map needs two bytes per pair: 2 pairs in 3 bytes is rejected up front.
        assert!(decode_reply(&[VERSION, P_MAP, 2, P_OK, P_OK, P_OK]).is_err());
    }

    #[test]
    fn nesting_depth_is_bounded() {
        let ok = nested(MAX_REPLY_DEPTH);
        assert_eq!(decode_reply(&enc_reply(&ok)), Ok(ok));
        let err = decode_reply(&enc_reply(&nested(MAX_REPLY_DEPTH + 1))).unwrap_err();
        assert!(err.0.contains("nested"), "{err}");
        // Maps count too, in key position as well as value position.
        let mut deep_map = Reply::Nil;
        for _ in 0..=MAX_REPLY_DEPTH {
            deep_map = Reply::Map(vec![(deep_map, Reply::Ok)]);
        }
        assert!(decode_reply(&enc_reply(&deep_map)).is_err());
        // A hostile run of a million "array of 1" headers fails without exhausting the stack.
        let mut v = vec![VERSION];
        for _ in 0..1_000_000 {
            v.extend_from_slice(&[P_ARRAY, 1]);
        }
        v.push(P_OK);
        assert!(decode_reply(&v).unwrap_err().0.contains("nested"));
    }

    fn arb_read() -> impl Strategy<Value = ReadOp> {
        let keys = proptest::collection::vec(arb_bytes(), 0..4);
        prop_oneof![
            arb_bytes().prop_map(|key| ReadOp::Get { key }),
            keys.clone().prop_map(|keys| ReadOp::MGet { keys }),
            keys.prop_map(|keys| ReadOp::Exists { keys }),
            (arb_bytes(), any::<bool>()).prop_map(|(key, ms)| ReadOp::Ttl { key, ms }),
            arb_bytes().prop_map(|key| ReadOp::Type { key }),
            arb_bytes().prop_map(|key| ReadOp::Strlen { key }),
            (arb_bytes(), any::<i64>(), any::<i64>())
                .prop_map(|(key, start, end)| ReadOp::GetRange { key, start, end }),
            arb_bytes().prop_map(|pattern| ReadOp::Keys { pattern }),
            (
                any::<u64>(),
                proptest::option::of(arb_bytes()),
                any::<usize>(),
                proptest::option::of(arb_bytes())
            )
                .prop_map(|(cursor, pattern, count, type_filter)| ReadOp::Scan {
                    cursor,
                    pattern,
                    count,
                    type_filter
                }),
            Just(ReadOp::DbSize),
        ]
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        let leaf = prop_oneof![
            Just(Reply::Ok),
            arb_bytes().prop_map(Reply::Status),
            arb_bytes().prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Int),
            arb_bytes().prop_map(Reply::Bulk),
            Just(Reply::Nil),
            Just(Reply::NilArray),
        ];
        // Depth up to 6 (well inside MAX_REPLY_DEPTH), at most ~64 nodes, up to 5 per level.
        leaf.prop_recursive(6, 64, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Reply::Array),
                proptest::collection::vec((inner.clone(), inner), 0..5).prop_map(Reply::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn prop_read_round_trip(op in arb_read()) {
            let r = Request::Read(op);
            prop_assert_eq!(decode_request(&enc_req(&r)), Ok(r));
        }

        #[test]
        fn prop_write_round_trip(op in arb_write_op()) {
            let r = Request::Write(op);
            prop_assert_eq!(decode_request(&enc_req(&r)), Ok(r));
        }

        #[test]
        fn prop_reply_round_trip(r in arb_reply()) {
            prop_assert_eq!(decode_reply(&enc_reply(&r)), Ok(r));
        }

        #[test]
        fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Any outcome but a panic is fine; a successful decode must re-encode to the same
            // bytes (one encoding per value).
            if let Ok(r) = decode_request(&data) {
                prop_assert_eq!(enc_req(&r), data.clone());
            }
            if let Ok(r) = decode_reply(&data) {
                prop_assert_eq!(enc_reply(&r), data);
            }
        }

        #[test]
        fn prop_garbage_after_header_never_panics(
            kind in 0u8..4,
            tag in 0u8..16,
            rest in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            // Random bytes rarely start with a valid version + tag; this reaches the field
            // decoders of every variant.
            let mut data = vec![VERSION, kind, tag];
            data.extend_from_slice(&rest);
            if let Ok(r) = decode_request(&data) {
                prop_assert_eq!(enc_req(&r), data.clone());
            }
            let mut reply_data = vec![VERSION, tag];
            reply_data.extend_from_slice(&rest);
            if let Ok(r) = decode_reply(&reply_data) {
                prop_assert_eq!(enc_reply(&r), reply_data);
            }
        }
    }
}
