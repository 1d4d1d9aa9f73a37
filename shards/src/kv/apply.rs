//! Write operations. Each op's reply contract is documented on [`WriteOp`]; the semantics
//! follow Redis 7 (`t_string.c`, `expire.c`, `db.c`). Complexity is O(log n) per key touched
//! (the ordered indexes) unless noted.

use bytes::Bytes;

use super::float::{ld_from_f64, parse_ld, Ld, F80};
use super::num::parse_i64;
use super::{KvState, Value, MAX_STRING_LEN};
use crate::ops::{ExpireCond, ExpireSpec, SetCond, WriteOp};
use crate::reply::Reply;

/// A live string value and its expiry.
type StringAt = (Bytes, Option<u64>);

/// `now + ms` as an absolute expiry, or None when it leaves Redis' range (`i64` ms).
fn deadline(now: u64, ms: u64) -> Option<u64> {
    now.checked_add(ms).filter(|&t| t <= i64::MAX as u64)
}

fn invalid_expire(cmd: &str) -> Reply {
    Reply::err(format!("ERR invalid expire time in '{cmd}' command"))
}

fn too_long() -> Reply {
    Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

fn bulk_or_nil(v: Option<Bytes>) -> Reply {
    v.map_or(Reply::Nil, Reply::Bulk)
}

/// End offset of writing `len` bytes at `offset`, if within [`MAX_STRING_LEN`].
pub(super) fn checked_end(offset: u64, len: usize) -> Option<usize> {
    offset
        .checked_add(len as u64)
        .filter(|&t| t <= MAX_STRING_LEN)
        .and_then(|t| usize::try_from(t).ok())
}

impl KvState {
    pub(super) fn apply_op(&mut self, op: &WriteOp, now: u64) -> Reply {
        match op {
            WriteOp::Set {
                key,
                value,
                cond,
                expire,
                get,
            } => self.set(key, value, *cond, *expire, *get, now),
            WriteOp::SetNx { key, value } => {
                if self.touch(key, now).is_some() {
                    Reply::Int(0)
                } else {
                    self.store(key, Value::Str(value.clone()), None);
                    Reply::Int(1)
                }
            }
            WriteOp::GetDel { key } => self.getdel(key, now),
            WriteOp::MSet { pairs } => {
                // store() overwrites value and expiry, so expired keys need no touch here.
                for (k, v) in pairs {
                    self.store(k, Value::Str(v.clone()), None);
                }
                Reply::Ok
            }
            WriteOp::MSetNx { pairs } => {
                let mut exists = false;
                for (k, _) in pairs {
                    exists |= self.touch(k, now).is_some();
                }
                if exists {
                    return Reply::Int(0);
                }
                for (k, v) in pairs {
                    self.store(k, Value::Str(v.clone()), None);
                }
                Reply::Int(1)
            }
            WriteOp::Del { keys } => {
                let mut n = 0;
                for k in keys {
                    if self.touch(k, now).is_some() {
                        self.remove(k);
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            WriteOp::IncrBy { key, delta } => self.incr_by(key, *delta, now),
            WriteOp::IncrByFloat { key, delta } => self.incr_by_float(key, *delta, now),
            WriteOp::Append { key, value } => self.append(key, value, now),
            WriteOp::SetRange { key, offset, value } => self.set_range(key, *offset, value, now),
            WriteOp::Expire { key, at, cond } => self.expire(key, *at, *cond, now),
            WriteOp::Persist { key } => match self.touch(key, now) {
                Some(e) if e.expire_at.is_some() => {
                    self.set_expire(key, None);
                    Reply::Int(1)
                }
                _ => Reply::Int(0),
            },
            WriteOp::FlushAll => {
                self.flush();
                Reply::Ok
            }
            WriteOp::DeleteExpired { keys } => {
                // Re-checked at apply time: a key re-set with a later (or no) expiry after the
                // leader picked it survives.
                let mut n = 0;
                for k in keys {
                    if self.map.get(k).is_some_and(|e| !e.live_at(now)) {
                        self.remove(k);
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
        }
    }

    /// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL].
    fn set(
        &mut self,
        key: &Bytes,
        value: &Bytes,
        cond: SetCond,
        expire: Option<ExpireSpec>,
        get: bool,
        now: u64,
    ) -> Reply {
        // Redis validates the expiry before looking at the key.
        let new_expire = match expire {
            Some(ExpireSpec::In(ms)) => match deadline(now, ms) {
                Some(t) => Some(t),
                None => return invalid_expire("set"),
            },
            Some(ExpireSpec::At(t)) => Some(t),
            Some(ExpireSpec::Keep) | None => None,
        };
        let (found, old_expire, old_value) = match self.touch(key, now) {
            None => (false, None, None),
            Some(e) => {
                let old = if get {
                    match e.value.as_str() {
                        Ok(s) => Some(s.clone()),
                        Err(r) => return r,
                    }
                } else {
                    None
                };
                (true, e.expire_at, old)
            }
        };
        let blocked = match cond {
            SetCond::Always => false,
            SetCond::IfAbsent => found,
            SetCond::IfPresent => !found,
        };
        if !blocked {
            let expire_at = match expire {
                Some(ExpireSpec::Keep) => old_expire,
                _ => new_expire,
            };
            match expire_at {
                // EXAT/PXAT in the past: the key is set and immediately gone.
                Some(t) if t <= now => {
                    self.remove(key);
                }
                _ => self.store(key, Value::Str(value.clone()), expire_at),
            }
        }
        match (get, blocked) {
            (true, _) => bulk_or_nil(old_value),
            (false, true) => Reply::Nil,
            (false, false) => Reply::Ok,
        }
    }

    fn getdel(&mut self, key: &Bytes, now: u64) -> Reply {
        let v = match self.touch(key, now) {
            None => return Reply::Nil,
            Some(e) => match e.value.as_str() {
                Ok(s) => s.clone(),
                Err(r) => return r,
            },
        };
        self.remove(key);
        Reply::Bulk(v)
    }

    /// The live string at `key` and its expiry; Ok(None) when absent.
    fn string_at(&mut self, key: &Bytes, now: u64) -> Result<Option<StringAt>, Reply> {
        match self.touch(key, now) {
            None => Ok(None),
            Some(e) => Ok(Some((e.value.as_str()?.clone(), e.expire_at))),
        }
    }

    /// INCR/DECR/INCRBY/DECRBY. The TTL is kept.
    fn incr_by(&mut self, key: &Bytes, delta: i64, now: u64) -> Reply {
        let (cur, ttl) = match self.string_at(key, now) {
            Err(r) => return r,
            Ok(None) => (0, None),
            Ok(Some((s, ttl))) => match parse_i64(&s) {
                Some(v) => (v, ttl),
                None => return Reply::not_integer(),
            },
        };
        let Some(new) = cur.checked_add(delta) else {
            return Reply::err("ERR increment or decrement would overflow");
        };
        self.store(key, Value::Str(Bytes::from(new.to_string())), ttl);
        Reply::Int(new)
    }

    /// INCRBYFLOAT in emulated x87 long double (see `float.rs`). The TTL is kept.
    /// O(digits^2) in the length of the stored number (at most ~5 kB).
    fn incr_by_float(&mut self, key: &Bytes, delta: f64, now: u64) -> Reply {
        let not_float = || Reply::err("ERR value is not a valid float");
        let (cur, ttl) = match self.string_at(key, now) {
            Err(r) => return r,
            Ok(None) => (Ld::Finite(F80::ZERO), None),
            Ok(Some((s, ttl))) => match parse_ld(&s) {
                Some(v) => (v, ttl),
                None => return not_float(),
            },
        };
        let Some(incr) = ld_from_f64(delta) else {
            return not_float();
        };
        let sum = match (cur, incr) {
            (Ld::Finite(a), Ld::Finite(b)) => F80::add(a, b),
            _ => None,
        };
        let Some(sum) = sum else {
            return Reply::err("ERR increment would produce NaN or Infinity");
        };
        let text = Bytes::from(sum.format_human());
        self.store(key, Value::Str(text.clone()), ttl);
        Reply::Bulk(text)
    }

    /// APPEND. Amortised O(appended bytes) when nobody else holds the old value (it is
    /// extended in place), O(new length) otherwise. The TTL is kept.
    fn append(&mut self, key: &Bytes, value: &Bytes, now: u64) -> Reply {
        let (old, ttl) = match self.string_at(key, now) {
            Err(r) => return r,
            Ok(None) => {
                self.store(key, Value::Str(value.clone()), None);
                return Reply::Int(value.len() as i64);
            }
            Ok(Some(v)) => v,
        };
        if checked_end(old.len() as u64, value.len()).is_none() {
            return too_long();
        }
        drop(old);
        let new = self.edit_string(key, |buf| buf.extend_from_slice(value));
        let len = new.len();
        self.store(key, Value::Str(new), ttl);
        Reply::Int(len as i64)
    }

    /// SETRANGE: zero-pads up to `offset`. O(new length) for a new or shared value, else
    /// O(value bytes + padding). The TTL is kept.
    fn set_range(&mut self, key: &Bytes, offset: u64, value: &Bytes, now: u64) -> Reply {
        // Only the length is kept, so the buffer is unshared again for edit_string.
        let (old_len, ttl) = match self.string_at(key, now) {
            Err(r) => return r,
            Ok(None) => (None, None),
            Ok(Some((s, ttl))) => (Some(s.len()), ttl),
        };
        if value.is_empty() {
            // Redis answers the current length (0 when missing) and creates nothing.
            return Reply::Int(old_len.unwrap_or(0) as i64);
        }
        let Some(end) = checked_end(offset, value.len()) else {
            return too_long();
        };
        // `end <= MAX_STRING_LEN`, so `offset` fits in usize.
        let start = end - value.len();
        let new = self.edit_string(key, |buf| {
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[start..end].copy_from_slice(value);
        });
        let len = new.len();
        self.store(key, Value::Str(new), ttl);
        Reply::Int(len as i64)
    }

    /// Takes the string stored at `key` (empty if none), lets `f` change it and returns the
    /// result. The stored value is left empty until the caller stores the result. Reuses the
    /// buffer when it is not shared (e.g. by an in-flight GET reply), copying otherwise.
    fn edit_string(&mut self, key: &Bytes, f: impl FnOnce(&mut bytes::BytesMut)) -> Bytes {
        let old = match self.map.get_mut(key).map(|e| &mut e.value) {
            Some(Value::Str(s)) => std::mem::take(s),
            None => Bytes::new(),
        };
        let mut buf = old.try_into_mut().unwrap_or_else(|shared| {
            let mut m = bytes::BytesMut::with_capacity(shared.len() * 2);
            m.extend_from_slice(&shared);
            m
        });
        f(&mut buf);
        buf.freeze()
    }

    /// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with NX/XX/GT/LT (no TTL counts as infinite).
    fn expire(&mut self, key: &Bytes, at: ExpireSpec, cond: ExpireCond, now: u64) -> Reply {
        let when = match at {
            ExpireSpec::In(ms) => match deadline(now, ms) {
                Some(t) => t,
                None => return invalid_expire("expire"),
            },
            ExpireSpec::At(t) => t,
            // Not produced by the parser; a log entry carrying it is refused, deterministically.
            ExpireSpec::Keep => return Reply::syntax(),
        };
        let cur = match self.touch(key, now) {
            None => return Reply::Int(0),
            Some(e) => e.expire_at,
        };
        let allowed = match cond {
            ExpireCond::Always => true,
            ExpireCond::IfNoTtl => cur.is_none(),
            ExpireCond::IfTtl => cur.is_some(),
            ExpireCond::Greater => matches!(cur, Some(c) if when > c),
            ExpireCond::Less => !matches!(cur, Some(c) if when >= c),
            ExpireCond::IfTtlLess => matches!(cur, Some(c) if when < c),
        };
        if !allowed {
            return Reply::Int(0);
        }
        if when <= now {
            self.remove(key);
        } else {
            self.set_expire(key, Some(when));
        }
        Reply::Int(1)
    }
}
