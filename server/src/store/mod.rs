//! Where stored messages live and how they reach every hub: the [`Store`] trait.
//!
//! The hub never sees which engine runs. A store does three jobs that must agree with each
//! other, which is why they are one trait and not three:
//! 1. **Sequencing and de-duplication** — [`Store::append`] gives a message the next `seq` of
//!    its conversation, or, when the conversation already holds a message with that `id` *from
//!    the same sender* ([`Draft::sender`]), answers with the stored one (`duplicate: true`) and
//!    stores nothing. Another sender's message with the same id is a different message.
//! 2. **Durable history** — [`Store::history`] answers "what came after seq N" for resumes older
//!    than the hub's in-memory ring.
//! 3. **Ordered delivery** — every stored message, and every ephemeral frame published with
//!    [`Store::publish_ephemeral`], comes out of [`Store::subscribe`] exactly once per hub, in
//!    `seq` order within a conversation. The hub fans out *only* what comes out of that stream
//!    (never straight from `append`), so a single hub and many hubs behind Redis take the same
//!    path and clients of different hubs see one order.
//!
//! [`inbox`] is the operator inbox's storage, kept by the durable engines.
//!
//! Engines: `memory` (tests), `sqlite` (the default: one hub, survives restarts and `kill -9`),
//! `redis` (many hubs: streams hold history and assign seq, pub/sub carries delivery).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use natter_protocol::{Member, RawJson, ServerMessage};
use thiserror::Error;
use tokio::sync::mpsc;
use tungstenite::Utf8Bytes;

mod engine;
pub mod inbox;
pub mod memory;
pub mod redis;
pub mod sqlite;

/// A boxed future, so that `dyn Store` works.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which conversation a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConversationKey {
    /// A session's support conversation (visitor ↔ bot / operator), shared by its tabs.
    Session(Arc<str>),
    /// A named room.
    Room(Arc<str>),
}

impl ConversationKey {
    /// A stable text form for storage keys and channel names: `s:<session>` or `r:<room>`.
    /// Session and room ids cannot contain whitespace, so the form is unambiguous.
    pub fn storage_key(&self) -> String {
        match self {
            ConversationKey::Session(s) => format!("s:{s}"),
            ConversationKey::Room(r) => format!("r:{r}"),
        }
    }

    /// Parses [`ConversationKey::storage_key`]'s output.
    pub fn from_storage_key(key: &str) -> Option<Self> {
        match key.split_once(':') {
            Some(("s", s)) => Some(ConversationKey::Session(s.into())),
            Some(("r", r)) => Some(ConversationKey::Room(r.into())),
            _ => None,
        }
    }
}

/// A message to store. `message` is the complete frame the clients will receive (`user`,
/// `bot`, `agent` or `chat`) with `seq` set to 0: the store fills it in.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The message id (the client's or one the hub made), unique per sender within the
    /// conversation: see [`Draft::sender`].
    pub id: String,
    /// The frame, `seq` 0.
    pub message: ServerMessage,
    /// The operator account (`natter-hub operator add NAME`) that wrote an `agent` message;
    /// `None` for every other message. An `agent` frame names only its author's display name,
    /// which two operators may share, so the account comes alongside it.
    pub operator: Option<String>,
}

impl Draft {
    /// Who sent the message: the scope in which its `id` de-duplicates re-sends. Read from the
    /// frame itself where it says so, so no caller can get it wrong: a visitor's `user` message
    /// is the session's (`sessionId`), a room's `chat` message the member's (`from.id`), an
    /// operator's `agent` reply their account's (`operator NAME`: with a space, which no session
    /// or member id has), and what the hub writes itself (`bot`) has the empty sender, with ids
    /// nobody can guess. So nobody can swallow someone else's message by sending its id first —
    /// not a member another member's, not one operator another's, not a visitor an operator's.
    pub fn sender(&self) -> Cow<'_, str> {
        match &self.message {
            ServerMessage::User(m) => Cow::Borrowed(&m.session_id),
            ServerMessage::Chat(m) => Cow::Borrowed(&m.from.id),
            ServerMessage::Agent(_) => match &self.operator {
                Some(name) => Cow::Owned(format!("operator {name}")),
                None => Cow::Borrowed(""),
            },
            _ => Cow::Borrowed(""),
        }
    }
}

/// What [`Store::append`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The seq the message has (for a duplicate: the seq it got the first time).
    pub seq: u64,
    /// `true` when the id was already stored; nothing new was stored or delivered.
    pub duplicate: bool,
}

/// A stored message as clients receive it: its frame's JSON text, `seq` set. The same bytes
/// (reference-counted, not copied) sit in the ring and go to every connection it is sent to,
/// alone or spliced into a `history` answer ([`History::splice`]); nothing on that path parses
/// them again.
///
/// [`History::splice`]: natter_protocol::History::splice
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    /// The message's seq (the same as in the text).
    pub seq: u64,
    /// The frame (`user`, `bot`, `agent` or `chat`) as compact JSON.
    pub json: Utf8Bytes,
}

impl StoredFrame {
    /// A stored frame from a message with its seq set; `None` for a kind that is never stored.
    pub fn encode(message: &ServerMessage) -> Option<StoredFrame> {
        let seq = message.seq()?;
        let json = serde_json::to_string(message).ok()?;
        Some(StoredFrame { seq, json: json.into() })
    }

    /// The parsed message, for the few readers that look inside (the reply engine's view of
    /// the conversation, the operator inbox).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the stored text is not a frame (a damaged store).
    pub fn parse(&self) -> Result<ServerMessage, StoreError> {
        ServerMessage::from_json(&self.json).map_err(|e| StoreError::Backend(format!("a stored frame: {e}")))
    }
}

impl AsRef<str> for StoredFrame {
    fn as_ref(&self) -> &str {
        self.json.as_str()
    }
}

/// A page of history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryPage {
    /// Stored frames with their seq set, oldest first.
    pub messages: Vec<StoredFrame>,
    /// The conversation's newest seq (0 for an empty conversation).
    pub last_seq: u64,
    /// The lowest seq the store still holds (retention or trimming may have dropped older
    /// ones); `last_seq + 1` when the conversation is empty.
    pub first_available: u64,
}

impl HistoryPage {
    /// The page's messages parsed (see [`StoredFrame::parse`]).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a stored frame that does not parse.
    pub fn parsed(&self) -> Result<Vec<ServerMessage>, StoreError> {
        self.messages.iter().map(StoredFrame::parse).collect()
    }

    /// The seq of the page's newest message, if it has one.
    pub fn newest(&self) -> Option<u64> {
        self.messages.last().map(|m| m.seq)
    }
}

/// One item of the ordered delivery stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A newly stored message (from this hub or, behind Redis, another one).
    Stored {
        /// Its conversation.
        key: ConversationKey,
        /// The frame with its seq.
        message: ServerMessage,
    },
    /// An ephemeral frame (typing, cursor_position, chain_update, presence) for a conversation's
    /// connections; never stored.
    Ephemeral {
        /// Its conversation.
        key: ConversationKey,
        /// The frame.
        message: ServerMessage,
        /// The public member id of the sender, so its own connections can be skipped.
        from: Option<String>,
    },
    /// A frame for the operators' inboxes on every hub (a conversation's record changed, a
    /// note, availability); never stored, never sent to visitors.
    Inbox(natter_protocol::inbox::InboxEvent),
}

/// A room's stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRecord {
    /// Room id.
    pub room: String,
    /// Display name.
    pub name: Option<String>,
    /// Metadata (a JSON object), as its text.
    pub metadata: RawJson,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
}

/// Why a store operation failed. The hub answers `unavailable` / `internal` error frames
/// (the client resends with the same id) and never drops the connection for it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine cannot be reached right now (Redis down, writer stopped).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The engine failed.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// The storage and delivery engine. See the module docs for the contract.
pub trait Store: Send + Sync + 'static {
    /// Stores `draft` in `key` unless its id is already there; see [`Appended`].
    /// Returns only once the message is durable in this engine (an acknowledged message must
    /// survive a crash of the hub).
    fn append(&self, key: &ConversationKey, draft: Draft) -> BoxFuture<'_, Result<Appended, StoreError>>;

    /// Stored messages of `key` with `seq > after`, oldest first, at most `limit` of them
    /// (the oldest `limit` after `after`).
    fn history(
        &self,
        key: &ConversationKey,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryPage, StoreError>>;

    /// The newest `limit` stored messages of `key`, oldest first (for a connection that gives
    /// no `after`).
    fn recent(&self, key: &ConversationKey, limit: usize) -> BoxFuture<'_, Result<HistoryPage, StoreError>>;

    /// How many history reads ([`Store::history`], [`Store::recent`]) the engine runs at once
    /// (at least one). The hub starts no more of them than this at a time and makes the others
    /// wait in line, taking its hold on their answer's bytes (`--max-replay-in-flight`) only
    /// when a read starts: a read waiting in line has built nothing. The default is one per CPU
    /// the hub may use (a read's answer is parsed and copied on a CPU); an engine that runs
    /// fewer at once says so, so that reads wait in the hub's line, not in its own.
    fn read_turns(&self) -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }

    /// Publishes an ephemeral frame to every hub's subscribers (for a single-hub engine: just
    /// this one).
    fn publish_ephemeral(&self, event: Event) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The ordered delivery stream. Called once, by the hub, at start.
    fn subscribe(&self) -> mpsc::UnboundedReceiver<Event>;

    /// Creates a room; `Ok(false)` when it already exists.
    fn create_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Creates a room, or replaces the `name` and `metadata` of the one that exists (keeping
    /// its `created_at` and history); `Ok(true)` when it was created.
    fn put_room(&self, room: RoomRecord) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Deletes a room with its stored history (messages, de-duplication ids) and, for engines
    /// shared by many hubs, its presence records; `Ok(false)` when there was no such room. The
    /// seq counter stays: a message stored under the id later is numbered after the deleted
    /// room's last, and its history starts there ([`HistoryPage::first_available`]), so a
    /// client that was away during the deletion and resumes `after` an old seq still gets the
    /// new messages (with seqs starting again at 1 it was told it had seen them).
    fn delete_room(&self, room: &str) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// A room's record.
    fn room(&self, room: &str) -> BoxFuture<'_, Result<Option<RoomRecord>, StoreError>>;

    /// One page of room records by id: the first `limit` rooms whose id sorts after `after`
    /// (from the first room for `None`).
    fn rooms(&self, after: Option<&str>, limit: usize) -> BoxFuture<'_, Result<Vec<RoomRecord>, StoreError>>;

    /// Deletes every room created before `created_before` (RFC 3339, UTC, as in
    /// [`RoomRecord::created_at`]) that holds no message and has nobody in it — none of `keep`
    /// (the rooms with members on this hub), and, for engines shared by many hubs, no member
    /// on another hub. Returns how many went.
    fn expire_empty_rooms(
        &self,
        created_before: String,
        keep: Vec<String>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Records that `member` is present in `room` on this hub (and refreshes its lease, for
    /// engines shared by many hubs). Called on a member's first join on this hub, and again
    /// periodically while they stay. Single-hub engines keep nothing: the hub's own table is
    /// the truth for them.
    fn presence_join(&self, _room: &str, _member: &Member) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Records that `member_id` left `room` on this hub (their last connection here went).
    fn presence_leave(&self, _room: &str, _member_id: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Members present in `room` on *other* hubs (always empty for a single-hub engine). The
    /// hub answers `room_info` with its own members plus these.
    fn remote_members(&self, _room: &str) -> BoxFuture<'_, Result<Vec<Member>, StoreError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// The hub's own secret (it keys issued sessions and public member ids): the one this store
    /// already keeps, or `fresh`, kept now, when it keeps none. Atomic: hubs sharing one store
    /// that start together all end up with the same secret, and it survives restarts.
    ///
    /// The default keeps nothing and answers `fresh` — right for an engine whose data does not
    /// outlive the process anyway (the memory engine).
    fn hub_secret(&self, fresh: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, StoreError>> {
        Box::pin(std::future::ready(Ok(fresh)))
    }

    /// The operator inbox's storage, for engines that keep it (SQLite, Redis); `None` for the
    /// memory engine, and the hub then answers every inbox request with a message saying so.
    fn inbox(&self) -> Option<&dyn inbox::InboxStore> {
        None
    }

    /// Whether the engine is healthy right now (for `/healthz`: `degraded` when not).
    fn healthy(&self) -> bool {
        true
    }
}
