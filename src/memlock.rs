//! Locked-memory budget for glommio's io_uring buffers.
//!
//! Each executor registers `io_memory` bytes across 3 rings; registration needs
//! RLIMIT_MEMLOCK (or CAP_IPC_LOCK). We raise the soft limit when the hard limit allows,
//! shrink `io_memory` to fit otherwise, and fail with a clear message below glommio's floor.

const WANT: usize = 1 << 20;
const FLOOR: usize = 512 << 10;
const SLACK: u64 = 1 << 20;

fn has_cap_ipc_lock() -> bool {
    // CapEff in /proc/self/status; CAP_IPC_LOCK is capability 14.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 14) != 0)
}

/// Returns the io_memory to give each of `executors` executors.
pub fn io_memory_per_executor(executors: usize) -> Result<usize, String> {
    if has_cap_ipc_lock() {
        return Ok(WANT);
    }
    let need = (executors as u64) * 3 * WANT as u64 + SLACK;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Ok(FLOOR);
    }
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= need {
        return Ok(WANT);
    }
    let raised = libc::rlimit {
        rlim_cur: need.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
        lim.rlim_cur = raised.rlim_cur;
        if lim.rlim_cur >= need {
            return Ok(WANT);
        }
    }
    let per = (lim.rlim_cur.saturating_sub(SLACK) / (3 * executors as u64)) as usize & !4095;
    if per >= FLOOR {
        tracing::warn!(
            memlock = lim.rlim_cur,
            io_memory = per,
            "RLIMIT_MEMLOCK is low; using less io_uring buffer memory per core"
        );
        return Ok(per);
    }
    Err(format!(
        "RLIMIT_MEMLOCK is {} bytes, but {executors} core(s) need at least {} bytes of locked memory for io_uring; \
         raise it (ulimit -l {} or LimitMEMLOCK= in systemd), run with CAP_IPC_LOCK, or configure fewer cores",
        lim.rlim_cur,
        executors as u64 * 3 * FLOOR as u64 + SLACK,
        need / 1024
    ))
}
