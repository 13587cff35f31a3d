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

pub mod outbox;
pub mod ring;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use natter_protocol::{
    Ack, ConversationMessage, ErrorCode, ErrorFrame, Gap, History, Json, Member, Presence, Role, RoomInfo,
    RoomList, RoomSummary, ServerMessage, TypingNotice, UserSend,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use outbox::{Control, Frame, Offered, Outbox, Outgoing};
pub use ring::Ring;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::reply::{ReplyEngine, ReplyRequest, Turn};
use crate::store::{Appended, ConversationKey, Draft, Event, HistoryPage, RoomRecord, Store, StoreError};
use crate::util::{now_rfc3339, validate_message_id, IdMaker};

/// How long a conversation with no connection stays in memory (its ring serves resumes after
/// a reconnect; after this it is read back from the store when needed).
/// How often the bot's `typing` indicator is renewed while a reply takes long (the widget
/// hides one after 20 s without news).
const TYPING_RENEW: Duration = Duration::from_secs(8);

const IDLE_CONVERSATION: Duration = Duration::from_secs(600);

/// Something a client asked for that the hub refuses: becomes an `error` frame on a socket or
/// an error body with a 4xx/5xx on HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// A human message naming the bad value.
    pub message: String,
    /// The id of the refused message, when it had one.
    pub id: Option<String>,
    /// For `rate_limited`.
    pub retry_after_ms: Option<u64>,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into(), id: None, retry_after_ms: None }
    }

    /// Sets the refused message's id.
    pub fn with_id(mut self, id: Option<String>) -> Self {
        self.id = id;
        self
    }

    /// The `error` frame.
    pub fn frame(&self) -> ServerMessage {
        ServerMessage::Error(ErrorFrame {
            code: self.code,
            message: self.message.clone(),
            id: self.id.clone(),
            retry_after_ms: self.retry_after_ms,
        })
    }

    fn store(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                Refusal::new(ErrorCode::Unavailable, format!("{m}; send it again later with the same id"))
            }
            other => Refusal::new(ErrorCode::Internal, format!("{other}; send it again with the same id")),
        }
    }
}

/// Encodes a frame once; the bytes are then shared by every recipient.
pub fn encode(message: &ServerMessage) -> Frame {
    // Serialising our own types to a String cannot fail (no maps with non-string keys, no
    // failing Serialize impls); an empty object is a harmless stand-in should it ever happen.
    Frame::from(serde_json::to_string(message).unwrap_or_else(|_| "{}".into()))
}

/// A connection subscribed to a conversation.
#[derive(Debug, Clone)]
struct Subscriber {
    outbox: Outbox,
    /// The public member id of the connection's user, to skip their own ephemeral frames.
    member_id: Arc<str>,
}

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One conversation as held in memory: its ring, its connections, its room presence.
#[derive(Debug)]
struct Conversation {
    ring: Ring,
    subscribers: HashMap<u64, Subscriber>,
    /// Room members present on this hub: member id → (member, connections).
    members: HashMap<Arc<str>, (Member, usize)>,
    /// The newest seq delivered here; long-polls wait on it. Made by the first long-poll: a
    /// watch channel is ~350 bytes, and a session used only over WebSocket never needs it.
    delivered: Option<watch::Sender<u64>>,
    /// The session's rate limit (sessions only).
    bucket: Option<Bucket>,
    last_active: Instant,
}

impl Conversation {
    fn new(ring_size: usize) -> Self {
        Conversation {
            ring: Ring::new(ring_size),
            subscribers: HashMap::new(),
            members: HashMap::new(),
            delivered: None,
            bucket: None,
            last_active: Instant::now(),
        }
    }

    fn members(&self) -> Vec<Member> {
        let mut m: Vec<Member> = self.members.values().map(|(m, _)| m.clone()).collect();
        m.sort_by(|a, b| a.id.cmp(&b.id));
        m
    }
}

#[derive(Debug, Default)]
struct State {
    conversations: HashMap<ConversationKey, Conversation>,
}

struct Shared {
    config: Config,
    store: Arc<dyn Store>,
    reply: Arc<dyn ReplyEngine>,
    metrics: Metrics,
    state: Mutex<State>,
    ids: IdMaker,
    next_connection: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// Bumped every `--ping-interval` by one task for all connections, and at shutdown (see
    /// [`Hub::beat`]).
    beat: watch::Sender<Beat>,
    /// Open connections; `run` waits for 0 at shutdown.
    live: watch::Sender<usize>,
}

/// Handle to the hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// What a connection wants on attach: a resume point or the recent history.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// Everything after this seq.
    After(u64),
    /// The recent history (`--recent` messages).
    Recent,
}

/// Room presence to register with a subscription.
struct Joining<'a> {
    member: &'a Member,
    record: &'a RoomRecord,
    remote: Vec<Member>,
}

impl Hub {
    /// Builds the hub and starts its fan-out and housekeeping tasks (needs a Tokio runtime).
    pub fn start(config: Config, store: Arc<dyn Store>, reply: Arc<dyn ReplyEngine>) -> Hub {
        let events = store.subscribe();
        let hub = Hub {
            shared: Arc::new(Shared {
                config,
                store,
                reply,
                metrics: Metrics::default(),
                state: Mutex::default(),
                ids: IdMaker::default(),
                next_connection: AtomicU64::new(1),
                shutdown: watch::Sender::new(false),
                beat: watch::Sender::new(Beat::default()),
                live: watch::Sender::new(0),
            }),
        };
        tokio::spawn(fan_out(hub.clone(), events));
        tokio::spawn(housekeeping(hub.clone()));
        tokio::spawn(pinger(hub.clone()));
        hub
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The table stays consistent between statements, so a panic elsewhere while holding it
        // does not leave it unusable.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a refusal in the metrics and returns it.
    pub fn refused(&self, r: Refusal) -> Refusal {
        self.shared.metrics.error(r.code);
        r
    }

    /// A receiver that turns `true` when the hub shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// A receiver that changes every `--ping-interval` (the moment for each WebSocket to ping
    /// its peer and check that it was heard from) and once at shutdown. One timer for all
    /// connections instead of one each (a Tokio `Interval` is a boxed timer entry, ~140 bytes
    /// per idle connection), and one wait for both instead of two (~160 bytes more).
    pub fn beat(&self) -> watch::Receiver<Beat> {
        self.shared.beat.subscribe()
    }

    /// Tells every connection and long-poll to finish (1001 going away).
    pub fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        self.shared.beat.send_modify(|b| b.stopping = true);
    }

    /// Waits until every connection has closed, at most `limit`.
    pub async fn drained(&self, limit: Duration) -> bool {
        let mut rx = self.shared.live.subscribe();
        let drained = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await.is_ok();
        drained
    }

    /// A new connection's queue and a guard that counts it while it lives.
    pub fn open_connection(&self) -> (Outbox, outbox::Receiver, Arc<Control>, LiveGuard) {
        let id = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let (outbox, rx, control) = Outbox::new(id, self.shared.config.send_queue);
        self.shared.live.send_modify(|n| *n += 1);
        Metrics::add(&self.shared.metrics.connections, 1);
        Metrics::add(&self.shared.metrics.connections_total, 1);
        (outbox, rx, control, LiveGuard { hub: self.clone() })
    }

    /// Gauges for `/metrics` and `/healthz`: `(conversations, rooms with members)`.
    pub fn gauges(&self) -> (usize, usize) {
        let state = self.lock();
        let rooms = state
            .conversations
            .iter()
            .filter(|(k, c)| matches!(k, ConversationKey::Room(_)) && !c.members.is_empty())
            .count();
        (state.conversations.len(), rooms)
    }

    /// Queues `message` (encoded once) to every subscriber of `key` except `skip_member`'s
    /// connections. Must be called with the lock held (it is the fan-out's inner loop).
    fn deliver(metrics: &Metrics, conv: &Conversation, frame: &Frame, skip_member: Option<&str>) {
        let mut sent = 0;
        for sub in conv.subscribers.values() {
            if skip_member.is_some_and(|m| *m == *sub.member_id) {
                continue;
            }
            match sub.outbox.offer(frame.clone()) {
                Offered::Queued => sent += 1,
                Offered::Full(true) => {
                    Metrics::add(&metrics.slow_consumers, 1);
                    tracing::warn!(
                        connection = sub.outbox.id,
                        "slow consumer: send queue full, closing with 4001"
                    );
                }
                Offered::Full(false) | Offered::Gone => {}
            }
        }
        Metrics::add(&metrics.messages_out, sent);
    }

    /// Reads what a connection should get from the store (cold path).
    async fn fetch(&self, key: &ConversationKey, since: Since) -> Result<HistoryPage, StoreError> {
        let store = &self.shared.store;
        let max = self.shared.config.max_replay.max(1);
        match since {
            Since::Recent => store.recent(key, self.shared.config.recent).await,
            Since::After(after) => {
                let page = store.history(key, after, max).await?;
                let truncated = page.messages.len() >= max
                    && page.messages.last().and_then(ServerMessage::seq).is_some_and(|s| s < page.last_seq);
                if truncated {
                    // More was missed than one resume replays: send the newest ones and report
                    // the older part as a gap.
                    store.recent(key, max).await
                } else {
                    Ok(page)
                }
            }
        }
    }

    /// Answers from the ring when it can.
    fn ring_answer(&self, conv: &Conversation, since: Since) -> Option<(Vec<ServerMessage>, u64)> {
        let last = conv.ring.last_seq()?;
        let messages = match since {
            Since::After(after) => conv.ring.since(after)?,
            Since::Recent => conv.ring.recent(self.shared.config.recent)?,
        };
        Some((messages, last))
    }

    /// The history frame for `since`; with `subscribe`, also registers the connection as a
    /// subscriber of `key` in the same critical section and queues `room_info` (for a join) and
    /// the history, so no live frame can overtake them or fall between them. Returns the
    /// history and whether the member is new in the room on this hub.
    async fn attach_inner(
        &self,
        key: &ConversationKey,
        since: Since,
        subscribe: Option<(&Outbox, &Arc<str>)>,
        joining: Option<Joining<'_>>,
    ) -> Result<(History, bool), Refusal> {
        let room = match key {
            ConversationKey::Room(r) => Some(r.to_string()),
            ConversationKey::Session(_) => None,
        };
        let mut joining = joining;
        // The hot path first: the ring answers under the lock.
        {
            let mut state = self.lock();
            let conv = self.conversation(&mut state, key);
            if let Some((messages, last_seq)) = self.ring_answer(conv, since) {
                let history = History { room: room.clone(), messages, complete: true, gap: None, last_seq };
                let first = self.register(conv, subscribe, joining.take(), &history);
                return Ok((history, first));
            }
        }
        let mut page = self.fetch(key, since).await.map_err(Refusal::store)?;
        for _ in 0..3 {
            let done = {
                let mut state = self.lock();
                let conv = self.conversation(&mut state, key);
                if conv.ring.merge(&page) {
                    // The page, then whatever the fan-out delivered since it was read.
                    let page_last = page.messages.last().and_then(ServerMessage::seq).unwrap_or(0);
                    let mut messages = std::mem::take(&mut page.messages);
                    if let Some(extra) = conv.ring.since(page_last.max(page.last_seq)) {
                        messages.extend(extra);
                    }
                    let last_seq = conv.ring.last_seq().unwrap_or(page.last_seq).max(page.last_seq);
                    let history = compose(room.clone(), since, messages, last_seq);
                    let first = self.register(conv, subscribe, joining.take(), &history);
                    Some((history, first))
                } else {
                    None
                }
            };
            if let Some(done) = done {
                return Ok(done);
            }
            // The fan-out moved past the page while it was read (rare): read again.
            page = self.fetch(key, since).await.map_err(Refusal::store)?;
        }
        Err(Refusal::new(ErrorCode::Unavailable, "history is changing too fast to read; reconnect"))
    }

    fn conversation<'s>(&self, state: &'s mut State, key: &ConversationKey) -> &'s mut Conversation {
        let conv = state
            .conversations
            .entry(key.clone())
            .or_insert_with(|| Conversation::new(self.shared.config.ring_size));
        conv.last_active = Instant::now();
        conv
    }

    /// Registers a subscriber (and room presence) and queues `room_info` + `history`; returns
    /// whether this is the member's first connection in the room on this hub.
    fn register(
        &self,
        conv: &mut Conversation,
        subscribe: Option<(&Outbox, &Arc<str>)>,
        joining: Option<Joining<'_>>,
        history: &History,
    ) -> bool {
        let Some((outbox, member_id)) = subscribe else { return false };
        conv.subscribers
            .insert(outbox.id, Subscriber { outbox: outbox.clone(), member_id: member_id.clone() });
        let mut first = false;
        if let Some(j) = joining {
            let entry = conv.members.entry(member_id.clone()).or_insert_with(|| (j.member.clone(), 0));
            entry.1 += 1;
            first = entry.1 == 1;
            let mut members = conv.members();
            for m in j.remote {
                if !members.iter().any(|x| x.id == m.id) {
                    members.push(m);
                }
            }
            let info = room_info(j.record, members, history.last_seq);
            self.queue_now(outbox, &ServerMessage::RoomInfo(info));
        }
        self.queue_now(outbox, &ServerMessage::History(history.clone()));
        first
    }

    fn queue_now(&self, outbox: &Outbox, message: &ServerMessage) {
        if let Offered::Full(true) = outbox.offer(encode(message)) {
            Metrics::add(&self.shared.metrics.slow_consumers, 1);
        }
    }

    /// Subscribes a connection to its session's conversation and queues the `history` frame
    /// (missed messages for `After`, recent ones for `Recent`).
    pub async fn attach_session(
        &self,
        session: &Arc<str>,
        since: Since,
        outbox: &Outbox,
        member_id: &Arc<str>,
    ) -> Result<(), Refusal> {
        let key = ConversationKey::Session(session.clone());
        self.attach_inner(&key, since, Some((outbox, member_id)), None).await.map(|_| ())
    }

    /// Joins a room: creates it if needed, subscribes, queues `room_info` + `history`, and
    /// announces the member to the others when this is their first connection in it.
    pub async fn join_room(
        &self,
        room: &Arc<str>,
        member: &Member,
        since: Since,
        outbox: &Outbox,
    ) -> Result<(), Refusal> {
        let record = match self.shared.store.room(room).await.map_err(Refusal::store)? {
            Some(r) => r,
            None => {
                let record = RoomRecord {
                    room: room.to_string(),
                    name: None,
                    metadata: Json::Object(Default::default()),
                    created_at: now_rfc3339(),
                };
                self.shared.store.create_room(record.clone()).await.map_err(Refusal::store)?;
                // Another hub or request may have created it meanwhile; theirs wins.
                self.shared.store.room(room).await.map_err(Refusal::store)?.unwrap_or(record)
            }
        };
        // Presence is recorded before this member is told it joined (and before the other
        // members are asked for), so someone joining through another hub right after sees it.
        // Recording it again for a second tab only refreshes the same entry.
        if let Err(e) = self.shared.store.presence_join(room, member).await {
            tracing::warn!(%room, error = %e, "presence_join failed");
        }
        let remote = self.shared.store.remote_members(room).await.unwrap_or_default();
        let key = ConversationKey::Room(room.clone());
        let member_id: Arc<str> = member.id.as_str().into();
        let joining = Joining { member, record: &record, remote };
        let (_, first) = self.attach_inner(&key, since, Some((outbox, &member_id)), Some(joining)).await?;
        if first && self.announces_presence(&key) {
            let notice = ServerMessage::UserJoined(Presence {
                room: room.to_string(),
                user: member.clone(),
                timestamp: now_rfc3339(),
            });
            self.publish(key, notice, Some(member.id.clone())).await;
        }
        Ok(())
    }

    /// Unsubscribes a connection from a room; announces `user_left` when it was the member's
    /// last connection there.
    pub async fn leave_room(&self, room: &Arc<str>, member: &Member, outbox_id: u64) {
        let key = ConversationKey::Room(room.clone());
        let last = {
            let mut state = self.lock();
            let Some(conv) = state.conversations.get_mut(&key) else { return };
            conv.subscribers.remove(&outbox_id);
            conv.last_active = Instant::now();
            match conv.members.get_mut(member.id.as_str()) {
                Some(entry) => {
                    entry.1 = entry.1.saturating_sub(1);
                    if entry.1 == 0 {
                        conv.members.remove(member.id.as_str());
                        true
                    } else {
                        false
                    }
                }
                None => false,
            }
        };
        if last {
            if let Err(e) = self.shared.store.presence_leave(room, &member.id).await {
                tracing::warn!(%room, error = %e, "presence_leave failed");
            }
            if !self.announces_presence(&key) {
                return;
            }
            let notice = ServerMessage::UserLeft(Presence {
                room: room.to_string(),
                user: member.clone(),
                timestamp: now_rfc3339(),
            });
            self.publish(key, notice, Some(member.id.clone())).await;
        }
    }

    /// Whether joins and leaves in this room are announced to every member: not in rooms larger
    /// than `--presence-announce-limit`, where that traffic would grow with the square of the
    /// room size.
    fn announces_presence(&self, key: &ConversationKey) -> bool {
        let state = self.lock();
        let members = state.conversations.get(key).map_or(0, |c| c.members.len());
        members <= self.shared.config.presence_announce_limit
    }

    /// Unsubscribes a connection from its session's conversation.
    pub fn detach_session(&self, session: &Arc<str>, outbox_id: u64) {
        let key = ConversationKey::Session(session.clone());
        let mut state = self.lock();
        if let Some(conv) = state.conversations.get_mut(&key) {
            conv.subscribers.remove(&outbox_id);
            conv.last_active = Instant::now();
        }
    }

    /// Publishes an ephemeral frame (typing, presence, relays) through the store.
    pub async fn publish(&self, key: ConversationKey, message: ServerMessage, from: Option<String>) {
        if let Err(e) = self.shared.store.publish_ephemeral(Event::Ephemeral { key, message, from }).await {
            tracing::warn!(error = %e, "ephemeral publish failed");
        }
    }

    /// Takes one token from the session's rate limit.
    pub fn rate_limit(&self, session: &Arc<str>) -> Result<(), Refusal> {
        let config = &self.shared.config;
        if config.rate_burst == 0 || config.rate_per_sec <= 0.0 {
            return Ok(());
        }
        let burst = f64::from(config.rate_burst);
        let mut state = self.lock();
        let conv = self.conversation(&mut state, &ConversationKey::Session(session.clone()));
        let now = Instant::now();
        let bucket = conv.bucket.get_or_insert(Bucket { tokens: burst, at: now });
        let refill = now.duration_since(bucket.at).as_secs_f64() * config.rate_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - bucket.tokens) / config.rate_per_sec * 1000.0).ceil() as u64;
        let mut r = Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "too many messages: at most {} per second after a burst of {}; wait {wait_ms} ms",
                config.rate_per_sec, config.rate_burst
            ),
        );
        r.retry_after_ms = Some(wait_ms.max(1));
        Err(r)
    }

    /// Checks a message text: not blank, not longer than `--max-text` characters.
    pub fn check_text(&self, text: &str, id: &Option<String>) -> Result<(), Refusal> {
        if text.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::InvalidMessage, "`message` is empty; send some text")
                .with_id(id.clone()));
        }
        let max = self.shared.config.max_text;
        let n = text.chars().count();
        if n > max {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!("`message` is {n} characters long; the limit is {max}"),
            )
            .with_id(id.clone()));
        }
        Ok(())
    }

    /// Stores a visitor's message in their session's conversation and starts the reply.
    /// Shared by the WebSocket and the HTTP fallback.
    pub async fn post_user(
        &self,
        session: &Arc<str>,
        send: UserSend,
        page: Option<&str>,
    ) -> Result<Ack, Refusal> {
        if let Some(id) = &send.id {
            validate_message_id(id)
                .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, e).with_id(send.id.clone()))?;
        }
        self.check_text(&send.message, &send.id)?;
        self.rate_limit(session).map_err(|r| r.with_id(send.id.clone()))?;
        let key = ConversationKey::Session(session.clone());
        {
            // Make sure the conversation is held, so its ring sees the fan-out of this message.
            let mut state = self.lock();
            self.conversation(&mut state, &key);
        }
        let id = send.id.clone().unwrap_or_else(|| self.shared.ids.next());
        let context = send.context.clone().or_else(|| {
            page.map(|p| {
                let mut map = serde_json::Map::new();
                map.insert("page".into(), Json::String(p.to_string()));
                Json::Object(map)
            })
        });
        let stored = ConversationMessage {
            id: id.clone(),
            seq: 0,
            message: send.message,
            timestamp: now_rfc3339(),
            session_id: session.to_string(),
            context,
            author: None,
            category: None,
            reply_to: None,
        };
        let draft = Draft { id: id.clone(), message: ServerMessage::User(stored.clone()) };
        let appended = self.append_counted(&key, draft).await?;
        if !appended.duplicate {
            self.spawn_reply(key, stored);
        }
        Ok(Ack { id, seq: appended.seq, room: None, duplicate: appended.duplicate })
    }

    /// Stores a room message from `member`.
    pub async fn post_chat(
        &self,
        session: &Arc<str>,
        room: &Arc<str>,
        member: &Member,
        id: Option<String>,
        text: String,
    ) -> Result<Ack, Refusal> {
        if let Some(id) = &id {
            validate_message_id(id)
                .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, e).with_id(Some(id.clone())))?;
        }
        self.check_text(&text, &id)?;
        self.rate_limit(session).map_err(|r| r.with_id(id.clone()))?;
        let id = id.unwrap_or_else(|| self.shared.ids.next());
        let key = ConversationKey::Room(room.clone());
        let message = ServerMessage::Chat(natter_protocol::RoomMessage {
            room: room.to_string(),
            id: id.clone(),
            seq: 0,
            message: text,
            timestamp: now_rfc3339(),
            from: member.clone(),
        });
        let appended = self.append_counted(&key, Draft { id: id.clone(), message }).await?;
        Ok(Ack { id, seq: appended.seq, room: Some(room.to_string()), duplicate: appended.duplicate })
    }

    /// Stores a message a client sent and counts it as new or as a re-sent duplicate; a store
    /// failure becomes a refusal carrying the message's id, so the client resends it.
    async fn append_counted(&self, key: &ConversationKey, draft: Draft) -> Result<Appended, Refusal> {
        let id = draft.id.clone();
        let appended = self
            .shared
            .store
            .append(key, draft)
            .await
            .map_err(|e| self.refused(Refusal::store(e).with_id(Some(id))))?;
        let counter = if appended.duplicate {
            &self.shared.metrics.duplicates
        } else {
            &self.shared.metrics.messages_in
        };
        Metrics::add(counter, 1);
        Ok(appended)
    }

    /// Runs the reply engine for a stored visitor message: typing on, reply stored, typing off.
    fn spawn_reply(&self, key: ConversationKey, user: ConversationMessage) {
        let hub = self.clone();
        tokio::spawn(async move {
            let typing = |active| {
                ServerMessage::Typing(TypingNotice { room: None, role: Role::Bot, from: None, active })
            };
            hub.publish(key.clone(), typing(true), None).await;
            let started = Instant::now();
            let engine = hub.shared.reply.clone();
            let history = hub.reply_history(&key, &user.id, engine.history_window()).await;
            let request = ReplyRequest {
                session_id: user.session_id.clone(),
                message_id: user.id.clone(),
                message: user.message.clone(),
                context: user.context.clone(),
                history,
            };
            // A streamed LLM answer can take longer than the widget shows a typing indicator
            // without news, so the indicator is renewed while the engine works.
            let answer = {
                let work = engine.reply(&request);
                tokio::pin!(work);
                let mut renew = tokio::time::interval_at(started + TYPING_RENEW, TYPING_RENEW);
                loop {
                    tokio::select! {
                        answer = &mut work => break answer,
                        _ = renew.tick() => hub.publish(key.clone(), typing(true), None).await,
                    }
                }
            };
            let answer = answer.unwrap_or_else(|e| {
                Metrics::add(&hub.shared.metrics.reply_failures, 1);
                let fallback = engine.fallback(&request);
                let then = if fallback.is_some() { "answering with the fallback" } else { "no reply" };
                // The session id is a credential: log its public id instead.
                let visitor = crate::util::member_id(&user.session_id);
                tracing::warn!(error = %e, %visitor, "reply engine failed; {then}");
                fallback
            });
            tokio::time::sleep_until(started + hub.shared.config.reply_delay).await;
            if let Some(reply) = answer {
                let id = hub.shared.ids.next();
                let bot = ConversationMessage {
                    id: id.clone(),
                    seq: 0,
                    message: reply.text,
                    timestamp: now_rfc3339(),
                    session_id: user.session_id.clone(),
                    context: None,
                    author: engine.author().map(str::to_string),
                    category: reply.category,
                    reply_to: Some(user.id.clone()),
                };
                match hub.shared.store.append(&key, Draft { id, message: ServerMessage::Bot(bot) }).await {
                    Ok(_) => Metrics::add(&hub.shared.metrics.replies, 1),
                    Err(e) => tracing::warn!(error = %e, "storing the bot reply failed"),
                }
            }
            hub.publish(key, typing(false), None).await;
        });
    }

    /// Up to `window` messages of `key` before the message `current`, oldest first, for a reply
    /// engine that wants the conversation so far. A store failure only costs the context.
    async fn reply_history(&self, key: &ConversationKey, current: &str, window: usize) -> Vec<Turn> {
        if window == 0 {
            return Vec::new();
        }
        let page = match self.shared.store.recent(key, window.saturating_add(1)).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reading the conversation for the reply engine failed");
                return Vec::new();
            }
        };
        let mut turns: Vec<Turn> = page
            .messages
            .into_iter()
            .filter_map(|m| {
                let (role, m) = match m {
                    ServerMessage::User(m) => (Role::User, m),
                    ServerMessage::Bot(m) => (Role::Bot, m),
                    ServerMessage::Agent(m) => (Role::Agent, m),
                    _ => return None,
                };
                (m.id != current).then_some(Turn { role, text: m.message })
            })
            .collect();
        let extra = turns.len().saturating_sub(window);
        turns.drain(..extra);
        turns
    }

    /// The session's history after `after` (or the recent history), without subscribing: the
    /// HTTP long-poll. Waits up to `--poll-timeout` when nothing is newer than `after`.
    pub async fn poll(&self, session: &Arc<str>, since: Since) -> Result<History, Refusal> {
        let key = ConversationKey::Session(session.clone());
        let mut delivered = {
            let mut state = self.lock();
            // Starting at 0 loses nothing: what was delivered before this point is in the
            // history read below.
            self.conversation(&mut state, &key)
                .delivered
                .get_or_insert_with(|| watch::Sender::new(0))
                .subscribe()
        };
        let (history, _) = self.attach_inner(&key, since, None, None).await?;
        let Since::After(after) = since else { return Ok(history) };
        if !history.messages.is_empty() || !history.complete {
            return Ok(history);
        }
        let mut shutdown = self.shutdown_signal();
        {
            // A guard, not a decrement after the wait: a client that hangs up drops this
            // future mid-wait.
            let _waiting = WaitingPoll::new(&self.shared.metrics);
            tokio::select! {
                _ = delivered.wait_for(|s| *s > after) => {}
                _ = tokio::time::sleep(self.shared.config.poll_timeout) => {}
                _ = crate::hub::stopped(&mut shutdown) => {}
            }
        }
        self.attach_inner(&key, since, None, None).await.map(|(h, _)| h)
    }

    /// A room's info with its members (here and on other hubs); `None` for an unknown room.
    pub async fn room_info(&self, room: &str) -> Result<Option<RoomInfo>, Refusal> {
        let Some(record) = self.shared.store.room(room).await.map_err(Refusal::store)? else {
            return Ok(None);
        };
        let remote = self.shared.store.remote_members(room).await.unwrap_or_default();
        let key = ConversationKey::Room(room.into());
        let last_seq = self.last_seq(&key).await?;
        let mut members = {
            let state = self.lock();
            state.conversations.get(&key).map(Conversation::members).unwrap_or_default()
        };
        for m in remote {
            if !members.iter().any(|x| x.id == m.id) {
                members.push(m);
            }
        }
        Ok(Some(room_info(&record, members, last_seq)))
    }

    async fn last_seq(&self, key: &ConversationKey) -> Result<u64, Refusal> {
        let known = {
            let state = self.lock();
            state.conversations.get(key).and_then(|c| c.ring.last_seq())
        };
        match known {
            Some(s) => Ok(s),
            None => Ok(self.shared.store.recent(key, 1).await.map_err(Refusal::store)?.last_seq),
        }
    }

    /// Every room, with members present on this hub.
    pub async fn rooms(&self) -> Result<RoomList, Refusal> {
        let records = self.shared.store.rooms().await.map_err(Refusal::store)?;
        let mut rooms = Vec::with_capacity(records.len());
        for r in records {
            let key = ConversationKey::Room(r.room.as_str().into());
            let last_seq = self.last_seq(&key).await?;
            let member_count = {
                let state = self.lock();
                state.conversations.get(&key).map_or(0, |c| c.members.len())
            };
            rooms.push(RoomSummary { room: r.room, name: r.name, member_count, last_seq });
        }
        Ok(RoomList { rooms })
    }

    /// Creates a room; `Ok(None)` when it exists already.
    pub async fn create_room(
        &self,
        room: String,
        name: Option<String>,
        metadata: Option<Json>,
    ) -> Result<Option<RoomInfo>, Refusal> {
        let record = RoomRecord {
            room,
            name,
            metadata: metadata.unwrap_or_else(|| Json::Object(Default::default())),
            created_at: now_rfc3339(),
        };
        if !self.shared.store.create_room(record.clone()).await.map_err(Refusal::store)? {
            return Ok(None);
        }
        Ok(Some(room_info(&record, Vec::new(), 0)))
    }

    /// Handles one event of the store's delivery stream.
    fn on_event(&self, event: Event) {
        let metrics = &self.shared.metrics;
        match event {
            Event::Stored { key, message } => {
                let Some(seq) = message.seq() else { return };
                let frame = encode(&message);
                let mut state = self.lock();
                let Some(conv) = state.conversations.get_mut(&key) else { return };
                conv.ring.push(seq, message);
                if let Some(delivered) = &conv.delivered {
                    delivered.send_replace(seq);
                }
                conv.last_active = Instant::now();
                Self::deliver(metrics, conv, &frame, None);
            }
            Event::Ephemeral { key, message, from } => {
                let frame = encode(&message);
                let state = self.lock();
                let Some(conv) = state.conversations.get(&key) else { return };
                Self::deliver(metrics, conv, &frame, from.as_deref());
            }
        }
    }

    /// Drops conversations nobody used for a while.
    fn sweep(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.conversations.retain(|_, c| {
            !c.subscribers.is_empty()
                || !c.members.is_empty()
                || now.duration_since(c.last_active) < IDLE_CONVERSATION
        });
    }
}

/// Builds a `history` frame from messages read from the store (+ ring), reporting a gap when
/// the oldest ones asked for no longer exist or were more than one resume replays.
fn compose(room: Option<String>, since: Since, messages: Vec<ServerMessage>, last_seq: u64) -> History {
    match since {
        Since::Recent => History { room, messages, complete: true, gap: None, last_seq },
        Since::After(after) => {
            let messages: Vec<ServerMessage> =
                messages.into_iter().filter(|m| m.seq().is_some_and(|s| s > after)).collect();
            let first = messages.first().and_then(ServerMessage::seq).unwrap_or(last_seq + 1);
            if after < last_seq && first > after + 1 {
                let gap = Gap { from: after + 1, to: first - 1 };
                History { room, messages, complete: false, gap: Some(gap), last_seq }
            } else {
                History { room, messages, complete: true, gap: None, last_seq }
            }
        }
    }
}

fn room_info(record: &RoomRecord, mut members: Vec<Member>, last_seq: u64) -> RoomInfo {
    let member_count = members.len();
    members.truncate(natter_protocol::ROOM_INFO_MEMBER_LIMIT);
    RoomInfo {
        room: record.room.clone(),
        name: record.name.clone(),
        metadata: record.metadata.clone(),
        members,
        member_count,
        last_seq,
        created_at: record.created_at.clone(),
    }
}

/// Completes when the hub's shutdown signal is (or already was) raised. Wraps `wait_for` so
/// that its non-`Send` guard never lives across an `.await` of the caller.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        // The hub is gone, which also means stop.
    }
}

/// Counts a held long-poll in the metrics while it lives.
struct WaitingPoll<'a>(&'a Metrics);

impl<'a> WaitingPoll<'a> {
    fn new(metrics: &'a Metrics) -> Self {
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
pub struct LiveGuard {
    hub: Hub,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.hub.shared.live.send_modify(|n| *n = n.saturating_sub(1));
        self.hub.shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The fan-out task: everything the store delivers, to every subscribed connection.
async fn fan_out(hub: Hub, mut events: mpsc::UnboundedReceiver<Event>) {
    let mut shutdown = hub.shutdown_signal();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => hub.on_event(event),
                None => {
                    tracing::error!("the store's delivery stream ended; no more messages will be delivered");
                    return;
                }
            },
            _ = crate::hub::stopped(&mut shutdown) => return,
        }
    }
}

/// Periodic housekeeping: forget idle conversations.
/// What [`Hub::beat`] carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Beat {
    /// Ping rounds so far.
    pub pings: u64,
    /// The hub is shutting down (connections close with 1001).
    pub stopping: bool,
}

/// Bumps the beat every `--ping-interval` until shutdown.
async fn pinger(hub: Hub) {
    let period = hub.shared.config.ping_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // A late tick (a busy runtime) is not made up for with a burst of pings.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = hub.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => hub.shared.beat.send_modify(|b| b.pings = b.pings.wrapping_add(1)),
            _ = crate::hub::stopped(&mut shutdown) => return,
        }
    }
}

async fn housekeeping(hub: Hub) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut shutdown = hub.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => hub.sweep(),
            _ = crate::hub::stopped(&mut shutdown) => return,
        }
    }
}
