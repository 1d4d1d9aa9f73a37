//! Server configuration: a TOML file (every key optional), command-line overrides, defaults,
//! and validation. Unknown keys are errors at every level, so a typo never silently falls back
//! to a default.
//!
//! ```toml
//! node_id = 1
//! listen = "127.0.0.1:6379"
//! data_dir = "./leasekv-data"
//! cores = [0, 1]          # default: every CPU in the process's affinity mask
//! groups = 4              # default: 2 per core
//! placement = [0, 1, 0, 1] # group -> index into `cores`; default round-robin
//! log_level = "info"
//! # Cluster settings; leave `nodes` out to run a single node.
//! cluster_id = "leasekv"  # a node only talks to nodes with the same id
//! replication = 3         # voters per group, 1..=7 (capped at the number of nodes)
//! redirect = "proxy"      # or "moved": how a node answers for a group it does not lead
//! metrics_addr = "127.0.0.1:9100" # reserved
//!
//! [raft]
//! tick_ms = 10
//! election_ticks = 20
//! heartbeat_ticks = 2
//! snapshot_log_bytes = 67108864
//! balance_leaders = true
//!
//! [limits]
//! max_clients = 10000
//! max_bulk_bytes = 536870912
//! max_args = 1048576
//! max_pipeline = 1024
//! request_timeout_ms = 5000
//! idle_frame_timeout_ms = 30000
//! write_timeout_ms = 30000
//!
//! [transport]
//! max_queue_bytes = 16777216  # per peer per lane
//! connect_timeout_ms = 1000
//! backoff_min_ms = 50
//! backoff_max_ms = 2000
//! max_frame_bytes = 538968064 # > max_bulk_bytes + 1 MiB; default max(64 MiB, that + 2 MiB)
//!
//! [[nodes]]                  # one table per node, this one included
//! id = 1
//! raft = "127.0.0.1:7000"    # core index c listens on port 7000 + c
//! client = "127.0.0.1:6379"  # `listen` defaults to (and must equal) this node's `client`
//!
//! [[nodes]]
//! id = 2
//! raft = "127.0.0.1:7100"
//! client = "127.0.0.1:6380"
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::resp::ParseLimits;
use crate::routing::SLOTS;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The validated server configuration. Build it with [`load`] or [`resolve`]; if you change
/// fields afterwards, call [`Config::validate`] again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's Raft id (>= 1).
    pub node_id: u64,
    /// Client address, an IP literal and port (checked to parse as a [`SocketAddr`]).
    pub listen: String,
    pub data_dir: PathBuf,
    /// CPUs to run one executor on each; all in the affinity mask, no duplicates, non-empty.
    pub cores: Vec<usize>,
    /// Number of shard groups, `1..=16384`.
    pub groups: u32,
    /// `placement[g]` = index into `cores` of the core owning group `g`; `len() == groups`.
    pub placement: Vec<usize>,
    /// A `tracing` filter directive, e.g. `info` or `leasekv=debug,info`.
    pub log_level: String,
    pub raft: RaftConfig,
    pub limits: LimitsConfig,
    /// Cluster members, sorted by id, ids unique; empty = single-node. When non-empty it lists
    /// `node_id`, `listen` equals that node's `client`, and no two nodes claim the same
    /// address (each claims `client` and `raft` port + c for every core index c).
    pub nodes: Vec<NodeSpec>,
    /// Voters per group, `1..=7`; see [`Config::group_voters`].
    pub replication: u32,
    pub redirect: Redirect,
    /// `read_mode = "lease" | "readindex"`.
    pub read_mode: ReadMode,
    /// Enables `LEASEKV.DEBUG` (fault injection for tests). Never on in production.
    pub debug_commands: bool,
    /// Identifies the cluster in every transport handshake; 1..=255 bytes, no control chars.
    pub cluster_id: String,
    pub transport: TransportSettings,
    /// Prometheus/OpenMetrics endpoint (`GET /metrics`), served by core 0; None = off.
    pub metrics_addr: Option<SocketAddr>,
    /// Start as a new member of an existing cluster: no bootstrap configuration; the
    /// groups wait to be added (`leasekv admin add-node`) and caught up by their leaders.
    pub join: bool,
}

/// One `[[nodes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Raft id, >= 1.
    pub id: u64,
    /// Raft base address: core c of this node listens on port + c (port != 0).
    pub raft: SocketAddr,
    /// Redis client address (port != 0).
    pub client: SocketAddr,
}

impl NodeSpec {
    /// The Raft address of core index `core` on this node. See [`Config::raft_addr_for_core`].
    pub fn raft_addr(&self, core: usize) -> SocketAddr {
        Config::raft_addr_for_core(self, core)
    }
}

/// How a node answers a request for a group whose leader is elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redirect {
    /// Forward the request to the leader and relay its reply.
    #[default]
    Proxy,
    /// Answer `-MOVED` with the leader's client address.
    Moved,
}

/// `[transport]`: the per-core Raft transport between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSettings {
    /// Outbound bytes queued per peer per lane before sends are refused, >= 64 KiB.
    pub max_queue_bytes: usize,
    /// `1..=60000` ms.
    pub connect_timeout_ms: u64,
    /// First reconnect delay, >= 1 ms.
    pub backoff_min_ms: u64,
    /// Largest reconnect delay, `backoff_min_ms..=600000` ms.
    pub backoff_max_ms: u64,
    /// Largest frame, > `limits.max_bulk_bytes` + 1 MiB (a forwarded maximal SET must fit)
    /// and <= u32::MAX (the length prefix).
    pub max_frame_bytes: usize,
}

impl TransportSettings {
    /// Defaults; `max_frame_bytes` depends on `limits.max_bulk_bytes`.
    pub fn defaults_for(max_bulk_bytes: usize) -> Self {
        TransportSettings {
            max_queue_bytes: 16 * MIB as usize,
            connect_timeout_ms: 1000,
            backoff_min_ms: 50,
            backoff_max_ms: 2000,
            max_frame_bytes: (64 * MIB as usize)
                .max(max_bulk_bytes.saturating_add(2 * MIB as usize)),
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn backoff_min(&self) -> Duration {
        Duration::from_millis(self.backoff_min_ms)
    }

    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }
}

/// `[transport]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportFile {
    max_queue_bytes: Option<usize>,
    connect_timeout_ms: Option<u64>,
    backoff_min_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    max_frame_bytes: Option<usize>,
}

impl TransportFile {
    fn resolve(self, max_bulk_bytes: usize) -> TransportSettings {
        let d = TransportSettings::defaults_for(max_bulk_bytes);
        TransportSettings {
            max_queue_bytes: self.max_queue_bytes.unwrap_or(d.max_queue_bytes),
            connect_timeout_ms: self.connect_timeout_ms.unwrap_or(d.connect_timeout_ms),
            backoff_min_ms: self.backoff_min_ms.unwrap_or(d.backoff_min_ms),
            backoff_max_ms: self.backoff_max_ms.unwrap_or(d.backoff_max_ms),
            max_frame_bytes: self.max_frame_bytes.unwrap_or(d.max_frame_bytes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Length of one Raft tick, `1..=1000` ms.
    pub tick_ms: u64,
    /// Election timeout in ticks; must exceed `heartbeat_ticks` (raft-rs requires it).
    pub election_ticks: usize,
    /// Heartbeat interval in ticks, >= 1.
    pub heartbeat_ticks: usize,
    /// Raft log bytes after which a group snapshots and compacts, >= 64 KiB.
    pub snapshot_log_bytes: u64,
    /// Move each group's leadership to its preferred node (spreads leaders evenly across
    /// nodes after failures), at most one transfer per core per second.
    pub balance_leaders: bool,
    /// Leader lease length in ms (read_mode = "lease"). Unset: the longest safe value
    /// minus one tick. Must be < (election_ticks - 1) x tick_ms - clock_drift_ms.
    pub lease_ms: Option<u64>,
    /// Margin for clock rate drift between nodes over an election timeout, ms.
    pub clock_drift_ms: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 10,
            election_ticks: 20,
            heartbeat_ticks: 2,
            snapshot_log_bytes: 64 * MIB,
            balance_leaders: true,
            lease_ms: None,
            clock_drift_ms: 20,
        }
    }
}

impl RaftConfig {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The lease length in ns: the configured one, or the safe bound minus one tick.
    /// 0 when no positive lease fits (validation rejects that in lease mode). Millisecond
    /// values too large for u64 nanoseconds saturate (a drift that large leaves no lease, a
    /// lease that large is over any bound) instead of overflowing.
    pub fn lease_ns(&self) -> u64 {
        const MS: u64 = 1_000_000;
        let bound = shards::lease::max_lease_duration_ns(
            self.election_ticks,
            self.tick_ms.saturating_mul(MS),
            self.clock_drift_ms.saturating_mul(MS),
        )
        .unwrap_or(0);
        match self.lease_ms {
            Some(ms) => ms.saturating_mul(MS),
            None => bound.saturating_sub(self.tick_ms.saturating_mul(MS)),
        }
    }
}

/// How linearizable reads are served on groups with several voters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// From the leader's state while its lease is valid, else ReadIndex.
    #[default]
    Lease,
    /// Always confirm leadership with a ReadIndex round (the comparison baseline).
    ReadIndex,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most simultaneously connected clients (per node), >= 1.
    pub max_clients: usize,
    /// Largest bulk string accepted (Redis `proto-max-bulk-len`), 1 KiB..=1 GiB.
    pub max_bulk_bytes: usize,
    /// Most arguments in one command, >= 1.
    pub max_args: usize,
    /// Commands one connection may have in flight; more input is not read until replies
    /// drain. >= 1.
    pub max_pipeline: usize,
    /// Deadline for a write or read to commit, >= 1 ms.
    pub request_timeout_ms: u64,
    /// A client holding a partial frame this long is disconnected, >= 1 ms.
    pub idle_frame_timeout_ms: u64,
    /// A client not draining replies this long is disconnected, >= 1 ms.
    pub write_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_clients: 10_000,
            max_bulk_bytes: 512 * MIB as usize,
            max_args: 1024 * 1024,
            max_pipeline: 1024,
            request_timeout_ms: 5_000,
            idle_frame_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
        }
    }
}

impl LimitsConfig {
    /// Request parser limits (inline/header lines keep Redis' fixed 64 KiB).
    pub fn parse_limits(&self) -> ParseLimits {
        ParseLimits {
            max_bulk: self.max_bulk_bytes,
            max_args: self.max_args,
            ..ParseLimits::default()
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn idle_frame_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_frame_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

/// Command-line values that replace the file's (applied before defaults and validation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub cores: Option<Vec<usize>>,
}

/// The file as written: `None` = not set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<u64>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    cores: Option<Vec<usize>>,
    groups: Option<u32>,
    placement: Option<Vec<usize>>,
    log_level: Option<String>,
    #[serde(default)]
    raft: RaftConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    nodes: Vec<NodeSpec>,
    replication: Option<u32>,
    redirect: Option<Redirect>,
    read_mode: Option<ReadMode>,
    #[serde(default)]
    debug_commands: bool,
    cluster_id: Option<String>,
    #[serde(default)]
    transport: TransportFile,
    metrics_addr: Option<SocketAddr>,
    #[serde(default)]
    join: bool,
}

/// Why a configuration could not be loaded. Display names the file, the key and the reason.
#[derive(Debug)]
pub struct ConfigError {
    file: Option<PathBuf>,
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Read(std::io::Error),
    /// TOML syntax, a wrong type or an unknown key.
    Parse(String),
    /// A key whose value is not allowed.
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    /// The process's CPU affinity could not be read.
    Affinity(String),
}

impl ConfigError {
    /// The key whose value was rejected by validation, if that is what went wrong.
    pub fn key(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "config {}: ", p.display())?,
            None => f.write_str("config: ")?,
        }
        match &self.kind {
            ErrorKind::Read(e) => write!(f, "cannot read: {e}"),
            ErrorKind::Parse(m) => f.write_str(m),
            ErrorKind::Invalid { key, value, reason } => write!(f, "{key} ({value}) {reason}"),
            ErrorKind::Affinity(m) => write!(f, "cannot read the CPU affinity mask: {m}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Read(e) => Some(e),
            _ => None,
        }
    }
}

fn invalid(key: &'static str, value: impl fmt::Debug, reason: impl Into<String>) -> ErrorKind {
    let mut value = format!("{value:?}");
    // A 16384-entry placement would drown the reason.
    const MAX_SHOWN: usize = 60;
    if value.len() > MAX_SHOWN {
        let cut = (0..=MAX_SHOWN)
            .rev()
            .find(|&i| value.is_char_boundary(i))
            .unwrap_or(0);
        value.truncate(cut);
        value.push_str("...");
    }
    ErrorKind::Invalid {
        key,
        value,
        reason: reason.into(),
    }
}

/// Loads `path` (or only defaults for `None`) and validates it.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    resolve(path, &Overrides::default())
}

/// Loads `path` (or only defaults for `None`), applies `o`, fills in defaults and validates.
///
/// Defaults that depend on other keys follow the final values: `groups` defaults to twice the
/// number of (possibly overridden) `cores`, and `placement` to round-robin over them.
pub fn resolve(path: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
    let err = |kind| ConfigError {
        file: path.map(Path::to_path_buf),
        kind,
    };
    let file = match path {
        None => FileConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| err(ErrorKind::Read(e)))?;
            parse_file(&text).map_err(err)?
        }
    };
    let allowed = affinity_cpus().map_err(|e| err(ErrorKind::Affinity(e)))?;
    build(file, o, &allowed).map_err(err)
}

/// Like [`resolve`] with the file's `text` already in memory, validated against the CPU set
/// `allowed` (ascending) instead of this process's affinity mask: a pure function of its
/// arguments, for the fuzz target and property tests (`crate::fuzzing`).
pub(crate) fn resolve_text(
    text: &str,
    o: &Overrides,
    allowed: &[usize],
) -> Result<Config, ConfigError> {
    let err = |kind| ConfigError { file: None, kind };
    let file = parse_file(text).map_err(err)?;
    build(file, o, allowed).map_err(err)
}

/// Applies overrides and defaults to the parsed file, then validates against `allowed`.
fn build(file: FileConfig, o: &Overrides, allowed: &[usize]) -> Result<Config, ErrorKind> {
    let cores = o
        .cores
        .clone()
        .or(file.cores)
        .unwrap_or_else(|| allowed.to_vec());
    let groups = match file.groups {
        Some(g) => g,
        // Saturates to an invalid value rather than wrapping to a valid-looking one.
        None => u32::try_from(cores.len().saturating_mul(2)).unwrap_or(u32::MAX),
    };
    let placement = match file.placement {
        Some(p) => p,
        // Placement is only defaulted for a valid shape; otherwise validation reports it.
        None if !cores.is_empty() && (1..=u32::from(SLOTS)).contains(&groups) => {
            (0..groups as usize).map(|g| g % cores.len()).collect()
        }
        None => Vec::new(),
    };
    let node_id = file.node_id.unwrap_or(1);
    let mut nodes = file.nodes;
    nodes.sort_by_key(|n| n.id);
    // In a cluster the client address is written once, in [[nodes]]; `listen` may repeat it
    // (validation rejects a different value).
    let default_listen = match nodes.iter().find(|n| n.id == node_id) {
        Some(me) => me.client.to_string(),
        None => "127.0.0.1:6379".to_owned(),
    };
    let transport = file.transport.resolve(file.limits.max_bulk_bytes);
    let config = Config {
        node_id,
        listen: o.listen.clone().or(file.listen).unwrap_or(default_listen),
        data_dir: o
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./leasekv-data")),
        cores,
        groups,
        placement,
        log_level: file.log_level.unwrap_or_else(|| "info".to_owned()),
        raft: file.raft,
        limits: file.limits,
        nodes,
        replication: file.replication.unwrap_or(3),
        redirect: file.redirect.unwrap_or_default(),
        read_mode: file.read_mode.unwrap_or_default(),
        debug_commands: file.debug_commands,
        cluster_id: file.cluster_id.unwrap_or_else(|| "leasekv".to_owned()),
        transport,
        metrics_addr: file.metrics_addr,
        join: file.join,
    };
    config.check(allowed)?;
    Ok(config)
}

/// Parses the TOML text. Errors say where (line, and the `[table]` it is in) and what.
fn parse_file(text: &str) -> Result<FileConfig, ErrorKind> {
    toml::from_str(text).map_err(|e| {
        let Some(span) = e.span() else {
            return ErrorKind::Parse(e.message().to_owned());
        };
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let table = enclosing_table(text, span.start)
            .map(|t| format!(" in [{t}]"))
            .unwrap_or_default();
        // toml messages may span lines ("invalid array\nexpected `]`"); keep ours on one.
        let message = e.message().trim_end().replace('\n', "; ");
        ErrorKind::Parse(format!("line {line}{table}: {message}"))
    })
}

/// The name of the `[table]` whose section contains byte `offset` of `text`, if any. Only for
/// error context, so a plain scan for header lines is enough.
fn enclosing_table(text: &str, offset: usize) -> Option<&str> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let this_line = text.get(line_start..)?.trim_start();
    if this_line.starts_with('[') {
        // The error is in a header: the table name is a top-level key.
        return None;
    }
    text.get(..line_start)?
        .lines()
        .rev()
        .map(str::trim_start)
        .find(|l| l.starts_with('['))
        .and_then(|l| l.trim_start_matches('[').split(']').next())
        .map(str::trim)
}

impl Config {
    /// The listen address.
    ///
    /// # Panics
    /// If `listen` was changed after validation to something that is not `ip:port`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .expect("listen is validated to be a socket address")
    }

    /// Checks every rule stated on the fields (reads the process's CPU affinity mask).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |kind| ConfigError { file: None, kind };
        let allowed = affinity_cpus().map_err(|e| err(ErrorKind::Affinity(e)))?;
        self.check(&allowed).map_err(err)
    }

    /// Validation against the given affinity mask (`allowed`, ascending CPU ids).
    fn check(&self, allowed: &[usize]) -> Result<(), ErrorKind> {
        if self.node_id == 0 {
            return Err(invalid("node_id", self.node_id, "must be >= 1"));
        }
        if self.join && self.nodes.is_empty() {
            return Err(invalid(
                "join",
                self.join,
                "needs [[nodes]] listing this node and the existing members to contact",
            ));
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "listen",
                &self.listen,
                "must be an IP address and port, e.g. \"127.0.0.1:6379\"",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", &self.data_dir, "must not be empty"));
        }
        self.check_cores(allowed)?;
        self.check_groups()?;
        self.check_raft()?;
        self.check_limits()?;
        self.check_transport()?;
        self.check_cluster()?;
        // Last: a lease only makes sense once the Raft timing itself is valid.
        self.check_lease()
    }

    fn check_lease(&self) -> Result<(), ErrorKind> {
        if self.read_mode == ReadMode::Lease {
            let r = &self.raft;
            let cfg = shards::lease::LeaseConfig {
                duration_ns: r.lease_ns(),
            };
            if r.lease_ns() == 0 {
                return Err(invalid(
                    "raft.lease_ms",
                    r.lease_ms.unwrap_or(0),
                    "leaves no positive lease: it must be > 0 and < (election_ticks - 1) x tick_ms - clock_drift_ms",
                ));
            }
            // Saturating like lease_ns: a huge drift or lease must fail the check, not wrap
            // around into a small value that passes it.
            if let Err(e) = cfg.check(
                r.election_ticks,
                r.tick_ms.saturating_mul(1_000_000),
                r.clock_drift_ms.saturating_mul(1_000_000),
            ) {
                return Err(invalid(
                    "raft.lease_ms",
                    r.lease_ms.unwrap_or(r.lease_ns() / 1_000_000),
                    e.to_string(),
                ));
            }
        }
        Ok(())
    }

    fn check_cores(&self, allowed: &[usize]) -> Result<(), ErrorKind> {
        if self.cores.is_empty() {
            return Err(invalid("cores", &self.cores, "must not be empty"));
        }
        let mut seen = BTreeSet::new();
        for &c in &self.cores {
            if !seen.insert(c) {
                return Err(invalid("cores", &self.cores, format!("list CPU {c} twice")));
            }
            if allowed.binary_search(&c).is_err() {
                return Err(invalid(
                    "cores",
                    &self.cores,
                    format!(
                        "include CPU {c}, which is not in this process's CPU affinity mask {}",
                        format_core_list(allowed)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_groups(&self) -> Result<(), ErrorKind> {
        if !(1..=u32::from(SLOTS)).contains(&self.groups) {
            return Err(invalid(
                "groups",
                self.groups,
                format!("must be in 1..={SLOTS}"),
            ));
        }
        if self.placement.len() != self.groups as usize {
            return Err(invalid(
                "placement",
                &self.placement,
                format!(
                    "must have one entry per group: {} entries, groups = {}",
                    self.placement.len(),
                    self.groups
                ),
            ));
        }
        if let Some((g, i)) = self
            .placement
            .iter()
            .enumerate()
            .find(|&(_, &i)| i >= self.cores.len())
        {
            return Err(invalid(
                "placement",
                &self.placement,
                format!(
                    "places group {g} on core index {i}, but cores has {} entries",
                    self.cores.len()
                ),
            ));
        }
        Ok(())
    }

    fn check_raft(&self) -> Result<(), ErrorKind> {
        let r = &self.raft;
        if !(1..=1000).contains(&r.tick_ms) {
            return Err(invalid("raft.tick_ms", r.tick_ms, "must be in 1..=1000"));
        }
        if r.heartbeat_ticks < 1 {
            return Err(invalid(
                "raft.heartbeat_ticks",
                r.heartbeat_ticks,
                "must be >= 1",
            ));
        }
        if r.election_ticks <= r.heartbeat_ticks {
            return Err(invalid(
                "raft.election_ticks",
                r.election_ticks,
                format!(
                    "must be greater than raft.heartbeat_ticks ({})",
                    r.heartbeat_ticks
                ),
            ));
        }
        if r.snapshot_log_bytes < 64 * KIB {
            return Err(invalid(
                "raft.snapshot_log_bytes",
                r.snapshot_log_bytes,
                "must be >= 65536 (64 KiB)",
            ));
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), ErrorKind> {
        let l = &self.limits;
        if !(KIB..=GIB).contains(&(l.max_bulk_bytes as u64)) {
            return Err(invalid(
                "limits.max_bulk_bytes",
                l.max_bulk_bytes,
                "must be in 1024..=1073741824 (1 KiB..=1 GiB)",
            ));
        }
        let at_least_one: [(&'static str, u64); 6] = [
            ("limits.max_clients", l.max_clients as u64),
            ("limits.max_args", l.max_args as u64),
            ("limits.max_pipeline", l.max_pipeline as u64),
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.idle_frame_timeout_ms", l.idle_frame_timeout_ms),
            ("limits.write_timeout_ms", l.write_timeout_ms),
        ];
        match at_least_one.into_iter().find(|&(_, v)| v == 0) {
            Some((key, v)) => Err(invalid(key, v, "must be >= 1")),
            None => Ok(()),
        }
    }

    fn check_transport(&self) -> Result<(), ErrorKind> {
        let t = &self.transport;
        if t.max_queue_bytes < 64 * KIB as usize {
            return Err(invalid(
                "transport.max_queue_bytes",
                t.max_queue_bytes,
                "must be >= 65536 (64 KiB)",
            ));
        }
        if !(1..=60_000).contains(&t.connect_timeout_ms) {
            return Err(invalid(
                "transport.connect_timeout_ms",
                t.connect_timeout_ms,
                "must be in 1..=60000",
            ));
        }
        if t.backoff_min_ms < 1 {
            return Err(invalid(
                "transport.backoff_min_ms",
                t.backoff_min_ms,
                "must be >= 1",
            ));
        }
        if !(t.backoff_min_ms..=600_000).contains(&t.backoff_max_ms) {
            return Err(invalid(
                "transport.backoff_max_ms",
                t.backoff_max_ms,
                format!(
                    "must be in transport.backoff_min_ms ({})..=600000",
                    t.backoff_min_ms
                ),
            ));
        }
        let floor = self.limits.max_bulk_bytes as u64 + MIB;
        if t.max_frame_bytes as u64 <= floor {
            return Err(invalid(
                "transport.max_frame_bytes",
                t.max_frame_bytes,
                format!(
                    "must exceed limits.max_bulk_bytes + 1 MiB ({floor}) so a forwarded \
                     maximal value fits in one frame"
                ),
            ));
        }
        if t.max_frame_bytes as u64 > u64::from(u32::MAX) {
            return Err(invalid(
                "transport.max_frame_bytes",
                t.max_frame_bytes,
                "must be <= 4294967295 (the frame length prefix is 32 bits)",
            ));
        }
        Ok(())
    }

    fn check_cluster(&self) -> Result<(), ErrorKind> {
        if !(1..=7).contains(&self.replication) {
            return Err(invalid("replication", self.replication, "must be in 1..=7"));
        }
        let id = &self.cluster_id;
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(invalid(
                "cluster_id",
                id,
                "must be 1..=255 bytes without control characters",
            ));
        }
        if self.nodes.is_empty() {
            return Ok(());
        }
        self.check_nodes()?;
        let Some(me) = self.node(self.node_id) else {
            let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
            return Err(invalid(
                "node_id",
                self.node_id,
                format!("is not one of the [[nodes]] ids {ids:?}"),
            ));
        };
        if self.listen.parse::<SocketAddr>().ok() != Some(me.client) {
            return Err(invalid(
                "listen",
                &self.listen,
                format!(
                    "must equal this node's client address in [[nodes]] ({}), or be left out",
                    me.client
                ),
            ));
        }
        Ok(())
    }

    /// Ids >= 1 and unique, ports non-zero, every core's Raft port fits in u16, no address
    /// claimed twice. Every node is assumed to run as many cores as this one: a group lives
    /// on the same core index everywhere.
    fn check_nodes(&self) -> Result<(), ErrorKind> {
        let last_core = self.cores.len().saturating_sub(1);
        let mut ids = BTreeSet::new();
        let mut claimed: HashMap<SocketAddr, String> = HashMap::new();
        for n in &self.nodes {
            if n.id == 0 {
                return Err(invalid("nodes", n.id, "contain id 0; ids must be >= 1"));
            }
            if !ids.insert(n.id) {
                return Err(invalid("nodes", n.id, format!("list id {} twice", n.id)));
            }
            if n.raft.port() == 0 || n.client.port() == 0 {
                return Err(invalid(
                    "nodes",
                    n.id,
                    format!("node {}: raft and client ports must not be 0", n.id),
                ));
            }
            if usize::from(n.raft.port()) + last_core > usize::from(u16::MAX) {
                return Err(invalid(
                    "nodes",
                    n.raft,
                    format!(
                        "node {}: raft port {} + {last_core} (one port per core) exceeds 65535",
                        n.id,
                        n.raft.port()
                    ),
                ));
            }
            let mut claims = vec![(n.client, format!("node {} client", n.id))];
            claims.extend((0..=last_core).map(|c| {
                let what = format!("node {} raft (core index {c})", n.id);
                (Config::raft_addr_for_core(n, c), what)
            }));
            for (addr, what) in claims {
                if let Some(other) = claimed.insert(addr, what.clone()) {
                    return Err(invalid(
                        "nodes",
                        addr,
                        format!("is used by both {other} and {what}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// True when `[[nodes]]` lists a cluster (even a one-node one).
    pub fn is_cluster(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// The `[[nodes]]` entry with this id.
    pub fn node(&self, id: u64) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every node except this one, by ascending id (empty when single-node).
    pub fn peers(&self) -> Vec<NodeSpec> {
        self.nodes
            .iter()
            .filter(|n| n.id != self.node_id)
            .cloned()
            .collect()
    }

    /// Raft address of core index `core` on `node`: its `raft` port + `core`.
    ///
    /// # Panics
    /// If that port exceeds 65535; validation guarantees it does not for `core <
    /// cores.len()`.
    pub fn raft_addr_for_core(node: &NodeSpec, core: usize) -> SocketAddr {
        let port = u16::try_from(usize::from(node.raft.port()) + core)
            .expect("raft port + core index is validated to fit in u16");
        SocketAddr::new(node.raft.ip(), port)
    }

    /// The voters of group `g`: `min(replication, nodes)` node ids, taken from the nodes
    /// sorted by id starting at index `g % nodes`, wrapping. Single-node: just `node_id`.
    /// Deterministic, so every node computes the same set.
    pub fn group_voters(&self, g: u32) -> Vec<u64> {
        let n = self.nodes.len();
        if n == 0 {
            return vec![self.node_id];
        }
        // `nodes` is kept sorted by id (resolve sorts it); sort again in case it was edited.
        let mut ids: Vec<u64> = self.nodes.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        let k = (self.replication as usize).min(n);
        let start = g as usize % n;
        (0..k).map(|i| ids[(start + i) % n]).collect()
    }

    /// The transport settings of core index `core` (None when single-node). Every peer's
    /// address in the map is its Raft address for the same core index.
    pub fn transport_for_core(
        &self,
        core: usize,
    ) -> Option<(crate::transport::TransportConfig, HashMap<u64, SocketAddr>)> {
        let me = self.node(self.node_id)?;
        let t = &self.transport;
        let cfg = crate::transport::TransportConfig {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
            core,
            listen: Config::raft_addr_for_core(me, core),
            max_queue_bytes: t.max_queue_bytes,
            max_frame_bytes: t.max_frame_bytes,
            connect_timeout: t.connect_timeout(),
            backoff_min: t.backoff_min(),
            backoff_max: t.backoff_max(),
            inbound_capacity: crate::transport::DEFAULT_INBOUND_CAPACITY,
            write_stall_timeout: crate::transport::DEFAULT_WRITE_STALL_TIMEOUT,
        };
        let peers = self
            .peers()
            .iter()
            .map(|p| (p.id, Config::raft_addr_for_core(p, core)))
            .collect();
        Some((cfg, peers))
    }
}

/// The CPUs in this process's affinity mask, ascending.
pub fn affinity_cpus() -> Result<Vec<usize>, String> {
    // SAFETY: cpu_set_t is plain old data, so all-zero is a valid (empty) set, and
    // sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: every index is below CPU_SETSIZE, the set's capacity.
    let cpus = (0..CPU_SETSIZE)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    Ok(cpus)
}

const CPU_SETSIZE: usize = libc::CPU_SETSIZE as usize;

/// Parses a CPU list as given to `--cores`: comma-separated ids and inclusive ranges, e.g.
/// `0,1`, `0-3` or `0-3,8`. Ids must be below 1024 (the size of a CPU set) and not repeat.
pub fn parse_core_list(s: &str) -> Result<Vec<usize>, String> {
    let parse_id = |t: &str| -> Result<usize, String> {
        let id: usize = t
            .trim()
            .parse()
            .map_err(|_| format!("invalid CPU id {:?} in core list {s:?}", t.trim()))?;
        if id >= CPU_SETSIZE {
            return Err(format!(
                "CPU id {id} in core list {s:?} is too large (max {})",
                CPU_SETSIZE - 1
            ));
        }
        Ok(id)
    };
    let mut cores = Vec::new();
    let mut seen = BTreeSet::new();
    for item in s.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (parse_id(a)?, parse_id(b)?),
            None => {
                let id = parse_id(item)?;
                (id, id)
            }
        };
        if lo > hi {
            return Err(format!(
                "empty CPU range {:?} in core list {s:?}",
                item.trim()
            ));
        }
        for id in lo..=hi {
            if !seen.insert(id) {
                return Err(format!("CPU {id} listed twice in core list {s:?}"));
            }
            cores.push(id);
        }
    }
    Ok(cores)
}

/// Formats ascending CPU ids compactly, e.g. `[0-3, 8]`.
fn format_core_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cpus() -> Vec<usize> {
        affinity_cpus().expect("affinity mask")
    }

    /// A CPU id that is not in the affinity mask.
    fn foreign_cpu() -> usize {
        let cpus = cpus();
        (0..).find(|c| !cpus.contains(c)).expect("some id is free")
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let f = file(text);
        load(Some(f.path()))
    }

    /// Loads `text` and returns the error message with the file name replaced by `F`.
    fn error_of(text: &str) -> String {
        let f = file(text);
        let e = load(Some(f.path())).expect_err(text);
        e.to_string().replace(&f.path().display().to_string(), "F")
    }

    #[test]
    fn defaults() {
        let c = load(None).expect("defaults are valid");
        let cpus = cpus();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listen, "127.0.0.1:6379");
        assert_eq!(c.listen_addr(), "127.0.0.1:6379".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./leasekv-data"));
        assert_eq!(c.cores, cpus);
        assert_eq!(c.groups as usize, 2 * cpus.len());
        let rr: Vec<usize> = (0..c.groups as usize).map(|g| g % cpus.len()).collect();
        assert_eq!(c.placement, rr);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.raft, RaftConfig::default());
        assert_eq!(c.raft.tick_ms, 10);
        assert_eq!(c.raft.election_ticks, 20);
        assert_eq!(c.raft.heartbeat_ticks, 2);
        assert_eq!(c.raft.snapshot_log_bytes, 64 << 20);
        let l = &c.limits;
        assert_eq!(l.max_clients, 10_000);
        assert_eq!(l.max_bulk_bytes, 512 << 20);
        assert_eq!(l.max_args, 1_048_576);
        assert_eq!(l.max_pipeline, 1024);
        assert_eq!(l.request_timeout(), Duration::from_secs(5));
        assert_eq!(l.idle_frame_timeout(), Duration::from_secs(30));
        assert_eq!(l.write_timeout(), Duration::from_secs(30));
        assert_eq!(l.parse_limits().max_inline, 64 * 1024);
        assert_eq!(l.parse_limits().max_bulk, 512 << 20);
        // An empty file is the same as no file.
        assert_eq!(load_text("").expect("empty file"), c);
    }

    #[test]
    fn full_file() {
        let cpu = cpus()[0];
        let c = load_text(&format!(
            r#"
node_id = 3
listen = "0.0.0.0:7000"
data_dir = "/var/lib/kv"
cores = [{cpu}]
groups = 3
placement = [0, 0, 0]
log_level = "leasekv=debug"

[raft]
tick_ms = 5
election_ticks = 10
heartbeat_ticks = 1
snapshot_log_bytes = 65536

[limits]
max_clients = 5
max_bulk_bytes = 1024
max_args = 16
max_pipeline = 2
request_timeout_ms = 100
idle_frame_timeout_ms = 200
write_timeout_ms = 300
"#
        ))
        .expect("valid file");
        assert_eq!(c.node_id, 3);
        assert_eq!(c.listen_addr(), "0.0.0.0:7000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/kv"));
        assert_eq!(c.cores, vec![cpu]);
        assert_eq!(c.groups, 3);
        assert_eq!(c.placement, vec![0, 0, 0]);
        assert_eq!(c.log_level, "leasekv=debug");
        assert_eq!(
            c.raft,
            RaftConfig {
                tick_ms: 5,
                election_ticks: 10,
                heartbeat_ticks: 1,
                snapshot_log_bytes: 65536,
                balance_leaders: true,
                lease_ms: None,
                clock_drift_ms: 20,
            }
        );
        assert_eq!(c.raft.tick(), Duration::from_millis(5));
        assert_eq!(
            c.limits,
            LimitsConfig {
                max_clients: 5,
                max_bulk_bytes: 1024,
                max_args: 16,
                max_pipeline: 2,
                request_timeout_ms: 100,
                idle_frame_timeout_ms: 200,
                write_timeout_ms: 300,
            }
        );
        assert!(c.validate().is_ok());
    }

    #[test]
    fn partial_tables_keep_other_defaults() {
        let c = load_text("[raft]\ntick_ms = 20\n[limits]\nmax_pipeline = 8\n").expect("valid");
        assert_eq!(c.raft.tick_ms, 20);
        assert_eq!(c.raft.election_ticks, 20);
        assert_eq!(c.limits.max_pipeline, 8);
        assert_eq!(c.limits.max_clients, 10_000);
    }

    #[test]
    fn election_message() {
        assert_eq!(
            error_of("[raft]\nelection_ticks = 2\nheartbeat_ticks = 2\n"),
            "config F: raft.election_ticks (2) must be greater than raft.heartbeat_ticks (2)"
        );
    }

    #[test]
    fn validation_errors_name_the_key() {
        let cpu = cpus()[0];
        let foreign = foreign_cpu();
        let cases: Vec<(String, &str, &str)> = vec![
            ("node_id = 0".into(), "node_id (0)", "must be >= 1"),
            (
                "listen = \"localhost:6379\"".into(),
                "listen (\"localhost:6379\")",
                "IP address",
            ),
            (
                "listen = \"127.0.0.1\"".into(),
                "listen",
                "IP address and port",
            ),
            ("data_dir = \"\"".into(), "data_dir", "must not be empty"),
            ("cores = []".into(), "cores ([])", "must not be empty"),
            (format!("cores = [{cpu}, {cpu}]"), "cores", "twice"),
            (
                format!("cores = [{foreign}]"),
                "cores",
                "not in this process's CPU affinity mask",
            ),
            ("groups = 0".into(), "groups (0)", "1..=16384"),
            ("groups = 16385".into(), "groups (16385)", "1..=16384"),
            (
                format!("cores = [{cpu}]\ngroups = 2\nplacement = [0]"),
                "placement ([0])",
                "one entry per group",
            ),
            (
                format!("cores = [{cpu}]\ngroups = 2\nplacement = [0, 1]"),
                "placement ([0, 1])",
                "core index 1",
            ),
            (
                format!("cores = [{cpu}]\nplacement = [0]"),
                "placement",
                "groups = 2",
            ),
            ("[raft]\ntick_ms = 0".into(), "raft.tick_ms (0)", "1..=1000"),
            (
                "[raft]\ntick_ms = 1001".into(),
                "raft.tick_ms (1001)",
                "1..=1000",
            ),
            (
                "[raft]\nheartbeat_ticks = 0".into(),
                "raft.heartbeat_ticks (0)",
                ">= 1",
            ),
            (
                "[raft]\nelection_ticks = 1\nheartbeat_ticks = 3".into(),
                "raft.election_ticks (1)",
                "greater than raft.heartbeat_ticks (3)",
            ),
            (
                "[raft]\nsnapshot_log_bytes = 65535".into(),
                "raft.snapshot_log_bytes (65535)",
                ">= 65536",
            ),
            (
                "[limits]\nmax_bulk_bytes = 1023".into(),
                "limits.max_bulk_bytes (1023)",
                "1 KiB..=1 GiB",
            ),
            (
                "[limits]\nmax_bulk_bytes = 1073741825".into(),
                "limits.max_bulk_bytes (1073741825)",
                "1 KiB..=1 GiB",
            ),
            (
                "[limits]\nmax_clients = 0".into(),
                "limits.max_clients (0)",
                ">= 1",
            ),
            (
                "[limits]\nmax_args = 0".into(),
                "limits.max_args (0)",
                ">= 1",
            ),
            (
                "[limits]\nmax_pipeline = 0".into(),
                "limits.max_pipeline (0)",
                ">= 1",
            ),
            (
                "[limits]\nrequest_timeout_ms = 0".into(),
                "limits.request_timeout_ms (0)",
                ">= 1",
            ),
            (
                "[limits]\nidle_frame_timeout_ms = 0".into(),
                "limits.idle_frame_timeout_ms (0)",
                ">= 1",
            ),
            (
                "[limits]\nwrite_timeout_ms = 0".into(),
                "limits.write_timeout_ms (0)",
                ">= 1",
            ),
        ];
        for (text, key, reason) in cases {
            let msg = error_of(&text);
            assert!(
                msg.starts_with(&format!("config F: {key}")),
                "{text:?}: {msg}"
            );
            assert!(msg.contains(reason), "{text:?}: {msg}");
        }
        // Long values are shortened in the message.
        let msg = error_of(&format!(
            "cores = [{cpu}]\ngroups = 100\nplacement = [{}]",
            "0, ".repeat(99)
        ));
        assert!(msg.contains("placement ([0, 0, "), "{msg}");
        assert!(msg.len() < 200, "{msg}");
        // Boundaries that are allowed.
        for ok in [
            "[raft]\ntick_ms = 1000\nsnapshot_log_bytes = 65536",
            "read_mode = \"readindex\"\n[raft]\nelection_ticks = 2\nheartbeat_ticks = 1",
            "[limits]\nmax_bulk_bytes = 1073741824",
            "groups = 16384",
        ] {
            assert!(load_text(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let cases = [
            ("nodeid = 2\n", "line 1: unknown field `nodeid`"),
            (
                "node_id = 2\n[raft]\ntick_ms = 5\ntick = 5\n",
                "line 4 in [raft]: unknown field `tick`",
            ),
            (
                "[limits]\nmax_clients = 5\nmax_conns = 5\n",
                "line 3 in [limits]: unknown field `max_conns`",
            ),
            ("[raft]\n[rafts]\n", "unknown field `rafts`"),
        ];
        for (text, want) in cases {
            let msg = error_of(text);
            assert!(msg.starts_with("config F: "), "{msg}");
            assert!(msg.contains(want), "{text:?}: {msg}");
        }
        // A top-level unknown table is not attributed to the table above it.
        assert!(!error_of("[raft]\n[rafts]\n").contains("in [raft]"));
    }

    #[test]
    fn type_and_syntax_errors() {
        let msg = error_of("node_id = \"one\"\n");
        assert!(msg.starts_with("config F: line 1: invalid type"), "{msg}");
        let msg = error_of("node_id = -1\n");
        assert!(msg.starts_with("config F: line 1"), "{msg}");
        let msg = error_of("node_id = \n");
        assert!(msg.starts_with("config F: line 1"), "{msg}");
        let msg = error_of("x = [\n");
        assert!(msg.contains(": invalid array; expected"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let msg = error_of("[raft]\ntick_ms = 1.5\n");
        assert!(msg.starts_with("config F: line 2 in [raft]"), "{msg}");
    }

    #[test]
    fn missing_file() {
        let e = load(Some(Path::new("/nonexistent/leasekv.toml"))).expect_err("missing");
        let msg = e.to_string();
        assert!(
            msg.starts_with("config /nonexistent/leasekv.toml: cannot read"),
            "{msg}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn overrides() {
        let cpu = cpus()[0];
        let o = Overrides {
            listen: Some("127.0.0.1:7777".into()),
            data_dir: Some(PathBuf::from("/tmp/x")),
            cores: Some(vec![cpu]),
        };
        let f = file("listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\n");
        let c = resolve(Some(f.path()), &o).expect("valid");
        assert_eq!(c.listen_addr(), "127.0.0.1:7777".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.cores, vec![cpu]);
        // groups and placement follow the overridden cores.
        assert_eq!(c.groups, 2);
        assert_eq!(c.placement, vec![0, 0]);

        // Explicit groups in the file are kept, placement is round-robin over the new cores.
        let f = file("groups = 5\n");
        let c = resolve(Some(f.path()), &o).expect("valid");
        assert_eq!(c.groups, 5);
        assert_eq!(c.placement, vec![0; 5]);

        // Without a file.
        let c = resolve(None, &o).expect("valid");
        assert_eq!(c.groups, 2);

        // Overrides are validated too.
        let bad = Overrides {
            cores: Some(vec![foreign_cpu()]),
            ..Overrides::default()
        };
        let e = resolve(None, &bad).expect_err("foreign cpu");
        assert_eq!(e.key(), Some("cores"));
        assert!(e.to_string().starts_with("config: cores"), "{e}");
        let bad = Overrides {
            listen: Some("nope".into()),
            ..Overrides::default()
        };
        assert_eq!(
            resolve(None, &bad).expect_err("bad listen").key(),
            Some("listen")
        );

        // A placement written for the file's cores no longer fits fewer overridden cores.
        let cpus = cpus();
        if cpus.len() >= 2 {
            let f = file(&format!(
                "cores = [{}, {}]\ngroups = 2\nplacement = [0, 1]\n",
                cpus[0], cpus[1]
            ));
            let e = resolve(Some(f.path()), &o).expect_err("placement out of range");
            assert_eq!(e.key(), Some("placement"));
        }
    }

    #[test]
    fn read_mode_and_lease_bounds() {
        let c = load(None).expect("defaults");
        assert_eq!(c.read_mode, ReadMode::Lease);
        // Default timing: (20 - 1) x 10 ms - 20 ms drift = 170 ms bound, minus a tick.
        assert_eq!(c.raft.lease_ns(), 160_000_000);
        let c = load_text("read_mode = \"lease\"\n").expect("lease mode with defaults");
        assert_eq!(c.read_mode, ReadMode::Lease);
        let c = load_text("read_mode = \"lease\"\n[raft]\nlease_ms = 100\n").expect("explicit");
        assert_eq!(c.raft.lease_ns(), 100_000_000);
        // At or over the bound: refused, naming the key.
        for ms in [170, 500] {
            let e = load_text(&format!("read_mode = \"lease\"\n[raft]\nlease_ms = {ms}\n"))
                .expect_err("unsafe lease");
            assert_eq!(e.key(), Some("raft.lease_ms"), "{e}");
        }
        // A drift margin that eats the whole election timeout leaves no lease.
        let e = load_text("read_mode = \"lease\"\n[raft]\nclock_drift_ms = 500\n")
            .expect_err("no room for a lease");
        assert_eq!(e.key(), Some("raft.lease_ms"), "{e}");
        // The same timing is fine when leases are off.
        assert!(load_text("read_mode = \"readindex\"\n[raft]\nclock_drift_ms = 500\n").is_ok());
        let e = load_text("read_mode = \"fast\"\n").expect_err("unknown mode");
        assert!(
            e.to_string().contains("read_mode") || e.to_string().contains("fast"),
            "{e}"
        );
    }

    #[test]
    fn validate_after_edit() {
        let mut c = load(None).expect("defaults");
        c.raft.heartbeat_ticks = c.raft.election_ticks;
        let e = c.validate().expect_err("edited");
        assert_eq!(e.key(), Some("raft.election_ticks"));
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_core_list("0"), Ok(vec![0]));
        assert_eq!(parse_core_list("0,1"), Ok(vec![0, 1]));
        assert_eq!(parse_core_list("0-3"), Ok(vec![0, 1, 2, 3]));
        assert_eq!(parse_core_list(" 4 , 0-1 ,7-7"), Ok(vec![4, 0, 1, 7]));
        assert_eq!(parse_core_list("1023"), Ok(vec![1023]));
        for bad in [
            "",
            ",",
            "0,",
            "a",
            "-1",
            "1-",
            "-",
            "3-1",
            "0,0",
            "0-2,1",
            "1024",
            "0-99999999999",
            "1.5",
            "0 1",
        ] {
            assert!(parse_core_list(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_core_list("0,0")
            .unwrap_err()
            .contains("CPU 0 listed twice"));
    }

    #[test]
    fn core_list_formatting() {
        assert_eq!(format_core_list(&[]), "[]");
        assert_eq!(
            format_core_list(&[0, 1, 2, 3, 8, 10, 11]),
            "[0-3, 8, 10-11]"
        );
        assert_eq!(format_core_list(&[5]), "[5]");
    }

    /// `[[nodes]]` for ids 1..=n on 127.0.0.1: raft ports 7000 + 10 * id, client 6000 + id.
    fn nodes_toml(ids: &[u64]) -> String {
        ids.iter()
            .map(|id| {
                format!(
                    "[[nodes]]\nid = {id}\nraft = \"127.0.0.1:{}\"\nclient = \"127.0.0.1:{}\"\n",
                    7000 + 10 * id,
                    6000 + id
                )
            })
            .collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn module_doc_example_is_valid() {
        let src = include_str!("config.rs");
        let start = src.find("//! ```toml\n").expect("example") + "//! ```toml\n".len();
        let len = src[start..].find("//! ```\n").expect("example end");
        let text: String = src[start..start + len]
            .lines()
            .map(|l| l.trim_start_matches("//!").trim_start())
            // The CPUs are this machine's; the example's are illustrative.
            .filter(|l| !l.starts_with("cores") && !l.starts_with("placement"))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = load_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.peers().len(), 1);
        assert_eq!(c.transport.max_frame_bytes, (512 + 2) << 20);
    }

    #[test]
    fn cluster_defaults() {
        let c = load(None).expect("defaults");
        assert!(c.nodes.is_empty());
        assert!(!c.is_cluster());
        assert!(c.peers().is_empty());
        assert_eq!(c.node(1), None);
        assert_eq!(c.replication, 3);
        assert_eq!(c.redirect, Redirect::Proxy);
        assert_eq!(c.cluster_id, "leasekv");
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.group_voters(0), vec![1]);
        assert_eq!(c.group_voters(7), vec![1]);
        assert!(c.transport_for_core(0).is_none());
        let t = &c.transport;
        assert_eq!(t.max_queue_bytes, 16 << 20);
        assert_eq!(t.connect_timeout(), Duration::from_secs(1));
        assert_eq!(t.backoff_min(), Duration::from_millis(50));
        assert_eq!(t.backoff_max(), Duration::from_secs(2));
        // 64 MiB unless the largest bulk value needs more: the default max_bulk_bytes is 512
        // MiB, so 514 MiB.
        assert_eq!(t.max_frame_bytes, (512 + 2) << 20);
        let c = load_text("[limits]\nmax_bulk_bytes = 1024\n").expect("valid");
        assert_eq!(c.transport.max_frame_bytes, 64 << 20);
        // A partial [transport] keeps the other defaults.
        let c = load_text("[transport]\nbackoff_max_ms = 100\n").expect("valid");
        assert_eq!(c.transport.backoff_max_ms, 100);
        assert_eq!(c.transport.backoff_min_ms, 50);
        assert_eq!(c.transport.max_frame_bytes, (512 + 2) << 20);
    }

    #[test]
    fn cluster_file() {
        let c = load_text(&format!(
            r#"
node_id = 2
cluster_id = "prod-eu"
replication = 2
redirect = "moved"
metrics_addr = "127.0.0.1:9100"
{}
[transport]
max_queue_bytes = 65536
connect_timeout_ms = 250
backoff_min_ms = 10
backoff_max_ms = 10
max_frame_bytes = 600000000
"#,
            // Written out of order: kept sorted by id.
            nodes_toml(&[3, 1, 2])
        ))
        .expect("valid cluster file");
        assert!(c.is_cluster());
        assert_eq!(c.nodes.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            c.listen_addr(),
            addr("127.0.0.1:6002"),
            "listen defaults to our client"
        );
        assert_eq!(c.cluster_id, "prod-eu");
        assert_eq!(c.replication, 2);
        assert_eq!(c.redirect, Redirect::Moved);
        assert_eq!(c.metrics_addr, Some(addr("127.0.0.1:9100")));
        assert_eq!(
            c.transport,
            TransportSettings {
                max_queue_bytes: 65536,
                connect_timeout_ms: 250,
                backoff_min_ms: 10,
                backoff_max_ms: 10,
                max_frame_bytes: 600_000_000,
            }
        );
        let peers: Vec<u64> = c.peers().iter().map(|n| n.id).collect();
        assert_eq!(peers, [1, 3]);
        let n3 = c.node(3).expect("node 3").clone();
        assert_eq!(n3.client, addr("127.0.0.1:6003"));
        assert_eq!(Config::raft_addr_for_core(&n3, 0), addr("127.0.0.1:7030"));
        assert_eq!(n3.raft_addr(1), addr("127.0.0.1:7031"));
        assert_eq!(c.node(4), None);
        // replication 2 of 3 nodes, starting at g % 3.
        assert_eq!(c.group_voters(0), vec![1, 2]);
        assert_eq!(c.group_voters(1), vec![2, 3]);
        assert_eq!(c.group_voters(2), vec![3, 1]);
        assert_eq!(c.group_voters(5), vec![3, 1]);
        let (t, peers) = c.transport_for_core(1).expect("cluster");
        assert_eq!(t.node_id, 2);
        assert_eq!(t.core, 1);
        assert_eq!(t.cluster_id, "prod-eu");
        assert_eq!(t.listen, addr("127.0.0.1:7021"));
        assert_eq!(t.max_queue_bytes, 65536);
        assert_eq!(t.max_frame_bytes, 600_000_000);
        assert_eq!(t.connect_timeout, Duration::from_millis(250));
        assert_eq!(
            (t.backoff_min, t.backoff_max),
            (Duration::from_millis(10), Duration::from_millis(10))
        );
        assert_eq!(
            peers,
            HashMap::from([(1, addr("127.0.0.1:7011")), (3, addr("127.0.0.1:7031"))])
        );
        // listen may repeat the client address.
        let c = load_text(&format!(
            "node_id = 1\nlisten = \"127.0.0.1:6001\"\n{}",
            nodes_toml(&[1, 2])
        ))
        .expect("listen equal to client");
        assert_eq!(c.listen_addr(), addr("127.0.0.1:6001"));
    }

    #[test]
    fn group_voters_wrap_and_cap() {
        let c = load_text(&nodes_toml(&[1, 2, 3, 4, 5])).expect("valid");
        assert_eq!(c.group_voters(0), vec![1, 2, 3]);
        assert_eq!(c.group_voters(3), vec![4, 5, 1]);
        assert_eq!(c.group_voters(4), vec![5, 1, 2]);
        assert_eq!(c.group_voters(u32::MAX), c.group_voters(u32::MAX % 5));
        // More replicas than nodes: every node, still rotated.
        let c = load_text(&format!("replication = 7\n{}", nodes_toml(&[1, 2, 3]))).expect("valid");
        assert_eq!(c.group_voters(1), vec![2, 3, 1]);
        let c = load_text(&format!("replication = 1\n{}", nodes_toml(&[1, 2]))).expect("valid");
        assert_eq!(c.group_voters(0), vec![1]);
        assert_eq!(c.group_voters(1), vec![2]);
        // A one-node cluster is still a cluster, without peers.
        let c = load_text(&nodes_toml(&[1])).expect("valid");
        assert!(c.is_cluster() && c.peers().is_empty());
        assert_eq!(c.group_voters(3), vec![1]);
        let (_, peers) = c.transport_for_core(0).expect("cluster");
        assert!(peers.is_empty());
    }

    #[test]
    fn cluster_validation_errors_name_the_key() {
        let three = nodes_toml(&[1, 2, 3]);
        let two_cores = cpus().len() >= 2;
        let mut cases: Vec<(String, &str, &str)> = vec![
            ("replication = 0".into(), "replication (0)", "1..=7"),
            ("replication = 8".into(), "replication (8)", "1..=7"),
            ("cluster_id = \"\"".into(), "cluster_id", "1..=255 bytes"),
            ("cluster_id = \"a\\tb\"".into(), "cluster_id", "control"),
            (
                format!("cluster_id = \"{}\"", "x".repeat(256)),
                "cluster_id",
                "1..=255",
            ),
            (
                "[transport]\nmax_queue_bytes = 65535".into(),
                "transport.max_queue_bytes (65535)",
                ">= 65536",
            ),
            (
                "[transport]\nconnect_timeout_ms = 0".into(),
                "transport.connect_timeout_ms (0)",
                "1..=60000",
            ),
            (
                "[transport]\nconnect_timeout_ms = 60001".into(),
                "transport.connect_timeout_ms (60001)",
                "1..=60000",
            ),
            (
                "[transport]\nbackoff_min_ms = 0".into(),
                "transport.backoff_min_ms (0)",
                ">= 1",
            ),
            (
                "[transport]\nbackoff_min_ms = 100\nbackoff_max_ms = 99".into(),
                "transport.backoff_max_ms (99)",
                "backoff_min_ms (100)..=600000",
            ),
            (
                "[transport]\nbackoff_max_ms = 600001".into(),
                "transport.backoff_max_ms (600001)",
                "..=600000",
            ),
            (
                // The default max_bulk_bytes (512 MiB) does not fit 64 MiB frames.
                "[transport]\nmax_frame_bytes = 67108864".into(),
                "transport.max_frame_bytes (67108864)",
                "must exceed limits.max_bulk_bytes + 1 MiB (537919488)",
            ),
            (
                "[limits]\nmax_bulk_bytes = 1024\n[transport]\nmax_frame_bytes = 1049600".into(),
                "transport.max_frame_bytes (1049600)",
                "must exceed",
            ),
            (
                "[transport]\nmax_frame_bytes = 4294967296".into(),
                "transport.max_frame_bytes (4294967296)",
                "32 bits",
            ),
            (
                format!("node_id = 4\n{three}"),
                "node_id (4)",
                "is not one of the [[nodes]] ids [1, 2, 3]",
            ),
            (
                format!("listen = \"127.0.0.1:6379\"\n{three}"),
                "listen (\"127.0.0.1:6379\")",
                "must equal this node's client address in [[nodes]] (127.0.0.1:6001)",
            ),
            (nodes_toml(&[1, 2, 2]), "nodes (2)", "list id 2 twice"),
            (
                format!("{three}{}", nodes_toml(&[0])),
                "nodes (0)",
                "ids must be >= 1",
            ),
            (
                "[[nodes]]\nid = 1\nraft = \"127.0.0.1:0\"\nclient = \"127.0.0.1:6001\"".into(),
                "nodes (1)",
                "must not be 0",
            ),
            (
                format!(
                    "{}[[nodes]]\nid = 2\nraft = \"127.0.0.1:7010\"\nclient = \"127.0.0.1:6002\"",
                    nodes_toml(&[1])
                ),
                "nodes (127.0.0.1:7010)",
                "is used by both node 1 raft (core index 0) and node 2 raft (core index 0)",
            ),
            (
                format!(
                    "{}[[nodes]]\nid = 2\nraft = \"127.0.0.1:7020\"\nclient = \"127.0.0.1:7010\"",
                    nodes_toml(&[1])
                ),
                "nodes (127.0.0.1:7010)",
                "is used by both node 1 raft (core index 0) and node 2 client",
            ),
        ];
        if two_cores {
            // Core index 1 of node 1 uses 7011.
            cases.push((
                format!(
                    "{}[[nodes]]\nid = 2\nraft = \"127.0.0.1:7011\"\nclient = \"127.0.0.1:6002\"",
                    nodes_toml(&[1])
                ),
                "nodes (127.0.0.1:7011)",
                "node 1 raft (core index 1) and node 2 raft (core index 0)",
            ));
            cases.push((
                "[[nodes]]\nid = 1\nraft = \"127.0.0.1:65535\"\nclient = \"127.0.0.1:6001\"".into(),
                "nodes (127.0.0.1:65535)",
                "exceeds 65535",
            ));
        }
        for (text, key, reason) in cases {
            let msg = error_of(&text);
            assert!(
                msg.starts_with(&format!("config F: {key}")),
                "{text:?}: {msg}"
            );
            assert!(msg.contains(reason), "{text:?}: {msg}");
        }
        // Boundaries that are allowed.
        for ok in [
            "replication = 1".to_owned(),
            "replication = 7".to_owned(),
            format!("cluster_id = \"{}\"", "x".repeat(255)),
            "[transport]\nmax_queue_bytes = 65536\nconnect_timeout_ms = 60000\nbackoff_min_ms = 1\nbackoff_max_ms = 600000".to_owned(),
            "[limits]\nmax_bulk_bytes = 1024\n[transport]\nmax_frame_bytes = 1049601".to_owned(),
            "[[nodes]]\nid = 1\nraft = \"127.0.0.1:65535\"\nclient = \"127.0.0.1:6001\"".to_owned(),
        ] {
            // The last one needs a single core: port 65535 is core index 0's.
            let text = if ok.contains("65535") {
                format!("cores = [{}]\n{ok}", cpus()[0])
            } else {
                ok
            };
            assert!(load_text(&text).is_ok(), "{text}: {:?}", load_text(&text).err());
        }
        // A `--listen` override must agree with [[nodes]] too.
        let f = file(&three);
        let o = Overrides {
            listen: Some("127.0.0.1:7777".into()),
            ..Overrides::default()
        };
        let e = resolve(Some(f.path()), &o).expect_err("listen override differs");
        assert_eq!(e.key(), Some("listen"));
        let o = Overrides {
            listen: Some("127.0.0.1:6001".into()),
            ..Overrides::default()
        };
        assert!(resolve(Some(f.path()), &o).is_ok());
    }

    #[test]
    fn cluster_parse_errors() {
        let cases = [
            (
                format!("{}weight = 2\n", nodes_toml(&[1])),
                "line 5 in [nodes]: unknown field `weight`",
            ),
            (
                "[transport]\nconnect_timeout_ms = 5\nmax_queue = 5\n".to_owned(),
                "line 3 in [transport]: unknown field `max_queue`",
            ),
            (
                "redirect = \"bounce\"\n".to_owned(),
                "unknown variant `bounce`",
            ),
            (
                "[[nodes]]\nid = 1\nraft = \"localhost:7000\"\nclient = \"127.0.0.1:6001\"\n"
                    .to_owned(),
                "line 3 in [nodes]: invalid socket address",
            ),
            (
                "[[nodes]]\nid = 1\nraft = \"127.0.0.1:7000\"\n".to_owned(),
                "missing field `client`",
            ),
            (
                "metrics_addr = \"nope\"\n".to_owned(),
                "line 1: invalid socket address",
            ),
        ];
        for (text, want) in cases {
            let msg = error_of(&text);
            assert!(msg.starts_with("config F: "), "{msg}");
            assert!(msg.contains(want), "{text:?}: {msg}");
        }
    }

    #[test]
    fn cluster_validate_after_edit() {
        let mut c = load_text(&nodes_toml(&[1, 2, 3])).expect("valid");
        c.replication = 9;
        assert_eq!(c.validate().expect_err("edited").key(), Some("replication"));
        c.replication = 3;
        c.node_id = 9;
        assert_eq!(c.validate().expect_err("edited").key(), Some("node_id"));
        c.node_id = 1;
        c.nodes[1].id = 1;
        assert_eq!(c.validate().expect_err("edited").key(), Some("nodes"));
    }
}
