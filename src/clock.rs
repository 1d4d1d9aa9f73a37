//! Wall-clock time for write stamps and key expiry (Unix milliseconds).
//!
//! Expiry is defined on wall time (EXPIREAT takes Unix seconds), so this is the realtime
//! clock; Raft timing and deadlines use the executor's monotonic timers instead.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
