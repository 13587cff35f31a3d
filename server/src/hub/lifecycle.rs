//! The hub's life apart from messages: the shared beat that paces every connection's pings,
//! the housekeeping that forgets idle conversations, shutdown and draining, and the guards
//! that count connections and held long-polls while they live.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::outbox::{Control, Outbox, Receiver};
use super::trim::TrimPolicy;
use super::{Hub, Slot};
use crate::address::AddrKey;
use crate::metrics::Metrics;

/// How long a conversation with no connection stays in memory (its ring serves resumes after
/// a reconnect, which come within seconds; after this it is read back from the store when
/// needed, and its memory is given back).
const IDLE_CONVERSATION: Duration = Duration::from_secs(120);

/// How often housekeeping runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);

/// How often empty rooms past `--empty-room-ttl` are looked for (at most).
const ROOM_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The shortest room sweep interval, however short the TTL.
const MIN_ROOM_SWEEP: Duration = Duration::from_millis(200);

/// How often the stall watch looks at the clock (see [`stall_watch`]).
const STALL_TICK: Duration = Duration::from_millis(100);

/// A wake-up of the stall watch this much later than asked for is logged.
const STALL_WARNING: Duration = Duration::from_millis(250);

/// The shortest time between two stall warnings.
const STALL_LOG_EVERY: Duration = Duration::from_secs(10);

/// How many of a connection's latest pings a pong may answer (see [`Hub::answers_ping`]).
pub(crate) const PING_ROUNDS_ANSWERABLE: u64 = 3;

/// What [`Hub::beat`] carries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Beat {
    /// Ping rounds so far.
    pub(crate) pings: u64,
    /// The hub is shutting down (connections close with 1001).
    pub(crate) stopping: bool,
}

impl Hub {
    /// A receiver that turns `true` when the hub shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// A receiver that changes every `--ping-interval` (the moment for each WebSocket to ping
    /// its peer and check that it was heard from) and once at shutdown. One timer for all
    /// connections instead of one each (a Tokio `Interval` is a boxed timer entry, ~140 bytes
    /// per idle connection), and one wait for both instead of two (~160 bytes more).
    pub(crate) fn beat(&self) -> watch::Receiver<Beat> {
        self.shared.beat.subscribe()
    }

    /// The payload of connection `connection`'s ping of beat round `round`: 8 bytes no peer can
    /// guess (SipHash under keys drawn from the OS's random source when the hub started), so
    /// only a peer that read the ping can echo it in its pong. Computed, not stored: an idle
    /// connection keeps nothing for it. Never inlined: inlined into a connection's loop, the
    /// hasher's state would take room in every idle connection's future.
    #[inline(never)]
    pub(crate) fn ping_payload(&self, connection: u64, round: u64) -> [u8; 8] {
        use std::hash::BuildHasher;
        self.shared.ping_keys.hash_one((connection, round)).to_le_bytes()
    }

    /// Whether `pong` echoes one of connection `connection`'s last [`PING_ROUNDS_ANSWERABLE`]
    /// pings, `round` being the beat's round now: a peer may answer only the latest of several
    /// pings it read together (RFC 6455, 5.5.3), or answer one just as the next goes out. Never
    /// inlined, like [`Hub::ping_payload`].
    #[inline(never)]
    pub(crate) fn answers_ping(&self, connection: u64, round: u64, pong: &[u8]) -> bool {
        (0..PING_ROUNDS_ANSWERABLE)
            .filter_map(|back| round.checked_sub(back))
            .any(|r| self.ping_payload(connection, r) == pong)
    }

    /// Tells every connection and long-poll to finish (1001 going away).
    pub(crate) fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        self.shared.beat.send_modify(|b| b.stopping = true);
    }

    /// Waits until every connection has closed, at most `limit`; `false` if some had not.
    pub(crate) async fn drained(&self, limit: Duration) -> bool {
        let mut rx = self.shared.live.subscribe();
        let drained = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await.is_ok();
        drained
    }

    /// A new connection's queue and a guard that counts it while it lives (and gives back
    /// `held`, its place among its address's connections, when it ends). The queue's bytes
    /// count towards `addr`'s `--address-send-queue-bytes` (`None`: an operator's, counted in
    /// the hub's total only).
    pub(crate) fn open_connection(
        &self,
        held: Option<Box<Slot>>,
        addr: Option<AddrKey>,
    ) -> (Outbox, Receiver, std::sync::Arc<Control>, LiveGuard) {
        let id = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let config = &self.shared.config;
        let tally = self.limits().tally(addr, config.address_send_queue_bytes);
        let (outbox, rx, control) = Outbox::bounded(id, config.send_queue, config.send_queue_bytes, tally);
        self.shared.live.send_modify(|n| *n += 1);
        Metrics::add(&self.shared.metrics.connections, 1);
        Metrics::add(&self.shared.metrics.connections_total, 1);
        (outbox, rx, control, LiveGuard { hub: self.clone(), _held: held })
    }

    /// Drops conversations nobody used for a while, and budgets of addresses that have been
    /// quiet long enough to be full again. Returns what the hub holds now (conversations in
    /// memory plus open connections) and whether it dropped any conversation, for
    /// [`TrimPolicy`].
    fn sweep(&self) -> (u64, bool) {
        let now = Instant::now();
        let (left, dropped) = {
            let mut state = self.lock();
            let before = state.conversations.len();
            state.conversations.retain(|_, c| !c.is_idle(now, IDLE_CONVERSATION));
            if state.conversations.capacity() > 2 * state.conversations.len() + 64 {
                // A burst of conversations is over: give the table's memory back too.
                state.conversations.shrink_to_fit();
            }
            (state.conversations.len(), state.conversations.len() < before)
        };
        self.limits().purge();
        let connections = self.shared.metrics.connections.load(Ordering::Relaxed);
        let held = u64::try_from(left).unwrap_or(u64::MAX).saturating_add(connections);
        (held, dropped)
    }
}

/// Completes when the hub's shutdown signal is (or already was) raised. Wraps `wait_for` so
/// that its non-`Send` guard never lives across an `.await` of the caller.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        // The hub is gone, which also means stop.
    }
}

/// Bumps the beat every `--ping-interval` until shutdown.
pub(super) async fn pinger(hub: Hub) {
    let period = hub.shared.config.ping_interval;
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    // A late tick (a busy runtime) is not made up for with a burst of pings.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = hub.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => hub.shared.beat.send_modify(|b| b.pings = b.pings.wrapping_add(1)),
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// Watches the runtime itself until shutdown: a timer asked for every [`STALL_TICK`] that
/// fires [`STALL_WARNING`] or more late means every worker thread was kept from running tasks
/// that long (a long lock, a blocking call on a worker, an allocator stall, a starved CPU) and
/// every connection waited with it. Logged as a warning with how late, at most once per
/// [`STALL_LOG_EVERY`], so an operator can tie a latency spike to the hub.
pub(super) async fn stall_watch(hub: Hub) {
    let mut shutdown = hub.shutdown_signal();
    let mut logged: Option<Instant> = None;
    loop {
        let asked = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(STALL_TICK) => {}
            _ = stopped(&mut shutdown) => return,
        }
        let late = asked.elapsed().saturating_sub(STALL_TICK);
        if late >= STALL_WARNING && logged.is_none_or(|t| t.elapsed() >= STALL_LOG_EVERY) {
            logged = Some(Instant::now());
            tracing::warn!(
                late_ms = late.as_millis() as u64,
                "the hub's runtime stalled: a timer fired late, so every connection waited as long"
            );
        }
    }
}

/// Periodic housekeeping until shutdown: forget idle conversations and quiet addresses, give
/// freed memory back to the OS when the hub let go of some (see `hub/trim.rs`), and every
/// [`ROOM_SWEEP_EVERY`] delete expired empty rooms.
pub(super) async fn housekeeping(hub: Hub) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    // A room is looked at twice per --empty-room-ttl at least, so it goes by 1.5 TTLs at most.
    let ttl = hub.shared.config.empty_room_ttl;
    let every =
        if ttl.is_zero() { ROOM_SWEEP_EVERY } else { ROOM_SWEEP_EVERY.min(ttl / 2).max(MIN_ROOM_SWEEP) };
    let mut rooms = tokio::time::interval(every);
    rooms.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = hub.shutdown_signal();
    let mut trim = TrimPolicy::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (held, released) = hub.sweep();
                if trim.due(Instant::now(), held, released) {
                    // Walks the allocator's arenas: off the runtime's threads. It holds each
                    // arena's lock while it walks it, so a long one can stall allocations
                    // elsewhere: say so when one takes long.
                    tokio::task::spawn_blocking(|| {
                        let started = std::time::Instant::now();
                        super::trim::release_free_memory();
                        let took = started.elapsed();
                        if took >= super::trim::SLOW_TRIM {
                            tracing::warn!(
                                took_ms = took.as_millis() as u64,
                                "giving freed memory back to the system took long; allocations waited meanwhile"
                            );
                        }
                    });
                }
            }
            _ = rooms.tick() => {
                if let Err(e) = hub.expire_empty_rooms().await {
                    tracing::warn!(error = %e, "expiring empty rooms failed; the next sweep retries");
                }
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// Counts a held long-poll in the metrics while it lives.
pub(super) struct WaitingPoll<'a>(&'a Metrics);

impl<'a> WaitingPoll<'a> {
    pub(super) fn new(metrics: &'a Metrics) -> Self {
        Metrics::add(&metrics.polls_waiting, 1);
        WaitingPoll(metrics)
    }
}

impl Drop for WaitingPoll<'_> {
    fn drop(&mut self) {
        self.0.polls_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a connection while it lives.
#[derive(Debug)]
pub(crate) struct LiveGuard {
    hub: Hub,
    /// Boxed: only connections behind a proxy have one, and every connection's task holds this.
    _held: Option<Box<Slot>>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.hub.shared.live.send_modify(|n| *n = n.saturating_sub(1));
        self.hub.shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod ping_tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn only_an_echo_of_a_recent_ping_counts_as_a_pong() {
        let hub = Hub::for_tests(Config::for_tests());
        let (first, second) = (hub.ping_payload(7, 1), hub.ping_payload(7, 2));
        assert_ne!(first, second);
        assert_ne!(first, hub.ping_payload(8, 1), "each connection's pings are its own");
        assert!(hub.answers_ping(7, 2, &first) && hub.answers_ping(7, 2, &second));
        assert!(!hub.answers_ping(7, 2, &[]) && !hub.answers_ping(7, 2, &first[..4]), "empty or short");
        assert!(!hub.answers_ping(8, 2, &first), "another connection's ping");
        assert!(!hub.answers_ping(7, 4, &first), "only the last {PING_ROUNDS_ANSWERABLE} rounds count");
        assert!(!hub.answers_ping(7, 0, &[0; 8]));
    }
}

#[cfg(test)]
mod stall_tests {
    use super::*;
    use crate::config::Config;

    /// A worker kept from running tasks is said in the log, with how long. The test's runtime
    /// has one thread, so blocking it (as a long lock or a blocking call would) stalls the
    /// whole runtime; the watch wakes at least 500 ms after it last asked.
    #[tokio::test]
    async fn a_blocked_runtime_is_logged() {
        let (log, _guard) = crate::test_log::capture();
        let hub = Hub::for_tests(Config::for_tests());
        tokio::time::sleep(STALL_TICK / 2).await;
        std::thread::sleep(Duration::from_millis(600));
        tokio::time::sleep(STALL_TICK * 3).await;
        let text = log.text();
        let line = text.lines().find(|l| l.contains("the hub's runtime stalled")).unwrap_or_default();
        assert!(line.contains("WARN") && line.contains("late_ms="), "no stall warning:\n{text}");
        hub.shared.shutdown.send_replace(true);
    }
}
