//! Command line (clap derive), turned into a [`LoadConfig`].

use crate::config::{parse_cpu_list, ConfigError, Distribution, KeyTag, LoadConfig};
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
        let key_tag = match (&self.hash_tag, self.tag_per_key) {
            (Some(_), true) => {
                return Err(ConfigError(
                    "--hash-tag and --tag-per-key exclude each other".into(),
                ))
            }
            (Some(t), false) => KeyTag::Shared(t.clone()),
            (None, true) => KeyTag::PerKey,
            (None, false) => KeyTag::None,
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
        let Command::Load(a) = cli.command;
        a.to_config().map_err(|e| e.to_string())
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
        ] {
            assert!(load(args).is_err(), "{args:?} accepted");
        }
    }
}
