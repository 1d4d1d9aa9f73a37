//! Executing keyspace commands: route each key to its shard group, run it on the owner
//! core (inline when that is this core, over a hop otherwise) and reassemble replies.
//!
//! Issuing is split from waiting: `issue_*` performs the ordering-relevant step right away
//! (propose into the Raft log, send the hop, or read the applied state) and returns an
//! [`Issued`] that only waits. A connection can therefore issue a pipeline of writes in order
//! and wait for all of them together, and one WAL fsync covers the whole pipeline.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use shards::{LogCommand, ReadGate, ReadOp, Reply, WriteOp};

use crate::clock::now_ms;
use crate::cluster;
use crate::command::Command;
use crate::config::Redirect;
use crate::core::Core;
use crate::hop::Hop;
use crate::routing::key_slot;
use crate::sync::deadline;
use shards::wire::Request;
use shards::{MembershipChange, ShardGroup};
use std::cell::RefCell;

pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A command whose ordering step is done; the reply may still be on its way.
pub enum Issued {
    Done(Reply),
    Later(LocalFuture<Reply>),
}

impl Issued {
    pub async fn resolve(self) -> Reply {
        match self {
            Issued::Done(r) => r,
            Issued::Later(f) => f.await,
        }
    }
}

fn timeout_error(what: &str, after: Duration) -> Reply {
    Reply::err(format!(
        "TRYAGAIN {what} did not complete within {} ms",
        after.as_millis()
    ))
}

fn not_leader(group: u32, leader: u64) -> Reply {
    let leader = match leader {
        0 => "unknown".to_string(),
        id => format!("node {id}"),
    };
    Reply::err(format!(
        "TRYAGAIN shard group {group} is not led by this node (leader: {leader})"
    ))
}

/// Counts a read served from the lease (hit) or sent through ReadIndex (miss).
fn lease_outcome(core: &Core, group: u32, hit: bool) {
    if let Some(s) = core.shared.group_stats.get(group as usize) {
        let c = if hit { &s.lease_hits } else { &s.lease_misses };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn transferring(group: u32) -> Reply {
    Reply::err(format!(
        "TRYAGAIN shard group {group} is transferring leadership; retry"
    ))
}

fn shutting_down() -> Reply {
    Reply::err("TRYAGAIN server is shutting down")
}

/// What to do with a request for a group this node does not lead: forward it to the
/// leader (same core index on that node) when allowed, else a retryable error.
fn not_leader_path(
    core: &Rc<Core>,
    group: u32,
    leader: u64,
    request: Request,
    may_forward: bool,
) -> Issued {
    if leader == 0 {
        return Issued::Done(Reply::err(format!(
            "CLUSTERDOWN shard group {group} has no leader right now (election in progress); retry"
        )));
    }
    let cfg = &core.shared.config;
    if cfg.redirect == Redirect::Moved && leader != cfg.node_id {
        // Redis Cluster redirect: the client retries at the leader itself.
        let addr = crate::clusterinfo::client_address(&core.shared, group, leader);
        if let (Some(addr), Some(key)) = (addr, request_key(&request)) {
            return Issued::Done(Reply::err(format!("MOVED {} {addr}", key_slot(key))));
        }
    }
    if may_forward && leader != cfg.node_id && core.cluster.is_some() {
        return cluster::forward(core, leader, group, request);
    }
    Issued::Done(not_leader(group, leader))
}

fn request_key(r: &Request) -> Option<&Bytes> {
    match r {
        Request::Read(op) => op.keys().first().copied(),
        Request::Write(op) => op.keys().first().copied(),
        Request::Membership(_) | Request::MembershipStatus | Request::TransferLeader(_) => None,
    }
}

/// Why a request cannot be proposed here.
enum NotHere {
    /// Answer now (unknown group, transfer in progress).
    Issued(Issued),
    /// Another node (or nobody, 0) leads the group.
    Leader(u64),
}

/// The group's cell if this node leads it and is not handing leadership over.
fn leader_cell(core: &Rc<Core>, group: u32) -> Result<&RefCell<ShardGroup>, NotHere> {
    let Some(cell) = core.group(group) else {
        return Err(NotHere::Issued(Issued::Done(Reply::err(format!(
            "ERR group {group} is not on this core"
        )))));
    };
    let g = cell.borrow();
    if g.is_transferring() {
        return Err(NotHere::Issued(Issued::Done(transferring(group))));
    }
    if !g.is_leader() {
        return Err(NotHere::Leader(g.leader_id()));
    }
    Ok(cell)
}

/// Proposes a write to a group this core owns (forwarding it when this node is not the
/// group's leader and `may_forward`).
pub fn local_write(core: &Rc<Core>, group: u32, op: WriteOp, may_forward: bool) -> Issued {
    let cell = match leader_cell(core, group) {
        Ok(cell) => cell,
        Err(NotHere::Issued(i)) => return i,
        Err(NotHere::Leader(leader)) => {
            return not_leader_path(core, group, leader, Request::Write(op), may_forward)
        }
    };
    let cmd = LogCommand {
        now_ms: now_ms(),
        op,
    };
    let id = match cell.borrow_mut().propose(&cmd) {
        Ok(id) => id,
        Err(reply) => return Issued::Done(reply),
    };
    await_proposal(core, group, id)
}

/// Waits (with the request deadline) for the outcome of proposal `id` of `group`.
fn await_proposal(core: &Rc<Core>, group: u32, id: u64) -> Issued {
    let (tx, rx) = oneshot::channel();
    core.waiters.borrow_mut().writes.insert((group, id), tx);
    core.driver_wake.notify();
    let core = core.clone();
    Issued::Later(Box::pin(async move {
        let timeout = core.shared.request_timeout();
        match deadline(timeout, rx).await {
            Some(Ok(reply)) => reply,
            Some(Err(_)) => Reply::err(
                "TRYAGAIN the write's outcome is unknown (shard group stopped); it may have been applied",
            ),
            None => {
                core.waiters.borrow_mut().writes.remove(&(group, id));
                Reply::err(format!(
                    "TRYAGAIN write not committed within {} ms; it may still be applied",
                    timeout.as_millis()
                ))
            }
        }
    }))
}

/// Reads from a group this core owns, through the group's read gate.
///
/// Invariant: between a gate check that allows the read and the read itself there is no
/// await (both happen under one borrow), so nothing can invalidate the gate in between.
pub fn local_read(core: &Rc<Core>, group: u32, op: ReadOp, may_forward: bool) -> Issued {
    let Some(cell) = core.group(group) else {
        return Issued::Done(Reply::err(format!("ERR group {group} is not on this core")));
    };
    {
        let g = cell.borrow();
        // One clock sample decides the lease; the read follows under the same borrow.
        match g.read_gate(crate::peer::boottime_ns()) {
            ReadGate::Local => {
                lease_outcome(core, group, true);
                return Issued::Done(g.read_local(&op, now_ms()));
            }
            ReadGate::NotLeader { leader } => {
                drop(g);
                return not_leader_path(core, group, leader, Request::Read(op), may_forward);
            }
            ReadGate::Transferring => return Issued::Done(transferring(group)),
            ReadGate::NotReady | ReadGate::ReadIndex => {}
        }
    }
    let core = core.clone();
    Issued::Later(Box::pin(async move {
        let reply = slow_read(core.clone(), group, op, may_forward).await;
        if reply.is_error() {
            if let Some(s) = core.shared.group_stats.get(group as usize) {
                s.read_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        reply
    }))
}

/// The read path when the gate does not allow an immediate read: wait for the leader to
/// apply an entry of its term, or confirm leadership with ReadIndex, then read — all within
/// the request deadline.
async fn slow_read(core: Rc<Core>, group: u32, op: ReadOp, may_forward: bool) -> Reply {
    let timeout = core.shared.request_timeout();
    let start = Instant::now();
    let Some(cell) = core.group(group) else {
        return Reply::err(format!("ERR group {group} is not on this core"));
    };
    loop {
        let Some(remaining) = timeout.checked_sub(start.elapsed()) else {
            return timeout_error("read", timeout);
        };
        let gate = {
            let g = cell.borrow();
            let gate = g.read_gate(crate::peer::boottime_ns());
            if gate == ReadGate::Local {
                // Lease (or own-term apply) confirmed: read under the same borrow.
                return g.read_local(&op, now_ms());
            }
            gate
        };
        match gate {
            ReadGate::Local => unreachable!("handled above under the same borrow"),
            ReadGate::NotLeader { leader } => {
                return not_leader_path(&core, group, leader, Request::Read(op), may_forward)
                    .resolve()
                    .await
            }
            ReadGate::Transferring => return transferring(group),
            ReadGate::NotReady => {
                let (tx, rx) = oneshot::channel();
                {
                    let mut w = core.waiters.borrow_mut();
                    let list = w.leader_ready.entry(group).or_default();
                    list.retain(|t| !t.is_canceled());
                    list.push(tx);
                }
                core.driver_wake.notify();
                if deadline(remaining, rx).await.is_none() {
                    return timeout_error("read (leader not ready)", timeout);
                }
            }
            ReadGate::ReadIndex => {
                lease_outcome(&core, group, false);
                let id = match cell.borrow_mut().read_index() {
                    Ok(id) => id,
                    Err(reply) => return reply,
                };
                let (tx, rx) = oneshot::channel();
                core.waiters.borrow_mut().reads.insert((group, id), tx);
                core.driver_wake.notify();
                let asked = Instant::now();
                match deadline(remaining, rx).await {
                    // Confirmed and applied up to the read index: read now, no await between.
                    Some(Ok(Ok(()))) => {
                        if let Some(s) = core.shared.group_stats.get(group as usize) {
                            s.readindex_done
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            s.readindex_ns_total.fetch_add(
                                asked.elapsed().as_nanos() as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                        }
                        return cell.borrow().read_local(&op, now_ms());
                    }
                    Some(Ok(Err(reply))) => return reply,
                    Some(Err(_)) => return shutting_down(),
                    None => {
                        core.waiters.borrow_mut().reads.remove(&(group, id));
                        return timeout_error("read (ReadIndex)", timeout);
                    }
                }
            }
        }
    }
}

/// Runs a membership change at the group's leader (forwarding it there if needed). A
/// leader asked to remove itself hands leadership to its best-caught-up peer first and
/// answers TRYAGAIN; the retry reaches the new leader.
pub fn local_membership(
    core: &Rc<Core>,
    group: u32,
    change: MembershipChange,
    may_forward: bool,
) -> Issued {
    let cell = match leader_cell(core, group) {
        Ok(cell) => cell,
        Err(NotHere::Issued(i)) => return i,
        Err(NotHere::Leader(leader)) => {
            return not_leader_path(
                core,
                group,
                leader,
                Request::Membership(change),
                may_forward,
            )
        }
    };
    if change == MembershipChange::Remove(core.shared.config.node_id) {
        let mut g = cell.borrow_mut();
        return Issued::Done(match g.best_transferee() {
            Some(to) => {
                g.transfer_leader(to, crate::peer::boottime_ns());
                drop(g);
                core.driver_wake.notify();
                Reply::err(format!(
                    "TRYAGAIN shard group {group}: handing leadership to node {to} before removing this node"
                ))
            }
            None => Reply::err("ERR no other voter can take over leadership"),
        });
    }
    let proposed = cell.borrow_mut().propose_membership(&change);
    match proposed {
        Ok(id) => {
            core.driver_wake.notify();
            await_proposal(core, group, id)
        }
        Err(reply) => Issued::Done(reply),
    }
}

/// This node's view of a group's configuration: [voters, learners, leader].
fn membership_status(core: &Rc<Core>, group: u32) -> Issued {
    let Some(cell) = core.group(group) else {
        return Issued::Done(Reply::err(format!("ERR group {group} is not on this core")));
    };
    let g = cell.borrow();
    let ids = |v: Vec<u64>| Reply::Array(v.into_iter().map(|i| Reply::Int(i as i64)).collect());
    let mut voters = g.voters();
    voters.sort_unstable();
    Issued::Done(Reply::Array(vec![
        Reply::bulk(format!("group {group}")),
        ids(voters),
        ids(g.learners()),
        Reply::Int(g.leader_id() as i64),
    ]))
}

/// `LEASEKV.ADMIN TRANSFER`: this node, leading `group`, hands leadership to voter `to`.
/// Replies once the transfer has started (raft-rs sends `MsgTimeoutNow` as soon as `to` is
/// caught up, and gives up after an election timeout); the lease ends first (rule 6).
fn transfer_leader(core: &Rc<Core>, group: u32, to: u64) -> Issued {
    let Some(cell) = core.group(group) else {
        return Issued::Done(Reply::err(format!("ERR group {group} is not on this core")));
    };
    let mut g = cell.borrow_mut();
    let me = core.shared.config.node_id;
    let reply = if !g.is_leader() {
        Reply::err(format!(
            "ERR this node does not lead shard group {group} (leader: {}); send TRANSFER to the leader",
            match g.leader_id() {
                0 => "unknown".to_string(),
                id => format!("node {id}"),
            }
        ))
    } else if to == me {
        Reply::err(format!("ERR node {to} already leads shard group {group}"))
    } else if !g.voters().contains(&to) {
        Reply::err(format!(
            "ERR node {to} is not a voter of shard group {group}"
        ))
    } else if g.is_transferring() {
        transferring(group)
    } else {
        g.transfer_leader(to, crate::peer::boottime_ns());
        core.driver_wake.notify();
        Reply::Status(Bytes::from(format!(
            "OK transferring shard group {group} from node {me} to node {to}"
        )))
    };
    Issued::Done(reply)
}

/// Runs a hop's request on this (owner) core; forwards it if another node leads.
pub fn local_request(core: &Rc<Core>, group: u32, request: Request) -> Issued {
    match request {
        Request::Read(op) => local_read(core, group, op, true),
        Request::Write(op) => local_write(core, group, op, true),
        Request::Membership(c) => local_membership(core, group, c, true),
        Request::MembershipStatus => membership_status(core, group),
        Request::TransferLeader(to) => transfer_leader(core, group, to),
    }
}

/// Runs a request another node forwarded here because this node leads `group`.
pub fn leader_request(core: &Rc<Core>, group: u32, request: Request) -> Issued {
    match request {
        Request::Read(op) => local_read(core, group, op, false),
        Request::Write(op) => local_write(core, group, op, false),
        Request::Membership(c) => local_membership(core, group, c, false),
        Request::MembershipStatus => membership_status(core, group),
        Request::TransferLeader(to) => transfer_leader(core, group, to),
    }
}

/// Runs any request on the core owning `group` (inline or over a hop).
pub async fn issue_request(core: &Rc<Core>, group: u32, request: Request) -> Issued {
    let owner = core.shared.routing.core_of_group(group);
    if owner == core.index {
        local_request(core, group, request)
    } else {
        hop(core, owner, group, request).await
    }
}

/// Sends a request to the core owning `group`.
async fn hop(core: &Rc<Core>, owner: usize, group: u32, request: Request) -> Issued {
    let Ok(permit) = core.hop_permits[owner].acquire_static_permit(1).await else {
        return Issued::Done(shutting_down());
    };
    let (tx, rx) = oneshot::channel();
    let hop = Hop {
        group,
        request,
        reply: tx,
    };
    if core.shared.inboxes[owner].send(hop).is_err() {
        return Issued::Done(shutting_down());
    }
    core.stats()
        .hops_sent
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The owner enforces the request deadline; this one only guards against a stuck core.
    let timeout = core.shared.request_timeout() + Duration::from_secs(1);
    Issued::Later(Box::pin(async move {
        let _permit = permit;
        match deadline(timeout, rx).await {
            Some(Ok(reply)) => reply,
            Some(Err(_)) => shutting_down(),
            None => timeout_error("cross-core request", timeout),
        }
    }))
}

pub async fn issue_read(core: &Rc<Core>, group: u32, op: ReadOp) -> Issued {
    let owner = core.shared.routing.core_of_group(group);
    if owner == core.index {
        local_read(core, group, op, true)
    } else {
        hop(core, owner, group, Request::Read(op)).await
    }
}

pub async fn issue_write(core: &Rc<Core>, group: u32, op: WriteOp) -> Issued {
    let owner = core.shared.routing.core_of_group(group);
    if owner == core.index {
        local_write(core, group, op, true)
    } else {
        hop(core, owner, group, Request::Write(op)).await
    }
}

/// Splits items by shard group, keeping each item's original position. Groups appear in
/// the order their first key appears.
fn partition<T>(
    core: &Core,
    items: Vec<T>,
    key: impl Fn(&T) -> &Bytes,
) -> Vec<(u32, Vec<(usize, T)>)> {
    let mut parts: Vec<(u32, Vec<(usize, T)>)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let g = core.shared.routing.group_of_key(key(&item));
        match parts.iter_mut().find(|(pg, _)| *pg == g) {
            Some((_, v)) => v.push((i, item)),
            None => parts.push((g, vec![(i, item)])),
        }
    }
    parts
}

async fn resolve_all(parts: Vec<Issued>) -> Vec<Reply> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        out.push(p.resolve().await);
    }
    out
}

/// Sums integer replies (DEL, EXISTS, DBSIZE); the first error wins.
fn sum_replies(replies: Vec<Reply>) -> Reply {
    let mut total = 0i64;
    for r in replies {
        match r {
            Reply::Int(n) => total += n,
            Reply::Error(_) => return r,
            other => return Reply::err(format!("ERR unexpected shard reply {other:?}")),
        }
    }
    Reply::Int(total)
}

fn first_error_or_ok(replies: Vec<Reply>) -> Reply {
    replies
        .into_iter()
        .find(Reply::is_error)
        .unwrap_or(Reply::Ok)
}

fn all_groups(core: &Core) -> std::ops::Range<u32> {
    0..core.shared.routing.groups()
}

/// SCAN cursors: the high bits name the group, the low bits the group-local position.
pub const SCAN_GROUP_SHIFT: u32 = shards::kv::SCAN_POSITION_BITS;
// 16384 groups (the slot count, the most a config allows) must fit above the position.
const _: () = assert!(SCAN_GROUP_SHIFT + 14 <= 64);
const SCAN_LOCAL_MASK: u64 = (1 << SCAN_GROUP_SHIFT) - 1;

/// Issues a keyspace command (everything but connection-level commands).
pub async fn issue(core: &Rc<Core>, cmd: Command) -> Issued {
    match cmd {
        Command::Read(op) => {
            let Some(key) = op.keys().first().map(|k| (*k).clone()) else {
                return Issued::Done(Reply::err("ERR read without a key"));
            };
            let g = core.shared.routing.group_of_key(&key);
            issue_read(core, g, op).await
        }
        Command::Write(op) => {
            let Some(key) = op.keys().first().map(|k| (*k).clone()) else {
                return Issued::Done(Reply::err("ERR write without a key"));
            };
            let g = core.shared.routing.group_of_key(&key);
            issue_write(core, g, op).await
        }
        Command::MGet(keys) => {
            let n = keys.len();
            let parts = partition(core, keys, |k| k);
            let mut issued = Vec::with_capacity(parts.len());
            let mut positions = Vec::with_capacity(parts.len());
            for (g, items) in parts {
                let (pos, keys): (Vec<usize>, Vec<Bytes>) = items.into_iter().unzip();
                positions.push(pos);
                issued.push(issue_read(core, g, ReadOp::MGet { keys }).await);
            }
            Issued::Later(Box::pin(async move {
                let mut out = vec![Reply::Nil; n];
                for (reply, pos) in resolve_all(issued).await.into_iter().zip(positions) {
                    match reply {
                        Reply::Array(values) if values.len() == pos.len() => {
                            for (v, i) in values.into_iter().zip(pos) {
                                out[i] = v;
                            }
                        }
                        Reply::Error(_) => return reply,
                        other => {
                            return Reply::err(format!("ERR unexpected shard reply {other:?}"))
                        }
                    }
                }
                Reply::Array(out)
            }))
        }
        Command::MSet(pairs) => {
            let parts = partition(core, pairs, |(k, _)| k);
            let mut issued = Vec::with_capacity(parts.len());
            for (g, items) in parts {
                let pairs = items.into_iter().map(|(_, p)| p).collect();
                issued.push(issue_write(core, g, WriteOp::MSet { pairs }).await);
            }
            Issued::Later(Box::pin(async move {
                first_error_or_ok(resolve_all(issued).await)
            }))
        }
        Command::MSetNx(pairs) => {
            let Some(first) = pairs.first().map(|(k, _)| key_slot(k)) else {
                return Issued::Done(Reply::wrong_arity("msetnx"));
            };
            if pairs.iter().any(|(k, _)| key_slot(k) != first) {
                return Issued::Done(Reply::err(
                    "CROSSSLOT Keys in request don't hash to the same slot",
                ));
            }
            let g = core.shared.routing.group_of_slot(first);
            issue_write(core, g, WriteOp::MSetNx { pairs }).await
        }
        Command::Del(keys) => {
            let parts = partition(core, keys, |k| k);
            let mut issued = Vec::with_capacity(parts.len());
            for (g, items) in parts {
                let keys = items.into_iter().map(|(_, k)| k).collect();
                issued.push(issue_write(core, g, WriteOp::Del { keys }).await);
            }
            Issued::Later(Box::pin(
                async move { sum_replies(resolve_all(issued).await) },
            ))
        }
        Command::Exists(keys) => {
            let parts = partition(core, keys, |k| k);
            let mut issued = Vec::with_capacity(parts.len());
            for (g, items) in parts {
                let keys = items.into_iter().map(|(_, k)| k).collect();
                issued.push(issue_read(core, g, ReadOp::Exists { keys }).await);
            }
            Issued::Later(Box::pin(
                async move { sum_replies(resolve_all(issued).await) },
            ))
        }
        Command::DbSize => {
            let mut issued = Vec::new();
            for g in all_groups(core) {
                issued.push(issue_read(core, g, ReadOp::DbSize).await);
            }
            Issued::Later(Box::pin(
                async move { sum_replies(resolve_all(issued).await) },
            ))
        }
        Command::FlushAll => {
            let mut issued = Vec::new();
            for g in all_groups(core) {
                issued.push(issue_write(core, g, WriteOp::FlushAll).await);
            }
            Issued::Later(Box::pin(async move {
                first_error_or_ok(resolve_all(issued).await)
            }))
        }
        Command::Keys(pattern) => {
            let mut issued = Vec::new();
            for g in all_groups(core) {
                let op = ReadOp::Keys {
                    pattern: pattern.clone(),
                };
                issued.push(issue_read(core, g, op).await);
            }
            Issued::Later(Box::pin(async move {
                let mut keys = Vec::new();
                for r in resolve_all(issued).await {
                    match r {
                        Reply::Array(mut part) => keys.append(&mut part),
                        Reply::Error(_) => return r,
                        other => {
                            return Reply::err(format!("ERR unexpected shard reply {other:?}"))
                        }
                    }
                }
                Reply::Array(keys)
            }))
        }
        Command::Scan {
            cursor,
            pattern,
            count,
            type_filter,
        } => {
            let groups = core.shared.routing.groups() as u64;
            let group = cursor >> SCAN_GROUP_SHIFT;
            if group >= groups {
                return Issued::Done(Reply::Array(vec![
                    Reply::bulk("0"),
                    Reply::Array(Vec::new()),
                ]));
            }
            let op = ReadOp::Scan {
                cursor: cursor & SCAN_LOCAL_MASK,
                pattern,
                count,
                type_filter,
            };
            let issued = issue_read(core, group as u32, op).await;
            Issued::Later(Box::pin(async move {
                match issued.resolve().await {
                    Reply::Array(mut parts) if parts.len() == 2 => {
                        let keys = parts.pop().unwrap_or(Reply::Array(Vec::new()));
                        let next_local = match parts.pop() {
                            Some(Reply::Int(n)) if n >= 0 => n as u64,
                            Some(Reply::Bulk(b)) => std::str::from_utf8(&b)
                                .ok()
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0),
                            _ => 0,
                        };
                        let next = if next_local != 0 {
                            (group << SCAN_GROUP_SHIFT) | (next_local & SCAN_LOCAL_MASK)
                        } else if group + 1 < groups {
                            (group + 1) << SCAN_GROUP_SHIFT
                        } else {
                            0
                        };
                        Reply::Array(vec![Reply::bulk(next.to_string()), keys])
                    }
                    Reply::Error(e) => Reply::Error(e),
                    other => Reply::err(format!("ERR unexpected shard reply {other:?}")),
                }
            }))
        }
        _ => Issued::Done(Reply::err("ERR not a keyspace command")),
    }
}
