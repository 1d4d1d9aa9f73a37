//! Lease duration and the bound it must stay under.

use std::fmt;

/// Lease tuning. `duration_ns` must be strictly less than
/// [`max_lease_duration_ns`] for the group's election timeout, tick and drift margin
/// (see [`LeaseConfig::check`]); a duration of 0 disables lease reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub duration_ns: u64,
}

/// Why a [`LeaseConfig`] is unsafe for a given election timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseConfigError {
    /// `(election_ticks - 1) * tick_ns - drift_ns` is not positive (or overflows): no lease
    /// duration is safe with these settings.
    NoSafeDuration {
        election_ticks: usize,
        tick_ns: u64,
        drift_ns: u64,
    },
    /// The duration is not strictly below the bound.
    TooLong { duration_ns: u64, bound_ns: u64 },
}

impl fmt::Display for LeaseConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseConfigError::NoSafeDuration {
                election_ticks,
                tick_ns,
                drift_ns,
            } => write!(
                f,
                "no lease duration is safe: (election_ticks {election_ticks} - 1) * tick \
                 {tick_ns} ns - drift {drift_ns} ns is not positive"
            ),
            LeaseConfigError::TooLong {
                duration_ns,
                bound_ns,
            } => write!(
                f,
                "lease duration {duration_ns} ns must be strictly less than {bound_ns} ns \
                 ((election_ticks - 1) * tick - drift)"
            ),
        }
    }
}

impl std::error::Error for LeaseConfigError {}

impl LeaseConfig {
    /// Checks `duration_ns < max_lease_duration_ns(election_ticks, tick_ns, drift_ns)`.
    /// A zero duration (lease reads off) is always accepted.
    pub fn check(
        &self,
        election_ticks: usize,
        tick_ns: u64,
        drift_ns: u64,
    ) -> Result<(), LeaseConfigError> {
        if self.duration_ns == 0 {
            return Ok(());
        }
        let bound_ns = max_lease_duration_ns(election_ticks, tick_ns, drift_ns).ok_or(
            LeaseConfigError::NoSafeDuration {
                election_ticks,
                tick_ns,
                drift_ns,
            },
        )?;
        if self.duration_ns < bound_ns {
            Ok(())
        } else {
            Err(LeaseConfigError::TooLong {
                duration_ns: self.duration_ns,
                bound_ns,
            })
        }
    }
}

/// `(election_ticks - 1) * tick_ns - drift_ns`: the time, on the leader's clock, for which a
/// follower that just heard from the leader is guaranteed to refuse votes to anyone else
/// (see the module documentation). `None` if that is not positive or does not fit in a
/// `u64`. A lease duration must be strictly less than this.
pub fn max_lease_duration_ns(election_ticks: usize, tick_ns: u64, drift_ns: u64) -> Option<u64> {
    let ticks = u64::try_from(election_ticks).ok()?.checked_sub(1)?;
    ticks
        .checked_mul(tick_ns)?
        .checked_sub(drift_ns)
        .filter(|bound| *bound > 0)
}
