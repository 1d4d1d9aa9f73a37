//! Shared harness for the integration tests of the `leasekv` binary.
//!
//! - [`server`]: start/stop/restart one server process per test (own port, own temp data dir),
//!   killed by a `Drop` guard even when the test panics.
//! - [`resp`]: a minimal RESP2/RESP3 client over a raw `TcpStream` for byte-exact checks.
//! - [`slots`]: Redis Cluster key slots and the leasekv slot -> group -> core mapping.
//! - [`cluster`]: multi-node clusters of real processes (ports, restarts, INFO parsing,
//!   leader agreement) and a retrying client.
//! - [`wal`]: reading WAL segment framing, for the corruption tests.
//! - [`workload`]: concurrent recorded clients for the linearizability checker.
//! - [`nemesis`]: fault schedules (pause, kill, isolate, transfer, membership, bursts).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod nemesis;
pub mod resp;
pub mod server;
pub mod slots;
pub mod wal;
pub mod workload;

use std::time::{Duration, Instant};

pub use resp::{RawConn, Resp};
pub use server::{against_redis, Server, ServerOptions};
pub use slots::{key_slot, Topology};

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
/// The only way tests wait for something asynchronous: never a fixed sleep-and-hope.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Renders a `redis` crate error the way the server sent it: `"CODE detail"`, e.g.
/// `"ERR syntax error"` or `"CROSSSLOT Keys in request don't hash to the same slot"`.
pub fn err_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => format!("<not a server error: {e}>"),
    }
}

/// Runs a command that must fail and returns the server's error line.
pub fn query_err(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?}: expected an error reply, got {v:?}"),
        Err(e) => err_text(&e),
    }
}

/// Builds a `redis::Cmd` from string arguments.
pub fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Runs a command and converts its reply, panicking with the command on any error.
pub fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    match cmd(args).query::<T>(con) {
        Ok(v) => v,
        Err(e) => panic!("{args:?} failed: {}", err_text(&e)),
    }
}

/// Runs a command and returns the raw `redis::Value` (server errors become a panic).
pub fn qv(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    q::<redis::Value>(con, args)
}

/// Milliseconds since the Unix epoch (the servers' expiry clock).
pub fn unix_ms() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock before 1970");
    d.as_millis() as u64
}
