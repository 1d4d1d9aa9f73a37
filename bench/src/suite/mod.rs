//! `leasekv-bench run`: the scenario runner. It starts the servers each scenario needs on
//! loopback (fresh data directories, free ports), runs the load in-process, stops the
//! servers, and writes `report.json`, `report.md` and SVG plots under
//! `<out>/<UTC timestamp>/`. See docs/benchmarks.md.
//!
//! Every child server is stopped by pid at the end of its scenario, killed on Ctrl-C or
//! SIGTERM, dies with the runner (PR_SET_PDEATHSIG), and a watchdog bounds the whole run.

mod basic;
pub mod client;
mod ctx;
mod failover;
pub mod machine;
pub mod model;
pub mod plan;
pub mod plots;
mod procs;
mod render;
pub mod servers;
mod sweep;

use ctx::Ctx;
use model::{ScenarioResult, Settings, SuiteReport};
use plan::Plan;
use servers::{version_of, which, Ports};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors starting with this mark a scenario as skipped (a reference is missing), not failed.
pub const SKIP_PREFIX: &str = "SKIPPED";
pub const SKIP_REDIS: &str = "SKIPPED: redis-server is not on PATH; install it (Debian/Ubuntu: \
     apt-get install -y redis-server) to measure the reference";
pub const SKIP_ETCD: &str = "SKIPPED: etcd is not on PATH; install it (Debian/Ubuntu: \
     apt-get install -y etcd-server etcd-client) to measure the reference";

/// Scenario ids and titles.
pub const SCENARIOS: [(u32, &str); 6] = [
    (
        1,
        "GET on a 3-node cluster: read_mode=lease vs read_mode=readindex",
    ),
    (2, "GET/SET: leasekv (1 node) vs redis-server"),
    (
        3,
        "Replicated durable SET and linearizable GET: leasekv (3 nodes) vs etcd (3 members)",
    ),
    (
        4,
        "Cross-core hop: keys of the connection's core vs the other core",
    ),
    (
        5,
        "Read-mostly load + write-conflict storm + leader failover",
    ),
    (6, "Latency vs offered load, up to 1.2x saturation"),
];

/// Default `[runtime] spin_before_park_us` of the benchmarked nodes: 0, because on this
/// suite's usual machine (2 CPUs for 3 nodes x 2 executors + generator) spinning executors
/// steal the CPU the others need (see docs/benchmarks.md for the measurement).
pub const DEFAULT_SERVER_SPIN_US: u64 = 0;

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub scenarios: Vec<u32>,
    pub smoke: bool,
    /// Reports go to `<out>/<timestamp>/`.
    pub out: PathBuf,
    /// leasekv binary (default: `leasekv` next to this executable).
    pub leasekv: Option<PathBuf>,
    /// First port to try (default: chosen from the pid, in 20000..30000).
    pub base_port: Option<u16>,
    /// CPUs of every leasekv node's executors (default: all allowed CPUs).
    pub server_cores: Option<Vec<usize>>,
    pub server_spin_us: u64,
    pub load_cpus: Option<Vec<usize>>,
    pub load_threads: usize,
    pub max_generator_lag_us: u64,
    pub max_generator_cpu: f64,
    /// Backstop for the whole run.
    pub time_limit: Duration,
}

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect();
            if !cpus.is_empty() {
                return cpus;
            }
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// "3.4.23" out of `etcd --version`'s first line.
pub fn machine_version_short(bin: &Path) -> String {
    let v = version_of(bin, "--version");
    v.split_whitespace().last().unwrap_or("").to_string()
}

fn find_leasekv(o: &SuiteOptions) -> Result<PathBuf, String> {
    let p = match &o.leasekv {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this executable: {e}"))?
            .with_file_name("leasekv"),
    };
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "leasekv binary not found at {} (build it: cargo build --release -p leasekv, or \
             pass --leasekv PATH)",
            p.display()
        ))
    }
}

fn loud(msg: &str) {
    let bar = "!".repeat(78);
    eprintln!("{bar}\n!! {msg}\n{bar}");
}

/// Runs the selected scenarios and writes the report. Returns the report directory and
/// the report; Err only when nothing could be run or written.
pub fn run_suite(
    o: &SuiteOptions,
    command_line: Vec<String>,
) -> Result<(PathBuf, SuiteReport), String> {
    procs::install_signal_handler()?;
    procs::start_watchdog(o.time_limit);
    let leasekv_bin = find_leasekv(o)?;
    let redis_bin = which("redis-server");
    let etcd_bin = which("etcd");
    let (started_utc, stamp) = machine::utc_now();
    let out = o.out.join(&stamp);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let scratch =
        std::env::temp_dir().join(format!("leasekv-bench-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    procs::register_dir(&scratch);
    let base = o
        .base_port
        .unwrap_or(20_000 + (std::process::id() % 1000) as u16 * 10);
    let plan = if o.smoke { Plan::smoke() } else { Plan::full() };
    let server_cores = o.server_cores.clone().unwrap_or_else(allowed_cpus);
    let mut ctx = Ctx {
        plan: plan.clone(),
        ports: Ports::new(base, 5000),
        scratch: scratch.clone(),
        out: out.clone(),
        leasekv_bin: leasekv_bin.clone(),
        redis_bin: redis_bin.clone(),
        etcd_bin: etcd_bin.clone(),
        server_cores: server_cores.clone(),
        server_spin_us: o.server_spin_us,
        load_cpus: o.load_cpus.clone(),
        load_threads: o.load_threads.max(1),
        max_generator_lag_us: o.max_generator_lag_us,
        max_generator_cpu: o.max_generator_cpu,
        dirs: 0,
    };
    let mut report = SuiteReport {
        tool: concat!("leasekv-bench ", env!("CARGO_PKG_VERSION")).to_string(),
        started_utc,
        finished_utc: String::new(),
        wall_secs: 0.0,
        command_line,
        machine: machine::machine(),
        versions: machine::versions(&leasekv_bin, redis_bin.as_deref(), etcd_bin.as_deref()),
        settings: Settings {
            smoke: o.smoke,
            server_cores,
            server_spin_us: o.server_spin_us,
            load_cpus: o.load_cpus.clone(),
            load_threads: ctx.load_threads,
            warmup_secs: plan.warmup_secs,
            duration_secs: plan.duration_secs,
            max_generator_lag_us: o.max_generator_lag_us,
            max_generator_cpu: o.max_generator_cpu,
        },
        scenarios: Vec::new(),
    };
    if redis_bin.is_none() {
        loud(SKIP_REDIS);
    }
    if etcd_bin.is_none() {
        loud(SKIP_ETCD);
    }
    let t0 = Instant::now();
    for &id in &o.scenarios {
        let Some(&(_, title)) = SCENARIOS.iter().find(|(i, _)| *i == id) else {
            return Err(format!("unknown scenario {id} (1..=6)"));
        };
        eprintln!(
            "== scenario {id}: {title} (load average {})",
            machine::loadavg()
        );
        let mut sc = ScenarioResult::new(id, title);
        sc.fact(
            "machine load average at start (1, 5, 15 min)",
            machine::loadavg(),
        );
        let t = Instant::now();
        let result = match id {
            1 => basic::s1(&mut ctx, &mut sc),
            2 => basic::s2(&mut ctx, &mut sc),
            3 => basic::s3(&mut ctx, &mut sc),
            4 => basic::s4(&mut ctx, &mut sc),
            5 => failover::s5(&mut ctx, &mut sc),
            _ => sweep::s6(&mut ctx, &mut sc),
        };
        sc.secs = t.elapsed().as_secs_f64();
        if let Err(e) = result {
            if e.starts_with(SKIP_PREFIX) {
                loud(&format!("scenario {id} {e}"));
                sc.status = "skipped".into();
            } else {
                loud(&format!("scenario {id} FAILED: {e}"));
                sc.status = "failed".into();
            }
            sc.detail = Some(e);
        }
        let invalid = sc.runs.iter().filter(|r| !r.report.valid).count();
        if invalid > 0 {
            sc.notes.push(format!(
                "{invalid} of {} runs were flagged invalid by the generator's self-check \
                 (see the valid column)",
                sc.runs.len()
            ));
        }
        report.scenarios.push(sc);
        // Partial reports survive a later crash or Ctrl-C.
        write_report(&out, &mut report, t0)?;
    }
    write_report(&out, &mut report, t0)?;
    if report.scenarios.iter().all(|s| s.status != "failed") {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        eprintln!("server logs kept in {}", scratch.display());
    }
    Ok((out, report))
}

fn write_report(out: &Path, report: &mut SuiteReport, t0: Instant) -> Result<(), String> {
    report.finished_utc = machine::utc_now().0;
    report.wall_secs = t0.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(out.join("report.json"), json).map_err(|e| format!("report.json: {e}"))?;
    std::fs::write(out.join("report.md"), render::markdown(report))
        .map_err(|e| format!("report.md: {e}"))
}
