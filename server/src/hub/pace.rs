//! The hub-wide pace of new support conversations (`--new-conversations-per-sec`,
//! `--new-conversations-burst`): the first message of a conversation costs the hub far more than
//! a later one (a conversation row and its inbox record, the bot's answer and its record, a call
//! of the reply engine), and per-address budgets do not bound how many arrive at once from many
//! addresses. 1,500 first messages from 50 addresses, each within its address's
//! `--address-conversations-per-hour`, kept a one-CPU hub busy for most of a second, and every
//! honest message in that second waited behind them.
//!
//! Turns come at the pace (a bucket of `burst` turns refilling at `per_sec`). A first message
//! that finds none **waits for one**, for up to [`MAX_WAIT`], so a surge of real visitors is
//! spread over a few seconds rather than refused. Waiters are queued by client address (an IPv6
//! client by its /48) and served **round-robin** ([`RoundRobin`]), as the follow-ups of stored
//! messages are (`hub/turns.rs`): a pace everyone shares must not become something a few
//! addresses can take from everyone else, so a visitor from an address with nothing queued
//! waits for at most one turn of each address that has waiters, however many each has queued.
//! A first message that is not served within [`MAX_WAIT`], or whose address already has more
//! waiting than it could be served in that time, is refused with `unavailable` (HTTP 503) and
//! how long to wait, and the widget sends it again then. Messages of conversations that already
//! have one are never paced here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::turns::RoundRobin;
use crate::address::AddrKey;

/// The longest a first message waits for its turn; past it, it is refused with how long the
/// wait would still be. Short enough that a WebSocket whose first message waits still answers
/// its pings well within any idle timeout, and that a visitor sees "sending" rather than nothing.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(2);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Pace {
    /// Time between two turns (1 / rate).
    interval: Duration,
    /// How far ahead of the bucket's pace a turn may be taken: `interval × (burst − 1)`.
    tolerance: Duration,
    state: Mutex<State>,
    /// Arrivals waiting for their turn now (for `/metrics`).
    waiting: AtomicUsize,
}

#[derive(Debug)]
struct State {
    /// The bucket as a GCRA keeps it (the "virtual scheduling" form of a token bucket, as
    /// `governor` does): the theoretical arrival time of the next turn. A turn may be taken at
    /// `now` when `tat ≤ now + tolerance`; taking one moves `tat` on by an interval from
    /// `max(tat, now)`. Whole nanoseconds, so turns never drift.
    tat: Instant,
    /// Arrivals waiting for a turn.
    queue: RoundRobin,
    /// Whether a task is handing turns to `queue` as they come ([`Pace::release`]).
    releasing: bool,
}

/// What an arrival got from [`Pace::arrive`].
#[derive(Debug)]
pub(crate) enum Arrival {
    /// A turn, now.
    Now,
    /// Queued: `()` arrives on the receiver when its turn comes. `release` says that no task
    /// hands out turns yet, so the caller must start one ([`Pace::release`] until `None`).
    Queued { turn: oneshot::Receiver<()>, release: bool },
    /// Its address has more waiting than it could be served within [`MAX_WAIT`]: refused, with
    /// how long until the queue as it is now would be served.
    Refused(Duration),
}

impl Pace {
    /// At most `per_sec` turns a second after a burst of `burst`; `None` (no pace) when either
    /// is 0 or `per_sec` is not a positive finite number.
    pub(crate) fn new(per_sec: f64, burst: u32) -> Option<Arc<Pace>> {
        if burst == 0 || !(per_sec.is_finite() && per_sec > 0.0) {
            return None;
        }
        let interval = Duration::try_from_secs_f64(1.0 / per_sec).ok()?.max(Duration::from_nanos(1));
        let tolerance = interval.saturating_mul(burst - 1);
        let state = State { tat: Instant::now(), queue: RoundRobin::default(), releasing: false };
        Some(Arc::new(Pace { interval, tolerance, state: Mutex::new(state), waiting: AtomicUsize::new(0) }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long from `now` until a turn may be taken (zero: one may now).
    fn next_turn(&self, state: &State, now: Instant) -> Duration {
        state.tat.saturating_duration_since(now + self.tolerance)
    }

    /// Takes a turn at `now` (there must be one: see [`Pace::next_turn`]).
    fn take(&self, state: &mut State, now: Instant) {
        state.tat = state.tat.max(now) + self.interval;
    }

    /// How long until everyone queued now, and one more, would be served.
    fn drain_time(&self, state: &State) -> Duration {
        let turns = u32::try_from(state.queue.len() + 1).unwrap_or(u32::MAX);
        self.interval.saturating_mul(turns)
    }

    /// An arrival of a first message from `addr` at `now` (see the module docs).
    pub(crate) fn arrive(&self, addr: AddrKey, now: Instant) -> Arrival {
        let mut state = self.lock();
        if state.queue.is_empty() && self.next_turn(&state, now).is_zero() {
            self.take(&mut state, now);
            return Arrival::Now;
        }
        // An IPv6 client is queued by its /48, so its 65,536 /64s are one address here.
        let key = addr.nested().last().map_or(addr, |(widest, _)| widest);
        let reachable = (MAX_WAIT.as_secs_f64() / self.interval.as_secs_f64()).floor().max(1.0);
        if state.queue.len_of(key) as f64 >= reachable {
            return Arrival::Refused(self.drain_time(&state));
        }
        let turn = state.queue.push(key);
        let release = !std::mem::replace(&mut state.releasing, true);
        Arrival::Queued { turn, release }
    }

    /// Hands the turns there are at `now` to the queue, round-robin; how long until the next
    /// one, or `None` when nobody is left waiting (the releasing task then ends).
    pub(crate) fn release(&self, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        loop {
            if state.queue.is_empty() {
                state.releasing = false;
                return None;
            }
            let wait = self.next_turn(&state, now);
            if !wait.is_zero() {
                return Some(wait);
            }
            if state.queue.wake_next() {
                self.take(&mut state, now);
            }
        }
    }

    /// Waits for a turn of `addr` (see the module docs); `Err` is how long to wait before
    /// trying again, when no turn came within [`MAX_WAIT`] or none could.
    pub(crate) async fn turn(self: &Arc<Self>, addr: AddrKey) -> Result<(), Duration> {
        let (mut turn, release) = match self.arrive(addr, Instant::now()) {
            Arrival::Now => return Ok(()),
            Arrival::Refused(wait) => return Err(wait),
            Arrival::Queued { turn, release } => (turn, release),
        };
        if release {
            let pace = self.clone();
            tokio::spawn(async move {
                while let Some(wait) = pace.release(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
            });
        }
        // Counted until the wait ends or is given up (its connection closed).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        tokio::select! {
            got = &mut turn => return got.map_err(|_| MAX_WAIT),
            () = tokio::time::sleep(MAX_WAIT) => {}
        }
        // Out of time; a turn handed over meanwhile is still taken.
        turn.close();
        match turn.try_recv() {
            Ok(()) => Ok(()),
            Err(_) => Err(self.drain_time(&self.lock())),
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
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const MS: Duration = Duration::from_millis(1);

    fn v4(n: u8) -> AddrKey {
        AddrKey::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)))
    }

    fn queued(a: Arrival) -> oneshot::Receiver<()> {
        match a {
            Arrival::Queued { turn, .. } => turn,
            other => panic!("not queued: {other:?}"),
        }
    }

    #[test]
    fn a_burst_goes_at_once_and_the_rest_queue_with_one_releaser() {
        let pace = Pace::new(10.0, 3).expect("a pace");
        let t = Instant::now();
        for _ in 0..3 {
            assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        }
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Queued { release: true, .. }));
        assert!(matches!(pace.arrive(v4(2), t), Arrival::Queued { release: false, .. }));
    }

    #[test]
    fn turns_come_at_the_pace_and_round_robin_by_address() {
        let pace = Pace::new(10.0, 1).expect("a pace");
        let t = Instant::now();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        // A busy address queues five, then a quiet one arrives.
        let mut busy: Vec<_> = (0..5).map(|_| queued(pace.arrive(v4(1), t))).collect();
        let mut quiet = queued(pace.arrive(v4(2), t));
        assert_eq!(pace.release(t), Some(100 * MS), "no turn yet: the next in 100 ms");
        assert_eq!(pace.release(t + 100 * MS), Some(100 * MS));
        assert!(busy[0].try_recv().is_ok(), "the oldest waiter first");
        assert!(quiet.try_recv().is_err());
        assert_eq!(pace.release(t + 200 * MS), Some(100 * MS));
        assert!(quiet.try_recv().is_ok(), "then the quiet address, ahead of the busy one's other four");
        assert!(busy[1].try_recv().is_err());
        // Four more turns, one every 100 ms: the busy address's other four.
        for step in 3..6 {
            assert_eq!(pace.release(t + step * 100 * MS), Some(100 * MS));
        }
        assert_eq!(pace.release(t + 600 * MS), None, "nobody left");
        assert!(busy.iter_mut().skip(1).all(|rx| rx.try_recv().is_ok()));
    }

    #[test]
    fn an_address_with_more_waiting_than_it_could_be_served_is_refused_at_once() {
        // 2 s of turns at 2 a second: four may wait.
        let pace = Pace::new(2.0, 1).expect("a pace");
        let t = Instant::now();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        let _waiting: Vec<_> = (0..4).map(|_| queued(pace.arrive(v4(1), t))).collect();
        match pace.arrive(v4(1), t) {
            Arrival::Refused(wait) => assert_eq!(wait, 2500 * MS, "five turns of 500 ms"),
            other => panic!("not refused: {other:?}"),
        }
        let _other = queued(pace.arrive(v4(2), t));
        // An IPv6 client is one address per /48, whichever of its /64s it uses.
        let net = |n: u16| AddrKey::of(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 7, n, 0, 0, 0, 1)));
        let _v6: Vec<_> = (0..4).map(|n| queued(pace.arrive(net(n), t))).collect();
        assert!(matches!(pace.arrive(net(99), t), Arrival::Refused(_)));
    }

    #[test]
    fn a_waiter_that_gave_up_takes_no_turn() {
        let pace = Pace::new(10.0, 1).expect("a pace");
        let t = Instant::now();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        drop(queued(pace.arrive(v4(1), t)));
        let mut next = queued(pace.arrive(v4(2), t));
        assert_eq!(pace.release(t + 100 * MS), None);
        assert!(next.try_recv().is_ok(), "the turn went to the live waiter");
    }

    #[test]
    fn an_idle_pace_refills_to_its_burst_and_no_further() {
        let pace = Pace::new(10.0, 2).expect("a pace");
        let t = Instant::now();
        for _ in 0..2 {
            assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        }
        let later = t + Duration::from_secs(60);
        for _ in 0..2 {
            assert!(matches!(pace.arrive(v4(1), later), Arrival::Now));
        }
        assert!(matches!(pace.arrive(v4(1), later), Arrival::Queued { .. }));
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
    async fn a_waiter_gets_its_turn_or_gives_up_after_the_longest_wait() {
        // One turn every 4 s: the second arrival waits, and its turn is further than 2 s away.
        let pace = Pace::new(0.25, 1).expect("a pace");
        assert_eq!(pace.turn(v4(1)).await, Ok(()), "the first turn is free");
        let waiter = tokio::spawn({
            let pace = pace.clone();
            async move { pace.turn(v4(2)).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(pace.waiting(), 1);
        let gave_up = waiter.await.expect("the waiter");
        assert!(gave_up.is_err_and(|wait| wait >= Duration::from_secs(1)), "{gave_up:?}");
        assert_eq!(pace.waiting(), 0);
        // At one a second, the next waiter is served.
        let pace = Pace::new(1.0, 1).expect("a pace");
        assert_eq!(pace.turn(v4(1)).await, Ok(()));
        assert_eq!(pace.turn(v4(2)).await, Ok(()), "served within a second, by the releasing task");
    }
}
