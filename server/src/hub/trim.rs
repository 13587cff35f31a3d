//! Giving freed memory back to the operating system after a burst: glibc's allocator keeps the
//! pages of freed blocks in its arenas, so after an attack that made the hub hold 200 MB of
//! conversations and history, the hub's resident size stayed at 200 MB once they were gone
//! (`malloc_trim(0)` brought it to 88 MB). Housekeeping asks glibc to return them, at most once
//! per [`TRIM_EVERY`] and only when the hub let go of something since the last time (see
//! [`TrimPolicy`]). Nothing is logged per call. Other platforms and allocators need nothing:
//! there this is a no-op.

use std::time::Duration;

use tokio::time::Instant;

/// The shortest time between two trims.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(60);

/// A trim that takes this long is logged (a warning): glibc holds each arena's lock while it
/// walks it, so the hub's other threads may have waited to allocate meanwhile.
pub(crate) const SLOW_TRIM: Duration = Duration::from_millis(100);

/// When to trim: what the hub holds is measured on every housekeeping tick (conversations in
/// memory plus open connections); a trim is due when the measure fell below its highest point
/// since the last trim (the hub let go of something), or the sweep forgot conversations, and
/// [`TRIM_EVERY`] has passed since the last trim.
#[derive(Debug, Default)]
pub(crate) struct TrimPolicy {
    /// When the last trim ran.
    last: Option<Instant>,
    /// The highest measure since then.
    peak: u64,
}

impl TrimPolicy {
    /// Records what the hub holds now (`held`) and whether housekeeping just `released`
    /// something; `true` when a trim is due (and counts it as done).
    pub(crate) fn due(&mut self, now: Instant, held: u64, released: bool) -> bool {
        self.peak = self.peak.max(held);
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < TRIM_EVERY) {
            return false;
        }
        if !released && held >= self.peak {
            return false;
        }
        self.last = Some(now);
        self.peak = held;
        true
    }
}

/// Returns freed heap pages to the operating system (glibc's `malloc_trim(0)`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the one foreign call of the hub; see the SAFETY note
pub(crate) fn release_free_memory() {
    // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state under
    // its own locks, and is documented as safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Nothing to do off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn trims_after_memory_is_let_go_at_most_once_a_minute() {
        let mut p = TrimPolicy::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Growing or steady: nothing to give back.
        assert!(!p.due(at(0), 10, false));
        assert!(!p.due(at(30), 5_000, false));
        assert!(!p.due(at(60), 5_000, false));
        // The attack's conversations are gone: trim.
        assert!(p.due(at(90), 40, true));
        // Gone further within the minute: wait for it.
        assert!(!p.due(at(120), 20, true));
        assert!(p.due(at(150), 20, false), "below the peak since the last trim");
        // Quiet from then on: no trim.
        assert!(!p.due(at(300), 20, false));
        assert!(!p.due(at(900), 20, false));
    }

    #[test]
    fn releasing_memory_can_be_called_any_time() {
        let v: Vec<Vec<u8>> = (0..1000).map(|_| vec![1u8; 4096]).collect();
        drop(v);
        release_free_memory();
        release_free_memory();
    }
}
