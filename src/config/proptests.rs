//! Property tests of the config loader: generated valid files load with exactly the values
//! written (and the documented defaults for the rest); the same files with one value made
//! invalid are refused with an error naming that key. Validated against the fixed CPU set
//! [`FUZZ_CPUS`], so the outcome does not depend on the machine.

use std::fmt::Write as _;
use std::net::SocketAddr;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{
    resolve_text, LimitsConfig, NodeSpec, Overrides, RaftConfig, ReadMode, Redirect,
    TransportSettings,
};
use crate::fuzzing::FUZZ_CPUS;

const MIB: usize = 1 << 20;
/// TOML integers are i64.
const MAX_INT: u64 = i64::MAX as u64;

/// A generated valid config; `None` fields are left out of the file.
#[derive(Debug, Clone)]
struct Spec {
    node_id: u64,
    listen: Option<String>,
    data_dir: String,
    cores: Vec<usize>,
    groups: Option<u32>,
    placement: Option<Vec<usize>>,
    log_level: String,
    raft: RaftConfig,
    limits: LimitsConfig,
    transport: TransportSettings,
    /// Whether `transport.max_frame_bytes` is written (else its default must apply).
    max_frame_written: bool,
    nodes: Vec<NodeSpec>,
    replication: u32,
    redirect: Redirect,
    read_mode: ReadMode,
    debug_commands: bool,
    cluster_id: String,
    metrics_addr: Option<SocketAddr>,
    join: bool,
}

/// One `key = value` line of a section (`""` = top level).
type Entry = (&'static str, &'static str, String);

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn toml_list(v: &[usize]) -> String {
    let items: Vec<String> = v.iter().map(usize::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn node_table(n: &NodeSpec) -> String {
    format!(
        "[[nodes]]\nid = {}\nraft = \"{}\"\nclient = \"{}\"\n",
        n.id, n.raft, n.client
    )
}

impl Spec {
    fn entries(&self) -> Vec<Entry> {
        let mut e: Vec<Entry> = vec![
            ("", "node_id", self.node_id.to_string()),
            ("", "data_dir", toml_str(&self.data_dir)),
            ("", "cores", toml_list(&self.cores)),
            ("", "log_level", toml_str(&self.log_level)),
            ("", "replication", self.replication.to_string()),
            ("", "cluster_id", toml_str(&self.cluster_id)),
            ("", "debug_commands", self.debug_commands.to_string()),
            ("", "join", self.join.to_string()),
        ];
        e.push((
            "",
            "redirect",
            toml_str(match self.redirect {
                Redirect::Proxy => "proxy",
                Redirect::Moved => "moved",
            }),
        ));
        e.push((
            "",
            "read_mode",
            toml_str(match self.read_mode {
                ReadMode::Lease => "lease",
                ReadMode::ReadIndex => "readindex",
            }),
        ));
        if let Some(l) = &self.listen {
            e.push(("", "listen", toml_str(l)));
        }
        if let Some(g) = self.groups {
            e.push(("", "groups", g.to_string()));
        }
        if let Some(p) = &self.placement {
            e.push(("", "placement", toml_list(p)));
        }
        if let Some(m) = self.metrics_addr {
            e.push(("", "metrics_addr", toml_str(&m.to_string())));
        }
        let r = &self.raft;
        e.extend([
            ("raft", "tick_ms", r.tick_ms.to_string()),
            ("raft", "election_ticks", r.election_ticks.to_string()),
            ("raft", "heartbeat_ticks", r.heartbeat_ticks.to_string()),
            (
                "raft",
                "snapshot_log_bytes",
                r.snapshot_log_bytes.to_string(),
            ),
            ("raft", "balance_leaders", r.balance_leaders.to_string()),
            ("raft", "clock_drift_ms", r.clock_drift_ms.to_string()),
        ]);
        if let Some(ms) = r.lease_ms {
            e.push(("raft", "lease_ms", ms.to_string()));
        }
        let l = &self.limits;
        e.extend([
            ("limits", "max_clients", l.max_clients.to_string()),
            ("limits", "max_bulk_bytes", l.max_bulk_bytes.to_string()),
            ("limits", "max_args", l.max_args.to_string()),
            ("limits", "max_pipeline", l.max_pipeline.to_string()),
            (
                "limits",
                "request_timeout_ms",
                l.request_timeout_ms.to_string(),
            ),
            (
                "limits",
                "idle_frame_timeout_ms",
                l.idle_frame_timeout_ms.to_string(),
            ),
            ("limits", "write_timeout_ms", l.write_timeout_ms.to_string()),
        ]);
        let t = &self.transport;
        e.extend([
            (
                "transport",
                "max_queue_bytes",
                t.max_queue_bytes.to_string(),
            ),
            (
                "transport",
                "connect_timeout_ms",
                t.connect_timeout_ms.to_string(),
            ),
            ("transport", "backoff_min_ms", t.backoff_min_ms.to_string()),
            ("transport", "backoff_max_ms", t.backoff_max_ms.to_string()),
        ]);
        if self.max_frame_written {
            e.push((
                "transport",
                "max_frame_bytes",
                t.max_frame_bytes.to_string(),
            ));
        }
        e
    }
}

/// The file: top-level keys, then `[raft]`, `[limits]`, `[transport]`, then `[[nodes]]`.
fn render(entries: &[Entry], nodes: &[NodeSpec], extra_node: Option<&NodeSpec>) -> String {
    let mut text = String::new();
    for section in ["", "raft", "limits", "transport"] {
        if !section.is_empty() {
            let _ = writeln!(text, "\n[{section}]");
        }
        for (_, key, value) in entries.iter().filter(|(s, _, _)| *s == section) {
            let _ = writeln!(text, "{key} = {value}");
        }
    }
    for n in nodes.iter().chain(extra_node) {
        let _ = write!(text, "\n{}", node_table(n));
    }
    text
}

/// Replaces (or adds) one entry.
fn set(entries: &mut Vec<Entry>, section: &'static str, key: &'static str, value: String) {
    entries.retain(|(s, k, _)| !(*s == section && *k == key));
    entries.push((section, key, value));
}

fn raft() -> impl Strategy<Value = (RaftConfig, ReadMode)> {
    let lease = (1u64..=1000, 1usize..=10, 2usize..=40, any::<bool>()).prop_flat_map(
        |(tick, heartbeat, extra, explicit)| {
            let election = heartbeat + extra;
            // With no lease_ms the lease is bound - tick, so drift must leave more than a tick.
            let room = (election as u64 - 2) * tick;
            (0..room).prop_flat_map(move |drift| {
                let bound = (election as u64 - 1) * tick - drift;
                let lease_ms = if explicit {
                    (1..bound).prop_map(Some).boxed()
                } else {
                    Just(None).boxed()
                };
                (Just((tick, heartbeat, election, drift)), lease_ms)
            })
        },
    );
    let readindex = (
        1u64..=1000,
        1usize..=10,
        1usize..=40,
        0..=MAX_INT,
        prop::option::of(0..=MAX_INT),
    )
        .prop_map(|(tick, hb, extra, drift, lease)| ((tick, hb, hb + extra, drift), lease));
    (
        prop_oneof![
            lease.prop_map(|x| (x, ReadMode::Lease)),
            readindex.prop_map(|x| (x, ReadMode::ReadIndex)),
        ],
        65536..=MAX_INT,
        any::<bool>(),
    )
        .prop_map(
            |((((tick, heartbeat, election, drift), lease_ms), mode), snapshot, balance)| {
                let r = RaftConfig {
                    tick_ms: tick,
                    election_ticks: election,
                    heartbeat_ticks: heartbeat,
                    snapshot_log_bytes: snapshot,
                    balance_leaders: balance,
                    lease_ms,
                    clock_drift_ms: drift,
                };
                (r, mode)
            },
        )
}

fn limits_and_transport() -> impl Strategy<Value = (LimitsConfig, TransportSettings, bool)> {
    let positive = || prop_oneof![1u64..=1000, 1..=MAX_INT];
    (
        (
            positive(),
            1024usize..=1 << 30,
            positive(),
            positive(),
            positive(),
            positive(),
            positive(),
        ),
        (65536..=MAX_INT, 1u64..=60_000, 1u64..=600_000),
    )
        .prop_flat_map(
            |((clients, bulk, args, pipe, req, idle, write), (queue, conn, bmin))| {
                let limits = LimitsConfig {
                    max_clients: clients as usize,
                    max_bulk_bytes: bulk,
                    max_args: args as usize,
                    max_pipeline: pipe as usize,
                    request_timeout_ms: req,
                    idle_frame_timeout_ms: idle,
                    write_timeout_ms: write,
                };
                let frame = prop::option::of((bulk + MIB + 1)..=u32::MAX as usize);
                (Just(limits), bmin..=600_000, frame).prop_map(move |(limits, bmax, frame)| {
                    let d = TransportSettings::defaults_for(limits.max_bulk_bytes);
                    let t = TransportSettings {
                        max_queue_bytes: queue as usize,
                        connect_timeout_ms: conn,
                        backoff_min_ms: bmin,
                        backoff_max_ms: bmax,
                        max_frame_bytes: frame.unwrap_or(d.max_frame_bytes),
                    };
                    (limits, t, frame.is_some())
                })
            },
        )
}

/// `(node_id, listen, nodes, join)`: single-node or a cluster of up to 5 nodes with
/// non-overlapping addresses (core c of a node uses its raft port + c; at most 4 cores).
fn membership() -> impl Strategy<Value = (u64, Option<String>, Vec<NodeSpec>, bool)> {
    let single = (
        1..=MAX_INT,
        prop::option::of(prop::sample::select(vec![
            "127.0.0.1:6379",
            "0.0.0.0:1",
            "[::1]:65535",
            "[::]:7000",
        ])),
    )
        .prop_map(|(id, listen)| (id, listen.map(str::to_owned), Vec::new(), false));
    let cluster = (
        prop::collection::btree_set(1u64..=100, 1..=5),
        any::<Index>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ids, me, v6, listen, join)| {
            let ip = if v6 { "[::1]" } else { "127.0.0.1" };
            let nodes: Vec<NodeSpec> = ids
                .iter()
                .enumerate()
                .map(|(i, &id)| NodeSpec {
                    id,
                    raft: format!("{ip}:{}", 10_000 + 100 * i).parse().unwrap(),
                    client: format!("{ip}:{}", 20_000 + i).parse().unwrap(),
                })
                .collect();
            let me = &nodes[me.index(nodes.len())];
            let listen = listen.then(|| me.client.to_string());
            (me.id, listen, nodes, join)
        });
    prop_oneof![single, cluster]
}

fn spec() -> impl Strategy<Value = Spec> {
    let cores = prop::sample::subsequence(FUZZ_CPUS.to_vec(), 1..=FUZZ_CPUS.len())
        .prop_shuffle()
        .prop_flat_map(|cores| {
            let n = cores.len();
            let shape = prop::option::of((1u32..=64).prop_flat_map(move |g| {
                (
                    Just(g),
                    prop::option::of(prop::collection::vec(0..n, g as usize)),
                )
            }));
            (Just(cores), shape)
        });
    let misc = (
        "[a-z0-9/._-]{1,20}",
        prop::sample::select(vec!["info", "debug", "leasekv=debug,info", "warn"]),
        1u32..=7,
        prop_oneof![Just(Redirect::Proxy), Just(Redirect::Moved)],
        any::<bool>(),
        "\\PC{1,60}",
        prop::option::of(Just("127.0.0.1:9100".parse::<SocketAddr>().unwrap())),
    );
    (cores, raft(), limits_and_transport(), membership(), misc).prop_map(
        |((cores, shape), (raft, read_mode), (limits, transport, frame), members, misc)| {
            let (node_id, listen, nodes, join) = members;
            let (data_dir, log_level, replication, redirect, debug, cluster_id, metrics) = misc;
            let (groups, placement) = match shape {
                Some((g, p)) => (Some(g), p),
                None => (None, None),
            };
            Spec {
                node_id,
                listen,
                data_dir,
                cores,
                groups,
                placement,
                log_level: log_level.to_owned(),
                raft,
                limits,
                transport,
                max_frame_written: frame,
                nodes,
                replication,
                redirect,
                read_mode,
                debug_commands: debug,
                cluster_id,
                metrics_addr: metrics,
                join,
            }
        },
    )
}

/// One invalid value (possibly with a companion change that keeps everything else valid),
/// and the key the error must name.
struct Mutation {
    key: &'static str,
    edits: Vec<Entry>,
    extra_node: Option<NodeSpec>,
}

fn m(key: &'static str, section: &'static str, name: &'static str, value: String) -> Mutation {
    Mutation {
        key,
        edits: vec![(section, name, value)],
        extra_node: None,
    }
}

/// Every mutation that applies to `s`; `r` varies the invalid values.
fn mutations(s: &Spec, r: u64) -> Vec<Mutation> {
    let pick = |lo: u64, hi: u64| lo + r % (hi - lo + 1);
    let g = s.groups.unwrap_or(2);
    let mut v = vec![
        m("node_id", "", "node_id", "0".into()),
        m(
            "listen",
            "",
            "listen",
            toml_str(["localhost:6379", "127.0.0.1", "", "1.2.3.4:99999"][r as usize % 4]),
        ),
        m("data_dir", "", "data_dir", "\"\"".into()),
        m("cores", "", "cores", "[]".into()),
        m("cores", "", "cores", toml_list(&[s.cores[0], s.cores[0]])),
        m(
            "cores",
            "",
            "cores",
            toml_list(&[pick(4, 100_000) as usize]),
        ),
        m("groups", "", "groups", "0".into()),
        m(
            "groups",
            "",
            "groups",
            pick(16_385, u64::from(u32::MAX)).to_string(),
        ),
        Mutation {
            key: "placement",
            edits: vec![
                ("", "groups", g.to_string()),
                ("", "placement", toml_list(&vec![0; g as usize + 1])),
            ],
            extra_node: None,
        },
        Mutation {
            key: "placement",
            edits: vec![
                ("", "groups", g.to_string()),
                ("", "placement", {
                    let mut p = vec![0; g as usize];
                    p[r as usize % g as usize] = s.cores.len() + r as usize % 5;
                    toml_list(&p)
                }),
            ],
            extra_node: None,
        },
        m("raft.tick_ms", "raft", "tick_ms", "0".into()),
        m(
            "raft.tick_ms",
            "raft",
            "tick_ms",
            pick(1001, MAX_INT).to_string(),
        ),
        m(
            "raft.heartbeat_ticks",
            "raft",
            "heartbeat_ticks",
            "0".into(),
        ),
        m(
            "raft.election_ticks",
            "raft",
            "election_ticks",
            (r % (s.raft.heartbeat_ticks as u64 + 1)).to_string(),
        ),
        m(
            "raft.snapshot_log_bytes",
            "raft",
            "snapshot_log_bytes",
            pick(0, 65_535).to_string(),
        ),
        m(
            "limits.max_bulk_bytes",
            "limits",
            "max_bulk_bytes",
            pick(0, 1023).to_string(),
        ),
        m(
            "limits.max_bulk_bytes",
            "limits",
            "max_bulk_bytes",
            pick((1 << 30) + 1, MAX_INT).to_string(),
        ),
        m(
            "transport.max_queue_bytes",
            "transport",
            "max_queue_bytes",
            pick(0, 65_535).to_string(),
        ),
        m(
            "transport.connect_timeout_ms",
            "transport",
            "connect_timeout_ms",
            "0".into(),
        ),
        m(
            "transport.connect_timeout_ms",
            "transport",
            "connect_timeout_ms",
            pick(60_001, MAX_INT).to_string(),
        ),
        m(
            "transport.backoff_min_ms",
            "transport",
            "backoff_min_ms",
            "0".into(),
        ),
        m(
            "transport.backoff_max_ms",
            "transport",
            "backoff_max_ms",
            pick(600_001, MAX_INT).to_string(),
        ),
        m(
            "transport.max_frame_bytes",
            "transport",
            "max_frame_bytes",
            pick(0, (s.limits.max_bulk_bytes + MIB) as u64).to_string(),
        ),
        m(
            "transport.max_frame_bytes",
            "transport",
            "max_frame_bytes",
            pick(u64::from(u32::MAX) + 1, MAX_INT).to_string(),
        ),
        m("replication", "", "replication", "0".into()),
        m(
            "replication",
            "",
            "replication",
            pick(8, u64::from(u32::MAX)).to_string(),
        ),
        m("cluster_id", "", "cluster_id", "\"\"".into()),
        // A TOML escape: raw control characters are a syntax error, not a value.
        m("cluster_id", "", "cluster_id", "\"a\\u0001b\"".into()),
        m("cluster_id", "", "cluster_id", toml_str(&"x".repeat(256))),
    ];
    for (full, key) in [
        ("limits.max_clients", "max_clients"),
        ("limits.max_args", "max_args"),
        ("limits.max_pipeline", "max_pipeline"),
        ("limits.request_timeout_ms", "request_timeout_ms"),
        ("limits.idle_frame_timeout_ms", "idle_frame_timeout_ms"),
        ("limits.write_timeout_ms", "write_timeout_ms"),
    ] {
        v.push(m(full, "limits", key, "0".into()));
    }
    if s.transport.backoff_min_ms > 1 {
        v.push(m(
            "transport.backoff_max_ms",
            "transport",
            "backoff_max_ms",
            pick(0, s.transport.backoff_min_ms - 1).to_string(),
        ));
    }
    if s.read_mode == ReadMode::Lease {
        let rc = &s.raft;
        let bound = (rc.election_ticks as u64 - 1) * rc.tick_ms - rc.clock_drift_ms;
        v.push(m("raft.lease_ms", "raft", "lease_ms", "0".into()));
        v.push(m(
            "raft.lease_ms",
            "raft",
            "lease_ms",
            pick(bound, MAX_INT).to_string(),
        ));
        // A drift margin as long as the election timeout leaves no lease at all.
        let timeout = (rc.election_ticks as u64 - 1) * rc.tick_ms;
        v.push(m(
            "raft.lease_ms",
            "raft",
            "clock_drift_ms",
            pick(timeout, MAX_INT).to_string(),
        ));
    }
    if s.nodes.is_empty() {
        v.push(m("join", "", "join", "true".into()));
    } else {
        v.push(m("node_id", "", "node_id", pick(101, MAX_INT).to_string()));
        v.push(m("listen", "", "listen", toml_str("127.0.0.1:1")));
        let first = &s.nodes[0];
        let dup_id = NodeSpec {
            id: first.id,
            raft: "127.0.0.2:30000".parse().unwrap(),
            client: "127.0.0.2:31000".parse().unwrap(),
        };
        let zero_id = NodeSpec { id: 0, ..dup_id };
        let clash = NodeSpec {
            id: 200,
            raft: "127.0.0.2:30000".parse().unwrap(),
            client: first.client,
        };
        let zero_port = NodeSpec {
            id: 201,
            raft: "127.0.0.2:0".parse().unwrap(),
            ..dup_id
        };
        for n in [dup_id, zero_id, clash, zero_port] {
            v.push(Mutation {
                key: "nodes",
                edits: Vec::new(),
                extra_node: Some(n),
            });
        }
    }
    v
}

fn load(text: &str) -> Result<super::Config, super::ConfigError> {
    resolve_text(text, &Overrides::default(), FUZZ_CPUS)
}

/// Regression (found by `one_invalid_value_names_its_key`): ms -> ns conversions of
/// `clock_drift_ms` and `lease_ms` overflowed. Debug builds panicked; release builds wrapped,
/// so e.g. a drift of 18446744073710 ms became 0.45 ms and an unsafe lease was accepted.
#[test]
fn huge_drift_and_lease_are_refused_not_overflowed() {
    for text in [
        "[raft]\nclock_drift_ms = 18446744073710\n",
        "[raft]\nclock_drift_ms = 9223372036854775807\n",
        "[raft]\nclock_drift_ms = 9223372036854775807\nlease_ms = 100\n",
        "[raft]\nlease_ms = 18446744073710\n",
        "[raft]\nlease_ms = 9223372036854775807\n",
    ] {
        let e = load(text).expect_err(text);
        assert_eq!(e.key(), Some("raft.lease_ms"), "{text}: {e}");
    }
    let e = load("[raft]\nlease_ms = 9223372036854775807\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("config: raft.lease_ms (9223372036854775807) "),
        "{e}"
    );
    // Without leases the values are not used for a bound and load as written.
    let c = load("read_mode = \"readindex\"\n[raft]\nclock_drift_ms = 9223372036854775807\n")
        .expect("readindex ignores the drift margin");
    assert_eq!(c.raft.lease_ns(), 0);
}

proptest! {
    #[test]
    fn generated_valid_configs_load_as_written(s in spec()) {
        let text = render(&s.entries(), &s.nodes, None);
        let c = load(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let default_listen = s
            .nodes
            .iter()
            .find(|n| n.id == s.node_id)
            .map_or("127.0.0.1:6379".to_owned(), |n| n.client.to_string());
        prop_assert_eq!(c.node_id, s.node_id);
        prop_assert_eq!(&c.listen, s.listen.as_ref().unwrap_or(&default_listen));
        prop_assert_eq!(c.data_dir.to_str(), Some(s.data_dir.as_str()));
        prop_assert_eq!(&c.cores, &s.cores);
        let groups = s.groups.unwrap_or(2 * s.cores.len() as u32);
        prop_assert_eq!(c.groups, groups);
        let round_robin: Vec<usize> = (0..groups as usize).map(|g| g % s.cores.len()).collect();
        prop_assert_eq!(&c.placement, s.placement.as_ref().unwrap_or(&round_robin));
        prop_assert_eq!(&c.log_level, &s.log_level);
        prop_assert_eq!(&c.raft, &s.raft);
        prop_assert_eq!(&c.limits, &s.limits);
        prop_assert_eq!(&c.transport, &s.transport);
        prop_assert_eq!(&c.nodes, &s.nodes);
        prop_assert_eq!(c.replication, s.replication);
        prop_assert_eq!(c.redirect, s.redirect);
        prop_assert_eq!(c.read_mode, s.read_mode);
        prop_assert_eq!(c.debug_commands, s.debug_commands);
        prop_assert_eq!(&c.cluster_id, &s.cluster_id);
        prop_assert_eq!(c.metrics_addr, s.metrics_addr);
        prop_assert_eq!(c.join, s.join);
        // And it satisfies everything the fuzz oracle checks of an accepted config.
        crate::fuzzing::config_parser(text.as_bytes());
    }

    #[test]
    fn one_invalid_value_names_its_key(s in spec(), which in any::<Index>(), r in any::<u64>()) {
        let all = mutations(&s, r);
        let mutation = &all[which.index(all.len())];
        let mut entries = s.entries();
        for (section, key, value) in &mutation.edits {
            set(&mut entries, section, key, value.clone());
        }
        let text = render(&entries, &s.nodes, mutation.extra_node.as_ref());
        let e = match load(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted:\n{text}"))),
            Err(e) => e,
        };
        prop_assert_eq!(e.key(), Some(mutation.key), "{}\n{}", e, text);
        let msg = e.to_string();
        let lead = format!("config: {} (", mutation.key);
        prop_assert!(msg.starts_with(&lead), "{}", msg);
        crate::fuzzing::config_parser(text.as_bytes());
    }
}
