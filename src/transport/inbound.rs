//! The accept task and one reader task per accepted connection: verify the handshake, then
//! read length-prefixed frames into the core's inbox.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use super::wire::{self, Status};
use super::{Conn, Inbound, Lane, Shared};
use crate::sync::deadline;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Refusal warnings are logged at most this often (the rest at debug level).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Read size while between frames: small frames are the common case.
const READ_MIN: usize = 16 * 1024;
/// Largest single read, also inside big frames (bounds the zero-fill per read).
const READ_MAX: usize = 256 * 1024;

/// Runs until cancelled (shutdown); owns the listener, so cancelling closes it.
pub(super) async fn accept_loop(shared: Rc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => spawn_conn(&shared, stream),
            Err(e) => {
                tracing::warn!(addr = %shared.local_addr, "transport: accept failed: {e}");
                glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

fn spawn_conn(shared: &Rc<Shared>, stream: TcpStream) {
    let id = shared.next_conn.get();
    shared.next_conn.set(id + 1);
    // The entry exists before the task runs: glommio polls a new task before
    // `spawn_local` returns, and the task updates and finally removes its entry.
    shared.conns.borrow_mut().insert(
        id,
        Conn {
            key: None,
            task: None,
        },
    );
    let task = glommio::spawn_local(serve(shared.clone(), id, stream)).detach();
    if let Some(c) = shared.conns.borrow_mut().get_mut(&id) {
        c.task = Some(task);
    }
}

/// Removes the connection's entry when its task ends for any reason.
struct Registered {
    shared: Rc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.conns.borrow_mut().remove(&self.id);
    }
}

async fn serve(shared: Rc<Shared>, id: u64, mut stream: TcpStream) {
    let _registered = Registered {
        shared: shared.clone(),
        id,
    };
    let remote = stream.peer_addr().ok();
    // Only ever read from, but cheap and keeps both ends alike.
    let _ = stream.set_nodelay(true);
    let timeout = shared.cfg.connect_timeout;
    let (from, lane) = match deadline(timeout, handshake(&shared, &mut stream)).await {
        None => {
            tracing::debug!(
                ?remote,
                "transport: no handshake within connect_timeout; closing"
            );
            return;
        }
        Some(Err(Refusal::Io(e))) => {
            tracing::debug!(?remote, "transport: handshake read failed: {e}");
            return;
        }
        Some(Err(Refusal::Status(status, detail))) => {
            shared.refused.set(shared.refused.get() + 1);
            // A misconfigured node retries forever: warn at most once per REFUSAL_LOG_EVERY.
            let now = Instant::now();
            let due = match shared.refusal_logged.get() {
                Some(t) => now.duration_since(t) >= REFUSAL_LOG_EVERY,
                None => true,
            };
            if due {
                shared.refusal_logged.set(Some(now));
                tracing::warn!(
                    ?remote,
                    "transport: refusing connection: {}{detail}",
                    status.describe()
                );
            } else {
                tracing::debug!(
                    ?remote,
                    "transport: refusing connection: {}{detail}",
                    status.describe()
                );
            }
            if status != Status::BadMagic {
                let _ = deadline(timeout, stream.write_all(&status.reply())).await;
            }
            return;
        }
        Some(Ok(key)) => key,
    };
    // The newest connection from a (peer, lane) wins: the older one is from before a
    // reconnect and its writer is gone.
    shared.close_conns(|key| key == Some((from, lane)));
    if let Some(c) = shared.conns.borrow_mut().get_mut(&id) {
        c.key = Some((from, lane));
    }
    match deadline(timeout, stream.write_all(&Status::Ok.reply())).await {
        Some(Ok(())) => {}
        _ => return,
    }
    shared.accepted.set(shared.accepted.get() + 1);
    tracing::debug!(?remote, from, ?lane, "transport: accepted connection");
    let why = read_frames(&shared, from, lane, &mut stream).await;
    tracing::debug!(
        ?remote,
        from,
        ?lane,
        "transport: inbound connection closed: {why}"
    );
}

enum Refusal {
    Io(io::Error),
    /// The status to reply, and detail for the log line.
    Status(Status, String),
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Self {
        Refusal::Io(e)
    }
}

/// Reads and verifies the connector's hello; Ok is (from node, lane).
async fn handshake(shared: &Shared, stream: &mut TcpStream) -> Result<(u64, Lane), Refusal> {
    let mut prefix = [0u8; wire::PREFIX_LEN];
    stream.read_exact(&mut prefix).await?;
    wire::check_prefix(&prefix).map_err(|s| Refusal::Status(s, String::new()))?;
    let mut fixed = [0u8; wire::FIXED_LEN];
    stream.read_exact(&mut fixed).await?;
    let (lane, core, from, id_len) =
        wire::decode_fixed(&fixed).map_err(|s| Refusal::Status(s, String::new()))?;
    let mut id = vec![0u8; id_len];
    stream.read_exact(&mut id).await?;
    let cfg = &shared.cfg;
    if id != cfg.cluster_id.as_bytes() {
        let detail = format!(
            " (node {from} is in cluster {:?}, this node in {:?})",
            String::from_utf8_lossy(&id),
            cfg.cluster_id
        );
        return Err(Refusal::Status(Status::WrongCluster, detail));
    }
    if usize::from(core) != cfg.core {
        let detail = format!(
            " (node {from} connected from core {core} to core {})",
            cfg.core
        );
        return Err(Refusal::Status(Status::WrongCore, detail));
    }
    if from == cfg.node_id {
        let detail = format!(" (both are node {from}: duplicate node id?)");
        return Err(Refusal::Status(Status::SameNode, detail));
    }
    if !shared.peers.borrow().contains_key(&from) {
        return Err(Refusal::Status(
            Status::UnknownNode,
            format!(" (node {from})"),
        ));
    }
    Ok((from, lane))
}

/// Reads frames until the connection ends; returns why. Waits (without reading) while the
/// lane's inbox is full.
async fn read_frames(shared: &Shared, from: u64, lane: Lane, stream: &mut TcpStream) -> String {
    let max = shared.cfg.max_frame_bytes;
    let stall = shared.cfg.write_stall_timeout;
    let mut buf = BytesMut::with_capacity(READ_MIN);
    loop {
        // Deliver every complete frame in the buffer.
        let mut want = READ_MIN;
        while buf.len() >= wire::FRAME_HEADER {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > max {
                tracing::warn!(
                    from,
                    ?lane,
                    "transport: frame of {len} bytes exceeds max_frame_bytes ({max}); closing"
                );
                return "oversized frame".into();
            }
            let total = wire::FRAME_HEADER + len;
            if buf.len() < total {
                // One allocation for the whole frame; reads then fill it.
                buf.reserve(total - buf.len());
                want = (total - buf.len()).clamp(READ_MIN, READ_MAX);
                break;
            }
            buf.advance(wire::FRAME_HEADER);
            let frame = buf.split_to(len).freeze();
            deliver(shared, from, lane, frame).await;
        }
        // Between frames an idle peer is fine; inside one, it must keep sending.
        let start = buf.len();
        buf.resize(start + want, 0);
        let read = if start == 0 {
            Some(stream.read(&mut buf[start..]).await)
        } else {
            deadline(stall, stream.read(&mut buf[start..])).await
        };
        let n = match read {
            None => return "peer stalled inside a frame".into(),
            Some(Ok(0)) => return "closed by the peer".into(),
            Some(Ok(n)) => n,
            Some(Err(e)) => return format!("read error: {e}"),
        };
        buf.truncate(start + n);
    }
}

async fn deliver(shared: &Shared, from: u64, lane: Lane, frame: bytes::Bytes) {
    if shared.drops_in(from) {
        shared.bump(from, lane, |s| s.dropped_blocked_in += 1);
        return;
    }
    let len = frame.len() as u64;
    shared.inbox.push(Inbound { from, lane, frame }).await;
    shared.bump(from, lane, |s| {
        s.frames_received += 1;
        s.bytes_received += len;
    });
}
