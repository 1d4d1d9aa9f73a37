//! A minimal, strict RESP2/RESP3 client over a raw `TcpStream`, for byte-level tests (HELLO 3,
//! inline commands, protocol errors, connection closing) that the `redis` crate would hide.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::server::IO_TIMEOUT;

/// One parsed reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 `$-1`.
    NilBulk,
    /// RESP2 `*-1`.
    NilArray,
    /// RESP3 `_`.
    Null,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Push(Vec<Resp>),
    /// RESP3 `,` (kept as text so the exact formatting can be asserted).
    Double(String),
    Bool(bool),
    BigNumber(String),
    /// RESP3 `=`: (format, text).
    Verbatim(String, String),
}

impl Resp {
    pub fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.as_bytes().to_vec())
    }

    pub fn simple(s: &str) -> Resp {
        Resp::Simple(s.to_string())
    }

    /// The value of `key` in a RESP3 map, or in a RESP2 flat key/value array.
    pub fn field(&self, key: &str) -> Option<&Resp> {
        let matches = |k: &Resp| match k {
            Resp::Bulk(b) => b == key.as_bytes(),
            Resp::Simple(s) => s == key,
            _ => false,
        };
        match self {
            Resp::Map(pairs) => pairs.iter().find(|(k, _)| matches(k)).map(|(_, v)| v),
            Resp::Array(items) => items
                .chunks(2)
                .find(|c| c.len() == 2 && matches(&c[0]))
                .map(|c| &c[1]),
            _ => None,
        }
    }
}

/// Parses one reply from the front of `buf`. `Ok(None)`: incomplete, read more.
/// `Err`: the bytes are not valid RESP.
pub fn parse(buf: &[u8]) -> Result<Option<(Resp, usize)>, String> {
    let Some(line_end) = find_crlf(buf) else {
        return Ok(None);
    };
    if line_end == 0 {
        return Err("empty reply line".into());
    }
    let line = std::str::from_utf8(&buf[1..line_end]).map_err(|e| format!("non-utf8 line: {e}"))?;
    let rest = line_end + 2;
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|e| format!("bad integer {s:?}: {e}"))
    };
    let simple = |r: Resp| Ok(Some((r, rest)));
    match buf[0] {
        b'+' => simple(Resp::Simple(line.to_string())),
        b'-' => simple(Resp::Error(line.to_string())),
        b':' => simple(Resp::Int(int(line)?)),
        b'_' => simple(Resp::Null),
        b',' => simple(Resp::Double(line.to_string())),
        b'(' => simple(Resp::BigNumber(line.to_string())),
        b'#' => match line {
            "t" => simple(Resp::Bool(true)),
            "f" => simple(Resp::Bool(false)),
            _ => Err(format!("bad boolean {line:?}")),
        },
        b'$' | b'=' | b'!' => {
            let n = int(line)?;
            if n == -1 && buf[0] == b'$' {
                return simple(Resp::NilBulk);
            }
            let n = usize::try_from(n).map_err(|_| format!("bad length {n}"))?;
            if buf.len() < rest + n + 2 {
                return Ok(None);
            }
            if &buf[rest + n..rest + n + 2] != b"\r\n" {
                return Err("bulk not terminated by CRLF".into());
            }
            let data = buf[rest..rest + n].to_vec();
            let used = rest + n + 2;
            let reply = match buf[0] {
                b'$' => Resp::Bulk(data),
                b'!' => Resp::Error(String::from_utf8_lossy(&data).into_owned()),
                _ => {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    let (fmt, body) = text.split_at(text.len().min(4));
                    Resp::Verbatim(fmt.trim_end_matches(':').to_string(), body.to_string())
                }
            };
            Ok(Some((reply, used)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(line)?;
            if n == -1 && buf[0] == b'*' {
                return simple(Resp::NilArray);
            }
            let n = usize::try_from(n).map_err(|_| format!("bad count {n}"))?;
            let elems = if matches!(buf[0], b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut items = Vec::with_capacity(elems);
            let mut pos = rest;
            for _ in 0..elems {
                match parse(&buf[pos..])? {
                    None => return Ok(None),
                    Some((r, used)) => {
                        items.push(r);
                        pos += used;
                    }
                }
            }
            let pairs = |items: Vec<Resp>| {
                let mut it = items.into_iter();
                let mut out = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    out.push((k, v));
                }
                out
            };
            let reply = match buf[0] {
                b'*' => Resp::Array(items),
                b'~' => Resp::Set(items),
                b'>' => Resp::Push(items),
                b'%' => Resp::Map(pairs(items)),
                // An attribute precedes the reply it annotates: return that reply.
                _ => {
                    return match parse(&buf[pos..])? {
                        None => Ok(None),
                        Some((r, used)) => Ok(Some((r, pos + used))),
                    };
                }
            };
            Ok(Some((reply, pos)))
        }
        other => Err(format!("unknown RESP type byte {:?}", other as char)),
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Encodes a command as a RESP multibulk.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// How a connection ended, as seen by [`RawConn::read_until_closed`].
#[derive(Debug)]
pub struct Closed {
    /// Every byte received before the end.
    pub bytes: Vec<u8>,
    /// True if the end was a reset rather than an orderly FIN.
    pub reset: bool,
}

/// A raw client connection. Unparsed bytes are buffered between calls.
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn connect(port: u16) -> RawConn {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Wraps an already connected stream (its timeouts are left as they are).
    pub fn from_stream(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {:?}: {e}", String::from_utf8_lossy(bytes)));
    }

    pub fn send_cmd(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&encode(&args));
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Resp {
        self.send_cmd(args);
        self.read_reply()
    }

    /// Reads one complete reply; panics on timeout, EOF or invalid RESP.
    pub fn read_reply(&mut self) -> Resp {
        loop {
            match parse(&self.buf) {
                Err(e) => panic!(
                    "invalid RESP from server: {e}; buffered {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return reply;
                }
                Ok(None) => {}
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "connection closed while waiting for a reply; buffered {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read reply: {e}"),
            }
        }
    }

    /// Reads everything until the server closes the connection (FIN or reset). Returns `Err`
    /// with the bytes seen so far if it is still open after `timeout`.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Result<Closed, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut bytes = std::mem::take(&mut self.buf);
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(bytes);
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(500))))
                .expect("timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Ok(Closed {
                        bytes,
                        reset: false,
                    })
                }
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Ok(Closed { bytes, reset: true }),
            }
        }
    }

    /// Asserts the server sends exactly `expected` and then closes the connection.
    pub fn expect_reply_then_close(&mut self, expected: &[u8]) {
        match self.read_until_closed(IO_TIMEOUT) {
            Ok(closed) => assert_eq!(
                String::from_utf8_lossy(&closed.bytes),
                String::from_utf8_lossy(expected),
                "bytes before the server closed the connection"
            ),
            Err(bytes) => panic!(
                "connection still open after {IO_TIMEOUT:?}; received {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}
