//! Violations provable from real-time order alone, without a search.
//!
//! Two kinds of definite `GET` can be refuted directly:
//!
//! * **never written**: no operation (nor the initial state) could leave
//!   the key holding the value read;
//! * **stale**: some definite overwrite `w` (leaving a different value)
//!   returned before the read was called, and every operation that could
//!   leave the value read returned before `w` was called. The read must be
//!   linearized after `w`, and nothing after `w` can restore the value.
//!
//! Both are sound (each implies no linearization exists) and cheap
//! (O(reads x writes)), so they run before the search: the search is
//! exponential in the worst case (many overlapping blind writes), and these
//! are the anomalies fault-injection runs most often hit. They also give the
//! clearest explanations.

use crate::model::{State, Step, Val};
use crate::prepare::{KeyHistory, KeyOp};
use std::collections::HashMap;

/// Which operations can leave the key in which state.
pub(crate) struct RealTime<'a> {
    kh: &'a KeyHistory,
    /// Exact producers per state (SET v, DEL for absent, INCR -> n).
    producers: HashMap<State, Vec<usize>>,
    /// Indeterminate INCRs: they may produce any integer.
    open_incrs: Vec<usize>,
    /// Definite ops that leave a state independent of the one before,
    /// with that state.
    overwriters: Vec<(usize, State)>,
}

/// A refutation of one read.
pub(crate) enum Proof {
    NeverWritten,
    /// The overwrite that makes the read stale.
    Stale(usize),
}

impl<'a> RealTime<'a> {
    pub(crate) fn new(kh: &'a KeyHistory) -> Self {
        let mut producers: HashMap<State, Vec<usize>> = HashMap::new();
        let mut open_incrs = Vec::new();
        let mut overwriters = Vec::new();
        for (i, op) in kh.ops.iter().enumerate() {
            let leaves = match op.step {
                Step::Set(v) => Some(Some(v)),
                Step::Del(_) => Some(None),
                Step::Incr(Some(n)) => Some(Some(Val::Int(n))),
                Step::Incr(None) => {
                    open_incrs.push(i);
                    None
                }
                Step::Get(_) => None,
            };
            if let Some(s) = leaves {
                producers.entry(s).or_default().push(i);
                if op.definite() {
                    overwriters.push((i, s));
                }
            }
        }
        RealTime {
            kh,
            producers,
            open_incrs,
            overwriters,
        }
    }

    /// Operations that could leave the key in state `s`.
    pub(crate) fn producers(&self, s: State) -> Vec<usize> {
        let mut out = self.producers.get(&s).cloned().unwrap_or_default();
        if matches!(s, Some(Val::Int(_))) {
            out.extend(&self.open_incrs);
            out.sort_unstable();
        }
        out
    }

    /// Refutes the definite read `x` (returning `seen`), if real time can.
    pub(crate) fn refute(&self, x: &KeyOp, seen: State) -> Option<Proof> {
        let producers = self.producers(seen);
        let initial = self.kh.initial == seen;
        if producers.is_empty() && !initial {
            return Some(Proof::NeverWritten);
        }
        // The last moment a producer may still take effect; None = -inf.
        let mut last = None;
        for &p in &producers {
            let r = self.kh.ops[p].ret?; // indeterminate: may be any time
            last = last.max(Some(r));
        }
        self.overwriters
            .iter()
            .filter(|&&(w, s)| {
                let wo = &self.kh.ops[w];
                let after_producers = match last {
                    Some(l) => l < wo.call,
                    None => true,
                };
                s != seen && wo.precedes(x) && after_producers
            })
            .max_by_key(|&&(w, _)| self.kh.ops[w].ret)
            .map(|&(w, _)| Proof::Stale(w))
    }

    /// The earliest-returning read that real time alone refutes.
    pub(crate) fn first_refuted_read(&self) -> Option<usize> {
        (0..self.kh.ops.len())
            .filter(|&i| {
                let op = &self.kh.ops[i];
                match op.step {
                    Step::Get(Some(seen)) if op.definite() => self.refute(op, seen).is_some(),
                    _ => false,
                }
            })
            .min_by_key(|&i| (self.kh.ops[i].ret, i))
    }
}
