//! Refused `Origin` values in the log, bounded: each value clipped to [`MAX_LOGGED_CHARS`]
//! characters (on a character boundary), each distinct value written at most once per
//! [`WINDOW`], and the refusals not written summed up in one line when the window ends (written
//! with the first refusal after it). A request with a 60 KB `Origin` used to write 60 KB of INFO
//! log, so a client could fill a disk at the speed of its uplink; now a flood of them writes a
//! few short lines a minute. `natter_errors_total{code="forbidden_origin"}` still counts every
//! refusal.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The most characters of a refused `Origin` the hub writes to its log or answers with.
pub(crate) const MAX_LOGGED_CHARS: usize = 100;

/// How long a logged origin is not logged again.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Distinct origins written per window; past that, refusals are only counted.
const MOST_PER_WINDOW: usize = 32;

/// `value` cut to at most `max` characters, marked with `…` when cut.
pub(crate) fn clip(value: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(max) {
        None => value.into(),
        Some((at, _)) => format!("{}…", &value[..at]).into(),
    }
}

/// See the module docs. One per hub.
#[derive(Debug, Default)]
pub(crate) struct RefusedOrigins(Mutex<Window>);

/// The current window.
#[derive(Debug, Default)]
struct Window {
    /// When it started; `None` before the first refusal.
    started: Option<Instant>,
    /// The (clipped) origins written in it.
    written: HashSet<String>,
    /// Refusals in it that were not written.
    unwritten: u64,
}

/// What to write for one refusal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Lines {
    /// Refusals the window that just ended did not write, if any: one summary line.
    pub(crate) summary: Option<u64>,
    /// Whether to write this refusal's origin.
    pub(crate) write: bool,
}

impl RefusedOrigins {
    /// Records a refusal of `origin` (clipped already) at `now`: what to write for it.
    pub(crate) fn refused(&self, origin: &str, now: Instant) -> Lines {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut summary = None;
        if w.started.is_none_or(|s| now.saturating_duration_since(s) >= WINDOW) {
            summary = Some(std::mem::take(&mut w.unwritten)).filter(|n| *n > 0);
            w.written.clear();
            w.started = Some(now);
        }
        let write = w.written.len() < MOST_PER_WINDOW && !w.written.contains(origin);
        if write {
            w.written.insert(origin.to_owned());
        } else {
            w.unwritten += 1;
        }
        Lines { summary, write }
    }

    /// Logs a refusal of `origin` (clipped already) as [`RefusedOrigins::refused`] says.
    pub(crate) fn log(&self, origin: &str) {
        let lines = self.refused(origin, Instant::now());
        if let Some(n) = lines.summary {
            tracing::info!(
                refusals = n,
                "refused origins: {n} more requests from origins already logged (or past {MOST_PER_WINDOW} distinct \
                 ones) in the last {} s",
                WINDOW.as_secs()
            );
        }
        if lines.write {
            tracing::info!(%origin, "refused origin (each origin logged at most once a minute)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("https://a.example", 100), "https://a.example");
        let long = "é".repeat(30_000);
        let clipped = clip(&long, MAX_LOGGED_CHARS);
        assert_eq!(clipped.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }

    #[tokio::test(start_paused = true)]
    async fn each_origin_once_a_window_then_a_summary() {
        let log = RefusedOrigins::default();
        let t0 = Instant::now();
        let write = Lines { summary: None, write: true };
        let quiet = Lines { summary: None, write: false };
        assert_eq!(log.refused("https://evil.example", t0), write);
        for _ in 0..1000 {
            assert_eq!(log.refused("https://evil.example", t0 + Duration::from_secs(1)), quiet);
        }
        assert_eq!(log.refused("https://other.example", t0 + Duration::from_secs(2)), write);
        // Past the window: the summary of the 1000, and the origin written again.
        let later = t0 + WINDOW + Duration::from_secs(1);
        assert_eq!(log.refused("https://evil.example", later), Lines { summary: Some(1000), write: true });
        assert_eq!(log.refused("https://evil.example", later), quiet);
    }

    #[tokio::test(start_paused = true)]
    async fn many_distinct_origins_are_counted_not_written() {
        let log = RefusedOrigins::default();
        let now = Instant::now();
        let written = (0..1000).filter(|i| log.refused(&format!("https://{i}.example"), now).write).count();
        assert_eq!(written, MOST_PER_WINDOW);
        let next = log.refused("https://x.example", now + WINDOW);
        assert_eq!(next.summary, Some(1000 - MOST_PER_WINDOW as u64));
    }
}
