//! Redis command parsing: a request's arguments become a [`Command`] or the exact error reply
//! Redis 7 would give (arity, syntax, option combinations, number formats).
//!
//! Parsing is pure: no clock, no state. Relative expiries stay relative
//! ([`ExpireSpec::In`]) and are resolved against the log entry's timestamp when applied.
//! Arity comes from the static table in `command/table.rs`, which also answers COMMAND.

mod cluster;
mod conn;
mod table;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use shards::kv::{parse_float_arg, parse_i64};
use shards::{ExpireCond, ExpireSpec, ReadOp, Reply, SetCond, WriteOp};

pub use cluster::ClusterQuery;
pub use table::{info_reply, lookup, spec, subcommand, CommandSpec, COMMANDS, SUBCOMMANDS};

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Answered without touching any shard (ECHO, SELECT 0, COMMAND ..., CLIENT
    /// SETINFO/NO-EVICT/NO-TOUCH/HELP).
    Immediate(Reply),
    /// `+PONG`, or the argument as a bulk string.
    Ping(Option<Bytes>),
    Quit,
    /// HELLO [protover [AUTH user pass] [SETNAME name]]. `protover` is 2 or 3 when present;
    /// AUTH has been checked (only the password-less `default` user exists).
    Hello {
        protover: Option<i64>,
        setname: Option<Bytes>,
    },
    /// Validated name (empty clears it).
    ClientSetName(Bytes),
    ClientGetName,
    ClientId,
    ClientInfo,
    /// CLIENT LIST; TYPE / ID filters are validated but not carried.
    ClientList,
    /// INFO sections, lower-cased; empty means the default set.
    Info(Vec<Bytes>),
    /// Single-key reads: GET TTL PTTL TYPE STRLEN GETRANGE.
    Read(ReadOp),
    /// Single-key writes: SET family, SETNX, SETEX, PSETEX, GETSET, GETDEL, INCR family,
    /// APPEND, SETRANGE, EXPIRE family, PERSIST.
    Write(WriteOp),
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    /// All keys must hash to one slot; the router enforces it (CROSSSLOT).
    MSetNx(Vec<(Bytes, Bytes)>),
    /// DEL and UNLINK.
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    DbSize,
    /// FLUSHALL [ASYNC|SYNC].
    FlushAll,
    Keys(Bytes),
    /// `pattern` is None for no MATCH or `MATCH *`; `count` defaults to 10 and is >= 1.
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: usize,
        type_filter: Option<Bytes>,
    },
    /// CLUSTER SLOTS / SHARDS / NODES / MYID / INFO: answered from the current topology.
    Cluster(ClusterQuery),
}

/// Parses one request. `argv[0]` is the command name (any case).
pub fn parse(argv: &[Bytes]) -> Result<Command, Reply> {
    let Some(name) = argv.first() else {
        return Err(Reply::err("ERR empty command"));
    };
    let Some(s) = table::top_level(name) else {
        return Err(unknown_command(argv));
    };
    if !s.arity_ok(argv.len()) {
        return Err(Reply::wrong_arity(s.name));
    }
    // Arity was checked, so the indexing below is in bounds for each command.
    let a = &argv[1..];
    let key = || a[0].clone();
    let write = |op| Ok(Command::Write(op));
    let read = |op| Ok(Command::Read(op));
    match s.name {
        "get" => read(ReadOp::Get { key: key() }),
        "set" => parse_set(a),
        "setnx" => write(WriteOp::SetNx {
            key: key(),
            value: a[1].clone(),
        }),
        "setex" | "psetex" => {
            let ms = check_relative(expire_millis(&a[1], s.name == "setex", s.name)?, s.name)?;
            write(WriteOp::Set {
                key: key(),
                value: a[2].clone(),
                cond: SetCond::Always,
                expire: Some(ExpireSpec::In(ms)),
                get: false,
            })
        }
        "getset" => write(WriteOp::Set {
            key: key(),
            value: a[1].clone(),
            cond: SetCond::Always,
            expire: None,
            get: true,
        }),
        "getdel" => write(WriteOp::GetDel { key: key() }),
        "mget" => Ok(Command::MGet(a.to_vec())),
        "mset" => Ok(Command::MSet(pairs(s.name, a)?)),
        "msetnx" => Ok(Command::MSetNx(pairs(s.name, a)?)),
        "del" | "unlink" => Ok(Command::Del(a.to_vec())),
        "exists" => Ok(Command::Exists(a.to_vec())),
        "incr" | "decr" | "incrby" | "decrby" => {
            let delta = match s.name {
                "incr" => 1,
                "decr" => -1,
                "incrby" => int(&a[1])?,
                _ => int(&a[1])?
                    .checked_neg()
                    .ok_or_else(|| Reply::err("ERR decrement would overflow"))?,
            };
            write(WriteOp::IncrBy { key: key(), delta })
        }
        "incrbyfloat" => {
            let delta = parse_float_arg(&a[1])
                .ok_or_else(|| Reply::err("ERR value is not a valid float"))?;
            write(WriteOp::IncrByFloat { key: key(), delta })
        }
        "append" => write(WriteOp::Append {
            key: key(),
            value: a[1].clone(),
        }),
        "setrange" => {
            let offset =
                u64::try_from(int(&a[1])?).map_err(|_| Reply::err("ERR offset is out of range"))?;
            write(WriteOp::SetRange {
                key: key(),
                offset,
                value: a[2].clone(),
            })
        }
        "getrange" => {
            let (start, end) = (int(&a[1])?, int(&a[2])?);
            read(ReadOp::GetRange {
                key: key(),
                start,
                end,
            })
        }
        "strlen" => read(ReadOp::Strlen { key: key() }),
        "expire" | "pexpire" | "expireat" | "pexpireat" => parse_expire(s.name, a),
        "persist" => write(WriteOp::Persist { key: key() }),
        "ttl" | "pttl" => read(ReadOp::Ttl {
            key: key(),
            ms: s.name == "pttl",
        }),
        "type" => read(ReadOp::Type { key: key() }),
        "dbsize" => Ok(Command::DbSize),
        "flushall" => match a {
            [] => Ok(Command::FlushAll),
            [mode] if is(mode, "sync") || is(mode, "async") => Ok(Command::FlushAll),
            _ => Err(Reply::syntax()),
        },
        "keys" => Ok(Command::Keys(key())),
        "scan" => parse_scan(a),
        "command" => table::command_reply(argv).map(Command::Immediate),
        "cluster" => cluster::parse(argv),
        // Cluster clients send these. Every node accepts every slot (a group led elsewhere
        // is redirected or forwarded), so there is no per-connection state to change.
        "readonly" | "readwrite" | "asking" => Ok(Command::Immediate(Reply::Ok)),
        _ => conn::parse(s.name, argv),
    }
}

/// Redis compares options as C strings: an embedded NUL ends the text.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// Case-insensitive option comparison (`strcasecmp`).
fn is(arg: &[u8], opt: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(opt.as_bytes())
}

/// An error line built from pieces, some client-supplied: CR and LF become spaces like in
/// Redis' `addReplyErrorFormat`, so the reply stays one protocol line.
fn error_line(parts: &[&[u8]]) -> Reply {
    let mut msg: Vec<u8> = parts.concat();
    for c in msg.iter_mut() {
        if *c == b'\r' || *c == b'\n' {
            *c = b' ';
        }
    }
    Reply::Error(Bytes::from(msg))
}

fn prefix(b: &[u8], n: usize) -> &[u8] {
    &b[..b.len().min(n)]
}

/// `ERR unknown command 'name', with args beginning with: 'a' 'b' ` (Redis' format: each
/// argument quoted and followed by a space, the argument list capped near 128 bytes).
fn unknown_command(argv: &[Bytes]) -> Reply {
    let mut args: Vec<u8> = Vec::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(prefix(cstr(a), room));
        args.extend_from_slice(b"' ");
    }
    error_line(&[
        b"ERR unknown command '",
        prefix(cstr(&argv[0]), 128),
        b"', with args beginning with: ",
        &args,
    ])
}

/// `ERR unknown subcommand 'x'. Try CONTAINER HELP.`
fn unknown_subcommand(argv: &[Bytes]) -> Reply {
    let container = cstr(&argv[0]).to_ascii_uppercase();
    let sub = argv.get(1).map_or(&[][..], |s| prefix(cstr(s), 128));
    error_line(&[
        b"ERR unknown subcommand '",
        sub,
        b"'. Try ",
        &container,
        b" HELP.",
    ])
}

/// An integer argument (`string2ll` rules) or `ERR value is not an integer or out of range`.
fn int(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(Reply::not_integer)
}

/// 2020-01-01 in Unix ms. Apply time is never earlier, so a relative expiry above
/// `i64::MAX - MIN_NOW_MS` is certain to overflow when resolved; rejecting it here gives
/// Redis' error with the right command name (the few values between that bound and
/// `i64::MAX - now` are rejected at apply time, naming 'set' or 'expire').
const MIN_NOW_MS: i64 = 1_577_836_800_000;

fn invalid_expire(cmd: &str) -> Reply {
    Reply::err(format!("ERR invalid expire time in '{cmd}' command"))
}

/// The expiry argument of SET/SETEX/PSETEX in ms: a positive integer, seconds when
/// `seconds`, not overflowing ms in `i64`.
fn expire_millis(arg: &[u8], seconds: bool, cmd: &str) -> Result<u64, Reply> {
    let v = int(arg)?;
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        return Err(invalid_expire(cmd));
    }
    Ok(if seconds { v * 1000 } else { v } as u64)
}

/// Rejects a relative expiry of `ms` that cannot be added to any real clock.
fn check_relative(ms: u64, cmd: &str) -> Result<u64, Reply> {
    if ms > (i64::MAX - MIN_NOW_MS) as u64 {
        return Err(invalid_expire(cmd));
    }
    Ok(ms)
}

fn pairs(cmd: &str, a: &[Bytes]) -> Result<Vec<(Bytes, Bytes)>, Reply> {
    let chunks = a.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return Err(Reply::wrong_arity(cmd));
    }
    Ok(chunks.map(|p| (p[0].clone(), p[1].clone())).collect())
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL], with Redis'
/// acceptance rules: NX/XX exclusive, one expiry kind (repeating the same one is allowed,
/// the last value wins), an expiry option needs a following argument.
fn parse_set(a: &[Bytes]) -> Result<Command, Reply> {
    #[derive(Clone, Copy, PartialEq)]
    enum Exp {
        None,
        Ex,
        Px,
        ExAt,
        PxAt,
        KeepTtl,
    }
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut exp = Exp::None;
    let mut exp_arg: Option<&Bytes> = None;
    let mut j = 2;
    while j < a.len() {
        let opt = &a[j];
        let next = a.get(j + 1);
        let timed = |kind: Exp| next.is_some() && (exp == Exp::None || exp == kind);
        if is(opt, "nx") && !xx {
            nx = true;
        } else if is(opt, "xx") && !nx {
            xx = true;
        } else if is(opt, "get") {
            get = true;
        } else if is(opt, "keepttl") && matches!(exp, Exp::None | Exp::KeepTtl) {
            exp = Exp::KeepTtl;
        } else if let Some(kind) = [
            ("ex", Exp::Ex),
            ("px", Exp::Px),
            ("exat", Exp::ExAt),
            ("pxat", Exp::PxAt),
        ]
        .into_iter()
        .find_map(|(name, kind)| (is(opt, name) && timed(kind)).then_some(kind))
        {
            exp = kind;
            exp_arg = next;
            j += 1;
        } else {
            return Err(Reply::syntax());
        }
        j += 1;
    }
    let expire = match (exp, exp_arg) {
        (Exp::KeepTtl, _) => Some(ExpireSpec::Keep),
        (Exp::None, _) | (_, None) => None,
        (kind, Some(arg)) => {
            let ms = expire_millis(arg, matches!(kind, Exp::Ex | Exp::ExAt), "set")?;
            Some(if matches!(kind, Exp::Ex | Exp::Px) {
                ExpireSpec::In(check_relative(ms, "set")?)
            } else {
                ExpireSpec::At(ms)
            })
        }
    };
    let cond = if nx {
        SetCond::IfAbsent
    } else if xx {
        SetCond::IfPresent
    } else {
        SetCond::Always
    };
    Ok(Command::Write(WriteOp::Set {
        key: a[0].clone(),
        value: a[1].clone(),
        cond,
        expire,
        get,
    }))
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX|XX|GT|LT ...]. Options are checked
/// before the time, like Redis. A time that is already past (negative relative, or absolute
/// before 1970) becomes `At(0)`, which deletes the key on apply.
fn parse_expire(cmd: &'static str, a: &[Bytes]) -> Result<Command, Reply> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[2..] {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            return Err(error_line(&[b"ERR Unsupported option ", cstr(opt)]));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let v = int(&a[1])?;
    let seconds = cmd == "expire" || cmd == "expireat";
    let ms = if seconds {
        v.checked_mul(1000).ok_or_else(|| invalid_expire(cmd))?
    } else {
        v
    };
    let at = match u64::try_from(ms) {
        Err(_) => ExpireSpec::At(0),
        Ok(ms) if cmd.ends_with("at") => ExpireSpec::At(ms),
        Ok(ms) => ExpireSpec::In(check_relative(ms, cmd)?),
    };
    // XX GT is GT: GT already fails on a key without TTL.
    let cond = match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::IfNoTtl,
        (_, _, true, _) => ExpireCond::Greater,
        (_, true, _, true) => ExpireCond::IfTtlLess,
        (_, false, _, true) => ExpireCond::Less,
        (_, true, _, _) => ExpireCond::IfTtl,
        _ => ExpireCond::Always,
    };
    Ok(Command::Write(WriteOp::Expire {
        key: a[0].clone(),
        at,
        cond,
    }))
}

/// A SCAN cursor parsed like Redis (`strtoul` base 10 on the C string): optional sign
/// (`-1` wraps to 2^64-1), digits to the end, no leading space; the empty string is 0.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let s = cstr(arg);
    let (neg, digits) = match s.first() {
        None => return Some(0),
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
fn parse_scan(a: &[Bytes]) -> Result<Command, Reply> {
    let cursor = parse_cursor(&a[0]).ok_or_else(|| Reply::err("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_filter) = (None, 10usize, None);
    let mut i = 1;
    while i < a.len() {
        let Some(value) = a.get(i + 1) else {
            return Err(Reply::syntax());
        };
        if is(&a[i], "count") {
            let n = int(value)?;
            if n < 1 {
                return Err(Reply::syntax());
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if is(&a[i], "match") {
            pattern = (value.as_ref() != b"*").then(|| value.clone());
        } else if is(&a[i], "type") {
            type_filter = Some(value.clone());
        } else {
            return Err(Reply::syntax());
        }
        i += 2;
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_filter,
    })
}
