//! One server process per test: free loopback port, private temp data dir, stderr/stdout captured
//! to files (printed when the test fails), and a `Drop` guard that kills exactly the pid it
//! started.
//!
//! `LEASEKV_TEST_AGAINST_REDIS=1` makes [`Server::start_for_semantics`] (and
//! [`Server::start_durable`]) run a real `redis-server` instead, so the expectations of the
//! command-semantics tests (and of the layout-independent durability tests) can be checked
//! against Redis itself.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::resp::RawConn;

/// How long a server may take to become ready (startup includes WAL replay after a crash).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Read/write timeout of every client socket the tests open: no test can block forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Cores used by default: two, so routing between cores is exercised (the CI machine has 2).
pub const DEFAULT_CORES: &str = "0,1";

/// True when `LEASEKV_TEST_AGAINST_REDIS` asks for a real redis-server.
pub fn against_redis() -> bool {
    std::env::var("LEASEKV_TEST_AGAINST_REDIS").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Leasekv,
    Redis,
    /// redis-server with `appendfsync always`: every acknowledged write is durable.
    RedisDurable,
}

/// How to start a leasekv server. `--listen` and `--data-dir` are always set by the harness.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `--cores` value; `None` means [`DEFAULT_CORES`]; `Some("")` passes no `--cores` flag.
    pub cores: Option<String>,
    /// TOML text written to a file and passed with `--config`.
    pub config: Option<String>,
    /// Further arguments after `serve` (for redis-server: after the harness' own).
    pub extra_args: Vec<String>,
}

impl ServerOptions {
    pub fn with_config(toml: &str) -> Self {
        ServerOptions {
            config: Some(toml.to_string()),
            ..Default::default()
        }
    }
}

/// A running (or stopped, restartable) server owned by one test.
pub struct Server {
    backend: Backend,
    opts: ServerOptions,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    /// Number of processes started so far; run `i` logs to `run-<i>.stderr` / `.stdout`.
    runs: usize,
}

/// Ports handed out by this test process, so two tests never race for the same one.
static USED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A currently free loopback port never handed out before in this process.
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        drop(l);
        let mut used = USED_PORTS.lock().unwrap_or_else(|p| p.into_inner());
        if used.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

impl Server {
    /// Starts leasekv with `opts` and waits until it is ready.
    pub fn start(opts: ServerOptions) -> Server {
        Self::start_backend(Backend::Leasekv, opts)
    }

    /// Starts leasekv on [`DEFAULT_CORES`] with no config file.
    pub fn start_default() -> Server {
        Self::start(ServerOptions::default())
    }

    /// For tests of Redis command semantics: leasekv, or redis-server when
    /// `LEASEKV_TEST_AGAINST_REDIS=1`.
    pub fn start_for_semantics() -> Server {
        let backend = if against_redis() {
            Backend::Redis
        } else {
            Backend::Leasekv
        };
        Self::start_backend(backend, ServerOptions::default())
    }

    /// For durability tests that do not look inside the data dir: leasekv, or redis-server with
    /// an fsync-always AOF when `LEASEKV_TEST_AGAINST_REDIS=1`.
    pub fn start_durable() -> Server {
        let backend = if against_redis() {
            Backend::RedisDurable
        } else {
            Backend::Leasekv
        };
        Self::start_backend(backend, ServerOptions::default())
    }

    /// A real redis-server (no persistence) with `opts.extra_args` appended: for checking a
    /// test's mechanics against Redis.
    pub fn start_redis(opts: ServerOptions) -> Server {
        Self::start_backend(Backend::Redis, opts)
    }

    fn start_backend(backend: Backend, opts: ServerOptions) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("leasekv-itest-")
            .tempdir()
            .expect("create temp dir");
        let mut s = Server {
            backend,
            opts,
            dir,
            port: 0,
            child: None,
            runs: 0,
        };
        s.restart();
        s
    }

    pub fn is_redis(&self) -> bool {
        self.backend != Backend::Leasekv
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The `--data-dir` of this server (same across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `<data_dir>/core-<i>`.
    pub fn core_dir(&self, core: usize) -> PathBuf {
        self.data_dir().join(format!("core-{core}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn log_path(&self, run: usize, stream: &str) -> PathBuf {
        self.dir.path().join(format!("run-{run}.{stream}"))
    }

    /// stderr of the most recent process.
    pub fn current_stderr(&self) -> String {
        read_lossy(&self.log_path(self.runs.saturating_sub(1), "stderr"))
    }

    /// stderr and stdout of every process this guard started, labelled per run.
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        for run in 0..self.runs {
            for stream in ["stderr", "stdout"] {
                let text = read_lossy(&self.log_path(run, stream));
                if !text.is_empty() {
                    out.push_str(&format!("----- server run {run} {stream} -----\n{text}\n"));
                }
            }
        }
        out
    }

    /// Starts a new process on the same data dir (and config) on a fresh port, and waits until it
    /// is ready. A fresh port avoids depending on how the old listener was torn down; clients must
    /// reconnect anyway.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() while the previous process is still owned"
        );
        fs::create_dir_all(self.data_dir()).expect("create data dir");
        // A port picked as free can be taken by someone else before the server binds it: retry
        // on "address in use" with another port.
        for attempt in 0..5 {
            self.port = free_port();
            self.spawn();
            match self.wait_ready() {
                Ok(()) => return,
                Err(msg) => {
                    let in_use = self.current_stderr().to_lowercase().contains("in use");
                    if in_use && attempt < 4 && self.child.is_none() {
                        continue;
                    }
                    self.kill9();
                    // The Drop guard prints the logs.
                    panic!("server did not become ready: {msg}");
                }
            }
        }
    }

    fn spawn(&mut self) {
        let run = self.runs;
        self.runs += 1;
        let stderr = File::create(self.log_path(run, "stderr")).expect("create stderr log");
        let stdout = File::create(self.log_path(run, "stdout")).expect("create stdout log");
        let mut cmd = match self.backend {
            Backend::Leasekv => self.leasekv_command(),
            Backend::Redis | Backend::RedisDurable => self.redis_command(),
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        self.child = Some(child);
    }

    fn leasekv_command(&self) -> Command {
        let mut cmd = Command::new(leasekv_bin());
        cmd.arg("serve");
        if let Some(toml) = &self.opts.config {
            let path = self.dir.path().join("leasekv.toml");
            fs::write(&path, toml).expect("write config");
            cmd.arg("--config").arg(path);
        }
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.data_dir());
        match self.opts.cores.as_deref() {
            None => {
                cmd.arg("--cores").arg(DEFAULT_CORES);
            }
            Some("") => {}
            Some(cores) => {
                cmd.arg("--cores").arg(cores);
            }
        }
        cmd.args(&self.opts.extra_args);
        configure_log_env(&mut cmd);
        cmd
    }

    fn redis_command(&self) -> Command {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(self.data_dir());
        if self.backend == Backend::RedisDurable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.opts.extra_args);
        cmd
    }

    /// Waits until the server answers PING with PONG (and, for leasekv, has logged `ready`).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut ponged = false;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("server exited during startup with {status}"));
            }
            if !ponged {
                ponged = super::cluster::ping(self.port);
            }
            // `ready` is logged once every core accepts; PONG alone may come from the first core.
            if ponged && (self.is_redis() || logged_ready(&self.current_stderr())) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(if ponged {
                    format!("answered PONG but logged no `ready` line within {READY_TIMEOUT:?}")
                } else {
                    format!("no PONG on port {} within {READY_TIMEOUT:?}", self.port)
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reaps the process if it has exited; returns its status then.
    fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            Ok(None) => None,
            Err(e) => panic!("try_wait: {e}"),
        }
    }

    /// True while the process this guard started is running.
    pub fn is_running(&mut self) -> bool {
        self.try_wait();
        self.child.is_some()
    }

    /// Asserts the server process is still running and has not panicked.
    pub fn assert_alive(&mut self) {
        if !self.is_running() {
            panic!("server process is gone (logs follow)");
        }
        self.assert_no_panic();
    }

    /// Asserts no run of this server logged a Rust panic.
    pub fn assert_no_panic(&self) {
        assert!(
            !self.all_logs().contains("panicked at"),
            "server panicked (logs follow)"
        );
    }

    /// `kill -9` the process and reap it (no-op when it is not running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL to exactly this pid.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `sig` to the process and waits (bounded) for it to exit; returns its exit status.
    pub fn stop_with(&mut self, sig: libc::c_int) -> ExitStatus {
        let pid = self.pid().expect("stop_with: server not running") as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet, so the pid
        // cannot have been recycled for another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!("server did not exit within {STOP_TIMEOUT:?} after signal {sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful shutdown with SIGTERM; asserts exit code 0.
    pub fn terminate(&mut self) {
        self.graceful_stop(libc::SIGTERM);
    }

    /// Graceful shutdown with `sig` (SIGTERM or SIGINT); asserts exit code 0 and no panic.
    pub fn graceful_stop(&mut self, sig: libc::c_int) {
        let status = self.stop_with(sig);
        assert_eq!(
            status.code(),
            Some(0),
            "signal {sig} must end the server with exit code 0, got {status}"
        );
        self.assert_no_panic();
    }

    /// A `redis` crate connection with bounded I/O.
    pub fn client(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("client url");
        let con = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()));
        con.set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        con.set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        con
    }

    /// A raw RESP connection with bounded I/O.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.port)
    }
}

impl Drop for Server {
    /// Kills the process, then: if the test failed, prints every log of this server (and keeps
    /// the data dir when `LEASEKV_TEST_KEEP_DIRS` is set); if it passed, fails it anyway when
    /// the server panicked at any point (bad input must give an error, never a panic).
    fn drop(&mut self) {
        self.kill9();
        let logs = self.all_logs();
        if std::thread::panicking() {
            if std::env::var_os("LEASEKV_TEST_KEEP_DIRS").is_some() {
                self.dir.disable_cleanup(true);
                eprintln!("kept test dir {}", self.dir.path().display());
            }
            // Shown by the test runner together with the failure.
            eprintln!(
                "===== logs of server (data dir {}) =====\n{logs}",
                self.data_dir().display()
            );
        } else if logs.contains("panicked at") {
            panic!("the server panicked during the test\n{logs}");
        }
    }
}

/// Path of the leasekv binary Cargo built for these tests.
pub fn leasekv_bin() -> &'static str {
    env!("CARGO_BIN_EXE_leasekv")
}

/// Logs at info level (so `ready` and repair messages are visible) without ANSI colours,
/// unless `LEASEKV_TEST_RUST_LOG` asks for another filter.
pub fn configure_log_env(cmd: &mut Command) {
    let filter = std::env::var("LEASEKV_TEST_RUST_LOG").unwrap_or_else(|_| "info".to_string());
    cmd.env("RUST_LOG", filter).env("NO_COLOR", "1");
}

/// Runs leasekv with `args` (no harness defaults) and waits (bounded) for it to exit.
/// Returns (exit status, stderr). For startup errors, which must exit on their own.
pub fn run_leasekv_to_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let err_path = dir.path().join("stderr");
    let mut cmd = Command::new(leasekv_bin());
    cmd.args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&err_path).expect("stderr file")));
    configure_log_env(&mut cmd);
    let mut child = cmd.spawn().expect("spawn leasekv");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, read_lossy(&err_path));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "leasekv {args:?} did not exit within {timeout:?}\nstderr:\n{}",
                read_lossy(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// True when some log line contains `ready` as a whole word ("already" does not count).
fn logged_ready(log: &str) -> bool {
    log.lines().any(|line| {
        let lower = line.to_lowercase();
        lower.match_indices("ready").any(|(i, m)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + m.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    })
}
