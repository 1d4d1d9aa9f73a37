//! The applied state of one shard group: Redis' string keyspace.
//!
//! [`KvState::apply`] executes committed writes deterministically (time comes only from the
//! log entry, never from a clock), [`KvState::read`] answers reads without mutating anything.
//!
//! Expiry: a key whose expiry time is `<= now` is absent for every operation. Writes remove
//! such a key when they touch it; reads just do not see it; the leader removes the rest through
//! [`KvState::expired_keys`] and `WriteOp::DeleteExpired`. (Redis keeps a key alive while
//! `now == expiry`; here that instant already counts as expired, consistently everywhere.)
//!
//! Three structures share each key's `Bytes` (reference-counted, not copied):
//! - `map`: key -> entry (value and optional expiry), the source of truth;
//! - `order`: `(scan position, key)` for every key, giving KEYS and SCAN a stable order;
//! - `expires`: `(expiry ms, key)` for every key with an expiry, oldest first.
//!
//! Invariant (kept by [`KvState::store`], [`KvState::set_expire`], [`KvState::remove`] and
//! [`KvState::flush`], the only functions that mutate the three): `order` holds exactly the keys
//! of `map`, and `expires` holds `(t, k)` exactly when `map[k].expire_at == Some(t)`.
//!
//! The three are persistent structures (`imbl`: a hash array mapped trie and two B-trees whose
//! nodes are shared through `Arc`s): `clone()` is O(1) and gives an independent point-in-time
//! copy; a later write copies only the O(log n) nodes on its path that the copy still shares.
//! That is how a snapshot is taken without stalling the core: copy at the applied index, then
//! serialise the copy elsewhere ([`KvState::snapshot`] on another thread). `KvState` is `Send`.

mod apply;
mod float;
mod num;
mod read;
mod snapshot;
#[cfg(test)]
mod tests;

use std::ops::Bound;

use bytes::Bytes;
use imbl::{HashMap, OrdSet};

use crate::ops::{LogCommand, ReadOp};
use crate::reply::Reply;

pub use float::parse_float_arg;
pub use num::parse_i64;

/// Redis' default `proto-max-bulk-len` (512 MiB): the longest string APPEND/SETRANGE may build.
pub const MAX_STRING_LEN: u64 = 512 * 1024 * 1024;

/// Scan positions use the top 52 bits of the key hash, leaving room in a 64-bit cursor for
/// the router to add a group number.
/// 50 bits leave 14 bits of a SCAN cursor for the group index (up to 16384 groups).
pub const SCAN_POSITION_BITS: u32 = 50;

/// A stored value. Only strings exist today; the enum keeps other types (and the WRONGTYPE
/// error) expressible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Bytes),
}

impl Value {
    /// Redis' type name (TYPE and SCAN TYPE).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }

    /// The string, or the WRONGTYPE error for any other type.
    fn as_str(&self) -> Result<&Bytes, Reply> {
        match self {
            Value::Str(s) => Ok(s),
        }
    }
}

/// `WRONGTYPE Operation against a key holding the wrong kind of value`.
pub fn wrong_type() -> Reply {
    Reply::err("WRONGTYPE Operation against a key holding the wrong kind of value")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: Value,
    /// Unix ms at which the key stops existing.
    expire_at: Option<u64>,
}

impl Entry {
    fn live_at(&self, now: u64) -> bool {
        !matches!(self.expire_at, Some(t) if t <= now)
    }
}

/// One shard group's keyspace. Two states that applied the same log compare equal.
/// `clone()` is O(1) (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvState {
    map: HashMap<Bytes, Entry>,
    order: OrdSet<(u64, Bytes)>,
    expires: OrdSet<(u64, Bytes)>,
    /// The largest `now_ms` applied so far; apply time never goes backwards.
    last_now_ms: u64,
}

/// Stable 64-bit hash of a key: FNV-1a followed by the murmur3 finalizer (FNV alone mixes the
/// last bytes poorly into the high bits that scan positions use). Fixed forever: SCAN cursors
/// handed out by one replica or version must mean the same on every other.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = fnv1a(key);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// 64-bit FNV-1a.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A key's SCAN position: the top [`SCAN_POSITION_BITS`] bits of [`key_hash`].
pub fn scan_position(key: &[u8]) -> u64 {
    key_hash(key) >> (64 - SCAN_POSITION_BITS)
}

type IndexRange = (Bound<(u64, Bytes)>, Bound<(u64, Bytes)>);

/// Range bound selecting every `(t, key)` with `t <= now` in an index ordered by `(t, key)`.
fn up_to(now: u64) -> IndexRange {
    match now.checked_add(1) {
        Some(next) => (Bound::Unbounded, Bound::Excluded((next, Bytes::new()))),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// A snapshot copy moves to another thread to be serialised.
const _: () = {
    const fn send<T: Send>() {}
    send::<KvState>()
};

impl KvState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one committed write. Deterministic: the result depends only on the state and
    /// `cmd` (time is `max(cmd.now_ms, last applied now_ms)`).
    pub fn apply(&mut self, cmd: &LogCommand) -> Reply {
        let now = cmd.now_ms.max(self.last_now_ms);
        self.last_now_ms = now;
        self.apply_op(&cmd.op, now)
    }

    /// Answers a read at `now_ms` without changing anything; keys expired at `now_ms` are
    /// invisible.
    pub fn read(&self, op: &ReadOp, now_ms: u64) -> Reply {
        self.read_op(op, now_ms)
    }

    /// Up to `limit` keys whose expiry is `<= now_ms`, earliest expiry first: candidates for a
    /// `DeleteExpired` proposal. O(limit log n).
    pub fn expired_keys(&self, now_ms: u64, limit: usize) -> Vec<Bytes> {
        self.expires
            .range(up_to(now_ms))
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Keys stored, including expired ones not yet removed.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys alive at `now_ms` (DBSIZE). O(expired-but-not-yet-removed keys), which active
    /// expiry keeps small.
    pub fn live_len(&self, now_ms: u64) -> usize {
        self.map.len() - self.expires.range(up_to(now_ms)).count()
    }

    /// Keys with an expiry set (expired or not).
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// The largest `now_ms` applied so far.
    pub fn last_now_ms(&self) -> u64 {
        self.last_now_ms
    }

    /// The entry for `key` if it is alive at `now`.
    fn live(&self, key: &[u8], now: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.live_at(now))
    }

    /// Write-side lookup: removes `key` if it expired at `now`, then returns it if present.
    fn touch(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        if self.map.get(key).is_some_and(|e| !e.live_at(now)) {
            self.remove(key);
        }
        self.map.get(key)
    }

    /// Inserts or overwrites `key` with `value` and expiry `expire_at`. O(log n).
    fn store(&mut self, key: &Bytes, value: Value, expire_at: Option<u64>) {
        // Reuse the stored key so the three structures keep sharing one allocation.
        let stored = self.map.get_key_value(key).map(|(k, _)| k.clone());
        let key = match stored {
            Some(k) => {
                self.set_expire(&k, expire_at);
                if let Some(e) = self.map.get_mut(&k) {
                    e.value = value;
                }
                return;
            }
            None => key.clone(),
        };
        self.order.insert((scan_position(&key), key.clone()));
        if let Some(t) = expire_at {
            self.expires.insert((t, key.clone()));
        }
        self.map.insert(key, Entry { value, expire_at });
    }

    /// Changes the expiry of an existing key (no-op for a missing key). O(log n).
    fn set_expire(&mut self, key: &[u8], expire_at: Option<u64>) {
        let Some((k, e)) = self.map.get_key_value(key) else {
            return;
        };
        if e.expire_at == expire_at {
            return;
        }
        let k = k.clone();
        if let Some(old) = e.expire_at {
            self.expires.remove(&(old, k.clone()));
        }
        if let Some(t) = expire_at {
            self.expires.insert((t, k.clone()));
        }
        if let Some(e) = self.map.get_mut(&k) {
            e.expire_at = expire_at;
        }
    }

    /// Removes `key` from all structures. O(log n).
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let (k, e) = self.map.remove_with_key(key)?;
        self.order.remove(&(scan_position(&k), k.clone()));
        if let Some(t) = e.expire_at {
            self.expires.remove(&(t, k));
        }
        Some(e)
    }

    fn flush(&mut self) {
        self.map.clear();
        self.order.clear();
        self.expires.clear();
    }
}
