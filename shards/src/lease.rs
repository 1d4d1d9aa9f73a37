//! Leader leases: serving linearizable reads from the leader's local state without a Raft
//! round per read.
//!
//! [`LeaseTracker`] is pure bookkeeping, one per shard group, owned by the group's core. It
//! performs no I/O and never reads a clock: every time value is handed in by the caller as
//! `now_ns: Option<u64>` (a CLOCK_BOOTTIME reading; `None` means the clock could not be
//! read) or as an echoed send time.
//!
//! # What a lease promises
//!
//! While `is_valid(now)` holds at leader L of term T, no other node has become leader of a
//! term higher than T, so no write has been committed anywhere except by L itself. A read
//! that L executes, at that instant, against a state machine that has applied its own
//! commit index (and, rule 5, at least one entry of term T) therefore observes every write
//! committed before the read began: it is linearizable. The check and the read must happen
//! without yielding in between, using one `now` sample taken for that check.
//!
//! # Where the instants come from
//!
//! Every frame a leader sends carries its CLOCK_BOOTTIME send time. A follower echoes, on
//! each Raft message of a group it sends back, the send time `E` of the latest frame it
//! received from that leader for that group. When L receives a `MsgAppendResponse` or
//! `MsgHeartbeatResponse` (accepted or rejected: both prove contact) from follower f in term
//! T with echo `E`, then `E` is an instant *on L's own clock* no later than the moment f
//! heard from L. Clock offsets between nodes never enter the argument: the leader only ever
//! compares readings of its own clock.
//!
//! # The follower's promise
//!
//! With check-quorum on, raft-rs makes a follower that knows a leader ignore `MsgRequestVote`
//! and `MsgRequestPreVote` for a higher term while `election_elapsed < election_timeout`
//! (`in_lease` in `Raft::step`); `election_elapsed` is reset to 0 when the follower steps a
//! `MsgAppend`, `MsgHeartbeat` or `MsgSnapshot` from the leader of its term, and grows by one
//! per tick. A follower also campaigns itself only after its randomized election timeout,
//! which is at least `election_timeout` ticks. If ticks are driven so that a follower applies
//! at most `floor(x / tick) + 1` ticks in any interval of length `x` of its own clock, then
//! after it stepped L's message it refuses every vote (its own included) for at least
//! `W = (election_ticks - 1) * tick` of its own clock.
//!
//! Clocks may run at slightly different rates. With a drift bound `drift` (over any interval
//! of length `W`, the leader's and the follower's clocks advance by amounts that differ by
//! at most `drift`), that refusal lasts at least `W - drift` of the leader's clock, counted
//! from an instant no earlier than `E` (the follower stepped the message after L sent it).
//! So follower f grants no vote before L's clock reads `E + W - drift`.
//!
//! # The lease
//!
//! For the current configuration with `n` voters and quorum `q = n / 2 + 1`, the tracker
//! keeps the maximum echo acknowledged by each voter, counts L itself at `now` and a voter
//! never heard from at 0, and takes `anchor` = the q-th freshest of those instants. At least
//! `q` voters (L among them) then have promises starting at or after `anchor`: L refuses
//! votes because it is leader of T and has not been invalidated, each follower in the set
//! until `anchor + W - drift` at the earliest. The lease ends at
//! `lease_until = anchor + duration` with `duration < W - drift`
//! ([`max_lease_duration_ns`]), and `is_valid` requires `now < lease_until`.
//!
//! Any other node becoming leader of a term T' > T needs votes (and pre-votes) from a
//! majority of the configuration; every majority intersects the q voters above, and none of
//! them grants a vote before L's clock reads `anchor + W - drift > lease_until`. Within term
//! T, Raft elects at most one leader. Hence while `now < lease_until`, L is the only node
//! that can commit, and its local reads are linearizable. Extensions take the maximum of the
//! old and new end, which is sound because each end is justified by promises on its own.
//!
//! # Acknowledgements that must not count
//!
//! - **Older terms.** An ack of a term before T echoes a frame L sent in an earlier
//!   leadership. The follower has since moved to a newer term, which it does only by voting
//!   or by hearing from a newer leader; after granting a vote raft-rs clears its known
//!   leader, so its refusal no longer holds. The promise behind the echo is void.
//! - **After step-down.** Once L is not leader, L itself may vote, and followers may be
//!   following someone else; an ack that arrives late still describes contact with a
//!   leadership that has ended. Acks are accepted only while leader, in the current term, and
//!   with an echo strictly after the last invalidation instant, so a late ack cannot rebuild
//!   a lease even if L becomes leader again.
//! - **Removed peers and learners.** Their votes do not count towards a majority of the
//!   current configuration, so their refusal to vote protects nothing; counting them would
//!   let a minority of real voters look like a quorum. A membership change recomputes the
//!   lease at once from the remaining voters' acks only (this is the one place where
//!   `lease_until` may shrink other than invalidation): shrinking the group must not keep an
//!   end justified by a departed voter, and growing it may need acks the new voter has not
//!   sent yet (it starts at 0).
//!
//! # Why invalidation wins
//!
//! Invalidations mark events after which the promises above no longer protect L: stepping
//! down or seeing a higher term (a newer election may have completed), a leadership
//! transfer (the transferee campaigns on `MsgTimeoutNow`, and votes for such a campaign
//! bypass the followers' `in_lease` check), removal, shutdown, a storage error. Invalidation
//! sets `lease_until = 0`, forgets every ack and records the instant. An extension is only
//! computed from echoes strictly after that instant, so an ack that was in flight (or an
//! extension racing with the invalidation) can never revive the lease. A transfer or a
//! storage error also fences the lease for the rest of the term: a `MsgTimeoutNow` may still
//! be in flight after an aborted transfer, and nothing in the acks can prove it will not
//! arrive, so the lease stays off until a new term's leadership (reads fall back to
//! ReadIndex meanwhile).
//!
//! # Clock assumptions
//!
//! - **Monotonic**: the leader's readings never go backwards (CLOCK_BOOTTIME), so echoes,
//!   `now` samples and the invalidation instant are comparable.
//! - **Counts across suspend**: a suspended leader must see the suspension as elapsed time,
//!   or it would wake up with a lease that looks valid while followers' election timers ran
//!   (CLOCK_MONOTONIC would be wrong here). A follower's ticks stopping during its own
//!   suspension only delays its votes, which is safe.
//! - **Bounded rate drift**: clocks may have any offset but their rates differ by at most
//!   `drift` over `W` (NTP slews CLOCK_BOOTTIME by at most 500 ppm per node; choose `drift`
//!   at least `2 * 500e-6 * W` plus margin for tick scheduling).
//! - **Unreadable clock**: `now = None` makes `is_valid` false and acks ignored. An
//!   invalidation with an unreadable clock uses the latest known reading and additionally
//!   moves the invalidation instant to the next readable `now` it is given, so every echo
//!   possibly sent before the invalidation is discarded.
//!
//! # Requirements on the caller
//!
//! - Feed only `MsgAppendResponse` / `MsgHeartbeatResponse` of the group, with the message's
//!   term and the echo of the frame it arrived in.
//! - The echoed frame must have carried a `MsgAppend`, `MsgHeartbeat` or `MsgSnapshot` of this
//!   group from this leader that the follower had already stepped when it produced the
//!   acknowledgement (the instant its election timer was reset).
//! - Invalidate before the event takes effect: on a transfer, before the `MsgTimeoutNow` can
//!   leave; on a role change, before the next read check.
//! - Only single-voter membership changes (as leasekv proposes them): any majority of the
//!   old configuration intersects any majority of the new one. A joint configuration is not
//!   modelled: pass an empty voter list to keep the lease off while one is in effect.

mod config;
mod stats;

/// A lease rule that the fault tests may switch off to prove their checker sees the bug
/// the rule prevents (leasekv's `unsafe_disable_lease_rule`, honoured only with
/// `debug_commands = true`). Never disabled in production: each makes stale reads possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsafeRule {
    /// Rule 5 off: the lease may be valid before the leader applied an entry of its term.
    OwnTermApplied,
    /// Rule 6 off: starting a leadership transfer leaves the lease valid.
    TransferInvalidates,
}

impl UnsafeRule {
    /// The rule with this number in the lease rules (docs/lease.md), if it can be disabled.
    pub fn from_number(n: u8) -> Option<UnsafeRule> {
        match n {
            5 => Some(UnsafeRule::OwnTermApplied),
            6 => Some(UnsafeRule::TransferInvalidates),
            _ => None,
        }
    }

    pub fn number(self) -> u8 {
        match self {
            UnsafeRule::OwnTermApplied => 5,
            UnsafeRule::TransferInvalidates => 6,
        }
    }
}

pub use config::{max_lease_duration_ns, LeaseConfig, LeaseConfigError};
pub use stats::{IgnoredAck, Invalidation, LeaseStats};

/// The latest echo a voter acknowledged in the current leadership (0: none yet).
#[derive(Clone, Copy, Debug)]
struct VoterAck {
    id: u64,
    echo_ns: u64,
}

/// Lease state of one shard group on this node. See the module documentation for the
/// safety argument.
#[derive(Debug)]
pub struct LeaseTracker {
    cfg: LeaseConfig,
    self_id: u64,
    /// Current voters, sorted by id, deduplicated. Invariant: never contains learners.
    voters: Vec<VoterAck>,
    /// Reused by `anchor` so that an ack allocates nothing. Capacity >= voters.len().
    scratch: Vec<u64>,
    leader: bool,
    term: u64,
    own_term_applied: bool,
    /// Highest term in which a transfer or storage error fenced the lease.
    fenced_term: Option<u64>,
    /// Invariant: 0 whenever not leader or fenced; only grows between invalidations and
    /// membership changes.
    lease_until: u64,
    /// Echoes at or before this instant never count.
    invalidated_at: u64,
    /// An invalidation happened with an unreadable clock: the next readable `now` becomes
    /// the invalidation instant.
    barrier_pending: bool,
    /// Latest `now` seen, for invalidations with an unreadable clock.
    last_known_now: u64,
    /// Test-only weakening (see [`UnsafeRule`]); `None` on every production path.
    disabled: Option<UnsafeRule>,
    stats: LeaseStats,
}

impl LeaseTracker {
    pub fn new(cfg: LeaseConfig, self_id: u64) -> Self {
        LeaseTracker {
            cfg,
            self_id,
            voters: Vec::new(),
            scratch: Vec::new(),
            leader: false,
            term: 0,
            own_term_applied: false,
            fenced_term: None,
            lease_until: 0,
            invalidated_at: 0,
            barrier_pending: false,
            last_known_now: 0,
            disabled: None,
            stats: LeaseStats::default(),
        }
    }

    /// Switches one rule off (tests of the fault harness only; see [`UnsafeRule`]).
    pub fn set_unsafe_disabled(&mut self, rule: Option<UnsafeRule>) {
        self.disabled = rule;
    }

    /// Whether `rule` was switched off with [`LeaseTracker::set_unsafe_disabled`].
    pub fn rule_disabled(&self, rule: UnsafeRule) -> bool {
        self.disabled == Some(rule)
    }

    /// Became leader in `term` with these voters (learners excluded). Starts with no lease;
    /// acks of any earlier leadership are forgotten. A term older than one already seen is
    /// a caller bug and leaves the tracker not leader.
    pub fn on_become_leader(&mut self, term: u64, voters: &[u64]) {
        self.lease_until = 0;
        self.own_term_applied = false;
        if term < self.term {
            self.leader = false;
            return;
        }
        self.leader = true;
        self.term = term;
        self.set_voters(voters);
        for v in &mut self.voters {
            v.echo_ns = 0;
        }
    }

    /// Rule 5: an entry of the leader's own `term` has been applied; before this the lease
    /// is never valid.
    pub fn on_own_term_applied(&mut self, term: u64) {
        if self.leader && term == self.term {
            self.own_term_applied = true;
        }
    }

    /// An acknowledgement (`MsgAppendResponse` or `MsgHeartbeatResponse`, accepted or
    /// rejected) from `from` in `term`, echoing `echo_ns`. See [`IgnoredAck`] for when it
    /// does not count; a newer term also invalidates. Allocates nothing.
    pub fn on_ack(&mut self, from: u64, term: u64, echo_ns: u64, now_ns: Option<u64>) {
        let Some(now) = now_ns else {
            self.stats.ack_ignored(IgnoredAck::ClockUnreadable);
            return;
        };
        self.observe_now(now);
        if let Err(reason) = self.check_ack(from, term, echo_ns, now) {
            self.stats.ack_ignored(reason);
            if reason == IgnoredAck::NewerTerm {
                self.invalidate(Invalidation::HigherTerm, Some(now));
            }
            return;
        }
        if let Ok(i) = self.voter_index(from) {
            let slot = &mut self.voters[i].echo_ns;
            *slot = (*slot).max(echo_ns);
        }
        self.stats.ack_used();
        if let Some(until) = self
            .anchor(now)
            .map(|a| a.saturating_add(self.cfg.duration_ns))
        {
            if until > self.lease_until {
                self.lease_until = until;
                self.stats.extended();
            }
        }
    }

    /// The voter set changed (learners excluded): acks of departed voters are dropped, new
    /// voters start at 0, and the lease end is recomputed from scratch at once — it may
    /// shrink here. With an unreadable clock the lease is dropped.
    pub fn on_config_change(&mut self, voters: &[u64], now_ns: Option<u64>) {
        self.set_voters(voters);
        if let Some(now) = now_ns {
            self.observe_now(now);
        }
        self.lease_until = match now_ns {
            Some(now) if self.leader && !self.fenced() => self
                .anchor(now)
                .map_or(0, |a| a.saturating_add(self.cfg.duration_ns)),
            _ => 0,
        };
    }

    /// Rules 6/7: drop the lease now. Every ack is forgotten and only echoes strictly after
    /// this instant count again. (With rule 6 switched off, a transfer is ignored here.)
    pub fn invalidate(&mut self, reason: Invalidation, now_ns: Option<u64>) {
        if reason == Invalidation::Transfer && self.rule_disabled(UnsafeRule::TransferInvalidates) {
            return;
        }
        self.stats.invalidated(reason);
        self.lease_until = 0;
        for v in &mut self.voters {
            v.echo_ns = 0;
        }
        match now_ns {
            Some(now) => {
                self.observe_now(now);
                self.invalidated_at = self.invalidated_at.max(now);
            }
            None => {
                self.invalidated_at = self.invalidated_at.max(self.last_known_now);
                self.barrier_pending = true;
            }
        }
        if reason.ends_leadership() {
            self.leader = false;
            self.own_term_applied = false;
        } else {
            self.fenced_term = Some(self.term);
        }
    }

    /// Valid iff leader, an own-term entry applied, not fenced, the clock readable, lease
    /// duration non-zero and `now < lease_until`. A group whose only voter is this node
    /// needs no acks: its anchor is always `now`.
    pub fn is_valid(&self, now_ns: Option<u64>) -> bool {
        self.lease_end(now_ns).is_some()
    }

    /// Nanoseconds of lease left at `now` (0 if not valid).
    pub fn remaining_ns(&self, now_ns: Option<u64>) -> u64 {
        match (self.lease_end(now_ns), now_ns) {
            (Some(end), Some(now)) => end.saturating_sub(now),
            _ => 0,
        }
    }

    pub fn stats(&self) -> &LeaseStats {
        &self.stats
    }

    /// The current lease end on the leader's clock (0: none). For observability and tests.
    pub fn lease_until_ns(&self) -> u64 {
        self.lease_until
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// The lease end if the lease is valid at `now`.
    fn lease_end(&self, now_ns: Option<u64>) -> Option<u64> {
        let now = now_ns?;
        let own_term_applied =
            self.own_term_applied || self.rule_disabled(UnsafeRule::OwnTermApplied);
        if !self.leader || !own_term_applied || self.fenced() || self.cfg.duration_ns == 0 {
            return None;
        }
        let end = if self.solo() {
            now.saturating_add(self.cfg.duration_ns)
        } else {
            self.lease_until
        };
        (now < end).then_some(end)
    }

    /// Why an ack must not count, if it must not.
    fn check_ack(&self, from: u64, term: u64, echo_ns: u64, now: u64) -> Result<(), IgnoredAck> {
        if !self.leader {
            return Err(IgnoredAck::NotLeader);
        }
        if term > self.term {
            return Err(IgnoredAck::NewerTerm);
        }
        if term < self.term {
            return Err(IgnoredAck::StaleTerm);
        }
        if from == self.self_id {
            return Err(IgnoredAck::FromSelf);
        }
        if self.voter_index(from).is_err() {
            return Err(IgnoredAck::NotVoter);
        }
        if echo_ns == 0 {
            return Err(IgnoredAck::NoEcho);
        }
        if echo_ns > now {
            return Err(IgnoredAck::FutureEcho);
        }
        if echo_ns <= self.invalidated_at {
            return Err(IgnoredAck::BeforeInvalidation);
        }
        if self.fenced() {
            return Err(IgnoredAck::Fenced);
        }
        Ok(())
    }

    /// The q-th freshest instant among this node (at `now`, if a voter) and the voters'
    /// acks; `None` if that is 0 (a quorum has not been heard from) or not after the last
    /// invalidation.
    fn anchor(&mut self, now: u64) -> Option<u64> {
        let n = self.voters.len();
        if n == 0 {
            return None;
        }
        self.scratch.clear();
        let me = self.self_id;
        self.scratch.extend(
            self.voters
                .iter()
                .map(|v| if v.id == me { now } else { v.echo_ns }),
        );
        let quorum = n / 2 + 1;
        // Ascending order: the q-th largest sits at index n - q.
        let (_, anchor, _) = self.scratch.select_nth_unstable(n - quorum);
        let anchor = *anchor;
        (anchor != 0 && anchor > self.invalidated_at).then_some(anchor)
    }

    /// Replaces the voter set, keeping the acks of voters that remain.
    fn set_voters(&mut self, voters: &[u64]) {
        let mut next: Vec<VoterAck> = voters
            .iter()
            .map(|&id| VoterAck {
                id,
                echo_ns: self.voter_index(id).map_or(0, |i| self.voters[i].echo_ns),
            })
            .collect();
        next.sort_unstable_by_key(|v| v.id);
        next.dedup_by_key(|v| v.id);
        self.scratch = Vec::with_capacity(next.len());
        self.voters = next;
    }

    fn voter_index(&self, id: u64) -> Result<usize, usize> {
        self.voters.binary_search_by_key(&id, |v| v.id)
    }

    fn solo(&self) -> bool {
        matches!(self.voters.as_slice(), [only] if only.id == self.self_id)
    }

    fn fenced(&self) -> bool {
        self.fenced_term == Some(self.term)
    }

    /// Records a readable clock sample; resolves an invalidation made while the clock was
    /// unreadable (it happened before this sample, so every echo up to it is discarded).
    fn observe_now(&mut self, now: u64) {
        self.last_known_now = self.last_known_now.max(now);
        if self.barrier_pending {
            self.invalidated_at = self.invalidated_at.max(now);
            self.barrier_pending = false;
        }
    }
}
