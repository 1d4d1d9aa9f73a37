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
//!
//! [raft]
//! tick_ms = 10
//! election_ticks = 20
//! heartbeat_ticks = 2
//! snapshot_log_bytes = 67108864
//!
//! [limits]
//! max_clients = 10000
//! max_bulk_bytes = 536870912
//! max_args = 1048576
//! max_pipeline = 1024
//! request_timeout_ms = 5000
//! idle_frame_timeout_ms = 30000
//! write_timeout_ms = 30000
//! ```

use std::collections::BTreeSet;
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
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 10,
            election_ticks: 20,
            heartbeat_ticks: 2,
            snapshot_log_bytes: 64 * MIB,
        }
    }
}

impl RaftConfig {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
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
    let cores = o.cores.clone().or(file.cores).unwrap_or(allowed.clone());
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
    let config = Config {
        node_id: file.node_id.unwrap_or(1),
        listen: o
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:6379".to_owned()),
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
    };
    config.check(&allowed).map_err(err)?;
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
        self.check_limits()
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
            "[raft]\nelection_ticks = 2\nheartbeat_ticks = 1",
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
}
