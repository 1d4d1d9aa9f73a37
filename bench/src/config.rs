//! Load configuration: what to send, where, how fast, for how long. Serialized verbatim
//! into the JSON report so a run can be reproduced from it.

use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Duration;

/// Default skew of `--distribution zipfian` (YCSB's default).
pub const DEFAULT_ZIPF_THETA: f64 = 0.99;
/// Largest value size accepted (Redis' own bulk string limit).
pub const MAX_VALUE_SIZE: usize = 512 << 20;
/// Largest pipeline depth accepted.
pub const MAX_PIPELINE: usize = 65_536;
/// Largest number of connections accepted.
pub const MAX_CONNECTIONS: usize = 100_000;
/// Highest offered rate accepted (keeps schedule arithmetic exact in f64).
pub const MAX_RATE: f64 = 1e9;
/// Longest run (warm-up + duration) accepted, in seconds: one week.
pub const MAX_RUN_SECS: f64 = 7.0 * 24.0 * 3600.0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// How keys are drawn from the key space `0..keys`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Distribution {
    Uniform,
    /// YCSB/Gray zipfian: key index 0 is the most popular; `0 < theta < 1`.
    Zipfian {
        theta: f64,
    },
}

impl FromStr for Distribution {
    type Err = ConfigError;

    /// `uniform`, `zipfian` (theta 0.99) or `zipfian:THETA`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        match (name, arg) {
            ("uniform", None) => Ok(Distribution::Uniform),
            ("zipfian", None) => Ok(Distribution::Zipfian {
                theta: DEFAULT_ZIPF_THETA,
            }),
            ("zipfian", Some(t)) => {
                let theta: f64 = t
                    .parse()
                    .map_err(|_| ConfigError(format!("zipfian theta {t:?} is not a number")))?;
                let d = Distribution::Zipfian { theta };
                d.validate()?;
                Ok(d)
            }
            _ => bad(format!(
                "unknown distribution {s:?}: expected uniform, zipfian or zipfian:THETA"
            )),
        }
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distribution::Uniform => write!(f, "uniform"),
            Distribution::Zipfian { theta } => write!(f, "zipfian:{theta}"),
        }
    }
}

impl Distribution {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Distribution::Uniform => Ok(()),
            Distribution::Zipfian { theta } if theta.is_finite() && theta > 0.0 && theta < 1.0 => {
                Ok(())
            }
            Distribution::Zipfian { theta } => {
                bad(format!("zipfian theta must be in (0, 1), got {theta}"))
            }
        }
    }
}

/// Redis Cluster hash tags added to generated keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "tag", rename_all = "snake_case")]
pub enum KeyTag {
    /// `PREFIXn`
    None,
    /// `{TAG}PREFIXn`: every key hashes to the slot of TAG.
    Shared(String),
    /// `{PREFIXn}`: each key is its own hash tag (same slot as without braces, but
    /// related keys such as `{PREFIXn}:x` would share it).
    PerKey,
    /// `{TAGS[t]}PREFIXn` for a connection to target `t`: e.g. each target gets a tag of a
    /// shard group it leads, so no request is forwarded.
    PerTarget(Vec<String>),
    /// leasekv only: each connection asks the server which core serves it and uses a tag
    /// of a shard group owned by that core (no cross-core hop).
    OwnCore,
    /// leasekv only: like `OwnCore`, but a group owned by another core (every request
    /// hops to that core and back).
    OtherCore,
}

impl KeyTag {
    /// True for the variants whose tag is chosen per connection after asking the server.
    pub fn needs_core_probe(&self) -> bool {
        matches!(self, KeyTag::OwnCore | KeyTag::OtherCore)
    }
}

/// Checks that `tag` can be put between braces.
fn check_tag(tag: &str) -> Result<(), ConfigError> {
    if tag.is_empty() || tag.contains(['{', '}']) {
        return bad(format!(
            "hash tag {tag:?} must be non-empty and contain no braces"
        ));
    }
    Ok(())
}

/// What the load speaks on its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Redis protocol: `GET key`, `SET key value`.
    #[default]
    Resp,
    /// etcd v3's gRPC-gateway JSON API over keep-alive HTTP/1.1: reads are
    /// `POST /v3/kv/range` (linearizable), writes `POST /v3/kv/put`; keys and values are
    /// base64 in the JSON body.
    Etcd,
}

impl FromStr for Protocol {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "resp" => Ok(Protocol::Resp),
            "etcd" => Ok(Protocol::Etcd),
            _ => bad(format!("unknown protocol {s:?}: expected resp or etcd")),
        }
    }
}

/// Default length of one time-series sample.
pub const DEFAULT_SERIES_INTERVAL_MS: u64 = 1000;

/// Parses a CPU list such as `0,2,4-7`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, ConfigError> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim) {
        let parse = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| ConfigError(format!("bad CPU number {x:?} in CPU list {s:?}")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b || b - a > 4096 {
                    return bad(format!("bad CPU range {part:?} in {s:?}"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(parse(part)?),
        }
    }
    Ok(cpus)
}

/// Checks `host:port` syntax (resolution happens when the run starts).
pub fn check_target(t: &str) -> Result<(), ConfigError> {
    match t.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => bad(format!("target {t:?} is not HOST:PORT")),
    }
}

/// Everything that defines a load run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// `HOST:PORT` of each server; connection `c` goes to `targets[c % targets.len()]`.
    pub targets: Vec<String>,
    /// Total connections over all threads and targets.
    pub connections: usize,
    /// Worker threads (one glommio executor each); connection `c` runs on worker `c % threads`.
    pub threads: usize,
    /// CPU for each worker (worker `w` on `cpus[w % len]`); `None`: not pinned.
    pub cpus: Option<Vec<usize>>,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Key space size: keys `0..keys`.
    pub keys: u64,
    pub distribution: Distribution,
    pub value_size: usize,
    /// Fraction of requests that are GET (the rest are SET).
    pub read_ratio: f64,
    pub key_prefix: String,
    pub key_tag: KeyTag,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    /// Offered load in ops/s over all connections (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    /// SET every key once before the run.
    pub preload: bool,
    /// Per-request timeout; an expired request is an error and its connection is redone.
    pub timeout_ms: u64,
    /// Seed of all random choices (keys, read/write mix).
    pub seed: u64,
    /// Open loop: the run is invalid when the p99 of the generator's own send delay
    /// exceeds this (see `report::assess_validity`).
    pub max_generator_lag_us: u64,
    /// Open loop: poll instead of sleeping for the last this-many microseconds before each
    /// scheduled send (0: always sleep). Cuts the executor's wake-up delay out of the
    /// measured latencies at the cost of CPU.
    pub spin_us: u64,
    /// The run is invalid when a worker thread was busy on CPU for more than this
    /// fraction of the run (it, not the server, was the bottleneck).
    pub max_generator_cpu: f64,
    /// Wire protocol of the load.
    #[serde(default)]
    pub protocol: Protocol,
    /// Length of one time-series sample, 10..=60000 ms.
    #[serde(default = "default_series_interval_ms")]
    pub series_interval_ms: u64,
}

fn default_series_interval_ms() -> u64 {
    DEFAULT_SERIES_INTERVAL_MS
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            targets: vec!["127.0.0.1:6379".to_string()],
            connections: 16,
            threads: 1,
            cpus: None,
            pipeline: 1,
            keys: 100_000,
            distribution: Distribution::Uniform,
            value_size: 64,
            read_ratio: 0.9,
            key_prefix: "key:".to_string(),
            key_tag: KeyTag::None,
            warmup_secs: 2.0,
            duration_secs: 10.0,
            rate: None,
            preload: false,
            timeout_ms: 2000,
            seed: 1,
            max_generator_lag_us: 1000,
            spin_us: 0,
            max_generator_cpu: 0.9,
            protocol: Protocol::Resp,
            series_interval_ms: DEFAULT_SERIES_INTERVAL_MS,
        }
    }
}

impl LoadConfig {
    /// Rejects every configuration `run_load` could not honour.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.targets.is_empty() {
            return bad("at least one --target is needed");
        }
        for t in &self.targets {
            check_target(t)?;
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return bad(format!(
                "connections must be in 1..={MAX_CONNECTIONS}, got {}",
                self.connections
            ));
        }
        if self.connections < self.targets.len() {
            return bad(format!(
                "{} targets need at least as many connections, got {}",
                self.targets.len(),
                self.connections
            ));
        }
        if self.threads == 0 || self.threads > self.connections {
            return bad(format!(
                "threads must be in 1..=connections ({}), got {}",
                self.connections, self.threads
            ));
        }
        if let Some(cpus) = &self.cpus {
            if cpus.is_empty() {
                return bad("the CPU list is empty");
            }
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return bad(format!(
                "pipeline must be in 1..={MAX_PIPELINE}, got {}",
                self.pipeline
            ));
        }
        if self.keys == 0 {
            return bad("keys must be at least 1");
        }
        self.distribution.validate()?;
        if self.value_size > MAX_VALUE_SIZE {
            return bad(format!("value size must be at most {MAX_VALUE_SIZE} bytes"));
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return bad(format!(
                "read ratio must be in [0, 1], got {}",
                self.read_ratio
            ));
        }
        match &self.key_tag {
            KeyTag::None => {}
            KeyTag::Shared(tag) => check_tag(tag)?,
            KeyTag::PerKey => {
                if self.key_prefix.contains(['{', '}']) {
                    return bad("with --tag-per-key the key prefix must contain no braces");
                }
            }
            KeyTag::PerTarget(tags) => {
                if tags.len() != self.targets.len() {
                    return bad(format!(
                        "{} per-target hash tags for {} targets: give one per target",
                        tags.len(),
                        self.targets.len()
                    ));
                }
                for t in tags {
                    check_tag(t)?;
                }
            }
            KeyTag::OwnCore | KeyTag::OtherCore => {
                if self.protocol != Protocol::Resp {
                    return bad("own-core/other-core keys need a leasekv server (protocol resp)");
                }
                if self.preload {
                    return bad(
                        "--preload cannot be combined with own-core/other-core keys \
                         (each connection picks its tag after connecting)",
                    );
                }
            }
        }
        if !(10..=60_000).contains(&self.series_interval_ms) {
            return bad(format!(
                "series interval must be in 10..=60000 ms, got {}",
                self.series_interval_ms
            ));
        }
        let secs_ok = |x: f64| x.is_finite() && x >= 0.0;
        if !secs_ok(self.warmup_secs) || !secs_ok(self.duration_secs) || self.duration_secs == 0.0 {
            return bad("warm-up must be >= 0 s and duration > 0 s");
        }
        if self.warmup_secs + self.duration_secs > MAX_RUN_SECS {
            return bad("warm-up + duration must be at most one week");
        }
        if let Some(rate) = self.rate {
            if !rate.is_finite() || rate <= 0.0 || rate > MAX_RATE {
                return bad(format!("rate must be in (0, {MAX_RATE}], got {rate}"));
            }
        }
        if self.spin_us > 1_000_000 {
            return bad("spin must be at most 1 s");
        }
        if self.timeout_ms == 0 {
            return bad("timeout must be at least 1 ms");
        }
        if !self.max_generator_cpu.is_finite() || self.max_generator_cpu <= 0.0 {
            return bad("max generator CPU must be a positive fraction");
        }
        Ok(())
    }

    pub fn is_open_loop(&self) -> bool {
        self.rate.is_some()
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_secs)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// CPU of worker `w`, if pinning was asked for.
    pub fn cpu_of_worker(&self, w: usize) -> Option<usize> {
        self.cpus
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| c[w % c.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_parsing() {
        assert_eq!("uniform".parse::<Distribution>(), Ok(Distribution::Uniform));
        assert_eq!(
            "zipfian".parse::<Distribution>(),
            Ok(Distribution::Zipfian { theta: 0.99 })
        );
        assert_eq!(
            "zipfian:0.5".parse::<Distribution>(),
            Ok(Distribution::Zipfian { theta: 0.5 })
        );
        for bad in [
            "zipfian:1",
            "zipfian:0",
            "zipfian:x",
            "zipfian:NaN",
            "normal",
            "uniform:1",
        ] {
            assert!(bad.parse::<Distribution>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0,2,4-6"), Ok(vec![0, 2, 4, 5, 6]));
        assert_eq!(parse_cpu_list("3"), Ok(vec![3]));
        for bad in ["", "a", "3-1", "1,,2", "0-99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn validation_rejects_bad_values() {
        assert!(LoadConfig::default().validate().is_ok());
        let cases: Vec<fn(&mut LoadConfig)> = vec![
            |c| c.targets.clear(),
            |c| c.targets = vec!["nohost".into()],
            |c| c.targets = vec!["h:99999".into()],
            |c| c.connections = 0,
            |c| {
                c.targets = vec!["a:1".into(), "b:2".into()];
                c.connections = 1;
                c.threads = 1;
            },
            |c| c.threads = 0,
            |c| c.threads = 17,
            |c| c.pipeline = 0,
            |c| c.keys = 0,
            |c| c.read_ratio = 1.5,
            |c| c.read_ratio = f64::NAN,
            |c| c.duration_secs = 0.0,
            |c| c.warmup_secs = -1.0,
            |c| c.rate = Some(0.0),
            |c| c.rate = Some(f64::INFINITY),
            |c| c.rate = Some(2e9),
            |c| c.timeout_ms = 0,
            |c| c.key_tag = KeyTag::Shared("a}b".into()),
            |c| c.key_tag = KeyTag::Shared(String::new()),
            |c| c.cpus = Some(vec![]),
            |c| c.distribution = Distribution::Zipfian { theta: 1.0 },
            |c| c.key_tag = KeyTag::PerTarget(vec!["a".into(), "b".into()]),
            |c| c.key_tag = KeyTag::PerTarget(vec!["{".into()]),
            |c| {
                c.key_tag = KeyTag::OwnCore;
                c.preload = true;
            },
            |c| {
                c.key_tag = KeyTag::OtherCore;
                c.protocol = Protocol::Etcd;
            },
            |c| c.series_interval_ms = 5,
        ];
        for (i, mutate) in cases.into_iter().enumerate() {
            let mut c = LoadConfig::default();
            mutate(&mut c);
            assert!(c.validate().is_err(), "case {i} accepted: {c:?}");
        }
    }

    #[test]
    fn workers_are_pinned_round_robin() {
        let c = LoadConfig {
            cpus: Some(vec![3, 5]),
            ..LoadConfig::default()
        };
        assert_eq!(c.cpu_of_worker(0), Some(3));
        assert_eq!(c.cpu_of_worker(1), Some(5));
        assert_eq!(c.cpu_of_worker(2), Some(3));
        assert_eq!(LoadConfig::default().cpu_of_worker(0), None);
    }
}
