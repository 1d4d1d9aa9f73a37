//! Node-to-node transport of one core: carries opaque byte frames between core `c` of this
//! node and core `c` of every peer node. Shared-nothing: each core starts its own
//! [`Transport`] on its glommio executor (everything is `Rc`, no locks, no `Send`).
//!
//! **Lanes.** Two independent lanes per peer, each with its own outbound queue, writer task
//! and TCP connection: [`Lane::Control`] (heartbeats and their responses, ReadIndex, votes,
//! small forwards) and [`Lane::Bulk`] (appends, snapshot chunks). A control frame is never
//! queued behind bulk data, neither in our queues nor in a socket buffer. On the receiving
//! side each lane has its own bounded inbound queue and [`Transport::recv`] serves Control
//! first (with a small fairness valve so Bulk is never starved).
//!
//! **Connections.** One outbound connection per (peer, lane), opened lazily on the first
//! [`Transport::send`] and kept. Its writer task drains the queue in batches (many frames per
//! write syscall, `TCP_NODELAY`). Inbound connections are served by one reader task each;
//! a newer connection from the same (peer, lane) replaces the older one, so a peer that
//! restarted never leaves a stale reader behind.
//!
//! **Handshake.** The connector sends `magic "LKVT" | version | lane | core index | node id
//! | cluster id` (see [`wire`]); the acceptor checks the version, the cluster id, the core
//! index and that the node is one of its peers (and not itself), replies with a status byte
//! and, on a mismatch, logs a warning and closes. Frames are only sent after an OK reply.
//!
//! **Framing.** `[u32 big-endian length][length bytes]`, length <= `max_frame_bytes`; a
//! longer length prefix closes the connection (logged). Nothing is interpreted inside.
//!
//! **Backoff.** A failed connect, handshake or write closes the connection; the writer
//! waits an exponentially growing, jittered delay in `backoff_min..=backoff_max` and
//! reconnects (whether or not frames are queued: the connection is kept once opened).
//! The delay starts over at `backoff_min` only after a connection that lasted at least
//! `backoff_max`, so a peer that accepts and drops at once is not hammered. Frames keep
//! queueing meanwhile.
//!
//! **Bounds.** Outbound: per (peer, lane) at most `max_queue_bytes` of queued wire bytes
//! (frame + 4), or a single frame if it alone is larger; beyond that `send` returns
//! [`SendError::Full`] and the frame is dropped and counted (Raft retransmits). The writer
//! additionally holds one batch of at most [`BATCH_BYTES`] (or one frame) in flight.
//! Inbound: at most `inbound_capacity` frames per lane; when a lane is full its readers stop
//! reading their sockets (TCP backpressure), nothing is dropped. Deadlines: connect and
//! handshake `connect_timeout`; a write, or a read inside a partly received frame, that makes
//! no progress for `write_stall_timeout` closes the connection. Waiting for the next frame
//! or for queue room has no deadline (idle is legal; shutdown, removal and replacement end
//! those waits).
//!
//! **Fault hook.** [`Transport::set_blocked`] drops all traffic to and from one node
//! (frames refused at `send`, queued frames discarded by the writer, received frames
//! discarded by the reader and by `recv`), counted as `dropped_blocked_*`; connections stay
//! up so healing is immediate. Only a batch already being written when the block starts can
//! still arrive. [`Transport::set_isolated`] does the same for every node.

mod backoff;
mod inbound;
mod inbox;
mod outbound;
pub mod wire;

#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::task::JoinHandle;

use crate::sync::LocalNotify;
use inbox::Inbox;

/// Frames per lane the inbound queue holds by default.
pub const DEFAULT_INBOUND_CAPACITY: usize = 4096;
/// Default [`TransportConfig::write_stall_timeout`].
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most queued bytes a writer takes out of its queue for one batch (at least one frame).
pub const BATCH_BYTES: usize = 1 << 20;

/// Which connection (and queue) a frame travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Latency-critical, small: heartbeats and responses, ReadIndex, votes, small forwards.
    Control = 0,
    /// Throughput: appends, snapshot chunks.
    Bulk = 1,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Control, Lane::Bulk];

    pub fn from_u8(b: u8) -> Option<Lane> {
        match b {
            0 => Some(Lane::Control),
            1 => Some(Lane::Bulk),
            _ => None,
        }
    }
}

/// Settings of one core's transport; `Config::transport_for_core` builds it from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Sent in every handshake; peers with another id are refused. At most 255 bytes.
    pub cluster_id: String,
    /// This node's id (>= 1).
    pub node_id: u64,
    /// This core's index (<= 65535); peers must connect from the same index.
    pub core: usize,
    /// This core's Raft address (port 0 picks a free port, see [`Transport::local_addr`]).
    pub listen: SocketAddr,
    /// Outbound queue bound per peer per lane, bytes (>= 1).
    pub max_queue_bytes: usize,
    /// Largest frame, bytes (<= u32::MAX).
    pub max_frame_bytes: usize,
    /// Deadline of a connect and of the handshake (> 0).
    pub connect_timeout: Duration,
    /// Reconnect delays, `0 < backoff_min <= backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Inbound queue bound, frames per lane (>= 1).
    pub inbound_capacity: usize,
    /// A write (or a read inside a partial frame) without progress this long closes the
    /// connection (> 0).
    pub write_stall_timeout: Duration,
}

impl TransportConfig {
    fn check(&self) -> io::Result<()> {
        let bad = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()));
        if self.cluster_id.is_empty() || self.cluster_id.len() > 255 {
            return bad("transport: cluster_id must be 1..=255 bytes");
        }
        if self.node_id == 0 {
            return bad("transport: node_id must be >= 1");
        }
        if u16::try_from(self.core).is_err() {
            return bad("transport: core index must be <= 65535");
        }
        if self.max_queue_bytes == 0 || self.inbound_capacity == 0 {
            return bad("transport: max_queue_bytes and inbound_capacity must be >= 1");
        }
        if self.max_frame_bytes as u64 > u64::from(u32::MAX) {
            return bad("transport: max_frame_bytes must fit the 32-bit length prefix");
        }
        if self.connect_timeout.is_zero()
            || self.write_stall_timeout.is_zero()
            || self.backoff_min.is_zero()
            || self.backoff_min > self.backoff_max
        {
            return bad("transport: timeouts must be > 0 and backoff_min <= backoff_max");
        }
        Ok(())
    }
}

/// Why [`Transport::send`] did not queue a frame (the frame is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the peer's queue for this lane is full")]
    Full,
    #[error("not a peer of this node")]
    UnknownPeer,
    #[error("frame larger than max_frame_bytes")]
    TooLarge,
    #[error("transport is shut down")]
    Shutdown,
}

/// A received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub from: u64,
    pub lane: Lane,
    pub frame: Bytes,
}

/// Counters of one (peer, lane). "Out" drops happen on the way to the peer, "in" drops on
/// the way from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Our outbound connection has completed its handshake.
    pub connected: bool,
    /// The peer has an inbound connection to us on this lane.
    pub inbound_connected: bool,
    pub queued_frames: usize,
    pub queued_bytes: usize,
    /// Frames written to the socket.
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Batches written; each carries one or more frames (see [`BATCH_BYTES`]).
    pub batches: u64,
    /// Frames received and queued for `recv`.
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Refused by `send` because the queue was at its bound.
    pub dropped_full: u64,
    /// Discarded by the fault hook before sending.
    pub dropped_blocked_out: u64,
    /// Discarded by the fault hook after receiving.
    pub dropped_blocked_in: u64,
    /// Dequeued into a batch whose write failed (some of them may have arrived).
    pub dropped_lost: u64,
    /// Successful handshakes.
    pub connects: u64,
    /// Successful handshakes after the first.
    pub reconnects: u64,
    /// Failed connects and handshakes (including refusals by the peer).
    pub connect_errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    pub node: u64,
    pub addr: SocketAddr,
    pub blocked: bool,
    pub control: LaneStats,
    pub bulk: LaneStats,
}

impl PeerStats {
    pub fn lane(&self, lane: Lane) -> &LaneStats {
        match lane {
            Lane::Control => &self.control,
            Lane::Bulk => &self.bulk,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportStats {
    pub node_id: u64,
    pub core: usize,
    pub listen: SocketAddr,
    pub isolated: bool,
    /// By ascending node id.
    pub peers: Vec<PeerStats>,
    /// Inbound connections whose handshake we accepted.
    pub accepted: u64,
    /// Inbound handshakes we refused (wrong cluster, core, node, version, garbage).
    pub refused: u64,
    /// Frames waiting for `recv`, indexed by `Lane as usize`.
    pub inbound_queued: [usize; 2],
}

impl TransportStats {
    pub fn peer(&self, node: u64) -> Option<&PeerStats> {
        self.peers.iter().find(|p| p.node == node)
    }
}

/// The transport of one core. Dropping the last `Rc` shuts it down.
pub struct Transport {
    shared: Rc<Shared>,
}

/// State shared by the handle and the tasks. Invariant: no `RefCell` borrow is held across
/// an `.await`.
struct Shared {
    cfg: TransportConfig,
    local_addr: SocketAddr,
    peers: RefCell<HashMap<u64, Peer>>,
    blocked: RefCell<HashSet<u64>>,
    isolated: Cell<bool>,
    /// Fault injection: drop every inbound frame (outbound traffic still flows).
    deaf: Cell<bool>,
    closed: Cell<bool>,
    inbox: Inbox,
    /// Accepted connections (reader tasks) by connection id.
    conns: RefCell<HashMap<u64, Conn>>,
    next_conn: Cell<u64>,
    accept_task: RefCell<Option<JoinHandle<()>>>,
    accepted: Cell<u64>,
    refused: Cell<u64>,
    refusal_logged: Cell<Option<std::time::Instant>>,
}

struct Peer {
    addr: SocketAddr,
    lanes: [OutLane; 2],
}

#[derive(Default)]
struct OutLane {
    /// Invariant: `queued_bytes` = sum of (frame + 4) over `queue`, and <=
    /// `max(max_queue_bytes, one frame)`.
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    /// Signalled when `queue` becomes non-empty.
    work: Rc<LocalNotify>,
    writer: Option<JoinHandle<()>>,
    /// Bumped whenever the writer is replaced; a writer only updates `connected` for its own
    /// generation.
    gen: u64,
    stats: LaneStats,
}

struct Conn {
    /// (from, lane) once the handshake succeeded.
    key: Option<(u64, Lane)>,
    /// None only while the task's first poll runs inside `spawn_local`.
    task: Option<JoinHandle<()>>,
}

impl Transport {
    /// Binds the listener (SO_REUSEPORT, as every glommio listener) and spawns the accept
    /// task on the current glommio executor. `peers` maps node id to that peer's address
    /// for this same core index. Must be called on a glommio executor.
    pub fn start(
        cfg: TransportConfig,
        peers: HashMap<u64, SocketAddr>,
    ) -> io::Result<Rc<Transport>> {
        cfg.check()?;
        let listener = glommio::net::TcpListener::bind(cfg.listen)?;
        let local_addr = listener.local_addr()?;
        let shared = Rc::new(Shared {
            inbox: Inbox::new(cfg.inbound_capacity),
            cfg,
            local_addr,
            peers: RefCell::default(),
            blocked: RefCell::default(),
            isolated: Cell::new(false),
            deaf: Cell::new(false),
            closed: Cell::new(false),
            conns: RefCell::default(),
            next_conn: Cell::new(0),
            accept_task: RefCell::default(),
            accepted: Cell::new(0),
            refused: Cell::new(0),
            refusal_logged: Cell::new(None),
        });
        let t = Rc::new(Transport { shared });
        for (node, addr) in peers {
            t.set_peer(node, Some(addr));
        }
        let task = glommio::spawn_local(inbound::accept_loop(t.shared.clone(), listener)).detach();
        *t.shared.accept_task.borrow_mut() = Some(task);
        tracing::debug!(node = t.shared.cfg.node_id, core = t.shared.cfg.core, addr = %local_addr, "transport listening");
        Ok(t)
    }

    /// The bound listen address (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Queues `frame` for `to` on `lane`. Never blocks or awaits. While `to` is blocked (or
    /// this node isolated) the frame is dropped and Ok is returned, as a lossy network would.
    pub fn send(&self, to: u64, lane: Lane, frame: Bytes) -> Result<(), SendError> {
        let s = &self.shared;
        if s.closed.get() {
            return Err(SendError::Shutdown);
        }
        if frame.len() > s.cfg.max_frame_bytes {
            return Err(SendError::TooLarge);
        }
        let dropped = s.drops(to);
        let mut peers = s.peers.borrow_mut();
        let peer = peers.get_mut(&to).ok_or(SendError::UnknownPeer)?;
        let out = &mut peer.lanes[lane as usize];
        if dropped {
            out.stats.dropped_blocked_out += 1;
            return Ok(());
        }
        let size = frame.len() + wire::FRAME_HEADER;
        // A frame larger than the whole bound still goes through an empty queue, or it could
        // never be sent at all.
        if out.queued_bytes > 0 && out.queued_bytes + size > s.cfg.max_queue_bytes {
            out.stats.dropped_full += 1;
            return Err(SendError::Full);
        }
        out.queue.push_back(frame);
        out.queued_bytes += size;
        out.work.notify();
        let spawn = out.writer.is_none();
        drop(peers);
        if spawn {
            s.ensure_writer(to, lane);
        }
        Ok(())
    }

    /// The next frame from any peer, Control before Bulk. Frames from a node blocked since
    /// they arrived are discarded here. After [`Transport::shutdown`] it waits forever.
    pub async fn recv(&self) -> Inbound {
        loop {
            let item = self.shared.inbox.pop().await;
            if self.shared.accept_received(&item) {
                return item;
            }
        }
    }

    pub fn try_recv(&self) -> Option<Inbound> {
        while let Some(item) = self.shared.inbox.try_pop() {
            if self.shared.accept_received(&item) {
                return Some(item);
            }
        }
        None
    }

    /// Adds a peer, changes its address (its connections are closed and reopened, its queues
    /// kept), or removes it with `None` (its connections both ways are closed, its queues
    /// dropped, and it can no longer connect to us). Our own id is ignored.
    pub fn set_peer(&self, node: u64, addr: Option<SocketAddr>) {
        let s = &self.shared;
        if node == s.cfg.node_id {
            tracing::warn!(node, "transport: ignoring set_peer for this node's own id");
            return;
        }
        let mut peers = s.peers.borrow_mut();
        // Tasks are cancelled and spawned only after the borrow ends: glommio polls a new
        // task right away.
        let mut cancel = Vec::new();
        // Lanes that had a connection get a new writer at the new address.
        let mut respawn = Vec::new();
        match (addr, peers.get_mut(&node)) {
            (None, _) => {
                if let Some(mut p) = peers.remove(&node) {
                    cancel.extend(p.lanes.iter_mut().filter_map(|out| out.writer.take()));
                }
            }
            (Some(addr), Some(p)) if p.addr == addr => {}
            (Some(addr), Some(p)) => {
                p.addr = addr;
                for (out, lane) in p.lanes.iter_mut().zip(Lane::ALL) {
                    out.gen += 1;
                    out.stats.connected = false;
                    if let Some(w) = out.writer.take() {
                        cancel.push(w);
                        respawn.push(lane);
                    }
                }
            }
            (Some(addr), None) => {
                let p = Peer {
                    addr,
                    lanes: Default::default(),
                };
                peers.insert(node, p);
            }
        }
        drop(peers);
        for task in cancel {
            task.cancel();
        }
        if addr.is_none() {
            s.close_conns(|key| key.is_some_and(|(from, _)| from == node));
        }
        for lane in respawn {
            s.ensure_writer(node, lane);
        }
    }

    /// Fault injection: while `blocked`, drop all traffic to and from `node`.
    pub fn set_blocked(&self, node: u64, blocked: bool) {
        let mut b = self.shared.blocked.borrow_mut();
        if blocked {
            b.insert(node);
        } else {
            b.remove(&node);
        }
        drop(b);
        if blocked {
            self.shared.discard_queued(node);
        }
    }

    /// Fault injection: while `isolated`, drop all traffic to and from every node.
    pub fn set_isolated(&self, isolated: bool) {
        self.shared.isolated.set(isolated);
        if isolated {
            let nodes: Vec<u64> = self.shared.peers.borrow().keys().copied().collect();
            for n in nodes {
                self.shared.discard_queued(n);
            }
        }
    }

    /// Fault injection: while `deaf`, drop every frame received from any node (an asymmetric
    /// partition: this node still sends, but hears nothing).
    pub fn set_deaf(&self, deaf: bool) {
        self.shared.deaf.set(deaf);
    }

    pub fn stats(&self) -> TransportStats {
        let s = &self.shared;
        let conns = s.conns.borrow();
        let inbound = |node: u64, lane: Lane| conns.values().any(|c| c.key == Some((node, lane)));
        let blocked = s.blocked.borrow();
        let mut peers: Vec<PeerStats> = s
            .peers
            .borrow()
            .iter()
            .map(|(&node, p)| {
                let lane = |l: Lane| {
                    let out = &p.lanes[l as usize];
                    LaneStats {
                        inbound_connected: inbound(node, l),
                        queued_frames: out.queue.len(),
                        queued_bytes: out.queued_bytes,
                        ..out.stats.clone()
                    }
                };
                PeerStats {
                    node,
                    addr: p.addr,
                    blocked: blocked.contains(&node),
                    control: lane(Lane::Control),
                    bulk: lane(Lane::Bulk),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.node);
        TransportStats {
            node_id: s.cfg.node_id,
            core: s.cfg.core,
            listen: s.local_addr,
            isolated: s.isolated.get(),
            peers,
            accepted: s.accepted.get(),
            refused: s.refused.get(),
            inbound_queued: [s.inbox.len(Lane::Control), s.inbox.len(Lane::Bulk)],
        }
    }

    /// Closes the listener and every connection; all tasks end (when the executor next runs
    /// them). Queued frames are dropped; `send` then returns [`SendError::Shutdown`].
    /// Idempotent.
    pub fn shutdown(&self) {
        let s = &self.shared;
        if s.closed.replace(true) {
            return;
        }
        let accept = s.accept_task.borrow_mut().take();
        if let Some(t) = accept {
            t.cancel();
        }
        s.close_conns(|_| true);
        let mut cancel = Vec::new();
        for p in s.peers.borrow_mut().values_mut() {
            for out in &mut p.lanes {
                out.gen += 1;
                out.stats.connected = false;
                cancel.extend(out.writer.take());
                out.queue.clear();
                out.queued_bytes = 0;
            }
        }
        for task in cancel {
            task.cancel();
        }
        s.inbox.clear();
        tracing::debug!(
            node = s.cfg.node_id,
            core = s.cfg.core,
            "transport shut down"
        );
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    /// True if traffic with `node` is currently discarded by the fault hook.
    fn drops(&self, node: u64) -> bool {
        self.isolated.get() || self.blocked.borrow().contains(&node)
    }

    /// True if frames received from `node` are currently discarded by the fault hooks.
    fn drops_in(&self, node: u64) -> bool {
        self.deaf.get() || self.drops(node)
    }

    /// Starts the writer of (peer, lane) if it has none. Must not be
    /// called with `peers` borrowed: glommio polls a new task before `spawn_local` returns.
    fn ensure_writer(self: &Rc<Self>, peer: u64, lane: Lane) {
        let gen = {
            let peers = self.peers.borrow();
            match peers.get(&peer) {
                Some(p) if p.lanes[lane as usize].writer.is_none() => p.lanes[lane as usize].gen,
                _ => return,
            }
        };
        if self.closed.get() {
            return;
        }
        let task = glommio::spawn_local(outbound::writer(self.clone(), peer, lane, gen)).detach();
        let mut peers = self.peers.borrow_mut();
        match peers.get_mut(&peer).map(|p| &mut p.lanes[lane as usize]) {
            Some(out) if out.gen == gen && out.writer.is_none() => out.writer = Some(task),
            _ => {
                drop(peers);
                task.cancel();
            }
        }
    }

    /// For frames leaving the inbox: false (and counted) if the fault hook drops them now.
    fn accept_received(&self, item: &Inbound) -> bool {
        if !self.drops_in(item.from) {
            return true;
        }
        if let Some(p) = self.peers.borrow_mut().get_mut(&item.from) {
            p.lanes[item.lane as usize].stats.dropped_blocked_in += 1;
        }
        false
    }

    /// Drops everything queued for `node` (counted as blocked).
    fn discard_queued(&self, node: u64) {
        if let Some(p) = self.peers.borrow_mut().get_mut(&node) {
            for out in &mut p.lanes {
                out.stats.dropped_blocked_out += out.queue.len() as u64;
                out.queue.clear();
                out.queued_bytes = 0;
            }
        }
    }

    /// Cancels (closing their sockets) the accepted connections whose key matches.
    fn close_conns(&self, matches: impl Fn(Option<(u64, Lane)>) -> bool) {
        let mut conns = self.conns.borrow_mut();
        let ids: Vec<u64> = conns
            .iter()
            .filter(|(_, c)| matches(c.key))
            .map(|(&id, _)| id)
            .collect();
        let tasks: Vec<JoinHandle<()>> =
            ids.iter().filter_map(|id| conns.remove(id)?.task).collect();
        drop(conns);
        for t in tasks {
            t.cancel();
        }
    }
}
