//! Counters a [`super::LeaseTracker`] keeps for metrics.

/// Why a lease was invalidated (rules 6/7). Each is counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// This node stopped being leader (any cause not listed separately).
    StepDown,
    /// A message of a newer term was seen: a newer election may have completed.
    HigherTerm,
    /// A leadership transfer started: the transferee campaigns with `MsgTimeoutNow`, which
    /// bypasses the followers' refusal to vote. Fences the lease for the rest of the term.
    Transfer,
    /// This node was removed from the group.
    Removed,
    /// The group is shutting down.
    Shutdown,
    /// Persistence failed: this node's own state cannot be trusted. Fences the lease for the
    /// rest of the term.
    StorageError,
}

impl Invalidation {
    pub const ALL: [Invalidation; 6] = [
        Invalidation::StepDown,
        Invalidation::HigherTerm,
        Invalidation::Transfer,
        Invalidation::Removed,
        Invalidation::Shutdown,
        Invalidation::StorageError,
    ];

    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Invalidation::StepDown => "step_down",
            Invalidation::HigherTerm => "higher_term",
            Invalidation::Transfer => "transfer",
            Invalidation::Removed => "removed",
            Invalidation::Shutdown => "shutdown",
            Invalidation::StorageError => "storage_error",
        }
    }

    /// Whether the node is no longer leader after this invalidation. Transfer and storage
    /// errors leave raft-rs leader but fence the lease for the term instead.
    pub(super) fn ends_leadership(self) -> bool {
        match self {
            Invalidation::StepDown
            | Invalidation::HigherTerm
            | Invalidation::Removed
            | Invalidation::Shutdown => true,
            Invalidation::Transfer | Invalidation::StorageError => false,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why an acknowledgement did not count towards the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoredAck {
    /// `now_ns` was `None`.
    ClockUnreadable,
    /// This node is not leader.
    NotLeader,
    /// The ack's term is older than the leader's.
    StaleTerm,
    /// The ack's term is newer: it also invalidates the lease ([`Invalidation::HigherTerm`]).
    NewerTerm,
    /// The ack names this node as its sender.
    FromSelf,
    /// The sender is not a current voter (a learner, a removed or an unknown node).
    NotVoter,
    /// The ack carries no echo (0): the sender never received a frame from us.
    NoEcho,
    /// The echo is later than `now`: an instant in the future is not a valid anchor.
    FutureEcho,
    /// The echo is not after the last invalidation: it proves contact with a leadership
    /// that has since been invalidated.
    BeforeInvalidation,
    /// The lease is fenced for this term (after a transfer or storage error).
    Fenced,
}

impl IgnoredAck {
    pub const ALL: [IgnoredAck; 10] = [
        IgnoredAck::ClockUnreadable,
        IgnoredAck::NotLeader,
        IgnoredAck::StaleTerm,
        IgnoredAck::NewerTerm,
        IgnoredAck::FromSelf,
        IgnoredAck::NotVoter,
        IgnoredAck::NoEcho,
        IgnoredAck::FutureEcho,
        IgnoredAck::BeforeInvalidation,
        IgnoredAck::Fenced,
    ];

    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoredAck::ClockUnreadable => "clock_unreadable",
            IgnoredAck::NotLeader => "not_leader",
            IgnoredAck::StaleTerm => "stale_term",
            IgnoredAck::NewerTerm => "newer_term",
            IgnoredAck::FromSelf => "from_self",
            IgnoredAck::NotVoter => "not_voter",
            IgnoredAck::NoEcho => "no_echo",
            IgnoredAck::FutureEcho => "future_echo",
            IgnoredAck::BeforeInvalidation => "before_invalidation",
            IgnoredAck::Fenced => "fenced",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Lease counters, monotonically increasing over the tracker's life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseStats {
    acks_used: u64,
    acks_ignored: [u64; IgnoredAck::ALL.len()],
    invalidations: [u64; Invalidation::ALL.len()],
    extensions: u64,
}

impl LeaseStats {
    /// Acknowledgements that were recorded (whether or not they extended the lease).
    pub fn acks_used(&self) -> u64 {
        self.acks_used
    }

    pub fn acks_ignored(&self, reason: IgnoredAck) -> u64 {
        self.acks_ignored[reason.index()]
    }

    pub fn acks_ignored_total(&self) -> u64 {
        self.acks_ignored.iter().sum()
    }

    pub fn invalidations(&self, reason: Invalidation) -> u64 {
        self.invalidations[reason.index()]
    }

    pub fn invalidations_total(&self) -> u64 {
        self.invalidations.iter().sum()
    }

    /// Times the lease end moved forward.
    pub fn extensions(&self) -> u64 {
        self.extensions
    }

    pub(super) fn ack_used(&mut self) {
        self.acks_used += 1;
    }

    pub(super) fn ack_ignored(&mut self, reason: IgnoredAck) {
        self.acks_ignored[reason.index()] += 1;
    }

    pub(super) fn invalidated(&mut self, reason: Invalidation) {
        self.invalidations[reason.index()] += 1;
    }

    pub(super) fn extended(&mut self) {
        self.extensions += 1;
    }
}
