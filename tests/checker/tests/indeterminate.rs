//! Operations with no reply: they may take effect any time after their call,
//! or never.

use linearizability::{check, History, Input, Output};

/// Whether the history checks; prints the report when it does not.
fn is_ok(h: &History) -> bool {
    let r = check(h);
    if !r.is_ok() {
        eprintln!("{r}");
    }
    r.is_ok()
}

#[test]
fn read_of_indeterminate_set_is_allowed() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::set("a"), Output::Set);
    h.indeterminate(2, "k", 20, Input::set("b"));
    h.ok(3, "k", 30, 40, Input::Get, Output::found("b"));
    assert!(is_ok(&h));
}

#[test]
fn indeterminate_set_may_take_effect_long_after_the_client_gave_up() {
    // Reads keep seeing a, and only much later b.
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::set("a"), Output::Set);
    h.indeterminate(2, "k", 20, Input::set("b"));
    for i in 0..5 {
        h.ok(
            3,
            "k",
            100 + i * 100,
            150 + i * 100,
            Input::Get,
            Output::found("a"),
        );
    }
    h.ok(4, "k", 1_000_000, 1_000_010, Input::Get, Output::found("b"));
    assert!(is_ok(&h));
}

#[test]
fn unneeded_indeterminate_set_is_ignored() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::set("a"), Output::Set);
    h.indeterminate(2, "k", 20, Input::set("b"));
    h.ok(3, "k", 30, 40, Input::Get, Output::found("a"));
    assert!(is_ok(&h));
    // Even when many never take effect.
    for i in 0..200 {
        h.indeterminate(2, "k", 50 + i, Input::set(format!("lost{i}")));
    }
    h.ok(3, "k", 1_000, 1_010, Input::Get, Output::found("a"));
    assert!(is_ok(&h));
}

#[test]
fn indeterminate_value_cannot_be_read_before_its_call() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::Get, Output::found("b"));
    h.indeterminate(2, "k", 20, Input::set("b"));
    assert!(!check(&h).is_ok());
}

#[test]
fn once_seen_an_indeterminate_write_sticks() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::set("a"), Output::Set);
    h.indeterminate(2, "k", 20, Input::set("b"));
    h.ok(3, "k", 30, 40, Input::Get, Output::found("b"));
    h.ok(3, "k", 50, 60, Input::Get, Output::found("a"));
    let r = check(&h);
    assert!(!r.is_ok());
    assert!(r.to_string().contains("GET returned \"a\""), "{r}");
}

#[test]
fn indeterminate_incr_may_or_may_not_count() {
    for seen in [1, 2] {
        let mut h = History::new();
        h.indeterminate(1, "k", 0, Input::Incr);
        h.ok(2, "k", 10, 20, Input::Incr, Output::Incr(seen));
        assert!(is_ok(&h), "seen {seen}");
    }
    let mut h = History::new();
    h.indeterminate(1, "k", 0, Input::Incr);
    h.ok(2, "k", 10, 20, Input::Incr, Output::Incr(3));
    assert!(!check(&h).is_ok());

    // Both timed-out increments may have landed, in any order with others.
    let mut h = History::new();
    h.indeterminate(1, "k", 0, Input::Incr);
    h.indeterminate(2, "k", 5, Input::Incr);
    h.ok(3, "k", 10, 20, Input::Incr, Output::Incr(3));
    h.ok(3, "k", 30, 40, Input::Get, Output::found("3"));
    assert!(is_ok(&h));
}

#[test]
fn indeterminate_del_may_explain_a_missing_value() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::set("a"), Output::Set);
    h.indeterminate(2, "k", 20, Input::Del);
    h.ok(3, "k", 30, 40, Input::Get, Output::not_found());
    h.ok(3, "k", 50, 60, Input::Get, Output::not_found());
    assert!(is_ok(&h));
    // ... but not one that reappears.
    h.ok(3, "k", 70, 80, Input::Get, Output::found("a"));
    assert!(!check(&h).is_ok());
}

#[test]
fn unread_indeterminate_set_can_explain_a_del_that_removed_something() {
    // The pruning of unread indeterminate writes must not hide this one.
    let mut h = History::new();
    h.indeterminate(1, "k", 0, Input::set("ghost"));
    h.ok(2, "k", 10, 20, Input::Del, Output::Del(Some(true)));
    assert!(is_ok(&h));
}

#[test]
fn indeterminate_get_is_unconstrained() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::set("a"), Output::Set);
    h.indeterminate(2, "k", 20, Input::Get);
    assert!(is_ok(&h));
}

#[test]
fn failed_ops_are_ignored_even_when_they_would_conflict() {
    let mut h = History::new();
    h.ok(1, "k", 0, 10, Input::set("a"), Output::Set);
    h.fail(2, "k", 20, 30, Input::set("b"));
    h.fail(2, "k", 40, 50, Input::Del);
    h.ok(3, "k", 60, 70, Input::Get, Output::found("a"));
    assert!(is_ok(&h));
}
