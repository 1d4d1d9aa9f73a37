//! Per-core state. `Shared` is the only thing every core sees: immutable configuration and
//! routing, the inbox senders, and counters that INFO reads across cores. Everything else
//! (groups, waiters, clients) lives in `Core`, owned by one executor thread.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::sync::Semaphore;
use shards::{Reply, ShardGroup};

use crate::config::Config;
use crate::hop::InboxSender;
use crate::routing::Routing;
use crate::sync::{Latch, LocalNotify};

/// Counters of one core, readable by any core (INFO). Relaxed: they are statistics.
#[derive(Default)]
pub struct CoreStats {
    pub connected_clients: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub hops_sent: AtomicU64,
    pub hops_received: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub compactions: AtomicU64,
    pub expired_keys: AtomicU64,
    /// The `Shared::debug_isolation_epoch` this core's transport reflects.
    pub isolation_applied: AtomicU64,
}

/// What the owner core publishes about each group for INFO on any core.
#[derive(Default)]
pub struct GroupStats {
    pub keys: AtomicU64,
    pub expires: AtomicU64,
    pub term: AtomicU64,
    pub applied: AtomicU64,
    pub commit: AtomicU64,
    pub leader: AtomicBool,
    /// Node id of the group's current leader as known here (0 = unknown).
    pub leader_id: AtomicU64,
    /// Reads served locally (lease, or a one-voter group) / sent through ReadIndex.
    pub lease_hits: AtomicU64,
    pub lease_misses: AtomicU64,
    pub lease_remaining_ms: AtomicU64,
    pub lease_invalidations: AtomicU64,
    /// Lease invalidations by reason, indexed like `shards::lease::Invalidation::ALL`.
    pub lease_invalidations_by_reason: [AtomicU64; 6],
    /// Reads that failed (ReadIndex timeout, no leader, leadership lost meanwhile).
    pub read_errors: AtomicU64,
    /// ReadIndex rounds that completed, and their total wait in ns (mean latency).
    pub readindex_done: AtomicU64,
    pub readindex_ns_total: AtomicU64,
    /// Times this node became or stopped being the group's leader.
    pub leader_changes: AtomicU64,
    /// Voters and member addresses (runtime membership), for CLUSTER SLOTS/NODES and MOVED.
    pub members: crate::clusterinfo::PublishedMembers,
}

pub struct Shared {
    pub config: Config,
    pub routing: Routing,
    /// Inbox of each core, indexed by core index.
    pub inboxes: Vec<InboxSender>,
    pub core_stats: Vec<CoreStats>,
    pub group_stats: Vec<GroupStats>,
    /// Node-wide client count, checked against `limits.max_clients` on accept.
    pub clients: AtomicUsize,
    pub next_client_id: AtomicU64,
    pub shutdown: AtomicBool,
    /// Fault injection (`LEASEKV.DEBUG ISOLATE`): drop all Raft traffic of this node.
    pub debug_isolated: AtomicBool,
    /// Fault injection (`LEASEKV.DEBUG ISOLATE in`): drop only the Raft traffic this node
    /// receives (it still sends), an asymmetric partition.
    pub debug_deaf: AtomicBool,
    /// Bumped on every isolation change; each core records the epoch it has applied.
    pub debug_isolation_epoch: AtomicU64,
    pub started: Instant,
    /// Identifies this process's proposals (see shards::GroupSpec::incarnation).
    pub incarnation: u64,
    /// Request latency histograms per (core, command family), for the metrics endpoint.
    pub latency: crate::metrics::Latency,
}

impl Shared {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.limits.request_timeout_ms)
    }

    /// Starts a graceful shutdown of every core.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for inbox in &self.inboxes {
            inbox.wake();
        }
    }
}

/// Requests waiting for a Raft outcome, keyed by (group, id).
#[derive(Default)]
pub struct Waiters {
    pub writes: HashMap<(u32, u64), oneshot::Sender<Reply>>,
    pub reads: HashMap<(u32, u64), oneshot::Sender<Result<(), Reply>>>,
    pub leader_ready: HashMap<u32, Vec<oneshot::Sender<()>>>,
}

/// A connected client, for CLIENT INFO / LIST.
pub struct ClientEntry {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: RefCell<Option<bytes::Bytes>>,
    pub connected: Instant,
    pub last_cmd: Cell<Instant>,
    pub resp: Cell<u8>,
}

pub struct Core {
    pub index: usize,
    pub cpu: usize,
    pub shared: std::sync::Arc<Shared>,
    /// The groups this core owns.
    pub groups: HashMap<u32, RefCell<ShardGroup>>,
    pub waiters: RefCell<Waiters>,
    /// Wakes the Raft driver: new proposals or reads to push through a Ready.
    pub driver_wake: LocalNotify,
    pub shutdown: Latch,
    /// Permits for in-flight hops towards each core (index = destination core).
    pub hop_permits: Vec<Rc<Semaphore>>,
    pub clients: RefCell<HashMap<u64, Rc<ClientEntry>>>,
    /// Transport and forwarding state; None for a single-node server.
    pub cluster: Option<crate::cluster::Cluster>,
}

impl Core {
    pub fn stats(&self) -> &CoreStats {
        &self.shared.core_stats[self.index]
    }

    pub fn group(&self, id: u32) -> Option<&RefCell<ShardGroup>> {
        self.groups.get(&id)
    }

    pub fn owns(&self, group: u32) -> bool {
        self.shared.routing.core_of_group(group) == self.index
    }
}
