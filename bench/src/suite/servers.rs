//! The servers a scenario needs, on loopback with fresh data directories: leasekv nodes
//! (one or a cluster), redis-server, and an etcd cluster. Each is a [`Proc`]; dropping a
//! server stops it.

use super::client::{self, info_leasekv, RespClient};
use super::procs::Proc;
use crate::info::{parse_leasekv, GroupInfo};
use crate::slots::{find_tag, key_slot};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

fn addr(port: u16) -> SocketAddr {
    (LOOPBACK, port).into()
}

/// Hands out blocks of free consecutive loopback ports, never the same port twice in a run
/// (a restarted server never meets its predecessor's TIME_WAIT sockets).
pub struct Ports {
    next: u16,
    end: u16,
}

impl Ports {
    pub fn new(base: u16, span: u16) -> Self {
        Ports {
            next: base,
            end: base.saturating_add(span),
        }
    }

    fn free(port: u16) -> bool {
        TcpListener::bind(addr(port)).is_ok()
    }

    /// `n` consecutive free ports; returns the first.
    pub fn block(&mut self, n: u16) -> Result<u16, String> {
        while self.next.saturating_add(n) <= self.end {
            let base = self.next;
            self.next += n;
            if (base..base + n).all(Self::free) {
                return Ok(base);
            }
        }
        Err(format!(
            "no {n} free consecutive ports left below {} (use --base-port)",
            self.end
        ))
    }
}

/// Waits until `ready()` or `limit`; `what` names it in the error.
fn wait_for(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let until = Instant::now() + limit;
    let mut last = String::new();
    loop {
        match ready() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = e,
        }
        if Instant::now() >= until {
            return Err(format!("{what} not ready within {limit:?} {last}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How to run leasekv nodes.
#[derive(Debug, Clone)]
pub struct LeasekvSpec {
    pub bin: PathBuf,
    pub nodes: usize,
    /// CPUs of every node's executors (`cores`).
    pub cores: Vec<usize>,
    pub read_mode: &'static str,
    /// `[runtime] spin_before_park_us`.
    pub spin_us: u64,
}

pub struct LeasekvNode {
    pub id: usize,
    pub client: SocketAddr,
    pub proc: Proc,
    pub alive: bool,
}

pub struct Leasekv {
    pub nodes: Vec<LeasekvNode>,
    pub spec: LeasekvSpec,
}

/// Lease and ReadIndex counters summed over groups and nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeaseCounters {
    pub lease_hits: u64,
    pub lease_misses: u64,
    pub readindex_done: u64,
    pub leader_changes: u64,
}

impl LeaseCounters {
    pub fn minus(&self, before: &LeaseCounters) -> LeaseCounters {
        LeaseCounters {
            lease_hits: self.lease_hits.saturating_sub(before.lease_hits),
            lease_misses: self.lease_misses.saturating_sub(before.lease_misses),
            readindex_done: self.readindex_done.saturating_sub(before.readindex_done),
            leader_changes: self.leader_changes.saturating_sub(before.leader_changes),
        }
    }

    /// Lease hits / (hits + misses); None without reads.
    pub fn hit_ratio(&self) -> Option<f64> {
        let n = self.lease_hits + self.lease_misses;
        (n > 0).then(|| self.lease_hits as f64 / n as f64)
    }
}

impl Leasekv {
    /// Starts the nodes and waits until every shard group has a stable leader that
    /// commits writes.
    pub fn start(spec: &LeasekvSpec, ports: &mut Ports, dir: &Path) -> Result<Leasekv, String> {
        let ncores = spec.cores.len() as u16;
        let mut layout = Vec::new();
        for id in 1..=spec.nodes {
            let client = ports.block(1)?;
            let raft = ports.block(ncores)?;
            layout.push((id, client, raft));
        }
        let cores: Vec<String> = spec.cores.iter().map(|c| c.to_string()).collect();
        let mut nodes = Vec::new();
        for &(id, client, _) in &layout {
            let ndir = dir.join(format!("leasekv-{id}"));
            std::fs::create_dir_all(&ndir).map_err(|e| format!("{}: {e}", ndir.display()))?;
            let mut cfg = format!(
                "node_id = {id}\nlisten = \"127.0.0.1:{client}\"\ndata_dir = \"{}\"\ncores = [{}]\nread_mode = \"{}\"\nlog_level = \"warn\"\n",
                ndir.join("data").display(),
                cores.join(", "),
                spec.read_mode,
            );
            if spec.nodes > 1 {
                cfg.push_str(&format!(
                    "cluster_id = \"bench\"\nreplication = {}\n",
                    spec.nodes
                ));
            }
            cfg.push_str(&format!(
                "\n[runtime]\nspin_before_park_us = {}\n",
                spec.spin_us
            ));
            if spec.nodes > 1 {
                for &(n, c, r) in &layout {
                    cfg.push_str(&format!(
                        "\n[[nodes]]\nid = {n}\nraft = \"127.0.0.1:{r}\"\nclient = \"127.0.0.1:{c}\"\n"
                    ));
                }
            }
            let cfg_path = ndir.join("leasekv.toml");
            std::fs::write(&cfg_path, cfg).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
            let mut cmd = Command::new(&spec.bin);
            cmd.arg("serve").arg("--config").arg(&cfg_path);
            let proc = Proc::spawn(&format!("leasekv node {id}"), cmd, &ndir.join("log"))?;
            nodes.push(LeasekvNode {
                id,
                client: addr(client),
                proc,
                alive: true,
            });
        }
        let mut lk = Leasekv {
            nodes,
            spec: spec.clone(),
        };
        lk.wait_ready(Duration::from_secs(60))?;
        Ok(lk)
    }

    fn check_alive(&mut self) -> Result<(), String> {
        for n in &mut self.nodes {
            if n.alive {
                if let Some(status) = n.proc.exited() {
                    n.alive = false;
                    return Err(format!(
                        "leasekv node {} exited ({status}):\n{}",
                        n.id,
                        n.proc.log_tail()
                    ));
                }
            }
        }
        Ok(())
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let until = Instant::now() + limit;
        let left = || until.saturating_duration_since(Instant::now());
        for i in 0..self.nodes.len() {
            let a = self.nodes[i].client;
            wait_for("leasekv PING", left(), || {
                self.check_alive()?;
                Ok(client::ping(a))
            })?;
        }
        // Leaders settle (elections, then balancing moves); wait for a stable map.
        let mut last: Option<(BTreeMap<u32, usize>, Instant)> = None;
        wait_for("leasekv leaders", left(), || {
            self.check_alive()?;
            let leaders = self.leaders()?;
            let groups = self.groups()?.len();
            if leaders.len() < groups {
                last = None;
                return Ok(false);
            }
            match &last {
                Some((m, since)) if *m == leaders => {
                    Ok(since.elapsed() > Duration::from_millis(1500))
                }
                _ => {
                    last = Some((leaders, Instant::now()));
                    Ok(false)
                }
            }
        })?;
        // Every group commits a write.
        let groups = self.groups()?;
        let via = self.live_addrs()[0];
        for g in &groups {
            let tag = tag_in(g).ok_or("no tag for a group")?;
            let key = format!("{{{tag}}}ready");
            wait_for(&format!("a write to group {}", g.group), left(), || {
                let mut c = RespClient::connect(via, Duration::from_secs(2))?;
                Ok(matches!(
                    c.call(&[b"SET", key.as_bytes(), b"1"])?,
                    client::Owned::Ok(_)
                ))
            })?;
        }
        Ok(())
    }

    pub fn live_addrs(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.client)
            .collect()
    }

    /// Groups as the first live node sees them.
    pub fn groups(&self) -> Result<Vec<GroupInfo>, String> {
        let a = *self.live_addrs().first().ok_or("no live node")?;
        Ok(parse_leasekv(&info_leasekv(a)?)?.1)
    }

    /// group -> index (in `nodes`) of the live node that says it leads it.
    pub fn leaders(&self) -> Result<BTreeMap<u32, usize>, String> {
        let mut m = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.alive) {
            let (_, groups) = parse_leasekv(&info_leasekv(n.client)?)?;
            for g in groups.iter().filter(|g| g.leader) {
                if m.insert(g.group, i).is_some() {
                    return Err(format!("group {} has two leaders", g.group));
                }
            }
        }
        Ok(m)
    }

    /// Lease counters summed over the live nodes.
    pub fn counters(&self) -> Result<LeaseCounters, String> {
        let mut c = LeaseCounters::default();
        for n in self.nodes.iter().filter(|n| n.alive) {
            let (_, groups) = parse_leasekv(&info_leasekv(n.client)?)?;
            for g in groups {
                c.lease_hits += g.lease_hits;
                c.lease_misses += g.lease_misses;
                c.readindex_done += g.readindex_done;
                c.leader_changes += g.leader_changes;
            }
        }
        Ok(c)
    }

    /// (node index, tag) for every node that leads at least one group: the tag's keys
    /// belong to a group that node leads (the lowest-numbered one).
    pub fn leader_tags(&self) -> Result<Vec<(usize, String)>, String> {
        let groups = self.groups()?;
        let mut by_node: BTreeMap<usize, String> = BTreeMap::new();
        for (g, node) in self.leaders()? {
            if by_node.contains_key(&node) {
                continue;
            }
            let info = groups
                .iter()
                .find(|x| x.group == g)
                .ok_or("group vanished")?;
            by_node.insert(node, tag_in(info).ok_or("no tag for a group")?);
        }
        Ok(by_node.into_iter().collect())
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].proc.kill();
        self.nodes[i].alive = false;
    }

    pub fn stop(&mut self) {
        for n in &mut self.nodes {
            n.proc.stop(Duration::from_secs(10));
            n.alive = false;
        }
    }
}

/// A hash tag whose keys fall in group `g`'s slots.
pub fn tag_in(g: &GroupInfo) -> Option<String> {
    let (lo, hi) = g.slots;
    find_tag(&format!("g{}-", g.group), |s| (lo..=hi).contains(&s))
}

/// True if `key` belongs to group `g`.
pub fn in_group(key: &str, g: &GroupInfo) -> bool {
    let s = key_slot(key.as_bytes());
    (g.slots.0..=g.slots.1).contains(&s)
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// First line of `program --version` (or `-v`).
pub fn version_of(program: &Path, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

pub struct Redis {
    pub addr: SocketAddr,
    pub proc: Proc,
}

impl Redis {
    /// redis-server without persistence (`aof = false`) or with an fsync per write
    /// (`appendonly yes`, `appendfsync always`: leasekv's durability).
    pub fn start(bin: &Path, aof: bool, ports: &mut Ports, dir: &Path) -> Result<Redis, String> {
        let port = ports.block(1)?;
        let rdir = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&rdir).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(&rdir);
        if aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let mut proc = Proc::spawn("redis-server", cmd, &rdir.join("log"))?;
        let a = addr(port);
        wait_for("redis-server", Duration::from_secs(20), || {
            if let Some(s) = proc.exited() {
                return Err(format!("redis-server exited ({s}): {}", proc.log_tail()));
            }
            Ok(client::ping(a))
        })?;
        Ok(Redis { addr: a, proc })
    }
}

pub struct Etcd {
    /// Client address of each member.
    pub clients: Vec<SocketAddr>,
    pub procs: Vec<Proc>,
}

impl Etcd {
    /// An `n`-member etcd cluster (fsync on, the default), loopback peer and client URLs.
    pub fn start(bin: &Path, n: usize, ports: &mut Ports, dir: &Path) -> Result<Etcd, String> {
        let mut members = Vec::new();
        for i in 1..=n {
            let client = ports.block(1)?;
            let peer = ports.block(1)?;
            members.push((i, client, peer));
        }
        let initial: Vec<String> = members
            .iter()
            .map(|(i, _, p)| format!("e{i}=http://127.0.0.1:{p}"))
            .collect();
        let initial = initial.join(",");
        let token = format!("leasekv-bench-{}", std::process::id());
        let mut procs = Vec::new();
        for &(i, client, peer) in &members {
            let edir = dir.join(format!("etcd-{i}"));
            std::fs::create_dir_all(&edir).map_err(|e| e.to_string())?;
            let c = format!("http://127.0.0.1:{client}");
            let p = format!("http://127.0.0.1:{peer}");
            let mut cmd = Command::new(bin);
            cmd.arg(format!("--name=e{i}"))
                .arg(format!("--data-dir={}", edir.join("data").display()))
                .arg(format!("--listen-client-urls={c}"))
                .arg(format!("--advertise-client-urls={c}"))
                .arg(format!("--listen-peer-urls={p}"))
                .arg(format!("--initial-advertise-peer-urls={p}"))
                .arg(format!("--initial-cluster={initial}"))
                .arg("--initial-cluster-state=new")
                .arg(format!("--initial-cluster-token={token}"))
                .arg("--logger=zap")
                .arg("--log-level=warn");
            procs.push(Proc::spawn(&format!("etcd e{i}"), cmd, &edir.join("log"))?);
        }
        let clients: Vec<SocketAddr> = members.iter().map(|(_, c, _)| addr(*c)).collect();
        let mut etcd = Etcd { clients, procs };
        for i in 0..n {
            let a = etcd.clients[i];
            let procs = &mut etcd.procs;
            wait_for("etcd /health", Duration::from_secs(60), || {
                for p in procs.iter_mut() {
                    if let Some(s) = p.exited() {
                        return Err(format!("{} exited ({s}): {}", p.name, p.log_tail()));
                    }
                }
                let (status, body) = client::http(a, "GET", "/health", "", Duration::from_secs(2))?;
                Ok(status == 200 && body.contains("\"true\""))
            })?;
        }
        Ok(etcd)
    }

    /// Index of the member that is the leader.
    pub fn leader(&self) -> Result<usize, String> {
        for (i, a) in self.clients.iter().enumerate() {
            let (status, body) = client::http(
                *a,
                "POST",
                "/v3/maintenance/status",
                "{}",
                Duration::from_secs(2),
            )?;
            if status != 200 {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| format!("status JSON: {e}"))?;
            let me = v["header"]["member_id"].as_str().unwrap_or("");
            if !me.is_empty() && v["leader"].as_str() == Some(me) {
                return Ok(i);
            }
        }
        Err("no etcd member says it is the leader".into())
    }

    pub fn stop(&mut self) {
        for p in &mut self.procs {
            p.stop(Duration::from_secs(10));
        }
    }
}
