//! Micro measurement of the KV state machine — prints numbers, asserts nothing about time.
//!
//! ```sh
//! cargo test --release -p shards --test kv_perf -- --ignored --nocapture
//! ```
//!
//! Applies N SETs (half of them with a TTL), N GETs (both in random key order), a SCAN over everything, then times a
//! snapshot encode, a restore, and a point-in-time copy followed by N more SETs (the writes pay
//! the copy-on-write cost while the copy is alive).

use std::time::{Duration, Instant};

use bytes::Bytes;
use shards::{ExpireSpec, KvState, LogCommand, ReadOp, SetCond, WriteOp};

const N: usize = 500_000;

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key:{i:08}"))
}

fn set(i: usize, value: &Bytes) -> LogCommand {
    LogCommand {
        now_ms: 1_000,
        op: WriteOp::Set {
            key: key(i),
            value: value.clone(),
            cond: SetCond::Always,
            expire: i.is_multiple_of(2).then_some(ExpireSpec::In(3_600_000)),
            get: false,
        },
    }
}

/// 0..n in a fixed pseudo-random order (xorshift Fisher-Yates).
fn shuffled(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn per_op(d: Duration, n: usize) -> String {
    format!("{:?} total, {:.0} ns/op", d, d.as_nanos() as f64 / n as f64)
}

#[test]
#[ignore = "measurement: prints KV apply/read/snapshot timings"]
fn kv_apply_read_snapshot_timings() {
    let value = Bytes::from("v".repeat(32));
    // Commands built up front so only apply is timed.
    let cmds: Vec<LogCommand> = shuffled(N).into_iter().map(|i| set(i, &value)).collect();
    let mut kv = KvState::new();
    let t = Instant::now();
    for c in &cmds {
        kv.apply(c);
    }
    eprintln!("apply {N} SET:        {}", per_op(t.elapsed(), N));

    // Random order, as a cache sees it (insertion order would flatter the access pattern).
    let gets: Vec<ReadOp> = shuffled(N)
        .into_iter()
        .map(|i| ReadOp::Get { key: key(i) })
        .collect();
    let t = Instant::now();
    let mut hits = 0;
    for g in &gets {
        if !matches!(kv.read(g, 1_000), shards::Reply::Nil) {
            hits += 1;
        }
    }
    eprintln!("read {N} GET:         {}", per_op(t.elapsed(), N));
    assert_eq!(hits, N);

    let t = Instant::now();
    let mut cursor = 0u64;
    let mut scanned = 0usize;
    loop {
        let r = kv.read(
            &ReadOp::Scan {
                cursor,
                pattern: None,
                count: 1000,
                type_filter: None,
            },
            1_000,
        );
        let shards::Reply::Array(parts) = r else {
            panic!("scan reply")
        };
        let (shards::Reply::Int(next), shards::Reply::Array(keys)) = (&parts[0], &parts[1]) else {
            panic!("scan reply parts")
        };
        scanned += keys.len();
        cursor = *next as u64;
        if cursor == 0 {
            break;
        }
    }
    eprintln!("SCAN all keys:        {}", per_op(t.elapsed(), scanned));
    assert_eq!(scanned, N);

    let t = Instant::now();
    let bytes = kv.snapshot();
    eprintln!(
        "snapshot encode:      {:?} ({} bytes)",
        t.elapsed(),
        bytes.len()
    );
    let t = Instant::now();
    let back = KvState::restore(&bytes).expect("restore");
    eprintln!("snapshot restore:     {:?}", t.elapsed());
    assert_eq!(back.len(), N);
    let t = Instant::now();
    drop(back);
    eprintln!("drop restored state:  {:?}", t.elapsed());

    let t = Instant::now();
    let copy = kv.clone();
    eprintln!("point-in-time copy:   {:?}", t.elapsed());
    let overwrite: Vec<LogCommand> = shuffled(N)
        .into_iter()
        .map(|i| set(i, &Bytes::from("w")))
        .collect();
    let t = Instant::now();
    for c in &overwrite {
        kv.apply(c);
    }
    eprintln!("apply {N} SET, copy alive: {}", per_op(t.elapsed(), N));
    assert_eq!(copy.len(), N);
    drop(copy);
}
