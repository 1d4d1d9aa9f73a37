//! What every scenario shares: options, ports, directories, the plan, and the helper that
//! runs one load and records it.

use super::model::{RunResult, ScenarioResult};
use super::plan::Plan;
use super::servers::{Leasekv, LeasekvSpec, Ports};
use crate::config::{KeyTag, LoadConfig};
use crate::run_load;
use std::path::PathBuf;

pub struct Ctx {
    pub plan: Plan,
    pub ports: Ports,
    /// Scratch root (data directories, logs); removed at the end.
    pub scratch: PathBuf,
    /// Report directory.
    pub out: PathBuf,
    pub leasekv_bin: PathBuf,
    pub redis_bin: Option<PathBuf>,
    pub etcd_bin: Option<PathBuf>,
    pub server_cores: Vec<usize>,
    pub server_spin_us: u64,
    pub load_cpus: Option<Vec<usize>>,
    pub load_threads: usize,
    pub max_generator_lag_us: u64,
    pub max_generator_cpu: f64,
    /// Scratch directories handed out so far (each server gets a fresh one).
    pub dirs: usize,
}

impl Ctx {
    /// A fresh scratch directory.
    pub fn fresh_dir(&mut self, what: &str) -> Result<PathBuf, String> {
        self.dirs += 1;
        let d = self.scratch.join(format!("{:02}-{what}", self.dirs));
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(d)
    }

    pub fn leasekv_spec(&self, nodes: usize, read_mode: &'static str) -> LeasekvSpec {
        LeasekvSpec {
            bin: self.leasekv_bin.clone(),
            nodes,
            cores: self.server_cores.clone(),
            read_mode,
            spin_us: self.server_spin_us,
        }
    }

    pub fn start_leasekv(
        &mut self,
        nodes: usize,
        read_mode: &'static str,
    ) -> Result<Leasekv, String> {
        let spec = self.leasekv_spec(nodes, read_mode);
        let dir = self.fresh_dir(&format!("leasekv-{nodes}n-{read_mode}"))?;
        eprintln!(
            "  starting leasekv: {nodes} node(s), read_mode={read_mode}, cores {:?}",
            spec.cores
        );
        Leasekv::start(&spec, &mut self.ports, &dir)
    }

    /// The common load settings: open loop at `rate`, one request in flight per
    /// connection, the plan's keys, warm-up and duration.
    pub fn load(
        &self,
        targets: &[std::net::SocketAddr],
        rate: Option<f64>,
        read_ratio: f64,
    ) -> LoadConfig {
        LoadConfig {
            targets: targets.iter().map(|a| a.to_string()).collect(),
            connections: self.plan.connections.max(targets.len()),
            threads: self.load_threads,
            cpus: self.load_cpus.clone(),
            pipeline: 1,
            keys: self.plan.keys,
            read_ratio,
            warmup_secs: self.plan.warmup_secs,
            duration_secs: self.plan.duration_secs,
            rate,
            timeout_ms: 2000,
            max_generator_lag_us: self.max_generator_lag_us,
            max_generator_cpu: self.max_generator_cpu,
            key_tag: KeyTag::None,
            ..LoadConfig::default()
        }
    }

    /// Runs `cfg`, records it in `sc` as `name`, with the leasekv lease counters' change
    /// during the run when `lk` is given.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        sc: &mut ScenarioResult,
        name: &str,
        system: &str,
        variant: &str,
        op: &str,
        cfg: &LoadConfig,
        lk: Option<&Leasekv>,
    ) -> Result<(), String> {
        let before = lk.map(|l| l.counters()).transpose()?;
        let rate = cfg
            .rate
            .map_or("closed loop".to_string(), |r| format!("{r:.0}/s"));
        eprintln!("  [s{}] {name}: {op} at {rate} ...", sc.id);
        let report = run_load(cfg).map_err(|e| format!("{name}: {e}"))?;
        let counters = match (lk, before) {
            (Some(l), Some(b)) => Some(l.counters()?.minus(&b)),
            _ => None,
        };
        let l = &report.latency.all;
        eprintln!(
            "      achieved {:.0}/s  p50 {:.0} us  p99 {:.0} us  p99.9 {:.0} us  max {:.0} us  errors {}{}",
            report.achieved_rate,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            report.errors_total,
            if report.valid { "" } else { "  INVALID" }
        );
        sc.runs.push(RunResult {
            name: name.to_string(),
            system: system.to_string(),
            variant: variant.to_string(),
            op: op.to_string(),
            counters,
            report,
        });
        Ok(())
    }

    /// Path of a plot in the report directory, and its name relative to it.
    pub fn plot_path(&self, sc: &ScenarioResult, name: &str) -> (PathBuf, String) {
        let file = format!("s{}-{name}.svg", sc.id);
        (self.out.join(&file), file)
    }
}

/// Formats a rate for run names: `1000/s`, `10k/s`.
pub fn rate_name(r: f64) -> String {
    if r >= 10_000.0 && (r % 1000.0).abs() < 1e-9 {
        format!("{:.0}k/s", r / 1000.0)
    } else {
        format!("{r:.0}/s")
    }
}
