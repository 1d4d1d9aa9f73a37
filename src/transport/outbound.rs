//! The writer task of one (peer, lane): connect, handshake, drain the queue in batches,
//! and reconnect with backoff after any failure.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::backoff::Backoff;
use super::wire::{self, Hello, Status};
use super::{Lane, Shared, BATCH_BYTES};
use crate::sync::{deadline, LocalNotify};

/// Frames at least this large are written straight from their buffer instead of being
/// copied into the batch buffer.
const COPY_LIMIT: usize = 64 * 1024;

/// Runs until the peer is removed or the task is cancelled (shutdown, address change).
pub(super) async fn writer(shared: Rc<Shared>, peer: u64, lane: Lane, gen: u64) {
    let _guard = Disconnected {
        shared: shared.clone(),
        peer,
        lane,
        gen,
    };
    // None: the peer was removed.
    let _: Option<()> = run(&shared, peer, lane, gen).await;
}

async fn run(shared: &Shared, peer: u64, lane: Lane, gen: u64) -> Option<()> {
    let work = shared.lane_notify(peer, lane)?;
    let cfg = &shared.cfg;
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    // Only the first failure of a series is a warning; a peer that is down for a while
    // would otherwise log every backoff period.
    let mut failing = false;
    // Spawned by the first send; from then on the connection is kept (re-established after
    // every failure) whether or not frames are queued.
    loop {
        let addr = shared.peer_addr(peer)?;
        let mut stream = match connect(shared, addr, lane).await {
            Ok(s) => s,
            Err(e) => {
                shared.bump(peer, lane, |s| s.connect_errors += 1);
                if failing {
                    tracing::debug!(peer, ?lane, %addr, "transport: connect failed: {e}");
                } else {
                    tracing::warn!(peer, ?lane, %addr, "transport: connect failed: {e}");
                }
                failing = true;
                glommio::timer::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        failing = false;
        shared.set_connected(peer, lane, gen, true);
        tracing::debug!(peer, ?lane, %addr, "transport: connected");
        let since = Instant::now();
        let why = pump(shared, peer, lane, &work, &mut stream).await?;
        shared.set_connected(peer, lane, gen, false);
        // A connection that is accepted and then dies at once (a flapping or misbehaving
        // peer) keeps backing off; one that lived a while starts over at backoff_min.
        if since.elapsed() >= cfg.backoff_max {
            backoff.reset();
        }
        tracing::info!(peer, ?lane, %addr, "transport: connection closed: {why}; reconnecting");
        drop(stream);
        glommio::timer::sleep(backoff.next_delay()).await;
    }
}

/// Connects and completes the handshake within `connect_timeout` each.
async fn connect(shared: &Shared, addr: std::net::SocketAddr, lane: Lane) -> io::Result<TcpStream> {
    let cfg = &shared.cfg;
    let mut stream = TcpStream::connect_timeout(addr, cfg.connect_timeout).await?;
    stream.set_nodelay(true)?;
    let hello = Hello {
        lane,
        // Checked to fit at start.
        core: cfg.core as u16,
        from: cfg.node_id,
        cluster_id: cfg.cluster_id.clone(),
    };
    write_all(&mut stream, &hello.encode(), cfg.connect_timeout).await?;
    let mut reply = [0u8; wire::REPLY_LEN];
    deadline(cfg.connect_timeout, stream.read_exact(&mut reply))
        .await
        .ok_or_else(|| timed_out("no handshake reply within connect_timeout"))??;
    match Status::parse_reply(&reply) {
        Some(Status::Ok) => Ok(stream),
        Some(s) => Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("handshake refused by the peer: {}", s.describe()),
        )),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer answered the handshake with something else",
        )),
    }
}

/// Writes queued batches until the connection fails; returns why. None: the peer is gone.
async fn pump(
    shared: &Shared,
    peer: u64,
    lane: Lane,
    work: &LocalNotify,
    stream: &mut TcpStream,
) -> Option<io::Error> {
    let stall = shared.cfg.write_stall_timeout;
    let mut buf = Vec::with_capacity(BATCH_BYTES.min(256 * 1024));
    loop {
        let batch = shared.take_batch(peer, lane)?;
        if batch.is_empty() {
            // Idle. The acceptor never sends after its reply, so a readable socket means
            // the peer closed (or broke protocol): notice it now rather than losing the
            // next batch to a dead connection.
            let mut probe = [0u8; 1];
            let closed = futures_lite::future::or(
                async {
                    work.wait().await;
                    false
                },
                async {
                    let _ = stream.read(&mut probe).await;
                    true
                },
            )
            .await;
            if closed {
                return Some(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed by the peer",
                ));
            }
            continue;
        }
        let frames = batch.len() as u64;
        let bytes: u64 = batch.iter().map(|f| f.len() as u64).sum();
        match write_batch(stream, &batch, &mut buf, stall).await {
            Ok(()) => shared.bump(peer, lane, |s| {
                s.frames_sent += frames;
                s.bytes_sent += bytes;
                s.batches += 1;
            }),
            Err(e) => {
                shared.bump(peer, lane, |s| s.dropped_lost += frames);
                return Some(e);
            }
        }
    }
}

/// Length-prefixes and writes `batch`: small frames are gathered into `buf` and written
/// together, large ones are written from their own buffer.
async fn write_batch(
    stream: &mut TcpStream,
    batch: &[Bytes],
    buf: &mut Vec<u8>,
    stall: Duration,
) -> io::Result<()> {
    buf.clear();
    for f in batch {
        buf.extend_from_slice(&wire::frame_header(f.len()));
        if f.len() < COPY_LIMIT {
            buf.extend_from_slice(f);
        } else {
            write_all(stream, buf, stall).await?;
            buf.clear();
            write_all(stream, f, stall).await?;
        }
    }
    if !buf.is_empty() {
        write_all(stream, buf, stall).await?;
    }
    Ok(())
}

/// `write_all` where every write must make progress within `stall`.
async fn write_all(stream: &mut TcpStream, mut data: &[u8], stall: Duration) -> io::Result<()> {
    while !data.is_empty() {
        match deadline(stall, stream.write(data)).await {
            None => return Err(timed_out("write made no progress; the peer is not reading")),
            Some(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Some(Ok(n)) => data = &data[n..],
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(())
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

/// Marks the lane disconnected when the writer ends for any reason (including cancel).
struct Disconnected {
    shared: Rc<Shared>,
    peer: u64,
    lane: Lane,
    gen: u64,
}

impl Drop for Disconnected {
    fn drop(&mut self) {
        self.shared
            .set_connected(self.peer, self.lane, self.gen, false);
    }
}

impl Shared {
    fn lane_notify(&self, peer: u64, lane: Lane) -> Option<Rc<LocalNotify>> {
        let peers = self.peers.borrow();
        Some(peers.get(&peer)?.lanes[lane as usize].work.clone())
    }

    fn peer_addr(&self, peer: u64) -> Option<std::net::SocketAddr> {
        self.peers.borrow().get(&peer).map(|p| p.addr)
    }

    pub(super) fn bump(&self, peer: u64, lane: Lane, f: impl FnOnce(&mut super::LaneStats)) {
        if let Some(p) = self.peers.borrow_mut().get_mut(&peer) {
            f(&mut p.lanes[lane as usize].stats);
        }
    }

    fn set_connected(&self, peer: u64, lane: Lane, gen: u64, connected: bool) {
        if let Some(p) = self.peers.borrow_mut().get_mut(&peer) {
            let out = &mut p.lanes[lane as usize];
            if out.gen != gen || out.stats.connected == connected {
                return;
            }
            out.stats.connected = connected;
            if connected {
                if out.stats.connects > 0 {
                    out.stats.reconnects += 1;
                }
                out.stats.connects += 1;
            }
        }
    }

    /// Takes up to [`BATCH_BYTES`] (at least one frame) off the queue. While the fault hook
    /// drops traffic to `peer` the queue is discarded instead. None: the peer is gone.
    fn take_batch(&self, peer: u64, lane: Lane) -> Option<Vec<Bytes>> {
        let dropped = self.drops(peer);
        let mut peers = self.peers.borrow_mut();
        let out = &mut peers.get_mut(&peer)?.lanes[lane as usize];
        if dropped {
            out.stats.dropped_blocked_out += out.queue.len() as u64;
            out.queue.clear();
            out.queued_bytes = 0;
            return Some(Vec::new());
        }
        let mut batch = Vec::new();
        let mut taken = 0;
        while let Some(f) = out.queue.front() {
            let size = f.len() + wire::FRAME_HEADER;
            if !batch.is_empty() && taken + size > BATCH_BYTES {
                break;
            }
            taken += size;
            out.queued_bytes -= size;
            batch.extend(out.queue.pop_front());
        }
        Some(batch)
    }
}
