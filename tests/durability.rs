//! Durability of the real binary: crash (kill -9) under load, damaged WAL tails, graceful
//! restarts with TTLs, and restarts after many snapshot compactions.
//!
//! The crash and graceful-restart tests also run against redis-server (AOF, fsync always) with
//! `LEASEKV_TEST_AGAINST_REDIS=1`; the WAL and snapshot tests look inside leasekv's data dir.

mod common;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::wal::{newest_segment_with_records, snapshots};
use common::{q, qv, unix_ms, wait_until, Server, ServerOptions, Topology};
use redis::Value;

/// What one writer thread knows after the crash: per key, the sequence number of the last
/// acknowledged SET and of the last attempted one (an attempt may have landed without its ack).
#[derive(Default)]
struct WriterLog {
    acked: HashMap<String, u64>,
    attempted: HashMap<String, u64>,
}

fn value_of(thread: usize, seq: u64) -> String {
    format!("t{thread}-s{seq}")
}

/// Writes unique values round-robin over `keys` until the connection fails (the server was
/// killed) or `deadline`.
fn writer(
    thread: usize,
    mut con: redis::Connection,
    keys: Vec<String>,
    acks: Arc<Vec<AtomicUsize>>,
    deadline: Instant,
) -> WriterLog {
    let mut log = WriterLog::default();
    for seq in 0u64.. {
        if Instant::now() >= deadline {
            break;
        }
        let key = &keys[seq as usize % keys.len()];
        log.attempted.insert(key.clone(), seq);
        let res: redis::RedisResult<Value> = redis::cmd("SET")
            .arg(key)
            .arg(value_of(thread, seq))
            .query(&mut con);
        match res {
            Ok(Value::Okay) => {
                log.acked.insert(key.clone(), seq);
                acks[thread].fetch_add(1, Ordering::Relaxed);
            }
            Ok(other) => panic!("SET {key} replied {other:?}"),
            // The server died under us: stop, the in-flight write is "attempted".
            Err(_) => break,
        }
    }
    log
}

#[test]
fn acknowledged_writes_survive_kill_9_under_load() {
    let mut s = Server::start_durable();
    let topo = Topology::two_cores();
    // Acknowledged writes per writer thread.
    let acks: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let started = Instant::now();
    // Writers stop on their own if the kill never happens.
    let writer_deadline = started + Duration::from_secs(60);
    let mut handles = Vec::new();
    for t in 0..4 {
        // Every writer covers both cores.
        let mut keys = topo.keys_on_core(0, &format!("crash{t}a"), 20);
        keys.extend(topo.keys_on_core(1, &format!("crash{t}b"), 20));
        let con = s.client();
        let acks = acks.clone();
        handles.push(thread::spawn(move || {
            writer(t, con, keys, acks, writer_deadline)
        }));
    }
    // ~2 s of load, and every writer past its first round over its 40 keys, before the crash.
    wait_until(
        Duration::from_secs(30),
        "2 s of load, 50 acks per writer",
        || {
            let each = acks.iter().all(|a| a.load(Ordering::Relaxed) >= 50);
            (started.elapsed() >= Duration::from_secs(2) && each).then_some(())
        },
    );
    s.kill9();
    let logs: Vec<WriterLog> = handles
        .into_iter()
        .map(|h| h.join().expect("writer thread panicked"))
        .collect();
    let total: usize = logs.iter().map(|l| l.acked.len()).sum();
    assert!(total > 0);

    s.restart();
    let mut c = s.client();
    let mut checked = 0;
    for (t, log) in logs.iter().enumerate() {
        for (key, &attempted) in &log.attempted {
            let got: Option<String> = q(&mut c, &["GET", key]);
            let ok = match (log.acked.get(key), &got) {
                // Acknowledged: that value, or the later attempt that may have landed.
                (Some(&acked), Some(v)) => *v == value_of(t, acked) || *v == value_of(t, attempted),
                (Some(_), None) => false,
                // Never acknowledged: absent, or the attempt landed.
                (None, None) => true,
                (None, Some(v)) => *v == value_of(t, attempted),
            };
            assert!(
                ok,
                "{key}: after restart {got:?}; last ack {:?}, last attempt {}",
                log.acked.get(key).map(|&s| value_of(t, s)),
                value_of(t, attempted)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 160, "every writer touched all its keys");
    // Still writable after recovery.
    assert_eq!(qv(&mut c, &["SET", "after-crash", "1"]), Value::Okay);
    assert_eq!(
        qv(&mut c, &["GET", "after-crash"]),
        Value::BulkString(b"1".to_vec())
    );
}

// ---------------------------------------------------------------- damaged WAL tails

#[derive(Clone, Copy, Debug)]
enum Damage {
    AppendGarbage,
    TruncateMidRecord,
    FlipByteInLastRecord,
}

/// Words one of which a log line about a WAL tail repair is expected to contain.
const REPAIR_WORDS: [&str; 6] = ["repair", "truncat", "corrupt", "torn", "checksum", "crc"];

/// A frame whose checksum is wrong, followed by a partial header: garbage that a reader only
/// rejects by verifying the CRC.
fn garbage() -> Vec<u8> {
    let mut g = Vec::new();
    g.extend_from_slice(&16u32.to_le_bytes());
    g.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    g.push(1);
    g.extend_from_slice(&[0x5a; 16]);
    g.extend_from_slice(&[0xa5; 7]);
    g
}

/// Applies `damage` to the last record of the newest segment of `core_dir`.
fn damage_wal(core_dir: &std::path::Path, damage: Damage) {
    let listing = || {
        std::fs::read_dir(core_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (path, records) = newest_segment_with_records(core_dir).unwrap_or_else(|| {
        panic!(
            "no WAL segment with records in {} after a graceful stop: {:?}",
            core_dir.display(),
            listing()
        )
    });
    let last = *records.last().expect("non-empty");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open segment");
    match damage {
        Damage::AppendGarbage => {
            // At the end of the data (over a zero-filled preallocated tail, if any).
            f.seek(SeekFrom::Start(last.end as u64)).expect("seek");
            f.write_all(&garbage()).expect("write garbage");
        }
        Damage::TruncateMidRecord => {
            let cut = last.start + (last.end - last.start) / 2;
            f.set_len(cut as u64).expect("truncate");
        }
        Damage::FlipByteInLastRecord => {
            // Middle of the payload, or the CRC field when the payload is empty.
            let at = if last.end > last.payload_start {
                last.payload_start + (last.end - last.payload_start) / 2
            } else {
                last.start + 4
            };
            let mut byte = [0u8; 1];
            f.seek(SeekFrom::Start(at as u64)).expect("seek");
            std::io::Read::read_exact(&mut f, &mut byte).expect("read byte");
            f.seek(SeekFrom::Start(at as u64)).expect("seek");
            f.write_all(&[byte[0] ^ 0xff]).expect("flip byte");
        }
    }
    f.sync_all().expect("sync");
}

fn check_values(c: &mut redis::Connection, expected: &HashMap<String, String>) {
    for (k, v) in expected {
        assert_eq!(
            qv(c, &["GET", k]),
            Value::BulkString(v.clone().into_bytes()),
            "key {k}"
        );
    }
}

fn wal_tail_damage(damage: Damage) {
    let mut s = Server::start_default();
    let topo = Topology::two_cores();
    let mut c = s.client();
    let mut expected = HashMap::new();
    for core in 0..2 {
        for (i, k) in topo
            .keys_on_core(core, &format!("w{core}"), 30)
            .into_iter()
            .enumerate()
        {
            let v = format!("value-{core}-{i}");
            assert_eq!(qv(&mut c, &["SET", &k, &v]), Value::Okay);
            expected.insert(k, v);
        }
    }
    // One last write per core: the damaged last record may be this one, so it may be lost.
    let sacrificial: Vec<String> = (0..2)
        .map(|core| topo.keys_on_core(core, &format!("sac{core}"), 1).remove(0))
        .collect();
    for k in &sacrificial {
        assert_eq!(qv(&mut c, &["SET", k, "last"]), Value::Okay);
    }
    drop(c);
    s.terminate();

    for core in 0..2 {
        damage_wal(&s.core_dir(core), damage);
    }
    s.restart();
    s.assert_alive();
    let log = s.current_stderr().to_lowercase();
    assert!(
        REPAIR_WORDS.iter().any(|w| log.contains(w)),
        "{damage:?}: no log line mentions the WAL repair (looked for {REPAIR_WORDS:?})"
    );
    let mut c = s.client();
    check_values(&mut c, &expected);
    for k in &sacrificial {
        let v: Option<String> = q(&mut c, &["GET", k]);
        assert!(v.is_none() || v.as_deref() == Some("last"), "{k} = {v:?}");
    }

    // The repaired log takes new appends that survive another restart.
    for core in 0..2 {
        for k in topo.keys_on_core(core, &format!("post{core}"), 10) {
            let v = format!("post-{k}");
            assert_eq!(qv(&mut c, &["SET", &k, &v]), Value::Okay);
            expected.insert(k, v);
        }
    }
    drop(c);
    s.terminate();
    s.restart();
    check_values(&mut s.client(), &expected);
}

#[test]
fn wal_with_garbage_appended_is_repaired() {
    wal_tail_damage(Damage::AppendGarbage);
}

#[test]
fn wal_truncated_mid_record_is_repaired() {
    wal_tail_damage(Damage::TruncateMidRecord);
}

#[test]
fn wal_with_flipped_byte_in_last_record_is_repaired() {
    wal_tail_damage(Damage::FlipByteInLastRecord);
}

// ---------------------------------------------------------------- graceful restarts

#[test]
fn graceful_restart_preserves_values_and_ttls() {
    let mut s = Server::start_durable();
    let topo = Topology::two_cores();
    let mut c = s.client();
    let per_core = |prefix: &str| -> Vec<String> {
        (0..2)
            .map(|core| topo.keys_on_core(core, prefix, 1).remove(0))
            .collect()
    };
    let (plain, ex, pxat, counter, deleted, short) = (
        per_core("plain"),
        per_core("ex"),
        per_core("pxat"),
        per_core("counter"),
        per_core("deleted"),
        per_core("short"),
    );
    let pxat_at = unix_ms() + 500_000;
    let short_armed = Instant::now();
    for i in 0..2 {
        qv(&mut c, &["SET", &short[i], "s", "PX", "1500"]);
        qv(&mut c, &["SET", &plain[i], "p"]);
        qv(&mut c, &["APPEND", &plain[i], "q"]);
        qv(&mut c, &["SET", &ex[i], "e", "EX", "1000"]);
        qv(
            &mut c,
            &["SET", &pxat[i], "x", "PXAT", &pxat_at.to_string()],
        );
        for _ in 0..5 {
            qv(&mut c, &["INCR", &counter[i]]);
        }
        qv(&mut c, &["SET", &deleted[i], "d"]);
        assert_eq!(qv(&mut c, &["DEL", &deleted[i]]), Value::Int(1));
    }
    drop(c);

    for generation in 0..2 {
        s.terminate();
        if generation == 0 {
            // `short` expires while the server is down (expiry is absolute time).
            let left = Duration::from_millis(1600).saturating_sub(short_armed.elapsed());
            thread::sleep(left);
        }
        s.restart();
        let mut c = s.client();
        for i in 0..2 {
            assert_eq!(
                qv(&mut c, &["GET", &plain[i]]),
                Value::BulkString(b"pq".to_vec())
            );
            assert_eq!(qv(&mut c, &["TTL", &plain[i]]), Value::Int(-1));
            assert_eq!(
                qv(&mut c, &["GET", &ex[i]]),
                Value::BulkString(b"e".to_vec())
            );
            let ttl: i64 = q(&mut c, &["TTL", &ex[i]]);
            assert!((900..=1000).contains(&ttl), "TTL {} = {ttl}", ex[i]);
            let pttl: i64 = q(&mut c, &["PTTL", &pxat[i]]);
            let want = pxat_at as i64 - unix_ms() as i64;
            assert!(
                (want - 5_000..=want + 50).contains(&pttl),
                "PTTL {} = {pttl}, want about {want}",
                pxat[i]
            );
            assert_eq!(
                qv(&mut c, &["GET", &counter[i]]),
                Value::BulkString(b"5".to_vec())
            );
            assert_eq!(qv(&mut c, &["EXISTS", &deleted[i]]), Value::Int(0));
            assert_eq!(qv(&mut c, &["GET", &short[i]]), Value::Nil);
            assert_eq!(qv(&mut c, &["TTL", &short[i]]), Value::Int(-2));
        }
    }
}

#[test]
fn sigint_is_a_graceful_shutdown_too() {
    let mut s = Server::start_durable();
    let topo = Topology::two_cores();
    let mut c = s.client();
    let keys: Vec<String> = (0..2)
        .flat_map(|core| topo.keys_on_core(core, "int", 5))
        .collect();
    for k in &keys {
        assert_eq!(qv(&mut c, &["SET", k, &format!("v-{k}")]), Value::Okay);
    }
    drop(c);
    s.graceful_stop(libc::SIGINT);
    s.restart();
    let mut c = s.client();
    for k in &keys {
        assert_eq!(
            qv(&mut c, &["GET", k]),
            Value::BulkString(format!("v-{k}").into_bytes())
        );
    }
}

// ---------------------------------------------------------------- snapshots and compaction

#[test]
fn restart_after_many_compactions_keeps_everything() {
    let mut s = Server::start(ServerOptions::with_config(
        "[raft]\nsnapshot_log_bytes = 65536\n",
    ));
    let topo = Topology::two_cores();
    let mut keys = Vec::new();
    for g in 0..topo.groups {
        keys.extend(topo.keys_in_group(g, &format!("snap{g}"), 100));
    }
    let counters: Vec<String> = (0..topo.groups)
        .map(|g| topo.keys_in_group(g, &format!("ctr{g}"), 1).remove(0))
        .collect();
    let mut model: HashMap<String, Option<String>> = HashMap::new();
    let mut counts = vec![0i64; counters.len()];
    let mut c = s.client();
    // ~4000 writes of ~300-byte values: about 1.2 MB of log, i.e. ~300 KB per group, several
    // times the 64 KiB compaction threshold.
    for round in 0..40 {
        let mut pipe = redis::pipe();
        for i in 0..100usize {
            let n = round * 100 + i;
            let k = &keys[(n * 13) % keys.len()];
            if n % 11 == 0 {
                pipe.cmd("DEL").arg(k).ignore();
                model.insert(k.clone(), None);
            } else if n % 7 == 0 {
                let g = n % counters.len();
                pipe.cmd("INCR").arg(&counters[g]).ignore();
                counts[g] += 1;
            } else {
                let v = format!("{n:06}-{}", "x".repeat(290));
                pipe.cmd("SET").arg(k).arg(&v).ignore();
                model.insert(k.clone(), Some(v));
            }
        }
        pipe.query::<()>(&mut c).expect("write pipeline");
    }
    drop(c);
    for core in 0..2 {
        let snaps = snapshots(&s.core_dir(core));
        assert!(
            !snaps.is_empty(),
            "no group-*.snap in {} after ~600 KB of writes per core with snapshot_log_bytes = 64 KiB",
            s.core_dir(core).display()
        );
    }

    let verify = |s: &Server, model: &HashMap<String, Option<String>>, counts: &[i64]| {
        let mut c = s.client();
        for (k, v) in model {
            let got: Option<String> = q(&mut c, &["GET", k]);
            assert_eq!(got.as_ref(), v.as_ref(), "key {k}");
        }
        for (k, n) in counters.iter().zip(counts) {
            let got: i64 = q(&mut c, &["GET", k]);
            assert_eq!(got, *n, "counter {k}");
        }
    };
    s.terminate();
    s.restart();
    verify(&s, &model, &counts);

    // More writes on top of the snapshots, then a crash: log replay after a snapshot.
    let mut c = s.client();
    for (i, k) in keys.iter().enumerate().take(50) {
        let v = format!("after-{i}");
        assert_eq!(qv(&mut c, &["SET", k, &v]), Value::Okay);
        model.insert(k.clone(), Some(v));
    }
    drop(c);
    s.kill9();
    s.restart();
    verify(&s, &model, &counts);
}

// ---------------------------------------------------------------- the harness' WAL reader

/// Frames `payload` as a record; `len_counts_type` picks the reading of the `len` field.
fn frame(kind: u8, payload: &[u8], len_counts_type: bool) -> Vec<u8> {
    let len = payload.len() + usize::from(len_counts_type);
    let mut body = vec![kind];
    body.extend_from_slice(payload);
    let mut out = (len as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn wal_reader_finds_the_last_record_under_both_len_readings() {
    for len_counts_type in [false, true] {
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for p in [&b"first"[..], b"", &[7u8; 300][..], b"last record"] {
            starts.push(data.len());
            data.extend(frame(2, p, len_counts_type));
        }
        let end = data.len();
        let recs = common::wal::records(&data).expect("tiles");
        assert_eq!(recs.iter().map(|r| r.start).collect::<Vec<_>>(), starts);
        let last = recs.last().expect("records");
        assert_eq!((last.end, last.payload_start), (end, starts[3] + 9));
        // A zero-filled preallocated tail is not a record.
        data.resize(end + 4096, 0);
        assert_eq!(common::wal::records(&data).expect("tiles").len(), 4);
        // A torn last record does not tile.
        assert!(common::wal::records(&data[..end - 3]).is_none());
    }
}
