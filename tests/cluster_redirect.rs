//! A real 3-node cluster in `redirect = "moved"` mode: plain clients get `-MOVED` for keys led
//! elsewhere, and cluster-aware clients (the `redis` crate's cluster client, `redis-cli -c`)
//! discover the topology with CLUSTER SLOTS and route every key to its group's leader.
//!
//! Every process is started by this test and killed by the `Cluster` drop guard (by pid).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{configure_log_env, leasekv_bin, IO_TIMEOUT};
use common::{key_slot, wait_until, RawConn, Resp};

const NODES: u64 = 3;

/// A group's slot range and the node leading it.
#[derive(Debug, Clone, Copy)]
struct Lead {
    first: u16,
    last: u16,
    leader: u64,
}

/// Group id -> its slots and leader.
type Leaders = BTreeMap<u32, Lead>;

/// The group owning `slot`.
fn group_of(leaders: &Leaders, slot: usize) -> (u32, Lead) {
    leaders
        .iter()
        .find(|(_, l)| (usize::from(l.first)..=usize::from(l.last)).contains(&slot))
        .map(|(g, l)| (*g, *l))
        .expect("every slot is in some group")
}
/// Startup, elections and the first leader map, on a shared 2-core machine.
const CLUSTER_READY: Duration = Duration::from_secs(90);

struct Node {
    id: u64,
    client_port: u16,
    raft_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

/// Three `leasekv serve` processes; dropping it kills exactly those pids.
struct Cluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                // SIGKILL to the pid we spawned, then reap it.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A loopback port `p` such that `p` and `p + 1` are free now; the listeners are returned so
/// nothing else in this process takes them before the caller is done choosing.
fn free_pair(held: &mut Vec<TcpListener>) -> u16 {
    for _ in 0..200 {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
        let p = first.local_addr().expect("local addr").port();
        let Some(next) = p.checked_add(1) else {
            continue;
        };
        if let Ok(second) = TcpListener::bind(("127.0.0.1", next)) {
            held.push(first);
            held.push(second);
            return p;
        }
    }
    panic!("no two consecutive free loopback ports found");
}

fn free_one(held: &mut Vec<TcpListener>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    let p = l.local_addr().expect("local addr").port();
    held.push(l);
    p
}

fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn bulk_text(r: &Resp) -> String {
    match r {
        Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Resp::Verbatim(_, t) => t.clone(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

impl Cluster {
    /// Starts the cluster (retrying with new ports if one was taken meanwhile) and waits until
    /// every node answers and every group has a leader.
    fn start() -> Cluster {
        for attempt in 0..3 {
            let mut c = Cluster::spawn();
            match c.wait_ready() {
                Ok(()) => return c,
                Err(e) if attempt < 2 && c.logs().to_lowercase().contains("in use") => {
                    eprintln!("cluster start attempt {attempt} failed ({e}); retrying");
                }
                Err(e) => panic!("cluster did not become ready: {e}"),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    fn spawn() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("leasekv-cluster-")
            .tempdir()
            .expect("temp dir");
        let mut held = Vec::new();
        let ports: Vec<(u16, u16)> = (0..NODES)
            .map(|_| (free_one(&mut held), free_pair(&mut held)))
            .collect();
        drop(held);
        let mut nodes_toml = String::new();
        for (i, (client, raft)) in ports.iter().enumerate() {
            nodes_toml.push_str(&format!(
                "\n[[nodes]]\nid = {}\nraft = \"127.0.0.1:{raft}\"\nclient = \"127.0.0.1:{client}\"\n",
                i + 1
            ));
        }
        let mut nodes = Vec::new();
        for (i, &(client_port, raft_port)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data = dir.path().join(format!("node-{id}"));
            fs::create_dir_all(&data).expect("data dir");
            let config = format!(
                "node_id = {id}\ncluster_id = \"cluster-redirect-test\"\ndata_dir = \"{}\"\n\
                 cores = [0, 1]\nreplication = 3\nredirect = \"moved\"\n{nodes_toml}",
                data.display()
            );
            let config_path = dir.path().join(format!("node-{id}.toml"));
            fs::write(&config_path, config).expect("write config");
            let log = dir.path().join(format!("node-{id}.log"));
            let mut cmd = Command::new(leasekv_bin());
            cmd.arg("serve")
                .arg("--config")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::from(File::create(&log).expect("log file")))
                .stderr(Stdio::from(
                    File::options().append(true).open(&log).expect("log file"),
                ));
            configure_log_env(&mut cmd);
            let child = cmd.spawn().expect("spawn leasekv");
            nodes.push(Node {
                id,
                client_port,
                raft_port,
                child: Some(child),
                log,
            });
        }
        Cluster { nodes, _dir: dir }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "----- node {} (client {}, raft {}) -----\n{}\n",
                    n.id,
                    n.client_port,
                    n.raft_port,
                    read_lossy(&n.log)
                )
            })
            .collect()
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.node(id).client_port)
    }

    /// Runs `args` at node `id` over a plain connection, following a few `MOVED` replies (a
    /// leader may change while the test runs).
    fn run_following_moved(&self, id: u64, args: &[&str]) -> Resp {
        let mut port = self.node(id).client_port;
        for _ in 0..5 {
            let reply = RawConn::connect(port).cmd(args);
            let Resp::Error(e) = &reply else {
                return reply;
            };
            let Some(target) = e.strip_prefix("MOVED ").and_then(|m| m.split(' ').nth(1)) else {
                return reply;
            };
            port = target
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or_else(|| panic!("bad MOVED target in {e}"));
        }
        panic!("{args:?}: more than 5 MOVED replies in a row");
    }

    fn get_following_moved(&self, id: u64, key: &str) -> Resp {
        self.run_following_moved(id, &["GET", key])
    }

    fn set_following_moved(&self, id: u64, key: &str, value: &str) -> Resp {
        self.run_following_moved(id, &["SET", key, value])
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + CLUSTER_READY;
        loop {
            for n in &mut self.nodes {
                if let Some(child) = n.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        n.child = None;
                        return Err(format!("node {} exited with {status}", n.id));
                    }
                }
            }
            if self.leaders().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no leader for every group within {CLUSTER_READY:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Each node's INFO leasekv lines `group<g>:...,slots=lo-hi,role=...`: (group -> (slot
    /// range, leader node)) when every node answers and every group has exactly one node
    /// claiming leadership; None otherwise.
    fn leaders(&self) -> Option<Leaders> {
        let mut map: BTreeMap<u32, ((u16, u16), Vec<u64>)> = BTreeMap::new();
        for n in &self.nodes {
            let info = try_info(n.client_port)?;
            for line in info.lines() {
                let Some((name, fields)) = line.split_once(':') else {
                    continue;
                };
                let Some(g) = name.strip_prefix("group").and_then(|g| g.parse().ok()) else {
                    continue;
                };
                let field = |k: &str| {
                    fields
                        .split(',')
                        .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                };
                let (lo, hi) = field("slots")?.split_once('-')?;
                let range = (lo.parse().ok()?, hi.parse().ok()?);
                let entry = map.entry(g).or_insert((range, Vec::new()));
                if field("role") == Some("leader") {
                    entry.1.push(n.id);
                }
            }
        }
        if map.is_empty() || map.values().any(|(_, l)| l.len() != 1) {
            return None;
        }
        let lead = |((first, last), l): ((u16, u16), Vec<u64>)| Lead {
            first,
            last,
            leader: l[0],
        };
        Some(map.into_iter().map(|(g, v)| (g, lead(v))).collect())
    }
}

/// INFO leasekv from `port`, or None when the node does not answer (yet).
fn try_info(port: u16) -> Option<String> {
    use std::io::Write;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"*2\r\n$4\r\nINFO\r\n$7\r\nleasekv\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some((Resp::Bulk(b), _))) = common::resp::parse(&buf) {
            return String::from_utf8(b).ok();
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A key whose slot lies in `[lo, hi]`.
fn key_in(lo: u16, hi: u16, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}:{i}"))
        .find(|k| (usize::from(lo)..=usize::from(hi)).contains(&key_slot(k.as_bytes())))
        .expect("every range holds some key")
}

/// Master address (`ip:port`) per slot range in a CLUSTER SLOTS reply.
fn slot_masters(reply: &Resp) -> Vec<((i64, i64), String)> {
    let Resp::Array(entries) = reply else {
        panic!("CLUSTER SLOTS: not an array: {reply:?}")
    };
    entries
        .iter()
        .map(|e| match e {
            Resp::Array(v) => match (&v[0], &v[1], &v[2]) {
                (Resp::Int(a), Resp::Int(z), Resp::Array(m)) => {
                    let port = match &m[1] {
                        Resp::Int(p) => *p,
                        other => panic!("port {other:?}"),
                    };
                    ((*a, *z), format!("{}:{port}", bulk_text(&m[0])))
                }
                other => panic!("CLUSTER SLOTS entry {other:?}"),
            },
            other => panic!("CLUSTER SLOTS entry {other:?}"),
        })
        .collect()
}

/// Runs `redis-cli` with `args`, bounded; returns trimmed stdout.
fn redis_cli(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("out");
    let mut child = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(File::create(&out_path).expect("out file")))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-cli");
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return read_lossy(&out_path).trim().to_string();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-cli {args:?} did not finish within {IO_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

#[test]
fn cluster_clients_follow_the_leaders() {
    let cluster = Cluster::start();
    let leaders = cluster.leaders().expect("leaders known after start");
    let groups = leaders.len();
    assert!(groups >= 2, "expected several groups, got {leaders:?}");

    // The topology every node reports: one MYID each, every node in every NODES listing,
    // and the same slot -> master map from every node once the leader map has settled.
    let mut ids = HashSet::new();
    for n in &cluster.nodes {
        let mut c = RawConn::connect(n.client_port);
        let myid = bulk_text(&c.cmd(&["CLUSTER", "MYID"]));
        assert_eq!(myid.len(), 40, "{myid}");
        let nodes = bulk_text(&c.cmd(&["CLUSTER", "NODES"]));
        let mine = nodes
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap_or_else(|| panic!("no myself line in {nodes}"));
        assert!(
            mine.starts_with(&format!(
                "{myid} {}@{} myself,master - ",
                cluster.addr(n.id),
                n.raft_port
            )),
            "{mine}"
        );
        assert_eq!(nodes.lines().count(), NODES as usize, "{nodes}");
        ids.insert(myid);
        let info = bulk_text(&c.cmd(&["CLUSTER", "INFO"]));
        assert!(
            info.contains(&format!("cluster_size:{groups}\r\n")),
            "{info}"
        );
        assert!(info.contains("cluster_known_nodes:3\r\n"), "{info}");
        let Resp::Array(shards) = c.cmd(&["CLUSTER", "SHARDS"]) else {
            panic!("CLUSTER SHARDS is not an array")
        };
        assert_eq!(shards.len(), groups);
    }
    assert_eq!(ids.len(), NODES as usize, "node ids must differ");
    wait_until(
        Duration::from_secs(20),
        "every node to report the same slot masters",
        || {
            let expected: Vec<((i64, i64), String)> = leaders
                .values()
                .map(|l| {
                    (
                        (i64::from(l.first), i64::from(l.last)),
                        cluster.addr(l.leader),
                    )
                })
                .collect();
            cluster
                .nodes
                .iter()
                .all(|n| {
                    let mut c = RawConn::connect(n.client_port);
                    slot_masters(&c.cmd(&["CLUSTER", "SLOTS"])) == expected
                        && bulk_text(&c.cmd(&["CLUSTER", "INFO"]))
                            .starts_with("cluster_state:ok\r\n")
                })
                .then_some(())
        },
    );

    // (a) A plain client asking a node for a key of a group led elsewhere gets MOVED to the
    // master CLUSTER SLOTS names for that slot.
    let (
        &group,
        &Lead {
            first,
            last,
            leader,
        },
    ) = leaders
        .iter()
        .find(|(_, l)| l.leader != 1)
        .or_else(|| leaders.iter().next())
        .expect("some group");
    let asked = if leader == 1 { 2 } else { 1 };
    let key = key_in(first, last, &format!("moved{group}"));
    let slot = key_slot(key.as_bytes());
    let mut plain = RawConn::connect(cluster.node(asked).client_port);
    let expected_moved = format!("MOVED {slot} {}", cluster.addr(leader));
    wait_until(Duration::from_secs(10), "MOVED to the group leader", || {
        let masters = slot_masters(&plain.cmd(&["CLUSTER", "SLOTS"]));
        let named = masters
            .iter()
            .find(|((a, z), _)| (*a..=*z).contains(&(slot as i64)))
            .map(|(_, m)| m.clone());
        let moved = Resp::Error(expected_moved.clone());
        let get = plain.cmd(&["GET", &key]);
        let set = plain.cmd(&["SET", &key, "v"]);
        (get == moved && set == moved && named == Some(cluster.addr(leader))).then_some(())
    });
    assert_eq!(
        cluster.set_following_moved(asked, &key, "direct"),
        Resp::simple("OK")
    );
    assert_eq!(
        cluster.get_following_moved(leader, &key),
        Resp::bulk("direct")
    );

    // (b) The redis crate's cluster client, given one node, routes 200 keys over every group.
    let client = redis::cluster::ClusterClientBuilder::new(vec![format!(
        "redis://{}/",
        cluster.addr(asked)
    )])
    .connection_timeout(IO_TIMEOUT)
    .build()
    .expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    con.set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    con.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    let keys: Vec<String> = (0..200).map(|i| format!("spread:{i}")).collect();
    let covered: HashSet<u32> = keys
        .iter()
        .map(|k| group_of(&leaders, key_slot(k.as_bytes())).0)
        .collect();
    assert_eq!(covered.len(), groups, "the keys must reach every group");
    for (i, k) in keys.iter().enumerate() {
        redis::cmd("SET")
            .arg(k)
            .arg(format!("value-{i}"))
            .exec(&mut con)
            .unwrap_or_else(|e| panic!("cluster SET {k}: {e}"));
    }
    for (i, k) in keys.iter().enumerate() {
        let v: Option<String> = redis::cmd("GET")
            .arg(k)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("cluster GET {k}: {e}"));
        assert_eq!(v.as_deref(), Some(format!("value-{i}").as_str()), "{k}");
    }
    // The values really live in the cluster: some read at their group's leader directly.
    for (i, k) in keys.iter().enumerate().step_by(17) {
        let (_, lead) = group_of(&leaders, key_slot(k.as_bytes()));
        assert_eq!(
            cluster.get_following_moved(lead.leader, k),
            Resp::bulk(&format!("value-{i}")),
            "{k}"
        );
    }

    // (c) redis-cli -c follows MOVED from the node that does not lead the key's group.
    if on_path("redis-cli") {
        let port = cluster.node(asked).client_port.to_string();
        let base = ["-c", "-h", "127.0.0.1", "-p", &port];
        let run = |extra: &[&str]| redis_cli(&[&base[..], extra].concat());
        assert_eq!(run(&["SET", &key, "via-cli"]), "OK");
        assert_eq!(run(&["GET", &key]), "via-cli");
        assert_eq!(
            cluster.get_following_moved(leader, &key),
            Resp::bulk("via-cli")
        );
    } else {
        eprintln!("redis-cli not on PATH: skipping the redis-cli -c check");
    }
}

#[test]
fn a_single_node_is_a_one_node_cluster() {
    let server = common::Server::start_default();
    let addr = format!("127.0.0.1:{}", server.port());
    let mut c = RawConn::connect(server.port());
    let myid = bulk_text(&c.cmd(&["CLUSTER", "MYID"]));
    assert_eq!(myid.len(), 40, "{myid}");
    wait_until(
        Duration::from_secs(20),
        "every group to have a leader",
        || {
            bulk_text(&c.cmd(&["CLUSTER", "INFO"]))
                .starts_with("cluster_state:ok\r\n")
                .then_some(())
        },
    );
    // One master owning every slot, at the listen address.
    let nodes = bulk_text(&c.cmd(&["CLUSTER", "NODES"]));
    let line = nodes
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{nodes:?}"));
    assert!(!line.contains('\n'), "{nodes:?}");
    assert!(
        line.starts_with(&format!("{myid} {addr}@0 myself,master - 0 0 ")),
        "{line}"
    );
    assert!(line.ends_with(" connected 0-16383"), "{line}");
    let masters = slot_masters(&c.cmd(&["CLUSTER", "SLOTS"]));
    assert_eq!(masters.first().map(|m| m.0 .0), Some(0));
    assert_eq!(masters.last().map(|m| m.0 .1), Some(16383));
    assert!(
        masters.windows(2).all(|w| w[0].0 .1 + 1 == w[1].0 .0),
        "{masters:?}"
    );
    assert!(masters.iter().all(|(_, m)| *m == addr), "{masters:?}");

    // RESP3: CLUSTER SHARDS is an array of maps; SLOTS entries end with an empty map.
    assert!(matches!(c.cmd(&["HELLO", "3"]), Resp::Map(_)));
    let Resp::Array(shards) = c.cmd(&["CLUSTER", "SHARDS"]) else {
        panic!("CLUSTER SHARDS is not an array")
    };
    assert_eq!(shards.len(), masters.len());
    let Some(Resp::Array(nodes)) = shards[0].field("nodes") else {
        panic!("{:?}", shards[0])
    };
    assert_eq!(nodes[0].field("id"), Some(&Resp::bulk(&myid)));
    assert_eq!(nodes[0].field("role"), Some(&Resp::bulk("master")));
    assert_eq!(
        nodes[0].field("port"),
        Some(&Resp::Int(i64::from(server.port())))
    );
    let Resp::Array(slots) = c.cmd(&["CLUSTER", "SLOTS"]) else {
        panic!("CLUSTER SLOTS is not an array")
    };
    assert!(
        matches!(&slots[0], Resp::Array(e) if matches!(&e[2], Resp::Array(n) if n[3] == Resp::Map(vec![]))),
        "{slots:?}"
    );

    // The redis crate's cluster client works against it.
    let client = redis::cluster::ClusterClientBuilder::new(vec![format!("redis://{addr}/")])
        .connection_timeout(IO_TIMEOUT)
        .build()
        .expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    con.set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    for i in 0..20 {
        let k = format!("single:{i}");
        redis::cmd("SET")
            .arg(&k)
            .arg(i)
            .exec(&mut con)
            .unwrap_or_else(|e| panic!("SET {k}: {e}"));
        let v: i64 = redis::cmd("GET")
            .arg(&k)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("GET {k}: {e}"));
        assert_eq!(v, i);
    }
}
