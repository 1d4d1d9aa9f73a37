//! In-memory Raft log of one shard group.
//!
//! The runtime's write-ahead log is the durable copy; this is the copy Raft reads from. The
//! runtime appends a Ready's entries here *before* handing the Ready back to raft-rs
//! (`advance_append_async`), and tells raft-rs they are durable only after the WAL fsync
//! (`on_persist_ready`). raft-rs never counts an entry towards commit before that call, so
//! holding not-yet-durable entries here is safe.

use std::cell::Cell;

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

/// Raft log, HardState and ConfState of one group, plus the latest state-machine snapshot.
///
/// Invariant: `entries[i].index == snapshot_meta.index + 1 + i` (contiguous, starting right
/// after the compacted prefix).
#[derive(Default)]
pub struct LogStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_meta: SnapshotMetadata,
    /// State-machine bytes of the snapshot at `snapshot_meta` (served to lagging followers).
    snapshot_data: Bytes,
    entries: Vec<Entry>,
    /// Raft asked for a snapshot the stored one cannot satisfy (too old, or taken before
    /// the receiver joined): the runtime should checkpoint soon. Cleared by `compact`.
    snapshot_wanted: Cell<bool>,
}

/// A bootstrapped group's log starts after a virtual snapshot at this index/term holding
/// the initial configuration (as TiKV does). The initial voters are never in the log
/// itself, so a node that joins later must be caught up with a snapshot — which carries the
/// configuration — instead of replaying entries that would leave it without one.
pub const INIT_INDEX: u64 = 5;
pub const INIT_TERM: u64 = 5;

impl LogStorage {
    /// A brand-new group whose first configuration is `voters`; with no voters, an empty
    /// storage for a node joining an existing group (it waits for the leader's snapshot).
    pub fn bootstrap(voters: &[u64]) -> LogStorage {
        let mut s = LogStorage::default();
        if voters.is_empty() {
            return s;
        }
        s.conf_state.voters = voters.to_vec();
        s.snapshot_meta.index = INIT_INDEX;
        s.snapshot_meta.term = INIT_TERM;
        s.snapshot_meta.set_conf_state(s.conf_state.clone());
        s.hard_state.term = INIT_TERM;
        s.hard_state.commit = INIT_INDEX;
        s
    }

    /// Rebuilds the storage from what the WAL recovered. `entries` must be contiguous and
    /// start right after the snapshot (the WAL's replay guarantees it; checked here).
    pub fn recover(
        bootstrap_voters: &[u64],
        snapshot: Option<Snapshot>,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<LogStorage, String> {
        let mut s = match snapshot {
            Some(mut snap) => {
                let meta = snap.take_metadata();
                LogStorage {
                    conf_state: meta.get_conf_state().clone(),
                    snapshot_meta: meta,
                    snapshot_data: snap.take_data(),
                    ..Default::default()
                }
            }
            None => LogStorage::bootstrap(bootstrap_voters),
        };
        if let Some(hs) = hard_state {
            s.hard_state = hs;
        }
        for (expect, e) in (s.snapshot_meta.index + 1..).zip(entries.iter()) {
            if e.index != expect {
                return Err(format!(
                    "recovered log is not contiguous: expected index {expect}, found {}",
                    e.index
                ));
            }
        }
        s.entries = entries;
        // A commit index beyond what we hold cannot be trusted to apply; clamp it.
        let last = s.last_index();
        if s.hard_state.commit > last {
            return Err(format!(
                "recovered commit index {} is beyond the last recovered entry {last}",
                s.hard_state.commit
            ));
        }
        if s.hard_state.commit < s.snapshot_meta.index {
            s.hard_state.commit = s.snapshot_meta.index;
        }
        if s.hard_state.term < s.snapshot_meta.term {
            s.hard_state.term = s.snapshot_meta.term;
        }
        Ok(s)
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot_meta.index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_meta.index, |e| e.index)
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot_meta
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Entries with index in `[low, high)` still held (for WAL compaction tails).
    pub fn entries_from(&self, low: u64) -> &[Entry] {
        let first = self.first_index();
        let start = low.saturating_sub(first) as usize;
        self.entries.get(start..).unwrap_or(&[])
    }

    /// Appends `ents`, replacing any held suffix they overlap (Raft log overwrite).
    pub fn append(&mut self, ents: &[Entry]) -> Result<(), String> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        if first.index < self.first_index() {
            return Err(format!(
                "append at {} overwrites the compacted prefix (first index {})",
                first.index,
                self.first_index()
            ));
        }
        if first.index > self.last_index() + 1 {
            return Err(format!(
                "append at {} leaves a gap after last index {}",
                first.index,
                self.last_index()
            ));
        }
        let keep = (first.index - self.first_index()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Installs a snapshot received from the leader: the whole log is replaced.
    pub fn apply_snapshot(&mut self, mut snap: Snapshot) {
        let meta = snap.take_metadata();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.snapshot_meta = meta;
        self.snapshot_data = snap.take_data();
    }

    /// Records a state-machine snapshot taken at `index` (<= applied) and drops the log
    /// prefix up to it.
    pub fn compact(&mut self, index: u64, term: u64, conf_state: ConfState, data: Bytes) {
        if index <= self.snapshot_meta.index {
            return;
        }
        let drop = (index - self.snapshot_meta.index).min(self.entries.len() as u64) as usize;
        self.entries.drain(..drop);
        self.snapshot_meta.index = index;
        self.snapshot_meta.term = term;
        self.snapshot_meta.set_conf_state(conf_state);
        self.snapshot_data = data;
        self.snapshot_wanted.set(false);
    }

    /// Whether raft-rs wanted a newer snapshot than the stored one.
    pub fn snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.get()
    }

    /// The latest snapshot as a Raft message payload.
    pub fn current_snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        s.set_metadata(self.snapshot_meta.clone());
        s.set_data(self.snapshot_data.clone());
        s
    }
}

impl raft::Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let base = self.first_index();
        let slice = &self.entries[(low - base) as usize..(high - base) as usize];
        let max = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity(slice.len());
        let mut size = 0u64;
        for e in slice {
            size += protobuf::Message::compute_size(e) as u64;
            // Always return at least one entry, as raft-rs requires.
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_meta.index {
            return Ok(self.snapshot_meta.term);
        }
        if idx < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first_index()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(LogStorage::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(LogStorage::last_index(self))
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let cs = self.snapshot_meta.get_conf_state();
        let includes_receiver = cs.voters.contains(&to)
            || cs.learners.contains(&to)
            || cs.voters_outgoing.contains(&to)
            || cs.learners_next.contains(&to);
        if self.snapshot_meta.index < request_index || !includes_receiver {
            // A receiver refuses a snapshot whose configuration does not contain it. Ask the
            // runtime for a fresh checkpoint; raft-rs retries on its next probe.
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.current_snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    /// Index `i` of a bootstrapped log (which starts right after INIT_INDEX).
    const fn at(i: u64) -> u64 {
        INIT_INDEX + i
    }

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn bootstrap_starts_after_the_virtual_snapshot_and_joiners_start_empty() {
        let s = LogStorage::bootstrap(&[1, 2, 3]);
        assert_eq!(s.first_index(), at(1));
        assert_eq!(Storage::term(&s, INIT_INDEX).unwrap(), INIT_TERM);
        assert_eq!(s.hard_state().commit, INIT_INDEX);
        let j = LogStorage::bootstrap(&[]);
        assert_eq!((j.first_index(), j.last_index()), (1, 0));
        assert!(j.conf_state().voters.is_empty());
    }

    #[test]
    fn append_overwrites_suffix_and_rejects_gaps() {
        let mut s = LogStorage::bootstrap(&[1]);
        s.append(&[ent(at(1), 6), ent(at(2), 6), ent(at(3), 6)])
            .unwrap();
        s.append(&[ent(at(2), 7)]).unwrap();
        assert_eq!(s.last_index(), at(2));
        assert_eq!(Storage::term(&s, at(2)).unwrap(), 7);
        assert!(s.append(&[ent(at(5), 7)]).is_err());
        assert!(
            s.append(&[ent(INIT_INDEX, 7)]).is_err(),
            "below the first index"
        );
    }

    #[test]
    fn compact_keeps_term_of_boundary_and_tail() {
        let mut s = LogStorage::bootstrap(&[1, 2]);
        s.append(&[ent(at(1), 6), ent(at(2), 6), ent(at(3), 7)])
            .unwrap();
        s.compact(at(2), 6, s.conf_state().clone(), Bytes::from_static(b"kv"));
        assert_eq!(s.first_index(), at(3));
        assert_eq!(Storage::term(&s, at(2)).unwrap(), 6);
        assert!(matches!(
            Storage::term(&s, at(1)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(s.entries_from(0).len(), 1);
        let snap = Storage::snapshot(&s, at(2), 2).unwrap();
        assert_eq!(snap.get_metadata().index, at(2));
        assert_eq!(snap.get_data(), b"kv");
        assert!(s.append(&[ent(at(2), 8)]).is_err());
    }

    #[test]
    fn snapshot_for_a_node_outside_its_config_is_wanted_not_served() {
        let mut s = LogStorage::bootstrap(&[1, 2]);
        s.append(&[ent(at(1), 6), ent(at(2), 6)]).unwrap();
        s.compact(at(2), 6, s.conf_state().clone(), Bytes::from_static(b"kv"));
        assert!(!s.snapshot_wanted());
        // Node 3 joined after this snapshot: it would refuse it, so ask for a new one.
        assert!(matches!(
            Storage::snapshot(&s, 0, 3),
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        assert!(s.snapshot_wanted());
        let mut cs = s.conf_state().clone();
        cs.learners.push(3);
        s.set_conf_state(cs.clone());
        s.append(&[ent(at(3), 6)]).unwrap();
        s.compact(at(3), 6, cs, Bytes::from_static(b"kv2"));
        assert!(!s.snapshot_wanted());
        assert_eq!(Storage::snapshot(&s, 0, 3).unwrap().get_data(), b"kv2");
    }

    #[test]
    fn recover_checks_contiguity_and_commit() {
        let mut hs = HardState {
            commit: at(2),
            ..Default::default()
        };
        let ok = LogStorage::recover(
            &[1],
            None,
            Some(hs.clone()),
            vec![ent(at(1), 6), ent(at(2), 6)],
        );
        assert!(ok.is_ok());
        let gap = LogStorage::recover(&[1], None, None, vec![ent(at(2), 6)]);
        assert!(gap.is_err());
        hs.commit = at(5);
        let beyond = LogStorage::recover(&[1], None, Some(hs), vec![ent(at(1), 6)]);
        assert!(beyond.is_err());
    }

    #[test]
    fn entries_respects_max_size_but_returns_one() {
        let mut s = LogStorage::bootstrap(&[1]);
        s.append(&[ent(at(1), 6), ent(at(2), 6), ent(at(3), 6)])
            .unwrap();
        let ctx = || GetEntriesContext::empty(false);
        assert_eq!(
            Storage::entries(&s, at(1), at(4), Some(0), ctx())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            Storage::entries(&s, at(1), at(4), None, ctx())
                .unwrap()
                .len(),
            3
        );
    }
}
