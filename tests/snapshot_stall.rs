//! Measures — does not assert — how long a core stops answering while one of its shard groups
//! builds a big snapshot (checkpoint) or installs one received from the leader.
//!
//! Ignored by default (it loads 500k keys and prints numbers, it checks no behaviour):
//!
//! ```sh
//! cargo test --release --test snapshot_stall -- --ignored --nocapture --test-threads 1
//! # another build of the server, e.g. before a change:
//! LEASEKV_STALL_BIN=/tmp/leasekv-old cargo test --release --test snapshot_stall -- --ignored --nocapture
//! # LEASEKV_STALL_KEYS=100000 for a smaller state
//! ```
//!
//! Method: every server runs one core and one shard group, so every client connection is served
//! by the core that owns the group. A probe thread sends PING on its own connection every
//! millisecond and records each round trip; the longest one while the snapshot is built or
//! installed is (an upper bound of) the core's stall. A baseline window with the same traffic but
//! no snapshot is reported beside it.
//!
//! - build: a single node; 500k keys are loaded below the compaction threshold, then 64 KiB
//!   writes push the WAL over it, and the probe runs until `wal_compactions` has gone up.
//! - install: three nodes; node 3 is paused (SIGSTOP) while the keys are loaded and the
//!   leaders compact, then resumed; once it answers again, the probe pings it while it
//!   catches up by snapshot. A control then pauses and resumes it again with only ~20 MB of
//!   log to catch up (no snapshot): what resuming itself costs.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{info_field, reserve_ports};
use common::server::configure_log_env;
use common::wait_until;

fn server_bin() -> String {
    std::env::var("LEASEKV_STALL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_leasekv").into())
}

fn keys_to_load() -> usize {
    std::env::var("LEASEKV_STALL_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000)
}

/// Compaction threshold: above what loading the keys writes (~30 MB for 500k keys).
const LOG_BYTES: u64 = 40 << 20;
/// Pushes the WAL over the threshold gently, so the log written while a snapshot is built
/// (which a lagging node then replays after installing it) stays small.
const PUSH_VALUE: usize = 64 << 10;
const PUSH_PAUSE: Duration = Duration::from_millis(1);

/// Processes started here; killed (by pid) on drop.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(config: &Path, log: &Path) -> Child {
    let mut cmd = Command::new(server_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).expect("log file"));
    configure_log_env(&mut cmd);
    cmd.spawn().expect("start leasekv")
}

fn connect(port: u16) -> redis::Connection {
    wait_until(Duration::from_secs(60), "server answers", || {
        let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
        let mut conn = c.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    })
}

fn info(conn: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(conn).expect("INFO")
}

fn counter(conn: &mut redis::Connection, section: &str, field: &str) -> u64 {
    info_field(&info(conn, section), field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in INFO {section}"))
}

/// Keys of the (only) group as INFO reports them on this node.
fn group_keys(conn: &mut redis::Connection) -> u64 {
    let text = info(conn, "leasekv");
    text.lines()
        .filter_map(|l| l.split_once("keys="))
        .filter_map(|(_, v)| {
            v.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Loads `n` keys with pipelined MSETs, retrying retryable errors (a leader may be settling).
fn load(port: u16, n: usize) {
    let mut conn = connect(port);
    let value = "v".repeat(32);
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut cmd = redis::cmd("MSET");
        for i in chunk {
            cmd.arg(format!("key:{i:08}")).arg(&value);
        }
        wait_until(Duration::from_secs(30), "MSET accepted", || {
            cmd.query::<()>(&mut conn).ok()
        });
    }
    eprintln!("loaded {n} keys in {:?}", started.elapsed());
}

/// One PING round trip: when it was sent (since the Unix epoch) and how long it took.
type Sample = (Duration, Duration);

/// Round trips of PING on a raw connection, one every millisecond, until `stop`.
fn probe(port: u16, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Sample>> {
    thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("probe connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        s.set_nodelay(true).ok();
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        let start = Instant::now();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Bounded: at most ten minutes of samples.
        while !stop.load(Ordering::Relaxed) && out.len() < 600_000 {
            let t = Instant::now();
            s.write_all(b"PING\r\n").expect("probe write");
            let mut got = 0;
            while got < 7 {
                got += s.read(&mut buf[got..]).expect("probe read");
            }
            out.push((wall + (t - start), t.elapsed()));
            thread::sleep(Duration::from_millis(1));
        }
        out
    })
}

/// `HH:MM:SS.mmm` UTC, as the server logs it.
fn time_of_day(since_epoch: Duration) -> String {
    let s = since_epoch.as_secs() % 86_400;
    let ms = since_epoch.subsec_millis();
    format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60)
}

/// Lines of a server log that tell what the snapshot machinery did.
fn dump_log(who: &str, path: &Path) {
    let log = fs::read_to_string(path).unwrap_or_default();
    for line in log.lines().filter(|l| {
        ["snapshot", "role changed", "wal:"]
            .iter()
            .any(|w| l.contains(w))
    }) {
        eprintln!("  {who}: {line}");
    }
}

fn summary(what: &str, samples: Vec<Sample>) {
    let mut worst = samples.clone();
    worst.sort_unstable_by_key(|s| std::cmp::Reverse(s.1));
    let worst: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(at, d)| format!("{d:.1?} at {}", time_of_day(*at)))
        .collect();
    let mut v: Vec<Duration> = samples.into_iter().map(|s| s.1).collect();
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{what}: {} pings, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        v.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        v[v.len() - 1]
    );
    eprintln!("  longest: {}", worst.join(", "));
}

/// Pings for `d` with nothing else going on.
fn baseline(port: u16, d: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let p = probe(port, stop.clone());
    thread::sleep(d);
    stop.store(true, Ordering::Relaxed);
    summary("baseline (no snapshot)", p.join().expect("probe"));
}

/// Node `id`'s config for `phase` (each phase has its own data dirs).
fn config(dir: &Path, phase: &str, id: u64, cpu: usize, nodes: &[(u64, u16, u16)]) -> PathBuf {
    let client = nodes.iter().find(|n| n.0 == id).map_or(0, |n| n.1);
    let mut s = format!(
        "node_id = {id}\ndata_dir = \"{}\"\ncores = [{cpu}]\ngroups = 1\nlisten = \"127.0.0.1:{client}\"\n\
         [raft]\nsnapshot_log_bytes = {LOG_BYTES}\n",
        dir.join(format!("{phase}-data-{id}")).display()
    );
    if nodes.len() > 1 {
        s = s.replace(
            "groups = 1\n",
            &format!("groups = 1\nreplication = {}\n", nodes.len()),
        );
        for (nid, client, raft) in nodes {
            s.push_str(&format!(
                "[[nodes]]\nid = {nid}\nraft = \"127.0.0.1:{raft}\"\nclient = \"127.0.0.1:{client}\"\n"
            ));
        }
    }
    let path = dir.join(format!("{phase}-node-{id}.toml"));
    fs::write(&path, s).expect("write config");
    path
}

/// Writes [`PUSH_VALUE`]s through `port` until `done` says the awaited snapshot happened.
fn push_until(port: u16, mut done: impl FnMut(&mut redis::Connection) -> bool) {
    let mut conn = connect(port);
    let mut check = connect(port);
    let big = "b".repeat(PUSH_VALUE);
    let until = Instant::now() + Duration::from_secs(300);
    let mut i = 0u64;
    while !done(&mut check) {
        assert!(Instant::now() < until, "no snapshot within 300 s");
        let _ = redis::cmd("SET")
            .arg(format!("big:{}", i % 4))
            .arg(&big)
            .query::<()>(&mut conn);
        i += 1;
        thread::sleep(PUSH_PAUSE);
    }
}

#[test]
#[ignore = "measurement: prints the core stall of a big snapshot build and install"]
fn core_stall_during_snapshot_build_and_install() {
    eprintln!("server binary: {}", server_bin());
    let n = keys_to_load();
    let dir = tempfile::tempdir().expect("temp dir");

    // ---- build: one node, one core, one group.
    {
        let port = reserve_ports(&[0]);
        let cfg = config(dir.path(), "build", 1, 0, &[(1, port, 0)]);
        let _procs = Procs(vec![spawn(&cfg, &dir.path().join("single.log"))]);
        load(port, n);
        let mut conn = connect(port);
        baseline(port, Duration::from_secs(3));
        let before = counter(&mut conn, "stats", "wal_compactions");
        let stop = Arc::new(AtomicBool::new(false));
        let p = probe(port, stop.clone());
        let started = Instant::now();
        push_until(port, |c| counter(c, "stats", "wal_compactions") > before);
        eprintln!("checkpoint reached after {:?}", started.elapsed());
        // The build may finish after the counter moves on an async build: ping a bit longer.
        thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        summary(&format!("BUILD of {n} keys"), p.join().expect("probe"));
        dump_log("server", &dir.path().join("single.log"));
    }

    // ---- install: three nodes; node 3 (on CPU 1, alone) catches up by snapshot.
    {
        let base: Vec<u16> = (0..3).map(|_| reserve_ports(&[0, 1])).collect();
        let nodes: Vec<(u64, u16, u16)> = (1..=3)
            .map(|i| (i, base[i as usize - 1], base[i as usize - 1] + 1))
            .collect();
        let cpus = [0, 0, 1];
        let mut procs = Procs(Vec::new());
        for &(id, _, _) in &nodes {
            let cfg = config(dir.path(), "install", id, cpus[id as usize - 1], &nodes);
            procs
                .0
                .push(spawn(&cfg, &dir.path().join(format!("node-{id}.log"))));
        }
        let port1 = nodes[0].1;
        let port3 = nodes[2].1;
        let mut c3 = connect(port3);
        let _ = connect(port1);
        // Wait for a leader: a write through node 1 succeeds.
        let mut c1 = connect(port1);
        wait_until(Duration::from_secs(60), "a leader", || {
            redis::cmd("SET")
                .arg("hello")
                .arg("1")
                .query::<()>(&mut c1)
                .ok()
        });
        let pid3 = procs.0[2].id() as i32;
        // SIGSTOP/SIGCONT to exactly the pid this test started.
        assert_eq!(unsafe { libc::kill(pid3, libc::SIGSTOP) }, 0);
        load(port1, n);
        let before = counter(&mut c1, "stats", "wal_compactions");
        push_until(port1, |c| counter(c, "stats", "wal_compactions") > before);
        let stop = Arc::new(AtomicBool::new(false));
        // Optional: profile node 3 while it catches up (perf must be installed).
        let perf = std::env::var("LEASEKV_STALL_PERF").ok().map(|out| {
            Command::new("perf")
                .args([
                    "record",
                    "-F",
                    "4999",
                    "-g",
                    "-o",
                    &out,
                    "-p",
                    &pid3.to_string(),
                ])
                .args(["--", "sleep", "6"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start perf")
        });
        assert_eq!(unsafe { libc::kill(pid3, libc::SIGCONT) }, 0);
        let resumed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let started = Instant::now();
        // Waking up from SIGSTOP has a cost of its own (expired timers, buffered traffic):
        // probe only once node 3 answers again. The snapshot comes later (the leader first
        // has to hear from it).
        let _ = connect(port3);
        let p = probe(port3, stop.clone());
        wait_until(Duration::from_secs(300), "node 3 caught up", || {
            (group_keys(&mut c3) >= n as u64).then_some(())
        });
        eprintln!("node 3 caught up after {:?}", started.elapsed());
        thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        summary(&format!("INSTALL of {n} keys"), p.join().expect("probe"));
        if let Some(mut perf) = perf {
            // Bounded: perf stops after its `sleep 6`.
            let _ = perf.wait();
        }
        dump_log("node 3", &dir.path().join("node-3.log"));
        eprintln!("  (SIGCONT at {})", time_of_day(resumed_at));
        baseline(port3, Duration::from_secs(3));

        // Control: the same pause and resume, caught up by log alone (no compaction).
        let before = counter(&mut c1, "stats", "wal_compactions");
        assert_eq!(unsafe { libc::kill(pid3, libc::SIGSTOP) }, 0);
        let mut pushed = 0;
        push_until(port1, |_| {
            pushed += 1;
            pushed > (LOG_BYTES as usize / 2) / PUSH_VALUE
        });
        assert_eq!(
            counter(&mut c1, "stats", "wal_compactions"),
            before,
            "the control must not compact"
        );
        assert_eq!(unsafe { libc::kill(pid3, libc::SIGCONT) }, 0);
        let _ = connect(port3);
        let stop = Arc::new(AtomicBool::new(false));
        let p = probe(port3, stop.clone());
        thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        summary("RESUME control (catch-up by log)", p.join().expect("probe"));
    }
}
