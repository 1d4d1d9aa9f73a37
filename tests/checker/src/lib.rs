//! # Linearizability checker for leasekv histories
//!
//! Fault-injection tests record what their clients did — each operation's
//! call time, return time and reply — and ask this crate whether some
//! single sequential order of those operations, consistent with real time,
//! explains every reply. If none exists, the store served a stale read,
//! lost an acknowledged write, or otherwise broke linearizability, and the
//! report says which operations prove it.
//!
//! ## Model
//!
//! Keys are independent registers, so the history is split by key and each
//! key is checked alone (linearizability is compositional). A key is absent
//! or holds a byte string; it starts absent unless
//! [`History::set_initial`] says otherwise. Operations:
//!
//! * `GET -> Option<value>` (`None` = absent);
//! * `SET value -> OK`;
//! * `DEL -> removed` (`Some(bool)`, or `None` when unknown); leaves it absent;
//! * `INCR -> n`: read-modify-write; absent counts as 0; the value must be
//!   the canonical decimal form of an `i64` (as Redis requires — `"007"` or
//!   `"+1"` are not integers) and is stored as its decimal string, so
//!   `SET "5"`, `INCR -> 6`, `GET -> "6"` is consistent. An `INCR` of a
//!   non-integer, or one that would overflow, is an error with no effect.
//!
//! Clients should write unique values so a read tells which write it saw.
//!
//! ## Outcomes
//!
//! Each operation ends [`Outcome::Ok`] (definite: it took effect once,
//! between call and return, and replied as recorded), [`Outcome::Fail`]
//! (definitely not applied: dropped before checking) or
//! [`Outcome::Indeterminate`] (timeout, connection lost after sending).
//! An indeterminate operation may take effect at any point after its call —
//! including after the history ends — or never; its return is at +infinity
//! and its reply unconstrained. So a read of an indeterminate `SET`'s value
//! is fine at any later time, and so is never seeing it; but once a read
//! sees it, later reads cannot go back to older values.
//!
//! ## Algorithm
//!
//! Wing & Gong's search as improved by Lowe ("Testing for
//! linearizability", 2017), the approach porcupine also takes: call and
//! return entries in a doubly linked list sorted by time; repeatedly pick a
//! call entry that precedes the first return entry, apply it to the model,
//! and if it is allowed and the configuration (bitset of linearized
//! operations, model state) is new, lift its entries out of the list;
//! backtrack at a return entry. The memo of configurations (a hash set with
//! an incrementally maintained Zobrist hash) bounds the work by the number
//! of distinct configurations rather than orders (details in `src/search.rs`).
//!
//! Indeterminate operations get a call entry but no return entry, so they
//! never force a backtrack: the search succeeds once every *definite*
//! operation is linearized, leaving unneeded indeterminate ones out (which
//! is the same as applying them after everything else). Because they stay
//! pending forever, a naive search tries them at every point and blows up
//! with a few dozen timeouts; these reductions keep it near-linear on
//! realistic histories and are each argued complete in the source:
//!
//! * their call entries sit in a separate list, and are tried only when no
//!   definite candidate works;
//! * one is applied only right before an operation that needs it: an
//!   operation that commutes with, or hides, the indeterminate one just
//!   before it is skipped there (that order is explored elsewhere);
//! * pending indeterminate operations that would act identically are
//!   interchangeable, so only the earliest is tried;
//! * a value no remaining operation can observe (no `GET` returns it, no
//!   `INCR` can climb from it to a value anyone observes) is *dead*; all
//!   dead values are merged into one state, and indeterminate operations
//!   that only produce dead values are skipped when nothing is left for
//!   them to explain (a `DEL` that reported a removal).
//!
//! Every reduction is checked against two independent reference checkers
//! (exhaustive orders on tiny histories, a Knossos-style configuration
//! sweep on medium ones) by the property tests.
//!
//! Before searching, each definite `GET` is tested against real time
//! alone: a read of a value nothing could have written, or a *stale* read —
//! some write of another value returned before the read began, and every
//! write of the value read returned before that write began — is refuted
//! at once, in O(reads x writes). These are the usual anomalies, and the
//! search (exponential in the worst case, e.g. many overlapping blind
//! writes) is not needed for them.
//!
//! Each key's search has a budget ([`CheckOptions`]): when it runs out the
//! verdict is [`Verdict::Unknown`], never a hang. Malformed operations (a
//! reply of the wrong kind, a return before the call, a definite reply
//! without a return time, duplicate ids) also give `Unknown` for their key.
//!
//! ## Reports
//!
//! A failed search reports the furthest point it reached: every operation
//! that returned before some operation X's return was linearized, but X
//! could not be. That time prefix is the shortest non-linearizable one, so
//! the [`Violation`] shows X, the operations concurrent with it, the end of
//! the prefix and, for a stale read, the write that proves it, as an ASCII
//! timeline with an explanation in words.
//!
//! ## Usage
//!
//! ```
//! use linearizability::{check, Input, Output, Recorder};
//!
//! let rec = Recorder::new();
//! let op = rec.invoke(1, "k", Input::set("a"));
//! op.ok(Output::Set);
//! let op = rec.invoke(2, "k", Input::Get);
//! op.ok(Output::found("a"));
//! let report = check(&rec.history());
//! assert!(report.is_ok(), "{report}");
//! ```

mod demand;
mod explain;
mod history;
mod model;
mod prepare;
mod realtime;
mod recorder;
mod report;
mod search;

pub use history::{History, Input, Key, Operation, Outcome, Output, Value};
pub use recorder::{OpHandle, Recorder};
pub use report::{KeyReport, Prefix, Report, Role, Verdict, Violation, WindowOp};
pub use search::CheckOptions;

use search::Found;

/// The `client` of the reads [`check_no_lost_writes`] appends.
pub const FINAL_READ_CLIENT: u64 = u64::MAX;

/// Checks every key of `history` with the default budget.
pub fn check(history: &History) -> Report {
    check_with(history, &CheckOptions::default())
}

/// Checks every key of `history` within `opts`' per-key budget.
pub fn check_with(history: &History, opts: &CheckOptions) -> Report {
    let keys = prepare::partition(history)
        .into_iter()
        .map(|(key, prepared)| match prepared {
            Err(reason) => KeyReport {
                key,
                ops: 0,
                steps: 0,
                verdict: Verdict::Unknown { reason },
            },
            Ok(kh) => {
                let (steps, verdict) = check_key(&kh, history, opts);
                KeyReport {
                    key,
                    ops: kh.ops.len(),
                    steps,
                    verdict,
                }
            }
        })
        .collect();
    Report { keys }
}

/// One key: real-time refutations first (cheap, and the search can be
/// exponential), then the WGL search.
fn check_key(kh: &prepare::KeyHistory, history: &History, opts: &CheckOptions) -> (u64, Verdict) {
    let rt = realtime::RealTime::new(kh);
    if let Some(x) = rt.first_refuted_read() {
        let v = explain::explain(kh, history, &rt, x, None);
        return (0, Verdict::NotLinearizable(Box::new(v)));
    }
    let result = search::search(kh, opts);
    let verdict = match result.found {
        Found::Linearizable => Verdict::Linearizable,
        Found::NotLinearizable(best) => Verdict::NotLinearizable(Box::new(explain::explain(
            kh,
            history,
            &rt,
            best.blocked,
            Some(&best),
        ))),
        Found::GaveUp { reason, best } => Verdict::Unknown {
            reason: match best {
                Some(b) => format!(
                    "{reason} (furthest point: {} ops linearized)",
                    b.prefix.len()
                ),
                None => reason,
            },
        },
    };
    (result.steps, verdict)
}

/// Checks `history` plus a final read of each key in `final_reads`, taken
/// after every operation in the history: an acknowledged `SET` whose value
/// is not the final one must have been overwritten by an operation that
/// could follow it, or the write was lost. Keys absent from `final_reads`
/// are checked without a final read.
pub fn check_no_lost_writes<I, K, V>(history: &History, final_reads: I) -> Report
where
    I: IntoIterator<Item = (K, Option<V>)>,
    K: Into<Key>,
    V: Into<Value>,
{
    check_no_lost_writes_with(history, final_reads, &CheckOptions::default())
}

/// [`check_no_lost_writes`] with an explicit budget.
pub fn check_no_lost_writes_with<I, K, V>(
    history: &History,
    final_reads: I,
    opts: &CheckOptions,
) -> Report
where
    I: IntoIterator<Item = (K, Option<V>)>,
    K: Into<Key>,
    V: Into<Value>,
{
    let mut h = history.clone();
    // Strictly after every call and return in the history.
    let at = history.last_time().saturating_add(1);
    for (key, value) in final_reads {
        let id = h.next_id();
        h.push(Operation {
            id,
            client: FINAL_READ_CLIENT,
            key: key.into(),
            call: at,
            ret: Some(at),
            input: Input::Get,
            output: Outcome::Ok(Output::Get(value.map(Into::into))),
        });
    }
    check_with(&h, opts)
}
