//! Property tests: histories of a real (simulated) atomic register always
//! check; provably stale mutations never do; and on tiny random histories
//! the checker agrees with an exhaustive search.

mod common;

use common::{apply, brute_force, key_name, provably_stale, simulate, sweep_check, Fate, OpSpec};
use linearizability::{check, History, Input, Operation, Outcome, Output, Role, Verdict};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn fate_of(n: u8) -> Fate {
    match n {
        0 => Fate::LostReply,
        1 => Fate::Late,
        2 => Fate::Dropped,
        3 => Fate::Rejected,
        _ => Fate::Ok,
    }
}

/// Specs for a concurrent run; `fate_range` 4 = no indeterminate ops,
/// larger = more definite ones.
fn specs(
    clients: usize,
    keys: usize,
    len: usize,
    fate_range: u8,
) -> impl Strategy<Value = Vec<OpSpec>> {
    prop::collection::vec(
        (
            0..clients,
            0..keys,
            0u8..4,
            0u64..50,
            1u64..60,
            0u64..=1000,
            0u8..fate_range,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(client, key, kind, think, dur, lin, fate, int_value, del_unknown)| OpSpec {
                    client,
                    key,
                    kind,
                    think,
                    dur,
                    lin,
                    fate: fate_of(fate),
                    int_value,
                    del_unknown,
                },
            ),
        1..len,
    )
}

proptest! {
    // The mutation test discards runs with no provably stale candidate.
    #![proptest_config(ProptestConfig {
        max_global_rejects: 10_000,
        ..ProptestConfig::with_cases(256)
    })]

    /// One client at a time, each op applied to a register: always linearizable.
    #[test]
    fn sequential_register_histories_check(
        ops in prop::collection::vec((0u64..4, 0usize..3, 0u8..4, any::<bool>()), 1..80)
    ) {
        let mut regs = vec![None; 3];
        let mut h = History::new();
        for (i, &(client, key, kind, int_value)) in ops.iter().enumerate() {
            let input = match kind {
                0 => Input::Get,
                1 if int_value => Input::set(format!("{}", i * 7)),
                1 => Input::set(format!("v{i}")),
                2 => Input::Del,
                _ => Input::Incr,
            };
            let t = i as u64 * 10;
            match apply(&mut regs[key], &input) {
                Some(out) => h.ok(client, key_name(key), t, t + 5, input, out),
                None => h.fail(client, key_name(key), t, t + 5, input),
            };
        }
        let r = check(&h);
        prop_assert!(r.is_ok(), "{}", r);
    }

    /// Concurrent clients against an atomic register with random overlaps,
    /// lost replies, late and dropped writes: always linearizable.
    #[test]
    fn concurrent_register_histories_check(s in specs(5, 2, 120, 12)) {
        let h = simulate(&s);
        let r = check(&h);
        prop_assert!(r.is_ok(), "{}", r);
    }

    /// Replace a read's result with an older value that real time alone
    /// proves stale: always rejected, blaming that read.
    #[test]
    fn provably_stale_mutations_are_rejected(
        s in specs(4, 1, 60, 24),
        pick in any::<prop::sample::Index>(),
    ) {
        let h = simulate(&s);
        prop_assert!(check(&h).is_ok());
        let candidates = stale_candidates(&h);
        prop_assume!(!candidates.is_empty());
        let (x, value) = candidates[pick.index(candidates.len())].clone();
        let mut ops: Vec<Operation> = h.ops().to_vec();
        ops[x].output = Outcome::Ok(Output::Get(value));
        let mutated: History = ops.into_iter().collect();
        let r = check(&mutated);
        prop_assert!(!r.is_ok(), "mutation of op {} accepted", x);
        let v = r.violations().next();
        prop_assert!(v.is_some(), "{}", r);
        if let Some(v) = v {
            prop_assert_eq!(v.blocked, x as u64, "{}", v);
            prop_assert!(v.explanation.contains("stale read"), "{}", v);
        }
    }

    /// Medium runs with a few replies corrupted at random (any op kind, any
    /// value seen in the run): the verdict matches an independent sweep
    /// checker, both ways. Exercises the search itself on violations that
    /// real time alone cannot refute (e.g. non-monotonic reads).
    #[test]
    fn agrees_with_sweep_reference_on_corrupted_runs(
        s in specs(4, 2, 60, 40),
        corruptions in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..3),
    ) {
        let h = simulate(&s);
        prop_assert!(sweep_check(&h), "reference rejects a simulated run");
        let h = corrupt(&h, &corruptions);
        let r = check(&h);
        prop_assert_eq!(r.is_ok(), sweep_check(&h), "{}\n{:?}", r, h);
    }

    /// Tiny arbitrary histories (mostly not linearizable): the WGL search
    /// with memo and pruning agrees with trying every order.
    #[test]
    fn agrees_with_brute_force(
        raw in prop::collection::vec(
            (0u64..3, 0u64..30, 0u64..15, 0u8..4, 0usize..5, 0u8..6, 0u8..3),
            1..8,
        )
    ) {
        compare_with_brute_force(&tiny_history(&raw, 4))?;
    }

    /// The same with half the ops indeterminate and repeated values, to
    /// exercise the reductions for indeterminate ops (interchangeable ones,
    /// spent writes, commuting neighbours).
    #[test]
    fn agrees_with_brute_force_when_many_ops_time_out(
        raw in prop::collection::vec(
            (0u64..3, 0u64..30, 0u64..15, 0u8..4, 0usize..5, 0u8..8, 0u8..3),
            1..9,
        )
    ) {
        compare_with_brute_force(&tiny_history(&raw, 3))?;
    }
}

fn compare_with_brute_force(h: &History) -> Result<(), TestCaseError> {
    let r = check(h);
    let expected = brute_force(h);
    prop_assert_eq!(r.is_ok(), expected, "{}\n{:?}", r, h);
    for v in r.violations() {
        // Every op in the window is the history's own, unchanged.
        prop_assert!(v
            .window
            .iter()
            .any(|w| w.role == Role::Blocked && w.id == v.blocked));
        for w in &v.window {
            let op = &h.ops()[w.id as usize];
            prop_assert_eq!(&op.input, &w.input);
            prop_assert_eq!(&op.output, &w.output);
            prop_assert_eq!(op.call, w.call);
        }
    }
    let decided = r
        .keys
        .iter()
        .all(|k| !matches!(k.verdict, Verdict::Unknown { .. }));
    prop_assert!(decided, "{}", r);
    Ok(())
}

/// Replaces the replies of the chosen definite ops with other plausible
/// replies: a value written somewhere in the run, a nearby INCR result, a
/// flipped DEL flag.
fn corrupt(h: &History, picks: &[(prop::sample::Index, prop::sample::Index)]) -> History {
    let mut values: Vec<Option<Vec<u8>>> = vec![None];
    for op in h.ops() {
        if let Input::Set(v) = &op.input {
            values.push(Some(v.clone()));
        }
    }
    let mut ops: Vec<Operation> = h.ops().to_vec();
    let definite: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].output, Outcome::Ok(_)))
        .collect();
    if definite.is_empty() {
        return h.clone();
    }
    for (which, what) in picks {
        let i = definite[which.index(definite.len())];
        let new = match &ops[i].output {
            Outcome::Ok(Output::Get(_)) => Output::Get(values[what.index(values.len())].clone()),
            Outcome::Ok(Output::Incr(n)) => Output::Incr(n + what.index(5) as i64 - 2),
            Outcome::Ok(Output::Del(d)) => Output::Del(match d {
                Some(b) => Some(!b),
                None => Some(what.index(2) == 0),
            }),
            other => match other {
                Outcome::Ok(o) => o.clone(),
                _ => continue,
            },
        };
        ops[i].output = Outcome::Ok(new);
    }
    ops.into_iter().collect()
}

/// (op index, older value) pairs for definite GETs where the older value
/// would be provably stale.
fn stale_candidates(h: &History) -> Vec<(usize, Option<Vec<u8>>)> {
    let mut values: Vec<Option<Vec<u8>>> = vec![None];
    for op in h.ops() {
        match (&op.input, &op.output) {
            (_, Outcome::Fail) => {}
            (Input::Set(v), _) => values.push(Some(v.clone())),
            (Input::Incr, Outcome::Ok(Output::Incr(n))) => {
                values.push(Some(n.to_string().into_bytes()))
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (x, op) in h.ops().iter().enumerate() {
        let Outcome::Ok(Output::Get(actual)) = &op.output else {
            continue;
        };
        for v in &values {
            if v != actual && provably_stale(h, x, v) {
                out.push((x, v.clone()));
            }
        }
    }
    out
}

/// Builds a one-key history from raw tuples; `outcome < ok_below` is a
/// definite reply, `ok_below..ok_below + 2` indeterminate, above that failed.
fn tiny_history(raw: &[(u64, u64, u64, u8, usize, u8, u8)], ok_below: u8) -> History {
    const SETS: [&str; 4] = ["a", "b", "1", "2"];
    let mut h = History::new();
    for &(client, call, dur, kind, val, outcome, del) in raw {
        let input = match kind {
            0 => Input::Get,
            1 => Input::set(SETS[val % SETS.len()]),
            2 => Input::Del,
            _ => Input::Incr,
        };
        let output = match &input {
            Input::Get => Output::Get(val.checked_sub(1).map(|i| SETS[i].into())),
            Input::Set(_) => Output::Set,
            Input::Del => Output::Del([Some(true), Some(false), None][del as usize % 3]),
            Input::Incr => Output::Incr(val as i64 % 3 + 1),
        };
        if outcome < ok_below {
            h.ok(client, "k", call, call + dur, input, output);
        } else if outcome < ok_below + 2 {
            h.indeterminate(client, "k", call, input);
        } else {
            h.fail(client, "k", call, call + dur, input);
        }
    }
    h
}
