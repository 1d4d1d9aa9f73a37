//! End-to-end runs against a real `redis-server` (Debian package redis-server), skipped
//! with a notice when it is not installed.

use leasekv_bench::{run_load, Distribution, KeyTag, LoadConfig, LoopMode, RunError};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server child on a free loopback port, killed (by its pid) on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn start_redis() -> Option<RedisServer> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("NOTICE: redis-server not on PATH, skipping (apt-get install -y redis-server)");
        return None;
    }
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let server = RedisServer { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ping(port) {
        assert!(
            Instant::now() < deadline,
            "redis-server did not come up on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

fn base_config(port: u16) -> LoadConfig {
    LoadConfig {
        targets: vec![format!("127.0.0.1:{port}")],
        connections: 4,
        threads: 2,
        pipeline: 2,
        keys: 1000,
        warmup_secs: 0.5,
        duration_secs: 2.0,
        timeout_ms: 2000,
        // The test machine is shared with other builds: generous generator limits so the
        // verdict reflects gross saturation only (the limits themselves are unit-tested).
        max_generator_lag_us: 200_000,
        max_generator_cpu: 1.01,
        ..LoadConfig::default()
    }
}

fn check_sane(r: &leasekv_bench::LoadReport) {
    assert_eq!(r.errors_total, 0, "errors: {:?}", r.errors);
    assert!(r.throughput > 0.0);
    assert!(
        r.ops > 0 && r.reads > 0 && r.writes > 0,
        "{} {} {}",
        r.ops,
        r.reads,
        r.writes
    );
    let l = &r.latency.all;
    assert!(
        l.p50_us > 0.0 && l.p50_us <= l.p99_us && l.p99_us <= l.max_us,
        "{l:?}"
    );
    assert!(r.time_series.iter().any(|s| s.t_sec == 0.0 && s.ops > 0));
    assert_eq!(r.workers.len(), 2);
    let json = serde_json::to_string(r).expect("report serializes");
    assert!(json.contains("\"time_series\""));
}

#[test]
fn closed_and_open_loop_against_redis() {
    let Some(server) = start_redis() else {
        return;
    };

    let closed = run_load(&LoadConfig {
        preload: true,
        distribution: Distribution::Zipfian { theta: 0.99 },
        ..base_config(server.port)
    })
    .expect("closed-loop run");
    print!("{}", closed.render_text());
    assert_eq!(closed.mode, LoopMode::Closed);
    check_sane(&closed);
    assert!(closed.generator_lag.is_none());

    let rate = 1000.0;
    let open = run_load(&LoadConfig {
        rate: Some(rate),
        key_tag: KeyTag::Shared("bench".into()),
        ..base_config(server.port)
    })
    .expect("open-loop run");
    print!("{}", open.render_text());
    assert_eq!(open.mode, LoopMode::Open);
    check_sane(&open);
    assert!(
        (open.achieved_rate - rate).abs() <= 0.1 * rate,
        "achieved {} of {rate}",
        open.achieved_rate
    );
    assert_eq!(open.offered_rate, Some(rate));
    let g = open
        .generator_lag
        .as_ref()
        .expect("open loop reports generator lag");
    assert_eq!(g.count, open.ops);
    assert!(open.valid, "{:?}", open.invalid_reasons);
}

/// A TCP socket bound to a loopback port without `listen()`: connects to that port are
/// refused, and no other socket can take the port while this one lives (a merely "free"
/// port can be reused by a parallel test, or even self-connected from the ephemeral range).
struct ClosedPort(i32);

impl ClosedPort {
    fn new() -> (ClosedPort, u16) {
        // SAFETY: plain socket syscalls on a descriptor this struct owns and closes on drop.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket");
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let sa = &addr as *const libc::sockaddr_in as *const libc::sockaddr;
            assert_eq!(libc::bind(fd, sa, len), 0, "bind");
            let mut out: libc::sockaddr_in = std::mem::zeroed();
            let mut olen = len;
            let oa = &mut out as *mut libc::sockaddr_in as *mut libc::sockaddr;
            assert_eq!(libc::getsockname(fd, oa, &mut olen), 0, "getsockname");
            (ClosedPort(fd), u16::from_be(out.sin_port))
        }
    }
}

impl Drop for ClosedPort {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor we opened.
        unsafe {
            libc::close(self.0);
        }
    }
}

#[test]
fn unreachable_server_is_an_error_not_a_panic() {
    let (_held, port) = ClosedPort::new();
    let err = run_load(&LoadConfig {
        duration_secs: 0.5,
        warmup_secs: 0.0,
        timeout_ms: 500,
        ..base_config(port)
    })
    .expect_err("nothing listens");
    assert!(matches!(err, RunError::Connect { .. }), "{err}");
}
