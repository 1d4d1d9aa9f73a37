//! One load connection: a glommio task that keeps its pipeline filled (closed loop) or
//! follows its share of the schedule (open loop), parses replies and records latencies.

use crate::config::Protocol;
use crate::http;
use crate::keys::{KeyChooser, KeyFormat};
use crate::resp::{self, Reply, ReplyBuffer};
use crate::rng::Rng;
use crate::schedule::Pacer;
use crate::stats::{ErrorKind, OpKind, Stats};
use futures_lite::future;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The run's time base: nanoseconds since the common start instant of all workers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    t0: Instant,
}

impl Clock {
    pub(crate) fn new(t0: Instant) -> Self {
        Clock { t0 }
    }

    pub(crate) fn now(&self) -> u64 {
        let d = Instant::now().saturating_duration_since(self.t0);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sleeps until `t_ns`. With `spin_ns > 0` the last `spin_ns` before it are spent
    /// polling (yielding to the executor, which keeps running other tasks) instead of
    /// parking: parking and waking the executor costs ~50-100 us, which in open loop would
    /// be added to every latency. Time spent polling is added to `spun`, even when the
    /// future is dropped early (a reply arrived first).
    async fn wait_until(&self, t_ns: u64, spin_ns: u64, spun: &Cell<u64>) {
        let park_until = t_ns.saturating_sub(spin_ns);
        let now = self.now();
        if park_until > now {
            glommio::timer::sleep(Duration::from_nanos(park_until - now)).await;
        }
        if self.now() >= t_ns {
            return;
        }
        let _guard = SpinGuard {
            start: Instant::now(),
            spun,
        };
        while self.now() < t_ns {
            future::yield_now().await;
        }
    }
}

/// Adds the time since `start` to `spun` when dropped.
struct SpinGuard<'a> {
    start: Instant,
    spun: &'a Cell<u64>,
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.spun.set(self.spun.get().saturating_add(ns));
    }
}

pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, timeout.max(Duration::from_millis(1))).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// How requests are written and replies read.
#[derive(Debug, Clone)]
pub(crate) enum Wire {
    Resp,
    /// etcd's JSON gateway; `host` is the Host header, `value_b64` the encoded value.
    Etcd {
        host: Rc<str>,
        value_b64: Rc<[u8]>,
    },
}

impl Wire {
    pub(crate) fn new(protocol: Protocol, addr: SocketAddr, value: &[u8]) -> Self {
        match protocol {
            Protocol::Resp => Wire::Resp,
            Protocol::Etcd => Wire::Etcd {
                host: addr.to_string().into(),
                value_b64: http::b64(value).into(),
            },
        }
    }

    fn encode(
        &self,
        out: &mut Vec<u8>,
        read: bool,
        key: &[u8],
        value: &[u8],
        scratch: &mut Vec<u8>,
    ) {
        match (self, read) {
            (Wire::Resp, true) => resp::encode_get(out, key),
            (Wire::Resp, false) => resp::encode_set(out, key, value),
            (Wire::Etcd { host, .. }, true) => http::encode_range(out, host, key, scratch),
            (Wire::Etcd { host, value_b64 }, false) => {
                http::encode_put(out, host, key, value_b64, scratch)
            }
        }
    }

    /// The next complete reply in `rbuf`: `Ok(Some(Ok(())))` success, `Ok(Some(Err(prefix)))`
    /// an error reply, `Ok(None)` incomplete, `Err` a broken stream.
    fn next_outcome(&self, rbuf: &mut ReplyBuffer) -> Result<Option<Result<(), String>>, ()> {
        match self {
            Wire::Resp => match rbuf.next_reply() {
                Ok(Some(reply)) => Ok(Some(classify(reply))),
                Ok(None) => Ok(None),
                Err(_) => Err(()),
            },
            Wire::Etcd { .. } => rbuf.next_http().map_err(|_| ()),
        }
    }
}

/// What requests look like: keys, values, read/write mix.
pub(crate) struct Workload {
    pub keys: KeyChooser,
    pub format: Rc<KeyFormat>,
    pub value: Rc<[u8]>,
    pub read_ratio: f64,
    pub rng: Rng,
    pub wire: Wire,
    key_buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl Workload {
    pub(crate) fn new(
        keys: KeyChooser,
        format: Rc<KeyFormat>,
        value: Rc<[u8]>,
        read_ratio: f64,
        rng: Rng,
        wire: Wire,
    ) -> Self {
        Workload {
            keys,
            format,
            value,
            read_ratio,
            rng,
            wire,
            key_buf: Vec::with_capacity(64),
            scratch: Vec::new(),
        }
    }

    /// Appends the next request to `out`.
    fn encode_next(&mut self, out: &mut Vec<u8>) -> OpKind {
        let read = self.read_ratio >= 1.0
            || (self.read_ratio > 0.0 && self.rng.next_f64() < self.read_ratio);
        self.key_buf.clear();
        self.format
            .write_key(self.keys.next_index(), &mut self.key_buf);
        self.wire
            .encode(out, read, &self.key_buf, &self.value, &mut self.scratch);
        if read {
            OpKind::Read
        } else {
            OpKind::Write
        }
    }
}

/// Success, or the error class of an error reply.
fn classify(reply: Reply<'_>) -> Result<(), String> {
    match reply {
        Reply::Error(msg) => Err(resp::error_prefix(msg)),
        _ => Ok(()),
    }
}

/// Races `fut` against a timer; `None` when the timer wins.
async fn with_deadline<T>(fut: impl std::future::Future<Output = T>, after: Duration) -> Option<T> {
    future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(after).await;
        None
    })
    .await
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Latency is measured from here: intended send time (open loop) or send time (closed).
    start_ns: u64,
    sent_ns: u64,
    op: OpKind,
}

/// Timeline of the run, ns since t0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    pub window_start_ns: u64,
    /// End of the measured window: closed loop stops issuing here; the open-loop schedule
    /// holds no request at or after it.
    pub end_ns: u64,
    /// Outstanding work is abandoned here (`end_ns` + timeout).
    pub drain_deadline_ns: u64,
}

pub(crate) struct Connection {
    addr: SocketAddr,
    pipeline: usize,
    timeout: Duration,
    timeline: Timeline,
    pacer: Option<Pacer>,
    workload: Workload,
    stream: Option<TcpStream>,
    /// Requests sent (or about to be), oldest first; replies arrive in this order.
    inflight: VecDeque<InFlight>,
    rbuf: ReplyBuffer,
    wbuf: Vec<u8>,
    /// Latest moment the connection regained the ability to send: a pipeline slot freed
    /// while it was full, or a reconnect. A request cannot go out before it, so delay up
    /// to it is the server's, delay after it the generator's.
    ready_since_ns: u64,
    backoff: Duration,
    clock: Clock,
    stats: Rc<RefCell<Stats>>,
    /// Last stretch before a wake-up spent polling instead of parking (0: never poll).
    spin_ns: u64,
    /// Polling time of this worker's connections (excluded from its CPU-busy figure).
    spun: Rc<Cell<u64>>,
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        addr: SocketAddr,
        stream: TcpStream,
        pipeline: usize,
        timeout: Duration,
        timeline: Timeline,
        pacer: Option<Pacer>,
        workload: Workload,
        clock: Clock,
        stats: Rc<RefCell<Stats>>,
        spin: Duration,
        spun: Rc<Cell<u64>>,
    ) -> Self {
        let rbuf_size = (2 * workload.value.len() + 1024).clamp(16 << 10, 1 << 20);
        Connection {
            addr,
            pipeline,
            timeout,
            timeline,
            pacer,
            workload,
            stream: Some(stream),
            inflight: VecDeque::with_capacity(pipeline),
            rbuf: ReplyBuffer::new(rbuf_size),
            wbuf: Vec::new(),
            ready_since_ns: 0,
            backoff: Duration::ZERO,
            clock,
            stats,
            spin_ns: u64::try_from(spin.as_nanos()).unwrap_or(u64::MAX),
            spun,
        }
    }

    fn timeout_ns(&self) -> u64 {
        u64::try_from(self.timeout.as_nanos()).unwrap_or(u64::MAX)
    }

    /// True when no further request will be issued.
    fn schedule_done(&self, now: u64) -> bool {
        match &self.pacer {
            Some(p) => p.peek().is_none(),
            None => now >= self.timeline.end_ns,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let now = self.clock.now();
            if now >= self.timeline.drain_deadline_ns {
                return self.finish(now);
            }
            if self
                .inflight
                .front()
                .is_some_and(|f| now >= f.sent_ns.saturating_add(self.timeout_ns()))
            {
                self.fail(ErrorKind::Timeout);
                continue;
            }
            if self.stream.is_none() {
                if self.schedule_done(now) {
                    return self.finish(now);
                }
                self.reconnect().await;
                continue;
            }
            let issued = self.issue(now);
            if issued > 0 {
                if let Err(kind) = self.flush(issued).await {
                    self.fail(kind);
                    continue;
                }
            }
            if self.inflight.is_empty() && self.schedule_done(now) {
                return self.finish(now);
            }
            self.wait_and_read().await;
        }
    }

    /// Queues every request allowed now into `wbuf`; returns how many.
    fn issue(&mut self, now: u64) -> usize {
        let mut issued = 0;
        while self.inflight.len() < self.pipeline {
            let start_ns = match &mut self.pacer {
                Some(p) => match p.take_due(now) {
                    Some(intended) => intended,
                    None => break,
                },
                None if now < self.timeline.end_ns => 0, // set to the send time in `flush`
                None => break,
            };
            let op = self.workload.encode_next(&mut self.wbuf);
            self.inflight.push_back(InFlight {
                start_ns,
                sent_ns: 0,
                op,
            });
            issued += 1;
        }
        if let Some(p) = &self.pacer {
            if self.inflight.len() >= self.pipeline {
                let backlog = p.backlog(now);
                if backlog > 0 {
                    self.stats.borrow_mut().note_backlog(backlog);
                }
            }
        }
        issued
    }

    /// Writes the `issued` newest requests, stamping their send time.
    async fn flush(&mut self, issued: usize) -> Result<(), ErrorKind> {
        let sent = self.clock.now();
        {
            let mut stats = self.stats.borrow_mut();
            let open = self.pacer.is_some();
            for f in self.inflight.iter_mut().rev().take(issued) {
                f.sent_ns = sent;
                if open {
                    stats.record_send(f.start_ns, self.ready_since_ns, sent);
                } else {
                    f.start_ns = sent;
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(ErrorKind::Connection);
        };
        let result = with_deadline(stream.write_all(&self.wbuf), self.timeout).await;
        self.wbuf.clear();
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(ErrorKind::Connection),
            None => Err(ErrorKind::Timeout),
        }
    }

    /// Waits for replies, the next scheduled send, or the oldest request's timeout.
    async fn wait_and_read(&mut self) {
        let mut wake = self.timeline.drain_deadline_ns;
        if let Some(f) = self.inflight.front() {
            wake = wake.min(f.sent_ns.saturating_add(self.timeout_ns()));
        }
        if self.inflight.len() < self.pipeline {
            if let Some(t) = self.pacer.as_ref().and_then(Pacer::peek) {
                wake = wake.min(t);
            }
        }
        let (clock, spin, spun) = (self.clock, self.spin_ns, &*self.spun);
        let Some(stream) = self.stream.as_mut().filter(|_| !self.inflight.is_empty()) else {
            clock.wait_until(wake, spin, spun).await;
            return;
        };
        let rbuf = &mut self.rbuf;
        let read = async { Some(stream.read(rbuf.spare()).await) };
        let timer = async {
            clock.wait_until(wake, spin, spun).await;
            None
        };
        match future::or(read, timer).await {
            None => {} // timer: the loop checks timeouts and the schedule
            Some(Ok(0)) | Some(Err(_)) => self.fail(ErrorKind::Connection),
            Some(Ok(n)) => {
                self.rbuf.commit(n);
                self.process_replies();
            }
        }
    }

    fn process_replies(&mut self) {
        let now = self.clock.now();
        loop {
            let outcome = match self.workload.wire.next_outcome(&mut self.rbuf) {
                Ok(Some(outcome)) => outcome,
                Ok(None) => return,
                Err(()) => return self.fail(ErrorKind::Protocol),
            };
            if self.inflight.len() >= self.pipeline {
                self.ready_since_ns = now;
            }
            let Some(f) = self.inflight.pop_front() else {
                // More replies than requests: the stream cannot be trusted.
                return self.fail(ErrorKind::Protocol);
            };
            let mut stats = self.stats.borrow_mut();
            match outcome {
                Ok(()) => stats.record_ok(f.op, f.start_ns, now),
                Err(prefix) => stats.record_error(&ErrorKind::Server(prefix), f.start_ns, now),
            }
        }
    }

    /// Drops the connection; every outstanding request fails with `kind`.
    fn fail(&mut self, kind: ErrorKind) {
        let now = self.clock.now();
        let mut stats = self.stats.borrow_mut();
        for f in self.inflight.drain(..) {
            stats.record_error(&kind, f.start_ns, now);
        }
        self.stream = None;
        self.rbuf.clear();
        self.wbuf.clear();
    }

    async fn reconnect(&mut self) {
        let now = self.clock.now();
        let left = Duration::from_nanos(self.timeline.drain_deadline_ns.saturating_sub(now));
        match connect(self.addr, self.timeout.min(left)).await {
            Ok(s) => {
                self.stream = Some(s);
                self.ready_since_ns = self.clock.now();
                self.backoff = Duration::ZERO;
                self.stats.borrow_mut().reconnects += 1;
            }
            Err(_) => {
                self.stats.borrow_mut().connect_failures += 1;
                self.backoff =
                    (self.backoff * 2).clamp(Duration::from_millis(10), Duration::from_millis(500));
                let left = Duration::from_nanos(
                    self.timeline
                        .drain_deadline_ns
                        .saturating_sub(self.clock.now()),
                );
                glommio::timer::sleep(self.backoff.min(left)).await;
            }
        }
    }

    /// End of the run for this connection: whatever is still outstanding timed out, and
    /// (open loop) scheduled requests never sent are counted as `unsent`.
    fn finish(mut self, now: u64) {
        if !self.inflight.is_empty() {
            self.fail(ErrorKind::Timeout);
        }
        if let Some(p) = &self.pacer {
            let n = p.untaken_between(self.timeline.window_start_ns, self.timeline.end_ns);
            let mut stats = self.stats.borrow_mut();
            stats.count_errors(&ErrorKind::Unsent, n);
            stats.series.record_errors(now, n);
        }
    }
}

/// SETs every key in `indexes` over `stream`, `depth` at a time. Any failure aborts.
pub(crate) async fn preload(
    stream: &mut TcpStream,
    indexes: impl Iterator<Item = u64>,
    format: &KeyFormat,
    value: &[u8],
    wire: &Wire,
    depth: usize,
    timeout: Duration,
) -> Result<u64, String> {
    let mut rbuf = ReplyBuffer::new(16 << 10);
    let mut wbuf = Vec::new();
    let mut key = Vec::new();
    let mut scratch = Vec::new();
    let mut indexes = indexes.peekable();
    let mut done = 0u64;
    while indexes.peek().is_some() {
        wbuf.clear();
        let mut batch = 0;
        for i in indexes.by_ref().take(depth.max(1)) {
            key.clear();
            format.write_key(i, &mut key);
            wire.encode(&mut wbuf, false, &key, value, &mut scratch);
            batch += 1;
        }
        match with_deadline(stream.write_all(&wbuf), timeout).await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(format!("write: {e}")),
            None => return Err("write timed out".into()),
        }
        let deadline = Instant::now() + timeout;
        let mut answered = 0;
        while answered < batch {
            match wire.next_outcome(&mut rbuf) {
                Ok(Some(outcome)) => {
                    if let Err(prefix) = outcome {
                        return Err(format!("server answered a write with {prefix}"));
                    }
                    answered += 1;
                    continue;
                }
                Ok(None) => {}
                Err(()) => return Err("bad reply".into()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match with_deadline(stream.read(rbuf.spare()), left).await {
                Some(Ok(0)) => return Err("connection closed".into()),
                Some(Ok(n)) => rbuf.commit(n),
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("timed out waiting for replies".into()),
            }
        }
        done += batch;
    }
    Ok(done)
}
