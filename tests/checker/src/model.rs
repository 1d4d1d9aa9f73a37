//! The sequential specification of one key: a register holding bytes or
//! nothing, with Redis `GET`/`SET`/`DEL`/`INCR` semantics.
//!
//! Values are canonicalised so the search state is small and `Copy`: a value
//! whose bytes are exactly the decimal form of an `i64` (what Redis accepts
//! for `INCR`: no sign `+`, no leading zeros, no `-0`) is held as
//! [`Val::Int`]; any other value is interned per key as [`Val::Bytes`].
//! So `SET "5"` followed by `INCR` yields `Int(6)`, which equals a later
//! `GET` returning `"6"`.

use std::collections::HashMap;

/// A canonical register value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Val {
    Int(i64),
    /// Index into the key's [`Interner`].
    Bytes(u32),
    /// Stands for any value that no remaining operation can tell apart
    /// from any other (see `demand::Demand::canon`). Behaves like a
    /// non-integer nobody reads.
    Dead,
}

/// The register: `None` is an absent key.
pub(crate) type State = Option<Val>;

/// What an operation does and what its reply allows, after canonicalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// `GET`, `None` = the reply is unconstrained.
    Get(Option<State>),
    Set(Val),
    /// `DEL`; `Some(removed)` when the reply says whether a key was removed.
    Del(Option<bool>),
    /// `INCR`; `Some(n)` when the reply was the integer `n`.
    Incr(Option<i64>),
}

/// Applies `step` to `state`; `None` if the step's recorded reply is
/// impossible in that state.
pub(crate) fn apply(state: State, step: Step) -> Option<State> {
    match step {
        Step::Get(None) => Some(state),
        Step::Get(Some(seen)) => (seen == state).then_some(state),
        Step::Set(v) => Some(Some(v)),
        Step::Del(Some(removed)) => (removed == state.is_some()).then_some(None),
        Step::Del(None) => Some(None),
        Step::Incr(reply) => {
            let next = match state {
                None => Some(1),
                Some(Val::Int(n)) => n.checked_add(1),
                // Redis rejects INCR of a non-integer: no effect.
                Some(Val::Bytes(_) | Val::Dead) => None,
            };
            match (reply, next) {
                (Some(r), Some(n)) => (r == n).then_some(Some(Val::Int(n))),
                // A definite reply to an INCR that must have errored.
                (Some(_), None) => None,
                (None, Some(n)) => Some(Some(Val::Int(n))),
                // Indeterminate and erroring (non-integer or overflow): a no-op.
                (None, None) => Some(state),
            }
        }
    }
}

/// Per-key table of non-integer values, so states can be compared by index.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<Vec<u8>, u32>,
    values: Vec<Vec<u8>>,
}

impl Interner {
    /// The canonical form of `bytes`. `None` only if the table is full
    /// (more than `u32::MAX` distinct values), which the caller reports.
    pub(crate) fn intern(&mut self, bytes: &[u8]) -> Option<Val> {
        if let Some(n) = canonical_int(bytes) {
            return Some(Val::Int(n));
        }
        if let Some(&id) = self.ids.get(bytes) {
            return Some(Val::Bytes(id));
        }
        let id = u32::try_from(self.values.len()).ok()?;
        self.values.push(bytes.to_vec());
        self.ids.insert(bytes.to_vec(), id);
        Some(Val::Bytes(id))
    }

    /// Number of distinct non-integer values; `Val::Bytes` ids are below it.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The bytes of a canonical value (for reports).
    pub(crate) fn bytes(&self, v: Val) -> Vec<u8> {
        match v {
            Val::Int(n) => n.to_string().into_bytes(),
            Val::Bytes(id) => self
                .values
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| format!("<value #{id}>").into_bytes()),
            Val::Dead => b"<a value no later op reads>".to_vec(),
        }
    }
}

/// `Some(n)` iff `bytes` is exactly `n.to_string()`.
pub(crate) fn canonical_int(bytes: &[u8]) -> Option<i64> {
    // 20 bytes is the longest i64 ("-9223372036854775808").
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let s = std::str::from_utf8(bytes).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ints_follow_redis() {
        assert_eq!(canonical_int(b"0"), Some(0));
        assert_eq!(canonical_int(b"-12"), Some(-12));
        assert_eq!(canonical_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(canonical_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"007",
            b"+1",
            b"-0",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"abc",
        ] {
            assert_eq!(canonical_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn interner_dedups_and_round_trips() {
        let mut i = Interner::default();
        let a = i.intern(b"a");
        assert_eq!(a, Some(Val::Bytes(0)));
        assert_eq!(i.intern(b"b"), Some(Val::Bytes(1)));
        assert_eq!(i.intern(b"a"), a);
        assert_eq!(i.intern(b"42"), Some(Val::Int(42)));
        assert_eq!(i.bytes(Val::Bytes(1)), b"b");
        assert_eq!(i.bytes(Val::Int(-3)), b"-3");
    }

    #[test]
    fn get_must_see_current_state() {
        let s = Some(Val::Int(1));
        assert_eq!(apply(s, Step::Get(Some(s))), Some(s));
        assert_eq!(apply(s, Step::Get(Some(None))), None);
        assert_eq!(apply(None, Step::Get(None)), Some(None));
    }

    #[test]
    fn del_checks_removed_flag() {
        let s = Some(Val::Bytes(0));
        assert_eq!(apply(s, Step::Del(Some(true))), Some(None));
        assert_eq!(apply(s, Step::Del(Some(false))), None);
        assert_eq!(apply(None, Step::Del(Some(false))), Some(None));
        assert_eq!(apply(None, Step::Del(Some(true))), None);
        assert_eq!(apply(s, Step::Del(None)), Some(None));
    }

    #[test]
    fn incr_semantics() {
        assert_eq!(apply(None, Step::Incr(Some(1))), Some(Some(Val::Int(1))));
        assert_eq!(apply(None, Step::Incr(Some(2))), None);
        let five = Some(Val::Int(5));
        assert_eq!(apply(five, Step::Incr(Some(6))), Some(Some(Val::Int(6))));
        assert_eq!(apply(five, Step::Incr(None)), Some(Some(Val::Int(6))));
        for text in [Some(Val::Bytes(0)), Some(Val::Dead)] {
            assert_eq!(apply(text, Step::Incr(Some(1))), None);
            assert_eq!(apply(text, Step::Incr(None)), Some(text));
            assert_eq!(apply(text, Step::Del(Some(true))), Some(None));
        }
        let max = Some(Val::Int(i64::MAX));
        assert_eq!(apply(max, Step::Incr(None)), Some(max));
        assert_eq!(apply(max, Step::Incr(Some(i64::MIN))), None);
    }
}
