//! `Client`: one connection's protocol state (who it is, its rooms) and what each client
//! message does. Transport-agnostic: the WebSocket layer feeds it text frames and sends what
//! lands in its [`Outbox`]; it never sees a socket.

use std::collections::HashMap;
use std::sync::Arc;

use natter_protocol::{
    close, validate_room_id, Auth, ClientMessage, ErrorCode, Member, Pong, RelayNotice, Role, ServerMessage,
    TypingNotice, UserSend,
};

use crate::clock::now_rfc3339;
use crate::hub::{encode, Hub, Outbox, Refusal, Since};
use crate::identity::Principal;
use crate::store::ConversationKey;

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Client {
    hub: Hub,
    outbox: Outbox,
    /// Who the connection is: their conversation, public member id, verified user.
    who: Principal,
    page: Option<String>,
    /// The browser's `User-Agent`, shown to operators (boxed: it is in every idle connection).
    browser: Option<Box<str>>,
    /// Joined rooms, with the member as shown in each (the name given on join).
    rooms: HashMap<Arc<str>, Member>,
}

impl Client {
    /// Subscribes the connection to its conversation and queues its `history`, then whether an
    /// operator is online and whether the conversation was closed.
    pub(crate) async fn start(
        hub: Hub,
        outbox: Outbox,
        who: Principal,
        page: Option<String>,
        browser: Option<Box<str>>,
        since: Since,
    ) -> Result<Client, Refusal> {
        hub.attach_session(&who.conversation, since, &outbox, &who.member_id).await?;
        hub.greet_visitor(&who.conversation, &outbox).await;
        Ok(Client { hub, outbox, who, page, browser, rooms: HashMap::new() })
    }

    /// When the connection's identity token has expired (`now` in seconds since the epoch),
    /// give or take the clock skew forgiven when it was accepted (a token the connect accepted
    /// must not be cut on the next beat): queues an `unauthorized` error and the close that tells
    /// the client to come back with a fresh token, and returns `true`.
    pub(crate) fn expire_if_due(&self, now: u64) -> bool {
        let leeway = crate::identity::token::LEEWAY_SECS;
        if self.who.expires_at().is_none_or(|exp| exp.saturating_add(leeway) >= now) {
            return false;
        }
        self.refuse(Refusal::new(
            ErrorCode::Unauthorized,
            "the identity token expired; reconnect with a fresh one (or send a fresh `auth` before it expires)",
        ));
        self.close_after_queue(close::UNAUTHORIZED, "identity token expired");
        true
    }

    /// A later `auth` on an open connection: a signed-in user renewing their token (the same
    /// `sub`, a later `exp`). Anything else is refused: who a connection is does not change.
    fn renew(&mut self, auth: Auth) -> Result<(), Refusal> {
        let (Some(token), Some(current)) = (auth.token.as_deref(), self.who.user.as_ref()) else {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                "this connection has said who it is already; only a signed-in user's fresh token can follow (open a new connection to change who you are)",
            ));
        };
        match self.hub.identity().user(token) {
            Ok(renewed) if renewed.user.as_ref().is_some_and(|u| u.sub == current.sub) => {
                self.who.user = renewed.user;
                self.send(&ServerMessage::Welcome(self.who.welcome()));
                Ok(())
            }
            Ok(_) => Err(Refusal::new(
                ErrorCode::Unauthorized,
                "the fresh token is for another user; open a new connection to switch users",
            )),
            Err(refusal) => {
                // A token that does not verify ends the identity: the client must come back with
                // a good one.
                self.close_after_queue(close::UNAUTHORIZED, "identity token refused");
                Err(refusal)
            }
        }
    }

    /// Queues a frame for this connection (never waits; see [`Outbox::send`]).
    fn send(&self, message: &ServerMessage) {
        self.outbox.send(encode(message));
    }

    /// Answers a refusal with an `error` frame, counting it: this is where it leaves the hub.
    fn refuse(&self, refusal: Refusal) {
        self.hub.metrics().refusal(refusal.code);
        tracing::debug!(connection = self.outbox.id, code = refusal.code.as_str(), message = %refusal.message, "refused");
        self.send(&refusal.frame());
    }

    /// Handles one text frame.
    pub(crate) async fn on_text(&mut self, text: &str) {
        match parse(text) {
            Ok(message) => {
                // A refusal names the room (and a `chat`'s id), so a client in several rooms
                // can tell which call failed.
                let room = message.room().map(str::to_owned);
                let chat_id = match &message {
                    ClientMessage::Chat(c) => c.id.clone(),
                    _ => None,
                };
                if let Err(mut r) = self.handle(message).await {
                    if r.id.is_none() {
                        r.id = chat_id;
                    }
                    self.refuse(r.in_room(room.as_deref()));
                }
            }
            Err(r) => self.refuse(r),
        }
    }

    /// A binary frame: the protocol is JSON text.
    pub(crate) fn on_binary(&mut self) {
        self.refuse(Refusal::new(
            ErrorCode::BadJson,
            "binary frames are not accepted; send JSON text frames",
        ));
    }

    /// A frame over `--max-frame`, refused unread.
    pub(crate) fn on_too_large(&mut self) {
        let max = self.hub.config().max_frame;
        self.refuse(Refusal::new(
            ErrorCode::TooLarge,
            format!(
                "frame larger than the hub's limit of {max} bytes; it was not read and the connection closes"
            ),
        ));
    }

    /// Queues a close frame after what is already queued (the writer sends both, then ends).
    pub(crate) fn close_after_queue(&self, code: u16, reason: &'static str) {
        self.outbox.close_after_queue(code, reason);
    }

    fn joined(&self, room: &str) -> Result<(Arc<str>, Member), Refusal> {
        match self.rooms.get_key_value(room) {
            Some((k, m)) => Ok((k.clone(), m.clone())),
            None => Err(Refusal::new(
                ErrorCode::NotInRoom,
                format!("this connection has not joined room {room:?}; send a join first"),
            )),
        }
    }

    async fn handle(&mut self, message: ClientMessage) -> Result<(), Refusal> {
        match message {
            ClientMessage::Ping(p) => {
                self.send(&ServerMessage::Pong(Pong { nonce: p.nonce, timestamp: now_rfc3339() }));
            }
            ClientMessage::Auth(auth) => self.renew(auth)?,
            ClientMessage::User(send) => {
                // The connection's identity wins over the body's `sessionId`: a tab cannot write
                // into another conversation.
                let ack = self
                    .hub
                    .post_user(&self.who, send, self.page.as_deref(), self.browser.as_deref())
                    .await?;
                self.send(&ServerMessage::Ack(ack));
            }
            ClientMessage::Chat(chat) => {
                check_room(&chat.room)?;
                let (room, member) = self.joined(&chat.room)?;
                let ack =
                    self.hub.post_chat(&self.who.conversation, &room, &member, chat.id, chat.message).await?;
                self.send(&ServerMessage::Ack(ack));
            }
            ClientMessage::Join(join) => {
                check_room(&join.room)?;
                self.hub.identity().may_join(&self.who, &join.room)?;
                let (name, verified) = self.hub.identity().member_name(&self.who, join.name);
                if !verified {
                    check_member_name(name.as_deref())?;
                }
                if self.rooms.contains_key(join.room.as_str()) {
                    // Joining twice is harmless: answer with the room's info again.
                    if let Some(info) = self.hub.room_info(&join.room).await? {
                        self.send(&ServerMessage::RoomInfo(info));
                    }
                    return Ok(());
                }
                self.hub.rate_limit(&self.who.conversation)?;
                let room: Arc<str> = join.room.as_str().into();
                let member = Member { id: self.who.member_id.to_string(), name, verified };
                let since = join.after.map_or(Since::Recent, Since::After);
                self.hub.join_room(&room, &member, since, &self.outbox).await?;
                self.rooms.insert(room, member);
            }
            ClientMessage::Leave(leave) => {
                check_room(&leave.room)?;
                let (room, member) = self.joined(&leave.room)?;
                self.rooms.remove(&room);
                self.hub.leave_room(&room, &member, self.outbox.id).await;
            }
            ClientMessage::Typing(t) => {
                // In the support conversation the audience is the operators (the visitor's own
                // tabs are skipped); in a room, the other members.
                if t.room.is_none() {
                    let notice = ServerMessage::Typing(TypingNotice {
                        room: None,
                        role: Role::User,
                        from: None,
                        active: t.active,
                    });
                    let key = ConversationKey::Session(self.who.conversation.clone());
                    self.hub.publish(key, notice, Some(self.who.member_id.to_string())).await;
                } else if let Some(room) = t.room {
                    check_room(&room)?;
                    let (room, member) = self.joined(&room)?;
                    let notice = ServerMessage::Typing(TypingNotice {
                        room: Some(room.to_string()),
                        role: Role::User,
                        from: Some(member.clone()),
                        active: t.active,
                    });
                    self.hub.publish(ConversationKey::Room(room), notice, Some(member.id)).await;
                }
            }
            ClientMessage::CursorPosition(r) | ClientMessage::ChainUpdate(r) if r.room.is_empty() => {
                return Err(Refusal::new(ErrorCode::InvalidMessage, "`room` is empty"));
            }
            ClientMessage::CursorPosition(r) => self.relay(r, true).await?,
            ClientMessage::ChainUpdate(r) => self.relay(r, false).await?,
        }
        Ok(())
    }

    async fn relay(&mut self, r: natter_protocol::RelaySend, cursor: bool) -> Result<(), Refusal> {
        check_room(&r.room)?;
        let (room, member) = self.joined(&r.room)?;
        let notice = RelayNotice { room: room.to_string(), from: member.clone(), data: r.data };
        let message =
            if cursor { ServerMessage::CursorPosition(notice) } else { ServerMessage::ChainUpdate(notice) };
        self.hub.publish(ConversationKey::Room(room), message, Some(member.id)).await;
        Ok(())
    }

    /// The connection ended: leave every room (announcing `user_left` where it was the
    /// member's last connection) and unsubscribe from the session.
    pub(crate) async fn finish(self) {
        for (room, member) in &self.rooms {
            self.hub.leave_room(room, member, self.outbox.id).await;
        }
        self.hub.detach_session(&self.who.conversation, self.outbox.id);
    }
}

fn check_room(room: &str) -> Result<(), Refusal> {
    validate_room_id(room)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad room {room:?}: {e}")))
}

/// Parses a client frame, telling apart bad JSON, an unknown type and a bad message, each with
/// a message naming what is wrong.
///
/// A good frame is parsed once, straight into its type: this is every message's path. Only a
/// frame that fails takes the slower walk through a `serde_json::Value` that finds out why.
pub(crate) fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    serde_json::from_str(text).or_else(|_| diagnose(text))
}

/// Works out why `text` is not a client message (see [`parse`]).
fn diagnose(text: &str) -> Result<ClientMessage, Refusal> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Refusal::new(ErrorCode::BadJson, format!("frame is not valid JSON: {e}")))?;
    diagnose_value(value)
}

/// Reads an HTTP body the strict parse refused as a `user` message (whose `type` may be left
/// out there), like [`parse`] reads a frame: says why it is not one, or reads it by JSON's looser
/// rules where those accept it (a repeated key, whose last value wins, as on the WebSocket).
pub(crate) fn parse_user_body(body: &[u8]) -> Result<UserSend, Refusal> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(ErrorCode::BadJson, format!("body is not valid JSON: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        object.entry("type").or_insert_with(|| UserSend::KIND.into());
    }
    match diagnose_value(value)? {
        ClientMessage::User(send) => Ok(send),
        // Another kind of message (a `join` is missing the `message` a `user` needs).
        other => Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("this endpoint takes `user` messages only, not {:?}", other.kind()),
        )),
    }
}

fn diagnose_value(value: serde_json::Value) -> Result<ClientMessage, Refusal> {
    let id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
    let Some(object) = value.as_object() else {
        return Err(Refusal::new(
            ErrorCode::BadJson,
            format!("frame must be a JSON object, got {}", kind(&value)),
        ));
    };
    let kinds = ClientMessage::KINDS.join(", ");
    let ty = match object.get("type") {
        None => {
            return Err(Refusal::new(
                ErrorCode::UnknownType,
                format!("frame has no \"type\"; expected one of {kinds}"),
            )
            .with_id(id))
        }
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(Refusal::new(
                ErrorCode::UnknownType,
                format!("\"type\" must be a string, got {}; expected one of {kinds}", kind(other)),
            )
            .with_id(id))
        }
    };
    if !ClientMessage::KINDS.contains(&ty.as_str()) {
        let shown: String = ty.chars().take(40).collect();
        return Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("unknown type {shown:?}; expected one of {kinds}"),
        )
        .with_id(id));
    }
    serde_json::from_value(value)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("bad {ty:?} message: {e}")).with_id(id))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A name a visitor gives in a room (on `join`, or with a message over the HTTP fallback): at
/// most 64 characters, no control characters.
pub(crate) fn check_member_name(name: Option<&str>) -> Result<(), Refusal> {
    match name {
        Some(name) if name.chars().count() > 64 || name.chars().any(char::is_control) => Err(Refusal::new(
            ErrorCode::InvalidMessage,
            format!("name {name:?} must be at most 64 characters without control characters"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> (ErrorCode, String) {
        let r = parse(text).unwrap_err();
        (r.code, r.message)
    }

    #[test]
    fn tells_bad_input_apart() {
        assert_eq!(code("{nope").0, ErrorCode::BadJson);
        assert_eq!(code("[1]").0, ErrorCode::BadJson);
        assert_eq!(code("{\"message\":\"x\"}").0, ErrorCode::UnknownType);
        let (c, m) = code("{\"type\":\"shout\"}");
        assert_eq!(c, ErrorCode::UnknownType);
        assert!(m.contains("\"shout\""), "{m}");
        let (c, m) = code("{\"type\":\"user\"}");
        assert_eq!(c, ErrorCode::InvalidMessage);
        assert!(m.contains("message"), "{m}");
        let (c, m) = code("{\"type\":\"chat\",\"room\":5,\"message\":\"x\"}");
        assert_eq!(c, ErrorCode::InvalidMessage);
        assert!(m.contains("integer"), "{m}");
    }

    #[test]
    fn the_original_format_parses() {
        let original = r#"{"type":"user","message":"hello","timestamp":"2025-08-23T10:00:00Z","sessionId":"session-xxx","context":{"page":"/"}}"#;
        assert!(matches!(parse(original), Ok(ClientMessage::User(_))));
    }

    #[test]
    fn http_bodies_are_diagnosed_like_frames() {
        assert_eq!(parse_user_body(b"{nope").unwrap_err().code, ErrorCode::BadJson);
        let r = parse_user_body(br#"{"sessionId":"s"}"#).unwrap_err();
        assert_eq!(r.code, ErrorCode::InvalidMessage);
        assert!(r.message.contains("message"), "{}", r.message);
        let r = parse_user_body(br#"{"type":"join","room":"r"}"#).unwrap_err();
        assert_eq!(r.code, ErrorCode::UnknownType);
        assert!(r.message.contains("\"join\""), "{}", r.message);
    }

    /// JSON allows a repeated key (the last one wins); serde's derived parsers refuse it. A
    /// frame and an HTTP body read it alike, and a body is never told it is "not `user`" when
    /// it is one.
    #[test]
    fn a_repeated_key_is_read_like_json_reads_it() {
        let frame = r#"{"type":"user","message":"first","message":"second"}"#;
        assert!(matches!(parse(frame), Ok(ClientMessage::User(u)) if u.message == "second"));
        let body = br#"{"message":"first","message":"second"}"#;
        assert_eq!(parse_user_body(body).map(|u| u.message), Ok("second".to_string()));
    }
}
