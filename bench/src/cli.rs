//! Command line (clap derive), turned into a [`LoadConfig`].

use crate::config::{parse_cpu_list, ConfigError, Distribution, KeyTag, LoadConfig, Protocol};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "leasekv-bench",
    version,
    about = "Latency load generator for Redis-protocol servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run GET/SET load against one or more servers and report latency percentiles.
    Load(Box<LoadArgs>),
    /// Run the benchmark scenarios (starts and stops the servers; writes a report).
    Run(Box<RunArgs>),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenarios to run: `all` or a list such as `1,2,5` (see docs/benchmarks.md).
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Seconds-long run with tiny rates (CI): checks that everything works, measures nothing.
    #[arg(long)]
    pub smoke: bool,
    /// The report goes to DIR/<UTC timestamp>/.
    #[arg(long, value_name = "DIR", default_value = "bench/results")]
    pub out: PathBuf,
    /// leasekv binary [default: `leasekv` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub leasekv: Option<PathBuf>,
    /// First loopback port to try for the servers [default: from the pid, 20000-30000].
    #[arg(long)]
    pub base_port: Option<u16>,
    /// CPUs every leasekv node runs its executors on [default: all allowed CPUs].
    #[arg(long, value_name = "LIST")]
    pub server_cores: Option<String>,
    /// `[runtime] spin_before_park_us` of the leasekv nodes (see docs/benchmarks.md).
    #[arg(long, default_value_t = crate::suite::DEFAULT_SERVER_SPIN_US)]
    pub server_spin_us: u64,
    /// Pin the load generator's workers to these CPUs [default: not pinned].
    #[arg(long, value_name = "LIST")]
    pub load_cpus: Option<String>,
    /// Load generator worker threads (scenario 6 uses at least 2).
    #[arg(long, default_value_t = 1)]
    pub load_threads: usize,
    /// A run is flagged invalid above this p99 generator lag [default: 1000, smoke 200000].
    #[arg(long)]
    pub max_generator_lag_us: Option<u64>,
    /// A run is flagged invalid when a generator worker is busier [default: 0.9, smoke: off].
    #[arg(long)]
    pub max_generator_cpu: Option<f64>,
    /// Stop everything after this many seconds [default: 1500, smoke 600].
    #[arg(long)]
    pub time_limit_secs: Option<u64>,
}

impl RunArgs {
    pub fn to_options(&self) -> Result<crate::suite::SuiteOptions, ConfigError> {
        let scenarios: Vec<u32> = if self.scenario == "all" {
            crate::suite::SCENARIOS.iter().map(|(i, _)| *i).collect()
        } else {
            self.scenario
                .split(',')
                .map(|x| match x.trim().parse::<u32>() {
                    Ok(i) if (1..=6).contains(&i) => Ok(i),
                    _ => Err(ConfigError(format!(
                        "--scenario: {x:?} is not a scenario number 1..=6 (or use all)"
                    ))),
                })
                .collect::<Result<_, _>>()?
        };
        let cpus = |s: &Option<String>| s.as_deref().map(parse_cpu_list).transpose();
        if self.load_threads == 0 || self.load_threads > 64 {
            return Err(ConfigError("--load-threads must be in 1..=64".into()));
        }
        if self.server_spin_us > 1000 {
            return Err(ConfigError("--server-spin-us must be in 0..=1000".into()));
        }
        let server_cores = cpus(&self.server_cores)?;
        if server_cores.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(ConfigError("--server-cores is empty".into()));
        }
        Ok(crate::suite::SuiteOptions {
            scenarios,
            smoke: self.smoke,
            out: self.out.clone(),
            leasekv: self.leasekv.clone(),
            base_port: self.base_port,
            server_cores,
            server_spin_us: self.server_spin_us,
            load_cpus: cpus(&self.load_cpus)?,
            load_threads: self.load_threads,
            max_generator_lag_us: self.max_generator_lag_us.unwrap_or(if self.smoke {
                200_000
            } else {
                1000
            }),
            max_generator_cpu: self.max_generator_cpu.unwrap_or(if self.smoke {
                1.01
            } else {
                0.9
            }),
            time_limit: std::time::Duration::from_secs(
                self.time_limit_secs
                    .unwrap_or(if self.smoke { 600 } else { 1500 }),
            ),
        })
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Server address; repeat to spread connections over several servers.
    #[arg(
        long = "target",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:6379"
    )]
    pub targets: Vec<String>,
    /// Total connections (over all threads and targets).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Worker threads, one glommio executor each [default: number of --cpus, else 1].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Pin worker threads to these CPUs, e.g. `2,3` or `0-3` (worker i on the i-th, cycling).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Key space size.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// `uniform`, `zipfian` (theta 0.99) or `zipfian:THETA`.
    #[arg(long, default_value = "uniform")]
    pub distribution: String,
    /// Value size of SETs in bytes.
    #[arg(long, default_value_t = 64)]
    pub value_size: usize,
    /// Fraction of GETs (the rest are SETs), 0..1.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,
    /// Prefix every key with `{STR}` so all keys share one cluster slot.
    #[arg(long, value_name = "STR", conflicts_with = "tag_per_key")]
    pub hash_tag: Option<String>,
    /// Wrap each key in braces: `{PREFIXn}`.
    #[arg(long)]
    pub tag_per_key: bool,
    /// One hash tag per --target, comma-separated: connections to the i-th target use the
    /// i-th tag (e.g. a shard group that target leads).
    #[arg(long, value_name = "TAG,TAG,...", conflicts_with_all = ["hash_tag", "tag_per_key"])]
    pub hash_tag_per_target: Option<String>,
    /// leasekv only: `own` = keys of a shard group owned by the core serving the
    /// connection (asked with INFO after connecting); `other` = a group of another core.
    #[arg(long, value_name = "own|other", conflicts_with_all = ["hash_tag", "tag_per_key", "hash_tag_per_target"])]
    pub core_keys: Option<String>,
    /// `resp` (Redis protocol) or `etcd` (etcd v3 JSON gateway: linearizable range / put).
    #[arg(long, default_value = "resp")]
    pub protocol: String,
    /// Length of one time-series sample in ms.
    #[arg(long, default_value_t = crate::config::DEFAULT_SERIES_INTERVAL_MS)]
    pub series_interval_ms: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Offered load in ops/s (open loop); absent: closed loop at maximum throughput.
    #[arg(long, value_name = "OPS_PER_SEC")]
    pub rate: Option<f64>,
    /// SET every key once before the run.
    #[arg(long)]
    pub preload: bool,
    /// Write the full report (config, percentiles, time series, HDR log) as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Per-request timeout; an expired request is an error and its connection is redone.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Seed of the key and read/write choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Open loop: invalid run when the generator's own send delay has p99 above this.
    #[arg(long, default_value_t = 1000)]
    pub max_generator_lag_us: u64,
    /// Open loop: poll instead of sleeping for the last US microseconds before each send
    /// (less wake-up delay in the latencies, more CPU; 0 = off).
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub spin_us: u64,
    /// Invalid run when a worker thread is busy above this fraction of the time.
    #[arg(long, default_value_t = 0.9)]
    pub max_generator_cpu: f64,
}

impl LoadArgs {
    /// The validated configuration these arguments describe.
    pub fn to_config(&self) -> Result<LoadConfig, ConfigError> {
        let cpus = self.cpus.as_deref().map(parse_cpu_list).transpose()?;
        let threads = self
            .threads
            .unwrap_or_else(|| cpus.as_ref().map_or(1, |c| c.len()));
        let key_tag = match (
            &self.hash_tag,
            self.tag_per_key,
            &self.hash_tag_per_target,
            self.core_keys.as_deref(),
        ) {
            (Some(t), false, None, None) => KeyTag::Shared(t.clone()),
            (None, true, None, None) => KeyTag::PerKey,
            (None, false, Some(list), None) => {
                KeyTag::PerTarget(list.split(',').map(|t| t.trim().to_string()).collect())
            }
            (None, false, None, Some("own")) => KeyTag::OwnCore,
            (None, false, None, Some("other")) => KeyTag::OtherCore,
            (None, false, None, Some(x)) => {
                return Err(ConfigError(format!(
                    "--core-keys must be own or other, got {x:?}"
                )))
            }
            (None, false, None, None) => KeyTag::None,
            _ => {
                return Err(ConfigError(
                    "--hash-tag, --tag-per-key, --hash-tag-per-target and --core-keys exclude \
                     each other"
                        .into(),
                ))
            }
        };
        let config = LoadConfig {
            targets: self.targets.clone(),
            connections: self.connections,
            threads,
            cpus,
            pipeline: self.pipeline,
            keys: self.keys,
            distribution: self.distribution.parse::<Distribution>()?,
            value_size: self.value_size,
            read_ratio: self.read_ratio,
            key_prefix: self.key_prefix.clone(),
            key_tag,
            warmup_secs: self.warmup,
            duration_secs: self.duration,
            rate: self.rate,
            preload: self.preload,
            timeout_ms: self.timeout_ms,
            seed: self.seed,
            max_generator_lag_us: self.max_generator_lag_us,
            spin_us: self.spin_us,
            max_generator_cpu: self.max_generator_cpu,
            protocol: self.protocol.parse::<Protocol>()?,
            series_interval_ms: self.series_interval_ms,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> Result<LoadConfig, String> {
        let mut argv = vec!["leasekv-bench", "load"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Load(a) = cli.command else {
            return Err("not load".into());
        };
        a.to_config().map_err(|e| e.to_string())
    }

    fn run(args: &[&str]) -> Result<crate::suite::SuiteOptions, String> {
        let mut argv = vec!["leasekv-bench", "run"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Run(a) = cli.command else {
            return Err("not run".into());
        };
        a.to_options().map_err(|e| e.to_string())
    }

    #[test]
    fn run_arguments() {
        let o = run(&[]).unwrap();
        assert_eq!(o.scenarios, vec![1, 2, 3, 4, 5, 6]);
        assert!(!o.smoke);
        assert_eq!(o.max_generator_lag_us, 1000);
        let o = run(&["--scenario", "5,1", "--smoke", "--server-cores", "0-1"]).unwrap();
        assert_eq!(o.scenarios, vec![5, 1]);
        assert_eq!(o.server_cores, Some(vec![0, 1]));
        assert!(o.smoke && o.max_generator_lag_us > 1000);
        for bad in [
            &["--scenario", "7"][..],
            &["--scenario", "x"],
            &["--server-spin-us", "5000"],
            &["--load-threads", "0"],
        ] {
            assert!(run(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn defaults_are_a_closed_loop_on_localhost() {
        let c = load(&[]).unwrap();
        assert_eq!(c.targets, ["127.0.0.1:6379"]);
        assert_eq!((c.connections, c.threads, c.pipeline), (16, 1, 1));
        assert!(!c.is_open_loop());
        assert_eq!(c.key_tag, KeyTag::None);
    }

    #[test]
    fn full_command_line() {
        let c = load(&[
            "--target",
            "127.0.0.1:7000",
            "--target",
            "localhost:7001",
            "--connections",
            "8",
            "--cpus",
            "0-1",
            "--pipeline",
            "4",
            "--keys",
            "1000",
            "--distribution",
            "zipfian:0.9",
            "--value-size",
            "100",
            "--read-ratio",
            "0.5",
            "--hash-tag",
            "t",
            "--warmup",
            "1",
            "--duration",
            "3",
            "--rate",
            "5000",
            "--preload",
            "--timeout-ms",
            "300",
        ])
        .unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!((c.threads, c.cpus.as_deref()), (2, Some(&[0, 1][..])));
        assert_eq!(c.distribution, Distribution::Zipfian { theta: 0.9 });
        assert_eq!(c.key_tag, KeyTag::Shared("t".into()));
        assert_eq!(c.rate, Some(5000.0));
        assert!(c.preload);
        assert_eq!(c.timeout_ms, 300);
    }

    #[test]
    fn tags_protocol_and_series() {
        let c = load(&[
            "--target",
            "a:1",
            "--target",
            "b:2",
            "--hash-tag-per-target",
            "x,y",
        ])
        .unwrap();
        assert_eq!(c.key_tag, KeyTag::PerTarget(vec!["x".into(), "y".into()]));
        let c = load(&["--core-keys", "other", "--series-interval-ms", "100"]).unwrap();
        assert_eq!((c.key_tag, c.series_interval_ms), (KeyTag::OtherCore, 100));
        assert_eq!(
            load(&["--protocol", "etcd"]).unwrap().protocol,
            Protocol::Etcd
        );
    }

    #[test]
    fn bad_arguments_are_errors() {
        for args in [
            &["--hash-tag", "a", "--tag-per-key"][..],
            &["--distribution", "zipf"],
            &["--read-ratio", "2"],
            &["--threads", "4", "--connections", "2"],
            &["--cpus", "x"],
            &["--target", "nohost"],
            &["--rate", "-5"],
            &["--connections", "abc"],
            &["--core-keys", "mine"],
            &["--core-keys", "own", "--preload"],
            &["--protocol", "http"],
            &["--hash-tag-per-target", "a,b"],
        ] {
            assert!(load(args).is_err(), "{args:?} accepted");
        }
    }
}
