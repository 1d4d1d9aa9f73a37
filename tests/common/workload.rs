//! The workload of the fault tests: concurrent clients doing random GET/SET/INCR on a few
//! hot keys through several nodes, every operation recorded for the linearizability checker.
//!
//! - **Clients.** Each client is a thread with one connection and at most one request in
//!   flight. It starts at node `i % n` and moves to the next node when it cannot connect or
//!   an operation's outcome became unknown (a paused node would otherwise swallow it).
//! - **Deadlines.** Every operation has a socket read/write deadline
//!   ([`WorkloadOptions::op_timeout`]); a timeout or a dropped connection after the request
//!   was sent leaves the operation *indeterminate* (it may take effect later, or never), and
//!   the connection is dropped so a late reply can never be mistaken for the next one.
//! - **Values.** Every `SET` writes a globally unique integer, `k * VALUE_STRIDE`, so a read
//!   tells which write it saw and `INCR` (which needs an integer) never fails: an `INCR`
//!   chain from a `SET` stays below the next `SET`'s value.
//! - **Keys.** The hot key set rotates every [`WorkloadOptions::epoch`] (the epoch number is
//!   part of the key name) so that each key's history stays short enough for the WGL search;
//!   hot key `i` of every epoch lives in shard group `i % groups`, so every group is loaded.
//! - **Errors.** [`write_error_effect`] decides, from the server's error text, whether a
//!   rejected write is certainly not applied (recorded as failed) or may have been
//!   (indeterminate). A rejected `GET` has no effect either way and is recorded as failed.
//!
//! Times come from the [`Recorder`]'s monotonic clock; the call time is taken before the
//! request is written and the return time after the reply is read, so each recorded interval
//! contains the real one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use linearizability::{History, Input, OpHandle, Output, Recorder};

use super::err_text;
use super::slots::Topology;

/// Distance between the values of two `SET`s: room for that many `INCR`s after each.
pub const VALUE_STRIDE: i64 = 1_000_000_000;

/// Client ids of the helpers that are not workload clients (history readability only).
pub const BURST_CLIENT_BASE: u64 = 10_000;
pub const PROBE_CLIENT_BASE: u64 = 20_000;
pub const FINAL_CLIENT_BASE: u64 = 30_000;

/// Relative weights of the operations a client picks at random.
#[derive(Clone, Copy, Debug)]
pub struct OpMix {
    pub get: u32,
    pub set: u32,
    pub incr: u32,
}

impl OpMix {
    pub const READ_HEAVY: OpMix = OpMix {
        get: 60,
        set: 20,
        incr: 20,
    };
    /// Write conflicts: mostly read-modify-writes of the same value.
    pub const CONFLICTS: OpMix = OpMix {
        get: 15,
        set: 15,
        incr: 70,
    };

    fn pick(&self, rng: &mut Rng) -> Kind {
        let total = (self.get + self.set + self.incr).max(1);
        let x = rng.below(u64::from(total)) as u32;
        if x < self.get {
            Kind::Get
        } else if x < self.get + self.set {
            Kind::Set
        } else {
            Kind::Incr
        }
    }
}

#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Concurrent client threads.
    pub clients: usize,
    /// Hot keys per epoch (key `i` in group `i % groups`).
    pub hot_keys: usize,
    /// How long one set of hot keys is used before the next one.
    pub epoch: Duration,
    /// Socket read/write deadline of one operation (and connect timeout).
    pub op_timeout: Duration,
    pub mix: OpMix,
    /// Key name prefix (distinct per run, for readable histories).
    pub prefix: String,
    /// Seed of the clients' random choices (printed with the results).
    pub seed: u64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            clients: 8,
            hot_keys: 4,
            epoch: Duration::from_secs(2),
            op_timeout: Duration::from_secs(3),
            mix: OpMix::READ_HEAVY,
            prefix: "nem".to_string(),
            seed: seed_from_clock(),
        }
    }
}

/// A seed from the clock, for runs that are not asked to repeat one.
pub fn seed_from_clock() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

/// SplitMix64: small, seedable, good enough to pick operations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; 0 for n == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `[lo, hi]`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Get,
    Set,
    Incr,
}

/// What a rejected write tells about its effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The server guarantees the write was not (and will never be) applied.
    NotApplied,
    /// It may have been applied, or may still be.
    MaybeApplied,
}

/// Classifies a write's error reply (`"CODE text"`), from what the server promises
/// (src/exec.rs, src/cluster.rs, shards/src/group.rs). Only errors raised before the write
/// was proposed, or after it provably lost its log slot, say "not applied"; a timeout, a
/// forward whose leader changed, a lost hop or anything unrecognised may have been applied.
pub fn write_error_effect(text: &str) -> Effect {
    // Raised before anything was proposed or forwarded.
    const NOT_PROPOSED: [&str; 6] = [
        "CLUSTERDOWN ",
        "MOVED ",
        // not_leader(): the leader a forward reached was no longer leader.
        "is not led by this node",
        "is transferring leadership; retry",
        // propose() on a node that is not leader.
        "has no leader on this node",
        "too many requests are being forwarded",
    ];
    // The server's explicit promises: raft-rs dropped the proposal, or another entry took
    // its log slot.
    const PROMISED: [&str; 2] = ["the write was not applied", "it was not applied"];
    if !(text.starts_with("TRYAGAIN")
        || text.starts_with("CLUSTERDOWN")
        || text.starts_with("MOVED"))
    {
        return Effect::MaybeApplied;
    }
    if text.contains("may ") {
        // "may still be applied", "may have been applied": never certain.
        return Effect::MaybeApplied;
    }
    if NOT_PROPOSED
        .iter()
        .chain(&PROMISED)
        .any(|p| text.contains(p))
    {
        Effect::NotApplied
    } else {
        Effect::MaybeApplied
    }
}

/// Counters of a run, by operation kind and outcome.
#[derive(Debug, Default)]
pub struct Counts {
    /// [kind][outcome]: kind = get/set/incr, outcome = ok/failed/indeterminate.
    cells: [[AtomicU64; 3]; 3],
    /// Replies that no correct server sends for these commands (wrong type, ERR ...).
    unexpected: AtomicU64,
    first_unexpected: Mutex<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub ops: u64,
    pub ok: u64,
    pub failed: u64,
    pub indeterminate: u64,
    pub gets_ok: u64,
    pub writes_ok: u64,
    pub unexpected: u64,
}

impl Counts {
    fn bump(&self, kind: Kind, outcome: usize) {
        let k = match kind {
            Kind::Get => 0,
            Kind::Set => 1,
            Kind::Incr => 2,
        };
        self.cells[k][outcome].fetch_add(1, Ordering::Relaxed);
    }

    fn unexpected(&self, what: String) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_unexpected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if first.len() < 10 {
            first.push(what);
        }
    }

    pub fn summary(&self) -> Summary {
        let get = |k: usize, o: usize| self.cells[k][o].load(Ordering::Relaxed);
        let mut s = Summary::default();
        for k in 0..3 {
            s.ok += get(k, 0);
            s.failed += get(k, 1);
            s.indeterminate += get(k, 2);
        }
        s.ops = s.ok + s.failed + s.indeterminate;
        s.gets_ok = get(0, 0);
        s.writes_ok = get(1, 0) + get(2, 0);
        s.unexpected = self.unexpected.load(Ordering::Relaxed);
        s
    }

    /// The first unexpected replies seen (at most 10).
    pub fn unexpected_samples(&self) -> Vec<String> {
        self.first_unexpected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// How one operation ended, for the caller's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    Ok(Output),
    /// Rejected and certainly not applied (or a read): recorded as failed.
    Failed(String),
    /// Outcome unknown: recorded as indeterminate. The connection was dropped.
    Unknown(String),
    /// Not sent at all (no connection): nothing recorded.
    NotSent,
}

/// One client connection with failover over a list of node ports.
pub struct Client {
    ports: Vec<u16>,
    at: usize,
    con: Option<redis::Connection>,
    timeout: Duration,
}

impl Client {
    /// Talks to `ports[start % len]` first.
    pub fn new(ports: Vec<u16>, start: usize, timeout: Duration) -> Client {
        assert!(!ports.is_empty());
        Client {
            at: start % ports.len(),
            ports,
            con: None,
            timeout,
        }
    }

    /// The port the next operation goes to.
    pub fn port(&self) -> u16 {
        self.ports[self.at]
    }

    /// Drops the connection and moves to the next node.
    pub fn next_node(&mut self) {
        self.con = None;
        self.at = (self.at + 1) % self.ports.len();
    }

    fn connection(&mut self) -> Option<&mut redis::Connection> {
        if self.con.is_none() {
            match connect(self.port(), self.timeout) {
                Ok(c) => self.con = Some(c),
                Err(_) => {
                    self.next_node();
                    return None;
                }
            }
        }
        self.con.as_mut()
    }

    /// Runs `input` on `key`, recording it as client `id` in `rec`. Connects first (an
    /// operation that could not even be sent is not recorded).
    pub fn run(
        &mut self,
        rec: &Recorder,
        counts: &Counts,
        id: u64,
        key: &str,
        input: Input,
    ) -> Done {
        let kind = match input {
            Input::Get => Kind::Get,
            Input::Set(_) => Kind::Set,
            Input::Incr => Kind::Incr,
            Input::Del => panic!("the workload does not issue DEL"),
        };
        let mut cmd = match &input {
            Input::Get => redis::cmd("GET"),
            Input::Set(_) => redis::cmd("SET"),
            _ => redis::cmd("INCR"),
        };
        cmd.arg(key);
        if let Input::Set(v) = &input {
            cmd.arg(v.as_slice());
        }
        let Some(con) = self.connection() else {
            return Done::NotSent;
        };
        let op = rec.invoke(id, key, input);
        let res = cmd.query::<redis::Value>(con);
        let done = finish(op, kind, res, counts);
        if matches!(done, Done::Unknown(_)) {
            self.next_node();
        }
        done
    }
}

/// A `redis` connection to `127.0.0.1:port` with every socket operation bounded.
pub fn connect(port: u16, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// Records the outcome of one operation.
fn finish(
    op: OpHandle,
    kind: Kind,
    res: redis::RedisResult<redis::Value>,
    counts: &Counts,
) -> Done {
    use redis::Value as V;
    let e = match res {
        Ok(v) => {
            let out = match (kind, &v) {
                (Kind::Get, V::Nil) => Some(Output::Get(None)),
                (Kind::Get, V::BulkString(b)) => Some(Output::Get(Some(b.clone()))),
                (Kind::Set, V::Okay) => Some(Output::Set),
                (Kind::Set, V::SimpleString(s)) if s == "OK" => Some(Output::Set),
                (Kind::Incr, V::Int(n)) => Some(Output::Incr(*n)),
                _ => None,
            };
            return match out {
                Some(out) => {
                    op.ok(out.clone());
                    counts.bump(kind, 0);
                    Done::Ok(out)
                }
                None => {
                    // A reply of the wrong type: nothing can be concluded from it.
                    let what = format!("{kind:?}: unexpected reply {v:?}");
                    counts.unexpected(what.clone());
                    finish_unknown(op, kind, counts, what)
                }
            };
        }
        Err(e) => e,
    };
    if e.code().is_none() {
        // I/O: a timeout or a dropped connection after the request may have been sent.
        return finish_unknown(op, kind, counts, format!("{e}"));
    }
    let text = err_text(&e);
    let retryable = ["TRYAGAIN", "CLUSTERDOWN", "MOVED"]
        .iter()
        .any(|c| e.code() == Some(*c));
    if !retryable {
        counts.unexpected(format!("{kind:?}: {text}"));
    }
    let certain =
        kind == Kind::Get || (retryable && write_error_effect(&text) == Effect::NotApplied);
    if certain {
        op.fail();
        counts.bump(kind, 1);
        Done::Failed(text)
    } else {
        op.indeterminate();
        counts.bump(kind, 2);
        Done::Unknown(text)
    }
}

fn finish_unknown(op: OpHandle, kind: Kind, counts: &Counts, why: String) -> Done {
    op.indeterminate();
    counts.bump(kind, 2);
    Done::Unknown(why)
}

/// Names the hot keys: key `i` of `epoch` lives in group `i % groups`.
#[derive(Clone, Debug)]
pub struct KeyPlan {
    prefix: String,
    topo: Topology,
}

impl KeyPlan {
    pub fn new(prefix: &str, topo: Topology) -> KeyPlan {
        KeyPlan {
            prefix: prefix.to_string(),
            topo,
        }
    }

    /// The hot key `i` of `epoch`.
    pub fn key(&self, epoch: u64, i: usize) -> String {
        let group = i % self.topo.groups;
        (0..)
            .map(|n| format!("{}:e{epoch}:k{i}:{n}", self.prefix))
            .find(|k| self.topo.group_of_key(k) == group)
            .expect("some name maps to every group")
    }

    /// A key of its own (e.g. for a conflict burst) in `group`.
    pub fn special(&self, name: &str, group: usize) -> String {
        (0..)
            .map(|n| format!("{}:{name}:{n}", self.prefix))
            .find(|k| self.topo.group_of_key(k) == group % self.topo.groups)
            .expect("some name maps to every group")
    }

    pub fn groups(&self) -> usize {
        self.topo.groups
    }
}

/// A running workload. Stop it with [`Workload::stop`].
pub struct Workload {
    pub opts: WorkloadOptions,
    rec: Recorder,
    origin: Instant,
    ports: Vec<u16>,
    plan: KeyPlan,
    counts: Arc<Counts>,
    next_value: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    next_helper: AtomicU64,
}

impl Workload {
    /// Starts `opts.clients` clients over `ports` (client i starts at `ports[i % len]`).
    pub fn start(ports: Vec<u16>, topo: Topology, opts: WorkloadOptions) -> Workload {
        let origin = Instant::now();
        let mut w = Workload {
            rec: Recorder::with_base(origin),
            origin,
            plan: KeyPlan::new(&opts.prefix, topo),
            ports,
            counts: Arc::new(Counts::default()),
            next_value: Arc::new(AtomicU64::new(1)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            next_helper: AtomicU64::new(0),
            opts,
        };
        for i in 0..w.opts.clients {
            let t = w.client_thread(i);
            w.threads.push(t);
        }
        w
    }

    fn client_thread(&self, i: usize) -> JoinHandle<()> {
        let mut client = Client::new(self.ports.clone(), i, self.opts.op_timeout);
        let (rec, counts, stop) = (self.rec.clone(), self.counts.clone(), self.stop.clone());
        let (plan, next_value) = (self.plan.clone(), self.next_value.clone());
        let (mix, hot, epoch_len) = (self.opts.mix, self.opts.hot_keys, self.opts.epoch);
        let origin = self.origin;
        let mut rng = Rng::new(self.opts.seed ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        std::thread::Builder::new()
            .name(format!("client-{i}"))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let epoch =
                        (origin.elapsed().as_millis() / epoch_len.as_millis().max(1)) as u64;
                    let key = plan.key(epoch, rng.below(hot as u64) as usize);
                    let input = input_for(mix.pick(&mut rng), &next_value);
                    match client.run(&rec, &counts, i as u64, &key, input) {
                        Done::Ok(_) => {}
                        // Back off a little on errors so a leaderless group is not hammered.
                        Done::Failed(_) | Done::Unknown(_) | Done::NotSent => {
                            std::thread::sleep(Duration::from_millis(10 + rng.below(20)))
                        }
                    }
                }
            })
            .expect("spawn client thread")
    }

    /// The recorder (shared clock) of this workload.
    pub fn recorder(&self) -> &Recorder {
        &self.rec
    }

    /// Nanoseconds since the workload's time origin (the history's time base).
    pub fn now_ns(&self) -> u64 {
        self.rec.now()
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    pub fn plan(&self) -> &KeyPlan {
        &self.plan
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The hot keys in use right now.
    pub fn current_keys(&self) -> Vec<String> {
        let epoch = (self.origin.elapsed().as_millis() / self.opts.epoch.as_millis().max(1)) as u64;
        (0..self.opts.hot_keys)
            .map(|i| self.plan.key(epoch, i))
            .collect()
    }

    /// Waits (at most `timeout`) until `n` more operations than now have succeeded.
    pub fn wait_for_progress(&self, n: u64, timeout: Duration, what: &str) {
        let start = self.counts.summary().ok;
        super::wait_until(timeout, what, || {
            (self.counts.summary().ok >= start + n).then_some(())
        });
    }

    /// `threads` extra clients hammer `key` with `mix` through every node for `length`
    /// (write conflicts); returns once they are done. Recorded like the workload.
    pub fn burst(&self, key: &str, threads: usize, length: Duration, mix: OpMix) {
        let until = Instant::now() + length;
        let handles: Vec<JoinHandle<()>> = (0..threads)
            .map(|t| {
                let id = BURST_CLIENT_BASE + self.next_helper.fetch_add(1, Ordering::Relaxed);
                let mut client = Client::new(self.ports.clone(), t, self.opts.op_timeout);
                let (rec, counts) = (self.rec.clone(), self.counts.clone());
                let next_value = self.next_value.clone();
                let key = key.to_string();
                let mut rng = Rng::new(self.opts.seed ^ id.wrapping_mul(0x9e37_79b9));
                std::thread::spawn(move || {
                    while Instant::now() < until {
                        let input = input_for(mix.pick(&mut rng), &next_value);
                        if !matches!(client.run(&rec, &counts, id, &key, input), Done::Ok(_)) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("burst client panicked");
        }
    }

    /// Sends one `GET` per key to `port`, each on a fresh connection, from background
    /// threads, and returns at once: used to reach a paused node, whose kernel accepts the
    /// connection and buffers the request until the node wakes. `timeout` must outlast the
    /// pause for the reply to be seen.
    pub fn probe_reads(
        &self,
        port: u16,
        keys: &[String],
        timeout: Duration,
    ) -> Vec<JoinHandle<Done>> {
        keys.iter()
            .map(|key| {
                let id = PROBE_CLIENT_BASE + self.next_helper.fetch_add(1, Ordering::Relaxed);
                let (rec, counts, key) = (self.rec.clone(), self.counts.clone(), key.clone());
                std::thread::spawn(move || {
                    Client::new(vec![port], 0, timeout).run(&rec, &counts, id, &key, Input::Get)
                })
            })
            .collect()
    }

    /// Stops the clients and waits for them (each finishes its operation in flight, which
    /// its deadline bounds).
    pub fn stop(&mut self) -> Summary {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("client thread panicked");
        }
        self.counts.summary()
    }

    /// Reads every key of the history through every port in `ports`, retrying retryable
    /// errors until `deadline`; every attempt is recorded. Panics if some key cannot be read
    /// through some node in time. Returns, per key, the value each port saw.
    pub fn final_reads(
        &self,
        ports: &[u16],
        timeout: Duration,
    ) -> Vec<(String, Vec<Option<Vec<u8>>>)> {
        let mut keys: Vec<Vec<u8>> = self
            .rec
            .history()
            .ops()
            .iter()
            .map(|o| o.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(keys.len());
        let mut clients: Vec<Client> = ports
            .iter()
            .map(|&p| Client::new(vec![p], 0, self.opts.op_timeout))
            .collect();
        for key in keys {
            let key = String::from_utf8(key).expect("workload keys are UTF-8");
            let mut seen = Vec::with_capacity(ports.len());
            for (n, client) in clients.iter_mut().enumerate() {
                let id = FINAL_CLIENT_BASE + n as u64;
                let value = loop {
                    match client.run(&self.rec, &self.counts, id, &key, Input::Get) {
                        Done::Ok(Output::Get(v)) => break v,
                        other => {
                            assert!(
                                Instant::now() < deadline,
                                "final read of {key} through port {} failed until the deadline: {other:?}",
                                client.port()
                            );
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                };
                seen.push(value);
            }
            out.push((key, seen));
        }
        out
    }

    /// Everything recorded so far.
    pub fn history(&self) -> History {
        self.rec.history()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        // A failing test must not leave client threads running against dead nodes.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A fresh input of `kind`: SET values are unique multiples of [`VALUE_STRIDE`].
fn input_for(kind: Kind, next_value: &AtomicU64) -> Input {
    match kind {
        Kind::Get => Input::Get,
        Kind::Incr => Input::Incr,
        Kind::Set => Input::set(set_value(next_value.fetch_add(1, Ordering::Relaxed))),
    }
}

/// The value of the `n`-th `SET` (n >= 1): `n * VALUE_STRIDE` in decimal.
pub fn set_value(n: u64) -> String {
    (n as i64 * VALUE_STRIDE).to_string()
}
