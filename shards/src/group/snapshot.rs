//! Building and installing group snapshots without stalling the core.
//!
//! Both are O(state), so the expensive half of each runs wherever the runtime chooses (it
//! uses a helper thread); the group only does O(1) work at either end:
//!
//! - **Build**: [`ShardGroup::begin_snapshot`] takes a point-in-time copy of the state at the
//!   applied index (O(1): `KvState` is persistent) as a `Send` [`SnapshotBuild`];
//!   [`SnapshotBuild::encode`] serialises it; [`ShardGroup::wal_checkpoint`] gives what the WAL
//!   must make durable; only then does [`ShardGroup::compact_log`] drop the log prefix and
//!   make the new snapshot the one Raft sends to followers. Until then the group keeps applying
//!   and serving, and Raft keeps sending the previous snapshot.
//! - **Install**: a snapshot received from the leader is stored in Raft's storage at once
//!   (O(1), the bytes are shared) and `take_ready` returns a [`SnapshotInstall`] job;
//!   [`SnapshotInstall::decode`] decodes it; [`ShardGroup::finish_install`] swaps the decoded
//!   state in. In between, the group keeps taking Readies (appends are persisted and
//!   acknowledged, heartbeats answered) but applies nothing: entries committed meanwhile are
//!   applied from the log right after the swap, and reads wait (see `read_gate`).
//!
//! The byte format is unchanged: `members::wrap_snapshot` around `KvState::snapshot`.

use bytes::Bytes;
use raft::eraftpb::{ConfState, Snapshot};
use raft::GetEntriesContext;

use super::{Checkpoint, Event, ShardGroup};
use crate::kv::KvState;
use crate::members::{self, Members};

/// A snapshot to serialise: the group's state copied at `index`. `Send`.
pub struct SnapshotBuild {
    group: u32,
    index: u64,
    term: u64,
    conf_state: ConfState,
    members: Members,
    kv: KvState,
}

/// A serialised snapshot, ready for the WAL and then [`ShardGroup::compact_log`].
#[derive(Debug, Clone)]
pub struct BuiltSnapshot {
    group: u32,
    snapshot: Snapshot,
}

/// A received snapshot to decode (see the module doc). `Send`.
pub struct SnapshotInstall {
    group: u32,
    seq: u64,
    data: Bytes,
}

/// The result of [`SnapshotInstall::decode`], for [`ShardGroup::finish_install`].
pub struct DecodedSnapshot {
    group: u32,
    seq: u64,
    state: Result<(Members, KvState), String>,
}

/// A received snapshot being decoded elsewhere.
#[derive(Debug)]
pub(super) struct Installing {
    /// Matches the [`SnapshotInstall`] handed out; a newer snapshot supersedes an older one.
    seq: u64,
    pub(super) index: u64,
    term: u64,
    /// Highest index raft-rs handed out as committed meanwhile; those entries are in the log
    /// storage and are applied right after the swap.
    committed: u64,
}

const _: () = {
    const fn send<T: Send>() {}
    send::<SnapshotBuild>();
    send::<BuiltSnapshot>();
    send::<SnapshotInstall>();
    send::<DecodedSnapshot>();
};

impl SnapshotBuild {
    pub fn group(&self) -> u32 {
        self.group
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// Serialises the copy. O(state), pure: run it off the core. Dropping the copy (also
    /// O(changed nodes)) happens here too.
    pub fn encode(self) -> BuiltSnapshot {
        let data = members::wrap_snapshot(&self.members, &self.kv.snapshot());
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = self.index;
        meta.term = self.term;
        meta.set_conf_state(self.conf_state);
        snapshot.set_data(Bytes::from(data));
        BuiltSnapshot {
            group: self.group,
            snapshot,
        }
    }
}

impl BuiltSnapshot {
    pub fn group(&self) -> u32 {
        self.group
    }

    pub fn index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl SnapshotInstall {
    pub fn group(&self) -> u32 {
        self.group
    }

    /// Decodes the snapshot. O(state), pure: run it off the core.
    pub fn decode(self) -> DecodedSnapshot {
        DecodedSnapshot {
            group: self.group,
            seq: self.seq,
            state: decode_group_snapshot(&self.data),
        }
    }
}

impl DecodedSnapshot {
    pub fn group(&self) -> u32 {
        self.group
    }
}

/// Splits a group snapshot into members and KV state. Snapshots written before members
/// were recorded hold only KV state.
pub(super) fn decode_group_snapshot(data: &[u8]) -> Result<(Members, KvState), String> {
    if data.is_empty() {
        // The virtual bootstrap snapshot: nothing stored yet.
        Ok((Members::new(), KvState::new()))
    } else if data.starts_with(b"LKGS") {
        let (members, kv) = members::unwrap_snapshot(data).map_err(|e| e.to_string())?;
        Ok((members, KvState::restore(kv).map_err(|e| e.to_string())?))
    } else {
        Ok((
            Members::new(),
            KvState::restore(data).map_err(|e| e.to_string())?,
        ))
    }
}

impl ShardGroup {
    /// An O(1) copy of the state at the applied index, to serialise elsewhere. None while a
    /// received snapshot is being installed (the state is about to be replaced) or when nothing
    /// was applied since the stored snapshot.
    pub fn begin_snapshot(&self) -> Option<SnapshotBuild> {
        let store = self.raw.store();
        if self.installing.is_some() || self.applied_index <= store.snapshot_metadata().index {
            return None;
        }
        let index = self.applied_index;
        Some(SnapshotBuild {
            group: self.spec.group,
            index,
            term: raft::Storage::term(store, index).unwrap_or(self.applied_term),
            // Conf changes update the storage's ConfState when they are applied, so this is
            // the configuration at `index`.
            conf_state: store.conf_state().clone(),
            members: self.members.clone(),
            kv: self.kv.clone(),
        })
    }

    /// What the WAL must hold to compact this group: `built` when it is newer than the stored
    /// snapshot (else the stored one), the HardState, and the log after the snapshot. Call with
    /// nothing unpersisted; apply [`ShardGroup::compact_log`] once it is durable.
    pub fn wal_checkpoint(&self, built: Option<&BuiltSnapshot>) -> Checkpoint {
        let store = self.raw.store();
        let snapshot = match built {
            Some(b) if b.index() > store.snapshot_metadata().index => b.snapshot.clone(),
            _ => store.current_snapshot(),
        };
        let index = snapshot.get_metadata().index;
        Checkpoint {
            tail: store.entries_from(index + 1).to_vec(),
            hard_state: store.hard_state().clone(),
            snapshot,
        }
    }

    /// Drops the log up to `built` (durable by now) and serves it to lagging followers from
    /// now on. A snapshot no newer than the stored one (e.g. one received meanwhile) is ignored.
    pub fn compact_log(&mut self, built: BuiltSnapshot) {
        let meta = built.snapshot.get_metadata();
        let (index, term, cs) = (meta.index, meta.term, meta.get_conf_state().clone());
        let data = built.snapshot.data;
        self.raw.mut_store().compact(index, term, cs, data);
    }

    /// Builds, serialises and compacts in one call, on the caller's thread: O(state). For
    /// tests and tools; the server uses the split form.
    pub fn checkpoint(&mut self) -> Checkpoint {
        let built = self.begin_snapshot().map(SnapshotBuild::encode);
        let cp = self.wal_checkpoint(built.as_ref());
        if let Some(b) = built {
            self.compact_log(b);
        }
        cp
    }

    /// Whether a received snapshot is being decoded (nothing is applied until it is in).
    pub fn is_installing(&self) -> bool {
        self.installing.is_some()
    }

    /// Takes a snapshot from a Ready: Raft's storage holds it from now on (the log is
    /// replaced), and the state machine waits for [`ShardGroup::finish_install`].
    pub(super) fn begin_install(
        &mut self,
        snap: &Snapshot,
        events: &mut Vec<Event>,
    ) -> SnapshotInstall {
        let meta = snap.get_metadata();
        self.raw.mut_store().apply_snapshot(snap.clone());
        // Our proposals at or below the snapshot can no longer be matched to replies, and
        // the snapshot may well contain them (a later leader committed them): unknown, not
        // lost (the fault tests caught a "not applied" reply for a write that was applied).
        let unresolved: Vec<u64> = self
            .proposed
            .range(..=meta.index)
            .map(|(_, p)| *p)
            .collect();
        self.proposed.retain(|i, _| *i > meta.index);
        events.extend(
            unresolved
                .into_iter()
                .map(|proposal| Event::Unresolved { proposal }),
        );
        self.next_install += 1;
        // A newer snapshot supersedes one still being decoded: its result will be ignored.
        self.installing = Some(Installing {
            seq: self.next_install,
            index: meta.index,
            term: meta.term,
            committed: meta.index,
        });
        SnapshotInstall {
            group: self.spec.group,
            seq: self.next_install,
            data: snap.data.clone(),
        }
    }

    /// Entries raft-rs handed out as committed while installing: remembered, applied later.
    pub(super) fn defer_committed(&mut self, last: u64) {
        if let Some(i) = self.installing.as_mut() {
            i.committed = i.committed.max(last);
        }
    }

    /// Swaps a decoded snapshot in, then applies the entries committed while it was decoded.
    /// Returns the replaced state so the caller can free it off the core (freeing a big state
    /// is O(state) too). A result superseded by a newer snapshot is ignored (`Ok(None)`).
    /// An error means the leader's snapshot does not decode: the group cannot go on.
    pub fn finish_install(
        &mut self,
        decoded: DecodedSnapshot,
        events: &mut Vec<Event>,
        now_ns: Option<u64>,
    ) -> Result<Option<KvState>, String> {
        let group = self.spec.group;
        let Some(inst) = self.installing.take_if(|i| i.seq == decoded.seq) else {
            return Ok(None);
        };
        let (members, kv) = decoded
            .state
            .map_err(|e| format!("group {group}: leader sent an undecodable snapshot: {e}"))?;
        self.clock = now_ns;
        let old = std::mem::replace(&mut self.kv, kv);
        // The bootstrap snapshot (and those written before members were recorded) carries
        // no addresses: keep the configured ones, which the log that follows amends. An
        // empty map made a rejoining node drop its peers to the original members and stall
        // (found by the membership nemesis, tests/nemesis.rs).
        if !members.is_empty() {
            self.members = members;
        }
        events.push(Event::MembersChanged);
        self.applied_index = inst.index;
        self.applied_term = inst.term;
        if inst.committed > inst.index {
            // Committed entries are durable here and never compacted while installing.
            let entries = raft::Storage::entries(
                self.raw.store(),
                inst.index + 1,
                inst.committed + 1,
                None,
                GetEntriesContext::empty(false),
            )
            .map_err(|e| format!("group {group}: entries committed during the install: {e}"))?;
            self.apply_entries(entries, events);
        }
        self.release_reads(events);
        self.advance_raft_applied();
        self.after_state_change(events);
        Ok(Some(old))
    }
}
