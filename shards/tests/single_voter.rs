//! A one-voter group driven deterministically: election, proposals, durability gating,
//! read gate, restart from persisted state.

use bytes::Bytes;
use raft::eraftpb::{Entry, HardState};
use shards::{
    Event, GroupSpec, KvState, LogCommand, ReadGate, ReadOp, Recovered, Reply, SetCond, ShardGroup,
    WriteOp,
};

fn spec() -> GroupSpec {
    GroupSpec {
        group: 0,
        node_id: 1,
        bootstrap_voters: vec![1],
        bootstrap_members: Vec::new(),
        election_ticks: 10,
        heartbeat_ticks: 2,
        incarnation: 7,
        lease_ns: 0,
    }
}

/// A fake durable log: what the runtime's WAL would hold.
#[derive(Default)]
struct Disk {
    entries: Vec<Entry>,
    hs: Option<HardState>,
}

impl Disk {
    fn persist(&mut self, work: &shards::ReadyWork) {
        if let Some(first) = work.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(work.entries.iter().cloned());
        }
        if let Some(hs) = &work.hard_state {
            self.hs = Some(hs.clone());
        }
    }
}

/// Runs Ready rounds until quiescent, persisting each before acknowledging it.
fn drive(g: &mut ShardGroup, disk: &mut Disk) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..100 {
        match g.take_ready(&mut events, Some(1)) {
            Some(work) => {
                disk.persist(&work);
                let after = g.on_persisted(work.number);
                assert!(after.is_empty(), "single voter sends no messages");
            }
            None => return events,
        }
    }
    panic!("group did not quiesce");
}

fn set(key: &str, value: &str) -> LogCommand {
    LogCommand {
        now_ms: 1_000,
        op: WriteOp::Set {
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.to_string()),
            cond: SetCond::Always,
            expire: None,
            get: false,
        },
    }
}

fn get(key: &str) -> ReadOp {
    ReadOp::Get {
        key: Bytes::from(key.to_string()),
    }
}

#[test]
fn elects_itself_applies_writes_only_after_persistence_and_gates_reads() {
    let mut g = ShardGroup::new(spec(), Recovered::default()).unwrap();
    let mut disk = Disk::default();
    assert!(matches!(g.read_gate(Some(1)), ReadGate::NotLeader { .. }));
    g.campaign().unwrap();
    assert!(g.is_leader());
    // Before its no-op entry of the new term is applied, the leader must not read locally.
    assert_eq!(g.read_gate(Some(1)), ReadGate::NotReady);
    let events = drive(&mut g, &mut disk);
    assert!(events.contains(&Event::LeaderReady));
    assert_eq!(g.read_gate(Some(1)), ReadGate::Local);

    let p = g.propose(&set("a", "1")).unwrap();
    // Take the Ready but do not acknowledge persistence: nothing may be applied.
    let mut events = Vec::new();
    let work = g.take_ready(&mut events, Some(1)).unwrap();
    assert_eq!(work.entries.len(), 1);
    assert!(events.iter().all(|e| !matches!(e, Event::Applied { .. })));
    assert_eq!(g.read_local(&get("a"), 0), Reply::Nil);
    // Proposals are accepted while the fsync is in flight (async ready).
    let p2 = g.propose(&set("b", "2")).unwrap();
    disk.persist(&work);
    g.on_persisted(work.number);
    let events = drive(&mut g, &mut disk);
    assert!(events.contains(&Event::Applied {
        proposal: p,
        reply: Reply::Ok
    }));
    assert!(events.contains(&Event::Applied {
        proposal: p2,
        reply: Reply::Ok
    }));
    assert_eq!(g.read_local(&get("a"), 0), Reply::Bulk(Bytes::from("1")));
    assert_eq!(g.read_local(&get("b"), 0), Reply::Bulk(Bytes::from("2")));
}

#[test]
fn restart_replays_the_persisted_log_and_checkpoint() {
    let mut g = ShardGroup::new(spec(), Recovered::default()).unwrap();
    let mut disk = Disk::default();
    g.campaign().unwrap();
    drive(&mut g, &mut disk);
    for i in 0..10 {
        g.propose(&set(&format!("k{i}"), &i.to_string())).unwrap();
    }
    drive(&mut g, &mut disk);
    let cp = g.checkpoint();
    assert_eq!(cp.snapshot.get_metadata().index, g.applied_index());
    assert!(cp.tail.is_empty());
    g.propose(&set("after", "x")).unwrap();
    drive(&mut g, &mut disk);

    // Restart from the checkpoint plus the entries after it.
    let snap_index = cp.snapshot.get_metadata().index;
    let rec = Recovered {
        snapshot: Some(cp.snapshot),
        hard_state: disk.hs.clone(),
        entries: disk
            .entries
            .iter()
            .filter(|e| e.index > snap_index)
            .cloned()
            .collect(),
    };
    let mut g2 = ShardGroup::new(
        GroupSpec {
            incarnation: 8,
            ..spec()
        },
        rec,
    )
    .unwrap();
    g2.campaign().unwrap();
    drive(&mut g2, &mut disk);
    assert_eq!(g2.read_gate(Some(1)), ReadGate::Local);
    assert_eq!(g2.read_local(&get("k3"), 0), Reply::Bulk(Bytes::from("3")));
    assert_eq!(
        g2.read_local(&get("after"), 0),
        Reply::Bulk(Bytes::from("x"))
    );
}

#[test]
fn read_index_on_single_voter_completes_after_apply() {
    let mut g = ShardGroup::new(spec(), Recovered::default()).unwrap();
    let mut disk = Disk::default();
    g.campaign().unwrap();
    drive(&mut g, &mut disk);
    let r = g.read_index().unwrap();
    let events = drive(&mut g, &mut disk);
    assert!(events.contains(&Event::ReadReady { read: r }), "{events:?}");
}

fn del(key: &str) -> LogCommand {
    LogCommand {
        now_ms: 2_000,
        op: WriteOp::Del {
            keys: vec![Bytes::from(key.to_string())],
        },
    }
}

#[test]
fn a_snapshot_copy_encodes_the_state_at_its_index_while_later_writes_apply() {
    let mut g = ShardGroup::new(spec(), Recovered::default()).unwrap();
    let mut disk = Disk::default();
    g.campaign().unwrap();
    drive(&mut g, &mut disk);
    for i in 0..50 {
        g.propose(&set(&format!("k{i}"), &i.to_string())).unwrap();
    }
    drive(&mut g, &mut disk);
    let base = g.base_snapshot().get_metadata().index;

    let build = g
        .begin_snapshot()
        .expect("entries were applied since the base snapshot");
    let i = build.index();
    assert_eq!(i, g.applied_index());
    // The state at i, serialised synchronously for comparison.
    let at_i = g.kv().snapshot();
    // Later writes overwrite, delete and add keys while the copy waits to be encoded.
    for i in 0..50 {
        g.propose(&set(&format!("k{i}"), "changed")).unwrap();
    }
    g.propose(&del("k7")).unwrap();
    g.propose(&set("new", "key")).unwrap();
    drive(&mut g, &mut disk);
    assert!(g.applied_index() > i);
    assert_ne!(g.kv().snapshot(), at_i);

    let built = build.encode();
    assert_eq!((built.index(), built.group()), (i, 0));
    let (_, kv) = shards::members::unwrap_snapshot(built.snapshot().get_data()).unwrap();
    assert_eq!(kv, &at_i[..], "exactly the state at index {i}");
    assert_eq!(KvState::restore(kv).unwrap().snapshot(), at_i);

    // The WAL gets the new snapshot and the log after it; Raft keeps serving the old
    // snapshot until the runtime says the new one is durable.
    let cp = g.wal_checkpoint(Some(&built));
    assert_eq!(cp.snapshot.get_metadata().index, i);
    assert_eq!(cp.tail.first().map(|e| e.index), Some(i + 1));
    assert_eq!(cp.tail.last().map(|e| e.index), Some(g.last_index()));
    assert_eq!(g.base_snapshot().get_metadata().index, base);
    g.compact_log(built);
    assert_eq!(g.base_snapshot().get_metadata().index, i);
    // Nothing new applied since: no second copy.
    let idle = ShardGroup::new(spec(), Recovered::default()).unwrap();
    assert!(idle.begin_snapshot().is_none());

    // Restarting from that checkpoint gives the current state.
    let rec = Recovered {
        snapshot: Some(cp.snapshot),
        hard_state: Some(cp.hard_state),
        entries: cp.tail,
    };
    let mut g2 = ShardGroup::new(
        GroupSpec {
            incarnation: 8,
            ..spec()
        },
        rec,
    )
    .unwrap();
    g2.campaign().unwrap();
    drive(&mut g2, &mut Disk::default());
    assert_eq!(g2.kv(), g.kv());
}
