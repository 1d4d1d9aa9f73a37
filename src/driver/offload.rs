//! Runs O(state) snapshot work off the core: encoding a snapshot build, decoding a received
//! snapshot, freeing a replaced state.
//!
//! Each job gets a short-lived helper thread that is **not pinned to the core's CPU** and runs
//! **at a lower priority** (nice +10). A new thread inherits its creator's CPU affinity, and
//! glommio pinned the executor thread (its `spawn_blocking` pool is pinned to the same CPU
//! too), so without resetting the affinity the job would compete with the very core it is
//! meant to spare. With it, the kernel runs the job on whichever CPU has room, and on a busy
//! machine the executors win: a snapshot then takes longer rather than stalling requests.
//!
//! Bound: the driver keeps at most one build per core and one decode per group in flight,
//! plus one free per finished install, so the helper threads of a core are bounded by its
//! group count.

use std::sync::{Arc, Mutex};

/// Priority of helper threads relative to the executors (nice value, 0..=19).
const HELPER_NICE: libc::c_int = 10;

/// Runs `f` on a helper thread and returns its result. If no thread can be started, runs
/// `f` here instead (a stall, but never a lost snapshot). Err only if `f` panicked.
pub async fn run<R, F>(what: &'static str, f: F) -> Result<R, String>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (tx, rx) = futures_channel::oneshot::channel();
    // Shared so the closure can be taken back when the thread cannot be started.
    let job = Arc::new(Mutex::new(Some(f)));
    let theirs = job.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("leasekv-{what}"))
        .spawn(move || {
            prepare_helper_thread();
            let f = theirs.lock().ok().and_then(|mut j| j.take());
            if let Some(f) = f {
                let _ = tx.send(f());
            }
        });
    match spawned {
        Ok(_) => rx
            .await
            .map_err(|_| format!("the {what} helper thread failed")),
        Err(e) => {
            tracing::warn!(what, error = %e, "cannot start a helper thread; running on the core");
            let f = job.lock().ok().and_then(|mut j| j.take());
            f.map(|f| f())
                .ok_or_else(|| format!("the {what} job was lost"))
        }
    }
}

/// Drops `value` on a helper thread (freeing a large state is O(state) too).
pub fn drop_later<T: Send + 'static>(value: T) {
    let spawned = std::thread::Builder::new()
        .name("leasekv-free".into())
        .spawn(move || {
            prepare_helper_thread();
            drop(value);
        });
    if let Err(e) = spawned {
        // The value came back with the error's closure and is dropped here.
        tracing::warn!(error = %e, "cannot start a helper thread; freeing on the core");
    }
}

/// Un-pins the calling thread (the process's affinity, i.e. the main thread's, which glommio
/// never pins) and lowers its priority. Best effort: failures only cost performance.
fn prepare_helper_thread() {
    // SAFETY: plain syscalls on a zeroed cpu_set_t of the right size; only this thread's
    // affinity and nice value change (Linux applies both per thread).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let main = libc::getpid();
        if libc::sched_getaffinity(main, size, &mut set) == 0 {
            libc::sched_setaffinity(0, size, &set);
        }
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, HELPER_NICE);
    }
}
