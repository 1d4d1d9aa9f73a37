//! Minimal RESP: request encoding (GET/SET as arrays of bulk strings) and an incremental
//! reply parser for `+ - : $ * _` that never allocates and tolerates replies split
//! anywhere across reads.

use std::io::Write as _;

/// Longest bulk string accepted (Redis' `proto-max-bulk-len` default).
pub const MAX_BULK_LEN: usize = 512 << 20;
/// Largest array accepted.
pub const MAX_ARRAY_LEN: usize = 1 << 24;
/// Deepest array nesting accepted (guards the recursion).
pub const MAX_DEPTH: usize = 32;
/// Longest simple string / error / integer line accepted.
pub const MAX_LINE: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    #[error("unknown RESP type byte {0:#04x}")]
    UnknownType(u8),
    #[error("malformed length or integer")]
    BadNumber,
    #[error("line not terminated by CRLF")]
    BadLineEnd,
    #[error("length out of range")]
    TooLarge,
    #[error("arrays nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// One complete top-level reply. Borrowed from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `+OK`
    Simple(&'a [u8]),
    /// `-ERR message`
    Error(&'a [u8]),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc`
    Bulk(&'a [u8]),
    /// `*N` with its N elements (validated and skipped; the load generator does not need them).
    Array(usize),
    /// `$-1`, `*-1` or RESP3 `_`.
    Null,
}

impl Reply<'_> {
    /// The error class (first word, e.g. `ERR`, `MOVED`, `WRONGTYPE`) of an error reply.
    pub fn error_prefix(&self) -> Option<String> {
        match self {
            Reply::Error(msg) => Some(error_prefix(msg)),
            _ => None,
        }
    }
}

/// First word of an error message, printable ASCII only, at most 32 characters.
pub fn error_prefix(msg: &[u8]) -> String {
    let word: String = msg
        .iter()
        .take_while(|b| !b.is_ascii_whitespace())
        .take(32)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    if word.is_empty() {
        "EMPTY".to_string()
    } else {
        word
    }
}

/// Finds the CRLF-terminated line at the start of `buf`: returns (line, bytes incl. CRLF).
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, RespError> {
    let limit = buf.len().min(MAX_LINE + 2);
    match buf[..limit].iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) if buf[i] == b'\n' => Err(RespError::BadLineEnd),
        Some(i) => match buf.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&buf[..i], i + 2))),
            Some(_) => Err(RespError::BadLineEnd),
        },
        None if limit < buf.len() || buf.len() > MAX_LINE => Err(RespError::TooLarge),
        None => Ok(None),
    }
}

fn parse_int(digits: &[u8]) -> Result<i64, RespError> {
    let (neg, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, digits),
    };
    if body.is_empty() || body.len() > 19 {
        return Err(RespError::BadNumber);
    }
    let mut v: i64 = 0;
    for &d in body {
        if !d.is_ascii_digit() {
            return Err(RespError::BadNumber);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or(RespError::BadNumber)?;
    }
    Ok(if neg { -v } else { v })
}

/// Parses one reply from the start of `buf`. `Ok(None)`: incomplete, read more and call
/// again with the same start (the parser keeps no state between calls). On success
/// returns the reply and how many bytes it used.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    let Some((&ty, rest)) = buf.split_first() else {
        return Ok(None);
    };
    // Reject garbage before waiting for a line end that may never come.
    if !matches!(ty, b'+' | b'-' | b':' | b'$' | b'*' | b'_') {
        return Err(RespError::UnknownType(ty));
    }
    let Some((text, used)) = line(rest)? else {
        return Ok(None);
    };
    let header = 1 + used;
    let reply = match ty {
        b'+' => Reply::Simple(text),
        b'-' => Reply::Error(text),
        b':' => Reply::Integer(parse_int(text)?),
        b'_' if text.is_empty() => Reply::Null,
        b'_' => return Err(RespError::BadNumber),
        b'$' => {
            let len = parse_int(text)?;
            if len == -1 {
                return Ok(Some((Reply::Null, header)));
            }
            let len = usize::try_from(len).map_err(|_| RespError::BadNumber)?;
            if len > MAX_BULK_LEN {
                return Err(RespError::TooLarge);
            }
            let total = header + len + 2;
            if buf.len() < total {
                return Ok(None);
            }
            if &buf[header + len..total] != b"\r\n" {
                return Err(RespError::BadLineEnd);
            }
            return Ok(Some((Reply::Bulk(&buf[header..header + len]), total)));
        }
        _ => {
            // b'*'
            let n = parse_int(text)?;
            if n == -1 {
                return Ok(Some((Reply::Null, header)));
            }
            let n = usize::try_from(n).map_err(|_| RespError::BadNumber)?;
            if n > MAX_ARRAY_LEN {
                return Err(RespError::TooLarge);
            }
            if depth + 1 > MAX_DEPTH {
                return Err(RespError::TooDeep);
            }
            let mut pos = header;
            for _ in 0..n {
                match parse_at(&buf[pos..], depth + 1)? {
                    Some((_, used)) => pos += used,
                    None => return Ok(None),
                }
            }
            return Ok(Some((Reply::Array(n), pos)));
        }
    };
    Ok(Some((reply, header)))
}

/// A read buffer that hands out complete replies and keeps partial ones for the next read.
#[derive(Debug)]
pub struct ReplyBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReplyBuffer {
    pub fn new(capacity: usize) -> Self {
        ReplyBuffer {
            buf: vec![0; capacity.max(64)],
            start: 0,
            end: 0,
        }
    }

    /// Free space to read into: at least a quarter of the buffer, compacting or growing it
    /// (a reply larger than the buffer grows it).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let want = self.buf.len() / 4;
        if self.buf.len() - self.end < want && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of `spare()` as filled.
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Appends bytes (tests, and callers that read elsewhere).
    pub fn extend(&mut self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            self.commit(n);
            rest = &rest[n..];
        }
    }

    /// Next complete reply, if buffered. After an error the buffer is unusable: drop the
    /// connection (`clear` before reuse).
    pub fn next_reply(&mut self) -> Result<Option<Reply<'_>>, RespError> {
        let ReplyBuffer { buf, start, end } = self;
        match parse_reply(&buf[*start..*end])? {
            Some((reply, used)) => {
                *start += used;
                Ok(Some(reply))
            }
            None => Ok(None),
        }
    }

    /// Takes the next complete HTTP response (etcd load), as its outcome.
    pub fn next_http(&mut self) -> Result<Option<Result<(), String>>, crate::http::HttpError> {
        let ReplyBuffer { buf, start, end } = self;
        match crate::http::parse_response(&buf[*start..*end])? {
            Some((outcome, used)) => {
                *start += used;
                Ok(Some(outcome))
            }
            None => Ok(None),
        }
    }

    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "${}\r\n", arg.len());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// Appends a command as a RESP array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        bulk(out, a);
    }
}

pub fn encode_get(out: &mut Vec<u8>, key: &[u8]) {
    encode_command(out, &[b"GET", key]);
}

pub fn encode_set(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    encode_command(out, &[b"SET", key, value]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned rendering of a reply for comparisons across buffers.
    fn show(r: &Reply<'_>) -> String {
        match r {
            Reply::Simple(s) => format!("+{}", String::from_utf8_lossy(s)),
            Reply::Error(s) => format!("-{}", String::from_utf8_lossy(s)),
            Reply::Integer(i) => format!(":{i}"),
            Reply::Bulk(b) => format!("${}", String::from_utf8_lossy(b)),
            Reply::Array(n) => format!("*{n}"),
            Reply::Null => "null".to_string(),
        }
    }

    const STREAM: &[u8] = b"+OK\r\n-ERR wrong number\r\n:-42\r\n:7\r\n$5\r\nhe\r\no\r\n$0\r\n\r\n\
        $-1\r\n*-1\r\n_\r\n*3\r\n:1\r\n$2\r\nab\r\n*2\r\n+x\r\n_\r\n*0\r\n-MOVED 3999 127.0.0.1:7000\r\n";

    fn expected() -> Vec<String> {
        [
            "+OK",
            "-ERR wrong number",
            ":-42",
            ":7",
            "$he\r\no",
            "$",
            "null",
            "null",
            "null",
            "*3",
            "*0",
            "-MOVED 3999 127.0.0.1:7000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn drain(rb: &mut ReplyBuffer, out: &mut Vec<String>) {
        while let Some(r) = rb.next_reply().unwrap() {
            out.push(show(&r));
        }
    }

    #[test]
    fn parses_every_type() {
        let mut rb = ReplyBuffer::new(8);
        rb.extend(STREAM);
        let mut got = Vec::new();
        drain(&mut rb, &mut got);
        assert_eq!(got, expected());
        assert_eq!(rb.buffered(), 0);
    }

    #[test]
    fn split_at_every_byte_gives_the_same_replies() {
        for split in 0..=STREAM.len() {
            let mut rb = ReplyBuffer::new(16);
            let mut got = Vec::new();
            rb.extend(&STREAM[..split]);
            drain(&mut rb, &mut got);
            rb.extend(&STREAM[split..]);
            drain(&mut rb, &mut got);
            assert_eq!(got, expected(), "split at {split}");
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_replies() {
        let mut rb = ReplyBuffer::new(4);
        let mut got = Vec::new();
        for b in STREAM {
            rb.extend(std::slice::from_ref(b));
            drain(&mut rb, &mut got);
        }
        assert_eq!(got, expected());
    }

    #[test]
    fn every_proper_prefix_is_incomplete_not_an_error() {
        let one = b"*2\r\n$3\r\nabc\r\n*1\r\n:5\r\n";
        for cut in 0..one.len() {
            assert_eq!(parse_reply(&one[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(parse_reply(one), Ok(Some((Reply::Array(2), one.len()))));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: &[&[u8]] = &[
            b"?\r\n",
            b"+OK\rX",
            b"+OK\n",
            b":12a\r\n",
            b":\r\n",
            b":99999999999999999999\r\n",
            b"$-2\r\n",
            b"$3\r\nabcXY",
            b"$99999999999\r\n",
            b"*-5\r\n",
            b"_x\r\n",
            b"*1\r\n!\r\n",
        ];
        for c in cases {
            assert!(
                parse_reply(c).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(c)
            );
        }
        let deep: Vec<u8> = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert_eq!(parse_reply(&deep), Err(RespError::TooDeep));
        let long = vec![b'a'; MAX_LINE + 10];
        let mut line = b"+".to_vec();
        line.extend_from_slice(&long);
        assert_eq!(parse_reply(&line), Err(RespError::TooLarge));
    }

    #[test]
    fn large_bulk_grows_the_buffer() {
        let value = vec![b'v'; 10_000];
        let mut wire = b"+first\r\n".to_vec();
        encode_command(&mut wire, &[]); // "*0\r\n"
        wire.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n");
        let mut rb = ReplyBuffer::new(64);
        let mut got = Vec::new();
        for chunk in wire.chunks(100) {
            rb.extend(chunk);
            while let Some(r) = rb.next_reply().unwrap() {
                got.push(match r {
                    Reply::Bulk(b) => b.len().to_string(),
                    other => show(&other),
                });
            }
        }
        assert_eq!(got, ["+first", "*0", "10000"]);
    }

    #[test]
    fn request_encoding() {
        let mut out = Vec::new();
        encode_get(&mut out, b"k1");
        encode_set(&mut out, b"{t}k", b"");
        assert_eq!(
            out,
            b"*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n*3\r\n$3\r\nSET\r\n$4\r\n{t}k\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn error_prefixes() {
        assert_eq!(error_prefix(b"MOVED 1 h:1"), "MOVED");
        assert_eq!(error_prefix(b"ERR"), "ERR");
        assert_eq!(error_prefix(b""), "EMPTY");
        assert_eq!(error_prefix(b"\x01X y"), "?X");
    }
}
