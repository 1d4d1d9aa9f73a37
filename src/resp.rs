//! RESP request parsing and RESP2/RESP3 reply encoding.
//!
//! Parsing follows Redis' `processMultibulkBuffer` / `processInlineBuffer` (networking.c) and
//! `sdssplitargs` (sds.c), with the same error messages, and is stricter in a few places so that
//! the outcome never depends on how the input was split into reads:
//! - a header or inline line longer than `max_inline` is an error whether or not its terminator
//!   has arrived yet (Redis only checks while the terminator is missing);
//! - headers must end in `\r\n` and bulk data must be followed by `\r\n` (Redis skips two bytes
//!   without looking at them);
//! - a bulk header's `$` is checked as soon as its first byte is there.
//!
//! The parser is stateless: an incomplete command is re-scanned from its start on the next call.
//! Only headers are scanned (bulk payloads are skipped by length), so that costs little.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use shards::Reply;

/// Bounds applied while parsing untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest accepted bulk string (Redis `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest inline command line, and longest `*`/`$` header line (Redis
    /// `PROTO_INLINE_MAX_SIZE`).
    pub max_inline: usize,
}

impl Default for ParseLimits {
    /// Redis' defaults: 512 MiB bulks, 64 KiB inline; 1 Mi arguments.
    fn default() -> Self {
        ParseLimits {
            max_bulk: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline: 64 * 1024,
        }
    }
}

/// A malformed or over-limit request. The connection cannot be resynchronised after one: reply
/// with [`ProtocolError::to_reply`] and close it. Messages never contain CR or LF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*N` with N not an integer, > `i32::MAX` or > `max_args`.
    InvalidMultibulkLength,
    /// `$N` with N not an integer, negative or > `max_bulk`.
    InvalidBulkLength,
    /// An argument of a multibulk command did not start with `$`.
    ExpectedDollar(u8),
    /// No line end within `max_inline` bytes of an inline command.
    TooBigInline,
    /// No line end within `max_inline` bytes of a `*` header.
    TooBigMbulkCount,
    /// No line end within `max_inline` bytes of a `$` header.
    TooBigBulkCount,
    /// Inline command with an unterminated quote, or a closing quote not followed by a space.
    UnbalancedQuotes,
    /// Inline command with more than `max_args` arguments.
    TooManyInlineArgs,
    /// Bulk data not followed by CRLF.
    BulkNotTerminated,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Protocol error: ")?;
        match self {
            ProtocolError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ProtocolError::ExpectedDollar(b) if b.is_ascii_graphic() || *b == b' ' => {
                write!(f, "expected '$', got '{}'", char::from(*b))
            }
            // Redis sends the raw byte; we keep the message printable and single-line.
            ProtocolError::ExpectedDollar(b) => write!(f, "expected '$', got '\\x{b:02x}'"),
            ProtocolError::TooBigInline => f.write_str("too big inline request"),
            ProtocolError::TooBigMbulkCount => f.write_str("too big mbulk count string"),
            ProtocolError::TooBigBulkCount => f.write_str("too big bulk count string"),
            ProtocolError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            ProtocolError::TooManyInlineArgs => f.write_str("too many arguments in inline request"),
            ProtocolError::BulkNotTerminated => f.write_str("bulk data not terminated by CRLF"),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl ProtocolError {
    /// The reply to send before closing the connection: `-ERR Protocol error: ...`.
    pub fn to_reply(&self) -> Reply {
        Reply::err(format!("ERR {self}"))
    }
}

/// Outcome of scanning the front of the buffer without consuming it.
enum Scan {
    Incomplete,
    /// A frame that carries no command (`*0`, `*-1`, an empty inline line) of this many bytes.
    Skip(usize),
    /// A multibulk command of `len` bytes; arguments as (offset, length) into the frame.
    Multibulk {
        len: usize,
        args: Vec<(usize, usize)>,
    },
    /// An inline command of `len` bytes; its arguments had to be unescaped, so they are copies.
    Inline {
        len: usize,
        args: Vec<Bytes>,
    },
}

/// Consumes one complete command from the front of `buf` and returns its arguments.
///
/// Returns `Ok(None)` when `buf` holds no complete command yet; then only command-less frames
/// (empty inline lines, `*0`, `*-1`) may have been consumed. Multibulk arguments are zero-copy
/// slices of the consumed frame. Limits are checked as soon as a header is seen, and no memory
/// is reserved from a length the client sent.
pub fn parse_command(
    buf: &mut BytesMut,
    limits: &ParseLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let scan = if first == b'*' {
            scan_multibulk(buf, limits)?
        } else {
            scan_inline(buf, limits)?
        };
        match scan {
            Scan::Incomplete => return Ok(None),
            Scan::Skip(n) => buf.advance(n),
            Scan::Multibulk { len, args } => {
                let frame = buf.split_to(len).freeze();
                let argv = args
                    .into_iter()
                    .map(|(off, n)| frame.slice(off..off + n))
                    .collect();
                return Ok(Some(argv));
            }
            Scan::Inline { len, args } => {
                buf.advance(len);
                return Ok(Some(args));
            }
        }
    }
}

/// Finds the CRLF ending the header line that starts at `pos`; returns the index of its `\r`,
/// `None` if it has not fully arrived. A line (without CRLF) longer than `max` is `too_big`
/// whether or not its end has arrived; a `\r` not followed by `\n` is `malformed`.
fn header_end(
    buf: &[u8],
    pos: usize,
    max: usize,
    too_big: ProtocolError,
    malformed: ProtocolError,
) -> Result<Option<usize>, ProtocolError> {
    let rest = &buf[pos..];
    let window = &rest[..rest.len().min(max.saturating_add(1))];
    match window.iter().position(|&b| b == b'\r') {
        Some(i) if i > max => Err(too_big),
        Some(i) => match rest.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(pos + i)),
            Some(_) => Err(malformed),
        },
        None if rest.len() > max => Err(too_big),
        None => Ok(None),
    }
}

fn scan_multibulk(buf: &[u8], limits: &ParseLimits) -> Result<Scan, ProtocolError> {
    let Some(end) = header_end(
        buf,
        0,
        limits.max_inline,
        ProtocolError::TooBigMbulkCount,
        ProtocolError::InvalidMultibulkLength,
    )?
    else {
        return Ok(Scan::Incomplete);
    };
    let count = string2ll(&buf[1..end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    let mut pos = end + 2;
    if count <= 0 {
        // Redis ignores `*0` and any negative count.
        return Ok(Scan::Skip(pos));
    }
    if count > i64::from(i32::MAX) || count as u64 > limits.max_args as u64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    // Not `with_capacity(count)`: the count is untrusted. Growth is bounded by the bytes present
    // (every argument takes at least 6).
    let mut args = Vec::new();
    for _ in 0..count {
        let Some(&first) = buf.get(pos) else {
            return Ok(Scan::Incomplete);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedDollar(first));
        }
        let Some(end) = header_end(
            buf,
            pos,
            limits.max_inline,
            ProtocolError::TooBigBulkCount,
            ProtocolError::InvalidBulkLength,
        )?
        else {
            return Ok(Scan::Incomplete);
        };
        let len = string2ll(&buf[pos + 1..end])
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= limits.max_bulk)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        pos = end + 2;
        // Overflow is only possible with an absurd max_bulk; still no panic.
        let frame_end = pos
            .checked_add(len)
            .and_then(|e| e.checked_add(2))
            .ok_or(ProtocolError::InvalidBulkLength)?;
        match buf.get(frame_end - 2..frame_end) {
            None => return Ok(Scan::Incomplete),
            Some(b"\r\n") => {}
            Some(_) => return Err(ProtocolError::BulkNotTerminated),
        }
        args.push((pos, len));
        pos = frame_end;
    }
    Ok(Scan::Multibulk { len: pos, args })
}

fn scan_inline(buf: &[u8], limits: &ParseLimits) -> Result<Scan, ProtocolError> {
    let max = limits.max_inline;
    let window = &buf[..buf.len().min(max.saturating_add(1))];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() > max {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(Scan::Incomplete)
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
    if args.is_empty() {
        return Ok(Scan::Skip(nl + 1));
    }
    if args.len() > limits.max_args {
        return Err(ProtocolError::TooManyInlineArgs);
    }
    Ok(Scan::Inline { len: nl + 1, args })
}

/// C `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_val(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Port of Redis' `sdssplitargs`: splits an inline command line into arguments. `None` means
/// unbalanced quotes. Like the C original (which sees a C string), a NUL byte ends the line.
fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    // Reads past the end behave like the C string's terminating NUL.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    let mut args = Vec::new();
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if in_dq {
                match (c, at(p + 1)) {
                    (b'\\', b'x')
                        if hex_val(at(p + 2)).is_some() && hex_val(at(p + 3)).is_some() =>
                    {
                        let hi = hex_val(at(p + 2))?;
                        let lo = hex_val(at(p + 3))?;
                        cur.push(hi * 16 + lo);
                        p += 3;
                    }
                    (b'\\', next) if next != 0 => {
                        p += 1;
                        cur.push(match next {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    // A closing quote must be followed by a space or the end.
                    (b'"', next) if next != 0 && !is_space(next) => return None,
                    (b'"', _) => done = true,
                    (0, _) => return None,
                    _ => cur.push(c),
                }
            } else if in_sq {
                match (c, at(p + 1)) {
                    (b'\\', b'\'') => {
                        p += 1;
                        cur.push(b'\'');
                    }
                    (b'\'', next) if next != 0 && !is_space(next) => return None,
                    (b'\'', _) => done = true,
                    (0, _) => return None,
                    _ => cur.push(c),
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => cur.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(Bytes::from(cur));
    }
}

/// Port of Redis' `string2ll`: strict decimal (optional `-`, no `+`, no leading zeros, no
/// spaces, fits in i64).
fn string2ll(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // -(2^63) is representable, 2^63 is not.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// Reply protocol negotiated by the connection (`HELLO 2` / `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

/// Appends `reply` to `out` in the given protocol.
///
/// RESP2: `Nil` -> `$-1`, `NilArray` -> `*-1`, `Map` -> flat array of keys and values.
/// RESP3: `Nil`/`NilArray` -> `_`, `Map` -> `%`. Status and error lines have CR/LF replaced by
/// spaces so that no reply text can break the framing.
pub fn encode(reply: &Reply, proto: Proto, out: &mut BytesMut) {
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Status(s) => put_line(out, b'+', s),
        Reply::Error(e) => put_line(out, b'-', e),
        Reply::Int(i) => {
            out.put_u8(b':');
            put_decimal(out, *i);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => put_bulk(out, b),
        Reply::Nil => out.extend_from_slice(match proto {
            Proto::Resp2 => b"$-1\r\n",
            Proto::Resp3 => b"_\r\n",
        }),
        Reply::NilArray => out.extend_from_slice(match proto {
            Proto::Resp2 => b"*-1\r\n",
            Proto::Resp3 => b"_\r\n",
        }),
        Reply::Array(items) => {
            put_header(out, b'*', items.len());
            for item in items {
                encode(item, proto, out);
            }
        }
        Reply::Map(pairs) => {
            match proto {
                Proto::Resp2 => put_header(out, b'*', pairs.len() * 2),
                Proto::Resp3 => put_header(out, b'%', pairs.len()),
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
    }
}

/// Appends `args` as a multibulk command (what clients send).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    put_header(out, b'*', args.len());
    for a in args {
        put_bulk(out, a.as_ref());
    }
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_header(out, b'$', data.len());
    out.reserve(data.len() + 2);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `<prefix><text>\r\n` with any CR/LF in `text` replaced by a space.
fn put_line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(text);
    }
    out.extend_from_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, prefix: u8, n: usize) {
    out.put_u8(prefix);
    put_decimal(out, n as i128);
    out.extend_from_slice(b"\r\n");
}

/// Decimal digits of `n` without allocating.
fn put_decimal(out: &mut BytesMut, n: impl Into<i128>) {
    let n: i128 = n.into();
    let mut digits = [0u8; 40];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        digits[i] = b'-';
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> ParseLimits {
        ParseLimits::default()
    }

    /// Parses every command in `input`, stopping at the first error.
    fn parse_all(input: &[u8], l: &ParseLimits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = parse_command(&mut buf, l)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn argv(args: &[&str]) -> Vec<Bytes> {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn one(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        parse_command(&mut BytesMut::from(input), &limits())
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"*1\r\n$4\r\nPING\r\n", &["PING"]),
            (
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
                &["SET", "k", ""],
            ),
            (b"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", &["GET", "a\r\nb"]),
            (b"PING\r\n", &["PING"]),
            (b"PING\n", &["PING"]),
            (b"  set  k   v \r\n", &["set", "k", "v"]),
            (b"SET k \"a b\"\r\n", &["SET", "k", "a b"]),
            (b"SET k 'a b'\r\n", &["SET", "k", "a b"]),
            (
                b"SET k \"\\x41\\x7a\\n\\t\\\"\"\r\n",
                &["SET", "k", "Az\n\t\""],
            ),
            (b"SET k \"\\xZZ\"\r\n", &["SET", "k", "xZZ"]),
            (b"SET k 'it\\'s'\r\n", &["SET", "k", "it's"]),
            (b"SET k 'a\\nb'\r\n", &["SET", "k", "a\\nb"]),
            (b"SET k \"\"\r\n", &["SET", "k", ""]),
            (b"a\"b c\" d\r\n", &["ab c", "d"]),
            (b"a\tb\rc\n", &["a", "b", "c"]),
            // NUL ends the line, as for Redis' C string.
            (b"GET a\0b c\r\n", &["GET", "a"]),
        ];
        for (input, want) in cases {
            let got = one(input);
            assert_eq!(got, Ok(Some(argv(want))), "input {:?}", Bytes::from(*input));
        }
    }

    #[test]
    fn hex_escape_any_byte() {
        let got = one(b"SET k \"\\x00\\xff\\xFe\"\r\n");
        assert_eq!(
            got,
            Ok(Some(vec![
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"k"),
                Bytes::from_static(&[0x00, 0xff, 0xfe]),
            ]))
        );
    }

    #[test]
    fn skipped_frames() {
        for input in [
            &b"\r\n"[..],
            b"\n",
            b"   \r\n",
            b"*0\r\n",
            b"*-1\r\n",
            b"*-7\r\n",
        ] {
            let mut buf = BytesMut::from(input);
            assert_eq!(parse_command(&mut buf, &limits()), Ok(None));
            assert!(buf.is_empty(), "{input:?} not consumed");
        }
        // Skips then returns the next real command.
        let mut buf = BytesMut::from(&b"\r\n*0\r\n\r\n*1\r\n$1\r\nx\r\n"[..]);
        assert_eq!(parse_command(&mut buf, &limits()), Ok(Some(argv(&["x"]))));
        assert!(buf.is_empty());
    }

    #[test]
    fn incomplete_leaves_buffer() {
        let full = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        for k in 0..full.len() {
            let mut buf = BytesMut::from(&full[..k]);
            assert_eq!(parse_command(&mut buf, &limits()), Ok(None), "prefix {k}");
            assert_eq!(&buf[..], &full[..k]);
        }
        let mut buf = BytesMut::from(&b"GET ke"[..]);
        assert_eq!(parse_command(&mut buf, &limits()), Ok(None));
        assert_eq!(&buf[..], b"GET ke");
    }

    #[test]
    fn pipelined() {
        let input =
            b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$4\r\nECHO\r\n$2\r\nyo\r\n*1\r\n$3\r\nGE";
        let mut buf = BytesMut::from(&input[..]);
        let l = limits();
        assert_eq!(parse_command(&mut buf, &l), Ok(Some(argv(&["PING"]))));
        assert_eq!(parse_command(&mut buf, &l), Ok(Some(argv(&["ECHO", "hi"]))));
        assert_eq!(parse_command(&mut buf, &l), Ok(Some(argv(&["ECHO", "yo"]))));
        assert_eq!(parse_command(&mut buf, &l), Ok(None));
        assert_eq!(&buf[..], b"*1\r\n$3\r\nGE");
        buf.extend_from_slice(b"T\r\n");
        assert_eq!(parse_command(&mut buf, &l), Ok(Some(argv(&["GET"]))));
        assert!(buf.is_empty());
    }

    #[test]
    fn multibulk_args_are_zero_copy() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let args = parse_command(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(args[0].as_ptr() as usize, base + 8);
        assert_eq!(args[1].as_ptr() as usize, base + 17);
    }

    /// Feeds `input` split at every position (and byte by byte) and checks the outcome is the
    /// same as parsing it whole.
    fn check_split_independent(input: &[u8], l: &ParseLimits) {
        let whole = parse_all(input, l);
        let run = |chunks: &mut dyn Iterator<Item = &[u8]>| {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in chunks {
                buf.extend_from_slice(chunk);
                loop {
                    match parse_command(&mut buf, l) {
                        Ok(Some(cmd)) => out.push(cmd),
                        Ok(None) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(out)
        };
        for k in 0..=input.len() {
            let (a, b) = input.split_at(k);
            let got = run(&mut [a, b].into_iter());
            assert_eq!(
                got,
                whole,
                "split at {k} of {:?}",
                Bytes::copy_from_slice(input)
            );
        }
        let got = run(&mut input.chunks(1));
        assert_eq!(got, whole, "byte by byte");
    }

    #[test]
    fn split_at_every_byte() {
        let l = limits();
        let inputs: &[&[u8]] = &[
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nu\r\n",
            b"*1\r\n$4\r\nPING\r\n\r\nPING\r\n*0\r\nSET k \"a\\x41 b\" 'c'\n*2\r\n$0\r\n\r\n$1\r\nx\r\n",
            b"*1\r\n$4\r\nPING\r\n*1\r\n#",
            b"GET \"unterminated\r\n",
            b"*1\r\n$4\r\nPINGxx",
            b"*x\r\n",
            b"*1\r\n$-1\r\n",
        ];
        for input in inputs {
            check_split_independent(input, &l);
        }
        // Over-limit lines fail the same way wherever the input is split.
        let small = ParseLimits {
            max_bulk: 8,
            max_args: 3,
            max_inline: 6,
        };
        let inputs: &[&[u8]] = &[
            b"PING\r\nGET abcdef\r\n",
            b"*1\r\n$9\r\n",
            b"*4\r\n",
            b"*0000001\r\n",
            b"*1\r\n$0000001\r\n",
            b"SET a b c\r\n",
            b"GET abc\r\n",
        ];
        for input in inputs {
            check_split_independent(input, &small);
        }
    }

    #[test]
    fn errors() {
        use ProtocolError::*;
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*x\r\n", InvalidMultibulkLength),
            (b"*\r\n", InvalidMultibulkLength),
            (b"*+1\r\n", InvalidMultibulkLength),
            (b"*01\r\n", InvalidMultibulkLength),
            (b"*1 \r\n", InvalidMultibulkLength),
            (b"*2147483648\r\n", InvalidMultibulkLength),
            (b"*99999999999999999999\r\n", InvalidMultibulkLength),
            (b"*1\rx", InvalidMultibulkLength),
            (b"*1\r\n$x\r\n", InvalidBulkLength),
            (b"*1\r\n$-1\r\n", InvalidBulkLength),
            (b"*1\r\n$-0\r\n", InvalidBulkLength),
            (b"*1\r\n$\r\n", InvalidBulkLength),
            (b"*1\r\n$1\rx", InvalidBulkLength),
            (b"*1\r\nX", ExpectedDollar(b'X')),
            (b"*2\r\n$1\r\na\r\n:1\r\n", ExpectedDollar(b':')),
            (b"*1\r\n$1\r\nab\r\n", BulkNotTerminated),
            (b"GET \"abc\r\n", UnbalancedQuotes),
            (b"GET 'abc\r\n", UnbalancedQuotes),
            (b"GET \"abc\"def\r\n", UnbalancedQuotes),
            (b"GET 'abc'def\r\n", UnbalancedQuotes),
            (b"GET \"abc\\\"\r\n", UnbalancedQuotes),
        ];
        for (input, want) in cases {
            assert_eq!(
                one(input),
                Err(want.clone()),
                "input {:?}",
                Bytes::from(*input)
            );
        }
    }

    #[test]
    fn error_messages() {
        use ProtocolError::*;
        let cases = [
            (
                InvalidMultibulkLength,
                "Protocol error: invalid multibulk length",
            ),
            (InvalidBulkLength, "Protocol error: invalid bulk length"),
            (
                ExpectedDollar(b'X'),
                "Protocol error: expected '$', got 'X'",
            ),
            (
                ExpectedDollar(b'\r'),
                "Protocol error: expected '$', got '\\x0d'",
            ),
            (TooBigInline, "Protocol error: too big inline request"),
            (
                UnbalancedQuotes,
                "Protocol error: unbalanced quotes in request",
            ),
            (
                TooBigMbulkCount,
                "Protocol error: too big mbulk count string",
            ),
            (TooBigBulkCount, "Protocol error: too big bulk count string"),
            (
                TooManyInlineArgs,
                "Protocol error: too many arguments in inline request",
            ),
            (
                BulkNotTerminated,
                "Protocol error: bulk data not terminated by CRLF",
            ),
        ];
        for (e, msg) in cases {
            assert_eq!(e.to_string(), msg);
            assert_eq!(e.to_reply(), Reply::err(format!("ERR {msg}")));
        }
    }

    #[test]
    fn limits_are_checked_on_the_header() {
        let l = ParseLimits {
            max_bulk: 100,
            max_args: 3,
            max_inline: 16,
        };
        let p = |input: &[u8]| parse_command(&mut BytesMut::from(input), &l);
        // The declared sizes are rejected before any payload arrives.
        assert_eq!(p(b"*4\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(p(b"*3\r\n"), Ok(None));
        assert_eq!(p(b"*1\r\n$101\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(p(b"*1\r\n$100\r\n"), Ok(None));
        let wide = ParseLimits {
            max_inline: 64,
            ..l
        };
        assert_eq!(
            parse_command(
                &mut BytesMut::from(&b"*1\r\n$9223372036854775807\r\n"[..]),
                &wide
            ),
            Err(ProtocolError::InvalidBulkLength)
        );
        let bulk100 = [b"*1\r\n$100\r\n".as_slice(), &[b'a'; 100], b"\r\n"].concat();
        assert_eq!(p(&bulk100).unwrap().unwrap()[0].len(), 100);
        // Header lines without an end within max_inline bytes.
        assert_eq!(p(&[b'*'; 17]), Err(ProtocolError::TooBigMbulkCount));
        assert_eq!(p(&[b'*'; 16]), Ok(None));
        assert_eq!(
            p(b"*1\r\n$11111111111111111"),
            Err(ProtocolError::TooBigBulkCount)
        );
        // Inline: the line (without its newline) may be max_inline bytes long.
        assert_eq!(p(&[b'a'; 17]), Err(ProtocolError::TooBigInline));
        assert_eq!(p(&[b'a'; 16]), Ok(None));
        let line16 = [&[b'a'; 16][..], b"\n"].concat();
        assert_eq!(p(&line16).unwrap().unwrap().len(), 1);
        let line17 = [&[b'a'; 17][..], b"\n"].concat();
        assert_eq!(p(&line17), Err(ProtocolError::TooBigInline));
        assert_eq!(p(b"a b c d\r\n"), Err(ProtocolError::TooManyInlineArgs));
        assert_eq!(p(b"a b c\r\n").unwrap().unwrap().len(), 3);
    }

    #[test]
    fn unlimited_bulk_does_not_overflow() {
        let l = ParseLimits {
            max_bulk: usize::MAX,
            ..limits()
        };
        let mut buf = BytesMut::from(&b"*1\r\n$9223372036854775807\r\nab"[..]);
        assert_eq!(parse_command(&mut buf, &l), Ok(None));
    }

    #[test]
    fn default_limits_match_redis() {
        let l = ParseLimits::default();
        assert_eq!(l.max_inline, 64 * 1024);
        assert_eq!(l.max_bulk, 512 * 1024 * 1024);
        // A 64 KiB + 1 inline request without newline is refused.
        let big = vec![b'a'; 64 * 1024 + 1];
        assert_eq!(
            parse_command(&mut BytesMut::from(&big[..]), &l),
            Err(ProtocolError::TooBigInline)
        );
    }

    #[test]
    fn string2ll_matches_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
        ] {
            assert_eq!(string2ll(bad), None, "{bad:?}");
        }
    }

    fn enc(reply: &Reply, proto: Proto) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(reply, proto, &mut out);
        out.to_vec()
    }

    #[test]
    fn encode_both_protocols() {
        let map = Reply::Map(vec![
            (Reply::bulk("a"), Reply::Int(1)),
            (Reply::bulk("b"), Reply::Nil),
        ]);
        let cases: Vec<(Reply, &[u8], &[u8])> = vec![
            (Reply::Ok, b"+OK\r\n", b"+OK\r\n"),
            (Reply::status("PONG"), b"+PONG\r\n", b"+PONG\r\n"),
            (Reply::err("ERR x"), b"-ERR x\r\n", b"-ERR x\r\n"),
            (Reply::Int(0), b":0\r\n", b":0\r\n"),
            (Reply::Int(-42), b":-42\r\n", b":-42\r\n"),
            (
                Reply::Int(i64::MIN),
                b":-9223372036854775808\r\n",
                b":-9223372036854775808\r\n",
            ),
            (
                Reply::Int(i64::MAX),
                b":9223372036854775807\r\n",
                b":9223372036854775807\r\n",
            ),
            (Reply::bulk("hi"), b"$2\r\nhi\r\n", b"$2\r\nhi\r\n"),
            (Reply::bulk(""), b"$0\r\n\r\n", b"$0\r\n\r\n"),
            (
                Reply::bulk("a\r\nb"),
                b"$4\r\na\r\nb\r\n",
                b"$4\r\na\r\nb\r\n",
            ),
            (Reply::Nil, b"$-1\r\n", b"_\r\n"),
            (Reply::NilArray, b"*-1\r\n", b"_\r\n"),
            (Reply::Array(vec![]), b"*0\r\n", b"*0\r\n"),
            (
                Reply::Array(vec![Reply::Int(1), Reply::Array(vec![Reply::Nil])]),
                b"*2\r\n:1\r\n*1\r\n$-1\r\n",
                b"*2\r\n:1\r\n*1\r\n_\r\n",
            ),
            (
                map,
                b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n",
                b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n",
            ),
        ];
        for (reply, resp2, resp3) in cases {
            assert_eq!(enc(&reply, Proto::Resp2), resp2, "{reply:?} resp2");
            assert_eq!(enc(&reply, Proto::Resp3), resp3, "{reply:?} resp3");
        }
    }

    #[test]
    fn error_and_status_cannot_break_framing() {
        assert_eq!(
            enc(&Reply::err("ERR bad\r\n+OK"), Proto::Resp2),
            b"-ERR bad  +OK\r\n"
        );
        assert_eq!(enc(&Reply::status("a\nb\rc"), Proto::Resp3), b"+a b c\r\n");
    }

    #[test]
    fn encode_appends() {
        let mut out = BytesMut::from(&b"x"[..]);
        encode(&Reply::Ok, Proto::Resp2, &mut out);
        encode(&Reply::Int(7), Proto::Resp2, &mut out);
        assert_eq!(&out[..], b"x+OK\r\n:7\r\n");
    }

    proptest! {
        #[test]
        fn multibulk_round_trip(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..16)) {
            let mut buf = BytesMut::new();
            encode_command(&args, &mut buf);
            encode_command(&args, &mut buf);
            let l = limits();
            for _ in 0..2 {
                let got = parse_command(&mut buf, &l).unwrap().unwrap();
                prop_assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), args.clone());
            }
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn round_trip_split_anywhere(
            args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut whole = BytesMut::new();
            encode_command(&args, &mut whole);
            let k = cut.index(whole.len() + 1);
            let mut buf = BytesMut::from(&whole[..k]);
            let l = limits();
            let first = parse_command(&mut buf, &l).unwrap();
            let got = match first {
                Some(cmd) => cmd,
                None => {
                    buf.extend_from_slice(&whole[k..]);
                    parse_command(&mut buf, &l).unwrap().unwrap()
                }
            };
            prop_assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), args);
        }

        #[test]
        fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..256)) {
            let l = ParseLimits { max_bulk: 64, max_args: 8, max_inline: 32 };
            let mut buf = BytesMut::from(&input[..]);
            // Terminates: every Ok(Some) consumes at least one byte.
            while let Ok(Some(_)) = parse_command(&mut buf, &l) {}
        }

        #[test]
        fn random_protocolish_bytes_never_panic(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    &b"*"[..], b"$", b"\r\n", b"\r", b"\n", b"1", b"2", b"-1", b"0", b"\"", b"'",
                    b"\\x4", b"\\", b" ", b"a", b"\0",
                ]),
                0..64,
            )
        ) {
            let input = parts.concat();
            let l = ParseLimits { max_bulk: 64, max_args: 8, max_inline: 32 };
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = parse_command(&mut buf, &l) {}
        }
    }
}
