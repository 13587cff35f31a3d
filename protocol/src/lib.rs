//! # natter-protocol — the wire protocol, version 1
//!
//! Every frame on `/ws/chat` is one JSON text object tagged by `"type"`; field names are
//! camelCase. The HTTP fallback carries the same JSON bodies. This crate is pure data (serde
//! types, validation of identifiers, close codes): no I/O, no async runtime, no browser API, so
//! the hub (native) and the widget (wasm32) share one definition of the contract.
//!
//! # Layout
//! - [`ClientMessage`]: what a client sends (`auth`, `user`, `chat`, `join`, `leave`, `typing`,
//!   `cursor_position`, `chain_update`, `ping`).
//! - [`ServerMessage`]: what the hub sends (`welcome`, `user`, `bot`, `agent`, `system`, `chat`,
//!   `typing`, `user_joined`, `user_left`, `room_info`, `cursor_position`, `chain_update`, `ack`,
//!   `history`, `error`, `pong`, `availability`, `conversation_status`).
//! - [`inbox`]: the operator inbox's frames and HTTP bodies.
//! - [`SESSION_HEADER`]: the HTTP header that carries a session id on the fallback API.
//! - [`ErrorCode`] and [`close`]: the error vocabulary and the WebSocket close codes, each saying
//!   whether a client should reconnect.
//! - [`validate_session_id`], [`validate_room_id`], [`validate_message_id`]: the identifier
//!   rules both sides apply.
//! - [`Role::as_str`], [`ClientMessage::kind`], [`ServerMessage::kind`]: every wire name, so
//!   nothing outside this crate spells one.
//!
//! The original widget's client format (`{type:"user", message, timestamp, sessionId, context}`) is a valid
//! [`ClientMessage::User`] unchanged; unknown fields are ignored everywhere so that newer
//! clients and hubs can add fields without breaking older ones.

#![cfg_attr(not(test), no_std)]

// `no_std` + `alloc`: the widget links no `std` (its panic machinery alone is kilobytes the
// visitor downloads); the hub gets the same types with `std` linked as usual.
extern crate alloc;

/// What `std`'s prelude would bring, for modules of a `no_std` crate.
mod prelude {
    pub(crate) use alloc::{
        boxed::Box,
        string::{String, ToString},
        vec::Vec,
    };
}

use crate::prelude::*;
use serde::{Deserialize, Serialize};

pub mod close;
mod decode;
mod ids;
pub mod inbox;
mod raw;

pub use ids::{
    first_bad_in_name, is_forbidden_in_names, is_room_id, validate_member_name, validate_message_id,
    validate_room_id, validate_room_name, validate_session_id, IdError, MAX_COMBINING_MARKS,
    MAX_MEMBER_NAME_CHARS, MAX_MESSAGE_ID_LEN, MAX_ROOM_ID_LEN, MAX_ROOM_METADATA_BYTES, MAX_ROOM_NAME_CHARS,
    MAX_SESSION_ID_LEN,
};

pub use raw::RawJson;

/// The largest frame (a WebSocket message, an HTTP body), in bytes, that every hub accepts: a
/// hub's `--max-frame` may raise it, never lower it. A client that keeps every frame within it
/// is never closed with [`close::TOO_BIG`]; the widget refuses a larger message at the page's
/// own call.
pub const MAX_FRAME_BYTES: usize = 65_536;

/// Arbitrary JSON carried through untouched (room metadata, collaboration data).
pub type Json = serde_json::Value;

/// The most members a [`RoomInfo`] lists; `memberCount` always has the true number.
pub const ROOM_INFO_MEMBER_LIMIT: usize = 100;

/// The protocol version this crate describes; the hub reports it in `/healthz`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The HTTP header carrying a hub-issued session id on the fallback API
/// (`X-Natter-Session: <id>`), so that the id stays out of URLs and access logs. A hub that
/// issues a new session to an HTTP client answers with it in the same header.
pub const SESSION_HEADER: &str = "x-natter-session";

/// A message from a client (widget tab, HTTP fallback, or any WebSocket client) to the hub.
///
/// Read it with [`ClientMessage::from_json`] (its `Deserialize` does the same, with
/// `serde_json`): the `type` first, then the variant's struct, so `context` stays text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Says who the connection is: a signed identity, a session the hub issued, or neither (the
    /// hub then issues a session). The first frame of a socket opened without credentials in its
    /// URL; sent again later to renew a token. Answered with [`ServerMessage::Welcome`].
    Auth(Auth),
    /// A visitor's message to the session's own support conversation (the original widget's format).
    User(UserSend),
    /// A message to a named room the connection has joined.
    Chat(ChatSend),
    /// Join a named room (creating it if it does not exist yet).
    Join(Join),
    /// Leave a named room.
    Leave(Leave),
    /// Typing started or stopped, in the support conversation or in a room.
    Typing(TypingSend),
    /// Ephemeral cursor position relayed to the other members of a room; never stored.
    CursorPosition(RelaySend),
    /// Ephemeral workflow / document update relayed to the other members of a room; never stored.
    ChainUpdate(RelaySend),
    /// Liveness check; the hub answers [`ServerMessage::Pong`].
    Ping(Ping),
}

impl ClientMessage {
    /// The room a room frame is about; `None` for the others (and for `typing` in the support
    /// conversation).
    pub fn room(&self) -> Option<&str> {
        match self {
            ClientMessage::Chat(c) => Some(&c.room),
            ClientMessage::Join(j) => Some(&j.room),
            ClientMessage::Leave(l) => Some(&l.room),
            ClientMessage::Typing(t) => t.room.as_deref(),
            ClientMessage::CursorPosition(r) | ClientMessage::ChainUpdate(r) => Some(&r.room),
            ClientMessage::Auth(_) | ClientMessage::User(_) | ClientMessage::Ping(_) => None,
        }
    }
}

/// Who a connection is, and where it resumes.
///
/// `Debug` shows whether a token and a session were given, never their values: both are
/// credentials and must not reach a log.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// A JWT signed by the site's backend for its logged-in user. When given, the connection
    /// is that user (their conversation, whatever `session` says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A session id the hub issued earlier (from a `welcome`). Without `token` or `session`
    /// the hub issues a new session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The last `seq` this client saw; without it the connection gets the recent history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The page the visitor is on (given to the reply engine as context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
}

impl core::fmt::Debug for Auth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("session", &self.session.as_ref().map(|_| "<redacted>"))
            .field("after", &self.after)
            .field("page", &self.page)
            .finish()
    }
}

/// A visitor's text to the support conversation of its session.
///
/// Its `type` is [`UserSend::KIND`]; the HTTP fallback accepts it with `type` left out.
///
/// The original widget's example parses into this unchanged; `id` is optional for that reason, but clients
/// that want exactly-once delivery across retries (the widget does) set it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSend {
    /// Client-made id used to de-duplicate re-sends; the hub makes one when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The text. Always rendered as text, never as HTML.
    pub message: String,
    /// The client's clock when the message was written (RFC 3339); informational only — the
    /// hub stamps its own time on the stored message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Session id; on the WebSocket the URL's `session` wins, on HTTP it is required here or
    /// in the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Free-form page context (`{"page": "/pricing"}`), passed to the reply engine; kept as
    /// the JSON text it arrived as, and refused past the hub's `--max-context` bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<RawJson>,
}

/// A text message to a room.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSend {
    /// The room, which a WebSocket connection must have joined (over the HTTP fallback, any
    /// room the sender may join; it is created if needed).
    pub room: String,
    /// Client-made id for de-duplication, as in [`UserSend::id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The text.
    pub message: String,
    /// HTTP fallback only: the display name, as a `join` gives it on the WebSocket (ignored
    /// there, and for a signed-in user, whose verified name is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Join a room.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Join {
    /// The room id (see [`validate_room_id`]).
    pub room: String,
    /// Display name shown to the other members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Last room `seq` this client saw; the hub replays what came after it. Without it the
    /// client gets the room's recent history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// Leave a room.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leave {
    /// The room to leave.
    pub room: String,
}

/// Typing indication from a client.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingSend {
    /// A room, or none for the session's support conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// `true` when typing starts, `false` when it stops.
    #[serde(default = "yes")]
    pub active: bool,
}

pub(crate) fn yes() -> bool {
    true
}

/// An ephemeral collaboration payload (`cursor_position`, `chain_update`) for a room.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelaySend {
    /// The room, which the connection must have joined.
    pub room: String,
    /// Any JSON, kept as its text; relayed as is to the other members, bounded by the frame
    /// size limit.
    #[serde(default)]
    pub data: RawJson,
}

/// A liveness check.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ping {
    /// Echoed back in the pong, so a client can match them or measure round trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<RawJson>,
}

/// A message from the hub to a client.
///
/// Read it with [`ServerMessage::from_json`] (its `Deserialize` does the same, with
/// `serde_json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to a successful [`ClientMessage::Auth`] (and the first frame of a socket
    /// opened with `?token=`): who the connection is. Followed by the `history`.
    Welcome(Welcome),
    /// A visitor message of this session, sent to the session's other tabs (the sending tab
    /// gets an [`Ack`]) and replayed in [`History`].
    User(ConversationMessage),
    /// A reply from the reply engine.
    Bot(ConversationMessage),
    /// A reply from a human operator.
    Agent(ConversationMessage),
    /// A notice from the hub (maintenance, hand-over to a human, …).
    System(SystemNotice),
    /// A message in a room.
    Chat(RoomMessage),
    /// Someone (the bot, an operator, a room member) started or stopped typing.
    Typing(TypingNotice),
    /// A member joined a room.
    UserJoined(Presence),
    /// A member left a room (or their last connection dropped).
    UserLeft(Presence),
    /// A room's metadata and current members; sent on join and on request.
    RoomInfo(RoomInfo),
    /// A relayed cursor position from another room member.
    CursorPosition(RelayNotice),
    /// A relayed workflow update from another room member.
    ChainUpdate(RelayNotice),
    /// The hub stored a message: its `id` and the `seq` it got.
    Ack(Ack),
    /// Messages the client missed (on connect, resume, join, or an HTTP poll).
    History(History),
    /// Something the client sent was refused; the connection carries on.
    Error(ErrorFrame),
    /// Answer to [`ClientMessage::Ping`].
    Pong(Pong),
    /// Whether a person is online to answer (or that this hub has no operators): sent after the
    /// first `history` and whenever it changes.
    Availability(Availability),
    /// An operator closed (or reopened) the support conversation: sent when it happens and, for
    /// a closed conversation, after the first `history`.
    ConversationStatus(ConversationStatus),
}

/// Whether operators are online (on any hub).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// `true` while at least one operator is signed in to the inbox with it open, `false` when
    /// none is; `null` (`None`) when the hub has no operator accounts at all, so nobody will
    /// ever answer in person and the widget shows no availability line. Always written, as
    /// `null` too.
    #[serde(default)]
    pub online: Option<bool>,
}

/// The support conversation was closed or opened again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationStatus {
    /// `open` or `closed`.
    pub status: inbox::ConversationState,
    /// When (RFC 3339, UTC).
    pub timestamp: String,
}

/// Who a connection is, as the hub sees it.
///
/// `Debug` does not show the session id (a credential).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// For an anonymous visitor: the session id to keep (the one given, or a new one the hub
    /// issued) and to present next time. Absent for a signed-in user, whose conversation
    /// follows the user rather than a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The public member id others see in rooms (`u_` + 16 hex digits, keyed with a hub secret,
    /// so it cannot be mapped back to the session or the user).
    pub member: String,
    /// The signed-in user, when the connection presented a valid token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserProfile>,
    /// When the token expires (seconds since the Unix epoch): the hub closes the connection
    /// with [`close::UNAUTHORIZED`] then, unless a fresh `auth` came first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The budgets this hub holds the connection to, so a client can pace itself within them
    /// rather than be refused (`rate_limited`) or cut (4029). Absent from an older hub: use the
    /// hub's defaults ([`Budgets::default`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,
}

/// What one connection may send (the hub's `--rate-*`, `--frame-budget` and
/// `--max-rooms-per-connection`), told in `welcome`. A value of 0 means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budgets {
    /// Messages (support messages, room messages and joins together) the session may send
    /// per minute, sustained (`--rate-per-sec` × 60, rounded down).
    pub messages_per_minute: u32,
    /// How many of them it may send at once before that rate applies (`--rate-burst`).
    pub message_burst: u32,
    /// Bytes per second the connection may make the hub send (`--frame-budget`): each frame
    /// costs its length plus [`FRAME_OVERHEAD`] bytes, times the connections it reaches; a join
    /// costs [`JOIN_COST`] more. Four seconds' worth may be spent at once.
    pub frame_budget: u64,
    /// Most rooms the connection may be in at once (`--max-rooms-per-connection`).
    pub max_rooms: u32,
}

/// What every frame costs on top of its length, in bytes of the frame budget.
pub const FRAME_OVERHEAD: u64 = 256;
/// What a `join` costs on top of its length (the room's info and history it makes the hub
/// read and send), in bytes of the frame budget.
pub const JOIN_COST: u64 = 16 * 1024;

impl Default for Budgets {
    /// The hub's defaults: 5 messages a second after a burst of 20, 1 MiB a second, 100 rooms.
    fn default() -> Self {
        Budgets { messages_per_minute: 300, message_burst: 20, frame_budget: 1_048_576, max_rooms: 100 }
    }
}

impl core::fmt::Debug for Welcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Welcome")
            .field("session", &self.session.as_ref().map(|_| "<redacted>"))
            .field("member", &self.member)
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("budgets", &self.budgets)
            .finish()
    }
}

/// A signed-in user as their verified token describes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    /// The user's id at the site (the token's `sub`).
    pub id: String,
    /// Display name (the token's `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address (the token's `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Avatar URL (the token's `avatar`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// Who wrote a stored message in a support conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The visitor.
    User,
    /// The reply engine.
    Bot,
    /// A human operator.
    Agent,
    /// The hub itself.
    System,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 4] = [Role::User, Role::Bot, Role::Agent, Role::System];

    /// The snake_case name used on the wire (`"user"`, `"bot"`, `"agent"`, `"system"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Bot => "bot",
            Role::Agent => "agent",
            Role::System => "system",
        }
    }
}

/// A stored message of a session's support conversation (`user`, `bot` or `agent`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMessage {
    /// Unique within the conversation: the client's id for `user` messages, the hub's otherwise.
    pub id: String,
    /// Position in the conversation, starting at 1 and increasing by one per stored message.
    pub seq: u64,
    /// The text.
    pub message: String,
    /// When the hub stored it (RFC 3339, UTC).
    pub timestamp: String,
    /// The session (conversation) it belongs to.
    pub session_id: String,
    /// The page context the visitor sent with it, if any (as the JSON text it was sent as).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<RawJson>,
    /// Display name of the author: an operator's name, the bot's name, or a signed-in user's
    /// verified name (never a name a client chose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// For `bot` replies from the rules engine: the rule category that answered (`greeting`,
    /// `bug`, …); lets analytics and tests see why a reply was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// For a `bot` reply: the `id` of the message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// A notice from the hub, not part of the stored conversation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemNotice {
    /// Human-readable text.
    pub message: String,
    /// When it was sent (RFC 3339, UTC).
    pub timestamp: String,
    /// The room it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// A room member as other members see them. `id` is a stable public id keyed with a hub
/// secret from the session (or the verified user id) — never the session id itself, which is a
/// credential, and not reversible without the secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Stable public id of the user.
    pub id: String,
    /// Display name: the verified name of a signed-in user, else the name given on `join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `true` for a signed-in user whose token the hub verified (their `name` comes from it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub verified: bool,
}

/// A stored message in a room.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMessage {
    /// The room.
    pub room: String,
    /// Unique within the room.
    pub id: String,
    /// Position in the room's history, starting at 1.
    pub seq: u64,
    /// The text.
    pub message: String,
    /// When the hub stored it (RFC 3339, UTC).
    pub timestamp: String,
    /// Who wrote it.
    pub from: Member,
}

/// Someone started or stopped typing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingNotice {
    /// The room, or none for the support conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Who is typing: `bot` while the reply engine works, `agent`, or `user` (a room member or
    /// another tab of the session).
    pub role: Role,
    /// The member typing, in rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Member>,
    /// `true` while typing.
    pub active: bool,
}

/// A member joined or left a room.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// The room.
    pub room: String,
    /// The member.
    pub user: Member,
    /// When (RFC 3339, UTC).
    pub timestamp: String,
}

/// A room's metadata and members.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    /// The room id.
    pub room: String,
    /// Display name of the room, if one was set when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form metadata set when the room was created (`{}` when none), as JSON text.
    #[serde(default)]
    pub metadata: RawJson,
    /// Members present now (one entry per user, however many connections they have); at most
    /// [`ROOM_INFO_MEMBER_LIMIT`] of them, so joining a room of thousands stays cheap.
    pub members: Vec<Member>,
    /// How many members are present in all (`members` may list fewer).
    #[serde(default)]
    pub member_count: usize,
    /// The `seq` of the room's newest message (0 when none).
    pub last_seq: u64,
    /// When the room was created (RFC 3339, UTC).
    pub created_at: String,
}

/// A relayed ephemeral payload.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayNotice {
    /// The room.
    pub room: String,
    /// The member who sent it.
    pub from: Member,
    /// The payload, as sent (its JSON text, never parsed by the hub).
    pub data: RawJson,
}

/// Acknowledgement of a stored message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// The message id (the client's, or the one the hub made).
    pub id: String,
    /// The `seq` the message has in its conversation or room.
    pub seq: u64,
    /// The room, for a `chat` message; none for the support conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// `true` when the id was already stored: this is a re-send, acknowledged again and not
    /// stored or delivered a second time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Messages a client missed, oldest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The room, or none for the support conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Stored messages (`user`, `bot`, `agent` or `chat` frames), in `seq` order.
    pub messages: Vec<ServerMessage>,
    /// `false` when some of what was asked for could no longer be delivered; `gap` says which.
    pub complete: bool,
    /// The range of `seq` that could not be delivered, when `complete` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    /// The newest `seq` of the conversation or room at the time of this answer.
    pub last_seq: u64,
}

impl History {
    /// Writes a `history` frame around messages that are already JSON text, without parsing
    /// them: byte for byte what `serde_json` writes for `ServerMessage::History` holding the
    /// parsed messages. Each of `messages` must be one stored frame (a `user`, `bot`, `agent` or
    /// `chat` object as [`ServerMessage`] serialises it); it is copied as it is.
    ///
    /// The hub keeps stored messages as the text it sends, so a resume is answered by copying
    /// that text rather than parsing each message and writing it again.
    pub fn splice<T: AsRef<str>>(
        room: Option<&str>,
        messages: &[T],
        complete: bool,
        gap: Option<Gap>,
        last_seq: u64,
    ) -> String {
        use core::fmt::Write as _;
        // Writing a `&str` as JSON cannot fail; an empty string stands in should it ever.
        let room = room.map(|r| serde_json::to_string(r).unwrap_or_else(|_| "\"\"".into()));
        let body: usize = messages.iter().map(|m| m.as_ref().len() + 1).sum();
        let mut out = String::with_capacity(body + room.as_ref().map_or(0, String::len) + 96);
        out.push_str("{\"type\":\"history\"");
        if let Some(room) = room {
            out.push_str(",\"room\":");
            out.push_str(&room);
        }
        out.push_str(",\"messages\":[");
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(m.as_ref());
        }
        // Writing to a `String` cannot fail.
        let _ = write!(out, "],\"complete\":{complete}");
        if let Some(Gap { from, to }) = gap {
            let _ = write!(out, ",\"gap\":{{\"from\":{from},\"to\":{to}}}");
        }
        let _ = write!(out, ",\"lastSeq\":{last_seq}}}");
        out
    }
}

/// An inclusive range of `seq` numbers that could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    /// First missing seq.
    pub from: u64,
    /// Last missing seq.
    pub to: u64,
}

/// A refused input. The connection stays open unless a close frame follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFrame {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation naming the bad value.
    pub message: String,
    /// The id of the refused message, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For `rate_limited`: how long to wait before sending again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The room the refused frame was about (`join`, `leave`, `chat`, `typing`,
    /// `cursor_position`, `chain_update` with a room), so a client in several rooms knows
    /// which one a refusal without an `id` concerns; for [`ErrorCode::RoomDeleted`], the room
    /// that was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// Why something was refused. Every code is documented in `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON (or not a JSON object).
    BadJson,
    /// The `type` is missing or not one this hub knows.
    UnknownType,
    /// A field is missing, has the wrong type, or an invalid value (empty text, bad room id).
    InvalidMessage,
    /// The message is larger than the hub's limit.
    TooLarge,
    /// Too many messages too fast; wait `retryAfterMs`.
    RateLimited,
    /// The connection has not joined the room it addressed.
    NotInRoom,
    /// The room does not exist.
    UnknownRoom,
    /// A room with that id already exists.
    RoomExists,
    /// The operator deleted the room (`DELETE /api/rooms/{room}`) with its history: sent, with
    /// `room`, to every connection that had joined it, which is no longer in it. A later `join`
    /// makes a new, empty room.
    RoomDeleted,
    /// The session id is empty, too long or has non-printable characters.
    BadSession,
    /// The page's origin is not on the hub's allow-list.
    ForbiddenOrigin,
    /// A signed identity did not verify (bad signature, expired, wrong audience, …), or the
    /// action needs a signed-in user; the message names the reason.
    Unauthorized,
    /// The signed-in user may not do this (their token's `rooms` claim does not cover the room).
    Forbidden,
    /// The message was not stored because of a fault in the hub; resend it (same id).
    Internal,
    /// The hub is shutting down or cannot reach its storage; resend later (same id).
    Unavailable,
    /// A code this client does not know (sent by a newer hub).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code a hub sends (all but [`ErrorCode::Unknown`]), in declaration order.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::InvalidMessage,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::NotInRoom,
        ErrorCode::UnknownRoom,
        ErrorCode::RoomExists,
        ErrorCode::RoomDeleted,
        ErrorCode::BadSession,
        ErrorCode::ForbiddenOrigin,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::UnknownRoom => "unknown_room",
            ErrorCode::RoomExists => "room_exists",
            ErrorCode::RoomDeleted => "room_deleted",
            ErrorCode::BadSession => "bad_session",
            ErrorCode::ForbiddenOrigin => "forbidden_origin",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Whether re-sending the same message later can succeed (`rate_limited`, `internal`,
    /// `unavailable`); every other code means the message itself is wrong.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::Unavailable)
    }
}

/// Answer to a ping.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    /// The ping's nonce, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<RawJson>,
    /// The hub's clock (RFC 3339, UTC).
    pub timestamp: String,
}

/// Body of `GET /api/rooms[?limit=N&cursor=C]`: one page of rooms, by id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomList {
    /// The rooms of this page, by id.
    pub rooms: Vec<RoomSummary>,
    /// Where the next page starts: pass it back as `cursor`. Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Rooms per page of `GET /api/rooms` when no `limit` is given.
pub const ROOM_PAGE_DEFAULT: usize = 50;

/// Most rooms per page of `GET /api/rooms`.
pub const ROOM_PAGE_MAX: usize = 200;

/// One room in a [`RoomList`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    /// Room id.
    pub room: String,
    /// Display name, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many users are present.
    pub member_count: usize,
    /// The newest message's seq.
    pub last_seq: u64,
}

/// Body of `POST /api/rooms`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoom {
    /// Room id (see [`validate_room_id`]).
    pub room: String,
    /// Display name (see [`validate_room_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form metadata (a JSON object of at most [`MAX_ROOM_METADATA_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RawJson>,
}

impl UserSend {
    /// The `type` of a [`ClientMessage::User`] on the wire.
    pub const KIND: &'static str = "user";
}

impl ChatSend {
    /// The `type` of a [`ClientMessage::Chat`] on the wire.
    pub const KIND: &'static str = "chat";
}

impl ClientMessage {
    /// Every client `type`, in declaration order (for error messages that list what is valid).
    pub const KINDS: [&'static str; 9] = [
        "auth",
        UserSend::KIND,
        ChatSend::KIND,
        "join",
        "leave",
        "typing",
        "cursor_position",
        "chain_update",
        "ping",
    ];

    /// The `type` tag this message has on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Auth(_) => "auth",
            ClientMessage::User(_) => UserSend::KIND,
            ClientMessage::Chat(_) => "chat",
            ClientMessage::Join(_) => "join",
            ClientMessage::Leave(_) => "leave",
            ClientMessage::Typing(_) => "typing",
            ClientMessage::CursorPosition(_) => "cursor_position",
            ClientMessage::ChainUpdate(_) => "chain_update",
            ClientMessage::Ping(_) => "ping",
        }
    }
}

/// [`ServerMessage::set_seq`] was asked to number a frame that is not a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {kind} frame cannot be stored; only user, bot, agent and chat frames have a seq")]
pub struct NotStorable {
    /// The frame's `type`.
    pub kind: &'static str,
}

impl ServerMessage {
    /// Every hub `type`, in declaration order.
    pub const KINDS: [&'static str; 18] = [
        "welcome",
        "user",
        "bot",
        "agent",
        "system",
        "chat",
        "typing",
        "user_joined",
        "user_left",
        "room_info",
        "cursor_position",
        "chain_update",
        "ack",
        "history",
        "error",
        "pong",
        "availability",
        "conversation_status",
    ];

    /// The `type` tag this message has on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::User(_) => "user",
            ServerMessage::Bot(_) => "bot",
            ServerMessage::Agent(_) => "agent",
            ServerMessage::System(_) => "system",
            ServerMessage::Chat(_) => "chat",
            ServerMessage::Typing(_) => "typing",
            ServerMessage::UserJoined(_) => "user_joined",
            ServerMessage::UserLeft(_) => "user_left",
            ServerMessage::RoomInfo(_) => "room_info",
            ServerMessage::CursorPosition(_) => "cursor_position",
            ServerMessage::ChainUpdate(_) => "chain_update",
            ServerMessage::Ack(_) => "ack",
            ServerMessage::History(_) => "history",
            ServerMessage::Error(_) => "error",
            ServerMessage::Pong(_) => "pong",
            ServerMessage::Availability(_) => "availability",
            ServerMessage::ConversationStatus(_) => "conversation_status",
        }
    }

    /// Sets the `seq` of a stored message frame (`user`, `bot`, `agent`, `chat`); any other frame
    /// has no place in a conversation's history and is refused.
    pub fn set_seq(&mut self, seq: u64) -> Result<(), NotStorable> {
        match self {
            ServerMessage::User(m) | ServerMessage::Bot(m) | ServerMessage::Agent(m) => m.seq = seq,
            ServerMessage::Chat(m) => m.seq = seq,
            other => return Err(NotStorable { kind: other.kind() }),
        }
        Ok(())
    }

    /// The `seq` of a stored message frame (`user`, `bot`, `agent`, `chat`), none otherwise.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ServerMessage::User(m) | ServerMessage::Bot(m) | ServerMessage::Agent(m) => Some(m.seq),
            ServerMessage::Chat(m) => Some(m.seq),
            _ => None,
        }
    }

    /// The `id` of a stored message frame, none otherwise.
    pub fn id(&self) -> Option<&str> {
        match self {
            ServerMessage::User(m) | ServerMessage::Bot(m) | ServerMessage::Agent(m) => Some(&m.id),
            ServerMessage::Chat(m) => Some(&m.id),
            _ => None,
        }
    }

    /// Builds an error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error(ErrorFrame {
            code,
            message: message.into(),
            id: None,
            retry_after_ms: None,
            room: None,
        })
    }
}

#[cfg(test)]
mod tests;
