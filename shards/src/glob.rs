//! Redis-compatible glob matching for KEYS and SCAN MATCH.
//!
//! Semantics are those of Redis' `stringmatchlen` (case-sensitive):
//! - `*` any run of bytes, `?` any one byte, `\x` the byte `x` literally (a trailing `\` is a
//!   literal backslash);
//! - `[...]` one byte from a set: single bytes, ranges `a-z` (reversed ranges are swapped),
//!   `\x` escapes, `^` first negates; an unterminated class ends at the end of the pattern;
//!   `[a-]` is the range `a`..=`]` exactly as Redis parses it;
//! - the empty string matches only the empty pattern (Redis never enters its match loop for
//!   an empty string, so even `*` fails; KEYS/SCAN special-case the pattern `*` themselves).
//!
//! Differences from Redis, both deliberate: range bounds are compared as unsigned bytes (Redis
//! compares C `char`s, signed on x86, so ranges over bytes >= 0x80 behave oddly there), and
//! patterns with more than 1000 `*` groups are not refused.
//!
//! Instead of Redis' recursion the pattern is compiled into single-byte tokens and stars and
//! matched with the classic "backtrack to the last star" loop: O(pattern x string) time in the
//! worst case and no recursion, so patterns like `a*a*a*a*a*b` cannot blow up.

/// A compiled pattern; compile once, match many keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
    /// The pattern is exactly `*`: matches every key (including the empty one), like KEYS'
    /// and SCAN's shortcut.
    all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// One or more consecutive `*`.
    Star,
    /// `?`
    Any,
    Lit(u8),
    Class {
        negate: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClassItem {
    Byte(u8),
    /// Inclusive, `lo <= hi`.
    Range(u8, u8),
}

impl Tok {
    /// Whether a single-byte token matches `c` (never called for `Star`).
    fn matches(&self, c: u8) -> bool {
        match self {
            Tok::Star | Tok::Any => true,
            Tok::Lit(b) => *b == c,
            Tok::Class { negate, items } => {
                let hit = items.iter().any(|it| match *it {
                    ClassItem::Byte(b) => b == c,
                    ClassItem::Range(lo, hi) => lo <= c && c <= hi,
                });
                hit != *negate
            }
        }
    }
}

impl Glob {
    /// Compiles `pattern`. Every byte string is a valid pattern.
    pub fn new(pattern: &[u8]) -> Glob {
        let mut toks = Vec::new();
        let p = pattern;
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    toks.push(Tok::Any);
                    i += 1;
                }
                b'[' => {
                    let (tok, next) = parse_class(p, i + 1);
                    toks.push(tok);
                    i = next;
                }
                b'\\' if i + 1 < p.len() => {
                    toks.push(Tok::Lit(p[i + 1]));
                    i += 2;
                }
                c => {
                    toks.push(Tok::Lit(c));
                    i += 1;
                }
            }
        }
        Glob {
            toks,
            all: pattern == b"*",
        }
    }

    /// Whether the pattern is the match-everything `*`.
    pub fn matches_all(&self) -> bool {
        self.all
    }

    /// Whether `s` matches. O(pattern x s) worst case.
    pub fn matches(&self, s: &[u8]) -> bool {
        if self.all {
            return true;
        }
        if s.is_empty() {
            return self.toks.is_empty();
        }
        let t = &self.toks;
        let (mut ti, mut si) = (0usize, 0usize);
        // Position of the token after the last star seen, and where in `s` that star's
        // current match ends; on a mismatch the star absorbs one more byte.
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match t.get(ti) {
                Some(Tok::Star) => {
                    star = Some((ti + 1, si));
                    ti += 1;
                }
                Some(tok) if tok.matches(s[si]) => {
                    ti += 1;
                    si += 1;
                }
                _ => match star {
                    Some((after, end)) => {
                        // Backtracking to the *last* star is enough: tokens before it matched
                        // a prefix, and a longer match for an earlier star could only move the
                        // rest of the pattern further right, which the last star covers.
                        star = Some((after, end + 1));
                        ti = after;
                        si = end + 1;
                    }
                    None => return false,
                },
            }
        }
        t[ti..].iter().all(|tok| *tok == Tok::Star)
    }
}

/// Parses a class whose body starts at `i` (just after `[`), like Redis: returns the token and
/// the index after the closing `]` (or the pattern's end when unterminated).
fn parse_class(p: &[u8], mut i: usize) -> (Tok, usize) {
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut items = Vec::new();
    loop {
        let rest = p.len() - i.min(p.len());
        if rest == 0 {
            break;
        }
        let c = p[i];
        if c == b'\\' && rest >= 2 {
            items.push(ClassItem::Byte(p[i + 1]));
            i += 2;
        } else if c == b']' {
            i += 1;
            break;
        } else if rest >= 3 && p[i + 1] == b'-' {
            let (a, b) = (c, p[i + 2]);
            items.push(ClassItem::Range(a.min(b), a.max(b)));
            i += 3;
        } else {
            items.push(ClassItem::Byte(c));
            i += 1;
        }
    }
    (Tok::Class { negate, items }, i)
}

/// One-shot match of `s` against `pattern`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    Glob::new(pattern).matches(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (pattern, string, expected) — checked against Redis 7.0 KEYS where noted behaviour
        // is surprising.
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"*", b"", true),
            (b"**", b"", false), // Redis: empty string only matches the empty pattern
            (b"", b"", true),
            (b"", b"a", false),
            (b"?*", b"", false),
            (b"*", b"anything", true),
            (b"h?llo", b"hello", true),
            (b"h?llo", b"hllo", false),
            (b"h*llo", b"hllo", true),
            (b"h*llo", b"heeeello", true),
            (b"h[ae]llo", b"hallo", true),
            (b"h[ae]llo", b"hillo", false),
            (b"h[^e]llo", b"hallo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h[a-b]llo", b"hcllo", false),
            (b"h[b-a]llo", b"hallo", true), // reversed range is swapped
            (b"[a-]", b"]", true),          // Redis parses `a-]` as a range
            (b"[a-]", b"-", false),
            (b"[a-]", b"a", true),
            (b"[a-]x", b"ax", false), // the class swallowed the `]`; "x" is inside it
            (b"[\\]]", b"]", true),
            (b"[\\-]", b"-", true),
            (b"[abc", b"b", true), // unterminated class ends at pattern end
            (b"[abc", b"bc", false),
            (b"[]", b"a", false),
            (b"[^]", b"a", true),
            (b"a\\*b", b"a*b", true),
            (b"a\\*b", b"axb", false),
            (b"a\\", b"a\\", true), // trailing backslash is literal
            (b"a\\\\b", b"a\\b", true),
            (b"\\?", b"?", true),
            (b"\\?", b"x", false),
            (b"*.txt", b"a.txt", true),
            (b"*.txt", b"a.txt.bak", false),
            (b"*a*b*", b"xxaxxbxx", true),
            (b"*a*b*", b"xxbxxaxx", false),
            (b"a*", b"a", true),
            (b"a*?", b"a", false),
            (b"user:*:name", b"user:42:name", true),
            (b"user:*:name", b"user:42:email", false),
            (b"[\xf0-\xff]", b"\xf5", true), // unsigned byte ranges
            (b"*[0-9]", b"abc7", true),
            (b"*[0-9]", b"abc", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(
                glob_match(p, s),
                *want,
                "pattern {:?} string {:?}",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(s)
            );
        }
    }

    #[test]
    fn pathological_pattern_is_fast() {
        // Exponential for naive backtracking; the loop here is O(p*s). With 30 stars and a
        // 10 kB subject a naive matcher would not finish.
        let pat = b"a*".repeat(30);
        let mut pat = pat;
        pat.push(b'b');
        let s = vec![b'a'; 10_000];
        assert!(!glob_match(&pat, &s));
        let mut s2 = s.clone();
        s2.push(b'b');
        assert!(glob_match(&pat, &s2));
    }

    #[test]
    fn matches_all_only_for_single_star() {
        assert!(Glob::new(b"*").matches_all());
        assert!(!Glob::new(b"**").matches_all());
        assert!(!Glob::new(b"a*").matches_all());
    }
}
