//! The recorded history: what each client asked for, when, and what it saw.

use std::collections::BTreeMap;
use std::fmt;

/// A key, as raw bytes (Redis keys are binary-safe).
pub type Key = Vec<u8>;
/// A value, as raw bytes.
pub type Value = Vec<u8>;

/// What a client asked the store to do to one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// `GET key`.
    Get,
    /// `SET key value` (unconditional).
    Set(Value),
    /// `DEL key` (one key).
    Del,
    /// `INCR key`.
    Incr,
}

impl Input {
    /// `SET` of `value`.
    pub fn set(value: impl Into<Value>) -> Self {
        Input::Set(value.into())
    }

    /// The command name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Input::Get => "GET",
            Input::Set(_) => "SET",
            Input::Del => "DEL",
            Input::Incr => "INCR",
        }
    }
}

/// What a definite reply said. Each variant belongs to one [`Input`] variant;
/// a mismatched pair makes the operation malformed (reported, never a panic).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Reply to `GET`: the value, or `None` when the key was absent (nil reply).
    Get(Option<Value>),
    /// Reply to `SET`: `+OK`.
    Set,
    /// Reply to `DEL`: whether a key was removed (`:1` / `:0`), `None` if the
    /// caller could not tell (e.g. it only knows the command succeeded).
    Del(Option<bool>),
    /// Reply to `INCR`: the new value.
    Incr(i64),
}

impl Output {
    /// `GET` reply carrying `value`.
    pub fn found(value: impl Into<Value>) -> Self {
        Output::Get(Some(value.into()))
    }

    /// `GET` reply for an absent key.
    pub fn not_found() -> Self {
        Output::Get(None)
    }

    /// Whether this reply is the kind `input` produces.
    pub fn matches(&self, input: &Input) -> bool {
        matches!(
            (input, self),
            (Input::Get, Output::Get(_))
                | (Input::Set(_), Output::Set)
                | (Input::Del, Output::Del(_))
                | (Input::Incr, Output::Incr(_))
        )
    }
}

/// How an operation ended, as far as the client knows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A definite reply: the operation took effect exactly once, somewhere
    /// between its call and its return, and this is what it returned.
    Ok(Output),
    /// Definitely not applied (a clear rejection). Ignored by the checker.
    Fail,
    /// Unknown: a timeout, or the connection dropped after the request was
    /// sent. It may have taken effect at any time after its call (even after
    /// the history ends), or never; its reply is unconstrained.
    Indeterminate,
}

/// One operation by one client on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Unique within the history; used to name the operation in reports.
    pub id: u64,
    /// The client (connection / thread) that issued it; informative only.
    pub client: u64,
    pub key: Key,
    /// Monotonic time (ns) just before the request was sent.
    pub call: u64,
    /// Monotonic time (ns) just after the reply arrived; `None` if no reply.
    /// Must be `Some` for [`Outcome::Ok`]; ignored for `Indeterminate`.
    pub ret: Option<u64>,
    pub input: Input,
    pub output: Outcome,
}

/// A set of operations on any number of keys, in any order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    ops: Vec<Operation>,
    initial: BTreeMap<Key, Value>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation as given (its `id` is not checked here; duplicates
    /// are reported by the checker).
    pub fn push(&mut self, op: Operation) {
        self.ops.push(op);
    }

    /// Adds a completed operation with a definite reply; returns its id.
    pub fn ok(
        &mut self,
        client: u64,
        key: impl Into<Key>,
        call: u64,
        ret: u64,
        input: Input,
        output: Output,
    ) -> u64 {
        self.add(
            client,
            key.into(),
            call,
            Some(ret),
            input,
            Outcome::Ok(output),
        )
    }

    /// Adds an operation whose effect is unknown (no reply); returns its id.
    pub fn indeterminate(
        &mut self,
        client: u64,
        key: impl Into<Key>,
        call: u64,
        input: Input,
    ) -> u64 {
        self.add(
            client,
            key.into(),
            call,
            None,
            input,
            Outcome::Indeterminate,
        )
    }

    /// Adds an operation that was definitely rejected; returns its id.
    pub fn fail(
        &mut self,
        client: u64,
        key: impl Into<Key>,
        call: u64,
        ret: u64,
        input: Input,
    ) -> u64 {
        self.add(client, key.into(), call, Some(ret), input, Outcome::Fail)
    }

    fn add(
        &mut self,
        client: u64,
        key: Key,
        call: u64,
        ret: Option<u64>,
        input: Input,
        output: Outcome,
    ) -> u64 {
        let id = self.next_id();
        self.ops.push(Operation {
            id,
            client,
            key,
            call,
            ret,
            input,
            output,
        });
        id
    }

    /// One more than the largest id so far (0 for an empty history).
    pub fn next_id(&self) -> u64 {
        self.ops
            .iter()
            .map(|o| o.id.saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    /// Declares the value `key` held before the history began (default: absent).
    pub fn set_initial(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        self.initial.insert(key.into(), value.into());
    }

    /// The value `key` held before the history began, if any.
    pub fn initial(&self, key: &[u8]) -> Option<&Value> {
        self.initial.get(key)
    }

    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The latest time mentioned anywhere in the history (calls and returns).
    pub fn last_time(&self) -> u64 {
        self.ops
            .iter()
            .map(|o| o.ret.unwrap_or(0).max(o.call))
            .max()
            .unwrap_or(0)
    }
}

impl FromIterator<Operation> for History {
    fn from_iter<I: IntoIterator<Item = Operation>>(iter: I) -> Self {
        History {
            ops: iter.into_iter().collect(),
            initial: BTreeMap::new(),
        }
    }
}

impl Extend<Operation> for History {
    fn extend<I: IntoIterator<Item = Operation>>(&mut self, iter: I) {
        self.ops.extend(iter);
    }
}

/// Renders bytes as a quoted string, escaping anything not printable ASCII.
pub(crate) struct Shown<'a>(pub &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Renders an optional value: quoted bytes, or `nil` for absent.
pub(crate) struct ShownOpt<'a>(pub Option<&'a [u8]>);

impl fmt::Display for ShownOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => Shown(v).fmt(f),
            None => f.write_str("nil"),
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Set(v) => write!(f, "SET {}", Shown(v)),
            other => f.write_str(other.name()),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Get(v) => ShownOpt(v.as_deref()).fmt(f),
            Output::Set => f.write_str("OK"),
            Output::Del(Some(removed)) => write!(f, "{}", u8::from(*removed)),
            Output::Del(None) => f.write_str("(removed?)"),
            Output::Incr(n) => write!(f, "{n}"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(out) => out.fmt(f),
            Outcome::Fail => f.write_str("(failed)"),
            Outcome::Indeterminate => f.write_str("?"),
        }
    }
}

/// Formats a nanosecond timestamp with a unit that keeps it short.
pub(crate) fn fmt_ns(t: u64) -> String {
    if t < 10_000 {
        format!("{t}ns")
    } else if t < 10_000_000 {
        format!("{:.3}us", t as f64 / 1e3)
    } else if t < 10_000_000_000 {
        format!("{:.3}ms", t as f64 / 1e6)
    } else {
        format!("{:.3}s", t as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_assigns_increasing_ids() {
        let mut h = History::new();
        let a = h.ok(1, "k", 0, 5, Input::set("a"), Output::Set);
        let b = h.indeterminate(2, "k", 3, Input::Incr);
        let c = h.fail(2, "k", 6, 7, Input::Del);
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(h.len(), 3);
        assert_eq!(h.last_time(), 7);
    }

    #[test]
    fn output_matches_its_input_only() {
        assert!(Output::Set.matches(&Input::set("x")));
        assert!(!Output::Set.matches(&Input::Get));
        assert!(Output::Incr(3).matches(&Input::Incr));
        assert!(!Output::Incr(3).matches(&Input::Del));
        assert!(Output::Del(None).matches(&Input::Del));
        assert!(Output::not_found().matches(&Input::Get));
    }

    #[test]
    fn rendering_escapes_bytes() {
        assert_eq!(Input::set(b"a\nb".to_vec()).to_string(), "SET \"a\\nb\"");
        assert_eq!(Output::not_found().to_string(), "nil");
        assert_eq!(Output::Del(Some(true)).to_string(), "1");
        assert_eq!(Outcome::Indeterminate.to_string(), "?");
        assert_eq!(fmt_ns(1500), "1500ns");
        assert_eq!(fmt_ns(1_500_001), "1500.001us");
        assert_eq!(fmt_ns(15_000_000), "15.000ms");
    }
}
