//! Open-loop send schedule and the pacer that walks it.
//!
//! Times are nanoseconds since the run start (a plain `u64`, so tests drive the pacer with
//! a fake clock). The offered `rate` is split evenly over connections and the connections
//! are phase-shifted, so together they form one evenly spaced stream: request `k` of the
//! whole run is intended at `k / rate`, and connection `c` owns every `k` with
//! `k % connections == c`.

/// The intended send times of one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenLoopSchedule {
    rate: f64,
    connections: u64,
    conn: u64,
}

impl OpenLoopSchedule {
    /// `None` unless `rate > 0` is finite and `conn < connections`.
    pub fn new(rate: f64, connections: usize, conn: usize) -> Option<Self> {
        (rate.is_finite() && rate > 0.0 && conn < connections).then_some(OpenLoopSchedule {
            rate,
            connections: connections as u64,
            conn: conn as u64,
        })
    }

    /// Requests per second on this connection.
    pub fn per_connection_rate(&self) -> f64 {
        self.rate / self.connections as f64
    }

    /// Intended send time of this connection's request `i` (saturates far in the future).
    pub fn intended_ns(&self, i: u64) -> u64 {
        let k = i as f64 * self.connections as f64 + self.conn as f64;
        (k * 1e9 / self.rate) as u64
    }

    /// How many of this connection's requests are intended strictly before `t_ns`.
    pub fn count_before(&self, t_ns: u64) -> u64 {
        // Estimate from the inverse, then correct for float rounding (a step or two).
        let k = t_ns as f64 * self.rate / 1e9;
        let est = ((k - self.conn as f64) / self.connections as f64).ceil();
        let mut i = if est > 0.0 { est as u64 } else { 0 };
        while i > 0 && self.intended_ns(i - 1) >= t_ns {
            i -= 1;
        }
        while self.intended_ns(i) < t_ns {
            i += 1;
        }
        i
    }
}

/// Hands out a connection's scheduled requests once they are due, strictly in order and
/// each with its original intended time, however late they are taken: after a stall the
/// caller catches up by taking every due request its free pipeline slots allow, and the
/// latency of each is still measured from when it should have been sent.
#[derive(Debug, Clone)]
pub struct Pacer {
    schedule: OpenLoopSchedule,
    next: u64,
    end_ns: u64,
}

impl Pacer {
    /// Requests intended at or after `end_ns` are never handed out.
    pub fn new(schedule: OpenLoopSchedule, end_ns: u64) -> Self {
        Pacer {
            schedule,
            next: 0,
            end_ns,
        }
    }

    /// Intended time of the next request, `None` when the schedule is exhausted.
    pub fn peek(&self) -> Option<u64> {
        let t = self.schedule.intended_ns(self.next);
        (t < self.end_ns).then_some(t)
    }

    /// Takes the next request if it is due at `now_ns`; returns its intended time.
    pub fn take_due(&mut self, now_ns: u64) -> Option<u64> {
        let t = self.peek().filter(|&t| t <= now_ns)?;
        self.next += 1;
        Some(t)
    }

    /// Requests taken so far.
    pub fn taken(&self) -> u64 {
        self.next
    }

    /// Requests due at `now_ns` but not taken yet: how far behind schedule this connection is.
    pub fn backlog(&self, now_ns: u64) -> u64 {
        let due = self
            .schedule
            .count_before(now_ns.saturating_add(1).min(self.end_ns));
        due.saturating_sub(self.next)
    }

    /// Requests intended in `[from_ns, to_ns)` that were never taken.
    pub fn untaken_between(&self, from_ns: u64, to_ns: u64) -> u64 {
        let lo = self.schedule.count_before(from_ns).max(self.next);
        let hi = self.schedule.count_before(to_ns.min(self.end_ns));
        hi.saturating_sub(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_into_one_even_stream() {
        // 1000 ops/s over 4 connections: one request per ms overall, 4 ms apart per connection.
        let mut all: Vec<u64> = (0..4)
            .flat_map(|c| {
                let s = OpenLoopSchedule::new(1000.0, 4, c).unwrap();
                (0..5).map(move |i| s.intended_ns(i))
            })
            .collect();
        all.sort_unstable();
        let expected: Vec<u64> = (0..20).map(|k| k * 1_000_000).collect();
        assert_eq!(all, expected);
        let s = OpenLoopSchedule::new(1000.0, 4, 1).unwrap();
        assert_eq!(s.per_connection_rate(), 250.0);
        assert!(OpenLoopSchedule::new(0.0, 4, 0).is_none());
        assert!(OpenLoopSchedule::new(10.0, 4, 4).is_none());
    }

    #[test]
    fn count_before_is_exact() {
        for (rate, conns, c) in [(1000.0, 4, 3), (333.3, 7, 2), (1e6, 1, 0), (0.5, 3, 1)] {
            let s = OpenLoopSchedule::new(rate, conns, c).unwrap();
            for i in 0..50u64 {
                let t = s.intended_ns(i);
                assert_eq!(s.count_before(t), i, "rate {rate} i {i}");
                assert_eq!(s.count_before(t + 1), i + 1, "rate {rate} i {i}");
            }
        }
    }

    #[test]
    fn pacer_releases_requests_only_when_due() {
        // One connection at 1000/s: intended 0, 1 ms, 2 ms, ...
        let mut p = Pacer::new(OpenLoopSchedule::new(1000.0, 1, 0).unwrap(), 10_000_000);
        assert_eq!(p.take_due(0), Some(0));
        assert_eq!(p.take_due(999_999), None);
        assert_eq!(p.peek(), Some(1_000_000));
        assert_eq!(p.take_due(1_000_000), Some(1_000_000));
        assert_eq!(p.backlog(1_500_000), 0);
    }

    #[test]
    fn catch_up_after_a_stall_keeps_intended_times() {
        let ms = 1_000_000;
        let mut p = Pacer::new(OpenLoopSchedule::new(1000.0, 1, 0).unwrap(), 100 * ms);
        assert_eq!(p.take_due(0), Some(0));
        // The generator stalls until 10.5 ms: requests 1..=10 are overdue.
        let now = 10 * ms + ms / 2;
        assert_eq!(p.backlog(now), 10);
        // Only 3 pipeline slots are free: the first 3 go out, stamped 1, 2, 3 ms.
        let first: Vec<u64> = (0..3).map_while(|_| p.take_due(now)).collect();
        assert_eq!(first, [ms, 2 * ms, 3 * ms]);
        assert_eq!(p.backlog(now), 7);
        // Later (slots freed at 12 ms) the rest follow with their original times, and
        // the schedule continues from there rather than restarting at "now".
        let now = 12 * ms;
        let rest: Vec<u64> = std::iter::from_fn(|| p.take_due(now)).collect();
        let want: Vec<u64> = (4..=12).map(|i| i * ms).collect();
        assert_eq!(rest, want);
        assert_eq!(p.backlog(now), 0);
        assert_eq!(p.peek(), Some(13 * ms));
        assert_eq!(p.taken(), 13);
    }

    #[test]
    fn schedule_ends_at_end_and_counts_untaken() {
        let ms = 1_000_000;
        let mut p = Pacer::new(OpenLoopSchedule::new(1000.0, 1, 0).unwrap(), 5 * ms);
        let taken: Vec<u64> = std::iter::from_fn(|| p.take_due(u64::MAX)).collect();
        assert_eq!(taken, [0, ms, 2 * ms, 3 * ms, 4 * ms]);
        assert_eq!(p.peek(), None);

        let mut p = Pacer::new(OpenLoopSchedule::new(1000.0, 1, 0).unwrap(), 10 * ms);
        while p.take_due(3 * ms).is_some() {}
        // Taken: 0..=3 ms. Window [2 ms, 10 ms) still holds 4..=9 ms untaken.
        assert_eq!(p.untaken_between(2 * ms, 10 * ms), 6);
        assert_eq!(p.untaken_between(2 * ms, 50 * ms), 6);
        assert_eq!(p.untaken_between(8 * ms, 10 * ms), 2);
    }
}
