//! The operations a shard group executes. Writes travel through the Raft log (encoded with
//! [`WriteOp::encode`]); reads run against the applied state.
//!
//! Determinism: a write never reads a clock. The proposer stamps each entry with its wall-clock
//! `now_ms` (see [`LogCommand`]); relative expiries are resolved against that stamp at apply time, so
//! every replica computes the same state from the same log.

use bytes::Bytes;

/// When a key set by a write expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireSpec {
    /// Milliseconds after the entry's `now_ms` (EX / PX; already converted to ms).
    In(u64),
    /// Absolute Unix time in milliseconds (EXAT / PXAT).
    At(u64),
    /// Keep the key's current TTL (KEEPTTL).
    Keep,
}

/// SET's existence condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCond {
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if the key exists.
    IfPresent,
}

/// EXPIRE family condition (Redis 7: NX | XX | GT | LT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireCond {
    Always,
    /// NX: only if the key has no expiry.
    IfNoTtl,
    /// XX: only if the key has an expiry.
    IfTtl,
    /// GT: only if the new expiry is greater than the current one (no TTL counts as infinite).
    Greater,
    /// LT: only if the new expiry is less than the current one (no TTL counts as infinite).
    Less,
    /// XX and LT together: only if the key has an expiry and the new one is less than it.
    /// (XX GT needs no variant: GT already fails on a key without expiry.)
    IfTtlLess,
}

/// A state-changing operation on one shard group. Every key in one `WriteOp` belongs to the
/// same group.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// SET and its variants (SETNX, SETEX, PSETEX, GETSET are expressed through it).
    /// Reply: `+OK`, or Nil when the condition failed; with `get`, the old value (Bulk/Nil).
    Set {
        key: Bytes,
        value: Bytes,
        cond: SetCond,
        /// None: remove any TTL (plain SET).
        expire: Option<ExpireSpec>,
        /// SET ... GET / GETSET: reply with the old value.
        get: bool,
    },
    /// SETNX reply semantics: Int(1) when set, Int(0) when the key existed.
    SetNx { key: Bytes, value: Bytes },
    /// GETDEL: reply old value or Nil.
    GetDel { key: Bytes },
    /// MSET part for one group: always `+OK`.
    MSet { pairs: Vec<(Bytes, Bytes)> },
    /// MSETNX (all keys in one slot): Int(1) if all were set, Int(0) if any existed.
    MSetNx { pairs: Vec<(Bytes, Bytes)> },
    /// DEL / UNLINK part: Int(number removed).
    Del { keys: Vec<Bytes> },
    /// INCR/DECR/INCRBY/DECRBY: Int(new value) or an error.
    IncrBy { key: Bytes, delta: i64 },
    /// INCRBYFLOAT: Bulk(new value formatted like Redis) or an error.
    IncrByFloat { key: Bytes, delta: f64 },
    /// APPEND: Int(new length).
    Append { key: Bytes, value: Bytes },
    /// SETRANGE: Int(new length).
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT: Int(1) if the timeout was set, Int(0) if not.
    /// A time at or before `now_ms` deletes the key (Int(1) if it existed).
    Expire {
        key: Bytes,
        at: ExpireSpec,
        cond: ExpireCond,
    },
    /// PERSIST: Int(1) if a TTL was removed.
    Persist { key: Bytes },
    /// FLUSHALL part: `+OK`.
    FlushAll,
    /// Active expiry decided by the leader: delete each key whose expiry is <= the entry's
    /// `now_ms` *at apply time* (a key re-set meanwhile survives). Reply: Int(deleted).
    DeleteExpired { keys: Vec<Bytes> },
}

/// A read of one shard group's applied state.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOp {
    /// Bulk or Nil.
    Get { key: Bytes },
    /// Array of Bulk/Nil, in key order.
    MGet { keys: Vec<Bytes> },
    /// Int(count of existing keys, duplicates counted).
    Exists { keys: Vec<Bytes> },
    /// TTL (`ms == false`, seconds rounded like Redis) or PTTL: -2 missing, -1 no TTL.
    Ttl { key: Bytes, ms: bool },
    /// Status `string` or `none`.
    Type { key: Bytes },
    /// Int(length).
    Strlen { key: Bytes },
    /// GETRANGE with Redis' negative-index semantics: Bulk (possibly empty).
    GetRange { key: Bytes, start: i64, end: i64 },
    /// Array of Bulk keys matching a Redis glob pattern.
    Keys { pattern: Bytes },
    /// One SCAN step inside this group. `cursor` is the group-local position (0 = start).
    /// Reply: Array[Int(next group-local cursor, 0 when this group is exhausted), Array[keys]].
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: usize,
        type_filter: Option<Bytes>,
    },
    /// Int(number of live keys).
    DbSize,
}

/// What is stored in a Raft entry's data: a write stamped with the proposer's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCommand {
    /// Proposer's wall clock, Unix ms. Apply uses `max(now_ms, last applied now_ms)`.
    pub now_ms: u64,
    pub op: WriteOp,
}

/// Decoding a log entry failed: the entry is not a command this version understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot decode log command: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl WriteOp {
    /// The keys this operation touches, in argument order (duplicates kept). Empty for
    /// FLUSHALL.
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            WriteOp::Set { key, .. }
            | WriteOp::SetNx { key, .. }
            | WriteOp::GetDel { key }
            | WriteOp::IncrBy { key, .. }
            | WriteOp::IncrByFloat { key, .. }
            | WriteOp::Append { key, .. }
            | WriteOp::SetRange { key, .. }
            | WriteOp::Expire { key, .. }
            | WriteOp::Persist { key } => vec![key],
            WriteOp::MSet { pairs } | WriteOp::MSetNx { pairs } => {
                pairs.iter().map(|(k, _)| k).collect()
            }
            WriteOp::Del { keys } | WriteOp::DeleteExpired { keys } => keys.iter().collect(),
            WriteOp::FlushAll => Vec::new(),
        }
    }

    /// Lower-case command family name, for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            WriteOp::Set { .. } => "set",
            WriteOp::SetNx { .. } => "setnx",
            WriteOp::GetDel { .. } => "getdel",
            WriteOp::MSet { .. } => "mset",
            WriteOp::MSetNx { .. } => "msetnx",
            WriteOp::Del { .. } => "del",
            WriteOp::IncrBy { .. } => "incrby",
            WriteOp::IncrByFloat { .. } => "incrbyfloat",
            WriteOp::Append { .. } => "append",
            WriteOp::SetRange { .. } => "setrange",
            WriteOp::Expire { .. } => "expire",
            WriteOp::Persist { .. } => "persist",
            WriteOp::FlushAll => "flushall",
            WriteOp::DeleteExpired { .. } => "delete_expired",
        }
    }
}

impl ReadOp {
    /// The keys this read touches, in argument order (duplicates kept). Empty for KEYS, SCAN
    /// and DBSIZE.
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            ReadOp::Get { key }
            | ReadOp::Ttl { key, .. }
            | ReadOp::Type { key }
            | ReadOp::Strlen { key }
            | ReadOp::GetRange { key, .. } => vec![key],
            ReadOp::MGet { keys } | ReadOp::Exists { keys } => keys.iter().collect(),
            ReadOp::Keys { .. } | ReadOp::Scan { .. } | ReadOp::DbSize => Vec::new(),
        }
    }

    /// Lower-case command family name, for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            ReadOp::Get { .. } => "get",
            ReadOp::MGet { .. } => "mget",
            ReadOp::Exists { .. } => "exists",
            ReadOp::Ttl { ms: false, .. } => "ttl",
            ReadOp::Ttl { ms: true, .. } => "pttl",
            ReadOp::Type { .. } => "type",
            ReadOp::Strlen { .. } => "strlen",
            ReadOp::GetRange { .. } => "getrange",
            ReadOp::Keys { .. } => "keys",
            ReadOp::Scan { .. } => "scan",
            ReadOp::DbSize => "dbsize",
        }
    }
}
