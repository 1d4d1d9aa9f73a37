//! I/O tests: a real glommio executor on a temporary directory. Crashes are simulated by
//! editing the files the way a crash would leave them.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use glommio::LocalExecutorBuilder;
use raft::eraftpb::{Entry, HardState, Snapshot};

use super::*;

fn run<F: Future<Output = ()>>(f: F) {
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(f);
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("payload-{index}-{term}").into_bytes().into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    let mut s = Snapshot::default();
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    s.data = format!("state-at-{index}").into_bytes().into();
    s
}

fn ids(group: &RecoveredGroup) -> Vec<(u64, u64)> {
    group.entries.iter().map(|e| (e.index, e.term)).collect()
}

fn seg(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    v.sort();
    v
}

async fn reopen(dir: &Path) -> (Wal, Recovery) {
    Wal::open(dir).await.expect("open")
}

#[test]
fn fresh_wal_is_empty_and_recovers_what_was_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core-0");
    run(async {
        let (mut wal, rec) = reopen(&dir).await;
        assert_eq!(rec, Recovery::default());
        assert_eq!(names(&dir), vec![segment_name(1)]);
        assert!(!wal.has_pending());

        wal.append_entries(1, &entries(1..=3, 1));
        wal.append_hard_state(1, &hs(1, 1, 2));
        assert!(wal.has_pending());
        wal.sync().await.unwrap();
        assert!(!wal.has_pending());
        wal.append_entries(1, &entries(4..=5, 1));
        wal.append_hard_state(1, &hs(1, 1, 5));
        wal.sync().await.unwrap();
        wal.sync().await.unwrap(); // nothing pending: a no-op
        assert_eq!(wal.log_bytes(), file_len(&seg(&dir, 1)));
        // Buffered but never synced: not durable, not recovered.
        wal.append_entries(1, &entries(6..=6, 1));
        wal.close().await.unwrap();

        let (wal, rec) = reopen(&dir).await;
        assert_eq!(rec.repaired_tail, None);
        let g = &rec.groups[&1];
        assert_eq!(g.entries, entries(1..=5, 1));
        assert_eq!(g.hard_state, Some(hs(1, 1, 5)));
        assert_eq!(g.snapshot, None);
        assert_eq!(wal.log_bytes(), file_len(&seg(&dir, 1)));
    });
}

/// A straightforward model of what replay must produce.
#[derive(Default)]
struct Model {
    logs: BTreeMap<u32, Vec<Entry>>,
    states: BTreeMap<u32, HardState>,
}

impl Model {
    fn append(&mut self, group: u32, new: &[Entry]) {
        let log = self.logs.entry(group).or_default();
        log.retain(|e| e.index < new[0].index);
        log.extend_from_slice(new);
    }
}

#[test]
fn many_groups_interleaved_with_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let (mut wal, _) = reopen(&dir).await;
        let mut model = Model::default();
        let mut next: BTreeMap<u32, u64> = BTreeMap::new();
        for round in 1..=40u64 {
            for group in (0..16u32).rev() {
                let start = *next.get(&group).unwrap_or(&1);
                // Every 7th round group 5 has its last two entries overwritten by a new term.
                let start = if group == 5 && round % 7 == 0 && start > 2 {
                    start - 2
                } else {
                    start
                };
                let n = 1 + (round + u64::from(group)) % 3;
                let batch = entries(start..=start + n - 1, round);
                wal.append_entries(group, &batch);
                model.append(group, &batch);
                next.insert(group, start + n);
                let state = hs(round, u64::from(group), start);
                wal.append_hard_state(group, &state);
                model.states.insert(group, state);
            }
            wal.sync().await.unwrap();
        }
        wal.close().await.unwrap();

        let (_, rec) = reopen(&dir).await;
        assert_eq!(rec.groups.len(), 16);
        for (group, g) in &rec.groups {
            assert_eq!(&g.entries, &model.logs[group], "group {group}");
            assert_eq!(g.hard_state.as_ref(), model.states.get(group));
        }
    });
}

/// Writes three synced batches to group 1; returns the segment length after each.
async fn three_batches(dir: &Path) -> [u64; 3] {
    let (mut wal, _) = reopen(dir).await;
    let mut lens = [0; 3];
    for (i, len) in lens.iter_mut().enumerate() {
        let base = i as u64 * 10;
        wal.append_entries(1, &entries(base + 1..=base + 10, 1));
        wal.append_hard_state(1, &hs(1, 1, base + 10));
        wal.sync().await.unwrap();
        *len = wal.log_bytes();
    }
    wal.close().await.unwrap();
    lens
}

#[test]
fn torn_tail_is_cut_off_reported_and_the_rest_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let lens = three_batches(&dir).await;
        // A crash while writing the third batch: only part of it reached the disk.
        let torn = lens[1] + 25;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(seg(&dir, 1))
            .unwrap();
        f.set_len(torn).unwrap();

        let (wal, rec) = reopen(&dir).await;
        let repair = rec.repaired_tail.clone().expect("repair reported");
        assert_eq!(repair.file, seg(&dir, 1));
        assert_eq!(repair.offset, lens[1]);
        assert_eq!(repair.dropped_bytes, 25);
        assert_eq!(file_len(&seg(&dir, 1)), lens[1], "file truncated");
        assert_eq!(wal.log_bytes(), lens[1]);
        assert_eq!(rec.groups[&1].entries, entries(1..=20, 1));
        assert_eq!(rec.groups[&1].hard_state, Some(hs(1, 1, 20)));
        wal.close().await.unwrap();

        // The repair is durable: the next open sees a clean log.
        let (_, rec) = reopen(&dir).await;
        assert_eq!(rec.repaired_tail, None);
        assert_eq!(rec.groups[&1].entries, entries(1..=20, 1));
    });
}

#[test]
fn torn_header_and_zero_filled_tail_are_repaired() {
    for garbage in [vec![7u8; 3], vec![0u8; 4096]] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        run(async {
            let lens = three_batches(&dir).await;
            let mut bytes = std::fs::read(seg(&dir, 1)).unwrap();
            bytes.extend_from_slice(&garbage);
            std::fs::write(seg(&dir, 1), &bytes).unwrap();

            let (_, rec) = reopen(&dir).await;
            let repair = rec.repaired_tail.expect("repair reported");
            assert_eq!(repair.offset, lens[2]);
            assert_eq!(repair.dropped_bytes, garbage.len() as u64);
            assert_eq!(rec.groups[&1].entries, entries(1..=30, 1));
        });
    }
}

#[test]
fn crc_flip_in_the_last_record_is_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let lens = three_batches(&dir).await;
        let mut bytes = std::fs::read(seg(&dir, 1)).unwrap();
        // The last record is the third batch's HardState; flip a byte of its payload.
        let last = bytes.len() - 2;
        bytes[last] ^= 0x40;
        std::fs::write(seg(&dir, 1), &bytes).unwrap();

        let (_, rec) = reopen(&dir).await;
        let repair = rec.repaired_tail.expect("repair reported");
        assert!(repair.reason.contains("checksum"), "{}", repair.reason);
        assert!(repair.offset > lens[1] && repair.offset < lens[2]);
        assert_eq!(file_len(&seg(&dir, 1)), repair.offset);
        // The third batch's entries came before the damaged HardState and survive.
        assert_eq!(rec.groups[&1].entries, entries(1..=30, 1));
        assert_eq!(rec.groups[&1].hard_state, Some(hs(1, 1, 20)));
    });
}

#[test]
fn appends_after_a_repair_go_to_a_clean_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let lens = three_batches(&dir).await;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(seg(&dir, 1))
            .unwrap();
        f.set_len(lens[2] - 3).unwrap();

        let (mut wal, rec) = reopen(&dir).await;
        assert!(rec.repaired_tail.is_some());
        // The torn batch held 21..=30 and was never acknowledged; raft re-appends from 21.
        wal.append_entries(1, &entries(21..=22, 2));
        wal.append_hard_state(1, &hs(2, 1, 22));
        wal.sync().await.unwrap();
        wal.close().await.unwrap();

        let (_, rec) = reopen(&dir).await;
        assert_eq!(rec.repaired_tail, None);
        let g = &rec.groups[&1];
        let mut want = entries(1..=20, 1);
        want.extend(entries(21..=22, 2));
        assert_eq!(g.entries, want);
        assert_eq!(g.hard_state, Some(hs(2, 1, 22)));
    });
}

/// Two groups, two synced batches, with an overwrite in group 1. `checkpoints()` is its
/// compacted form (group 1 snapshotted at 15, group 2 without a snapshot).
async fn populate(wal: &mut Wal) {
    wal.append_entries(1, &entries(1..=10, 1));
    wal.append_entries(2, &entries(1..=4, 1));
    wal.append_hard_state(1, &hs(1, 1, 8));
    wal.append_hard_state(2, &hs(1, 2, 4));
    wal.sync().await.unwrap();
    wal.append_entries(1, &entries(9..=20, 2)); // overwrites 9, 10
    wal.append_hard_state(1, &hs(2, 1, 18));
    wal.sync().await.unwrap();
}

fn checkpoints() -> Vec<GroupCheckpoint> {
    vec![
        GroupCheckpoint {
            group: 1,
            snapshot: snapshot(15, 2),
            hard_state: hs(2, 1, 18),
            tail: entries(16..=20, 2),
        },
        GroupCheckpoint {
            group: 2,
            snapshot: Snapshot::default(),
            hard_state: hs(1, 2, 4),
            tail: entries(1..=4, 1),
        },
    ]
}

fn assert_compacted_state(rec: &Recovery) {
    let g1 = &rec.groups[&1];
    assert_eq!(g1.snapshot, Some(snapshot(15, 2)));
    assert_eq!(g1.entries, entries(16..=20, 2));
    assert_eq!(g1.hard_state, Some(hs(2, 1, 18)));
    let g2 = &rec.groups[&2];
    assert_eq!(g2.snapshot, None);
    assert_eq!(g2.entries, entries(1..=4, 1));
    assert_eq!(g2.hard_state, Some(hs(1, 2, 4)));
}

#[test]
fn compaction_then_reopen_with_later_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let (mut wal, _) = reopen(&dir).await;
        populate(&mut wal).await;
        let before = wal.log_bytes();
        wal.compact(checkpoints()).await.unwrap();
        assert_eq!(
            names(&dir),
            vec!["group-1.snap".to_string(), segment_name(2)]
        );
        assert_eq!(wal.log_bytes(), file_len(&seg(&dir, 2)));
        assert!(wal.log_bytes() < before);
        wal.append_entries(1, &entries(21..=22, 3));
        wal.append_hard_state(1, &hs(3, 1, 21));
        wal.sync().await.unwrap();
        wal.close().await.unwrap();

        let (mut wal, rec) = reopen(&dir).await;
        assert_eq!(rec.repaired_tail, None);
        let g1 = &rec.groups[&1];
        assert_eq!(g1.snapshot, Some(snapshot(15, 2)));
        assert_eq!(
            ids(g1),
            vec![
                (16, 2),
                (17, 2),
                (18, 2),
                (19, 2),
                (20, 2),
                (21, 3),
                (22, 3)
            ]
        );
        assert_eq!(g1.hard_state, Some(hs(3, 1, 21)));
        assert_eq!(rec.groups[&2].entries, entries(1..=4, 1));

        // A second compaction keeps the unchanged snapshot and drops segment 2.
        let mut cps = checkpoints();
        cps[0].snapshot = snapshot(20, 2);
        cps[0].tail = vec![entry(21, 3), entry(22, 3)];
        cps[0].hard_state = hs(3, 1, 21);
        wal.compact(cps).await.unwrap();
        assert_eq!(
            names(&dir),
            vec!["group-1.snap".to_string(), segment_name(3)]
        );
        wal.close().await.unwrap();
        let (_, rec) = reopen(&dir).await;
        assert_eq!(rec.groups[&1].snapshot, Some(snapshot(20, 2)));
        assert_eq!(ids(&rec.groups[&1]), vec![(21, 3), (22, 3)]);
    });
}

/// Runs `populate` + compaction; returns a copy of the pre-compaction segment 1.
async fn compacted_with_old_segment_saved(dir: &Path) -> Vec<u8> {
    let (mut wal, _) = reopen(dir).await;
    populate(&mut wal).await;
    let old = std::fs::read(seg(dir, 1)).unwrap();
    wal.compact(checkpoints()).await.unwrap();
    wal.close().await.unwrap();
    old
}

#[test]
fn crash_after_snapshots_before_the_new_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let old = compacted_with_old_segment_saved(&dir).await;
        // State after step 1: new snapshot file, old segment only, a tmp of another group.
        std::fs::remove_file(seg(&dir, 2)).unwrap();
        std::fs::write(seg(&dir, 1), &old).unwrap();
        std::fs::write(dir.join("group-2.snap.tmp"), b"half a snapshot").unwrap();

        let (mut wal, rec) = reopen(&dir).await;
        assert_eq!(rec.repaired_tail, None);
        assert_compacted_state(&rec);
        assert!(!dir.join("group-2.snap.tmp").exists(), "tmp deleted");

        // Appends go to the old segment and compaction can be redone.
        wal.append_entries(1, &entries(21..=21, 2));
        wal.sync().await.unwrap();
        wal.compact(checkpoints_with_21()).await.unwrap();
        wal.close().await.unwrap();
        let (_, rec) = reopen(&dir).await;
        assert_eq!(ids(&rec.groups[&1]).last(), Some(&(21, 2)));
    });
}

fn checkpoints_with_21() -> Vec<GroupCheckpoint> {
    let mut cps = checkpoints();
    cps[0].tail.push(entry(21, 2));
    cps
}

#[test]
fn crash_after_the_new_segment_before_deleting_old_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let old = compacted_with_old_segment_saved(&dir).await;
        std::fs::write(seg(&dir, 1), &old).unwrap();

        let (mut wal, rec) = reopen(&dir).await;
        assert_eq!(rec.repaired_tail, None);
        assert_compacted_state(&rec);
        assert_eq!(
            wal.log_bytes(),
            file_len(&seg(&dir, 1)) + file_len(&seg(&dir, 2))
        );
        // New appends land in segment 2 (the last); the next compaction removes both.
        wal.append_entries(2, &entries(5..=5, 1));
        wal.sync().await.unwrap();
        let mut cps = checkpoints();
        cps[1].tail.push(entry(5, 1));
        wal.compact(cps).await.unwrap();
        assert_eq!(
            names(&dir),
            vec!["group-1.snap".to_string(), segment_name(3)]
        );
        wal.close().await.unwrap();
        let (_, rec) = reopen(&dir).await;
        assert_eq!(rec.groups[&2].entries, entries(1..=5, 1));
    });
}

#[test]
fn crash_while_writing_the_new_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let old = compacted_with_old_segment_saved(&dir).await;
        std::fs::write(seg(&dir, 1), &old).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(seg(&dir, 2))
            .unwrap();
        f.set_len(file_len(&seg(&dir, 2)) / 2).unwrap();

        let (_, rec) = reopen(&dir).await;
        assert!(rec.repaired_tail.is_some());
        assert_compacted_state(&rec);
    });
}

#[test]
fn crash_after_deleting_some_old_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        // Three segments: 1 and 2 survive an interrupted compaction, 3 holds later appends.
        let old = compacted_with_old_segment_saved(&dir).await;
        std::fs::write(seg(&dir, 1), &old).unwrap();
        let (mut wal, _) = reopen(&dir).await;
        wal.append_entries(1, &entries(21..=21, 2));
        wal.sync().await.unwrap();
        let seg1 = std::fs::read(seg(&dir, 1)).unwrap();
        wal.compact(checkpoints_with_21()).await.unwrap();
        wal.close().await.unwrap();
        // Deletion goes newest first, so a crash can leave segment 1 without segment 2.
        std::fs::write(seg(&dir, 1), &seg1).unwrap();

        let (_, rec) = reopen(&dir).await;
        assert_eq!(rec.repaired_tail, None);
        let g1 = &rec.groups[&1];
        assert_eq!(g1.snapshot, Some(snapshot(15, 2)));
        let mut want = entries(16..=20, 2);
        want.push(entry(21, 2));
        assert_eq!(g1.entries, want);
    });
}

#[test]
fn corruption_in_an_older_segment_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let mut old = compacted_with_old_segment_saved(&dir).await;
        let mid = old.len() / 2;
        old[mid] ^= 0x01;
        std::fs::write(seg(&dir, 1), &old).unwrap();
        match Wal::open(&dir).await {
            Err(WalError::Corrupt(msg)) => {
                assert!(msg.contains(&segment_name(1)), "{msg}");
                assert!(msg.contains("non-final"), "{msg}");
            }
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("expected Corrupt, got a recovery"),
        }
        // Nothing was "repaired".
        assert_eq!(std::fs::read(seg(&dir, 1)).unwrap(), old);
    });
}

#[test]
fn damaged_snapshot_file_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        compacted_with_old_segment_saved(&dir).await;
        let path = dir.join("group-1.snap");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        match Wal::open(&dir).await {
            Err(WalError::Corrupt(msg)) => assert!(msg.contains("group-1.snap"), "{msg}"),
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("expected Corrupt, got a recovery"),
        }
    });
}

#[test]
fn index_gap_in_a_checksummed_log_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let (wal, _) = reopen(&dir).await;
        wal.close().await.unwrap();
        // Records with valid checksums but a gap, as a buggy writer could leave them.
        let mut bytes = Vec::new();
        record::encode_entries(&mut bytes, 1, &entries(1..=2, 1)).unwrap();
        record::encode_entries(&mut bytes, 1, &entries(4..=4, 1)).unwrap();
        std::fs::write(seg(&dir, 1), &bytes).unwrap();
        assert!(matches!(Wal::open(&dir).await, Err(WalError::Corrupt(_))));
    });
}

#[test]
fn invalid_appends_fail_the_sync_and_poison() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let (mut wal, _) = reopen(&dir).await;
        wal.append_entries(1, &entries(1..=2, 1));
        wal.sync().await.unwrap();
        let len = wal.log_bytes();
        wal.append_entries(1, &entries(3..=3, 1));
        wal.append_entries(1, &entries(5..=5, 1)); // gap
        assert!(wal.has_pending());
        assert!(matches!(wal.sync().await, Err(WalError::Invalid(_))));
        assert!(matches!(wal.sync().await, Err(WalError::Poisoned(_))));
        assert!(matches!(
            wal.compact(Vec::new()).await,
            Err(WalError::Poisoned(_))
        ));
        assert_eq!(file_len(&seg(&dir, 1)), len, "nothing of the batch written");
        drop(wal);

        let (mut wal, rec) = reopen(&dir).await;
        assert_eq!(rec.groups[&1].entries, entries(1..=2, 1));
        let bad = vec![entry(3, 1), entry(5, 1)]; // not contiguous
        wal.append_entries(1, &bad);
        assert!(matches!(wal.sync().await, Err(WalError::Invalid(_))));
    });
}

#[test]
fn incomplete_or_inconsistent_checkpoints_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let (mut wal, _) = reopen(&dir).await;
        populate(&mut wal).await;
        let before = names(&dir);

        let mut missing = checkpoints();
        missing.pop();
        let mut gap = checkpoints();
        gap[0].tail = entries(17..=20, 2);
        let mut dup = checkpoints();
        dup.push(checkpoints().remove(1));
        for cps in [missing, gap, dup] {
            assert!(matches!(wal.compact(cps).await, Err(WalError::Invalid(_))));
            assert_eq!(names(&dir), before);
        }
        // Still usable: a valid compaction goes through.
        wal.compact(checkpoints()).await.unwrap();
        let mut older = checkpoints();
        older[0].snapshot = snapshot(10, 2);
        older[0].tail = entries(11..=20, 2);
        assert!(matches!(
            wal.compact(older).await,
            Err(WalError::Invalid(_))
        ));
        wal.close().await.unwrap();
        let (_, rec) = reopen(&dir).await;
        assert_compacted_state(&rec);
    });
}

#[test]
fn installed_snapshot_replaces_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let (mut wal, _) = reopen(&dir).await;
        wal.append_entries(3, &entries(1..=30, 1)); // 21..=30 will conflict with the leader
        wal.append_hard_state(3, &hs(1, 0, 20));
        wal.sync().await.unwrap();

        wal.install_snapshot(3, &snapshot(25, 2)).await.unwrap();
        assert!(
            dir.join("group-3.snap").exists(),
            "file durable before the sync"
        );
        wal.append_hard_state(3, &hs(2, 0, 25));
        wal.append_entries(3, &entries(26..=27, 2));
        wal.sync().await.unwrap();
        wal.close().await.unwrap();

        let (mut wal, rec) = reopen(&dir).await;
        let g = &rec.groups[&3];
        assert_eq!(g.snapshot, Some(snapshot(25, 2)));
        assert_eq!(g.entries, entries(26..=27, 2));
        assert_eq!(g.hard_state, Some(hs(2, 0, 25)));

        // An older snapshot is refused; the bounds follow the installed one.
        assert!(matches!(
            wal.install_snapshot(3, &snapshot(20, 2)).await,
            Err(WalError::Invalid(_))
        ));
        wal.append_entries(3, &entries(29..=29, 2));
        assert!(matches!(wal.sync().await, Err(WalError::Invalid(_))));
    });
}

#[test]
fn crash_between_installing_a_snapshot_and_the_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(async {
        let (mut wal, _) = reopen(&dir).await;
        wal.append_entries(3, &entries(1..=10, 1));
        wal.append_hard_state(3, &hs(1, 0, 4));
        wal.sync().await.unwrap();
        wal.install_snapshot(3, &snapshot(8, 1)).await.unwrap();
        drop(wal); // the Snapshot record was never synced

        let (_, rec) = reopen(&dir).await;
        let g = &rec.groups[&3];
        assert_eq!(g.snapshot, Some(snapshot(8, 1)));
        assert_eq!(g.entries, entries(9..=10, 1));
        // Commit raised to the snapshot index so raft accepts the state.
        assert_eq!(g.hard_state, Some(hs(1, 0, 8)));
    });
}

#[test]
fn unknown_files_are_ignored_and_names_are_strict() {
    assert_eq!(classify("wal-00000000000000ff.log"), FileKind::Segment(255));
    assert_eq!(classify("wal-ff.log"), FileKind::Other);
    assert_eq!(classify("wal-00000000000000fg.log"), FileKind::Other);
    assert_eq!(classify("group-7.snap"), FileKind::Snapshot(7));
    assert_eq!(classify("group-07.snap"), FileKind::Other);
    assert_eq!(classify("group-+7.snap"), FileKind::Other);
    assert_eq!(classify("group-7.snap.tmp"), FileKind::Tmp);
    assert_eq!(classify("README"), FileKind::Other);
    assert_eq!(segment_name(1), "wal-0000000000000001.log");
}
