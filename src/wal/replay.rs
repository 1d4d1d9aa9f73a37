//! Replay: rebuilds each group's Raft state from its snapshot file and the WAL records, in
//! log order. Pure, no I/O.
//!
//! Per group the state is a snapshot index (the "floor", 0 without a snapshot), the last
//! HardState, and the entries above the floor.
//! Invariant: the held entries are contiguous and, when present, start at `floor + 1`.
//! Rules:
//! * Entries record with first index `f`: `f > last + 1` (last = last held index, or the
//!   floor when nothing is held) is a gap -> error. Otherwise every held entry with index
//!   `>= f` is dropped (Raft log overwrite), then the record's entries above the floor are
//!   appended.
//! * HardState record: the last one wins.
//! * Snapshot record (log replaced by a snapshot at index `m`): all held entries are
//!   dropped. `m` must not exceed the floor, because the snapshot file is always made durable
//!   before the record is written.

use std::collections::BTreeMap;

use raft::eraftpb::{Entry, HardState, Snapshot};

use super::record::Record;
use super::RecoveredGroup;

/// Index bounds of one group's log: what the writer tracks to refuse appends that replay
/// would reject later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogBounds {
    /// Index of the durable snapshot (0 if none).
    pub snapshot_index: u64,
    /// Last log index, `>= snapshot_index`.
    pub last_index: u64,
}

impl LogBounds {
    /// Applies an append of the contiguous range `first..=last` with the replay rule.
    pub fn append(&mut self, first: u64, last: u64) -> Result<(), String> {
        check_gap(first, self.last_index)?;
        self.last_index = last.max(self.snapshot_index);
        Ok(())
    }

    /// The log was replaced by a snapshot at `index`.
    pub fn reset(&mut self, index: u64) {
        self.snapshot_index = index;
        self.last_index = index;
    }
}

fn check_gap(first: u64, last: u64) -> Result<(), String> {
    if first > last.saturating_add(1) {
        return Err(format!(
            "gap in log: entries start at {first} but the log ends at {last}"
        ));
    }
    Ok(())
}

#[derive(Default)]
struct GroupReplay {
    snapshot: Option<Snapshot>,
    floor: u64,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    seen_record: bool,
}

/// Replay state for all groups of one core.
#[derive(Default)]
pub struct Replay {
    groups: BTreeMap<u32, GroupReplay>,
}

impl Replay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the group's snapshot file. Must come before any record of the group.
    pub fn add_snapshot(&mut self, group: u32, snapshot: Snapshot) -> Result<(), String> {
        let g = self.groups.entry(group).or_default();
        if g.snapshot.is_some() || g.seen_record {
            return Err(format!(
                "group {group}: snapshot loaded twice or after records"
            ));
        }
        g.floor = snapshot.get_metadata().index;
        g.snapshot = Some(snapshot);
        Ok(())
    }

    /// Applies one record. An error means the log is inconsistent (not merely torn).
    pub fn apply(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Entries { group, entries } => {
                let g = self.groups.entry(group).or_default();
                g.seen_record = true;
                apply_entries(g, entries).map_err(|e| format!("group {group}: {e}"))
            }
            Record::HardState { group, hard_state } => {
                let g = self.groups.entry(group).or_default();
                g.seen_record = true;
                g.hard_state = Some(hard_state);
                Ok(())
            }
            Record::Snapshot { group, metadata } => {
                let g = self.groups.entry(group).or_default();
                g.seen_record = true;
                if metadata.index > g.floor {
                    return Err(format!(
                        "group {group}: log replaced by snapshot {} but the snapshot file is at {}",
                        metadata.index, g.floor
                    ));
                }
                g.entries.clear();
                Ok(())
            }
        }
    }

    /// The recovered state. A HardState commit below the snapshot index (the snapshot
    /// became durable before the HardState that acknowledged it) is raised to the snapshot
    /// index: a snapshot only ever holds committed entries, and raft-rs refuses a commit
    /// index below its first log index.
    pub fn finish(self) -> BTreeMap<u32, RecoveredGroup> {
        self.groups
            .into_iter()
            .map(|(group, g)| {
                let hard_state = g.hard_state.map(|mut hs| {
                    hs.commit = hs.commit.max(g.floor);
                    hs
                });
                let recovered = RecoveredGroup {
                    snapshot: g.snapshot,
                    hard_state,
                    entries: g.entries,
                };
                (group, recovered)
            })
            .collect()
    }
}

fn apply_entries(g: &mut GroupReplay, entries: Vec<Entry>) -> Result<(), String> {
    let Some(first) = entries.first().map(|e| e.index) else {
        return Ok(());
    };
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index.wrapping_add(1) {
            return Err(format!(
                "entries not contiguous: {} follows {}",
                pair[1].index, pair[0].index
            ));
        }
    }
    let last = g.entries.last().map_or(g.floor, |e| e.index);
    check_gap(first, last)?;
    if let Some(held_first) = g.entries.first().map(|e| e.index) {
        // Keep held entries below `first`; held entries are contiguous from held_first.
        let keep = first.saturating_sub(held_first);
        g.entries
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
    }
    let floor = g.floor;
    g.entries
        .extend(entries.into_iter().filter(|e| e.index > floor));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::SnapshotMetadata;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Record {
        Record::Entries {
            group: 1,
            entries: range.map(|i| entry(i, term)).collect(),
        }
    }

    fn snapshot(index: u64, term: u64) -> Snapshot {
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.data = b"state".to_vec().into();
        s
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote: 1,
            commit,
            ..Default::default()
        }
    }

    /// (index, term) pairs of group 1.
    fn log_of(r: &RecoveredGroup) -> Vec<(u64, u64)> {
        r.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn overwrite_truncates_the_held_suffix() {
        let mut r = Replay::new();
        r.apply(entries(1..=5, 1)).unwrap();
        r.apply(entries(6..=7, 1)).unwrap();
        r.apply(entries(4..=5, 2)).unwrap(); // leader change overwrote 4..=7
        r.apply(entries(6..=6, 2)).unwrap();
        let out = r.finish();
        assert_eq!(
            log_of(&out[&1]),
            vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
        );
    }

    #[test]
    fn overwrite_from_the_first_index_replaces_everything() {
        let mut r = Replay::new();
        r.apply(entries(1..=3, 1)).unwrap();
        r.apply(entries(1..=1, 5)).unwrap();
        assert_eq!(log_of(&r.finish()[&1]), vec![(1, 5)]);
    }

    #[test]
    fn entries_at_or_below_the_snapshot_are_dropped() {
        let mut r = Replay::new();
        r.add_snapshot(1, snapshot(10, 3)).unwrap();
        r.apply(entries(4..=12, 3)).unwrap(); // older log still around
        r.apply(entries(13..=13, 4)).unwrap();
        let out = r.finish();
        assert_eq!(log_of(&out[&1]), vec![(11, 3), (12, 3), (13, 4)]);
        assert_eq!(out[&1].snapshot, Some(snapshot(10, 3)));
    }

    #[test]
    fn a_rewrite_below_the_snapshot_still_truncates_held_entries() {
        // Log order: 1..=20, then an overwrite at 8 (before the snapshot at 10 was taken),
        // then new entries. The overwrite must discard 11..=20 of the old term.
        let mut r = Replay::new();
        r.add_snapshot(1, snapshot(10, 2)).unwrap();
        r.apply(entries(1..=20, 1)).unwrap();
        r.apply(entries(8..=9, 2)).unwrap();
        r.apply(entries(10..=12, 2)).unwrap();
        assert_eq!(log_of(&r.finish()[&1]), vec![(11, 2), (12, 2)]);
    }

    #[test]
    fn gaps_are_corruption() {
        let mut r = Replay::new();
        r.apply(entries(1..=3, 1)).unwrap();
        assert!(r.apply(entries(5..=6, 1)).unwrap_err().contains("gap"));

        let mut r = Replay::new();
        assert!(r.apply(entries(2..=3, 1)).is_err(), "log must start at 1");

        let mut r = Replay::new();
        r.add_snapshot(1, snapshot(10, 1)).unwrap();
        r.apply(entries(11..=11, 1)).unwrap(); // right after the snapshot: fine
        assert!(r.apply(entries(13..=13, 1)).is_err());

        let mut r = Replay::new();
        let bad = Record::Entries {
            group: 1,
            entries: vec![entry(1, 1), entry(3, 1)],
        };
        assert!(r.apply(bad).unwrap_err().contains("contiguous"));
    }

    #[test]
    fn last_hard_state_wins_and_commit_is_raised_to_the_snapshot() {
        let mut r = Replay::new();
        r.add_snapshot(1, snapshot(10, 2)).unwrap();
        r.apply(Record::HardState {
            group: 1,
            hard_state: hs(2, 9),
        })
        .unwrap();
        r.apply(Record::HardState {
            group: 1,
            hard_state: hs(3, 4),
        })
        .unwrap();
        r.apply(Record::HardState {
            group: 2,
            hard_state: hs(7, 0),
        })
        .unwrap();
        let out = r.finish();
        assert_eq!(out[&1].hard_state, Some(hs(3, 10)));
        assert_eq!(out[&2].hard_state, Some(hs(7, 0)));
        assert_eq!(out[&2].snapshot, None);
    }

    #[test]
    fn snapshot_record_discards_the_previous_log() {
        let mut r = Replay::new();
        r.add_snapshot(1, snapshot(50, 4)).unwrap();
        r.apply(entries(51..=60, 3)).unwrap(); // stale entries of an old leader
        let meta = SnapshotMetadata {
            index: 50,
            term: 4,
            ..Default::default()
        };
        r.apply(Record::Snapshot {
            group: 1,
            metadata: meta.clone(),
        })
        .unwrap();
        r.apply(entries(51..=52, 4)).unwrap();
        assert_eq!(log_of(&r.finish()[&1]), vec![(51, 4), (52, 4)]);

        // A record naming a snapshot newer than the file means the file was lost.
        let mut r = Replay::new();
        r.add_snapshot(1, snapshot(40, 4)).unwrap();
        assert!(r
            .apply(Record::Snapshot {
                group: 1,
                metadata: meta
            })
            .is_err());
    }

    #[test]
    fn groups_are_independent() {
        let mut r = Replay::new();
        for i in 1..=5u64 {
            for g in [3u32, 1, 2] {
                r.apply(Record::Entries {
                    group: g,
                    entries: vec![entry(i, u64::from(g))],
                })
                .unwrap();
            }
        }
        let out = r.finish();
        assert_eq!(out.len(), 3);
        for (g, rec) in &out {
            assert_eq!(
                log_of(rec),
                (1..=5).map(|i| (i, u64::from(*g))).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn snapshot_must_precede_records() {
        let mut r = Replay::new();
        r.apply(entries(1..=1, 1)).unwrap();
        assert!(r.add_snapshot(1, snapshot(5, 1)).is_err());
    }

    #[test]
    fn bounds_follow_the_replay_rule() {
        let mut b = LogBounds::default();
        b.append(1, 5).unwrap();
        assert_eq!(b.last_index, 5);
        b.append(3, 3).unwrap();
        assert_eq!(b.last_index, 3);
        assert!(b.append(5, 6).is_err());
        b.reset(20);
        assert!(b.append(22, 22).is_err());
        b.append(10, 15).unwrap(); // all below the snapshot
        assert_eq!(b.last_index, 20);
        b.append(21, 21).unwrap();
        assert_eq!(b.last_index, 21);
    }
}
