//! Latency recording: HDR histograms per worker (merged at the end), error counts by kind,
//! and a per-second time series for latency-over-time plots.

use hdrhistogram::{AdditionError, Histogram};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest latency recorded exactly (1 hour in ns); larger values saturate to it.
pub const LATENCY_MAX_NS: u64 = 3_600_000_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;
/// Per-second histograms are in microseconds with 2 significant digits (1% resolution is
/// plenty for plots and keeps each bucket at ~25 KiB).
const SERIES_MAX_US: u64 = 3_600_000_000;

/// Histogram of nanosecond latencies, 3 significant digits, 1 ns to 1 h.
pub fn latency_histogram() -> Histogram<u64> {
    // Constant, valid bounds: cannot fail.
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3).expect("valid histogram bounds")
}

fn series_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, SERIES_MAX_US, 2).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    /// Summary of a histogram of nanoseconds (all zero when empty).
    pub fn from_ns(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            p9999_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Write,
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered with an error reply; the first word of it (`ERR`, `MOVED`, ...).
    Server(String),
    /// No reply within the timeout (or still outstanding when the run's drain time ran out).
    Timeout,
    /// The connection failed (refused, reset, closed) with the request outstanding.
    Connection,
    /// The reply stream was not valid RESP, or had more replies than requests.
    Protocol,
    /// Open loop: scheduled inside the measured window but never sent before the run ended
    /// (the server was too slow to let the pipeline drain).
    Unsent,
}

impl ErrorKind {
    pub fn label(&self) -> String {
        match self {
            ErrorKind::Server(prefix) => format!("server:{prefix}"),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Connection => "connection".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::Unsent => "unsent".into(),
        }
    }
}

/// One interval of the run (a second unless configured otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSample {
    /// Start of this interval relative to the start of measurement (negative: warm-up).
    pub t_sec: f64,
    /// Successful operations completed in this interval.
    pub ops: u64,
    pub reads: u64,
    pub writes: u64,
    /// Errors detected in this second.
    pub errors: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

#[derive(Debug, Clone, Default)]
struct SecondBucket {
    reads: u64,
    writes: u64,
    errors: u64,
    hist: Option<Histogram<u64>>,
}

/// Per-interval counters and latency histograms, by completion time. Intervals are
/// aligned to the start of measurement: bucket boundaries fall on
/// `window_start + k x interval`, and the warm-up gets the buckets before it (the first one
/// partial when the warm-up is not a whole number of intervals).
#[derive(Debug, Clone)]
pub struct TimeSeries {
    buckets: Vec<SecondBucket>,
    max_buckets: usize,
    interval_ns: u64,
    /// Whole intervals of buckets before the measurement start.
    lead: u64,
    /// Added to a run time so bucket boundaries align with the measurement start.
    shift_ns: u64,
}

impl TimeSeries {
    /// One-second samples. `window_start_ns`: start of measurement in run time. Events
    /// later than about `max_secs` after the run start are not kept (bounds memory).
    pub fn new(max_secs: usize, window_start_ns: u64) -> Self {
        Self::with_interval(max_secs, window_start_ns, NS_PER_SEC)
    }

    /// Samples of `interval_ns` (at least 1 ms) each.
    pub fn with_interval(max_secs: usize, window_start_ns: u64, interval_ns: u64) -> Self {
        let interval_ns = interval_ns.max(1_000_000);
        let lead = window_start_ns.div_ceil(interval_ns);
        let per_sec = NS_PER_SEC.div_ceil(interval_ns) as usize;
        TimeSeries {
            buckets: Vec::new(),
            max_buckets: max_secs.max(1).saturating_mul(per_sec) + 1,
            interval_ns,
            lead,
            shift_ns: lead * interval_ns - window_start_ns,
        }
    }

    fn bucket(&mut self, at_ns: u64) -> Option<&mut SecondBucket> {
        let i = usize::try_from(at_ns.saturating_add(self.shift_ns) / self.interval_ns).ok()?;
        if i >= self.max_buckets {
            return None;
        }
        if self.buckets.len() <= i {
            self.buckets.resize_with(i + 1, SecondBucket::default);
        }
        Some(&mut self.buckets[i])
    }

    pub fn record_ok(&mut self, at_ns: u64, latency_ns: u64, op: OpKind) {
        if let Some(b) = self.bucket(at_ns) {
            match op {
                OpKind::Read => b.reads += 1,
                OpKind::Write => b.writes += 1,
            }
            b.hist
                .get_or_insert_with(series_histogram)
                .saturating_record(latency_ns / 1000);
        }
    }

    pub fn record_errors(&mut self, at_ns: u64, n: u64) {
        if let Some(b) = self.bucket(at_ns) {
            b.errors += n;
        }
    }

    /// Adds `other` (same measurement start) into this series.
    pub fn merge(&mut self, other: &TimeSeries) -> Result<(), AdditionError> {
        if self.buckets.len() < other.buckets.len() {
            self.buckets
                .resize_with(other.buckets.len(), SecondBucket::default);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.reads += theirs.reads;
            mine.writes += theirs.writes;
            mine.errors += theirs.errors;
            if let Some(h) = &theirs.hist {
                mine.hist.get_or_insert_with(series_histogram).add(h)?;
            }
        }
        Ok(())
    }

    /// One sample per second; `t_sec` is relative to the measurement start.
    pub fn samples(&self) -> Vec<SeriesSample> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let q = |q: f64| {
                    b.hist
                        .as_ref()
                        .map_or(0.0, |h| h.value_at_quantile(q) as f64)
                };
                SeriesSample {
                    t_sec: (i as f64 - self.lead as f64) * self.interval_ns as f64 / 1e9,
                    ops: b.reads + b.writes,
                    reads: b.reads,
                    writes: b.writes,
                    errors: b.errors,
                    p50_us: q(0.5),
                    p99_us: q(0.99),
                    max_us: b.hist.as_ref().map_or(0.0, |h| h.max() as f64),
                }
            })
            .collect()
    }
}

/// Everything one worker measured. Totals count only requests whose start (intended send
/// time in open loop, actual send time in closed loop) lies in the measured window
/// `[window_start_ns, window_end_ns)`; the time series counts everything.
#[derive(Debug, Clone)]
pub struct Stats {
    window_start_ns: u64,
    window_end_ns: u64,
    /// Successful requests, by kind and together (ns).
    pub all: Histogram<u64>,
    pub read: Histogram<u64>,
    pub write: Histogram<u64>,
    /// Open loop: actual send minus intended send (ns), whatever the cause.
    pub schedule_lag: Histogram<u64>,
    /// Open loop: actual send minus the moment the generator could have sent (intended time
    /// with a free pipeline slot and a live connection) (ns): the generator's own delay.
    pub generator_lag: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    /// Server error replies (part of `errors`): the server answered, so they count as achieved.
    pub error_replies: u64,
    pub reconnects: u64,
    pub connect_failures: u64,
    /// Largest number of requests a connection had due but not yet sent.
    pub max_backlog: u64,
    pub series: TimeSeries,
}

impl Stats {
    pub fn new(window_start_ns: u64, window_end_ns: u64, series_secs: usize) -> Self {
        Self::with_interval(window_start_ns, window_end_ns, series_secs, NS_PER_SEC)
    }

    /// Like `new`, with time-series samples of `interval_ns`.
    pub fn with_interval(
        window_start_ns: u64,
        window_end_ns: u64,
        series_secs: usize,
        interval_ns: u64,
    ) -> Self {
        Stats {
            window_start_ns,
            window_end_ns,
            all: latency_histogram(),
            read: latency_histogram(),
            write: latency_histogram(),
            schedule_lag: latency_histogram(),
            generator_lag: latency_histogram(),
            errors: BTreeMap::new(),
            error_replies: 0,
            reconnects: 0,
            connect_failures: 0,
            max_backlog: 0,
            series: TimeSeries::with_interval(series_secs, window_start_ns, interval_ns),
        }
    }

    pub fn in_window(&self, start_ns: u64) -> bool {
        (self.window_start_ns..self.window_end_ns).contains(&start_ns)
    }

    /// A successful reply at `done_ns` to a request that started at `start_ns`.
    pub fn record_ok(&mut self, op: OpKind, start_ns: u64, done_ns: u64) {
        let latency = done_ns.saturating_sub(start_ns);
        self.series.record_ok(done_ns, latency, op);
        if self.in_window(start_ns) {
            self.all.saturating_record(latency);
            match op {
                OpKind::Read => self.read.saturating_record(latency),
                OpKind::Write => self.write.saturating_record(latency),
            }
        }
    }

    /// A failed request that started at `start_ns`, detected at `at_ns`.
    pub fn record_error(&mut self, kind: &ErrorKind, start_ns: u64, at_ns: u64) {
        self.series.record_errors(at_ns, 1);
        if self.in_window(start_ns) {
            self.count_errors(kind, 1);
        }
    }

    /// `n` failures already known to lie in the window.
    pub fn count_errors(&mut self, kind: &ErrorKind, n: u64) {
        if n == 0 {
            return;
        }
        if matches!(kind, ErrorKind::Server(_)) {
            self.error_replies += n;
        }
        *self.errors.entry(kind.label()).or_insert(0) += n;
    }

    /// Open loop: a request intended at `intended_ns` that could have gone out at `ready_ns`
    /// was sent at `sent_ns`.
    pub fn record_send(&mut self, intended_ns: u64, ready_ns: u64, sent_ns: u64) {
        if self.in_window(intended_ns) {
            self.schedule_lag
                .saturating_record(sent_ns.saturating_sub(intended_ns));
            self.generator_lag
                .saturating_record(sent_ns.saturating_sub(ready_ns.max(intended_ns)));
        }
    }

    pub fn note_backlog(&mut self, backlog: u64) {
        self.max_backlog = self.max_backlog.max(backlog);
    }

    pub fn ok(&self) -> u64 {
        self.all.len()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds another worker's measurements (same window) into this one.
    pub fn merge(&mut self, other: &Stats) -> Result<(), AdditionError> {
        self.all.add(&other.all)?;
        self.read.add(&other.read)?;
        self.write.add(&other.write)?;
        self.schedule_lag.add(&other.schedule_lag)?;
        self.generator_lag.add(&other.generator_lag)?;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        self.error_replies += other.error_replies;
        self.reconnects += other.reconnects;
        self.connect_failures += other.connect_failures;
        self.max_backlog = self.max_backlog.max(other.max_backlog);
        self.series.merge(&other.series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NS_PER_SEC;

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Stats::new(0, 10 * S, 20);
        let mut b = Stats::new(0, 10 * S, 20);
        let mut one = Stats::new(0, 10 * S, 20);
        for i in 0..1000u64 {
            let (start, lat) = (i * 1_000_000, 10_000 + i * 37);
            let op = if i % 3 == 0 {
                OpKind::Write
            } else {
                OpKind::Read
            };
            let target = if i % 2 == 0 { &mut a } else { &mut b };
            target.record_ok(op, start, start + lat);
            one.record_ok(op, start, start + lat);
        }
        a.record_error(&ErrorKind::Server("ERR".into()), 5, 6);
        b.record_error(&ErrorKind::Server("ERR".into()), 5, 6);
        b.record_error(&ErrorKind::Timeout, 5, 2 * S);
        b.note_backlog(7);
        a.merge(&b).unwrap();
        assert_eq!(a.ok(), 1000);
        assert_eq!(a.read.len() + a.write.len(), 1000);
        assert_eq!(
            LatencySummary::from_ns(&a.all),
            LatencySummary::from_ns(&one.all)
        );
        assert_eq!(a.errors.get("server:ERR"), Some(&2));
        assert_eq!(a.errors.get("timeout"), Some(&1));
        assert_eq!(a.errors_total(), 3);
        assert_eq!(a.error_replies, 2);
        assert_eq!(a.max_backlog, 7);
        assert_eq!(a.series.samples(), {
            let mut o = one.series.clone();
            o.record_errors(6, 2);
            o.record_errors(2 * S, 1);
            o.samples()
        });
    }

    #[test]
    fn window_excludes_warmup_and_late_starts_but_series_keeps_them() {
        let mut s = Stats::new(S, 3 * S, 10);
        s.record_ok(OpKind::Read, S / 2, S / 2 + 100); // warm-up
        s.record_ok(OpKind::Read, S, S + 100); // first measured
        s.record_ok(OpKind::Write, 3 * S - 1, 3 * S + 5); // last measured, done after the end
        s.record_ok(OpKind::Write, 3 * S, 3 * S + 5); // after the window
        s.record_error(&ErrorKind::Connection, 0, 10);
        assert_eq!(s.ok(), 2);
        assert_eq!(s.errors_total(), 0);
        let series = s.series.samples();
        assert_eq!(series.len(), 4);
        assert_eq!(series[0].t_sec, -1.0);
        assert_eq!((series[0].ops, series[0].errors), (1, 1));
        assert_eq!((series[1].ops, series[3].ops, series[3].writes), (1, 2, 2));
    }

    #[test]
    fn series_seconds_align_with_the_measurement_start() {
        // Warm-up 1.5 s: buckets [-2, -1), [-1, 0), [0, 1) ... relative to measurement.
        let mut t = TimeSeries::new(10, 3 * S / 2);
        t.record_ok(0, 1, OpKind::Read); // -1.5 s
        t.record_ok(3 * S / 2 - 1, 1, OpKind::Read); // just before the start
        t.record_ok(3 * S / 2, 1, OpKind::Write); // the start
        t.record_ok(5 * S / 2 - 1, 1, OpKind::Write); // end of the first measured second
        let got: Vec<(f64, u64)> = t.samples().iter().map(|x| (x.t_sec, x.ops)).collect();
        assert_eq!(got, [(-2.0, 1), (-1.0, 1), (0.0, 2)]);
    }

    #[test]
    fn summary_percentiles_are_ordered_and_in_microseconds() {
        let mut h = latency_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap(); // 1 us .. 10 ms
        }
        let s = LatencySummary::from_ns(&h);
        assert_eq!(s.count, 10_000);
        assert!((s.p50_us - 5000.0).abs() / 5000.0 < 0.001, "{}", s.p50_us);
        assert!((s.p99_us - 9900.0).abs() / 9900.0 < 0.001, "{}", s.p99_us);
        assert!(s.min_us <= s.p50_us && s.p50_us <= s.p90_us && s.p90_us <= s.p99_us);
        assert!(s.p99_us <= s.p999_us && s.p999_us <= s.p9999_us && s.p9999_us <= s.max_us);
        assert_eq!(LatencySummary::from_ns(&latency_histogram()).count, 0);
    }

    #[test]
    fn send_lag_splits_server_and_generator_delay() {
        let mut s = Stats::new(0, 10 * S, 10);
        // Intended at 1 ms, slot freed only at 5 ms (server), sent at 5.2 ms (generator).
        s.record_send(1_000_000, 5_000_000, 5_200_000);
        assert_eq!(
            s.schedule_lag.max(),
            s.schedule_lag.highest_equivalent(4_200_000)
        );
        assert_eq!(
            s.generator_lag.max(),
            s.generator_lag.highest_equivalent(200_000)
        );
    }

    #[test]
    fn series_with_short_intervals() {
        // 100 ms samples, measurement from 0.25 s: buckets at -0.3, -0.2, ..., 0, 0.1, ...
        let mut t = TimeSeries::with_interval(5, S / 4, S / 10);
        t.record_ok(S / 4, 7_000, OpKind::Read); // first instant of measurement
        t.record_ok(S / 4 + S / 10 + 1, 9_000, OpKind::Write);
        t.record_ok(S / 4 - 1, 3_000, OpKind::Read); // last instant of warm-up
        let samples = t.samples();
        let at = |x: f64| {
            samples
                .iter()
                .find(|s| (s.t_sec - x).abs() < 1e-9)
                .unwrap_or_else(|| panic!("no sample at {x}: {samples:?}"))
        };
        assert_eq!((at(0.0).reads, at(0.0).writes), (1, 0));
        assert_eq!(at(0.1).writes, 1);
        assert_eq!(at(-0.1).reads, 1);
        assert_eq!(at(0.0).p50_us, 7.0);
    }

    #[test]
    fn series_is_bounded() {
        let mut t = TimeSeries::new(2, 0);
        t.record_ok(5 * S, 1, OpKind::Read);
        t.record_errors(u64::MAX, 1);
        assert!(t.samples().is_empty());
    }
}
