//! Lock-free request latency histograms: one fixed-bucket histogram per (core, command family).
//!
//! Only the owning core records into its histograms (so no cache line bounces between cores
//! on the request path); the metrics endpoint on core 0 reads them all. Recording is two
//! relaxed atomic adds and no allocation. A scrape reads buckets and sum one at a time, so a
//! scrape racing a record may see the bucket but not yet the sum (or the reverse): fine for
//! statistics, and `count` is derived from the buckets so `_count` always equals the `+Inf`
//! bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::command::COMMANDS;

/// Upper bounds (inclusive, nanoseconds) of the finite buckets: 1-2-5 steps from 10 us to
/// 10 s. Ascending; a last, implicit bucket takes everything above (`le="+Inf"`).
pub const BOUNDS_NS: [u64; 19] = [
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Finite buckets plus the overflow bucket.
pub const BUCKETS: usize = BOUNDS_NS.len() + 1;

/// The bucket a duration of `ns` falls in: the first whose bound is >= `ns` (Prometheus' `le`),
/// or `BOUNDS_NS.len()` (the overflow bucket) when it exceeds every bound. Always < `BUCKETS`.
pub fn bucket_index(ns: u64) -> usize {
    BOUNDS_NS.partition_point(|&bound| bound < ns)
}

/// One histogram. Aligned to a cache line so two histograms never share one.
#[repr(align(64))]
pub struct Histogram {
    /// Non-cumulative counts per bucket.
    buckets: [AtomicU64; BUCKETS],
    /// Sum of all recorded durations, nanoseconds (wraps after ~584 years of latency).
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        self.record_ns(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&self, ns: u64) {
        // bucket_index < BUCKETS, so the index is in range (the check compiles to a compare).
        if let Some(b) = self.buckets.get(bucket_index(ns)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A plain copy of a histogram at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Non-cumulative counts, indexed like `BOUNDS_NS` plus the overflow bucket.
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }
}

/// Command families: every top-level command of the command table (`COMMANDS[i]` is family
/// `i`), then the admin command, then everything else. Family indices are stable for the
/// life of the process.
pub fn family_count() -> usize {
    COMMANDS.len() + 2
}

const ADMIN: &str = "leasekv.admin";
const OTHER: &str = "other";

/// The family of a command named `name` (any case). Unknown names (and subcommand-style
/// `a|b` names, which are not commands) are "other", so the label set stays bounded.
///
/// A linear scan of ~50 names, on the request path: `eq_ignore_ascii_case` rejects on length
/// first, and the hot commands (get, set) come first in the table.
pub fn family_of(name: &[u8]) -> usize {
    if let Some(i) = COMMANDS
        .iter()
        .position(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
    {
        return i;
    }
    if crate::admin::is_admin(name) {
        COMMANDS.len()
    } else {
        COMMANDS.len() + 1
    }
}

/// The lower-case label value of family `f` ("other" for an out-of-range index).
pub fn family_name(f: usize) -> &'static str {
    match COMMANDS.get(f) {
        Some(c) => c.name,
        None if f == COMMANDS.len() => ADMIN,
        None => OTHER,
    }
}

/// Every core's histograms, one per command family.
pub struct Latency {
    /// `per_core[core][family]`; each core's row is its own allocation.
    per_core: Vec<Box<[Histogram]>>,
}

impl Latency {
    pub fn new(cores: usize) -> Latency {
        Latency {
            per_core: (0..cores)
                .map(|_| (0..family_count()).map(|_| Histogram::default()).collect())
                .collect(),
        }
    }

    pub fn cores(&self) -> usize {
        self.per_core.len()
    }

    /// Records one command of `family` on `core`. Out-of-range indices are ignored.
    pub fn record(&self, core: usize, family: usize, elapsed: Duration) {
        if let Some(h) = self.histogram(core, family) {
            h.record(elapsed);
        }
    }

    pub fn histogram(&self, core: usize, family: usize) -> Option<&Histogram> {
        self.per_core.get(core)?.get(family)
    }
}
