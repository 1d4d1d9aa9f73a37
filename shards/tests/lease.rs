//! Lease tracker rules, one test per rule, on simulated clock values (no sleeps). Each test
//! fails if the rule it names is broken.

use shards::lease::{
    max_lease_duration_ns, IgnoredAck, Invalidation, LeaseConfig, LeaseConfigError, LeaseTracker,
};

const ME: u64 = 1;
const TERM: u64 = 7;
const D: u64 = 1_000;

/// Leader of TERM with `voters`, own-term entry applied.
fn leader(voters: &[u64]) -> LeaseTracker {
    let mut t = LeaseTracker::new(LeaseConfig { duration_ns: D }, ME);
    t.on_become_leader(TERM, voters);
    t.on_own_term_applied(TERM);
    t
}

/// Deterministic pseudo-random numbers (xorshift) for "reads at random times".
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn anchor_is_the_quorum_th_freshest_instant() {
    // 3 voters: self (now) + acks at 100 and 50 -> second freshest = 100.
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM, 100, Some(150));
    assert_eq!(t.lease_until_ns(), 100 + D);
    t.on_ack(3, TERM, 50, Some(160));
    assert_eq!(t.lease_until_ns(), 100 + D);
    assert!(t.is_valid(Some(100 + D - 1)));
    assert!(!t.is_valid(Some(100 + D)));

    // 5 voters: one fresh ack and one stale one: the quorum (3) needs the older one.
    let mut t = leader(&[1, 2, 3, 4, 5]);
    t.on_ack(2, TERM, 100, Some(150));
    assert_eq!(t.lease_until_ns(), 0, "self + one ack is not a quorum of 5");
    assert!(!t.is_valid(Some(150)));
    t.on_ack(3, TERM, 50, Some(160));
    assert_eq!(t.lease_until_ns(), 50 + D);
    assert!(t.is_valid(Some(50 + D - 1)));
    assert!(!t.is_valid(Some(50 + D)));
}

#[test]
fn lease_end_never_moves_back_on_older_acks() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM, 100, Some(150));
    assert_eq!(t.lease_until_ns(), 100 + D);
    // Smaller echoes, from the same voter and from another one.
    t.on_ack(2, TERM, 40, Some(170));
    t.on_ack(3, TERM, 60, Some(180));
    assert_eq!(t.lease_until_ns(), 100 + D);
    assert_eq!(t.stats().extensions(), 1);
    // The per-voter maximum did not move back either: a from-scratch recompute (same
    // configuration) still finds voter 2 at 100.
    t.on_config_change(&[1, 2, 3], Some(190));
    assert_eq!(t.lease_until_ns(), 100 + D);
}

#[test]
fn many_reads_within_one_window_need_no_new_ack() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM, 1_000, Some(1_010));
    let acks = t.stats().acks_used();
    for i in 0..100 {
        assert!(t.is_valid(Some(1_010 + i * 9)), "read {i}");
    }
    assert_eq!(t.stats().acks_used(), acks, "checks consume nothing");
    assert!(!t.is_valid(Some(1_000 + D)), "and the window does end");
}

#[test]
fn steady_heartbeat_acks_keep_the_lease_warm_for_slow_reads() {
    // Realistic scale: 100 ms ticks, 10-tick election timeout, 50 ms drift margin.
    let tick = 100_000_000;
    let duration = max_lease_duration_ns(10, tick, 50_000_000).unwrap() - 1;
    let mut t = LeaseTracker::new(
        LeaseConfig {
            duration_ns: duration,
        },
        ME,
    );
    t.on_become_leader(TERM, &[1, 2, 3]);
    t.on_own_term_applied(TERM);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = 1_000_000_000_u64;
    let mut checks = 0;
    // A heartbeat every tick for 60 s; each follower answers after 0-30 ms of delay.
    for beat in 0..600 {
        let sent = start + beat * tick;
        for f in [2, 3] {
            t.on_ack(f, TERM, sent, Some(sent + rng.below(30_000_000)));
        }
        // Slow reads at random instants until the next beat: none refreshes anything.
        for _ in 0..5 {
            let at = sent + 30_000_000 + rng.below(tick);
            assert!(t.is_valid(Some(at)), "read at {at} after beat {beat}");
            checks += 1;
        }
    }
    assert_eq!(checks, 3_000);
    assert_eq!(t.stats().invalidations_total(), 0);
}

#[test]
fn rejected_appends_and_conflicts_do_not_invalidate() {
    // A storm of rejected appends (log conflicts, the follower behind) still proves
    // contact: there is no "reject" input, every ack counts the same.
    let mut t = leader(&[1, 2, 3]);
    for i in 1..=200_u64 {
        let sent = i * 100;
        t.on_ack(2, TERM, sent, Some(sent + 10));
        t.on_ack(3, TERM, sent, Some(sent + 20));
        assert!(t.is_valid(Some(sent + 50)), "after rejection {i}");
    }
    assert_eq!(t.stats().acks_used(), 400);
    assert_eq!(t.stats().invalidations_total(), 0);
}

#[test]
fn late_ack_after_step_down_is_ignored() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM, 100, Some(110));
    assert!(t.is_valid(Some(120)));
    t.invalidate(Invalidation::StepDown, Some(200));
    assert!(!t.is_valid(Some(210)));
    // An ack sent before the step-down, arriving after it.
    t.on_ack(3, TERM, 150, Some(220));
    assert!(!t.is_valid(Some(230)));
    assert_eq!(t.lease_until_ns(), 0);
    assert_eq!(t.stats().acks_ignored(IgnoredAck::NotLeader), 1);

    // Leader again in a newer term: acks of the old term are ignored, and so are acks of
    // the new term whose echo predates the invalidation.
    t.on_become_leader(TERM + 1, &[1, 2, 3]);
    t.on_own_term_applied(TERM + 1);
    t.on_ack(2, TERM, 300, Some(310));
    assert!(!t.is_valid(Some(320)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::StaleTerm), 1);
    t.on_ack(2, TERM + 1, 190, Some(330));
    assert!(!t.is_valid(Some(340)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::BeforeInvalidation), 1);
    // A genuine new-term ack works.
    t.on_ack(2, TERM + 1, 350, Some(360));
    assert!(t.is_valid(Some(370)));
    assert_eq!(t.lease_until_ns(), 350 + D);
    assert_eq!(t.stats().invalidations(Invalidation::StepDown), 1);
}

#[test]
fn removed_peer_acks_never_count() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(3, TERM, 100, Some(110));
    assert!(t.is_valid(Some(120)), "self + 3 is a quorum of 3");
    // Node 3 is removed: its earlier ack no longer counts, 2 of {1, 2} are needed.
    t.on_config_change(&[1, 2], Some(200));
    assert!(!t.is_valid(Some(210)));
    assert_eq!(t.lease_until_ns(), 0);
    // New acks from 3 are ignored.
    t.on_ack(3, TERM, 300, Some(310));
    assert!(!t.is_valid(Some(320)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::NotVoter), 1);
    // The remaining follower restores it.
    t.on_ack(2, TERM, 330, Some(340));
    assert!(t.is_valid(Some(350)));
    assert_eq!(t.lease_until_ns(), 330 + D);
}

#[test]
fn learner_acks_are_ignored() {
    // Voters 1, 2, 3; node 4 is a learner (not in the voter list).
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(4, TERM, 100, Some(110));
    assert!(!t.is_valid(Some(120)));
    assert_eq!(t.lease_until_ns(), 0);
    assert_eq!(t.stats().acks_ignored(IgnoredAck::NotVoter), 1);
    assert_eq!(t.stats().acks_used(), 0);
}

#[test]
fn shrinking_recomputes_at_once_and_growing_can_lower_the_lease() {
    let mut t = leader(&[1, 2, 3, 4, 5]);
    for (f, echo) in [(2, 500), (3, 400), (4, 300), (5, 200)] {
        t.on_ack(f, TERM, echo, Some(600));
    }
    // {now, 500, 400, 300, 200}: third freshest = 400.
    assert_eq!(t.lease_until_ns(), 400 + D);
    // 2 and 3 leave: {now, 300, 200}: second freshest = 300, at once and lower.
    t.on_config_change(&[1, 4, 5], Some(700));
    assert_eq!(t.lease_until_ns(), 300 + D);
    assert!(t.is_valid(Some(300 + D - 1)));
    assert!(
        !t.is_valid(Some(300 + D)),
        "the departed voters' acks must not count"
    );

    // Growing: 3 voters with acks 500 and 400 (anchor 500); a fourth voter (never heard
    // from) makes the quorum 3 of 4: anchor 400.
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM, 500, Some(600));
    t.on_ack(3, TERM, 400, Some(600));
    assert_eq!(t.lease_until_ns(), 500 + D);
    t.on_config_change(&[1, 2, 3, 4], Some(700));
    assert_eq!(t.lease_until_ns(), 400 + D);
}

#[test]
fn transfer_invalidation_wins_over_a_concurrent_extension() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM, 100, Some(110));
    assert!(t.is_valid(Some(500)));
    t.invalidate(Invalidation::Transfer, Some(600));
    assert!(!t.is_valid(Some(601)));
    // An ack sent before the transfer started, processed after it.
    t.on_ack(3, TERM, 550, Some(610));
    assert!(!t.is_valid(Some(620)));
    assert_eq!(t.lease_until_ns(), 0);
    assert_eq!(t.stats().acks_ignored(IgnoredAck::BeforeInvalidation), 1);
    // Even acks after it do not revive the lease in this term: a MsgTimeoutNow may be in
    // flight.
    t.on_ack(2, TERM, 700, Some(710));
    assert!(!t.is_valid(Some(720)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::Fenced), 1);
    // A later leadership starts clean.
    t.on_become_leader(TERM + 1, &[1, 2, 3]);
    t.on_own_term_applied(TERM + 1);
    t.on_ack(2, TERM + 1, 800, Some(810));
    assert!(t.is_valid(Some(820)));
    assert_eq!(t.stats().invalidations(Invalidation::Transfer), 1);
}

#[test]
fn never_valid_before_an_own_term_entry_is_applied() {
    let mut t = LeaseTracker::new(LeaseConfig { duration_ns: D }, ME);
    t.on_become_leader(TERM, &[1, 2, 3]);
    t.on_ack(2, TERM, 100, Some(110));
    t.on_ack(3, TERM, 105, Some(115));
    assert_eq!(t.lease_until_ns(), 105 + D, "acks are recorded meanwhile");
    assert!(!t.is_valid(Some(120)));
    assert_eq!(t.remaining_ns(Some(120)), 0);
    t.on_own_term_applied(TERM - 1);
    assert!(
        !t.is_valid(Some(120)),
        "an older term's entry is not enough"
    );
    t.on_own_term_applied(TERM);
    assert!(t.is_valid(Some(120)));
    assert_eq!(t.remaining_ns(Some(120)), 105 + D - 120);
}

#[test]
fn future_echoes_and_unreadable_clocks_never_help() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM, 500, Some(400));
    assert!(!t.is_valid(Some(450)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::FutureEcho), 1);

    t.on_ack(2, TERM, 300, None);
    assert_eq!(t.lease_until_ns(), 0);
    assert_eq!(t.stats().acks_ignored(IgnoredAck::ClockUnreadable), 1);

    t.on_ack(2, TERM, 300, Some(400));
    assert!(t.is_valid(Some(450)));
    assert!(!t.is_valid(None), "unreadable clock at the check");
    assert_eq!(t.remaining_ns(None), 0);

    // Invalidation with an unreadable clock: every echo up to the next readable sample is
    // discarded (it may have been sent before the invalidation).
    t.invalidate(Invalidation::StorageError, None);
    t.on_become_leader(TERM + 1, &[1, 2, 3]);
    t.on_own_term_applied(TERM + 1);
    t.on_ack(2, TERM + 1, 420, Some(500));
    assert!(!t.is_valid(Some(510)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::BeforeInvalidation), 1);
    t.on_ack(2, TERM + 1, 490, Some(520));
    assert!(
        !t.is_valid(Some(530)),
        "490 is before the first sample (500) after it"
    );
    t.on_ack(2, TERM + 1, 501, Some(540));
    assert!(t.is_valid(Some(550)));
}

#[test]
fn acks_of_other_terms_are_ignored_and_a_newer_term_invalidates() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(2, TERM - 1, 100, Some(110));
    assert!(!t.is_valid(Some(120)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::StaleTerm), 1);

    t.on_ack(2, TERM, 200, Some(210));
    assert!(t.is_valid(Some(220)));
    t.on_ack(3, TERM + 1, 230, Some(240));
    assert!(!t.is_valid(Some(250)));
    assert!(!t.is_leader());
    assert_eq!(t.stats().acks_ignored(IgnoredAck::NewerTerm), 1);
    assert_eq!(t.stats().invalidations(Invalidation::HigherTerm), 1);
}

#[test]
fn self_and_echo_less_acks_are_ignored() {
    let mut t = leader(&[1, 2, 3]);
    t.on_ack(ME, TERM, 100, Some(110));
    t.on_ack(2, TERM, 0, Some(110));
    assert!(!t.is_valid(Some(120)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::FromSelf), 1);
    assert_eq!(t.stats().acks_ignored(IgnoredAck::NoEcho), 1);
    assert_eq!(t.stats().acks_ignored_total(), 2);
}

#[test]
fn one_voter_group_is_valid_once_own_term_applied() {
    let mut t = LeaseTracker::new(LeaseConfig { duration_ns: D }, ME);
    t.on_become_leader(TERM, &[ME]);
    assert!(!t.is_valid(Some(10)));
    t.on_own_term_applied(TERM);
    for now in [10, 1_000_000, u64::MAX - 1] {
        assert!(t.is_valid(Some(now)), "at {now}");
    }
    assert!(!t.is_valid(None));
    assert_eq!(t.remaining_ns(Some(10)), D);
    t.invalidate(Invalidation::StepDown, Some(20));
    assert!(!t.is_valid(Some(30)));
}

#[test]
fn not_leader_and_disabled_leases_are_never_valid() {
    let mut t = LeaseTracker::new(LeaseConfig { duration_ns: D }, ME);
    t.on_ack(2, TERM, 100, Some(110));
    assert!(!t.is_valid(Some(120)));
    assert_eq!(t.stats().acks_ignored(IgnoredAck::NotLeader), 1);

    let mut t = LeaseTracker::new(LeaseConfig { duration_ns: 0 }, ME);
    t.on_become_leader(TERM, &[ME]);
    t.on_own_term_applied(TERM);
    assert!(!t.is_valid(Some(10)), "duration 0 disables lease reads");

    // Leadership reported for an older term than one already seen: stays not leader.
    let mut t = leader(&[1, 2, 3]);
    t.on_become_leader(TERM - 1, &[1, 2, 3]);
    t.on_own_term_applied(TERM - 1);
    t.on_ack(2, TERM - 1, 100, Some(110));
    assert!(!t.is_valid(Some(120)));
}

#[test]
fn max_lease_duration_edge_cases() {
    assert_eq!(max_lease_duration_ns(10, 100, 0), Some(900));
    assert_eq!(max_lease_duration_ns(10, 100, 899), Some(1));
    assert_eq!(
        max_lease_duration_ns(10, 100, 900),
        None,
        "zero is not positive"
    );
    assert_eq!(max_lease_duration_ns(10, 100, 901), None);
    assert_eq!(
        max_lease_duration_ns(1, 100, 0),
        None,
        "one tick guarantees nothing"
    );
    assert_eq!(max_lease_duration_ns(0, 100, 0), None);
    assert_eq!(max_lease_duration_ns(10, 0, 0), None);
    assert_eq!(max_lease_duration_ns(3, u64::MAX, 0), None, "overflow");
    assert_eq!(max_lease_duration_ns(2, u64::MAX, 0), Some(u64::MAX));

    let cfg = |duration_ns| LeaseConfig { duration_ns };
    assert_eq!(cfg(899).check(10, 100, 0), Ok(()));
    assert_eq!(
        cfg(900).check(10, 100, 0),
        Err(LeaseConfigError::TooLong {
            duration_ns: 900,
            bound_ns: 900
        }),
        "strictly less"
    );
    assert!(matches!(
        cfg(1).check(1, 100, 0),
        Err(LeaseConfigError::NoSafeDuration { .. })
    ));
    assert_eq!(cfg(0).check(1, 100, 0), Ok(()), "disabled is always fine");
}

#[test]
fn unsafe_switches_weaken_only_their_own_rule() {
    use shards::lease::UnsafeRule;
    assert_eq!(UnsafeRule::from_number(5), Some(UnsafeRule::OwnTermApplied));
    assert_eq!(
        UnsafeRule::from_number(6),
        Some(UnsafeRule::TransferInvalidates)
    );
    assert_eq!(UnsafeRule::from_number(4), None);
    assert_eq!(UnsafeRule::TransferInvalidates.number(), 6);

    // Rule 6 off: a transfer leaves the lease valid; every other invalidation still ends it.
    let mut t = leader(&[1, 2, 3]);
    t.set_unsafe_disabled(Some(UnsafeRule::TransferInvalidates));
    assert!(t.rule_disabled(UnsafeRule::TransferInvalidates));
    assert!(!t.rule_disabled(UnsafeRule::OwnTermApplied));
    t.on_ack(2, TERM, 100, Some(110));
    t.invalidate(Invalidation::Transfer, Some(200));
    assert!(t.is_valid(Some(300)), "rule 6 off: the transfer is ignored");
    assert_eq!(t.stats().invalidations(Invalidation::Transfer), 0);
    t.invalidate(Invalidation::StepDown, Some(400));
    assert!(!t.is_valid(Some(401)));

    // Rule 5 off: valid before an own-term entry is applied, once a quorum acked.
    let mut t = LeaseTracker::new(LeaseConfig { duration_ns: D }, ME);
    t.set_unsafe_disabled(Some(UnsafeRule::OwnTermApplied));
    t.on_become_leader(TERM, &[1, 2, 3]);
    assert!(!t.is_valid(Some(50)), "still needs a quorum's acks");
    t.on_ack(2, TERM, 100, Some(110));
    assert!(
        t.is_valid(Some(120)),
        "rule 5 off: no own-term apply needed"
    );
    // ... and a transfer still invalidates.
    t.invalidate(Invalidation::Transfer, Some(130));
    assert!(!t.is_valid(Some(131)));

    // The default (no switch) keeps both rules: see the two tests above this one.
    let t = leader(&[1, 2, 3]);
    assert!(!t.rule_disabled(UnsafeRule::OwnTermApplied));
    assert!(!t.rule_disabled(UnsafeRule::TransferInvalidates));
}
