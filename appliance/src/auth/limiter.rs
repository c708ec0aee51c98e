//! Login rate limiting per client address.
//!
//! After [`MAX_FAILURES`] wrong passwords within [`WINDOW`], a client is locked out: every
//! login attempt (right or wrong) is answered 429 until the lockout ends. Each further
//! lockout doubles, up to [`MAX_LOCKOUT`]. A successful login clears the record.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong passwords allowed within [`WINDOW`] before a lockout.
pub const MAX_FAILURES: u32 = 5;
/// The window in which failures are counted.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// The first lockout.
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(60);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Records kept before expired ones are swept.
const SWEEP_ABOVE: usize = 4096;

/// Whether a login attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password.
    Allowed,
    /// Refuse without checking; try again after this long.
    Locked {
        /// Time left in the lockout.
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
    lockouts: u32,
}

/// Failure records by client address (`None`: the local socket).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    records: HashMap<Option<IpAddr>, Record>,
}

impl LoginLimiter {
    /// No records.
    pub fn new() -> Self {
        Self::default()
    }

    /// May `client` try a password now?
    pub fn check(&mut self, client: Option<IpAddr>, now: Instant) -> Verdict {
        match self.records.get(&client).and_then(|r| r.locked_until) {
            Some(until) if until > now => Verdict::Locked {
                retry_after: until - now,
            },
            _ => Verdict::Allowed,
        }
    }

    /// Records a wrong password; returns the verdict for the next attempt.
    pub fn failure(&mut self, client: Option<IpAddr>, now: Instant) -> Verdict {
        if self.records.len() > SWEEP_ABOVE {
            self.sweep(now);
        }
        let record = self.records.entry(client).or_insert(Record {
            failures: 0,
            first_failure: now,
            locked_until: None,
            lockouts: 0,
        });
        if now.duration_since(record.first_failure) > WINDOW {
            record.failures = 0;
            record.first_failure = now;
        }
        record.failures += 1;
        if record.failures >= MAX_FAILURES {
            let factor = 1u32 << record.lockouts.min(8);
            let lockout = (FIRST_LOCKOUT * factor).min(MAX_LOCKOUT);
            record.locked_until = Some(now + lockout);
            record.lockouts = record.lockouts.saturating_add(1);
            record.failures = 0;
            record.first_failure = now;
        }
        self.check(client, now)
    }

    /// Records a successful login: the client starts afresh.
    pub fn success(&mut self, client: Option<IpAddr>) {
        self.records.remove(&client);
    }

    fn sweep(&mut self, now: Instant) {
        self.records.retain(|_, r| {
            r.locked_until.is_some_and(|until| until > now)
                || now.duration_since(r.first_failure) <= WINDOW
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)));
    const B: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 3)));

    #[test]
    fn locks_after_max_failures_then_releases() {
        let mut limiter = LoginLimiter::new();
        let t0 = Instant::now();
        for _ in 1..MAX_FAILURES {
            assert_eq!(limiter.failure(A, t0), Verdict::Allowed);
        }
        assert_eq!(
            limiter.failure(A, t0),
            Verdict::Locked {
                retry_after: FIRST_LOCKOUT
            }
        );
        assert!(matches!(limiter.check(A, t0), Verdict::Locked { .. }));
        // Another client is not affected.
        assert_eq!(limiter.check(B, t0), Verdict::Allowed);
        // After the lockout the client may try again.
        assert_eq!(limiter.check(A, t0 + FIRST_LOCKOUT), Verdict::Allowed);
    }

    #[test]
    fn lockouts_double() {
        let mut limiter = LoginLimiter::new();
        let mut now = Instant::now();
        for _ in 0..MAX_FAILURES {
            limiter.failure(A, now);
        }
        now += FIRST_LOCKOUT;
        let mut last = Verdict::Allowed;
        for _ in 0..MAX_FAILURES {
            last = limiter.failure(A, now);
        }
        assert_eq!(
            last,
            Verdict::Locked {
                retry_after: FIRST_LOCKOUT * 2
            }
        );
    }

    #[test]
    fn success_clears() {
        let mut limiter = LoginLimiter::new();
        let now = Instant::now();
        for _ in 1..MAX_FAILURES {
            limiter.failure(A, now);
        }
        limiter.success(A);
        assert_eq!(limiter.failure(A, now), Verdict::Allowed);
    }
}
