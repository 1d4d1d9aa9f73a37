//! etcd v3 over its gRPC-gateway JSON API on keep-alive HTTP/1.1: request encoding and an
//! incremental response parser (Content-Length or chunked bodies).
//!
//! Requests: `POST /v3/kv/range {"key":B64}` (linearizable: `serializable` left false) and
//! `POST /v3/kv/put {"key":B64,"value":B64}`. The gateway turns each into a gRPC call to
//! the same etcd process, so a request pays JSON and an internal gRPC hop on top of etcd's
//! own work; see docs/benchmarks.md.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::io::Write as _;

/// Longest status line plus headers accepted.
pub const MAX_HEAD: usize = 64 << 10;
/// Largest body accepted.
pub const MAX_BODY: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("HTTP response too large")]
    TooLarge,
}

/// Success, or the error class (`http:<status>`).
pub type Outcome = Result<(), String>;

fn post(out: &mut Vec<u8>, host: &str, path: &str, body: &[u8]) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// Appends a linearizable range read of `key`.
pub fn encode_range(out: &mut Vec<u8>, host: &str, key: &[u8], scratch: &mut Vec<u8>) {
    scratch.clear();
    scratch.extend_from_slice(b"{\"key\":\"");
    push_b64(scratch, key);
    scratch.extend_from_slice(b"\"}");
    post(out, host, "/v3/kv/range", scratch);
}

/// Appends a put of `key`; `value_b64` is the value already base64-encoded.
pub fn encode_put(
    out: &mut Vec<u8>,
    host: &str,
    key: &[u8],
    value_b64: &[u8],
    scratch: &mut Vec<u8>,
) {
    scratch.clear();
    scratch.extend_from_slice(b"{\"key\":\"");
    push_b64(scratch, key);
    scratch.extend_from_slice(b"\",\"value\":\"");
    scratch.extend_from_slice(value_b64);
    scratch.extend_from_slice(b"\"}");
    post(out, host, "/v3/kv/put", scratch);
}

fn push_b64(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    out.resize(
        start + base64::encoded_len(data.len(), true).unwrap_or(0),
        0,
    );
    let n = B64
        .encode_slice(data, &mut out[start..])
        .unwrap_or_default();
    out.truncate(start + n);
}

/// Base64 of `data` (values are encoded once per run).
pub fn b64(data: &[u8]) -> Vec<u8> {
    B64.encode(data).into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_usize(s: &[u8], radix: u32) -> Result<usize, HttpError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| usize::from_str_radix(t.trim(), radix).ok())
        .ok_or(HttpError::Malformed("bad length"))
}

/// Parses one response from the start of `buf`. `Ok(None)`: incomplete. On success returns
/// the outcome (`Ok` for 2xx, else `Err("http:<status>")`) and the bytes it used.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Outcome, usize)>, HttpError> {
    let Some(head_len) = find(&buf[..buf.len().min(MAX_HEAD + 4)], b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head = &buf[..head_len];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with(b"HTTP/1.") {
        return Err(HttpError::Malformed("no HTTP/1.x status line"));
    }
    let status = status_line
        .split(|&b| b == b' ')
        .nth(1)
        .ok_or(HttpError::Malformed("no status code"))
        .and_then(|s| parse_usize(s, 10))?;
    let mut content_length = None;
    let mut chunked = false;
    for l in lines {
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(parse_usize(value, 10)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
        }
    }
    let body_start = head_len + 4;
    let end = if chunked {
        match chunked_end(&buf[body_start..])? {
            Some(n) => body_start + n,
            None => return Ok(None),
        }
    } else {
        let len = content_length.unwrap_or(0);
        if len > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        if buf.len() < body_start + len {
            return Ok(None);
        }
        body_start + len
    };
    let outcome = if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("http:{status}"))
    };
    Ok(Some((outcome, end)))
}

/// Length of a complete chunked body (through the last chunk and trailers), if complete.
fn chunked_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    let mut pos = 0;
    loop {
        let Some(nl) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let size_field = &buf[pos..pos + nl];
        let size_hex = size_field.split(|&b| b == b';').next().unwrap_or_default();
        let size = parse_usize(size_hex, 16)?;
        if size > MAX_BODY || pos > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        pos += nl + 2;
        if size == 0 {
            // Optional trailers, then an empty line.
            let mut p = pos;
            loop {
                let Some(n) = find(&buf[p..], b"\r\n") else {
                    return Ok(None);
                };
                p += n + 2;
                if n == 0 {
                    return Ok(Some(p));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(HttpError::Malformed("chunk not followed by CRLF"));
        }
        pos += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_json_with_base64() {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        encode_put(&mut out, "h:1", b"k1", &b64(b"vv"), &mut scratch);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("POST /v3/kv/put HTTP/1.1\r\nHost: h:1\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\r\n\r\n{\"key\":\"azE=\",\"value\":\"dnY=\"}"),
            "{text}"
        );
        assert!(text.contains("Content-Length: 29\r\n"), "{text}");
        out.clear();
        encode_range(&mut out, "h:1", b"k1", &mut scratch);
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("{\"key\":\"azE=\"}"));
    }

    #[test]
    fn content_length_responses_split_anywhere() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\"}HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        let first = r.len() - "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".len();
        for cut in 0..first {
            assert_eq!(parse_response(&r[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(parse_response(r), Ok(Some((Ok(()), first))));
        assert_eq!(
            parse_response(&r[first..]),
            Ok(Some((Err("http:503".into()), r.len() - first)))
        );
    }

    #[test]
    fn chunked_responses() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nrest";
        for cut in 0..r.len() - 4 {
            assert_eq!(parse_response(&r[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(parse_response(r), Ok(Some((Ok(()), r.len() - 4))));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_response(b"+OK\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_response(&vec![b'a'; MAX_HEAD + 10]).is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
