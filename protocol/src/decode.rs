//! Reading [`ClientMessage`] and [`ServerMessage`] from JSON: the `type` first, then the
//! message straight into its own struct.
//!
//! serde's derive for an internally tagged enum (`#[serde(tag = "type")]`) buffers the whole
//! object into a private tree before it knows the variant, and a [`RawJson`](crate::RawJson)
//! field cannot be read out of that tree. Reading the text twice — once for `type`, skipping
//! everything else without allocating, then once into the variant's struct — keeps `context`
//! as text and builds no tree at all.
use crate::prelude::*;

use alloc::borrow::Cow;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::{ClientMessage, ServerMessage, UserSend};

/// Just the `type` of a frame; every other field is skipped.
#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

fn tag(text: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    serde_json::from_str::<Tag<'_>>(text).map(|t| t.kind)
}

fn body<T: DeserializeOwned>(
    text: &str,
    wrap: fn(T) -> ClientMessage,
) -> Result<ClientMessage, serde_json::Error> {
    serde_json::from_str(text).map(wrap)
}

fn server<T: DeserializeOwned>(
    text: &str,
    wrap: fn(T) -> ServerMessage,
) -> Result<ServerMessage, serde_json::Error> {
    serde_json::from_str(text).map(wrap)
}

impl ClientMessage {
    /// Reads one client frame (a JSON object tagged by `type`).
    ///
    /// # Errors
    /// The `serde_json` error naming what is wrong: not JSON, not an object, no `type`, an
    /// unknown `type` (the error lists [`ClientMessage::KINDS`]), or a bad field.
    pub fn from_json(text: &str) -> Result<ClientMessage, serde_json::Error> {
        match tag(text)?.as_ref() {
            "auth" => body(text, ClientMessage::Auth),
            UserSend::KIND => body(text, ClientMessage::User),
            "chat" => body(text, ClientMessage::Chat),
            "join" => body(text, ClientMessage::Join),
            "leave" => body(text, ClientMessage::Leave),
            "typing" => body(text, ClientMessage::Typing),
            "cursor_position" => body(text, ClientMessage::CursorPosition),
            "chain_update" => body(text, ClientMessage::ChainUpdate),
            "ping" => body(text, ClientMessage::Ping),
            other => Err(serde_json::Error::unknown_variant(other, &ClientMessage::KINDS)),
        }
    }
}

impl ServerMessage {
    /// Reads one hub frame (a JSON object tagged by `type`).
    ///
    /// # Errors
    /// As [`ClientMessage::from_json`], with [`ServerMessage::KINDS`].
    pub fn from_json(text: &str) -> Result<ServerMessage, serde_json::Error> {
        match tag(text)?.as_ref() {
            "welcome" => server(text, ServerMessage::Welcome),
            "user" => server(text, ServerMessage::User),
            "bot" => server(text, ServerMessage::Bot),
            "agent" => server(text, ServerMessage::Agent),
            "system" => server(text, ServerMessage::System),
            "chat" => server(text, ServerMessage::Chat),
            "typing" => server(text, ServerMessage::Typing),
            "user_joined" => server(text, ServerMessage::UserJoined),
            "user_left" => server(text, ServerMessage::UserLeft),
            "room_info" => server(text, ServerMessage::RoomInfo),
            "cursor_position" => server(text, ServerMessage::CursorPosition),
            "chain_update" => server(text, ServerMessage::ChainUpdate),
            "ack" => server(text, ServerMessage::Ack),
            "history" => server(text, ServerMessage::History),
            "error" => server(text, ServerMessage::Error),
            "pong" => server(text, ServerMessage::Pong),
            "availability" => server(text, ServerMessage::Availability),
            "conversation_status" => server(text, ServerMessage::ConversationStatus),
            other => Err(serde_json::Error::unknown_variant(other, &ServerMessage::KINDS)),
        }
    }
}

/// Deserializes through [`ClientMessage::from_json`]; works with `serde_json`'s deserializers
/// (which can hand over the value's text), not with other formats.
impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        ClientMessage::from_json(raw.get()).map_err(D::Error::custom)
    }
}

/// Deserializes through [`ServerMessage::from_json`] (a `history` frame's messages too); works
/// with `serde_json`'s deserializers, not with other formats.
impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        ServerMessage::from_json(raw.get()).map_err(D::Error::custom)
    }
}

/// Reads a [`ServerMessage`] held inside an internally tagged enum (the inbox feed's `message`
/// event): serde has buffered the enclosing object by then, and a [`RawValue`] cannot be read
/// out of that buffer, so the value is read as a tree and written back as text first. Only for
/// such fields; a frame on its own goes through [`ServerMessage::from_json`] without a tree.
pub(crate) fn server_message_in_tagged<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ServerMessage, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    ServerMessage::from_json(&value.to_string()).map_err(D::Error::custom)
}
