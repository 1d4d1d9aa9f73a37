//! Replies of CLUSTER SLOTS / SHARDS / NODES / MYID / INFO, so cluster-aware clients
//! (redis-cli -c, redis-py RedisCluster, redis-rs cluster) can learn which node leads which
//! slots and send requests there directly.
//!
//! Mapping onto Redis Cluster terms: each shard group is a Redis "shard" owning its contiguous
//! slot range; its Raft leader is the shard's master and its other voters are the replicas.
//! In CLUSTER NODES every node is listed as a master (a node follows several groups with
//! different leaders, so it has no single master to name) with the slots of the groups it
//! masters. Epochs are Raft terms.
//!
//! The builders are pure functions of a [`Topology`] snapshot, which [`Topology::from_shared`]
//! fills from the per-group state every core publishes: the leader, and the group's runtime
//! membership ([`GroupMembers`]: voters and every member's addresses, replicated through Raft
//! with conf changes and snapshots). So nodes added with `leasekv admin add-node` appear with
//! their client address and removed ones disappear; the config's `[[nodes]]` only stand in
//! until the groups have published (start-up).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use shards::{Member, Reply};

use crate::command::ClusterQuery;
use crate::config::Config;
use crate::core::{ClientEntry, Core, GroupStats, Shared};
use crate::routing::{Routing, SLOTS};

/// A group's membership as its owner core last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMembers {
    /// Voter ids, rotated so that group g starts at its (g mod n)-th voter by id, like the
    /// config's placement (the stand-in master when the leader is unknown).
    pub voters: Vec<u64>,
    /// Every voter and learner with its addresses.
    pub members: Vec<Member>,
}

impl GroupMembers {
    /// From a group's voter ids (any order) and member map.
    pub fn new(group: u32, mut voters: Vec<u64>, members: &shards::Members) -> GroupMembers {
        voters.sort_unstable();
        if !voters.is_empty() {
            let n = voters.len();
            voters.rotate_left(group as usize % n);
        }
        GroupMembers {
            voters,
            members: members.values().cloned().collect(),
        }
    }
}

/// Where the owner core publishes [`GroupMembers`] for readers on every core. Written on
/// membership changes only; readers clone the `Arc` under the lock.
#[derive(Default)]
pub struct PublishedMembers(Mutex<Option<Arc<GroupMembers>>>);

impl PublishedMembers {
    pub fn publish(&self, m: GroupMembers) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_deref() != Some(&m) {
            *slot = Some(Arc::new(m));
        }
    }

    pub fn get(&self) -> Option<Arc<GroupMembers>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The client address of node `id` as a member of `group` knows it (nodes added at runtime
/// included), else from the config. For `-MOVED`.
pub fn client_address(shared: &Shared, group: u32, id: u64) -> Option<String> {
    shared
        .group_stats
        .get(group as usize)
        .and_then(|s| s.members.get())
        .and_then(|m| {
            m.members
                .iter()
                .find(|m| m.id == id)
                .map(|m| m.client.clone())
        })
        .or_else(|| shared.config.node(id).map(|n| n.client.to_string()))
}

/// One node as clients should reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Raft node id.
    pub id: u64,
    /// Client (RESP) address.
    pub ip: IpAddr,
    pub port: u16,
    /// Reported as the cluster-bus port: the node's Raft base port (0 for a single node).
    pub cport: u16,
}

/// One shard group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// First and last (inclusive) slot.
    pub first: u16,
    pub last: u16,
    /// Node id of the leader as known here; 0 = unknown.
    pub leader: u64,
    /// Voter node ids in configuration order.
    pub voters: Vec<u64>,
    pub term: u64,
    /// This node's applied index for the group.
    pub applied: u64,
}

/// A snapshot of the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub cluster_id: String,
    /// This node's id.
    pub me: u64,
    /// Every node, by ascending id.
    pub nodes: Vec<NodeView>,
    /// Every group, by ascending slot range.
    pub groups: Vec<GroupView>,
}

/// The 40-hex-digit Redis node name of node `id` in cluster `cluster_id`.
///
/// Deterministic (every node derives the same names, across restarts and builds) and
/// injective in `id` for a given cluster: the last 16 digits are a bijective mix of `id`.
pub fn node_name(cluster_id: &str, id: u64) -> String {
    let a = fnv1a(0xcbf2_9ce4_8422_2325, cluster_id.as_bytes());
    let b = fnv1a(0x6c62_272e_07bb_0142, cluster_id.as_bytes());
    let head = mix64(b.wrapping_add(id));
    let middle = (mix64(a ^ b ^ id) >> 32) as u32;
    let tail = mix64(id ^ a);
    format!("{head:016x}{middle:08x}{tail:016x}")
}

/// FNV-1a over `data`, starting from `basis`.
fn fnv1a(basis: u64, data: &[u8]) -> u64 {
    data.iter().fold(basis, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finaliser: a bijection on u64 that scatters nearby inputs.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

fn bulk_static(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

/// An IP to report for this node when it listens on an unspecified address: the local address
/// of the client's connection, which that client can reach.
fn reachable(ip: IpAddr, local: Option<SocketAddr>) -> IpAddr {
    match local {
        Some(l) if ip.is_unspecified() => l.ip(),
        _ => ip,
    }
}

/// Every member of any group as published (by id; the first group naming a node wins),
/// this node always included. Before any group has published: the config's `[[nodes]]`.
fn cluster_nodes(cfg: &Config, stats: &[GroupStats], local: Option<SocketAddr>) -> Vec<NodeView> {
    let mut members: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut published = false;
    for m in stats.iter().filter_map(|s| s.members.get()) {
        published = true;
        for member in &m.members {
            members
                .entry(member.id)
                .or_insert_with(|| (member.client.clone(), member.raft.clone()));
        }
    }
    if !published {
        for n in &cfg.nodes {
            members.insert(n.id, (n.client.to_string(), n.raft.to_string()));
        }
    }
    if let Some(me) = cfg.node(cfg.node_id) {
        members
            .entry(me.id)
            .or_insert_with(|| (me.client.to_string(), me.raft.to_string()));
    }
    members
        .into_iter()
        .filter_map(|(id, (client, raft))| {
            let Ok(client) = client.parse::<SocketAddr>() else {
                tracing::debug!(node = id, %client, "member without a usable client address");
                return None;
            };
            let cport = raft.parse::<SocketAddr>().map_or(0, |a| a.port());
            let ip = if id == cfg.node_id {
                reachable(client.ip(), local)
            } else {
                client.ip()
            };
            Some(NodeView {
                id,
                ip,
                port: client.port(),
                cport,
            })
        })
        .collect()
}

impl Topology {
    /// Snapshot of `shared`. `local` is the local address of the asking client's connection,
    /// used when this node's configured address is unspecified (0.0.0.0 / ::).
    pub fn from_shared(shared: &Shared, local: Option<SocketAddr>) -> Topology {
        Topology::build(&shared.config, &shared.routing, &shared.group_stats, local)
    }

    /// Snapshot from the configuration, the slot map and the published group state
    /// (`stats[g]` for group g; a missing entry reads as an unknown leader and the config's
    /// membership).
    pub fn build(
        cfg: &Config,
        routing: &Routing,
        stats: &[GroupStats],
        local: Option<SocketAddr>,
    ) -> Topology {
        let nodes = if cfg.nodes.is_empty() {
            // Single node: one master owning every slot, at the listen address.
            let listen = cfg.listen.parse::<SocketAddr>().ok().or(local);
            let (ip, port) =
                listen.map_or((IpAddr::V4(Ipv4Addr::LOCALHOST), 0), |a| (a.ip(), a.port()));
            vec![NodeView {
                id: cfg.node_id,
                ip: reachable(ip, local),
                port,
                cport: 0,
            }]
        } else {
            cluster_nodes(cfg, stats, local)
        };
        let groups = (0..routing.groups())
            .map(|g| {
                let (first, last) = routing.slot_range(g);
                let s = stats.get(g as usize);
                let load = |f: fn(&GroupStats) -> &AtomicU64| {
                    s.map_or(0, |s| f(s).load(Ordering::Relaxed))
                };
                GroupView {
                    first,
                    last,
                    leader: load(|s| &s.leader_id),
                    voters: s
                        .and_then(|s| s.members.get())
                        .map_or_else(|| cfg.group_voters(g), |m| m.voters.clone()),
                    term: load(|s| &s.term),
                    applied: load(|s| &s.applied),
                }
            })
            .collect();
        Topology {
            cluster_id: cfg.cluster_id.clone(),
            me: cfg.node_id,
            nodes,
            groups,
        }
    }

    fn node(&self, id: u64) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }

    fn name(&self, id: u64) -> String {
        node_name(&self.cluster_id, id)
    }

    /// The node reported as the group's master: its leader when known, else its first voter
    /// (clients sent there get MOVED or a retryable error and refresh), else the first node.
    /// None only for a topology without nodes.
    pub fn master(&self, g: &GroupView) -> Option<&NodeView> {
        (g.leader != 0)
            .then(|| self.node(g.leader))
            .flatten()
            .or_else(|| g.voters.iter().find_map(|&v| self.node(v)))
            .or_else(|| self.nodes.first())
    }

    /// The group's replicas: its known voters other than the master, in voter order.
    fn replicas<'a>(&'a self, g: &'a GroupView, master: u64) -> impl Iterator<Item = &'a NodeView> {
        g.voters
            .iter()
            .filter(move |&&v| v != master)
            .filter_map(|&v| self.node(v))
    }

    /// The groups with their masters, skipping none unless the topology has no nodes.
    fn mastered(&self) -> impl Iterator<Item = (&GroupView, &NodeView)> {
        self.groups
            .iter()
            .filter_map(|g| self.master(g).map(|m| (g, m)))
    }

    /// Config epoch of node `id`: the highest term of the groups it masters (0 for none).
    fn config_epoch(&self, id: u64) -> u64 {
        self.mastered()
            .filter(|(_, m)| m.id == id)
            .map(|(g, _)| g.term)
            .max()
            .unwrap_or(0)
    }

    /// CLUSTER SLOTS: per group `[first, last, master, replicas...]`, each node
    /// `[ip, port, id, {}]` (Redis 7: the empty map holds no extra endpoint metadata).
    pub fn slots(&self) -> Reply {
        let entry = |n: &NodeView| {
            Reply::Array(vec![
                bulk(n.ip.to_string()),
                Reply::Int(n.port.into()),
                bulk(self.name(n.id)),
                Reply::Map(Vec::new()),
            ])
        };
        Reply::Array(
            self.mastered()
                .map(|(g, m)| {
                    let mut item = vec![
                        Reply::Int(g.first.into()),
                        Reply::Int(g.last.into()),
                        entry(m),
                    ];
                    item.extend(self.replicas(g, m.id).map(entry));
                    Reply::Array(item)
                })
                .collect(),
        )
    }

    /// CLUSTER SHARDS: per group a map `slots: [first, last]`, `nodes: [..]`, each node a
    /// map with Redis 7's keys in Redis' order.
    pub fn shards(&self) -> Reply {
        let node = |n: &NodeView, role: &'static str, g: &GroupView| {
            let offset = if n.id == self.me { g.applied } else { 0 };
            let ip = n.ip.to_string();
            Reply::Map(vec![
                (bulk_static("id"), bulk(self.name(n.id))),
                (bulk_static("port"), Reply::Int(n.port.into())),
                (bulk_static("ip"), bulk(ip.clone())),
                (bulk_static("endpoint"), bulk(ip)),
                (bulk_static("role"), bulk_static(role)),
                (
                    bulk_static("replication-offset"),
                    Reply::Int(i64::try_from(offset).unwrap_or(i64::MAX)),
                ),
                (bulk_static("health"), bulk_static("online")),
            ])
        };
        Reply::Array(
            self.mastered()
                .map(|(g, m)| {
                    let mut nodes = vec![node(m, "master", g)];
                    nodes.extend(self.replicas(g, m.id).map(|r| node(r, "replica", g)));
                    Reply::Map(vec![
                        (
                            bulk_static("slots"),
                            Reply::Array(vec![
                                Reply::Int(g.first.into()),
                                Reply::Int(g.last.into()),
                            ]),
                        ),
                        (bulk_static("nodes"), Reply::Array(nodes)),
                    ])
                })
                .collect(),
        )
    }

    /// CLUSTER NODES: one `\n`-terminated line per node,
    /// `<id> <ip:port@cport> <flags> - 0 0 <config-epoch> connected <slots...>`; adjacent
    /// ranges of one node are merged, as Redis prints slot sets.
    pub fn nodes(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let flags = if n.id == self.me {
                "myself,master"
            } else {
                "master"
            };
            let _ = write!(
                out,
                "{} {}:{}@{} {flags} - 0 0 {} connected",
                self.name(n.id),
                n.ip,
                n.port,
                n.cport,
                self.config_epoch(n.id)
            );
            let mut ranges: Vec<(u16, u16)> = self
                .mastered()
                .filter(|(_, m)| m.id == n.id)
                .map(|(g, _)| (g.first, g.last))
                .collect();
            ranges.sort_unstable();
            let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
            for (first, last) in ranges {
                match merged.last_mut() {
                    Some(prev) if u32::from(prev.1) + 1 == u32::from(first) => prev.1 = last,
                    _ => merged.push((first, last)),
                }
            }
            for (first, last) in merged {
                if first == last {
                    let _ = write!(out, " {first}");
                } else {
                    let _ = write!(out, " {first}-{last}");
                }
            }
            out.push('\n');
        }
        out
    }

    /// CLUSTER INFO: Redis 7's fields. The state is ok only when every group has a known
    /// leader; slots of the others count as failed.
    pub fn info(&self) -> String {
        let slots = |g: &GroupView| u32::from(g.last) - u32::from(g.first) + 1;
        let ok: u32 = self
            .groups
            .iter()
            .filter(|g| g.leader != 0)
            .map(slots)
            .sum();
        let assigned: u32 = self.groups.iter().map(slots).sum();
        let state = if ok == u32::from(SLOTS) && !self.groups.is_empty() {
            "ok"
        } else {
            "fail"
        };
        let current_epoch = self.groups.iter().map(|g| g.term).max().unwrap_or(0);
        let fields: [(&str, String); 12] = [
            ("cluster_state", state.to_string()),
            ("cluster_slots_assigned", assigned.to_string()),
            ("cluster_slots_ok", ok.to_string()),
            ("cluster_slots_pfail", "0".to_string()),
            ("cluster_slots_fail", (assigned - ok).to_string()),
            ("cluster_known_nodes", self.nodes.len().to_string()),
            ("cluster_size", self.groups.len().to_string()),
            ("cluster_current_epoch", current_epoch.to_string()),
            ("cluster_my_epoch", self.config_epoch(self.me).to_string()),
            ("cluster_stats_messages_sent", "0".to_string()),
            ("cluster_stats_messages_received", "0".to_string()),
            ("total_cluster_links_buffer_limit_exceeded", "0".to_string()),
        ];
        let mut out = String::new();
        for (k, v) in fields {
            let _ = write!(out, "{k}:{v}\r\n");
        }
        out
    }

    /// CLUSTER MYID.
    pub fn myid(&self) -> String {
        self.name(self.me)
    }

    /// The reply to `q`. NODES and INFO are bulk strings (Redis 7 sends RESP3 verbatim
    /// strings; `Reply` has no such kind, and clients accept either).
    pub fn answer(&self, q: ClusterQuery) -> Reply {
        match q {
            ClusterQuery::Slots => self.slots(),
            ClusterQuery::Shards => self.shards(),
            ClusterQuery::Nodes => bulk(self.nodes()),
            ClusterQuery::Info => bulk(self.info()),
            ClusterQuery::MyId => bulk(self.myid()),
        }
    }
}

/// Answers a topology query for `client`, connected to `core`.
pub fn reply(core: &Core, client: &ClientEntry, q: ClusterQuery) -> Reply {
    let local = client.laddr.parse::<SocketAddr>().ok();
    Topology::from_shared(&core.shared, local).answer(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, NodeSpec, Overrides};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn node(id: u64) -> NodeView {
        NodeView {
            id,
            ip: ip("127.0.0.1"),
            port: 7000 + id as u16,
            cport: 8000 + id as u16,
        }
    }

    fn group(first: u16, last: u16, leader: u64, voters: &[u64], term: u64) -> GroupView {
        GroupView {
            first,
            last,
            leader,
            voters: voters.to_vec(),
            term,
            applied: 0,
        }
    }

    /// Three nodes, this is node 2; four groups: two led by node 1, one leaderless (first
    /// voter 3), one led by 3 where node 2 has applied 42 entries.
    fn three_nodes() -> Topology {
        let mut g3 = group(12288, 16383, 3, &[1, 2, 3], 2);
        g3.applied = 42;
        Topology {
            cluster_id: "t".into(),
            me: 2,
            nodes: vec![node(1), node(2), node(3)],
            groups: vec![
                group(0, 4095, 1, &[1, 2, 3], 5),
                group(4096, 8191, 1, &[2, 3, 1], 7),
                group(8192, 12287, 0, &[3, 1, 2], 3),
                g3,
            ],
        }
    }

    fn b(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn entry(t: &Topology, id: u64) -> Reply {
        Reply::Array(vec![
            b("127.0.0.1"),
            Reply::Int(7000 + id as i64),
            b(&node_name(&t.cluster_id, id)),
            Reply::Map(vec![]),
        ])
    }

    #[test]
    fn node_names_are_40_hex_deterministic_and_distinct() {
        let n = node_name("leasekv", 1);
        assert_eq!(n.len(), 40);
        assert!(n
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(n, node_name("leasekv", 1));
        let mut names: Vec<String> = (1..=1000).map(|i| node_name("leasekv", i)).collect();
        names.push(node_name("other", 1));
        names.push(node_name("leasekv", 0));
        names.push(node_name("leasekv", u64::MAX));
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "names collide");
    }

    #[test]
    fn slots_list_master_then_replicas_per_group() {
        let t = three_nodes();
        let e = |id| entry(&t, id);
        let range = |a: i64, z: i64, ids: &[u64]| {
            let mut v = vec![Reply::Int(a), Reply::Int(z)];
            v.extend(ids.iter().map(|&i| e(i)));
            Reply::Array(v)
        };
        assert_eq!(
            t.slots(),
            Reply::Array(vec![
                range(0, 4095, &[1, 2, 3]),
                range(4096, 8191, &[1, 2, 3]),
                // Unknown leader: the first voter stands in.
                range(8192, 12287, &[3, 1, 2]),
                range(12288, 16383, &[3, 1, 2]),
            ])
        );
    }

    #[test]
    fn a_leader_outside_the_node_list_falls_back_to_the_first_voter() {
        let mut t = three_nodes();
        t.groups[0].leader = 99;
        assert_eq!(t.master(&t.groups[0]).map(|n| n.id), Some(1));
        t.groups[0].voters = vec![42];
        assert_eq!(t.master(&t.groups[0]).map(|n| n.id), Some(1), "first node");
        t.nodes.clear();
        assert_eq!(t.slots(), Reply::Array(vec![]));
    }

    #[test]
    fn shards_have_redis_7_fields_in_order() {
        let t = three_nodes();
        let Reply::Array(shards) = t.shards() else {
            panic!("not an array")
        };
        assert_eq!(shards.len(), 4);
        let shard_node = |id: u64, role: &str, offset: i64| {
            Reply::Map(vec![
                (b("id"), b(&node_name("t", id))),
                (b("port"), Reply::Int(7000 + id as i64)),
                (b("ip"), b("127.0.0.1")),
                (b("endpoint"), b("127.0.0.1")),
                (b("role"), b(role)),
                (b("replication-offset"), Reply::Int(offset)),
                (b("health"), b("online")),
            ])
        };
        assert_eq!(
            shards[3],
            Reply::Map(vec![
                (
                    b("slots"),
                    Reply::Array(vec![Reply::Int(12288), Reply::Int(16383)])
                ),
                (
                    b("nodes"),
                    Reply::Array(vec![
                        shard_node(3, "master", 0),
                        shard_node(1, "replica", 0),
                        // Only this node's own applied index is known.
                        shard_node(2, "replica", 42),
                    ])
                ),
            ])
        );
    }

    #[test]
    fn nodes_lines_merge_adjacent_ranges_and_flag_myself() {
        let t = three_nodes();
        let id = |n| node_name("t", n);
        assert_eq!(
            t.nodes(),
            format!(
                "{} 127.0.0.1:7001@8001 master - 0 0 7 connected 0-8191\n\
                 {} 127.0.0.1:7002@8002 myself,master - 0 0 0 connected\n\
                 {} 127.0.0.1:7003@8003 master - 0 0 3 connected 8192-16383\n",
                id(1),
                id(2),
                id(3)
            )
        );
        // A one-slot range prints as a single number; non-adjacent ranges stay apart.
        let t = Topology {
            cluster_id: "t".into(),
            me: 1,
            nodes: vec![node(1), node(2)],
            groups: vec![
                group(0, 0, 1, &[1], 1),
                group(1, 9, 2, &[2], 1),
                group(10, 16383, 1, &[1], 4),
            ],
        };
        let text = t.nodes();
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(
            lines,
            [
                "127.0.0.1:7001@8001 myself,master - 0 0 4 connected 0 10-16383",
                "127.0.0.1:7002@8002 master - 0 0 1 connected 1-9",
            ]
        );
    }

    #[test]
    fn info_fails_while_a_group_has_no_leader() {
        let mut t = three_nodes();
        assert_eq!(
            t.info(),
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:12288\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:4096\r\ncluster_known_nodes:3\r\n\
             cluster_size:4\r\ncluster_current_epoch:7\r\ncluster_my_epoch:0\r\n\
             cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n"
        );
        t.groups[2].leader = 2;
        let info = t.info();
        assert!(info.starts_with("cluster_state:ok\r\n"), "{info}");
        assert!(info.contains("\r\ncluster_slots_ok:16384\r\n"), "{info}");
        assert!(info.contains("\r\ncluster_my_epoch:3\r\n"), "{info}");
    }

    #[test]
    fn answers_by_query() {
        let t = three_nodes();
        assert_eq!(t.answer(ClusterQuery::MyId), b(&node_name("t", 2)));
        assert_eq!(t.answer(ClusterQuery::Nodes), b(&t.nodes()));
        assert_eq!(t.answer(ClusterQuery::Info), b(&t.info()));
        assert_eq!(t.answer(ClusterQuery::Slots), t.slots());
        assert_eq!(t.answer(ClusterQuery::Shards), t.shards());
    }

    fn single_node_config(listen: &str) -> Config {
        let o = Overrides {
            listen: Some(listen.into()),
            cores: Some(vec![0]),
            ..Overrides::default()
        };
        config::resolve(None, &o).expect("default config")
    }

    #[test]
    fn single_node_owns_every_slot_at_its_listen_address() {
        let cfg = single_node_config("127.0.0.1:7100");
        let routing = Routing::new(cfg.groups, &cfg.placement);
        assert!(routing.groups() > 1, "exercise range merging");
        let stats: Vec<GroupStats> = (0..routing.groups())
            .map(|_| GroupStats::default())
            .collect();
        for s in &stats {
            s.leader_id.store(cfg.node_id, Ordering::Relaxed);
            s.term.store(2, Ordering::Relaxed);
        }
        let t = Topology::build(&cfg, &routing, &stats, None);
        assert_eq!(t.nodes.len(), 1);
        assert_eq!(
            t.nodes(),
            format!(
                "{} 127.0.0.1:7100@0 myself,master - 0 0 2 connected 0-16383\n",
                node_name(&cfg.cluster_id, cfg.node_id)
            )
        );
        assert!(t.info().starts_with("cluster_state:ok\r\n"));
        let Reply::Array(slots) = t.slots() else {
            panic!()
        };
        assert_eq!(slots.len(), routing.groups() as usize);
        // Before any leader is published: same owner, but the state is fail.
        let t = Topology::build(&cfg, &routing, &[], None);
        assert!(t.nodes().ends_with(" connected 0-16383\n"));
        assert!(t.info().starts_with("cluster_state:fail\r\n"));
    }

    #[test]
    fn an_unspecified_listen_address_reports_the_connection_address() {
        let cfg = single_node_config("0.0.0.0:7100");
        let routing = Routing::new(cfg.groups, &cfg.placement);
        let local: SocketAddr = "10.1.2.3:7100".parse().unwrap();
        let t = Topology::build(&cfg, &routing, &[], Some(local));
        assert_eq!(t.nodes[0].ip, ip("10.1.2.3"));
        let t = Topology::build(&cfg, &routing, &[], None);
        assert_eq!(t.nodes[0].ip, ip("0.0.0.0"));
    }

    #[test]
    fn cluster_config_gives_voters_and_raft_ports() {
        let mut cfg = single_node_config("127.0.0.1:7102");
        cfg.node_id = 2;
        cfg.replication = 2;
        cfg.nodes = (1..=3)
            .map(|i| NodeSpec {
                id: i,
                raft: format!("127.0.0.1:{}", 7200 + i).parse().unwrap(),
                client: format!("127.0.0.1:{}", 7100 + i).parse().unwrap(),
            })
            .collect();
        let routing = Routing::new(3, &[0, 0, 0]);
        let stats: Vec<GroupStats> = (0..3).map(|_| GroupStats::default()).collect();
        stats[1].leader_id.store(3, Ordering::Relaxed);
        stats[1].applied.store(9, Ordering::Relaxed);
        let t = Topology::build(&cfg, &routing, &stats, None);
        assert_eq!(t.me, 2);
        assert_eq!(
            t.nodes
                .iter()
                .map(|n| (n.id, n.port, n.cport))
                .collect::<Vec<_>>(),
            [(1, 7101, 7201), (2, 7102, 7202), (3, 7103, 7203)]
        );
        assert_eq!(t.groups[1].voters, cfg.group_voters(1));
        assert_eq!((t.groups[1].leader, t.groups[1].applied), (3, 9));
        assert_eq!(
            (t.groups[0].first, t.groups[2].last),
            (0, SLOTS - 1),
            "ranges come from routing"
        );
        // Group 1's voters are [2, 3]: master 3, one replica (2).
        let Reply::Array(slots) = t.slots() else {
            panic!()
        };
        let Reply::Array(g1) = &slots[1] else {
            panic!()
        };
        assert_eq!(g1.len(), 4);
        assert_eq!(g1[2], entry_at(&t, 3, 7103));
        assert_eq!(g1[3], entry_at(&t, 2, 7102));
    }

    #[test]
    fn published_membership_replaces_the_config_nodes() {
        let mut cfg = single_node_config("127.0.0.1:7102");
        cfg.node_id = 2;
        cfg.nodes = (1..=3)
            .map(|i| NodeSpec {
                id: i,
                raft: format!("127.0.0.1:{}", 7200 + i).parse().unwrap(),
                client: format!("127.0.0.1:{}", 7100 + i).parse().unwrap(),
            })
            .collect();
        let routing = Routing::new(2, &[0, 0]);
        let stats: Vec<GroupStats> = (0..2).map(|_| GroupStats::default()).collect();
        let member = |i: u64| Member {
            id: i,
            raft: format!("127.0.0.1:{}", 7200 + i),
            client: format!("127.0.0.1:{}", 7100 + i),
        };
        // At runtime node 4 was added and node 3 removed; group 1 is led by node 4.
        let members: shards::Members = [1, 2, 4].into_iter().map(|i| (i, member(i))).collect();
        for (g, s) in stats.iter().enumerate() {
            s.members
                .publish(GroupMembers::new(g as u32, vec![4, 2, 1], &members));
        }
        stats[1].leader_id.store(4, Ordering::Relaxed);
        let t = Topology::build(&cfg, &routing, &stats, None);
        assert_eq!(
            t.nodes
                .iter()
                .map(|n| (n.id, n.port, n.cport))
                .collect::<Vec<_>>(),
            [(1, 7101, 7201), (2, 7102, 7202), (4, 7104, 7204)]
        );
        // Voters rotate by group like the config's placement.
        assert_eq!(t.groups[0].voters, [1, 2, 4]);
        assert_eq!(t.groups[1].voters, [2, 4, 1]);
        let Reply::Array(slots) = t.slots() else {
            panic!()
        };
        let Reply::Array(g1) = &slots[1] else {
            panic!()
        };
        assert_eq!(g1[2], entry_at(&t, 4, 7104), "node 4 masters group 1");
        let nodes = t.nodes();
        assert!(nodes.contains(" 127.0.0.1:7104@7204 master "), "{nodes}");
        assert!(!nodes.contains(":7103@"), "{nodes}");
        // Publishing the same membership again keeps the published value.
        let before = stats[0].members.get().unwrap();
        stats[0]
            .members
            .publish(GroupMembers::new(0, vec![1, 2, 4], &members));
        assert!(Arc::ptr_eq(&before, &stats[0].members.get().unwrap()));
    }

    #[test]
    fn a_member_with_an_unusable_address_is_left_out() {
        let mut cfg = single_node_config("127.0.0.1:7101");
        cfg.nodes = vec![NodeSpec {
            id: 1,
            raft: "127.0.0.1:7201".parse().unwrap(),
            client: "127.0.0.1:7101".parse().unwrap(),
        }];
        let routing = Routing::new(1, &[0]);
        let stats = vec![GroupStats::default()];
        let members: shards::Members = [
            (
                1,
                Member {
                    id: 1,
                    raft: "127.0.0.1:7201".into(),
                    client: "127.0.0.1:7101".into(),
                },
            ),
            (
                5,
                Member {
                    id: 5,
                    raft: "nowhere".into(),
                    client: "no port".into(),
                },
            ),
        ]
        .into_iter()
        .collect();
        stats[0]
            .members
            .publish(GroupMembers::new(0, vec![1, 5], &members));
        let t = Topology::build(&cfg, &routing, &stats, None);
        assert_eq!(t.nodes.iter().map(|n| n.id).collect::<Vec<_>>(), [1]);
        assert_eq!(t.master(&t.groups[0]).map(|n| n.id), Some(1));
    }

    fn entry_at(t: &Topology, id: u64, port: i64) -> Reply {
        Reply::Array(vec![
            b("127.0.0.1"),
            Reply::Int(port),
            b(&node_name(&t.cluster_id, id)),
            Reply::Map(vec![]),
        ])
    }
}
