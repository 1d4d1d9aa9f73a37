//! Fault-injection tests: a recorded workload against a real 3-node cluster while a nemesis
//! pauses, kills, isolates, transfers leadership, changes membership or bursts conflicting
//! writes; then heal, converge, read every key through every node, and check the history
//! with the WGL linearizability checker (`tests/checker`). See docs/testing.md.
//!
//! Profiles:
//! - CI (default): one test per nemesis, `LEASEKV_NEMESIS_SECS` (default 15) seconds of
//!   faults each. The tests of this file run one at a time (they share the machine's cores).
//! - Soak (`--ignored`): the same runs for `LEASEKV_SOAK_SECS` (default 600) seconds each;
//!   `tests/soak.sh` drives them with a release build and prints the result lines.
//!
//! Also here: the test proving the checker flags the stale reads of a lease that ignores
//! transfers (`unsafe_disable_lease_rule = 6`), the `LEASEKV.ADMIN TRANSFER` hook, and
//! deterministic regression tests of the bugs the nemeses found.
//!
//! `LEASEKV_NEMESIS_SEED` repeats a run's random choices (the seed is printed);
//! `LEASEKV_NEMESIS_VERBOSE=1` prints every fault with its time on the history's clock.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{info_field, ClusterOptions, TestCluster};
use common::nemesis::{admin, debug_isolate, wait_leaders, FaultLog, Kind, Nemesis};
use common::workload::{
    seed_from_clock, set_value, write_error_effect, Client, Counts, Done, Effect, Workload,
    WorkloadOptions,
};
use common::Topology;
use linearizability::{check, Input, Recorder, Report, Verdict};

/// One cluster at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn env_secs(var: &str, default: u64) -> Duration {
    let secs = std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

fn seed() -> u64 {
    std::env::var("LEASEKV_NEMESIS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(seed_from_clock)
}

/// Lease reads, fault hooks, 1 s server deadline (clients wait 3 s), and logs compacted
/// every 256 KiB (`LEASEKV_NEMESIS_SNAPSHOT_BYTES`) so that restarted, isolated and new
/// nodes also catch up by snapshot.
fn cluster_options(extra: &str, raft_extra: &str) -> ClusterOptions {
    let snapshot_log_bytes = std::env::var("LEASEKV_NEMESIS_SNAPSHOT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256 * 1024);
    ClusterOptions {
        snapshot_log_bytes,
        extra_toml: format!(
            "read_mode = \"lease\"\ndebug_commands = true\n{extra}\n[limits]\nrequest_timeout_ms = 1000\n"
        ),
        raft_extra: raft_extra.to_string(),
        ..ClusterOptions::default()
    }
}

/// Runs `kind` for `load` against a fresh cluster and asserts a linearizable history with
/// no acknowledged write lost. Prints a `RESULT` line.
fn run(kind: Kind, load: Duration) {
    let _one_at_a_time = serial();
    let seed = seed();
    let opts = cluster_options("", "");
    let (mut c, spare) = if kind == Kind::Membership {
        // Node 4 is configured (ports, dir) but starts outside the cluster.
        let mut c = TestCluster::configure(4, opts);
        for id in [1, 2, 3] {
            c.write_config(id, &[1, 2, 3], false);
        }
        for id in [1, 2, 3] {
            c.start_node(id);
        }
        (c, Some(4))
    } else {
        (TestCluster::start(3, opts), None)
    };
    let members = vec![1, 2, 3];
    wait_leaders(&c, &members, Duration::from_secs(30));

    let ports = c.ports_of(&c.ids());
    let mut wl = Workload::start(
        ports,
        Topology::two_cores(),
        WorkloadOptions {
            prefix: kind.name().to_string(),
            seed,
            ..WorkloadOptions::default()
        },
    );
    wl.wait_for_progress(50, Duration::from_secs(30), "operations before the faults");
    let started = Instant::now();
    let mut nemesis = Nemesis::new(kind, members, spare, seed);
    nemesis.run(&mut c, &wl, started + load);
    let faulty = started.elapsed();
    nemesis.heal(&mut c, &wl);
    wl.wait_for_progress(50, Duration::from_secs(30), "operations after healing");
    let summary = wl.stop();

    let members = nemesis.members().to_vec();
    wait_leaders(&c, &members, Duration::from_secs(30));
    c.wait_converged();
    let finals = wl.final_reads(&c.ports_of(&members), Duration::from_secs(60));
    let history = wl.history();
    // Compactions since each member's last start (informative: snapshot paths were used).
    let compactions: u64 = members
        .iter()
        .filter_map(|&id| info_field(&c.try_info(id, "stats")?, "wal_compactions"))
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    let checked = Instant::now();
    let report = check(&history);
    let check_time = checked.elapsed();

    if std::env::var_os("LEASEKV_NEMESIS_VERBOSE").is_some() {
        eprintln!(
            "faults of the {} run:\n{}",
            kind.name(),
            nemesis.log.render(None, 0)
        );
    }
    let verdict = if report.is_ok() {
        "linearizable"
    } else if report.violations().next().is_some() {
        "NOT-LINEARIZABLE"
    } else {
        "UNKNOWN"
    };
    eprintln!(
        "RESULT nemesis={} secs={} ops={} ok={} failed={} indeterminate={} faults={} keys={} compactions={compactions} verdict={verdict} check={:.1}s seed={seed}",
        kind.name(),
        faulty.as_secs(),
        summary.ops,
        summary.ok,
        summary.failed,
        summary.indeterminate,
        nemesis.log.faults,
        report.keys.len(),
        check_time.as_secs_f64(),
    );
    if !report.is_ok() {
        panic!(
            "{}\nfaults near the violations:\n{}",
            report,
            faults_near(&report, &nemesis.log)
        );
    }
    // Every node serves the same final value (the checker also placed each one).
    for (key, seen) in &finals {
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "nodes {members:?} disagree on the final value of {key}: {seen:?}"
        );
    }
    assert_eq!(
        summary.unexpected,
        0,
        "replies no correct server sends: {:?}",
        wl.counts().unexpected_samples()
    );
    assert!(nemesis.log.faults > 0, "the nemesis injected no fault");
    assert!(
        summary.gets_ok > 0 && summary.writes_ok > 0,
        "no successful reads or writes: {summary:?}"
    );
}

/// The fault log around the violations' windows (2 s either side).
fn faults_near(report: &Report, log: &FaultLog) -> String {
    let mut out = String::new();
    for v in report.violations() {
        let from = v.window.iter().map(|o| o.call).min().unwrap_or(0);
        let to = v
            .window
            .iter()
            .map(|o| o.ret.unwrap_or(o.call))
            .max()
            .unwrap_or(from);
        out.push_str(&log.render(Some((from, to)), 2_000_000_000));
    }
    if out.is_empty() {
        out = log.render(None, 0);
    }
    out
}

fn ci_load() -> Duration {
    env_secs("LEASEKV_NEMESIS_SECS", 15)
}

fn soak_load() -> Duration {
    env_secs("LEASEKV_SOAK_SECS", 600)
}

// ------------------------------------------------------------------------------ CI profile

#[test]
fn pause_nemesis_keeps_history_linearizable() {
    run(Kind::Pause, ci_load());
}

#[test]
fn kill_nemesis_keeps_history_linearizable() {
    run(Kind::Kill, ci_load());
}

#[test]
fn isolate_nemesis_keeps_history_linearizable() {
    run(Kind::Isolate, ci_load());
}

#[test]
fn transfer_nemesis_keeps_history_linearizable() {
    run(Kind::Transfer, ci_load());
}

#[test]
fn membership_nemesis_keeps_history_linearizable() {
    run(Kind::Membership, ci_load());
}

#[test]
fn conflict_burst_nemesis_keeps_history_linearizable() {
    run(Kind::Burst, ci_load());
}

// ---------------------------------------------------------------------------- soak profile

#[test]
#[ignore = "soak run: LEASEKV_SOAK_SECS (default 600) of faults; see tests/soak.sh"]
fn soak_pause() {
    run(Kind::Pause, soak_load());
}

#[test]
#[ignore = "soak run: LEASEKV_SOAK_SECS (default 600) of faults; see tests/soak.sh"]
fn soak_kill() {
    run(Kind::Kill, soak_load());
}

#[test]
#[ignore = "soak run: LEASEKV_SOAK_SECS (default 600) of faults; see tests/soak.sh"]
fn soak_isolate() {
    run(Kind::Isolate, soak_load());
}

#[test]
#[ignore = "soak run: LEASEKV_SOAK_SECS (default 600) of faults; see tests/soak.sh"]
fn soak_transfer() {
    run(Kind::Transfer, soak_load());
}

#[test]
#[ignore = "soak run: LEASEKV_SOAK_SECS (default 600) of faults; see tests/soak.sh"]
fn soak_membership() {
    run(Kind::Membership, soak_load());
}

#[test]
#[ignore = "soak run: LEASEKV_SOAK_SECS (default 600) of faults; see tests/soak.sh"]
fn soak_burst() {
    run(Kind::Burst, soak_load());
}

// ------------------------------------------------------------- the harness sees the bug

/// What one run of the transfer-then-deafen scenario produced.
struct Scenario {
    report: Report,
    /// Writes acknowledged by the new leader while the old one was deaf.
    writes_after: usize,
    /// Reads the old leader answered with a value after the transfer started.
    reads_answered: usize,
    logs_warn: bool,
}

/// Leader L of group 0 goes deaf (`ISOLATE in`: it still sends, hears nothing) and then
/// starts a transfer to F: its `MsgTimeoutNow` leaves, F is elected with the third node's
/// vote, and L never hears of it. Clients keep reading through L and writing through F.
/// Rule 6 ends L's lease when the transfer starts; with the rule off, L keeps serving reads
/// from its old lease while F commits new writes: stale reads the checker must report.
///
/// Timing: a 1 s election timeout and a 900 ms lease, so the new leader's writes land well
/// inside the old lease even on a loaded machine.
fn transfer_then_deafen(rule6_off: bool) -> Scenario {
    let extra = if rule6_off {
        "unsafe_disable_lease_rule = 6"
    } else {
        ""
    };
    let mut c = TestCluster::start(
        3,
        ClusterOptions {
            election_ticks: 100,
            ..cluster_options(extra, "lease_ms = 900\nbalance_leaders = false")
        },
    );
    let ids = c.ids();
    let g = 0;
    let l = wait_leaders(&c, &ids, Duration::from_secs(30))[g];
    let f = *ids.iter().find(|&&i| i != l).expect("a follower");
    let rest: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
    let key = common::workload::KeyPlan::new("unsafe", Topology::two_cores()).special("k", g);
    let rec = Recorder::new();
    let counts = Counts::default();
    let timeout = Duration::from_secs(3);

    // v1, acknowledged by L, then wait until every node applied it (so L has F's ack and
    // sends MsgTimeoutNow at once).
    let mut to_l = Client::new(vec![c.client_port(l)], 0, timeout);
    let v1 = set_value(1);
    common::wait_until(Duration::from_secs(20), "the first write", || {
        matches!(
            to_l.run(&rec, &counts, 0, &key, Input::set(v1.clone())),
            Done::Ok(_)
        )
        .then_some(())
    });
    c.wait_converged();

    debug_isolate(&c, l, "in");
    let reply = admin(&c, l, &["TRANSFER", &g.to_string(), &f.to_string()])
        .unwrap_or_else(|e| panic!("TRANSFER {g} to {f} via {l}: {e}"));
    assert!(reply.starts_with("OK transferring"), "{reply}");

    // 1.5 s: readers on L, one writer through F (then the third node).
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (rec, stop, key) = (rec.clone(), stop.clone(), key.clone());
            let port = c.client_port(l);
            thread::spawn(move || {
                let counts = Counts::default();
                let mut client = Client::new(vec![port], 0, timeout);
                let mut answered = 0;
                while !stop.load(Ordering::Relaxed) {
                    match client.run(&rec, &counts, 10 + r, &key, Input::Get) {
                        Done::Ok(_) => answered += 1,
                        _ => thread::sleep(Duration::from_millis(5)),
                    }
                }
                answered
            })
        })
        .collect();
    let writer = {
        let (rec, stop, key) = (rec.clone(), stop.clone(), key.clone());
        let ports = c.ports_of(&rest);
        thread::spawn(move || {
            let counts = Counts::default();
            let mut client = Client::new(ports, 0, timeout);
            let mut acked = 0;
            let mut n = 2;
            while !stop.load(Ordering::Relaxed) {
                match client.run(&rec, &counts, 20, &key, Input::set(set_value(n))) {
                    Done::Ok(_) => acked += 1,
                    _ => thread::sleep(Duration::from_millis(5)),
                }
                n += 1;
            }
            acked
        })
    };
    thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let reads_answered: usize = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    let writes_after = writer.join().expect("writer");

    debug_isolate(&c, l, "off");
    wait_leaders(&c, &ids, Duration::from_secs(30));
    c.wait_converged();
    // Final reads through every node, recorded like the rest.
    for (n, &id) in ids.iter().enumerate() {
        let mut client = Client::new(vec![c.client_port(id)], 0, timeout);
        common::wait_until(Duration::from_secs(20), "a final read", || {
            matches!(
                client.run(&rec, &counts, 30 + n as u64, &key, Input::Get),
                Done::Ok(_)
            )
            .then_some(())
        });
    }
    let logs_warn = c
        .all_logs()
        .contains("UNSAFE: lease rule 6 is switched off");
    Scenario {
        report: check(&rec.history()),
        writes_after,
        reads_answered,
        logs_warn,
    }
}

/// The checker must report the stale reads that switching lease rule 6 off lets through
/// (retried a bounded number of times in case the machine was too slow for the window),
/// and the same scenario with the rule on must pass.
#[test]
fn checker_reports_the_stale_reads_of_a_lease_that_ignores_transfers() {
    let _one_at_a_time = serial();
    let mut caught = None;
    for attempt in 1..=3 {
        let s = transfer_then_deafen(true);
        assert!(s.logs_warn, "the unsafe switch must be logged loudly");
        eprintln!(
            "rule 6 off, attempt {attempt}: {} writes acknowledged after the transfer, {} reads answered by the old leader\n{}",
            s.writes_after, s.reads_answered, s.report
        );
        if s.report.violations().next().is_some() {
            caught = Some(s.report);
            break;
        }
    }
    let report = caught.expect("the checker never saw the stale reads of the unsafe lease");
    let v = report.violations().next().expect("a violation");
    assert!(v.explanation.contains("stale") || v.prefix.is_some(), "{v}");

    let safe = transfer_then_deafen(false);
    eprintln!(
        "rule 6 on: {} writes acknowledged after the transfer, {} reads answered by the old leader\n{}",
        safe.writes_after, safe.reads_answered, safe.report
    );
    assert!(!safe.logs_warn);
    assert!(safe.writes_after > 0, "the new leader took no writes");
    assert!(safe.report.is_ok(), "{}", safe.report);
}

// ------------------------------------------------------------------- hooks and helpers

#[test]
fn transfer_command_moves_leadership_and_rejects_bad_requests() {
    let _one_at_a_time = serial();
    let c = TestCluster::start(3, cluster_options("", "balance_leaders = false"));
    let ids = c.ids();
    let g = 1;
    let l = wait_leaders(&c, &ids, Duration::from_secs(30))[g];
    let to = *ids.iter().find(|&&i| i != l).expect("another node");
    let other = *ids
        .iter()
        .find(|&&i| i != l && i != to)
        .expect("a third node");
    let gs = g.to_string();

    let e = admin(&c, other, &["TRANSFER", &gs, &to.to_string()]).expect_err("not leader");
    assert!(
        e.contains("does not lead shard group 1") && e.contains(&format!("node {l}")),
        "{e}"
    );
    let e = admin(&c, l, &["TRANSFER", &gs, &l.to_string()]).expect_err("self");
    assert!(e.contains("already leads"), "{e}");
    let e = admin(&c, l, &["TRANSFER", &gs, "9"]).expect_err("not a voter");
    assert!(e.contains("node 9 is not a voter of shard group 1"), "{e}");
    let e = admin(&c, l, &["TRANSFER", "99", &to.to_string()]).expect_err("bad group");
    assert!(e.contains("group must be an integer"), "{e}");
    let e = admin(&c, l, &["TRANSFER", &gs, "zero"]).expect_err("bad id");
    assert!(e.contains("node id must be an integer"), "{e}");
    let e = admin(&c, l, &["TRANSFER", &gs]).expect_err("arity");
    assert!(e.contains("wrong number of arguments"), "{e}");
    let mut con = common::workload::connect(c.client_port(l), Duration::from_secs(5)).unwrap();
    let e = redis::cmd("LEASEKV.DEBUG")
        .arg("ISOLATE")
        .arg("sideways")
        .query::<()>(&mut con)
        .expect_err("bad mode");
    assert!(common::err_text(&e).contains("ISOLATE on|in|off"), "{e}");

    let reply = admin(&c, l, &["TRANSFER", &gs, &to.to_string()]).expect("transfer");
    assert_eq!(
        reply,
        format!("OK transferring shard group 1 from node {l} to node {to}")
    );
    common::wait_until(Duration::from_secs(10), "the transfer", || {
        (wait_leaders(&c, &ids, Duration::from_secs(10))[g] == to).then_some(())
    });
}

#[test]
fn write_errors_count_as_not_applied_only_when_the_server_promises_it() {
    for text in [
        "CLUSTERDOWN shard group 1 has no leader right now (election in progress); retry",
        "TRYAGAIN shard group 2 is not led by this node (leader: node 3)",
        "TRYAGAIN shard group 0 is transferring leadership; retry",
        "TRYAGAIN shard group is changing leader; the write was not applied",
        "TRYAGAIN shard group 3 has no leader on this node (leader: unknown)",
        "TRYAGAIN write lost to a leadership change; it was not applied",
        "TRYAGAIN too many requests are being forwarded to shard leaders; retry",
        "MOVED 1234 127.0.0.1:7001",
    ] {
        assert_eq!(write_error_effect(text), Effect::NotApplied, "{text}");
    }
    for text in [
        "TRYAGAIN write not committed within 1000 ms; it may still be applied",
        "TRYAGAIN the write's outcome is unknown (shard group stopped); it may have been applied",
        "TRYAGAIN the leader of shard group 1 changed while the request was forwarded to it; a write may have been applied",
        "TRYAGAIN no reply from the leader of shard group 1 (node 2) within 1500 ms; a write may still be applied",
        "TRYAGAIN server is shutting down",
        "TRYAGAIN cross-core request did not complete within 2000 ms",
        "ERR WAL sync failed on core 0: boom",
        "ERR undecodable reply from the leader: x",
        "TRYAGAIN something new",
    ] {
        assert_eq!(write_error_effect(text), Effect::MaybeApplied, "{text}");
    }
    assert_eq!(set_value(1), "1000000000");
    assert_eq!(set_value(2), "2000000000");
}

#[test]
fn the_checker_verdict_of_a_recorded_stale_read_names_it() {
    // The pipeline from recorder to report, without a cluster: v1, then v2 acknowledged,
    // then a read of v1 must be reported with its window.
    let rec = Recorder::new();
    rec.invoke(1, "k", Input::set("1000000000"))
        .ok(linearizability::Output::Set);
    rec.invoke(1, "k", Input::set("2000000000"))
        .ok(linearizability::Output::Set);
    rec.invoke(2, "k", Input::Get)
        .ok(linearizability::Output::found("1000000000"));
    let report = check(&rec.history());
    match report.verdict(b"k") {
        Some(Verdict::NotLinearizable(v)) => {
            assert!(v.explanation.contains("stale"), "{v}");
            assert_eq!(v.window.len(), 3, "{v}");
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

/// Found by the fault tests: a leader that goes deaf with a write pending (replicated, not
/// yet committed) is deposed; the new leader commits the write and compacts its log past
/// it; on healing, the old leader installs the new leader's snapshot. The write is in that
/// snapshot, so its client must not be told "not applied" (it was told so, and a read then
/// returned the value of the "failed" write).
#[test]
fn a_write_covered_by_an_installed_snapshot_is_not_reported_as_not_applied() {
    let _one_at_a_time = serial();
    let c = TestCluster::start(
        3,
        ClusterOptions {
            snapshot_log_bytes: 64 * 1024,
            extra_toml: "read_mode = \"lease\"\ndebug_commands = true\n[limits]\nrequest_timeout_ms = 8000\n"
                .into(),
            raft_extra: "balance_leaders = false".into(),
            ..ClusterOptions::default()
        },
    );
    let ids = c.ids();
    let g = 0;
    let l = wait_leaders(&c, &ids, Duration::from_secs(30))[g];
    let rest: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
    let plan = common::workload::KeyPlan::new("snap", Topology::two_cores());
    let key = plan.special("k", g);
    let rec = Recorder::new();
    let counts = Counts::default();
    let timeout = Duration::from_secs(10);
    let mut to_l = Client::new(vec![c.client_port(l)], 0, timeout);
    let first = to_l.run(&rec, &counts, 0, &key, Input::set(set_value(1)));
    assert!(matches!(first, Done::Ok(_)), "{first:?}");

    // The leader hears nothing from now on; its next write is replicated but never acked.
    debug_isolate(&c, l, "in");
    let pending = {
        let (rec, key, port) = (rec.clone(), key.clone(), c.client_port(l));
        thread::spawn(move || {
            Client::new(vec![port], 0, timeout).run(
                &rec,
                &Counts::default(),
                1,
                &key,
                Input::set(set_value(2)),
            )
        })
    };
    // The others elect a leader once the deaf one steps down, commit the pending write with
    // their first entry, and write ~400 KB so that they compact past it.
    let fill_key = plan.special("fill", g);
    let big = "x".repeat(2000);
    let mut filled = 0;
    let mut at = 0;
    common::wait_until(
        Duration::from_secs(30),
        "200 writes through the majority",
        || {
            let port = c.client_port(rest[at % rest.len()]);
            let ok = common::workload::connect(port, Duration::from_secs(5))
                .and_then(|mut con| {
                    redis::cmd("SET")
                        .arg(&fill_key)
                        .arg(&big)
                        .query::<()>(&mut con)
                })
                .is_ok();
            if ok {
                filled += 1;
            } else {
                at += 1;
            }
            (filled >= 200).then_some(())
        },
    );
    debug_isolate(&c, l, "off");
    let done = pending.join().expect("pending writer");
    match &done {
        Done::Unknown(text) => assert!(text.contains("snapshot"), "{text}"),
        Done::Ok(_) => {}
        other => panic!("the write is in the installed snapshot, but its client got {other:?}"),
    }
    wait_leaders(&c, &ids, Duration::from_secs(30));
    let mut reader = Client::new(c.ports_of(&rest), 0, timeout);
    common::wait_until(Duration::from_secs(20), "a read", || {
        matches!(reader.run(&rec, &counts, 2, &key, Input::Get), Done::Ok(_)).then_some(())
    });
    let report = check(&rec.history());
    assert!(report.is_ok(), "{report}");
}

/// Found by the membership nemesis: a node rejoining with a fresh data dir may be sent the
/// group's *bootstrap* snapshot (by a leader that never compacted its log; it still names
/// the rejoining node as a voter, so raft-rs accepts it). That snapshot carries no member
/// addresses, so the node knew only the members added later through the log, dropped its
/// transport peers to the original members, and could never catch up or be promoted.
#[test]
fn a_removed_node_rejoins_from_a_leader_that_never_compacted() {
    let _one_at_a_time = serial();
    let mut c = TestCluster::configure(4, cluster_options("", "balance_leaders = false"));
    for id in [1, 2, 3] {
        c.write_config(id, &[1, 2, 3], false);
    }
    c.write_config(4, &[1, 2, 3, 4], true);
    for id in [1, 2, 3] {
        c.start_node(id);
    }
    let lead_all = |c: &TestCluster, to: u64, members: &[u64]| {
        for g in 0..Topology::two_cores().groups {
            common::wait_until(Duration::from_secs(30), "a transfer", || {
                let l = wait_leaders(c, members, Duration::from_secs(30))[g];
                if l != to {
                    let _ = admin(c, l, &["TRANSFER", &g.to_string(), &to.to_string()]);
                    thread::sleep(Duration::from_millis(50));
                }
                (l == to).then_some(())
            });
        }
    };
    let add = |c: &TestCluster, id: u64, via: u64| {
        let raft = format!("127.0.0.1:{}", c.raft_port(id));
        let client = format!("127.0.0.1:{}", c.client_port(id));
        admin(c, via, &["ADDNODE", &id.to_string(), &raft, &client])
            .unwrap_or_else(|e| panic!("ADDNODE {id}: {e}"));
    };
    // Node 2 leads everything when node 4 joins: only node 2 compacts (to send node 4 a
    // snapshot that names it).
    lead_all(&c, 2, &[1, 2, 3]);
    c.start_node(4);
    add(&c, 4, 2);
    common::nemesis::wait_for_voters(&c, &[1, 2, 3, 4], &[1, 2, 3, 4], Duration::from_secs(60));
    admin(&c, 2, &["REMOVENODE", "1"]).expect("REMOVENODE 1");
    common::nemesis::wait_for_voters(&c, &[2, 3, 4], &[2, 3, 4], Duration::from_secs(60));
    c.kill9(1);
    // Node 3 never compacted: its stored snapshot is the bootstrap one, voters [1, 2, 3].
    lead_all(&c, 3, &[2, 3, 4]);
    std::fs::remove_dir_all(c.data_dir(1)).expect("wipe node 1");
    std::fs::create_dir_all(c.data_dir(1)).expect("recreate node 1's data dir");
    c.write_config(1, &[1, 2, 3, 4], true);
    c.start_node(1);
    add(&c, 1, 3);
    common::nemesis::wait_for_voters(&c, &[1, 2, 3, 4], &[1, 2, 3, 4], Duration::from_secs(60));
    // Writes after the rejoin reach node 1 too.
    let mut client = Client::new(c.ports_of(&[2, 3, 4]), 0, Duration::from_secs(5));
    let rec = Recorder::new();
    let counts = Counts::default();
    let plan = common::workload::KeyPlan::new("rejoin", Topology::two_cores());
    for g in 0..4 {
        let key = plan.special("k", g);
        common::wait_until(Duration::from_secs(20), "a write", || {
            matches!(
                client.run(&rec, &counts, 0, &key, Input::set(set_value(g as u64 + 1))),
                Done::Ok(_)
            )
            .then_some(())
        });
    }
    c.wait_converged();
}
