//! Shared test helpers: a seeded PRNG, a simulated atomic register that
//! produces linearizable histories, an independent brute-force checker, and
//! an independent real-time staleness test.
#![allow(dead_code)] // Each test binary uses a different subset.

use linearizability::{History, Input, Operation, Outcome, Output};
use std::collections::HashMap;

/// splitmix64: tiny, seedable, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What happens to a simulated operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Applied at its linearization point; reply recorded.
    Ok,
    /// Applied at its linearization point; the client saw no reply.
    LostReply,
    /// Applied long after the client gave up (after the history's end).
    Late,
    /// Never applied; the client saw no reply.
    Dropped,
    /// Rejected: never applied, recorded as failed.
    Rejected,
}

/// One simulated operation; the simulator derives times and replies.
#[derive(Clone, Debug)]
pub struct OpSpec {
    pub client: usize,
    pub key: usize,
    /// 0 GET, 1 SET, 2 DEL, 3 INCR.
    pub kind: u8,
    /// Idle time of the client before the call.
    pub think: u64,
    /// Call-to-return time, at least 1.
    pub dur: u64,
    /// Linearization point as a fraction (per mille) of the interval.
    pub lin: u64,
    pub fate: Fate,
    /// SET an integer string instead of a text value.
    pub int_value: bool,
    /// Record DEL's reply as "unknown removed".
    pub del_unknown: bool,
}

impl OpSpec {
    pub fn random(rng: &mut Rng, clients: usize, keys: usize, indeterminate_pct: u64) -> Self {
        let fate = if rng.below(100) < indeterminate_pct {
            match rng.below(4) {
                0 => Fate::LostReply,
                1 => Fate::Late,
                2 => Fate::Dropped,
                _ => Fate::Rejected,
            }
        } else {
            Fate::Ok
        };
        OpSpec {
            client: rng.below(clients as u64) as usize,
            key: rng.below(keys as u64) as usize,
            kind: match rng.below(10) {
                0..=4 => 0,
                5..=7 => 1,
                8 => 2,
                _ => 3,
            },
            think: rng.below(50),
            dur: 1 + rng.below(60),
            lin: rng.below(1001),
            fate,
            int_value: rng.below(4) == 0,
            del_unknown: rng.below(3) == 0,
        }
    }
}

pub fn key_name(k: usize) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

/// Redis-style canonical integer parse (independent of the crate's).
pub fn as_int(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// Applies one operation to a register; returns the reply, or `None` if
/// the store would reject it (INCR of a non-integer or overflow: no effect).
pub fn apply(reg: &mut Option<Vec<u8>>, input: &Input) -> Option<Output> {
    match input {
        Input::Get => Some(Output::Get(reg.clone())),
        Input::Set(v) => {
            *reg = Some(v.clone());
            Some(Output::Set)
        }
        Input::Del => Some(Output::Del(Some(reg.take().is_some()))),
        Input::Incr => {
            let cur = match reg {
                None => 0,
                Some(v) => as_int(v)?,
            };
            let n = cur.checked_add(1)?;
            *reg = Some(n.to_string().into_bytes());
            Some(Output::Incr(n))
        }
    }
}

/// Runs `specs` against an atomic register: each client issues its ops in
/// order, each op takes effect at one instant inside its interval (or, per
/// its fate, later or never). The history is linearizable by construction.
pub fn simulate(specs: &[OpSpec]) -> History {
    let mut clock: HashMap<usize, u64> = HashMap::new();
    struct Planned {
        call: u64,
        ret: u64,
        at: Option<u64>,
        input: Input,
    }
    let mut planned = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let t = clock.entry(s.client).or_insert(0);
        let call = *t + s.think;
        let dur = s.dur.max(1);
        let ret = call + dur;
        *t = ret;
        let inside = call + dur * s.lin.min(1000) / 1000;
        let at = match s.fate {
            Fate::Ok | Fate::LostReply => Some(inside),
            Fate::Late => Some(call + 1_000_000_000),
            Fate::Dropped | Fate::Rejected => None,
        };
        let input = match s.kind {
            0 => Input::Get,
            1 if s.int_value => Input::set(format!("{}", 1000 * (i + 1))),
            1 => Input::set(format!("v{i}")),
            2 => Input::Del,
            _ => Input::Incr,
        };
        planned.push(Planned {
            call,
            ret,
            at,
            input,
        });
    }
    // Apply in linearization order.
    let mut order: Vec<usize> = (0..specs.len())
        .filter(|&i| planned[i].at.is_some())
        .collect();
    order.sort_by_key(|&i| (planned[i].at, i));
    let mut regs: HashMap<usize, Option<Vec<u8>>> = HashMap::new();
    let mut replies: Vec<Option<Output>> = vec![None; specs.len()];
    for i in order {
        let reg = regs.entry(specs[i].key).or_insert(None);
        replies[i] = apply(reg, &planned[i].input);
    }
    let mut h = History::new();
    for (i, (s, p)) in specs.iter().zip(planned).enumerate() {
        let (ret, output) = match (s.fate, replies[i].take()) {
            (Fate::Ok, Some(Output::Del(_))) if s.del_unknown => {
                (Some(p.ret), Outcome::Ok(Output::Del(None)))
            }
            (Fate::Ok, Some(out)) => (Some(p.ret), Outcome::Ok(out)),
            // The store rejected it (INCR of a non-integer): a clear error.
            (Fate::Ok, None) | (Fate::Rejected, _) => (Some(p.ret), Outcome::Fail),
            (Fate::LostReply | Fate::Late | Fate::Dropped, _) => (None, Outcome::Indeterminate),
        };
        h.push(Operation {
            id: i as u64,
            client: s.client as u64,
            key: key_name(s.key),
            call: p.call,
            ret,
            input: p.input,
            output,
        });
    }
    h
}

/// A random 2000-op style history: `n` ops, `clients`, `keys`.
pub fn random_history(seed: u64, n: usize, clients: usize, keys: usize, indet_pct: u64) -> History {
    let mut rng = Rng::new(seed);
    let specs: Vec<OpSpec> = (0..n)
        .map(|_| OpSpec::random(&mut rng, clients, keys, indet_pct))
        .collect();
    simulate(&specs)
}

/// Whether `a` returned before `b` was called.
fn precedes(a: &Operation, b: &Operation) -> bool {
    a.ret.is_some() && matches!(a.output, Outcome::Ok(_)) && a.ret.is_some_and(|r| r < b.call)
}

/// Exhaustive reference: tries every order (no memo, no pruning). Only for
/// a handful of operations per key.
pub fn brute_force(history: &History) -> bool {
    let mut keys: HashMap<&[u8], Vec<&Operation>> = HashMap::new();
    for op in history.ops() {
        if op.output != Outcome::Fail {
            keys.entry(op.key.as_slice()).or_default().push(op);
        }
    }
    keys.values().all(|ops| {
        assert!(ops.len() <= 16, "brute force is for tiny histories");
        dfs(ops, 0, &None)
    })
}

fn dfs(ops: &[&Operation], used: u32, reg: &Option<Vec<u8>>) -> bool {
    let definite_left = ops
        .iter()
        .enumerate()
        .any(|(i, o)| used & (1 << i) == 0 && matches!(o.output, Outcome::Ok(_)));
    if !definite_left {
        return true;
    }
    for (i, o) in ops.iter().enumerate() {
        if used & (1 << i) != 0 {
            continue;
        }
        // Every unused definite op that returned before o's call must go first.
        let blocked = ops
            .iter()
            .enumerate()
            .any(|(j, p)| j != i && used & (1 << j) == 0 && precedes(p, o));
        if blocked {
            continue;
        }
        let mut next = reg.clone();
        let reply = apply(&mut next, &o.input);
        let ok = match (&o.output, reply) {
            (Outcome::Ok(want), Some(got)) => match (want, &got) {
                (Output::Del(None), Output::Del(_)) => true,
                _ => *want == got,
            },
            // A definite reply to an op the store would have rejected.
            (Outcome::Ok(_), None) => false,
            // Indeterminate: any reply; a rejected INCR changes nothing.
            (_, Some(_)) => true,
            (_, None) => {
                next = reg.clone();
                true
            }
        };
        if ok && dfs(ops, used | (1 << i), &next) {
            return true;
        }
    }
    false
}

/// Whether a GET (index `x`) returning `value` is provably stale by real
/// time alone: some definite overwrite w (to a different value) returned
/// before x began, and every operation that could leave `value` returned
/// before w began (the initial absent state counts as such for `None`).
pub fn provably_stale(history: &History, x: usize, value: &Option<Vec<u8>>) -> bool {
    let ops = history.ops();
    let Some(xo) = ops.get(x) else { return false };
    let same_key: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.key == xo.key && o.output != Outcome::Fail)
        .collect();
    let produces = |o: &Operation| -> bool {
        match (&o.input, value) {
            (Input::Set(v), Some(w)) => v == w,
            (Input::Del, None) => true,
            (Input::Incr, Some(w)) => match &o.output {
                Outcome::Ok(Output::Incr(n)) => n.to_string().as_bytes() == w.as_slice(),
                _ => as_int(w).is_some(),
            },
            _ => false,
        }
    };
    let overwrite = |o: &Operation| -> Option<Option<Vec<u8>>> {
        match (&o.input, &o.output) {
            (Input::Set(v), Outcome::Ok(_)) => Some(Some(v.clone())),
            (Input::Del, Outcome::Ok(_)) => Some(None),
            (Input::Incr, Outcome::Ok(Output::Incr(n))) => Some(Some(n.to_string().into_bytes())),
            _ => None,
        }
    };
    same_key.iter().any(|w| {
        precedes(w, xo)
            && overwrite(w).is_some_and(|s| &s != value)
            && same_key
                .iter()
                .filter(|p| produces(p))
                .all(|p| precedes(p, w))
    })
}

/// A second, independent reference: sweeps the history in time order
/// keeping every reachable configuration (linearized set, register), the
/// way Knossos' "linear" checker does. On each return it extends every
/// configuration by linearizing pending ops until the returning one is in.
/// Indeterminate ops stay pending forever. At most 64 ops per key.
pub fn sweep_check(history: &History) -> bool {
    let mut keys: HashMap<&[u8], Vec<&Operation>> = HashMap::new();
    for op in history.ops() {
        if op.output != Outcome::Fail {
            keys.entry(op.key.as_slice()).or_default().push(op);
        }
    }
    keys.values().all(|ops| sweep_key(ops))
}

type Config = (u64, Option<Vec<u8>>);

fn sweep_key(ops: &[&Operation]) -> bool {
    assert!(
        ops.len() <= 64,
        "sweep reference handles at most 64 ops per key"
    );
    // (time, is_return, op)
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call, false, i));
        if matches!(o.output, Outcome::Ok(_)) {
            events.push((o.ret.unwrap_or(u64::MAX), true, i));
        }
    }
    events.sort();
    let mut configs: std::collections::HashSet<Config> = [(0u64, None)].into_iter().collect();
    let mut pending: Vec<usize> = Vec::new();
    for (_, is_ret, x) in events {
        if !is_ret {
            pending.push(x);
            continue;
        }
        let mut next = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        for c in &configs {
            extend(ops, &pending, x, c.clone(), &mut seen, &mut next);
        }
        pending.retain(|&p| p != x);
        if next.is_empty() {
            return false;
        }
        configs = next;
    }
    true
}

fn extend(
    ops: &[&Operation],
    pending: &[usize],
    x: usize,
    c: Config,
    seen: &mut std::collections::HashSet<Config>,
    out: &mut std::collections::HashSet<Config>,
) {
    if !seen.insert(c.clone()) {
        return;
    }
    if c.0 & (1 << x) != 0 {
        out.insert(c);
        return;
    }
    for &p in pending {
        if c.0 & (1 << p) != 0 {
            continue;
        }
        let mut reg = c.1.clone();
        let reply = apply(&mut reg, &ops[p].input);
        let ok = match (&ops[p].output, reply) {
            (Outcome::Ok(Output::Del(None)), Some(Output::Del(_))) => true,
            (Outcome::Ok(want), Some(got)) => *want == got,
            (Outcome::Ok(_), None) => false,
            (_, Some(_)) => true,
            (_, None) => {
                reg = c.1.clone();
                true
            }
        };
        if ok {
            extend(ops, pending, x, (c.0 | (1 << p), reg), seen, out);
        }
    }
}
