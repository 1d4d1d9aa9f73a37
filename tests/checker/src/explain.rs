//! Turns a failed search into a [`Violation`] a person can read.
//!
//! The search reports the furthest point it reached: every operation that
//! returned before the blocked one's return was linearized, but the blocked
//! one could not be. That prefix of the history (in time) is the shortest
//! that is already not linearizable, so the window shown is the blocked
//! operation, the operations concurrent with it, the tail of the prefix,
//! and — for reads — a real-time witness when one exists.

use crate::history::{fmt_ns, History, Operation};
use crate::model::{apply, State, Step};
use crate::prepare::{KeyHistory, KeyOp};
use crate::realtime::{Proof, RealTime};
use crate::report::{show_state, Prefix, Role, Violation, WindowOp};
use crate::search::Best;
use std::collections::BTreeMap;

/// Most concurrent operations listed; the rest are counted.
const MAX_CONCURRENT: usize = 24;
/// Most indeterminate operations listed (the latest calls).
const MAX_PENDING: usize = 6;
/// How many of the prefix's last operations are listed.
const PREFIX_TAIL: usize = 3;

/// Explains why operation `blocked` (a `KeyHistory::ops` index) cannot be
/// linearized. `best` is the search's furthest point, when a search ran.
pub(crate) fn explain(
    kh: &KeyHistory,
    history: &History,
    rt: &RealTime<'_>,
    blocked: usize,
    best: Option<&Best>,
) -> Violation {
    let x = &kh.ops[blocked];
    let ex = Explainer { kh, history, rt };
    let furthest = best.map(|b| replay(kh, &b.prefix).unwrap_or(b.state));
    let (explanation, witnesses) = match x.step {
        Step::Get(Some(seen)) => ex.read(blocked, seen, furthest),
        Step::Incr(Some(n)) => ex.incr(blocked, n, furthest),
        Step::Del(Some(removed)) => (ex.del(blocked, removed), vec![]),
        _ => (
            format!("{} at {} cannot be linearized.", ex.name(x), ex.when(x)),
            vec![],
        ),
    };

    // Window: role per op index, first role assigned wins.
    let mut roles: BTreeMap<usize, Role> = BTreeMap::new();
    roles.insert(blocked, Role::Blocked);
    for w in witnesses {
        roles.entry(w).or_insert(Role::Witness);
    }
    // Indeterminate ops overlap everything after their call; list only
    // the latest few of them.
    let overlapping = |i: usize| i != blocked && overlaps(&kh.ops[i], x) && shown(&kh.ops[i]);
    let definite: Vec<usize> = (0..kh.ops.len())
        .filter(|&i| kh.ops[i].definite() && overlapping(i))
        .collect();
    let mut pending: Vec<usize> = (0..kh.ops.len())
        .filter(|&i| !kh.ops[i].definite() && overlapping(i))
        .collect();
    pending.sort_by_key(|&i| std::cmp::Reverse(kh.ops[i].call));
    let shown_definite = definite.len().min(MAX_CONCURRENT);
    let shown_pending = pending.len().min(MAX_PENDING);
    let omitted = definite.len() + pending.len() - shown_definite - shown_pending;
    for &i in definite[..shown_definite]
        .iter()
        .chain(&pending[..shown_pending])
    {
        roles.entry(i).or_insert(Role::Concurrent);
    }
    if let Some(b) = best {
        for &i in b.prefix.iter().rev().take(PREFIX_TAIL) {
            roles.entry(i).or_insert(Role::Prefix);
        }
    }
    let mut window: Vec<WindowOp> = roles
        .into_iter()
        .filter_map(|(i, role)| {
            let op = ex.orig(&kh.ops[i])?;
            Some(WindowOp {
                id: op.id,
                client: op.client,
                call: op.call,
                ret: kh.ops[i].ret,
                input: op.input.clone(),
                output: op.output.clone(),
                role,
            })
        })
        .collect();
    window.sort_by_key(|w| (w.call, w.id));

    Violation {
        key: kh.key.clone(),
        blocked: ex.orig(x).map_or(0, |o| o.id),
        explanation,
        prefix: best.map(|b| Prefix {
            len: b.prefix.len(),
            state: furthest.flatten().map(|v| kh.interner.bytes(v)),
        }),
        window,
        omitted,
    }
}

/// The register after applying `prefix` (the search keeps states in a
/// canonical form that may hide the value; replaying recovers it).
fn replay(kh: &KeyHistory, prefix: &[usize]) -> Option<State> {
    prefix
        .iter()
        .try_fold(kh.initial, |s, &i| apply(s, kh.ops.get(i)?.step))
}

/// Indeterminate ops the search ignored say nothing; leave them out.
fn shown(op: &KeyOp) -> bool {
    op.definite() || op.searched
}

/// Whether the intervals touch (equal times count as concurrent, as in the search).
fn overlaps(a: &KeyOp, b: &KeyOp) -> bool {
    let a_before_b = a.ret.is_some_and(|r| r < b.call);
    let b_before_a = b.ret.is_some_and(|r| r < a.call);
    !a_before_b && !b_before_a
}

struct Explainer<'a> {
    kh: &'a KeyHistory,
    history: &'a History,
    rt: &'a RealTime<'a>,
}

impl Explainer<'_> {
    fn orig(&self, op: &KeyOp) -> Option<&Operation> {
        self.history.ops().get(op.orig)
    }

    fn show(&self, s: State) -> String {
        show_state(s.map(|v| self.kh.interner.bytes(v)).as_deref())
    }

    /// `SET "4" (op 5, client 2)`.
    fn name(&self, op: &KeyOp) -> String {
        match self.orig(op) {
            Some(o) => format!("{} (op {}, client {})", o.input, o.id, o.client),
            None => "an operation".to_string(),
        }
    }

    fn when(&self, op: &KeyOp) -> String {
        match op.ret {
            Some(r) => format!("[{}, {}]", fmt_ns(op.call), fmt_ns(r)),
            None => format!("[{}, inf)", fmt_ns(op.call)),
        }
    }

    /// `furthest`: the state in the furthest order the search found.
    fn furthest(&self, furthest: Option<State>) -> String {
        match furthest {
            Some(s) => format!(" (in the furthest order found it holds {})", self.show(s)),
            None => String::new(),
        }
    }

    fn read(&self, x_idx: usize, seen: State, furthest: Option<State>) -> (String, Vec<usize>) {
        let x = &self.kh.ops[x_idx];
        let got = self.show(seen);
        let head = format!("GET returned {got} at {}", self.when(x));
        let producers = self.rt.producers(seen);
        let witness = match self.rt.refute(x, seen) {
            Some(Proof::NeverWritten) => {
                let msg = match seen {
                    Some(_) => format!(
                        "{head}, but no operation in the history wrote {got} (failed writes do not count): a read of a value never written."
                    ),
                    None => format!(
                        "{head}, but the key held {} initially and no DEL of it exists.",
                        self.show(self.kh.initial)
                    ),
                };
                return (msg, vec![]);
            }
            Some(Proof::Stale(w)) => Some(w),
            None => None,
        };
        if let Some(w) = witness {
            let wo = &self.kh.ops[w];
            let what = match seen {
                Some(_) => format!("write of {got}"),
                None => "DEL".to_string(),
            };
            let tail = if producers.is_empty() {
                format!("{got} was only the key's initial value")
            } else {
                let ids: Vec<String> = producers
                    .iter()
                    .filter_map(|&p| self.orig(&self.kh.ops[p]).map(|o| o.id.to_string()))
                    .collect();
                format!(
                    "every {what} (op {}) completed before it began at {}, so no later {what} exists",
                    ids.join(", "),
                    fmt_ns(wo.call)
                )
            };
            let msg = format!(
                "{head}, but {} completed at {} < {}, and {tail}: stale read.",
                self.name(wo),
                fmt_ns(wo.ret.unwrap_or(0)),
                fmt_ns(x.call),
            );
            let mut witnesses = vec![w];
            // The latest few producers, to show they came before.
            witnesses.extend(producers.iter().rev().take(3));
            return (msg, witnesses);
        }
        (
            format!(
                "{head}, but no order of the operations before and concurrent with it leaves the key holding {got} then{}.",
                self.furthest(furthest)
            ),
            producers.iter().rev().take(3).copied().collect(),
        )
    }

    fn incr(&self, x_idx: usize, n: i64, furthest: Option<State>) -> (String, Vec<usize>) {
        let x = &self.kh.ops[x_idx];
        let head = format!("INCR returned {n} at {}", self.when(x));
        let twins: Vec<usize> = (0..self.kh.ops.len())
            .filter(|&i| i != x_idx && self.kh.ops[i].step == Step::Incr(Some(n)))
            .collect();
        let needed = match n.checked_sub(1) {
            Some(0) => "absent or holding 0".to_string(),
            Some(before) => format!("holding {before}"),
            None => String::new(),
        };
        let mut msg = if needed.is_empty() {
            format!("{head}, which no increment can produce.")
        } else {
            format!(
                "{head}, but no order of the operations before and concurrent with it leaves the key {needed} then{}.",
                self.furthest(furthest)
            )
        };
        if let Some(&t) = twins.first() {
            msg.push_str(&format!(
                " {} at {} also returned {n}: two INCRs cannot both produce {n} unless a write in between resets the key.",
                self.name(&self.kh.ops[t]),
                self.when(&self.kh.ops[t])
            ));
        }
        (msg, twins.into_iter().take(3).collect())
    }

    fn del(&self, x_idx: usize, removed: bool) -> String {
        let x = &self.kh.ops[x_idx];
        if removed {
            format!(
                "DEL at {} reported removing the key, but in every order consistent with the history the key was already absent then.",
                self.when(x)
            )
        } else {
            format!(
                "DEL at {} reported nothing to remove, but in every order consistent with the history the key held a value then.",
                self.when(x)
            )
        }
    }
}
