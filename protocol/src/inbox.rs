//! The operator inbox's wire types: what the hub's `/inbox` app and its `/inbox/ws` socket
//! exchange with the hub. Visitors never see these; the widget's side of the same features is
//! [`ServerMessage::Availability`] and
//! [`ServerMessage::ConversationStatus`].
//!
//! A conversation is named to operators by its public id (`c_` + 16 hex digits, keyed with the
//! hub's secret), never by its session id, which is the visitor's credential. Stored messages
//! reach operators with `sessionId` replaced by that public id for the same reason.
use crate::prelude::*;

use serde::{Deserialize, Serialize};

use crate::{Role, ServerMessage, UserProfile};

/// Whether a conversation waits for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// Open: shown under "open"; a visitor's message to a closed conversation opens it again.
    #[default]
    Open,
    /// Closed by an operator: the bot answers again (the handoff ended).
    Closed,
}

impl ConversationState {
    /// The wire name (`"open"`, `"closed"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Open => "open",
            ConversationState::Closed => "closed",
        }
    }
}

/// What operators know of a visitor: where they are and, when the site vouched for them, who.
/// Everything but `user` comes from the visitor's browser and is unverified.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitorContext {
    /// The page the visitor last wrote from (a path or URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// That page's title, when the widget sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The browser's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// The signed-in user, from an identity token the hub verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserProfile>,
}

/// One conversation as the inbox lists it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    /// Public id (`c_…`), the conversation's name in every inbox URL and frame.
    pub id: String,
    /// The visitor's public member id (`u_…`).
    pub visitor: String,
    /// Open or closed.
    pub status: ConversationState,
    /// The operator it is assigned to (their sign-in name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Visitor messages no operator has read yet.
    pub unread: u32,
    /// The newest stored message's seq.
    pub last_seq: u64,
    /// When the newest message was stored (milliseconds since the Unix epoch).
    pub last_activity_ms: u64,
    /// Who wrote the newest message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_role: Option<Role>,
    /// The start of the newest message (at most 140 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The conversation was handed to a person (an operator answered, or the visitor asked for
    /// one): the bot stays silent in it while an operator is online, until it is closed.
    #[serde(default)]
    pub handoff: bool,
    /// The visitor asked for a person (a handoff rule, a webhook or LLM reply asked for one).
    #[serde(default)]
    pub wants_human: bool,
    /// The seq of the visitor message whose answer told the visitor that a person will follow
    /// up (the bot answered in the handed-off conversation because nobody was online); 0 until
    /// that has been said since the handoff began, an operator last answered, or it was closed.
    /// The bot says it once per such stretch, not with every answer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub follow_up_seq: u64,
    /// The visitor's page, browser and verified identity.
    #[serde(default)]
    pub context: VisitorContext,
    /// When the conversation was first seen (milliseconds since the Unix epoch).
    pub created_ms: u64,
}

/// One page of `GET /inbox/api/conversations`: the newest activity first (ties by id,
/// highest first), the same shape as the room list.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationList {
    /// The conversations of this page, newest activity first. It may hold fewer than asked
    /// for and still not be the last page.
    pub conversations: Vec<ConversationSummary>,
    /// Where the next page starts: pass it back as `cursor`. Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Conversations per page of `GET /inbox/api/conversations` when no `limit` is given.
pub const CONVERSATION_PAGE_DEFAULT: usize = 50;

/// Most conversations per page of `GET /inbox/api/conversations`.
pub const CONVERSATION_PAGE_MAX: usize = 200;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An operator as the inbox shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorProfile {
    /// Sign-in name.
    pub name: String,
    /// The name visitors see on the operator's replies.
    pub display_name: String,
}

/// A private note: stored with the conversation, shown to operators only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// Unique id.
    pub id: String,
    /// The operator who wrote it (sign-in name).
    pub author: String,
    /// The text (rendered as text, never HTML).
    pub text: String,
    /// When it was written (milliseconds since the Unix epoch).
    pub created_ms: u64,
}

/// A canned reply, inserted in the inbox's composer by typing `/` and its shortcut.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CannedReply {
    /// The shortcut: 1–32 of `a-z`, `0-9`, `-`, `_`.
    pub shortcut: String,
    /// The text inserted.
    pub text: String,
}

/// What the hub sends on `/inbox/ws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboxEvent {
    /// The first frame: who is signed in and how many operators are online.
    Hello {
        /// The signed-in operator.
        operator: OperatorProfile,
        /// Operators online on every hub.
        online: u32,
    },
    /// A conversation appeared or changed (activity, status, assignment, unread count).
    Conversation {
        /// Its summary now.
        conversation: ConversationSummary,
    },
    /// A stored message of a conversation (`user`, `bot` or `agent`, `sessionId` replaced by the
    /// conversation's public id).
    Message {
        /// The conversation's public id.
        conversation: String,
        /// The stored frame.
        #[serde(deserialize_with = "crate::decode::server_message_in_tagged")]
        message: ServerMessage,
    },
    /// Someone in a conversation started or stopped typing.
    Typing {
        /// The conversation's public id.
        conversation: String,
        /// `user` (the visitor) or `agent` (an operator).
        role: Role,
        /// The operator's display name, for `agent`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// `true` while typing.
        active: bool,
    },
    /// A private note was added.
    Note {
        /// The conversation's public id.
        conversation: String,
        /// The note.
        note: Note,
    },
    /// How many operators are online changed.
    Availability {
        /// Operators online on every hub.
        online: u32,
    },
}

impl InboxEvent {
    /// Every `type`, in declaration order.
    pub const KINDS: [&'static str; 6] =
        ["hello", "conversation", "message", "typing", "note", "availability"];

    /// The `type` tag on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            InboxEvent::Hello { .. } => "hello",
            InboxEvent::Conversation { .. } => "conversation",
            InboxEvent::Message { .. } => "message",
            InboxEvent::Typing { .. } => "typing",
            InboxEvent::Note { .. } => "note",
            InboxEvent::Availability { .. } => "availability",
        }
    }
}

/// What an operator's inbox sends on `/inbox/ws` (everything that changes state goes over
/// HTTP, where it carries the CSRF token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboxCommand {
    /// The operator started or stopped typing in a conversation; the visitor sees
    /// `typing {role: "agent"}`.
    Typing {
        /// The conversation's public id.
        conversation: String,
        /// `true` while typing.
        #[serde(default = "crate::yes")]
        active: bool,
    },
    /// Liveness check, answered with nothing (the socket's own pings keep it open).
    Ping,
}

/// Body of `POST /inbox/api/signin`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    /// Sign-in name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// Answer to a sign-in and to `GET /inbox/api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedIn {
    /// The operator.
    pub operator: OperatorProfile,
    /// The session's CSRF token: every state-changing request carries it in `X-Natter-Csrf`.
    pub csrf: String,
}

/// The header that carries [`SignedIn::csrf`].
pub const CSRF_HEADER: &str = "x-natter-csrf";

/// Body of `POST /inbox/api/conversations/{id}/reply` (and `/notes`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorText {
    /// The text.
    pub text: String,
    /// A client-made id, so a retried reply is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Body of `POST /inbox/api/conversations/{id}/assign`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assign {
    /// The operator's sign-in name, or none to unassign.
    #[serde(default)]
    pub assignee: Option<String>,
}

/// Body of `GET /inbox/api/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    /// The summary.
    pub conversation: ConversationSummary,
    /// Private notes, oldest first.
    pub notes: Vec<Note>,
}

/// Body of `GET /inbox/api/conversations/{id}/messages`: a page of history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// Stored frames, oldest first.
    pub messages: Vec<ServerMessage>,
    /// Ask again with `before` = this for the page before; none when this page starts the
    /// conversation (or retention removed what came before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
}
