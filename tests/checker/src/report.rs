//! The checker's verdicts and how they are shown to a person.

use crate::history::{fmt_ns, Input, Key, Outcome, Shown, ShownOpt, Value};
use std::fmt;

/// The result of checking a whole history: one entry per key, sorted by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub keys: Vec<KeyReport>,
}

/// The result for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReport {
    pub key: Key,
    /// Operations considered (failed ones are not counted).
    pub ops: usize,
    /// List entries the search visited (a measure of its effort).
    pub steps: u64,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations, consistent with real time, explains
    /// every definite reply.
    Linearizable,
    /// No such order exists.
    NotLinearizable(Box<Violation>),
    /// No answer: the search ran out of budget, or the key's operations are
    /// malformed. Not a pass.
    Unknown { reason: String },
}

/// Why a key is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: Key,
    /// Id of the operation that could not be placed: every operation that
    /// returned before it could be linearized, but then no order made its
    /// reply possible.
    pub blocked: u64,
    /// A one-paragraph explanation in words.
    pub explanation: String,
    /// The longest linearizable prefix the search found; `None` when the
    /// violation was proved from real-time order alone, without a search.
    pub prefix: Option<Prefix>,
    /// The operations that matter, sorted by call time: the blocked one,
    /// the ones concurrent with it, the witnesses named in the explanation
    /// and the tail of the prefix.
    pub window: Vec<WindowOp>,
    /// Concurrent operations left out of `window` to keep it readable.
    pub omitted: usize,
}

/// The furthest point a failed search reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// Operations linearized: every one that returned before the blocked
    /// operation's return, plus possibly some still pending then.
    pub len: usize,
    /// The key's value after them (`None` = absent).
    pub state: Option<Value>,
}

/// One operation shown in a violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowOp {
    pub id: u64,
    pub client: u64,
    pub call: u64,
    /// `None` for indeterminate operations (they run to +infinity).
    pub ret: Option<u64>,
    pub input: Input,
    pub output: Outcome,
    pub role: Role,
}

/// Why an operation is in a violation's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The operation that could not be linearized.
    Blocked,
    /// Named in the explanation (e.g. the write that makes a read stale).
    Witness,
    /// Overlaps the blocked operation in time.
    Concurrent,
    /// Among the last operations of the longest linearizable prefix.
    Prefix,
}

impl Report {
    /// True when every key is linearizable.
    pub fn is_ok(&self) -> bool {
        self.keys
            .iter()
            .all(|k| matches!(k.verdict, Verdict::Linearizable))
    }

    /// The verdict for `key`, if the history mentioned it.
    pub fn verdict(&self, key: &[u8]) -> Option<&Verdict> {
        self.keys.iter().find(|k| k.key == key).map(|k| &k.verdict)
    }

    /// Every violation found.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.keys.iter().filter_map(|k| match &k.verdict {
            Verdict::NotLinearizable(v) => Some(&**v),
            _ => None,
        })
    }

    /// Keys with no answer, with the reason.
    pub fn unknown(&self) -> impl Iterator<Item = (&Key, &str)> {
        self.keys.iter().filter_map(|k| match &k.verdict {
            Verdict::Unknown { reason } => Some((&k.key, reason.as_str())),
            _ => None,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bad = self.violations().count();
        let unknown = self.unknown().count();
        let ops: usize = self.keys.iter().map(|k| k.ops).sum();
        writeln!(
            f,
            "linearizability: {} keys, {ops} ops: {} linearizable, {bad} NOT linearizable, {unknown} unknown",
            self.keys.len(),
            self.keys.len() - bad - unknown,
        )?;
        for k in &self.keys {
            match &k.verdict {
                Verdict::Linearizable => {}
                Verdict::NotLinearizable(v) => write!(f, "{v}")?,
                Verdict::Unknown { reason } => {
                    writeln!(f, "key {}: UNKNOWN: {reason}", Shown(&k.key))?
                }
            }
        }
        Ok(())
    }
}

impl Violation {
    /// The window as an ASCII timeline, one operation per line.
    pub fn timeline(&self) -> String {
        render_timeline(&self.window)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {}: NOT linearizable", Shown(&self.key))?;
        writeln!(f, "  {}", self.explanation)?;
        match &self.prefix {
            Some(p) => writeln!(
                f,
                "  longest linearizable prefix: {} op{}, leaving the key {}",
                p.len,
                if p.len == 1 { "" } else { "s" },
                match &p.state {
                    Some(v) => format!("holding {}", Shown(v)),
                    None => "absent".to_string(),
                }
            )?,
            None => writeln!(f, "  (proved from real-time order alone)")?,
        }
        writeln!(f, "  operations involved (times since recording began):")?;
        for line in self.timeline().lines() {
            writeln!(f, "    {line}")?;
        }
        if self.omitted > 0 {
            writeln!(f, "    ... and {} more concurrent ops", self.omitted)?;
        }
        Ok(())
    }
}

const BAR: usize = 40;

fn describe(op: &WindowOp) -> String {
    match &op.output {
        Outcome::Ok(out) => match &op.input {
            Input::Set(_) => op.input.to_string(),
            _ => format!("{} -> {out}", op.input),
        },
        Outcome::Indeterminate => format!("{} -> ? (indeterminate)", op.input),
        Outcome::Fail => format!("{} (failed)", op.input),
    }
}

fn interval(op: &WindowOp) -> String {
    match op.ret {
        Some(r) => format!("[{}, {}]", fmt_ns(op.call), fmt_ns(r)),
        None => format!("[{}, inf)", fmt_ns(op.call)),
    }
}

fn render_timeline(ops: &[WindowOp]) -> String {
    // The scale covers the definite ops; indeterminate ones called earlier
    // are clipped at the left edge (`<`).
    let definite = || ops.iter().filter(|o| o.ret.is_some());
    let Some(t0) = definite()
        .map(|o| o.call)
        .min()
        .or_else(|| ops.iter().map(|o| o.call).min())
    else {
        return String::new();
    };
    let t1 = ops
        .iter()
        .map(|o| o.ret.unwrap_or(o.call).max(o.call))
        .max()
        .unwrap_or(t0);
    let span = u128::from(t1.saturating_sub(t0)).max(1);
    let col = |t: u64| -> usize {
        let c = u128::from(t.saturating_sub(t0)) * (BAR as u128 - 1) / span;
        usize::try_from(c).unwrap_or(BAR - 1).min(BAR - 1)
    };
    let rows: Vec<(String, String, String)> = ops
        .iter()
        .map(|o| {
            (
                match o.client {
                    crate::FINAL_READ_CLIENT => format!("op {} final", o.id),
                    c => format!("op {} c{c}", o.id),
                },
                describe(o),
                interval(o),
            )
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (o, (who, what, when)) in ops.iter().zip(rows) {
        let start = col(o.call);
        let end = o.ret.map_or(BAR - 1, col).max(start);
        let mut bar = vec![b' '; BAR];
        for c in bar.iter_mut().take(end + 1).skip(start) {
            *c = b'=';
        }
        if o.ret.is_none() {
            bar[BAR - 1] = b'>';
        }
        bar[start] = if o.call < t0 { b'<' } else { b'|' };
        if o.ret.is_some() {
            bar[end] = b'|';
        }
        let bar = String::from_utf8_lossy(&bar).into_owned();
        let note = match o.role {
            Role::Blocked => "  <- cannot be linearized",
            Role::Witness => "  <- witness",
            Role::Concurrent => "",
            Role::Prefix => "  (prefix)",
        };
        out.push_str(&format!(
            "{who:<w0$}  {what:<w1$}  {when:<w2$}  {bar}{note}\n"
        ));
    }
    out
}

/// `"x"` or `nil`, for explanations.
pub(crate) fn show_state(v: Option<&[u8]>) -> String {
    ShownOpt(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Output;

    fn op(id: u64, call: u64, ret: Option<u64>, role: Role) -> WindowOp {
        WindowOp {
            id,
            client: id,
            call,
            ret,
            input: Input::Get,
            output: match ret {
                Some(_) => Outcome::Ok(Output::found("v")),
                None => Outcome::Indeterminate,
            },
            role,
        }
    }

    #[test]
    fn timeline_places_bars_in_time_order() {
        let t = render_timeline(&[
            op(1, 0, Some(100), Role::Prefix),
            op(2, 900, Some(1000), Role::Blocked),
            op(3, 500, None, Role::Concurrent),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        let bar = |l: &str| l.find('|').unwrap_or(usize::MAX);
        assert!(bar(lines[0]) < bar(lines[2]) && bar(lines[2]) < bar(lines[1]));
        assert!(lines[1].ends_with("<- cannot be linearized"));
        assert!(lines[2].contains("[500ns, inf)"));
        assert!(lines[2].contains(">"));
        assert!(lines[0].contains("GET -> \"v\""));
    }

    #[test]
    fn timeline_of_identical_times_does_not_divide_by_zero() {
        let t = render_timeline(&[op(1, 5, Some(5), Role::Blocked)]);
        assert!(t.contains("op 1 c1"));
        assert_eq!(render_timeline(&[]), "");
    }

    #[test]
    fn report_summary_counts() {
        let r = Report {
            keys: vec![
                KeyReport {
                    key: b"a".to_vec(),
                    ops: 3,
                    steps: 3,
                    verdict: Verdict::Linearizable,
                },
                KeyReport {
                    key: b"b".to_vec(),
                    ops: 2,
                    steps: 0,
                    verdict: Verdict::Unknown {
                        reason: "budget".into(),
                    },
                },
            ],
        };
        assert!(!r.is_ok());
        let s = r.to_string();
        assert!(s.contains("2 keys, 5 ops: 1 linearizable, 0 NOT linearizable, 1 unknown"));
        assert!(s.contains("key \"b\": UNKNOWN: budget"));
        assert_eq!(r.unknown().count(), 1);
        assert_eq!(r.verdict(b"a"), Some(&Verdict::Linearizable));
    }
}
