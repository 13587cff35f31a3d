//! Budgets per client address and the caps on what the hub holds at once: how many requests an
//! address may make (`--address-rate-*`) and connections it may open (`--address-connect-*`,
//! checked as each is accepted), how many bytes its WebSockets together may make the
//! hub send (`--address-frame-budget`), rooms it may create (`--room-creations-per-hour`),
//! support conversations it may open (`--address-conversations-per-hour`),
//! connections it may hold open (`--max-connections-per-address`), long-polls it and everyone
//! together may hold (`--max-polls-per-address`, `--max-polls`), and bytes of `history`
//! answers being written to it and to everyone (`--max-replay-in-flight`).
//!
//! Sessions are free to make, so a budget per session alone stops nobody; these are kept by the
//! client's address as [`crate::address`] judges it. Rates are GCRA buckets per address
//! (`governor`'s keyed limiter, purged of idle addresses by housekeeping); what is held open is
//! counted in one table, each count owned by a [`Slot`] that gives it back when dropped.
//!
//! Every refusal here is retryable: `rate_limited` (429) for what one address did, with how long
//! to wait; `unavailable` (503) for a cap everyone shares.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use natter_protocol::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Hub, Refusal};
use crate::address::AddrKey;
use crate::config::Config;
use crate::metrics::Limit;

/// How long a client refused for holding too much is asked to wait.
const HELD_RETRY: Duration = Duration::from_secs(5);

/// Seconds of `--address-frame-budget` an address may spend at once.
const FRAME_BURST_SECONDS: u32 = 4;

/// See the module docs.
pub(crate) struct Limits {
    /// Requests per address; `None` when `--address-rate-burst` is 0.
    requests: Option<DefaultKeyedRateLimiter<AddrKey>>,
    /// New connections per directly connected address; `None` when `--address-connect-burst`
    /// is 0.
    connects: Option<DefaultKeyedRateLimiter<AddrKey>>,
    /// Room creations per address per hour; `None` when `--room-creations-per-hour` is 0.
    rooms: Option<DefaultKeyedRateLimiter<AddrKey>>,
    /// Conversations opened per address per hour; `None` when
    /// `--address-conversations-per-hour` is 0.
    openings: Option<DefaultKeyedRateLimiter<AddrKey>>,
    /// Bytes of frames per address, one cell a byte; `None` when `--address-frame-budget` is 0.
    frames: Option<DefaultKeyedRateLimiter<AddrKey>>,
    /// What each address holds open now; an address holding nothing has no entry.
    held: Mutex<HashMap<AddrKey, Held>>,
    /// Long-polls held now, all addresses together.
    polls: Mutex<usize>,
    /// Bytes of `history` answers not yet written, all addresses together.
    replay: Mutex<usize>,
    /// `--max-connections-per-address` in force (see `Config::connections_per_address`); 0 for
    /// no limit.
    connections_per_address: usize,
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
    polls: u32,
    /// Bytes of `history` answers being written to it.
    replay: usize,
    /// Its visitors' replies calling the reply engine or waiting for a call slot.
    replies: u32,
    /// Its turns to call the engine (a quarter of `--reply-concurrency`), while it has replies.
    calls: Option<Arc<Semaphore>>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.connections == 0 && self.polls == 0 && self.replay == 0 && self.replies == 0
    }
}

/// What a [`Slot`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// An open connection (counted per address only).
    Connection,
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
        let requests = NonZeroU32::new(config.address_rate_burst)
            .filter(|_| config.address_rate_per_sec > 0.0)
            .and_then(|burst| {
                let period = Duration::from_secs_f64(1.0 / config.address_rate_per_sec);
                Quota::with_period(period).map(|q| RateLimiter::keyed(q.allow_burst(burst)))
            });
        let connects = NonZeroU32::new(config.address_connect_burst)
            .filter(|_| config.address_connect_rate_per_sec > 0.0)
            .and_then(|burst| {
                let period = Duration::from_secs_f64(1.0 / config.address_connect_rate_per_sec);
                Quota::with_period(period).map(|q| RateLimiter::keyed(q.allow_burst(burst)))
            });
        let rooms = NonZeroU32::new(config.room_creations_per_hour).and_then(|n| {
            Quota::with_period(Duration::from_secs(3600) / n.get())
                .map(|q| RateLimiter::keyed(q.allow_burst(n)))
        });
        let openings = NonZeroU32::new(config.address_conversations_per_hour).and_then(|n| {
            Quota::with_period(Duration::from_secs(3600) / n.get())
                .map(|q| RateLimiter::keyed(q.allow_burst(n)))
        });
        // A byte a cell, four seconds' worth as the burst, like `--frame-budget` (the cells are
        // a u32: a budget over 1 GiB a second is as good as none).
        let frames = NonZeroU32::new(u32::try_from(config.address_frame_budget).unwrap_or(u32::MAX / 4))
            .and_then(|rate| {
                let burst = NonZeroU32::new(rate.get().saturating_mul(FRAME_BURST_SECONDS))?;
                Some(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
            });
        let global = crate::accept::connection_limit(config.max_connections);
        let connections_per_address = config.connections_per_address(global);
        Limits {
            requests,
            connects,
            rooms,
            openings,
            frames,
            held: Mutex::default(),
            polls: Mutex::new(0),
            replay: Mutex::new(0),
            connections_per_address,
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

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<AddrKey, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets addresses whose buckets are full again (housekeeping).
    pub(super) fn purge(&self) {
        for limiter in
            [&self.requests, &self.connects, &self.rooms, &self.openings, &self.frames].into_iter().flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Takes one token of `limiter` for `key`; `Err(wait)` when there is none.
fn take(limiter: &DefaultKeyedRateLimiter<AddrKey>, key: &AddrKey) -> Result<(), Duration> {
    limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
}

/// The burst of `--address-frame-budget` `rate`, in bytes, as the limiter holds it.
fn limiter_burst(rate: u64) -> u64 {
    let rate = u32::try_from(rate).unwrap_or(u32::MAX / 4);
    u64::from(rate.saturating_mul(FRAME_BURST_SECONDS))
}

fn wait_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Hub {
    /// The hub's limits.
    pub(crate) fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Takes one request from `addr`'s budget (`--address-rate-*`).
    pub(crate) fn charge_address(&self, addr: AddrKey) -> Result<(), Refusal> {
        let Some(limiter) = &self.shared.limits.requests else { return Ok(()) };
        take(limiter, &addr).map_err(|wait| {
            self.shared.metrics.limited(Limit::Address);
            let config = &self.shared.config;
            let ms = wait_ms(wait);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "too many requests from your address: at most {} per second after a burst of {}; wait {ms} ms",
                    config.address_rate_per_sec, config.address_rate_burst
                ),
            );
            r.retry_after_ms = Some(ms);
            r
        })
    }

    /// Takes one new connection from `addr`'s connect budget (`--address-connect-*`), as the
    /// connection is accepted.
    pub(crate) fn charge_connect(&self, addr: AddrKey) -> Result<(), Refusal> {
        let Some(limiter) = &self.shared.limits.connects else { return Ok(()) };
        take(limiter, &addr).map_err(|wait| {
            self.shared.metrics.limited(Limit::AddressConnects);
            let config = &self.shared.config;
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "too many new connections from your address: at most {} per second after a burst of {} (--address-connect-rate-per-sec, --address-connect-burst); keep connections open, or retry later",
                    config.address_connect_rate_per_sec, config.address_connect_burst
                ),
            );
            r.retry_after_ms = Some(wait_ms(wait));
            r
        })
    }

    /// Takes `cost` bytes from the frame budget of `addr`'s WebSockets together
    /// (`--address-frame-budget`); a frame costing more than the whole burst takes the burst.
    /// `Err` is the `rate_limited` refusal saying how long to wait.
    pub(crate) fn charge_address_frames(&self, addr: AddrKey, cost: u64) -> Result<(), Refusal> {
        let Some(limiter) = &self.shared.limits.frames else { return Ok(()) };
        let burst = limiter_burst(self.shared.config.address_frame_budget);
        let cells =
            NonZeroU32::new(u32::try_from(cost.min(burst)).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        let wait = match limiter.check_key_n(&addr, cells) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(limiter.clock().now()),
            // More than the burst: cannot happen (clamped above); refuse for a whole burst.
            Err(_) => Duration::from_secs(u64::from(FRAME_BURST_SECONDS)),
        };
        self.shared.metrics.limited(Limit::AddressFrameBudget);
        let ms = wait_ms(wait);
        let mut r = Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "the connections from your address together are sending more than the hub relays for one address \
                 ({} bytes per second, counting each frame once per recipient); wait {ms} ms",
                self.shared.config.address_frame_budget
            ),
        );
        r.retry_after_ms = Some(ms);
        Err(r)
    }

    /// Takes one room creation from `addr`'s budget (`--room-creations-per-hour`).
    pub(crate) fn charge_room_creation(&self, addr: AddrKey, room: &str) -> Result<(), Refusal> {
        let Some(limiter) = &self.shared.limits.rooms else { return Ok(()) };
        take(limiter, &addr).map_err(|wait| {
            self.shared.metrics.limited(Limit::RoomCreations);
            let ms = wait_ms(wait);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "room {room:?} would be new, and your address has created {} rooms in the last hour, the most it may (--room-creations-per-hour); use an existing room or wait {} s",
                    self.shared.config.room_creations_per_hour,
                    ms.div_ceil(1000)
                ),
            );
            r.retry_after_ms = Some(ms);
            r
        })
    }

    /// Takes one conversation opening from `addr`'s budget
    /// (`--address-conversations-per-hour`): a visitor message that would open a support
    /// conversation that has no message yet.
    pub(crate) fn charge_conversation_opening(&self, addr: AddrKey) -> Result<(), Refusal> {
        let Some(limiter) = &self.shared.limits.openings else { return Ok(()) };
        take(limiter, &addr).map_err(|wait| {
            self.shared.metrics.limited(Limit::ConversationOpenings);
            let ms = wait_ms(wait);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "this message would open a new conversation, and your address has opened {} in the last hour, the most it may (--address-conversations-per-hour); continue an existing conversation or wait {} s",
                    self.shared.config.address_conversations_per_hour,
                    ms.div_ceil(1000)
                ),
            );
            r.retry_after_ms = Some(ms);
            r
        })
    }

    /// Holds one more connection of `addr` (`--max-connections-per-address`) for as long as
    /// the slot lives.
    pub(crate) fn hold_connection(&self, addr: AddrKey) -> Result<Slot, Refusal> {
        let max = self.shared.limits.connections_per_address;
        let mut held = self.shared.limits.held();
        let entry = held.entry(addr).or_default();
        if max > 0 && entry.connections as usize >= max {
            drop(held);
            self.shared.metrics.limited(Limit::ConnectionsPerAddress);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "your address has {max} connections open to this hub, the most it may; close some first"
                ),
            );
            r.retry_after_ms = Some(wait_ms(HELD_RETRY));
            return Err(r);
        }
        entry.connections += 1;
        Ok(Slot { hub: self.clone(), addr, hold: Hold::Connection })
    }

    /// Holds one more long-poll of `addr` (`--max-polls-per-address`, `--max-polls`) for as
    /// long as the slot lives.
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
        let entry = held.entry(addr).or_default();
        let max = config.max_polls_per_address;
        if max > 0 && entry.polls as usize >= max {
            drop(held);
            drop(total);
            self.shared.metrics.limited(Limit::PollsPerAddress);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!("your address holds {max} long-polls already, the most it may; poll again when one returns"),
            );
            r.retry_after_ms = Some(wait_ms(HELD_RETRY));
            return Err(r);
        }
        entry.polls += 1;
        *total += 1;
        Ok(Slot { hub: self.clone(), addr, hold: Hold::Poll })
    }
}

impl Hub {
    /// Holds `bytes` of a `history` answer to `addr` (`--max-replay-in-flight`, a quarter of it
    /// per address) for as long as the slot lives: the slot goes with the answer's bytes and is
    /// dropped when they have been written (see `hub::fanout::encode_held`).
    pub(crate) fn hold_replay(&self, addr: AddrKey, bytes: usize) -> Result<Slot, Refusal> {
        let max = self.shared.config.max_replay_in_flight;
        let limits = &self.shared.limits;
        let mut total = limits.replay.lock().unwrap_or_else(|p| p.into_inner());
        let mut held = limits.held();
        let entry = held.entry(addr).or_default();
        if max > 0 {
            // Always room for one answer when nothing else is held, however large.
            let per_address = (max / 4).max(1);
            let refusal = if entry.replay > 0 && entry.replay + bytes > per_address {
                self.shared.metrics.limited(Limit::ReplayInFlightPerAddress);
                Some(Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "history answers to your address still being written come to {} bytes, the most \
                         one address may have (a quarter of --max-replay-in-flight); read them, then ask again",
                        entry.replay
                    ),
                ))
            } else if *total > 0 && *total + bytes > max {
                self.shared.metrics.limited(Limit::ReplayInFlight);
                Some(Refusal::new(
                    ErrorCode::Unavailable,
                    format!("the hub is writing its most history at once ({max} bytes); ask again shortly"),
                ))
            } else {
                None
            };
            if let Some(mut r) = refusal {
                if entry.is_empty() {
                    held.remove(&addr);
                }
                r.retry_after_ms = Some(REPLAY_RETRY_MS);
                return Err(r);
            }
        }
        entry.replay += bytes;
        *total += bytes;
        Ok(Slot { hub: self.clone(), addr, hold: Hold::Replay(bytes) })
    }
}

/// The reply-engine calls one address may have in flight at once: a quarter of
/// `--reply-concurrency`, at least one.
pub(crate) fn calls_per_address(reply_concurrency: usize) -> usize {
    (reply_concurrency / 4).max(1)
}

/// One of an address's places in the reply engine (see [`Hub::hold_reply`]).
#[derive(Debug)]
#[must_use = "the place is given back when this is dropped"]
pub(crate) struct ReplyPlace {
    _slot: Slot,
    calls: Arc<Semaphore>,
}

impl ReplyPlace {
    /// Waits for one of the address's turns to call the engine ([`calls_per_address`] at
    /// once, first come first served); the turn is given back when the permit is dropped.
    /// `None` only if the turns were closed, which they never are.
    pub(crate) async fn call_turn(&self) -> Option<OwnedSemaphorePermit> {
        self.calls.clone().acquire_owned().await.ok()
    }
}

impl Hub {
    /// Holds one of the places of `addr`'s visitors in the reply engine (calling or waiting
    /// for a call slot): a quarter of `--reply-concurrency` + `--reply-queue`, so one address
    /// sending from fresh sessions cannot take every call and queue place and leave everybody
    /// else the fallback. `None` when its quarter is taken: this reply is shed.
    ///
    /// Places are not calls: with the default 32 calls and 256 queue places, a quarter of the
    /// places is 72, more than every call slot. So a place also waits for one of the address's
    /// own turns ([`ReplyPlace::call_turn`], [`calls_per_address`]) before it asks the hub-wide
    /// gate for a call slot: one address's messages take at most a quarter of the calls in
    /// flight, and the rest of them wait behind each other rather than in front of everyone.
    pub(crate) fn hold_reply(&self, addr: AddrKey) -> Option<ReplyPlace> {
        let config = &self.shared.config;
        let share =
            u32::try_from(((config.reply_concurrency + config.reply_queue) / 4).max(1)).unwrap_or(u32::MAX);
        let mut held = self.shared.limits.held();
        let entry = held.entry(addr).or_default();
        if entry.replies >= share {
            if entry.is_empty() {
                held.remove(&addr);
            }
            drop(held);
            self.shared.metrics.limited(Limit::RepliesPerAddress);
            return None;
        }
        entry.replies += 1;
        let calls = entry
            .calls
            .get_or_insert_with(|| Arc::new(Semaphore::new(calls_per_address(config.reply_concurrency))))
            .clone();
        Some(ReplyPlace { _slot: Slot { hub: self.clone(), addr, hold: Hold::Reply }, calls })
    }
}

/// How long a client refused for history still being written is asked to wait.
const REPLAY_RETRY_MS: u64 = 1000;

/// One connection, long-poll or answer being written to an address, counted while this lives.
#[derive(Debug)]
#[must_use = "the count is given back when the slot is dropped"]
pub(crate) struct Slot {
    hub: Hub,
    addr: AddrKey,
    hold: Hold,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let limits = &self.hub.shared.limits;
        match self.hold {
            Hold::Poll => {
                let mut total = limits.polls.lock().unwrap_or_else(|p| p.into_inner());
                *total = total.saturating_sub(1);
            }
            Hold::Replay(bytes) => {
                let mut total = limits.replay.lock().unwrap_or_else(|p| p.into_inner());
                *total = total.saturating_sub(bytes);
            }
            Hold::Connection | Hold::Reply => {}
        }
        let mut held = limits.held();
        if let Some(entry) = held.get_mut(&self.addr) {
            match self.hold {
                Hold::Connection => entry.connections = entry.connections.saturating_sub(1),
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
                held.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {

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
}
