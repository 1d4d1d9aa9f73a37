//! Small blocking clients for the runner's control traffic (readiness, INFO, probes):
//! RESP over std TCP with deadlines, and one-shot HTTP/1.1 POSTs for etcd.

use crate::resp::{self, Reply, ReplyBuffer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A reply, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Ok(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(usize),
    Null,
}

/// One RESP connection with a per-call deadline.
pub struct RespClient {
    stream: TcpStream,
    rbuf: ReplyBuffer,
    timeout: Duration,
}

impl RespClient {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(RespClient {
            stream,
            rbuf: ReplyBuffer::new(64 << 10),
            timeout,
        })
    }

    /// Sends one command and waits for its reply (at most the timeout).
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Owned, String> {
        let mut req = Vec::new();
        resp::encode_command(&mut req, args);
        self.stream
            .set_write_timeout(Some(self.timeout))
            .and_then(|_| self.stream.write_all(&req))
            .map_err(|e| format!("write: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.rbuf.next_reply() {
                Ok(Some(r)) => {
                    return Ok(match r {
                        Reply::Simple(s) => Owned::Ok(String::from_utf8_lossy(s).into_owned()),
                        Reply::Error(s) => Owned::Err(String::from_utf8_lossy(s).into_owned()),
                        Reply::Integer(i) => Owned::Int(i),
                        Reply::Bulk(b) => Owned::Bulk(b.to_vec()),
                        Reply::Array(n) => Owned::Array(n),
                        Reply::Null => Owned::Null,
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(format!("bad reply: {e}")),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out".into());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.stream.read(self.rbuf.spare()) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.rbuf.commit(n),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// A command expected to answer a bulk string (INFO), as text.
    pub fn text(&mut self, args: &[&[u8]]) -> Result<String, String> {
        match self.call(args)? {
            Owned::Bulk(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }
}

/// `INFO leasekv` of the node at `addr`.
pub fn info_leasekv(addr: SocketAddr) -> Result<String, String> {
    RespClient::connect(addr, Duration::from_secs(2))?.text(&[b"INFO", b"leasekv"])
}

/// True when `addr` answers PING with PONG within a short time.
pub fn ping(addr: SocketAddr) -> bool {
    RespClient::connect(addr, Duration::from_millis(500))
        .and_then(|mut c| c.call(&[b"PING"]))
        .is_ok_and(|r| r == Owned::Ok("PONG".into()))
}

/// One HTTP/1.1 request (`Connection: close`); returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 8192];
    loop {
        if let Ok(Some((_, used))) = crate::http::parse_response(&out) {
            out.truncate(used);
            break;
        }
        if Instant::now() >= deadline || out.len() > (1 << 20) {
            return Err("HTTP response incomplete".into());
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
