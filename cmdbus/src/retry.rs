//! How often and how late a transiently failing command is tried again.

use std::time::Duration;

/// Retry policy of a command type.
///
/// `max_attempts` counts every attempt, the first one included, and every
/// lease a crashed worker consumed. After a failed attempt `n`, the next one
/// is due after `backoff[n - 1]` (the last delay repeats when the schedule is
/// shorter than the attempts).
///
/// ```
/// use std::time::Duration;
/// use cmdbus::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.max_attempts(), 3);
/// assert_eq!(policy.delay_after(1), Duration::from_secs(10));
/// assert_eq!(policy.delay_after(2), Duration::from_secs(60));
/// assert_eq!(policy.delay_after(9), Duration::from_secs(300));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Vec<Duration>,
    jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            backoff: vec![
                Duration::from_secs(10),
                Duration::from_secs(60),
                Duration::from_secs(300),
            ],
            jitter: 0.0,
        }
    }
}

impl RetryPolicy {
    /// Attempts when nothing else is said.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    /// Sets the number of attempts (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Sets the backoff schedule. An empty schedule means "retry at once".
    #[must_use]
    pub fn with_backoff(mut self, backoff: Vec<Duration>) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the backoff schedule in milliseconds (what `#[command(backoff = …)]` emits).
    #[must_use]
    pub fn with_backoff_millis(self, millis: &[u64]) -> Self {
        self.with_backoff(millis.iter().copied().map(Duration::from_millis).collect())
    }

    /// Spreads each delay uniformly over `delay × (1 ± jitter)`, so commands
    /// that failed together do not retry together. `jitter` is clamped to 0..=1.
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
        self
    }

    /// The number of attempts before the command goes to the troubleshooting queue.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff schedule.
    pub fn backoff(&self) -> &[Duration] {
        &self.backoff
    }

    /// The delay before the attempt that follows failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let index = (attempt.max(1) - 1) as usize;
        let base = match self.backoff.get(index).or_else(|| self.backoff.last()) {
            Some(delay) => *delay,
            None => return Duration::ZERO,
        };
        if self.jitter == 0.0 {
            return base;
        }
        // A uniform sample in [-1, 1) from the OS random source behind UUIDv4.
        let random = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64;
        base.mul_f64(1.0 + self.jitter * (2.0 * random - 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_repeats_its_last_delay() {
        let policy = RetryPolicy::default().with_backoff_millis(&[5, 50]).with_max_attempts(0);
        assert_eq!(policy.max_attempts(), 1);
        assert_eq!(policy.delay_after(0), Duration::from_millis(5));
        assert_eq!(policy.delay_after(1), Duration::from_millis(5));
        assert_eq!(policy.delay_after(2), Duration::from_millis(50));
        assert_eq!(policy.delay_after(3), Duration::from_millis(50));
        assert_eq!(RetryPolicy::default().with_backoff(vec![]).delay_after(1), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let policy = RetryPolicy::default().with_backoff_millis(&[1_000]).with_jitter(0.5);
        let delays: Vec<Duration> = (0..200).map(|_| policy.delay_after(1)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_millis(1_500))
        );
        assert!(delays.iter().any(|d| *d != delays[0]));
        assert_eq!(
            RetryPolicy::default().with_jitter(f64::NAN).delay_after(1),
            Duration::from_secs(10)
        );
    }
}
