//! One client connection: RESP framing, pipelining, per-connection ordering, limits.
//!
//! Ordering: replies go out in command order, and a command observes every earlier command
//! of the same connection. Consecutive writes are issued without waiting (they are ordered
//! by each group's log and by the FIFO hop channel), consecutive reads likewise; when a
//! read follows a write (or the reverse) the earlier ones are drained first.
//!
//! Bounds: at most `max_pipeline` commands are parsed per batch; no more input is read
//! until that batch's replies are written. A partial frame held longer than
//! `idle_frame_timeout_ms`, or replies not drained within `write_timeout_ms`, disconnect
//! the client with a log line.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use shards::Reply;

use crate::admin;
use crate::command::{self, Command};
use crate::core::{ClientEntry, Core};
use crate::exec::{self, Issued};
use crate::info;
use crate::metrics;
use crate::resp::{self, Proto};
use crate::sync::{deadline, unless};

const READ_CHUNK: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

struct Conn {
    core: Rc<Core>,
    client: Rc<ClientEntry>,
    proto: Proto,
    out: BytesMut,
    /// Issued commands whose replies are not encoded yet, in command order, each with the
    /// latency timer started when it was parsed.
    pending: VecDeque<(Issued, metrics::Timer)>,
    /// Timer of the command `run_command` is running (`push` files it with the reply).
    timer: metrics::Timer,
    pending_kind: Option<Kind>,
    quit: bool,
}

/// Serves one accepted connection until it closes, errs, or the core shuts down.
pub async fn serve(core: Rc<Core>, stream: TcpStream, id: u64) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
    let local = stream
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
    let _ = stream.set_nodelay(true);
    let client = Rc::new(ClientEntry {
        id,
        addr: peer.clone(),
        laddr: local,
        name: None.into(),
        connected: Instant::now(),
        last_cmd: Cell::new(Instant::now()),
        resp: Cell::new(2),
    });
    core.clients.borrow_mut().insert(id, client.clone());
    let mut conn = Conn {
        core: core.clone(),
        client,
        proto: Proto::Resp2,
        out: BytesMut::with_capacity(READ_CHUNK),
        pending: VecDeque::new(),
        timer: metrics::Timer::new(&[], Instant::now()),
        pending_kind: None,
        quit: false,
    };
    let reason = conn.run(stream).await;
    tracing::debug!(client = id, peer = %peer, reason, "client disconnected");
    core.clients.borrow_mut().remove(&id);
}

impl Conn {
    async fn run(&mut self, mut stream: TcpStream) -> &'static str {
        let cfg = &self.core.shared.config.limits;
        let limits = cfg.parse_limits();
        // Like Redis' client-query-buffer-limit: one frame may not buffer more than this.
        let max_buffered = limits.max_bulk.saturating_add(64 * 1024).max(1 << 30);
        let max_pipeline = cfg.max_pipeline.max(1);
        let frame_timeout = Duration::from_millis(cfg.idle_frame_timeout_ms);
        let write_timeout = Duration::from_millis(cfg.write_timeout_ms);
        let mut input = BytesMut::with_capacity(READ_CHUNK);
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            // Parse and run what is buffered, one bounded batch at a time.
            let mut ran = 0usize;
            let mut protocol_error = None;
            while ran < max_pipeline {
                match resp::parse_command(&mut input, &limits) {
                    Ok(Some(argv)) => {
                        ran += 1;
                        self.run_command(argv).await;
                        if self.quit {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        protocol_error = Some(e);
                        break;
                    }
                }
            }
            self.drain().await;
            if let Some(e) = &protocol_error {
                self.core
                    .stats()
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(client = self.client.id, peer = %self.client.addr, error = %e, "protocol error; closing connection");
                resp::encode(&Reply::err(format!("ERR {e}")), self.proto, &mut self.out);
            }
            if !self.out.is_empty() {
                let buf = self.out.split().freeze();
                match deadline(write_timeout, stream.write_all(&buf)).await {
                    Some(Ok(())) => {}
                    Some(Err(_)) => return "write error",
                    None => {
                        tracing::info!(client = self.client.id, peer = %self.client.addr, "client did not read its replies within write_timeout_ms; closing");
                        return "write timeout";
                    }
                }
            }
            if protocol_error.is_some() {
                return "protocol error";
            }
            if self.quit {
                return "quit";
            }
            if ran == max_pipeline {
                continue; // more complete commands may be buffered
            }
            if self.core.shutdown.is_set() {
                return "shutdown";
            }
            // Need more input. A partial frame may not be held forever.
            let read = stream.read(&mut chunk);
            let n = if input.is_empty() {
                match unless(&self.core.shutdown, read).await {
                    Some(r) => r,
                    None => return "shutdown",
                }
            } else {
                match deadline(frame_timeout, unless(&self.core.shutdown, read)).await {
                    Some(Some(r)) => r,
                    Some(None) => return "shutdown",
                    None => {
                        tracing::info!(client = self.client.id, peer = %self.client.addr, buffered = input.len(), "incomplete command held past idle_frame_timeout_ms; closing");
                        return "frame timeout";
                    }
                }
            };
            match n {
                Ok(0) => return "eof",
                Ok(n) => {
                    if input.len() + n > max_buffered {
                        tracing::info!(client = self.client.id, peer = %self.client.addr, buffered = input.len(), "query buffer limit exceeded; closing");
                        resp::encode(
                            &Reply::err("ERR Protocol error: query buffer limit exceeded"),
                            self.proto,
                            &mut self.out,
                        );
                        let buf = self.out.split().freeze();
                        let _ = deadline(write_timeout, stream.write_all(&buf)).await;
                        return "query buffer limit";
                    }
                    input.extend_from_slice(&chunk[..n])
                }
                Err(_) => return "read error",
            }
        }
    }

    /// Encodes every pending reply, in order.
    async fn drain(&mut self) {
        while let Some((issued, timer)) = self.pending.pop_front() {
            let reply = issued.resolve().await;
            resp::encode(&reply, self.proto, &mut self.out);
            timer.record(&self.core);
        }
        self.pending_kind = None;
    }

    fn push(&mut self, kind: Option<Kind>, issued: Issued) {
        if kind.is_some() {
            self.pending_kind = kind;
        }
        self.pending.push_back((issued, self.timer));
    }

    async fn run_command(&mut self, argv: Vec<Bytes>) {
        self.core.stats().commands.fetch_add(1, Ordering::Relaxed);
        self.client.last_cmd.set(Instant::now());
        // Latency: parse -> reply encoded (recorded in `drain`). Keyspace commands resolve in
        // `drain`; the rest are `Issued::Done` and measure their run time plus any wait behind
        // earlier pipelined replies, which is what the client sees.
        self.timer = metrics::Timer::new(&argv, self.client.last_cmd.get());
        if argv.first().is_some_and(|n| admin::is_admin(n)) {
            self.drain().await;
            let reply = admin::run(&self.core, &argv).await;
            return self.push(None, Issued::Done(reply));
        }
        let cmd = match command::parse(&argv) {
            Ok(cmd) => cmd,
            Err(reply) => return self.push(None, Issued::Done(reply)),
        };
        let kind = match &cmd {
            Command::Read(_)
            | Command::MGet(_)
            | Command::Exists(_)
            | Command::DbSize
            | Command::Keys(_)
            | Command::Scan { .. } => Some(Kind::Read),
            Command::Write(_)
            | Command::MSet(_)
            | Command::MSetNx(_)
            | Command::Del(_)
            | Command::FlushAll => Some(Kind::Write),
            _ => None,
        };
        if let Some(kind) = kind {
            if self.pending_kind.is_some_and(|k| k != kind) {
                self.drain().await;
            }
            let issued = exec::issue(&self.core, cmd).await;
            return self.push(Some(kind), issued);
        }
        let reply = match cmd {
            Command::Immediate(r) => r,
            Command::Ping(None) => Reply::status("PONG"),
            Command::Ping(Some(m)) => Reply::Bulk(m),
            Command::Quit => {
                self.quit = true;
                Reply::Ok
            }
            Command::Hello { protover, setname } => {
                // Replies before HELLO keep the old protocol.
                self.drain().await;
                if let Some(p) = protover {
                    self.proto = if p == 3 { Proto::Resp3 } else { Proto::Resp2 };
                    self.client.resp.set(p as u8);
                }
                if let Some(name) = setname {
                    *self.client.name.borrow_mut() = Some(name);
                }
                info::hello(&self.core, &self.client)
            }
            Command::ClientSetName(name) => {
                *self.client.name.borrow_mut() = (!name.is_empty()).then_some(name);
                Reply::Ok
            }
            Command::ClientGetName => self
                .client
                .name
                .borrow()
                .clone()
                .map_or(Reply::Nil, Reply::Bulk),
            Command::ClientId => Reply::Int(self.client.id as i64),
            Command::ClientInfo => Reply::Bulk(Bytes::from(info::client_line(&self.client))),
            Command::ClientList => Reply::Bulk(Bytes::from(info::client_list(&self.core))),
            Command::Info(sections) => Reply::Bulk(Bytes::from(info::info(&self.core, &sections))),
            Command::Cluster(q) => crate::clusterinfo::reply(&self.core, &self.client, q),
            other => exec::issue(&self.core, other).await.resolve().await,
        };
        self.push(None, Issued::Done(reply));
    }
}
