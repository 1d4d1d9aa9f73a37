//! What the definite operations not yet linearized can still observe.
//!
//! The search uses it for three reductions, all resting on one fact: a
//! value is *dead* when no remaining operation can tell it apart from any
//! other dead value —
//!
//! * a non-integer is dead when no remaining definite `GET` returns it;
//! * an integer `x` is dead when no remaining definite `GET` returns, and
//!   no remaining definite `INCR` starts from, a value in
//!   `x ..= x + k`, where `k` counts the remaining `INCR`s (definite or
//!   not): increments are the only way to reach a value from `x`.
//!
//! From any dead value every operation behaves the same: `GET` and a
//! definite `INCR` fail (nobody observes it or its successors), `DEL`
//! removes it, `SET` replaces it, an indeterminate `INCR` leaves a dead
//! value (the window only shrinks). And as operations are linearized the
//! remaining ones observe less, so dead stays dead. Hence:
//!
//! 1. states are canonicalised: every dead value becomes [`Val::Dead`],
//!    merging configurations that differ only in an unobservable value;
//! 2. pending indeterminate `SET`s of dead values are interchangeable
//!    ([`Class::Dead`]), and useless once no definite `DEL` that reported a
//!    removal remains (the only thing a dead value is good for);
//! 3. an indeterminate op that leaves the canonical state unchanged is
//!    useless (the search skips it).

use crate::model::{State, Step, Val};
use crate::prepare::KeyHistory;
use std::collections::BTreeMap;

/// Pending indeterminate ops of one class are interchangeable: both were
/// called, neither ever returns, neither constrains a reply, and they
/// affect the rest of the search identically. Applying the second reaches
/// a mirror image of what applying the first reached, so only the first is
/// tried. Without this, k timed-out INCRs (or DELs) multiply the search by
/// up to 2^k whenever it backtracks past them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    Same(Step),
    /// A SET of a dead value.
    Dead,
}

/// Counts over the definite ops not yet linearized (and all `INCR`s).
#[derive(Debug)]
pub(crate) struct Demand {
    /// Per non-integer value id: definite GETs returning it.
    readers_left: Vec<u32>,
    /// Definite DELs that reported a removal.
    removals_left: u32,
    /// Integer states definite ops need: `GET -> n` needs `n`,
    /// `INCR -> n` needs `n - 1`. Value -> count (no zero counts).
    ints_needed: BTreeMap<i64, u32>,
    /// INCRs of any outcome not yet linearized.
    incrs_left: u64,
}

impl Demand {
    /// Demand of the searched ops of `kh` (`sops`), none linearized.
    pub(crate) fn new(kh: &KeyHistory, sops: &[usize]) -> Self {
        let mut d = Demand {
            readers_left: vec![0; kh.interner.len()],
            removals_left: 0,
            ints_needed: BTreeMap::new(),
            incrs_left: 0,
        };
        for &i in sops {
            d.unlinearize(kh.ops[i].step, kh.ops[i].definite());
        }
        d
    }

    /// Records that an op was linearized.
    pub(crate) fn linearize(&mut self, step: Step, definite: bool) {
        self.adjust(step, definite, false);
    }

    /// Records that an op was un-linearized (backtracking).
    pub(crate) fn unlinearize(&mut self, step: Step, definite: bool) {
        self.adjust(step, definite, true);
    }

    fn adjust(&mut self, step: Step, definite: bool, up: bool) {
        fn bump(n: &mut u32, up: bool) {
            *n = if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
        }
        if matches!(step, Step::Incr(_)) {
            self.incrs_left = if up {
                self.incrs_left.saturating_add(1)
            } else {
                self.incrs_left.saturating_sub(1)
            };
        }
        if !definite {
            return;
        }
        let needed_int = match step {
            Step::Get(Some(Some(Val::Bytes(id)))) => {
                if let Some(n) = self.readers_left.get_mut(id as usize) {
                    bump(n, up);
                }
                None
            }
            Step::Del(Some(true)) => {
                bump(&mut self.removals_left, up);
                None
            }
            Step::Get(Some(Some(Val::Int(n)))) => Some(n),
            Step::Incr(Some(n)) => n.checked_sub(1),
            _ => None,
        };
        if let Some(v) = needed_int {
            let count = self.ints_needed.entry(v).or_insert(0);
            bump(count, up);
            if *count == 0 {
                self.ints_needed.remove(&v);
            }
        }
    }

    /// Whether some remaining op can still tell `v` from other values.
    fn live(&self, v: Val) -> bool {
        match v {
            Val::Bytes(id) => self.readers_left.get(id as usize).is_some_and(|&n| n > 0),
            Val::Int(x) => {
                let reach = i64::try_from(self.incrs_left).unwrap_or(i64::MAX);
                self.ints_needed
                    .range(x..=x.saturating_add(reach))
                    .next()
                    .is_some()
            }
            Val::Dead => false,
        }
    }

    /// The canonical form of `s`: dead values become [`Val::Dead`].
    pub(crate) fn canon(&self, s: State) -> State {
        match s {
            Some(v) if !self.live(v) => Some(Val::Dead),
            s => s,
        }
    }

    /// The class of a pending indeterminate op, or `None` if it can no
    /// longer matter: a SET of a dead value with no removal left to
    /// explain (the argument of `prepare::prune`, applied to what remains).
    pub(crate) fn class(&self, step: Step) -> Option<Class> {
        match step {
            Step::Set(v) if !self.live(v) => (self.removals_left > 0).then_some(Class::Dead),
            s => Some(Class::Same(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, Input, Output};
    use crate::prepare::partition;

    fn demand_of(h: &History) -> (KeyHistory, Demand) {
        let kh = partition(h)
            .into_values()
            .next()
            .and_then(Result::ok)
            .expect("one valid key");
        let sops: Vec<usize> = (0..kh.ops.len()).filter(|&i| kh.ops[i].searched).collect();
        let d = Demand::new(&kh, &sops);
        (kh, d)
    }

    #[test]
    fn text_values_die_when_their_readers_are_linearized() {
        let mut h = History::new();
        h.ok(1, "k", 0, 1, Input::set("a"), Output::Set);
        h.ok(1, "k", 2, 3, Input::Get, Output::found("a"));
        let (kh, mut d) = demand_of(&h);
        let a = Some(Val::Bytes(0));
        assert_eq!(d.canon(a), a);
        d.linearize(kh.ops[1].step, true);
        assert_eq!(d.canon(a), Some(Val::Dead));
        d.unlinearize(kh.ops[1].step, true);
        assert_eq!(d.canon(a), a);
        assert_eq!(d.canon(None), None);
    }

    #[test]
    fn integers_live_while_increments_can_reach_a_needed_value() {
        let mut h = History::new();
        h.ok(1, "k", 0, 1, Input::Get, Output::found("10"));
        h.indeterminate(1, "k", 0, Input::Incr);
        h.indeterminate(1, "k", 0, Input::Incr);
        let (kh, mut d) = demand_of(&h);
        let live = |d: &Demand, x: i64| d.canon(Some(Val::Int(x))) == Some(Val::Int(x));
        assert!(live(&d, 10));
        assert!(live(&d, 8)); // 8 -> 9 -> 10 with the two INCRs
        assert!(!live(&d, 7));
        assert!(!live(&d, 11));
        d.linearize(kh.ops[1].step, false);
        assert!(!live(&d, 8));
        assert!(live(&d, 9));
        d.linearize(kh.ops[0].step, true);
        assert!(!live(&d, 10));
    }

    #[test]
    fn definite_incr_needs_its_predecessor() {
        let mut h = History::new();
        h.ok(1, "k", 0, 1, Input::Incr, Output::Incr(5));
        let (_, d) = demand_of(&h);
        // 4 is needed; 3 reaches 4 through the INCR itself.
        assert_eq!(d.canon(Some(Val::Int(4))), Some(Val::Int(4)));
        assert_eq!(d.canon(Some(Val::Int(3))), Some(Val::Int(3)));
        assert_eq!(d.canon(Some(Val::Int(5))), Some(Val::Dead));
    }

    #[test]
    fn dead_sets_matter_only_for_removals() {
        let mut h = History::new();
        h.indeterminate(1, "k", 0, Input::set("x"));
        h.ok(1, "k", 1, 2, Input::Del, Output::Del(Some(true)));
        let (kh, mut d) = demand_of(&h);
        let set_x = kh.ops[0].step;
        assert_eq!(d.class(set_x), Some(Class::Dead));
        assert_eq!(
            d.class(Step::Incr(None)),
            Some(Class::Same(Step::Incr(None)))
        );
        d.linearize(kh.ops[1].step, true);
        assert_eq!(d.class(set_x), None);
    }
}
