//! The hub-wide pace of new support conversations (`--new-conversations-per-sec`,
//! `--new-conversations-burst`): the work that follows a conversation's first message (its
//! inbox record, the bot's answer stored and recorded, a call of the reply engine) costs the
//! hub far more than a later message does, and per-address budgets do not bound how many
//! arrive at once from many addresses. 1,500 first messages from 50 addresses, each within its
//! address's `--address-conversations-per-hour`, kept a one-CPU hub busy for most of a second,
//! and every honest message in that second waited behind them.
//!
//! **Nobody is refused for it.** A first message past the pace waits for its turn for at most
//! [`FIRST_WAIT`]; if the turn has not come by then, the message is stored and acknowledged
//! anyway, and its follow-up waits for the turn instead: the bot's answer comes later.
//! (Refusing first messages past the pace let attackers with enough addresses keep honest
//! newcomers out.) A surge the size of `bench abuse`'s attack 9 is spread over its turns before
//! anything is stored; a far larger one from thousands of addresses at once is acknowledged
//! within [`FIRST_WAIT`] and its answers spread.
//!
//! Turns come at the pace (a bucket of `burst` turns refilling at `per_sec`). A first message
//! that finds none waits for one, queued by client address ([`Pace::key`]), and the next turn goes
//! to the address **served least recently** ([`LeastRecent`]): an address served within
//! [`WINDOW`] counts as arriving [`WINDOW`] after it was served, so it goes behind the new
//! addresses that come before then (and the busy ones take turns round-robin). A newcomer is
//! not held up behind a flood unless the flood comes from more addresses than the pace serves
//! in a [`WINDOW`] (6,000 at the defaults), and an address that is itself busy (an office, a
//! carrier's NAT) gets a turn about once a [`WINDOW`] however many new ones come.
//! At most [`WAITING_MOST`] wait; past that a first message and its follow-up go at once
//! (the hub's memory before its latency), counted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::address::AddrKey;

/// The longest a first message waits for its turn before it is stored and acknowledged anyway
/// (its follow-up then waits for the turn instead). Short enough that a WebSocket whose first
/// message waits (its reader waits with it) answers its pings well within any idle timeout, and
/// that a visitor sees "sending" for no longer than a slow network would show it.
pub(crate) const FIRST_WAIT: Duration = Duration::from_secs(2);

/// The most first messages (or their follow-ups) waiting for a turn; past it one goes at once.
/// A waiting follow-up holds its visitor's message (up to `--max-text` and `--max-context`)
/// until its turn: 4,096 of them are at most ~100 MB, and 41 s of turns at the default pace.
const WAITING_MOST: usize = 4096;

/// How long an address counts as recently served (see the module docs).
const WINDOW: Duration = Duration::from_secs(60);

/// Waiters queued by address, the next turn going to the address served least recently (see
/// the module docs).
#[derive(Debug)]
struct LeastRecent {
    /// Each waiting address's place in `order` and its waiters, oldest first.
    waiting: HashMap<AddrKey, (Place, VecDeque<oneshot::Sender<()>>)>,
    /// Waiting addresses, the next to be served first.
    order: BTreeMap<Place, AddrKey>,
    /// When each address was last served, for [`WINDOW`]; `log` has the same in the order they
    /// were served, to forget them.
    served: HashMap<AddrKey, Instant>,
    log: VecDeque<(Instant, AddrKey)>,
    /// What times in `Place` count from.
    epoch: Instant,
    /// The next arrival number.
    next: u64,
    /// Waiters in all, those that gave up and are not yet passed over included.
    queued: usize,
}

/// Where a waiting address stands, on one timeline (nanoseconds from the epoch): an address
/// not served within [`WINDOW`] when it came, one served lately as if it came [`WINDOW`] after
/// it was last served; then a unique arrival number. So an address served lately goes behind
/// every new one that comes before its time, but not behind those that come after it: however
/// many new addresses keep arriving, its wait is bounded (it once sorted behind every new
/// arrival for good, and one busy office's visitors waited for as long as a flood of new
/// addresses lasted).
type Place = (u64, u64);

impl LeastRecent {
    fn new(epoch: Instant) -> Self {
        LeastRecent {
            waiting: HashMap::new(),
            order: BTreeMap::new(),
            served: HashMap::new(),
            log: VecDeque::new(),
            epoch,
            next: 0,
            queued: 0,
        }
    }

    /// Whether nobody waits (those that gave up and are not yet passed over count as waiting).
    fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Waiters in all (as above).
    fn len(&self) -> usize {
        self.queued
    }

    fn place(&mut self, addr: AddrKey, now: Instant) -> Place {
        self.forget(now);
        self.next += 1;
        let at = match self.served.get(&addr) {
            Some(served) => (*served + WINDOW).max(now),
            None => now,
        };
        (self.since_epoch(at), self.next)
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Forgets the addresses served more than [`WINDOW`] before `now`.
    fn forget(&mut self, now: Instant) {
        while let Some(&(at, addr)) = self.log.front() {
            if now.saturating_duration_since(at) <= WINDOW {
                break;
            }
            self.log.pop_front();
            if self.served.get(&addr) == Some(&at) {
                self.served.remove(&addr);
            }
        }
    }

    /// Notes that `addr` was served at `now`.
    fn served_now(&mut self, addr: AddrKey, now: Instant) {
        self.forget(now);
        self.served.insert(addr, now);
        self.log.push_back((now, addr));
    }

    /// Queues a waiter of `addr` arriving at `now`; `()` arrives on the receiver when its turn
    /// comes.
    fn push(&mut self, addr: AddrKey, now: Instant) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.queued += 1;
        if let Some((_, queue)) = self.waiting.get_mut(&addr) {
            queue.push_back(tx);
            return rx;
        }
        let place = self.place(addr, now);
        self.order.insert(place, addr);
        self.waiting.insert(addr, (place, VecDeque::from([tx])));
        rx
    }

    /// Wakes the next waiter at `now` (see the module docs); `false` when nobody is left
    /// waiting. A waiter that gave up (its receiver was dropped) is passed over, and its
    /// address keeps its place.
    fn wake_next(&mut self, now: Instant) -> bool {
        while let Some((place, addr)) = self.order.pop_first() {
            let Some((_, queue)) = self.waiting.get_mut(&addr) else { continue };
            let Some(tx) = queue.pop_front() else {
                self.waiting.remove(&addr);
                continue;
            };
            let more = !queue.is_empty();
            self.queued -= 1;
            let woke = tx.send(()).is_ok();
            if woke {
                self.served_now(addr, now);
            }
            if more {
                // Served: behind every address that was not, or was before it.
                let place = if woke { self.place(addr, now) } else { place };
                self.order.insert(place, addr);
                if let Some(entry) = self.waiting.get_mut(&addr) {
                    entry.0 = place;
                }
            } else {
                self.waiting.remove(&addr);
            }
            if woke {
                return true;
            }
        }
        false
    }
}

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
    queue: LeastRecent,
    /// Whether a task is handing turns to `queue` as they come ([`Pace::release`]).
    releasing: bool,
}

/// What an arrival got from [`Pace::arrive`].
#[derive(Debug)]
enum Arrival {
    /// A turn, now.
    Now,
    /// Queued: `()` arrives on the receiver when its turn comes. `release` says that no task
    /// hands out turns yet, so the caller must start one ([`Pace::release`] until `None`).
    Queued { turn: oneshot::Receiver<()>, release: bool },
    /// [`WAITING_MOST`] are waiting already: it goes at once, unpaced.
    Full,
}

/// What [`Pace::enter`] gave.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A turn, now.
    Now,
    /// A place in the queue.
    Wait(Ticket),
    /// [`WAITING_MOST`] are waiting: no place; go at once.
    Full,
}

/// A place in the pace's queue: counted as waiting until the turn comes or the ticket is
/// dropped (a dropped ticket's turn goes to the next waiter).
#[derive(Debug)]
pub(crate) struct Ticket {
    /// `None` once the turn came.
    turn: Option<oneshot::Receiver<()>>,
    pace: Arc<Pace>,
}

impl Ticket {
    /// Waits for the turn for at most `limit`; `true` when it came (or the pace is gone: the
    /// hub is stopping). The ticket keeps its place when it did not.
    pub(crate) async fn within(&mut self, limit: Duration) -> bool {
        let Some(turn) = self.turn.as_mut() else { return true };
        tokio::select! {
            _ = turn => {
                self.came();
                true
            }
            () = tokio::time::sleep(limit) => false,
        }
    }

    /// Waits for the turn, however long.
    pub(crate) async fn wait(mut self) {
        if let Some(turn) = self.turn.as_mut() {
            let _ = turn.await;
            self.came();
        }
    }

    fn came(&mut self) {
        if self.turn.take().is_some() {
            self.pace.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.came();
    }
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
        let now = Instant::now();
        let state = State { tat: now, queue: LeastRecent::new(now), releasing: false };
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

    /// The address a waiter is queued by: an IPv4 address, or an IPv6 client's /56 (the block
    /// an ISP commonly gives a household), so the 256 /64s of one are one address here, while
    /// households that share their ISP's /48 are not (were they one, each new visitor among
    /// them would wait behind their neighbours' turns). One holder of a /48 thus has 256
    /// addresses here: each is served least recently only once per [`WINDOW`], and the /48's
    /// `--address-conversations-per-hour` (16 times an address's) bounds what it may open.
    fn key(addr: AddrKey) -> AddrKey {
        addr.nested().nth(1).map_or(addr, |(household, _)| household)
    }

    /// An arrival of a first message from `addr` at `now` (see the module docs).
    fn arrive(&self, addr: AddrKey, now: Instant) -> Arrival {
        let mut state = self.lock();
        let key = Self::key(addr);
        if state.queue.is_empty() && self.next_turn(&state, now).is_zero() {
            self.take(&mut state, now);
            state.queue.served_now(key, now);
            return Arrival::Now;
        }
        if state.queue.len() >= WAITING_MOST {
            return Arrival::Full;
        }
        let turn = state.queue.push(key, now);
        let release = !std::mem::replace(&mut state.releasing, true);
        Arrival::Queued { turn, release }
    }

    /// Hands the turns there are at `now` to the queue, the address served least recently
    /// first; how long until the next one, or `None` when nobody is left waiting (the releasing
    /// task then ends).
    fn release(&self, now: Instant) -> Option<Duration> {
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
            if state.queue.wake_next(now) {
                self.take(&mut state, now);
            }
        }
    }

    /// Asks for a turn of `addr` (see the module docs): one now, a [`Ticket`] to wait for it,
    /// or [`Entry::Full`] when [`WAITING_MOST`] are waiting (go at once, unpaced).
    pub(crate) fn enter(self: &Arc<Self>, addr: AddrKey) -> Entry {
        let (turn, release) = match self.arrive(addr, Instant::now()) {
            Arrival::Now => return Entry::Now,
            Arrival::Full => return Entry::Full,
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
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Entry::Wait(Ticket { turn: Some(turn), pace: self.clone() })
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
    fn turns_come_at_the_pace_and_go_to_the_address_served_least_recently() {
        let pace = Pace::new(10.0, 1).expect("a pace");
        let t = Instant::now();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        // The address just served queues three, then two new addresses arrive.
        let mut busy: Vec<_> = (0..3).map(|_| queued(pace.arrive(v4(1), t))).collect();
        let mut b = queued(pace.arrive(v4(2), t));
        let mut c = queued(pace.arrive(v4(3), t));
        assert_eq!(pace.release(t), Some(100 * MS), "no turn yet: the next in 100 ms");
        assert_eq!(pace.release(t + 100 * MS), Some(100 * MS));
        assert!(b.try_recv().is_ok(), "a new address first");
        assert!(busy[0].try_recv().is_err());
        assert_eq!(pace.release(t + 200 * MS), Some(100 * MS));
        assert!(c.try_recv().is_ok(), "then the next new one, ahead of the address served before");
        assert_eq!(pace.release(t + 300 * MS), Some(100 * MS));
        assert!(busy[0].try_recv().is_ok());
        // Among addresses all served lately, the one served longest ago goes first.
        let mut b2 = queued(pace.arrive(v4(2), t + 300 * MS));
        assert_eq!(pace.release(t + 400 * MS), Some(100 * MS));
        assert!(b2.try_recv().is_ok(), "served at 100 ms, before the busy one at 300 ms");
        assert_eq!(pace.release(t + 500 * MS), Some(100 * MS));
        assert!(busy[1].try_recv().is_ok());
        assert_eq!(pace.release(t + 600 * MS), None, "nobody left");
        assert!(busy[2].try_recv().is_ok());
    }

    #[test]
    fn an_address_served_longer_ago_than_the_window_is_new_again() {
        let pace = Pace::new(10.0, 1).expect("a pace");
        let t = Instant::now();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        let later = t + WINDOW + Duration::from_secs(1);
        assert!(matches!(pace.arrive(v4(3), later), Arrival::Now));
        // v4(1), served over a window ago, then v4(2), never served: both new, in arrival order
        // (were v4(1) still remembered as served, v4(2) would go first).
        let mut old = queued(pace.arrive(v4(1), later));
        let mut never = queued(pace.arrive(v4(2), later));
        assert_eq!(pace.release(later + 100 * MS), Some(100 * MS));
        assert!(old.try_recv().is_ok(), "served over a window ago: new again, and first");
        assert!(never.try_recv().is_err());
    }

    #[test]
    fn past_the_most_waiting_a_follow_up_goes_at_once() {
        let pace = Pace::new(1.0, 1).expect("a pace");
        let t = Instant::now();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        let _waiting: Vec<_> = (0..WAITING_MOST).map(|i| queued(pace.arrive(v4(i as u8), t))).collect();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Full));
    }

    #[test]
    fn an_address_served_lately_waits_behind_new_ones_only_until_its_time() {
        let pace = Pace::new(10.0, 1).expect("a pace");
        let t = Instant::now();
        let s = Duration::from_secs(1);
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        // Served at t, it counts as coming at t + WINDOW: after a new address at t + 1 s, before
        // one at t + WINDOW + 1 s (which once went ahead of it, as every new arrival did).
        let mut busy = queued(pace.arrive(v4(1), t));
        let mut early = queued(pace.arrive(v4(2), t + s));
        let mut late = queued(pace.arrive(v4(3), t + WINDOW + s));
        let now = t + WINDOW + s;
        assert_eq!(pace.release(now), Some(100 * MS));
        assert!(early.try_recv().is_ok());
        assert_eq!(pace.release(now + 100 * MS), Some(100 * MS));
        assert!(busy.try_recv().is_ok(), "its time came before the late newcomer's");
        assert!(late.try_recv().is_err());
        assert_eq!(pace.release(now + 200 * MS), None);
        assert!(late.try_recv().is_ok());
    }

    #[test]
    fn households_sharing_an_isps_48_are_different_addresses() {
        let pace = Pace::new(10.0, 1).expect("a pace");
        let t = Instant::now();
        let household =
            |n: u16| AddrKey::of(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xaa, n << 8, 0, 0, 0, 1)));
        assert!(matches!(pace.arrive(household(1), t), Arrival::Now));
        // The neighbour's first visitor is new here, and goes before an address that came after.
        let mut neighbour = queued(pace.arrive(household(2), t));
        let mut later = queued(pace.arrive(v4(9), t));
        assert_eq!(pace.release(t + 100 * MS), Some(100 * MS));
        assert!(neighbour.try_recv().is_ok(), "not behind household 1's turn");
        assert!(later.try_recv().is_err());
    }

    #[test]
    fn a_waiter_that_gave_up_takes_no_turn() {
        let pace = Pace::new(10.0, 1).expect("a pace");
        let t = Instant::now();
        assert!(matches!(pace.arrive(v4(1), t), Arrival::Now));
        drop(queued(pace.arrive(v4(2), t)));
        let mut next = queued(pace.arrive(v4(3), t));
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
    async fn a_ticket_is_counted_until_its_turn_and_keeps_its_place_past_a_time_limit() {
        // One turn every 4 s: the second arrival waits for it.
        let pace = Pace::new(0.25, 1).expect("a pace");
        assert!(matches!(pace.enter(v4(1)), Entry::Now), "the first turn is free");
        let Entry::Wait(mut ticket) = pace.enter(v4(2)) else { panic!("not queued") };
        assert_eq!(pace.waiting(), 1);
        assert!(!ticket.within(Duration::from_secs(2)).await, "its turn is 4 s away");
        assert_eq!(pace.waiting(), 1, "still in line");
        let waited = tokio::time::Instant::now();
        ticket.wait().await;
        assert!(waited.elapsed() >= Duration::from_secs(1), "{:?}", waited.elapsed());
        assert_eq!(pace.waiting(), 0);
        // A ticket dropped in line gives its turn to the next.
        let Entry::Wait(gone) = pace.enter(v4(3)) else { panic!("not queued") };
        let Entry::Wait(next) = pace.enter(v4(4)) else { panic!("not queued") };
        drop(gone);
        assert_eq!(pace.waiting(), 1);
        next.wait().await;
        assert_eq!(pace.waiting(), 0);
    }
}
