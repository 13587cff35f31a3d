//! Budgets per client address and the caps on what the hub holds at once: how many requests an
//! address may make (`--address-rate-*`) and connections it may open (`--address-connect-*`,
//! checked as each is accepted), how many bytes its WebSockets together may make the
//! hub send (`--address-frame-budget`), rooms it may create (`--room-creations-per-hour`),
//! support conversations it may open (`--address-conversations-per-hour`),
//! connections it may hold open (`--max-connections-per-address`), conversations it keeps in
//! memory by being in them (`--max-conversations-per-address`), CORS preflights it may send (a
//! bucket of their own, the size of the request budget), long-polls it and everyone
//! together may hold (`--max-polls-per-address`, `--max-polls`), and bytes of `history`
//! answers being written to it and to everyone (`--max-replay-in-flight`), bytes of messages
//! it may have stored a day (`--address-store-bytes-per-day`), and the counters of bytes queued
//! to its connections (`--address-send-queue-bytes`, kept by the queues themselves: see
//! [`Limits::tally`]).
//!
//! Sessions are free to make, so a budget per session alone stops nobody; these are kept by the
//! client's address as [`crate::address`] judges it. For an IPv6 client every budget and count
//! is kept three times, for its /64, /56 and /48 ([`AddrKey::nested`]), so a holder of a /48
//! cannot multiply its budget by spreading over its 65,536 /64s. The wider ones allow a multiple
//! of the /64's rates ([`crate::address::WIDER`]); a count that is a share of a hub-wide cap
//! (connections, conversations, long-polls, history bytes, reply places and call turns) a
//! network may hold only as much of as one holder may (a quarter of the cap, see [`most`]), or
//! one /56 would take it all. Rates are GCRA buckets per key (`governor`'s keyed
//! limiter, one per prefix length, purged of idle keys by housekeeping), checked narrowest
//! first; what is held open is counted in one table, each count owned by a [`Slot`] that gives
//! it back (at every prefix) when dropped.
//!
//! Every refusal here is retryable: `rate_limited` (429) for what one address did, with how long
//! to wait; `unavailable` (503) for a cap everyone shares.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use natter_protocol::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::outbox::Tally;
use super::{Hub, Refusal};
use crate::address::{whose, AddrKey, WIDER};
use crate::config::Config;
use crate::metrics::{Limit, Metrics};

/// How long a client refused for holding too much is asked to wait.
const HELD_RETRY: Duration = Duration::from_secs(5);

/// Seconds of `--address-frame-budget` an address may spend at once.
const FRAME_BURST_SECONDS: u32 = 4;

/// A day.
const DAY: Duration = Duration::from_secs(86_400);

/// One rate kept per address and per wider IPv6 prefix: a keyed limiter for each prefix length,
/// in the order of [`AddrKey::nested`] (the address or /64 itself, then [`WIDER`]), the wider
/// ones allowing their multiple of the quota.
struct Nested {
    /// Each prefix length's limiter and its burst in cells.
    levels: Vec<(DefaultKeyedRateLimiter<AddrKey>, u32)>,
}

/// Which key's budget ran out, the multiple of the base budget it allows, and how long until it
/// has the cells asked for.
struct Over {
    key: AddrKey,
    times: u32,
    wait: Duration,
}

impl Nested {
    /// `quota(m)` is the quota for a key allowed `m` times the base one, with its burst; `None`
    /// (no limit) when the base quota is `None`.
    fn new(quota: impl Fn(u32) -> Option<(Quota, u32)>) -> Option<Nested> {
        let levels = std::iter::once(1)
            .chain(WIDER.iter().map(|(_, times)| *times))
            .map(|times| quota(times).map(|(q, burst)| (RateLimiter::keyed(q), burst)))
            .collect::<Option<Vec<_>>>()?;
        Some(Nested { levels })
    }

    /// Takes `cells` (clamped to each bucket's burst) for `key` and every wider prefix of it,
    /// narrowest first; stops at the first that cannot pay, so a refused request costs none of
    /// the wider budgets its neighbours share.
    fn take(&self, key: AddrKey, cells: u32) -> Result<(), Over> {
        for ((key, times), (limiter, burst)) in key.nested().zip(&self.levels) {
            let n = NonZeroU32::new(cells.min(*burst)).unwrap_or(NonZeroU32::MIN);
            let wait = match limiter.check_key_n(&key, n) {
                Ok(Ok(())) => continue,
                Ok(Err(not_until)) => not_until.wait_time_from(limiter.clock().now()),
                // More than the burst: cannot happen (clamped above).
                Err(_) => Duration::from_secs(1),
            };
            return Err(Over { key, times, wait });
        }
        Ok(())
    }

    fn purge(&self) {
        for (limiter, _) in &self.levels {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// A quota of `burst` cells refilling one every `period`, times `m`: `None` when either is 0.
fn scaled(burst: u32, period: Duration, m: u32) -> Option<(Quota, u32)> {
    let burst = NonZeroU32::new(burst.saturating_mul(m))?;
    Quota::with_period(period / m).map(|q| (q.allow_burst(burst), burst.get()))
}

/// See the module docs.
pub(crate) struct Limits {
    /// Requests per address; `None` when `--address-rate-burst` is 0.
    requests: Option<Nested>,
    /// CORS preflights per address: a bucket of their own the size of `requests` (see
    /// [`Hub::charge_preflight`]); `None` when `--address-rate-burst` is 0.
    preflights: Option<Nested>,
    /// New connections per directly connected address; `None` when `--address-connect-burst`
    /// is 0.
    connects: Option<Nested>,
    /// Room creations per address per hour; `None` when `--room-creations-per-hour` is 0.
    rooms: Option<Nested>,
    /// Conversations opened per address per hour; `None` when
    /// `--address-conversations-per-hour` is 0.
    openings: Option<Nested>,
    /// Bytes of frames per address, one cell a byte; `None` when `--address-frame-budget` is 0.
    frames: Option<Nested>,
    /// Bytes of messages stored per address per day, one cell a byte; `None` when
    /// `--address-store-bytes-per-day` is 0.
    stored: Option<Nested>,
    /// What each address holds open now; an address holding nothing has no entry.
    held: Mutex<HashMap<AddrKey, Held>>,
    /// Long-polls held now, all addresses together.
    polls: Mutex<usize>,
    /// Bytes of `history` answers not yet written, all addresses together.
    replay: Mutex<usize>,
    /// WebSockets' history answers written to their queues and not read yet, oldest first.
    unread: Mutex<std::collections::BTreeMap<u64, Unread>>,
    /// The key of the next entry of `unread`.
    next_unread: std::sync::atomic::AtomicU64,
    /// Bytes queued to every connection (see [`super::outbox::Tally`]).
    queued_total: Arc<AtomicUsize>,
    /// Bytes queued to the connections of each address and wider IPv6 network that has a
    /// connection; a counter nobody shares any more is forgotten by housekeeping.
    queued: Mutex<HashMap<AddrKey, Arc<AtomicUsize>>>,
    /// `--max-connections-per-address` in force (see `Config::connections_per_address`); 0 for
    /// no limit.
    connections_per_address: usize,
    /// `--max-conversations-per-address` in force (see `Config::conversations_per_address`); 0
    /// for no limit.
    conversations_per_address: usize,
    /// The share of the hub's connections (`--max-connections` as resolved) a wider IPv6 prefix
    /// may hold however many /64s it spreads over: a quarter of them, the default share of one
    /// address; `usize::MAX` when the hub has no connection cap.
    connections_share: usize,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

/// What one address holds open.
#[derive(Debug, Default)]
struct Held {
    connections: u32,
    /// Uses of conversations it keeps in memory (see [`Hold::Conversations`]).
    conversations: usize,
    polls: u32,
    /// Bytes of `history` answers being written to it.
    replay: usize,
    /// Its visitors' replies calling the reply engine or waiting for a call slot.
    replies: u32,
    /// Its turns to call the engine (a quarter of `--reply-concurrency`, for an address and for
    /// each wider prefix alike), while it has replies.
    calls: Option<Arc<Semaphore>>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.connections == 0
            && self.conversations == 0
            && self.polls == 0
            && self.replay == 0
            && self.replies == 0
    }
}

/// What a [`Slot`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// An open connection (counted per address only).
    Connection,
    /// This many uses of conversations, kept in memory while they last: a WebSocket's own
    /// conversation, a room it joined, the conversations a long-poll waits on (per address
    /// only; the hub-wide cap is `--max-conversations`).
    Conversations(usize),
    /// A held long-poll (counted per address and in all).
    Poll,
    /// This many bytes of a `history` answer being written (per address and in all).
    Replay(usize),
    /// A reply calling the engine or waiting for a call slot (per address; the hub-wide cap
    /// is the reply gate's).
    Reply,
}

impl Limits {
    /// The limits the configuration asks for.
    pub(super) fn new(config: &Config) -> Limits {
        let per = |rate: f64| (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        let requests = per(config.address_rate_per_sec)
            .and_then(|period| Nested::new(|m| scaled(config.address_rate_burst, period, m)));
        let preflights = per(config.address_rate_per_sec)
            .and_then(|period| Nested::new(|m| scaled(config.address_rate_burst, period, m)));
        let connects = per(config.address_connect_rate_per_sec)
            .and_then(|period| Nested::new(|m| scaled(config.address_connect_burst, period, m)));
        let rooms = NonZeroU32::new(config.room_creations_per_hour)
            .and_then(|n| Nested::new(|m| scaled(n.get(), Duration::from_secs(3600) / n.get(), m)));
        let openings = NonZeroU32::new(config.address_conversations_per_hour)
            .and_then(|n| Nested::new(|m| scaled(n.get(), Duration::from_secs(3600) / n.get(), m)));
        // A byte a cell, four seconds' worth as the burst, like `--frame-budget` (the cells are
        // a u32: a budget over 1 GiB a second, for an address or a network, is as good as none).
        let frames = Nested::new(|m| {
            let rate = u32::try_from(config.address_frame_budget.saturating_mul(u64::from(m)))
                .unwrap_or(u32::MAX)
                .min(u32::MAX / FRAME_BURST_SECONDS);
            let rate = NonZeroU32::new(rate)?;
            let burst = NonZeroU32::new(rate.get().saturating_mul(FRAME_BURST_SECONDS))?;
            Some((Quota::per_second(rate).allow_burst(burst), burst.get()))
        });
        // A byte a cell, the whole day's worth as the burst (a u32: over 4 GiB a day, for an
        // address or a network, is as good as none).
        let stored = Nested::new(|m| {
            let bytes = u32::try_from(config.address_store_bytes_per_day.saturating_mul(u64::from(m)))
                .unwrap_or(u32::MAX);
            let period = DAY.checked_div(bytes)?;
            scaled(bytes, period, 1)
        });
        let global = crate::accept::connection_limit(config.max_connections);
        let connections_per_address = config.connections_per_address(global);
        let connections_share = if global == usize::MAX { usize::MAX } else { global / 4 };
        Limits {
            requests,
            preflights,
            connects,
            rooms,
            openings,
            frames,
            stored,
            held: Mutex::default(),
            polls: Mutex::new(0),
            replay: Mutex::new(0),
            unread: Mutex::default(),
            next_unread: std::sync::atomic::AtomicU64::new(0),
            queued_total: Arc::default(),
            queued: Mutex::default(),
            connections_per_address,
            conversations_per_address: config.conversations_per_address(),
            connections_share,
        }
    }

    /// `--max-connections-per-address` in force; 0 for no limit.
    pub(crate) fn connections_per_address(&self) -> usize {
        self.connections_per_address
    }

    /// Bytes of `--max-replay-in-flight` taken now.
    pub(crate) fn replay_bytes(&self) -> usize {
        *self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes queued to every connection now.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_total.load(Ordering::Relaxed)
    }

    /// The most bytes queued now to the connections of one address or wider IPv6 network.
    pub(crate) fn address_queued_max(&self) -> usize {
        let queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        queued.values().map(|n| n.load(Ordering::Relaxed)).max().unwrap_or(0)
    }

    /// Where a new connection of `addr` counts its queued bytes (`None`: in the hub's total
    /// only, an operator's): the hub's total, and the counters of the address and each wider
    /// IPv6 network, each bounded by `--address-send-queue-bytes` — one address's share for a
    /// network too, however many /64s it spreads over. Takes a short lock once per connection;
    /// the fan-out then only touches the counters' atomics.
    pub(crate) fn tally(&self, addr: Option<AddrKey>, share: usize) -> Tally {
        let mut tally = Tally { total: Some(self.queued_total.clone()), levels: Default::default(), share };
        if let Some(addr) = addr {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            for ((key, _), level) in addr.nested().zip(&mut tally.levels) {
                *level = Some(queued.entry(key).or_default().clone());
            }
        }
        tally
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<AddrKey, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets addresses and networks whose buckets are full again (housekeeping).
    pub(super) fn purge(&self) {
        {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            queued.retain(|_, n| Arc::strong_count(n) > 1);
            if queued.capacity() > 2 * queued.len() + 64 {
                queued.shrink_to_fit();
            }
        }
        for limiter in [
            &self.requests,
            &self.preflights,
            &self.connects,
            &self.rooms,
            &self.openings,
            &self.frames,
            &self.stored,
        ]
        .into_iter()
        .flatten()
        {
            limiter.purge();
        }
    }
}

fn wait_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Hub {
    /// The hub's limits.
    pub(crate) fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Takes `cells` of `addr`'s budget in `limiter` (`None`: no limit). Past it, the
    /// `rate_limited` refusal with how long to wait, counted under `limit`; `say` words it from
    /// who was refused ([`whose`]: the address or its network), how many times one address's
    /// allowance that key has, and the wait in milliseconds.
    fn charge(
        &self,
        limiter: &Option<Nested>,
        addr: AddrKey,
        cells: u64,
        limit: Limit,
        say: impl FnOnce(String, u64, u64) -> String,
    ) -> Result<(), Refusal> {
        let Some(limiter) = limiter else { return Ok(()) };
        let Err(Over { key, times, wait }) = limiter.take(addr, u32::try_from(cells).unwrap_or(u32::MAX))
        else {
            return Ok(());
        };
        self.shared.metrics.limited(limit);
        let ms = wait_ms(wait);
        let mut r = Refusal::new(ErrorCode::RateLimited, say(whose(key), u64::from(times), ms));
        r.retry_after_ms = Some(ms);
        Err(r)
    }

    /// Takes one request from `addr`'s budget (`--address-rate-*`).
    pub(crate) fn charge_address(&self, addr: AddrKey) -> Result<(), Refusal> {
        let config = &self.shared.config;
        self.charge(&self.shared.limits.requests, addr, 1, Limit::Address, |who, times, ms| {
            format!(
                "too many requests from {who}: at most {} per second after a burst of {}; wait {ms} ms",
                config.address_rate_per_sec * times as f64,
                u64::from(config.address_rate_burst) * times
            )
        })
    }

    /// Takes one CORS preflight (`OPTIONS` on `/api`) from `addr`'s preflight bucket: one of
    /// its own, as large as the request budget (`--address-rate-*`), so that preflights cost
    /// an address's requests nothing (the widget's HTTP fallback sends its session in a
    /// header, so a browser preflights every poll, whose URL changes each time and so misses
    /// the preflight cache) while a flood of them is refused like any other.
    pub(crate) fn charge_preflight(&self, addr: AddrKey) -> Result<(), Refusal> {
        let config = &self.shared.config;
        self.charge(&self.shared.limits.preflights, addr, 1, Limit::Preflights, |who, times, ms| {
            format!(
                "too many CORS preflights from {who}: at most {} per second after a burst of {} \
                 (as --address-rate-per-sec, --address-rate-burst); wait {ms} ms",
                config.address_rate_per_sec * times as f64,
                u64::from(config.address_rate_burst) * times
            )
        })
    }

    /// Takes one new connection from `addr`'s connect budget (`--address-connect-*`), as the
    /// connection is accepted.
    pub(crate) fn charge_connect(&self, addr: AddrKey) -> Result<(), Refusal> {
        let config = &self.shared.config;
        self.charge(&self.shared.limits.connects, addr, 1, Limit::AddressConnects, |who, times, _| {
            format!(
                "too many new connections from {who}: at most {} per second after a burst of {} (--address-connect-rate-per-sec, --address-connect-burst); keep connections open, or retry later",
                config.address_connect_rate_per_sec * times as f64,
                u64::from(config.address_connect_burst) * times
            )
        })
    }

    /// Takes `cost` bytes from the frame budget of `addr`'s WebSockets together
    /// (`--address-frame-budget`); a frame costing more than the whole burst takes the burst.
    /// `Err` is the `rate_limited` refusal saying how long to wait.
    pub(crate) fn charge_address_frames(&self, addr: AddrKey, cost: u64) -> Result<(), Refusal> {
        let budget = self.shared.config.address_frame_budget;
        self.charge(&self.shared.limits.frames, addr, cost, Limit::AddressFrameBudget, |who, times, ms| {
            format!(
                "the connections from {who} together are sending more than the hub relays for it \
                 ({} bytes per second, counting each frame once per recipient); wait {ms} ms",
                budget.saturating_mul(times)
            )
        })
    }

    /// Takes one room creation from `addr`'s budget (`--room-creations-per-hour`).
    pub(crate) fn charge_room_creation(&self, addr: AddrKey, room: &str) -> Result<(), Refusal> {
        let per_hour = u64::from(self.shared.config.room_creations_per_hour);
        self.charge(&self.shared.limits.rooms, addr, 1, Limit::RoomCreations, |who, times, ms| {
            format!(
                "room {room:?} would be new, and {who} has created {} rooms in the last hour, the most it may (--room-creations-per-hour); use an existing room or wait {} s",
                per_hour * times,
                ms.div_ceil(1000)
            )
        })
    }

    /// Takes one conversation opening from `addr`'s budget
    /// (`--address-conversations-per-hour`, and the multiple of it of each wider IPv6 prefix):
    /// a visitor message that would open a support conversation that has no message yet.
    pub(crate) fn charge_conversation_opening(&self, addr: AddrKey) -> Result<(), Refusal> {
        let per_hour = u64::from(self.shared.config.address_conversations_per_hour);
        self.charge(&self.shared.limits.openings, addr, 1, Limit::ConversationOpenings, |who, times, ms| {
            format!(
                "this message would open a new conversation, and {who} has opened {} in the last hour, the most it may (--address-conversations-per-hour); continue an existing conversation or wait {} s",
                per_hour * times,
                ms.div_ceil(1000)
            )
        })
    }

    /// Takes `bytes`, the size of a message about to be stored, from the day's budget of `addr`
    /// (`--address-store-bytes-per-day`); a message larger than the whole budget takes it all.
    /// `Err` is the `rate_limited` refusal saying how long to wait.
    pub(crate) fn charge_store(&self, addr: AddrKey, bytes: usize) -> Result<(), Refusal> {
        let per_day = self.shared.config.address_store_bytes_per_day;
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.charge(&self.shared.limits.stored, addr, bytes, Limit::AddressStoreBytes, |who, times, ms| {
            format!(
                "{who} has had {} bytes of messages stored in the last day, the most it may \
                 (--address-store-bytes-per-day); wait {} s",
                per_day.saturating_mul(times),
                ms.div_ceil(1000)
            )
        })
    }

    /// Holds one more connection of `addr` (`--max-connections-per-address`; each wider IPv6
    /// prefix the multiple of it, but never more than a quarter of the hub's connections) for
    /// as long as the slot lives.
    pub(crate) fn hold_connection(&self, addr: AddrKey) -> Result<Slot, Refusal> {
        let limits = &self.shared.limits;
        let max = limits.connections_per_address;
        let mut held = limits.held();
        if let Some((key, most)) =
            full(&held, addr, max, limits.connections_share, |h| h.connections as usize)
        {
            drop(held);
            self.shared.metrics.limited(Limit::ConnectionsPerAddress);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "{} has {most} connections open to this hub, the most it may; close some first",
                    whose(key)
                ),
            );
            r.retry_after_ms = Some(wait_ms(HELD_RETRY));
            return Err(r);
        }
        for (key, _) in addr.nested() {
            held.entry(key).or_default().connections += 1;
        }
        Ok(Slot { hub: self.clone(), addr, hold: Hold::Connection, unread: None })
    }

    /// Holds `uses` more uses of conversations kept in memory for `addr`
    /// (`--max-conversations-per-address`; each wider IPv6 prefix the multiple of it, but never
    /// more than a quarter of `--max-conversations`) for as long as the slot lives: a
    /// WebSocket's own conversation or a room it joins (one each), the conversations a
    /// long-poll waits on (one per conversation). `Ok(None)` when there is no limit.
    ///
    /// A conversation someone is connected to, present in or waiting on is never forgotten to
    /// make room for another, so this is what stops one address (three WebSockets in a hundred
    /// rooms each) from holding every `--max-conversations` place and having every new visitor
    /// refused `unavailable`.
    pub(crate) fn hold_conversations(&self, addr: AddrKey, uses: usize) -> Result<Option<Slot>, Refusal> {
        let limits = &self.shared.limits;
        let max = limits.conversations_per_address;
        if max == 0 {
            return Ok(None);
        }
        let share = (self.shared.config.max_conversations / 4).max(1);
        let mut held = limits.held();
        let over = addr.nested().find_map(|(key, times)| {
            let most = most(max, times, share);
            let taken = held.get(&key).map_or(0, |h| h.conversations);
            (taken.saturating_add(uses) > most).then_some((key, taken, most))
        });
        if let Some((key, taken, most)) = over {
            drop(held);
            self.shared.metrics.limited(Limit::ConversationsPerAddress);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "{} keeps {taken} conversations in memory (its connections' own, the rooms they joined, \
                     those its long-polls wait on) and may keep {most} (--max-conversations-per-address); \
                     this needs {uses} more: leave a room or close a connection first",
                    whose(key)
                ),
            );
            r.retry_after_ms = Some(wait_ms(HELD_RETRY));
            return Err(r);
        }
        for (key, _) in addr.nested() {
            held.entry(key).or_default().conversations += uses;
        }
        Ok(Some(Slot { hub: self.clone(), addr, hold: Hold::Conversations(uses), unread: None }))
    }

    /// Holds one more long-poll of `addr` (`--max-polls-per-address`, `--max-polls`; each wider
    /// IPv6 prefix the multiple of the address's, but never more than a quarter of
    /// `--max-polls`) for as long as the slot lives.
    pub(crate) fn hold_poll(&self, addr: AddrKey) -> Result<Slot, Refusal> {
        let config = &self.shared.config;
        let limits = &self.shared.limits;
        let mut total = limits.polls.lock().unwrap_or_else(|p| p.into_inner());
        if config.max_polls > 0 && *total >= config.max_polls {
            drop(total);
            self.shared.metrics.limited(Limit::Polls);
            let mut r = Refusal::new(
                ErrorCode::Unavailable,
                format!("the hub holds its most long-polls ({}) now; poll again later", config.max_polls),
            );
            r.retry_after_ms = Some(wait_ms(HELD_RETRY));
            return Err(r);
        }
        let mut held = limits.held();
        let share = if config.max_polls == 0 { usize::MAX } else { config.max_polls / 4 };
        if let Some((key, most)) =
            full(&held, addr, config.max_polls_per_address, share, |h| h.polls as usize)
        {
            drop(held);
            drop(total);
            self.shared.metrics.limited(Limit::PollsPerAddress);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "{} holds {most} long-polls already, the most it may; poll again when one returns",
                    whose(key)
                ),
            );
            r.retry_after_ms = Some(wait_ms(HELD_RETRY));
            return Err(r);
        }
        for (key, _) in addr.nested() {
            held.entry(key).or_default().polls += 1;
        }
        *total += 1;
        Ok(Slot { hub: self.clone(), addr, hold: Hold::Poll, unread: None })
    }
}

impl Hub {
    /// Holds `bytes` of a `history` answer to `addr` (`--max-replay-in-flight`, a quarter of it
    /// per address and as much for each wider IPv6 prefix, however many /64s it spreads over)
    /// for as long as the slot lives: while the answer is read from the store and built, then,
    /// for a WebSocket, queued with the frame ([`Outbox::send_held`](super::Outbox::send_held))
    /// until the connection's writer has handed all of it to the kernel, whose send buffer is
    /// bounded (`--socket-send-buffer`). A peer that asks for history and never reads it keeps
    /// its address's share taken, not more memory.
    pub(crate) fn hold_replay(&self, addr: AddrKey, bytes: usize) -> Result<Slot, Refusal> {
        let max = self.shared.config.max_replay_in_flight;
        let limits = &self.shared.limits;
        let mut total = limits.replay.lock().unwrap_or_else(|p| p.into_inner());
        let mut held = limits.held();
        if max > 0 {
            // Always room for one answer when nothing else is held, however large.
            let per_address = (max / 4).max(1);
            let over = addr.nested().find_map(|(key, times)| {
                let taken = held.get(&key).map_or(0, |h| h.replay);
                (taken > 0 && taken + bytes > most(per_address, times, per_address)).then_some((key, taken))
            });
            let over = over.filter(|&(key, taken)| {
                let (_, times) = addr.nested().find(|(k, _)| *k == key).unwrap_or((key, 1));
                !self.evict_unread(Some(key), taken, bytes, most(per_address, times, per_address))
            });
            let full = *total > 0 && *total + bytes > max && !self.evict_unread(None, *total, bytes, max);
            let refusal = if let Some((key, taken)) = over {
                self.shared.metrics.limited(Limit::ReplayInFlightPerAddress);
                Some(Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "history answers to {} still being written come to {taken} bytes, the most \
                         it may have (a quarter of --max-replay-in-flight, for an address and for a wider \
                         IPv6 network alike); read them, then ask again",
                        whose(key)
                    ),
                ))
            } else if full {
                self.shared.metrics.limited(Limit::ReplayInFlight);
                Some(Refusal::new(
                    ErrorCode::Unavailable,
                    format!("the hub is writing its most history at once ({max} bytes); ask again shortly"),
                ))
            } else {
                None
            };
            if let Some(mut r) = refusal {
                r.retry_after_ms = Some(REPLAY_RETRY_MS);
                return Err(r);
            }
        }
        for (key, _) in addr.nested() {
            held.entry(key).or_default().replay += bytes;
        }
        *total += bytes;
        Ok(Slot { hub: self.clone(), addr, hold: Hold::Replay(bytes), unread: None })
    }

    /// Makes room for `bytes` more of `--max-replay-in-flight` within `scope` (an address or
    /// network, or the whole hub with `None`), where `taken` is held now, by closing (4001, as
    /// slow consumers) the connections holding the oldest history answers written but not
    /// read, until what they give back leaves room. `true` when it does (the bytes being given
    /// back are no longer counted against anyone). Only answers no one has read yet go: a
    /// history being built, or a long-poll's, is never cut short.
    fn evict_unread(&self, scope: Option<AddrKey>, taken: usize, bytes: usize, most: usize) -> bool {
        let mut unread = self.shared.limits.unread.lock().unwrap_or_else(|p| p.into_inner());
        let in_scope = |u: &Unread| scope.is_none_or(|key| u.addr.nested().any(|(k, _)| k == key));
        let mut freeing: usize = unread.values().filter(|u| u.told && in_scope(u)).map(|u| u.bytes).sum();
        for u in unread.values_mut() {
            if taken.saturating_sub(freeing) + bytes <= most {
                break;
            }
            if u.told || !in_scope(u) {
                continue;
            }
            u.told = true;
            freeing += u.bytes;
            if let Some(control) = u.control.upgrade() {
                if control.close(natter_protocol::close::SLOW_CONSUMER) {
                    Metrics::add(&self.shared.metrics.slow_consumers, 1);
                }
            }
        }
        taken.saturating_sub(freeing) + bytes <= most
    }
}

/// A WebSocket's `history` answer written to its queue and not read yet (see
/// [`Slot::unread_by`]): what [`Hub::evict_unread`] may cut when others need the room.
#[derive(Debug)]
pub(crate) struct Unread {
    addr: AddrKey,
    bytes: usize,
    /// The connection's stop signal.
    control: std::sync::Weak<super::outbox::Control>,
    /// Told to close already; its bytes are on their way back.
    told: bool,
}

/// The reply-engine calls one address — or one wider IPv6 prefix, all its /64s together — may
/// have in flight at once: a quarter of `--reply-concurrency`, at least one.
pub(crate) fn calls_per_address(reply_concurrency: usize) -> usize {
    (reply_concurrency / 4).max(1)
}

/// One of an address's places in the reply engine (see [`Hub::hold_reply`]).
#[derive(Debug)]
#[must_use = "the place is given back when this is dropped"]
pub(crate) struct ReplyPlace {
    _slot: Slot,
    /// The turns of the address and of each wider prefix of it, narrowest first.
    calls: Vec<Arc<Semaphore>>,
}

/// A turn to call the reply engine: one of the address's turns and one of each wider IPv6
/// prefix's, given back when this is dropped.
#[derive(Debug)]
#[must_use = "the turn is given back when this is dropped"]
pub(crate) struct CallTurn {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl ReplyPlace {
    /// Waits for one of the address's turns to call the engine ([`calls_per_address`] at
    /// once, first come first served), then for one of its /56's and one of its /48's (as
    /// many again, shared by all their /64s): always narrowest first, so two places never wait
    /// for each other's turns. `None` only if the turns were closed, which they never are.
    pub(crate) async fn call_turn(&self) -> Option<CallTurn> {
        let mut permits = Vec::with_capacity(self.calls.len());
        for calls in &self.calls {
            permits.push(calls.clone().acquire_owned().await.ok()?);
        }
        Some(CallTurn { _permits: permits })
    }
}

impl Hub {
    /// Holds one of the places of `addr`'s visitors in the reply engine (calling or waiting
    /// for a call slot): a quarter of `--reply-concurrency` + `--reply-queue`, so one address
    /// sending from fresh sessions cannot take every call and queue place and leave everybody
    /// else the fallback. `None` when its quarter is taken: this reply is shed. A wider IPv6
    /// prefix gets the same quarter, not a multiple: the places are shares of one hub-wide
    /// cap, and a /56 with four quarters would hold all of them.
    ///
    /// Places are not calls: with the default 32 calls and 256 queue places, a quarter of the
    /// places is 72, more than every call slot. So a place also waits for one of the address's
    /// own turns ([`ReplyPlace::call_turn`], [`calls_per_address`]) before it asks the hub-wide
    /// gate for a call slot: one address's messages take at most a quarter of the calls in
    /// flight, and the rest of them wait behind each other rather than in front of everyone.
    /// The turns are nested like the places: a /56's or /48's /64s together take at most a
    /// quarter of the calls.
    pub(crate) fn hold_reply(&self, addr: AddrKey) -> Option<ReplyPlace> {
        let config = &self.shared.config;
        let share =
            u32::try_from(((config.reply_concurrency + config.reply_queue) / 4).max(1)).unwrap_or(u32::MAX);
        let mut held = self.shared.limits.held();
        if full(&held, addr, share as usize, share as usize, |h| h.replies as usize).is_some() {
            drop(held);
            self.shared.metrics.limited(Limit::RepliesPerAddress);
            return None;
        }
        let turns = calls_per_address(config.reply_concurrency);
        let calls = addr
            .nested()
            .map(|(key, _)| {
                let entry = held.entry(key).or_default();
                entry.replies += 1;
                entry.calls.get_or_insert_with(|| Arc::new(Semaphore::new(turns))).clone()
            })
            .collect();
        Some(ReplyPlace { _slot: Slot { hub: self.clone(), addr, hold: Hold::Reply, unread: None }, calls })
    }
}

/// How long a client refused for history still being written is asked to wait.
const REPLAY_RETRY_MS: u64 = 1000;

/// The most a key allowed `times` the address's `max` may hold of a count that is a share of a
/// hub-wide cap: `times × max`, but no more than `share`, the part of the cap one holder may
/// take (a quarter of it) — and never less than `max`, what one address may hold anyway.
///
/// Rates scale with a network's size (a /48 makes 16 times the requests of a /64), but a
/// held count is a slice of one pool: a /56 allowed four addresses' quarters would hold all of
/// it, so a network may hold only what one holder may.
fn most(max: usize, times: u32, share: usize) -> usize {
    max.saturating_mul(times as usize).min(share.max(max))
}

/// The first of `addr` and its wider IPv6 prefixes that already holds the most it may of what
/// `count` counts (`max` for the address; for a wider prefix its multiple, capped at `share`
/// — see [`most`]), with that most; `None` when each may hold one more, or when `max` is 0 (no
/// limit).
fn full(
    held: &HashMap<AddrKey, Held>,
    addr: AddrKey,
    max: usize,
    share: usize,
    count: impl Fn(&Held) -> usize,
) -> Option<(AddrKey, usize)> {
    if max == 0 {
        return None;
    }
    addr.nested().find_map(|(key, times)| {
        let most = most(max, times, share);
        (held.get(&key).map_or(0, &count) >= most).then_some((key, most))
    })
}

/// One connection, long-poll or answer being written to an address, counted while this lives.
#[derive(Debug)]
#[must_use = "the count is given back when the slot is dropped"]
pub(crate) struct Slot {
    hub: Hub,
    addr: AddrKey,
    hold: Hold,
    /// Its entry in the unread answers, for a history answer queued to a WebSocket.
    unread: Option<u64>,
}

impl Slot {
    /// Makes a history reservation ([`Hub::hold_replay`]) exactly `bytes`: what the answer came
    /// to once built, usually much less than the `--max-replay-bytes` held while it was read.
    /// Never refuses (the answer exists by now). Other slots are left as they are.
    pub(crate) fn resize_replay(&mut self, bytes: usize) {
        let Hold::Replay(old) = self.hold else { return };
        let limits = &self.hub.shared.limits;
        {
            let mut total = limits.replay.lock().unwrap_or_else(|p| p.into_inner());
            *total = total.saturating_sub(old).saturating_add(bytes);
        }
        let mut held = limits.held();
        for (key, _) in self.addr.nested() {
            if let Some(entry) = held.get_mut(&key) {
                entry.replay = entry.replay.saturating_sub(old).saturating_add(bytes);
            }
        }
        self.hold = Hold::Replay(bytes);
    }

    /// Marks a history reservation as an answer queued to the connection that `control` stops
    /// and not read yet: until the slot is dropped (the answer written), another request that
    /// finds `--max-replay-in-flight` or its address's share taken may have that connection
    /// closed to make room ([`Hub::evict_unread`]), oldest answers first. A peer that asks
    /// for history and never reads keeps the share only until someone else needs it.
    pub(crate) fn unread_by(&mut self, control: &Arc<super::outbox::Control>) {
        let Hold::Replay(bytes) = self.hold else { return };
        let limits = &self.hub.shared.limits;
        let id = limits.next_unread.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = Unread { addr: self.addr, bytes, control: Arc::downgrade(control), told: false };
        limits.unread.lock().unwrap_or_else(|p| p.into_inner()).insert(id, entry);
        self.unread = Some(id);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let limits = &self.hub.shared.limits;
        if let Some(id) = self.unread {
            limits.unread.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        }
        match self.hold {
            Hold::Poll => {
                let mut total = limits.polls.lock().unwrap_or_else(|p| p.into_inner());
                *total = total.saturating_sub(1);
            }
            Hold::Replay(bytes) => {
                let mut total = limits.replay.lock().unwrap_or_else(|p| p.into_inner());
                *total = total.saturating_sub(bytes);
            }
            Hold::Connection | Hold::Conversations(_) | Hold::Reply => {}
        }
        let mut held = limits.held();
        for (key, _) in self.addr.nested() {
            let Some(entry) = held.get_mut(&key) else { continue };
            match self.hold {
                Hold::Connection => entry.connections = entry.connections.saturating_sub(1),
                Hold::Conversations(n) => entry.conversations = entry.conversations.saturating_sub(n),
                Hold::Poll => entry.polls = entry.polls.saturating_sub(1),
                Hold::Replay(bytes) => entry.replay = entry.replay.saturating_sub(bytes),
                Hold::Reply => {
                    entry.replies = entry.replies.saturating_sub(1);
                    if entry.replies == 0 {
                        entry.calls = None;
                    }
                }
            }
            if entry.is_empty() {
                held.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use futures_util::FutureExt as _;

    use super::*;

    fn hub(f: impl FnOnce(&mut Config)) -> Hub {
        let mut config = Config::for_tests();
        f(&mut config);
        Hub::for_tests(config)
    }

    fn addr(last: u8) -> AddrKey {
        AddrKey::of(std::net::IpAddr::from([192, 0, 2, last]))
    }

    #[tokio::test]
    async fn requests_per_address_have_a_burst_then_wait() {
        let hub = hub(|c| {
            c.address_rate_burst = 3;
            c.address_rate_per_sec = 1.0;
        });
        for _ in 0..3 {
            assert!(hub.charge_address(addr(1)).is_ok());
        }
        let r = hub.charge_address(addr(1)).unwrap_err();
        assert_eq!(r.code, ErrorCode::RateLimited);
        assert!(r.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 1000), "{r:?}");
        assert!(hub.charge_address(addr(2)).is_ok(), "another address has its own budget");
    }

    #[tokio::test]
    async fn held_counts_are_given_back() {
        let hub = hub(|c| {
            c.max_connections_per_address = Some(2);
            c.max_polls_per_address = 1;
            c.max_polls = 2;
        });
        let a = hub.hold_connection(addr(1)).expect("first");
        let _b = hub.hold_connection(addr(1)).expect("second");
        assert_eq!(hub.hold_connection(addr(1)).unwrap_err().code, ErrorCode::RateLimited);
        drop(a);
        let _c = hub.hold_connection(addr(1)).expect("room again");

        let p = hub.hold_poll(addr(1)).expect("poll");
        assert_eq!(hub.hold_poll(addr(1)).unwrap_err().code, ErrorCode::RateLimited, "per address");
        let _q = hub.hold_poll(addr(2)).expect("another address");
        assert_eq!(hub.hold_poll(addr(3)).unwrap_err().code, ErrorCode::Unavailable, "in all");
        drop(p);
        let _r = hub.hold_poll(addr(3)).expect("a poll returned");
        drop((_b, _c));
        assert!(!hub.shared.limits.held().contains_key(&addr(1)), "an address holding nothing is forgotten");
    }

    fn v6(s: &str) -> AddrKey {
        AddrKey::of(s.parse().expect("an address"))
    }

    /// A /48 spreading over its /64s gets 16 times one /64's requests, a /56 4 times, and a
    /// /64 in another /48 is unaffected; the refusal names the network.
    #[tokio::test]
    async fn requests_of_many_slash_64s_add_up_in_their_slash_56_and_slash_48() {
        let hub = hub(|c| {
            c.address_rate_burst = 3;
            c.address_rate_per_sec = 0.001;
        });
        // Fresh /64s of one /56: four /64s' worth, then the /56 is out.
        let paid =
            (0..20).filter(|i| hub.charge_address(v6(&format!("2001:db8:1:{i:x}::1"))).is_ok()).count();
        assert_eq!(paid, 12);
        let r = hub.charge_address(v6("2001:db8:1:ff::1")).unwrap_err();
        assert!(r.message.contains("your network (2001:db8:1::/56)"), "{}", r.message);
        assert!(r.message.contains("burst of 12"), "{}", r.message);
        // Fresh /56s of the same /48: sixteen /64s' worth in all.
        let paid = (1..40)
            .filter(|i| hub.charge_address(v6(&format!("2001:db8:1:{:x}::1", i * 256))).is_ok())
            .count();
        assert_eq!(paid, 48 - 12);
        let r = hub.charge_address(v6("2001:db8:1:ab00::1")).unwrap_err();
        assert!(r.message.contains("your network (2001:db8:1::/48)"), "{}", r.message);
        assert!(hub.charge_address(v6("2001:db8:2::1")).is_ok(), "another /48 has its own budget");
        // A /64 refused by its own budget costs its neighbours nothing.
        let hub = self::hub(|c| {
            c.address_rate_burst = 3;
            c.address_rate_per_sec = 0.001;
        });
        let paid = (0..100).filter(|_| hub.charge_address(v6("2001:db8:3::1")).is_ok()).count();
        assert_eq!(paid, 3);
        let r = hub.charge_address(v6("2001:db8:3::1")).unwrap_err();
        assert!(r.message.contains("your address"), "{}", r.message);
        let paid =
            (1..10).filter(|i| hub.charge_address(v6(&format!("2001:db8:3:{i:x}::1"))).is_ok()).count();
        assert_eq!(paid, 9, "the /56 was charged only for what its /64 was allowed");
    }

    #[tokio::test]
    async fn connections_of_a_slash_48_are_counted_together_and_given_back() {
        let hub = hub(|c| c.max_connections_per_address = Some(1));
        let slots: Vec<Slot> = (0..100u32)
            .filter_map(|i| hub.hold_connection(v6(&format!("2001:db8:5:{:x}::1", i * 256 + i % 3))).ok())
            .collect();
        assert_eq!(slots.len(), 16);
        let r = hub.hold_connection(v6("2001:db8:5:ffff::1")).unwrap_err();
        assert!(r.message.contains("your network (2001:db8:5::/48) has 16 connections"), "{}", r.message);
        assert!(hub.hold_connection(v6("2001:db8:6::1")).is_ok(), "another /48");
        drop(slots);
        assert!(hub.shared.limits.held().is_empty(), "every prefix's count is given back");
        assert!(hub.hold_connection(v6("2001:db8:5:ffff::1")).is_ok());
    }

    #[tokio::test]
    async fn polls_of_a_slash_48_are_counted_together() {
        let hub = hub(|c| c.max_polls_per_address = 1);
        let polls: Vec<Slot> =
            (0..40u32).filter_map(|i| hub.hold_poll(v6(&format!("2001:db8:7:{i:x}00::1"))).ok()).collect();
        assert_eq!(polls.len(), 16);
        let r = hub.hold_poll(v6("2001:db8:7:ff00::1")).unwrap_err();
        assert!(r.message.contains("your network (2001:db8:7::/48) holds 16"), "{}", r.message);
        drop(polls);
        assert!(hub.hold_poll(v6("2001:db8:7:ff00::1")).is_ok(), "given back");
    }

    /// Counts that are shares of a hub-wide cap grow with a network's multiple only up to the
    /// quarter of the cap one holder may take: four /64s of one /56 never hold every
    /// connection or long-poll of the hub.
    #[tokio::test]
    async fn a_network_holds_no_more_of_a_hub_wide_cap_than_its_share() {
        // 200 connections: 50 an address (the default quarter), and 50 for a /56 too, not 200.
        let hub = hub(|c| {
            c.max_connections = Some(200);
            c.max_connections_per_address = None;
        });
        assert_eq!(hub.limits().connections_per_address(), 50);
        let slots: Vec<Slot> = (0..4u32)
            .flat_map(|i| (0..50).map(move |_| i))
            .filter_map(|i| hub.hold_connection(v6(&format!("2001:db8:a:{i:x}::1"))).ok())
            .collect();
        assert_eq!(slots.len(), 50, "a quarter of the hub for the whole /56");
        let r = hub.hold_connection(v6("2001:db8:a:ff::1")).unwrap_err();
        assert!(r.message.contains("your network (2001:db8:a::/56) has 50 connections"), "{}", r.message);
        assert!(hub.hold_connection(addr(1)).is_ok(), "others connect");
        // An address allowed more than a quarter by the operator: a network gets as much, no more.
        let hub = self::hub(|c| {
            c.max_connections = Some(200);
            c.max_connections_per_address = Some(80);
        });
        let slots: Vec<Slot> = (0..400u32)
            .filter_map(|i| hub.hold_connection(v6(&format!("2001:db8:b:{:x}::1", i % 4))).ok())
            .collect();
        assert_eq!(slots.len(), 80);
        // No cap on the hub's connections: the multiple holds.
        let hub = self::hub(|c| {
            c.max_connections = Some(0);
            c.max_connections_per_address = Some(1);
        });
        let slots: Vec<Slot> = (0..10u32)
            .filter_map(|i| hub.hold_connection(v6(&format!("2001:db8:c:{i:x}::1"))).ok())
            .collect();
        assert_eq!(slots.len(), 4);
        // 100 long-polls, 10 an address: ten /64s of one /48 hold 25, not all 100.
        let hub = self::hub(|c| {
            c.max_polls = 100;
            c.max_polls_per_address = 10;
        });
        let polls: Vec<Slot> = (0..200u32)
            .filter_map(|i| hub.hold_poll(v6(&format!("2001:db8:d:{:x}00::1", i % 10))).ok())
            .collect();
        assert_eq!(polls.len(), 25);
        let r = hub.hold_poll(v6("2001:db8:d:ff00::1")).unwrap_err();
        assert!(r.message.contains("your network (2001:db8:d::/48) holds 25"), "{}", r.message);
        assert!(hub.hold_poll(addr(1)).is_ok(), "others poll");
        // History bytes in flight: a quarter of --max-replay-in-flight for the /56 as for a /64.
        let hub = self::hub(|c| c.max_replay_in_flight = 4_000);
        let answers: Vec<Slot> = (0..16u32)
            .filter_map(|i| hub.hold_replay(v6(&format!("2001:db8:e:{i:x}::1")), 1_000).ok())
            .collect();
        assert_eq!(answers.len(), 1);
        assert!(hub.hold_replay(addr(1), 1_000).is_ok(), "others resume");
    }

    /// Conversations kept in memory: a quarter of `--max-conversations` for an address, and
    /// for a /56 or /48 however many /64s it spreads over; a poll of several takes one use for
    /// each, all or none; everything is given back.
    #[tokio::test]
    async fn conversations_of_a_network_are_one_share() {
        let hub = hub(|c| {
            c.max_conversations = 40;
            c.max_conversations_per_address = None;
        });
        let uses: Vec<Slot> = (0..40u32)
            .filter_map(|i| hub.hold_conversations(v6(&format!("2001:db8:f:{i:x}::1")), 1).ok().flatten())
            .collect();
        assert_eq!(uses.len(), 10, "a quarter of 40 for the whole /56");
        let r = hub.hold_conversations(v6("2001:db8:f:ff::1"), 1).unwrap_err();
        assert_eq!(r.code, ErrorCode::RateLimited);
        assert!(r.message.contains("your network (2001:db8:f::/56) keeps 10"), "{}", r.message);
        assert!(hub.hold_conversations(addr(1), 10).expect("another address").is_some());
        assert!(hub.hold_conversations(addr(2), 11).is_err(), "more than a quarter at once");
        assert!(hub.hold_conversations(addr(2), 10).is_ok(), "a refused poll took nothing");
        drop(uses);
        assert!(hub.hold_conversations(v6("2001:db8:f:ff::1"), 10).is_ok(), "given back");
        let off = self::hub(|c| c.max_conversations_per_address = Some(0));
        assert!(off.hold_conversations(addr(1), 1_000_000).expect("no limit").is_none());
    }

    /// A /56 or /48 gets a quarter of the reply places and call turns however many /64s it
    /// sends from, not four or sixteen quarters (which would be all of them).
    #[tokio::test]
    async fn reply_places_and_call_turns_of_a_network_are_one_share() {
        let hub = hub(|c| {
            c.reply_concurrency = 8;
            c.reply_queue = 8;
        });
        // A quarter of 16 places: 4, for the /56 of many /64s as for one /64.
        let places: Vec<ReplyPlace> =
            (0..40u32).filter_map(|i| hub.hold_reply(v6(&format!("2001:db8:7:{i:x}::1")))).collect();
        assert_eq!(places.len(), 4, "one /56");
        assert!(hub.hold_reply(v6("2001:db8:7:100::1")).is_none(), "another /56 of the /48");
        assert!(hub.hold_reply(v6("2001:db8:8::1")).is_some(), "another /48");
        // A quarter of 8 calls: 2 turns for all four /64s together.
        let mut turns = Vec::new();
        for place in &places {
            // A free turn is taken at once; a place that would wait gives up (and gives back
            // what it took) when its future is dropped.
            if let Some(turn) = place.call_turn().now_or_never() {
                turns.push(turn.expect("open"));
            }
        }
        assert_eq!(turns.len(), 2, "two turns for the /56");
        let honest = hub.hold_reply(addr(1)).expect("a place");
        assert!(honest.call_turn().now_or_never().flatten().is_some(), "an IPv4 visitor calls at once");
        // A turn given back goes to the /56's next place.
        turns.pop();
        assert!(places[3].call_turn().now_or_never().flatten().is_some());
        drop((turns, places));
        assert!(hub.hold_reply(v6("2001:db8:7:ff::1")).is_some(), "given back");
    }

    /// Queued bytes: /64s of one /48 count in one counter for the /48 (and one for their /56
    /// when they share it), bounded by one address's share; counters nobody uses are forgotten.
    #[tokio::test]
    async fn queued_bytes_of_a_network_share_one_counter() {
        let hub = hub(|_| {});
        let (a, b) = (
            hub.limits().tally(Some(v6("2001:db8:1:1::1")), 10),
            hub.limits().tally(Some(v6("2001:db8:1:ff01::1")), 10),
        );
        let level = |t: &Tally, i: usize| t.levels[i].clone().expect("a level");
        assert!(!Arc::ptr_eq(&level(&a, 0), &level(&b, 0)) && !Arc::ptr_eq(&level(&a, 1), &level(&b, 1)));
        assert!(Arc::ptr_eq(&level(&a, 2), &level(&b, 2)), "one /48");
        assert_eq!((a.share, b.share), (10, 10), "a network gets one address's share");
        let four = hub.limits().tally(Some(addr(1)), 10);
        assert!(four.levels[0].is_some() && four.levels[1].is_none(), "IPv4: the address only");
        assert!(hub.limits().tally(None, 10).levels.iter().all(Option::is_none), "an operator's");
        level(&a, 2).fetch_add(7, Ordering::Relaxed);
        assert_eq!(hub.limits().address_queued_max(), 7);
        drop((a, b, four));
        hub.limits().purge();
        assert!(hub.limits().queued.lock().expect("lock").is_empty(), "forgotten");
    }

    #[tokio::test]
    async fn stored_bytes_have_a_day_budget_per_address_and_network() {
        let hub = hub(|c| c.address_store_bytes_per_day = 10_000);
        assert!(hub.charge_store(addr(1), 6_000).is_ok());
        let r = hub.charge_store(addr(1), 6_000).unwrap_err();
        assert_eq!(r.code, ErrorCode::RateLimited);
        // Most of a day to wait for the 2,000 bytes missing: a fifth of it.
        assert!(r.retry_after_ms.is_some_and(|ms| ms > 17_000_000 && ms <= 17_280_000), "{r:?}");
        assert!(hub.charge_store(addr(2), 6_000).is_ok(), "another address");
        let paid = (0..40)
            .filter(|i| hub.charge_store(v6(&format!("2001:db8:9:{i:x}00::1")), 10_000).is_ok())
            .count();
        assert_eq!(paid, 16);
    }
}
