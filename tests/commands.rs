//! Every supported command against a real server process, with exact replies and error strings
//! (Redis 7 semantics). Run with `LEASEKV_TEST_AGAINST_REDIS=1` to check the expectations
//! against a real redis-server; leasekv-only behaviour (CROSSSLOT, SELECT 1, INFO leasekv) is
//! skipped there.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{q, query_err, qv, unix_ms, wait_until, Resp, Server, Topology};
use redis::Value;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn status(s: &str) -> Value {
    Value::SimpleString(s.to_string())
}

// ---------------------------------------------------------------- helpers' own reference checks

#[test]
fn slot_helper_matches_redis_cluster_reference_values() {
    // CRC16/XMODEM check value and slots from the Redis Cluster specification / CLUSTER KEYSLOT.
    assert_eq!(common::slots::crc16(b"123456789"), 0x31C3);
    assert_eq!(common::key_slot(b"foo"), 12182);
    assert_eq!(common::key_slot(b"bar"), 5061);
    assert_eq!(common::key_slot(b"somekey"), 11058);
    assert_eq!(
        common::key_slot(b"{user1000}.following"),
        common::key_slot(b"{user1000}.followers")
    );
    assert_eq!(
        common::key_slot(b"{user1000}.x"),
        common::key_slot(b"user1000")
    );
    // Empty tag: the whole key is hashed; only the first `{` counts.
    assert_eq!(
        common::key_slot(b"foo{}{bar}"),
        common::slots::crc16(b"foo{}{bar}") as usize % 16384
    );
    assert_eq!(
        common::key_slot(b"foo{{bar}}zap"),
        common::key_slot(b"{bar")
    );
    assert_eq!(common::key_slot(b"foo{bar}{zap}"), common::key_slot(b"bar"));
}

#[test]
fn topology_helper_places_groups_round_robin() {
    let t = Topology::two_cores();
    assert_eq!(
        (0..4)
            .map(|g| t.group_of_slot(g * 4096))
            .collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(t.group_of_slot(4095), 0);
    assert_eq!(t.group_of_slot(16383), 3);
    for k in t.keys_on_core(1, "t", 20) {
        assert!(matches!(t.group_of_key(&k), 1 | 3), "{k}");
    }
    let tag = t.tag_on_core(0, "tag");
    assert_eq!(t.core_of_key(&format!("x{{{tag}}}y")), 0);
}

// ---------------------------------------------------------------- connection commands

#[test]
fn ping_and_echo() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["PING"]), status("PONG"));
    assert_eq!(qv(&mut c, &["PING", "hello world"]), bulk("hello world"));
    assert_eq!(qv(&mut c, &["ECHO", "hi\r\nthere"]), bulk("hi\r\nthere"));
    assert_eq!(qv(&mut c, &["ECHO", ""]), bulk(""));
    assert_eq!(
        query_err(&mut c, &["ECHO"]),
        "ERR wrong number of arguments for 'echo' command"
    );
    assert_eq!(
        query_err(&mut c, &["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
}

#[test]
fn quit_replies_ok_then_closes() {
    let s = Server::start_for_semantics();
    let mut r = s.raw();
    assert_eq!(r.cmd(&["PING"]), Resp::simple("PONG"));
    r.send_cmd(&["QUIT"]);
    r.expect_reply_then_close(b"+OK\r\n");
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["PING"]), status("PONG"));
}

#[test]
fn unknown_commands_arity_and_case() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(
        query_err(&mut c, &["NOSUCH", "a", "b"]),
        "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        query_err(&mut c, &["nosuch"]),
        "ERR unknown command 'nosuch', with args beginning with: "
    );
    assert_eq!(
        query_err(&mut c, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        query_err(&mut c, &["set", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
    assert_eq!(
        query_err(&mut c, &["GETDEL", "a", "b"]),
        "ERR wrong number of arguments for 'getdel' command"
    );
    assert_eq!(
        query_err(&mut c, &["MSET", "a"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        query_err(&mut c, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    // Command names are case-insensitive.
    assert_eq!(qv(&mut c, &["sEt", "k", "v"]), Value::Okay);
    assert_eq!(qv(&mut c, &["get", "k"]), bulk("v"));
    assert_eq!(qv(&mut c, &["GeT", "k"]), bulk("v"));
    // The connection survives errors.
    assert_eq!(qv(&mut c, &["PING"]), status("PONG"));
}

#[test]
fn hello_3_switches_to_resp3_and_hello_2_back() {
    let s = Server::start_for_semantics();
    let mut r = s.raw();
    let hello = r.cmd(&["HELLO", "3"]);
    assert!(
        matches!(hello, Resp::Map(_)),
        "HELLO 3 must reply a RESP3 map: {hello:?}"
    );
    assert_eq!(hello.field("proto"), Some(&Resp::Int(3)), "{hello:?}");
    assert!(
        matches!(hello.field("server"), Some(Resp::Bulk(_))),
        "{hello:?}"
    );
    assert!(
        matches!(hello.field("id"), Some(Resp::Int(id)) if *id > 0),
        "{hello:?}"
    );
    assert!(
        hello.field("mode").is_some() && hello.field("role").is_some(),
        "{hello:?}"
    );
    // RESP3 null for a missing key; other replies unchanged.
    assert_eq!(r.cmd(&["GET", "missing"]), Resp::Null);
    assert_eq!(r.cmd(&["SET", "k", "v"]), Resp::simple("OK"));
    assert_eq!(r.cmd(&["GET", "k"]), Resp::bulk("v"));
    assert_eq!(r.cmd(&["INCR", "n"]), Resp::Int(1));
    assert_eq!(
        r.cmd(&["MGET", "k", "missing"]),
        Resp::Array(vec![Resp::bulk("v"), Resp::Null])
    );

    let hello2 = r.cmd(&["HELLO", "2"]);
    assert!(
        matches!(hello2, Resp::Array(_)),
        "HELLO 2 replies a flat array: {hello2:?}"
    );
    assert_eq!(hello2.field("proto"), Some(&Resp::Int(2)), "{hello2:?}");
    assert_eq!(r.cmd(&["GET", "missing"]), Resp::NilBulk);

    // No argument: report, stay on the current protocol.
    let plain = r.cmd(&["HELLO"]);
    assert_eq!(plain.field("proto"), Some(&Resp::Int(2)), "{plain:?}");
    assert_eq!(
        r.cmd(&["HELLO", "4"]),
        Resp::Error("NOPROTO unsupported protocol version".into())
    );
    assert_eq!(
        r.cmd(&["HELLO", "abc"]),
        Resp::Error("ERR Protocol version is not an integer or out of range".into())
    );
    assert_eq!(r.cmd(&["PING"]), Resp::simple("PONG"));
}

#[test]
fn select_command_and_client_subcommands() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["SELECT", "0"]), Value::Okay);
    assert_eq!(
        query_err(&mut c, &["SELECT", "abc"]),
        "ERR value is not an integer or out of range"
    );
    if !s.is_redis() {
        // Only database 0 exists.
        let e = query_err(&mut c, &["SELECT", "1"]);
        assert!(e.starts_with("ERR "), "{e}");
    }

    match qv(&mut c, &["COMMAND"]) {
        Value::Array(_) => {}
        other => panic!("COMMAND must reply an array, got {other:?}"),
    }

    let id: i64 = q(&mut c, &["CLIENT", "ID"]);
    assert!(id > 0);
    let other_id: i64 = q(&mut s.client(), &["CLIENT", "ID"]);
    assert_ne!(id, other_id, "client ids are unique");
    assert_eq!(qv(&mut c, &["CLIENT", "GETNAME"]), Value::Nil);
    assert_eq!(
        qv(&mut c, &["CLIENT", "SETNAME", "itest-conn"]),
        Value::Okay
    );
    assert_eq!(qv(&mut c, &["CLIENT", "GETNAME"]), bulk("itest-conn"));
    assert_eq!(
        query_err(&mut c, &["CLIENT", "SETNAME", "has space"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let info: String = q(&mut c, &["CLIENT", "INFO"]);
    assert!(info.starts_with(&format!("id={id} ")), "{info}");
    assert!(info.contains(" name=itest-conn "), "{info}");
    assert!(info.ends_with('\n'), "{info:?}");
    // Empty name clears it.
    assert_eq!(qv(&mut c, &["CLIENT", "SETNAME", ""]), Value::Okay);
    assert_eq!(qv(&mut c, &["CLIENT", "GETNAME"]), Value::Nil);
}

#[test]
fn info_sections() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    let all: String = q(&mut c, &["INFO"]);
    for header in ["# Server", "# Clients", "# Stats", "# Keyspace"] {
        assert!(all.contains(header), "INFO lacks {header}:\n{all}");
    }
    let server: String = q(&mut c, &["INFO", "server"]);
    assert!(
        server.contains("# Server") && !server.contains("# Clients"),
        "{server}"
    );
    let clients: String = q(&mut c, &["INFO", "clients"]);
    assert!(clients.contains("connected_clients:"), "{clients}");
    let stats: String = q(&mut c, &["INFO", "stats"]);
    assert!(stats.contains("# Stats"), "{stats}");

    let empty: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(!empty.contains("db0:"), "empty keyspace: {empty}");
    qv(&mut c, &["SET", "a", "1"]);
    qv(&mut c, &["SET", "b", "2", "EX", "100"]);
    qv(&mut c, &["SET", "c", "3"]);
    let ks: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(ks.contains("db0:keys=3,expires=1,"), "{ks}");

    // Per-command latency percentiles, in Redis 7's format.
    for _ in 0..5 {
        let _: Option<String> = q(&mut c, &["GET", "a"]);
    }
    let lat: String = q(&mut c, &["INFO", "latencystats"]);
    let line = lat
        .lines()
        .find(|l| l.starts_with("latency_percentiles_usec_get:"))
        .unwrap_or_else(|| panic!("no GET latency line:\n{lat}"));
    for p in ["p50=", "p99=", "p99.9="] {
        assert!(line.contains(p), "{line}");
    }

    if !s.is_redis() {
        let own: String = q(&mut c, &["INFO", "leasekv"]);
        let has_header = own
            .lines()
            .any(|l| l.starts_with('#') && l.to_lowercase().contains("leasekv"));
        assert!(has_header, "INFO leasekv needs its section header:\n{own}");
        let all: String = q(&mut c, &["INFO"]);
        assert!(all.to_lowercase().contains("# leasekv"), "{all}");
    }
}

// ---------------------------------------------------------------- strings

#[test]
fn set_and_get_with_conditions() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["GET", "k"]), Value::Nil);
    assert_eq!(qv(&mut c, &["SET", "k", "v1"]), Value::Okay);
    assert_eq!(qv(&mut c, &["GET", "k"]), bulk("v1"));
    // Binary-safe values and keys.
    let bin = b"a\r\nb\0c\xff".to_vec();
    redis::cmd("SET")
        .arg(&b"bin\0key"[..])
        .arg(&bin)
        .query::<()>(&mut c)
        .expect("SET binary");
    let got: Vec<u8> = redis::cmd("GET")
        .arg(&b"bin\0key"[..])
        .query(&mut c)
        .expect("GET binary");
    assert_eq!(got, bin);
    assert_eq!(qv(&mut c, &["SET", "empty", ""]), Value::Okay);
    assert_eq!(qv(&mut c, &["GET", "empty"]), bulk(""));

    assert_eq!(qv(&mut c, &["SET", "k", "v2", "NX"]), Value::Nil);
    assert_eq!(qv(&mut c, &["GET", "k"]), bulk("v1"));
    assert_eq!(qv(&mut c, &["SET", "new", "n", "NX"]), Value::Okay);
    assert_eq!(qv(&mut c, &["SET", "absent", "x", "XX"]), Value::Nil);
    assert_eq!(qv(&mut c, &["EXISTS", "absent"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["SET", "k", "v3", "XX"]), Value::Okay);
    assert_eq!(qv(&mut c, &["GET", "k"]), bulk("v3"));
    // GET option: old value (or nil), and the write happens.
    assert_eq!(qv(&mut c, &["SET", "k", "v4", "GET"]), bulk("v3"));
    assert_eq!(qv(&mut c, &["GET", "k"]), bulk("v4"));
    assert_eq!(qv(&mut c, &["SET", "fresh", "f", "GET"]), Value::Nil);
    assert_eq!(qv(&mut c, &["GET", "fresh"]), bulk("f"));
    // NX GET on an existing key: old value, no write. XX GET: old value, write.
    assert_eq!(qv(&mut c, &["SET", "k", "nope", "NX", "GET"]), bulk("v4"));
    assert_eq!(qv(&mut c, &["GET", "k"]), bulk("v4"));
    assert_eq!(qv(&mut c, &["SET", "k", "v5", "XX", "GET"]), bulk("v4"));
    assert_eq!(qv(&mut c, &["GET", "k"]), bulk("v5"));
    // Options are case-insensitive.
    assert_eq!(qv(&mut c, &["SET", "k", "v6", "xx", "get"]), bulk("v5"));
}

#[test]
fn set_option_errors() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    let syntax = "ERR syntax error";
    for args in [
        &["SET", "k", "v", "NX", "XX"][..],
        &["SET", "k", "v", "EX", "10", "PX", "100"],
        &["SET", "k", "v", "KEEPTTL", "EX", "10"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "BOGUS"],
        &["SET", "k", "v", "EXAT", "1", "PXAT", "1"],
    ] {
        assert_eq!(query_err(&mut c, args), syntax, "{args:?}");
    }
    let bad_expire = "ERR invalid expire time in 'set' command";
    for args in [
        &["SET", "k", "v", "EX", "0"][..],
        &["SET", "k", "v", "EX", "-5"],
        &["SET", "k", "v", "PX", "0"],
        &["SET", "k", "v", "EXAT", "0"],
        &["SET", "k", "v", "PXAT", "-1"],
        // Overflows when converted to milliseconds.
        &["SET", "k", "v", "EX", "9999999999999999"],
        &["SET", "k", "v", "PX", "9223372036854775807"],
    ] {
        assert_eq!(query_err(&mut c, args), bad_expire, "{args:?}");
    }
    assert_eq!(
        query_err(&mut c, &["SET", "k", "v", "EX", "ten"]),
        "ERR value is not an integer or out of range"
    );
    // None of the failed commands wrote anything.
    assert_eq!(qv(&mut c, &["EXISTS", "k"]), Value::Int(0));
}

/// TTL of `key` in seconds is within `lo..=hi`.
fn assert_ttl(c: &mut redis::Connection, key: &str, lo: i64, hi: i64) {
    let ttl: i64 = q(c, &["TTL", key]);
    assert!(
        (lo..=hi).contains(&ttl),
        "TTL {key} = {ttl}, want {lo}..={hi}"
    );
}

fn assert_pttl(c: &mut redis::Connection, key: &str, lo: i64, hi: i64) {
    let ttl: i64 = q(c, &["PTTL", key]);
    assert!(
        (lo..=hi).contains(&ttl),
        "PTTL {key} = {ttl}, want {lo}..={hi}"
    );
}

#[test]
fn set_expiry_options_and_ttl_queries() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["TTL", "missing"]), Value::Int(-2));
    assert_eq!(qv(&mut c, &["PTTL", "missing"]), Value::Int(-2));
    qv(&mut c, &["SET", "plain", "v"]);
    assert_eq!(qv(&mut c, &["TTL", "plain"]), Value::Int(-1));
    assert_eq!(qv(&mut c, &["PTTL", "plain"]), Value::Int(-1));

    assert_eq!(qv(&mut c, &["SET", "ex", "v", "EX", "100"]), Value::Okay);
    assert_ttl(&mut c, "ex", 95, 100);
    assert_pttl(&mut c, "ex", 95_000, 100_000);
    qv(&mut c, &["SET", "px", "v", "PX", "100000"]);
    assert_pttl(&mut c, "px", 95_000, 100_000);
    let now_s = unix_ms() / 1000;
    qv(
        &mut c,
        &["SET", "exat", "v", "EXAT", &(now_s + 200).to_string()],
    );
    assert_ttl(&mut c, "exat", 190, 200);
    let now_ms = unix_ms();
    qv(
        &mut c,
        &["SET", "pxat", "v", "PXAT", &(now_ms + 300_000).to_string()],
    );
    assert_pttl(&mut c, "pxat", 290_000, 300_000);

    // KEEPTTL keeps it; a plain SET clears it; SET GET clears it too.
    assert_eq!(qv(&mut c, &["SET", "ex", "v2", "KEEPTTL"]), Value::Okay);
    assert_ttl(&mut c, "ex", 95, 100);
    assert_eq!(qv(&mut c, &["GET", "ex"]), bulk("v2"));
    qv(&mut c, &["SET", "ex", "v3"]);
    assert_eq!(qv(&mut c, &["TTL", "ex"]), Value::Int(-1));
    qv(&mut c, &["SET", "px", "w", "GET"]);
    assert_eq!(qv(&mut c, &["TTL", "px"]), Value::Int(-1));
    // An EXAT in the past leaves the key expired.
    qv(
        &mut c,
        &[
            "SET",
            "past",
            "v",
            "PXAT",
            &(unix_ms() - 10_000).to_string(),
        ],
    );
    assert_eq!(qv(&mut c, &["GET", "past"]), Value::Nil);
    assert_eq!(qv(&mut c, &["EXISTS", "past"]), Value::Int(0));
}

#[test]
fn setnx_setex_psetex_getset_getdel() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["SETNX", "k", "1"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["SETNX", "k", "2"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["GET", "k"]), bulk("1"));

    assert_eq!(qv(&mut c, &["SETEX", "se", "100", "v"]), Value::Okay);
    assert_eq!(qv(&mut c, &["GET", "se"]), bulk("v"));
    assert_ttl(&mut c, "se", 95, 100);
    assert_eq!(
        query_err(&mut c, &["SETEX", "se", "0", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        query_err(&mut c, &["SETEX", "se", "x", "v"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(qv(&mut c, &["PSETEX", "pse", "100000", "v"]), Value::Okay);
    assert_pttl(&mut c, "pse", 95_000, 100_000);
    assert_eq!(
        query_err(&mut c, &["PSETEX", "pse", "-1", "v"]),
        "ERR invalid expire time in 'psetex' command"
    );

    // GETSET returns the old value and clears the TTL.
    assert_eq!(qv(&mut c, &["GETSET", "se", "w"]), bulk("v"));
    assert_eq!(qv(&mut c, &["TTL", "se"]), Value::Int(-1));
    assert_eq!(qv(&mut c, &["GETSET", "nothing", "x"]), Value::Nil);
    assert_eq!(qv(&mut c, &["GET", "nothing"]), bulk("x"));

    assert_eq!(qv(&mut c, &["GETDEL", "k"]), bulk("1"));
    assert_eq!(qv(&mut c, &["GETDEL", "k"]), Value::Nil);
    assert_eq!(qv(&mut c, &["EXISTS", "k"]), Value::Int(0));
}

#[test]
fn mget_mset_msetnx() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(
        qv(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]),
        Value::Okay
    );
    assert_eq!(
        qv(&mut c, &["MGET", "a", "nope", "c", "b", "a"]),
        Value::Array(vec![bulk("1"), Value::Nil, bulk("3"), bulk("2"), bulk("1")])
    );
    // Later pairs win for a repeated key.
    assert_eq!(qv(&mut c, &["MSET", "d", "x", "d", "y"]), Value::Okay);
    assert_eq!(qv(&mut c, &["GET", "d"]), bulk("y"));
    // MSET clears TTLs like SET.
    qv(&mut c, &["SET", "a", "0", "EX", "100"]);
    qv(&mut c, &["MSET", "a", "1"]);
    assert_eq!(qv(&mut c, &["TTL", "a"]), Value::Int(-1));

    // MSETNX within one slot (hash tag): all or nothing.
    assert_eq!(
        qv(&mut c, &["MSETNX", "{t}x", "1", "{t}y", "2"]),
        Value::Int(1)
    );
    assert_eq!(
        qv(&mut c, &["MSETNX", "{t}y", "9", "{t}z", "3"]),
        Value::Int(0)
    );
    assert_eq!(
        qv(&mut c, &["MGET", "{t}x", "{t}y", "{t}z"]),
        Value::Array(vec![bulk("1"), bulk("2"), Value::Nil])
    );
    assert_eq!(
        query_err(&mut c, &["MSETNX", "{t}x", "1", "{t}y"]),
        "ERR wrong number of arguments for 'msetnx' command"
    );
    assert_eq!(
        query_err(&mut c, &["MGET"]),
        "ERR wrong number of arguments for 'mget' command"
    );
}

#[test]
fn msetnx_across_slots_is_crossslot() {
    let s = Server::start_for_semantics();
    if s.is_redis() {
        eprintln!("skipped: a standalone redis-server has no slots");
        return;
    }
    let mut c = s.client();
    // "foo" and "bar" are in different slots (12182, 5061).
    assert_eq!(
        query_err(&mut c, &["MSETNX", "foo", "1", "bar", "2"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(
        qv(&mut c, &["MGET", "foo", "bar"]),
        Value::Array(vec![Value::Nil, Value::Nil]),
        "a rejected MSETNX writes nothing"
    );
}

#[test]
fn del_unlink_exists_type() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    qv(&mut c, &["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]);
    assert_eq!(
        qv(&mut c, &["EXISTS", "a", "a", "nope", "b"]),
        Value::Int(3)
    );
    assert_eq!(qv(&mut c, &["DEL", "a", "nope", "b"]), Value::Int(2));
    assert_eq!(qv(&mut c, &["DEL", "a"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["UNLINK", "c", "d", "c"]), Value::Int(2));
    assert_eq!(qv(&mut c, &["EXISTS", "a", "b", "c", "d"]), Value::Int(0));
    qv(&mut c, &["SET", "s", "v"]);
    assert_eq!(qv(&mut c, &["TYPE", "s"]), status("string"));
    assert_eq!(qv(&mut c, &["TYPE", "nope"]), status("none"));
    assert_eq!(
        query_err(&mut c, &["DEL"]),
        "ERR wrong number of arguments for 'del' command"
    );
}

#[test]
fn incr_decr_family() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["INCR", "n"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["INCRBY", "n", "10"]), Value::Int(11));
    assert_eq!(qv(&mut c, &["DECR", "n"]), Value::Int(10));
    assert_eq!(qv(&mut c, &["DECRBY", "n", "15"]), Value::Int(-5));
    assert_eq!(qv(&mut c, &["INCRBY", "n", "-5"]), Value::Int(-10));
    assert_eq!(qv(&mut c, &["GET", "n"]), bulk("-10"));
    assert_eq!(qv(&mut c, &["DECR", "fresh"]), Value::Int(-1));

    let not_int = "ERR value is not an integer or out of range";
    qv(&mut c, &["SET", "s", "abc"]);
    assert_eq!(query_err(&mut c, &["INCR", "s"]), not_int);
    qv(&mut c, &["SET", "sp", " 1"]);
    assert_eq!(query_err(&mut c, &["INCR", "sp"]), not_int);
    qv(&mut c, &["SET", "fl", "1.5"]);
    assert_eq!(query_err(&mut c, &["INCR", "fl"]), not_int);
    assert_eq!(query_err(&mut c, &["INCRBY", "n", "x"]), not_int);
    assert_eq!(query_err(&mut c, &["INCRBY", "n", "1.0"]), not_int);
    assert_eq!(
        query_err(&mut c, &["INCRBY", "n", "99999999999999999999"]),
        not_int
    );
    assert_eq!(
        qv(&mut c, &["GET", "s"]),
        bulk("abc"),
        "failed INCR leaves the value"
    );

    let overflow = "ERR increment or decrement would overflow";
    qv(&mut c, &["SET", "max", "9223372036854775807"]);
    assert_eq!(query_err(&mut c, &["INCR", "max"]), overflow);
    qv(&mut c, &["SET", "min", "-9223372036854775808"]);
    assert_eq!(query_err(&mut c, &["DECR", "min"]), overflow);
    assert_eq!(query_err(&mut c, &["INCRBY", "min", "-1"]), overflow);
    assert_eq!(
        query_err(&mut c, &["DECRBY", "n", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    assert_eq!(qv(&mut c, &["GET", "max"]), bulk("9223372036854775807"));

    // INCR keeps the TTL.
    qv(&mut c, &["SET", "t", "5", "EX", "100"]);
    assert_eq!(qv(&mut c, &["INCR", "t"]), Value::Int(6));
    assert_ttl(&mut c, "t", 95, 100);
}

#[test]
fn incrbyfloat() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    qv(&mut c, &["SET", "f", "10.50"]);
    assert_eq!(qv(&mut c, &["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(qv(&mut c, &["INCRBYFLOAT", "f", "-5"]), bulk("5.6"));
    assert_eq!(qv(&mut c, &["GET", "f"]), bulk("5.6"));
    assert_eq!(qv(&mut c, &["INCRBYFLOAT", "g", "3.0e3"]), bulk("3000"));
    assert_eq!(qv(&mut c, &["INCRBYFLOAT", "h", "-0.5"]), bulk("-0.5"));
    qv(&mut c, &["SET", "i", "7"]);
    assert_eq!(qv(&mut c, &["INCRBYFLOAT", "i", "1.25"]), bulk("8.25"));
    let not_float = "ERR value is not a valid float";
    qv(&mut c, &["SET", "s", "abc"]);
    assert_eq!(query_err(&mut c, &["INCRBYFLOAT", "s", "1"]), not_float);
    assert_eq!(query_err(&mut c, &["INCRBYFLOAT", "f", "abc"]), not_float);
    assert_eq!(query_err(&mut c, &["INCRBYFLOAT", "f", "nan"]), not_float);
    assert_eq!(qv(&mut c, &["GET", "f"]), bulk("5.6"));
    // Keeps the TTL.
    qv(&mut c, &["SET", "t", "1", "EX", "100"]);
    assert_eq!(qv(&mut c, &["INCRBYFLOAT", "t", "0.5"]), bulk("1.5"));
    assert_ttl(&mut c, "t", 95, 100);
}

#[test]
fn append_strlen_getrange_setrange() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["APPEND", "a", "Hello"]), Value::Int(5));
    assert_eq!(qv(&mut c, &["APPEND", "a", " World"]), Value::Int(11));
    assert_eq!(qv(&mut c, &["GET", "a"]), bulk("Hello World"));
    assert_eq!(qv(&mut c, &["STRLEN", "a"]), Value::Int(11));
    assert_eq!(qv(&mut c, &["STRLEN", "missing"]), Value::Int(0));

    for (start, end, want) in [
        ("0", "4", "Hello"),
        ("-5", "-1", "World"),
        ("0", "-1", "Hello World"),
        ("6", "100", "World"),
        ("5", "2", ""),
        ("100", "200", ""),
        ("-3", "-1", "rld"),
    ] {
        assert_eq!(
            qv(&mut c, &["GETRANGE", "a", start, end]),
            bulk(want),
            "GETRANGE a {start} {end}"
        );
    }
    assert_eq!(qv(&mut c, &["GETRANGE", "missing", "0", "-1"]), bulk(""));
    assert_eq!(
        query_err(&mut c, &["GETRANGE", "a", "x", "1"]),
        "ERR value is not an integer or out of range"
    );

    assert_eq!(qv(&mut c, &["SETRANGE", "a", "6", "Redis"]), Value::Int(11));
    assert_eq!(qv(&mut c, &["GET", "a"]), bulk("Hello Redis"));
    assert_eq!(qv(&mut c, &["SETRANGE", "a", "11", "!!"]), Value::Int(13));
    assert_eq!(qv(&mut c, &["GET", "a"]), bulk("Hello Redis!!"));
    // Zero-padding of a missing key.
    assert_eq!(qv(&mut c, &["SETRANGE", "z", "3", "ab"]), Value::Int(5));
    assert_eq!(
        qv(&mut c, &["GET", "z"]),
        Value::BulkString(b"\0\0\0ab".to_vec())
    );
    // An empty value on a missing key creates nothing.
    assert_eq!(qv(&mut c, &["SETRANGE", "e", "0", ""]), Value::Int(0));
    assert_eq!(qv(&mut c, &["EXISTS", "e"]), Value::Int(0));
    assert_eq!(
        query_err(&mut c, &["SETRANGE", "a", "-1", "x"]),
        "ERR offset is out of range"
    );
    assert_eq!(
        query_err(&mut c, &["SETRANGE", "a", "536870912", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    // APPEND and SETRANGE keep the TTL.
    qv(&mut c, &["SET", "t", "x", "EX", "100"]);
    assert_eq!(qv(&mut c, &["APPEND", "t", "y"]), Value::Int(2));
    assert_eq!(qv(&mut c, &["SETRANGE", "t", "0", "z"]), Value::Int(2));
    assert_eq!(qv(&mut c, &["GET", "t"]), bulk("zy"));
    assert_ttl(&mut c, "t", 95, 100);
}

#[test]
fn expire_family_with_conditions() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["EXPIRE", "missing", "10"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["PERSIST", "missing"]), Value::Int(0));
    qv(&mut c, &["SET", "k", "v"]);
    assert_eq!(qv(&mut c, &["PERSIST", "k"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "100"]), Value::Int(1));
    assert_ttl(&mut c, "k", 95, 100);
    assert_eq!(qv(&mut c, &["PEXPIRE", "k", "200000"]), Value::Int(1));
    assert_pttl(&mut c, "k", 195_000, 200_000);
    let at = unix_ms() / 1000 + 300;
    assert_eq!(
        qv(&mut c, &["EXPIREAT", "k", &at.to_string()]),
        Value::Int(1)
    );
    assert_ttl(&mut c, "k", 290, 300);
    let at_ms = unix_ms() + 400_000;
    assert_eq!(
        qv(&mut c, &["PEXPIREAT", "k", &at_ms.to_string()]),
        Value::Int(1)
    );
    assert_ttl(&mut c, "k", 390, 400);
    assert_eq!(qv(&mut c, &["PERSIST", "k"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["TTL", "k"]), Value::Int(-1));

    // NX / XX / GT / LT (no TTL counts as infinite).
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "100", "XX"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "100", "GT"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "100", "NX"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "50", "NX"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "50", "GT"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "200", "gt"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "300", "LT"]), Value::Int(0));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "150", "LT"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "120", "XX"]), Value::Int(1));
    assert_ttl(&mut c, "k", 115, 120);
    qv(&mut c, &["PERSIST", "k"]);
    assert_eq!(qv(&mut c, &["EXPIRE", "k", "100", "LT"]), Value::Int(1));

    assert_eq!(
        query_err(&mut c, &["EXPIRE", "k", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        query_err(&mut c, &["EXPIRE", "k", "10", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        query_err(&mut c, &["EXPIRE", "k", "10", "FOO"]),
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        query_err(&mut c, &["EXPIRE", "k", "ten"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        query_err(&mut c, &["EXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        query_err(&mut c, &["PEXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'pexpire' command"
    );

    // A non-positive timeout or a past time deletes the key.
    qv(&mut c, &["SET", "d1", "v"]);
    assert_eq!(qv(&mut c, &["EXPIRE", "d1", "-1"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["EXISTS", "d1"]), Value::Int(0));
    qv(&mut c, &["SET", "d2", "v"]);
    assert_eq!(qv(&mut c, &["PEXPIRE", "d2", "0"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["GET", "d2"]), Value::Nil);
    qv(&mut c, &["SET", "d3", "v"]);
    assert_eq!(qv(&mut c, &["EXPIREAT", "d3", "1"]), Value::Int(1));
    assert_eq!(qv(&mut c, &["TTL", "d3"]), Value::Int(-2));
}

/// Sets `key` with a `ttl_ms` PX expiry and polls until it is gone. Asserts it never disappears
/// before its TTL (measured from before the SET was sent) and does disappear within a deadline.
fn set_px_and_watch_expiry(c: &mut redis::Connection, key: &str, ttl_ms: u64) -> Instant {
    let before_set = Instant::now();
    qv(c, &["SET", key, "v", "PX", &ttl_ms.to_string()]);
    await_expiry(c, key, before_set, ttl_ms)
}

/// Polls until `key` is gone; returns when. `armed` is an instant before the expiry was set.
fn await_expiry(c: &mut redis::Connection, key: &str, armed: Instant, ttl_ms: u64) -> Instant {
    // Wall-clock vs monotonic and clock granularity.
    let slack = Duration::from_millis(30);
    let ttl = Duration::from_millis(ttl_ms);
    let gone_at = wait_until(ttl + Duration::from_secs(10), "key expiry", || {
        let v: Option<String> = q(c, &["GET", key]);
        v.is_none().then(Instant::now)
    });
    assert!(
        gone_at.duration_since(armed) + slack >= ttl,
        "{key} expired after {:?}, before its TTL {ttl:?}",
        gone_at.duration_since(armed)
    );
    gone_at
}

#[test]
fn keys_really_expire() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    let topo = Topology::two_cores();
    // One key per core, so the expiry path of both cores runs.
    for core in 0..2 {
        let key = &topo.keys_on_core(core, "exp", 1)[0];
        set_px_and_watch_expiry(&mut c, key, 300);
        assert_eq!(qv(&mut c, &["EXISTS", key]), Value::Int(0));
        assert_eq!(qv(&mut c, &["TTL", key]), Value::Int(-2));
        assert_eq!(qv(&mut c, &["PTTL", key]), Value::Int(-2));
        let keys: Vec<String> = q(&mut c, &["KEYS", "exp:*"]);
        assert!(keys.is_empty(), "expired key listed by KEYS: {keys:?}");
        // The name is reusable and carries no stale TTL.
        qv(&mut c, &["SET", key, "again"]);
        assert_eq!(qv(&mut c, &["TTL", key]), Value::Int(-1));
        qv(&mut c, &["DEL", key]);
    }

    // PEXPIRE on an existing key, SETEX / PSETEX.
    qv(&mut c, &["SET", "pe", "v"]);
    let armed = Instant::now();
    assert_eq!(qv(&mut c, &["PEXPIRE", "pe", "250"]), Value::Int(1));
    await_expiry(&mut c, "pe", armed, 250);
    let armed = Instant::now();
    qv(&mut c, &["PSETEX", "ps", "200", "v"]);
    await_expiry(&mut c, "ps", armed, 200);
    let armed = Instant::now();
    qv(&mut c, &["SETEX", "sx", "1", "v"]);
    await_expiry(&mut c, "sx", armed, 1000);

    // PERSIST before the deadline saves the key: `marker` expires after `saved` would have.
    let armed = Instant::now();
    qv(&mut c, &["SET", "marker", "m", "PX", "1200"]);
    qv(&mut c, &["SET", "saved", "v", "PX", "1000"]);
    assert_eq!(qv(&mut c, &["PERSIST", "saved"]), Value::Int(1));
    await_expiry(&mut c, "marker", armed, 1200);
    assert_eq!(qv(&mut c, &["GET", "saved"]), bulk("v"));

    // Active expiry: an expired key is eventually not counted by DBSIZE either.
    qv(&mut c, &["FLUSHALL"]);
    qv(&mut c, &["SET", "active", "v", "PX", "100"]);
    wait_until(
        Duration::from_secs(20),
        "DBSIZE to drop the expired key",
        || (q::<i64>(&mut c, &["DBSIZE"]) == 0).then_some(()),
    );
}

#[test]
fn keys_dbsize_flushall() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    assert_eq!(qv(&mut c, &["DBSIZE"]), Value::Int(0));
    let words = ["hello", "hallo", "hxllo", "hllo", "heeeello", "world"];
    for w in words {
        qv(&mut c, &["SET", w, "1"]);
    }
    assert_eq!(qv(&mut c, &["DBSIZE"]), Value::Int(words.len() as i64));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let keys = |c: &mut redis::Connection, p: &str| sorted(q::<Vec<String>>(c, &["KEYS", p]));
    let mut all: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    all.sort();
    assert_eq!(keys(&mut c, "*"), all);
    assert_eq!(keys(&mut c, "h?llo"), ["hallo", "hello", "hxllo"]);
    assert_eq!(
        keys(&mut c, "h*llo"),
        ["hallo", "heeeello", "hello", "hllo", "hxllo"]
    );
    assert_eq!(keys(&mut c, "h[ae]llo"), ["hallo", "hello"]);
    assert_eq!(keys(&mut c, "h[^e]llo"), ["hallo", "hxllo"]);
    assert_eq!(keys(&mut c, "h[a-b]llo"), ["hallo"]);
    assert_eq!(keys(&mut c, "w*"), ["world"]);
    assert!(keys(&mut c, "nomatch*").is_empty());

    assert_eq!(qv(&mut c, &["FLUSHALL"]), Value::Okay);
    assert_eq!(qv(&mut c, &["DBSIZE"]), Value::Int(0));
    assert!(keys(&mut c, "*").is_empty());
    assert_eq!(qv(&mut c, &["GET", "hello"]), Value::Nil);
    // Usable after a flush.
    qv(&mut c, &["SET", "after", "1"]);
    assert_eq!(qv(&mut c, &["DBSIZE"]), Value::Int(1));
}

/// Runs a full SCAN iteration with `extra` options; returns every key seen (deduplicated).
fn scan_all(c: &mut redis::Connection, extra: &[&str]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..100_000 {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let (next, keys): (String, Vec<String>) = q(c, &args);
        seen.extend(keys);
        if next == "0" {
            return seen;
        }
        cursor = next;
    }
    panic!("SCAN did not finish within 100000 calls");
}

#[test]
fn scan_covers_every_group() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    let topo = Topology::two_cores();
    let mut expected = BTreeSet::new();
    for g in 0..topo.groups {
        let keys = topo.keys_in_group(g, &format!("scan{g}"), 60);
        for chunk in keys.chunks(20) {
            let mut m = redis::cmd("MSET");
            for k in chunk {
                m.arg(k).arg("v");
            }
            m.query::<()>(&mut c).expect("MSET");
        }
        expected.extend(keys);
    }
    qv(&mut c, &["SET", "other", "x"]);
    let mut everything = expected.clone();
    everything.insert("other".to_string());

    assert_eq!(scan_all(&mut c, &[]), everything);
    assert_eq!(scan_all(&mut c, &["COUNT", "7"]), everything);
    assert_eq!(scan_all(&mut c, &["COUNT", "1000"]), everything);
    let g2: BTreeSet<String> = expected
        .iter()
        .filter(|k| k.starts_with("scan2:"))
        .cloned()
        .collect();
    assert_eq!(g2.len(), 60);
    assert_eq!(scan_all(&mut c, &["MATCH", "scan2:*", "COUNT", "5"]), g2);
    assert_eq!(scan_all(&mut c, &["TYPE", "string"]), everything);
    assert!(scan_all(&mut c, &["TYPE", "hash"]).is_empty());
    assert_eq!(query_err(&mut c, &["SCAN", "abc"]), "ERR invalid cursor");
    assert_eq!(
        query_err(&mut c, &["SCAN", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
}

// ---------------------------------------------------------------- wire-level behaviour

#[test]
fn inline_commands() {
    let s = Server::start_for_semantics();
    let mut r = s.raw();
    r.send(b"PING\r\n");
    assert_eq!(r.read_reply(), Resp::simple("PONG"));
    r.send(b"SET inl hello\r\n");
    assert_eq!(r.read_reply(), Resp::simple("OK"));
    r.send(b"GET    inl\r\n");
    assert_eq!(r.read_reply(), Resp::bulk("hello"));
    // Quoted arguments, and a bare LF terminator.
    r.send(b"SET q \"a b\\tc\"\n");
    assert_eq!(r.read_reply(), Resp::simple("OK"));
    r.send(b"GET q\r\n");
    assert_eq!(r.read_reply(), Resp::bulk("a b\tc"));
    r.send(b"ECHO 'x y'\r\n");
    assert_eq!(r.read_reply(), Resp::bulk("x y"));
    // Empty lines produce no reply.
    r.send(b"\r\n\r\nPING\r\n");
    assert_eq!(r.read_reply(), Resp::simple("PONG"));
    // Inline and multibulk interleave on one connection.
    r.send(b"INCR n\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\nINCR n\r\n");
    assert_eq!(r.read_reply(), Resp::Int(1));
    assert_eq!(r.read_reply(), Resp::Int(2));
    assert_eq!(r.read_reply(), Resp::Int(3));
}

#[test]
fn pipeline_of_1000_mixed_commands_replies_in_order() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    let topo = Topology::two_cores();
    // Keys on both cores so the pipeline's replies come from different executors.
    let mut strs = topo.keys_on_core(0, "ps", 25);
    strs.extend(topo.keys_on_core(1, "ps", 25));
    let mut counters = topo.keys_on_core(0, "pc", 4);
    counters.extend(topo.keys_on_core(1, "pc", 3));

    let mut pipe = redis::pipe();
    let mut expected = Vec::with_capacity(1000);
    let mut model: HashMap<&str, String> = HashMap::new();
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for i in 0..1000usize {
        // A cheap deterministic shuffle of which key each command touches.
        let k = &strs[(i * 7 + i / 3) % strs.len()];
        match i % 3 {
            0 => {
                let v = format!("val-{i}");
                pipe.cmd("SET").arg(k).arg(&v);
                model.insert(k, v);
                expected.push(Value::Okay);
            }
            1 => {
                pipe.cmd("GET").arg(k);
                expected.push(match model.get(k.as_str()) {
                    Some(v) => bulk(v),
                    None => Value::Nil,
                });
            }
            _ => {
                let ck = &counters[i % counters.len()];
                pipe.cmd("INCR").arg(ck);
                let n = counts.entry(ck).or_insert(0);
                *n += 1;
                expected.push(Value::Int(*n));
            }
        }
    }
    let got: Vec<Value> = pipe.query(&mut c).expect("pipeline");
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "reply #{i} out of order or wrong");
    }
    // The same through raw bytes written in one go, replies read one by one.
    let mut r = s.raw();
    let mut bytes = Vec::new();
    for i in 0..1000 {
        let k = &strs[i % strs.len()];
        bytes.extend(common::resp::encode(&[b"APPEND", k.as_bytes(), b"x"]));
    }
    r.send(&bytes);
    let mut lens: HashMap<usize, i64> = HashMap::new();
    for i in 0..1000 {
        let idx = i % strs.len();
        let base = *lens
            .entry(idx)
            .or_insert(model.get(strs[idx].as_str()).map_or(0, |v| v.len() as i64));
        let want = base + 1;
        lens.insert(idx, want);
        assert_eq!(r.read_reply(), Resp::Int(want), "raw pipeline reply #{i}");
    }
}

#[test]
fn cross_core_multi_key_commands_reassemble_in_order() {
    let s = Server::start_for_semantics();
    let mut c = s.client();
    let topo = Topology::two_cores();
    let a = topo.keys_on_core(0, "xa", 6);
    let b = topo.keys_on_core(1, "xb", 6);
    let missing_a = topo.keys_on_core(0, "xma", 1).remove(0);
    let missing_b = topo.keys_on_core(1, "xmb", 1).remove(0);
    let inter: Vec<&String> = a.iter().zip(&b).flat_map(|(x, y)| [x, y]).collect();

    let mut mset = redis::cmd("MSET");
    for k in &inter {
        mset.arg(*k).arg(format!("v-{k}"));
    }
    assert_eq!(mset.query::<Value>(&mut c).expect("MSET"), Value::Okay);

    let order = [
        &b[0], &a[0], &missing_b, &a[1], &b[1], &missing_a, &b[5], &a[5], &a[0],
    ];
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&order[..])
        .query(&mut c)
        .expect("MGET");
    let want: Vec<Option<String>> = order
        .iter()
        .map(|k| (!k.starts_with("xm")).then(|| format!("v-{k}")))
        .collect();
    assert_eq!(got, want);

    let exists: i64 = redis::cmd("EXISTS")
        .arg(&order[..])
        .query(&mut c)
        .expect("EXISTS");
    assert_eq!(exists, 7);
    let del: i64 = redis::cmd("DEL")
        .arg(&[&a[0], &b[0], &missing_a, &missing_b, &a[1]])
        .query(&mut c)
        .expect("DEL");
    assert_eq!(del, 3);
    let unlink: i64 = redis::cmd("UNLINK")
        .arg(&[&b[1], &a[2], &b[1]])
        .query(&mut c)
        .expect("UNLINK");
    assert_eq!(unlink, 2);
    let got: Vec<Option<String>> = redis::cmd("MGET").arg(&inter).query(&mut c).expect("MGET");
    let want: Vec<Option<String>> = inter
        .iter()
        .map(|k| {
            let deleted = [&a[0], &b[0], &a[1], &b[1], &a[2]].contains(k);
            (!deleted).then(|| format!("v-{k}"))
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(qv(&mut c, &["DBSIZE"]), Value::Int(7));

    // One pipeline alternating cores, each reply checked in order.
    let mut pipe = redis::pipe();
    let mut expected = Vec::new();
    for j in 0..50usize {
        let (ka, kb) = (&a[j % 6], &b[j % 6]);
        pipe.cmd("SET").arg(ka).arg(format!("a{j}"));
        pipe.cmd("SET").arg(kb).arg(format!("b{j}"));
        pipe.cmd("GET").arg(kb);
        pipe.cmd("GET").arg(ka);
        expected.extend([
            Value::Okay,
            Value::Okay,
            bulk(&format!("b{j}")),
            bulk(&format!("a{j}")),
        ]);
    }
    let got: Vec<Value> = pipe.query(&mut c).expect("pipeline");
    assert_eq!(got, expected);
    let keys: Vec<String> = q(&mut c, &["KEYS", "x*"]);
    assert_eq!(keys.len(), 12, "{keys:?}");
}
