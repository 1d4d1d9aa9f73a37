//! Size tests. Only verdicts are asserted; times are noted for reference.
//!
//! Measured in a debug (unoptimised) build on the 2-core dev machine:
//! * 2000 ops, 8 clients, 4 keys, 5% indeterminate: ~10 ms;
//! * a stale read injected near its end (refuted by real time): ~8 ms;
//! * a violation only the search can find, after 2000 ops: ~16 ms;
//! * 2000 ops on one hot key, 25% indeterminate: ~0.45 s.
//!
//! Run with `--nocapture` to see the times.

mod common;

use common::{random_history, Rng};
use linearizability::{check, History, Input, Outcome, Output, Verdict};
use std::time::Instant;

#[test]
fn two_thousand_ops_eight_clients_four_keys() {
    let h = random_history(0x5eed, 2000, 8, 4, 5);
    assert_eq!(h.len(), 2000);
    let started = Instant::now();
    let r = check(&h);
    eprintln!(
        "2000 ops / 8 clients / 4 keys: {:?}, steps per key {:?}",
        started.elapsed(),
        r.keys.iter().map(|k| k.steps).collect::<Vec<_>>()
    );
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.keys.len(), 4);
}

#[test]
fn several_seeds_of_large_histories_check() {
    let mut rng = Rng::new(7);
    for _ in 0..4 {
        let seed = rng.next_u64();
        let h = random_history(seed, 1500, 8, 2, 10);
        let r = check(&h);
        assert!(r.is_ok(), "seed {seed}: {r}");
    }
}

#[test]
fn one_hot_key_with_many_timeouts() {
    // 2000 ops on one key, a quarter without replies.
    let h = random_history(0xfeed, 2000, 8, 1, 25);
    let started = Instant::now();
    let r = check(&h);
    eprintln!(
        "2000 ops, 25% indeterminate, one key: {:?}",
        started.elapsed()
    );
    assert!(r.is_ok(), "{r}");
}

#[test]
fn stale_read_late_in_a_large_history_is_found() {
    let h = random_history(0xbad, 2000, 8, 4, 5);
    // Rewrite the last definite GET of k0 that saw a value to a value
    // written much earlier and overwritten since.
    let mut ops = h.ops().to_vec();
    let first_set = ops
        .iter()
        .position(|o| {
            o.key == b"k0"
                && matches!(o.input, linearizability::Input::Set(_))
                && matches!(o.output, Outcome::Ok(_))
        })
        .expect("some acknowledged SET on k0");
    let old = match &ops[first_set].input {
        linearizability::Input::Set(v) => v.clone(),
        _ => unreachable!("selected a SET"),
    };
    let x = ops
        .iter()
        .rposition(|o| o.key == b"k0" && matches!(o.output, Outcome::Ok(Output::Get(Some(_)))))
        .expect("some read on k0");
    ops[x].output = Outcome::Ok(Output::Get(Some(old)));
    let mutated: History = ops.into_iter().collect();
    let started = Instant::now();
    let r = check(&mutated);
    eprintln!("violation search in 2000 ops: {:?}", started.elapsed());
    match r.verdict(b"k0") {
        Some(Verdict::NotLinearizable(v)) => assert_eq!(v.blocked, x as u64, "{v}"),
        other => panic!("expected a violation on k0, got {other:?}"),
    }
    // The other keys are untouched.
    assert_eq!(r.violations().count(), 1);
}

#[test]
fn violation_only_a_search_can_find_at_the_end_of_a_large_history() {
    // After a 2000-op run, two overlapping SETs and then reads of a and b:
    // once both SETs returned and a read saw a, b is gone for good. No
    // single write makes the read of b stale by real time (the SETs
    // overlap), so the search must exhaust every order of the key.
    let mut h = random_history(0xabc, 2000, 8, 4, 10);
    let t = h.last_time() + 1_000;
    h.ok(100, "k1", t, t + 100, Input::set("tail-a"), Output::Set);
    h.ok(101, "k1", t + 10, t + 90, Input::set("tail-b"), Output::Set);
    h.ok(
        102,
        "k1",
        t + 200,
        t + 210,
        Input::Get,
        Output::found("tail-a"),
    );
    let last = h.ok(
        102,
        "k1",
        t + 220,
        t + 230,
        Input::Get,
        Output::found("tail-b"),
    );
    let started = Instant::now();
    let r = check(&h);
    eprintln!(
        "search-only violation after 2000 ops: {:?}",
        started.elapsed()
    );
    match r.verdict(b"k1") {
        Some(Verdict::NotLinearizable(v)) => {
            assert_eq!(v.blocked, last, "{v}");
            assert!(v.prefix.is_some(), "found by the search: {v}");
        }
        other => panic!("expected a violation on k1, got {other:?}"),
    }
    assert_eq!(r.violations().count(), 1, "{r}");
}
