//! Process bring-up and shutdown: one pinned glommio executor per configured core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use shards::{GroupSpec, Member, Recovered, ShardGroup};

use crate::cluster::{self, Cluster};
use crate::config::Config;
use crate::core::{Core, CoreStats, GroupStats, Shared, Waiters};
use crate::driver::{Driver, Stop};
use crate::hop::{self, InboxReceiver, PER_SENDER};
use crate::routing::Routing;
use crate::sync::{deadline, unless, Latch, LocalNotify};
use crate::transport::{Transport, TransportConfig};
use crate::wal::Wal;
use crate::{conn, datadir, exec, memlock};

/// Runs the server until SIGINT/SIGTERM. Err is a start-up or fatal error (exit 1).
pub fn run(config: Config) -> Result<(), String> {
    let ncores = config.cores.len();
    let placement = config.placement.clone();
    if config.is_cluster() && (config.replication as usize) < config.nodes.len() {
        return Err(format!(
            "replication = {} with {} nodes: every node must host every shard group in this version; \
             set replication >= the number of [[nodes]]",
            config.replication,
            config.nodes.len()
        ));
    }
    let data = datadir::open(
        &config.data_dir,
        &config.cluster_id,
        config.node_id,
        config.groups,
        ncores,
    )?;
    probe_ports(&config)?;
    let io_memory = memlock::io_memory_per_executor(ncores)?;
    let routing = Routing::new(config.groups, &placement);

    let mut receivers = Vec::with_capacity(ncores);
    let mut senders = Vec::with_capacity(ncores);
    for _ in 0..ncores {
        let (tx, rx) = hop::inbox(ncores.saturating_sub(1));
        senders.push(tx);
        receivers.push(rx);
    }
    let incarnation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    let shared = Arc::new(Shared {
        routing,
        inboxes: senders,
        core_stats: (0..ncores).map(|_| CoreStats::default()).collect(),
        group_stats: (0..config.groups).map(|_| GroupStats::default()).collect(),
        clients: AtomicUsize::new(0),
        next_client_id: AtomicU64::new(1),
        shutdown: AtomicBool::new(false),
        debug_isolated: AtomicBool::new(false),
        debug_deaf: AtomicBool::new(false),
        debug_isolation_epoch: AtomicU64::new(0),
        started: Instant::now(),
        incarnation,
        latency: crate::metrics::Latency::new(ncores),
        config,
    });
    spawn_signal_thread(shared.clone())?;

    let (started_tx, started_rx) = mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::with_capacity(ncores);
    for (index, rx) in receivers.into_iter().enumerate() {
        let cpu = shared.config.cores[index];
        let shared = shared.clone();
        let started = started_tx.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("leasekv-core{index}"))
            .io_memory(io_memory)
            // Spinning before parking makes cross-core hops ~12us instead of ~50us, at
            // the price of CPU after activity (`[runtime] spin_before_park_us`).
            .spin_before_park(shared.config.runtime.spin_before_park())
            .spawn(move || async move { core_main(index, cpu, shared, rx, started).await })
            .map_err(|e| format!("cannot start executor for core {index} (cpu {cpu}): {e}"))?;
        handles.push(handle);
    }
    drop(started_tx);

    let mut startup_error = None;
    for _ in 0..ncores {
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                startup_error.get_or_insert(e);
            }
            Err(_) => {
                startup_error.get_or_insert("a core stopped during start-up".to_string());
                break;
            }
        }
    }
    if startup_error.is_some() {
        shared.begin_shutdown();
    } else {
        if let Some(rule) = shared.config.unsafe_disable_lease_rule {
            tracing::warn!(
                rule = rule.number(),
                "UNSAFE: lease rule {} is switched off (unsafe_disable_lease_rule): reads may be \
                 stale. For fault-injection tests only; never run this in production",
                rule.number()
            );
        }
        tracing::info!(
            listen = %shared.config.listen_addr(),
            data_dir = %data.path.display(),
            cores = ?shared.config.cores,
            groups = shared.config.groups,
            "ready"
        );
    }

    let mut fatal = startup_error;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                fatal.get_or_insert(e);
            }
            Err(e) => {
                fatal.get_or_insert(format!("core {i} failed: {e}"));
            }
        }
    }
    match fatal {
        None => {
            tracing::info!("shut down cleanly");
            Ok(())
        }
        Some(e) => Err(e),
    }
}

/// glommio sets SO_REUSEPORT on every listener, so binding a port another process
/// already listens on would silently *share* it. Ask whether anything listens there first,
/// by connecting: a plain bind would be refused for a minute after a restart by TIME_WAIT
/// leftovers of our own earlier connections (glommio does not set SO_REUSEADDR), while a
/// connect only succeeds against a live listener.
fn probe_ports(config: &Config) -> Result<(), String> {
    let mut addrs = vec![("client", config.listen_addr())];
    if let Some(m) = config.metrics_addr {
        addrs.push(("metrics", m));
    }
    if let Some(me) = config.node(config.node_id).filter(|_| config.is_cluster()) {
        addrs.extend((0..config.cores.len()).map(|c| ("Raft", me.raft_addr(c))));
    }
    for (what, addr) in addrs {
        let mut target = addr;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        // A crashed process's io_uring is torn down asynchronously after it is reaped, so
        // its listening sockets may answer for a moment: only a listener that persists
        // means another live process holds the port.
        let until = Instant::now() + Duration::from_secs(3);
        while std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            if Instant::now() >= until {
                return Err(format!(
                    "cannot listen on {what} address {addr}: Address already in use (another process is listening there)"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn spawn_signal_thread(shared: Arc<Shared>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("leasekv-signals".into())
        .spawn(move || {
            let mut seen = false;
            for sig in signals.forever() {
                if seen {
                    tracing::warn!(signal = sig, "second signal: exiting immediately");
                    std::process::exit(1);
                }
                seen = true;
                tracing::info!(signal = sig, "shutting down: finishing in-flight requests");
                shared.begin_shutdown();
            }
        })
        .map_err(|e| format!("cannot start signal thread: {e}"))?;
    Ok(())
}

/// Start-up, serving and shutdown of one core.
async fn core_main(
    index: usize,
    cpu: usize,
    shared: Arc<Shared>,
    inbox: InboxReceiver,
    started: mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let (core, driver, listener) = match start_core(index, cpu, shared.clone()).await {
        Ok(parts) => parts,
        Err(e) => {
            let _ = started.send(Err(e));
            return Ok(()); // reported through `started`
        }
    };
    let _ = started.send(Ok(()));

    let driver_task = glommio::spawn_local(driver.run());
    glommio::spawn_local(inbox_loop(core.clone(), inbox)).detach();
    if let (0, Some(addr)) = (index, shared.config.metrics_addr) {
        crate::metrics::spawn(core.clone(), addr);
    }
    if core.cluster.is_some() {
        glommio::spawn_local(cluster::peer_loop(core.clone())).detach();
    }
    accept_loop(&core, listener).await;

    // Shutdown: no new clients; let connections finish their in-flight batch.
    let grace = shared.request_timeout() + Duration::from_secs(1);
    let begin = Instant::now();
    while !core.clients.borrow().is_empty() && begin.elapsed() < grace {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    core.driver_wake.notify();
    let stopped = deadline(grace, driver_task).await;
    if let Some(c) = core.cluster.as_ref() {
        c.transport.shutdown();
    }
    match stopped {
        Some(Stop::Shutdown) => Ok(()),
        Some(Stop::Fatal(e)) => Err(e),
        None => Err(format!(
            "core {index}: Raft driver did not stop within {grace:?}"
        )),
    }
}

async fn start_core(
    index: usize,
    cpu: usize,
    shared: Arc<Shared>,
) -> Result<(Rc<Core>, Driver, TcpListener), String> {
    let dir = shared.config.data_dir.join(format!("core-{index}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (wal, mut recovery) = Wal::open(&dir)
        .await
        .map_err(|e| format!("core {index}: cannot open WAL in {}: {e}", dir.display()))?;
    if let Some(repair) = &recovery.repaired_tail {
        tracing::warn!(
            core = index,
            ?repair,
            "WAL tail was torn or corrupt and has been truncated"
        );
    }
    let mut groups = HashMap::new();
    let mut wal = wal;
    for &g in shared.routing.groups_on_core(index) {
        let rec = recovery.groups.remove(&g).unwrap_or_default();
        let fresh = rec.snapshot.is_none() && rec.hard_state.is_none() && rec.entries.is_empty();
        let cfg = &shared.config;
        let bootstrap_voters = if cfg.join {
            Vec::new() // learns its configuration from the leader's snapshot
        } else if cfg.is_cluster() {
            cfg.group_voters(g)
        } else {
            vec![cfg.node_id]
        };
        let bootstrap_members = cfg
            .nodes
            .iter()
            .filter(|n| !cfg.join || n.id != cfg.node_id)
            .map(|n| Member {
                id: n.id,
                raft: n.raft.to_string(),
                client: n.client.to_string(),
            })
            .collect();
        let spec = GroupSpec {
            group: g,
            node_id: shared.config.node_id,
            bootstrap_voters,
            bootstrap_members,
            lease_ns: match cfg.read_mode {
                crate::config::ReadMode::Lease => cfg.raft.lease_ns(),
                crate::config::ReadMode::ReadIndex => 0,
            },
            election_ticks: shared.config.raft.election_ticks,
            heartbeat_ticks: shared.config.raft.heartbeat_ticks,
            incarnation: shared.incarnation,
        };
        let recovered = Recovered {
            snapshot: rec.snapshot,
            hard_state: rec.hard_state,
            entries: rec.entries,
        };
        let mut group = ShardGroup::new(spec, recovered)?;
        // Validation allows this only with debug_commands (fault tests); warned at start.
        group.set_unsafe_lease_rule(cfg.unsafe_disable_lease_rule);
        let base = group.base_snapshot();
        if fresh && base.get_metadata().index > 0 {
            wal.install_snapshot(g, &base).await.map_err(|e| {
                format!("core {index}: persisting group {g}'s bootstrap state: {e}")
            })?;
        }
        if group.voters() == [shared.config.node_id] {
            // A one-voter group is its own quorum: elect now rather than after a timeout.
            group.campaign()?;
        }
        groups.insert(g, RefCell::new(group));
    }
    if let Some(stray) = recovery.groups.keys().next() {
        return Err(format!(
            "core {index}: WAL in {} holds group {stray}, which this configuration places elsewhere",
            dir.display()
        ));
    }
    if wal.has_pending() {
        wal.sync()
            .await
            .map_err(|e| format!("core {index}: WAL sync at start-up: {e}"))?;
    }
    let addr = shared.config.listen_addr();
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let ncores = shared.config.cores.len();
    let cluster = if shared.config.is_cluster() {
        Some(Cluster::new(start_transport(&shared, index)?))
    } else {
        None
    };
    let core = Rc::new(Core {
        index,
        cpu,
        groups,
        waiters: RefCell::new(Waiters::default()),
        driver_wake: LocalNotify::default(),
        shutdown: Latch::default(),
        hop_permits: (0..ncores)
            .map(|_| Rc::new(Semaphore::new(PER_SENDER as u64)))
            .collect(),
        clients: RefCell::new(HashMap::new()),
        cluster,
        shared,
    });
    let driver = Driver::new(core.clone(), wal);
    Ok((core, driver, listener))
}

/// Starts this core's Raft transport: it listens on the node's Raft port + core index and
/// talks to the same core index of every peer.
fn start_transport(shared: &Shared, index: usize) -> Result<Rc<Transport>, String> {
    let cfg = &shared.config;
    let me = cfg
        .node(cfg.node_id)
        .ok_or_else(|| format!("node_id {} is not in [[nodes]]", cfg.node_id))?;
    let peers = cfg
        .peers()
        .iter()
        .map(|p| (p.id, p.raft_addr(index)))
        .collect();
    let tcfg = TransportConfig {
        cluster_id: cfg.cluster_id.clone(),
        node_id: cfg.node_id,
        core: index,
        listen: me.raft_addr(index),
        max_queue_bytes: cfg.transport.max_queue_bytes,
        max_frame_bytes: cfg.transport.max_frame_bytes,
        connect_timeout: cfg.transport.connect_timeout(),
        backoff_min: cfg.transport.backoff_min(),
        backoff_max: cfg.transport.backoff_max(),
        inbound_capacity: 4096,
        write_stall_timeout: Duration::from_secs(10),
    };
    let addr = tcfg.listen;
    Transport::start(tcfg, peers)
        .map_err(|e| format!("core {index}: cannot start Raft transport on {addr}: {e}"))
}

async fn accept_loop(core: &Rc<Core>, listener: TcpListener) {
    let shared = core.shared.clone();
    let max = shared.config.limits.max_clients;
    while let Some(res) = unless(&core.shutdown, listener.accept()).await {
        let stream = match res {
            Ok(s) => s,
            Err(e) => {
                // e.g. EMFILE: back off briefly instead of spinning on the error.
                tracing::warn!(core = core.index, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let stats = core.stats();
        stats.total_connections.fetch_add(1, Ordering::Relaxed);
        if shared.clients.fetch_add(1, Ordering::AcqRel) >= max {
            shared.clients.fetch_sub(1, Ordering::AcqRel);
            stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                core = core.index,
                max,
                "max number of clients reached; rejecting"
            );
            let mut stream = stream;
            let _ = deadline(
                Duration::from_millis(100),
                futures_lite::AsyncWriteExt::write_all(
                    &mut stream,
                    b"-ERR max number of clients reached\r\n",
                ),
            )
            .await;
            continue;
        }
        stats.connected_clients.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let c = core.clone();
        glommio::spawn_local(async move {
            conn::serve(c.clone(), stream, id).await;
            c.shared.clients.fetch_sub(1, Ordering::AcqRel);
            c.stats().connected_clients.fetch_sub(1, Ordering::Relaxed);
        })
        .detach();
    }
}

/// Serves hops from other cores and turns the process-wide shutdown flag into this core's
/// shutdown latch (the signal thread wakes every inbox).
async fn inbox_loop(core: Rc<Core>, inbox: InboxReceiver) {
    loop {
        let hop = std::future::poll_fn(|cx| {
            if let Some(h) = inbox.try_recv() {
                return std::task::Poll::Ready(h);
            }
            inbox.register(cx.waker());
            if core.shared.shutdown.load(Ordering::SeqCst) && !core.shutdown.is_set() {
                core.shutdown.set();
                core.driver_wake.notify();
            }
            match inbox.try_recv() {
                Some(h) => std::task::Poll::Ready(h),
                None => std::task::Poll::Pending,
            }
        })
        .await;
        core.stats().hops_received.fetch_add(1, Ordering::Relaxed);
        match exec::local_request(&core, hop.group, hop.request) {
            exec::Issued::Done(reply) => {
                let _ = hop.reply.send(reply);
            }
            exec::Issued::Later(fut) => {
                let reply_to = hop.reply;
                glommio::spawn_local(async move {
                    let _ = reply_to.send(fut.await);
                })
                .detach();
            }
        }
    }
}
