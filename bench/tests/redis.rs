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

#[test]
fn unreachable_server_is_an_error_not_a_panic() {
    // A port that was just free: nothing listens there.
    let port = free_port();
    let err = run_load(&LoadConfig {
        duration_secs: 0.5,
        warmup_secs: 0.0,
        timeout_ms: 500,
        ..base_config(port)
    })
    .expect_err("nothing listens");
    assert!(matches!(err, RunError::Connect { .. }), "{err}");
}
