//! Reply failures in the log: the first one at once with its reason, the ones after it summed
//! up in one WARN line at the end of the interval (how many, of which kind, the last reason).
//! A dead backend under load so writes about one line per [`INTERVAL`] instead of one per
//! visitor message; `natter_reply_failures_total` and `natter_reply_shed_total` still count
//! every one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// How long failures after a logged one are summed before the summary line.
pub(crate) const INTERVAL: Duration = Duration::from_secs(60);

/// The failure log of one hub; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct FailureLog {
    interval: Duration,
    /// What the hub does instead of the engine's answer ("answering with the fallback").
    then: &'static str,
    tally: Arc<Mutex<Tally>>,
}

/// Failures since the last line written.
#[derive(Debug, Default)]
struct Tally {
    /// Until when failures are summed rather than written (the end of the current interval).
    quiet_until: Option<Instant>,
    /// Failures summed so far, by kind.
    counts: BTreeMap<&'static str, u64>,
    /// The reason of the latest summed failure.
    last: String,
    /// A summary line is scheduled for `quiet_until`.
    summary_due: bool,
}

/// What to do with one failure.
#[derive(Debug, PartialEq)]
enum Next {
    /// Write it now.
    Write,
    /// Sum it; schedule the summary for this time when none is scheduled yet.
    Sum { summary_at: Option<Instant> },
}

impl Tally {
    fn failed(&mut self, now: Instant, interval: Duration, kind: &'static str, reason: &str) -> Next {
        match self.quiet_until {
            Some(until) if now < until => {
                *self.counts.entry(kind).or_default() += 1;
                reason.clone_into(&mut self.last);
                let first = !std::mem::replace(&mut self.summary_due, true);
                Next::Sum { summary_at: first.then_some(until) }
            }
            _ => {
                self.quiet_until = Some(now + interval);
                Next::Write
            }
        }
    }

    /// The summary of the summed failures, if any; the next interval starts now, so a burst
    /// that goes on keeps to one line per interval.
    fn summary(&mut self, now: Instant, interval: Duration) -> Option<(u64, String, String)> {
        self.summary_due = false;
        if self.counts.is_empty() {
            return None;
        }
        let counts = std::mem::take(&mut self.counts);
        let total = counts.values().sum();
        let mut by_kind = String::new();
        for (kind, n) in counts {
            let sep = if by_kind.is_empty() { "" } else { ", " };
            let _ = write!(by_kind, "{sep}{n} {kind}");
        }
        self.quiet_until = Some(now + interval);
        Some((total, by_kind, std::mem::take(&mut self.last)))
    }
}

impl FailureLog {
    /// A log that sums failures for `interval` after each line it writes; `then` says what the
    /// hub does instead of the engine's answer.
    pub(crate) fn new(interval: Duration, then: &'static str) -> Self {
        FailureLog { interval, then, tally: Arc::default() }
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        // A panic while holding it leaves a consistent tally (each step is one assignment).
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one failure of `kind` (`timeout`, `busy`, …) with its `reason`; `visitor` is
    /// the conversation's public id. Needs a Tokio runtime (the summary is a timer task).
    pub(crate) fn failed(&self, kind: &'static str, reason: &str, visitor: &str) {
        let next = self.tally().failed(Instant::now(), self.interval, kind, reason);
        match next {
            Next::Write => tracing::warn!(
                error = %reason,
                kind,
                %visitor,
                "reply engine failed; {}. Further failures in the next {:?} are summed up in one line",
                self.then,
                self.interval,
            ),
            Next::Sum { summary_at } => {
                tracing::debug!(error = %reason, kind, %visitor, "reply engine failed again");
                if let Some(at) = summary_at {
                    let log = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        log.write_summary();
                    });
                }
            }
        }
    }

    fn write_summary(&self) {
        let summary = self.tally().summary(Instant::now(), self.interval);
        if let Some((total, by_kind, last)) = summary {
            tracing::warn!(
                failures = total,
                last_error = %last,
                "{total} more reply engine failures in the last {:?} ({by_kind}); {}",
                self.interval,
                self.then,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_then_sums_then_one_summary_per_interval() {
        let minute = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut t = Tally::default();
        assert_eq!(t.failed(t0, minute, "timeout", "a"), Next::Write);
        let at = t0 + minute;
        assert_eq!(
            t.failed(t0 + Duration::from_secs(1), minute, "timeout", "b"),
            Next::Sum { summary_at: Some(at) }
        );
        assert_eq!(
            t.failed(t0 + Duration::from_secs(2), minute, "busy", "c"),
            Next::Sum { summary_at: None }
        );
        assert_eq!(
            t.failed(t0 + Duration::from_secs(3), minute, "timeout", "d"),
            Next::Sum { summary_at: None }
        );
        assert_eq!(t.summary(at, minute), Some((3, "1 busy, 2 timeout".to_string(), "d".to_string())));
        // Failures right after a summary are summed into the next one.
        let next = at + minute;
        assert_eq!(
            t.failed(at + Duration::from_secs(1), minute, "timeout", "e"),
            Next::Sum { summary_at: Some(next) }
        );
        assert_eq!(t.summary(next, minute), Some((1, "1 timeout".to_string(), "e".to_string())));
        // A quiet interval: nothing to say, and the next failure is written at once again.
        assert_eq!(t.summary(next + minute, minute), None);
        assert_eq!(t.failed(next + minute * 3, minute, "unreachable", "f"), Next::Write);
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_failures_write_two_warnings() {
        let (capture, _guard) = crate::test_log::capture();
        let log = FailureLog::new(INTERVAL, "answering with the fallback");
        for i in 0..1000 {
            log.failed(if i % 4 == 0 { "busy" } else { "timeout" }, &format!("failure {i}"), "v");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 10 s of failures, then the rest of the interval passes.
        tokio::time::sleep(INTERVAL).await;
        let text = capture.text();
        let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warns.len(), 2, "{text}");
        assert!(warns[0].contains("failure 0"), "{}", warns[0]);
        assert!(
            warns[1].contains("999 more reply engine failures") && warns[1].contains("249 busy, 750 timeout"),
            "{}",
            warns[1]
        );
        assert!(warns[1].contains("failure 999"), "the summary names the last reason: {}", warns[1]);
    }
}
