//! One shard group: a raft-rs `RawNode` plus the KV state machine it drives.
//!
//! The runtime owns persistence, the network and time. It drives a group like this:
//! 1. `propose` / `read_index` / `step` / `tick` at any time (never between 2 and 3 — the
//!    runtime runs 2 and 3 back to back without yielding);
//! 2. `take_ready` returns what must be persisted (entries, HardState, snapshot) and the
//!    messages to send now; committed entries are applied inside it and their results are
//!    pushed as [`Event`]s;
//! 3. it appends the work to its WAL; after the fsync it calls `on_persisted(number)` and sends
//!    the messages returned (votes, append responses: only after durability).
//!
//! raft-rs is used in async-ready mode (`advance_append_async` + `on_persist_ready`): the
//! Ready is handed back at once, so proposals keep flowing while the fsync is in flight, and
//! the leader counts its own entries towards commit only once `on_persisted` says they are
//! durable.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, HardState,
    Message, MessageType, Snapshot,
};
use raft::{Config, RawNode, ReadOnlyOption, StateRole};
use raft_proto::ConfChangeI;

use crate::kv::KvState;
use crate::lease::{Invalidation, LeaseConfig, LeaseStats, LeaseTracker, UnsafeRule};
use crate::logger;
use crate::members::{Member, Members};

mod snapshot;
use crate::ops::{LogCommand, ReadOp};
use crate::reply::Reply;
use crate::storage::LogStorage;
use snapshot::{decode_group_snapshot, Installing};
pub use snapshot::{BuiltSnapshot, DecodedSnapshot, SnapshotBuild, SnapshotInstall};

/// Static parameters of a group on this node.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub group: u32,
    pub node_id: u64,
    /// Voters used only when the group has no persisted state yet (bootstrap). Empty for
    /// a node joining an existing cluster: it learns the configuration from the leader.
    pub bootstrap_voters: Vec<u64>,
    /// Member addresses known at bootstrap (the config's [[nodes]]).
    pub bootstrap_members: Vec<Member>,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Distinguishes this process's proposals from those of an earlier run of the same node
    /// (proposal ids restart at 1 on every start).
    pub incarnation: u64,
    /// Leader lease length; 0 disables lease reads (every multi-voter read uses ReadIndex).
    /// Must be below (election_ticks - 1) x tick - clock drift (see `lease`).
    pub lease_ns: u64,
}

/// What the group recovered from disk.
#[derive(Default)]
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
}

/// Something the runtime must tell a waiting request about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The proposal was committed and applied; this is its reply.
    Applied { proposal: u64, reply: Reply },
    /// Another entry took the proposal's log slot (leadership changed): it was not applied
    /// and never will be.
    Lost { proposal: u64 },
    /// An installed snapshot covers the proposal's log slot: the proposal may be in it
    /// (another leader committed it) or not; its outcome cannot be known here.
    Unresolved { proposal: u64 },
    /// The ReadIndex request is confirmed and the state machine has applied up to it: a read
    /// now is linearizable.
    ReadReady { read: u64 },
    /// This node stopped being leader: every pending ReadIndex request failed.
    ReadsFailed,
    /// Leadership of this node changed (for metrics and waiters of `LeaderReady`).
    RoleChanged { leader: bool, term: u64 },
    /// The leader has applied an entry of its own term: local reads are possible.
    LeaderReady,
    /// A conf change or snapshot changed the member map (addresses to connect to).
    MembersChanged,
}

/// A membership change of this group, proposed by its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a node as a learner (it catches up without voting).
    AddLearner(Member),
    /// Make a caught-up learner a voter.
    Promote(u64),
    /// Remove a voter or learner.
    Remove(u64),
}

/// Where a read may be served from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadGate {
    /// Serve from the applied state immediately.
    Local,
    /// Confirm leadership with ReadIndex first.
    ReadIndex,
    /// Leader, but it has not applied an entry of its own term yet: wait for `LeaderReady`.
    NotReady,
    /// Leader handing leadership to another node: raft-rs drops reads and writes until the
    /// transfer ends, so fail fast with a retryable error.
    Transferring,
    /// Not the leader. `leader` is the known leader's node id (0 = unknown).
    NotLeader { leader: u64 },
}

/// Work from one Ready: persist it, then call `on_persisted(number)`.
#[derive(Default)]
pub struct ReadyWork {
    pub number: u64,
    /// Messages that may be sent before persistence (leader appends, heartbeats).
    pub messages: Vec<Message>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: persist it. Raft's storage holds it already.
    pub snapshot: Option<Snapshot>,
    /// With `snapshot`: decode it (off the core) and hand the result to
    /// [`ShardGroup::finish_install`]; until then the group applies nothing.
    pub install: Option<SnapshotInstall>,
}

/// Proposal context stored in the entry: identifies the proposer and its waiter.
const CONTEXT_LEN: usize = 24;

fn encode_context(node: u64, incarnation: u64, proposal: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(CONTEXT_LEN);
    c.extend_from_slice(&node.to_le_bytes());
    c.extend_from_slice(&incarnation.to_le_bytes());
    c.extend_from_slice(&proposal.to_le_bytes());
    c
}

fn decode_context(c: &[u8]) -> Option<(u64, u64, u64)> {
    if c.len() != CONTEXT_LEN {
        return None;
    }
    let word = |i: usize| u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    Some((word(0), word(1), word(2)))
}

pub struct ShardGroup {
    spec: GroupSpec,
    raw: RawNode<LogStorage>,
    kv: KvState,
    members: Members,
    lease: LeaseTracker,
    /// The clock sample of the call in progress (conf changes applied inside take_ready
    /// recompute the lease with it).
    clock: Option<u64>,
    applied_index: u64,
    /// Term of the last applied entry: the leader may read locally only once this equals
    /// its current term (it has applied an entry of its own term).
    applied_term: u64,
    next_proposal: u64,
    /// Log index -> proposal id of our own in-flight proposals.
    proposed: BTreeMap<u64, u64>,
    next_read: u64,
    /// Confirmed ReadIndex requests waiting for apply: (read index, read id), in index order.
    confirmed_reads: VecDeque<(u64, u64)>,
    /// ReadIndex requests sent to raft and not yet confirmed.
    unconfirmed_reads: usize,
    /// Readies handed back to raft but not yet durable: (number, messages to send after).
    unpersisted: VecDeque<(u64, Vec<Message>)>,
    /// A received snapshot was taken: raft-rs may count it applied only once it is
    /// durable, so `advance_apply` waits for `on_persisted`.
    apply_after_persist: bool,
    /// A received snapshot being decoded off the core (see `snapshot`): the state is stale,
    /// nothing is applied and no read is served until `finish_install`.
    installing: Option<Installing>,
    /// Sequence number of the last install handed out.
    next_install: u64,
    was_leader: bool,
    leader_ready_sent: bool,
}

impl ShardGroup {
    pub fn new(spec: GroupSpec, recovered: Recovered) -> Result<ShardGroup, String> {
        let (members, kv) = match &recovered.snapshot {
            Some(s) if !s.get_data().is_empty() => decode_group_snapshot(s.get_data())
                .map_err(|e| format!("group {}: snapshot: {e}", spec.group))?,
            _ => (
                spec.bootstrap_members
                    .iter()
                    .map(|m| (m.id, m.clone()))
                    .collect(),
                KvState::new(),
            ),
        };
        let storage = LogStorage::recover(
            &spec.bootstrap_voters,
            recovered.snapshot,
            recovered.hard_state,
            recovered.entries,
        )
        .map_err(|e| format!("group {}: {e}", spec.group))?;
        // Everything up to the (possibly virtual, see INIT_INDEX) snapshot is applied.
        let snap_index = storage.snapshot_metadata().index;
        let snap_term = storage.snapshot_metadata().term;
        let cfg = Config {
            id: spec.node_id,
            election_tick: spec.election_ticks,
            heartbeat_tick: spec.heartbeat_ticks,
            applied: snap_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            ..Default::default()
        };
        cfg.validate()
            .map_err(|e| format!("group {}: raft config: {e}", spec.group))?;
        let log = logger::for_group(spec.group);
        let raw = RawNode::new(&cfg, storage, &log)
            .map_err(|e| format!("group {}: raft: {e}", spec.group))?;
        let lease = LeaseTracker::new(
            LeaseConfig {
                duration_ns: spec.lease_ns,
            },
            spec.node_id,
        );
        Ok(ShardGroup {
            spec,
            raw,
            kv,
            members,
            lease,
            clock: None,
            applied_index: snap_index,
            applied_term: snap_term,
            next_proposal: 1,
            proposed: BTreeMap::new(),
            next_read: 1,
            confirmed_reads: VecDeque::new(),
            unconfirmed_reads: 0,
            unpersisted: VecDeque::new(),
            apply_after_persist: false,
            installing: None,
            next_install: 0,
            was_leader: false,
            leader_ready_sent: false,
        })
    }

    pub fn id(&self) -> u32 {
        self.spec.group
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn voters(&self) -> Vec<u64> {
        self.raw.store().conf_state().voters.clone()
    }

    pub fn kv(&self) -> &KvState {
        &self.kv
    }

    /// Starts an election now (a single-voter group elects itself at once).
    pub fn campaign(&mut self) -> Result<(), String> {
        self.raw.campaign().map_err(|e| e.to_string())
    }

    pub fn tick(&mut self, now_ns: Option<u64>) {
        self.raw.tick();
        // check_quorum may have made this leader step down.
        self.sync_lease_role(now_ns);
    }

    /// Feeds a Raft message from a peer, with the echo of the frame it came in (see
    /// `lease`) and one clock sample. Acknowledgements renew the lease before raft-rs sees
    /// them; a step-down invalidates it before this returns. Errors (e.g. a message from an
    /// unknown peer) are returned for logging; they never corrupt state.
    pub fn step(&mut self, msg: Message, echo_ns: u64, now_ns: Option<u64>) -> Result<(), String> {
        if matches!(
            msg.get_msg_type(),
            MessageType::MsgAppendResponse | MessageType::MsgHeartbeatResponse
        ) {
            self.lease.on_ack(msg.from, msg.term, echo_ns, now_ns);
        }
        let r = self.raw.step(msg).map_err(|e| e.to_string());
        self.sync_lease_role(now_ns);
        r
    }

    /// Keeps the lease tracker's view of leadership equal to raft-rs's: a new leadership
    /// starts without a lease; a lost one invalidates it at once (rule 7).
    fn sync_lease_role(&mut self, now_ns: Option<u64>) {
        let leading = self.is_leader();
        if leading && (!self.lease.is_leader() || self.lease.term() != self.term()) {
            let voters = self.raw.store().conf_state().voters.clone();
            self.lease.on_become_leader(self.term(), &voters);
            if self.applied_term == self.term() {
                self.lease.on_own_term_applied(self.term());
            }
        } else if !leading && self.lease.is_leader() {
            let reason = if self.term() > self.lease.term() {
                Invalidation::HigherTerm
            } else {
                Invalidation::StepDown
            };
            self.lease.invalidate(reason, now_ns);
        }
    }

    /// Switches one lease rule off. Only for the fault tests that prove the checker catches
    /// the resulting stale reads (`unsafe_disable_lease_rule`, needs `debug_commands`).
    pub fn set_unsafe_lease_rule(&mut self, rule: Option<UnsafeRule>) {
        self.lease.set_unsafe_disabled(rule);
    }

    /// Invalidates the lease now (shutdown, storage failure).
    pub fn invalidate_lease(&mut self, reason: Invalidation, now_ns: Option<u64>) {
        self.lease.invalidate(reason, now_ns);
    }

    pub fn lease_valid(&self, now_ns: Option<u64>) -> bool {
        self.lease.is_valid(now_ns)
    }

    pub fn lease_remaining_ns(&self, now_ns: Option<u64>) -> u64 {
        self.lease.remaining_ns(now_ns)
    }

    pub fn lease_stats(&self) -> &LeaseStats {
        self.lease.stats()
    }

    /// Proposes a write. Returns the proposal id that a later [`Event::Applied`] or
    /// [`Event::Lost`] names.
    pub fn propose(&mut self, cmd: &LogCommand) -> Result<u64, Reply> {
        if !self.is_leader() {
            return Err(self.not_leader_error());
        }
        let data = cmd.encode();
        self.register_proposal(|raw, ctx| raw.propose(ctx, data))
            .map_err(|e| match e {
                raft::Error::ProposalDropped => {
                    Reply::err("TRYAGAIN shard group is changing leader; the write was not applied")
                }
                e => Reply::err(format!("ERR raft proposal failed: {e}")),
            })
    }

    /// Proposes through `propose` with a fresh proposal context and remembers the log slot
    /// it took, so apply can tell our entry from another leader's at that index.
    fn register_proposal(
        &mut self,
        propose: impl FnOnce(&mut RawNode<LogStorage>, Vec<u8>) -> raft::Result<()>,
    ) -> raft::Result<u64> {
        let id = self.next_proposal;
        let ctx = encode_context(self.spec.node_id, self.spec.incarnation, id);
        propose(&mut self.raw, ctx)?;
        self.next_proposal += 1;
        let index = self.raw.raft.raft_log.last_index();
        self.proposed.insert(index, id);
        Ok(id)
    }

    fn not_leader_error(&self) -> Reply {
        Reply::err(format!(
            "TRYAGAIN shard group {} has no leader on this node (leader: {})",
            self.spec.group,
            match self.leader_id() {
                0 => "unknown".to_string(),
                id => format!("node {id}"),
            }
        ))
    }

    /// Where a read may be served from now. The one-voter group is its own quorum, so its
    /// leader may read locally once it has applied an entry of its own term; larger groups
    /// confirm leadership with ReadIndex (lease reads come later through this same gate).
    pub fn read_gate(&self, now_ns: Option<u64>) -> ReadGate {
        if !self.is_leader() {
            return ReadGate::NotLeader {
                leader: self.leader_id(),
            };
        }
        // With a lease rule switched off for the fault tests (never in production), a lease
        // that the rule would have ended or not yet started serves reads anyway.
        let unsafe_lease = |rule| self.lease.rule_disabled(rule) && self.lease.is_valid(now_ns);
        if self.is_transferring() && !unsafe_lease(UnsafeRule::TransferInvalidates) {
            return ReadGate::Transferring;
        }
        // A half-installed state is never read: wait (with the caller's deadline) for the
        // swap and an applied entry of this term, which emits LeaderReady.
        if self.installing.is_some()
            || (self.applied_term != self.term() && !unsafe_lease(UnsafeRule::OwnTermApplied))
        {
            return ReadGate::NotReady;
        }
        let cs = self.raw.store().conf_state();
        if (cs.voters == [self.spec.node_id] && cs.voters_outgoing.is_empty())
            || self.lease.is_valid(now_ns)
        {
            ReadGate::Local
        } else {
            ReadGate::ReadIndex
        }
    }

    /// Reads the applied state. Callers must have passed the read gate (or a ReadIndex for
    /// this read) with no await in between.
    pub fn read_local(&self, op: &ReadOp, now_ms: u64) -> Reply {
        debug_assert!(self.installing.is_none(), "read during a snapshot install");
        self.kv.read(op, now_ms)
    }

    /// Starts a ReadIndex round; [`Event::ReadReady`] with the returned id follows once it
    /// is safe to read. raft-rs may drop the request silently (no own-term commit yet,
    /// leadership transfer): the caller must bound its wait.
    pub fn read_index(&mut self) -> Result<u64, Reply> {
        if !self.is_leader() {
            return Err(self.not_leader_error());
        }
        let id = self.next_read;
        self.next_read += 1;
        self.unconfirmed_reads += 1;
        self.raw.read_index(id.to_le_bytes().to_vec());
        Ok(id)
    }

    /// Whether this leader is handing leadership over (raft-rs drops proposals meanwhile).
    pub fn is_transferring(&self) -> bool {
        self.is_leader() && self.raw.raft.lead_transferee.is_some()
    }

    /// Asks `to` to take over leadership (it must be a voter; raft-rs ignores it otherwise).
    /// The lease ends first (rule 6): the transferee campaigns at once and its votes bypass
    /// the followers' lease check.
    pub fn transfer_leader(&mut self, to: u64, now_ns: Option<u64>) {
        self.lease.invalidate(Invalidation::Transfer, now_ns);
        self.raw.transfer_leader(to);
    }

    /// Index of the last entry in this node's log.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// Leader's view of `node`: (matched index, heard from it within the election timeout).
    pub fn progress_of(&self, node: u64) -> Option<(u64, bool)> {
        if !self.is_leader() {
            return None;
        }
        self.raw
            .raft
            .prs()
            .get(node)
            .map(|p| (p.matched, p.recent_active))
    }

    /// Tells raft-rs how sending a snapshot to `to` went (it stops waiting on it).
    pub fn report_snapshot(&mut self, to: u64, status: raft::SnapshotStatus) {
        self.raw.report_snapshot(to, status);
    }

    /// Tells raft-rs that `to` could not be reached (it stops pipelining appends to it).
    pub fn report_unreachable(&mut self, to: u64) {
        self.raw.report_unreachable(to);
    }

    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    /// Takes the next Ready (see the module doc). Committed entries are applied here and
    /// their outcomes appended to `events`. Returns None when there is nothing to do.
    pub fn take_ready(
        &mut self,
        events: &mut Vec<Event>,
        now_ns: Option<u64>,
    ) -> Option<ReadyWork> {
        if !self.raw.has_ready() {
            return None;
        }
        self.clock = now_ns;
        self.sync_lease_role(now_ns);
        let mut rd = self.raw.ready();
        let mut work = ReadyWork {
            number: rd.number(),
            messages: rd.take_messages(),
            ..Default::default()
        };

        if !rd.snapshot().is_empty() {
            // raft-rs hands out no committed entries beyond a snapshot in the same Ready.
            let snap = rd.snapshot().clone();
            work.install = Some(self.begin_install(&snap, events));
            work.snapshot = Some(snap);
        }

        for rs in rd.take_read_states() {
            self.unconfirmed_reads = self.unconfirmed_reads.saturating_sub(1);
            if let Ok(b) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) {
                self.confirmed_reads
                    .push_back((rs.index, u64::from_le_bytes(b)));
            }
        }

        let committed = rd.take_committed_entries();
        if self.installing.is_some() {
            if let Some(last) = committed.last() {
                self.defer_committed(last.index);
            }
        } else {
            self.apply_entries(committed, events);
        }

        if !rd.entries().is_empty() {
            // Invariant: storage reflects the Ready before raft-rs sees it advanced.
            if let Err(e) = self.raw.mut_store().append(rd.entries()) {
                // raft-rs only emits appends consistent with its log; this is a bug.
                panic!("group {}: storage append: {e}", self.spec.group);
            }
            work.entries = rd.take_entries();
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs.clone());
            work.hard_state = Some(hs.clone());
        }
        let persisted_msgs = rd.take_persisted_messages();
        self.unpersisted.push_back((work.number, persisted_msgs));
        self.raw.advance_append_async(rd);
        if work.snapshot.is_some() {
            self.apply_after_persist = true;
        }
        self.advance_raft_applied();

        self.after_state_change(events);
        Some(work)
    }

    /// The Ready numbered `number` (and all before it) are durable. Returns the messages
    /// that had to wait for that (votes, append responses).
    pub fn on_persisted(&mut self, number: u64) -> Vec<Message> {
        self.raw.on_persist_ready(number);
        if self.apply_after_persist && self.unpersisted.iter().all(|(n, _)| *n <= number) {
            self.apply_after_persist = false;
            self.advance_raft_applied();
        }
        let mut out = Vec::new();
        while let Some((n, _)) = self.unpersisted.front() {
            if *n > number {
                break;
            }
            if let Some((_, mut msgs)) = self.unpersisted.pop_front() {
                out.append(&mut msgs);
            }
        }
        out
    }

    /// Tells raft-rs how far the log is applied: never before a received snapshot is durable
    /// (`apply_after_persist`), never backwards. A durable snapshot counts as applied for
    /// raft-rs even while its state is still being decoded: its storage no longer holds the
    /// entries below it, and raft-rs reads from its applied index on (e.g. when campaigning).
    fn advance_raft_applied(&mut self) {
        if self.apply_after_persist {
            return;
        }
        let to = self
            .installing
            .as_ref()
            .map_or(self.applied_index, |i| i.index.max(self.applied_index));
        if to > self.raw.raft.raft_log.applied {
            self.raw.advance_apply_to(to);
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, events: &mut Vec<Event>) {
        for e in entries {
            if e.index <= self.applied_index {
                continue;
            }
            let mine = decode_context(&e.context).and_then(|(node, inc, p)| {
                (node == self.spec.node_id && inc == self.spec.incarnation).then_some(p)
            });
            let reply = match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => None, // leader's no-op
                EntryType::EntryNormal => Some(match LogCommand::decode(&e.data) {
                    Ok(cmd) => self.kv.apply(&cmd),
                    Err(err) => {
                        // Deterministic on every replica: all skip the same entry.
                        tracing::error!(group = self.spec.group, index = e.index, %err, "skipping undecodable log entry");
                        Reply::err(format!("ERR {err}"))
                    }
                }),
                EntryType::EntryConfChange => {
                    let cc: Result<ConfChange, _> = protobuf::Message::parse_from_bytes(&e.data);
                    self.apply_conf_change(cc.map(|c| c.into_v2()), e.index, events);
                    Some(Reply::Ok)
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: Result<ConfChangeV2, _> = protobuf::Message::parse_from_bytes(&e.data);
                    self.apply_conf_change(cc, e.index, events);
                    Some(Reply::Ok)
                }
            };
            self.applied_index = e.index;
            self.applied_term = e.term;
            if e.term == self.term() && self.is_leader() {
                self.lease.on_own_term_applied(e.term);
            }

            // Match the slot to our own proposals: earlier slots we proposed into were taken
            // by other entries (never applied), this slot is ours only if the context says so.
            while let Some((&idx, &p)) = self.proposed.first_key_value() {
                if idx > e.index {
                    break;
                }
                self.proposed.pop_first();
                if idx == e.index && mine == Some(p) {
                    events.push(Event::Applied {
                        proposal: p,
                        reply: reply.clone().unwrap_or(Reply::Ok),
                    });
                } else {
                    events.push(Event::Lost { proposal: p });
                }
            }
        }
        self.release_reads(events);
    }

    /// Confirmed ReadIndex requests whose index is applied may read now.
    fn release_reads(&mut self, events: &mut Vec<Event>) {
        if self.installing.is_some() {
            return;
        }
        while let Some(&(index, read)) = self.confirmed_reads.front() {
            if index > self.applied_index {
                break;
            }
            self.confirmed_reads.pop_front();
            events.push(Event::ReadReady { read });
        }
    }

    /// Applies a conf change entry and updates the member map from it: additions carry
    /// the new member's addresses in the conf change context.
    fn apply_conf_change(
        &mut self,
        cc: Result<ConfChangeV2, protobuf::ProtobufError>,
        index: u64,
        events: &mut Vec<Event>,
    ) {
        let cc = match cc {
            Ok(cc) => cc,
            Err(e) => {
                tracing::error!(group = self.spec.group, index, %e, "undecodable conf change");
                return;
            }
        };
        match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                // A removed peer's old acks must never count again: recompute at once.
                self.lease.on_config_change(&cs.voters, self.clock);
                if !cs.voters.contains(&self.spec.node_id) && self.lease.is_leader() {
                    self.lease.invalidate(Invalidation::Removed, self.clock);
                }
                self.raw.mut_store().set_conf_state(cs)
            }
            Err(e) => {
                tracing::error!(group = self.spec.group, index, %e, "conf change rejected");
                return;
            }
        }
        let added = Member::decode(cc.get_context()).ok();
        for change in cc.get_changes() {
            match change.get_change_type() {
                ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                    if let Some(m) = added.as_ref().filter(|m| m.id == change.node_id) {
                        self.members.insert(m.id, m.clone());
                    }
                }
                ConfChangeType::RemoveNode => {
                    self.members.remove(&change.node_id);
                }
            }
        }
        tracing::info!(group = self.spec.group, index, voters = ?self.raw.store().conf_state().voters, learners = ?self.raw.store().conf_state().learners, "membership changed");
        events.push(Event::MembersChanged);
    }

    /// Members of this group (addresses of every voter and learner it knows).
    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn learners(&self) -> Vec<u64> {
        self.raw.store().conf_state().learners.clone()
    }

    /// Proposes a membership change (leader only; one at a time, as raft-rs requires).
    /// Returns the proposal id an [`Event::Applied`] names once it is in effect.
    pub fn propose_membership(&mut self, change: &MembershipChange) -> Result<u64, Reply> {
        if !self.is_leader() {
            return Err(self.not_leader_error());
        }
        let cs = self.raw.store().conf_state().clone();
        let is_voter = |id: u64| cs.voters.contains(&id);
        let is_learner = |id: u64| cs.learners.contains(&id);
        let (kind, node, context) = match change {
            MembershipChange::AddLearner(m) => {
                if is_voter(m.id) || is_learner(m.id) {
                    return Err(Reply::err(format!("ERR node {} is already a member", m.id)));
                }
                (ConfChangeType::AddLearnerNode, m.id, m.encode())
            }
            MembershipChange::Promote(id) => {
                if !is_learner(*id) {
                    return Err(Reply::err(format!("ERR node {id} is not a learner")));
                }
                // Re-send the address so the promotion is self-contained.
                let ctx = self.members.get(id).map(Member::encode).unwrap_or_default();
                (ConfChangeType::AddNode, *id, ctx)
            }
            MembershipChange::Remove(id) => {
                if !is_voter(*id) && !is_learner(*id) {
                    return Err(Reply::err(format!("ERR node {id} is not a member")));
                }
                if is_voter(*id) && cs.voters.len() == 1 {
                    return Err(Reply::err("ERR cannot remove the last voter"));
                }
                if *id == self.spec.node_id {
                    return Err(Reply::err(
                        "TRYAGAIN the leader cannot remove itself; transfer leadership first",
                    ));
                }
                (ConfChangeType::RemoveNode, *id, Vec::new())
            }
        };
        if self.raw.raft.has_pending_conf() {
            return Err(Reply::err(
                "TRYAGAIN another membership change of this group is in progress",
            ));
        }
        let mut single = ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = node;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        cc.set_context(context.into());
        self.register_proposal(|raw, ctx| raw.propose_conf_change(ctx, cc))
            .map_err(|e| match e {
                raft::Error::ProposalDropped => {
                    Reply::err("TRYAGAIN membership change dropped (leadership changing); retry")
                }
                e => Reply::err(format!("ERR membership change failed: {e}")),
            })
    }

    /// A learner the leader should promote now: one whose acknowledged log has caught up
    /// with the commit index. None while a conf change is pending.
    pub fn learner_to_promote(&self) -> Option<u64> {
        if !self.is_leader() || self.raw.raft.has_pending_conf() {
            return None;
        }
        let commit = self.commit_index();
        self.raw
            .store()
            .conf_state()
            .learners
            .iter()
            .copied()
            .find(|l| {
                self.progress_of(*l)
                    .is_some_and(|(matched, _)| matched >= commit)
            })
    }

    /// The voter (other than this node) whose log is most up to date, to hand leadership
    /// to before this node is removed.
    pub fn best_transferee(&self) -> Option<u64> {
        let me = self.spec.node_id;
        self.raw
            .store()
            .conf_state()
            .voters
            .iter()
            .filter(|v| **v != me)
            .filter_map(|v| self.progress_of(*v).map(|(m, active)| (active, m, *v)))
            .max()
            .map(|(_, _, v)| v)
    }

    fn after_state_change(&mut self, events: &mut Vec<Event>) {
        let leader = self.is_leader();
        if leader != self.was_leader {
            self.was_leader = leader;
            self.leader_ready_sent = false;
            events.push(Event::RoleChanged {
                leader,
                term: self.term(),
            });
            if !leader {
                // ReadIndex rounds of a deposed leader never complete.
                self.confirmed_reads.clear();
                self.unconfirmed_reads = 0;
                events.push(Event::ReadsFailed);
            }
        }
        if leader && !self.leader_ready_sent && self.applied_term == self.term() {
            self.leader_ready_sent = true;
            events.push(Event::LeaderReady);
        }
    }

    /// The snapshot the log currently starts after (the virtual bootstrap snapshot for a
    /// new group). The runtime persists it once for a new group so the initial
    /// configuration is durable and the WAL sees a log that starts where Raft's does.
    pub fn base_snapshot(&self) -> Snapshot {
        self.raw.store().current_snapshot()
    }

    /// Raft needs a fresher snapshot to catch a follower up: checkpoint soon.
    pub fn snapshot_wanted(&self) -> bool {
        self.raw.store().snapshot_wanted()
    }

    /// Whether Readies are still waiting for durability (checkpoints must wait).
    pub fn has_unpersisted(&self) -> bool {
        !self.unpersisted.is_empty()
    }

    /// Keys whose expiry has passed at `now_ms` (the leader proposes their deletion).
    pub fn expired_keys(&self, now_ms: u64, limit: usize) -> Vec<Bytes> {
        if self.installing.is_some() {
            return Vec::new();
        }
        self.kv.expired_keys(now_ms, limit)
    }
}

/// A group's state at a compaction point, for the WAL.
pub struct Checkpoint {
    pub snapshot: Snapshot,
    pub hard_state: HardState,
    pub tail: Vec<Entry>,
}
