//! Multi-node clusters of real `leasekv serve` processes on loopback, one per test.
//!
//! Each [`TestCluster`] owns a private temp dir (`node-<id>/` per node: `leasekv.toml`,
//! `data/`, and `run-<k>.stderr|stdout` per process started), its own ports, and the child
//! processes it spawned; its `Drop` guard kills exactly those pids and prints every node's
//! logs when the test failed. Nodes are addressed by their node id (1-based, as in the
//! configs, the INFO output and the logs).
//!
//! Ports: a node needs a client port and one Raft port per core (`raft + core`). They are
//! taken from below the kernel's ephemeral range (see [`PORT_RANGE`]), so no outgoing
//! connection of another process can grab a node's port while the node is down for a
//! restart, and they are reserved for the life of the test process.
//!
//! [`RetryClient`] is the client a user of a cluster writes: it retries retryable errors
//! (`CLUSTERDOWN`, `TRYAGAIN`, dropped connections) until a deadline and tells whether an
//! attempt's outcome was unknown.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::err_text;
use super::server::{configure_log_env, leasekv_bin, run_leasekv_to_exit, IO_TIMEOUT};

/// How long a node may take to log `ready` (includes WAL replay after a crash).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the live nodes may take to agree on a leader for every group.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a node may take to catch up with the leaders.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports handed to cluster nodes: below the usual ephemeral range (32768-60999).
pub const PORT_RANGE: std::ops::Range<u16> = 20_000..32_700;

/// How to configure every node of a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Cores per node, pinned to CPUs `0..cores`.
    pub cores: usize,
    pub tick_ms: u64,
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    /// WAL bytes after which a core compacts its groups into snapshots.
    pub snapshot_log_bytes: u64,
    pub cluster_id: String,
    /// Further top-level TOML lines for every node (before the tables), e.g.
    /// `redirect = "moved"`.
    pub extra_toml: String,
    /// Further lines inside the `[raft]` table, e.g. `balance_leaders = false`.
    pub raft_extra: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            cores: 2,
            tick_ms: 10,
            election_ticks: 20,
            heartbeat_ticks: 2,
            snapshot_log_bytes: 64 * 1024 * 1024,
            cluster_id: "t".to_string(),
            extra_toml: String::new(),
            raft_extra: String::new(),
        }
    }
}

impl ClusterOptions {
    /// The (unrandomized) election timeout.
    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.tick_ms * self.election_ticks)
    }
}

/// One `groupN:` line of `INFO leasekv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub group: u32,
    pub core: usize,
    pub slots: (u16, u16),
    pub leader: bool,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub keys: u64,
}

/// Parses the `group<g>:core=..,slots=a-b,role=..,term=..,commit=..,applied=..,keys=..`
/// lines of an INFO reply, in group order. Other lines are ignored.
pub fn parse_info_groups(info: &str) -> Result<Vec<GroupInfo>, String> {
    let mut out = Vec::new();
    for line in info.lines().map(str::trim) {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        let Some(Ok(group)) = name.strip_prefix("group").map(str::parse::<u32>) else {
            continue;
        };
        let mut g = GroupInfo {
            group,
            core: usize::MAX,
            slots: (0, 0),
            leader: false,
            term: 0,
            commit: 0,
            applied: 0,
            keys: 0,
        };
        let mut seen = 0;
        for field in fields.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("bad field {field:?} in {line:?}"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| format!("bad number {v:?} in {line:?}: {e}"))
            };
            match k {
                "core" => g.core = num(v)? as usize,
                "slots" => {
                    let (lo, hi) = v
                        .split_once('-')
                        .ok_or_else(|| format!("bad slots {v:?} in {line:?}"))?;
                    g.slots = (num(lo)? as u16, num(hi)? as u16);
                }
                "role" => {
                    g.leader = match v {
                        "leader" => true,
                        "follower" => false,
                        other => return Err(format!("bad role {other:?} in {line:?}")),
                    }
                }
                "term" => g.term = num(v)?,
                "commit" => g.commit = num(v)?,
                "applied" => g.applied = num(v)?,
                "keys" => g.keys = num(v)?,
                _ => continue,
            }
            seen += 1;
        }
        if seen != 7 {
            return Err(format!("missing fields in {line:?}"));
        }
        if g.group as usize != out.len() {
            return Err(format!("group lines out of order at {line:?}"));
        }
        out.push(g);
    }
    if out.is_empty() {
        return Err("no group lines in INFO".to_string());
    }
    Ok(out)
}

/// The value of `field:` in an INFO reply.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::to_string)
}

// ------------------------------------------------------------------------------------ ports

static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Reserves (for the life of this test process) a base port `b` such that `b + o` is free
/// for every offset `o`, and returns `b`.
pub fn reserve_ports(offsets: &[u16]) -> u16 {
    let span = offsets.iter().copied().max().unwrap_or(0);
    let width = PORT_RANGE.end - PORT_RANGE.start - span;
    // Random start so parallel test processes rarely probe the same ports first.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    let mut reserved = RESERVED.lock().unwrap_or_else(|p| p.into_inner());
    for i in 0..u32::from(width) {
        let base = PORT_RANGE.start + ((seed.wrapping_add(i * 7919)) % u32::from(width)) as u16;
        let ports: Vec<u16> = offsets.iter().map(|o| base + o).collect();
        if ports.iter().any(|p| reserved.contains(p)) || !ports.iter().all(|&p| port_is_free(p)) {
            continue;
        }
        reserved.extend(ports);
        return base;
    }
    panic!("no free ports for offsets {offsets:?} in {PORT_RANGE:?}");
}

// ------------------------------------------------------------------------------------ nodes

struct Node {
    id: u64,
    client_port: u16,
    /// Core c listens on `raft_port + c`.
    raft_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Stopped with SIGSTOP by the test (still running, but answers nothing).
    paused: bool,
    /// Processes started so far; run k logs to `run-<k>.stderr|stdout`.
    runs: usize,
}

impl Node {
    fn log_path(&self, run: usize, stream: &str) -> PathBuf {
        self.dir.join(format!("run-{run}.{stream}"))
    }

    fn current_stderr(&self) -> String {
        read_lossy(&self.log_path(self.runs.saturating_sub(1), "stderr"))
    }

    fn all_logs(&self) -> String {
        let mut out = String::new();
        for run in 0..self.runs {
            for stream in ["stderr", "stdout"] {
                let text = read_lossy(&self.log_path(run, stream));
                if !text.is_empty() {
                    out.push_str(&format!(
                        "----- node {} run {run} {stream} -----\n{text}\n",
                        self.id
                    ));
                }
            }
        }
        out
    }

    /// Reaps the process if it has exited; returns its status then.
    fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            Ok(None) => None,
            Err(e) => panic!("try_wait on node {}: {e}", self.id),
        }
    }

    fn kill9(&mut self) {
        self.paused = false;
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL to exactly this pid.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A cluster of `leasekv serve` processes owned by one test.
pub struct TestCluster {
    opts: ClusterOptions,
    root: TempDir,
    nodes: Vec<Node>,
    /// Scratch configs for [`TestCluster::run_to_exit`].
    scratch: usize,
}

impl TestCluster {
    /// Starts `n` nodes (ids 1..=n) and waits until every one has logged `ready`. Does not
    /// wait for leaders: see [`TestCluster::wait_for_leaders`].
    pub fn start(n: usize, opts: ClusterOptions) -> TestCluster {
        let mut c = TestCluster::configure(n, opts);
        // A port found free can be taken by another process before a node binds it: start
        // again on fresh ports when a node reports "in use".
        for attempt in 0..4 {
            if attempt > 0 {
                c.assign_ports(n);
            }
            for id in c.ids() {
                c.spawn(id);
            }
            let mut failure = None;
            for id in c.ids() {
                if let Err(e) = c.wait_ready(id) {
                    failure = Some((id, e));
                    break;
                }
            }
            let Some((id, msg)) = failure else {
                return c;
            };
            let in_use = c
                .node(id)
                .current_stderr()
                .to_lowercase()
                .contains("in use");
            for node in &mut c.nodes {
                node.kill9();
            }
            if !(in_use && attempt < 3) {
                // The Drop guard prints the logs.
                panic!("node {id} did not become ready: {msg}");
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Lays out `n` nodes (ports, data dirs, configs) without starting any: start them one
    /// by one with [`TestCluster::start_node`].
    pub fn configure(n: usize, opts: ClusterOptions) -> TestCluster {
        assert!(n >= 1 && opts.cores >= 1);
        let root = tempfile::Builder::new()
            .prefix("leasekv-ctest-")
            .tempdir()
            .expect("create temp dir");
        let mut c = TestCluster {
            opts,
            root,
            nodes: Vec::new(),
            scratch: 0,
        };
        c.assign_ports(n);
        c
    }

    fn assign_ports(&mut self, n: usize) {
        let cores = self.opts.cores as u16;
        let offsets: Vec<u16> = (0..=cores).collect();
        let old_runs: Vec<usize> = self.nodes.iter().map(|n| n.runs).collect();
        self.nodes = (1..=n as u64)
            .map(|id| {
                let base = reserve_ports(&offsets);
                let dir = self.root.path().join(format!("node-{id}"));
                fs::create_dir_all(dir.join("data")).expect("create node dir");
                Node {
                    id,
                    client_port: base,
                    raft_port: base + 1,
                    dir,
                    child: None,
                    paused: false,
                    runs: old_runs.get(id as usize - 1).copied().unwrap_or(0),
                }
            })
            .collect();
        for id in self.ids() {
            let text = self.config_text(id);
            fs::write(self.config_path(id), text).expect("write config");
        }
    }

    /// Node ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn client_port(&self, id: u64) -> u16 {
        self.node(id).client_port
    }

    /// First Raft port of node `id` (core c listens on this + c).
    pub fn raft_port(&self, id: u64) -> u16 {
        self.node(id).raft_port
    }

    /// Client ports of `ids`, in that order.
    pub fn ports_of(&self, ids: &[u64]) -> Vec<u16> {
        ids.iter().map(|&id| self.client_port(id)).collect()
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.node(id).dir.join("data")
    }

    pub fn config_path(&self, id: u64) -> PathBuf {
        self.node(id).dir.join("leasekv.toml")
    }

    /// Rewrites node `id`'s config to list only `members` as [[nodes]] (and `join = true`
    /// when it should join an existing cluster instead of bootstrapping one).
    pub fn write_config(&self, id: u64, members: &[u64], join: bool) {
        let full = self.config_text(id);
        let (head, _) = full
            .split_once("\n[[nodes]]")
            .expect("config has [[nodes]]");
        let mut s = head.replace(
            &format!("replication = {}\n", self.nodes.len()),
            &format!("replication = {}\n", members.len()),
        );
        if join {
            s = s.replacen("replication", "join = true\nreplication", 1);
        }
        for n in self.nodes.iter().filter(|n| members.contains(&n.id)) {
            s.push_str(&format!(
                "\n[[nodes]]\nid = {}\nraft = \"127.0.0.1:{}\"\nclient = \"127.0.0.1:{}\"\n",
                n.id, n.raft_port, n.client_port
            ));
        }
        fs::write(self.config_path(id), s).expect("write config");
    }

    /// The configuration node `id` runs with.
    pub fn config_text(&self, id: u64) -> String {
        self.render_config(id, &self.data_dir(id), &self.opts.cluster_id)
    }

    /// A configuration for node `id` of this cluster with another data dir and cluster id.
    pub fn render_config(&self, id: u64, data_dir: &Path, cluster_id: &str) -> String {
        let o = &self.opts;
        let cores: Vec<String> = (0..o.cores).map(|c| c.to_string()).collect();
        let mut s = format!(
            "node_id = {id}\ncluster_id = \"{cluster_id}\"\ndata_dir = \"{}\"\ncores = [{}]\nreplication = {}\n{}\n",
            data_dir.display(),
            cores.join(", "),
            self.nodes.len(),
            o.extra_toml,
        );
        s.push_str(&format!(
            "[raft]\ntick_ms = {}\nelection_ticks = {}\nheartbeat_ticks = {}\nsnapshot_log_bytes = {}\n{}\n",
            o.tick_ms, o.election_ticks, o.heartbeat_ticks, o.snapshot_log_bytes, o.raft_extra
        ));
        for n in &self.nodes {
            s.push_str(&format!(
                "\n[[nodes]]\nid = {}\nraft = \"127.0.0.1:{}\"\nclient = \"127.0.0.1:{}\"\n",
                n.id, n.raft_port, n.client_port
            ));
        }
        s
    }

    /// Snapshot files that carry state-machine data. Every group also has a tiny one from
    /// bootstrap (its initial configuration at the virtual index), which this skips.
    pub fn snapshot_files(&self, id: u64) -> Vec<PathBuf> {
        const BOOTSTRAP_MAX: u64 = 512;
        self.all_snapshot_files(id)
            .into_iter()
            .filter(|p| fs::metadata(p).is_ok_and(|m| m.len() > BOOTSTRAP_MAX))
            .collect()
    }

    /// Every `group-*.snap` file under node `id`'s data dir (any core).
    pub fn all_snapshot_files(&self, id: u64) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(cores) = fs::read_dir(self.data_dir(id)) else {
            return out;
        };
        for core in cores.flatten().filter(|e| e.path().is_dir()) {
            for f in fs::read_dir(core.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with("group-") && name.ends_with(".snap") {
                    out.push(f.path());
                }
            }
        }
        out.sort();
        out
    }

    // ------------------------------------------------------------------------ processes

    fn spawn(&mut self, id: u64) {
        let config = self.config_path(id);
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is already running");
        let run = node.runs;
        node.runs += 1;
        let stderr = File::create(node.log_path(run, "stderr")).expect("create stderr log");
        let stdout = File::create(node.log_path(run, "stdout")).expect("create stdout log");
        let mut cmd = Command::new(leasekv_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        configure_log_env(&mut cmd);
        node.child = Some(cmd.spawn().expect("spawn leasekv"));
    }

    /// Waits until node `id` answers PING and has logged `ready`.
    fn wait_ready(&mut self, id: u64) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = self.client_port(id);
        loop {
            let node = self.node_mut(id);
            if let Some(status) = node.try_wait() {
                return Err(format!("exited during start-up with {status}"));
            }
            if logged_ready(&node.current_stderr()) && ping(port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready within {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `id` again on its data dir and ports, and waits until it is ready.
    pub fn restart(&mut self, id: u64) {
        self.start_node(id);
    }

    /// Starts node `id` (first start or restart: same data dir and ports) and waits until
    /// it is ready.
    pub fn start_node(&mut self, id: u64) {
        self.spawn(id);
        if let Err(e) = self.wait_ready(id) {
            self.node_mut(id).kill9();
            panic!("node {id} did not become ready: {e}");
        }
    }

    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }

    /// Pids of the running nodes, by node id.
    pub fn pids(&self) -> Vec<(u64, u32)> {
        self.nodes
            .iter()
            .filter_map(|n| Some((n.id, n.child.as_ref()?.id())))
            .collect()
    }

    /// True while node `id`'s process is running.
    pub fn is_running(&mut self, id: u64) -> bool {
        let node = self.node_mut(id);
        node.try_wait();
        node.child.is_some()
    }

    /// Ids of the nodes this test has running and not paused. Panics if one of them died on
    /// its own: a node only stops when the test stops it.
    pub fn live(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            let expected = node.child.is_some();
            if let Some(status) = node.try_wait() {
                panic!("node {} exited unexpectedly with {status}", node.id);
            }
            if expected && !node.paused {
                out.push(node.id);
            }
        }
        out
    }

    /// Freezes node `id` with SIGSTOP: it keeps its sockets but answers nothing, like a
    /// node stuck in a long GC pause or a VM migration. It no longer counts as live.
    pub fn pause(&mut self, id: u64) {
        assert!(!self.node(id).paused, "node {id} is already paused");
        self.signal(id, libc::SIGSTOP);
        self.node_mut(id).paused = true;
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume(&mut self, id: u64) {
        assert!(self.node(id).paused, "node {id} is not paused");
        self.signal(id, libc::SIGCONT);
        self.node_mut(id).paused = false;
    }

    fn signal(&mut self, id: u64, sig: libc::c_int) {
        assert!(
            self.is_running(id),
            "signal {sig}: node {id} is not running"
        );
        let pid = self.pid(id).expect("running node has a pid");
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet, so the
        // pid cannot have been recycled for another process.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill9(&mut self, id: u64) {
        assert!(self.is_running(id), "kill9: node {id} is not running");
        self.node_mut(id).kill9();
    }

    /// Sends `sig` to node `id` and waits (bounded) for it to exit; returns its status.
    pub fn stop_with(&mut self, id: u64, sig: libc::c_int) -> ExitStatus {
        assert!(!self.node(id).paused, "stop_with: node {id} is paused");
        self.signal(id, sig);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.node_mut(id).try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                self.node_mut(id).kill9();
                panic!("node {id} did not exit within {STOP_TIMEOUT:?} after signal {sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful shutdown with SIGTERM; asserts exit code 0.
    pub fn terminate(&mut self, id: u64) {
        let status = self.stop_with(id, libc::SIGTERM);
        assert_eq!(
            status.code(),
            Some(0),
            "SIGTERM must stop node {id} with exit code 0, got {status}"
        );
    }

    /// Runs `leasekv serve --config <toml>` (not one of the cluster's nodes) until it exits
    /// on its own; returns its exit status and stderr. For start-up refusals.
    pub fn run_to_exit(&mut self, toml: &str) -> (ExitStatus, String) {
        self.scratch += 1;
        let path = self
            .root
            .path()
            .join(format!("scratch-{}.toml", self.scratch));
        fs::write(&path, toml).expect("write scratch config");
        let path = path.to_string_lossy().into_owned();
        run_leasekv_to_exit(&["serve", "--config", &path], Duration::from_secs(30))
    }

    /// Every log of every node, labelled.
    pub fn all_logs(&self) -> String {
        self.nodes.iter().map(Node::all_logs).collect()
    }

    // ------------------------------------------------------------------------ clients

    /// A `redis` crate connection to node `id` with bounded I/O.
    pub fn client(&self, id: u64) -> redis::Connection {
        connect(self.client_port(id))
            .unwrap_or_else(|e| panic!("connect to node {id}: {}", err_text(&e)))
    }

    /// `INFO leasekv` of node `id`, or None if it cannot be had right now.
    pub fn try_info(&self, id: u64, section: &str) -> Option<String> {
        let mut con = connect(self.client_port(id)).ok()?;
        redis::cmd("INFO").arg(section).query(&mut con).ok()
    }

    /// `INFO <section>` of node `id`.
    pub fn info(&self, id: u64, section: &str) -> String {
        self.try_info(id, section)
            .unwrap_or_else(|| panic!("INFO {section} on node {id} failed"))
    }

    /// The parsed group lines of node `id`'s `INFO leasekv`.
    pub fn info_groups(&self, id: u64) -> Vec<GroupInfo> {
        let info = self.info(id, "leasekv");
        parse_info_groups(&info).unwrap_or_else(|e| panic!("node {id}: {e}\n{info}"))
    }

    fn try_info_groups(&self, id: u64) -> Option<Vec<GroupInfo>> {
        parse_info_groups(&self.try_info(id, "leasekv")?).ok()
    }

    /// The group lines of every live node, or None while some node does not answer.
    fn live_infos(&mut self) -> Option<Vec<(u64, Vec<GroupInfo>)>> {
        let live = self.live();
        live.into_iter()
            .map(|id| Some((id, self.try_info_groups(id)?)))
            .collect()
    }

    /// Waits until every group has exactly one leader among the live nodes and every live
    /// node reports that leader's term for the group (so all of them have heard of it).
    /// Returns the leader's node id per group.
    pub fn wait_for_leaders(&mut self) -> Vec<u64> {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let last = match self.live_infos() {
                Some(infos) => match agreed_leaders(&infos) {
                    Ok(leaders) => return leaders,
                    Err(e) => e,
                },
                None => "a live node did not answer INFO".to_string(),
            };
            if Instant::now() >= deadline {
                panic!("no agreed leader for every group within {LEADER_TIMEOUT:?}: {last}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The node leading group `g` (waiting for leaders if needed).
    pub fn leader_of_group(&mut self, g: u32) -> u64 {
        let leaders = self.wait_for_leaders();
        *leaders
            .get(g as usize)
            .unwrap_or_else(|| panic!("no group {g}"))
    }

    /// Waits until node `id` has applied, in every group, everything the group's leader had
    /// committed when this was called.
    pub fn wait_caught_up(&mut self, id: u64) {
        let leaders = self.wait_for_leaders();
        let targets: Vec<u64> = leaders
            .iter()
            .enumerate()
            .map(|(g, &l)| self.info_groups(l)[g].commit)
            .collect();
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            self.live();
            let got = self.try_info_groups(id);
            if let Some(groups) = &got {
                if groups.len() == targets.len()
                    && groups.iter().zip(&targets).all(|(g, &t)| g.applied >= t)
                {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "node {id} did not catch up within {CATCH_UP_TIMEOUT:?}: leaders' commit {targets:?}, node has {got:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until all live nodes report the same commit and applied index and key count in
    /// every group, with applied == commit (an idle cluster has converged). Returns the
    /// agreed group lines of the first live node.
    pub fn wait_converged(&mut self) -> Vec<GroupInfo> {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let mut last = String::new();
        loop {
            if let Some(infos) = self.live_infos() {
                let first = &infos[0].1;
                let same = infos.iter().all(|(_, gs)| {
                    gs.len() == first.len()
                        && gs.iter().zip(first).all(|(a, b)| {
                            (a.commit, a.applied, a.keys) == (b.commit, b.applied, b.keys)
                                && a.applied == a.commit
                        })
                });
                if same {
                    return first.clone();
                }
                last = format!("{infos:?}");
            }
            if Instant::now() >= deadline {
                panic!("live nodes did not converge within {CATCH_UP_TIMEOUT:?}: {last}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The leader per group when exactly one node leads each group and all agree on its term.
fn agreed_leaders(infos: &[(u64, Vec<GroupInfo>)]) -> Result<Vec<u64>, String> {
    let groups = infos[0].1.len();
    if infos.iter().any(|(_, gs)| gs.len() != groups) {
        return Err("nodes report different numbers of groups".to_string());
    }
    (0..groups)
        .map(|g| {
            let leaders: Vec<u64> = infos
                .iter()
                .filter(|(_, gs)| gs[g].leader)
                .map(|(id, _)| *id)
                .collect();
            let [leader] = leaders[..] else {
                return Err(format!("group {g} has leaders {leaders:?}"));
            };
            let terms: BTreeSet<u64> = infos.iter().map(|(_, gs)| gs[g].term).collect();
            if terms.len() != 1 {
                return Err(format!("group {g}: nodes report terms {terms:?}"));
            }
            Ok(leader)
        })
        .collect()
}

impl Drop for TestCluster {
    /// Kills every node this cluster started; prints all logs if the test failed, and fails
    /// a passing test if any node panicked.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill9();
        }
        let logs = self.all_logs();
        if std::thread::panicking() {
            if std::env::var_os("LEASEKV_TEST_KEEP_DIRS").is_some() {
                self.root.disable_cleanup(true);
                eprintln!("kept test dir {}", self.root.path().display());
            }
            eprintln!(
                "===== logs of cluster ({}) =====\n{logs}",
                self.root.path().display()
            );
        } else if logs.contains("panicked at") {
            panic!("a node panicked during the test\n{logs}");
        }
    }
}

// ------------------------------------------------------------------------------------ clients

/// A connection to `127.0.0.1:port` with bounded I/O.
pub fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let con = client.get_connection_with_timeout(Duration::from_secs(2))?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(con)
}

/// What a failed attempt says about the command's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Retryable, and the command was certainly not applied.
    NotApplied,
    /// Retryable, but the command may have been applied (or may still be).
    Unknown,
    /// Not retryable (a real error reply).
    Fatal,
}

/// Classifies an error the way a careful client must: connection failures and TRYAGAIN
/// errors that do not promise "not applied" leave a write's outcome unknown.
pub fn classify(e: &redis::RedisError) -> Failure {
    match e.code() {
        Some("CLUSTERDOWN") => Failure::NotApplied,
        Some("TRYAGAIN") => {
            let text = err_text(e);
            let certain = [
                "not applied",
                "is not led by this node",
                "too many requests",
            ];
            if certain.iter().any(|c| text.contains(c)) {
                Failure::NotApplied
            } else {
                Failure::Unknown
            }
        }
        Some(_) => Failure::Fatal,
        // I/O (refused, reset, timeout) or a dropped connection: the request may have
        // reached the server.
        None if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal() =>
        {
            Failure::Unknown
        }
        // A reply of an unexpected type, a client-side error: retrying cannot help.
        None => Failure::Fatal,
    }
}

/// Result of [`RetryClient::query`].
#[derive(Debug)]
pub struct Attempts<T> {
    pub value: T,
    /// Some attempt before the successful one may have been applied.
    pub unknown: bool,
    /// Number of failed attempts.
    pub retries: usize,
}

/// A client that rotates over node ports and retries retryable errors until a deadline.
pub struct RetryClient {
    ports: Vec<u16>,
    next: usize,
    con: Option<redis::Connection>,
    /// Set by another thread to make retries give up at once.
    pub abort: Option<Arc<AtomicBool>>,
    /// Retry only errors that promise "not applied" (for non-idempotent commands).
    pub only_not_applied: bool,
}

impl RetryClient {
    /// Talks to `ports[0]` first, moving to the next port after a connection failure.
    pub fn new(ports: Vec<u16>) -> RetryClient {
        assert!(!ports.is_empty());
        RetryClient {
            ports,
            next: 0,
            con: None,
            abort: None,
            only_not_applied: false,
        }
    }

    fn connection(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.con.is_none() {
            let port = self.ports[self.next % self.ports.len()];
            match connect(port) {
                Ok(c) => self.con = Some(c),
                Err(e) => {
                    self.next += 1;
                    return Err(e);
                }
            }
        }
        Ok(self.con.as_mut().expect("just connected"))
    }

    /// Runs `cmd` until it succeeds, fails fatally, the deadline passes or `abort` is set.
    /// Err carries the last error and whether any attempt's outcome was unknown.
    pub fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        deadline: Instant,
    ) -> Result<Attempts<T>, (String, bool)> {
        let mut unknown = false;
        let mut retries = 0;
        loop {
            let res = self.connection().and_then(|con| cmd.query::<T>(con));
            let e = match res {
                Ok(value) => {
                    return Ok(Attempts {
                        value,
                        unknown,
                        retries,
                    })
                }
                Err(e) => e,
            };
            let failure = classify(&e);
            if e.code().is_none() {
                // The connection is unusable (or never was): reconnect, to the next node.
                if self.con.take().is_some() {
                    self.next += 1;
                }
            }
            unknown |= failure == Failure::Unknown;
            let text = if e.code().is_some() {
                err_text(&e)
            } else {
                format!("{e}")
            };
            let give_up = failure == Failure::Fatal
                || (self.only_not_applied && failure != Failure::NotApplied)
                || Instant::now() >= deadline
                || self
                    .abort
                    .as_ref()
                    .is_some_and(|a| a.load(Ordering::Relaxed));
            if give_up {
                return Err((text, unknown));
            }
            retries += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ------------------------------------------------------------------------------------ misc

pub fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// True when a log line's message is `ready` (the server's "serving" line).
fn logged_ready(log: &str) -> bool {
    log.lines()
        .any(|l| l.split_whitespace().any(|w| w == "ready"))
}

/// One connect + PING attempt with short timeouts.
pub fn ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 7 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"+PONG\r\n")
}
