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

use bytes::{BufMut, Bytes, BytesMut};
use futures_channel::oneshot;
use glommio::sync::Semaphore;
use protobuf::Message as _;
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
    /// Snapshots being streamed to peers, a few chunks per driver iteration.
    streams: RefCell<Vec<SnapshotStream>>,
    next_stream: Cell<u64>,
    /// Snapshots being received: (from, group) -> chunks so far.
    incoming: RefCell<HashMap<(u64, u32), Reassembly>>,
}

/// A snapshot on its way to a peer: `blob` = len:u32le + MsgSnapshot without data + data.
struct SnapshotStream {
    group: u32,
    to: u64,
    id: u64,
    blob: Bytes,
    sent: usize,
    seq: u32,
}

struct Reassembly {
    stream: u64,
    next_seq: u32,
    total: u64,
    buf: BytesMut,
}

/// Chunks one stream may send per driver iteration (the rest waits for the next one, so a
/// large snapshot never monopolises the core or the bulk queue).
const CHUNKS_PER_FLUSH: usize = 4;
/// Largest snapshot a node accepts (bounds reassembly memory).
const MAX_SNAPSHOT_BYTES: u64 = 16 << 30;

impl Cluster {
    pub fn new(transport: Rc<Transport>) -> Cluster {
        Cluster {
            transport,
            echo: RefCell::new(EchoBook::default()),
            outbox: RefCell::new(HashMap::new()),
            forwards: RefCell::new(HashMap::new()),
            next_forward: Cell::new(1),
            forward_permits: Rc::new(Semaphore::new(MAX_FORWARDS)),
            streams: RefCell::new(Vec::new()),
            next_stream: Cell::new(1),
            incoming: RefCell::new(HashMap::new()),
        }
    }

    /// Queues Raft messages of `group` for their destinations.
    pub fn queue_raft(&self, group: u32, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let echo = self.echo.borrow();
        let mut outbox = self.outbox.borrow_mut();
        for mut m in msgs {
            let lane = peer::lane_of(&m);
            if m.get_msg_type() == MessageType::MsgSnapshot {
                // Streamed in chunks by `flush`, never as one frame.
                let data = m.mut_snapshot().take_data();
                let header = m.write_to_bytes().unwrap_or_default();
                let mut blob = BytesMut::with_capacity(4 + header.len() + data.len());
                blob.put_u32_le(header.len() as u32);
                blob.put_slice(&header);
                blob.put_slice(&data);
                let id = self.next_stream.get();
                self.next_stream.set(id + 1);
                let mut streams = self.streams.borrow_mut();
                // A newer snapshot for the same peer and group replaces an unfinished one.
                streams.retain(|st| !(st.to == m.to && st.group == group));
                streams.push(SnapshotStream {
                    group,
                    to: m.to,
                    id,
                    blob: blob.freeze(),
                    sent: 0,
                    seq: 0,
                });
                continue;
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
        for ((to, lane), fb) in self.outbox.borrow_mut().iter_mut() {
            let Some(frame) = fb.finish(now) else {
                continue;
            };
            if let Err(e) = self.transport.send(*to, *lane, frame) {
                // Raft retries appends and heartbeats; forwards time out at their sender.
                if e != SendError::Full {
                    tracing::debug!(to, ?lane, error = %e, "frame not sent");
                }
            }
        }
        self.pump_streams(now)
    }

    /// Sends up to `CHUNKS_PER_FLUSH` chunks of every snapshot stream. A full bulk queue
    /// leaves the chunk for the next iteration (nothing is dropped mid-stream). Returns the
    /// streams that ended: finished (raft-rs resumes probing) or failed (it retries).
    fn pump_streams(&self, now: u64) -> Vec<(u32, u64, SnapshotStatus)> {
        let mut done = Vec::new();
        let mut streams = self.streams.borrow_mut();
        streams.retain_mut(|st| {
            for _ in 0..CHUNKS_PER_FLUSH {
                let end = (st.sent + peer::SNAPSHOT_CHUNK).min(st.blob.len());
                let chunk = peer::Chunk {
                    group: st.group,
                    stream: st.id,
                    seq: st.seq,
                    last: end == st.blob.len(),
                    total: st.blob.len() as u64,
                    data: st.blob.slice(st.sent..end),
                };
                let mut fb = FrameBuilder::default();
                fb.snapshot_chunk(&chunk);
                let Some(frame) = fb.finish(now) else { return true };
                match self.transport.send(st.to, Lane::Bulk, frame) {
                    Ok(()) => {
                        st.sent = end;
                        st.seq += 1;
                        if chunk.last {
                            done.push((st.group, st.to, SnapshotStatus::Finish));
                            return false;
                        }
                    }
                    Err(SendError::Full) => return true,
                    Err(e) => {
                        tracing::info!(to = st.to, group = st.group, error = %e, "snapshot stream aborted");
                        done.push((st.group, st.to, SnapshotStatus::Failure));
                        return false;
                    }
                }
            }
            true
        });
        done
    }

    /// Adds a received chunk; returns the complete MsgSnapshot once its last chunk is in.
    /// Out-of-order, oversized or orphan chunks drop the stream (the leader sends again).
    fn receive_chunk(&self, from: u64, c: peer::Chunk) -> Option<Message> {
        let key = (from, c.group);
        let mut incoming = self.incoming.borrow_mut();
        if c.seq == 0 {
            if c.total > MAX_SNAPSHOT_BYTES {
                tracing::warn!(
                    from,
                    group = c.group,
                    bytes = c.total,
                    "refusing an oversized snapshot"
                );
                return None;
            }
            incoming.insert(
                key,
                Reassembly {
                    stream: c.stream,
                    next_seq: 0,
                    total: c.total,
                    buf: BytesMut::with_capacity(c.total.min(64 << 20) as usize),
                },
            );
        }
        let r = incoming.get_mut(&key)?;
        if r.stream != c.stream
            || r.next_seq != c.seq
            || r.buf.len() as u64 + c.data.len() as u64 > r.total
        {
            incoming.remove(&key);
            return None;
        }
        r.buf.put_slice(&c.data);
        r.next_seq += 1;
        if !c.last {
            return None;
        }
        let mut blob = incoming.remove(&key)?.buf.freeze();
        if blob.len() < 4 {
            return None;
        }
        let hlen = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        if blob.len() < 4 + hlen {
            return None;
        }
        let header = blob.slice(4..4 + hlen);
        let data = blob.split_off(4 + hlen);
        let mut msg = Message::parse_from_bytes(&header).ok()?;
        msg.mut_snapshot().set_data(data);
        Some(msg)
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
        self.streams.borrow_mut().retain(|st| st.to != node);
        self.incoming
            .borrow_mut()
            .retain(|(from, _), _| *from != node);
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
                    echo_ns,
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
                    // One clock sample for the acknowledgement this may carry (lease renewal).
                    if let Err(e) = cell.borrow_mut().step(msg, echo_ns, peer::boottime_ns()) {
                        tracing::debug!(group, from = inbound.from, error = %e, "Raft step failed");
                    }
                }
                Item::SnapshotChunk(chunk) => {
                    let group = chunk.group;
                    let Some(msg) = cluster.receive_chunk(inbound.from, chunk) else {
                        continue;
                    };
                    if msg.from != inbound.from {
                        continue;
                    }
                    let Some(cell) = core.group(group) else {
                        continue;
                    };
                    cluster
                        .echo
                        .borrow_mut()
                        .heard(inbound.from, group, frame.sent_at_ns);
                    if let Err(e) = cell.borrow_mut().step(msg, 0, peer::boottime_ns()) {
                        tracing::debug!(group, from = inbound.from, error = %e, "Raft step of a snapshot failed");
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
