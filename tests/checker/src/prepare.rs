//! Splits a history by key, validates it and canonicalises each operation.

use crate::history::{History, Input, Key, Outcome, Output};
use crate::model::{Interner, State, Step, Val};
use std::collections::{BTreeMap, HashSet};

/// One operation of one key, ready for the search.
#[derive(Clone, Debug)]
pub(crate) struct KeyOp {
    /// Index into `History::ops()`.
    pub orig: usize,
    pub call: u64,
    /// `None` for indeterminate operations: their return is at +infinity.
    pub ret: Option<u64>,
    pub step: Step,
    /// Whether the search considers it. Indeterminate operations that can
    /// never be needed are left out (see [`prune`]); they stay here so
    /// reports can still show them.
    pub searched: bool,
}

impl KeyOp {
    pub(crate) fn definite(&self) -> bool {
        self.ret.is_some()
    }

    /// Whether `self` returned before `other` was called (real-time order).
    pub(crate) fn precedes(&self, other: &KeyOp) -> bool {
        self.ret.is_some_and(|r| r < other.call)
    }
}

/// All operations on one key.
#[derive(Debug)]
pub(crate) struct KeyHistory {
    pub key: Key,
    pub initial: State,
    pub ops: Vec<KeyOp>,
    pub interner: Interner,
}

/// Splits `history` by key. A key whose operations are malformed maps to a
/// description of the first problem (and how many there were).
pub(crate) fn partition(history: &History) -> BTreeMap<Key, Result<KeyHistory, String>> {
    let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, op) in history.ops().iter().enumerate() {
        by_key.entry(op.key.as_slice()).or_default().push(i);
    }
    let mut seen_ids = HashSet::new();
    let duplicate: Vec<bool> = history
        .ops()
        .iter()
        .map(|op| !seen_ids.insert(op.id))
        .collect();

    by_key
        .into_iter()
        .map(|(key, idxs)| {
            let prepared = prepare_key(history, key, &idxs, &duplicate);
            (key.to_vec(), prepared)
        })
        .collect()
}

fn prepare_key(
    history: &History,
    key: &[u8],
    idxs: &[usize],
    duplicate: &[bool],
) -> Result<KeyHistory, String> {
    let mut interner = Interner::default();
    let too_many = || "more than 2^32 distinct values".to_string();
    let initial = match history.initial(key) {
        Some(v) => Some(interner.intern(v).ok_or_else(too_many)?),
        None => None,
    };
    let mut ops = Vec::with_capacity(idxs.len());
    let mut errors = Vec::new();
    for &i in idxs {
        let Some(op) = history.ops().get(i) else {
            continue;
        };
        if duplicate.get(i).copied().unwrap_or(false) {
            errors.push(format!("op {}: duplicate id", op.id));
            continue;
        }
        let (ret, reply) = match &op.output {
            Outcome::Fail => continue,
            Outcome::Indeterminate => (None, None),
            Outcome::Ok(out) => {
                let Some(ret) = op.ret else {
                    errors.push(format!("op {}: definite reply but no return time", op.id));
                    continue;
                };
                if ret < op.call {
                    errors.push(format!(
                        "op {}: returns at {ret}ns before its call at {}ns",
                        op.id, op.call
                    ));
                    continue;
                }
                if !out.matches(&op.input) {
                    errors.push(format!(
                        "op {}: {} cannot reply {out:?}",
                        op.id,
                        op.input.name()
                    ));
                    continue;
                }
                (Some(ret), Some(out))
            }
        };
        let step = match (&op.input, reply) {
            (Input::Get, Some(Output::Get(v))) => {
                let seen = match v {
                    Some(b) => Some(interner.intern(b).ok_or_else(too_many)?),
                    None => None,
                };
                Step::Get(Some(seen))
            }
            (Input::Get, _) => Step::Get(None),
            (Input::Set(v), _) => Step::Set(interner.intern(v).ok_or_else(too_many)?),
            (Input::Del, Some(Output::Del(removed))) => Step::Del(*removed),
            (Input::Del, _) => Step::Del(None),
            (Input::Incr, Some(Output::Incr(n))) => Step::Incr(Some(*n)),
            (Input::Incr, _) => Step::Incr(None),
        };
        ops.push(KeyOp {
            orig: i,
            call: op.call,
            ret,
            step,
            searched: true,
        });
    }
    if let Some(first) = errors.first() {
        let more = match errors.len() {
            1 => String::new(),
            n => format!(" (and {} more problems)", n - 1),
        };
        return Err(format!("malformed history: {first}{more}"));
    }
    prune(&mut ops);
    Ok(KeyHistory {
        key: key.to_vec(),
        initial,
        ops,
        interner,
    })
}

/// Marks indeterminate operations the search can skip without changing the
/// verdict:
///
/// * an indeterminate `GET` has no effect and no constrained reply;
/// * an indeterminate `SET v` of a non-integer `v` that no definite `GET`
///   returned, on a key where no definite `DEL` reported removing something.
///   In any linearization that applies it, the register holds `v` until the
///   next write, and nothing in that stretch can depend on it: a `GET` would
///   have to return `v`, a definite `INCR` or `DEL`-reported-0 would be
///   impossible, an indeterminate `INCR` is a no-op on `v` (and, being
///   optional, can be dropped too), and `DEL` with an unknown reply ends in
///   the same state either way. Dropping it leaves a valid linearization.
///
/// Fault-injection runs produce many timed-out writes nobody read; skipping
/// them keeps the search from trying each one at every point.
fn prune(ops: &mut [KeyOp]) {
    let read: HashSet<Val> = ops
        .iter()
        .filter_map(|o| match o.step {
            Step::Get(Some(Some(v))) => Some(v),
            _ => None,
        })
        .collect();
    let del_removed = ops.iter().any(|o| matches!(o.step, Step::Del(Some(true))));
    for op in ops.iter_mut().filter(|o| !o.definite()) {
        op.searched = match op.step {
            Step::Get(_) => false,
            Step::Set(v @ Val::Bytes(_)) => del_removed || read.contains(&v),
            _ => true,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Operation;

    fn only(history: &History, key: &str) -> Result<KeyHistory, String> {
        partition(history)
            .remove(key.as_bytes())
            .unwrap_or_else(|| Err("no such key".into()))
    }

    #[test]
    fn splits_by_key_and_drops_failures() {
        let mut h = History::new();
        h.ok(1, "a", 0, 1, Input::set("x"), Output::Set);
        h.ok(1, "b", 2, 3, Input::Get, Output::not_found());
        h.fail(1, "a", 4, 5, Input::set("y"));
        let parts = partition(&h);
        assert_eq!(parts.len(), 2);
        let a = only(&h, "a").expect("valid");
        assert_eq!(a.ops.len(), 1);
        assert_eq!(a.ops[0].step, Step::Set(Val::Bytes(0)));
    }

    #[test]
    fn malformed_ops_are_reported_not_panicked() {
        let mut h = History::new();
        h.ok(1, "a", 5, 4, Input::Get, Output::not_found());
        assert!(only(&h, "a").unwrap_err().contains("before its call"));

        let mut h = History::new();
        h.ok(1, "a", 0, 4, Input::Get, Output::Incr(3));
        h.ok(1, "a", 0, 4, Input::Incr, Output::Set);
        let err = only(&h, "a").unwrap_err();
        assert!(err.contains("GET cannot reply"), "{err}");
        assert!(err.contains("1 more"), "{err}");

        let mut h = History::new();
        h.push(Operation {
            id: 0,
            client: 0,
            key: b"a".to_vec(),
            call: 0,
            ret: None,
            input: Input::Get,
            output: Outcome::Ok(Output::not_found()),
        });
        assert!(only(&h, "a").unwrap_err().contains("no return time"));

        let mut h = History::new();
        h.ok(1, "a", 0, 1, Input::Get, Output::not_found());
        h.push(Operation {
            id: 0,
            client: 0,
            key: b"a".to_vec(),
            call: 2,
            ret: Some(3),
            input: Input::Get,
            output: Outcome::Ok(Output::not_found()),
        });
        assert!(only(&h, "a").unwrap_err().contains("duplicate id"));
    }

    #[test]
    fn prunes_only_unobservable_indeterminate_ops() {
        let mut h = History::new();
        h.indeterminate(1, "a", 0, Input::set("unread"));
        h.indeterminate(1, "a", 0, Input::set("read"));
        h.indeterminate(1, "a", 0, Input::set("7"));
        h.indeterminate(1, "a", 0, Input::Get);
        h.indeterminate(1, "a", 0, Input::Incr);
        h.indeterminate(1, "a", 0, Input::Del);
        h.ok(2, "a", 1, 2, Input::Get, Output::found("read"));
        let a = only(&h, "a").expect("valid");
        let searched: Vec<bool> = a.ops.iter().map(|o| o.searched).collect();
        assert_eq!(searched, [false, true, true, false, true, true, true]);

        // A DEL that removed something could be explained by any write.
        h.ok(2, "a", 3, 4, Input::Del, Output::Del(Some(true)));
        let a = only(&h, "a").expect("valid");
        assert!(a.ops[0].searched);
    }
}
