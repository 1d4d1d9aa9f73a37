//! `run_load`: one glommio executor per worker thread, every connection a task, a common
//! start instant for all workers, measurements merged at the end.

use crate::config::{ConfigError, Distribution, KeyTag, LoadConfig};
use crate::conn::{self, Clock, Connection, Timeline, Wire, Workload};
use crate::coreprobe;
use crate::keys::{connection_tag, KeyChooser, KeyFormat, ZipfianParams};
use crate::report::{build_report, CoreProbe, LoadReport, WorkerReport};
use crate::rng::Rng;
use crate::schedule::{OpenLoopSchedule, Pacer};
use crate::stats::Stats;
use crate::sysstat;
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Locked io_uring buffer memory per executor: small, so several workers fit in the
/// default 8 MiB memlock limit without CAP_IPC_LOCK (executors x 3 rings x this).
const IO_MEMORY: usize = 512 << 10;
/// Time between the last worker being ready and the run's start.
const START_MARGIN: Duration = Duration::from_millis(20);
/// Pipeline depth used by `--preload` when the run's own depth is smaller.
const PRELOAD_DEPTH: usize = 64;
/// Shortest wait for a preload batch's replies: preloading is set-up, not measurement,
/// and many connections' batches of durable writes can queue behind each other.
const PRELOAD_MIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot resolve target {target}: {reason}")]
    Resolve { target: String, reason: String },
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: SocketAddr, reason: String },
    #[error("preload failed on a connection to {target}: {reason}")]
    Preload { target: SocketAddr, reason: String },
    #[error("cannot choose own-core/other-core keys on a connection to {target}: {reason}")]
    CoreProbe { target: SocketAddr, reason: String },
    #[error("worker {worker}: {reason}")]
    Worker { worker: usize, reason: String },
    #[error("aborted because another worker failed")]
    Aborted,
    #[error("cannot merge measurements: {0}")]
    Merge(String),
}

/// All workers connect (and preload) first, then start together: the run's t0 is taken
/// once, after the last worker is ready, and shared.
struct StartGate {
    total: usize,
    arrived: AtomicUsize,
    failed: AtomicBool,
    /// The common start, and the wall-clock time it corresponds to.
    t0: OnceLock<(Instant, SystemTime)>,
}

impl StartGate {
    /// Blocks the calling thread until every worker arrived. `None` if any failed. Called
    /// by a worker before it runs any task, so blocking its executor thread is harmless.
    fn arrive(&self, ok: bool) -> Option<(Instant, SystemTime)> {
        if !ok {
            self.failed.store(true, Ordering::SeqCst);
        }
        self.arrived.fetch_add(1, Ordering::SeqCst);
        while self.arrived.load(Ordering::SeqCst) < self.total {
            if self.failed.load(Ordering::SeqCst) {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if self.failed.load(Ordering::SeqCst) {
            return None;
        }
        // t0 lies a little ahead so every worker, however late it wakes from the wait
        // above, is sleeping until t0 (not already behind) when the run starts.
        Some(*self.t0.get_or_init(|| {
            (
                Instant::now() + START_MARGIN,
                SystemTime::now() + START_MARGIN,
            )
        }))
    }
}

/// Arrives as failed when dropped unused (worker error or panic), so no worker waits forever.
struct GateTicket {
    gate: Arc<StartGate>,
    used: bool,
}

impl GateTicket {
    fn arrive(mut self, ok: bool) -> Option<(Instant, SystemTime)> {
        self.used = true;
        self.gate.arrive(ok)
    }
}

impl Drop for GateTicket {
    fn drop(&mut self) {
        if !self.used {
            self.gate.arrive(false);
        }
    }
}

/// What one worker thread runs.
struct WorkerPlan {
    worker: usize,
    cpu: Option<usize>,
    /// (global connection id, server address)
    conns: Vec<(usize, SocketAddr)>,
}

struct Shared {
    config: LoadConfig,
    zipf: Option<Arc<ZipfianParams>>,
    gate: Arc<StartGate>,
    timeline: Timeline,
    series_secs: usize,
}

impl Shared {
    fn new_stats(&self) -> Stats {
        Stats::with_interval(
            self.timeline.window_start_ns,
            self.timeline.end_ns,
            self.series_secs,
            self.config.series_interval_ms * 1_000_000,
        )
    }
}

struct WorkerOutput {
    stats: Stats,
    report: WorkerReport,
    probes: Vec<CoreProbe>,
    t0_wall: SystemTime,
}

fn resolve(target: &str) -> Result<SocketAddr, RunError> {
    let err = |reason: String| RunError::Resolve {
        target: target.to_string(),
        reason,
    };
    target
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address".into()))
}

fn secs_to_ns(s: f64) -> u64 {
    // Validated finite, non-negative and at most a week: fits easily.
    (s * 1e9) as u64
}

/// Runs a load test as configured and returns what it measured. Blocks the calling thread.
pub fn run_load(config: &LoadConfig) -> Result<LoadReport, RunError> {
    config.validate()?;
    let addrs = config
        .targets
        .iter()
        .map(|t| resolve(t))
        .collect::<Result<Vec<_>, _>>()?;
    let zipf = match config.distribution {
        Distribution::Uniform => None,
        Distribution::Zipfian { theta } => Some(Arc::new(ZipfianParams::new(config.keys, theta)?)),
    };
    let window_start_ns = secs_to_ns(config.warmup_secs);
    let end_ns = window_start_ns + secs_to_ns(config.duration_secs);
    let drain_deadline_ns = end_ns + config.timeout_ms * 1_000_000;
    let timeline = Timeline {
        window_start_ns,
        end_ns,
        drain_deadline_ns,
    };
    let shared = Arc::new(Shared {
        config: config.clone(),
        zipf,
        gate: Arc::new(StartGate {
            total: config.threads,
            arrived: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            t0: OnceLock::new(),
        }),
        timeline,
        series_secs: (drain_deadline_ns / 1_000_000_000) as usize + 2,
    });

    let mut handles = Vec::new();
    for w in 0..config.threads {
        let plan = WorkerPlan {
            worker: w,
            cpu: config.cpu_of_worker(w),
            conns: (w..config.connections)
                .step_by(config.threads)
                .map(|c| (c, addrs[c % addrs.len()]))
                .collect(),
        };
        let placement = plan.cpu.map_or(Placement::Unbound, Placement::Fixed);
        let ticket = GateTicket {
            gate: shared.gate.clone(),
            used: false,
        };
        let sh = shared.clone();
        let spawned = LocalExecutorBuilder::new(placement)
            .name(&format!("bench-w{w}"))
            .io_memory(IO_MEMORY)
            .spawn(move || worker_main(sh, plan, ticket));
        match spawned {
            Ok(h) => handles.push((w, Handle::Running(h))),
            // The ticket moved into the failed spawn was dropped: the gate knows.
            Err(e) => handles.push((w, Handle::Failed(e.to_string()))),
        }
    }

    let mut outputs = Vec::new();
    let mut first_error: Option<RunError> = None;
    for (w, h) in handles {
        let result = match h {
            Handle::Running(h) => h.join().map_err(|e| RunError::Worker {
                worker: w,
                reason: e.to_string(),
            }),
            Handle::Failed(reason) => Err(RunError::Worker { worker: w, reason }),
        };
        match result.and_then(|r| r) {
            Ok(out) => outputs.push(out),
            // Keep the root cause, not the echoes in other workers.
            Err(e) => match (&first_error, &e) {
                (None, _) | (Some(RunError::Aborted), _) => first_error = Some(e),
                _ => {}
            },
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let mut merged = shared.new_stats();
    let mut workers = Vec::new();
    let mut probes = Vec::new();
    let mut t0_wall = None;
    for out in outputs {
        merged
            .merge(&out.stats)
            .map_err(|e| RunError::Merge(format!("{e:?}")))?;
        workers.push(out.report);
        probes.extend(out.probes);
        t0_wall.get_or_insert(out.t0_wall);
    }
    probes.sort_by_key(|p| p.connection);
    let mut report = build_report(config, &merged, workers, config.duration_secs);
    report.core_probes = probes;
    report.started_unix_ms = t0_wall
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Ok(report)
}

enum Handle {
    Running(glommio::ExecutorJoinHandle<Result<WorkerOutput, RunError>>),
    Failed(String),
}

/// Keys connection `c` preloads, as (first, step): every target gets every key once, split
/// over the connections to that target (connection `c` goes to target `c % targets` and is
/// the `c / targets`-th connection there).
fn preload_share(c: usize, connections: usize, targets: usize) -> (u64, usize) {
    let targets = targets.max(1);
    let t = c % targets;
    // Connections c' < connections with c' % targets == t.
    let peers = connections.saturating_sub(t).div_ceil(targets);
    ((c / targets) as u64, peers.max(1))
}

async fn worker_main(
    shared: Arc<Shared>,
    plan: WorkerPlan,
    ticket: GateTicket,
) -> Result<WorkerOutput, RunError> {
    let config = &shared.config;
    let mut streams = Vec::with_capacity(plan.conns.len());
    for &(_, addr) in &plan.conns {
        match conn::connect(addr, config.timeout()).await {
            Ok(s) => streams.push(s),
            Err(e) => {
                ticket.arrive(false);
                return Err(RunError::Connect {
                    target: addr,
                    reason: e.to_string(),
                });
            }
        }
    }
    // Each connection's key format: per-target and per-core tags differ by connection.
    let mut probes = Vec::new();
    let mut formats = Vec::with_capacity(streams.len());
    for (stream, &(c, addr)) in streams.iter_mut().zip(&plan.conns) {
        let core_tag = if config.key_tag.needs_core_probe() {
            let own = config.key_tag == KeyTag::OwnCore;
            match coreprobe::core_tag(stream, own, config.timeout()).await {
                Ok((core, tag)) => {
                    probes.push(CoreProbe {
                        connection: c,
                        core,
                        tag: tag.clone(),
                    });
                    Some(tag)
                }
                Err(reason) => {
                    ticket.arrive(false);
                    return Err(RunError::CoreProbe {
                        target: addr,
                        reason,
                    });
                }
            }
        } else {
            None
        };
        let tag = connection_tag(
            &config.key_tag,
            c % config.targets.len(),
            core_tag.as_deref(),
        );
        formats.push(Rc::new(KeyFormat::new(&config.key_prefix, tag)));
    }
    let value: Rc<[u8]> = vec![b'x'; config.value_size].into();

    if config.preload {
        let mut tasks = Vec::new();
        for ((mut stream, &(c, addr)), format) in streams.into_iter().zip(&plan.conns).zip(&formats)
        {
            let (format, value) = (format.clone(), value.clone());
            let wire = Wire::new(config.protocol, addr, &value);
            let (first, step) = preload_share(c, config.connections, config.targets.len());
            let keys = config.keys;
            let depth = config.pipeline.max(PRELOAD_DEPTH);
            let timeout = config.timeout().max(PRELOAD_MIN_TIMEOUT);
            tasks.push(glommio::spawn_local(async move {
                let mine = (first..keys).step_by(step);
                let r =
                    conn::preload(&mut stream, mine, &format, &value, &wire, depth, timeout).await;
                (stream, addr, r)
            }));
        }
        streams = Vec::new();
        let mut failure = None;
        for t in tasks {
            let (stream, addr, r) = t.await;
            match r {
                Ok(_) => streams.push(stream),
                Err(reason) => {
                    failure = Some(RunError::Preload {
                        target: addr,
                        reason,
                    })
                }
            }
        }
        if let Some(e) = failure {
            ticket.arrive(false);
            return Err(e);
        }
    }

    let Some((t0, t0_wall)) = ticket.arrive(true) else {
        return Err(RunError::Aborted);
    };
    let clock = Clock::new(t0);
    glommio::timer::sleep(t0.saturating_duration_since(Instant::now())).await;
    let tl = shared.timeline;
    let stats = Rc::new(RefCell::new(shared.new_stats()));
    let spun = Rc::new(Cell::new(0u64));
    let cpu0 = sysstat::thread_cpu_time();
    let rq0 = sysstat::thread_run_queue_wait();
    let wall0 = Instant::now();

    let mut tasks = Vec::new();
    for ((stream, &(c, addr)), format) in streams.into_iter().zip(&plan.conns).zip(formats) {
        // Two independent streams per connection: key choice and read/write mix.
        let key_rng = Rng::for_stream(config.seed, (c as u64) << 1);
        let mix_rng = Rng::for_stream(config.seed, ((c as u64) << 1) | 1);
        let keys = match &shared.zipf {
            Some(p) => KeyChooser::zipfian(p.clone(), key_rng),
            None => KeyChooser::uniform(config.keys, key_rng),
        };
        let workload = Workload::new(
            keys,
            format,
            value.clone(),
            config.read_ratio,
            mix_rng,
            Wire::new(config.protocol, addr, &value),
        );
        let pacer = config.rate.and_then(|rate| {
            OpenLoopSchedule::new(rate, config.connections, c).map(|s| Pacer::new(s, tl.end_ns))
        });
        let connection = Connection::new(
            addr,
            stream,
            config.pipeline,
            config.timeout(),
            tl,
            pacer,
            workload,
            clock,
            stats.clone(),
            Duration::from_micros(config.spin_us),
            spun.clone(),
        );
        tasks.push(glommio::spawn_local(connection.run()));
    }
    for t in tasks {
        t.await;
    }

    let wall = wall0.elapsed().as_secs_f64().max(1e-9);
    let frac = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / wall),
        _ => None,
    };
    let spun = Duration::from_nanos(spun.get());
    let cpu = match (cpu0, sysstat::thread_cpu_time()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let report = WorkerReport {
        worker: plan.worker,
        cpu: plan.cpu,
        connections: plan.conns.len(),
        // Deliberate polling (--spin-us) is not work the generator could not keep up with.
        cpu_busy: cpu.map_or(0.0, |c| c.saturating_sub(spun).as_secs_f64() / wall),
        spin: spun.as_secs_f64() / wall,
        run_queue_wait: frac(rq0, sysstat::thread_run_queue_wait()),
    };
    let stats = stats.borrow().clone();
    Ok(WorkerOutput {
        stats,
        report,
        probes,
        t0_wall,
    })
}

#[cfg(test)]
mod tests {
    use super::preload_share;

    #[test]
    fn preload_covers_every_key_once_per_target() {
        for (connections, targets) in [(5, 2), (4, 4), (7, 3), (1, 1), (6, 1)] {
            let keys = 50u64;
            let mut seen = vec![vec![0u32; keys as usize]; targets];
            for c in 0..connections {
                let (first, step) = preload_share(c, connections, targets);
                for k in (first..keys).step_by(step) {
                    seen[c % targets][k as usize] += 1;
                }
            }
            assert!(
                seen.iter().flatten().all(|&n| n == 1),
                "{connections} conns, {targets} targets: {seen:?}"
            );
        }
    }
}
