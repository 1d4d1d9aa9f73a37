//! Hostile and broken clients, and broken configurations. In every case: the exact error text
//! where one is sent, the offending connection closed, other clients served during and after,
//! and the server process still running.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::{free_port, run_leasekv_to_exit};
use common::{q, qv, wait_until, RawConn, Resp, Server, ServerOptions, Topology};
use redis::Value;

/// Small limits so each one is easy to cross.
const LIMITS: &str = "[limits]
max_bulk_bytes = 1024
max_args = 16
idle_frame_timeout_ms = 500
write_timeout_ms = 500
";

/// Several fresh connections (SO_REUSEPORT spreads them over the cores) each PING, and a
/// SET/GET on a key of each core works.
fn assert_healthy(s: &mut Server) {
    s.assert_alive();
    let topo = Topology::two_cores();
    for i in 0..6 {
        let mut c = s.client();
        assert_eq!(qv(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
        let key = &topo.keys_on_core(i % 2, "healthy", 1)[0];
        assert_eq!(qv(&mut c, &["SET", key, "ok"]), Value::Okay);
        assert_eq!(qv(&mut c, &["GET", key]), Value::BulkString(b"ok".to_vec()));
    }
}

/// Reads until close and asserts one `-ERR Protocol error: ...` line was all that came.
fn expect_protocol_error_then_close(r: &mut RawConn) -> String {
    let closed = r
        .read_until_closed(Duration::from_secs(10))
        .unwrap_or_else(|b| {
            panic!(
                "connection not closed after a protocol violation; got {:?}",
                String::from_utf8_lossy(&b)
            )
        });
    let text = String::from_utf8_lossy(&closed.bytes).into_owned();
    assert!(
        text.starts_with("-ERR Protocol error: ") && text.ends_with("\r\n"),
        "want one `-ERR Protocol error: ...` line, got {text:?}"
    );
    assert_eq!(text.matches("\r\n").count(), 1, "{text:?}");
    text
}

#[test]
fn malformed_resp_gets_protocol_error_and_close() {
    let mut s = Server::start_for_semantics();
    let mut healthy = s.client();
    let cases: [(&[u8], &str); 5] = [
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"SET k \"unterminated\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (bytes, want) in cases {
        let mut r = s.raw();
        // A valid command first: the connection is fine until the bad frame.
        assert_eq!(r.cmd(&["PING"]), Resp::simple("PONG"));
        r.send(bytes);
        r.expect_reply_then_close(want.as_bytes());
        assert_eq!(
            qv(&mut healthy, &["PING"]),
            Value::SimpleString("PONG".into())
        );
    }
    // Replies to commands before the bad frame in the same write are still sent, in order.
    let mut r = s.raw();
    r.send(b"*1\r\n$4\r\nPING\r\n*1\r\n$abc\r\n");
    r.expect_reply_then_close(b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
    assert_healthy(&mut s);
    if !s.is_redis() {
        s.assert_no_panic();
    }
}

#[test]
fn bulk_over_max_bulk_bytes_is_rejected() {
    let mut s = Server::start(ServerOptions::with_config(LIMITS));
    let mut healthy = s.client();
    // Exactly the limit is fine.
    let mut r = s.raw();
    let max = "v".repeat(1024);
    assert_eq!(r.cmd(&["SET", "k", &max]), Resp::simple("OK"));
    assert_eq!(r.cmd(&["STRLEN", "k"]), Resp::Int(1024));
    // One byte over: refused, connection closed, nothing written.
    let over = "w".repeat(1025);
    r.send_cmd(&["SET", "k", &over]);
    expect_protocol_error_then_close(&mut r);
    assert_eq!(q::<i64>(&mut healthy, &["STRLEN", "k"]), 1024);
    // Refused from the length header alone, before the payload arrives.
    let mut r = s.raw();
    r.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000000\r\n");
    expect_protocol_error_then_close(&mut r);
    assert_healthy(&mut s);
}

#[test]
fn more_than_max_args_is_rejected() {
    let mut s = Server::start(ServerOptions::with_config(LIMITS));
    let mut r = s.raw();
    // 16 elements (command + 15 keys) are within max_args = 16 however the name is counted.
    let mut args = vec!["DEL".to_string()];
    args.extend((0..15).map(|i| format!("k{i}")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(r.cmd(&refs), Resp::Int(0));
    // 18 elements exceed it either way.
    let mut args = vec!["DEL".to_string()];
    args.extend((0..17).map(|i| format!("k{i}")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    r.send_cmd(&refs);
    expect_protocol_error_then_close(&mut r);
    // A huge count is refused from the header alone.
    let mut r = s.raw();
    r.send(b"*100000000\r\n");
    expect_protocol_error_then_close(&mut r);
    assert_healthy(&mut s);
}

#[test]
fn half_frame_then_stall_is_disconnected() {
    let mut s = Server::start(ServerOptions::with_config(LIMITS));
    // An idle connection with no partial frame is not a stall.
    let mut idle = s.raw();
    assert_eq!(idle.cmd(&["PING"]), Resp::simple("PONG"));
    let mut stalled = s.raw();
    let t0 = Instant::now();
    stalled.send(b"*2\r\n$3\r\nGET\r\n$1");
    // Served while the stalled client holds its half frame.
    assert_healthy(&mut s);
    let closed = stalled
        .read_until_closed(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("half-frame client still connected after 15 s"));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "disconnected after {waited:?}, before idle_frame_timeout_ms = 500"
    );
    let text = String::from_utf8_lossy(&closed.bytes);
    assert!(
        text.is_empty() || (text.starts_with("-ERR") && text.ends_with("\r\n")),
        "only an error line may precede the close: {text:?}"
    );
    // Let the idle connection sit for longer than the timeout, then use it.
    std::thread::sleep(Duration::from_millis(800).saturating_sub(t0.elapsed()));
    assert_eq!(idle.cmd(&["PING"]), Resp::simple("PONG"));
    assert_healthy(&mut s);
}

/// True while the server's end of the connection whose client end is `client_port` is
/// ESTABLISHED; false once the server has closed it (socket gone, or FIN_WAIT with unsent data).
fn server_side_established(server_port: u16, client_port: u16) -> bool {
    let mut found = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                continue;
            }
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port(f[1]) == Some(server_port) && port(f[2]) == Some(client_port) {
                // 01 = ESTABLISHED.
                found |= f[3] == "01";
            }
        }
    }
    found
}

#[test]
fn client_that_never_reads_is_disconnected() {
    let mut s = Server::start(ServerOptions::with_config(
        "[limits]\nwrite_timeout_ms = 500\n",
    ));
    let mut c = s.client();
    let big = "b".repeat(512 * 1024);
    assert_eq!(qv(&mut c, &["SET", "big", &big]), Value::Okay);

    // 400 GETs of 512 KiB = 200 MiB of replies, far beyond what socket buffers hold; never read.
    let mut slow = TcpStream::connect(("127.0.0.1", s.port())).expect("connect");
    slow.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let client_port = slow.local_addr().expect("addr").port();
    let requests = 400;
    let mut batch = Vec::new();
    for _ in 0..requests {
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    // The server's end is visible (this also proves the /proc lookup finds it).
    wait_until(
        Duration::from_secs(5),
        "the server's end of the connection",
        || server_side_established(s.port(), client_port).then_some(()),
    );
    slow.write_all(&batch).expect("send GETs");
    assert_healthy(&mut s);
    wait_until(
        Duration::from_secs(20),
        "the server to drop the client that does not read",
        || (!server_side_established(s.port(), client_port)).then_some(()),
    );
    // Whatever was buffered can be drained, then the stream ends short of all replies.
    let mut r = RawConn::from_stream(slow);
    let closed = r
        .read_until_closed(Duration::from_secs(30))
        .unwrap_or_else(|b| panic!("still open after draining {} bytes", b.len()));
    let full = requests * (big.len() + "$524288\r\n\r\n".len());
    assert!(
        closed.bytes.len() < full,
        "received all {full} bytes: the slow client was never cut off"
    );
    assert_healthy(&mut s);
}

// ---------------------------------------------------------------- configuration errors

/// Starts `leasekv serve --config <toml>` and expects a startup failure; returns stderr.
fn config_error(toml: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, toml).expect("write config");
    let data = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "serve",
        "--config",
        cfg.to_str().expect("utf-8 path"),
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ];
    // Flags override the file: keep the file's `listen` when that is what is under test.
    if !toml.contains("listen") {
        args.extend(["--listen", &listen]);
    }
    startup_error(&args)
}

fn startup_error(args: &[&str]) -> String {
    let (status, stderr) = run_leasekv_to_exit(args, Duration::from_secs(30));
    assert!(
        !status.success(),
        "leasekv {args:?} must fail to start; exited {status}\nstderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked at"),
        "a config error must not be a panic:\n{stderr}"
    );
    stderr
}

#[test]
fn unknown_config_keys_are_startup_errors_naming_the_key() {
    for (toml, key) in [
        ("bogus_top_level = 1\n", "bogus_top_level"),
        (
            "[raft]\ntick_ms = 10\nbogus_raft_knob = 3\n",
            "bogus_raft_knob",
        ),
        (
            "[limits]\nmax_clients = 10\nmax_clinets = 10\n",
            "max_clinets",
        ),
        ("[mystery_section]\na = 1\n", "mystery_section"),
    ] {
        let stderr = config_error(toml);
        assert!(stderr.contains(key), "stderr must name `{key}`:\n{stderr}");
    }
}

#[test]
fn invalid_config_values_are_clear_startup_errors() {
    // Each error must point at the problem: the key, the bad value, or its line in the file.
    let cases: [(&str, &[&str]); 5] = [
        ("[raft]\ntick_ms = \"fast\"\n", &["tick_ms", "line 2"]),
        (
            "[limits]\nmax_bulk_bytes = -5\n",
            &["max_bulk_bytes", "line 2"],
        ),
        ("groups = 0\n", &["groups", "line 1"]),
        (
            "listen = \"not an address\"\n",
            &["listen", "not an address", "line 1"],
        ),
        ("this is not toml\n", &["bad.toml", "line 1"]),
    ];
    for (toml, mentions) in cases {
        let stderr = config_error(toml);
        assert!(
            mentions.iter().any(|m| stderr.contains(m)),
            "stderr for {toml:?} must mention one of {mentions:?}:\n{stderr}"
        );
    }
    let stderr = startup_error(&["serve", "--config", "/nonexistent/leasekv.toml"]);
    assert!(stderr.contains("/nonexistent/leasekv.toml"), "{stderr}");
    let listen = format!("127.0.0.1:{}", free_port());
    startup_error(&["serve", "--listen", &listen, "--cores", "zero"]);
    startup_error(&["serve", "--no-such-flag"]);
}
