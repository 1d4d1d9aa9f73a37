//! Oracle of the `resp_parser` fuzz target: the request parser as the connection uses it.
//!
//! Input layout: byte 0 selects the [`ParseLimits`] ([`resp_parser_limits`]), byte 1 how the
//! stream is cut into reads, the rest is the client's byte stream. Checked:
//! - no panic, and every call that returns a command consumes input (the loop terminates);
//! - the outcome (commands, final error, unconsumed bytes) is the same whatever the reads are
//!   (the parser promises this, see `crate::resp`), so it is compared with one whole read;
//! - commands respect the limits, error replies are single-line;
//! - every parsed command, re-encoded as a multibulk request and parsed again (in the same
//!   read sizes), gives back the same arguments and consumes everything;
//! - no single allocation exceeds a bound linear in the input length (checked when
//!   [`super::TrackingAlloc`] is installed): nothing is reserved from a declared length.

use bytes::{Bytes, BytesMut};

use super::alloc::{largest_allocation, reset_largest_allocation};
use crate::resp::{encode_command, parse_command, ParseLimits, ProtocolError};

/// The limits selected by the first input byte: `% 4 == 0` the server's defaults (what a
/// default config uses), `1` small fixed limits, `2` tiny limits derived from the byte's high
/// bits, `3` no bulk or argument limit at all.
pub fn resp_parser_limits(selector: u8) -> ParseLimits {
    let v = usize::from(selector >> 2);
    match selector % 4 {
        0 => ParseLimits::default(),
        1 => ParseLimits {
            max_bulk: 64,
            max_args: 8,
            max_inline: 32,
        },
        2 => ParseLimits {
            max_bulk: v / 8,
            max_args: 1 + v % 4,
            max_inline: 1 + v % 16,
        },
        _ => ParseLimits {
            max_bulk: usize::MAX,
            max_args: usize::MAX,
            ..ParseLimits::default()
        },
    }
}

/// The fuzz target body; see the module documentation.
pub fn resp_parser(data: &[u8]) {
    let [selector, split, stream @ ..] = data else {
        return;
    };
    let limits = resp_parser_limits(*selector);
    reset_largest_allocation();

    let whole = feed(&[stream], &limits);
    let reads = cut(*split, stream);
    let fed = feed(&reads, &limits);
    assert_eq!(fed, whole, "the outcome depends on the read sizes");
    check_limits(&whole, &limits);
    round_trip(&whole.commands, *split, &limits);

    // Generous: input buffers, argument vectors and the re-encoded round trip are all a small
    // multiple of the input; a reservation sized by a declared length (up to 512 MiB or
    // 1 Mi arguments with the default limits) is not.
    let bound = 64 * stream.len() + 64 * 1024;
    let largest = largest_allocation();
    assert!(
        largest <= bound,
        "allocated {largest} bytes at once for a {}-byte input",
        stream.len()
    );
}

/// What the connection would see.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    commands: Vec<Vec<Bytes>>,
    /// The error that closed the connection, if any.
    error: Option<ProtocolError>,
    /// Bytes still buffered at the end (not compared after an error: the stream stops there).
    left: Vec<u8>,
}

/// Appends each read to the input buffer and parses all complete commands after each, like
/// `conn::Conn::run` (which only adds a per-batch cap, irrelevant to the outcome).
fn feed(reads: &[&[u8]], limits: &ParseLimits) -> Outcome {
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            let before = buf.len();
            match parse_command(&mut buf, limits) {
                Ok(Some(argv)) => {
                    assert!(buf.len() < before, "a command consumed no input");
                    commands.push(argv);
                }
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        commands,
                        error: Some(error),
                        left: Vec::new(),
                    }
                }
            }
        }
    }
    Outcome {
        commands,
        error: None,
        left: buf.to_vec(),
    }
}

/// Cuts `data` into reads: `0` one read; otherwise pseudo-random sizes in `1..=k`, with `k`
/// chosen by the low bits (1 = byte by byte) and the sequence seeded by the whole byte.
fn cut(selector: u8, data: &[u8]) -> Vec<&[u8]> {
    if selector == 0 {
        return vec![data];
    }
    let k = [1, 2, 3, 5, 8, 16, 64, 512][usize::from(selector & 7)];
    // xorshift32; any non-zero seed works.
    let mut x = u32::from(selector).wrapping_mul(0x9E37_79B9) | 1;
    let mut rest = data;
    let mut reads = Vec::new();
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (1 + x as usize % k).min(rest.len());
        let (read, tail) = rest.split_at(n);
        reads.push(read);
        rest = tail;
    }
    reads
}

fn check_limits(outcome: &Outcome, limits: &ParseLimits) {
    // Inline arguments are bounded by the line, multibulk ones by max_bulk.
    let longest = limits.max_bulk.max(limits.max_inline);
    for argv in &outcome.commands {
        assert!(!argv.is_empty(), "a command without arguments");
        assert!(argv.len() <= limits.max_args, "{} arguments", argv.len());
        assert!(argv.iter().all(|a| a.len() <= longest), "argument too long");
    }
    if let Some(e) = &outcome.error {
        let msg = e.to_string();
        assert!(msg.starts_with("Protocol error: "), "{msg:?}");
        assert!(!msg.contains(['\r', '\n']), "multi-line error {msg:?}");
    }
}

fn round_trip(commands: &[Vec<Bytes>], split: u8, limits: &ParseLimits) {
    let mut encoded = BytesMut::new();
    for argv in commands {
        encode_command(argv, &mut encoded);
    }
    // An inline argument may be longer than max_bulk (Redis applies that limit to bulks only),
    // and with a tiny max_inline even `*1` is too long a header; the multibulk form must still
    // parse when the limits leave room for it.
    let relaxed = ParseLimits {
        max_bulk: limits.max_bulk.max(limits.max_inline),
        max_args: limits.max_args,
        max_inline: limits.max_inline.max(64),
    };
    let again = feed(&cut(split, &encoded), &relaxed);
    assert_eq!(
        again,
        Outcome {
            commands: commands.to_vec(),
            error: None,
            left: Vec::new(),
        },
        "re-encoded commands did not round-trip"
    );
}
