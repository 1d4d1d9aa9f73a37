//! Oracle of the `config_parser` fuzz target: the TOML config loader and its validation.
//!
//! The input is the config file's contents. Checked: no panic; an error is one line, starts
//! with `config: ` and, when validation rejected a key, names that key first; an accepted
//! config satisfies the invariants that the rest of the server relies on without checking
//! (routing builds, every core's Raft port exists, voters are real nodes, the lease fits).

use std::collections::BTreeSet;

use crate::config::{self, Config, ConfigError, Overrides, ReadMode};
use crate::routing::Routing;

/// The CPU set configs are validated against (instead of the machine's affinity mask, so a
/// finding reproduces anywhere).
pub const FUZZ_CPUS: &[usize] = &[0, 1, 2, 3];

/// The fuzz target body; see the module documentation.
pub fn config_parser(data: &[u8]) {
    // The loader reads the file with `read_to_string`, so non-UTF-8 input never reaches the
    // parser; a lossy conversion keeps such mutations useful instead of discarding them.
    let text = String::from_utf8_lossy(data);
    match config::resolve_text(&text, &Overrides::default(), FUZZ_CPUS) {
        Ok(c) => check_config(&c),
        Err(e) => check_error(&e),
    }
}

fn check_error(e: &ConfigError) {
    let msg = e.to_string();
    assert!(msg.starts_with("config: "), "{msg:?}");
    assert!(!msg.contains(['\r', '\n']), "multi-line error {msg:?}");
    if let Some(key) = e.key() {
        assert!(
            msg.starts_with(&format!("config: {key} (")),
            "error does not lead with its key {key}: {msg:?}"
        );
    }
}

fn check_config(c: &Config) {
    let _ = c.listen_addr();
    assert!(!c.cores.is_empty());
    assert!(c.cores.iter().all(|cpu| FUZZ_CPUS.contains(cpu)));
    assert_eq!(
        c.cores.iter().collect::<BTreeSet<_>>().len(),
        c.cores.len(),
        "duplicate cores"
    );
    let routing = Routing::try_new(c.groups, &c.placement).expect("validated routing");
    for g in 0..c.groups {
        assert!(routing.core_of_group(g) < c.cores.len());
    }

    let limits = c.limits.parse_limits();
    assert!((1024..=1 << 30).contains(&limits.max_bulk));
    assert!(limits.max_args >= 1);
    assert!(c.transport.max_frame_bytes as u64 > limits.max_bulk as u64 + (1 << 20));

    assert_eq!(c.is_cluster(), c.node(c.node_id).is_some());
    for n in &c.nodes {
        for core in 0..c.cores.len() {
            let _ = n.raft_addr(core);
        }
    }
    for core in 0..c.cores.len() {
        assert_eq!(c.transport_for_core(core).is_some(), c.is_cluster());
    }
    let ids: BTreeSet<u64> = c.nodes.iter().map(|n| n.id).collect();
    for g in 0..c.groups.min(64) {
        let voters = c.group_voters(g);
        let distinct: BTreeSet<u64> = voters.iter().copied().collect();
        assert_eq!(distinct.len(), voters.len(), "group {g} voters {voters:?}");
        if c.is_cluster() {
            assert_eq!(voters.len(), (c.replication as usize).min(c.nodes.len()));
            assert!(distinct.is_subset(&ids), "group {g} voters {voters:?}");
        } else {
            assert_eq!(voters, [c.node_id]);
        }
    }

    if c.read_mode == ReadMode::Lease {
        let r = &c.raft;
        let bound = r
            .clock_drift_ms
            .checked_mul(1_000_000)
            .and_then(|drift| {
                shards::lease::max_lease_duration_ns(r.election_ticks, r.tick_ms * 1_000_000, drift)
            })
            .expect("a lease config with no safe lease was accepted");
        let lease = r.lease_ns();
        assert!(
            lease > 0 && lease < bound,
            "accepted lease {lease} ns, bound {bound} ns"
        );
    }
}
