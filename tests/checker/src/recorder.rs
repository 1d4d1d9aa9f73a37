//! Thread-safe history recording for tests.
//!
//! `invoke` records the call *before* the request is sent and `ok`/`fail`
//! record the return *after* the reply is read, so each recorded interval
//! contains the real one. An operation is stored as indeterminate from the
//! moment it is invoked: a snapshot taken while it is in flight, or a handle
//! dropped without a verdict (a panic, an early `?`), keeps it that way,
//! which is the conservative reading.

use crate::history::{History, Input, Key, Operation, Outcome, Output};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Records operations from many threads. Cloning is cheap (shared state).
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Instant,
    /// Invariant: `ops[i].id == i`; handles address their op by index.
    ops: Mutex<Vec<Operation>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose time zero is now.
    pub fn new() -> Self {
        Self::with_base(Instant::now())
    }

    /// A recorder whose time zero is `base` (share it to line up recorders).
    pub fn with_base(base: Instant) -> Self {
        Recorder {
            inner: Arc::new(Inner {
                base,
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Nanoseconds since the base instant (saturating; never goes backwards).
    pub fn now(&self) -> u64 {
        u64::try_from(self.inner.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records the call of an operation; call this just before sending it.
    pub fn invoke(&self, client: u64, key: impl Into<Key>, input: Input) -> OpHandle {
        let key = key.into();
        let mut ops = self.lock();
        // Read the clock under the lock so ids and call times agree in order.
        let call = self.now();
        let index = ops.len();
        ops.push(Operation {
            id: index as u64,
            client,
            key,
            call,
            ret: None,
            input,
            output: Outcome::Indeterminate,
        });
        OpHandle {
            recorder: self.clone(),
            index,
        }
    }

    /// A snapshot of everything recorded so far (in-flight ops indeterminate).
    pub fn history(&self) -> History {
        self.lock().iter().cloned().collect()
    }

    /// Number of operations recorded so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Operation>> {
        // A panic while holding the lock cannot leave the Vec half-updated
        // (every critical section is a single push or field store).
        self.inner.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, index: usize, outcome: Outcome) {
        let ret = self.now();
        let mut ops = self.lock();
        if let Some(op) = ops.get_mut(index) {
            op.ret = match outcome {
                Outcome::Indeterminate => None,
                _ => Some(ret.max(op.call)),
            };
            op.output = outcome;
        }
    }
}

/// An operation in flight. Resolve it with exactly one of `ok`, `fail` or
/// `indeterminate`; dropping it unresolved leaves it indeterminate.
#[derive(Debug)]
#[must_use = "an unresolved operation is recorded as indeterminate"]
pub struct OpHandle {
    recorder: Recorder,
    index: usize,
}

impl OpHandle {
    /// The id the operation has in the history.
    pub fn id(&self) -> u64 {
        self.index as u64
    }

    /// The reply arrived: record it (call just after reading the reply).
    pub fn ok(self, output: Output) {
        self.recorder.finish(self.index, Outcome::Ok(output));
    }

    /// The store definitely did not apply the operation (clear rejection).
    pub fn fail(self) {
        self.recorder.finish(self.index, Outcome::Fail);
    }

    /// No usable reply (timeout, connection lost after sending).
    pub fn indeterminate(self) {
        self.recorder.finish(self.index, Outcome::Indeterminate);
    }
}
