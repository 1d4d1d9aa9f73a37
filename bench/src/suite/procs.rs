//! Child processes of the suite (servers): spawned with their output in a log file, told
//! to die with the runner (PR_SET_PDEATHSIG), registered so Ctrl-C or the suite's
//! watchdog can kill them, and stopped by pid (SIGTERM, then SIGKILL after a grace time).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pids of live children, for the signal handler and the watchdog.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Scratch directories to remove on an abnormal exit.
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends `sig` to `pid` (a child of ours).
fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped (reaping
    // removes it from LIVE first, see `Proc::reap`).
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// SIGKILLs every registered child and removes the scratch directories: the last act of
/// the runner on Ctrl-C, SIGTERM or a blown deadline.
pub fn kill_all_and_clean() {
    for &pid in lock(&LIVE).iter() {
        signal(pid, libc::SIGKILL);
    }
    for d in lock(&DIRS).iter() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Registers a scratch directory for removal on abnormal exit.
pub fn register_dir(dir: &Path) {
    lock(&DIRS).push(dir.to_path_buf());
}

/// Installs the SIGINT/SIGTERM handler thread: kill every child, clean up, exit 130.
pub fn install_signal_handler() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("suite-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("leasekv-bench: signal {sig}: stopping every server and exiting");
                kill_all_and_clean();
                std::process::exit(130);
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// Kills every child and exits if the suite is still running at `deadline` (a backstop:
/// every step has its own, shorter deadline).
pub fn start_watchdog(limit: Duration) {
    let until = Instant::now() + limit;
    let _ = std::thread::Builder::new()
        .name("suite-watchdog".into())
        .spawn(move || {
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(500));
            }
            eprintln!(
                "leasekv-bench: the suite exceeded its {}s limit: stopping every server",
                limit.as_secs()
            );
            kill_all_and_clean();
            std::process::exit(124);
        });
}

/// A running child process, stopped (and reaped) on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
        // The child is killed when the runner's spawning thread dies, even by SIGKILL.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let program = format!("{:?}", cmd.get_program());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({program}): {e}"))?;
        lock(&LIVE).push(child.id());
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Exit status if it has exited (then it is reaped).
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.reap();
        Some(status.to_string())
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGKILL now (failover injection), and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Unregister first: once reaped, the pid may belong to someone else.
            let pid = c.id();
            lock(&LIVE).retain(|&p| p != pid);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(c) = self.child.as_mut() else {
            return;
        };
        if matches!(c.try_wait(), Ok(None)) {
            signal(c.id(), libc::SIGTERM);
            let until = Instant::now() + grace;
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Forgets a child that has been reaped (by `try_wait`).
    fn reap(&mut self) {
        if let Some(c) = self.child.take() {
            let pid = c.id();
            lock(&LIVE).retain(|&p| p != pid);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
