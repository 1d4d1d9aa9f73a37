//! Deterministic multi-node simulation of shard groups: an in-memory network and disks,
//! driven tick by tick. No clocks, no threads, no sleeps.

use std::collections::{BTreeMap, HashSet, VecDeque};

use bytes::Bytes;
use raft::eraftpb::{Entry, HardState, Message, MessageType, Snapshot};
use shards::{
    Event, GroupSpec, LogCommand, Member, MembershipChange, ReadGate, ReadOp, Recovered, Reply,
    SetCond, ShardGroup, SnapshotInstall, WriteOp,
};

/// 10 ms ticks; election timeout 10 ticks (see `spec`).
const TICK_NS: u64 = 10_000_000;

fn member(id: u64) -> Member {
    Member {
        id,
        raft: format!("127.0.0.1:{}", 9100 + id),
        client: format!("127.0.0.1:{}", 9000 + id),
    }
}

/// What a node's WAL would hold.
#[derive(Default, Clone)]
struct Disk {
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    hs: Option<HardState>,
}

struct Node {
    group: ShardGroup,
    disk: Disk,
    events: Vec<Event>,
    /// Received snapshots waiting to be decoded (the runtime decodes them off the core).
    installs: Vec<SnapshotInstall>,
}

struct Sim {
    nodes: BTreeMap<u64, Node>,
    /// In flight: (message, sender's clock when sent, echo it carries).
    net: VecDeque<(Message, u64, u64)>,
    /// One clock for the whole simulation, in ns (nodes' clocks agree: zero drift).
    now: u64,
    /// heard[(node, from)]: send time of the latest append/heartbeat/snapshot `node` got
    /// from `from` — what `node` echoes back (src/peer.rs semantics).
    heard: BTreeMap<(u64, u64), u64>,
    /// Nodes cut off from everyone (messages to and from them are dropped).
    isolated: HashSet<u64>,
    /// Nodes whose snapshot installs are held (decoding "takes long") until released.
    hold_installs: HashSet<u64>,
}

fn spec(id: u64, voters: &[u64], members: &[u64]) -> GroupSpec {
    GroupSpec {
        group: 0,
        node_id: id,
        bootstrap_voters: voters.to_vec(),
        bootstrap_members: members.iter().map(|m| member(*m)).collect(),
        election_ticks: 10,
        heartbeat_ticks: 2,
        incarnation: 1,
        lease_ns: 0,
    }
}

impl Sim {
    fn new(voters: &[u64]) -> Sim {
        Sim::with_lease(voters, 0)
    }

    fn with_lease(voters: &[u64], lease_ns: u64) -> Sim {
        let mut nodes = BTreeMap::new();
        for &id in voters {
            let spec = GroupSpec {
                lease_ns,
                ..spec(id, voters, voters)
            };
            let g = ShardGroup::new(spec, Recovered::default()).unwrap();
            nodes.insert(
                id,
                Node {
                    group: g,
                    disk: Disk::default(),
                    events: Vec::new(),
                    installs: Vec::new(),
                },
            );
        }
        Sim {
            nodes,
            net: VecDeque::new(),
            now: 1_000_000_000,
            heard: BTreeMap::new(),
            isolated: HashSet::new(),
            hold_installs: HashSet::new(),
        }
    }

    /// A new node that joins: no voters, no members; it learns both from the leader.
    fn add_joining_node(&mut self, id: u64) {
        let g = ShardGroup::new(spec(id, &[], &[]), Recovered::default()).unwrap();
        self.nodes.insert(
            id,
            Node {
                group: g,
                disk: Disk::default(),
                events: Vec::new(),
                installs: Vec::new(),
            },
        );
    }

    /// One round: every node handles its Ready (persisting it), then the network delivers
    /// everything in flight.
    fn step(&mut self) {
        let now = self.now;
        for (&id, node) in self.nodes.iter_mut() {
            while let Some(work) = node.group.take_ready(&mut node.events, Some(now)) {
                if let Some(s) = &work.snapshot {
                    node.disk.snapshot = Some(s.clone());
                    node.disk.entries.clear();
                }
                if let Some(first) = work.entries.first() {
                    node.disk.entries.retain(|e| e.index < first.index);
                    node.disk.entries.extend(work.entries.iter().cloned());
                }
                if let Some(hs) = &work.hard_state {
                    node.disk.hs = Some(hs.clone());
                }
                node.installs.extend(work.install);
                let mut out = work.messages;
                out.extend(node.group.on_persisted(work.number));
                for m in out {
                    let echo = self.heard.get(&(id, m.to)).copied().unwrap_or(0);
                    self.net.push_back((m, now, echo));
                }
            }
            if !self.hold_installs.contains(&id) {
                Self::finish_installs(node, now);
            }
        }
        let msgs: Vec<(Message, u64, u64)> = self.net.drain(..).collect();
        for (m, sent_at, echo) in msgs {
            if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                continue;
            }
            if matches!(
                m.get_msg_type(),
                MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
            ) {
                let h = self.heard.entry((m.to, m.from)).or_insert(0);
                *h = (*h).max(sent_at);
            }
            if let Some(n) = self.nodes.get_mut(&m.to) {
                let _ = n.group.step(m, echo, Some(now));
            }
        }
    }

    /// Decodes and swaps in the node's pending snapshots, as the runtime does once its
    /// helper thread is done.
    fn finish_installs(node: &mut Node, now: u64) {
        for job in node.installs.drain(..) {
            node.group
                .finish_install(job.decode(), &mut node.events, Some(now))
                .expect("snapshot decodes");
        }
    }

    fn tick(&mut self, n: usize) {
        for _ in 0..n {
            self.now += TICK_NS;
            let now = self.now;
            for node in self.nodes.values_mut() {
                node.group.tick(Some(now));
                // What the runtime's driver does: checkpoint when raft wants a snapshot.
                if node.group.snapshot_wanted() {
                    node.disk.snapshot = Some(node.group.checkpoint().snapshot);
                }
            }
            self.step();
        }
    }

    fn settle(&mut self) {
        for _ in 0..20 {
            self.step();
        }
    }

    fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(id, n)| n.group.is_leader() && !self.isolated.contains(id))
            .map(|(id, _)| *id)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    fn elect(&mut self) -> u64 {
        for _ in 0..100 {
            self.tick(1);
            if let Some(l) = self.leader() {
                self.settle();
                return l;
            }
        }
        panic!("no leader elected");
    }

    fn write(&mut self, key: &str, value: &str) -> u64 {
        let l = self.leader().expect("leader");
        let cmd = LogCommand {
            now_ms: 1,
            op: WriteOp::Set {
                key: Bytes::from(key.to_string()),
                value: Bytes::from(value.to_string()),
                cond: SetCond::Always,
                expire: None,
                get: false,
            },
        };
        let p = self.nodes.get_mut(&l).unwrap().group.propose(&cmd).unwrap();
        self.settle();
        let ev = &self.nodes[&l].events;
        assert!(
            ev.iter().any(
                |e| matches!(e, Event::Applied { proposal, reply: Reply::Ok } if *proposal == p)
            ),
            "write {key} not applied on leader {l}"
        );
        p
    }

    fn get(&self, node: u64, key: &str) -> Reply {
        self.nodes[&node].group.read_local(
            &ReadOp::Get {
                key: Bytes::from(key.to_string()),
            },
            0,
        )
    }

    fn change(&mut self, change: MembershipChange) {
        let l = self.leader().expect("leader");
        let p = self
            .nodes
            .get_mut(&l)
            .unwrap()
            .group
            .propose_membership(&change)
            .unwrap();
        self.settle();
        assert!(
            self.nodes[&l]
                .events
                .iter()
                .any(|e| matches!(e, Event::Applied { proposal, .. } if *proposal == p)),
            "{change:?} not applied"
        );
    }
}

#[test]
fn three_voters_replicate_and_survive_a_leader_loss() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let l = sim.elect();
    sim.write("a", "1");
    for id in [1, 2, 3] {
        assert_eq!(sim.get(id, "a"), Reply::Bulk(Bytes::from("1")), "node {id}");
    }
    // Cut the leader off: the others elect a new one and keep accepting writes.
    sim.isolated.insert(l);
    let mut new = None;
    for _ in 0..200 {
        sim.tick(1);
        if let Some(n) = sim.leader().filter(|n| *n != l) {
            new = Some(n);
            break;
        }
    }
    let new = new.expect("a new leader");
    sim.settle();
    sim.write("b", "2");
    // Heal: the old leader steps down and catches up.
    sim.isolated.clear();
    sim.tick(30);
    assert!(!sim.nodes[&l].group.is_leader() || l == new);
    assert_eq!(sim.get(l, "b"), Reply::Bulk(Bytes::from("2")));
}

#[test]
fn a_joining_node_learns_config_and_addresses_then_is_promoted() {
    let mut sim = Sim::new(&[1, 2, 3]);
    sim.elect();
    for i in 0..20 {
        sim.write(&format!("k{i}"), &i.to_string());
    }
    sim.add_joining_node(4);
    sim.change(MembershipChange::AddLearner(member(4)));
    sim.tick(20);
    let l = sim.leader().unwrap();
    // The learner caught up; the leader says it may be promoted.
    assert_eq!(sim.nodes[&l].group.learner_to_promote(), Some(4));
    sim.change(MembershipChange::Promote(4));
    sim.tick(10);
    for id in [1, 2, 3, 4] {
        let g = &sim.nodes[&id].group;
        let mut v = g.voters();
        v.sort_unstable();
        assert_eq!(v, vec![1, 2, 3, 4], "voters on node {id}");
        assert_eq!(
            g.members().get(&4),
            Some(&member(4)),
            "address of 4 on node {id}"
        );
        assert_eq!(g.members().len(), 4, "members on node {id}");
    }
    assert_eq!(sim.get(4, "k7"), Reply::Bulk(Bytes::from("7")));
}

#[test]
fn a_joining_node_catches_up_from_a_snapshot_with_members() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let l = sim.elect();
    for i in 0..30 {
        sim.write(&format!("k{i}"), &i.to_string());
    }
    // Every node compacts its log: a newcomer can only be served by a snapshot.
    for node in sim.nodes.values_mut() {
        let cp = node.group.checkpoint();
        node.disk.snapshot = Some(cp.snapshot);
        node.disk.entries.clear();
    }
    sim.add_joining_node(4);
    sim.change(MembershipChange::AddLearner(member(4)));
    sim.tick(30);
    let n4 = &sim.nodes[&4];
    assert!(
        n4.disk.snapshot.is_some(),
        "node 4 should have installed a snapshot"
    );
    assert_eq!(sim.get(4, "k29"), Reply::Bulk(Bytes::from("29")));
    assert_eq!(
        n4.group.members().len(),
        4,
        "members came with the snapshot and the log"
    );
    assert!(n4.events.contains(&Event::MembersChanged));
    let _ = l;
}

#[test]
fn removing_members_and_the_leaders_self_removal_guard() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let l = sim.elect();
    let g = &mut sim.nodes.get_mut(&l).unwrap().group;
    // The leader refuses to remove itself; it must hand leadership over first.
    let e = g
        .propose_membership(&MembershipChange::Remove(l))
        .unwrap_err();
    assert!(
        matches!(e, Reply::Error(ref m) if m.starts_with(b"TRYAGAIN")),
        "{e:?}"
    );
    let to = g.best_transferee().unwrap();
    assert_ne!(to, l);
    g.transfer_leader(to, Some(1_000_000_000));
    assert!(g.is_transferring());
    sim.tick(20);
    assert_eq!(sim.leader(), Some(to));
    sim.change(MembershipChange::Remove(l));
    sim.tick(10);
    let mut v = sim.nodes[&to].group.voters();
    v.sort_unstable();
    assert!(!v.contains(&l));
    assert_eq!(v.len(), 2);
    assert!(!sim.nodes[&to].group.members().contains_key(&l));
    sim.write("after-removal", "x");
    // Errors for bad requests, not panics.
    let g = &mut sim.nodes.get_mut(&to).unwrap().group;
    assert!(g.propose_membership(&MembershipChange::Remove(99)).is_err());
    assert!(g
        .propose_membership(&MembershipChange::Promote(99))
        .is_err());
    assert!(g
        .propose_membership(&MembershipChange::AddLearner(member(to)))
        .is_err());
}

#[test]
fn members_survive_restart_from_checkpoint_and_log() {
    let mut sim = Sim::new(&[1, 2, 3]);
    sim.elect();
    sim.add_joining_node(4);
    sim.change(MembershipChange::AddLearner(member(4)));
    sim.tick(10);
    let node = sim.nodes.get_mut(&2).unwrap();
    let cp = node.group.checkpoint();
    sim.write("after", "cp");
    let disk = sim.nodes[&2].disk.clone();
    let snap_index = cp.snapshot.get_metadata().index;
    let rec = Recovered {
        snapshot: Some(cp.snapshot),
        hard_state: disk.hs,
        entries: disk
            .entries
            .into_iter()
            .filter(|e| e.index > snap_index)
            .collect(),
    };
    let g = ShardGroup::new(spec(2, &[1, 2, 3], &[1, 2, 3]), rec).unwrap();
    assert_eq!(g.members().get(&4), Some(&member(4)));
    assert!(g.learners().contains(&4));
}

/// Lease = 60 ms < (10 - 1) x 10 ms - 20 ms drift margin.
const LEASE_NS: u64 = 60_000_000;

#[test]
fn lease_reads_need_no_read_index_while_heartbeats_flow() {
    let mut sim = Sim::with_lease(&[1, 2, 3], LEASE_NS);
    let l = sim.elect();
    sim.tick(3);
    let mut local = 0;
    for _ in 0..100 {
        sim.tick(1);
        let g = &sim.nodes[&l].group;
        if g.read_gate(Some(sim.now)) == ReadGate::Local {
            local += 1;
        }
    }
    // Heartbeats every 2 ticks keep the lease warm: every check is a local read.
    assert_eq!(local, 100);
    assert!(sim.nodes[&l].group.lease_stats().extensions() > 0);
    // Followers never hold a lease.
    for (id, n) in &sim.nodes {
        if *id != l {
            assert!(!n.group.lease_valid(Some(sim.now)));
        }
    }
}

#[test]
fn a_partitioned_leader_stops_lease_reads_before_anyone_else_can_lead() {
    let mut sim = Sim::with_lease(&[1, 2, 3], LEASE_NS);
    let old = sim.elect();
    sim.tick(4);
    assert_eq!(
        sim.nodes[&old].group.read_gate(Some(sim.now)),
        ReadGate::Local
    );
    // Clients still reach the old leader; its peers do not.
    let cut_at = sim.now;
    sim.isolated.insert(old);
    let mut lost_lease_at = None;
    let mut new_leader_at = None;
    for _ in 0..300 {
        sim.tick(1);
        if lost_lease_at.is_none() && !sim.nodes[&old].group.lease_valid(Some(sim.now)) {
            lost_lease_at = Some(sim.now);
        }
        if new_leader_at.is_none()
            && sim
                .nodes
                .iter()
                .any(|(id, n)| *id != old && n.group.is_leader())
        {
            new_leader_at = Some(sim.now);
        }
        // The safety property: never two nodes that may serve local reads.
        let local: Vec<u64> = sim
            .nodes
            .iter()
            .filter(|(_, n)| n.group.read_gate(Some(sim.now)) == ReadGate::Local)
            .map(|(id, _)| *id)
            .collect();
        assert!(
            local.len() <= 1,
            "two nodes serve local reads at {}: {local:?}",
            sim.now
        );
        if lost_lease_at.is_some() && new_leader_at.is_some() {
            break;
        }
    }
    let lost = lost_lease_at.expect("the old leader's lease ends");
    let new = new_leader_at.expect("the majority elects a new leader");
    // No later than the lease duration after the last quorum contact (the cut), and
    // before the other side has a leader.
    assert!(
        lost <= cut_at + LEASE_NS + TICK_NS,
        "lease outlived its bound"
    );
    assert!(lost < new, "lease ended at {lost}, new leader at {new}");
}

#[test]
fn a_transfer_ends_the_lease_at_once() {
    let mut sim = Sim::with_lease(&[1, 2, 3], LEASE_NS);
    let l = sim.elect();
    sim.tick(4);
    let now = sim.now;
    let g = &mut sim.nodes.get_mut(&l).unwrap().group;
    assert!(g.lease_valid(Some(now)));
    let to = g.best_transferee().unwrap();
    g.transfer_leader(to, Some(now));
    assert!(!g.lease_valid(Some(now)));
    assert_eq!(g.read_gate(Some(now)), ReadGate::Transferring);
}

/// Node `f` is cut off while the others write and compact, then comes back and is sent a
/// snapshot whose decoding is held. Returns once `f` has a pending install.
fn lagging_node_with_a_held_install(sim: &mut Sim, f: u64) {
    sim.isolated.insert(f);
    for i in 0..20 {
        sim.write(&format!("k{i}"), &i.to_string());
    }
    for (id, node) in sim.nodes.iter_mut() {
        if *id != f {
            let cp = node.group.checkpoint();
            node.disk.snapshot = Some(cp.snapshot);
            node.disk.entries.clear();
        }
    }
    sim.write("k0", "overwritten after the snapshot");
    sim.hold_installs.insert(f);
    sim.isolated.clear();
    for _ in 0..100 {
        sim.tick(1);
        if !sim.nodes[&f].installs.is_empty() {
            return;
        }
    }
    panic!("node {f} was never sent a snapshot");
}

#[test]
fn a_follower_applies_nothing_while_its_snapshot_decodes_but_keeps_acknowledging() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let l = sim.elect();
    let f = [1, 2, 3].into_iter().find(|&n| n != l).unwrap();
    let stale_len = sim.nodes[&f].group.kv().len();
    lagging_node_with_a_held_install(&mut sim, f);
    let applied_before = sim.nodes[&f].group.applied_index();
    assert!(sim.nodes[&f].group.is_installing());

    // Writes commit meanwhile; f persists and acknowledges them but applies nothing.
    for i in 20..30 {
        sim.write(&format!("k{i}"), &i.to_string());
    }
    sim.tick(5);
    let leader = &sim.nodes[&l].group;
    let (matched, _) = leader.progress_of(f).unwrap();
    assert_eq!(matched, leader.last_index(), "f acknowledged every entry");
    let g = &sim.nodes[&f].group;
    assert!(g.is_installing());
    assert_eq!(g.applied_index(), applied_before, "nothing applied");
    assert_eq!(g.kv().len(), stale_len, "the old state is untouched");

    // The swap applies the snapshot and then the entries committed during the install.
    sim.hold_installs.clear();
    sim.step();
    let (g, leader) = (&sim.nodes[&f].group, &sim.nodes[&l].group);
    assert!(!g.is_installing());
    assert_eq!(g.applied_index(), leader.applied_index());
    assert_eq!(g.kv(), leader.kv());
    assert_eq!(
        sim.get(f, "k0"),
        Reply::Bulk(Bytes::from("overwritten after the snapshot"))
    );
    assert_eq!(sim.get(f, "k29"), Reply::Bulk(Bytes::from("29")));
    assert!(sim.nodes[&f].events.contains(&Event::MembersChanged));
}

#[test]
fn a_node_that_becomes_leader_mid_install_serves_no_read_until_the_swap() {
    let mut sim = Sim::with_lease(&[1, 2, 3], LEASE_NS);
    let l = sim.elect();
    let f = [1, 2, 3].into_iter().find(|&n| n != l).unwrap();
    lagging_node_with_a_held_install(&mut sim, f);
    sim.tick(3);

    // f is fully replicated (it persisted everything), so it can take leadership over.
    let now = sim.now;
    sim.nodes
        .get_mut(&l)
        .unwrap()
        .group
        .transfer_leader(f, Some(now));
    for _ in 0..50 {
        sim.tick(1);
        if sim.leader() == Some(f) {
            break;
        }
    }
    assert_eq!(sim.leader(), Some(f), "transfer to the installing node");
    sim.tick(5);
    let g = &sim.nodes[&f].group;
    assert!(g.is_installing());
    assert_eq!(
        g.read_gate(Some(sim.now)),
        ReadGate::NotReady,
        "no read from a half-installed state, lease or not"
    );
    assert!(!sim.nodes[&f].events.contains(&Event::LeaderReady));
    // A write is committed but not applied (no reply) until the swap.
    let cmd = LogCommand {
        now_ms: 1,
        op: WriteOp::Set {
            key: Bytes::from("during"),
            value: Bytes::from("install"),
            cond: SetCond::Always,
            expire: None,
            get: false,
        },
    };
    let p = sim.nodes.get_mut(&f).unwrap().group.propose(&cmd).unwrap();
    sim.settle();
    let applied = |sim: &Sim| {
        sim.nodes[&f]
            .events
            .iter()
            .any(|e| matches!(e, Event::Applied { proposal, .. } if *proposal == p))
    };
    assert!(!applied(&sim));

    sim.hold_installs.clear();
    sim.tick(3);
    assert!(applied(&sim), "the write is applied right after the swap");
    assert!(sim.nodes[&f].events.contains(&Event::LeaderReady));
    assert_ne!(
        sim.nodes[&f].group.read_gate(Some(sim.now)),
        ReadGate::NotReady
    );
    assert_eq!(sim.get(f, "during"), Reply::Bulk(Bytes::from("install")));
    assert_eq!(sim.get(f, "k19"), Reply::Bulk(Bytes::from("19")));
}

#[test]
fn a_newer_snapshot_supersedes_one_still_decoding() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let l = sim.elect();
    let f = [1, 2, 3].into_iter().find(|&n| n != l).unwrap();
    lagging_node_with_a_held_install(&mut sim, f);
    let first = sim.nodes.get_mut(&f).unwrap().installs.remove(0);
    // Cut off again while the others move on and compact past the first snapshot.
    sim.isolated.insert(f);
    lagging_node_with_a_held_install(&mut sim, f);
    let decoded_first = first.decode();
    let node = sim.nodes.get_mut(&f).unwrap();
    let stale = node
        .group
        .finish_install(decoded_first, &mut node.events, Some(0))
        .unwrap();
    assert!(stale.is_none(), "a superseded install is ignored");
    assert!(node.group.is_installing());
    sim.hold_installs.clear();
    sim.tick(5);
    assert_eq!(sim.nodes[&f].group.kv(), sim.nodes[&l].group.kv());
}
