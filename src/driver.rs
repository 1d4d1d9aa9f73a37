//! The Raft driver of one core: the only task that takes Readies, writes the WAL and
//! applies committed entries for the core's groups.
//!
//! One loop iteration:
//! 1. tick every group whose tick is due;
//! 2. take one Ready from every group that has one: committed entries are applied (and
//!    their waiters answered) right there — they were durable before they could commit —
//!    and new entries / HardStates are appended to the WAL buffer;
//! 3. one `sync()` (write + fdatasync) for all groups: group commit;
//! 4. tell each group its Ready is durable (`on_persisted`), which lets the leader count
//!    its own entries towards commit — the next iteration applies them;
//! 5. compact the WAL when it grew past `raft.snapshot_log_bytes`;
//! 6. sleep until the next tick or a wake-up from a proposal/read.
//!
//! Proposals arriving during the fsync await go into raft-rs's unstable log (async-ready
//! mode) and are picked up by the next iteration, so a busy core batches naturally.
//!
//! Snapshots never run their O(state) part here (see [`offload`] and `shards::group`'s
//! snapshot module). Compaction: the groups' states are copied at their applied index (O(1)),
//! encoded on a helper thread while this loop goes on, and when the encoding is back the WAL
//! is compacted to it, and only then each group's in-memory log. A received snapshot: its
//! file is written and its record synced as before, while a helper thread decodes it; the
//! decoded state is swapped in by a later iteration (the group applies nothing meanwhile).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::net::SocketAddr;

use shards::lease::Invalidation;
use shards::{
    BuiltSnapshot, DecodedSnapshot, Event, LogCommand, MembershipChange, Reply, SnapshotBuild,
    SnapshotInstall, WriteOp,
};

use crate::clock::now_ms;
use crate::core::Core;
use crate::sync::deadline;
use crate::wal::{GroupCheckpoint, Wal};

mod offload;

/// How often the leader looks for expired keys to delete through Raft.
const EXPIRE_EVERY: Duration = Duration::from_millis(100);
/// Keys deleted by one active-expiry proposal.
const EXPIRE_BATCH: usize = 64;
/// How often (and so at most how often per core) leadership moves to a preferred node.
const BALANCE_EVERY: Duration = Duration::from_secs(1);

pub struct Driver {
    core: Rc<Core>,
    wal: Wal,
    /// Sorted group ids of this core (stable iteration order).
    groups: Vec<u32>,
    /// Active-expiry proposal in flight per group (at most one).
    expiring: std::collections::HashMap<u32, u64>,
    /// Peers this core's transport talks to (node -> this core's Raft address there).
    peers: HashMap<u64, SocketAddr>,
    /// A conf change or snapshot changed some group's members: reconcile `peers`.
    members_dirty: bool,
    /// Last compaction forced because raft-rs wanted a fresher snapshot (rate limit).
    last_forced_snapshot: Option<Instant>,
    /// Fault injection state applied to this core's transport.
    isolated: bool,
    /// Snapshot work back from helper threads, handled by the next iteration. Bounded: at
    /// most one build and one decode per group are in flight.
    finished: Rc<RefCell<Vec<Finished>>>,
    /// A snapshot build is in flight (at most one per core).
    building: bool,
    /// WAL bytes right after the last compaction: the log tails it could not drop. The next
    /// compaction is due once `raft.snapshot_log_bytes` more were written, so a tail larger
    /// than the threshold (a follower catching up, a big burst) never triggers a compaction
    /// on every iteration.
    compacted_bytes: u64,
    /// The last leader known for each group (never 0). Forwards fail fast only when a
    /// *different* leader becomes known: a follower that merely lost track of the leader
    /// (an election timer firing after a restart, a pre-vote) must not fail requests the
    /// still-serving leader will answer; their own deadline covers a dead leader.
    known_leader: RefCell<HashMap<u32, u64>>,
}

/// Snapshot work done off the core.
enum Finished {
    Build(Result<Vec<BuiltSnapshot>, String>),
    Install(Result<DecodedSnapshot, String>),
}

/// Why the driver stopped.
pub enum Stop {
    Shutdown,
    /// The WAL failed: nothing more can be made durable on this core.
    Fatal(String),
}

impl Driver {
    pub fn new(core: Rc<Core>, wal: Wal) -> Driver {
        let mut groups: Vec<u32> = core.groups.keys().copied().collect();
        groups.sort_unstable();
        let peers = core
            .shared
            .config
            .peers()
            .iter()
            .map(|p| (p.id, p.raft_addr(core.index)))
            .collect();
        Driver {
            core,
            wal,
            groups,
            expiring: Default::default(),
            known_leader: Default::default(),
            peers,
            members_dirty: true,
            last_forced_snapshot: None,
            isolated: false,
            finished: Rc::new(RefCell::new(Vec::new())),
            building: false,
            compacted_bytes: 0,
        }
    }

    pub async fn run(mut self) -> Stop {
        let tick = Duration::from_millis(self.core.shared.config.raft.tick_ms);
        let mut next_tick = Instant::now() + tick;
        let mut next_expire = Instant::now() + EXPIRE_EVERY;
        let mut next_balance = Instant::now() + BALANCE_EVERY;
        let mut events = Vec::new();
        let mut persisted: Vec<(u32, u64)> = Vec::new();
        loop {
            let now = Instant::now();
            if now >= next_tick {
                for g in &self.groups {
                    self.core.groups[g]
                        .borrow_mut()
                        .tick(crate::peer::boottime_ns());
                }
                // Do not replay missed ticks in a burst after a stall: that would time out
                // elections spuriously. One tick per iteration, re-anchored on now.
                next_tick = now + tick;
            }
            if now >= next_expire {
                self.propose_expirations();
                next_expire = now + EXPIRE_EVERY;
            }
            if now >= next_balance {
                self.promote_learners();
                if self.core.shared.config.raft.balance_leaders {
                    self.balance_leaders();
                }
                next_balance = now + BALANCE_EVERY;
            }
            let epoch = self
                .core
                .shared
                .debug_isolation_epoch
                .load(Ordering::Acquire);
            if epoch != self.core.stats().isolation_applied.load(Ordering::Relaxed) {
                let isolate = self.core.shared.debug_isolated.load(Ordering::Acquire);
                if isolate != self.isolated {
                    if let Some(c) = self.core.cluster.as_ref() {
                        tracing::warn!(
                            core = self.core.index,
                            isolate,
                            "fault injection: Raft traffic isolation"
                        );
                        c.transport.set_isolated(isolate);
                    }
                    self.isolated = isolate;
                }
                if let Some(c) = self.core.cluster.as_ref() {
                    c.transport
                        .set_deaf(self.core.shared.debug_deaf.load(Ordering::Acquire));
                }
                self.core
                    .stats()
                    .isolation_applied
                    .store(epoch, Ordering::Release);
            }
            if let Err(msg) = self.finish_installs(&mut events) {
                self.fail_all(&msg);
                return Stop::Fatal(msg);
            }
            if self.members_dirty {
                self.members_dirty = false;
                self.reconcile_peers();
                self.publish_members();
            }

            for i in 0..self.groups.len() {
                let gid = self.groups[i];
                let core = self.core.clone();
                let cell = &core.groups[&gid];
                let work = cell
                    .borrow_mut()
                    .take_ready(&mut events, crate::peer::boottime_ns());
                let Some(mut work) = work else { continue };
                if let Some(job) = work.install.take() {
                    self.decode_off_core(job);
                }
                // Leader messages (appends, heartbeats) may leave before our own fsync.
                self.send(gid, std::mem::take(&mut work.messages));
                // Order matters for a torn write: snapshot, then entries, then the HardState
                // that may refer to them.
                if let Some(snap) = &work.snapshot {
                    if let Err(e) = self.wal.install_snapshot(gid, snap).await {
                        let msg = format!(
                            "WAL snapshot install failed on core {}: {e}",
                            self.core.index
                        );
                        self.fail_all(&msg);
                        return Stop::Fatal(msg);
                    }
                }
                if !work.entries.is_empty() {
                    self.wal.append_entries(gid, &work.entries);
                }
                if let Some(hs) = &work.hard_state {
                    self.wal.append_hard_state(gid, hs);
                }
                persisted.push((gid, work.number));
                // Publish before answering waiters, so INFO on any core reflects every
                // write a client has seen acknowledged.
                self.publish_stats(gid);
                self.dispatch(gid, &mut events);
            }

            // Appends and heartbeats leave before our own fsync: followers persist in
            // parallel with the leader (Raft thesis 10.2.1).
            self.flush();
            if self.wal.has_pending() {
                let bytes_before = self.wal.log_bytes();
                if let Err(e) = self.wal.sync().await {
                    let msg = format!("WAL sync failed on core {}: {e}", self.core.index);
                    self.fail_all(&msg);
                    return Stop::Fatal(msg);
                }
                let stats = self.core.stats();
                stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
                stats.wal_bytes.fetch_add(
                    self.wal.log_bytes().saturating_sub(bytes_before),
                    Ordering::Relaxed,
                );
            }
            for (gid, number) in persisted.drain(..) {
                // Votes and append acknowledgements only after what they promise is durable.
                let msgs = self.core.groups[&gid].borrow_mut().on_persisted(number);
                self.send(gid, msgs);
            }
            self.flush();

            let wanted = self
                .groups
                .iter()
                .any(|g| self.core.groups[g].borrow().snapshot_wanted())
                && self
                    .last_forced_snapshot
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if wanted {
                self.last_forced_snapshot = Some(Instant::now());
            }
            let built = self.take_built();
            let grown = self.wal.log_bytes().saturating_sub(self.compacted_bytes);
            let due = wanted || grown > self.core.shared.config.raft.snapshot_log_bytes;
            let compact_now = match built {
                Some(built) => Some(built),
                None if due && !self.building => self.build_off_core(),
                None => None,
            };
            if let Some(built) = compact_now {
                if let Err(e) = self.compact(built).await {
                    let msg = format!("WAL compaction failed on core {}: {e}", self.core.index);
                    self.fail_all(&msg);
                    return Stop::Fatal(msg);
                }
            }

            if self
                .groups
                .iter()
                .any(|g| self.core.groups[g].borrow().has_ready())
            {
                // Committed entries became applicable after on_persisted: go again now.
                glommio::yield_if_needed().await;
                continue;
            }
            if self.core.shutdown.is_set() && self.core.waiters.borrow().writes.is_empty() {
                for g in &self.groups {
                    self.core.groups[g]
                        .borrow_mut()
                        .invalidate_lease(Invalidation::Shutdown, crate::peer::boottime_ns());
                }
                return Stop::Shutdown;
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            deadline(wait, self.core.driver_wake.wait()).await;
        }
    }

    /// Sends the frames built so far (Raft messages, forwards, forward replies).
    fn flush(&self) {
        if let Some(cluster) = self.core.cluster.as_ref() {
            crate::cluster::report_snapshots(&self.core, cluster.flush());
        }
    }

    fn send(&self, gid: u32, msgs: Vec<raft::eraftpb::Message>) {
        if msgs.is_empty() {
            return;
        }
        match self.core.cluster.as_ref() {
            Some(c) => c.queue_raft(gid, msgs),
            None => tracing::error!(group = gid, "Raft messages but no peers; dropped"),
        }
    }

    /// Answers the waiters named by `events` (all from group `gid`).
    fn dispatch(&mut self, gid: u32, events: &mut Vec<Event>) {
        let mut w = self.core.waiters.borrow_mut();
        for ev in events.drain(..) {
            match ev {
                Event::Applied { proposal, reply } => {
                    if self.expiring.get(&gid) == Some(&proposal) {
                        self.expiring.remove(&gid);
                        if let Reply::Int(n) = reply {
                            self.core
                                .stats()
                                .expired_keys
                                .fetch_add(n.max(0) as u64, Ordering::Relaxed);
                        }
                    } else if let Some(tx) = w.writes.remove(&(gid, proposal)) {
                        let _ = tx.send(reply);
                    }
                }
                Event::Lost { proposal } => {
                    if self.expiring.get(&gid) == Some(&proposal) {
                        self.expiring.remove(&gid);
                    } else if let Some(tx) = w.writes.remove(&(gid, proposal)) {
                        let _ = tx.send(Reply::err(
                            "TRYAGAIN write lost to a leadership change; it was not applied",
                        ));
                    }
                }
                Event::Unresolved { proposal } => {
                    if self.expiring.get(&gid) == Some(&proposal) {
                        self.expiring.remove(&gid);
                    } else if let Some(tx) = w.writes.remove(&(gid, proposal)) {
                        let _ = tx.send(Reply::err(
                            "TRYAGAIN the write's outcome is unknown (a snapshot replaced this node's log); it may have been applied",
                        ));
                    }
                }
                Event::ReadReady { read } => {
                    if let Some(tx) = w.reads.remove(&(gid, read)) {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::ReadsFailed => {
                    let failed: Vec<_> =
                        w.reads.keys().filter(|(g, _)| *g == gid).copied().collect();
                    for key in failed {
                        if let Some(tx) = w.reads.remove(&key) {
                            let _ = tx.send(Err(Reply::err(
                                "TRYAGAIN leadership lost while confirming the read",
                            )));
                        }
                    }
                }
                Event::LeaderReady => {
                    for tx in w.leader_ready.remove(&gid).unwrap_or_default() {
                        let _ = tx.send(());
                    }
                }
                Event::MembersChanged => self.members_dirty = true,
                Event::RoleChanged { leader, term } => {
                    if let Some(s) = self.core.shared.group_stats.get(gid as usize) {
                        s.leader_changes.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!(
                        core = self.core.index,
                        group = gid,
                        leader,
                        term,
                        "role changed"
                    );
                    self.expiring.remove(&gid);
                }
            }
        }
    }

    /// The leader deletes expired keys through the log, so every replica deletes the same
    /// keys at the same log position.
    fn propose_expirations(&mut self) {
        let now = now_ms();
        for &gid in &self.groups {
            if self.expiring.contains_key(&gid) {
                continue;
            }
            let mut g = self.core.groups[&gid].borrow_mut();
            if !g.is_leader() {
                continue;
            }
            let keys = g.expired_keys(now, EXPIRE_BATCH);
            if keys.is_empty() {
                continue;
            }
            let cmd = LogCommand {
                now_ms: now,
                op: WriteOp::DeleteExpired { keys },
            };
            if let Ok(id) = g.propose(&cmd) {
                self.expiring.insert(gid, id);
            }
        }
    }

    /// Makes caught-up learners voters (one change per group at a time; raft-rs refuses a
    /// second while one is pending).
    fn promote_learners(&self) {
        for &gid in &self.groups {
            let mut g = self.core.groups[&gid].borrow_mut();
            if let Some(learner) = g.learner_to_promote() {
                match g.propose_membership(&MembershipChange::Promote(learner)) {
                    Ok(_) => tracing::info!(
                        group = gid,
                        node = learner,
                        "promoting caught-up learner to voter"
                    ),
                    Err(e) => {
                        tracing::debug!(group = gid, node = learner, ?e, "promotion not proposed")
                    }
                }
            }
        }
    }

    /// Points this core's transport at every member of its groups (their Raft base port +
    /// this core's index) and drops peers that are no longer members of any group here.
    fn reconcile_peers(&mut self) {
        let Some(cluster) = self.core.cluster.as_ref() else {
            return;
        };
        let me = self.core.shared.config.node_id;
        let mut want: HashMap<u64, SocketAddr> = HashMap::new();
        for gid in &self.groups {
            for m in self.core.groups[gid].borrow().members().values() {
                if m.id == me {
                    continue;
                }
                let addr = m.raft.parse::<SocketAddr>().ok().and_then(|a| {
                    let port = a.port().checked_add(u16::try_from(self.core.index).ok()?)?;
                    Some(SocketAddr::new(a.ip(), port))
                });
                match addr {
                    Some(a) => {
                        want.insert(m.id, a);
                    }
                    None => {
                        tracing::warn!(node = m.id, raft = %m.raft, "member has an unusable Raft address")
                    }
                }
            }
        }
        if want.is_empty() {
            return; // no member list yet (e.g. joining): keep the configured peers
        }
        for (id, addr) in &want {
            if self.peers.get(id) != Some(addr) {
                tracing::info!(core = self.core.index, node = id, %addr, "adding Raft peer");
                cluster.transport.set_peer(*id, Some(*addr));
            }
        }
        for id in self.peers.keys().filter(|id| !want.contains_key(id)) {
            tracing::info!(core = self.core.index, node = id, "removing Raft peer");
            cluster.transport.set_peer(*id, None);
            cluster.forget(*id);
        }
        self.peers = want;
    }

    /// Publishes every group's voters and member addresses for CLUSTER SLOTS/NODES and MOVED
    /// on any core. A joining node's groups have no configuration yet: nothing to publish.
    fn publish_members(&self) {
        for &gid in &self.groups {
            let g = self.core.groups[&gid].borrow();
            let voters = g.voters();
            if voters.is_empty() {
                continue;
            }
            if let Some(s) = self.core.shared.group_stats.get(gid as usize) {
                s.members.publish(crate::clusterinfo::GroupMembers::new(
                    gid,
                    voters,
                    g.members(),
                ));
            }
        }
    }

    /// Hands one group's leadership to its preferred node when that node is up and fully
    /// caught up. Preferred leader of group g: the (g mod n)-th of its voters by id, which
    /// spreads leaders evenly. One transfer per call bounds the churn.
    fn balance_leaders(&self) {
        let me = self.core.shared.config.node_id;
        for &gid in &self.groups {
            let mut g = self.core.groups[&gid].borrow_mut();
            if !g.is_leader() || g.is_transferring() {
                continue;
            }
            let mut voters = g.voters();
            if voters.len() < 2 {
                continue;
            }
            voters.sort_unstable();
            let preferred = voters[gid as usize % voters.len()];
            if preferred == me {
                continue;
            }
            if let Some((matched, active)) = g.progress_of(preferred) {
                if active && matched >= g.last_index() {
                    tracing::info!(
                        group = gid,
                        to = preferred,
                        "transferring leadership to the preferred node"
                    );
                    g.transfer_leader(preferred, crate::peer::boottime_ns());
                    drop(g);
                    self.core.driver_wake.notify();
                    return;
                }
            }
        }
    }

    /// Starts encoding a point-in-time copy of every group that applied something since its
    /// last snapshot. Returns `Some(nothing built)` when no group did, so the WAL is compacted
    /// at once to the snapshots it already has (as before a build existed).
    fn build_off_core(&mut self) -> Option<Vec<BuiltSnapshot>> {
        let builds: Vec<SnapshotBuild> = self
            .groups
            .iter()
            .filter_map(|g| self.core.groups[g].borrow().begin_snapshot())
            .collect();
        if builds.is_empty() {
            if self
                .groups
                .iter()
                .any(|g| self.core.groups[g].borrow().is_installing())
            {
                // Its state is about to change: build once it is in (the log it received
                // meanwhile cannot be dropped before).
                return None;
            }
            return Some(Vec::new());
        }
        self.building = true;
        let (finished, core) = (self.finished.clone(), self.core.clone());
        glommio::spawn_local(async move {
            let built = offload::run("snapshot-build", move || {
                builds.into_iter().map(SnapshotBuild::encode).collect()
            })
            .await;
            finished.borrow_mut().push(Finished::Build(built));
            core.driver_wake.notify();
        })
        .detach();
        None
    }

    /// A finished build, if one came back. A failed one is logged and retried once another
    /// `raft.snapshot_log_bytes` were written (never in a loop).
    fn take_built(&mut self) -> Option<Vec<BuiltSnapshot>> {
        let mut finished = self.finished.borrow_mut();
        let i = finished
            .iter()
            .position(|f| matches!(f, Finished::Build(_)))?;
        let Finished::Build(result) = finished.swap_remove(i) else {
            return None;
        };
        self.building = false;
        match result {
            Ok(built) => Some(built),
            Err(e) => {
                tracing::error!(core = self.core.index, error = %e, "snapshot build failed");
                self.compacted_bytes = self.wal.log_bytes();
                None
            }
        }
    }

    /// Decodes a received snapshot on a helper thread; `finish_installs` swaps it in.
    fn decode_off_core(&self, job: SnapshotInstall) {
        let (finished, core) = (self.finished.clone(), self.core.clone());
        glommio::spawn_local(async move {
            let decoded = offload::run("snapshot-decode", move || job.decode()).await;
            finished.borrow_mut().push(Finished::Install(decoded));
            core.driver_wake.notify();
        })
        .detach();
    }

    /// Swaps decoded snapshots in (O(1) each, plus the entries committed meanwhile); the
    /// replaced states are freed off the core. An undecodable snapshot stops the core.
    fn finish_installs(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
        let decoded: Vec<Result<DecodedSnapshot, String>> = {
            let mut finished = self.finished.borrow_mut();
            let (installs, rest): (Vec<Finished>, Vec<Finished>) = finished
                .drain(..)
                .partition(|f| matches!(f, Finished::Install(_)));
            *finished = rest;
            installs
                .into_iter()
                .filter_map(|f| match f {
                    Finished::Install(d) => Some(d),
                    Finished::Build(_) => None,
                })
                .collect()
        };
        for d in decoded {
            let d = d.map_err(|e| format!("snapshot install on core {}: {e}", self.core.index))?;
            let gid = d.group();
            let Some(cell) = self.core.groups.get(&gid) else {
                continue;
            };
            let old = cell
                .borrow_mut()
                .finish_install(d, events, crate::peer::boottime_ns())?;
            if let Some(old) = old {
                tracing::info!(
                    core = self.core.index,
                    group = gid,
                    "installed a received snapshot"
                );
                offload::drop_later(old);
            }
            self.publish_stats(gid);
            self.dispatch(gid, events);
        }
        Ok(())
    }

    /// Compacts the WAL to `built` (plus the stored snapshots of the other groups), then,
    /// once that is durable, each group's in-memory log.
    async fn compact(&mut self, built: Vec<BuiltSnapshot>) -> Result<(), crate::wal::WalError> {
        let mut built: HashMap<u32, BuiltSnapshot> =
            built.into_iter().map(|b| (b.group(), b)).collect();
        let mut checkpoints = Vec::with_capacity(self.groups.len());
        for &gid in &self.groups {
            let cp = self.core.groups[&gid]
                .borrow()
                .wal_checkpoint(built.get(&gid));
            checkpoints.push(GroupCheckpoint {
                group: gid,
                snapshot: cp.snapshot,
                hard_state: cp.hard_state,
                tail: cp.tail,
            });
        }
        let started = Instant::now();
        // Only this task appends to the groups' logs, so they do not change during the await.
        self.wal.compact(checkpoints).await?;
        self.compacted_bytes = self.wal.log_bytes();
        for &gid in &self.groups {
            if let Some(b) = built.remove(&gid) {
                self.core.groups[&gid].borrow_mut().compact_log(b);
            }
        }
        self.core
            .stats()
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            core = self.core.index,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted WAL into group snapshots"
        );
        Ok(())
    }

    /// Publishes one group's counters for INFO on any core. Release pairs with INFO's
    /// Acquire loads: a client that saw its write acknowledged sees it counted.
    fn publish_stats(&self, gid: u32) {
        let g = self.core.groups[&gid].borrow();
        let s = &self.core.shared.group_stats[gid as usize];
        s.keys.store(g.kv().len() as u64, Ordering::Release);
        s.expires
            .store(g.kv().expires_len() as u64, Ordering::Release);
        s.term.store(g.term(), Ordering::Relaxed);
        s.applied.store(g.applied_index(), Ordering::Relaxed);
        s.commit.store(g.commit_index(), Ordering::Relaxed);
        s.leader.store(g.is_leader(), Ordering::Relaxed);
        let now = crate::peer::boottime_ns();
        s.lease_remaining_ms
            .store(g.lease_remaining_ns(now) / 1_000_000, Ordering::Relaxed);
        s.lease_invalidations
            .store(g.lease_stats().invalidations_total(), Ordering::Relaxed);
        for (slot, reason) in s
            .lease_invalidations_by_reason
            .iter()
            .zip(Invalidation::ALL)
        {
            slot.store(g.lease_stats().invalidations(reason), Ordering::Relaxed);
        }
        s.leader_id.store(g.leader_id(), Ordering::Relaxed);
        if g.leader_id() != 0 {
            let old = self.known_leader.borrow_mut().insert(gid, g.leader_id());
            if let (Some(old), Some(c)) = (old, self.core.cluster.as_ref()) {
                if old != g.leader_id() {
                    c.leader_changed(gid, old);
                }
            }
        }
    }

    /// After a WAL failure nothing pending can become durable: fail every waiter.
    fn fail_all(&self, why: &str) {
        tracing::error!(core = self.core.index, "{why}");
        for g in &self.groups {
            self.core.groups[g]
                .borrow_mut()
                .invalidate_lease(Invalidation::StorageError, crate::peer::boottime_ns());
        }
        let mut w = self.core.waiters.borrow_mut();
        for (_, tx) in w.writes.drain() {
            let _ = tx.send(Reply::err(format!("ERR {why}")));
        }
        for (_, tx) in w.reads.drain() {
            let _ = tx.send(Err(Reply::err(format!("ERR {why}"))));
        }
    }
}
