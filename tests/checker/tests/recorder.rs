//! The thread-safe recorder.

use linearizability::{check, Input, Outcome, Output, Recorder};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;

#[test]
fn records_calls_returns_and_outcomes() {
    let rec = Recorder::new();
    assert!(rec.is_empty());
    let a = rec.invoke(1, "k", Input::set("a"));
    let b = rec.invoke(2, "k", Input::Get);
    let c = rec.invoke(3, "k", Input::Del);
    let d = rec.invoke(4, "k", Input::Incr);
    assert_eq!((a.id(), b.id(), c.id(), d.id()), (0, 1, 2, 3));
    a.ok(Output::Set);
    b.fail();
    c.indeterminate();
    drop(d); // unresolved: stays indeterminate

    let h = rec.history();
    assert_eq!(h.len(), 4);
    let ops = h.ops();
    assert_eq!(ops[0].output, Outcome::Ok(Output::Set));
    assert!(ops[0].ret.is_some_and(|r| r >= ops[0].call));
    assert_eq!(ops[1].output, Outcome::Fail);
    assert!(ops[1].ret.is_some());
    assert_eq!(ops[2].output, Outcome::Indeterminate);
    assert_eq!(ops[2].ret, None);
    assert_eq!(ops[3].output, Outcome::Indeterminate);
    assert_eq!(ops[3].key, b"k");
    assert_eq!(ops[3].client, 4);
    // Calls are in invocation order.
    assert!(ops.windows(2).all(|w| w[0].call <= w[1].call));
}

#[test]
fn in_flight_ops_snapshot_as_indeterminate() {
    let rec = Recorder::new();
    let op = rec.invoke(1, "k", Input::set("x"));
    let snap = rec.history();
    assert_eq!(snap.ops()[0].output, Outcome::Indeterminate);
    op.ok(Output::Set);
    assert_eq!(rec.history().ops()[0].output, Outcome::Ok(Output::Set));
    // The earlier snapshot is unaffected.
    assert_eq!(snap.ops()[0].output, Outcome::Indeterminate);
}

#[test]
fn clones_share_one_history_across_threads() {
    let rec = Recorder::new();
    // A real atomic register shared by the threads, so the history they
    // record must be linearizable.
    let reg: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let threads: Vec<_> = (0..4u64)
        .map(|client| {
            let rec = rec.clone();
            let reg = Arc::clone(&reg);
            thread::spawn(move || {
                for i in 0..50u64 {
                    let key = "k";
                    if i % 2 == 0 {
                        let v = format!("c{client}-{i}");
                        let op = rec.invoke(client, key, Input::set(v.clone()));
                        *reg.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.into_bytes());
                        op.ok(Output::Set);
                    } else {
                        let op = rec.invoke(client, key, Input::Get);
                        let v = reg.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        op.ok(Output::Get(v));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("recording thread panicked");
    }
    let h = rec.history();
    assert_eq!(h.len(), 200);
    let ids: HashSet<u64> = h.ops().iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), 200);
    let r = check(&h);
    assert!(r.is_ok(), "{r}");
}

#[test]
fn recorders_can_share_a_base_instant() {
    let base = std::time::Instant::now();
    let a = Recorder::with_base(base);
    let b = Recorder::with_base(base);
    let t1 = a.now();
    let t2 = b.now();
    assert!(t2 >= t1);
}
