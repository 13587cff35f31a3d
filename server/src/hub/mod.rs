//! The hub: conversations, connections, rooms, presence and the fan-out.
//!
//! It sits between the transports (`ws`, `http`), which turn sockets and requests into calls
//! here, and the domain (the [`Store`] and the [`ReplyEngine`]), which never sees a socket.
//!
//! State is `Hub { shared: Arc<Shared> }` with one std `Mutex` over the conversation table,
//! never held across an `.await`: every operation that needs the store reads or writes it
//! first and then takes the lock briefly to update the table (the mini-redis pattern).
//!
//! Delivery: the hub fans out **only** what comes out of [`Store::subscribe`]. A message sent
//! here is appended to the store; the store's delivery stream brings it back to the fan-out
//! task, which pushes it into the conversation's [`Ring`] and queues the once-encoded frame to
//! every subscribed connection. With Redis behind several hubs this is the same path, so every
//! client sees one order.
//!
//! # Layout
//! One job per file; each adds `impl Hub` blocks and sees `Shared`'s private fields:
//! - `mod.rs` — the handle, the shared state, start, the conversation table.
//! - [`conversation`] — one conversation in memory: ring, subscribers, members.
//! - [`admission`] — refusals and the checks a message passes before it is stored (text,
//!   id, context, rate limit).
//! - [`limits`] — budgets per client address and the caps on what is held at once
//!   (connections, conversations in memory and long-polls per address, long-polls in all,
//!   rooms created, CORS preflights, bytes queued to an address's connections).
//! - [`disk`] — the floor of free space on the database's disk.
//! - [`post`] — the write path: a visitor's or a member's message into the store.
//! - [`history`] — attaching a connection (ring or store), gaps, the long-poll.
//! - [`rooms`] — join and leave, presence, room info and the room list.
//! - [`fanout`] — the store's delivery stream into rings and connection queues.
//! - [`reply`] — running the reply engine for a visitor's message, unless an operator took over.
//! - [`turns`] — the work a stored visitor message brings after its ack, taken in turn by
//!   client address.
//! - [`inbox`] — the operators' side: conversation records, agent replies, notes, status,
//!   the operators' live feed, availability pushed to visitors.
//! - [`lifecycle`] — the beat, housekeeping, shutdown and connection guards.
//! - [`outbox`] and [`ring`] — a connection's send queue (bounded in frames and bytes, its
//!   bytes also counted for its address) and a conversation's recent messages.

mod admission;
mod conversation;
mod disk;
mod fanout;
mod history;
mod inbox;
mod lifecycle;
mod limits;
mod outbox;
mod pace;
mod post;
mod reply;
mod ring;
mod rooms;
mod trim;
mod turns;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use natter_protocol::ErrorCode;
use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) use admission::Refusal;
pub(crate) use fanout::{encode, encode_any};
pub(crate) use history::{Payer, Replay, Since};
pub(crate) use lifecycle::stopped;
pub(crate) use lifecycle::Beat;
use limits::Limits;
pub(crate) use limits::Slot;
pub(crate) use outbox::{Control, Frame, Outbox, Outgoing, Receiver};

use crate::config::{Config, ReplyFallback};
use crate::identity::Identity;
use crate::ids::IdMaker;
use crate::metrics::{Gauges, Limit, Metrics};
use crate::reply::failure_log::{self, FailureLog};
use crate::reply::gate::CallGate;
use crate::reply::ReplyEngine;
use crate::store::{ConversationKey, Store};
use conversation::Conversation;
use ring::Ring;

/// The conversations this hub holds in memory.
#[derive(Debug, Default)]
struct State {
    conversations: HashMap<ConversationKey, Conversation>,
    /// Operator connections by connection number (see [`inbox`]).
    operators: HashMap<u64, inbox::OperatorConnection>,
    /// Whether an operator is online on any hub, as last worked out.
    available: bool,
    /// Whether the hub has any operator account, as last worked out: without one, visitors are
    /// told nothing about availability (`online: null`).
    operators_exist: bool,
}

/// Conversations forgotten at once when the table is full (a fraction of it, at least one).
const EVICT_BATCH: usize = 256;

/// Forgets up to `max(batch, 1/64 of the table)` of the least recently used conversations that
/// nobody is connected to or waiting on; returns how many went.
fn evict_idle(conversations: &mut HashMap<ConversationKey, Conversation>, batch: usize) -> usize {
    let mut idle: Vec<(Instant, ConversationKey)> = conversations
        .iter()
        .filter(|(_, c)| c.is_unused())
        .map(|(k, c)| (c.last_active, k.clone()))
        .collect();
    let n = batch.max(conversations.len() / 64).min(idle.len());
    if n == 0 {
        return 0;
    }
    if n < idle.len() {
        idle.select_nth_unstable_by_key(n - 1, |(at, _)| *at);
    }
    for (_, key) in idle.into_iter().take(n) {
        conversations.remove(&key);
    }
    n
}

/// Everything the hub's handles share.
struct Shared {
    config: Config,
    store: Arc<dyn Store>,
    reply: Arc<dyn ReplyEngine>,
    /// Who connections are: token verification, issued sessions, member ids, room access.
    identity: Identity,
    /// Bounds the reply-engine calls in flight and waiting (`--reply-concurrency`,
    /// `--reply-queue`).
    reply_gate: CallGate,
    /// Reply failures, logged once and then summed up per interval.
    reply_failures: FailureLog,
    /// Turns at the work after a visitor message's ack, by client address.
    turns: Arc<turns::Turns>,
    /// Turns at reading history from the store, by client address: as many at once as the
    /// store runs ([`Store::read_turns`]); a read takes its share of `--max-replay-in-flight`
    /// only once it has one (see `Hub::attach`).
    reads: Arc<turns::Turns>,
    /// The hub-wide pace of new conversations (`--new-conversations-*`); `None`: unpaced.
    new_conversations: Option<Arc<pace::Pace>>,
    metrics: Metrics,
    limits: Limits,
    /// `--min-free-disk`.
    disk: disk::DiskFloor,
    state: Mutex<State>,
    ids: IdMaker,
    next_connection: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// Bumped every `--ping-interval` by one task for all connections, and at shutdown (see
    /// [`Hub::beat`]).
    beat: watch::Sender<Beat>,
    /// Open connections; `run` waits for 0 at shutdown.
    live: watch::Sender<usize>,
    /// Operator sign-in attempts.
    signin: crate::inbox::limit::SigninLimiter,
    /// The threads that check operator passwords, and their queue.
    password_checks: crate::inbox::checks::PasswordChecks,
    /// Refused `Origin` values, logged at most once a minute each.
    refused_origins: crate::origin_log::RefusedOrigins,
    /// The keys of the WebSocket ping payloads (see `Hub::ping_payload`).
    ping_keys: std::collections::hash_map::RandomState,
}

/// Follow-ups of visitor messages that run at once (see [`turns`]): a few per CPU the hub may
/// use, enough to keep the store's writer batching and the CPUs busy, few enough that a
/// message from a quiet address is never far from the front.
fn turns_at_once() -> usize {
    4 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Handle to the hub; cheap to clone.
#[derive(Clone)]
pub(crate) struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for unit tests: `config`, an in-memory store, the built-in rules and a fixed
    /// session secret (needs a Tokio runtime).
    #[cfg(test)]
    pub(crate) fn for_tests(config: Config) -> Hub {
        let identity =
            Identity::new(&config, &[b"unit-test session secret, 32 bytes".to_vec()]).expect("identity");
        Hub::start(
            config,
            Arc::new(crate::store::memory::MemoryStore::new()),
            Arc::new(crate::reply::RulesEngine::builtin().expect("rules")),
            identity,
        )
    }

    /// Builds the hub and starts its fan-out, housekeeping and beat tasks (needs a Tokio
    /// runtime).
    pub(crate) fn start(
        config: Config,
        store: Arc<dyn Store>,
        reply: Arc<dyn ReplyEngine>,
        identity: Identity,
    ) -> Hub {
        let events = store.subscribe();
        let reply_gate = CallGate::new(config.reply_concurrency, config.reply_queue);
        let then = match config.reply_fallback {
            ReplyFallback::Rules => "answering with the fallback",
            ReplyFallback::Silent => "no reply (--reply-fallback silent)",
        };
        let reply_failures = FailureLog::new(failure_log::INTERVAL, then);
        let new_conversations =
            pace::Pace::new(config.new_conversations_per_sec, config.new_conversations_burst);
        let reads = turns::Turns::new(store.read_turns());
        let hub = Hub {
            shared: Arc::new(Shared {
                limits: Limits::new(&config),
                disk: disk::DiskFloor::new(&config),
                config,
                store,
                reply_gate,
                reply_failures,
                turns: turns::Turns::new(turns_at_once()),
                reads,
                new_conversations,
                reply,
                identity,
                metrics: Metrics::default(),
                state: Mutex::default(),
                ids: IdMaker::default(),
                next_connection: AtomicU64::new(1),
                shutdown: watch::Sender::new(false),
                beat: watch::Sender::new(Beat::default()),
                live: watch::Sender::new(0),
                signin: Default::default(),
                password_checks: Default::default(),
                refused_origins: Default::default(),
                ping_keys: std::collections::hash_map::RandomState::new(),
            }),
        };
        tokio::spawn(fanout::run(hub.clone(), events));
        tokio::spawn(lifecycle::housekeeping(hub.clone()));
        tokio::spawn(lifecycle::pinger(hub.clone()));
        tokio::spawn(lifecycle::stall_watch(hub.clone()));
        tokio::spawn(inbox::availability(hub.clone()));
        hub
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The identity rules and keys.
    pub(crate) fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// The log of refused `Origin` values.
    pub(crate) fn refused_origins(&self) -> &crate::origin_log::RefusedOrigins {
        &self.shared.refused_origins
    }

    /// The operator sign-in rate limit.
    pub(crate) fn signin_limiter(&self) -> &crate::inbox::limit::SigninLimiter {
        &self.shared.signin
    }

    /// Where operator passwords are checked.
    pub(crate) fn password_checks(&self) -> &crate::inbox::checks::PasswordChecks {
        &self.shared.password_checks
    }

    /// The counters.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Whether the store is healthy now (`/healthz`).
    pub(crate) fn store_healthy(&self) -> bool {
        self.shared.store.healthy()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The table stays consistent between statements, so a panic elsewhere while holding it
        // does not leave it unusable.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The conversation `key` in the table, made if it is not held yet, marked active now.
    ///
    /// At `--max-conversations`, the least recently used conversations that nobody is connected
    /// to are forgotten first (a batch at a time, so the scan is paid rarely); when none can be,
    /// the request is refused `unavailable`.
    fn conversation<'s>(
        &self,
        state: &'s mut State,
        key: &ConversationKey,
    ) -> Result<&'s mut Conversation, Refusal> {
        let config = &self.shared.config;
        if !state.conversations.contains_key(key)
            && state.conversations.len() >= config.max_conversations.max(1)
        {
            let evicted = evict_idle(&mut state.conversations, EVICT_BATCH);
            Metrics::add(&self.shared.metrics.conversations_evicted, evicted as u64);
            if evicted == 0 {
                self.shared.metrics.limited(Limit::Conversations);
                let mut r = Refusal::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the hub holds its most conversations ({}) and every one is in use; try again later",
                        config.max_conversations
                    ),
                );
                r.retry_after_ms = Some(5000);
                return Err(r);
            }
        }
        let conv = state
            .conversations
            .entry(key.clone())
            .or_insert_with(|| Conversation::new(config.ring_size, config.ring_bytes));
        conv.last_active = Instant::now();
        Ok(conv)
    }

    /// Gauges for `/metrics`: conversations held, rooms with members here, ring bytes, reply
    /// calls in flight and waiting.
    pub(crate) fn gauges(&self) -> Gauges {
        let state = self.lock();
        let mut rooms = 0;
        let mut ring_bytes = 0;
        for (k, c) in &state.conversations {
            rooms += usize::from(matches!(k, ConversationKey::Room(_)) && c.has_members());
            ring_bytes += c.ring.bytes();
        }
        Gauges {
            conversations: state.conversations.len(),
            rooms,
            ring_bytes,
            reply_calls: self.shared.reply_gate.in_flight(),
            reply_waiting: self.shared.reply_gate.waiting(),
            turns_waiting: self.shared.turns.waiting(),
            history_reads_waiting: self.shared.reads.waiting(),
            new_conversations_waiting: self.shared.new_conversations.as_ref().map_or(0, |p| p.waiting()),
            replay_bytes: self.limits().replay_bytes(),
            send_queue_bytes: self.limits().queued_bytes(),
            address_send_queue_bytes: self.limits().address_queued_max(),
        }
    }
}
