//! The hub-wide pace of new support conversations (`--new-conversations-per-sec`,
//! `--new-conversations-burst`): the first message of a conversation costs the hub far more than
//! a later one (a conversation row and its inbox record, the bot's answer and its record, a call
//! of the reply engine), and per-address budgets do not bound how many arrive at once from many
//! addresses. 1,500 first messages from 50 addresses, each within its address's
//! `--address-conversations-per-hour`, kept a one-CPU hub busy for most of a second, and every
//! honest message in that second waited behind them.
//!
//! A first message past the pace **waits its turn**, in arrival order, for up to [`MAX_WAIT`]
//! (a surge of real visitors is spread over a few seconds, not refused); one that would wait
//! longer is refused at once with `unavailable` (HTTP 503) and how long to wait, without taking a
//! turn, and the widget sends it again then. Messages of conversations that already have one are
//! never paced here.
//!
//! The pace is a GCRA (the "virtual scheduling" form of a token bucket, as `governor` keeps its
//! buckets) whose arrivals may reserve a turn in the future: the bucket's theoretical arrival
//! time is the next free turn, and a reservation moves it on by one interval.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a first message waits for its turn; past it, it is refused with how long the
/// wait would be. Short enough that a WebSocket whose first message waits still answers its
/// pings well within any idle timeout, and that a visitor sees "sending" rather than nothing.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(2);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Pace {
    /// Time between two turns (1 / rate).
    interval: Duration,
    /// How far ahead of its turn an arrival may go: `interval × (burst − 1)`.
    tolerance: Duration,
    /// The theoretical arrival time: when the next turn is free, ignoring the burst; `None`
    /// before the first arrival.
    next: Mutex<Option<Instant>>,
    /// Arrivals waiting for their turn now (for `/metrics`).
    waiting: AtomicUsize,
}

/// What an arrival got from [`Pace::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// Its turn comes after this long (zero: now).
    Wait(Duration),
    /// Its turn would come after this long, more than [`MAX_WAIT`]: refused, nothing reserved.
    Refused(Duration),
}

impl Pace {
    /// At most `per_sec` turns a second after a burst of `burst`; `None` (no pace) when either
    /// is 0 or `per_sec` is not a positive finite number.
    pub(crate) fn new(per_sec: f64, burst: u32) -> Option<Pace> {
        if burst == 0 || !(per_sec.is_finite() && per_sec > 0.0) {
            return None;
        }
        let interval = Duration::try_from_secs_f64(1.0 / per_sec).ok()?.max(Duration::from_nanos(1));
        let tolerance = interval.saturating_mul(burst - 1);
        Some(Pace { interval, tolerance, next: Mutex::new(None), waiting: AtomicUsize::new(0) })
    }

    /// Reserves the next turn for an arrival at `now`, unless it is more than `max_wait` away.
    pub(crate) fn reserve(&self, now: Instant, max_wait: Duration) -> Reservation {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        // A bucket that has been idle is full: its next turn is now, not in the past.
        let tat = next.map_or(now, |t| t.max(now));
        let wait =
            tat.checked_sub(self.tolerance).map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        if wait > max_wait {
            return Reservation::Refused(wait);
        }
        *next = Some(tat + self.interval);
        Reservation::Wait(wait)
    }

    /// Waits for a turn (see the module docs); `Err` is how long the wait would have been, when
    /// that is more than [`MAX_WAIT`].
    pub(crate) async fn turn(&self) -> Result<(), Duration> {
        match self.reserve(Instant::now(), MAX_WAIT) {
            Reservation::Wait(wait) if wait.is_zero() => Ok(()),
            Reservation::Wait(wait) => {
                // Counted until the wait ends or is given up (its connection closed).
                struct Waiting<'a>(&'a AtomicUsize);
                impl Drop for Waiting<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let _waiting = Waiting(&self.waiting);
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Reservation::Refused(wait) => Err(wait),
        }
    }

    /// Arrivals waiting for their turn now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_goes_at_once_and_the_rest_take_turns_one_interval_apart() {
        let pace = Pace::new(10.0, 3).expect("a pace");
        let t = Instant::now();
        let waits: Vec<_> = (0..6).map(|_| pace.reserve(t, MAX_WAIT)).collect();
        assert_eq!(
            waits,
            [0, 0, 0, 100, 200, 300].map(|ms| Reservation::Wait(ms * MS)),
            "three at once, then one every 100 ms"
        );
    }

    #[test]
    fn past_the_longest_wait_an_arrival_is_refused_and_takes_no_turn() {
        let pace = Pace::new(1.0, 1).expect("a pace");
        let t = Instant::now();
        assert_eq!(pace.reserve(t, 2000 * MS), Reservation::Wait(Duration::ZERO));
        assert_eq!(pace.reserve(t, 2000 * MS), Reservation::Wait(1000 * MS));
        assert_eq!(pace.reserve(t, 2000 * MS), Reservation::Wait(2000 * MS));
        assert_eq!(pace.reserve(t, 2000 * MS), Reservation::Refused(3000 * MS));
        assert_eq!(
            pace.reserve(t, 2000 * MS),
            Reservation::Refused(3000 * MS),
            "the refusal reserved nothing"
        );
        // Once its turn is within reach, it gets it.
        assert_eq!(pace.reserve(t + 1000 * MS, 2000 * MS), Reservation::Wait(2000 * MS));
    }

    #[test]
    fn an_idle_pace_refills_to_its_burst_and_no_further() {
        let pace = Pace::new(10.0, 2).expect("a pace");
        let t = Instant::now();
        for _ in 0..5 {
            pace.reserve(t, MAX_WAIT);
        }
        // A minute later the burst is back, but only the burst.
        let later = t + Duration::from_secs(60);
        let waits: Vec<_> = (0..3).map(|_| pace.reserve(later, MAX_WAIT)).collect();
        assert_eq!(waits, [0, 0, 100].map(|ms| Reservation::Wait(ms * MS)));
    }

    #[test]
    fn zero_or_nonsense_means_no_pace() {
        assert!(Pace::new(0.0, 10).is_none());
        assert!(Pace::new(10.0, 0).is_none());
        assert!(Pace::new(f64::NAN, 10).is_none());
        assert!(Pace::new(-1.0, 10).is_none());
        assert!(Pace::new(f64::INFINITY, 10).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_turn_is_counted_while_it_waits() {
        let pace = std::sync::Arc::new(Pace::new(1.0, 1).expect("a pace"));
        assert_eq!(pace.turn().await, Ok(()), "the first turn is free");
        let waiter = tokio::spawn({
            let pace = pace.clone();
            async move { pace.turn().await }
        });
        tokio::task::yield_now().await;
        assert_eq!(pace.waiting(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(waiter.await.expect("the waiter"), Ok(()));
        assert_eq!(pace.waiting(), 0);
    }
}
