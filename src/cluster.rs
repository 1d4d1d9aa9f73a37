//! Per-core cluster plumbing: the outbox of frames to peers, the peer receive loop, and
//! forwarding of client requests to a shard group's leader.
//!
//! Everything here lives on one core and talks only to the same core index on other nodes.
//! Frames are built during a driver iteration (Raft messages) or by request tasks
//! (forwards, forward replies) and flushed by the driver at the end of each iteration, so
//! all messages of all groups to one peer and lane leave in one frame.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use glommio::sync::Semaphore;
use raft::eraftpb::{Message, MessageType};
use raft::SnapshotStatus;
use shards::wire::{self, Request};
use shards::Reply;

use crate::core::Core;
use crate::exec::{self, Issued};
use crate::peer::{self, EchoBook, FrameBuilder, Item};
use crate::sync::deadline;
use crate::transport::{Lane, SendError, Transport};

/// Forwarded requests one core may have in flight (to all leaders together).
const MAX_FORWARDS: u64 = 4096;
/// Forwards and replies larger than this ride the bulk lane, not ahead of heartbeats.
const CONTROL_LANE_MAX: usize = 16 * 1024;

/// An in-flight forward: (group, leader node it went to, waiter).
type PendingForward = (u32, u64, oneshot::Sender<Reply>);

pub struct Cluster {
    pub transport: Rc<Transport>,
    echo: RefCell<EchoBook>,
    outbox: RefCell<HashMap<(u64, Lane), FrameBuilder>>,
    forwards: RefCell<HashMap<u64, PendingForward>>,
    next_forward: Cell<u64>,
    forward_permits: Rc<Semaphore>,
    /// Snapshots queued for sending this iteration: (group, to), reported to raft-rs on flush.
    snapshots: RefCell<Vec<(u32, u64, Lane)>>,
}

impl Cluster {
    pub fn new(transport: Rc<Transport>) -> Cluster {
        Cluster {
            transport,
            echo: RefCell::new(EchoBook::default()),
            outbox: RefCell::new(HashMap::new()),
            forwards: RefCell::new(HashMap::new()),
            next_forward: Cell::new(1),
            forward_permits: Rc::new(Semaphore::new(MAX_FORWARDS)),
            snapshots: RefCell::new(Vec::new()),
        }
    }

    /// Queues Raft messages of `group` for their destinations.
    pub fn queue_raft(&self, group: u32, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let echo = self.echo.borrow();
        let mut outbox = self.outbox.borrow_mut();
        for m in msgs {
            let lane = peer::lane_of(&m);
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots.borrow_mut().push((group, m.to, lane));
            }
            outbox
                .entry((m.to, lane))
                .or_default()
                .raft(group, echo.echo(m.to, group), &m);
        }
    }

    /// Sends every queued frame. Returns the snapshot sends to report to raft-rs:
    /// (group, to, delivered to the transport queue).
    pub fn flush(&self) -> Vec<(u32, u64, SnapshotStatus)> {
        let Some(now) = peer::boottime_ns() else {
            tracing::error!("CLOCK_BOOTTIME unreadable; dropping outgoing frames");
            self.outbox.borrow_mut().clear();
            return Vec::new();
        };
        let mut failed: Vec<(u64, Lane)> = Vec::new();
        for ((to, lane), fb) in self.outbox.borrow_mut().iter_mut() {
            let Some(frame) = fb.finish(now) else {
                continue;
            };
            if let Err(e) = self.transport.send(*to, *lane, frame) {
                // Raft retries appends and heartbeats; forwards time out at their sender.
                if e != SendError::Full {
                    tracing::debug!(to, ?lane, error = %e, "frame not sent");
                }
                failed.push((*to, *lane));
            }
        }
        let snaps = std::mem::take(&mut *self.snapshots.borrow_mut());
        snaps
            .into_iter()
            .map(|(g, to, lane)| {
                let status = if failed.contains(&(to, lane)) {
                    SnapshotStatus::Failure
                } else {
                    // Queued: raft-rs goes back to probing; if the snapshot is lost on the
                    // way, the probe is rejected and a new snapshot is sent.
                    SnapshotStatus::Finish
                };
                (g, to, status)
            })
            .collect()
    }

    /// The leader of `group` is no longer `old`: requests forwarded to it fail now rather
    /// than at their deadline (it may be dead). Their outcome is unknown.
    pub fn leader_changed(&self, group: u32, old: u64) {
        let mut forwards = self.forwards.borrow_mut();
        let gone: Vec<u64> = forwards
            .iter()
            .filter(|(_, (g, l, _))| *g == group && *l == old)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some((_, _, tx)) = forwards.remove(&id) {
                let _ = tx.send(Reply::err(format!(
                    "TRYAGAIN the leader of shard group {group} changed while the request was forwarded to it; a write may have been applied"
                )));
            }
        }
    }

    /// A peer left the cluster: forget what we heard from it.
    pub fn forget(&self, node: u64) {
        self.echo.borrow_mut().forget(node);
        self.outbox.borrow_mut().retain(|(to, _), _| *to != node);
    }

    /// The frame builder for a forward or forward reply of `len` bytes to `to`: large ones
    /// ride the bulk lane, never ahead of heartbeats.
    fn builder_for(&self, to: u64, len: usize, add: impl FnOnce(&mut FrameBuilder)) {
        let lane = if len > CONTROL_LANE_MAX {
            Lane::Bulk
        } else {
            Lane::Control
        };
        add(self.outbox.borrow_mut().entry((to, lane)).or_default());
    }

    fn queue_forward(&self, to: u64, group: u32, id: u64, request: &[u8]) {
        self.builder_for(to, request.len(), |fb| fb.forward(group, id, request));
    }

    fn queue_forward_reply(&self, to: u64, id: u64, reply: &[u8]) {
        self.builder_for(to, reply.len(), |fb| fb.forward_reply(id, reply));
    }
}

/// Sends a client request to the node leading `group` and waits for its reply.
pub fn forward(core: &Rc<Core>, leader: u64, group: u32, request: Request) -> Issued {
    let Some(cluster) = core.cluster.as_ref() else {
        return Issued::Done(Reply::err("ERR forwarding outside a cluster"));
    };
    let Ok(permit) = cluster.forward_permits.try_acquire_static_permit(1) else {
        return Issued::Done(Reply::err(
            "TRYAGAIN too many requests are being forwarded to shard leaders; retry",
        ));
    };
    let id = cluster.next_forward.get();
    cluster.next_forward.set(id + 1);
    let mut bytes = Vec::new();
    wire::encode_request(&request, &mut bytes);
    cluster.queue_forward(leader, group, id, &bytes);
    let (tx, rx) = oneshot::channel();
    cluster
        .forwards
        .borrow_mut()
        .insert(id, (group, leader, tx));
    core.driver_wake.notify();
    let core = core.clone();
    Issued::Later(Box::pin(async move {
        let _permit = permit;
        // The leader enforces the request deadline; this one covers a lost frame or peer.
        let timeout = core.shared.request_timeout() + Duration::from_millis(500);
        match deadline(timeout, rx).await {
            Some(Ok(reply)) => reply,
            Some(Err(_)) => Reply::err("TRYAGAIN server is shutting down"),
            None => {
                if let Some(c) = core.cluster.as_ref() {
                    c.forwards.borrow_mut().remove(&id);
                }
                Reply::err(format!(
                    "TRYAGAIN no reply from the leader of shard group {group} (node {leader}) within {} ms; a write may still be applied",
                    timeout.as_millis()
                ))
            }
        }
    }))
}

/// Receives frames from peers: steps Raft messages, serves forwarded requests, completes
/// forwards. Runs for the life of the core.
pub async fn peer_loop(core: Rc<Core>) {
    let Some(cluster) = core.cluster.as_ref() else {
        return;
    };
    let transport = cluster.transport.clone();
    loop {
        let inbound = transport.recv().await;
        let frame = match peer::decode(&inbound.frame) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(from = inbound.from, error = %e, "dropping malformed peer frame");
                continue;
            }
        };
        for item in frame.items {
            match item {
                Item::Raft {
                    group,
                    echo_ns: _,
                    msg,
                } => {
                    if msg.from != inbound.from {
                        tracing::warn!(
                            from = inbound.from,
                            claimed = msg.from,
                            "dropping Raft message with a forged sender"
                        );
                        continue;
                    }
                    let Some(cell) = core.group(group) else {
                        tracing::debug!(
                            group,
                            from = inbound.from,
                            "Raft message for a group not hosted here"
                        );
                        continue;
                    };
                    // Only messages that reset a follower's election timer may anchor a
                    // lease (docs/lease.md): record their frame's send time for the echo.
                    if matches!(
                        msg.get_msg_type(),
                        MessageType::MsgAppend
                            | MessageType::MsgHeartbeat
                            | MessageType::MsgSnapshot
                    ) {
                        cluster
                            .echo
                            .borrow_mut()
                            .heard(inbound.from, group, frame.sent_at_ns);
                    }
                    if let Err(e) = cell.borrow_mut().step(msg) {
                        tracing::debug!(group, from = inbound.from, error = %e, "Raft step failed");
                    }
                }
                Item::Forward { group, id, request } => {
                    serve_forward(&core, inbound.from, group, id, &request)
                }
                Item::ForwardReply { id, reply } => {
                    let reply = wire::decode_reply(&reply).unwrap_or_else(|e| {
                        Reply::err(format!("ERR undecodable reply from the leader: {e}"))
                    });
                    if let Some((_, _, tx)) = cluster.forwards.borrow_mut().remove(&id) {
                        let _ = tx.send(reply);
                    }
                }
            }
        }
        core.driver_wake.notify();
    }
}

/// Runs a request forwarded by `from` on this node (which should lead `group`) and queues
/// the reply. It is never forwarded again: if leadership moved meanwhile, the client gets a
/// retryable error from this node instead of a forwarding loop.
fn serve_forward(core: &Rc<Core>, from: u64, group: u32, id: u64, request: &Bytes) {
    let issued = match wire::decode_request(request) {
        Ok(req) => exec::leader_request(core, group, req),
        Err(e) => Issued::Done(Reply::err(format!(
            "ERR undecodable forwarded request: {e}"
        ))),
    };
    let reply_to = move |core: &Rc<Core>, reply: Reply| {
        let mut bytes = Vec::new();
        wire::encode_reply(&reply, &mut bytes);
        if let Some(c) = core.cluster.as_ref() {
            c.queue_forward_reply(from, id, &bytes);
        }
        core.driver_wake.notify();
    };
    match issued {
        Issued::Done(reply) => reply_to(core, reply),
        Issued::Later(fut) => {
            let core = core.clone();
            glommio::spawn_local(async move {
                let reply = fut.await;
                reply_to(&core, reply);
            })
            .detach();
        }
    }
}

/// Reports snapshot sends back to their groups.
pub fn report_snapshots(core: &Core, reports: Vec<(u32, u64, SnapshotStatus)>) {
    for (g, to, status) in reports {
        if let Some(cell) = core.group(g) {
            cell.borrow_mut().report_snapshot(to, status);
        }
    }
}
