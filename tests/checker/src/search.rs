//! Wing & Gong / Lowe (WGL) search for a linearization of one key.
//!
//! The history is a doubly linked list of call and return entries sorted by
//! time (calls before returns at equal times, so touching intervals count as
//! concurrent). From the head, every call entry met before the first return
//! entry is an operation that may come next in the linearization. The search
//! applies one to the model; if the model accepts it and the configuration
//! (set of linearized ops, model state) has not been seen, it lifts the call
//! and its return out of the list, pushes a frame and restarts at the head.
//! Reaching a return entry means its operation should already be linearized:
//! backtrack (pop, unlift, try the next candidate). Success is when every
//! definite operation is linearized.
//!
//! Indeterminate operations have a call entry and no return entry (their
//! return is at +infinity), so they never force a backtrack and may stay
//! unlinearized. Their call entries live in a second list, so that the
//! ones piling up at the front (pending forever) do not make every restart
//! walk past them: an indeterminate op is a candidate when its call entry
//! sorts before the first return entry of the main list. At each
//! configuration, definite candidates are tried before indeterminate ones,
//! and an indeterminate op is only applied right before an op that needs it
//! (see `redundant_after`), interchangeable ones are tried once, and ones
//! that can no longer matter are skipped (see `Demand`).

use crate::demand::{Class, Demand};
use crate::model::{apply, State, Val};
use crate::prepare::KeyHistory;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

/// Limits on the search for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Maximum number of list entries visited per key. Memory grows with
    /// it: each step may memoise one configuration of about
    /// `ops_in_key / 8 + 48` bytes (2000 ops: ~300 B, so ~3 GB at the
    /// default in the worst case; typical histories use a tiny fraction).
    pub max_steps: u64,
    /// Maximum wall time per key.
    pub timeout: Option<Duration>,
}

impl Default for CheckOptions {
    /// 10 million steps, 60 seconds per key.
    fn default() -> Self {
        CheckOptions {
            max_steps: 10_000_000,
            timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// How far the search got: the furthest return entry it reached without
/// being able to pass it.
#[derive(Clone, Debug)]
pub(crate) struct Best {
    /// `KeyHistory::ops` index of the operation whose return was reached
    /// while it could not be linearized.
    pub blocked: usize,
    /// `KeyHistory::ops` indices, in linearization order, of the prefix
    /// that was linearized at that point (every op that returned earlier,
    /// plus some that were still pending).
    pub prefix: Vec<usize>,
    /// The register after `prefix`.
    pub state: State,
}

#[derive(Debug)]
pub(crate) enum Found {
    Linearizable,
    /// The search space is exhausted; `Best` is the furthest it got.
    NotLinearizable(Best),
    /// Budget exhausted before an answer.
    GaveUp {
        reason: String,
        best: Option<Best>,
    },
}

#[derive(Debug)]
pub(crate) struct SearchResult {
    pub found: Found,
    pub steps: u64,
}

const NONE: usize = usize::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Search-local operation index.
    op: usize,
    /// For a call entry, its return entry (`NONE` if indeterminate);
    /// `NONE` for a return entry.
    ret: usize,
    is_call: bool,
}

/// Two lists of entries with O(1) removal and reinsertion (dancing
/// links): `MAIN` holds the definite ops' calls and returns, `INDET` the
/// indeterminate ops' calls, each in time order. Entries `0..len` are the
/// sorted entries; sentinels follow them.
/// Invariant: lifts are undone in reverse order (the search stack).
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
    len: usize,
}

const MAIN: usize = 0;
const INDET: usize = 1;

impl List {
    /// `in_indet[e]`: whether entry `e` belongs to the `INDET` list.
    fn new(in_indet: &[bool]) -> Self {
        let len = in_indet.len();
        let mut next = vec![NONE; len + 4];
        let mut prev = vec![NONE; len + 4];
        for chain in [MAIN, INDET] {
            let (head, tail) = (len + 2 * chain, len + 2 * chain + 1);
            let members = (0..len).filter(|&e| in_indet[e] == (chain == INDET));
            let mut last = head;
            for e in members.chain([tail]) {
                next[last] = e;
                prev[e] = last;
                last = e;
            }
        }
        List { next, prev, len }
    }

    fn first(&self, chain: usize) -> usize {
        self.next[self.len + 2 * chain]
    }

    /// Whether `e` is a real entry (not a sentinel).
    fn is_entry(&self, e: usize) -> bool {
        e < self.len
    }

    fn remove(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn restore(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    fn lift(&mut self, call: usize, ret: usize) {
        self.remove(call);
        if ret != NONE {
            self.remove(ret);
        }
    }

    fn unlift(&mut self, call: usize, ret: usize) {
        if ret != NONE {
            self.restore(ret);
        }
        self.restore(call);
    }
}

/// Fixed-size bitset of linearized operations.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// A configuration already explored. `hash` is the Zobrist hash of the
/// bitset mixed with the state and context, maintained incrementally.
#[derive(PartialEq, Eq)]
struct Seen {
    hash: u64,
    bits: Box<[u64]>,
    state: State,
    /// Part of the configuration because it restricts what may follow.
    after: After,
}

/// When the last op applied was indeterminate: its call entry and the
/// state before it. See [`redundant_after`].
type After = Option<(usize, State)>;

fn after_hash(a: After) -> u64 {
    match a {
        None => 0,
        Some((e, s)) => splitmix64(e as u64 ^ state_hash(s).rotate_left(29)),
    }
}

/// Whether applying `x` right after the indeterminate op of `after` is
/// redundant: some other order reaches the same configuration or a better
/// one, so this branch can be skipped without losing completeness.
///
/// Let I be that op, s0 the state before it, and `next` the state after
/// I then X. If X is also possible at s0, giving t (states compared in
/// canonical form, see `demand`):
/// * t == next: X hides I entirely; dropping I (it is optional) gives a
///   linearization with the same state and I still unapplied;
/// * I after X also gives `next` (they commute) and X is definite: the
///   order X, I reaches the same configuration and is explored from the
///   configuration before I (X was a candidate there too, and I stays one
///   after X since lifting X only moves the first return entry later);
/// * they commute and both are indeterminate: only the order with the
///   earlier call entry first is explored.
///
/// Any linearization can be rewritten (moving indeterminate ops later past
/// ops they commute with, dropping hidden ones, sorting commuting
/// indeterminate neighbours) into one where no such pair is adjacent, and
/// the search explores all of those. The payoff: an indeterminate op is
/// only applied right before an op that needs it, instead of wherever the
/// search happens to get stuck.
fn redundant_after(
    after: After,
    entries: &[Entry],
    sops: &[usize],
    kh: &KeyHistory,
    demand: &Demand,
    x_entry: usize,
    next: State,
) -> bool {
    let Some((i_entry, s0)) = after else {
        return false;
    };
    let x = &kh.ops[sops[entries[x_entry].op]];
    let i_step = kh.ops[sops[entries[i_entry].op]].step;
    let Some(t) = apply(s0, x.step) else {
        return false; // X needs I (or something I does).
    };
    // `demand` has both I and X linearized: compare canonical states of
    // the configuration both orders reach.
    let t = demand.canon(t);
    if t == next {
        return true;
    }
    let commutes = apply(t, i_step).map(|u| demand.canon(u)) == Some(next);
    commutes && (x.definite() || x_entry < i_entry)
}

impl Hash for Seen {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

/// Passes the precomputed hash through unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn state_hash(s: State) -> u64 {
    match s {
        None => 0x5bd1_e995_u64,
        Some(Val::Int(n)) => splitmix64(n as u64 ^ 0x1234_5678_9abc_def0),
        Some(Val::Bytes(id)) => splitmix64(u64::from(id) ^ 0x0fed_cba9_8765_4321),
        Some(Val::Dead) => 0x2545_f491_4f6c_dd1d,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    /// Walking `MAIN`: definite candidates.
    Definite,
    /// Walking `INDET` up to the first return entry of `MAIN`.
    Indeterminate,
}

struct Frame {
    /// The call entry that was lifted.
    entry: usize,
    /// State before applying it.
    state: State,
    pass: Pass,
    /// Context before applying it.
    after: After,
}

/// The first return entry of `MAIN` (or its tail sentinel): candidates
/// are the call entries that sort before it.
fn first_return(list: &List, entries: &[Entry]) -> usize {
    let mut e = list.first(MAIN);
    while list.is_entry(e) && entries[e].is_call {
        e = list.next[e];
    }
    e
}

/// Searches for a linearization of `kh` within `opts`' budget.
pub(crate) fn search(kh: &KeyHistory, opts: &CheckOptions) -> SearchResult {
    // Search-local numbering: only the ops the search considers.
    let sops: Vec<usize> = (0..kh.ops.len()).filter(|&i| kh.ops[i].searched).collect();
    let total_definite = sops.iter().filter(|&&i| kh.ops[i].definite()).count();
    let entries = build_entries(kh, &sops);
    let in_indet: Vec<bool> = entries
        .iter()
        .map(|e| !kh.ops[sops[e.op]].definite())
        .collect();
    let mut list = List::new(&in_indet);
    let mut demand = Demand::new(kh, &sops);
    // Classes already tried in the current indeterminate pass.
    let mut tried: HashSet<Class> = HashSet::new();
    let zobrist: Vec<u64> = (0..sops.len())
        .map(|i| splitmix64(i as u64 ^ 0xa076_1d64_78bd_642f))
        .collect();

    let mut seen: HashSet<Seen, BuildHasherDefault<PassThrough>> = HashSet::default();
    let mut bits = Bits::new(sops.len());
    let mut bits_hash = 0u64;
    let mut state = demand.canon(kh.initial);
    let mut stack: Vec<Frame> = Vec::new();
    let mut done = 0usize;
    let mut pass = Pass::Definite;
    let mut after: After = None;
    let mut entry = list.first(MAIN);
    // The first return entry of MAIN, valid during the indeterminate pass.
    let mut bound = NONE;
    let mut best: Option<(usize, Best)> = None;
    let started = Instant::now();
    let mut steps = 0u64;

    while done < total_definite {
        steps += 1;
        if let Some(reason) = over_budget(steps, started, opts) {
            return SearchResult {
                found: Found::GaveUp {
                    reason,
                    best: best.map(|(_, b)| b),
                },
                steps,
            };
        }
        let candidate = match pass {
            Pass::Definite => list.is_entry(entry) && entries[entry].is_call,
            Pass::Indeterminate => list.is_entry(entry) && entry < bound,
        };
        if candidate {
            let Entry { op: local, ret, .. } = entries[entry];
            let op = &kh.ops[sops[local]];
            let definite = op.definite();
            let eligible = match pass {
                Pass::Definite => true,
                Pass::Indeterminate => demand.class(op.step).is_some_and(|c| tried.insert(c)),
            };
            if let Some(raw) = apply(state, op.step).filter(|_| eligible) {
                // Linearize tentatively, so the new state is canonical for
                // the configuration it belongs to; undone below if skipped.
                demand.linearize(op.step, definite);
                let next_state = demand.canon(raw);
                // An indeterminate op that changes nothing observable is
                // never needed: leaving it out is at least as good.
                let useless = !definite && demand.canon(state) == next_state;
                let skip = useless
                    || redundant_after(after, &entries, &sops, kh, &demand, entry, next_state);
                if !skip {
                    let h = bits_hash ^ zobrist[local];
                    let next_after = (!definite).then_some((entry, state));
                    bits.set(local);
                    let fresh = seen.insert(Seen {
                        hash: h ^ state_hash(next_state) ^ after_hash(next_after),
                        bits: bits.0.clone().into_boxed_slice(),
                        state: next_state,
                        after: next_after,
                    });
                    if fresh {
                        stack.push(Frame {
                            entry,
                            state,
                            pass,
                            after,
                        });
                        after = next_after;
                        state = next_state;
                        bits_hash = h;
                        list.lift(entry, ret);
                        done += usize::from(definite);
                        entry = list.first(MAIN);
                        pass = Pass::Definite;
                        continue;
                    }
                    bits.clear(local);
                }
                demand.unlinearize(op.step, definite);
            }
            entry = list.next[entry];
            continue;
        }

        // Every candidate of this pass failed.
        if pass == Pass::Definite {
            bound = entry;
            let first = list.first(INDET);
            if list.is_entry(first) && first < bound {
                pass = Pass::Indeterminate;
                entry = first;
                tried.clear();
                continue;
            }
        }
        let further = match &best {
            Some((pos, _)) => bound > *pos,
            None => true,
        };
        if further {
            if let Some(e) = entries.get(bound) {
                let prefix = stack.iter().map(|f| sops[entries[f.entry].op]).collect();
                let b = Best {
                    blocked: sops[e.op],
                    prefix,
                    state,
                };
                best = Some((bound, b));
            }
        }
        let Some(f) = stack.pop() else {
            return SearchResult {
                found: match best {
                    Some((_, b)) => Found::NotLinearizable(b),
                    // Unreachable: a definite op remains, so its return entry
                    // is in MAIN and bounds every pass.
                    None => Found::GaveUp {
                        reason: "internal error: search ended without a blocking op".into(),
                        best: None,
                    },
                },
                steps,
            };
        };
        let Entry { op: local, ret, .. } = entries[f.entry];
        bits.clear(local);
        bits_hash ^= zobrist[local];
        state = f.state;
        list.unlift(f.entry, ret);
        let op = &kh.ops[sops[local]];
        demand.unlinearize(op.step, op.definite());
        done -= usize::from(op.definite());
        pass = f.pass;
        after = f.after;
        entry = list.next[f.entry];
        if pass == Pass::Indeterminate {
            bound = first_return(&list, &entries);
            // Rebuild the classes this pass had tried, up to f.entry.
            tried.clear();
            let mut e = list.first(INDET);
            while list.is_entry(e) && e != entry {
                if let Some(c) = demand.class(kh.ops[sops[entries[e].op]].step) {
                    tried.insert(c);
                }
                e = list.next[e];
            }
        }
    }
    SearchResult {
        found: Found::Linearizable,
        steps,
    }
}

fn over_budget(steps: u64, started: Instant, opts: &CheckOptions) -> Option<String> {
    if steps > opts.max_steps {
        return Some(format!(
            "search budget of {} steps exhausted",
            opts.max_steps
        ));
    }
    // Reading the clock every step would dominate; every 4096 is plenty.
    if steps & 4095 == 0 {
        if let Some(limit) = opts.timeout {
            if started.elapsed() > limit {
                return Some(format!(
                    "time limit of {limit:?} exceeded after {steps} steps"
                ));
            }
        }
    }
    None
}

/// Call and return entries of the searched ops, sorted by time; calls sort
/// before returns at equal times. Returns entries whose `ret` links are
/// indices into the sorted vector.
fn build_entries(kh: &KeyHistory, sops: &[usize]) -> Vec<Entry> {
    // (time, is_return, local op)
    let mut keys: Vec<(u64, bool, usize)> = Vec::with_capacity(sops.len() * 2);
    for (local, &i) in sops.iter().enumerate() {
        let op = &kh.ops[i];
        keys.push((op.call, false, local));
        if let Some(r) = op.ret {
            keys.push((r, true, local));
        }
    }
    keys.sort_unstable();
    let mut ret_pos = vec![NONE; sops.len()];
    for (pos, &(_, is_ret, local)) in keys.iter().enumerate() {
        if is_ret {
            ret_pos[local] = pos;
        }
    }
    keys.iter()
        .map(|&(_, is_ret, local)| Entry {
            op: local,
            ret: if is_ret { NONE } else { ret_pos[local] },
            is_call: !is_ret,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(l: &List, chain: usize) -> Vec<usize> {
        let mut out = vec![];
        let mut e = l.first(chain);
        while l.is_entry(e) {
            out.push(e);
            e = l.next[e];
        }
        out
    }

    #[test]
    fn list_lift_and_unlift_restore_order() {
        let mut l = List::new(&[false, false, true, false, false, true, false]);
        assert_eq!(walk(&l, MAIN), [0, 1, 3, 4, 6]);
        assert_eq!(walk(&l, INDET), [2, 5]);
        l.lift(1, 3);
        assert_eq!(walk(&l, MAIN), [0, 4, 6]);
        l.lift(0, 6);
        assert_eq!(walk(&l, MAIN), [4]);
        l.lift(2, NONE);
        assert_eq!(walk(&l, INDET), [5]);
        l.lift(5, NONE);
        assert_eq!(walk(&l, INDET), Vec::<usize>::new());
        l.unlift(5, NONE);
        l.unlift(2, NONE);
        l.unlift(0, 6);
        l.unlift(1, 3);
        assert_eq!(walk(&l, MAIN), [0, 1, 3, 4, 6]);
        assert_eq!(walk(&l, INDET), [2, 5]);
        // Backward links survive too.
        assert_eq!(l.prev[0], 7);
        assert_eq!(l.prev[8], 6);
        assert_eq!(l.prev[10], 5);
    }

    #[test]
    fn empty_list() {
        let l = List::new(&[]);
        assert!(!l.is_entry(l.first(MAIN)));
        assert!(!l.is_entry(l.first(INDET)));
    }

    #[test]
    fn bits_set_and_clear() {
        let mut b = Bits::new(130);
        assert_eq!(b.0.len(), 3);
        b.set(129);
        b.set(0);
        assert_eq!(b.0, [1, 0, 2]);
        b.clear(129);
        assert_eq!(b.0, [1, 0, 0]);
    }
}
