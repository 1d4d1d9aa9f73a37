//! Hand-written histories: the accepted ones are linearizable, each rejected
//! one is a specific anomaly the fault-injection harness must be able to see.

use linearizability::{
    check, check_no_lost_writes, check_with, CheckOptions, History, Input, Output, Report, Role,
    Verdict, Violation,
};

fn set(v: &str) -> Input {
    Input::set(v)
}

fn got(v: &str) -> Output {
    Output::found(v)
}

fn assert_ok(h: &History) {
    let r = check(h);
    assert!(r.is_ok(), "expected linearizable:\n{r}");
}

/// Asserts the only key is not linearizable and returns its violation.
fn violation(h: &History) -> Violation {
    let r = check(h);
    assert!(!r.is_ok(), "expected a violation");
    let v: Vec<&Violation> = r.violations().collect();
    assert_eq!(v.len(), 1, "{r}");
    v[0].clone()
}

fn window_ids(v: &Violation, role: Role) -> Vec<u64> {
    v.window
        .iter()
        .filter(|w| w.role == role)
        .map(|w| w.id)
        .collect()
}

#[test]
fn empty_history_is_linearizable() {
    let r = check(&History::new());
    assert!(r.is_ok());
    assert!(r.keys.is_empty());
}

#[test]
fn sequential_history_is_accepted() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::Get, Output::not_found());
    h.ok(1, "k", 20, 30, set("a"), Output::Set);
    h.ok(2, "k", 40, 50, Input::Get, got("a"));
    h.ok(2, "k", 60, 70, Input::Del, Output::Del(Some(true)));
    h.ok(1, "k", 80, 90, Input::Del, Output::Del(Some(false)));
    h.ok(1, "k", 100, 110, Input::Incr, Output::Incr(1));
    h.ok(2, "k", 120, 130, Input::Incr, Output::Incr(2));
    h.ok(2, "k", 140, 150, Input::Get, got("2"));
    assert_ok(&h);
}

#[test]
fn overlapping_sets_allow_either_final_value() {
    for winner in ["a", "b"] {
        let mut h = History::new();
        h.ok(1, "k", 0, 100, set("a"), Output::Set);
        h.ok(2, "k", 10, 90, set("b"), Output::Set);
        h.ok(3, "k", 200, 210, Input::Get, got(winner));
        h.ok(3, "k", 220, 230, Input::Get, got(winner));
        assert_ok(&h);
    }
}

#[test]
fn reads_during_overlapping_sets_may_see_either_order() {
    // Reader 3 sees a then b; reader 4 sees b only later. Both orders of the
    // writes are possible while they overlap; here only "a before b" works.
    let mut h = History::new();
    h.ok(1, "k", 0, 100, set("a"), Output::Set);
    h.ok(2, "k", 0, 100, set("b"), Output::Set);
    h.ok(3, "k", 10, 20, Input::Get, got("a"));
    h.ok(3, "k", 30, 40, Input::Get, got("b"));
    h.ok(4, "k", 50, 60, Input::Get, got("b"));
    assert_ok(&h);

    // And the mirror image.
    let mut h = History::new();
    h.ok(1, "k", 0, 100, set("a"), Output::Set);
    h.ok(2, "k", 0, 100, set("b"), Output::Set);
    h.ok(3, "k", 10, 20, Input::Get, got("b"));
    h.ok(3, "k", 30, 40, Input::Get, got("a"));
    assert_ok(&h);
}

#[test]
fn read_concurrent_with_set_may_see_old_or_new() {
    for seen in [None, Some("a")] {
        let mut h = History::new();
        h.ok(1, "k", 0, 100, set("a"), Output::Set);
        h.ok(
            2,
            "k",
            50,
            60,
            Input::Get,
            Output::Get(seen.map(Into::into)),
        );
        assert_ok(&h);
    }
}

#[test]
fn touching_intervals_count_as_concurrent() {
    // The GET is called at the very nanosecond the SET returns.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.ok(2, "k", 10, 20, Input::Get, Output::not_found());
    assert_ok(&h);
}

#[test]
fn stale_read_is_rejected_with_a_witness() {
    let mut h = History::new();
    let w1 = h.ok(1, "k", 0, 1_000, set("3"), Output::Set);
    let w2 = h.ok(1, "k", 2_000, 3_000, set("4"), Output::Set);
    let r = h.ok(2, "k", 4_000, 5_000, Input::Get, got("3"));
    let v = violation(&h);
    assert_eq!(v.key, b"k");
    assert_eq!(v.blocked, r);
    assert!(v.explanation.contains("GET returned \"3\""), "{v}");
    assert!(
        v.explanation
            .contains("SET \"4\" (op 1, client 1) completed at"),
        "{v}"
    );
    assert!(v.explanation.contains("stale read"), "{v}");
    assert!(v.explanation.contains(&format!("(op {w1})")), "{v}");
    assert_eq!(window_ids(&v, Role::Blocked), [r]);
    assert!(window_ids(&v, Role::Witness).contains(&w2), "{v}");
    // Proved without a search.
    assert_eq!(v.prefix, None);
    let text = v.to_string();
    assert!(text.contains("proved from real-time order alone"), "{text}");
    assert!(text.contains("key \"k\": NOT linearizable"), "{text}");
    assert!(text.contains("<- cannot be linearized"), "{text}");
    assert!(text.contains("<- witness"), "{text}");
}

#[test]
fn stale_read_of_absent_after_acknowledged_set_is_rejected() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.ok(2, "k", 20, 30, Input::Get, Output::not_found());
    let v = violation(&h);
    assert!(v.explanation.contains("GET returned nil"), "{v}");
    assert!(v.explanation.contains("stale read"), "{v}");
}

#[test]
fn lost_write_is_rejected() {
    // An acknowledged SET b is never visible: later reads see the older a.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.ok(2, "k", 20, 30, set("b"), Output::Set);
    h.ok(3, "k", 40, 50, Input::Get, got("a"));
    h.ok(3, "k", 60, 70, Input::Get, got("a"));
    let v = violation(&h);
    assert!(v.explanation.contains("SET \"b\""), "{v}");
}

#[test]
fn lost_write_found_by_final_read() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.ok(2, "k", 20, 30, set("b"), Output::Set);
    // The history alone is fine...
    assert_ok(&h);
    // ... but the final state shows b was lost.
    let r = check_no_lost_writes(&h, [("k", Some("a"))]);
    assert!(!r.is_ok(), "{r}");
    let text = r.to_string();
    assert!(text.contains("GET returned \"a\""), "{text}");
    // The right final value passes, and so does an overlapping write winning.
    assert!(check_no_lost_writes(&h, [("k", Some("b"))]).is_ok());
    let mut h2 = h.clone();
    h2.ok(3, "k", 25, 40, set("c"), Output::Set);
    assert!(check_no_lost_writes(&h2, [("k", Some("b"))]).is_ok());
    assert!(check_no_lost_writes(&h2, [("k", Some("c"))]).is_ok());
    // A key the history never touched must still be absent.
    assert!(check_no_lost_writes(&h, [("other", None::<&str>)]).is_ok());
    assert!(!check_no_lost_writes(&h, [("other", Some("x"))]).is_ok());
}

#[test]
fn final_read_may_see_an_indeterminate_write() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.indeterminate(2, "k", 20, set("b"));
    assert!(check_no_lost_writes(&h, [("k", Some("b"))]).is_ok());
    assert!(check_no_lost_writes(&h, [("k", Some("a"))]).is_ok());
    assert!(!check_no_lost_writes(&h, [("k", None::<&str>)]).is_ok());
}

#[test]
fn read_of_never_written_value_is_rejected() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.ok(2, "k", 5, 30, Input::Get, got("zzz"));
    let v = violation(&h);
    assert!(v.explanation.contains("never written"), "{v}");
}

#[test]
fn failed_writes_are_not_visible() {
    let mut h = History::new();
    h.fail(1, "k", 0, 10, set("a"));
    h.ok(2, "k", 20, 30, Input::Get, got("a"));
    let v = violation(&h);
    assert!(v.explanation.contains("failed writes do not count"), "{v}");
}

#[test]
fn two_incrs_returning_the_same_value_are_rejected() {
    let mut h = History::new();
    let a = h.ok(1, "k", 0, 100, Input::Incr, Output::Incr(1));
    let b = h.ok(2, "k", 10, 90, Input::Incr, Output::Incr(1));
    let v = violation(&h);
    assert!(v.explanation.contains("INCR returned 1"), "{v}");
    assert!(v.explanation.contains("also returned 1"), "{v}");
    let ids: Vec<u64> = v.window.iter().map(|w| w.id).collect();
    assert!(ids.contains(&a) && ids.contains(&b), "{v}");
}

#[test]
fn concurrent_incrs_with_distinct_results_are_accepted() {
    let mut h = History::new();
    h.ok(1, "k", 0, 100, Input::Incr, Output::Incr(2));
    h.ok(2, "k", 10, 90, Input::Incr, Output::Incr(1));
    h.ok(3, "k", 200, 210, Input::Get, got("2"));
    assert_ok(&h);
}

#[test]
fn incr_anomalies_are_rejected() {
    // INCR skipping a value.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::Incr, Output::Incr(1));
    h.ok(1, "k", 20, 30, Input::Incr, Output::Incr(3));
    violation(&h);

    // INCR on a non-integer cannot succeed.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("abc"), Output::Set);
    h.ok(1, "k", 20, 30, Input::Incr, Output::Incr(1));
    violation(&h);

    // INCR builds on SET "5"; "05" is not an integer.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("5"), Output::Set);
    h.ok(1, "k", 20, 30, Input::Incr, Output::Incr(6));
    h.ok(1, "k", 40, 50, Input::Get, got("6"));
    assert_ok(&h);
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("05"), Output::Set);
    h.ok(1, "k", 20, 30, Input::Incr, Output::Incr(6));
    violation(&h);

    // A read after an INCR must see its result, not the value before.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::Incr, Output::Incr(1));
    h.ok(1, "k", 20, 30, Input::Incr, Output::Incr(2));
    h.ok(2, "k", 40, 50, Input::Get, got("1"));
    let v = violation(&h);
    assert!(v.explanation.contains("stale read"), "{v}");
}

#[test]
fn non_monotonic_reads_by_one_client_are_rejected() {
    // SET 2 starts after SET 1 returned; once client 3 saw 2, it cannot see 1.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("1"), Output::Set);
    h.ok(2, "k", 20, 1_000, set("2"), Output::Set);
    h.ok(3, "k", 30, 40, Input::Get, got("2"));
    let r = h.ok(3, "k", 50, 60, Input::Get, got("1"));
    let v = violation(&h);
    assert_eq!(v.blocked, r);
    assert!(v.to_string().contains("GET returned \"1\""), "{v}");

    // The same reads in the other order are fine.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("1"), Output::Set);
    h.ok(2, "k", 20, 1_000, set("2"), Output::Set);
    h.ok(3, "k", 30, 40, Input::Get, got("1"));
    h.ok(3, "k", 50, 60, Input::Get, got("2"));
    assert_ok(&h);
}

#[test]
fn non_monotonic_reads_across_clients_are_rejected() {
    // Client 3 sees the new value, then client 4 (starting later) the old.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("old"), Output::Set);
    h.ok(2, "k", 20, 1_000, set("new"), Output::Set);
    h.ok(3, "k", 30, 40, Input::Get, got("new"));
    h.ok(4, "k", 50, 60, Input::Get, got("old"));
    violation(&h);
}

#[test]
fn read_of_deleted_value_is_rejected() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    let d = h.ok(1, "k", 20, 30, Input::Del, Output::Del(Some(true)));
    h.ok(2, "k", 40, 50, Input::Get, got("a"));
    let v = violation(&h);
    assert!(
        v.explanation.contains("DEL (op 1, client 1) completed"),
        "{v}"
    );
    assert!(window_ids(&v, Role::Witness).contains(&d), "{v}");
}

#[test]
fn del_reply_must_match_presence() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::Del, Output::Del(Some(true)));
    let v = violation(&h);
    assert!(v.explanation.contains("reported removing"), "{v}");

    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.ok(1, "k", 20, 30, Input::Del, Output::Del(Some(false)));
    let v = violation(&h);
    assert!(v.explanation.contains("reported nothing to remove"), "{v}");

    // An unknown DEL reply is unconstrained.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::Del, Output::Del(None));
    h.ok(1, "k", 20, 30, set("a"), Output::Set);
    h.ok(1, "k", 40, 50, Input::Del, Output::Del(None));
    h.ok(1, "k", 60, 70, Input::Get, Output::not_found());
    assert_ok(&h);
}

#[test]
fn initial_values_are_respected() {
    let mut h = History::new();
    h.set_initial("k", "init");
    h.ok(1, "k", 0, 10, Input::Get, got("init"));
    h.ok(1, "k", 20, 30, Input::Incr, Output::Incr(1));
    // INCR of "init" must fail: the INCR reply is impossible.
    violation(&h);

    let mut h = History::new();
    h.set_initial("k", "41");
    h.ok(1, "k", 0, 10, Input::Incr, Output::Incr(42));
    assert_ok(&h);

    let mut h = History::new();
    h.set_initial("k", "init");
    h.ok(1, "k", 0, 10, Input::Get, Output::not_found());
    let v = violation(&h);
    assert!(v.explanation.contains("held \"init\" initially"), "{v}");
}

#[test]
fn keys_are_checked_independently() {
    let mut h = History::new();
    h.ok(1, "good", 0, 10, set("a"), Output::Set);
    h.ok(1, "good", 20, 30, Input::Get, got("a"));
    h.ok(1, "bad", 0, 10, set("a"), Output::Set);
    h.ok(1, "bad", 20, 30, Input::Get, got("b"));
    let r = check(&h);
    assert!(!r.is_ok());
    assert_eq!(r.verdict(b"good"), Some(&Verdict::Linearizable));
    assert!(matches!(
        r.verdict(b"bad"),
        Some(Verdict::NotLinearizable(_))
    ));
    assert_eq!(r.keys.len(), 2);
    let text = r.to_string();
    assert!(
        text.contains("2 keys, 4 ops: 1 linearizable, 1 NOT linearizable, 0 unknown"),
        "{text}"
    );
    assert!(text.contains("key \"bad\""), "{text}");
    assert!(!text.contains("key \"good\""), "{text}");
}

#[test]
fn malformed_histories_are_unknown_not_panics() {
    let mut h = History::new();
    h.ok(1, "k", 10, 5, Input::Get, Output::not_found());
    let r = check(&h);
    assert!(!r.is_ok());
    match r.verdict(b"k") {
        Some(Verdict::Unknown { reason }) => assert!(reason.contains("malformed"), "{reason}"),
        other => panic!("expected unknown, got {other:?}"),
    }

    let mut h = History::new();
    h.ok(1, "k", 0, 5, Input::set("a"), Output::Incr(1));
    assert!(matches!(r.verdict(b"k"), Some(Verdict::Unknown { .. })));
    assert!(!check(&h).is_ok());
}

/// `n` overlapping blind SETs, then reads v0, v1, v0 in sequence: the
/// second v0 is impossible, but only a search over the orders of the SETs
/// shows it (none is stale by real time alone).
fn flip_flop(n: u64) -> History {
    let mut h = History::new();
    for i in 0..n {
        h.ok(i, "k", 0, 100, Input::set(format!("v{i}")), Output::Set);
    }
    h.ok(99, "k", 10, 20, Input::Get, got("v0"));
    h.ok(99, "k", 30, 40, Input::Get, got("v1"));
    h.ok(99, "k", 50, 60, Input::Get, got("v0"));
    h
}

#[test]
fn exhausted_budget_gives_unknown() {
    let h = flip_flop(12);
    let opts = CheckOptions {
        max_steps: 10,
        timeout: None,
    };
    let r: Report = check_with(&h, &opts);
    assert!(!r.is_ok());
    let unknown: Vec<_> = r.unknown().collect();
    assert_eq!(unknown.len(), 1);
    assert!(unknown[0].1.contains("budget of 10 steps"), "{r}");
    assert!(r.to_string().contains("UNKNOWN"));
    // With the default budget the same history is decided.
    let r = check(&h);
    let Some(Verdict::NotLinearizable(v)) = r.verdict(b"k") else {
        panic!("expected a violation: {r}");
    };
    assert_eq!(v.blocked, 14, "{v}");
    let prefix = v.prefix.as_ref().expect("found by search");
    assert!(prefix.len >= 2, "{v}");
    assert!(v.to_string().contains("longest linearizable prefix"), "{v}");
}

#[test]
fn time_limit_gives_unknown() {
    // 2^16 orders of blind writes: far more than the 4096 steps between
    // clock reads, so the (zero) time limit is noticed.
    let h = flip_flop(16);
    let opts = CheckOptions {
        max_steps: u64::MAX,
        timeout: Some(std::time::Duration::ZERO),
    };
    let r = check_with(&h, &opts);
    let unknown: Vec<_> = r.unknown().collect();
    assert_eq!(unknown.len(), 1, "{r}");
    assert!(unknown[0].1.contains("time limit"), "{r}");
}

#[test]
fn window_lists_concurrent_ops() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, set("a"), Output::Set);
    h.ok(2, "k", 20, 30, set("b"), Output::Set);
    let c = h.ok(3, "k", 35, 60, set("c"), Output::Set);
    let r = h.ok(4, "k", 40, 50, Input::Get, got("a"));
    h.ok(5, "k", 100, 110, Input::Get, got("c"));
    let v = violation(&h);
    assert_eq!(v.blocked, r);
    assert_eq!(window_ids(&v, Role::Concurrent), [c]);
    // Sorted by call time.
    let calls: Vec<u64> = v.window.iter().map(|w| w.call).collect();
    let mut sorted = calls.clone();
    sorted.sort();
    assert_eq!(calls, sorted);
    assert_eq!(v.timeline().lines().count(), v.window.len());
}
