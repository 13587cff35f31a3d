//! The engine for many hubs: Redis holds history, hands out seq and carries every delivery.
//!
//! # Keys (prefix `natter`, [`RedisOptions::namespace`])
//! - `natter:seq:<conv>` — the conversation's seq counter (`INCR`).
//! - `natter:ids:<conv>` — hash `<sender> <message id>` → seq, for de-duplication: an id is
//!   unique per sender ([`Draft::sender`](super::Draft::sender)); neither part can hold a space.
//!   Fields written before ids were scoped to senders are the bare id; they are still honoured,
//!   for the same sender only (the script reads the stored frame's sender), until trimmed.
//! - `natter:stream:<conv>` — a stream holding the conversation's history; entry id `<seq>-0`,
//!   fields `id` (the de-duplication field) and `f` (the frame JSON). Trimmed to about
//!   [`RedisOptions::stream_len`] entries; the ids of trimmed entries are forgotten with them.
//! - `natter:log` — one stream of `(conversation, seq)` for every stored message of every
//!   conversation, in store order, trimmed to about [`RedisOptions::log_len`]: what a hub reads
//!   to catch up on what it missed while its subscription was down.
//! - `natter:events` — the pub/sub channel every hub subscribes to.
//! - `natter:hub-secret` — the hubs' shared secret (hex), made by whichever hub starts first
//!   (`SET NX`); it keys issued sessions and member ids, so every hub accepts the others'.
//! - `natter:inbox:*` — the operator inbox (operators, sessions, conversation records, notes,
//!   canned replies, operators online per hub): see `redis/inbox.rs`.
//! - `natter:rooms` — hash room id → record; `natter:room-ids` — the same ids in a sorted set
//!   (all scores 0, so sorted by id) for the room list's pages (filled from the hash at connect
//!   when a deployment older than it has rooms). `natter:presence:<room>` — hash
//!   `<hub>|<member>` → lease; `natter:presence-rooms` — the rooms that have such entries.
//!
//! # Why one Lua script per append
//! De-duplication, `INCR`, `XADD` to the conversation and the log, and `PUBLISH` run in one
//! script, and Redis runs scripts one at a time. So two hubs never hand out the same seq, a
//! re-send is recognised whatever hub it reaches, and the order in which messages are published
//! to subscribers *is* seq order. Every hub, the one that stored the message included, emits a
//! message on its delivery stream only when it comes back on `natter:events`: one path, one
//! order for everyone, each message once per hub.
//!
//! # When Redis goes away
//! Operations answer [`StoreError::Unavailable`] (the client resends with the same id later)
//! and [`Store::healthy`] turns false. The subscriber task retries with backoff; once it is
//! subscribed again it reads `natter:log` from the last entry it delivered, emits what it
//! missed in order, and then goes on with the live channel, skipping what the catch-up already
//! delivered — so delivery stays gap-free and without doubles across the outage, provided Redis
//! kept its data (see `docs/operations.md` on persistence).
//!
//! # Presence
//! A hub records each of its room members with a lease (default 30 s) and refreshes the leases
//! of all its members every third of it. Every hub sweeps expired entries every half lease; the
//! sweep is a script, so exactly one hub removes an entry and publishes `user_left` for it —
//! unless the same member is still present through another hub. A hub that dies stops
//! refreshing, and its members leave for everyone else within about a lease and a half.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use natter_protocol::{Member, Presence, ServerMessage};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use redis::{AsyncCommands, Client, IntoConnectionInfo, RedisError, Script};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod inbox;

use super::engine::{self, Subscribers};
use super::{
    Appended, BoxFuture, ConversationKey, Draft, Event, HistoryPage, RoomRecord, Store, StoreError,
    StoredFrame,
};

/// How to connect a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// About how many messages each conversation's stream keeps (default 10,000). History older
    /// than that is gone (`first_available` says so), and so is de-duplication of its ids.
    pub stream_len: usize,
    /// About how many entries the catch-up log keeps (default 100,000): how much a hub whose
    /// subscription was down can recover.
    pub log_len: usize,
    /// Conversations idle this long expire entirely (seq counter, ids, history); `None` (the
    /// default) keeps them.
    pub retention: Option<Duration>,
    /// How long a hub's presence record lasts without a refresh (default 30 s).
    pub presence_lease: Duration,
    /// Prefix of every key and channel (default `natter`), so several deployments can share one
    /// Redis.
    pub namespace: String,
    /// This hub's id in presence records; a random one when `None`.
    pub hub_id: Option<String>,
}

impl RedisOptions {
    /// Options for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            stream_len: 10_000,
            log_len: 100_000,
            retention: None,
            presence_lease: Duration::from_secs(30),
            namespace: "natter".into(),
            hub_id: None,
        }
    }
}

/// The Redis engine. See the module docs.
pub struct RedisStore {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// State shared with the background tasks.
struct Shared {
    client: Client,
    conn: ConnectionManager,
    keys: Keys,
    options: RedisOptions,
    hub_id: String,
    subscribers: Subscribers,
    /// The subscription is up and caught up.
    subscribed: AtomicBool,
    /// The last command went through.
    commands_ok: AtomicBool,
    /// This hub's room members, by room, for the lease refresh.
    local_presence: Mutex<HashMap<String, HashMap<String, Member>>>,
    scripts: Scripts,
}

/// Key names.
struct Keys {
    ns: String,
    channel: String,
    log: String,
    rooms: String,
    room_ids: String,
    presence_rooms: String,
}

impl Keys {
    fn new(ns: &str) -> Self {
        Keys {
            ns: ns.to_owned(),
            channel: format!("{ns}:events"),
            log: format!("{ns}:log"),
            rooms: format!("{ns}:rooms"),
            room_ids: format!("{ns}:room-ids"),
            presence_rooms: format!("{ns}:presence-rooms"),
        }
    }
    fn seq(&self, conv: &str) -> String {
        format!("{}:seq:{conv}", self.ns)
    }
    fn ids(&self, conv: &str) -> String {
        format!("{}:ids:{conv}", self.ns)
    }
    fn stream(&self, conv: &str) -> String {
        format!("{}:stream:{conv}", self.ns)
    }
    fn presence(&self, room: &str) -> String {
        format!("{}:presence:{room}", self.ns)
    }
}

/// The scripts (sent by SHA, loaded again by the client after a Redis restart).
struct Scripts {
    append: Script,
    presence_join: Script,
    presence_members: Script,
    presence_sweep: Script,
    expire_room: Script,
    delete_room: Script,
    inbox_change: Script,
    set_online: Script,
    online_elsewhere: Script,
}

/// KEYS: seq, ids, stream, log. ARGV: de-duplication field (`<sender> <id>`), frame (seq 0),
/// conversation, stream_len, log_len, channel, ttl_ms (0 = none), the bare id, the sender.
/// Returns {seq, duplicate 0/1}.
const APPEND_LUA: &str = r#"
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then
  return {tonumber(existing), 1}
end
-- A message stored before ids were scoped to senders has its bare id as field: a duplicate
-- only if its stored frame has this sender (a user frame's session, a chat frame's member).
local legacy = redis.call('HGET', KEYS[2], ARGV[8])
if legacy then
  local entry = redis.call('XRANGE', KEYS[3], legacy .. '-0', legacy .. '-0')
  if entry[1] then
    local fields = entry[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'f' then
        local ok, frame = pcall(cjson.decode, fields[i + 1])
        if ok then
          local sender = ''
          if frame['type'] == 'user' then sender = frame['sessionId']
          elseif frame['type'] == 'chat' and type(frame['from']) == 'table' then sender = frame['from']['id'] end
          if sender == ARGV[9] then return {tonumber(legacy), 1} end
        end
      end
    end
  end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], seq)
redis.call('XADD', KEYS[3], seq .. '-0', 'id', ARGV[1], 'f', ARGV[2])
local maxlen = tonumber(ARGV[4])
local len = redis.call('XLEN', KEYS[3])
if len > maxlen + math.max(16, math.floor(maxlen / 10)) then
  local old = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', len - maxlen)
  for _, entry in ipairs(old) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'id' then redis.call('HDEL', KEYS[2], fields[i + 1]) end
    end
  end
  local last = tonumber(string.match(old[#old][1], '^(%d+)'))
  redis.call('XTRIM', KEYS[3], 'MINID', (last + 1) .. '-0')
end
local logid = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'k', ARGV[3], 's', seq)
redis.call('PUBLISH', ARGV[6], 's\n' .. logid .. '\n' .. ARGV[3] .. '\n' .. seq .. '\n' .. ARGV[2])
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return {seq, 0}
"#;

/// KEYS: presence hash, presence-rooms set. ARGV: room, lease_ms, hub, then (member id, member
/// JSON) pairs. Each entry is `{"exp":<ms>,"m":<member JSON>}` by Redis's clock, so every hub
/// judges expiry by the same clock.
const PRESENCE_JOIN_LUA: &str = r#"
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[3] .. '|' .. ARGV[i], '{"exp":' .. exp .. ',"m":' .. ARGV[i + 1] .. '}')
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: presence hash. ARGV: this hub. Returns the member JSON of live entries of other hubs.
const PRESENCE_MEMBERS_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local hub = string.match(all[i], '^([^|]*)|')
  local exp, member = string.match(all[i + 1], '^{"exp":(%d+),"m":(.*)}$')
  if hub ~= ARGV[1] and exp and tonumber(exp) >= now then
    table.insert(out, member)
  end
end
return out
"#;

/// KEYS: presence hash, presence-rooms set. ARGV: room, channel, timestamp.
/// Removes expired entries and, for each member that has no live entry left, publishes a
/// left-envelope (`l\n<room>\n<timestamp>\n<member JSON>`) in the same atomic step, so exactly
/// one hub announces that member's `user_left`; every hub's subscriber turns the envelope into
/// the frame (see `parse_envelope`). Returns how many members left.
const PRESENCE_SWEEP_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local live = {}
local expired = {}
for i = 1, #all, 2 do
  local id = string.match(all[i], '^[^|]*|(.*)$')
  local exp, member = string.match(all[i + 1], '^{"exp":(%d+),"m":(.*)}$')
  if exp and tonumber(exp) >= now then
    live[id] = true
  else
    table.insert(expired, {all[i], id, member})
  end
end
local left = 0
for _, e in ipairs(expired) do
  redis.call('HDEL', KEYS[1], e[1])
  if e[3] and not live[e[2]] then
    live[e[2]] = true
    left = left + 1
    redis.call('PUBLISH', ARGV[2], 'l\n' .. ARGV[1] .. '\n' .. ARGV[3] .. '\n' .. e[3])
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return left
"#;

/// KEYS: rooms hash, room-ids set, the room's stream, its presence hash. ARGV: room. Deletes
/// the room when no message is stored in it (a room deleted by the operator and made again keeps
/// its seq counter but not its messages) and nobody is present on any hub; returns 1 when it did.
const EXPIRE_ROOM_LUA: &str = r#"
if redis.call('XLEN', KEYS[3]) > 0 or redis.call('HLEN', KEYS[4]) > 0 then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: rooms hash, room-ids set, the room's seq counter, ids hash, stream, presence hash,
/// presence-rooms set. ARGV: room. Deletes the room with its history and presence in one
/// atomic step; returns 1 when the room existed. The seq counter (`KEYS[3]`) stays, so a room
/// made again under this id numbers on from where the deleted one stopped.
const DELETE_ROOM_LUA: &str = r#"
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
redis.call('SREM', KEYS[7], ARGV[1])
return existed
"#;

/// Maps a client error: connection trouble is `Unavailable` (retry later), anything else is a
/// fault.
/// Reads hex digits back into bytes; `None` when `text` is not an even number of them.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.is_empty() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn redis_error(e: RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::Unavailable(format!("Redis: {e}"))
    } else {
        StoreError::Backend(format!("Redis: {e}"))
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedisStore {
    /// Connects, and starts the subscriber and presence tasks. Fails when Redis cannot be
    /// reached now (a hub that starts against a wrong URL should say so at once); after that,
    /// outages are ridden out.
    pub async fn connect(options: RedisOptions) -> Result<RedisStore, StoreError> {
        // TCP_NODELAY: every command and every published message is a small write that must go
        // out at once; with Nagle's algorithm a write behind an unacknowledged one waits.
        let info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| backend(format!("bad Redis URL: {e}")))?
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let client = Client::open(info).map_err(|e| backend(format!("bad Redis URL: {e}")))?;
        // Short timeouts and few retries: while Redis is down a command should fail fast with
        // `unavailable` rather than hold a client's send for seconds.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| StoreError::Unavailable(format!("Redis at {} did not answer", options.url)))?
        .map_err(redis_error)?;
        let hub_id = options.hub_id.clone().unwrap_or_else(random_hub_id);
        let shared = Arc::new(Shared {
            client,
            conn,
            keys: Keys::new(&options.namespace),
            options,
            hub_id,
            subscribers: Subscribers::new(),
            subscribed: AtomicBool::new(false),
            commands_ok: AtomicBool::new(true),
            local_presence: Mutex::new(HashMap::new()),
            scripts: Scripts {
                append: Script::new(APPEND_LUA),
                presence_join: Script::new(PRESENCE_JOIN_LUA),
                presence_members: Script::new(PRESENCE_MEMBERS_LUA),
                presence_sweep: Script::new(PRESENCE_SWEEP_LUA),
                expire_room: Script::new(EXPIRE_ROOM_LUA),
                delete_room: Script::new(DELETE_ROOM_LUA),
                inbox_change: Script::new(inbox::CHANGE_LUA),
                set_online: Script::new(inbox::SET_ONLINE_LUA),
                online_elsewhere: Script::new(inbox::ONLINE_ELSEWHERE_LUA),
            },
        });
        shared.index_rooms().await?;
        // Where delivery starts: the log's end now, read before subscribing so that nothing
        // stored between the two is missed (the catch-up after subscribing covers it).
        let cursor = shared.log_tail().await?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(subscriber_task(shared.clone(), cursor, ready_tx));
        // Wait for the first subscription, so a message appended right after `connect` returns
        // is delivered to this hub too.
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        let presence = tokio::spawn(presence_task(shared.clone()));
        tracing::info!(url = %redact(&shared.options.url), hub = %shared.hub_id, "Redis store connected");
        Ok(RedisStore { shared, tasks: vec![subscriber, presence] })
    }

    /// This hub's id in presence records.
    pub fn hub_id(&self) -> &str {
        &self.shared.hub_id
    }

    /// Removes expired presence entries now and publishes their `user_left` (what the presence
    /// task does every half lease). Returns how many members left.
    pub async fn sweep_presence(&self) -> Result<usize, StoreError> {
        self.shared.sweep_presence().await
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A hub id unique enough for presence records: process id and start time.
fn random_hub_id() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// A stream entry or log id `<ms>-<n>`, compared as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct StreamId(u64, u64);

impl StreamId {
    fn parse(s: &str) -> Option<StreamId> {
        let (a, b) = s.split_once('-')?;
        Some(StreamId(a.parse().ok()?, b.parse().ok()?))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// Stream entries as `XRANGE` answers them.
type Entries = Vec<(String, HashMap<String, String>)>;

/// A stored frame from a stream entry, with its seq put back.
fn entry_frame((id, fields): &(String, HashMap<String, String>)) -> Result<ServerMessage, StoreError> {
    let seq = StreamId::parse(id).ok_or_else(|| backend(format!("bad stream entry id {id}")))?.0;
    let frame = fields.get("f").ok_or_else(|| backend("stream entry without a frame"))?;
    let mut message = ServerMessage::from_json(frame).map_err(backend)?;
    engine::set_seq(&mut message, seq)?;
    Ok(message)
}

impl Shared {
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Records the outcome of a command for [`Store::healthy`].
    fn note<T>(&self, result: Result<T, RedisError>) -> Result<T, StoreError> {
        match result {
            Ok(v) => {
                self.commands_ok.store(true, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                let e = redis_error(e);
                if matches!(e, StoreError::Unavailable(_)) && self.commands_ok.swap(false, Ordering::Relaxed)
                {
                    tracing::error!(error = %e, "Redis command failed; the store is unavailable until Redis is back");
                }
                Err(e)
            }
        }
    }

    /// Fills `room-ids` from the rooms hash when it is missing but rooms exist (a deployment
    /// that made its rooms before the sorted set existed). `ZADD` of an id already there is a
    /// no-op, so hubs starting together do no harm.
    async fn index_rooms(&self) -> Result<(), StoreError> {
        let (indexed, rooms): (bool, u64) = self.note(
            redis::pipe()
                .exists(&self.keys.room_ids)
                .hlen(&self.keys.rooms)
                .query_async(&mut self.conn())
                .await,
        )?;
        if indexed || rooms == 0 {
            return Ok(());
        }
        let ids: Vec<String> = self.note(self.conn().hkeys(&self.keys.rooms).await)?;
        for chunk in ids.chunks(1000) {
            let members: Vec<(u8, &String)> = chunk.iter().map(|id| (0, id)).collect();
            self.note(self.conn().zadd_multiple::<_, _, _, ()>(&self.keys.room_ids, &members).await)?;
        }
        tracing::info!(rooms = ids.len(), "Redis: room list index built");
        Ok(())
    }

    async fn log_tail(&self) -> Result<StreamId, StoreError> {
        let tail: Entries = self.note(self.conn().xrevrange_count(&self.keys.log, "+", "-", 1).await)?;
        Ok(tail.first().and_then(|(id, _)| StreamId::parse(id)).unwrap_or_default())
    }

    async fn append(&self, key: &ConversationKey, draft: Draft) -> Result<Appended, StoreError> {
        if draft.message.seq().is_none() {
            return Err(backend(format!("a {} frame cannot be stored", draft.message.kind())));
        }
        let conv = key.storage_key();
        let frame = serde_json::to_string(&draft.message).map_err(backend)?;
        let sender = draft.sender();
        let field = format!("{sender} {}", draft.id);
        let ttl_ms = self.options.retention.map_or(0, |r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX));
        let (seq, duplicate): (u64, u8) = self.note(
            self.scripts
                .append
                .key(self.keys.seq(&conv))
                .key(self.keys.ids(&conv))
                .key(self.keys.stream(&conv))
                .key(&self.keys.log)
                .arg(&field)
                .arg(frame)
                .arg(&conv)
                .arg(self.options.stream_len.max(1))
                .arg(self.options.log_len.max(1))
                .arg(&self.keys.channel)
                .arg(ttl_ms)
                .arg(&draft.id)
                .arg(sender.as_ref())
                .invoke_async(&mut self.conn())
                .await,
        )?;
        Ok(Appended { seq, duplicate: duplicate == 1 })
    }

    async fn page(
        &self,
        key: &ConversationKey,
        after: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let conv = key.storage_key();
        let stream = self.keys.stream(&conv);
        let mut pipe = redis::pipe();
        pipe.atomic().get(self.keys.seq(&conv)).xrange_count(&stream, "-", "+", 1);
        let limit = limit.max(1);
        match after {
            Some(after) => pipe.xrange_count(&stream, format!("{}-0", after.saturating_add(1)), "+", limit),
            None => pipe.xrevrange_count(&stream, "+", "-", limit),
        };
        let (last_seq, first, mut entries): (Option<u64>, Entries, Entries) =
            self.note(pipe.query_async(&mut self.conn()).await)?;
        if after.is_none() {
            entries.reverse();
        }
        let last_seq = last_seq.unwrap_or(0);
        let first_available = match first.first() {
            Some((id, _)) => StreamId::parse(id).map_or(last_seq + 1, |s| s.0),
            None => last_seq + 1,
        };
        // The stream holds frames with seq 0 (the seq is the entry's id), so each is parsed and
        // written again with its seq: Redis's history reads cost what SQLite's no longer do.
        let messages = entries
            .iter()
            .map(|e| {
                entry_frame(e)
                    .and_then(|m| StoredFrame::encode(&m).ok_or_else(|| backend("an unstored kind")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryPage { messages, last_seq, first_available })
    }

    async fn publish(&self, event: Event) -> Result<(), StoreError> {
        let (key, message, from) = match event {
            Event::Ephemeral { key, message, from } => (key, message, from),
            Event::Inbox(event) => {
                let payload = format!("i\n{}", serde_json::to_string(&event).map_err(backend)?);
                return self.note(self.conn().publish::<_, _, ()>(&self.keys.channel, payload).await);
            }
            Event::Stored { .. } => {
                return Err(backend("only ephemeral frames are published; stored ones go through append"))
            }
        };
        let from = serde_json::to_string(&from).map_err(backend)?;
        let frame = serde_json::to_string(&message).map_err(backend)?;
        let payload = format!("e\n{}\n{from}\n{frame}", key.storage_key());
        self.note(self.conn().publish::<_, _, ()>(&self.keys.channel, payload).await)
    }

    async fn join(&self, room: &str, members: &[Member]) -> Result<(), StoreError> {
        let lease = u64::try_from(self.options.presence_lease.as_millis()).unwrap_or(u64::MAX);
        let mut call = self.scripts.presence_join.key(self.keys.presence(room));
        call.key(&self.keys.presence_rooms).arg(room).arg(lease).arg(&self.hub_id);
        for member in members {
            call.arg(&member.id).arg(serde_json::to_string(member).map_err(backend)?);
        }
        self.note(call.invoke_async::<()>(&mut self.conn()).await)
    }

    async fn sweep_presence(&self) -> Result<usize, StoreError> {
        let rooms: Vec<String> = self.note(self.conn().smembers(&self.keys.presence_rooms).await)?;
        let now = crate::clock::now_rfc3339();
        let mut left = 0;
        for room in rooms {
            let n: usize = self.note(
                self.scripts
                    .presence_sweep
                    .key(self.keys.presence(&room))
                    .key(&self.keys.presence_rooms)
                    .arg(&room)
                    .arg(&self.keys.channel)
                    .arg(&now)
                    .invoke_async(&mut self.conn())
                    .await,
            )?;
            left += n;
        }
        Ok(left)
    }

    /// Up to `limit` room records by id from the lexical bound `start` (`-` or `(<id>`), and
    /// the last id looked at (`None` when there were none: the end).
    async fn rooms_from(
        &self,
        start: &str,
        limit: usize,
    ) -> Result<(Vec<RoomRecord>, Option<String>), StoreError> {
        let ids: Vec<String> = self.note(
            redis::cmd("ZRANGEBYLEX")
                .arg(&self.keys.room_ids)
                .arg(start)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(limit.max(1))
                .query_async(&mut self.conn())
                .await,
        )?;
        let Some(last) = ids.last().cloned() else { return Ok((Vec::new(), None)) };
        let records: Vec<Option<String>> = self
            .note(redis::cmd("HMGET").arg(&self.keys.rooms).arg(&ids).query_async(&mut self.conn()).await)?;
        let mut rooms = Vec::with_capacity(ids.len());
        for (id, json) in ids.into_iter().zip(records) {
            // Listed but deleted meanwhile: skip.
            if let Some(json) = json {
                rooms.push(room_record(id, &json)?);
            }
        }
        Ok((rooms, Some(last)))
    }

    /// Re-records every local member's lease.
    async fn refresh_presence(&self) -> Result<(), StoreError> {
        let rooms: Vec<(String, Vec<Member>)> = {
            let local = self.local_presence.lock().unwrap_or_else(|e| e.into_inner());
            local.iter().map(|(room, members)| (room.clone(), members.values().cloned().collect())).collect()
        };
        for (room, members) in rooms {
            if !members.is_empty() {
                self.join(&room, &members).await?;
            }
        }
        Ok(())
    }

    /// Reads the log after `cursor` and emits the messages it names, in order. Returns the new
    /// cursor and how many messages were emitted.
    async fn catch_up(&self, mut cursor: StreamId) -> Result<(StreamId, usize), StoreError> {
        let mut emitted = 0;
        loop {
            let log: Entries =
                self.note(self.conn().xrange_count(&self.keys.log, format!("({cursor}"), "+", 500).await)?;
            if log.is_empty() {
                return Ok((cursor, emitted));
            }
            let mut pipe = redis::pipe();
            let mut wanted = Vec::new();
            for (id, fields) in &log {
                let (Some(id), Some(conv), Some(seq)) = (
                    StreamId::parse(id),
                    fields.get("k"),
                    fields.get("s").and_then(|s| s.parse::<u64>().ok()),
                ) else {
                    continue;
                };
                let Some(key) = ConversationKey::from_storage_key(conv) else { continue };
                let entry = format!("{seq}-0");
                pipe.xrange(self.keys.stream(conv), &entry, &entry);
                wanted.push((id, key));
            }
            let found: Vec<Entries> = self.note(pipe.query_async(&mut self.conn()).await)?;
            let mut events = Vec::new();
            for ((id, key), entries) in wanted.into_iter().zip(found) {
                cursor = id;
                // Gone when the stream was trimmed or expired since: nothing to deliver.
                if let Some(entry) = entries.first() {
                    match entry_frame(entry) {
                        Ok(message) => events.push(Event::Stored { key, message }),
                        Err(e) => tracing::warn!(error = %e, "skipping an unreadable stored message"),
                    }
                }
            }
            emitted += events.len();
            self.subscribers.emit_all(events);
            if let Some(last) = log.last().and_then(|(id, _)| StreamId::parse(id)) {
                cursor = cursor.max(last);
            }
        }
    }
}

/// What arrived on the channel.
enum Envelope {
    Stored { log: StreamId, key: ConversationKey, message: ServerMessage },
    Ephemeral(Event),
}

/// Parses a channel payload: `s\n<log id>\n<conv>\n<seq>\n<frame>`,
/// `e\n<conv>\n<from JSON>\n<frame>`, `l\n<room>\n<timestamp>\n<member JSON>` or
/// `i\n<inbox event JSON>`.
fn parse_envelope(payload: &[u8]) -> Result<Envelope, StoreError> {
    let text = std::str::from_utf8(payload).map_err(backend)?;
    let mut parts = text.splitn(5, '\n');
    match parts.next() {
        Some("s") => {
            let (Some(log), Some(conv), Some(seq), Some(frame)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(backend("short stored envelope"));
            };
            let log = StreamId::parse(log).ok_or_else(|| backend("bad log id"))?;
            let key = ConversationKey::from_storage_key(conv).ok_or_else(|| backend("bad conversation"))?;
            let seq: u64 = seq.parse().map_err(backend)?;
            let mut message = ServerMessage::from_json(frame).map_err(backend)?;
            engine::set_seq(&mut message, seq)?;
            Ok(Envelope::Stored { log, key, message })
        }
        Some("e") => {
            let mut parts = text[2..].splitn(3, '\n');
            let (Some(conv), Some(from), Some(frame)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(backend("short ephemeral envelope"));
            };
            let key = ConversationKey::from_storage_key(conv).ok_or_else(|| backend("bad conversation"))?;
            let from: Option<String> = serde_json::from_str(from).map_err(backend)?;
            let message = ServerMessage::from_json(frame).map_err(backend)?;
            Ok(Envelope::Ephemeral(Event::Ephemeral { key, message, from }))
        }
        Some("l") => {
            // A member's last presence lease expired (published by the sweep script).
            let (Some(room), Some(timestamp), Some(member)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(backend("short left envelope"));
            };
            let user: Member = serde_json::from_str(member).map_err(backend)?;
            let message = ServerMessage::UserLeft(Presence {
                room: room.to_owned(),
                user,
                timestamp: timestamp.to_owned(),
            });
            let key = ConversationKey::Room(room.into());
            Ok(Envelope::Ephemeral(Event::Ephemeral { key, message, from: None }))
        }
        Some("i") => {
            // A frame for the operators' inboxes.
            let event = serde_json::from_str(&text[2..]).map_err(backend)?;
            Ok(Envelope::Ephemeral(Event::Inbox(event)))
        }
        _ => Err(backend("unknown envelope")),
    }
}

/// Keeps this hub subscribed to `natter:events`, catching up after every reconnect.
async fn subscriber_task(shared: Arc<Shared>, mut cursor: StreamId, ready: tokio::sync::oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    let mut was_down = false;
    loop {
        let connected = async {
            let mut pubsub = shared.client.get_async_pubsub().await.map_err(redis_error)?;
            pubsub.subscribe(&shared.keys.channel).await.map_err(redis_error)?;
            Ok::<_, StoreError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(Duration::from_secs(2), connected).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                went_down(&shared, &mut was_down, &e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(_) => {
                went_down(&shared, &mut was_down, "subscribing timed out");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        // Subscribed: whatever is published from now on is buffered in `pubsub`. Fetch what
        // was stored since the cursor before reading it.
        let caught_up = match shared.catch_up(cursor).await {
            Ok((new_cursor, n)) => {
                cursor = new_cursor;
                n
            }
            Err(e) => {
                went_down(&shared, &mut was_down, &e.to_string());
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        shared.subscribed.store(true, Ordering::Relaxed);
        backoff = Duration::from_millis(100);
        if was_down {
            was_down = false;
            tracing::info!(caught_up, "Redis reachable again: resubscribed and caught up");
        }
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            match parse_envelope(msg.get_payload_bytes()) {
                Ok(Envelope::Stored { log, key, message }) => {
                    // Already delivered by the catch-up.
                    if log <= cursor {
                        continue;
                    }
                    cursor = log;
                    shared.subscribers.emit(Event::Stored { key, message });
                }
                Ok(Envelope::Ephemeral(event)) => shared.subscribers.emit(event),
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable message on the events channel"),
            }
        }
        went_down(&shared, &mut was_down, "the subscription connection closed");
    }
}

fn went_down(shared: &Shared, was_down: &mut bool, why: &str) {
    shared.subscribed.store(false, Ordering::Relaxed);
    if !*was_down {
        *was_down = true;
        tracing::error!(reason = why, "lost Redis: delivery from other hubs paused, retrying");
    }
}

/// Refreshes this hub's presence leases, sweeps expired ones, and checks that commands go
/// through (so health comes back once Redis does, even with nobody sending).
async fn presence_task(shared: Arc<Shared>) {
    let lease = shared.options.presence_lease.max(Duration::from_millis(300));
    let refresh_every = lease / 3;
    let sweep_every = lease / 2;
    let mut refresh = tokio::time::interval(refresh_every);
    let mut sweep = tokio::time::interval(sweep_every);
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    for timer in [&mut refresh, &mut sweep, &mut ping] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                if let Err(e) = shared.refresh_presence().await {
                    tracing::debug!(error = %e, "presence refresh failed");
                }
            }
            _ = sweep.tick() => {
                if let Err(e) = shared.sweep_presence().await {
                    tracing::debug!(error = %e, "presence sweep failed");
                }
            }
            _ = ping.tick() => {
                let _ = shared.note(redis::cmd("PING").query_async::<()>(&mut shared.conn()).await);
            }
        }
    }
}

impl Store for RedisStore {
    fn append(&self, key: &ConversationKey, draft: Draft) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let key = key.clone();
        Box::pin(async move { self.shared.append(&key, draft).await })
    }

    fn history(
        &self,
        key: &ConversationKey,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let key = key.clone();
        Box::pin(async move {
            if limit == 0 {
                let mut page = self.shared.page(&key, Some(after), 1).await?;
                page.messages.clear();
                return Ok(page);
            }
            self.shared.page(&key, Some(after), limit).await
        })
    }

    fn recent(&self, key: &ConversationKey, limit: usize) -> BoxFuture<'_, Result<HistoryPage, StoreError>> {
        let key = key.clone();
        Box::pin(async move {
            let mut page = self.shared.page(&key, None, limit).await?;
            if limit == 0 {
                page.messages.clear();
            }
            Ok(page)
        })
    }

    fn publish_ephemeral(&self, event: Event) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.shared.publish(event))
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        self.shared.subscribers.subscribe()
    }

    fn hub_secret(&self, fresh: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            let key = format!("{}:hub-secret", self.shared.keys.ns);
            let fresh: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
            let mut conn = self.shared.conn();
            // `NX`: the first hub to start makes the secret; every other hub keeps that one.
            let _: Option<String> = self
                .shared
                .note(redis::cmd("SET").arg(&key).arg(&fresh).arg("NX").query_async(&mut conn).await)?;
            let kept: String = self.shared.note(conn.get(&key).await)?;
            hex_bytes(&kept).ok_or_else(|| backend(format!("{key} does not hold a hex secret")))
        })
    }

    fn create_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let record = serde_json::json!({
                "name": room.name,
                "metadata": room.metadata,
                "createdAt": room.created_at,
            });
            let keys = &self.shared.keys;
            let (created, _): (bool, u64) = self.shared.note(
                redis::pipe()
                    .atomic()
                    .hset_nx(&keys.rooms, &room.room, record.to_string())
                    .zadd(&keys.room_ids, &room.room, 0)
                    .query_async(&mut self.shared.conn())
                    .await,
            )?;
            Ok(created)
        })
    }

    fn put_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let keys = &self.shared.keys;
            let mut conn = self.shared.conn();
            // The creation time of a room that exists is kept: read it, then write the record
            // with it (a PUT racing another PUT of the same room ends with one of the two).
            let kept: Option<String> = self.shared.note(conn.hget(&keys.rooms, &room.room).await)?;
            let created_at = match &kept {
                Some(json) => room_record(room.room.clone(), json)?.created_at,
                None => room.created_at.clone(),
            };
            let record = serde_json::json!({
                "name": room.name,
                "metadata": room.metadata,
                "createdAt": created_at,
            });
            let (_, _): (u64, u64) = self.shared.note(
                redis::pipe()
                    .atomic()
                    .hset(&keys.rooms, &room.room, record.to_string())
                    .zadd(&keys.room_ids, &room.room, 0)
                    .query_async(&mut conn)
                    .await,
            )?;
            Ok(kept.is_none())
        })
    }

    fn delete_room(&self, room: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let room = room.to_owned();
        Box::pin(async move {
            let shared = &self.shared;
            let conv = ConversationKey::Room(room.as_str().into()).storage_key();
            shared.local_presence.lock().unwrap_or_else(|e| e.into_inner()).remove(&room);
            let existed: u8 = shared.note(
                shared
                    .scripts
                    .delete_room
                    .key(&shared.keys.rooms)
                    .key(&shared.keys.room_ids)
                    .key(shared.keys.seq(&conv))
                    .key(shared.keys.ids(&conv))
                    .key(shared.keys.stream(&conv))
                    .key(shared.keys.presence(&room))
                    .key(&shared.keys.presence_rooms)
                    .arg(&room)
                    .invoke_async(&mut shared.conn())
                    .await,
            )?;
            Ok(existed == 1)
        })
    }

    fn room(&self, room: &str) -> BoxFuture<'_, Result<Option<RoomRecord>, StoreError>> {
        let room = room.to_owned();
        Box::pin(async move {
            let json: Option<String> =
                self.shared.note(self.shared.conn().hget(&self.shared.keys.rooms, &room).await)?;
            json.map(|json| room_record(room, &json)).transpose()
        })
    }

    fn rooms(&self, after: Option<&str>, limit: usize) -> BoxFuture<'_, Result<Vec<RoomRecord>, StoreError>> {
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        Box::pin(async move { self.shared.rooms_from(&start, limit).await.map(|(rooms, _)| rooms) })
    }

    fn expire_empty_rooms(
        &self,
        created_before: String,
        keep: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let mut start = "-".to_owned();
            let mut expired = 0;
            loop {
                let (rooms, last) = shared.rooms_from(&start, 500).await?;
                let Some(last) = last else { return Ok(expired) };
                for room in rooms {
                    if room.created_at >= created_before || keep.contains(&room.room) {
                        continue;
                    }
                    let conv = ConversationKey::Room(room.room.as_str().into()).storage_key();
                    let gone: u8 = shared.note(
                        shared
                            .scripts
                            .expire_room
                            .key(&shared.keys.rooms)
                            .key(&shared.keys.room_ids)
                            .key(shared.keys.stream(&conv))
                            .key(shared.keys.presence(&room.room))
                            .arg(&room.room)
                            .invoke_async(&mut shared.conn())
                            .await,
                    )?;
                    expired += u64::from(gone);
                }
                start = format!("({last}");
            }
        })
    }

    fn presence_join(&self, room: &str, member: &Member) -> BoxFuture<'_, Result<(), StoreError>> {
        let room = room.to_owned();
        let member = member.clone();
        Box::pin(async move {
            self.shared
                .local_presence
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(room.clone())
                .or_default()
                .insert(member.id.clone(), member.clone());
            self.shared.join(&room, std::slice::from_ref(&member)).await
        })
    }

    fn presence_leave(&self, room: &str, member_id: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let room = room.to_owned();
        let member_id = member_id.to_owned();
        Box::pin(async move {
            {
                let mut local = self.shared.local_presence.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(members) = local.get_mut(&room) {
                    members.remove(&member_id);
                    if members.is_empty() {
                        local.remove(&room);
                    }
                }
            }
            let field = format!("{}|{member_id}", self.shared.hub_id);
            self.shared
                .note(self.shared.conn().hdel::<_, _, ()>(self.shared.keys.presence(&room), field).await)
        })
    }

    fn remote_members(&self, room: &str) -> BoxFuture<'_, Result<Vec<Member>, StoreError>> {
        let room = room.to_owned();
        Box::pin(async move {
            let json: Vec<String> = self.shared.note(
                self.shared
                    .scripts
                    .presence_members
                    .key(self.shared.keys.presence(&room))
                    .arg(&self.shared.hub_id)
                    .invoke_async(&mut self.shared.conn())
                    .await,
            )?;
            let mut seen = HashSet::new();
            let mut members = Vec::new();
            for json in json {
                let member: Member = serde_json::from_str(&json).map_err(backend)?;
                if seen.insert(member.id.clone()) {
                    members.push(member);
                }
            }
            members.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(members)
        })
    }

    fn inbox(&self) -> Option<&dyn super::inbox::InboxStore> {
        Some(self)
    }

    fn healthy(&self) -> bool {
        self.shared.subscribed.load(Ordering::Relaxed) && self.shared.commands_ok.load(Ordering::Relaxed)
    }
}

/// A room record from its JSON in `natter:rooms`.
fn room_record(room: String, json: &str) -> Result<RoomRecord, StoreError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Stored {
        name: Option<String>,
        #[serde(default)]
        metadata: natter_protocol::RawJson,
        created_at: String,
    }
    let stored: Stored = serde_json::from_str(json).map_err(backend)?;
    Ok(RoomRecord { room, name: stored.name, metadata: stored.metadata, created_at: stored.created_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(StreamId::parse("10-0") > StreamId::parse("9-5"));
        assert!(StreamId::parse("9-10") > StreamId::parse("9-9"));
        assert_eq!(StreamId::parse("x"), None);
    }

    #[test]
    fn envelopes_parse() {
        let frame = r#"{"type":"user","id":"a","seq":0,"message":"hi","timestamp":"t","sessionId":"s1"}"#;
        let Ok(Envelope::Stored { log, key, message }) =
            parse_envelope(format!("s\n5-1\ns:s1\n7\n{frame}").as_bytes())
        else {
            panic!("a stored envelope");
        };
        assert_eq!(
            (log, key, message.seq()),
            (StreamId(5, 1), ConversationKey::Session("s1".into()), Some(7))
        );
        let left = r#"{"type":"user_left","room":"r","user":{"id":"m"},"timestamp":"t"}"#;
        let Ok(Envelope::Ephemeral(Event::Ephemeral { key, from, .. })) =
            parse_envelope(format!("e\nr:r\n\"m\"\n{left}").as_bytes())
        else {
            panic!("an ephemeral envelope");
        };
        assert_eq!((key, from), (ConversationKey::Room("r".into()), Some("m".to_owned())));
        let Ok(Envelope::Ephemeral(Event::Ephemeral { key, message, from: None })) =
            parse_envelope(b"l\nr\n2026-11-29T10:00:00.000Z\n{\"id\":\"u_1\",\"name\":\"Ada\"}")
        else {
            panic!("a left envelope");
        };
        assert_eq!(key, ConversationKey::Room("r".into()));
        assert_eq!(
            serde_json::to_value(&message).ok(),
            Some(
                serde_json::json!({"type":"user_left","room":"r","user":{"id":"u_1","name":"Ada"},"timestamp":"2026-11-29T10:00:00.000Z"})
            )
        );
        assert!(parse_envelope(b"l\nr\n").is_err());
        assert!(parse_envelope(b"x\n").is_err());
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact("redis://user:secret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
