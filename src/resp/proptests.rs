//! Property tests of the request parser: encoded commands (multibulk and inline, pipelined)
//! parse back to the original arguments however the bytes are cut into reads, and lengths
//! over the limits are errors, never panics or allocations.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{encode_command, parse_command, ParseLimits, ProtocolError};

/// A command as a client could write it.
#[derive(Debug, Clone)]
enum Wire {
    /// `*N\r\n$len\r\n...`: any bytes.
    Multibulk(Vec<Vec<u8>>),
    /// Space-separated words without quotes or escapes.
    Plain {
        words: Vec<Vec<u8>>,
        /// Whitespace before each word.
        gaps: Vec<&'static [u8]>,
        end: &'static [u8],
    },
    /// Every argument quoted: any bytes in double quotes with escapes, or printable text in
    /// single quotes.
    Quoted {
        args: Vec<(Vec<u8>, bool)>,
        end: &'static [u8],
    },
}

impl Wire {
    fn args(&self) -> Vec<Vec<u8>> {
        match self {
            Wire::Multibulk(args) => args.clone(),
            Wire::Plain { words, .. } => words.clone(),
            Wire::Quoted { args, .. } => args.iter().map(|(a, _)| a.clone()).collect(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Wire::Multibulk(args) => {
                let mut buf = BytesMut::new();
                encode_command(args, &mut buf);
                out.extend_from_slice(&buf);
            }
            Wire::Plain { words, gaps, end } => {
                for (w, gap) in words.iter().zip(gaps) {
                    out.extend_from_slice(gap);
                    out.extend_from_slice(w);
                }
                out.extend_from_slice(end);
            }
            Wire::Quoted { args, end } => {
                for (i, (a, single)) in args.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    if *single {
                        single_quote(a, out);
                    } else {
                        double_quote(a, out);
                    }
                }
                out.extend_from_slice(end);
            }
        }
    }
}

/// `"..."` with `\"`, `\\`, the named escapes and `\xHH` for everything not printable.
fn double_quote(arg: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in arg {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// `'...'`, where `\'` is the only escape (the strategy keeps `\` out of these arguments).
fn single_quote(arg: &[u8], out: &mut Vec<u8>) {
    out.push(b'\'');
    for &b in arg {
        if b == b'\'' {
            out.extend_from_slice(b"\\'");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

fn line_end() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![&b"\r\n"[..], b"\n"])
}

fn wire() -> impl Strategy<Value = Wire> {
    let any_arg = prop::collection::vec(any::<u8>(), 0..40);
    // No '*' (a line starting with it is multibulk), no whitespace, quotes or NUL.
    let word = prop::collection::vec(
        prop::sample::select(b"abcXYZ019_:.-{}$+#@!".to_vec()),
        1..12,
    );
    // Like sdssplitargs: a word ends at space, tab, CR or LF only; any C isspace() byte
    // (also VT, FF) may follow that, or come before the first word.
    let gap = prop::sample::select(vec![&b" "[..], b"  ", b"\t", b" \t ", b" \x0b", b"\t\x0c "]);
    let first_gap = prop::sample::select(vec![&b""[..], b" ", b"\x0b", b"\x0c\t"]);
    let single = "[ -\\[\\]-~]{0,20}".prop_map(String::into_bytes); // printable minus \
    prop_oneof![
        prop::collection::vec(any_arg.clone(), 1..8).prop_map(Wire::Multibulk),
        (
            prop::collection::vec(word, 1..8),
            first_gap,
            prop::collection::vec(gap, 7),
            line_end()
        )
            .prop_map(|(words, first, mut gaps, end)| {
                gaps.insert(0, first);
                Wire::Plain { words, gaps, end }
            }),
        (
            prop::collection::vec(
                prop_oneof![
                    any_arg.prop_map(|a| (a, false)),
                    single.prop_map(|a| (a, true)),
                ],
                1..6
            ),
            line_end()
        )
            .prop_map(|(args, end)| Wire::Quoted { args, end }),
    ]
}

/// Cuts `input` at the given points into reads.
fn reads<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

/// Feeds the reads like the connection does: parse every complete command after each read.
/// Returns the commands, the error that stopped parsing (if any) and what is left buffered.
fn feed(parts: &[&[u8]], l: &ParseLimits) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>, BytesMut) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match parse_command(&mut buf, l) {
                Ok(Some(argv)) => out.push(argv.iter().map(|a| a.to_vec()).collect()),
                Ok(None) => break,
                Err(e) => return (out, Some(e), buf),
            }
        }
    }
    (out, None, buf)
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..12)
}

proptest! {
    #[test]
    fn pipeline_round_trips_in_any_reads(cmds in prop::collection::vec(wire(), 1..8), cuts in cuts()) {
        let mut input = Vec::new();
        for c in &cmds {
            c.encode(&mut input);
        }
        let want: Vec<Vec<Vec<u8>>> = cmds.iter().map(Wire::args).collect();
        let (got, err, left) = feed(&reads(&input, &cuts), &ParseLimits::default());
        prop_assert_eq!(err, None, "input {:?}", Bytes::from(input.clone()));
        prop_assert_eq!(got, want, "input {:?}", Bytes::from(input.clone()));
        prop_assert!(left.is_empty());
    }

    /// The fuzz target's oracle (split-independence, limits, re-encoding round trip, bounded
    /// allocation where measured) on random input with random limits and reads.
    #[test]
    fn fuzz_oracle_on_random_bytes(
        header in any::<[u8; 2]>(),
        body in prop::collection::vec(
            prop_oneof![
                any::<u8>(),
                prop::sample::select(b"*$\r\n0123456789- \"'\\x".to_vec()),
            ],
            0..200,
        ),
    ) {
        crate::fuzzing::resp_parser(&[&header[..], &body].concat());
    }

    #[test]
    fn multibulk_count_over_limit_is_refused(
        max_args in 1usize..64,
        over in 1u64..=i64::MAX as u64 / 2,
        cuts in cuts(),
    ) {
        let l = ParseLimits { max_args, ..ParseLimits::default() };
        let input = format!("*{}\r\n$1\r\na\r\n", max_args as u64 + over);
        let (got, err, _) = feed(&reads(input.as_bytes(), &cuts), &l);
        prop_assert!(got.is_empty());
        prop_assert_eq!(err, Some(ProtocolError::InvalidMultibulkLength));
    }

    #[test]
    fn bulk_length_over_limit_is_refused_before_the_payload(
        max_bulk in 0usize..1 << 20,
        over in 1u64..=i64::MAX as u64 / 2,
        cuts in cuts(),
    ) {
        let l = ParseLimits { max_bulk, ..ParseLimits::default() };
        // No payload follows: the header alone must be refused.
        let input = format!("*2\r\n$3\r\nGET\r\n${}\r\n", max_bulk as u64 + over);
        let (got, err, _) = feed(&reads(input.as_bytes(), &cuts), &l);
        prop_assert!(got.is_empty());
        prop_assert_eq!(err, Some(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn numbers_beyond_i64_are_refused(digits in "[1-9][0-9]{19,40}", bulk in any::<bool>()) {
        // 20+ digits starting with a non-zero digit exceed i64::MAX.
        let input = if bulk { format!("*1\r\n${digits}\r\n") } else { format!("*{digits}\r\n") };
        let want = if bulk { ProtocolError::InvalidBulkLength } else { ProtocolError::InvalidMultibulkLength };
        let (_, err, _) = feed(&[input.as_bytes()], &ParseLimits::default());
        prop_assert_eq!(err, Some(want));
    }

    #[test]
    fn header_line_over_max_inline_is_refused(max_inline in 2usize..64, extra in 1usize..64, cuts in cuts()) {
        let l = ParseLimits { max_inline, ..ParseLimits::default() };
        // An unterminated count line longer than max_inline: refused without its end.
        let mbulk = [b"*".as_slice(), &vec![b'1'; max_inline + extra]].concat();
        let (_, err, _) = feed(&reads(&mbulk, &cuts), &l);
        prop_assert_eq!(err, Some(ProtocolError::TooBigMbulkCount));
        let bulk = [b"*1\r\n$".as_slice(), &vec![b'1'; max_inline + extra]].concat();
        let (_, err, _) = feed(&reads(&bulk, &cuts), &l);
        prop_assert_eq!(err, Some(ProtocolError::TooBigBulkCount));
    }

    #[test]
    fn inline_over_limits_is_refused(
        max_inline in 1usize..256,
        extra in 1usize..64,
        terminated in any::<bool>(),
        cuts in cuts(),
    ) {
        let l = ParseLimits { max_inline, ..ParseLimits::default() };
        let mut line = vec![b'a'; max_inline + extra];
        if terminated {
            line.extend_from_slice(b"\r\n");
        }
        let (got, err, _) = feed(&reads(&line, &cuts), &l);
        prop_assert!(got.is_empty());
        prop_assert_eq!(err, Some(ProtocolError::TooBigInline));
    }

    #[test]
    fn inline_with_too_many_args_is_refused(max_args in 1usize..32, extra in 1usize..8, cuts in cuts()) {
        let l = ParseLimits { max_args, ..ParseLimits::default() };
        let ok = vec!["a"; max_args].join(" ") + "\r\n";
        let over = vec!["a"; max_args + extra].join(" ") + "\r\n";
        let input = [ok.as_bytes(), over.as_bytes()].concat();
        let (got, err, _) = feed(&reads(&input, &cuts), &l);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].len(), max_args);
        prop_assert_eq!(err, Some(ProtocolError::TooManyInlineArgs));
    }
}
