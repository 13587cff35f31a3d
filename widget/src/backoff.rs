//! Reconnect delays: exponential backoff with full jitter applied *after* the cap.
//!
//! socket.io-style clients jitter first and cap afterwards, so once the exponent passes the cap
//! every client of a mass reconnect (a hub restart) retries at exactly the cap, in lock-step.
//! Capping the ceiling first and then drawing uniformly from `[0, ceiling)` keeps the herd
//! spread over the whole window at every attempt (AWS "full jitter").

/// Exponential backoff state for one kind of retry (reconnect, probe, poll).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base_ms: u32,
    cap_ms: u32,
    attempt: u32,
}

impl Backoff {
    /// A backoff whose first ceiling is `base_ms` and which never exceeds `cap_ms`.
    pub(crate) const fn new(base_ms: u32, cap_ms: u32) -> Self {
        Backoff { base_ms, cap_ms, attempt: 0 }
    }

    /// The ceiling for the current attempt: `min(cap, base * 2^attempt)`.
    pub(crate) fn ceiling_ms(&self) -> u32 {
        let exp = self.attempt.min(31);
        let raw = u64::from(self.base_ms) << exp;
        raw.min(u64::from(self.cap_ms)) as u32
    }

    /// The next delay, given a uniform random number in `[0, 1)`, and counts the attempt.
    pub(crate) fn next_delay_ms(&mut self, uniform: f64) -> u32 {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let u = if uniform.is_finite() { uniform.clamp(0.0, 1.0) } else { 0.0 };
        // `as` saturates; u < 1 keeps the result below the ceiling.
        ((f64::from(ceiling)) * u) as u32
    }

    /// Attempts made since the last reset.
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Called after a success: the next failure starts from the base again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let mut b = Backoff::new(500, 30_000);
        let ceilings: Vec<u32> = (0..10)
            .map(|_| {
                let c = b.ceiling_ms();
                b.next_delay_ms(0.5);
                c
            })
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    }

    #[test]
    fn jitter_is_applied_after_the_cap() {
        // Far past the cap, delays still spread over [0, cap): not all equal to the cap.
        let mut b = Backoff::new(500, 30_000);
        for _ in 0..20 {
            b.next_delay_ms(0.0);
        }
        assert_eq!(b.next_delay_ms(0.0), 0);
        assert_eq!(b.next_delay_ms(0.5), 15_000);
        assert_eq!(b.next_delay_ms(0.999_999), 29_999);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(u32::MAX, u32::MAX);
        for _ in 0..100 {
            assert!(b.next_delay_ms(0.9) < u32::MAX);
        }
        assert_eq!(b.ceiling_ms(), u32::MAX);
    }

    #[test]
    fn bad_random_input_is_clamped() {
        let mut b = Backoff::new(1000, 1000);
        assert_eq!(b.next_delay_ms(f64::NAN), 0);
        assert_eq!(b.next_delay_ms(-3.0), 0);
        assert_eq!(b.next_delay_ms(7.0), 1000);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(100, 10_000);
        b.next_delay_ms(0.1);
        b.next_delay_ms(0.1);
        assert_eq!(b.attempts(), 2);
        b.reset();
        assert_eq!(b.ceiling_ms(), 100);
    }
}
