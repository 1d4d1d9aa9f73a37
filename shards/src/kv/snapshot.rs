//! Snapshot encoding of a [`KvState`].
//!
//! Layout (version 1): `version: u8`, `last_now_ms: varint`, `count: varint`, then `count`
//! entries in scan order (`key: bytes`, `type: u8` (0 = string), `value: bytes`,
//! `has_expiry: u8`, [`expire_at: varint`]), then an 8-byte little-endian FNV-1a checksum of
//! everything before it. Varints and byte strings as in [`crate::codec`]. Equal states give
//! identical bytes. Expired-but-present keys are kept: the snapshot is the applied state, and
//! the log that follows it may still reference them (e.g. `DeleteExpired`).

use super::{fnv1a, KvState, Value};
use crate::codec::{Dec, Enc};
use crate::ops::DecodeError;

const VERSION: u8 = 1;
const TYPE_STRING: u8 = 0;
const CHECKSUM_LEN: usize = 8;

impl KvState {
    /// Serialises the whole state. O(total size).
    pub fn snapshot(&self) -> Vec<u8> {
        let size: usize = self
            .map
            .iter()
            .map(|(k, e)| {
                k.len()
                    + 24
                    + match &e.value {
                        Value::Str(s) => s.len(),
                    }
            })
            .sum();
        let mut enc = Enc::with_capacity(size + 32);
        enc.u8(VERSION);
        enc.varint(self.last_now_ms);
        enc.varint(self.map.len() as u64);
        for (_, k) in &self.order {
            // `order` and `map` hold the same keys (module invariant).
            let Some(e) = self.map.get(k) else { continue };
            enc.bytes(k);
            match &e.value {
                Value::Str(s) => {
                    enc.u8(TYPE_STRING);
                    enc.bytes(s);
                }
            }
            match e.expire_at {
                None => enc.u8(0),
                Some(t) => {
                    enc.u8(1);
                    enc.varint(t);
                }
            }
        }
        let sum = fnv1a(enc.as_slice());
        enc.raw(&sum.to_le_bytes());
        enc.into_vec()
    }

    /// Rebuilds a state from [`KvState::snapshot`] output. Corrupt, truncated or unknown-version
    /// input gives an error. O(total size + n log n).
    pub fn restore(bytes: &[u8]) -> Result<KvState, DecodeError> {
        if bytes.len() < 1 + CHECKSUM_LEN {
            return Err(DecodeError("snapshot too short".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let mut want = [0u8; CHECKSUM_LEN];
        want.copy_from_slice(sum);
        if fnv1a(body) != u64::from_le_bytes(want) {
            return Err(DecodeError("snapshot checksum mismatch".into()));
        }
        let mut d = Dec::new(body);
        let version = d.u8()?;
        if version != VERSION {
            return Err(DecodeError(format!("unknown snapshot version {version}")));
        }
        let mut state = KvState {
            last_now_ms: d.varint()?,
            ..KvState::default()
        };
        // Every entry takes at least 4 bytes (key length, type, value length, expiry flag).
        let count = d.len(4)?;
        for _ in 0..count {
            let key = d.bytes()?;
            let value = match d.u8()? {
                TYPE_STRING => Value::Str(d.bytes()?),
                t => return Err(DecodeError(format!("unknown value type {t}"))),
            };
            let expire_at = match d.u8()? {
                0 => None,
                1 => Some(d.varint()?),
                t => return Err(DecodeError(format!("bad expiry flag {t}"))),
            };
            if state.map.contains_key(&key) {
                return Err(DecodeError("duplicate key in snapshot".into()));
            }
            state.store(&key, value, expire_at);
        }
        d.finish()?;
        Ok(state)
    }
}
