//! Reconnect delays: exponential from `min` to `max`, with jitter so that many lanes that
//! lost the same peer do not reconnect in lockstep.

use std::time::Duration;

pub struct Backoff {
    min: Duration,
    max: Duration,
    /// Failures since the last success.
    attempt: u32,
}

impl Backoff {
    /// `min <= max` (checked at `Transport::start`; a larger `min` is treated as `max`).
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min: min.min(max),
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, in `min..=max`: the ceiling doubles per failure
    /// (`min * 2^attempt`, capped at `max`) and the delay is drawn from its upper half.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .checked_mul(1u32 << self.attempt.min(20))
            .unwrap_or(self.max)
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let span = (ceiling - half).as_micros() as u64;
        let jitter = Duration::from_micros(fastrand::u64(0..=span));
        (half + jitter).clamp(self.min, self.max)
    }

    /// After a successful connection: the next failure waits about `min` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_bounds_and_resets() {
        let min = Duration::from_millis(50);
        let max = Duration::from_millis(2000);
        let mut b = Backoff::new(min, max);
        let first = b.next_delay();
        assert_eq!(first, min, "the first ceiling is min, clamped up to min");
        let mut last_ceiling = min;
        for _ in 0..30 {
            let d = b.next_delay();
            assert!(d >= min && d <= max, "{d:?}");
            last_ceiling = last_ceiling.saturating_mul(2).min(max);
            assert!(
                d >= last_ceiling / 2,
                "{d:?} below half of {last_ceiling:?}"
            );
        }
        // Saturated: always in the upper half of max.
        assert!(b.next_delay() >= max / 2);
        b.reset();
        assert_eq!(b.next_delay(), min);
    }

    #[test]
    fn degenerate_ranges() {
        let d = Duration::from_millis(7);
        let mut b = Backoff::new(d, d);
        for _ in 0..5 {
            assert_eq!(b.next_delay(), d);
        }
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
