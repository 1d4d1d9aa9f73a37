//! Protocol-neutral command replies. `src/resp.rs` encodes them as RESP2 or RESP3.

use bytes::Bytes;

/// A reply to one command, independent of the wire protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A status line, e.g. `+PONG`, `+string`.
    Status(Bytes),
    /// An error line *without* the leading `-`, e.g. `ERR syntax error`,
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`.
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// Null array (`*-1` in RESP2, `_` in RESP3).
    NilArray,
    Array(Vec<Reply>),
    /// A map: RESP3 `%`, flattened to an array of alternating keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// An error reply from a full Redis error line (`"ERR ..."`).
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(Bytes::from(msg.into()))
    }

    pub fn status(s: &'static str) -> Reply {
        Reply::Status(Bytes::from_static(s.as_bytes()))
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Redis' generic syntax error.
    pub fn syntax() -> Reply {
        Reply::err("ERR syntax error")
    }

    /// `ERR value is not an integer or out of range`.
    pub fn not_integer() -> Reply {
        Reply::err("ERR value is not an integer or out of range")
    }

    /// `ERR wrong number of arguments for 'cmd' command` (name lower-cased like Redis).
    pub fn wrong_arity(cmd: &str) -> Reply {
        Reply::err(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.to_ascii_lowercase()
        ))
    }
}
